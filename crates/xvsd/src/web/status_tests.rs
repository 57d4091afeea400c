//! `/status.json`'s content: words, health, history, the services only
//! the configuration has.

use super::*;
use crate::daemon::Daemon;
use crate::testing::{Mem, LIMITS};
use std::net::IpAddr;
use std::net::Ipv4Addr;
use xvs_core::api::{Request, Response, ServiceEntry};
use xvs_core::model::{Dest, Protocol};

fn key() -> ServiceKey {
    ServiceKey::new(Protocol::Tcp, Ipv4Addr::new(198, 51, 100, 10), 80)
}

fn dest(last: u8, fwd: FwdMethod) -> Dest {
    let mut d = Dest::new(Ipv4Addr::new(203, 0, 113, last), 80);
    d.fwd = fwd;
    d
}

fn entry(d: Dest, active: u32) -> DestEntry {
    DestEntry {
        dest: d,
        active_conns: active,
        inact_conns: 1,
        persist_conns: 0,
        stats: Stats::default(),
        rates: Rates::default(),
    }
}

fn rs_report(last: u8, up: bool, in_table: bool) -> RsReport {
    RsReport {
        addr: IpAddr::V4(Ipv4Addr::new(203, 0, 113, last)),
        port: 80,
        config_owned: true,
        checked: true,
        up,
        in_table,
        weight: in_table.then_some(1),
        configured_weight: Some(1),
        dynamic_weight: None,
        last_result: Some(if up { "HTTP 200" } else { "connection refused" }.into()),
        last_ok: Some(up),
        last_check_ms: Some(1_700_000_000_000),
        transitions: 0,
        checkers: Vec::new(),
    }
}

fn persistent_service() -> Service {
    let mut s = Service::new(key(), "wlc");
    s.flags |= svc_flags::PERSISTENT;
    s.timeout = 300;
    s
}

#[test]
fn the_view_says_in_words_what_the_table_and_the_checks_say() {
    let table = Table {
        conn_tab_size: 4096,
        services: vec![ServiceEntry {
            service: persistent_service(),
            stats: Stats::default(),
            rates: Rates {
                inpps: 42,
                ..Rates::default()
            },
            // In the kernel's order, newest first; the page sorts.
            dests: vec![
                entry(dest(12, FwdMethod::Route), 2),
                entry(dest(11, FwdMethod::Masq), 3),
            ],
        }],
    };
    let health = HealthReport {
        config: Some("/etc/keepalived/keepalived.conf".into()),
        reloads: 1,
        reload_failures: 0,
        services: vec![SvcReport {
            key: key(),
            config_owned: true,
            in_table: true,
            quorum: Some(1),
            hysteresis: Some(0),
            quorum_up: Some(true),
            alive_weight: Some(1),
            sorry_server: None,
            sorry_active: false,
            real_servers: vec![rs_report(11, true, true), rs_report(13, false, false)],
        }],
    };
    let mut history = History::default();
    history.record(
        5,
        [(
            key(),
            Rates {
                cps: 7,
                ..Rates::default()
            },
        )],
    );
    let v = view(&table, &health, &history, false, 10);
    assert_eq!(v.services.len(), 1);
    let s = &v.services[0];
    assert_eq!(s.id, "TCP 198.51.100.10:80");
    assert_eq!(s.address, "198.51.100.10:80");
    assert_eq!(s.scheduler_text, "weighted least-connection");
    assert!(s.flags[0].starts_with("persistent"), "{:?}", s.flags);
    assert!(s.flags[0].contains("300 s"), "{:?}", s.flags);
    assert_eq!((s.active_conns, s.inactive_conns), (5, 2));
    assert_eq!(s.rates.inpps, 42);
    assert_eq!(s.history.len(), 1);
    assert_eq!(s.history[0].rates.cps, 7);
    let rs: Vec<(&str, Option<&str>, &str, Option<u32>)> = s
        .real_servers
        .iter()
        .map(|r| {
            (
                r.address.as_str(),
                r.forwarding.as_deref(),
                r.health,
                r.weight,
            )
        })
        .collect();
    assert_eq!(
        rs,
        [
            ("203.0.113.11:80", Some("NAT (masquerading)"), "up", Some(1)),
            (
                "203.0.113.12:80",
                Some("Direct routing"),
                "no check",
                Some(1)
            ),
            ("203.0.113.13:80", None, "down", None),
        ]
    );
    let down = &s.real_servers[2];
    assert_eq!(down.last_check.as_deref(), Some("connection refused"));
    assert_eq!(down.last_check_ok, Some(false));
    assert!(!down.in_table);
    // The JSON the page reads: the field names it uses.
    let json: serde_json::Value = serde_json::from_str(&render(&v)).unwrap();
    assert_eq!(json["write_actions"], false);
    assert_eq!(json["services"][0]["history"][0]["cps"], 7);
    assert_eq!(json["services"][0]["history"][0]["t_ms"], 5);
    assert_eq!(json["services"][0]["real_servers"][2]["health"], "down");
    assert_eq!(json["services"][0]["rates"]["inpps"], 42);
}

#[test]
fn words_for_methods_schedulers_and_flags() {
    let mut d = dest(1, FwdMethod::Tunnel);
    assert_eq!(forwarding_text(&d), "Tunnel (IP-in-IP)");
    d.tun_type = TunType::Gue;
    d.tun_port = 6080;
    assert_eq!(forwarding_text(&d), "Tunnel (GUE, UDP port 6080)");
    assert_eq!(scheduler_text("rr"), "round robin");
    assert_eq!(scheduler_text("nosuch"), "nosuch");
    let mut s = Service::new(ServiceKey::fwmark(5), "sh");
    s.flags = svc_flags::SCHED1 | svc_flags::ONEPACKET;
    assert_eq!(flag_texts(&s).len(), 2);
    assert_eq!(service_id(&s.key), "FWM 5");
    assert!(flag_texts(&Service::new(key(), "rr")).is_empty());
}

#[test]
fn a_configured_service_out_of_the_table_is_listed_after_the_table() {
    let health = HealthReport {
        config: None,
        reloads: 0,
        reload_failures: 0,
        services: vec![SvcReport {
            key: ServiceKey::fwmark(9),
            config_owned: true,
            in_table: false,
            quorum: None,
            hysteresis: None,
            quorum_up: Some(false),
            alive_weight: None,
            sorry_server: None,
            sorry_active: false,
            real_servers: vec![rs_report(11, false, false)],
        }],
    };
    let v = view(&Table::default(), &health, &History::default(), true, 0);
    assert!(v.write_actions);
    assert_eq!(v.services[0].id, "FWM 9");
    assert_eq!(v.services[0].address, "mark 9");
    assert!(!v.services[0].in_table);
    assert_eq!(v.services[0].real_servers[0].health, "down");
}

#[test]
fn the_daemon_keeps_history_on_each_estimator_tick() {
    let mut d = Daemon::new(Mem::default(), LIMITS, None).unwrap();
    let r = d.handle(Request::AddService {
        service: Service::new(key(), "rr"),
    });
    assert_eq!(r, Response::Ok);
    let r = d.handle(Request::AddDest {
        key: key(),
        dest: dest(11, FwdMethod::Masq),
    });
    assert_eq!(r, Response::Ok);
    for _ in 0..3 {
        d.estimate();
    }
    let v = d.status_view();
    assert_eq!(v.services[0].history.len(), 3);
    assert_eq!(v.services[0].real_servers[0].health, "no check");
    assert!(!v.write_actions);
    // -Z restarts the rates and their history.
    assert_eq!(d.handle(Request::Zero { key: Some(key()) }), Response::Ok);
    assert!(d.status_view().services[0].history.is_empty());
}
