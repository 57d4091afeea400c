//! Root tests of the testbed itself: the NAT topology forwards with plain
//! kernel routing, the servers and clients work across namespaces, and
//! teardown leaves nothing behind (also when the test body panics).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use xvs_testbed::{
    bin, cleanup_stale, dr_rs_ip, is_mounted, namespaces_with_prefix, pid_alive, rs_ip, Node,
    Testbed, Topology, CLIENT_IP, DIRECTOR_EXT_IP, DIRECTOR_INT_IP, DR_CLIENT_IP, DR_DIRECTOR_IP,
    DR_ROUTER_IP, VIP,
};

const ROOT: &str = "needs root: cargo xtask test runs it";

fn testsrv() -> String {
    bin("xvs-testsrv").unwrap().to_string_lossy().into_owned()
}

fn lines(tb: &Testbed, node: Node, argv: &[&str]) -> Vec<String> {
    let out = tb.exec(node, argv).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{argv:?} in {node}: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}

struct Leftovers {
    prefix: String,
    run_dir: PathBuf,
    bpffs: PathBuf,
    pids: Vec<u32>,
}

impl Leftovers {
    fn of(tb: &Testbed) -> Leftovers {
        Leftovers {
            prefix: tb.prefix().to_string(),
            run_dir: tb.run_dir().to_path_buf(),
            bpffs: tb.bpffs().to_path_buf(),
            pids: tb.procs().iter().map(|p| p.pid()).collect(),
        }
    }

    fn assert_gone(&self) {
        assert_eq!(
            namespaces_with_prefix(&format!("{}-", self.prefix)),
            Vec::<String>::new(),
            "namespaces left behind"
        );
        assert!(!is_mounted(&self.bpffs), "bpffs still mounted");
        assert!(
            !self.run_dir.exists(),
            "{} left behind",
            self.run_dir.display()
        );
        for pid in &self.pids {
            assert!(!pid_alive(*pid as i32), "process {pid} still running");
        }
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn nat_topology_forwards_and_tears_down() {
    let _ = ROOT;
    let tb = Testbed::nat().unwrap();
    assert_eq!(tb.namespaces().len(), 6);
    for ns in tb.namespaces() {
        assert!(ns.starts_with(tb.prefix()));
    }

    // Veth settings the XDP data plane relies on.
    let k = tb
        .exec_ok(Node::Client, &["ethtool", "-k", "eth0"])
        .unwrap();
    assert!(k.contains("generic-receive-offload: on"), "{k}");
    assert!(k.contains("tx-checksumming: off"), "{k}");
    let k = tb.exec_ok(Node::Switch, &["ethtool", "-k", "dir"]).unwrap();
    assert!(k.contains("generic-receive-offload: on"), "{k}");
    let k = tb.exec_ok(Node::Rs(2), &["ethtool", "-k", "eth0"]).unwrap();
    assert!(k.contains("tx-checksumming: off"), "{k}");
    let fwd = tb
        .exec_ok(Node::Director, &["sysctl", "-n", "net.ipv4.ip_forward"])
        .unwrap();
    assert_eq!(fwd.trim(), "1");
    let addrs = tb
        .exec_ok(
            Node::Director,
            &["ip", "-4", "-o", "addr", "show", "dev", "eth0"],
        )
        .unwrap();
    assert!(addrs.contains(&format!("{VIP}/32")), "{addrs}");
    // Nothing of ours is named in the root namespace.
    let root_links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let root_links = String::from_utf8_lossy(&root_links.stdout);
    assert!(!root_links.contains(tb.prefix()), "{root_links}");

    // The bpffs is mounted and visible inside `ip netns exec`.
    assert!(is_mounted(tb.bpffs()));
    let fstype = tb
        .exec_ok(
            Node::Director,
            &["stat", "-f", "-c", "%T", tb.bpffs().to_str().unwrap()],
        )
        .unwrap();
    assert_eq!(fstype.trim(), "bpf_fs");

    // Reachability of the director (no ping on the box: UDP echo).
    let ts = testsrv();
    let echo = tb
        .spawn(
            Node::Director,
            &[
                &ts,
                "udp-echo",
                "--listen",
                &format!("{DIRECTOR_EXT_IP}:7"),
                "--listen",
                &format!("{VIP}:7"),
                "--listen",
                &format!("{DIRECTOR_INT_IP}:7"),
                "--name",
                "dir",
            ],
        )
        .unwrap();
    echo.wait_for_log("listening on", std::time::Duration::from_secs(5))
        .unwrap();
    for (node, target) in [
        (Node::Client, format!("{DIRECTOR_EXT_IP}:7")),
        (Node::Client, format!("{VIP}:7")),
        (Node::Rs(1), format!("{DIRECTOR_INT_IP}:7")),
        (Node::Rs(3), format!("{DIRECTOR_INT_IP}:7")),
    ] {
        let got = lines(
            &tb,
            node,
            &[&ts, "udp", &target, "--count", "2", "--timeout-ms", "2000"],
        );
        assert_eq!(
            got,
            vec!["dir: ping 0", "dir: ping 1"],
            "{node} -> {target}"
        );
    }

    // Plain kernel forwarding through the director to the real servers.
    tb.start_http_servers(80).unwrap();
    let got = lines(
        &tb,
        Node::Client,
        &[
            &ts,
            "get",
            &format!("http://{}/", rs_ip(1)),
            "--count",
            "3",
            "--new-conn",
        ],
    );
    assert_eq!(got, vec!["rs1"; 3]);
    let got = lines(
        &tb,
        Node::Client,
        &[
            &ts,
            "get",
            &format!("http://{}/x", rs_ip(2)),
            "--count",
            "3",
            "--keepalive",
        ],
    );
    assert_eq!(got, vec!["rs2"; 3]);
    tb.start_udp_echo_servers(5353).unwrap();
    let got = lines(
        &tb,
        Node::Client,
        &[
            &ts,
            "udp",
            &format!("{}:5353", rs_ip(3)),
            "--count",
            "2",
            "--new-conn",
        ],
    );
    assert_eq!(got, vec!["rs3: ping 0", "rs3: ping 1"]);
    // The real server sees the client's address (no SNAT anywhere).
    let ss = tb
        .exec_ok(Node::Rs(3), &["ip", "-4", "route", "get", CLIENT_IP])
        .unwrap();
    assert!(ss.contains(&format!("via {DIRECTOR_INT_IP}")), "{ss}");

    // A refused port is reported, bounded by count.
    let out = tb
        .exec(
            Node::Client,
            &[
                &ts,
                "get",
                &format!("http://{}:81/", rs_ip(1)),
                "--count",
                "2",
            ],
        )
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 2);
    assert!(text.lines().all(|l| l.starts_with("ERR ")), "{text}");

    let left = Leftovers::of(&tb);
    assert_eq!(left.pids.len(), 7);
    tb.close().unwrap();
    left.assert_gone();
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn dr_topology_routes_and_tears_down() {
    let tb = Testbed::dr().unwrap();
    assert_eq!(tb.topology(), Topology::Dr);
    assert_eq!(tb.namespaces().len(), 7);
    assert_eq!(tb.rs_addr(2), dr_rs_ip(2));

    // Veth settings the XDP data plane relies on.
    let k = tb.exec_ok(Node::Switch, &["ethtool", "-k", "dir"]).unwrap();
    assert!(k.contains("generic-receive-offload: on"), "{k}");
    let link = tb
        .exec_ok(Node::Switch, &["ip", "-d", "link", "show", "dev", "dir"])
        .unwrap();
    assert!(
        link.contains("prog/xdp") && link.contains("xvs_tb_pass"),
        "{link}"
    );
    for (node, dev) in [
        (Node::Client, "eth0"),
        (Node::Router, "eth0"),
        (Node::Router, "eth1"),
        (Node::Rs(3), "eth0"),
    ] {
        let k = tb.exec_ok(node, &["ethtool", "-k", dev]).unwrap();
        assert!(k.contains("tx-checksumming: off"), "{node} {dev}: {k}");
    }
    for node in [Node::Router, Node::Director] {
        let fwd = tb
            .exec_ok(node, &["sysctl", "-n", "net.ipv4.ip_forward"])
            .unwrap();
        assert_eq!(fwd.trim(), "1", "{node}");
    }
    let addrs = tb
        .exec_ok(
            Node::Director,
            &["ip", "-4", "-o", "addr", "show", "dev", "eth0"],
        )
        .unwrap();
    assert!(addrs.contains(&format!("{VIP}/32")), "{addrs}");
    assert!(addrs.contains(&format!("{DR_DIRECTOR_IP}/24")), "{addrs}");
    // The real servers do not have the VIP: xvs-realserver's job.
    let addrs = tb
        .exec_ok(Node::Rs(1), &["ip", "-4", "-o", "addr", "show"])
        .unwrap();
    assert!(!addrs.contains(VIP), "{addrs}");

    // Plain kernel routing: client -> router -> LAN, and back.
    let ts = testsrv();
    tb.start_http_servers(80).unwrap();
    for n in 1..=3u8 {
        let got = lines(
            &tb,
            Node::Client,
            &[
                &ts,
                "get",
                &format!("http://{}/", dr_rs_ip(n)),
                "--count",
                "2",
                "--new-conn",
            ],
        );
        assert_eq!(got, vec![format!("rs{n}"); 2]);
    }
    let echo = tb
        .spawn(
            Node::Director,
            &[
                &ts,
                "udp-echo",
                "--listen",
                &format!("{DR_DIRECTOR_IP}:7"),
                "--listen",
                &format!("{VIP}:7"),
                "--name",
                "dir",
            ],
        )
        .unwrap();
    echo.wait_for_log("listening on", std::time::Duration::from_secs(5))
        .unwrap();
    for target in [format!("{DR_DIRECTOR_IP}:7"), format!("{VIP}:7")] {
        let got = lines(&tb, Node::Client, &[&ts, "udp", &target, "--count", "1"]);
        assert_eq!(got, vec!["dir: ping 0"], "client -> {target}");
    }
    let route = tb
        .exec_ok(Node::Rs(2), &["ip", "-4", "route", "get", DR_CLIENT_IP])
        .unwrap();
    assert!(route.contains(&format!("via {DR_ROUTER_IP}")), "{route}");
    assert!(tb.if_stat(Node::Director, "eth0", "rx_packets").unwrap() > 0);

    let left = Leftovers::of(&tb);
    tb.close().unwrap();
    left.assert_gone();
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn drop_cleans_up_when_the_test_panics() {
    let seen: Mutex<Option<Leftovers>> = Mutex::new(None);
    let result = catch_unwind(AssertUnwindSafe(|| {
        let tb = Testbed::nat().unwrap();
        tb.start_http_servers(80).unwrap();
        *seen.lock().unwrap() = Some(Leftovers::of(&tb));
        panic!("deliberate panic with a live testbed");
    }));
    assert!(result.is_err());
    let left = seen.into_inner().unwrap().expect("testbed was built");
    assert_eq!(left.pids.len(), 3);
    left.assert_gone();
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn cleanup_stale_removes_only_dead_owners() {
    // A PID that surely belongs to no running process: a child we reaped.
    let mut child = Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    let dead = child.id();
    let stale_prefix = format!("xvs{dead:x}t");
    let stale_ns = format!("{stale_prefix}0-cli");
    let stale_dir = PathBuf::from(xvs_testbed::RUN_ROOT).join(format!("{stale_prefix}0"));
    assert!(Command::new("ip")
        .args(["netns", "add", &stale_ns])
        .status()
        .unwrap()
        .success());
    std::fs::create_dir_all(stale_dir.join("logs")).unwrap();

    // A namespace that merely starts with "xvs" is not ours to remove.
    let foreign = format!("xvsforeign{dead}");
    assert!(Command::new("ip")
        .args(["netns", "add", &foreign])
        .status()
        .unwrap()
        .success());

    let live = Testbed::nat().unwrap();
    let own = format!("xvs{:x}t", std::process::id());
    let removed = cleanup_stale(&stale_prefix).unwrap();
    assert!(removed.contains(&stale_ns), "{removed:?}");
    assert!(namespaces_with_prefix(&stale_ns).is_empty());
    assert!(!stale_dir.exists());
    let kept = cleanup_stale("xvs").unwrap();
    assert!(!kept.contains(&foreign), "{kept:?}");
    assert_eq!(namespaces_with_prefix(&foreign), vec![foreign.clone()]);
    assert!(Command::new("ip")
        .args(["netns", "delete", &foreign])
        .status()
        .unwrap()
        .success());

    // Our own (live) testbed survives a sweep of our own prefix.
    cleanup_stale(&own).unwrap();
    assert_eq!(
        namespaces_with_prefix(&format!("{}-", live.prefix())).len(),
        6
    );
    live.close().unwrap();
}

/// The veth reality the testbed arranges for: an `XDP_REDIRECT` from the
/// director's eth0 out of eth1 only reaches the switch when the switch-side
/// peer has NAPI (GRO on). Checked with a trivial redirect-everything program.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn xdp_redirect_into_veth_needs_gro_on_the_peer() {
    let tb = Testbed::nat().unwrap();
    let ifindex = tb
        .exec_ok(Node::Director, &["cat", "/sys/class/net/eth1/ifindex"])
        .unwrap();
    let src = tb.run_dir().join("redir.c");
    let obj = tb.run_dir().join("redir.o");
    std::fs::write(
        &src,
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n\
         SEC(\"xdp\") int redir(struct xdp_md *c) { return bpf_redirect(IFX, 0); }\n\
         char _license[] SEC(\"license\") = \"GPL\";\n",
    )
    .unwrap();
    // <asm/types.h> lives in the multiarch include directory.
    let multiarch = std::fs::read_dir("/usr/include")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("asm/types.h").exists())
        .expect("a multiarch include dir with asm/types.h (linux-libc-dev)");
    let out = Command::new("clang")
        .args(["-O2", "-target", "bpf", "-c"])
        .arg(format!("-I{}", multiarch.display()))
        .arg(format!("-DIFX={}", ifindex.trim()))
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("clang is installed (cargo xtask installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tb.exec_ok(
        Node::Director,
        &[
            "ip",
            "link",
            "set",
            "dev",
            "eth0",
            "xdpdrv",
            "obj",
            obj.to_str().unwrap(),
            "sec",
            "xdp",
        ],
    )
    .unwrap();

    let ts = testsrv();
    let rx = || -> u64 {
        tb.exec_ok(
            Node::Switch,
            &["cat", "/sys/class/net/dir/statistics/rx_packets"],
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap()
    };
    let send = |n: &str| {
        // Every datagram is redirected (and then dropped by the real
        // server as not addressed to its MAC), so the client sees timeouts.
        let _ = tb.exec(
            Node::Client,
            &[
                &ts,
                "udp",
                &format!("{}:9", rs_ip(1)),
                "--count",
                n,
                "--timeout-ms",
                "100",
            ],
        );
    };
    // ARP requests would be redirected as well: pin the director's MAC.
    let mac = tb
        .exec_ok(Node::Director, &["cat", "/sys/class/net/eth0/address"])
        .unwrap();
    tb.exec_ok(
        Node::Client,
        &[
            "ip",
            "neigh",
            "replace",
            DIRECTOR_EXT_IP,
            "lladdr",
            mac.trim(),
            "dev",
            "eth0",
        ],
    )
    .unwrap();

    let before = rx();
    send("5");
    let with_gro = rx() - before;
    assert!(
        with_gro >= 5,
        "GRO on: only {with_gro} redirected frames arrived"
    );

    tb.exec_ok(Node::Switch, &["ethtool", "-K", "dir", "gro", "off"])
        .unwrap();
    let before = rx();
    send("5");
    let without_gro = rx() - before;
    assert_eq!(without_gro, 0, "GRO off: redirected frames arrived anyway");
    tb.close().unwrap();
}
