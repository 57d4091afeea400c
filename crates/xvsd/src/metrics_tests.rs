use super::*;
use crate::report::SvcReport;
use std::net::IpAddr;
use std::net::Ipv4Addr;
use xvs_core::api::{DestEntry, ServiceEntry};
use xvs_core::model::{Dest, Rates, Service, Stats};

fn key(proto: Protocol, a: [u8; 4], port: u16) -> ServiceKey {
    ServiceKey {
        fwmark: 0,
        proto,
        addr: IpAddr::V4(Ipv4Addr::from(a)),
        port,
    }
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

fn dest(a: [u8; 4], n: u32) -> DestEntry {
    let mut d = Dest::new(Ipv4Addr::from(a), 80);
    d.weight = n;
    DestEntry {
        dest: d,
        active_conns: n,
        inact_conns: n + 1,
        persist_conns: n + 2,
        stats: stats(u64::from(n)),
        rates: Rates::default(),
    }
}

fn rs(a: [u8; 4], up: bool, owned: bool, ms: Option<u64>) -> RsReport {
    RsReport {
        addr: IpAddr::V4(Ipv4Addr::from(a)),
        port: 80,
        config_owned: owned,
        checked: true,
        up,
        in_table: up,
        weight: Some(1),
        configured_weight: Some(1),
        dynamic_weight: None,
        last_result: None,
        last_ok: None,
        last_check_ms: ms,
        transitions: 3,
        checkers: Vec::new(),
    }
}

/// Two services (one without dests), data-plane counters with a name that
/// needs escaping, and a health report with quorum and a sorry server.
fn sample() -> (Table, Info, HealthReport) {
    let web = key(Protocol::Tcp, [10, 0, 0, 1], 80);
    let dns = key(Protocol::Udp, [10, 0, 0, 1], 53);
    let table = Table {
        conn_tab_size: 4096,
        services: vec![
            ServiceEntry {
                service: Service::new(web, "wlc"),
                stats: stats(7),
                rates: Rates::default(),
                dests: vec![dest([10, 1, 0, 1], 1), dest([10, 1, 0, 2], 2)],
            },
            ServiceEntry {
                service: Service::new(dns, "rr"),
                stats: stats(0),
                rates: Rates::default(),
                dests: Vec::new(),
            },
        ],
    };
    let info = Info {
        version: "0".into(),
        conn_tab_size: 4096,
        conn_count: 12,
        interfaces: vec!["eth0".into()],
        counters: vec![("rx".into(), 100), ("odd\"name\\".into(), 1)],
        features: Vec::new(),
        attach_mode: "tc".into(),
    };
    let health = HealthReport {
        config: Some("/etc/keepalived/keepalived.conf".into()),
        reloads: 2,
        reload_failures: 1,
        services: vec![SvcReport {
            key: web,
            config_owned: true,
            in_table: true,
            quorum: Some(1),
            hysteresis: Some(0),
            quorum_up: Some(true),
            alive_weight: Some(1),
            sorry_server: Some("10.9.9.9:80".into()),
            sorry_active: false,
            real_servers: vec![
                rs([10, 1, 0, 1], true, true, Some(1_700_000_000_500)),
                rs([10, 1, 0, 2], false, false, None),
            ],
        }],
    };
    (table, info, health)
}

/// The `xvs_*` part of the sample's exposition is the text xvsd's
/// hand-written renderer produced before it moved to prometheus-client
/// (the golden file): the same series, values, HELP and TYPE lines, in
/// the same order. node_exporter's `node_ipvs_*` follow it.
#[test]
fn sample_as_before() {
    let (t, i, h) = sample();
    let got = render(&t, &i, &h);
    let golden = include_str!("../testdata/metrics_golden.txt");
    assert!(got.starts_with(golden), "{got}");
    let rest = &got[golden.len()..];
    assert!(
        rest.starts_with("# HELP node_ipvs_connections_total "),
        "{rest}"
    );
    assert!(!rest.contains("\n# HELP xvs_"), "{rest}");
}

/// The whole exposition, escaped label values included, passes a strict
/// Prometheus text-format parser (every line well-formed, each family
/// once with its HELP and TYPE, no series twice).
#[test]
fn sample_parses() {
    let (t, i, h) = sample();
    let got = render(&t, &i, &h);
    let e = match openmetrics_parser::prometheus::parse_prometheus(&got) {
        Ok(e) => e,
        Err(e) => panic!("{e:?}\n{got}"),
    };
    let families = got.matches("# TYPE ").count();
    assert_eq!(e.families.len(), families);
    let odd = &e.families["xvs_dataplane_packets_total"];
    let v = vec!["odd\"name\\".to_string()];
    assert!(odd.get_sample_by_label_values(&v).is_some());
}

#[test]
fn no_config_no_health_series() {
    let (t, i, _) = sample();
    let none = HealthReport {
        config: None,
        reloads: 0,
        reload_failures: 0,
        services: Vec::new(),
    };
    let got = render(&t, &i, &none);
    assert!(!got.contains("xvs_config_reloads_total"), "{got}");
    assert!(!got.contains("xvs_real_server_up"), "{got}");
    assert!(got.contains("xvs_conn_table_entries 12\n"), "{got}");
}

#[test]
fn fwmark_services_are_labelled_by_mark() {
    let (_, i, _) = sample();
    let t = Table {
        conn_tab_size: 4096,
        services: vec![ServiceEntry {
            service: Service::new(ServiceKey::fwmark(7), "rr"),
            stats: stats(3),
            rates: Rates::default(),
            dests: vec![dest([203, 0, 113, 11], 1)],
        }],
    };
    let none = HealthReport {
        config: None,
        reloads: 0,
        reload_failures: 0,
        services: Vec::new(),
    };
    let got = render(&t, &i, &none);
    assert!(
        got.contains("xvs_service_connections_total{proto=\"fwm\",fwmark=\"7\"} 3\n"),
        "{got}"
    );
    assert!(
        got.contains("{proto=\"fwm\",fwmark=\"7\",rip=\"203.0.113.11\",rport=\"80\"}"),
        "{got}"
    );
}
