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

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xvs_testbed::{rs_ip, CLIENT_IP, VIP};

use crate::frames::{self, TCP_ACK, TCP_SYN};
use crate::sys;

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

fn xdp_verdict(v: u32) -> String {
    match v {
        0 => "ABORTED".into(),
        1 => "DROP".into(),
        2 => "PASS".into(),
        3 => "TX".into(),
        4 => "REDIRECT".into(),
        o => format!("XDP_{o}"),
    }
}

/// A tc verdict in the XDP vocabulary of the report: `TC_ACT_OK` is PASS,
/// `TC_ACT_SHOT` DROP, `TC_ACT_REDIRECT` TX when the program sent the
/// frame back out of the ingress device (`cb[0]`, see `act_redirect` in
/// xvs.bpf.c), else REDIRECT.
fn tc_verdict(v: u32, cb0: u32, ingress: u32) -> String {
    match v {
        0 => "PASS".into(),
        2 => "DROP".into(),
        7 if cb0 == ingress => "TX".into(),
        7 => "REDIRECT".into(),
        o => format!("TC_ACT_{o}"),
    }
}

struct Runner {
    prog: OwnedFd,
    kind: Prog,
    out: Vec<u8>,
}

#[derive(Default)]
struct Acc {
    /// ns per program run, one value per call (per pair of calls for a
    /// slope).
    ns: Vec<f64>,
    verdicts: BTreeMap<String, u64>,
    /// IPv4 TTL of the output frames (the repeat rows).
    ttls: BTreeMap<u8, u32>,
}

impl Acc {
    fn mean(&self) -> f64 {
        if self.ns.is_empty() {
            0.0
        } else {
            self.ns.iter().sum::<f64>() / self.ns.len() as f64
        }
    }
    /// The median: robust against the odd run hit by an interrupt (the
    /// machine is shared).
    fn median(&self) -> f64 {
        let mut v = self.ns.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => 0.0,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    /// ` ttl_in=255 ttl_out=55:100` when output TTLs were recorded.
    fn ttls(&self) -> String {
        if self.ttls.is_empty() {
            return String::new();
        }
        let out = self
            .ttls
            .iter()
            .map(|(t, c)| format!("{t}:{c}"))
            .collect::<Vec<_>>()
            .join("/");
        format!(" ttl_in={DR_REPEAT_TTL} ttl_out={out}")
    }
    fn verdicts(&self) -> String {
        self.verdicts
            .iter()
            .map(|(v, n)| format!("{v}:{n}"))
            .collect::<Vec<_>>()
            .join("/")
    }
}

impl Runner {
    /// One `BPF_PROG_TEST_RUN` of `frame` received on `ifindex`, the
    /// program run `repeat` times on it; records the kernel-measured ns per
    /// run (mean over the repeats) and the verdict of the last run. The
    /// output frame is left in `self.out[..len]`.
    fn run(&mut self, frame: &[u8], ifindex: u32, repeat: u32, acc: &mut Acc) -> Result<usize> {
        let (ns, len) = self.run1(frame, ifindex, repeat, acc)?;
        acc.ns.push(f64::from(ns));
        Ok(len)
    }

    /// `repeat` runs on `frame` with the output TTL recorded.
    fn run_ttl(&mut self, frame: &[u8], ifindex: u32, repeat: u32, acc: &mut Acc) -> Result<()> {
        let len = self.run(frame, ifindex, repeat, acc)?;
        *acc.ttls.entry(self.ttl_out(len)).or_default() += 1;
        Ok(())
    }

    fn ttl_out(&self, len: usize) -> u8 {
        frames::ttl(self.out.get(..len).unwrap_or_default())
    }

    /// A call with `repeat` lo, then one with `repeat` hi, on fresh copies
    /// of `frame`; records the per-run cost `(hi·t_hi − lo·t_lo)/(hi − lo)`
    /// of the pair (what a fixed cost per call, the same in both, leaves).
    fn slope(&mut self, frame: &[u8], ifindex: u32, acc: &mut Acc) -> Result<()> {
        let (lo, hi) = DR_SLOPE;
        let (t_lo, len) = self.run1(frame, ifindex, lo, acc)?;
        *acc.ttls.entry(self.ttl_out(len)).or_default() += 1;
        let (t_hi, len) = self.run1(frame, ifindex, hi, acc)?;
        *acc.ttls.entry(self.ttl_out(len)).or_default() += 1;
        let total = |t: u32, r: u32| f64::from(t) * f64::from(r);
        acc.ns
            .push((total(t_hi, hi) - total(t_lo, lo)) / f64::from(hi - lo));
        Ok(())
    }

    /// The run itself: (ns per run, output length); counts the verdict.
    fn run1(
        &mut self,
        frame: &[u8],
        ifindex: u32,
        repeat: u32,
        acc: &mut Acc,
    ) -> Result<(u32, usize)> {
        let (verdict, ns, len) = match self.kind {
            Prog::Xdp => {
                // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
                // rx_queue_index, egress_ifindex.
                let mut ctx = [0u32; 6];
                ctx[1] = frame.len() as u32;
                ctx[3] = ifindex;
                let ctx_b: Vec<u8> = ctx.iter().flat_map(|x| x.to_ne_bytes()).collect();
                let (ret, ns, len) =
                    sys::test_run(&self.prog, frame, &mut self.out, Some(&ctx_b), None, repeat)
                        .context("BPF_PROG_TEST_RUN")?;
                (xdp_verdict(ret), ns, len)
            }
            Prog::Tc => {
                // struct __sk_buff up to the end of cb[]: ingress_ifindex
                // (word 9), ifindex (10), cb[0..5] (12..17), all else 0.
                let mut ctx = [0u32; 17];
                ctx[9] = ifindex;
                ctx[10] = ifindex;
                let ctx_b: Vec<u8> = ctx.iter().flat_map(|x| x.to_ne_bytes()).collect();
                // The kernel copies its whole __sk_buff back (ENOSPC if
                // the buffer is smaller).
                let mut ctx_out = [0u8; 256];
                let (ret, ns, len) = sys::test_run(
                    &self.prog,
                    frame,
                    &mut self.out,
                    Some(&ctx_b),
                    Some(&mut ctx_out),
                    repeat,
                )
                .context("BPF_PROG_TEST_RUN")?;
                let cb0 = u32::from_ne_bytes(ctx_out[48..52].try_into().expect("4 bytes"));
                (tc_verdict(ret, cb0, ifindex), ns, len)
            }
        };
        *acc.verdicts.entry(verdict).or_default() += 1;
        Ok((ns, len))
    }
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

    let eth0: u32 = sysfs("eth0", "ifindex")?.parse()?;
    let eth1: u32 = sysfs("eth1", "ifindex")?.parse()?;
    let mac0 = frames::parse_mac(&sysfs("eth0", "address")?).context("eth0 MAC")?;
    let mac1 = frames::parse_mac(&sysfs("eth1", "address")?).context("eth1 MAC")?;
    let peer = [0x02, 0, 0, 0, 0, 0x42];
    let vip: Ipv4Addr = VIP.parse()?;
    let n = a.calls;

    // Baseline: the same measurements of a two-instruction program of the
    // same type returning "pass" (`XDP_PASS` / `TC_ACT_OK`): with `repeat`
    // 1 and `n` calls, as the DR repeat row and as the DR slope row.
    let mut base = Runner {
        prog: match a.prog {
            Prog::Xdp => sys::load_xdp_action(2).context("loading the XDP_PASS baseline")?,
            Prog::Tc => sys::load_tc_action(0).context("loading the TC_ACT_OK baseline")?,
        },
        kind: a.prog,
        out: vec![0; 512],
    };
    let f = frames::tcp(mac0, peer, vip, vip, 1, NAT_PORT, TCP_SYN, 1);
    let slope_id = format!("slope{}_{}", DR_SLOPE.0, DR_SLOPE.1);
    for (id, repeat, calls) in [
        ("r1".to_string(), 1, n),
        (format!("r{DR_REPEAT}"), DR_REPEAT, DR_REPEAT_CALLS),
        (slope_id.clone(), 0, DR_REPEAT_CALLS),
    ] {
        let mut acc = Acc::default();
        for _ in 0..calls {
            if repeat == 0 {
                base.slope(&f, eth0, &mut acc)?;
            } else {
                base.run(&f, eth0, repeat, &mut acc)?;
            }
        }
        println!(
            "BASE prog={name} base={id} calls={calls} ns={:.1} mean={:.1} verdicts={}",
            acc.median(),
            acc.mean(),
            acc.verdicts()
        );
    }

    let mut r = Runner {
        prog,
        kind: a.prog,
        out: vec![0; 512],
    };
    let rep = |level: u64, kind: &str, base: &str, acc: &Acc| {
        println!(
            "COST prog={name} fill={level} kind={kind} base={base} calls={} ns={:.1} mean={:.1} verdicts={}{}",
            acc.ns.len(),
            acc.median(),
            acc.mean(),
            acc.verdicts(),
            acc.ttls()
        );
        let _ = std::io::stdout().flush();
    };
    // Every packet is from the real client address (its neighbour entry is
    // resolved, so NAT replies can be forwarded) with a source port of its
    // own: `n` ports per table size, shared by the NAT, DR and TUN services
    // (different virtual ports, so different connections).
    let client: Ipv4Addr = CLIENT_IP.parse()?;
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
        // NAT: SYN (new flow), then an ACK on each of those connections
        // (established), then a reply from its real server.
        let mut backends = Vec::with_capacity(n as usize);
        let mut acc = Acc::default();
        for &p in &ports {
            let f = frames::tcp(mac0, peer, client, vip, p, NAT_PORT, TCP_SYN, 1);
            let len = r.run(&f, eth0, 1, &mut acc)?;
            if let Some((rs, rport)) = frames::destination(r.out.get(..len).unwrap_or_default()) {
                backends.push((p, rs, rport));
            }
        }
        rep(level, "nat_syn", "r1", &acc);
        let mut acc = Acc::default();
        for &p in &ports {
            let f = frames::tcp(mac0, peer, client, vip, p, NAT_PORT, TCP_ACK, 2);
            r.run(&f, eth0, 1, &mut acc)?;
        }
        rep(level, "nat_est", "r1", &acc);
        let mut acc = Acc::default();
        for &(p, rs, rport) in &backends {
            let f = frames::tcp(mac1, peer, rs, client, rport, p, TCP_ACK, 2);
            r.run(&f, eth1, 1, &mut acc)?;
        }
        rep(level, "nat_reply", "r1", &acc);
        // DR and TUN: SYN, then an ACK on each connection.
        for (kind, vport) in [("dr", DR_PORT), ("tun", TUN_PORT)] {
            let mut syn = Acc::default();
            let mut est = Acc::default();
            for &p in &ports {
                let f = frames::tcp(mac0, peer, client, vip, p, vport, TCP_SYN, 1);
                r.run(&f, eth0, 1, &mut syn)?;
            }
            for &p in &ports {
                let f = frames::tcp(mac0, peer, client, vip, p, vport, TCP_ACK, 2);
                r.run(&f, eth0, 1, &mut est)?;
            }
            rep(level, &format!("{kind}_syn"), "r1", &syn);
            rep(level, &format!("{kind}_est"), "r1", &est);
        }
        // Hot: one established NAT connection's ACK, a fresh copy of the
        // frame per call, `n` calls (its table bucket and entry stay
        // cached).
        let hot = ports[0];
        let mut acc = Acc::default();
        let f = frames::tcp(mac0, peer, client, vip, hot, NAT_PORT, TCP_ACK, 2);
        for _ in 0..n {
            r.run(&f, eth0, 1, &mut acc)?;
        }
        rep(level, "nat_est_1conn", "r1", &acc);
        // The same for the DR connection the repeat row below uses: the
        // repeat-1 figure of exactly that path, to compare with it.
        let mut acc = Acc::default();
        let f = frames::tcp(mac0, peer, client, vip, hot, DR_PORT, TCP_ACK, 2);
        for _ in 0..n {
            r.run(&f, eth0, 1, &mut acc)?;
        }
        rep(level, "dr_est_1conn", "r1", &acc);
        // Hot, with `repeat`: one established DR connection's ACK, TTL 255,
        // run DR_REPEAT times per call on the frame the previous run left
        // (MACs rewritten, TTL decremented; still addressed to the VIP).
        // The TTL that comes out shows how many runs forwarded it.
        let mut f = frames::tcp(mac0, peer, client, vip, hot, DR_PORT, TCP_ACK, 2);
        frames::set_ttl(&mut f, DR_REPEAT_TTL);
        let mut acc = Acc::default();
        for _ in 0..DR_REPEAT_CALLS {
            r.run_ttl(&f, eth0, DR_REPEAT, &mut acc)?;
        }
        rep(level, "dr_est_repeat", &format!("r{DR_REPEAT}"), &acc);
        // The same frame as pairs of calls with two `repeat` values: the
        // slope is the cost of one more run, without the fixed cost per
        // call (XDP: the test run puts the program into the XDP dispatcher
        // before a call with `repeat` > 1, and caches start cold).
        let mut acc = Acc::default();
        for _ in 0..DR_REPEAT_CALLS {
            r.slope(&f, eth0, &mut acc)?;
        }
        rep(level, "dr_est_slope", &slope_id, &acc);
    }
    println!("DONE");
    Ok(())
}

/// Insert synthetic connections `from..to` (keys 10.x.y.z:sport → VIP:80
/// TCP, zero values) with `BPF_MAP_UPDATE_BATCH`.
fn fill(conn: &OwnedFd, mi: &sys::MapInfo, from: u64, to: u64) -> Result<()> {
    const CHUNK: u64 = 65536;
    let ks = mi.key_size as usize;
    let vs = mi.value_size as usize;
    let vip: Ipv4Addr = VIP.parse()?;
    let values = vec![0u8; vs * CHUNK as usize];
    let mut keys = vec![0u8; ks * CHUNK as usize];
    let mut i = from;
    while i < to {
        let n = (to - i).min(CHUNK);
        for j in 0..n {
            let k = &mut keys[(j as usize) * ks..(j as usize + 1) * ks];
            k.fill(0);
            let id = i + j;
            let addr = 0x0a00_0000u32 | (id & 0x00ff_ffff) as u32;
            k[0..4].copy_from_slice(&addr.to_be_bytes());
            if ks >= 13 {
                k[4..8].copy_from_slice(&vip.octets());
                k[8..10].copy_from_slice(&(1 + (id >> 24) as u16).to_be_bytes());
                k[10..12].copy_from_slice(&80u16.to_be_bytes());
                k[12] = 6;
            }
        }
        let done = sys::map_update_batch(
            conn,
            &keys[..n as usize * ks],
            &values[..n as usize * vs],
            n as u32,
        )
        .with_context(|| format!("filling CONN_MAP at entry {i}"))?;
        if u64::from(done) != n {
            bail!("filling CONN_MAP: {done} of {n} inserted at entry {i}");
        }
        i += n;
    }
    Ok(())
}

/// Writes `n` live NAT connections into xvsd's `CONN_MAP`, both entries
/// each, as the program makes them: clients `10.x.y.z:1024+` to `VIP:80`,
/// spread over rs1..rs3 (dest ids 0..2 of the only service, id 0),
/// ESTABLISHED and seen just now, so an expiry walk reads every one and
/// deletes none.
pub fn fill_nat_conns(conn: &OwnedFd, n: u32) -> Result<()> {
    use xvs_dataplane::abi::{
        as_bytes, xvs_conn, xvs_conn_flags, xvs_conn_key, xvs_fwd, xvs_state,
    };
    const CHUNK: u32 = 32768;
    let vip: Ipv4Addr = VIP.parse()?;
    let rs: Vec<Ipv4Addr> = (1..=3u8)
        .map(|i| rs_ip(i).parse())
        .collect::<Result<_, _>>()?;
    let now = xvs_dataplane::monotonic_ns();
    let key = |saddr, sport, daddr, dport| xvs_conn_key::new(6, saddr, sport, daddr, dport);
    let mut i = 0;
    while i < n {
        let m = (n - i).min(CHUNK);
        let mut keys = Vec::with_capacity(2 * m as usize * size_of::<xvs_conn_key>());
        let mut vals = Vec::with_capacity(2 * m as usize * size_of::<xvs_conn>());
        for id in i..i + m {
            let client = Ipv4Addr::from(0x0a00_0000 | (id & 0x00ff_ffff));
            let cport = 1024 + (id >> 24) as u16;
            let dest = id % 3;
            let fwd = key(client, cport, vip, 80);
            let rep = key(rs[dest as usize], 80, client, cport);
            let entry = |peer: xvs_conn_key, flags: u8| xvs_conn {
                last_seen_ns: now,
                peer,
                svc_id: 0,
                dest_id: dest,
                state: xvs_state::XVS_S_ESTABLISHED.0,
                fwd: xvs_fwd::XVS_FWD_MASQ.0 as u8,
                flags,
                ..Default::default()
            };
            keys.extend_from_slice(as_bytes(&fwd));
            vals.extend_from_slice(as_bytes(&entry(rep, 0)));
            keys.extend_from_slice(as_bytes(&rep));
            let reply = xvs_conn_flags::XVS_CONN_F_REPLY.0 as u8;
            vals.extend_from_slice(as_bytes(&entry(fwd, reply)));
        }
        let done = sys::map_update_batch(conn, &keys, &vals, 2 * m)
            .with_context(|| format!("writing connection {i} into CONN_MAP"))?;
        if done != 2 * m {
            bail!(
                "writing CONN_MAP: {done} of {} entries at connection {i}",
                2 * m
            );
        }
        i += m;
    }
    Ok(())
}
