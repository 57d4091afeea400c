//! Reference models of the 14 IPVS schedulers: what the kernel would pick for
//! a new connection, given the destination list in the kernel's list order.
//!
//! The data plane is tested against these. Each model restates the kernel's
//! `ip_vs_<name>_schedule` (file named in the docs), including its
//! tie-breaks and its treatment of weight 0 and `IP_VS_DEST_F_OVERLOAD`.
//!
//! One entry point: [`model`]`(name, svc_flags)` gives a boxed [`Scheduler`].
//! Callers must call [`Scheduler::dests_changed`] whenever a destination is
//! added, removed or edited (the kernel's `add_dest`/`del_dest`/`upd_dest`
//! hooks), and [`Scheduler::tick`] every [`CHECK_EXPIRE_INTERVAL`] seconds
//! (the lblc/lblcr garbage-collection timer).
//!
//! The stateless pickers ([`lc_pick`], [`wlc_pick`], [`sed_pick`],
//! [`nq_pick`], [`fo_pick`], [`ovf_pick`], [`twos_pick`]) are also public,
//! for direct use.

use std::net::Ipv4Addr;

use super::hash::random_below;
use super::locality::{Lblc, Lblcr, LocalityEntry};
use super::table::{
    dh_lookup, dh_table, mh_lookup, mh_lookup_fallback, mh_table, sh_lookup, sh_lookup_fallback,
    sh_table, MhDest,
};
use super::SchedError;
use crate::model::svc_flags;

pub use super::locality::CHECK_EXPIRE_INTERVAL;

/// What a scheduler sees of one destination (`struct ip_vs_dest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestView {
    /// xvs destination id (stable across list changes; the data plane's key).
    pub id: u32,
    /// Real server address (used by mh's permutation).
    pub addr: Ipv4Addr,
    /// Real server port (used by mh's permutation).
    pub port: u16,
    /// Current weight; 0 = quiesced (never picked for a new connection,
    /// except through a persistence template or an lblc cache hit — see
    /// [`Lblc`]).
    pub weight: u32,
    /// The kernel's `last_weight` (latest non-zero weight; see
    /// [`next_last_weight`]). Only mh uses it.
    pub last_weight: u32,
    /// Active (ESTABLISHED) connections.
    pub activeconns: u32,
    /// Inactive connections.
    pub inactconns: u32,
    /// `IP_VS_DEST_F_OVERLOAD` (see [`super::persist::overload_after`]).
    pub overloaded: bool,
}

impl DestView {
    /// A destination with id `id`, weight (and last weight) `weight`, address
    /// 0.0.0.0:0, no connections, not overloaded.
    pub fn new(id: u32, weight: u32) -> Self {
        DestView {
            id,
            addr: Ipv4Addr::UNSPECIFIED,
            port: 0,
            weight,
            last_weight: weight,
            activeconns: 0,
            inactconns: 0,
            overloaded: false,
        }
    }

    /// Same, with connection counts.
    pub fn with_conns(mut self, active: u32, inactive: u32) -> Self {
        self.activeconns = active;
        self.inactconns = inactive;
        self
    }

    /// Same, with an address and port.
    pub fn with_addr(mut self, addr: Ipv4Addr, port: u16) -> Self {
        self.addr = addr;
        self.port = port;
        self
    }

    /// Same, with the OVERLOAD flag set.
    pub fn overloaded(mut self) -> Self {
        self.overloaded = true;
        self
    }

    /// `ip_vs_dest_conn_overhead`: `(activeconns << 8) + inactconns`
    /// (computed in 64 bits; the kernel's `int` would wrap at 2^23 active
    /// connections).
    pub fn overhead(&self) -> u64 {
        ((self.activeconns as u64) << 8) + self.inactconns as u64
    }

    /// Eligible for a new connection in the usual sense: `weight > 0` and not
    /// OVERLOAD (the hashing schedulers' `is_unavailable` negated).
    pub fn schedulable(&self) -> bool {
        self.weight > 0 && !self.overloaded
    }
}

/// `last_weight` after an add (`add = true`) or edit of a destination to
/// `new_weight` (`__ip_vs_update_dest`: kept unless the new weight is 0 on an
/// edit).
pub fn next_last_weight(add: bool, old_last_weight: u32, new_weight: u32) -> u32 {
    if add || new_weight != 0 {
        new_weight
    } else {
        old_last_weight
    }
}

/// The packet that needs a destination (addresses in network order as
/// [`Ipv4Addr`], ports in host order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowKey {
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP).
    pub proto: u8,
    /// Client (source) address.
    pub saddr: Ipv4Addr,
    /// Client (source) port.
    pub sport: u16,
    /// Destination address (the VIP for a normal service).
    pub daddr: Ipv4Addr,
    /// Destination port (the virtual port).
    pub dport: u16,
}

impl FlowKey {
    /// A TCP flow.
    pub fn tcp(saddr: Ipv4Addr, sport: u16, daddr: Ipv4Addr, dport: u16) -> Self {
        FlowKey {
            proto: 6,
            saddr,
            sport,
            daddr,
            dport,
        }
    }

    /// The port `sh-port`/`mh-port` hash: the source port for TCP, UDP and
    /// SCTP, 0 for anything else (`ip_vs_sh_get_port`/`ip_vs_mh_get_port`).
    pub fn hash_port(&self) -> u16 {
        match self.proto {
            6 | 17 | 132 => self.sport,
            _ => 0,
        }
    }
}

/// The 14 IPVS schedulers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedKind {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connection.
    Lc,
    /// Weighted least connection.
    Wlc,
    /// Locality-based least connection.
    Lblc,
    /// Locality-based least connection with replication.
    Lblcr,
    /// Destination hashing.
    Dh,
    /// Source hashing.
    Sh,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Weighted failover.
    Fo,
    /// Weighted overflow.
    Ovf,
    /// Maglev hashing.
    Mh,
    /// Power of two choices.
    Twos,
}

impl SchedKind {
    /// All schedulers, in the order of [`super::SCHEDULERS`].
    pub const ALL: [SchedKind; 14] = [
        SchedKind::Rr,
        SchedKind::Wrr,
        SchedKind::Lc,
        SchedKind::Wlc,
        SchedKind::Lblc,
        SchedKind::Lblcr,
        SchedKind::Dh,
        SchedKind::Sh,
        SchedKind::Sed,
        SchedKind::Nq,
        SchedKind::Fo,
        SchedKind::Ovf,
        SchedKind::Mh,
        SchedKind::Twos,
    ];

    /// The `-s` name.
    pub fn name(self) -> &'static str {
        match self {
            SchedKind::Rr => "rr",
            SchedKind::Wrr => "wrr",
            SchedKind::Lc => "lc",
            SchedKind::Wlc => "wlc",
            SchedKind::Lblc => "lblc",
            SchedKind::Lblcr => "lblcr",
            SchedKind::Dh => "dh",
            SchedKind::Sh => "sh",
            SchedKind::Sed => "sed",
            SchedKind::Nq => "nq",
            SchedKind::Fo => "fo",
            SchedKind::Ovf => "ovf",
            SchedKind::Mh => "mh",
            SchedKind::Twos => "twos",
        }
    }

    /// Parse an exact `-s` name.
    pub fn from_name(name: &str) -> Result<Self, SchedError> {
        SchedKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| SchedError::Unknown(name.to_string()))
    }
}

/// A reference model of one service's scheduler instance.
pub trait Scheduler: Send {
    /// Which scheduler this is.
    fn kind(&self) -> SchedKind;

    /// The destination list (or a weight) changed: the kernel's
    /// `init_service`/`add_dest`/`del_dest`/`upd_dest`. Rebuilds tables
    /// (dh, sh, mh), resets wrr's position, moves rr's cursor off a removed
    /// destination. Also call it once with the initial list.
    fn dests_changed(&mut self, dests: &[DestView]);

    /// Pick a destination for a new connection: an index into `dests`
    /// (kernel list order), or `None` ("no destination available").
    ///
    /// `now_secs` is a monotonic clock (lblc/lblcr cache times); `rand`
    /// yields uniformly random `u32`s (only twos draws from it).
    fn schedule(
        &mut self,
        dests: &[DestView],
        flow: &FlowKey,
        now_secs: u64,
        rand: &mut dyn FnMut() -> u32,
    ) -> Option<usize>;

    /// The periodic garbage-collection timer (lblc/lblcr; every
    /// [`CHECK_EXPIRE_INTERVAL`] seconds). A no-op elsewhere.
    fn tick(&mut self, _now_secs: u64) {}

    /// The locality cache (lblc/lblcr) in a canonical order (by address), for
    /// comparison with the data plane's map; `None` for other schedulers.
    fn locality_cache(&self) -> Option<Vec<LocalityEntry>> {
        None
    }
}

/// The reference model for scheduler `name` with service flags `flags`
/// (`IP_VS_SVC_F_*`; `SCHED1` = sh/mh-fallback, `SCHED2` = sh/mh-port).
pub fn model(name: &str, flags: u32) -> Result<Box<dyn Scheduler>, SchedError> {
    let kind = SchedKind::from_name(name)?;
    let fallback = flags & svc_flags::SCHED1 != 0;
    let port = flags & svc_flags::SCHED2 != 0;
    Ok(match kind {
        SchedKind::Rr => Box::new(Rr::default()),
        SchedKind::Wrr => Box::new(Wrr::default()),
        SchedKind::Lc => Box::new(Stateless(SchedKind::Lc, lc_pick)),
        SchedKind::Wlc => Box::new(Stateless(SchedKind::Wlc, wlc_pick)),
        SchedKind::Sed => Box::new(Stateless(SchedKind::Sed, sed_pick)),
        SchedKind::Nq => Box::new(Stateless(SchedKind::Nq, nq_pick)),
        SchedKind::Fo => Box::new(Stateless(SchedKind::Fo, fo_pick)),
        SchedKind::Ovf => Box::new(Stateless(SchedKind::Ovf, ovf_pick)),
        SchedKind::Twos => Box::new(Twos),
        SchedKind::Dh => Box::new(Hashing::new(SchedKind::Dh, false, false)),
        SchedKind::Sh => Box::new(Hashing::new(SchedKind::Sh, fallback, port)),
        SchedKind::Mh => Box::new(Hashing::new(SchedKind::Mh, fallback, port)),
        SchedKind::Lblc => Box::new(Lblc::new()),
        SchedKind::Lblcr => Box::new(Lblcr::new()),
    })
}

// ---------------------------------------------------------------------------
// Stateless pickers

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

struct Stateless(SchedKind, fn(&[DestView]) -> Option<usize>);

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

struct Twos;

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

// ---------------------------------------------------------------------------
// rr and wrr (stateful cursors)

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
            let new: Vec<super::cursor::CursorDest> = dests
                .iter()
                .map(|d| super::cursor::CursorDest {
                    id: d.id,
                    weight: d.weight,
                })
                .collect();
            self.cw = super::cursor::wrr_cw_after(0, &[], &new);
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

// ---------------------------------------------------------------------------
// dh, sh, mh (tables)

/// dh / sh / mh: a table built on [`Scheduler::dests_changed`], holding dest
/// ids, looked up per flow with the functions of [`super::table`].
struct Hashing {
    kind: SchedKind,
    fallback: bool,
    port: bool,
    built: bool,
    /// slot → list index, valid for the list `ids` it was built from
    table: Vec<Option<usize>>,
    /// dest ids of that list, in order
    ids: Vec<u32>,
}

impl Hashing {
    fn new(kind: SchedKind, fallback: bool, port: bool) -> Self {
        Hashing {
            kind,
            fallback,
            port,
            built: false,
            table: Vec::new(),
            ids: Vec::new(),
        }
    }
}

impl Scheduler for Hashing {
    fn kind(&self) -> SchedKind {
        self.kind
    }
    fn dests_changed(&mut self, dests: &[DestView]) {
        let t = match self.kind {
            SchedKind::Dh => dh_table(dests.len()),
            SchedKind::Sh => sh_table(&dests.iter().map(|d| d.weight).collect::<Vec<_>>()),
            _ => mh_table(
                &dests
                    .iter()
                    .map(|d| MhDest {
                        addr: u32::from(d.addr),
                        port: d.port,
                        last_weight: d.last_weight,
                    })
                    .collect::<Vec<_>>(),
            ),
        };
        self.table = t;
        self.ids = dests.iter().map(|d| d.id).collect();
        self.built = true;
    }
    fn schedule(
        &mut self,
        dests: &[DestView],
        flow: &FlowKey,
        _now: u64,
        _rand: &mut dyn FnMut() -> u32,
    ) -> Option<usize> {
        if !self.built {
            self.dests_changed(dests);
        }
        // The table holds indices into the list it was built from; if the
        // caller changed the list without dests_changed(), translate by id
        // (a dest that vanished reads as an empty slot).
        let same =
            self.ids.len() == dests.len() && self.ids.iter().zip(dests).all(|(&a, d)| a == d.id);
        let translated: Vec<Option<usize>>;
        let idx: &[Option<usize>] = if same {
            &self.table
        } else {
            translated = self
                .table
                .iter()
                .map(|s| s.and_then(|i| dests.iter().position(|d| d.id == self.ids[i])))
                .collect();
            &translated
        };
        let avail = |i: usize| dests[i].schedulable();
        let port = if self.port { flow.hash_port() } else { 0 };
        match self.kind {
            SchedKind::Dh => dh_lookup(idx, avail, u32::from(flow.daddr)),
            SchedKind::Sh if self.fallback => {
                sh_lookup_fallback(idx, avail, u32::from(flow.saddr), port)
            }
            SchedKind::Sh => sh_lookup(idx, avail, u32::from(flow.saddr), port),
            _ if self.fallback => mh_lookup_fallback(idx, avail, u32::from(flow.saddr), port),
            _ => mh_lookup(idx, avail, u32::from(flow.saddr), port),
        }
    }
}

// lblc / lblcr implement Scheduler in `locality`.

#[cfg(test)]
#[path = "reference_tests.rs"]
mod tests;
