//! The table's unit tests: validation as ipvsadm reports it, ids, and
//! what reaches the backend in which order.

use super::*;
use crate::plane::{Backend, PlaneError};
use std::net::IpAddr;
use std::net::Ipv4Addr;
use xvs_core::api::{ErrorKind, Request};
use xvs_core::model::{svc_flags, Protocol};
use xvs_core::model::{Dest, FwdMethod, Service, ServiceKey, TunType};
use xvs_core::sched;
use xvs_dataplane::SvcSched;

const LIMITS: Limits = Limits {
    max_services: 4,
    max_dests: 8,
};

#[derive(Default)]
struct Fake {
    log: Vec<String>,
    fail_on: Option<&'static str>,
}

impl Fake {
    fn rec(&mut self, s: String) -> Result<(), PlaneError> {
        if let Some(f) = self.fail_on {
            if s.starts_with(f) {
                return Err(PlaneError::Other(format!("injected failure at {s}")));
            }
        }
        self.log.push(s);
        Ok(())
    }
}

impl Backend for Fake {
    fn upsert_service(
        &mut self,
        id: u32,
        svc: &Service,
        sched: &SvcSched,
    ) -> Result<(), PlaneError> {
        self.rec(format!("svc {id} {} {:?}", svc.scheduler, sched.table))
    }
    fn remove_service(&mut self, id: u32, _: &ServiceKey) -> Result<(), PlaneError> {
        self.rec(format!("rmsvc {id}"))
    }
    fn upsert_dest(&mut self, id: u32, svc: u32, d: &Dest) -> Result<(), PlaneError> {
        self.rec(format!(
            "dest {id} svc={svc} {}:{} w={}",
            d.addr, d.port, d.weight
        ))
    }
    fn remove_dest(&mut self, id: u32) -> Result<(), PlaneError> {
        self.rec(format!("rmdest {id}"))
    }
    fn set_mark_rules(&mut self, rules: &[xvs_core::fwmark::MarkRule]) -> Result<(), PlaneError> {
        let r: Vec<String> = rules.iter().map(|r| format!("{} {r}", r.mark)).collect();
        self.rec(format!("marks [{}]", r.join(", ")))
    }
    fn trash_dest(&mut self, id: u32) -> Result<(), PlaneError> {
        self.rec(format!("trash {id}"))
    }
    fn zero_svc(&mut self, id: u32) -> Result<(), PlaneError> {
        self.rec(format!("zsvc {id}"))
    }
    fn zero_dest(&mut self, id: u32) -> Result<(), PlaneError> {
        self.rec(format!("zdest {id}"))
    }
}

fn key(port: u16) -> ServiceKey {
    ServiceKey {
        fwmark: 0,
        proto: Protocol::Tcp,
        addr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)),
        port,
    }
}

fn masq(last: u8, port: u16, weight: u32) -> Dest {
    let mut d = Dest::new(Ipv4Addr::new(203, 0, 113, last), port);
    d.fwd = FwdMethod::Masq;
    d.weight = weight;
    d
}

fn add_svc(port: u16, sched: &str) -> Request {
    Request::AddService {
        service: Service::new(key(port), sched),
    }
}

fn add_dest(port: u16, last: u8, w: u32) -> Request {
    Request::AddDest {
        key: key(port),
        dest: masq(last, 80, w),
    }
}

#[test]
fn ipvsadm_errors_for_common_mistakes() {
    let mut m = Model::default();
    let e = m.apply(&add_dest(80, 11, 1), LIMITS).unwrap_err();
    assert_eq!(e.to_string(), "Service not defined");
    m.apply(&add_svc(80, "rr"), LIMITS).unwrap();
    assert_eq!(
        m.apply(&add_svc(80, "rr"), LIMITS).unwrap_err().to_string(),
        "Service already exists"
    );
    m.apply(&add_dest(80, 11, 1), LIMITS).unwrap();
    assert_eq!(
        m.apply(&add_dest(80, 11, 1), LIMITS)
            .unwrap_err()
            .to_string(),
        "Destination already exists"
    );
    let del = Request::DelDest {
        key: key(80),
        addr: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 99)),
        port: 80,
    };
    assert_eq!(
        m.apply(&del, LIMITS).unwrap_err().to_string(),
        "No such destination"
    );
    let e = m.apply(&add_svc(81, "nosuch"), LIMITS).unwrap_err();
    assert_eq!(e.kind, ErrorKind::SchedulerNotFound);
    let e = m
        .apply(&Request::DelService { key: key(81) }, LIMITS)
        .unwrap_err();
    assert_eq!(e.to_string(), "No such service");
}

#[test]
fn later_features_are_refused_not_ignored() {
    let mut m = Model::default();
    const BIG: Limits = Limits {
        max_services: 32,
        max_dests: 8,
    };
    // Every scheduler, persistence and -o are accepted now.
    for (port, s) in sched::SCHEDULERS.iter().enumerate() {
        m.apply(&add_svc(1000 + port as u16, s), BIG).unwrap();
    }
    let mut p = Service::new(key(0), "rr");
    let e = m
        .apply(&Request::AddService { service: p.clone() }, BIG)
        .unwrap_err();
    assert_eq!(e.message, "Zero port specified for non-persistent service");
    p.flags |= svc_flags::PERSISTENT | svc_flags::ONEPACKET;
    p.timeout = 360;
    m.apply(&Request::AddService { service: p.clone() }, BIG)
        .unwrap();
    // --pe: sip is known; another name (case counts) is the kernel's ENOENT.
    let mut pe = Service::new(key(81), "rr");
    pe.pe_name = Some("sip".into());
    m.apply(
        &Request::AddService {
            service: pe.clone(),
        },
        BIG,
    )
    .unwrap();
    pe.key = key(82);
    pe.pe_name = Some("SIP".into());
    let e = m
        .apply(&Request::AddService { service: pe }, BIG)
        .unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (
            ErrorKind::SchedulerNotFound,
            "Scheduler or persistence engine not found"
        )
    );
    let mut t = masq(11, 80, 1);
    t.u_threshold = 5;
    t.l_threshold = 6;
    let e = m
        .apply(
            &Request::AddDest {
                key: key(1000),
                dest: t.clone(),
            },
            BIG,
        )
        .unwrap_err();
    // the kernel's ERANGE, as ipvsadm prints it
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::OutOfRange, "Numerical result out of range")
    );
    t.l_threshold = 2;
    m.apply(
        &Request::AddDest {
            key: key(1000),
            dest: t,
        },
        BIG,
    )
    .unwrap();
    let mut m = Model::default();
    m.apply(&add_svc(80, "rr"), LIMITS).unwrap();
    let mut d = masq(11, 80, 1);
    d.fwd = FwdMethod::Tunnel;
    d.tun_type = TunType::Gre;
    let add = |dest: Dest| Request::AddDest { key: key(80), dest };
    let e = m.apply(&add(d.clone()), LIMITS).unwrap_err();
    assert!(e.message.contains("gre"), "{}", e.message);
    d.tun_type = TunType::Gue;
    let e = m.apply(&add(d), LIMITS).unwrap_err();
    assert!(e.message.contains("--tun-port"), "{}", e.message);
}

#[test]
fn dr_and_tun_dests_take_the_service_port() {
    let mut m = Model::default();
    m.apply(&add_svc(80, "rr"), LIMITS).unwrap();
    for (last, fwd) in [(11, FwdMethod::Route), (12, FwdMethod::Tunnel)] {
        let mut d = masq(last, 8080, 1);
        d.fwd = fwd;
        m.apply(
            &Request::AddDest {
                key: key(80),
                dest: d,
            },
            LIMITS,
        )
        .unwrap();
    }
    let slot = m.service(&key(80)).unwrap();
    let ports: Vec<u16> = slot.dests.iter().map(|d| d.dest.port).collect();
    assert_eq!(ports, vec![80, 80]);
}

#[test]
fn failed_batch_changes_nothing() {
    let mut m = Model::default();
    m.apply(&add_svc(80, "rr"), LIMITS).unwrap();
    let before = m.clone();
    let batch = Request::Batch {
        requests: vec![
            add_dest(80, 11, 1),
            add_dest(80, 12, 1),
            add_dest(80, 11, 1),
        ],
    };
    let mut copy = m.clone();
    assert!(copy.apply(&batch, LIMITS).is_err());
    assert_eq!(m, before);
}

#[test]
fn ids_are_bounded_and_reused() {
    let mut m = Model::default();
    for p in 1..=4 {
        m.apply(&add_svc(p, "rr"), LIMITS).unwrap();
    }
    let e = m.apply(&add_svc(5, "rr"), LIMITS).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Internal);
    m.apply(&Request::DelService { key: key(2) }, LIMITS)
        .unwrap();
    m.apply(&add_svc(5, "rr"), LIMITS).unwrap();
    assert_eq!(m.service(&key(5)).unwrap().id, 1);
}

#[test]
fn sync_writes_dests_before_rings_and_removes_after() {
    let mut be = Fake::default();
    let old = Model::default();
    let mut new = old.clone();
    new.apply(&add_svc(80, "wrr"), LIMITS).unwrap();
    new.apply(&add_dest(80, 11, 3), LIMITS).unwrap();
    new.apply(&add_dest(80, 12, 1), LIMITS).unwrap();
    sync(&old, &new, &mut be).unwrap();
    assert_eq!(
        be.log,
        vec![
            "zdest 0",
            "dest 0 svc=0 203.0.113.11:80 w=3",
            "zdest 1",
            "dest 1 svc=0 203.0.113.12:80 w=1",
            "zsvc 0",
            // List order is newest first ([.12 w1, .11 w3]); the
            // kernel's wrr picks .11 at cw=3 and cw=2, then both.
            "svc 0 wrr [0, 0, 1, 0]",
        ]
    );
    be.log.clear();
    let old = new.clone();
    new.apply(
        &Request::DelDest {
            key: key(80),
            addr: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 11)),
            port: 80,
        },
        LIMITS,
    )
    .unwrap();
    sync(&old, &new, &mut be).unwrap();
    // IPVS keeps a deleted dest in its trash with its connections.
    assert_eq!(be.log, vec!["svc 0 wrr [1]", "trash 0"]);
}

#[test]
fn weight_zero_leaves_the_ring_but_keeps_the_dest() {
    let mut m = Model::default();
    m.apply(&add_svc(80, "rr"), LIMITS).unwrap();
    m.apply(&add_dest(80, 11, 1), LIMITS).unwrap();
    m.apply(&add_dest(80, 12, 1), LIMITS).unwrap();
    let edit = Request::EditDest {
        key: key(80),
        dest: masq(11, 80, 0),
    };
    m.apply(&edit, LIMITS).unwrap();
    let slot = m.service(&key(80)).unwrap();
    assert_eq!(slot.dests.len(), 2);
    assert_eq!(ring(slot), vec![1]);
}

#[test]
fn quiesced_dests_keep_their_mh_slots_and_tables_follow_the_scheduler() {
    let mut m = Model::default();
    m.apply(&add_svc(80, "mh"), LIMITS).unwrap();
    m.apply(&add_dest(80, 11, 1), LIMITS).unwrap();
    m.apply(&add_dest(80, 12, 1), LIMITS).unwrap();
    let before = sched_of(m.service(&key(80)).unwrap());
    assert_eq!(before.table.len(), 4093);
    assert_eq!(before.dests, vec![1, 0]);
    let edit = Request::EditDest {
        key: key(80),
        dest: masq(11, 80, 0),
    };
    m.apply(&edit, LIMITS).unwrap();
    let slot = m.service(&key(80)).unwrap();
    assert_eq!(slot.dests[1].last_weight, Some(1));
    // weight 0 with last_weight 1: same table, the dest merely unavailable
    let after = sched_of(slot);
    assert_eq!((&after.dests, &after.table), (&before.dests, &before.table));
    // -E -s sh: a 256-bucket table; -s wlc: no table, the dest list
    let mut s = Service::new(key(80), "sh");
    m.apply(&Request::EditService { service: s.clone() }, LIMITS)
        .unwrap();
    assert_eq!(sched_of(m.service(&key(80)).unwrap()).table.len(), 256);
    s.scheduler = "wlc".into();
    m.apply(&Request::EditService { service: s }, LIMITS)
        .unwrap();
    let w = sched_of(m.service(&key(80)).unwrap());
    assert!(w.table.is_empty());
    assert_eq!(w.dests, vec![1, 0]);
}

#[test]
fn a_deleted_dest_waits_in_the_trash_and_comes_back_with_its_slot() {
    let mut be = Fake::default();
    let mut old = Model::default();
    old.apply(&add_svc(80, "rr"), LIMITS).unwrap();
    old.apply(&add_dest(80, 11, 1), LIMITS).unwrap();
    let mut new = old.clone();
    let del = Request::DelDest {
        key: key(80),
        addr: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 11)),
        port: 80,
    };
    let batch = Request::Batch {
        requests: vec![del.clone(), add_dest(80, 12, 1)],
    };
    new.apply(&batch, LIMITS).unwrap();
    sync(&old, &new, &mut be).unwrap();
    // .11 keeps slot 0 in the trash; .12 gets a slot of its own.
    assert_eq!(
        be.log,
        vec![
            "zdest 1",
            "dest 1 svc=0 203.0.113.12:80 w=1",
            "svc 0 rr [1]",
            "trash 0"
        ]
    );
    // Added again: back in slot 0, counters kept (same service).
    be.log.clear();
    let old = new.clone();
    new.apply(&add_dest(80, 11, 2), LIMITS).unwrap();
    sync(&old, &new, &mut be).unwrap();
    assert_eq!(
        be.log,
        vec!["dest 0 svc=0 203.0.113.11:80 w=2", "svc 0 rr [0, 1]"]
    );
    // Deleted with its service, then a new service of the same key:
    // the slot comes back, its counters zeroed (another object).
    be.log.clear();
    let old = new.clone();
    new.apply(&Request::DelService { key: key(80) }, LIMITS)
        .unwrap();
    new.apply(&add_svc(80, "rr"), LIMITS).unwrap();
    new.apply(&add_dest(80, 11, 1), LIMITS).unwrap();
    sync(&old, &new, &mut be).unwrap();
    assert!(be.log.contains(&"zdest 0".to_string()), "{:?}", be.log);
    assert!(be.log.contains(&"trash 1".to_string()), "{:?}", be.log);
    // Unused for 120 s, it leaves the trash and its slot is free.
    assert_eq!(new.trash.len(), 1);
    assert!(new.collect_trash(10, |_| false).is_empty());
    assert!(
        new.collect_trash(129, |id| id == 1).is_empty(),
        "in use again"
    );
    assert!(
        new.collect_trash(130, |_| false).is_empty(),
        "idle from 130"
    );
    assert_eq!(new.collect_trash(250, |_| false), vec![1]);
    assert!(new.trash.is_empty());
}

#[test]
fn backend_failure_is_reported() {
    let mut be = Fake {
        fail_on: Some("svc"),
        ..Fake::default()
    };
    let old = Model::default();
    let mut new = old.clone();
    new.apply(&add_svc(80, "rr"), LIMITS).unwrap();
    assert!(sync(&old, &new, &mut be).is_err());
}

#[test]
fn sctp_services_are_their_own_services() {
    let mut m = Model::default();
    let sctp = ServiceKey {
        fwmark: 0,
        proto: Protocol::Sctp,
        ..key(80)
    };
    m.apply(&add_svc(80, "rr"), LIMITS).unwrap();
    // Same address and port, another protocol: another service, as in IPVS.
    m.apply(
        &Request::AddService {
            service: Service::new(sctp, "wrr"),
        },
        LIMITS,
    )
    .unwrap();
    m.apply(
        &Request::AddDest {
            key: sctp,
            dest: masq(12, 5060, 2),
        },
        LIMITS,
    )
    .unwrap();
    assert_eq!(
        m.apply(
            &Request::AddService {
                service: Service::new(sctp, "rr"),
            },
            LIMITS
        )
        .unwrap_err()
        .to_string(),
        "Service already exists"
    );
    // Both reach the data plane, each in a slot of its own.
    let mut be = Fake::default();
    sync(&Model::default(), &m, &mut be).unwrap();
    assert_eq!(
        be.log,
        vec![
            "zdest 0",
            "dest 0 svc=1 203.0.113.12:5060 w=2",
            "zsvc 0",
            "svc 0 rr []",
            "zsvc 1",
            "svc 1 wrr [0]",
        ]
    );
    assert_eq!(m.service(&sctp).unwrap().id, 1);
    m.apply(&Request::DelService { key: key(80) }, LIMITS)
        .unwrap();
    assert_eq!(
        m.apply(&Request::DelService { key: key(80) }, LIMITS)
            .unwrap_err()
            .to_string(),
        "No such service"
    );
    m.apply(&Request::DelService { key: sctp }, LIMITS).unwrap();
}

fn mark_rule(mark: u32, a: [u8; 4], len: u8, port: Option<u16>) -> xvs_core::fwmark::MarkRule {
    xvs_core::fwmark::MarkRule {
        mark,
        proto: Protocol::Tcp,
        addr: Ipv4Addr::from(a),
        prefix_len: len,
        ports: port
            .map(|p| xvs_core::fwmark::PortRange { first: p, last: p })
            .into_iter()
            .collect(),
    }
}

#[test]
fn fwmark_services_and_their_dests() {
    let f1 = ServiceKey::fwmark(1);
    let mut m = Model::default();
    // No zero-port or address checks for a fwmark service.
    m.apply(
        &Request::AddService {
            service: Service::new(f1, "rr"),
        },
        LIMITS,
    )
    .unwrap();
    let mut dr = Dest::new(Ipv4Addr::new(203, 0, 113, 11), 80);
    dr.fwd = FwdMethod::Route;
    m.apply(&Request::AddDest { key: f1, dest: dr }, LIMITS)
        .unwrap();
    // DR keeps its port on a fwmark service (ipvsadm and IPVS do not
    // force one); RS:0 and RS:80 are two dests.
    let mut dr0 = Dest::new(Ipv4Addr::new(203, 0, 113, 11), 0);
    dr0.fwd = FwdMethod::Route;
    m.apply(&Request::AddDest { key: f1, dest: dr0 }, LIMITS)
        .unwrap();
    let ports: Vec<u16> = m.services[&f1].dests.iter().map(|d| d.dest.port).collect();
    assert_eq!(ports, [0, 80]);
    m.apply(&Request::Zero { key: Some(f1) }, LIMITS).unwrap();
    assert_eq!(
        m.apply(
            &Request::Zero {
                key: Some(ServiceKey::fwmark(2))
            },
            LIMITS
        )
        .unwrap_err()
        .kind,
        ErrorKind::NoSuchService
    );
    m.apply(&Request::DelService { key: f1 }, LIMITS).unwrap();
    assert!(m.services.is_empty());
}

#[test]
fn mark_rules_are_checked_kept_by_clear_and_reach_the_backend() {
    let r1 = mark_rule(1, [207, 175, 44, 110], 31, None);
    let r2 = mark_rule(2, [10, 1, 0, 0], 24, Some(80));
    let mut m = Model::default();
    m.apply(&Request::AddMark { rule: r1.clone() }, LIMITS)
        .unwrap();
    m.apply(&Request::AddMark { rule: r2.clone() }, LIMITS)
        .unwrap();
    // The same rule again changes nothing.
    m.apply(&Request::AddMark { rule: r1.clone() }, LIMITS)
        .unwrap();
    assert_eq!(m.mark_rules, [r1.clone(), r2.clone()]);

    // Refused rules leave the state as it was.
    let before = m.clone();
    let conflict = mark_rule(3, [10, 1, 0, 0], 24, Some(80));
    let e = m
        .apply(&Request::AddMark { rule: conflict }, LIMITS)
        .unwrap_err();
    assert_eq!(
        e.message,
        "mark rule tcp 10.1.0.0/24:80 conflicts with mark 2 given for the same addresses and port"
    );
    let host_bits = mark_rule(3, [10, 0, 0, 1], 24, None);
    let e = m
        .apply(&Request::AddMark { rule: host_bits }, LIMITS)
        .unwrap_err();
    assert_eq!(
        e.message,
        "invalid mark address `10.0.0.1/24' (host bits set)"
    );
    let e = m
        .apply(
            &Request::DelMark {
                rule: mark_rule(9, [10, 9, 0, 0], 16, None),
            },
            LIMITS,
        )
        .unwrap_err();
    assert_eq!(e.message, "No such mark rule");
    // A batch (an address range) is all or nothing.
    let mut c = m.clone();
    let batch = Request::Batch {
        requests: vec![
            Request::AddMark {
                rule: mark_rule(4, [10, 4, 0, 0], 16, None),
            },
            Request::AddMark {
                rule: mark_rule(5, [10, 1, 0, 0], 24, Some(80)),
            },
        ],
    };
    assert!(c.apply(&batch, LIMITS).is_err());
    assert_eq!(m, before);

    // -C keeps the rules; --clear-marks and --del-mark remove them.
    m.apply(&Request::Clear, LIMITS).unwrap();
    assert_eq!(m.mark_rules.len(), 2);
    let old = m.clone();
    m.apply(&Request::DelMark { rule: r1 }, LIMITS).unwrap();
    let mut be = Fake::default();
    sync(&old, &m, &mut be).unwrap();
    assert_eq!(be.log, ["marks [2 tcp 10.1.0.0/24:80]"]);
    let old = m.clone();
    m.apply(&Request::ClearMarks, LIMITS).unwrap();
    let mut be = Fake::default();
    sync(&old, &m, &mut be).unwrap();
    assert_eq!(be.log, ["marks []"]);
    // Unchanged rules are not pushed again.
    let mut be = Fake::default();
    sync(&m, &m.clone(), &mut be).unwrap();
    assert!(be.log.is_empty());
}

#[test]
fn deleting_a_configs_mark_rule_ends_its_ownership() {
    let r = xvs_core::fwmark::MarkRule {
        mark: 1,
        proto: xvs_core::model::Protocol::Tcp,
        addr: "10.1.0.0".parse().unwrap(),
        prefix_len: 24,
        ports: vec![],
    };
    let mut m = Model::default();
    m.mark_rules.push(r.clone());
    m.owned_marks.push(r.clone());
    m.apply(&Request::DelMark { rule: r.clone() }, LIMITS)
        .unwrap();
    assert!(m.owned_marks.is_empty(), "an xvsadm re-add is xvsadm's");
    m.mark_rules.push(r.clone());
    m.owned_marks.push(r);
    m.apply(&Request::ClearMarks, LIMITS).unwrap();
    assert!(m.owned_marks.is_empty() && m.mark_rules.is_empty());
}

#[test]
fn ipv6_services_and_dests_are_refused_until_the_data_plane_forwards_them() {
    let mut m = Model::default();
    m.apply(&add_svc(80, "rr"), LIMITS).unwrap();
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    let before = m.clone();
    for r in [
        Request::AddService {
            service: Service::new(ServiceKey::new(Protocol::Tcp, v6, 80), "rr"),
        },
        Request::AddService {
            service: Service::new(ServiceKey::fwmark6(7), "rr"),
        },
        Request::AddDest {
            key: key(80),
            dest: Dest::new(v6, 80),
        },
    ] {
        let e = m.apply(&r, LIMITS).unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::Unsupported, "IPv6 is not supported by xvs yet"),
            "{r:?}"
        );
    }
    assert_eq!(m, before, "a refused request changes nothing");
}
