//! From lexer lines to [`Config`]: block tree, keyword handlers
//! (keepalived's `check_parser.c`, the checkers' `install_*_keyword`, the
//! LVS keys of `global_parser.c`), then keepalived's `validate_check_config`
//! defaults and adjustments, and `vrrp_complete_init`'s resolution of the
//! sync daemon's VRRP instance and sync id.

use crate::lexer::{split_quoted, Lexer, Line};
use crate::model::*;
use crate::{Error, Errors, Location, Warning};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;
use xvs_core::model::{svc_flags, FwdMethod, Protocol, TunCsum, TunType};

mod checker;
mod dns;
mod fwmark;
mod global;
mod http;
mod misc;
mod real_server;
mod resolve;
mod smtp;
mod udp;
mod values;
mod virtual_server;

/// One keyword line and its `{ }` block, if any.
#[derive(Debug, Clone)]
struct Node {
    loc: Location,
    words: Vec<String>,
    raw: String,
    unmatched_quote: bool,
    block: Option<Vec<Node>>,
}

impl Node {
    fn kw(&self) -> &str {
        &self.words[0]
    }
}

/// Root keywords keepalived knows and xvs skips (with one warning each).
const SKIPPED_ROOTS: &[&str] = &[
    "bfd_instance",
    "child_wait_time",
    "garp_group",
    "instance",
    "interface_up_down_delays",
    "linkbeat_interfaces",
    "linkbeat_use_polling",
    "namespace_with_ipsets",
    "net_namespace",
    "net_namespace_ipvs",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "track_file",
    "track_group",
    "use_pid_dir",
    "vrrp_instance",
    "vrrp_script",
    "vrrp_sync_group",
    "vrrp_track_file",
    "vrrp_track_process",
];

/// keepalived's schedulers (`lvs_schedulers[]`).
const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos",
];

/// `LVS_MAX_TIMEOUT`: 31 days.
const LVS_MAX_TIMEOUT: u64 = 86400 * 31;
/// `IPVS_SVC_PERSISTENT_TIMEOUT`.
const DEFAULT_PERSISTENCE: u32 = 360;
/// Highest weight xvs accepts (ipvsadm's `-w` range).
const MAX_WEIGHT: u64 = 65535;
/// Most addresses one `virtual_server_group` range may expand to.
const MAX_RANGE: u64 = 65536;
/// `IP_VS_IFNAME_MAXLEN`: a sync daemon interface name is shorter.
const IP_VS_IFNAME_MAXLEN: usize = 16;
/// `IFNAMSIZ`: a `vrrp_instance`'s `interface` name is shorter.
const IFNAMSIZ: usize = 16;
/// Largest `lvs_sync_daemon maxlen`: 65535 less the IP and UDP headers.
const SYNC_MAXLEN: u64 = 65535 - 20 - 8;

fn build_tree(lines: Vec<Line>, errors: &mut Vec<Error>) -> Vec<Node> {
    // Each level: the nodes so far and the location of its '{'.
    let mut stack: Vec<(Vec<Node>, Option<Location>)> = vec![(vec![], None)];
    let mut last_was_keyword = false;
    for l in lines {
        if l.words.len() == 1 && l.raw == "{" {
            let level = stack.last_mut().expect("root level");
            let attach = last_was_keyword && level.0.last().is_some_and(|n| n.block.is_none());
            if !attach {
                errors.push(Error::new(
                    l.loc.clone(),
                    "unexpected '{' (no keyword before it)",
                ));
                level.0.push(Node {
                    loc: l.loc.clone(),
                    words: vec!["{".into()],
                    raw: "{".into(),
                    unmatched_quote: false,
                    block: None,
                });
            }
            stack.push((vec![], Some(l.loc)));
            last_was_keyword = false;
        } else if l.words.len() == 1 && l.raw == "}" {
            if stack.len() == 1 {
                errors.push(Error::new(l.loc, "extra '}'"));
            } else {
                let (nodes, _) = stack.pop().expect("non-root level");
                let parent = stack.last_mut().expect("parent level");
                let owner = parent.0.last_mut().expect("block owner");
                if owner.kw() == "{" {
                    parent.0.pop();
                } else {
                    owner.block = Some(nodes);
                }
            }
            last_was_keyword = false;
        } else {
            stack.last_mut().expect("level").0.push(Node {
                loc: l.loc,
                words: l.words,
                raw: l.raw,
                unmatched_quote: l.unmatched_quote,
                block: None,
            });
            last_was_keyword = true;
        }
    }
    while stack.len() > 1 {
        let (nodes, open) = stack.pop().expect("non-root level");
        let open = open.expect("non-root level has an opening brace");
        errors.push(Error::new(open, "'{' is never closed (missing '}')"));
        let parent = stack.last_mut().expect("parent level");
        if let Some(owner) = parent.0.last_mut() {
            if owner.kw() == "{" {
                parent.0.pop();
            } else {
                owner.block = Some(nodes);
            }
        }
    }
    stack.pop().map(|(n, _)| n).unwrap_or_default()
}

// ---------------------------------------------------------------- raw forms

#[derive(Debug, Clone, Default)]
struct RawConn {
    connect_ip: Option<IpAddr>,
    connect_port: Option<u16>,
    bindto: Option<IpAddr>,
    bind_port: Option<u16>,
    bind_if: Option<String>,
    fwmark: Option<u32>,
    connect_timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
enum RawKind {
    Tcp,
    Http(HttpCheck, Option<String>),
    Misc(Option<Script>, Option<Duration>, bool, Option<ScriptUser>),
    Udp(UdpCheck),
    Dns(DnsCheck),
    Smtp(Option<String>, Vec<RawConn>),
    Ping,
    Unsupported(String),
}

#[derive(Debug, Clone)]
struct RawChecker {
    loc: Location,
    kind: RawKind,
    conn: Option<RawConn>,
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    warmup: Option<Duration>,
    delay_loop: Option<Duration>,
    alpha: Option<bool>,
    log_all_failures: bool,
}

#[derive(Debug, Clone)]
struct RawRs {
    loc: Location,
    addr: IpAddr,
    port: Option<u16>,
    weight: Option<u32>,
    fwd: Option<Forwarding>,
    u_threshold: u32,
    l_threshold: u32,
    inhibit: Option<bool>,
    alpha: Option<bool>,
    notify_up: Option<Script>,
    notify_down: Option<Script>,
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    warmup: Option<Duration>,
    connect_timeout: Option<Duration>,
    delay_loop: Option<Duration>,
    virtualhost: Option<String>,
    checkers: Vec<RawChecker>,
}

#[derive(Debug, Clone)]
struct RawSorry {
    loc: Location,
    addr: IpAddr,
    port: Option<u16>,
    fwd: Option<Forwarding>,
    inhibit: bool,
}

#[derive(Debug, Clone)]
enum Target {
    Addr(IpAddr, u16),
    Fwmark(u32),
    Group(String),
}

/// One service a virtual server block stands for (a group expands to many).
#[derive(Debug, Clone, Copy)]
enum Entry {
    Addr(IpAddr, u16),
    /// A fwmark service; `grouped` when it is a group's `fwmark N` entry,
    /// `af` the family that entry names (`fwmark N inet|inet6`).
    Fwmark {
        mark: u32,
        grouped: bool,
        af: Option<Af>,
    },
}

/// An address family (keepalived's `AF_INET`, `AF_INET6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Af {
    Inet,
    Inet6,
}

impl Af {
    fn of(a: IpAddr) -> Af {
        match a {
            IpAddr::V4(_) => Af::Inet,
            IpAddr::V6(_) => Af::Inet6,
        }
    }

    /// `0.0.0.0` or `::`: a fwmark service's address.
    fn unspecified(self) -> IpAddr {
        match self {
            Af::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Af::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        }
    }
}

#[derive(Debug, Clone)]
struct RawVs {
    loc: Location,
    target: Target,
    protocol: Option<Protocol>,
    sched: Option<String>,
    flags: u32,
    fwd: Option<Forwarding>,
    persistence_timeout: Option<u32>,
    granularity: Option<IpAddr>,
    engine: Option<String>,
    delay_loop: Duration,
    connect_timeout: Duration,
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    warmup: Option<Duration>,
    inhibit: bool,
    alpha: bool,
    omega: bool,
    quorum: u32,
    hysteresis: u32,
    quorum_up: Option<Script>,
    quorum_down: Option<Script>,
    ha_suspend: bool,
    virtualhost: Option<String>,
    weight: u32,
    sorry: Option<RawSorry>,
    rs: Vec<RawRs>,
    /// `@xvsd match` lines (fwmark virtual servers only).
    matches: Vec<fwmark::RawMatch>,
    /// The family: the address's; for a fwmark or group virtual server
    /// `ip_family`, else the first non-tunnelled real or sorry server's,
    /// else what `persistence_granularity`'s form says (keepalived's
    /// `vs->af`); `None` while none of these decided.
    af: Option<Af>,
    /// The families of the tunnelled real and sorry servers, for a fwmark
    /// service that `af` leaves undecided (keepalived's `vs_end_handler`).
    tunnel_afs: Vec<Af>,
}

/// `lvs_sync_daemon` as read, before the instance is looked up.
#[derive(Debug, Clone)]
struct RawSyncd {
    loc: Location,
    interface: String,
    /// The instance named on the `lvs_sync_daemon` line (`inst NAME` or the
    /// word after the interface): its VRID is the default sync id.
    named: Option<String>,
    /// The instance whose block holds `lvs_sync_daemon_interface`.
    legacy: Option<String>,
    syncid: Option<u8>,
    maxlen: Option<u16>,
    port: Option<u16>,
    ttl: Option<u8>,
    group: Option<IpAddr>,
}

#[derive(Debug, Clone)]
struct Group {
    loc: Location,
    entries: Vec<(IpAddr, u16)>,
    /// `fwmark N [inet|inet6]` entries, where they are and the family they
    /// name.
    fwmarks: Vec<(Location, u32, Option<Af>)>,
}

// ------------------------------------------------------------------ parser

struct P {
    errors: Vec<Error>,
    warnings: Vec<Warning>,
    global: GlobalDefs,
    ssl: Option<SslContext>,
    groups: HashMap<String, Group>,
    vss: Vec<RawVs>,
    vrrp: Vec<VrrpInstanceRef>,
    syncd: Option<RawSyncd>,
    /// Where `notify_fifo` and `vrrp_notify_fifo` are.
    fifo_loc: [Option<Location>; 2],
}

impl P {
    fn root(&mut self, nodes: &[Node]) {
        for n in nodes {
            match n.kw() {
                "global_defs" => match &n.block {
                    Some(b) => self.global_defs(b),
                    None => self.err(&n.loc, "global_defs: missing { } block"),
                },
                "virtual_server_group" => self.vsg(n),
                "virtual_server" => self.virtual_server(n),
                "SSL" => self.ssl(n),
                "{" => {}
                k if SKIPPED_ROOTS.contains(&k) => {
                    let what = if k.starts_with("vrrp_") {
                        "VRRP is left to keepalived (run it with --vrrp)"
                    } else {
                        "xvs does not handle it"
                    };
                    self.warn(&n.loc, format!("'{k}' skipped: {what}"));
                    if k == "vrrp_instance" {
                        self.vrrp_instance(n);
                    }
                }
                k => self.err(&n.loc, format!("unknown keyword '{k}'")),
            }
        }
    }
}

/// `nb_get_retry` is `retry` with a deprecation warning: rename it before
/// the handlers run, so one code path handles both.
fn rename_deprecated(nodes: &mut [Node], warnings: &mut Vec<Warning>, in_http: bool) {
    for n in nodes {
        if in_http && n.kw() == "nb_get_retry" {
            warnings.push(Warning::new(
                n.loc.clone(),
                "nb_get_retry is deprecated - use 'retry'",
            ));
            n.words[0] = "retry".into();
        }
        let http = matches!(n.kw(), "HTTP_GET" | "SSL_GET");
        if let Some(b) = &mut n.block {
            rename_deprecated(b, warnings, http);
        }
    }
}

pub(crate) fn parse(lx: Lexer) -> Result<Config, Errors> {
    let Lexer {
        lines,
        mut errors,
        warnings,
        files,
        ..
    } = lx;
    // File order, for sorting messages.
    let mut order: HashMap<String, usize> = HashMap::new();
    for f in files {
        let n = order.len();
        order.entry(f).or_insert(n);
    }
    let mut tree = build_tree(lines, &mut errors);
    let mut p = P {
        errors,
        warnings,
        global: GlobalDefs::default(),
        ssl: None,
        groups: HashMap::new(),
        vss: vec![],
        vrrp: vec![],
        syncd: None,
        fifo_loc: [None, None],
    };
    rename_deprecated(&mut tree, &mut p.warnings, false);
    p.root(&tree);
    p.resolve_global();

    let mut out = vec![];
    let mut seen: HashMap<xvs_core::model::ServiceKey, Location> = HashMap::new();
    let vss = std::mem::take(&mut p.vss);
    for vs in &vss {
        let Some(entries) = p.entries(vs) else {
            continue;
        };
        let group = match &vs.target {
            Target::Group(g) => Some(g.as_str()),
            _ => None,
        };
        for entry in entries {
            if let Some(v) = p.resolve(vs, group, entry) {
                let key = v.key();
                if let Some(prev) = seen.get(&key) {
                    let prev = prev.clone();
                    let what = match entry {
                        Entry::Fwmark { .. } => key.to_string(),
                        Entry::Addr(a, port) => format!("{} {}", v.protocol, values::ap(a, port)),
                    };
                    p.err(
                        &vs.loc,
                        format!("duplicate virtual server {what} (first at {prev})"),
                    );
                    continue;
                }
                seen.insert(key, vs.loc.clone());
                out.push(v);
            }
        }
    }
    for (name, g) in &p.groups {
        let used = vss
            .iter()
            .any(|v| matches!(&v.target, Target::Group(x) if x == name));
        if !used {
            let loc = g.loc.clone();
            p.warnings.push(Warning::new(
                loc,
                format!("virtual_server_group {name} is not used"),
            ));
        }
    }

    let key = |l: &Location| (order.get(&l.file).copied().unwrap_or(usize::MAX), l.line);
    let mut warnings = p.warnings;
    let mut seen_w = HashSet::new();
    warnings.retain(|w| seen_w.insert((w.location.clone(), w.message.clone())));
    warnings.sort_by_key(|w| key(&w.location));
    let mut errors = p.errors;
    let mut seen_e = HashSet::new();
    errors.retain(|e| seen_e.insert((e.location.clone(), e.message.clone())));
    errors.sort_by_key(|e| key(&e.location));
    if !errors.is_empty() {
        return Err(Errors { errors, warnings });
    }
    Ok(Config {
        global: p.global,
        ssl: p.ssl,
        virtual_servers: out,
        vrrp_instances: p.vrrp,
        warnings,
    })
}
