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
use std::net::Ipv4Addr;

use crate::cli::{DecapChoice, Mode, TunType};
use crate::state::{DecapSpec, Mechanism, State, VipEntry};
use crate::Error;

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
    pub vips: BTreeSet<Ipv4Addr>,
    pub sysctls: BTreeMap<SysctlKey, &'static str>,
    /// BPF decap configuration per interface.
    pub decap: BTreeMap<String, DecapSpec>,
    /// Kernel decapsulation: ipip module and tunl0 up.
    pub tunl0: bool,
    /// Kernel decapsulation of GUE: fou module and these ports.
    pub fou_ports: BTreeSet<u16>,
}

/// Computes what `vips` need, decapsulating tunnels with `mech`.
pub fn desired(vips: &BTreeMap<Ipv4Addr, VipEntry>, mech: Option<Mechanism>) -> Desired {
    let mut d = Desired::default();
    for (vip, e) in vips {
        d.vips.insert(*vip);
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
                spec.vips.push(*vip);
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
    fn lo_has(&mut self, vip: Ipv4Addr) -> Result<bool, Error>;
    /// Interfaces other than `lo` that carry `vip`.
    fn other_devs_with(&mut self, vip: Ipv4Addr) -> Result<Vec<String>, Error>;
    fn lo_add(&mut self, vip: Ipv4Addr) -> Result<(), Error>;
    fn lo_del(&mut self, vip: Ipv4Addr) -> Result<(), Error>;
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

/// Moves the host from what `state` records to what `target` (the VIPs
/// that should remain or become set up) needs. `save` is called with the
/// state once the originals are recorded, before the first change. Every
/// change, and every `already ...`, is reported through `out`. `state` is
/// updated as changes are made, also when an error cuts the run short.
pub fn apply(
    sys: &mut dyn System,
    state: &mut State,
    mut target: BTreeMap<Ipv4Addr, VipEntry>,
    choice: DecapChoice,
    save: &mut dyn FnMut(&State) -> Result<(), Error>,
    out: &mut dyn FnMut(String),
) -> Result<(), Error> {
    let old = state.vips.clone();

    // The tunnel mechanism: chosen at the first tun VIP, kept while any is left.
    let tun_entries: Vec<&VipEntry> = target.values().filter(|e| e.mode == Mode::Tun).collect();
    let need_gue = tun_entries.iter().any(|e| e.tun_type == Some(TunType::Gue));
    if !tun_entries.is_empty() {
        match state.tunnel {
            None => {
                let m = choose_mechanism(sys, choice, need_gue)?;
                out(format!("decapsulation: {}", m.describe()));
                state.tunnel = Some(m);
            }
            Some(m) => {
                let clash = matches!(
                    (choice, m),
                    (DecapChoice::Kernel, Mechanism::Xdp) | (DecapChoice::Xdp, Mechanism::Kernel)
                );
                if clash {
                    return Err(Error::Conflict(format!(
                        "the tun VIPs here already use {} decapsulation; tear them down to switch",
                        m.describe()
                    )));
                }
                if m == Mechanism::Kernel && need_gue && !sys.module_available("fou") {
                    return Err(Error::Conflict(
                        "GUE needs the fou module, which this kernel lacks, and the tun VIPs \
                         here already use kernel decapsulation; tear them down and use --decap xdp"
                            .into(),
                    ));
                }
            }
        }
    }
    let mech = if tun_entries.is_empty() {
        None
    } else {
        state.tunnel
    };

    // Record the originals before changing anything.
    for (vip, e) in target.iter_mut() {
        e.preexisting = match old.get(vip) {
            Some(o) => o.preexisting,
            None => sys.lo_has(*vip)?,
        };
    }
    let want = desired(&target, mech);
    for key in want.sysctls.keys() {
        let k = key.to_string();
        if !state.saved_sysctls.contains_key(&k) && sys.dev_exists_for(key) {
            let v = sys.sysctl_get(key)?;
            state.saved_sysctls.insert(k, v);
        }
    }
    state.vips = target.clone();
    save(state)?;

    // 1. Tunnel endpoints.
    if want.tunl0 {
        if sys.module_loaded("ipip") {
            if !state.kernel.loaded_modules.iter().any(|m| m == "ipip") {
                out("already loaded: kernel module ipip".into());
            }
        } else {
            sys.module_load("ipip")?;
            state.kernel.loaded_modules.push("ipip".into());
            out("loaded kernel module ipip".into());
        }
        if sys.link_is_up(TUNL0)? {
            state.kernel.tunl0_was_down.get_or_insert(false);
            out(format!("already up: {TUNL0}"));
        } else {
            state.kernel.tunl0_was_down.get_or_insert(true);
            sys.link_set_up(TUNL0, true)?;
            out(format!("set {TUNL0} up"));
        }
        // tunl0 exists only now: record its original rp_filter.
        for key in want.sysctls.keys().filter(|k| k.dev == TUNL0) {
            if let std::collections::btree_map::Entry::Vacant(slot) =
                state.saved_sysctls.entry(key.to_string())
            {
                slot.insert(sys.sysctl_get(key)?);
            }
        }
    }
    if !want.fou_ports.is_empty() {
        if !sys.module_loaded("fou") {
            sys.module_load("fou")?;
            state.kernel.loaded_modules.push("fou".into());
            out("loaded kernel module fou".into());
        }
        let have = sys.fou_ports()?;
        for p in &want.fou_ports {
            if have.contains(p) {
                out(format!("already listening: ip fou port {p} gue"));
            } else {
                sys.fou_add(*p)?;
                state.kernel.fou_ports_added.insert(*p);
                out(format!("added ip fou port {p} gue"));
            }
        }
    }
    for (dev, spec) in &want.decap {
        let same = state.decap.get(dev) == Some(spec);
        if same && sys.decap_attached(dev)? {
            out(format!("already attached: xvs decap on {dev} ({spec})"));
        } else {
            sys.decap_attach(dev, spec)?;
            state.decap.insert(dev.clone(), spec.clone());
            out(format!("attached xvs decap to {dev} ({spec})"));
        }
    }

    // 2. VIPs on lo.
    for (vip, e) in &target {
        if sys.lo_has(*vip)? {
            out(format!("already on lo: {vip}/32 ({})", describe(e)));
        } else {
            sys.lo_add(*vip)?;
            out(format!("added {vip}/32 to lo ({})", describe(e)));
        }
        if !old.contains_key(vip) {
            let others = sys.other_devs_with(*vip)?;
            if !others.is_empty() {
                out(format!(
                    "warning: {vip} is also on {}: this host will answer ARP for it",
                    others.join(", ")
                ));
            }
        }
    }

    // 3. Sysctls: set what is wanted, restore what is no longer needed.
    for (key, val) in &want.sysctls {
        let cur = sys.sysctl_get(key)?;
        if cur == *val {
            out(format!("already {key} = {val}"));
        } else {
            sys.sysctl_set(key, val)?;
            out(format!("set {key} = {val} (was {cur})"));
        }
    }
    let stale: Vec<String> = state
        .saved_sysctls
        .keys()
        .filter(|k| SysctlKey::parse(k).is_none_or(|key| !want.sysctls.contains_key(&key)))
        .cloned()
        .collect();
    for k in stale {
        let orig = state.saved_sysctls[&k].clone();
        match SysctlKey::parse(&k) {
            Some(key) if sys.dev_exists_for(&key) => {
                let cur = sys.sysctl_get(&key)?;
                if cur == orig {
                    out(format!("already {key} = {orig} (the original value)"));
                } else {
                    sys.sysctl_set(&key, &orig)?;
                    out(format!("restored {key} = {orig} (was {cur})"));
                }
            }
            _ => out(format!(
                "skipped restoring {k} = {orig}: the interface is gone"
            )),
        }
        state.saved_sysctls.remove(&k);
    }

    // 4. VIPs no longer needed.
    for (vip, e) in &old {
        if target.contains_key(vip) {
            continue;
        }
        if e.preexisting {
            out(format!("kept {vip} on lo: it was there before setup"));
        } else if sys.lo_has(*vip)? {
            sys.lo_del(*vip)?;
            out(format!("removed {vip}/32 from lo"));
        } else {
            out(format!("already gone from lo: {vip}"));
        }
    }

    // 5. Tunnel endpoints no longer needed.
    let gone: Vec<String> = state
        .decap
        .keys()
        .filter(|d| !want.decap.contains_key(*d))
        .cloned()
        .collect();
    for dev in gone {
        if !sys.dev_exists(&dev) {
            out(format!("already detached: {dev} is gone"));
        } else if sys.decap_attached(&dev)? {
            sys.decap_detach(&dev)?;
            out(format!("detached xvs decap from {dev}"));
        } else {
            out(format!("already detached: xvs decap on {dev}"));
        }
        state.decap.remove(&dev);
    }
    let unused: Vec<u16> = state
        .kernel
        .fou_ports_added
        .iter()
        .filter(|p| !want.fou_ports.contains(p))
        .copied()
        .collect();
    for p in unused {
        sys.fou_del(p)?;
        state.kernel.fou_ports_added.remove(&p);
        out(format!("removed ip fou port {p}"));
    }
    if !want.tunl0 {
        if let Some(was_down) = state.kernel.tunl0_was_down.take() {
            if was_down && sys.dev_exists(TUNL0) && sys.link_is_up(TUNL0)? {
                sys.link_set_up(TUNL0, false)?;
                out(format!("set {TUNL0} down (as it was)"));
            }
        }
        // Modules are shared by every network namespace (other real
        // servers on this host may use tunl0 now): never unloaded.
        for m in std::mem::take(&mut state.kernel.loaded_modules) {
            out(format!(
                "left kernel module {m} loaded (modules are shared by all network namespaces)"
            ));
        }
    }
    if mech.is_none() {
        state.tunnel = None;
    }
    Ok(())
}

/// Sysctls of an interface exist only while the interface does.
trait DevExistsFor {
    fn dev_exists_for(&mut self, key: &SysctlKey) -> bool;
}

impl<S: System + ?Sized> DevExistsFor for S {
    fn dev_exists_for(&mut self, key: &SysctlKey) -> bool {
        matches!(key.dev.as_str(), "all" | "default") || self.dev_exists(&key.dev)
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! An in-memory host.
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Fake {
        pub lo: BTreeSet<Ipv4Addr>,
        pub other: BTreeMap<Ipv4Addr, String>,
        pub devs: BTreeSet<String>,
        pub sysctls: BTreeMap<String, String>,
        pub modules_available: BTreeSet<String>,
        pub modules_loaded: BTreeSet<String>,
        pub up: BTreeSet<String>,
        pub fou: BTreeSet<u16>,
        pub decap: BTreeMap<String, DecapSpec>,
        pub default_dev: Option<String>,
    }

    impl Fake {
        /// A host with eth0, Debian-like defaults.
        pub fn new() -> Fake {
            let mut sysctls = BTreeMap::new();
            for dev in ["all", "default", "lo", "eth0", "eth1"] {
                sysctls.insert(format!("net.ipv4.conf.{dev}.arp_ignore"), "0".into());
                sysctls.insert(format!("net.ipv4.conf.{dev}.arp_announce"), "0".into());
                sysctls.insert(format!("net.ipv4.conf.{dev}.rp_filter"), "2".into());
            }
            Fake {
                lo: BTreeSet::from(["127.0.0.1".parse().unwrap()]),
                other: BTreeMap::new(),
                devs: ["lo", "eth0", "eth1"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                sysctls,
                modules_available: BTreeSet::new(),
                modules_loaded: BTreeSet::new(),
                up: ["lo", "eth0", "eth1"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                fou: BTreeSet::new(),
                decap: BTreeMap::new(),
                default_dev: Some("eth0".into()),
            }
        }

        pub fn with_kernel_tunnels(mut self) -> Fake {
            self.modules_available = ["ipip", "fou"].iter().map(|s| s.to_string()).collect();
            self
        }
    }

    fn nope(what: String) -> Error {
        Error::Conflict(what)
    }

    impl System for Fake {
        fn lo_has(&mut self, vip: Ipv4Addr) -> Result<bool, Error> {
            Ok(self.lo.contains(&vip))
        }
        fn other_devs_with(&mut self, vip: Ipv4Addr) -> Result<Vec<String>, Error> {
            Ok(self.other.get(&vip).into_iter().cloned().collect())
        }
        fn lo_add(&mut self, vip: Ipv4Addr) -> Result<(), Error> {
            assert!(self.lo.insert(vip), "{vip} added twice");
            Ok(())
        }
        fn lo_del(&mut self, vip: Ipv4Addr) -> Result<(), Error> {
            assert!(self.lo.remove(&vip), "{vip} removed but absent");
            Ok(())
        }
        fn dev_exists(&mut self, dev: &str) -> bool {
            self.devs.contains(dev)
        }
        fn default_dev(&mut self) -> Result<String, Error> {
            self.default_dev
                .clone()
                .ok_or(Error::NoDefaultDev(String::new()))
        }
        fn sysctl_get(&mut self, key: &SysctlKey) -> Result<String, Error> {
            self.sysctls
                .get(&key.to_string())
                .cloned()
                .ok_or_else(|| nope(format!("no sysctl {key}")))
        }
        fn sysctl_set(&mut self, key: &SysctlKey, value: &str) -> Result<(), Error> {
            let v = self
                .sysctls
                .get_mut(&key.to_string())
                .ok_or_else(|| nope(format!("no sysctl {key}")))?;
            *v = value.to_string();
            Ok(())
        }
        fn module_loaded(&mut self, module: &str) -> bool {
            self.modules_loaded.contains(module)
        }
        fn module_available(&mut self, module: &str) -> bool {
            self.modules_available.contains(module) || self.modules_loaded.contains(module)
        }
        fn module_load(&mut self, module: &str) -> Result<(), Error> {
            if !self.modules_available.contains(module) {
                return Err(nope(format!("no module {module}")));
            }
            self.modules_loaded.insert(module.to_string());
            if module == "ipip" {
                self.devs.insert(TUNL0.into());
                for name in ["arp_ignore", "arp_announce"] {
                    self.sysctls
                        .insert(format!("net.ipv4.conf.{TUNL0}.{name}"), "0".into());
                }
                self.sysctls
                    .insert(format!("net.ipv4.conf.{TUNL0}.rp_filter"), "2".into());
            }
            Ok(())
        }
        fn link_is_up(&mut self, dev: &str) -> Result<bool, Error> {
            if !self.devs.contains(dev) {
                return Err(nope(format!("no device {dev}")));
            }
            Ok(self.up.contains(dev))
        }
        fn link_set_up(&mut self, dev: &str, up: bool) -> Result<(), Error> {
            if !self.devs.contains(dev) {
                return Err(nope(format!("no device {dev}")));
            }
            if up {
                self.up.insert(dev.to_string());
            } else {
                self.up.remove(dev);
            }
            Ok(())
        }
        fn fou_ports(&mut self) -> Result<BTreeSet<u16>, Error> {
            Ok(self.fou.clone())
        }
        fn fou_add(&mut self, port: u16) -> Result<(), Error> {
            assert!(self.modules_loaded.contains("fou"));
            assert!(self.fou.insert(port));
            Ok(())
        }
        fn fou_del(&mut self, port: u16) -> Result<(), Error> {
            assert!(self.fou.remove(&port));
            Ok(())
        }
        fn decap_attached(&mut self, dev: &str) -> Result<bool, Error> {
            Ok(self.decap.contains_key(dev))
        }
        fn decap_attach(&mut self, dev: &str, spec: &DecapSpec) -> Result<(), Error> {
            assert!(!spec.vips.is_empty());
            self.decap.insert(dev.to_string(), spec.clone());
            Ok(())
        }
        fn decap_detach(&mut self, dev: &str) -> Result<(), Error> {
            assert!(self.decap.remove(dev).is_some());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::Fake;
    use super::*;

    const VIP: &str = "198.51.100.10";
    const VIP2: &str = "198.51.100.20";

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// Runs `apply` the way `lib::run` does; returns the printed lines.
    fn run(
        sys: &mut Fake,
        st: &mut State,
        target: BTreeMap<Ipv4Addr, VipEntry>,
        choice: DecapChoice,
    ) -> Result<Vec<String>, Error> {
        let mut lines = Vec::new();
        let mut saves = 0;
        let r = apply(
            sys,
            st,
            target,
            choice,
            &mut |_| {
                saves += 1;
                Ok(())
            },
            &mut |l| lines.push(l),
        );
        assert_eq!(saves, usize::from(r.is_ok()));
        r.map(|()| lines)
    }

    fn setup(sys: &mut Fake, st: &mut State, vip: &str, e: VipEntry) -> Vec<String> {
        let mut target = st.vips.clone();
        target.insert(ip(vip), e);
        run(sys, st, target, DecapChoice::Auto).unwrap()
    }

    fn teardown(sys: &mut Fake, st: &mut State, vip: &str) -> Vec<String> {
        let mut target = st.vips.clone();
        target.remove(&ip(vip));
        run(sys, st, target, DecapChoice::Auto).unwrap()
    }

    fn dr() -> VipEntry {
        entry_for(Mode::Dr, None, None, "eth0")
    }

    fn ipip() -> VipEntry {
        entry_for(Mode::Tun, Some(TunType::Ipip), None, "eth0")
    }

    fn gue(port: u16) -> VipEntry {
        entry_for(Mode::Tun, Some(TunType::Gue), Some(port), "eth0")
    }

    fn all_already(lines: &[String]) -> bool {
        lines.iter().all(|l| l.starts_with("already"))
    }

    #[test]
    fn sysctl_keys() {
        let k = SysctlKey::parse("net.ipv4.conf.eth0.100.rp_filter").unwrap();
        assert_eq!(k.dev, "eth0.100");
        assert_eq!(k.name, "rp_filter");
        assert_eq!(k.to_string(), "net.ipv4.conf.eth0.100.rp_filter");
        assert_eq!(k.proc_path(), "/proc/sys/net/ipv4/conf/eth0.100/rp_filter");
        assert_eq!(SysctlKey::parse("net.ipv4.ip_forward"), None);
        assert_eq!(SysctlKey::parse("net.ipv4.conf.all"), None);
    }

    #[test]
    fn desired_for_dr_and_tun() {
        let mut vips = BTreeMap::new();
        vips.insert(ip(VIP), dr());
        let d = desired(&vips, None);
        assert_eq!(d.vips, BTreeSet::from([ip(VIP)]));
        let keys: Vec<String> = d.sysctls.keys().map(|k| k.to_string()).collect();
        assert_eq!(
            keys,
            [
                "net.ipv4.conf.all.arp_announce",
                "net.ipv4.conf.all.arp_ignore",
                "net.ipv4.conf.eth0.arp_announce",
                "net.ipv4.conf.eth0.arp_ignore"
            ]
        );
        assert!(d.decap.is_empty() && !d.tunl0);

        vips.insert(ip(VIP2), gue(6080));
        let d = desired(&vips, Some(Mechanism::Xdp));
        assert_eq!(d.sysctls[&SysctlKey::new("all", "rp_filter")], "0");
        assert_eq!(d.sysctls[&SysctlKey::new("eth0", "rp_filter")], "0");
        assert_eq!(
            d.decap["eth0"],
            DecapSpec {
                vips: vec![ip(VIP2)],
                gue_ports: vec![6080]
            }
        );
        let d = desired(&vips, Some(Mechanism::Kernel));
        assert!(d.tunl0 && d.decap.is_empty());
        assert_eq!(d.fou_ports, BTreeSet::from([6080]));
        assert_eq!(d.sysctls[&SysctlKey::new(TUNL0, "rp_filter")], "0");
    }

    #[test]
    fn dr_setup_teardown_restores_and_second_setup_is_a_noop() {
        let mut sys = Fake::new();
        let before = sys.clone();
        let mut st = State::default();
        let lines = setup(&mut sys, &mut st, VIP, dr());
        assert!(
            lines.contains(&format!("added {VIP}/32 to lo (dr on eth0)")),
            "{lines:?}"
        );
        assert!(lines.contains(&"set net.ipv4.conf.all.arp_ignore = 1 (was 0)".to_string()));
        assert!(lines.contains(&"set net.ipv4.conf.eth0.arp_announce = 2 (was 0)".to_string()));
        assert!(sys.lo.contains(&ip(VIP)));
        assert_eq!(
            sys.sysctls["net.ipv4.conf.all.rp_filter"], "2",
            "dr leaves rp_filter"
        );
        assert_eq!(st.saved_sysctls.len(), 4);
        assert_eq!(st.tunnel, None);

        let again = setup(&mut sys, &mut st, VIP, dr());
        assert!(all_already(&again), "{again:?}");

        let lines = teardown(&mut sys, &mut st, VIP);
        assert!(
            lines.contains(&format!("removed {VIP}/32 from lo")),
            "{lines:?}"
        );
        assert!(lines.contains(&"restored net.ipv4.conf.all.arp_ignore = 0 (was 1)".to_string()));
        assert_eq!(sys, before);
        assert!(st.is_empty(), "{st:?}");
        let again = teardown(&mut sys, &mut st, VIP);
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn tun_without_ipip_uses_xdp_decap() {
        let mut sys = Fake::new();
        let before = sys.clone();
        let mut st = State::default();
        let lines = setup(&mut sys, &mut st, VIP, ipip());
        assert_eq!(lines[0], "decapsulation: xvs BPF decap");
        assert!(
            lines.contains(&format!("attached xvs decap to eth0 (vips {VIP})")),
            "{lines:?}"
        );
        assert_eq!(sys.sysctls["net.ipv4.conf.all.rp_filter"], "0");
        assert_eq!(sys.sysctls["net.ipv4.conf.eth0.rp_filter"], "0");
        assert_eq!(sys.sysctls["net.ipv4.conf.eth1.rp_filter"], "2");
        assert!(all_already(&setup(&mut sys, &mut st, VIP, ipip())));

        // A second VIP over GUE reloads decap with both; its teardown
        // reloads it with the first only and keeps everything it needs.
        let lines = setup(&mut sys, &mut st, VIP2, gue(6080));
        assert!(
            lines.contains(&format!(
                "attached xvs decap to eth0 (vips {VIP},{VIP2}; gue ports 6080)"
            )),
            "{lines:?}"
        );
        let lines = teardown(&mut sys, &mut st, VIP2);
        assert!(
            lines.contains(&format!("attached xvs decap to eth0 (vips {VIP})")),
            "{lines:?}"
        );
        assert!(lines.contains(&format!("removed {VIP2}/32 from lo")));
        assert!(
            !lines.iter().any(|l| l.starts_with("restored")),
            "{lines:?}"
        );
        assert_eq!(sys.sysctls["net.ipv4.conf.all.rp_filter"], "0");
        assert!(sys.lo.contains(&ip(VIP)));

        let lines = teardown(&mut sys, &mut st, VIP);
        assert!(
            lines.contains(&"detached xvs decap from eth0".to_string()),
            "{lines:?}"
        );
        assert_eq!(sys, before);
        assert!(st.is_empty(), "{st:?}");
    }

    #[test]
    fn dr_and_tun_share_what_both_need() {
        let mut sys = Fake::new();
        let before = sys.clone();
        let mut st = State::default();
        setup(&mut sys, &mut st, VIP, dr());
        setup(&mut sys, &mut st, VIP2, ipip());
        // Tearing the tun VIP down restores rp_filter but keeps the ARP settings.
        let lines = teardown(&mut sys, &mut st, VIP2);
        assert!(lines.contains(&"restored net.ipv4.conf.all.rp_filter = 2 (was 0)".to_string()));
        assert!(lines.contains(&"detached xvs decap from eth0".to_string()));
        assert_eq!(sys.sysctls["net.ipv4.conf.all.arp_ignore"], "1");
        assert_eq!(st.tunnel, None);
        teardown(&mut sys, &mut st, VIP);
        assert_eq!(sys, before);
        assert!(st.is_empty());
    }

    #[test]
    fn kernel_tunnels_when_the_modules_exist() {
        let mut sys = Fake::new().with_kernel_tunnels();
        let before = sys.clone();
        let mut st = State::default();
        let lines = setup(&mut sys, &mut st, VIP, gue(6080));
        assert_eq!(lines[0], "decapsulation: kernel (tunl0, fou)");
        assert!(
            lines.contains(&"loaded kernel module ipip".to_string()),
            "{lines:?}"
        );
        assert!(lines.contains(&"set tunl0 up".to_string()));
        assert!(lines.contains(&"added ip fou port 6080 gue".to_string()));
        assert!(lines.contains(&"set net.ipv4.conf.tunl0.rp_filter = 0 (was 2)".to_string()));
        assert!(sys.decap.is_empty());
        assert!(sys.up.contains(TUNL0));
        let again = setup(&mut sys, &mut st, VIP, gue(6080));
        assert!(all_already(&again), "{again:?}");
        let lines = teardown(&mut sys, &mut st, VIP);
        assert!(
            lines.contains(&"removed ip fou port 6080".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"set tunl0 down (as it was)".to_string()),
            "{lines:?}"
        );
        assert!(lines.contains(
            &"left kernel module ipip loaded (modules are shared by all network namespaces)"
                .to_string()
        ));
        assert!(st.is_empty(), "{st:?}");
        // As before, except that the modules stay loaded (with a down tunl0).
        let mut expect = before;
        expect.modules_loaded = sys.modules_loaded.clone();
        expect.devs.insert(TUNL0.into());
        for (k, v) in &sys.sysctls {
            if k.starts_with("net.ipv4.conf.tunl0.") {
                expect.sysctls.insert(k.clone(), v.clone());
            }
        }
        assert_eq!(sys, expect);
        assert_eq!(sys.sysctls["net.ipv4.conf.tunl0.rp_filter"], "2");
    }

    #[test]
    fn forced_choices() {
        let mut sys = Fake::new();
        let mut st = State::default();
        let mut target = BTreeMap::new();
        target.insert(ip(VIP), ipip());
        let e = run(&mut sys, &mut st, target.clone(), DecapChoice::Kernel).unwrap_err();
        assert!(e.to_string().contains("no ipip module"), "{e}");
        assert_eq!(sys, Fake::new(), "nothing changed on error");
        assert!(st.is_empty());

        let mut sys = Fake::new().with_kernel_tunnels();
        let lines = run(&mut sys, &mut st, target.clone(), DecapChoice::Xdp).unwrap();
        assert_eq!(lines[0], "decapsulation: xvs BPF decap");
        target.insert(ip(VIP2), ipip());
        let e = run(&mut sys, &mut st, target, DecapChoice::Kernel).unwrap_err();
        assert!(e.to_string().contains("already use xvs BPF decap"), "{e}");
    }

    #[test]
    fn a_vip_that_was_there_stays() {
        let mut sys = Fake::new();
        sys.lo.insert(ip(VIP));
        let before = sys.clone();
        let mut st = State::default();
        let lines = setup(&mut sys, &mut st, VIP, dr());
        assert!(lines.contains(&format!("already on lo: {VIP}/32 (dr on eth0)")));
        assert!(st.vips[&ip(VIP)].preexisting);
        let lines = teardown(&mut sys, &mut st, VIP);
        assert!(lines.contains(&format!("kept {VIP} on lo: it was there before setup")));
        assert_eq!(sys, before);
    }

    #[test]
    fn changed_settings_are_pinned_and_original_values_restored() {
        let mut sys = Fake::new();
        sys.sysctls
            .insert("net.ipv4.conf.all.arp_ignore".into(), "1".into());
        let before = sys.clone();
        let mut st = State::default();
        let lines = setup(&mut sys, &mut st, VIP, dr());
        assert!(lines.contains(&"already net.ipv4.conf.all.arp_ignore = 1".to_string()));
        // Someone changes it meanwhile: setup puts it back, teardown restores the original.
        sys.sysctls
            .insert("net.ipv4.conf.all.arp_ignore".into(), "0".into());
        let lines = setup(&mut sys, &mut st, VIP, dr());
        assert_eq!(
            lines
                .iter()
                .filter(|l| !l.starts_with("already"))
                .collect::<Vec<_>>(),
            ["set net.ipv4.conf.all.arp_ignore = 1 (was 0)"]
        );
        teardown(&mut sys, &mut st, VIP);
        assert_eq!(sys, before);
    }

    #[test]
    fn moving_a_vip_to_another_interface() {
        let mut sys = Fake::new();
        let before = sys.clone();
        let mut st = State::default();
        setup(&mut sys, &mut st, VIP, ipip());
        let mut e = ipip();
        e.dev = "eth1".into();
        let lines = setup(&mut sys, &mut st, VIP, e);
        assert!(
            lines.contains(&"detached xvs decap from eth0".to_string()),
            "{lines:?}"
        );
        assert!(lines.contains(&format!("attached xvs decap to eth1 (vips {VIP})")));
        assert!(lines.contains(&"restored net.ipv4.conf.eth0.rp_filter = 2 (was 0)".to_string()));
        assert_eq!(sys.sysctls["net.ipv4.conf.eth1.rp_filter"], "0");
        teardown(&mut sys, &mut st, VIP);
        assert_eq!(sys, before);
    }

    #[test]
    fn warns_when_the_vip_is_on_another_interface() {
        let mut sys = Fake::new();
        sys.other.insert(ip(VIP), "eth0".into());
        let mut st = State::default();
        let lines = setup(&mut sys, &mut st, VIP, dr());
        assert!(lines
            .iter()
            .any(|l| l.starts_with("warning: ") && l.contains("eth0")));
    }
}
