//! The engine: one tokio task per checker, keepalived's per-checker state
//! machine, the "all checkers up" rule per real server, and transitions.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::mpsc;
use xvs_core::model::ServiceKey;

use crate::config::{CheckKind, CheckerConfig, Timing};

mod machine;
mod tasks;

pub(crate) use machine::Machine;
use tasks::{checker_task, random_below, Entry, Inner, Slot};

/// Identifies a real server: its virtual service and its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RsId {
    /// The virtual service the real server belongs to.
    pub service: ServiceKey,
    /// The real server's address and port: what checkers connect to unless
    /// `connect_ip`/`connect_port` say otherwise.
    pub dest: SocketAddr,
}

impl fmt::Display for RsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}]:{} of {}",
            self.dest.ip(),
            self.dest.port(),
            self.service
        )
    }
}

/// A real server and its checkers, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsSpec {
    /// Which real server.
    pub id: RsId,
    /// Its checkers; it is up only when all of them are up. With none, it
    /// is always up (keepalived adds such a real server unconditionally).
    pub checkers: Vec<CheckerConfig>,
}

/// A change of a real server's health (or of its `misc_dynamic` weight).
///
/// Each transition carries the complete desired state, so applying the
/// latest one is enough: put the real server in (`up`) or take it out,
/// with `weight` if set, else its configured weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// The real server.
    pub rs: RsId,
    /// Whether it is now up (all its checkers up).
    pub up: bool,
    /// Why: the result of the checker attempt that caused it.
    pub reason: String,
    /// Weight set by a `misc_dynamic` checker (exit code − 2); `None`: the
    /// configured weight. With several dynamic checkers, the smallest.
    pub weight: Option<u32>,
}

/// State of one checker, for the API and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckerState {
    /// keepalived's keyword (`TCP_CHECK`, `HTTP_GET`, …).
    pub kind: String,
    /// The address it checks.
    pub target: SocketAddr,
    /// Whether the checker is up.
    pub up: bool,
    /// Whether it has run at least once.
    pub has_run: bool,
    /// Retries already spent on the current failure (keepalived's `retry_it`).
    pub retry_it: u32,
    /// Its resolved timing.
    pub timing: Timing,
    /// Result text of its last attempt.
    pub last_result: Option<String>,
    /// Whether its last attempt succeeded.
    pub last_ok: Option<bool>,
    /// When its last attempt ended.
    pub last_check: Option<SystemTime>,
}

/// State of one real server, for the API and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RsState {
    /// Up: every checker is up.
    pub up: bool,
    /// `misc_dynamic` weight override, see [`Transition::weight`].
    pub weight: Option<u32>,
    /// Result text of the last attempt of any of its checkers.
    pub last_result: Option<String>,
    /// When that attempt ended.
    pub last_check: Option<SystemTime>,
    /// Number of up/down changes since the real server was added.
    pub transitions: u64,
    /// Its checkers, in configuration order.
    pub checkers: Vec<CheckerState>,
}

/// Errors of the engine's API.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    /// A checker's configuration is unusable.
    #[error("{rs}: checker {index} ({kind}): {msg}")]
    InvalidConfig {
        /// The real server.
        rs: RsId,
        /// Position of the checker in [`RsSpec::checkers`].
        index: usize,
        /// Its kind.
        kind: String,
        /// What is wrong.
        msg: String,
    },
    /// [`HealthEngine::stop`] was called.
    #[error("the health engine is stopped")]
    Stopped,
}

/// The health-checking engine. Cheap to clone (all clones drive the same
/// engine). Create it inside a tokio runtime; its methods may then be
/// called from any thread and never block on a check.
#[derive(Clone)]
pub struct HealthEngine {
    inner: Arc<Inner>,
}

impl HealthEngine {
    /// A new engine with no real servers, and the receiving end of its
    /// transitions. Must be called within a tokio runtime (its checkers run
    /// on it). Transitions are queued without bound: a slow consumer never
    /// slows the checks.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> (HealthEngine, mpsc::UnboundedReceiver<Transition>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let engine = HealthEngine {
            inner: Arc::new(Inner {
                map: Mutex::new(HashMap::new()),
                tx,
                stopped: AtomicBool::new(false),
                next_gen: AtomicU64::new(1),
                rt: tokio::runtime::Handle::current(),
            }),
        };
        (engine, rx)
    }

    fn validate(spec: &RsSpec) -> Result<(), EngineError> {
        for (index, c) in spec.checkers.iter().enumerate() {
            let invalid = |msg: String| EngineError::InvalidConfig {
                rs: spec.id,
                index,
                kind: c.kind.name().to_string(),
                msg,
            };
            c.validate().map_err(invalid)?;
            // A real server of a fwmark service often has port 0: a check
            // that connects there could only fail, so it needs connect_port.
            let connects = matches!(
                c.kind,
                CheckKind::Tcp(_) | CheckKind::Http(_) | CheckKind::Udp(_) | CheckKind::Dns(_)
            );
            if connects && c.target(spec.id.dest).port() == 0 {
                return Err(invalid(
                    "no port to check (the real server's port is 0) - set connect_port".into(),
                ));
            }
        }
        Ok(())
    }

    /// Add a real server, or replace its checkers (reload).
    ///
    /// * Same checkers as before (equal configurations): nothing changes,
    ///   not even the timers.
    /// * Otherwise every new checker that matches an old one
    ///   ([`CheckerConfig::same_check`]) keeps its state (keepalived's
    ///   `migrate_checkers`), the others start fresh (alpha ones down), all
    ///   start after a new random warmup, and if the real server's state
    ///   changes by this a transition is sent.
    /// * A new real server starts up, or down if any checker has `alpha`;
    ///   no transition is sent for that initial state: read it from the
    ///   returned state.
    pub fn set_rs(&self, spec: RsSpec) -> Result<RsState, EngineError> {
        Self::validate(&spec)?;
        if self.inner.stopped.load(Ordering::SeqCst) {
            return Err(EngineError::Stopped);
        }
        let mut map = self.inner.lock();
        let old = map.remove(&spec.id);
        if let Some(old) = old {
            if old.spec == spec {
                let st = old.state();
                map.insert(spec.id, old);
                return Ok(st);
            }
            for t in &old.tasks {
                t.abort();
            }
            let mut used = vec![false; old.slots.len()];
            let slots: Vec<Slot> = spec
                .checkers
                .iter()
                .map(|c| {
                    let mut s = self.fresh_slot(&spec.id, c);
                    let found = old
                        .slots
                        .iter()
                        .enumerate()
                        .find(|(i, o)| !used[*i] && o.cfg.same_check(c));
                    if let Some((i, o)) = found {
                        used[i] = true;
                        s.m = Machine::migrate(&o.m, s.m, s.timing.retry);
                        s.last_result = o.last_result.clone();
                        s.last_ok = o.last_ok;
                        s.last_check = o.last_check;
                    }
                    s
                })
                .collect();
            let mut e = Entry {
                gen: self.inner.next_gen.fetch_add(1, Ordering::SeqCst),
                spec,
                slots,
                up: old.up,
                weight: old.weight,
                transitions: old.transitions,
                last_result: old.last_result,
                last_check: old.last_check,
                tasks: Vec::new(),
            };
            // migrate_checkers: with a failed checker (or a real server that
            // is down with nothing run yet) new alpha checkers start down.
            let failed = e.slots.iter().any(|s| s.m.has_run && !s.m.is_up);
            let none_run = !e.slots.iter().any(|s| s.m.has_run);
            if failed || (!e.up && none_run) {
                for s in e.slots.iter_mut().filter(|s| !s.m.has_run) {
                    if s.cfg.common.alpha {
                        s.m.is_up = false;
                    }
                    s.m.retry_it = s.timing.retry;
                }
            }
            let after = e.aggregate();
            if after != (e.up, e.weight) {
                if after.0 != e.up {
                    e.transitions += 1;
                }
                (e.up, e.weight) = after;
                self.inner.emit(Transition {
                    rs: e.spec.id,
                    up: after.0,
                    reason: "checkers changed by a configuration reload".into(),
                    weight: after.1,
                });
            }
            self.start(&mut e);
            let st = e.state();
            map.insert(e.spec.id, e);
            Ok(st)
        } else {
            let slots: Vec<Slot> = spec
                .checkers
                .iter()
                .map(|c| self.fresh_slot(&spec.id, c))
                .collect();
            let mut e = Entry {
                gen: self.inner.next_gen.fetch_add(1, Ordering::SeqCst),
                spec,
                slots,
                up: true,
                weight: None,
                transitions: 0,
                last_result: None,
                last_check: None,
                tasks: Vec::new(),
            };
            (e.up, e.weight) = e.aggregate();
            self.start(&mut e);
            let st = e.state();
            map.insert(e.spec.id, e);
            Ok(st)
        }
    }

    fn fresh_slot(&self, id: &RsId, c: &CheckerConfig) -> Slot {
        let timing = c.timing();
        Slot {
            cfg: Arc::new(c.clone()),
            timing,
            target: c.target(id.dest),
            m: Machine::new(c.common.alpha, timing.retry),
            last_result: None,
            last_ok: None,
            last_check: None,
        }
    }

    fn start(&self, e: &mut Entry) {
        for (idx, s) in e.slots.iter().enumerate() {
            let warmup = random_below(s.timing.warmup);
            let fut = checker_task(
                Arc::downgrade(&self.inner),
                e.spec.id,
                e.gen,
                idx,
                s.cfg.clone(),
                s.timing,
                s.target,
                warmup,
            );
            e.tasks.push(self.inner.rt.spawn(fut));
        }
    }

    /// Replace the whole set of real servers (a reload): real servers not in
    /// `specs` are removed, the others go through [`HealthEngine::set_rs`].
    /// Nothing changes if any spec is invalid.
    pub fn sync(&self, specs: Vec<RsSpec>) -> Result<(), EngineError> {
        for s in &specs {
            Self::validate(s)?;
        }
        if self.inner.stopped.load(Ordering::SeqCst) {
            return Err(EngineError::Stopped);
        }
        let keep: std::collections::HashSet<RsId> = specs.iter().map(|s| s.id).collect();
        let gone: Vec<RsId> = self
            .inner
            .lock()
            .keys()
            .filter(|k| !keep.contains(k))
            .copied()
            .collect();
        for id in gone {
            self.remove_rs(&id);
        }
        for s in specs {
            self.set_rs(s)?;
        }
        Ok(())
    }

    /// Stop checking a real server and forget it. Returns whether it was
    /// known. No transition is sent.
    pub fn remove_rs(&self, id: &RsId) -> bool {
        let e = self.inner.lock().remove(id);
        match e {
            Some(e) => {
                for t in &e.tasks {
                    t.abort();
                }
                true
            }
            None => false,
        }
    }

    /// The state of one real server.
    pub fn state(&self, id: &RsId) -> Option<RsState> {
        self.inner.lock().get(id).map(Entry::state)
    }

    /// The state of every real server, ordered by id.
    pub fn states(&self) -> Vec<(RsId, RsState)> {
        let mut v: Vec<_> = self
            .inner
            .lock()
            .iter()
            .map(|(k, e)| (*k, e.state()))
            .collect();
        v.sort_by_key(|a| a.0);
        v
    }

    /// Stop every checker (running scripts are killed) and wait until they
    /// are gone. Later [`HealthEngine::set_rs`] calls fail with
    /// [`EngineError::Stopped`]; the transition stream ends once every
    /// clone of the engine is dropped.
    pub async fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        let entries: Vec<Entry> = self.inner.lock().drain().map(|(_, e)| e).collect();
        let mut tasks = Vec::new();
        for e in entries {
            for t in e.tasks {
                t.abort();
                tasks.push(t);
            }
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}
