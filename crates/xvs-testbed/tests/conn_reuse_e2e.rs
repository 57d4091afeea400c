//! End to end: client port reuse through xvs NAT, the way a load generator
//! with `Connection: close` (`wrk -H 'Connection: close'`) makes it happen,
//! only sooner. The client's ephemeral range is cut to 64 ports, so from
//! the 65th connection on every SYN arrives on a 5-tuple whose previous
//! connection the director still holds in TIME_WAIT (the real server
//! closes first and keeps its own TIME_WAIT; the client, which closes
//! second, keeps none and reuses the port at once). Each of those SYNs must
//! start a new connection at once, scheduled afresh (IPVS `conn_reuse_mode`
//! without its 1-second SYN drop): every connection is bounded by a
//! timeout below the 1 s SYN retransmission, and the whole run by a
//! deadline. Builds its own testbed, torn down on drop.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use xvs_testbed::harness::{in_netns, tally, Xvsd};
use xvs_testbed::{rs_ip, Node, Testbed, VIP};

/// Sequential connections; 64 ports, so each port is reused ~7 times.
const CONNS: usize = 500;
/// The client's ephemeral range (inclusive): 64 ports.
const PORT_LO: u16 = 40000;
const PORT_HI: u16 = 40063;
/// Per connection (connect, and each read/write): below the 1 s initial
/// SYN retransmission timeout, so a dropped SYN fails the test.
const CONN_TIMEOUT: Duration = Duration::from_millis(900);
/// The whole run (500 connections take well under a second when nothing
/// stalls; a 1 s stall on every reused port would take minutes).
const RUN_DEADLINE: Duration = Duration::from_secs(60);

struct Lb {
    // Field order is drop order: stop xvsd before the namespaces go.
    xvsd: Xvsd,
    tb: Testbed,
}

/// One `GET / HTTP/1.1` with `Connection: close` on a new connection from
/// an ephemeral port; reads until the server's FIN, then closes (so the
/// server closes first, as nginx does for `Connection: close`). Returns
/// (local port, body, time taken) or why it failed.
fn one_close_request(vip: SocketAddr) -> Result<(u16, String, Duration), String> {
    let t0 = Instant::now();
    let mut s =
        TcpStream::connect_timeout(&vip, CONN_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    let port = s.local_addr().map_err(|e| e.to_string())?.port();
    s.set_read_timeout(Some(CONN_TIMEOUT))
        .and_then(|_| s.set_write_timeout(Some(CONN_TIMEOUT)))
        .map_err(|e| format!("port {port}: {e}"))?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("port {port}: write: {e}"))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)
        .map_err(|e| format!("port {port}: read: {e}"))?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("port {port}: no HTTP response: {text:?}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("port {port}: {head}"));
    }
    Ok((port, body.trim().to_string(), t0.elapsed()))
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn reused_client_ports_in_time_wait_connect_at_once() {
    let tb = Testbed::nat().expect("testbed");
    let xvsd = Xvsd::start(&tb, Node::Director, &[]);
    let lb = Lb { xvsd, tb };
    lb.tb.start_http_servers(80).unwrap();
    let vs = format!("{VIP}:80");
    lb.xvsd.adm_ok(&["-A", "-t", &vs, "-s", "rr"]);
    for i in 1..=3u8 {
        let rs = format!("{}:80", rs_ip(i));
        lb.xvsd.adm_ok(&["-a", "-t", &vs, "-r", &rs, "-m"]);
    }
    lb.tb
        .exec_ok(
            Node::Client,
            &[
                "sysctl",
                "-q",
                "-w",
                &format!("net.ipv4.ip_local_port_range={PORT_LO} {PORT_HI}"),
            ],
        )
        .expect("client port range");

    let vip: SocketAddr = format!("{VIP}:80").parse().unwrap();
    let results = in_netns(&lb.tb.ns(Node::Client), move || {
        let start = Instant::now();
        let mut out = Vec::new();
        for i in 0..CONNS {
            if start.elapsed() > RUN_DEADLINE {
                out.push(Err(format!("deadline passed after {i} connections")));
                break;
            }
            let r = one_close_request(vip);
            let failed = r.is_err();
            out.push(r.map_err(|e| format!("connection {i}: {e}")));
            if failed {
                break;
            }
        }
        (out, start.elapsed())
    });
    let (results, took) = results;
    let mut ok = Vec::new();
    for r in &results {
        match r {
            Ok(v) => ok.push(v.clone()),
            Err(e) => panic!(
                "{e} (after {} good ones, {took:?})\n{}",
                ok.len(),
                lb.xvsd.report()
            ),
        }
    }
    assert_eq!(ok.len(), CONNS);

    let ports: BTreeSet<u16> = ok.iter().map(|(p, _, _)| *p).collect();
    assert!(
        ports.iter().all(|p| (PORT_LO..=PORT_HI).contains(p)),
        "{ports:?}"
    );
    let slowest = ok.iter().map(|(_, _, d)| *d).max().unwrap();
    assert!(slowest < CONN_TIMEOUT, "slowest {slowest:?}");

    // rr: every connection, reused port or not, is a new schedule.
    let names: Vec<String> = ok.iter().map(|(_, n, _)| n.clone()).collect();
    let mut split: Vec<usize> = tally(&names).into_values().collect();
    split.sort_unstable();
    assert_eq!(split, [166, 167, 167], "{:?}", tally(&names));

    // Each connection on a port seen before reused its TIME_WAIT entry.
    let c = lb.xvsd.counters();
    let reuses = (CONNS - ports.len()) as u64;
    assert!(reuses >= (CONNS - 64) as u64);
    assert_eq!(c["conn_new"], CONNS as u64, "{c:?}");
    assert_eq!(c["conn_reuse"], reuses, "{c:?}");
    for bad in [
        "reply_takeover",
        "drop_conn_full",
        "pass_tcp_no_conn",
        "pass_stale",
        "pass_no_dest",
        "pass_no_svc",
    ] {
        assert_eq!(c[bad], 0, "{bad}: {c:?}");
    }
    eprintln!(
        "{CONNS} connections over {} ports in {took:?}, slowest {slowest:?}",
        ports.len()
    );
}
