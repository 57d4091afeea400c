//! The data-plane cost section: the `dp-cost` helper's lines and their tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::dpcost::{DR_REPEAT, DR_SLOPE};

use super::cells::{fmt_int, k};
use super::{Mem, Report};

/// One cell of the data-plane cost table: a `COST` line of the helper.
#[derive(Debug, Clone, PartialEq)]
pub struct DpCell {
    /// Median kernel-measured ns per program run (gross).
    pub ns: f64,
    /// Which baseline applies: `r1`, `r200` (repeat 1, 200), `slope50_250`.
    pub base: String,
    pub calls: u32,
    pub verdicts: String,
    /// The DR repeat row: IPv4 TTL in and `ttl:calls` of the TTLs out.
    pub ttl: Option<(String, String)>,
}

/// The rows of the data-plane cost table: (kind, packet, how it is run).
/// `{calls}`, `{repeat}`, `{lo}` and `{hi}` are filled in.
const DP_ROWS: [(&str, &str, &str); 11] = [
    (
        "nat_syn",
        "SYN, new NAT flow (schedule + 2 inserts)",
        "{calls} conns × 1 call, repeat 1",
    ),
    (
        "nat_est",
        "NAT established, client → RS",
        "{calls} conns × 1 call, repeat 1",
    ),
    (
        "nat_reply",
        "NAT reply, RS → client",
        "{calls} conns × 1 call, repeat 1",
    ),
    (
        "dr_syn",
        "SYN, new DR flow",
        "{calls} conns × 1 call, repeat 1",
    ),
    (
        "dr_est",
        "DR established",
        "{calls} conns × 1 call, repeat 1",
    ),
    (
        "tun_syn",
        "SYN, new TUN (IPIP) flow",
        "{calls} conns × 1 call, repeat 1",
    ),
    (
        "tun_est",
        "TUN (IPIP) established",
        "{calls} conns × 1 call, repeat 1",
    ),
    (
        "nat_est_1conn",
        "NAT established, one connection (hot)",
        "1 conn × {calls} calls, repeat 1, fresh frame each call",
    ),
    (
        "dr_est_1conn",
        "DR established, one connection (hot)",
        "1 conn × {calls} calls, repeat 1, fresh frame each call",
    ),
    (
        "dr_est_repeat",
        "DR established, one connection (hot), `repeat`",
        "1 conn × {calls} calls, repeat {repeat} on the frame the previous run left (TTL 255)",
    ),
    (
        "dr_est_slope",
        "DR established, one connection (hot), per extra run",
        "1 conn × {calls} pairs of calls, repeat {lo} and {hi}: (hi·t_hi − lo·t_lo)/(hi − lo)",
    ),
];

/// A baseline id of the helper (`r1`, `r200`, `slope50_250`) in words.
fn base_label(id: &str) -> String {
    if let Some((lo, hi)) = id.strip_prefix("slope").and_then(|x| x.split_once('_')) {
        format!("slope repeat {lo}→{hi}")
    } else if let Some(r) = id.strip_prefix('r') {
        format!("repeat {r}")
    } else {
        id.to_string()
    }
}

impl Report {
    /// Read the `dp-cost` helper's output (one run per program).
    pub fn parse_dp_cost(&mut self, log: &str) {
        let kv = |l: &str| -> BTreeMap<String, String> {
            l.split_whitespace()
                .filter_map(|p| p.split_once('='))
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        for l in log.lines() {
            let m = kv(l);
            let num = |k: &str| m.get(k).and_then(|v| v.parse::<f64>().ok());
            let prog = m.get("prog").cloned().unwrap_or_else(|| "xvs_xdp".into());
            let base = m.get("base").cloned().unwrap_or_else(|| "r1".into());
            if l.starts_with("MEM ") {
                self.mem = Some(Mem {
                    key_size: num("key_size").unwrap_or(0.0) as u64,
                    value_size: num("value_size").unwrap_or(0.0) as u64,
                    max_entries: num("max_entries").unwrap_or(1.0) as u64,
                    memlock: num("memlock").unwrap_or(0.0) as u64,
                });
            } else if l.starts_with("BASE ") {
                if let Some(ns) = num("ns") {
                    self.dp_base.insert((prog, base), ns);
                }
            } else if l.starts_with("FILL ") {
                if let (Some(e), Some(s)) = (num("entries"), num("secs")) {
                    self.dp_fill_secs.push((prog, e as u64, s));
                }
            } else if l.starts_with("COST ") {
                if let (Some(f), Some(kind), Some(ns)) = (num("fill"), m.get("kind"), num("ns")) {
                    let cell = DpCell {
                        ns,
                        base,
                        calls: num("calls").unwrap_or(0.0) as u32,
                        verdicts: m.get("verdicts").cloned().unwrap_or_default(),
                        ttl: m
                            .get("ttl_in")
                            .zip(m.get("ttl_out"))
                            .map(|(a, b)| (a.clone(), b.clone())),
                    };
                    self.dp.insert((prog, f as u64, kind.clone()), cell);
                }
            }
        }
    }

    /// The "Data-plane cost" section: one table per program.
    pub(super) fn dp_markdown(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "\n#### Data-plane cost (`BPF_PROG_TEST_RUN` on xvsd's loaded `xvs_xdp` and `xvs_tc`)\n"
        );
        if self.dp.is_empty() {
            let _ = writeln!(o, "not measured in this run\n");
            return;
        }
        let _ = writeln!(
            o,
            "ns per packet: the median over the calls of the kernel-measured duration of one program run (`ktime` around the runs only; with repeat N the kernel reports the mean of the N runs of a call), net of the same measurement of a two-instruction program of the same type that returns \"pass\" (the baseline, measured for each method). Verdicts in brackets (with repeat N: of the last run), tc ones in XDP terms: `TC_ACT_OK` PASS, `TC_ACT_SHOT` DROP, `TC_ACT_REDIRECT` REDIRECT, or TX when `cb[0]` (the egress device) is the ingress one. \"N conns × 1 call\": each packet of a different connection (table buckets and entries not in cache); \"1 conn × N calls\": the same connection every time (cached). repeat > 1 only on the DR path, the one path that leaves a frame that takes the same path again (only the MACs and the TTL change); the TTL out proves that every run forwarded the packet. The slope row takes the cost of one more run from two repeat counts, which cancels a fixed cost per call that repeat N only divides by N (with XDP, repeat > 1 makes the kernel switch the XDP dispatcher to the program before the timed loop).\n"
        );
        let progs: Vec<String> = {
            let mut p: Vec<String> = self.dp.keys().map(|(p, _, _)| p.clone()).collect();
            p.dedup();
            // xvs_xdp first, as the harness measures them.
            p.sort_by_key(|p| p != "xvs_xdp");
            p
        };
        for (i, prog) in progs.iter().enumerate() {
            if i > 0 {
                let _ = writeln!(o);
            }
            let (attach, base_prog) = match prog.as_str() {
                "xvs_tc" => ("tc", "return TC_ACT_OK; (SCHED_CLS)"),
                _ => ("xdp", "return XDP_PASS;"),
            };
            let bases: Vec<String> = self
                .dp_base
                .iter()
                .filter(|((p, _), _)| p == prog)
                .map(|((_, b), ns)| format!("{ns:.1} ns ({})", base_label(b)))
                .collect();
            let _ = writeln!(
                o,
                "**`{prog}`** (`xvsd --attach {attach}`); baseline `{base_prog}`: {}\n",
                if bases.is_empty() {
                    "not measured".to_string()
                } else {
                    bases.join(", ")
                }
            );
            let fills: Vec<u64> = {
                let mut f: Vec<u64> = self
                    .dp
                    .keys()
                    .filter(|(p, _, _)| p == prog)
                    .map(|(_, f, _)| *f)
                    .collect();
                f.sort_unstable();
                f.dedup();
                f
            };
            let mut hdr = "| packet | how |".to_string();
            let mut sep = "|---|---|".to_string();
            for f in &fills {
                let _ = write!(
                    hdr,
                    " {} |",
                    if *f == 0 {
                        "table empty".to_string()
                    } else {
                        format!("+{} entries", k(*f as f64))
                    }
                );
                sep.push_str("---:|");
            }
            let _ = writeln!(o, "{hdr}\n{sep}");
            for (kind, label, how) in DP_ROWS {
                let cells: Vec<Option<&DpCell>> = fills
                    .iter()
                    .map(|f| self.dp.get(&(prog.clone(), *f, kind.to_string())))
                    .collect();
                let Some(first) = cells.iter().flatten().next() else {
                    continue;
                };
                let how = how
                    .replace("{calls}", &fmt_int(first.calls))
                    .replace("{repeat}", &DR_REPEAT.to_string())
                    .replace("{lo}", &DR_SLOPE.0.to_string())
                    .replace("{hi}", &DR_SLOPE.1.to_string());
                let mut row = format!("| {label} | {how} |");
                for c in &cells {
                    match c {
                        Some(c) => {
                            let base = self
                                .dp_base
                                .get(&(prog.clone(), c.base.clone()))
                                .copied()
                                .unwrap_or(0.0);
                            let ttl = match &c.ttl {
                                Some((i, out)) => format!(
                                    "; TTL {i}→{}",
                                    out.split('/')
                                        .map(|p| match p.split_once(':') {
                                            Some((t, n)) => format!("{t} ×{n}"),
                                            None => p.to_string(),
                                        })
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                                None => String::new(),
                            };
                            let _ = write!(row, " {:.1} ({}{ttl}) |", c.ns - base, c.verdicts);
                        }
                        None => row.push_str(" – |"),
                    }
                }
                let _ = writeln!(o, "{row}");
            }
            let fills_s: Vec<String> = self
                .dp_fill_secs
                .iter()
                .filter(|(p, _, _)| p == prog)
                .map(|(_, e, s)| format!("to {} in {s:.2} s", k(*e as f64)))
                .collect();
            if !fills_s.is_empty() {
                let _ = writeln!(
                    o,
                    "\nFilling the table (`BPF_MAP_UPDATE_BATCH`, synthetic entries): {}",
                    fills_s.join(", ")
                );
            }
        }
    }
}
