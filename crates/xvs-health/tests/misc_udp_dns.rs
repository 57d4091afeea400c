//! MISC_CHECK and notify scripts with real processes; UDP_CHECK and
//! DNS_CHECK against servers on 127.0.0.1.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{alpha, fast, next, rs_id};
use tokio::net::UdpSocket;
use xvs_health::config::{CheckKind, DnsCheck, DnsType, HexPattern, MiscCheck, UdpCheck};
use xvs_health::script::{spawn_notify, ScriptStatus};
use xvs_health::{HealthEngine, RsSpec};

/// A file path in a private temporary directory, removed when the test's
/// `Tmp` guard drops.
struct Tmp(PathBuf);

impl Tmp {
    fn new() -> Tmp {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xvs-health-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Tmp(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A MISC_CHECK of `path` with a 10 s `misc_timeout`: `fast`'s 100 ms
/// delay_loop, the default timeout, is too short for a `/bin/sh` start on
/// a loaded machine, and these tests are not about the timeout (the one
/// that is sets its own).
fn misc(path: &str) -> MiscCheck {
    MiscCheck {
        path: path.to_string(),
        timeout: Some(Duration::from_secs(10)),
        ..MiscCheck::default()
    }
}

fn any_rs(n: u16) -> xvs_health::RsId {
    rs_id(SocketAddr::from(([127, 0, 0, 1], 20000 + n)))
}

#[tokio::test]
async fn misc_exit_codes() {
    let (engine, mut rx) = HealthEngine::new();
    engine
        .set_rs(RsSpec {
            id: any_rs(1),
            checkers: vec![alpha(fast(CheckKind::Misc(misc("/bin/sh -c 'exit 0'"))))],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert_eq!((t.rs, t.up, t.weight), (any_rs(1), true, None));

    engine
        .set_rs(RsSpec {
            id: any_rs(2),
            checkers: vec![fast(CheckKind::Misc(misc("/bin/sh -c \"exit 1\"")))],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert_eq!((t.rs, t.up), (any_rs(2), false));
    assert!(t.reason.contains("exited with status 1"), "{}", t.reason);

    // Without misc_dynamic, 7 is just a failure.
    engine
        .set_rs(RsSpec {
            id: any_rs(3),
            checkers: vec![fast(CheckKind::Misc(misc("/bin/sh -c 'exit 7'")))],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert_eq!((t.rs, t.up), (any_rs(3), false));

    // A program that does not exist.
    engine
        .set_rs(RsSpec {
            id: any_rs(4),
            checkers: vec![fast(CheckKind::Misc(misc("/nonexistent/xvs-check")))],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert_eq!((t.rs, t.up), (any_rs(4), false));
    assert!(t.reason.contains("could not be started"), "{}", t.reason);
    engine.stop().await;
}

#[tokio::test]
async fn misc_dynamic_weights_and_a_script_without_shebang() {
    let dir = Tmp::new();
    let code = dir.path("code");
    std::fs::write(&code, "7").unwrap();
    // No #! line: exec fails with ENOEXEC and keepalived runs it with sh.
    let script = dir.path("check-script");
    std::fs::write(&script, format!("exit $(cat '{}')\n", code.display())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    let (engine, mut rx) = HealthEngine::new();
    let mut m = misc(&script.display().to_string());
    m.dynamic = true;
    engine
        .set_rs(RsSpec {
            id: any_rs(5),
            checkers: vec![alpha(fast(CheckKind::Misc(m)))],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert_eq!((t.up, t.weight), (true, Some(5)), "{t:?}");
    std::fs::write(&code, "2").unwrap();
    let t = next(&mut rx).await;
    assert_eq!((t.up, t.weight), (true, Some(0)), "{t:?}");
    std::fs::write(&code, "0").unwrap();
    let t = next(&mut rx).await;
    assert_eq!((t.up, t.weight), (true, None), "{t:?}");
    std::fs::write(&code, "1").unwrap();
    let t = next(&mut rx).await;
    assert_eq!((t.up, t.weight), (false, None), "{t:?}");
    engine.stop().await;
}

fn alive(pid: i32) -> bool {
    // A zombie is dead for our purpose.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test]
async fn misc_timeout_kills_the_script_even_if_it_ignores_sigterm() {
    let dir = Tmp::new();
    let pidfile = dir.path("pid");
    let line = format!(
        "/bin/sh -c 'trap \"\" TERM; echo $$ > {}; sleep 60; exit 0'",
        pidfile.display()
    );
    let (engine, mut rx) = HealthEngine::new();
    let mut m = misc(&line);
    m.timeout = Some(Duration::from_millis(300));
    let mut c = alpha(fast(CheckKind::Misc(m)));
    c.common.delay_loop = Some(Duration::from_secs(3600));
    engine
        .set_rs(RsSpec {
            id: any_rs(6),
            checkers: vec![c],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert!(!t.up);
    assert!(t.reason.contains("timed out"), "{}", t.reason);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The whole group got SIGKILL: the shell and its sleep are gone.
    for _ in 0..500 {
        if !alive(pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!alive(pid), "script {pid} still running");
    engine.stop().await;
}

#[tokio::test]
async fn notify_scripts_run_in_the_background_with_a_timeout() {
    let dir = Tmp::new();
    let out = dir.path("notified");
    let h = spawn_notify(
        &format!("/bin/sh -c 'echo \"$0 up\" > {}' rs1", out.display()),
        Duration::from_secs(20),
    );
    assert_eq!(h.await.unwrap(), ScriptStatus::Exited(0));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "rs1 up\n");

    let h = spawn_notify("/bin/sleep 60", Duration::from_millis(200));
    assert_eq!(h.await.unwrap(), ScriptStatus::TimedOut);
    let h = spawn_notify("'unterminated", Duration::from_secs(1));
    assert!(matches!(h.await.unwrap(), ScriptStatus::SpawnFailed(_)));
}

async fn udp_echo() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let _ = s.send_to(&buf[..n], from).await;
        }
    });
    addr
}

fn udp(u: UdpCheck) -> CheckKind {
    CheckKind::Udp(u)
}

#[tokio::test]
async fn udp_check_echo_silence_and_port_unreachable() {
    let (engine, mut rx) = HealthEngine::new();
    let echo = udp_echo().await;
    let req = UdpCheck {
        payload: Some(b"ping".to_vec()),
        require_reply: true,
        reply: Some(HexPattern::parse("70 69 XX 67", true).unwrap()),
        ..UdpCheck::default()
    };
    engine
        .set_rs(RsSpec {
            id: rs_id(echo),
            checkers: vec![alpha(fast(udp(req.clone())))],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert_eq!((t.rs, t.up), (rs_id(echo), true), "{t:?}");

    // A reply that does not match.
    let mut wrong = req.clone();
    wrong.reply = Some(HexPattern::parse("70 70", false).unwrap());
    let echo2 = udp_echo().await;
    engine
        .set_rs(RsSpec {
            id: rs_id(echo2),
            checkers: vec![fast(udp(wrong))],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert_eq!((t.rs, t.up), (rs_id(echo2), false));
    assert!(t.reason.contains("mismatch"), "{}", t.reason);

    // A socket that never answers: success without require_reply (no
    // ICMP error), failure with it.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let mut quiet = fast(udp(UdpCheck::default()));
    quiet.common.connect_timeout = Some(Duration::from_millis(200));
    quiet.common.alpha = true;
    engine
        .set_rs(RsSpec {
            id: rs_id(silent_addr),
            checkers: vec![quiet.clone()],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert_eq!((t.rs, t.up), (rs_id(silent_addr), true));
    let mut need = quiet.clone();
    need.common.alpha = false;
    need.kind = udp(UdpCheck {
        require_reply: true,
        ..UdpCheck::default()
    });
    engine
        .set_rs(RsSpec {
            id: rs_id(silent_addr),
            checkers: vec![need],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert_eq!((t.rs, t.up), (rs_id(silent_addr), false));
    assert!(t.reason.contains("no reply"), "{}", t.reason);

    // Nothing bound: ICMP port unreachable, down.
    let gone = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    engine
        .set_rs(RsSpec {
            id: rs_id(gone),
            checkers: vec![fast(udp(UdpCheck::default()))],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert_eq!((t.rs, t.up), (rs_id(gone), false), "{t:?}");
    drop(silent);
    engine.stop().await;
}

/// A tiny DNS responder: first sends a datagram with a wrong id (to be
/// ignored), then the answer with `rcode`. Records (qname bytes, qtype).
async fn dns_server(
    rcode: u8,
) -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<(Vec<u8>, u16)>,
) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let q = &buf[..n];
            if n < 17 {
                continue;
            }
            let question = &q[12..];
            let qname_len = question.iter().position(|&b| b == 0).unwrap() + 1;
            let qtype = u16::from_be_bytes([question[qname_len], question[qname_len + 1]]);
            let _ = tx.send((question[..qname_len].to_vec(), qtype));
            let mut resp = q.to_vec();
            resp[2] = 0x80 | (q[2] & 0x01); // QR, RD copied
            resp[3] = 0x80 | rcode; // RA, RCODE
            let mut bogus = resp.clone();
            bogus[0] ^= 0xff;
            let _ = s.send_to(&bogus, from).await;
            let _ = s.send_to(&resp, from).await;
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn dns_check_noerror_and_servfail() {
    let (engine, mut rx) = HealthEngine::new();
    let (ok, mut queries) = dns_server(0).await;
    engine
        .set_rs(RsSpec {
            id: rs_id(ok),
            checkers: vec![alpha(fast(CheckKind::Dns(DnsCheck {
                qtype: DnsType::A,
                name: "www.example.test".into(),
            })))],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert_eq!((t.rs, t.up), (rs_id(ok), true), "{t:?}");
    let (qname, qtype) = queries.recv().await.unwrap();
    assert_eq!(qname, b"\x03www\x07example\x04test\x00");
    assert_eq!(qtype, 1);

    let (fail, mut q2) = dns_server(2).await;
    engine
        .set_rs(RsSpec {
            id: rs_id(fail),
            checkers: vec![fast(CheckKind::Dns(DnsCheck::default()))],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert_eq!((t.rs, t.up), (rs_id(fail), false), "{t:?}");
    assert!(t.reason.contains("rcode 2"), "{}", t.reason);
    // Default: SOA for the root.
    assert_eq!(q2.recv().await.unwrap(), (vec![0u8], 6));

    // Nobody answers: read timeout.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut c = fast(CheckKind::Dns(DnsCheck::default()));
    c.common.connect_timeout = Some(Duration::from_millis(200));
    engine
        .set_rs(RsSpec {
            id: rs_id(silent.local_addr().unwrap()),
            checkers: vec![c],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert!(!t.up && t.reason.contains("timeout"), "{t:?}");
    engine.stop().await;
}
