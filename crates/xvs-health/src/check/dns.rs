//! `DNS_CHECK` (keepalived's `check_dns.c`): one UDP query with one
//! question, RD set and a random id; the first datagram with the same id
//! and QR set decides: RCODE 0 is up, anything else down. Datagrams that
//! are too short, carry another id, or are queries are ignored until
//! `connect_timeout`. hickory-proto encodes the query and decodes the
//! answer's header; like keepalived, nothing past the header is judged.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Header, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tokio::net::UdpSocket;
use tokio::time::{timeout_at, Instant};

use crate::config::{CheckerConfig, DnsCheck};
use crate::Outcome;

/// Encode the query (header + question, class IN) for `name`/`qtype` with `id`.
pub(crate) fn make_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let invalid = || format!("invalid DNS name {name:?}");
    // keepalived sends the name as written: no IDNA, no lowercasing; an
    // empty name is the root.
    let qname = if name.is_empty() {
        Name::root()
    } else {
        Name::from_ascii(name).map_err(|_| invalid())?
    };
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(qname, RecordType::from(qtype)));
    msg.to_vec().map_err(|_| invalid())
}

/// The header of a datagram that answers query `id`, if it is one.
fn answer_header(id: u16, datagram: &[u8]) -> Option<Header> {
    let header = Header::read(&mut BinDecoder::new(datagram)).ok()?;
    (header.metadata.id == id && header.metadata.message_type == MessageType::Response)
        .then_some(header)
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
        let Some(header) = answer_header(id, &buf[..n]) else {
            continue;
        };
        let rcode = u16::from(header.metadata.response_code);
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
