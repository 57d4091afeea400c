//! `xvs-bench dp-cost`: the data plane's cost per packet, run inside the
//! director's namespace on the program and maps the real `xvsd` loaded.
//!
//! The parent starts `xvsd --attach xdp` or `--attach tc` (pinned maps;
//! one xvsd loads only the program it attaches, so each program is its own
//! pass), configures a NAT (`VIP:80`), a DR (`VIP:81`) and a TUN (`VIP:82`)
//! service with three real servers each, and starts this helper with
//! `--prog xvs_xdp` or `--prog xvs_tc`. The helper finds that program by
//! the id of the pinned `CONN_MAP`, holds it open and prints `READY`; the
//! parent stops `xvsd` (so its once-a-second expiry walk neither deletes
//! the synthetic entries nor competes for the CPU) and creates the go file.
//!
//! `xvs_xdp` runs with a `struct xdp_md` context, `xvs_tc` with a
//! `struct __sk_buff` one (ingress device and `ifindex` set; the whole
//! context comes back so `cb[0]`, where `xvs_tc` notes the egress device,
//! tells TX from REDIRECT). The baseline is a two-instruction program of
//! the same type returning "pass" (`XDP_PASS`, `TC_ACT_OK`), measured the
//! same way as each row (same `repeat`, or the same slope) and subtracted
//! in the report.
//!
//! Most rows: every packet is one call with `repeat = 1` on a fresh copy
//! of its frame, each packet of a kind of a different connection (the
//! lookups touch different table buckets, as real traffic does); the
//! kernel-measured duration of that run (`ktime` around the program only)
//! is recorded and the median reported (the mean too). "NAT established,
//! one connection" is the same but always the same connection's ACK (its
//! bucket and entry stay cached: the program's own cost).
//!
//! When `repeat` is valid: `BPF_PROG_TEST_RUN` with `repeat` = N runs the
//! program N times on the frame the previous run left behind (the kernel
//! restores neither the XDP buffer nor the skb; live-frames mode only
//! resets the pointers) and reports the mean. That measures one path only
//! if every run leaves a frame that takes the same path again. A NAT
//! rewrite does not (the second run sees a packet addressed to the real
//! server and misses), nor does an encapsulation (the frame grows by one
//! outer header per run, until `bpf_xdp_adjust_head` runs out of
//! headroom), nor a SYN (the second one finds its connection: no longer a
//! new flow). An established DR packet does: DR rewrites only the
//! Ethernet addresses (to the same real-server MAC every run) and
//! decrements the IPv4 TTL, and the packet stays addressed to the VIP and
//! finds the same connection. So the "DR established, `repeat`" row runs
//! one established DR connection's ACK, sent with TTL 255, `DR_REPEAT`
//! (200) times per call, `DR_REPEAT_CALLS` calls, median, minus the
//! baseline at the same `repeat`. TTL 255 leaves room for the 200
//! decrements (the program hands a TTL ≤ 1 to the kernel); the TTL that
//! comes out (255 − 200 = 55) proves that every run forwarded it, and is
//! reported with the verdict of the last run. Two more rows put that in
//! perspective: "DR established, one connection" is the same frame with
//! `repeat = 1` (fresh copy each call), and the slope row runs it in pairs
//! of calls with `repeat` 50 and 250 (`DR_SLOPE`) and reports the median of
//! `(250·t₂₅₀ − 50·t₅₀)/200`, the cost of one more run. `repeat` N only
//! divides a fixed cost per call by N, and there is one for XDP: before a
//! call with `repeat` > 1 the kernel switches the XDP dispatcher to the
//! program (`bpf_prog_change_xdp`: text patching, then `synchronize_rcu`,
//! which the caller sleeps through while the CPU runs other work), so the
//! timed loop starts with cold caches — `xvs_xdp` at `repeat` 20 measured
//! ≈ 450 ns per run against ≈ 130 ns at `repeat` 1 (tc has no such step).
//! The slope cancels it; the baselines are measured each way too.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xvs_testbed::{CLIENT_IP, VIP};

use crate::frames;
use crate::sys;

mod fill;
mod rows;
mod runner;

use fill::fill;
pub use fill::fill_nat_conns;
use rows::Wire;
use runner::Runner;

pub const NAT_PORT: u16 = 80;
pub const DR_PORT: u16 = 81;
pub const TUN_PORT: u16 = 82;

/// `repeat` of the DR row run with `repeat` (see the module docs).
pub const DR_REPEAT: u32 = 200;
/// The two `repeat` values of the DR slope row: the per-run cost is
/// `(hi·t_hi − lo·t_lo) / (hi − lo)`, free of any fixed cost per call.
pub const DR_SLOPE: (u32, u32) = (50, 250);
/// Calls of those rows (and of their baselines); the median is reported.
pub const DR_REPEAT_CALLS: u32 = 100;
/// IPv4 TTL of those rows' frame: enough for 250 decrements (the program
/// passes a packet with TTL ≤ 1 to the kernel).
const DR_REPEAT_TTL: u8 = 255;

/// Which of xvsd's programs is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prog {
    /// `xvs_xdp` (`xvsd --attach xdp`), `struct xdp_md` context.
    Xdp,
    /// `xvs_tc` (`xvsd --attach tc`), tc clsact ingress, `struct __sk_buff`.
    Tc,
}

impl Prog {
    pub fn name(self) -> &'static str {
        match self {
            Prog::Xdp => "xvs_xdp",
            Prog::Tc => "xvs_tc",
        }
    }

    /// `xvsd --attach` value that makes xvsd load this program.
    pub fn attach(self) -> &'static str {
        match self {
            Prog::Xdp => "xdp",
            Prog::Tc => "tc",
        }
    }

    fn parse(s: &str) -> Result<Prog> {
        match s {
            "xvs_xdp" => Ok(Prog::Xdp),
            "xvs_tc" => Ok(Prog::Tc),
            o => bail!("--prog {o:?}: xvs_xdp or xvs_tc"),
        }
    }
}

struct Args {
    pin: PathBuf,
    go: PathBuf,
    prog: Prog,
    fills: Vec<u64>,
    calls: u32,
}

fn parse(args: &[String]) -> Result<Args> {
    let mut a = Args {
        pin: PathBuf::new(),
        go: PathBuf::new(),
        prog: Prog::Xdp,
        fills: vec![0],
        calls: 1000,
    };
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--pin" => a.pin = v()?.into(),
            "--go" => a.go = v()?.into(),
            "--prog" => a.prog = Prog::parse(v()?)?,
            "--fills" => {
                a.fills = v()?
                    .split(',')
                    .map(|x| x.parse().context("--fills: numbers"))
                    .collect::<Result<_>>()?
            }
            "--calls" => a.calls = v()?.parse()?,
            o => bail!("dp-cost: unknown option {o}"),
        }
    }
    if a.pin.as_os_str().is_empty() || a.go.as_os_str().is_empty() {
        bail!("dp-cost needs --pin and --go");
    }
    Ok(a)
}

fn sysfs(dev: &str, what: &str) -> Result<String> {
    let p = format!("/sys/class/net/{dev}/{what}");
    Ok(std::fs::read_to_string(&p)
        .with_context(|| format!("reading {p}"))?
        .trim()
        .to_string())
}

pub fn main(args: &[String]) -> Result<()> {
    let a = parse(args)?;
    let name = a.prog.name();
    let conn = sys::obj_get(&a.pin.join("CONN_MAP"))
        .with_context(|| format!("opening {}/CONN_MAP", a.pin.display()))?;
    let mi = sys::map_info(&conn)?;
    let prog = sys::find_prog(name, mi.id).with_context(|| format!("finding xvsd's {name}"))?;
    println!(
        "MEM key_size={} value_size={} max_entries={} memlock={}",
        mi.key_size,
        mi.value_size,
        mi.max_entries,
        sys::fdinfo_field(&conn, "memlock").unwrap_or(0)
    );
    println!("READY");
    std::io::stdout().flush()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !a.go.exists() {
        if Instant::now() > deadline {
            bail!("no go file {} within 120 s", a.go.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let w = Wire {
        eth0: sysfs("eth0", "ifindex")?.parse()?,
        eth1: sysfs("eth1", "ifindex")?.parse()?,
        mac0: frames::parse_mac(&sysfs("eth0", "address")?).context("eth0 MAC")?,
        mac1: frames::parse_mac(&sysfs("eth1", "address")?).context("eth1 MAC")?,
        peer: [0x02, 0, 0, 0, 0, 0x42],
        vip: VIP.parse()?,
        // Every packet is from the real client address (its neighbour entry
        // is resolved, so NAT replies can be forwarded).
        client: CLIENT_IP.parse()?,
    };
    let n = a.calls;
    rows::baseline(a.prog, &w, n)?;

    let mut r = Runner {
        prog,
        kind: a.prog,
        out: vec![0; 512],
    };
    // A source port of its own per packet: `n` ports per table size, shared
    // by the NAT, DR and TUN services (different virtual ports, so
    // different connections).
    let mut next_port = 1024u32;
    let mut filled = 0u64;
    for &level in &a.fills {
        if level > filled {
            let t = Instant::now();
            fill(&conn, &mi, filled, level)?;
            println!(
                "FILL prog={name} entries={level} secs={:.2}",
                t.elapsed().as_secs_f64()
            );
            filled = level;
        }
        if next_port + n > 65536 {
            bail!(
                "--calls {n} × {} table sizes: more than 64 512 source ports",
                a.fills.len()
            );
        }
        let ports: Vec<u16> = (next_port..next_port + n).map(|p| p as u16).collect();
        next_port += n;
        rows::level(&mut r, &w, name, n, level, &ports)?;
    }
    println!("DONE");
    Ok(())
}
