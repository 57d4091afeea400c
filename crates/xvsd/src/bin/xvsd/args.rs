//! `xvsd`'s command line (clap).

use anyhow::Result;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use xvs_core::api::{DEFAULT_SOCKET, SOCKET_ENV};
use xvs_dataplane::{AttachMode, Options};

pub(crate) struct Args {
    pub(crate) socket: PathBuf,
    /// `--control-group`: the group that may connect and list.
    pub(crate) control_group: Option<String>,
    pub(crate) pin_path: PathBuf,
    pub(crate) interfaces: Option<Vec<String>>,
    pub(crate) state_file: Option<PathBuf>,
    pub(crate) opts: Options,
    pub(crate) config: Option<PathBuf>,
    pub(crate) config_id: Option<String>,
    pub(crate) test: bool,
    pub(crate) features: bool,
    pub(crate) detach: bool,
    pub(crate) metrics: Option<SocketAddr>,
    /// `--status-token-file`: enables the status page's write actions.
    pub(crate) status_token_file: Option<PathBuf>,
    /// Next-hop cache lifetime; `None` keeps the data plane's default.
    pub(crate) nexthop_ttl: Option<std::time::Duration>,
    /// `--attach`; `None` = auto.
    pub(crate) attach: Option<AttachMode>,
}

pub(crate) const DEFAULT_CONFIG: &str = "/etc/keepalived/keepalived.conf";

/// `--attach`'s value: `None` is auto.
#[derive(Clone, Copy)]
struct Attach(Option<AttachMode>);

fn attach(v: &str) -> Result<Attach, String> {
    match v {
        "auto" => Ok(Attach(None)),
        m => m
            .parse()
            .map(|m| Attach(Some(m)))
            .map_err(|_| format!("'{v}' is not xdp, tc or auto")),
    }
}

/// `--interfaces`' comma-separated list (one value, not a repeated option).
#[derive(Clone)]
struct Interfaces(Vec<String>);

fn interfaces(v: &str) -> Result<Interfaces, String> {
    let list: Vec<String> = v
        .split(',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if list.is_empty() {
        return Err("no interface named".into());
    }
    Ok(Interfaces(list))
}

/// The options, as `xvsd --help` shows them.
#[derive(Parser)]
#[command(name = "xvsd", version, about = "the xvs daemon", long_about = None)]
struct Cli {
    /// control socket
    #[arg(long, value_name = "PATH", env = SOCKET_ENV, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// let this group connect to the control socket and list (the socket
    /// becomes root:GROUP 0660; without it root:root 0600); changes stay
    /// root's
    #[arg(long, value_name = "NAME")]
    control_group: Option<String>,
    /// where BPF maps are pinned; a bpffs is mounted on its parent when none
    /// is there
    #[arg(long, value_name = "PATH", default_value = "/sys/fs/bpf/xvs")]
    pin_path: PathBuf,
    /// attach to these interfaces (default: every non-loopback interface of
    /// the network namespace)
    #[arg(long, value_name = "A,B", value_parser = interfaces)]
    interfaces: Option<Interfaces>,
    /// connection table entries, two per NAT connection
    #[arg(long, value_name = "N", default_value_t = Options::default().conn_capacity,
          value_parser = clap::value_parser!(u32).range(1..))]
    conn_tab_size: u32,
    /// service slots
    #[arg(long, value_name = "N", default_value_t = Options::default().max_services,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_services: u32,
    /// real-server slots
    #[arg(long, value_name = "N", default_value_t = Options::default().max_dests,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_dests: u32,
    /// where the table is kept across restarts (default: the socket path +
    /// .state)
    #[arg(long, value_name = "PATH")]
    state_file: Option<PathBuf>,
    /// run the LVS half of keepalived from this keepalived.conf: virtual
    /// servers, health checks, quorum, sorry servers; SIGHUP reloads it
    #[arg(short = 'f', long, visible_alias = "use-file", value_name = "FILE")]
    config: Option<PathBuf>,
    /// the config id for '@ID' lines (default: the host name up to its first
    /// dot, as keepalived)
    #[arg(short = 'i', long, value_name = "ID")]
    config_id: Option<String>,
    /// check the configuration (--config, default
    /// /etc/keepalived/keepalived.conf) and exit: 0 when xvsd can run it, 1
    /// with 'file:line: error' lines
    #[arg(short = 't', long, visible_alias = "config-test")]
    test: bool,
    /// serve Prometheus metrics on http://ADDR:PORT/metrics (off by default)
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<SocketAddr>,
    /// let the status page (http://ADDR:PORT/ of --metrics-listen) drain
    /// real servers and set weights for whoever presents the token in this
    /// file (first line, at least 16 characters; the file must be root's,
    /// mode 0600 or stricter); without it the page is read-only
    #[arg(long, value_name = "PATH", requires = "metrics_listen")]
    status_token_file: Option<PathBuf>,
    /// how the data plane hooks in: XDP (fastest on NICs with driver XDP), tc
    /// clsact ingress (packets stay skbs: faster on veth and other virtual
    /// devices), or auto: xdp when every interface is a device with a driver,
    /// else tc (auto falls back to xdp where tc cannot load)
    #[arg(long, value_name = "xdp|tc|auto", default_value = "auto", value_parser = attach)]
    attach: Attach,
    /// how long the data plane reuses a route/neighbour lookup (default 100;
    /// 0: look up every packet); a changed route or real-server MAC is
    /// followed within it
    #[arg(long, value_name = "N")]
    nexthop_ttl_ms: Option<u64>,
    /// load the data plane without attaching it and print which optional
    /// kernel features it finds (each one is probed on the running kernel;
    /// what is missing has a slower fallback), then exit
    #[arg(long)]
    features: bool,
    /// remove the data plane: the program from every interface of the network
    /// namespace and the pinned maps (every connection is lost; the saved
    /// table stays), then exit. xvsd itself never detaches: stopped, killed or
    /// restarted, it leaves the data plane forwarding with the table as it
    /// was, and the next xvsd adopts it
    #[arg(long)]
    detach: bool,
}

/// The command line; clap prints help, version and usage errors (exit 2)
/// itself.
pub(crate) fn parse_args() -> Result<Option<Args>> {
    let c = Cli::parse();
    let opts = Options {
        pin_path: Some(c.pin_path.clone()),
        conn_capacity: c.conn_tab_size,
        max_services: c.max_services,
        max_dests: c.max_dests,
        ..Options::default()
    };
    Ok(Some(Args {
        socket: c.socket,
        control_group: c.control_group,
        pin_path: c.pin_path,
        interfaces: c.interfaces.map(|i| i.0),
        state_file: c.state_file,
        opts,
        config: c.config,
        config_id: c.config_id,
        test: c.test,
        features: c.features,
        detach: c.detach,
        metrics: c.metrics_listen,
        status_token_file: c.status_token_file,
        nexthop_ttl: c.nexthop_ttl_ms.map(std::time::Duration::from_millis),
        attach: c.attach.0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("xvsd").chain(args.iter().copied()))
    }

    #[test]
    fn options_as_before() {
        let c = parse(&[
            "-f",
            "k.conf",
            "-t",
            "--interfaces=eth0,,eth1",
            "--attach",
            "tc",
            "--conn-tab-size",
            "65536",
            "--nexthop-ttl-ms=0",
            "--metrics-listen",
            "127.0.0.1:9100",
            "--status-token-file",
            "/etc/xvs/token",
        ])
        .unwrap();
        assert_eq!(c.config, Some(PathBuf::from("k.conf")));
        assert!(c.test && !c.features && !c.detach);
        assert_eq!(c.interfaces.unwrap().0, ["eth0", "eth1"]);
        assert_eq!(c.attach.0, Some(AttachMode::Tc));
        assert_eq!(c.conn_tab_size, 65536);
        assert_eq!(c.max_dests, 16384);
        assert_eq!(c.nexthop_ttl_ms, Some(0));
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(c.status_token_file, Some(PathBuf::from("/etc/xvs/token")));
        let c = parse(&["--use-file", "a", "--config-test", "--attach", "auto"]).unwrap();
        assert_eq!(c.config, Some(PathBuf::from("a")));
        assert!(c.test);
        assert_eq!(c.attach.0, None);
        for bad in [
            &["--conn-tab-size", "0"][..],
            &["--interfaces", ","],
            &["--attach", "udp"],
            &["--metrics-listen", "9100"],
            &["--status-token-file", "/etc/xvs/token"],
            &["--bogus"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
