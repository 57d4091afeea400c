//! GUE (draft-ietf-intarea-gue), version 0, as the kernel's fou/gue
//! module and IPVS's `ipvs_gue_encap` use it and xvs's TUN forwarding
//! sends it: a UDP payload of a 4-byte header (version 2 bits, C 1 bit,
//! hlen 5 bits in 4-byte words of options, proto/ctype, flags) followed
//! by the inner packet (protocol 4: IPv4).

use crate::{check_len, clamp, set_be16, Error, IpProtocol, Result};

/// Length of the GUE header without options.
pub const HEADER_LEN: usize = 4;

view!(
    /// A checked view of a GUE header and its payload (the UDP payload).
    Packet
);

fields!(Packet {
    /// Protocol of the payload (data messages) or control type.
    proto_ctype, set_proto_ctype: u8 = 1;
    /// Flags.
    flags, set_flags: u16 = 2;
});

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking it holds the header and its options.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Packet { buffer };
        let n = p.b().len();
        check_len(n, HEADER_LEN, || p.header_len(), "GUE header")?;
        Ok(p)
    }

    /// Version (2 bits; 0 here, 1 is "direct IP" in later drafts).
    pub fn version(&self) -> u8 {
        self.b()[0] >> 6
    }

    /// C bit: a control message rather than data.
    pub fn control(&self) -> bool {
        self.b()[0] & 0x20 != 0
    }

    /// Header length with options, in bytes.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + usize::from(self.b()[0] & 0x1f) * 4
    }

    /// The inner packet.
    pub fn payload(&self) -> &[u8] {
        clamp(self.b(), self.header_len(), self.b().len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version (2 bits).
    pub fn set_version(&mut self, v: u8) {
        let b = self.buffer.as_mut();
        b[0] = (b[0] & 0x3f) | (v << 6);
    }

    /// Sets the C bit.
    pub fn set_control(&mut self, c: bool) {
        let b = self.buffer.as_mut();
        b[0] = (b[0] & !0x20) | if c { 0x20 } else { 0 };
    }
}

/// A GUE data message header's meaning (xvs sends no options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GueRepr {
    /// Protocol of the inner packet.
    pub protocol: IpProtocol,
    /// Flags.
    pub flags: u16,
}

impl GueRepr {
    /// Reads a version-0 data message header, as the fou module accepts
    /// it (options are skipped, not interpreted).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self> {
        if packet.version() != 0 {
            return Err(Error::Malformed("GUE version is not 0"));
        }
        if packet.control() {
            return Err(Error::Malformed("GUE control message"));
        }
        Ok(GueRepr {
            protocol: packet.proto_ctype().into(),
            flags: packet.flags(),
        })
    }

    /// Writes the 4-byte header into the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        buf[0] = 0;
        buf[1] = self.protocol.into();
        set_be16(buf, 2, self.flags);
        Ok(())
    }

    /// The header followed by `payload`.
    pub fn to_vec(&self, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; HEADER_LEN];
        buf[1] = self.protocol.into();
        buf[2..4].copy_from_slice(&self.flags.to_be_bytes());
        buf.extend_from_slice(payload);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_as_xvs_sends_it() {
        let r = GueRepr {
            protocol: IpProtocol::IpIp,
            flags: 0,
        };
        let b = r.to_vec(&[0x45, 0, 0, 20]);
        assert_eq!(&b[..4], &[0, 4, 0, 0]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(GueRepr::parse(&p).unwrap(), r);
        assert_eq!(p.payload(), &[0x45, 0, 0, 20]);
        crate::every_prefix(&b, HEADER_LEN, |x| {
            GueRepr::parse(&Packet::new_checked(x)?).map(drop)
        });
    }

    #[test]
    fn options_control_and_versions() {
        let b = [0x02, 4, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x45];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.header_len(), p.payload()), (12, &[0x45][..]));
        assert!(Packet::new_checked(&b[..11]).is_err());
        let mut raw = [0u8, 4, 0, 0];
        let mut p = Packet::new_checked(&mut raw[..]).unwrap();
        p.set_version(1);
        p.set_proto_ctype(41);
        p.set_control(true);
        p.set_flags(7);
        assert_eq!(raw, [0x60, 41, 0, 7]);
        for first in [0x20, 0x40, 0x80] {
            let raw = [first, 4, 0, 0];
            let p = Packet::new_checked(&raw[..]).unwrap();
            assert!(GueRepr::parse(&p).is_err());
        }
    }
}
