//! The sync oracle: an xvs director and a kernel IPVS director back each
//! other up with IPVS's connection sync protocol. On the two-director DR
//! LAN ([`Testbed::dr_pair`]), one director runs the kernel's IPVS
//! (Debian's `ipvsadm`), the other xvsd (`xvsadm`), with the same DR
//! service; long transfers go through the sync master, whose connections
//! must appear on the backup (`ipvsadm -Lnc` / `xvsadm -Lnc`, ESTABLISHED,
//! same real server); then the VIP moves to the backup and every transfer
//! must finish. Both directions: IPVS master → xvs backup and xvs master →
//! IPVS backup. Beside it a `--pe sip` UDP service: a call's template, with
//! its Call-ID (sync v1's PE_NAME and PE_DATA options), must appear on the
//! backup too (`-Lnc --persistent-conn`). Needs IPVS: it runs in the VM tier (`cargo xtask
//! matrix`), and elsewhere says so and passes.

use std::time::Duration;

use xvs_testbed::harness::{bin_path, setup_real_servers, slow_done, slow_download, Xvsd};
use xvs_testbed::oracle::{ipvs_available, run_in_ns};
use xvs_testbed::{dr_rs_ip, Node, Proc, Testbed, DR_RS_COUNT, VIP};

const STREAMS: usize = 10;
const SLOW_BYTES: usize = 48 * 1024;
const SLOW_MS: u64 = 15_000;
const SYNCID: &str = "9";

/// One director: how its `ipvsadm`-style commands run.
enum Side<'a> {
    Ipvs(Node),
    Xvs(&'a Xvsd),
}

impl Side<'_> {
    fn node(&self) -> Node {
        match self {
            Side::Ipvs(n) => *n,
            Side::Xvs(x) => x.node(),
        }
    }

    fn adm(&self, tb: &Testbed, args: &[&str]) -> String {
        let mut argv: Vec<String> = match self {
            Side::Ipvs(_) => vec!["ipvsadm".into()],
            Side::Xvs(x) => vec![bin_path("xvsadm"), "--socket".into(), x.sock().into()],
        };
        argv.extend(args.iter().map(|a| a.to_string()));
        let o = run_in_ns(&tb.ns(self.node()), &[], &argv, None);
        assert_eq!(o.status, 0, "{argv:?}: {}", o.stderr);
        o.stdout
    }

    fn name(&self) -> &'static str {
        match self {
            Side::Ipvs(_) => "IPVS",
            Side::Xvs(_) => "xvs",
        }
    }
}

fn service(tb: &Testbed, s: &Side) {
    let svc = format!("{VIP}:80");
    s.adm(tb, &["-A", "-t", &svc, "-s", "wlc"]);
    let sip = format!("{VIP}:5060");
    s.adm(
        tb,
        &["-A", "-u", &sip, "-s", "rr", "-p", "60", "--pe", "sip"],
    );
    for n in 1..=DR_RS_COUNT {
        s.adm(
            tb,
            &["-a", "-t", &svc, "-r", &format!("{}:80", dr_rs_ip(n)), "-g"],
        );
        s.adm(
            tb,
            &[
                "-a",
                "-u",
                &sip,
                "-r",
                &format!("{}:5060", dr_rs_ip(n)),
                "-g",
            ],
        );
    }
}

/// A SIP call through `master` (holding the VIP): four datagrams of one
/// UDP flow (IPVS syncs a UDP connection and its template at the third);
/// its template, Call-ID and all, must reach `backup`. Returns what failed.
fn sip_call_synced(tb: &Testbed, master: &Side, backup: &Side) -> Vec<String> {
    let what = format!("{} master -> {} backup", master.name(), backup.name());
    tb.take_over(master.node()).unwrap();
    let callid = format!("sync-{}@192.0.2.1", master.name());
    let msg = format!("INVITE sip:bob@example.org SIP/2.0\r\nCall-ID: {callid}\r\n");
    // The answers do not matter (a DR real server answers from its own
    // address, which the client's connected socket ignores).
    let _ = tb.exec(
        Node::Client,
        &[
            &bin_path("xvs-testsrv"),
            "udp",
            &format!("{VIP}:5060"),
            "--count",
            "4",
            "--timeout-ms",
            "200",
            "--payload",
            &msg,
        ],
    );
    let has = |s: &Side| {
        s.adm(tb, &["-Lnc", "--persistent-conn"])
            .lines()
            .any(|l| l.starts_with("UDP") && l.contains(" sip ") && l.ends_with(&callid))
    };
    if !has(master) {
        return vec![format!(
            "{what}: no sip template on the master:\n{}",
            master.adm(tb, &["-Lnc", "--persistent-conn"])
        )];
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !has(backup) {
        if std::time::Instant::now() > deadline {
            return vec![format!(
                "{what}: the call's template did not reach the backup:\n{}",
                backup.adm(tb, &["-Lnc", "--persistent-conn"])
            )];
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    println!("{what}: the sip template of {callid} synchronised");
    Vec::new()
}

fn download(tb: &Testbed) -> Proc {
    slow_download(tb, SLOW_BYTES, SLOW_MS)
}

/// Rows of `-Lnc` for the VIP: (state, client, real server).
fn synced(listing: &str) -> Vec<(String, String, String)> {
    listing
        .lines()
        .filter(|l| l.starts_with("TCP") && l.contains(&format!("{VIP}:80")))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            Some((
                w.get(2)?.to_string(),
                w.get(3)?.to_string(),
                w.get(5)?.to_string(),
            ))
        })
        .collect()
}

/// Transfers through `master` (holding the VIP), checked on `backup`'s
/// table, then the VIP moves to `backup`; returns what failed.
fn fail_over(tb: &Testbed, master: &Side, backup: &Side) -> Vec<String> {
    let what = format!("{} master -> {} backup", master.name(), backup.name());
    tb.take_over(master.node()).unwrap();
    let streams: Vec<Proc> = (0..STREAMS).map(|_| download(tb)).collect();
    let est = |rows: &[(String, String, String)]| {
        let mut v: Vec<(String, String)> = rows
            .iter()
            .filter(|r| r.0 == "ESTABLISHED")
            .map(|r| (r.1.clone(), r.2.clone()))
            .collect();
        v.sort();
        v
    };
    // IPVS sends a connection at its third packet and flushes within
    // 2 s, xvs within its master's second: wait for them (at most 15 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let (on_master, on_backup) = loop {
        let on_master = synced(&master.adm(tb, &["-Lnc"]));
        let on_backup = synced(&backup.adm(tb, &["-Lnc"]));
        let (m, b) = (est(&on_master), est(&on_backup));
        let all = m.len() == STREAMS && m.iter().all(|e| b.contains(e));
        if all || std::time::Instant::now() > deadline {
            break (on_master, on_backup);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut failed = Vec::new();
    if let Some(s) = streams.iter().find(|s| !s.is_running()) {
        failed.push(format!(
            "{what}: a transfer ended before the failover: {}",
            s.log()
        ));
    }
    // The backup may also hold older entries (an IPVS director keeps the
    // connections it stopped seeing until they time out).
    let (m, b) = (est(&on_master), est(&on_backup));
    if m.len() != STREAMS || !m.iter().all(|e| b.contains(e)) {
        failed.push(format!(
            "{what}: the master's ESTABLISHED connections are not all on the backup:\n\
             master {on_master:?}\nbackup {on_backup:?}"
        ));
    }
    tb.take_over(backup.node()).unwrap();
    let mut ok = 0;
    for s in &streams {
        s.wait_timeout(Duration::from_millis(SLOW_MS + 20_000));
        ok += usize::from(slow_done(s, SLOW_BYTES));
    }
    println!(
        "{what}: {} synchronised, {ok}/{STREAMS} transfers complete",
        est(&on_backup).len()
    );
    if ok != STREAMS {
        failed.push(format!(
            "{what}: {ok}/{STREAMS} transfers survived the failover"
        ));
    }
    failed
}

#[test]
#[ignore = "needs root and IPVS: cargo xtask matrix runs it"]
fn ipvs_and_xvs_synchronise_connections_both_ways() {
    if let Err(why) = ipvs_available() {
        eprintln!("skipped: {why}");
        return;
    }
    let tb = Testbed::dr_pair().expect("testbed");
    tb.start_http_servers(80).expect("http servers");
    setup_real_servers(&tb, &["--mode", "dr"]);
    let xvsd = Xvsd::start(&tb, Node::Director2, &["--interfaces", "eth0"]);
    let ipvs = Side::Ipvs(Node::Director);
    let xvs = Side::Xvs(&xvsd);
    service(&tb, &ipvs);
    service(&tb, &xvs);
    let daemon = |s: &Side, role: &str| {
        s.adm(
            &tb,
            &[
                "--start-daemon",
                role,
                "--mcast-interface",
                "eth0",
                "--syncid",
                SYNCID,
            ],
        );
    };
    let stop = |s: &Side, role: &str| {
        s.adm(&tb, &["--stop-daemon", role]);
    };
    let mut failed = Vec::new();

    daemon(&ipvs, "master");
    daemon(&xvs, "backup");
    failed.extend(fail_over(&tb, &ipvs, &xvs));
    failed.extend(sip_call_synced(&tb, &ipvs, &xvs));
    stop(&ipvs, "master");
    stop(&xvs, "backup");

    daemon(&xvs, "master");
    daemon(&ipvs, "backup");
    failed.extend(fail_over(&tb, &xvs, &ipvs));
    failed.extend(sip_call_synced(&tb, &xvs, &ipvs));
    stop(&xvs, "master");
    stop(&ipvs, "backup");
    let _ = tb.exec(Node::Director, &["ipvsadm", "-C"]);
    assert!(
        failed.is_empty(),
        "{}\n{}",
        failed.join("\n"),
        xvsd.report()
    );
}
