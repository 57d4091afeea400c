//! The stateless pickers: one scan of the destination list per pick.

use super::*;

/// The "weighted least load" scan shared by wlc, sed, lblc and lblcr
/// (`ip_vs_wlc_schedule` and friends): the first dest that is not OVERLOAD
/// and has `weight > 0` is the initial `least`; every later non-OVERLOAD dest
/// replaces it when `loh * d.weight > doh * least.weight` (strictly, so ties
/// stay with the earlier dest; a weight-0 dest can never win since
/// `loh * 0 > doh * w` is false).
pub fn weighted_least(dests: &[DestView], overhead: impl Fn(&DestView) -> u64) -> Option<usize> {
    let first = dests.iter().position(|d| !d.overloaded && d.weight > 0)?;
    let mut least = first;
    let mut loh = overhead(&dests[first]) as u128;
    for (i, d) in dests.iter().enumerate().skip(first + 1) {
        if d.overloaded {
            continue;
        }
        let doh = overhead(d) as u128;
        if loh * d.weight as u128 > doh * dests[least].weight as u128 {
            least = i;
            loh = doh;
        }
    }
    Some(least)
}

/// `ip_vs_lc_schedule`: the lowest `(activeconns << 8) + inactconns` among
/// dests with `weight != 0` and not OVERLOAD; ties go to the first in list
/// order (strict `<`). Weights otherwise play no part.
pub fn lc_pick(dests: &[DestView]) -> Option<usize> {
    let mut least: Option<(usize, u64)> = None;
    for (i, d) in dests.iter().enumerate() {
        if d.overloaded || d.weight == 0 {
            continue;
        }
        let doh = d.overhead();
        if least.is_none_or(|(_, loh)| doh < loh) {
            least = Some((i, doh));
        }
    }
    least.map(|(i, _)| i)
}

/// `ip_vs_wlc_schedule`: [`weighted_least`] over the overhead
/// `(activeconns << 8) + inactconns`, i.e. the least `overhead / weight`.
pub fn wlc_pick(dests: &[DestView]) -> Option<usize> {
    weighted_least(dests, DestView::overhead)
}

/// `ip_vs_sed_schedule`: [`weighted_least`] over `activeconns + 1`
/// (inactive connections are ignored), i.e. the least
/// `(activeconns + 1) / weight` compared by cross-multiplication.
pub fn sed_pick(dests: &[DestView]) -> Option<usize> {
    weighted_least(dests, |d| d.activeconns as u64 + 1)
}

/// `ip_vs_nq_schedule`: skipping OVERLOAD and weight-0 dests, the first dest
/// in list order with `activeconns == 0` wins at once; otherwise the least
/// `(activeconns + 1) / weight` (strict, first wins ties), like sed.
pub fn nq_pick(dests: &[DestView]) -> Option<usize> {
    let mut least: Option<(usize, u128)> = None;
    for (i, d) in dests.iter().enumerate() {
        if d.overloaded || d.weight == 0 {
            continue;
        }
        let doh = d.activeconns as u128 + 1;
        if d.activeconns == 0 {
            return Some(i);
        }
        let better = match least {
            None => true,
            Some((l, loh)) => loh * d.weight as u128 > doh * dests[l].weight as u128,
        };
        if better {
            least = Some((i, doh));
        }
    }
    least.map(|(i, _)| i)
}

/// `ip_vs_fo_schedule`: the non-OVERLOAD dest with the highest weight
/// (strict `>`, starting from 0: weight 0 never wins, ties go to the first
/// in list order).
pub fn fo_pick(dests: &[DestView]) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut hw = 0u32;
    for (i, d) in dests.iter().enumerate() {
        if !d.overloaded && d.weight > hw {
            best = Some(i);
            hw = d.weight;
        }
    }
    best
}

/// `ip_vs_ovf_schedule`: among dests that are not OVERLOAD, have
/// `weight != 0` and `activeconns <= weight`, the highest weight (ties: first
/// in list order). Inactive connections do not count.
pub fn ovf_pick(dests: &[DestView]) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut hw = 0u32;
    for (i, d) in dests.iter().enumerate() {
        if d.overloaded || d.weight == 0 || d.activeconns > d.weight {
            continue;
        }
        if best.is_none() || d.weight > hw {
            best = Some(i);
            hw = d.weight;
        }
    }
    best
}

/// `ip_vs_twos_schedule` with the random source as input.
///
/// `total` = sum of the weights of non-OVERLOAD dests with `weight > 0`
/// (none → `None`). Two draws `r1 = random_below(total + 1, rand)` then
/// `r2 = random_below(total + 1, rand)` ([`random_below`]). Walk the eligible
/// dests in list order subtracting each weight from both; choice 1 is the
/// first dest where `r1 <= 0`, choice 2 the first where `r2 <= 0` (so a draw
/// of 0 picks the first eligible dest, and the weight of dest `k` covers
/// `w_k` values except the first dest, which covers `w_0 + 1`). Choice 2
/// replaces choice 1 only when `w2 * overhead1 > w1 * overhead2` (strictly
/// less loaded per weight), with the usual `(active << 8) + inactive`
/// overhead.
pub fn twos_pick(dests: &[DestView], rand: &mut dyn FnMut() -> u32) -> Option<usize> {
    let mut total: u64 = 0;
    let mut last = None;
    for (i, d) in dests.iter().enumerate() {
        if d.schedulable() {
            total += d.weight as u64;
            last = Some(i);
        }
    }
    last?;
    let ceil = (total + 1).min(u32::MAX as u64) as u32;
    let mut r1 = random_below(ceil, rand) as i64;
    let mut r2 = random_below(ceil, rand) as i64;
    let mut c1: Option<usize> = None;
    let mut c2: Option<usize> = None;
    for (i, d) in dests.iter().enumerate() {
        if !d.schedulable() {
            continue;
        }
        r1 -= d.weight as i64;
        r2 -= d.weight as i64;
        if r1 <= 0 && c1.is_none() {
            c1 = Some(i);
        }
        if r2 <= 0 && c2.is_none() {
            c2 = Some(i);
        }
        if c1.is_some() && c2.is_some() {
            break;
        }
    }
    // Cannot stay None: r1 <= total, so it reaches <= 0 by the last dest.
    let c1 = c1.or(last)?;
    if let Some(c2) = c2 {
        let (d1, d2) = (&dests[c1], &dests[c2]);
        if d2.weight as u128 * d1.overhead() as u128 > d1.weight as u128 * d2.overhead() as u128 {
            return Some(c2);
        }
    }
    Some(c1)
}

pub(super) struct Stateless(
    pub(super) SchedKind,
    pub(super) fn(&[DestView]) -> Option<usize>,
);

impl Scheduler for Stateless {
    fn kind(&self) -> SchedKind {
        self.0
    }
    fn dests_changed(&mut self, _dests: &[DestView]) {}
    fn schedule(
        &mut self,
        dests: &[DestView],
        _flow: &FlowKey,
        _now: u64,
        _rand: &mut dyn FnMut() -> u32,
    ) -> Option<usize> {
        (self.1)(dests)
    }
}

pub(super) struct Twos;

impl Scheduler for Twos {
    fn kind(&self) -> SchedKind {
        SchedKind::Twos
    }
    fn dests_changed(&mut self, _dests: &[DestView]) {}
    fn schedule(
        &mut self,
        dests: &[DestView],
        _flow: &FlowKey,
        _now: u64,
        rand: &mut dyn FnMut() -> u32,
    ) -> Option<usize> {
        twos_pick(dests, rand)
    }
}
