//! Running a program with `BPF_PROG_TEST_RUN` and collecting its timings
//! and verdicts.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;

use anyhow::{Context, Result};

use crate::frames;
use crate::sys;

use super::{Prog, DR_REPEAT_TTL, DR_SLOPE};

pub(super) fn xdp_verdict(v: u32) -> String {
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
pub(super) fn tc_verdict(v: u32, cb0: u32, ingress: u32) -> String {
    match v {
        0 => "PASS".into(),
        2 => "DROP".into(),
        7 if cb0 == ingress => "TX".into(),
        7 => "REDIRECT".into(),
        o => format!("TC_ACT_{o}"),
    }
}

pub(super) struct Runner {
    pub(super) prog: OwnedFd,
    pub(super) kind: Prog,
    pub(super) out: Vec<u8>,
}

#[derive(Default)]
pub(super) struct Acc {
    /// ns per program run, one value per call (per pair of calls for a
    /// slope).
    pub(super) ns: Vec<f64>,
    verdicts: BTreeMap<String, u64>,
    /// IPv4 TTL of the output frames (the repeat rows).
    ttls: BTreeMap<u8, u32>,
}

impl Acc {
    pub(super) fn mean(&self) -> f64 {
        if self.ns.is_empty() {
            0.0
        } else {
            self.ns.iter().sum::<f64>() / self.ns.len() as f64
        }
    }
    /// The median: robust against the odd run hit by an interrupt (the
    /// machine is shared).
    pub(super) fn median(&self) -> f64 {
        let mut v = self.ns.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => 0.0,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    /// ` ttl_in=255 ttl_out=55:100` when output TTLs were recorded.
    pub(super) fn ttls(&self) -> String {
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
    pub(super) fn verdicts(&self) -> String {
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
    pub(super) fn run(
        &mut self,
        frame: &[u8],
        ifindex: u32,
        repeat: u32,
        acc: &mut Acc,
    ) -> Result<usize> {
        let (ns, len) = self.run1(frame, ifindex, repeat, acc)?;
        acc.ns.push(f64::from(ns));
        Ok(len)
    }

    /// `repeat` runs on `frame` with the output TTL recorded.
    pub(super) fn run_ttl(
        &mut self,
        frame: &[u8],
        ifindex: u32,
        repeat: u32,
        acc: &mut Acc,
    ) -> Result<()> {
        let len = self.run(frame, ifindex, repeat, acc)?;
        *acc.ttls.entry(self.ttl_out(len)).or_default() += 1;
        Ok(())
    }

    pub(super) fn ttl_out(&self, len: usize) -> u8 {
        frames::ttl(self.out.get(..len).unwrap_or_default())
    }

    /// A call with `repeat` lo, then one with `repeat` hi, on fresh copies
    /// of `frame`; records the per-run cost `(hi·t_hi − lo·t_lo)/(hi − lo)`
    /// of the pair (what a fixed cost per call, the same in both, leaves).
    pub(super) fn slope(&mut self, frame: &[u8], ifindex: u32, acc: &mut Acc) -> Result<()> {
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
    pub(super) fn run1(
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
