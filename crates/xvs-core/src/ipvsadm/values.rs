//! Number, address, port and name parsing as in ipvsadm.c / glibc.

use super::command::*;
use crate::model::{svc_flags, Protocol};
use crate::names::Resolver;
use crate::sched::DEFAULT_SCHEDULER;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `string_to_number`: `strtol` base 10 (leading blanks and a sign
/// allowed), the whole string must be consumed, value in `min..=max`.
pub(super) fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: i64 = 0;
    for b in digits.bytes() {
        v = v.checked_mul(10)?.checked_add((b - b'0') as i64)?;
    }
    let v = if neg { -v } else { v };
    (min..=max).contains(&v).then_some(v)
}

/// glibc `atoi`: `(int) strtol(s, NULL, 10)`: leading blanks, a sign,
/// the digits that follow (saturated at the `long` range), 0 without any,
/// then cut to 32 bits.
pub(super) fn atoi(s: &str) -> i64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        let d = (b - b'0') as i64;
        v = match v.checked_mul(10).and_then(|x| {
            if neg {
                x.checked_sub(d)
            } else {
                x.checked_add(d)
            }
        }) {
            Some(x) => x,
            None => {
                v = if neg { i64::MIN } else { i64::MAX };
                break;
            }
        };
    }
    v as i32 as i64
}

/// glibc `inet_aton`: 1 to 4 parts, each decimal, octal (`0`) or hex
/// (`0x`); trailing text is allowed after whitespace.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut parts: Vec<u64> = Vec::new();
    loop {
        if !b.get(i).is_some_and(|c| c.is_ascii_digit()) {
            return None;
        }
        let mut base = 10;
        if b[i] == b'0' {
            base = 8;
            i += 1;
            if matches!(b.get(i), Some(b'x') | Some(b'X')) {
                base = 16;
                i += 1;
            }
        }
        let mut val: u64 = 0;
        while let Some(&c) = b.get(i) {
            let d = match c {
                b'0'..=b'9' => {
                    if base == 8 && c >= b'8' {
                        return None;
                    }
                    (c - b'0') as u64
                }
                b'a'..=b'f' if base == 16 => (c - b'a' + 10) as u64,
                b'A'..=b'F' if base == 16 => (c - b'A' + 10) as u64,
                _ => break,
            };
            val = val * base + d;
            if val > 0xffff_ffff {
                return None;
            }
            i += 1;
        }
        if b.get(i) == Some(&b'.') {
            if parts.len() >= 3 || val > 0xff {
                return None;
            }
            parts.push(val);
            i += 1;
            continue;
        }
        parts.push(val);
        break;
    }
    if let Some(&c) = b.get(i) {
        if !c.is_ascii_whitespace() {
            return None;
        }
    }
    let n = parts.len();
    let last = parts[n - 1];
    let limit = [0xffff_ffffu64, 0xff_ffff, 0xffff, 0xff][n - 1];
    if last > limit {
        return None;
    }
    let mut v: u64 = 0;
    for (k, p) in parts[..n - 1].iter().enumerate() {
        v |= p << (24 - 8 * k);
    }
    Some(Ipv4Addr::from((v | last) as u32))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Proto {
    None,
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    pub(super) fn model(self) -> Option<Protocol> {
        match self {
            Proto::Tcp => Some(Protocol::Tcp),
            Proto::Udp => Some(Protocol::Udp),
            Proto::Sctp => Some(Protocol::Sctp),
            Proto::None => None,
        }
    }
}

/// `parse_service`: `None` is SERVICE_NONE; otherwise the address and the
/// port when one was given.
pub(super) fn parse_service(
    buf: &str,
    proto: Proto,
    names: &dyn Resolver,
) -> Option<(IpAddr, Option<u16>)> {
    if buf.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut host = buf;
    let mut portp: Option<&str> = None;
    if let Some(inner) = buf.strip_prefix('[') {
        let close = inner.find(']')?;
        host = &inner[..close];
        let after = &inner[close + 1..];
        portp = Some(after.strip_prefix(':')?);
    }
    if let Ok(a6) = host.parse::<Ipv6Addr>() {
        // The bracket form keeps its port; a bare IPv6 literal has none.
        let port = match portp {
            Some(p) => Some(parse_port(p, proto, names)?),
            None => None,
        };
        return Some((IpAddr::V6(a6), port));
    }
    // As in ipvsadm, the port is searched again in what is left of the
    // string, so "[1.2.3.4]:80" loses its port.
    portp = None;
    if let Some(idx) = host.rfind(':') {
        portp = Some(&host[idx + 1..]);
        host = &host[..idx];
    }
    let addr = inet_aton(host).or_else(|| names.host_addr(host))?;
    let port = match portp {
        Some(p) => Some(parse_port(p, proto, names)?),
        None => None,
    };
    Some((IpAddr::V4(addr), port))
}

pub(super) fn parse_port(p: &str, proto: Proto, names: &dyn Resolver) -> Option<u16> {
    if let Some(n) = string_to_number(p, 0, 65535) {
        return Some(n as u16);
    }
    names.service_port(p, proto.model()?)
}

pub(super) fn parse_timeout(buf: Option<&str>, min: i64, max: i64) -> Result<u32, ParseError> {
    let Some(b) = buf else {
        return Ok(DEFAULT_PERSISTENT_TIMEOUT);
    };
    string_to_number(b, min, max)
        .map(|v| v as u32)
        .ok_or_else(|| ParseError::fail(format!("invalid timeout value `{b}' specified")))
}

pub(super) fn parse_fwmark(buf: &str) -> Result<u32, ParseError> {
    match string_to_number(buf, 1, u32::MAX as i64) {
        Some(v) => Ok(v as u32),
        None => Err(ParseError::fail(format!(
            "invalid fwmark value `{buf}' specified"
        ))),
    }
}

pub(super) fn parse_sched_flags(sched: &str, arg: &str) -> Result<u32, ParseError> {
    let sched = if sched.is_empty() {
        DEFAULT_SCHEDULER
    } else {
        sched
    };
    let mut flags = 0;
    let tokens: Vec<&str> = arg.split(',').filter(|t| !t.is_empty()).collect();
    if tokens.is_empty() {
        // strtok finds no token; ipvsadm would dereference NULL here.
        return Err(ParseError::fail("invalid scheduler flag `'"));
    }
    for flag in tokens {
        let (bit, needs) = match flag {
            "flag-1" => (svc_flags::SCHED1, None),
            "flag-2" => (svc_flags::SCHED2, None),
            "flag-3" => (svc_flags::SCHED3, None),
            "sh-fallback" => (svc_flags::SCHED1, Some("sh")),
            "sh-port" => (svc_flags::SCHED2, Some("sh")),
            "mh-fallback" => (svc_flags::SCHED1, Some("mh")),
            "mh-port" => (svc_flags::SCHED2, Some("mh")),
            _ => return Err(ParseError::fail(format!("invalid scheduler flag `{flag}'"))),
        };
        flags |= bit;
        if let Some(s) = needs {
            if s != sched {
                return Err(ParseError::fail(format!(
                    "incompatible scheduler flag `{flag}'"
                )));
            }
        }
    }
    Ok(flags)
}

/// Keeps at most `n` bytes, as `strncpy` into ipvsadm's fixed buffers does.
pub(super) fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
