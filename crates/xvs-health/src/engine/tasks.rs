//! The table of real servers the checker tasks report to, and the tasks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::machine::Machine;
use super::{CheckerState, RsId, RsSpec, RsState, Transition};
use crate::config::{CheckKind, CheckerConfig, Timing};
use crate::{check, Outcome};

pub(super) struct Slot {
    pub(super) cfg: Arc<CheckerConfig>,
    pub(super) timing: Timing,
    pub(super) target: SocketAddr,
    pub(super) m: Machine,
    pub(super) last_result: Option<String>,
    pub(super) last_ok: Option<bool>,
    pub(super) last_check: Option<SystemTime>,
}

pub(super) struct Entry {
    pub(super) gen: u64,
    pub(super) spec: RsSpec,
    pub(super) slots: Vec<Slot>,
    pub(super) up: bool,
    pub(super) weight: Option<u32>,
    pub(super) transitions: u64,
    pub(super) last_result: Option<String>,
    pub(super) last_check: Option<SystemTime>,
    pub(super) tasks: Vec<JoinHandle<()>>,
}

impl Entry {
    pub(super) fn aggregate(&self) -> (bool, Option<u32>) {
        let up = self.slots.iter().all(|s| s.m.is_up);
        let weight = self.slots.iter().filter_map(|s| s.m.weight).min();
        (up, weight)
    }

    pub(super) fn state(&self) -> RsState {
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

pub(super) struct Inner {
    pub(super) map: Mutex<HashMap<RsId, Entry>>,
    pub(super) tx: mpsc::UnboundedSender<Transition>,
    pub(super) stopped: AtomicBool,
    pub(super) next_gen: AtomicU64,
    pub(super) rt: tokio::runtime::Handle,
}

impl Inner {
    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<RsId, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn emit(&self, t: Transition) {
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
    pub(super) fn apply(&self, id: &RsId, gen: u64, idx: usize, out: Outcome) -> Option<Duration> {
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

#[allow(clippy::too_many_arguments)]
pub(super) async fn checker_task(
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
pub(super) fn random_below(max: Duration) -> Duration {
    let nanos = max.as_nanos();
    if nanos == 0 {
        return Duration::ZERO;
    }
    let r = u128::from(crate::random_u64()) % (nanos + 1);
    Duration::from_nanos(r as u64)
}
