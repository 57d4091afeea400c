//! The command line of `xvs-realserver` (pure, unit tested).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::Error;

/// Where state files live by default (one directory per network namespace).
pub const DEFAULT_STATE_DIR: &str = "/run/xvs-realserver";

/// What the three commands do, shown by `--help` after clap's option list.
const AFTER_HELP: &str = "\
Prepares this host (this network namespace) to be a real server of an xvs or
LVS director in direct-routing (-g, --mode dr) or tunnelling (-i, --mode tun)
mode, and undoes exactly that again:

  * the VIP as a /32 (IPv6: /128, nodad) on lo;
  * net.ipv4.conf.{all,IFACE}.arp_ignore=1 and arp_announce=2, so the real
    server neither answers ARP for the VIP nor announces it (IPv6 needs no
    sysctl: neighbour discovery never answers for an address on lo from
    another interface); tun needs an IPv4 VIP for now;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
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
    pub vip: Option<IpAddr>,
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

/// The command line as clap reads it; [`parse`] turns it into a [`Cli`].
#[derive(Debug, Parser)]
#[command(
    name = "xvs-realserver",
    about = "Prepares a Linux real server for xvs/LVS direct routing (-g) and IP tunnelling (-i)",
    after_help = AFTER_HELP,
    disable_version_flag = true
)]
struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Put the VIP on lo, set the ARP sysctls and (tun) decapsulation.
    Setup(Opts),
    /// Undo what setup did for one VIP, or for every VIP with --all.
    Teardown {
        /// Tear down every VIP set up in this network namespace.
        #[arg(long)]
        all: bool,
        /// The same options as setup; only --vip and --state-dir count.
        #[command(flatten)]
        opts: Opts,
    },
    /// Show what is set up (one VIP with --vip).
    Status(Opts),
}

#[derive(Debug, clap::Args)]
struct Opts {
    /// The virtual IP the director balances.
    #[arg(long, value_name = "ADDRESS", value_parser = parse_vip)]
    vip: Option<IpAddr>,
    /// dr (-g, direct routing) or tun (-i, IP tunnelling).
    #[arg(long, value_name = "dr|tun", value_parser = parse_mode)]
    mode: Option<Mode>,
    /// Tunnel encapsulation (--mode tun; default ipip).
    #[arg(long, value_name = "ipip|gue", value_parser = parse_tun_type)]
    tun_type: Option<TunType>,
    /// GUE's UDP port (--tun-type gue).
    #[arg(long, value_name = "N", value_parser = parse_tun_port)]
    tun_port: Option<u16>,
    /// The interface the director's packets arrive on.
    #[arg(long, value_name = "IFACE", value_parser = parse_dev)]
    dev: Option<String>,
    /// How tunnelled packets are decapsulated.
    #[arg(long, value_enum, default_value_t = DecapChoice::Auto)]
    decap: DecapChoice,
    /// Where the state files live.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR, value_parser = parse_state_dir)]
    state_dir: PathBuf,
}

fn parse_vip(v: &str) -> Result<IpAddr, String> {
    let ip: IpAddr = v
        .parse()
        .map_err(|_| format!("{v:?} is not an IPv4 or IPv6 address"))?;
    let bad = match ip {
        IpAddr::V4(a) => a.is_broadcast(),
        // fe80::/10: a link-local VIP is no VIP (IPVS refuses such dests
        // unless local, and a director cannot route to it).
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    };
    if bad || ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return Err(format!("{ip} cannot be a virtual IP"));
    }
    Ok(ip)
}

fn parse_mode(v: &str) -> Result<Mode, String> {
    match v {
        "dr" | "route" | "g" => Ok(Mode::Dr),
        "tun" | "tunnel" | "i" => Ok(Mode::Tun),
        _ => Err(format!("expected dr or tun, got {v:?}")),
    }
}

fn parse_tun_type(v: &str) -> Result<TunType, String> {
    match v {
        "ipip" => Ok(TunType::Ipip),
        "gue" => Ok(TunType::Gue),
        "gre" => Err("--tun-type gre is not supported (xvs tunnels with ipip or gue)".into()),
        _ => Err(format!("expected ipip or gue, got {v:?}")),
    }
}

fn parse_tun_port(v: &str) -> Result<u16, String> {
    v.parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{v:?} is not a port 1..65535"))
}

fn parse_dev(v: &str) -> Result<String, String> {
    if v.is_empty() || v.len() > 15 || v.contains(['/', ' ']) || v == "." || v == ".." {
        return Err(format!("{v:?} is not an interface name"));
    }
    Ok(v.to_string())
}

fn parse_state_dir(v: &str) -> Result<PathBuf, String> {
    if v.is_empty() {
        return Err("empty path".into());
    }
    Ok(PathBuf::from(v))
}

/// Parses the arguments after the program name. Help and malformed
/// command lines come back as [`Error::Cli`], which prints itself as clap
/// does (and exits 0 for help, 2 otherwise).
pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Cli, Error> {
    let argv = std::iter::once("xvs-realserver").chain(args.iter().map(|s| s.as_ref()));
    let parsed = Args::try_parse_from(argv).map_err(Error::Cli)?;
    let (action, all, o) = match parsed.command {
        Sub::Setup(o) => (Action::Setup, false, o),
        Sub::Teardown { all, opts } => (Action::Teardown, all, opts),
        Sub::Status(o) => (Action::Status, false, o),
    };
    let mut cli = Cli {
        action,
        vip: o.vip,
        all,
        mode: o.mode,
        tun_type: o.tun_type,
        tun_port: o.tun_port,
        dev: o.dev,
        decap: o.decap,
        state_dir: o.state_dir,
    };
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
        Action::Status => {}
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
            Err(Error::Cli(e)) => e.to_string(),
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
        assert!(err("setup --vip 198.51.100.10 --mode dr --all").contains("'--all'"));
        assert!(err("setup --vip 198.51.100.10 --mode dr --bogus").contains("unexpected argument"));
        assert!(err("setup --vip").contains("a value is required"));
        assert!(err("frobnicate").contains("unrecognized subcommand"));
        assert!(err("").contains("Usage"));
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
            p("status --vip 198.51.100.10").unwrap().vip,
            Some(IpAddr::from([198, 51, 100, 10]))
        );
        match p("setup --help") {
            Err(Error::Cli(e)) => assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp),
            other => panic!("expected help, got {other:?}"),
        }
    }

    #[test]
    fn ipv6_vips() {
        let c = p("setup --vip 2001:db8::10 --mode dr").unwrap();
        assert_eq!(c.vip, Some("2001:db8::10".parse().unwrap()));
        for bad in ["::", "::1", "ff02::1", "fe80::1", "2001:db8::g"] {
            let e = p(&format!("setup --vip {bad} --mode dr")).unwrap_err();
            assert!(matches!(e, Error::Cli(_)), "{bad}: {e}");
        }
    }
}
