//! ICMPv6 messages: errors (every type below 128, as IPVS reads them)
//! quoting an IPv6 packet, and the rest. Unlike ICMPv4 the checksum
//! covers a pseudo-header, so parsing and emitting take the addresses.

use crate::ipv6::Packet as Ipv6Packet;
use crate::{checksum, clamp, Error, IpAddress, IpProtocol, Result};
use std::net::Ipv6Addr;

/// Length of the ICMPv6 header (type, code, checksum, 4 more bytes).
pub const HEADER_LEN: usize = 8;

/// Destination unreachable.
pub const DST_UNREACH: u8 = 1;
/// Packet too big (the MTU in bytes 4..8).
pub const PKT_TOOBIG: u8 = 2;
/// Time exceeded.
pub const TIME_EXCEED: u8 = 3;
/// Parameter problem.
pub const PARAMPROB: u8 = 4;
/// Echo request.
pub const ECHO_REQUEST: u8 = 128;
/// Echo reply.
pub const ECHO_REPLY: u8 = 129;
/// Destination-unreachable code: port unreachable.
pub const PORT_UNREACH: u8 = 4;

/// Whether a type is an error message (`ICMPV6_INFOMSG_MASK` clear): IPVS
/// looks for a quoted connection in every one of them.
pub fn is_error(msg_type: u8) -> bool {
    msg_type & 0x80 == 0
}

view!(
    /// A checked view of an ICMPv6 message (the upper-layer payload).
    Packet
);

fields!(Packet {
    /// Message type.
    msg_type, set_msg_type: u8 = 0;
    /// Code.
    code, set_code: u8 = 1;
    /// Checksum field.
    checksum, set_checksum: u16 = 2;
    /// Bytes 4..8: the MTU of a packet-too-big error, the pointer of a
    /// parameter problem, identifier and sequence of an echo.
    rest_of_header, set_rest_of_header: u32 = 4;
});

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    /// Everything after the header.
    pub fn data(&self) -> &[u8] {
        clamp(self.b(), HEADER_LEN, self.b().len())
    }

    /// The quoted packet of an error message, header-checked.
    pub fn quoted(&self) -> Result<Ipv6Packet<&[u8]>> {
        Ipv6Packet::new_quoted(self.data())
    }

    /// Whether the checksum verifies for a message from `src` to `dst`.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let b = self.b();
        checksum::combine(&[pseudo(src, dst, b.len()), checksum::data(b)]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Computes and writes the checksum for a message from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let sum = checksum::combine(&[pseudo(src, dst, self.b().len()), checksum::data(self.b())]);
        self.set_checksum(!sum);
    }
}

fn pseudo(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> u16 {
    checksum::pseudo_header(
        &IpAddress::V6(src),
        &IpAddress::V6(dst),
        IpProtocol::Icmpv6,
        len as u32,
    )
}

/// An ICMPv6 message's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv6Repr<'a> {
    /// An error (type below 128) quoting the start of a packet.
    Error {
        /// Type.
        msg_type: u8,
        /// Code.
        code: u8,
        /// Bytes 4..8 (the MTU of packet too big).
        rest: u32,
        /// The quoted IPv6 packet (its fixed header at least).
        quote: &'a [u8],
    },
    /// An informational message (128 and above), as it is.
    Info {
        /// Type.
        msg_type: u8,
        /// Code.
        code: u8,
        /// Bytes 4..8.
        rest: u32,
        /// Data.
        data: &'a [u8],
    },
}

impl<'a> Icmpv6Repr<'a> {
    /// Reads `packet`, sent from `src` to `dst`, after verifying its
    /// checksum; an error must quote a whole fixed IPv6 header.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) -> Result<Self> {
        let buf: &'a [u8] = packet.buffer.as_ref();
        if !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum("ICMPv6"));
        }
        let data = clamp(buf, HEADER_LEN, buf.len());
        let (msg_type, code, rest) = (packet.msg_type(), packet.code(), packet.rest_of_header());
        if is_error(msg_type) {
            Ipv6Packet::new_quoted(data)?;
            Ok(Icmpv6Repr::Error {
                msg_type,
                code,
                rest,
                quote: data,
            })
        } else {
            Ok(Icmpv6Repr::Info {
                msg_type,
                code,
                rest,
                data,
            })
        }
    }

    /// Packet too big, telling `mtu`, quoting `quote`.
    pub fn packet_too_big(mtu: u32, quote: &'a [u8]) -> Self {
        Icmpv6Repr::Error {
            msg_type: PKT_TOOBIG,
            code: 0,
            rest: mtu,
            quote,
        }
    }

    /// The message's length.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Icmpv6Repr::Error { quote, .. } => quote.len(),
                Icmpv6Repr::Info { data, .. } => data.len(),
            }
    }

    /// The message from `src` to `dst`, checksum included.
    pub fn to_vec(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let (t, c, r, body) = match *self {
            Icmpv6Repr::Error {
                msg_type,
                code,
                rest,
                quote,
            } => (msg_type, code, rest, quote),
            Icmpv6Repr::Info {
                msg_type,
                code,
                rest,
                data,
            } => (msg_type, code, rest, data),
        };
        let mut buf = vec![0u8; HEADER_LEN];
        buf.extend_from_slice(body);
        let mut p = Packet {
            buffer: &mut buf[..],
        };
        p.set_msg_type(t);
        p.set_code(c);
        p.set_rest_of_header(r);
        p.fill_checksum(src, dst);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipv6::Ipv6Repr;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn packet_too_big_round_trips_and_verifies() {
        let inner = Ipv6Repr::new(a("2001:db8::2"), a("2001:db8:1::10"), IpProtocol::Tcp, 63)
            .to_vec(&[0u8; 20])
            .unwrap();
        let (src, dst) = (a("2001:db8:2::1"), a("2001:db8::2"));
        let msg = Icmpv6Repr::packet_too_big(1280, &inner).to_vec(src, dst);
        assert_eq!(
            msg.len(),
            Icmpv6Repr::packet_too_big(1280, &inner).buffer_len()
        );
        let p = Packet::new_checked(&msg[..]).unwrap();
        assert!(p.verify_checksum(src, dst));
        assert!(!p.verify_checksum(src, a("2001:db8::3")));
        assert_eq!(
            Icmpv6Repr::parse(&p, src, dst).unwrap(),
            Icmpv6Repr::Error {
                msg_type: PKT_TOOBIG,
                code: 0,
                rest: 1280,
                quote: &inner
            }
        );
        assert_eq!(p.quoted().unwrap().dst_addr(), a("2001:db8:1::10"));
        let mut bad = msg.clone();
        bad[9] ^= 1;
        let p = Packet::new_checked(&bad[..]).unwrap();
        assert_eq!(
            Icmpv6Repr::parse(&p, src, dst),
            Err(Error::Checksum("ICMPv6"))
        );
    }

    /// An echo request from ::1 to ::1, id 0x1234, seq 1, no data. By
    /// hand: pseudo-header 0x0001 + 0x0001 + length 0x0008 + next header
    /// 0x003a, message 0x8000 + 0x1234 + 0x0001; sum 0x9279, checksum
    /// 0x6d86.
    #[test]
    fn known_checksum() {
        let one = Ipv6Addr::LOCALHOST;
        let msg = Icmpv6Repr::Info {
            msg_type: ECHO_REQUEST,
            code: 0,
            rest: 0x1234_0001,
            data: &[],
        }
        .to_vec(one, one);
        let p = Packet::new_checked(&msg[..]).unwrap();
        assert_eq!(p.checksum(), 0x6d86);
        assert!(p.verify_checksum(one, one));
        assert!(!is_error(ECHO_REQUEST) && is_error(PKT_TOOBIG) && is_error(127));
        // an error must quote a whole IPv6 header
        let short = Icmpv6Repr::Error {
            msg_type: DST_UNREACH,
            code: PORT_UNREACH,
            rest: 0,
            quote: &[0x60; 39],
        }
        .to_vec(one, one);
        let p = Packet::new_checked(&short[..]).unwrap();
        assert_eq!(Icmpv6Repr::parse(&p, one, one), Err(Error::Truncated));
    }
}
