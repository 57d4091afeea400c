//! What the report says about the machine: shell one-liners, load, memory,
//! the VM's accelerator.

use std::process::Command;

/// How the VM that runs us executes its CPUs: qemu's `-cpu max` under TCG
/// calls itself "QEMU TCG CPU"; anything else is taken as hardware
/// virtualisation.
pub fn vm_accel(cpuinfo: &str) -> &'static str {
    let tcg = cpuinfo
        .lines()
        .filter(|l| l.starts_with("model name"))
        .any(|l| l.contains("QEMU TCG"));
    if tcg {
        "TCG"
    } else {
        "KVM"
    }
}

pub(super) fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_default()
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `MemAvailable` in bytes.
pub fn mem_available() -> u64 {
    meminfo("MemAvailable:")
}

pub(super) fn meminfo(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
