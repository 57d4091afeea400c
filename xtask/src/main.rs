//! `cargo xtask demo | test | bench`.
//!
//! * `demo [--mode nat|dr|tun] [--tun-type ipip|gue]`: installs missing
//!   Debian packages, builds the binaries, brings up the NAT testbed (or,
//!   for `dr`/`tun`, the direct-routing one and prepares its real servers
//!   with `xvs-realserver setup`), runs xvsd in the director, adds a service
//!   with three real servers via `xvsadm` (`-m`, `-g` or `-i`), sends 30
//!   HTTP requests from the client and shows who answered and xvsd's
//!   counters, then tears everything down.
//! * `test`: fmt, clippy, build, unit tests, then the root tiers (BPF
//!   fixtures and netns end-to-end tests, `--ignored`).
//! * `bench [--smoke] [--rounds N] [--duration S] [--no-build] [...]`:
//!   installs the load generators and contenders (wrk, trafgen, HAProxy,
//!   nginx with the stream module, nftables), builds (release; `--smoke`:
//!   debug), and runs `xvs-bench` (crates/xvs-bench), which measures xvs
//!   against its peers on the netns testbed and writes `docs/benchmarks.md`
//!   (`--smoke`: `<target>/xvs-bench-smoke.md`). See docs/benchmarks.md.

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xvs_testbed::{interrupted, Node, Proc, Testbed, Topology, VIP};

mod fuzz;
mod matrix;
mod vm;

/// Debian packages the benchmarks need on top of [`PACKAGES`]: the load
/// generators (wrk; trafgen from netsniff-ng), the contenders (HAProxy;
/// nginx-light with libnginx-mod-stream, which has `ngx_stream_module`;
/// nftables), `ping` and `timeout`.
const BENCH_PACKAGES: &[&str] = &[
    "wrk",
    "netsniff-ng",
    "haproxy",
    "nginx-light",
    "libnginx-mod-stream",
    "nftables",
    "iputils-ping",
    "coreutils",
];

/// Debian packages the build and the tests need.
const PACKAGES: &[&str] = &[
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
];

const USAGE: &str = "\
usage: cargo xtask <command>
  demo [--mode nat|dr|tun] [--tun-type ipip|gue] [--no-build]
                      build, bring up a netns testbed, run xvsd + xvsadm, send traffic
                      (nat: -m; dr: -g; tun: -i, IPIP or GUE on port 6080; dr/tun prepare
                      the real servers with xvs-realserver; --no-build: use the binaries
                      already built; XVS_BIN_DIR overrides where)
  test                fmt, clippy, build, unit tests, root tests (BPF fixtures, netns e2e),
                      the benchmark harness in --smoke mode, then the kernel matrix
  matrix [--kernel 5.10|6.1|6.12]...
                      the kernel-dependent tests (fixtures in both attach modes, scheduler
                      differential, IPVS selftest cases, NAT/DR/TUN e2e subset, demo) on
                      Debian's stock kernels in a VM (all three without --kernel)
  bench [--smoke] [--rounds N] [--duration S] [--no-build] [xvs-bench options]
                      xvs against direct, kernel forwarding, nftables NAT, the kernel's
                      IPVS (NAT, DR, TUN; skipped where the kernel has no ip_vs), HAProxy,
                      nginx stream and the XDP limit on the netns testbed; data-plane cost;
                      scale of state. Writes docs/benchmarks.md (--smoke: 1 s per
                      workload, one round, report in <target>/xvs-bench-smoke.md).
                      Release build (--smoke: debug). See docs/benchmarks.md.
  bench --vm [--kernel 5.10|6.1|6.12] [--vm-timeout SECS] [xvs-bench options]
                      the same inside Debian's stock kernel (default 6.12) under qemu
                      (cargo xtask vm; TCG here, so only ratios within the run count):
                      by default ipvs-nat xvs-nat nft-nat ipvs-dr xvs-dr ipvs-tun xvs-tun
                      direct, 3 interleaved rounds of 3 s, no data-plane cost or scale
                      (--only, --rounds, --duration override); binaries built on the host;
                      report in <target>/xvs-bench-vm.md (--out: a host path), never
                      docs/benchmarks.md. --vm-timeout: the whole VM run (default 3600)
  fuzz [--smoke] [--time SECS] [TARGET...]
                      the coverage-guided fuzzers of fuzz/ (libFuzzer): ipvsadm grammar and -R
                      input, keepalived.conf with includes, the JSON API, sync datagrams, notify
                      FIFO lines; each target SECS seconds (default 60, --smoke 10) from its seeds
                      in fuzz/corpus; a failing input is kept in target/fuzz/artifacts
  vm [--kernel 5.10|6.1|6.12] [--mem MiB] [--smp N] [--timeout SECS] [--accel auto|kvm|tcg]
     [-v] -- COMMAND [ARGS...]
                      boot Debian's stock kernel of that release (default 6.12) under qemu
                      and run COMMAND as root inside, with the host's root filesystem
                      (read-only, tmpfs overlay); exits with COMMAND's status
  vm --fetch [--kernel K ...]
                      only download and unpack the kernels (all three without --kernel)
                      into /var/cache/xvs-vm (`cargo xtask vm --help` for more)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(&args[1..]),
        Some("test") if args.len() == 1 => test(),
        Some("bench") => bench(&args[1..]),
        Some("vm") => vm::cmd(&args[1..]).map(|code| std::process::exit(code)),
        Some("matrix") => matrix::cmd(&args[1..]),
        Some("fuzz") => fuzz::cmd(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

// ------------------------------------------------------------------ helpers

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

fn header(title: &str) {
    println!("\n==================== {title} ====================");
}

/// Run `cargo <args>` in the workspace root with inherited stdio.
fn run_cargo(args: &[&str]) -> Result<()> {
    run_cargo_env(args, &[])
}

/// [`run_cargo`] with extra environment variables.
fn run_cargo_env(args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    let shown: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    println!("$ {}cargo {}", shown.concat(), args.join(" "));
    let status = Command::new(cargo())
        .args(args)
        .envs(env.iter().copied())
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn require_root(what: &str) -> Result<()> {
    if !xvs_testbed::is_root() {
        bail!(
            "`cargo xtask {what}` must run as root (it installs packages, creates network \
             namespaces, mounts bpffs and attaches XDP programs); try `sudo -E cargo xtask {what}`"
        );
    }
    Ok(())
}

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
fn ensure_deps() -> Result<()> {
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
fn ensure_bench_deps() -> Result<()> {
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

fn cleanup_stale() -> Result<()> {
    let removed = xvs_testbed::cleanup_stale("xvs").context("removing stale xvs namespaces")?;
    if removed.is_empty() {
        println!("no stale xvs namespaces");
    } else {
        println!("removed stale: {}", removed.join(" "));
    }
    Ok(())
}

// --------------------------------------------------------------------- test

fn test() -> Result<()> {
    require_root("test")?;
    header("dependencies");
    ensure_deps()?;
    ensure_bench_deps()?;
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
            "tier 3, every fallback: NAT and DR/TUN end-to-end with XVS_FEATURES_OFF=all",
            &[
                "test",
                "-p",
                "xvs-testbed",
                "--test",
                "nat_e2e",
                "--test",
                "dr_tun_e2e",
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
                "--",
                "--ignored",
                "--test-threads=1",
            ],
            &[("XVS_TEST_ATTACH", "xdp")],
        ),
    ];
    let total = steps.len() + 3;
    let mut result = Ok(());
    for (i, (title, args, env)) in steps.iter().enumerate() {
        header(&format!("[{}/{total}] {title}", i + 1));
        if let Err(e) = run_cargo_env(args, env) {
            result = Err(e);
            break;
        }
    }
    if result.is_ok() {
        // No timing assertions: only that the harness runs every contender
        // and metric and produces numbers.
        header(&format!(
            "[{}/{total}] tier 5: benchmark harness, smoke mode (cargo xtask bench --smoke)",
            total - 2
        ));
        result = run_bench(&["--smoke".to_string()], false);
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

// -------------------------------------------------------------------- bench

fn bench(args: &[String]) -> Result<()> {
    require_root("bench")?;
    let mut build = true;
    let mut pass = Vec::new();
    for a in args {
        match a.as_str() {
            "--no-build" => build = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => pass.push(a.clone()),
        }
    }
    header("dependencies");
    ensure_deps()?;
    ensure_bench_deps()?;
    // The IPVS contenders' command line (on the host; a VM runs the host's).
    install_missing(&["ipvsadm"])?;
    run_bench(&pass, build)
}

/// Build (unless `build` is false) and run `xvs-bench` with `args`: release
/// binaries for a full run, debug ones for `--smoke`. Without `--out`, a
/// full run writes docs/benchmarks.md and a smoke run
/// `<target>/xvs-bench-smoke.md`.
///
/// With `--vm [--kernel K] [--vm-timeout S]` in `args`, `xvs-bench` runs
/// inside Debian's kernel K (default 6.12) under `cargo xtask vm`, on the
/// binaries built here, by default with the IPVS, xvs and nftables
/// contenders only (`--only`, `--rounds`, `--duration` override), and the
/// report goes to `<target>/xvs-bench-vm.md` (or `--out FILE`, a host
/// path), never to docs/benchmarks.md. The guest's writes vanish with it
/// (its root is the host's, read-only under a tmpfs overlay), so the guest
/// prints the report between two marker lines and this side, which runs
/// the VM as a child `xtask vm` with its stdout piped, writes it.
fn run_bench(args: &[String], build: bool) -> Result<()> {
    /// The VM run's defaults: ≤ 15 min under TCG (IPVS, xvs and nftables
    /// on the three testbeds, one baseline; 3 interleaved rounds of 3 s).
    const VM_ONLY: &str = "ipvs-nat,xvs-nat,nft-nat,ipvs-dr,xvs-dr,ipvs-tun,xvs-tun,direct";
    const VM_BEGIN: &str = "@@ xvs-bench-vm report begin @@";
    const VM_END: &str = "@@ xvs-bench-vm report end @@";

    // Split off the VM's options; everything else is xvs-bench's.
    let mut vm_kernel: Option<vm::Kernel> = None;
    let mut in_vm = false;
    let mut vm_timeout: u64 = 3600;
    let mut user_out: Option<String> = None;
    let mut rest: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (k, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = || -> Result<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .with_context(|| format!("{k} needs a value")),
            }
        };
        match k {
            "--vm" => in_vm = true,
            "--kernel" => vm_kernel = Some(vm::Kernel::parse(&value()?)?),
            "--vm-timeout" => {
                vm_timeout = value()?.parse().context("--vm-timeout: seconds")?;
            }
            "--out" => user_out = Some(value()?),
            _ => rest.push(a.clone()),
        }
    }
    if !in_vm && (vm_kernel.is_some() || args.iter().any(|a| a.starts_with("--vm-timeout"))) {
        bail!("--kernel and --vm-timeout go with --vm\n{USAGE}");
    }
    let smoke = rest.iter().any(|a| a == "--smoke");
    let exe = std::env::current_exe().context("locating xtask")?;
    let debug_dir = exe.parent().context("xtask's directory")?.to_path_buf();
    let target = debug_dir
        .parent()
        .context("target directory")?
        .to_path_buf();
    let bin_dir = if smoke {
        debug_dir
    } else {
        target.join("release")
    };
    if build {
        header("build");
        let mut cargo_args = vec!["build", "--bins"];
        for p in [
            "xvsd",
            "xvsadm",
            "xvs-realserver",
            "xvs-testbed",
            "xvs-bench",
        ] {
            cargo_args.extend(["-p", p]);
        }
        if !smoke {
            cargo_args.push("--release");
        }
        run_cargo(&cargo_args)?;
    }
    let me = bin_dir.join("xvs-bench");
    if !me.is_file() {
        bail!(
            "{} is missing; build it (cargo build -p xvs-bench{})",
            me.display(),
            if smoke { "" } else { " --release" }
        );
    }
    let load_now = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_string()
    };

    if !in_vm {
        let mut argv = rest;
        let out = match user_out {
            Some(o) => PathBuf::from(o),
            None if smoke => target.join("xvs-bench-smoke.md"),
            None => workspace_root().join("docs").join("benchmarks.md"),
        };
        argv.push("--out".into());
        argv.push(out.to_string_lossy().into_owned());
        header(&format!("xvs-bench {}", argv.join(" ")));
        println!("load average now: {}", load_now());
        let status = Command::new(&me)
            .args(&argv)
            .env("XVS_BIN_DIR", &bin_dir)
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("running {}", me.display()))?;
        if !status.success() {
            bail!("xvs-bench failed ({status})");
        }
        return Ok(());
    }

    // ---- in a VM
    let kernel = vm_kernel.unwrap_or(vm::Kernel::V6_12);
    let has = |opt: &str| {
        rest.iter()
            .any(|a| a == opt || a.starts_with(&format!("{opt}=")))
    };
    let mut argv = rest.clone();
    if !has("--only") {
        argv.extend(["--only".into(), VM_ONLY.into()]);
    }
    if !smoke && !has("--rounds") {
        argv.extend(["--rounds".into(), "3".into()]);
    }
    if !smoke && !has("--duration") {
        argv.extend(["--duration".into(), "3".into()]);
    }
    for o in ["--no-dp-cost", "--no-scale", "--in-vm"] {
        if !has(o) {
            argv.push(o.into());
        }
    }
    // The guest's /tmp is its own tmpfs: the report is written there and
    // printed between the markers.
    let guest_out = "/tmp/xvs-bench-vm.md";
    argv.extend(["--out".into(), guest_out.into()]);
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let script = format!(
        "XVS_BIN_DIR={bin} {me} {args}\nrc=$?\n\
         if [ -f {out} ]; then echo {b}; cat {out}; echo {e}; fi\nexit $rc\n",
        bin = quote(&bin_dir.to_string_lossy()),
        me = quote(&me.to_string_lossy()),
        args = argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
        out = guest_out,
        b = quote(VM_BEGIN),
        e = quote(VM_END),
    );
    let host_out = user_out
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("xvs-bench-vm.md"));
    header(&format!(
        "xvs-bench {} — in a VM, Debian's {kernel} kernel (cargo xtask vm)",
        argv.join(" ")
    ));
    println!("load average now (host): {}", load_now());
    let t0 = Instant::now();
    let mut child = Command::new(&exe)
        .args(["vm", "--kernel", kernel.version()])
        .args(["--timeout", &vm_timeout.to_string()])
        .args(["--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting `xtask vm`")?;
    let mut report = String::new();
    let (mut inside, mut complete) = (false, false);
    let stdout = child.stdout.take().context("xtask vm's stdout")?;
    let mut reader = std::io::BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = std::io::BufRead::read_until(&mut reader, b'\n', &mut buf)
            .context("reading xtask vm's output")?;
        if n == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches('\n');
        if line == VM_BEGIN {
            inside = true;
        } else if line == VM_END {
            inside = false;
            complete = true;
        } else if inside {
            // xvs-bench's own result markers: for docs/benchmarks.md only.
            if !line.starts_with("<!-- xvs-bench results") {
                report.push_str(line);
                report.push('\n');
            }
        } else {
            println!("{line}");
        }
    }
    let status = child.wait().context("waiting for xtask vm")?;
    println!(
        "VM run: {:.0} s (boot included); load average now (host): {}",
        t0.elapsed().as_secs_f64(),
        load_now()
    );
    if complete {
        std::fs::write(&host_out, report.trim_start())
            .with_context(|| format!("writing {}", host_out.display()))?;
        println!("report written to {}", host_out.display());
    } else {
        println!(
            "no report came back from the VM; {} unchanged",
            host_out.display()
        );
    }
    if !status.success() {
        bail!("xvs-bench in the VM failed ({status})");
    }
    Ok(())
}

// --------------------------------------------------------------------- demo

/// The forwarding method the demo shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Nat,
    Dr,
    Ipip,
    Gue,
}

/// GUE destination port of `demo --mode tun --tun-type gue`.
const GUE_PORT: &str = "6080";

impl Mode {
    /// `xvsadm -a` forwarding options.
    fn adm_args(self) -> &'static [&'static str] {
        match self {
            Mode::Nat => &["-m"],
            Mode::Dr => &["-g"],
            Mode::Ipip => &["-i"],
            Mode::Gue => &["-i", "--tun-type", "gue", "--tun-port", GUE_PORT],
        }
    }

    /// `xvs-realserver setup` options (after `--vip`).
    fn realserver_args(self) -> &'static [&'static str] {
        match self {
            Mode::Nat => &[],
            Mode::Dr => &["--mode", "dr"],
            Mode::Ipip => &["--mode", "tun"],
            Mode::Gue => &["--mode", "tun", "--tun-type", "gue", "--tun-port", GUE_PORT],
        }
    }

    fn title(self) -> &'static str {
        match self {
            Mode::Nat => "LVS-NAT (-m)",
            Mode::Dr => "LVS-DR, direct routing (-g)",
            Mode::Ipip => "LVS-TUN, IPIP tunnelling (-i)",
            Mode::Gue => "LVS-TUN, GUE tunnelling (-i --tun-type gue)",
        }
    }
}

fn demo(args: &[String]) -> Result<()> {
    let mut mode = "nat".to_string();
    let mut tun_type = None;
    let mut build = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--no-build" => build = false,
            "--mode" => mode = it.next().context("--mode needs a value")?.clone(),
            m if m.starts_with("--mode=") => mode = m["--mode=".len()..].to_string(),
            "--tun-type" => tun_type = Some(it.next().context("--tun-type needs a value")?.clone()),
            t if t.starts_with("--tun-type=") => {
                tun_type = Some(t["--tun-type=".len()..].to_string())
            }
            other => bail!("unknown demo option {other:?}\n{USAGE}"),
        }
    }
    let mode = match (mode.as_str(), tun_type.as_deref()) {
        ("nat", None) => Mode::Nat,
        ("dr", None) => Mode::Dr,
        ("tun", None | Some("ipip")) => Mode::Ipip,
        ("tun", Some("gue")) => Mode::Gue,
        ("tun", Some(t)) => bail!("demo --tun-type {t:?}: available: ipip, gue"),
        (_, Some(_)) => bail!("--tun-type is only for --mode tun"),
        (m, None) => bail!("demo mode {m:?} is not known; available: nat, dr, tun"),
    };
    require_root("demo")?;
    xvs_testbed::install_interrupt_flag();

    header("dependencies");
    ensure_deps()?;
    if build {
        header("build");
        run_cargo(&["build", "--workspace", "--bins"])?;
    }
    let bins = Bins {
        xvsd: xvs_testbed::bin("xvsd")?,
        xvsadm: xvs_testbed::bin("xvsadm")?,
        testsrv: xvs_testbed::bin("xvs-testsrv")?,
    };
    if mode != Mode::Nat {
        // Testbed::realserver finds it the same way.
        xvs_testbed::bin("xvs-realserver")?;
    }
    cleanup_stale()?;

    header(&format!("testbed ({})", mode.title()));
    let tb = if mode == Mode::Nat {
        let tb = Testbed::nat().context("building the NAT testbed")?;
        println!(
            "namespaces: {}\n  client {}  ->  director eth0 {} + VIP {VIP}\n  \
             director eth1 {}  ->  br0  ->  rs1..rs{} ({}..)",
            tb.namespaces().join(" "),
            xvs_testbed::CLIENT_IP,
            xvs_testbed::DIRECTOR_EXT_IP,
            xvs_testbed::DIRECTOR_INT_IP,
            tb.rs_count(),
            tb.rs_addr(1)
        );
        tb
    } else {
        let tb = Testbed::dr().context("building the DR/TUN testbed")?;
        println!("namespaces: {}", tb.namespaces().join(" "));
        println!(
            "  client {}  ->  router {} / {}  ->  br0  ->  director {} + VIP {VIP}",
            xvs_testbed::DR_CLIENT_IP,
            xvs_testbed::DR_ROUTER_CLIENT_IP,
            xvs_testbed::DR_ROUTER_IP,
            xvs_testbed::DR_DIRECTOR_IP,
        );
        println!(
            "                                                     and rs1..rs{} ({}..)",
            tb.rs_count(),
            tb.rs_addr(1)
        );
        println!("  the real servers answer the client through the router, not the director");
        tb
    };
    let result = demo_run(&tb, &bins, mode);
    header("teardown");
    let closed = tb.close();
    match (&result, &closed) {
        (Ok(()), Ok(())) => println!("done: namespaces, bpffs and processes removed"),
        (_, Err(e)) => eprintln!("teardown problem: {e}"),
        _ => println!("testbed removed"),
    }
    result?;
    closed?;
    Ok(())
}

struct Bins {
    xvsd: PathBuf,
    xvsadm: PathBuf,
    testsrv: PathBuf,
}

fn check_interrupt() -> Result<()> {
    if interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

fn demo_run(tb: &Testbed, bins: &Bins, mode: Mode) -> Result<()> {
    header("real servers");
    let servers = tb.start_http_servers(80)?;
    for (n, p) in (1..).zip(&servers) {
        println!(
            "rs{n}: xvs-testsrv http on {}:80 (pid {})",
            tb.rs_addr(n),
            p.pid()
        );
    }
    check_interrupt()?;
    if mode == Mode::Nat {
        return demo_xvsd(tb, bins, mode);
    }
    header("prepare the real servers with xvs-realserver");
    let mut prepared = Vec::new();
    let mut result = Ok(());
    for n in 1..=tb.rs_count() {
        let mut args = vec!["setup", "--vip", VIP];
        args.extend_from_slice(mode.realserver_args());
        match realserver(tb, n, &args) {
            Ok(()) => prepared.push(n),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        if let Err(e) = check_interrupt() {
            result = Err(e);
            break;
        }
    }
    if result.is_ok() {
        result = demo_xvsd(tb, bins, mode);
    }
    header("restore the real servers with xvs-realserver");
    for n in prepared {
        if let Err(e) = realserver(tb, n, &["teardown", "--vip", VIP]) {
            eprintln!("rs{n}: {e:#}");
        }
    }
    result
}

/// `xvs-realserver <args>` in real server `n`, printed like a shell session.
fn realserver(tb: &Testbed, n: u8, args: &[&str]) -> Result<()> {
    println!("(rs{n}) $ xvs-realserver {}", args.join(" "));
    let out = tb
        .realserver(Node::Rs(n), args)
        .with_context(|| format!("xvs-realserver {} in rs{n}", args.join(" ")))?;
    for line in out.lines() {
        println!("  {line}");
    }
    Ok(())
}

fn demo_xvsd(tb: &Testbed, bins: &Bins, mode: Mode) -> Result<()> {
    header("xvsd");
    let sock = tb.run_dir().join("xvsd.sock");
    let sock_s = sock.to_string_lossy().into_owned();
    let pin = tb.bpffs().join("xvs");
    let pin_s = pin.to_string_lossy().into_owned();
    let xvsd_s = bins.xvsd.to_string_lossy().into_owned();
    let interfaces = match tb.topology() {
        Topology::Nat => "eth0,eth1",
        Topology::Dr => "eth0",
        Topology::Selftest => "veth10,veth12",
    };
    let argv = [
        xvsd_s.as_str(),
        "--socket",
        &sock_s,
        "--pin-path",
        &pin_s,
        "--interfaces",
        interfaces,
    ];
    println!("(director) $ xvsd {}", argv[1..].join(" "));
    let xvsd = tb.spawn(Node::Director, &argv)?;
    let run = wait_for_socket(&xvsd, &sock, Duration::from_secs(10)).and_then(|()| {
        println!(
            "xvsd is up (pid {}), API socket {}",
            xvsd.pid(),
            sock.display()
        );
        demo_traffic(tb, bins, &sock_s, &xvsd, mode)
    });
    header("stopping xvsd (SIGTERM)");
    match xvsd.stop(Duration::from_secs(5)) {
        Some(st) => println!("xvsd exited: {st}"),
        None => println!("xvsd could not be reaped"),
    }
    if run.is_err() {
        let log = xvsd.log();
        if !log.trim().is_empty() {
            eprintln!("--- xvsd log ---\n{}", log.trim_end());
        }
    }
    run
}

fn wait_for_socket(xvsd: &Proc, sock: &Path, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if UnixStream::connect(sock).is_ok() {
            return Ok(());
        }
        if let Some(st) = xvsd.try_wait() {
            bail!("xvsd exited ({st}) before its socket accepted connections");
        }
        check_interrupt()?;
        if Instant::now() >= deadline {
            bail!(
                "xvsd's socket {} did not accept connections within {}s",
                sock.display(),
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run `xvsadm --socket S <args>` in the director and print it ipvsadm-style.
fn xvsadm(tb: &Testbed, bins: &Bins, sock: &str, args: &[&str]) -> Result<String> {
    println!("$ xvsadm {}", args.join(" "));
    let bin = bins.xvsadm.to_string_lossy().into_owned();
    let mut argv = vec![bin.as_str(), "--socket", sock];
    argv.extend_from_slice(args);
    let out = tb.exec(Node::Director, &argv)?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "xvsadm {} failed ({}): {}",
            args.join(" "),
            out.status,
            stderr.trim()
        );
    }
    eprint!("{stderr}");
    Ok(stdout)
}

fn demo_traffic(tb: &Testbed, bins: &Bins, sock: &str, xvsd: &Proc, mode: Mode) -> Result<()> {
    header("configure the virtual service with xvsadm");
    println!("(xvsadm talks to xvsd over {sock}; the flag --socket is left out below)");
    let vip = format!("{VIP}:80");
    xvsadm(tb, bins, sock, &["-A", "-t", &vip, "-s", "rr"])?;
    for n in 1..=tb.rs_count() {
        let rs = format!("{}:80", tb.rs_addr(n));
        let mut args = vec!["-a", "-t", &vip, "-r", &rs];
        args.extend_from_slice(mode.adm_args());
        xvsadm(tb, bins, sock, &args)?;
    }
    xvsadm(tb, bins, sock, &["-L", "-n"])?;
    check_interrupt()?;

    const REQUESTS: u32 = 30;
    header(&format!(
        "{REQUESTS} HTTP requests from the client to http://{VIP}/ (new connection each)"
    ));
    let wire = |tb: &Testbed| -> Result<(u64, u64)> {
        let dir = tb.if_stat(Node::Director, "eth0", "rx_packets")?;
        let mut rs = 0;
        for n in 1..=tb.rs_count() {
            rs += tb.if_stat(Node::Rs(n), "eth0", "tx_packets")?;
        }
        Ok((dir, rs))
    };
    let before = wire(tb)?;
    let testsrv = bins.testsrv.to_string_lossy().into_owned();
    let url = format!("http://{VIP}/");
    let count = REQUESTS.to_string();
    let out = tb.exec(
        Node::Client,
        &[
            &testsrv,
            "get",
            &url,
            "--count",
            &count,
            "--new-conn",
            "--timeout-ms",
            "2000",
        ],
    )?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut tally: BTreeMap<String, u32> = BTreeMap::new();
    for (i, line) in stdout.lines().enumerate() {
        println!("request {:>2} -> {line}", i + 1);
        let key = if line.starts_with("ERR") {
            "errors".to_string()
        } else {
            line.to_string()
        };
        *tally.entry(key).or_default() += 1;
    }
    println!("tally:");
    for (k, v) in &tally {
        println!("  {k:<8} {v}");
    }
    if xvsd.try_wait().is_some() {
        bail!("xvsd died during the traffic run");
    }
    check_interrupt()?;

    std::thread::sleep(Duration::from_millis(300));
    let after = wire(tb)?;

    header("xvsadm -Ln");
    xvsadm(tb, bins, sock, &["-L", "-n"])?;
    if matches!(mode, Mode::Ipip | Mode::Gue) {
        header("xvsadm -Ln --tun-info");
        xvsadm(tb, bins, sock, &["-L", "-n", "--tun-info"])?;
    }
    header("xvsadm -Ln --stats");
    xvsadm(tb, bins, sock, &["-L", "-n", "--stats"])?;
    if mode != Mode::Nat {
        println!(
            "\nOutPkts stays 0: the real servers answered the client directly, through the \
             router.\nOn the wire: the director's eth0 received {} packets (the client's), \
             the real servers sent {}.",
            after.0 - before.0,
            after.1 - before.1
        );
    }

    let answered: u32 = tally
        .iter()
        .filter(|(k, _)| k.as_str() != "errors")
        .map(|(_, v)| *v)
        .sum();
    if answered != REQUESTS {
        bail!("only {answered} of {REQUESTS} requests were answered");
    }
    Ok(())
}
