//! The mark classifier commands, an xvs extension (docs/research/fwmark.md
//! §E.4): `--add-mark`, `--del-mark`, `--list-marks [-n]`, `--clear-marks`,
//! and `--import-marks [FILE|-]` (iptables-save's MARK rules as
//! `--add-mark` lines, §E.8).
//! They are long options only, so they cannot collide with a future
//! ipvsadm letter; a line that starts with one is parsed here, not by the
//! ipvsadm grammar.

use super::command::{Command, ParseError};
use super::values::{parse_fwmark, string_to_number};
use crate::fwmark::{prefix_mask, MarkRule, PortRange};
use crate::model::Protocol;
use crate::names::Resolver;
use std::net::Ipv4Addr;

/// The extension commands, as they are spelled on the command line.
pub(super) const MARK_COMMANDS: [&str; 5] = [
    "--add-mark",
    "--del-mark",
    "--list-marks",
    "--clear-marks",
    "--import-marks",
];

/// Whether `args` (program name first) is a mark command line.
pub(super) fn is_mark_command(args: &[String]) -> bool {
    args.get(1)
        .is_some_and(|a| MARK_COMMANDS.contains(&a.as_str()))
}

/// Parses a mark command line (`args[0]` the program name, `args[1]` the
/// command).
pub(super) fn parse(args: &[String], names: &dyn Resolver) -> Result<Command, ParseError> {
    let cmd = args.get(1).map(String::as_str).unwrap_or_default();
    if cmd == "--import-marks" {
        return match &args[2..] {
            [] => Ok(Command::ImportMarks { file: None }),
            [f] if f == "-" => Ok(Command::ImportMarks { file: None }),
            [f] if !f.starts_with('-') => Ok(Command::ImportMarks {
                file: Some(f.clone()),
            }),
            [a, ..] if a.starts_with('-') => {
                Err(ParseError::fail(format!("illegal option `{a}' for {cmd}")))
            }
            _ => Err(ParseError::fail(format!("{cmd} takes one file (or -)"))),
        };
    }
    let mut service: Option<(Protocol, String)> = None;
    let mut mark: Option<u32> = None;
    let mut numeric = false;
    let mut ipv6 = false;
    let mut it = args.iter().skip(2);
    while let Some(a) = it.next() {
        let (opt, inline) = match a.split_once('=') {
            Some((o, v)) if o.starts_with("--") => (o, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = || -> Result<String, ParseError> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| ParseError::fail(format!("option `{opt}' needs an argument")))
        };
        let with_service = matches!(cmd, "--add-mark" | "--del-mark");
        match opt {
            "-t" | "--tcp-service" | "-u" | "--udp-service" | "--sctp-service" if with_service => {
                if service.is_some() {
                    return Err(ParseError::fail(
                        "multiple 'service-address' options specified",
                    ));
                }
                let proto = match opt {
                    "-t" | "--tcp-service" => Protocol::Tcp,
                    "-u" | "--udp-service" => Protocol::Udp,
                    _ => Protocol::Sctp,
                };
                service = Some((proto, value()?));
            }
            "-f" | "--fwmark-service" if with_service => mark = Some(parse_fwmark(&value()?)?),
            "-6" | "--ipv6" if with_service => ipv6 = true,
            "-n" | "--numeric" if cmd == "--list-marks" => numeric = true,
            _ => return Err(ParseError::fail(format!("illegal option `{a}' for {cmd}"))),
        }
    }
    match cmd {
        "--list-marks" => return Ok(Command::ListMarks { numeric }),
        "--clear-marks" => return Ok(Command::ClearMarks),
        _ => {}
    }
    let Some(mark) = mark else {
        return Err(ParseError::fail(format!("{cmd} needs a mark (-f MARK)")));
    };
    let Some((proto, spec)) = service else {
        return Err(ParseError::fail(format!(
            "{cmd} needs -t, -u or --sctp-service"
        )));
    };
    if ipv6 {
        return Err(ParseError::Unsupported(
            "IPv6 is not supported by xvs".into(),
        ));
    }
    let rules = rules(mark, proto, &spec, names)?;
    Ok(if cmd == "--add-mark" {
        Command::AddMarks(rules)
    } else {
        Command::DelMarks(rules)
    })
}

/// `ADDR[/LEN|-LAST][:PORTS]` of one protocol → the rules for mark `mark`,
/// one per prefix of an address range.
fn rules(
    mark: u32,
    proto: Protocol,
    spec: &str,
    names: &dyn Resolver,
) -> Result<Vec<MarkRule>, ParseError> {
    if spec.starts_with('[') || spec.matches(':').count() > 1 {
        return Err(ParseError::Unsupported(
            "IPv6 is not supported by xvs".into(),
        ));
    }
    let (addr_part, ports_part) = match spec.split_once(':') {
        Some((a, p)) => (a, Some(p)),
        None => (spec, None),
    };
    let bad_addr = || ParseError::fail(format!("illegal mark address `{addr_part}' specified"));
    let host = |s: &str| s.parse::<Ipv4Addr>().ok().or_else(|| names.host_addr(s));
    let prefixes = if let Some((a, len)) = addr_part.split_once('/') {
        let addr = host(a).ok_or_else(bad_addr)?;
        let len = string_to_number(len, 0, 32).ok_or_else(bad_addr)? as u8;
        if u32::from(addr) & !prefix_mask(len) != 0 {
            return Err(ParseError::fail(format!(
                "invalid mark address `{addr_part}' (host bits set)"
            )));
        }
        vec![(addr, len)]
    } else if let Some(addr) = host(addr_part) {
        // Before the range: a host name may contain '-'.
        vec![(addr, 32)]
    } else if let Some((a, b)) = addr_part.split_once('-') {
        let (first, last) = (host(a).ok_or_else(bad_addr)?, host(b).ok_or_else(bad_addr)?);
        if first > last {
            return Err(bad_addr());
        }
        range_prefixes(first.into(), last.into())
    } else {
        return Err(bad_addr());
    };
    let ports = match ports_part {
        None => Vec::new(),
        Some(p) => parse_ports(p, proto, names)?,
    };
    Ok(prefixes
        .into_iter()
        .map(|(addr, prefix_len)| MarkRule {
            mark,
            proto,
            addr,
            prefix_len,
            ports: ports.clone(),
        })
        .collect())
}

/// The fewest prefixes that cover `first..=last` exactly.
fn range_prefixes(first: u32, last: u32) -> Vec<(Ipv4Addr, u8)> {
    let mut out = Vec::new();
    let mut cur = u64::from(first);
    let end = u64::from(last);
    while cur <= end {
        // The largest block aligned at `cur` that stays within the range.
        let mut size: u64 = if cur == 0 {
            1 << 32
        } else {
            cur & cur.wrapping_neg()
        };
        while cur + size - 1 > end {
            size >>= 1;
        }
        let len = 32 - size.trailing_zeros() as u8;
        out.push((Ipv4Addr::from(cur as u32), len));
        cur += size;
    }
    out
}

/// `PORT | A-B | PORT,PORT,...`; `0` alone (or nothing) is any port.
fn parse_ports(
    p: &str,
    proto: Protocol,
    names: &dyn Resolver,
) -> Result<Vec<PortRange>, ParseError> {
    if p.is_empty() || p == "0" {
        return Ok(Vec::new());
    }
    let port = |s: &str| {
        string_to_number(s, 1, 65535)
            .map(|n| n as u16)
            .or_else(|| names.service_port(s, proto).filter(|&n| n != 0))
    };
    let mut out = Vec::new();
    for item in p.split(',') {
        let bad = || ParseError::fail(format!("illegal port range `{item}' specified"));
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => (port(a).ok_or_else(bad)?, port(b).ok_or_else(bad)?),
            None => {
                let n = port(item).ok_or_else(bad)?;
                (n, n)
            }
        };
        if first > last {
            return Err(bad());
        }
        out.push(PortRange { first, last });
    }
    Ok(out)
}

/// `--list-marks`: one line per rule, sorted by mark, protocol, address,
/// prefix and ports, e.g. `FWM  1  TCP  207.175.44.110/31:*`. The mark is
/// printed as `-L` prints it (`%d`); addresses and ports are always
/// numeric (`-n` is accepted for symmetry with `-L`).
pub fn list_marks(rules: &[MarkRule]) -> String {
    let mut v: Vec<&MarkRule> = rules.iter().collect();
    v.sort();
    let mut out = String::new();
    for r in v {
        out.push_str(&format!(
            "FWM  {}  {:<4} {}/{}:{}\n",
            r.mark as i32,
            r.proto.name(),
            r.addr,
            r.prefix_len,
            ports_text(&r.ports)
        ));
    }
    out
}

fn ports_text(ports: &[PortRange]) -> String {
    if ports.is_empty() {
        return "*".into();
    }
    ports
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The `--add-mark` lines `-S` appends so that `xvsadm -S | xvsadm -R`
/// restores the rules; nothing when there are none.
pub fn save_marks(rules: &[MarkRule]) -> String {
    let mut out = String::new();
    for r in rules {
        let opt = match r.proto {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
            Protocol::Sctp => "--sctp-service",
        };
        let ports = if r.ports.is_empty() {
            String::new()
        } else {
            format!(":{}", ports_text(&r.ports))
        };
        out.push_str(&format!(
            "--add-mark {opt} {}/{}{ports} -f {}\n",
            r.addr, r.prefix_len, r.mark
        ));
    }
    out
}
