//! End to end: schedulers, connection bookkeeping, draining, persistence
//! and port reuse, with the real `xvsd` and `xvsadm` in NAT mode. Held-open
//! connections are plain `TcpStream`s the test process opens inside the
//! client namespace (a thread enters it with `setns`; sockets keep their
//! namespace). Every test builds its own testbed, torn down on drop.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

use xvs_testbed::harness::{client_get, in_netns, server_names, tally, testsrv_ok, vip_url, Xvsd};
use xvs_testbed::{rs_ip, Node, Testbed, CLIENT_IP, VIP};

struct Lb {
    // Field order is drop order: stop xvsd before the namespaces go.
    xvsd: Xvsd,
    tb: Testbed,
}

impl Lb {
    fn start() -> Lb {
        let tb = Testbed::nat().expect("testbed");
        let xvsd = Xvsd::start(&tb, Node::Director, &[]);
        Lb { xvsd, tb }
    }

    /// A service on VIP:`port` (`proto` "-t"/"-u") with `extra` options and
    /// NAT dests rs1.. with `weights`.
    fn service(&self, proto: &str, port: u16, extra: &[&str], weights: &[u32]) {
        let vs = format!("{VIP}:{port}");
        let mut a = vec!["-A", proto, &vs];
        a.extend_from_slice(extra);
        self.xvsd.adm_ok(&a);
        for (i, w) in weights.iter().enumerate() {
            let rs = format!("{}:{port}", rs_ip(i as u8 + 1));
            self.xvsd
                .adm_ok(&["-a", proto, &vs, "-r", &rs, "-m", "-w", &w.to_string()]);
        }
    }

    /// `n` HTTP requests, each on a new connection: who answered each.
    fn get(&self, n: u32) -> Vec<String> {
        client_get(&self.tb, Node::Client, &vip_url(), n, true, || {
            self.xvsd.report()
        })
    }

    /// `n` UDP datagrams to VIP:53, each from a new socket.
    fn udp(&self, n: u32) -> Vec<String> {
        let stdout = testsrv_ok(
            &self.tb,
            Node::Client,
            &[
                "udp",
                &format!("{VIP}:53"),
                "--count",
                &n.to_string(),
                "--new-conn",
                "--timeout-ms",
                "2000",
            ],
            || self.xvsd.report(),
        );
        // "rs3: ping 0": the server's name
        server_names(&stdout)
    }

    /// Runs `f` on a thread inside the client's network namespace.
    fn in_client<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_netns(&self.tb.ns(Node::Client), f)
    }

    /// `n` keep-alive connections, opened one after the other, each after
    /// one answered request (so it is ESTABLISHED before the next SYN).
    fn hold(&self, n: usize) -> Vec<Held> {
        self.in_client(move || (0..n).map(|_| Held::open(None)).collect())
    }

    /// `(ActiveConn, InActConn)` per real server, from `-Ln`.
    fn conns_by_rs(&self) -> BTreeMap<String, (u32, u32)> {
        let list = self.xvsd.adm_ok(&["-Ln"]);
        let mut out = BTreeMap::new();
        for l in list.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() == 6 && f[0] == "->" && f[1] != "RemoteAddress:Port" {
                out.insert(
                    f[1].to_string(),
                    (f[4].parse().unwrap(), f[5].parse().unwrap()),
                );
            }
        }
        out
    }
}

fn vip_addr(port: u16) -> SocketAddr {
    format!("{VIP}:{port}").parse().unwrap()
}

/// An HTTP/1.1 keep-alive connection through the VIP.
struct Held {
    w: TcpStream,
    r: BufReader<TcpStream>,
    /// Who answered the first request.
    name: String,
}

impl Held {
    /// Connects (from `local_port` when given, with SO_REUSEADDR) and asks
    /// once.
    fn open(local_port: Option<u16>) -> Held {
        let s = match local_port {
            None => {
                TcpStream::connect_timeout(&vip_addr(80), Duration::from_secs(3)).expect("connect")
            }
            Some(p) => connect_from(p),
        };
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let r = BufReader::new(s.try_clone().unwrap());
        let mut h = Held {
            w: s,
            r,
            name: String::new(),
        };
        h.name = h.ask(true);
        h
    }

    /// One request on this connection; the server's name.
    fn ask(&mut self, keep: bool) -> String {
        let conn = if keep { "keep-alive" } else { "close" };
        write!(
            self.w,
            "GET / HTTP/1.1\r\nHost: {VIP}\r\nConnection: {conn}\r\n\r\n"
        )
        .unwrap();
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            self.r.read_line(&mut line).expect("response head");
            assert!(!line.is_empty(), "connection closed early");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; len];
        self.r.read_exact(&mut body).unwrap();
        String::from_utf8_lossy(&body).trim().to_string()
    }
}

/// A TCP connection to VIP:80 from `CLIENT_IP:port` (SO_REUSEADDR, so a
/// port whose last connection just closed can be bound again).
fn connect_from(port: u16) -> TcpStream {
    // SAFETY: plain socket calls on a fresh descriptor, owned by the
    // TcpStream on success and closed on failure.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        );
        let sa = |ip: &str, p: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: p.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(ip.parse::<std::net::Ipv4Addr>().unwrap().octets()),
            },
            sin_zero: [0; 8],
        };
        let local = sa(CLIENT_IP, port);
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        let rc = libc::bind(fd, &local as *const _ as *const libc::sockaddr, len);
        assert_eq!(rc, 0, "bind :{port}: {}", std::io::Error::last_os_error());
        // A 900 ms send timeout bounds connect(): the 1 s SYN drop of
        // conn_reuse_mode would need a SYN retransmission after 1 s.
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 900_000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        );
        let remote = sa(VIP, 80);
        let rc = libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len);
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            panic!("connect from :{port} within 900 ms: {e}");
        }
        TcpStream::from_raw_fd(fd)
    }
}

fn rs(n: u8) -> String {
    format!("{}:80", rs_ip(n))
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn wlc_splits_held_connections_two_to_one() {
    let lb = Lb::start();
    lb.tb.start_http_servers(80).unwrap();
    // -a adds at the head of the list: rs2 (weight 1) is first, rs1 second.
    lb.service("-t", 80, &["-s", "wlc"], &[2, 1]);
    let held = lb.hold(30);
    let names: Vec<String> = held.iter().map(|h| h.name.clone()).collect();
    let t = tally(&names);
    assert_eq!(t.get("rs1"), Some(&20), "{t:?}");
    assert_eq!(t.get("rs2"), Some(&10), "{t:?}");
    let c = lb.conns_by_rs();
    assert_eq!(c[&rs(1)], (20, 0), "{c:?}");
    assert_eq!(c[&rs(2)], (10, 0), "{c:?}");
    // -Lnc lists every one as ESTABLISHED, client -> VIP -> its server.
    let lc = lb.xvsd.adm_ok(&["-Lnc"]);
    let est: Vec<&str> = lc.lines().filter(|l| l.contains("ESTABLISHED")).collect();
    assert_eq!(est.len(), 30, "{lc}");
    assert!(est.iter().all(|l| l.starts_with("TCP")
        && l.contains(&format!("{CLIENT_IP}:"))
        && l.contains(&format!("{VIP}:80"))));
    assert_eq!(est.iter().filter(|l| l.contains(&rs(1))).count(), 20);
    drop(held);
    // Closed by the client: FIN_WAIT/TIME_WAIT/CLOSE..., all inactive now.
    std::thread::sleep(Duration::from_millis(300));
    let c = lb.conns_by_rs();
    assert_eq!(c[&rs(1)].0 + c[&rs(2)].0, 0, "{c:?}");
    assert_eq!(c[&rs(1)].1 + c[&rs(2)].1, 30, "{c:?}");
    let lc = lb.xvsd.adm_ok(&["-Lnc"]);
    assert!(!lc.contains("ESTABLISHED"), "{lc}");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn weight_zero_drains_without_breaking_open_connections() {
    let lb = Lb::start();
    lb.tb.start_http_servers(80).unwrap();
    lb.service("-t", 80, &["-s", "rr"], &[1, 1]);
    let mut held = lb.hold(1);
    let drained = held[0].name.clone();
    let n: u8 = drained.trim_start_matches("rs").parse().unwrap();
    lb.xvsd.adm_ok(&[
        "-e",
        "-t",
        &format!("{VIP}:80"),
        "-r",
        &rs(n),
        "-m",
        "-w",
        "0",
    ]);
    let got = lb.get(10);
    assert!(got.iter().all(|g| *g != drained), "{got:?}");
    // The held connection still reaches the drained server.
    assert_eq!(held[0].ask(true), drained);
    let c = lb.conns_by_rs();
    assert_eq!(c[&rs(n)].0, 1, "{c:?}");
    let list = lb.xvsd.adm_ok(&["-Ln"]);
    assert!(
        list.contains(&format!("  -> {}              Masq    0      1", rs(n))),
        "{list}"
    );
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn persistence_keeps_a_client_then_lets_it_go() {
    let lb = Lb::start();
    lb.tb.start_http_servers(80).unwrap();
    lb.tb.start_udp_echo_servers(53).unwrap();
    // TCP: one server for every connection of the client.
    lb.service("-t", 80, &["-s", "rr", "-p", "2"], &[1, 1, 1]);
    let got = lb.get(9);
    assert_eq!(tally(&got).len(), 1, "{got:?}");
    let list = lb.xvsd.adm_ok(&["-Ln"]);
    assert!(
        list.contains(&format!("TCP  {VIP}:80 rr persistent 2")),
        "{list}"
    );
    let lc = lb.xvsd.adm_ok(&["-Lnc"]);
    let n: u8 = got[0].trim_start_matches("rs").parse().unwrap();
    // ASSURED: its connections got established (IPVS's IP_VS_CTPL_S_ASSURED).
    let tmpl = format!("ASSURED     {CLIENT_IP}:0");
    assert!(
        lc.lines().any(|l| l.starts_with("TCP")
            && l.contains(&tmpl)
            && l.contains(&format!("{VIP}:80"))
            && l.contains(&rs(n))),
        "{lc}"
    );
    let pc = lb.xvsd.adm_ok(&["-Ln", "--persistent-conn"]);
    assert!(
        pc.lines()
            .any(|l| l.contains(&rs(n)) && l.split_whitespace().nth(3) == Some("1")),
        "{pc}"
    );

    // UDP (its connections expire quickly): the template outlives them by
    // the persistence timeout, then the client is scheduled afresh.
    lb.xvsd.adm_ok(&["--set", "0", "0", "1"]);
    lb.service("-u", 53, &["-s", "rr", "-p", "2"], &[1, 1, 1]);
    let first = lb.udp(4);
    assert_eq!(tally(&first).len(), 1, "{first:?}");
    // Within the timeout (conns gone after 1 s): still the same server.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(lb.udp(1), vec![first[0].clone()]);
    // Idle past conn timeout + persistence timeout: released; rr moves on.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let lc = lb.xvsd.adm_ok(&["-Lnc"]);
        if !lc.lines().any(|l| l.starts_with("UDP")) {
            break;
        }
        assert!(Instant::now() < deadline, "template never expired:\n{lc}");
    }
    let again = lb.udp(4);
    assert_eq!(tally(&again).len(), 1, "{again:?}");
    assert_ne!(
        again[0], first[0],
        "released: the next template is elsewhere"
    );
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn reused_client_port_is_scheduled_at_once() {
    let lb = Lb::start();
    lb.tb.start_http_servers(80).unwrap();
    lb.service("-t", 80, &["-s", "rr"], &[1, 1]);
    let port = 45123;
    let first = lb.in_client(move || {
        let mut h = Held::open(Some(port));
        // The server closes first; the client's end closes at once.
        let name = h.ask(false);
        let mut rest = Vec::new();
        let _ = h.r.read_to_end(&mut rest);
        assert_eq!(name, h.name);
        name
    });
    std::thread::sleep(Duration::from_millis(200));
    let lc = lb.xvsd.adm_ok(&["-Lnc"]);
    assert!(
        lc.lines()
            .any(|l| l.contains(&format!("{CLIENT_IP}:{port}")) && l.contains("TIME_WAIT")),
        "{lc}"
    );
    let t0 = Instant::now();
    let second = lb.in_client(move || Held::open(Some(port)).name);
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    assert_ne!(second, first, "scheduled afresh (rr: the other server)");
    // One entry for the port: the new connection, on the other server
    // (closed by now, in whatever state the closing packets left it).
    let lc = lb.xvsd.adm_ok(&["-Lnc"]);
    let n: u8 = second.trim_start_matches("rs").parse().unwrap();
    let mine: Vec<&str> = lc
        .lines()
        .filter(|l| l.contains(&format!("{CLIENT_IP}:{port}")))
        .collect();
    assert_eq!(mine.len(), 1, "{lc}");
    assert!(mine[0].contains(&rs(n)), "{lc}");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn sh_keeps_a_client_on_one_server() {
    let lb = Lb::start();
    lb.tb.start_http_servers(80).unwrap();
    lb.service("-t", 80, &["-s", "sh", "-b", "sh-fallback"], &[1, 1, 1]);
    let got = lb.get(12);
    assert_eq!(tally(&got).len(), 1, "{got:?}");
    let list = lb.xvsd.adm_ok(&["-Ln"]);
    assert!(
        list.contains(&format!("TCP  {VIP}:80 sh (sh-fallback)")),
        "{list}"
    );
    // Quiesce that server: sh-fallback moves the client to another one.
    let n: u8 = got[0].trim_start_matches("rs").parse().unwrap();
    lb.xvsd.adm_ok(&[
        "-e",
        "-t",
        &format!("{VIP}:80"),
        "-r",
        &rs(n),
        "-m",
        "-w",
        "0",
    ]);
    let moved = lb.get(6);
    assert_eq!(tally(&moved).len(), 1, "{moved:?}");
    assert_ne!(moved[0], got[0]);
}
