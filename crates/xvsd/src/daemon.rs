//! Request handling: one [`Daemon`] owns the model, the data plane and the
//! keepalived state ([`Lvs`], which changes the table through
//! [`Director`], implemented here) and answers every [`Request`]. It is
//! driven by the server loop and by timers (connection expiry, rate
//! estimation, sync daemons).

use std::path::PathBuf;

use xvs_core::api::{ApiError, ErrorKind, Info, Request, Response, Table};
use xvs_core::model::{ServiceKey, SyncDaemon, SyncState, Timeouts};

use crate::describe::{describe, describe_sync};
use crate::director::Director;
use crate::history::History;
use crate::lvs::Lvs;
use crate::owned::Owned;
use crate::plane::{strip_os_error, Plane, PlaneError};
use crate::rates::{EstKey, Estimators};
use crate::report::{self, internal, HealthReport, ReloadReport};
use crate::table::{self, Limits, Model};
use crate::web::actions::{Inbox, WeightChange};
use crate::web::status::{self, StatusView};
use crate::web::{unix_ms, Snapshot};

/// Why a daemon could not start from its state file. Each shows only its
/// own text (no source chain): what xvsd has always printed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file could not be read.
    #[error(transparent)]
    Read(#[from] std::io::Error),
    /// The file is not a saved table.
    #[error("{}: {error}", .path.display())]
    Parse {
        /// The state file.
        path: PathBuf,
        /// What the JSON reader found.
        error: serde_json::Error,
    },
    /// The data plane refused the saved table.
    #[error("{0}")]
    Restore(PlaneError),
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
    lvs: Option<Lvs>,
    /// Where the `/metrics` and `/status.json` texts are published
    /// (`--metrics-listen`).
    web: Option<Snapshot>,
    /// The status page's write actions, when a token enables them.
    inbox: Option<Inbox>,
    /// The services' recent rates, for the status page's charts.
    history: History,
    /// The running sync daemons as [`Plane::start_sync`] filled them in,
    /// the master first; `model.sync_daemons` has them as asked for.
    sync: Vec<SyncDaemon>,
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
/// [`PlaneError::SyncNotSupported`], else `internal` with the plane's
/// text, which xvsadm prints as ipvsadm prints `strerror` (no
/// " (os error N)").
fn sync_error(e: PlaneError) -> ApiError {
    if let PlaneError::SyncNotSupported = e {
        return ApiError::with(ErrorKind::Unsupported, e.to_string());
    }
    ApiError::with(ErrorKind::Internal, strip_os_error(e.to_string()))
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
    pub fn new(plane: P, limits: Limits, state_file: Option<PathBuf>) -> Result<Self, StateError> {
        let mut d = Daemon {
            model: Model::default(),
            limits,
            plane,
            estimators: Estimators::default(),
            state_file,
            ticks: 0,
            lvs: None,
            web: None,
            inbox: None,
            history: History::default(),
            sync: Vec::new(),
        };
        if let Some(path) = &d.state_file {
            if path.exists() {
                let text = std::fs::read_to_string(path)?;
                let model: Model =
                    serde_json::from_str(&text).map_err(|error| StateError::Parse {
                        path: path.clone(),
                        error,
                    })?;
                table::restore(&model, &mut d.plane).map_err(StateError::Restore)?;
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
            let started = s
                .validate()
                .map_err(PlaneError::Other)
                .and_then(|()| d.plane.start_sync(&s));
            match started {
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
            Request::ListMarks => Ok(Response::Marks {
                rules: self.model.mark_rules.clone(),
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
    /// `owned` is given, makes it the configuration's share of the table
    /// (its services and mark rules, [`Owned::apply`]).
    pub(crate) fn commit(&mut self, req: &Request, owned: Option<Owned>) -> Result<(), ApiError> {
        let mut new = self.model.clone();
        new.apply(req, self.limits)?;
        if let Some(o) = owned {
            o.apply(&mut new)?;
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
            self.history.forget(key);
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

    /// Publishes the `/metrics` and `/status.json` texts to `web`,
    /// refreshed every second, and applies the status page's write
    /// actions from `inbox` (present when a token enables them).
    pub fn set_web(&mut self, web: Snapshot, inbox: Option<Inbox>) {
        self.web = Some(web);
        self.inbox = inbox;
        self.refresh_web(true);
    }

    /// Renders `/metrics`, and `/status.json` when the page is being
    /// watched or `status` says so.
    fn refresh_web(&self, status: bool) {
        let Some(web) = &self.web else { return };
        // One listing for both texts: at 100 000 dests it is the cost.
        let table = self.table().unwrap_or_default();
        let info = report::info_for_metrics(&self.plane);
        let health = self.health_report();
        web.set_metrics(crate::metrics::render(&table, &info, &health));
        if !status && !web.status_wanted() {
            return;
        }
        let view = status::view(
            &table,
            &health,
            &self.history,
            self.inbox.is_some(),
            unix_ms(),
        );
        web.set_status(status::render(&view));
    }

    /// What `GET /status.json` shows.
    pub fn status_view(&self) -> StatusView {
        let table = self.table().unwrap_or_default();
        let health = self.health_report();
        status::view(
            &table,
            &health,
            &self.history,
            self.inbox.is_some(),
            unix_ms(),
        )
    }

    /// The write actions' descriptor, for the loop to poll.
    pub fn web_wake_fd(&self) -> Option<std::os::fd::RawFd> {
        self.inbox.as_ref().map(Inbox::wake_fd)
    }

    /// Applies the status page's write actions that arrived and answers
    /// each; returns how many there were.
    pub fn web_actions(&mut self) -> usize {
        let Some(inbox) = &self.inbox else { return 0 };
        let actions = inbox.take();
        let n = actions.len();
        for a in actions {
            let r = self.set_weight(&a.change);
            match &r {
                Ok(()) => log::info!(
                    "status page: weight of {}:{} in {} set to {}",
                    a.change.addr,
                    a.change.port,
                    a.change.service,
                    a.change.weight
                ),
                Err(e) => log::warn!("status page: weight change refused: {e}"),
            }
            // The client may have given up waiting: nothing to tell then.
            let _ = a.reply.send(r);
        }
        if n > 0 {
            self.refresh_web(true);
        }
        n
    }

    /// A weight change from the status page: the dest as it is with the
    /// new weight, applied as `-e` is, so the same checks, logging and
    /// saving apply (and a keepalived reload restores a configured
    /// weight, as after `xvsadm -e`).
    pub fn set_weight(&mut self, c: &WeightChange) -> Result<(), ApiError> {
        let slot = self
            .model
            .service(&c.service)
            .ok_or_else(|| ApiError::new(ErrorKind::ServiceNotDefined))?;
        let mut dest = slot
            .dests
            .iter()
            .find(|d| d.dest.addr == c.addr && d.dest.port == c.port)
            .map(|d| d.dest.clone())
            .ok_or_else(|| ApiError::new(ErrorKind::NoSuchDest))?;
        dest.weight = c.weight;
        match self.handle(Request::EditDest {
            key: c.service,
            dest,
        }) {
            Response::Ok => Ok(()),
            Response::Error { error } => Err(error),
            other => Err(ApiError::with(
                ErrorKind::Internal,
                format!("unexpected answer {other:?}"),
            )),
        }
    }

    /// The Prometheus text exposition of the table, the data plane's
    /// counters and the health of the real servers.
    pub fn metrics_text(&self) -> String {
        let table = self.table().unwrap_or_default();
        let info = report::info_for_metrics(&self.plane);
        crate::metrics::render(&table, &info, &self.health_report())
    }

    pub(crate) fn table(&self) -> Result<Table, ApiError> {
        report::table(&self.model, &self.plane, &self.estimators)
    }

    pub(crate) fn info(&self) -> Result<Info, ApiError> {
        report::info(&self.plane)
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
        self.refresh_web(false);
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
        let est = &self.estimators;
        self.history.record(
            unix_ms(),
            self.model.services.values().map(|slot| {
                let key = slot.service.key;
                (key, Estimators::rates(&est.svc, slot.id, EstKey::Svc(key)))
            }),
        );
    }

    /// Runs `f` on the keepalived state, if any, with the daemon beside
    /// it (the state is taken out meanwhile: `f` changes the table
    /// through the daemon).
    fn with_lvs<R>(&mut self, f: impl FnOnce(&mut Lvs, &mut Self) -> R) -> Option<R> {
        let mut lvs = self.lvs.take()?;
        let r = f(&mut lvs, self);
        self.lvs = Some(lvs);
        Some(r)
    }

    /// Runs the keepalived half from `lvs`: loads its file into the table
    /// (the configuration must be valid: errors are returned, one
    /// `file:line: ...` each, and the daemon keeps no keepalived state).
    pub fn use_config(&mut self, lvs: Lvs) -> Result<ReloadReport, Vec<String>> {
        self.lvs = Some(lvs);
        let r = self.reload();
        if r.is_err() {
            self.lvs = None;
        }
        r
    }

    /// The keepalived state, if started with `--config`.
    pub fn lvs(&self) -> Option<&Lvs> {
        self.lvs.as_ref()
    }

    /// Re-reads the configuration (SIGHUP, the `reload` request). On any
    /// error nothing changes and every error is logged and returned.
    pub fn reload(&mut self) -> Result<ReloadReport, Vec<String>> {
        self.with_lvs(|lvs, d| lvs.reload(d)).unwrap_or_else(|| {
            Err(vec![
                "xvsd was started without --config: there is no configuration to reload".into(),
            ])
        })
    }

    /// Applies the health transitions that arrived (called by the loop
    /// whenever the health engine wakes it, and on every turn).
    pub fn health_events(&mut self) {
        self.with_lvs(|lvs, d| lvs.health_events(d));
    }

    /// Reads keepalived's VRRP state lines and switches the sync daemon
    /// (called every second).
    pub fn vrrp_events(&mut self) {
        self.with_lvs(|lvs, d| lvs.vrrp_events(d));
    }

    /// At shutdown: `omega` scripts (notify_down of alive real servers,
    /// quorum_down), then `lvs_flush_on_stop`; stops the checkers.
    pub fn shutdown_lvs(&mut self) {
        if let Some(lvs) = self.lvs.take() {
            lvs.shutdown(self);
        }
    }

    /// Per-RS health and quorum state of every service.
    pub fn health_report(&self) -> HealthReport {
        crate::lvs_report::health_report(&self.model, self.lvs.as_ref())
    }

    /// The health engine's wake-up descriptor, for the loop to poll.
    pub fn health_wake_fd(&self) -> Option<std::os::fd::RawFd> {
        self.lvs.as_ref().and_then(Lvs::wake_fd)
    }
}

impl<P: Plane> Director for Daemon<P> {
    fn model(&self) -> &Model {
        &self.model
    }
    fn commit(&mut self, req: &Request, owned: Option<Owned>) -> Result<(), ApiError> {
        Daemon::commit(self, req, owned)
    }
    fn handle(&mut self, req: Request) -> Response {
        Daemon::handle(self, req)
    }
    fn sync_daemons(&self) -> &[SyncDaemon] {
        Daemon::sync_daemons(self)
    }
}

#[cfg(test)]
#[path = "daemon_tests.rs"]
mod tests;
