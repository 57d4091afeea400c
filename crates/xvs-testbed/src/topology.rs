//! The NAT and DR/TUN topologies (see the crate docs).

use crate::{
    dr_rs_ip, rs_ip, run, Node, Result, Testbed, Topology, CLIENT_IP, DIRECTOR_EXT_IP,
    DIRECTOR_INT_IP, DR_CLIENT_IP, DR_DIRECTOR_IP, DR_ROUTER_CLIENT_IP, DR_ROUTER_IP, DR_RS_COUNT,
    NAT_RS_COUNT, VIP,
};

impl Testbed {
    /// Build the LVS-NAT topology (see the crate docs). On error everything
    /// created so far is removed again.
    pub fn nat() -> Result<Testbed> {
        let mut tb = Testbed::empty()?;
        tb.rs_count = NAT_RS_COUNT;
        let mut nodes = vec![Node::Client, Node::Director, Node::Switch];
        nodes.extend((1..=NAT_RS_COUNT).map(Node::Rs));
        for node in &nodes {
            tb.add_ns(*node)?;
        }
        let cli = tb.ns(Node::Client);
        let dir = tb.ns(Node::Director);
        let sw = tb.ns(Node::Switch);

        // Links: both ends created directly in their namespaces.
        run(&[
            "ip", "link", "add", "eth0", "netns", &cli, "type", "veth", "peer", "name", "eth0",
            "netns", &dir,
        ])?;
        run(&[
            "ip", "link", "add", "eth1", "netns", &dir, "type", "veth", "peer", "name", "dir",
            "netns", &sw,
        ])?;
        for n in 1..=NAT_RS_COUNT {
            let rs = tb.ns(Node::Rs(n));
            let port = format!("rs{n}");
            run(&[
                "ip", "link", "add", "eth0", "netns", &rs, "type", "veth", "peer", "name", &port,
                "netns", &sw,
            ])?;
        }

        let mut ports = vec!["dir".to_string()];
        ports.extend((1..=NAT_RS_COUNT).map(|n| format!("rs{n}")));
        tb.switch(&ports)?;

        // Client.
        tb.addr(Node::Client, "eth0", &format!("{CLIENT_IP}/24"))?;
        tb.default_route(Node::Client, DIRECTOR_EXT_IP)?;

        // Director.
        tb.addr(Node::Director, "eth0", &format!("{DIRECTOR_EXT_IP}/24"))?;
        run(&[
            "ip",
            "-n",
            &dir,
            "addr",
            "add",
            &format!("{VIP}/32"),
            "dev",
            "eth0",
        ])?;
        tb.addr(Node::Director, "eth1", &format!("{DIRECTOR_INT_IP}/24"))?;
        tb.forward(Node::Director, &["eth0", "eth1"])?;

        // Real servers.
        for n in 1..=NAT_RS_COUNT {
            tb.addr(Node::Rs(n), "eth0", &format!("{}/24", rs_ip(n)))?;
            tb.default_route(Node::Rs(n), DIRECTOR_INT_IP)?;
        }

        // Veth realities (see docs/design.md): XDP_TX/XDP_REDIRECT into a
        // veth only delivers when the receiving peer has NAPI, i.e. GRO on;
        // senders must not leave checksums partial.
        tb.exec_ok(
            Node::Client,
            &["ethtool", "-K", "eth0", "gro", "on", "tx", "off"],
        )?;
        tb.exec_ok(Node::Switch, &["ethtool", "-K", "dir", "gro", "on"])?;
        for n in 1..=NAT_RS_COUNT {
            tb.exec_ok(Node::Rs(n), &["ethtool", "-K", "eth0", "tx", "off"])?;
        }
        Ok(tb)
    }

    /// Build the direct-routing / tunnelling topology (see the crate docs).
    /// On error everything created so far is removed again.
    pub fn dr() -> Result<Testbed> {
        let mut tb = Testbed::empty()?;
        tb.topology = Topology::Dr;
        tb.rs_count = DR_RS_COUNT;
        let mut nodes = vec![Node::Client, Node::Router, Node::Switch, Node::Director];
        nodes.extend((1..=DR_RS_COUNT).map(Node::Rs));
        for node in &nodes {
            tb.add_ns(*node)?;
        }
        let cli = tb.ns(Node::Client);
        let rtr = tb.ns(Node::Router);
        let sw = tb.ns(Node::Switch);

        // Links: both ends created directly in their namespaces. The switch
        // port of a node is named after the node.
        run(&[
            "ip", "link", "add", "eth0", "netns", &cli, "type", "veth", "peer", "name", "eth0",
            "netns", &rtr,
        ])?;
        run(&[
            "ip", "link", "add", "eth1", "netns", &rtr, "type", "veth", "peer", "name", "rtr",
            "netns", &sw,
        ])?;
        let mut lan = vec![Node::Director];
        lan.extend((1..=DR_RS_COUNT).map(Node::Rs));
        for node in &lan {
            let ns = tb.ns(*node);
            let port = node.suffix();
            run(&[
                "ip", "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
                "netns", &sw,
            ])?;
        }

        let mut ports = vec!["rtr".to_string()];
        ports.extend(lan.iter().map(|n| n.suffix()));
        tb.switch(&ports)?;

        // Client.
        tb.addr(Node::Client, "eth0", &format!("{DR_CLIENT_IP}/24"))?;
        tb.default_route(Node::Client, DR_ROUTER_CLIENT_IP)?;

        // Router.
        tb.addr(Node::Router, "eth0", &format!("{DR_ROUTER_CLIENT_IP}/24"))?;
        tb.addr(Node::Router, "eth1", &format!("{DR_ROUTER_IP}/24"))?;
        tb.forward(Node::Router, &["eth0", "eth1"])?;

        // Director: its own address and the VIP on the LAN interface.
        let dir = tb.ns(Node::Director);
        tb.addr(Node::Director, "eth0", &format!("{DR_DIRECTOR_IP}/24"))?;
        run(&[
            "ip",
            "-n",
            &dir,
            "addr",
            "add",
            &format!("{VIP}/32"),
            "dev",
            "eth0",
        ])?;
        tb.default_route(Node::Director, DR_ROUTER_IP)?;
        tb.forward(Node::Director, &["eth0"])?;

        // Real servers (no VIP: `xvs-realserver setup` adds it).
        for n in 1..=DR_RS_COUNT {
            tb.addr(Node::Rs(n), "eth0", &format!("{}/24", dr_rs_ip(n)))?;
            tb.default_route(Node::Rs(n), DR_ROUTER_IP)?;
        }

        // Veth realities (see docs/design.md): XDP_TX out of the director
        // only delivers when the receiving peer (its switch port) has NAPI,
        // i.e. GRO on; senders must not leave checksums partial.
        tb.exec_ok(
            Node::Client,
            &["ethtool", "-K", "eth0", "gro", "on", "tx", "off"],
        )?;
        for dev in ["eth0", "eth1"] {
            tb.exec_ok(Node::Router, &["ethtool", "-K", dev, "tx", "off"])?;
        }
        tb.exec_ok(Node::Switch, &["ethtool", "-K", "dir", "gro", "on"])?;
        // XDP_TX (DR and TUN send back out of the interface they received
        // on) is stricter than XDP_REDIRECT: the veth only kicks the peer's
        // NAPI for XDP_TX frames when the peer has an XDP program of its own
        // (GRO alone is not enough; the frames sit in its ring and are lost
        // without any counter). So the director's switch port gets a
        // trivial XDP_PASS program.
        tb.xdp_pass(Node::Switch, "dir")?;
        for n in 1..=DR_RS_COUNT {
            tb.exec_ok(Node::Rs(n), &["ethtool", "-K", "eth0", "tx", "off"])?;
        }
        Ok(tb)
    }
}
