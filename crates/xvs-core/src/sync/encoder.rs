//! The encoder: datagrams filled as `ip_vs_sync_conn` fills them.

use super::conn::*;
use super::wire::*;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum EncodeError {
    /// Client, virtual and real addresses are not all IPv4 or all IPv6.
    #[error("addresses are not all of one family")]
    MixedFamily,
    /// `seq` present without `SEQ_MASK` flags or the other way round (the
    /// kernel sends the option exactly when the flags are set).
    #[error("sequence data and the IN_SEQ/OUT_SEQ flags disagree")]
    SeqMismatch,
    /// Engine data empty or longer than 255 bytes.
    #[error("persistence-engine data of {0} bytes, must be 1..=255")]
    PeData(usize),
    /// Engine name empty or longer than 16 bytes.
    #[error("persistence-engine name of {0} bytes, must be 1..=16")]
    PeName(usize),
    /// Engine data without name or name without data.
    #[error("persistence-engine data and name must come together")]
    PeIncomplete,
    /// The entry does not fit a datagram of `maxlen` bytes.
    #[error("a {need}-byte datagram does not fit in {maxlen} bytes")]
    TooLarge {
        /// Header plus entry.
        need: usize,
        /// The encoder's limit.
        maxlen: usize,
    },
}

/// Length of `conn`'s entry (fixed part and options, without padding),
/// after checking that it can be encoded.
pub fn entry_len(conn: &SyncConn) -> Result<usize, EncodeError> {
    let mut len = if is_v6(conn)? {
        CONN_V6_LEN
    } else {
        CONN_V4_LEN
    };
    if (conn.flags & conn_flags::SEQ_MASK != 0) != conn.seq.is_some() {
        return Err(EncodeError::SeqMismatch);
    }
    if conn.seq.is_some() {
        len += 2 + SEQ_OPT_LEN;
    }
    match (&conn.pe_data, &conn.pe_name) {
        (None, None) => {}
        (Some(d), Some(n)) => {
            if d.is_empty() || d.len() > PE_DATA_MAXLEN {
                return Err(EncodeError::PeData(d.len()));
            }
            if n.is_empty() || n.len() > PE_NAME_MAXLEN {
                return Err(EncodeError::PeName(n.len()));
            }
            len += 2 + d.len() + 2 + n.len();
        }
        _ => return Err(EncodeError::PeIncomplete),
    }
    Ok(len)
}

pub(super) fn is_v6(conn: &SyncConn) -> Result<bool, EncodeError> {
    match (conn.caddr, conn.vaddr, conn.daddr) {
        (IpAddr::V4(_), IpAddr::V4(_), IpAddr::V4(_)) => Ok(false),
        (IpAddr::V6(_), IpAddr::V6(_), IpAddr::V6(_)) => Ok(true),
        _ => Err(EncodeError::MixedFamily),
    }
}

/// Fills version 1 datagrams of at most `maxlen` bytes, as the kernel's
/// master fills its sync buffer. A datagram is complete when the next
/// entry (after padding) would not fit, or at 255 entries (`nr_conns` is
/// one byte; the kernel does not check this and would wrap past 255 with a
/// `maxlen` above about 9 KB).
#[derive(Debug, Clone)]
pub struct Encoder {
    syncid: u8,
    maxlen: usize,
    buf: Vec<u8>,
    nr_conns: u8,
}

impl Encoder {
    /// An encoder for `syncid` and datagrams of at most `maxlen` bytes
    /// (capped at 65535, the size field's range).
    pub fn new(syncid: u8, maxlen: usize) -> Self {
        Encoder {
            syncid,
            maxlen: maxlen.min(usize::from(u16::MAX)),
            buf: Vec::new(),
            nr_conns: 0,
        }
    }

    /// The datagram size limit.
    pub fn maxlen(&self) -> usize {
        self.maxlen
    }

    /// Entries in the datagram being filled.
    pub fn pending(&self) -> u8 {
        self.nr_conns
    }

    /// Adds `conn`. Returns the previous datagram when `conn` did not fit
    /// in it. On error nothing changes.
    pub fn push(&mut self, conn: &SyncConn) -> Result<Option<Vec<u8>>, EncodeError> {
        let len = entry_len(conn)?;
        if HEADER_V1_LEN + len > self.maxlen {
            return Err(EncodeError::TooLarge {
                need: HEADER_V1_LEN + len,
                maxlen: self.maxlen,
            });
        }
        let mut done = None;
        if !self.buf.is_empty() {
            let pad = pad_len(self.buf.len());
            if self.buf.len() + pad + len > self.maxlen || self.nr_conns == u8::MAX {
                done = self.finish();
            }
        }
        if self.buf.is_empty() {
            self.buf.reserve(self.maxlen);
            // reserved, syncid, size, nr_conns, version, spare
            self.buf
                .extend_from_slice(&[0, self.syncid, 0, 0, 0, SYNC_PROTO_VER, 0, 0]);
        }
        let pad = pad_len(self.buf.len());
        self.buf.resize(self.buf.len() + pad, 0);
        write_entry(&mut self.buf, conn, len);
        self.nr_conns += 1;
        Ok(done)
    }

    /// Takes the datagram being filled, if it has entries (the kernel
    /// sends a partial buffer once it is 2 seconds old).
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.buf.is_empty() {
            return None;
        }
        let mut out = std::mem::take(&mut self.buf);
        let size = u16::try_from(out.len()).unwrap_or(u16::MAX).to_be_bytes();
        if let Some(h) = out.get_mut(..HEADER_V1_LEN) {
            h[2] = size[0];
            h[3] = size[1];
            h[4] = self.nr_conns;
        }
        self.nr_conns = 0;
        Some(out)
    }
}

/// Encodes `conns` into as few datagrams of at most `maxlen` bytes as the
/// kernel's packing gives. Stops at the first connection that cannot be
/// encoded.
pub fn encode(syncid: u8, maxlen: usize, conns: &[SyncConn]) -> Result<Vec<Vec<u8>>, EncodeError> {
    let mut enc = Encoder::new(syncid, maxlen);
    let mut out = Vec::new();
    for conn in conns {
        out.extend(enc.push(conn)?);
    }
    out.extend(enc.finish());
    Ok(out)
}

pub(super) fn pad_len(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Appends `conn`'s entry of `len` bytes (checked by [`entry_len`]).
pub(super) fn write_entry(out: &mut Vec<u8>, conn: &SyncConn, len: usize) {
    let v6 = conn.is_ipv6();
    let ver_size = (len as u16) & SVER_MASK; // version 0
    out.push(if v6 { STYPE_F_INET6 } else { 0 });
    out.push(conn.protocol);
    out.extend_from_slice(&ver_size.to_be_bytes());
    out.extend_from_slice(&(conn.flags & !conn_flags::HASHED).to_be_bytes());
    out.extend_from_slice(&conn.state.to_be_bytes());
    out.extend_from_slice(&conn.cport.to_be_bytes());
    out.extend_from_slice(&conn.vport.to_be_bytes());
    out.extend_from_slice(&conn.dport.to_be_bytes());
    out.extend_from_slice(&conn.fwmark.to_be_bytes());
    out.extend_from_slice(&conn.timeout.to_be_bytes());
    for a in [conn.caddr, conn.vaddr, conn.daddr] {
        match a {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        }
    }
    if let Some(s) = &conn.seq {
        out.extend_from_slice(&[OPT_SEQ_DATA, SEQ_OPT_LEN as u8]);
        for q in [s.in_seq, s.out_seq] {
            out.extend_from_slice(&q.init_seq.to_be_bytes());
            out.extend_from_slice(&q.delta.to_be_bytes());
            out.extend_from_slice(&q.previous_delta.to_be_bytes());
        }
    }
    if let (Some(d), Some(n)) = (&conn.pe_data, &conn.pe_name) {
        out.extend_from_slice(&[OPT_PE_DATA, d.len() as u8]);
        out.extend_from_slice(d);
        out.extend_from_slice(&[OPT_PE_NAME, n.len() as u8]);
        out.extend_from_slice(n);
    }
}
