//! `xvsadm --json`: the listings as one JSON document, schema
//! [`LIST_SCHEMA`] (docs/json.md).
//!
//! The document is the control API's own types ([`crate::api`],
//! [`crate::model`], [`crate::fwmark`]) serialised as the API serialises
//! them, wrapped in thin view types that add what the text listing derives
//! from them (ipvsadm's protocol and state names, the persistence and
//! scheduler flags spelled out), so that a reader needs neither the text
//! nor IPVS's flag bits. One schema covers every listing; its JSON Schema
//! is generated from these types by [`schema`] and committed as
//! `docs/xvsadm-json.schema.json`.
//!
//! Versioning: adding a field, a listing kind or an enum value keeps
//! [`LIST_SCHEMA`]; removing or renaming one, or changing a field's type
//! or meaning, bumps its number.

use crate::api::{ConnEntry, DestEntry, ServiceEntry, Table};
use crate::format::{self, IPVS_VERSION};
use crate::fwmark::MarkRule;
use crate::model::{svc_flags, Rates, Service, Stats, SyncDaemon, Timeouts};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// The schema name and version every document carries in `schema`: the
/// one place it is spelled.
pub const LIST_SCHEMA: &str = "xvs-list/1";

/// The `$id` of the JSON Schema document (`xvsadm --json-schema`):
/// `urn:xvs:schema:` and [`LIST_SCHEMA`].
pub fn schema_id() -> String {
    format!("urn:xvs:schema:{LIST_SCHEMA}")
}

/// One `xvsadm --json` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ListDoc {
    /// Always `xvs-list/1` ([`LIST_SCHEMA`]): the schema's name and major
    /// version.
    #[schemars(schema_with = "schema_const")]
    pub schema: String,
    /// The listing; `list` says which.
    #[serde(flatten)]
    pub body: ListBody,
}

/// `"const": "xvs-list/1"`, from [`LIST_SCHEMA`].
fn schema_const(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({ "type": "string", "const": LIST_SCHEMA })
}

/// Which listing a document holds, tagged by `list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "list", rename_all = "snake_case")]
pub enum ListBody {
    /// `-L` with or without `--stats`, `--rate`, `--thresholds`,
    /// `--persistent-conn`, `--tun-info`, `--exact` (every figure is
    /// always there), and `-L -t|-u|--sctp-service|-f SERVICE` (the one
    /// service).
    Services {
        /// The IPVS version ipvsadm's header names (`1.2.1`).
        ipvs_version: String,
        /// The connection table size (the header's `size=N`).
        conn_tab_size: u32,
        /// Services in the text listing's order (sorted as ipvsadm sorts
        /// them, or the daemon's order with `--nosort`).
        services: Vec<ServiceView>,
    },
    /// `-L -c`: the connection table, persistence templates first.
    Connections {
        /// Entries in the text listing's order.
        connections: Vec<ConnView>,
    },
    /// `-L --timeout`.
    Timeouts {
        /// TCP, TCP FIN and UDP timeouts in seconds.
        timeouts: Timeouts,
    },
    /// `-L --daemon`: the running sync daemons, the master first (none
    /// when none runs).
    Daemons {
        /// At most one master and one backup, defaults filled in.
        daemons: Vec<SyncDaemon>,
    },
    /// `--list-marks` (xvs extension): the mark classifier rules in the
    /// order they were added.
    Marks {
        /// The rules.
        rules: Vec<MarkRule>,
    },
}

/// A service with the fields of the API's [`ServiceEntry`] (`service`,
/// `stats`, `rates`, `dests`, each dest a [`DestView`]) and its flags
/// spelled out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceView {
    /// Configuration: key, scheduler, flags, persistence timeout and
    /// netmask.
    pub service: Service,
    /// Counters since creation or the last `-Z` (`--stats`).
    pub stats: Stats,
    /// Rate estimates (`--rate`).
    pub rates: Rates,
    /// ipvsadm's protocol column: `TCP`, `UDP`, `SCTP`, or `FWM` for a
    /// fwmark service.
    pub proto_name: String,
    /// `-p`: persistent (`service.timeout` and `service.netmask` apply).
    pub persistent: bool,
    /// `-o`: one-packet scheduling.
    pub one_packet: bool,
    /// `-b`: the scheduler flags by ipvsadm's names (`sh-port`, ...).
    pub sched_flags: Vec<String>,
    /// The real servers, in the text listing's order.
    pub dests: Vec<DestView>,
}

/// A real server as the API lists it ([`DestEntry`]) with ipvsadm's
/// `Forward` word and tunnel column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DestView {
    /// The API's destination entry, its fields at this level.
    #[serde(flatten)]
    pub entry: DestEntry,
    /// The `Forward` column: `Masq`, `Route` or `Tunnel`.
    pub forward: String,
    /// `--tun-info`'s column for a tunnel (`ipip`, `gue:6080:-c`), else
    /// null.
    pub tun_info: Option<String>,
}

/// A connection as the API lists it ([`ConnEntry`]) with the text
/// listing's columns that are derived from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConnView {
    /// The API's connection entry, its fields at this level.
    #[serde(flatten)]
    pub entry: ConnEntry,
    /// The `pro` column: `TCP`, `UDP`, `SCTP`, or `IP` for a fwmark
    /// service's persistence template.
    pub proto_name: String,
    /// The `state` column as ipvsadm prints it (`ESTABLISHED`, `C-SENT`).
    pub state_name: String,
    /// The `expire` column's whole seconds (`expires_ms / 1000`).
    pub expires_s: u64,
}

impl ListDoc {
    /// A document holding `body`.
    pub fn new(body: ListBody) -> Self {
        ListDoc {
            schema: LIST_SCHEMA.to_string(),
            body,
        }
    }

    /// `-L`: every service of `table`, sorted unless `nosort`.
    pub fn services(table: &Table, nosort: bool) -> Self {
        let mut services = table.services.clone();
        if !nosort {
            format::sort_services(&mut services);
        }
        Self::services_of(table.conn_tab_size, services, nosort)
    }

    /// `-L SERVICE`: the one service `entry`.
    pub fn service(conn_tab_size: u32, entry: &ServiceEntry, nosort: bool) -> Self {
        Self::services_of(conn_tab_size, vec![entry.clone()], nosort)
    }

    fn services_of(conn_tab_size: u32, services: Vec<ServiceEntry>, nosort: bool) -> Self {
        Self::new(ListBody::Services {
            ipvs_version: IPVS_VERSION.to_string(),
            conn_tab_size,
            services: services
                .into_iter()
                .map(|s| ServiceView::new(s, nosort))
                .collect(),
        })
    }

    /// `-L -c`.
    pub fn connections(conns: &[ConnEntry]) -> Self {
        Self::new(ListBody::Connections {
            connections: conns.iter().cloned().map(ConnView::new).collect(),
        })
    }

    /// `-L --timeout`.
    pub fn timeouts(timeouts: Timeouts) -> Self {
        Self::new(ListBody::Timeouts { timeouts })
    }

    /// `-L --daemon`, the master first as the text lists them.
    pub fn daemons(daemons: &[SyncDaemon]) -> Self {
        let mut daemons = daemons.to_vec();
        daemons.sort_by_key(|d| d.state);
        Self::new(ListBody::Daemons { daemons })
    }

    /// `--list-marks`.
    pub fn marks(rules: &[MarkRule]) -> Self {
        Self::new(ListBody::Marks {
            rules: rules.to_vec(),
        })
    }
}

impl ServiceView {
    /// The view of `entry`, its dests sorted unless `nosort`.
    pub fn new(entry: ServiceEntry, nosort: bool) -> Self {
        let ServiceEntry {
            service,
            stats,
            rates,
            mut dests,
        } = entry;
        if !nosort {
            format::sort_dests(&mut dests);
        }
        let svc = &service;
        ServiceView {
            proto_name: if svc.key.is_fwmark() {
                "FWM".to_string()
            } else {
                svc.key.proto.name().to_string()
            },
            persistent: svc.is_persistent(),
            one_packet: svc.flags & svc_flags::ONEPACKET != 0,
            sched_flags: format::sched_flag_names(&svc.scheduler, svc.flags),
            dests: dests.into_iter().map(DestView::new).collect(),
            stats,
            rates,
            service,
        }
    }
}

impl DestView {
    /// The view of `entry`.
    pub fn new(entry: DestEntry) -> Self {
        DestView {
            forward: entry.dest.fwd.name().to_string(),
            tun_info: format::tun_info(&entry),
            entry,
        }
    }
}

impl ConnView {
    /// The view of `entry`.
    pub fn new(entry: ConnEntry) -> Self {
        ConnView {
            proto_name: if entry.fwmark != 0 {
                "IP".to_string()
            } else {
                entry.proto.name().to_string()
            },
            state_name: entry.state.name().to_string(),
            expires_s: entry.expires_ms / 1000,
            entry,
        }
    }
}

/// The JSON Schema (draft 2020-12) of [`ListDoc`], as `xvsadm
/// --json-schema` prints it.
pub fn schema() -> serde_json::Value {
    let mut s = schemars::schema_for!(ListDoc);
    s.insert("$id".to_string(), schema_id().into());
    s.insert(
        "title".to_string(),
        format!("xvsadm --json listing ({LIST_SCHEMA})").into(),
    );
    sorted(s.to_value())
}

/// `v` with every object's keys in sorted order, whether or not
/// serde_json's `preserve_order` is on in this build (a crate of the
/// build may turn it on), so the printed schema is always the same bytes.
fn sorted(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_document_names_the_schema() {
        let d = ListDoc::timeouts(Timeouts::default());
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"schema": "xvs-list/1", "list": "timeouts",
                "timeouts": {"tcp": 900, "tcp_fin": 120, "udp": 300}})
        );
        assert_eq!(serde_json::from_value::<ListDoc>(v).unwrap(), d);
        let s = schema();
        assert_eq!(s["$id"], "urn:xvs:schema:xvs-list/1");
        assert_eq!(s["title"], "xvsadm --json listing (xvs-list/1)");
        assert_eq!(s["properties"]["schema"]["const"], LIST_SCHEMA);
    }
}
