//! node_exporter's `ipvs` collector series (`collector/ipvs_linux.go`),
//! so that dashboards and alerts written for the kernel's IPVS read xvs
//! unchanged: the same names, types, HELP texts, label names and label
//! order, and the same values as node_exporter derives from
//! `/proc/net/ip_vs_stats` and `/proc/net/ip_vs`.

use std::net::IpAddr;

use xvs_core::api::{DestEntry, Table};
use xvs_core::model::{Protocol, ServiceKey, Stats};

use super::{Labels, Out, COUNTER, GAUGE};

/// `/proc/net/ip_vs`'s protocol column, which node_exporter puts in the
/// `proto` label: upper case, and `FWM` for a firewall-mark service.
fn proc_proto(k: &ServiceKey) -> &'static str {
    if k.is_fwmark() {
        return "FWM";
    }
    match k.proto {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

/// The backend labels in node_exporter's order. A fwmark service has no
/// address (empty `local_address`, `local_port` 0) and its mark as
/// `/proc/net/ip_vs` prints it (`%08X`); an address service has an empty
/// `local_mark`.
fn backend_labels(k: &ServiceKey, raddr: IpAddr, rport: u16) -> Labels {
    let (laddr, lport, mark) = if k.is_fwmark() {
        (String::new(), 0, format!("{:08X}", k.fwmark))
    } else {
        (k.addr.to_string(), k.port, String::new())
    };
    vec![
        ("local_address", laddr),
        ("local_port", lport.to_string()),
        ("remote_address", raddr.to_string()),
        ("remote_port", rport.to_string()),
        ("proto", proc_proto(k).into()),
        ("local_mark", mark),
    ]
}

/// One backend row: active and inactive connections, weight.
type Row = (Labels, [u64; 3]);

/// The backends, one row per label set in table order. Rows with equal
/// labels are summed, as node_exporter sums them (it keys on the joined
/// label values), so the exposition never repeats a series.
fn backend_rows(table: &Table) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for s in &table.services {
        for d in &s.dests {
            let labels = backend_labels(&s.service.key, d.dest.addr, d.dest.port);
            let v = values(d);
            match rows.iter_mut().find(|(l, _)| *l == labels) {
                Some((_, sum)) => {
                    for (a, b) in sum.iter_mut().zip(v) {
                        *a = a.saturating_add(b);
                    }
                }
                None => rows.push((labels, v)),
            }
        }
    }
    rows
}

fn values(d: &DestEntry) -> [u64; 3] {
    [
        u64::from(d.active_conns),
        u64::from(d.inact_conns),
        u64::from(d.dest.weight),
    ]
}

/// The director's totals. The kernel keeps them apart from the services
/// (`ip_vs_stats`); xvs sums its services, so a deleted service's counts
/// leave the totals (Prometheus reads the drop as a counter reset).
fn totals(table: &Table) -> Stats {
    let mut t = Stats::default();
    for s in &table.services {
        let st = &s.stats;
        t.conns = t.conns.wrapping_add(st.conns);
        t.inpkts = t.inpkts.wrapping_add(st.inpkts);
        t.outpkts = t.outpkts.wrapping_add(st.outpkts);
        t.inbytes = t.inbytes.wrapping_add(st.inbytes);
        t.outbytes = t.outbytes.wrapping_add(st.outbytes);
    }
    t
}

/// Adds the `node_ipvs_*` series of `table` to `o`.
pub(super) fn add(o: &mut Out, table: &Table) {
    let t = totals(table);
    let counters: [(&'static str, &'static str, u64); 5] = [
        (
            "node_ipvs_connections_total",
            "The total number of connections made.",
            t.conns,
        ),
        (
            "node_ipvs_incoming_packets_total",
            "The total number of incoming packets.",
            t.inpkts,
        ),
        (
            "node_ipvs_outgoing_packets_total",
            "The total number of outgoing packets.",
            t.outpkts,
        ),
        (
            "node_ipvs_incoming_bytes_total",
            "The total amount of incoming data.",
            t.inbytes,
        ),
        (
            "node_ipvs_outgoing_bytes_total",
            "The total amount of outgoing data.",
            t.outbytes,
        ),
    ];
    for (name, help, v) in counters {
        o.metric(name, COUNTER, help, Labels::new(), v);
    }
    let rows = backend_rows(table);
    let gauges: [(&'static str, &'static str); 3] = [
        (
            "node_ipvs_backend_connections_active",
            "The current active connections by local and remote address.",
        ),
        (
            "node_ipvs_backend_connections_inactive",
            "The current inactive connections by local and remote address.",
        ),
        (
            "node_ipvs_backend_weight",
            "The current backend weight by local and remote address.",
        ),
    ];
    for (i, (name, help)) in gauges.into_iter().enumerate() {
        for (labels, v) in &rows {
            o.metric(name, GAUGE, help, labels.clone(), v[i]);
        }
    }
}

#[cfg(test)]
#[path = "node_ipvs_tests.rs"]
mod tests;
