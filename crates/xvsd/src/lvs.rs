//! The keepalived half of the daemon (`--config`): loading and reloading
//! the configuration into the table, applying health transitions, quorum
//! and sorry servers, notify scripts, and the `health` report.
//!
//! Ownership: the services a configuration defines are *config-owned*
//! (`Model::owned`, saved in the state file). A reload brings exactly those
//! services to what the configuration and the current health say (the
//! configuration wins over runtime changes) and deletes the owned services
//! the new configuration no longer has; services added with `xvsadm` are
//! never touched. Between reloads, a health change touches only the dests
//! whose wanted state changed, so runtime changes to other dests stay.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use xvs_core::api::Request;
use xvs_core::model::{Dest, ServiceKey};
use xvs_health::{RsId, RsState};
use xvs_keepalived::{FlushOnStop, Options, Script};

use crate::config::{self, Managed, ManagedRs, ManagedVs};
use crate::daemon::{describe, Daemon, Plane};
use crate::health::Health;
use crate::reconcile::{delta, evaluate, full, Eval, QuorumEvent, RsHealth};

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
    pub(crate) follower: Option<crate::vrrp_follow::Follower>,
}

/// What a successful load did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    /// The file read.
    pub file: String,
    /// Virtual servers in it (groups expanded).
    pub services: usize,
    /// Real servers in it.
    pub real_servers: usize,
    /// Table changes applied.
    pub changes: usize,
    /// Warnings, `file:line: warning: ...`.
    pub warnings: Vec<String>,
}

/// One checker in the `health` answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckerHealth {
    /// keepalived's keyword.
    pub kind: String,
    /// `addr:port` checked.
    pub target: String,
    /// Checker up.
    pub up: bool,
    /// Result text of its last attempt.
    pub last_result: Option<String>,
    /// Whether its last attempt succeeded.
    pub last_ok: Option<bool>,
    /// End of its last attempt, Unix milliseconds.
    pub last_check_ms: Option<u64>,
}

/// One real server in the `health` answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RsReport {
    /// Address.
    pub addr: Ipv4Addr,
    /// Port.
    pub port: u16,
    /// From the configuration (false: added with xvsadm, not checked).
    pub config_owned: bool,
    /// Health-checked (config-owned with at least one checker).
    pub checked: bool,
    /// Alive: every checker up (always true when not checked).
    pub up: bool,
    /// In the table now.
    pub in_table: bool,
    /// Weight in the table now.
    pub weight: Option<u32>,
    /// Configured weight (config-owned only).
    pub configured_weight: Option<u32>,
    /// `misc_dynamic` weight in force.
    pub dynamic_weight: Option<u32>,
    /// Result text of the last check.
    pub last_result: Option<String>,
    /// Whether the last check succeeded.
    pub last_ok: Option<bool>,
    /// End of the last check, Unix milliseconds.
    pub last_check_ms: Option<u64>,
    /// Up/down changes since it was added.
    pub transitions: u64,
    /// Per checker.
    pub checkers: Vec<CheckerHealth>,
}

/// One service in the `health` answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SvcReport {
    /// The service.
    pub key: ServiceKey,
    /// From the configuration.
    pub config_owned: bool,
    /// In the table now.
    pub in_table: bool,
    /// `quorum` (config-owned only).
    pub quorum: Option<u32>,
    /// `hysteresis`.
    pub hysteresis: Option<u32>,
    /// Quorum state.
    pub quorum_up: Option<bool>,
    /// Sum of the alive real servers' weights.
    pub alive_weight: Option<u64>,
    /// The sorry server (`addr:port`), if configured.
    pub sorry_server: Option<String>,
    /// Whether it is in use.
    pub sorry_active: bool,
    /// Real servers.
    pub real_servers: Vec<RsReport>,
}

/// The `health` answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The configuration file (`--config`), if any.
    pub config: Option<String>,
    /// Successful reloads since start (the first load included).
    pub reloads: u64,
    /// Refused reloads since start.
    pub reload_failures: u64,
    /// Every service of the table and every config-owned one.
    pub services: Vec<SvcReport>,
}

fn unix_ms(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
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

impl<P: Plane> Daemon<P> {
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
        let Some(mut lvs) = self.lvs.take() else {
            return Err(vec![
                "xvsd was started without --config: there is no configuration to reload".into(),
            ]);
        };
        let r = self.reload_with(&mut lvs);
        match &r {
            Ok(_) => lvs.reloads += 1,
            Err(_) => lvs.reload_failures += 1,
        }
        self.lvs = Some(lvs);
        r
    }

    fn reload_with(&mut self, lvs: &mut Lvs) -> Result<ReloadReport, Vec<String>> {
        let file = lvs.path.display().to_string();
        log::info!("reading {file}");
        let loaded = match config::load(&lvs.path, &lvs.opts) {
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
        let old_specs = lvs.managed.rs_specs();
        let mut specs = new.rs_specs();
        if !lvs.loaded_once {
            self.keep_serving(&mut specs);
        }
        if let Err(e) = lvs.health.sync(specs) {
            log::error!("{file}: health checkers refused: {e}; the running configuration is kept");
            let _ = lvs.health.sync(old_specs);
            return Err(vec![format!("{file}: health checkers refused: {e}")]);
        }
        let states = health_map(lvs.health.states());

        let mut base = self.model.clone();
        let mut reqs = Vec::new();
        if !lvs.loaded_once && new.flush_at_start {
            log::info!("lvs_flush: clearing the table");
            reqs.push(Request::Clear);
            base.services.clear();
        }
        for key in &self.model.owned {
            if new.vs(key).is_none() && base.service(key).is_some() {
                log::info!("Removing Virtual Server {key} (no longer in {file})");
                reqs.push(Request::DelService { key: *key });
            }
        }
        let mut evals = Vec::new();
        for vs in &new.services {
            let key = vs.key();
            let prev = lvs.runs.get(&key).map(|r| r.quorum_up);
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
        let changes = reqs.len();
        if let Err(e) = self.commit(&Request::Batch { requests: reqs }, Some(new.keys())) {
            log::error!(
                "{file}: the table refused the configuration: {e}; the running configuration is kept"
            );
            let _ = lvs.health.sync(old_specs);
            return Err(vec![format!(
                "{file}: the table refused the configuration: {e}"
            )]);
        }
        let old_sync = lvs.managed.sync.take();
        lvs.managed = new;
        self.apply_sync(lvs, old_sync.as_ref());
        lvs.runs.clear();
        lvs.rs_up.clear();
        for (vs, ev) in lvs.managed.services.iter().zip(&evals) {
            lvs.quorum_event(vs, ev);
            lvs.runs.insert(vs.key(), VsRun::from(ev));
            for rs in &vs.rs {
                let h = rs_health(&states, vs, rs);
                lvs.rs_up.insert(vs.rs_id(rs), h.up);
            }
        }
        lvs.loaded_once = true;
        let report = ReloadReport {
            file,
            services: lvs.managed.services.len(),
            real_servers: lvs.managed.rs_count(),
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

    /// A restarted xvsd finds its table as it left it (the data plane
    /// forwarded meanwhile): a real server in it with a weight starts up,
    /// even with `alpha` (which makes keepalived start a server down), so
    /// the restart takes nothing out of service; its checks then decide.
    fn keep_serving(&self, specs: &mut [xvs_health::RsSpec]) {
        for spec in specs.iter_mut() {
            let serving = self.model.service(&spec.id.service).is_some_and(|slot| {
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

    /// Applies the health transitions that arrived (called by the loop
    /// whenever the health engine wakes it, and on every turn).
    pub fn health_events(&mut self) {
        let Some(mut lvs) = self.lvs.take() else {
            return;
        };
        let ts = lvs.health.take_transitions();
        if !ts.is_empty() {
            self.apply_transitions(&mut lvs, ts);
        }
        self.lvs = Some(lvs);
    }

    fn apply_transitions(&mut self, lvs: &mut Lvs, ts: Vec<xvs_health::Transition>) {
        let states = health_map(lvs.health.states());
        let mut affected = BTreeSet::new();
        let mut reasons: HashMap<(ServiceKey, Ipv4Addr, u16), String> = HashMap::new();
        for t in ts {
            let Some(vs) = lvs.managed.vs(&t.rs.service) else {
                continue;
            };
            let Some(rs) = vs.rs.iter().find(|r| vs.rs_id(r) == t.rs) else {
                continue;
            };
            let prev = lvs.rs_up.insert(t.rs, t.up);
            // A weight change of an alive server runs no script.
            if !(t.up && prev == Some(true)) {
                let (s, what) = if t.up {
                    (&rs.notify_up, "notify_up")
                } else {
                    (&rs.notify_down, "notify_down")
                };
                lvs.script(s, format!("{what} of {}", t.rs));
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
            let Some(vs) = lvs.managed.vs(&key) else {
                continue;
            };
            let Some(run) = lvs.runs.get(&key).cloned() else {
                continue;
            };
            let ev = evaluate(vs, &vs_health(&states, vs), Some(run.quorum_up));
            lvs.quorum_event(vs, &ev);
            if self.model.owned.contains(&key) {
                for r in delta(&self.model, key, &run.applied, &ev.dests) {
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
            lvs.runs.insert(key, VsRun::from(&ev));
        }
        if !reqs.is_empty() {
            if let Err(e) = self.commit(&Request::Batch { requests: reqs }, None) {
                log::error!("health: the table refused a health change: {e}");
            }
        }
    }

    /// At shutdown: `omega` scripts (notify_down of alive real servers,
    /// quorum_down), then `lvs_flush_on_stop`; stops the checkers.
    pub fn shutdown_lvs(&mut self) {
        let Some(lvs) = self.lvs.take() else {
            return;
        };
        let mut scripts = Vec::new();
        for vs in &lvs.managed.services {
            if !vs.omega {
                continue;
            }
            for rs in &vs.rs {
                let id = vs.rs_id(rs);
                if lvs.rs_up.get(&id) == Some(&true) {
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
            lvs.health.run_scripts_and_wait(
                scripts,
                lvs.managed.script_user.as_ref(),
                Duration::from_secs(5),
            );
        }
        let flush = match lvs.managed.flush_on_stop {
            Some(FlushOnStop::Full) => Some(Request::Clear),
            Some(FlushOnStop::Vs) => Some(Request::Batch {
                requests: self
                    .model
                    .owned
                    .iter()
                    .map(|k| Request::DelService { key: *k })
                    .collect(),
            }),
            None => None,
        };
        if let Some(r) = flush {
            log::info!("lvs_flush_on_stop: {}", describe(&r));
            if let Err(e) = self.commit(&r, None) {
                log::error!("lvs_flush_on_stop: {e}");
            }
        }
        drop(lvs);
    }

    /// Per-RS health and quorum state of every service.
    pub fn health_report(&self) -> HealthReport {
        let states = self
            .lvs
            .as_ref()
            .map(|l| health_map(l.health.states()))
            .unwrap_or_default();
        let mut keys: BTreeSet<ServiceKey> = self.model.services.keys().copied().collect();
        if let Some(l) = &self.lvs {
            keys.extend(l.managed.keys());
        }
        let mut services = Vec::new();
        for key in keys {
            let slot = self.model.service(&key);
            let vs = self.lvs.as_ref().and_then(|l| l.managed.vs(&key));
            let run = self.lvs.as_ref().and_then(|l| l.runs.get(&key));
            let owned = self.model.owned.contains(&key) || (vs.is_some() && slot.is_none());
            let in_table = |a: Ipv4Addr, p: u16| {
                slot.and_then(|s| {
                    s.dests
                        .iter()
                        .find(|d| d.dest.addr == a && d.dest.port == p)
                        .map(|d| d.dest.weight)
                })
            };
            let mut rss = Vec::new();
            if let Some(vs) = vs {
                for rs in &vs.rs {
                    let st = states.get(&vs.rs_id(rs));
                    let w = in_table(rs.dest.addr, rs.dest.port);
                    rss.push(RsReport {
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
                    });
                }
            }
            if let Some(slot) = slot {
                for d in &slot.dests {
                    let known = rss
                        .iter()
                        .any(|r| r.addr == d.dest.addr && r.port == d.dest.port)
                        || vs.and_then(|v| v.sorry.as_ref()).is_some_and(|s| {
                            s.dest.addr == d.dest.addr && s.dest.port == d.dest.port
                        });
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
        HealthReport {
            config: self.lvs.as_ref().map(|l| l.path.display().to_string()),
            reloads: self.lvs.as_ref().map_or(0, |l| l.reloads),
            reload_failures: self.lvs.as_ref().map_or(0, |l| l.reload_failures),
            services,
        }
    }

    /// The health engine's wake-up descriptor, for the loop to poll.
    pub fn health_wake_fd(&self) -> Option<std::os::fd::RawFd> {
        self.lvs.as_ref().and_then(|l| l.health.wake_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::tests::{list, Mem, LIMITS};
    use std::cell::RefCell;
    use std::rc::Rc;
    use xvs_core::api::Response;
    use xvs_core::model::{FwdMethod, Protocol, Service, Stats};
    use xvs_health::{RsSpec, Transition};

    #[derive(Default)]
    struct Inner {
        states: BTreeMap<RsId, RsState>,
        pending: Vec<Transition>,
        scripts: Vec<String>,
    }

    #[derive(Clone, Default)]
    struct Fake(Rc<RefCell<Inner>>);

    impl Fake {
        /// The health engine reports `addr` of the service on port 80.
        fn set(&self, port: u16, last: u8, up: bool, weight: Option<u32>) {
            let id = rs(port, last);
            let mut i = self.0.borrow_mut();
            let st = i.states.get_mut(&id).expect("known real server");
            if st.up != up {
                st.transitions += 1;
            }
            st.up = up;
            st.weight = weight;
            i.pending.push(Transition {
                rs: id,
                up,
                reason: if up {
                    "check ok".into()
                } else {
                    "check failed".into()
                },
                weight,
            });
        }
        fn scripts(&self) -> Vec<String> {
            std::mem::take(&mut self.0.borrow_mut().scripts)
        }
    }

    impl Health for Fake {
        fn sync(&mut self, specs: Vec<RsSpec>) -> Result<(), String> {
            let mut i = self.0.borrow_mut();
            let keep: BTreeSet<RsId> = specs.iter().map(|s| s.id).collect();
            i.states.retain(|k, _| keep.contains(k));
            for s in specs {
                i.states.entry(s.id).or_insert(RsState {
                    up: !s.checkers.iter().any(|c| c.common.alpha),
                    weight: None,
                    last_result: None,
                    last_check: None,
                    transitions: 0,
                    checkers: vec![],
                });
            }
            Ok(())
        }
        fn states(&self) -> Vec<(RsId, RsState)> {
            self.0
                .borrow()
                .states
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect()
        }
        fn take_transitions(&mut self) -> Vec<Transition> {
            std::mem::take(&mut self.0.borrow_mut().pending)
        }
        fn run_script(&self, s: &Script, _: Option<&xvs_keepalived::ScriptUser>, what: &str) {
            self.0
                .borrow_mut()
                .scripts
                .push(format!("{what}: {}", s.args.join(" ")));
        }
        fn run_scripts_and_wait(
            &self,
            scripts: Vec<(Script, String)>,
            u: Option<&xvs_keepalived::ScriptUser>,
            _: Duration,
        ) {
            for (s, w) in scripts {
                self.run_script(&s, u, &w);
            }
        }
    }

    fn vip() -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, 1)
    }

    fn key(port: u16) -> ServiceKey {
        ServiceKey {
            proto: Protocol::Tcp,
            addr: vip(),
            port,
        }
    }

    fn rs(port: u16, last: u8) -> RsId {
        RsId {
            service: key(port),
            dest: std::net::SocketAddr::from(([10, 0, 1, last], 80)),
        }
    }

    struct T {
        d: Daemon<Mem>,
        h: Fake,
        file: PathBuf,
        dir: PathBuf,
    }

    impl Drop for T {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

    fn start(conf: &str, state: bool) -> T {
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("xvsd-lvs-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keepalived.conf");
        std::fs::write(&file, conf).unwrap();
        let sf = state.then(|| dir.join("state"));
        let mut d = Daemon::new(Mem::default(), LIMITS, sf).unwrap();
        let h = Fake::default();
        let lvs = Lvs::new(
            file.clone(),
            Options { config_id: None },
            Box::new(h.clone()),
        );
        d.use_config(lvs).unwrap_or_else(|e| panic!("{e:?}"));
        T { d, h, file, dir }
    }

    impl T {
        fn rewrite(&self, conf: &str) {
            std::fs::write(&self.file, conf).unwrap();
        }
        fn events(&mut self) {
            self.d.health_events();
        }
        /// (last octet, weight) of each dest of the service on `port`, sorted.
        fn dests(&mut self, port: u16) -> Vec<(u8, u32)> {
            let t = list(&mut self.d);
            let mut v: Vec<(u8, u32)> = t
                .services
                .iter()
                .find(|s| s.service.key == key(port))
                .map(|s| {
                    s.dests
                        .iter()
                        .map(|d| (d.dest.addr.octets()[3], d.dest.weight))
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        }
        fn services(&mut self) -> Vec<u16> {
            list(&mut self.d)
                .services
                .iter()
                .map(|s| s.service.key.port)
                .collect()
        }
    }

    fn conf(body: &str) -> String {
        format!(
            "global_defs {{\n  lvs_timeouts tcp 1000\n}}\n\
             virtual_server 10.0.0.1 80 {{\n  protocol TCP\n  lvs_sched wrr\n  lvs_method NAT\n{body}}}\n"
        )
    }

    fn rs_block(last: u8, extra: &str) -> String {
        format!("  real_server 10.0.1.{last} 80 {{\n{extra}    TCP_CHECK {{\n    }}\n  }}\n")
    }

    fn three(weights: [u32; 3], extra: &str) -> String {
        let mut b = String::from(extra);
        for (i, w) in weights.iter().enumerate() {
            b.push_str(&rs_block(
                i as u8 + 1,
                &format!("    weight {w}\n    notify_up \"/bin/up {}\"\n    notify_down \"/bin/down {}\"\n", i + 1, i + 1),
            ));
        }
        conf(&b)
    }

    #[test]
    fn load_owns_its_services_and_applies_lvs_timeouts() {
        let mut t = start(&three([1, 2, 3], ""), false);
        assert_eq!(t.dests(80), [(1, 1), (2, 2), (3, 3)]);
        assert_eq!(t.d.model.owned, BTreeSet::from([key(80)]));
        assert_eq!(t.d.timeouts().tcp, 1000);
        let s = t.d.model.service(&key(80)).unwrap();
        assert_eq!(s.service.scheduler, "wrr");
        assert!(s.dests.iter().all(|d| d.dest.fwd == FwdMethod::Masq));
    }

    #[test]
    fn reload_diffs_keeps_runtime_services_and_unchanged_dests() {
        let mut t = start(&three([1, 2, 3], ""), false);
        // A runtime service beside the configuration's.
        let r = t.d.handle(Request::AddService {
            service: Service::new(key(8080), "rr"),
        });
        assert_eq!(r, Response::Ok);
        let id_of = |t: &T, last: u8| {
            t.d.model
                .service(&key(80))
                .unwrap()
                .dests
                .iter()
                .find(|d| d.dest.addr.octets()[3] == last)
                .unwrap()
                .id
        };
        let id1 = id_of(&t, 1);
        t.d.plane_mut().stats.insert(
            id1,
            Stats {
                conns: 42,
                ..Stats::default()
            },
        );
        // rs2's weight changes, rs3 goes, a second service comes.
        let mut c = conf(&format!(
            "{}{}",
            rs_block(1, "    weight 1\n"),
            rs_block(2, "    weight 5\n")
        ));
        c.push_str(
            "virtual_server 10.0.0.1 81 {\n  protocol TCP\n  real_server 10.0.1.9 81 {\n  }\n}\n",
        );
        t.rewrite(&c);
        let rep = t.d.reload().unwrap();
        assert_eq!((rep.services, rep.real_servers, rep.changes), (2, 3, 4));
        assert_eq!(t.dests(80), [(1, 1), (2, 5)]);
        assert_eq!(id_of(&t, 1), id1, "rs1 keeps its slot");
        assert_eq!(t.d.plane_mut().stats[&id1].conns, 42, "and its counters");
        assert_eq!(t.services(), [80, 81, 8080]);
        assert_eq!(t.d.model.owned, BTreeSet::from([key(80), key(81)]));
        // A configuration without port 80: the owned service goes, the
        // runtime one stays.
        t.rewrite(
            "virtual_server 10.0.0.1 81 {\n  protocol TCP\n  real_server 10.0.1.9 81 {\n  }\n}\n",
        );
        t.d.reload().unwrap();
        assert_eq!(t.services(), [81, 8080]);
    }

    #[test]
    fn a_bad_configuration_is_refused_and_the_table_kept() {
        let mut t = start(&three([1, 2, 3], ""), false);
        let before = list(&mut t.d);
        let f = t.file.display().to_string();
        // A parse error, then something xvsd cannot run.
        t.rewrite(&conf(
            "  lvs_sched nosuch\n  real_server 10.0.1.1 80 {\n  }\n",
        ));
        let errs = t.d.reload().unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(&format!("{f}:8: lvs_sched")),
            "{errs:?}"
        );
        t.rewrite(&conf("  real_server 10.0.1.1 80 {\n    SMTP_CHECK {\n    }\n  }\n  real_server 10.0.1.2 80 {\n    PING_CHECK {\n    }\n  }\n"));
        let errs = t.d.reload().unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with(&format!("{f}:9: SMTP_CHECK is not supported")),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with(&format!("{f}:13: PING_CHECK is not supported")),
            "{errs:?}"
        );
        assert_eq!(list(&mut t.d), before);
        assert_eq!(t.d.health_report().reload_failures, 2);
        assert_eq!(
            t.h.states().len(),
            3,
            "the checkers are those of the running configuration"
        );
    }

    #[test]
    fn failing_servers_leave_and_come_back_with_scripts() {
        let mut t = start(&three([1, 2, 3], ""), false);
        t.h.set(80, 2, false, None);
        t.events();
        assert_eq!(t.dests(80), [(1, 1), (3, 3)]);
        assert_eq!(
            t.h.scripts(),
            ["notify_down of [10.0.1.2]:80 of TCP 10.0.0.1:80: /bin/down 2"]
        );
        t.h.set(80, 2, true, None);
        t.events();
        assert_eq!(t.dests(80), [(1, 1), (2, 2), (3, 3)]);
        assert_eq!(
            t.h.scripts(),
            ["notify_up of [10.0.1.2]:80 of TCP 10.0.0.1:80: /bin/up 2"]
        );
        // misc_dynamic weight: applied, no script.
        t.h.set(80, 3, true, Some(9));
        t.events();
        assert_eq!(t.dests(80), [(1, 1), (2, 2), (3, 9)]);
        assert!(t.h.scripts().is_empty());
        let rep = t.d.health_report();
        let r = &rep.services[0].real_servers[1];
        assert_eq!((r.addr.octets()[3], r.up, r.transitions), (2, true, 2));
    }

    #[test]
    fn inhibit_on_failure_drains_at_weight_zero() {
        let mut t = start(&three([1, 2, 3], "  inhibit_on_failure\n"), false);
        t.h.set(80, 1, false, None);
        t.events();
        assert_eq!(t.dests(80), [(1, 0), (2, 2), (3, 3)]);
        t.h.set(80, 1, true, None);
        t.events();
        assert_eq!(t.dests(80), [(1, 1), (2, 2), (3, 3)]);
    }

    #[test]
    fn alpha_servers_start_out_of_the_table() {
        let mut t = start(&three([1, 2, 3], "  alpha\n"), false);
        assert!(t.dests(80).is_empty());
        t.h.set(80, 1, true, None);
        t.events();
        assert_eq!(t.dests(80), [(1, 1)]);
    }

    #[test]
    fn a_restart_keeps_alpha_servers_that_were_serving() {
        let mut t = start(&three([1, 2, 3], "  alpha\n"), true);
        t.h.set(80, 1, true, None);
        t.events();
        assert_eq!(t.dests(80), [(1, 1)]);
        // xvsd restarts on the same state file and configuration.
        let mut d = Daemon::new(Mem::default(), LIMITS, Some(t.dir.join("state"))).unwrap();
        let h = Fake::default();
        let lvs = Lvs::new(
            t.file.clone(),
            Options { config_id: None },
            Box::new(h.clone()),
        );
        d.use_config(lvs).unwrap();
        let mut t2 = T {
            d,
            h,
            file: t.file.clone(),
            dir: t.dir.clone(),
        };
        assert_eq!(t2.dests(80), [(1, 1)], "rs1 was serving: it stays");
    }

    #[test]
    fn sorry_server_and_quorum() {
        let extra = "  sorry_server 10.0.1.99 80\n  quorum 3\n  hysteresis 1\n  quorum_up /bin/qup\n  quorum_down /bin/qdown\n";
        let mut t = start(&three([1, 2, 3], extra), false);
        assert_eq!(t.dests(80), [(1, 1), (2, 2), (3, 3)]);
        // 6 alive; lost below 3 - 1 = 2.
        t.h.set(80, 3, false, None);
        t.events();
        assert_eq!(t.dests(80), [(1, 1), (2, 2)]);
        t.h.scripts();
        // 1 alive < 2: lost, the sorry server takes over from rs1.
        t.h.set(80, 2, false, None);
        t.events();
        assert_eq!(t.dests(80), [(99, 1)]);
        assert_eq!(
            t.h.scripts(),
            [
                "notify_down of [10.0.1.2]:80 of TCP 10.0.0.1:80: /bin/down 2",
                "quorum_down of TCP 10.0.0.1:80: /bin/qdown"
            ]
        );
        t.h.set(80, 1, false, None);
        t.events();
        assert_eq!(t.dests(80), [(99, 1)]);
        // Back: 2 alive < 3 + 1: still the sorry server.
        t.h.set(80, 2, true, None);
        t.events();
        assert_eq!(t.dests(80), [(99, 1)]);
        // 5 >= 4: gained, the sorry server leaves, the alive ones come in.
        t.h.set(80, 3, true, None);
        t.events();
        assert_eq!(t.dests(80), [(2, 2), (3, 3)]);
        let s = t.h.scripts();
        assert!(
            s.contains(&"quorum_up of TCP 10.0.0.1:80: /bin/qup".to_string()),
            "{s:?}"
        );
        let rep = t.d.health_report();
        assert_eq!(rep.services[0].quorum_up, Some(true));
        assert!(!rep.services[0].sorry_active);
    }

    #[test]
    fn the_sorry_server_answers_when_every_server_is_down() {
        let mut t = start(
            &three(
                [1, 1, 1],
                "  sorry_server 10.0.1.99 80\n  sorry_server_inhibit\n  quorum_down /bin/qdown\n",
            ),
            false,
        );
        assert_eq!(t.dests(80), [(1, 1), (2, 1), (3, 1), (99, 0)]);
        for i in 1..=3 {
            t.h.set(80, i, false, None);
        }
        t.events();
        assert_eq!(t.dests(80), [(99, 1)]);
        assert!(t
            .h
            .scripts()
            .contains(&"quorum_down of TCP 10.0.0.1:80: /bin/qdown".to_string()));
        t.h.set(80, 2, true, None);
        t.events();
        assert_eq!(t.dests(80), [(2, 1), (99, 0)]);
    }

    #[test]
    fn runtime_changes_last_until_the_next_reload() {
        let mut t = start(&three([1, 2, 3], ""), true);
        let mut d = Dest::new(Ipv4Addr::new(10, 0, 1, 3), 80);
        d.fwd = FwdMethod::Masq;
        d.weight = 7;
        assert_eq!(
            t.d.handle(Request::EditDest {
                key: key(80),
                dest: d
            }),
            Response::Ok
        );
        t.h.set(80, 1, false, None);
        t.events();
        assert_eq!(t.dests(80), [(2, 2), (3, 7)], "the runtime weight stays");
        t.d.reload().unwrap();
        assert_eq!(t.dests(80), [(2, 2), (3, 3)], "the configuration wins");
        // -D ends ownership: health changes no longer touch it.
        assert_eq!(
            t.d.handle(Request::DelService { key: key(80) }),
            Response::Ok
        );
        assert!(t.d.model.owned.is_empty());
        t.h.set(80, 1, true, None);
        t.events();
        assert!(t.services().is_empty());
        // The state file keeps ownership across restarts.
        t.d.reload().unwrap();
        let saved = std::fs::read_to_string(t.dir.join("state")).unwrap();
        let m: crate::table::Model = serde_json::from_str(&saved).unwrap();
        assert_eq!(m.owned, BTreeSet::from([key(80)]));
    }

    #[test]
    fn omega_runs_the_down_scripts_at_shutdown() {
        let mut t = start(
            &three([1, 1, 1], "  omega\n  quorum_down /bin/qdown\n"),
            false,
        );
        t.h.set(80, 1, false, None);
        t.events();
        t.h.scripts();
        t.d.shutdown_lvs();
        let mut s = t.h.scripts();
        s.sort();
        assert_eq!(
            s,
            [
                "notify_down of [10.0.1.2]:80 of TCP 10.0.0.1:80 (omega): /bin/down 2",
                "notify_down of [10.0.1.3]:80 of TCP 10.0.0.1:80 (omega): /bin/down 3",
                "quorum_down of TCP 10.0.0.1:80 (omega): /bin/qdown",
            ]
        );
    }

    #[test]
    fn health_and_metrics_report_runtime_dests_too() {
        let mut t = start(&three([1, 2, 3], ""), false);
        let mut d = Dest::new(Ipv4Addr::new(10, 0, 1, 50), 80);
        d.fwd = FwdMethod::Masq;
        assert_eq!(
            t.d.handle(Request::AddDest {
                key: key(80),
                dest: d
            }),
            Response::Ok
        );
        let rep = t.d.health_report();
        let extra = rep.services[0]
            .real_servers
            .iter()
            .find(|r| r.addr.octets()[3] == 50)
            .unwrap();
        assert!(!extra.config_owned && !extra.checked && extra.in_table);
        let text = t.d.metrics_text();
        assert!(text.contains("xvs_real_server_up{proto=\"tcp\",vip=\"10.0.0.1\",vport=\"80\",rip=\"10.0.1.50\",rport=\"80\",config_owned=\"false\"} 1"), "{text}");
        assert!(
            text.contains("# TYPE xvs_dest_connections_total counter"),
            "{text}"
        );
        assert!(
            text.contains("xvs_service_quorum_up{proto=\"tcp\",vip=\"10.0.0.1\",vport=\"80\"} 1"),
            "{text}"
        );
        // The health answer is plain JSON.
        let line = crate::server::answer_line(&mut t.d, b"{\"op\":\"health\"}");
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["result"], "health");
        assert_eq!(v["health"]["services"][0]["real_servers"][0]["up"], true);
        let line = crate::server::answer_line(&mut t.d, b"{\"op\":\"reload\"}");
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["result"], "reload", "{v}");
    }
}
