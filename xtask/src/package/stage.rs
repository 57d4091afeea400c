//! The file trees of the packages, as they will be installed, with their
//! maintainer scripts in `DEBIAN/`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::output;
use crate::workspace_root;

/// The binaries of `xvs`, in `usr/sbin` (they need root).
pub(crate) const BINARIES: [&str; 3] = ["xvsd", "xvsadm", "xvs-realserver"];

/// The man pages of `xvs` (`man/`).
const MAN_PAGES: [&str; 4] = ["xvsd.8", "xvsadm.8", "xvs-realserver.8", "xvs-rules.8"];

/// The systemd units (`dist/systemd/`). /lib, not /usr/lib: where
/// Debian 12's debhelper puts units.
const UNITS: [&str; 2] = ["xvsd.service", "xvs-rules.service"];
const UNIT_DIR: &str = "lib/systemd/system";

/// The conffiles of `xvs`.
pub(crate) const CONFFILES: [&str; 1] = ["/etc/default/xvsd"];

/// `xvs`: binaries, `xvs-rules`, man pages, units, `/etc/default/xvsd`,
/// copyright, maintainer scripts.
/// The binaries come from `bins` (`target/release`).
pub(crate) fn xvs(root: &Path, bins: &Path) -> Result<()> {
    let ws = workspace_root();
    let dist = ws.join("dist");
    for bin in BINARIES {
        let to = root.join("usr/sbin").join(bin);
        install(&bins.join(bin), &to, 0o755)?;
        // The release profile keeps line tables (debug = 1) for backtraces
        // in development; a package ships without them.
        output(Command::new("strip").arg("--strip-unneeded").arg(&to))?;
    }
    install(
        &dist.join("sbin/xvs-rules"),
        &root.join("usr/sbin/xvs-rules"),
        0o755,
    )?;
    for page in MAN_PAGES {
        gzip_to(&ws.join("man").join(page), &root.join("usr/share/man/man8"))?;
    }
    for unit in UNITS {
        install(
            &dist.join("systemd").join(unit),
            &root.join(UNIT_DIR).join(unit),
            0o644,
        )?;
    }
    install(
        &dist.join("default/xvsd"),
        &root.join("etc/default/xvsd"),
        0o644,
    )?;
    doc(root, "xvs")?;
    for script in ["postinst", "prerm", "postrm"] {
        install(
            &dist.join("debian").join(format!("xvs.{script}")),
            &root.join("DEBIAN").join(script),
            0o755,
        )?;
    }
    let conffiles: String = CONFFILES.iter().map(|c| format!("{c}\n")).collect();
    write(&root.join("DEBIAN/conffiles"), &conffiles, 0o644)?;
    md5sums(root)
}

/// `xvs-ipvsadm`: `ipvsadm` as a symlink to `xvsadm` (xvsadm names
/// itself after argv[0] in its help, as ipvsadm does, and behaves the
/// same under either name), ipvsadm's `ipvsadm-save` and
/// `ipvsadm-restore` scripts over xvsadm, and their man pages as links to
/// xvsadm's (which documents `-S` and `-R`).
pub(crate) fn ipvsadm(root: &Path) -> Result<()> {
    let dist = workspace_root().join("dist");
    let sbin = root.join("usr/sbin");
    std::fs::create_dir_all(&sbin)?;
    std::os::unix::fs::symlink("xvsadm", sbin.join("ipvsadm")).context("symlink ipvsadm")?;
    for script in ["ipvsadm-save", "ipvsadm-restore"] {
        install(
            &dist.join("ipvsadm").join(script),
            &sbin.join(script),
            0o755,
        )?;
    }
    let man = root.join("usr/share/man/man8");
    std::fs::create_dir_all(&man)?;
    for page in ["ipvsadm.8.gz", "ipvsadm-save.8.gz", "ipvsadm-restore.8.gz"] {
        std::os::unix::fs::symlink("xvsadm.8.gz", man.join(page))
            .with_context(|| format!("symlink {page}"))?;
    }
    doc(root, "xvs-ipvsadm")?;
    md5sums(root)
}

/// `usr/share/doc/PKG/copyright`, and a changelog (Debian requires one
/// per package; a native package's is `changelog.gz`).
fn doc(root: &Path, pkg: &str) -> Result<()> {
    let dir = root.join("usr/share/doc").join(pkg);
    install(
        &workspace_root().join("dist/debian/copyright"),
        &dir.join("copyright"),
        0o644,
    )?;
    let version = super::workspace_version()?;
    let changelog = dir.join("changelog");
    write(
        &changelog,
        format!(
            "{pkg} ({version}) unstable; urgency=medium\n\n  * Built from the xvs \
             source tree; the history is its git log.\n\n -- xvs maintainers \
             <{}>  Thu, 01 Jan 1970 00:00:00 +0000\n",
            super::control::MAINTAINER_EMAIL
        ),
        0o644,
    )?;
    gzip_to(&changelog, &dir)?;
    std::fs::remove_file(&changelog)?;
    Ok(())
}

/// Copies `from` to `to` (creating its directory) with `mode`.
fn install(from: &Path, to: &Path, mode: u32) -> Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn write(to: &Path, text: impl AsRef<[u8]>, mode: u32) -> Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(to, text).with_context(|| format!("writing {}", to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// `gzip -9n` of `from` into `dir` (`-n`: no name or time stamp, so the
/// same page gives the same bytes).
fn gzip_to(from: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = from.file_name().context("a file name")?.to_string_lossy();
    let out = Command::new("gzip")
        .args(["-9n", "-c"])
        .arg(from)
        .output()
        .context("running gzip")?;
    if !out.status.success() {
        bail!("gzip {} failed ({})", from.display(), out.status);
    }
    write(&dir.join(format!("{name}.gz")), out.stdout, 0o644)
}

/// `DEBIAN/md5sums` of every regular file outside `DEBIAN/` and `etc/`
/// (conffiles have their sums in dpkg's database).
fn md5sums(root: &Path) -> Result<()> {
    let mut files = Vec::new();
    collect(root, root, &mut files)?;
    files.retain(|f| !f.starts_with("DEBIAN/") && !f.starts_with("etc/"));
    files.sort();
    let out = output(Command::new("md5sum").args(&files).current_dir(root))?;
    write(&root.join("DEBIAN/md5sums"), format!("{out}\n"), 0o644)
}

/// The regular files under `dir`, relative to `root`.
pub(crate) fn collect(root: &Path, dir: &Path, into: &mut Vec<String>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect(root, &path, into)?;
        } else if kind.is_file() {
            let rel = path.strip_prefix(root).context("under the root")?;
            into.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}
