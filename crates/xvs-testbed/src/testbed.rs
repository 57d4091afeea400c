//! A testbed: its namespaces, directories, processes and teardown.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use crate::{
    bin, dr_rs_ip, io_err, is_root, lock, mount_bpffs, rs_ip, run, selftest, umount, Error, Node,
    Proc, Result, Topology, RUN_ROOT,
};

static INSTANCE: AtomicU32 = AtomicU32::new(0);

/// A set of network namespaces wired into a topology; see the crate docs.
pub struct Testbed {
    pub(crate) prefix: String,
    pub(crate) run_dir: PathBuf,
    pub(crate) bpffs: PathBuf,
    pub(crate) bpffs_mounted: bool,
    /// Created namespaces, in creation order.
    pub(crate) namespaces: Vec<String>,
    pub(crate) topology: Topology,
    pub(crate) rs_count: u8,
    pub(crate) procs: Mutex<Vec<Proc>>,
    pub(crate) spawned: AtomicU32,
}

impl fmt::Debug for Testbed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Testbed")
            .field("prefix", &self.prefix)
            .field("namespaces", &self.namespaces)
            .finish_non_exhaustive()
    }
}

impl Testbed {
    /// An empty testbed: unique prefix, `/run/xvs-test/<prefix>` with a bpffs
    /// mounted on its `bpf` directory (from the caller's, i.e. the root,
    /// mount namespace, so every `ip netns exec` sees it).
    pub(crate) fn empty() -> Result<Testbed> {
        if !is_root() {
            return Err(Error::NotRoot);
        }
        let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("xvs{:x}t{n}", std::process::id());
        let run_dir = Path::new(RUN_ROOT).join(&prefix);
        let bpffs = run_dir.join("bpf");
        let mut tb = Testbed {
            prefix,
            run_dir,
            bpffs,
            bpffs_mounted: false,
            namespaces: Vec::new(),
            topology: Topology::Nat,
            rs_count: 0,
            procs: Mutex::new(Vec::new()),
            spawned: AtomicU32::new(0),
        };
        fs::create_dir_all(tb.run_dir.join("logs"))
            .map_err(io_err(format!("create {}", tb.run_dir.display())))?;
        fs::create_dir_all(&tb.bpffs).map_err(io_err(format!("create {}", tb.bpffs.display())))?;
        mount_bpffs(&tb.bpffs)
            .map_err(io_err(format!("mount -t bpf bpf {}", tb.bpffs.display())))?;
        tb.bpffs_mounted = true;
        Ok(tb)
    }

    /// Which topology this is.
    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// Address of real server `n` (1-based) in this topology: [`rs_ip`] or
    /// [`dr_rs_ip`].
    pub fn rs_addr(&self, n: u8) -> String {
        match self.topology {
            Topology::Nat => rs_ip(n),
            Topology::Dr => dr_rs_ip(n),
            Topology::Selftest => selftest::ST_RS_IP.to_string(),
        }
    }

    /// Run `xvs-realserver <args> --state-dir <run_dir>/realserver` in
    /// `node` (a real server) and return its stdout. The state directory
    /// lives under [`Testbed::run_dir`], so even a test that never tears
    /// the real server down leaves nothing behind.
    pub fn realserver(&self, node: Node, args: &[&str]) -> Result<String> {
        let bin = bin("xvs-realserver")?;
        let bin = bin.to_string_lossy().into_owned();
        let state = self.run_dir.join("realserver");
        let state = state.to_string_lossy().into_owned();
        let mut argv = vec![bin.as_str()];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--state-dir", &state]);
        self.exec_ok(node, &argv)
    }

    /// An interface counter, `/sys/class/net/<dev>/statistics/<stat>`, as
    /// seen inside `node` (e.g. `rx_packets`).
    pub fn if_stat(&self, node: Node, dev: &str, stat: &str) -> Result<u64> {
        let path = format!("/sys/class/net/{dev}/statistics/{stat}");
        let out = self.exec_ok(node, &["cat", &path])?;
        out.trim()
            .parse()
            .map_err(|_| Error::Other(format!("{path} in {node}: not a number: {out:?}")))
    }

    /// The unique prefix of every name of this testbed (`xvs<pid-hex>t<n>`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The network namespace name of `node`.
    pub fn ns(&self, node: Node) -> String {
        format!("{}-{}", self.prefix, node.suffix())
    }

    /// All namespaces this testbed created.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Number of real servers.
    pub fn rs_count(&self) -> u8 {
        self.rs_count
    }

    /// `/run/xvs-test/<prefix>`: a directory for sockets and logs, removed on drop.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The bpffs mounted for this testbed (`/run/xvs-test/<prefix>/bpf`);
    /// visible inside `ip netns exec`. Pass e.g. `bpffs().join("xvs")` as
    /// xvsd's `--pin-path`.
    pub fn bpffs(&self) -> &Path {
        &self.bpffs
    }

    /// The processes started with [`Testbed::spawn`].
    pub fn procs(&self) -> Vec<Proc> {
        lock(&self.procs).clone()
    }

    pub(crate) fn teardown(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        let procs = std::mem::take(&mut *lock(&self.procs));
        let panicking = thread::panicking();
        for p in &procs {
            if p.is_running() {
                let _ = p.signal(libc::SIGTERM);
            }
        }
        for p in &procs {
            if p.wait_timeout(Duration::from_millis(1500)).is_none() {
                let mut c = lock(&p.0.child);
                let _ = c.kill();
                let _ = c.wait();
            }
            if panicking {
                let log = p.log();
                let tail = &log[log.len().saturating_sub(2000)..];
                let tail = tail.trim_end();
                if !tail.is_empty() {
                    eprintln!("--- log of {} (pid {}) ---\n{tail}", p.label(), p.pid());
                }
            }
        }
        for ns in self.namespaces.drain(..).rev() {
            if let Err(e) = run(&["ip", "netns", "delete", &ns]) {
                errors.push(e.to_string());
            }
        }
        if self.bpffs_mounted {
            match umount(&self.bpffs) {
                Ok(()) => self.bpffs_mounted = false,
                Err(e) => errors.push(format!("umount {}: {e}", self.bpffs.display())),
            }
        }
        if !self.bpffs_mounted && self.run_dir.exists() {
            if let Err(e) = fs::remove_dir_all(&self.run_dir) {
                errors.push(format!("remove {}: {e}", self.run_dir.display()));
            }
        }
        errors
    }

    /// Tear down now and report every problem (Drop does the same silently
    /// except for a warning on stderr).
    pub fn close(mut self) -> Result<()> {
        let errors = self.teardown();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Other(format!("teardown: {}", errors.join("; "))))
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for e in self.teardown() {
            eprintln!("xvs-testbed: teardown of {}: {e}", self.prefix);
        }
    }
}
