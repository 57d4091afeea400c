//! The IPVS rate estimator (`net/netfilter/ipvs/ip_vs_est.c`).
//!
//! Every 2 seconds the kernel samples the cumulative counters and updates an
//! exponentially weighted moving average with weight `W = 2^-2`:
//!
//! * connections and packets: `rate = delta << 9` (per second, scaled 2^10,
//!   the shift is 9 because the delta covers 2 s), stored scaled by 2^10;
//! * bytes: `rate = delta << 4` (per second, scaled 2^5);
//! * `avg += (rate - avg) >> 2`, in signed 64-bit arithmetic.
//!
//! Users see `(avg + 0x1FF) >> 10` for cps/pps and `(avg + 0xF) >> 5` for
//! bps (`ip_vs_read_estimator`). This type reproduces that bit for bit, so
//! `--rate` output matches what IPVS would print for the same traffic.

use crate::model::{Rates, Stats};

/// Seconds between two [`Estimator::tick`] calls, as in the kernel.
pub const TICK_SECS: u64 = 2;

/// Rate estimator state for one service or destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimator {
    last: Stats,
    // Averages, scaled like the kernel's `struct ip_vs_estimator` fields.
    cps: u64,
    inpps: u64,
    outpps: u64,
    inbps: u64,
    outbps: u64,
}

/// One EWMA step. The kernel computes `rate` in u64, then adds
/// `((s64)rate - (s64)avg) >> 2` (arithmetic shift) to the u64 average.
fn ewma(avg: u64, delta: u64, shift: u32) -> u64 {
    let rate = delta.wrapping_shl(shift);
    let diff = (rate as i64).wrapping_sub(avg as i64) >> 2;
    avg.wrapping_add(diff as u64)
}

impl Estimator {
    /// A fresh estimator whose baseline is `current` (so counters that
    /// existed before it started are not counted as a burst), as
    /// `ip_vs_zero_estimator` does.
    pub fn new(current: Stats) -> Self {
        Estimator {
            last: current,
            ..Default::default()
        }
    }

    /// Feeds the cumulative counters sampled now; call every [`TICK_SECS`].
    /// Counter wrap-around is handled like the kernel's unsigned subtraction.
    pub fn tick(&mut self, current: Stats) {
        let l = self.last;
        self.cps = ewma(self.cps, current.conns.wrapping_sub(l.conns), 9);
        self.inpps = ewma(self.inpps, current.inpkts.wrapping_sub(l.inpkts), 9);
        self.outpps = ewma(self.outpps, current.outpkts.wrapping_sub(l.outpkts), 9);
        self.inbps = ewma(self.inbps, current.inbytes.wrapping_sub(l.inbytes), 4);
        self.outbps = ewma(self.outbps, current.outbytes.wrapping_sub(l.outbytes), 4);
        self.last = current;
    }

    /// Restarts from `current` with zero rates (`ipvsadm -Z`).
    pub fn zero(&mut self, current: Stats) {
        *self = Estimator::new(current);
    }

    /// The rates as ipvsadm shows them (`ip_vs_read_estimator`).
    pub fn rates(&self) -> Rates {
        Rates {
            cps: self.cps.wrapping_add(0x1FF) >> 10,
            inpps: self.inpps.wrapping_add(0x1FF) >> 10,
            outpps: self.outpps.wrapping_add(0x1FF) >> 10,
            inbps: self.inbps.wrapping_add(0xF) >> 5,
            outbps: self.outbps.wrapping_add(0xF) >> 5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(c: u64, p: u64, b: u64) -> Stats {
        Stats {
            conns: c,
            inpkts: p,
            outpkts: p / 2,
            inbytes: b,
            outbytes: b * 2,
        }
    }

    #[test]
    fn starts_at_zero() {
        let e = Estimator::new(stats(1000, 1000, 1000));
        assert_eq!(e.rates(), Rates::default());
    }

    #[test]
    fn first_tick_matches_hand_computation() {
        let mut e = Estimator::new(Stats::default());
        // 200 conns in 2 s = 100/s. rate = 200<<9 = 102400; avg = 102400>>2 = 25600;
        // shown: (25600+511)>>10 = 25
        // bytes 20000 in 2 s: rate = 320000, avg = 80000; shown (80000+15)>>5 = 2500
        e.tick(stats(200, 200, 20000));
        let r = e.rates();
        assert_eq!(r.cps, 25);
        assert_eq!(r.inpps, 25);
        // outpkts 100: rate 51200, avg 12800 -> (12800+511)>>10 = 12
        assert_eq!(r.outpps, 12);
        assert_eq!(r.inbps, 2500);
        assert_eq!(r.outbps, 5000);
    }

    #[test]
    fn converges_to_steady_rate() {
        let mut e = Estimator::new(Stats::default());
        let mut s = Stats::default();
        for _ in 0..100 {
            s.conns += 200;
            s.inpkts += 2000;
            s.inbytes += 3_000_000;
            e.tick(s);
        }
        let r = e.rates();
        assert_eq!(r.cps, 100);
        assert_eq!(r.inpps, 1000);
        assert_eq!(r.inbps, 1_500_000);
        assert_eq!(r.outpps, 0);
    }

    #[test]
    fn decays_when_idle() {
        let mut e = Estimator::new(Stats::default());
        let s = stats(2000, 2000, 2000);
        e.tick(s);
        let before = e.rates().cps;
        e.tick(s);
        assert!(e.rates().cps < before);
        for _ in 0..100 {
            e.tick(s);
        }
        assert_eq!(e.rates(), Rates::default());
    }

    #[test]
    fn decay_is_signed_shift() {
        // avg 25600 then no traffic: diff = -25600 >> 2 = -6400 -> 19200
        let mut e = Estimator::new(Stats::default());
        e.tick(stats(200, 0, 0));
        e.tick(stats(200, 0, 0));
        assert_eq!(e.cps, 19200);
        assert_eq!(e.rates().cps, (19200 + 0x1FF) >> 10);
    }

    #[test]
    fn zero_resets() {
        let mut e = Estimator::new(Stats::default());
        e.tick(stats(200, 200, 200));
        e.zero(stats(200, 200, 200));
        assert_eq!(e.rates(), Rates::default());
        e.tick(stats(200, 200, 200));
        assert_eq!(e.rates(), Rates::default());
    }
}
