//! `xvs-testsrv`: tiny HTTP/UDP/SCTP servers and clients for tests and the
//! demo.
//!
//! Everything here is std only, but for SCTP (std has no SCTP sockets:
//! `socket2`, in `sctp.rs`) and the `--source` binding of the TCP client
//! (`socket2`). The pure parts (argument grammar, URL and HTTP head
//! parsing) are unit tested; the binary in `src/bin/xvs-testsrv.rs` only
//! calls [`main_with_args`].
//!
//! ```text
//! xvs-testsrv http     --listen ADDR:PORT [--listen ADDR:PORT]... --name NAME
//! xvs-testsrv udp-echo --listen ADDR:PORT [--listen ADDR:PORT]... --name NAME
//! xvs-testsrv udp-sink --listen ADDR:PORT [--listen ADDR:PORT]... --name NAME
//! xvs-testsrv sctp     --listen ADDR:PORT [--listen ADDR:PORT]... --name NAME
//! xvs-testsrv get URL  [--count N] [--timeout-ms T] [--new-conn|--keepalive]
//! xvs-testsrv udp ADDR:PORT [--count N] [--timeout-ms T] [--payload P] [--new-conn]
//! xvs-testsrv sctp-get ADDR:PORT [--count N] [--timeout-ms T] [--source ADDR[:PORT],...]
//! ```
//!
//! `--listen` may repeat. A UDP socket bound to `0.0.0.0` answers from the
//! host's primary address, which a client talking to a secondary address
//! (a VIP) rejects: bind each such address explicitly instead.
//!
//! The SCTP server takes one-to-one style associations and answers each
//! message with its name; `sctp-get` opens a new association per request
//! and shuts it down gracefully (SHUTDOWN, SHUTDOWN-ACK, SHUTDOWN-COMPLETE)
//! before the next. Both fail with a clear error on a kernel without SCTP.
//!
//! Clients print one line per request: the reply (HTTP body trimmed, the
//! UDP datagram, or the SCTP reply) or `ERR <reason>`. They exit 0 when every request got an
//! answer, 1 otherwise, 2 on a usage error.

use std::io::{self, Write};
use std::thread;
use std::time::Duration;

mod cli;
mod client;
mod http;
mod http_server;
mod sctp;
#[cfg(test)]
mod tests;
mod udp;

use client::http_get;
use http_server::http_servers;
use sctp::{sctp_get, sctp_servers};
use udp::{udp_client, udp_echo_servers, udp_sinks};

pub use cli::{parse_args, parse_url, Cmd, Url};
pub use http::{
    build_response, check_slow_body, parse_request_head, parse_response_head, read_head,
    read_response, slow_byte, summary, Request, ResponseHead, MAX_PAD,
};
pub use sctp::{sctp_available, sctp_socket, IPPROTO_SCTP};

/// Largest request/response head accepted (bytes).
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest body a client or server will read (bytes).
pub const MAX_BODY: usize = 1024 * 1024;
/// Upper bound for `--count`.
pub const MAX_COUNT: u64 = 10_000_000;
/// Concurrent connections the HTTP server serves; more are closed at once.
pub const MAX_CONNS: usize = 4096;
/// A server connection idle longer than this is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

pub const USAGE: &str = "\
usage:
  xvs-testsrv http     --listen ADDR:PORT [--listen ADDR:PORT]... --name NAME
  xvs-testsrv udp-echo --listen ADDR:PORT [--listen ADDR:PORT]... --name NAME
  xvs-testsrv udp-sink --listen ADDR:PORT [--listen ADDR:PORT]... --name NAME
  xvs-testsrv sctp     --listen ADDR:PORT [--listen ADDR:PORT]... --name NAME
  xvs-testsrv get URL  [--count N] [--timeout-ms T] [--new-conn|--keepalive]
                       [--source ADDR[:PORT],...]
  xvs-testsrv udp ADDR:PORT [--count N] [--timeout-ms T] [--payload P] [--new-conn]
                       [--source ADDR[:PORT],...]
  xvs-testsrv sctp-get ADDR:PORT [--count N] [--timeout-ms T]
                       [--source ADDR[:PORT],...]
--source: the local addresses (and ports) to send from, one connection after
the other in turn.";

/// A client's line for one request: the reply, or `ERR reason` (and
/// `failed` set); flushed at once, so a caller reading along sees it.
fn print_result(r: Result<String, String>, failed: &mut bool) {
    let line = r.unwrap_or_else(|e| {
        *failed = true;
        format!("ERR {e}")
    });
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

// ------------------------------------------------------------------- servers

/// Bind every address first (so a bad one fails the start), announce them,
/// then serve each on its own thread.
fn serve_all<S: Send + 'static>(
    listen: &[String],
    bind: impl Fn(&str) -> io::Result<(S, String)>,
    serve: impl Fn(S) -> io::Result<()> + Send + Sync + Clone + 'static,
) -> io::Result<()> {
    let mut socks = Vec::new();
    for l in listen {
        let (sock, url) =
            bind(l).map_err(|e| io::Error::new(e.kind(), format!("bind {l}: {e}")))?;
        socks.push((sock, url));
    }
    for (_, url) in &socks {
        println!("listening on {url}");
    }
    io::stdout().flush()?;
    let threads: Vec<_> = socks
        .into_iter()
        .map(|(sock, _)| {
            let serve = serve.clone();
            thread::spawn(move || serve(sock))
        })
        .collect();
    for t in threads {
        t.join()
            .map_err(|_| io::Error::other("server thread panicked"))??;
    }
    Ok(())
}

/// Entry point of the `xvs-testsrv` binary; returns the exit code.
pub fn main_with_args<S: AsRef<str>>(args: &[S]) -> i32 {
    let cmd = match parse_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xvs-testsrv: {e}\n{USAGE}");
            return 2;
        }
    };
    let served = match cmd {
        Cmd::Http { listen, name } => http_servers(&listen, &name),
        Cmd::UdpEcho { listen, name } => udp_echo_servers(&listen, &name),
        Cmd::UdpSink { listen, name: _ } => udp_sinks(&listen),
        Cmd::Sctp { listen, name } => sctp_servers(&listen, &name),
        Cmd::Get {
            url,
            count,
            timeout_ms,
            keepalive,
            sources,
        } => return http_get(url, count, timeout_ms, keepalive, &sources),
        Cmd::Udp {
            addr,
            count,
            timeout_ms,
            payload,
            new_conn,
            sources,
        } => return udp_client(&addr, count, timeout_ms, &payload, new_conn, &sources),
        Cmd::SctpGet {
            addr,
            count,
            timeout_ms,
            sources,
        } => return sctp_get(&addr, count, timeout_ms, &sources),
    };
    match served {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("xvs-testsrv: {e}");
            1
        }
    }
}
