//! `cargo xtask demo`: a netns testbed, xvsd and xvsadm, 30 requests,
//! who answered, the counters, teardown.

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xvs_testbed::{interrupted, Node, Proc, Testbed, Topology, VIP};

use crate::deps::ensure_deps;
use crate::tiers::cleanup_stale;
use crate::{header, require_root, run_cargo};

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

/// `cargo xtask demo` options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DemoArgs {
    /// The forwarding method: nat (-m), dr (-g) or tun (-i).
    #[arg(long, value_enum, default_value_t = DemoMode::Nat)]
    mode: DemoMode,
    /// With --mode tun: ipip (default) or gue (UDP port 6080).
    #[arg(long, value_enum)]
    tun_type: Option<DemoTunType>,
    /// Use the binaries already built (XVS_BIN_DIR overrides where).
    #[arg(long)]
    no_build: bool,
}

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DemoMode {
    Nat,
    Dr,
    Tun,
}

/// `--tun-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DemoTunType {
    Ipip,
    Gue,
}

/// `cargo xtask demo`.
pub(crate) fn demo(args: &DemoArgs) -> Result<()> {
    let build = !args.no_build;
    let mode = match (args.mode, args.tun_type) {
        (DemoMode::Nat, None) => Mode::Nat,
        (DemoMode::Dr, None) => Mode::Dr,
        (DemoMode::Tun, None | Some(DemoTunType::Ipip)) => Mode::Ipip,
        (DemoMode::Tun, Some(DemoTunType::Gue)) => Mode::Gue,
        (_, Some(_)) => bail!("--tun-type is only for --mode tun"),
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
