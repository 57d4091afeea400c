//! End to end: the real `xvsd` in the director namespace, driven by the real
//! `xvsadm`, load-balancing real HTTP and UDP servers in NAT mode. Every test
//! builds its own testbed, which is torn down on drop (also on failure).

use std::time::{Duration, Instant};

use xvs_testbed::harness::{
    bin_path, client_get, counts, serve, server_names, stats_row, tally, testsrv_ok, Xvsd,
};
use xvs_testbed::{rs_ip, Node, Testbed, DIRECTOR_INT_IP, VIP};

/// A testbed with xvsd running in the director.
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

    /// `n` HTTP requests from the client, each on a new connection; the
    /// name of the server that answered each.
    fn get(&self, url: &str, n: u32) -> Vec<String> {
        client_get(&self.tb, Node::Client, url, n, true, || self.xvsd.report())
    }

    fn nat_service(&self, sched: &str, weights: &[u32]) {
        self.xvsd
            .adm_ok(&["-A", "-t", &format!("{VIP}:80"), "-s", sched]);
        for (i, w) in weights.iter().enumerate() {
            let rs = format!("{}:80", rs_ip(i as u8 + 1));
            self.xvsd.adm_ok(&[
                "-a",
                "-t",
                &format!("{VIP}:80"),
                "-r",
                &rs,
                "-m",
                "-w",
                &w.to_string(),
            ]);
        }
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn rr_splits_thirty_requests_evenly() {
    let lb = Lb::start();
    lb.tb.start_http_servers(80).unwrap();
    lb.nat_service("rr", &[1, 1, 1]);
    let got = lb.get(&format!("http://{VIP}/"), 30);
    assert_eq!(
        tally(&got),
        counts(&[("rs1", 10), ("rs2", 10), ("rs3", 10)]),
        "{got:?}"
    );
    let list = lb.xvsd.adm_ok(&["-Ln"]);
    assert!(list.contains(&format!("TCP  {VIP}:80 rr")), "{list}");
    // Closed connections linger in TIME_WAIT, which IPVS counts as inactive.
    for i in 1..=3 {
        let row =
            format!("  -> 203.0.113.1{i}:80              Masq    1      0          10        \n");
        assert!(list.contains(&row), "{list}");
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn wrr_three_two_one_splits_fifteen_ten_five() {
    let lb = Lb::start();
    lb.tb.start_http_servers(80).unwrap();
    lb.nat_service("wrr", &[3, 2, 1]);
    let got = lb.get(&format!("http://{VIP}/"), 30);
    assert_eq!(
        tally(&got),
        counts(&[("rs1", 15), ("rs2", 10), ("rs3", 5)]),
        "{got:?}"
    );
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn port_mapping_reaches_the_real_servers_port() {
    let lb = Lb::start();
    // Only a server on 8080: a request that kept port 80 would be refused.
    let _srv = serve(&lb.tb, Node::Rs(2), "http", "0.0.0.0:8080", "rs2-8080");
    lb.xvsd
        .adm_ok(&["-A", "-t", &format!("{VIP}:80"), "-s", "rr"]);
    lb.xvsd.adm_ok(&[
        "-a",
        "-t",
        &format!("{VIP}:80"),
        "-r",
        &format!("{}:8080", rs_ip(2)),
        "-m",
    ]);
    let got = lb.get(&format!("http://{VIP}/"), 5);
    assert_eq!(tally(&got), counts(&[("rs2-8080", 5)]));
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn udp_echo_through_the_vip() {
    let lb = Lb::start();
    lb.tb.start_udp_echo_servers(53).unwrap();
    lb.xvsd
        .adm_ok(&["-A", "-u", &format!("{VIP}:53"), "-s", "rr"]);
    for i in 1..=3u8 {
        lb.xvsd.adm_ok(&[
            "-a",
            "-u",
            &format!("{VIP}:53"),
            "-r",
            &format!("{}:53", rs_ip(i)),
            "-m",
        ]);
    }
    let stdout = testsrv_ok(
        &lb.tb,
        Node::Client,
        &[
            "udp",
            &format!("{VIP}:53"),
            "--count",
            "6",
            "--new-conn",
            "--payload",
            "hi",
        ],
        || lb.xvsd.report(),
    );
    let names = server_names(&stdout);
    assert_eq!(
        tally(&names),
        counts(&[("rs1", 2), ("rs2", 2), ("rs3", 2)]),
        "{stdout}"
    );
    assert!(stdout.lines().all(|l| l.contains(": hi ")), "{stdout}");
    let conns = lb.xvsd.adm_ok(&["-Lnc"]);
    assert!(conns.contains("UDP"), "{conns}");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn deleting_a_dest_stops_new_connections_to_it() {
    let lb = Lb::start();
    lb.tb.start_http_servers(80).unwrap();
    lb.nat_service("rr", &[1, 1, 1]);
    lb.get(&format!("http://{VIP}/"), 6);
    lb.xvsd.adm_ok(&[
        "-d",
        "-t",
        &format!("{VIP}:80"),
        "-r",
        &format!("{}:80", rs_ip(2)),
    ]);
    let got = lb.get(&format!("http://{VIP}/"), 20);
    assert_eq!(tally(&got), counts(&[("rs1", 10), ("rs3", 10)]), "{got:?}");
    let list = lb.xvsd.adm_ok(&["-Ln"]);
    assert!(!list.contains("203.0.113.12"), "{list}");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn save_clear_restore_round_trips() {
    let lb = Lb::start();
    lb.tb.start_http_servers(80).unwrap();
    lb.nat_service("wrr", &[3, 2, 1]);
    lb.xvsd
        .adm_ok(&["-A", "-u", &format!("{VIP}:53"), "-s", "rr"]);
    lb.xvsd.adm_ok(&[
        "-a",
        "-u",
        &format!("{VIP}:53"),
        "-r",
        &format!("{}:5353", rs_ip(3)),
        "-m",
        "-w",
        "7",
    ]);
    let saved = lb.xvsd.adm_ok(&["-S", "-n"]);
    let listed = lb.xvsd.adm_ok(&["-Ln"]);
    lb.xvsd.adm_ok(&["-C"]);
    assert!(!lb.xvsd.adm_ok(&["-Ln"]).contains(VIP));
    let out = lb.xvsd.adm_input(&["-R"], &saved);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lb.xvsd.adm_ok(&["-S", "-n"]), saved);
    assert_eq!(lb.xvsd.adm_ok(&["-Ln"]), listed);
    let got = lb.get(&format!("http://{VIP}/"), 6);
    assert_eq!(
        tally(&got),
        counts(&[("rs1", 3), ("rs2", 2), ("rs3", 1)]),
        "{got:?}"
    );

    // As `ipvsadm -R`: each line on its own; a refused one prints its
    // error and the others stay applied; the status is the last line's.
    let bad = format!("-C\n-A -t {VIP}:81 -s rr\n-a -t {VIP}:82 -r 203.0.113.11:80 -m\n");
    let out = lb.xvsd.adm_input(&["-R"], &bad);
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Service not defined\n"
    );
    assert_eq!(
        lb.xvsd.adm_ok(&["-S", "-n"]),
        format!("-A -t {VIP}:81 -s rr\n")
    );
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn stats_count_the_traffic_sent() {
    let lb = Lb::start();
    lb.tb.start_http_servers(80).unwrap();
    lb.nat_service("rr", &[1, 1, 1]);
    lb.get(&format!("http://{VIP}/"), 30);
    // Let the last FIN/ACK exchanges land.
    std::thread::sleep(Duration::from_millis(300));
    let stats = lb.xvsd.adm_ok(&["-Ln", "--stats", "--exact"]);
    let [conns, inpkts, outpkts, inbytes, outbytes] = stats_row(&stats, &format!("TCP  {VIP}:80"));
    assert_eq!(conns, 30, "{stats}");
    // Per connection the client sends SYN, ACK, request, ACK, FIN, ACK
    // (some may merge) and the server SYN-ACK, response, FIN, ACKs.
    assert!((30 * 4..=30 * 10).contains(&inpkts), "{stats}");
    assert!((30 * 3..=30 * 10).contains(&outpkts), "{stats}");
    assert!(inbytes >= inpkts * 40 && inbytes <= inpkts * 600, "{stats}");
    assert!(
        outbytes >= outpkts * 40 && outbytes <= outpkts * 600,
        "{stats}"
    );
    for i in 1..=3u8 {
        let row = stats_row(&stats, &format!("-> {}:80", rs_ip(i)));
        assert_eq!(row[0], 10, "{stats}");
    }
    json_stats_match_the_text(&lb);
    // The XDP program forwards itself; the kernel fallback (no neighbour
    // entry yet) may only take the first few packets.
    let c = lb.xvsd.counters();
    let sent = c["tx"] + c["redirect"];
    let rewritten = c["nat_in"] + c["nat_out"];
    assert!(rewritten >= inpkts + outpkts, "{c:?}");
    assert!(sent + 4 >= rewritten, "{c:?}");
    assert_eq!(c["drop_conn_full"], 0, "{c:?}");
    lb.xvsd.adm_ok(&["-Z"]);
    let zeroed = lb.xvsd.adm_ok(&["-Ln", "--stats", "--exact"]);
    assert_eq!(
        stats_row(&zeroed, &format!("TCP  {VIP}:80")),
        [0; 5],
        "{zeroed}"
    );
    let conns = lb.xvsd.adm_ok(&["-Lnc"]);
    assert!(conns.contains(&format!("{VIP}:80")), "{conns}");
}

/// `xvsadm -Ln --stats --json` (and `-Lnc --json`) after real traffic:
/// valid against the committed schema, and the same numbers as the text
/// listing read right before and after (retried while a late packet
/// moves them).
fn json_stats_match_the_text(lb: &Lb) {
    let schema_file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/xvsadm-json.schema.json"
    );
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_file).expect("schema file"))
            .expect("schema JSON");
    let v = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles");
    let valid = |args: &[&str]| -> serde_json::Value {
        let out = lb.xvsd.adm_ok(args);
        let doc: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
        let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{args:?}: {errors:?}\n{out}");
        doc
    };
    let five = |s: &serde_json::Value| -> [u64; 5] {
        ["conns", "inpkts", "outpkts", "inbytes", "outbytes"]
            .map(|k| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}")))
    };
    let mut tries = 0;
    let (text, doc) = loop {
        let before = lb.xvsd.adm_ok(&["-Ln", "--stats", "--exact"]);
        let doc = valid(&["-Ln", "--stats", "--json"]);
        if before == lb.xvsd.adm_ok(&["-Ln", "--stats", "--exact"]) || tries == 5 {
            break (before, doc);
        }
        tries += 1;
        std::thread::sleep(Duration::from_millis(200));
    };
    let svc = &doc["services"][0];
    assert_eq!(svc["service"]["key"]["addr"], VIP, "{doc}");
    assert_eq!(svc["proto_name"], "TCP", "{doc}");
    assert_eq!(
        five(&svc["stats"]),
        stats_row(&text, &format!("TCP  {VIP}:80")),
        "{text}\n{doc}"
    );
    let dests = svc["dests"].as_array().expect("dests");
    assert_eq!(dests.len(), 3, "{doc}");
    for d in dests {
        let rs = d["dest"]["addr"].as_str().expect("addr");
        assert_eq!(d["forward"], "Masq", "{doc}");
        assert_eq!(
            five(&d["stats"]),
            stats_row(&text, &format!("-> {rs}:80")),
            "{text}\n{doc}"
        );
    }
    let conns = valid(&["-Lnc", "--json"]);
    let listed = conns["connections"].as_array().expect("connections");
    assert!(listed.iter().any(|c| c["vaddr"] == VIP), "{conns}");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn xvsadm_without_a_daemon_says_so() {
    let out = std::process::Command::new(bin_path("xvsadm"))
        .args(["--socket", "/run/xvs-test/none/nothing.sock", "-Ln"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/run/xvs-test/none/nothing.sock") && err.contains("xvsd"),
        "{err}"
    );
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn refused_commands_keep_the_table_and_exit_like_ipvsadm() {
    let lb = Lb::start();
    lb.nat_service("rr", &[1]);
    let before = lb.xvsd.adm_ok(&["-S", "-n"]);
    let dup = lb.xvsd.adm(&[
        "-a",
        "-t",
        &format!("{VIP}:80"),
        "-r",
        &format!("{}:80", rs_ip(1)),
        "-m",
    ]);
    assert_eq!(dup.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&dup.stderr),
        "Destination already exists\n"
    );
    // An engine the kernel would not find is refused as IPVS refuses it,
    // and the table stays as it was.
    let later = lb.xvsd.adm(&[
        "-E",
        "-t",
        &format!("{VIP}:80"),
        "-s",
        "rr",
        "-p",
        "60",
        "--pe",
        "nosuch",
    ]);
    assert_eq!(later.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&later.stderr),
        "Scheduler or persistence engine not found\n"
    );
    assert_eq!(lb.xvsd.adm_ok(&["-S", "-n"]), before);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn set_timeouts_drive_connection_expiry() {
    let lb = Lb::start();
    lb.tb.start_udp_echo_servers(53).unwrap();
    assert_eq!(
        lb.xvsd.adm_ok(&["-L", "--timeout"]),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    lb.xvsd.adm_ok(&["--set", "0", "60", "2"]);
    assert_eq!(
        lb.xvsd.adm_ok(&["-L", "--timeout"]),
        "Timeout (tcp tcpfin udp): 900 60 2\n"
    );
    lb.xvsd
        .adm_ok(&["-A", "-u", &format!("{VIP}:53"), "-s", "rr"]);
    lb.xvsd.adm_ok(&[
        "-a",
        "-u",
        &format!("{VIP}:53"),
        "-r",
        &format!("{}:53", rs_ip(1)),
        "-m",
    ]);
    testsrv_ok(
        &lb.tb,
        Node::Client,
        &["udp", &format!("{VIP}:53"), "--count", "1"],
        || lb.xvsd.report(),
    );
    let conns = lb.xvsd.adm_ok(&["-Lnc"]);
    assert!(conns.contains("UDP 00:0"), "{conns}");
    // Expiry runs every second; a 2 s timeout must be gone well within 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    while lb.xvsd.adm_ok(&["-Lnc"]).contains("UDP") {
        assert!(Instant::now() < deadline, "UDP connection never expired");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_restarted_daemon_keeps_its_table() {
    let mut lb = Lb::start();
    lb.tb.start_http_servers(80).unwrap();
    lb.nat_service("wrr", &[3, 2, 1]);
    lb.get(&format!("http://{VIP}/"), 6);
    let saved = lb.xvsd.adm_ok(&["-S", "-n"]);
    let stats = lb.xvsd.adm_ok(&["-Ln", "--stats", "--exact"]);
    lb.xvsd.restart(&lb.tb);
    assert_eq!(lb.xvsd.adm_ok(&["-S", "-n"]), saved);
    // Counters live in pinned maps: the restart does not reset them.
    assert_eq!(lb.xvsd.adm_ok(&["-Ln", "--stats", "--exact"]), stats);
    let got = lb.get(&format!("http://{VIP}/"), 6);
    assert_eq!(
        tally(&got),
        counts(&[("rs1", 3), ("rs2", 2), ("rs3", 1)]),
        "{got:?}"
    );
}

/// `--nexthop-ttl-ms` reaches the data plane: with the cache off every
/// packet takes the kernel's route lookup and no cache slot is filled; with
/// the default the cache serves nearly every packet.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn nexthop_cache_lifetime_is_an_xvsd_option() {
    for (ttl, cached) in [(Some("0"), false), (None, true)] {
        let tb = Testbed::nat().expect("testbed");
        let extra: Vec<&str> = ttl.map(|t| vec!["--nexthop-ttl-ms", t]).unwrap_or_default();
        let xvsd = Xvsd::start(&tb, Node::Director, &extra);
        let lb = Lb { xvsd, tb };
        lb.tb.start_http_servers(80).unwrap();
        lb.nat_service("rr", &[1, 1, 1]);
        lb.get(&format!("http://{VIP}/"), 12);
        let c = lb.xvsd.counters();
        let sent = c["tx"] + c["redirect"];
        assert!(sent >= 12 * 4, "{c:?}");
        if cached {
            assert!(c["nh_fill"] > 0 && c["nh_fill"] * 4 < sent, "{c:?}");
        } else {
            assert_eq!(c["nh_fill"], 0, "{c:?}");
        }
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn offloaded_checksums_and_gso_packets_cross_the_tc_data_plane() {
    // What the tc program takes that XDP on veth cannot: senders that
    // leave TCP checksums partial (tx offload) and send 64 KiB TSO/GSO
    // packets, a switch that keeps them whole, and GRO on the director.
    let tb = Testbed::nat().expect("testbed");
    let on = |node: Node, dev: &str| {
        tb.exec_ok(
            node,
            &["ethtool", "-K", dev, "tx", "on", "tso", "on", "gso", "on"],
        )
        .unwrap();
    };
    on(Node::Client, "eth0");
    on(Node::Switch, "dir");
    for n in 1..=3u8 {
        on(Node::Rs(n), "eth0");
        on(Node::Switch, &format!("rs{n}"));
    }
    for dev in ["eth0", "eth1"] {
        tb.exec_ok(Node::Director, &["ethtool", "-K", dev, "gro", "on"])
            .unwrap();
    }
    let xvsd = Xvsd::start(&tb, Node::Director, &["--attach", "tc"]);
    let lb = Lb { xvsd, tb };
    lb.tb.start_http_servers(80).unwrap();
    lb.nat_service("rr", &[1, 1, 1]);
    let got = lb.get(&format!("http://{VIP}/pad/262144"), 30);
    let each = |rs: &str| (format!("{rs} (262148 bytes)"), 10);
    assert_eq!(
        tally(&got),
        [each("rs1"), each("rs2"), each("rs3")]
            .into_iter()
            .collect(),
        "every 256 KiB response arrives whole and checksum-clean"
    );
    std::thread::sleep(Duration::from_millis(300));
    let stats = lb.xvsd.adm_ok(&["-Ln", "--stats", "--exact"]);
    let [conns, _, outpkts, _, outbytes] = stats_row(&stats, &format!("TCP  {VIP}:80"));
    assert_eq!(conns, 30, "{stats}");
    // 30 × 256 KiB in packets averaging more than an MTU: GSO packets were
    // rewritten and forwarded whole, not segmented on the way.
    assert!(outbytes >= 30 * 262_148, "{stats}");
    assert!(outbytes / outpkts > 1500, "{stats}");
    let c = lb.xvsd.counters();
    assert!(c["nat_out"] >= outpkts, "{c:?}");
    assert_eq!(c["drop_encap"], 0, "{c:?}");
}

/// A real server at the director's own address (IPVS: the transmitter's
/// output route is local, so the packet continues to the local stack,
/// DNAT'ed; its answers get the VIP back in LOCAL_OUT). `-L` shows the
/// method given, as IPVS's since Linux 3.x, which no longer turns a
/// local dest into "Local".
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_real_server_on_the_director_itself_answers_through_the_vip() {
    let lb = Lb::start();
    let info = lb.xvsd.api("{\"op\":\"info\"}");
    if !info.contains("[\"local_out\",true]") {
        // XVS_FEATURES_OFF, or a kernel without it: the answers could not
        // get the VIP back (docs/design.md, local dests).
        eprintln!("skipped: no xvs_local_out\n{info}");
        return;
    }
    lb.tb.start_http_servers(80).unwrap();
    let _own = serve(&lb.tb, Node::Director, "http", "0.0.0.0:8080", "director");
    let vip = format!("{VIP}:80");
    lb.xvsd.adm_ok(&["-A", "-t", &vip, "-s", "rr"]);
    lb.xvsd
        .adm_ok(&["-a", "-t", &vip, "-r", &format!("{}:80", rs_ip(1)), "-m"]);
    let own = format!("{DIRECTOR_INT_IP}:8080");
    lb.xvsd.adm_ok(&["-a", "-t", &vip, "-r", &own, "-m"]);
    let got = lb.get(&format!("http://{VIP}/"), 10);
    assert_eq!(
        tally(&got),
        counts(&[("rs1", 5), ("director", 5)]),
        "{got:?}\n{}",
        lb.xvsd.report()
    );
    let list = lb.xvsd.adm_ok(&["-Ln"]);
    let row = format!("  -> {own:<28} Masq    1      0          5         \n");
    assert!(list.contains(&row), "{list}");
    let c = lb.xvsd.counters();
    assert!(c["pass_local"] >= 5 && c["local_out"] >= 5, "{c:?}");
}

/// `--pe sip`: a persistent UDP service keeps each call (Call-ID) on one
/// real server, whatever source port its messages come from, while new
/// calls from the same client are scheduled; a datagram without a
/// Call-ID is dropped; `-Lnc --persistent-conn` lists each call's
/// template with its Call-ID.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn sip_calls_stay_on_their_server() {
    let lb = Lb::start();
    lb.tb.start_udp_echo_servers(5060).unwrap();
    let vs = format!("{VIP}:5060");
    lb.xvsd
        .adm_ok(&["-A", "-u", &vs, "-s", "rr", "-p", "60", "--pe", "sip"]);
    for i in 1..=3u8 {
        let rs = format!("{}:5060", rs_ip(i));
        lb.xvsd.adm_ok(&["-a", "-u", &vs, "-r", &rs, "-m"]);
    }
    assert!(
        lb.xvsd
            .adm_ok(&["-Ln"])
            .contains(&format!("UDP  {vs} rr persistent 60 pe sip")),
        "{}",
        lb.xvsd.adm_ok(&["-Ln"])
    );
    let call = |id: &str, n: u32| -> Vec<String> {
        let msg =
            format!("INVITE sip:bob@example.org SIP/2.0\r\nCall-ID: {id}\r\nCSeq: 1 INVITE\r\n");
        let out = testsrv_ok(
            &lb.tb,
            Node::Client,
            &[
                "udp",
                &vs,
                "--count",
                &n.to_string(),
                "--new-conn",
                "--payload",
                &msg,
            ],
            || lb.xvsd.report(),
        );
        server_names(&out)
    };
    // Three messages of one call, each from a new port: one server.
    let a = call("call-a@192.0.2.1", 3);
    assert_eq!(tally(&a).len(), 1, "{a:?}");
    // New calls from the same client: scheduled round robin.
    let b = call("call-b@192.0.2.1", 1);
    let c = call("call-c@192.0.2.1", 1);
    let mut all = vec![a[0].clone(), b[0].clone(), c[0].clone()];
    all.sort();
    assert_eq!(all, ["rs1", "rs2", "rs3"]);
    // The first call again: its server.
    assert_eq!(call("call-a@192.0.2.1", 2), [a[0].clone(), a[0].clone()]);
    // No Call-ID: dropped, as IPVS drops it (no answer).
    let out = lb
        .tb
        .exec(
            Node::Client,
            &[
                &bin_path("xvs-testsrv"),
                "udp",
                &vs,
                "--count",
                "1",
                "--timeout-ms",
                "500",
                "--payload",
                "OPTIONS sip:x SIP/2.0\r\n\r\n",
            ],
        )
        .expect("client");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ERR"),
        "{out:?}"
    );
    let conns = lb.xvsd.adm_ok(&["-Lnc", "--persistent-conn"]);
    for id in ["call-a@192.0.2.1", "call-b@192.0.2.1", "call-c@192.0.2.1"] {
        assert!(
            conns
                .lines()
                .any(|l| l.starts_with("UDP") && l.contains(" sip ") && l.ends_with(id)),
            "{id}: {conns}"
        );
    }
    let plain = lb.xvsd.adm_ok(&["-Lnc"]);
    assert!(!plain.contains(" sip "), "{plain}");
}
