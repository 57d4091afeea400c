//! The protocol's numbers: group, port and TTL, header and entry lengths,
//! option types, connection flags and the states of each protocol.

use std::net::Ipv4Addr;

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

pub(super) const SVER_SHIFT: u32 = 12;
pub(super) const SVER_MASK: u16 = 0x0fff;

pub(super) const IPPROTO_TCP: u8 = 6;
pub(super) const IPPROTO_UDP: u8 = 17;
pub(super) const IPPROTO_ESP: u8 = 50;
pub(super) const IPPROTO_AH: u8 = 51;
pub(super) const IPPROTO_SCTP: u8 = 132;

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
