//! UDP datagrams: checksum over a pseudo-header of either family, where
//! zero means "none" (IPv4) and a computed zero is sent as 0xffff.

use crate::{check_len, checksum, clamp, clamp_mut, Error, IpAddress, IpProtocol, Result};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

view!(
    /// A checked view of a UDP datagram.
    Packet
);

fields!(Packet {
    /// Source port.
    src_port, set_src_port: u16 = 0;
    /// Destination port.
    dst_port, set_dst_port: u16 = 2;
    /// Length field (header included).
    #[allow(clippy::len_without_is_empty)]
    len, set_len: u16 = 4;
    /// Checksum field (0: none).
    checksum, set_checksum: u16 = 6;
});

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking that it holds the header and the
    /// length the header says (bytes past it are ignored).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Packet { buffer };
        let n = p.b().len();
        check_len(n, HEADER_LEN, || usize::from(p.len()), "UDP length below 8")?;
        Ok(p)
    }

    /// The datagram as the length field bounds it.
    fn datagram(&self) -> &[u8] {
        clamp(self.b(), 0, usize::from(self.len()))
    }

    /// Data after the header, up to the length field.
    pub fn payload(&self) -> &[u8] {
        clamp(self.b(), HEADER_LEN, usize::from(self.len()))
    }

    /// Whether the checksum verifies for `src` → `dst` (a zero checksum,
    /// "none", always does).
    pub fn verify_checksum(&self, src: &IpAddress, dst: &IpAddress) -> bool {
        self.checksum() == 0 || sum(self.datagram(), src, dst) == 0xffff
    }
}

fn sum(datagram: &[u8], src: &IpAddress, dst: &IpAddress) -> u16 {
    checksum::combine(&[
        checksum::pseudo_header(src, dst, IpProtocol::Udp, datagram.len() as u32),
        checksum::data(datagram),
    ])
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Payload (up to the length field), writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        clamp_mut(self.m(), HEADER_LEN, end)
    }

    /// Computes and stores the checksum for `src` → `dst` (0xffff where
    /// it computes to zero, which would mean "none").
    pub fn fill_checksum(&mut self, src: &IpAddress, dst: &IpAddress) {
        self.set_checksum(0);
        let c = !sum(self.datagram(), src, dst);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

/// Whether an emitted datagram carries a checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpChecksum {
    /// Full checksum over pseudo-header, header and payload.
    Compute,
    /// Zero: none (IPv4 only).
    Zero,
}

/// A UDP header's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpRepr {
    /// Reads `packet`'s header after verifying its checksum for
    /// `src` → `dst` (zero passes).
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Packet<T>,
        src: &IpAddress,
        dst: &IpAddress,
    ) -> Result<Self> {
        if !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum("UDP"));
        }
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
        })
    }

    /// Writes the header into the start of `buf`, the whole datagram with
    /// its payload in place, and the checksum as `csum` says.
    pub fn emit(
        &self,
        buf: &mut [u8],
        src: &IpAddress,
        dst: &IpAddress,
        csum: UdpChecksum,
    ) -> Result<()> {
        let len = u16::try_from(buf.len()).map_err(|_| Error::Malformed("UDP too long"))?;
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let mut p = Packet { buffer: buf };
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(len);
        p.set_checksum(0);
        if csum == UdpChecksum::Compute {
            p.fill_checksum(src, dst);
        }
        Ok(())
    }

    /// The header followed by `payload`.
    pub fn to_vec(
        &self,
        payload: &[u8],
        src: &IpAddress,
        dst: &IpAddress,
        csum: UdpChecksum,
    ) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; HEADER_LEN];
        buf.extend_from_slice(payload);
        self.emit(&mut buf, src, dst, csum)?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{be16, set_be16};
    use std::net::Ipv4Addr;

    fn addrs() -> (IpAddress, IpAddress) {
        (
            Ipv4Addr::new(172, 16, 0, 1).into(),
            Ipv4Addr::new(10, 0, 0, 100).into(),
        )
    }

    const PORTS_1_2: UdpRepr = UdpRepr {
        src_port: 1,
        dst_port: 2,
    };

    #[test]
    fn round_trip_both_checksum_modes() {
        let (s, d) = addrs();
        let r = UdpRepr {
            src_port: 5000,
            ..PORTS_1_2
        };
        for (mode, odd) in [
            (UdpChecksum::Compute, &b"ping!"[..]),
            (UdpChecksum::Zero, b"pong"),
        ] {
            let b = r.to_vec(odd, &s, &d, mode).unwrap();
            let p = Packet::new_checked(&b[..]).unwrap();
            assert_eq!(UdpRepr::parse(&p, &s, &d).unwrap(), r);
            assert_eq!(p.payload(), odd);
            assert_eq!(p.checksum() == 0, mode == UdpChecksum::Zero);
            crate::every_prefix(&b, b.len(), |x| {
                UdpRepr::parse(&Packet::new_checked(x)?, &s, &d).map(drop)
            });
        }
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        let (s, d) = addrs();
        let r = PORTS_1_2;
        // Find a 2-byte payload whose checksum computes to zero.
        let hit = (0..=u16::MAX)
            .map(|v| {
                r.to_vec(&v.to_be_bytes(), &s, &d, UdpChecksum::Compute)
                    .unwrap()
            })
            .find(|b| be16(b, 6) == 0xffff)
            .expect("some payload sums to zero");
        let p = Packet::new_checked(&hit[..]).unwrap();
        assert!(p.verify_checksum(&s, &d));
    }

    #[test]
    fn length_field_is_checked() {
        let (s, d) = addrs();
        let mut b = PORTS_1_2
            .to_vec(b"abc", &s, &d, UdpChecksum::Compute)
            .unwrap();
        b.push(0xee); // trailing bytes past the length are ignored
        assert!(Packet::new_checked(&b[..]).unwrap().verify_checksum(&s, &d));
        set_be16(&mut b, 4, 7);
        assert!(Packet::new_checked(&b[..]).is_err());
        set_be16(&mut b, 4, 13);
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        b[6] ^= 0x10;
        set_be16(&mut b, 4, 11);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(UdpRepr::parse(&p, &s, &d), Err(Error::Checksum("UDP")));
    }
}
