//! xvsadm against a fake xvsd on a temporary unix socket.

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use xvs_core::api::{ApiError, DestEntry, ErrorKind, Request, Response, ServiceEntry, Table};
use xvs_core::model::{
    Dest, FwdMethod, Protocol, Rates, Service, ServiceKey, Stats, SyncDaemon, SyncState, Timeouts,
};

struct Fake {
    path: PathBuf,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Serves connections until the test ends, answering with `answer`.
fn fake(name: &str, answer: fn(&Request) -> Response) -> Fake {
    let dir = std::env::temp_dir().join(format!("xvsadm-test-{}-{name}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("xvsd.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let mut w = conn.try_clone().unwrap();
            for line in BufReader::new(conn).lines() {
                let Ok(line) = line else { break };
                let req: Request = serde_json::from_str(&line).unwrap();
                let resp = answer(&req);
                seen2.lock().unwrap().push(req);
                let mut s = serde_json::to_string(&resp).unwrap();
                s.push('\n');
                w.write_all(s.as_bytes()).unwrap();
            }
        }
    });
    Fake { path, seen }
}

fn key() -> ServiceKey {
    ServiceKey {
        fwmark: 0,
        proto: Protocol::Tcp,
        addr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)),
        port: 80,
    }
}

fn table() -> Table {
    let mut d = Dest::new(Ipv4Addr::new(203, 0, 113, 11), 8080);
    d.fwd = FwdMethod::Masq;
    Table {
        conn_tab_size: 4096,
        services: vec![ServiceEntry {
            service: Service::new(key(), "rr"),
            stats: Stats::default(),
            rates: Rates::default(),
            dests: vec![DestEntry {
                dest: d,
                active_conns: 1,
                inact_conns: 2,
                persist_conns: 0,
                stats: Stats::default(),
                rates: Rates::default(),
            }],
        }],
    }
}

fn answer(req: &Request) -> Response {
    match req {
        Request::List => Response::Table { table: table() },
        Request::GetTimeouts => Response::Timeouts {
            timeouts: Timeouts::default(),
        },
        Request::ListConns => Response::Conns { conns: vec![] },
        Request::DelService { .. } => Response::Error {
            error: ApiError::new(ErrorKind::NoSuchService),
        },
        Request::AddDest { .. } => Response::Error {
            error: ApiError::new(ErrorKind::NoSuchService),
        },
        Request::Sequence { requests } => Response::Sequence {
            results: requests
                .iter()
                .map(|r| match answer(r) {
                    Response::Error { error } => Some(error),
                    _ => None,
                })
                .collect(),
        },
        _ => Response::Ok,
    }
}

fn run(f: &Fake, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut argv = vec![
        "xvsadm".to_string(),
        "--socket".into(),
        f.path.display().to_string(),
    ];
    argv.extend(args.iter().map(|s| s.to_string()));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = xvsadm::run(&argv, None, &mut stdin.as_bytes(), &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn lists_and_changes() {
    let f = fake("main", answer);
    let (c, o, e) = run(&f, &["-Ln"], "");
    assert_eq!((c, e.as_str()), (0, ""));
    assert_eq!(
        o,
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  198.51.100.10:80 rr\n  -> 203.0.113.11:8080            Masq    1      1          2         \n"
    );
    let (c, o, _) = run(&f, &["-Sn"], "");
    assert_eq!(c, 0);
    assert_eq!(
        o,
        "-A -t 198.51.100.10:80 -s rr\n-a -t 198.51.100.10:80 -r 203.0.113.11:8080 -m -w 1\n"
    );
    let (c, o, _) = run(&f, &["-L", "--timeout"], "");
    assert_eq!(
        (c, o.as_str()),
        (0, "Timeout (tcp tcpfin udp): 900 120 300\n")
    );
    let (c, o, _) = run(&f, &["-Lnc"], "");
    assert_eq!(c, 0);
    assert!(o.starts_with("IPVS connection entries\npro expire state"));
    let (c, o, _) = run(&f, &["-Ln", "-t", "198.51.100.10:80"], "");
    assert_eq!(c, 0);
    assert!(o.starts_with("Prot LocalAddress:Port Scheduler Flags\n"));
    let (c, _, e) = run(&f, &["-Ln", "-t", "198.51.100.10:81"], "");
    assert_eq!((c, e.as_str()), (1, "No such service\n"));
    let (c, _, e) = run(&f, &["-A", "-t", "198.51.100.10:443", "-s", "wrr"], "");
    assert_eq!((c, e.as_str()), (0, ""));
    let (c, _, e) = run(&f, &["-D", "-t", "198.51.100.10:443"], "");
    assert_eq!((c, e.as_str()), (255, "No such service\n"));
    let (c, _, e) = run(
        &f,
        &["-a", "-t", "198.51.100.10:443", "-r", "203.0.113.12"],
        "",
    );
    assert_eq!((c, e.as_str()), (255, "Service not defined\n"));

    let seen = f.seen.lock().unwrap().clone();
    assert!(seen.contains(&Request::GetTimeouts));
    assert!(seen.contains(&Request::ListConns));
    let mut svc = Service::new(ServiceKey { port: 443, ..key() }, "wrr");
    svc.flags = 0;
    assert!(seen.contains(&Request::AddService { service: svc }));
}

#[test]
fn restore_sends_runs_of_changes_as_one_sequence() {
    let f = fake("restore", answer);
    let input =
        "-A -t 198.51.100.10:80 -s rr\n-a -t 198.51.100.10:80 -r 203.0.113.11:8080 -m -w 1\n\n";
    let (c, _, e) = run(&f, &["-R"], input);
    // The dest's service is unknown to this fake: its error, in its place.
    assert_eq!((c, e.as_str()), (255, "Service not defined\n"));
    let seen = f.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let Request::Sequence { requests } = &seen[0] else {
        panic!("{seen:?}")
    };
    assert_eq!(requests.len(), 2);
    assert!(matches!(requests[0], Request::AddService { .. }));
    assert!(matches!(requests[1], Request::AddDest { .. }));

    // A bad line stops the restore; the lines before it are sent.
    let (c, _, e) = run(
        &f,
        &["-R"],
        "-A -t 198.51.100.10:80\n-a -t 198.51.100.10:80 -w 1\n-A -t 198.51.100.11:80\n",
    );
    assert_eq!(
        (c, e.as_str()),
        (
            2,
            "You need to supply the 'real-server' option for the 'add-server' command\n"
        )
    );
    let seen = f.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(matches!(&seen[1], Request::Sequence { requests } if requests.len() == 1));
}

/// The sync daemons of the fake below, which answers as xvsd does.
static SYNC: Mutex<Vec<SyncDaemon>> = Mutex::new(Vec::new());

fn sync_answer(req: &Request) -> Response {
    let mut running = SYNC.lock().unwrap();
    let error = |kind| Response::Error {
        error: ApiError::new(kind),
    };
    match req {
        Request::StartDaemon { daemon } => {
            if daemon.mcast_ifn != "lo" {
                return Response::Error {
                    error: ApiError::with(ErrorKind::Internal, "No such device"),
                };
            }
            if running.iter().any(|d| d.state == daemon.state) {
                return error(ErrorKind::DaemonRunning);
            }
            running.push(daemon.with_defaults(65536));
            Response::Ok
        }
        Request::StopDaemon { state } => match running.iter().position(|d| d.state == *state) {
            Some(i) => {
                running.remove(i);
                Response::Ok
            }
            None => error(ErrorKind::NoDaemon),
        },
        Request::ListDaemons => Response::Daemons {
            daemons: running.clone(),
        },
        _ => {
            drop(running);
            answer(req)
        }
    }
}

#[test]
fn sync_daemons_start_list_stop() {
    let f = fake("sync", sync_answer);
    let (c, o, e) = run(&f, &["-L", "--daemon"], "");
    assert_eq!((c, o.as_str(), e.as_str()), (0, "", ""));
    let start_master = ["--start-daemon", "master", "--mcast-interface", "lo"];
    let (c, o, e) = run(&f, &start_master, "");
    assert_eq!((c, o.as_str(), e.as_str()), (0, "", ""));
    let (c, _, e) = run(&f, &start_master, "");
    assert_eq!((c, e.as_str()), (255, "Daemon has already run\n"));
    let (c, _, e) = run(
        &f,
        &[
            "--start-daemon",
            "backup",
            "--mcast-interface",
            "nosuchdev0",
        ],
        "",
    );
    assert_eq!((c, e.as_str()), (255, "No such device\n"));
    let (c, _, e) = run(
        &f,
        &[
            "--start-daemon=backup",
            "--mcast-interface=lo",
            "--syncid",
            "9",
            "--mcast-port",
            "9000",
        ],
        "",
    );
    assert_eq!((c, e.as_str()), (0, ""));
    let listing = "master sync daemon (mcast=lo, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n\
                   backup sync daemon (mcast=lo, syncid=9, maxlen=65507, group=224.0.0.81, port=9000, ttl=1)\n";
    for list in [
        &["-L", "--daemon"][..],
        &["--list", "--daemon", "-n"],
        &["-l", "--daemon"],
    ] {
        let (c, o, e) = run(&f, list, "");
        assert_eq!((c, o.as_str(), e.as_str()), (0, listing, ""), "{list:?}");
    }
    // The listings of the table know nothing of them.
    let (c, o, _) = run(&f, &["-Sn"], "");
    assert_eq!(c, 0);
    assert!(!o.contains("daemon"), "{o}");
    let (c, _, e) = run(&f, &["-L", "--daemon", "--timeout"], "");
    assert_eq!(
        (c, e.as_str()),
        (
            2,
            "The option 'daemon' conflicts with the 'timeout' option in the 'list' command\n"
        )
    );
    let (c, _, e) = run(&f, &["--stop-daemon", "master"], "");
    assert_eq!((c, e.as_str()), (0, ""));
    let (c, _, e) = run(&f, &["--stop-daemon", "master"], "");
    assert_eq!((c, e.as_str()), (255, "No daemon is running\n"));
    let (c, o, _) = run(&f, &["-L", "--daemon"], "");
    assert_eq!(
        (c, o.as_str()),
        (
            0,
            "backup sync daemon (mcast=lo, syncid=9, maxlen=65507, group=224.0.0.81, port=9000, ttl=1)\n"
        )
    );
    let (c, _, e) = run(
        &f,
        &["--start-daemon", "backup", "--mcast-group", "ff02::1"],
        "",
    );
    assert_eq!((c, e.as_str()), (255, "IPv6 is not supported by xvs\n"));

    // -R: daemon lines on their own, in their place; a refused one does
    // not stop the restore.
    let before = f.seen.lock().unwrap().len();
    let input = "-A -t 198.51.100.10:80 -s rr\n--stop-daemon backup\n--stop-daemon backup\n\
                 -L --daemon\n--start-daemon master --mcast-interface lo\n-A -t 198.51.100.11:80\n";
    let (c, o, e) = run(&f, &["-R"], input);
    assert_eq!(
        (c, o.as_str(), e.as_str()),
        (0, "", "No daemon is running\n")
    );
    let seen = f.seen.lock().unwrap()[before..].to_vec();
    assert!(matches!(&seen[0], Request::Sequence { requests } if requests.len() == 1));
    assert_eq!(
        seen[1..5],
        [
            Request::StopDaemon {
                state: SyncState::Backup
            },
            Request::StopDaemon {
                state: SyncState::Backup
            },
            Request::ListDaemons,
            Request::StartDaemon {
                daemon: SyncDaemon::new(SyncState::Master, "lo")
            },
        ]
    );
    assert!(matches!(&seen[5], Request::Sequence { requests } if requests.len() == 1));
    let (c, _, e) = run(&f, &["-R"], "--stop-daemon master\n--stop-daemon master\n");
    assert_eq!((c, e.as_str()), (255, "No daemon is running\n"));
}

fn sctp_key() -> ServiceKey {
    ServiceKey {
        fwmark: 0,
        proto: Protocol::Sctp,
        addr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)),
        port: 5060,
    }
}

/// An SCTP service with a masquerading and a direct-routing dest.
fn sctp_table() -> Table {
    let dest = |last: u8, port: u16, fwd: FwdMethod, weight: u32| {
        let mut d = Dest::new(Ipv4Addr::new(203, 0, 113, last), port);
        d.fwd = fwd;
        d.weight = weight;
        DestEntry {
            dest: d,
            active_conns: 0,
            inact_conns: 0,
            persist_conns: 0,
            stats: Stats::default(),
            rates: Rates::default(),
        }
    };
    let mut service = Service::new(sctp_key(), "wrr");
    service.flags = xvs_core::model::svc_flags::PERSISTENT;
    service.timeout = 60;
    Table {
        conn_tab_size: 4096,
        services: vec![ServiceEntry {
            service,
            stats: Stats::default(),
            rates: Rates::default(),
            dests: vec![
                dest(11, 5061, FwdMethod::Masq, 3),
                dest(12, 5060, FwdMethod::Route, 1),
            ],
        }],
    }
}

fn sctp_answer(req: &Request) -> Response {
    match req {
        Request::List => Response::Table {
            table: sctp_table(),
        },
        Request::Sequence { requests } => Response::Sequence {
            results: requests.iter().map(|_| None).collect(),
        },
        _ => Response::Ok,
    }
}

#[test]
fn sctp_save_restores_to_the_same_requests() {
    let f = fake("sctp", sctp_answer);
    let (c, saved, e) = run(&f, &["-Sn"], "");
    assert_eq!((c, e.as_str()), (0, ""));
    assert_eq!(
        saved,
        "-A --sctp-service 198.51.100.10:5060 -s wrr -p 60\n\
         -a --sctp-service 198.51.100.10:5060 -r 203.0.113.11:5061 -m -w 3\n\
         -a --sctp-service 198.51.100.10:5060 -r 203.0.113.12:5060 -g -w 1\n"
    );
    let (c, o, e) = run(&f, &["-Ln"], "");
    assert_eq!((c, e.as_str()), (0, ""));
    assert!(
        o.contains("\nSCTP 198.51.100.10:5060 wrr persistent 60\n"),
        "{o}"
    );
    let (c, _, e) = run(&f, &["-R"], &saved);
    assert_eq!((c, e.as_str()), (0, ""));
    let seen = f.seen.lock().unwrap().clone();
    let Some(Request::Sequence { requests }) = seen.last() else {
        panic!("{seen:?}")
    };
    let t = sctp_table();
    let s = &t.services[0];
    let mut want = vec![Request::AddService {
        service: s.service.clone(),
    }];
    want.extend(s.dests.iter().map(|d| Request::AddDest {
        key: sctp_key(),
        dest: d.dest.clone(),
    }));
    assert_eq!(requests, &want);
}

/// An xvsd that lists to anyone and refuses every change, as it does to a
/// peer that is not root.
fn non_root_answer(req: &Request) -> Response {
    if req.is_read_only() {
        return answer(req);
    }
    Response::Error {
        error: ApiError::with(
            ErrorKind::PermissionDenied,
            "permission denied: changing the table needs root (this peer may only list)",
        ),
    }
}

/// A user of the control group lists; a change, `-R` included, prints
/// ipvsadm's words for EPERM and fails as a refused change does.
#[test]
fn non_root_lists_but_cannot_change() {
    let f = fake("nonroot", non_root_answer);
    let (c, o, e) = run(&f, &["-Ln"], "");
    assert_eq!((c, e.as_str()), (0, ""));
    assert!(o.contains("198.51.100.10:80"), "{o}");
    for args in [
        &["-A", "-t", "198.51.100.11:80"][..],
        &["-C"][..],
        &["-Z"][..],
    ] {
        let (c, _, e) = run(&f, args, "");
        assert_eq!(
            (c, e.as_str()),
            (255, "Permission denied (you must be root)\n"),
            "{args:?}"
        );
    }
    let (c, _, e) = run(&f, &["-R"], "-A -t 198.51.100.11:80\n");
    assert_eq!(
        (c, e.as_str()),
        (255, "Permission denied (you must be root)\n")
    );
}

fn fwm_rule() -> xvs_core::fwmark::MarkRule {
    xvs_core::fwmark::MarkRule {
        mark: 1,
        proto: Protocol::Tcp,
        addr: Ipv4Addr::new(207, 175, 44, 110),
        prefix_len: 31,
        ports: vec![],
    }
}

fn fwm_answer(req: &Request) -> Response {
    match req {
        Request::List => {
            let mut d = Dest::new(Ipv4Addr::new(192, 168, 10, 1), 0);
            d.fwd = FwdMethod::Masq;
            Response::Table {
                table: Table {
                    conn_tab_size: 4096,
                    services: vec![ServiceEntry {
                        service: Service::new(ServiceKey::fwmark(1), "rr"),
                        stats: Stats::default(),
                        rates: Rates::default(),
                        dests: vec![DestEntry {
                            dest: d,
                            active_conns: 0,
                            inact_conns: 0,
                            persist_conns: 0,
                            stats: Stats::default(),
                            rates: Rates::default(),
                        }],
                    }],
                },
            }
        }
        Request::ListMarks => Response::Marks {
            rules: vec![fwm_rule()],
        },
        Request::AddMark { rule } if rule.mark == 3 => Response::Error {
            error: ApiError::with(
                ErrorKind::Invalid,
                "mark rule tcp 207.175.44.110/31:* conflicts with mark 1 given for the same addresses and port",
            ),
        },
        Request::Sequence { requests } => Response::Sequence {
            results: requests.iter().map(|_| None).collect(),
        },
        _ => Response::Ok,
    }
}

#[test]
fn fwmark_services_and_mark_rules() {
    let f = fake("fwmark", fwm_answer);
    let (c, o, e) = run(&f, &["-S", "-n"], "");
    assert_eq!((c, e.as_str()), (0, ""));
    let saved = "-A -f 1 -s rr\n\
                 -a -f 1 -r 192.168.10.1:0 -m -w 1\n\
                 --add-mark -t 207.175.44.110/31 -f 1\n";
    assert_eq!(o, saved);
    let (c, o, _) = run(&f, &["--list-marks"], "");
    assert_eq!((c, o.as_str()), (0, "FWM  1  TCP  207.175.44.110/31:*\n"));
    let (c, _, e) = run(
        &f,
        &["--add-mark", "-t", "207.175.44.110/31", "-f", "1"],
        "",
    );
    assert_eq!((c, e.as_str()), (0, ""));
    // A refused rule: the daemon's text, exit 2.
    let (c, _, e) = run(
        &f,
        &["--add-mark", "-t", "207.175.44.110/31", "-f", "3"],
        "",
    );
    assert_eq!(
        (c, e.as_str()),
        (
            2,
            "mark rule tcp 207.175.44.110/31:* conflicts with mark 1 given for the same addresses and port\n"
        )
    );
    // -R takes -S's output back as the same requests.
    f.seen.lock().unwrap().clear();
    let (c, _, e) = run(&f, &["-R"], saved);
    assert_eq!((c, e.as_str()), (0, ""));
    let seen = f.seen.lock().unwrap().clone();
    let Request::Sequence { requests } = &seen[0] else {
        panic!("{seen:?}")
    };
    assert_eq!(requests.len(), 3);
    assert!(
        matches!(&requests[0], Request::AddService { service } if service.key == ServiceKey::fwmark(1))
    );
    assert!(
        matches!(&requests[1], Request::AddDest { key, dest } if key.is_fwmark() && dest.port == 0)
    );
    assert_eq!(requests[2], Request::AddMark { rule: fwm_rule() });
}
