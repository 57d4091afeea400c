//! Lookup tables for the hashing schedulers (`dh`, `sh`, `mh`), built in user
//! space the way the kernel builds them, and the lookups (with the optional
//! fallback probe) specified as pure functions the XDP program mirrors.
//!
//! A table is a `Vec<Option<usize>>`: slot → index into the destination list
//! the table was built from (kernel list order). `None` only appears when the
//! list was empty (or, for mh, when no destination has a positive weight).
//! The data plane stores the destination *id* of that list entry in each
//! slot; "available" below means `weight > 0 && !OVERLOAD` for that dest.

use super::hash::{
    dh_hashkey, fls, mh_hashkey, sh_hashkey, DH_TAB_SIZE, MH_HASH1_KEY, MH_HASH2_KEY, SH_TAB_SIZE,
};

/// A bucket table: slot → index into the destination list.
pub type Table = Vec<Option<usize>>;

/// The primes the kernel offers for the mh table (`primes[]` in `ip_vs_mh.c`).
pub const MH_PRIMES: [usize; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];
/// `CONFIG_IP_VS_MH_TAB_INDEX` default.
pub const MH_TAB_INDEX: usize = 12;
/// Default mh table size: `MH_PRIMES[MH_TAB_INDEX - 8]` = 4093.
pub const MH_TAB_SIZE: usize = MH_PRIMES[MH_TAB_INDEX - 8];
/// `IP_VS_MH_TAB_BITS` = `CONFIG_IP_VS_MH_TAB_INDEX / 2` = 6: weights are
/// scaled down so that `max_weight / gcd` fits in this many bits.
pub const MH_TAB_BITS: u32 = (MH_TAB_INDEX / 2) as u32;

/// `ip_vs_dh_reassign`: bucket `i` holds destination `i % n` (weights play
/// no part in dh). An empty list gives an all-`None` table.
pub fn dh_table(n_dests: usize) -> Table {
    (0..DH_TAB_SIZE)
        .map(|i| {
            if n_dests == 0 {
                None
            } else {
                Some(i % n_dests)
            }
        })
        .collect()
}

/// `ip_vs_sh_reassign`: walk the 256 buckets, filling `weight` consecutive
/// buckets with each destination in list order, wrapping to the list head
/// until all buckets are filled. `weights` are the current weights in list
/// order.
///
/// Kernel detail kept: the per-dest counter is compared with `>=`, so a
/// weight-0 destination still takes exactly one bucket (sources hashing
/// there get no destination, or fall back with `sh-fallback`). A weight of
/// 256 or more lets one destination take every remaining bucket.
pub fn sh_table(weights: &[u32]) -> Table {
    let mut t = vec![None; SH_TAB_SIZE];
    if weights.is_empty() {
        return t;
    }
    let (mut p, mut count) = (0usize, 0u64);
    for slot in t.iter_mut() {
        *slot = Some(p);
        count += 1;
        if count >= weights[p] as u64 {
            p = (p + 1) % weights.len();
            count = 0;
        }
    }
    t
}

/// `ip_vs_dh_schedule`: the destination in bucket [`dh_hashkey`]`(daddr)`,
/// if available; no fallback exists for dh.
pub fn dh_lookup(
    table: &[Option<usize>],
    available: impl Fn(usize) -> bool,
    daddr: u32,
) -> Option<usize> {
    table
        .get(dh_hashkey(daddr))
        .copied()
        .flatten()
        .filter(|&i| available(i))
}

/// `ip_vs_sh_get`: the destination in bucket [`sh_hashkey`]`(saddr, port, 0)`
/// if it is available, else `None`.
pub fn sh_lookup(
    table: &[Option<usize>],
    available: impl Fn(usize) -> bool,
    saddr: u32,
    port: u16,
) -> Option<usize> {
    table
        .get(sh_hashkey(saddr, port, 0))
        .copied()
        .flatten()
        .filter(|&i| available(i))
}

/// `ip_vs_sh_get_fallback` (`-b sh-fallback`).
///
/// `ihash = sh_hashkey(saddr, port, 0)`. An empty bucket there → `None`; an
/// available dest → that dest. Otherwise probe, for `offset` in `0..256`:
/// `roffset = (offset + ihash) % 256`, bucket `sh_hashkey(saddr, port,
/// roffset)`; an empty bucket stops the probe (`None`), the first available
/// dest is returned. Since `sh_hashkey(.., roffset) = (roffset + ihash) &
/// 255`, the probe visits the buckets `(2*ihash + offset) & 255`, i.e. every
/// bucket once starting at `2*ihash` — at most 256 steps.
pub fn sh_lookup_fallback(
    table: &[Option<usize>],
    available: impl Fn(usize) -> bool,
    saddr: u32,
    port: u16,
) -> Option<usize> {
    let ihash = sh_hashkey(saddr, port, 0);
    let first = table.get(ihash).copied().flatten()?;
    if available(first) {
        return Some(first);
    }
    for offset in 0..SH_TAB_SIZE as u32 {
        let roffset = (offset + ihash as u32) % SH_TAB_SIZE as u32;
        let d = table
            .get(sh_hashkey(saddr, port, roffset))
            .copied()
            .flatten()?;
        if available(d) {
            return Some(d);
        }
    }
    None
}

/// What the mh table builder needs to know about one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MhDest {
    /// Real server address, host byte order.
    pub addr: u32,
    /// Real server port, host byte order.
    pub port: u16,
    /// The kernel's `last_weight`: the latest non-zero weight set by an edit
    /// (or the weight the dest was added with, even 0). Quiescing a dest to
    /// weight 0 keeps its table slots (it is then merely unavailable).
    pub last_weight: u32,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// `ip_vs_mh_reassign` with the default table size ([`MH_TAB_SIZE`] = 4093).
pub fn mh_table(dests: &[MhDest]) -> Table {
    mh_table_sized(dests, MH_TAB_SIZE)
}

/// `ip_vs_mh_gcd_weight` + `ip_vs_mh_shift_weight` + `ip_vs_mh_permutate` +
/// `ip_vs_mh_populate` for a prime table `size` (one of [`MH_PRIMES`]).
///
/// * `gcd` of the positive `last_weight`s; none → all-`None` table.
/// * `rshift = max(fls(max_last_weight / gcd) - MH_TAB_BITS, 0)`.
/// * Per dest: `offset = mh_hashkey(addr, port, MH_HASH1_KEY, 0) % size`,
///   `skip = mh_hashkey(addr, port, MH_HASH2_KEY, 0) % (size - 1) + 1`,
///   `turns = (last_weight / gcd) >> rshift`, or 1 if that is 0 while
///   `last_weight != 0`. Dests with `turns == 0` take no slot.
/// * Populate: cycle over the list in order; the current dest claims its next
///   free preferred slot (`perm` starts at `offset`, advances by `skip`
///   modulo `size` past taken slots), and keeps the turn for `turns`
///   consecutive claims before the next dest's turn; stop when every slot is
///   taken.
pub fn mh_table_sized(dests: &[MhDest], size: usize) -> Table {
    let mut table = vec![None; size];
    let g = dests
        .iter()
        .map(|d| d.last_weight as u64)
        .filter(|&w| w > 0)
        .fold(0u64, |g, w| if g == 0 { w } else { gcd(w, g) });
    if g == 0 || size < 2 {
        return table;
    }
    let max = dests
        .iter()
        .map(|d| d.last_weight as u64)
        .max()
        .unwrap_or(0);
    let shift = fls((max / g) as u32) as i64 - MH_TAB_BITS as i64;
    let rshift = shift.max(0) as u32;
    struct Setup {
        perm: usize,
        skip: usize,
        turns: u64,
    }
    let mut setup: Vec<Setup> = dests
        .iter()
        .map(|d| {
            let offset = mh_hashkey(d.addr, d.port, MH_HASH1_KEY, 0) as usize % size;
            let skip = mh_hashkey(d.addr, d.port, MH_HASH2_KEY, 0) as usize % (size - 1) + 1;
            let lw = d.last_weight as u64;
            let t = (lw / g) >> rshift;
            let turns = if t != 0 { t } else { u64::from(lw != 0) };
            Setup {
                perm: offset,
                skip,
                turns,
            }
        })
        .collect();
    let mut taken = vec![false; size];
    let mut filled = 0usize;
    'outer: loop {
        let mut i = 0;
        let mut dt_count = 0u64;
        while i < setup.len() {
            let ds = &mut setup[i];
            if ds.turns < 1 {
                i += 1;
                continue;
            }
            while taken[ds.perm] {
                ds.perm += ds.skip;
                if ds.perm >= size {
                    ds.perm -= size;
                }
            }
            taken[ds.perm] = true;
            table[ds.perm] = Some(i);
            filled += 1;
            if filled == size {
                break 'outer;
            }
            dt_count += 1;
            if dt_count >= ds.turns {
                dt_count = 0;
                i += 1;
            }
        }
    }
    table
}

/// `ip_vs_mh_get`: slot `mh_hashkey(saddr, port, MH_HASH1_KEY, 0) %
/// table.len()`; its dest if available, else `None`.
pub fn mh_lookup(
    table: &[Option<usize>],
    available: impl Fn(usize) -> bool,
    saddr: u32,
    port: u16,
) -> Option<usize> {
    if table.is_empty() {
        return None;
    }
    let slot = mh_hashkey(saddr, port, MH_HASH1_KEY, 0) as usize % table.len();
    table[slot].filter(|&i| available(i))
}

/// `ip_vs_mh_get_fallback` (`-b mh-fallback`): with `size = table.len()` and
/// `ihash = mh_hashkey(saddr, port, MH_HASH1_KEY, 0) % size`: an empty slot
/// → `None`; an available dest → it. Otherwise for `offset` in `0..size`:
/// `roffset = (offset + ihash) % size`, slot `mh_hashkey(saddr, port,
/// MH_HASH1_KEY, roffset) % size`; empty → stop with `None`; first available
/// dest wins. (Up to `size` hashes: the XDP side needs `bpf_loop` or a
/// bounded loop of 4093 iterations.)
pub fn mh_lookup_fallback(
    table: &[Option<usize>],
    available: impl Fn(usize) -> bool,
    saddr: u32,
    port: u16,
) -> Option<usize> {
    let size = table.len();
    if size == 0 {
        return None;
    }
    let ihash = mh_hashkey(saddr, port, MH_HASH1_KEY, 0) as usize % size;
    let first = table[ihash]?;
    if available(first) {
        return Some(first);
    }
    for offset in 0..size {
        let roffset = ((offset + ihash) % size) as u32;
        let slot = mh_hashkey(saddr, port, MH_HASH1_KEY, roffset) as usize % size;
        let d = table[slot]?;
        if available(d) {
            return Some(d);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(t: &[Option<usize>], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for i in t.iter().flatten() {
            c[*i] += 1;
        }
        c
    }

    #[test]
    fn dh_round_robin_buckets() {
        let t = dh_table(3);
        assert_eq!(&t[..5], &[Some(0), Some(1), Some(2), Some(0), Some(1)]);
        assert_eq!(count(&t, 3), vec![86, 85, 85]);
        assert!(dh_table(0).iter().all(|s| s.is_none()));
    }

    #[test]
    fn sh_weighted_runs() {
        let t = sh_table(&[2, 1]);
        assert_eq!(
            &t[..6],
            &[Some(0), Some(0), Some(1), Some(0), Some(0), Some(1)]
        );
        // 256 = 85 * 3 + 1: the 256th bucket is the start of a new run of dest 0
        assert_eq!(count(&t, 2), vec![171, 85]);
        // weight 0 still takes one bucket per cycle
        let t = sh_table(&[1, 0, 2]);
        assert_eq!(&t[..4], &[Some(0), Some(1), Some(2), Some(2)]);
        assert_eq!(count(&t, 3), vec![64, 64, 128]);
        // a huge weight takes everything
        assert_eq!(count(&sh_table(&[1000, 1]), 2), vec![256, 0]);
        assert!(sh_table(&[]).iter().all(|s| s.is_none()));
    }

    #[test]
    fn sh_fallback_probe_order() {
        // dests 0 and 1 alternate; make dest at ihash unavailable
        let t = sh_table(&[1, 1]);
        let saddr = 0x0a00_0001;
        let ihash = sh_hashkey(saddr, 0, 0);
        let bad = t[ihash].unwrap();
        assert_eq!(sh_lookup(&t, |i| i != bad, saddr, 0), None);
        // first probe is bucket (2*ihash) & 255
        let probe0 = (2 * ihash) & 255;
        let expect = if t[probe0] != Some(bad) {
            t[probe0]
        } else {
            t[(probe0 + 1) & 255]
        };
        assert_eq!(sh_lookup_fallback(&t, |i| i != bad, saddr, 0), expect);
        assert_eq!(sh_lookup_fallback(&t, |_| false, saddr, 0), None);
        assert_eq!(sh_lookup_fallback(&t, |_| true, saddr, 0), Some(bad));
        assert_eq!(sh_lookup_fallback(&sh_table(&[]), |_| true, saddr, 0), None);
    }

    fn mh_dests(n: u32, w: u32) -> Vec<MhDest> {
        (0..n)
            .map(|i| MhDest {
                addr: 0x0a00_0100 + i,
                port: 80,
                last_weight: w,
            })
            .collect()
    }

    #[test]
    fn mh_fills_table_evenly() {
        let d = mh_dests(4, 1);
        let t = mh_table(&d);
        assert_eq!(t.len(), 4093);
        assert!(t.iter().all(|s| s.is_some()));
        let c = count(&t, 4);
        // equal weights: each dest claims slots in turn, so counts differ by <= 1
        assert!(
            c.iter().max().unwrap() - c.iter().min().unwrap() <= 1,
            "{c:?}"
        );
        assert!(mh_table(&[]).iter().all(|s| s.is_none()));
        assert!(mh_table(&mh_dests(3, 0)).iter().all(|s| s.is_none()));
    }

    #[test]
    fn mh_weights_honoured() {
        let mut d = mh_dests(3, 1);
        d[0].last_weight = 1;
        d[1].last_weight = 2;
        d[2].last_weight = 3;
        let c = count(&mh_table(&d), 3);
        // turns 1:2:3 per round -> 682/1364/2047 (last round cut short)
        assert!((c[0] as i64 - 682).abs() <= 2, "{c:?}");
        assert!((c[1] as i64 - 1364).abs() <= 3, "{c:?}");
        assert!((c[2] as i64 - 2047).abs() <= 3, "{c:?}");
        // zero last_weight takes no slot
        d[1].last_weight = 0;
        let c = count(&mh_table(&d), 3);
        assert_eq!(c[1], 0);
        // gcd scaling: 100:300 behaves as 1:3
        let mut e = mh_dests(2, 100);
        e[1].last_weight = 300;
        let c = count(&mh_table(&e), 2);
        assert!((c[0] as i64 - 1023).abs() <= 3, "{c:?}");
    }

    #[test]
    fn mh_rshift_caps_turns() {
        // 1:1000 -> mw = 1000, fls = 10, rshift = 4: turns 0->1 and 62
        let mut d = mh_dests(2, 1);
        d[1].last_weight = 1000;
        let c = count(&mh_table(&d), 2);
        // 4093 = 63 * 64 + 61: 65 rounds, dest 0 gets one slot per round
        assert_eq!(c[0], 65, "{c:?}");
        assert_eq!(c[0] + c[1], 4093);
    }

    #[test]
    fn mh_maglev_minimal_disruption() {
        let n = 10u32;
        let d = mh_dests(n, 1);
        let t1 = mh_table(&d);
        // remove dest 3 (list indices shift by one after it)
        let mut d2 = d.clone();
        d2.remove(3);
        let t2 = mh_table(&d2);
        let map2 = |i: usize| if i >= 3 { i + 1 } else { i };
        let sources = 20_000u32;
        let mut moved = 0;
        for s in 0..sources {
            let saddr = 0xc0a8_0000u32.wrapping_add(s.wrapping_mul(2_654_435_761));
            let a = mh_lookup(&t1, |_| true, saddr, 0).unwrap();
            let b = map2(mh_lookup(&t2, |_| true, saddr, 0).unwrap());
            if a == 3 {
                assert_ne!(b, 3);
            }
            if a != b {
                moved += 1;
            }
        }
        let frac = moved as f64 / sources as f64;
        // ideal is 1/N = 0.10; Maglev adds a little churn
        assert!(frac > 0.08 && frac < 0.15, "moved {frac}");
    }

    #[test]
    fn mh_fallback_skips_unavailable() {
        let d = mh_dests(3, 1);
        let t = mh_table(&d);
        for s in 0..200u32 {
            let saddr = 0x0b00_0000 + s * 7919;
            let a = mh_lookup(&t, |_| true, saddr, 0).unwrap();
            assert_eq!(mh_lookup(&t, |i| i != a, saddr, 0), None);
            let f = mh_lookup_fallback(&t, |i| i != a, saddr, 0).unwrap();
            assert_ne!(f, a);
            assert_eq!(mh_lookup_fallback(&t, |_| false, saddr, 0), None);
            // port participates only when passed
            let _ = mh_lookup(&t, |_| true, saddr, 1234).unwrap();
        }
    }
}
