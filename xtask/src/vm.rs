//! `cargo xtask vm`: boot one of Debian's stock kernels (5.10, 6.1, 6.12)
//! under qemu and run a command inside it, as root, with the host's root
//! filesystem visible.
//!
//! * The kernels come from Debian's archive (`linux-image-amd64` of
//!   bullseye, bookworm and trixie, including their -security suites),
//!   fetched with apt under a private state directory and unpacked into
//!   `/var/cache/xvs-vm/<release>/` ([`kernel`]).
//! * A small initramfs (busybox-static and the modules to reach the host's
//!   root, in modules.dep order) mounts `/` of the host over virtio-9p,
//!   read-only, with a tmpfs overlay on top, and switch_roots into it
//!   ([`initramfs`], `init.sh`, `stage2.sh`).
//! * The guest runs the command through `sh`, each word quoted, in the
//!   host's working directory ([`script`]).
//! * The command's stdout and stderr travel on two virtio serial ports,
//!   its exit status on a third; the kernel console goes to a log file that
//!   is shown only when something fails ([`qemu`]).
//!
//! Other xtask commands call [`run_in_vm`] and [`ensure_kernel`].

mod cli;
mod initramfs;
mod kernel;
mod qemu;
mod script;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub(crate) use kernel::{ensure_kernel, Kernel, KernelTree};
pub(crate) use qemu::AccelChoice;

use cli::Invocation;
pub(crate) use cli::VmArgs;
use script::shell_quote;

/// Host packages the VM needs: qemu, busybox for the initramfs, kmod
/// (depmod on the host, modprobe in the guest), cpio for the initramfs,
/// the archive keyring for apt, and ipvsadm (the oracle the tests compare
/// xvsadm with, run in the guest from the host's root).
const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "kmod",
    "cpio",
    "debian-archive-keyring",
    "ipvsadm",
];

/// How to run the VM.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VmOpts {
    /// Which Debian kernel to boot.
    pub(crate) kernel: Kernel,
    /// Guest memory (`-m`).
    pub(crate) mem_mib: u32,
    /// vCPUs (`-smp`).
    pub(crate) smp: u32,
    /// For the whole run, boot included; qemu is killed after it.
    pub(crate) timeout: Duration,
    /// KVM or TCG.
    pub(crate) accel: AccelChoice,
    /// Print the qemu command line and the timings on stderr.
    pub(crate) verbose: bool,
}

impl Default for VmOpts {
    fn default() -> Self {
        VmOpts {
            kernel: Kernel::V6_12,
            mem_mib: 3072,
            smp: 2,
            timeout: Duration::from_secs(1800),
            accel: AccelChoice::Auto,
            verbose: false,
        }
    }
}

/// `cargo xtask vm ARGS`; returns the exit status xtask should end with.
pub(crate) fn cmd(args: VmArgs) -> Result<i32> {
    match args.invocation()? {
        Invocation::Fetch(kernels) => {
            require_root()?;
            ensure_host_packages()?;
            for k in kernels {
                let tree = ensure_kernel(k)?;
                initramfs::ensure_initramfs(&tree)?;
                println!(
                    "{k}: {} in {}",
                    tree.kver,
                    tree.cache_dir.join("tree").display()
                );
            }
            Ok(0)
        }
        Invocation::Run(opts, argv) => run_in_vm(&opts, &argv),
    }
}

fn require_root() -> Result<()> {
    if !xvs_testbed::is_root() {
        bail!(
            "`cargo xtask vm` must run as root (qemu exports the whole root filesystem to \
             the guest, and the kernels are cached in {}); try `sudo -E cargo xtask vm ...`",
            kernel::cache_root().display()
        );
    }
    Ok(())
}

/// Install what the VM needs on the host, if anything is missing. Quiet
/// when all is there: stdout belongs to the command.
pub(crate) fn ensure_host_packages() -> Result<()> {
    if PACKAGES.iter().any(|p| !crate::installed(p)) {
        crate::install_missing(PACKAGES)?;
    }
    Ok(())
}

/// Boot `opts.kernel` and run `argv` (through `sh`, each word quoted) in
/// the guest, in the host's current directory, as root. Its stdout and
/// stderr go to ours as they come; returns its exit status. Errors when
/// the guest does not boot or report a status (with the end of the kernel
/// console), on timeout, and on SIGINT/SIGTERM; qemu is killed by PID then.
pub(crate) fn run_in_vm(opts: &VmOpts, argv: &[String]) -> Result<i32> {
    if argv.is_empty() {
        bail!("no command to run in the VM");
    }
    require_root()?;
    xvs_testbed::install_interrupt_flag();
    ensure_host_packages()?;
    let tree = ensure_kernel(opts.kernel)?;
    let initramfs = initramfs::ensure_initramfs(&tree)?;
    let accel = qemu::accel(opts.accel);

    let run = RunDir::create()?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    std::fs::write(run.0.join("cmd.sh"), script::cmd_script(argv, &cwd, &env))?;
    std::fs::write(run.0.join("params"), script::params(&tree))?;

    let boot = qemu::Boot {
        vmlinuz: &tree.vmlinuz,
        initramfs: &initramfs,
        run_dir: &run.0,
        accel,
        mem_mib: opts.mem_mib,
        smp: opts.smp,
        timeout: opts.timeout,
        verbose: opts.verbose,
    };
    let outcome = boot.run()?;
    let what = format!(
        "{} ({}, {})",
        tree.kver,
        tree.kernel.release(),
        accel.name()
    );
    if opts.verbose {
        let boot = outcome
            .boot_time
            .map_or("-".to_string(), |d| format!("{:.1} s", d.as_secs_f64()));
        eprintln!(
            "xtask vm: {what}: qemu start to command {boot}, whole run {:.1} s",
            outcome.total.as_secs_f64()
        );
    }
    let console = || {
        format!(
            "--- last 40 lines of the kernel console ---\n{}\n--- qemu's own output ---\n{}",
            qemu::tail(&run.0.join("console.log"), 40),
            qemu::tail(&run.0.join("qemu.log"), 10)
        )
    };
    match outcome.stopped {
        Some(qemu::Stopped::Interrupted) => bail!("VM {what}: interrupted; qemu killed"),
        Some(qemu::Stopped::Timeout(t)) => {
            let state = match outcome.boot_time {
                Some(b) => format!("the command started {:.1} s after qemu", b.as_secs_f64()),
                None => "the command had not started".to_string(),
            };
            bail!(
                "VM {what}: timed out after {} s ({state}); qemu killed\n{}",
                t.as_secs(),
                console()
            )
        }
        None => {}
    }
    match (outcome.exit, outcome.boot_time) {
        (Some(rc), _) => Ok(rc),
        (None, Some(_)) => bail!(
            "VM {what}: the guest stopped before the command reported an exit status\n{}",
            console()
        ),
        (None, None) => bail!(
            "VM {what}: the guest did not boot to the command\n{}",
            console()
        ),
    }
}

/// The host directory of one run: the guest's `params` and `cmd.sh`, the
/// port sockets, the console log. Under /tmp: the guest sees it (stage 1
/// copies from it before the guest gets its own /tmp).
struct RunDir(PathBuf);

impl RunDir {
    fn create() -> Result<RunDir> {
        use std::os::unix::fs::DirBuilderExt;
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let p = PathBuf::from(format!(
            "/tmp/xvs-vm-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&p)
            .with_context(|| format!("creating {}", p.display()))?;
        Ok(RunDir(p))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
