//! The keepalived half of the daemon (`--config`): loading and reloading
//! the configuration into the table, applying health transitions, quorum
//! and sorry servers, notify scripts, `lvs_sync_daemon`. It works on the
//! table through [`Director`]; the daemon owns an [`Lvs`] and calls it.
//!
//! Ownership: the services a configuration defines are *config-owned*
//! (`Model::owned`, saved in the state file). A reload brings exactly those
//! services to what the configuration and the current health say (the
//! configuration wins over runtime changes) and deletes the owned services
//! the new configuration no longer has; services added with `xvsadm` are
//! never touched. Between reloads, a health change touches only the dests
//! whose wanted state changed, so runtime changes to other dests stay.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use xvs_core::api::Request;
use xvs_core::model::{Dest, ServiceKey};
use xvs_health::{RsId, RsState};
use xvs_keepalived::{FlushOnStop, Options, Script};

use crate::config::{self, Managed, ManagedRs, ManagedVs};
use crate::describe::describe;
use crate::director::Director;
use crate::health::Health;
use crate::lvs_sync;
use crate::reconcile::{delta, evaluate, full, Eval, QuorumEvent, RsHealth};
use crate::report::ReloadReport;
use crate::table::Model;
use crate::vrrp_follow::Follower;

/// Per config-owned virtual server: the quorum state and what was last
/// asked of the table for it.
#[derive(Debug, Clone, PartialEq)]
pub struct VsRun {
    /// Quorum state.
    pub quorum_up: bool,
    /// The sorry server is in use.
    pub sorry_active: bool,
    /// Sum of the alive real servers' weights.
    pub weight_sum: u64,
    /// The dests wanted in the table.
    pub applied: Vec<Dest>,
}

impl VsRun {
    fn from(ev: &Eval) -> VsRun {
        VsRun {
            quorum_up: ev.quorum_up,
            sorry_active: ev.sorry_active,
            weight_sum: ev.weight_sum,
            applied: ev.dests.clone(),
        }
    }
}

/// The keepalived state of a daemon started with `--config`.
pub struct Lvs {
    path: PathBuf,
    opts: Options,
    health: Box<dyn Health>,
    managed: Managed,
    runs: BTreeMap<ServiceKey, VsRun>,
    rs_up: HashMap<RsId, bool>,
    loaded_once: bool,
    reloads: u64,
    reload_failures: u64,
    /// keepalived's VRRP states (`notify_fifo`), for `lvs_sync_daemon`.
    follower: Option<Follower>,
}

/// Logs the mark rules a reload added and removed; their number.
fn log_mark_changes(
    old: &[xvs_core::fwmark::MarkRule],
    new: &[xvs_core::fwmark::MarkRule],
) -> usize {
    let mut n = 0;
    for r in old.iter().filter(|r| !new.contains(r)) {
        log::info!("reload: removed mark rule {r} (FWM {})", r.mark);
        n += 1;
    }
    for r in new.iter().filter(|r| !old.contains(r)) {
        log::info!("reload: added mark rule {r} (FWM {})", r.mark);
        n += 1;
    }
    n
}

fn health_map(states: Vec<(RsId, RsState)>) -> HashMap<RsId, RsState> {
    states.into_iter().collect()
}

fn rs_health(states: &HashMap<RsId, RsState>, vs: &ManagedVs, rs: &ManagedRs) -> RsHealth {
    match states.get(&vs.rs_id(rs)) {
        Some(s) => RsHealth {
            up: s.up,
            weight: s.weight,
        },
        None => RsHealth {
            up: !rs.checkers.iter().any(|c| c.common.alpha),
            weight: None,
        },
    }
}

fn vs_health(states: &HashMap<RsId, RsState>, vs: &ManagedVs) -> Vec<RsHealth> {
    vs.rs.iter().map(|rs| rs_health(states, vs, rs)).collect()
}

impl Lvs {
    /// A keepalived state for `path`, not loaded yet.
    pub fn new(path: PathBuf, opts: Options, health: Box<dyn Health>) -> Lvs {
        Lvs {
            path,
            opts,
            health,
            managed: Managed::default(),
            runs: BTreeMap::new(),
            rs_up: HashMap::new(),
            loaded_once: false,
            reloads: 0,
            reload_failures: 0,
            follower: None,
        }
    }

    /// The configuration in force.
    pub fn managed(&self) -> &Managed {
        &self.managed
    }

    /// The quorum state of each config-owned virtual server.
    pub fn runs(&self) -> &BTreeMap<ServiceKey, VsRun> {
        &self.runs
    }

    fn script(&self, s: &Option<Script>, what: String) {
        if let Some(s) = s {
            self.health
                .run_script(s, self.managed.script_user.as_ref(), &what);
        }
    }

    fn quorum_event(&self, vs: &ManagedVs, ev: &Eval) {
        let key = vs.key();
        match ev.event {
            QuorumEvent::None => {}
            QuorumEvent::Gained => {
                log::info!(
                    "Gained quorum {}+{}={} <= {} for VS {key}",
                    vs.quorum,
                    vs.hysteresis,
                    ev.threshold,
                    ev.weight_sum
                );
                if let Some(s) = &vs.sorry {
                    log::info!(
                        "{} sorry server {}:{} from VS {key}; adding back the alive real servers",
                        if s.inhibit { "Disabling" } else { "Removing" },
                        s.dest.addr,
                        s.dest.port
                    );
                }
                self.script(&vs.quorum_up, format!("quorum_up of {key}"));
            }
            QuorumEvent::Lost | QuorumEvent::StartDown => {
                log::info!(
                    "{} {}-{}={} > {} for VS {key}",
                    if ev.event == QuorumEvent::Lost {
                        "Lost quorum"
                    } else {
                        "Starting with quorum down"
                    },
                    vs.quorum,
                    vs.hysteresis,
                    ev.threshold,
                    ev.weight_sum
                );
                if let Some(s) = &vs.sorry {
                    log::info!(
                        "{} sorry server {}:{} to VS {key}; removing the alive real servers",
                        if s.inhibit { "Enabling" } else { "Adding" },
                        s.dest.addr,
                        s.dest.port
                    );
                }
                self.script(&vs.quorum_down, format!("quorum_down of {key}"));
            }
        }
    }
}

/// A restarted xvsd finds its table as it left it (the data plane
/// forwarded meanwhile): a real server in it with a weight starts up,
/// even with `alpha` (which makes keepalived start a server down), so
/// the restart takes nothing out of service; its checks then decide.
fn keep_serving(model: &Model, specs: &mut [xvs_health::RsSpec]) {
    for spec in specs.iter_mut() {
        let serving = model.service(&spec.id.service).is_some_and(|slot| {
            slot.dests.iter().any(|d| {
                std::net::SocketAddr::from((d.dest.addr, d.dest.port)) == spec.id.dest
                    && d.dest.weight > 0
            })
        });
        if serving {
            for c in &mut spec.checkers {
                c.common.alpha = false;
            }
        }
    }
}

impl Lvs {
    /// Re-reads the configuration into `d`'s table (SIGHUP, the `reload`
    /// request, the first load). On any error nothing changes and every
    /// error is logged and returned.
    pub fn reload(&mut self, d: &mut dyn Director) -> Result<ReloadReport, Vec<String>> {
        let r = self.reload_with(d);
        match &r {
            Ok(_) => self.reloads += 1,
            Err(_) => self.reload_failures += 1,
        }
        r
    }

    fn reload_with(&mut self, d: &mut dyn Director) -> Result<ReloadReport, Vec<String>> {
        let file = self.path.display().to_string();
        log::info!("reading {file}");
        let loaded = match config::load(&self.path, &self.opts) {
            Ok(l) => l,
            Err(errs) => {
                for w in &errs.warnings {
                    log::warn!("{w}");
                }
                for e in &errs.errors {
                    log::error!("{e}");
                }
                log::error!(
                    "{file}: configuration refused ({} error(s)); the running configuration is kept",
                    errs.errors.len()
                );
                return Err(errs.errors.iter().map(|e| e.to_string()).collect());
            }
        };
        for w in &loaded.warnings {
            log::warn!("{w}");
        }
        let new = loaded.managed;
        let old_specs = self.managed.rs_specs();
        let mut specs = new.rs_specs();
        if !self.loaded_once {
            keep_serving(d.model(), &mut specs);
        }
        if let Err(e) = self.health.sync(specs) {
            log::error!("{file}: health checkers refused: {e}; the running configuration is kept");
            let _ = self.health.sync(old_specs);
            return Err(vec![format!("{file}: health checkers refused: {e}")]);
        }
        let states = health_map(self.health.states());

        let mut base = d.model().clone();
        let mut reqs = Vec::new();
        if !self.loaded_once && new.flush_at_start {
            log::info!("lvs_flush: clearing the table");
            reqs.push(Request::Clear);
            base.services.clear();
        }
        for key in &d.model().owned {
            if new.vs(key).is_none() && base.service(key).is_some() {
                log::info!("Removing Virtual Server {key} (no longer in {file})");
                reqs.push(Request::DelService { key: *key });
            }
        }
        let mut evals = Vec::new();
        for vs in &new.services {
            let key = vs.key();
            let prev = self.runs.get(&key).map(|r| r.quorum_up);
            let ev = evaluate(vs, &vs_health(&states, vs), prev);
            reqs.extend(full(&base, &vs.service, &ev.dests));
            evals.push(ev);
        }
        let t = new.timeouts.apply(base.timeouts);
        if t != base.timeouts {
            reqs.push(Request::SetTimeouts { timeouts: t });
        }
        for r in &reqs {
            log::info!("reload: {}", describe(r));
        }
        let mut changes = reqs.len();
        let old_marks = d.model().mark_rules.clone();
        if let Err(e) = d.commit(&Request::Batch { requests: reqs }, Some(new.owned())) {
            log::error!(
                "{file}: the table refused the configuration: {e}; the running configuration is kept"
            );
            let _ = self.health.sync(old_specs);
            return Err(vec![format!(
                "{file}: the table refused the configuration: {e}"
            )]);
        }
        changes += log_mark_changes(&old_marks, &d.model().mark_rules);
        let old_sync = self.managed.sync.take();
        self.managed = new;
        lvs_sync::apply(
            d,
            &mut self.follower,
            self.managed.sync.as_ref(),
            old_sync.as_ref(),
        );
        self.runs.clear();
        self.rs_up.clear();
        for (vs, ev) in self.managed.services.iter().zip(&evals) {
            self.quorum_event(vs, ev);
            self.runs.insert(vs.key(), VsRun::from(ev));
            for rs in &vs.rs {
                let h = rs_health(&states, vs, rs);
                self.rs_up.insert(vs.rs_id(rs), h.up);
            }
        }
        self.loaded_once = true;
        let report = ReloadReport {
            file,
            services: self.managed.services.len(),
            real_servers: self.managed.rs_count(),
            changes,
            warnings: loaded.warnings.iter().map(|w| w.to_string()).collect(),
        };
        log::info!(
            "configuration loaded: {} virtual server(s), {} real server(s), {} table change(s)",
            report.services,
            report.real_servers,
            report.changes
        );
        Ok(report)
    }

    /// Applies the health transitions that arrived (called by the loop
    /// whenever the health engine wakes it, and on every turn).
    pub fn health_events(&mut self, d: &mut dyn Director) {
        let ts = self.health.take_transitions();
        if !ts.is_empty() {
            self.apply_transitions(d, ts);
        }
    }

    fn apply_transitions(&mut self, d: &mut dyn Director, ts: Vec<xvs_health::Transition>) {
        let states = health_map(self.health.states());
        let mut affected = BTreeSet::new();
        let mut reasons: HashMap<(ServiceKey, IpAddr, u16), String> = HashMap::new();
        for t in ts {
            let Some(vs) = self.managed.vs(&t.rs.service) else {
                continue;
            };
            let Some(rs) = vs.rs.iter().find(|r| vs.rs_id(r) == t.rs) else {
                continue;
            };
            let prev = self.rs_up.insert(t.rs, t.up);
            // A weight change of an alive server runs no script.
            if !(t.up && prev == Some(true)) {
                let (s, what) = if t.up {
                    (&rs.notify_up, "notify_up")
                } else {
                    (&rs.notify_down, "notify_down")
                };
                self.script(s, format!("{what} of {}", t.rs));
            }
            let ip = rs.dest.addr;
            reasons.insert(
                (t.rs.service, ip, rs.dest.port),
                format!("{}: {}", if t.up { "up" } else { "down" }, t.reason),
            );
            affected.insert(t.rs.service);
        }
        let mut reqs = Vec::new();
        for key in affected {
            let Some(vs) = self.managed.vs(&key) else {
                continue;
            };
            let Some(run) = self.runs.get(&key).cloned() else {
                continue;
            };
            let ev = evaluate(vs, &vs_health(&states, vs), Some(run.quorum_up));
            self.quorum_event(vs, &ev);
            if d.model().owned.contains(&key) {
                for r in delta(d.model(), key, &run.applied, &ev.dests) {
                    let why = match &r {
                        Request::AddDest { dest, .. } | Request::EditDest { dest, .. } => {
                            reasons.get(&(key, dest.addr, dest.port))
                        }
                        Request::DelDest { addr, port, .. } => reasons.get(&(key, *addr, *port)),
                        _ => None,
                    };
                    let why = why.map(String::as_str).unwrap_or(match ev.event {
                        QuorumEvent::Lost => "quorum lost",
                        QuorumEvent::Gained => "quorum gained",
                        _ => "health change",
                    });
                    log::info!("health: {} ({why})", describe(&r));
                    reqs.push(r);
                }
            } else {
                log::info!(
                    "health: VS {key} was removed at runtime; the change waits for the next reload"
                );
            }
            self.runs.insert(key, VsRun::from(&ev));
        }
        if !reqs.is_empty() {
            if let Err(e) = d.commit(&Request::Batch { requests: reqs }, None) {
                log::error!("health: the table refused a health change: {e}");
            }
        }
    }

    /// At shutdown: `omega` scripts (notify_down of alive real servers,
    /// quorum_down), then `lvs_flush_on_stop`; stops the checkers.
    pub fn shutdown(self, d: &mut dyn Director) {
        let mut scripts = Vec::new();
        for vs in &self.managed.services {
            if !vs.omega {
                continue;
            }
            for rs in &vs.rs {
                let id = vs.rs_id(rs);
                if self.rs_up.get(&id) == Some(&true) {
                    if let Some(s) = &rs.notify_down {
                        scripts.push((s.clone(), format!("notify_down of {id} (omega)")));
                    }
                }
            }
            if let Some(s) = &vs.quorum_down {
                scripts.push((s.clone(), format!("quorum_down of {} (omega)", vs.key())));
            }
        }
        if !scripts.is_empty() {
            self.health.run_scripts_and_wait(
                scripts,
                self.managed.script_user.as_ref(),
                Duration::from_secs(5),
            );
        }
        let flush = match self.managed.flush_on_stop {
            Some(FlushOnStop::Full) => Some(Request::Clear),
            Some(FlushOnStop::Vs) => Some(Request::Batch {
                requests: d
                    .model()
                    .owned
                    .iter()
                    .map(|k| Request::DelService { key: *k })
                    .collect(),
            }),
            None => None,
        };
        if let Some(r) = flush {
            log::info!("lvs_flush_on_stop: {}", describe(&r));
            if let Err(e) = d.commit(&r, None) {
                log::error!("lvs_flush_on_stop: {e}");
            }
        }
    }

    /// The health engine's wake-up descriptor, for the loop to poll.
    pub fn wake_fd(&self) -> Option<std::os::fd::RawFd> {
        self.health.wake_fd()
    }

    /// Reads keepalived's VRRP state lines and switches the sync daemon
    /// (called every second).
    pub fn vrrp_events(&mut self, d: &mut dyn Director) {
        let lines = self
            .follower
            .as_mut()
            .map(Follower::lines)
            .unwrap_or_default();
        if let Some(cfg) = &self.managed.sync {
            lvs_sync::follow(d, cfg, lines);
        }
    }

    /// The configuration file (`--config`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current state of every checked real server.
    pub(crate) fn states(&self) -> HashMap<RsId, RsState> {
        health_map(self.health.states())
    }

    /// (successful, refused) loads since start, the first included.
    pub fn reload_counts(&self) -> (u64, u64) {
        (self.reloads, self.reload_failures)
    }
}

#[cfg(test)]
#[path = "lvs_tests.rs"]
mod tests;
