//! The LVS model, named as IPVS names it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;

/// Transport protocol of a virtual service (`-t`, `-u`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// `-t`, `--tcp-service`
    Tcp,
    /// `-u`, `--udp-service`
    Udp,
}

impl Protocol {
    /// IANA protocol number, as carried in the IPv4 header.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    /// The name ipvsadm prints in listings (`TCP`, `UDP`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What identifies a virtual service: protocol, virtual address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceKey {
    /// Transport protocol.
    pub proto: Protocol,
    /// Virtual IP address.
    pub addr: Ipv4Addr,
    /// Virtual port (0 only for persistent services, as in IPVS).
    pub port: u16,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}:{}", self.proto, self.addr, self.port)
    }
}

/// Packet forwarding method of a real server (`-m`, `-g`, `-i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Protocol, address and port.
    pub key: ServiceKey,
    /// Scheduler name exactly as ipvsadm spells it (`rr`, `wlc`, ...).
    pub scheduler: String,
    /// `IP_VS_SVC_F_*` flags.
    pub flags: u32,
    /// Persistence timeout in seconds (`-p`); meaningful with `PERSISTENT`.
    pub timeout: u32,
    /// Persistence netmask (`-M`), as a prefix-style mask.
    pub netmask: Ipv4Addr,
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
            netmask: Ipv4Addr::BROADCAST,
            pe_name: None,
        }
    }

    /// True when `-p` is set.
    pub fn is_persistent(&self) -> bool {
        self.flags & svc_flags::PERSISTENT != 0
    }
}

/// A real server of a virtual service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dest {
    /// Real server address.
    pub addr: Ipv4Addr,
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
    pub fn new(addr: Ipv4Addr, port: u16) -> Self {
        Dest {
            addr,
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

/// Connection timeouts in seconds (`--set tcp tcpfin udp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// IPVS TCP connection states, in the kernel's order (`IP_VS_TCP_S_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
}

impl ConnState {
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
            _ => return Option::None,
        })
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
        }
    }

    /// The kernel's default timeout for this state, with `--set` applied.
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
        }
    }
}
