//! The daemon's [`Plane`] over the BPF data plane
//! (`xvs_dataplane::Dataplane`): table writes, listings, expiry, DR/TUN
//! next hops kept current, and the connection sync daemons.

use xvs_core::api::{ConnEntry, PeData};
use xvs_core::model::{ConnState, Dest, Service, ServiceKey, SyncDaemon, SyncState, Timeouts};
use xvs_dataplane::{monotonic_ns, Dataplane, SvcSched};
use xvsd::plane::{AllStats, Backend, Plane, PlaneError};

/// The data plane behind the daemon's traits.
pub(crate) struct Loaded {
    dp: Dataplane,
    conn_capacity: u32,
    /// Route, link and neighbour changes: DR/TUN next hops follow them.
    monitor: Option<xvs_dataplane::nexthop::Monitor>,
    /// `drop_no_neigh + drop_fib` at the last next-hop refresh, when it
    /// ran, and how many dests it left unresolved.
    misses_seen: u64,
    refreshed: Option<std::time::Instant>,
    unresolved: u32,
    /// A change arrived too soon after the last refresh (our own ARP
    /// requests make neighbour events too): the next tick refreshes.
    pending: bool,
    /// The connection sync daemons (`--start-daemon`).
    sync: xvsd::sync_io::SyncDaemons,
}

/// How long a change waits for the neighbours of the DR/TUN real servers
/// it added.
const NEXTHOP_SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Two refreshes on network changes are at least this far apart.
const NEXTHOP_MIN_GAP: std::time::Duration = std::time::Duration::from_millis(200);

/// Next hops are refreshed at least this often, whatever the kernel says.
const NEXTHOP_REFRESH: std::time::Duration = std::time::Duration::from_secs(10);

impl Loaded {
    /// The plane over `dp`, whose connection table holds `conn_capacity`
    /// entries; next hops follow the kernel's changes when it lets us
    /// listen to them.
    pub(crate) fn new(dp: Dataplane, conn_capacity: u32) -> Loaded {
        Loaded {
            dp,
            conn_capacity,
            monitor: xvs_dataplane::nexthop::Monitor::open()
                .map_err(|e| {
                    log::warn!("{e}: next hops are refreshed every {NEXTHOP_REFRESH:?} only")
                })
                .ok(),
            misses_seen: 0,
            refreshed: None,
            unresolved: 0,
            pending: false,
            sync: Default::default(),
        }
    }

    /// Leaves the data plane attached, for the next xvsd: returns the
    /// interfaces it stays on.
    pub(crate) fn leave_attached(&mut self) -> Vec<String> {
        self.dp.leave_attached()
    }
}

impl Backend for Loaded {
    fn upsert_service(
        &mut self,
        svc_id: u32,
        svc: &Service,
        sched: &SvcSched,
    ) -> Result<(), PlaneError> {
        self.dp
            .upsert_service(svc_id, svc, sched)
            .map_err(PlaneError::from)
    }
    fn remove_service(&mut self, svc_id: u32, key: &ServiceKey) -> Result<(), PlaneError> {
        self.dp
            .remove_service(svc_id, key)
            .map_err(PlaneError::from)
    }
    fn upsert_dest(&mut self, dest_id: u32, svc_id: u32, dest: &Dest) -> Result<(), PlaneError> {
        // DR/TUN: the next hop is resolved (or asked for) right here.
        self.dp
            .upsert_dest(dest_id, svc_id, dest)
            .map_err(PlaneError::from)
    }
    fn trash_dest(&mut self, dest_id: u32) -> Result<(), PlaneError> {
        self.dp.trash_dest(dest_id).map_err(PlaneError::from)
    }
    fn remove_dest(&mut self, dest_id: u32) -> Result<(), PlaneError> {
        let ended = self.dp.remove_dest(dest_id)?;
        if ended > 0 {
            log::info!("ended {ended} connection(s) of a removed destination");
        }
        Ok(())
    }
    fn zero_svc(&mut self, svc_id: u32) -> Result<(), PlaneError> {
        self.dp.zero_svc_stats(svc_id).map_err(PlaneError::from)
    }
    fn zero_dest(&mut self, dest_id: u32) -> Result<(), PlaneError> {
        self.dp.zero_dest_stats(dest_id).map_err(PlaneError::from)
    }
    fn set_mark_rules(&mut self, rules: &[xvs_core::fwmark::MarkRule]) -> Result<(), PlaneError> {
        self.dp.set_mark_rules(rules).map_err(PlaneError::from)
    }
}

impl Plane for Loaded {
    fn all_stats(&self) -> Result<AllStats, PlaneError> {
        Ok(AllStats {
            svc: self.dp.all_svc_stats()?,
            dest: self.dp.all_dest_stats()?,
        })
    }
    fn dest_conns(&self, dest_id: u32) -> Result<(u32, u32), PlaneError> {
        self.dp.dest_conns(dest_id).map_err(PlaneError::from)
    }
    fn persist_conns(&self, dest_id: u32) -> Result<u32, PlaneError> {
        self.dp.persist_conns(dest_id).map_err(PlaneError::from)
    }
    fn expire_locality(&mut self, full: bool) {
        let exp = xvs_core::sched::locality::DEFAULT_EXPIRATION;
        match self.dp.expire_locality(full, exp) {
            Ok(0) => {}
            Ok(n) => log::debug!("expired {n} lblc/lblcr cache entries"),
            Err(e) => log::warn!("lblc/lblcr cache expiry failed: {e}"),
        }
    }
    fn conns(&self, t: &Timeouts) -> Result<Vec<ConnEntry>, PlaneError> {
        let now = monotonic_ns();
        let conns = self.dp.conns()?;
        let templates = self.dp.templates()?;
        // Templates as IPVS lists them: client port 0, state NONE or
        // ASSURED, the time
        // left of the persistence timeout (while connections still use an
        // idle template, the kernel keeps re-arming that timer).
        let tmpl: Vec<ConnEntry> = templates
            .iter()
            .map(|t| {
                let idle_ms = now.saturating_sub(t.last_seen_ns) / 1_000_000;
                let limit_ms = u64::from(t.timeout_secs) * 1000;
                let left = if idle_ms < limit_ms {
                    limit_ms - idle_ms
                } else if t.conns > 0 && limit_ms > 0 {
                    limit_ms - (idle_ms - limit_ms) % limit_ms
                } else {
                    0
                };
                ConnEntry {
                    proto: t.proto,
                    caddr: t.caddr.into(),
                    cport: 0,
                    vaddr: t.vaddr.into(),
                    vport: t.vport,
                    daddr: t.daddr.into(),
                    dport: t.dport,
                    state: if t.assured {
                        ConnState::Assured
                    } else {
                        ConnState::None
                    },
                    fwd: t.fwd,
                    expires_ms: left,
                    fwmark: t.fwmark,
                    pe: t.pe_data.as_deref().map(PeData::sip),
                }
            })
            .collect();
        Ok(tmpl
            .into_iter()
            .chain(conns.iter().map(|c| {
                let idle_ms = now.saturating_sub(c.last_seen_ns) / 1_000_000;
                let limit_ms = u64::from(c.state.timeout_secs(t)) * 1000;
                ConnEntry {
                    proto: c.proto,
                    caddr: c.caddr.into(),
                    cport: c.cport,
                    vaddr: c.vaddr.into(),
                    vport: c.vport,
                    daddr: c.daddr.into(),
                    dport: c.dport,
                    state: c.state,
                    fwd: c.fwd,
                    expires_ms: limit_ms.saturating_sub(idle_ms),
                    fwmark: 0,
                    pe: None,
                }
            }))
            .collect())
    }
    fn conn_count(&self) -> Result<u64, PlaneError> {
        self.dp.conn_count().map_err(PlaneError::from)
    }
    fn conn_entries(&self) -> u64 {
        self.dp.conn_entries()
    }
    fn expire(&mut self, t: &Timeouts) -> Result<u64, PlaneError> {
        self.dp.expire_conns(t).map_err(PlaneError::from)
    }
    fn counters(&self) -> Result<Vec<(String, u64)>, PlaneError> {
        Ok(self
            .dp
            .counters()?
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect())
    }
    fn interfaces(&self) -> Vec<String> {
        self.dp.attached()
    }
    fn conn_capacity(&self) -> u32 {
        self.conn_capacity
    }
    fn features(&self) -> Vec<(String, bool)> {
        self.dp
            .features()
            .report()
            .into_iter()
            .map(|(f, on)| (f.name.to_string(), on))
            .collect()
    }
    fn attach_mode(&self) -> String {
        self.dp.mode().name().to_string()
    }
    fn settle_nexthops(&mut self) {
        let left = self.dp.await_nexthops(NEXTHOP_SETTLE);
        if left > 0 {
            log::info!(
                "{left} new real server(s) not resolved within {NEXTHOP_SETTLE:?}; their packets \
                 are dropped until they answer ARP"
            );
        }
    }
    fn network_fd(&self) -> Option<std::os::fd::RawFd> {
        self.monitor.as_ref().map(|m| m.fd())
    }
    fn start_sync(&mut self, d: &SyncDaemon) -> Result<SyncDaemon, PlaneError> {
        self.sync.start(d)
    }
    fn stop_sync(&mut self, state: SyncState) -> Result<(), PlaneError> {
        self.sync.stop(state);
        Ok(())
    }
    fn sync_tick(&mut self, timeouts: &Timeouts) {
        self.sync.tick(&self.dp, timeouts);
    }
    fn maintain_nexthops(&mut self) {
        self.pending |= self.monitor.as_ref().is_some_and(|m| m.drain());
        let misses = ["drop_no_neigh", "drop_fib"]
            .iter()
            .map(|c| self.dp.counter(c).unwrap_or(0))
            .sum::<u64>();
        let since = self.refreshed.map(|t| t.elapsed());
        let due = since.is_none_or(|d| d >= NEXTHOP_REFRESH);
        let wanted = self.pending || misses != self.misses_seen || self.unresolved != 0;
        if !(due || wanted && since.is_none_or(|d| d >= NEXTHOP_MIN_GAP)) {
            return;
        }
        self.pending = false;
        match self.dp.refresh_nexthops() {
            Ok((_, unresolved)) => {
                if unresolved != self.unresolved || misses != self.misses_seen {
                    log::info!(
                        "real-server next hops: {unresolved} unresolved{}",
                        if misses > self.misses_seen {
                            format!(
                                " ({} packet(s) dropped for want of one)",
                                misses - self.misses_seen
                            )
                        } else {
                            String::new()
                        }
                    );
                }
                self.unresolved = unresolved;
                self.misses_seen = misses;
                self.refreshed = Some(std::time::Instant::now());
            }
            Err(e) => log::warn!("refreshing real-server next hops: {e}"),
        }
    }
}
