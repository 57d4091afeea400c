//! End to end: direct routing (`-g`) and IP tunnelling (`-i`, IPIP and GUE).
//! The real `xvsd` runs in the director of [`Testbed::dr`], driven by the
//! real `xvsadm`; the real servers are prepared by the real
//! `xvs-realserver`. Replies go from the real servers straight to the router,
//! bypassing the director. Every test builds its own testbed, which is torn
//! down on drop (also on failure).

use std::collections::BTreeMap;
use std::time::Duration;

use xvs_testbed::harness::{
    client_get, serve, server_names, setup_real_servers, stats_row, tally, testsrv, vip_url, Xvsd,
};
use xvs_testbed::{dr_rs_ip, Node, Testbed, DR_DIRECTOR_IP, DR_RS_COUNT, VIP};

/// How the real servers are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fwd {
    Dr,
    Ipip,
    Gue(u16),
}

impl Fwd {
    /// `xvsadm -a` forwarding options.
    fn adm_args(self) -> Vec<String> {
        match self {
            Fwd::Dr => vec!["-g".into()],
            Fwd::Ipip => vec!["-i".into()],
            Fwd::Gue(port) => vec![
                "-i".into(),
                "--tun-type".into(),
                "gue".into(),
                "--tun-port".into(),
                port.to_string(),
            ],
        }
    }

    /// `xvs-realserver setup` options.
    fn realserver_args(self) -> Vec<String> {
        match self {
            Fwd::Dr => vec!["--mode".into(), "dr".into()],
            Fwd::Ipip => vec!["--mode".into(), "tun".into()],
            Fwd::Gue(port) => vec![
                "--mode".into(),
                "tun".into(),
                "--tun-type".into(),
                "gue".into(),
                "--tun-port".into(),
                port.to_string(),
            ],
        }
    }
}

/// A DR/TUN testbed with xvsd running in the director.
struct Lb {
    // Field order is drop order: stop xvsd before the namespaces go.
    xvsd: Xvsd,
    tb: Testbed,
}

impl Lb {
    fn start() -> Lb {
        let tb = Testbed::dr().expect("testbed");
        let xvsd = Xvsd::start(&tb, Node::Director, &[]);
        Lb { xvsd, tb }
    }

    /// `xvs-realserver setup --vip VIP ...` on every real server.
    fn prepare_real_servers(&self, fwd: Fwd) {
        let args = fwd.realserver_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        setup_real_servers(&self.tb, &args);
    }

    /// `-A -t VIP:port -s rr` and one `-a` per real server.
    fn service(&self, proto: &str, port: u16, fwd: Fwd) {
        let svc = format!("{VIP}:{port}");
        self.xvsd.adm_ok(&["-A", proto, &svc, "-s", "rr"]);
        for n in 1..=DR_RS_COUNT {
            let rs = format!("{}:{port}", dr_rs_ip(n));
            let mut args = vec!["-a", proto, &svc, "-r", &rs];
            let fwd_args = fwd.adm_args();
            args.extend(fwd_args.iter().map(String::as_str));
            self.xvsd.adm_ok(&args);
        }
    }

    /// `n` HTTP requests from the client, each on a new connection; the
    /// name of the server that answered each.
    fn get(&self, n: u32) -> Vec<String> {
        client_get(&self.tb, Node::Client, &vip_url(), n, true, || {
            self.xvsd.report()
        })
    }

    /// Packet counters of the director's and the real servers' interfaces.
    fn wire(&self) -> Wire {
        let stat = |node, dev, s| self.tb.if_stat(node, dev, s).unwrap();
        Wire {
            director_rx: stat(Node::Director, "eth0", "rx_packets"),
            router_rx: stat(Node::Router, "eth1", "rx_packets"),
            rs_tx: (1..=DR_RS_COUNT)
                .map(|n| stat(Node::Rs(n), "eth0", "tx_packets"))
                .sum(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Wire {
    director_rx: u64,
    router_rx: u64,
    rs_tx: u64,
}

fn even_split() -> BTreeMap<String, usize> {
    (1..=DR_RS_COUNT).map(|n| (format!("rs{n}"), 10)).collect()
}

/// Thirty requests split 10/10/10, and proof that the replies bypassed the
/// director: xvs saw no packet out (OutPkts 0), and the director's interface
/// received only the client's packets (what xvs counted in), not one of the
/// real servers' replies, which reached the router directly.
fn balance_thirty_and_bypass(lb: &Lb, fwd: Fwd) {
    lb.tb.start_http_servers(80).unwrap();
    lb.prepare_real_servers(fwd);
    lb.service("-t", 80, fwd);

    let before = lb.wire();
    let got = lb.get(30);
    assert_eq!(tally(&got), even_split(), "{fwd:?}: {got:?}");
    // Let the last FIN/ACK exchanges land.
    std::thread::sleep(Duration::from_millis(300));
    let after = lb.wire();

    let stats = lb.xvsd.adm_ok(&["-Ln", "--stats", "--exact"]);
    let [conns, inpkts, outpkts, _, outbytes] = stats_row(&stats, &format!("TCP  {VIP}:80"));
    assert_eq!(conns, 30, "{fwd:?}\n{stats}");
    assert!(inpkts >= 30 * 3, "{fwd:?}: InPkts {inpkts}\n{stats}");
    assert_eq!(
        (outpkts, outbytes),
        (0, 0),
        "{fwd:?}: replies seen\n{stats}"
    );
    for n in 1..=DR_RS_COUNT {
        let row = stats_row(&stats, &format!("-> {}:80", dr_rs_ip(n)));
        assert_eq!(row[0], 10, "{fwd:?}\n{stats}");
        assert_eq!(row[2], 0, "{fwd:?}\n{stats}");
    }

    let director_rx = after.director_rx - before.director_rx;
    let router_rx = after.router_rx - before.router_rx;
    let rs_tx = after.rs_tx - before.rs_tx;
    let wire = format!(
        "{fwd:?}: director eth0 rx {director_rx}, router eth1 rx {router_rx}, \
         real servers tx {rs_tx}, xvs InPkts {inpkts}\n{stats}"
    );
    println!("{wire}");
    // Each connection: at least SYN-ACK, response and FIN from the server.
    assert!(rs_tx >= 30 * 3, "{wire}");
    // The director received the client's packets plus a little ARP, and
    // none of the real servers' packets.
    assert!(director_rx <= inpkts + 20, "{wire}");
    assert!(director_rx + rs_tx / 2 < inpkts + rs_tx, "{wire}");
    // Those went to the router instead.
    assert!(router_rx + 10 >= rs_tx, "{wire}");
}

/// `xvs-realserver teardown` on every real server puts back what setup
/// changed.
fn teardown_real_servers(lb: &Lb, fwd: Fwd) {
    for n in 1..=DR_RS_COUNT {
        let node = Node::Rs(n);
        let out = lb.tb.realserver(node, &["teardown", "--vip", VIP]).unwrap();
        assert!(out.contains(&format!("removed {VIP}/32 from lo")), "{out}");
        let lo = lb
            .tb
            .exec_ok(node, &["ip", "-4", "-o", "addr", "show", "dev", "lo"])
            .unwrap();
        assert!(!lo.contains(VIP), "rs{n}: {lo}");
        for key in ["all/arp_ignore", "all/arp_announce", "eth0/arp_ignore"] {
            let v = lb
                .tb
                .exec_ok(node, &["cat", &format!("/proc/sys/net/ipv4/conf/{key}")])
                .unwrap();
            assert_eq!(v.trim(), "0", "rs{n} {key}");
        }
        let link = lb
            .tb
            .exec_ok(node, &["ip", "-d", "link", "show", "dev", "eth0"])
            .unwrap();
        assert!(
            !link.contains("xdp"),
            "{fwd:?} rs{n}: XDP left on eth0\n{link}"
        );
        let status = lb.tb.realserver(node, &["status"]).unwrap();
        assert!(status.contains("no VIPs set up"), "{status}");
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn dr_splits_thirty_requests_and_replies_bypass_the_director() {
    let lb = Lb::start();
    balance_thirty_and_bypass(&lb, Fwd::Dr);
    let list = lb.xvsd.adm_ok(&["-Ln"]);
    for n in 1..=DR_RS_COUNT {
        let row = format!("  -> {}:80", dr_rs_ip(n));
        let line = list.lines().find(|l| l.starts_with(&row));
        assert!(line.is_some_and(|l| l.contains(" Route ")), "{list}");
    }
    let saved = lb.xvsd.adm_ok(&["-S", "-n"]);
    assert!(
        saved.contains(&format!("-a -t {VIP}:80 -r {}:80 -g -w 1", dr_rs_ip(1))),
        "{saved}"
    );
    teardown_real_servers(&lb, Fwd::Dr);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn tun_ipip_splits_thirty_requests_and_replies_bypass_the_director() {
    let lb = Lb::start();
    balance_thirty_and_bypass(&lb, Fwd::Ipip);
    let info = lb.xvsd.adm_ok(&["-Ln", "--tun-info"]);
    assert!(info.contains("TunnelInfo"), "{info}");
    for n in 1..=DR_RS_COUNT {
        let row = format!("  -> {}:80", dr_rs_ip(n));
        let line = info.lines().find(|l| l.starts_with(&row));
        assert!(line.is_some_and(|l| l.contains(" Tunnel  ipip ")), "{info}");
    }
    let saved = lb.xvsd.adm_ok(&["-S", "-n"]);
    assert!(
        saved.contains(&format!(
            "-a -t {VIP}:80 -r {}:80 -i -w 1 --tun-type ipip",
            dr_rs_ip(2)
        )),
        "{saved}"
    );
    teardown_real_servers(&lb, Fwd::Ipip);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn tun_gue_splits_thirty_requests_and_replies_bypass_the_director() {
    let lb = Lb::start();
    balance_thirty_and_bypass(&lb, Fwd::Gue(6080));
    let info = lb.xvsd.adm_ok(&["-Ln", "--tun-info"]);
    for n in 1..=DR_RS_COUNT {
        let row = format!("  -> {}:80", dr_rs_ip(n));
        let line = info.lines().find(|l| l.starts_with(&row));
        assert!(
            line.is_some_and(|l| l.contains(" Tunnel  gue:6080:")),
            "{info}"
        );
    }
    let saved = lb.xvsd.adm_ok(&["-S", "-n"]);
    assert!(
        saved.contains(&format!(
            "-a -t {VIP}:80 -r {}:80 -i -w 1 --tun-type gue --tun-port 6080",
            dr_rs_ip(3)
        )),
        "{saved}"
    );
    teardown_real_servers(&lb, Fwd::Gue(6080));
}

/// A UDP datagram that fits the path but not the path plus the 20-byte
/// IPIP header, sent with DF (Linux's default for UDP), comes back as ICMP
/// "fragmentation needed" with MTU 1480; the client's route cache learns it
/// and the next datagram, sized for it, goes through the tunnel.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn tun_answers_too_big_with_frag_needed() {
    let lb = Lb::start();
    lb.prepare_real_servers(Fwd::Ipip);
    // UDP replies must come from the VIP: bind it explicitly.
    for n in 1..=DR_RS_COUNT {
        let name = format!("rs{n}");
        serve(&lb.tb, Node::Rs(n), "udp-echo", &format!("{VIP}:53"), &name);
    }
    lb.service("-u", 53, Fwd::Ipip);
    let udp = |payload: &str, count: &str| {
        testsrv(
            &lb.tb,
            Node::Client,
            &[
                "udp",
                &format!("{VIP}:53"),
                "--count",
                count,
                "--new-conn",
                "--timeout-ms",
                "1000",
                "--payload",
                payload,
            ],
        )
    };
    // Small datagrams go through the tunnel and come back from the VIP.
    let out = udp("hi", "3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}\ncounters {:?}",
        String::from_utf8_lossy(&out.stderr),
        lb.xvsd.counters_or_empty()
    );
    let names = server_names(&text);
    assert_eq!(
        tally(&names),
        (1..=DR_RS_COUNT).map(|n| (format!("rs{n}"), 1)).collect(),
        "{text}"
    );

    let frag_before = lb.xvsd.counters_or_empty().get("icmp_frag_needed").copied();
    // 1470 + " 0" = 1472 bytes of UDP payload: a 1500-byte IP packet.
    let out = udp(&"x".repeat(1470), "1");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let route = lb
        .tb
        .exec_ok(Node::Client, &["ip", "-4", "route", "get", VIP])
        .unwrap();
    let counters = lb.xvsd.counters_or_empty();
    assert!(
        route.contains("mtu 1480"),
        "no PMTU learnt: {route}\nclient: {text}\ncounters {counters:?}"
    );
    if let (Some(b), Some(a)) = (frag_before, counters.get("icmp_frag_needed")) {
        assert!(*a > b, "icmp_frag_needed {b} -> {a}");
    }
    // Sized for the learnt MTU: 1450 + " 0" = 1452 bytes, a 1480-byte packet.
    let out = udp(&"y".repeat(1450), "1");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\ncounters {:?}",
        lb.xvsd.counters_or_empty()
    );
    assert!(text.starts_with("rs"), "{text}");
}

/// A real server at the director's own address, over DR and over TUN:
/// the packet goes to the director's own stack unchanged (IPVS's
/// transmitters on a local route), which answers as the VIP.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_real_server_on_the_director_itself_gets_its_share() {
    for fwd in [Fwd::Dr, Fwd::Ipip] {
        let lb = Lb::start();
        lb.tb.start_http_servers(80).unwrap();
        lb.prepare_real_servers(fwd);
        let _own = serve(&lb.tb, Node::Director, "http", "0.0.0.0:80", "director");
        let svc = format!("{VIP}:80");
        lb.xvsd.adm_ok(&["-A", "-t", &svc, "-s", "rr"]);
        let fwd_args = fwd.adm_args();
        for rs in [
            format!("{}:80", dr_rs_ip(1)),
            format!("{DR_DIRECTOR_IP}:80"),
        ] {
            let mut args = vec!["-a", "-t", &svc, "-r", &rs];
            args.extend(fwd_args.iter().map(String::as_str));
            lb.xvsd.adm_ok(&args);
        }
        let got = lb.get(10);
        let mut want = BTreeMap::new();
        want.insert("director".to_string(), 5);
        want.insert("rs1".to_string(), 5);
        assert_eq!(tally(&got), want, "{fwd:?}: {got:?}\n{}", lb.xvsd.report());
        let c = lb.xvsd.counters();
        assert!(c["pass_local"] >= 5, "{fwd:?}: {c:?}");
    }
}
