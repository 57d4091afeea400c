//! The XDP data plane of xvs: loader, map writers, connection-table reader
//! and GC, stats readers.
//!
//! The kernel side is `bpf/xvs.bpf.c`; every structure shared with it is
//! defined once in `bpf/xvs.h`. The Rust side uses the types libbpf-cargo's
//! skeleton generates from that header's BTF (module [`abi`]), guarded by
//! `const` size assertions and a load-time check of every map's key and
//! value size. See `docs/design.md` for the map layout.
//!
//! The real-server side of tunnelling (`bpf/decap.bpf.c`) is [`decap`].

use libbpf_rs::{MapCore, MapFlags, MapHandle, Object, ObjectBuilder, Xdp, XdpFlags};
use log::{info, warn};
use std::ffi::CString;
use std::mem::size_of;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use xvs_core::model::{
    ConnState, Dest, FwdMethod, Protocol, Service, ServiceKey, Stats, Timeouts, TunCsum, TunType,
};

pub mod decap;
mod neigh;

#[allow(
    clippy::all,
    dead_code,
    missing_docs,
    non_camel_case_types,
    non_upper_case_globals,
    unused_imports,
    unsafe_op_in_unsafe_fn
)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/xvs.skel.rs"));
}

/// The shared kernel/user-space types, exactly as generated from
/// `bpf/xvs.h`. Fields typed `__be32`/`__be16` in C hold network-order
/// bytes; use [`be32`], [`be16`], [`ip_of`] and [`port_of`] to convert.
pub mod abi {
    pub use crate::skel::types::{
        xvs_conn, xvs_conn_flags, xvs_conn_key, xvs_counter, xvs_dest, xvs_dest_conns,
        xvs_dest_flags, xvs_fwd, xvs_ring_key, xvs_state, xvs_stats, xvs_svc, xvs_svc_key,
        xvs_tun_flags, xvs_tun_type,
    };
}

use abi::*;

// C and Rust cannot drift: the types above come from the object's BTF, and
// these pin their sizes (and therefore the explicit padding) down.
const _: () = assert!(size_of::<xvs_svc_key>() == 8);
const _: () = assert!(size_of::<xvs_svc>() == 16);
const _: () = assert!(size_of::<xvs_ring_key>() == 8);
const _: () = assert!(size_of::<xvs_dest>() == 24);
const _: () = assert!(size_of::<xvs_conn_key>() == 16);
const _: () = assert!(size_of::<xvs_conn>() == 40);
const _: () = assert!(size_of::<xvs_stats>() == 40);
const _: () = assert!(size_of::<xvs_dest_conns>() == 8);
const _: () = assert!(COUNTER_NAMES.len() == xvs_counter::XVS_CNT_MAX.0 as usize);
const _: () = assert!(xvs_state::XVS_S_UDP.0 == ConnState::Udp as u32);
const _: () = assert!(xvs_state::XVS_S_SYNACK.0 == ConnState::SynAck as u32);

/// The compiled BPF object (the same bytes the skeleton embeds).
static BPF_OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xvs.bpf.o"));

/// Names of the `XVS_CNT` counters, in `enum xvs_counter` order.
pub const COUNTER_NAMES: [&str; 32] = [
    "rx",
    "pass_not_ip",
    "pass_truncated",
    "pass_bad_ip",
    "pass_fragment",
    "pass_proto",
    "pass_no_svc",
    "pass_tcp_no_conn",
    "pass_no_dest",
    "pass_fwd_unsupported",
    "pass_ttl",
    "pass_stale",
    "pass_icmp",
    "drop_conn_full",
    "drop_conn_clash",
    "conn_new",
    "nat_in",
    "nat_out",
    "icmp_in",
    "icmp_out",
    "fib_no_neigh",
    "fib_frag_needed",
    "fib_other",
    "tx",
    "redirect",
    "dr_in",
    "tun_in",
    "drop_no_neigh",
    "drop_fib",
    "icmp_frag_needed",
    "drop_too_big",
    "drop_encap",
];

/// Size of the `XVS_CNT` map (`XVS_CNT_SLOTS` in `xvs.h`): room for new
/// counters without resizing a pinned map.
const CNT_SLOTS: u32 = 64;
const _: () = assert!(COUNTER_NAMES.len() <= CNT_SLOTS as usize);

/// Maps pinned under [`Options::pin_path`] (all state; `.rodata` is not).
const PINNED_MAPS: [&str; 9] = [
    "SVC_MAP",
    "DEST_MAP",
    "RING_MAP",
    "SCHED_POS",
    "CONN_MAP",
    "SVC_STATS",
    "DEST_STATS",
    "DEST_CONNS",
    "XVS_CNT",
];

const RING_GEN_SHIFT: u32 = 31;
const BATCH: u32 = 4096;

/// Sizes and pinning of the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Directory (on a bpffs) to pin every map in, as `<pin_path>/<MAP>`.
    /// Pinned maps already there are reused, so a restarted daemon keeps
    /// its flows. `None`: nothing pinned (tests).
    pub pin_path: Option<PathBuf>,
    /// `CONN_MAP` capacity in entries. Every NAT connection takes two
    /// (forward and reply), a DR/TUN connection one, so this holds at least
    /// `conn_capacity / 2` connections.
    /// Default `1 << 20` (~110 MiB of preallocated kernel memory).
    pub conn_capacity: u32,
    /// Service ids are `0..max_services`. Default 4096.
    pub max_services: u32,
    /// Dest ids are `0..max_dests`. Default 16384.
    pub max_dests: u32,
    /// `RING_MAP` entries over all services and both generations; one
    /// service's ring may use at most half of it. Default `1 << 18`.
    pub ring_capacity: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pin_path: None,
            conn_capacity: 1 << 20,
            max_services: 4096,
            max_dests: 16384,
            ring_capacity: 1 << 18,
        }
    }
}

/// Data-plane errors.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// A libbpf operation failed.
    #[error("{context}: {source}")]
    Bpf {
        /// What was being done.
        context: String,
        /// The libbpf error.
        #[source]
        source: libbpf_rs::Error,
    },
    /// An OS call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An invalid option or argument.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// An id beyond the configured table size.
    #[error("{what} id {id} out of range (max {max})")]
    IdOutOfRange {
        /// Which id space.
        what: &'static str,
        /// The id.
        id: u32,
        /// Table size.
        max: u32,
    },
    /// A forwarding method the data plane does not implement (none today;
    /// kept for API stability).
    #[error("forwarding method {0} is not supported by the xvs data plane")]
    UnsupportedFwd(FwdMethod),
    /// A tunnel option the data plane does not implement (`--tun-type
    /// gre`, `--tun-remcsum`).
    #[error("not supported by the xvs data plane: {0}")]
    Unsupported(String),
    /// No such network interface.
    #[error("no such interface: {0}")]
    NoSuchInterface(String),
    /// The loaded object does not match the Rust types (should not happen).
    #[error("ABI mismatch: {0}")]
    Abi(String),
}

fn bpf_err(context: impl Into<String>) -> impl FnOnce(libbpf_rs::Error) -> Error {
    let context = context.into();
    move |source| Error::Bpf { context, source }
}

/// One live connection (its forward entry), as `ipvsadm -Lc` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    /// Protocol.
    pub proto: Protocol,
    /// Client address.
    pub caddr: Ipv4Addr,
    /// Client port.
    pub cport: u16,
    /// Virtual address.
    pub vaddr: Ipv4Addr,
    /// Virtual port.
    pub vport: u16,
    /// Real server address.
    pub daddr: Ipv4Addr,
    /// Real server port.
    pub dport: u16,
    /// State (TCP per IPVS's table, `Udp` for UDP).
    pub state: ConnState,
    /// Forwarding method.
    pub fwd: FwdMethod,
    /// Service id.
    pub svc_id: u32,
    /// Dest id.
    pub dest_id: u32,
    /// Last packet, [`monotonic_ns`] clock.
    pub last_seen_ns: u64,
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// An IPv4 address as the bytes of a `__be32` field.
pub fn be32(a: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(a.octets())
}

/// A port as the bytes of a `__be16` field.
pub fn be16(p: u16) -> u16 {
    p.to_be()
}

/// The address in a `__be32` field.
pub fn ip_of(v: u32) -> Ipv4Addr {
    Ipv4Addr::from(v.to_ne_bytes())
}

/// The port in a `__be16` field.
pub fn port_of(v: u16) -> u16 {
    u16::from_be(v)
}

fn proto_of(n: u8) -> Option<Protocol> {
    match n {
        6 => Some(Protocol::Tcp),
        17 => Some(Protocol::Udp),
        _ => None,
    }
}

fn fwd_of(n: u8) -> FwdMethod {
    match n as u32 {
        x if x == xvs_fwd::XVS_FWD_ROUTE.0 => FwdMethod::Route,
        x if x == xvs_fwd::XVS_FWD_TUNNEL.0 => FwdMethod::Tunnel,
        _ => FwdMethod::Masq,
    }
}

/// Marker for the plain-old-data ABI types (no padding holes, any bit
/// pattern valid).
trait Pod: Copy + Default {}
impl Pod for xvs_svc_key {}
impl Pod for xvs_svc {}
impl Pod for xvs_ring_key {}
impl Pod for xvs_dest {}
impl Pod for xvs_conn_key {}
impl Pod for xvs_conn {}
impl Pod for xvs_stats {}
impl Pod for u32 {}
impl Pod for u64 {}

fn bytes<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: Pod types are repr(C) with explicit padding: every byte is
    // initialised.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }
}

fn from_bytes<T: Pod>(b: &[u8]) -> T {
    let mut v = T::default();
    let n = b.len().min(size_of::<T>());
    // SAFETY: copies at most size_of::<T>() bytes into a Pod value.
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), &mut v as *mut T as *mut u8, n) };
    v
}

/// The service key as `SVC_MAP` stores it.
pub fn svc_key(k: &ServiceKey) -> xvs_svc_key {
    xvs_svc_key {
        addr: be32(k.addr),
        port: be16(k.port),
        proto: k.proto.number(),
        pad: 0,
    }
}

/// `DEST_CONNS`, mapped into this process so expiry can adjust it with the
/// same atomics the program uses.
struct DestConns {
    ptr: *mut libc::c_void,
    len: usize,
    entries: u32,
}

// SAFETY: the mapping is only accessed through atomics.
unsafe impl Send for DestConns {}
// SAFETY: as above.
unsafe impl Sync for DestConns {}

impl DestConns {
    fn slot(&self, dest_id: u32) -> Option<(&AtomicI32, &AtomicI32)> {
        if dest_id >= self.entries {
            return None;
        }
        // SAFETY: in bounds of the mapping; xvs_dest_conns is two aligned
        // i32s, and the kernel accesses them atomically too.
        unsafe {
            let p = (self.ptr as *mut i32).add(dest_id as usize * 2);
            Some((AtomicI32::from_ptr(p), AtomicI32::from_ptr(p.add(1))))
        }
    }

    fn add(&self, dest_id: u32, state: u32, delta: i32) {
        if let Some((active, inactive)) = self.slot(dest_id) {
            if state == xvs_state::XVS_S_ESTABLISHED.0 {
                active.fetch_add(delta, Ordering::SeqCst);
            } else {
                inactive.fetch_add(delta, Ordering::SeqCst);
            }
        }
    }
}

impl Drop for DestConns {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what open() mapped.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

struct Maps {
    svc: MapHandle,
    dest: MapHandle,
    ring: MapHandle,
    sched_pos: MapHandle,
    conn: MapHandle,
    svc_stats: MapHandle,
    dest_stats: MapHandle,
    cnt: MapHandle,
}

#[derive(Debug, Clone)]
struct Attachment {
    ifname: String,
    ifindex: i32,
    /// `XdpFlags` bits of the mode it was attached in.
    flags: u32,
}

/// The loaded data plane: program, maps, attachments.
pub struct Dataplane {
    obj: Object,
    maps: Maps,
    dest_conns: DestConns,
    max_services: u32,
    max_dests: u32,
    ring_capacity: u32,
    attached: Vec<Attachment>,
}

impl std::fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataplane")
            .field("max_services", &self.max_services)
            .field("max_dests", &self.max_dests)
            .field("ring_capacity", &self.ring_capacity)
            .field("attached", &self.attached())
            .finish()
    }
}

/// A conn entry read from the table.
type RawConn = (xvs_conn_key, xvs_conn);

impl Dataplane {
    /// Loads the program and creates (or reuses pinned) maps.
    pub fn open(opts: &Options) -> Result<Dataplane, Error> {
        if opts.conn_capacity < 2 || opts.max_services == 0 || opts.max_dests == 0 {
            return Err(Error::Invalid(
                "conn_capacity >= 2, max_services and max_dests > 0 required".into(),
            ));
        }
        if opts.ring_capacity < 2 {
            return Err(Error::Invalid("ring_capacity >= 2 required".into()));
        }
        if let Some(p) = &opts.pin_path {
            std::fs::create_dir_all(p).map_err(|source| Error::Io {
                context: format!("creating pin directory {}", p.display()),
                source,
            })?;
        }
        if let Some(p) = &opts.pin_path {
            // Counters are only statistics: a pinned XVS_CNT of an older
            // size (fewer counters) is replaced rather than refusing to
            // start.
            let cnt = p.join("XVS_CNT");
            if let Ok(m) = MapHandle::from_pinned_path(&cnt) {
                if m.max_entries() != CNT_SLOTS {
                    warn!(
                        "{}: {} entries, this version needs {CNT_SLOTS}: recreating it",
                        cnt.display(),
                        m.max_entries()
                    );
                    let _ = std::fs::remove_file(&cnt);
                }
            }
        }
        let mut open = ObjectBuilder::default()
            .open_memory(BPF_OBJ)
            .map_err(bpf_err("opening the BPF object"))?;
        for mut m in open.maps_mut() {
            let name = m.name().to_string_lossy().into_owned();
            let entries = match name.as_str() {
                "SVC_MAP" | "SCHED_POS" | "SVC_STATS" => Some(opts.max_services),
                "DEST_MAP" | "DEST_STATS" | "DEST_CONNS" => Some(opts.max_dests),
                "RING_MAP" => Some(opts.ring_capacity),
                "CONN_MAP" => Some(opts.conn_capacity),
                _ => None,
            };
            if let Some(n) = entries {
                m.set_max_entries(n)
                    .map_err(bpf_err(format!("sizing {name}")))?;
            }
            if let (Some(dir), true) = (&opts.pin_path, PINNED_MAPS.contains(&name.as_str())) {
                m.set_pin_path(dir.join(&name))
                    .map_err(bpf_err(format!("pin path of {name}")))?;
            }
        }
        let obj = open.load().map_err(bpf_err(
            "loading the BPF object (if reusing pinned maps: sizes must match the pinned ones)",
        ))?;

        let handle = |name: &str, key: usize, value: usize| -> Result<MapHandle, Error> {
            let map = obj
                .maps()
                .find(|m| m.name() == name)
                .ok_or_else(|| Error::Abi(format!("map {name} missing")))?;
            let h = MapHandle::try_from(&map).map_err(bpf_err(format!("map {name}")))?;
            if h.key_size() as usize != key || h.value_size() as usize != value {
                return Err(Error::Abi(format!(
                    "{name}: key/value {}/{} bytes, Rust expects {key}/{value}",
                    h.key_size(),
                    h.value_size()
                )));
            }
            Ok(h)
        };
        let maps = Maps {
            svc: handle("SVC_MAP", size_of::<xvs_svc_key>(), size_of::<xvs_svc>())?,
            dest: handle("DEST_MAP", 4, size_of::<xvs_dest>())?,
            ring: handle("RING_MAP", size_of::<xvs_ring_key>(), 4)?,
            sched_pos: handle("SCHED_POS", 4, 8)?,
            conn: handle("CONN_MAP", size_of::<xvs_conn_key>(), size_of::<xvs_conn>())?,
            svc_stats: handle("SVC_STATS", 4, size_of::<xvs_stats>())?,
            dest_stats: handle("DEST_STATS", 4, size_of::<xvs_stats>())?,
            cnt: handle("XVS_CNT", 4, 8)?,
        };
        let dc = handle("DEST_CONNS", 4, size_of::<xvs_dest_conns>())?;
        let entries = dc.max_entries();
        // SAFETY: sysconf is always safe to call.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len = (entries as usize * size_of::<xvs_dest_conns>()).div_ceil(page) * page;
        // SAFETY: mapping an mmapable BPF array of `len` bytes, shared.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                dc.as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Error::Io {
                context: "mmap DEST_CONNS".into(),
                source: std::io::Error::last_os_error(),
            });
        }
        let dest_conns = DestConns { ptr, len, entries };
        let max_services = maps.svc_stats.max_entries();
        let max_dests = maps.dest.max_entries();
        let ring_capacity = maps.ring.max_entries();
        Ok(Dataplane {
            obj,
            maps,
            dest_conns,
            max_services,
            max_dests,
            ring_capacity,
            attached: Vec::new(),
        })
    }

    fn prog(&self, name: &str) -> Result<libbpf_rs::Program<'_>, Error> {
        self.obj
            .progs()
            .find(|p| p.name() == name)
            .ok_or_else(|| Error::Abi(format!("program {name} missing")))
    }

    /// Attaches `xvs_xdp` to `ifname`: native XDP, falling back to generic
    /// (skb) mode with a warning. Replaces any XDP program already there in
    /// that mode (e.g. the one a previous daemon left).
    pub fn attach(&mut self, ifname: &str) -> Result<(), Error> {
        if self.attached.iter().any(|a| a.ifname == ifname) {
            return Ok(());
        }
        let cname = CString::new(ifname).map_err(|_| Error::NoSuchInterface(ifname.into()))?;
        // SAFETY: valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(Error::NoSuchInterface(ifname.into()));
        }
        let prog = self.prog("xvs_xdp")?;
        let xdp = Xdp::new(prog.as_fd());
        let (flags, mode) = match xdp.attach(ifindex, XdpFlags::DRV_MODE) {
            Ok(()) => (XdpFlags::DRV_MODE, "native"),
            Err(e) => {
                warn!("{ifname}: native XDP attach failed ({e}); falling back to generic XDP");
                xdp.attach(ifindex, XdpFlags::SKB_MODE)
                    .map_err(bpf_err(format!("attaching XDP to {ifname}")))?;
                (XdpFlags::SKB_MODE, "generic")
            }
        };
        info!("xvs_xdp attached to {ifname} ({mode} mode)");
        self.attached.push(Attachment {
            ifname: ifname.to_string(),
            ifindex,
            flags: flags.bits(),
        });
        Ok(())
    }

    /// Interfaces the program is attached to (by this instance).
    pub fn attached(&self) -> Vec<String> {
        self.attached.iter().map(|a| a.ifname.clone()).collect()
    }

    /// Detaches from every interface this instance attached to.
    pub fn detach_all(&mut self) {
        let attached = std::mem::take(&mut self.attached);
        let Ok(prog) = self.prog("xvs_xdp") else {
            return;
        };
        let xdp = Xdp::new(prog.as_fd());
        for a in attached {
            if let Err(e) = xdp.detach(a.ifindex, XdpFlags::from_bits_truncate(a.flags)) {
                warn!("detaching XDP from {}: {e}", a.ifname);
            }
        }
    }

    fn check_svc_id(&self, id: u32) -> Result<(), Error> {
        if id >= self.max_services {
            return Err(Error::IdOutOfRange {
                what: "service",
                id,
                max: self.max_services,
            });
        }
        Ok(())
    }

    fn check_dest_id(&self, id: u32) -> Result<(), Error> {
        if id >= self.max_dests {
            return Err(Error::IdOutOfRange {
                what: "dest",
                id,
                max: self.max_dests,
            });
        }
        Ok(())
    }

    /// Deletes ring entries of (svc, gen) from index `from` on, up to the
    /// first missing one (rings are dense from 0).
    fn trim_ring(&self, svc_id: u32, gen: u32, from: u32) -> Result<(), Error> {
        for idx in from..self.ring_capacity {
            let k = xvs_ring_key {
                svc_id,
                slot: (gen << RING_GEN_SHIFT) | idx,
            };
            match self.maps.ring.delete(bytes(&k)) {
                Ok(()) => {}
                Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => break,
                Err(e) => return Err(bpf_err("RING_MAP delete")(e)),
            }
        }
        Ok(())
    }

    /// Creates or updates a service with its schedule: `ring` is the dest
    /// ids in schedule order (rr: live dests; wrr: one full
    /// `ip_vs_wrr_schedule` cycle). Written into the inactive generation,
    /// then `SVC_MAP` is flipped to it in one update. A new service starts
    /// its schedule at position 0.
    pub fn upsert_service(&self, svc_id: u32, svc: &Service, ring: &[u32]) -> Result<(), Error> {
        self.check_svc_id(svc_id)?;
        if ring.len() as u64 > (self.ring_capacity / 2) as u64 {
            return Err(Error::Invalid(format!(
                "ring of {} entries exceeds half the ring capacity ({})",
                ring.len(),
                self.ring_capacity
            )));
        }
        if let Some(&bad) = ring.iter().find(|&&d| d >= self.max_dests) {
            return self.check_dest_id(bad);
        }
        let key = svc_key(&svc.key);
        let cur = self
            .maps
            .svc
            .lookup(bytes(&key), MapFlags::ANY)
            .map_err(bpf_err("SVC_MAP lookup"))?
            .map(|v| from_bytes::<xvs_svc>(&v));
        if let Some(c) = &cur {
            if c.id != svc_id {
                return Err(Error::Invalid(format!(
                    "service {} already has id {}, not {svc_id}",
                    svc.key, c.id
                )));
            }
        }
        let gen = match &cur {
            Some(c) => (c.r#gen & 1) ^ 1,
            None => 0,
        };
        for (idx, dest_id) in ring.iter().enumerate() {
            let k = xvs_ring_key {
                svc_id,
                slot: (gen << RING_GEN_SHIFT) | idx as u32,
            };
            self.maps
                .ring
                .update(bytes(&k), bytes(dest_id), MapFlags::ANY)
                .map_err(bpf_err("RING_MAP update (ring capacity exhausted?)"))?;
        }
        self.trim_ring(svc_id, gen, ring.len() as u32)?;
        if cur.is_none() {
            self.trim_ring(svc_id, gen ^ 1, 0)?;
            self.maps
                .sched_pos
                .update(bytes(&svc_id), bytes(&0u64), MapFlags::ANY)
                .map_err(bpf_err("SCHED_POS reset"))?;
        }
        let val = xvs_svc {
            id: svc_id,
            flags: svc.flags,
            ring_len: ring.len() as u32,
            r#gen,
        };
        self.maps
            .svc
            .update(bytes(&key), bytes(&val), MapFlags::ANY)
            .map_err(bpf_err("SVC_MAP update"))
    }

    /// Removes a service: its `SVC_MAP` entry, both ring generations, its
    /// schedule position and its stats. Connections stay until they expire
    /// or their dests are removed, as in IPVS. Absent service: `Ok`.
    pub fn remove_service(&self, svc_id: u32, key: &ServiceKey) -> Result<(), Error> {
        self.check_svc_id(svc_id)?;
        let k = svc_key(key);
        match self.maps.svc.delete(bytes(&k)) {
            Ok(()) => {}
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => {}
            Err(e) => return Err(bpf_err("SVC_MAP delete")(e)),
        }
        self.trim_ring(svc_id, 0, 0)?;
        self.trim_ring(svc_id, 1, 0)?;
        self.maps
            .sched_pos
            .update(bytes(&svc_id), bytes(&0u64), MapFlags::ANY)
            .map_err(bpf_err("SCHED_POS reset"))?;
        self.zero_svc_stats(svc_id)
    }

    /// Creates or updates a dest slot, for every forwarding method:
    ///
    /// * `Masq`: NAT.
    /// * `Route`: direct routing; the real server must be reachable on a
    ///   link of the director (its MAC comes from the neighbour table, see
    ///   [`Dataplane::resolve_neighbours`]).
    /// * `Tunnel`: IPIP, or GUE to `tun_port` (`tun_csum`: `NoCsum` or
    ///   `Csum`). The outer source address is the director's address
    ///   towards the real server, looked up here (a UDP socket connected to
    ///   it; nothing is sent) and stored in the slot; call `upsert_dest`
    ///   again when addressing changes.
    ///
    /// Errors: no route to a `Route`/`Tunnel` real server
    /// ([`Error::Io`]); `--tun-type gre` and `--tun-remcsum`
    /// ([`Error::Unsupported`]); GUE without a port ([`Error::Invalid`]).
    pub fn upsert_dest(&self, dest_id: u32, svc_id: u32, dest: &Dest) -> Result<(), Error> {
        self.check_dest_id(dest_id)?;
        self.check_svc_id(svc_id)?;
        let mut val = xvs_dest {
            addr: be32(dest.addr),
            port: be16(dest.port),
            fwd: xvs_fwd::XVS_FWD_MASQ.0 as u8,
            flags: xvs_dest_flags::XVS_DEST_F_AVAILABLE.0 as u8,
            svc_id,
            weight: dest.weight,
            tun_port: 0,
            tun_type: 0,
            tun_flags: 0,
            tun_src: 0,
        };
        match dest.fwd {
            FwdMethod::Masq => {}
            FwdMethod::Route => {
                neigh::route_src(dest.addr, dest.port)?;
                val.fwd = xvs_fwd::XVS_FWD_ROUTE.0 as u8;
            }
            FwdMethod::Tunnel => {
                val.fwd = xvs_fwd::XVS_FWD_TUNNEL.0 as u8;
                val.tun_type = match dest.tun_type {
                    TunType::Ipip => xvs_tun_type::XVS_TUN_IPIP.0 as u8,
                    TunType::Gue if dest.tun_port == 0 => {
                        return Err(Error::Invalid(
                            "tunnel type gue needs a tunnel port (--tun-port)".into(),
                        ))
                    }
                    TunType::Gue => xvs_tun_type::XVS_TUN_GUE.0 as u8,
                    TunType::Gre => {
                        return Err(Error::Unsupported(
                            "tunnel type gre (--tun-type gre); use ipip or gue".into(),
                        ))
                    }
                };
                val.tun_flags = match dest.tun_csum {
                    TunCsum::NoCsum => 0,
                    // IPIP has no checksum of its own (IPVS ignores it too).
                    TunCsum::Csum if dest.tun_type == TunType::Ipip => 0,
                    TunCsum::Csum => xvs_tun_flags::XVS_TUN_F_CSUM.0 as u8,
                    TunCsum::RemCsum => return Err(Error::Unsupported(
                        "remote checksum offload (--tun-remcsum); use --tun-csum or --tun-nocsum"
                            .into(),
                    )),
                };
                if dest.tun_type == TunType::Gue {
                    val.tun_port = be16(dest.tun_port);
                }
                val.tun_src = be32(neigh::route_src(dest.addr, dest.tun_port)?);
            }
        }
        self.maps
            .dest
            .update(bytes(&dest_id), bytes(&val), MapFlags::ANY)
            .map_err(bpf_err("DEST_MAP update"))
    }

    /// Starts neighbour (ARP) resolution towards each address: the next
    /// hop of its route (the address itself when on-link) on the route's
    /// interface, created as a kernel-managed entry where the kernel
    /// supports it, so it stays resolved. DR drops packets while the real
    /// server's MAC is unknown (counter `drop_no_neigh`): call this when a
    /// `Route`/`Tunnel` dest is added and whenever that counter grows.
    /// Returns once the requests are made, not when ARP has answered.
    pub fn resolve_neighbours(&self, addrs: &[Ipv4Addr]) -> Result<(), Error> {
        neigh::resolve(addrs)
    }

    /// Removes a dest: marks its slot unavailable, deletes its connections
    /// (both entries), resets its `DEST_CONNS` and stats. Returns how many
    /// connections were deleted. Rebuild the service ring without it first.
    pub fn remove_dest(&self, dest_id: u32) -> Result<u64, Error> {
        self.check_dest_id(dest_id)?;
        self.maps
            .dest
            .update(bytes(&dest_id), bytes(&xvs_dest::default()), MapFlags::ANY)
            .map_err(bpf_err("DEST_MAP clear"))?;
        let mut n = 0;
        for (k, c) in self.raw_conns()? {
            if c.dest_id != dest_id {
                continue;
            }
            let _ = self.maps.conn.delete(bytes(&k));
            if c.flags & xvs_conn_flags::XVS_CONN_F_REPLY.0 as u8 == 0 {
                n += 1;
            }
        }
        if let Some((a, i)) = self.dest_conns.slot(dest_id) {
            a.store(0, Ordering::SeqCst);
            i.store(0, Ordering::SeqCst);
        }
        self.zero_dest_stats(dest_id)?;
        Ok(n)
    }

    fn percpu_sum(map: &MapHandle, id: u32) -> Result<Stats, Error> {
        let vals = map
            .lookup_percpu(bytes(&id), MapFlags::ANY)
            .map_err(bpf_err("stats lookup"))?
            .unwrap_or_default();
        let mut s = Stats::default();
        for v in vals {
            let x: xvs_stats = from_bytes(&v);
            s.conns += x.conns;
            s.inpkts += x.inpkts;
            s.outpkts += x.outpkts;
            s.inbytes += x.inbytes;
            s.outbytes += x.outbytes;
        }
        Ok(s)
    }

    fn percpu_zero(map: &MapHandle, id: u32) -> Result<(), Error> {
        let ncpu = libbpf_rs::num_possible_cpus().map_err(bpf_err("possible CPUs"))?;
        let zero = vec![vec![0u8; map.value_size() as usize]; ncpu];
        map.update_percpu(bytes(&id), &zero, MapFlags::ANY)
            .map_err(bpf_err("stats zero"))
    }

    /// Service counters, summed over CPUs.
    pub fn svc_stats(&self, svc_id: u32) -> Result<Stats, Error> {
        self.check_svc_id(svc_id)?;
        Self::percpu_sum(&self.maps.svc_stats, svc_id)
    }

    /// Dest counters, summed over CPUs.
    pub fn dest_stats(&self, dest_id: u32) -> Result<Stats, Error> {
        self.check_dest_id(dest_id)?;
        Self::percpu_sum(&self.maps.dest_stats, dest_id)
    }

    /// `(active, inactive)` connections of a dest (ESTABLISHED vs other).
    pub fn dest_conns(&self, dest_id: u32) -> Result<(u32, u32), Error> {
        self.check_dest_id(dest_id)?;
        let (a, i) = self.dest_conns.slot(dest_id).expect("checked");
        Ok((
            a.load(Ordering::SeqCst).max(0) as u32,
            i.load(Ordering::SeqCst).max(0) as u32,
        ))
    }

    /// Zeroes a service's counters (`-Z`).
    pub fn zero_svc_stats(&self, svc_id: u32) -> Result<(), Error> {
        self.check_svc_id(svc_id)?;
        Self::percpu_zero(&self.maps.svc_stats, svc_id)
    }

    /// Zeroes a dest's counters (`-Z`).
    pub fn zero_dest_stats(&self, dest_id: u32) -> Result<(), Error> {
        self.check_dest_id(dest_id)?;
        Self::percpu_zero(&self.maps.dest_stats, dest_id)
    }

    /// Every `CONN_MAP` entry, read in batches (a consistent-enough view of
    /// a table the program keeps changing).
    fn raw_conns(&self) -> Result<Vec<RawConn>, Error> {
        let ks = size_of::<xvs_conn_key>();
        let vs = size_of::<xvs_conn>();
        let mut out = Vec::new();
        let mut keys = vec![0u8; ks * BATCH as usize];
        let mut vals = vec![0u8; vs * BATCH as usize];
        let mut in_batch = 0u64;
        let mut out_batch = 0u64;
        let mut first = true;
        loop {
            let mut count = BATCH;
            // SAFETY: plain libbpf_sys struct, zero is its default.
            let mut opts: libbpf_rs::libbpf_sys::bpf_map_batch_opts = unsafe { std::mem::zeroed() };
            opts.sz = size_of::<libbpf_rs::libbpf_sys::bpf_map_batch_opts>() as _;
            // SAFETY: buffers hold BATCH keys/values; batch tokens are u64
            // (>= key size of a hash map's bucket token, 4 bytes).
            let rc = unsafe {
                libbpf_rs::libbpf_sys::bpf_map_lookup_batch(
                    self.maps.conn.as_fd().as_raw_fd(),
                    if first {
                        std::ptr::null_mut()
                    } else {
                        &mut in_batch as *mut u64 as *mut _
                    },
                    &mut out_batch as *mut u64 as *mut _,
                    keys.as_mut_ptr() as *mut _,
                    vals.as_mut_ptr() as *mut _,
                    &mut count,
                    &opts,
                )
            };
            let err = if rc < 0 {
                std::io::Error::last_os_error()
            } else {
                std::io::Error::from_raw_os_error(0)
            };
            let errno = err.raw_os_error().unwrap_or(0);
            if rc < 0 && errno != libc::ENOENT {
                if errno == libc::EINTR || errno == libc::EAGAIN {
                    continue;
                }
                return Err(Error::Io {
                    context: "CONN_MAP batch lookup".into(),
                    source: err,
                });
            }
            for i in 0..count as usize {
                out.push((
                    from_bytes(&keys[i * ks..(i + 1) * ks]),
                    from_bytes(&vals[i * vs..(i + 1) * vs]),
                ));
            }
            if rc < 0 {
                break; // ENOENT: that was the last batch
            }
            in_batch = out_batch;
            first = false;
        }
        Ok(out)
    }

    /// Live connections (forward entries only).
    pub fn conns(&self) -> Result<Vec<Conn>, Error> {
        Ok(self
            .raw_conns()?
            .into_iter()
            .filter(|(_, c)| c.flags & xvs_conn_flags::XVS_CONN_F_REPLY.0 as u8 == 0)
            .filter_map(|(k, c)| {
                Some(Conn {
                    proto: proto_of(k.proto)?,
                    caddr: ip_of(k.saddr),
                    cport: port_of(k.sport),
                    vaddr: ip_of(k.daddr),
                    vport: port_of(k.dport),
                    daddr: ip_of(c.peer.saddr),
                    dport: port_of(c.peer.sport),
                    state: ConnState::from_u8(c.state as u8).unwrap_or(ConnState::None),
                    fwd: fwd_of(c.fwd),
                    svc_id: c.svc_id,
                    dest_id: c.dest_id,
                    last_seen_ns: c.last_seen_ns,
                })
            })
            .collect())
    }

    /// Number of connections (forward entries) in `CONN_MAP`.
    pub fn conn_count(&self) -> Result<u64, Error> {
        Ok(self
            .raw_conns()?
            .iter()
            .filter(|(_, c)| c.flags & xvs_conn_flags::XVS_CONN_F_REPLY.0 as u8 == 0)
            .count() as u64)
    }

    /// Deletes both entries of every connection idle longer than its
    /// state's timeout, adjusting `DEST_CONNS` by the state the entry had
    /// when it was deleted. Also removes orphaned reply entries. Returns
    /// the number of connections expired.
    pub fn expire_conns(&self, timeouts: &Timeouts) -> Result<u64, Error> {
        let now = monotonic_ns();
        let reply = xvs_conn_flags::XVS_CONN_F_REPLY.0 as u8;
        let mut n = 0;
        for (k, c) in self.raw_conns()? {
            if c.flags & reply != 0 {
                // Orphan: its forward entry is gone or belongs to another
                // connection (half-finished delete).
                let fwd = self
                    .maps
                    .conn
                    .lookup(bytes(&c.peer), MapFlags::ANY)
                    .map_err(bpf_err("CONN_MAP lookup"))?
                    .map(|v| from_bytes::<xvs_conn>(&v));
                let mine = fwd.is_some_and(|f| bytes(&f.peer) == bytes(&k));
                if !mine && now.saturating_sub(c.last_seen_ns) > 1_000_000_000 {
                    let _ = self.maps.conn.delete(bytes(&k));
                }
                continue;
            }
            let state = ConnState::from_u8(c.state as u8).unwrap_or(ConnState::None);
            let timeout = state.timeout_secs(timeouts) as u64 * 1_000_000_000;
            if now.saturating_sub(c.last_seen_ns) <= timeout {
                continue;
            }
            // The snapshot may be stale for a big table: re-check the live
            // entry, then delete it and account for the state it had.
            let idle = |v: &[u8]| {
                let c: xvs_conn = from_bytes(v);
                let st = ConnState::from_u8(c.state as u8).unwrap_or(ConnState::None);
                now.saturating_sub(c.last_seen_ns)
                    > st.timeout_secs(timeouts) as u64 * 1_000_000_000
            };
            match self.maps.conn.lookup(bytes(&k), MapFlags::ANY) {
                Ok(Some(v)) if idle(&v) => {}
                Ok(_) => continue,
                Err(e) => return Err(bpf_err("CONN_MAP lookup")(e)),
            }
            let Some(v) = self
                .maps
                .conn
                .lookup_and_delete(bytes(&k))
                .map_err(bpf_err("CONN_MAP lookup_and_delete"))?
            else {
                continue;
            };
            let cur: xvs_conn = from_bytes(&v);
            // DR/TUN connections have no reply entry; their `peer` key may
            // be a NAT connection's reply entry, which must stay.
            if cur.fwd == xvs_fwd::XVS_FWD_MASQ.0 as u8 {
                let _ = self.maps.conn.delete(bytes(&cur.peer));
            }
            self.dest_conns.add(cur.dest_id, cur.state, -1);
            n += 1;
        }
        Ok(n)
    }

    /// Data-plane counters by name (summed over CPUs).
    pub fn counters(&self) -> Result<Vec<(&'static str, u64)>, Error> {
        let mut out = Vec::with_capacity(COUNTER_NAMES.len());
        for (i, name) in COUNTER_NAMES.iter().enumerate() {
            let vals = self
                .maps
                .cnt
                .lookup_percpu(bytes(&(i as u32)), MapFlags::ANY)
                .map_err(bpf_err("XVS_CNT lookup"))?
                .unwrap_or_default();
            let sum = vals.iter().map(|v| from_bytes::<u64>(v)).sum();
            out.push((*name, sum));
        }
        Ok(out)
    }

    /// One counter by name (0 when unknown).
    pub fn counter(&self, name: &str) -> Result<u64, Error> {
        Ok(self
            .counters()?
            .into_iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| v))
    }

    /// Runs `xvs_xdp` once on `frame` with `BPF_PROG_TEST_RUN` (root).
    /// `ingress_ifindex` selects the receiving device (in the calling
    /// thread's network namespace; default loopback). Returns the XDP
    /// action and the frame as the program left it.
    pub fn test_run(
        &self,
        frame: &[u8],
        ingress_ifindex: Option<u32>,
    ) -> Result<(u32, Vec<u8>), Error> {
        let prog = self
            .obj
            .progs_mut()
            .find(|p| p.name() == "xvs_xdp")
            .ok_or_else(|| Error::Abi("program xvs_xdp missing".into()))?;
        let mut out = vec![0u8; frame.len() + 256];
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex.
        let mut ctx = [0u32; 6];
        ctx[1] = frame.len() as u32;
        ctx[3] = ingress_ifindex.unwrap_or(0);
        // SAFETY: [u32; 6] viewed as 24 bytes.
        let ctx_bytes = unsafe { std::slice::from_raw_parts_mut(ctx.as_mut_ptr() as *mut u8, 24) };
        let input = libbpf_rs::ProgramInput {
            data_in: Some(frame),
            data_out: Some(&mut out),
            context_in: ingress_ifindex.map(|_| ctx_bytes),
            ..Default::default()
        };
        let r = prog.test_run(input).map_err(bpf_err("BPF_PROG_TEST_RUN"))?;
        let ret = r.return_value;
        let n = r.data.map_or(0, |d| d.len());
        out.truncate(n);
        Ok((ret, out))
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.detach_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_helpers_round_trip() {
        let a = Ipv4Addr::new(192, 0, 2, 1);
        assert_eq!(ip_of(be32(a)), a);
        assert_eq!(be32(a).to_ne_bytes(), [192, 0, 2, 1]);
        assert_eq!(port_of(be16(8080)), 8080);
        assert_eq!(be16(0x1234).to_ne_bytes(), [0x12, 0x34]);
    }

    #[test]
    fn counter_names_are_unique() {
        let mut v = COUNTER_NAMES.to_vec();
        v.sort();
        v.dedup();
        assert_eq!(v.len(), COUNTER_NAMES.len());
    }

    #[test]
    fn defaults_are_sane() {
        let o = Options::default();
        assert_eq!(o.conn_capacity, 1 << 20);
        assert!(o.ring_capacity >= 2 && o.max_dests > 0 && o.max_services > 0);
    }
}
