//! The command line of `cargo xtask vm` (clap), and what it asks for.

use std::time::Duration;

use anyhow::{bail, Result};

use super::{AccelChoice, Kernel, VmOpts};

/// `cargo xtask vm` options.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct VmArgs {
    /// Debian's kernel to boot: 5.10, 6.1 or 6.12 (or bullseye, bookworm,
    /// trixie); with --fetch, may be given several times.
    #[arg(long = "kernel", value_name = "K", value_parser = crate::kernel_arg)]
    kernels: Vec<Kernel>,
    /// Guest memory in MiB.
    #[arg(long, value_name = "MiB", default_value_t = 3072,
          value_parser = clap::value_parser!(u32).range(256..))]
    mem: u32,
    /// Guest vCPUs.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..))]
    smp: u32,
    /// The whole run, boot included; qemu is killed after it.
    #[arg(long, value_name = "SECS", default_value_t = 1800,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// auto: KVM only with vmx/svm and no kvm_pvm, else TCG.
    #[arg(long, value_enum, default_value_t = AccelChoice::Auto)]
    accel: AccelChoice,
    /// Print the qemu command line and the boot time.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Only download and unpack the kernels (all three without --kernel).
    #[arg(long)]
    fetch: bool,
    /// The command to run in the guest (after `--`, or from the first word
    /// that is no option).
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<String>,
}

const AFTER_HELP: &str = "\
Boots Debian's stock kernel of that release (default 6.12) under qemu and runs
COMMAND as root inside, with the host's root filesystem read-only under a tmpfs
overlay (writes vanish at poweroff), in the current directory. COMMAND's stdout
and stderr are streamed; xtask exits with its exit status. --fetch: only
download and unpack the kernels into /var/cache/xvs-vm ($XVS_VM_CACHE
overrides).";

/// What `cargo xtask vm ARGS` asks for.
#[derive(Debug, PartialEq)]
pub(super) enum Invocation {
    /// `--fetch`: only download these kernels.
    Fetch(Vec<Kernel>),
    /// Run the command in a VM.
    Run(VmOpts, Vec<String>),
}

impl VmArgs {
    /// The checks clap cannot express: --fetch takes no command, a run
    /// needs one and boots one kernel.
    pub(super) fn invocation(self) -> Result<Invocation> {
        let mut command = self.command;
        // clap keeps a `--` that follows the first command word; a leading
        // one only separates.
        if command.first().map(String::as_str) == Some("--") {
            command.remove(0);
        }
        if self.fetch {
            if !command.is_empty() {
                bail!("--fetch takes no command");
            }
            let kernels = if self.kernels.is_empty() {
                Kernel::ALL.to_vec()
            } else {
                self.kernels
            };
            return Ok(Invocation::Fetch(kernels));
        }
        if command.is_empty() {
            bail!("no command to run in the VM (cargo xtask vm --help)");
        }
        let mut opts = VmOpts {
            mem_mib: self.mem,
            smp: self.smp,
            timeout: Duration::from_secs(self.timeout),
            accel: self.accel,
            verbose: self.verbose,
            ..VmOpts::default()
        };
        match self.kernels.as_slice() {
            [] => {}
            [k] => opts.kernel = *k,
            _ => bail!("one --kernel per run (only --fetch takes several)"),
        }
        Ok(Invocation::Run(opts, command))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        vm: VmArgs,
    }

    fn parse_args(s: &[String]) -> Result<Invocation> {
        use clap::Parser;
        let argv = std::iter::once("vm".to_string()).chain(s.iter().cloned());
        T::try_parse_from(argv)?.vm.invocation()
    }

    fn run(s: &[&str]) -> (VmOpts, Vec<String>) {
        match parse_args(&args(s)).unwrap() {
            Invocation::Run(o, c) => (o, c),
            other => panic!("{s:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_and_command() {
        let (o, c) = run(&["--", "sh", "-c", "exit 3"]);
        assert_eq!(o, VmOpts::default());
        assert_eq!(o.kernel, Kernel::V6_12);
        assert_eq!(c, args(&["sh", "-c", "exit 3"]));
        // The first word that is no option starts the command.
        let (_, c) = run(&["uname", "-r", "--", "x"]);
        assert_eq!(c, args(&["uname", "-r", "--", "x"]));
        // After --, options belong to the command.
        let (o, c) = run(&["--", "--kernel", "5.10"]);
        assert_eq!(o.kernel, Kernel::V6_12);
        assert_eq!(c, args(&["--kernel", "5.10"]));
    }

    #[test]
    fn options() {
        let (o, c) = run(&[
            "--kernel",
            "5.10",
            "--mem=2048",
            "--smp",
            "4",
            "--timeout",
            "60",
            "--accel",
            "tcg",
            "-v",
            "--",
            "true",
        ]);
        assert_eq!(o.kernel, Kernel::V5_10);
        assert_eq!((o.mem_mib, o.smp), (2048, 4));
        assert_eq!(o.timeout, Duration::from_secs(60));
        assert_eq!(o.accel, AccelChoice::Tcg);
        assert!(o.verbose);
        assert_eq!(c, args(&["true"]));
        assert_eq!(run(&["--kernel=bookworm", "x"]).0.kernel, Kernel::V6_1);
    }

    #[test]
    fn fetch_and_errors() {
        let p = |s: &[&str]| parse_args(&args(s));
        assert_eq!(
            p(&["--fetch"]).unwrap(),
            Invocation::Fetch(Kernel::ALL.to_vec())
        );
        assert_eq!(
            p(&["--fetch", "--kernel", "6.1", "--kernel", "5.10"]).unwrap(),
            Invocation::Fetch(vec![Kernel::V6_1, Kernel::V5_10])
        );
        for bad in [
            &[][..],
            &["--"],
            &["--kernel", "6.6", "--", "x"],
            &["--kernel"],
            &["--mem", "lots", "--", "x"],
            &["--smp", "0", "--", "x"],
            &["--accel", "hvf", "--", "x"],
            &["--bogus", "--", "x"],
            &["--fetch", "--", "x"],
            &["--kernel", "6.1", "--kernel", "6.12", "--", "x"],
        ] {
            assert!(p(bad).is_err(), "{bad:?} should fail");
        }
    }
}
