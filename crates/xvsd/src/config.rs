//! keepalived.conf → what xvsd manages (`--config`).
//!
//! [`load`] reads the file with `xvs_keepalived`, then checks that xvsd can
//! carry out every part of it: checker kinds the health engine runs, options
//! it honours, and every service and real server through the same
//! validation as an `xvsadm` change (on an empty table). Every problem is an
//! [`Error`] at the `file:line` of the keyword concerned; nothing is
//! silently dropped.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use xvs_core::api::Request;
use xvs_core::model::{Dest, Service, ServiceKey, SyncDaemon, SyncState};
use xvs_health::config as hc;
use xvs_health::{RsId, RsSpec};
use xvs_keepalived::{
    Checker, CheckerKind, Config, Error, Errors, FlushOnStop, Location, LvsTimeouts, MatchRule,
    Options, Script, ScriptUser, Warning,
};

use crate::owned::Owned;
use crate::table::{Limits, Model};

/// A real server as xvsd runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedRs {
    /// Where its `real_server` line is.
    pub location: Location,
    /// The destination with the configured weight.
    pub dest: Dest,
    /// `inhibit_on_failure`: weight 0 instead of removal when down.
    pub inhibit: bool,
    /// `notify_up`.
    pub notify_up: Option<Script>,
    /// `notify_down`.
    pub notify_down: Option<Script>,
    /// Its checkers, for the health engine (none: always up).
    pub checkers: Vec<hc::CheckerConfig>,
}

/// `sorry_server`.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedSorry {
    /// Where its line is.
    pub location: Location,
    /// The destination (weight 1, as keepalived).
    pub dest: Dest,
    /// `sorry_server_inhibit`: kept with weight 0 while not in use.
    pub inhibit: bool,
}

/// A virtual server as xvsd runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedVs {
    /// Where its `virtual_server` line is.
    pub location: Location,
    /// `virtual_server group NAME`.
    pub group: Option<String>,
    /// The IPVS service.
    pub service: Service,
    /// `quorum` (effective).
    pub quorum: u32,
    /// `hysteresis` (effective).
    pub hysteresis: u32,
    /// `quorum_up`.
    pub quorum_up: Option<Script>,
    /// `quorum_down`.
    pub quorum_down: Option<Script>,
    /// `omega`: down scripts at shutdown.
    pub omega: bool,
    /// `sorry_server`.
    pub sorry: Option<ManagedSorry>,
    /// The real servers, in file order.
    pub rs: Vec<ManagedRs>,
}

impl ManagedVs {
    /// The service key.
    pub fn key(&self) -> ServiceKey {
        self.service.key
    }

    /// The health-engine id of one of its real servers.
    pub fn rs_id(&self, rs: &ManagedRs) -> RsId {
        RsId {
            service: self.service.key,
            dest: SocketAddr::new(rs.dest.addr, rs.dest.port),
        }
    }
}

/// Everything xvsd takes from a keepalived.conf.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Managed {
    /// The virtual servers (groups expanded), in file order.
    pub services: Vec<ManagedVs>,
    /// `global_defs` `lvs_timeouts`.
    pub timeouts: LvsTimeouts,
    /// `global_defs` `script_user`: default user of notify scripts.
    pub script_user: Option<ScriptUser>,
    /// `lvs_flush`.
    pub flush_at_start: bool,
    /// `lvs_flush_on_stop`.
    pub flush_on_stop: Option<FlushOnStop>,
    /// `lvs_sync_daemon`: the connection sync daemons xvsd runs.
    pub sync: Option<ManagedSync>,
    /// The mark rules (`@xvsd match`) of the fwmark services, in file
    /// order, duplicates removed.
    pub mark_rules: Vec<MatchRule>,
}

/// `lvs_sync_daemon`, as xvsd runs it: both daemons for good without a
/// VRRP instance; with one, a backup that turns master while keepalived
/// (`--vrrp`) reports the instance MASTER through `notify_fifo`.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedSync {
    /// Where its line is.
    pub location: Location,
    /// The daemon's settings (`state` is set when it starts).
    pub daemon: SyncDaemon,
    /// The VRRP instance it follows.
    pub instance: Option<String>,
    /// The FIFO keepalived reports VRRP states to (`notify_fifo`, else
    /// `vrrp_notify_fifo`).
    pub fifo: Option<PathBuf>,
}

impl Managed {
    /// The virtual server with this key.
    pub fn vs(&self, key: &ServiceKey) -> Option<&ManagedVs> {
        self.services.iter().find(|v| v.service.key == *key)
    }

    /// The service keys.
    pub fn keys(&self) -> BTreeSet<ServiceKey> {
        self.services.iter().map(|v| v.service.key).collect()
    }

    /// The configuration's share of the table: its services and mark rules.
    pub fn owned(&self) -> Owned {
        Owned {
            services: self.keys(),
            marks: self.mark_rules.iter().map(|m| m.rule.clone()).collect(),
        }
    }

    /// What the health engine checks.
    pub fn rs_specs(&self) -> Vec<RsSpec> {
        self.services
            .iter()
            .flat_map(|vs| {
                vs.rs.iter().map(move |rs| RsSpec {
                    id: vs.rs_id(rs),
                    checkers: rs.checkers.clone(),
                })
            })
            .collect()
    }

    /// Number of real servers.
    pub fn rs_count(&self) -> usize {
        self.services.iter().map(|v| v.rs.len()).sum()
    }
}

/// The result of reading a file: what to run and the warnings, or every
/// error (with the warnings seen).
#[derive(Debug)]
pub struct Loaded {
    /// What xvsd runs.
    pub managed: Managed,
    /// Warnings of the parser and of xvsd.
    pub warnings: Vec<Warning>,
}

/// Reads and checks `path`.
pub fn load(path: &Path, opts: &Options) -> Result<Loaded, Errors> {
    let cfg = xvs_keepalived::load_with(path, opts)?;
    convert(&cfg)
}

/// Checks a parsed configuration and converts it.
pub fn convert(cfg: &Config) -> Result<Loaded, Errors> {
    let mut errors = Vec::new();
    let mut warnings = cfg.warnings.clone();
    let mut services = Vec::new();
    if let Some(ssl) = &cfg.ssl {
        if ssl.ca.is_some() || ssl.certificate.is_some() || ssl.key.is_some() {
            warnings.push(Warning::new(
                Location::file(
                    cfg.virtual_servers
                        .first()
                        .map(|v| v.location.file.as_str())
                        .unwrap_or(""),
                ),
                "SSL block: xvs's SSL_GET neither presents a client certificate nor verifies the server's - ca, certificate and key are not used",
            ));
        }
    }
    for vs in &cfg.virtual_servers {
        if vs.ha_suspend {
            warnings.push(Warning::new(
                vs.location.clone(),
                "ha_suspend is not supported by xvs - checkers always run",
            ));
        }
        let mut rs_list = Vec::new();
        for rs in &vs.real_servers {
            let mut checkers = Vec::new();
            for c in &rs.checkers {
                match checker(c, &mut warnings) {
                    Ok(h) => checkers.push(h),
                    Err(msg) => errors.push(Error::new(c.location.clone(), msg)),
                }
            }
            rs_list.push(ManagedRs {
                location: rs.location.clone(),
                dest: rs.to_dest(vs),
                inhibit: rs.inhibit_on_failure,
                notify_up: rs.notify_up.clone(),
                notify_down: rs.notify_down.clone(),
                checkers,
            });
        }
        let sorry = vs.sorry_server.as_ref().map(|s| ManagedSorry {
            location: s.location.clone(),
            dest: s.to_dest(),
            inhibit: s.inhibit,
        });
        services.push(ManagedVs {
            location: vs.location.clone(),
            group: vs.group.clone(),
            service: vs.to_service(),
            quorum: vs.quorum,
            hysteresis: vs.hysteresis,
            quorum_up: vs.quorum_up.clone(),
            quorum_down: vs.quorum_down.clone(),
            omega: vs.omega,
            sorry,
            rs: rs_list,
        });
    }
    errors.extend(check_table(&services));
    let mark_rules = mark_rules(cfg, &mut errors, &mut warnings);
    for s in cfg
        .virtual_servers
        .iter()
        .flat_map(|v| {
            v.quorum_up
                .iter()
                .chain(v.quorum_down.iter())
                .map(move |s| (s, &v.location))
        })
        .chain(cfg.virtual_servers.iter().flat_map(|v| {
            v.real_servers.iter().flat_map(|r| {
                r.notify_up
                    .iter()
                    .chain(r.notify_down.iter())
                    .map(move |s| (s, &r.location))
            })
        }))
    {
        if s.0.args.is_empty() {
            errors.push(Error::new(s.1.clone(), "empty notify script"));
        }
    }
    if !errors.is_empty() {
        // Files in the order they appear in the configuration, lines in order.
        let mut files: Vec<&str> = Vec::new();
        for vs in &cfg.virtual_servers {
            let locs = std::iter::once(&vs.location).chain(vs.real_servers.iter().flat_map(|r| {
                std::iter::once(&r.location).chain(r.checkers.iter().map(|c| &c.location))
            }));
            for l in locs {
                if !files.contains(&l.file.as_str()) {
                    files.push(&l.file);
                }
            }
        }
        let rank = |f: &str| files.iter().position(|x| *x == f).unwrap_or(usize::MAX);
        errors.sort_by_key(|e| (rank(&e.location.file), e.location.line));
        return Err(Errors { errors, warnings });
    }
    let sync = cfg
        .global
        .lvs_sync_daemon
        .as_ref()
        .and_then(|d| sync_daemon(cfg, d, &mut errors, &mut warnings));
    if !errors.is_empty() {
        return Err(Errors { errors, warnings });
    }
    Ok(Loaded {
        managed: Managed {
            services,
            timeouts: cfg.global.lvs_timeouts,
            script_user: cfg.global.script_user.clone(),
            flush_at_start: cfg.global.lvs_flush,
            flush_on_stop: cfg.global.lvs_flush_on_stop,
            sync,
            mark_rules,
        },
        warnings,
    })
}

/// `lvs_sync_daemon` as xvsd runs it; IPv6 groups are refused (not yet
/// supported), and following an instance without a notify FIFO is
/// warned about (the daemon would stay backup).
fn sync_daemon(
    cfg: &Config,
    d: &xvs_keepalived::LvsSyncDaemon,
    errors: &mut Vec<Error>,
    warnings: &mut Vec<Warning>,
) -> Option<ManagedSync> {
    let group = match d.group {
        None => std::net::Ipv4Addr::UNSPECIFIED,
        Some(std::net::IpAddr::V4(g)) => g,
        Some(std::net::IpAddr::V6(g)) => {
            errors.push(Error::new(
                d.location.clone(),
                format!("lvs_sync_daemon: group {g}: IPv6 is not supported by xvs yet"),
            ));
            return None;
        }
    };
    let mut daemon = SyncDaemon::new(SyncState::Backup, &d.interface);
    daemon.syncid = d.syncid;
    daemon.sync_maxlen = d.maxlen.unwrap_or(0);
    daemon.mcast_group = group;
    daemon.mcast_port = d.port.unwrap_or(0);
    daemon.mcast_ttl = d.ttl.unwrap_or(0);
    let fifo = cfg
        .global
        .notify_fifo
        .as_ref()
        .or(cfg.global.vrrp_notify_fifo.as_ref())
        .map(|f| f.path.clone());
    if let (Some(inst), None) = (&d.vrrp_instance, &fifo) {
        warnings.push(Warning::new(
            d.location.clone(),
            format!(
                "lvs_sync_daemon: xvsd learns the state of VRRP instance {inst} from \
                 keepalived --vrrp through global_defs notify_fifo, which is not set: the sync \
                 daemon stays backup"
            ),
        ));
    }
    Some(ManagedSync {
        location: d.location.clone(),
        daemon,
        instance: d.vrrp_instance.clone(),
        fifo,
    })
}

/// The configuration's mark rules, duplicates removed, each conflict an
/// error at its `match` line; a warning for each fwmark service no rule
/// feeds (only `xvsadm --add-mark` could then give it traffic).
fn mark_rules(
    cfg: &Config,
    errors: &mut Vec<Error>,
    warnings: &mut Vec<Warning>,
) -> Vec<MatchRule> {
    let mut out: Vec<MatchRule> = Vec::new();
    let mut rules = Vec::new();
    for vs in &cfg.virtual_servers {
        if vs.fwmark != 0 && vs.mark_rules.is_empty() {
            warnings.push(Warning::new(
                vs.location.clone(),
                format!(
                    "virtual server FWM {}: no @xvsd match line gives packets mark {} - \
                     xvs has no iptables marks, so only xvsadm --add-mark rules can feed it",
                    vs.fwmark, vs.fwmark
                ),
            ));
        }
        for m in &vs.mark_rules {
            if rules.contains(&m.rule) {
                continue;
            }
            rules.push(m.rule.clone());
            // Checked one more rule at a time, so that the error names
            // the line that brings the conflict.
            if let Err(e) = xvs_core::fwmark::compile(&rules) {
                errors.push(Error::new(m.location.clone(), format!("match: {e}")));
                rules.pop();
                continue;
            }
            out.push(m.clone());
        }
    }
    out
}

/// Every service, real server and sorry server through the table's own
/// validation, as if added to an empty table by `xvsadm`.
fn check_table(services: &[ManagedVs]) -> Vec<Error> {
    let mut errors = Vec::new();
    let limits = Limits {
        max_services: u32::MAX,
        max_dests: u32::MAX,
    };
    let mut m = Model::default();
    for vs in services {
        let key = vs.service.key;
        if let Err(e) = m.apply(
            &Request::AddService {
                service: vs.service.clone(),
            },
            limits,
        ) {
            let name = if key.is_fwmark() {
                key.to_string()
            } else {
                format!("{} {}", key.proto, addr_port(key.addr, key.port))
            };
            errors.push(Error::new(
                vs.location.clone(),
                format!("virtual server {name}: {e}"),
            ));
            continue;
        }
        for rs in &vs.rs {
            if let Err(e) = m.apply(
                &Request::AddDest {
                    key,
                    dest: rs.dest.clone(),
                },
                limits,
            ) {
                errors.push(Error::new(
                    rs.location.clone(),
                    format!("real server {}: {e}", addr_port(rs.dest.addr, rs.dest.port)),
                ));
            }
        }
        if let Some(s) = &vs.sorry {
            let dup = vs
                .rs
                .iter()
                .any(|r| r.dest.addr == s.dest.addr && r.dest.port == s.dest.port);
            if !dup {
                if let Err(e) = m.apply(
                    &Request::AddDest {
                        key,
                        dest: s.dest.clone(),
                    },
                    limits,
                ) {
                    errors.push(Error::new(
                        s.location.clone(),
                        format!("sorry server {}: {e}", addr_port(s.dest.addr, s.dest.port)),
                    ));
                }
            }
        }
    }
    errors
}

const SUPPORTED: &str =
    "xvs runs TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, UDP_CHECK and DNS_CHECK";

fn secs(d: std::time::Duration) -> Option<std::time::Duration> {
    Some(d)
}

/// One checker for the health engine, or why xvsd cannot run it.
fn checker(c: &Checker, warnings: &mut Vec<Warning>) -> Result<hc::CheckerConfig, String> {
    let kind = match &c.kind {
        CheckerKind::Tcp => hc::CheckKind::Tcp(hc::TcpCheck),
        CheckerKind::Http(h) => {
            let mut urls = Vec::new();
            for u in &h.urls {
                if u.regex.is_some() {
                    return Err(format!(
                        "{}: url {}: regex is not supported by xvs (use status_code or digest)",
                        c.kind.keyword(),
                        u.path
                    ));
                }
                urls.push(hc::Url {
                    path: u.path.clone(),
                    digest: u.digest.clone(),
                    status_codes: u.status_codes.iter().map(|&(a, b)| a..=b).collect(),
                    virtualhost: u.virtualhost.clone(),
                });
            }
            if h.fast_recovery {
                warnings.push(Warning::new(
                    c.location.clone(),
                    "fast_recovery is not supported by xvs - ignored",
                ));
            }
            let sni = if h.enable_sni {
                h.sni_name
                    .clone()
                    .or_else(|| h.urls.iter().find_map(|u| u.virtualhost.clone()))
            } else {
                None
            };
            hc::CheckKind::Http(hc::HttpCheck {
                tls: h.tls,
                urls,
                virtualhost: None,
                protocol: match h.http_protocol {
                    xvs_keepalived::HttpProtocol::Http10 => hc::HttpProtocol::Http10,
                    xvs_keepalived::HttpProtocol::Http10Close => hc::HttpProtocol::Http10Close,
                    xvs_keepalived::HttpProtocol::Http11 => hc::HttpProtocol::Http11,
                },
                sni,
            })
        }
        CheckerKind::Misc(m) => hc::CheckKind::Misc(hc::MiscCheck {
            path: join_command(&m.script.args)?,
            timeout: secs(m.timeout),
            dynamic: m.dynamic,
            user: m.script.user.as_ref().map(|u| u.user.clone()),
            group: m.script.user.as_ref().and_then(|u| u.group.clone()),
        }),
        CheckerKind::Udp(u) => hc::CheckKind::Udp(hc::UdpCheck {
            payload: u.payload.clone(),
            require_reply: u.require_reply,
            reply: u.reply.as_ref().map(|data| hc::HexPattern {
                data: data.clone(),
                mask: u.reply_mask.clone().unwrap_or_else(|| vec![0; data.len()]),
            }),
            min_reply_len: u.min_reply_length,
            max_reply_len: u.max_reply_length,
        }),
        CheckerKind::Dns(d) => hc::CheckKind::Dns(hc::DnsCheck {
            qtype: hc::DnsType::from_name(&d.qtype)
                .ok_or_else(|| format!("DNS_CHECK: unknown type '{}'", d.qtype))?,
            name: d.name.clone(),
        }),
        CheckerKind::Smtp(_) | CheckerKind::Ping | CheckerKind::Unsupported { .. } => {
            return Err(format!(
                "{} is not supported by xvs ({SUPPORTED})",
                c.kind.keyword()
            ))
        }
    };
    let mut out = hc::CheckerConfig::new(kind);
    let co = &mut out.common;
    if let Some(conn) = &c.conn {
        if let Some(i) = &conn.bind_if {
            return Err(format!(
                "{}: bind_if {i} is not supported by xvs",
                c.kind.keyword()
            ));
        }
        if let Some(m) = conn.fwmark {
            return Err(format!(
                "{}: fwmark {m} on checker packets is not supported by xvs",
                c.kind.keyword()
            ));
        }
        if conn.connect_port == 0 {
            // A fwmark service's real servers often have no port; a check
            // of port 0 could only ever fail.
            return Err(format!(
                "{}: no port to check (the real server's port is 0) - set connect_port",
                c.kind.keyword()
            ));
        }
        co.connect_ip = Some(conn.connect_ip);
        co.connect_port = Some(conn.connect_port);
        co.bindto = conn.bindto;
        co.bind_port = conn.bind_port;
        co.connect_timeout = secs(conn.connect_timeout);
    }
    co.retry = Some(c.retry);
    co.delay_before_retry = secs(c.delay_before_retry);
    co.warmup = secs(c.warmup);
    co.delay_loop = secs(c.delay_loop);
    co.alpha = c.alpha;
    out.validate()
        .map_err(|e| format!("{}: {e}", c.kind.keyword()))?;
    Ok(out)
}

/// A command line that `xvs_health::script::split_command` splits back into
/// exactly `args`.
fn join_command(args: &[String]) -> Result<String, String> {
    let mut out = Vec::new();
    for a in args {
        let plain = !a.is_empty()
            && !a
                .chars()
                .any(|c| c.is_ascii_whitespace() || c == '\'' || c == '"' || c == '\\');
        if plain {
            out.push(a.clone());
        } else if a.ends_with('\\') {
            return Err(format!(
                "MISC_CHECK: argument {a:?} ends with a backslash, which xvs cannot pass on"
            ));
        } else if !a.contains('\'') {
            out.push(format!("'{a}'"));
        } else if !a.contains('"') {
            out.push(format!("\"{a}\""));
        } else {
            return Err(format!(
                "MISC_CHECK: argument {a:?} holds both quote characters, which xvs cannot pass on"
            ));
        }
    }
    Ok(out.join(" "))
}

/// keepalived's default config id (host name up to the first dot) unless
/// one is given.
pub fn options(config_id: Option<&str>) -> Options {
    match config_id {
        Some(id) => Options {
            config_id: Some(id.to_string()),
        },
        None => Options::from_host(),
    }
}

/// `addr:port` for logs (`[addr]:port` for IPv6).
pub fn addr_port(a: IpAddr, p: u16) -> String {
    SocketAddr::new(a, p).to_string()
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
