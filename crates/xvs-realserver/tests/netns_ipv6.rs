//! End to end: `xvs-realserver` prepares a real server for an IPv6 VIP in
//! direct routing. The real binary runs in a real server of
//! [`Testbed::dr`]; the router plays the director's part at layer 3 (a
//! route to the VIP via the real server, which is what DR's MAC rewrite
//! amounts to). The testbed is torn down on drop (also on failure).

use std::thread::sleep;
use std::time::Duration;

use xvs_testbed::harness::{serve, testsrv};
use xvs_testbed::{Node, Testbed};

const VIP6: &str = "2001:db8:1::10";
const ROUTER6: &str = "2001:db8:2::1";
const RS6: &str = "2001:db8:2::11";

fn ip(tb: &Testbed, node: Node, args: &[&str]) -> String {
    let mut argv = vec!["ip"];
    argv.extend_from_slice(args);
    tb.exec_ok(node, &argv).unwrap()
}

/// Turns IPv6 on in `node` (the testbed keeps it off to keep its chatter
/// out of the IPv4 tests).
fn enable_ipv6(tb: &Testbed, node: Node) {
    tb.exec_ok(
        node,
        &["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=0"],
    )
    .unwrap();
}

/// One GET from the router to `[VIP6]:8080`; the answering server's name.
fn get(tb: &Testbed) -> std::process::Output {
    testsrv(
        tb,
        Node::Router,
        &[
            "get",
            &format!("http://[{VIP6}]:8080/"),
            "--count",
            "1",
            "--timeout-ms",
            "2000",
        ],
    )
}

#[test]
#[ignore = "needs root; run with --ignored"]
fn an_ipv6_vip_on_lo_takes_dr_traffic_and_is_not_announced() {
    let tb = Testbed::dr().expect("testbed");
    let rs = Node::Rs(1);
    enable_ipv6(&tb, Node::Router);
    enable_ipv6(&tb, rs);
    ip(
        &tb,
        Node::Router,
        &[
            "-6",
            "addr",
            "add",
            &format!("{ROUTER6}/64"),
            "dev",
            "eth1",
            "nodad",
        ],
    );
    ip(
        &tb,
        rs,
        &[
            "-6",
            "addr",
            "add",
            &format!("{RS6}/64"),
            "dev",
            "eth0",
            "nodad",
        ],
    );

    // tun is IPv4 only for now: refused, nothing changed.
    let e = tb
        .realserver(rs, &["setup", "--vip", VIP6, "--mode", "tun"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--mode tun with an IPv6 VIP"), "{e}");
    assert!(!ip(&tb, rs, &["-6", "addr", "show", "dev", "lo"]).contains(VIP6));

    let out = tb
        .realserver(
            rs,
            &["setup", "--vip", VIP6, "--mode", "dr", "--dev", "eth0"],
        )
        .unwrap();
    assert!(out.contains(&format!("added {VIP6}/128 to lo")), "{out}");
    let lo = ip(&tb, rs, &["-6", "-o", "addr", "show", "dev", "lo"]);
    assert!(lo.contains(&format!("{VIP6}/128")), "{lo}");
    let arp = tb
        .exec_ok(rs, &["cat", "/proc/sys/net/ipv4/conf/all/arp_ignore"])
        .unwrap();
    assert_eq!(arp.trim(), "0", "an IPv6 VIP sets no IPv4 sysctl");
    let again = tb
        .realserver(
            rs,
            &["setup", "--vip", VIP6, "--mode", "dr", "--dev", "eth0"],
        )
        .unwrap();
    assert!(again.lines().all(|l| l.starts_with("already")), "{again}");

    let _srv = serve(&tb, rs, "http", &format!("[{VIP6}]:8080"), "rs1");

    // Not announced: with the VIP on-link, the router's solicitation for
    // it goes unanswered, so nothing connects. The control first: the same
    // address on the real server's eth0 is answered and reached.
    let vip128 = format!("{VIP6}/128");
    ip(
        &tb,
        Node::Router,
        &["-6", "route", "add", &vip128, "dev", "eth1"],
    );
    ip(
        &tb,
        rs,
        &["-6", "addr", "add", &vip128, "dev", "eth0", "nodad"],
    );
    assert!(
        get(&tb).status.success(),
        "control: the VIP on eth0 was not reached"
    );
    ip(&tb, rs, &["-6", "addr", "del", &vip128, "dev", "eth0"]);
    ip(&tb, Node::Router, &["-6", "neigh", "flush", "dev", "eth1"]);
    assert!(!get(&tb).status.success(), "the VIP was reachable on-link");
    let neigh = ip(&tb, Node::Router, &["-6", "neigh", "show", VIP6]);
    assert!(
        !neigh.contains("lladdr"),
        "the real server answered for the VIP: {neigh}"
    );

    // Routed to the real server (DR's next hop), it is delivered locally.
    ip(
        &tb,
        Node::Router,
        &[
            "-6",
            "route",
            "replace",
            &format!("{VIP6}/128"),
            "via",
            RS6,
            "dev",
            "eth1",
        ],
    );
    let mut last = None;
    for _ in 0..20 {
        let o = get(&tb);
        if o.status.success() {
            last = None;
            assert_eq!(
                String::from_utf8_lossy(&o.stdout).trim().split(':').next(),
                Some("rs1")
            );
            break;
        }
        last = Some(o);
        sleep(Duration::from_millis(250));
    }
    assert!(last.is_none(), "no answer via the real server: {last:?}");

    let out = tb.realserver(rs, &["teardown", "--vip", VIP6]).unwrap();
    assert!(
        out.contains(&format!("removed {VIP6}/128 from lo")),
        "{out}"
    );
    assert!(!ip(&tb, rs, &["-6", "addr", "show", "dev", "lo"]).contains(VIP6));
}
