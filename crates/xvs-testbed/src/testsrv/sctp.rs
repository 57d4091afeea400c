//! The SCTP side: a one-to-one style (`SOCK_STREAM`) server that answers
//! every message with its name, and a client that opens a new association
//! per request and shuts it down gracefully.
//!
//! std has no SCTP sockets; `socket2` makes them (`IPPROTO_SCTP` is 132).
//! A kernel without SCTP refuses the socket: [`sctp_socket`] says so in
//! words, and [`sctp_available`] lets a test skip on it.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::client::resolve;
use super::http::io_reason;
use super::{serve_all, IDLE_TIMEOUT, MAX_CONNS};

/// `IPPROTO_SCTP`.
pub const IPPROTO_SCTP: i32 = 132;

/// Largest message read at once; the tests' messages are a few bytes.
const MAX_MSG: usize = 64 * 1024;

/// A one-to-one style SCTP socket for `domain`. A kernel without SCTP
/// (no `sctp` module, or it is blacklisted) answers
/// `EPROTONOSUPPORT`/`ESOCKTNOSUPPORT`; the error then says that, rather
/// than the bare errno.
pub fn sctp_socket(domain: Domain) -> io::Result<Socket> {
    Socket::new(domain, Type::STREAM, Some(Protocol::from(IPPROTO_SCTP))).map_err(|e| {
        match e.raw_os_error() {
            Some(libc::EPROTONOSUPPORT) | Some(libc::ESOCKTNOSUPPORT) => io::Error::new(
                io::ErrorKind::Unsupported,
                format!("SCTP is not available in this kernel (socket(IPPROTO_SCTP): {e})"),
            ),
            _ => e,
        }
    })
}

/// Whether this kernel makes IPv4 SCTP sockets (loading the `sctp` module
/// if it can); the error says why not.
pub fn sctp_available() -> io::Result<()> {
    sctp_socket(Domain::IPV4).map(drop)
}

fn bind_sctp(l: &str) -> io::Result<(Socket, String)> {
    let addr: SocketAddr = l
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "expected ADDR:PORT"))?;
    let s = sctp_socket(Domain::for_address(addr))?;
    // A test that restarts a server binds the same port at once.
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(128)?;
    let local = s
        .local_addr()?
        .as_socket()
        .map_or_else(|| l.to_string(), |a| a.to_string());
    Ok((s, format!("sctp://{local}")))
}

pub(super) fn sctp_servers(listen: &[String], name: &str) -> io::Result<()> {
    let name: Arc<str> = Arc::from(name);
    serve_all(listen, bind_sctp, move |s| sctp_serve(s, &name))
}

/// Accepts associations on `listener`, one thread each.
pub(super) fn sctp_serve(listener: Socket, name: &str) -> io::Result<()> {
    let name: Arc<str> = Arc::from(name);
    let live = Arc::new(AtomicUsize::new(0));
    loop {
        let conn = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) => {
                eprintln!("accept: {e}");
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if live.load(Ordering::Relaxed) >= MAX_CONNS {
            continue; // dropped: shut down at once
        }
        live.fetch_add(1, Ordering::Relaxed);
        let (name, live2) = (name.clone(), live.clone());
        let spawned = thread::Builder::new().spawn(move || {
            let _ = serve_assoc(conn, &name);
            live2.fetch_sub(1, Ordering::Relaxed);
        });
        if spawned.is_err() {
            live.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Answers each message of one association with `NAME\n` until the peer
/// shuts it down (a read of 0), or it idles out.
pub(super) fn serve_assoc(mut conn: Socket, name: &str) -> io::Result<()> {
    conn.set_read_timeout(Some(IDLE_TIMEOUT))?;
    conn.set_write_timeout(Some(IDLE_TIMEOUT))?;
    let reply = format!("{name}\n");
    let mut buf = vec![0u8; MAX_MSG];
    loop {
        if conn.read(&mut buf)? == 0 {
            return Ok(());
        }
        conn.write_all(reply.as_bytes())?;
    }
}

/// One request on a new association: connect, send `msg`, read the reply,
/// then shut down and wait for the end of the association. SCTP has no
/// half-close: after our SHUTDOWN the peer's stack answers SHUTDOWN-ACK by
/// itself and we send SHUTDOWN-COMPLETE, which frees the association.
/// Waiting for that makes every association end on the wire before the
/// next one starts (the tests count and list them).
pub(super) fn sctp_request(
    target: &SocketAddr,
    local: SocketAddr,
    msg: &str,
    timeout: Duration,
) -> Result<String, String> {
    let mut s = sctp_socket(Domain::for_address(*target)).map_err(io_reason)?;
    if local.port() != 0 || !local.ip().is_unspecified() {
        // A --source is the caller's: it must be had. A port of our own
        // choice that is taken (another program's): the kernel's will do.
        if let Err(e) = s.bind(&local.into()) {
            if !local.ip().is_unspecified() {
                return Err(format!("bind {local}: {}", io_reason(e)));
            }
            s = sctp_socket(Domain::for_address(*target)).map_err(io_reason)?;
        }
    }
    s.connect_timeout(&SockAddr::from(*target), timeout)
        .map_err(io_reason)?;
    s.set_read_timeout(Some(timeout)).map_err(io_reason)?;
    s.set_write_timeout(Some(timeout)).map_err(io_reason)?;
    s.write_all(msg.as_bytes()).map_err(io_reason)?;
    let mut buf = vec![0u8; MAX_MSG];
    let n = s.read(&mut buf).map_err(io_reason)?;
    if n == 0 {
        return Err("association closed before a reply".into());
    }
    let reply = String::from_utf8_lossy(&buf[..n]).trim().to_string();
    let ended = s
        .shutdown(std::net::Shutdown::Write)
        .map_err(io_reason)
        .and_then(|()| wait_closed(&mut s, &mut buf, timeout));
    ended.map_err(|e| format!("shutdown not completed: {e} (reply was {reply:?})"))?;
    Ok(reply)
}

/// Reads until the association ends, at most `timeout` in all. A read
/// blocks while the association lives; once it is gone Linux answers 0 or
/// (the socket having no association left, as after our own SHUTDOWN)
/// `ENOTCONN`. An ABORT instead shows as a reset.
fn wait_closed(s: &mut Socket, buf: &mut [u8], timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        match s.read(buf) {
            Ok(0) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return Ok(()),
            // The server answers every message; nothing more is expected,
            // but a late byte is not an error of the shutdown.
            Ok(_) => {}
            Err(e) => return Err(io_reason(e)),
        }
        if Instant::now() >= deadline {
            return Err("timeout".into());
        }
    }
}

/// The local ports `sctp-get` uses: each association its own, in turn
/// from a start that differs per process.
const LOCAL_PORTS: std::ops::Range<u16> = 20_000..60_000;

/// The local port of request `i` of a client whose turn starts at `start`
/// (any number): consecutive requests get distinct ports, wrapping after
/// [`LOCAL_PORTS`]'s length.
pub(super) fn local_port(start: u32, i: u64) -> u16 {
    let len = u64::from(LOCAL_PORTS.end - LOCAL_PORTS.start);
    let off = (u64::from(start) + i) % len;
    // off < len, which fits a u16.
    LOCAL_PORTS.start + off as u16
}

/// `sctp-get`: `count` requests, one association each; one line per
/// request, the reply or `ERR reason`. 0 when all answered, 1 otherwise.
///
/// Each association is sent from its own port, not the kernel's random
/// choice: SCTP leaves no TIME_WAIT behind to keep a port from coming up
/// again, and a director (IPVS, xvs) takes an association from a port an
/// earlier one of the run used as that connection reused, which changes
/// the connection counts the tests check (for 30 associations from the
/// kernel's range, about one run in 65).
///
/// `sources` (`--source`, in turn): the local address of each request,
/// and its port unless 0.
pub(super) fn sctp_get(addr: &str, count: u64, timeout_ms: u64, sources: &[SocketAddr]) -> i32 {
    let timeout = Duration::from_millis(timeout_ms);
    let target = match resolve(addr) {
        Ok(a) => a,
        Err(e) => {
            for _ in 0..count {
                println!("ERR {e}");
            }
            return 1;
        }
    };
    // Said once, not as one timeout per request.
    if let Err(e) = sctp_socket(Domain::for_address(target)) {
        eprintln!("xvs-testsrv: {e}");
        for _ in 0..count {
            println!("ERR {e}");
        }
        return 1;
    }
    // Two clients at once (or one right after another) start apart.
    let start = std::process::id().wrapping_mul(7919);
    let mut failed = false;
    for i in 0..count {
        let port = local_port(start, i);
        let local = match sources.get((i % sources.len().max(1) as u64) as usize) {
            Some(s) if s.port() != 0 => *s,
            Some(s) => SocketAddr::new(s.ip(), port),
            None if target.is_ipv4() => (std::net::Ipv4Addr::UNSPECIFIED, port).into(),
            None => (std::net::Ipv6Addr::UNSPECIFIED, port).into(),
        };
        let r = sctp_request(&target, local, &format!("hello {i}"), timeout);
        super::print_result(r, &mut failed);
    }
    i32::from(failed)
}
