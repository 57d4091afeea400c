//! Two directors and real keepalived for VRRP failover.
//!
//! xvs does not implement VRRP: the operator runs keepalived's VRRP half
//! (`keepalived --vrrp`) for VIP ownership next to `xvsd` (see
//! `docs/vrrp.md`). [`Testbed::dr_pair`] is the direct-routing LAN of
//! [`Testbed::dr`] with a second director and the VIP on neither:
//!
//! ```text
//!  client ns               router ns                 switch ns (br0)     director / rsN ns
//!  eth0 192.0.2.2/24 ───── eth0 192.0.2.1/24
//!                          eth1 198.51.100.1/24 ──── rtr ┐
//!                                                        ├ dir ───────── dir  eth0 198.51.100.2/24
//!                                                        ├ dir2 ──────── dir2 eth0 198.51.100.3/24
//!                                                        ├ rs1 ───────── rs1 eth0 198.51.100.11/24
//!                                                        ├ rs2 ───────── rs2 eth0 198.51.100.12/24
//!                                                        └ rs3 ───────── rs3 eth0 198.51.100.13/24
//! ```
//!
//! [`Testbed::keepalived_vrrp`] starts Debian's `/usr/sbin/keepalived` in a
//! director with every file it writes (its pid files) under
//! [`Testbed::run_dir`], logging to its [`Proc`] log only (no syslog, no
//! `/dev/console`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::{
    io_err, run, Error, Node, Proc, Result, Testbed, CLIENT_IP, DIRECTOR_EXT_IP, DR_ROUTER_IP,
    NAT_RS_COUNT, VIP,
};

/// The second director's address in [`Testbed::dr_pair`].
pub const DR_DIRECTOR2_IP: &str = "198.51.100.3";
/// The second director's client-side address in [`Testbed::nat_pair`].
pub const NAT_DIRECTOR2_EXT_IP: &str = "198.51.100.3";
/// The second director's address among the real servers in
/// [`Testbed::nat_pair`].
pub const NAT_DIRECTOR2_INT_IP: &str = "203.0.113.2";
/// The real servers' floating gateway in [`Testbed::nat_pair`] (the
/// master director's, as a VRRP instance's second address would be).
pub const NAT_GATEWAY_IP: &str = "203.0.113.254";

impl Testbed {
    /// [`Testbed::dr`] with a second director, [`Node::Director2`]
    /// ([`DR_DIRECTOR2_IP`], switch port `dir2`), and the VIP on neither
    /// director: whoever holds it is decided by VRRP (keepalived adds
    /// `VIP/32` to the master's eth0). The second director is set up like
    /// the first (default route via the router, `ip_forward`, no
    /// redirects; its switch port has GRO and the `XDP_PASS` program that
    /// `XDP_TX` on veth needs). The topology is [`crate::Topology::Dr`].
    /// On error everything created so far is removed again.
    pub fn dr_pair() -> Result<Testbed> {
        let mut tb = Testbed::dr()?;
        let dir = tb.ns(Node::Director);
        run(&[
            "ip",
            "-n",
            &dir,
            "addr",
            "del",
            &format!("{VIP}/32"),
            "dev",
            "eth0",
        ])?;

        tb.add_ns(Node::Director2)?;
        let dir2 = tb.ns(Node::Director2);
        let sw = tb.ns(Node::Switch);
        run(&[
            "ip", "link", "add", "eth0", "netns", &dir2, "type", "veth", "peer", "name", "dir2",
            "netns", &sw,
        ])?;
        run(&[
            "ip", "-n", &sw, "link", "set", "dir2", "master", "br0", "up",
        ])?;
        tb.exec_ok(Node::Switch, &["ethtool", "-K", "dir2", "tx", "off"])?;

        tb.addr(Node::Director2, "eth0", &format!("{DR_DIRECTOR2_IP}/24"))?;
        tb.default_route(Node::Director2, DR_ROUTER_IP)?;
        tb.forward(Node::Director2, &["eth0"])?;
        // The veth realities of Testbed::dr for the second director's
        // switch port: GRO, and an XDP program so that XDP_TX delivers.
        tb.exec_ok(Node::Switch, &["ethtool", "-K", "dir2", "gro", "on"])?;
        tb.xdp_pass(Node::Switch, "dir2")?;
        Ok(tb)
    }

    /// [`Testbed::nat`] with a second director, [`Node::Director2`], for
    /// NAT failover: the client and both directors' `eth0` on a second
    /// bridge (`br1`, switch ports `cli`, `dirx`, `dir2x`), both directors'
    /// `eth1` on the real servers' bridge (ports `dir`, `dir2`), the
    /// second director at [`NAT_DIRECTOR2_EXT_IP`] and
    /// [`NAT_DIRECTOR2_INT_IP`], and the real servers' default route via a
    /// floating gateway, [`NAT_GATEWAY_IP`], which is on neither director
    /// yet: like the VIP (also on neither), it belongs to whoever is
    /// master ([`Testbed::take_over`]).
    pub fn nat_pair() -> Result<Testbed> {
        let mut tb = Testbed::nat()?;
        let (cli, dir, sw) = (
            tb.ns(Node::Client),
            tb.ns(Node::Director),
            tb.ns(Node::Switch),
        );
        run(&["ip", "-n", &cli, "link", "del", "eth0"])?;
        tb.add_ns(Node::Director2)?;
        let dir2 = tb.ns(Node::Director2);
        let mut ext = Vec::new();
        for (ns, dev, port) in [
            (&cli, "eth0", "cli"),
            (&dir, "eth0", "dirx"),
            (&dir2, "eth0", "dir2x"),
            (&dir2, "eth1", "dir2"),
        ] {
            run(&[
                "ip", "link", "add", dev, "netns", ns, "type", "veth", "peer", "name", port,
                "netns", &sw,
            ])?;
            if port == "dir2" {
                run(&["ip", "-n", &sw, "link", "set", port, "master", "br0", "up"])?;
                tb.exec_ok(Node::Switch, &["ethtool", "-K", port, "tx", "off"])?;
            } else {
                ext.push(port.to_string());
            }
            // The veth realities of Testbed::nat: GRO where XDP redirects
            // into.
            tb.exec_ok(Node::Switch, &["ethtool", "-K", port, "gro", "on"])?;
        }
        tb.bridge("br1", &ext)?;
        tb.exec_ok(
            Node::Client,
            &["ethtool", "-K", "eth0", "gro", "on", "tx", "off"],
        )?;
        tb.addr(Node::Client, "eth0", &format!("{CLIENT_IP}/24"))?;
        tb.default_route(Node::Client, DIRECTOR_EXT_IP)?;
        tb.addr(Node::Director, "eth0", &format!("{DIRECTOR_EXT_IP}/24"))?;
        tb.addr(
            Node::Director2,
            "eth0",
            &format!("{NAT_DIRECTOR2_EXT_IP}/24"),
        )?;
        tb.addr(
            Node::Director2,
            "eth1",
            &format!("{NAT_DIRECTOR2_INT_IP}/24"),
        )?;
        tb.forward(Node::Director, &["eth0", "eth1"])?;
        tb.forward(Node::Director2, &["eth0", "eth1"])?;
        for n in 1..=NAT_RS_COUNT {
            let rs = tb.ns(Node::Rs(n));
            run(&[
                "ip",
                "-n",
                &rs,
                "route",
                "replace",
                "default",
                "via",
                NAT_GATEWAY_IP,
            ])?;
        }
        Ok(tb)
    }

    /// Makes director `node` of a pair ([`Testbed::dr_pair`],
    /// [`Testbed::nat_pair`]) the one traffic goes to, as VRRP would: the
    /// VIP on its `eth0` (for NAT also the real servers' floating gateway
    /// on its `eth1`), taken off the other director, and the neighbour
    /// entries of whoever sends to them (the router, or the client and the
    /// real servers) pointed at it, as a VRRP master's gratuitous ARPs do.
    pub fn take_over(&self, node: Node) -> Result<()> {
        let other = if node == Node::Director {
            Node::Director2
        } else {
            Node::Director
        };
        let nat = self.topology == crate::Topology::Nat;
        let vip = format!("{VIP}/32");
        let gw = format!("{NAT_GATEWAY_IP}/24");
        let _ = self.exec(other, &["ip", "addr", "del", &vip, "dev", "eth0"]);
        // `replace`: taking over what one already holds is no error.
        self.exec_ok(node, &["ip", "addr", "replace", &vip, "dev", "eth0"])?;
        if nat {
            let _ = self.exec(other, &["ip", "addr", "del", &gw, "dev", "eth1"]);
            self.exec_ok(node, &["ip", "addr", "replace", &gw, "dev", "eth1"])?;
        }
        let mac = |dev: &str| -> Result<String> {
            Ok(self
                .exec_ok(node, &["cat", &format!("/sys/class/net/{dev}/address")])?
                .trim()
                .to_string())
        };
        let learn = |at: Node, dev: &str, ip: &str, mac: &str| {
            self.exec_ok(
                at,
                &[
                    "ip",
                    "neigh",
                    "replace",
                    ip,
                    "lladdr",
                    mac,
                    "dev",
                    dev,
                    "nud",
                    "reachable",
                ],
            )
        };
        let ext = mac("eth0")?;
        if !nat {
            learn(Node::Router, "eth1", VIP, &ext)?;
            return Ok(());
        }
        learn(Node::Client, "eth0", VIP, &ext)?;
        let int = mac("eth1")?;
        for n in 1..=NAT_RS_COUNT {
            learn(Node::Rs(n), "eth0", NAT_GATEWAY_IP, &int)?;
        }
        Ok(())
    }

    /// Whether `ip` (an IPv4 address, no prefix) is assigned to `dev` in
    /// `node`.
    pub fn has_addr(&self, node: Node, dev: &str, ip: &str) -> Result<bool> {
        let out = self.exec_ok(node, &["ip", "-4", "-o", "addr", "show", "dev", dev])?;
        let want = format!("inet {ip}/");
        Ok(out.contains(&want))
    }

    /// The PIDs of every process inside `node`'s network namespace
    /// (`ip netns pids`), e.g. to sweep what a test leaves behind.
    pub fn netns_pids(&self, node: Node) -> Result<Vec<u32>> {
        let ns = self.ns(node);
        if !self.namespaces.contains(&ns) {
            return Err(Error::Other(format!("{node} is not part of this testbed")));
        }
        let out = run(&["ip", "netns", "pids", &ns])?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    }

    /// Start keepalived's VRRP half in `node` with `config` (the text of a
    /// keepalived.conf):
    ///
    /// ```text
    /// keepalived --vrrp --dont-fork --log-console --log-detail --no-syslog
    ///     --use-file DIR/keepalived.conf --pid DIR/keepalived.pid
    ///     --vrrp_pid DIR/vrrp.pid --checkers_pid DIR/checkers.pid --bfd_pid DIR/bfd.pid
    /// ```
    ///
    /// `DIR` is a fresh `keepalived-<node>-<n>` under [`Testbed::run_dir`]:
    /// keepalived writes nothing else (it also unlinks the checker and BFD
    /// pid files on exit, hence their paths too; the defaults are under
    /// `/run`, where a system keepalived keeps its own). `--vrrp` leaves
    /// every `virtual_server` block of `config` alone. Waits until keepalived
    /// reports "Startup complete"; the process is tracked like
    /// [`Testbed::spawn`]'s (SIGTERM at teardown; its VRRP child follows
    /// its parent).
    pub fn keepalived_vrrp(&self, node: Node, config: &str) -> Result<Keepalived> {
        let bin = keepalived_bin()?;
        let dir = (0u32..)
            .map(|n| self.run_dir.join(format!("keepalived-{node}-{n}")))
            .find(|d| !d.exists())
            .expect("an unused directory name");
        fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        let conf = dir.join("keepalived.conf");
        fs::write(&conf, config).map_err(io_err(format!("write {}", conf.display())))?;
        let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let bin = bin.to_string_lossy().into_owned();
        let argv = [
            bin.as_str(),
            "--vrrp",
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--no-syslog",
            "--use-file",
            &p("keepalived.conf"),
            "--pid",
            &p("keepalived.pid"),
            "--vrrp_pid",
            &p("vrrp.pid"),
            "--checkers_pid",
            &p("checkers.pid"),
            "--bfd_pid",
            &p("bfd.pid"),
        ];
        let proc = self.spawn(node, &argv)?;
        let k = Keepalived { proc, dir, node };
        k.proc
            .wait_for_log("Startup complete", Duration::from_secs(10))?;
        Ok(k)
    }
}

/// Find `keepalived` in `$PATH`, `/usr/sbin` or `/sbin`.
pub fn keepalived_bin() -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin"].map(PathBuf::from));
    dirs.iter()
        .map(|d| d.join("keepalived"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Other(
                "keepalived not found: `apt-get install keepalived` \
                 (`cargo xtask test` installs it)"
                    .into(),
            )
        })
}

/// A keepalived (VRRP only) started by [`Testbed::keepalived_vrrp`]. The
/// [`Proc`] is keepalived's parent process; it forks one VRRP child, whose
/// PID is in [`Keepalived::vrrp_pid`].
#[derive(Debug, Clone)]
pub struct Keepalived {
    proc: Proc,
    dir: PathBuf,
    node: Node,
}

impl Keepalived {
    /// The parent process.
    pub fn proc(&self) -> &Proc {
        &self.proc
    }

    /// The node it runs in.
    pub fn node(&self) -> Node {
        self.node
    }

    /// Its directory: `keepalived.conf` and the pid files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// The VRRP child's PID, from its pid file (none before it started or
    /// after a clean stop, which removes the file).
    pub fn vrrp_pid(&self) -> Option<u32> {
        fs::read_to_string(self.dir.join("vrrp.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// A clean stop: SIGTERM, which makes keepalived send a priority-0
    /// advertisement (the backup takes over at once) and remove the VIPs;
    /// SIGKILL after `grace`.
    pub fn stop(&self, grace: Duration) -> Option<ExitStatus> {
        self.proc.stop(grace)
    }

    /// A crash: the parent and its VRRP child die by SIGKILL, so nothing is
    /// cleaned up (no priority-0 advertisement, the VIP stays on the
    /// interface). The parent is stopped (SIGSTOP) first so it can neither
    /// respawn the child nor have it exit cleanly, then the child (checked
    /// to be the parent's child) and the parent are killed.
    pub fn crash(&self) -> Result<()> {
        let parent = self.proc.pid();
        self.proc.signal(libc::SIGSTOP)?;
        if let Some(child) = self.vrrp_pid() {
            if ppid(child) == Some(parent) {
                // SAFETY: kill(2) of keepalived's VRRP child, verified above
                // to be a child of our (stopped, unreaped) process.
                unsafe { libc::kill(child as i32, libc::SIGKILL) };
                let deadline = Instant::now() + Duration::from_secs(2);
                while ppid(child) == Some(parent) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        self.proc.signal(libc::SIGKILL)?;
        self.proc
            .wait_timeout(Duration::from_secs(5))
            .map(|_| ())
            .ok_or_else(|| Error::Other(format!("{} did not die", self.proc.label())))
    }
}

/// The parent PID of `pid` from `/proc/<pid>/stat` (None when it is gone
/// or a zombie already reaped).
fn ppid(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid ...; comm may contain blanks and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_director() {
        assert_eq!(Node::Director2.suffix(), "dir2");
        DR_DIRECTOR2_IP.parse::<std::net::Ipv4Addr>().unwrap();
        assert_eq!(
            ppid(std::process::id()),
            Some(std::os::unix::process::parent_id())
        );
    }
}
