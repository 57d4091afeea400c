//! The xvs wire layer: the one place that reads and writes frame bytes
//! (test fixtures, scheduler tests, benchmarks and fuzzers build on it).
//!
//! Two levels per protocol, as smoltcp's `wire` has them:
//!
//! * a *view* (`EthernetFrame`, `Ipv4Packet`, `TcpPacket`, …) over any
//!   `T: AsRef<[u8]>`, made only by `new_checked`, which validates the
//!   lengths once so that every getter and setter afterwards is total:
//!   no input, however malformed, makes them panic;
//! * a *representation* (`EthernetRepr`, `Ipv4Repr`, `TcpRepr`, …): the
//!   header's meaning, with `parse` (validating, checksums included) and
//!   `emit` (writing the header and its checksum over a payload already in
//!   place), plus `to_vec` to build a whole packet in one call.
//!
//! Checksum code is family-generic ([`IpAddress`] and
//! [`checksum::pseudo_header`]) so that IPv6 needs a header module, not a
//! second TCP/UDP.

#[macro_use]
mod view;

pub mod checksum;
pub mod ethernet;
pub mod gue;
pub mod icmpv4;
pub mod icmpv6;
mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod sctp;
pub mod sip;
pub mod tcp;
pub mod udp;

pub use ethernet::{EtherType, EthernetAddress, EthernetRepr, Frame as EthernetFrame};
pub use gue::{GueRepr, Packet as GuePacket};
pub use icmpv4::{Icmpv4Repr, Packet as Icmpv4Packet};
pub use icmpv6::{Icmpv6Repr, Packet as Icmpv6Packet};
pub use ip::{IpAddress, IpProtocol};
pub use ipv4::{Ipv4Repr, Packet as Ipv4Packet};
pub use ipv6::{Ipv6Repr, Packet as Ipv6Packet};
pub use sctp::{Packet as SctpPacket, SctpRepr};
pub use tcp::{Packet as TcpPacket, TcpFlags, TcpOption, TcpRepr};
pub use udp::{Packet as UdpPacket, UdpChecksum, UdpRepr};

/// What is wrong with a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header or a length field says.
    #[error("truncated")]
    Truncated,
    /// A field holds a value the protocol does not allow.
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// A checksum does not verify.
    #[error("bad {0} checksum")]
    Checksum(&'static str),
}

/// Result of the wire layer.
pub type Result<T> = std::result::Result<T, Error>;

/// Source and destination port of a TCP or UDP header: its first 4
/// bytes, all that an ICMP error is sure to quote after the IP header.
pub fn ports(l4: &[u8]) -> Result<(u16, u16)> {
    match l4 {
        [a, b, c, d, ..] => Ok((u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))),
        _ => Err(Error::Truncated),
    }
}

/// What `new_checked` checks of every header with a length field: the
/// fixed part is in the buffer (only then is `announced` called), the
/// announced length is at least the fixed part (else `below`) and no
/// longer than the buffer.
fn check_len(
    buf_len: usize,
    fixed: usize,
    announced: impl FnOnce() -> usize,
    below: &'static str,
) -> Result<()> {
    if buf_len < fixed {
        return Err(Error::Truncated);
    }
    let n = announced();
    if n < fixed {
        return Err(Error::Malformed(below));
    }
    if n > buf_len {
        return Err(Error::Truncated);
    }
    Ok(())
}

/// `buf[range]`, or an empty slice where a setter has made a length field
/// point past the buffer (views stay total after any setter).
fn clamp(buf: &[u8], start: usize, end: usize) -> &[u8] {
    let end = end.min(buf.len());
    buf.get(start.min(end)..end).unwrap_or(&[])
}

/// Mutable [`clamp`].
fn clamp_mut(buf: &mut [u8], start: usize, end: usize) -> &mut [u8] {
    let end = end.min(buf.len());
    let start = start.min(end);
    &mut buf[start..end]
}

/// Big-endian u16 at `at` (callers have checked the length).
fn be16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

fn set_be16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn be32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// Checks that every `parse` in `parse_all` of every prefix of `bytes`
/// returns, and that prefixes shorter than `min` are errors.
#[cfg(test)]
fn every_prefix(bytes: &[u8], min: usize, parse_all: impl Fn(&[u8]) -> Result<()>) {
    for n in 0..bytes.len() {
        let r = parse_all(&bytes[..n]);
        if n < min {
            assert!(r.is_err(), "prefix of {n} bytes accepted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_of_a_quote() {
        assert_eq!(ports(&[0x17, 0x70, 0, 80, 9]), Ok((6000, 80)));
        assert_eq!(ports(&[0x17, 0x70, 0]), Err(Error::Truncated));
    }

    /// Random bytes of every length through every view and parser:
    /// errors are fine, panics are not.
    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let (s, d) = (
            IpAddress::from(std::net::Ipv4Addr::LOCALHOST),
            IpAddress::from(std::net::Ipv4Addr::BROADCAST),
        );
        for round in 0..20_000usize {
            let len = round % 120;
            let b: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if let Ok(f) = EthernetFrame::new_checked(&b[..]) {
                let _ = EthernetRepr::parse(&f);
            }
            if let Ok(p) = Ipv4Packet::new_checked(&b[..]) {
                let _ = (Ipv4Repr::parse(&p), p.options(), p.payload());
            }
            if let Ok(p) = TcpPacket::new_checked(&b[..]) {
                let _ = TcpRepr::parse(&p, &s, &d);
                let _ = tcp::options(p.options()).count();
            }
            if let Ok(p) = UdpPacket::new_checked(&b[..]) {
                let _ = UdpRepr::parse(&p, &s, &d);
            }
            if let Ok(p) = Icmpv4Packet::new_checked(&b[..]) {
                let _ = (Icmpv4Repr::parse(&p), p.quoted().map(|q| q.payload().len()));
            }
            if let Ok(p) = GuePacket::new_checked(&b[..]) {
                let _ = (GueRepr::parse(&p), p.payload());
            }
        }
    }
}
