//! The command line of `xvs-realserver` (pure, unit tested).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Where state files live by default (one directory per network namespace).
pub const DEFAULT_STATE_DIR: &str = "/run/xvs-realserver";

pub const USAGE: &str = "\
usage:
  xvs-realserver setup    --vip A.B.C.D --mode dr|tun [--tun-type ipip|gue] [--tun-port N]
                          [--dev IFACE] [--decap auto|kernel|xdp] [--state-dir DIR]
  xvs-realserver teardown (--vip A.B.C.D | --all) [same options as setup, ignored]
  xvs-realserver status   [--vip A.B.C.D] [--state-dir DIR]

Prepares this host (this network namespace) to be a real server of an xvs or
LVS director in direct-routing (-g, --mode dr) or tunnelling (-i, --mode tun)
mode, and undoes exactly that again:

  * the VIP as a /32 on lo;
  * net.ipv4.conf.{all,IFACE}.arp_ignore=1 and arp_announce=2, so the real
    server neither answers ARP for the VIP nor announces it;
  * tun: net.ipv4.conf.{all,IFACE}.rp_filter=0, and decapsulation: the
    kernel's tunl0 (plus `ip fou add port N gue` for GUE) when the ipip
    module is available (--decap kernel), else xvs's BPF decap program on
    IFACE (--decap xdp: XDP on a NIC, a tc ingress filter on a veth or
    other virtual device). --decap auto (default) picks the kernel when it
    can.

IFACE defaults to the interface of the default route (or the only non-lo
interface). The original values are recorded at the first setup in
DIR/<network namespace>/state.json (DIR defaults to /run/xvs-realserver) and
restored by the teardown of the last VIP that needed them. Every command is
idempotent and prints each change it makes, or `already ...`.";

/// Forwarding method the real server is prepared for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Direct routing (`ipvsadm -g`).
    Dr,
    /// IP tunnelling (`ipvsadm -i`).
    Tun,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Dr => "dr",
            Mode::Tun => "tun",
        }
    }
}

/// Tunnel encapsulation (`--tun-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunType {
    /// IPv4 in IPv4 (protocol 4).
    Ipip,
    /// Generic UDP Encapsulation (IPv4 in GUE in UDP).
    Gue,
}

impl TunType {
    pub fn name(self) -> &'static str {
        match self {
            TunType::Ipip => "ipip",
            TunType::Gue => "gue",
        }
    }
}

/// How tunnelled packets are decapsulated (`--decap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecapChoice {
    /// The kernel when it has the ipip module (and fou for GUE), else xvs's BPF decap.
    #[default]
    Auto,
    /// The kernel's tunl0 (and fou for GUE).
    Kernel,
    /// xvs's BPF decap program.
    Xdp,
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Setup,
    Teardown,
    Status,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    pub action: Action,
    pub vip: Option<Ipv4Addr>,
    /// `teardown --all`.
    pub all: bool,
    pub mode: Option<Mode>,
    /// Set for `--mode tun` (default ipip).
    pub tun_type: Option<TunType>,
    /// Set for `--tun-type gue`.
    pub tun_port: Option<u16>,
    pub dev: Option<String>,
    pub decap: DecapChoice,
    pub state_dir: PathBuf,
}

fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(msg.into())
}

/// Parses the arguments after the program name. `-h`/`--help` yields
/// [`Error::Help`].
pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Cli, Error> {
    let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
    if args.iter().any(|a| matches!(*a, "-h" | "--help" | "help")) {
        return Err(Error::Help);
    }
    let (sub, rest) = args.split_first().ok_or_else(|| usage("missing command"))?;
    let action = match *sub {
        "setup" => Action::Setup,
        "teardown" => Action::Teardown,
        "status" => Action::Status,
        other => return Err(usage(format!("unknown command {other:?}"))),
    };
    let mut cli = Cli {
        action,
        vip: None,
        all: false,
        mode: None,
        tun_type: None,
        tun_port: None,
        dev: None,
        decap: DecapChoice::Auto,
        state_dir: PathBuf::from(DEFAULT_STATE_DIR),
    };
    let mut it = rest.iter();
    while let Some(&arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (arg, None),
        };
        if flag == "--all" {
            if inline.is_some() {
                return Err(usage("--all takes no value"));
            }
            cli.all = true;
            continue;
        }
        let mut value = || -> Result<&str, Error> {
            match inline {
                Some(v) => Ok(v),
                None => it
                    .next()
                    .copied()
                    .ok_or_else(|| usage(format!("{flag} needs a value"))),
            }
        };
        match flag {
            "--vip" => {
                let v = value()?;
                let ip: Ipv4Addr = v
                    .parse()
                    .map_err(|_| usage(format!("--vip: {v:?} is not an IPv4 address")))?;
                if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast()
                {
                    return Err(usage(format!("--vip: {ip} cannot be a virtual IP")));
                }
                cli.vip = Some(ip);
            }
            "--mode" => {
                cli.mode = Some(match value()? {
                    "dr" | "route" | "g" => Mode::Dr,
                    "tun" | "tunnel" | "i" => Mode::Tun,
                    v => return Err(usage(format!("--mode: expected dr or tun, got {v:?}"))),
                })
            }
            "--tun-type" => {
                cli.tun_type = Some(match value()? {
                    "ipip" => TunType::Ipip,
                    "gue" => TunType::Gue,
                    "gre" => {
                        return Err(usage(
                            "--tun-type gre is not supported (xvs tunnels with ipip or gue)",
                        ))
                    }
                    v => {
                        return Err(usage(format!(
                            "--tun-type: expected ipip or gue, got {v:?}"
                        )))
                    }
                })
            }
            "--tun-port" => {
                let v = value()?;
                let p: u16 =
                    v.parse().ok().filter(|p| *p != 0).ok_or_else(|| {
                        usage(format!("--tun-port: {v:?} is not a port 1..65535"))
                    })?;
                cli.tun_port = Some(p);
            }
            "--dev" => {
                let v = value()?;
                if v.is_empty() || v.len() > 15 || v.contains(['/', ' ']) || v == "." || v == ".." {
                    return Err(usage(format!("--dev: {v:?} is not an interface name")));
                }
                cli.dev = Some(v.to_string());
            }
            "--decap" => {
                cli.decap = match value()? {
                    "auto" => DecapChoice::Auto,
                    "kernel" => DecapChoice::Kernel,
                    "xdp" => DecapChoice::Xdp,
                    v => {
                        return Err(usage(format!(
                            "--decap: expected auto, kernel or xdp, got {v:?}"
                        )))
                    }
                }
            }
            "--state-dir" => {
                let v = value()?;
                if v.is_empty() {
                    return Err(usage("--state-dir: empty path"));
                }
                cli.state_dir = PathBuf::from(v);
            }
            other => return Err(usage(format!("unknown option {other:?}"))),
        }
    }
    validate(&mut cli)?;
    Ok(cli)
}

fn validate(cli: &mut Cli) -> Result<(), Error> {
    if cli.mode != Some(Mode::Tun) && (cli.tun_type.is_some() || cli.tun_port.is_some()) {
        if cli.action == Action::Setup {
            return Err(usage("--tun-type and --tun-port need --mode tun"));
        }
    } else if cli.mode == Some(Mode::Tun) {
        let t = *cli.tun_type.get_or_insert(TunType::Ipip);
        match (t, cli.tun_port) {
            (TunType::Gue, None) if cli.action == Action::Setup => {
                return Err(usage("--tun-type gue needs --tun-port N"))
            }
            (TunType::Ipip, Some(_)) => return Err(usage("--tun-port is only for --tun-type gue")),
            _ => {}
        }
    }
    match cli.action {
        Action::Setup => {
            if cli.all {
                return Err(usage("--all is only for teardown"));
            }
            if cli.vip.is_none() {
                return Err(usage("setup needs --vip"));
            }
            if cli.mode.is_none() {
                return Err(usage("setup needs --mode dr or --mode tun"));
            }
        }
        Action::Teardown => match (cli.vip.is_some(), cli.all) {
            (false, false) => return Err(usage("teardown needs --vip or --all")),
            (true, true) => return Err(usage("teardown takes --vip or --all, not both")),
            _ => {}
        },
        Action::Status => {
            if cli.all {
                return Err(usage("--all is only for teardown"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Cli, Error> {
        parse(&s.split_whitespace().collect::<Vec<_>>())
    }

    fn err(s: &str) -> String {
        match p(s) {
            Err(Error::Usage(m)) => m,
            other => panic!("{s}: expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn setup_dr() {
        let c = p("setup --vip 198.51.100.10 --mode dr").unwrap();
        assert_eq!(c.action, Action::Setup);
        assert_eq!(c.vip, Some("198.51.100.10".parse().unwrap()));
        assert_eq!(c.mode, Some(Mode::Dr));
        assert_eq!(c.tun_type, None);
        assert_eq!(c.dev, None);
        assert_eq!(c.decap, DecapChoice::Auto);
        assert_eq!(c.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
    }

    #[test]
    fn setup_tun_defaults_to_ipip() {
        let c = p("setup --vip=198.51.100.10 --mode=tun --dev eth1").unwrap();
        assert_eq!(c.mode, Some(Mode::Tun));
        assert_eq!(c.tun_type, Some(TunType::Ipip));
        assert_eq!(c.tun_port, None);
        assert_eq!(c.dev.as_deref(), Some("eth1"));
    }

    #[test]
    fn setup_gue() {
        let c = p(
            "setup --vip 198.51.100.10 --mode tun --tun-type gue --tun-port 6080 --decap xdp --state-dir /tmp/x",
        )
        .unwrap();
        assert_eq!(c.tun_type, Some(TunType::Gue));
        assert_eq!(c.tun_port, Some(6080));
        assert_eq!(c.decap, DecapChoice::Xdp);
        assert_eq!(c.state_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn bad_setups() {
        assert!(err("setup --mode dr").contains("--vip"));
        assert!(err("setup --vip 198.51.100.10").contains("--mode"));
        assert!(err("setup --vip 198.51.100.300 --mode dr").contains("IPv4"));
        assert!(err("setup --vip 127.0.0.1 --mode dr").contains("cannot be"));
        assert!(err("setup --vip 198.51.100.10 --mode nat").contains("dr or tun"));
        assert!(err("setup --vip 198.51.100.10 --mode dr --tun-type gue").contains("--mode tun"));
        assert!(err("setup --vip 198.51.100.10 --mode tun --tun-type gue").contains("--tun-port"));
        assert!(err("setup --vip 198.51.100.10 --mode tun --tun-port 1").contains("only for"));
        assert!(err("setup --vip 198.51.100.10 --mode tun --tun-type gre").contains("gre"));
        assert!(
            err("setup --vip 198.51.100.10 --mode tun --tun-type gue --tun-port 0")
                .contains("port")
        );
        assert!(err("setup --vip 198.51.100.10 --mode dr --dev a/b").contains("interface"));
        assert!(err("setup --vip 198.51.100.10 --mode dr --all").contains("teardown"));
        assert!(err("setup --vip 198.51.100.10 --mode dr --bogus").contains("unknown option"));
        assert!(err("setup --vip").contains("needs a value"));
        assert!(err("frobnicate").contains("unknown command"));
        assert!(err("").contains("missing command"));
    }

    #[test]
    fn teardown_accepts_the_setup_arguments() {
        let c =
            p("teardown --vip 198.51.100.10 --mode tun --tun-type gue --tun-port 6080").unwrap();
        assert_eq!(c.action, Action::Teardown);
        let c = p("teardown --vip 198.51.100.10 --mode tun --tun-type gue").unwrap();
        assert_eq!(c.tun_port, None);
        let c = p("teardown --all").unwrap();
        assert!(c.all);
        assert!(err("teardown").contains("--vip or --all"));
        assert!(err("teardown --all --vip 198.51.100.10").contains("not both"));
    }

    #[test]
    fn status_and_help() {
        assert_eq!(p("status").unwrap().action, Action::Status);
        assert_eq!(
            p("status --vip 198.51.100.10")
                .unwrap()
                .vip
                .unwrap()
                .octets()[3],
            10
        );
        assert!(matches!(p("setup --help"), Err(Error::Help)));
    }
}
