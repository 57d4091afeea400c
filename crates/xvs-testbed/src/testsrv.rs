//! `xvs-testsrv`: tiny HTTP/UDP servers and clients for tests and the demo.
//!
//! Everything here is std only. The pure parts (argument grammar, URL and
//! HTTP head parsing) are unit tested; the binary in `src/bin/xvs-testsrv.rs`
//! only calls [`main_with_args`].
//!
//! ```text
//! xvs-testsrv http     --listen ADDR:PORT [--listen ADDR:PORT]... --name NAME
//! xvs-testsrv udp-echo --listen ADDR:PORT [--listen ADDR:PORT]... --name NAME
//! xvs-testsrv udp-sink --listen ADDR:PORT [--listen ADDR:PORT]... --name NAME
//! xvs-testsrv get URL  [--count N] [--timeout-ms T] [--new-conn|--keepalive]
//! xvs-testsrv udp ADDR:PORT [--count N] [--timeout-ms T] [--payload P] [--new-conn]
//! ```
//!
//! `--listen` may repeat. A UDP socket bound to `0.0.0.0` answers from the
//! host's primary address, which a client talking to a secondary address
//! (a VIP) rejects: bind each such address explicitly instead.
//!
//! Clients print one line per request: the reply (HTTP body trimmed, or the
//! UDP datagram) or `ERR <reason>`. They exit 0 when every request got an
//! answer, 1 otherwise, 2 on a usage error.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

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
  xvs-testsrv get URL  [--count N] [--timeout-ms T] [--new-conn|--keepalive]
                       [--source ADDR[:PORT],...]
  xvs-testsrv udp ADDR:PORT [--count N] [--timeout-ms T] [--payload P] [--new-conn]
                       [--source ADDR[:PORT],...]
--source: the local addresses (and ports) to send from, one connection after
the other in turn.";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Http {
        listen: Vec<String>,
        name: String,
    },
    UdpEcho {
        listen: Vec<String>,
        name: String,
    },
    /// Binds and never reads: datagrams fill the socket's buffer and are
    /// then dropped there (an overloaded UDP service), without the ICMP
    /// port-unreachable a closed port costs the host per datagram.
    UdpSink {
        listen: Vec<String>,
        name: String,
    },
    Get {
        url: Url,
        count: u64,
        timeout_ms: u64,
        keepalive: bool,
        /// Local addresses (port 0: any) to send from, one connection
        /// after the other in turn (empty: the kernel's choice).
        sources: Vec<SocketAddr>,
    },
    Udp {
        addr: String,
        count: u64,
        timeout_ms: u64,
        payload: String,
        new_conn: bool,
        /// As for `Get`.
        sources: Vec<SocketAddr>,
    },
}

/// `http://host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    /// `host:port`, with IPv6 literals bracketed.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parse an `http://` URL (no userinfo, no https).
pub fn parse_url(s: &str) -> Result<Url, String> {
    let rest = s
        .strip_prefix("http://")
        .ok_or_else(|| format!("unsupported URL {s:?}: only http:// is supported"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if hostport.is_empty() {
        return Err(format!("URL {s:?} has no host"));
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let end = v6
            .find(']')
            .ok_or_else(|| format!("URL {s:?}: unterminated IPv6 literal"))?;
        let host = &v6[..end];
        let after = &v6[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(p, s)?,
            None if after.is_empty() => 80,
            None => return Err(format!("URL {s:?}: junk after IPv6 literal")),
        };
        (host.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), parse_port(p, s)?),
            None => (hostport.to_string(), 80),
        }
    };
    if host.is_empty() {
        return Err(format!("URL {s:?} has no host"));
    }
    Ok(Url {
        host,
        port,
        path: path.to_string(),
    })
}

fn parse_port(p: &str, url: &str) -> Result<u16, String> {
    p.parse::<u16>()
        .map_err(|_| format!("URL {url:?}: bad port {p:?}"))
}

fn parse_num(flag: &str, v: &str, max: u64) -> Result<u64, String> {
    let n: u64 = v
        .parse()
        .map_err(|_| format!("{flag}: expected a number, got {v:?}"))?;
    if n == 0 || n > max {
        return Err(format!("{flag}: {n} out of range 1..={max}"));
    }
    Ok(n)
}

/// Parse the arguments after the program name.
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Cmd, String> {
    let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
    let (sub, rest) = args.split_first().ok_or("missing subcommand")?;
    let mut listen: Vec<String> = Vec::new();
    let mut name = None;
    let mut count = 1u64;
    let mut timeout_ms = 2000u64;
    let mut keepalive: Option<bool> = None;
    let mut payload = "ping".to_string();
    let mut sources: Vec<SocketAddr> = Vec::new();
    let mut positional: Vec<&str> = Vec::new();
    let mut it = rest.iter();
    while let Some(&a) = it.next() {
        let mut value = |flag: &str| -> Result<&str, String> {
            it.next()
                .copied()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match a {
            "--listen" => listen.push(value(a)?.to_string()),
            "--name" => name = Some(value(a)?.to_string()),
            "--count" | "-n" => count = parse_num(a, value(a)?, MAX_COUNT)?,
            "--timeout-ms" => timeout_ms = parse_num(a, value(a)?, 600_000)?,
            "--payload" => payload = value(a)?.to_string(),
            "--source" => {
                for addr in value(a)?.split(',') {
                    sources.push(parse_source(addr)?);
                }
            }
            "--new-conn" => {
                if keepalive == Some(true) {
                    return Err("--new-conn and --keepalive exclude each other".into());
                }
                keepalive = Some(false)
            }
            "--keepalive" => {
                if keepalive == Some(false) {
                    return Err("--new-conn and --keepalive exclude each other".into());
                }
                keepalive = Some(true)
            }
            f if f.starts_with("--") => return Err(format!("unknown option {f}")),
            p => positional.push(p),
        }
    }
    let need =
        |v: Option<String>, flag: &str| v.ok_or_else(|| format!("{sub}: {flag} is required"));
    let no_positional = |positional: &[&str]| {
        if positional.is_empty() {
            Ok(())
        } else {
            Err(format!("{sub}: unexpected argument {:?}", positional[0]))
        }
    };
    let one_positional = |positional: &[&str], what: &str| match positional {
        [p] => Ok(p.to_string()),
        [] => Err(format!("{sub}: {what} is required")),
        [_, x, ..] => Err(format!("{sub}: unexpected argument {x:?}")),
    };
    match *sub {
        "http" | "udp-echo" | "udp-sink" => {
            no_positional(&positional)?;
            if listen.is_empty() {
                return Err(format!("{sub}: --listen is required"));
            }
            for l in &listen {
                l.parse::<SocketAddr>()
                    .map_err(|_| format!("--listen: expected ADDR:PORT, got {l:?}"))?;
            }
            let name = need(name, "--name")?;
            Ok(match *sub {
                "http" => Cmd::Http { listen, name },
                "udp-echo" => Cmd::UdpEcho { listen, name },
                _ => Cmd::UdpSink { listen, name },
            })
        }
        "get" => {
            let url = parse_url(&one_positional(&positional, "URL")?)?;
            Ok(Cmd::Get {
                url,
                count,
                timeout_ms,
                keepalive: keepalive.unwrap_or(false),
                sources,
            })
        }
        "udp" => {
            let addr = one_positional(&positional, "ADDR:PORT")?;
            Ok(Cmd::Udp {
                addr,
                count,
                timeout_ms,
                payload,
                new_conn: keepalive == Some(false),
                sources,
            })
        }
        other => Err(format!("unknown subcommand {other:?}")),
    }
}

// ---------------------------------------------------------------- HTTP heads

/// Read one HTTP head (up to and including the empty line). `Ok(None)` on a
/// clean EOF before the first byte.
pub fn read_head<R: BufRead>(r: &mut R) -> io::Result<Option<String>> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = r
            .by_ref()
            .take((MAX_HEAD + 1 - head.len().min(MAX_HEAD)) as u64)
            .read_line(&mut line)?;
        if n == 0 {
            if head.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside the head",
            ));
        }
        head.push_str(&line);
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
        if line == "\r\n" || line == "\n" {
            if head.len() == line.len() {
                // Tolerate stray empty lines before a request (RFC 9112 2.2).
                head.clear();
                continue;
            }
            return Ok(Some(head));
        }
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Whether the connection stays open after the response.
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").map(|v| v.to_ascii_lowercase());
        match conn.as_deref() {
            Some(v) if has_token(v, "close") => false,
            Some(v) if has_token(v, "keep-alive") => true,
            _ => self.minor >= 1,
        }
    }

    pub fn content_length(&self) -> Result<usize, String> {
        content_length(&self.headers)
    }
}

fn has_token(v: &str, tok: &str) -> bool {
    v.split(',').any(|t| t.trim() == tok)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn content_length(headers: &[(String, String)]) -> Result<usize, String> {
    match header(headers, "content-length") {
        None => Ok(0),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| format!("bad Content-Length {v:?}"))
            .and_then(|n| {
                if n > MAX_BODY {
                    Err(format!("body too large ({n} bytes)"))
                } else {
                    Ok(n)
                }
            }),
    }
}

fn parse_headers<'a>(
    lines: impl Iterator<Item = &'a str>,
) -> Result<Vec<(String, String)>, String> {
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        if k.is_empty() || k.contains(' ') {
            return Err(format!("bad header name {k:?}"));
        }
        headers.push((k.to_string(), v.trim().to_string()));
    }
    Ok(headers)
}

fn parse_version(v: &str) -> Result<u8, String> {
    match v {
        "HTTP/1.1" => Ok(1),
        "HTTP/1.0" => Ok(0),
        _ => Err(format!("unsupported version {v:?}")),
    }
}

/// Parse a request head as returned by [`read_head`].
pub fn parse_request_head(head: &str) -> Result<Request, String> {
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().ok_or("empty request")?;
    let mut parts = first.split(' ');
    let (method, path, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(p), Some(v), None) if !m.is_empty() && !p.is_empty() => (m, p, v),
        _ => return Err(format!("bad request line {first:?}")),
    };
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        minor: parse_version(version)?,
        headers: parse_headers(lines)?,
    })
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub minor: u8,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Whether the server keeps the connection open.
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").map(|v| v.to_ascii_lowercase());
        match conn.as_deref() {
            Some(v) if has_token(v, "close") => false,
            Some(v) if has_token(v, "keep-alive") => true,
            _ => self.minor >= 1,
        }
    }
}

/// Parse a response head as returned by [`read_head`].
pub fn parse_response_head(head: &str) -> Result<ResponseHead, String> {
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().ok_or("empty response")?;
    let mut parts = first.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| format!("bad status line {first:?}"))?;
    Ok(ResponseHead {
        minor: parse_version(version)?,
        status,
        reason: parts.next().unwrap_or_default().to_string(),
        headers: parse_headers(lines)?,
    })
}

/// Longest padding `GET /pad/N` adds (the client reads at most
/// [`MAX_BODY`]).
pub const MAX_PAD: usize = MAX_BODY - 1024;

/// Byte `i` of a `/slow/` body after its first line: a pattern the
/// client checks, so a transfer that lost or reordered data fails.
pub fn slow_byte(i: usize) -> u8 {
    b'a' + (i % 26) as u8
}

/// `/slow/BYTES/MS`: the body's pattern length and how long to take.
fn slow_params(path: &str) -> Option<(usize, u64)> {
    let (b, ms) = path.strip_prefix("/slow/")?.split_once('/')?;
    Some((
        b.parse::<usize>().ok()?.min(MAX_PAD),
        ms.parse::<u64>().ok()?.min(600_000),
    ))
}

/// Checks a `/slow/` body: the server's name, a newline, then the pattern.
pub fn check_slow_body(body: &[u8]) -> Result<(), String> {
    let start = body
        .iter()
        .position(|&b| b == b'\n')
        .map_or(body.len(), |p| p + 1);
    match body[start..]
        .iter()
        .enumerate()
        .find(|(i, b)| **b != slow_byte(*i))
    {
        Some((i, _)) => Err(format!("corrupt body at byte {}", start + i)),
        None => Ok(()),
    }
}

/// The server's response to `req`, and whether to keep the connection.
/// The body is the server's name and a newline; `GET /pad/N` adds N dots
/// after it (at most [`MAX_PAD`]), for transfers of many segments.
pub fn build_response(name: &str, req: &Request) -> (Vec<u8>, bool) {
    let mut body = format!("{name}\n");
    if let Some(n) = req.path.strip_prefix("/pad/") {
        let n = n.parse::<usize>().unwrap_or(0).min(MAX_PAD);
        body.push_str(&".".repeat(n));
    }
    let (status, keep) = match req.method.as_str() {
        "GET" | "HEAD" => ("200 OK", req.keep_alive()),
        _ => ("405 Method Not Allowed", false),
    };
    let mut out = format!(
        "HTTP/1.{} {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        req.minor,
        body.len(),
        if keep { "keep-alive" } else { "close" }
    )
    .into_bytes();
    if req.method != "HEAD" {
        out.extend_from_slice(body.as_bytes());
    }
    (out, keep)
}

/// What a client prints of a body: the body trimmed; one longer than 256
/// bytes (`/pad/N`) as its first line and its length, `rs1 (4100 bytes)`.
pub fn summary(body: &[u8]) -> String {
    if body.len() <= 256 {
        return String::from_utf8_lossy(body).trim().to_string();
    }
    let first = body.split(|&b| b == b'\n').next().unwrap_or_default();
    format!(
        "{} ({} bytes)",
        String::from_utf8_lossy(first).trim(),
        body.len()
    )
}

/// Read one response (head and body) from `r`.
pub fn read_response<R: BufRead>(r: &mut R) -> Result<(ResponseHead, Vec<u8>), String> {
    let head = read_head(r)
        .map_err(io_reason)?
        .ok_or("connection closed before a response")?;
    let head = parse_response_head(&head)?;
    if head
        .header("transfer-encoding")
        .is_some_and(|v| !v.eq_ignore_ascii_case("identity"))
    {
        return Err("chunked responses are not supported".into());
    }
    let mut body = Vec::new();
    if head.header("content-length").is_some() {
        let n = content_length(&head.headers)?;
        body.resize(n, 0);
        r.read_exact(&mut body).map_err(io_reason)?;
    } else {
        r.take(MAX_BODY as u64)
            .read_to_end(&mut body)
            .map_err(io_reason)?;
    }
    Ok((head, body))
}

fn io_reason(e: io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timeout".into(),
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        io::ErrorKind::UnexpectedEof => "unexpected EOF".into(),
        _ => e.to_string(),
    }
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

fn http_servers(listen: &[String], name: &str) -> io::Result<()> {
    let name: Arc<str> = Arc::from(name);
    serve_all(
        listen,
        |l| {
            let s = TcpListener::bind(l)?;
            let url = format!("http://{}", s.local_addr()?);
            Ok((s, url))
        },
        move |s| http_serve(s, &name),
    )
}

fn bind_udp(l: &str) -> io::Result<(UdpSocket, String)> {
    let s = UdpSocket::bind(l)?;
    let url = format!("udp://{}", s.local_addr()?);
    Ok((s, url))
}

fn udp_sinks(listen: &[String]) -> io::Result<()> {
    serve_all(listen, bind_udp, |s| loop {
        // Holds the socket open, never reads it.
        thread::sleep(Duration::from_secs(3600));
        let _ = &s;
    })
}

fn udp_echo_servers(listen: &[String], name: &str) -> io::Result<()> {
    let name: Arc<str> = Arc::from(name);
    serve_all(listen, bind_udp, move |s| udp_echo_serve(s, &name))
}

fn http_serve(listener: TcpListener, name: &str) -> io::Result<()> {
    let name: Arc<str> = Arc::from(name);
    let live = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                eprintln!("accept: {e}");
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if live.load(Ordering::Relaxed) >= MAX_CONNS {
            continue; // dropped: closed at once
        }
        live.fetch_add(1, Ordering::Relaxed);
        let (name, live2) = (name.clone(), live.clone());
        let spawned = thread::Builder::new().spawn(move || {
            let _ = serve_conn(conn, &name);
            live2.fetch_sub(1, Ordering::Relaxed);
        });
        if spawned.is_err() {
            live.fetch_sub(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

fn serve_conn(conn: TcpStream, name: &str) -> io::Result<()> {
    conn.set_read_timeout(Some(IDLE_TIMEOUT))?;
    conn.set_write_timeout(Some(IDLE_TIMEOUT))?;
    let _ = conn.set_nodelay(true);
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    loop {
        let Some(head) = read_head(&mut r)? else {
            return Ok(());
        };
        let req = match parse_request_head(&head) {
            Ok(req) => req,
            Err(e) => {
                let msg = format!("{e}\n");
                write!(
                    w,
                    "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
                    msg.len()
                )?;
                return Ok(());
            }
        };
        match req.content_length() {
            Ok(n) => {
                io::copy(&mut r.by_ref().take(n as u64), &mut io::sink())?;
            }
            Err(_) => return Ok(()),
        }
        let (resp, keep) = build_response(name, &req);
        if let (Some((n, ms)), "GET") = (slow_params(&req.path), req.method.as_str()) {
            write_slow(&mut w, name, &req, n, ms)?;
            return Ok(());
        }
        w.write_all(&resp)?;
        if !keep {
            return Ok(());
        }
    }
}

/// A `/slow/N/MS` response: the name line and N pattern bytes, written in
/// 1 KiB pieces spread evenly over MS milliseconds (a long transfer);
/// the connection closes after it.
fn write_slow(w: &mut TcpStream, name: &str, req: &Request, n: usize, ms: u64) -> io::Result<()> {
    let mut body = format!("{name}\n").into_bytes();
    body.extend((0..n).map(slow_byte));
    write!(
        w,
        "HTTP/1.{} 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        req.minor,
        body.len()
    )?;
    let pieces = body.chunks(1024).count().max(1) as u64;
    let start = std::time::Instant::now();
    for (k, piece) in body.chunks(1024).enumerate() {
        let due = Duration::from_millis(ms * k as u64 / pieces);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            thread::sleep(wait);
        }
        w.write_all(piece)?;
    }
    Ok(())
}

fn udp_echo_serve(sock: UdpSocket, name: &str) -> io::Result<()> {
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

// ------------------------------------------------------------------- clients

fn resolve(authority: &str) -> Result<SocketAddr, String> {
    authority
        .to_socket_addrs()
        .map_err(|e| format!("resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolve {authority}: no address"))
}

struct HttpClient {
    url: Url,
    addr: SocketAddr,
    timeout: Duration,
    keepalive: bool,
    conn: Option<BufReader<TcpStream>>,
    /// Where the next connection is sent from (None: any).
    source: Option<SocketAddr>,
}

/// A TCP connection to `to` from `from` (any port), within `timeout`.
/// A `--source` entry: `ADDR` (any port) or `ADDR:PORT`, `[V6]:PORT`.
fn parse_source(s: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 0));
    }
    s.parse()
        .map_err(|_| format!("--source: {s:?} is not an address or address:port"))
}

fn connect_from(
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
    fn request(&mut self) -> Result<String, String> {
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

fn http_get(url: Url, count: u64, timeout_ms: u64, keepalive: bool, sources: &[SocketAddr]) -> i32 {
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
    let stdout = io::stdout();
    let mut next = 0usize;
    for _ in 0..count {
        if client.conn.is_none() && !sources.is_empty() {
            client.source = Some(sources[next % sources.len()]);
            next += 1;
        }
        let line = match client.request() {
            Ok(body) => body,
            Err(e) => {
                failed = true;
                format!("ERR {e}")
            }
        };
        let mut out = stdout.lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    i32::from(failed)
}

fn udp_client(
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
            Ok(n) => String::from_utf8_lossy(&buf[..n]).trim().to_string(),
            Err(e) => {
                failed = true;
                format!("ERR {}", io_reason(e))
            }
        };
        println!("{line}");
    }
    i32::from(failed)
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
    };
    match served {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("xvs-testsrv: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

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
        let raw = "\r\nGET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /b HTTP/1.0\nHost: y\n\n";
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
}
