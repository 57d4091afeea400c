//! Test doubles shared by the daemon's and the keepalived half's tests:
//! an in-memory data plane and a few helpers.

use std::collections::BTreeMap;

use xvs_core::api::{ConnEntry, Request, Response, Table};
use xvs_core::model::{Dest, Service, ServiceKey, Stats, SyncDaemon, SyncState, Timeouts};

use crate::daemon::Daemon;
use crate::plane::{AllStats, Backend, Plane, PlaneError};
use crate::table::Limits;

/// An in-memory data plane: what was written, and counters to read.
#[derive(Default)]
pub(crate) struct Mem {
    pub(crate) svcs: BTreeMap<u32, (Service, Vec<u32>)>,
    pub(crate) dests: BTreeMap<u32, Dest>,
    pub(crate) stats: BTreeMap<u32, Stats>,
    /// Service counters by service id.
    pub(crate) svc_stats: BTreeMap<u32, Stats>,
    /// (active, inactive) connections by dest id.
    pub(crate) conn_counts: BTreeMap<u32, (u32, u32)>,
    pub(crate) refuse_dest: bool,
    /// Sync daemons started and stopped, in order ("start master lo").
    pub(crate) sync_log: Vec<String>,
    /// Answer sync requests as a plane without sync does.
    pub(crate) no_sync: bool,
    /// The mark classifier's rules as last set.
    pub(crate) mark_rules: Vec<xvs_core::fwmark::MarkRule>,
}

impl Backend for Mem {
    fn upsert_service(
        &mut self,
        id: u32,
        s: &Service,
        sched: &xvs_dataplane::SvcSched,
    ) -> Result<(), PlaneError> {
        self.svcs.insert(id, (s.clone(), sched.table.clone()));
        Ok(())
    }
    fn remove_service(&mut self, id: u32, _: &ServiceKey) -> Result<(), PlaneError> {
        self.svcs.remove(&id);
        Ok(())
    }
    fn upsert_dest(&mut self, id: u32, _: u32, d: &Dest) -> Result<(), PlaneError> {
        if self.refuse_dest {
            return Err(PlaneError::Other("map full".into()));
        }
        self.dests.insert(id, d.clone());
        Ok(())
    }
    fn remove_dest(&mut self, id: u32) -> Result<(), PlaneError> {
        self.dests.remove(&id);
        Ok(())
    }
    fn trash_dest(&mut self, id: u32) -> Result<(), PlaneError> {
        self.dests.remove(&id);
        Ok(())
    }
    fn zero_svc(&mut self, _: u32) -> Result<(), PlaneError> {
        Ok(())
    }
    fn set_mark_rules(&mut self, rules: &[xvs_core::fwmark::MarkRule]) -> Result<(), PlaneError> {
        self.mark_rules = rules.to_vec();
        Ok(())
    }
    fn zero_dest(&mut self, id: u32) -> Result<(), PlaneError> {
        self.stats.remove(&id);
        Ok(())
    }
}

impl Plane for Mem {
    fn all_stats(&self) -> Result<AllStats, PlaneError> {
        let mut dest = vec![Stats::default(); 64];
        for (&id, &s) in &self.stats {
            dest[id as usize] = s;
        }
        let mut svc = vec![Stats::default(); 16];
        for (&id, &s) in &self.svc_stats {
            svc[id as usize] = s;
        }
        Ok(AllStats { svc, dest })
    }
    fn dest_conns(&self, id: u32) -> Result<(u32, u32), PlaneError> {
        Ok(self.conn_counts.get(&id).copied().unwrap_or_default())
    }
    fn conns(&self, _: &Timeouts) -> Result<Vec<ConnEntry>, PlaneError> {
        Ok(vec![])
    }
    fn conn_count(&self) -> Result<u64, PlaneError> {
        Ok(0)
    }
    fn conn_entries(&self) -> u64 {
        0
    }
    fn expire(&mut self, _: &Timeouts) -> Result<u64, PlaneError> {
        Ok(0)
    }
    fn counters(&self) -> Result<Vec<(String, u64)>, PlaneError> {
        Ok(vec![])
    }
    fn interfaces(&self) -> Vec<String> {
        vec![]
    }
    fn conn_capacity(&self) -> u32 {
        4096
    }
    fn features(&self) -> Vec<(String, bool)> {
        vec![]
    }
    fn attach_mode(&self) -> String {
        "xdp".into()
    }
    fn maintain_nexthops(&mut self) {}
    /// `lo` (MTU 65536) and `eth0` (1500) exist, nothing else.
    fn start_sync(&mut self, d: &SyncDaemon) -> Result<SyncDaemon, PlaneError> {
        if self.no_sync {
            return Err(PlaneError::SyncNotSupported);
        }
        let mtu = match d.mcast_ifn.as_str() {
            "lo" => 65536,
            "eth0" => 1500,
            _ => return Err(std::io::Error::from_raw_os_error(19).into()),
        };
        self.sync_log
            .push(format!("start {} {}", d.state, d.mcast_ifn));
        Ok(d.with_defaults(mtu))
    }
    fn stop_sync(&mut self, state: SyncState) -> Result<(), PlaneError> {
        self.sync_log.push(format!("stop {state}"));
        Ok(())
    }
}

/// Small tables.
pub(crate) const LIMITS: Limits = Limits {
    max_services: 16,
    max_dests: 64,
};

/// `-L`.
pub(crate) fn list(d: &mut Daemon<Mem>) -> Table {
    match d.handle(Request::List) {
        Response::Table { table } => table,
        other => panic!("{other:?}"),
    }
}
