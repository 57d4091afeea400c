//! What a keepalived.conf says about LVS, with keepalived's defaults applied.
//!
//! Every value here is the *effective* one: a checker's `retry`, for
//! example, is already resolved along keepalived's chain checker → real
//! server → virtual server → checker-type default. All types serialize with
//! serde and compare with `==`, so xvsd can diff two loads.

use crate::Location;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use xvs_core::model::{Dest, FwdMethod, Protocol, Service, ServiceKey, TunCsum, TunType};

/// A whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// `global_defs` keys xvs uses.
    pub global: GlobalDefs,
    /// The root `SSL { }` block (for `SSL_GET`), if any.
    pub ssl: Option<SslContext>,
    /// Every virtual service, `virtual_server group` blocks expanded to one
    /// entry per address and port of the group, in file order.
    pub virtual_servers: Vec<VirtualServer>,
    /// The `vrrp_instance` blocks (otherwise left to keepalived), in file
    /// order: what `lvs_sync_daemon` refers to and what the `INSTANCE` lines
    /// of a notify FIFO name. A block keepalived skips (no name or a name
    /// already used) is not listed.
    pub vrrp_instances: Vec<VrrpInstanceRef>,
    /// What was skipped or adjusted; never fatal.
    pub warnings: Vec<crate::Warning>,
}

/// The parts of `global_defs` that concern the LVS half.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalDefs {
    /// `router_id NAME` (used in logs).
    pub router_id: Option<String>,
    /// `lvs_timeouts [tcp N] [tcpfin N] [udp N]`; `None` leaves the
    /// current value (as `ipvsadm --set` with 0).
    pub lvs_timeouts: LvsTimeouts,
    /// `lvs_flush`: flush all IPVS services at start-up.
    pub lvs_flush: bool,
    /// `lvs_flush_onstop` / `lvs_flush_on_stop [VS]`.
    pub lvs_flush_on_stop: Option<FlushOnStop>,
    /// `script_user USER [GROUP]`: default user for notify and MISC_CHECK scripts.
    pub script_user: Option<ScriptUser>,
    /// `enable_script_security`.
    pub enable_script_security: bool,
    /// `lvs_sync_daemon INTERFACE [[inst] VRRP_INSTANCE] [id SYNC_ID]
    /// [maxlen LEN] [port PORT] [ttl TTL] [group IPADDR]`, or the deprecated
    /// `lvs_sync_daemon_interface INTERFACE` inside a `vrrp_instance`.
    pub lvs_sync_daemon: Option<LvsSyncDaemon>,
    /// `notify_fifo PATH [USER [GROUP]]`: keepalived writes every VRRP
    /// state change there (and its checker process the LVS ones).
    pub notify_fifo: Option<NotifyFifo>,
    /// `vrrp_notify_fifo PATH [USER [GROUP]]`: the VRRP state changes only.
    /// `None` when it names the same FIFO as `notify_fifo` (keepalived then
    /// ignores it, so that no line is written twice).
    pub vrrp_notify_fifo: Option<NotifyFifo>,
}

/// IPVS's connection sync daemon as keepalived runs it (`lvs_sync_daemon`).
///
/// Without a VRRP instance keepalived's checker process runs both the master
/// and the backup daemon for as long as it runs. With one, keepalived's VRRP
/// process runs the master daemon while that instance is MASTER and the
/// backup daemon otherwise (starting as backup).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LvsSyncDaemon {
    /// Where the `lvs_sync_daemon` (or `lvs_sync_daemon_interface`) line is.
    pub location: Location,
    /// Interface the daemons send and receive on (at most 15 characters).
    pub interface: String,
    /// The VRRP instance whose state selects master or backup; `None`: both
    /// daemons run. Always one of [`Config::vrrp_instances`].
    pub vrrp_instance: Option<String>,
    /// Effective sync id: `id N`, else the instance's `virtual_router_id`
    /// when the instance is named on the `lvs_sync_daemon` line, else 0
    /// (no instance, or the deprecated `lvs_sync_daemon_interface` form).
    pub syncid: u8,
    /// `maxlen` (1..65507): largest sync message; `None`: the kernel's
    /// default (from the interface's MTU).
    pub maxlen: Option<u16>,
    /// `port` (1..65535): UDP port; `None`: the kernel's 8848.
    pub port: Option<u16>,
    /// `ttl` (1..255): multicast TTL; `None`: the kernel's 1.
    pub ttl: Option<u8>,
    /// `group` (an IPv4 or IPv6 multicast address); `None`: the kernel's
    /// 224.0.0.81.
    pub group: Option<IpAddr>,
}

impl LvsSyncDaemon {
    /// True if the daemons `other` describes are the ones `self` describes,
    /// as keepalived's `ipvs_syncd_changed` decides on a reload (interface,
    /// sync id, maxlen, port, ttl, group; not the location nor the VRRP
    /// instance): when false, keepalived stops and restarts the daemons.
    pub fn same_daemon(&self, other: &LvsSyncDaemon) -> bool {
        self.interface == other.interface
            && self.syncid == other.syncid
            && self.maxlen == other.maxlen
            && self.port == other.port
            && self.ttl == other.ttl
            && self.group == other.group
    }
}

/// A notify FIFO: `notify_fifo` / `vrrp_notify_fifo PATH [USER [GROUP]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyFifo {
    /// The FIFO (keepalived creates it, mode 0644, when it does not exist).
    pub path: PathBuf,
    /// Owner given to a FIFO keepalived creates (else `script_user`'s
    /// default); names as written, not resolved.
    pub user: Option<ScriptUser>,
}

/// What xvs keeps of a `vrrp_instance NAME { }` block (the rest is VRRP's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpInstanceRef {
    /// Where the `vrrp_instance` line is.
    pub location: Location,
    /// The instance name (as in notify FIFO `INSTANCE "NAME"` lines).
    pub name: String,
    /// `virtual_router_id` (1..255); `None` when missing or invalid (then
    /// keepalived refuses the instance).
    pub virtual_router_id: Option<u8>,
    /// `interface` (last one given; names of 16 characters or more are
    /// ignored, as keepalived does).
    pub interface: Option<String>,
}

/// `lvs_flush_on_stop` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlushOnStop {
    /// No argument: flush everything.
    Full,
    /// `VS`: remove only the configured virtual servers.
    Vs,
}

/// `lvs_timeouts` in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LvsTimeouts {
    /// `tcp N`
    pub tcp: Option<u32>,
    /// `tcpfin N`
    pub tcp_fin: Option<u32>,
    /// `udp N`
    pub udp: Option<u32>,
}

impl LvsTimeouts {
    /// `base` with the configured timeouts applied (0 keeps the base value,
    /// as `ipvsadm --set`).
    pub fn apply(&self, base: xvs_core::model::Timeouts) -> xvs_core::model::Timeouts {
        let pick = |v: Option<u32>, b: u32| match v {
            Some(0) | None => b,
            Some(v) => v,
        };
        xvs_core::model::Timeouts {
            tcp: pick(self.tcp, base.tcp),
            tcp_fin: pick(self.tcp_fin, base.tcp_fin),
            udp: pick(self.udp, base.udp),
        }
    }
}

/// The root `SSL { password ca certificate key }` block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SslContext {
    /// `password`
    pub password: Option<String>,
    /// `ca`
    pub ca: Option<String>,
    /// `certificate`
    pub certificate: Option<String>,
    /// `key`
    pub key: Option<String>,
}

/// User and group a script runs as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptUser {
    /// User name.
    pub user: String,
    /// Group name (a leading `:` asks for supplementary groups, as keepalived).
    pub group: Option<String>,
}

/// A notify or check script: `"/path arg 'quoted arg'" [user [group]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    /// Program and arguments, quotes and escapes already decoded.
    pub args: Vec<String>,
    /// Run as this user (else `global_defs`' `script_user`, else keepalived's
    /// default `keepalived_script` or root).
    pub user: Option<ScriptUser>,
}

/// Forwarding method of a real or sorry server (`lvs_method`/`lb_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarding {
    /// `NAT` → Masq, `DR` → Route, `TUN` → Tunnel.
    pub method: FwdMethod,
    /// `type ipip|gue|gre` (TUN only).
    pub tun_type: TunType,
    /// `port N` (GUE only).
    pub tun_port: u16,
    /// `nocsum|csum|remcsum`.
    pub tun_csum: TunCsum,
}

impl Forwarding {
    /// keepalived's default: NAT.
    pub const NAT: Forwarding = Forwarding {
        method: FwdMethod::Masq,
        tun_type: TunType::Ipip,
        tun_port: 0,
        tun_csum: TunCsum::NoCsum,
    };
}

impl Default for Forwarding {
    fn default() -> Self {
        Forwarding::NAT
    }
}

/// One virtual service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualServer {
    /// Where the `virtual_server` line is.
    pub location: Location,
    /// `virtual_server group NAME`: the group this entry was expanded from.
    pub group: Option<String>,
    /// `virtual_server fwmark N` or a group's `fwmark N` entry: the mark of
    /// a fwmark service (then `addr` is 0.0.0.0, or `::` for an IPv6 one,
    /// `port` 0 and `protocol` TCP, as IPVS keys it); 0 for an address
    /// service.
    pub fwmark: u32,
    /// Virtual IP (IPv4 or IPv6; its family is the service's).
    pub addr: IpAddr,
    /// Virtual port (0 only for persistent services).
    pub port: u16,
    /// `protocol TCP|UDP` (keepalived defaults to UDP, with a warning).
    pub protocol: Protocol,
    /// The classifier rules giving packets this service's mark
    /// (`@xvsd match` lines; fwmark services only).
    pub mark_rules: Vec<MatchRule>,
    /// `lvs_sched` / `lb_algo` (default `wlc`, with a warning).
    pub scheduler: String,
    /// `ops`, `flag-1/2/3`, `sh-port`, `sh-fallback`, `mh-port`,
    /// `mh-fallback` as `xvs_core::model::svc_flags`.
    pub flags: u32,
    /// The default forwarding method of the real servers (`lvs_method` /
    /// `lb_kind`; NAT when unset).
    pub forwarding: Forwarding,
    /// `persistence_timeout [N]` (no value: 360 s); `None` = not persistent.
    pub persistence_timeout: Option<u32>,
    /// `persistence_granularity MASK` (IPv4: a netmask) or
    /// `persistence_granularity LEN` (IPv6: a prefix length 1..128, kept as
    /// its mask), of the service's family.
    pub persistence_granularity: Option<IpAddr>,
    /// `persistence_engine NAME`.
    pub persistence_engine: Option<String>,
    /// `delay_loop` (default 60 s).
    pub delay_loop: Duration,
    /// `connect_timeout` at virtual-server level (default 5 s).
    pub connect_timeout: Duration,
    /// `retry` at virtual-server level (default: the checker type's).
    pub retry: Option<u32>,
    /// `delay_before_retry` at virtual-server level.
    pub delay_before_retry: Option<Duration>,
    /// `warmup` at virtual-server level.
    pub warmup: Option<Duration>,
    /// `inhibit_on_failure` (default for the real servers).
    pub inhibit_on_failure: bool,
    /// `alpha`: real servers start down.
    pub alpha: bool,
    /// `omega`: run quorum_down / notify_down at shutdown.
    pub omega: bool,
    /// `quorum N` (default 1; lowered to the total real-server weight, with a warning).
    pub quorum: u32,
    /// `hysteresis N` (default 0; below quorum).
    pub hysteresis: u32,
    /// `quorum_up SCRIPT`.
    pub quorum_up: Option<Script>,
    /// `quorum_down SCRIPT`.
    pub quorum_down: Option<Script>,
    /// `ha_suspend`: suspend checkers while the VIP is not local.
    pub ha_suspend: bool,
    /// `virtualhost NAME` (default Host for HTTP_GET / SSL_GET).
    pub virtualhost: Option<String>,
    /// `sorry_server IP [PORT]` with `sorry_server_inhibit`,
    /// `sorry_server_lvs_method`.
    pub sorry_server: Option<SorryServer>,
    /// `real_server` blocks.
    pub real_servers: Vec<RealServer>,
}

/// One `@xvsd match` rule and where it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchRule {
    /// Where the `match` line is.
    pub location: Location,
    /// The rule, with the virtual server's mark.
    pub rule: xvs_core::fwmark::MarkRule,
}

/// `sorry_server`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SorryServer {
    /// Where the `sorry_server` line is.
    pub location: Location,
    /// Address.
    pub addr: IpAddr,
    /// Port (the virtual port when not given or for DR/TUN).
    pub port: u16,
    /// Forwarding (`sorry_server_lvs_method`, else the virtual server's).
    pub forwarding: Forwarding,
    /// `sorry_server_inhibit`.
    pub inhibit: bool,
}

impl SorryServer {
    /// The IPVS destination of the sorry server (weight 1).
    pub fn to_dest(&self) -> Dest {
        fwd_dest(self.addr, self.port, &self.forwarding, 1, 0, 0)
    }
}

/// `real_server IP [PORT] { ... }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealServer {
    /// Where the `real_server` line is.
    pub location: Location,
    /// Address.
    pub addr: IpAddr,
    /// Port (the virtual port when not given; DR/TUN always use it).
    pub port: u16,
    /// `weight` (default: the virtual server's `weight`, 1).
    pub weight: u32,
    /// `lvs_method` (default: the virtual server's).
    pub forwarding: Forwarding,
    /// `uthreshold` (0 = none).
    pub u_threshold: u32,
    /// `lthreshold` (0 = none).
    pub l_threshold: u32,
    /// `inhibit_on_failure [BOOL]` (default: the virtual server's): on failure
    /// set weight 0 instead of removing the server.
    pub inhibit_on_failure: bool,
    /// `alpha [BOOL]` (default: the virtual server's).
    pub alpha: bool,
    /// `notify_up SCRIPT`.
    pub notify_up: Option<Script>,
    /// `notify_down SCRIPT`.
    pub notify_down: Option<Script>,
    /// `virtualhost NAME`.
    pub virtualhost: Option<String>,
    /// Health checkers; none means "always up".
    pub checkers: Vec<Checker>,
}

/// A health checker with its effective timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checker {
    /// Where the checker keyword is.
    pub location: Location,
    /// Type and type-specific options.
    pub kind: CheckerKind,
    /// Connection options (every type but MISC_CHECK and unsupported ones).
    pub conn: Option<ConnOpts>,
    /// `retry` (`nb_get_retry`): extra attempts before declaring failure.
    /// Defaults: 1, MISC_CHECK 0, DNS_CHECK 3.
    pub retry: u32,
    /// `delay_before_retry`. Defaults: HTTP_GET/SSL_GET 3 s, DNS_CHECK the
    /// delay_loop, others 1 s.
    pub delay_before_retry: Duration,
    /// `warmup`: random delay up to this before the first check (default delay_loop).
    pub warmup: Duration,
    /// `delay_loop`: interval between checks.
    pub delay_loop: Duration,
    /// `alpha`: the checker starts failed.
    pub alpha: bool,
    /// `log_all_failures`.
    pub log_all_failures: bool,
}

/// Where and how a checker connects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnOpts {
    /// `connect_ip` (default: the real server's address).
    pub connect_ip: IpAddr,
    /// `connect_port` (default: the real server's port).
    pub connect_port: u16,
    /// `bindto`.
    pub bindto: Option<IpAddr>,
    /// `bind_port`.
    pub bind_port: Option<u16>,
    /// `bind_if`.
    pub bind_if: Option<String>,
    /// `fwmark` put on the checker's packets.
    pub fwmark: Option<u32>,
    /// `connect_timeout` (default: real server's, virtual server's, 5 s).
    pub connect_timeout: Duration,
}

/// Checker type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CheckerKind {
    /// `TCP_CHECK`.
    Tcp,
    /// `HTTP_GET` (`tls: false`) and `SSL_GET` (`tls: true`).
    Http(HttpCheck),
    /// `MISC_CHECK`.
    Misc(MiscCheck),
    /// `UDP_CHECK`.
    Udp(UdpCheck),
    /// `DNS_CHECK`.
    Dns(DnsCheck),
    /// `SMTP_CHECK`.
    Smtp(SmtpCheck),
    /// `PING_CHECK`.
    Ping,
    /// `BFD_CHECK`, `FILE_CHECK`: parsed only to be refused.
    Unsupported {
        /// The keyword.
        keyword: String,
    },
}

impl CheckerKind {
    /// The keepalived keyword of this checker.
    pub fn keyword(&self) -> &str {
        match self {
            CheckerKind::Tcp => "TCP_CHECK",
            CheckerKind::Http(h) if h.tls => "SSL_GET",
            CheckerKind::Http(_) => "HTTP_GET",
            CheckerKind::Misc(_) => "MISC_CHECK",
            CheckerKind::Udp(_) => "UDP_CHECK",
            CheckerKind::Dns(_) => "DNS_CHECK",
            CheckerKind::Smtp(_) => "SMTP_CHECK",
            CheckerKind::Ping => "PING_CHECK",
            CheckerKind::Unsupported { keyword } => keyword,
        }
    }
}

/// HTTP version sent by HTTP_GET / SSL_GET.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpProtocol {
    /// `1.0` (default).
    #[default]
    Http10,
    /// `1.0C`: 1.0 with `Connection: close`.
    Http10Close,
    /// `1.1`.
    Http11,
}

/// `HTTP_GET` / `SSL_GET`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpCheck {
    /// `SSL_GET`.
    pub tls: bool,
    /// `url { }` blocks (at least one).
    pub urls: Vec<Url>,
    /// `http_protocol`.
    pub http_protocol: HttpProtocol,
    /// `enable_sni` (also set by `sni_name`).
    pub enable_sni: bool,
    /// `sni_name`.
    pub sni_name: Option<String>,
    /// `fast_recovery`.
    pub fast_recovery: bool,
    /// `tls_compliant`.
    pub tls_compliant: bool,
}

/// `url { }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Url {
    /// `path`.
    pub path: String,
    /// `digest`: MD5 of the body, 32 lowercase hex digits.
    pub digest: Option<String>,
    /// `status_code`: accepted ranges, inclusive (default 200-299).
    pub status_codes: Vec<(u16, u16)>,
    /// Effective Host: the url's, else the checker's, real server's or
    /// virtual server's `virtualhost`.
    pub virtualhost: Option<String>,
    /// `regex`.
    pub regex: Option<String>,
    /// `regex_no_match`.
    pub regex_no_match: bool,
    /// `regex_options`.
    pub regex_options: Vec<String>,
    /// `regex_min_offset`.
    pub regex_min_offset: Option<u64>,
    /// `regex_max_offset`.
    pub regex_max_offset: Option<u64>,
    /// `tls_compliant` at url level.
    pub tls_compliant: bool,
}

impl Url {
    /// True if `code` is accepted.
    pub fn accepts(&self, code: u16) -> bool {
        self.status_codes
            .iter()
            .any(|&(lo, hi)| lo <= code && code <= hi)
    }
}

/// `MISC_CHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MiscCheck {
    /// `misc_path` and `user`.
    pub script: Script,
    /// `misc_timeout` (default: the virtual server's delay_loop).
    pub timeout: Duration,
    /// `misc_dynamic`: exit codes 2..255 set the weight to code − 2.
    pub dynamic: bool,
}

/// `UDP_CHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpCheck {
    /// `payload HEX` (default: random bytes).
    pub payload: Option<Vec<u8>>,
    /// `require_reply [HEX]`.
    pub require_reply: bool,
    /// Expected reply bytes.
    pub reply: Option<Vec<u8>>,
    /// Per byte of `reply`: bits set are ignored (`x` nibbles).
    pub reply_mask: Option<Vec<u8>>,
    /// `min_reply_length` (default 0).
    pub min_reply_length: u16,
    /// `max_reply_length` (default 255).
    pub max_reply_length: u16,
}

/// `DNS_CHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsCheck {
    /// `type` (A NS CNAME SOA MX TXT AAAA RRSIG DNSKEY; default SOA), upper case.
    pub qtype: String,
    /// `name` (default empty: the root).
    pub name: String,
}

/// `SMTP_CHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpCheck {
    /// `helo_name` (default `smtpchecker.keepalived.org`).
    pub helo_name: String,
    /// `host { }` blocks: every one must pass; empty = the checker's own
    /// connection options.
    pub hosts: Vec<ConnOpts>,
}

fn fwd_dest(addr: IpAddr, port: u16, f: &Forwarding, weight: u32, u: u32, l: u32) -> Dest {
    let mut d = Dest::new(addr, port);
    d.fwd = f.method;
    d.weight = weight;
    d.u_threshold = u;
    d.l_threshold = l;
    if f.method == FwdMethod::Tunnel {
        d.tun_type = f.tun_type;
        d.tun_port = f.tun_port;
        d.tun_csum = f.tun_csum;
    }
    d
}

impl VirtualServer {
    /// The IPVS service key.
    pub fn key(&self) -> ServiceKey {
        if self.fwmark != 0 {
            return match self.addr {
                IpAddr::V4(_) => ServiceKey::fwmark(self.fwmark),
                IpAddr::V6(_) => ServiceKey::fwmark6(self.fwmark),
            };
        }
        ServiceKey::new(self.protocol, self.addr, self.port)
    }

    /// The IPVS service this virtual server configures.
    pub fn to_service(&self) -> Service {
        let mut s = Service::new(self.key(), &self.scheduler);
        s.flags = self.flags;
        if let Some(t) = self.persistence_timeout {
            s.flags |= xvs_core::model::svc_flags::PERSISTENT;
            s.timeout = t;
        }
        if let Some(m) = self.persistence_granularity {
            s.netmask = m;
        }
        // keepalived hands the engine to IPVS with the persistence only
        // (ipvs_set_srule): without persistence_timeout it is ignored.
        if self.persistence_timeout.is_some() {
            s.pe_name = self.persistence_engine.clone();
        }
        s
    }
}

impl RealServer {
    /// The IPVS destination with the configured weight (what is installed
    /// while the server is healthy).
    pub fn to_dest(&self, _vs: &VirtualServer) -> Dest {
        fwd_dest(
            self.addr,
            self.port,
            &self.forwarding,
            self.weight,
            self.u_threshold,
            self.l_threshold,
        )
    }
}
