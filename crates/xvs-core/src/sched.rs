//! Scheduler names and the selection rings the data plane cycles through.
//!
//! The data plane cannot run the kernel's stateful schedulers per packet, so
//! for the cyclic schedulers (`rr`, `wrr`) user space precomputes one full
//! period of the kernel's selection sequence as a ring of indices into the
//! destination list. The XDP program picks `ring[pos % ring.len()]` with a
//! per-service atomic counter, which reproduces the kernel's order exactly.
//!
//! The other schedulers are specified by the submodules:
//!
//! * [`mod@reference`]: a reference model of every scheduler (what the kernel
//!   picks), behind one entry point, [`model`].
//! * [`table`]: the dh/sh/mh lookup tables the data plane looks up, and the
//!   lookups (with `sh-fallback` / `mh-fallback` probing).
//! * [`hash`]: the exact hash functions, documented for the C side.
//! * [`locality`]: the lblc/lblcr caches with explicit time.
//! * [`persist`]: persistence template keys and the OVERLOAD thresholds.
//! * [`cursor`]: where rr and wrr continue after their dest list changes.

pub mod cursor;
pub mod hash;
pub mod locality;
pub mod persist;
pub mod reference;
pub mod table;

pub use reference::{model, DestView, FlowKey, SchedKind, Scheduler};

/// Every scheduler name ipvsadm and the kernel know, spelt as `-s` takes it.
pub const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
];

/// ipvsadm's default scheduler (`DEF_SCHED`).
pub const DEFAULT_SCHEDULER: &str = "wlc";

/// True when `name` is a scheduler IPVS ships (exact, case-sensitive match,
/// as the kernel's `ip_vs_scheduler_get` compares names).
pub fn is_known(name: &str) -> bool {
    SCHEDULERS.contains(&name)
}

/// Why a ring cannot be built for a scheduler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedError {
    /// The name is not an IPVS scheduler at all.
    #[error("unknown scheduler `{0}'")]
    Unknown(String),
    /// The scheduler exists in IPVS but is not a cyclic one xvs can precompute.
    #[error("scheduler `{0}' is not supported by xvs")]
    Unsupported(String),
}

/// Round robin over `n` destinations, in list order: `[0, 1, ..., n-1]`.
///
/// `ip_vs_rr_schedule` starts from the list head after a (re)configuration
/// and walks forward, so one period visits every destination once in order.
/// Use [`rr_ring_weighted`] when some destinations may have weight 0.
pub fn rr_ring(n: usize) -> Vec<usize> {
    (0..n).collect()
}

/// Round robin that skips weight-0 destinations, as `ip_vs_rr_schedule`
/// does (it only picks dests with `weight > 0`).
pub fn rr_ring_weighted(weights: &[u32]) -> Vec<usize> {
    weights
        .iter()
        .enumerate()
        .filter(|(_, &w)| w > 0)
        .map(|(i, _)| i)
        .collect()
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// One full period of the kernel's `ip_vs_wrr_schedule` sequence.
///
/// Mirrors `ip_vs_wrr_init_svc`/`ip_vs_wrr_dest_changed`: `di` is the gcd of
/// the positive weights, `mw = max_weight - (di - 1)`, the walk starts at the
/// list head with `cw = mw`. Every pass walks the list in order and picks
/// dests whose weight is `>= cw`; after a pass `cw -= di`, and when it drops
/// to `<= 0` it wraps to `mw`, which is where the period ends. Because
/// `mw - k*di` reaches exactly 1 on the last pass, every positive-weight dest
/// appears in that pass. Weight-0 dests never appear; all-zero gives an
/// empty ring (the kernel's "no destination available").
///
/// The ring length is the sum over passes, at most `max_weight / di` passes
/// of `n` entries, so callers should keep weights in ipvsadm's 0..=65535.
pub fn wrr_ring(weights: &[u32]) -> Vec<usize> {
    let di = weights.iter().filter(|&&w| w > 0).fold(0u64, |g, &w| {
        if g == 0 {
            w as u64
        } else {
            gcd(w as u64, g)
        }
    });
    let di = if di == 0 { 1 } else { di };
    let max = weights.iter().copied().max().unwrap_or(0) as i64;
    let mw = max - (di as i64 - 1);
    let mut ring = Vec::new();
    if mw <= 0 {
        return ring;
    }
    let mut cw = mw;
    while cw > 0 {
        for (i, &w) in weights.iter().enumerate() {
            if w as i64 >= cw {
                ring.push(i);
            }
        }
        cw -= di as i64;
    }
    ring
}

/// The length of [`wrr_ring`] for `weights`, without building it: each
/// dest appears `weight / gcd` times in one period.
pub fn wrr_period(weights: &[u32]) -> u64 {
    let g = weights.iter().filter(|&&w| w > 0).fold(0u64, |g, &w| {
        if g == 0 {
            w as u64
        } else {
            gcd(w as u64, g)
        }
    });
    if g == 0 {
        return 0;
    }
    weights.iter().map(|&w| w as u64 / g).sum()
}

/// Weights for a wrr ring of at most `max_period` entries: `weights`
/// itself when its period ([`wrr_period`]) fits, else the weights scaled
/// down in proportion (every positive weight stays at least 1). The
/// data plane holds one period, so a huge weight spread (say 65536 and 1)
/// is scheduled by the scaled weights: the shares stay within
/// `1/max_period` of the kernel's, the pick order differs.
pub fn wrr_fit(weights: &[u32], max_period: u64) -> Vec<u32> {
    if wrr_period(weights) <= max_period {
        return weights.to_vec();
    }
    let positive = weights.iter().filter(|&&w| w > 0).count() as u64;
    let budget = max_period.saturating_sub(positive) as u128;
    let sum: u128 = weights.iter().map(|&w| w as u128).sum();
    weights
        .iter()
        .map(|&w| {
            if w == 0 {
                0
            } else {
                // floor(w * budget / sum) <= budget fits u32 for any sane max_period.
                let s = (w as u128 * budget / sum).max(1);
                u32::try_from(s).unwrap_or(u32::MAX)
            }
        })
        .collect()
}

/// The ring for a cyclic scheduler (`rr` or `wrr`) given the dest weights in
/// list order.
pub fn ring_for(scheduler: &str, weights: &[u32]) -> Result<Vec<usize>, SchedError> {
    match scheduler {
        "rr" => Ok(rr_ring_weighted(weights)),
        "wrr" => Ok(wrr_ring(weights)),
        s if is_known(s) => Err(SchedError::Unsupported(s.to_string())),
        s => Err(SchedError::Unknown(s.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(ring: &[usize], n: usize, picks: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for pos in 0..picks {
            c[ring[pos % ring.len()]] += 1;
        }
        c
    }

    #[test]
    fn wrr_fit_keeps_short_periods_and_scales_long_ones() {
        assert_eq!(wrr_fit(&[3, 2, 0], 100), vec![3, 2, 0]);
        let fit = wrr_fit(&[65536, 1, 0, 2147483647], 131071);
        assert!(wrr_period(&fit) <= 131071, "{fit:?}");
        assert_eq!(fit[1], 1);
        assert_eq!(fit[2], 0);
        // Shares within 1/131071 (+ the minimum of 1) of the asked ones.
        let want = 65536.0 / (65536.0 + 1.0 + 2147483647.0);
        let got = fit[0] as f64 / fit.iter().map(|&w| w as f64).sum::<f64>();
        assert!((want - got).abs() < 2.0 / 131071.0, "{want} {got}");
    }

    #[test]
    fn wrr_period_is_the_ring_length() {
        for w in [
            &[3, 2, 1][..],
            &[4, 2],
            &[0, 9, 6, 3],
            &[100, 50, 25],
            &[0, 0],
            &[],
        ] {
            assert_eq!(wrr_period(w), wrr_ring(w).len() as u64, "{w:?}");
        }
        assert_eq!(wrr_period(&[65536, 1]), 65537);
    }

    #[test]
    fn names() {
        for s in [
            "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
            "twos",
        ] {
            assert!(is_known(s), "{s}");
        }
        assert!(!is_known("RR"));
        assert!(!is_known(""));
        assert!(!is_known("wlc "));
        assert!(is_known(DEFAULT_SCHEDULER));
    }

    #[test]
    fn rr() {
        assert_eq!(rr_ring(0), Vec::<usize>::new());
        assert_eq!(rr_ring(3), vec![0, 1, 2]);
        assert_eq!(rr_ring_weighted(&[1, 0, 5]), vec![0, 2]);
    }

    #[test]
    fn wrr_3_2_1() {
        // mw=3 di=1: cw=3 -> [0]; cw=2 -> [0,1]; cw=1 -> [0,1,2]
        let r = wrr_ring(&[3, 2, 1]);
        assert_eq!(r, vec![0, 0, 1, 0, 1, 2]);
        assert_eq!(counts(&r, 3, 30), vec![15, 10, 5]);
    }

    #[test]
    fn wrr_4_3_2() {
        // di=1 mw=4: cw=4 [0]; 3 [0,1]; 2 [0,1,2]; 1 [0,1,2]
        assert_eq!(wrr_ring(&[4, 3, 2]), vec![0, 0, 1, 0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn wrr_equal() {
        assert_eq!(wrr_ring(&[1, 1, 1]), vec![0, 1, 2]);
        // gcd 7 -> mw = 7 - 6 = 1: one pass
        assert_eq!(wrr_ring(&[7, 7]), vec![0, 1]);
    }

    #[test]
    fn wrr_with_zero() {
        // 5:0:1, di=1 mw=5: cw 5..2 -> [0]; cw 1 -> [0,2]
        assert_eq!(wrr_ring(&[5, 0, 1]), vec![0, 0, 0, 0, 0, 2]);
        assert_eq!(wrr_ring(&[0, 0]), Vec::<usize>::new());
        assert_eq!(wrr_ring(&[]), Vec::<usize>::new());
        assert_eq!(wrr_ring(&[0, 3]), vec![1]);
    }

    #[test]
    fn wrr_gcd() {
        // 100:50:25 -> di=25, mw=100-24=76: cw=76 [0]; 51 [0]; 26 [0,1]; 1 [0,1,2]
        assert_eq!(wrr_ring(&[100, 50, 25]), vec![0, 0, 0, 1, 0, 1, 2]);
        // 4:2 -> di=2, mw=3: cw=3 [0]; cw=1 [0,1]
        assert_eq!(wrr_ring(&[4, 2]), vec![0, 0, 1]);
        // 6:4 -> di=2 mw=5: 5 [0]; 3 [0,1]; 1 [0,1]
        let r = wrr_ring(&[6, 4]);
        assert_eq!(r, vec![0, 0, 1, 0, 1]);
        assert_eq!(counts(&r, 2, 50), vec![30, 20]);
    }

    #[test]
    fn wrr_large() {
        let r = wrr_ring(&[65535, 1]);
        assert_eq!(r.len(), 65536);
        assert_eq!(*r.last().unwrap(), 1);
        assert_eq!(r.iter().filter(|&&i| i == 0).count(), 65535);
    }

    /// A direct transcription of the kernel loop (one call per pick) to
    /// cross-check the pass-based construction on many weight sets.
    fn kernel_picks(weights: &[u32], picks: usize) -> Vec<usize> {
        let pos: Vec<u64> = weights
            .iter()
            .map(|&w| w as u64)
            .filter(|&w| w > 0)
            .collect();
        let di = pos
            .iter()
            .fold(0, |g, &w| if g == 0 { w } else { gcd(w, g) });
        let di = if di == 0 { 1 } else { di } as i64;
        let mw = weights.iter().copied().max().unwrap_or(0) as i64 - (di - 1);
        let mut cl: isize = -1; // head
        let mut cw = mw;
        let mut out = Vec::new();
        if mw <= 0 {
            return out;
        }
        for _ in 0..picks {
            loop {
                let mut found = None;
                let mut i = cl + 1;
                while (i as usize) < weights.len() {
                    if weights[i as usize] as i64 >= cw {
                        found = Some(i);
                        break;
                    }
                    i += 1;
                }
                if let Some(i) = found {
                    cl = i;
                    out.push(i as usize);
                    break;
                }
                cl = -1;
                cw -= di;
                if cw <= 0 {
                    cw = mw;
                }
            }
        }
        out
    }

    #[test]
    fn wrr_matches_kernel_loop() {
        let sets: &[&[u32]] = &[
            &[3, 2, 1],
            &[4, 3, 2],
            &[1, 1, 1],
            &[5, 0, 1],
            &[100, 50, 25],
            &[0, 9, 6, 3],
            &[10, 15, 0, 20],
            &[2, 7, 3, 5, 1],
        ];
        for w in sets {
            let ring = wrr_ring(w);
            let picks = ring.len() * 3;
            let expect = kernel_picks(w, picks);
            let got: Vec<usize> = (0..picks).map(|p| ring[p % ring.len()]).collect();
            assert_eq!(got, expect, "weights {w:?}");
        }
    }

    #[test]
    fn ring_for_names() {
        assert_eq!(ring_for("rr", &[1, 0, 1]).unwrap(), vec![0, 2]);
        assert_eq!(ring_for("wrr", &[2, 1]).unwrap(), vec![0, 0, 1]);
        assert_eq!(
            ring_for("wlc", &[1]),
            Err(SchedError::Unsupported("wlc".into()))
        );
        assert_eq!(ring_for("xx", &[1]), Err(SchedError::Unknown("xx".into())));
    }
}
