//! Request handling: one [`Daemon`] owns the model and the data plane and
//! answers every [`Request`]. It is driven by the server loop and by timers
//! (connection expiry, rate estimation).

use crate::table::{self, Backend, Limits, Model};
use std::path::PathBuf;
use xvs_core::api::{
    ApiError, ConnEntry, DestEntry, ErrorKind, Info, Request, Response, ServiceEntry, Table,
};
use xvs_core::estimator::Estimator;
use xvs_core::model::{Rates, ServiceKey, Stats, SyncDaemon, SyncState, Timeouts};

/// What [`Plane::start_sync`] answers by default: this plane cannot run a
/// connection-sync daemon. Requests get an `unsupported` error with this
/// text.
pub const SYNC_NOT_SUPPORTED: &str =
    "the connection synchronization daemon is not supported by this xvsd";

/// Everything the daemon reads back from the data plane, on top of the
/// writes in [`Backend`].
pub trait Plane: Backend {
    /// Counters of every service slot and every dest slot, indexed by
    /// id, read in bulk: the estimators and listings want all of them, and
    /// one read per id costs a syscall each (110 000 every 2 s at
    /// 10 000 services × 10 dests).
    fn all_stats(&self) -> Result<AllStats, String>;
    /// (ActiveConn, InActConn) of a dest.
    fn dest_conns(&self, dest_id: u32) -> Result<(u32, u32), String>;
    /// PersistConn of a dest: persistence templates pointing at it.
    fn persist_conns(&self, _dest_id: u32) -> Result<u32, String> {
        Ok(0)
    }
    /// One run of the lblc/lblcr cache collector (every 60 s; `full` every
    /// 30th run, as `ip_vs_lblc_check_expire`).
    fn expire_locality(&mut self, _full: bool) {}
    /// The live connections and persistence templates, with time left
    /// under `timeouts`.
    fn conns(&self, timeouts: &Timeouts) -> Result<Vec<ConnEntry>, String>;
    /// Number of connection entries.
    fn conn_count(&self) -> Result<u64, String>;
    /// Connection table entries in use (two per NAT connection) as the
    /// last expiry scan counted them: free to ask, a few seconds old at
    /// most, for the once-a-second metrics.
    fn conn_entries(&self) -> u64;
    /// Deletes idle connections; returns how many.
    fn expire(&mut self, timeouts: &Timeouts) -> Result<u64, String>;
    /// Data-plane counters by name.
    fn counters(&self) -> Result<Vec<(String, u64)>, String>;
    /// Interfaces attached.
    fn interfaces(&self) -> Vec<String>;
    /// Connection table capacity.
    fn conn_capacity(&self) -> u32;
    /// The optional kernel features and whether the data plane has each.
    fn features(&self) -> Vec<(String, bool)>;
    /// The attach mode (`xdp` or `tc`).
    fn attach_mode(&self) -> String;
    /// A descriptor that becomes readable when the kernel's routes, links
    /// or neighbours change (DR/TUN next hops follow them).
    fn network_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
    /// Keeps the next hops of DR and TUN real servers current: called
    /// every second and when [`Plane::network_fd`] is readable.
    fn maintain_nexthops(&mut self);
    /// After a change: waits (briefly) for the neighbours of the DR/TUN
    /// real servers it added, so their first packets are not dropped.
    fn settle_nexthops(&mut self) {}
    /// Starts a connection-sync daemon (`--start-daemon`, and at start-up
    /// for the ones the state file says were running). Called only with a
    /// request that passed [`SyncDaemon::validate`], for a state (master
    /// or backup) not running. Returns the daemon as it runs, its defaults
    /// filled in as the kernel fills them: [`SyncDaemon::with_defaults`]
    /// with the interface's MTU. `Err`: why not, as ipvsadm words the
    /// kernel's errno (`strerror`): "No such device" for an unknown
    /// interface (the kernel's ENODEV); an `io::Error`'s text does, its
    /// " (os error N)" is dropped. The default: [`SYNC_NOT_SUPPORTED`].
    fn start_sync(&mut self, _d: &SyncDaemon) -> Result<SyncDaemon, String> {
        Err(SYNC_NOT_SUPPORTED.to_string())
    }
    /// Stops the running sync daemon of `state` (`--stop-daemon`). `Err`
    /// (worded as for [`Plane::start_sync`]) leaves it listed as running.
    fn stop_sync(&mut self, _state: SyncState) -> Result<(), String> {
        Ok(())
    }
    /// The sync daemons' once-a-second work, under the current
    /// `timeouts`: called from [`Daemon::every_second`]. Default: nothing.
    fn sync_tick(&mut self, _timeouts: &Timeouts) {}
}

/// Counters of every slot, indexed by service id and dest id.
#[derive(Debug, Clone, Default)]
pub struct AllStats {
    pub svc: Vec<Stats>,
    pub dest: Vec<Stats>,
}

impl AllStats {
    fn svc(&self, id: u32) -> Stats {
        self.svc.get(id as usize).copied().unwrap_or_default()
    }
    fn dest(&self, id: u32) -> Stats {
        self.dest.get(id as usize).copied().unwrap_or_default()
    }
}

/// Identifies whose rate an estimator follows, independent of slot ids
/// (which are reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum EstKey {
    Svc(ServiceKey),
    Dest(ServiceKey, std::net::Ipv4Addr, u16),
}

impl EstKey {
    fn service(&self) -> ServiceKey {
        match self {
            EstKey::Svc(s) | EstKey::Dest(s, _, _) => *s,
        }
    }
}

/// Rate estimators by slot id, each with whom it follows: a slot reused
/// by another service or dest starts afresh. Indexed, not hashed: with
/// 110 000 dests, rebuilding a hash map every 2 s was most of an idle
/// xvsd's CPU.
#[derive(Debug, Default)]
struct Estimators {
    svc: Vec<Option<(EstKey, Estimator)>>,
    dest: Vec<Option<(EstKey, Estimator)>>,
}

impl Estimators {
    fn rates(v: &[Option<(EstKey, Estimator)>], id: u32, key: EstKey) -> Rates {
        match v.get(id as usize) {
            Some(Some((k, e))) if *k == key => e.rates(),
            _ => Rates::default(),
        }
    }

    /// Ticks the estimator of slot `id` from `old` into `next`, or starts
    /// one when the slot followed someone else.
    fn tick(
        old: &mut [Option<(EstKey, Estimator)>],
        next: &mut Vec<Option<(EstKey, Estimator)>>,
        id: u32,
        key: EstKey,
        s: Stats,
    ) {
        let i = id as usize;
        let e = match old.get_mut(i).and_then(Option::take) {
            Some((k, mut e)) if k == key => {
                e.tick(s);
                e
            }
            _ => Estimator::new(s),
        };
        if next.len() <= i {
            next.resize(i + 1, None);
        }
        next[i] = Some((key, e));
    }

    /// Forgets the estimators of one service and its dests (`None`: all),
    /// for `-Z`.
    fn forget(&mut self, svc: Option<ServiceKey>) {
        for slot in self.svc.iter_mut().chain(self.dest.iter_mut()) {
            if slot
                .as_ref()
                .is_some_and(|(k, _)| svc.is_none_or(|z| k.service() == z))
            {
                *slot = None;
            }
        }
    }
}

/// The daemon's state.
pub struct Daemon<P: Plane> {
    pub(crate) model: Model,
    limits: Limits,
    plane: P,
    estimators: Estimators,
    state_file: Option<PathBuf>,
    /// Seconds since start (the lblc/lblcr collector runs every 60).
    ticks: u64,
    /// The keepalived half (`--config`).
    pub(crate) lvs: Option<crate::lvs::Lvs>,
    /// Where the `/metrics` text is published (`--metrics-listen`).
    metrics: Option<std::sync::Arc<std::sync::Mutex<String>>>,
    /// The running sync daemons as [`Plane::start_sync`] filled them in,
    /// the master first; `model.sync_daemons` has them as asked for.
    sync: Vec<SyncDaemon>,
}

fn internal(e: String) -> ApiError {
    ApiError::with(ErrorKind::Internal, format!("data plane: {e}"))
}

/// `strerror(ENODEV)`, what ipvsadm prints for an unknown interface.
const NO_SUCH_DEVICE: &str = "No such device";

/// Whether xvsd's network namespace has an interface of that name.
fn interface_exists(name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: `c` is a NUL-terminated string alive across the call.
    unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
}

/// A sync daemon the plane could not start or stop: `unsupported` for
/// [`SYNC_NOT_SUPPORTED`], else `internal` with the plane's text, which
/// xvsadm prints as ipvsadm prints `strerror` (no " (os error N)").
fn sync_error(e: String) -> ApiError {
    if e == SYNC_NOT_SUPPORTED {
        return ApiError::with(ErrorKind::Unsupported, e);
    }
    let text = match e.find(" (os error ") {
        Some(i) if e.ends_with(')') => e[..i].to_string(),
        _ => e,
    };
    ApiError::with(ErrorKind::Internal, text)
}

/// `-Z` requests inside a request, for batches.
fn zero_targets(req: &Request, out: &mut Vec<Option<ServiceKey>>) {
    match req {
        Request::Zero { key } => out.push(*key),
        Request::Batch { requests } => requests.iter().for_each(|r| zero_targets(r, out)),
        _ => {}
    }
}

impl<P: Plane> Daemon<P> {
    /// A daemon over `plane`. When `state_file` names an existing file, the
    /// table saved there is loaded and written to the plane again (a restart
    /// with pinned maps keeps its connections and counters).
    pub fn new(plane: P, limits: Limits, state_file: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut d = Daemon {
            model: Model::default(),
            limits,
            plane,
            estimators: Estimators::default(),
            state_file,
            ticks: 0,
            lvs: None,
            metrics: None,
            sync: Vec::new(),
        };
        if let Some(path) = &d.state_file {
            if path.exists() {
                let text = std::fs::read_to_string(path)?;
                let model: Model = serde_json::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                table::restore(&model, &mut d.plane).map_err(|e| anyhow::anyhow!(e))?;
                log::info!(
                    "restored {} service(s) from {}",
                    model.services.len(),
                    path.display()
                );
                d.model = model;
            }
        }
        // The sync daemons that ran, started again; one that cannot start
        // (its interface gone, say) is forgotten, as a reboot forgets
        // IPVS's.
        for s in std::mem::take(&mut d.model.sync_daemons) {
            if d.sync.iter().any(|r| r.state == s.state) {
                continue;
            }
            match s.validate().and_then(|()| d.plane.start_sync(&s)) {
                Ok(running) => {
                    log::info!("restarted the {}", describe_sync(&running));
                    d.sync.push(running);
                    d.model.sync_daemons.push(s);
                }
                Err(e) => log::error!(
                    "cannot restart the {} sync daemon on {}: {e}",
                    s.state,
                    s.mcast_ifn
                ),
            }
        }
        d.sync.sort_by_key(|s| s.state);
        Ok(d)
    }

    /// The data plane, for shutdown.
    pub fn plane_mut(&mut self) -> &mut P {
        &mut self.plane
    }

    /// The running sync daemons (defaults filled in), the master first.
    pub fn sync_daemons(&self) -> &[SyncDaemon] {
        &self.sync
    }

    /// Current timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.model.timeouts
    }

    /// Answers one request.
    pub fn handle(&mut self, req: Request) -> Response {
        let result = match &req {
            Request::List => self.table().map(|table| Response::Table { table }),
            Request::ListConns => self
                .plane
                .conns(&self.model.timeouts)
                .map(|conns| Response::Conns { conns })
                .map_err(internal),
            Request::GetTimeouts => Ok(Response::Timeouts {
                timeouts: self.model.timeouts,
            }),
            Request::Info => self.info().map(|info| Response::Info { info }),
            Request::Sequence { requests } => self
                .sequence(requests)
                .map(|results| Response::Sequence { results }),
            Request::StartDaemon { daemon } => self.start_daemon(daemon).map(|()| Response::Ok),
            Request::StopDaemon { state } => self.stop_daemon(*state).map(|()| Response::Ok),
            Request::ListDaemons => Ok(Response::Daemons {
                daemons: self.sync.clone(),
            }),
            _ => self.change(&req).map(|()| Response::Ok),
        };
        result.unwrap_or_else(|error| Response::Error { error })
    }

    fn change(&mut self, req: &Request) -> Result<(), ApiError> {
        self.commit(req, None)
    }

    /// `--start-daemon`, checked in the kernel's order: the request itself
    /// (EINVAL), the interface (ENODEV), then one of that state already
    /// running (EEXIST, "Daemon has already run"); the plane is asked
    /// only for a daemon that can start.
    fn start_daemon(&mut self, d: &SyncDaemon) -> Result<(), ApiError> {
        d.validate()
            .map_err(|e| ApiError::with(ErrorKind::Invalid, e))?;
        if self.sync.iter().any(|r| r.state == d.state) {
            if !interface_exists(&d.mcast_ifn) {
                return Err(ApiError::with(ErrorKind::Internal, NO_SUCH_DEVICE));
            }
            return Err(ApiError::new(ErrorKind::DaemonRunning));
        }
        let running = self.plane.start_sync(d).map_err(sync_error)?;
        log::info!("started the {}", describe_sync(&running));
        self.sync.push(running);
        self.sync.sort_by_key(|s| s.state);
        self.model.sync_daemons.push(d.clone());
        self.save_state();
        Ok(())
    }

    /// `--stop-daemon`: ESRCH ("No daemon is running") when none of
    /// `state` runs.
    fn stop_daemon(&mut self, state: SyncState) -> Result<(), ApiError> {
        if !self.sync.iter().any(|r| r.state == state) {
            return Err(ApiError::new(ErrorKind::NoDaemon));
        }
        self.plane.stop_sync(state).map_err(sync_error)?;
        log::info!("stopped the {state} sync daemon");
        self.sync.retain(|r| r.state != state);
        self.model.sync_daemons.retain(|r| r.state != state);
        self.save_state();
        Ok(())
    }

    /// Applies `req` atomically (validated on a copy of the model, then
    /// synced to the plane, rolled back if the plane refuses) and, when
    /// `owned` is given, makes it the set of config-owned services.
    pub(crate) fn commit(
        &mut self,
        req: &Request,
        owned: Option<std::collections::BTreeSet<ServiceKey>>,
    ) -> Result<(), ApiError> {
        let mut new = self.model.clone();
        new.apply(req, self.limits)?;
        if let Some(o) = owned {
            new.owned = o;
        }
        self.install(new, req)
    }

    /// `ipvsadm -R`'s way: each change on its own, a refused one skipped
    /// (its error reported in its place), the rest applied; then one sync
    /// of everything that was applied.
    fn sequence(&mut self, requests: &[Request]) -> Result<Vec<Option<ApiError>>, ApiError> {
        let mut new = self.model.clone();
        let mut applied = Vec::new();
        let mut results = Vec::with_capacity(requests.len());
        for r in requests {
            // A single change validates before it touches the model; a
            // nested batch may not, so it goes through a copy.
            let res = match r {
                Request::Batch { .. } | Request::Sequence { .. } => {
                    let mut c = new.clone();
                    c.apply(r, self.limits).map(|()| new = c)
                }
                _ => new.apply(r, self.limits),
            };
            match res {
                Ok(()) => {
                    applied.push(r.clone());
                    results.push(None);
                }
                Err(e) => results.push(Some(e)),
            }
        }
        self.install(new, &Request::Batch { requests: applied })?;
        Ok(results)
    }

    /// Makes `new` (the model after `req`) the table: synced to the plane,
    /// rolled back if the plane refuses; `-Z` carried out; saved.
    fn install(&mut self, new: Model, req: &Request) -> Result<(), ApiError> {
        if let Err(e) = table::sync(&self.model, &new, &mut self.plane) {
            log::error!("data plane refused {req:?}: {e}; restoring the previous table");
            // Undo by diffing back: removes what the change added, rewrites
            // what it altered.
            if let Err(e2) = table::sync(&new, &self.model, &mut self.plane) {
                log::error!("restoring the previous table failed too: {e2}");
            }
            return Err(internal(e));
        }
        let mut zeros = Vec::new();
        zero_targets(req, &mut zeros);
        for key in zeros {
            table::zero(&new, key.as_ref(), &mut self.plane).map_err(internal)?;
            self.estimators.forget(key);
        }
        if !matches!(req, Request::Zero { .. } | Request::Batch { .. }) {
            log::info!("applied {}", describe(req));
        } else if let Request::Batch { requests } = req {
            if !requests.is_empty() {
                log::info!("applied {}", describe(req));
            }
        }
        self.model = new;
        self.save_state();
        self.plane.settle_nexthops();
        Ok(())
    }

    fn save_state(&self) {
        let Some(path) = &self.state_file else { return };
        let tmp = path.with_extension("tmp");
        let res = serde_json::to_vec(&self.model)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = res {
            log::warn!("cannot save state to {}: {e}", path.display());
        }
    }

    /// Publishes the `/metrics` text to `sink`, refreshed every second.
    pub fn set_metrics_sink(&mut self, sink: std::sync::Arc<std::sync::Mutex<String>>) {
        self.metrics = Some(sink);
        self.refresh_metrics();
    }

    fn refresh_metrics(&self) {
        let Some(sink) = &self.metrics else { return };
        let text = self.metrics_text();
        *sink.lock().unwrap_or_else(|e| e.into_inner()) = text;
    }

    /// The Prometheus text exposition of the table, the data plane's
    /// counters and the health of the real servers.
    pub fn metrics_text(&self) -> String {
        let table = self.table().unwrap_or_default();
        // Not `info()`: its exact count reads the whole table, which at
        // millions of connections every second costs a CPU.
        let info = Info {
            version: env!("CARGO_PKG_VERSION").to_string(),
            conn_tab_size: self.plane.conn_capacity(),
            conn_count: self.plane.conn_entries(),
            interfaces: self.plane.interfaces(),
            counters: self.plane.counters().unwrap_or_default(),
            features: self.plane.features(),
            attach_mode: self.plane.attach_mode(),
        };
        crate::metrics::render(&table, &info, &self.health_report())
    }

    pub(crate) fn table(&self) -> Result<Table, ApiError> {
        let mut services = Vec::new();
        let stats = self.plane.all_stats().map_err(internal)?;
        for slot in self.model.services.values() {
            let key = slot.service.key;
            let mut dests = Vec::new();
            for d in &slot.dests {
                let (active, inact) = self.plane.dest_conns(d.id).map_err(internal)?;
                dests.push(DestEntry {
                    dest: d.dest.clone(),
                    active_conns: active,
                    inact_conns: inact,
                    persist_conns: self.plane.persist_conns(d.id).map_err(internal)?,
                    stats: stats.dest(d.id),
                    rates: Estimators::rates(
                        &self.estimators.dest,
                        d.id,
                        EstKey::Dest(key, d.dest.addr, d.dest.port),
                    ),
                });
            }
            services.push(ServiceEntry {
                service: slot.service.clone(),
                stats: stats.svc(slot.id),
                rates: Estimators::rates(&self.estimators.svc, slot.id, EstKey::Svc(key)),
                dests,
            });
        }
        Ok(Table {
            conn_tab_size: self.plane.conn_capacity(),
            services,
        })
    }

    pub(crate) fn info(&self) -> Result<Info, ApiError> {
        Ok(Info {
            version: env!("CARGO_PKG_VERSION").to_string(),
            conn_tab_size: self.plane.conn_capacity(),
            conn_count: self.plane.conn_count().map_err(internal)?,
            interfaces: self.plane.interfaces(),
            counters: self.plane.counters().map_err(internal)?,
            features: self.plane.features(),
            attach_mode: self.plane.attach_mode(),
        })
    }

    /// Housekeeping every second: expires idle connections, keeps the
    /// neighbours of DR/TUN real servers resolved, lets the sync daemons
    /// work.
    pub fn every_second(&mut self) {
        match self.plane.expire(&self.model.timeouts) {
            Ok(0) => {}
            Ok(n) => log::debug!("expired {n} connection(s)"),
            Err(e) => log::warn!("connection expiry failed: {e}"),
        }
        self.ticks += 1;
        let interval = xvs_core::sched::locality::CHECK_EXPIRE_INTERVAL;
        // (plain remainders: `is_multiple_of` is newer than the MSRV)
        let rem = self.ticks % interval;
        if rem == 0 {
            let every = xvs_core::sched::locality::COUNT_FOR_FULL_EXPIRATION as u64;
            let full = (self.ticks / interval) % every;
            self.plane.expire_locality(full == 0);
        }
        self.plane.maintain_nexthops();
        self.vrrp_events();
        self.plane.sync_tick(&self.model.timeouts);
        self.collect_trash();
        self.refresh_metrics();
    }

    /// Frees the trash's dests that have been unused long enough (IPVS's
    /// `ip_vs_dest_trash_expire`): their slots are cleared and their ids
    /// can be handed out again.
    fn collect_trash(&mut self) {
        if self.model.trash.is_empty() {
            return;
        }
        let now = xvs_dataplane::monotonic_ns() / 1_000_000_000;
        let before = self.model.trash.clone();
        let plane = &self.plane;
        let gone = self.model.collect_trash(now, |id| {
            plane.dest_conns(id).map_or(true, |(a, i)| a + i > 0)
                || plane.persist_conns(id).map_or(true, |p| p > 0)
        });
        for id in &gone {
            if let Err(e) = self.plane.remove_dest(*id) {
                log::warn!("clearing dest slot {id} after the trash: {e}");
            }
        }
        if self.model.trash != before {
            self.save_state();
        }
    }

    /// The plane's network-change descriptor, for the server's poll.
    pub fn network_fd(&self) -> Option<std::os::fd::RawFd> {
        self.plane.network_fd()
    }

    /// Routes, links or neighbours changed: next hops follow.
    pub fn network_changed(&mut self) {
        self.plane.maintain_nexthops();
    }

    /// Feeds the rate estimators (called every 2 seconds, as IPVS does).
    pub fn estimate(&mut self) {
        let stats = match self.plane.all_stats() {
            Ok(s) => s,
            Err(e) => {
                // A missed tick only stretches the next interval.
                log::warn!("reading counters for the rate estimators: {e}");
                return;
            }
        };
        // Rebuilt rather than pruned: estimators of services and dests that
        // are gone simply are not carried over, in one linear pass.
        let old = &mut self.estimators;
        let mut next = Estimators::default();
        for slot in self.model.services.values() {
            let key = slot.service.key;
            let s = stats.svc(slot.id);
            Estimators::tick(&mut old.svc, &mut next.svc, slot.id, EstKey::Svc(key), s);
            for d in &slot.dests {
                let k = EstKey::Dest(key, d.dest.addr, d.dest.port);
                Estimators::tick(&mut old.dest, &mut next.dest, d.id, k, stats.dest(d.id));
            }
        }
        self.estimators = next;
    }
}

/// A running sync daemon for the log.
fn describe_sync(d: &SyncDaemon) -> String {
    format!(
        "{} sync daemon on {} (syncid {}, maxlen {}, group {}:{}, ttl {})",
        d.state, d.mcast_ifn, d.syncid, d.sync_maxlen, d.mcast_group, d.mcast_port, d.mcast_ttl
    )
}

/// A one-line account of a change for the log.
pub(crate) fn describe(req: &Request) -> String {
    match req {
        Request::AddService { service } => {
            format!("add service {} ({})", service.key, service.scheduler)
        }
        Request::EditService { service } => {
            format!("edit service {} ({})", service.key, service.scheduler)
        }
        Request::DelService { key } => format!("delete service {key}"),
        Request::Clear => "clear table".into(),
        Request::AddDest { key, dest } => format!(
            "add dest {}:{} to {key} ({}, weight {})",
            dest.addr, dest.port, dest.fwd, dest.weight
        ),
        Request::EditDest { key, dest } => format!(
            "edit dest {}:{} of {key} ({}, weight {})",
            dest.addr, dest.port, dest.fwd, dest.weight
        ),
        Request::DelDest { key, addr, port } => format!("delete dest {addr}:{port} from {key}"),
        Request::SetTimeouts { timeouts } => format!(
            "set timeouts tcp {} tcpfin {} udp {}",
            timeouts.tcp, timeouts.tcp_fin, timeouts.udp
        ),
        Request::Batch { requests } => format!("batch of {} change(s)", requests.len()),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;
    use xvs_core::model::{Dest, FwdMethod, Protocol, Service};

    /// An in-memory data plane: what was written, and counters to read.
    #[derive(Default)]
    pub(crate) struct Mem {
        pub(crate) svcs: BTreeMap<u32, (Service, Vec<u32>)>,
        pub(crate) dests: BTreeMap<u32, Dest>,
        pub(crate) stats: BTreeMap<u32, Stats>,
        pub(crate) refuse_dest: bool,
        /// Sync daemons started and stopped, in order ("start master lo").
        pub(crate) sync_log: Vec<String>,
        /// Answer sync requests as a plane without sync does.
        pub(crate) no_sync: bool,
    }

    impl Backend for Mem {
        fn upsert_service(
            &mut self,
            id: u32,
            s: &Service,
            sched: &xvs_dataplane::SvcSched,
        ) -> Result<(), String> {
            self.svcs.insert(id, (s.clone(), sched.table.clone()));
            Ok(())
        }
        fn remove_service(&mut self, id: u32, _: &ServiceKey) -> Result<(), String> {
            self.svcs.remove(&id);
            Ok(())
        }
        fn upsert_dest(&mut self, id: u32, _: u32, d: &Dest) -> Result<(), String> {
            if self.refuse_dest {
                return Err("map full".into());
            }
            self.dests.insert(id, d.clone());
            Ok(())
        }
        fn remove_dest(&mut self, id: u32) -> Result<(), String> {
            self.dests.remove(&id);
            Ok(())
        }
        fn trash_dest(&mut self, id: u32) -> Result<(), String> {
            self.dests.remove(&id);
            Ok(())
        }
        fn zero_svc(&mut self, _: u32) -> Result<(), String> {
            Ok(())
        }
        fn zero_dest(&mut self, id: u32) -> Result<(), String> {
            self.stats.remove(&id);
            Ok(())
        }
    }

    impl Plane for Mem {
        fn all_stats(&self) -> Result<AllStats, String> {
            let mut dest = vec![Stats::default(); 64];
            for (&id, &s) in &self.stats {
                dest[id as usize] = s;
            }
            Ok(AllStats {
                svc: vec![Stats::default(); 16],
                dest,
            })
        }
        fn dest_conns(&self, _: u32) -> Result<(u32, u32), String> {
            Ok((0, 0))
        }
        fn conns(&self, _: &Timeouts) -> Result<Vec<ConnEntry>, String> {
            Ok(vec![])
        }
        fn conn_count(&self) -> Result<u64, String> {
            Ok(0)
        }
        fn conn_entries(&self) -> u64 {
            0
        }
        fn expire(&mut self, _: &Timeouts) -> Result<u64, String> {
            Ok(0)
        }
        fn counters(&self) -> Result<Vec<(String, u64)>, String> {
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
        fn start_sync(&mut self, d: &SyncDaemon) -> Result<SyncDaemon, String> {
            if self.no_sync {
                return Err(SYNC_NOT_SUPPORTED.to_string());
            }
            let mtu = match d.mcast_ifn.as_str() {
                "lo" => 65536,
                "eth0" => 1500,
                _ => return Err(std::io::Error::from_raw_os_error(19).to_string()),
            };
            self.sync_log
                .push(format!("start {} {}", d.state, d.mcast_ifn));
            Ok(d.with_defaults(mtu))
        }
        fn stop_sync(&mut self, state: SyncState) -> Result<(), String> {
            self.sync_log.push(format!("stop {state}"));
            Ok(())
        }
    }

    pub(crate) const LIMITS: Limits = Limits {
        max_services: 16,
        max_dests: 64,
    };

    fn key() -> ServiceKey {
        ServiceKey {
            proto: Protocol::Tcp,
            addr: Ipv4Addr::new(198, 51, 100, 10),
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

    pub(crate) fn list(d: &mut Daemon<Mem>) -> Table {
        match d.handle(Request::List) {
            Response::Table { table } => table,
            other => panic!("{other:?}"),
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
            .map(|e| e.dest.addr.octets()[3])
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
                .map(|e| (e.dest.addr.octets()[3], e.rates.cps))
                .collect()
        };
        // 200 connections in 2 s: 25/s after one tick, as IPVS shows it.
        assert_eq!(cps(&mut d), vec![(12, 0), (11, 25)]);
        // .13 takes .11's slot, whose counters still read 400: it must
        // start from there, not inherit .11's rate and baseline.
        let r = d.handle(Request::DelDest {
            key: key(),
            addr: Ipv4Addr::new(203, 0, 113, 11),
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
        assert!(d.plane.dests[&0].addr.octets()[3] == 13, "slot 0 reused");
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
}
