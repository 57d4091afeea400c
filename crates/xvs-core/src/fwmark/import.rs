//! Translating an `iptables-save` dump's MARK rules into classifier
//! rules (`xvsadm --import-marks`), so an IPVS set-up's
//! `iptables -t mangle … -j MARK` rules carry over to xvs
//! (docs/research/fwmark.md §E.8, docs/fwmark.md).
//!
//! Only what the classifier can express exactly is translated: the
//! destination address, protocol and destination ports of rules in
//! mangle's PREROUTING and INPUT chains that set a whole mark. Anything
//! else that sets a mark is refused with the rule named; other tables and
//! chains are skipped with a note. netfilter lets the last matching MARK
//! rule win, the classifier the most specific one: a dump where the two
//! would differ for some packet is refused too.

use std::net::Ipv4Addr;

use super::{prefix_mask, MarkRule, PortRange};
use crate::model::Protocol;

/// What a dump translates to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Imported {
    /// The rules, in the dump's order.
    pub rules: Vec<MarkRule>,
    /// Chains and tables skipped, one line each.
    pub notes: Vec<String>,
}

/// Why a dump cannot be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot translate rule {index} of mangle/{chain} ({text}): {why}")]
pub struct ImportError {
    /// 1-based position of the rule in its chain.
    pub index: usize,
    /// The chain.
    pub chain: String,
    /// The rule as written (after `-A CHAIN`).
    pub text: String,
    /// What the classifier cannot express.
    pub why: String,
}

/// Translates `iptables-save` output.
pub fn from_iptables_save(text: &str) -> Result<Imported, ImportError> {
    let mut out = Imported::default();
    let mut table = String::new();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    // PREROUTING runs before INPUT: its rules come first, INPUT's may
    // override them.
    let mut pre = Vec::new();
    let mut input = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_string();
            continue;
        }
        let Some(rest) = line.strip_prefix("-A ") else {
            continue;
        };
        let words = split_words(rest);
        let Some((chain, args)) = words.split_first() else {
            continue;
        };
        let n = counts.entry(format!("{table}/{chain}")).or_insert(0);
        *n += 1;
        let index = *n;
        if table != "mangle" || (chain != "PREROUTING" && chain != "INPUT") {
            let note = format!(
                "{table}/{chain}: not read (xvs classifies mangle PREROUTING and INPUT only)"
            );
            if !out.notes.contains(&note) {
                out.notes.push(note);
            }
            continue;
        }
        let err = |why: String| ImportError {
            index,
            chain: chain.clone(),
            text: args.join(" "),
            why,
        };
        let rules = translate(args).map_err(err)?;
        let rules = rules
            .into_iter()
            .map(|r| (index, chain.clone(), args.join(" "), r));
        if chain == "PREROUTING" {
            pre.extend(rules);
        } else {
            input.extend(rules);
        }
    }
    pre.extend(input);
    check_order(&pre)?;
    out.rules = pre.into_iter().map(|(_, _, _, r)| r).collect();
    Ok(out)
}

/// The classifier rules of one `-A` rule's arguments (one per protocol),
/// or what cannot be translated.
fn translate(args: &[String]) -> Result<Vec<MarkRule>, String> {
    let mut dst: Option<(Ipv4Addr, u8)> = None;
    let mut protos: Vec<Protocol> = vec![Protocol::Tcp, Protocol::Udp, Protocol::Sctp];
    let mut ports: Vec<PortRange> = Vec::new();
    let mut mark: Option<u32> = None;
    let mut target: Option<String> = None;
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} without a value"));
        match a.as_str() {
            "-d" | "--destination" => dst = Some(parse_net(&val()?)?),
            "-p" | "--protocol" => protos = parse_proto(&val()?)?,
            "-m" | "--match" => match val()?.as_str() {
                "tcp" | "udp" | "sctp" | "multiport" | "comment" => {}
                m => {
                    return Err(format!(
                        "`-m {m}' matches are not supported by the xvs classifier"
                    ))
                }
            },
            "--comment" => {
                val()?;
            }
            "--dport" | "--destination-port" | "--dports" | "--destination-ports" => {
                ports = parse_ports(&val()?)?
            }
            "-j" | "--jump" => target = Some(val()?),
            "--set-mark" => mark = Some(parse_mark(&val()?)?),
            "--set-xmark" => {
                let v = val()?;
                let (m, mask) = v.split_once('/').unwrap_or((&v, "0xffffffff"));
                if parse_u32(mask) != Some(u32::MAX) {
                    return Err(format!(
                        "--set-xmark {v}: a partial mask keeps bits of the incoming mark, which xvs does not see"
                    ));
                }
                mark = Some(parse_mark(m)?);
            }
            "!" => return Err("negations are not supported by the xvs classifier".into()),
            "-s" | "--source" | "--sport" | "--source-port" | "--sports" | "--source-ports" => {
                return Err("source matches are not supported by the xvs classifier".into())
            }
            "-i" | "--in-interface" | "-o" | "--out-interface" => {
                return Err("interface matches are not supported by the xvs classifier".into())
            }
            o => return Err(format!("`{o}' is not supported by the xvs classifier")),
        }
    }
    match target.as_deref() {
        Some("MARK") => {}
        Some(t) => return Err(format!("target {t} is not supported (only MARK)")),
        None => return Err("a rule without a target is not supported".into()),
    }
    let mark =
        mark.ok_or("MARK without --set-mark/--set-xmark (or/and/xor need the incoming mark)")?;
    let (addr, prefix_len) = dst.unwrap_or((Ipv4Addr::UNSPECIFIED, 0));
    if !ports.is_empty() && protos.len() != 1 {
        return Err("ports without -p".into());
    }
    Ok(protos
        .into_iter()
        .map(|proto| MarkRule {
            mark,
            proto,
            addr,
            prefix_len,
            ports: ports.clone(),
        })
        .collect())
}

type Placed = (usize, String, String, MarkRule);

/// Refuses a dump where netfilter's "last match wins" and the
/// classifier's "most specific wins" give some packet different marks:
/// a later rule that overlaps an earlier one with another mark must be
/// strictly more specific.
fn check_order(rules: &[Placed]) -> Result<(), ImportError> {
    for (j, (index, chain, text, later)) in rules.iter().enumerate() {
        for (_, _, _, earlier) in &rules[..j] {
            if earlier.mark == later.mark || !overlap(earlier, later) {
                continue;
            }
            if rank(later) <= rank(earlier) {
                return Err(ImportError {
                    index: *index,
                    chain: chain.clone(),
                    text: text.clone(),
                    why: format!(
                        "it overrides mark {} of the more specific or equal rule {earlier} for some packets, \
                         which the classifier's most-specific-rule order cannot express",
                        earlier.mark
                    ),
                });
            }
        }
    }
    Ok(())
}

fn rank(r: &MarkRule) -> (u8, bool) {
    (r.prefix_len, !r.ports.is_empty())
}

fn overlap(a: &MarkRule, b: &MarkRule) -> bool {
    if a.proto != b.proto {
        return false;
    }
    let len = a.prefix_len.min(b.prefix_len);
    let m = prefix_mask(len);
    if u32::from(a.addr) & m != u32::from(b.addr) & m {
        return false;
    }
    if a.ports.is_empty() || b.ports.is_empty() {
        return true;
    }
    a.ports.iter().any(|x| {
        b.ports
            .iter()
            .any(|y| x.first <= y.last && y.first <= x.last)
    })
}

/// Words of a saved rule, double quotes grouping (`--comment "a b"`).
fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut has = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                has = true;
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if has || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => cur.push(c),
        }
    }
    if has || !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn parse_net(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (a, l) = s.split_once('/').unwrap_or((s, "32"));
    let addr: Ipv4Addr = a
        .parse()
        .map_err(|_| format!("destination `{s}' is not an IPv4 address or network"))?;
    let len = match l.parse::<u8>() {
        Ok(n) if n <= 32 => n,
        _ => {
            // iptables-save writes masks as lengths, but a dotted mask
            // from hand-written input is accepted when contiguous.
            let m: Ipv4Addr = l
                .parse()
                .map_err(|_| format!("destination `{s}': bad prefix length"))?;
            let m = u32::from(m);
            if m.leading_ones() + m.trailing_zeros() != 32 {
                return Err(format!("destination `{s}': the mask is not contiguous"));
            }
            m.leading_ones() as u8
        }
    };
    let net = Ipv4Addr::from(u32::from(addr) & prefix_mask(len));
    Ok((net, len))
}

fn parse_proto(s: &str) -> Result<Vec<Protocol>, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "tcp" | "6" => vec![Protocol::Tcp],
        "udp" | "17" => vec![Protocol::Udp],
        "sctp" | "132" => vec![Protocol::Sctp],
        "all" | "0" => vec![Protocol::Tcp, Protocol::Udp, Protocol::Sctp],
        p => return Err(format!("protocol {p} cannot reach a virtual service")),
    })
}

fn parse_ports(s: &str) -> Result<Vec<PortRange>, String> {
    s.split(',')
        .map(|p| {
            let (a, b) = p.split_once(':').unwrap_or((p, p));
            let num = |x: &str| x.parse::<u16>().ok().filter(|v| *v != 0);
            match (num(a), num(b)) {
                (Some(first), Some(last)) if first <= last => Ok(PortRange { first, last }),
                _ => Err(format!(
                    "port `{p}' is not a port or range the classifier takes"
                )),
            }
        })
        .collect()
}

fn parse_u32(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn parse_mark(s: &str) -> Result<u32, String> {
    match parse_u32(s) {
        Some(0) => Err("it sets mark 0, which no fwmark service has".into()),
        Some(m) => Ok(m),
        None => Err(format!("mark `{s}' is not a number")),
    }
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;
