//! End to end: VRRP failover between two directors with real keepalived.
//!
//! xvs does not implement VRRP. [`Testbed::dr_pair`] has two directors on
//! the direct-routing LAN; each runs the real `xvsd` with the same DR
//! service (configured with the real `xvsadm`) and Debian's keepalived in
//! VRRP-only mode (`keepalived --vrrp`, on a keepalived.conf that also
//! holds the `virtual_server` block, as an operator's would). keepalived
//! decides which director holds the VIP; the router follows its gratuitous
//! ARPs; whichever director receives the VIP's packets forwards them. The
//! real servers are prepared with the real `xvs-realserver`.
//!
//! Every test builds its own testbed; its processes (keepalived and its
//! VRRP child, xvsd, the servers) and namespaces are removed on drop, also
//! when the test fails.

use std::process::Output;
use std::time::{Duration, Instant};

use xvs_testbed::harness::{
    bin_path, client_get, client_get_output, serve, setup_real_servers, stats_row, testsrv_ok,
    vip_url, Xvsd,
};
use xvs_testbed::{
    dr_rs_ip, Keepalived, Node, Testbed, DR_CLIENT_IP, DR_DIRECTOR2_IP, DR_DIRECTOR_IP,
    DR_ROUTER_IP, DR_RS_COUNT, VIP,
};

/// How long a failover may take: from stopping the master's keepalived
/// until the backup director has counted a new connection. (keepalived:
/// a clean stop is noticed at once, a crash after 3 × advert_int + skew,
/// about 3.6 s; then the router has to follow the gratuitous ARPs.)
const FAILOVER_DEADLINE: Duration = Duration::from_secs(10);

const DIRECTORS: [Node; 2] = [Node::Director, Node::Director2];

/// keepalived.conf of director `i` (0: MASTER 150, 1: BACKUP 100), whose
/// xvsd listens on `sock`. The `virtual_server` block is what xvsd would
/// read with `--config`; `keepalived --vrrp` never looks at it (here
/// xvsadm configures xvsd). The `vrrp_script` puts the instance in FAULT
/// (VIP released) while the local xvsd does not answer, as docs/vrrp.md
/// recommends.
fn keepalived_conf(i: usize, sock: &str) -> String {
    let xvsadm = bin_path("xvsadm");
    let (state, priority) = if i == 0 {
        ("MASTER", 150)
    } else {
        ("BACKUP", 100)
    };
    let n = i + 1;
    let mut rs = String::new();
    for k in 1..=DR_RS_COUNT {
        rs.push_str(&format!(
            "    real_server {} 80 {{\n        weight 1\n        TCP_CHECK {{\n            connect_timeout 2\n        }}\n    }}\n",
            dr_rs_ip(k)
        ));
    }
    format!(
        "global_defs {{
    router_id xvs_dir{n}
    script_user root
}}

vrrp_script chk_xvsd {{
    script \"{xvsadm} --socket {sock} -L -n\"
    interval 1
    timeout 2
    fall 2
    rise 2
}}

vrrp_instance VI_XVS {{
    state {state}
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int 1
    authentication {{
        auth_type PASS
        auth_pass xvs51
    }}
    virtual_ipaddress {{
        {VIP}/32 dev eth0
    }}
    track_script {{
        chk_xvsd
    }}
}}

virtual_server {VIP} 80 {{
    delay_loop 5
    lb_algo rr
    lb_kind DR
    protocol TCP
{rs}}}
"
    )
}

/// The two-director testbed with xvsd and the DR service on both.
struct Pair {
    xvsd: [Xvsd; 2],
    tb: Testbed,
}

impl Drop for Pair {
    /// Stop every tracked process (keepalived first: it removes the VIP),
    /// then kill whatever is left in the directors' namespaces (a VRRP
    /// child whose parent died), by PID. The testbed then removes the
    /// namespaces.
    fn drop(&mut self) {
        let procs = self.tb.procs();
        for p in procs.iter().filter(|p| p.label().contains("keepalived")) {
            p.stop(Duration::from_secs(3));
        }
        for p in &procs {
            p.stop(Duration::from_secs(3));
        }
        for node in DIRECTORS {
            for pid in self.tb.netns_pids(node).unwrap_or_default() {
                eprintln!("vrrp_e2e: killing leftover pid {pid} in {node}");
                // SAFETY: kill(2) of a process inside our own namespace.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}

impl Pair {
    fn start() -> Pair {
        let tb = Testbed::dr_pair().expect("testbed");
        for node in DIRECTORS {
            assert!(
                !tb.has_addr(node, "eth0", VIP).unwrap(),
                "{node}: VIP preset"
            );
        }
        tb.start_http_servers(80).expect("http servers");
        setup_real_servers(&tb, &["--mode", "dr"]);
        let xvsd = DIRECTORS.map(|node| Xvsd::start(&tb, node, &["--interfaces", "eth0"]));
        let pair = Pair { xvsd, tb };
        let svc = format!("{VIP}:80");
        for i in 0..2 {
            pair.adm_ok(i, &["-A", "-t", &svc, "-s", "rr"]);
            for n in 1..=DR_RS_COUNT {
                let rs = format!("{}:80", dr_rs_ip(n));
                pair.adm_ok(i, &["-a", "-t", &svc, "-r", &rs, "-g"]);
            }
        }
        pair
    }

    fn adm_ok(&self, i: usize, args: &[&str]) -> String {
        self.xvsd[i].adm_ok(args)
    }

    /// (Conns, InPkts) of the service on director `i`, from
    /// `xvsadm -Ln --stats --exact`.
    fn stats(&self, i: usize) -> (u64, u64) {
        let text = self.adm_ok(i, &["-Ln", "--stats", "--exact"]);
        let row = stats_row(&text, &format!("TCP  {VIP}:80"));
        (row[0], row[1])
    }

    /// Connection counts of both directors (None while its xvsd is
    /// stopped).
    fn conns(&self) -> [Option<u64>; 2] {
        [0, 1].map(|i| self.xvsd[i].is_running().then(|| self.stats(i).0))
    }

    /// `n` HTTP requests from the client, each on a new connection.
    fn get(&self, n: u32, timeout_ms: u32) -> Output {
        client_get_output(&self.tb, Node::Client, &vip_url(), n, true, timeout_ms)
    }

    /// `n` requests that must all succeed; the names of the servers that
    /// answered.
    fn get_ok(&self, n: u32) -> Vec<String> {
        let names = client_get(&self.tb, Node::Client, &vip_url(), n, true, || self.state());
        assert_eq!(names.len(), n as usize, "{names:?}");
        names
    }

    fn keepalived(&self, i: usize) -> Keepalived {
        self.tb
            .keepalived_vrrp(DIRECTORS[i], &keepalived_conf(i, self.xvsd[i].sock()))
            .unwrap_or_else(|e| panic!("keepalived in {}: {e}", DIRECTORS[i]))
    }

    fn holds_vip(&self, i: usize) -> bool {
        self.tb.has_addr(DIRECTORS[i], "eth0", VIP).unwrap()
    }

    /// Wait until director `i` holds the VIP (and the other does not,
    /// unless `other_may_keep`), at most until `deadline`.
    fn wait_vip(&self, i: usize, other_may_keep: bool, deadline: Instant) {
        loop {
            if self.holds_vip(i) && (other_may_keep || !self.holds_vip(1 - i)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not get the VIP in time\n{}",
                DIRECTORS[i],
                self.state()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Send single requests until one is counted by director `i`'s xvsd,
    /// at most until `deadline`. Requests may fail or land on the other
    /// director while the router's ARP entry still points there.
    fn wait_served_by(&self, i: usize, deadline: Instant) {
        let before = self.stats(i).0;
        loop {
            let _ = self.get(1, 500);
            if self.stats(i).0 > before {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not serve a new connection in time\n{}",
                DIRECTORS[i],
                self.state()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `n` requests, all answered and all counted by director `i`.
    fn all_served_by(&self, i: usize, n: u32) {
        let before = self.conns();
        let names = self.get_ok(n);
        std::thread::sleep(Duration::from_millis(200));
        let after = self.conns();
        let counted = after[i].expect("xvsd runs") - before[i].expect("xvsd runs");
        assert_eq!(
            counted,
            u64::from(n),
            "{} should have counted all {n} connections: {before:?} -> {after:?} ({names:?})\n{}",
            DIRECTORS[i],
            self.state()
        );
        assert_eq!(
            after[1 - i],
            before[1 - i],
            "{} should have counted none: {before:?} -> {after:?}\n{}",
            DIRECTORS[1 - i],
            self.state()
        );
        // rr over three real servers: every one answered.
        for k in 1..=DR_RS_COUNT {
            assert!(names.contains(&format!("rs{k}")), "{names:?}");
        }
    }

    /// What the directors and the router see, for failure messages.
    fn state(&self) -> String {
        let mut s = String::new();
        for (i, node) in DIRECTORS.into_iter().enumerate() {
            let addr = self
                .tb
                .exec_ok(node, &["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
                .unwrap_or_default();
            let stats = self.xvsd[i].adm(&["-Ln", "--stats", "--exact"]);
            s.push_str(&format!(
                "--- {node}:\n{addr}{}",
                String::from_utf8_lossy(&stats.stdout)
            ));
        }
        let neigh = self
            .tb
            .exec_ok(Node::Router, &["ip", "neigh", "show", "dev", "eth1"])
            .unwrap_or_default();
        s.push_str(&format!("--- router neighbours:\n{neigh}"));
        for p in self.tb.procs() {
            if p.label().contains("keepalived") {
                let log = p.log();
                let mut start = log.len().saturating_sub(1500);
                while !log.is_char_boundary(start) {
                    start += 1;
                }
                let tail = &log[start..];
                s.push_str(&format!("--- {}:\n{tail}\n", p.label()));
            }
        }
        s
    }
}

/// Both keepalived instances up; dir (MASTER, priority 150) takes the VIP
/// and serves; dir2 (BACKUP) sees nothing.
fn start_vrrp(pair: &Pair) -> [Keepalived; 2] {
    let t0 = Instant::now();
    let ka = [pair.keepalived(0), pair.keepalived(1)];
    pair.wait_vip(0, false, t0 + Duration::from_secs(10));
    println!(
        "dir holds the VIP {:?} after keepalived started",
        t0.elapsed()
    );
    assert!(
        ka[1].log().contains("Entering BACKUP STATE"),
        "{}",
        ka[1].log()
    );
    pair.wait_served_by(0, Instant::now() + FAILOVER_DEADLINE);
    pair.all_served_by(0, 12);
    assert_eq!(pair.stats(1), (0, 0), "the backup saw traffic");
    ka
}

/// Waits until director `i` owns the VIP and its xvsd counts new
/// connections, within [`FAILOVER_DEADLINE`] of `t0`; returns how long
/// each step took.
fn failover_to(pair: &Pair, i: usize, other_may_keep: bool, t0: Instant) -> String {
    pair.wait_vip(i, other_may_keep, t0 + FAILOVER_DEADLINE);
    let vip = t0.elapsed();
    pair.wait_served_by(i, t0 + FAILOVER_DEADLINE);
    let served = t0.elapsed();
    assert!(served < FAILOVER_DEADLINE, "{served:?}");
    format!(
        "{} holds the VIP after {vip:?}, serves after {served:?}",
        DIRECTORS[i]
    )
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn vrrp_backup_takes_over_when_master_keepalived_stops_and_gives_back() {
    let pair = Pair::start();
    let [ka1, _ka2] = start_vrrp(&pair);

    // Clean stop of the master's keepalived: priority-0 advert, VIP removed.
    let t0 = Instant::now();
    let st = ka1.stop(Duration::from_secs(5)).expect("keepalived stops");
    assert!(st.success(), "keepalived exit {st}\n{}", ka1.log());
    assert!(ka1.log().contains("sent 0 priority"), "{}", ka1.log());
    let took = failover_to(&pair, 1, false, t0);
    println!("SIGTERM: {took}");
    assert!(!pair.holds_vip(0), "dir kept the VIP\n{}", pair.state());
    pair.all_served_by(1, 12);

    // The master comes back: priority 150 preempts, the VIP and the
    // traffic return to dir.
    let t0 = Instant::now();
    let _ka1 = pair.keepalived(0);
    let took = failover_to(&pair, 0, false, t0);
    println!("restart: {took}");
    pair.all_served_by(0, 12);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn vrrp_backup_takes_over_when_master_keepalived_is_killed() {
    let pair = Pair::start();
    let [ka1, _ka2] = start_vrrp(&pair);

    // SIGKILL of keepalived and its VRRP child: no priority-0 advert, the
    // VIP stays on dir's eth0 (nobody removes it). dir2 notices the missing
    // adverts after 3 x advert_int + skew and sends gratuitous ARPs, which
    // move the router's neighbour entry for the VIP.
    let t0 = Instant::now();
    ka1.crash().expect("kill keepalived");
    let took = failover_to(&pair, 1, true, t0);
    println!("SIGKILL: {took}");
    assert!(
        pair.holds_vip(0),
        "the VIP left dir without keepalived?\n{}",
        pair.state()
    );
    pair.all_served_by(1, 12);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn vrrp_backup_takes_over_when_master_xvsd_stops() {
    let mut pair = Pair::start();
    let _ka = start_vrrp(&pair);

    // xvsd stops (and detaches its XDP program): the vrrp_script fails
    // twice, keepalived puts dir's instance in FAULT and releases the VIP,
    // dir2 takes over.
    let t0 = Instant::now();
    pair.xvsd[0].stop();
    let took = failover_to(&pair, 1, false, t0);
    println!("xvsd stopped: {took}");
    pair.all_served_by(1, 12);

    // xvsd is back (its table restored from its state file): the script
    // passes again and dir, priority 150, takes the VIP back.
    let t0 = Instant::now();
    pair.xvsd[0].respawn(&pair.tb);
    let took = failover_to(&pair, 0, false, t0);
    println!("xvsd restarted: {took}");
    pair.all_served_by(0, 12);
}

/// The topology alone: two directors, the VIP on neither, the second one
/// wired like the first; everything gone after `close`.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn dr_pair_topology() {
    let tb = Testbed::dr_pair().unwrap();
    assert_eq!(tb.namespaces().len(), 8);
    assert!(tb.namespaces().contains(&tb.ns(Node::Director2)));
    for port in ["dir", "dir2"] {
        let k = tb.exec_ok(Node::Switch, &["ethtool", "-k", port]).unwrap();
        assert!(k.contains("generic-receive-offload: on"), "{port}: {k}");
        let link = tb
            .exec_ok(Node::Switch, &["ip", "-d", "link", "show", "dev", port])
            .unwrap();
        assert!(link.contains("xvs_tb_pass"), "{port}: {link}");
        assert!(link.contains("master br0"), "{port}: {link}");
    }
    for (node, ip) in [
        (Node::Director, DR_DIRECTOR_IP),
        (Node::Director2, DR_DIRECTOR2_IP),
    ] {
        assert!(!tb.has_addr(node, "eth0", VIP).unwrap(), "{node}");
        assert!(tb.has_addr(node, "eth0", ip).unwrap(), "{node}");
        let fwd = tb
            .exec_ok(node, &["sysctl", "-n", "net.ipv4.ip_forward"])
            .unwrap();
        assert_eq!(fwd.trim(), "1", "{node}");
        let route = tb
            .exec_ok(node, &["ip", "-4", "route", "get", DR_CLIENT_IP])
            .unwrap();
        assert!(route.contains(&format!("via {DR_ROUTER_IP}")), "{route}");
    }
    // The client reaches the second director through the router.
    let listen = format!("{DR_DIRECTOR2_IP}:7");
    let echo = serve(&tb, Node::Director2, "udp-echo", &listen, "dir2");
    assert_eq!(tb.netns_pids(Node::Director2).unwrap(), vec![echo.pid()]);
    let out = testsrv_ok(
        &tb,
        Node::Client,
        &["udp", &format!("{DR_DIRECTOR2_IP}:7"), "--count", "1"],
        String::new,
    );
    assert_eq!(out.trim(), "dir2: ping 0");

    let names = tb.namespaces().to_vec();
    tb.close().unwrap();
    let list = String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    for ns in names {
        assert!(
            !list.split_whitespace().any(|w| w == ns),
            "{ns} left:\n{list}"
        );
    }
}
