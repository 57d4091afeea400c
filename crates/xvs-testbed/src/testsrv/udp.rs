//! The UDP side: echo and sink servers, and the client.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::client::resolve;
use super::http::io_reason;
use super::serve_all;

pub(super) fn bind_udp(l: &str) -> io::Result<(UdpSocket, String)> {
    let s = UdpSocket::bind(l)?;
    let url = format!("udp://{}", s.local_addr()?);
    Ok((s, url))
}

pub(super) fn udp_sinks(listen: &[String]) -> io::Result<()> {
    serve_all(listen, bind_udp, |s| loop {
        // Holds the socket open, never reads it.
        thread::sleep(Duration::from_secs(3600));
        let _ = &s;
    })
}

pub(super) fn udp_echo_servers(listen: &[String], name: &str) -> io::Result<()> {
    let name: Arc<str> = Arc::from(name);
    serve_all(listen, bind_udp, move |s| udp_echo_serve(s, &name))
}

pub(super) fn udp_echo_serve(sock: UdpSocket, name: &str) -> io::Result<()> {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("recv: {e}");
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let mut reply = format!("{name}: ").into_bytes();
        reply.extend_from_slice(&buf[..n]);
        if let Err(e) = sock.send_to(&reply, peer) {
            eprintln!("send to {peer}: {e}");
        }
    }
}

pub(super) fn udp_client(
    addr: &str,
    count: u64,
    timeout_ms: u64,
    payload: &str,
    new_conn: bool,
    sources: &[SocketAddr],
) -> i32 {
    let timeout = Duration::from_millis(timeout_ms);
    let target = match resolve(addr) {
        Ok(a) => a,
        Err(e) => {
            println!("ERR {e}");
            return 1;
        }
    };
    let bind = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let mut next = 0usize;
    let mut open = || -> io::Result<UdpSocket> {
        let s = match sources.get(next % sources.len().max(1)) {
            Some(from) => UdpSocket::bind(from)?,
            None => UdpSocket::bind(bind)?,
        };
        next += 1;
        s.set_read_timeout(Some(timeout))?;
        s.connect(target)?;
        Ok(s)
    };
    let mut sock: Option<UdpSocket> = None;
    let mut failed = false;
    let mut buf = vec![0u8; 65536];
    for i in 0..count {
        if new_conn || sock.is_none() {
            sock = match open() {
                Ok(s) => Some(s),
                Err(e) => {
                    println!("ERR {}", io_reason(e));
                    failed = true;
                    continue;
                }
            };
        }
        let s = sock.as_ref().expect("opened above");
        let msg = format!("{payload} {i}");
        let line = match s.send(msg.as_bytes()).and_then(|_| s.recv(&mut buf)) {
            // One line per answer, whatever the payload (SIP's CRLFs).
            Ok(n) => String::from_utf8_lossy(&buf[..n])
                .trim()
                .replace('\r', "\\r")
                .replace('\n', "\\n"),
            Err(e) => {
                failed = true;
                format!("ERR {}", io_reason(e))
            }
        };
        println!("{line}");
    }
    i32::from(failed)
}
