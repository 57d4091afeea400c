//! When the next expiry scan is due: every call for a small table, spread
//! out for a big one.

use std::sync::atomic::{AtomicU64, Ordering};

/// A table of up to this many entries is scanned for expiry every second;
/// a bigger one every ⌈entries / this⌉ seconds, at most every
/// [`SCAN_MAX_INTERVAL_S`]: each scan touches every entry (≈ 0.3–0.5 µs
/// each, mostly cache misses), so a 1 M-entry table scanned every second
/// kept half a CPU busy. Connections then outlive their timeout by up to
/// the interval, a few seconds on timeouts of minutes.
pub const SCAN_ENTRIES_PER_SEC: u64 = 262_144;
/// The longest interval between two expiry scans of a big table.
pub const SCAN_MAX_INTERVAL_S: u64 = 8;
/// Orphaned reply entries (left by a half-finished delete: rare) cost one
/// more lookup per reply entry to find; a big table looks for them in
/// every 16th scan only.
const ORPHAN_CHECK_EVERY: u64 = 16;

/// When the next expiry scan is due, and what the last one saw.
#[derive(Debug, Default)]
pub(crate) struct ScanClock {
    next_due_ns: AtomicU64,
    /// Entries the last scan saw.
    pub(crate) entries: AtomicU64,
    passes: AtomicU64,
}

impl ScanClock {
    /// Whether a scan is due at `now` and, if so, whether it looks for
    /// orphans.
    pub(crate) fn start(&self, now: u64) -> Option<bool> {
        if now < self.next_due_ns.load(Ordering::Relaxed) {
            return None;
        }
        let big = self.entries.load(Ordering::Relaxed) > SCAN_ENTRIES_PER_SEC;
        // (a plain remainder: `is_multiple_of` is newer than the MSRV)
        let rem = self.passes.fetch_add(1, Ordering::Relaxed) % ORPHAN_CHECK_EVERY;
        Some(!big || rem == 0)
    }

    /// Records a scan that started at `now` and saw `visited` entries.
    pub(crate) fn done(&self, now: u64, visited: u64) {
        self.entries.store(visited, Ordering::Relaxed);
        let every = visited
            .div_ceil(SCAN_ENTRIES_PER_SEC)
            .clamp(1, SCAN_MAX_INTERVAL_S);
        // Half a second early, so the once-a-second caller's tick that is
        // due runs it; a small table is scanned at every call.
        let next = (every > 1).then(|| now + every * 1_000_000_000 - 500_000_000);
        self.next_due_ns.store(next.unwrap_or(0), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_table_is_scanned_at_every_call_a_big_one_spread_out() {
        let s = 1_000_000_000;
        let c = ScanClock::default();
        assert_eq!(c.start(10 * s), Some(true));
        c.done(10 * s, 1000);
        assert_eq!(
            c.start(10 * s + 1),
            Some(true),
            "small: every call, orphans too"
        );
        c.done(10 * s, 1_000_000);
        // 1 M entries: every 4 s (due half a second early).
        assert_eq!(c.start(11 * s), None);
        assert_eq!(c.start(13 * s), None);
        assert!(c.start(13 * s + s / 2).is_some());
        c.done(14 * s, 100_000_000);
        assert_eq!(c.start(21 * s), None, "at most every 8 s");
        assert!(c.start(22 * s).is_some());
        // Orphans in one big scan of 16.
        let looks = (0..32).filter(|_| c.start(100 * s) == Some(true)).count();
        assert_eq!(looks, 2);
    }
}
