//! The command line of `cargo xtask vm`.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{AccelChoice, Kernel, VmOpts};

/// `cargo xtask vm --help`.
pub(crate) const USAGE: &str = "\
usage: cargo xtask vm [--kernel 5.10|6.1|6.12] [--mem MiB] [--smp N] [--timeout SECS]
                      [--accel auto|kvm|tcg] [-v] -- COMMAND [ARGS...]
       cargo xtask vm --fetch [--kernel K ...]
Boots Debian's stock kernel of that release (default 6.12) under qemu and runs
COMMAND as root inside, with the host's root filesystem read-only under a tmpfs
overlay (writes vanish at poweroff), in the current directory. COMMAND's stdout
and stderr are streamed; xtask exits with its exit status. Defaults: --mem 3072
--smp 2 --timeout 1800 --accel auto (KVM only with vmx/svm and no kvm_pvm).
-v: print the qemu command line and the boot time. --fetch: only download and
unpack the kernels (all three without --kernel) into /var/cache/xvs-vm
($XVS_VM_CACHE overrides).";

/// What `cargo xtask vm ARGS` asks for.
#[derive(Debug, PartialEq)]
pub(super) enum Invocation {
    /// `-h`, `--help`.
    Help,
    /// `--fetch`: only download these kernels.
    Fetch(Vec<Kernel>),
    /// Run the command (the words after the options) in a VM.
    Run(VmOpts, Vec<String>),
}

/// Parse what follows `cargo xtask vm`. The command starts after `--` or
/// at the first word that is no option.
pub(super) fn parse_args(args: &[String]) -> Result<Invocation> {
    let mut opts = VmOpts::default();
    let mut kernels = Vec::new();
    let mut fetch = false;
    let mut command = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        if a == "--" {
            command = Some(args[i..].to_vec());
            break;
        }
        if !a.starts_with('-') {
            command = Some(args[i - 1..].to_vec());
            break;
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a, None),
        };
        let mut value = || -> Result<String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            let v = args
                .get(i)
                .with_context(|| format!("{name} needs a value"))?;
            i += 1;
            Ok(v.clone())
        };
        match name {
            "--kernel" => kernels.push(Kernel::parse(&value()?)?),
            "--mem" => opts.mem_mib = number(name, &value()?, 256)?,
            "--smp" => opts.smp = number(name, &value()?, 1)?,
            "--timeout" => opts.timeout = Duration::from_secs(number(name, &value()?, 1)?.into()),
            "--accel" => opts.accel = AccelChoice::parse(&value()?)?,
            "--fetch" => fetch = true,
            "-v" | "--verbose" => opts.verbose = true,
            "-h" | "--help" => return Ok(Invocation::Help),
            _ => bail!("unknown vm option {a:?}\n{USAGE}"),
        }
    }
    if fetch {
        if command.is_some() {
            bail!("--fetch takes no command");
        }
        if kernels.is_empty() {
            kernels = Kernel::ALL.to_vec();
        }
        return Ok(Invocation::Fetch(kernels));
    }
    let command = command.unwrap_or_default();
    if command.is_empty() {
        bail!("no command to run in the VM\n{USAGE}");
    }
    match kernels.as_slice() {
        [] => {}
        [k] => opts.kernel = *k,
        _ => bail!("one --kernel per run (only --fetch takes several)"),
    }
    Ok(Invocation::Run(opts, command))
}

fn number(name: &str, v: &str, min: u32) -> Result<u32> {
    let n: u32 = v
        .parse()
        .with_context(|| format!("{name} {v:?}: not a number"))?;
    if n < min {
        bail!("{name} {n}: at least {min}");
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
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
        assert_eq!(p(&["-h"]).unwrap(), Invocation::Help);
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
