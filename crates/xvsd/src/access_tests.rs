//! Who may do what: the classification of request lines, the refusal,
//! and a real control socket served to `nobody` (root only: the test
//! drops a child process to uid/gid 65534).

use super::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, Ordering};

use xvs_core::api::Response;
use xvs_core::model::{Protocol, Service, ServiceKey};

use crate::daemon::Daemon;
use crate::testing::{Mem, LIMITS};

const ROOT: Peer = Peer {
    uid: 0,
    gid: 0,
    pid: 1,
};
const NOBODY: Peer = Peer {
    uid: 65534,
    gid: 65534,
    pid: 2,
};

fn key() -> ServiceKey {
    ServiceKey {
        fwmark: 0,
        proto: Protocol::Tcp,
        addr: "10.0.0.1".parse().unwrap(),
        port: 80,
    }
}

fn line(r: &Request) -> Vec<u8> {
    serde_json::to_vec(r).unwrap()
}

#[test]
fn listings_read_changes_change() {
    for r in [
        Request::List,
        Request::ListConns,
        Request::GetTimeouts,
        Request::Info,
        Request::ListDaemons,
    ] {
        assert_eq!(classify(&line(&r)), LineKind::Read, "{r:?}");
    }
    let add = Request::AddService {
        service: Service::new(key(), "rr"),
    };
    for r in [
        add.clone(),
        Request::Clear,
        Request::Zero { key: None },
        Request::Batch {
            requests: Vec::new(),
        },
        Request::Sequence {
            requests: vec![add],
        },
        Request::DelService { key: key() },
    ] {
        assert_eq!(classify(&line(&r)), LineKind::Change, "{r:?}");
    }
    assert_eq!(classify(br#"{"op":"health"}"#), LineKind::Read);
    assert_eq!(classify(br#"{"op":"reload"}"#), LineKind::Change);
    assert_eq!(classify(br#"{"op":"nonsense"}"#), LineKind::Change);
    assert_eq!(classify(br#"{"op":"list","junk":"#), LineKind::Malformed);
    assert_eq!(classify(br#"{"no_op":1}"#), LineKind::Malformed);
    assert_eq!(classify(b"not json"), LineKind::Malformed);
}

#[test]
fn only_root_changes() {
    let clear = line(&Request::Clear);
    let list = line(&Request::List);
    assert_eq!(refusal(&clear, Some(&ROOT)), None);
    assert_eq!(refusal(&list, Some(&NOBODY)), None);
    assert_eq!(refusal(&list, None), None);
    assert_eq!(refusal(b"garbage", Some(&NOBODY)), None);
    for peer in [Some(&NOBODY), None] {
        let e = refusal(&clear, peer).expect("refused");
        assert_eq!(e.kind, ErrorKind::PermissionDenied);
        assert!(e.message.contains("needs root"), "{}", e.message);
    }
    assert!(refusal(br#"{"op":"reload"}"#, Some(&NOBODY)).is_some());
}

/// A refused change never reaches the daemon: the table is as it was.
#[test]
fn refused_change_changes_nothing() {
    let mut d = Daemon::new(Mem::default(), LIMITS, None).unwrap();
    let add = line(&Request::AddService {
        service: Service::new(key(), "rr"),
    });
    let got = crate::server::answer_checked(&mut d, &add, Some(&NOBODY));
    let r: Response = serde_json::from_slice(&got).unwrap();
    assert!(
        matches!(&r, Response::Error { error } if error.kind == ErrorKind::PermissionDenied),
        "{r:?}"
    );
    assert!(crate::testing::list(&mut d).services.is_empty());
    let got = crate::server::answer_checked(&mut d, &add, Some(&ROOT));
    assert_eq!(
        serde_json::from_slice::<Response>(&got).unwrap(),
        Response::Ok
    );
}

/// The env var that makes [`peer_child`] the child of [`real_socket`].
const CHILD_ENV: &str = "XVS_ACCESS_TEST_SOCKET";

/// Run by [`real_socket`] as `nobody`: connects to the socket in
/// `$XVS_ACCESS_TEST_SOCKET`, sends the lines of `$XVS_ACCESS_TEST_LINES`
/// and prints each answer as `ANSWER <json>` (or `CONNECT <error>`).
#[test]
#[ignore = "the child process of real_socket"]
fn peer_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let lines = std::env::var("XVS_ACCESS_TEST_LINES").unwrap_or_default();
    let s = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e) => {
            println!("CONNECT {:?}", e.kind());
            return;
        }
    };
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    for l in lines.lines() {
        w.write_all(format!("{l}\n").as_bytes()).unwrap();
        let mut a = String::new();
        r.read_line(&mut a).unwrap();
        println!("ANSWER {}", a.trim_end());
    }
}

/// Runs [`peer_child`] as uid/gid 65534 against `sock`; its output lines.
fn as_nobody(sock: &Path, lines: &[Request]) -> Vec<String> {
    let text: Vec<String> = lines
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "access::tests::peer_child", "--ignored"])
        .args(["--nocapture", "--test-threads=1", "-q"])
        .env(CHILD_ENV, sock)
        .env("XVS_ACCESS_TEST_LINES", text.join("\n"))
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("ANSWER ") || l.starts_with("CONNECT "))
        .map(String::from)
        .collect()
}

/// A served control socket: with `--control-group nogroup`, `nobody`
/// lists but may not change; without it, `nobody` cannot even connect.
/// Root changes either way.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn real_socket() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "needs root");
    let dir = std::env::temp_dir().join(format!("xvsd-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.join("xvsd.sock");
    let listener = crate::server::bind(&sock).unwrap();
    let stop = AtomicBool::new(false);
    let add = Request::AddService {
        service: Service::new(key(), "rr"),
    };
    std::thread::scope(|s| {
        // The daemon is not Send: it is made on the thread that serves.
        s.spawn(|| {
            let mut d = Daemon::new(Mem::default(), LIMITS, None).unwrap();
            crate::server::run(&mut d, &listener, &stop).unwrap();
        });
        restrict(&sock, Some(group_id("nogroup").unwrap())).unwrap();
        let got = as_nobody(&sock, &[Request::List, add.clone()]);
        assert_eq!(got.len(), 2, "{got:?}");
        let list: Response = serde_json::from_str(&got[0]["ANSWER ".len()..]).unwrap();
        assert!(matches!(list, Response::Table { .. }), "{list:?}");
        let change: Response = serde_json::from_str(&got[1]["ANSWER ".len()..]).unwrap();
        assert!(
            matches!(&change, Response::Error { error } if error.kind == ErrorKind::PermissionDenied),
            "{change:?}"
        );
        // Root (this process) changes the table over the same socket.
        let mut c = UnixStream::connect(&sock).unwrap();
        c.write_all(format!("{}\n", serde_json::to_string(&add).unwrap()).as_bytes())
            .unwrap();
        let mut a = String::new();
        BufReader::new(&c).read_line(&mut a).unwrap();
        assert_eq!(serde_json::from_str::<Response>(&a).unwrap(), Response::Ok);
        // Without the group the socket is root's alone.
        restrict(&sock, None).unwrap();
        let got = as_nobody(&sock, &[Request::List]);
        assert_eq!(got, vec!["CONNECT PermissionDenied".to_string()]);
        stop.store(true, Ordering::SeqCst);
    });
    let _ = std::fs::remove_dir_all(&dir);
}
