//! End to end: connection synchronisation between two xvs directors
//! (`xvsadm --start-daemon master|backup`, IPVS's sync protocol over
//! multicast on the directors' LAN). Long DR transfers run through the
//! master; the VIP then moves to the backup (as VRRP would move it) and
//! the master's xvsd is killed: every transfer must finish with every
//! byte, because the backup knows each connection's real server.
//! Without the sync the backup's kernel, which now holds the VIP, resets
//! them (the test checks that too).

use std::time::{Duration, Instant};

use xvs_testbed::harness::{bin_path, setup_real_servers, Xvsd};
use xvs_testbed::{dr_rs_ip, Node, Proc, Testbed, DR_RS_COUNT, VIP};

const STREAMS: usize = 20;
const SLOW_BYTES: usize = 48 * 1024;
const SLOW_MS: u64 = 10_000;

struct Pair {
    xvsd: [Xvsd; 2],
    tb: Testbed,
}

fn start(sync: bool) -> Pair {
    let tb = Testbed::dr_pair().expect("testbed");
    tb.start_http_servers(80).expect("http servers");
    setup_real_servers(&tb, &["--mode", "dr"]);
    let xvsd = [Node::Director, Node::Director2]
        .map(|node| Xvsd::start(&tb, node, &["--interfaces", "eth0"]));
    let pair = Pair { xvsd, tb };
    let svc = format!("{VIP}:80");
    for x in &pair.xvsd {
        x.adm_ok(&["-A", "-t", &svc, "-s", "wlc"]);
        for n in 1..=DR_RS_COUNT {
            let rs = format!("{}:80", dr_rs_ip(n));
            x.adm_ok(&["-a", "-t", &svc, "-r", &rs, "-g"]);
        }
    }
    if sync {
        let m = &pair.xvsd[0];
        m.adm_ok(&[
            "--start-daemon",
            "master",
            "--mcast-interface",
            "eth0",
            "--syncid",
            "7",
        ]);
        let b = &pair.xvsd[1];
        b.adm_ok(&[
            "--start-daemon",
            "backup",
            "--mcast-interface",
            "eth0",
            "--syncid",
            "7",
        ]);
        assert_eq!(
            b.adm_ok(&["-L", "--daemon"]),
            "backup sync daemon (mcast=eth0, syncid=7, maxlen=1472, group=224.0.0.81, \
             port=8848, ttl=1)\n"
        );
    }
    pair.tb
        .exec_ok(
            Node::Director,
            &["ip", "addr", "add", &format!("{VIP}/32"), "dev", "eth0"],
        )
        .unwrap();
    pair
}

fn download(tb: &Testbed) -> Proc {
    let url = format!("http://{VIP}/slow/{SLOW_BYTES}/{SLOW_MS}");
    tb.spawn(
        Node::Client,
        &[
            &bin_path("xvs-testsrv"),
            "get",
            &url,
            "--count",
            "1",
            "--timeout-ms",
            "5000",
        ],
    )
    .expect("client")
}

/// The VIP leaves the master for the backup, the router learns the
/// backup's MAC (VRRP's gratuitous ARP), and the master's xvsd is killed.
fn fail_over(p: &Pair) {
    let vip = format!("{VIP}/32");
    p.tb.exec_ok(Node::Director, &["ip", "addr", "del", &vip, "dev", "eth0"])
        .unwrap();
    p.tb.exec_ok(Node::Director2, &["ip", "addr", "add", &vip, "dev", "eth0"])
        .unwrap();
    let mac =
        p.tb.exec_ok(Node::Director2, &["cat", "/sys/class/net/eth0/address"])
            .unwrap();
    p.tb.exec_ok(
        Node::Router,
        &[
            "ip",
            "neigh",
            "replace",
            VIP,
            "lladdr",
            mac.trim(),
            "dev",
            "eth1",
            "nud",
            "reachable",
        ],
    )
    .unwrap();
    p.xvsd[0].proc().signal(libc::SIGKILL).unwrap();
}

fn run(sync: bool) -> (usize, String) {
    let p = start(sync);
    let streams: Vec<Proc> = (0..STREAMS).map(|_| download(&p.tb)).collect();
    // Established, and (with the sync) sent within the master's second.
    std::thread::sleep(Duration::from_secs(3));
    let backup_conns = p.xvsd[1].adm_ok(&["-Lnc"]);
    fail_over(&p);
    let t0 = Instant::now();
    let mut ok = 0;
    let want = format!("({} bytes)", SLOW_BYTES + 4);
    let mut logs = String::new();
    for s in &streams {
        let st = s.wait_timeout(Duration::from_millis(SLOW_MS + 15_000));
        let log = s.log();
        if st.is_some_and(|st| st.success()) && log.trim_end().ends_with(&want) {
            ok += 1;
        } else {
            logs.push_str(&log);
        }
    }
    println!(
        "sync {sync}: {ok}/{STREAMS} transfers complete {:?} after the failover",
        t0.elapsed()
    );
    if sync {
        let n = backup_conns
            .lines()
            .filter(|l| l.contains("ESTABLISHED"))
            .count();
        assert_eq!(
            n, STREAMS,
            "the backup's table before the failover:\n{backup_conns}"
        );
        // New connections go to the backup now.
        let out = p.tb.exec_ok(
            Node::Client,
            &[
                &bin_path("xvs-testsrv"),
                "get",
                &format!("http://{VIP}/"),
                "--count",
                "5",
                "--new-conn",
            ],
        );
        assert!(out.is_ok(), "{out:?}");
    }
    (ok, format!("{logs}\n{}", p.xvsd[1].report()))
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn dr_transfers_survive_a_failover_with_the_sync_daemon() {
    let (ok, why) = run(true);
    assert_eq!(ok, STREAMS, "{why}");
}

/// The control: without the sync daemons the same failover breaks the
/// transfers, so the test above measures the sync.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn dr_transfers_break_on_a_failover_without_it() {
    let (ok, _) = run(false);
    assert_eq!(ok, 0, "transfers survived without the sync");
}
