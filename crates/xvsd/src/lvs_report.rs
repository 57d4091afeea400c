//! The `health` answer: per real server health and quorum state of every
//! service of the table and every config-owned one.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::SystemTime;

use xvs_core::model::ServiceKey;
use xvs_health::RsState;

use crate::config::{self, ManagedRs, ManagedVs};
use crate::lvs::Lvs;
use crate::report::{CheckerHealth, HealthReport, RsReport, SvcReport};
use crate::table::{Model, SvcSlot};

fn unix_ms(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
}

/// Per-RS health and quorum state of every service of `model` and of
/// `lvs`'s configuration.
pub fn health_report(model: &Model, lvs: Option<&Lvs>) -> HealthReport {
    let states = lvs.map(Lvs::states).unwrap_or_default();
    let mut keys: BTreeSet<ServiceKey> = model.services.keys().copied().collect();
    if let Some(l) = lvs {
        keys.extend(l.managed().keys());
    }
    let mut services = Vec::new();
    for key in keys {
        let slot = model.service(&key);
        let vs = lvs.and_then(|l| l.managed().vs(&key));
        let run = lvs.and_then(|l| l.runs().get(&key));
        let owned = model.owned.contains(&key) || (vs.is_some() && slot.is_none());
        let mut rss = Vec::new();
        if let Some(vs) = vs {
            for rs in &vs.rs {
                rss.push(configured(rs, states.get(&vs.rs_id(rs)), slot));
            }
        }
        if let Some(slot) = slot {
            added_at_runtime(slot, vs, &mut rss);
        }
        services.push(SvcReport {
            key,
            config_owned: owned,
            in_table: slot.is_some(),
            quorum: vs.map(|v| v.quorum),
            hysteresis: vs.map(|v| v.hysteresis),
            quorum_up: run.map(|r| r.quorum_up),
            alive_weight: run.map(|r| r.weight_sum),
            sorry_server: vs
                .and_then(|v| v.sorry.as_ref())
                .map(|s| config::addr_port(s.dest.addr, s.dest.port)),
            sorry_active: run.is_some_and(|r| r.sorry_active),
            real_servers: rss,
        });
    }
    let (reloads, reload_failures) = lvs.map_or((0, 0), Lvs::reload_counts);
    HealthReport {
        config: lvs.map(|l| l.path().display().to_string()),
        reloads,
        reload_failures,
        services,
    }
}

/// The weight of `a:p` in the table's service, if it is there.
fn in_table(slot: Option<&SvcSlot>, a: IpAddr, p: u16) -> Option<u32> {
    slot.and_then(|s| {
        s.dests
            .iter()
            .find(|d| d.dest.addr == a && d.dest.port == p)
            .map(|d| d.dest.weight)
    })
}

/// A real server of the configuration, with its checkers' state `st`.
fn configured(rs: &ManagedRs, st: Option<&RsState>, slot: Option<&SvcSlot>) -> RsReport {
    let w = in_table(slot, rs.dest.addr, rs.dest.port);
    RsReport {
        addr: rs.dest.addr,
        port: rs.dest.port,
        config_owned: true,
        checked: !rs.checkers.is_empty(),
        up: st.is_none_or(|s| s.up),
        in_table: w.is_some(),
        weight: w,
        configured_weight: Some(rs.dest.weight),
        dynamic_weight: st.and_then(|s| s.weight),
        last_result: st.and_then(|s| s.last_result.clone()),
        last_ok: st.and_then(|s| {
            s.checkers
                .iter()
                .filter(|c| c.last_check.is_some())
                .max_by_key(|c| c.last_check)
                .and_then(|c| c.last_ok)
        }),
        last_check_ms: unix_ms(st.and_then(|s| s.last_check)),
        transitions: st.map_or(0, |s| s.transitions),
        checkers: st
            .map(|s| {
                s.checkers
                    .iter()
                    .map(|c| CheckerHealth {
                        kind: c.kind.clone(),
                        target: c.target.to_string(),
                        up: c.up,
                        last_result: c.last_result.clone(),
                        last_ok: c.last_ok,
                        last_check_ms: unix_ms(c.last_check),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The dests of the table's service that are neither in the
/// configuration nor its sorry server: added with xvsadm, not checked.
fn added_at_runtime(slot: &SvcSlot, vs: Option<&ManagedVs>, rss: &mut Vec<RsReport>) {
    for d in &slot.dests {
        let known = rss
            .iter()
            .any(|r| r.addr == d.dest.addr && r.port == d.dest.port)
            || vs
                .and_then(|v| v.sorry.as_ref())
                .is_some_and(|s| s.dest.addr == d.dest.addr && s.dest.port == d.dest.port);
        if !known {
            rss.push(RsReport {
                addr: d.dest.addr,
                port: d.dest.port,
                config_owned: false,
                checked: false,
                up: true,
                in_table: true,
                weight: Some(d.dest.weight),
                configured_weight: None,
                dynamic_weight: None,
                last_result: None,
                last_ok: None,
                last_check_ms: None,
                transitions: 0,
                checkers: Vec::new(),
            });
        }
    }
}
