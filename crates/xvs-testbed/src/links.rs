//! Namespace and link plumbing: namespaces, veth pairs, addresses,
//! routes, bridges, forwarding.

use crate::{run, Error, Node, Result, Testbed};

impl Testbed {
    /// An extra veth link between two nodes of this testbed, outside the
    /// topology (e.g. the benchmarks' client-to-real-server link of the
    /// "no load balancer" baseline): `a_dev` with `a_cidr` in `a`, `b_dev`
    /// with `b_cidr` in `b`, both up, tx checksum offload off on both ends
    /// (as everywhere in the testbed). Removed with the namespaces.
    pub fn add_link(
        &self,
        a: Node,
        a_dev: &str,
        a_cidr: &str,
        b: Node,
        b_dev: &str,
        b_cidr: &str,
    ) -> Result<()> {
        let (na, nb) = (self.ns(a), self.ns(b));
        for (ns, node) in [(&na, a), (&nb, b)] {
            if !self.namespaces.contains(ns) {
                return Err(Error::Other(format!("{node} is not part of this testbed")));
            }
        }
        run(&[
            "ip", "link", "add", a_dev, "netns", &na, "type", "veth", "peer", "name", b_dev,
            "netns", &nb,
        ])?;
        self.addr(a, a_dev, a_cidr)?;
        self.addr(b, b_dev, b_cidr)?;
        self.exec_ok(a, &["ethtool", "-K", a_dev, "tx", "off"])?;
        self.exec_ok(b, &["ethtool", "-K", b_dev, "tx", "off"])?;
        Ok(())
    }

    pub(crate) fn add_ns(&mut self, node: Node) -> Result<()> {
        let name = self.ns(node);
        run(&["ip", "netns", "add", &name])?;
        self.namespaces.push(name.clone());
        // Keep IPv6 chatter (DAD, router solicitations) out of XDP tests.
        self.exec_ok(
            node,
            &[
                "sysctl",
                "-q",
                "-w",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        )?;
        run(&["ip", "-n", &name, "link", "set", "lo", "up"])?;
        Ok(())
    }

    pub(crate) fn addr(&self, node: Node, dev: &str, cidr: &str) -> Result<()> {
        let ns = self.ns(node);
        run(&["ip", "-n", &ns, "addr", "add", cidr, "dev", dev])?;
        run(&["ip", "-n", &ns, "link", "set", dev, "up"])?;
        Ok(())
    }

    /// Sends everything `node` has no route for to `gw`.
    pub(crate) fn default_route(&self, node: Node, gw: &str) -> Result<()> {
        let ns = self.ns(node);
        run(&["ip", "-n", &ns, "route", "add", "default", "via", gw])?;
        Ok(())
    }

    /// The switch: bridge `br0` in the switch namespace with `ports`
    /// (already there); see [`Testbed::bridge`].
    pub(crate) fn switch(&self, ports: &[String]) -> Result<()> {
        self.bridge("br0", ports)
    }

    /// Bridge `name` in the switch namespace with `ports` (already there)
    /// enslaved, no STP, forwarding at once, tx checksum offload off on
    /// the ports, kept at layer 2.
    pub(crate) fn bridge(&self, name: &str, ports: &[String]) -> Result<()> {
        let sw = self.ns(Node::Switch);
        run(&[
            "ip",
            "-n",
            &sw,
            "link",
            "add",
            name,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ])?;
        for p in ports {
            run(&["ip", "-n", &sw, "link", "set", p, "master", name, "up"])?;
            self.exec_ok(Node::Switch, &["ethtool", "-K", p, "tx", "off"])?;
        }
        run(&["ip", "-n", &sw, "link", "set", name, "up"])?;
        self.l2_only(Node::Switch)
    }

    /// Keeps `node`'s bridges at layer 2. Where `br_netfilter` is loaded
    /// (Docker loads it), every namespace's bridges default to passing
    /// bridged IPv4 through the iptables hooks — a route lookup, xfrm
    /// and netfilter per frame, ≈ 20 % of a forwarded UDP packet's cost
    /// in `perf` — which no real switch does. Absent sysctls are fine.
    pub(crate) fn l2_only(&self, node: Node) -> Result<()> {
        self.exec_ok(
            node,
            &[
                "sysctl",
                "-q",
                "-e",
                "-w",
                "net.bridge.bridge-nf-call-iptables=0",
                "net.bridge.bridge-nf-call-ip6tables=0",
                "net.bridge.bridge-nf-call-arptables=0",
            ],
        )?;
        Ok(())
    }

    /// Makes `node` forward IPv4, with ICMP redirects off everywhere and on
    /// `devs`: a redirect would teach hosts a path around the director.
    pub(crate) fn forward(&self, node: Node, devs: &[&str]) -> Result<()> {
        let mut args: Vec<String> = ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]
            .map(String::from)
            .to_vec();
        for d in ["all", "default"].iter().chain(devs) {
            args.push(format!("net.ipv4.conf.{d}.send_redirects=0"));
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        self.exec_ok(node, &argv)?;
        Ok(())
    }
}
