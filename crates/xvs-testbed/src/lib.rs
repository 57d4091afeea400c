//! Network-namespace testbed for xvs: topologies, process tracking, cleanup.
//!
//! [`Testbed::nat`] builds the LVS-NAT topology used by the end-to-end tests,
//! the demo and the benchmarks:
//!
//! ```text
//!  client ns                director ns                       switch ns (br0)     rsN ns
//!  eth0 198.51.100.2/24 ─── eth0 198.51.100.1/24 + VIP .10/32
//!                           eth1 203.0.113.1/24 ───────────── dir ┐
//!                                                                 ├ rs1 ───────── eth0 203.0.113.11/24
//!                                                                 ├ rs2 ───────── eth0 203.0.113.12/24
//!                                                                 └ rs3 ───────── eth0 203.0.113.13/24
//! ```
//!
//! [`Testbed::dr`] builds the topology for direct routing and tunnelling
//! (LVS-DR and LVS-TUN): the director and the real servers share one LAN,
//! the real servers answer the client directly through the router:
//!
//! ```text
//!  client ns               router ns                 switch ns (br0)     director / rsN ns
//!  eth0 192.0.2.2/24 ───── eth0 192.0.2.1/24
//!                          eth1 198.51.100.1/24 ──── rtr ┐
//!                                                        ├ dir ───────── dir eth0 198.51.100.2/24 + VIP .10/32
//!                                                        ├ rs1 ───────── rs1 eth0 198.51.100.11/24
//!                                                        ├ rs2 ───────── rs2 eth0 198.51.100.12/24
//!                                                        └ rs3 ───────── rs3 eth0 198.51.100.13/24
//! ```
//!
//! The real servers do not get the VIP from the testbed: that is
//! `xvs-realserver setup`'s job ([`Testbed::realserver`]). The director
//! sends with `XDP_TX` here, which on veth needs an XDP program on the
//! receiving peer (GRO, enough for `XDP_REDIRECT`, is not): the switch port
//! `dir` gets a trivial `XDP_PASS` program ([`Testbed::xdp_pass`]).
//!
//! [`Testbed::dr_pair`] is the same LAN with two directors for VRRP
//! failover (module [`vrrp`]): `dir` (198.51.100.2) and `dir2`
//! (198.51.100.3, switch port `dir2`), neither with the VIP: keepalived
//! ([`Testbed::keepalived_vrrp`]) puts it on the master's eth0.
//!
//! Every name is unique per instance (`xvs<pid-hex>t<n>-<role>`), so tests can
//! run in parallel. Veth pairs are created with both ends directly inside
//! their namespaces; nothing is named in the root namespace. Dropping the
//! [`Testbed`] (also while unwinding from a panic) kills the processes it
//! started, deletes its namespaces, unmounts its bpffs and removes its
//! directory under `/run/xvs-test`.
//!
//! Needs root. `ip`, `ethtool` and `sysctl` must be installed.

mod cleanup;
mod error;
mod exec;
pub mod harness;
mod host;
mod links;
mod node;
pub mod oracle;
mod process;
pub mod selftest;
mod testbed;
pub mod testsrv;
mod topology;
pub mod vrrp;
mod xdp;

pub use cleanup::{
    cleanup_stale, install_interrupt_flag, interrupted, namespaces_with_prefix, owner_pid,
};
pub use error::{Error, Result};
pub use host::{bin, is_mounted, is_root, pid_alive};
pub use node::Node;
pub use process::Proc;
pub use testbed::Testbed;
pub use vrrp::{
    Keepalived, DR_DIRECTOR2_IP, NAT_DIRECTOR2_EXT_IP, NAT_DIRECTOR2_INT_IP, NAT_GATEWAY_IP,
};
pub use xdp::{XDP_DROP, XDP_PASS, XDP_TX};

use error::io_err;
use host::{check, lock, mount_bpffs, render, run, umount};
use process::ProcInner;

/// The virtual IP of the NAT topology (on the director's eth0).
pub const VIP: &str = "198.51.100.10";
/// The client's address.
pub const CLIENT_IP: &str = "198.51.100.2";
/// The director's address on the client side (the client's gateway).
pub const DIRECTOR_EXT_IP: &str = "198.51.100.1";
/// The director's address on the real-server side (the real servers' gateway).
pub const DIRECTOR_INT_IP: &str = "203.0.113.1";
/// Number of real servers in [`Testbed::nat`].
pub const NAT_RS_COUNT: u8 = 3;
/// Root of the per-testbed directories (bpffs, sockets, logs).
pub const RUN_ROOT: &str = "/run/xvs-test";

/// Address of real server `n` (1-based) in [`Testbed::nat`]: `203.0.113.1n`.
pub fn rs_ip(n: u8) -> String {
    format!("203.0.113.{}", 10 + u32::from(n))
}

/// The client's address in [`Testbed::dr`].
pub const DR_CLIENT_IP: &str = "192.0.2.2";
/// The router's address on the client side (the client's gateway) in [`Testbed::dr`].
pub const DR_ROUTER_CLIENT_IP: &str = "192.0.2.1";
/// The router's address on the server LAN (everybody's gateway there) in [`Testbed::dr`].
pub const DR_ROUTER_IP: &str = "198.51.100.1";
/// The director's own address in [`Testbed::dr`] (the VIP is on the same interface).
pub const DR_DIRECTOR_IP: &str = "198.51.100.2";
/// Number of real servers in [`Testbed::dr`].
pub const DR_RS_COUNT: u8 = 3;

/// Address of real server `n` (1-based) in [`Testbed::dr`]: `198.51.100.1n`.
pub fn dr_rs_ip(n: u8) -> String {
    format!("198.51.100.{}", 10 + u32::from(n))
}

/// The shape of a [`Testbed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// [`Testbed::nat`].
    Nat,
    /// [`Testbed::dr`] (direct routing and tunnelling).
    Dr,
    /// [`Testbed::selftest`]: the kernel's IPVS selftest topology.
    Selftest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_parses_our_names_only() {
        assert_eq!(owner_pid("xvs1a2bt0-cli"), Some(0x1a2b));
        assert_eq!(owner_pid("xvsfft12"), Some(0xff));
        assert_eq!(owner_pid("xvs1a2bt-cli"), None);
        assert_eq!(owner_pid("xvs-demo"), None);
        assert_eq!(owner_pid("xvsxyzt1-cli"), None);
        assert_eq!(owner_pid("foo"), None);
    }

    #[test]
    fn rs_addresses() {
        assert_eq!(rs_ip(1), "203.0.113.11");
        assert_eq!(rs_ip(3), "203.0.113.13");
        assert_eq!(Node::Rs(2).suffix(), "rs2");
        assert_eq!(Node::Director.to_string(), "dir");
    }

    #[test]
    fn dr_addresses() {
        assert_eq!(dr_rs_ip(1), "198.51.100.11");
        assert_eq!(dr_rs_ip(3), "198.51.100.13");
        assert_eq!(Node::Router.suffix(), "rtr");
        assert_eq!(DR_RS_COUNT, 3);
        for ip in [
            DR_CLIENT_IP,
            DR_ROUTER_CLIENT_IP,
            DR_ROUTER_IP,
            DR_DIRECTOR_IP,
            VIP,
        ] {
            ip.parse::<std::net::Ipv4Addr>().unwrap();
        }
    }

    #[test]
    fn render_quotes() {
        assert_eq!(render(&["a", "b c", ""]), "a 'b c' ''");
    }

    #[test]
    fn missing_binary_error_says_what_to_do() {
        let e = bin("definitely-not-an-xvs-binary").unwrap_err();
        assert!(
            e.to_string().contains("cargo build --workspace --bins"),
            "{e}"
        );
    }
}
