//! Namespaces left by earlier runs, and the Ctrl-C flag long runs poll.

use std::fs;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{is_mounted, is_root, pid_alive, run, umount, Error, Result, RUN_ROOT};

pub(crate) fn netns_list() -> Vec<String> {
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

pub(crate) static SIGINT_FLAG: AtomicBool = AtomicBool::new(false);

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
