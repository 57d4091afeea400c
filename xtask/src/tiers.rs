//! `cargo xtask test`: every tier, in order, stopping at the first failure.

use anyhow::{Context, Result};

use crate::deps::{ensure_bench_deps, ensure_deps, install_missing, TEST_PACKAGES};
use crate::{bench, fuzz, header, matrix, package, require_root, run_cargo_env, vm};

/// Removes xvs namespaces (and what is in them) left by runs that died.
pub(crate) fn cleanup_stale() -> Result<()> {
    let removed = xvs_testbed::cleanup_stale("xvs").context("removing stale xvs namespaces")?;
    if removed.is_empty() {
        println!("no stale xvs namespaces");
    } else {
        println!("removed stale: {}", removed.join(" "));
    }
    Ok(())
}

/// `cargo xtask test`.
pub(crate) fn test() -> Result<()> {
    require_root("test")?;
    header("dependencies");
    ensure_deps()?;
    ensure_bench_deps()?;
    install_missing(TEST_PACKAGES)?;
    header("cleanup of stale xvs namespaces (before)");
    cleanup_stale()?;

    type Step<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)]);
    let steps: &[Step] = &[
        ("format", &["fmt", "--all", "--", "--check"], &[]),
        (
            "lint",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
            &[],
        ),
        ("build", &["build", "--workspace", "--bins"], &[]),
        (
            "tier 1: unit tests (no root)",
            &["test", "--workspace"],
            &[],
        ),
        // Every `#[ignore]`d root test of the workspace, the status page's
        // headless-Chromium one (`status_page_e2e`, chromium from
        // `TEST_PACKAGES`) included.
        (
            "tiers 2+3: root tests (BPF fixtures, netns end-to-end)",
            &["test", "--workspace", "--", "--ignored", "--test-threads=1"],
            &[],
        ),
        // Both programs are tested end to end: the fixtures hold for the
        // tc build too, and the veth testbeds (where xvsd's auto mode picks
        // tc) run NAT, DR, TUN and the schedulers again with XDP.
        (
            "tier 2, other attach mode: BPF fixtures against xvs_tc",
            &[
                "test",
                "-p",
                "xvs-dataplane",
                "--",
                "--ignored",
                "--test-threads=1",
            ],
            &[("XVS_TEST_ATTACH", "tc")],
        ),
        // Every optional kernel feature off, as on a kernel without any:
        // the fallbacks keep the same behaviour (docs/design.md).
        (
            "tier 2, every fallback: BPF fixtures with XVS_FEATURES_OFF=all",
            &[
                "test",
                "-p",
                "xvs-dataplane",
                "--",
                "--ignored",
                "--test-threads=1",
            ],
            &[("XVS_FEATURES_OFF", "all")],
        ),
        (
            "tier 3, every fallback: NAT, DR/TUN and SCTP end-to-end with XVS_FEATURES_OFF=all",
            &[
                "test",
                "-p",
                "xvs-testbed",
                "--test",
                "nat_e2e",
                "--test",
                "dr_tun_e2e",
                "--test",
                "sctp_e2e",
                "--",
                "--ignored",
                "--test-threads=1",
            ],
            &[("XVS_FEATURES_OFF", "all")],
        ),
        (
            "tier 3, other attach mode: netns end-to-end with xvsd --attach xdp",
            &[
                "test",
                "-p",
                "xvs-testbed",
                "--test",
                "nat_e2e",
                "--test",
                "dr_tun_e2e",
                "--test",
                "sched_e2e",
                "--test",
                "conn_reuse_e2e",
                "--test",
                "hitless_e2e",
                "--test",
                "sync_e2e",
                "--test",
                "selftest_e2e",
                "--test",
                "sctp_e2e",
                "--test",
                "fwmark_e2e",
                "--",
                "--ignored",
                "--test-threads=1",
            ],
            &[("XVS_TEST_ATTACH", "xdp")],
        ),
    ];
    let total = steps.len() + 4;
    let mut result = Ok(());
    for (i, (title, args, env)) in steps.iter().enumerate() {
        header(&format!("[{}/{total}] {title}", i + 1));
        if let Err(e) = run_cargo_env(args, env) {
            result = Err(e);
            break;
        }
    }
    if result.is_ok() {
        // The debug binaries of the build step: the packages' contents,
        // fields, scripts and units are under test, not the optimizer (a
        // release build would add minutes). The boot check takes about 10 s
        // (a minute more on first use, for debootstrap).
        header(&format!(
            "[{}/{total}] Debian packages (cargo xtask package --debug --check --check-boot)",
            total - 3
        ));
        result = package::build("debug").and_then(|debs| {
            package::check(&debs)?;
            package::check_boot(&debs)
        });
    }
    if result.is_ok() {
        // No timing assertions: only that the harness runs every contender
        // and metric and produces numbers.
        header(&format!(
            "[{}/{total}] tier 5: benchmark harness, smoke mode (cargo xtask bench --smoke)",
            total - 2
        ));
        result = bench::run_bench(&bench::BenchArgs::smoke(), false);
    }
    if result.is_ok() {
        header(&format!(
            "[{}/{total}] fuzzers, smoke ({} s each; cargo xtask fuzz)",
            total - 1,
            fuzz::SMOKE_SECS
        ));
        result = fuzz::run(fuzz::TARGETS, fuzz::SMOKE_SECS);
    }
    if result.is_ok() {
        header(&format!(
            "[{total}/{total}] tier 4: the kernel matrix (Debian 5.10, 6.1, 6.12 in a VM)"
        ));
        result = matrix::run(&vm::Kernel::ALL);
    }
    header("cleanup of stale xvs namespaces (after)");
    let cleaned = cleanup_stale();
    result?;
    cleaned?;
    header("all tiers passed");
    Ok(())
}
