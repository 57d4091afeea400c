//! lblc and lblcr: the per-destination-address caches of `ip_vs_lblc.c` and
//! `ip_vs_lblcr.c`, with explicit time.
//!
//! The cache key is the packet's **destination** address (for a plain
//! virtual service that is always the VIP, so every flow of the service
//! shares one entry; the schedulers were written for transparent cache
//! clusters where the destination varies). Cache values name destinations
//! by id. A destination id missing from the current list reads as the
//! kernel's "not `IP_VS_DEST_F_AVAILABLE`" (a removed dest in the trash);
//! for lblcr's "most loaded" choice it counts as weight 0.
//!
//! Times are seconds on a monotonic clock (the kernel uses jiffies; only the
//! resolution differs).

use std::collections::BTreeMap;

use super::hash::{addr_fold, lblc_hashkey, LBLC_TAB_SIZE};
use super::reference::{weighted_least, DestView, FlowKey, SchedKind, Scheduler};
use std::net::IpAddr;

/// Period of the garbage-collection timer (`CHECK_EXPIRE_INTERVAL`, 60 s).
pub const CHECK_EXPIRE_INTERVAL: u64 = 60;
/// Idle time after which the over-size collector may drop an entry
/// (`ENTRY_TIMEOUT`, 6 minutes).
pub const ENTRY_TIMEOUT: u64 = 6 * 60;
/// Default of the sysctls `lblc_expiration` and `lblcr_expiration`
/// (`DEFAULT_EXPIRATION`, 24 hours): idle time after which the periodic
/// full check drops an entry, and (lblcr) the time a replica set must stay
/// unmodified before it is shrunk by one.
pub const DEFAULT_EXPIRATION: u64 = 24 * 60 * 60;
/// Every this many timer runs a full expiration check happens
/// (`COUNT_FOR_FULL_EXPIRATION`): every 30 minutes.
pub const COUNT_FOR_FULL_EXPIRATION: u32 = 30;
/// Entries beyond which the timer collects idle ones (`max_size` =
/// `TAB_SIZE * 16` = 16384).
pub const MAX_ENTRIES: usize = LBLC_TAB_SIZE * 16;

/// One locality cache entry, in the form the data plane's map is compared
/// with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalityEntry {
    /// Destination address of the flows (the key).
    pub daddr: IpAddr,
    /// lblc: the one cached dest id. lblcr: the replica set, most recently
    /// inserted first (the kernel's list order, which decides ties).
    pub dests: Vec<u32>,
    /// Last time the entry was looked up or created.
    pub lastuse: u64,
    /// lblcr: last time the set was modified (insert or erase); lblc: equal
    /// to the creation time.
    pub lastmod: u64,
}

/// lblc/lblcr's own `is_overloaded(dest, svc)` (not the OVERLOAD flag):
/// `dest.activeconns > dest.weight` and some dest of the service (any, even
/// OVERLOAD ones) has `activeconns * 2 < weight`.
pub fn locality_overloaded(dest: &DestView, dests: &[DestView]) -> bool {
    dest.activeconns > dest.weight
        && dests
            .iter()
            .any(|d| (d.activeconns as u64) * 2 < d.weight as u64)
}

/// Shared timer state and logic (`ip_vs_lblc(r)_check_expire`).
#[derive(Debug, Clone)]
struct Gc {
    rover: usize,
    counter: u32,
    expiration: u64,
}

impl Gc {
    fn new(expiration: u64) -> Self {
        Gc {
            rover: 0,
            counter: 1,
            expiration,
        }
    }

    /// One timer run over `entries` (key → lastuse accessor).
    fn tick<V>(
        &mut self,
        entries: &mut BTreeMap<IpAddr, V>,
        now: u64,
        lastuse: impl Fn(&V) -> u64,
    ) {
        // (a plain remainder: `is_multiple_of` is newer than the MSRV)
        let rem = self.counter % COUNT_FOR_FULL_EXPIRATION;
        if rem == 0 {
            // Full check: drop everything idle for `expiration` or more
            // (kept while now < lastuse + expiration). Walking all buckets
            // leaves the rover where it was.
            let exp = self.expiration;
            entries.retain(|_, v| now < lastuse(v).saturating_add(exp));
            self.counter = 1;
            return;
        }
        if entries.len() <= MAX_ENTRIES {
            self.counter += 1;
            return;
        }
        let over = entries.len() - MAX_ENTRIES;
        let mut goal = (over * 4 / 3).min(MAX_ENTRIES / 2) as i64;
        let mut buckets: Vec<Vec<IpAddr>> = vec![Vec::new(); LBLC_TAB_SIZE];
        for &k in entries.keys() {
            buckets[lblc_hashkey(addr_fold(k))].push(k);
        }
        let mut j = self.rover;
        for _ in 0..LBLC_TAB_SIZE {
            j = (j + 1) % LBLC_TAB_SIZE;
            for k in &buckets[j] {
                let lu = lastuse(&entries[k]);
                if now < lu.saturating_add(ENTRY_TIMEOUT) {
                    continue;
                }
                entries.remove(k);
                goal -= 1;
            }
            if goal <= 0 {
                break;
            }
        }
        self.rover = j;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct LblcEntry {
    dest: u32,
    lastuse: u64,
    created: u64,
}

/// `ip_vs_lblc`: one cached destination per destination address.
///
/// Schedule: on a cache hit, `lastuse = now`; the cached dest is used when it
/// is still in the list, has `weight > 0` and is not
/// [`locality_overloaded`]. **The OVERLOAD flag is not checked on a hit**
/// (the kernel does not), so an lblc hit can go to a dest over its upper
/// threshold. Otherwise (miss or unusable) the weighted least-connection
/// dest is picked (skipping OVERLOAD, as wlc) and cached — a new entry
/// (`lastuse = now`) unless the entry already names that dest. No dest →
/// `None`, cache unchanged.
#[derive(Debug, Clone)]
pub struct Lblc {
    entries: BTreeMap<IpAddr, LblcEntry>,
    gc: Gc,
}

impl Default for Lblc {
    fn default() -> Self {
        Self::new()
    }
}

impl Lblc {
    /// Empty cache, `lblc_expiration` = 24 h.
    pub fn new() -> Self {
        Self::with_expiration(DEFAULT_EXPIRATION)
    }

    /// Empty cache with a given `lblc_expiration` in seconds.
    pub fn with_expiration(secs: u64) -> Self {
        Lblc {
            entries: BTreeMap::new(),
            gc: Gc::new(secs),
        }
    }

    /// The lblc decision for destination address `daddr`.
    pub fn pick(&mut self, dests: &[DestView], daddr: IpAddr, now: u64) -> Option<usize> {
        if let Some(en) = self.entries.get_mut(&daddr) {
            en.lastuse = now;
            if let Some(i) = dests.iter().position(|d| d.id == en.dest) {
                let d = &dests[i];
                if d.weight > 0 && !locality_overloaded(d, dests) {
                    return Some(i);
                }
            }
        }
        let i = weighted_least(dests, DestView::overhead)?;
        let id = dests[i].id;
        match self.entries.get(&daddr) {
            Some(en) if en.dest == id => {}
            _ => {
                self.entries.insert(
                    daddr,
                    LblcEntry {
                        dest: id,
                        lastuse: now,
                        created: now,
                    },
                );
            }
        }
        Some(i)
    }

    /// The cache, ordered by address.
    pub fn entries(&self) -> Vec<LocalityEntry> {
        self.entries
            .iter()
            .map(|(&daddr, e)| LocalityEntry {
                daddr,
                dests: vec![e.dest],
                lastuse: e.lastuse,
                lastmod: e.created,
            })
            .collect()
    }
}

impl Scheduler for Lblc {
    fn kind(&self) -> SchedKind {
        SchedKind::Lblc
    }
    fn dests_changed(&mut self, _dests: &[DestView]) {}
    fn schedule(
        &mut self,
        dests: &[DestView],
        flow: &FlowKey,
        now: u64,
        _rand: &mut dyn FnMut() -> u32,
    ) -> Option<usize> {
        self.pick(dests, flow.daddr, now)
    }
    /// The 60-second timer: every 30th run drops entries idle for
    /// `lblc_expiration`; otherwise, above [`MAX_ENTRIES`] entries, drops
    /// entries idle for [`ENTRY_TIMEOUT`] bucket by bucket from the rover
    /// until `min((n - MAX) * 4 / 3, MAX / 2)` are gone.
    fn tick(&mut self, now: u64) {
        self.gc.tick(&mut self.entries, now, |e| e.lastuse);
    }
    fn locality_cache(&self) -> Option<Vec<LocalityEntry>> {
        Some(self.entries())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct LblcrEntry {
    /// Most recently inserted first.
    set: Vec<u32>,
    lastmod: u64,
    lastuse: u64,
}

/// `ip_vs_lblcr`: a replica set of destinations per destination address.
///
/// Schedule, entry present (`lastuse = now`):
/// 1. `least` = weighted least-connection member of the set
///    (`ip_vs_dest_set_min`: members in set order; skip OVERLOAD; the first
///    with `weight > 0` that is still in the list starts, later members
///    replace it when strictly less loaded per weight and still in the list).
/// 2. If the set has more than one member and `now > lastmod +
///    lblcr_expiration` (24 h by default; *not* 6 minutes), the most loaded
///    member (`ip_vs_dest_set_max`: first with `weight > 0`, replaced when
///    strictly more loaded per weight and `weight > 0`) is erased and
///    `lastmod = now`. `least` computed in step 1 is still used even if it
///    was just erased.
/// 3. `least` exists and is not [`locality_overloaded`] → it. (The OVERLOAD
///    flag was already excluded in step 1.)
/// 4. Else the service-wide weighted least-connection dest (as wlc; `None`
///    if there is none), inserted at the front of the set if not already a
///    member (`lastmod = now` only when inserted).
///
/// Entry absent: the service-wide weighted least-connection dest; a new
/// entry `{set: [dest], lastuse = lastmod = now}`.
#[derive(Debug, Clone)]
pub struct Lblcr {
    entries: BTreeMap<IpAddr, LblcrEntry>,
    gc: Gc,
}

impl Default for Lblcr {
    fn default() -> Self {
        Self::new()
    }
}

fn set_min(set: &[u32], dests: &[DestView]) -> Option<usize> {
    let lookup = |id: u32| dests.iter().position(|d| d.id == id);
    let mut iter = set.iter();
    let mut least: Option<(usize, u128)> = None;
    for &id in iter.by_ref() {
        let Some(i) = lookup(id) else {
            // Not available. The kernel checks OVERLOAD before availability,
            // but a removed dest is skipped either way.
            continue;
        };
        let d = &dests[i];
        if d.overloaded {
            continue;
        }
        if d.weight > 0 {
            least = Some((i, d.overhead() as u128));
            break;
        }
    }
    let (mut li, mut loh) = least?;
    for &id in iter {
        let Some(i) = lookup(id) else { continue };
        let d = &dests[i];
        if d.overloaded {
            continue;
        }
        let doh = d.overhead() as u128;
        if loh * d.weight as u128 > doh * dests[li].weight as u128 {
            li = i;
            loh = doh;
        }
    }
    Some(li)
}

/// The set member to erase (an id), per `ip_vs_dest_set_max`.
fn set_max(set: &[u32], dests: &[DestView]) -> Option<u32> {
    // (id, weight, overhead); a removed dest counts as weight 0.
    let view = |id: u32| {
        dests
            .iter()
            .find(|d| d.id == id)
            .map_or((id, 0u128, 0u128), |d| {
                (id, d.weight as u128, d.overhead() as u128)
            })
    };
    let mut iter = set.iter().map(|&id| view(id));
    let (mut mid, mut mw, mut moh) = iter.by_ref().find(|&(_, w, _)| w > 0)?;
    for (id, w, oh) in iter {
        if moh * w < oh * mw && w > 0 {
            mid = id;
            mw = w;
            moh = oh;
        }
    }
    Some(mid)
}

impl Lblcr {
    /// Empty cache, `lblcr_expiration` = 24 h.
    pub fn new() -> Self {
        Self::with_expiration(DEFAULT_EXPIRATION)
    }

    /// Empty cache with a given `lblcr_expiration` in seconds.
    pub fn with_expiration(secs: u64) -> Self {
        Lblcr {
            entries: BTreeMap::new(),
            gc: Gc::new(secs),
        }
    }

    /// The lblcr decision for destination address `daddr`.
    pub fn pick(&mut self, dests: &[DestView], daddr: IpAddr, now: u64) -> Option<usize> {
        let exp = self.gc.expiration;
        if let Some(en) = self.entries.get_mut(&daddr) {
            en.lastuse = now;
            let least = set_min(&en.set, dests);
            if en.set.len() > 1 && now > en.lastmod.saturating_add(exp) {
                if let Some(m) = set_max(&en.set, dests) {
                    if let Some(p) = en.set.iter().position(|&id| id == m) {
                        en.set.remove(p);
                        en.lastmod = now;
                    }
                }
            }
            if let Some(i) = least {
                if !locality_overloaded(&dests[i], dests) {
                    return Some(i);
                }
            }
            let i = weighted_least(dests, DestView::overhead)?;
            let id = dests[i].id;
            if !en.set.contains(&id) {
                en.set.insert(0, id);
                en.lastmod = now;
            }
            return Some(i);
        }
        let i = weighted_least(dests, DestView::overhead)?;
        self.entries.insert(
            daddr,
            LblcrEntry {
                set: vec![dests[i].id],
                lastmod: now,
                lastuse: now,
            },
        );
        Some(i)
    }

    /// The cache, ordered by address.
    pub fn entries(&self) -> Vec<LocalityEntry> {
        self.entries
            .iter()
            .map(|(&daddr, e)| LocalityEntry {
                daddr,
                dests: e.set.clone(),
                lastuse: e.lastuse,
                lastmod: e.lastmod,
            })
            .collect()
    }
}

impl Scheduler for Lblcr {
    fn kind(&self) -> SchedKind {
        SchedKind::Lblcr
    }
    fn dests_changed(&mut self, _dests: &[DestView]) {}
    fn schedule(
        &mut self,
        dests: &[DestView],
        flow: &FlowKey,
        now: u64,
        _rand: &mut dyn FnMut() -> u32,
    ) -> Option<usize> {
        self.pick(dests, flow.daddr, now)
    }
    /// Same timer as lblc, with `lblcr_expiration`.
    fn tick(&mut self, now: u64) {
        self.gc.tick(&mut self.entries, now, |e| e.lastuse);
    }
    fn locality_cache(&self) -> Option<Vec<LocalityEntry>> {
        Some(self.entries())
    }
}
