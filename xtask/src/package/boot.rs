//! `cargo xtask package --check-boot`: the packages in a booted Debian 12
//! under systemd (`systemd-nspawn --boot` on a debootstrap'ed root in
//! `target/debian/nspawn/`), the way an operator uses them: install,
//! `systemctl enable --now xvsd xvs-rules`, add a service with xvsadm,
//! restart xvsd (the table is kept), upgrade (reinstall: xvsd restarted,
//! the table kept), power off (xvs-rules saves), boot again (the service
//! is restored and a client's requests reach the real server through the
//! VIP), purge (xvsd stopped, the data plane detached).
//!
//! The container has its own network namespace (`--private-network`),
//! and in it a client and a real server, each a network namespace of its
//! own behind a veth pair whose other end xvsd serves: no packet leaves
//! it. It
//! is not registered with machined (the build machines' init is not
//! systemd); commands run in it through `nsenter` into its init's
//! namespaces.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::{output, Debs};
use crate::{header, install_missing};

const PACKAGES: &[&str] = &["systemd-container", "debootstrap"];

/// Debian 12, with what booting and the checks need; libelf1 is xvs's
/// own dependency, there so that `dpkg -i` needs no network.
const DEBOOTSTRAP: &[&str] = &[
    "--variant=minbase",
    "--include=systemd,systemd-sysv,dbus,iproute2,libelf1",
    "bookworm",
];

/// The interfaces xvsd attaches to in the container, made at each boot
/// before xvsd starts by a unit of the test's own: the director's ends of
/// two veth pairs, the client's (`IFACE`, 203.0.113.254/24) and the real
/// server's (`IFACE_RS`, 198.51.100.254/24); the other ends are in the
/// namespaces `CLIENT_NS` (203.0.113.1, routed to the VIP through the
/// director, as the VIP is in none of the client's networks) and `RS_NS`
/// (198.51.100.11).
const IFACE: &str = "xvse2e0";
const PEER: &str = "xvse2e1";
const IFACE_RS: &str = "xvse2e2";
const PEER_RS: &str = "xvse2e3";
const CLIENT_NS: &str = "xvscli";
const RS_NS: &str = "xvsrs";

/// A bpffs for the pins, mounted by the same unit: nspawn's /sys is
/// read-only and has no /sys/fs/bpf, and a bpffs xvsd mounted itself would
/// live in its service's mount namespace and vanish with it, taking the
/// pins a restart adopts.
const BPFFS: &str = "/run/xvs-e2e-bpf";

/// The service the test adds (documentation addresses; traffic stays in
/// the container).
const VIP: &str = "192.0.2.10:80";
const RS: &str = "198.51.100.11:80";

pub(crate) fn run(debs: &Debs) -> Result<()> {
    let started = Instant::now();
    header("package --check-boot (systemd-nspawn --boot)");
    install_missing(PACKAGES)?;
    crate::run_cargo(&["build", "-p", "xvs-testbed", "--bin", "xvs-testsrv"])?;
    let dir = super::out_dir().join("nspawn");
    let base = base_root(&dir)?;
    let root = dir.join("root");
    remove(&root)?;
    output(Command::new("cp").arg("-a").arg(&base).arg(&root))?;
    prepare(&root, debs)?;

    let result = scenario(&root);
    if result.is_ok() {
        remove(&root)?;
    } else {
        println!(
            "the container's root is kept for a look: {}",
            root.display()
        );
    }
    result?;
    println!(
        "package --check-boot: all passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn scenario(root: &Path) -> Result<()> {
    let c = Container::boot(root)?;
    c.sh("dpkg -i /root/debs/xvs_*.deb /root/debs/xvs-ipvsadm_*.deb")?;
    // The operator's choice of interface, before enabling; the pins go to
    // the container's own bpffs (see `prepare`).
    c.sh(&format!(
        "echo 'XVSD_INTERFACES=\"--interfaces={IFACE},{IFACE_RS}\"' >> /etc/default/xvsd && \
         echo 'XVSD_OPTS=\"--pin-path={BPFFS}/xvs\"' >> /etc/default/xvsd && \
         echo 'XVSD_METRICS=\"--metrics-listen=127.0.0.1:9100\"' >> /etc/default/xvsd"
    ))?;
    c.sh("systemctl enable --now xvsd xvs-rules")?;
    c.sh("systemctl is-active xvsd xvs-rules")?;
    c.sh(&format!(
        "ipvsadm -A -t {VIP} -s wrr && ipvsadm -a -t {VIP} -r {RS} -m -w 3"
    ))?;
    let listed = c.sh("xvsadm -S -n")?;
    ensure!(listed.contains(VIP), "xvsadm -S -n: {listed}");
    c.sh("systemctl restart xvsd && systemctl is-active xvsd")?;
    let kept = c.sh("xvsadm -S -n")?;
    ensure!(
        kept == listed,
        "after a restart of xvsd: {kept}, was {listed}"
    );
    // Adopted: the state file outlived the stop (RuntimeDirectoryPreserve)
    // and the pins were this build's, so nothing was cleared.
    let journal = c.sh("journalctl -b -u xvsd --no-pager -o cat")?;
    ensure!(
        journal.contains("restored 1 service(s) from /run/xvs/xvsd.sock.state")
            && !journal.contains("clearing old pins"),
        "xvsd did not adopt its table across the restart:\n{journal}"
    );
    println!("boot 1: installed, enabled, service added, adopted across a restart");
    // An upgrade (here: the same version again) restarts xvsd, which
    // keeps its table.
    let main_pid = "systemctl show -p MainPID --value xvsd";
    let before = c.sh(main_pid)?;
    c.sh("dpkg -i /root/debs/xvs_*.deb && systemctl is-active xvsd")?;
    let after = c.sh(main_pid)?;
    ensure!(
        after != before,
        "the upgrade did not restart xvsd ({before})"
    );
    let kept = c.sh("xvsadm -S -n")?;
    ensure!(kept == listed, "after an upgrade: {kept}, was {listed}");
    println!("upgrade: xvsd restarted, table kept");
    // `service ipvsadm save`'s counterpart; the file is removed again so
    // that the shutdown's save is seen on its own.
    c.sh(&format!(
        "systemctl reload xvs-rules && grep -q -- '-A -t {VIP}' /etc/ipvsadm.rules && \
         rm /etc/ipvsadm.rules"
    ))?;
    println!("systemctl reload xvs-rules: saved");
    c.poweroff()?;
    let saved = std::fs::read_to_string(root.join("etc/ipvsadm.rules"))
        .context("xvs-rules saved no /etc/ipvsadm.rules at shutdown")?;
    ensure!(saved.contains(VIP), "saved rules: {saved}");
    println!("shutdown: xvs-rules saved /etc/ipvsadm.rules");

    let c = Container::boot(root)?;
    c.sh("systemctl is-active xvsd xvs-rules")?;
    let restored = c.sh("xvsadm -S -n")?;
    ensure!(
        restored == listed,
        "after a reboot: {restored}, was {listed}"
    );
    let journal = c.sh("journalctl -b -u xvsd -u xvs-rules --no-pager -o cat")?;
    ensure!(
        journal.contains("told systemd: READY=1")
            && journal.contains("xvs-rules: restored 1 service(s) from /etc/ipvsadm.rules"),
        "journal:\n{journal}"
    );
    println!("boot 2: xvsd ready (sd_notify), the service restored by xvs-rules");
    // The restored service serves: HTTP from the client's namespace
    // through the VIP to the real server's, NAT both ways.
    c.sh(&format!(
        "systemd-run --unit=xvs-e2e-rs ip netns exec {RS_NS} /usr/local/bin/xvs-testsrv http \
         --listen 0.0.0.0:80 --name rs1 && \
         for i in $(seq 1 25); do \
           ip netns exec {RS_NS} ss -ltn | grep -q ':80 ' && break; sleep 0.2; done"
    ))?;
    let get = |url: &str| {
        c.sh_status(&format!(
            "ip netns exec {CLIENT_NS} /usr/local/bin/xvs-testsrv get {url} --count 5 \
             --new-conn --timeout-ms 3000"
        ))
    };
    let (_, got) = get(&format!("http://{VIP}/"))?;
    if got.lines().filter(|l| l.trim() == "rs1").count() != 5 {
        // Which part fails: the server, routing without xvs, or xvs.
        let (_, direct) = get("http://198.51.100.11/")?;
        let (_, diag) = c.sh_status(&format!(
            "ip netns exec {RS_NS} ss -ltn; ip -n {CLIENT_NS} addr; ip -n {CLIENT_NS} route; \
             ip addr; ip route; cat /proc/sys/net/ipv4/ip_forward; xvsadm -Ln --stats; \
             tc filter show dev {IFACE} ingress; journalctl -b -u xvsd -n 20 --no-pager; \
             bash -c 'exec 3<>/dev/tcp/127.0.0.1/9100; \
               printf \"GET /metrics HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3' | \
               grep -E '^xvs_dataplane_packets_total' | grep -v ' 0$'"
        ))?;
        bail!(
            "requests through the restored VIP: {got}\nstraight to the real server: \
             {direct}\n{diag}"
        );
    }
    let stats = c.sh(&format!("xvsadm -Ln --stats -t {VIP}"))?;
    println!("boot 2: 5 requests through {VIP} answered by {RS}\n{stats}");
    // The unit's sandbox costs no kernel feature: what xvsd found missing
    // under it, plain root in the container misses too.
    let plain = c.sh("xvsd --features 2>/dev/null")?;
    for line in journal.lines().filter(|l| l.contains("unavailable (")) {
        let name = line
            .split("kernel feature ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or(line);
        ensure!(
            plain
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()[..].starts_with(&[name, "no"])),
            "under xvsd.service the kernel feature {name} is missing, as root it is not:\n{plain}"
        );
    }
    println!("xvsd.service: no kernel feature lost to the sandbox");
    // For information: systemd's own rating of the unit's hardening.
    let (_, security) = c.sh_status("systemd-analyze security xvsd.service --no-pager")?;
    if let Some(line) = security.lines().last() {
        println!("systemd-analyze security: {line}");
    }
    let attached = c.sh(&format!(
        "ip link show {IFACE}; tc filter show dev {IFACE} ingress"
    ))?;
    ensure!(
        attached.contains("xdp") || attached.contains("bpf"),
        "the data plane is not on {IFACE}: {attached}"
    );
    c.sh("dpkg --purge xvs-ipvsadm xvs")?;
    // `ip link` names an XDP program (xdp, xdpgeneric); tc lists a bpf
    // filter.
    let left = c.sh(&format!(
        "ip link show {IFACE}; tc filter show dev {IFACE} ingress"
    ))?;
    ensure!(
        !left.contains("xdp") && !left.contains("bpf"),
        "purge left the data plane: {left}"
    );
    c.sh("test ! -e /run/xvs && ! systemctl is-active xvsd")?;
    println!("purge: stopped, data plane detached, /run/xvs removed");
    c.poweroff()
}

/// The cached debootstrap'ed root, made on first use.
fn base_root(dir: &Path) -> Result<PathBuf> {
    let base = dir.join("base");
    if base.join("usr/lib/systemd/systemd").exists() {
        return Ok(base);
    }
    let tmp = dir.join("base.tmp");
    remove(&tmp)?;
    std::fs::create_dir_all(dir)?;
    println!("$ debootstrap {} {}", DEBOOTSTRAP.join(" "), tmp.display());
    let status = Command::new("debootstrap")
        .args(DEBOOTSTRAP)
        .arg(&tmp)
        .arg("http://deb.debian.org/debian")
        .stdin(Stdio::null())
        .status()
        .context("running debootstrap")?;
    ensure!(status.success(), "debootstrap failed ({status})");
    std::fs::rename(&tmp, &base)?;
    Ok(base)
}

/// The test's additions to a fresh root: the packages and the dummy
/// interface's unit.
fn prepare(root: &Path, debs: &Debs) -> Result<()> {
    // The test's client and server (not part of the packages).
    let bin = root.join("usr/local/bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy(
        crate::workspace_root().join("target/debug/xvs-testsrv"),
        bin.join("xvs-testsrv"),
    )
    .context("xvs-testsrv (cargo build -p xvs-testbed) into the container")?;
    let debdir = root.join("root/debs");
    std::fs::create_dir_all(&debdir)?;
    for d in [&debs.xvs, &debs.ipvsadm] {
        let name = d.file_name().context("a .deb name")?;
        std::fs::copy(d, debdir.join(name))?;
    }
    let unit = root.join("etc/systemd/system/xvs-e2e-link.service");
    std::fs::write(
        &unit,
        format!(
            "[Unit]\nDescription=xvs package test: xvsd's interface and bpffs\n\
             Before=xvsd.service\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\n\
             ExecStart=/sbin/ip netns add {CLIENT_NS}\n\
             ExecStart=/sbin/ip netns add {RS_NS}\n\
             ExecStart=/sbin/ip link add {IFACE} type veth peer name {PEER} netns {CLIENT_NS}\n\
             ExecStart=/sbin/ip link add {IFACE_RS} type veth peer name {PEER_RS} netns {RS_NS}\n\
             ExecStart=/sbin/ip addr add 203.0.113.254/24 dev {IFACE}\n\
             ExecStart=/sbin/ip addr add 198.51.100.254/24 dev {IFACE_RS}\n\
             ExecStart=/sbin/ip link set {IFACE} up\n\
             ExecStart=/sbin/ip link set {IFACE_RS} up\n\
             ExecStart=/sbin/ip -n {CLIENT_NS} addr add 203.0.113.1/24 dev {PEER}\n\
             ExecStart=/sbin/ip -n {CLIENT_NS} link set {PEER} up\n\
             ExecStart=/sbin/ip -n {CLIENT_NS} route add default via 203.0.113.254\n\
             ExecStart=/sbin/ip -n {RS_NS} addr add 198.51.100.11/24 dev {PEER_RS}\n\
             ExecStart=/sbin/ip -n {RS_NS} link set lo up\n\
             ExecStart=/sbin/ip -n {RS_NS} link set {PEER_RS} up\n\
             ExecStart=/sbin/ip -n {RS_NS} route add default via 198.51.100.254\n\
             ExecStart=/bin/sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'\n\
             ExecStart=/bin/mkdir -p {BPFFS}\n\
             ExecStart=/bin/mount -t bpf bpf {BPFFS}\n\n\
             [Install]\nWantedBy=multi-user.target\n"
        ),
    )?;
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    std::fs::create_dir_all(&wants)?;
    let link = wants.join("xvs-e2e-link.service");
    if !link.exists() {
        std::os::unix::fs::symlink("/etc/systemd/system/xvs-e2e-link.service", link)?;
    }
    Ok(())
}

/// A booted container: `systemd-nspawn --boot` and its init's pid.
struct Container {
    nspawn: std::cell::RefCell<Child>,
    init: u32,
}

impl Container {
    fn boot(root: &Path) -> Result<Container> {
        let mut cmd = Command::new("systemd-nspawn");
        cmd.arg("--boot")
            .arg("--directory")
            .arg(root)
            .args([
                "--register=no",
                // No scope unit either: the host's init need not be systemd.
                "--keep-unit",
                "--private-network",
                "--capability=all",
                "--quiet",
                "--console=passive",
                "--machine=xvs-pkg-e2e",
            ])
            // nspawn's seccomp filter refuses bpf(2) whatever the
            // capabilities.
            .env("SYSTEMD_SECCOMP", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let child = cmd.spawn().context("starting systemd-nspawn")?;
        let nspawn_pid = child.id();
        let mut c = Container {
            nspawn: std::cell::RefCell::new(child),
            init: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while c.init == 0 {
            ensure!(Instant::now() < deadline, "the container did not start");
            if let Some(status) = c.nspawn.borrow_mut().try_wait()? {
                bail!("systemd-nspawn exited ({status})");
            }
            c.init = find_init(nspawn_pid).unwrap_or(0);
            std::thread::sleep(Duration::from_millis(200));
        }
        // "degraded" (a unit of the minimal system failed) is fine here;
        // the units under test are checked one by one. Until the init
        // has its private bus socket, systemctl cannot even ask: retried.
        loop {
            let (_, state) = c.sh_status("timeout 90 systemctl is-system-running --wait")?;
            let state = state.trim();
            if !state.contains("Failed to connect to bus") {
                println!("container booted ({state})");
                return Ok(c);
            }
            ensure!(
                Instant::now() < deadline,
                "the container's systemd: {state}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `script` with `sh -c` in the container; its stdout, or an
    /// error with everything it printed.
    fn sh(&self, script: &str) -> Result<String> {
        let (ok, out) = self.sh_status(script)?;
        if !ok {
            // What the units said is the useful part of a failure.
            let (_, journal) =
                self.sh_status("journalctl -b -n 40 -o short-monotonic --no-pager")?;
            bail!("in the container, `{script}` failed:\n{out}\njournal:\n{journal}");
        }
        Ok(out)
    }

    fn sh_status(&self, script: &str) -> Result<(bool, String)> {
        println!("[container] $ {script}");
        let out = Command::new("nsenter")
            .arg("--target")
            .arg(self.init.to_string())
            .args([
                "--mount", "--uts", "--ipc", "--net", "--pid", "--root", "--wd",
            ])
            .args(["/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
            .args(["/bin/sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .context("running nsenter")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.success(), text.trim_end().to_string()))
    }

    /// `systemctl poweroff` and wait for nspawn to exit.
    fn poweroff(self) -> Result<()> {
        let _ = self.sh_status("systemctl poweroff");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = self.nspawn.borrow_mut().try_wait()? {
                ensure!(status.success(), "systemd-nspawn exited with {status}");
                return Ok(());
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("the container did not power off")
    }
}

impl Drop for Container {
    /// A container left running by a failed check is killed, so nothing
    /// outlives the test: its init first (by pid; the kernel then kills
    /// every process of its pid namespace, which a killed nspawn alone
    /// would leave running), then nspawn if it does not exit by itself.
    fn drop(&mut self) {
        let mut child = self.nspawn.borrow_mut();
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        if self.init != 0 {
            let _ = Command::new("kill")
                .args(["-KILL", &self.init.to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The container's init: the descendant of `nspawn` that runs
/// systemd in another pid namespace.
fn find_init(nspawn: u32) -> Option<u32> {
    let mut frontier = vec![nspawn];
    for _ in 0..3 {
        let mut next = Vec::new();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            if ppid.is_some_and(|p| frontier.contains(&p)) {
                if head.ends_with("(systemd") {
                    return Some(pid);
                }
                next.push(pid);
            }
        }
        frontier = next;
    }
    None
}

fn remove(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}
