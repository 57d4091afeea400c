//! The rows of the cost table: which frames, how often, printed as
//! `BASE` and `COST` lines.

use std::io::Write;
use std::net::Ipv4Addr;

use anyhow::{Context, Result};

use crate::frames::{self, TCP_ACK, TCP_SYN};
use crate::sys;

use super::runner::{Acc, Runner};
use super::{
    Prog, DR_PORT, DR_REPEAT, DR_REPEAT_CALLS, DR_REPEAT_TTL, DR_SLOPE, NAT_PORT, TUN_PORT,
};

/// Where the test frames come from and go to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Wire {
    pub(super) eth0: u32,
    pub(super) eth1: u32,
    pub(super) mac0: [u8; 6],
    pub(super) mac1: [u8; 6],
    pub(super) peer: [u8; 6],
    pub(super) vip: Ipv4Addr,
    pub(super) client: Ipv4Addr,
}

/// The baseline id of the DR slope row.
fn slope_id() -> String {
    format!("slope{}_{}", DR_SLOPE.0, DR_SLOPE.1)
}

/// Baseline: the same measurements of a two-instruction program of the
/// same type returning "pass" (`XDP_PASS` / `TC_ACT_OK`): with `repeat`
/// 1 and `n` calls, as the DR repeat row and as the DR slope row.
pub(super) fn baseline(prog: Prog, w: &Wire, n: u32) -> Result<()> {
    let Wire {
        eth0,
        mac0,
        peer,
        vip,
        ..
    } = *w;
    let name = prog.name();
    let mut base = Runner {
        prog: match prog {
            Prog::Xdp => sys::load_xdp_action(2).context("loading the XDP_PASS baseline")?,
            Prog::Tc => sys::load_tc_action(0).context("loading the TC_ACT_OK baseline")?,
        },
        kind: prog,
        out: vec![0; 512],
    };
    let f = frames::tcp(mac0, peer, vip, vip, 1, NAT_PORT, TCP_SYN, 1);
    let slope_id = slope_id();
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
    Ok(())
}

/// Every row of the cost table at one table fill `level`, `n` calls each
/// on the source ports `ports`.
pub(super) fn level(
    r: &mut Runner,
    w: &Wire,
    name: &str,
    n: u32,
    level: u64,
    ports: &[u16],
) -> Result<()> {
    let Wire {
        eth0,
        eth1,
        mac0,
        mac1,
        peer,
        vip,
        client,
    } = *w;
    let slope_id = slope_id();
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
    // NAT: SYN (new flow), then an ACK on each of those connections
    // (established), then a reply from its real server.
    let mut backends = Vec::with_capacity(n as usize);
    let mut acc = Acc::default();
    for &p in ports {
        let f = frames::tcp(mac0, peer, client, vip, p, NAT_PORT, TCP_SYN, 1);
        let len = r.run(&f, eth0, 1, &mut acc)?;
        if let Some((rs, rport)) = frames::destination(r.out.get(..len).unwrap_or_default()) {
            backends.push((p, rs, rport));
        }
    }
    rep(level, "nat_syn", "r1", &acc);
    let mut acc = Acc::default();
    for &p in ports {
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
        for &p in ports {
            let f = frames::tcp(mac0, peer, client, vip, p, vport, TCP_SYN, 1);
            r.run(&f, eth0, 1, &mut syn)?;
        }
        for &p in ports {
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
    Ok(())
}
