//! End to end: fwmark services (`-f`) with the marks given by xvs's
//! classifier (`xvsadm --add-mark`), the real `xvsd` and `xvsadm` on a NAT
//! testbed: one service for several ports of the VIP, the dest's port
//! against the client's, and persistence across ports and protocols.
//! Every test builds its own testbed, torn down on drop (also on failure).

use xvs_testbed::harness::{client_get, counts, server_names, tally, testsrv, testsrv_ok, Xvsd};
use xvs_testbed::{rs_ip, Node, Testbed, VIP};

struct Lb {
    // Field order is drop order: stop xvsd before the namespaces go.
    xvsd: Xvsd,
    tb: Testbed,
}

impl Lb {
    fn start() -> Lb {
        let tb = Testbed::nat().expect("testbed");
        let xvsd = Xvsd::start(&tb, Node::Director, &[]);
        Lb { xvsd, tb }
    }

    fn get(&self, url: &str, n: u32) -> Vec<String> {
        client_get(&self.tb, Node::Client, url, n, true, || self.xvsd.report())
    }

    /// fwmark service 1 (`sched`, `extra` options) over the three real
    /// servers at `port` (NAT).
    fn service(&self, sched: &str, extra: &[&str], port: u16) {
        let mut a = vec!["-A", "-f", "1", "-s", sched];
        a.extend_from_slice(extra);
        self.xvsd.adm_ok(&a);
        for n in 1..=3u8 {
            let rs = format!("{}:{port}", rs_ip(n));
            self.xvsd.adm_ok(&["-a", "-f", "1", "-r", &rs, "-m"]);
        }
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn one_fwmark_service_serves_every_marked_port_at_the_dests_port() {
    let lb = Lb::start();
    lb.tb.start_http_servers(80).unwrap();
    lb.service("rr", &[], 80);
    lb.xvsd
        .adm_ok(&["--add-mark", "-t", &format!("{VIP}:8080,8443"), "-f", "1"]);
    let mut got = lb.get(&format!("http://{VIP}:8080/"), 15);
    got.extend(lb.get(&format!("http://{VIP}:8443/"), 15));
    assert_eq!(
        tally(&got),
        counts(&[("rs1", 10), ("rs2", 10), ("rs3", 10)]),
        "{got:?}"
    );
    let list = lb.xvsd.adm_ok(&["-Ln"]);
    assert!(list.contains("FWM  1 rr"), "{list}");
    for n in 1..=3 {
        let row = format!("  -> {}:80", rs_ip(n));
        assert!(list.contains(&row), "{list}");
    }
    let marks = lb.xvsd.adm_ok(&["--list-marks", "-n"]);
    assert!(marks.contains(&format!("{VIP}/32:8080,8443")), "{marks}");
    // The rules go: port 8080 is no service any more (refused by the
    // director's own stack, which has nothing there).
    lb.xvsd.adm_ok(&["--clear-marks"]);
    let out = testsrv(
        &lb.tb,
        Node::Client,
        &[
            "get",
            &format!("http://{VIP}:8080/"),
            "--count",
            "1",
            "--timeout-ms",
            "1000",
        ],
    );
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        server_names(&out).iter().all(|n| !n.starts_with("rs")),
        "{out}"
    );
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn persistence_holds_across_the_ports_and_protocols_of_a_mark() {
    let lb = Lb::start();
    for port in [80, 81] {
        lb.tb.start_http_servers(port).unwrap();
        lb.tb.start_udp_echo_servers(port).unwrap();
    }
    // Persistent: connections keep the client's port (ip_vs_sched_persist),
    // whatever the dest's port says.
    lb.service("rr", &["-p", "300"], 9999);
    lb.xvsd.adm_ok(&["--add-mark", "-t", VIP, "-f", "1"]);
    lb.xvsd
        .adm_ok(&["--add-mark", "-u", &format!("{VIP}:81"), "-f", "1"]);
    let first = lb.get(&format!("http://{VIP}:80/"), 1);
    assert_eq!(first.len(), 1, "{first:?}");
    let again = lb.get(&format!("http://{VIP}:81/"), 6);
    assert!(
        again.iter().all(|n| *n == first[0]),
        "{first:?} then {again:?}"
    );
    let udp = testsrv_ok(
        &lb.tb,
        Node::Client,
        &[
            "udp",
            &format!("{VIP}:81"),
            "--count",
            "4",
            "--timeout-ms",
            "2000",
        ],
        || lb.xvsd.report(),
    );
    assert!(
        server_names(&udp).iter().all(|n| *n == first[0]),
        "UDP went elsewhere than {}: {udp}",
        first[0]
    );
    let conns = lb.xvsd.adm_ok(&["-Lnc"]);
    let tmpl: Vec<&str> = conns.lines().filter(|l| l.starts_with("IP ")).collect();
    assert_eq!(
        tmpl.len(),
        1,
        "one template for every port and protocol:\n{conns}"
    );
    assert!(tmpl[0].contains(" 0.0.0.1:0 "), "{conns}");
}
