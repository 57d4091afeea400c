//! The engine: one tokio task per checker, keepalived's per-checker state
//! machine, the "all checkers up" rule per real server, and transitions.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use xvs_core::model::ServiceKey;

use crate::config::{CheckKind, CheckerConfig, Timing};
use crate::{check, Outcome};

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

/// keepalived's per-checker state (`checker_t`: `is_up`, `has_run`,
/// `retry_it`) and the rule of `tcp_epilog` shared by every checker kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Machine {
    pub is_up: bool,
    pub has_run: bool,
    pub retry_it: u32,
    pub weight: Option<u32>,
}

/// What one attempt's result did to a checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    /// Wait `delay_before_retry` (a retry is due) rather than `delay_loop`.
    pub retry_next: bool,
    /// A failure confirmed a checker that started down and had never run
    /// (keepalived then runs `notify_down` once: `update_svr_checker_state`).
    pub confirmed_initial_down: bool,
    /// The failure ended a series of retries.
    pub after_retries: bool,
}

impl Machine {
    /// A checker as keepalived sets it up at start (`check_data.c`): alpha
    /// checkers start down; every checker has `retry_it = retry`, so that
    /// "one failure is enough initially".
    pub fn new(alpha: bool, retry: u32) -> Machine {
        Machine {
            is_up: !alpha,
            has_run: false,
            retry_it: retry,
            weight: None,
        }
    }

    /// Apply one attempt's result (`tcp_epilog` in `check_tcp.c`; the
    /// other checkers' epilogs are equivalent).
    pub fn step(&mut self, ok: bool, weight: Option<u32>, retry: u32) -> Step {
        let mut st = Step {
            retry_next: false,
            confirmed_initial_down: false,
            after_retries: false,
        };
        if ok || ((self.is_up || !self.has_run) && self.retry_it >= retry) {
            if ok {
                self.is_up = true;
                self.weight = weight;
            } else {
                st.confirmed_initial_down = !self.is_up && !self.has_run;
                st.after_retries = self.has_run && retry > 0;
                self.is_up = false;
                self.weight = None;
            }
            self.retry_it = 0;
        } else if self.is_up {
            st.retry_next = true;
            self.retry_it += 1;
        }
        self.has_run = true;
        st
    }

    /// keepalived's `migrate_checkers` for a checker kept across a reload.
    pub fn migrate(old: &Machine, fresh: Machine, retry: u32) -> Machine {
        let mut m = fresh;
        if old.has_run {
            m.is_up = old.is_up;
        }
        m.has_run = old.has_run;
        m.weight = old.weight;
        m.retry_it = if !m.is_up {
            retry + 1
        } else if old.retry_it >= retry {
            retry
        } else {
            old.retry_it
        };
        m
    }
}

struct Slot {
    cfg: Arc<CheckerConfig>,
    timing: Timing,
    target: SocketAddr,
    m: Machine,
    last_result: Option<String>,
    last_ok: Option<bool>,
    last_check: Option<SystemTime>,
}

struct Entry {
    gen: u64,
    spec: RsSpec,
    slots: Vec<Slot>,
    up: bool,
    weight: Option<u32>,
    transitions: u64,
    last_result: Option<String>,
    last_check: Option<SystemTime>,
    tasks: Vec<JoinHandle<()>>,
}

impl Entry {
    fn aggregate(&self) -> (bool, Option<u32>) {
        let up = self.slots.iter().all(|s| s.m.is_up);
        let weight = self.slots.iter().filter_map(|s| s.m.weight).min();
        (up, weight)
    }

    fn state(&self) -> RsState {
        RsState {
            up: self.up,
            weight: self.weight,
            last_result: self.last_result.clone(),
            last_check: self.last_check,
            transitions: self.transitions,
            checkers: self
                .slots
                .iter()
                .map(|s| CheckerState {
                    kind: s.cfg.kind.name().to_string(),
                    target: s.target,
                    up: s.m.is_up,
                    has_run: s.m.has_run,
                    retry_it: s.m.retry_it,
                    timing: s.timing,
                    last_result: s.last_result.clone(),
                    last_ok: s.last_ok,
                    last_check: s.last_check,
                })
                .collect(),
        }
    }
}

struct Inner {
    map: Mutex<HashMap<RsId, Entry>>,
    tx: mpsc::UnboundedSender<Transition>,
    stopped: AtomicBool,
    next_gen: AtomicU64,
    rt: tokio::runtime::Handle,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<RsId, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, t: Transition) {
        log::info!(
            "{}: {}{} ({})",
            t.rs,
            if t.up { "UP" } else { "DOWN" },
            t.weight.map(|w| format!(" weight {w}")).unwrap_or_default(),
            t.reason
        );
        // A dropped receiver only means nobody listens any more.
        let _ = self.tx.send(t);
    }

    /// Record an attempt's outcome; returns the delay before the next
    /// attempt, or `None` when the checker is gone (removed or replaced).
    fn apply(&self, id: &RsId, gen: u64, idx: usize, out: Outcome) -> Option<Duration> {
        let mut map = self.lock();
        let e = map.get_mut(id).filter(|e| e.gen == gen)?;
        let now = SystemTime::now();
        let slot = e.slots.get_mut(idx)?;
        let timing = slot.timing;
        let step = slot.m.step(out.ok, out.weight, timing.retry);
        slot.last_result = Some(out.message.clone());
        slot.last_ok = Some(out.ok);
        slot.last_check = Some(now);
        let is_http = matches!(slot.cfg.kind, CheckKind::Http(_));
        let checker_up = slot.m.is_up;
        e.last_result = Some(out.message.clone());
        e.last_check = Some(now);

        let before = (e.up, e.weight);
        let after = e.aggregate();
        let mut reason = out.message;
        if step.after_retries {
            reason.push_str(&format!(" (after {} retries)", timing.retry));
        }
        if after != before {
            (e.up, e.weight) = after;
            if after.0 != before.0 {
                e.transitions += 1;
            }
            self.emit(Transition {
                rs: *id,
                up: after.0,
                reason,
                weight: after.1,
            });
        } else if step.confirmed_initial_down && !after.0 {
            self.emit(Transition {
                rs: *id,
                up: false,
                reason,
                weight: after.1,
            });
        }

        Some(if step.retry_next {
            timing.delay_before_retry
        } else if is_http && !out.ok && !checker_up {
            // check_http.c epilog: a failed url is rechecked after
            // max(delay_before_retry, delay_loop).
            timing.delay_before_retry.max(timing.delay_loop)
        } else {
            timing.delay_loop
        })
    }
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
            c.validate().map_err(|msg| EngineError::InvalidConfig {
                rs: spec.id,
                index,
                kind: c.kind.name().to_string(),
                msg,
            })?;
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

#[allow(clippy::too_many_arguments)]
async fn checker_task(
    inner: Weak<Inner>,
    id: RsId,
    gen: u64,
    idx: usize,
    cfg: Arc<CheckerConfig>,
    timing: Timing,
    target: SocketAddr,
    warmup: Duration,
) {
    tokio::time::sleep(warmup).await;
    // check_misc.c schedules the next run from the start of the last one;
    // the network checkers from the end of the last attempt.
    let from_start = matches!(cfg.kind, CheckKind::Misc(_));
    loop {
        let started = Instant::now();
        let out = check::attempt(&cfg, target, &timing).await;
        let delay = match inner.upgrade() {
            Some(inner) => match inner.apply(&id, gen, idx, out) {
                Some(d) => d,
                None => return,
            },
            None => return,
        };
        if from_start {
            tokio::time::sleep_until(started + delay).await;
        } else {
            tokio::time::sleep(delay).await;
        }
    }
}

/// A uniformly spread delay in `[0, max]` (keepalived: `warmup * random()
/// / RAND_MAX`).
fn random_below(max: Duration) -> Duration {
    let nanos = max.as_nanos();
    if nanos == 0 {
        return Duration::ZERO;
    }
    let r = u128::from(crate::random_u64()) % (nanos + 1);
    Duration::from_nanos(r as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_alpha_one_failure_is_enough_initially() {
        let mut m = Machine::new(false, 3);
        assert!(m.is_up);
        let st = m.step(false, None, 3);
        assert!(!m.is_up && !st.retry_next && !st.after_retries);
        assert!(!st.confirmed_initial_down);
    }

    #[test]
    fn up_checker_retries_then_goes_down() {
        let mut m = Machine::new(false, 2);
        m.step(true, None, 2);
        assert!(m.is_up && m.retry_it == 0);
        assert!(m.step(false, None, 2).retry_next);
        assert!(m.is_up);
        assert!(m.step(false, None, 2).retry_next);
        assert!(m.is_up);
        let st = m.step(false, None, 2);
        assert!(!m.is_up && !st.retry_next && st.after_retries);
        // Down: failures do not retry.
        assert!(!m.step(false, None, 2).retry_next);
        // One success is enough to come back.
        m.step(true, None, 2);
        assert!(m.is_up);
    }

    #[test]
    fn a_success_resets_the_retries() {
        let mut m = Machine::new(false, 1);
        m.step(true, None, 1);
        assert!(m.step(false, None, 1).retry_next);
        m.step(true, None, 1);
        assert_eq!(m.retry_it, 0);
        assert!(m.step(false, None, 1).retry_next);
        assert!(m.is_up);
    }

    #[test]
    fn alpha_starts_down_and_confirms() {
        let mut m = Machine::new(true, 1);
        assert!(!m.is_up);
        let st = m.step(false, None, 1);
        assert!(st.confirmed_initial_down && !m.is_up);
        let mut m = Machine::new(true, 1);
        m.step(true, Some(4), 1);
        assert!(m.is_up);
        assert_eq!(m.weight, Some(4));
    }

    #[test]
    fn zero_retry() {
        let mut m = Machine::new(false, 0);
        m.step(true, None, 0);
        let st = m.step(false, None, 0);
        assert!(!m.is_up && !st.retry_next && !st.after_retries);
    }

    #[test]
    fn migrate_rules() {
        let mut old = Machine::new(false, 3);
        old.step(true, None, 3);
        old.step(false, None, 3);
        assert_eq!(old.retry_it, 1);
        let m = Machine::migrate(&old, Machine::new(false, 1), 1);
        assert!(m.is_up && m.has_run && m.retry_it == 1);
        let m = Machine::migrate(&old, Machine::new(false, 5), 5);
        assert_eq!(m.retry_it, 1);
        let mut down = Machine::new(false, 0);
        down.step(false, None, 0);
        let m = Machine::migrate(&down, Machine::new(false, 2), 2);
        assert!(!m.is_up && m.retry_it == 3);
        // A checker that never ran keeps its fresh state.
        let m = Machine::migrate(&Machine::new(false, 1), Machine::new(true, 1), 1);
        assert!(!m.is_up && !m.has_run);
    }
}
