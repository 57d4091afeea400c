//! SCTP packets (RFC 9260): the common header, whose checksum is a
//! CRC32c over the whole packet with no pseudo-header, stored
//! least-significant byte first; and chunks, of which IPVS reads the
//! first (and, after a COOKIE ECHO or COOKIE ACK, the next).

use crate::{Error, Result};

/// Length of the common header.
pub const HEADER_LEN: usize = 12;
/// Length of a chunk header (type, flags, length).
pub const CHUNK_HEADER_LEN: usize = 4;
/// The checksum field's offset in the common header.
const CHECKSUM_AT: usize = 8;

/// Chunk types IPVS's state machine tells apart.
pub mod chunk {
    /// DATA
    pub const DATA: u8 = 0;
    /// INIT
    pub const INIT: u8 = 1;
    /// INIT ACK
    pub const INIT_ACK: u8 = 2;
    /// SACK
    pub const SACK: u8 = 3;
    /// HEARTBEAT
    pub const HEARTBEAT: u8 = 4;
    /// ABORT
    pub const ABORT: u8 = 6;
    /// SHUTDOWN
    pub const SHUTDOWN: u8 = 7;
    /// SHUTDOWN ACK
    pub const SHUTDOWN_ACK: u8 = 8;
    /// ERROR
    pub const ERROR: u8 = 9;
    /// COOKIE ECHO
    pub const COOKIE_ECHO: u8 = 10;
    /// COOKIE ACK
    pub const COOKIE_ACK: u8 = 11;
    /// SHUTDOWN COMPLETE
    pub const SHUTDOWN_COMPLETE: u8 = 14;
}

view!(
    /// A checked view of an SCTP packet (the IP payload, whole: the
    /// checksum covers all of it).
    Packet
);

fields!(Packet {
    /// Source port.
    src_port, set_src_port: u16 = 0;
    /// Destination port.
    dst_port, set_dst_port: u16 = 2;
    /// Verification tag.
    verification_tag, set_verification_tag: u32 = 4;
});

/// CRC32c of `packet` with its checksum field counted as zero.
fn crc(packet: &[u8]) -> u32 {
    let (head, rest) = packet.split_at(CHECKSUM_AT.min(packet.len()));
    let tail = rest.get(4..).unwrap_or_default();
    let c = crc32c::crc32c_append(crc32c::crc32c(head), &[0; 4]);
    crc32c::crc32c_append(c, tail)
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer`, which must hold the common header; all of it is
    /// the packet.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    /// The checksum field as the value it holds (little-endian on the
    /// wire).
    pub fn checksum(&self) -> u32 {
        self.b()
            .get(CHECKSUM_AT..CHECKSUM_AT + 4)
            .and_then(|s| s.try_into().ok())
            .map(u32::from_le_bytes)
            .unwrap_or_default()
    }

    /// Whether the checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        crc(self.b()) == self.checksum()
    }

    /// The chunks after the common header.
    pub fn chunks(&self) -> &[u8] {
        self.b().get(HEADER_LEN..).unwrap_or_default()
    }

    /// The first chunk's type, if a chunk header is there.
    pub fn first_chunk_type(&self) -> Option<u8> {
        (self.chunks().len() >= CHUNK_HEADER_LEN).then(|| self.chunks()[0])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Computes and stores the checksum.
    pub fn fill_checksum(&mut self) {
        let c = crc(self.b());
        if let Some(s) = self.m().get_mut(CHECKSUM_AT..CHECKSUM_AT + 4) {
            s.copy_from_slice(&c.to_le_bytes());
        }
    }
}

/// One chunk: its header and `value`, padded to 4 bytes (the length
/// field counts the value, not the padding). `None` if it does not fit
/// the 16-bit length.
pub fn chunk(kind: u8, flags: u8, value: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(CHUNK_HEADER_LEN + value.len()).ok()?;
    let mut c = vec![kind, flags];
    c.extend_from_slice(&len.to_be_bytes());
    c.extend_from_slice(value);
    c.resize(c.len().next_multiple_of(4), 0);
    Some(c)
}

/// An SCTP common header's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SctpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Verification tag.
    pub verification_tag: u32,
}

impl SctpRepr {
    /// Reads `packet`'s header after verifying its checksum.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self> {
        if !packet.verify_checksum() {
            return Err(Error::Checksum("SCTP"));
        }
        Ok(SctpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            verification_tag: packet.verification_tag(),
        })
    }

    /// The header followed by `chunks`, checksum filled in.
    pub fn to_vec(&self, chunks: &[u8]) -> Vec<u8> {
        let mut buf = vec![0; HEADER_LEN];
        buf.extend_from_slice(chunks);
        let mut p = Packet { buffer: &mut buf };
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_verification_tag(self.verification_tag);
        p.fill_checksum();
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value_and_a_known_packet() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        // Worked out in docs/research/sctp-and-sip.md (A.5): ports 5060,
        // tag 0, one empty INIT header; sent as 61 51 df 02.
        let init = chunk(chunk::INIT, 0, &[]).expect("fits");
        let p = SctpRepr {
            src_port: 5060,
            dst_port: 5060,
            verification_tag: 0,
        }
        .to_vec(&init);
        assert_eq!(&p[8..12], &[0x61, 0x51, 0xdf, 0x02]);
        let v = Packet::new_checked(&p[..]).expect("header");
        assert!(v.verify_checksum());
        assert_eq!(v.first_chunk_type(), Some(chunk::INIT));
        assert_eq!(SctpRepr::parse(&v).map(|r| r.dst_port), Ok(5060));
    }

    #[test]
    fn a_changed_byte_fails_the_checksum() {
        let data = chunk(chunk::DATA, 3, b"hello").expect("fits");
        assert_eq!(data.len(), 12);
        assert_eq!(&data[2..4], &[0, 9]);
        let mut p = SctpRepr {
            src_port: 1,
            dst_port: 2,
            verification_tag: 0xdead_beef,
        }
        .to_vec(&data);
        p[2] ^= 1;
        let v = Packet::new_checked(&p[..]).expect("header");
        assert!(!v.verify_checksum());
        assert_eq!(SctpRepr::parse(&v), Err(Error::Checksum("SCTP")));
    }

    #[test]
    fn short_buffers_are_refused_or_read_safely() {
        assert_eq!(
            Packet::new_checked(&[0u8; 11][..]).err(),
            Some(Error::Truncated)
        );
        let v = Packet::new_checked(&[0u8; 14][..]).expect("header");
        assert_eq!(v.first_chunk_type(), None);
        assert_eq!(v.chunks().len(), 2);
    }
}
