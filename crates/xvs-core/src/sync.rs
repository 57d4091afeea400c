//! The kernel IPVS connection synchronisation protocol
//! (`net/netfilter/ipvs/ip_vs_sync.c`): a checked decoder for version 1
//! and version 0 messages and an encoder for version 1.
//!
//! A master multicasts UDP datagrams (default group 224.0.0.81, port 8848,
//! TTL 1) to backups. A version 1 datagram is an 8-byte header followed by
//! `nr_conns` connection entries, each starting on a 4-byte boundary
//! (all integers big-endian):
//!
//! ```text
//! header   0 reserved (0)  1 syncid  2..4 size (whole datagram)
//!          4 nr_conns      5 version (1)  6..8 spare (0)
//! entry    0 type (bit 0: IPv6)  1 protocol  2..4 ver_size (version<<12 | size)
//!          4..8 flags (IP_VS_CONN_F_*)  8..10 state  10..12 cport
//!          12..14 vport  14..16 dport  16..20 fwmark  20..24 timeout (s)
//!          24.. caddr, vaddr, daddr (3 x 4 bytes, or 3 x 16 for IPv6)
//!          then options: type (1) len (1) data (len), until `size`
//! ```
//!
//! An entry's `size` (36 for IPv4, 72 for IPv6, plus options) excludes the
//! padding that aligns the next entry. Options are `IPVS_OPT_SEQ_DATA`
//! (24 bytes: in and out `init_seq`, `delta`, `previous_delta`),
//! `IPVS_OPT_PE_DATA` and `IPVS_OPT_PE_NAME`.
//!
//! Decoding reproduces `ip_vs_process_message` and `ip_vs_proc_sync_conn`:
//! an error the kernel answers by dropping the rest of the datagram is a
//! [`SyncError`]; an entry the kernel skips while carrying on with the next
//! one is reported as [`Entry::Skip`] with a [`SkipReason`]. The kernel
//! applies the entries before a fatal error; [`MessageView::entries`]
//! yields them in that order, [`decode`] is all or nothing. Nothing here
//! panics or indexes unchecked on any input.
//!
//! The [`Encoder`] fills datagrams as `ip_vs_sync_conn` does (header,
//! padding, entry, options, in that order, never past `maxlen`), so a
//! kernel backup accepts what it writes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Default multicast group (`IP_VS_SYNC_GROUP`).
pub const SYNC_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// Default UDP port (`IP_VS_SYNC_PORT`); sync thread `id` uses port + id.
pub const SYNC_PORT: u16 = 8848;
/// Default multicast TTL.
pub const SYNC_TTL: u8 = 1;
/// Protocol version in the version 1 header (`SYNC_PROTO_VER`).
pub const SYNC_PROTO_VER: u8 = 1;

/// Version 0 header length (`struct ip_vs_sync_mesg_v0`).
pub const HEADER_V0_LEN: usize = 4;
/// Version 1 header length (`struct ip_vs_sync_mesg`).
pub const HEADER_V1_LEN: usize = 8;
/// Fixed part of an IPv4 entry (`struct ip_vs_sync_v4`).
pub const CONN_V4_LEN: usize = 36;
/// Fixed part of an IPv6 entry (`struct ip_vs_sync_v6`).
pub const CONN_V6_LEN: usize = 72;
/// A version 0 entry without options (`SIMPLE_CONN_SIZE`).
pub const CONN_V0_LEN: usize = 24;
/// `struct ip_vs_sync_conn_options`: two `struct ip_vs_seq`.
pub const SEQ_OPT_LEN: usize = 24;
/// `IP_VS_PENAME_MAXLEN`.
pub const PE_NAME_MAXLEN: usize = 16;
/// `IP_VS_PEDATA_MAXLEN`.
pub const PE_DATA_MAXLEN: usize = 255;

/// Entry type bit: the entry is IPv6 (`STYPE_F_INET6`).
pub const STYPE_F_INET6: u8 = 1;
/// Option: sequence data (`IPVS_OPT_SEQ_DATA`).
pub const OPT_SEQ_DATA: u8 = 1;
/// Option: persistence-engine data (`IPVS_OPT_PE_DATA`).
pub const OPT_PE_DATA: u8 = 2;
/// Option: persistence-engine name (`IPVS_OPT_PE_NAME`).
pub const OPT_PE_NAME: u8 = 3;
/// Option type bit: the option may be ignored if unknown
/// (`IPVS_OPT_F_PARAM`, `1 << (IPVS_OPT_PARAM - 1)`).
pub const OPT_F_PARAM: u8 = 1 << 6;

const SVER_SHIFT: u32 = 12;
const SVER_MASK: u16 = 0x0fff;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ESP: u8 = 50;
const IPPROTO_AH: u8 = 51;
const IPPROTO_SCTP: u8 = 132;

/// Connection flags (`IP_VS_CONN_F_*`, `include/uapi/linux/ip_vs.h`).
pub mod conn_flags {
    /// Mask of the forwarding method.
    pub const FWD_MASK: u32 = 0x0007;
    /// Masquerading (NAT).
    pub const MASQ: u32 = 0x0000;
    /// Local node.
    pub const LOCALNODE: u32 = 0x0001;
    /// IP tunnelling.
    pub const TUNNEL: u32 = 0x0002;
    /// Direct routing.
    pub const DROUTE: u32 = 0x0003;
    /// Cache bypass.
    pub const BYPASS: u32 = 0x0004;
    /// Entry created by sync (set by the backup on what it receives).
    pub const SYNC: u32 = 0x0020;
    /// Hashed entry (never sent).
    pub const HASHED: u32 = 0x0040;
    /// No output packets.
    pub const NOOUTPUT: u32 = 0x0080;
    /// Not established.
    pub const INACTIVE: u32 = 0x0100;
    /// Output sequence adjustment.
    pub const OUT_SEQ: u32 = 0x0200;
    /// Input sequence adjustment.
    pub const IN_SEQ: u32 = 0x0400;
    /// Both sequence adjustments: the master sends `IPVS_OPT_SEQ_DATA`.
    pub const SEQ_MASK: u32 = 0x0600;
    /// Client port not known yet.
    pub const NO_CPORT: u32 = 0x0800;
    /// Persistence template, not a connection.
    pub const TEMPLATE: u32 = 0x1000;
    /// One-packet scheduling (never synced).
    pub const ONE_PACKET: u32 = 0x2000;
    /// Bits a backup takes from a new entry (`IP_VS_CONN_F_BACKUP_MASK`).
    pub const BACKUP_MASK: u32 = FWD_MASK | NOOUTPUT | INACTIVE | SEQ_MASK | NO_CPORT | TEMPLATE;
    /// Bits a backup updates on an existing entry
    /// (`IP_VS_CONN_F_BACKUP_UPD_MASK`).
    pub const BACKUP_UPD_MASK: u32 = INACTIVE | SEQ_MASK;
    /// Use netfilter conntrack (bit 16 and up are not meant for backups).
    pub const NFCT: u32 = 1 << 16;
}

/// TCP states (`IP_VS_TCP_S_*`).
pub mod tcp_state {
    #![allow(missing_docs)]
    pub const NONE: u16 = 0;
    pub const ESTABLISHED: u16 = 1;
    pub const SYN_SENT: u16 = 2;
    pub const SYN_RECV: u16 = 3;
    pub const FIN_WAIT: u16 = 4;
    pub const TIME_WAIT: u16 = 5;
    pub const CLOSE: u16 = 6;
    pub const CLOSE_WAIT: u16 = 7;
    pub const LAST_ACK: u16 = 8;
    pub const LISTEN: u16 = 9;
    pub const SYNACK: u16 = 10;
    /// Number of TCP states.
    pub const LAST: u16 = 11;
}

/// UDP states (`IP_VS_UDP_S_*`); AH and ESP also have one state.
pub mod udp_state {
    #![allow(missing_docs)]
    pub const NORMAL: u16 = 0;
    /// Number of UDP states.
    pub const LAST: u16 = 1;
}

/// SCTP states (`enum ip_vs_sctp_states`, kernels since 3.12).
pub mod sctp_state {
    #![allow(missing_docs)]
    pub const NONE: u16 = 0;
    pub const INIT1: u16 = 1;
    pub const INIT: u16 = 2;
    pub const COOKIE_SENT: u16 = 3;
    pub const COOKIE_REPLIED: u16 = 4;
    pub const COOKIE_WAIT: u16 = 5;
    pub const COOKIE: u16 = 6;
    pub const COOKIE_ECHOED: u16 = 7;
    pub const ESTABLISHED: u16 = 8;
    pub const SHUTDOWN_SENT: u16 = 9;
    pub const SHUTDOWN_RECEIVED: u16 = 10;
    pub const SHUTDOWN_ACK_SENT: u16 = 11;
    pub const REJECTED: u16 = 12;
    pub const CLOSED: u16 = 13;
    /// Number of SCTP states.
    pub const LAST: u16 = 14;
}

/// Template states (`IP_VS_CTPL_S_*`).
pub mod tpl_state {
    #![allow(missing_docs)]
    pub const NONE: u16 = 0;
    pub const ASSURED: u16 = 1;
    /// Templates at or above this only get a debug message on the backup.
    pub const LAST: u16 = 2;
}

/// Number of states of a protocol IPVS handles (`pp->num_states`), or
/// `None` if `ip_vs_proto_get` knows no such protocol (TCP, UDP, SCTP, AH
/// and ESP are registered).
pub fn num_states(protocol: u8) -> Option<u16> {
    match protocol {
        IPPROTO_TCP => Some(tcp_state::LAST),
        IPPROTO_UDP | IPPROTO_AH | IPPROTO_ESP => Some(udp_state::LAST),
        IPPROTO_SCTP => Some(sctp_state::LAST),
        _ => None,
    }
}

/// The backup's protocol and state check: a non-template needs a known
/// protocol and a state below its `num_states`; a template passes
/// whatever its protocol (fwmark templates use 0) and state.
pub fn check_state(protocol: u8, flags: u32, state: u16) -> Result<(), SkipReason> {
    if flags & conn_flags::TEMPLATE != 0 {
        return Ok(());
    }
    let n = num_states(protocol).ok_or(SkipReason::Protocol(protocol))?;
    if state >= n {
        return Err(SkipReason::State { protocol, state });
    }
    Ok(())
}

/// Whether a backup configured with `configured` syncid processes a
/// message carrying `received`: 0 means "any".
pub fn accepts_syncid(configured: u8, received: u8) -> bool {
    configured == 0 || configured == received
}

/// Which side of the protocol a daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends.
    Master,
    /// Receives.
    Backup,
}

/// `sync_maxlen` as `start_sync_thread` computes it: the largest datagram
/// payload. `configured` is `--sync-maxlen` (0 if not given); the default
/// is a 1500-byte MTU for a master and the interface MTU (at least 1500)
/// for a backup, less the IP and UDP headers.
pub fn sync_maxlen(role: Role, configured: u16, dev_mtu: u32, group_is_v6: bool) -> u16 {
    let hlen: u32 = if group_is_v6 { 40 + 8 } else { 20 + 8 };
    let (mtu, min) = match role {
        Role::Master => (1500, 1),
        Role::Backup => (dev_mtu.clamp(1500, 65535), 1024),
    };
    let len = if configured != 0 {
        u32::from(configured).clamp(min, 65535 - hlen)
    } else {
        mtu - hlen
    };
    u16::try_from(len).unwrap_or(u16::MAX)
}

/// One direction's TCP sequence adjustment (`struct ip_vs_seq`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Seq {
    /// Add `delta` from this sequence number on.
    pub init_seq: u32,
    /// Current delta.
    pub delta: u32,
    /// Delta before the last resized packet.
    pub previous_delta: u32,
}

/// The `IPVS_OPT_SEQ_DATA` option (`struct ip_vs_sync_conn_options`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SeqData {
    /// Incoming direction.
    pub in_seq: Seq,
    /// Outgoing direction.
    pub out_seq: Seq,
}

/// One synchronised connection or template, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SyncConn {
    /// IP protocol number (0 for fwmark templates).
    pub protocol: u8,
    /// Client address.
    pub caddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Virtual address (the fwmark, as an address, for fwmark templates).
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Real server address.
    pub daddr: IpAddr,
    /// Real server port.
    pub dport: u16,
    /// `IP_VS_CONN_F_*` flags as sent (see [`conn_flags`]).
    pub flags: u32,
    /// Protocol state (or template state).
    pub state: u16,
    /// Firewall mark (0 in version 0).
    pub fwmark: u32,
    /// The connection's timeout in seconds (`cp->timeout / HZ`: its
    /// state's full timeout, or the persistence timeout for a template; not
    /// the time left). The backup arms its timer with it; 0 (always so in
    /// version 0) makes it use its protocol timeout table, or 3 minutes
    /// for templates.
    pub timeout: u32,
    /// Sequence adjustment, sent when `flags` has `SEQ_MASK` bits.
    pub seq: Option<SeqData>,
    /// Persistence-engine name (`sip`), sent with `pe_data`.
    pub pe_name: Option<Vec<u8>>,
    /// Persistence-engine data (the SIP Call-ID), 1..=255 bytes.
    pub pe_data: Option<Vec<u8>>,
}

impl SyncConn {
    /// Whether the addresses are IPv6 (judged by the client address).
    pub fn is_ipv6(&self) -> bool {
        self.caddr.is_ipv6()
    }

    /// Whether this is a persistence template.
    pub fn is_template(&self) -> bool {
        self.flags & conn_flags::TEMPLATE != 0
    }

    /// The flags a kernel backup gives a new connection made from this
    /// entry: version 1 keeps `BACKUP_MASK` bits, version 0 drops only
    /// `HASHED`; both add `SYNC`.
    pub fn backup_flags(&self, version: SyncVersion) -> u32 {
        match version {
            SyncVersion::V1 => (self.flags & conn_flags::BACKUP_MASK) | conn_flags::SYNC,
            SyncVersion::V0 => (self.flags | conn_flags::SYNC) & !conn_flags::HASHED,
        }
    }
}

/// Message format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncVersion {
    /// The original format: IPv4 only, no fwmark, timeout or PE data.
    V0,
    /// The current format.
    V1,
}

/// A checked message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Format, told apart as the kernel does: version 1 if the datagram
    /// has 8 header bytes with reserved 0, version 1 and spare 0.
    pub version: SyncVersion,
    /// Sync ID of the sender.
    pub syncid: u8,
    /// Number of entries.
    pub nr_conns: u8,
    /// Datagram length, header included (equal to the received length).
    pub size: u16,
}

/// Why the kernel would skip one entry and go on with the next.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SkipReason {
    /// An option type it does not know, without `OPT_F_PARAM`.
    #[error("unknown mandatory option type {0}")]
    UnknownOption(u8),
    /// A non-template for a protocol IPVS does not handle.
    #[error("protocol {0} is not handled by IPVS")]
    Protocol(u8),
    /// A non-template state out of its protocol's range.
    #[error("state {state} is out of range for protocol {protocol}")]
    State {
        /// Protocol number.
        protocol: u8,
        /// State received.
        state: u16,
    },
    /// `IPVS_OPT_PE_DATA` without `IPVS_OPT_PE_NAME`.
    #[error("persistence-engine data without an engine name")]
    PeDataWithoutName,
}

/// Which option an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionKind {
    /// `IPVS_OPT_SEQ_DATA`.
    SeqData,
    /// `IPVS_OPT_PE_DATA`.
    PeData,
    /// `IPVS_OPT_PE_NAME`.
    PeName,
}

impl std::fmt::Display for OptionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OptionKind::SeqData => "sequence data",
            OptionKind::PeData => "persistence-engine data",
            OptionKind::PeName => "persistence-engine name",
        })
    }
}

/// What is wrong with an entry, for errors that make the kernel drop the
/// rest of the datagram. Offsets are from the start of the entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum EntryError {
    /// Fewer bytes left than an entry's fixed part ("too small", v0
    /// "bogus conn" and "bogus conn options").
    #[error("only {have} bytes left where an entry needs {need}")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes left in the datagram.
        have: usize,
    },
    /// The entry's size runs past the datagram ("msg > buffer").
    #[error("entry size {size} runs past the {have} bytes left")]
    Overrun {
        /// Size field.
        size: usize,
        /// Bytes left in the datagram.
        have: usize,
    },
    /// The version nibble of `ver_size` is not 0.
    #[error("unknown entry version {0}")]
    Version(u8),
    /// A type byte with bits set but not `STYPE_F_INET6` (error -10).
    #[error("unknown entry type {0:#04x}")]
    Type(u8),
    /// The size is below the fixed part for its family (error -20).
    #[error("entry size {size} is below the {need}-byte fixed part")]
    Undersized {
        /// Size field.
        size: usize,
        /// Fixed part length.
        need: usize,
    },
    /// One byte left where an option header needs two (error -30).
    #[error("option header at offset {offset} is cut off")]
    OptionHeader {
        /// Offset of the option.
        offset: usize,
    },
    /// Option length 0, or data past the entry's end (error -40).
    #[error("option type {ptype} at offset {offset}: length {len} is 0 or runs past the entry")]
    OptionLength {
        /// Offset of the option.
        offset: usize,
        /// Option type byte.
        ptype: u8,
        /// Option length byte.
        len: u8,
    },
    /// Sequence data not 24 bytes long (error -50).
    #[error("sequence data of {0} bytes, expected 24")]
    SeqLength(u8),
    /// An option given twice (errors -50, -60, -70).
    #[error("{0} given twice")]
    Duplicate(OptionKind),
    /// Engine name longer than 16 bytes (error -70).
    #[error("persistence-engine name of {0} bytes, at most 16")]
    PeNameTooLong(u8),
}

/// Why a datagram (or its remainder) is dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SyncError {
    /// Shorter than the 4-byte version 0 header ("header too short").
    #[error("datagram of {len} bytes is shorter than a header")]
    HeaderTooShort {
        /// Bytes received.
        len: usize,
    },
    /// The header's size differs from the length received ("bogus message
    /// size").
    #[error("header says {size} bytes, {len} were received")]
    SizeMismatch {
        /// Header size field.
        size: u16,
        /// Bytes received.
        len: usize,
    },
    /// Entry `index` (from 0) is malformed; entries before it are good.
    #[error("entry {index}: {error}")]
    Entry {
        /// Position of the entry in the datagram.
        index: usize,
        /// What is wrong.
        error: EntryError,
    },
}

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

type Parsed = Result<Result<SyncConn, SkipReason>, EntryError>;

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
fn parse_v1(head: &[u8; CONN_V4_LEN], entry: &[u8]) -> Parsed {
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
struct Options {
    seq: Option<SeqData>,
    pe_data: Option<Vec<u8>>,
    pe_name: Option<Vec<u8>>,
}

/// The option loop of `ip_vs_proc_sync_conn` with `ip_vs_proc_seqopt` and
/// `ip_vs_proc_str`. An unknown mandatory option skips the entry at once,
/// leaving later options unread, as the kernel does.
fn parse_options(entry: &[u8], mut off: usize) -> Result<Result<Options, SkipReason>, EntryError> {
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
fn seq_data(o: &[u8; SEQ_OPT_LEN], word: fn([u8; 4]) -> u32) -> SeqData {
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
fn array<const N: usize>(buf: &[u8], off: usize) -> Option<&[u8; N]> {
    buf.get(off..)?.get(..N)?.try_into().ok()
}

/// Why a connection cannot be encoded.
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

fn is_v6(conn: &SyncConn) -> Result<bool, EncodeError> {
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

fn pad_len(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Appends `conn`'s entry of `len` bytes (checked by [`entry_len`]).
fn write_entry(out: &mut Vec<u8>, conn: &SyncConn, len: usize) {
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

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
