//! Prometheus text exposition of the table, the health report and the
//! daemon's counters: the daemon loop renders it every second and
//! [`crate::web`] serves it on `GET /metrics`. The text is
//! prometheus-client's (format 0.0.4): the snapshot's series are handed
//! to its encoder as one [`Collector`]. Besides the `xvs_*` series it
//! exports node_exporter's `node_ipvs_*` ([`node_ipvs`]).

mod node_ipvs;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use xvs_core::api::{Info, Table};
use xvs_core::model::{Protocol, ServiceKey};

use crate::report::{HealthReport, RsReport};

/// A series' labels, in the order they are printed.
type Labels = Vec<(&'static str, String)>;

fn proto(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// A fwmark service has no protocol, address or port of its own: it is
/// labelled `proto="fwm"` and `fwmark="N"` instead.
fn svc_labels(k: &ServiceKey) -> Labels {
    if k.is_fwmark() {
        return vec![("proto", "fwm".into()), ("fwmark", k.fwmark.to_string())];
    }
    vec![
        ("proto", proto(k.proto).into()),
        ("vip", k.addr.to_string()),
        ("vport", k.port.to_string()),
    ]
}

fn dest_labels(k: &ServiceKey, addr: std::net::IpAddr, port: u16) -> Labels {
    let mut l = svc_labels(k);
    l.push(("rip", addr.to_string()));
    l.push(("rport", port.to_string()));
    l
}

/// One metric name with its series.
#[derive(Debug)]
struct Family {
    name: &'static str,
    kind: MetricType,
    help: &'static str,
    series: Vec<(Labels, u64)>,
}

/// The series of one snapshot, grouped by name in the order first seen.
#[derive(Debug, Default)]
struct Out {
    families: Vec<Family>,
}

const COUNTER: MetricType = MetricType::Counter;
const GAUGE: MetricType = MetricType::Gauge;

impl Out {
    fn metric(
        &mut self,
        name: &'static str,
        kind: MetricType,
        help: &'static str,
        labels: Labels,
        v: u64,
    ) {
        match self.families.iter_mut().find(|f| f.name == name) {
            Some(f) => f.series.push((labels, v)),
            None => self.families.push(Family {
                name,
                kind,
                help,
                series: vec![(labels, v)],
            }),
        }
    }
}

impl Collector for Out {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.families {
            // The encoder appends `_total` to a counter's name itself.
            let name = match f.kind {
                MetricType::Counter => f.name.strip_suffix("_total").unwrap_or(f.name),
                _ => f.name,
            };
            let mut family = encoder.encode_descriptor(name, f.help, None, f.kind)?;
            for (labels, v) in &f.series {
                let series = family.encode_family(labels)?;
                match f.kind {
                    MetricType::Counter => ConstCounter::new(*v).encode(series)?,
                    _ => ConstGauge::new(*v).encode(series)?,
                }
            }
        }
        Ok(())
    }
}

/// The exposition text. Metrics of one name are grouped, as the format
/// asks.
pub fn render(table: &Table, info: &Info, health: &HealthReport) -> String {
    let mut o = Out::default();
    o.metric(
        "xvs_conn_table_size",
        GAUGE,
        "Connection table capacity (entries).",
        Labels::new(),
        u64::from(info.conn_tab_size),
    );
    o.metric(
        "xvs_conn_table_entries",
        GAUGE,
        "Connection table entries in use (two per NAT connection).",
        Labels::new(),
        info.conn_count,
    );
    for (name, v) in &info.counters {
        o.metric(
            "xvs_dataplane_packets_total",
            COUNTER,
            "Data-plane counters by name (drops, kernel fallbacks, ...).",
            vec![("counter", name.clone())],
            *v,
        );
    }
    counters(&mut o, table);
    dest_gauges(&mut o, table);
    health_metrics(&mut o, health);
    node_ipvs::add(&mut o, table);
    encode(o)
}

/// The Prometheus 0.0.4 text of `o`'s series.
fn encode(o: Out) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(o));
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_text::encode(&mut text, &registry);
    text
}

/// The services' and dests' counters.
fn counters(o: &mut Out, table: &Table) {
    type Pick = fn(&xvs_core::model::Stats) -> u64;
    let stats: [(&'static str, &'static str, &'static str, Pick); 5] = [
        (
            "xvs_service_connections_total",
            "xvs_dest_connections_total",
            "Connections scheduled.",
            |s| s.conns,
        ),
        (
            "xvs_service_in_packets_total",
            "xvs_dest_in_packets_total",
            "Packets client to server.",
            |s| s.inpkts,
        ),
        (
            "xvs_service_out_packets_total",
            "xvs_dest_out_packets_total",
            "Packets server to client.",
            |s| s.outpkts,
        ),
        (
            "xvs_service_in_bytes_total",
            "xvs_dest_in_bytes_total",
            "Bytes client to server.",
            |s| s.inbytes,
        ),
        (
            "xvs_service_out_bytes_total",
            "xvs_dest_out_bytes_total",
            "Bytes server to client.",
            |s| s.outbytes,
        ),
    ];
    for (svc_name, _, help, pick) in &stats {
        for s in &table.services {
            o.metric(
                svc_name,
                COUNTER,
                help,
                svc_labels(&s.service.key),
                pick(&s.stats),
            );
        }
    }
    for (_, dest_name, help, pick) in &stats {
        for s in &table.services {
            for d in &s.dests {
                let l = dest_labels(&s.service.key, d.dest.addr, d.dest.port);
                o.metric(dest_name, COUNTER, help, l, pick(&d.stats));
            }
        }
    }
}

/// The dests' connection counts and weights.
fn dest_gauges(o: &mut Out, table: &Table) {
    type DPick = fn(&xvs_core::api::DestEntry) -> u64;
    let gauges: [(&'static str, &'static str, DPick); 4] = [
        (
            "xvs_dest_active_connections",
            "Active (established) connections.",
            |d| u64::from(d.active_conns),
        ),
        (
            "xvs_dest_inactive_connections",
            "Inactive connections.",
            |d| u64::from(d.inact_conns),
        ),
        (
            "xvs_dest_persistent_connections",
            "Persistence templates pointing at the dest.",
            |d| u64::from(d.persist_conns),
        ),
        ("xvs_dest_weight", "Weight in the table.", |d| {
            u64::from(d.dest.weight)
        }),
    ];
    for (name, help, pick) in &gauges {
        for s in &table.services {
            for d in &s.dests {
                let l = dest_labels(&s.service.key, d.dest.addr, d.dest.port);
                o.metric(name, GAUGE, help, l, pick(d));
            }
        }
    }
}

/// The real servers' health, the services' quorum and sorry servers, the
/// configuration's reloads.
fn health_metrics(o: &mut Out, health: &HealthReport) {
    let rs_rows: Vec<(Labels, &RsReport)> = health
        .services
        .iter()
        .flat_map(|s| {
            s.real_servers.iter().map(move |r| {
                let mut l = dest_labels(&s.key, r.addr, r.port);
                l.push(("config_owned", r.config_owned.to_string()));
                (l, r)
            })
        })
        .collect();
    for (l, r) in &rs_rows {
        o.metric(
            "xvs_real_server_up",
            GAUGE,
            "1 when every health checker of the real server passes (always 1 when unchecked).",
            l.clone(),
            u64::from(r.up),
        );
    }
    for (l, r) in &rs_rows {
        o.metric(
            "xvs_real_server_transitions_total",
            COUNTER,
            "Up/down changes of the real server.",
            l.clone(),
            r.transitions,
        );
    }
    for (l, r) in &rs_rows {
        if let Some(ms) = r.last_check_ms {
            o.metric(
                "xvs_real_server_last_check_timestamp_seconds",
                GAUGE,
                "When the last health check of the real server ended.",
                l.clone(),
                ms / 1000,
            );
        }
    }
    for s in &health.services {
        if let Some(q) = s.quorum_up {
            o.metric(
                "xvs_service_quorum_up",
                GAUGE,
                "1 while the virtual server has quorum.",
                svc_labels(&s.key),
                u64::from(q),
            );
        }
    }
    for s in &health.services {
        if s.sorry_server.is_some() {
            o.metric(
                "xvs_service_sorry_server_active",
                GAUGE,
                "1 while the sorry server takes the traffic.",
                svc_labels(&s.key),
                u64::from(s.sorry_active),
            );
        }
    }
    if health.config.is_some() {
        o.metric(
            "xvs_config_reloads_total",
            COUNTER,
            "Configuration loads applied.",
            Labels::new(),
            health.reloads,
        );
        o.metric(
            "xvs_config_reload_failures_total",
            COUNTER,
            "Configuration loads refused.",
            Labels::new(),
            health.reload_failures,
        );
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
