//! The HTTP client: `get` with keep-alive or a new connection per request.

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::cli::Url;
use super::http::{check_slow_body, io_reason, read_response, summary};

pub(super) fn resolve(authority: &str) -> Result<SocketAddr, String> {
    authority
        .to_socket_addrs()
        .map_err(|e| format!("resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolve {authority}: no address"))
}

pub(super) struct HttpClient {
    pub(super) url: Url,
    pub(super) addr: SocketAddr,
    pub(super) timeout: Duration,
    pub(super) keepalive: bool,
    pub(super) conn: Option<BufReader<TcpStream>>,
    /// Where the next connection is sent from (None: any).
    pub(super) source: Option<SocketAddr>,
}

/// A TCP connection to `to` from `from` (any port), within `timeout`.
pub(super) fn connect_from(
    from: Option<SocketAddr>,
    to: &SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let Some(from) = from else {
        return TcpStream::connect_timeout(to, timeout);
    };
    let s = socket2::Socket::new(
        socket2::Domain::for_address(*to),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // A fixed source port is reused by later runs (other destinations).
    s.set_reuse_address(true)?;
    s.bind(&from.into())?;
    s.connect_timeout(&(*to).into(), timeout)?;
    Ok(s.into())
}

impl HttpClient {
    pub(super) fn request(&mut self) -> Result<String, String> {
        if self.conn.is_none() {
            let s = connect_from(self.source, &self.addr, self.timeout).map_err(io_reason)?;
            s.set_read_timeout(Some(self.timeout)).map_err(io_reason)?;
            s.set_write_timeout(Some(self.timeout)).map_err(io_reason)?;
            let _ = s.set_nodelay(true);
            self.conn = Some(BufReader::new(s));
        }
        let conn = self.conn.as_mut().expect("connected above");
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: xvs-testsrv\r\nConnection: {}\r\n\r\n",
            self.url.path,
            self.url.authority(),
            if self.keepalive {
                "keep-alive"
            } else {
                "close"
            }
        );
        let result = conn
            .get_mut()
            .write_all(req.as_bytes())
            .map_err(io_reason)
            .and_then(|_| read_response(conn));
        match result {
            Ok((head, body)) => {
                if !(self.keepalive && head.keep_alive()) {
                    self.conn = None;
                }
                if head.status != 200 {
                    return Err(format!("HTTP {} {}", head.status, head.reason));
                }
                if self.url.path.starts_with("/slow/") {
                    check_slow_body(&body)?;
                }
                Ok(summary(&body))
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }
}

pub(super) fn http_get(
    url: Url,
    count: u64,
    timeout_ms: u64,
    keepalive: bool,
    sources: &[SocketAddr],
) -> i32 {
    let timeout = Duration::from_millis(timeout_ms);
    let addr = match resolve(&url.authority()) {
        Ok(a) => a,
        Err(e) => {
            for _ in 0..count {
                println!("ERR {e}");
            }
            return 1;
        }
    };
    let mut client = HttpClient {
        url,
        addr,
        timeout,
        keepalive,
        conn: None,
        source: None,
    };
    let mut failed = false;
    let mut next = 0usize;
    for _ in 0..count {
        if client.conn.is_none() && !sources.is_empty() {
            client.source = Some(sources[next % sources.len()]);
            next += 1;
        }
        super::print_result(client.request(), &mut failed);
    }
    i32::from(failed)
}
