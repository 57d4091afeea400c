//! Moving the host to what a set of VIPs needs, step by step.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{choose_mechanism, describe, desired, Desired, SysctlKey, System, TUNL0};
use crate::cli::{DecapChoice, Mode, TunType};
use crate::state::{Mechanism, State, VipEntry};
use crate::Error;

/// The prefix length of one host of `vip`'s family (/32, /128).
fn host_len(vip: IpAddr) -> u8 {
    if vip.is_ipv6() {
        128
    } else {
        32
    }
}

/// VIPs and what each is set up for.
type Vips = BTreeMap<IpAddr, VipEntry>;

/// Moves the host from what `state` records to what `target` (the VIPs
/// that should remain or become set up) needs. `save` is called with the
/// state once the originals are recorded, before the first change. Every
/// change, and every `already ...`, is reported through `out`. `state` is
/// updated as changes are made, also when an error cuts the run short.
pub fn apply(
    sys: &mut dyn System,
    state: &mut State,
    mut target: Vips,
    choice: DecapChoice,
    save: &mut dyn FnMut(&State) -> Result<(), Error>,
    out: &mut dyn FnMut(String),
) -> Result<(), Error> {
    let old = state.vips.clone();
    let mech = tunnel_mechanism(sys, state, &target, choice, out)?;

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
    let mut host = Changes { sys, out };
    host.add_endpoints(state, &want)?;
    host.add_vips(&old, &target)?;
    host.set_sysctls(state, &want)?;
    host.remove_vips(&old, &target)?;
    host.remove_endpoints(state, &want)?;
    if mech.is_none() {
        state.tunnel = None;
    }
    Ok(())
}

/// The tunnel mechanism: chosen at the first tun VIP, kept while any is left.
fn tunnel_mechanism(
    sys: &mut dyn System,
    state: &mut State,
    target: &Vips,
    choice: DecapChoice,
    out: &mut dyn FnMut(String),
) -> Result<Option<Mechanism>, Error> {
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
    Ok(if tun_entries.is_empty() {
        None
    } else {
        state.tunnel
    })
}

/// The host being changed, and where every change is reported.
struct Changes<'a> {
    sys: &'a mut dyn System,
    out: &'a mut dyn FnMut(String),
}

impl Changes<'_> {
    /// 1. Tunnel endpoints: ipip and tunl0, fou ports, the XDP decapsulator.
    fn add_endpoints(&mut self, state: &mut State, want: &Desired) -> Result<(), Error> {
        let Changes { sys, out } = self;
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
        Ok(())
    }

    /// 2. VIPs on lo.
    fn add_vips(&mut self, old: &Vips, target: &Vips) -> Result<(), Error> {
        let Changes { sys, out } = self;
        for (vip, e) in target {
            if sys.lo_has(*vip)? {
                out(format!(
                    "already on lo: {vip}/{} ({})",
                    host_len(*vip),
                    describe(e)
                ));
            } else {
                sys.lo_add(*vip)?;
                out(format!(
                    "added {vip}/{} to lo ({})",
                    host_len(*vip),
                    describe(e)
                ));
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
        Ok(())
    }

    /// 3. Sysctls: set what is wanted, restore what is no longer needed.
    fn set_sysctls(&mut self, state: &mut State, want: &Desired) -> Result<(), Error> {
        let Changes { sys, out } = self;
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
        Ok(())
    }

    /// 4. VIPs no longer needed.
    fn remove_vips(&mut self, old: &Vips, target: &Vips) -> Result<(), Error> {
        let Changes { sys, out } = self;
        for (vip, e) in old {
            if target.contains_key(vip) {
                continue;
            }
            if e.preexisting {
                out(format!("kept {vip} on lo: it was there before setup"));
            } else if sys.lo_has(*vip)? {
                sys.lo_del(*vip)?;
                out(format!("removed {vip}/{} from lo", host_len(*vip)));
            } else {
                out(format!("already gone from lo: {vip}"));
            }
        }
        Ok(())
    }

    /// 5. Tunnel endpoints no longer needed.
    fn remove_endpoints(&mut self, state: &mut State, want: &Desired) -> Result<(), Error> {
        let Changes { sys, out } = self;
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
        Ok(())
    }
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
