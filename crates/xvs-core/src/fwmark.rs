//! The mark classifier: xvs's stand-in for the `iptables -t mangle … -j
//! MARK` rules that give packets the firewall mark a fwmark service
//! (`-f`) matches. An iptables mark is set after XDP and tc ingress have
//! run, so xvs classifies packets itself: a rule maps (protocol, address
//! prefix, port set) to a mark (docs/research/fwmark.md §E.2).
//!
//! Semantics ("most specific wins"): the longest address prefix that has
//! a rule for the packet's protocol decides; within it a listed port beats
//! "any port". [`compile`] turns the rules into what the data plane looks
//! up in two steps, never a walk: one node per distinct prefix, which
//! inherits the port entries and any-port mark of the prefixes that
//! contain it unless it overrides them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use crate::model::Protocol;

pub mod import;

/// An inclusive port range (`80`, `8000-8080`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub struct PortRange {
    /// First port, 1..=65535.
    pub first: u16,
    /// Last port, `first..=65535`.
    pub last: u16,
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// One classifier rule: packets of `proto` to `addr/prefix_len` and one of
/// `ports` (any port when empty) get mark `mark`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub struct MarkRule {
    /// The mark given, 1..=4294967295.
    pub mark: u32,
    /// The packet's protocol.
    pub proto: Protocol,
    /// Network address (host bits clear).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix_len: u8,
    /// Destination ports; empty means any port.
    pub ports: Vec<PortRange>,
}

impl fmt::Display for MarkRule {
    /// `tcp 10.1.0.0/24:80,443` (`:*` for any port), as in the error
    /// messages of `--add-mark`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}:",
            self.proto.name().to_ascii_lowercase(),
            self.addr,
            self.prefix_len
        )?;
        if self.ports.is_empty() {
            return f.write_str("*");
        }
        for (i, r) in self.ports.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl MarkRule {
    /// Whether the address has host bits set beyond the prefix.
    pub fn has_host_bits(&self) -> bool {
        u32::from(self.addr) & !prefix_mask(self.prefix_len) != 0
    }

    fn node(&self) -> Node {
        Node {
            proto: self.proto,
            net: u32::from(self.addr),
            len: self.prefix_len,
        }
    }
}

/// Why a rule set cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Two rules give the same packets different marks.
    #[error("mark rule {rule} conflicts with mark {other} given for the same addresses and port")]
    Conflict {
        /// The later rule, as written.
        rule: String,
        /// The mark of the earlier rule.
        other: u32,
    },
    /// A rule's address has bits set beyond its prefix.
    #[error("invalid mark address `{0}' (host bits set)")]
    HostBits(String),
    /// The compiled classifier does not fit the maps.
    #[error("too many mark rules (the classifier holds {0} entries)")]
    TooMany(usize),
}

/// Most address nodes the data plane's `FWM_ADDR` trie holds.
pub const MAX_NODES: usize = 4096;
/// Most (node, port) entries the data plane's `FWM_PORT` hash holds.
pub const MAX_PORT_ENTRIES: usize = 65536;

/// One node of the compiled classifier: an address prefix of a protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Node {
    /// The packet's protocol.
    pub proto: Protocol,
    /// Network address, host order.
    pub net: u32,
    /// Prefix length.
    pub len: u8,
}

impl Node {
    fn contains(&self, o: &Node) -> bool {
        self.proto == o.proto && self.len <= o.len && (o.net & prefix_mask(self.len)) == self.net
    }
}

/// A compiled node: its address entry and its port entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// The prefix.
    pub node: Node,
    /// The mark for a port without an entry (0: none, the packet is not
    /// marked).
    pub any_port_mark: u32,
    /// Port → mark.
    pub ports: BTreeMap<u16, u32>,
}

/// The netmask of a prefix length, host order.
pub fn prefix_mask(len: u8) -> u32 {
    match len {
        0 => 0,
        l if l >= 32 => u32::MAX,
        l => u32::MAX << (32 - l),
    }
}

/// Checks `rules` (host bits, conflicts) and compiles them into one
/// entry per distinct prefix, sorted by node.
pub fn compile(rules: &[MarkRule]) -> Result<Vec<Compiled>, RuleError> {
    // Own marks per node: any-port mark and port → mark.
    let mut own: BTreeMap<Node, (u32, BTreeMap<u16, u32>)> = BTreeMap::new();
    for r in rules {
        if r.has_host_bits() {
            return Err(RuleError::HostBits(format!("{}/{}", r.addr, r.prefix_len)));
        }
        let e = own.entry(r.node()).or_default();
        let conflict = |other: u32| RuleError::Conflict {
            rule: r.to_string(),
            other,
        };
        if r.ports.is_empty() {
            if e.0 != 0 && e.0 != r.mark {
                return Err(conflict(e.0));
            }
            e.0 = r.mark;
        }
        for pr in &r.ports {
            for p in pr.first..=pr.last {
                match e.1.insert(p, r.mark) {
                    Some(m) if m != r.mark => return Err(conflict(m)),
                    _ => {}
                }
            }
        }
    }
    if own.len() > MAX_NODES {
        return Err(RuleError::TooMany(MAX_NODES));
    }
    let nodes: BTreeSet<Node> = own.keys().copied().collect();
    let mut out = Vec::with_capacity(nodes.len());
    let mut n_ports = 0usize;
    for n in &nodes {
        let mut chain: Vec<&Node> = nodes.iter().filter(|c| c.contains(n)).collect();
        chain.sort_by_key(|c| c.len);
        let mut any = 0;
        let mut ports = BTreeMap::new();
        for c in chain {
            let (a, ps) = &own[c];
            if *a != 0 {
                // A more specific prefix with an any-port rule hides
                // every port rule of the shorter ones.
                any = *a;
                ports.clear();
            }
            ports.extend(ps.iter().map(|(p, m)| (*p, *m)));
        }
        n_ports += ports.len();
        if n_ports > MAX_PORT_ENTRIES {
            return Err(RuleError::TooMany(MAX_PORT_ENTRIES));
        }
        out.push(Compiled {
            node: *n,
            any_port_mark: any,
            ports,
        });
    }
    Ok(out)
}

/// The mark `rules` give a packet of `proto` to `daddr:dport` (0: none):
/// the reference the compiled form and the data plane are tested against.
pub fn classify(rules: &[MarkRule], proto: Protocol, daddr: Ipv4Addr, dport: u16) -> u32 {
    let d = u32::from(daddr);
    let mut best: Option<((u8, bool), u32)> = None;
    for r in rules {
        if r.proto != proto || d & prefix_mask(r.prefix_len) != u32::from(r.addr) {
            continue;
        }
        let listed = !r.ports.is_empty();
        if listed && !r.ports.iter().any(|p| (p.first..=p.last).contains(&dport)) {
            continue;
        }
        // A longer prefix wins; within one, a listed port beats any port.
        let rank = (r.prefix_len, listed);
        if best.is_none_or(|(b, _)| rank > b) {
            best = Some((rank, r.mark));
        }
    }
    best.map_or(0, |(_, m)| m)
}

#[cfg(test)]
#[path = "fwmark_tests.rs"]
mod tests;
