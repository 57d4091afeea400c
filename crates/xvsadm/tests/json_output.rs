//! `xvsadm --json` against a fake xvsd: every list command prints one
//! document that validates against the committed JSON Schema
//! (docs/xvsadm-json.schema.json), carries the API's figures, and is the
//! same with and without `-n`; the committed schema is what
//! `--json-schema` prints; `--json` elsewhere is refused as ipvsadm
//! refuses an option combination.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::thread;
use xvs_core::api::{ConnEntry, DestEntry, Request, Response, ServiceEntry, Table};
use xvs_core::fwmark::{MarkRule, PortRange};
use xvs_core::json::{ListBody, ListDoc, LIST_SCHEMA};
use xvs_core::model::{
    svc_flags, ConnState, Dest, FwdMethod, Protocol, Rates, Service, ServiceKey, Stats, SyncDaemon,
    SyncState, Timeouts, TunCsum, TunType,
};

/// The temporary socket directory, removed at the end of the test.
struct Fake(PathBuf);

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn fake(name: &str) -> Fake {
    let dir = std::env::temp_dir().join(format!("xvsadm-json-{}-{name}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("xvsd.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let mut w = conn.try_clone().unwrap();
            for line in BufReader::new(conn).lines() {
                let Ok(line) = line else { break };
                let req: Request = serde_json::from_str(&line).unwrap();
                let mut s = serde_json::to_string(&answer(&req)).unwrap();
                s.push('\n');
                w.write_all(s.as_bytes()).unwrap();
            }
        }
    });
    Fake(path)
}

fn stats(n: u64) -> Stats {
    Stats {
        conns: n,
        inpkts: n * 10,
        outpkts: n * 9,
        inbytes: n * 1000,
        outbytes: 1_234_567_890_123 + n,
    }
}

fn rates(n: u64) -> Rates {
    Rates {
        cps: n,
        inpps: n * 2,
        outpps: n * 3,
        inbps: n * 400,
        outbps: n * 500,
    }
}

fn dest(addr: [u8; 4], port: u16, fwd: FwdMethod, n: u32) -> DestEntry {
    let mut d = Dest::new(Ipv4Addr::from(addr), port);
    d.fwd = fwd;
    d.weight = n;
    d.u_threshold = 100 * n;
    d.l_threshold = 10 * n;
    DestEntry {
        dest: d,
        active_conns: n,
        inact_conns: n + 1,
        persist_conns: n + 2,
        stats: stats(n as u64),
        rates: rates(n as u64),
    }
}

/// A table with what the listings show differently: a persistent `sh`
/// service with a netmask and scheduler flags, a fwmark service, a UDP
/// one-packet service, NAT, DR and GUE tunnel dests, listed unsorted.
fn table() -> Table {
    let vip = Ipv4Addr::new(198, 51, 100, 10);
    let mut persistent = Service::new(ServiceKey::new(Protocol::Tcp, vip, 443), "sh");
    persistent.flags = svc_flags::PERSISTENT | svc_flags::SCHED2;
    persistent.timeout = 300;
    persistent.netmask = IpAddr::V4(Ipv4Addr::new(255, 255, 255, 0));
    let mut udp = Service::new(ServiceKey::new(Protocol::Udp, vip, 53), "rr");
    udp.flags = svc_flags::ONEPACKET;
    let mut gue = dest([203, 0, 113, 13], 443, FwdMethod::Tunnel, 3);
    gue.dest.tun_type = TunType::Gue;
    gue.dest.tun_port = 6080;
    gue.dest.tun_csum = TunCsum::Csum;
    Table {
        conn_tab_size: 4096,
        services: vec![
            ServiceEntry {
                service: persistent,
                stats: stats(7),
                rates: rates(7),
                dests: vec![gue, dest([203, 0, 113, 12], 443, FwdMethod::Route, 2)],
            },
            ServiceEntry {
                service: Service::new(ServiceKey::fwmark(1), "wlc"),
                stats: stats(5),
                rates: rates(5),
                dests: vec![dest([203, 0, 113, 11], 0, FwdMethod::Masq, 1)],
            },
            ServiceEntry {
                service: udp,
                stats: Stats::default(),
                rates: Rates::default(),
                dests: vec![],
            },
        ],
    }
}

fn conns() -> Vec<ConnEntry> {
    let c = |proto, state, cport, expires_ms, fwmark| ConnEntry {
        proto,
        caddr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        cport,
        vaddr: if fwmark != 0 {
            IpAddr::V4(Ipv4Addr::from(fwmark))
        } else {
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10))
        },
        vport: if fwmark != 0 { 0 } else { 80 },
        daddr: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 11)),
        dport: if fwmark != 0 { 0 } else { 80 },
        state,
        fwd: FwdMethod::Masq,
        expires_ms,
        fwmark,
        pe: None,
    };
    // A --pe sip template with its Call-ID.
    let mut sip = c(Protocol::Udp, ConnState::Assured, 0, 59_000, 0);
    sip.vport = 5060;
    sip.dport = 5060;
    sip.pe = Some(xvs_core::api::PeData::sip(
        b"a84b4c76e66710@pc33.atlanta.example",
    ));
    vec![
        sip,
        c(Protocol::Tcp, ConnState::None, 0, 359_999, 1),
        c(Protocol::Tcp, ConnState::Established, 40000, 899_500, 0),
        c(Protocol::Sctp, ConnState::SctpCookieSent, 40001, 2_000, 0),
        c(Protocol::Udp, ConnState::Udp, 40002, 299_999, 0),
    ]
}

fn daemons() -> Vec<SyncDaemon> {
    vec![
        SyncDaemon::new(SyncState::Backup, "lo").with_defaults(65536),
        SyncDaemon::new(SyncState::Master, "eth1").with_defaults(1500),
    ]
}

fn rules() -> Vec<MarkRule> {
    vec![MarkRule {
        mark: 1,
        proto: Protocol::Tcp,
        addr: Ipv4Addr::new(198, 51, 100, 0),
        prefix_len: 24,
        ports: vec![
            PortRange {
                first: 80,
                last: 80,
            },
            PortRange {
                first: 8000,
                last: 8080,
            },
        ],
    }]
}

fn timeouts() -> Timeouts {
    Timeouts {
        tcp: 901,
        tcp_fin: 121,
        udp: 301,
    }
}

fn answer(req: &Request) -> Response {
    match req {
        Request::List => Response::Table { table: table() },
        Request::ListConns => Response::Conns { conns: conns() },
        Request::GetTimeouts => Response::Timeouts {
            timeouts: timeouts(),
        },
        Request::ListDaemons => Response::Daemons { daemons: daemons() },
        Request::ListMarks => Response::Marks { rules: rules() },
        _ => Response::Ok,
    }
}

fn run(f: &Fake, args: &[&str]) -> (i32, String, String) {
    let mut argv = vec![
        "xvsadm".to_string(),
        "--socket".into(),
        f.0.display().to_string(),
    ];
    argv.extend(args.iter().map(|s| s.to_string()));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = xvsadm::run(&argv, None, &mut &b""[..], &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/xvsadm-json.schema.json")
}

/// The committed schema, compiled (formats checked too: `ipv4`).
fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(schema_path()).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

/// Runs `args`, checks that stdout is one valid document, returns it.
fn document(f: &Fake, v: &jsonschema::Validator, args: &[&str]) -> (Value, ListDoc) {
    let (code, out, err) = run(f, args);
    assert_eq!((code, err.as_str()), (0, ""), "{args:?}");
    assert_eq!(out.matches('\n').count(), 1, "one line: {out}");
    let value: Value = serde_json::from_str(&out).unwrap();
    let errors: Vec<String> = v.iter_errors(&value).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{args:?}: {errors:?}\n{out}");
    assert_eq!(value["schema"], LIST_SCHEMA);
    let doc: ListDoc = serde_json::from_value(value.clone()).unwrap();
    (value, doc)
}

#[test]
fn the_committed_schema_is_the_generated_one() {
    let f = fake("schema");
    let (code, out, err) = run(&f, &["--json-schema"]);
    assert_eq!((code, err.as_str()), (0, ""));
    let committed = std::fs::read_to_string(schema_path()).unwrap_or_default();
    assert!(
        committed == out,
        "docs/xvsadm-json.schema.json is not what `xvsadm --json-schema` prints; \
         regenerate it: cargo run -p xvsadm -- --json-schema > docs/xvsadm-json.schema.json"
    );
}

#[test]
fn every_list_command_prints_a_valid_document() {
    let f = fake("lists");
    let v = validator();

    let (all, doc) = document(&f, &v, &["-L", "--json"]);
    let ListBody::Services {
        ipvs_version,
        conn_tab_size,
        services,
    } = doc.body
    else {
        panic!("{all}")
    };
    assert_eq!((ipvs_version.as_str(), conn_tab_size), ("1.2.1", 4096));
    // Sorted as the text: address services by protocol, address, port,
    // fwmark services last; dests by address.
    let order: Vec<String> = services.iter().map(|s| s.service.key.to_string()).collect();
    assert_eq!(
        order,
        ["TCP 198.51.100.10:443", "UDP 198.51.100.10:53", "FWM 1"]
    );
    let p = &services[0];
    assert_eq!(p.proto_name, "TCP");
    assert!(p.persistent && !p.one_packet);
    assert_eq!(p.sched_flags, ["sh-port"]);
    assert_eq!(
        (p.service.timeout, p.service.netmask.to_string().as_str()),
        (300, "255.255.255.0")
    );
    assert_eq!(p.stats, stats(7));
    assert_eq!(p.rates, rates(7));
    let rs: Vec<_> = p
        .dests
        .iter()
        .map(|d| d.entry.dest.addr.to_string())
        .collect();
    assert_eq!(rs, ["203.0.113.12", "203.0.113.13"]);
    let gue = &p.dests[1];
    assert_eq!(gue.forward, "Tunnel");
    assert_eq!(gue.tun_info.as_deref(), Some("gue:6080:+c"));
    assert_eq!(gue.entry, dest_gue());
    assert_eq!(p.dests[0].tun_info, None);
    assert!(services[1].one_packet);
    assert_eq!(services[2].proto_name, "FWM");
    assert_eq!(all["services"][2]["service"]["key"]["fwmark"], 1);
    assert_eq!(all["services"][0]["dests"][1]["dest"]["u_threshold"], 300);
    assert_eq!(all["services"][0]["dests"][1]["persist_conns"], 5);
    assert_eq!(
        all["services"][0]["stats"]["outbytes"],
        1_234_567_890_130u64
    );

    // The modifiers and -n change nothing: every figure is always there.
    for args in [
        &["-Ln", "--json"][..],
        &["-L", "--stats", "--json"],
        &["--json", "-Ln", "--rate", "--exact"],
        &["-L", "--thresholds", "--json"],
        &["-L", "--persistent-conn", "--json"],
        &["-L", "--tun-info", "--json"],
        &["--json"],
    ] {
        assert_eq!(document(&f, &v, args).0, all, "{args:?}");
    }
    // --nosort keeps the daemon's order.
    let (unsorted, _) = document(&f, &v, &["-L", "--nosort", "--json"]);
    assert_eq!(unsorted["services"][1]["service"]["key"]["fwmark"], 1);
    assert_eq!(
        unsorted["services"][0]["dests"][0]["dest"]["addr"],
        "203.0.113.13"
    );

    // Before --socket too.
    let sock = f.0.display().to_string();
    let argv: Vec<String> = ["xvsadm", "--json", "--socket", &sock, "-L"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut out = Vec::new();
    let code = xvsadm::run(&argv, None, &mut &b""[..], &mut out, &mut Vec::new());
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), all);

    // One service.
    let (one, _) = document(&f, &v, &["-L", "-f", "1", "--json"]);
    assert_eq!(one["services"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["services"][0], all["services"][2]);

    let (c, doc) = document(&f, &v, &["-Lnc", "--json"]);
    let ListBody::Connections { connections } = doc.body else {
        panic!("{c}")
    };
    let cols: Vec<_> = connections
        .iter()
        .map(|c| (c.proto_name.as_str(), c.state_name.as_str(), c.expires_s))
        .collect();
    assert_eq!(
        cols,
        [
            ("UDP", "ASSURED", 59),
            ("IP", "NONE", 359),
            ("TCP", "ESTABLISHED", 899),
            ("SCTP", "C-SENT", 2),
            ("UDP", "UDP", 299)
        ]
    );
    let entries: Vec<ConnEntry> = connections.into_iter().map(|c| c.entry).collect();
    assert_eq!(entries, conns());
    assert_eq!(document(&f, &v, &["-L", "-c", "--json"]).0, c);

    let (t, doc) = document(&f, &v, &["-L", "--timeout", "--json"]);
    assert_eq!(
        doc.body,
        ListBody::Timeouts {
            timeouts: timeouts()
        },
        "{t}"
    );

    let (d, doc) = document(&f, &v, &["-L", "--daemon", "--json"]);
    let ListBody::Daemons { daemons: got } = doc.body else {
        panic!("{d}")
    };
    // The master first, as the text lists them.
    let mut want = daemons();
    want.reverse();
    assert_eq!(got, want);

    let (m, doc) = document(&f, &v, &["--list-marks", "--json"]);
    assert_eq!(doc.body, ListBody::Marks { rules: rules() }, "{m}");
    assert_eq!(document(&f, &v, &["--list-marks", "-n", "--json"]).0, m);
}

fn dest_gue() -> DestEntry {
    let mut gue = dest([203, 0, 113, 13], 443, FwdMethod::Tunnel, 3);
    gue.dest.tun_type = TunType::Gue;
    gue.dest.tun_port = 6080;
    gue.dest.tun_csum = TunCsum::Csum;
    gue
}

#[test]
fn the_schema_refuses_what_it_should() {
    let f = fake("refuse");
    let v = validator();
    let (good, _) = document(&f, &v, &["-L", "--json"]);
    let mut bad = good.clone();
    bad["schema"] = "xvs-list/2".into();
    assert!(!v.is_valid(&bad));
    let mut bad = good.clone();
    bad["services"][0]["service"]["key"]["addr"] = "198.51.100.300".into();
    assert!(!v.is_valid(&bad));
    let mut bad = good;
    bad["list"] = "tables".into();
    assert!(!v.is_valid(&bad));
    // Unknown fields are allowed: adding one keeps the version.
    let (mut t, _) = document(&f, &v, &["-L", "--timeout", "--json"]);
    t["added_later"] = true.into();
    assert!(v.is_valid(&t));
}

#[test]
fn json_outside_the_list_commands_is_refused() {
    let f = fake("misuse");
    for args in [
        &["-A", "-t", "198.51.100.10:80", "--json"][..],
        &["--json", "-C"],
        &["-S", "-n", "--json"],
        &["-R", "--json"],
        &["-Z", "--json"],
        &["--json", "-h"],
        &["--clear-marks", "--json"],
    ] {
        let (code, out, err) = run(&f, args);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (
                2,
                "",
                "--json only applies to the list commands (-L, --list-marks)\n"
            ),
            "{args:?}"
        );
    }
    for args in [&["--json-schema", "-L"][..], &["--json", "--json-schema"]] {
        let (code, out, err) = run(&f, args);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (2, "", "--json-schema takes no other option\n"),
            "{args:?}"
        );
    }
    // The grammar's own errors come first, with their texts and codes.
    let (code, _, err) = run(&f, &["-L", "--json", "--bogus"]);
    assert_eq!((code, err.as_str()), (255, "--bogus: unknown option\n"));
    let (code, _, err) = run(&f, &["-L", "-c", "--stats", "--json"]);
    assert_eq!(
        (code, err.as_str()),
        (2, "options conflicts in the list command\n")
    );
    // A listing's error stays text on stderr, with its exit status.
    let (code, out, err) = run(&f, &["-L", "-t", "198.51.100.99:80", "--json"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (1, "", "No such service\n")
    );
}
