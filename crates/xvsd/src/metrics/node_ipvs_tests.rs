//! The `node_ipvs_*` series: node_exporter's labels (fwmark services
//! included), summed duplicates, values equal to the table's, and the
//! whole `/metrics` text read back by a strict Prometheus text parser.

use std::net::IpAddr;
use std::net::Ipv4Addr;

use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue};
use xvs_core::api::{DestEntry, Request, Response, ServiceEntry, Table};
use xvs_core::model::{Dest, Protocol, Rates, Service, ServiceKey, Stats};

use crate::daemon::Daemon;
use crate::testing::{list, Mem, LIMITS};

type Exposition = MetricsExposition<PrometheusType, PrometheusValue>;

/// Parses `text` strictly: any malformed line, repeated series, family
/// split in two or sample without its TYPE fails the test.
fn parse(text: &str) -> Exposition {
    match parse_prometheus(text) {
        Ok(e) => e,
        Err(e) => panic!("/metrics does not parse: {e:?}\n{text}"),
    }
}

/// The value of `name`'s sample with `labels` (name, value pairs).
fn value(e: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    let fam = e
        .families
        .get(name)
        .unwrap_or_else(|| panic!("no family {name}"));
    // The parser keeps a family's label names sorted.
    let values: Vec<String> = fam
        .get_label_names()
        .iter()
        .map(|n| {
            let v = labels.iter().find(|(k, _)| k == n);
            v.map_or_else(
                || panic!("{name}: label {n} not given"),
                |(_, v)| v.to_string(),
            )
        })
        .collect();
    let sample = fam
        .get_sample_by_label_values(&values)
        .unwrap_or_else(|| panic!("no {name}{labels:?}"));
    match &sample.value {
        PrometheusValue::Counter(c) => c.value.as_f64(),
        PrometheusValue::Gauge(g) => g.as_f64(),
        other => panic!("{name}: unexpected {other:?}"),
    }
}

fn svc_key(proto: Protocol, last: u8, port: u16) -> ServiceKey {
    ServiceKey {
        fwmark: 0,
        proto,
        addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)),
        port,
    }
}

fn fwm_key(mark: u32) -> ServiceKey {
    ServiceKey::fwmark(mark)
}

/// The `node_ipvs_*` lines of an exposition (its other families may mix
/// label names, which Prometheus takes and this parser does not).
fn node_ipvs_part(text: &str) -> String {
    text.lines()
        .filter(|l| {
            l.starts_with("node_ipvs_")
                || l.starts_with("# HELP node_ipvs_")
                || l.starts_with("# TYPE node_ipvs_")
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn stats(n: u64) -> Stats {
    Stats {
        conns: n,
        inpkts: n * 10,
        outpkts: n * 9,
        inbytes: n * 1000,
        outbytes: n * 900,
    }
}

/// A daemon over the fake plane with two services and three dests, each
/// with its own counters and connection counts.
fn daemon() -> Daemon<Mem> {
    let mut d = Daemon::new(Mem::default(), LIMITS, None).unwrap();
    let web = svc_key(Protocol::Tcp, 1, 80);
    let dns = svc_key(Protocol::Udp, 2, 53);
    for k in [web, dns] {
        let r = d.handle(Request::AddService {
            service: Service::new(k, "wlc"),
        });
        assert_eq!(r, Response::Ok);
    }
    for (k, last, w) in [(web, 11, 1), (web, 12, 5), (dns, 13, 2)] {
        let mut dest = Dest::new(Ipv4Addr::new(10, 1, 0, last), k.port);
        dest.weight = w;
        assert_eq!(d.handle(Request::AddDest { key: k, dest }), Response::Ok);
    }
    for id in 0..2u32 {
        d.plane_mut().svc_stats.insert(id, stats(u64::from(id) + 3));
    }
    for id in 0..3u32 {
        d.plane_mut().stats.insert(id, stats(u64::from(id) + 1));
        d.plane_mut().conn_counts.insert(id, (id + 4, id * 7));
    }
    d
}

/// The `node_ipvs_*` values equal what `-L --stats` lists: the totals are
/// the sums of the services' counters, each backend's gauges its dest's.
#[test]
fn values_match_the_table() {
    let mut d = daemon();
    let table = list(&mut d);
    let e = parse(&d.metrics_text());
    type Pick = fn(&Stats) -> u64;
    let totals: [(&str, Pick); 5] = [
        ("node_ipvs_connections_total", |s| s.conns),
        ("node_ipvs_incoming_packets_total", |s| s.inpkts),
        ("node_ipvs_outgoing_packets_total", |s| s.outpkts),
        ("node_ipvs_incoming_bytes_total", |s| s.inbytes),
        ("node_ipvs_outgoing_bytes_total", |s| s.outbytes),
    ];
    for (name, pick) in totals {
        let want: u64 = table.services.iter().map(|s| pick(&s.stats)).sum();
        assert!(want > 0, "{name}: the fake plane's counters are set");
        assert_eq!(value(&e, name, &[]), want as f64, "{name}");
    }
    let mut rows = 0;
    for s in &table.services {
        let k = s.service.key;
        for de in &s.dests {
            let proto = if k.proto == Protocol::Tcp {
                "TCP"
            } else {
                "UDP"
            };
            let (laddr, lport) = (k.addr.to_string(), k.port.to_string());
            let (raddr, rport) = (de.dest.addr.to_string(), de.dest.port.to_string());
            let l = [
                ("local_address", &*laddr),
                ("local_port", &*lport),
                ("remote_address", &*raddr),
                ("remote_port", &*rport),
                ("proto", proto),
                ("local_mark", ""),
            ];
            let active = value(&e, "node_ipvs_backend_connections_active", &l);
            let inactive = value(&e, "node_ipvs_backend_connections_inactive", &l);
            let weight = value(&e, "node_ipvs_backend_weight", &l);
            assert_eq!(active, f64::from(de.active_conns));
            assert_eq!(inactive, f64::from(de.inact_conns));
            assert_eq!(weight, f64::from(de.dest.weight));
            rows += 1;
        }
    }
    assert_eq!(rows, 3);
}

/// node_exporter's names, types, HELP texts and label names, in its order.
#[test]
fn families_as_node_exporter() {
    let e = parse(&daemon().metrics_text());
    let counters = [
        (
            "node_ipvs_connections_total",
            "The total number of connections made.",
        ),
        (
            "node_ipvs_incoming_packets_total",
            "The total number of incoming packets.",
        ),
        (
            "node_ipvs_outgoing_packets_total",
            "The total number of outgoing packets.",
        ),
        (
            "node_ipvs_incoming_bytes_total",
            "The total amount of incoming data.",
        ),
        (
            "node_ipvs_outgoing_bytes_total",
            "The total amount of outgoing data.",
        ),
    ];
    for (name, help) in counters {
        let f = &e.families[name];
        assert_eq!(f.family_type, PrometheusType::Counter, "{name}");
        assert_eq!(f.help, help, "{name}");
        assert!(f.get_label_names().is_empty(), "{name}");
    }
    let gauges = [
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
    // node_exporter's order is checked in the text by
    // `fwmark_labels_and_sums`; the parser sorts label names.
    let mut labels = [
        "local_address",
        "local_port",
        "remote_address",
        "remote_port",
        "proto",
        "local_mark",
    ];
    labels.sort_unstable();
    for (name, help) in gauges {
        let f = &e.families[name];
        assert_eq!(f.family_type, PrometheusType::Gauge, "{name}");
        assert_eq!(f.help, help, "{name}");
        assert_eq!(f.get_label_names(), labels, "{name}");
    }
    // The xvs_* series are still there beside them.
    assert!(e.families.contains_key("xvs_service_connections_total"));
    assert!(e.families.contains_key("xvs_dest_weight"));
}

fn entry(key: ServiceKey, dests: &[(u8, u32)]) -> ServiceEntry {
    ServiceEntry {
        service: Service::new(key, "rr"),
        stats: stats(1),
        rates: Rates::default(),
        dests: dests
            .iter()
            .map(|&(last, n)| {
                let mut dest = Dest::new(Ipv4Addr::new(10, 1, 0, last), 80);
                dest.weight = n;
                DestEntry {
                    dest,
                    active_conns: n,
                    inact_conns: 2 * n,
                    persist_conns: 0,
                    stats: stats(u64::from(n)),
                    rates: Rates::default(),
                }
            })
            .collect(),
    }
}

/// A fwmark service is labelled as node_exporter labels `FWM` lines of
/// `/proc/net/ip_vs`: no address, port 0, the mark in `%08X`; rows with
/// equal labels are summed into one series.
#[test]
fn fwmark_labels_and_sums() {
    let table = Table {
        conn_tab_size: 4096,
        services: vec![
            entry(fwm_key(0x1f), &[(1, 1)]),
            entry(svc_key(Protocol::Sctp, 3, 9), &[(2, 4)]),
            // The same label set again (a table xvs never lists; summed
            // as node_exporter sums, never repeated).
            entry(fwm_key(0x1f), &[(1, 2)]),
        ],
    };
    let mut o = super::Out::default();
    super::add(&mut o, &table);
    let text = super::super::encode(o);
    let fwm = r#"{local_address="",local_port="0",remote_address="10.1.0.1",remote_port="80",proto="FWM",local_mark="0000001F"}"#;
    let sctp = r#"{local_address="10.0.0.3",local_port="9",remote_address="10.1.0.2",remote_port="80",proto="SCTP",local_mark=""}"#;
    for line in [
        format!("node_ipvs_backend_connections_active{fwm} 3\n"),
        format!("node_ipvs_backend_connections_inactive{fwm} 6\n"),
        format!("node_ipvs_backend_weight{fwm} 3\n"),
        format!("node_ipvs_backend_weight{sctp} 4\n"),
        "node_ipvs_connections_total 3\n".to_string(),
    ] {
        assert!(text.contains(&line), "{line} not in\n{text}");
    }
    assert_eq!(
        text.matches("node_ipvs_backend_weight{").count(),
        2,
        "{text}"
    );
    parse(&text);
}

/// A firewall-mark service served by the daemon: its backends labelled
/// as node_exporter labels `FWM` lines, its counters in the totals.
#[test]
fn fwmark_service_through_the_daemon() {
    let mut d = daemon();
    let k = fwm_key(7);
    let r = d.handle(Request::AddService {
        service: Service::new(k, "rr"),
    });
    assert_eq!(r, Response::Ok);
    let mut dest = Dest::new(Ipv4Addr::new(10, 1, 0, 20), 443);
    dest.weight = 9;
    assert_eq!(d.handle(Request::AddDest { key: k, dest }), Response::Ok);
    let table = list(&mut d);
    let text = d.metrics_text();
    let e = parse(&node_ipvs_part(&text));
    let l = [
        ("local_address", ""),
        ("local_port", "0"),
        ("remote_address", "10.1.0.20"),
        // A DR dest of a mark service keeps its port (ipvsadm and IPVS
        // copy the service port only for address services).
        ("remote_port", "443"),
        ("proto", "FWM"),
        ("local_mark", "00000007"),
    ];
    assert_eq!(value(&e, "node_ipvs_backend_weight", &l), 9.0);
    let conns: u64 = table.services.iter().map(|s| s.stats.conns).sum();
    assert_eq!(value(&e, "node_ipvs_connections_total", &[]), conns as f64);
    assert_eq!(
        text.matches("node_ipvs_backend_weight{").count(),
        4,
        "{text}"
    );
}
