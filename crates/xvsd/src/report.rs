//! The answers that report on the table: the listing with counters and
//! rates (`-L --stats --rate`), the daemon's `info`, and the `health` and
//! `reload` answers of the keepalived half.

use std::net::IpAddr;

use serde::Serialize;
use xvs_core::api::{ApiError, DestEntry, ErrorKind, Info, ServiceEntry, Table};
use xvs_core::model::ServiceKey;

use crate::plane::{Plane, PlaneError};
use crate::rates::{EstKey, Estimators};
use crate::table::Model;

/// A data-plane failure as the API reports it.
pub(crate) fn internal(e: PlaneError) -> ApiError {
    ApiError::with(ErrorKind::Internal, format!("data plane: {e}"))
}

/// The table with each service's and dest's counters, connection counts
/// and rates.
pub(crate) fn table<P: Plane>(
    model: &Model,
    plane: &P,
    est: &Estimators,
) -> Result<Table, ApiError> {
    let mut services = Vec::new();
    let stats = plane.all_stats().map_err(internal)?;
    for slot in model.services.values() {
        let key = slot.service.key;
        let mut dests = Vec::new();
        for d in &slot.dests {
            let (active, inact) = plane.dest_conns(d.id).map_err(internal)?;
            dests.push(DestEntry {
                dest: d.dest.clone(),
                active_conns: active,
                inact_conns: inact,
                persist_conns: plane.persist_conns(d.id).map_err(internal)?,
                stats: stats.dest(d.id),
                rates: Estimators::rates(
                    &est.dest,
                    d.id,
                    EstKey::Dest(key, d.dest.addr, d.dest.port),
                ),
            });
        }
        services.push(ServiceEntry {
            service: slot.service.clone(),
            stats: stats.svc(slot.id),
            rates: Estimators::rates(&est.svc, slot.id, EstKey::Svc(key)),
            dests,
        });
    }
    Ok(Table {
        conn_tab_size: plane.conn_capacity(),
        services,
    })
}

/// The `info` answer, with the exact connection count.
pub(crate) fn info<P: Plane>(plane: &P) -> Result<Info, ApiError> {
    Ok(Info {
        version: env!("CARGO_PKG_VERSION").to_string(),
        conn_tab_size: plane.conn_capacity(),
        conn_count: plane.conn_count().map_err(internal)?,
        interfaces: plane.interfaces(),
        counters: plane.counters().map_err(internal)?,
        features: plane.features(),
        attach_mode: plane.attach_mode(),
    })
}

/// [`info`] as cheap as it can be, for the once-a-second metrics: the
/// connection count as the last expiry scan counted it (the exact count
/// reads the whole table, which at millions of connections every second
/// costs a CPU), a counter failure as no counters.
pub(crate) fn info_for_metrics<P: Plane>(plane: &P) -> Info {
    Info {
        version: env!("CARGO_PKG_VERSION").to_string(),
        conn_tab_size: plane.conn_capacity(),
        conn_count: plane.conn_entries(),
        interfaces: plane.interfaces(),
        counters: plane.counters().unwrap_or_default(),
        features: plane.features(),
        attach_mode: plane.attach_mode(),
    }
}

/// What a successful load did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    /// The file read.
    pub file: String,
    /// Virtual servers in it (groups expanded).
    pub services: usize,
    /// Real servers in it.
    pub real_servers: usize,
    /// Table changes applied.
    pub changes: usize,
    /// Warnings, `file:line: warning: ...`.
    pub warnings: Vec<String>,
}

/// One checker in the `health` answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckerHealth {
    /// keepalived's keyword.
    pub kind: String,
    /// `addr:port` checked.
    pub target: String,
    /// Checker up.
    pub up: bool,
    /// Result text of its last attempt.
    pub last_result: Option<String>,
    /// Whether its last attempt succeeded.
    pub last_ok: Option<bool>,
    /// End of its last attempt, Unix milliseconds.
    pub last_check_ms: Option<u64>,
}

/// One real server in the `health` answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RsReport {
    /// Address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// From the configuration (false: added with xvsadm, not checked).
    pub config_owned: bool,
    /// Health-checked (config-owned with at least one checker).
    pub checked: bool,
    /// Alive: every checker up (always true when not checked).
    pub up: bool,
    /// In the table now.
    pub in_table: bool,
    /// Weight in the table now.
    pub weight: Option<u32>,
    /// Configured weight (config-owned only).
    pub configured_weight: Option<u32>,
    /// `misc_dynamic` weight in force.
    pub dynamic_weight: Option<u32>,
    /// Result text of the last check.
    pub last_result: Option<String>,
    /// Whether the last check succeeded.
    pub last_ok: Option<bool>,
    /// End of the last check, Unix milliseconds.
    pub last_check_ms: Option<u64>,
    /// Up/down changes since it was added.
    pub transitions: u64,
    /// Per checker.
    pub checkers: Vec<CheckerHealth>,
}

/// One service in the `health` answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SvcReport {
    /// The service.
    pub key: ServiceKey,
    /// From the configuration.
    pub config_owned: bool,
    /// In the table now.
    pub in_table: bool,
    /// `quorum` (config-owned only).
    pub quorum: Option<u32>,
    /// `hysteresis`.
    pub hysteresis: Option<u32>,
    /// Quorum state.
    pub quorum_up: Option<bool>,
    /// Sum of the alive real servers' weights.
    pub alive_weight: Option<u64>,
    /// The sorry server (`addr:port`), if configured.
    pub sorry_server: Option<String>,
    /// Whether it is in use.
    pub sorry_active: bool,
    /// Real servers.
    pub real_servers: Vec<RsReport>,
}

/// The `health` answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The configuration file (`--config`), if any.
    pub config: Option<String>,
    /// Successful reloads since start (the first load included).
    pub reloads: u64,
    /// Refused reloads since start.
    pub reload_failures: u64,
    /// Every service of the table and every config-owned one.
    pub services: Vec<SvcReport>,
}
