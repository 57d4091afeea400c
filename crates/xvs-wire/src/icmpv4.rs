//! ICMPv4 messages: echo, and the errors that quote an IPv4 header and
//! at least 8 bytes of what followed it.

use crate::{checksum, clamp, Error, Ipv4Packet, Result};

/// Length of the ICMP header (type, code, checksum, rest of header).
pub const HEADER_LEN: usize = 8;

/// Echo reply.
pub const ECHO_REPLY: u8 = 0;
/// Destination unreachable.
pub const DST_UNREACHABLE: u8 = 3;
/// Echo request.
pub const ECHO_REQUEST: u8 = 8;
/// Time exceeded.
pub const TIME_EXCEEDED: u8 = 11;
/// Destination-unreachable code: fragmentation needed and DF set.
pub const FRAG_NEEDED: u8 = 4;

view!(
    /// A checked view of an ICMPv4 message (the IP payload).
    Packet
);

fields!(Packet {
    /// Message type.
    msg_type, set_msg_type: u8 = 0;
    /// Code.
    code, set_code: u8 = 1;
    /// Checksum field.
    checksum, set_checksum: u16 = 2;
    /// Bytes 4..8: identifier and sequence of an echo, unused (or the
    /// next-hop MTU in the low half) of an error.
    rest_of_header, set_rest_of_header: u32 = 4;
    /// Echo identifier.
    echo_ident, set_echo_ident: u16 = 4;
    /// Echo sequence number.
    echo_seq_no, set_echo_seq_no: u16 = 6;
    /// Next-hop MTU of a fragmentation-needed error (RFC 1191).
    next_hop_mtu, set_next_hop_mtu: u16 = 6;
});

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    /// Everything after the header (echo data or the quoted packet).
    pub fn data(&self) -> &[u8] {
        clamp(self.b(), HEADER_LEN, self.b().len())
    }

    /// The quoted packet of an error message, header-checked.
    pub fn quoted(&self) -> Result<Ipv4Packet<&[u8]>> {
        Ipv4Packet::new_quoted(self.data())
    }

    /// Whether the checksum over the whole message verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(self.b())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Computes and stores the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// An ICMPv4 message's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
    /// Echo request.
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// An error quoting a packet: destination unreachable (with the
    /// next-hop MTU for fragmentation needed) or time exceeded.
    Error {
        /// Type ([`DST_UNREACHABLE`] or [`TIME_EXCEEDED`]).
        msg_type: u8,
        /// Code.
        code: u8,
        /// Bytes 4..8 (unused, or the next-hop MTU in the low half).
        rest: u32,
        /// The quoted IPv4 header and at least 8 bytes after it.
        quote: &'a [u8],
    },
    /// Any other message, as it is.
    Other {
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

impl<'a> Icmpv4Repr<'a> {
    /// Reads `packet` after verifying its checksum; an error message must
    /// quote a whole IPv4 header and 8 more bytes.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Self> {
        let buf: &'a [u8] = packet.buffer.as_ref();
        if !packet.verify_checksum() {
            return Err(Error::Checksum("ICMP"));
        }
        let data = clamp(buf, HEADER_LEN, buf.len());
        let (msg_type, code, rest) = (packet.msg_type(), packet.code(), packet.rest_of_header());
        Ok(match msg_type {
            ECHO_REQUEST | ECHO_REPLY if code == 0 => {
                let (ident, seq_no) = (packet.echo_ident(), packet.echo_seq_no());
                if msg_type == ECHO_REQUEST {
                    Icmpv4Repr::EchoRequest {
                        ident,
                        seq_no,
                        data,
                    }
                } else {
                    Icmpv4Repr::EchoReply {
                        ident,
                        seq_no,
                        data,
                    }
                }
            }
            DST_UNREACHABLE | TIME_EXCEEDED => {
                let q = Ipv4Packet::new_quoted(data)?;
                if data.len() < q.header_len() + 8 {
                    return Err(Error::Truncated);
                }
                if q.version() != 4 {
                    return Err(Error::Malformed("quoted IP version is not 4"));
                }
                Icmpv4Repr::Error {
                    msg_type,
                    code,
                    rest,
                    quote: data,
                }
            }
            _ => Icmpv4Repr::Other {
                msg_type,
                code,
                rest,
                data,
            },
        })
    }

    /// A destination-unreachable error quoting `quote`.
    pub fn dst_unreachable(code: u8, next_hop_mtu: u16, quote: &'a [u8]) -> Self {
        Icmpv4Repr::Error {
            msg_type: DST_UNREACHABLE,
            code,
            rest: u32::from(next_hop_mtu),
            quote,
        }
    }

    fn parts(&self) -> (u8, u8, u32, &'a [u8]) {
        match *self {
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => (
                ECHO_REQUEST,
                0,
                u32::from(ident) << 16 | u32::from(seq_no),
                data,
            ),
            Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => (
                ECHO_REPLY,
                0,
                u32::from(ident) << 16 | u32::from(seq_no),
                data,
            ),
            Icmpv4Repr::Error {
                msg_type,
                code,
                rest,
                quote,
            } => (msg_type, code, rest, quote),
            Icmpv4Repr::Other {
                msg_type,
                code,
                rest,
                data,
            } => (msg_type, code, rest, data),
        }
    }

    /// Length of the whole message.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.parts().3.len()
    }

    /// Writes the whole message (data included) into `buf`, which must be
    /// [`Icmpv4Repr::buffer_len`] bytes long, with its checksum.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let (msg_type, code, rest, data) = self.parts();
        if buf.len() != self.buffer_len() {
            return Err(Error::Truncated);
        }
        buf[HEADER_LEN..].copy_from_slice(data);
        let mut p = Packet { buffer: buf };
        p.set_msg_type(msg_type);
        p.set_code(code);
        p.set_rest_of_header(rest);
        p.fill_checksum();
        Ok(())
    }

    /// The whole message.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut buf = vec![0u8; self.buffer_len()];
        // Cannot fail: the buffer has exactly the length emit wants.
        let _ = self.emit(&mut buf);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::be16;
    use crate::{IpProtocol, Ipv4Repr};
    use std::net::Ipv4Addr;

    #[test]
    fn echo_round_trip() {
        let r = Icmpv4Repr::EchoRequest {
            ident: 0x1234,
            seq_no: 7,
            data: b"abc",
        };
        let b = r.to_vec();
        // type 8 code 0, checksum = !(0x0800 + 0x1234 + 0x0007 + 0x6162 + 0x6300)
        assert_eq!(
            be16(&b, 2),
            !(0x0800u16 + 0x1234 + 0x0007 + 0x6162 + 0x6300)
        );
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p).unwrap(), r);
        crate::every_prefix(&b, HEADER_LEN, |x| {
            Icmpv4Repr::parse(&Packet::new_checked(x)?).map(drop)
        });
    }

    #[test]
    fn error_quotes_header_and_8_bytes() {
        let inner = Ipv4Repr::new(
            Ipv4Addr::new(172, 16, 0, 1),
            Ipv4Addr::new(10, 0, 0, 100),
            IpProtocol::Udp,
            64,
        )
        .to_vec(&[0x17, 0x70, 0, 80, 0, 13, 0, 0, 1, 2, 3, 4, 5])
        .unwrap();
        let r = Icmpv4Repr::dst_unreachable(FRAG_NEEDED, 1400, &inner[..28]);
        let b = r.to_vec();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p).unwrap(), r);
        assert_eq!(p.next_hop_mtu(), 1400);
        let q = p.quoted().unwrap();
        assert_eq!(q.dst_addr(), Ipv4Addr::new(10, 0, 0, 100));
        assert!(q.verify_checksum());
        assert_eq!(&q.payload()[..4], &[0x17, 0x70, 0, 80]);
        // Quoting fewer than 8 bytes after the header is an error.
        for n in 0..28 {
            let short = Icmpv4Repr::dst_unreachable(3, 0, &inner[..n]).to_vec();
            assert!(Icmpv4Repr::parse(&Packet::new_checked(&short[..]).unwrap()).is_err());
        }
        crate::every_prefix(&b, b.len(), |x| {
            Icmpv4Repr::parse(&Packet::new_checked(x)?).map(drop)
        });
        let mut bad = b.clone();
        bad[9] ^= 1;
        let p = Packet::new_checked(&bad[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p), Err(Error::Checksum("ICMP")));
    }
}
