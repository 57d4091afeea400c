//! What the data plane's test binaries (fixtures, sched, dp_fuzz) share.

use xvs_dataplane::{AttachMode, Options};

/// The program under test: `XVS_TEST_ATTACH=tc` runs the tests against
/// `xvs_tc` (`cargo xtask test` runs both), default `xvs_xdp`.
pub fn attach_mode() -> AttachMode {
    std::env::var("XVS_TEST_ATTACH")
        .map(|v| v.parse().expect("XVS_TEST_ATTACH: `xdp` or `tc`"))
        .unwrap_or_default()
}

/// A small unpinned table in the attach mode under test; a test that
/// needs more of one kind says so with `..options()`.
pub fn options() -> Options {
    Options {
        pin_path: None,
        conn_capacity: 1024,
        max_services: 16,
        max_dests: 64,
        ring_capacity: 1 << 14,
        persist_capacity: 256,
        locality_capacity: 256,
        attach_mode: attach_mode(),
    }
}
