//! Pushing the model to a [`Backend`]: a change as the difference of two
//! models, a whole model at start-up, `-Z`; and what each service's
//! scheduler picks from.

use std::collections::BTreeMap;

use xvs_core::model::{Dest, ServiceKey};
use xvs_dataplane::{SchedDest, SvcSched};

use super::model::{Model, SvcSlot};
use crate::plane::{Backend, PlaneError};

/// What the data plane schedules the service from: the rr/wrr ring or the
/// dh/sh/mh table (dest ids), and the dest list in kernel order.
pub fn sched_of(slot: &SvcSlot) -> SvcSched {
    let dests: Vec<SchedDest> = slot
        .dests
        .iter()
        .map(|d| SchedDest {
            id: d.id,
            addr: d.dest.addr,
            port: d.dest.port,
            weight: d.dest.weight,
            last_weight: d.last_weight.unwrap_or(d.dest.weight),
        })
        .collect();
    // Services only exist with a known scheduler and within the dest limit
    // (validate_service, dest_limit), so the error arm is unreachable in
    // practice and yields no dest at all.
    SvcSched::build(&slot.service.scheduler, &dests).unwrap_or_default()
}

/// The dest ids in the order the data plane hands out new connections
/// (rr/wrr), or the bucket table (dh/sh/mh).
pub fn ring(slot: &SvcSlot) -> Vec<u32> {
    sched_of(slot).table
}

/// Brings the backend from `old` to `new`, touching only what changed.
///
/// Order matters for in-flight packets: new dests are written before a ring
/// can point at them, rings stop pointing at a dest before it is removed.
pub fn sync(old: &Model, new: &Model, be: &mut dyn Backend) -> Result<(), PlaneError> {
    let old_dests = old.dest_index();
    let new_dests = new.dest_index();
    // The same real server (it may have been to the trash and back within
    // the batch) or, should an id have been freed and handed out again,
    // another one, whose predecessor's connections must end first.
    let same_rs = |a: &Dest, b: &Dest| a.addr == b.addr && a.port == b.port;
    for (id, n) in &new_dests {
        let (svc_id, dest, obj) = *n;
        // The object its counters belong to, if it keeps them.
        let kept_obj = match old_dests.get(id) {
            Some(o) if same_rs(o.1, dest) => Some(o.2),
            Some(_) => {
                be.remove_dest(*id)?;
                None
            }
            None => old
                .trash
                .iter()
                .find(|t| t.slot.id == *id)
                .map(|t| t.svc_obj),
        };
        match old_dests.get(id) {
            Some(o) if same_rs(o.1, dest) && o.0 == svc_id && o.2 == obj => {
                if o.1 != dest {
                    be.upsert_dest(*id, svc_id, dest)?;
                }
            }
            _ => {
                // New, or back from the trash: connections and counts
                // stay; counters too when it is the same service object.
                if kept_obj != Some(obj) {
                    be.zero_dest(*id)?;
                }
                be.upsert_dest(*id, svc_id, dest)?;
            }
        }
    }
    let old_by_id: BTreeMap<u32, &SvcSlot> = old.services.values().map(|s| (s.id, s)).collect();
    let new_by_id: BTreeMap<u32, &SvcSlot> = new.services.values().map(|s| (s.id, s)).collect();
    for (id, slot) in &old_by_id {
        match new_by_id.get(id) {
            Some(n) if n.service.key == slot.service.key => {}
            _ => be.remove_service(*id, &slot.service.key)?,
        }
    }
    for (id, slot) in &new_by_id {
        let changed = match old_by_id.get(id) {
            Some(o) if o.service.key == slot.service.key => *o != *slot,
            _ => {
                be.zero_svc(*id)?;
                true
            }
        };
        if changed {
            be.upsert_service(*id, &slot.service, &sched_of(slot))?;
        }
    }
    for id in old_dests.keys() {
        if !new_dests.contains_key(id) {
            if new.trash.iter().any(|t| t.slot.id == *id) {
                be.trash_dest(*id)?;
            } else {
                be.remove_dest(*id)?;
            }
        }
    }
    // Last: a mark whose service is not written yet would fall through to
    // the address services for the packets in between.
    if old.mark_rules != new.mark_rules {
        be.set_mark_rules(&new.mark_rules)?;
    }
    Ok(())
}

/// Writes a whole model to the backend without zeroing anything: used at
/// start-up over pinned maps, and to put the previous table back after the
/// backend refused part of a change.
pub fn restore(model: &Model, be: &mut dyn Backend) -> Result<(), PlaneError> {
    for slot in model.services.values() {
        for d in &slot.dests {
            be.upsert_dest(d.id, slot.id, &d.dest)?;
        }
        be.upsert_service(slot.id, &slot.service, &sched_of(slot))?;
    }
    for t in &model.trash {
        be.trash_dest(t.slot.id)?;
    }
    be.set_mark_rules(&model.mark_rules)?;
    Ok(())
}

/// Zeroes counters as `-Z` asks: one service and its dests, or everything.
pub fn zero(
    model: &Model,
    key: Option<&ServiceKey>,
    be: &mut dyn Backend,
) -> Result<(), PlaneError> {
    for slot in model.services.values() {
        if key.is_some_and(|k| *k != slot.service.key) {
            continue;
        }
        be.zero_svc(slot.id)?;
        for d in &slot.dests {
            be.zero_dest(d.id)?;
        }
    }
    Ok(())
}
