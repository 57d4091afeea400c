//! Services: `SVC_MAP` and what a service schedules from (its ring or
//! table in `RING_MAP`, its dest list in `SVC_DESTS`, both double
//! buffered by generation), the schedule position (`SCHED_POS`) and, for
//! rr/wrr, where the kernel's cursor would go on after a change.

use std::sync::atomic::Ordering;

use libbpf_rs::{MapCore, MapFlags};
use xvs_core::model::{Service, ServiceKey};

use crate::abi::{as_bytes as bytes, xvs_ring_key, xvs_svc, xvs_tmpl, xvs_tmpl_key};
use crate::dataplane::Dataplane;
use crate::error::{bpf_err, Error};
use crate::limits::{MH_TAB_MAX, NO_DEST, RING_GEN_SHIFT, SVC_DESTS_MAX};
use crate::maps::lookup;
use crate::repr::{ipv4_only, svc_key};
use crate::sched::{sched_index, SvcSched};

impl Dataplane {
    /// Deletes ring entries of (svc, gen) from index `from` on, up to the
    /// first missing one (rings are dense from 0).
    fn trim_ring(&self, svc_id: u32, gen: u32, from: u32) -> Result<(), Error> {
        for idx in from..self.ring_capacity {
            let k = xvs_ring_key {
                svc_id,
                slot: (gen << RING_GEN_SHIFT) | idx,
            };
            match self.maps.ring.delete(bytes(&k)) {
                Ok(()) => {}
                Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => break,
                Err(e) => return Err(bpf_err("RING_MAP delete")(e)),
            }
        }
        Ok(())
    }

    /// Creates or updates a service with its schedule ([`SvcSched`]: the
    /// rr/wrr ring or dh/sh/mh table, and the dest list in kernel list
    /// order). Both are written into the inactive generation, then
    /// `SVC_MAP` is flipped to it in one update. A new service, or a new
    /// scheduler on an existing one (`-E -s`), starts with fresh scheduler
    /// state, as the kernel binds a new scheduler instance: schedule
    /// position 0 and an empty lblc/lblcr cache. Persistence templates
    /// stay.
    pub fn upsert_service(
        &self,
        svc_id: u32,
        svc: &Service,
        sched: &SvcSched,
    ) -> Result<(), Error> {
        self.check_svc_id(svc_id)?;
        self.check_sched(sched)?;
        ipv4_only(svc.key.addr, "virtual address")?;
        let ring = &sched.table;
        let sched_no = sched_index(&svc.scheduler)
            .ok_or_else(|| Error::Invalid(format!("unknown scheduler {}", svc.scheduler)))?;
        let key = svc_key(&svc.key);
        let cur: Option<xvs_svc> = lookup(&self.maps.svc, &key, "SVC_MAP lookup")?;
        if let Some(c) = &cur {
            if c.id != svc_id {
                return Err(Error::Invalid(format!(
                    "service {} already has id {}, not {svc_id}",
                    svc.key, c.id
                )));
            }
        }
        let gen = match &cur {
            Some(c) => (c.r#gen & 1) ^ 1,
            None => 0,
        };
        for (idx, dest_id) in ring.iter().enumerate() {
            let k = xvs_ring_key {
                svc_id,
                slot: (gen << RING_GEN_SHIFT) | idx as u32,
            };
            self.maps
                .ring
                .update(bytes(&k), bytes(dest_id), MapFlags::ANY)
                .map_err(bpf_err("RING_MAP update (ring capacity exhausted?)"))?;
        }
        self.trim_ring(svc_id, gen, ring.len() as u32)?;
        let mut list = vec![0u32; 1 + SVC_DESTS_MAX];
        list[0] = sched.dests.len() as u32;
        list[1..=sched.dests.len()].copy_from_slice(&sched.dests);
        let list_bytes: Vec<u8> = list.iter().flat_map(|v| v.to_ne_bytes()).collect();
        self.maps
            .svc_dests
            .update(bytes(&(svc_id * 2 + gen)), &list_bytes, MapFlags::ANY)
            .map_err(bpf_err("SVC_DESTS update"))?;
        if cur.is_none() {
            self.trim_ring(svc_id, gen ^ 1, 0)?;
        }
        let fresh = cur.is_none_or(|c| c.sched != sched_no);
        if fresh {
            self.maps
                .sched_pos
                .update(bytes(&svc_id), bytes(&0u64), MapFlags::ANY)
                .map_err(bpf_err("SCHED_POS reset"))?;
            self.flush_locality(svc_id)?;
        }
        self.move_cursor(svc_id, &svc.scheduler, sched, fresh)?;
        let val = xvs_svc {
            id: svc_id,
            flags: svc.flags | pe_flags(svc),
            ring_len: ring.len() as u32,
            r#gen,
            sched: sched_no,
            timeout: svc.timeout,
            netmask: crate::repr::xaddr(svc.netmask),
            fwmark: svc.key.fwmark,
        };
        self.maps
            .svc
            .update(bytes(&key), bytes(&val), MapFlags::ANY)
            .map_err(bpf_err("SVC_MAP update"))
    }

    /// Refuses a schedule the maps cannot hold.
    fn check_sched(&self, sched: &SvcSched) -> Result<(), Error> {
        let ring = &sched.table;
        if ring.len() as u64 > (self.ring_capacity / 2) as u64 {
            return Err(Error::Invalid(format!(
                "ring of {} entries exceeds half the ring capacity ({})",
                ring.len(),
                self.ring_capacity
            )));
        }
        if ring.len() > MH_TAB_MAX {
            return Err(Error::Invalid(format!(
                "ring of {} entries exceeds the data plane's limit ({MH_TAB_MAX})",
                ring.len()
            )));
        }
        if let Some(&bad) = ring
            .iter()
            .chain(sched.dests.iter())
            .find(|&&d| d >= self.max_dests && d != NO_DEST)
        {
            return self.check_dest_id(bad);
        }
        if sched.dests.len() > SVC_DESTS_MAX {
            return Err(Error::Unsupported(format!(
                "more than {SVC_DESTS_MAX} real servers in one service"
            )));
        }
        Ok(())
    }

    /// rr/wrr: sets the schedule position where the kernel's cursor would
    /// continue after this change of the dest list (from the list, the
    /// position and the cursor memo of the previous change). Without a
    /// previous list (a restarted daemon) the position is kept.
    fn move_cursor(
        &self,
        svc_id: u32,
        scheduler: &str,
        sched: &SvcSched,
        fresh: bool,
    ) -> Result<(), Error> {
        use xvs_core::sched::cursor::{rr_after_change, wrr_after_change, CursorDest, Memo};
        let Ok(mut cursors) = self.cursors.lock() else {
            return Ok(());
        };
        let rr = scheduler == "rr";
        if (!rr && scheduler != "wrr") || sched.weights.len() != sched.dests.len() {
            cursors.remove(&svc_id);
            return Ok(());
        }
        let new: Vec<CursorDest> = sched
            .dests
            .iter()
            .zip(&sched.weights)
            .map(|(&id, &weight)| CursorDest { id, weight })
            .collect();
        let (old, memo) = match cursors.get(&svc_id) {
            _ if fresh => (Vec::new(), None),
            Some((old, _)) if *old == new => return Ok(()),
            Some((old, memo)) => (old.clone(), Some(*memo)),
            None => {
                // Nothing known of the cursor: keep the position.
                let at = Memo {
                    pos: u64::MAX,
                    ..Memo::default()
                };
                cursors.insert(svc_id, (new, at));
                return Ok(());
            }
        };
        let pos = lookup::<_, u64>(&self.maps.sched_pos, &svc_id, "SCHED_POS lookup")?.unwrap_or(0);
        let (start, memo) = if rr {
            rr_after_change(&old, &new, pos, memo)
        } else {
            wrr_after_change(&old, &new, pos, memo)
        };
        self.maps
            .sched_pos
            .update(bytes(&svc_id), bytes(&start), MapFlags::ANY)
            .map_err(bpf_err("SCHED_POS update"))?;
        cursors.insert(svc_id, (new, memo));
        Ok(())
    }

    /// Removes a service: its `SVC_MAP` entry, both ring generations, its
    /// schedule position, lblc/lblcr cache, persistence templates and
    /// stats. Connections stay until they expire or their dests are
    /// removed, as in IPVS. Absent service: `Ok`.
    pub fn remove_service(&self, svc_id: u32, key: &ServiceKey) -> Result<(), Error> {
        self.check_svc_id(svc_id)?;
        let k = svc_key(key);
        match self.maps.svc.delete(bytes(&k)) {
            Ok(()) => {}
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => {}
            Err(e) => return Err(bpf_err("SVC_MAP delete")(e)),
        }
        self.trim_ring(svc_id, 0, 0)?;
        self.trim_ring(svc_id, 1, 0)?;
        self.flush_locality(svc_id)?;
        if let Ok(mut c) = self.cursors.lock() {
            c.remove(&svc_id);
        }
        for (tk, t) in self.read_all::<xvs_tmpl_key, xvs_tmpl>(&self.maps.persist)? {
            if t.svc_id == svc_id && self.maps.persist.delete(bytes(&tk)).is_ok() {
                if let Some(rt) = self.dest_conns.slot(t.dest_id) {
                    rt.persist.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
        self.sip_delete_where(|t| t.svc_id == svc_id)?;
        self.maps
            .sched_pos
            .update(bytes(&svc_id), bytes(&0u64), MapFlags::ANY)
            .map_err(bpf_err("SCHED_POS reset"))?;
        self.zero_svc_stats(svc_id)
    }
}

/// The program's flag for the service's persistence engine (`--pe sip`;
/// xvsd refuses others).
fn pe_flags(svc: &Service) -> u32 {
    match svc.pe_name.as_deref() {
        Some("sip") => crate::abi::xvs_limit::XVS_LIM_SVC_F_PE_SIP.0,
        _ => 0,
    }
}
