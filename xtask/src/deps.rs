//! Debian packages and Rust components the tasks need, installed when
//! missing.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::cargo;

/// Debian packages the benchmarks need on top of [`PACKAGES`]: the load
/// generators (wrk; trafgen from netsniff-ng), the contenders (HAProxy;
/// nginx-light with libnginx-mod-stream, which has `ngx_stream_module`;
/// nftables), `ping` and `timeout`.
pub(crate) const BENCH_PACKAGES: &[&str] = &[
    "wrk",
    "netsniff-ng",
    "haproxy",
    "nginx-light",
    "libnginx-mod-stream",
    "nftables",
    "iputils-ping",
    "coreutils",
];

/// Debian packages only the tests need on top of [`PACKAGES`]: Debian's
/// `chromium`, which the status page's end-to-end test
/// (`crates/xvs-testbed/tests/status_page_e2e.rs`) runs headless. Kept
/// out of [`PACKAGES`] so `cargo xtask demo` does not pull in a browser.
pub(crate) const TEST_PACKAGES: &[&str] = &["chromium"];

/// Debian packages the build and the tests need.
pub(crate) const PACKAGES: &[&str] = &[
    "clang",
    "llvm",
    "libbpf-dev",
    "libelf-dev",
    "zlib1g-dev",
    "pkg-config",
    "iproute2",
    "ethtool",
    "curl",
    // VRRP beside xvsd (tests/vrrp_e2e.rs). Its service does not start on
    // install: the unit needs a non-empty /etc/keepalived/keepalived.conf.
    "keepalived",
    // The man page tests (man/check.rs): groff renders, man -l reads.
    "groff-base",
    "man-db",
];

pub(crate) fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "install ok installed")
        .unwrap_or(false)
}

/// Install the missing Debian packages (apt-get update first, only when
/// something is missing) and the rustfmt/clippy components.
pub(crate) fn ensure_deps() -> Result<()> {
    install_missing(PACKAGES)?;
    ensure_rust_components()
}

/// Install whichever of `packages` is missing (apt-get update first, only
/// when something is missing).
pub(crate) fn install_missing(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        println!("system packages: all present ({})", packages.join(" "));
    } else {
        if !xvs_testbed::is_root() {
            bail!(
                "missing Debian packages: {}; run as root or `apt-get install {}`",
                missing.join(" "),
                missing.join(" ")
            );
        }
        println!("installing missing packages: {}", missing.join(" "));
        for argv in [
            vec!["apt-get", "update"],
            [
                &["apt-get", "install", "-y", "--no-install-recommends"][..],
                &missing[..],
            ]
            .concat(),
        ] {
            println!("$ {}", argv.join(" "));
            let status = Command::new(argv[0])
                .args(&argv[1..])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null())
                .status()
                .with_context(|| format!("running {}", argv[0]))?;
            if !status.success() {
                bail!("`{}` failed ({status})", argv.join(" "));
            }
        }
    }
    Ok(())
}

/// The benchmark packages. HAProxy's and nginx's packages start their
/// service in the root namespace on install; the benchmarks only run them
/// inside their own namespaces, so while installing, a `policy-rc.d` that
/// forbids service starts is put in place (only when there is none, and
/// removed again).
pub(crate) fn ensure_bench_deps() -> Result<()> {
    let missing = BENCH_PACKAGES.iter().any(|p| !installed(p));
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let ours = missing && xvs_testbed::is_root() && !policy.exists();
    if ours {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(
            policy,
            "#!/bin/sh\n# cargo xtask bench: no service starts while installing\nexit 101\n",
        )
        .context("writing /usr/sbin/policy-rc.d")?;
        std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755))?;
    }
    let r = install_missing(BENCH_PACKAGES);
    if ours {
        let _ = std::fs::remove_file(policy);
    }
    r
}

fn ensure_rust_components() -> Result<()> {
    for (component, probe) in [("rustfmt", "fmt"), ("clippy", "clippy")] {
        let ok = Command::new(cargo())
            .args([probe, "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            println!("$ rustup component add {component}");
            let status = Command::new("rustup")
                .args(["component", "add", component])
                .stdin(Stdio::null())
                .status()
                .with_context(|| format!("cargo {probe} is missing and rustup is not available"))?;
            if !status.success() {
                bail!("`rustup component add {component}` failed ({status})");
            }
        }
    }
    Ok(())
}
