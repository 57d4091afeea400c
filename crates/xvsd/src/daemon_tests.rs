//! The daemon's unit tests: listing, rates, atomic changes, the state
//! file, sync daemons.

use super::*;
use crate::plane::SYNC_NOT_SUPPORTED;
use crate::testing::{list, Mem, LIMITS};
use std::net::IpAddr;
use std::net::Ipv4Addr;
use xvs_core::model::{Dest, FwdMethod, Protocol, Service, Stats};

fn key() -> ServiceKey {
    ServiceKey {
        fwmark: 0,
        proto: Protocol::Tcp,
        addr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)),
        port: 80,
    }
}

fn dest(last: u8) -> Dest {
    let mut d = Dest::new(Ipv4Addr::new(203, 0, 113, last), 80);
    d.fwd = FwdMethod::Masq;
    d
}

fn setup(d: &mut Daemon<Mem>) {
    let r = d.handle(Request::AddService {
        service: Service::new(key(), "rr"),
    });
    assert_eq!(r, Response::Ok);
    for last in [11, 12] {
        let r = d.handle(Request::AddDest {
            key: key(),
            dest: dest(last),
        });
        assert_eq!(r, Response::Ok);
    }
}

#[test]
fn list_shows_what_was_added_with_counters() {
    let mut d = Daemon::new(Mem::default(), LIMITS, None).unwrap();
    setup(&mut d);
    d.plane.stats.insert(
        0,
        Stats {
            conns: 7,
            ..Stats::default()
        },
    );
    let t = list(&mut d);
    assert_eq!(t.conn_tab_size, 4096);
    assert_eq!(t.services.len(), 1);
    let addrs: Vec<_> = t.services[0]
        .dests
        .iter()
        .map(|e| last_octet(e.dest.addr))
        .collect();
    assert_eq!(addrs, vec![12, 11], "kernel list order: newest first");
    assert_eq!(t.services[0].dests[1].stats.conns, 7);
    assert_eq!(d.plane.svcs[&0].1, vec![1, 0]);
}

#[test]
fn rates_follow_each_dest_and_restart_when_a_slot_is_reused_or_zeroed() {
    let mut d = Daemon::new(Mem::default(), LIMITS, None).unwrap();
    setup(&mut d);
    let conns = |n| Stats {
        conns: n,
        ..Stats::default()
    };
    d.estimate();
    d.plane.stats.insert(0, conns(200));
    d.estimate();
    let cps = |d: &mut Daemon<Mem>| -> Vec<(u8, u64)> {
        list(d).services[0]
            .dests
            .iter()
            .map(|e| (last_octet(e.dest.addr), e.rates.cps))
            .collect()
    };
    // 200 connections in 2 s: 25/s after one tick, as IPVS shows it.
    assert_eq!(cps(&mut d), vec![(12, 0), (11, 25)]);
    // .13 takes .11's slot, whose counters still read 400: it must
    // start from there, not inherit .11's rate and baseline.
    let r = d.handle(Request::DelDest {
        key: key(),
        addr: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 11)),
        port: 80,
    });
    assert_eq!(r, Response::Ok);
    // The deleted dest leaves the trash (unused for 120 s): its slot
    // is free again.
    assert!(d.model.collect_trash(0, |_| false).is_empty());
    assert_eq!(d.model.collect_trash(120, |_| false), vec![0]);
    let r = d.handle(Request::AddDest {
        key: key(),
        dest: dest(13),
    });
    assert_eq!(r, Response::Ok);
    assert!(last_octet(d.plane.dests[&0].addr) == 13, "slot 0 reused");
    d.plane.stats.insert(0, conns(400));
    d.estimate();
    assert_eq!(cps(&mut d), vec![(13, 0), (12, 0)]);
    d.plane.stats.insert(0, conns(600));
    d.estimate();
    assert_eq!(cps(&mut d), vec![(13, 25), (12, 0)]);
    // -Z restarts the rates.
    assert_eq!(d.handle(Request::Zero { key: Some(key()) }), Response::Ok);
    assert_eq!(cps(&mut d), vec![(13, 0), (12, 0)]);
}

#[test]
fn a_refused_batch_leaves_table_and_plane_alone() {
    let mut d = Daemon::new(Mem::default(), LIMITS, None).unwrap();
    setup(&mut d);
    let before = list(&mut d);
    let r = d.handle(Request::Batch {
        requests: vec![
            Request::Clear,
            Request::AddDest {
                key: key(),
                dest: dest(13),
            },
        ],
    });
    match r {
        Response::Error { error } => assert_eq!(error.message, "Service not defined"),
        other => panic!("{other:?}"),
    }
    assert_eq!(list(&mut d), before);
    assert_eq!(d.plane.dests.len(), 2);
}

#[test]
fn a_data_plane_failure_is_rolled_back() {
    let mut d = Daemon::new(Mem::default(), LIMITS, None).unwrap();
    setup(&mut d);
    d.plane.refuse_dest = true;
    let r = d.handle(Request::AddDest {
        key: key(),
        dest: dest(13),
    });
    assert!(
        matches!(r, Response::Error { ref error } if error.kind == ErrorKind::Internal),
        "{r:?}"
    );
    d.plane.refuse_dest = false;
    assert_eq!(list(&mut d).services[0].dests.len(), 2);
    assert_eq!(d.plane.svcs[&0].1, vec![1, 0]);
}

#[test]
fn zero_of_a_missing_service_is_refused() {
    let mut d = Daemon::new(Mem::default(), LIMITS, None).unwrap();
    let mut k = key();
    k.port = 81;
    match d.handle(Request::Zero { key: Some(k) }) {
        Response::Error { error } => assert_eq!(error.message, "No such service"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_state_file_brings_the_table_back() {
    let dir = std::env::temp_dir().join(format!("xvsd-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("s.state");
    let _ = std::fs::remove_file(&file);
    let mut d = Daemon::new(Mem::default(), LIMITS, Some(file.clone())).unwrap();
    setup(&mut d);
    let before = list(&mut d);
    let mut again = Daemon::new(Mem::default(), LIMITS, Some(file.clone())).unwrap();
    assert_eq!(list(&mut again), before);
    assert_eq!(again.plane.svcs[&0].1, vec![1, 0]);
    std::fs::write(&file, "{not json").unwrap();
    assert!(Daemon::new(Mem::default(), LIMITS, Some(file)).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_malformed_line_gets_an_invalid_error() {
    let mut d = Daemon::new(Mem::default(), LIMITS, None).unwrap();
    match crate::server::answer(&mut d, b"{\"op\":\"add_service\"}") {
        Response::Error { error } => {
            assert_eq!(error.kind, ErrorKind::Invalid);
            assert!(error.message.contains("service"), "{}", error.message);
        }
        other => panic!("{other:?}"),
    }
}

fn daemons(d: &mut Daemon<Mem>) -> Vec<SyncDaemon> {
    match d.handle(Request::ListDaemons) {
        Response::Daemons { daemons } => daemons,
        other => panic!("{other:?}"),
    }
}

fn refused(r: Response) -> ApiError {
    match r {
        Response::Error { error } => error,
        other => panic!("{other:?}"),
    }
}

fn start(state: SyncState, ifn: &str) -> Request {
    Request::StartDaemon {
        daemon: SyncDaemon::new(state, ifn),
    }
}

#[test]
fn sync_daemons_start_list_and_stop_as_ipvs_does() {
    let mut d = Daemon::new(Mem::default(), LIMITS, None).unwrap();
    assert_eq!(daemons(&mut d), vec![]);
    let mut backup = SyncDaemon::new(SyncState::Backup, "lo");
    backup.syncid = 9;
    backup.mcast_port = 9000;
    let r = d.handle(Request::StartDaemon {
        daemon: backup.clone(),
    });
    assert_eq!(r, Response::Ok);
    assert_eq!(d.handle(start(SyncState::Master, "eth0")), Response::Ok);
    // Listed as the kernel lists them: the master first, defaults in.
    assert_eq!(
        daemons(&mut d),
        vec![
            SyncDaemon::new(SyncState::Master, "eth0").with_defaults(1500),
            backup.with_defaults(65536),
        ]
    );
    assert_eq!(daemons(&mut d)[1].sync_maxlen, 65507);
    let e = refused(d.handle(start(SyncState::Master, "lo")));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::DaemonRunning, "Daemon has already run")
    );
    // The kernel looks the interface up first.
    let e = refused(d.handle(start(SyncState::Master, "nosuchdev0")));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::Internal, "No such device")
    );
    // -C leaves them running.
    assert_eq!(d.handle(Request::Clear), Response::Ok);
    assert_eq!(daemons(&mut d).len(), 2);
    assert_eq!(
        d.handle(Request::StopDaemon {
            state: SyncState::Master
        }),
        Response::Ok
    );
    let e = refused(d.handle(Request::StopDaemon {
        state: SyncState::Master,
    }));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::NoDaemon, "No daemon is running")
    );
    assert_eq!(daemons(&mut d), vec![backup.with_defaults(65536)]);
    assert_eq!(
        d.plane.sync_log,
        vec!["start backup lo", "start master eth0", "stop master"]
    );
}

#[test]
fn sync_daemon_errors_read_as_ipvsadm_prints_them() {
    let mut d = Daemon::new(Mem::default(), LIMITS, None).unwrap();
    // The plane's io::Error text, without its errno: strerror(ENODEV).
    let e = refused(d.handle(start(SyncState::Master, "nosuchdev0")));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::Internal, "No such device")
    );
    assert_eq!(daemons(&mut d), vec![]);
    // What the kernel refuses before it looks at the interface.
    let e = refused(d.handle(start(SyncState::Master, "0123456789abcdef")));
    assert_eq!(e.kind, ErrorKind::Invalid);
    let mut bad = SyncDaemon::new(SyncState::Backup, "lo");
    bad.mcast_group = Ipv4Addr::new(192, 0, 2, 1);
    let e = refused(d.handle(Request::StartDaemon { daemon: bad }));
    assert_eq!(e.kind, ErrorKind::Invalid);
    // Not in batches: they are not table changes.
    let e = refused(d.handle(Request::Batch {
        requests: vec![start(SyncState::Master, "lo")],
    }));
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(d.plane.sync_log.is_empty());
    // A plane without sync.
    d.plane.no_sync = true;
    let e = refused(d.handle(start(SyncState::Master, "lo")));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::Unsupported, SYNC_NOT_SUPPORTED)
    );
    assert_eq!(daemons(&mut d), vec![]);
}

#[test]
fn sync_daemons_survive_a_restart_through_the_state_file() {
    let dir = std::env::temp_dir().join(format!("xvsd-sync-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("s.state");
    let _ = std::fs::remove_file(&file);
    let mut d = Daemon::new(Mem::default(), LIMITS, Some(file.clone())).unwrap();
    setup(&mut d);
    let mut master = SyncDaemon::new(SyncState::Master, "eth0");
    master.sync_maxlen = 1000;
    let r = d.handle(Request::StartDaemon {
        daemon: master.clone(),
    });
    assert_eq!(r, Response::Ok);
    assert_eq!(d.handle(start(SyncState::Backup, "lo")), Response::Ok);
    let before = daemons(&mut d);
    // Saved as asked for, defaults unfilled.
    let saved: Model = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        saved.sync_daemons,
        vec![master.clone(), SyncDaemon::new(SyncState::Backup, "lo")]
    );
    let mut again = Daemon::new(Mem::default(), LIMITS, Some(file.clone())).unwrap();
    assert_eq!(daemons(&mut again), before);
    assert_eq!(
        again.plane.sync_log,
        vec!["start master eth0", "start backup lo"]
    );
    assert_eq!(again.sync_daemons(), &before[..]);
    // Stopped ones stay stopped.
    let r = again.handle(Request::StopDaemon {
        state: SyncState::Backup,
    });
    assert_eq!(r, Response::Ok);
    let mut third = Daemon::new(Mem::default(), LIMITS, Some(file.clone())).unwrap();
    assert_eq!(third.plane.sync_log, vec!["start master eth0"]);
    assert_eq!(daemons(&mut third).len(), 1);
    // One that cannot start again is forgotten; the table stays.
    let plane = Mem {
        no_sync: true,
        ..Mem::default()
    };
    let mut fourth = Daemon::new(plane, LIMITS, Some(file.clone())).unwrap();
    assert_eq!(daemons(&mut fourth), vec![]);
    assert_eq!(list(&mut fourth).services.len(), 1);
    // A state file of an older xvsd (no sync_daemons) loads.
    let mut old: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    old.as_object_mut().unwrap().remove("sync_daemons");
    std::fs::write(&file, old.to_string()).unwrap();
    let mut fifth = Daemon::new(Mem::default(), LIMITS, Some(file)).unwrap();
    assert_eq!(daemons(&mut fifth), vec![]);
    assert_eq!(list(&mut fifth).services.len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fwmark_service_and_mark_rules_through_the_api() {
    use xvs_core::fwmark::MarkRule;
    let dir = std::env::temp_dir().join(format!("xvsd-fwm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let _ = std::fs::remove_file(&state);
    let mut d = Daemon::new(Mem::default(), LIMITS, Some(state.clone())).unwrap();
    let f1 = ServiceKey::fwmark(1);
    let r = d.handle(Request::AddService {
        service: Service::new(f1, "rr"),
    });
    assert_eq!(r, Response::Ok);
    let mut rs = Dest::new(Ipv4Addr::new(192, 168, 10, 1), 0);
    rs.fwd = FwdMethod::Masq;
    assert_eq!(
        d.handle(Request::AddDest { key: f1, dest: rs }),
        Response::Ok
    );
    assert_eq!(d.handle(Request::Zero { key: Some(f1) }), Response::Ok);
    let t = list(&mut d);
    assert_eq!(t.services[0].service.key, f1);
    assert_eq!(t.services[0].dests[0].dest.port, 0);

    let rule = MarkRule {
        mark: 1,
        proto: Protocol::Udp,
        addr: Ipv4Addr::new(207, 175, 44, 110),
        prefix_len: 31,
        ports: vec![],
    };
    assert_eq!(
        d.handle(Request::AddMark { rule: rule.clone() }),
        Response::Ok
    );
    assert_eq!(d.plane.mark_rules, std::slice::from_ref(&rule));
    assert_eq!(
        d.handle(Request::ListMarks),
        Response::Marks {
            rules: vec![rule.clone()]
        }
    );
    assert_eq!(d.handle(Request::Clear), Response::Ok);
    assert_eq!(
        d.plane.mark_rules,
        std::slice::from_ref(&rule),
        "-C keeps the rules"
    );
    // The rules survive a restart through the state file.
    drop(d);
    let mut d = Daemon::new(Mem::default(), LIMITS, Some(state)).unwrap();
    assert_eq!(d.plane.mark_rules, std::slice::from_ref(&rule));
    assert_eq!(d.handle(Request::ClearMarks), Response::Ok);
    assert!(d.plane.mark_rules.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

fn last_octet(a: std::net::IpAddr) -> u8 {
    match a {
        std::net::IpAddr::V4(a) => a.octets()[3],
        std::net::IpAddr::V6(a) => a.octets()[15],
    }
}
