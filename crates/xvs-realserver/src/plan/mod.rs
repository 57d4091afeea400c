//! Reconciliation: from the VIPs that should be set up to the changes on the
//! host, through the [`System`] trait (a fake in the unit tests, the real
//! host in [`crate::sys`]).
//!
//! What a set of VIPs needs ([`desired`]) is recomputed from scratch on every
//! setup and teardown; [`apply`] then moves the host there: it adds what is
//! missing and restores (from the state's recorded originals) whatever no
//! remaining VIP needs. Original values are recorded the first time a
//! setting is needed, before anything is changed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use crate::cli::{DecapChoice, Mode, TunType};
use crate::state::{DecapSpec, Mechanism, VipEntry};
use crate::Error;

mod apply;
#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;

pub use apply::apply;

/// `net.ipv4.conf.<dev>.<name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SysctlKey {
    /// `all` or an interface name.
    pub dev: String,
    pub name: String,
}

impl SysctlKey {
    pub fn new(dev: &str, name: &str) -> SysctlKey {
        SysctlKey {
            dev: dev.to_string(),
            name: name.to_string(),
        }
    }

    /// Parses `net.ipv4.conf.<dev>.<name>` (the name has no dot; the
    /// interface name may).
    pub fn parse(s: &str) -> Option<SysctlKey> {
        let rest = s.strip_prefix("net.ipv4.conf.")?;
        let (dev, name) = rest.rsplit_once('.')?;
        if dev.is_empty() || name.is_empty() {
            return None;
        }
        Some(SysctlKey::new(dev, name))
    }

    /// `/proc/sys/net/ipv4/conf/<dev>/<name>`.
    pub fn proc_path(&self) -> String {
        format!("/proc/sys/net/ipv4/conf/{}/{}", self.dev, self.name)
    }
}

impl fmt::Display for SysctlKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "net.ipv4.conf.{}.{}", self.dev, self.name)
    }
}

/// The kernel's fallback tunnel device of the ipip module.
pub const TUNL0: &str = "tunl0";

/// What the host must look like for a set of VIPs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// VIPs to have on `lo`.
    pub vips: BTreeSet<IpAddr>,
    pub sysctls: BTreeMap<SysctlKey, &'static str>,
    /// BPF decap configuration per interface.
    pub decap: BTreeMap<String, DecapSpec>,
    /// Kernel decapsulation: ipip module and tunl0 up.
    pub tunl0: bool,
    /// Kernel decapsulation of GUE: fou module and these ports.
    pub fou_ports: BTreeSet<u16>,
}

/// Computes what `vips` need, decapsulating tunnels with `mech`.
pub fn desired(vips: &BTreeMap<IpAddr, VipEntry>, mech: Option<Mechanism>) -> Desired {
    let mut d = Desired::default();
    for (vip, e) in vips {
        d.vips.insert(*vip);
        // IPv6 needs no sysctl: neighbour discovery answers only for the
        // addresses of the interface a solicitation arrives on
        // (ndisc_recv_ns looks the target up strictly on that device), so
        // a VIP on lo is never announced, which is what arp_ignore and
        // arp_announce do for IPv4.
        let IpAddr::V4(vip4) = *vip else { continue };
        for dev in ["all", e.dev.as_str()] {
            d.sysctls.insert(SysctlKey::new(dev, "arp_ignore"), "1");
            d.sysctls.insert(SysctlKey::new(dev, "arp_announce"), "2");
        }
        if e.mode != Mode::Tun {
            continue;
        }
        for dev in ["all", e.dev.as_str()] {
            d.sysctls.insert(SysctlKey::new(dev, "rp_filter"), "0");
        }
        let gue_port = match e.tun_type {
            Some(TunType::Gue) => e.tun_port,
            _ => None,
        };
        match mech {
            Some(Mechanism::Kernel) => {
                d.tunl0 = true;
                d.sysctls.insert(SysctlKey::new(TUNL0, "rp_filter"), "0");
                d.fou_ports.extend(gue_port);
            }
            Some(Mechanism::Xdp) | None => {
                let spec = d.decap.entry(e.dev.clone()).or_default();
                spec.vips.push(vip4);
                if let Some(p) = gue_port {
                    if !spec.gue_ports.contains(&p) {
                        spec.gue_ports.push(p);
                    }
                }
            }
        }
    }
    for spec in d.decap.values_mut() {
        spec.vips.sort();
        spec.gue_ports.sort();
    }
    d
}

/// The host operations reconciliation needs.
pub trait System {
    /// Whether `vip` is an address on `lo` (any prefix length).
    fn lo_has(&mut self, vip: IpAddr) -> Result<bool, Error>;
    /// Interfaces other than `lo` that carry `vip`.
    fn other_devs_with(&mut self, vip: IpAddr) -> Result<Vec<String>, Error>;
    fn lo_add(&mut self, vip: IpAddr) -> Result<(), Error>;
    fn lo_del(&mut self, vip: IpAddr) -> Result<(), Error>;
    fn dev_exists(&mut self, dev: &str) -> bool;
    /// The interface of the default route, or the only candidate interface.
    fn default_dev(&mut self) -> Result<String, Error>;
    fn sysctl_get(&mut self, key: &SysctlKey) -> Result<String, Error>;
    fn sysctl_set(&mut self, key: &SysctlKey, value: &str) -> Result<(), Error>;
    /// Whether a kernel module is loaded (or built in).
    fn module_loaded(&mut self, module: &str) -> bool;
    /// Whether a kernel module is loaded or can be loaded.
    fn module_available(&mut self, module: &str) -> bool;
    fn module_load(&mut self, module: &str) -> Result<(), Error>;
    fn link_is_up(&mut self, dev: &str) -> Result<bool, Error>;
    fn link_set_up(&mut self, dev: &str, up: bool) -> Result<(), Error>;
    fn fou_ports(&mut self) -> Result<BTreeSet<u16>, Error>;
    fn fou_add(&mut self, port: u16) -> Result<(), Error>;
    fn fou_del(&mut self, port: u16) -> Result<(), Error>;
    fn decap_attached(&mut self, dev: &str) -> Result<bool, Error>;
    fn decap_attach(&mut self, dev: &str, spec: &DecapSpec) -> Result<(), Error>;
    fn decap_detach(&mut self, dev: &str) -> Result<(), Error>;
}

/// Picks the decapsulation for tun VIPs.
pub fn choose_mechanism(
    sys: &mut dyn System,
    choice: DecapChoice,
    need_gue: bool,
) -> Result<Mechanism, Error> {
    let kernel_ok = |sys: &mut dyn System| {
        sys.module_available("ipip") && (!need_gue || sys.module_available("fou"))
    };
    match choice {
        DecapChoice::Xdp => Ok(Mechanism::Xdp),
        DecapChoice::Auto => Ok(if kernel_ok(sys) {
            Mechanism::Kernel
        } else {
            Mechanism::Xdp
        }),
        DecapChoice::Kernel => {
            if kernel_ok(sys) {
                Ok(Mechanism::Kernel)
            } else {
                Err(Error::Conflict(format!(
                    "--decap kernel: this kernel has no {} module; use --decap xdp (or auto)",
                    if sys.module_available("ipip") {
                        "fou"
                    } else {
                        "ipip"
                    }
                )))
            }
        }
    }
}

/// The entry a `setup` makes, `dev` already resolved.
pub fn entry_for(
    mode: Mode,
    tun_type: Option<TunType>,
    tun_port: Option<u16>,
    dev: &str,
) -> VipEntry {
    let (tun_type, tun_port) = match mode {
        Mode::Dr => (None, None),
        Mode::Tun => {
            let t = tun_type.unwrap_or(TunType::Ipip);
            (Some(t), if t == TunType::Gue { tun_port } else { None })
        }
    };
    VipEntry {
        mode,
        tun_type,
        tun_port,
        dev: dev.to_string(),
        preexisting: false,
    }
}

/// Describes an entry for the output: `dr on eth0`, `tun (gue port 6080) on eth0`.
pub fn describe(e: &VipEntry) -> String {
    match (e.mode, e.tun_type) {
        (Mode::Tun, Some(TunType::Gue)) => format!(
            "tun (gue port {}) on {}",
            e.tun_port.map(|p| p.to_string()).unwrap_or_default(),
            e.dev
        ),
        (Mode::Tun, _) => format!("tun (ipip) on {}", e.dev),
        (Mode::Dr, _) => format!("dr on {}", e.dev),
    }
}
