//! `cargo xtask bench`: builds and runs `xvs-bench` (crates/xvs-bench) on
//! the host or, with `--vm`, inside one of Debian's kernels.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::deps::{ensure_bench_deps, ensure_deps, install_missing};
use crate::{header, require_root, run_cargo, vm, workspace_root};

/// `cargo xtask bench` options: xtask's own, then those handed to
/// `xvs-bench` (see its `--help`).
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct BenchArgs {
    /// Use the binaries already built.
    #[arg(long)]
    pub(crate) no_build: bool,
    /// Run inside Debian's stock kernel under qemu (cargo xtask vm); TCG
    /// here, so only ratios within the run count; the report goes to
    /// <target>/xvs-bench-vm.md (or --out), never docs/benchmark-results.md.
    #[arg(long)]
    pub(crate) vm: bool,
    /// With --vm: which kernel (default 6.12).
    #[arg(long, requires = "vm", value_parser = crate::kernel_arg)]
    pub(crate) kernel: Option<vm::Kernel>,
    /// With --vm: the whole VM run's limit in seconds (default 3600).
    #[arg(long, requires = "vm", value_name = "SECS")]
    pub(crate) vm_timeout: Option<u64>,
    /// Where the report goes (default docs/benchmark-results.md; --smoke:
    /// <target>/xvs-bench-smoke.md).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// 1 second per workload, one round: checks the harness, measures nothing.
    #[arg(long)]
    pub(crate) smoke: bool,
    /// Interleaved rounds per contender.
    #[arg(long, value_name = "N")]
    pub(crate) rounds: Option<u32>,
    /// Seconds per workload.
    #[arg(long, value_name = "S")]
    pub(crate) duration: Option<u32>,
    /// Concurrent connections of the load generator.
    #[arg(long, value_name = "N")]
    pub(crate) conns: Option<u32>,
    /// The real servers' HTTP server: nginx or testsrv.
    #[arg(long, value_name = "nginx|testsrv")]
    pub(crate) rs_server: Option<String>,
    /// Only these contenders (comma-separated).
    #[arg(long, value_name = "A,B,...")]
    pub(crate) only: Option<String>,
    /// Skip the data-plane cost measurement.
    #[arg(long)]
    pub(crate) no_dp_cost: bool,
    /// Skip the scale-of-state measurement.
    #[arg(long)]
    pub(crate) no_scale: bool,
}

impl BenchArgs {
    /// What `cargo xtask test` runs: the harness in smoke mode.
    pub(crate) fn smoke() -> Self {
        BenchArgs {
            smoke: true,
            ..Default::default()
        }
    }

    /// `xvs-bench`'s own options among these (not `--out`).
    fn xvs_bench_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        let flags = [
            (self.smoke, "--smoke"),
            (self.no_dp_cost, "--no-dp-cost"),
            (self.no_scale, "--no-scale"),
        ];
        for (on, flag) in flags {
            if on {
                v.push(flag.to_string());
            }
        }
        let values = [
            ("--rounds", self.rounds.map(|n| n.to_string())),
            ("--duration", self.duration.map(|n| n.to_string())),
            ("--conns", self.conns.map(|n| n.to_string())),
            ("--rs-server", self.rs_server.clone()),
            ("--only", self.only.clone()),
        ];
        for (opt, value) in values {
            if let Some(value) = value {
                v.extend([opt.to_string(), value]);
            }
        }
        v
    }
}

/// `cargo xtask bench`.
pub(crate) fn bench(args: &BenchArgs) -> Result<()> {
    require_root("bench")?;
    header("dependencies");
    ensure_deps()?;
    ensure_bench_deps()?;
    // The IPVS contenders' command line (on the host; a VM runs the host's).
    install_missing(&["ipvsadm"])?;
    run_bench(args, !args.no_build)
}

/// Build (unless `build` is false) and run `xvs-bench` with `args`: release
/// binaries for a full run, debug ones for `--smoke`. Without `--out`, a
/// full run writes docs/benchmark-results.md and a smoke run
/// `<target>/xvs-bench-smoke.md`.
///
/// With `--vm [--kernel K] [--vm-timeout S]` in `args`, `xvs-bench` runs
/// inside Debian's kernel K (default 6.12) under `cargo xtask vm`, on the
/// binaries built here, by default with the IPVS, xvs and nftables
/// contenders only (`--only`, `--rounds`, `--duration` override), and the
/// report goes to `<target>/xvs-bench-vm.md` (or `--out FILE`, a host
/// path), never to docs/benchmark-results.md. The guest's writes vanish with it
/// (its root is the host's, read-only under a tmpfs overlay), so the guest
/// prints the report between two marker lines and this side, which runs
/// the VM as a child `xtask vm` with its stdout piped, writes it.
pub(crate) fn run_bench(args: &BenchArgs, build: bool) -> Result<()> {
    let bins = prepare(args.smoke, build)?;
    if args.vm {
        run_in_vm(args, &bins)
    } else {
        run_on_host(args, &bins)
    }
}

/// Where the binaries of a run are: xvs-bench itself, the directory of the
/// rest (`XVS_BIN_DIR`), and the target directory.
struct Bins {
    me: PathBuf,
    bin_dir: PathBuf,
    target: PathBuf,
}

/// Builds (unless `build` is false) what a run needs: release binaries,
/// debug ones for a smoke run.
fn prepare(smoke: bool, build: bool) -> Result<Bins> {
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
    Ok(Bins {
        me,
        bin_dir,
        target,
    })
}

fn load_now() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn run_on_host(args: &BenchArgs, bins: &Bins) -> Result<()> {
    let mut argv = args.xvs_bench_args();
    let out = match &args.out {
        Some(o) => o.clone(),
        None if args.smoke => bins.target.join("xvs-bench-smoke.md"),
        None => workspace_root().join("docs").join("benchmark-results.md"),
    };
    argv.push("--out".into());
    argv.push(out.to_string_lossy().into_owned());
    header(&format!("xvs-bench {}", argv.join(" ")));
    println!("load average now: {}", load_now());
    let status = Command::new(&bins.me)
        .args(&argv)
        .env("XVS_BIN_DIR", &bins.bin_dir)
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("running {}", bins.me.display()))?;
    if !status.success() {
        bail!("xvs-bench failed ({status})");
    }
    Ok(())
}

fn run_in_vm(args: &BenchArgs, bins: &Bins) -> Result<()> {
    /// The VM run's defaults: ≤ 15 min under TCG (IPVS, xvs and nftables
    /// on the three testbeds, one baseline; 3 interleaved rounds of 3 s).
    const VM_ONLY: &str = "ipvs-nat,xvs-nat,nft-nat,ipvs-dr,xvs-dr,ipvs-tun,xvs-tun,direct";
    const VM_BEGIN: &str = "@@ xvs-bench-vm report begin @@";
    const VM_END: &str = "@@ xvs-bench-vm report end @@";

    let smoke = args.smoke;
    let rest = args.xvs_bench_args();
    let vm_timeout = args.vm_timeout.unwrap_or(3600);
    let (me, bin_dir, target) = (&bins.me, &bins.bin_dir, &bins.target);
    let exe = std::env::current_exe().context("locating xtask")?;
    let kernel = args.kernel.unwrap_or(vm::Kernel::V6_12);
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
    let host_out = args
        .out
        .clone()
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
            // xvs-bench's own result markers: for docs/benchmark-results.md only.
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
