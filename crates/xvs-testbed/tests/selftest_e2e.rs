//! End to end: the kernel's own IPVS selftest
//! (`tools/testing/selftests/net/netfilter/ipvs.sh`) replayed with xvs — its
//! topology ([`Testbed::selftest`]), its per-case sysctls and its
//! `ipvsadm` lines run by `xvsadm` against the real `xvsd` — plus DR with
//! the director's forwarding off, which IPVS does not need (it transmits
//! from LOCAL_IN) and which is the kernel's default. The script's TUN case
//! already runs with forwarding off. Each case builds a fresh testbed, as
//! the script does, torn down on drop (also on failure).

use xvs_testbed::harness::{client_get, serve, Xvsd};
use xvs_testbed::selftest::{ST_RS_IP, ST_VIP};
use xvs_testbed::{Node, Testbed};

const PORT: u16 = 8080;
const REQUESTS: u32 = 10;

fn sysctls(tb: &Testbed, node: Node, settings: &[&str]) {
    let mut argv = vec!["sysctl", "-q", "-w"];
    argv.extend_from_slice(settings);
    tb.exec_ok(node, &argv)
        .unwrap_or_else(|e| panic!("sysctl in {node}: {e}"));
}

fn sh(tb: &Testbed, node: Node, argv: &[&str]) {
    tb.exec_ok(node, argv)
        .unwrap_or_else(|e| panic!("{} in {node}: {e}", argv.join(" ")));
}

/// The director: the VIP on `lo` (the script's `lo:1`), forwarding as the
/// case says, xvsd on both links, the service with the case's one real
/// server.
fn director(tb: &Testbed, forwarding: bool, fwd_opt: Option<&str>) -> Xvsd {
    let vip32 = format!("{ST_VIP}/32");
    sh(
        tb,
        Node::Director,
        &["ip", "addr", "add", &vip32, "dev", "lo"],
    );
    let f = format!("net.ipv4.ip_forward={}", u8::from(forwarding));
    sysctls(tb, Node::Director, &[&f]);
    if !forwarding {
        sysctls(
            tb,
            Node::Director,
            &[
                "net.ipv4.conf.all.send_redirects=0",
                "net.ipv4.conf.default.send_redirects=0",
            ],
        );
    }
    let xvsd = Xvsd::start(tb, Node::Director, &["--interfaces", "veth10,veth12"]);
    let vip = format!("{ST_VIP}:{PORT}");
    let rs = format!("{ST_RS_IP}:{PORT}");
    xvsd.adm_ok(&["-A", "-t", &vip, "-s", "rr"]);
    let mut add = vec!["-a"];
    add.extend(fwd_opt);
    add.extend(["-t", &vip, "-r", &rs]);
    xvsd.adm_ok(&add);
    xvsd
}

/// The script's DR/TUN real server: the VIP on `lo`, no ARP for it, no
/// reverse-path filter (its route back to the client is veth20).
fn vip_on_lo(tb: &Testbed, extra_rp: &[&str]) {
    let mut s = vec![
        "net.ipv4.conf.all.arp_ignore=1",
        "net.ipv4.conf.all.arp_announce=2",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.veth21.rp_filter=0",
    ];
    s.extend_from_slice(extra_rp);
    sysctls(tb, Node::Rs(1), &s);
    let vip32 = format!("{ST_VIP}/32");
    sh(tb, Node::Rs(1), &["ip", "addr", "add", &vip32, "dev", "lo"]);
}

/// The script's `test_service`: the real server answers, every request
/// reaches it through the VIP; the counters say how (`out`: whether the
/// replies cross the director; `counter`: the data plane's counter of
/// the method, so the kernel cannot have done it).
fn test_service(tb: &Testbed, xvsd: &Xvsd, out: bool, counter: &str) {
    let _srv = serve(tb, Node::Rs(1), "http", &format!("0.0.0.0:{PORT}"), "rs1");
    let url = format!("http://{ST_VIP}:{PORT}/");
    let names = client_get(tb, Node::Client, &url, REQUESTS, true, || xvsd.report());
    assert_eq!(names, vec!["rs1".to_string(); REQUESTS as usize]);
    let stats = xvsd.adm_ok(&["-L", "-n", "--stats"]);
    let row = stats
        .lines()
        .find(|l| l.starts_with(&format!("  -> {ST_RS_IP}:{PORT}")))
        .unwrap_or_else(|| panic!("{stats}"));
    let f: Vec<u64> = row
        .split_whitespace()
        .skip(2)
        .map(|v| v.parse().unwrap_or(u64::MAX))
        .collect();
    assert_eq!(f[0], REQUESTS as u64, "{stats}");
    assert_eq!(f[2] > 0, out, "OutPkts: {stats}");
    let c = xvsd.counters();
    assert!(
        c.get(counter).is_some_and(|&n| n >= f[1]),
        "{counter}: {c:?}"
    );
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn selftest_dr() {
    let tb = Testbed::selftest().expect("selftest testbed");
    let xvsd = director(&tb, true, None);
    vip_on_lo(&tb, &[]);
    test_service(&tb, &xvsd, false, "dr_in");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn selftest_dr_with_forwarding_off() {
    let tb = Testbed::selftest().expect("selftest testbed");
    let xvsd = director(&tb, false, Some("-g"));
    vip_on_lo(&tb, &[]);
    test_service(&tb, &xvsd, false, "dr_in");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn selftest_nat() {
    let tb = Testbed::selftest().expect("selftest testbed");
    let xvsd = director(&tb, true, Some("-m"));
    sh(&tb, Node::Rs(1), &["ip", "link", "del", "veth20"]);
    sh(
        &tb,
        Node::Rs(1),
        &[
            "ip",
            "route",
            "add",
            "default",
            "via",
            "203.0.113.1",
            "dev",
            "veth21",
        ],
    );
    test_service(&tb, &xvsd, true, "nat_in");
}

/// The script's TUN case: forwarding off on the director; the real server
/// decapsulates with the kernel's fallback `tunl0` where the `ipip` module
/// exists, else with xvs's own decap program (`xvs-realserver`).
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn selftest_tun_with_forwarding_off() {
    let tb = Testbed::selftest().expect("selftest testbed");
    let xvsd = director(&tb, false, Some("-i"));
    let kernel_ipip = tb.exec_ok(Node::Rs(1), &["modprobe", "ipip"]).is_ok();
    if kernel_ipip {
        sh(&tb, Node::Rs(1), &["ip", "link", "set", "tunl0", "up"]);
        vip_on_lo(&tb, &["net.ipv4.conf.tunl0.rp_filter=0"]);
    } else {
        eprintln!("no ipip module here: the real server decapsulates with xvs_decap");
        vip_on_lo(&tb, &[]);
        tb.realserver(
            Node::Rs(1),
            &[
                "setup", "--vip", ST_VIP, "--mode", "tun", "--dev", "veth21", "--decap", "xdp",
            ],
        )
        .expect("xvs-realserver setup");
    }
    test_service(&tb, &xvsd, false, "tun_in");
}
