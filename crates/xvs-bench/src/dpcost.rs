//! `xvs-bench dp-cost`: the data plane's cost per packet, run inside the
//! director's namespace on the program and maps the real `xvsd` loaded.
//!
//! The parent starts `xvsd` (pinned maps), configures a NAT (`VIP:80`), a
//! DR (`VIP:81`) and a TUN (`VIP:82`) service with three real servers each,
//! and starts this helper. The helper finds `xvs_xdp` by the id of the
//! pinned `CONN_MAP`, holds it open and prints `READY`; the parent stops
//! `xvsd` (so its once-a-second expiry walk neither deletes the synthetic
//! entries nor competes for the CPU) and creates the go file.
//!
//! Why not `repeat`: `BPF_PROG_TEST_RUN` with `repeat` > 1 runs the program
//! again on the frame the previous run left behind (the kernel does not
//! restore it, in the live-frames mode neither), so after one NAT rewrite
//! or one encapsulation every later iteration measures a different path
//! (a miss, or `bpf_xdp_adjust_head` running out of headroom). Instead every
//! packet is one call with `repeat = 1` on a fresh copy of its frame, and
//! the kernel-measured duration of that run (`ktime` around the program
//! only) is recorded and the median reported (the mean too); the same measurement of a two-instruction
//! `XDP_PASS` program is the fixed overhead, subtracted in `net_ns`. Each
//! packet of a kind belongs to a different connection, so the lookups
//! touch different table buckets, as real traffic does.

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xvs_testbed::{CLIENT_IP, VIP};

use crate::frames::{self, TCP_ACK, TCP_SYN};
use crate::sys;

pub const NAT_PORT: u16 = 80;
pub const DR_PORT: u16 = 81;
pub const TUN_PORT: u16 = 82;

struct Args {
    pin: PathBuf,
    go: PathBuf,
    fills: Vec<u64>,
    calls: u32,
}

fn parse(args: &[String]) -> Result<Args> {
    let mut a = Args {
        pin: PathBuf::new(),
        go: PathBuf::new(),
        fills: vec![0],
        calls: 1000,
    };
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--pin" => a.pin = v()?.into(),
            "--go" => a.go = v()?.into(),
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

fn verdict_name(v: u32) -> &'static str {
    match v {
        0 => "ABORTED",
        1 => "DROP",
        2 => "PASS",
        3 => "TX",
        4 => "REDIRECT",
        _ => "?",
    }
}

struct Runner {
    prog: OwnedFd,
    out: Vec<u8>,
}

#[derive(Default)]
struct Acc {
    ns: Vec<u32>,
    verdicts: std::collections::BTreeMap<u32, u64>,
}

impl Acc {
    fn mean(&self) -> f64 {
        if self.ns.is_empty() {
            0.0
        } else {
            self.ns.iter().map(|&x| f64::from(x)).sum::<f64>() / self.ns.len() as f64
        }
    }
    /// The median: robust against the odd run hit by an interrupt (the
    /// machine is shared).
    fn median(&self) -> f64 {
        let mut v = self.ns.clone();
        v.sort_unstable();
        match v.len() {
            0 => 0.0,
            n if n % 2 == 1 => f64::from(v[n / 2]),
            n => (f64::from(v[n / 2 - 1]) + f64::from(v[n / 2])) / 2.0,
        }
    }
    fn verdicts(&self) -> String {
        self.verdicts
            .iter()
            .map(|(v, n)| format!("{}:{n}", verdict_name(*v)))
            .collect::<Vec<_>>()
            .join("/")
    }
}

impl Runner {
    /// One run; the output frame is left in `self.out[..len]`.
    fn run(&mut self, frame: &[u8], ifindex: u32, acc: &mut Acc) -> Result<usize> {
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex.
        let mut ctx = [0u32; 6];
        ctx[1] = frame.len() as u32;
        ctx[3] = ifindex;
        let ctx_b: Vec<u8> = ctx.iter().flat_map(|x| x.to_ne_bytes()).collect();
        let (ret, ns, len) = sys::test_run(&self.prog, frame, &mut self.out, Some(&ctx_b), 1)
            .context("BPF_PROG_TEST_RUN")?;
        acc.ns.push(ns);
        *acc.verdicts.entry(ret).or_default() += 1;
        Ok(len)
    }
}

pub fn main(args: &[String]) -> Result<()> {
    let a = parse(args)?;
    let conn = sys::obj_get(&a.pin.join("CONN_MAP"))
        .with_context(|| format!("opening {}/CONN_MAP", a.pin.display()))?;
    let mi = sys::map_info(&conn)?;
    let prog = sys::find_prog("xvs_xdp", mi.id).context("finding xvsd's xvs_xdp")?;
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

    // Baseline: the same measurement of `return XDP_PASS;`.
    let mut base = Runner {
        prog: sys::load_xdp_action(2).context("loading the XDP_PASS baseline")?,
        out: vec![0; 512],
    };
    let mut acc = Acc::default();
    let f = frames::tcp(mac0, peer, vip, vip, 1, NAT_PORT, TCP_SYN, 1);
    for _ in 0..n {
        base.run(&f, eth0, &mut acc)?;
    }
    println!("BASE ns={:.1} mean={:.1}", acc.median(), acc.mean());

    let mut r = Runner {
        prog,
        out: vec![0; 512],
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
            println!("FILL entries={level} secs={:.2}", t.elapsed().as_secs_f64());
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
            let len = r.run(&f, eth0, &mut acc)?;
            if len >= 38 {
                let rs = Ipv4Addr::new(r.out[30], r.out[31], r.out[32], r.out[33]);
                let rport = u16::from_be_bytes([r.out[36], r.out[37]]);
                backends.push((p, rs, rport));
            }
        }
        report(level, "nat_syn", &acc);
        let mut acc = Acc::default();
        for &p in &ports {
            let f = frames::tcp(mac0, peer, client, vip, p, NAT_PORT, TCP_ACK, 2);
            r.run(&f, eth0, &mut acc)?;
        }
        report(level, "nat_est", &acc);
        let mut acc = Acc::default();
        for &(p, rs, rport) in &backends {
            let f = frames::tcp(mac1, peer, rs, client, rport, p, TCP_ACK, 2);
            r.run(&f, eth1, &mut acc)?;
        }
        report(level, "nat_reply", &acc);
        // DR and TUN: SYN, then an ACK on each connection.
        for (kind, vport) in [("dr", DR_PORT), ("tun", TUN_PORT)] {
            let mut syn = Acc::default();
            let mut est = Acc::default();
            for &p in &ports {
                let f = frames::tcp(mac0, peer, client, vip, p, vport, TCP_SYN, 1);
                r.run(&f, eth0, &mut syn)?;
            }
            for &p in &ports {
                let f = frames::tcp(mac0, peer, client, vip, p, vport, TCP_ACK, 2);
                r.run(&f, eth0, &mut est)?;
            }
            report(level, &format!("{kind}_syn"), &syn);
            report(level, &format!("{kind}_est"), &est);
        }
    }
    println!("DONE");
    Ok(())
}

fn report(level: u64, kind: &str, acc: &Acc) {
    println!(
        "COST fill={level} kind={kind} calls={} ns={:.1} mean={:.1} verdicts={}",
        acc.ns.len(),
        acc.median(),
        acc.mean(),
        acc.verdicts()
    );
    let _ = std::io::stdout().flush();
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
