//! The LVS model, named as IPVS names it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Transport protocol of a virtual service (`-t`, `-u`, `--sctp-service`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// `-t`, `--tcp-service`
    Tcp,
    /// `-u`, `--udp-service`
    Udp,
    /// `--sctp-service`
    Sctp,
}

impl Protocol {
    /// IANA protocol number, as carried in the IPv4 header.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// The name ipvsadm prints in listings (`TCP`, `UDP`, `SCTP`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }

    /// The protocol with IANA number `n`, if it is one a service can have.
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What identifies a virtual service: protocol, virtual address and port,
/// or a firewall mark (`-f`). As in IPVS's `ip_vs_service_user`, a fwmark
/// service carries protocol TCP, address 0.0.0.0 and port 0 beside its
/// mark, and only the mark identifies it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub struct ServiceKey {
    /// Firewall mark (`-f`, 1..=4294967295); 0 for an address service.
    /// First so that address services order before fwmark services.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fwmark: u32,
    /// Transport protocol.
    pub proto: Protocol,
    /// Virtual IP address; for a fwmark service the unspecified address
    /// of its family (`-f N -6`: `::`).
    #[schemars(schema_with = "ip_schema")]
    pub addr: IpAddr,
    /// Virtual port (0 only for persistent services, as in IPVS).
    pub port: u16,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl ServiceKey {
    /// The address service `proto addr:port`.
    pub fn new(proto: Protocol, addr: impl Into<IpAddr>, port: u16) -> Self {
        ServiceKey {
            fwmark: 0,
            proto,
            addr: addr.into(),
            port,
        }
    }

    /// The fwmark service of mark `mark` (`-f mark`).
    pub fn fwmark(mark: u32) -> Self {
        ServiceKey {
            fwmark: mark,
            proto: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
        }
    }

    /// The IPv6 fwmark service of mark `mark` (`-f mark -6`).
    pub fn fwmark6(mark: u32) -> Self {
        ServiceKey {
            addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ..ServiceKey::fwmark(mark)
        }
    }

    /// True for an IPv6 service (`AF_INET6`).
    pub fn is_ipv6(&self) -> bool {
        self.addr.is_ipv6()
    }

    /// True for a fwmark service.
    pub fn is_fwmark(&self) -> bool {
        self.fwmark != 0
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.fwmark != 0 {
            return write!(f, "FWM {}", self.fwmark);
        }
        write!(f, "{} {}:{}", self.proto, self.addr, self.port)
    }
}

/// Packet forwarding method of a real server (`-m`, `-g`, `-i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
pub enum FwdMethod {
    /// `-m`, masquerading (NAT).
    Masq,
    /// `-g`, gatewaying (direct routing); ipvsadm's default.
    #[default]
    Route,
    /// `-i`, IP-in-IP tunnelling.
    Tunnel,
}

impl FwdMethod {
    /// The word ipvsadm prints in the `Forward` column.
    pub fn name(self) -> &'static str {
        match self {
            FwdMethod::Masq => "Masq",
            FwdMethod::Route => "Route",
            FwdMethod::Tunnel => "Tunnel",
        }
    }
}

impl fmt::Display for FwdMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Tunnel encapsulation for `-i` destinations (`--tun-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum TunType {
    /// IPv4-in-IPv4 (the default).
    #[default]
    Ipip,
    /// Generic UDP Encapsulation.
    Gue,
    /// Generic Routing Encapsulation.
    Gre,
}

/// Tunnel checksum mode (`--tun-nocsum`, `--tun-csum`, `--tun-remcsum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum TunCsum {
    /// No checksum (the default).
    #[default]
    NoCsum,
    /// Checksum.
    Csum,
    /// Remote checksum offload.
    RemCsum,
}

/// Service flags as IPVS stores them (`IP_VS_SVC_F_*`).
pub mod svc_flags {
    /// `-p`: persistent service.
    pub const PERSISTENT: u32 = 0x0001;
    /// Internal: service is hashed (always set on listed services).
    pub const HASHED: u32 = 0x0002;
    /// `-o`: one-packet scheduling.
    pub const ONEPACKET: u32 = 0x0004;
    /// `-b sh-fallback` / `mh-fallback` (scheduler flag 1).
    pub const SCHED1: u32 = 0x0008;
    /// `-b sh-port` / `mh-port` (scheduler flag 2).
    pub const SCHED2: u32 = 0x0010;
    /// Scheduler flag 3 (unused by upstream schedulers).
    pub const SCHED3: u32 = 0x0020;
}

/// A virtual service as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Service {
    /// Protocol, address and port.
    pub key: ServiceKey,
    /// Scheduler name exactly as ipvsadm spells it (`rr`, `wlc`, ...).
    pub scheduler: String,
    /// `IP_VS_SVC_F_*` flags.
    pub flags: u32,
    /// Persistence timeout in seconds (`-p`); meaningful with `PERSISTENT`.
    pub timeout: u32,
    /// Persistence netmask (`-M`), as a prefix-style mask of the service's
    /// family (IPv6: `-M 64` is `ffff:ffff:ffff:ffff::`; IPVS keeps the
    /// prefix length, see [`Service::netmask_prefix`]).
    #[schemars(schema_with = "ip_schema")]
    pub netmask: IpAddr,
    /// Persistence engine (`--pe`), if any.
    pub pe_name: Option<String>,
}

impl Service {
    /// A fresh service with ipvsadm's defaults for everything but the key.
    pub fn new(key: ServiceKey, scheduler: &str) -> Self {
        Service {
            key,
            scheduler: scheduler.to_string(),
            flags: 0,
            timeout: 0,
            netmask: full_mask(key.addr),
            pe_name: None,
        }
    }

    /// The persistence netmask as a prefix length (IPVS's IPv6 netmask).
    pub fn netmask_prefix(&self) -> u32 {
        match self.netmask {
            IpAddr::V4(m) => u32::from(m).leading_ones(),
            IpAddr::V6(m) => u128::from(m).leading_ones(),
        }
    }

    /// True when `-p` is set.
    pub fn is_persistent(&self) -> bool {
        self.flags & svc_flags::PERSISTENT != 0
    }
}

/// A real server of a virtual service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Dest {
    /// Real server address (of the service's family, or the other one for
    /// a tunnelled dest, as IPVS allows).
    #[schemars(schema_with = "ip_schema")]
    pub addr: IpAddr,
    /// Real server port (NAT may map it; DR/TUN force the service port).
    pub port: u16,
    /// Forwarding method.
    pub fwd: FwdMethod,
    /// Weight (`-w`, 0..=2147483647); 0 takes the server out of new
    /// scheduling.
    pub weight: u32,
    /// Upper connection threshold (`-x`), 0 = none.
    pub u_threshold: u32,
    /// Lower connection threshold (`-y`), 0 = none.
    pub l_threshold: u32,
    /// Tunnel type, for `Tunnel`.
    pub tun_type: TunType,
    /// Tunnel destination port, for GUE.
    pub tun_port: u16,
    /// Tunnel checksum mode.
    pub tun_csum: TunCsum,
}

impl Dest {
    /// A destination with ipvsadm's defaults (`-g`, weight 1).
    pub fn new(addr: impl Into<IpAddr>, port: u16) -> Self {
        Dest {
            addr: addr.into(),
            port,
            fwd: FwdMethod::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: TunType::Ipip,
            tun_port: 0,
            tun_csum: TunCsum::NoCsum,
        }
    }
}

/// JSON schema of an address field: an IPv4 or an IPv6 address
/// (schemars' own `format: ip` is not one validators check).
pub fn ip_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "oneOf": [{ "format": "ipv4" }, { "format": "ipv6" }]
    })
}

/// The all-ones netmask of `addr`'s family (no persistence granularity).
pub fn full_mask(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::BROADCAST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(u128::MAX)),
    }
}

/// The netmask of `prefix` leading ones in `addr`'s family (`prefix` at
/// most the family's width).
pub fn prefix_mask(addr: IpAddr, prefix: u32) -> IpAddr {
    match addr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(
            u32::MAX.checked_shl(32 - prefix.min(32)).unwrap_or(0),
        )),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(
            u128::MAX.checked_shl(128 - prefix.min(128)).unwrap_or(0),
        )),
    }
}

/// Connection timeouts in seconds (`--set tcp tcpfin udp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Timeouts {
    /// TCP ESTABLISHED timeout (kernel default 900 s).
    pub tcp: u32,
    /// TCP FIN_WAIT timeout (kernel default 120 s).
    pub tcp_fin: u32,
    /// UDP timeout (kernel default 300 s).
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        }
    }
}

/// Traffic counters as IPVS keeps them (`--stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets client → server.
    pub inpkts: u64,
    /// Packets server → client.
    pub outpkts: u64,
    /// Bytes client → server (IP layer).
    pub inbytes: u64,
    /// Bytes server → client (IP layer).
    pub outbytes: u64,
}

/// Rate estimates as IPVS shows them (`--rate`), already scaled to per-second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Packets per second in.
    pub inpps: u64,
    /// Packets per second out.
    pub outpps: u64,
    /// Bytes per second in.
    pub inbps: u64,
    /// Bytes per second out.
    pub outbps: u64,
}

/// IPVS connection states: TCP's in the kernel's order (`IP_VS_TCP_S_*`),
/// UDP's pseudo state, and SCTP's (`IP_VS_SCTP_S_*`, the kernel's number
/// + 16). The data plane stores the same numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[repr(u8)]
pub enum ConnState {
    /// NONE
    None = 0,
    /// ESTABLISHED
    Established = 1,
    /// SYN_SENT
    SynSent = 2,
    /// SYN_RECV
    SynRecv = 3,
    /// FIN_WAIT
    FinWait = 4,
    /// TIME_WAIT
    TimeWait = 5,
    /// CLOSE
    Close = 6,
    /// CLOSE_WAIT
    CloseWait = 7,
    /// LAST_ACK
    LastAck = 8,
    /// LISTEN
    Listen = 9,
    /// SYNACK
    SynAck = 10,
    /// UDP connections have this single pseudo-state.
    Udp = 11,
    /// A persistence template one of whose connections got established
    /// or answered (IPVS's `IP_VS_CTPL_S_ASSURED`); a template otherwise
    /// shows [`ConnState::None`]. Never stored by the data plane.
    Assured = 12,
    /// SCTP `NONE` (`IP_VS_SCTP_S_NONE`)
    SctpNone = 16,
    /// SCTP `INIT1`: the client's first INIT seen
    SctpInit1 = 17,
    /// SCTP `INIT`: a retransmitted INIT
    SctpInit = 18,
    /// SCTP `C-SENT`
    SctpCookieSent = 19,
    /// SCTP `C-REPLIED`
    SctpCookieReplied = 20,
    /// SCTP `C-WAIT`
    SctpCookieWait = 21,
    /// SCTP `COOKIE`
    SctpCookie = 22,
    /// SCTP `C-ECHOED`
    SctpCookieEchoed = 23,
    /// SCTP `ESTABLISHED`
    SctpEstablished = 24,
    /// SCTP `S-SENT`
    SctpShutdownSent = 25,
    /// SCTP `S-RECEIVED`
    SctpShutdownReceived = 26,
    /// SCTP `S-ACK-SENT`
    SctpShutdownAckSent = 27,
    /// SCTP `REJECTED`
    SctpRejected = 28,
    /// SCTP `CLOSED`
    SctpClosed = 29,
}

impl ConnState {
    /// The first SCTP state's number: the kernel's SCTP state `n` is
    /// stored as `SCTP_BASE + n`.
    pub const SCTP_BASE: u8 = 16;

    /// Decodes the byte the data plane stores.
    pub fn from_u8(v: u8) -> Option<Self> {
        use ConnState::*;
        Some(match v {
            0 => None,
            1 => Established,
            2 => SynSent,
            3 => SynRecv,
            4 => FinWait,
            5 => TimeWait,
            6 => Close,
            7 => CloseWait,
            8 => LastAck,
            9 => Listen,
            10 => SynAck,
            11 => Udp,
            16 => SctpNone,
            17 => SctpInit1,
            18 => SctpInit,
            19 => SctpCookieSent,
            20 => SctpCookieReplied,
            21 => SctpCookieWait,
            22 => SctpCookie,
            23 => SctpCookieEchoed,
            24 => SctpEstablished,
            25 => SctpShutdownSent,
            26 => SctpShutdownReceived,
            27 => SctpShutdownAckSent,
            28 => SctpRejected,
            29 => SctpClosed,
            _ => return Option::None,
        })
    }

    /// The state a new connection of `proto` starts in (before its first
    /// packet's transition).
    pub fn initial(proto: Protocol) -> Self {
        match proto {
            Protocol::Tcp => ConnState::None,
            Protocol::Udp => ConnState::Udp,
            Protocol::Sctp => ConnState::SctpNone,
        }
    }

    /// Whether IPVS counts a connection in this state as active
    /// (`ActiveConn`); every other state counts as inactive.
    pub fn is_active(self) -> bool {
        matches!(self, ConnState::Established | ConnState::SctpEstablished)
    }

    /// Whether this is one of SCTP's states.
    pub fn is_sctp(self) -> bool {
        self as u8 >= Self::SCTP_BASE
    }

    /// The name `ipvsadm -Lc` prints.
    pub fn name(self) -> &'static str {
        use ConnState::*;
        match self {
            None => "NONE",
            Established => "ESTABLISHED",
            SynSent => "SYN_SENT",
            SynRecv => "SYN_RECV",
            FinWait => "FIN_WAIT",
            TimeWait => "TIME_WAIT",
            Close => "CLOSE",
            CloseWait => "CLOSE_WAIT",
            LastAck => "LAST_ACK",
            Listen => "LISTEN",
            SynAck => "SYNACK",
            Udp => "UDP",
            Assured => "ASSURED",
            SctpNone => "NONE",
            SctpInit1 => "INIT1",
            SctpInit => "INIT",
            SctpCookieSent => "C-SENT",
            SctpCookieReplied => "C-REPLIED",
            SctpCookieWait => "C-WAIT",
            SctpCookie => "COOKIE",
            SctpCookieEchoed => "C-ECHOED",
            SctpEstablished => "ESTABLISHED",
            SctpShutdownSent => "S-SENT",
            SctpShutdownReceived => "S-RECEIVED",
            SctpShutdownAckSent => "S-ACK-SENT",
            SctpRejected => "REJECTED",
            SctpClosed => "CLOSED",
        }
    }

    /// The kernel's default timeout for this state, with `--set` applied
    /// (`tcp_timeouts`, `udp_timeouts`, `sctp_timeouts`; `--set` changes
    /// no SCTP timeout).
    pub fn timeout_secs(self, t: &Timeouts) -> u32 {
        use ConnState::*;
        match self {
            None => 2,
            Established => t.tcp,
            SynSent => 120,
            SynRecv => 60,
            FinWait => t.tcp_fin,
            TimeWait => 120,
            Close => 10,
            CloseWait => 60,
            LastAck => 30,
            Listen => 120,
            SynAck => 120,
            Udp => t.udp,
            Assured => 2,
            SctpNone => 2,
            SctpInit1 | SctpRejected => 4,
            SctpEstablished => 15 * 60,
            // IP_VS_SCTP_MAX_RTO
            SctpInit | SctpCookieSent | SctpCookieReplied | SctpCookieWait | SctpCookie
            | SctpCookieEchoed | SctpShutdownSent | SctpShutdownReceived | SctpShutdownAckSent
            | SctpClosed => 61,
        }
    }
}

/// Which connection-sync daemon (`--start-daemon master|backup`): IPVS runs
/// at most one of each at a time.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SyncState {
    /// Sends the director's connections to the group (`IP_VS_STATE_MASTER`).
    Master,
    /// Receives them from the group (`IP_VS_STATE_BACKUP`).
    Backup,
}

impl SyncState {
    /// The word ipvsadm takes and prints (`master`, `backup`).
    pub fn name(self) -> &'static str {
        match self {
            SyncState::Master => "master",
            SyncState::Backup => "backup",
        }
    }
}

impl fmt::Display for SyncState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A connection-sync daemon, as `--start-daemon` asks for it and as
/// `-L --daemon` shows it (IPVS's `ipvs_sync_daemon_cfg`).
///
/// In a request a zero `sync_maxlen`, `mcast_port`, `mcast_ttl` and an
/// unspecified (`0.0.0.0`) `mcast_group` mean "the default"; a running
/// daemon has them filled in as the kernel fills them in
/// (`start_sync_thread`, see [`SyncDaemon::with_defaults`]). IPv4 groups
/// only, for now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SyncDaemon {
    /// Master or backup.
    pub state: SyncState,
    /// The interface the sync messages go out of / come in on
    /// (`--mcast-interface`, at most [`SyncDaemon::IFNAME_MAX`] bytes).
    pub mcast_ifn: String,
    /// `--syncid`: a master stamps its messages with it; a backup takes
    /// only messages with its own (0: any).
    #[serde(default)]
    pub syncid: u8,
    /// `--sync-maxlen`: the largest sync message (UDP payload) in bytes.
    #[serde(default)]
    pub sync_maxlen: u16,
    /// `--mcast-group`.
    #[serde(default = "unspecified")]
    pub mcast_group: Ipv4Addr,
    /// `--mcast-port`: the UDP port (the base port, with several sync
    /// threads).
    #[serde(default)]
    pub mcast_port: u16,
    /// `--mcast-ttl`.
    #[serde(default)]
    pub mcast_ttl: u8,
}

fn unspecified() -> Ipv4Addr {
    Ipv4Addr::UNSPECIFIED
}

impl SyncDaemon {
    /// The default group (`IP_VS_SYNC_GROUP`).
    pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
    /// The default UDP port (`IP_VS_SYNC_PORT`).
    pub const DEFAULT_PORT: u16 = 8848;
    /// The default multicast TTL.
    pub const DEFAULT_TTL: u8 = 1;
    /// Longest interface name (`IP_VS_IFNAME_MAXLEN` - 1, the kernel's
    /// `IFNAMSIZ` - 1).
    pub const IFNAME_MAX: usize = 15;

    /// A request for a daemon of `state` on `mcast_ifn`, everything else
    /// left to the defaults (and syncid 0, as ipvsadm sends it without
    /// `--syncid`).
    pub fn new(state: SyncState, mcast_ifn: &str) -> Self {
        SyncDaemon {
            state,
            mcast_ifn: mcast_ifn.to_string(),
            syncid: 0,
            sync_maxlen: 0,
            mcast_group: Ipv4Addr::UNSPECIFIED,
            mcast_port: 0,
            mcast_ttl: 0,
        }
    }

    /// This request with the defaults filled in as the kernel's
    /// `start_sync_thread` fills them, `mtu` being the interface's MTU:
    /// group 224.0.0.81, port 8848, TTL 1; `sync_maxlen` by default 1500
    /// minus the headers for a master (whatever the MTU) and the MTU
    /// (clamped to 1500..=65535) minus the headers for a backup; a given
    /// `sync_maxlen` is clamped to 1 (a master) or 1024 (a backup) at least
    /// and 65535 minus the headers at most (`sync::sync_maxlen`).
    pub fn with_defaults(&self, mtu: u32) -> SyncDaemon {
        let mut d = self.clone();
        if d.mcast_group.is_unspecified() {
            d.mcast_group = Self::DEFAULT_GROUP;
        }
        if d.mcast_port == 0 {
            d.mcast_port = Self::DEFAULT_PORT;
        }
        if d.mcast_ttl == 0 {
            d.mcast_ttl = Self::DEFAULT_TTL;
        }
        let role = match d.state {
            SyncState::Master => crate::sync::Role::Master,
            SyncState::Backup => crate::sync::Role::Backup,
        };
        d.sync_maxlen = crate::sync::sync_maxlen(role, d.sync_maxlen, mtu, false);
        d
    }

    /// What the kernel refuses before it looks at the interface (EINVAL,
    /// ipvsadm's "Invalid operation" text): a name longer than
    /// [`SyncDaemon::IFNAME_MAX`] (the netlink policy) and a group that is
    /// neither unspecified nor multicast (`ip_vs_genl_new_daemon`).
    pub fn validate(&self) -> Result<(), String> {
        if self.mcast_ifn.len() > Self::IFNAME_MAX {
            return Err(format!(
                "interface name {:?} is longer than {} bytes",
                self.mcast_ifn,
                Self::IFNAME_MAX
            ));
        }
        if !self.mcast_group.is_unspecified() && !self.mcast_group.is_multicast() {
            return Err(format!(
                "mcast group {} is not a multicast address",
                self.mcast_group
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_defaults_as_the_kernel_fills_them() {
        let m = SyncDaemon::new(SyncState::Master, "eth0").with_defaults(9000);
        assert_eq!(m.sync_maxlen, 1472, "a master ignores the MTU");
        assert_eq!(m.mcast_group, Ipv4Addr::new(224, 0, 0, 81));
        assert_eq!((m.mcast_port, m.mcast_ttl, m.syncid), (8848, 1, 0));
        let b = SyncDaemon::new(SyncState::Backup, "lo");
        assert_eq!(b.with_defaults(65536).sync_maxlen, 65507);
        assert_eq!(b.with_defaults(9000).sync_maxlen, 8972);
        assert_eq!(b.with_defaults(1280).sync_maxlen, 1472, "at least 1500");
        let mut given = SyncDaemon::new(SyncState::Backup, "lo");
        given.sync_maxlen = 100;
        given.mcast_group = Ipv4Addr::new(239, 1, 2, 3);
        given.mcast_port = 9000;
        given.mcast_ttl = 3;
        let g = given.with_defaults(1500);
        assert_eq!(
            g.sync_maxlen, 1024,
            "a backup's given maxlen is 1024 at least"
        );
        assert_eq!(
            (g.mcast_group, g.mcast_port, g.mcast_ttl),
            (Ipv4Addr::new(239, 1, 2, 3), 9000, 3)
        );
        given.state = SyncState::Master;
        assert_eq!(given.with_defaults(1500).sync_maxlen, 100);
        given.sync_maxlen = 65535;
        assert_eq!(given.with_defaults(1500).sync_maxlen, 65507);
    }

    #[test]
    fn sync_requests_the_kernel_refuses() {
        let mut d = SyncDaemon::new(SyncState::Master, "0123456789abcde");
        assert_eq!(d.validate(), Ok(()));
        d.mcast_ifn.push('f');
        assert!(d.validate().is_err());
        d.mcast_ifn.pop();
        d.mcast_group = Ipv4Addr::new(192, 0, 2, 1);
        assert!(d.validate().is_err());
    }

    #[test]
    fn sync_daemon_json_leaves_defaults_out() {
        let d: SyncDaemon =
            serde_json::from_str(r#"{"state":"backup","mcast_ifn":"eth1"}"#).unwrap();
        assert_eq!(d, SyncDaemon::new(SyncState::Backup, "eth1"));
        let line = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<SyncDaemon>(&line).unwrap(), d);
    }
}
