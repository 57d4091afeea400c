//! `cargo xtask matrix`: the tests that depend on the kernel, run on each
//! of Debian's stock kernels in a VM (`cargo xtask vm`): the BPF fixtures
//! with both programs, the scheduler differential, the IPVS selftest
//! cases, NAT, DR/TUN and SCTP subsets of the end-to-end suites, the real
//! server's kernel decapsulation and the demo in its three modes; on the
//! newest kernel also the differential tests against IPVS, ipvsadm and
//! keepalived (`ORACLES`). Everything is built on the host first; the guest
//! runs the binaries from the host's tree.
//!
//! Under TCG the e2e suites run several times slower than on the host, so
//! the matrix takes a subset of them (listed in [`E2E_SUBSET`]); the host
//! tier runs them all.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::vm::{run_in_vm, Kernel, VmOpts};

/// Test binaries run whole: `crate/test target`.
const WHOLE: [&str; 7] = [
    "xvs-dataplane/fixtures",
    "xvs-dataplane/sctp_fixtures",
    "xvs-dataplane/fwmark_fixtures",
    "xvs-dataplane/sip_fixtures",
    "xvs-dataplane/sched",
    "xvs-testbed/selftest_e2e",
    // Neighbour discovery's answer for an address on lo is the kernel's.
    "xvs-realserver/netns_ipv6",
];

/// The differential tests against the kernel's IPVS, ipvsadm and
/// keepalived: on the newest kernel only (they compare behaviour, which
/// the kernels share; they are the slowest part under emulation).
const ORACLES: [&str; 4] = [
    "xvs-testbed/oracle_cli",
    "xvs-testbed/oracle_traffic",
    "xvs-testbed/oracle_keepalived",
    "xvs-testbed/oracle_sync",
];

/// The tests run in part: (`crate/test target`, test-name filters).
const E2E_SUBSET: [(&str, &[&str]); 5] = [
    (
        "xvs-testbed/nat_e2e",
        &[
            "rr_splits_thirty_requests_evenly",
            "udp_echo_through_the_vip",
            "save_clear_restore_round_trips",
        ],
    ),
    // Replacing and leaving the program attached is the kernel's part.
    (
        "xvs-testbed/hitless_e2e",
        &["nat_connections_survive_xvsd_restarts_and_kills"],
    ),
    (
        "xvs-testbed/dr_tun_e2e",
        &[
            "dr_splits_thirty_requests_and_replies_bypass_the_director",
            "tun_ipip_splits_thirty_requests_and_replies_bypass_the_director",
            "tun_gue_splits_thirty_requests_and_replies_bypass_the_director",
        ],
    ),
    // The host has no SCTP to run these with; Debian's kernels do. Each
    // test names the whole test (filters match substrings).
    (
        "xvs-testbed/sctp_e2e",
        &[
            "sctp_testsrv_talks_without_xvs",
            "sctp_nat_port_mapped_splits_thirty_associations_evenly",
            "sctp_nat_same_port_splits_twelve_associations_evenly",
            "sctp_dr_splits_thirty_associations_evenly",
            "sctp_tun_ipip_splits_thirty_associations_evenly",
        ],
    ),
    // xvs-realserver's kernel path: ipip and fou exist here.
    (
        "xvs-realserver/netns",
        &["tun_with_the_kernels_ipip_and_fou"],
    ),
];

/// `cargo xtask matrix [--kernel K]...`: every kernel when none is named.
pub(crate) fn cmd(kernels: &[Kernel]) -> Result<()> {
    if kernels.is_empty() {
        return run(&Kernel::ALL);
    }
    run(kernels)
}

/// Builds the binaries and runs the matrix on `kernels`; fails when any
/// kernel's run fails (after running all of them).
pub(crate) fn run(kernels: &[Kernel]) -> Result<()> {
    crate::run_cargo(&["build", "--workspace", "--bins"])?;
    let tests = snapshot(test_binaries()?)?;
    let mut failed = Vec::new();
    for &k in kernels {
        crate::header(&format!("kernel matrix: Debian's {k} kernel (VM)"));
        let t = Instant::now();
        let opts = VmOpts {
            kernel: k,
            ..VmOpts::default()
        };
        let script = guest_script(&tests, k == Kernel::V6_12)?;
        let rc = run_in_vm(&opts, &["sh".into(), "-c".into(), script])?;
        println!(
            "kernel {k}: {} in {:.0} s",
            if rc == 0 { "passed" } else { "FAILED" },
            t.elapsed().as_secs_f64()
        );
        if rc != 0 {
            failed.push(k.to_string());
        }
    }
    if !failed.is_empty() {
        bail!("the kernel matrix failed on {}", failed.join(", "));
    }
    Ok(())
}

/// The guest's script: every step runs, failures are collected, the
/// exit status says whether any failed.
fn guest_script(tests: &BTreeMap<String, String>, oracles: bool) -> Result<String> {
    let bin = |t: &str| {
        tests
            .get(t)
            .cloned()
            .with_context(|| format!("test binary {t} not built"))
    };
    // The snapshot's directory: the tools sit next to the test binaries.
    let debug = std::path::Path::new(&bin("xvs-dataplane/fixtures")?)
        .parent()
        .context("the snapshot's directory")?
        .to_string_lossy()
        .into_owned();
    let mut s = format!(
        "cd {root} || exit 125\nfailed=''\n\
         step() {{ name=$1; shift; echo \"=== $name\"; t0=$(date +%s); \"$@\" || failed=\"$failed $name\"; \
         echo \"=== $name: $(($(date +%s) - t0)) s\"; }}\n\
         step features {debug}/xvsd --features\n",
        root = crate::workspace_root().display()
    );
    s += &format!("export XVS_BIN_DIR={debug}\n");
    let libtest = "--ignored --test-threads=1";
    for t in WHOLE {
        let b = bin(t)?;
        s += &format!("step {t} {b} {libtest}\n");
        if t.ends_with("fixtures") {
            s += &format!("step {t}-tc env XVS_TEST_ATTACH=tc {b} {libtest}\n");
        }
    }
    for (t, filters) in E2E_SUBSET {
        s += &format!("step {t} {} {libtest} {}\n", bin(t)?, filters.join(" "));
    }
    if oracles {
        for t in ORACLES {
            s += &format!("step {t} {} {libtest} --nocapture\n", bin(t)?);
        }
    }
    for mode in ["nat", "dr", "tun"] {
        s += &format!("step demo-{mode} {debug}/xtask demo --no-build --mode {mode}\n");
    }
    s += "if [ -n \"$failed\" ]; then echo \"=== failed:$failed\"; exit 1; fi\necho '=== all passed'\n";
    Ok(s)
}

/// Daemons and tools the tests and the demo run (from the test
/// binaries' directory).
const BINS: [&str; 5] = ["xvsd", "xvsadm", "xvs-realserver", "xvs-testsrv", "xtask"];

/// Copies the binaries the guest runs into `<target>/matrix/`: the guest
/// reads the host's files over 9p, and a binary rebuilt while it runs
/// would change under it. Returns the test executables' new paths (the
/// tools sit next to them, `XVS_BIN_DIR` is set to that directory).
fn snapshot(tests: BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    let first = tests.values().next().context("no test binaries")?;
    let debug = std::path::Path::new(first)
        .parent()
        .and_then(|d| d.parent())
        .context("the test binaries' directory")?;
    let dir = debug
        .parent()
        .context("the target directory")?
        .join("matrix");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for b in BINS {
        std::fs::copy(debug.join(b), dir.join(b))
            .with_context(|| format!("copying {b} into {}", dir.display()))?;
    }
    let mut out = BTreeMap::new();
    for (name, exe) in tests {
        let to = dir.join(format!("test-{}", name.replace('/', "-")));
        std::fs::copy(&exe, &to).with_context(|| format!("copying {exe}"))?;
        out.insert(name, to.to_string_lossy().into_owned());
    }
    Ok(out)
}

/// Test target name → executable, from `cargo test --no-run`'s messages.
fn test_binaries() -> Result<BTreeMap<String, String>> {
    let out = Command::new(crate::cargo())
        .args([
            "test",
            "--no-run",
            "--message-format=json",
            "-p",
            "xvs-dataplane",
            "-p",
            "xvs-testbed",
            "-p",
            "xvs-realserver",
        ])
        .current_dir(crate::workspace_root())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the test binaries failed ({})", out.status);
    }
    let mut map = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(name), Some(exe), Some(pkg)) = (
            v["target"]["name"].as_str(),
            v["executable"].as_str(),
            v["package_id"].as_str(),
        ) else {
            continue;
        };
        if v["target"]["kind"][0] == "test" {
            map.insert(format!("{}/{name}", package_name(pkg)), exe.to_string());
        }
    }
    Ok(map)
}

/// The crate name in a cargo package id (`path+file:///.../xvs-testbed#0.1.0`
/// or `xvs-testbed 0.1.0 (path+...)`).
fn package_name(id: &str) -> &str {
    if let Some((head, _)) = id.split_once(' ') {
        return head;
    }
    let path = id.split('#').next().unwrap_or(id);
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::package_name;

    #[test]
    fn package_ids_of_both_cargo_formats_give_the_crate() {
        assert_eq!(
            package_name("path+file:///work/main/crates/xvs-testbed#0.1.0"),
            "xvs-testbed"
        );
        assert_eq!(
            package_name("xvs-testbed 0.1.0 (path+file:///work/main/crates/xvs-testbed)"),
            "xvs-testbed"
        );
    }
}
