//! Data-plane cost and scale of state: BPF_PROG_TEST_RUN, `xvsadm -R`,
//! expiry with many connections, the largest connection table.

use std::fmt::Write as _;
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use xvs_testbed::{rs_ip, Node, CLIENT_IP, VIP};

use crate::dpcost::{self, Prog, DR_PORT, NAT_PORT, TUN_PORT};
use crate::report;
use crate::sys;

use super::probes::{first_line, stop_xvsd, tail};
use super::{check_interrupt, path_str, BedId, Harness, Xvsd};

impl Harness {
    /// Both programs, one xvsd each (`--attach xdp`, then `--attach tc`:
    /// an xvsd loads only the one it attaches). A failed pass is recorded
    /// and the other still runs.
    pub(super) fn dp_cost(&mut self) -> Result<()> {
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

    pub(super) fn dp_cost_with(
        &mut self,
        x: &Xvsd,
        prog: Prog,
        fills: &[u64],
        calls: u32,
    ) -> Result<()> {
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

    pub(super) fn restore_bench(&mut self) -> Result<()> {
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
    pub(super) fn xvsd_cpu(&self, x: &Xvsd) -> Result<f64> {
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
    pub(super) fn expiry_bench(&mut self) -> Result<()> {
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

    pub(super) fn largest_conn_tab(&mut self) -> Result<()> {
        // Bytes per entry from the data-plane run, else a conservative guess.
        let per = self
            .rep
            .mem
            .map(|m| m.memlock as f64 / m.max_entries as f64);
        // (ABI 5: key 40 + value 64 bytes, ≈ 180 with the hash overhead.)
        let per = per.unwrap_or(220.0);
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
