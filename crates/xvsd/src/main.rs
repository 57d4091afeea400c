//! xvsd: the xvs daemon. See `xvsd --help` and docs/api.md.

use anyhow::{bail, Context, Result};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use xvs_core::api::{ConnEntry, DEFAULT_SOCKET, SOCKET_ENV};
use xvs_core::model::{ConnState, Dest, Service, ServiceKey, SyncDaemon, SyncState, Timeouts};
use xvs_dataplane::{monotonic_ns, AttachMode, Dataplane, Options, SvcSched};
use xvsd::daemon::{AllStats, Daemon, Plane};
use xvsd::table::{Backend, Limits};

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

struct Args {
    socket: PathBuf,
    pin_path: PathBuf,
    interfaces: Option<Vec<String>>,
    state_file: Option<PathBuf>,
    opts: Options,
    config: Option<PathBuf>,
    config_id: Option<String>,
    test: bool,
    features: bool,
    detach: bool,
    metrics: Option<std::net::SocketAddr>,
    /// Next-hop cache lifetime; `None` keeps the data plane's default.
    nexthop_ttl: Option<std::time::Duration>,
    /// `--attach`; `None` = auto.
    attach: Option<AttachMode>,
}

const DEFAULT_CONFIG: &str = "/etc/keepalived/keepalived.conf";

fn parse_args() -> Result<Option<Args>> {
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

static STOP: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);
/// Write end of the loop's wake-up socket (-1 until the loop runs).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGHUP {
        RELOAD.store(true, Ordering::SeqCst);
    } else {
        STOP.store(true, Ordering::SeqCst);
    }
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the buffer is a valid byte.
        unsafe {
            libc::write(fd, [1u8].as_ptr().cast(), 1);
        }
    }
}

fn install_signal_handlers() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; sigaction is given a zeroed, then filled struct.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

const BPF_FS_MAGIC: i64 = 0xcafe4a11;

fn is_bpffs(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statfs.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}

/// Pins need a bpffs; on a fresh boot (and inside `ip netns exec`, which
/// remounts /sys) there is none, so mount one on the pin path's parent.
fn ensure_bpffs(pin_path: &Path) -> Result<()> {
    let parent = pin_path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    if is_bpffs(parent) {
        return Ok(());
    }
    let target = std::ffi::CString::new(parent.as_os_str().as_encoded_bytes())?;
    // SAFETY: all pointers are valid NUL-terminated strings; data is null.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        bail!(
            "mounting a bpffs on {}: {}",
            parent.display(),
            std::io::Error::last_os_error()
        );
    }
    log::info!("mounted a bpffs on {}", parent.display());
    Ok(())
}

fn all_interfaces() -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("/sys/class/net").context("listing /sys/class/net")? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name != "lo" {
            names.push(name);
        }
    }
    names.sort();
    if names.is_empty() {
        bail!("no interface to attach to in this network namespace");
    }
    Ok(names)
}

/// `--attach auto`: XDP when every interface is backed by a device with a
/// driver (`/sys/class/net/X/device`), where native XDP runs before any
/// skb exists; tc otherwise: on veth, bridges, bonds and the like XDP has
/// to convert each skb (veth) or runs in generic mode, and tc is faster.
fn auto_attach_mode(ifaces: &[String]) -> AttachMode {
    let physical = |i: &String| Path::new("/sys/class/net").join(i).join("device").exists();
    if !ifaces.is_empty() && ifaces.iter().all(physical) {
        AttachMode::Xdp
    } else {
        AttachMode::Tc
    }
}

fn sysctl(path: &str, value: &str) -> Result<()> {
    std::fs::write(path, value).with_context(|| format!("writing {path}"))
}

/// The data plane behind the daemon's traits.
struct Loaded {
    dp: Dataplane,
    conn_capacity: u32,
    /// Route, link and neighbour changes: DR/TUN next hops follow them.
    monitor: Option<xvs_dataplane::nexthop::Monitor>,
    /// `drop_no_neigh + drop_fib` at the last next-hop refresh, when it
    /// ran, and how many dests it left unresolved.
    misses_seen: u64,
    refreshed: Option<std::time::Instant>,
    unresolved: u32,
    /// A change arrived too soon after the last refresh (our own ARP
    /// requests make neighbour events too): the next tick refreshes.
    pending: bool,
    /// The connection sync daemons (`--start-daemon`).
    sync: xvsd::sync_io::SyncDaemons,
}

/// How long a change waits for the neighbours of the DR/TUN real servers
/// it added.
const NEXTHOP_SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Two refreshes on network changes are at least this far apart.
const NEXTHOP_MIN_GAP: std::time::Duration = std::time::Duration::from_millis(200);

/// Next hops are refreshed at least this often, whatever the kernel says.
const NEXTHOP_REFRESH: std::time::Duration = std::time::Duration::from_secs(10);

impl Backend for Loaded {
    fn upsert_service(
        &mut self,
        svc_id: u32,
        svc: &Service,
        sched: &SvcSched,
    ) -> Result<(), String> {
        self.dp
            .upsert_service(svc_id, svc, sched)
            .map_err(|e| e.to_string())
    }
    fn remove_service(&mut self, svc_id: u32, key: &ServiceKey) -> Result<(), String> {
        self.dp
            .remove_service(svc_id, key)
            .map_err(|e| e.to_string())
    }
    fn upsert_dest(&mut self, dest_id: u32, svc_id: u32, dest: &Dest) -> Result<(), String> {
        // DR/TUN: the next hop is resolved (or asked for) right here.
        self.dp
            .upsert_dest(dest_id, svc_id, dest)
            .map_err(|e| e.to_string())
    }
    fn trash_dest(&mut self, dest_id: u32) -> Result<(), String> {
        self.dp.trash_dest(dest_id).map_err(|e| e.to_string())
    }
    fn remove_dest(&mut self, dest_id: u32) -> Result<(), String> {
        let ended = self.dp.remove_dest(dest_id).map_err(|e| e.to_string())?;
        if ended > 0 {
            log::info!("ended {ended} connection(s) of a removed destination");
        }
        Ok(())
    }
    fn zero_svc(&mut self, svc_id: u32) -> Result<(), String> {
        self.dp.zero_svc_stats(svc_id).map_err(|e| e.to_string())
    }
    fn zero_dest(&mut self, dest_id: u32) -> Result<(), String> {
        self.dp.zero_dest_stats(dest_id).map_err(|e| e.to_string())
    }
}

impl Plane for Loaded {
    fn all_stats(&self) -> Result<AllStats, String> {
        Ok(AllStats {
            svc: self.dp.all_svc_stats().map_err(|e| e.to_string())?,
            dest: self.dp.all_dest_stats().map_err(|e| e.to_string())?,
        })
    }
    fn dest_conns(&self, dest_id: u32) -> Result<(u32, u32), String> {
        self.dp.dest_conns(dest_id).map_err(|e| e.to_string())
    }
    fn persist_conns(&self, dest_id: u32) -> Result<u32, String> {
        self.dp.persist_conns(dest_id).map_err(|e| e.to_string())
    }
    fn expire_locality(&mut self, full: bool) {
        let exp = xvs_core::sched::locality::DEFAULT_EXPIRATION;
        match self.dp.expire_locality(full, exp) {
            Ok(0) => {}
            Ok(n) => log::debug!("expired {n} lblc/lblcr cache entries"),
            Err(e) => log::warn!("lblc/lblcr cache expiry failed: {e}"),
        }
    }
    fn conns(&self, t: &Timeouts) -> Result<Vec<ConnEntry>, String> {
        let now = monotonic_ns();
        let conns = self.dp.conns().map_err(|e| e.to_string())?;
        let templates = self.dp.templates().map_err(|e| e.to_string())?;
        // Templates as IPVS lists them: client port 0, state NONE or
        // ASSURED, the time
        // left of the persistence timeout (while connections still use an
        // idle template, the kernel keeps re-arming that timer).
        let tmpl: Vec<ConnEntry> = templates
            .iter()
            .map(|t| {
                let idle_ms = now.saturating_sub(t.last_seen_ns) / 1_000_000;
                let limit_ms = u64::from(t.timeout_secs) * 1000;
                let left = if idle_ms < limit_ms {
                    limit_ms - idle_ms
                } else if t.conns > 0 && limit_ms > 0 {
                    limit_ms - (idle_ms - limit_ms) % limit_ms
                } else {
                    0
                };
                ConnEntry {
                    proto: t.proto,
                    caddr: t.caddr,
                    cport: 0,
                    vaddr: t.vaddr,
                    vport: t.vport,
                    daddr: t.daddr,
                    dport: t.dport,
                    state: if t.assured {
                        ConnState::Assured
                    } else {
                        ConnState::None
                    },
                    fwd: t.fwd,
                    expires_ms: left,
                }
            })
            .collect();
        Ok(tmpl
            .into_iter()
            .chain(conns.iter().map(|c| {
                let idle_ms = now.saturating_sub(c.last_seen_ns) / 1_000_000;
                let limit_ms = u64::from(c.state.timeout_secs(t)) * 1000;
                ConnEntry {
                    proto: c.proto,
                    caddr: c.caddr,
                    cport: c.cport,
                    vaddr: c.vaddr,
                    vport: c.vport,
                    daddr: c.daddr,
                    dport: c.dport,
                    state: c.state,
                    fwd: c.fwd,
                    expires_ms: limit_ms.saturating_sub(idle_ms),
                }
            }))
            .collect())
    }
    fn conn_count(&self) -> Result<u64, String> {
        self.dp.conn_count().map_err(|e| e.to_string())
    }
    fn conn_entries(&self) -> u64 {
        self.dp.conn_entries()
    }
    fn expire(&mut self, t: &Timeouts) -> Result<u64, String> {
        self.dp.expire_conns(t).map_err(|e| e.to_string())
    }
    fn counters(&self) -> Result<Vec<(String, u64)>, String> {
        Ok(self
            .dp
            .counters()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect())
    }
    fn interfaces(&self) -> Vec<String> {
        self.dp.attached()
    }
    fn conn_capacity(&self) -> u32 {
        self.conn_capacity
    }
    fn features(&self) -> Vec<(String, bool)> {
        self.dp
            .features()
            .report()
            .into_iter()
            .map(|(f, on)| (f.name.to_string(), on))
            .collect()
    }
    fn attach_mode(&self) -> String {
        self.dp.mode().name().to_string()
    }
    fn settle_nexthops(&mut self) {
        let left = self.dp.await_nexthops(NEXTHOP_SETTLE);
        if left > 0 {
            log::info!(
                "{left} new real server(s) not resolved within {NEXTHOP_SETTLE:?}; their packets \
                 are dropped until they answer ARP"
            );
        }
    }
    fn network_fd(&self) -> Option<std::os::fd::RawFd> {
        self.monitor.as_ref().map(|m| m.fd())
    }
    fn start_sync(&mut self, d: &SyncDaemon) -> Result<SyncDaemon, String> {
        self.sync.start(d)
    }
    fn stop_sync(&mut self, state: SyncState) -> Result<(), String> {
        self.sync.stop(state);
        Ok(())
    }
    fn sync_tick(&mut self, timeouts: &Timeouts) {
        self.sync.tick(&self.dp, timeouts);
    }
    fn maintain_nexthops(&mut self) {
        self.pending |= self.monitor.as_ref().is_some_and(|m| m.drain());
        let misses = ["drop_no_neigh", "drop_fib"]
            .iter()
            .map(|c| self.dp.counter(c).unwrap_or(0))
            .sum::<u64>();
        let since = self.refreshed.map(|t| t.elapsed());
        let due = since.is_none_or(|d| d >= NEXTHOP_REFRESH);
        let wanted = self.pending || misses != self.misses_seen || self.unresolved != 0;
        if !(due || wanted && since.is_none_or(|d| d >= NEXTHOP_MIN_GAP)) {
            return;
        }
        self.pending = false;
        match self.dp.refresh_nexthops() {
            Ok((_, unresolved)) => {
                if unresolved != self.unresolved || misses != self.misses_seen {
                    log::info!(
                        "real-server next hops: {unresolved} unresolved{}",
                        if misses > self.misses_seen {
                            format!(
                                " ({} packet(s) dropped for want of one)",
                                misses - self.misses_seen
                            )
                        } else {
                            String::new()
                        }
                    );
                }
                self.unresolved = unresolved;
                self.misses_seen = misses;
                self.refreshed = Some(std::time::Instant::now());
            }
            Err(e) => log::warn!("refreshing real-server next hops: {e}"),
        }
    }
}

/// `xvsd --test`: every warning and error of the file, and whether xvsd
/// can run it.
fn test_config(args: &Args) -> i32 {
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let opts = xvsd::config::options(args.config_id.as_deref());
    match xvsd::config::load(&path, &opts) {
        Ok(l) => {
            for w in &l.warnings {
                eprintln!("{w}");
            }
            println!(
                "{}: configuration OK: {} virtual server(s), {} real server(s)",
                path.display(),
                l.managed.services.len(),
                l.managed.rs_count()
            );
            0
        }
        Err(errs) => {
            for w in &errs.warnings {
                eprintln!("{w}");
            }
            for e in &errs.errors {
                eprintln!("{e}");
            }
            eprintln!(
                "{}: configuration refused: {} error(s)",
                path.display(),
                errs.errors.len()
            );
            1
        }
    }
}

fn run(args: Args) -> Result<()> {
    // A configuration xvsd cannot run stops it before it touches anything.
    let lvs_opts = xvsd::config::options(args.config_id.as_deref());
    if let Some(cfg) = &args.config {
        if let Err(errs) = xvsd::config::load(cfg, &lvs_opts) {
            for w in &errs.warnings {
                log::warn!("{w}");
            }
            for e in &errs.errors {
                log::error!("{e}");
            }
            bail!(
                "{}: configuration refused: {} error(s)",
                cfg.display(),
                errs.errors.len()
            );
        }
    }
    let listener = xvsd::server::bind(&args.socket)?;
    let state_file = args
        .state_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.state", args.socket.display())));
    ensure_bpffs(&args.pin_path)?;
    if !state_file.exists() && args.pin_path.exists() {
        // Pinned maps without a saved table belong to nothing we know:
        // start from empty maps rather than serve stale services.
        log::info!(
            "no saved table at {}: clearing old pins under {}",
            state_file.display(),
            args.pin_path.display()
        );
        std::fs::remove_dir_all(&args.pin_path)
            .with_context(|| format!("removing {}", args.pin_path.display()))?;
    }
    let ifaces = match &args.interfaces {
        Some(l) => l.clone(),
        None => all_interfaces()?,
    };
    let mut opts = args.opts.clone();
    opts.attach_mode = match args.attach {
        Some(m) => m,
        None => auto_attach_mode(&ifaces),
    };
    let mut dp = match Dataplane::open(&opts) {
        // auto: a kernel that cannot load the tc build still gets the
        // XDP one.
        Err(e) if args.attach.is_none() && opts.attach_mode == AttachMode::Tc => {
            log::warn!("the tc data plane did not load ({e}); using XDP");
            opts.attach_mode = AttachMode::Xdp;
            Dataplane::open(&opts).context("loading the data plane")?
        }
        r => r.context("loading the data plane")?,
    };
    log::info!(
        "data plane: {} ({})",
        opts.attach_mode.name(),
        if args.attach.is_some() {
            "--attach"
        } else {
            "auto"
        }
    );
    if let Some(ttl) = args.nexthop_ttl {
        dp.set_nexthop_ttl(ttl)
            .context("setting the next-hop cache lifetime")?;
        log::info!("next-hop cache lifetime {} ms", ttl.as_millis());
    }
    if std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() == "0") {
        log::warn!(
            "net.ipv4.ip_forward is 0: NAT (-m) services need it, as with LVS-NAT (the kernel \
             forwards what the data plane hands it, and bpf_fib_lookup refuses to route); \
             DR (-g) and TUN (-i) do not"
        );
    }
    for ifname in &ifaces {
        dp.attach(ifname)
            .with_context(|| format!("attaching the data plane to {ifname}"))?;
        // Rewritten replies handed to the kernel carry the VIP, a local
        // address, as source; without accept_local the kernel drops them.
        sysctl(
            &format!("/proc/sys/net/ipv4/conf/{ifname}/accept_local"),
            "1",
        )?;
        log::info!("attached to {ifname}");
    }
    remove_leftovers(&ifaces);
    let plane = Loaded {
        dp,
        conn_capacity: args.opts.conn_capacity,
        monitor: xvs_dataplane::nexthop::Monitor::open()
            .map_err(|e| log::warn!("{e}: next hops are refreshed every {NEXTHOP_REFRESH:?} only"))
            .ok(),
        misses_seen: 0,
        refreshed: None,
        unresolved: 0,
        pending: false,
        sync: Default::default(),
    };
    let limits = Limits {
        max_services: args.opts.max_services,
        max_dests: args.opts.max_dests,
    };
    let mut daemon = Daemon::new(plane, limits, Some(state_file))?;
    let result = serve(&mut daemon, &args, &listener, lvs_opts);
    daemon.shutdown_lvs();
    let left = daemon.plane_mut().dp.leave_attached();
    log::info!(
        "stopping: the data plane stays on {} and forwards with the table as it is \
         (health checks resume when xvsd starts again; `xvsd --detach` removes it)",
        left.join(", ")
    );
    let _ = std::fs::remove_file(&args.socket);
    result
}

/// `xvsd --detach`: removes what a stopped xvsd left forwarding, the
/// program on every interface and the pinned maps. Refused while an xvsd
/// answers on the socket (it would go on with maps no program uses).
fn detach(args: &Args) -> Result<()> {
    if std::os::unix::net::UnixStream::connect(&args.socket).is_ok() {
        bail!(
            "--detach: an xvsd is running ({}): stop it first",
            args.socket.display()
        );
    }
    let found = xvs_dataplane::leftover::find();
    for a in &found {
        let done = xvs_dataplane::leftover::remove(a)
            .with_context(|| format!("--detach: {}", a.ifname))?;
        println!("{done}");
    }
    if found.is_empty() {
        println!("no interface has the data plane");
    }
    if xvs_dataplane::pins::remove(&args.pin_path)? {
        println!("removed the pinned maps under {}", args.pin_path.display());
    }
    Ok(())
}

/// Removes the data plane from interfaces of this namespace that a
/// previous xvsd served and this one does not.
fn remove_leftovers(ifaces: &[String]) {
    for a in xvs_dataplane::leftover::find() {
        if ifaces.contains(&a.ifname) {
            continue;
        }
        match xvs_dataplane::leftover::remove(&a) {
            Ok(done) => log::info!("not among the interfaces served now: {done}"),
            Err(e) => log::warn!("removing a previous data plane: {e}"),
        }
    }
}

fn serve(
    daemon: &mut Daemon<Loaded>,
    args: &Args,
    listener: &std::os::unix::net::UnixListener,
    lvs_opts: xvs_keepalived::Options,
) -> Result<()> {
    if let Some(cfg) = &args.config {
        let engine = xvsd::health::Engine::start().context("starting the health checkers")?;
        let lvs = xvsd::lvs::Lvs::new(cfg.clone(), lvs_opts, Box::new(engine));
        if let Err(errors) = daemon.use_config(lvs) {
            bail!(
                "{}: cannot apply the configuration: {}",
                cfg.display(),
                errors.join("; ")
            );
        }
    }
    if let Some(addr) = args.metrics {
        let sink =
            xvsd::metrics::serve(addr).with_context(|| format!("--metrics-listen {addr}"))?;
        daemon.set_metrics_sink(sink);
        log::info!("metrics on http://{addr}/metrics");
    }
    let (wake_r, wake_w) = std::os::unix::net::UnixStream::pair()?;
    wake_r.set_nonblocking(true)?;
    wake_w.set_nonblocking(true)?;
    WAKE_FD.store(wake_w.as_raw_fd(), Ordering::SeqCst);
    log::info!("serving {}", args.socket.display());
    let result = xvsd::server::run_with(
        daemon,
        listener,
        &xvsd::server::Signals {
            stop: &STOP,
            reload: &RELOAD,
            wake: Some(&wake_r),
        },
    );
    WAKE_FD.store(-1, Ordering::SeqCst);
    drop(wake_w);
    result
}

/// `xvsd --features`: loads each build of the data plane (small tables,
/// nothing pinned or attached) and prints what it found; 0 when at least
/// one build loads.
fn print_features() -> i32 {
    let mut any = false;
    for mode in [AttachMode::Xdp, AttachMode::Tc] {
        let opts = Options {
            conn_capacity: 1024,
            max_services: 16,
            max_dests: 16,
            ring_capacity: 1024,
            persist_capacity: 16,
            locality_capacity: 16,
            attach_mode: mode,
            pin_path: None,
        };
        match Dataplane::open(&opts) {
            Ok(dp) => {
                any = true;
                println!("{}: loads", mode.name());
                for (f, on) in dp.features().report() {
                    if !mode.uses(f) {
                        continue;
                    }
                    let why = dp
                        .features()
                        .why(f)
                        .map(|w| format!(" ({w})"))
                        .unwrap_or_default();
                    if on {
                        println!("  {:<17} yes  {}", f.name, f.needs);
                    } else {
                        println!("  {:<17} no   {}{why}; {}", f.name, f.needs, f.without);
                    }
                }
            }
            Err(e) => println!("{}: does not load: {e}", mode.name()),
        }
    }
    if any {
        0
    } else {
        1
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    install_signal_handlers();
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return,
        Err(e) => {
            eprintln!("xvsd: {e:#}");
            std::process::exit(2);
        }
    };
    if args.test {
        std::process::exit(test_config(&args));
    }
    if args.features {
        std::process::exit(print_features());
    }
    if args.detach {
        if let Err(e) = detach(&args) {
            eprintln!("xvsd: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(e) = run(args) {
        eprintln!("xvsd: {e:#}");
        std::process::exit(1);
    }
}
