//! The benchmark run: testbeds, contenders, workloads, data-plane cost and
//! scale of state. Traffic only flows between the namespaces created here;
//! every generator is bounded in count and time; every process is tracked
//! by PID and every namespace removed at the end, also on error or Ctrl-C.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use xvs_testbed::{
    bin, dr_rs_ip, interrupted, rs_ip, Node, Proc, Testbed, CLIENT_IP, DR_CLIENT_IP, VIP, XDP_DROP,
    XDP_TX,
};

use crate::dpcost::{self, Prog, DR_PORT, NAT_PORT, TUN_PORT};
use crate::frames;
use crate::report::{self, Report};
use crate::sys;

/// UDP port of the packet-rate workloads (discard).
pub const UDP_PORT: u16 = 9;
/// The client end of the "direct" baseline's own link to rs1.
const DIRECT_CLIENT: &str = "10.99.0.1";
/// rs1's end of that link.
const DIRECT_RS: &str = "10.99.0.2";
const DIRECT_DEV: &str = "dl0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsServer {
    Nginx,
    Testsrv,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub smoke: bool,
    pub rounds: u32,
    pub duration: u32,
    pub conns: u32,
    pub rs_server: RsServer,
    pub only: Option<Vec<String>>,
    pub dp_cost: bool,
    pub scale: bool,
    pub out: Option<PathBuf>,
    pub command_line: String,
    /// Run inside `cargo xtask vm` (`--in-vm`): the report says so first.
    pub in_vm: bool,
}

/// Who is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Contender {
    Direct,
    Fwd,
    Nft,
    Haproxy,
    Nginx,
    IpvsNat,
    XvsNat,
    XvsNatXdp,
    XvsNat1,
    DirectDr,
    IpvsDr,
    XvsDr,
    XvsDrXdp,
    IpvsTun,
    XvsTun,
    XvsTunXdp,
    XdpDrop,
    XdpTx,
}

pub const ALL: [Contender; 18] = [
    Contender::Direct,
    Contender::Fwd,
    Contender::Nft,
    Contender::Haproxy,
    Contender::Nginx,
    Contender::IpvsNat,
    Contender::XvsNat,
    Contender::XvsNatXdp,
    Contender::XvsNat1,
    Contender::DirectDr,
    Contender::IpvsDr,
    Contender::XvsDr,
    Contender::XvsDrXdp,
    Contender::IpvsTun,
    Contender::XvsTun,
    Contender::XvsTunXdp,
    Contender::XdpDrop,
    Contender::XdpTx,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BedId {
    Nat,
    Dr,
    Tun,
}

impl Contender {
    pub fn name(self) -> &'static str {
        match self {
            Contender::Direct => "direct",
            Contender::Fwd => "kernel-fwd",
            Contender::Nft => "nft-nat",
            Contender::Haproxy => "haproxy",
            Contender::Nginx => "nginx-stream",
            Contender::IpvsNat => "ipvs-nat",
            Contender::XvsNat => "xvs-nat",
            Contender::XvsNatXdp => "xvs-nat-xdp",
            Contender::XvsNat1 => "xvs-nat-1rs",
            Contender::DirectDr => "direct-dr",
            Contender::IpvsDr => "ipvs-dr",
            Contender::XvsDr => "xvs-dr",
            Contender::XvsDrXdp => "xvs-dr-xdp",
            Contender::IpvsTun => "ipvs-tun",
            Contender::XvsTun => "xvs-tun",
            Contender::XvsTunXdp => "xvs-tun-xdp",
            Contender::XdpDrop => "xdp-drop",
            Contender::XdpTx => "xdp-tx",
        }
    }

    pub fn by_name(n: &str) -> Option<Contender> {
        ALL.into_iter().find(|c| c.name() == n)
    }

    /// One line for the report.
    pub fn what(self) -> &'static str {
        match self {
            Contender::Direct => "client → rs1 on a link of their own, no load balancer (NAT testbed)",
            Contender::Fwd => "client → rs1 routed by the director's kernel (ip_forward), no load balancing",
            Contender::Nft => "director: nftables `dnat to numgen inc mod 3 map {…}` (kube-proxy nftables style), conntrack",
            Contender::Haproxy => "director: HAProxy TCP mode, roundrobin, 2 threads (TCP only)",
            Contender::Nginx => "director: nginx `stream` proxy, 2 workers (TCP; UDP with proxy_responses 0)",
            Contender::IpvsNat => "director: the kernel's IPVS, `ipvsadm -A -t VIP:80 -s rr`, `-a … -m` ×3 (NAT, `ip_forward=1`), and `-u VIP:9` likewise",
            Contender::XvsNat => "director: xvsd (`--attach tc`, what auto picks on veth), `-s rr`, `-m` (NAT)",
            Contender::XvsNatXdp => "the same with `--attach xdp` (native XDP on veth)",
            Contender::XvsNat1 => "`xvs-nat` with rs1 as the only real server: the same work on the same one server as `kernel-fwd`, which cannot spread it",
            Contender::DirectDr => "client → router → rs1, no load balancer (DR testbed baseline)",
            Contender::IpvsDr => "director: the kernel's IPVS, `ipvsadm … -s rr`, `-g` (DR testbed, the real servers of `xvs-dr`)",
            Contender::XvsDr => "director: xvsd `--attach tc`, `-s rr`, `-g` (DR testbed)",
            Contender::XvsDrXdp => "the same with `--attach xdp`",
            Contender::IpvsTun => "director: the kernel's IPVS, `ipvsadm … -s rr`, `-i` IPIP (DR testbed, the real servers of `xvs-tun`)",
            Contender::XvsTun => "director: xvsd `--attach tc`, `-s rr`, `-i` IPIP (DR testbed, RS decap by xvs-realserver)",
            Contender::XvsTunXdp => "the same with `--attach xdp`",
            Contender::XdpDrop => "director eth0: `return XDP_DROP;` (counted at director eth0)",
            Contender::XdpTx => "director eth0: `return XDP_TX;` (bounced frames counted back at the client)",
        }
    }

    fn bed(self) -> BedId {
        match self {
            Contender::DirectDr | Contender::IpvsDr | Contender::XvsDr | Contender::XvsDrXdp => {
                BedId::Dr
            }
            Contender::IpvsTun | Contender::XvsTun | Contender::XvsTunXdp => BedId::Tun,
            _ => BedId::Nat,
        }
    }

    pub fn http(self) -> bool {
        !matches!(self, Contender::XdpDrop | Contender::XdpTx)
    }

    pub fn udp(self) -> bool {
        self != Contender::Haproxy
    }

    /// The kernel's IPVS: needs `ip_vs` and `ipvsadm`, skipped without.
    pub fn ipvs(self) -> bool {
        matches!(
            self,
            Contender::IpvsNat | Contender::IpvsDr | Contender::IpvsTun
        )
    }
}

/// A testbed plus the processes that serve on its real servers.
struct Bed {
    tb: Testbed,
}

impl Drop for Bed {
    fn drop(&mut self) {
        // nginx masters fork workers the testbed does not track: end
        // everything still inside our namespaces, by PID.
        sweep_namespaces(self.tb.namespaces());
    }
}

/// SIGTERM, then SIGKILL, every process inside these (our) namespaces.
fn sweep_namespaces(namespaces: &[String]) {
    let pids = |ns: &str| -> Vec<i32> {
        Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .filter(|&p: &i32| p > 1)
                    .collect()
            })
            .unwrap_or_default()
    };
    for sig in [libc::SIGTERM, libc::SIGKILL] {
        let mut any = false;
        for ns in namespaces {
            for pid in pids(ns) {
                any = true;
                // SAFETY: kill(2) of a process inside a namespace we created.
                unsafe { libc::kill(pid, sig) };
            }
        }
        if !any {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// What a running contender needs to be stopped again.
#[derive(Default)]
struct Active {
    procs: Vec<Proc>,
    xvsd: Option<Xvsd>,
    nft: bool,
    /// IPVS configured in the director: `ipvsadm -C` at teardown.
    ipvs: bool,
    xdp: Vec<(Node, &'static str)>,
}

struct Xvsd {
    proc_: Proc,
    sock: String,
    pin: PathBuf,
}

/// Where a contender's traffic goes.
struct Target {
    url: String,
    client_dev: &'static str,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    dst_mac: (Node, &'static str),
    count: Vec<(Node, &'static str)>,
}

struct Bins {
    xvsd: String,
    xvsadm: String,
    testsrv: String,
    me: String,
}

pub struct Harness {
    cfg: Config,
    bins: Bins,
    nat: Option<Bed>,
    dr: Option<Bed>,
    tun: Option<Bed>,
    pub rep: Report,
    k: u32,
    /// This run loaded `ip_vs`: it reloads it between IPVS runs.
    ipvs_ours: bool,
}

fn path_str(p: PathBuf) -> String {
    p.to_string_lossy().into_owned()
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn since_start() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// A section header with the time since the start.
fn hdr(msg: &str) {
    println!("[{:6.1}s] == {msg}", since_start());
}

fn check_interrupt() -> Result<()> {
    if interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

pub fn run(cfg: Config) -> Result<()> {
    if !xvs_testbed::is_root() {
        bail!("xvs-bench needs root (network namespaces, bpffs, XDP)");
    }
    for tool in [
        "wrk", "trafgen", "haproxy", "nginx", "nft", "ss", "ethtool", "timeout",
    ] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            bail!("`{tool}` is missing; `cargo xtask bench` installs it (wrk netsniff-ng haproxy nginx-light libnginx-mod-stream nftables iproute2 ethtool)");
        }
    }
    xvs_testbed::install_interrupt_flag();
    START.get_or_init(Instant::now);
    let removed = xvs_testbed::cleanup_stale("xvs").context("removing stale xvs namespaces")?;
    if !removed.is_empty() {
        println!("removed stale: {}", removed.join(" "));
    }
    let bins = Bins {
        xvsd: path_str(bin("xvsd")?),
        xvsadm: path_str(bin("xvsadm")?),
        testsrv: path_str(bin("xvs-testsrv")?),
        me: path_str(bin("xvs-bench")?),
    };
    bin("xvs-realserver")?;
    let mut h = Harness {
        rep: Report::new(&cfg),
        cfg,
        bins,
        nat: None,
        dr: None,
        tun: None,
        k: 0,
        ipvs_ours: false,
    };
    let r = h.run_all();
    if let Err(e) = &r {
        h.rep.failures.push(format!("aborted: {e:#}"));
    }
    // Tear down before writing: the report records the load at the end.
    let beds = [h.nat.take(), h.dr.take(), h.tun.take()];
    for b in beds.into_iter().flatten() {
        let ns = b.tb.namespaces().to_vec();
        sweep_namespaces(&ns);
        drop(b);
    }
    hdr("teardown done");
    h.rep.finish();
    let md = h.rep.markdown();
    println!("\n{md}");
    match &h.cfg.out {
        // An interrupted run is printed, never written over the last one.
        Some(out) if interrupted() => println!("interrupted: {} left unchanged", out.display()),
        Some(out) => {
            report::write(out, &md)?;
            println!("written to {}", out.display());
        }
        None => {}
    }
    r?;
    if !h.rep.failures.is_empty() {
        bail!(
            "{} workload(s) failed:\n  {}",
            h.rep.failures.len(),
            h.rep.failures.join("\n  ")
        );
    }
    Ok(())
}

impl Harness {
    fn contenders(&self) -> Vec<Contender> {
        ALL.into_iter()
            .filter(|c| match &self.cfg.only {
                Some(o) => o.iter().any(|n| n == c.name()),
                None => true,
            })
            .collect()
    }

    fn bed(&self, id: BedId) -> &Testbed {
        let b = match id {
            BedId::Nat => &self.nat,
            BedId::Dr => &self.dr,
            BedId::Tun => &self.tun,
        };
        &b.as_ref().expect("testbed is up").tb
    }

    fn run_all(&mut self) -> Result<()> {
        let mut contenders = self.contenders();
        let ipvs: Vec<Contender> = contenders.iter().copied().filter(|c| c.ipvs()).collect();
        if !ipvs.is_empty() {
            match ipvs_probe() {
                Ok((what, ours)) => {
                    println!("IPVS: {what}");
                    self.rep.ipvs = Some(what);
                    self.ipvs_ours = ours;
                }
                Err(why) => {
                    let names: Vec<String> =
                        ipvs.iter().map(|c| format!("`{}`", c.name())).collect();
                    let line = format!("{}: not run: {why}", names.join(", "));
                    println!("{line}");
                    self.rep.not_run.push(line);
                    contenders.retain(|c| !c.ipvs());
                }
            }
        }
        let need = |id: BedId| contenders.iter().any(|c| c.bed() == id);
        hdr("testbeds");
        if need(BedId::Nat) || self.cfg.dp_cost || self.cfg.scale {
            self.nat = Some(self.make_bed(BedId::Nat)?);
        }
        if need(BedId::Dr) {
            self.dr = Some(self.make_bed(BedId::Dr)?);
        }
        if need(BedId::Tun) {
            self.tun = Some(self.make_bed(BedId::Tun)?);
        }
        self.rep.load_after_setup = report::loadavg();
        for round in 1..=self.cfg.rounds {
            for &c in &contenders {
                check_interrupt()?;
                hdr(&format!("round {round}/{}: {}", self.cfg.rounds, c.name()));
                self.run_contender(c);
            }
        }
        if self.cfg.dp_cost {
            check_interrupt()?;
            hdr("data-plane cost (BPF_PROG_TEST_RUN)");
            if let Err(e) = self.dp_cost() {
                self.rep.failures.push(format!("data-plane cost: {e:#}"));
            }
        }
        if self.cfg.scale {
            check_interrupt()?;
            hdr("scale of state");
            if let Err(e) = self.restore_bench() {
                self.rep.failures.push(format!("xvsadm -R / -e: {e:#}"));
            }
            check_interrupt()?;
            if let Err(e) = self.expiry_bench() {
                self.rep
                    .failures
                    .push(format!("xvsd with many connections: {e:#}"));
            }
            check_interrupt()?;
            if self.cfg.smoke {
                self.rep.largest_conn_tab = Some("not tried in --smoke".into());
            } else if let Err(e) = self.largest_conn_tab() {
                self.rep.failures.push(format!("largest conn table: {e:#}"));
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------- testbeds

    fn make_bed(&self, id: BedId) -> Result<Bed> {
        let tb = match id {
            BedId::Nat => Testbed::nat(),
            BedId::Dr | BedId::Tun => Testbed::dr(),
        }
        .map_err(|e| anyhow!("{e}"))?;
        let bed = Bed { tb };
        let tb = &bed.tb;
        if id == BedId::Nat {
            tb.add_link(
                Node::Client,
                DIRECT_DEV,
                &format!("{DIRECT_CLIENT}/30"),
                Node::Rs(1),
                DIRECT_DEV,
                &format!("{DIRECT_RS}/30"),
            )
            .map_err(|e| anyhow!("{e}"))?;
        }
        if id != BedId::Nat {
            let mode = if id == BedId::Dr { "dr" } else { "tun" };
            for n in 1..=tb.rs_count() {
                tb.realserver(Node::Rs(n), &["setup", "--vip", VIP, "--mode", mode])
                    .map_err(|e| anyhow!("xvs-realserver setup in rs{n}: {e}"))?;
            }
        }
        for n in 1..=tb.rs_count() {
            match self.cfg.rs_server {
                RsServer::Nginx => {
                    self.rs_nginx(tb, n)?;
                }
                RsServer::Testsrv => {
                    tb.spawn(
                        Node::Rs(n),
                        &[
                            &self.bins.testsrv,
                            "http",
                            "--listen",
                            "0.0.0.0:80",
                            "--name",
                            &format!("rs{n}"),
                        ],
                    )
                    .map_err(|e| anyhow!("{e}"))?;
                }
            }
            wait_listen(tb, Node::Rs(n), "t", 80)?;
            // A bound UDP socket nobody reads: datagrams are counted on
            // the interface, fill the socket buffer and are dropped there.
            // A closed port would make every datagram cost a route lookup
            // for an ICMP port-unreachable (rate-limited only after that
            // lookup): ≈ 20 % of a forwarded packet's cost, the same for
            // every contender, diluting what the director adds.
            tb.spawn(
                Node::Rs(n),
                &[
                    &self.bins.testsrv,
                    "udp-sink",
                    "--listen",
                    &format!("0.0.0.0:{UDP_PORT}"),
                    "--name",
                    &format!("rs{n}"),
                ],
            )
            .map_err(|e| anyhow!("{e}"))?;
            wait_listen(tb, Node::Rs(n), "u", UDP_PORT)?;
        }
        println!("{:?} testbed up: {}", id, tb.namespaces().join(" "));
        Ok(bed)
    }

    fn rs_nginx(&self, tb: &Testbed, n: u8) -> Result<Proc> {
        let dir = tb.run_dir().join(format!("nginx-rs{n}"));
        fs::create_dir_all(&dir)?;
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes 2;\npid {d}/nginx.pid;\n\
             error_log stderr warn;\nworker_rlimit_nofile 65536;\n\
             events {{ worker_connections 16384; }}\n\
             http {{\n  access_log off;\n  keepalive_requests 1000000;\n  keepalive_timeout 60s;\n\
             \x20 client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             \x20 fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             \x20 server {{\n    listen 80 backlog=4096;\n    \
             location / {{ default_type text/plain; return 200 \"rs{n}\\n\"; }}\n  }}\n}}\n"
        );
        let path = dir.join("nginx.conf");
        fs::write(&path, conf)?;
        let prefix = format!("{d}/");
        tb.spawn(
            Node::Rs(n),
            &[
                "nginx",
                "-p",
                &prefix,
                "-c",
                &path_str(path.clone()),
                "-e",
                "stderr",
            ],
        )
        .map_err(|e| anyhow!("{e}"))
    }

    // -------------------------------------------------------- contenders

    fn target(&self, c: Contender) -> Target {
        let vip: Ipv4Addr = VIP.parse().expect("VIP");
        let nat_rs = vec![
            (Node::Rs(1), "eth0"),
            (Node::Rs(2), "eth0"),
            (Node::Rs(3), "eth0"),
        ];
        let nat = |url: String, dst: Ipv4Addr| Target {
            url,
            client_dev: "eth0",
            src: CLIENT_IP.parse().expect("ip"),
            dst,
            dst_mac: (Node::Director, "eth0"),
            count: nat_rs.clone(),
        };
        let dr = |url: String, dst: Ipv4Addr| Target {
            url,
            client_dev: "eth0",
            src: DR_CLIENT_IP.parse().expect("ip"),
            dst,
            dst_mac: (Node::Router, "eth0"),
            count: nat_rs.clone(),
        };
        match c {
            Contender::Direct => Target {
                url: format!("http://{DIRECT_RS}/"),
                client_dev: DIRECT_DEV,
                src: DIRECT_CLIENT.parse().expect("ip"),
                dst: DIRECT_RS.parse().expect("ip"),
                dst_mac: (Node::Rs(1), DIRECT_DEV),
                count: vec![(Node::Rs(1), DIRECT_DEV)],
            },
            Contender::Fwd => nat(
                format!("http://{}/", rs_ip(1)),
                rs_ip(1).parse().expect("ip"),
            ),
            Contender::XdpDrop => Target {
                count: vec![(Node::Director, "eth0")],
                ..nat(String::new(), vip)
            },
            Contender::XdpTx => Target {
                count: vec![(Node::Client, "eth0")],
                ..nat(String::new(), vip)
            },
            Contender::DirectDr => dr(
                format!("http://{}/", dr_rs_ip(1)),
                dr_rs_ip(1).parse().expect("ip"),
            ),
            Contender::IpvsDr
            | Contender::IpvsTun
            | Contender::XvsDr
            | Contender::XvsDrXdp
            | Contender::XvsTun
            | Contender::XvsTunXdp => dr(format!("http://{VIP}/"), vip),
            _ => nat(format!("http://{VIP}/"), vip),
        }
    }

    fn run_contender(&mut self, c: Contender) {
        let active = match self.setup(c) {
            Ok(a) => a,
            Err(e) => {
                self.rep
                    .failures
                    .push(format!("{}: setup: {e:#}", c.name()));
                return;
            }
        };
        let mut workloads: Vec<&str> = Vec::new();
        if c.http() {
            workloads.extend(["ka", "close"]);
        }
        if c.udp() {
            workloads.extend(["udp1", "udpm"]);
        }
        for w in workloads {
            if interrupted() {
                break;
            }
            let r = match w {
                "ka" | "close" => self.http(c, w == "close"),
                _ => self.udp(c, w == "udpm"),
            };
            if let Err(e) = r {
                let msg = format!("{}: {w}: {e:#}", c.name());
                eprintln!("  FAILED {msg}");
                self.rep.failures.push(msg);
            }
        }
        if active.ipvs {
            let tb = self.bed(c.bed());
            if let Ok(out) = tb.exec_ok(
                Node::Director,
                &["ipvsadm", "-L", "-n", "--stats", "--exact"],
            ) {
                self.rep
                    .ipvs_stats
                    .insert(c.name().to_string(), ipvs_stats_line(&out));
            }
        }
        if let Some(x) = &active.xvsd {
            if let Ok(cnt) = xvsd_counters(&x.sock) {
                let nz: Vec<String> = cnt
                    .into_iter()
                    .filter(|(_, v)| *v > 0)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                self.rep
                    .xvs_counters
                    .insert(c.name().to_string(), nz.join(" "));
            }
        }
        if let Err(e) = self.teardown(c, active) {
            self.rep
                .failures
                .push(format!("{}: teardown: {e:#}", c.name()));
        }
    }

    fn setup(&mut self, c: Contender) -> Result<Active> {
        let bed = c.bed();
        let tb = self.bed(bed);
        let mut a = Active::default();
        let rs: Vec<String> = (1..=3u8).map(|n| tb.rs_addr(n)).collect();
        match c {
            Contender::Direct | Contender::Fwd | Contender::DirectDr => {}
            Contender::Nft => {
                let map = |_: ()| {
                    rs.iter()
                        .enumerate()
                        .map(|(i, r)| format!("{i} : {r}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let conf = format!(
                    "table ip xvsbench {{\n  chain pre {{\n    type nat hook prerouting priority dstnat; policy accept;\n    \
                     ip daddr {VIP} tcp dport 80 dnat to numgen inc mod 3 map {{ {m} }}\n    \
                     ip daddr {VIP} udp dport {UDP_PORT} dnat to numgen inc mod 3 map {{ {m} }}\n  }}\n}}\n",
                    m = map(())
                );
                let p = tb.run_dir().join("nft.conf");
                fs::write(&p, conf)?;
                tb.exec_ok(Node::Director, &["nft", "-f", &path_str(p)])
                    .map_err(|e| anyhow!("{e}"))?;
                a.nft = true;
            }
            Contender::Haproxy => {
                let servers: String = rs
                    .iter()
                    .enumerate()
                    .map(|(i, r)| format!("  server rs{} {r}:80\n", i + 1))
                    .collect();
                let conf = format!(
                    "global\n  maxconn 8000\n  nbthread 2\n\
                     defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
                     frontend fe\n  bind {VIP}:80 backlog 4096\n  default_backend be\n\
                     backend be\n  balance roundrobin\n{servers}"
                );
                let p = tb.run_dir().join("haproxy.cfg");
                fs::write(&p, conf)?;
                let pr = tb
                    .spawn(Node::Director, &["haproxy", "-f", &path_str(p), "-db"])
                    .map_err(|e| anyhow!("{e}"))?;
                a.procs.push(pr);
                wait_listen(tb, Node::Director, "t", 80)?;
            }
            Contender::Nginx => {
                let dir = tb.run_dir().join("nginx-dir");
                fs::create_dir_all(&dir)?;
                let d = dir.display();
                let up = |port: u16| -> String {
                    rs.iter()
                        .map(|r| format!("    server {r}:{port};\n"))
                        .collect()
                };
                let conf = format!(
                    "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n\
                     daemon off;\nmaster_process on;\nworker_processes 2;\npid {d}/nginx.pid;\n\
                     error_log stderr warn;\nworker_rlimit_nofile 200000;\n\
                     events {{ worker_connections 65536; }}\n\
                     stream {{\n  upstream http_rs {{\n{h}  }}\n  upstream udp_rs {{\n{u}  }}\n\
                     \x20 server {{ listen {VIP}:80 backlog=4096; proxy_pass http_rs; }}\n\
                     \x20 server {{ listen {VIP}:{UDP_PORT} udp; proxy_pass udp_rs; proxy_responses 0; proxy_timeout 1s; }}\n}}\n",
                    h = up(80),
                    u = up(UDP_PORT)
                );
                let p = dir.join("nginx.conf");
                fs::write(&p, conf)?;
                let prefix = format!("{d}/");
                let pr = tb
                    .spawn(
                        Node::Director,
                        &[
                            "nginx",
                            "-p",
                            &prefix,
                            "-c",
                            &path_str(p.clone()),
                            "-e",
                            "stderr",
                        ],
                    )
                    .map_err(|e| anyhow!("{e}"))?;
                a.procs.push(pr);
                wait_listen(tb, Node::Director, "t", 80)?;
                wait_listen(tb, Node::Director, "u", UDP_PORT)?;
            }
            Contender::XvsNat
            | Contender::XvsNatXdp
            | Contender::XvsNat1
            | Contender::XvsDr
            | Contender::XvsDrXdp
            | Contender::XvsTun
            | Contender::XvsTunXdp => {
                let (ifs, fwd) = match c {
                    Contender::XvsNat | Contender::XvsNatXdp | Contender::XvsNat1 => {
                        ("eth0,eth1", "-m")
                    }
                    Contender::XvsDr | Contender::XvsDrXdp => ("eth0", "-g"),
                    _ => ("eth0", "-i"),
                };
                let mode = match c {
                    Contender::XvsNatXdp | Contender::XvsDrXdp | Contender::XvsTunXdp => "xdp",
                    _ => "tc",
                };
                let x =
                    self.start_xvsd(bed, ifs, &["--conn-tab-size", "1048576", "--attach", mode])?;
                let tb = self.bed(bed);
                let dests = if c == Contender::XvsNat1 {
                    &rs[..1]
                } else {
                    &rs[..]
                };
                let setup = (|| -> Result<()> {
                    for (proto, port) in [("-t", 80u16), ("-u", UDP_PORT)] {
                        let svc = format!("{VIP}:{port}");
                        self.adm(&x.sock, &["-A", proto, &svc, "-s", "rr"])?;
                        for r in dests {
                            self.adm(
                                &x.sock,
                                &["-a", proto, &svc, "-r", &format!("{r}:{port}"), fwd],
                            )?;
                        }
                    }
                    // Resolve the real servers' neighbours before measuring
                    // (else the first packets take the kernel fallback).
                    for r in &rs {
                        let _ = tb.exec(Node::Director, &["ping", "-c", "1", "-W", "1", r]);
                    }
                    Ok(())
                })();
                a.xvsd = Some(x);
                setup?;
            }
            Contender::IpvsNat | Contender::IpvsDr | Contender::IpvsTun => {
                let fwd = match c {
                    Contender::IpvsNat => "-m",
                    Contender::IpvsDr => "-g",
                    _ => "-i",
                };
                // Loaded again when the last IPVS run unloaded it.
                ipvs_load().map_err(|e| anyhow!("{e}"))?;
                // The kernel's IPVS alone: nothing of xvs on the director.
                director_without_xvs(tb)?;
                // `-A -t VIP:80 -s rr`, `-a -t VIP:80 -r RS:80 -m|-g|-i` ×3,
                // and UDP likewise, restored by one ipvsadm: under
                // emulation every process start counts.
                let mut rules = String::new();
                for (proto, port) in [("-t", 80u16), ("-u", UDP_PORT)] {
                    let _ = writeln!(rules, "-A {proto} {VIP}:{port} -s rr");
                    for r in &rs {
                        let _ = writeln!(rules, "-a {proto} {VIP}:{port} -r {r}:{port} {fwd} -w 1");
                    }
                }
                let file = tb.run_dir().join(format!("{}.rules", c.name()));
                fs::write(&file, &rules)?;
                // LVS-NAT forwards the real servers' replies.
                let check_fwd = if c == Contender::IpvsNat {
                    "[ \"$(sysctl -n net.ipv4.ip_forward)\" = 1 ] || \
                     { echo 'net.ipv4.ip_forward is off in the director' >&2; exit 1; }\n"
                } else {
                    ""
                };
                let script = format!(
                    "{check_fwd}ipvsadm -C && ipvsadm -R < '{}' && ipvsadm -S -n",
                    file.display()
                );
                let r = tb
                    .exec_ok(Node::Director, &["sh", "-c", &script])
                    .map_err(|e| anyhow!("{e}"))
                    .and_then(|saved| {
                        let got = saved.lines().filter(|l| !l.trim().is_empty()).count();
                        if got != rules.lines().count() {
                            bail!("ipvsadm -S -n after -R:\n{saved}");
                        }
                        Ok(())
                    });
                if let Err(e) = r {
                    let _ = tb.exec(Node::Director, &["ipvsadm", "-C"]);
                    return Err(e);
                }
                a.ipvs = true;
                // Neighbours resolved before measuring, as for xvs.
                let pings = format!(
                    "for r in {}; do ping -c 1 -W 1 $r; done >/dev/null 2>&1; true",
                    rs.join(" ")
                );
                let _ = tb.exec(Node::Director, &["sh", "-c", &pings]);
            }
            Contender::XdpDrop => {
                tb.xdp_action(Node::Director, "eth0", XDP_DROP)
                    .map_err(|e| anyhow!("{e}"))?;
                a.xdp.push((Node::Director, "eth0"));
            }
            Contender::XdpTx => {
                // XDP_TX into a veth only delivers when the peer runs XDP
                // itself; the client drops the bounced frames there, where
                // they are counted.
                tb.xdp_action(Node::Client, "eth0", XDP_DROP)
                    .map_err(|e| anyhow!("{e}"))?;
                a.xdp.push((Node::Client, "eth0"));
                tb.xdp_action(Node::Director, "eth0", XDP_TX)
                    .map_err(|e| anyhow!("{e}"))?;
                a.xdp.push((Node::Director, "eth0"));
            }
        }
        Ok(a)
    }

    fn teardown(&mut self, c: Contender, a: Active) -> Result<()> {
        let tb = self.bed(c.bed());
        let mut errors = Vec::new();
        let mut unload_failed = None;
        for p in &a.procs {
            p.stop(Duration::from_secs(3));
        }
        if !a.procs.is_empty() {
            // nginx workers outlive a killed master; nothing else of ours
            // runs in the director.
            sweep_namespaces(&[tb.ns(Node::Director)]);
        }
        if a.nft {
            if let Err(e) = tb.exec_ok(
                Node::Director,
                &["nft", "delete", "table", "ip", "xvsbench"],
            ) {
                errors.push(e.to_string());
            }
        }
        if a.ipvs {
            // Cleared, and checked: the next contender runs without IPVS
            // services; then unloaded (when this run loaded it), which
            // drops its connection entries too.
            match tb.exec_ok(Node::Director, &["sh", "-c", "ipvsadm -C && ipvsadm -S -n"]) {
                Ok(left) if left.trim().is_empty() => {}
                Ok(left) => errors.push(format!("ipvsadm -C left: {}", left.trim())),
                Err(e) => errors.push(e.to_string()),
            }
            if self.ipvs_ours {
                unload_failed = ipvs_unload().err();
            }
        }
        if let Some(x) = a.xvsd {
            stop_xvsd(tb, x);
        }
        for (node, dev) in a.xdp {
            if let Err(e) = tb.xdp_off(node, dev) {
                errors.push(e.to_string());
            }
        }
        if let Some(e) = unload_failed {
            self.ipvs_ours = false;
            let note = format!(
                "`modprobe -r ip_vs` failed after a `{}` run ({e}): later IPVS runs can meet connection entries of earlier ones",
                c.name()
            );
            println!("  {note}");
            self.rep.notes.push(note);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("{}", errors.join("; "))
        }
    }

    fn start_xvsd(&mut self, bed: BedId, ifs: &str, extra: &[&str]) -> Result<Xvsd> {
        self.k += 1;
        let tb = self.bed(bed);
        let sock = path_str(tb.run_dir().join(format!("xvsd-{}.sock", self.k)));
        let pin = tb.bpffs().join(format!("xvs-{}", self.k));
        let mut argv = vec![
            self.bins.xvsd.as_str(),
            "--socket",
            &sock,
            "--interfaces",
            ifs,
        ];
        let pin_s = path_str(pin.clone());
        argv.extend(["--pin-path", &pin_s]);
        argv.extend_from_slice(extra);
        let p = tb
            .spawn(Node::Director, &argv)
            .map_err(|e| anyhow!("{e}"))?;
        let x = Xvsd {
            proc_: p,
            sock,
            pin,
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        // xvsd binds its socket before it loads the data plane: wait until
        // it answers a request, not just until the socket exists.
        while xvsd_counters(&x.sock).is_err() {
            if let Some(st) = x.proc_.try_wait() {
                let log = x.proc_.log();
                let _ = fs::remove_dir_all(&x.pin);
                bail!("xvsd exited ({st}):\n{}", tail(&log, 1500));
            }
            if Instant::now() > deadline || interrupted() {
                stop_xvsd(tb, x);
                bail!("xvsd's socket did not come up");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(x)
    }

    fn adm(&self, sock: &str, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.bins.xvsadm)
            .arg("--socket")
            .arg(sock)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running xvsadm")?;
        if !out.status.success() {
            bail!(
                "xvsadm {}: {}: {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    // --------------------------------------------------------- workloads

    fn http(&mut self, c: Contender, close: bool) -> Result<()> {
        let t = self.target(c);
        let tb = self.bed(c.bed());
        let d = self.cfg.duration;
        let limit = (d + 15).to_string();
        let dur = format!("{d}s");
        let conns = self.cfg.conns.to_string();
        let mut argv = vec![
            "timeout",
            "-k",
            "2",
            &limit,
            "wrk",
            "-t",
            "2",
            "-c",
            &conns,
            "-d",
            &dur,
            "--latency",
            "--timeout",
            "2s",
        ];
        if close {
            argv.extend(["-H", "Connection: close"]);
        }
        argv.push(&t.url);
        // Contenders that close at the client first (the proxies) leave
        // thousands of TIME_WAIT sockets there, and every later connect()
        // walks them: the next contender's conn/s collapsed whatever it was
        // (docs/benchmarks.md). Each run starts from a clean client.
        tb.exec_ok(Node::Client, &["ss", "-K", "-tn", "state", "time-wait"])
            .map_err(|e| anyhow!("clearing the client's TIME_WAIT sockets: {e}"))?;
        let cpu0 = sys::cpu_ticks();
        let out = tb.exec(Node::Client, &argv).map_err(|e| anyhow!("{e}"))?;
        let cpu1 = sys::cpu_ticks();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "wrk {}: {}{}",
                out.status,
                stdout,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let w = report::parse_wrk(&stdout).with_context(|| format!("wrk output:\n{stdout}"))?;
        if w.requests == 0 {
            bail!("wrk completed no request:\n{stdout}");
        }
        let cpu_s = (cpu1.0 - cpu0.0) as f64 / sys::clk_tck();
        let cpu_us = cpu_s * 1e6 / w.requests as f64;
        let (m, p, cpu, err) = if close {
            ("close_cps", "close_p99_ms", "close_cpu_us", "close_err")
        } else {
            ("ka_rps", "ka_p99_ms", "ka_cpu_us", "ka_err")
        };
        println!(
            "[{:6.1}s]   {:<5} {:>10.0} req/s  p99 {:>7.2} ms  {:>6.1} µs CPU/req  errors {}",
            since_start(),
            if close { "close" } else { "ka" },
            w.rps,
            w.p99_ms,
            cpu_us,
            w.errors
        );
        self.rep.add(c, m, w.rps);
        self.rep.add(c, p, w.p99_ms);
        self.rep.add(c, cpu, cpu_us);
        self.rep.add(c, err, w.errors as f64);
        Ok(())
    }

    fn udp(&mut self, c: Contender, many: bool) -> Result<()> {
        let t = self.target(c);
        let tb = self.bed(c.bed());
        let mac = |node: Node, dev: &str| -> Result<[u8; 6]> {
            let s = tb
                .exec_ok(node, &["cat", &format!("/sys/class/net/{dev}/address")])
                .map_err(|e| anyhow!("{e}"))?;
            frames::parse_mac(&s).with_context(|| format!("MAC of {dev} in {node}: {s:?}"))
        };
        let dst_mac = mac(t.dst_mac.0, t.dst_mac.1)?;
        let src_mac = mac(Node::Client, t.client_dev)?;
        let conf = frames::trafgen_udp(dst_mac, src_mac, t.src, t.dst, UDP_PORT, many);
        let conf_path = tb.run_dir().join(format!(
            "trafgen-{}-{}.cfg",
            c.name(),
            if many { "many" } else { "one" }
        ));
        fs::write(&conf_path, conf)?;
        let rx = |tb: &Testbed| -> Result<u64> {
            let mut s = 0;
            for (node, dev) in &t.count {
                s += tb
                    .if_stat(*node, dev, "rx_packets")
                    .map_err(|e| anyhow!("{e}"))?;
            }
            Ok(s)
        };
        // Sent: what the client's interface took, including what it had
        // to drop because the peer's queue was full.
        let tx = |tb: &Testbed| -> Result<u64> {
            let mut s = 0;
            for stat in ["tx_packets", "tx_dropped"] {
                s += tb
                    .if_stat(Node::Client, t.client_dev, stat)
                    .map_err(|e| anyhow!("{e}"))?;
            }
            Ok(s)
        };
        let d = Duration::from_secs(u64::from(self.cfg.duration));
        // Bounded twice: by count (4 Mpps for the whole duration) and by
        // `timeout`, which sends SIGINT to trafgen's whole process group
        // (trafgen forks its sender; a signal to the parent alone is not
        // passed on).
        let num = (4_000_000 * u64::from(self.cfg.duration)).to_string();
        let secs_s = self.cfg.duration.to_string();
        let (rx0, tx0) = (rx(tb)?, tx(tb)?);
        let cpu0 = sys::cpu_ticks();
        let t0 = Instant::now();
        let p = tb
            .spawn(
                Node::Client,
                &[
                    "timeout",
                    "-s",
                    "INT",
                    "-k",
                    "2",
                    &secs_s,
                    "trafgen",
                    "--dev",
                    t.client_dev,
                    "--conf",
                    &path_str(conf_path),
                    "--cpus",
                    "1",
                    "--num",
                    &num,
                    "--no-sock-mem",
                    "--notouch-irq",
                ],
            )
            .map_err(|e| anyhow!("{e}"))?;
        let mut status = None;
        while t0.elapsed() < d + Duration::from_secs(4) {
            if interrupted() {
                break;
            }
            if let Some(st) = p.try_wait() {
                status = Some(st);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if status.is_none() {
            p.stop(Duration::from_secs(1));
        }
        let secs = t0.elapsed().as_secs_f64();
        let early = match status {
            Some(st) if secs + 0.2 < d.as_secs_f64() => Some(st),
            _ => None,
        };
        let cpu1 = sys::cpu_ticks();
        std::thread::sleep(Duration::from_millis(300));
        let (rx1, tx1) = (rx(tb)?, tx(tb)?);
        if let Some(st) = early {
            bail!("trafgen ended early ({st}):\n{}", tail(&p.log(), 1500));
        }
        check_interrupt()?;
        let got = rx1.saturating_sub(rx0);
        let sent = tx1.saturating_sub(tx0);
        if sent == 0 {
            bail!("trafgen sent nothing:\n{}", tail(&p.log(), 1500));
        }
        let pps = got as f64 / secs;
        let loss = 100.0 * (1.0 - (got as f64 / sent as f64).min(1.0));
        let cpu_us = if got > 0 {
            (cpu1.0 - cpu0.0) as f64 / sys::clk_tck() * 1e6 / got as f64
        } else {
            f64::NAN
        };
        let k = if many { "udpm" } else { "udp1" };
        println!(
            "[{:6.1}s]   {k:<5} {pps:>10.0} pkt/s counted ({got} of {sent} sent, {loss:.1} % lost)  {cpu_us:>6.2} µs CPU/pkt",
            since_start()
        );
        self.rep.add(c, &format!("{k}_pps"), pps);
        self.rep.add(c, &format!("{k}_loss"), loss);
        if cpu_us.is_finite() {
            self.rep.add(c, &format!("{k}_cpu_us"), cpu_us);
        }
        Ok(())
    }

    // ---------------------------------------------------- data-plane cost

    /// Both programs, one xvsd each (`--attach xdp`, then `--attach tc`:
    /// an xvsd loads only the one it attaches). A failed pass is recorded
    /// and the other still runs.
    fn dp_cost(&mut self) -> Result<()> {
        let (fills, calls, cap): (&[u64], u32, u64) = if self.cfg.smoke {
            (&[0, 10_000, 100_000], 2_000, 262_144)
        } else {
            (&[0, 1_000_000, 10_000_000], 20_000, 10_500_000)
        };
        let cap_s = cap.to_string();
        let mut errors = Vec::new();
        for prog in [Prog::Xdp, Prog::Tc] {
            check_interrupt()?;
            println!("-- {} (xvsd --attach {})", prog.name(), prog.attach());
            let r = self
                .start_xvsd(
                    BedId::Nat,
                    "eth0,eth1",
                    &["--conn-tab-size", &cap_s, "--attach", prog.attach()],
                )
                .and_then(|x| {
                    let r = self.dp_cost_with(&x, prog, fills, calls);
                    let tb = self.bed(BedId::Nat);
                    stop_xvsd(tb, x);
                    r
                });
            if let Err(e) = r {
                errors.push(format!("{}: {e:#}", prog.name()));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("{}", errors.join("; "))
        }
    }

    fn dp_cost_with(&mut self, x: &Xvsd, prog: Prog, fills: &[u64], calls: u32) -> Result<()> {
        let rs: Vec<String> = (1..=3u8).map(rs_ip).collect();
        for (port, fwd) in [(NAT_PORT, "-m"), (DR_PORT, "-g"), (TUN_PORT, "-i")] {
            let svc = format!("{VIP}:{port}");
            self.adm(&x.sock, &["-A", "-t", &svc, "-s", "rr"])?;
            for r in &rs {
                self.adm(
                    &x.sock,
                    &["-a", "-t", &svc, "-r", &format!("{r}:{port}"), fwd],
                )?;
            }
        }
        let tb = self.bed(BedId::Nat);
        // Neighbours of the real servers and of the client (NAT replies).
        for r in rs.iter().map(String::as_str).chain([CLIENT_IP]) {
            let _ = tb.exec(Node::Director, &["ping", "-c", "1", "-W", "1", r]);
        }
        let go = tb.run_dir().join("dp-go");
        let _ = fs::remove_file(&go);
        let fills_s = fills
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let helper = tb
            .spawn(
                Node::Director,
                &[
                    &self.bins.me,
                    "dp-cost",
                    "--prog",
                    prog.name(),
                    "--pin",
                    &path_str(x.pin.clone()),
                    "--go",
                    &path_str(go.clone()),
                    "--fills",
                    &fills_s,
                    "--calls",
                    &calls.to_string(),
                ],
            )
            .map_err(|e| anyhow!("{e}"))?;
        let r = (|| -> Result<()> {
            helper
                .wait_for_log("READY", Duration::from_secs(30))
                .map_err(|e| anyhow!("{e}"))?;
            // Stop xvsd's expiry walk: the helper holds program and maps.
            x.proc_.stop(Duration::from_secs(5));
            fs::write(&go, b"go")?;
            let deadline = Instant::now() + Duration::from_secs(600);
            loop {
                if let Some(st) = helper.try_wait() {
                    if !st.success() {
                        bail!("dp-cost helper: {st}:\n{}", tail(&helper.log(), 2000));
                    }
                    break;
                }
                check_interrupt()?;
                if Instant::now() > deadline {
                    bail!("dp-cost helper did not finish in 600 s");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        })();
        helper.stop(Duration::from_secs(2));
        let log = helper.log();
        print!("{log}");
        r?;
        self.rep.parse_dp_cost(&log);
        Ok(())
    }

    // ----------------------------------------------------- scale of state

    fn restore_bench(&mut self) -> Result<()> {
        let services: u32 = if self.cfg.smoke { 200 } else { 10_000 };
        let dests = 10u32;
        let mut rules = String::new();
        for s in 0..services {
            let port = 10_000 + s;
            let _ = writeln!(rules, "-A -t {VIP}:{port} -s rr");
            for d in 0..dests {
                let _ = writeln!(
                    rules,
                    "-a -t {VIP}:{port} -r 203.0.113.{}:{port} -m -w 1",
                    11 + d
                );
            }
        }
        let lines = rules.lines().count();
        let tb = self.bed(BedId::Nat);
        let file = tb.run_dir().join("restore.rules");
        fs::write(&file, &rules)?;
        let ms = (services + 1024).to_string();
        let md = (services * dests + 4096).to_string();
        let x = self.start_xvsd(
            BedId::Nat,
            "eth0,eth1",
            &[
                "--max-services",
                &ms,
                "--max-dests",
                &md,
                "--conn-tab-size",
                "65536",
            ],
        )?;
        let r = (|| -> Result<()> {
            let t0 = Instant::now();
            let out = Command::new(&self.bins.xvsadm)
                .args(["--socket", &x.sock, "-R"])
                .stdin(fs::File::open(&file)?)
                .output()?;
            let restore = t0.elapsed().as_secs_f64();
            if !out.status.success() {
                bail!(
                    "xvsadm -R: {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let saved = self.adm(&x.sock, &["-S", "-n"])?;
            let got = saved.lines().filter(|l| !l.trim().is_empty()).count();
            if got != lines {
                bail!("after -R of {lines} lines, -S -n lists {got}");
            }
            let mid = 10_000 + services / 2;
            let mut edits = Vec::new();
            for i in 0..3 {
                let t0 = Instant::now();
                self.adm(
                    &x.sock,
                    &[
                        "-e",
                        "-t",
                        &format!("{VIP}:{mid}"),
                        "-r",
                        &format!("203.0.113.12:{mid}"),
                        "-m",
                        "-w",
                        &(2 + i % 2).to_string(),
                    ],
                )?;
                edits.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            edits.sort_by(f64::total_cmp);
            println!(
                "  xvsadm -R of {lines} lines ({services} services × {dests} dests): {restore:.3} s; -e: {:.1} ms (median of 3)",
                edits[1]
            );
            self.rep.restore = Some((services, dests, lines, restore, edits[1]));
            let pct = self.xvsd_cpu(&x)?;
            println!(
                "  xvsd CPU, idle with {services} services × {dests} dests: {pct:.1} % of one CPU"
            );
            self.rep
                .housekeeping
                .push((format!("{services} services × {dests} dests"), pct));
            Ok(())
        })();
        let tb = self.bed(BedId::Nat);
        stop_xvsd(tb, x);
        r
    }

    /// xvsd's CPU (user + system, % of one CPU) over a quiet window:
    /// what its timers cost for the state it holds.
    fn xvsd_cpu(&self, x: &Xvsd) -> Result<f64> {
        let secs = if self.cfg.smoke { 2 } else { 10 };
        let pid = x.proc_.pid();
        let t0 = sys::proc_cpu_ticks(pid)?;
        let w0 = Instant::now();
        std::thread::sleep(Duration::from_secs(secs));
        let t1 = sys::proc_cpu_ticks(pid)?;
        let wall = w0.elapsed().as_secs_f64();
        Ok((t1 - t0) as f64 / sys::clk_tck() / wall * 100.0)
    }

    /// xvsd holding many NAT connections, no traffic: its once-a-second
    /// expiry walk reads the whole table. The connections are synthetic
    /// (written into the pinned `CONN_MAP`), established and fresh, so the
    /// walk reads them all and expires none.
    fn expiry_bench(&mut self) -> Result<()> {
        let conns: u32 = if self.cfg.smoke { 20_000 } else { 500_000 };
        let cap = (2 * conns).next_power_of_two().max(1 << 20).to_string();
        let x = self.start_xvsd(BedId::Nat, "eth0,eth1", &["--conn-tab-size", &cap])?;
        let r = (|| -> Result<()> {
            let svc = format!("{VIP}:80");
            self.adm(&x.sock, &["-A", "-t", &svc, "-s", "rr"])?;
            for r in (1..=3u8).map(rs_ip) {
                self.adm(&x.sock, &["-a", "-t", &svc, "-r", &format!("{r}:80"), "-m"])?;
            }
            let map = sys::obj_get(&x.pin.join("CONN_MAP")).context("opening CONN_MAP")?;
            dpcost::fill_nat_conns(&map, conns)?;
            let listed = self.adm(&x.sock, &["-L", "-n", "-c"])?.lines().count();
            if listed < conns as usize {
                bail!("-Lnc lists {listed} lines after writing {conns} connections");
            }
            let pct = self.xvsd_cpu(&x)?;
            println!("  xvsd CPU, idle with {conns} NAT connections: {pct:.1} % of one CPU");
            self.rep.housekeeping.push((
                format!("{conns} NAT connections ({} entries)", 2 * conns),
                pct,
            ));
            Ok(())
        })();
        let tb = self.bed(BedId::Nat);
        stop_xvsd(tb, x);
        r
    }

    fn largest_conn_tab(&mut self) -> Result<()> {
        // Bytes per entry from the data-plane run, else a conservative guess.
        let per = self
            .rep
            .mem
            .map(|m| m.memlock as f64 / m.max_entries as f64);
        let per = per.unwrap_or(160.0);
        let mut largest = None;
        let stop_reason: String;
        let mut n: u64 = 16 << 20;
        loop {
            check_interrupt()?;
            if n > u64::from(u32::MAX) {
                stop_reason = "next size exceeds the 32-bit `--conn-tab-size`".into();
                break;
            }
            let avail = report::mem_available();
            let need = per * n as f64;
            if need > 0.6 * avail as f64 {
                stop_reason = format!(
                    "{} entries not tried: ≈{:.1} GiB > 60 % of MemAvailable ({:.1} GiB) — a guard, so the benchmark never pushes this shared machine into the OOM killer",
                    n,
                    need / f64::from(1u32 << 30),
                    avail as f64 / f64::from(1u32 << 30)
                );
                break;
            }
            let s = n.to_string();
            let t0 = Instant::now();
            match self.start_xvsd(BedId::Nat, "eth0,eth1", &["--conn-tab-size", &s]) {
                Ok(x) => {
                    let secs = t0.elapsed().as_secs_f64();
                    // Check what the kernel really holds: the pinned map.
                    let got = sys::obj_get(&x.pin.join("CONN_MAP")).and_then(|fd| {
                        let mi = sys::map_info(&fd)?;
                        Ok((
                            mi.max_entries,
                            sys::fdinfo_field(&fd, "memlock").unwrap_or(0),
                        ))
                    });
                    let tb = self.bed(BedId::Nat);
                    stop_xvsd(tb, x);
                    match got {
                        Ok((entries, memlock)) if u64::from(entries) == n => {
                            println!(
                                "  --conn-tab-size {n}: accepted, serving after {secs:.1} s, CONN_MAP memlock {:.2} GiB",
                                memlock as f64 / f64::from(1u32 << 30)
                            );
                            largest = Some((n, secs, memlock));
                        }
                        Ok((entries, _)) => {
                            stop_reason =
                                format!("{n} entries: xvsd came up with a CONN_MAP of {entries}");
                            break;
                        }
                        Err(e) => {
                            stop_reason =
                                format!("{n} entries: cannot inspect the pinned CONN_MAP: {e}");
                            break;
                        }
                    }
                }
                Err(e) => {
                    println!("  --conn-tab-size {n}: refused: {e:#}");
                    stop_reason = format!("{n} entries refused: {}", first_line(&format!("{e:#}")));
                    break;
                }
            }
            n *= 2;
        }
        self.rep.largest_conn_tab = Some(match largest {
            Some((n, secs, memlock)) => format!(
                "**{n} entries** (`CONN_MAP` memlock {:.2} GiB; xvsd serving after {secs:.1} s); {stop_reason}",
                memlock as f64 / f64::from(1u32 << 30)
            ),
            None => format!("none of the sizes tried was accepted; {stop_reason}"),
        });
        Ok(())
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

/// Stop xvsd (SIGTERM: it detaches), make sure no XDP program stays on the
/// director, remove its pins.
fn stop_xvsd(tb: &Testbed, x: Xvsd) {
    x.proc_.stop(Duration::from_secs(5));
    for dev in ["eth0", "eth1"] {
        let _ = tb.exec(
            Node::Director,
            &["ip", "link", "set", "dev", dev, "xdp", "off"],
        );
    }
    let _ = fs::remove_dir_all(&x.pin);
    let _ = fs::remove_file(&x.sock);
    let _ = fs::remove_file(format!("{}.state", x.sock));
}

/// `sh -c cmd` in the root namespace: success, and the last line it said.
fn run_sh(cmd: &str) -> (bool, String) {
    match Command::new("sh")
        .args(["-c", cmd])
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) => {
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            (o.status.success(), first_line(&text))
        }
        Err(e) => (false, e.to_string()),
    }
}

/// Load the kernel's IPVS: `ip_vs` with a 2^20-bucket connection table
/// (the size of xvs's `--conn-tab-size 1048576`; the module's default is
/// 2^12) and `ip_vs_rr`. A no-op when they are loaded.
fn ipvs_load() -> std::result::Result<(), String> {
    let (ok, msg) = run_sh("modprobe ip_vs conn_tab_bits=20");
    if !ok || !std::path::Path::new("/proc/net/ip_vs").exists() {
        return Err(format!(
            "no IPVS in this kernel (`modprobe ip_vs`: {})",
            if msg.is_empty() {
                "no /proc/net/ip_vs"
            } else {
                &msg
            }
        ));
    }
    let (ok, msg) = run_sh("modprobe ip_vs_rr");
    if !ok {
        return Err(format!(
            "no IPVS round-robin scheduler in this kernel (`modprobe ip_vs_rr`: {msg})"
        ));
    }
    Ok(())
}

/// Unload IPVS, which drops its connection entries in every namespace:
/// `ipvsadm -C` keeps them (and gives them back their real servers when
/// the same ones are added again), and nothing else removes them.
fn ipvs_unload() -> std::result::Result<(), String> {
    match run_sh("modprobe -r ip_vs_rr ip_vs") {
        (true, _) => Ok(()),
        (false, msg) => Err(msg),
    }
}

/// Whether the kernel's IPVS can run here, loading it: what it is and
/// whether this run loaded it (and so may reload it), or why not.
fn ipvs_probe() -> std::result::Result<(String, bool), String> {
    if !run_sh("command -v ipvsadm").0 {
        return Err("`ipvsadm` is missing (Debian package `ipvsadm`)".into());
    }
    // Loaded before us (or built in): someone else's, never unloaded.
    let ours = !std::path::Path::new("/sys/module/ip_vs").exists();
    ipvs_load()?;
    let bits = fs::read_to_string("/sys/module/ip_vs/parameters/conn_tab_bits")
        .map(|b| b.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let (_, version) = run_sh("ipvsadm --version");
    let fresh = if ours {
        "; `ip_vs` unloaded after every IPVS run and loaded again before the next, so each \
         starts with an empty connection table, as each xvs run starts a fresh xvsd"
    } else {
        "; `ip_vs` was loaded before this run, so it is not reloaded between runs: later \
         rounds can meet connection entries of earlier ones"
    };
    Ok((
        format!(
            "kernel {}, `{}`, connection table 2^{bits} buckets (`ip_vs conn_tab_bits`), \
             defaults otherwise (`conntrack=0`, `conn_reuse_mode=1`){fresh}",
            run_sh("uname -r").1,
            version.trim()
        ),
        ours,
    ))
}

/// Make sure nothing of xvs handles the director's packets: no xvsd in
/// its namespace, no XDP program and no tc ingress filter on its devices.
fn director_without_xvs(tb: &Testbed) -> Result<()> {
    let ns = tb.ns(Node::Director);
    let pids = Command::new("ip")
        .args(["netns", "pids", &ns])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for pid in pids.split_whitespace() {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "xvsd" {
            bail!("xvsd (PID {pid}) still runs in the director");
        }
    }
    // One process in the director (the DR director has only eth0).
    let script = "for d in eth0 eth1; do\n\
         \x20 [ -e /sys/class/net/$d ] || continue\n\
         \x20 ip link show dev $d | grep -q prog/xdp && echo \"an XDP program on $d\"\n\
         \x20 f=$(tc filter show dev $d ingress 2>/dev/null | head -n 1)\n\
         \x20 [ -z \"$f\" ] || echo \"a tc ingress filter on $d: $f\"\n\
         done; true";
    let found = tb
        .exec_ok(Node::Director, &["sh", "-c", script])
        .map_err(|e| anyhow!("{e}"))?;
    if !found.trim().is_empty() {
        bail!(
            "the director still has xvs attached: {}",
            found.trim().replace('\n', "; ")
        );
    }
    Ok(())
}

/// `ipvsadm -L -n --stats --exact` as one line per service: what went
/// through IPVS (Conns, InPkts, OutPkts; OutPkts stays 0 with DR and TUN).
fn ipvs_stats_line(out: &str) -> String {
    out.lines()
        .filter(|l| l.starts_with("TCP") || l.starts_with("UDP"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 5).then(|| {
                format!(
                    "{} {}: conns={} inpkts={} outpkts={}",
                    f[0], f[1], f[2], f[3], f[4]
                )
            })
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Wait until something listens on `port` (`proto` "t" or "u") in `node`.
fn wait_listen(tb: &Testbed, node: Node, proto: &str, port: u16) -> Result<()> {
    // Generous: under emulation (`cargo xtask bench --vm`) a server can
    // take well over 10 s to come up.
    let wait = Duration::from_secs(60);
    let deadline = Instant::now() + wait;
    let flags = format!("-Hln{proto}");
    let filter = format!("sport = :{port}");
    loop {
        let out = tb
            .exec_ok(node, &["ss", &flags, &filter])
            .map_err(|e| anyhow!("{e}"))?;
        if !out.trim().is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let logs: String = tb
                .procs()
                .iter()
                .filter(|p| p.label().starts_with(&node.suffix()))
                .map(|p| format!("--- {}:\n{}", p.label(), tail(&p.log(), 800)))
                .collect();
            bail!(
                "nothing listens on {proto} port {port} in {node} after {} s\n{logs}",
                wait.as_secs()
            );
        }
        check_interrupt()?;
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The data plane's counters, from xvsd's `info` request.
fn xvsd_counters(sock: &str) -> Result<BTreeMap<String, u64>> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"{\"op\":\"info\"}\n")?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    xvs_testbed::harness::parse_counters(&line).context("no counters in info")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipvs_contenders() {
        for (n, bed) in [
            ("ipvs-nat", BedId::Nat),
            ("ipvs-dr", BedId::Dr),
            ("ipvs-tun", BedId::Tun),
        ] {
            let c = Contender::by_name(n).unwrap();
            assert!(c.ipvs() && c.http() && c.udp(), "{n}");
            assert_eq!(c.bed(), bed, "{n}");
        }
        assert_eq!(ALL.iter().filter(|c| c.ipvs()).count(), 3);
        let mut names: Vec<&str> = ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }

    #[test]
    fn ipvs_stats() {
        let out = "IP Virtual Server version 1.2.1 (size=1048576)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  198.51.100.10:80                  912     5472        0   331416        0
  -> 198.51.100.11:80                  304     1824        0   110472        0
UDP  198.51.100.10:9                     2    41000        0  1148000        0
  -> 198.51.100.11:9                     1    20500        0   574000        0
";
        assert_eq!(
            ipvs_stats_line(out),
            "TCP 198.51.100.10:80: conns=912 inpkts=5472 outpkts=0; \
             UDP 198.51.100.10:9: conns=2 inpkts=41000 outpkts=0"
        );
    }
}
