//! The nodes (network namespaces) of a testbed.

use std::fmt;

/// A node (network namespace) of a testbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Node {
    Client,
    Director,
    Switch,
    /// The router between the client and the server LAN ([`Testbed::dr`] only).
    Router,
    /// The second director ([`Testbed::dr_pair`] only).
    Director2,
    /// Real server, 1-based.
    Rs(u8),
}

impl Node {
    /// The suffix of the namespace name: `cli`, `dir`, `sw`, `rtr`, `dir2`, `rsN`.
    pub fn suffix(self) -> String {
        match self {
            Node::Client => "cli".into(),
            Node::Director => "dir".into(),
            Node::Switch => "sw".into(),
            Node::Router => "rtr".into(),
            Node::Director2 => "dir2".into(),
            Node::Rs(n) => format!("rs{n}"),
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.suffix())
    }
}
