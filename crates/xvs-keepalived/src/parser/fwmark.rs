//! Firewall-mark virtual servers: `virtual_server fwmark N`, the group
//! entries `fwmark N [inet|inet6]`, and xvs's classifier rules written
//! `@xvsd match PROTO ADDR[/LEN|-LAST] [PORTS]` (docs/research/fwmark.md
//! §C and §E.5). keepalived relies on iptables to mark packets; xvs
//! classifies them itself, so the rules that give the mark live next to the
//! service, behind `@xvsd` so that a real keepalived skips them.

use super::values::digits;
use super::*;
use xvs_core::fwmark::{prefix_mask, MarkRule, PortRange};

/// A `match` line before its mark is known (the mark is the virtual
/// server's, or the one fwmark entry of its group).
#[derive(Debug, Clone)]
pub(super) struct RawMatch {
    pub(super) loc: Location,
    /// One rule per prefix of the address range, mark 0 for now.
    pub(super) rules: Vec<MarkRule>,
}

/// `virtual_server fwmark N`'s `N`: 1..=4294967295. keepalived accepts 0,
/// but what it then does is unconfirmed (fwmark.md §F), so xvs refuses it.
pub(super) fn parse_mark(s: &str) -> Result<u32, String> {
    match digits(s) {
        Some(m) if (1..=u64::from(u32::MAX)).contains(&m) => Ok(m as u32),
        _ => Err(format!("fwmark must be 1..{}", u32::MAX)),
    }
}

/// `80`, `80,443`, `8000-8080,9000`; `0` (or nothing) is any port.
fn parse_ports(s: &str) -> Result<Vec<PortRange>, String> {
    if s == "0" {
        return Ok(vec![]);
    }
    let mut out = vec![];
    for part in s.split(',') {
        let bad = || format!("illegal port range '{part}'");
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (Some(first), Some(last)) = (digits(a), digits(b)) else {
            return Err(bad());
        };
        if first == 0 || last > 65535 || last < first {
            return Err(bad());
        }
        out.push(PortRange {
            first: first as u16,
            last: last as u16,
        });
    }
    Ok(out)
}

/// The prefixes covering `first..=last` exactly (fewest, in order).
fn range_prefixes(first: u32, last: u32) -> Vec<(Ipv4Addr, u8)> {
    let mut out = vec![];
    let mut a = u64::from(first);
    let end = u64::from(last);
    while a <= end {
        // The largest aligned block starting at `a` that stays in range.
        let mut len = 32u8;
        while len > 0 {
            let size = 1u64 << (33 - len);
            if a % size != 0 || a + size - 1 > end {
                break;
            }
            len -= 1;
        }
        out.push((Ipv4Addr::from(a as u32), len));
        a += 1u64 << (32 - len);
    }
    out
}

/// `ADDR`, `ADDR/LEN` (host bits must be clear), `ADDR-LAST` (a full
/// address or the last octet, as `virtual_server_group` ranges).
fn parse_prefixes(s: &str) -> Result<Vec<(Ipv4Addr, u8)>, String> {
    if s.contains(':') {
        return Err("IPv6 is not supported by xvs (IPv4 only)".into());
    }
    let bad = || format!("invalid mark address '{s}'");
    if let Some((a, len)) = s.split_once('/') {
        let a: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let len = match digits(len) {
            Some(l) if l <= 32 => l as u8,
            _ => return Err(bad()),
        };
        if u32::from(a) & !prefix_mask(len) != 0 {
            return Err(format!("invalid mark address '{s}' (host bits set)"));
        }
        return Ok(vec![(a, len)]);
    }
    if let Some((a, end)) = s.split_once('-') {
        let a = u32::from(a.parse::<Ipv4Addr>().map_err(|_| bad())?);
        let end = if end.contains('.') {
            u32::from(end.parse::<Ipv4Addr>().map_err(|_| bad())?)
        } else {
            match digits(end) {
                Some(x) if x <= 255 => (a & 0xffff_ff00) | x as u32,
                _ => return Err(bad()),
            }
        };
        if end < a {
            return Err(format!(
                "invalid mark address '{s}' (range end below its start)"
            ));
        }
        return Ok(range_prefixes(a, end));
    }
    Ok(vec![(s.parse().map_err(|_| bad())?, 32)])
}

impl P {
    /// `match PROTO ADDR[/LEN|-LAST] [PORTS]` inside a virtual server block.
    pub(super) fn match_line(&mut self, vs: &mut RawVs, n: &Node) {
        if matches!(vs.target, Target::Addr(..)) {
            self.err(
                &n.loc,
                "match is only valid in a virtual_server fwmark block",
            );
            return;
        }
        if n.words.len() < 3 || n.words.len() > 4 {
            self.err(&n.loc, "match: expected PROTO ADDR[/LEN|-LAST] [PORTS]");
            return;
        }
        let proto = match n.words[1].to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            p => {
                self.err(
                    &n.loc,
                    format!("match: unknown protocol '{p}' (tcp|udp|sctp)"),
                );
                return;
            }
        };
        let prefixes = match parse_prefixes(&n.words[2]) {
            Ok(p) => p,
            Err(e) => return self.err(&n.loc, format!("match: {e}")),
        };
        let ports = match n.words.get(3).map(|p| parse_ports(p)).transpose() {
            Ok(p) => p.unwrap_or_default(),
            Err(e) => return self.err(&n.loc, format!("match: {e}")),
        };
        let rules = prefixes
            .into_iter()
            .map(|(addr, prefix_len)| MarkRule {
                mark: 0,
                proto,
                addr,
                prefix_len,
                ports: ports.clone(),
            })
            .collect();
        vs.matches.push(RawMatch {
            loc: n.loc.clone(),
            rules,
        });
    }

    /// A `virtual_server_group` entry `fwmark N [inet|inet6]`.
    pub(super) fn vsg_fwmark(
        &mut self,
        name: &str,
        e: &Node,
    ) -> Option<(Location, u32, Option<Af>)> {
        let Some(m) = e.words.get(1) else {
            self.err(
                &e.loc,
                format!("virtual_server_group {name}: fwmark: missing mark"),
            );
            return None;
        };
        let mark = match parse_mark(m) {
            Ok(m) => m,
            Err(msg) => {
                self.err(
                    &e.loc,
                    format!("virtual_server_group {name}: fwmark {m}: {msg}"),
                );
                return None;
            }
        };
        match e.words.get(2).map(String::as_str) {
            None => Some((e.loc.clone(), mark, None)),
            Some("inet") => Some((e.loc.clone(), mark, Some(Af::Inet))),
            Some("inet6") => Some((e.loc.clone(), mark, Some(Af::Inet6))),
            Some(f) => {
                // keepalived: "(%s): fwmark '%u' family %s unknown - ignoring"
                self.warn(
                    &e.loc,
                    format!("virtual_server_group {name}: fwmark '{mark}' family {f} unknown - ignoring"),
                );
                None
            }
        }
    }

    /// The mark rules of one fwmark virtual server: `vs`'s `match` lines
    /// with `mark` filled in.
    pub(super) fn match_rules(&self, vs: &RawVs, mark: u32) -> Vec<MatchRule> {
        vs.matches
            .iter()
            .flat_map(|m| {
                m.rules.iter().map(move |r| MatchRule {
                    location: m.loc.clone(),
                    rule: MarkRule { mark, ..r.clone() },
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_into_the_fewest_prefixes() {
        let p = |a: &str, b: &str| {
            range_prefixes(
                u32::from(a.parse::<Ipv4Addr>().unwrap()),
                u32::from(b.parse::<Ipv4Addr>().unwrap()),
            )
            .iter()
            .map(|(a, l)| format!("{a}/{l}"))
            .collect::<Vec<_>>()
        };
        assert_eq!(p("10.0.0.1", "10.0.0.1"), ["10.0.0.1/32"]);
        assert_eq!(p("10.0.0.0", "10.0.0.255"), ["10.0.0.0/24"]);
        assert_eq!(
            p("10.0.0.3", "10.0.0.10"),
            ["10.0.0.3/32", "10.0.0.4/30", "10.0.0.8/31", "10.0.0.10/32"]
        );
        assert_eq!(p("0.0.0.0", "255.255.255.255"), ["0.0.0.0/0"]);
    }

    #[test]
    fn ports_and_addresses() {
        assert_eq!(parse_ports("0").unwrap(), []);
        assert_eq!(
            parse_ports("80,8000-8080").unwrap(),
            [
                PortRange {
                    first: 80,
                    last: 80
                },
                PortRange {
                    first: 8000,
                    last: 8080
                }
            ]
        );
        assert_eq!(
            parse_ports("90-80").unwrap_err(),
            "illegal port range '90-80'"
        );
        assert_eq!(parse_ports("0-5").unwrap_err(), "illegal port range '0-5'");
        assert_eq!(
            parse_prefixes("10.0.0.1/24").unwrap_err(),
            "invalid mark address '10.0.0.1/24' (host bits set)"
        );
        assert_eq!(
            parse_prefixes("207.175.44.110-111").unwrap(),
            [(Ipv4Addr::new(207, 175, 44, 110), 31)]
        );
        assert_eq!(parse_mark("0").unwrap_err(), "fwmark must be 1..4294967295");
        assert_eq!(parse_mark("4294967295"), Ok(u32::MAX));
    }
}
