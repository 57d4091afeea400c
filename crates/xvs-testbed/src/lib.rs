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

pub mod harness;
pub mod oracle;
pub mod selftest;
pub mod testsrv;
pub mod vrrp;

pub use vrrp::{
    Keepalived, DR_DIRECTOR2_IP, NAT_DIRECTOR2_EXT_IP, NAT_DIRECTOR2_INT_IP, NAT_GATEWAY_IP,
};

use std::ffi::CString;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

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

// -------------------------------------------------------------------- errors

/// Errors of the testbed.
#[derive(Debug)]
pub enum Error {
    /// The testbed needs root (namespaces, bpffs, XDP).
    NotRoot,
    /// A system call or file operation failed.
    Io { what: String, source: io::Error },
    /// A command exited unsuccessfully.
    Command {
        cmd: String,
        status: Option<i32>,
        stderr: String,
    },
    /// A workspace binary is missing.
    MissingBinary {
        name: String,
        searched: Vec<PathBuf>,
    },
    /// Something did not happen in time.
    Timeout { what: String, detail: String },
    /// Anything else.
    Other(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotRoot => write!(
                f,
                "the xvs testbed needs root (network namespaces, bpffs, XDP)"
            ),
            Error::Io { what, source } => write!(f, "{what}: {source}"),
            Error::Command {
                cmd,
                status,
                stderr,
            } => {
                match status {
                    Some(c) => write!(f, "`{cmd}` exited with status {c}")?,
                    None => write!(f, "`{cmd}` was killed by a signal")?,
                }
                let stderr = stderr.trim();
                if !stderr.is_empty() {
                    write!(f, ": {stderr}")?;
                }
                Ok(())
            }
            Error::MissingBinary { name, searched } => write!(
                f,
                "binary `{name}` not found in {}; run `cargo build --workspace --bins` first",
                searched
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Error::Timeout { what, detail } => {
                write!(f, "timed out waiting for {what}")?;
                if !detail.trim().is_empty() {
                    write!(f, "\n{}", detail.trim_end())?;
                }
                Ok(())
            }
            Error::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

// ------------------------------------------------------------------- helpers

/// Whether the effective user is root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Locate a workspace binary (`xvsd`, `xvsadm`, `xvs-testsrv`, …) in the
/// target directory of the running executable: `current_exe()`'s directory
/// (for `target/debug/xtask`) or its parent (for `target/debug/deps/test-…`).
/// `XVS_BIN_DIR` overrides the search.
pub fn bin(name: &str) -> Result<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("XVS_BIN_DIR") {
        dirs.push(PathBuf::from(d));
    } else if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            dirs.push(dir.to_path_buf());
            if dir.file_name().is_some_and(|n| n == "deps") {
                if let Some(up) = dir.parent() {
                    dirs.insert(0, up.to_path_buf());
                }
            }
        }
    }
    for d in &dirs {
        let p = d.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::MissingBinary {
        name: name.to_string(),
        searched: dirs,
    })
}

fn render(argv: &[&str]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run a command in the root namespace; error unless it succeeds.
fn run(argv: &[&str]) -> Result<Output> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(io_err(format!("run `{}`", render(argv))))?;
    check(argv, out)
}

fn check(argv: &[&str], out: Output) -> Result<Output> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::Command {
            cmd: render(argv),
            status: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a process with this PID exists (PIDs <= 1 count as alive).
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 1 {
        return true; // never treat init/groups as dead
    }
    // SAFETY: kill with signal 0 only checks for existence.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether `path` is a mount point in this process's mount namespace.
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| mp == want)
}

fn umount(path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn mount_bpffs(path: &Path) -> io::Result<()> {
    let target = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let src = CString::new("bpf").expect("no NUL");
    // SAFETY: all pointers are valid NUL-terminated strings; data is null.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            src.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Load the two-instruction program `return XDP_PASS;` and pin it at `path`
/// (on a bpffs), with the bpf(2) system call itself: no compiler needed.
fn pin_xdp_pass(path: &Path) -> io::Result<()> {
    pin_xdp_action(path, XDP_PASS, b"xvs_tb_pass")
}

/// `XDP_DROP`: the verdict of [`Testbed::xdp_action`]'s drop program.
pub const XDP_DROP: u32 = 1;
/// `XDP_PASS`.
pub const XDP_PASS: u32 = 2;
/// `XDP_TX`: bounce the frame back out of the interface it came in on.
pub const XDP_TX: u32 = 3;

/// Load the two-instruction program `return <action>;` (named `name`, at
/// most 15 bytes) and pin it at `path`.
fn pin_xdp_action(path: &Path, action: u32, name: &[u8]) -> io::Result<()> {
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_OBJ_PIN: libc::c_long = 6;
    const BPF_PROG_TYPE_XDP: u32 = 6;
    // r0 = action; exit.
    let a = action.to_le_bytes();
    let insns: [u8; 16] = [
        0xb7, 0, 0, 0, a[0], a[1], a[2], a[3], 0x95, 0, 0, 0, 0, 0, 0, 0,
    ];
    let license = b"GPL\0";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_XDP.to_ne_bytes());
    attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    let name = &name[..name.len().min(15)];
    attr[48..48 + name.len()].copy_from_slice(name);
    // SAFETY: attr is a valid union bpf_attr prefix for BPF_PROG_LOAD whose
    // pointers (insns, license) outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            attr.as_mut_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut attr = [0u8; 128];
    attr[0..8].copy_from_slice(&(cpath.as_ptr() as u64).to_ne_bytes());
    attr[8..12].copy_from_slice(&(fd as u32).to_ne_bytes());
    // SAFETY: attr is a valid BPF_OBJ_PIN attr; cpath outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_PIN,
            attr.as_mut_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    let err = io::Error::last_os_error();
    // SAFETY: fd is the program fd returned above; the pin keeps it alive.
    unsafe { libc::close(fd as libc::c_int) };
    if r < 0 {
        return Err(err);
    }
    Ok(())
}

fn netns_list() -> Vec<String> {
    // /run/netns is what `ip netns` manages.
    let Ok(rd) = fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Names of the network namespaces whose name starts with `prefix`.
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    netns_list()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// The owner PID encoded in a testbed name `xvs<pid-hex>t<n>[-role]`.
pub fn owner_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix("xvs")?;
    let (hex, tail) = rest.split_once('t')?;
    let n = tail.split('-').next()?;
    if hex.is_empty() || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    i32::from_str_radix(hex, 16).ok()
}

/// Remove leftovers of crashed runs: network namespaces and `/run/xvs-test`
/// directories whose name starts with `prefix` (normally `"xvs"`) and has the
/// shape a [`Testbed`] gives its names, when the process that made them is
/// gone. Names of live testbeds, and names a Testbed did not make, are left
/// alone. Processes still inside a removed namespace are
/// killed by PID. Returns the names removed.
pub fn cleanup_stale(prefix: &str) -> Result<Vec<String>> {
    if !is_root() {
        return Err(Error::NotRoot);
    }
    // Only names a Testbed made (`xvs<pid-hex>t<n>...`) are ever touched:
    // an operator's own namespace that merely starts with "xvs" (say
    // "xvsprod") must survive a test run on the same machine.
    let stale = |name: &str| match owner_pid(name) {
        Some(pid) => !pid_alive(pid),
        None => false,
    };
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    for ns in namespaces_with_prefix(prefix) {
        if !stale(&ns) {
            continue;
        }
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
            for pid in String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                // SAFETY: plain kill(2) of a process inside our stale namespace.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        match run(&["ip", "netns", "delete", &ns]) {
            Ok(_) => removed.push(ns),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if let Ok(rd) = fs::read_dir(RUN_ROOT) {
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(prefix) || !stale(&name) {
                continue;
            }
            let dir = e.path();
            let bpf = dir.join("bpf");
            if is_mounted(&bpf) {
                if let Err(err) = umount(&bpf) {
                    errors.push(format!("umount {}: {err}", bpf.display()));
                    continue;
                }
            }
            match fs::remove_dir_all(&dir) {
                Ok(()) => removed.push(dir.display().to_string()),
                Err(err) => errors.push(format!("remove {}: {err}", dir.display())),
            }
        }
    }
    if errors.is_empty() {
        Ok(removed)
    } else {
        Err(Error::Other(format!(
            "cleanup of stale testbeds failed: {}",
            errors.join("; ")
        )))
    }
}

static SIGINT_FLAG: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    SIGINT_FLAG.store(true, Ordering::SeqCst);
}

/// Install a SIGINT/SIGTERM handler that only sets a flag (checked with
/// [`interrupted`]), so callers can unwind and let `Drop` clean up.
pub fn install_interrupt_flag() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
}

/// Whether SIGINT/SIGTERM arrived since [`install_interrupt_flag`].
pub fn interrupted() -> bool {
    SIGINT_FLAG.load(Ordering::SeqCst)
}

// --------------------------------------------------------------------- nodes

/// A node (network namespace) of a testbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Node {
    Client,
    Director,
    Switch,
    /// The router between the client and the server LAN ([`Testbed::dr`] only).
    Router,
    /// The second director ([`Testbed::dr_pair`] only).
    Director2,
    /// Real server, 1-based.
    Rs(u8),
}

impl Node {
    /// The suffix of the namespace name: `cli`, `dir`, `sw`, `rtr`, `dir2`, `rsN`.
    pub fn suffix(self) -> String {
        match self {
            Node::Client => "cli".into(),
            Node::Director => "dir".into(),
            Node::Switch => "sw".into(),
            Node::Router => "rtr".into(),
            Node::Director2 => "dir2".into(),
            Node::Rs(n) => format!("rs{n}"),
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.suffix())
    }
}

// ----------------------------------------------------------------- processes

struct ProcInner {
    label: String,
    pid: u32,
    child: Mutex<Child>,
    log: PathBuf,
}

/// A process started by [`Testbed::spawn`]. Cloning shares the process; the
/// testbed keeps a clone and kills the process on drop if it still runs.
/// Its stdout and stderr go to [`Proc::log_path`].
#[derive(Clone)]
pub struct Proc(Arc<ProcInner>);

impl fmt::Debug for Proc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proc({} pid {})", self.0.label, self.0.pid)
    }
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.pid
    }

    /// `<node>-<program>-<k>`.
    pub fn label(&self) -> &str {
        &self.0.label
    }

    pub fn log_path(&self) -> &Path {
        &self.0.log
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read(&self.0.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Exit status if the process has ended (reaps it).
    pub fn try_wait(&self) -> Option<ExitStatus> {
        lock(&self.0.child).try_wait().ok().flatten()
    }

    pub fn is_running(&self) -> bool {
        self.try_wait().is_none()
    }

    /// Send `sig` (e.g. `libc::SIGTERM`) unless the process already ended.
    /// The child is not reaped before the signal, so the PID cannot have
    /// been reused.
    pub fn signal(&self, sig: i32) -> Result<()> {
        let mut child = lock(&self.0.child);
        if child.try_wait().ok().flatten().is_some() {
            return Ok(());
        }
        // SAFETY: kill(2) on our own unreaped child.
        if unsafe { libc::kill(self.0.pid as i32, sig) } != 0 {
            return Err(Error::Io {
                what: format!("kill {} ({})", self.0.pid, self.0.label),
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Wait up to `timeout` for the process to end.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL and reap.
    pub fn stop(&self, grace: Duration) -> Option<ExitStatus> {
        let _ = self.signal(libc::SIGTERM);
        if let Some(st) = self.wait_timeout(grace) {
            return Some(st);
        }
        let mut child = lock(&self.0.child);
        let _ = child.kill();
        child.wait().ok()
    }

    /// Wait until the log contains `needle`, the process exits, or `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return Ok(());
            }
            if let Some(st) = self.try_wait() {
                return Err(Error::Other(format!(
                    "{} exited ({st}) before logging {needle:?}:\n{}",
                    self.0.label,
                    self.log()
                )));
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("{} to log {needle:?}", self.0.label),
                    detail: self.log(),
                });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

// ------------------------------------------------------------------- testbed

static INSTANCE: AtomicU32 = AtomicU32::new(0);

/// A set of network namespaces wired into a topology; see the crate docs.
pub struct Testbed {
    prefix: String,
    run_dir: PathBuf,
    bpffs: PathBuf,
    bpffs_mounted: bool,
    /// Created namespaces, in creation order.
    namespaces: Vec<String>,
    topology: Topology,
    rs_count: u8,
    procs: Mutex<Vec<Proc>>,
    spawned: AtomicU32,
}

impl fmt::Debug for Testbed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Testbed")
            .field("prefix", &self.prefix)
            .field("namespaces", &self.namespaces)
            .finish_non_exhaustive()
    }
}

impl Testbed {
    /// An empty testbed: unique prefix, `/run/xvs-test/<prefix>` with a bpffs
    /// mounted on its `bpf` directory (from the caller's, i.e. the root,
    /// mount namespace, so every `ip netns exec` sees it).
    fn empty() -> Result<Testbed> {
        if !is_root() {
            return Err(Error::NotRoot);
        }
        let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("xvs{:x}t{n}", std::process::id());
        let run_dir = Path::new(RUN_ROOT).join(&prefix);
        let bpffs = run_dir.join("bpf");
        let mut tb = Testbed {
            prefix,
            run_dir,
            bpffs,
            bpffs_mounted: false,
            namespaces: Vec::new(),
            topology: Topology::Nat,
            rs_count: 0,
            procs: Mutex::new(Vec::new()),
            spawned: AtomicU32::new(0),
        };
        fs::create_dir_all(tb.run_dir.join("logs"))
            .map_err(io_err(format!("create {}", tb.run_dir.display())))?;
        fs::create_dir_all(&tb.bpffs).map_err(io_err(format!("create {}", tb.bpffs.display())))?;
        mount_bpffs(&tb.bpffs)
            .map_err(io_err(format!("mount -t bpf bpf {}", tb.bpffs.display())))?;
        tb.bpffs_mounted = true;
        Ok(tb)
    }

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

    /// Attach a trivial `return XDP_PASS;` program (native mode) to `dev`
    /// in `node`: it gives a veth the NAPI that `XDP_TX` from its peer needs.
    pub fn xdp_pass(&self, node: Node, dev: &str) -> Result<()> {
        let pin = self.bpffs.join("xdp_pass");
        if !pin.exists() {
            pin_xdp_pass(&pin).map_err(io_err(format!(
                "load and pin an XDP_PASS program at {}",
                pin.display()
            )))?;
        }
        let pin = pin.to_string_lossy().into_owned();
        self.exec_ok(
            node,
            &["ip", "link", "set", "dev", dev, "xdpdrv", "pinned", &pin],
        )?;
        Ok(())
    }

    /// Attach the two-instruction program `return <action>;` (native mode)
    /// to `dev` in `node`, e.g. [`XDP_DROP`] or [`XDP_TX`]: the ceiling of
    /// any XDP forwarder on these links (benchmarks). Replaces any XDP
    /// program already there; [`Testbed::xdp_off`] removes it.
    pub fn xdp_action(&self, node: Node, dev: &str, action: u32) -> Result<()> {
        let pin = self.bpffs.join(format!("xdp_action_{action}"));
        if !pin.exists() {
            let name = format!("xvs_tb_act{action}");
            pin_xdp_action(&pin, action, name.as_bytes()).map_err(io_err(format!(
                "load and pin an XDP program returning {action} at {}",
                pin.display()
            )))?;
        }
        let pin = pin.to_string_lossy().into_owned();
        self.exec_ok(
            node,
            &[
                "ip", "-force", "link", "set", "dev", dev, "xdpdrv", "pinned", &pin,
            ],
        )?;
        Ok(())
    }

    /// Remove any (native or generic) XDP program from `dev` in `node`.
    pub fn xdp_off(&self, node: Node, dev: &str) -> Result<()> {
        self.exec_ok(node, &["ip", "link", "set", "dev", dev, "xdpdrv", "off"])?;
        self.exec_ok(
            node,
            &["ip", "link", "set", "dev", dev, "xdpgeneric", "off"],
        )?;
        Ok(())
    }

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

    /// Which topology this is.
    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// Address of real server `n` (1-based) in this topology: [`rs_ip`] or
    /// [`dr_rs_ip`].
    pub fn rs_addr(&self, n: u8) -> String {
        match self.topology {
            Topology::Nat => rs_ip(n),
            Topology::Dr => dr_rs_ip(n),
            Topology::Selftest => selftest::ST_RS_IP.to_string(),
        }
    }

    /// Run `xvs-realserver <args> --state-dir <run_dir>/realserver` in
    /// `node` (a real server) and return its stdout. The state directory
    /// lives under [`Testbed::run_dir`], so even a test that never tears
    /// the real server down leaves nothing behind.
    pub fn realserver(&self, node: Node, args: &[&str]) -> Result<String> {
        let bin = bin("xvs-realserver")?;
        let bin = bin.to_string_lossy().into_owned();
        let state = self.run_dir.join("realserver");
        let state = state.to_string_lossy().into_owned();
        let mut argv = vec![bin.as_str()];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--state-dir", &state]);
        self.exec_ok(node, &argv)
    }

    /// An interface counter, `/sys/class/net/<dev>/statistics/<stat>`, as
    /// seen inside `node` (e.g. `rx_packets`).
    pub fn if_stat(&self, node: Node, dev: &str, stat: &str) -> Result<u64> {
        let path = format!("/sys/class/net/{dev}/statistics/{stat}");
        let out = self.exec_ok(node, &["cat", &path])?;
        out.trim()
            .parse()
            .map_err(|_| Error::Other(format!("{path} in {node}: not a number: {out:?}")))
    }

    fn add_ns(&mut self, node: Node) -> Result<()> {
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

    fn addr(&self, node: Node, dev: &str, cidr: &str) -> Result<()> {
        let ns = self.ns(node);
        run(&["ip", "-n", &ns, "addr", "add", cidr, "dev", dev])?;
        run(&["ip", "-n", &ns, "link", "set", dev, "up"])?;
        Ok(())
    }

    /// Sends everything `node` has no route for to `gw`.
    fn default_route(&self, node: Node, gw: &str) -> Result<()> {
        let ns = self.ns(node);
        run(&["ip", "-n", &ns, "route", "add", "default", "via", gw])?;
        Ok(())
    }

    /// The switch: bridge `br0` in the switch namespace with `ports`
    /// (already there); see [`Testbed::bridge`].
    fn switch(&self, ports: &[String]) -> Result<()> {
        self.bridge("br0", ports)
    }

    /// Bridge `name` in the switch namespace with `ports` (already there)
    /// enslaved, no STP, forwarding at once, tx checksum offload off on
    /// the ports, kept at layer 2.
    fn bridge(&self, name: &str, ports: &[String]) -> Result<()> {
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
    fn l2_only(&self, node: Node) -> Result<()> {
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
    fn forward(&self, node: Node, devs: &[&str]) -> Result<()> {
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

    /// The unique prefix of every name of this testbed (`xvs<pid-hex>t<n>`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The network namespace name of `node`.
    pub fn ns(&self, node: Node) -> String {
        format!("{}-{}", self.prefix, node.suffix())
    }

    /// All namespaces this testbed created.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Number of real servers.
    pub fn rs_count(&self) -> u8 {
        self.rs_count
    }

    /// `/run/xvs-test/<prefix>`: a directory for sockets and logs, removed on drop.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The bpffs mounted for this testbed (`/run/xvs-test/<prefix>/bpf`);
    /// visible inside `ip netns exec`. Pass e.g. `bpffs().join("xvs")` as
    /// xvsd's `--pin-path`.
    pub fn bpffs(&self) -> &Path {
        &self.bpffs
    }

    fn command(&self, node: Node, argv: &[&str]) -> Result<Command> {
        if argv.is_empty() {
            return Err(Error::Other("empty command".into()));
        }
        let ns = self.ns(node);
        if !self.namespaces.contains(&ns) {
            return Err(Error::Other(format!("{node} is not part of this testbed")));
        }
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns])
            .args(argv)
            .stdin(Stdio::null());
        Ok(c)
    }

    /// Run `argv` inside `node`'s namespace and collect its output (any exit
    /// status).
    pub fn exec(&self, node: Node, argv: &[&str]) -> Result<Output> {
        self.command(node, argv)?
            .output()
            .map_err(io_err(format!("run `{}` in {node}", render(argv))))
    }

    /// Like [`Testbed::exec`] but an unsuccessful exit is an error; returns stdout.
    pub fn exec_ok(&self, node: Node, argv: &[&str]) -> Result<String> {
        let out = self.exec(node, argv)?;
        let out = check(argv, out).map_err(|e| match e {
            Error::Command {
                cmd,
                status,
                stderr,
            } => Error::Command {
                cmd: format!("{cmd} (in {node})"),
                status,
                stderr,
            },
            e => e,
        })?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Start `argv` in `node`'s namespace in the background. stdout and
    /// stderr go to a log file under [`Testbed::run_dir`]. The process is
    /// tracked: dropping the testbed kills it (by PID) if it still runs.
    pub fn spawn(&self, node: Node, argv: &[&str]) -> Result<Proc> {
        let k = self.spawned.fetch_add(1, Ordering::Relaxed);
        let prog = Path::new(argv.first().copied().unwrap_or("cmd"))
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "cmd".into());
        let label = format!("{node}-{prog}-{k}");
        let log = self.run_dir.join("logs").join(format!("{label}.log"));
        let file = fs::File::create(&log).map_err(io_err(format!("create {}", log.display())))?;
        let file2 = file
            .try_clone()
            .map_err(io_err(format!("dup {}", log.display())))?;
        let mut cmd = self.command(node, argv)?;
        cmd.stdout(file).stderr(file2);
        // `ip netns exec` execs the program, so the PID is the program's.
        let child = cmd
            .spawn()
            .map_err(io_err(format!("spawn `{}` in {node}", render(argv))))?;
        let p = Proc(Arc::new(ProcInner {
            label,
            pid: child.id(),
            child: Mutex::new(child),
            log,
        }));
        lock(&self.procs).push(p.clone());
        Ok(p)
    }

    /// Start `xvs-testsrv http --listen 0.0.0.0:<port> --name rsN` on every
    /// real server and wait until each listens.
    pub fn start_http_servers(&self, port: u16) -> Result<Vec<Proc>> {
        self.start_servers("http", port)
    }

    /// Start `xvs-testsrv udp-echo --listen 0.0.0.0:<port> --name rsN` on
    /// every real server and wait until each listens.
    pub fn start_udp_echo_servers(&self, port: u16) -> Result<Vec<Proc>> {
        self.start_servers("udp-echo", port)
    }

    fn start_servers(&self, kind: &str, port: u16) -> Result<Vec<Proc>> {
        let testsrv = bin("xvs-testsrv")?;
        let testsrv = testsrv.to_string_lossy().into_owned();
        let listen = format!("0.0.0.0:{port}");
        let mut procs = Vec::new();
        for n in 1..=self.rs_count {
            let name = format!("rs{n}");
            procs.push(self.spawn(
                Node::Rs(n),
                &[&testsrv, kind, "--listen", &listen, "--name", &name],
            )?);
        }
        for p in &procs {
            p.wait_for_log("listening on", Duration::from_secs(5))?;
        }
        Ok(procs)
    }

    /// The processes started with [`Testbed::spawn`].
    pub fn procs(&self) -> Vec<Proc> {
        lock(&self.procs).clone()
    }

    fn teardown(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        let procs = std::mem::take(&mut *lock(&self.procs));
        let panicking = thread::panicking();
        for p in &procs {
            if p.is_running() {
                let _ = p.signal(libc::SIGTERM);
            }
        }
        for p in &procs {
            if p.wait_timeout(Duration::from_millis(1500)).is_none() {
                let mut c = lock(&p.0.child);
                let _ = c.kill();
                let _ = c.wait();
            }
            if panicking {
                let log = p.log();
                let tail = &log[log.len().saturating_sub(2000)..];
                let tail = tail.trim_end();
                if !tail.is_empty() {
                    eprintln!("--- log of {} (pid {}) ---\n{tail}", p.label(), p.pid());
                }
            }
        }
        for ns in self.namespaces.drain(..).rev() {
            if let Err(e) = run(&["ip", "netns", "delete", &ns]) {
                errors.push(e.to_string());
            }
        }
        if self.bpffs_mounted {
            match umount(&self.bpffs) {
                Ok(()) => self.bpffs_mounted = false,
                Err(e) => errors.push(format!("umount {}: {e}", self.bpffs.display())),
            }
        }
        if !self.bpffs_mounted && self.run_dir.exists() {
            if let Err(e) = fs::remove_dir_all(&self.run_dir) {
                errors.push(format!("remove {}: {e}", self.run_dir.display()));
            }
        }
        errors
    }

    /// Tear down now and report every problem (Drop does the same silently
    /// except for a warning on stderr).
    pub fn close(mut self) -> Result<()> {
        let errors = self.teardown();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Other(format!("teardown: {}", errors.join("; "))))
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for e in self.teardown() {
            eprintln!("xvs-testbed: teardown of {}: {e}", self.prefix);
        }
    }
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
