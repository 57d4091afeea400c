//! The real host: `ip`, `/proc/sys`, `/sys`, `modprobe` and xvs's BPF decap.

use std::collections::BTreeSet;
use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use xvs_dataplane::decap;

use crate::plan::{SysctlKey, System};
use crate::state::DecapSpec;
use crate::Error;

/// Interfaces the kernel creates by itself with tunnel modules; never a
/// real server's interface.
const FALLBACK_TUNNELS: &[&str] = &[
    "tunl0", "gre0", "gretap0", "erspan0", "sit0", "ip_vti0", "ip6tnl0", "ip6gre0", "ip6_vti0",
];

/// Runs a command; its stdout on success.
pub fn cmd(argv: &[&str]) -> Result<String, Error> {
    let rendered = argv.join(" ");
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Io {
            context: format!("run `{rendered}`"),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            cmd: rendered,
            status: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// `(dev, address)` of every address, from `ip -o addr show`.
pub fn parse_ip_addr(text: &str) -> Vec<(String, IpAddr)> {
    // 1: lo    inet 127.0.0.1/8 scope host lo\       valid_lft forever ...
    let mut v = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(dev) = words.nth(1) else { continue };
        let dev = dev.split('@').next().unwrap_or(dev).to_string();
        while let Some(w) = words.next() {
            if w == "inet" || w == "inet6" {
                if let Some(a) = words
                    .next()
                    .and_then(|cidr| cidr.split('/').next())
                    .and_then(|a| a.parse().ok())
                {
                    v.push((dev.clone(), a));
                }
                break;
            }
        }
    }
    v
}

/// The `dev` of the first default route in `ip -4 route show default`.
pub fn parse_default_dev(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        if w.next() != Some("default") {
            return None;
        }
        let words: Vec<&str> = w.collect();
        words
            .windows(2)
            .find(|p| p[0] == "dev")
            .map(|p| p[1].to_string())
    })
}

/// Ports of `ip fou show` (`port 6080 gue`).
pub fn parse_fou(text: &str) -> BTreeSet<u16> {
    text.lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words
                .windows(2)
                .find(|p| p[0] == "port")
                .and_then(|p| p[1].parse().ok())
        })
        .collect()
}

/// The host this process runs on (its network namespace).
#[derive(Debug, Default)]
pub struct RealSystem;

impl RealSystem {
    fn addrs(&mut self) -> Result<Vec<(String, IpAddr)>, Error> {
        Ok(parse_ip_addr(&cmd(&["ip", "-o", "addr", "show"])?))
    }
}

fn dp(context: String) -> impl FnOnce(xvs_dataplane::Error) -> Error {
    move |source| Error::Dataplane { context, source }
}

impl System for RealSystem {
    fn lo_has(&mut self, vip: IpAddr) -> Result<bool, Error> {
        Ok(self.addrs()?.iter().any(|(d, a)| d == "lo" && *a == vip))
    }

    fn other_devs_with(&mut self, vip: IpAddr) -> Result<Vec<String>, Error> {
        Ok(self
            .addrs()?
            .into_iter()
            .filter(|(d, a)| d != "lo" && *a == vip)
            .map(|(d, _)| d)
            .collect())
    }

    fn lo_add(&mut self, vip: IpAddr) -> Result<(), Error> {
        match vip {
            IpAddr::V4(_) => cmd(&["ip", "addr", "add", &format!("{vip}/32"), "dev", "lo"]),
            // nodad: the address is usable at once (lo does no duplicate
            // detection anyway, but an address added as tentative is not).
            IpAddr::V6(_) => cmd(&[
                "ip",
                "-6",
                "addr",
                "add",
                &format!("{vip}/128"),
                "dev",
                "lo",
                "nodad",
            ]),
        }
        .map(drop)
    }

    fn lo_del(&mut self, vip: IpAddr) -> Result<(), Error> {
        let prefix = if vip.is_ipv6() { 128 } else { 32 };
        cmd(&["ip", "addr", "del", &format!("{vip}/{prefix}"), "dev", "lo"]).map(drop)
    }

    fn dev_exists(&mut self, dev: &str) -> bool {
        !dev.contains('/') && Path::new("/sys/class/net").join(dev).exists()
    }

    fn default_dev(&mut self) -> Result<String, Error> {
        if let Ok(out) = cmd(&["ip", "-4", "route", "show", "default"]) {
            if let Some(dev) = parse_default_dev(&out) {
                return Ok(dev);
            }
        }
        let mut devs: Vec<String> = fs::read_dir("/sys/class/net")
            .map_err(|source| Error::Io {
                context: "list /sys/class/net".into(),
                source,
            })?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|d| d != "lo" && !FALLBACK_TUNNELS.contains(&d.as_str()))
            .collect();
        devs.sort();
        if devs.len() == 1 {
            Ok(devs.remove(0))
        } else {
            Err(Error::NoDefaultDev(devs.join(" ")))
        }
    }

    fn sysctl_get(&mut self, key: &SysctlKey) -> Result<String, Error> {
        fs::read_to_string(key.proc_path())
            .map(|s| s.trim().to_string())
            .map_err(|source| Error::Io {
                context: format!("read {key}"),
                source,
            })
    }

    fn sysctl_set(&mut self, key: &SysctlKey, value: &str) -> Result<(), Error> {
        fs::write(key.proc_path(), format!("{value}\n")).map_err(|source| Error::Io {
            context: format!("write {key} = {value}"),
            source,
        })
    }

    fn module_loaded(&mut self, module: &str) -> bool {
        Path::new("/sys/module").join(module).exists()
    }

    fn module_available(&mut self, module: &str) -> bool {
        if self.module_loaded(module) {
            return true;
        }
        // No modprobe (kmod not installed) means no loadable modules either.
        Command::new("modprobe")
            .args(["-n", "-q", module])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn module_load(&mut self, module: &str) -> Result<(), Error> {
        cmd(&["modprobe", module]).map(drop)
    }

    fn link_is_up(&mut self, dev: &str) -> Result<bool, Error> {
        let p = Path::new("/sys/class/net").join(dev).join("flags");
        let text = fs::read_to_string(&p).map_err(|source| Error::Io {
            context: format!("read {}", p.display()),
            source,
        })?;
        let flags = u32::from_str_radix(text.trim().trim_start_matches("0x"), 16).unwrap_or(0);
        Ok(flags & libc::IFF_UP as u32 != 0)
    }

    fn link_set_up(&mut self, dev: &str, up: bool) -> Result<(), Error> {
        cmd(&["ip", "link", "set", dev, if up { "up" } else { "down" }]).map(drop)
    }

    fn fou_ports(&mut self) -> Result<BTreeSet<u16>, Error> {
        Ok(parse_fou(&cmd(&["ip", "fou", "show"])?))
    }

    fn fou_add(&mut self, port: u16) -> Result<(), Error> {
        cmd(&["ip", "fou", "add", "port", &port.to_string(), "gue"]).map(drop)
    }

    fn fou_del(&mut self, port: u16) -> Result<(), Error> {
        cmd(&["ip", "fou", "del", "port", &port.to_string()]).map(drop)
    }

    fn decap_attached(&mut self, dev: &str) -> Result<bool, Error> {
        decap::attached(dev).map_err(dp(format!("querying the decap program on {dev}")))
    }

    fn decap_attach(&mut self, dev: &str, spec: &DecapSpec) -> Result<(), Error> {
        let cfg = decap::DecapConfig {
            vips: spec.vips.clone(),
            gue_ports: spec.gue_ports.clone(),
        };
        decap::attach(dev, &cfg).map_err(dp(format!("attaching xvs decap to {dev}")))
    }

    fn decap_detach(&mut self, dev: &str) -> Result<(), Error> {
        decap::detach(dev).map_err(dp(format!("detaching xvs decap from {dev}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addr_output() {
        let text = "\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
1: lo    inet 198.51.100.10/32 scope global lo\\       valid_lft forever preferred_lft forever
2: eth0@if3    inet 198.51.100.11/24 scope global eth0\\       valid_lft forever preferred_lft forever
1: lo    inet6 2001:db8::10/128 scope global nodad \\       valid_lft forever preferred_lft forever
";
        let v = parse_ip_addr(text);
        assert_eq!(
            v,
            vec![
                ("lo".to_string(), "127.0.0.1".parse().unwrap()),
                ("lo".to_string(), "198.51.100.10".parse().unwrap()),
                ("eth0".to_string(), "198.51.100.11".parse().unwrap()),
                ("lo".to_string(), "2001:db8::10".parse().unwrap()),
            ]
        );
    }

    #[test]
    fn default_route_output() {
        assert_eq!(
            parse_default_dev("default via 198.51.100.1 dev eth0 \n").as_deref(),
            Some("eth0")
        );
        assert_eq!(
            parse_default_dev("default dev wg0 scope link\n").as_deref(),
            Some("wg0")
        );
        assert_eq!(parse_default_dev(""), None);
        assert_eq!(parse_default_dev("10.0.0.0/8 dev eth1\n"), None);
    }

    #[test]
    fn fou_output() {
        assert_eq!(
            parse_fou("port 6080 gue\nport 5555 ipproto 4\n"),
            BTreeSet::from([6080, 5555])
        );
        assert!(parse_fou("").is_empty());
    }
}
