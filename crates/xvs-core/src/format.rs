//! ipvsadm 1.31 output, byte for byte: `-L` in all its variants, `-Lc`,
//! `-L --timeout`, `-L --daemon` and `-S`.
//!
//! Each function returns the complete text ipvsadm would write to stdout
//! (every line ends in `\n`). Names are looked up through a
//! [`Resolver`] unless the options ask for numeric output; pass
//! [`crate::names::FileNames::system`] to get ipvsadm's behaviour without
//! DNS, or [`crate::names::NoNames`].

use crate::api::{DestEntry, ServiceEntry, Table};
use crate::ipvsadm::ListOptions;
use crate::model::{svc_flags, Dest, FwdMethod, Protocol, ServiceKey, Timeouts, TunCsum, TunType};
use crate::names::Resolver;
use std::fmt::Write;
use std::net::IpAddr;

mod conns;
mod sort;

pub use conns::{conns, daemons};
pub use sort::{sort_dests, sort_services};

/// The IPVS version ipvsadm reports in the header (`IP_VS_VERSION_CODE`).
pub const IPVS_VERSION: &str = "1.2.1";

/// Output flags, after ipvsadm's `FMT_*`.
#[derive(Debug, Clone, Copy, Default)]
struct Fmt {
    numeric: bool,
    rule: bool,
    stats: bool,
    rate: bool,
    thresholds: bool,
    pconn: bool,
    nosort: bool,
    exact: bool,
    tun_info: bool,
}

impl Fmt {
    fn from_list(o: &ListOptions) -> Self {
        Fmt {
            numeric: o.numeric,
            rule: false,
            stats: o.stats,
            rate: o.rate,
            thresholds: o.thresholds,
            pconn: o.persistent_conn,
            nosort: o.nosort,
            exact: o.exact,
            tun_info: o.tun_info,
        }
    }
}

/// `addrport_to_anyname`: `host:service`, or `a.b.c.d:port` with `-n`.
/// `proto` is `None` for ipvsadm's protocol 0 (a fwmark service, an `IP`
/// template): `port_to_service` finds no name, so the port stays a number
/// while the host name is still looked up.
fn addrport(
    addr: IpAddr,
    port: u16,
    proto: Option<Protocol>,
    numeric: bool,
    names: &dyn Resolver,
) -> String {
    let bracket = |h: String| if addr.is_ipv6() { format!("[{h}]") } else { h };
    if numeric {
        format!("{}:{port}", bracket(addr.to_string()))
    } else {
        let host = bracket(names.host_name(addr).unwrap_or_else(|| addr.to_string()));
        let serv = proto
            .and_then(|p| names.service_name(port, p))
            .unwrap_or_else(|| port.to_string());
        format!("{host}:{serv}")
    }
}

/// The protocol ipvsadm sees for a service: none for a fwmark service,
/// whose netlink entry carries no protocol (libipvs leaves it 0).
fn listed_proto(key: &ServiceKey) -> Option<Protocol> {
    (!key.is_fwmark()).then_some(key.proto)
}

/// `print_service_entry`'s service name: `-f 1` / `FWM  1` (the mark as
/// C's `%d`, so marks of 2^31 and more print negative, as ipvsadm 1.31;
/// `-f 1 -6` / `FWM  1 IPv6` for an IPv6 one), else `-t host:port` /
/// `TCP  host:port`, an IPv6 address in brackets. An IPv4 name is cut at
/// 33 bytes, an IPv6 one never.
fn service_name(key: &ServiceKey, f: &Fmt, names: &dyn Resolver) -> String {
    if key.is_fwmark() {
        let mark = key.fwmark as i32;
        let v6 = key.is_ipv6();
        return match (f.rule, v6) {
            (true, false) => format!("-f {mark}"),
            (true, true) => format!("-f {mark} -6"),
            (false, false) => format!("FWM  {mark}"),
            (false, true) => format!("FWM  {mark} IPv6"),
        };
    }
    let vname = addrport(key.addr, key.port, Some(key.proto), f.numeric, names);
    if f.rule {
        let opt = match key.proto {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
            Protocol::Sctp => "--sctp-service",
        };
        format!("{opt} {vname}")
    } else if key.is_ipv6() {
        format!("{:<4} {}", key.proto.name(), vname)
    } else {
        cut(format!("{:<4} {}", key.proto.name(), vname), 33)
    }
}

/// Cuts a C string buffer at `n` bytes (ipvsadm writes a NUL there).
fn cut(mut s: String, n: usize) -> String {
    if s.len() > n {
        let mut end = n;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// `print_largenum`: 9 columns, scaled to K/M/G/T unless `--exact`.
pub fn largenum(i: u64, exact: bool) -> String {
    if exact {
        let len = i.to_string().len();
        let w = if len <= 8 { 9 } else { len + 1 };
        return format!("{i:>w$}");
    }
    if i < 100_000_000 {
        format!("{i:>9}")
    } else if i < 1_000_000_000 {
        format!("{:>8}K", i / 1000)
    } else if i < 100_000_000_000 {
        format!("{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        format!("{:>8}G", i / 1_000_000_000)
    } else {
        format!("{:>8}T", i / 1_000_000_000_000)
    }
}

/// `print_sched_flags`: the names of the scheduler flags, comma-separated.
fn sched_flags(sched: &str, flags: u32) -> String {
    sched_flag_names(sched, flags).join(",")
}

/// The names ipvsadm gives the scheduler flags set in `flags` for
/// scheduler `sched` (`sh-fallback`, `sh-port`, `flag-1`, ...), in bit
/// order.
pub fn sched_flag_names(sched: &str, flags: u32) -> Vec<String> {
    let mut v = Vec::new();
    let (n1, n2, n3) = match sched {
        "sh" => (Some("sh-fallback"), Some("sh-port"), None),
        "mh" => (Some("mh-fallback"), Some("mh-port"), None),
        _ => (Some("flag-1"), Some("flag-2"), Some("flag-3")),
    };
    for (bit, name) in [
        (svc_flags::SCHED1, n1),
        (svc_flags::SCHED2, n2),
        (svc_flags::SCHED3, n3),
    ] {
        if let (true, Some(n)) = (flags & bit != 0, name) {
            v.push(n.to_string());
        }
    }
    v
}

const ANY_SCHED_FLAG: u32 = svc_flags::SCHED1 | svc_flags::SCHED2 | svc_flags::SCHED3;

fn title(f: &Fmt) -> String {
    let prot = "Prot LocalAddress:Port";
    let remote = "  -> RemoteAddress:Port\n";
    if f.stats {
        format!(
            "{prot:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{remote}",
            "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        )
    } else if f.rate {
        format!(
            "{prot:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{remote}",
            "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        )
    } else if f.thresholds {
        format!(
            "{prot:<33} {:<10} {:<10} {:<10} {:<10}\n{remote}",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )
    } else if f.pconn {
        format!(
            "{prot:<33} {:<9} {:<11} {:<10} {:<10}\n{remote}",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        )
    } else if f.tun_info {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n".to_string()
    } else if !f.rule {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n".to_string()
    } else {
        String::new()
    }
}

fn fwd_switch(f: FwdMethod) -> &'static str {
    match f {
        FwdMethod::Masq => "-m",
        FwdMethod::Tunnel => "-i",
        FwdMethod::Route => "-g",
    }
}

fn tun_name(t: TunType) -> &'static str {
    match t {
        TunType::Ipip => "ipip",
        TunType::Gue => "gue",
        TunType::Gre => "gre",
    }
}

fn tun_flag(c: TunCsum) -> &'static str {
    match c {
        TunCsum::NoCsum => "-c",
        TunCsum::Csum => "+c",
        TunCsum::RemCsum => "r+c",
    }
}

fn tun_flag_opt(c: TunCsum) -> &'static str {
    match c {
        TunCsum::NoCsum => "--tun-nocsum",
        TunCsum::Csum => "--tun-csum",
        TunCsum::RemCsum => "--tun-remcsum",
    }
}

/// `fwd_tun_info`: tunnel details of a `-i` destination (`ipip`,
/// `gue:PORT:-c`, `gre:+c`), `None` otherwise.
pub fn tun_info(d: &DestEntry) -> Option<String> {
    if d.dest.fwd != FwdMethod::Tunnel {
        return None;
    }
    let t = &d.dest;
    Some(match t.tun_type {
        TunType::Ipip => "ipip".to_string(),
        TunType::Gue => format!("gue:{}:{}", t.tun_port, tun_flag(t.tun_csum)),
        TunType::Gre => format!("gre:{}", tun_flag(t.tun_csum)),
    })
}

/// `print_service_entry`.
fn service_entry(out: &mut String, se: &ServiceEntry, f: &Fmt, names: &dyn Resolver) {
    let svc = &se.service;
    let key = &svc.key;
    let svc_name = service_name(key, f, names);

    service_line(out, se, f, &svc_name);
    out.push('\n');

    let mut dests = se.dests.clone();
    if !f.nosort {
        sort_dests(&mut dests);
    }
    for e in &dests {
        let d = &e.dest;
        let dname = addrport(d.addr, d.port, listed_proto(key), f.numeric, names);
        if f.rule {
            dest_rule(out, &svc_name, &dname, d);
            continue;
        }
        // The cut keys on the dest's own family: an IPv4 dest of an IPv6
        // service is cut, an IPv6 one never.
        let dname = if d.addr.is_ipv6() {
            dname
        } else {
            cut(dname, 28)
        };
        dest_line(out, e, f, &dname);
    }
}

/// The service's own line of `print_service_entry`, without its newline.
fn service_line(out: &mut String, se: &ServiceEntry, f: &Fmt, svc_name: &str) {
    let svc = &se.service;
    if f.rule {
        let _ = write!(out, "-A {} -s {}", svc_name, svc.scheduler);
        if svc.is_persistent() {
            let _ = write!(out, " -p {}", svc.timeout);
            if svc.netmask != crate::model::full_mask(svc.key.addr) {
                let _ = write!(out, " -M {}", mask_text(svc));
            }
        }
        if let Some(pe) = svc.pe_name.as_deref().filter(|p| !p.is_empty()) {
            let _ = write!(out, " --pe {pe}");
        }
        if svc.flags & svc_flags::ONEPACKET != 0 {
            out.push_str(" -o");
        }
        if svc.flags & ANY_SCHED_FLAG != 0 {
            let _ = write!(out, " -b {}", sched_flags(&svc.scheduler, svc.flags));
        }
    } else if f.stats {
        let _ = write!(out, "{svc_name:<33}");
        for v in [
            se.stats.conns,
            se.stats.inpkts,
            se.stats.outpkts,
            se.stats.inbytes,
            se.stats.outbytes,
        ] {
            out.push_str(&largenum(v, f.exact));
        }
    } else if f.rate {
        let _ = write!(out, "{svc_name:<33}");
        for v in [
            se.rates.cps,
            se.rates.inpps,
            se.rates.outpps,
            se.rates.inbps,
            se.rates.outbps,
        ] {
            out.push_str(&largenum(v, f.exact));
        }
    } else {
        let _ = write!(out, "{} {}", svc_name, svc.scheduler);
        if svc.flags & ANY_SCHED_FLAG != 0 {
            let _ = write!(out, " ({})", sched_flags(&svc.scheduler, svc.flags));
        }
        if svc.is_persistent() {
            let _ = write!(out, " persistent {}", svc.timeout);
            if svc.netmask != crate::model::full_mask(svc.key.addr) {
                let _ = write!(out, " mask {}", mask_text(svc));
            }
            if let Some(pe) = svc.pe_name.as_deref().filter(|p| !p.is_empty()) {
                let _ = write!(out, " pe {pe}");
            }
        }
        if svc.flags & svc_flags::ONEPACKET != 0 {
            out.push_str(" ops");
        }
    }
}

/// The persistence netmask as ipvsadm prints it: `inet_ntoa` of an IPv4
/// mask, the prefix length (`%i`) of an IPv6 one.
fn mask_text(svc: &crate::model::Service) -> String {
    match svc.netmask {
        IpAddr::V4(m) => m.to_string(),
        IpAddr::V6(_) => svc.netmask_prefix().to_string(),
    }
}

/// A destination as an `-a` rule (`-S`).
fn dest_rule(out: &mut String, svc_name: &str, dname: &str, d: &Dest) {
    if d.fwd == FwdMethod::Tunnel {
        let _ = match d.tun_type {
            TunType::Gre => writeln!(
                out,
                "-a {} -r {} {} -w {} --tun-type {} {}",
                svc_name,
                dname,
                fwd_switch(d.fwd),
                d.weight,
                tun_name(d.tun_type),
                tun_flag_opt(d.tun_csum)
            ),
            TunType::Gue => writeln!(
                out,
                "-a {} -r {} {} -w {} --tun-type {} --tun-port {} {}",
                svc_name,
                dname,
                fwd_switch(d.fwd),
                d.weight,
                tun_name(d.tun_type),
                d.tun_port,
                tun_flag_opt(d.tun_csum)
            ),
            TunType::Ipip => writeln!(
                out,
                "-a {} -r {} {} -w {} --tun-type {}",
                svc_name,
                dname,
                fwd_switch(d.fwd),
                d.weight,
                tun_name(d.tun_type)
            ),
        };
    } else {
        let _ = writeln!(
            out,
            "-a {} -r {} {} -w {}",
            svc_name,
            dname,
            fwd_switch(d.fwd),
            d.weight
        );
    }
}

/// A destination's line of the `-L` listing in the chosen format.
fn dest_line(out: &mut String, e: &DestEntry, f: &Fmt, dname: &str) {
    let d = &e.dest;
    if f.stats {
        let _ = write!(out, "  -> {dname:<28}");
        for v in [
            e.stats.conns,
            e.stats.inpkts,
            e.stats.outpkts,
            e.stats.inbytes,
            e.stats.outbytes,
        ] {
            out.push_str(&largenum(v, f.exact));
        }
        out.push('\n');
    } else if f.rate {
        let _ = write!(
            out,
            "  -> {:<28} {:>8} {:>8} {:>8}",
            dname, e.rates.cps, e.rates.inpps, e.rates.outpps
        );
        out.push_str(&largenum(e.rates.inbps, f.exact));
        out.push_str(&largenum(e.rates.outbps, f.exact));
        out.push('\n');
    } else if f.thresholds {
        let _ = writeln!(
            out,
            "  -> {:<28} {:<10} {:<10} {:<10} {:<10}",
            dname, d.u_threshold, d.l_threshold, e.active_conns, e.inact_conns
        );
    } else if f.pconn {
        let _ = writeln!(
            out,
            "  -> {:<28} {:<9} {:<11} {:<10} {:<10}",
            dname, d.weight, e.persist_conns, e.active_conns, e.inact_conns
        );
    } else if f.tun_info {
        let ti = tun_info(e).unwrap_or_else(|| "n/a".to_string());
        let _ = writeln!(
            out,
            "  -> {:<28} {:<7} {:<13} {:<6} {:<10} {:<10}",
            dname,
            d.fwd.name(),
            ti,
            d.weight,
            e.active_conns,
            e.inact_conns
        );
    } else {
        let _ = writeln!(
            out,
            "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
            dname,
            d.fwd.name(),
            d.weight,
            e.active_conns,
            e.inact_conns
        );
    }
}

/// The `-L` header line: `IP Virtual Server version 1.2.1 (size=N)`.
pub fn header(conn_tab_size: u32) -> String {
    format!("IP Virtual Server version {IPVS_VERSION} (size={conn_tab_size})\n")
}

fn all(table: &Table, f: &Fmt, names: &dyn Resolver) -> String {
    let mut out = String::new();
    if !f.rule {
        out.push_str(&header(table.conn_tab_size));
    }
    let mut services = table.services.clone();
    if !f.nosort {
        sort_services(&mut services);
    }
    out.push_str(&title(f));
    for se in &services {
        service_entry(&mut out, se, f, names);
    }
    out
}

/// `ipvsadm -L` with modifiers (`list_all`): header, title, every service.
pub fn list_all(table: &Table, opts: &ListOptions, names: &dyn Resolver) -> String {
    all(table, &Fmt::from_list(opts), names)
}

/// `ipvsadm -L -t|-u service` (`list_service`): title and one service,
/// no header.
pub fn list_service(entry: &ServiceEntry, opts: &ListOptions, names: &dyn Resolver) -> String {
    let f = Fmt::from_list(opts);
    let mut out = title(&f);
    service_entry(&mut out, entry, &f, names);
    out
}

/// The service with `key`, as `ipvs_get_service` finds it.
pub fn find_service<'a>(table: &'a Table, key: &ServiceKey) -> Option<&'a ServiceEntry> {
    table.services.iter().find(|s| s.service.key == *key)
}

/// `ipvsadm -S [-n]`: one `-A` line per service and one `-a` line per
/// real server, sorted.
pub fn save(table: &Table, numeric: bool, names: &dyn Resolver) -> String {
    let f = Fmt {
        numeric,
        rule: true,
        ..Fmt::default()
    };
    all(table, &f, names)
}

/// `ipvsadm -L --timeout`.
pub fn timeouts(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp, t.tcp_fin, t.udp
    )
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "format_fwmark_tests.rs"]
mod fwmark_tests;

#[cfg(test)]
#[path = "format_ipv6_tests.rs"]
mod ipv6_tests;
