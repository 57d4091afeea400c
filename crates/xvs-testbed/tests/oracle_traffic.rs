//! The traffic oracle: the same scenarios — a service, its real servers,
//! sequences of new connections (TCP, UDP, SCTP associations) from many
//! client addresses, weight edits,
//! removals and re-adds — run through the kernel's IPVS (configured with
//! Debian's `ipvsadm`) and through xvs (`xvsd`, configured with
//! `xvsadm`), each on a NAT testbed of its own. Every connection must reach
//! the same real server on both, and the listings (`-Ln`: weights, active
//! and inactive connections; `-Lnc` without the expiry column) must agree
//! after every scenario; where the kernel draws at random (`twos`), the
//! distributions must be alike. fwmark services get their marks from
//! nftables on the IPVS side and from xvs's classifier on the other.
//! Needs IPVS: it runs in the VM tier (`cargo xtask matrix`), and
//! elsewhere says so and passes.

use std::collections::BTreeMap;

use xvs_testbed::harness::serve;
use xvs_testbed::harness::{bin_path, Xvsd};
use xvs_testbed::oracle::{ipvs_available, normalize, run_in_ns, Outcome};
use xvs_testbed::testsrv::sctp_available;
use xvs_testbed::{rs_ip, Node, Testbed, NAT_RS_COUNT, VIP};

/// Client addresses the connections come from, in turn.
const SOURCES: u8 = 64;

fn source_addr(i: usize) -> String {
    format!("198.51.100.{}", 64 + (i % SOURCES as usize))
}

/// The `i`th connection's source in the scenario on `vport`, port
/// included: the same on both sides, so the port-hashing schedulers (`-b
/// sh-port`, `mh-port`) and `-Lnc` compare; and never the same twice in a
/// run, because a real server still holding the previous connection in
/// TIME_WAIT would answer the new SYN with a challenge ACK, and the retried
/// SYN would be scheduled again (IPVS reschedules a connection in CLOSE).
fn source(vport: u16, i: usize) -> String {
    let base = 20000 + (vport as usize - 8000) * 100;
    assert!(i < 100, "at most 100 connections per scenario");
    format!("{}:{}", source_addr(i), base + i)
}

/// One step of a scenario.
#[derive(Debug, Clone)]
enum Step {
    /// An `ipvsadm` command (`{vip}` and `{rsN}` are filled in).
    Adm(String),
    /// `n` TCP connections (HTTP GET), one after the other, from the next
    /// `n` client addresses.
    Tcp(usize),
    /// `n` UDP datagrams, likewise.
    Udp(usize),
    /// `n` SCTP associations (one message each, shut down gracefully),
    /// likewise.
    Sctp(usize),
    /// `n` SIP requests (one UDP datagram each), likewise, whose Call-IDs
    /// cycle through `calls` calls (a `--pe sip` service keeps each call
    /// on one real server).
    Sip(usize, usize),
    /// Let this many seconds pass (connections expire).
    Sleep(u64),
    /// Mark the packets of this protocol (`tcp`, `udp`) to the scenario's
    /// VIP:port with mark `{mark}` (the port): an nftables `meta mark
    /// set` rule in PREROUTING for IPVS, `xvsadm --add-mark` for xvs.
    Mark(&'static str),
}

struct Scenario {
    name: String,
    /// The kernel draws at random: compare distributions only.
    random: bool,
    steps: Vec<Step>,
    /// The real servers also serve (HTTP, UDP echo) on the scenario's
    /// own port: a persistent fwmark service forwards to the port the
    /// client asked for.
    serve_vport: bool,
}

fn adm(s: &str) -> Step {
    Step::Adm(s.to_string())
}

/// The scheduler scenario: three weighted real servers, then an edit, a
/// removal and the same server added back (IPVS brings it back from its
/// trash, with its connections and counters).
fn sched_scenario(sched: &str, flags: &str) -> Scenario {
    let s = if flags.is_empty() {
        format!("-A -t {{vip}} -s {sched}")
    } else {
        format!("-A -t {{vip}} -s {sched} -b {flags}")
    };
    Scenario {
        name: format!(
            "{sched}{}{flags}",
            if flags.is_empty() { "" } else { " -b " }
        ),
        random: sched == "twos",
        serve_vport: false,
        steps: vec![
            adm(&s),
            adm("-a -t {vip} -r {rs1} -m -w 3"),
            adm("-a -t {vip} -r {rs2} -m -w 2"),
            adm("-a -t {vip} -r {rs3} -m -w 1"),
            Step::Tcp(18),
            adm("-e -t {vip} -r {rs2} -m -w 4"),
            Step::Tcp(12),
            adm("-d -t {vip} -r {rs3}"),
            Step::Tcp(12),
            adm("-a -t {vip} -r {rs3} -m -w 1"),
            Step::Tcp(12),
        ],
    }
}

fn scenarios() -> Vec<Scenario> {
    let mut v: Vec<Scenario> = xvs_core_schedulers()
        .into_iter()
        .map(|s| sched_scenario(s, ""))
        .collect();
    for (s, f) in [
        ("sh", "sh-fallback"),
        ("sh", "sh-port"),
        ("mh", "mh-fallback"),
        ("mh", "mh-port"),
    ] {
        v.push(sched_scenario(s, f));
    }
    v.push(Scenario {
        name: "persistence -M".into(),
        random: false,
        serve_vport: false,
        steps: vec![
            adm("-A -t {vip} -s rr -p 300 -M 255.255.255.248"),
            adm("-a -t {vip} -r {rs1} -m"),
            adm("-a -t {vip} -r {rs2} -m"),
            adm("-a -t {vip} -r {rs3} -m"),
            Step::Tcp(24),
            adm("-e -t {vip} -r {rs1} -m -w 0"),
            Step::Tcp(16),
        ],
    });
    v.push(Scenario {
        name: "udp persistence".into(),
        random: false,
        serve_vport: false,
        steps: vec![
            adm("-A -u {vip} -s rr -p 60"),
            adm("-a -u {vip} -r {rs1} -m"),
            adm("-a -u {vip} -r {rs2} -m"),
            Step::Udp(12),
        ],
    });
    v.push(Scenario {
        name: "thresholds -x/-y".into(),
        random: false,
        serve_vport: false,
        steps: vec![
            adm("-A -t {vip} -s wlc"),
            adm("-a -t {vip} -r {rs1} -m -w 5 -x 4 -y 2"),
            adm("-a -t {vip} -r {rs2} -m -w 1"),
            Step::Tcp(20),
            adm("-e -t {vip} -r {rs1} -m -w 5 -x 0"),
            Step::Tcp(8),
        ],
    });
    for sched in ["rr", "sh", "wlc"] {
        v.push(Scenario {
            name: format!("udp {sched}"),
            random: false,
            serve_vport: false,
            steps: vec![
                adm(&format!("-A -u {{vip}} -s {sched}")),
                adm("-a -u {vip} -r {rs1} -m -w 2"),
                adm("-a -u {vip} -r {rs2} -m -w 1"),
                adm("-a -u {vip} -r {rs3} -m -w 1"),
                Step::Udp(20),
            ],
        });
    }
    // SCTP: NAT with the port changed (vport 80xx → 80, the CRC32c
    // updated), IPVS's SCTP states in -Lnc (every association ends
    // CLOSED), persistence templates of SCTP. Where the kernel has it.
    if sctp_available().is_ok() {
        v.push(Scenario {
            name: "sctp wrr".into(),
            random: false,
            serve_vport: false,
            steps: vec![
                adm("-A --sctp-service {vip} -s wrr"),
                adm("--add-server --sctp-service {vip} -r {rs1} -m -w 3"),
                adm("--add-server --sctp-service {vip} -r {rs2} -m -w 1"),
                Step::Sctp(8),
                adm("-e --sctp-service {vip} -r {rs2} -m -w 3"),
                Step::Sctp(6),
            ],
        });
        v.push(Scenario {
            name: "sctp persistence".into(),
            random: false,
            serve_vport: false,
            steps: vec![
                adm("-A --sctp-service {vip} -s rr -p 120 -M 255.255.255.252"),
                adm("-a --sctp-service {vip} -r {rs1} -m"),
                adm("-a --sctp-service {vip} -r {rs2} -m"),
                adm("-a --sctp-service {vip} -r {rs3} -m"),
                Step::Sctp(12),
            ],
        });
    }
    // fwmark services, the mark given by nftables for IPVS and by xvs's
    // classifier: a non-persistent one uses the dest's port; a persistent
    // one keeps the client's port and one template (`IP`, the mark as
    // virtual address) for TCP and UDP alike.
    v.push(Scenario {
        name: "fwmark wrr".into(),
        random: false,
        serve_vport: false,
        steps: vec![
            Step::Mark("tcp"),
            adm("-A -f {mark} -s wrr"),
            adm("-a -f {mark} -r {rs1} -m -w 2"),
            adm("-a -f {mark} -r {rs2} -m -w 1"),
            Step::Tcp(12),
            adm("-e -f {mark} -r {rs2} -m -w 3"),
            Step::Tcp(8),
        ],
    });
    v.push(Scenario {
        name: "fwmark persistence tcp+udp".into(),
        random: false,
        serve_vport: true,
        steps: vec![
            Step::Mark("tcp"),
            Step::Mark("udp"),
            adm("-A -f {mark} -s rr -p 300 -M 255.255.255.248"),
            adm("-a -f {mark} -r {rs1} -m"),
            adm("-a -f {mark} -r {rs2} -m"),
            adm("-a -f {mark} -r {rs3} -m"),
            Step::Tcp(16),
            Step::Udp(8),
        ],
    });
    // --pe sip: the template is keyed by client network and Call-ID, so
    // four calls from one /24 take turns (rr) and each keeps its server;
    // a datagram without a Call-ID is dropped by both.
    v.push(Scenario {
        name: "sip --pe sip".into(),
        random: false,
        serve_vport: false,
        steps: vec![
            adm("-A -u {vip} -s rr -p 60 -M 255.255.255.0 --pe sip"),
            adm("-a -u {vip} -r {rs1} -m"),
            adm("-a -u {vip} -r {rs2} -m"),
            adm("-a -u {vip} -r {rs3} -m"),
            Step::Sip(12, 4),
            Step::Udp(2),
        ],
    });
    // Last, as --set is global: UDP entries expire after the UDP timeout,
    // the TCP ones are still there (TIME_WAIT is 120 s whatever --set says).
    v.push(Scenario {
        name: "expiry --set".into(),
        random: false,
        serve_vport: false,
        steps: vec![
            adm("--set 30 20 3"),
            adm("-A -u {vip} -s wlc"),
            adm("-a -u {vip} -r {rs1} -m"),
            adm("-a -u {vip} -r {rs2} -m"),
            Step::Udp(6),
            Step::Sleep(8),
            Step::Udp(4),
        ],
    });
    v
}

/// Every scheduler IPVS has (`xvs_core::sched::SCHEDULERS`, by name: this
/// crate does not depend on xvs-core).
fn xvs_core_schedulers() -> Vec<&'static str> {
    vec![
        "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
        "twos",
    ]
}

/// What one side made of a scenario.
#[derive(Debug, Default, PartialEq)]
struct Transcript {
    /// The server that answered each connection, in order.
    picks: Vec<String>,
    /// `-Ln` at the end.
    list: String,
    /// `-Lnc` at the end, without the expiry column, sorted.
    conns: Vec<String>,
    /// The expiry column of `conns`, in seconds, in the same order.
    expiry: Vec<u64>,
    /// How long the scenario took, in seconds: the slack expiries are
    /// compared with.
    took: u64,
    /// Commands that failed (with their output).
    failed: Vec<String>,
}

/// How a side runs its `ipvsadm` commands.
trait Side {
    fn adm(&self, args: &[String]) -> Outcome;
    /// Gives `proto` packets to VIP:`vport` the mark `vport`.
    fn mark(&self, proto: &str, vport: u16) -> Outcome;
}

struct Ipvs {
    ns: String,
}

impl Side for Ipvs {
    fn adm(&self, args: &[String]) -> Outcome {
        let mut argv = vec!["ipvsadm".to_string()];
        argv.extend(args.iter().cloned());
        run_in_ns(&self.ns, &[], &argv, None)
    }
    fn mark(&self, proto: &str, vport: u16) -> Outcome {
        // Before IPVS's hooks (LOCAL_IN), as the man page's mangle rules.
        let nft = |cmd: &str| {
            let argv: Vec<String> = ["nft", cmd].iter().map(|s| s.to_string()).collect();
            run_in_ns(&self.ns, &[], &argv, None)
        };
        let steps = [
            "add table ip xvs_oracle".to_string(),
            "add chain ip xvs_oracle pre { type filter hook prerouting priority -150 ; }".into(),
            format!("add rule ip xvs_oracle pre ip daddr {VIP} {proto} dport {vport} meta mark set {vport}"),
        ];
        for s in &steps {
            let o = nft(s);
            if o.status != 0 {
                return o;
            }
        }
        nft("list table ip xvs_oracle")
    }
}

struct Xvs {
    ns: String,
    sock: String,
}

impl Side for Xvs {
    fn adm(&self, args: &[String]) -> Outcome {
        let mut argv = vec![bin_path("xvsadm"), "--socket".into(), self.sock.clone()];
        argv.extend(args.iter().cloned());
        run_in_ns(&self.ns, &[], &argv, None)
    }
    fn mark(&self, proto: &str, vport: u16) -> Outcome {
        let opt = if proto == "udp" { "-u" } else { "-t" };
        self.adm(&fill(
            &format!("--add-mark {opt} {{vip}} -f {{mark}}"),
            vport,
        ))
    }
}

fn fill(cmd: &str, vport: u16) -> Vec<String> {
    let mut s = cmd
        .replace("{vip}", &format!("{VIP}:{vport}"))
        .replace("{mark}", &vport.to_string());
    for n in 1..=NAT_RS_COUNT {
        s = s.replace(&format!("{{rs{n}}}"), &format!("{}:80", rs_ip(n)));
    }
    s.split_whitespace().map(str::to_string).collect()
}

/// Runs one scenario on `side` (its service on `VIP:vport`: scenarios
/// leave their services in place, and each is listed alone).
fn run(tb: &Testbed, side: &dyn Side, sc: &Scenario, vport: u16) -> Transcript {
    let mut t = Transcript::default();
    let start = std::time::Instant::now();
    let mut next = 0usize;
    for step in &sc.steps {
        match step {
            Step::Sleep(secs) => std::thread::sleep(std::time::Duration::from_secs(*secs)),
            Step::Mark(proto) => {
                let o = side.mark(proto, vport);
                if o.status != 0 {
                    t.failed.push(format!(
                        "mark {proto}: exit {}: {}",
                        o.status,
                        o.stderr.trim()
                    ));
                }
            }
            Step::Adm(cmd) => {
                let o = side.adm(&fill(cmd, vport));
                if o.status != 0 {
                    t.failed
                        .push(format!("{cmd}: exit {}: {}", o.status, o.stderr.trim()));
                }
            }
            Step::Sip(n, calls) => {
                for i in next..next + n {
                    let msg = format!(
                        "INVITE sip:bob@example.org SIP/2.0\r\nCall-ID: call-{}@192.0.2.1\r\n",
                        i % calls
                    );
                    let src = source(vport, i);
                    let target = format!("{VIP}:{vport}");
                    let out = testsrv(
                        tb,
                        &[
                            "udp",
                            &target,
                            "--count",
                            "1",
                            "--source",
                            &src,
                            "--timeout-ms",
                            "2000",
                            "--payload",
                            &msg,
                        ],
                    );
                    t.picks.extend(
                        out.lines()
                            .map(|l| l.split(':').next().unwrap_or(l).to_string()),
                    );
                }
                next += n;
            }
            Step::Tcp(n) | Step::Udp(n) | Step::Sctp(n) => {
                let sources: Vec<String> = (next..next + n).map(|i| source(vport, i)).collect();
                next += n;
                let count = n.to_string();
                let srcs = sources.join(",");
                // HTTP GETs for TCP, echo datagrams for UDP: same options.
                let (verb, target) = match step {
                    Step::Tcp(_) => ("get", format!("http://{VIP}:{vport}/")),
                    Step::Sctp(_) => ("sctp-get", format!("{VIP}:{vport}")),
                    _ => ("udp", format!("{VIP}:{vport}")),
                };
                let mut args = vec![
                    verb,
                    &target,
                    "--count",
                    &count,
                    "--source",
                    &srcs,
                    "--timeout-ms",
                    "2000",
                ];
                // Every SCTP association is new already.
                if !matches!(step, Step::Sctp(_)) {
                    args.push("--new-conn");
                }
                let out = testsrv(tb, &args);
                // An association that failed on both sides would compare
                // equal: the SCTP scenarios must reach a server every time.
                if matches!(step, Step::Sctp(_)) {
                    t.failed.extend(
                        out.lines()
                            .filter(|l| l.starts_with("ERR"))
                            .map(|l| format!("sctp-get: {l}")),
                    );
                }
                t.picks.extend(out.lines().map(|l| {
                    // "rs2" (HTTP) or "rs2: ping 3" (UDP echo); errors kept.
                    l.split(':').next().unwrap_or(l).to_string()
                }));
            }
        }
    }
    // Let the last connections finish closing before they are listed: a
    // closing state (the last FIN or ACK still on its way; under emulation
    // that can take longer than it ever does on the host) is waited out,
    // for at most 5 s.
    let vip_col = format!("{VIP}:{vport}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let listing = side.adm(&fill("-L -n -c", vport)).stdout;
        let closing = listing.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(4) == Some(&vip_col.as_str())
                && matches!(
                    f.get(2).copied(),
                    Some(
                        "SYN_RECV"
                            | "FIN_WAIT"
                            | "CLOSE_WAIT"
                            | "LAST_ACK"
                            | "INIT1"
                            | "INIT"
                            | "C-SENT"
                            | "C-REPLIED"
                            | "C-WAIT"
                            | "COOKIE"
                            | "C-ECHOED"
                            | "S-SENT"
                            | "S-RECEIVED"
                            | "S-ACK-SENT"
                    )
                )
        });
        if !closing || std::time::Instant::now() > deadline {
            break;
        }
    }
    let fwmark = sc.steps.iter().any(|s| matches!(s, Step::Mark(_)));
    let proto = if fwmark {
        "-f"
    } else if sc
        .steps
        .iter()
        .any(|s| matches!(s, Step::Udp(_) | Step::Sip(..)))
    {
        "-u"
    } else if sc.steps.iter().any(|s| matches!(s, Step::Sctp(_))) {
        "--sctp-service"
    } else {
        "-t"
    };
    t.list = normalize(
        &side
            .adm(&fill(
                &format!("-L -n {proto} {}", if fwmark { "{mark}" } else { "{vip}" }),
                vport,
            ))
            .stdout,
    );
    let vip = format!("{VIP}:{vport}");
    // A fwmark template's virtual column: the mark as an address.
    let mark_vip = format!("{}:0", std::net::Ipv4Addr::from(u32::from(vport)));
    // With the engine's columns: a --pe sip template's Call-ID compares.
    let mut conns: Vec<(String, u64)> = side
        .adm(&fill("-L -n -c --persistent-conn", vport))
        .stdout
        .lines()
        .skip(2)
        .filter(|l| {
            let v = l.split_whitespace().nth(4);
            v == Some(vip.as_str()) || (fwmark && v == Some(mark_vip.as_str()))
        })
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // pro expire state source virtual destination: expire apart
            let rest = f
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 1)
                .map(|(_, w)| *w)
                .collect::<Vec<_>>()
                .join(" ");
            (rest, f.get(1).map_or(u64::MAX, |e| seconds(e)))
        })
        .collect();
    conns.sort();
    (t.conns, t.expiry) = conns.into_iter().unzip();
    t.took = start.elapsed().as_secs() + 1;
    t
}

/// `-Lnc`'s expiry, `mm:ss` → seconds (`u64::MAX` when unreadable).
fn seconds(e: &str) -> u64 {
    let mut it = e.split(':').map(|x| x.parse::<u64>().ok());
    match (it.next(), it.next()) {
        (Some(Some(m)), Some(Some(s))) => m * 60 + s,
        _ => u64::MAX,
    }
}

fn testsrv(tb: &Testbed, args: &[&str]) -> String {
    let bin = bin_path("xvs-testsrv");
    let mut argv = vec![bin.as_str()];
    argv.extend_from_slice(args);
    let out = tb.exec(Node::Client, &argv).expect("xvs-testsrv");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A NAT testbed whose client has [`SOURCES`] more addresses, and its
/// servers (HTTP, UDP echo and, where the kernel has it, SCTP on port
/// 80; the SCTP one bound to the server's own address, so that its
/// INIT-ACK offers no other path around the director).
fn bed(extra_ports: &[u16]) -> (Testbed, Vec<xvs_testbed::Proc>) {
    let tb = Testbed::nat().expect("NAT testbed");
    for i in 0..SOURCES as usize {
        tb.exec_ok(
            Node::Client,
            &[
                "ip",
                "addr",
                "add",
                &format!("{}/24", source_addr(i)),
                "dev",
                "eth0",
            ],
        )
        .unwrap();
    }
    let mut procs = tb.start_http_servers(80).expect("HTTP servers");
    procs.extend(tb.start_udp_echo_servers(80).expect("UDP servers"));
    for &p in extra_ports {
        procs.extend(tb.start_http_servers(p).expect("HTTP servers"));
        procs.extend(tb.start_udp_echo_servers(p).expect("UDP servers"));
    }
    if sctp_available().is_ok() {
        for n in 1..=NAT_RS_COUNT {
            let listen = format!("{}:80", rs_ip(n));
            procs.push(serve(&tb, Node::Rs(n), "sctp", &listen, &format!("rs{n}")));
        }
    }
    (tb, procs)
}

/// Per real server, how many picks it got.
fn tally(picks: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for p in picks {
        *m.entry(p.clone()).or_insert(0) += 1;
    }
    m
}

/// IPVS's transcripts go to `XVS_ORACLE_RECORD=FILE` (one JSON object per
/// scenario) when it is set; `XVS_ORACLE_REPLAY=FILE` then stands in for
/// IPVS on a machine without it (a developer's loop: the VM records once,
/// the host replays). Sources and ports are fixed, so the transcripts are.
fn record(scenarios: &[Scenario], want: &[Transcript]) {
    let Ok(path) = std::env::var("XVS_ORACLE_RECORD") else {
        return;
    };
    let mut text = String::new();
    for (sc, t) in scenarios.iter().zip(want) {
        let v = serde_json::json!({
            "scenario": sc.name, "picks": t.picks, "list": t.list, "conns": t.conns,
            "expiry": t.expiry, "took": t.took, "failed": t.failed,
        });
        text += &format!("{v}\n");
    }
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{path}: {e}"));
}

fn replayed(path: &str, scenarios: &[Scenario]) -> Vec<Transcript> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut by_name = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let strings = |k: &str| -> Vec<String> {
            v[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let t = Transcript {
            picks: strings("picks"),
            list: v["list"].as_str().unwrap_or_default().to_string(),
            conns: strings("conns"),
            expiry: v["expiry"]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_u64().unwrap_or(u64::MAX)).collect())
                .unwrap_or_default(),
            took: v["took"].as_u64().unwrap_or(0),
            failed: strings("failed"),
        };
        by_name.insert(v["scenario"].as_str().unwrap_or_default().to_string(), t);
    }
    scenarios
        .iter()
        .map(|sc| {
            by_name
                .remove(&sc.name)
                .unwrap_or_else(|| panic!("{path}: no recording of scenario {:?}", sc.name))
        })
        .collect()
}

#[test]
#[ignore = "needs root and IPVS: cargo xtask matrix runs it in the VM"]
fn ipvs_and_xvs_send_the_same_connections_to_the_same_servers() {
    let scenarios = scenarios();
    let extra: Vec<u16> = scenarios
        .iter()
        .enumerate()
        .filter(|(_, sc)| sc.serve_vport)
        .map(|(i, _)| 8000 + i as u16)
        .collect();
    let want = match std::env::var("XVS_ORACLE_REPLAY") {
        Ok(path) => replayed(&path, &scenarios),
        Err(_) => {
            if let Err(why) = ipvs_available() {
                eprintln!("skipped: {why}");
                return;
            }
            // IPVS first, on a testbed without xvsd.
            let (tb, _srv) = bed(&extra);
            let ipvs = Ipvs {
                ns: tb.ns(Node::Director),
            };
            let want: Vec<Transcript> = scenarios
                .iter()
                .enumerate()
                .map(|(i, sc)| run(&tb, &ipvs, sc, 8000 + i as u16))
                .collect();
            record(&scenarios, &want);
            want
        }
    };

    let (tb, _srv) = bed(&extra);
    let xvsd = Xvsd::start(&tb, Node::Director, &["--interfaces", "eth0,eth1"]);
    let xvs = Xvs {
        ns: tb.ns(Node::Director),
        sock: xvsd.sock().to_string(),
    };
    let mut diffs = Vec::new();
    for (i, (sc, w)) in scenarios.iter().zip(&want).enumerate() {
        let got = run(&tb, &xvs, sc, 8000 + i as u16);
        assert!(
            w.failed.is_empty(),
            "{}: IPVS refused {:?}",
            sc.name,
            w.failed
        );
        if !got.failed.is_empty() {
            diffs.push(format!("{}: xvs refused {:?}", sc.name, got.failed));
            continue;
        }
        if sc.random {
            let (a, b) = (tally(&w.picks), tally(&got.picks));
            let total = w.picks.len();
            let close = a.keys().chain(b.keys()).all(|k| {
                let (x, y) = (
                    a.get(k).copied().unwrap_or(0),
                    b.get(k).copied().unwrap_or(0),
                );
                x.abs_diff(y) <= (total * 35 / 100).max(8)
            });
            if !close || a.keys().ne(b.keys()) {
                diffs.push(format!("{}: distributions IPVS {a:?} xvs {b:?}", sc.name));
            }
            continue;
        }
        if got.picks != w.picks {
            diffs.push(format!(
                "{}: picks differ\n  IPVS {:?}\n  xvs  {:?}",
                sc.name, w.picks, got.picks
            ));
        }
        if got.list != w.list {
            diffs.push(format!(
                "{}: -Ln differs\n--- IPVS\n{}--- xvs\n{}",
                sc.name, w.list, got.list
            ));
        }
        let slack = w.took.max(got.took) + 3;
        if got.conns == w.conns {
            for ((c, a), b) in w.conns.iter().zip(&w.expiry).zip(&got.expiry) {
                if a.abs_diff(*b) > slack {
                    diffs.push(format!(
                        "{}: expiry of {c}: IPVS {a} s, xvs {b} s (slack {slack} s)",
                        sc.name
                    ));
                }
            }
        }
        if got.conns != w.conns {
            diffs.push(format!(
                "{}: -Lnc differs\n--- IPVS\n{}\n--- xvs\n{}",
                sc.name,
                w.conns.join("\n"),
                got.conns.join("\n")
            ));
        }
    }
    println!("{} scenarios, {} differences", scenarios.len(), diffs.len());
    assert!(diffs.is_empty(), "{}", diffs.join("\n\n"));
}
