//! `cargo xtask demo | test | bench`.
//!
//! * `demo [--mode nat]`: installs missing Debian packages, builds the
//!   binaries, brings up the NAT testbed, runs xvsd in the director, adds a
//!   service with three real servers via `xvsadm`, sends 30 HTTP requests
//!   from the client and shows who answered and xvsd's counters.
//! * `test`: fmt, clippy, build, unit tests, then the root tiers (BPF
//!   fixtures and netns end-to-end tests, `--ignored`).
//! * `bench`: not implemented yet.

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xvs_testbed::{interrupted, rs_ip, Node, Proc, Testbed, VIP};

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
];

const USAGE: &str = "\
usage: cargo xtask <command>
  demo [--mode nat] [--no-build]
                      build, bring up a netns testbed, run xvsd + xvsadm, send traffic
                      (--no-build: use the binaries already built; XVS_BIN_DIR overrides where)
  test                fmt, clippy, build, unit tests, root tests (BPF fixtures, netns e2e)
  bench               benchmarks (not implemented yet)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(&args[1..]),
        Some("test") if args.len() == 1 => test(),
        Some("bench") => bench(),
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
    println!("$ cargo {}", args.join(" "));
    let status = Command::new(cargo())
        .args(args)
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

fn installed(pkg: &str) -> bool {
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
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        println!("system packages: all present ({})", PACKAGES.join(" "));
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
    header("cleanup of stale xvs namespaces (before)");
    cleanup_stale()?;

    let steps: &[(&str, &[&str])] = &[
        ("format", &["fmt", "--all", "--", "--check"]),
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
        ),
        ("build", &["build", "--workspace", "--bins"]),
        ("tier 1: unit tests (no root)", &["test", "--workspace"]),
        (
            "tiers 2+3: root tests (BPF fixtures, netns end-to-end)",
            &["test", "--workspace", "--", "--ignored", "--test-threads=1"],
        ),
    ];
    let mut result = Ok(());
    for (i, (title, args)) in steps.iter().enumerate() {
        header(&format!("[{}/{}] {title}", i + 1, steps.len()));
        if let Err(e) = run_cargo(args) {
            result = Err(e);
            break;
        }
    }
    header("cleanup of stale xvs namespaces (after)");
    let cleaned = cleanup_stale();
    result?;
    cleaned?;
    header("all tiers passed");
    Ok(())
}

// -------------------------------------------------------------------- bench

fn bench() -> Result<()> {
    bail!("benchmarks are not implemented yet (issue 5)")
}

// --------------------------------------------------------------------- demo

fn demo(args: &[String]) -> Result<()> {
    let mut mode = "nat".to_string();
    let mut build = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--no-build" => build = false,
            "--mode" => mode = it.next().context("--mode needs a value")?.clone(),
            m if m.starts_with("--mode=") => mode = m["--mode=".len()..].to_string(),
            other => bail!("unknown demo option {other:?}\n{USAGE}"),
        }
    }
    if mode != "nat" {
        bail!("demo mode {mode:?} is not implemented yet; available: nat");
    }
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
    cleanup_stale()?;

    header("testbed (LVS-NAT)");
    let tb = Testbed::nat().context("building the NAT testbed")?;
    println!(
        "namespaces: {}\n  client 198.51.100.2  ->  director eth0 198.51.100.1 + VIP {VIP}\n  \
         director eth1 203.0.113.1  ->  br0  ->  rs1..rs{} ({}..)",
        tb.namespaces().join(" "),
        tb.rs_count(),
        rs_ip(1)
    );
    let result = demo_nat(&tb, &bins);
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

fn demo_nat(tb: &Testbed, bins: &Bins) -> Result<()> {
    header("real servers");
    let servers = tb.start_http_servers(80)?;
    for (n, p) in (1..).zip(&servers) {
        println!(
            "rs{n}: xvs-testsrv http on {}:80 (pid {})",
            rs_ip(n),
            p.pid()
        );
    }
    check_interrupt()?;

    header("xvsd");
    let sock = tb.run_dir().join("xvsd.sock");
    let sock_s = sock.to_string_lossy().into_owned();
    let pin = tb.bpffs().join("xvs");
    let pin_s = pin.to_string_lossy().into_owned();
    let xvsd_s = bins.xvsd.to_string_lossy().into_owned();
    let argv = [
        xvsd_s.as_str(),
        "--socket",
        &sock_s,
        "--pin-path",
        &pin_s,
        "--interfaces",
        "eth0,eth1",
    ];
    println!("(director) $ xvsd {}", argv[1..].join(" "));
    let xvsd = tb.spawn(Node::Director, &argv)?;
    let run = wait_for_socket(&xvsd, &sock, Duration::from_secs(10)).and_then(|()| {
        println!(
            "xvsd is up (pid {}), API socket {}",
            xvsd.pid(),
            sock.display()
        );
        demo_traffic(tb, bins, &sock_s, &xvsd)
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

fn demo_traffic(tb: &Testbed, bins: &Bins, sock: &str, xvsd: &Proc) -> Result<()> {
    header("configure the virtual service with xvsadm");
    println!("(xvsadm talks to xvsd over {sock}; the flag --socket is left out below)");
    let vip = format!("{VIP}:80");
    xvsadm(tb, bins, sock, &["-A", "-t", &vip, "-s", "rr"])?;
    for n in 1..=tb.rs_count() {
        let rs = format!("{}:80", rs_ip(n));
        xvsadm(tb, bins, sock, &["-a", "-t", &vip, "-r", &rs, "-m"])?;
    }
    xvsadm(tb, bins, sock, &["-L", "-n"])?;
    check_interrupt()?;

    const REQUESTS: u32 = 30;
    header(&format!(
        "{REQUESTS} HTTP requests from the client to http://{VIP}/ (new connection each)"
    ));
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

    header("xvsadm -Ln");
    xvsadm(tb, bins, sock, &["-L", "-n"])?;
    header("xvsadm -Ln --stats");
    xvsadm(tb, bins, sock, &["-L", "-n", "--stats"])?;

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
