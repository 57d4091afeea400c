//! TCP_CHECK, HTTP_GET and SSL_GET against real servers on 127.0.0.1.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{alpha, closed_port, fast, next, rs_id};
use md5::{Digest, Md5};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use xvs_health::config::{CheckKind, HttpCheck, TcpCheck, Url};
use xvs_health::{HealthEngine, RsSpec};

/// A tiny HTTP server: answers every request with `status` and `body`,
/// then closes; records the request heads it saw.
struct Web {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    status: u16,
    body: &'static str,
    seen: Arc<Mutex<Vec<String>>>,
) {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    seen.lock()
        .unwrap()
        .push(String::from_utf8_lossy(&req).into_owned());
    let resp = format!(
        "HTTP/1.0 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(resp.as_bytes()).await;
    let _ = s.shutdown().await;
}

async fn web(status: u16, body: &'static str) -> Web {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((c, _)) = l.accept().await {
            tokio::spawn(serve_one(c, status, body, s2.clone()));
        }
    });
    Web { addr, seen }
}

fn http(urls: Vec<Url>) -> HttpCheck {
    HttpCheck {
        urls,
        ..HttpCheck::default()
    }
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn tcp_down_when_the_listener_goes_and_up_when_it_returns() {
    let (engine, mut rx) = HealthEngine::new();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let id = rs_id(addr);
    let st = engine
        .set_rs(RsSpec {
            id,
            checkers: vec![fast(CheckKind::Tcp(TcpCheck))],
        })
        .unwrap();
    assert!(st.up);
    // Let it see the listener at least once.
    for _ in 0..300 {
        if engine.state(&id).unwrap().checkers[0].last_ok == Some(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(l);
    let t = next(&mut rx).await;
    assert!(!t.up, "{t:?}");
    assert!(t.reason.contains("TCP connection to"), "{}", t.reason);
    let _l = std::net::TcpListener::bind(addr).unwrap();
    let t = next(&mut rx).await;
    assert!(t.up, "{t:?}");
    assert_eq!(engine.state(&id).unwrap().transitions, 2);
    engine.stop().await;
}

#[tokio::test]
async fn tcp_connect_port_overrides_the_real_server_port() {
    let (engine, mut rx) = HealthEngine::new();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut c = alpha(fast(CheckKind::Tcp(TcpCheck)));
    c.common.connect_ip = Some("127.0.0.1".parse().unwrap());
    c.common.connect_port = Some(l.local_addr().unwrap().port());
    c.common.bindto = Some("127.0.0.1".parse().unwrap());
    let id = rs_id(closed_port());
    engine
        .set_rs(RsSpec {
            id,
            checkers: vec![c],
        })
        .unwrap();
    assert!(next(&mut rx).await.up);
    assert_eq!(
        engine.state(&id).unwrap().checkers[0].target,
        l.local_addr().unwrap()
    );
    engine.stop().await;
}

#[tokio::test]
async fn http_status_code_default_match_and_mismatch() {
    let (engine, mut rx) = HealthEngine::new();
    let ok = web(200, "fine").await;
    let bad = web(500, "broken").await;
    engine
        .set_rs(RsSpec {
            id: rs_id(ok.addr),
            checkers: vec![alpha(fast(CheckKind::Http(http(vec![Url::new("/")]))))],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert_eq!((t.rs, t.up), (rs_id(ok.addr), true));

    engine
        .set_rs(RsSpec {
            id: rs_id(bad.addr),
            checkers: vec![fast(CheckKind::Http(http(vec![Url::new("/health")])))],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert_eq!((t.rs, t.up), (rs_id(bad.addr), false));
    assert!(t.reason.contains("500"), "{}", t.reason);
    assert!(t.reason.contains("HTTP_GET"), "{}", t.reason);
    assert!(bad.seen.lock().unwrap()[0].starts_with("GET /health HTTP/1.0\r\n"));

    // status_code 500 accepts it. (alpha: the replaced checker starts down,
    // so the transition comes from a check, not from the reload.)
    let mut u = Url::new("/");
    u.status_codes = vec![400..=499, 500..=500];
    let id = rs_id(bad.addr);
    let st = engine
        .set_rs(RsSpec {
            id,
            checkers: vec![alpha(fast(CheckKind::Http(http(vec![u]))))],
        })
        .unwrap();
    assert!(!st.up);
    let t = next(&mut rx).await;
    assert!(t.up && t.reason.contains("1 url ok"), "{t:?}");
    engine.stop().await;
}

#[tokio::test]
async fn http_digest_match_and_mismatch_and_every_url_must_pass() {
    let (engine, mut rx) = HealthEngine::new();
    let w = web(200, "hello world").await;
    let mut good = Url::new("/a");
    good.digest = Some(md5_hex("hello world").to_uppercase());
    engine
        .set_rs(RsSpec {
            id: rs_id(w.addr),
            checkers: vec![alpha(fast(CheckKind::Http(http(vec![good.clone()]))))],
        })
        .unwrap();
    assert!(next(&mut rx).await.up);

    let mut wrong = Url::new("/b");
    wrong.digest = Some(md5_hex("something else"));
    engine
        .set_rs(RsSpec {
            id: rs_id(w.addr),
            checkers: vec![fast(CheckKind::Http(http(vec![good, wrong])))],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert!(!t.up);
    assert!(t.reason.contains("MD5 digest mismatch"), "{}", t.reason);
    assert!(t.reason.contains("/b"), "{}", t.reason);
    engine.stop().await;
}

#[tokio::test]
async fn http_host_header_is_the_virtualhost_or_the_address() {
    let (engine, mut rx) = HealthEngine::new();
    let w = web(200, "x").await;
    let mut per_url = Url::new("/u");
    per_url.virtualhost = Some("url.example.test".into());
    let mut h = http(vec![Url::new("/c"), per_url]);
    h.virtualhost = Some("www.example.test".into());
    engine
        .set_rs(RsSpec {
            id: rs_id(w.addr),
            checkers: vec![alpha(fast(CheckKind::Http(h)))],
        })
        .unwrap();
    assert!(next(&mut rx).await.up);
    let w2 = web(200, "x").await;
    engine
        .set_rs(RsSpec {
            id: rs_id(w2.addr),
            checkers: vec![alpha(fast(CheckKind::Http(http(vec![Url::new("/")]))))],
        })
        .unwrap();
    assert!(next(&mut rx).await.up);
    engine.stop().await;

    let seen = w.seen.lock().unwrap().clone();
    assert!(seen[0].starts_with("GET /c HTTP/1.0\r\n"), "{seen:?}");
    assert!(
        seen[0].contains("\r\nHost: www.example.test\r\n"),
        "{seen:?}"
    );
    assert!(seen[0].contains("\r\nUser-Agent: KeepAliveClient\r\n"));
    assert!(
        seen[1].contains("\r\nHost: url.example.test\r\n"),
        "{seen:?}"
    );
    let seen2 = w2.seen.lock().unwrap().clone();
    let host = format!("\r\nHost: 127.0.0.1:{}\r\n", w2.addr.port());
    assert!(seen2[0].contains(&host), "{seen2:?}");
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

async fn tls_web(status: u16, body: &'static str) -> Web {
    let acceptor = tls_acceptor();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((c, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            let s3 = s2.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(c).await {
                    serve_one(tls, status, body, s3).await;
                }
            });
        }
    });
    Web { addr, seen }
}

#[tokio::test]
async fn ssl_get_with_a_self_signed_certificate() {
    let (engine, mut rx) = HealthEngine::new();
    let w = tls_web(200, "secure").await;
    let mut u = Url::new("/tls");
    u.digest = Some(md5_hex("secure"));
    let mut h = http(vec![u]);
    h.tls = true;
    engine
        .set_rs(RsSpec {
            id: rs_id(w.addr),
            checkers: vec![alpha(fast(CheckKind::Http(h.clone())))],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert!(t.up, "{t:?}");
    assert!(w.seen.lock().unwrap()[0].starts_with("GET /tls HTTP/1.0\r\n"));

    // With SNI, and against a 404.
    let w404 = tls_web(404, "").await;
    h.sni = Some("localhost".into());
    engine
        .set_rs(RsSpec {
            id: rs_id(w404.addr),
            checkers: vec![fast(CheckKind::Http(h.clone()))],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert!(!t.up && t.reason.contains("404"), "{t:?}");
    assert!(t.reason.contains("SSL_GET"), "{t:?}");

    // SSL_GET against a plain HTTP server fails the handshake.
    let plain = web(200, "secure").await;
    engine
        .set_rs(RsSpec {
            id: rs_id(plain.addr),
            checkers: vec![fast(CheckKind::Http(h))],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert!(!t.up && t.reason.contains("TLS"), "{t:?}");
    engine.stop().await;
}

#[tokio::test]
async fn a_silent_real_server_does_not_delay_the_others() {
    let (engine, mut rx) = HealthEngine::new();
    // Accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h2 = held.clone();
    tokio::spawn(async move {
        while let Ok((c, _)) = silent.accept().await {
            h2.lock().unwrap().push(c);
        }
    });
    let mut slow = fast(CheckKind::Http(http(vec![Url::new("/")])));
    slow.common.connect_timeout = Some(Duration::from_secs(3600));
    engine
        .set_rs(RsSpec {
            id: rs_id(silent_addr),
            checkers: vec![slow],
        })
        .unwrap();
    // Wait until the silent server holds the checker's connection.
    for _ in 0..500 {
        if !held.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!held.lock().unwrap().is_empty());

    let dead = closed_port();
    engine
        .set_rs(RsSpec {
            id: rs_id(dead),
            checkers: vec![fast(CheckKind::Tcp(TcpCheck))],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert_eq!((t.rs, t.up), (rs_id(dead), false));
    let st = engine.state(&rs_id(silent_addr)).unwrap();
    assert!(st.up && st.last_check.is_none(), "still waiting: {st:?}");
    engine.stop().await;
}

/// `::1` when the host has IPv6 loopback (else the IPv6 tests pass
/// without checking anything).
fn ipv6_loopback() -> Option<std::net::TcpListener> {
    std::net::TcpListener::bind("[::1]:0").ok()
}

#[tokio::test]
async fn tcp_and_http_checks_reach_an_ipv6_real_server() {
    let Some(probe) = ipv6_loopback() else {
        eprintln!("no IPv6 loopback: skipped");
        return;
    };
    drop(probe);
    let (engine, mut rx) = HealthEngine::new();
    // TCP_CHECK with connect_ip, connect_port and bindto of IPv6.
    let l = TcpListener::bind("[::1]:0").await.unwrap();
    let mut c = alpha(fast(CheckKind::Tcp(TcpCheck)));
    c.common.connect_ip = Some("::1".parse().unwrap());
    c.common.connect_port = Some(l.local_addr().unwrap().port());
    c.common.bindto = Some("::1".parse().unwrap());
    let id = rs_id(closed_port());
    engine
        .set_rs(RsSpec {
            id,
            checkers: vec![c],
        })
        .unwrap();
    assert!(next(&mut rx).await.up);
    assert_eq!(
        engine.state(&id).unwrap().checkers[0].target,
        l.local_addr().unwrap()
    );
    // HTTP_GET to an IPv6 real server's own address.
    let h = TcpListener::bind("[::1]:0").await.unwrap();
    let addr = h.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((c, _)) = h.accept().await {
            tokio::spawn(serve_one(c, 200, "fine", s2.clone()));
        }
    });
    let mut c = alpha(fast(CheckKind::Http(http(vec![Url::new("/")]))));
    c.common.bindto = Some("::1".parse().unwrap());
    engine
        .set_rs(RsSpec {
            id: rs_id(addr),
            checkers: vec![c],
        })
        .unwrap();
    let t = next(&mut rx).await;
    assert_eq!((t.rs, t.up), (rs_id(addr), true), "{t:?}");
    assert!(seen.lock().unwrap()[0].starts_with("GET / HTTP/1.0\r\n"));
    engine.stop().await;
}
