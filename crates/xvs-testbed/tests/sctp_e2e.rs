//! End to end: SCTP virtual services (`--sctp-service`) in NAT, DR and
//! TUN (IPIP) modes, with real SCTP associations: `xvs-testsrv sctp` on the
//! real servers, `xvs-testsrv sctp-get` on the client, one association
//! per request, each shut down gracefully (SHUTDOWN, SHUTDOWN-ACK,
//! SHUTDOWN-COMPLETE). The real `xvsd` runs in the director, driven by the
//! real `xvsadm`. Every test builds its own testbed, which is torn down on
//! drop (also on failure).
//!
//! The client's and the real servers' stacks must speak SCTP (the
//! director's data plane does not need the module): on a kernel without it
//! every test prints one `skipped:` line and passes. Debian's stock
//! kernels have it (`cargo xtask matrix`).

use std::collections::BTreeMap;
use std::time::Duration;

use xvs_testbed::harness::{serve, setup_real_servers, stats_row, tally, testsrv_ok, Xvsd};
use xvs_testbed::testsrv::sctp_available;
use xvs_testbed::{dr_rs_ip, rs_ip, Node, Proc, Testbed, DR_RS_COUNT, NAT_RS_COUNT, VIP};

/// Per-association timeout of `sctp-get`. Above SCTP's initial RTO (3 s):
/// one lost INIT is retransmitted within it.
const SCTP_TIMEOUT_MS: &str = "5000";

/// The SCTP state names `ipvsadm -Lc` prints (the kernel's
/// `sctp_state_name_table`).
const SCTP_STATES: [&str; 14] = [
    "NONE",
    "INIT1",
    "INIT",
    "C-SENT",
    "C-REPLIED",
    "C-WAIT",
    "COOKIE",
    "C-ECHOED",
    "ESTABLISHED",
    "S-SENT",
    "S-RECEIVED",
    "S-ACK-SENT",
    "REJECTED",
    "CLOSED",
];

/// Whether this kernel lacks SCTP; says so in one line when it does.
fn no_sctp() -> bool {
    match sctp_available() {
        Ok(()) => false,
        Err(e) => {
            eprintln!("skipped: {e}");
            true
        }
    }
}

/// How the real servers are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fwd {
    Nat,
    Dr,
    Ipip,
}

impl Fwd {
    /// The `xvsadm -a` forwarding option.
    fn adm_arg(self) -> &'static str {
        match self {
            Fwd::Nat => "-m",
            Fwd::Dr => "-g",
            Fwd::Ipip => "-i",
        }
    }

    /// What `-Ln` prints in the Forward column.
    fn listed(self) -> &'static str {
        match self {
            Fwd::Nat => "Masq",
            Fwd::Dr => "Route",
            Fwd::Ipip => "Tunnel",
        }
    }

    fn rs_count(self) -> u8 {
        match self {
            Fwd::Nat => NAT_RS_COUNT,
            Fwd::Dr | Fwd::Ipip => DR_RS_COUNT,
        }
    }

    fn rs_ip(self, n: u8) -> String {
        match self {
            Fwd::Nat => rs_ip(n),
            Fwd::Dr | Fwd::Ipip => dr_rs_ip(n),
        }
    }
}

/// A testbed with xvsd running in the director.
struct Lb {
    // Field order is drop order: stop xvsd before the namespaces go.
    xvsd: Xvsd,
    tb: Testbed,
    fwd: Fwd,
}

impl Lb {
    fn start(fwd: Fwd) -> Lb {
        let tb = match fwd {
            Fwd::Nat => Testbed::nat(),
            Fwd::Dr | Fwd::Ipip => Testbed::dr(),
        }
        .expect("testbed");
        let xvsd = Xvsd::start(&tb, Node::Director, &[]);
        Lb { xvsd, tb, fwd }
    }

    /// `xvs-testsrv sctp --name rsN` on every real server, bound to the
    /// address the director sends to: the real server's own in NAT, the
    /// VIP (on lo, from `xvs-realserver`) in DR and TUN. A bound address
    /// rather than the wildcard: a wildcard SCTP server lists all its
    /// addresses in INIT-ACK, which would give the client's association
    /// a second path around the director.
    fn serve_sctp(&self, port: u16) -> Vec<Proc> {
        (1..=self.fwd.rs_count())
            .map(|n| {
                let addr = match self.fwd {
                    Fwd::Nat => self.fwd.rs_ip(n),
                    Fwd::Dr | Fwd::Ipip => VIP.to_string(),
                };
                let listen = format!("{addr}:{port}");
                serve(&self.tb, Node::Rs(n), "sctp", &listen, &format!("rs{n}"))
            })
            .collect()
    }

    /// `-A --sctp-service VIP:vport -s rr` and one `-a` per real server
    /// (to its `rport`).
    fn service(&self, vport: u16, rport: u16) {
        let svc = format!("{VIP}:{vport}");
        self.xvsd
            .adm_ok(&["-A", "--sctp-service", &svc, "-s", "rr"]);
        for n in 1..=self.fwd.rs_count() {
            let rs = format!("{}:{rport}", self.fwd.rs_ip(n));
            self.xvsd
                .adm_ok(&["-a", "--sctp-service", &svc, "-r", &rs, self.fwd.adm_arg()]);
        }
    }

    /// `n` associations from the client to `VIP:vport`, one request each;
    /// the name of the server that answered each. A broken path fails
    /// every association only at its timeout: a first round of one per
    /// real server shows it within seconds, not `n` timeouts.
    fn associate(&self, vport: u16, n: u32) -> Vec<String> {
        let first = n.min(u32::from(self.fwd.rs_count()));
        let mut got = self.sctp_get(vport, first);
        if n > first {
            got.extend(self.sctp_get(vport, n - first));
        }
        got
    }

    /// One `xvs-testsrv sctp-get` run of `n` associations, which must all
    /// be answered.
    fn sctp_get(&self, vport: u16, n: u32) -> Vec<String> {
        let target = format!("{VIP}:{vport}");
        let count = n.to_string();
        let args = [
            "sctp-get",
            &target,
            "--count",
            &count,
            "--timeout-ms",
            SCTP_TIMEOUT_MS,
        ];
        testsrv_ok(&self.tb, Node::Client, &args, || self.report())
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// xvsd's counters and log, and the SCTP checksum errors each end
    /// counted (a rewrite that left the CRC32c stale shows there).
    fn report(&self) -> String {
        let mut nodes = vec![Node::Client];
        nodes.extend((1..=self.fwd.rs_count()).map(Node::Rs));
        let crc: Vec<String> = nodes
            .iter()
            .map(|&node| format!("{node}: {:?}", checksum_errors(&self.tb, node)))
            .collect();
        format!(
            "SctpChecksumErrors: {}\n{}",
            crc.join(", "),
            self.xvsd.report()
        )
    }

    /// `-Ln`: the service with the scheduler, every dest with the
    /// forwarding method, weight 1, and `conns` connections (active and
    /// inactive together: a closed association's entry lingers, in
    /// CLOSED, which counts as inactive).
    fn check_listing(&self, vport: u16, rport: u16, conns: u64) {
        let list = self.xvsd.adm_ok(&["-Ln"]);
        // ipvsadm pads the protocol to 4 ("TCP  ", "SCTP ").
        assert!(list.contains(&format!("SCTP {VIP}:{vport} rr")), "{list}");
        for n in 1..=self.fwd.rs_count() {
            let dest = format!("  -> {}:{rport}", self.fwd.rs_ip(n));
            let line = list
                .lines()
                .find(|l| l.starts_with(&dest))
                .unwrap_or_else(|| panic!("no {dest} in\n{list}"));
            let words: Vec<&str> = line.split_whitespace().collect();
            // -> ADDR:PORT Forward Weight ActiveConn InActConn
            assert_eq!(words.len(), 6, "{list}");
            assert_eq!((words[2], words[3]), (self.fwd.listed(), "1"), "{list}");
            let active: u64 = words[4].parse().expect("ActiveConn");
            let inactive: u64 = words[5].parse().expect("InActConn");
            assert_eq!(active + inactive, conns, "{list}");
        }
    }

    /// `-Lnc`: SCTP rows with SCTP state names, from the client to the VIP
    /// and on to a real server's `rport`; at least one (IPVS keeps a
    /// CLOSED entry 61 s, but the test does not depend on that). In NAT,
    /// where the director sees both directions, every association ended
    /// with SHUTDOWN, SHUTDOWN-ACK, SHUTDOWN-COMPLETE, which IPVS's state
    /// table takes to CLOSED.
    fn check_conns(&self, vport: u16, rport: u16) {
        let conns = self.xvsd.adm_ok(&["-Lnc"]);
        let rows: Vec<Vec<&str>> = conns
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|w| w.first() == Some(&"SCTP"))
            .collect();
        assert!(!rows.is_empty(), "no SCTP connections in\n{conns}");
        let dests: Vec<String> = (1..=self.fwd.rs_count())
            .map(|n| format!("{}:{rport}", self.fwd.rs_ip(n)))
            .collect();
        for w in &rows {
            // pro expire state source virtual destination
            assert_eq!(w.len(), 6, "{conns}");
            assert!(SCTP_STATES.contains(&w[2]), "state {}: {conns}", w[2]);
            assert_eq!(w[4], format!("{VIP}:{vport}"), "{conns}");
            assert!(dests.iter().any(|d| d == w[5]), "{conns}");
            if self.fwd == Fwd::Nat {
                assert_eq!(w[2], "CLOSED", "{conns}");
            }
        }
    }
}

/// The counter `name` (`SctpChecksumErrors`, `SctpShutdowns`, ...) of
/// `node`'s namespace (`/proc/net/sctp/snmp`), `None` when it cannot be
/// read.
fn sctp_mib(tb: &Testbed, node: Node, name: &str) -> Option<u64> {
    let snmp = tb.exec_ok(node, &["cat", "/proc/net/sctp/snmp"]).ok()?;
    snmp.lines().find_map(|l| {
        let (key, value) = l.split_once(char::is_whitespace)?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

fn checksum_errors(tb: &Testbed, node: Node) -> Option<u64> {
    sctp_mib(tb, node, "SctpChecksumErrors")
}

/// The client ended `n` associations gracefully (SHUTDOWN-SENT to
/// CLOSED on SHUTDOWN-ACK: `SctpShutdowns`) and none by ABORT.
fn assert_graceful(tb: &Testbed, n: u64, context: impl FnOnce() -> String) {
    let shutdowns = sctp_mib(tb, Node::Client, "SctpShutdowns");
    let aborts = sctp_mib(tb, Node::Client, "SctpAborteds");
    assert_eq!(
        (shutdowns, aborts),
        (Some(n), Some(0)),
        "client's SctpShutdowns, SctpAborteds\n{}",
        context()
    );
}

fn even_split(rs: u8, each: usize) -> BTreeMap<String, usize> {
    (1..=rs).map(|n| (format!("rs{n}"), each)).collect()
}

/// No end saw a bad CRC32c.
fn assert_no_checksum_errors(lb: &Lb) {
    let mut nodes = vec![Node::Client];
    nodes.extend((1..=lb.fwd.rs_count()).map(Node::Rs));
    for node in nodes {
        assert_eq!(
            checksum_errors(&lb.tb, node),
            Some(0),
            "{node}\n{}",
            lb.report()
        );
    }
}

/// Without xvs: the SCTP server and client of `xvs-testsrv` talk across
/// the testbed (client → director, routing → real server), so a failure
/// of the tests below is xvs's, not the tools'.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn sctp_testsrv_talks_without_xvs() {
    if no_sctp() {
        return;
    }
    let tb = Testbed::nat().expect("testbed");
    let rs1 = format!("{}:6060", rs_ip(1));
    let _srv = serve(&tb, Node::Rs(1), "sctp", &rs1, "rs1");
    let out = testsrv_ok(
        &tb,
        Node::Client,
        &[
            "sctp-get",
            &rs1,
            "--count",
            "5",
            "--timeout-ms",
            SCTP_TIMEOUT_MS,
        ],
        String::new,
    );
    assert_eq!(out, "rs1\n".repeat(5));
    assert_graceful(&tb, 5, String::new);
    // The CRC32c is on the wire and checked: the testbed turns tx
    // checksum offload off, SCTP's included (a CHECKSUM_PARTIAL packet
    // would cross the veths without a CRC and be taken unchecked, and a
    // stale CRC after xvs's rewrite would go unnoticed).
    for node in [Node::Client, Node::Rs(1)] {
        let features = tb.exec_ok(node, &["ethtool", "-k", "eth0"]).unwrap();
        assert!(
            features.contains("tx-checksum-sctp: off"),
            "{node}: {features}"
        );
    }
    // Nothing listens on 6061: the INIT is answered with ABORT at once.
    let refused = format!("{}:6061", rs_ip(1));
    let out = testsrv_fails(&tb, &["sctp-get", &refused, "--timeout-ms", "2000"]);
    assert!(out.starts_with("ERR "), "{out}");
    for node in [Node::Client, Node::Rs(1)] {
        assert_eq!(checksum_errors(&tb, node), Some(0), "{node}");
    }
}

/// `xvs-testsrv ARGS` in the client, which must fail; its stdout.
fn testsrv_fails(tb: &Testbed, args: &[&str]) -> String {
    let out = xvs_testbed::harness::testsrv(tb, Node::Client, args);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// NAT with the port mapped (5060 → 6060): the data plane rewrites the
/// SCTP port and so must update the CRC32c, which every real server's and
/// the client's stack checks. Thirty associations split 10/10/10; `-Ln`,
/// `-Lnc` and `--stats` show them.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn sctp_nat_port_mapped_splits_thirty_associations_evenly() {
    if no_sctp() {
        return;
    }
    let lb = Lb::start(Fwd::Nat);
    let _srv = lb.serve_sctp(6060);
    lb.service(5060, 6060);
    let got = lb.associate(5060, 30);
    assert_eq!(
        tally(&got),
        even_split(NAT_RS_COUNT, 10),
        "{got:?}\n{}",
        lb.report()
    );
    assert_graceful(&lb.tb, 30, || lb.report());
    // Let the last SHUTDOWN-COMPLETE land.
    std::thread::sleep(Duration::from_millis(300));
    lb.check_listing(5060, 6060, 10);
    lb.check_conns(5060, 6060);
    assert_no_checksum_errors(&lb);

    let stats = lb.xvsd.adm_ok(&["-Ln", "--stats", "--exact"]);
    let [conns, inpkts, outpkts, inbytes, outbytes] =
        stats_row(&stats, &format!("SCTP {VIP}:5060"));
    assert_eq!(conns, 30, "{stats}");
    // Per association the client sends INIT, COOKIE-ECHO, DATA, SHUTDOWN,
    // SHUTDOWN-COMPLETE (and SACKs), the server INIT-ACK, COOKIE-ACK,
    // DATA (with its SACK) and SHUTDOWN-ACK; some chunks may bundle.
    assert!((30 * 4..=30 * 12).contains(&inpkts), "{stats}");
    assert!((30 * 3..=30 * 12).contains(&outpkts), "{stats}");
    // IP 20 + common header 12 + one chunk header 4 at least; INIT-ACK
    // carries the state cookie, a few hundred bytes.
    assert!(
        inbytes >= inpkts * 36 && inbytes <= inpkts * 1500,
        "{stats}"
    );
    assert!(
        outbytes >= outpkts * 36 && outbytes <= outpkts * 1500,
        "{stats}"
    );
    for n in 1..=NAT_RS_COUNT {
        let row = stats_row(&stats, &format!("-> {}:6060", rs_ip(n)));
        assert_eq!(row[0], 10, "{stats}");
    }
    let c = lb.xvsd.counters();
    let rewritten = c["nat_in"] + c["nat_out"];
    assert!(rewritten >= inpkts + outpkts, "{c:?}\n{stats}");
    assert_eq!(c["drop_conn_full"], 0, "{c:?}");
}

/// NAT with the port kept (5060 → 5060): only the addresses change, which
/// SCTP's CRC32c does not cover (no pseudo-header).
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn sctp_nat_same_port_splits_twelve_associations_evenly() {
    if no_sctp() {
        return;
    }
    let lb = Lb::start(Fwd::Nat);
    let _srv = lb.serve_sctp(5060);
    lb.service(5060, 5060);
    let got = lb.associate(5060, 12);
    assert_eq!(
        tally(&got),
        even_split(NAT_RS_COUNT, 4),
        "{got:?}\n{}",
        lb.report()
    );
    assert_graceful(&lb.tb, 12, || lb.report());
    std::thread::sleep(Duration::from_millis(300));
    lb.check_listing(5060, 5060, 4);
    lb.check_conns(5060, 5060);
    assert_no_checksum_errors(&lb);
    let saved = lb.xvsd.adm_ok(&["-S", "-n"]);
    assert!(
        saved.contains(&format!("-A --sctp-service {VIP}:5060 -s rr")),
        "{saved}"
    );
    assert!(
        saved.contains(&format!(
            "-a --sctp-service {VIP}:5060 -r {}:5060 -m -w 1",
            rs_ip(1)
        )),
        "{saved}"
    );
}

/// DR and TUN: thirty associations split 10/10/10 to servers bound to the
/// VIP; the real servers answer the client directly, so xvs counts
/// nothing out.
fn dr_tun_thirty(fwd: Fwd) {
    let lb = Lb::start(fwd);
    let mode = match fwd {
        Fwd::Dr => "dr",
        _ => "tun",
    };
    setup_real_servers(&lb.tb, &["--mode", mode]);
    let _srv = lb.serve_sctp(5060);
    lb.service(5060, 5060);
    let got = lb.associate(5060, 30);
    assert_eq!(
        tally(&got),
        even_split(DR_RS_COUNT, 10),
        "{fwd:?}: {got:?}\n{}",
        lb.report()
    );
    assert_graceful(&lb.tb, 30, || lb.report());
    std::thread::sleep(Duration::from_millis(300));
    lb.check_listing(5060, 5060, 10);
    lb.check_conns(5060, 5060);
    assert_no_checksum_errors(&lb);
    let stats = lb.xvsd.adm_ok(&["-Ln", "--stats", "--exact"]);
    let [conns, inpkts, outpkts, _, outbytes] = stats_row(&stats, &format!("SCTP {VIP}:5060"));
    assert_eq!(conns, 30, "{fwd:?}\n{stats}");
    assert!(
        (30 * 4..=30 * 12).contains(&inpkts),
        "{fwd:?}: InPkts {inpkts}\n{stats}"
    );
    assert_eq!(
        (outpkts, outbytes),
        (0, 0),
        "{fwd:?}: replies seen\n{stats}"
    );
    for n in 1..=DR_RS_COUNT {
        let row = stats_row(&stats, &format!("-> {}:5060", dr_rs_ip(n)));
        assert_eq!(row[0], 10, "{fwd:?}\n{stats}");
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn sctp_dr_splits_thirty_associations_evenly() {
    if no_sctp() {
        return;
    }
    dr_tun_thirty(Fwd::Dr);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn sctp_tun_ipip_splits_thirty_associations_evenly() {
    if no_sctp() {
        return;
    }
    dr_tun_thirty(Fwd::Ipip);
}
