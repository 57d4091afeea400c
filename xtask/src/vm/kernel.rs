//! Debian's stock kernels: fetched with apt under a private state
//! directory (the host's sources, lists and package cache are never
//! touched), unpacked and depmod'ed in `/var/cache/xvs-vm/<release>/`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Where unpacked kernels, apt state and initramfs images live: outside the
/// checkout, so clean clones and repeated runs share them.
const DEFAULT_CACHE: &str = "/var/cache/xvs-vm";

/// The keyring every Debian suite in use here is signed with (the
/// bookworm package already carries trixie's keys).
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// A Debian release whose stock kernel the VM can boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    /// bullseye, 5.10.
    V5_10,
    /// bookworm, 6.1.
    V6_1,
    /// trixie, 6.12.
    V6_12,
}

impl Kernel {
    /// All kernels, oldest first.
    pub(crate) const ALL: [Kernel; 3] = [Kernel::V5_10, Kernel::V6_1, Kernel::V6_12];

    /// `5.10`, `6.1` or `6.12` (also accepts the release's code name).
    pub(crate) fn parse(s: &str) -> Result<Kernel> {
        Kernel::ALL
            .into_iter()
            .find(|k| s == k.version() || s == k.release())
            .with_context(|| format!("unknown kernel {s:?}; available: 5.10, 6.1, 6.12"))
    }

    /// The upstream series, as given to `--kernel`.
    pub(crate) fn version(self) -> &'static str {
        match self {
            Kernel::V5_10 => "5.10",
            Kernel::V6_1 => "6.1",
            Kernel::V6_12 => "6.12",
        }
    }

    /// The Debian release that ships it.
    pub(crate) fn release(self) -> &'static str {
        match self {
            Kernel::V5_10 => "bullseye",
            Kernel::V6_1 => "bookworm",
            Kernel::V6_12 => "trixie",
        }
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.version(), self.release())
    }
}

/// An unpacked kernel package with its `modules.dep`.
#[derive(Debug, Clone)]
pub(crate) struct KernelTree {
    /// Which release it came from.
    pub(crate) kernel: Kernel,
    /// `uname -r` of the guest, e.g. `6.1.0-37-amd64`.
    pub(crate) kver: String,
    /// `/var/cache/xvs-vm/<release>`: also holds the initramfs.
    pub(crate) cache_dir: PathBuf,
    /// The bzImage.
    pub(crate) vmlinuz: PathBuf,
    /// `<tree>/lib/modules/<kver>`, bound at `/lib/modules/<kver>` in the
    /// guest (it sees the host's root, so this path is valid there too).
    pub(crate) modules: PathBuf,
}

/// The cache root: `/var/cache/xvs-vm`, or `$XVS_VM_CACHE`.
pub(crate) fn cache_root() -> PathBuf {
    std::env::var_os("XVS_VM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE))
}

/// The unpacked kernel of `k`, downloading and unpacking it first when the
/// cache does not have it yet.
pub(crate) fn ensure_kernel(k: Kernel) -> Result<KernelTree> {
    let dir = cache_root().join(k.release());
    if let Some(tree) = cached_tree(k, &dir)? {
        return Ok(tree);
    }
    eprintln!(
        "xtask vm: fetching Debian's linux-image-amd64 of {} into {}",
        k,
        dir.display()
    );
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating {} (run as root?)", dir.display()))?;
    let apt = Apt::new(k, &dir)?;
    apt.run("apt-get", &["update"])?;
    let show = apt.run(
        "apt-cache",
        &["show", "--no-all-versions", "linux-image-amd64"],
    )?;
    let package = image_package(&show).with_context(|| {
        format!(
            "linux-image-amd64 of {} depends on no linux-image-*",
            k.release()
        )
    })?;
    eprintln!("xtask vm: linux-image-amd64 -> {package}");
    // A failed earlier attempt may have left a partial download behind.
    remove_debs(&dir)?;
    apt.run("apt-get", &["download", &package])?;
    let deb = find_deb(&dir, &package)?;
    unpack(&deb, &dir).with_context(|| format!("unpacking {}", deb.display()))?;
    std::fs::remove_file(&deb).with_context(|| format!("removing {}", deb.display()))?;
    cached_tree(k, &dir)?.context("the unpacked kernel is incomplete")
}

/// The tree in `dir/tree`, if a complete one is there (it is renamed into
/// place only after depmod succeeded).
fn cached_tree(k: Kernel, dir: &Path) -> Result<Option<KernelTree>> {
    let tree = dir.join("tree");
    let Ok(kver) = std::fs::read_to_string(tree.join("kver")) else {
        return Ok(None);
    };
    let kver = kver.trim().to_string();
    let vmlinuz = tree.join("boot").join(format!("vmlinuz-{kver}"));
    let modules = tree.join("lib/modules").join(&kver);
    if !vmlinuz.is_file() || !modules.join("modules.dep").is_file() {
        bail!(
            "{} is incomplete (no {} or modules.dep); remove it to fetch again",
            tree.display(),
            vmlinuz.display()
        );
    }
    Ok(Some(KernelTree {
        kernel: k,
        kver,
        cache_dir: dir.to_path_buf(),
        vmlinuz,
        modules,
    }))
}

/// apt-get/apt-cache with every piece of state in `<dir>/apt`.
struct Apt {
    dir: PathBuf,
    opts: Vec<String>,
}

impl Apt {
    fn new(k: Kernel, dir: &Path) -> Result<Apt> {
        let state = dir.join("apt");
        for sub in ["lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(state.join(sub))
                .with_context(|| format!("creating {}", state.join(sub).display()))?;
        }
        let sources = state.join("sources.list");
        std::fs::write(&sources, sources_list(k.release()))
            .with_context(|| format!("writing {}", sources.display()))?;
        let p = |p: PathBuf| p.to_string_lossy().into_owned();
        let mut opts = vec![
            format!("Dir::Etc::sourcelist={}", p(sources)),
            "Dir::Etc::sourceparts=-".to_string(),
            format!("Dir::State::Lists={}", p(state.join("lists"))),
            format!("Dir::Cache={}", p(state.join("cache"))),
            // Nothing is installed from these lists: no dpkg status.
            "Dir::State::status=/dev/null".to_string(),
            // The directories are root's, not _apt's; without this apt
            // warns that it downloads unsandboxed.
            "APT::Sandbox::User=root".to_string(),
            "Acquire::Languages=none".to_string(),
        ];
        // The host may have appstream installed, which adds these index
        // targets to every update; the kernel does not need them.
        for target in [
            "DEP-11",
            "DEP-11-icons",
            "DEP-11-icons-small",
            "DEP-11-icons-hidpi",
        ] {
            opts.push(format!(
                "Acquire::IndexTargets::deb::{target}::DefaultEnabled=false"
            ));
        }
        Ok(Apt {
            dir: dir.to_path_buf(),
            opts,
        })
    }

    /// Run `tool <opts> args` in the cache directory (where `apt-get
    /// download` puts the .deb), apt's progress on stderr; return stdout.
    fn run(&self, tool: &str, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(tool);
        for o in &self.opts {
            cmd.arg("-o").arg(o);
        }
        cmd.arg("-q")
            .args(args)
            .current_dir(&self.dir)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit());
        let quiet_stdout = tool == "apt-get";
        let out = cmd
            .output()
            .with_context(|| format!("running {tool} {}", args.join(" ")))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if quiet_stdout || !out.status.success() {
            // apt-get's progress goes to our stderr, so that `cargo xtask
            // vm -- CMD` keeps stdout for CMD alone.
            eprint!("{stdout}");
        }
        if !out.status.success() {
            bail!(
                "`{tool} {}` (private apt state in {}) failed ({})",
                args.join(" "),
                self.dir.join("apt").display(),
                out.status
            );
        }
        Ok(stdout)
    }
}

/// The sources.list of `release`: the release, its -updates and its
/// -security suites.
fn sources_list(release: &str) -> String {
    let line = |uri: &str, suite: &str| format!("deb [signed-by={KEYRING}] {uri} {suite} main\n");
    [
        line("http://deb.debian.org/debian", release),
        line(
            "http://deb.debian.org/debian",
            &format!("{release}-updates"),
        ),
        line(
            "http://deb.debian.org/debian-security",
            &format!("{release}-security"),
        ),
    ]
    .concat()
}

/// The image package `linux-image-amd64` depends on, from `apt-cache show
/// --no-all-versions` (the candidate: the newest of all suites).
fn image_package(show: &str) -> Option<String> {
    let depends = show.lines().find_map(|l| l.strip_prefix("Depends:"))?;
    depends
        .split([',', '|'])
        .map(|d| d.split_whitespace().next().unwrap_or(""))
        .find(|name| name.starts_with("linux-image-") && name.ends_with("-amd64"))
        .map(str::to_string)
}

fn remove_debs(dir: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "deb") {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    Ok(())
}

fn find_deb(dir: &Path, package: &str) -> Result<PathBuf> {
    let prefix = format!("{package}_");
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            return Ok(p);
        }
    }
    bail!(
        "apt-get download left no {prefix}*.deb in {}",
        dir.display()
    )
}

/// `dpkg-deb -x` into a scratch directory, `depmod` it, then rename it to
/// `tree`: a tree that exists is complete, also after an interrupted run.
fn unpack(deb: &Path, dir: &Path) -> Result<()> {
    let scratch = dir.join(format!("tree.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&scratch))?;
    // trixie's package installs below /usr (merged /usr); the host's
    // depmod (kmod 30) and modprobe look in /lib/modules only.
    let usr_modules = scratch.join("usr/lib/modules");
    let modules_root = scratch.join("lib/modules");
    if usr_modules.is_dir() && !modules_root.exists() {
        std::fs::create_dir_all(scratch.join("lib"))?;
        std::fs::rename(&usr_modules, &modules_root)?;
    }
    let kver = only_entry(&modules_root)?;
    run(Command::new("depmod").arg("-b").arg(&scratch).arg(&kver))?;
    std::fs::write(scratch.join("kver"), format!("{kver}\n"))?;
    let tree = dir.join("tree");
    if std::fs::rename(&scratch, &tree).is_err() {
        // Another run finished first: keep its tree.
        std::fs::remove_dir_all(&scratch)?;
    }
    Ok(())
}

/// The single directory in `dir` (the kernel version under lib/modules).
fn only_entry(dir: &Path) -> Result<String> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("expected one kernel in {}, found {names:?}", dir.display()),
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names() {
        assert_eq!(Kernel::parse("6.1").unwrap(), Kernel::V6_1);
        assert_eq!(Kernel::parse("trixie").unwrap(), Kernel::V6_12);
        assert!(Kernel::parse("6.6").is_err());
    }

    #[test]
    fn image_package_from_apt_cache_show() {
        let show = "Package: linux-image-amd64\nSource: linux-signed-amd64 (5.10.262+1)\n\
                    Version: 5.10.262-1\nDepends: linux-image-5.10.0-46-amd64 (= 5.10.262-1)\n\
                    Description: Linux for 64-bit PCs (meta-package)\n";
        assert_eq!(
            image_package(show).as_deref(),
            Some("linux-image-5.10.0-46-amd64")
        );
        let alt = "Depends: foo, linux-image-6.12.118+deb13-amd64 (= 6.12.118-1) | bar\n";
        assert_eq!(
            image_package(alt).as_deref(),
            Some("linux-image-6.12.118+deb13-amd64")
        );
        assert_eq!(image_package("Version: 1\n"), None);
    }

    #[test]
    fn sources_have_all_three_suites() {
        let s = sources_list("bookworm");
        assert!(s.contains("debian bookworm main"));
        assert!(s.contains("debian bookworm-updates main"));
        assert!(s.contains("debian-security bookworm-security main"));
        assert_eq!(s.matches("signed-by=").count(), 3);
    }
}
