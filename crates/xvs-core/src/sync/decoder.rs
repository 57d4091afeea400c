//! The checked decoder: `ip_vs_process_message` and `ip_vs_proc_sync_conn`
//! over version 1 and version 0 datagrams.

use super::conn::*;
use super::error::*;
use super::kernel::*;
use super::wire::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One entry as a kernel backup judges it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Entry {
    /// A connection or template to create or update.
    Conn(SyncConn),
    /// An entry the kernel skips.
    Skip {
        /// Position of the entry in the datagram.
        index: usize,
        /// Why.
        reason: SkipReason,
    },
}

/// A fully decoded datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncMessage {
    /// Its header.
    pub header: Header,
    /// Entries to apply, in order.
    pub conns: Vec<SyncConn>,
    /// Entries the kernel would skip: (index, reason).
    pub skipped: Vec<(usize, SkipReason)>,
}

/// Decodes a whole datagram; any error that makes the kernel drop the rest
/// of the datagram fails the whole decode (see [`MessageView::entries`]
/// to keep the entries before it). Bytes after the last entry are ignored,
/// as the kernel does.
pub fn decode(buf: &[u8]) -> Result<SyncMessage, SyncError> {
    let view = MessageView::new(buf)?;
    let mut msg = SyncMessage {
        header: view.header(),
        conns: Vec::with_capacity(usize::from(view.header().nr_conns)),
        skipped: Vec::new(),
    };
    for entry in view.entries() {
        match entry? {
            Entry::Conn(c) => msg.conns.push(c),
            Entry::Skip { index, reason } => msg.skipped.push((index, reason)),
        }
    }
    Ok(msg)
}

/// A datagram whose header has been checked.
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    buf: &'a [u8],
    header: Header,
}

impl<'a> MessageView<'a> {
    /// Checks the header as `ip_vs_process_message` does (length and size
    /// field, then v1 or v0). The syncid is not filtered: see
    /// [`accepts_syncid`].
    pub fn new(buf: &'a [u8]) -> Result<Self, SyncError> {
        let h: &[u8; HEADER_V0_LEN] =
            array(buf, 0).ok_or(SyncError::HeaderTooShort { len: buf.len() })?;
        let size = u16::from_be_bytes([h[2], h[3]]);
        if usize::from(size) != buf.len() {
            return Err(SyncError::SizeMismatch {
                size,
                len: buf.len(),
            });
        }
        let header = match array::<HEADER_V1_LEN>(buf, 0) {
            Some(v1) if v1[0] == 0 && v1[5] == SYNC_PROTO_VER && v1[6] == 0 && v1[7] == 0 => {
                Header {
                    version: SyncVersion::V1,
                    syncid: v1[1],
                    nr_conns: v1[4],
                    size,
                }
            }
            _ => Header {
                version: SyncVersion::V0,
                syncid: h[1],
                nr_conns: h[0],
                size,
            },
        };
        Ok(MessageView { buf, header })
    }

    /// The header.
    pub fn header(&self) -> Header {
        self.header
    }

    /// The entries, in order; the iterator ends after the first error.
    pub fn entries(&self) -> Entries<'a> {
        let pos = match self.header.version {
            SyncVersion::V1 => HEADER_V1_LEN,
            SyncVersion::V0 => HEADER_V0_LEN,
        };
        Entries {
            buf: self.buf,
            version: self.header.version,
            count: usize::from(self.header.nr_conns),
            index: 0,
            pos,
            done: false,
        }
    }
}

/// Iterator over a datagram's entries (see [`MessageView::entries`]).
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    buf: &'a [u8],
    version: SyncVersion,
    count: usize,
    index: usize,
    pos: usize,
    done: bool,
}

impl Iterator for Entries<'_> {
    type Item = Result<Entry, SyncError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.index >= self.count {
            return None;
        }
        let index = self.index;
        self.index += 1;
        let parsed = match self.version {
            SyncVersion::V1 => self.next_v1(),
            SyncVersion::V0 => self.next_v0(),
        };
        Some(match parsed {
            Ok(Ok(conn)) => Ok(Entry::Conn(conn)),
            Ok(Err(reason)) => Ok(Entry::Skip { index, reason }),
            Err(error) => {
                self.done = true;
                Err(SyncError::Entry { index, error })
            }
        })
    }
}

impl std::iter::FusedIterator for Entries<'_> {}

pub(super) type Parsed = Result<Result<SyncConn, SkipReason>, EntryError>;

impl Entries<'_> {
    /// The checks of `ip_vs_process_message`'s loop, then the entry.
    fn next_v1(&mut self) -> Parsed {
        let p = self.pos;
        let have = self.buf.len().saturating_sub(p);
        let head: &[u8; CONN_V4_LEN] = array(self.buf, p).ok_or(EntryError::Truncated {
            need: CONN_V4_LEN,
            have,
        })?;
        let ver_size = u16::from_be_bytes([head[2], head[3]]);
        let size = usize::from(ver_size & SVER_MASK);
        if size > have {
            return Err(EntryError::Overrun { size, have });
        }
        let version = (ver_size >> SVER_SHIFT) as u8;
        if version != 0 {
            return Err(EntryError::Version(version));
        }
        // The next entry starts at the next 4-byte boundary.
        self.pos = p + ((size + 3) & !3);
        let entry = self.buf.get(p..p + size).unwrap_or_default();
        parse_v1(head, entry)
    }

    /// `ip_vs_process_message_v0`'s loop body.
    fn next_v0(&mut self) -> Parsed {
        let p = self.pos;
        let have = self.buf.len().saturating_sub(p);
        let s: &[u8; CONN_V0_LEN] = array(self.buf, p).ok_or(EntryError::Truncated {
            need: CONN_V0_LEN,
            have,
        })?;
        let flags = u32::from(u16::from_be_bytes([s[20], s[21]]));
        let seq = if flags & conn_flags::SEQ_MASK != 0 {
            let o: &[u8; SEQ_OPT_LEN] =
                array(self.buf, p + CONN_V0_LEN).ok_or(EntryError::Truncated {
                    need: CONN_V0_LEN + SEQ_OPT_LEN,
                    have,
                })?;
            self.pos = p + CONN_V0_LEN + SEQ_OPT_LEN;
            // Version 0 copies `struct ip_vs_seq` in the sender's byte
            // order: little-endian on every master that matters.
            Some(seq_data(o, u32::from_le_bytes))
        } else {
            self.pos = p + CONN_V0_LEN;
            None
        };
        let protocol = s[1];
        let state = u16::from_be_bytes([s[22], s[23]]);
        if let Err(reason) = check_state(protocol, flags, state) {
            return Ok(Err(reason));
        }
        let addr = |o: usize| IpAddr::V4(Ipv4Addr::new(s[o], s[o + 1], s[o + 2], s[o + 3]));
        Ok(Ok(SyncConn {
            protocol,
            caddr: addr(8),
            cport: u16::from_be_bytes([s[2], s[3]]),
            vaddr: addr(12),
            vport: u16::from_be_bytes([s[4], s[5]]),
            daddr: addr(16),
            dport: u16::from_be_bytes([s[6], s[7]]),
            flags,
            state,
            fwmark: 0,
            timeout: 0,
            seq,
            pe_name: None,
            pe_data: None,
        }))
    }
}

/// `ip_vs_proc_sync_conn`: `head` is the 36 bytes at the entry's start,
/// `entry` its `size` bytes.
pub(super) fn parse_v1(head: &[u8; CONN_V4_LEN], entry: &[u8]) -> Parsed {
    let ty = head[0];
    let v6 = if ty & STYPE_F_INET6 != 0 {
        true
    } else if ty == 0 {
        false
    } else {
        return Err(EntryError::Type(ty));
    };
    let fixed = if v6 { CONN_V6_LEN } else { CONN_V4_LEN };
    let undersized = EntryError::Undersized {
        size: entry.len(),
        need: fixed,
    };
    let (caddr, vaddr, daddr) = if v6 {
        let a = |o| array::<16>(entry, o).map(|b| IpAddr::V6(Ipv6Addr::from(*b)));
        (a(24), a(40), a(56))
    } else {
        let a = |o| array::<4>(entry, o).map(|b| IpAddr::V4(Ipv4Addr::from(*b)));
        (a(24), a(28), a(32))
    };
    let (Some(caddr), Some(vaddr), Some(daddr)) = (caddr, vaddr, daddr) else {
        return Err(undersized);
    };
    let opts = match parse_options(entry, fixed)? {
        Ok(opts) => opts,
        Err(reason) => return Ok(Err(reason)),
    };
    let protocol = head[1];
    let flags = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    let state = u16::from_be_bytes([head[8], head[9]]);
    if let Err(reason) = check_state(protocol, flags, state) {
        return Ok(Err(reason));
    }
    if opts.pe_data.is_some() && opts.pe_name.is_none() {
        return Ok(Err(SkipReason::PeDataWithoutName));
    }
    Ok(Ok(SyncConn {
        protocol,
        caddr,
        cport: u16::from_be_bytes([head[10], head[11]]),
        vaddr,
        vport: u16::from_be_bytes([head[12], head[13]]),
        daddr,
        dport: u16::from_be_bytes([head[14], head[15]]),
        flags,
        state,
        fwmark: u32::from_be_bytes([head[16], head[17], head[18], head[19]]),
        timeout: u32::from_be_bytes([head[20], head[21], head[22], head[23]]),
        seq: opts.seq,
        pe_name: opts.pe_name,
        pe_data: opts.pe_data,
    }))
}

#[derive(Default)]
pub(super) struct Options {
    seq: Option<SeqData>,
    pe_data: Option<Vec<u8>>,
    pe_name: Option<Vec<u8>>,
}

/// The option loop of `ip_vs_proc_sync_conn` with `ip_vs_proc_seqopt` and
/// `ip_vs_proc_str`. An unknown mandatory option skips the entry at once,
/// leaving later options unread, as the kernel does.
pub(super) fn parse_options(
    entry: &[u8],
    mut off: usize,
) -> Result<Result<Options, SkipReason>, EntryError> {
    let mut opts = Options::default();
    while off < entry.len() {
        let hdr: &[u8; 2] = array(entry, off).ok_or(EntryError::OptionHeader { offset: off })?;
        let (ptype, plen) = (hdr[0], hdr[1]);
        let start = off + 2;
        let data = match plen {
            0 => None,
            n => entry.get(start..start + usize::from(n)),
        };
        let data = data.ok_or(EntryError::OptionLength {
            offset: off,
            ptype,
            len: plen,
        })?;
        match ptype & !OPT_F_PARAM {
            OPT_SEQ_DATA => {
                let o: &[u8; SEQ_OPT_LEN] =
                    data.try_into().map_err(|_| EntryError::SeqLength(plen))?;
                if opts.seq.is_some() {
                    return Err(EntryError::Duplicate(OptionKind::SeqData));
                }
                opts.seq = Some(seq_data(o, u32::from_be_bytes));
            }
            OPT_PE_DATA => {
                if opts.pe_data.is_some() {
                    return Err(EntryError::Duplicate(OptionKind::PeData));
                }
                opts.pe_data = Some(data.to_vec());
            }
            OPT_PE_NAME => {
                if data.len() > PE_NAME_MAXLEN {
                    return Err(EntryError::PeNameTooLong(plen));
                }
                if opts.pe_name.is_some() {
                    return Err(EntryError::Duplicate(OptionKind::PeName));
                }
                opts.pe_name = Some(data.to_vec());
            }
            _ if ptype & OPT_F_PARAM == 0 => {
                return Ok(Err(SkipReason::UnknownOption(ptype)));
            }
            _ => {}
        }
        off = start + usize::from(plen);
    }
    Ok(Ok(opts))
}

/// Six 32-bit words: in (init, delta, previous), then out.
pub(super) fn seq_data(o: &[u8; SEQ_OPT_LEN], word: fn([u8; 4]) -> u32) -> SeqData {
    let mut w = [0u32; 6];
    for (dst, chunk) in w.iter_mut().zip(o.chunks_exact(4)) {
        if let Ok(b) = <[u8; 4]>::try_from(chunk) {
            *dst = word(b);
        }
    }
    let [a, b, c, d, e, f] = w;
    SeqData {
        in_seq: Seq {
            init_seq: a,
            delta: b,
            previous_delta: c,
        },
        out_seq: Seq {
            init_seq: d,
            delta: e,
            previous_delta: f,
        },
    }
}

/// `N` bytes at `off`, or `None` if the buffer is too short.
pub(super) fn array<const N: usize>(buf: &[u8], off: usize) -> Option<&[u8; N]> {
    buf.get(off..)?.get(..N)?.try_into().ok()
}
