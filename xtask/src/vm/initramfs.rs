//! The guest's initramfs: busybox-static, the two boot scripts and the
//! modules needed to reach the host's root (virtio PCI, the virtio
//! console for the output ports, 9p over virtio, overlayfs), in the load
//! order `modules.dep` gives. Cached next to the kernel; rebuilt when the
//! scripts, the module list or busybox change.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::kernel::KernelTree;
use super::shell_quote;

/// Stage 1, the initramfs's `/init`.
const INIT: &str = include_str!("init.sh");
/// Stage 2, PID 1 after switch_root (copied to `/run/xvs-vm/` by stage 1).
const STAGE2: &str = include_str!("stage2.sh");

/// What the initramfs must load before it can switch to the host's root;
/// whatever these need comes from modules.dep, and those built into a
/// kernel (virtio_pci in 6.12) are skipped.
const ROOT_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_console",
    "9pnet_virtio",
    "9p",
    "overlay",
];

/// Where Debian's busybox-static puts its binary (/bin is /usr/bin on a
/// merged-/usr host, not on an older one).
const BUSYBOX: &[&str] = &["/usr/bin/busybox", "/bin/busybox"];

/// The cached initramfs of `tree`, built first if missing or stale.
pub(super) fn ensure_initramfs(tree: &KernelTree) -> Result<PathBuf> {
    let out = tree.cache_dir.join("initramfs.cpio.gz");
    let stamp_file = tree.cache_dir.join("initramfs.stamp");
    let dep = read(&tree.modules.join("modules.dep"))?;
    let builtin = read(&tree.modules.join("modules.builtin")).unwrap_or_default();
    let order = module_load_order(&dep, &builtin, ROOT_MODULES)
        .with_context(|| format!("resolving the boot modules of {}", tree.kver))?;
    let busybox = busybox()?;
    let stamp = stamp(tree, &order, &busybox)?;
    if out.is_file() && std::fs::read_to_string(&stamp_file).ok().as_deref() == Some(&stamp) {
        return Ok(out);
    }
    let scratch = tree
        .cache_dir
        .join(format!("initramfs.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let built = build(tree, &order, &busybox, &scratch, &out);
    let _ = std::fs::remove_dir_all(&scratch);
    built?;
    std::fs::write(&stamp_file, stamp)?;
    Ok(out)
}

/// Everything the image is made of, in a form cheap to compare.
fn stamp(tree: &KernelTree, order: &[String], busybox: &Path) -> Result<String> {
    let meta = std::fs::metadata(busybox)?;
    let mtime = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    Ok(format!(
        "kver {}\nbusybox {} {} {mtime}\nmodules {}\n--- init.sh\n{INIT}\n--- stage2.sh\n{STAGE2}",
        tree.kver,
        busybox.display(),
        meta.len(),
        order.join(" ")
    ))
}

fn busybox() -> Result<PathBuf> {
    BUSYBOX
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .context("busybox-static's /bin/busybox is missing")
}

fn build(
    tree: &KernelTree,
    order: &[String],
    busybox: &Path,
    dir: &Path,
    out: &Path,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for sub in [
        "bin", "dev", "proc", "sys", "modules", "lower", "upper", "newroot",
    ] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    std::fs::copy(busybox, dir.join("bin/busybox"))?;
    std::fs::write(dir.join("init"), INIT)?;
    std::fs::set_permissions(dir.join("init"), std::fs::Permissions::from_mode(0o755))?;
    std::fs::write(dir.join("stage2.sh"), STAGE2)?;
    // Decompressed here so that the initramfs needs only busybox's insmod
    // (6.12 ships .ko.xz); the numeric prefix keeps the load order for
    // the init's glob.
    for (i, rel) in order.iter().enumerate() {
        let src = tree.modules.join(rel);
        let dst = dir
            .join("modules")
            .join(format!("{i:02}-{}.ko", module_name(rel)));
        decompress(&src, &dst, busybox)?;
    }
    let tmp = out.with_extension(format!("tmp-{}", std::process::id()));
    let (tmp_q, dir_q) = (
        shell_quote(&tmp.to_string_lossy()),
        shell_quote(&dir.to_string_lossy()),
    );
    // Two steps, not `cpio | gzip`: sh has no pipefail, and a cpio that
    // failed must not leave a truncated image.
    let script = format!(
        "cd {dir_q} && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet > {tmp_q}.cpio \
         && gzip -n -6 -c {tmp_q}.cpio > {tmp_q}; rc=$?; rm -f {tmp_q}.cpio; exit $rc"
    );
    let status = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .status()
        .context("running cpio and gzip")?;
    if !status.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!("building the initramfs failed ({status}): {script}");
    }
    std::fs::rename(&tmp, out)?;
    Ok(())
}

/// Copy a module, decompressing `.ko.xz`/`.ko.gz` with busybox and
/// `.ko.zst` with zstd.
fn decompress(src: &Path, dst: &Path, busybox: &Path) -> Result<()> {
    let name = src.to_string_lossy();
    let tool: Option<(&Path, &str)> = if name.ends_with(".xz") {
        Some((busybox, "xzcat"))
    } else if name.ends_with(".gz") {
        Some((busybox, "zcat"))
    } else if name.ends_with(".zst") {
        Some((Path::new("zstd"), "-dc"))
    } else {
        None
    };
    let Some((prog, arg)) = tool else {
        std::fs::copy(src, dst).with_context(|| format!("copying {name}"))?;
        return Ok(());
    };
    let out = std::fs::File::create(dst)?;
    let status = Command::new(prog)
        .arg(arg)
        .arg(src)
        .stdin(Stdio::null())
        .stdout(out)
        .status()
        .with_context(|| format!("running {} {arg} {name}", prog.display()))?;
    if !status.success() {
        bail!("decompressing {name} failed ({status})");
    }
    Ok(())
}

fn read(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
}

/// A module's name from its path in modules.dep: `kernel/fs/9p/9p.ko.xz`
/// → `9p`; dashes are underscores, as modprobe treats them.
pub(super) fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.find(".ko").map_or(base, |i| &base[..i]);
    stem.replace('-', "_")
}

/// The paths (relative to `/lib/modules/<kver>`) to insmod, dependencies
/// first, so that every module in `wanted` is loaded. Modules listed in
/// `builtin` (modules.builtin) need nothing; a wanted module that is
/// neither built in nor in `dep` (modules.dep) is an error.
pub(super) fn module_load_order(dep: &str, builtin: &str, wanted: &[&str]) -> Result<Vec<String>> {
    let mut deps: HashMap<String, (String, Vec<String>)> = HashMap::new();
    for line in dep.lines() {
        let Some((path, rest)) = line.split_once(':') else {
            continue;
        };
        let path = path.trim();
        let needs = rest.split_whitespace().map(module_name).collect();
        deps.insert(module_name(path), (path.to_string(), needs));
    }
    let builtin: HashSet<String> = builtin
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| module_name(l.trim()))
        .collect();

    struct Walk<'a> {
        deps: &'a HashMap<String, (String, Vec<String>)>,
        builtin: &'a HashSet<String>,
        done: HashSet<String>,
        active: Vec<String>,
        order: Vec<String>,
    }
    impl Walk<'_> {
        fn visit(&mut self, name: &str) -> Result<()> {
            if self.done.contains(name) || self.builtin.contains(name) {
                return Ok(());
            }
            if self.active.iter().any(|a| a == name) {
                bail!("dependency cycle: {} -> {name}", self.active.join(" -> "));
            }
            let Some((path, needs)) = self.deps.get(name) else {
                bail!("module {name} is neither in modules.dep nor built in");
            };
            self.active.push(name.to_string());
            for n in needs {
                self.visit(n)?;
            }
            self.active.pop();
            self.done.insert(name.to_string());
            self.order.push(path.clone());
            Ok(())
        }
    }
    let mut walk = Walk {
        deps: &deps,
        builtin: &builtin,
        done: HashSet::new(),
        active: Vec::new(),
        order: Vec::new(),
    };
    for w in wanted {
        walk.visit(&w.replace('-', "_"))?;
    }
    Ok(walk.order)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A modules.dep as 6.1 ships it (virtio_pci a module, 9p needing
    /// netfs and fscache), trimmed.
    const DEP_6_1: &str = "\
kernel/fs/9p/9p.ko: kernel/fs/fscache/fscache.ko kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/fs/netfs/netfs.ko:
kernel/fs/overlayfs/overlay.ko:
kernel/net/9p/9pnet.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/net/netfilter/ipvs/ip_vs.ko: kernel/net/netfilter/nf_conntrack.ko
";

    fn names(order: &[String]) -> Vec<String> {
        order.iter().map(|p| module_name(p)).collect()
    }

    fn before(order: &[String], a: &str, b: &str) -> bool {
        let n = names(order);
        let pos = |x: &str| n.iter().position(|m| m == x).unwrap();
        pos(a) < pos(b)
    }

    #[test]
    fn dependencies_come_first() {
        let order = module_load_order(DEP_6_1, "", ROOT_MODULES).unwrap();
        let n = names(&order);
        assert_eq!(n.len(), 12, "{n:?}");
        for (a, b) in [
            ("virtio", "virtio_pci"),
            ("virtio_ring", "virtio_pci"),
            ("virtio_pci_modern_dev", "virtio_pci"),
            ("9pnet", "9pnet_virtio"),
            ("netfs", "fscache"),
            ("fscache", "9p"),
            ("9pnet", "9p"),
        ] {
            assert!(before(&order, a, b), "{a} before {b}: {n:?}");
        }
        // Each at most once, and nothing that was not asked for.
        let set: HashSet<_> = n.iter().collect();
        assert_eq!(set.len(), n.len());
        assert!(!n.contains(&"ip_vs".to_string()));
        assert_eq!(order[0], "kernel/drivers/virtio/virtio_pci_modern_dev.ko");
    }

    #[test]
    fn builtin_modules_and_compressed_names() {
        // 6.12: virtio_pci (and the virtio core) built in, .ko.xz files.
        let dep = "\
kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz
kernel/fs/netfs/netfs.ko.xz:
kernel/fs/overlayfs/overlay.ko.xz:
kernel/net/9p/9pnet.ko.xz:
kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz
kernel/drivers/char/virtio_console.ko.xz:
";
        let builtin = "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_pci.ko\n";
        let order = module_load_order(dep, builtin, ROOT_MODULES).unwrap();
        assert_eq!(
            names(&order),
            [
                "virtio_console",
                "9pnet",
                "9pnet_virtio",
                "netfs",
                "9p",
                "overlay"
            ]
        );
        assert_eq!(order[4], "kernel/fs/9p/9p.ko.xz");
    }

    #[test]
    fn missing_module_and_cycle_are_errors() {
        let e = module_load_order("kernel/a.ko:\n", "", &["b"]).unwrap_err();
        assert!(e.to_string().contains("b is neither"), "{e}");
        let cyc = "kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n";
        let e = module_load_order(cyc, "", &["a"]).unwrap_err();
        assert!(e.to_string().contains("cycle"), "{e}");
    }

    #[test]
    fn names_of_module_paths() {
        assert_eq!(module_name("kernel/fs/9p/9p.ko.xz"), "9p");
        assert_eq!(module_name("kernel/drivers/x/virtio-rng.ko"), "virtio_rng");
        assert_eq!(module_name("overlay"), "overlay");
    }
}
