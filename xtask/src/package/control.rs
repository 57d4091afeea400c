//! The packages' `DEBIAN/control`.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::output;

pub(crate) const MAINTAINER_EMAIL: &str = "maintainers@users.noreply.h-seed-22ce4fd4.example";

fn maintainer() -> String {
    format!("xvs maintainers <{MAINTAINER_EMAIL}>")
}

/// `xvs`'s control file.
pub(crate) fn xvs(version: &str, arch: &str, depends: &str, kib: u64) -> String {
    format!(
        "Package: xvs\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: {}\n\
         Installed-Size: {kib}\n\
         Depends: {depends}\n\
         Suggests: keepalived\n\
         Section: net\n\
         Priority: optional\n\
         Description: Linux Virtual Server load balancer on eBPF/XDP\n \
         xvs rebuilds IPVS, ipvsadm and the LVS half of keepalived on an XDP/tc\n \
         data plane: xvsd (the daemon: table, scheduling, health checks from\n \
         keepalived.conf, connection sync, Prometheus metrics), xvsadm (the\n \
         ipvsadm command line, same options and output) and xvs-realserver\n \
         (prepares real servers for direct routing and tunnelling).\n \
         .\n \
         The systemd units xvsd.service and xvs-rules.service (restores the\n \
         ipvsadm rules file at boot, saves it at shutdown) are installed but\n \
         not enabled: set the interfaces in /etc/default/xvsd first.\n",
        maintainer()
    )
}

/// `xvs-ipvsadm`'s control file: it takes ipvsadm's place, so it
/// conflicts with it and replaces it (never both on one system, and
/// nothing shadows a real ipvsadm silently), and provides it for packages
/// that want the command (keepalived recommends ipvsadm).
pub(crate) fn ipvsadm(version: &str, kib: u64) -> String {
    format!(
        "Package: xvs-ipvsadm\n\
         Version: {version}\n\
         Architecture: all\n\
         Maintainer: {}\n\
         Installed-Size: {kib}\n\
         Depends: xvs (= {version})\n\
         Conflicts: ipvsadm\n\
         Replaces: ipvsadm\n\
         Provides: ipvsadm\n\
         Section: net\n\
         Priority: optional\n\
         Description: ipvsadm command for xvs (replaces the kernel's ipvsadm)\n \
         Installs ipvsadm, ipvsadm-save and ipvsadm-restore as commands of xvs:\n \
         ipvsadm is xvsadm under ipvsadm's name, so scripts and tools that run\n \
         ipvsadm drive xvsd instead of the kernel's IPVS. It conflicts with the\n \
         ipvsadm package.\n",
        maintainer()
    )
}

pub(crate) fn write(root: &Path, control: &str) -> Result<()> {
    let path = root.join("DEBIAN/control");
    std::fs::write(&path, control).with_context(|| format!("writing {}", path.display()))
}

/// `${shlibs:Depends}` of the binaries in `root/usr/sbin`: what
/// `dpkg-shlibdeps` finds they link (libbpf1, libelf1, zlib1g, libc6,
/// libgcc-s1, ...), with the versions their symbols need. It wants a
/// `debian/control` beside it, so it runs in a scratch directory.
pub(crate) fn shlibs_depends(root: &Path, binaries: &[&str]) -> Result<String> {
    let scratch = root
        .parent()
        .context("the staging directory")?
        .join("shlibdeps");
    std::fs::create_dir_all(scratch.join("debian"))?;
    std::fs::write(
        scratch.join("debian/control"),
        "Source: xvs\n\nPackage: xvs\nArchitecture: any\n",
    )?;
    let mut cmd = Command::new("dpkg-shlibdeps");
    cmd.arg("-O").current_dir(&scratch);
    for b in binaries {
        cmd.arg(root.join("usr/sbin").join(b));
    }
    let out = output(&mut cmd)?;
    let _ = std::fs::remove_dir_all(&scratch);
    match out.lines().find_map(|l| l.strip_prefix("shlibs:Depends=")) {
        Some(d) if !d.trim().is_empty() => Ok(d.trim().to_string()),
        _ => bail!("dpkg-shlibdeps found no dependencies: {out}"),
    }
}

/// `Installed-Size`: KiB of the files outside `DEBIAN/`, each rounded up
/// as dpkg-gencontrol does.
pub(crate) fn installed_kib(root: &Path) -> Result<u64> {
    let mut files = Vec::new();
    super::stage::collect(root, root, &mut files)?;
    let mut kib = 0;
    for f in files.iter().filter(|f| !f.starts_with("DEBIAN/")) {
        kib += std::fs::metadata(root.join(f))?.len().div_ceil(1024);
    }
    Ok(kib.max(1))
}
