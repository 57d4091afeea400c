//! Root tests: `xvs-realserver setup` then `teardown` on a real server of a
//! fresh testbed leaves it exactly as it was (addresses, sysctls, XDP), and
//! a second setup changes nothing. Uses the default state directory, which
//! teardown must remove again.

use std::collections::BTreeMap;

use xvs_testbed::{Node, Testbed, VIP};

const RS: Node = Node::Rs(1);
const VIP2: &str = "198.51.100.20";

fn rs_bin() -> String {
    // The kernel matrix runs a snapshot of the binaries (XVS_BIN_DIR).
    match std::env::var("XVS_BIN_DIR") {
        Ok(d) => format!("{d}/xvs-realserver"),
        Err(_) => env!("CARGO_BIN_EXE_xvs-realserver").to_string(),
    }
}

/// Runs xvs-realserver in the real server; its stdout lines.
fn realserver(tb: &Testbed, args: &[&str]) -> Vec<String> {
    let bin = rs_bin();
    let mut argv = vec![bin.as_str()];
    argv.extend_from_slice(args);
    let out = tb.exec(RS, &argv).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "xvs-realserver {args:?}: {}\nstdout:\n{stdout}stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}

/// Everything xvs-realserver may touch, as the real server sees it.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    addrs: String,
    sysctls: BTreeMap<String, String>,
    decap_on_eth0: bool,
    qdiscs: String,
    links: String,
}

fn snapshot(tb: &Testbed) -> Snapshot {
    let addrs = tb.exec_ok(RS, &["ip", "-4", "-o", "addr", "show"]).unwrap();
    let mut sysctls = BTreeMap::new();
    for dev in ["all", "default", "lo", "eth0"] {
        for name in ["arp_ignore", "arp_announce", "rp_filter"] {
            let path = format!("/proc/sys/net/ipv4/conf/{dev}/{name}");
            let v = tb.exec_ok(RS, &["cat", &path]).unwrap();
            sysctls.insert(format!("{dev}.{name}"), v.trim().to_string());
        }
    }
    let eth0 = tb
        .exec_ok(RS, &["ip", "-d", "link", "show", "dev", "eth0"])
        .unwrap();
    let links = tb.exec_ok(RS, &["ip", "-o", "link", "show"]).unwrap();
    Snapshot {
        addrs,
        sysctls,
        // XDP on a NIC, a tc filter on this veth (xvs_decap picks tc on
        // virtual devices); the qdiscs must come back as they were too.
        decap_on_eth0: eth0.contains("xdp")
            || tb
                .exec_ok(RS, &["tc", "filter", "show", "dev", "eth0", "ingress"])
                .unwrap()
                .contains("xvs_decap"),
        qdiscs: tb
            .exec_ok(RS, &["tc", "qdisc", "show", "dev", "eth0"])
            .unwrap(),
        links: links
            .lines()
            .map(|l| l.split("link/").next().unwrap_or(l).to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// A testbed (dropped last) and real server 1's state directory, removed
/// on drop in case a failing test left it behind.
struct Bed {
    state_dir: std::path::PathBuf,
    tb: Testbed,
}

impl std::ops::Deref for Bed {
    type Target = Testbed;
    fn deref(&self) -> &Testbed {
        &self.tb
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// A testbed whose real server 1 starts from non-default values, so that
/// restoring them is visible.
fn testbed() -> Bed {
    let tb = Testbed::dr().unwrap();
    tb.exec_ok(
        RS,
        &[
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.conf.all.rp_filter=2",
            "net.ipv4.conf.eth0.arp_announce=1",
            "net.ipv4.conf.eth0.rp_filter=1",
        ],
    )
    .unwrap();
    let file = status_path(&tb);
    let state_dir = std::path::Path::new(&file).parent().unwrap().to_path_buf();
    assert!(state_dir.starts_with("/run/xvs-realserver/"), "{file}");
    Bed { state_dir, tb }
}

/// The state file `status` names.
fn status_path(tb: &Testbed) -> String {
    let lines = realserver(tb, &["status"]);
    lines
        .iter()
        .find_map(|l| l.strip_prefix("state: "))
        .map(|p| p.trim_end_matches(" (none)").to_string())
        .unwrap_or_else(|| panic!("no state line in {lines:?}"))
}

/// The state file, if there is one.
fn state_path(tb: &Testbed) -> Option<String> {
    let p = status_path(tb);
    std::path::Path::new(&p).exists().then_some(p)
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn dr_setup_is_idempotent_and_teardown_restores_everything() {
    let tb = testbed();
    let before = snapshot(&tb);
    assert_eq!(state_path(&tb), None);

    let lines = realserver(&tb, &["setup", "--vip", VIP, "--mode", "dr"]);
    assert!(
        lines.contains(&format!("added {VIP}/32 to lo (dr on eth0)")),
        "{lines:?}"
    );
    assert!(lines.contains(&"set net.ipv4.conf.eth0.arp_announce = 2 (was 1)".to_string()));
    let during = snapshot(&tb);
    assert!(
        during.addrs.contains(&format!("lo    inet {VIP}/32")),
        "{}",
        during.addrs
    );
    assert_eq!(during.sysctls["all.arp_ignore"], "1");
    assert_eq!(during.sysctls["all.arp_announce"], "2");
    assert_eq!(during.sysctls["eth0.arp_ignore"], "1");
    assert_eq!(during.sysctls["eth0.arp_announce"], "2");
    assert_eq!(during.sysctls["all.rp_filter"], "2", "dr keeps rp_filter");
    assert!(!during.decap_on_eth0);
    let state = state_path(&tb).expect("a state file after setup");

    // A second setup is a no-op.
    let again = realserver(&tb, &["setup", "--vip", VIP, "--mode", "dr"]);
    assert!(again.iter().all(|l| l.starts_with("already")), "{again:?}");
    assert_eq!(snapshot(&tb), during);

    let status = realserver(&tb, &["status", "--vip", VIP]).join("\n");
    assert!(
        status.contains(&format!("{VIP}: dr on eth0; on lo: yes")),
        "{status}"
    );
    assert!(
        status.contains("net.ipv4.conf.eth0.arp_announce = 2 (original 1)"),
        "{status}"
    );

    let lines = realserver(&tb, &["teardown", "--vip", VIP, "--mode", "dr"]);
    assert!(
        lines.contains(&format!("removed {VIP}/32 from lo")),
        "{lines:?}"
    );
    assert_eq!(snapshot(&tb), before);
    assert_eq!(state_path(&tb), None);
    assert!(
        !tb.exec(RS, &["test", "-e", &state])
            .unwrap()
            .status
            .success(),
        "{state} left behind"
    );
    let again = realserver(&tb, &["teardown", "--vip", VIP]);
    assert!(again.iter().all(|l| l.starts_with("already")), "{again:?}");
    close(tb);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_vip_that_was_already_there_survives_teardown() {
    let tb = testbed();
    tb.exec_ok(
        RS,
        &["ip", "addr", "add", &format!("{VIP}/32"), "dev", "lo"],
    )
    .unwrap();
    let before = snapshot(&tb);
    let lines = realserver(&tb, &["setup", "--vip", VIP, "--mode", "dr"]);
    assert!(
        lines.iter().any(|l| l.starts_with("already on lo")),
        "{lines:?}"
    );
    let lines = realserver(&tb, &["teardown", "--all"]);
    assert!(
        lines.contains(&format!("kept {VIP} on lo: it was there before setup")),
        "{lines:?}"
    );
    assert_eq!(snapshot(&tb), before);
    close(tb);
}

/// Tunnelling with the kernel's decapsulation, where the kernel has the
/// ipip and fou modules (the VM tier: Debian's kernels): tunl0 up and a
/// fou GUE port, each put back by teardown as it was.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn tun_with_the_kernels_ipip_and_fou() {
    let tb = testbed();
    if tb.exec_ok(RS, &["modprobe", "ipip"]).is_err()
        || tb.exec_ok(RS, &["modprobe", "fou"]).is_err()
    {
        eprintln!("skipped: no ipip/fou modules in this kernel");
        close(tb);
        return;
    }
    let before = snapshot(&tb);
    let fou = |tb: &Testbed| tb.exec_ok(RS, &["ip", "fou", "show"]).unwrap();
    assert_eq!(fou(&tb).trim(), "");
    let gue_setup = [
        "setup",
        "--vip",
        VIP,
        "--mode",
        "tun",
        "--tun-type",
        "gue",
        "--tun-port",
        "6080",
        "--decap",
        "kernel",
    ];
    let lines = realserver(&tb, &gue_setup);
    assert!(lines.contains(&"set tunl0 up".to_string()), "{lines:?}");
    assert!(
        lines.contains(&"added ip fou port 6080 gue".to_string()),
        "{lines:?}"
    );
    assert!(fou(&tb).contains("port 6080"), "{}", fou(&tb));
    let tunl0 = tb
        .exec_ok(RS, &["ip", "-o", "link", "show", "tunl0"])
        .unwrap();
    assert!(tunl0.contains(",UP"), "{tunl0}");
    let again = realserver(&tb, &gue_setup);
    assert!(again.iter().all(|l| l.starts_with("already")), "{again:?}");
    let lines = realserver(&tb, &["teardown", "--vip", VIP]);
    assert!(
        lines.contains(&"removed ip fou port 6080".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"set tunl0 down (as it was)".to_string()),
        "{lines:?}"
    );
    assert_eq!(fou(&tb).trim(), "");
    // tunl0 itself stays (the module does): only its state is restored.
    let after = snapshot(&tb);
    assert_eq!(after.addrs, before.addrs);
    assert_eq!(after.sysctls, before.sysctls);
    assert_eq!(state_path(&tb), None);
    close(tb);
}

/// Tunnelling on this kernel (no ipip module): xvs's BPF decap program on
/// eth0, reloaded with the remaining VIPs when one is torn down.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn tun_with_xdp_decap_and_two_vips() {
    let tb = testbed();
    let before = snapshot(&tb);
    assert!(!before.decap_on_eth0);

    let lines = realserver(
        &tb,
        &["setup", "--vip", VIP, "--mode", "tun", "--decap", "xdp"],
    );
    assert!(
        lines.contains(&"decapsulation: xvs BPF decap".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!("attached xvs decap to eth0 (vips {VIP})")),
        "{lines:?}"
    );
    let one = snapshot(&tb);
    assert!(
        one.decap_on_eth0,
        "no decap program on eth0 after tun setup"
    );
    assert_eq!(one.sysctls["all.rp_filter"], "0");
    assert_eq!(one.sysctls["eth0.rp_filter"], "0");
    let again = realserver(&tb, &["setup", "--vip", VIP, "--mode", "tun"]);
    assert!(again.iter().all(|l| l.starts_with("already")), "{again:?}");
    assert_eq!(snapshot(&tb), one);

    let lines = realserver(
        &tb,
        &[
            "setup",
            "--vip",
            VIP2,
            "--mode",
            "tun",
            "--tun-type",
            "gue",
            "--tun-port",
            "6080",
        ],
    );
    assert!(
        lines.contains(&format!(
            "attached xvs decap to eth0 (vips {VIP},{VIP2}; gue ports 6080)"
        )),
        "{lines:?}"
    );
    let lines = realserver(&tb, &["teardown", "--vip", VIP2]);
    assert!(
        lines.contains(&format!("attached xvs decap to eth0 (vips {VIP})")),
        "{lines:?}"
    );
    assert_eq!(snapshot(&tb), one, "the first VIP keeps what it needs");

    let lines = realserver(&tb, &["teardown", "--vip", VIP]);
    assert!(
        lines.contains(&"detached xvs decap from eth0".to_string()),
        "{lines:?}"
    );
    assert_eq!(snapshot(&tb), before);
    assert_eq!(state_path(&tb), None);
    close(tb);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn errors_change_nothing() {
    let tb = testbed();
    let mut before = snapshot(&tb);
    let out = tb
        .exec(
            RS,
            &[
                &rs_bin(),
                "setup",
                "--vip",
                VIP,
                "--mode",
                "dr",
                "--dev",
                "eth9",
            ],
        )
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such interface: eth9"));
    let out = tb
        .exec(
            RS,
            &[
                &rs_bin(),
                "setup",
                "--vip",
                VIP,
                "--mode",
                "tun",
                "--decap",
                "kernel",
            ],
        )
        .unwrap();
    if !std::path::Path::new("/sys/module/ipip").exists() {
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no ipip module"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(snapshot(&tb), before);
    } else {
        realserver(&tb, &["teardown", "--all"]);
        // Loading ipip gives every namespace a tunl0, which stays with the
        // module (documented): it is no leftover of the setup.
        before = snapshot(&tb);
    }
    let out = tb.exec(RS, &[&rs_bin(), "setup", "--vip", VIP]).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(snapshot(&tb), before);
    assert_eq!(state_path(&tb), None);
    close(tb);
}

/// Teardown removed the state directory; then the testbed goes.
fn close(bed: Bed) {
    assert!(
        !bed.state_dir.exists(),
        "{} left behind",
        bed.state_dir.display()
    );
    drop(bed);
}
