//! The markdown report: the run, traffic, ratios, counters and scale.

use std::fmt::Write as _;
use std::path::Path;

use crate::harness::{Contender, RsServer, ALL};

use super::cells::{f0, f1, f2, k, median, stat};
use super::sysinfo::{meminfo, sh};
use super::Report;

/// Pairs compared head to head in the ratio table: A ÷ B.
const PAIRS: [(Contender, Contender); 9] = [
    (Contender::XvsNat, Contender::IpvsNat),
    (Contender::XvsNatXdp, Contender::IpvsNat),
    (Contender::XvsDr, Contender::IpvsDr),
    (Contender::XvsDrXdp, Contender::IpvsDr),
    (Contender::XvsTun, Contender::IpvsTun),
    (Contender::XvsTunXdp, Contender::IpvsTun),
    (Contender::XvsNat, Contender::Nft),
    (Contender::IpvsNat, Contender::Nft),
    (Contender::XvsNat, Contender::Fwd),
];

/// The throughput metrics of the traffic table: (metric, column title).
const THROUGHPUT: [(&str, &str); 4] = [
    ("ka_rps", "keep-alive req/s"),
    ("close_cps", "new conn/s"),
    ("udp1_pps", "UDP pkt/s, 1 flow"),
    ("udpm_pps", "UDP pkt/s, many flows"),
];

/// The CPU metrics: (metric, column title).
const CPU: [(&str, &str); 4] = [
    ("ka_cpu_us", "CPU per keep-alive req"),
    ("close_cpu_us", "CPU per new conn"),
    ("udp1_cpu_us", "CPU per UDP pkt, 1 flow"),
    ("udpm_cpu_us", "CPU per UDP pkt, many flows"),
];

impl Report {
    /// The ratio tables: pairs head to head, and every contender against
    /// the no-load-balancer baseline of its testbed.
    fn ratios_markdown(&self, o: &mut String, rows: &[Contender]) {
        let pairs: Vec<(Contender, Contender)> = PAIRS
            .into_iter()
            .filter(|(a, b)| self.has(*a) && self.has(*b))
            .collect();
        let baseline = |c: Contender| -> Option<Contender> {
            let dr = matches!(
                c,
                Contender::IpvsDr
                    | Contender::XvsDr
                    | Contender::XvsDrXdp
                    | Contender::IpvsTun
                    | Contender::XvsTun
                    | Contender::XvsTunXdp
            );
            [dr.then_some(Contender::DirectDr), Some(Contender::Direct)]
                .into_iter()
                .flatten()
                .find(|b| *b != c && self.has(*b))
        };
        let based: Vec<(Contender, Contender)> = rows
            .iter()
            .filter(|c| !matches!(c, Contender::Direct | Contender::DirectDr))
            .filter(|c| c.http())
            .filter_map(|&c| baseline(c).map(|b| (c, b)))
            .collect();
        if pairs.is_empty() && based.is_empty() {
            return;
        }
        let _ = writeln!(o, "\n#### Ratios of medians (within this run)\n");
        let _ = writeln!(
            o,
            "Each cell: the median of A over the rounds ÷ the median of B. Throughput: above 1 means A delivered more; CPU (machine-wide µs per unit, as above): below 1 means A cost less.\n"
        );
        if !pairs.is_empty() {
            let mut hdr = "| A ÷ B |".to_string();
            let mut sep = "|---|".to_string();
            for (_, t) in THROUGHPUT.iter().chain(&CPU) {
                let _ = write!(hdr, " {t} |");
                sep.push_str("---:|");
            }
            let _ = writeln!(o, "{hdr}\n{sep}");
            for (a, b) in &pairs {
                let mut row = format!("| `{}` ÷ `{}` |", a.name(), b.name());
                for (m, _) in THROUGHPUT.iter().chain(&CPU) {
                    let _ = write!(row, " {} |", self.ratio(*a, *b, m));
                }
                let _ = writeln!(o, "{row}");
            }
        }
        if !based.is_empty() {
            let _ = writeln!(
                o,
                "\nAgainst no load balancer (`direct`; `direct-dr` for the DR testbed when it ran):\n"
            );
            let mut hdr = "| A | ÷ B |".to_string();
            let mut sep = "|---|---|".to_string();
            for (_, t) in THROUGHPUT {
                let _ = write!(hdr, " {t} |");
                sep.push_str("---:|");
            }
            let _ = writeln!(o, "{hdr}\n{sep}");
            for (c, b) in &based {
                let mut row = format!("| `{}` | `{}` |", c.name(), b.name());
                for (m, _) in THROUGHPUT {
                    let _ = write!(row, " {} |", self.ratio(*c, *b, m));
                }
                let _ = writeln!(o, "{row}");
            }
        }
    }

    pub fn markdown(&self) -> String {
        let mut o = String::new();
        self.run_markdown(&mut o);
        let rows: Vec<Contender> = ALL
            .into_iter()
            .filter(|c| self.samples.keys().any(|(cc, _)| cc == c))
            .collect();
        self.traffic_markdown(&mut o, &rows);
        self.ratios_markdown(&mut o, &rows);
        let _ = writeln!(o, "\nContenders:\n");
        for &c in &rows {
            let _ = writeln!(o, "* `{}`: {}", c.name(), c.what());
        }
        if !self.xvs_counters.is_empty() {
            let _ = writeln!(
                o,
                "\nxvs data-plane counters after the last round (non-zero only; shows which path the packets took):\n"
            );
            for (c, v) in &self.xvs_counters {
                let _ = writeln!(o, "* `{c}`: {v}");
            }
        }

        if !self.ipvs_stats.is_empty() {
            let _ = writeln!(
                o,
                "\nIPVS counters after the last round (`ipvsadm -Ln --stats --exact`, per service; OutPkts stays 0 when the replies bypass the director):\n"
            );
            for (c, v) in &self.ipvs_stats {
                let _ = writeln!(o, "* `{c}`: {v}");
            }
        }

        self.dp_markdown(&mut o);

        self.scale_markdown(&mut o);
        if !self.failures.is_empty() {
            let _ = writeln!(o, "\n#### Failures\n");
            for f in &self.failures {
                let one: String = f.lines().take(6).collect::<Vec<_>>().join(" / ");
                let _ = writeln!(o, "* {one}");
            }
        }
        o
    }

    /// The run's heading and what it ran on, with what.
    fn run_markdown(&self, o: &mut String) {
        let mode = if self.smoke {
            "SMOKE RUN (harness check, 1 s per workload — not a measurement)"
        } else {
            "full run"
        };
        let kernel = sh("uname -r");
        match self.vm {
            Some(accel) => {
                let _ = writeln!(
                    o,
                    "### Run of {} — {mode}, in a VM ({accel}, kernel {kernel})\n",
                    self.date
                );
                let how = if accel == "TCG" {
                    "under emulation (qemu TCG: every guest instruction is translated in software)"
                } else {
                    "in a qemu VM (KVM)"
                };
                let _ = writeln!(
                    o,
                    "**Measured {how} on kernel {kernel}: the absolute figures say nothing about real hardware; only ratios between contenders within this run are meaningful.**\n"
                );
            }
            None => {
                let _ = writeln!(o, "### Run of {} — {mode}\n", self.date);
            }
        }
        let cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
        let _ = writeln!(
            o,
            "* Machine: {cpu}, {} CPUs, {:.1} GiB RAM; kernel {}; Debian {}",
            sh("nproc"),
            meminfo("MemTotal:") as f64 / f64::from(1u32 << 30),
            kernel,
            sh("cat /etc/debian_version")
        );
        let _ = writeln!(
            o,
            "* Load average (1/5/15 min): {} at start, {} after setup, {} at the end — client, director, real servers and generators all share these CPUs{}",
            self.load_start,
            self.load_after_setup,
            self.load_end,
            if self.load_start.split_whitespace().next().and_then(|l| l.parse::<f64>().ok()).unwrap_or(0.0) > 1.0 {
                "; **the machine was busy at the start: treat the figures with care**"
            } else {
                ""
            }
        );
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let ws = ws.display();
        let _ = writeln!(
            o,
            "* Versions: xvs {} ({}), {}, {}, {}, {}, {}, {}",
            env!("CARGO_PKG_VERSION"),
            sh(&format!(
                "git -C {ws} describe --always --dirty 2>/dev/null || echo unknown"
            )),
            sh("wrk -v 2>&1 | head -1 | cut -d' ' -f1-2"),
            sh("haproxy -v | head -1 | cut -d' ' -f1-3"),
            sh("nginx -v 2>&1"),
            sh("trafgen -v | head -1 | cut -d' ' -f1-2"),
            sh("nft -v"),
            sh("rustc --version 2>/dev/null || echo rustc: not in PATH")
        );
        let _ = writeln!(
            o,
            "* Command: `{}`; {} round(s), {} s per workload, wrk `-t 2 -c {}`, real servers: {}",
            self.command_line,
            self.rounds,
            self.duration,
            self.conns,
            match self.rs_server {
                RsServer::Nginx => "nginx (2 workers each)",
                RsServer::Testsrv => "xvs-testsrv http",
            }
        );
        if let Some(ipvs) = &self.ipvs {
            let _ = writeln!(o, "* IPVS: {ipvs}");
        }
        for line in self.not_run.iter().chain(&self.notes) {
            let _ = writeln!(o, "* {line}");
        }
        let _ = writeln!(
            o,
            "* Cells: median [min–max] over the rounds; `–` not applicable or not measured\n"
        );
    }

    /// The traffic and CPU tables, one row per contender.
    fn traffic_markdown(&self, o: &mut String, rows: &[Contender]) {
        let _ = writeln!(o, "#### Traffic\n");
        let _ = writeln!(
            o,
            "| contender | keep-alive req/s | keep-alive p99 ms | new conn/s (`Connection: close`) | p99 ms | UDP pkt/s, 1 flow | lost % | UDP pkt/s, many flows | lost % |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for &c in rows {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                c.name(),
                stat(self.get(c, "ka_rps"), k),
                stat(self.get(c, "ka_p99_ms"), f2),
                stat(self.get(c, "close_cps"), k),
                stat(self.get(c, "close_p99_ms"), f2),
                stat(self.get(c, "udp1_pps"), k),
                stat(self.get(c, "udp1_loss"), f0),
                stat(self.get(c, "udpm_pps"), k),
                stat(self.get(c, "udpm_loss"), f0),
            );
        }
        let _ = writeln!(o, "\n#### CPU per unit of work (machine-wide busy time ÷ requests, connections or packets delivered)\n");
        let _ = writeln!(
            o,
            "| contender | µs per keep-alive request | µs per new connection | µs per UDP packet, 1 flow | µs per UDP packet, many flows | wrk errors (ka / close, median) |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|");
        for &c in rows {
            let err = |m: &str| median(self.get(c, m)).map_or("–".into(), f0);
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} / {} |",
                c.name(),
                stat(self.get(c, "ka_cpu_us"), f1),
                stat(self.get(c, "close_cpu_us"), f1),
                stat(self.get(c, "udp1_cpu_us"), f2),
                stat(self.get(c, "udpm_cpu_us"), f2),
                err("ka_err"),
                err("close_err"),
            );
        }
    }

    /// Memory per connection, the largest table, `xvsadm -R`, xvsd idle.
    fn scale_markdown(&self, o: &mut String) {
        let _ = writeln!(o, "\n#### Scale of state\n");
        match self.mem {
            Some(m) => {
                let per = m.memlock as f64 / m.max_entries.max(1) as f64;
                let _ = writeln!(
                    o,
                    "* Connection table memory: `CONN_MAP` (key {} B, value {} B) with {} entries has memlock {:.1} MiB = **{per:.0} bytes per entry**, preallocated; a NAT connection takes two entries ({:.0} B), a DR/TUN connection one",
                    m.key_size,
                    m.value_size,
                    m.max_entries,
                    m.memlock as f64 / f64::from(1u32 << 20),
                    2.0 * per
                );
            }
            None => {
                let _ = writeln!(o, "* Connection table memory: not measured in this run");
            }
        }
        let _ = writeln!(
            o,
            "* Largest connection table xvsd accepted: {}",
            self.largest_conn_tab
                .as_deref()
                .unwrap_or("not measured in this run")
        );
        match self.restore {
            Some((s, d, lines, secs, edit)) => {
                let _ = writeln!(
                    o,
                    "* `xvsadm -R` of {s} services × {d} dests ({lines} lines): **{secs:.2} s**; one `xvsadm -e` among them: **{edit:.1} ms** (median of 3)"
                );
            }
            None => {
                let _ = writeln!(o, "* `xvsadm -R` / `-e`: not measured in this run");
            }
        }
        let (per_sec, max_s) = (
            xvs_dataplane::SCAN_ENTRIES_PER_SEC,
            xvs_dataplane::SCAN_MAX_INTERVAL_S,
        );
        for (what, pct) in &self.housekeeping {
            let _ = writeln!(
                o,
                "* xvsd's own CPU, no traffic, holding {what}: **{pct:.1} %** of one CPU (its timers: the expiry scan, in the kernel, every second up to {per_sec} entries and every ⌈entries ÷ {per_sec}⌉ s, at most {max_s}, beyond; the rate estimators every 2 s)"
            );
        }
    }
}
