//! `cargo xtask package`: the Debian packages `xvs` and `xvs-ipvsadm` in
//! `target/debian/`, from a release build and the files of `dist/`
//! (dist/README.md says what goes where and why).
//!
//! The packages are assembled by hand and built with `dpkg-deb`, not
//! cargo-deb: two packages come out of one workspace (one of them only a
//! symlink and two scripts, `Architecture: all`), the maintainer scripts
//! must restart xvsd on upgrade instead of stopping it (cargo-deb's
//! generated systemd snippets stop the unit in prerm), and no extra tool
//! has to be compiled on the shared build machines. `Depends` comes from
//! `dpkg-shlibdeps` on the stripped binaries, as `${shlibs:Depends}`
//! would.
//!
//! * [`stage`]: the file trees and maintainer scripts of both packages.
//! * [`control`]: the control files (dependencies, sizes).
//! * [`check`]: `--check`, assertions on the built packages;
//!   [`rules_script`]: `xvs-rules` with a fake xvsadm.
//! * [`boot`]: `--check-boot`, the packages under systemd in a container.

mod boot;
mod check;
mod control;
mod rules_script;
mod stage;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::{header, install_missing, run_cargo, workspace_root};

/// Debian packages `package` needs: dpkg-shlibdeps (dpkg-dev), strip
/// (binutils), gzip for the man pages.
const PACKAGES: &[&str] = &["dpkg-dev", "binutils", "gzip"];

/// `cargo xtask package`'s options.
#[derive(Debug, Args)]
pub(crate) struct PackageArgs {
    /// then check the packages: contents, control fields, conffiles, the
    /// ipvsadm symlink, `systemd-analyze verify` on the units, lintian
    #[arg(long)]
    pub(crate) check: bool,
    /// then, in a booted Debian 12 container (systemd-nspawn; debootstrap
    /// on first use, cached in target/debian/nspawn): install, enable,
    /// add a service, restart, upgrade, reboot (rules saved and restored),
    /// purge
    #[arg(long)]
    pub(crate) check_boot: bool,
    /// package the debug build instead of a release one (what `cargo
    /// xtask test` checks: the packages' shape, without a release build)
    #[arg(long)]
    pub(crate) debug: bool,
}

/// Where the packages are written.
pub(crate) fn out_dir() -> PathBuf {
    workspace_root().join("target/debian")
}

/// The built packages.
pub(crate) struct Debs {
    pub(crate) xvs: PathBuf,
    pub(crate) ipvsadm: PathBuf,
    pub(crate) version: String,
}

/// `cargo xtask package`.
pub(crate) fn cmd(args: &PackageArgs) -> Result<()> {
    let debs = build(if args.debug { "debug" } else { "release" })?;
    if args.check {
        check(&debs)?;
    }
    if args.check_boot {
        check_boot(&debs)?;
    }
    Ok(())
}

/// `--check`: the assertions on built packages.
pub(crate) fn check(debs: &Debs) -> Result<()> {
    check::run(debs)
}

/// `--check-boot`: the packages under systemd in a container.
pub(crate) fn check_boot(debs: &Debs) -> Result<()> {
    boot::run(debs)
}

/// Builds the binaries with `profile` (`release` or `debug`) and both
/// packages from them.
pub(crate) fn build(profile: &str) -> Result<Debs> {
    header("package: tools");
    install_missing(PACKAGES)?;
    header(&format!("package: {profile} build"));
    let mut cargo = vec![
        "build",
        "-p",
        "xvsd",
        "-p",
        "xvsadm",
        "-p",
        "xvs-realserver",
    ];
    if profile == "release" {
        cargo.push("--release");
    }
    run_cargo(&cargo)?;
    header("package: xvs and xvs-ipvsadm");
    let version = workspace_version()?;
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?;
    let out = out_dir();
    let staging = out.join("stage");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing {}", staging.display()))?;
    }
    let xvs_root = staging.join("xvs");
    stage::xvs(&xvs_root, &workspace_root().join("target").join(profile))?;
    let depends = control::shlibs_depends(&xvs_root, &stage::BINARIES)?;
    control::write(
        &xvs_root,
        &control::xvs(
            &version,
            &arch,
            &depends,
            control::installed_kib(&xvs_root)?,
        ),
    )?;
    let xvs = out.join(format!("xvs_{version}_{arch}.deb"));
    dpkg_deb_build(&xvs_root, &xvs)?;

    let ipvsadm_root = staging.join("xvs-ipvsadm");
    stage::ipvsadm(&ipvsadm_root)?;
    control::write(
        &ipvsadm_root,
        &control::ipvsadm(&version, control::installed_kib(&ipvsadm_root)?),
    )?;
    let ipvsadm = out.join(format!("xvs-ipvsadm_{version}_all.deb"));
    dpkg_deb_build(&ipvsadm_root, &ipvsadm)?;
    Ok(Debs {
        xvs,
        ipvsadm,
        version,
    })
}

/// The workspace's `version` (Cargo.toml `[workspace.package]`), which is
/// the packages' version (a native package: no Debian revision).
fn workspace_version() -> Result<String> {
    let text = std::fs::read_to_string(workspace_root().join("Cargo.toml"))
        .context("reading Cargo.toml")?;
    let mut in_package = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
        } else if in_package {
            if let Some(v) = line.strip_prefix("version") {
                let v = v.trim_start().trim_start_matches('=').trim();
                return Ok(v.trim_matches('"').to_string());
            }
        }
    }
    bail!("no version in Cargo.toml's [workspace.package]")
}

fn dpkg_deb_build(root: &std::path::Path, deb: &std::path::Path) -> Result<()> {
    // --root-owner-group: every file root:root whoever builds.
    let status = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(root)
        .arg(deb)
        .status()
        .context("running dpkg-deb")?;
    if !status.success() {
        bail!("dpkg-deb --build {} failed ({status})", root.display());
    }
    Ok(())
}

/// A command's stdout, trimmed; its failure is an error with its stderr.
pub(crate) fn output(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("running {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
