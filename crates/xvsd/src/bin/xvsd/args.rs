//! `xvsd`'s command line.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use xvs_core::api::{DEFAULT_SOCKET, SOCKET_ENV};
use xvs_dataplane::{AttachMode, Options};

const USAGE: &str = "\
usage: xvsd [options]

  --socket PATH         control socket (default $XVS_SOCKET or /run/xvs/xvsd.sock)
  --pin-path PATH       where BPF maps are pinned (default /sys/fs/bpf/xvs);
                        a bpffs is mounted on its parent when none is there
  --interfaces A,B      attach to these interfaces (default: every
                        non-loopback interface of the network namespace)
  --conn-tab-size N     connection table entries, two per NAT connection
                        (default 1048576)
  --max-services N      service slots (default 4096)
  --max-dests N         real-server slots (default 16384)
  --state-file PATH     where the table is kept across restarts
                        (default: the socket path + .state)
  -f, --config FILE     run the LVS half of keepalived from this
                        keepalived.conf: virtual servers, health checks,
                        quorum, sorry servers; SIGHUP reloads it
  -i, --config-id ID    the config id for '@ID' lines (default: the host
                        name up to its first dot, as keepalived)
  -t, --test            check the configuration (--config, default
                        /etc/keepalived/keepalived.conf) and exit: 0 when
                        xvsd can run it, 1 with 'file:line: error' lines
  --metrics-listen ADDR:PORT
                        serve Prometheus metrics on http://ADDR:PORT/metrics
                        (off by default)
  -h, --help            this text
  --attach xdp|tc|auto  how the data plane hooks in: XDP (fastest on NICs
                        with driver XDP), tc clsact ingress (packets stay
                        skbs: faster on veth and other virtual devices), or
                        auto (default): xdp when every interface is a
                        device with a driver, else tc (auto falls back
                        to xdp where tc cannot load)
  --nexthop-ttl-ms N    how long the data plane reuses a route/neighbour
                        lookup (default 100; 0: look up every packet); a
                        changed route or real-server MAC is followed within it
  --features            load the data plane without attaching it and print
                        which optional kernel features it finds (each one
                        is probed on the running kernel; what is missing
                        has a slower fallback), then exit
  --detach              remove the data plane: the program from every interface
                        of the network namespace and the pinned maps (every
                        connection is lost; the saved table stays), then
                        exit. xvsd itself never detaches: stopped, killed or
                        restarted, it leaves the data plane forwarding with
                        the table as it was, and the next xvsd adopts it
  -V, --version         version
";

pub(crate) struct Args {
    pub(crate) socket: PathBuf,
    pub(crate) pin_path: PathBuf,
    pub(crate) interfaces: Option<Vec<String>>,
    pub(crate) state_file: Option<PathBuf>,
    pub(crate) opts: Options,
    pub(crate) config: Option<PathBuf>,
    pub(crate) config_id: Option<String>,
    pub(crate) test: bool,
    pub(crate) features: bool,
    pub(crate) detach: bool,
    pub(crate) metrics: Option<std::net::SocketAddr>,
    /// Next-hop cache lifetime; `None` keeps the data plane's default.
    pub(crate) nexthop_ttl: Option<std::time::Duration>,
    /// `--attach`; `None` = auto.
    pub(crate) attach: Option<AttachMode>,
}

pub(crate) const DEFAULT_CONFIG: &str = "/etc/keepalived/keepalived.conf";

pub(crate) fn parse_args() -> Result<Option<Args>> {
    let mut a = Args {
        socket: std::env::var_os(SOCKET_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        pin_path: PathBuf::from("/sys/fs/bpf/xvs"),
        interfaces: None,
        state_file: None,
        opts: Options::default(),
        config: None,
        config_id: None,
        test: false,
        features: false,
        detach: false,
        metrics: None,
        nexthop_ttl: None,
        attach: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<String> {
            inline
                .clone()
                .or_else(|| it.next())
                .with_context(|| format!("{name} needs {what}"))
        };
        let number = |s: String, n: &str| -> Result<u32> {
            match s.parse::<u32>() {
                Ok(v) if v > 0 => Ok(v),
                _ => bail!("{n}: '{s}' is not a positive number"),
            }
        };
        match name.as_str() {
            "--socket" => a.socket = value("a path")?.into(),
            "--pin-path" => a.pin_path = value("a path")?.into(),
            "--state-file" => a.state_file = Some(value("a path")?.into()),
            "-f" | "--config" | "--use-file" => a.config = Some(value("a file")?.into()),
            "-i" | "--config-id" => a.config_id = Some(value("an id")?),
            "-t" | "--test" | "--config-test" => a.test = true,
            "--features" => a.features = true,
            "--detach" => a.detach = true,
            "--metrics-listen" => {
                let v = value("ADDR:PORT")?;
                a.metrics =
                    Some(v.parse().map_err(|_| {
                        anyhow::anyhow!("--metrics-listen: '{v}' is not ADDR:PORT")
                    })?);
            }
            "--interfaces" => {
                let v = value("a comma-separated list of interfaces")?;
                let list: Vec<String> = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                if list.is_empty() {
                    bail!("--interfaces: no interface named");
                }
                a.interfaces = Some(list);
            }
            "--conn-tab-size" => a.opts.conn_capacity = number(value("a number")?, &name)?,
            "--max-services" => a.opts.max_services = number(value("a number")?, &name)?,
            "--max-dests" => a.opts.max_dests = number(value("a number")?, &name)?,
            "--attach" => {
                let v = value("xdp, tc or auto")?;
                a.attach =
                    match v.as_str() {
                        "auto" => None,
                        m => Some(m.parse().map_err(|_| {
                            anyhow::anyhow!("--attach: '{v}' is not xdp, tc or auto")
                        })?),
                    };
            }
            "--nexthop-ttl-ms" => {
                let v = value("milliseconds")?;
                let ms: u64 = v.parse().map_err(|_| {
                    anyhow::anyhow!("--nexthop-ttl-ms: '{v}' is not a number of milliseconds")
                })?;
                a.nexthop_ttl = Some(std::time::Duration::from_millis(ms));
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            "-V" | "--version" => {
                println!("xvsd {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            _ => bail!("unknown option '{arg}'\n{USAGE}"),
        }
    }
    a.opts.pin_path = Some(a.pin_path.clone());
    Ok(Some(a))
}
