//! xvsd: the xvs daemon. See `xvsd --help` and docs/api.md.

mod args;
mod dataplane;
mod notify;

use anyhow::{bail, Context, Result};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use xvs_dataplane::{AttachMode, Dataplane, Options};
use xvsd::daemon::Daemon;
use xvsd::table::Limits;
use xvsd::web::actions::Token;

use args::{parse_args, Args, DEFAULT_CONFIG};
use dataplane::Loaded;

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
    // A token file xvsd cannot use stops it before it touches anything too.
    let token = match &args.status_token_file {
        Some(path) => Some(Token::load(path).context("--status-token-file")?),
        None => None,
    };
    let group = match &args.control_group {
        Some(name) => Some(xvsd::access::group_id(name).context("--control-group")?),
        None => None,
    };
    let listener = xvsd::server::bind(&args.socket)?;
    xvsd::access::restrict(&args.socket, group)?;
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
    let plane = Loaded::new(dp, args.opts.conn_capacity);
    let limits = Limits {
        max_services: args.opts.max_services,
        max_dests: args.opts.max_dests,
    };
    let mut daemon = Daemon::new(plane, limits, Some(state_file))?;
    let result = serve(&mut daemon, &args, &listener, lvs_opts, token);
    daemon.shutdown_lvs();
    let left = daemon.plane_mut().leave_attached();
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
    token: Option<Token>,
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
        let writable = token.is_some();
        let (snapshot, inbox) =
            xvsd::web::serve(addr, token).with_context(|| format!("--metrics-listen {addr}"))?;
        daemon.set_web(snapshot, inbox);
        log::info!("metrics on http://{addr}/metrics");
        log::info!(
            "status page on http://{addr}/ ({})",
            if writable {
                "drain and weight changes with the token of --status-token-file"
            } else {
                "read-only"
            }
        );
    }
    let (wake_r, wake_w) = std::os::unix::net::UnixStream::pair()?;
    wake_r.set_nonblocking(true)?;
    wake_w.set_nonblocking(true)?;
    WAKE_FD.store(wake_w.as_raw_fd(), Ordering::SeqCst);
    log::info!("serving {}", args.socket.display());
    // Attached, configured, and the control socket has listened since
    // `bind`: requests queued from now on are answered by the loop.
    notify::ready();
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
    Ok(result?)
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
    notify::take();
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
