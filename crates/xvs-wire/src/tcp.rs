//! TCP segments: flags, options, checksum over a pseudo-header of either
//! IP family.

use crate::{
    be16, be32, check_len, checksum, clamp, clamp_mut, Error, IpAddress, IpProtocol, Result,
};
use std::ops::{BitOr, BitOrAssign};

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Longest TCP header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;

/// The TCP flag byte (CWR … FIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No flag.
    pub const NONE: TcpFlags = TcpFlags(0);
    /// FIN.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// SYN.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// RST.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// PSH.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// ACK.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// URG.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECE.
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// CWR.
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, o: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | o.0)
    }
}

impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, o: TcpFlags) {
        self.0 |= o.0;
    }
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// End of option list (kind 0).
    EndOfList,
    /// No-operation (kind 1).
    NoOp,
    /// Maximum segment size (kind 2).
    Mss(u16),
    /// Window scale shift (kind 3).
    WindowScale(u8),
    /// SACK permitted (kind 4).
    SackPermitted,
    /// Timestamps value and echo reply (kind 8).
    Timestamps(u32, u32),
    /// Any other option: kind and data (without kind and length bytes).
    Unknown(u8, &'a [u8]),
}

/// Iterates over TCP options; yields an error and stops at a length that
/// runs past the end or a known option of the wrong size.
pub fn options(mut bytes: &[u8]) -> impl Iterator<Item = Result<TcpOption<'_>>> {
    std::iter::from_fn(move || {
        let (&kind, rest) = bytes.split_first()?;
        if kind <= 1 {
            bytes = if kind == 0 { &[] } else { rest };
            return Some(Ok(if kind == 0 {
                TcpOption::EndOfList
            } else {
                TcpOption::NoOp
            }));
        }
        let len = rest.first().map(|&l| usize::from(l));
        let data = match len {
            Some(l) if l >= 2 && l <= bytes.len() => &bytes[2..l],
            _ => {
                bytes = &[];
                return Some(Err(Error::Malformed("TCP option length")));
            }
        };
        bytes = &bytes[data.len() + 2..];
        Some(match (kind, data.len()) {
            (2, 2) => Ok(TcpOption::Mss(be16(data, 0))),
            (3, 1) => Ok(TcpOption::WindowScale(data[0])),
            (4, 0) => Ok(TcpOption::SackPermitted),
            (8, 8) => Ok(TcpOption::Timestamps(be32(data, 0), be32(data, 4))),
            (2 | 3 | 4 | 8, _) => Err(Error::Malformed("TCP option size")),
            _ => Ok(TcpOption::Unknown(kind, data)),
        })
    })
}

view!(
    /// A checked view of a TCP segment (the IP payload).
    Packet
);

fields!(Packet {
    /// Source port.
    src_port, set_src_port: u16 = 0;
    /// Destination port.
    dst_port, set_dst_port: u16 = 2;
    /// Sequence number.
    seq_number, set_seq_number: u32 = 4;
    /// Acknowledgement number.
    ack_number, set_ack_number: u32 = 8;
    /// Window.
    window_len, set_window_len: u16 = 14;
    /// Checksum field.
    checksum, set_checksum: u16 = 16;
    /// Urgent pointer.
    urgent_at, set_urgent_at: u16 = 18;
});

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking it holds the header its data offset
    /// says.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Packet { buffer };
        let n = p.b().len();
        check_len(n, HEADER_LEN, || p.header_len(), "TCP data offset below 5")?;
        Ok(p)
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[12] >> 4) * 4
    }

    /// The flag byte.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.b()[13])
    }

    /// Options bytes.
    pub fn options(&self) -> &[u8] {
        clamp(self.b(), HEADER_LEN, self.header_len())
    }

    /// Data after the header.
    pub fn payload(&self) -> &[u8] {
        clamp(self.b(), self.header_len(), self.b().len())
    }

    /// Whether the checksum verifies for this segment between `src` and
    /// `dst` (the whole buffer is the segment).
    pub fn verify_checksum(&self, src: &IpAddress, dst: &IpAddress) -> bool {
        let len = self.b().len() as u32;
        let sum = checksum::combine(&[
            checksum::pseudo_header(src, dst, IpProtocol::Tcp, len),
            checksum::data(self.b()),
        ]);
        sum == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the data offset from a header length in bytes.
    pub fn set_header_len(&mut self, len: usize) {
        self.m()[12] = ((len / 4) as u8 & 0x0f) << 4;
    }

    /// Sets the flag byte.
    pub fn set_flags(&mut self, f: TcpFlags) {
        self.m()[13] = f.0;
    }

    /// Options bytes, writable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        clamp_mut(self.m(), HEADER_LEN, end)
    }

    /// Computes and stores the checksum for `src` → `dst`.
    pub fn fill_checksum(&mut self, src: &IpAddress, dst: &IpAddress) {
        self.set_checksum(0);
        let len = self.b().len() as u32;
        let sum = checksum::combine(&[
            checksum::pseudo_header(src, dst, IpProtocol::Tcp, len),
            checksum::data(self.b()),
        ]);
        self.set_checksum(!sum);
    }
}

/// A TCP header's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgement number.
    pub ack_number: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Window.
    pub window_len: u16,
    /// Urgent pointer.
    pub urgent_at: u16,
    /// Options, a multiple of 4 bytes, at most 40 (pad with NOPs or EOL).
    pub options: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// A header with these ports and flags, everything else zero.
    pub fn new(src_port: u16, dst_port: u16, flags: TcpFlags) -> Self {
        TcpRepr {
            src_port,
            dst_port,
            seq_number: 0,
            ack_number: 0,
            flags,
            window_len: 0,
            urgent_at: 0,
            options: &[],
        }
    }

    /// Reads `packet`'s header after verifying its checksum for
    /// `src` → `dst` and its options.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        src: &IpAddress,
        dst: &IpAddress,
    ) -> Result<Self> {
        let buf: &'a T = packet.buffer;
        if !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum("TCP"));
        }
        let opts = clamp(buf.as_ref(), HEADER_LEN, packet.header_len());
        options(opts).try_for_each(|o| o.map(drop))?;
        Ok(TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            urgent_at: packet.urgent_at(),
            options: opts,
        })
    }

    /// Header length with options.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// Writes the header into the start of `buf`, a whole segment whose
    /// payload is already in place, with the checksum for `src` → `dst`.
    pub fn emit(&self, buf: &mut [u8], src: &IpAddress, dst: &IpAddress) -> Result<()> {
        let hl = self.header_len();
        // (a mask: `is_multiple_of` is newer than the MSRV)
        if self.options.len() & 3 != 0 || hl > MAX_HEADER_LEN {
            return Err(Error::Malformed("TCP options length"));
        }
        if buf.len() < hl {
            return Err(Error::Truncated);
        }
        let mut p = Packet { buffer: buf };
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq_number);
        p.set_ack_number(self.ack_number);
        p.set_header_len(hl);
        p.set_flags(self.flags);
        p.set_window_len(self.window_len);
        p.set_urgent_at(self.urgent_at);
        p.options_mut().copy_from_slice(self.options);
        p.fill_checksum(src, dst);
        Ok(())
    }

    /// The header followed by `payload`, checksum for `src` → `dst`.
    pub fn to_vec(&self, payload: &[u8], src: &IpAddress, dst: &IpAddress) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; self.header_len()];
        buf.extend_from_slice(payload);
        self.emit(&mut buf, src, dst)?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests;
