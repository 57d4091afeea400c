//! `DNS_CHECK`: a minimal hand-written UDP query (keepalived's
//! `check_dns.c`): one question, RD set, a random id; the first datagram
//! with the same id and QR set decides: RCODE 0 is up, anything else down.
//! Datagrams that are too short, carry another id, or are queries are
//! ignored until `connect_timeout`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::{timeout_at, Instant};

use crate::config::{CheckerConfig, DnsCheck};
use crate::Outcome;

/// Encode the query (header + question) for `name`/`qtype` with `id`.
pub(crate) fn make_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    q.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    q.extend_from_slice(&[0; 6]); // AN, NS, AR
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(format!("invalid DNS name {name:?}"));
            }
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // IN
    Ok(q)
}

pub(crate) async fn check(
    cfg: &CheckerConfig,
    d: &DnsCheck,
    target: SocketAddr,
    limit: Duration,
) -> Outcome {
    let fail = |e: String| {
        Outcome::down(format!(
            "DNS_CHECK {target} {} {:?}: {e}",
            d.qtype.name(),
            d.name
        ))
    };
    let id = crate::random_u64() as u16;
    let query = match make_query(id, &d.name, d.qtype.code()) {
        Ok(q) => q,
        Err(e) => return fail(e),
    };
    let bind = cfg
        .bind_addr(target)
        .unwrap_or(SocketAddr::new(super::unspecified(target), 0));
    let sock = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => return fail(format!("bind {bind}: {e}")),
    };
    if let Err(e) = sock.connect(target).await {
        return fail(format!("connect: {e}"));
    }
    let deadline = Instant::now() + limit;
    match timeout_at(deadline, sock.send(&query)).await {
        Ok(Ok(n)) if n == query.len() => {}
        Ok(Ok(_)) => return fail("short write".into()),
        Ok(Err(e)) => return fail(format!("send: {e}")),
        Err(_) => return fail("write timeout".into()),
    }
    let mut buf = [0u8; 4096];
    loop {
        let n = match timeout_at(deadline, sock.recv(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return fail(format!("read: {e}")),
            Err(_) => return fail(format!("read timeout ({limit:?})")),
        };
        if n < 12 {
            continue;
        }
        if u16::from_be_bytes([buf[0], buf[1]]) != id {
            continue;
        }
        let flags = u16::from_be_bytes([buf[2], buf[3]]);
        if flags & 0x8000 == 0 {
            continue;
        }
        let rcode = flags & 0x000f;
        if rcode != 0 {
            return fail(format!("rcode {rcode}"));
        }
        return Outcome::up(format!(
            "DNS_CHECK {target} {} {:?}: NOERROR",
            d.qtype.name(),
            d.name
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding() {
        let q = make_query(0x1234, "example.com.", 6).unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x07example\x03com\x00\x00\x06\x00\x01");
        let root = make_query(1, "", 6).unwrap();
        assert_eq!(&root[12..], b"\x00\x00\x06\x00\x01");
        assert_eq!(make_query(1, ".", 6).unwrap(), root);
        assert!(make_query(1, "a..b", 1).is_err());
    }
}
