//! Starting and stopping a contender: nft, haproxy, nginx, xvsd, IPVS, XDP.

use std::fmt::Write as _;
use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use xvs_testbed::{interrupted, Node, Testbed, VIP, XDP_DROP, XDP_TX};

use super::probes::{
    director_without_xvs, ipvs_load, ipvs_unload, stop_xvsd, sweep_namespaces, tail, wait_listen,
    xvsd_counters,
};
use super::{path_str, Active, BedId, Contender, Harness, Xvsd, UDP_PORT};

impl Harness {
    pub(super) fn setup(&mut self, c: Contender) -> Result<Active> {
        let bed = c.bed();
        let tb = self.bed(bed);
        let mut a = Active::default();
        let rs: Vec<String> = (1..=3u8).map(|n| tb.rs_addr(n)).collect();
        match c {
            Contender::Direct | Contender::Fwd | Contender::DirectDr => {}
            Contender::Nft => setup_nft(tb, &rs, &mut a)?,
            Contender::Haproxy => setup_haproxy(tb, &rs, &mut a)?,
            Contender::Nginx => setup_nginx(tb, &rs, &mut a)?,
            Contender::XvsNat
            | Contender::XvsNatXdp
            | Contender::XvsNat1
            | Contender::XvsDr
            | Contender::XvsDrXdp
            | Contender::XvsTun
            | Contender::XvsTunXdp => self.setup_xvs(c, &rs, &mut a)?,
            Contender::IpvsNat | Contender::IpvsDr | Contender::IpvsTun => {
                setup_ipvs(tb, c, &rs, &mut a)?
            }
            Contender::XdpDrop => {
                tb.xdp_action(Node::Director, "eth0", XDP_DROP)
                    .map_err(|e| anyhow!("{e}"))?;
                a.xdp.push((Node::Director, "eth0"));
            }
            Contender::XdpTx => {
                // XDP_TX into a veth only delivers when the peer runs XDP
                // itself; the client drops the bounced frames there, where
                // they are counted.
                tb.xdp_action(Node::Client, "eth0", XDP_DROP)
                    .map_err(|e| anyhow!("{e}"))?;
                a.xdp.push((Node::Client, "eth0"));
                tb.xdp_action(Node::Director, "eth0", XDP_TX)
                    .map_err(|e| anyhow!("{e}"))?;
                a.xdp.push((Node::Director, "eth0"));
            }
        }
        Ok(a)
    }

    /// xvsd with the services of contender `c` over the real servers `rs`.
    fn setup_xvs(&mut self, c: Contender, rs: &[String], a: &mut Active) -> Result<()> {
        let bed = c.bed();
        let (ifs, fwd) = match c {
            Contender::XvsNat | Contender::XvsNatXdp | Contender::XvsNat1 => ("eth0,eth1", "-m"),
            Contender::XvsDr | Contender::XvsDrXdp => ("eth0", "-g"),
            _ => ("eth0", "-i"),
        };
        let mode = match c {
            Contender::XvsNatXdp | Contender::XvsDrXdp | Contender::XvsTunXdp => "xdp",
            _ => "tc",
        };
        let x = self.start_xvsd(bed, ifs, &["--conn-tab-size", "1048576", "--attach", mode])?;
        let tb = self.bed(bed);
        let dests = if c == Contender::XvsNat1 {
            &rs[..1]
        } else {
            rs
        };
        let setup = (|| -> Result<()> {
            for (proto, port) in [("-t", 80u16), ("-u", UDP_PORT)] {
                let svc = format!("{VIP}:{port}");
                self.adm(&x.sock, &["-A", proto, &svc, "-s", "rr"])?;
                for r in dests {
                    self.adm(
                        &x.sock,
                        &["-a", proto, &svc, "-r", &format!("{r}:{port}"), fwd],
                    )?;
                }
            }
            // Resolve the real servers' neighbours before measuring
            // (else the first packets take the kernel fallback).
            for r in rs {
                let _ = tb.exec(Node::Director, &["ping", "-c", "1", "-W", "1", r]);
            }
            Ok(())
        })();
        a.xvsd = Some(x);
        setup?;
        Ok(())
    }

    pub(super) fn teardown(&mut self, c: Contender, a: Active) -> Result<()> {
        let tb = self.bed(c.bed());
        let mut errors = Vec::new();
        let mut unload_failed = None;
        for p in &a.procs {
            p.stop(Duration::from_secs(3));
        }
        if !a.procs.is_empty() {
            // nginx workers outlive a killed master; nothing else of ours
            // runs in the director.
            sweep_namespaces(&[tb.ns(Node::Director)]);
        }
        if a.nft {
            if let Err(e) = tb.exec_ok(
                Node::Director,
                &["nft", "delete", "table", "ip", "xvsbench"],
            ) {
                errors.push(e.to_string());
            }
        }
        if a.ipvs {
            // Cleared, and checked: the next contender runs without IPVS
            // services; then unloaded (when this run loaded it), which
            // drops its connection entries too.
            match tb.exec_ok(Node::Director, &["sh", "-c", "ipvsadm -C && ipvsadm -S -n"]) {
                Ok(left) if left.trim().is_empty() => {}
                Ok(left) => errors.push(format!("ipvsadm -C left: {}", left.trim())),
                Err(e) => errors.push(e.to_string()),
            }
            if self.ipvs_ours {
                unload_failed = ipvs_unload().err();
            }
        }
        if let Some(x) = a.xvsd {
            stop_xvsd(tb, x);
        }
        for (node, dev) in a.xdp {
            if let Err(e) = tb.xdp_off(node, dev) {
                errors.push(e.to_string());
            }
        }
        if let Some(e) = unload_failed {
            self.ipvs_ours = false;
            let note = format!(
                "`modprobe -r ip_vs` failed after a `{}` run ({e}): later IPVS runs can meet connection entries of earlier ones",
                c.name()
            );
            println!("  {note}");
            self.rep.notes.push(note);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("{}", errors.join("; "))
        }
    }

    pub(super) fn start_xvsd(&mut self, bed: BedId, ifs: &str, extra: &[&str]) -> Result<Xvsd> {
        self.k += 1;
        let tb = self.bed(bed);
        let sock = path_str(tb.run_dir().join(format!("xvsd-{}.sock", self.k)));
        let pin = tb.bpffs().join(format!("xvs-{}", self.k));
        let mut argv = vec![
            self.bins.xvsd.as_str(),
            "--socket",
            &sock,
            "--interfaces",
            ifs,
        ];
        let pin_s = path_str(pin.clone());
        argv.extend(["--pin-path", &pin_s]);
        argv.extend_from_slice(extra);
        let p = tb
            .spawn(Node::Director, &argv)
            .map_err(|e| anyhow!("{e}"))?;
        let x = Xvsd {
            proc_: p,
            sock,
            pin,
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        // xvsd binds its socket before it loads the data plane: wait until
        // it answers a request, not just until the socket exists.
        while xvsd_counters(&x.sock).is_err() {
            if let Some(st) = x.proc_.try_wait() {
                let log = x.proc_.log();
                let _ = fs::remove_dir_all(&x.pin);
                bail!("xvsd exited ({st}):\n{}", tail(&log, 1500));
            }
            if Instant::now() > deadline || interrupted() {
                stop_xvsd(tb, x);
                bail!("xvsd's socket did not come up");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(x)
    }

    pub(super) fn adm(&self, sock: &str, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.bins.xvsadm)
            .arg("--socket")
            .arg(sock)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running xvsadm")?;
        if !out.status.success() {
            bail!(
                "xvsadm {}: {}: {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// nft's DNAT over the real servers, round robin.
fn setup_nft(tb: &Testbed, rs: &[String], a: &mut Active) -> Result<()> {
    let map = |_: ()| {
        rs.iter()
            .enumerate()
            .map(|(i, r)| format!("{i} : {r}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let conf = format!(
            "table ip xvsbench {{\n  chain pre {{\n    type nat hook prerouting priority dstnat; policy accept;\n    \
             ip daddr {VIP} tcp dport 80 dnat to numgen inc mod 3 map {{ {m} }}\n    \
             ip daddr {VIP} udp dport {UDP_PORT} dnat to numgen inc mod 3 map {{ {m} }}\n  }}\n}}\n",
            m = map(())
        );
    let p = tb.run_dir().join("nft.conf");
    fs::write(&p, conf)?;
    tb.exec_ok(Node::Director, &["nft", "-f", &path_str(p)])
        .map_err(|e| anyhow!("{e}"))?;
    a.nft = true;
    Ok(())
}

/// haproxy in TCP mode, round robin.
fn setup_haproxy(tb: &Testbed, rs: &[String], a: &mut Active) -> Result<()> {
    let servers: String = rs
        .iter()
        .enumerate()
        .map(|(i, r)| format!("  server rs{} {r}:80\n", i + 1))
        .collect();
    let conf = format!(
            "global\n  maxconn 8000\n  nbthread 2\n\
             defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
             frontend fe\n  bind {VIP}:80 backlog 4096\n  default_backend be\n\
             backend be\n  balance roundrobin\n{servers}"
        );
    let p = tb.run_dir().join("haproxy.cfg");
    fs::write(&p, conf)?;
    let pr = tb
        .spawn(Node::Director, &["haproxy", "-f", &path_str(p), "-db"])
        .map_err(|e| anyhow!("{e}"))?;
    a.procs.push(pr);
    wait_listen(tb, Node::Director, "t", 80)?;
    Ok(())
}

/// nginx's stream module, TCP and UDP.
fn setup_nginx(tb: &Testbed, rs: &[String], a: &mut Active) -> Result<()> {
    let dir = tb.run_dir().join("nginx-dir");
    fs::create_dir_all(&dir)?;
    let d = dir.display();
    let up = |port: u16| -> String {
        rs.iter()
            .map(|r| format!("    server {r}:{port};\n"))
            .collect()
    };
    let conf = format!(
            "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n\
             daemon off;\nmaster_process on;\nworker_processes 2;\npid {d}/nginx.pid;\n\
             error_log stderr warn;\nworker_rlimit_nofile 200000;\n\
             events {{ worker_connections 65536; }}\n\
             stream {{\n  upstream http_rs {{\n{h}  }}\n  upstream udp_rs {{\n{u}  }}\n\
             \x20 server {{ listen {VIP}:80 backlog=4096; proxy_pass http_rs; }}\n\
             \x20 server {{ listen {VIP}:{UDP_PORT} udp; proxy_pass udp_rs; proxy_responses 0; proxy_timeout 1s; }}\n}}\n",
            h = up(80),
            u = up(UDP_PORT)
        );
    let p = dir.join("nginx.conf");
    fs::write(&p, conf)?;
    let prefix = format!("{d}/");
    let pr = tb
        .spawn(
            Node::Director,
            &[
                "nginx",
                "-p",
                &prefix,
                "-c",
                &path_str(p.clone()),
                "-e",
                "stderr",
            ],
        )
        .map_err(|e| anyhow!("{e}"))?;
    a.procs.push(pr);
    wait_listen(tb, Node::Director, "t", 80)?;
    wait_listen(tb, Node::Director, "u", UDP_PORT)?;
    Ok(())
}

/// The kernel's IPVS, configured by one `ipvsadm -R`.
fn setup_ipvs(tb: &Testbed, c: Contender, rs: &[String], a: &mut Active) -> Result<()> {
    let fwd = match c {
        Contender::IpvsNat => "-m",
        Contender::IpvsDr => "-g",
        _ => "-i",
    };
    // Loaded again when the last IPVS run unloaded it.
    ipvs_load().map_err(|e| anyhow!("{e}"))?;
    // The kernel's IPVS alone: nothing of xvs on the director.
    director_without_xvs(tb)?;
    // `-A -t VIP:80 -s rr`, `-a -t VIP:80 -r RS:80 -m|-g|-i` ×3,
    // and UDP likewise, restored by one ipvsadm: under
    // emulation every process start counts.
    let mut rules = String::new();
    for (proto, port) in [("-t", 80u16), ("-u", UDP_PORT)] {
        let _ = writeln!(rules, "-A {proto} {VIP}:{port} -s rr");
        for r in rs {
            let _ = writeln!(rules, "-a {proto} {VIP}:{port} -r {r}:{port} {fwd} -w 1");
        }
    }
    let file = tb.run_dir().join(format!("{}.rules", c.name()));
    fs::write(&file, &rules)?;
    // LVS-NAT forwards the real servers' replies.
    let check_fwd = if c == Contender::IpvsNat {
        "[ \"$(sysctl -n net.ipv4.ip_forward)\" = 1 ] || \
             { echo 'net.ipv4.ip_forward is off in the director' >&2; exit 1; }\n"
    } else {
        ""
    };
    let script = format!(
        "{check_fwd}ipvsadm -C && ipvsadm -R < '{}' && ipvsadm -S -n",
        file.display()
    );
    let r = tb
        .exec_ok(Node::Director, &["sh", "-c", &script])
        .map_err(|e| anyhow!("{e}"))
        .and_then(|saved| {
            let got = saved.lines().filter(|l| !l.trim().is_empty()).count();
            if got != rules.lines().count() {
                bail!("ipvsadm -S -n after -R:\n{saved}");
            }
            Ok(())
        });
    if let Err(e) = r {
        let _ = tb.exec(Node::Director, &["ipvsadm", "-C"]);
        return Err(e);
    }
    a.ipvs = true;
    // Neighbours resolved before measuring, as for xvs.
    let pings = format!(
        "for r in {}; do ping -c 1 -W 1 $r; done >/dev/null 2>&1; true",
        rs.join(" ")
    );
    let _ = tb.exec(Node::Director, &["sh", "-c", &pings]);
    Ok(())
}
