//! IPv6 headers and the walk over extension headers to the upper-layer
//! header, as IPVS finds it (`ip_vs_fill_iph_skb_off` → the kernel's
//! `ipv6_find_hdr` with target -1, which the data plane mirrors).

use crate::{check_len, clamp, clamp_mut, Error, IpProtocol, Result};
use std::net::Ipv6Addr;

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// The kernel's bound on extension headers walked
/// (`IP6_MAX_EXT_HDRS_CNT`): a packet with more is not parsed.
pub const MAX_EXT_HDRS: usize = 12;
/// The smallest MTU an IPv6 link may have (RFC 8200 §5).
pub const MIN_MTU: usize = 1280;

/// Extension header numbers (`NEXTHDR_*`).
pub mod nexthdr {
    /// Hop-by-hop options.
    pub const HOP: u8 = 0;
    /// Routing header.
    pub const ROUTING: u8 = 43;
    /// Fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Encapsulating security payload (ends the walk).
    pub const ESP: u8 = 50;
    /// Authentication header.
    pub const AUTH: u8 = 51;
    /// No next header (ends the walk).
    pub const NONE: u8 = 59;
    /// Destination options.
    pub const DEST: u8 = 60;
    /// Mobility header.
    pub const MOBILITY: u8 = 135;
}

/// The kernel's `ipv6_ext_hdr`: the numbers the walk steps over (NONE and
/// ESP count as extension headers there but end the walk).
pub fn is_ext_hdr(n: u8) -> bool {
    use nexthdr::*;
    matches!(n, HOP | ROUTING | FRAGMENT | AUTH | NONE | DEST)
}

view!(
    /// A checked view of an IPv6 packet.
    Packet
);

fields!(Packet {
    /// Payload length (everything after the fixed header).
    payload_len, set_payload_len: u16 = 4;
    /// Next header (the first extension header or the upper layer).
    next_header, set_next_header: u8 = 6;
    /// Hop limit.
    hop_limit, set_hop_limit: u8 = 7;
});

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking that it holds the fixed header and
    /// the payload length it announces (bytes past that are allowed).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_quoted(buffer)?;
        let n = p.b().len();
        check_len(
            n,
            HEADER_LEN,
            || HEADER_LEN + usize::from(p.payload_len()),
            "IPv6 payload length",
        )?;
        Ok(p)
    }

    /// Wraps the start of a packet as an ICMPv6 error quotes it: the fixed
    /// header must be there, the payload need not.
    pub fn new_quoted(buffer: T) -> Result<Self> {
        let p = Packet { buffer };
        if p.b().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Version field (6 for IPv6).
    pub fn version(&self) -> u8 {
        self.b()[0] >> 4
    }

    /// Traffic class (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        let b = self.b();
        (b[0] << 4) | (b[1] >> 4)
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        let b = self.b();
        u32::from_be_bytes([0, b[1] & 0x0f, b[2], b[3]])
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        addr(self.b(), 8)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(self.b(), 24)
    }

    /// Everything after the fixed header up to the payload length (or
    /// the buffer's end, whichever comes first).
    pub fn payload(&self) -> &[u8] {
        clamp(
            self.b(),
            HEADER_LEN,
            HEADER_LEN + usize::from(self.payload_len()),
        )
    }

    /// The walk to the upper-layer header ([`find_upper`] over this
    /// packet's payload).
    pub fn upper(&self) -> Result<Upper> {
        find_upper(self.next_header(), self.payload())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version, traffic class and flow label (20 bits).
    pub fn set_first_word(&mut self, traffic_class: u8, flow_label: u32) {
        let w = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        self.m()[..4].copy_from_slice(&w.to_be_bytes());
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.m()[8..24].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.m()[24..40].copy_from_slice(&a.octets());
    }

    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        clamp_mut(self.m(), HEADER_LEN, end)
    }
}

fn addr(b: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(o)
}

/// Where the walk over the extension headers ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upper {
    /// The upper-layer protocol (for a later fragment: the fragment
    /// header's next header, as the kernel reports it).
    pub protocol: u8,
    /// Its offset from the end of the fixed header (meaningless for a
    /// later fragment).
    pub offset: usize,
    /// A fragment header was passed (`IP6_FH_F_FRAG`).
    pub fragment: bool,
    /// The fragment offset in bytes: non-zero only for a later fragment,
    /// which IPVS never schedules.
    pub frag_offset: u16,
}

/// The kernel's `ipv6_find_hdr(skb, &off, -1, &fragoff, &flags)` with
/// flags 0, as IPVS calls it: walks hop-by-hop, routing, destination
/// options, fragment and AH headers from `next` over `payload` (the bytes
/// after the fixed header) to the first other protocol. A later fragment
/// ends the walk at its fragment header. Errors where the kernel returns
/// a negative value: a truncated header, more than [`MAX_EXT_HDRS`]
/// headers, or a later fragment followed by another extension header.
/// NONE (59) ends the walk as a protocol of its own, as in the kernel.
pub fn find_upper(next: u8, payload: &[u8]) -> Result<Upper> {
    let mut next = next;
    let mut start = 0usize;
    let mut fragment = false;
    for _ in 0..=MAX_EXT_HDRS {
        if !is_ext_hdr(next) || next == nexthdr::NONE {
            return Ok(Upper {
                protocol: next,
                offset: start,
                fragment,
                frag_offset: 0,
            });
        }
        let hdr = payload.get(start..start + 2).ok_or(Error::Truncated)?;
        let (hnext, hlen) = (hdr[0], hdr[1]);
        let len = match next {
            nexthdr::FRAGMENT => {
                fragment = true;
                let off = payload.get(start + 2..start + 4).ok_or(Error::Truncated)?;
                let frag_off = u16::from_be_bytes([off[0], off[1]]) & !7;
                if frag_off != 0 {
                    if !is_ext_hdr(hnext) || hnext == nexthdr::NONE {
                        return Ok(Upper {
                            protocol: hnext,
                            offset: start,
                            fragment,
                            frag_offset: frag_off,
                        });
                    }
                    return Err(Error::Malformed("IPv6 later fragment before a header"));
                }
                8
            }
            nexthdr::AUTH => (usize::from(hlen) + 2) << 2,
            _ => (usize::from(hlen) + 1) << 3,
        };
        next = hnext;
        start += len;
    }
    Err(Error::Malformed("IPv6 extension headers past the limit"))
}

/// An IPv6 header's meaning (no extension headers; the payload length is
/// derived).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header.
    pub next_header: IpProtocol,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// A plain header: traffic class and flow label 0.
    pub fn new(src_addr: Ipv6Addr, dst_addr: Ipv6Addr, next_header: IpProtocol, hop: u8) -> Self {
        Ipv6Repr {
            src_addr,
            dst_addr,
            next_header,
            hop_limit: hop,
            traffic_class: 0,
            flow_label: 0,
        }
    }

    /// Reads `packet`'s fixed header; the version must be 6.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Self> {
        if packet.version() != 6 {
            return Err(Error::Malformed("IP version is not 6"));
        }
        Ok(Ipv6Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header().into(),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// Writes the header into the start of `buf` for a packet of
    /// `buf.len()` bytes (the payload may already be in place).
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let plen = u16::try_from(buf.len() - HEADER_LEN)
            .map_err(|_| Error::Malformed("IPv6 payload too long (jumbograms unsupported)"))?;
        let mut p = Packet { buffer: buf };
        p.set_first_word(self.traffic_class, self.flow_label);
        p.set_payload_len(plen);
        p.set_next_header(self.next_header.into());
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        Ok(())
    }

    /// The header followed by `payload`.
    pub fn to_vec(&self, payload: &[u8]) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; HEADER_LEN];
        buf.extend_from_slice(payload);
        self.emit(&mut buf)?;
        Ok(buf)
    }
}

#[cfg(test)]
#[path = "ipv6_tests.rs"]
mod tests;
