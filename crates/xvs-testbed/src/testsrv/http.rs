//! HTTP/1.1 heads and bodies: reading, parsing, building, checking.

use std::io::{self, BufRead, Read};

use super::{MAX_BODY, MAX_HEAD};

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

pub(super) fn has_token(v: &str, tok: &str) -> bool {
    v.split(',').any(|t| t.trim() == tok)
}

pub(super) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub(super) fn content_length(headers: &[(String, String)]) -> Result<usize, String> {
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

pub(super) fn parse_headers<'a>(
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

pub(super) fn parse_version(v: &str) -> Result<u8, String> {
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
pub(super) fn slow_params(path: &str) -> Option<(usize, u64)> {
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

pub(super) fn io_reason(e: io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timeout".into(),
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        io::ErrorKind::UnexpectedEof => "unexpected EOF".into(),
        _ => e.to_string(),
    }
}
