//! The program's clock, read from user space.

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of the program's
/// timestamps (`bpf_ktime_get_coarse_ns` where the kernel has it, feature
/// `coarse_clock`, else `bpf_ktime_get_ns`: the same clock, the coarse
/// reading up to a tick behind).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
