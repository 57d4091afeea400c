//! A synchronised connection as both ends see it, and a datagram's header.

use super::wire::*;
use std::net::IpAddr;

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
