//! The lblc/lblcr caches (`LBLC_MAP`): listing, flushing a service's and
//! their garbage collection.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use libbpf_rs::{MapCore, MapFlags};
use xvs_core::sched;

use crate::abi::{as_bytes as bytes, xvs_lblc, xvs_lblc_key};
use crate::clock::monotonic_ns;
use crate::dataplane::Dataplane;
use crate::error::Error;
use crate::limits::LBLCR_SET_MAX;

/// One lblc/lblcr cache entry (`LBLC_MAP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalityEntry {
    /// Service id.
    pub svc_id: u32,
    /// Destination address of the flows.
    pub daddr: Ipv4Addr,
    /// Dest ids, most recently inserted first (lblc: one).
    pub dests: Vec<u32>,
    /// Last lookup, [`monotonic_ns`](crate::monotonic_ns) clock.
    pub lastuse_ns: u64,
    /// Last change of the set (lblc: creation).
    pub lastmod_ns: u64,
}

impl Dataplane {
    /// Deletes the lblc/lblcr cache entries of a service.
    pub(crate) fn flush_locality(&self, svc_id: u32) -> Result<(), Error> {
        for (k, _) in self.read_all::<xvs_lblc_key, xvs_lblc>(&self.maps.lblc)? {
            if k.svc_id == svc_id {
                let _ = self.maps.lblc.delete(bytes(&k));
            }
        }
        Ok(())
    }

    /// The lblc/lblcr caches.
    pub fn locality(&self) -> Result<Vec<LocalityEntry>, Error> {
        Ok(self
            .read_all::<xvs_lblc_key, xvs_lblc>(&self.maps.lblc)?
            .into_iter()
            .map(|(k, e)| LocalityEntry {
                svc_id: k.svc_id,
                daddr: crate::repr::ip4_of(&k.daddr),
                dests: e.dests[..(e.n as usize).min(LBLCR_SET_MAX)].to_vec(),
                lastuse_ns: e.lastuse_ns,
                lastmod_ns: e.lastmod_ns,
            })
            .collect())
    }

    /// One run of the lblc/lblcr garbage collector
    /// (`ip_vs_lblc(r)_check_expire`, every 60 s): with `full`, every entry
    /// idle for `expiration_secs` (the sysctl `lblc_expiration`, 24 h)
    /// goes; otherwise only services with more than
    /// `sched::locality::MAX_ENTRIES` entries lose entries idle for
    /// `ENTRY_TIMEOUT` (6 min), up to `min((n - MAX) * 4 / 3, MAX / 2)`.
    /// Returns the number of entries removed.
    pub fn expire_locality(&self, full: bool, expiration_secs: u64) -> Result<u64, Error> {
        use sched::locality::{ENTRY_TIMEOUT, MAX_ENTRIES};
        let now = monotonic_ns();
        let entries = self.read_all::<xvs_lblc_key, xvs_lblc>(&self.maps.lblc)?;
        let mut removed = 0;
        if full {
            for (k, e) in &entries {
                if now >= e.lastuse_ns.saturating_add(expiration_secs * 1_000_000_000)
                    && self.maps.lblc.delete(bytes(k)).is_ok()
                {
                    removed += 1;
                }
            }
            return Ok(removed);
        }
        let mut per_svc: HashMap<u32, Vec<(xvs_lblc_key, u64)>> = HashMap::new();
        for (k, e) in entries {
            per_svc.entry(k.svc_id).or_default().push((k, e.lastuse_ns));
        }
        for list in per_svc.values() {
            if list.len() <= MAX_ENTRIES {
                continue;
            }
            let mut goal = ((list.len() - MAX_ENTRIES) * 4 / 3).min(MAX_ENTRIES / 2);
            for (k, lastuse) in list {
                if goal == 0 {
                    break;
                }
                if now >= lastuse.saturating_add(ENTRY_TIMEOUT * 1_000_000_000)
                    && self.maps.lblc.delete(bytes(k)).is_ok()
                {
                    removed += 1;
                    goal -= 1;
                }
            }
        }
        Ok(removed)
    }

    /// Takes a dest out of the lblc/lblcr caches: out of each set, and a
    /// set left empty goes.
    pub(crate) fn drop_dest_from_locality(&self, dest_id: u32) -> Result<(), Error> {
        for (lk, mut e) in self.read_all::<xvs_lblc_key, xvs_lblc>(&self.maps.lblc)? {
            let n = (e.n as usize).min(LBLCR_SET_MAX);
            if !e.dests[..n].contains(&dest_id) {
                continue;
            }
            let kept: Vec<u32> = e.dests[..n]
                .iter()
                .copied()
                .filter(|&d| d != dest_id)
                .collect();
            if kept.is_empty() {
                let _ = self.maps.lblc.delete(bytes(&lk));
                continue;
            }
            e.dests = [0; LBLCR_SET_MAX];
            e.dests[..kept.len()].copy_from_slice(&kept);
            e.n = kept.len() as u32;
            let _ = self
                .maps
                .lblc
                .update(bytes(&lk), bytes(&e), MapFlags::EXIST);
        }
        Ok(())
    }
}
