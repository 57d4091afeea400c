//! End to end: the real `xvsd` in the director namespace, driven by the real
//! `xvsadm`, load-balancing real HTTP and UDP servers in NAT mode. Every test
//! builds its own testbed, which is torn down on drop (also on failure).

use std::collections::BTreeMap;
use std::process::Output;
use std::time::{Duration, Instant};

use xvs_testbed::{bin, rs_ip, Node, Proc, Testbed, VIP};

fn path(name: &str) -> String {
    bin(name).unwrap().to_string_lossy().into_owned()
}

/// A testbed with xvsd running in the director.
struct Lb {
    // Field order is drop order: stop xvsd before the namespaces go.
    xvsd: Proc,
    sock: String,
    tb: Testbed,
}

impl Lb {
    fn start() -> Lb {
        let tb = Testbed::nat().expect("testbed");
        let sock = tb
            .run_dir()
            .join("xvsd.sock")
            .to_string_lossy()
            .into_owned();
        let xvsd = spawn_xvsd(&tb, &sock);
        Lb { xvsd, sock, tb }
    }

    /// Stops xvsd with SIGTERM and starts it again on the same socket and pins.
    fn restart(&mut self) {
        let st = self.xvsd.stop(Duration::from_secs(5)).expect("xvsd stops");
        assert!(st.success(), "xvsd exit: {st}\n{}", self.xvsd.log());
        self.xvsd = spawn_xvsd(&self.tb, &self.sock);
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

    /// `n` HTTP requests from the client, each on a new connection; the
    /// name of the server that answered each.
    fn get(&self, url: &str, n: u32) -> Vec<String> {
        let out = self
            .tb
            .exec(
                Node::Client,
                &[
                    &path("xvs-testsrv"),
                    "get",
                    url,
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
            "get {url}: {}\n{stdout}{}\nxvsd log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.xvsd.log()
        );
        stdout.lines().map(str::to_string).collect()
    }

    /// The data plane's counters, from xvsd's `info` request.
    fn counters(&self) -> BTreeMap<String, u64> {
        use std::io::{BufRead, BufReader, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&self.sock).unwrap();
        s.write_all(b"{\"op\":\"info\"}\n").unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        // "counters":[["rx",12],["pass_not_ip",0],...]
        let list = line
            .split("\"counters\":[")
            .nth(1)
            .expect("counters in info");
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

    fn nat_service(&self, sched: &str, weights: &[u32]) {
        self.adm_ok(&["-A", "-t", &format!("{VIP}:80"), "-s", sched]);
        for (i, w) in weights.iter().enumerate() {
            let rs = format!("{}:80", rs_ip(i as u8 + 1));
            self.adm_ok(&[
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

fn expect(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
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
        expect(&[("rs1", 10), ("rs2", 10), ("rs3", 10)]),
        "{got:?}"
    );
    let list = lb.adm_ok(&["-Ln"]);
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
        expect(&[("rs1", 15), ("rs2", 10), ("rs3", 5)]),
        "{got:?}"
    );
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn port_mapping_reaches_the_real_servers_port() {
    let lb = Lb::start();
    // Only a server on 8080: a request that kept port 80 would be refused.
    let srv = lb
        .tb
        .spawn(
            Node::Rs(2),
            &[
                &path("xvs-testsrv"),
                "http",
                "--listen",
                "0.0.0.0:8080",
                "--name",
                "rs2-8080",
            ],
        )
        .unwrap();
    srv.wait_for_log("listening on", Duration::from_secs(5))
        .unwrap();
    lb.adm_ok(&["-A", "-t", &format!("{VIP}:80"), "-s", "rr"]);
    lb.adm_ok(&[
        "-a",
        "-t",
        &format!("{VIP}:80"),
        "-r",
        &format!("{}:8080", rs_ip(2)),
        "-m",
    ]);
    let got = lb.get(&format!("http://{VIP}/"), 5);
    assert_eq!(tally(&got), expect(&[("rs2-8080", 5)]));
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn udp_echo_through_the_vip() {
    let lb = Lb::start();
    lb.tb.start_udp_echo_servers(53).unwrap();
    lb.adm_ok(&["-A", "-u", &format!("{VIP}:53"), "-s", "rr"]);
    for i in 1..=3u8 {
        lb.adm_ok(&[
            "-a",
            "-u",
            &format!("{VIP}:53"),
            "-r",
            &format!("{}:53", rs_ip(i)),
            "-m",
        ]);
    }
    let out = lb
        .tb
        .exec(
            Node::Client,
            &[
                &path("xvs-testsrv"),
                "udp",
                &format!("{VIP}:53"),
                "--count",
                "6",
                "--new-conn",
                "--payload",
                "hi",
            ],
        )
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = stdout
        .lines()
        .map(|l| l.split(':').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        tally(&names),
        expect(&[("rs1", 2), ("rs2", 2), ("rs3", 2)]),
        "{stdout}"
    );
    assert!(stdout.lines().all(|l| l.contains(": hi ")), "{stdout}");
    let conns = lb.adm_ok(&["-Lnc"]);
    assert!(conns.contains("UDP"), "{conns}");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn deleting_a_dest_stops_new_connections_to_it() {
    let lb = Lb::start();
    lb.tb.start_http_servers(80).unwrap();
    lb.nat_service("rr", &[1, 1, 1]);
    lb.get(&format!("http://{VIP}/"), 6);
    lb.adm_ok(&[
        "-d",
        "-t",
        &format!("{VIP}:80"),
        "-r",
        &format!("{}:80", rs_ip(2)),
    ]);
    let got = lb.get(&format!("http://{VIP}/"), 20);
    assert_eq!(tally(&got), expect(&[("rs1", 10), ("rs3", 10)]), "{got:?}");
    let list = lb.adm_ok(&["-Ln"]);
    assert!(!list.contains("203.0.113.12"), "{list}");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn save_clear_restore_round_trips() {
    let lb = Lb::start();
    lb.tb.start_http_servers(80).unwrap();
    lb.nat_service("wrr", &[3, 2, 1]);
    lb.adm_ok(&["-A", "-u", &format!("{VIP}:53"), "-s", "rr"]);
    lb.adm_ok(&[
        "-a",
        "-u",
        &format!("{VIP}:53"),
        "-r",
        &format!("{}:5353", rs_ip(3)),
        "-m",
        "-w",
        "7",
    ]);
    let saved = lb.adm_ok(&["-S", "-n"]);
    let listed = lb.adm_ok(&["-Ln"]);
    lb.adm_ok(&["-C"]);
    assert!(!lb.adm_ok(&["-Ln"]).contains(VIP));
    let mut child = std::process::Command::new(path("xvsadm"))
        .args(["--socket", &lb.sock, "-R"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(saved.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(lb.adm_ok(&["-S", "-n"]), saved);
    assert_eq!(lb.adm_ok(&["-Ln"]), listed);
    let got = lb.get(&format!("http://{VIP}/"), 6);
    assert_eq!(
        tally(&got),
        expect(&[("rs1", 3), ("rs2", 2), ("rs3", 1)]),
        "{got:?}"
    );

    // A restore file with an error changes nothing.
    let bad = format!("-C\n-A -t {VIP}:81 -s rr\n-a -t {VIP}:82 -r 203.0.113.11:80 -m\n");
    let mut child = std::process::Command::new(path("xvsadm"))
        .args(["--socket", &lb.sock, "-R"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(bad.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Service not defined"));
    assert_eq!(lb.adm_ok(&["-S", "-n"]), saved);
}

/// Parses `-Ln --stats` into (Conns, InPkts, OutPkts, InBytes, OutBytes)
/// per line that starts with the given text.
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

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn stats_count_the_traffic_sent() {
    let lb = Lb::start();
    lb.tb.start_http_servers(80).unwrap();
    lb.nat_service("rr", &[1, 1, 1]);
    lb.get(&format!("http://{VIP}/"), 30);
    // Let the last FIN/ACK exchanges land.
    std::thread::sleep(Duration::from_millis(300));
    let stats = lb.adm_ok(&["-Ln", "--stats", "--exact"]);
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
    // The XDP program forwards itself; the kernel fallback (no neighbour
    // entry yet) may only take the first few packets.
    let c = lb.counters();
    let sent = c["tx"] + c["redirect"];
    let rewritten = c["nat_in"] + c["nat_out"];
    assert!(rewritten >= inpkts + outpkts, "{c:?}");
    assert!(sent + 4 >= rewritten, "{c:?}");
    assert_eq!(c["drop_conn_full"], 0, "{c:?}");
    lb.adm_ok(&["-Z"]);
    let zeroed = lb.adm_ok(&["-Ln", "--stats", "--exact"]);
    assert_eq!(
        stats_row(&zeroed, &format!("TCP  {VIP}:80")),
        [0; 5],
        "{zeroed}"
    );
    let conns = lb.adm_ok(&["-Lnc"]);
    assert!(conns.contains(&format!("{VIP}:80")), "{conns}");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn xvsadm_without_a_daemon_says_so() {
    let out = std::process::Command::new(path("xvsadm"))
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
    let before = lb.adm_ok(&["-S", "-n"]);
    let dup = lb.adm(&[
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
    // A feature whose data path does not exist (persistence engines) is
    // refused, not silently ignored.
    let later = lb.adm(&[
        "-E",
        "-t",
        &format!("{VIP}:80"),
        "-s",
        "rr",
        "-p",
        "60",
        "--pe",
        "sip",
    ]);
    assert_eq!(later.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&later.stderr).contains("persistence engines"));
    assert_eq!(lb.adm_ok(&["-S", "-n"]), before);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn set_timeouts_drive_connection_expiry() {
    let lb = Lb::start();
    lb.tb.start_udp_echo_servers(53).unwrap();
    assert_eq!(
        lb.adm_ok(&["-L", "--timeout"]),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    lb.adm_ok(&["--set", "0", "60", "2"]);
    assert_eq!(
        lb.adm_ok(&["-L", "--timeout"]),
        "Timeout (tcp tcpfin udp): 900 60 2\n"
    );
    lb.adm_ok(&["-A", "-u", &format!("{VIP}:53"), "-s", "rr"]);
    lb.adm_ok(&[
        "-a",
        "-u",
        &format!("{VIP}:53"),
        "-r",
        &format!("{}:53", rs_ip(1)),
        "-m",
    ]);
    let out = lb
        .tb
        .exec(
            Node::Client,
            &[
                &path("xvs-testsrv"),
                "udp",
                &format!("{VIP}:53"),
                "--count",
                "1",
            ],
        )
        .unwrap();
    assert!(out.status.success());
    let conns = lb.adm_ok(&["-Lnc"]);
    assert!(conns.contains("UDP 00:0"), "{conns}");
    // Expiry runs every second; a 2 s timeout must be gone well within 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    while lb.adm_ok(&["-Lnc"]).contains("UDP") {
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
    let saved = lb.adm_ok(&["-S", "-n"]);
    let stats = lb.adm_ok(&["-Ln", "--stats", "--exact"]);
    lb.restart();
    assert_eq!(lb.adm_ok(&["-S", "-n"]), saved);
    // Counters live in pinned maps: the restart does not reset them.
    assert_eq!(lb.adm_ok(&["-Ln", "--stats", "--exact"]), stats);
    let got = lb.get(&format!("http://{VIP}/"), 6);
    assert_eq!(
        tally(&got),
        expect(&[("rs1", 3), ("rs2", 2), ("rs3", 1)]),
        "{got:?}"
    );
}
