//! Unit tests of the test server.

use super::client::HttpClient;
use super::http::slow_params;
use super::http_server::serve_conn;
use super::udp::udp_echo_serve;
use super::*;
use std::io::Cursor;
use std::net::{SocketAddr, TcpListener, UdpSocket};

#[test]
fn slow_bodies_are_checked_byte_by_byte() {
    assert_eq!(slow_params("/slow/4096/2000"), Some((4096, 2000)));
    assert_eq!(slow_params("/slow/x/2000"), None);
    assert_eq!(
        slow_params("/slow/9999999999/1").map(|p| p.0),
        Some(MAX_PAD)
    );
    let mut body = b"rs1\n".to_vec();
    body.extend((0..100).map(slow_byte));
    assert_eq!(check_slow_body(&body), Ok(()));
    body[50] = b'!';
    assert_eq!(
        check_slow_body(&body),
        Err("corrupt body at byte 50".into())
    );
}

#[test]
fn parses_server_args() {
    assert_eq!(
        parse_args(&["http", "--listen", "0.0.0.0:80", "--name", "rs1"]).unwrap(),
        Cmd::Http {
            listen: vec!["0.0.0.0:80".into()],
            name: "rs1".into()
        }
    );
    assert_eq!(
        parse_args(&[
            "udp-echo",
            "--name",
            "x",
            "--listen",
            "127.0.0.1:7",
            "--listen",
            "127.0.0.2:7"
        ])
        .unwrap(),
        Cmd::UdpEcho {
            listen: vec!["127.0.0.1:7".into(), "127.0.0.2:7".into()],
            name: "x".into()
        }
    );
    assert_eq!(
        parse_args(&["udp-sink", "--listen", "0.0.0.0:9", "--name", "rs1"]).unwrap(),
        Cmd::UdpSink {
            listen: vec!["0.0.0.0:9".into()],
            name: "rs1".into()
        }
    );
    assert!(parse_args(&["http", "--listen", "nope", "--name", "a"]).is_err());
    assert!(parse_args(&["http", "--listen", "0.0.0.0:80"]).is_err());
    assert!(parse_args(&["http", "--listen"]).is_err());
    assert!(parse_args::<&str>(&[]).is_err());
    assert!(parse_args(&["frobnicate"]).is_err());
}

#[test]
fn parses_client_args() {
    assert_eq!(
        parse_args(&[
            "get",
            "http://198.51.100.10/",
            "--count",
            "30",
            "--new-conn"
        ])
        .unwrap(),
        Cmd::Get {
            url: Url {
                host: "198.51.100.10".into(),
                port: 80,
                path: "/".into()
            },
            count: 30,
            timeout_ms: 2000,
            keepalive: false,
            sources: vec![]
        }
    );
    match parse_args(&[
        "get",
        "http://h:8080/x?y",
        "--keepalive",
        "--timeout-ms",
        "50",
    ])
    .unwrap()
    {
        Cmd::Get {
            url,
            keepalive,
            timeout_ms,
            count,
            ..
        } => {
            assert_eq!(
                (url.host.as_str(), url.port, url.path.as_str()),
                ("h", 8080, "/x?y")
            );
            assert!(keepalive);
            assert_eq!((timeout_ms, count), (50, 1));
        }
        c => panic!("{c:?}"),
    }
    assert!(parse_args(&["get", "http://h/", "--keepalive", "--new-conn"]).is_err());
    assert!(parse_args(&["get", "http://h/", "--count", "0"]).is_err());
    assert!(parse_args(&["get", "http://h/", "--count", "x"]).is_err());
    assert!(parse_args(&["get"]).is_err());
    assert!(parse_args(&["get", "a", "b"]).is_err());
    assert_eq!(
        parse_args(&["udp", "192.0.2.1:53", "--count", "3", "--new-conn"]).unwrap(),
        Cmd::Udp {
            addr: "192.0.2.1:53".into(),
            count: 3,
            timeout_ms: 2000,
            payload: "ping".into(),
            new_conn: true,
            sources: vec![]
        }
    );
    match parse_args(&["get", "http://h/", "--source", "192.0.2.7,192.0.2.8:4000"]).unwrap() {
        Cmd::Get { sources, .. } => assert_eq!(
            sources,
            [
                "192.0.2.7:0".parse::<SocketAddr>().unwrap(),
                "192.0.2.8:4000".parse().unwrap()
            ]
        ),
        other => panic!("{other:?}"),
    }
    assert!(parse_args(&["get", "http://h/", "--source", "x"])
        .unwrap_err()
        .contains("not an address"));
}

#[test]
fn parses_urls() {
    let u = parse_url("http://[2001:db8::1]:8080/a").unwrap();
    assert_eq!(
        (u.host.as_str(), u.port, u.path.as_str()),
        ("2001:db8::1", 8080, "/a")
    );
    assert_eq!(u.authority(), "[2001:db8::1]:8080");
    let u = parse_url("http://192.0.2.1").unwrap();
    assert_eq!((u.port, u.path.as_str()), (80, "/"));
    assert!(parse_url("https://x/").is_err());
    assert!(parse_url("http:///").is_err());
    assert!(parse_url("http://x:99999/").is_err());
    assert!(parse_url("http://:80/").is_err());
}

#[test]
fn reads_and_parses_request_heads() {
    let raw =
        "\r\nGET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /b HTTP/1.0\nHost: y\n\n";
    let mut r = Cursor::new(raw.as_bytes());
    let h1 = read_head(&mut r).unwrap().unwrap();
    let req = parse_request_head(&h1).unwrap();
    assert_eq!(
        (req.method.as_str(), req.path.as_str(), req.minor),
        ("GET", "/a", 1)
    );
    assert_eq!(req.header("HOST"), Some("x"));
    assert!(!req.keep_alive());
    let req2 = parse_request_head(&read_head(&mut r).unwrap().unwrap()).unwrap();
    assert_eq!((req2.path.as_str(), req2.minor), ("/b", 0));
    assert!(!req2.keep_alive(), "HTTP/1.0 closes by default");
    assert_eq!(read_head(&mut r).unwrap(), None);

    let ka10 = parse_request_head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
    assert!(ka10.keep_alive());
    let ka11 = parse_request_head("GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(ka11.keep_alive());

    assert!(parse_request_head("GET /\r\n\r\n").is_err());
    assert!(parse_request_head("GET / HTTP/2\r\n\r\n").is_err());
    assert!(parse_request_head("GET / HTTP/1.1\r\nbad header\r\n\r\n").is_err());
    let mut trunc = Cursor::new(b"GET / HTTP/1.1\r\nHost: x\r\n".as_slice());
    assert!(read_head(&mut trunc).is_err());
    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
    assert!(read_head(&mut Cursor::new(huge.as_bytes())).is_err());
}

#[test]
fn responses_round_trip() {
    let req = parse_request_head("GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let pad = parse_request_head("GET /pad/5000 HTTP/1.1\r\n\r\n").unwrap();
    let (bytes, _) = build_response("rs9", &pad);
    let (_, body) = read_response(&mut Cursor::new(bytes.as_slice())).unwrap();
    assert_eq!(body.len(), 4 + 5000);
    assert_eq!(summary(&body), "rs9 (5004 bytes)");
    assert_eq!(summary(b"rs1\n"), "rs1");
    let huge = parse_request_head("GET /pad/99999999 HTTP/1.1\r\n\r\n").unwrap();
    let (bytes, _) = build_response("rs9", &huge);
    let (_, body) = read_response(&mut Cursor::new(bytes.as_slice())).unwrap();
    assert_eq!(body.len(), 4 + MAX_PAD, "padding is capped");
    let (bytes, keep) = build_response("rs1", &req);
    assert!(keep);
    let mut r = Cursor::new(bytes);
    let (head, body) = read_response(&mut r).unwrap();
    assert_eq!(head.status, 200);
    assert!(head.keep_alive());
    assert_eq!(body, b"rs1\n");

    let close = parse_request_head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    let (bytes, keep) = build_response("rs2", &close);
    assert!(!keep);
    let (head, _) = read_response(&mut Cursor::new(bytes)).unwrap();
    assert!(!head.keep_alive());

    let head_req = parse_request_head("HEAD / HTTP/1.1\r\n\r\n").unwrap();
    let (bytes, _) = build_response("rs3", &head_req);
    assert!(String::from_utf8(bytes).unwrap().ends_with("\r\n\r\n"));

    let post = parse_request_head("POST / HTTP/1.1\r\n\r\n").unwrap();
    let (bytes, keep) = build_response("rs3", &post);
    assert!(!keep);
    assert_eq!(
        read_response(&mut Cursor::new(bytes)).unwrap().0.status,
        405
    );

    // No Content-Length: body runs to EOF.
    let raw = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nhello\n";
    let (head, body) = read_response(&mut Cursor::new(raw.as_slice())).unwrap();
    assert_eq!((head.minor, body.as_slice()), (0, b"hello\n".as_slice()));
    assert!(parse_response_head("HTTP/1.1 abc\r\n\r\n").is_err());
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert!(read_response(&mut Cursor::new(chunked.as_slice())).is_err());
    assert!(read_response(&mut Cursor::new(b"".as_slice())).is_err());
}

#[test]
fn serves_http_and_udp_on_loopback() {
    // Loopback only; servers run in threads of this test process.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for c in listener.incoming().take(3) {
            let c = c.unwrap();
            thread::spawn(move || serve_conn(c, "lo1"));
        }
    });
    for keepalive in [true, false] {
        let mut client = HttpClient {
            url: parse_url(&format!("http://{addr}/")).unwrap(),
            addr,
            timeout: Duration::from_secs(2),
            keepalive,
            conn: None,
            source: None,
        };
        for _ in 0..2 {
            assert_eq!(client.request().unwrap(), "lo1");
            assert_eq!(client.conn.is_some(), keepalive);
        }
    }

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let uaddr = sock.local_addr().unwrap();
    thread::spawn(move || udp_echo_serve(sock, "u1"));
    assert_eq!(udp_client(&uaddr.to_string(), 2, 1000, "hi", true, &[]), 0);
}

#[test]
fn parses_sctp_args() {
    assert_eq!(
        parse_args(&[
            "sctp",
            "--listen",
            "203.0.113.11:6060",
            "--listen",
            "198.51.100.10:6060",
            "--name",
            "rs1"
        ])
        .unwrap(),
        Cmd::Sctp {
            listen: vec!["203.0.113.11:6060".into(), "198.51.100.10:6060".into()],
            name: "rs1".into()
        }
    );
    assert!(parse_args(&["sctp", "--listen", "0.0.0.0:5060"]).is_err());
    assert!(parse_args(&["sctp", "--listen", "x:1", "--name", "a"]).is_err());
    assert!(parse_args(&["sctp", "--name", "a"]).is_err());
    assert_eq!(
        parse_args(&[
            "sctp-get",
            "198.51.100.10:5060",
            "--count",
            "30",
            "--timeout-ms",
            "500"
        ])
        .unwrap(),
        Cmd::SctpGet {
            addr: "198.51.100.10:5060".into(),
            count: 30,
            timeout_ms: 500,
            sources: vec![]
        }
    );
    assert_eq!(
        parse_args(&["sctp-get", "192.0.2.1:9"]).unwrap(),
        Cmd::SctpGet {
            addr: "192.0.2.1:9".into(),
            count: 1,
            timeout_ms: 2000,
            sources: vec![]
        }
    );
    assert_eq!(
        parse_args(&[
            "sctp-get",
            "192.0.2.1:9",
            "--source",
            "192.0.2.7,192.0.2.8:20001"
        ])
        .unwrap(),
        Cmd::SctpGet {
            addr: "192.0.2.1:9".into(),
            count: 1,
            timeout_ms: 2000,
            sources: vec![
                "192.0.2.7:0".parse().unwrap(),
                "192.0.2.8:20001".parse().unwrap()
            ]
        }
    );
    assert!(parse_args(&["sctp-get"]).is_err());
    assert!(parse_args(&["sctp-get", "a:1", "b:2"]).is_err());
    assert!(parse_args(&["sctp-get", "a:1", "--count", "0"]).is_err());
    for extra in [&["--keepalive"][..], &["--new-conn"], &["--payload", "x"]] {
        let mut args = vec!["sctp-get", "192.0.2.1:9"];
        args.extend_from_slice(extra);
        assert!(
            parse_args(&args)
                .unwrap_err()
                .contains("only --count, --timeout-ms and --source"),
            "{args:?}"
        );
    }
}

#[test]
fn sctp_clients_take_distinct_local_ports_in_turn() {
    let ports: Vec<u16> = (0..4).map(|i| sctp::local_port(39_998, i)).collect();
    assert_eq!(ports, [59_998, 59_999, 20_000, 20_001]);
    let many: std::collections::BTreeSet<u16> =
        (0..30).map(|i| sctp::local_port(u32::MAX, i)).collect();
    assert_eq!(many.len(), 30);
    assert!(many.iter().all(|p| (20_000..60_000).contains(p)));
}

#[test]
fn serves_sctp_on_loopback_where_the_kernel_has_it() {
    if let Err(e) = sctp_available() {
        eprintln!("skipped: {e}");
        assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e}");
        // The client says so too, once per request, and fails.
        assert_eq!(sctp::sctp_get("127.0.0.1:9", 2, 100, &[]), 1);
        return;
    }
    let listener = sctp_socket(socket2::Domain::IPV4).unwrap();
    listener
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    listener.listen(8).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    thread::spawn(move || sctp::sctp_serve(listener, "s1"));
    let timeout = Duration::from_secs(2);
    for i in 0..3 {
        let msg = format!("hello {i}");
        let local = SocketAddr::from(([127, 0, 0, 1], sctp::local_port(7, i)));
        assert_eq!(
            sctp::sctp_request(&addr, local, &msg, timeout).unwrap(),
            "s1"
        );
    }
    assert_eq!(sctp::sctp_get(&addr.to_string(), 2, 1000, &[]), 0);
    let from: SocketAddr = "127.0.0.1:0".parse().unwrap();
    assert_eq!(sctp::sctp_get(&addr.to_string(), 2, 1000, &[from]), 0);
}
