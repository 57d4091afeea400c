//! `cargo xtask package --check`: what the built packages must hold, read
//! back with `dpkg-deb` (fields, file list, conffiles, scripts), the
//! binaries run from the unpacked tree (xvsadm as `ipvsadm` included),
//! `systemd-analyze verify` on the units, and lintian (errors fail,
//! warnings are shown).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};

use super::{output, stage, Debs};
use crate::{header, install_missing};

/// What the checks need beyond [`super::PACKAGES`].
const PACKAGES: &[&str] = &["systemd", "lintian"];

/// The packages of the shared libraries the binaries link (also read
/// from `ldd` at check time): each must be a dependency. libbpf is not
/// among them: libbpf-sys compiles its own libbpf (1.7, newer than
/// Debian 12's libbpf1 1.1) into the binaries, so `libbpf1` must not be
/// one.
const LIBRARY_PACKAGES: [&str; 4] = ["libelf1", "zlib1g", "libc6", "libgcc-s1"];

/// Every path `xvs` must install.
const XVS_FILES: [&str; 14] = [
    "./usr/sbin/xvsd",
    "./usr/sbin/xvsadm",
    "./usr/sbin/xvs-realserver",
    "./usr/sbin/xvs-rules",
    "./usr/share/man/man8/xvsd.8.gz",
    "./usr/share/man/man8/xvsadm.8.gz",
    "./usr/share/man/man8/xvs-realserver.8.gz",
    "./usr/share/man/man8/xvs-rules.8.gz",
    "./lib/systemd/system/xvsd.service",
    "./lib/systemd/system/xvs-rules.service",
    "./etc/default/xvsd",
    "./usr/share/doc/xvs/copyright",
    "./usr/share/doc/xvs/changelog.gz",
    "./usr/share/doc/xvs/",
];

pub(crate) fn run(debs: &Debs) -> Result<()> {
    let started = Instant::now();
    header("package --check");
    install_missing(PACKAGES)?;
    xvs_package(&debs.xvs, &debs.version)?;
    ipvsadm_package(&debs.ipvsadm, &debs.version)?;
    let tree = super::out_dir().join("check-root");
    if tree.exists() {
        std::fs::remove_dir_all(&tree)?;
    }
    for deb in [&debs.xvs, &debs.ipvsadm] {
        output(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&tree))?;
    }
    binaries(&tree)?;
    super::rules_script::run(
        &tree.join("usr/sbin/xvs-rules"),
        &super::out_dir().join("check-rules"),
    )?;
    units(&tree)?;
    lintian(&[&debs.xvs, &debs.ipvsadm])?;
    std::fs::remove_dir_all(&tree)?;
    println!(
        "package --check: all passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A control field of `deb`.
fn field(deb: &Path, name: &str) -> Result<String> {
    output(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name))
}

fn xvs_package(deb: &Path, version: &str) -> Result<()> {
    ensure!(field(deb, "Package")? == "xvs", "Package");
    ensure!(field(deb, "Version")? == version, "Version");
    let depends = field(deb, "Depends")?;
    let linked = ldd_packages(&super::out_dir().join("stage/xvs/usr/sbin"))?;
    let names: Vec<&str> = depends
        .split(',')
        .filter_map(|d| d.split_whitespace().next())
        .collect();
    for lib in LIBRARY_PACKAGES
        .iter()
        .copied()
        .chain(linked.iter().map(String::as_str))
    {
        ensure!(names.contains(&lib), "Depends `{depends}` lacks {lib}");
    }
    ensure!(
        !names.contains(&"libbpf1"),
        "Depends `{depends}` names libbpf1, which the binaries do not link"
    );
    ensure!(field(deb, "Suggests")? == "keepalived", "Suggests");
    let conffiles = output(
        Command::new("dpkg-deb")
            .arg("--info")
            .arg(deb)
            .arg("conffiles"),
    )?;
    ensure!(
        conffiles.lines().collect::<Vec<_>>() == stage::CONFFILES,
        "conffiles: {conffiles:?}"
    );
    let list = contents(deb)?;
    for f in XVS_FILES {
        ensure!(
            list.iter().any(|(p, _)| p == f),
            "{} lacks {f}",
            deb.display()
        );
    }
    for (path, mode) in &list {
        if mode.starts_with('d') {
            continue;
        }
        if path.starts_with("./usr/sbin/") {
            ensure!(mode.starts_with("-rwxr-xr-x"), "{path} is {mode}");
        }
        if path.ends_with(".service") || path.starts_with("./etc/") {
            ensure!(mode.starts_with("-rw-r--r--"), "{path} is {mode}");
        }
        ensure!(
            !path.starts_with("./usr/sbin/ipvsadm"),
            "xvs must not ship {path}: that is xvs-ipvsadm's"
        );
    }
    println!("xvs: fields, Depends ({depends}), conffiles and file list as expected");
    Ok(())
}

fn ipvsadm_package(deb: &Path, version: &str) -> Result<()> {
    ensure!(field(deb, "Package")? == "xvs-ipvsadm", "Package");
    ensure!(field(deb, "Architecture")? == "all", "Architecture");
    ensure!(
        field(deb, "Depends")? == format!("xvs (= {version})"),
        "Depends"
    );
    for f in ["Conflicts", "Replaces", "Provides"] {
        ensure!(field(deb, f)? == "ipvsadm", "{f}");
    }
    let list = contents(deb)?;
    let link = list
        .iter()
        .find(|(p, _)| p.starts_with("./usr/sbin/ipvsadm -> "))
        .context("no ./usr/sbin/ipvsadm symlink")?;
    ensure!(link.0 == "./usr/sbin/ipvsadm -> xvsadm", "{}", link.0);
    for f in ["./usr/sbin/ipvsadm-save", "./usr/sbin/ipvsadm-restore"] {
        ensure!(list.iter().any(|(p, _)| p == f), "lacks {f}");
    }
    println!("xvs-ipvsadm: Conflicts/Replaces/Provides ipvsadm, ipvsadm -> xvsadm");
    Ok(())
}

/// `dpkg-deb --contents`: (path, mode) per entry; a symlink's path is
/// `PATH -> TARGET`.
fn contents(deb: &Path) -> Result<Vec<(String, String)>> {
    let text = output(Command::new("dpkg-deb").arg("--contents").arg(deb))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mode = l.split_whitespace().next()?.to_string();
            // "mode owner/group size date time ./path"
            let idx = l.find(" ./")?;
            Some((l[idx + 1..].to_string(), mode))
        })
        .collect())
}

/// The packages owning the libraries `ldd` lists for the binaries in
/// `dir`, so that Depends is checked against what they really link.
fn ldd_packages(dir: &Path) -> Result<Vec<String>> {
    let mut pkgs = Vec::new();
    for bin in stage::BINARIES {
        let text = output(Command::new("ldd").arg(dir.join(bin)))?;
        for lib in text.lines().filter_map(|l| l.split(" => ").nth(1)) {
            let Some(path) = lib.split_whitespace().next() else {
                continue;
            };
            // usrmerge: dpkg may know the library under /usr or not.
            let Some(owner) = [path.to_string(), format!("/usr{path}")]
                .iter()
                .find_map(|p| output(Command::new("dpkg-query").arg("-S").arg(p)).ok())
            else {
                continue;
            };
            if let Some(pkg) = owner.split(':').next() {
                if !pkgs.iter().any(|p| p == pkg) {
                    pkgs.push(pkg.to_string());
                }
            }
        }
    }
    println!("ldd: the binaries link libraries of {}", pkgs.join(", "));
    Ok(pkgs)
}

/// The unpacked binaries run: versions, and xvsadm under ipvsadm's name.
fn binaries(tree: &Path) -> Result<()> {
    let sbin = tree.join("usr/sbin");
    output(Command::new(sbin.join("xvsd")).arg("--version"))?;
    output(Command::new(sbin.join("xvs-realserver")).arg("--help"))?;
    let v = output(Command::new(sbin.join("ipvsadm")).arg("-v"))?;
    ensure!(v.starts_with("ipvsadm v1.31"), "ipvsadm -v: {v}");
    let help = output(Command::new(sbin.join("ipvsadm")).arg("-h"))?;
    ensure!(
        help.lines().any(|l| l.trim_start().starts_with(&format!(
            "{} -A|E virtual-service",
            sbin.join("ipvsadm").display()
        ))),
        "ipvsadm -h does not name itself after argv[0]:\n{help}"
    );
    println!("binaries run; ipvsadm -> xvsadm answers as ipvsadm");
    Ok(())
}

/// `systemd-analyze verify` on the units, found in the unpacked tree,
/// with the host's own units (the targets they name).
fn units(tree: &Path) -> Result<()> {
    let dir = tree.join("lib/systemd/system");
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify")
        .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.display()))
        .env("SYSTEMD_LOG_LEVEL", "warning")
        // Documentation=man:... is checked with `man`: against the
        // package's pages.
        .env("MANPATH", tree.join("usr/share/man"));
    for unit in ["xvsd.service", "xvs-rules.service"] {
        cmd.arg(dir.join(unit));
    }
    let out = cmd.output().context("running systemd-analyze")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Paths of ExecStart= are checked on the host: the binaries are
    // not installed there, only unpacked.
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !(l.contains("/usr/sbin/") && l.contains("No such file")))
        .collect();
    if !out.status.success() && !problems.is_empty() || !problems.is_empty() {
        bail!("systemd-analyze verify:\n{}", problems.join("\n"));
    }
    println!("systemd-analyze verify: units clean");
    Ok(())
}

/// lintian: errors fail the check, warnings are printed. Tags that say
/// "this is not a Debian archive upload" are expected and suppressed.
fn lintian(debs: &[&Path]) -> Result<()> {
    let out = Command::new("lintian")
        .args(["--fail-on", "error", "--suppress-tags"])
        .arg(SUPPRESSED.join(","))
        .args(debs)
        .output()
        .context("running lintian")?;
    let text = String::from_utf8_lossy(&out.stdout);
    for l in text.lines() {
        println!("lintian: {l}");
    }
    if !out.status.success() {
        bail!(
            "lintian failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    println!("lintian: no errors");
    Ok(())
}

/// Lintian tags about archive policy, not about the package's contents.
const SUPPRESSED: &[&str] = &[];
