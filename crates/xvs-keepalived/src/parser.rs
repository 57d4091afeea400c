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
    connect_ip: Option<Ipv4Addr>,
    connect_port: Option<u16>,
    bindto: Option<Ipv4Addr>,
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
    addr: Ipv4Addr,
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
    addr: Ipv4Addr,
    port: Option<u16>,
    fwd: Option<Forwarding>,
    inhibit: bool,
}

#[derive(Debug, Clone)]
enum Target {
    Addr(Ipv4Addr, u16),
    Group(String),
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
    granularity: Option<Ipv4Addr>,
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
    entries: Vec<(Ipv4Addr, u16)>,
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

/// Parses a number made of decimal digits only.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// keepalived's `<TIMER>`: seconds with up to 6 decimals, in microseconds.
fn timer_us(s: &str) -> Result<u64, String> {
    if s.starts_with('-') {
        return Err(format!("negative number '{s}'"));
    }
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if frac.len() > 6 {
        return Err(format!(
            "number '{s}' has too many decimal places (at most 6)"
        ));
    }
    let int_v = if int.is_empty() && !frac.is_empty() {
        Some(0)
    } else {
        digits(int)
    };
    let frac_v = if frac.is_empty() {
        Some(0)
    } else {
        digits(frac)
    };
    match (int_v, frac_v) {
        (Some(i), Some(f)) => {
            let f = f * 10u64.pow(6 - frac.len() as u32);
            i.checked_mul(1_000_000)
                .and_then(|v| v.checked_add(f))
                .ok_or_else(|| format!("number '{s}' is too large"))
        }
        _ => Err(format!("invalid number '{s}'")),
    }
}

fn parse_ipv4(s: &str) -> Result<Ipv4Addr, String> {
    if s.contains(':') {
        return Err(format!(
            "IPv6 address {s} is not supported by xvs (IPv4 only)"
        ));
    }
    s.parse().map_err(|_| format!("invalid IPv4 address '{s}'"))
}

/// An optional port: absent or all zeros means "no port".
fn parse_port(s: Option<&str>) -> Result<Option<u16>, String> {
    match s {
        None => Ok(None),
        Some(p) if !p.is_empty() && p.bytes().all(|b| b == b'0') => Ok(None),
        Some(p) => match digits(p) {
            Some(v) if (1..=65535).contains(&v) => Ok(Some(v as u16)),
            _ => Err(format!("invalid port '{p}'")),
        },
    }
}

/// keepalived's `read_hex_str`: blank-separated groups, two hex digits per
/// byte, a lone last digit is a byte of its own; with `mask`, `x`/`X` is a
/// nibble to ignore.
fn read_hex(s: &str, mask: bool) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let mut data = vec![];
    let mut m = vec![];
    let mut used_mask = false;
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    let nib = |c: char| -> Option<(u8, u8)> {
        if mask && (c == 'x' || c == 'X') {
            Some((0, 0x0f))
        } else {
            c.to_digit(16).map(|d| (d as u8, 0))
        }
    };
    loop {
        while i < b.len() && (b[i] == ' ' || b[i] == '\t') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let (mut v, mut mv) = nib(b[i])?;
        i += 1;
        if i < b.len() && b[i] != ' ' && b[i] != '\t' {
            let (v2, m2) = nib(b[i])?;
            i += 1;
            v = (v << 4) | v2;
            mv = (mv << 4) | m2;
        }
        used_mask |= mv != 0;
        data.push(v);
        m.push(mv);
    }
    if data.is_empty() {
        return None;
    }
    Some((data, used_mask.then_some(m)))
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "on" | "yes" => Some(true),
        "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

impl P {
    fn err(&mut self, loc: &Location, msg: impl Into<String>) {
        self.errors.push(Error::new(loc.clone(), msg));
    }

    fn warn(&mut self, loc: &Location, msg: impl Into<String>) {
        self.warnings.push(Warning::new(loc.clone(), msg));
    }

    /// Word `i` of `n`, or an error naming the keyword.
    fn arg<'a>(&mut self, n: &'a Node, i: usize, what: &str) -> Option<&'a str> {
        match n.words.get(i) {
            Some(w) => Some(w),
            None => {
                self.err(&n.loc, format!("{}: missing {what}", n.kw()));
                None
            }
        }
    }

    fn uint(&mut self, n: &Node, min: u64, max: u64) -> Option<u64> {
        let w = self.arg(n, 1, "value")?;
        match digits(w) {
            Some(v) if v >= min && v <= max => Some(v),
            Some(_) => {
                self.err(&n.loc, format!("{}: {w} is outside [{min}, {max}]", n.kw()));
                None
            }
            None => {
                self.err(&n.loc, format!("{}: invalid number '{w}'", n.kw()));
                None
            }
        }
    }

    fn u32v(&mut self, n: &Node, min: u64, max: u64) -> Option<u32> {
        self.uint(n, min, max).map(|v| v as u32)
    }

    /// A `<TIMER>` argument, `min_us..=max_us` (`max_us` 0: no limit).
    fn timer(&mut self, n: &Node, min_us: u64, max_us: u64) -> Option<Duration> {
        let w = self.arg(n, 1, "time in seconds")?;
        match timer_us(w) {
            Ok(v) if v >= min_us && (max_us == 0 || v <= max_us) => Some(Duration::from_micros(v)),
            Ok(_) => {
                let hi = if max_us == 0 {
                    String::from("")
                } else {
                    format!("{}", max_us as f64 / 1e6)
                };
                self.err(
                    &n.loc,
                    format!(
                        "{}: {w} is outside [{}, {hi}] seconds",
                        n.kw(),
                        min_us as f64 / 1e6
                    ),
                );
                None
            }
            Err(e) => {
                self.err(&n.loc, format!("{}: {e}", n.kw()));
                None
            }
        }
    }

    /// `KEYWORD [BOOL]` (no argument: true).
    fn boolarg(&mut self, n: &Node) -> Option<bool> {
        match n.words.get(1) {
            None => Some(true),
            Some(w) => match parse_bool(w) {
                Some(b) => Some(b),
                None => {
                    self.err(
                        &n.loc,
                        format!(
                            "{}: invalid boolean '{w}' (on|off|true|false|yes|no)",
                            n.kw()
                        ),
                    );
                    None
                }
            },
        }
    }

    fn string(&mut self, n: &Node, slot: &mut Option<String>) {
        if let Some(w) = self.arg(n, 1, "value") {
            if slot.is_some() {
                self.warn(&n.loc, format!("duplicate {} - overwriting", n.kw()));
            }
            *slot = Some(w.to_string());
        }
    }

    fn ipv4(&mut self, n: &Node, i: usize) -> Option<Ipv4Addr> {
        let w = self.arg(n, i, "address")?;
        match parse_ipv4(w) {
            Ok(a) => Some(a),
            Err(e) => {
                self.err(&n.loc, format!("{}: {e}", n.kw()));
                None
            }
        }
    }

    fn no_block(&mut self, n: &Node) {
        if n.block.is_some() {
            self.warn(
                &n.loc,
                format!("{}: unexpected {{ }} block ignored", n.kw()),
            );
        }
    }

    fn quote_check(&mut self, n: &Node) {
        if n.unmatched_quote {
            self.err(&n.loc, format!("unmatched quote: '{}'", n.raw));
        }
    }

    /// A script keyword: `KW "cmd args" [user [group]]`, re-read from the
    /// raw line as keepalived's `notify_script_init`.
    fn script(&mut self, n: &Node) -> Option<Script> {
        let words = match split_quoted(&n.raw, false) {
            Ok(w) => w,
            Err(e) => {
                self.err(&n.loc, format!("{}: {e}", n.kw()));
                return None;
            }
        };
        let Some(cmd) = words.get(1) else {
            self.err(&n.loc, format!("{}: missing script", n.kw()));
            return None;
        };
        let args = match split_quoted(cmd, true) {
            Ok(a) if !a.is_empty() => a,
            Ok(_) => {
                self.err(&n.loc, format!("{}: empty script", n.kw()));
                return None;
            }
            Err(e) => {
                self.err(&n.loc, format!("{}: {e}", n.kw()));
                return None;
            }
        };
        let user = words.get(2).map(|u| ScriptUser {
            user: u.clone(),
            group: words.get(3).cloned(),
        });
        Some(Script { args, user })
    }

    /// `lvs_method` / `lb_kind` / `sorry_server_lvs_method` (`svr_forwarding_handler`).
    fn forwarding(&mut self, n: &Node) -> Option<Forwarding> {
        let m = self.arg(n, 1, "method (NAT|DR|TUN)")?;
        let method = match m {
            "NAT" => FwdMethod::Masq,
            "DR" => FwdMethod::Route,
            "TUN" => FwdMethod::Tunnel,
            _ => {
                self.err(
                    &n.loc,
                    format!("{}: unknown forwarding method '{m}' (NAT|DR|TUN)", n.kw()),
                );
                return None;
            }
        };
        let mut f = Forwarding {
            method,
            ..Forwarding::NAT
        };
        let mut port = 0u64;
        let mut i = 2;
        while i < n.words.len() {
            match n.words[i].as_str() {
                "type" => {
                    let Some(t) = n.words.get(i + 1) else {
                        self.err(&n.loc, format!("{}: missing tunnel type", n.kw()));
                        return None;
                    };
                    f.tun_type = match t.as_str() {
                        "ipip" => TunType::Ipip,
                        "gue" => TunType::Gue,
                        "gre" => TunType::Gre,
                        _ => {
                            self.err(
                                &n.loc,
                                format!("{}: unknown tunnel type '{t}' (ipip|gue|gre)", n.kw()),
                            );
                            return None;
                        }
                    };
                    i += 1;
                }
                "port" => {
                    let v = n
                        .words
                        .get(i + 1)
                        .and_then(|p| digits(p))
                        .filter(|p| (1..=65535).contains(p));
                    let Some(v) = v else {
                        self.err(
                            &n.loc,
                            format!("{}: missing or invalid gue tunnel port", n.kw()),
                        );
                        return None;
                    };
                    port = v;
                    i += 1;
                }
                "nocsum" => f.tun_csum = TunCsum::NoCsum,
                "csum" => f.tun_csum = TunCsum::Csum,
                "remcsum" => f.tun_csum = TunCsum::RemCsum,
                o => {
                    self.err(&n.loc, format!("{}: invalid tunnel option '{o}'", n.kw()));
                    return None;
                }
            }
            i += 1;
        }
        if (f.tun_type == TunType::Gue) != (port != 0) {
            self.err(
                &n.loc,
                format!(
                    "{}: gue tunnels require a port, other tunnel types cannot have one",
                    n.kw()
                ),
            );
            return None;
        }
        if f.tun_type == TunType::Ipip && f.tun_csum != TunCsum::NoCsum {
            self.err(
                &n.loc,
                format!("{}: ipip tunnels do not support a checksum option", n.kw()),
            );
            return None;
        }
        if f.tun_type == TunType::Gre && f.tun_csum == TunCsum::RemCsum {
            self.err(
                &n.loc,
                format!("{}: gre tunnels do not support remcsum", n.kw()),
            );
            return None;
        }
        f.tun_port = port as u16;
        Some(f)
    }

    // -------------------------------------------------------------- root

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

    fn global_defs(&mut self, nodes: &[Node]) {
        for n in nodes {
            match n.kw() {
                "router_id" => {
                    let mut r = self.global.router_id.take();
                    self.string(n, &mut r);
                    self.global.router_id = r;
                }
                "lvs_timeouts" => self.lvs_timeouts(n),
                "lvs_flush" => self.global.lvs_flush = true,
                "lvs_flush_onstop" | "lvs_flush_on_stop" => {
                    match n.words.get(1).map(String::as_str) {
                        None => self.global.lvs_flush_on_stop = Some(FlushOnStop::Full),
                        Some("VS") => self.global.lvs_flush_on_stop = Some(FlushOnStop::Vs),
                        Some(o) => self.err(
                            &n.loc,
                            format!("{}: unknown type '{o}' (VS or nothing)", n.kw()),
                        ),
                    }
                }
                "script_user" => {
                    if let Some(u) = self.arg(n, 1, "user name") {
                        self.global.script_user = Some(ScriptUser {
                            user: u.to_string(),
                            group: n.words.get(2).cloned(),
                        });
                    }
                }
                "enable_script_security" => self.global.enable_script_security = true,
                "lvs_sync_daemon" => self.lvs_sync_daemon(n),
                "notify_fifo" => self.notify_fifo(n, 0),
                "vrrp_notify_fifo" => self.notify_fifo(n, 1),
                "{" => {}
                k => self.warn(
                    &n.loc,
                    format!("global_defs: '{k}' is not used by xvs - skipped"),
                ),
            }
        }
    }

    /// keepalived's `lvs_syncd_handler`: `lvs_sync_daemon INTERFACE
    /// [[inst] VRRP_INSTANCE] [id SYNC_ID] [maxlen LEN] [port PORT] [ttl TTL]
    /// [group IPADDR]`, with the old positional `INTERFACE VRRP_INSTANCE
    /// [SYNC_ID]`.
    fn lvs_sync_daemon(&mut self, n: &Node) {
        if let Some(prev) = &self.syncd {
            let l = prev.loc.clone();
            self.err(
                &n.loc,
                format!("lvs_sync_daemon already specified at {l} - keepalived ignores this one"),
            );
            return;
        }
        let Some(ifname) = n.words.get(1) else {
            self.err(&n.loc, "lvs_sync_daemon: missing interface");
            return;
        };
        if ifname.len() >= IP_VS_IFNAME_MAXLEN {
            self.err(
                &n.loc,
                format!(
                    "lvs_sync_daemon: interface name '{ifname}' too long (at most {} characters)",
                    IP_VS_IFNAME_MAXLEN - 1
                ),
            );
            return;
        }
        let mut d = RawSyncd {
            loc: n.loc.clone(),
            interface: ifname.clone(),
            named: None,
            legacy: None,
            syncid: None,
            maxlen: None,
            port: None,
            ttl: None,
            group: None,
        };
        let w = &n.words;
        let num = |v: &str, min: u64, max: u64| digits(v).filter(|x| (min..=max).contains(x));
        let mut i = 2;
        while i < w.len() {
            let opt = w[i].as_str();
            if matches!(opt, "inst" | "id" | "maxlen" | "port" | "ttl" | "group") {
                let Some(v) = w.get(i + 1).map(String::as_str) else {
                    let what = if opt == "inst" {
                        "VRRP instance name"
                    } else {
                        "value"
                    };
                    self.err(
                        &n.loc,
                        format!("lvs_sync_daemon: missing {what} after '{opt}'"),
                    );
                    i += 1;
                    continue;
                };
                match opt {
                    "inst" => match &d.named {
                        Some(prev) => {
                            let prev = prev.clone();
                            self.err(
                                &n.loc,
                                format!("lvs_sync_daemon: VRRP instance already specified as {prev} - '{v}' ignored"),
                            );
                        }
                        None => d.named = Some(v.to_string()),
                    },
                    "id" => match num(v, 0, 255) {
                        Some(x) => d.syncid = Some(x as u8),
                        None => self.err(
                            &n.loc,
                            format!("lvs_sync_daemon: invalid id '{v}' (0..255)"),
                        ),
                    },
                    "maxlen" => match num(v, 1, SYNC_MAXLEN) {
                        Some(x) => d.maxlen = Some(x as u16),
                        None => self.err(
                            &n.loc,
                            format!("lvs_sync_daemon: invalid maxlen '{v}' (1..{SYNC_MAXLEN})"),
                        ),
                    },
                    "port" => match num(v, 1, 65535) {
                        Some(x) => d.port = Some(x as u16),
                        None => self.err(
                            &n.loc,
                            format!("lvs_sync_daemon: invalid port '{v}' (1..65535)"),
                        ),
                    },
                    "ttl" => match num(v, 1, 255) {
                        Some(x) => d.ttl = Some(x as u8),
                        None => self.err(
                            &n.loc,
                            format!("lvs_sync_daemon: invalid ttl '{v}' (1..255)"),
                        ),
                    },
                    _ => {
                        // inet_stosockaddr drops a '-range' or '/mask' suffix.
                        let a = v.split(['-', '/']).next().unwrap_or(v);
                        match a.parse::<IpAddr>() {
                            Ok(a) if a.is_multicast() => d.group = Some(a),
                            Ok(_) => self.err(
                                &n.loc,
                                format!("lvs_sync_daemon: group address {v} is not multicast"),
                            ),
                            Err(_) => self.err(
                                &n.loc,
                                format!("lvs_sync_daemon: invalid group address '{v}'"),
                            ),
                        }
                    }
                }
                i += 2;
                continue;
            }
            // The old `lvs_sync_daemon INTERFACE VRRP_INSTANCE [SYNC_ID]`.
            if i == 2 {
                d.named = Some(opt.to_string());
            } else if i == 3 {
                match num(opt, 0, 255) {
                    Some(x) => {
                        self.warn(
                            &n.loc,
                            format!("lvs_sync_daemon: write the sync id as 'id {opt}' (keepalived: Please use keyword \"id\" before lvs_sync_daemon SYNCID)"),
                        );
                        d.syncid = Some(x as u8);
                    }
                    None => self.err(
                        &n.loc,
                        format!("lvs_sync_daemon: invalid sync id '{opt}' (0..255)"),
                    ),
                }
            } else {
                self.err(
                    &n.loc,
                    format!(
                        "lvs_sync_daemon: unknown option '{opt}' (inst|id|maxlen|port|ttl|group)"
                    ),
                );
            }
            i += 1;
        }
        self.syncd = Some(d);
    }

    /// `notify_fifo` (`which` 0) / `vrrp_notify_fifo` (1) `PATH [USER
    /// [GROUP]]` (keepalived's `notify_fifo`).
    fn notify_fifo(&mut self, n: &Node, which: usize) {
        let Some(path) = n.words.get(1) else {
            self.err(&n.loc, format!("{}: missing FIFO name", n.kw()));
            return;
        };
        if let Some(l) = self.fifo_loc[which].clone() {
            self.err(
                &n.loc,
                format!(
                    "{} already specified at {l} - keepalived ignores '{path}'",
                    n.kw()
                ),
            );
            return;
        }
        let fifo = NotifyFifo {
            path: PathBuf::from(path),
            user: n.words.get(2).map(|u| ScriptUser {
                user: u.clone(),
                group: n.words.get(3).cloned(),
            }),
        };
        self.fifo_loc[which] = Some(n.loc.clone());
        if which == 0 {
            self.global.notify_fifo = Some(fifo);
        } else {
            self.global.vrrp_notify_fifo = Some(fifo);
        }
    }

    /// What xvs keeps of a `vrrp_instance` block (keepalived's
    /// `vrrp_handler`, `vrrp_vrid_handler`, `vrrp_int_handler`,
    /// `vrrp_lvs_syncd_handler`); everything else is keepalived's.
    fn vrrp_instance(&mut self, n: &Node) {
        // keepalived skips a block without exactly one name, or with a
        // name already used ("vrrp_instance must have a name", "vrrp
        // instance X already defined"): left to keepalived --vrrp to report.
        if n.words.len() != 2 || self.vrrp.iter().any(|v| v.name == n.words[1]) {
            return;
        }
        let name = n.words[1].clone();
        let mut r = VrrpInstanceRef {
            location: n.loc.clone(),
            name: name.clone(),
            virtual_router_id: None,
            interface: None,
        };
        for c in n.block.as_deref().unwrap_or_default() {
            let arg = c.words.get(1);
            match c.kw() {
                "virtual_router_id" => {
                    if let Some(v) = arg
                        .and_then(|a| digits(a))
                        .filter(|v| (1..=255).contains(v))
                    {
                        r.virtual_router_id = Some(v as u8);
                    }
                }
                "interface" => {
                    if let Some(a) = arg.filter(|a| a.len() < IFNAMSIZ) {
                        r.interface = Some(a.clone());
                    }
                }
                "lvs_sync_daemon_interface" => self.lvs_sync_daemon_interface(c, &name),
                _ => {}
            }
        }
        self.vrrp.push(r);
    }

    /// The deprecated `lvs_sync_daemon_interface INTERFACE` of a
    /// `vrrp_instance`: the sync daemon follows that instance, sync id 0.
    fn lvs_sync_daemon_interface(&mut self, c: &Node, inst: &str) {
        let Some(ifname) = c.words.get(1) else {
            self.err(&c.loc, "lvs_sync_daemon_interface: missing interface");
            return;
        };
        self.warn(
            &c.loc,
            format!("({inst}) lvs_sync_daemon_interface in a vrrp_instance is deprecated - use global_defs' 'lvs_sync_daemon {ifname} {inst} id 0' (the same)"),
        );
        if let Some(prev) = &self.syncd {
            let l = prev.loc.clone();
            self.err(
                &c.loc,
                format!("({inst}) lvs_sync_daemon_interface: the sync daemon is already specified at {l} - keepalived ignores this one"),
            );
            return;
        }
        self.syncd = Some(RawSyncd {
            loc: c.loc.clone(),
            interface: ifname.clone(),
            named: None,
            legacy: Some(inst.to_string()),
            syncid: None,
            maxlen: None,
            port: None,
            ttl: None,
            group: None,
        });
    }

    /// `vrrp_complete_init`: the named instance must exist; without `id` the
    /// sync id is its VRID (0 without a named instance). Then
    /// `global_data.c`: a `vrrp_notify_fifo` that is the `notify_fifo` is
    /// ignored.
    fn resolve_global(&mut self) {
        if let Some(d) = self.syncd.take() {
            let resolved = match (&d.named, &d.legacy) {
                (Some(name), _) => match self.vrrp.iter().find(|v| v.name == *name) {
                    None => {
                        self.err(
                            &d.loc,
                            format!("lvs_sync_daemon: no vrrp_instance {name} is defined (keepalived then runs no sync daemon)"),
                        );
                        None
                    }
                    Some(v) => match d.syncid.or(v.virtual_router_id) {
                        Some(id) => Some((Some(name.clone()), id)),
                        None => {
                            let l = v.location.clone();
                            self.err(
                                &d.loc,
                                format!("lvs_sync_daemon: no id, and vrrp_instance {name} at {l} has no valid virtual_router_id to take it from"),
                            );
                            None
                        }
                    },
                },
                (None, legacy) => Some((legacy.clone(), d.syncid.unwrap_or(0))),
            };
            if let Some((vrrp_instance, syncid)) = resolved {
                self.global.lvs_sync_daemon = Some(LvsSyncDaemon {
                    location: d.loc,
                    interface: d.interface,
                    vrrp_instance,
                    syncid,
                    maxlen: d.maxlen,
                    port: d.port,
                    ttl: d.ttl,
                    group: d.group,
                });
            }
        }
        let same = match (&self.global.notify_fifo, &self.global.vrrp_notify_fifo) {
            (Some(a), Some(b)) => a.path.as_os_str() == b.path.as_os_str(),
            _ => false,
        };
        if same {
            let l = self.fifo_loc[1].clone().expect("vrrp_notify_fifo was read");
            self.warn(
                &l,
                "vrrp_notify_fifo is the notify_fifo - keepalived ignores vrrp_notify_fifo (each line is written once)",
            );
            self.global.vrrp_notify_fifo = None;
        }
    }

    fn lvs_timeouts(&mut self, n: &Node) {
        if n.words.len() < 3 {
            self.err(
                &n.loc,
                "lvs_timeouts requires at least one option (tcp|tcpfin|udp N)",
            );
            return;
        }
        let mut i = 1;
        while i < n.words.len() {
            let opt = n.words[i].as_str();
            if !matches!(opt, "tcp" | "tcpfin" | "udp") {
                self.err(
                    &n.loc,
                    format!("lvs_timeouts: unknown option '{opt}' (tcp|tcpfin|udp)"),
                );
                i += 1;
                continue;
            }
            let Some(v) = n.words.get(i + 1) else {
                self.err(&n.loc, format!("lvs_timeouts: no value for {opt}"));
                break;
            };
            match digits(v).filter(|&v| v <= LVS_MAX_TIMEOUT) {
                Some(v) => {
                    let t = &mut self.global.lvs_timeouts;
                    let slot = match opt {
                        "tcp" => &mut t.tcp,
                        "tcpfin" => &mut t.tcp_fin,
                        _ => &mut t.udp,
                    };
                    *slot = Some(v as u32);
                }
                None => self.err(
                    &n.loc,
                    format!("lvs_timeouts: invalid {opt} timeout '{v}' (0..{LVS_MAX_TIMEOUT})"),
                ),
            }
            i += 2;
        }
    }

    fn ssl(&mut self, n: &Node) {
        let Some(b) = &n.block else {
            self.err(&n.loc, "SSL: missing { } block");
            return;
        };
        if self.ssl.is_some() {
            self.warn(&n.loc, "SSL context already specified - replacing");
        }
        let mut ctx = SslContext::default();
        for c in b {
            let slot = match c.kw() {
                "password" => &mut ctx.password,
                "ca" => &mut ctx.ca,
                "certificate" => &mut ctx.certificate,
                "key" => &mut ctx.key,
                k => {
                    self.warn(&c.loc, format!("SSL: unknown keyword '{k}' ignored"));
                    continue;
                }
            };
            match c.words.get(1) {
                Some(v) => *slot = Some(v.clone()),
                None => self.err(&c.loc, format!("SSL {} missing", c.kw())),
            }
        }
        self.ssl = Some(ctx);
    }

    // ------------------------------------------------- virtual_server_group

    fn vsg(&mut self, n: &Node) {
        let Some(name) = self.arg(n, 1, "group name") else {
            return;
        };
        let name = name.to_string();
        let Some(b) = &n.block else {
            self.err(
                &n.loc,
                format!("virtual_server_group {name}: missing {{ }} block"),
            );
            return;
        };
        let mut entries = vec![];
        let mut bad = false;
        for e in b {
            if e.kw() == "fwmark" {
                self.err(
                    &e.loc,
                    format!("virtual_server_group {name}: fwmark entries are not supported by xvs"),
                );
                bad = true;
                continue;
            }
            match self.vsg_entry(e) {
                Some(v) => entries.extend(v),
                None => bad = true,
            }
        }
        if entries.is_empty() && !bad {
            self.err(
                &n.loc,
                format!("virtual_server_group {name} has no entries"),
            );
        }
        if let Some(prev) = self.groups.get(&name) {
            let p = prev.loc.clone();
            self.err(
                &n.loc,
                format!("virtual_server_group {name} already defined at {p}"),
            );
            return;
        }
        self.groups.insert(
            name,
            Group {
                loc: n.loc.clone(),
                entries,
            },
        );
    }

    /// `IP [PORT]`, `IP-LAST [PORT]`, `IP-IP [PORT]`, `IP/LEN [PORT]`.
    fn vsg_entry(&mut self, e: &Node) -> Option<Vec<(Ipv4Addr, u16)>> {
        let spec = e.kw();
        let port = match parse_port(e.words.get(1).map(String::as_str)) {
            Ok(p) => p.unwrap_or(0),
            Err(m) => {
                self.err(&e.loc, format!("virtual_server_group entry: {m}"));
                return None;
            }
        };
        let fail = |s: &mut Self, m: String| {
            s.err(&e.loc, format!("virtual_server_group entry '{spec}': {m}"));
            None
        };
        if spec.contains(':') {
            return fail(self, "IPv6 is not supported by xvs (IPv4 only)".into());
        }
        let (first, last) = if let Some((a, len)) = spec.split_once('/') {
            let a: Ipv4Addr = match a.parse() {
                Ok(a) => a,
                Err(_) => return fail(self, "invalid address".into()),
            };
            let len = match digits(len) {
                Some(l) if (1..=32).contains(&l) => l as u32,
                _ => return fail(self, "invalid netmask".into()),
            };
            let host = if len == 32 { 0 } else { u32::MAX >> len };
            let a = u32::from(a);
            if a & host != 0 {
                return fail(self, "address has host bits set".into());
            }
            (a, a | host)
        } else if let Some((a, end)) = spec.split_once('-') {
            let a: Ipv4Addr = match a.parse() {
                Ok(a) => a,
                Err(_) => return fail(self, "invalid range start".into()),
            };
            let a = u32::from(a);
            let end = if end.contains('.') {
                match end.parse::<Ipv4Addr>() {
                    Ok(x) => u32::from(x),
                    Err(_) => return fail(self, "invalid range end".into()),
                }
            } else {
                match digits(end) {
                    Some(x) if x <= 255 => (a & 0xffff_ff00) | x as u32,
                    _ => return fail(self, "invalid range end".into()),
                }
            };
            if end < a {
                return fail(self, "range end is below its start".into());
            }
            (a, end)
        } else {
            match spec.parse::<Ipv4Addr>() {
                Ok(a) => (u32::from(a), u32::from(a)),
                Err(_) => return fail(self, "invalid address".into()),
            }
        };
        if u64::from(last - first) >= MAX_RANGE {
            return fail(self, format!("range has more than {MAX_RANGE} addresses"));
        }
        Some((first..=last).map(|a| (Ipv4Addr::from(a), port)).collect())
    }

    // ------------------------------------------------------ virtual_server

    fn virtual_server(&mut self, n: &Node) {
        let Some(first) = self.arg(n, 1, "address, 'fwmark N' or 'group NAME'") else {
            return;
        };
        let target = match first {
            "group" => match n.words.get(2) {
                Some(g) => Target::Group(g.clone()),
                None => {
                    self.err(&n.loc, "virtual_server group: missing group name");
                    return;
                }
            },
            "fwmark" => {
                self.err(&n.loc, "fwmark virtual servers are not supported by xvs");
                return;
            }
            a => {
                let addr = match parse_ipv4(a) {
                    Ok(addr) => addr,
                    Err(_) if a.contains(':') => {
                        self.err(
                            &n.loc,
                            format!("IPv6 virtual servers are not supported by xvs ({a})"),
                        );
                        return;
                    }
                    Err(e) => {
                        self.err(&n.loc, format!("virtual_server: {e}"));
                        return;
                    }
                };
                match parse_port(n.words.get(2).map(String::as_str)) {
                    Ok(p) => Target::Addr(addr, p.unwrap_or(0)),
                    Err(e) => {
                        self.err(&n.loc, format!("virtual_server: {e}"));
                        return;
                    }
                }
            }
        };
        let Some(b) = &n.block else {
            self.err(&n.loc, "virtual_server: missing { } block");
            return;
        };
        let mut vs = RawVs {
            loc: n.loc.clone(),
            target,
            protocol: None,
            sched: None,
            flags: 0,
            fwd: None,
            persistence_timeout: None,
            granularity: None,
            engine: None,
            delay_loop: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            retry: None,
            delay_before_retry: None,
            warmup: None,
            inhibit: false,
            alpha: false,
            omega: false,
            quorum: 1,
            hysteresis: 0,
            quorum_up: None,
            quorum_down: None,
            ha_suspend: false,
            virtualhost: None,
            weight: 1,
            sorry: None,
            rs: vec![],
        };
        for c in b {
            self.vs_keyword(&mut vs, c);
        }
        self.vss.push(vs);
    }

    fn vs_keyword(&mut self, vs: &mut RawVs, n: &Node) {
        let kw = n.kw();
        if kw != "real_server" {
            self.no_block(n);
        }
        if !matches!(kw, "quorum_up" | "quorum_down") {
            self.quote_check(n);
        }
        match kw {
            "ip_family" => match n.words.get(1).map(String::as_str) {
                Some("inet") => {}
                Some("inet6") => self.err(&n.loc, "ip_family inet6: IPv6 is not supported by xvs"),
                Some(o) => self.err(&n.loc, format!("ip_family: unknown address family '{o}'")),
                None => self.err(&n.loc, "ip_family: missing family"),
            },
            "retry" => vs.retry = self.u32v(n, 1, u32::MAX as u64).or(vs.retry),
            "delay_before_retry" => {
                vs.delay_before_retry = self.timer(n, 0, 0).or(vs.delay_before_retry)
            }
            "warmup" => vs.warmup = self.timer(n, 0, 0).or(vs.warmup),
            "connect_timeout" => {
                vs.connect_timeout = self
                    .timer(n, 1, u32::MAX as u64)
                    .unwrap_or(vs.connect_timeout)
            }
            "delay_loop" => vs.delay_loop = self.timer(n, 1, 0).unwrap_or(vs.delay_loop),
            "inhibit_on_failure" => vs.inhibit = true,
            "lb_algo" | "lvs_sched" => {
                if let Some(s) = self.arg(n, 1, "scheduler") {
                    if SCHEDULERS.contains(&s) {
                        vs.sched = Some(s.to_string());
                    } else {
                        self.err(
                            &n.loc,
                            format!("{kw}: invalid scheduler '{s}' ({})", SCHEDULERS.join("|")),
                        );
                    }
                }
            }
            "hashed" => {}
            "ops" => vs.flags |= svc_flags::ONEPACKET,
            "flag-1" => vs.flags |= svc_flags::SCHED1,
            "flag-2" => vs.flags |= svc_flags::SCHED2,
            "flag-3" => vs.flags |= svc_flags::SCHED3,
            "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" => {
                let want = &kw[..2];
                if vs.sched.as_deref() == Some(want) {
                    vs.flags |= if kw.ends_with("port") {
                        svc_flags::SCHED2
                    } else {
                        svc_flags::SCHED1
                    };
                } else {
                    self.err(&n.loc, format!("{kw} only applies to the {want} scheduler (set lvs_sched {want} before it)"));
                }
            }
            "lb_kind" | "lvs_method" => {
                if let Some(f) = self.forwarding(n) {
                    vs.fwd = Some(f);
                }
            }
            "persistence_engine" => {
                if let Some(e) = self.arg(n, 1, "engine name") {
                    vs.engine = Some(e.to_string());
                }
            }
            "persistence_timeout" => {
                if n.words.len() < 2 {
                    vs.persistence_timeout = Some(DEFAULT_PERSISTENCE);
                } else if let Some(t) = self.u32v(n, 1, LVS_MAX_TIMEOUT) {
                    vs.persistence_timeout = Some(t);
                }
            }
            "persistence_granularity" => {
                if let Some(m) = self.arg(n, 1, "netmask") {
                    if !m.contains('.') {
                        self.err(&n.loc, format!("persistence_granularity {m}: IPv6 prefixes are not supported by xvs"));
                    } else {
                        match m.parse::<Ipv4Addr>() {
                            Ok(a) => {
                                vs.granularity = Some(a);
                                if vs.persistence_timeout.is_none() {
                                    vs.persistence_timeout = Some(DEFAULT_PERSISTENCE);
                                }
                            }
                            Err(_) => self.err(
                                &n.loc,
                                format!("persistence_granularity: invalid netmask '{m}'"),
                            ),
                        }
                    }
                }
            }
            "protocol" => {
                if let Some(p) = self.arg(n, 1, "protocol") {
                    match p.to_ascii_uppercase().as_str() {
                        "TCP" => vs.protocol = Some(Protocol::Tcp),
                        "UDP" => vs.protocol = Some(Protocol::Udp),
                        "SCTP" => self.err(&n.loc, "SCTP virtual servers are not supported by xvs"),
                        _ => self.err(
                            &n.loc,
                            format!("protocol: unknown protocol '{p}' (TCP|UDP)"),
                        ),
                    }
                }
            }
            "ha_suspend" => vs.ha_suspend = true,
            "smtp_alert" => self.warn(&n.loc, "smtp_alert ignored: xvs sends no e-mail"),
            "snmp_name" => self.warn(&n.loc, "snmp_name ignored: xvs has no SNMP agent"),
            "virtualhost" => self.string(n, &mut vs.virtualhost),
            "alpha" => vs.alpha = true,
            "omega" => vs.omega = true,
            "quorum_up" | "quorum_down" => {
                let slot = if kw == "quorum_up" {
                    &vs.quorum_up
                } else {
                    &vs.quorum_down
                };
                if slot.is_some() {
                    self.err(&n.loc, format!("{kw} script already specified"));
                } else if let Some(s) = self.script(n) {
                    if kw == "quorum_up" {
                        vs.quorum_up = Some(s);
                    } else {
                        vs.quorum_down = Some(s);
                    }
                }
            }
            "quorum" => vs.quorum = self.u32v(n, 1, u32::MAX as u64).unwrap_or(vs.quorum),
            "hysteresis" => {
                vs.hysteresis = self.u32v(n, 0, u32::MAX as u64).unwrap_or(vs.hysteresis)
            }
            "weight" => vs.weight = self.u32v(n, 1, MAX_WEIGHT).unwrap_or(vs.weight),
            "sorry_server" => {
                let Some(addr) = self.ipv4(n, 1) else { return };
                match parse_port(n.words.get(2).map(String::as_str)) {
                    Ok(port) => {
                        vs.sorry = Some(RawSorry {
                            loc: n.loc.clone(),
                            addr,
                            port,
                            fwd: vs.fwd,
                            inhibit: false,
                        })
                    }
                    Err(e) => self.err(&n.loc, format!("sorry_server: {e}")),
                }
            }
            "sorry_server_inhibit" => match &mut vs.sorry {
                Some(s) => s.inhibit = true,
                None => self.err(
                    &n.loc,
                    "sorry_server_inhibit used before or without sorry_server",
                ),
            },
            "sorry_server_lvs_method" => {
                if vs.sorry.is_none() {
                    self.err(
                        &n.loc,
                        "sorry_server_lvs_method used before or without sorry_server",
                    );
                } else if let Some(f) = self.forwarding(n) {
                    if let Some(s) = &mut vs.sorry {
                        s.fwd = Some(f);
                    }
                }
            }
            "real_server" => {
                if let Some(rs) = self.real_server(vs, n) {
                    vs.rs.push(rs);
                }
            }
            k => self.warn(
                &n.loc,
                format!("virtual_server: unknown keyword '{k}' ignored"),
            ),
        }
    }

    fn real_server(&mut self, vs: &RawVs, n: &Node) -> Option<RawRs> {
        let a = self.arg(n, 1, "address")?;
        let addr = match parse_ipv4(a) {
            Ok(x) => x,
            Err(e) => {
                self.err(&n.loc, format!("real_server: {e}"));
                return None;
            }
        };
        let port = match parse_port(n.words.get(2).map(String::as_str)) {
            Ok(p) => p,
            Err(e) => {
                self.err(&n.loc, format!("real_server: {e}"));
                return None;
            }
        };
        let mut rs = RawRs {
            loc: n.loc.clone(),
            addr,
            port,
            weight: None,
            fwd: vs.fwd,
            u_threshold: 0,
            l_threshold: 0,
            inhibit: None,
            alpha: None,
            notify_up: None,
            notify_down: None,
            retry: None,
            delay_before_retry: None,
            warmup: None,
            connect_timeout: None,
            delay_loop: None,
            virtualhost: None,
            checkers: vec![],
        };
        let Some(b) = &n.block else {
            self.err(&n.loc, "real_server: missing { } block");
            return Some(rs);
        };
        for c in b {
            let kw = c.kw();
            if !matches!(kw, "notify_up" | "notify_down") {
                self.quote_check(c);
            }
            match kw {
                "weight" => rs.weight = self.u32v(c, 0, MAX_WEIGHT).or(rs.weight),
                "lvs_method" => {
                    if let Some(f) = self.forwarding(c) {
                        rs.fwd = Some(f);
                    }
                }
                "uthreshold" => {
                    rs.u_threshold = self.u32v(c, 0, u32::MAX as u64).unwrap_or(rs.u_threshold)
                }
                "lthreshold" => {
                    rs.l_threshold = self.u32v(c, 0, u32::MAX as u64).unwrap_or(rs.l_threshold)
                }
                "inhibit_on_failure" => rs.inhibit = self.boolarg(c).or(rs.inhibit),
                "alpha" => rs.alpha = self.boolarg(c).or(rs.alpha),
                "notify_up" | "notify_down" => {
                    let slot = if kw == "notify_up" {
                        &mut rs.notify_up
                    } else {
                        &mut rs.notify_down
                    };
                    if slot.is_some() {
                        self.err(&c.loc, format!("{kw} script already specified"));
                    } else {
                        *slot = self.script(c);
                    }
                }
                "retry" => rs.retry = self.u32v(c, 1, u32::MAX as u64).or(rs.retry),
                "delay_before_retry" => {
                    rs.delay_before_retry = self.timer(c, 0, 0).or(rs.delay_before_retry)
                }
                "warmup" => rs.warmup = self.timer(c, 0, 0).or(rs.warmup),
                "connect_timeout" => {
                    rs.connect_timeout = self.timer(c, 1, u32::MAX as u64).or(rs.connect_timeout)
                }
                "delay_loop" => rs.delay_loop = self.timer(c, 1, 0).or(rs.delay_loop),
                "smtp_alert" => self.warn(&c.loc, "smtp_alert ignored: xvs sends no e-mail"),
                "snmp_name" => self.warn(&c.loc, "snmp_name ignored: xvs has no SNMP agent"),
                "virtualhost" => self.string(c, &mut rs.virtualhost),
                "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "UDP_CHECK" | "DNS_CHECK"
                | "SMTP_CHECK" | "PING_CHECK" | "BFD_CHECK" | "FILE_CHECK" => {
                    if let Some(ch) = self.checker(c) {
                        rs.checkers.push(ch);
                    }
                    continue;
                }
                k => {
                    self.warn(
                        &c.loc,
                        format!("real_server: unknown keyword '{k}' ignored"),
                    );
                    continue;
                }
            }
            self.no_block(c);
        }
        Some(rs)
    }

    // ------------------------------------------------------------ checkers

    /// Connection keyword (`install_checker_common_keywords(true)`); true if handled.
    fn conn_keyword(&mut self, co: &mut RawConn, n: &Node) -> bool {
        match n.kw() {
            "connect_ip" => co.connect_ip = self.ipv4(n, 1).or(co.connect_ip),
            "connect_port" => {
                co.connect_port = self.u32v(n, 1, 65535).map(|p| p as u16).or(co.connect_port)
            }
            "bindto" => co.bindto = self.ipv4(n, 1).or(co.bindto),
            "bind_port" => co.bind_port = self.u32v(n, 1, 65535).map(|p| p as u16).or(co.bind_port),
            "bind_if" => {
                if let Some(i) = self.arg(n, 1, "interface name") {
                    if i.len() > 15 {
                        self.err(&n.loc, format!("bind_if: interface name '{i}' is too long"));
                    } else {
                        co.bind_if = Some(i.to_string());
                    }
                }
            }
            "connect_timeout" => {
                co.connect_timeout = self.timer(n, 1, u32::MAX as u64).or(co.connect_timeout)
            }
            "fwmark" => co.fwmark = self.u32v(n, 0, u32::MAX as u64).or(co.fwmark),
            _ => return false,
        }
        true
    }

    /// Timing keywords every checker has; true if handled.
    fn common_keyword(&mut self, ch: &mut RawChecker, n: &Node) -> bool {
        match n.kw() {
            "retry" => ch.retry = self.u32v(n, 0, u32::MAX as u64).or(ch.retry),
            "delay_before_retry" => {
                ch.delay_before_retry = self.timer(n, 0, 0).or(ch.delay_before_retry)
            }
            "warmup" => ch.warmup = self.timer(n, 0, 0).or(ch.warmup),
            "delay_loop" => ch.delay_loop = self.timer(n, 1, 0).or(ch.delay_loop),
            "alpha" => ch.alpha = self.boolarg(n).or(ch.alpha),
            "log_all_failures" => {
                ch.log_all_failures = self.boolarg(n).unwrap_or(ch.log_all_failures)
            }
            _ => return false,
        }
        true
    }

    fn checker(&mut self, n: &Node) -> Option<RawChecker> {
        let kw = n.kw().to_string();
        let Some(b) = &n.block else {
            self.err(&n.loc, format!("{kw}: missing {{ }} block"));
            return None;
        };
        let kind = match kw.as_str() {
            "TCP_CHECK" => RawKind::Tcp,
            "HTTP_GET" | "SSL_GET" => RawKind::Http(
                HttpCheck {
                    tls: kw == "SSL_GET",
                    urls: vec![],
                    http_protocol: HttpProtocol::Http10,
                    enable_sni: false,
                    sni_name: None,
                    fast_recovery: false,
                    tls_compliant: false,
                },
                None,
            ),
            "MISC_CHECK" => RawKind::Misc(None, None, false, None),
            "UDP_CHECK" => RawKind::Udp(UdpCheck {
                payload: None,
                require_reply: false,
                reply: None,
                reply_mask: None,
                min_reply_length: 0,
                max_reply_length: 255,
            }),
            "DNS_CHECK" => RawKind::Dns(DnsCheck {
                qtype: "SOA".into(),
                name: String::new(),
            }),
            "SMTP_CHECK" => RawKind::Smtp(None, vec![]),
            "PING_CHECK" => RawKind::Ping,
            _ => RawKind::Unsupported(kw.clone()),
        };
        let conn = match kind {
            RawKind::Misc(..) | RawKind::Unsupported(_) => None,
            _ => Some(RawConn::default()),
        };
        let mut ch = RawChecker {
            loc: n.loc.clone(),
            kind,
            conn,
            retry: None,
            delay_before_retry: None,
            warmup: None,
            delay_loop: None,
            alpha: None,
            log_all_failures: false,
        };
        if matches!(ch.kind, RawKind::Unsupported(_)) {
            return Some(ch);
        }
        for c in b {
            if !matches!(c.kw(), "misc_path") {
                self.quote_check(c);
            }
            if c.kw() != "url" && c.kw() != "host" {
                self.no_block(c);
            }
            if let Some(co) = ch.conn.as_mut() {
                let mut co2 = std::mem::take(co);
                let handled = self.conn_keyword(&mut co2, c);
                *ch.conn.as_mut().expect("conn") = co2;
                if handled {
                    continue;
                }
            }
            if self.common_keyword(&mut ch, c) {
                continue;
            }
            let handled = match &mut ch.kind {
                RawKind::Http(h, vhost) => self.http_keyword(h, vhost, c),
                RawKind::Misc(script, timeout, dynamic, user) => match c.kw() {
                    "misc_path" => {
                        *script = self.script(c);
                        true
                    }
                    "misc_timeout" => {
                        *timeout = self
                            .uint(c, 0, u32::MAX as u64 / 1_000_000)
                            .map(Duration::from_secs)
                            .or(*timeout);
                        true
                    }
                    "misc_dynamic" => {
                        *dynamic = true;
                        true
                    }
                    "user" => {
                        if let Some(u) = self.arg(c, 1, "user name") {
                            *user = Some(ScriptUser {
                                user: u.to_string(),
                                group: c.words.get(2).cloned(),
                            });
                        }
                        true
                    }
                    _ => false,
                },
                RawKind::Udp(u) => self.udp_keyword(u, c),
                RawKind::Dns(d) => self.dns_keyword(d, c),
                RawKind::Smtp(helo, hosts) => match c.kw() {
                    "helo_name" => {
                        if c.words.len() < 2 {
                            self.err(&c.loc, "SMTP_CHECK helo_name missing");
                        } else {
                            *helo = Some(c.words[1..].join(" "));
                        }
                        true
                    }
                    "host" => {
                        let mut co = RawConn::default();
                        for h in c.block.as_deref().unwrap_or(&[]) {
                            if !self.conn_keyword(&mut co, h) {
                                self.warn(
                                    &h.loc,
                                    format!("SMTP_CHECK host: keyword '{}' ignored", h.kw()),
                                );
                            }
                        }
                        if c.block.is_none() {
                            self.err(&c.loc, "SMTP_CHECK host: missing { } block");
                        }
                        hosts.push(co);
                        true
                    }
                    _ => false,
                },
                _ => false,
            };
            if !handled {
                self.warn(
                    &c.loc,
                    format!("{kw}: unknown keyword '{}' ignored", c.kw()),
                );
            }
        }
        match &ch.kind {
            RawKind::Http(h, _) if h.urls.is_empty() => {
                self.err(&n.loc, format!("{kw} has no url {{ }} block"));
                return None;
            }
            RawKind::Misc(None, ..) => {
                self.err(&n.loc, "MISC_CHECK has no misc_path");
                return None;
            }
            RawKind::Udp(u) if u.min_reply_length > u.max_reply_length => self.warn(
                &n.loc,
                "UDP_CHECK min_reply_length > max_reply_length - the check will always fail",
            ),
            _ => {}
        }
        Some(ch)
    }

    fn http_keyword(&mut self, h: &mut HttpCheck, vhost: &mut Option<String>, c: &Node) -> bool {
        match c.kw() {
            "virtualhost" => self.string(c, vhost),
            "http_protocol" => match c.words.get(1).map(String::as_str) {
                Some("1.0") => h.http_protocol = HttpProtocol::Http10,
                Some("1.1") => h.http_protocol = HttpProtocol::Http11,
                Some("1.0C") | Some("1.0c") => h.http_protocol = HttpProtocol::Http10Close,
                Some(o) => self.err(
                    &c.loc,
                    format!("http_protocol: invalid version '{o}' (1.0|1.0C|1.1)"),
                ),
                None => self.err(&c.loc, "http_protocol: missing version"),
            },
            "enable_sni" => h.enable_sni = self.boolarg(c).unwrap_or(h.enable_sni),
            "sni_name" => {
                if let Some(s) = c.words.get(1) {
                    h.sni_name = Some(s.clone());
                }
                h.enable_sni = true;
            }
            "fast_recovery" => h.fast_recovery = self.boolarg(c).unwrap_or(h.fast_recovery),
            "tls_compliant" => h.tls_compliant = self.boolarg(c).unwrap_or(h.tls_compliant),
            "url" => {
                if let Some(u) = self.url(c) {
                    h.urls.push(u);
                }
            }
            _ => return false,
        }
        true
    }

    fn url(&mut self, n: &Node) -> Option<Url> {
        let Some(b) = &n.block else {
            self.err(&n.loc, "url: missing { } block");
            return None;
        };
        let mut u = Url {
            path: String::new(),
            digest: None,
            status_codes: vec![],
            virtualhost: None,
            regex: None,
            regex_no_match: false,
            regex_options: vec![],
            regex_min_offset: None,
            regex_max_offset: None,
            tls_compliant: false,
        };
        let mut path = None;
        for c in b {
            self.no_block(c);
            match c.kw() {
                "path" => self.string(c, &mut path),
                "digest" => {
                    let Some(d) = self.arg(c, 1, "digest") else {
                        continue;
                    };
                    if u.digest.is_some() {
                        self.err(&c.loc, format!("digest '{d}' is a duplicate"));
                    } else if d.len() != 32 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
                        self.err(
                            &c.loc,
                            format!("digest '{d}' must be 32 hex digits (an MD5 sum)"),
                        );
                    } else {
                        u.digest = Some(d.to_ascii_lowercase());
                    }
                }
                "status_code" => {
                    if c.words.len() < 2 {
                        self.err(&c.loc, "status_code: missing code");
                    }
                    for s in &c.words[1..] {
                        let (lo, hi) = match s.split_once('-') {
                            Some((a, b)) => (digits(a), digits(b)),
                            None => (digits(s), digits(s)),
                        };
                        match (lo, hi) {
                            (Some(lo), Some(hi))
                                if (100..=599).contains(&lo)
                                    && (100..=599).contains(&hi)
                                    && lo <= hi =>
                            {
                                u.status_codes.push((lo as u16, hi as u16))
                            }
                            _ => self.err(
                                &c.loc,
                                format!("invalid HTTP status code '{s}' (100-599, or LOW-HIGH)"),
                            ),
                        }
                    }
                }
                "virtualhost" => self.string(c, &mut u.virtualhost),
                "regex" => match split_quoted(&c.raw, true) {
                    Ok(w) if w.len() == 2 => u.regex = Some(w[1].clone()),
                    Ok(_) => self.err(
                        &c.loc,
                        "regex: missing or too many fields (quote the pattern)",
                    ),
                    Err(e) => self.err(&c.loc, format!("regex: {e}")),
                },
                "regex_no_match" => u.regex_no_match = true,
                "regex_options" => u.regex_options.extend(c.words[1..].iter().cloned()),
                "regex_min_offset" => u.regex_min_offset = self.uint(c, 0, u64::MAX),
                "regex_max_offset" => u.regex_max_offset = self.uint(c, 0, u64::MAX),
                "regex_stack" => {}
                "tls_compliant" => u.tls_compliant = self.boolarg(c).unwrap_or(false),
                k => self.warn(&c.loc, format!("url: unknown keyword '{k}' ignored")),
            }
        }
        let Some(p) = path else {
            self.err(&n.loc, "url has no path");
            return None;
        };
        u.path = p;
        if u.status_codes.is_empty() {
            u.status_codes.push((200, 299));
        }
        if u.regex.is_none() && (u.regex_no_match || !u.regex_options.is_empty()) {
            self.warn(&n.loc, "regex parameters specified without regex - ignored");
            u.regex_no_match = false;
            u.regex_options.clear();
        }
        Some(u)
    }

    fn udp_keyword(&mut self, u: &mut UdpCheck, c: &Node) -> bool {
        match c.kw() {
            "payload" => {
                if c.words.len() < 2 {
                    self.err(&c.loc, "UDP_CHECK payload requires a payload");
                } else {
                    match read_hex(&c.words[1..].join(" "), false) {
                        Some((d, _)) => u.payload = Some(d),
                        None => self.err(&c.loc, "invalid hex string for UDP_CHECK payload"),
                    }
                }
            }
            "require_reply" => {
                u.require_reply = true;
                if c.words.len() > 1 {
                    match read_hex(&c.words[1..].join(" "), true) {
                        Some((d, m)) => {
                            u.reply = Some(d);
                            u.reply_mask = m;
                        }
                        None => self.err(&c.loc, "invalid hex string for UDP_CHECK reply"),
                    }
                }
            }
            "min_reply_length" => {
                u.min_reply_length = self
                    .u32v(c, 0, 65535)
                    .map_or(u.min_reply_length, |v| v as u16)
            }
            "max_reply_length" => {
                u.max_reply_length = self
                    .u32v(c, 0, 65535)
                    .map_or(u.max_reply_length, |v| v as u16)
            }
            _ => return false,
        }
        true
    }

    fn dns_keyword(&mut self, d: &mut DnsCheck, c: &Node) -> bool {
        const TYPES: &[&str] = &[
            "A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA", "RRSIG", "DNSKEY",
        ];
        match c.kw() {
            "type" => {
                if let Some(t) = self.arg(c, 1, "query type") {
                    let up = t.to_ascii_uppercase();
                    if TYPES.contains(&up.as_str()) {
                        d.qtype = up;
                    } else {
                        self.err(
                            &c.loc,
                            format!("unknown DNS_CHECK type '{t}' ({})", TYPES.join("|")),
                        );
                    }
                }
            }
            "name" => {
                if let Some(name) = self.arg(c, 1, "name") {
                    let empty_label = (name.starts_with('.') && name != ".") || name.contains("..");
                    if empty_label {
                        self.err(
                            &c.loc,
                            format!("DNS_CHECK name '{name}' has an empty label"),
                        );
                    } else if !d.name.is_empty() {
                        self.err(&c.loc, "DNS_CHECK name already specified");
                    } else {
                        d.name = name.to_string();
                    }
                }
            }
            _ => return false,
        }
        true
    }
}

// ------------------------------------------------------------- resolution

impl P {
    /// keepalived's `validate_check_config` for one virtual server and one of
    /// its addresses.
    fn resolve(
        &mut self,
        vs: &RawVs,
        group: Option<&str>,
        addr: Ipv4Addr,
        port: u16,
    ) -> Option<VirtualServer> {
        if vs.rs.is_empty() {
            self.warn(
                &vs.loc,
                format!(
                    "virtual server {addr}:{port} has no real servers - ignored (as keepalived)"
                ),
            );
            return None;
        }
        let protocol = vs.protocol.unwrap_or_else(|| {
            self.warn(
                &vs.loc,
                "no protocol set - defaulting to UDP (as keepalived)",
            );
            Protocol::Udp
        });
        let mut flags = vs.flags;
        if flags & svc_flags::ONEPACKET != 0 && protocol != Protocol::Udp {
            self.warn(
                &vs.loc,
                "ops (one-packet scheduling) requires UDP - ignored",
            );
            flags &= !svc_flags::ONEPACKET;
        }
        let mut persistence_timeout = vs.persistence_timeout;
        if persistence_timeout.is_none() && port == 0 {
            self.warn(
                &vs.loc,
                "zero port only valid for persistent services - setting persistence_timeout 360",
            );
            persistence_timeout = Some(DEFAULT_PERSISTENCE);
        }
        let scheduler = vs.sched.clone().unwrap_or_else(|| {
            self.warn(&vs.loc, "no scheduler set - using 'wlc' (as keepalived)");
            "wlc".into()
        });
        let mut warned_fwd = false;
        let mut vs_fwd = |p: &mut P| {
            vs.fwd.unwrap_or_else(|| {
                if !warned_fwd {
                    p.warn(
                        &vs.loc,
                        "no forwarding method set - using NAT (as keepalived)",
                    );
                    warned_fwd = true;
                }
                Forwarding::NAT
            })
        };
        let mut rss: Vec<RealServer> = vec![];
        let mut weight_sum: u64 = 0;
        for r in &vs.rs {
            let fwd = match r.fwd {
                Some(f) => f,
                None => vs_fwd(self),
            };
            let mut rport = r.port.unwrap_or(port);
            if fwd.method != FwdMethod::Masq && rport != port {
                self.warn(
                    &r.loc,
                    format!("real server {}:{rport}: port differs from virtual server port {port} with DR/TUN - using {port}", r.addr),
                );
                rport = port;
            }
            if let Some(prev) = rss.iter().find(|x| x.addr == r.addr && x.port == rport) {
                let p = prev.location.clone();
                self.warn(
                    &r.loc,
                    format!(
                        "real server {}:{rport} duplicates the one at {p} - removed",
                        r.addr
                    ),
                );
                continue;
            }
            let weight = r.weight.unwrap_or(vs.weight);
            weight_sum += u64::from(weight);
            let inhibit = r.inhibit.unwrap_or(vs.inhibit);
            let alpha = r.alpha.unwrap_or(vs.alpha);
            let mut checkers = vec![];
            for c in &r.checkers {
                checkers.push(self.resolve_checker(vs, r, c, rport));
            }
            rss.push(RealServer {
                location: r.loc.clone(),
                addr: r.addr,
                port: rport,
                weight,
                forwarding: fwd,
                u_threshold: r.u_threshold,
                l_threshold: r.l_threshold,
                inhibit_on_failure: inhibit,
                alpha,
                notify_up: r.notify_up.clone(),
                notify_down: r.notify_down.clone(),
                virtualhost: r.virtualhost.clone(),
                checkers,
            });
        }
        let sorry_server = vs.sorry.as_ref().map(|s| {
            let fwd = match s.fwd {
                Some(f) => f,
                None => vs_fwd(self),
            };
            let mut sport = s.port.unwrap_or(port);
            if fwd.method != FwdMethod::Masq && sport != port {
                self.warn(&s.loc, format!("sorry server port differs from virtual server port {port} with DR/TUN - using {port}"));
                sport = port;
            }
            let mut inhibit = s.inhibit;
            if let Some(rs) = rss.iter().find(|r| r.addr == s.addr && r.port == sport) {
                if rs.inhibit_on_failure != inhibit {
                    self.warn(&s.loc, "sorry server is also a real server with another inhibit_on_failure - using the real server's");
                    inhibit = rs.inhibit_on_failure;
                }
            }
            SorryServer { location: s.loc.clone(), addr: s.addr, port: sport, forwarding: fwd, inhibit }
        });
        let mut quorum = vs.quorum;
        if u64::from(quorum) > weight_sum {
            self.warn(
                &vs.loc,
                format!("quorum {quorum} exceeds the total weight of the real servers {weight_sum} - reduced to {weight_sum}"),
            );
            quorum = weight_sum as u32;
        }
        let mut hysteresis = vs.hysteresis;
        if hysteresis >= quorum && hysteresis > 0 {
            let h = quorum.saturating_sub(1);
            self.warn(
                &vs.loc,
                format!("hysteresis {hysteresis} >= quorum {quorum} - set to {h}"),
            );
            hysteresis = h;
        }
        Some(VirtualServer {
            location: vs.loc.clone(),
            group: group.map(str::to_string),
            addr,
            port,
            protocol,
            scheduler,
            flags,
            forwarding: vs.fwd.unwrap_or_default(),
            persistence_timeout,
            persistence_granularity: vs.granularity,
            persistence_engine: vs.engine.clone(),
            delay_loop: vs.delay_loop,
            connect_timeout: vs.connect_timeout,
            retry: vs.retry,
            delay_before_retry: vs.delay_before_retry,
            warmup: vs.warmup,
            inhibit_on_failure: vs.inhibit,
            alpha: vs.alpha,
            omega: vs.omega,
            quorum,
            hysteresis,
            quorum_up: vs.quorum_up.clone(),
            quorum_down: vs.quorum_down.clone(),
            ha_suspend: vs.ha_suspend,
            virtualhost: vs.virtualhost.clone(),
            sorry_server,
            real_servers: rss,
        })
    }

    fn resolve_checker(&mut self, vs: &RawVs, r: &RawRs, c: &RawChecker, rport: u16) -> Checker {
        let conn_timeout = r.connect_timeout.unwrap_or(vs.connect_timeout);
        let conn_of = |co: &RawConn, base: Option<&ConnOpts>| ConnOpts {
            connect_ip: co
                .connect_ip
                .or(base.map(|b| b.connect_ip))
                .unwrap_or(r.addr),
            connect_port: co
                .connect_port
                .or(base.map(|b| b.connect_port))
                .unwrap_or(rport),
            bindto: co.bindto.or(base.and_then(|b| b.bindto)),
            bind_port: co.bind_port.or(base.and_then(|b| b.bind_port)),
            bind_if: co.bind_if.clone().or(base.and_then(|b| b.bind_if.clone())),
            fwmark: co.fwmark.or(base.and_then(|b| b.fwmark)),
            connect_timeout: co
                .connect_timeout
                .or(base.map(|b| b.connect_timeout))
                .unwrap_or(conn_timeout),
        };
        let conn = c.conn.as_ref().map(|co| conn_of(co, None));
        let delay_loop = c.delay_loop.or(r.delay_loop).unwrap_or(vs.delay_loop);
        let (default_retry, default_dbr) = match &c.kind {
            RawKind::Http(..) => (1, Duration::from_secs(3)),
            RawKind::Misc(..) => (0, Duration::from_secs(1)),
            RawKind::Dns(_) => (3, delay_loop),
            _ => (1, Duration::from_secs(1)),
        };
        let kind = match &c.kind {
            RawKind::Tcp => CheckerKind::Tcp,
            RawKind::Ping => CheckerKind::Ping,
            RawKind::Unsupported(k) => CheckerKind::Unsupported { keyword: k.clone() },
            RawKind::Udp(u) => CheckerKind::Udp(u.clone()),
            RawKind::Dns(d) => CheckerKind::Dns(d.clone()),
            RawKind::Http(h, vhost) => {
                let mut h = h.clone();
                for u in &mut h.urls {
                    if u.virtualhost.is_none() {
                        u.virtualhost = vhost
                            .clone()
                            .or(r.virtualhost.clone())
                            .or(vs.virtualhost.clone());
                    }
                }
                CheckerKind::Http(h)
            }
            RawKind::Misc(script, timeout, dynamic, user) => {
                let mut script = script
                    .clone()
                    .expect("MISC_CHECK without misc_path is rejected");
                if user.is_some() {
                    script.user = user.clone();
                }
                CheckerKind::Misc(MiscCheck {
                    script,
                    timeout: timeout.unwrap_or(vs.delay_loop),
                    dynamic: *dynamic,
                })
            }
            RawKind::Smtp(helo, hosts) => CheckerKind::Smtp(SmtpCheck {
                helo_name: helo
                    .clone()
                    .unwrap_or_else(|| "smtpchecker.keepalived.org".into()),
                hosts: hosts.iter().map(|h| conn_of(h, conn.as_ref())).collect(),
            }),
        };
        Checker {
            location: c.loc.clone(),
            kind,
            conn,
            retry: c.retry.or(r.retry).or(vs.retry).unwrap_or(default_retry),
            delay_before_retry: c
                .delay_before_retry
                .or(r.delay_before_retry)
                .or(vs.delay_before_retry)
                .unwrap_or(default_dbr),
            warmup: c.warmup.or(r.warmup).or(vs.warmup).unwrap_or(delay_loop),
            delay_loop,
            alpha: c.alpha.or(r.alpha).unwrap_or(vs.alpha),
            log_all_failures: c.log_all_failures,
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
    let mut seen: HashMap<(Protocol, Ipv4Addr, u16), Location> = HashMap::new();
    let vss = std::mem::take(&mut p.vss);
    for vs in &vss {
        let targets: Vec<(Ipv4Addr, u16)> = match &vs.target {
            Target::Addr(a, port) => vec![(*a, *port)],
            Target::Group(g) => match p.groups.get(g) {
                Some(grp) => grp.entries.clone(),
                None => {
                    p.err(
                        &vs.loc,
                        format!("virtual_server group {g}: no virtual_server_group {g} is defined"),
                    );
                    continue;
                }
            },
        };
        let group = match &vs.target {
            Target::Group(g) => Some(g.as_str()),
            Target::Addr(..) => None,
        };
        for (addr, port) in targets {
            if let Some(v) = p.resolve(vs, group, addr, port) {
                let key = (v.protocol, v.addr, v.port);
                if let Some(prev) = seen.get(&key) {
                    let prev = prev.clone();
                    p.err(
                        &vs.loc,
                        format!(
                            "duplicate virtual server {} {addr}:{port} (first at {prev})",
                            v.protocol
                        ),
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
