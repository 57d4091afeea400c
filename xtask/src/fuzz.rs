//! `cargo xtask fuzz [--smoke] [--time SECS] [TARGET...]`: the
//! coverage-guided fuzzers of `fuzz/` (libFuzzer through `libfuzzer-sys`).
//!
//! They are built here rather than with `cargo fuzz` because `cargo fuzz`
//! is one more tool to install and asks for a nightly toolchain for its
//! sanitizers, while a fresh machine has only the stable one: the
//! sanitizer-coverage instrumentation libFuzzer needs is a set of stable
//! `-C` flags, which is all `cargo fuzz --sanitizer none` adds. The crate
//! keeps cargo-fuzz's layout, so `cargo fuzz run TARGET` works as well
//! where cargo-fuzz and nightly are installed.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Every fuzz target (a `[[bin]]` of fuzz/Cargo.toml) and the largest
/// input it is given (libFuzzer's `-max_len`).
pub(crate) const TARGETS: &[(&str, usize)] = &[
    ("ipvsadm_args", 512),
    ("ipvsadm_restore", 4096),
    ("keepalived_conf", 8192),
    ("api_json", 4096),
    ("sync_datagram", 2048),
    ("notify_fifo", 512),
    ("rtnetlink", 4096),
    ("mark_import", 4096),
    ("sip_callid", 2048),
    ("ipv6_packet", 2048),
];

/// Seconds each target runs in `cargo xtask test`'s smoke step.
pub(crate) const SMOKE_SECS: u64 = 10;

/// What libFuzzer's coverage needs, as `cargo fuzz` sets it (no sanitizer).
const RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    -Cllvm-args=-sanitizer-coverage-stack-depth \
    --cfg fuzzing";

/// `cargo xtask fuzz` options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct FuzzArgs {
    /// 10 seconds per target, as `cargo xtask test` runs them.
    #[arg(long, conflicts_with = "time")]
    smoke: bool,
    /// Seconds per target.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    time: u64,
    /// Instead of the libFuzzer targets: N random and mutated frames
    /// through the data plane (BPF_PROG_TEST_RUN), in both attach modes,
    /// checked against its invariants (crates/xvs-dataplane/tests/dp_fuzz.rs).
    #[arg(long, value_name = "N", conflicts_with_all = ["smoke", "targets"])]
    dataplane: Option<u64>,
    /// Seed of the --dataplane run.
    #[arg(long, value_name = "SEED", requires = "dataplane")]
    seed: Option<u64>,
    /// Which targets (default: all).
    #[arg(value_name = "TARGET")]
    targets: Vec<String>,
}

/// `cargo xtask fuzz`.
pub(crate) fn cmd(args: &FuzzArgs) -> Result<()> {
    if let Some(frames) = args.dataplane {
        return dataplane(frames, args.seed);
    }
    let secs = if args.smoke { SMOKE_SECS } else { args.time };
    let targets: Vec<(&str, usize)> = if args.targets.is_empty() {
        TARGETS.to_vec()
    } else {
        args.targets
            .iter()
            .map(|n| {
                TARGETS
                    .iter()
                    .find(|(t, _)| t == n)
                    .copied()
                    .with_context(|| format!("fuzz: no target {n:?} (one of {})", target_names()))
            })
            .collect::<Result<_>>()?
    };
    run(&targets, secs)
}

fn target_names() -> String {
    TARGETS
        .iter()
        .map(|(t, _)| *t)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds every target, then runs each for `secs` seconds from its
/// committed seeds; fails on the first crash, leak of the memory limit or
/// hang, naming the input libFuzzer kept.
pub(crate) fn run(targets: &[(&str, usize)], secs: u64) -> Result<()> {
    let root = crate::workspace_root();
    let bins = build(&root)?;
    let work = root.join("target/fuzz");
    for (t, max_len) in targets {
        let corpus = work.join("corpus").join(t);
        let artifacts = work.join("artifacts").join(t);
        std::fs::create_dir_all(&corpus).context("fuzz corpus directory")?;
        std::fs::create_dir_all(&artifacts).context("fuzz artifacts directory")?;
        let mut dirs = vec![corpus, root.join("fuzz/corpus").join(t)];
        // keepalived's own sample configurations, read where they are.
        let samples = root.join("../shared/keepalived-samples");
        if *t == "keepalived_conf" && samples.is_dir() {
            dirs.push(samples);
        }
        run_one(&bins.join(t), &dirs, &artifacts, *max_len, secs)
            .with_context(|| format!("fuzz target {t}"))?;
    }
    Ok(())
}

fn build(root: &Path) -> Result<PathBuf> {
    let triple = host_triple()?;
    crate::header("fuzz: build (libFuzzer, sanitizer coverage)");
    let status = Command::new(crate::cargo())
        .current_dir(root.join("fuzz"))
        .env(
            "RUSTFLAGS",
            RUSTFLAGS.split_whitespace().collect::<Vec<_>>().join(" "),
        )
        .args(["build", "--release", "--bins", "--target", &triple])
        .arg("--target-dir")
        .arg(root.join("target/fuzz"))
        .status()
        .context("cargo build (fuzz)")?;
    if !status.success() {
        bail!("building the fuzz targets failed");
    }
    // A separate --target keeps the coverage flags off build scripts and
    // proc macros, which cannot link against libFuzzer.
    Ok(root.join("target/fuzz").join(triple).join("release"))
}

fn host_triple() -> Result<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("rustc -vV printed no host line")
}

fn run_one(
    bin: &Path,
    dirs: &[PathBuf],
    artifacts: &Path,
    max_len: usize,
    secs: u64,
) -> Result<()> {
    let name = bin.file_name().map(|n| n.to_string_lossy().into_owned());
    crate::header(&format!(
        "fuzz: {} for {secs} s",
        name.as_deref().unwrap_or("?")
    ));
    let mut prefix = artifacts.as_os_str().to_owned();
    prefix.push("/");
    let mut cmd = Command::new(bin);
    cmd.arg(format!("-max_total_time={secs}"))
        .arg(format!("-max_len={max_len}"))
        // A hang is an input that takes more than 10 s; memory is bounded.
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg("-malloc_limit_mb=1024")
        .arg("-print_final_stats=1")
        .arg({
            let mut a = std::ffi::OsString::from("-artifact_prefix=");
            a.push(&prefix);
            a
        })
        .args(dirs);
    let log_path = artifacts.join("last-run.log");
    let status = run_bounded(&mut cmd, &log_path, Duration::from_secs(secs + 120))?;
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        for l in tail.iter().rev() {
            eprintln!("{l}");
        }
        bail!(
            "libFuzzer found a failing input (exit {:?}); it is kept in {}",
            status.code(),
            artifacts.display()
        );
    }
    for l in log.lines().filter(|l| {
        l.starts_with("Done ")
            || l.starts_with("stat::number_of_executed_units")
            || l.contains("INITED")
    }) {
        println!("{l}");
    }
    Ok(())
}

/// Runs `cmd` with its output in `log`, killed (by its PID) if it outlives
/// `deadline`: libFuzzer stops by itself at -max_total_time, this is the
/// bound for when it does not.
fn run_bounded(cmd: &mut Command, log: &Path, deadline: Duration) -> Result<ExitStatus> {
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = cmd
        .stdout(file.try_clone().context("fuzz log")?)
        .stderr(file)
        .spawn()
        .context("starting the fuzz target")?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().context("waiting for the fuzz target")? {
            return Ok(status);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the fuzz target ran past {} s and was stopped",
                deadline.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `--dataplane N`: the data-plane fuzzer, XDP then tc.
fn dataplane(frames: u64, seed: Option<u64>) -> Result<()> {
    crate::require_root("fuzz --dataplane")?;
    let frames = frames.to_string();
    let seed = seed.map(|s| s.to_string());
    for mode in ["xdp", "tc"] {
        crate::header(&format!(
            "fuzz: {frames} frames through the data plane ({mode})"
        ));
        let mut env = vec![
            ("XVS_TEST_ATTACH", mode),
            ("XVS_DP_FUZZ_FRAMES", frames.as_str()),
        ];
        if let Some(s) = &seed {
            env.push(("XVS_DP_FUZZ_SEED", s.as_str()));
        }
        crate::run_cargo_env(
            &[
                "test",
                "-p",
                "xvs-dataplane",
                "--release",
                "--test",
                "dp_fuzz",
                "--",
                "--ignored",
                "--nocapture",
            ],
            &env,
        )?;
    }
    Ok(())
}
