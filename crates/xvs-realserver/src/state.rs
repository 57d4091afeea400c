//! The state file: what was set up, and the original values to restore.
//!
//! One file per network namespace: `ip netns exec` shares `/run` between
//! namespaces, so the directory is named after the namespace — its cookie
//! (`SO_NETNS_COOKIE`, never reused while the machine is up), or its inode on
//! kernels older than 5.14 — as `<state-dir>/ns-<cookie>/state.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cli::{Mode, TunType};
use crate::Error;

pub const STATE_VERSION: u32 = 1;

/// One VIP set up on this real server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipEntry {
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tun_type: Option<TunType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tun_port: Option<u16>,
    /// The real server's interface (sysctls, BPF decap).
    pub dev: String,
    /// The VIP was already on `lo` before the first setup: teardown keeps it.
    #[serde(default)]
    pub preexisting: bool,
}

/// How tunnelled packets are decapsulated on this real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    /// The kernel: `tunl0` (ipip module), `ip fou` for GUE.
    Kernel,
    /// xvs's BPF decap program on the real server's interface.
    Xdp,
}

impl Mechanism {
    pub fn describe(self) -> &'static str {
        match self {
            Mechanism::Kernel => "kernel (tunl0, fou)",
            Mechanism::Xdp => "xvs BPF decap",
        }
    }
}

/// What xvs-realserver changed for the kernel tunnel, to undo it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelTunnel {
    /// Modules this tool loaded, in load order.
    #[serde(default)]
    pub loaded_modules: Vec<String>,
    /// Whether tunl0 was down before (`None`: not touched yet).
    #[serde(default)]
    pub tunl0_was_down: Option<bool>,
    /// `ip fou` ports this tool added.
    #[serde(default)]
    pub fou_ports_added: BTreeSet<u16>,
}

/// The configuration xvs's BPF decap program got on one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecapSpec {
    pub vips: Vec<Ipv4Addr>,
    pub gue_ports: Vec<u16>,
}

impl std::fmt::Display for DecapSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let vips: Vec<String> = self.vips.iter().map(|v| v.to_string()).collect();
        write!(f, "vips {}", vips.join(","))?;
        if !self.gue_ports.is_empty() {
            let ports: Vec<String> = self.gue_ports.iter().map(|p| p.to_string()).collect();
            write!(f, "; gue ports {}", ports.join(","))?;
        }
        Ok(())
    }
}

/// Everything recorded for one network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// The VIPs set up, keyed by address.
    #[serde(default)]
    pub vips: BTreeMap<IpAddr, VipEntry>,
    /// Original values of every sysctl changed (or pinned) while some VIP
    /// needs it, keyed `net.ipv4.conf.<dev>.<name>`.
    #[serde(default)]
    pub saved_sysctls: BTreeMap<String, String>,
    /// Decapsulation in use while a tun VIP exists.
    #[serde(default)]
    pub tunnel: Option<Mechanism>,
    #[serde(default)]
    pub kernel: KernelTunnel,
    /// BPF decap attachments made, keyed by interface.
    #[serde(default)]
    pub decap: BTreeMap<String, DecapSpec>,
}

impl Default for State {
    fn default() -> Self {
        State {
            version: STATE_VERSION,
            vips: BTreeMap::new(),
            saved_sysctls: BTreeMap::new(),
            tunnel: None,
            kernel: KernelTunnel::default(),
            decap: BTreeMap::new(),
        }
    }
}

impl State {
    /// Nothing is set up and nothing is left to restore.
    pub fn is_empty(&self) -> bool {
        self.vips.is_empty()
            && self.saved_sysctls.is_empty()
            && self.tunnel.is_none()
            && self.kernel == KernelTunnel::default()
            && self.decap.is_empty()
    }

    pub fn from_json(text: &str) -> Result<State, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("state serializes") + "\n"
    }
}

/// The identity of the current network namespace, as a directory name.
pub fn netns_id() -> Result<String, Error> {
    const SO_NETNS_COOKIE: libc::c_int = 71;
    // SAFETY: plain socket(2); the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd >= 0 {
        let mut cookie: u64 = 0;
        let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
        // SAFETY: cookie and len are valid for the duration of the call.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                SO_NETNS_COOKIE,
                (&mut cookie as *mut u64).cast(),
                &mut len,
            )
        };
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
        if r == 0 && len as usize == std::mem::size_of::<u64>() {
            return Ok(format!("ns-{cookie}"));
        }
    }
    let md = fs::metadata("/proc/self/ns/net").map_err(|source| Error::Io {
        context: "stat /proc/self/ns/net".into(),
        source,
    })?;
    Ok(format!("ino-{}", md.ino()))
}

/// The state file of one network namespace, locked while open.
pub struct Store {
    dir: PathBuf,
    file: PathBuf,
    _lock: Option<fs::File>,
}

impl Store {
    /// Opens (and locks, exclusively) the store of the current network
    /// namespace under `base`.
    pub fn open(base: &Path) -> Result<Store, Error> {
        let io = |context: String| move |source| Error::Io { context, source };
        fs::create_dir_all(base).map_err(io(format!("create {}", base.display())))?;
        let lock_path = base.join(".lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(format!("open {}", lock_path.display())))?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(Error::Io {
                context: format!("lock {}", lock_path.display()),
                source: std::io::Error::last_os_error(),
            });
        }
        let dir = base.join(netns_id()?);
        let file = dir.join("state.json");
        Ok(Store {
            dir,
            file,
            _lock: Some(lock),
        })
    }

    /// The store of the current network namespace under `base`, for
    /// reading only: creates and locks nothing.
    pub fn peek(base: &Path) -> Result<Store, Error> {
        let dir = base.join(netns_id()?);
        let file = dir.join("state.json");
        Ok(Store {
            dir,
            file,
            _lock: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The recorded state (empty when there is no file).
    pub fn load(&self) -> Result<State, Error> {
        match fs::read_to_string(&self.file) {
            Ok(text) => {
                let st = State::from_json(&text).map_err(|e| Error::State {
                    path: self.file.clone(),
                    msg: e.to_string(),
                })?;
                if st.version != STATE_VERSION {
                    return Err(Error::State {
                        path: self.file.clone(),
                        msg: format!(
                            "version {} (this xvs-realserver writes {STATE_VERSION})",
                            st.version
                        ),
                    });
                }
                Ok(st)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(source) => Err(Error::Io {
                context: format!("read {}", self.file.display()),
                source,
            }),
        }
    }

    /// Writes the state atomically; an empty state removes the file (and
    /// the namespace's directory).
    pub fn save(&self, st: &State) -> Result<(), Error> {
        let io = |context: String| move |source| Error::Io { context, source };
        if st.is_empty() {
            match fs::remove_file(&self.file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(Error::Io {
                        context: format!("remove {}", self.file.display()),
                        source,
                    })
                }
            }
            let _ = fs::remove_dir(&self.dir);
            return Ok(());
        }
        fs::create_dir_all(&self.dir).map_err(io(format!("create {}", self.dir.display())))?;
        let tmp = self.dir.join("state.json.tmp");
        let mut f = fs::File::create(&tmp).map_err(io(format!("create {}", tmp.display())))?;
        f.write_all(st.to_json().as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io(format!("write {}", tmp.display())))?;
        fs::rename(&tmp, &self.file).map_err(io(format!("rename to {}", self.file.display())))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip() {
        let mut st = State::default();
        assert!(st.is_empty());
        st.vips.insert(
            "198.51.100.10".parse().unwrap(),
            VipEntry {
                mode: Mode::Tun,
                tun_type: Some(TunType::Gue),
                tun_port: Some(6080),
                dev: "eth0".into(),
                preexisting: false,
            },
        );
        st.saved_sysctls
            .insert("net.ipv4.conf.all.arp_ignore".into(), "0".into());
        st.tunnel = Some(Mechanism::Xdp);
        st.decap.insert(
            "eth0".into(),
            DecapSpec {
                vips: vec!["198.51.100.10".parse().unwrap()],
                gue_ports: vec![6080],
            },
        );
        let text = st.to_json();
        assert!(text.contains("\"198.51.100.10\""), "{text}");
        assert!(text.contains("\"tun_type\": \"gue\""), "{text}");
        assert!(text.contains("\"tunnel\": \"xdp\""), "{text}");
        assert_eq!(State::from_json(&text).unwrap(), st);
        assert!(!st.is_empty());
    }

    #[test]
    fn decap_spec_display() {
        let d = DecapSpec {
            vips: vec![
                "198.51.100.10".parse().unwrap(),
                "198.51.100.20".parse().unwrap(),
            ],
            gue_ports: vec![6080],
        };
        assert_eq!(
            d.to_string(),
            "vips 198.51.100.10,198.51.100.20; gue ports 6080"
        );
    }

    #[test]
    fn netns_id_is_stable() {
        let a = netns_id().unwrap();
        assert!(a.starts_with("ns-") || a.starts_with("ino-"), "{a}");
        assert_eq!(a, netns_id().unwrap());
    }

    #[test]
    fn store_round_trip_and_empty_removes() {
        let base = std::env::temp_dir().join(format!("xvs-realserver-test-{}", std::process::id()));
        let store = Store::open(&base).unwrap();
        assert_eq!(store.load().unwrap(), State::default());
        let mut st = State::default();
        st.saved_sysctls
            .insert("net.ipv4.conf.all.rp_filter".into(), "2".into());
        store.save(&st).unwrap();
        assert!(store.path().is_file());
        assert_eq!(store.load().unwrap(), st);
        store.save(&State::default()).unwrap();
        assert!(!store.path().exists());
        assert!(!store.path().parent().unwrap().exists());
        drop(store);
        fs::remove_dir_all(&base).unwrap();
    }
}
