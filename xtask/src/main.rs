//! `cargo xtask demo | test | matrix | bench | vm | fuzz | package` (`cargo xtask
//! --help`; each command's `--help` lists its options).
//!
//! * `demo`: installs missing Debian packages, builds the binaries, brings
//!   up the NAT testbed (or, for `dr`/`tun`, the direct-routing one with
//!   real servers prepared by `xvs-realserver setup`), runs xvsd, adds a
//!   service with three real servers via `xvsadm`, sends 30 HTTP requests
//!   and shows who answered and xvsd's counters, then tears down ([`demo`]).
//! * `test`: every tier ([`tiers`]).
//! * `matrix`: the kernel-dependent tests on Debian's kernels ([`matrix`]).
//! * `bench`: `xvs-bench` on the host or in a VM ([`bench`]).
//! * `vm`: a command inside one of Debian's kernels under qemu ([`vm`]).
//! * `fuzz`: the libFuzzer targets of `fuzz/` ([`fuzz`]).
//! * `package`: the Debian packages ([`package`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

mod bench;
mod demo;
mod deps;
mod fuzz;
mod matrix;
mod package;
mod tiers;
mod vm;

pub(crate) use deps::{install_missing, installed};

/// The xvs project's tasks.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build, bring up a netns testbed, run xvsd + xvsadm, send traffic
    /// (nat: -m; dr: -g; tun: -i, IPIP or GUE on port 6080).
    Demo(demo::DemoArgs),
    /// fmt, clippy, build, unit tests, root tests (BPF fixtures, netns
    /// e2e), the benchmark harness and the fuzzers in smoke mode, then the
    /// kernel matrix.
    Test,
    /// The kernel-dependent tests (fixtures in both attach modes, scheduler
    /// differential, IPVS selftest cases, NAT/DR/TUN e2e subset, demo, and
    /// on 6.12 the IPVS oracles) on Debian's stock kernels in a VM (all
    /// three without --kernel).
    Matrix {
        /// 5.10, 6.1 or 6.12; may be repeated.
        #[arg(long = "kernel", value_name = "K", value_parser = kernel_arg)]
        kernels: Vec<vm::Kernel>,
    },
    /// xvs against direct delivery, kernel forwarding, nftables NAT, the
    /// kernel's IPVS, HAProxy, nginx stream and the XDP limit on the netns
    /// testbed; writes docs/benchmark-results.md (method: docs/benchmarks.md). Release build
    /// (--smoke: debug).
    Bench(bench::BenchArgs),
    /// Boot Debian's stock kernel of a release under qemu and run a
    /// command as root inside, with the host's root filesystem; exits with
    /// the command's status.
    Vm(vm::VmArgs),
    /// The coverage-guided fuzzers of fuzz/ (libFuzzer): ipvsadm grammar
    /// and -R input, keepalived.conf with includes, the JSON API, sync
    /// datagrams, notify FIFO lines; a failing input is kept in
    /// target/fuzz/artifacts.
    Fuzz(fuzz::FuzzArgs),
    /// The Debian packages xvs and xvs-ipvsadm in target/debian/ (release
    /// build; dist/README.md); --check verifies them.
    Package(package::PackageArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Demo(a) => demo::demo(&a),
        Task::Test => tiers::test(),
        Task::Matrix { kernels } => matrix::cmd(&kernels),
        Task::Bench(a) => bench::bench(&a),
        Task::Vm(a) => vm::cmd(a).map(|code| std::process::exit(code)),
        Task::Fuzz(a) => fuzz::cmd(&a),
        Task::Package(a) => package::cmd(&a),
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

/// `--kernel`'s value parser.
fn kernel_arg(s: &str) -> Result<vm::Kernel, String> {
    vm::Kernel::parse(s).map_err(|e| e.to_string())
}

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
