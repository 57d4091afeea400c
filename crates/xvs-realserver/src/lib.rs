//! `xvs-realserver`: prepares a Linux host (a network namespace) to be a
//! real server of an xvs (or LVS) director in direct-routing (`-g`) or
//! IP-tunnelling (`-i`) mode, and undoes it exactly.
//!
//! * [`cli`]: the command line.
//! * [`state`]: the per-network-namespace state file (what was set up, the
//!   original values to restore).
//! * [`plan`]: what a set of VIPs needs and the reconciliation that gets the
//!   host there, over the [`plan::System`] trait — pure and unit tested with
//!   an in-memory host.
//! * [`sys`]: the real host (`ip`, `/proc/sys`, `modprobe`, xvs's BPF decap
//!   program from `xvs_dataplane::decap`).
//!
//! The binary only parses, calls [`run`] and prints.

pub mod cli;
pub mod plan;
pub mod state;
pub mod sys;

use std::path::PathBuf;

use cli::{Action, Cli, Mode};
use plan::{describe, entry_for, SysctlKey, System};
use state::{State, Store};

/// Errors of xvs-realserver.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// Help, or a command line clap refused; `exit()` prints it as clap does.
    #[error("{0}")]
    Cli(clap::Error),
    /// A malformed command line.
    #[error("{0}")]
    Usage(String),
    /// Changing the host needs root.
    #[error("xvs-realserver {0} needs root (it changes addresses, sysctls and BPF programs)")]
    NotRoot(&'static str),
    /// A file or system call failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A command exited unsuccessfully.
    #[error("`{cmd}` failed ({}){}", status.map(|c| format!("exit status {c}")).unwrap_or_else(|| "killed".into()), if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    Command {
        cmd: String,
        status: Option<i32>,
        stderr: String,
    },
    /// xvs's BPF decap program could not be loaded, attached or detached.
    #[error("{context}: {source}")]
    Dataplane {
        context: String,
        #[source]
        source: xvs_dataplane::Error,
    },
    /// The state file is unreadable.
    #[error("state file {}: {msg}", path.display())]
    State { path: PathBuf, msg: String },
    /// No such interface.
    #[error("no such interface: {0}")]
    NoSuchDev(String),
    /// `--dev` is needed.
    #[error("cannot tell the real server's interface: no default route and {}; pass --dev", if .0.is_empty() { "no interface besides lo".to_string() } else { format!("several interfaces ({})", .0) })]
    NoDefaultDev(String),
    /// The request contradicts what is set up, or the kernel cannot do it.
    #[error("{0}")]
    Conflict(String),
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a parsed command on the real host; every line of output goes to
/// `out` as it happens.
pub fn run(cli: &Cli, out: &mut dyn FnMut(String)) -> Result<(), Error> {
    run_on(&mut sys::RealSystem, cli, out)
}

/// [`run`] on any [`System`].
pub fn run_on(sys: &mut dyn System, cli: &Cli, out: &mut dyn FnMut(String)) -> Result<(), Error> {
    match cli.action {
        Action::Setup => {
            if !is_root() {
                return Err(Error::NotRoot("setup"));
            }
            setup(sys, cli, out)
        }
        Action::Teardown => {
            if !is_root() {
                return Err(Error::NotRoot("teardown"));
            }
            teardown(sys, cli, out)
        }
        Action::Status => status(sys, cli, out),
    }
}

fn setup(sys: &mut dyn System, cli: &Cli, out: &mut dyn FnMut(String)) -> Result<(), Error> {
    let (Some(vip), Some(mode)) = (cli.vip, cli.mode) else {
        return Err(Error::Usage("setup needs --vip and --mode".into()));
    };
    if vip.is_ipv6() && mode == Mode::Tun {
        return Err(Error::Conflict(format!(
            "{vip}: --mode tun with an IPv6 VIP is not supported yet (IPv6 tunnels are not \
             decapsulated); --mode dr works"
        )));
    }
    let dev = match &cli.dev {
        Some(d) => d.clone(),
        None => sys.default_dev()?,
    };
    if !sys.dev_exists(&dev) {
        return Err(Error::NoSuchDev(dev));
    }
    let store = Store::open(&cli.state_dir)?;
    let mut st = store.load()?;
    let entry = entry_for(mode, cli.tun_type, cli.tun_port, &dev);
    if let Some(old) = st.vips.get(&vip) {
        let mut cmp = entry.clone();
        cmp.preexisting = old.preexisting;
        if *old != cmp {
            out(format!(
                "changing {vip}: {} -> {}",
                describe(old),
                describe(&entry)
            ));
        }
    }
    let mut target = st.vips.clone();
    target.insert(vip, entry);
    reconcile(sys, &store, &mut st, target, cli, out)
}

fn teardown(sys: &mut dyn System, cli: &Cli, out: &mut dyn FnMut(String)) -> Result<(), Error> {
    let store = Store::open(&cli.state_dir)?;
    let mut st = store.load()?;
    let mut target = st.vips.clone();
    if cli.all {
        if st.is_empty() {
            out("already torn down: nothing is set up in this network namespace".into());
            return Ok(());
        }
        target.clear();
    } else if let Some(vip) = cli.vip {
        if target.remove(&vip).is_none() {
            out(format!(
                "already torn down: {vip} is not set up in this network namespace"
            ));
            return Ok(());
        }
    }
    reconcile(sys, &store, &mut st, target, cli, out)
}

fn reconcile(
    sys: &mut dyn System,
    store: &Store,
    st: &mut State,
    target: std::collections::BTreeMap<std::net::IpAddr, state::VipEntry>,
    cli: &Cli,
    out: &mut dyn FnMut(String),
) -> Result<(), Error> {
    let r = plan::apply(sys, st, target, cli.decap, &mut |s| store.save(s), out);
    // Record whatever was done, also when a step failed.
    let saved = store.save(st);
    r?;
    saved
}

fn status(sys: &mut dyn System, cli: &Cli, out: &mut dyn FnMut(String)) -> Result<(), Error> {
    let store = Store::peek(&cli.state_dir)?;
    let st = store.load()?;
    out(format!(
        "state: {}{}",
        store.path().display(),
        if store.path().exists() { "" } else { " (none)" }
    ));
    if st.vips.is_empty() {
        out("no VIPs set up by xvs-realserver in this network namespace".into());
    }
    for (vip, e) in &st.vips {
        if cli.vip.is_some_and(|v| v != *vip) {
            continue;
        }
        let on_lo = sys.lo_has(*vip).unwrap_or(false);
        out(format!(
            "{vip}: {}; on lo: {}{}",
            describe(e),
            if on_lo { "yes" } else { "NO" },
            if e.preexisting {
                " (was there before setup)"
            } else {
                ""
            }
        ));
    }
    if let Some(vip) = cli.vip {
        if !st.vips.contains_key(&vip) {
            out(format!("{vip}: not set up"));
        }
    }
    if let Some(m) = st.tunnel {
        out(format!("decapsulation: {}", m.describe()));
    }
    for (dev, spec) in &st.decap {
        let att = match sys.decap_attached(dev) {
            Ok(true) => "attached".to_string(),
            Ok(false) => "NOT attached".to_string(),
            Err(e) => format!("unknown ({e})"),
        };
        out(format!("xvs decap on {dev}: {att} ({spec})"));
    }
    if !st.kernel.fou_ports_added.is_empty() {
        let ports: Vec<String> = st
            .kernel
            .fou_ports_added
            .iter()
            .map(|p| p.to_string())
            .collect();
        out(format!("ip fou ports added: {}", ports.join(", ")));
    }
    if st.saved_sysctls.is_empty() {
        for name in ["arp_ignore", "arp_announce", "rp_filter"] {
            let key = SysctlKey::new("all", name);
            if let Ok(v) = sys.sysctl_get(&key) {
                out(format!("{key} = {v}"));
            }
        }
    }
    for (k, orig) in &st.saved_sysctls {
        let cur = SysctlKey::parse(k)
            .and_then(|key| sys.sysctl_get(&key).ok())
            .unwrap_or_else(|| "?".into());
        out(format!("{k} = {cur} (original {orig})"));
    }
    Ok(())
}
