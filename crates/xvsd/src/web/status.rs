//! `GET /status.json`: the table as the status page shows it, in words an
//! operator who never used ipvsadm can read (forwarding methods,
//! schedulers and flags spelled out), with each real server's health and
//! each service's recent rates. A view built for the page, not the
//! control API's types: those stay ipvsadm's.

use std::net::IpAddr;

use serde::Serialize;
use xvs_core::api::{DestEntry, Table};
use xvs_core::model::{svc_flags, FwdMethod, Rates, Service, ServiceKey, Stats, TunType};

use crate::history::{History, Sample};
use crate::report::{HealthReport, RsReport, SvcReport};

/// The whole page's data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusView {
    /// xvsd's version.
    pub version: &'static str,
    /// When this view was taken, Unix milliseconds.
    pub generated_ms: u64,
    /// Whether the page may offer drain and weight changes
    /// (`--status-token-file`).
    pub write_actions: bool,
    /// The keepalived.conf in use (`--config`), if any.
    pub config: Option<String>,
    /// Every service of the table, in listing order, then the configured
    /// ones that are not in the table.
    pub services: Vec<SvcView>,
}

/// One virtual service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SvcView {
    /// What names it in write actions: `TCP 198.51.100.10:80`, `FWM 5`.
    pub id: String,
    /// The protocol in words (`TCP`, `UDP`, `SCTP`, `firewall mark`).
    pub protocol: String,
    /// `198.51.100.10:80`, or `mark 5`.
    pub address: String,
    /// The scheduler as ipvsadm spells it (`wlc`).
    pub scheduler: String,
    /// The scheduler in words (`weighted least-connection`).
    pub scheduler_text: String,
    /// The service's options in words (persistence, one-packet, ...).
    pub flags: Vec<String>,
    /// In the table now (a configured service may not be).
    pub in_table: bool,
    /// From the keepalived.conf.
    pub config_owned: bool,
    /// Quorum state, for a configured service.
    pub quorum_up: Option<bool>,
    /// The sorry server (`addr:port`), if one is configured.
    pub sorry_server: Option<String>,
    /// Whether the sorry server takes the traffic now.
    pub sorry_active: bool,
    /// Active connections, over its real servers.
    pub active_conns: u64,
    /// Inactive connections, over its real servers.
    pub inactive_conns: u64,
    /// Counters since it was added or zeroed.
    pub stats: Stats,
    /// Rates now.
    pub rates: Rates,
    /// Rates of the last minutes, oldest first, one every 2 s.
    pub history: Vec<Sample>,
    /// Its real servers, by address (a page that reorders rows as servers
    /// come and go is hard to read).
    pub real_servers: Vec<RsView>,
}

/// One real server of a service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RsView {
    /// `203.0.113.11:80`; what names it in write actions.
    pub address: String,
    /// How packets reach it, in words (`NAT (masquerading)`); `None`
    /// when it is not in the table.
    pub forwarding: Option<String>,
    /// Weight in the table; `None` when it is not in the table.
    pub weight: Option<u32>,
    /// `up`, `down` or `no check`.
    pub health: &'static str,
    /// Result text of the last health check.
    pub last_check: Option<String>,
    /// Whether the last check passed.
    pub last_check_ok: Option<bool>,
    /// When the last check ended, Unix milliseconds.
    pub last_check_ms: Option<u64>,
    /// In the table now (a failed configured server leaves it).
    pub in_table: bool,
    /// From the keepalived.conf (a reload restores its weight).
    pub config_owned: bool,
    /// The service's sorry server.
    pub sorry_server: bool,
    /// Established connections.
    pub active_conns: u32,
    /// Connections in other states.
    pub inactive_conns: u32,
    /// Persistence templates pointing at it.
    pub persistent_conns: u32,
    /// Rates now.
    pub rates: Rates,
}

/// How the status page names a service in write actions:
/// [`ServiceKey`]'s display with the address and port joined
/// (`TCP 198.51.100.10:80`, `FWM 5`).
pub fn service_id(k: &ServiceKey) -> String {
    if k.is_fwmark() {
        return format!("FWM {}", k.fwmark);
    }
    format!("{} {}:{}", k.proto.name(), k.addr, k.port)
}

fn addr_port(a: IpAddr, p: u16) -> String {
    std::net::SocketAddr::new(a, p).to_string()
}

/// The scheduler in words, after ipvsadm(8).
pub fn scheduler_text(s: &str) -> String {
    let t = match s {
        "rr" => "round robin",
        "wrr" => "weighted round robin",
        "lc" => "least-connection",
        "wlc" => "weighted least-connection",
        "lblc" => "locality-based least-connection",
        "lblcr" => "locality-based least-connection with replication",
        "dh" => "destination hashing",
        "sh" => "source hashing",
        "sed" => "shortest expected delay",
        "nq" => "never queue",
        "fo" => "weighted failover",
        "ovf" => "weighted overflow",
        "mh" => "maglev hashing",
        "twos" => "weighted random twos choice",
        other => other,
    };
    t.to_string()
}

/// The service's options in words.
pub fn flag_texts(s: &Service) -> Vec<String> {
    let mut out = Vec::new();
    if s.is_persistent() {
        let mut t = format!(
            "persistent: a client keeps its real server for {} s after its last connection",
            s.timeout
        );
        if s.netmask != xvs_core::model::full_mask(s.key.addr) {
            t.push_str(&format!(" (clients grouped by netmask {})", s.netmask));
        }
        out.push(t);
    }
    if let Some(pe) = &s.pe_name {
        out.push(format!("persistence engine {pe}"));
    }
    if s.flags & svc_flags::ONEPACKET != 0 {
        out.push("one-packet scheduling: each UDP datagram is scheduled on its own".into());
    }
    let hashing = matches!(s.scheduler.as_str(), "sh" | "mh");
    if hashing && s.flags & svc_flags::SCHED1 != 0 {
        out.push("fallback: an unavailable real server's clients go to another one".into());
    }
    if hashing && s.flags & svc_flags::SCHED2 != 0 {
        out.push("the client's port is hashed too".into());
    }
    out
}

/// The forwarding method in words.
pub fn forwarding_text(d: &xvs_core::model::Dest) -> String {
    match d.fwd {
        FwdMethod::Masq => "NAT (masquerading)".into(),
        FwdMethod::Route => "Direct routing".into(),
        FwdMethod::Tunnel => match d.tun_type {
            TunType::Ipip => "Tunnel (IP-in-IP)".into(),
            TunType::Gue => format!("Tunnel (GUE, UDP port {})", d.tun_port),
            TunType::Gre => "Tunnel (GRE)".into(),
        },
    }
}

fn health_word(r: &RsReport) -> &'static str {
    match (r.checked, r.up) {
        (false, _) => "no check",
        (true, true) => "up",
        (true, false) => "down",
    }
}

/// A real server of the table, with its health when the report has it.
fn table_rs(d: &DestEntry, h: Option<&RsReport>, sorry: Option<&str>) -> RsView {
    let address = addr_port(d.dest.addr, d.dest.port);
    RsView {
        forwarding: Some(forwarding_text(&d.dest)),
        weight: Some(d.dest.weight),
        health: h.map_or("no check", health_word),
        last_check: h.and_then(|h| h.last_result.clone()),
        last_check_ok: h.and_then(|h| h.last_ok),
        last_check_ms: h.and_then(|h| h.last_check_ms),
        in_table: true,
        config_owned: h.is_some_and(|h| h.config_owned),
        sorry_server: sorry == Some(address.as_str()),
        active_conns: d.active_conns,
        inactive_conns: d.inact_conns,
        persistent_conns: d.persist_conns,
        rates: d.rates,
        address,
    }
}

/// A configured real server that is not in the table (failed its checks,
/// or waiting for its first): no forwarding in force.
fn missing_rs(h: &RsReport) -> RsView {
    RsView {
        address: addr_port(h.addr, h.port),
        forwarding: None,
        weight: None,
        health: health_word(h),
        last_check: h.last_result.clone(),
        last_check_ok: h.last_ok,
        last_check_ms: h.last_check_ms,
        in_table: false,
        config_owned: h.config_owned,
        sorry_server: false,
        active_conns: 0,
        inactive_conns: 0,
        persistent_conns: 0,
        rates: Rates::default(),
    }
}

fn key_words(k: &ServiceKey) -> (String, String) {
    if k.is_fwmark() {
        return ("firewall mark".into(), format!("mark {}", k.fwmark));
    }
    (k.proto.name().into(), addr_port(k.addr, k.port))
}

/// A configured service that is not in the table.
fn missing_svc(h: &SvcReport) -> SvcView {
    let (protocol, address) = key_words(&h.key);
    SvcView {
        id: service_id(&h.key),
        protocol,
        address,
        scheduler: String::new(),
        scheduler_text: "not in the table".into(),
        flags: Vec::new(),
        in_table: false,
        config_owned: h.config_owned,
        quorum_up: h.quorum_up,
        sorry_server: h.sorry_server.clone(),
        sorry_active: h.sorry_active,
        active_conns: 0,
        inactive_conns: 0,
        stats: Stats::default(),
        rates: Rates::default(),
        history: Vec::new(),
        real_servers: h.real_servers.iter().map(missing_rs).collect(),
    }
}

/// The page's data from the table, the health report and the rates'
/// history.
pub fn view(
    table: &Table,
    health: &HealthReport,
    history: &History,
    write_actions: bool,
    now_ms: u64,
) -> StatusView {
    let mut services = Vec::new();
    for s in &table.services {
        let key = s.service.key;
        let h = health.services.iter().find(|h| h.key == key);
        let sorry = h.and_then(|h| h.sorry_server.as_deref());
        let find = |a: IpAddr, p: u16| {
            h.and_then(|h| h.real_servers.iter().find(|r| r.addr == a && r.port == p))
        };
        let mut rss: Vec<RsView> = s
            .dests
            .iter()
            .map(|d| table_rs(d, find(d.dest.addr, d.dest.port), sorry))
            .collect();
        // Configured servers out of the table (down, or not yet checked).
        if let Some(h) = h {
            rss.extend(
                h.real_servers
                    .iter()
                    .filter(|r| !r.in_table)
                    .map(missing_rs),
            );
        }
        rss.sort_by_key(|r| r.address.parse::<std::net::SocketAddrV4>().ok());
        let (protocol, address) = key_words(&key);
        services.push(SvcView {
            id: service_id(&key),
            protocol,
            address,
            scheduler: s.service.scheduler.clone(),
            scheduler_text: scheduler_text(&s.service.scheduler),
            flags: flag_texts(&s.service),
            in_table: true,
            config_owned: h.is_some_and(|h| h.config_owned),
            quorum_up: h.and_then(|h| h.quorum_up),
            sorry_server: h.and_then(|h| h.sorry_server.clone()),
            sorry_active: h.is_some_and(|h| h.sorry_active),
            active_conns: s.dests.iter().map(|d| u64::from(d.active_conns)).sum(),
            inactive_conns: s.dests.iter().map(|d| u64::from(d.inact_conns)).sum(),
            stats: s.stats,
            rates: s.rates,
            history: history.samples(&key),
            real_servers: rss,
        });
    }
    services.extend(
        health
            .services
            .iter()
            .filter(|h| !h.in_table)
            .map(missing_svc),
    );
    StatusView {
        version: env!("CARGO_PKG_VERSION"),
        generated_ms: now_ms,
        write_actions,
        config: health.config.clone(),
        services,
    }
}

/// The view as the JSON `GET /status.json` answers.
pub fn render(view: &StatusView) -> String {
    // Plain data (strings, numbers, options): serialisation cannot fail.
    serde_json::to_string(view)
        .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string())
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
