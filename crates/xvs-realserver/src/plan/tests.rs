//! Unit tests of the reconciliation, on the in-memory host.

use super::fake::Fake;
use super::*;
use crate::state::State;

const VIP: &str = "198.51.100.10";
const VIP2: &str = "198.51.100.20";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Runs `apply` the way `lib::run` does; returns the printed lines.
fn run(
    sys: &mut Fake,
    st: &mut State,
    target: BTreeMap<IpAddr, VipEntry>,
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
            vips: vec![VIP2.parse().unwrap()],
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

#[test]
fn an_ipv6_dr_vip_goes_on_lo_without_sysctls() {
    const VIP6: &str = "2001:db8::10";
    let mut vips = BTreeMap::new();
    vips.insert(ip(VIP6), dr());
    let d = desired(&vips, None);
    assert_eq!(d.vips, BTreeSet::from([ip(VIP6)]));
    assert!(d.sysctls.is_empty(), "{:?}", d.sysctls);
    // beside an IPv4 VIP, the ARP sysctls are the IPv4 VIP's
    vips.insert(ip(VIP), dr());
    let d = desired(&vips, None);
    assert_eq!(d.vips.len(), 2);
    assert_eq!(d.sysctls.len(), 4);

    let mut sys = Fake::new();
    let sysctls = sys.sysctls.clone();
    let mut st = State::default();
    let lines = setup(&mut sys, &mut st, VIP6, dr());
    assert!(sys.lo.contains(&ip(VIP6)), "{lines:?}");
    assert_eq!(sys.sysctls, sysctls, "no sysctl changes for IPv6");
    assert!(all_already(&setup(&mut sys, &mut st, VIP6, dr())));
    teardown(&mut sys, &mut st, VIP6);
    assert!(!sys.lo.contains(&ip(VIP6)));
}
