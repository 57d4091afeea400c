//! Helpers around the system: processes in our namespaces (and xvsd), the
//! kernel's IPVS, listening sockets, xvsd's counters.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use xvs_testbed::{Node, Testbed};

use super::{check_interrupt, Xvsd};

/// SIGTERM, then SIGKILL, every process inside these (our) namespaces.
pub(super) fn sweep_namespaces(namespaces: &[String]) {
    let pids = |ns: &str| -> Vec<i32> {
        Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .filter(|&p: &i32| p > 1)
                    .collect()
            })
            .unwrap_or_default()
    };
    for sig in [libc::SIGTERM, libc::SIGKILL] {
        let mut any = false;
        for ns in namespaces {
            for pid in pids(ns) {
                any = true;
                // SAFETY: kill(2) of a process inside a namespace we created.
                unsafe { libc::kill(pid, sig) };
            }
        }
        if !any {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// What a running contender needs to be stopped again.
pub(super) fn first_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

pub(super) fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

/// Stop xvsd (SIGTERM: it detaches), make sure no XDP program stays on the
/// director, remove its pins.
pub(super) fn stop_xvsd(tb: &Testbed, x: Xvsd) {
    x.proc_.stop(Duration::from_secs(5));
    for dev in ["eth0", "eth1"] {
        let _ = tb.exec(
            Node::Director,
            &["ip", "link", "set", "dev", dev, "xdp", "off"],
        );
    }
    let _ = fs::remove_dir_all(&x.pin);
    let _ = fs::remove_file(&x.sock);
    let _ = fs::remove_file(format!("{}.state", x.sock));
}

/// `sh -c cmd` in the root namespace: success, and the last line it said.
pub(super) fn run_sh(cmd: &str) -> (bool, String) {
    match Command::new("sh")
        .args(["-c", cmd])
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) => {
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            (o.status.success(), first_line(&text))
        }
        Err(e) => (false, e.to_string()),
    }
}

/// Load the kernel's IPVS: `ip_vs` with a 2^20-bucket connection table
/// (the size of xvs's `--conn-tab-size 1048576`; the module's default is
/// 2^12) and `ip_vs_rr`. A no-op when they are loaded.
pub(super) fn ipvs_load() -> std::result::Result<(), String> {
    let (ok, msg) = run_sh("modprobe ip_vs conn_tab_bits=20");
    if !ok || !std::path::Path::new("/proc/net/ip_vs").exists() {
        return Err(format!(
            "no IPVS in this kernel (`modprobe ip_vs`: {})",
            if msg.is_empty() {
                "no /proc/net/ip_vs"
            } else {
                &msg
            }
        ));
    }
    let (ok, msg) = run_sh("modprobe ip_vs_rr");
    if !ok {
        return Err(format!(
            "no IPVS round-robin scheduler in this kernel (`modprobe ip_vs_rr`: {msg})"
        ));
    }
    Ok(())
}

/// Unload IPVS, which drops its connection entries in every namespace:
/// `ipvsadm -C` keeps them (and gives them back their real servers when
/// the same ones are added again), and nothing else removes them.
pub(super) fn ipvs_unload() -> std::result::Result<(), String> {
    match run_sh("modprobe -r ip_vs_rr ip_vs") {
        (true, _) => Ok(()),
        (false, msg) => Err(msg),
    }
}

/// Whether the kernel's IPVS can run here, loading it: what it is and
/// whether this run loaded it (and so may reload it), or why not.
pub(super) fn ipvs_probe() -> std::result::Result<(String, bool), String> {
    if !run_sh("command -v ipvsadm").0 {
        return Err("`ipvsadm` is missing (Debian package `ipvsadm`)".into());
    }
    // Loaded before us (or built in): someone else's, never unloaded.
    let ours = !std::path::Path::new("/sys/module/ip_vs").exists();
    ipvs_load()?;
    let bits = fs::read_to_string("/sys/module/ip_vs/parameters/conn_tab_bits")
        .map(|b| b.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let (_, version) = run_sh("ipvsadm --version");
    let fresh = if ours {
        "; `ip_vs` unloaded after every IPVS run and loaded again before the next, so each \
         starts with an empty connection table, as each xvs run starts a fresh xvsd"
    } else {
        "; `ip_vs` was loaded before this run, so it is not reloaded between runs: later \
         rounds can meet connection entries of earlier ones"
    };
    Ok((
        format!(
            "kernel {}, `{}`, connection table 2^{bits} buckets (`ip_vs conn_tab_bits`), \
             defaults otherwise (`conntrack=0`, `conn_reuse_mode=1`){fresh}",
            run_sh("uname -r").1,
            version.trim()
        ),
        ours,
    ))
}

/// Make sure nothing of xvs handles the director's packets: no xvsd in
/// its namespace, no XDP program and no tc ingress filter on its devices.
pub(super) fn director_without_xvs(tb: &Testbed) -> Result<()> {
    let ns = tb.ns(Node::Director);
    let pids = Command::new("ip")
        .args(["netns", "pids", &ns])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for pid in pids.split_whitespace() {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "xvsd" {
            bail!("xvsd (PID {pid}) still runs in the director");
        }
    }
    // One process in the director (the DR director has only eth0).
    let script = "for d in eth0 eth1; do\n\
         \x20 [ -e /sys/class/net/$d ] || continue\n\
         \x20 ip link show dev $d | grep -q prog/xdp && echo \"an XDP program on $d\"\n\
         \x20 f=$(tc filter show dev $d ingress 2>/dev/null | head -n 1)\n\
         \x20 [ -z \"$f\" ] || echo \"a tc ingress filter on $d: $f\"\n\
         done; true";
    let found = tb
        .exec_ok(Node::Director, &["sh", "-c", script])
        .map_err(|e| anyhow!("{e}"))?;
    if !found.trim().is_empty() {
        bail!(
            "the director still has xvs attached: {}",
            found.trim().replace('\n', "; ")
        );
    }
    Ok(())
}

/// `ipvsadm -L -n --stats --exact` as one line per service: what went
/// through IPVS (Conns, InPkts, OutPkts; OutPkts stays 0 with DR and TUN).
pub(super) fn ipvs_stats_line(out: &str) -> String {
    out.lines()
        .filter(|l| l.starts_with("TCP") || l.starts_with("UDP"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 5).then(|| {
                format!(
                    "{} {}: conns={} inpkts={} outpkts={}",
                    f[0], f[1], f[2], f[3], f[4]
                )
            })
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Wait until something listens on `port` (`proto` "t" or "u") in `node`.
pub(super) fn wait_listen(tb: &Testbed, node: Node, proto: &str, port: u16) -> Result<()> {
    // Generous: under emulation (`cargo xtask bench --vm`) a server can
    // take well over 10 s to come up.
    let wait = Duration::from_secs(60);
    let deadline = Instant::now() + wait;
    let flags = format!("-Hln{proto}");
    let filter = format!("sport = :{port}");
    loop {
        let out = tb
            .exec_ok(node, &["ss", &flags, &filter])
            .map_err(|e| anyhow!("{e}"))?;
        if !out.trim().is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let logs: String = tb
                .procs()
                .iter()
                .filter(|p| p.label().starts_with(&node.suffix()))
                .map(|p| format!("--- {}:\n{}", p.label(), tail(&p.log(), 800)))
                .collect();
            bail!(
                "nothing listens on {proto} port {port} in {node} after {} s\n{logs}",
                wait.as_secs()
            );
        }
        check_interrupt()?;
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The data plane's counters, from xvsd's `info` request.
pub(super) fn xvsd_counters(sock: &str) -> Result<BTreeMap<String, u64>> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"{\"op\":\"info\"}\n")?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    xvs_testbed::harness::parse_counters(&line).context("no counters in info")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipvs_stats() {
        let out = "IP Virtual Server version 1.2.1 (size=1048576)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  198.51.100.10:80                  912     5472        0   331416        0
  -> 198.51.100.11:80                  304     1824        0   110472        0
UDP  198.51.100.10:9                     2    41000        0  1148000        0
  -> 198.51.100.11:9                     1    20500        0   574000        0
";
        assert_eq!(
            ipvs_stats_line(out),
            "TCP 198.51.100.10:80: conns=912 inpkts=5472 outpkts=0; \
             UDP 198.51.100.10:9: conns=2 inpkts=41000 outpkts=0"
        );
    }
}
