//! What the table should hold for a config-owned virtual server, given the
//! health of its real servers: keepalived's `check/ipwrapper.c` rules
//! (`perform_svr_state`, `update_quorum_state`, `perform_quorum_state`),
//! and the requests that bring the table there.

use std::net::IpAddr;
#[cfg(test)]
use std::net::Ipv4Addr;

use xvs_core::api::Request;
use xvs_core::model::{Dest, ServiceKey};

use crate::config::ManagedVs;
use crate::table::Model;

/// Health of one real server as the daemon uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RsHealth {
    /// All its checkers are up.
    pub up: bool,
    /// `misc_dynamic` weight, else the configured one.
    pub weight: Option<u32>,
}

/// A change of quorum state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuorumEvent {
    /// Nothing changed.
    None,
    /// `Gained quorum`: quorum_up runs, the sorry server leaves.
    Gained,
    /// `Lost quorum`: quorum_down runs, the sorry server takes over.
    Lost,
    /// A new virtual server starts without quorum and has a sorry server
    /// (keepalived's `init` case): quorum_down runs, the sorry server is in.
    StartDown,
}

/// The evaluation of one virtual server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eval {
    /// Quorum state after this evaluation.
    pub quorum_up: bool,
    /// What changed.
    pub event: QuorumEvent,
    /// Sum of the weights of the alive real servers.
    pub weight_sum: u64,
    /// The threshold compared against (`quorum ± hysteresis`).
    pub threshold: i64,
    /// The sorry server is in use.
    pub sorry_active: bool,
    /// The dests the table should hold, in configuration order (real
    /// servers, then the sorry server).
    pub dests: Vec<Dest>,
}

/// Evaluates `vs` with `health[i]` the health of `vs.rs[i]`. `prev` is the
/// quorum state so far, `None` for a virtual server seen for the first time.
pub fn evaluate(vs: &ManagedVs, health: &[RsHealth], prev: Option<bool>) -> Eval {
    let weight_of = |i: usize| -> u32 { health[i].weight.unwrap_or(vs.rs[i].dest.weight) };
    let weight_sum: u64 = (0..vs.rs.len())
        .filter(|&i| health[i].up)
        .map(|i| u64::from(weight_of(i)))
        .sum();
    let sum = weight_sum as i64;
    let quorum = i64::from(vs.quorum);
    let hyst = i64::from(vs.hysteresis);
    let (quorum_up, event, threshold) = match prev {
        None => {
            // set_quorum_states, then update_quorum_state(init)
            let threshold = quorum + hyst;
            let up = sum >= threshold;
            let ev = if !up && vs.sorry.is_some() {
                QuorumEvent::StartDown
            } else {
                QuorumEvent::None
            };
            (up, ev, threshold)
        }
        Some(up) => {
            let threshold = if up { quorum - hyst } else { quorum + hyst };
            if !up && sum >= threshold {
                (true, QuorumEvent::Gained, threshold)
            } else if up && (sum == 0 || sum < threshold) {
                (false, QuorumEvent::Lost, threshold)
            } else {
                (up, QuorumEvent::None, threshold)
            }
        }
    };
    let sorry_active = !quorum_up && vs.sorry.is_some();
    let mut dests: Vec<Dest> = Vec::new();
    for (i, rs) in vs.rs.iter().enumerate() {
        let mut d = rs.dest.clone();
        if health[i].up && !sorry_active {
            d.weight = weight_of(i);
            dests.push(d);
        } else if rs.inhibit {
            d.weight = 0;
            dests.push(d);
        }
    }
    if let Some(s) = &vs.sorry {
        let pos = dests
            .iter()
            .position(|d| d.addr == s.dest.addr && d.port == s.dest.port);
        if sorry_active {
            match pos {
                Some(p) => dests[p] = s.dest.clone(),
                None => dests.push(s.dest.clone()),
            }
        } else if s.inhibit && pos.is_none() {
            let mut d = s.dest.clone();
            d.weight = 0;
            dests.push(d);
        }
    }
    Eval {
        quorum_up,
        event,
        weight_sum,
        threshold,
        sorry_active,
        dests,
    }
}

fn find(list: &[Dest], addr: IpAddr, port: u16) -> Option<&Dest> {
    list.iter().find(|d| d.addr == addr && d.port == port)
}

/// Requests that make the table's service `key` exactly `service` with
/// exactly `dests` (a reload: the configuration wins). Nothing for what
/// already matches, so unchanged dests keep connections and counters.
pub fn full(model: &Model, service: &xvs_core::model::Service, dests: &[Dest]) -> Vec<Request> {
    let key = service.key;
    let mut out = Vec::new();
    let Some(slot) = model.service(&key) else {
        out.push(Request::AddService {
            service: service.clone(),
        });
        for d in dests {
            out.push(Request::AddDest {
                key,
                dest: d.clone(),
            });
        }
        return out;
    };
    if slot.service != *service {
        out.push(Request::EditService {
            service: service.clone(),
        });
    }
    for d in &slot.dests {
        if find(dests, d.dest.addr, d.dest.port).is_none() {
            out.push(Request::DelDest {
                key,
                addr: d.dest.addr,
                port: d.dest.port,
            });
        }
    }
    for d in dests {
        match slot
            .dests
            .iter()
            .find(|s| s.dest.addr == d.addr && s.dest.port == d.port)
        {
            Some(s) if s.dest == *d => {}
            Some(_) => out.push(Request::EditDest {
                key,
                dest: d.clone(),
            }),
            None => out.push(Request::AddDest {
                key,
                dest: d.clone(),
            }),
        }
    }
    out
}

/// Requests for a health change: only the dests whose wanted state moved
/// from `before` to `after` are touched, relative to what the table holds
/// now (so a runtime `xvsadm` change to another dest of the service stays).
pub fn delta(model: &Model, key: ServiceKey, before: &[Dest], after: &[Dest]) -> Vec<Request> {
    let Some(slot) = model.service(&key) else {
        return Vec::new();
    };
    let in_table = |a: IpAddr, p: u16| {
        slot.dests
            .iter()
            .find(|s| s.dest.addr == a && s.dest.port == p)
            .map(|s| &s.dest)
    };
    let mut out = Vec::new();
    for b in before {
        if find(after, b.addr, b.port).is_none() && in_table(b.addr, b.port).is_some() {
            out.push(Request::DelDest {
                key,
                addr: b.addr,
                port: b.port,
            });
        }
    }
    for a in after {
        if find(before, a.addr, a.port) == Some(a) {
            continue;
        }
        match in_table(a.addr, a.port) {
            Some(t) if t == a => {}
            Some(_) => out.push(Request::EditDest {
                key,
                dest: a.clone(),
            }),
            None => out.push(Request::AddDest {
                key,
                dest: a.clone(),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_octet(a: std::net::IpAddr) -> u8 {
        match a {
            std::net::IpAddr::V4(a) => a.octets()[3],
            std::net::IpAddr::V6(a) => a.octets()[15],
        }
    }
    use crate::config::{ManagedRs, ManagedSorry};
    use xvs_core::model::{FwdMethod, Protocol, Service};
    use xvs_keepalived::Location;

    fn dest(last: u8, w: u32) -> Dest {
        let mut d = Dest::new(Ipv4Addr::new(10, 0, 1, last), 80);
        d.fwd = FwdMethod::Masq;
        d.weight = w;
        d
    }

    fn vs(weights: &[u32], quorum: u32, hyst: u32, sorry: bool, inhibit: bool) -> ManagedVs {
        ManagedVs {
            location: Location::new("t", 1),
            group: None,
            service: Service::new(
                ServiceKey {
                    fwmark: 0,
                    proto: Protocol::Tcp,
                    addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                    port: 80,
                },
                "wrr",
            ),
            quorum,
            hysteresis: hyst,
            quorum_up: None,
            quorum_down: None,
            omega: false,
            sorry: sorry.then(|| ManagedSorry {
                location: Location::new("t", 2),
                dest: dest(99, 1),
                inhibit: false,
            }),
            rs: weights
                .iter()
                .enumerate()
                .map(|(i, w)| ManagedRs {
                    location: Location::new("t", 3 + i as u32),
                    dest: dest(i as u8 + 1, *w),
                    inhibit,
                    notify_up: None,
                    notify_down: None,
                    checkers: vec![],
                })
                .collect(),
        }
    }

    fn h(up: &[bool]) -> Vec<RsHealth> {
        up.iter()
            .map(|&u| RsHealth {
                up: u,
                weight: None,
            })
            .collect()
    }

    fn names(e: &Eval) -> Vec<(u8, u32)> {
        e.dests
            .iter()
            .map(|d| (last_octet(d.addr), d.weight))
            .collect()
    }

    #[test]
    fn down_servers_leave_or_drain() {
        let v = vs(&[1, 2, 3], 1, 0, false, false);
        let e = evaluate(&v, &h(&[true, false, true]), Some(true));
        assert_eq!(names(&e), [(1, 1), (3, 3)]);
        assert_eq!(e.weight_sum, 4);
        let v = vs(&[1, 2, 3], 1, 0, false, true);
        let e = evaluate(&v, &h(&[true, false, true]), Some(true));
        assert_eq!(names(&e), [(1, 1), (2, 0), (3, 3)]);
    }

    #[test]
    fn dynamic_weights_count() {
        let v = vs(&[1, 1], 1, 0, false, false);
        let mut hs = h(&[true, true]);
        hs[1].weight = Some(7);
        let e = evaluate(&v, &hs, Some(true));
        assert_eq!(names(&e), [(1, 1), (2, 7)]);
        assert_eq!(e.weight_sum, 8);
    }

    #[test]
    fn sorry_server_takes_over_when_none_alive_and_leaves_again() {
        let v = vs(&[1, 1], 1, 0, true, false);
        let e = evaluate(&v, &h(&[true, true]), None);
        assert_eq!((e.quorum_up, e.event), (true, QuorumEvent::None));
        assert_eq!(names(&e), [(1, 1), (2, 1)]);
        let e = evaluate(&v, &h(&[false, true]), Some(true));
        assert_eq!(e.event, QuorumEvent::None);
        let e = evaluate(&v, &h(&[false, false]), Some(true));
        assert_eq!((e.quorum_up, e.event), (false, QuorumEvent::Lost));
        assert_eq!(names(&e), [(99, 1)]);
        assert!(e.sorry_active);
        let e = evaluate(&v, &h(&[false, true]), Some(false));
        assert_eq!((e.quorum_up, e.event), (true, QuorumEvent::Gained));
        assert_eq!(names(&e), [(2, 1)]);
    }

    #[test]
    fn quorum_with_hysteresis_as_keepalived() {
        // quorum 4, hysteresis 1: lost below 3, regained at 5.
        let v = vs(&[1, 1, 1, 1, 1], 4, 1, true, true);
        let e = evaluate(&v, &h(&[true, true, true, false, false]), Some(true));
        assert_eq!((e.quorum_up, e.threshold), (true, 3));
        let e = evaluate(&v, &h(&[true, true, false, false, false]), Some(true));
        assert_eq!(e.event, QuorumEvent::Lost);
        // Lost with a sorry server: alive inhibited servers drain at weight 0.
        assert_eq!(names(&e), [(1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (99, 1)]);
        let e = evaluate(&v, &h(&[true, true, true, true, false]), Some(false));
        assert_eq!((e.quorum_up, e.threshold), (false, 5));
        let e = evaluate(&v, &h(&[true; 5]), Some(false));
        assert_eq!(e.event, QuorumEvent::Gained);
        assert_eq!(names(&e), [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)]);
        // A new virtual server needs quorum + hysteresis.
        let e = evaluate(&v, &h(&[true, true, true, true, false]), None);
        assert_eq!((e.quorum_up, e.event), (false, QuorumEvent::StartDown));
    }

    #[test]
    fn sorry_inhibit_keeps_it_at_weight_zero() {
        let mut v = vs(&[1], 1, 0, true, false);
        v.sorry.as_mut().unwrap().inhibit = true;
        let e = evaluate(&v, &h(&[true]), Some(true));
        assert_eq!(names(&e), [(1, 1), (99, 0)]);
        let e = evaluate(&v, &h(&[false]), Some(true));
        assert_eq!(names(&e), [(99, 1)]);
    }

    #[test]
    fn delta_touches_only_what_moved() {
        let v = vs(&[1, 1, 1], 1, 0, false, false);
        let mut m = Model::default();
        let lim = crate::table::Limits {
            max_services: 8,
            max_dests: 8,
        };
        let before = evaluate(&v, &h(&[true, true, true]), Some(true));
        for r in full(&m.clone(), &v.service, &before.dests) {
            m.apply(&r, lim).unwrap();
        }
        // A runtime edit of rs3 stays through rs1's failure.
        m.apply(
            &Request::EditDest {
                key: v.key(),
                dest: dest(3, 5),
            },
            lim,
        )
        .unwrap();
        let after = evaluate(&v, &h(&[false, true, true]), Some(true));
        let reqs = delta(&m, v.key(), &before.dests, &after.dests);
        assert_eq!(
            reqs,
            [Request::DelDest {
                key: v.key(),
                addr: IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)),
                port: 80
            }]
        );
        // The reload puts the configured weight back.
        let reqs = full(&m, &v.service, &after.dests);
        assert_eq!(
            reqs,
            [
                Request::DelDest {
                    key: v.key(),
                    addr: IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)),
                    port: 80
                },
                Request::EditDest {
                    key: v.key(),
                    dest: dest(3, 1)
                }
            ]
        );
    }
}
