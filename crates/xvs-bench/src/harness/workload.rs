//! The workloads: HTTP through wrk, UDP packet rates through trafgen.

use std::fs;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use xvs_testbed::{interrupted, Node, Testbed};

use crate::frames;
use crate::report;
use crate::sys;

use super::probes::{ipvs_stats_line, tail, xvsd_counters};
use super::{check_interrupt, path_str, since_start, Contender, Harness, UDP_PORT};

impl Harness {
    pub(super) fn run_contender(&mut self, c: Contender) {
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

    pub(super) fn http(&mut self, c: Contender, close: bool) -> Result<()> {
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

    pub(super) fn udp(&mut self, c: Contender, many: bool) -> Result<()> {
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
}
