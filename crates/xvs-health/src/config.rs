//! Checker configurations as plain data.
//!
//! These types are what the keepalived.conf parser is mapped onto. Every
//! timing field is an `Option`: `None` means "not configured at this level",
//! and [`CheckerConfig::timing`] resolves it with keepalived's defaults for the
//! checker's kind (see the table in `docs/keepalived.md`, "Health checks").
//! A caller that maps keepalived.conf should fill each field with the
//! checker's own keyword if present, else the `real_server`'s, else the
//! `virtual_server`'s (keepalived's `check_data.c` inheritance), and leave it
//! `None` only when no level sets it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::Outcome;

/// keepalived's `KEEPALIVED_DEFAULT_DELAY`: the `delay_loop` when none is set.
pub const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(60);
/// keepalived's default `connect_timeout` (`virtual_server` default, 5 s).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Options shared by every checker: where to connect, how long to wait, and
/// the retry/timing policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommonOpts {
    /// `connect_ip`: address to check instead of the real server's.
    pub connect_ip: Option<IpAddr>,
    /// `connect_port`: port to check instead of the real server's.
    pub connect_port: Option<u16>,
    /// `bindto`: local source address of the check's socket.
    pub bindto: Option<IpAddr>,
    /// `bind_port`: local source port of the check's socket (with the
    /// unspecified address when `bindto` is not set).
    pub bind_port: Option<u16>,
    /// `connect_timeout`: bound of each network step of one attempt
    /// (connect, TLS handshake, each read). Default 5 s.
    pub connect_timeout: Option<Duration>,
    /// `retry` (`nb_get_retry`): failed attempts tolerated, after the first
    /// one, before an up checker is declared down. Default per kind.
    pub retry: Option<u32>,
    /// `delay_before_retry`: pause between a failed attempt and its retry.
    /// Default per kind.
    pub delay_before_retry: Option<Duration>,
    /// `warmup`: the first attempt starts after a random delay in
    /// `[0, warmup]`. Default: `delay_loop`.
    pub warmup: Option<Duration>,
    /// `delay_loop`: interval between two checks of an unchanged state.
    /// Default 60 s.
    pub delay_loop: Option<Duration>,
    /// `alpha`: the checker starts *down* and the real server stays out of
    /// scheduling until the checker's first success. Without it the checker
    /// starts up, and one failure is enough to take it down the first time.
    pub alpha: bool,
}

/// `TCP_CHECK`: success when a TCP connection is established.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpCheck;

/// `http_protocol` of `HTTP_GET`/`SSL_GET`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum HttpProtocol {
    /// `GET … HTTP/1.0` (keepalived's default).
    #[default]
    Http10,
    /// `1.0C`: HTTP/1.0 with `Connection: close`.
    Http10Close,
    /// `1.1`: HTTP/1.1 with `Connection: close`.
    Http11,
}

/// One `url { }` block of `HTTP_GET`/`SSL_GET`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Url {
    /// `path`: request target, sent as is (`/health?x=1`).
    pub path: String,
    /// `digest`: MD5 of the response body as 32 hex digits (any case).
    /// The body is digested as received (chunked framing included), up to
    /// `Content-Length` bytes when the server sends that header.
    pub digest: Option<String>,
    /// `status_code`: accepted codes, as inclusive ranges (`200`, `200-299`).
    /// Empty means keepalived's default, 200-299.
    pub status_codes: Vec<RangeInclusive<u16>>,
    /// Per-url `virtualhost`; overrides [`HttpCheck::virtualhost`].
    pub virtualhost: Option<String>,
}

impl Url {
    /// A url with only a path: status 200-299, no digest.
    pub fn new(path: impl Into<String>) -> Self {
        Url {
            path: path.into(),
            ..Url::default()
        }
    }

    /// Whether `code` is accepted (keepalived's default is 200-299).
    pub fn status_ok(&self, code: u16) -> bool {
        if self.status_codes.is_empty() {
            (200..=299).contains(&code)
        } else {
            self.status_codes.iter().any(|r| r.contains(&code))
        }
    }
}

/// `HTTP_GET` (`tls: false`) and `SSL_GET` (`tls: true`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpCheck {
    /// `SSL_GET`: speak TLS. Certificates are not verified, as in keepalived.
    pub tls: bool,
    /// The urls; the check succeeds when every url succeeds.
    pub urls: Vec<Url>,
    /// `virtualhost` sent as the `Host` header (the checker's, else the
    /// real server's, else the virtual server's: the mapper folds them here).
    /// Without it the header is `IP:PORT` of the checked address.
    pub virtualhost: Option<String>,
    /// `http_protocol`.
    pub protocol: HttpProtocol,
    /// TLS server name indication (`enable_sni`/`sni_name`). `None`: no SNI
    /// is sent.
    pub sni: Option<String>,
}

/// `MISC_CHECK`: run a program; exit code 0 means up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MiscCheck {
    /// `misc_path`: the command line, split as keepalived splits it
    /// ([`crate::script::split_command`]): whitespace separates words, single
    /// and double quotes group, no shell unless the program cannot be
    /// executed directly (no `#!`), in which case `/bin/sh -c` runs it.
    pub path: String,
    /// `misc_timeout`: the program is sent SIGTERM (its whole process group)
    /// after this, then SIGKILL 2 s later; a timed-out run is a failure.
    /// `None`: `delay_loop`.
    pub timeout: Option<Duration>,
    /// `misc_dynamic`: exit codes 2..=255 mean up with weight `code - 2`;
    /// 1 means down; 0 means up with the configured weight.
    pub dynamic: bool,
    /// `user USER [GROUP]`: run as this user (names or numeric ids, resolved
    /// through `/etc/passwd` and `/etc/group`). `None`: the daemon's user.
    pub user: Option<String>,
    /// Group of `user`; `None`: the user's primary group.
    pub group: Option<String>,
}

/// `UDP_CHECK`: send a datagram; an ICMP error means down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpCheck {
    /// `payload`: bytes to send (default: 32 filler bytes, as keepalived).
    pub payload: Option<Vec<u8>>,
    /// `require_reply`: a reply must arrive within `connect_timeout`.
    /// Without it, silence until the timeout counts as success.
    pub require_reply: bool,
    /// Expected reply prefix (`require_reply HEX`), see [`HexPattern`].
    pub reply: Option<HexPattern>,
    /// `min_reply_length` (default 0).
    pub min_reply_len: u16,
    /// `max_reply_length` (default 255).
    pub max_reply_len: u16,
}

impl Default for UdpCheck {
    fn default() -> Self {
        UdpCheck {
            payload: None,
            require_reply: false,
            reply: None,
            min_reply_len: 0,
            max_reply_len: 255,
        }
    }
}

/// Bytes with optional wildcard nibbles, keepalived's `read_hex_str`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HexPattern {
    /// The bytes (wildcard nibbles are 0).
    pub data: Vec<u8>,
    /// Per byte, the bits that are wildcards (`X` in the text).
    pub mask: Vec<u8>,
}

impl HexPattern {
    /// Parse keepalived's hex notation: pairs of hex digits, spaces between
    /// bytes allowed, a lone digit before a space is one byte, and (when
    /// `wildcards`) `X`/`x` stands for any nibble.
    pub fn parse(text: &str, wildcards: bool) -> Result<HexPattern, String> {
        fn val(c: u8, wildcards: bool) -> Option<(u8, u8)> {
            match c {
                b'0'..=b'9' => Some((c - b'0', 0)),
                b'a'..=b'f' => Some((c - b'a' + 10, 0)),
                b'A'..=b'F' => Some((c - b'A' + 10, 0)),
                b'x' | b'X' if wildcards => Some((0, 0xf)),
                _ => None,
            }
        }
        let b = text.as_bytes();
        let mut i = 0;
        let mut out = HexPattern::default();
        loop {
            while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
                i += 1;
            }
            if i >= b.len() {
                break;
            }
            let (mut v, mut m) = val(b[i], wildcards)
                .ok_or_else(|| format!("invalid hex digit {:?} in {text:?}", b[i] as char))?;
            i += 1;
            if i < b.len() && b[i] != b' ' && b[i] != b'\t' {
                let (v2, m2) = val(b[i], wildcards)
                    .ok_or_else(|| format!("invalid hex digit {:?} in {text:?}", b[i] as char))?;
                i += 1;
                v = (v << 4) | v2;
                m = (m << 4) | m2;
            }
            out.data.push(v);
            out.mask.push(m);
        }
        if out.data.is_empty() {
            return Err(format!("empty hex string {text:?}"));
        }
        Ok(out)
    }

    /// keepalived's `check_udp_reply`: compare the first
    /// `min(len(reply), len(pattern))` bytes outside the wildcard bits.
    pub fn matches(&self, reply: &[u8]) -> bool {
        reply
            .iter()
            .zip(self.data.iter().zip(self.mask.iter()))
            .all(|(r, (d, m))| (r ^ d) & !m == 0)
    }
}

/// Query types of `DNS_CHECK` (keepalived's table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub enum DnsType {
    /// A
    A,
    /// NS
    Ns,
    /// CNAME
    Cname,
    /// SOA (keepalived's default)
    #[default]
    Soa,
    /// MX
    Mx,
    /// TXT
    Txt,
    /// AAAA
    Aaaa,
    /// RRSIG
    Rrsig,
    /// DNSKEY
    Dnskey,
}

impl DnsType {
    /// The numeric QTYPE.
    pub fn code(self) -> u16 {
        match self {
            DnsType::A => 1,
            DnsType::Ns => 2,
            DnsType::Cname => 5,
            DnsType::Soa => 6,
            DnsType::Mx => 15,
            DnsType::Txt => 16,
            DnsType::Aaaa => 28,
            DnsType::Rrsig => 46,
            DnsType::Dnskey => 48,
        }
    }

    /// Parse a type name as keepalived does (case-insensitive).
    pub fn from_name(name: &str) -> Option<DnsType> {
        let all = [
            DnsType::A,
            DnsType::Ns,
            DnsType::Cname,
            DnsType::Soa,
            DnsType::Mx,
            DnsType::Txt,
            DnsType::Aaaa,
            DnsType::Rrsig,
            DnsType::Dnskey,
        ];
        all.into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// The type's name as keepalived spells it.
    pub fn name(self) -> &'static str {
        match self {
            DnsType::A => "A",
            DnsType::Ns => "NS",
            DnsType::Cname => "CNAME",
            DnsType::Soa => "SOA",
            DnsType::Mx => "MX",
            DnsType::Txt => "TXT",
            DnsType::Aaaa => "AAAA",
            DnsType::Rrsig => "RRSIG",
            DnsType::Dnskey => "DNSKEY",
        }
    }
}

/// `DNS_CHECK`: a UDP query; any answer with the query's id and RCODE 0
/// (NOERROR) means up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsCheck {
    /// `type` (default SOA).
    pub qtype: DnsType,
    /// `name` (default: the root, `""` or `"."`).
    pub name: String,
}

/// A checker implemented outside this crate (tests, or future checker
/// kinds of the daemon). Two `CustomCheck`s are equal when they share the
/// same probe object.
#[derive(Clone)]
pub struct CustomCheck {
    /// Name used in logs and reasons (e.g. `FILE_CHECK`).
    pub name: String,
    /// The probe run at each attempt.
    pub probe: Arc<dyn Probe>,
}

impl fmt::Debug for CustomCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomCheck")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PartialEq for CustomCheck {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.probe, &other.probe)
    }
}

impl Eq for CustomCheck {}

/// What a [`CustomCheck`] runs at each attempt.
pub trait Probe: Send + Sync + 'static {
    /// Run one attempt against `target` (the resolved connect address).
    /// The engine bounds nothing here: the probe must bound itself.
    fn probe(
        &self,
        target: SocketAddr,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + '_>>;
}

/// The kind-specific part of a checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// `TCP_CHECK`
    Tcp(TcpCheck),
    /// `HTTP_GET` / `SSL_GET`
    Http(HttpCheck),
    /// `MISC_CHECK`
    Misc(MiscCheck),
    /// `UDP_CHECK`
    Udp(UdpCheck),
    /// `DNS_CHECK`
    Dns(DnsCheck),
    /// A probe supplied by the caller.
    Custom(CustomCheck),
}

impl CheckKind {
    /// keepalived's keyword for this kind (`TCP_CHECK`, `SSL_GET`, …).
    pub fn name(&self) -> &str {
        match self {
            CheckKind::Tcp(_) => "TCP_CHECK",
            CheckKind::Http(h) if h.tls => "SSL_GET",
            CheckKind::Http(_) => "HTTP_GET",
            CheckKind::Misc(_) => "MISC_CHECK",
            CheckKind::Udp(_) => "UDP_CHECK",
            CheckKind::Dns(_) => "DNS_CHECK",
            CheckKind::Custom(c) => &c.name,
        }
    }
}

/// One checker of a real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckerConfig {
    /// Options common to all kinds.
    pub common: CommonOpts,
    /// What to check.
    pub kind: CheckKind,
}

/// Timing of a checker after keepalived's defaults are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Timing {
    /// `delay_loop`.
    pub delay_loop: Duration,
    /// `retry`.
    pub retry: u32,
    /// `delay_before_retry`.
    pub delay_before_retry: Duration,
    /// `warmup`.
    pub warmup: Duration,
    /// `connect_timeout`.
    pub connect_timeout: Duration,
}

impl CheckerConfig {
    /// A checker of `kind` with every option at its default.
    pub fn new(kind: CheckKind) -> Self {
        CheckerConfig {
            common: CommonOpts::default(),
            kind,
        }
    }

    /// Resolve the timing with keepalived's per-kind defaults
    /// (`queue_checker`, `check_data.c`, and each checker's handler):
    ///
    /// | kind | retry | delay_before_retry |
    /// |---|---|---|
    /// | TCP, UDP, custom | 1 | 1 s |
    /// | HTTP_GET, SSL_GET | 1 | 3 s |
    /// | MISC_CHECK | 0 | 1 s |
    /// | DNS_CHECK | 3 | `delay_loop` |
    ///
    /// `delay_loop` defaults to 60 s, `warmup` to `delay_loop`,
    /// `connect_timeout` to 5 s.
    pub fn timing(&self) -> Timing {
        let c = &self.common;
        let delay_loop = c.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP);
        let (retry, dbr) = match self.kind {
            CheckKind::Http(_) => (1, Duration::from_secs(3)),
            CheckKind::Misc(_) => (0, Duration::from_secs(1)),
            CheckKind::Dns(_) => (3, delay_loop),
            _ => (1, Duration::from_secs(1)),
        };
        Timing {
            delay_loop,
            retry: c.retry.unwrap_or(retry),
            delay_before_retry: c.delay_before_retry.unwrap_or(dbr),
            warmup: c.warmup.unwrap_or(delay_loop),
            connect_timeout: c.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        }
    }

    /// The address checked for a real server at `rs`: `connect_ip` and
    /// `connect_port` override the real server's address and port.
    pub fn target(&self, rs: SocketAddr) -> SocketAddr {
        SocketAddr::new(
            self.common.connect_ip.unwrap_or(rs.ip()),
            self.common.connect_port.unwrap_or(rs.port()),
        )
    }

    /// The local address to bind before connecting, if `bindto` or
    /// `bind_port` is set.
    pub fn bind_addr(&self, target: SocketAddr) -> Option<SocketAddr> {
        if self.common.bindto.is_none() && self.common.bind_port.is_none() {
            return None;
        }
        let ip = self.common.bindto.unwrap_or(match target {
            SocketAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        });
        Some(SocketAddr::new(ip, self.common.bind_port.unwrap_or(0)))
    }

    /// keepalived's `compare` functions used on reload: the same kind, the
    /// same kind-specific options and the same connection options
    /// (address, bind, timeout). Timing options (`retry`, `delay_loop`, …)
    /// may differ: the checker's state is carried over.
    pub fn same_check(&self, other: &CheckerConfig) -> bool {
        let a = &self.common;
        let b = &other.common;
        self.kind == other.kind
            && a.connect_ip == b.connect_ip
            && a.connect_port == b.connect_port
            && a.bindto == b.bindto
            && a.bind_port == b.bind_port
            && a.connect_timeout == b.connect_timeout
    }

    /// Check the configuration for what keepalived refuses at parse time.
    pub fn validate(&self) -> Result<(), String> {
        let t = self.timing();
        if t.delay_loop.is_zero() {
            return Err("delay_loop must be at least 1 µs".into());
        }
        if t.connect_timeout.is_zero() {
            return Err("connect_timeout must not be 0".into());
        }
        match &self.kind {
            CheckKind::Http(h) => {
                if h.urls.is_empty() {
                    return Err(format!("{} has no url", self.kind.name()));
                }
                for u in &h.urls {
                    if u.path.is_empty() {
                        return Err(format!("{} url has no path", self.kind.name()));
                    }
                    if let Some(d) = &u.digest {
                        if d.len() != 32 || !d.bytes().all(|c| c.is_ascii_hexdigit()) {
                            return Err(format!("digest {d:?} is not 32 hex digits"));
                        }
                    }
                    for r in &u.status_codes {
                        if r.start() > r.end() || *r.start() < 100 || *r.end() > 999 {
                            return Err(format!("invalid status_code range {r:?}"));
                        }
                    }
                }
            }
            CheckKind::Misc(m) => {
                let argv = crate::script::split_command(&m.path)?;
                if argv.is_empty() {
                    return Err("MISC_CHECK has no misc_path".into());
                }
            }
            _ => {}
        }
        Ok(())
    }
}
