//! IPv4 headers (options, fragment fields, header checksum); IPIP is an
//! IPv4 packet whose payload is another ([`IpProtocol::IpIp`]).

use crate::{check_len, checksum, clamp, clamp_mut, Error, IpProtocol, Result};
use std::net::Ipv4Addr;

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;
/// Longest IPv4 header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

const DF: u16 = 0x4000;
const MF: u16 = 0x2000;
const OFFSET: u16 = 0x1fff;

view!(
    /// A checked view of an IPv4 packet.
    Packet
);

fields!(Packet {
    /// The TOS byte (DSCP and ECN).
    tos, set_tos: u8 = 1;
    /// Total length field.
    total_len, set_total_len: u16 = 2;
    /// Identification.
    ident, set_ident: u16 = 4;
    /// The flags and fragment offset as one 16-bit field.
    frag_field, set_frag_field: u16 = 6;
    /// Time to live.
    ttl, set_ttl: u8 = 8;
    /// Header checksum field (see [`Packet::fill_checksum`]).
    checksum, set_checksum: u16 = 10;
});

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking that it holds the header its IHL
    /// says and the total length its header says (bytes past the total
    /// length, e.g. Ethernet padding, are allowed and ignored).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_quoted(buffer)?;
        let (n, total) = (p.b().len(), usize::from(p.total_len()));
        check_len(
            n,
            p.header_len(),
            || total,
            "IPv4 total length below header length",
        )?;
        Ok(p)
    }

    /// Wraps the start of a packet as an ICMP error quotes it: the whole
    /// header must be there, the payload its total length announces need
    /// not be ([`Packet::payload`] then ends with the buffer).
    pub fn new_quoted(buffer: T) -> Result<Self> {
        let p = Packet { buffer };
        let n = p.b().len();
        check_len(n, HEADER_LEN, || p.header_len(), "IPv4 IHL below 5")?;
        Ok(p)
    }

    /// Version field (4 for IPv4).
    pub fn version(&self) -> u8 {
        self.b()[0] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[0] & 0x0f) * 4
    }

    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.frag_field() & DF != 0
    }

    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        self.frag_field() & MF != 0
    }

    /// Fragment offset in 8-byte units.
    pub fn frag_offset(&self) -> u16 {
        self.frag_field() & OFFSET
    }

    /// Whether this is a fragment (MF or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> IpProtocol {
        self.b()[9].into()
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }

    /// The whole header, options included.
    pub fn header(&self) -> &[u8] {
        clamp(self.b(), 0, self.header_len())
    }

    /// The options bytes.
    pub fn options(&self) -> &[u8] {
        clamp(self.b(), HEADER_LEN, self.header_len())
    }

    /// The payload up to the total length (or the buffer's end, whichever
    /// comes first).
    pub fn payload(&self) -> &[u8] {
        clamp(self.b(), self.header_len(), usize::from(self.total_len()))
    }

    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(self.header())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version and IHL (`header_len` in bytes, a multiple of 4).
    pub fn set_version_and_header_len(&mut self, version: u8, header_len: usize) {
        self.m()[0] = (version << 4) | ((header_len / 4) as u8 & 0x0f);
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, p: IpProtocol) {
        self.m()[9] = p.into();
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.m()[12..16].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.m()[16..20].copy_from_slice(&a.octets());
    }

    /// Options bytes, writable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        clamp_mut(self.m(), HEADER_LEN, end)
    }

    /// Payload (up to the total length), writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), usize::from(self.total_len()));
        clamp_mut(self.m(), start, end)
    }

    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.header());
        self.set_checksum(c);
    }
}

/// An IPv4 header's meaning (the total length and checksum are derived).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr<'a> {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// TTL.
    pub ttl: u8,
    /// TOS byte (DSCP and ECN).
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
    /// More-fragments flag.
    pub more_frags: bool,
    /// Fragment offset in 8-byte units (13 bits).
    pub frag_offset: u16,
    /// Options, a multiple of 4 bytes, at most 40.
    pub options: &'a [u8],
}

impl<'a> Ipv4Repr<'a> {
    /// A plain header: no options, no fragment fields, TOS 0, id 0.
    pub fn new(src_addr: Ipv4Addr, dst_addr: Ipv4Addr, protocol: IpProtocol, ttl: u8) -> Self {
        Ipv4Repr {
            src_addr,
            dst_addr,
            protocol,
            ttl,
            tos: 0,
            ident: 0,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
            options: &[],
        }
    }

    /// Reads and validates `packet`'s header: version 4 and a correct
    /// header checksum.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Self> {
        let buf: &'a T = packet.buffer;
        if packet.version() != 4 {
            return Err(Error::Malformed("IP version is not 4"));
        }
        if !packet.verify_checksum() {
            return Err(Error::Checksum("IPv4 header"));
        }
        if packet.frag_field() & 0x8000 != 0 {
            return Err(Error::Malformed("IPv4 reserved flag set"));
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            ttl: packet.ttl(),
            tos: packet.tos(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
            options: clamp(buf.as_ref(), HEADER_LEN, packet.header_len()),
        })
    }

    /// Header length with options.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    fn frag_field(&self) -> u16 {
        (if self.dont_frag { DF } else { 0 })
            | (if self.more_frags { MF } else { 0 })
            | (self.frag_offset & OFFSET)
    }

    /// Writes the header into the start of `buf` for a packet of
    /// `buf.len()` bytes (the payload may already be in place), checksum
    /// included.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let hl = self.header_len();
        // (a mask: `is_multiple_of` is newer than the MSRV)
        if self.options.len() & 3 != 0 || hl > MAX_HEADER_LEN {
            return Err(Error::Malformed("IPv4 options length"));
        }
        let total = u16::try_from(buf.len()).map_err(|_| Error::Malformed("IPv4 too long"))?;
        if buf.len() < hl {
            return Err(Error::Truncated);
        }
        buf[0] = 0x40 | (hl / 4) as u8;
        let mut p = Packet { buffer: buf };
        p.set_tos(self.tos);
        p.set_total_len(total);
        p.set_ident(self.ident);
        p.set_frag_field(self.frag_field());
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        p.options_mut().copy_from_slice(self.options);
        p.fill_checksum();
        Ok(())
    }

    /// The header followed by `payload`.
    pub fn to_vec(&self, payload: &[u8]) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; self.header_len()];
        buf.extend_from_slice(payload);
        self.emit(&mut buf)?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header from the wild (the example of Wikipedia's "IPv4 header
    /// checksum"): 192.168.0.1 -> 192.168.0.199, UDP, checksum b861.
    const KNOWN: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn known_header_checksum() {
        let p = Packet::new_quoted(&KNOWN[..]).unwrap();
        assert!(p.verify_checksum());
        let mut b = KNOWN;
        let mut p = Packet::new_quoted(&mut b[..]).unwrap();
        p.set_checksum(0);
        p.fill_checksum();
        assert_eq!(p.checksum(), 0xb861);
        // The total length says 0x73 bytes: as a whole packet it is short.
        assert_eq!(
            Packet::new_checked(&KNOWN[..]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn round_trip_with_options_and_fragments() {
        let r = Ipv4Repr {
            tos: 0x2b,
            ident: 0x1234,
            more_frags: true,
            frag_offset: 3,
            options: &[1, 1, 1, 0],
            ..Ipv4Repr::new(
                Ipv4Addr::new(172, 16, 0, 1),
                Ipv4Addr::new(10, 0, 0, 100),
                IpProtocol::Udp,
                64,
            )
        };
        let b = r.to_vec(b"payload").unwrap();
        assert_eq!(b.len(), 24 + 7);
        assert_eq!(&b[6..8], &0x2003u16.to_be_bytes());
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p).unwrap(), r);
        assert_eq!(p.payload(), b"payload");
        assert!(p.is_fragment() && !p.dont_frag());
        crate::every_prefix(&b, b.len(), |x| {
            let p = Packet::new_checked(x)?;
            Ipv4Repr::parse(&p).map(drop)
        });
    }

    #[test]
    fn bad_fields_are_errors() {
        let r = Ipv4Repr::new(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, IpProtocol::Tcp, 1);
        let good = r.to_vec(&[0; 8]).unwrap();
        let mut b = good.clone();
        b[10] ^= 1;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p), Err(Error::Checksum("IPv4 header")));
        let mut b = good.clone();
        b[0] = 0x44;
        assert!(Packet::new_checked(&b[..]).is_err());
        let mut b = good.clone();
        b[0] = 0x4f;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        let mut b = good;
        b[2..4].copy_from_slice(&10u16.to_be_bytes());
        assert!(Packet::new_checked(&b[..]).is_err());
        let bad_opts = Ipv4Repr {
            options: &[1, 2, 3],
            ..r
        };
        assert!(bad_opts.to_vec(&[]).is_err());
    }

    #[test]
    fn setters_never_make_getters_panic() {
        let r = Ipv4Repr::new(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, IpProtocol::Tcp, 1);
        let mut b = r.to_vec(&[]).unwrap();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_version_and_header_len(4, 60);
        p.set_total_len(9000);
        assert_eq!(p.options().len(), 0);
        assert_eq!(p.payload().len(), 0);
        assert_eq!(p.payload_mut().len(), 0);
        p.fill_checksum();
    }
}
