//! The benchmark run: testbeds, contenders, workloads, data-plane cost and
//! scale of state. Traffic only flows between the namespaces created here;
//! every generator is bounded in count and time; every process is tracked
//! by PID and every namespace removed at the end, also on error or Ctrl-C.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use xvs_testbed::{bin, interrupted, Node, Proc, Testbed};

use crate::report::{self, Report};

mod beds;
mod contender;
mod probes;
mod scale;
mod setup;
mod workload;

use contender::BedId;
pub use contender::{Contender, ALL};
use probes::{ipvs_probe, sweep_namespaces};

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
}
