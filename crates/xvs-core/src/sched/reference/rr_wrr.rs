//! rr and wrr: a cursor kept between picks.

use super::*;

/// `ip_vs_rr`: a cursor on the last picked dest (initially the list head).
/// Each pick scans circularly from the dest after the cursor, ending with the
/// cursor's dest itself, for the first non-OVERLOAD dest with `weight > 0`.
/// Removing the cursor's dest moves the cursor to its predecessor
/// (`ip_vs_rr_del_dest`). With no OVERLOAD dests and no list changes this is
/// the sequence [`super::rr_ring_weighted`] precomputes.
#[derive(Debug, Default, Clone)]
pub struct Rr {
    /// `(dest id, list index)` of the last pick; `None` = list head.
    cursor: Option<(u32, usize)>,
}

impl Rr {
    fn position(&self, dests: &[DestView]) -> Option<usize> {
        let (id, idx) = self.cursor?;
        if let Some(p) = dests.iter().position(|d| d.id == id) {
            return Some(p);
        }
        // The cursor's dest was removed: continue from its predecessor,
        // which now sits at idx - 1 (or the head when it was first).
        idx.checked_sub(1)
            .map(|p| p.min(dests.len().saturating_sub(1)))
            .filter(|_| !dests.is_empty())
    }
}

impl Scheduler for Rr {
    fn kind(&self) -> SchedKind {
        SchedKind::Rr
    }
    fn dests_changed(&mut self, dests: &[DestView]) {
        // Re-anchor on the predecessor now, as the kernel does at del time.
        self.cursor = self.position(dests).map(|p| (dests[p].id, p));
    }
    fn schedule(
        &mut self,
        dests: &[DestView],
        _flow: &FlowKey,
        _now: u64,
        _rand: &mut dyn FnMut() -> u32,
    ) -> Option<usize> {
        let n = dests.len();
        let order: Vec<usize> = match self.position(dests) {
            None => (0..n).collect(),
            Some(p) => (p + 1..n).chain(0..=p).collect(),
        };
        let pick = order.into_iter().find(|&i| dests[i].schedulable())?;
        self.cursor = Some((dests[pick].id, pick));
        Some(pick)
    }
}

/// `ip_vs_wrr`: state `cl` (last pick or head), `cw` (current weight), `mw`
/// (`max_weight - (gcd - 1)`), `di` (gcd of positive weights, 1 if none).
///
/// A pick continues the list after `cl` looking for a non-OVERLOAD dest with
/// `weight >= cw`; at the end of the list `cw -= di`, wrapping to `mw` at
/// `<= 0`. The search gives up (no dest, `cl` left where it stopped) once
/// every dest was checked in a pass with `cw <= di` (the last pass), which
/// with OVERLOAD dests may take a partial wrap. `mw == 0` (all weights 0) →
/// no dest. [`Scheduler::dests_changed`] resets `cl` to the head and
/// recomputes `di`, `mw`; `cw` becomes `mw` when it exceeds `mw` or is 0,
/// else (with `di > 1`) is rounded to `(cw / di) * di + 1`. Without
/// OVERLOAD the picks repeat [`super::wrr_ring`].
#[derive(Debug, Default, Clone)]
pub struct Wrr {
    init: bool,
    /// `(dest id, list index)`; `None` = list head.
    cl: Option<(u32, usize)>,
    cw: i64,
    mw: i64,
    di: i64,
}

impl Wrr {
    fn gcd_max(dests: &[DestView]) -> (i64, i64) {
        let mut g: u64 = 0;
        let mut max: u64 = 0;
        for d in dests {
            let w = d.weight as u64;
            if w > 0 {
                g = if g == 0 { w } else { gcd(w, g) };
            }
            max = max.max(w);
        }
        (if g == 0 { 1 } else { g as i64 }, max as i64)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

impl Scheduler for Wrr {
    fn kind(&self) -> SchedKind {
        SchedKind::Wrr
    }
    fn dests_changed(&mut self, dests: &[DestView]) {
        let (di, max) = Self::gcd_max(dests);
        self.cl = None;
        self.di = di;
        self.mw = max - (di - 1);
        if !self.init {
            // The kernel creates a service empty (`init_svc`: cw 0) and
            // its dests come one by one, oldest (last in the list) first.
            self.init = true;
            let new: Vec<crate::sched::cursor::CursorDest> = dests
                .iter()
                .map(|d| crate::sched::cursor::CursorDest {
                    id: d.id,
                    weight: d.weight,
                })
                .collect();
            self.cw = crate::sched::cursor::wrr_cw_after(0, &[], &new);
        } else if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }
    fn schedule(
        &mut self,
        dests: &[DestView],
        _flow: &FlowKey,
        _now: u64,
        _rand: &mut dyn FnMut() -> u32,
    ) -> Option<usize> {
        if !self.init {
            self.dests_changed(dests);
        }
        // Positions: None = head, Some(i) = dests[i].
        let mut pos: Option<usize> = self
            .cl
            .and_then(|(id, _)| dests.iter().position(|d| d.id == id));
        if self.mw == 0 {
            return None;
        }
        let last = pos;
        let mut stop: Option<usize> = None;
        let (mut last_pass, mut restarted) = (false, false);
        loop {
            let start = pos.map_or(0, |p| p + 1);
            for (i, d) in dests.iter().enumerate().skip(start) {
                if !d.overloaded && d.weight as i64 >= self.cw {
                    self.cl = Some((d.id, i));
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = Some((d.id, i));
                    return None;
                }
            }
            pos = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }
}
