//! End to end: direct routing (`-g`) and IP tunnelling (`-i`, IPIP and GUE).
//! The real `xvsd` runs in the director of [`Testbed::dr`], driven by the
//! real `xvsadm`; the real servers are prepared by the real
//! `xvs-realserver`. Replies go from the real servers straight to the router,
//! bypassing the director. Every test builds its own testbed, which is torn
//! down on drop (also on failure).

use std::collections::BTreeMap;
use std::process::Output;
use std::time::{Duration, Instant};

use xvs_testbed::{bin, dr_rs_ip, Node, Proc, Testbed, DR_RS_COUNT, VIP};

fn path(name: &str) -> String {
    bin(name).unwrap().to_string_lossy().into_owned()
}

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
    xvsd: Proc,
    sock: String,
    tb: Testbed,
}

impl Lb {
    fn start() -> Lb {
        let tb = Testbed::dr().expect("testbed");
        let sock = tb
            .run_dir()
            .join("xvsd.sock")
            .to_string_lossy()
            .into_owned();
        let xvsd = spawn_xvsd(&tb, &sock);
        Lb { xvsd, sock, tb }
    }

    fn adm(&self, args: &[&str]) -> Output {
        let mut argv = vec![path("xvsadm"), "--socket".into(), self.sock.clone()];
        argv.extend(args.iter().map(|s| s.to_string()));
        std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .output()
            .expect("run xvsadm")
    }

    fn adm_ok(&self, args: &[&str]) -> String {
        let out = self.adm(args);
        assert!(
            out.status.success(),
            "xvsadm {args:?}: {}\n{}\nxvsd log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.xvsd.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `xvs-realserver setup --vip VIP ...` on every real server.
    fn prepare_real_servers(&self, fwd: Fwd) {
        for n in 1..=DR_RS_COUNT {
            let mut args = vec!["setup".to_string(), "--vip".into(), VIP.into()];
            args.extend(fwd.realserver_args());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = self
                .tb
                .realserver(Node::Rs(n), &args)
                .unwrap_or_else(|e| panic!("rs{n}: xvs-realserver {args:?}: {e}"));
            assert!(out.contains(&format!("{VIP}/32 to lo")), "rs{n}: {out}");
        }
    }

    /// `-A -t VIP:port -s rr` and one `-a` per real server.
    fn service(&self, proto: &str, port: u16, fwd: Fwd) {
        let svc = format!("{VIP}:{port}");
        self.adm_ok(&["-A", proto, &svc, "-s", "rr"]);
        for n in 1..=DR_RS_COUNT {
            let rs = format!("{}:{port}", dr_rs_ip(n));
            let mut args = vec!["-a", proto, &svc, "-r", &rs];
            let fwd_args = fwd.adm_args();
            args.extend(fwd_args.iter().map(String::as_str));
            self.adm_ok(&args);
        }
    }

    /// `n` HTTP requests from the client, each on a new connection; the
    /// name of the server that answered each.
    fn get(&self, n: u32) -> Vec<String> {
        let out = self
            .tb
            .exec(
                Node::Client,
                &[
                    &path("xvs-testsrv"),
                    "get",
                    &format!("http://{VIP}/"),
                    "--count",
                    &n.to_string(),
                    "--new-conn",
                    "--timeout-ms",
                    "3000",
                ],
            )
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "get: {}\n{stdout}{}\ncounters: {:?}\nxvsd log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.counters(),
            self.xvsd.log()
        );
        stdout.lines().map(str::to_string).collect()
    }

    /// The data plane's counters, from xvsd's `info` request.
    fn counters(&self) -> BTreeMap<String, u64> {
        use std::io::{BufRead, BufReader, Write};
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(&self.sock) else {
            return BTreeMap::new();
        };
        if s.write_all(b"{\"op\":\"info\"}\n").is_err() {
            return BTreeMap::new();
        }
        let mut line = String::new();
        let _ = BufReader::new(s).read_line(&mut line);
        // "counters":[["rx",12],["pass_not_ip",0],...]
        let Some(list) = line.split("\"counters\":[").nth(1) else {
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for item in list
            .split("],")
            .map(|i| i.trim_matches(|c| "[]}\n".contains(c)))
        {
            if let Some((k, v)) = item.split_once(',') {
                if let Ok(v) = v.trim_matches(']').parse() {
                    out.insert(k.trim_matches('"').to_string(), v);
                }
            }
        }
        out
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

fn spawn_xvsd(tb: &Testbed, sock: &str) -> Proc {
    let pin = tb.bpffs().join("xvs").to_string_lossy().into_owned();
    let xvsd = tb
        .spawn(
            Node::Director,
            &[
                &path("xvsd"),
                "--socket",
                sock,
                "--pin-path",
                &pin,
                "--conn-tab-size",
                "65536",
            ],
        )
        .expect("spawn xvsd");
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::os::unix::net::UnixStream::connect(sock).is_err() {
        if let Some(st) = xvsd.try_wait() {
            panic!("xvsd exited ({st}):\n{}", xvsd.log());
        }
        assert!(
            Instant::now() < deadline,
            "xvsd socket not up:\n{}",
            xvsd.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    xvsd
}

fn tally(names: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for n in names {
        *m.entry(n.clone()).or_insert(0) += 1;
    }
    m
}

fn even_split() -> BTreeMap<String, usize> {
    (1..=DR_RS_COUNT).map(|n| (format!("rs{n}"), 10)).collect()
}

/// Parses `-Ln --stats` into (Conns, InPkts, OutPkts, InBytes, OutBytes)
/// of the line that starts with the given text.
fn stats_row(text: &str, start: &str) -> [u64; 5] {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(start))
        .unwrap_or_else(|| panic!("no row {start} in\n{text}"));
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let n = nums.len();
    assert!(n >= 5, "{line}");
    [
        nums[n - 5],
        nums[n - 4],
        nums[n - 3],
        nums[n - 2],
        nums[n - 1],
    ]
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

    let stats = lb.adm_ok(&["-Ln", "--stats", "--exact"]);
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
    let list = lb.adm_ok(&["-Ln"]);
    for n in 1..=DR_RS_COUNT {
        let row = format!("  -> {}:80", dr_rs_ip(n));
        let line = list.lines().find(|l| l.starts_with(&row));
        assert!(line.is_some_and(|l| l.contains(" Route ")), "{list}");
    }
    let saved = lb.adm_ok(&["-S", "-n"]);
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
    let info = lb.adm_ok(&["-Ln", "--tun-info"]);
    assert!(info.contains("TunnelInfo"), "{info}");
    for n in 1..=DR_RS_COUNT {
        let row = format!("  -> {}:80", dr_rs_ip(n));
        let line = info.lines().find(|l| l.starts_with(&row));
        assert!(line.is_some_and(|l| l.contains(" Tunnel  ipip ")), "{info}");
    }
    let saved = lb.adm_ok(&["-S", "-n"]);
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
    let info = lb.adm_ok(&["-Ln", "--tun-info"]);
    for n in 1..=DR_RS_COUNT {
        let row = format!("  -> {}:80", dr_rs_ip(n));
        let line = info.lines().find(|l| l.starts_with(&row));
        assert!(
            line.is_some_and(|l| l.contains(" Tunnel  gue:6080:")),
            "{info}"
        );
    }
    let saved = lb.adm_ok(&["-S", "-n"]);
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
        let p = lb
            .tb
            .spawn(
                Node::Rs(n),
                &[
                    &path("xvs-testsrv"),
                    "udp-echo",
                    "--listen",
                    &format!("{VIP}:53"),
                    "--name",
                    &format!("rs{n}"),
                ],
            )
            .unwrap();
        p.wait_for_log("listening on", Duration::from_secs(5))
            .unwrap();
    }
    lb.service("-u", 53, Fwd::Ipip);
    let udp = |payload: &str, count: &str| {
        lb.tb
            .exec(
                Node::Client,
                &[
                    &path("xvs-testsrv"),
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
            .unwrap()
    };
    // Small datagrams go through the tunnel and come back from the VIP.
    let out = udp("hi", "3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}\ncounters {:?}",
        String::from_utf8_lossy(&out.stderr),
        lb.counters()
    );
    let names: Vec<String> = text
        .lines()
        .map(|l| l.split(':').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        tally(&names),
        (1..=DR_RS_COUNT).map(|n| (format!("rs{n}"), 1)).collect(),
        "{text}"
    );

    let frag_before = lb.counters().get("icmp_frag_needed").copied();
    // 1470 + " 0" = 1472 bytes of UDP payload: a 1500-byte IP packet.
    let out = udp(&"x".repeat(1470), "1");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let route = lb
        .tb
        .exec_ok(Node::Client, &["ip", "-4", "route", "get", VIP])
        .unwrap();
    let counters = lb.counters();
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
    assert!(out.status.success(), "{text}\ncounters {:?}", lb.counters());
    assert!(text.starts_with("rs"), "{text}");
}
