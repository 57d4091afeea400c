//! The topology of the kernel's own IPVS selftest
//! (`tools/testing/selftests/net/netfilter/ipvs.sh`, earlier
//! `.../netfilter/ipvs.sh`), link for link and name for name, with its
//! private addresses moved into documentation ranges:
//!
//! ```text
//! client (ns0)               director (ns1)                 rs1 (ns2)
//!  br0 192.0.2.2/24
//!   ├─ veth01 ─────────────── veth10 192.0.2.1/24
//!   └─ veth02 ──────────────────────────────────────────── veth20 192.0.2.3/24
//!                             veth12 203.0.113.1/24 ─────── veth21 203.0.113.2/24
//! ```
//!
//! The VIP ([`ST_VIP`]) is routed by the client via the director; nothing
//! else is routed: replies of DR and TUN go back over veth20 and the
//! client's bridge, NAT's through the director (the NAT case removes
//! veth20). The per-case sysctls, VIPs on `lo` and tunnels are the test's
//! (as in the script, each case on a fresh testbed).

use crate::{run, Node, Result, Testbed, Topology};

/// The VIP (the script's 207.175.44.110).
pub const ST_VIP: &str = "198.51.100.110";
/// The client's address on its bridge (10.0.0.2).
pub const ST_CLIENT_IP: &str = "192.0.2.2";
/// The director's address towards the client (10.0.0.1).
pub const ST_DIR_EXT_IP: &str = "192.0.2.1";
/// The director's address towards the real server (172.16.0.1).
pub const ST_DIR_INT_IP: &str = "203.0.113.1";
/// The real server's address (172.16.0.2).
pub const ST_RS_IP: &str = "203.0.113.2";
/// The real server's leg on the client's segment (10.0.0.3).
pub const ST_RS_EXT_IP: &str = "192.0.2.3";

impl Testbed {
    /// Builds the selftest's topology (see the module documentation):
    /// [`Node::Client`] is ns0, [`Node::Director`] ns1 and `Node::Rs(1)`
    /// ns2. No forwarding is switched on anywhere: each case does what it
    /// needs. On error everything created so far is removed again.
    pub fn selftest() -> Result<Testbed> {
        let mut tb = Testbed::empty()?;
        tb.topology = Topology::Selftest;
        tb.rs_count = 1;
        for node in [Node::Client, Node::Director, Node::Rs(1)] {
            tb.add_ns(node)?;
        }
        let (ns0, ns1, ns2) = (
            tb.ns(Node::Client),
            tb.ns(Node::Director),
            tb.ns(Node::Rs(1)),
        );
        for (a, na, b, nb) in [
            ("veth01", &ns0, "veth10", &ns1),
            ("veth02", &ns0, "veth20", &ns2),
            ("veth12", &ns1, "veth21", &ns2),
        ] {
            run(&[
                "ip", "link", "add", a, "netns", na, "type", "veth", "peer", "name", b, "netns", nb,
            ])?;
        }
        run(&["ip", "-n", &ns0, "link", "add", "br0", "type", "bridge"])?;
        for p in ["veth01", "veth02"] {
            run(&["ip", "-n", &ns0, "link", "set", p, "master", "br0", "up"])?;
        }
        tb.addr(Node::Client, "br0", &format!("{ST_CLIENT_IP}/24"))?;
        tb.addr(Node::Director, "veth10", &format!("{ST_DIR_EXT_IP}/24"))?;
        tb.addr(Node::Director, "veth12", &format!("{ST_DIR_INT_IP}/24"))?;
        tb.addr(Node::Rs(1), "veth21", &format!("{ST_RS_IP}/24"))?;
        tb.addr(Node::Rs(1), "veth20", &format!("{ST_RS_EXT_IP}/24"))?;
        run(&[
            "ip",
            "-n",
            &ns0,
            "route",
            "add",
            ST_VIP,
            "via",
            ST_DIR_EXT_IP,
            "dev",
            "br0",
        ])?;
        // Veth realities (docs/design.md): senders finish their checksums,
        // and the peers of the director's links have NAPI for XDP
        // redirects (GRO) and XDP_TX (a program of their own).
        for (node, dev) in [
            (Node::Client, "veth01"),
            (Node::Client, "veth02"),
            (Node::Rs(1), "veth21"),
            (Node::Rs(1), "veth20"),
            (Node::Director, "veth10"),
            (Node::Director, "veth12"),
        ] {
            tb.exec_ok(node, &["ethtool", "-K", dev, "tx", "off"])?;
        }
        tb.exec_ok(Node::Client, &["ethtool", "-K", "veth01", "gro", "on"])?;
        tb.exec_ok(Node::Rs(1), &["ethtool", "-K", "veth21", "gro", "on"])?;
        tb.xdp_pass(Node::Client, "veth01")?;
        tb.xdp_pass(Node::Rs(1), "veth21")?;
        Ok(tb)
    }
}
