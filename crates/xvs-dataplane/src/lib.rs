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

use libbpf_rs::{
    Link, MapCore, MapFlags, MapHandle, Object, ObjectBuilder, TcHook, TcHookBuilder, Xdp,
    XdpFlags, TC_INGRESS,
};
use log::{info, warn};
use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::mem::size_of;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::Duration;
use xvs_core::model::{
    ConnState, Dest, FwdMethod, Protocol, Service, ServiceKey, Stats, Timeouts, TunCsum, TunType,
};
use xvs_core::sched::{self, persist, SchedKind};

pub mod decap;
mod neigh;
mod netlink;
mod tc;

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
        xvs_dest_flags, xvs_dest_rt_flags, xvs_expiry_cfg, xvs_expiry_kind, xvs_expiry_rec,
        xvs_fwd, xvs_iface_flags, xvs_lblc, xvs_lblc_key, xvs_ring_key, xvs_sched, xvs_state,
        xvs_stats, xvs_svc, xvs_svc_dests, xvs_svc_key, xvs_tmpl, xvs_tmpl_key, xvs_tun_flags,
        xvs_tun_type,
    };
}

use abi::*;

// C and Rust cannot drift: the types above come from the object's BTF, and
// these pin their sizes (and therefore the explicit padding) down.
const _: () = assert!(size_of::<xvs_svc_key>() == 8);
const _: () = assert!(size_of::<xvs_svc>() == 32);
const _: () = assert!(size_of::<xvs_ring_key>() == 8);
const _: () = assert!(size_of::<xvs_dest>() == 32);
const _: () = assert!(size_of::<xvs_svc_dests>() == 4 + 4 * SVC_DESTS_MAX);
const _: () = assert!(size_of::<xvs_tmpl_key>() == 12);
const _: () = assert!(size_of::<xvs_tmpl>() == 32);
const _: () = assert!(size_of::<xvs_lblc_key>() == 8);
const _: () = assert!(size_of::<xvs_lblc>() == 24 + 4 * LBLCR_SET_MAX);
const _: () = assert!(size_of::<xvs_conn_key>() == 16);
const _: () = assert!(size_of::<xvs_conn>() == 40);
const _: () = assert!(size_of::<xvs_stats>() == 40);
const _: () = assert!(size_of::<xvs_dest_conns>() == 16);
const _: () = assert!(size_of::<xvs_expiry_rec>() == 24);
const _: () = assert!(size_of::<xvs_expiry_cfg>() == 8 * xvs_state::XVS_S_LAST.0 as usize + 32);
const _: () = assert!(xvs_sched::XVS_SCHED_MAX.0 as usize == sched::SCHEDULERS.len());
const _: () = assert!(xvs_sched::XVS_SCHED_TWOS.0 == 13 && xvs_sched::XVS_SCHED_MH.0 == 12);
const _: () = assert!(COUNTER_NAMES.len() == xvs_counter::XVS_CNT_MAX.0 as usize);
const _: () = assert!(xvs_state::XVS_S_UDP.0 == ConnState::Udp as u32);
const _: () = assert!(xvs_state::XVS_S_SYNACK.0 == ConnState::SynAck as u32);

/// The compiled BPF object (the same bytes the skeleton embeds).
static BPF_OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xvs.bpf.o"));
/// The same program built for tc (`-DXVS_TC`): `xvs_tc`.
static BPF_OBJ_TC: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xvs_tc.bpf.o"));

/// Where the data plane hooks into the receive path of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachMode {
    /// XDP (`xvs_xdp`): native, falling back to generic. The fastest
    /// path on NICs whose driver runs XDP before any skb exists.
    #[default]
    Xdp,
    /// tc clsact ingress (`xvs_tc`): the packet stays an skb. Faster on
    /// veth and other virtual devices, where native XDP has to convert
    /// (and usually copy) every skb, and it forwards GRO/GSO packets
    /// whole.
    Tc,
}

impl AttachMode {
    /// `xdp` or `tc`.
    pub fn name(self) -> &'static str {
        match self {
            AttachMode::Xdp => "xdp",
            AttachMode::Tc => "tc",
        }
    }

    /// The program's name in its object.
    fn prog_name(self) -> &'static str {
        match self {
            AttachMode::Xdp => "xvs_xdp",
            AttachMode::Tc => "xvs_tc",
        }
    }
}

impl std::str::FromStr for AttachMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "xdp" => Ok(AttachMode::Xdp),
            "tc" => Ok(AttachMode::Tc),
            _ => Err(Error::Invalid(format!(
                "attach mode `{s}`: expected `xdp` or `tc`"
            ))),
        }
    }
}

/// tc filter handle and priority of `xvs_tc` on clsact ingress: fixed, so
/// that a restarted daemon replaces its predecessor's filter.
const TC_HANDLE: u32 = 0x7876;
const TC_PRIORITY: u32 = 1;

/// Names of the `XVS_CNT` counters, in `enum xvs_counter` order.
pub const COUNTER_NAMES: [&str; 39] = [
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
    "conn_reuse",
    "persist_hit",
    "persist_new",
    "drop_tmpl_full",
    "ops",
    "nh_fill",
    "peer",
];

/// Size of the `XVS_CNT` map (`XVS_CNT_SLOTS` in `xvs.h`): room for new
/// counters without resizing a pinned map.
const CNT_SLOTS: u32 = 64;
const _: () = assert!(COUNTER_NAMES.len() <= CNT_SLOTS as usize);

/// Maps pinned under [`Options::pin_path`] (all state; `.rodata` is not).
const PINNED_MAPS: [&str; 12] = [
    "SVC_MAP",
    "DEST_MAP",
    "RING_MAP",
    "SCHED_POS",
    "CONN_MAP",
    "SVC_STATS",
    "DEST_STATS",
    "DEST_CONNS",
    "XVS_CNT",
    "SVC_DESTS",
    "PERSIST_MAP",
    "LBLC_MAP",
];

const RING_GEN_SHIFT: u32 = 31;
/// `XVS_NO_DEST`: a dh/sh/mh table slot without a dest.
pub const NO_DEST: u32 = u32::MAX;
/// Dests per service the program scans (`XVS_SVC_DESTS_MAX`): the limit
/// for lc, wlc, sed, nq, fo, ovf, twos, lblc and lblcr services.
pub const SVC_DESTS_MAX: usize = 256;
/// Members of an lblcr replica set (`XVS_LBLCR_SET_MAX`).
pub const LBLCR_SET_MAX: usize = 16;
/// The largest mh table the program accepts (`XVS_MH_TAB_MAX`).
const MH_TAB_MAX: usize = 131_071;
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
    /// service's ring (or dh/sh/mh table: 256, 256 and 4093 entries) may
    /// use at most half of it. Default `1 << 18`.
    pub ring_capacity: u32,
    /// `PERSIST_MAP` capacity: persistence templates (one per client
    /// network and persistent service). Default `1 << 16`.
    pub persist_capacity: u32,
    /// `LBLC_MAP` capacity: lblc/lblcr cache entries over all services.
    /// Default 16384 (the kernel's per-service `max_size`).
    pub locality_capacity: u32,
    /// Which program to load and how [`Dataplane::attach`] hooks it in.
    /// Default [`AttachMode::Xdp`].
    pub attach_mode: AttachMode,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pin_path: None,
            conn_capacity: 1 << 20,
            max_services: 4096,
            max_dests: 16384,
            ring_capacity: 1 << 18,
            persist_capacity: 1 << 16,
            locality_capacity: 16384,
            attach_mode: AttachMode::Xdp,
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
    /// Controlled by a persistence template.
    pub persistent: bool,
}

/// One persistence template (`PERSIST_MAP`), as `ipvsadm -Lc` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Protocol of the connections it serves.
    pub proto: Protocol,
    /// Client address masked with the persistence netmask.
    pub caddr: Ipv4Addr,
    /// Virtual address.
    pub vaddr: Ipv4Addr,
    /// Virtual port, 0 for port-0 (and FTP) services.
    pub vport: u16,
    /// Real server address.
    pub daddr: Ipv4Addr,
    /// Real server port, 0 for port-0 (and FTP) services.
    pub dport: u16,
    /// Service id.
    pub svc_id: u32,
    /// Dest id.
    pub dest_id: u32,
    /// Creation or the last connection made through it.
    pub last_seen_ns: u64,
    /// Persistence timeout in seconds.
    pub timeout_secs: u32,
    /// Live connections it controls (at the time of listing).
    pub conns: u32,
    /// Forwarding method of its dest.
    pub fwd: FwdMethod,
}

/// One lblc/lblcr cache entry (`LBLC_MAP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalityEntry {
    /// Service id.
    pub svc_id: u32,
    /// Destination address of the flows.
    pub daddr: Ipv4Addr,
    /// Dest ids, most recently inserted first (lblc: one).
    pub dests: Vec<u32>,
    /// Last lookup, [`monotonic_ns`] clock.
    pub lastuse_ns: u64,
    /// Last change of the set (lblc: creation).
    pub lastmod_ns: u64,
}

/// One dest as the scheduler table builders see it (kernel list order is
/// the order of the slice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedDest {
    /// Dest id.
    pub id: u32,
    /// Real server address.
    pub addr: Ipv4Addr,
    /// Real server port.
    pub port: u16,
    /// Weight.
    pub weight: u32,
    /// The kernel's `last_weight` (mh keeps a quiesced dest's slots).
    pub last_weight: u32,
}

/// What the program schedules a service's new connections from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SvcSched {
    /// Dest ids in kernel list order (newest first): the array lc, wlc,
    /// sed, nq, fo, ovf, twos, lblc and lblcr scan (at most
    /// [`SVC_DESTS_MAX`]).
    pub dests: Vec<u32>,
    /// rr/wrr: one period of the selection sequence; dh/sh/mh: the bucket
    /// table (slot → dest id, [`NO_DEST`] when empty); others: empty.
    pub table: Vec<u32>,
}

impl SvcSched {
    /// An rr/wrr schedule from a ready ring; the dest list is the ring's
    /// dests in order of first appearance.
    pub fn from_ring(ring: &[u32]) -> SvcSched {
        let mut dests = Vec::new();
        for &d in ring {
            if !dests.contains(&d) {
                dests.push(d);
            }
        }
        SvcSched {
            dests,
            table: ring.to_vec(),
        }
    }

    /// Builds the schedule of `scheduler` over `dests` (kernel list
    /// order) with the `xvs_core::sched` builders: rr/wrr rings, dh/sh/mh
    /// tables; the dest list for everyone.
    pub fn build(scheduler: &str, dests: &[SchedDest]) -> Result<SvcSched, Error> {
        let kind = SchedKind::from_name(scheduler).map_err(|e| Error::Invalid(e.to_string()))?;
        let scans = !matches!(
            kind,
            SchedKind::Rr | SchedKind::Wrr | SchedKind::Dh | SchedKind::Sh | SchedKind::Mh
        );
        if scans && dests.len() > SVC_DESTS_MAX {
            return Err(Error::Unsupported(format!(
                "scheduler {scheduler} with more than {SVC_DESTS_MAX} real servers"
            )));
        }
        let weights: Vec<u32> = dests.iter().map(|d| d.weight).collect();
        let ids = |t: sched::table::Table| -> Vec<u32> {
            t.into_iter()
                .map(|s| s.map_or(NO_DEST, |i| dests[i].id))
                .collect()
        };
        let table = match kind {
            SchedKind::Rr | SchedKind::Wrr => sched::ring_for(scheduler, &weights)
                .map_err(|e| Error::Invalid(e.to_string()))?
                .into_iter()
                .map(|i| dests[i].id)
                .collect(),
            SchedKind::Dh => ids(sched::table::dh_table(dests.len())),
            SchedKind::Sh => ids(sched::table::sh_table(&weights)),
            SchedKind::Mh => ids(sched::table::mh_table(
                &dests
                    .iter()
                    .map(|d| sched::table::MhDest {
                        addr: u32::from(d.addr),
                        port: d.port,
                        last_weight: d.last_weight,
                    })
                    .collect::<Vec<_>>(),
            )),
            _ => Vec::new(),
        };
        Ok(SvcSched {
            dests: dests.iter().take(SVC_DESTS_MAX).map(|d| d.id).collect(),
            table,
        })
    }
}

fn sched_index(name: &str) -> Option<u32> {
    sched::SCHEDULERS
        .iter()
        .position(|s| *s == name)
        .map(|i| i as u32)
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
impl Pod for xvs_expiry_cfg {}
impl Pod for xvs_expiry_rec {}
impl Pod for xvs_stats {}
impl Pod for xvs_tmpl_key {}
impl Pod for xvs_tmpl {}
impl Pod for xvs_lblc_key {}
impl Pod for xvs_lblc {}
impl Pod for u32 {}
impl Pod for u64 {}

fn bytes<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: Pod types are repr(C) with explicit padding: every byte is
    // initialised.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }
}

const REPLY: u8 = xvs_conn_flags::XVS_CONN_F_REPLY.0 as u8;
const PERSIST: u8 = xvs_conn_flags::XVS_CONN_F_PERSIST.0 as u8;
const OPS: u8 = xvs_conn_flags::XVS_CONN_F_OPS.0 as u8;
/// A table of up to this many entries is scanned for expiry every second;
/// a bigger one every ⌈entries / this⌉ seconds, at most every
/// [`SCAN_MAX_INTERVAL_S`]: each scan touches every entry (≈ 0.3–0.5 µs
/// each, mostly cache misses), so a 1 M-entry table scanned every second
/// kept half a CPU busy. Connections then outlive their timeout by up to
/// the interval, a few seconds on timeouts of minutes.
const SCAN_ENTRIES_PER_SEC: u64 = 262_144;
const SCAN_MAX_INTERVAL_S: u64 = 8;
/// Orphaned reply entries (left by a half-finished delete: rare) cost one
/// more lookup per reply entry to find; a big table looks for them in
/// every 16th scan only.
const ORPHAN_CHECK_EVERY: u64 = 16;

/// When the next expiry scan is due, and what the last one saw.
#[derive(Debug, Default)]
struct ScanClock {
    next_due_ns: AtomicU64,
    entries: AtomicU64,
    passes: AtomicU64,
}

impl ScanClock {
    /// Whether a scan is due at `now` and, if so, whether it looks for
    /// orphans.
    fn start(&self, now: u64) -> Option<bool> {
        if now < self.next_due_ns.load(Ordering::Relaxed) {
            return None;
        }
        let big = self.entries.load(Ordering::Relaxed) > SCAN_ENTRIES_PER_SEC;
        // (a plain remainder: `is_multiple_of` is newer than the MSRV)
        let rem = self.passes.fetch_add(1, Ordering::Relaxed) % ORPHAN_CHECK_EVERY;
        Some(!big || rem == 0)
    }

    /// Records a scan that started at `now` and saw `visited` entries.
    fn done(&self, now: u64, visited: u64) {
        self.entries.store(visited, Ordering::Relaxed);
        let every = visited
            .div_ceil(SCAN_ENTRIES_PER_SEC)
            .clamp(1, SCAN_MAX_INTERVAL_S);
        // Half a second early, so the once-a-second caller's tick that is
        // due runs it; a small table is scanned at every call.
        let next = (every > 1).then(|| now + every * 1_000_000_000 - 500_000_000);
        self.next_due_ns.store(next.unwrap_or(0), Ordering::Relaxed);
    }
}

/// Whether the running kernel's release is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    // SAFETY: uname fills the zeroed struct.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to our struct.
    if unsafe { libc::uname(&mut u) } != 0 {
        return false;
    }
    let release: String = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8 as char)
        .collect();
    release_at_least(&release, major, minor)
}

fn release_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (ma, mi) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (ma, mi) >= (major, minor)
}

/// The index of a state's limit in `xvs_expiry_cfg.timeout_ns`: a state
/// number past the known ones times out as NONE, as in the kernel's scan.
fn state_index(state: u32) -> usize {
    if state < xvs_state::XVS_S_LAST.0 {
        state as usize
    } else {
        xvs_state::XVS_S_NONE.0 as usize
    }
}

fn key16(k: &xvs_conn_key) -> [u8; 16] {
    let mut b = [0u8; 16];
    b.copy_from_slice(bytes(k));
    b
}

/// The expiry scan's limits for these timeouts (`ipvsadm --set`; the
/// other states have IPVS's fixed timeouts), as of now.
pub fn expiry_cfg(t: &Timeouts) -> xvs_expiry_cfg {
    let mut cfg = xvs_expiry_cfg {
        ops_timeout_ns: u64::from(t.udp) * 1_000_000_000,
        orphan_grace_ns: 1_000_000_000,
        now_ns: monotonic_ns(),
        ..Default::default()
    };
    for (st, limit) in cfg.timeout_ns.iter_mut().enumerate() {
        let state = ConnState::from_u8(st as u8).unwrap_or(ConnState::None);
        *limit = u64::from(state.timeout_secs(t)) * 1_000_000_000;
    }
    cfg
}

fn from_bytes<T: Pod>(b: &[u8]) -> T {
    let mut v = T::default();
    let n = b.len().min(size_of::<T>());
    // SAFETY: copies at most size_of::<T>() bytes into a Pod value.
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), &mut v as *mut T as *mut u8, n) };
    v
}

/// Reads every entry of `map` with `BPF_MAP_LOOKUP_BATCH`, handing each
/// key and value (`vsize` bytes as the kernel returns them: per-CPU maps
/// give one 8-byte-aligned value per possible CPU) to `each`.
fn batch_read(
    map: &MapHandle,
    ksize: usize,
    vsize: usize,
    mut each: impl FnMut(&[u8], &[u8]),
) -> Result<(), Error> {
    let mut keys = vec![0u8; ksize * BATCH as usize];
    let mut vals = vec![0u8; vsize * BATCH as usize];
    let mut in_batch = 0u64;
    let mut out_batch = 0u64;
    let mut first = true;
    loop {
        let mut count = BATCH;
        // SAFETY: plain libbpf_sys struct, zero is its default.
        let mut opts: libbpf_rs::libbpf_sys::bpf_map_batch_opts = unsafe { std::mem::zeroed() };
        opts.sz = size_of::<libbpf_rs::libbpf_sys::bpf_map_batch_opts>() as _;
        // SAFETY: buffers hold BATCH keys/values of the map's sizes; batch
        // tokens are u64 (>= a hash map's 4-byte bucket token and an
        // array's 4-byte key).
        let rc = unsafe {
            libbpf_rs::libbpf_sys::bpf_map_lookup_batch(
                map.as_fd().as_raw_fd(),
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
                context: "BPF map batch lookup".into(),
                source: err,
            });
        }
        for i in 0..count as usize {
            each(
                &keys[i * ksize..(i + 1) * ksize],
                &vals[i * vsize..(i + 1) * vsize],
            );
        }
        if rc < 0 {
            return Ok(()); // ENOENT: that was the last batch
        }
        in_batch = out_batch;
        first = false;
    }
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

/// One `xvs_dest_conns` slot, seen through atomics.
struct DestRt<'a> {
    active: &'a AtomicI32,
    inactive: &'a AtomicI32,
    persist: &'a AtomicI32,
    flags: &'a AtomicI32,
}

const OVERLOAD: i32 = xvs_dest_rt_flags::XVS_DEST_F_OVERLOAD.0 as i32;

impl DestConns {
    fn slot(&self, dest_id: u32) -> Option<DestRt<'_>> {
        if dest_id >= self.entries {
            return None;
        }
        // SAFETY: in bounds of the mapping; xvs_dest_conns is four aligned
        // 32-bit words, and the kernel accesses them atomically too.
        unsafe {
            let p = (self.ptr as *mut i32).add(dest_id as usize * 4);
            Some(DestRt {
                active: AtomicI32::from_ptr(p),
                inactive: AtomicI32::from_ptr(p.add(1)),
                persist: AtomicI32::from_ptr(p.add(2)),
                flags: AtomicI32::from_ptr(p.add(3)),
            })
        }
    }

    /// `ip_vs_unbind_dest`: one connection in `state` fewer; OVERLOAD
    /// cleared as `persist::overload_after` says for thresholds `(u, l)`.
    fn unbind(&self, dest_id: u32, state: u32, thresholds: (u32, u32)) {
        let Some(rt) = self.slot(dest_id) else { return };
        let (a, i) = if state == xvs_state::XVS_S_ESTABLISHED.0 {
            (
                rt.active.fetch_sub(1, Ordering::SeqCst) - 1,
                rt.inactive.load(Ordering::SeqCst),
            )
        } else {
            (
                rt.active.load(Ordering::SeqCst),
                rt.inactive.fetch_sub(1, Ordering::SeqCst) - 1,
            )
        };
        if rt.flags.load(Ordering::SeqCst) & OVERLOAD == 0 {
            return;
        }
        let total = (a.max(0) as u32).saturating_add(i.max(0) as u32);
        let (u, l) = thresholds;
        if !persist::overload_after(persist::ConnEvent::Unbind, total, u, l, true) {
            rt.flags.fetch_and(!OVERLOAD, Ordering::SeqCst);
        }
    }

    fn reset(&self, dest_id: u32) {
        if let Some(rt) = self.slot(dest_id) {
            rt.active.store(0, Ordering::SeqCst);
            rt.inactive.store(0, Ordering::SeqCst);
            rt.persist.store(0, Ordering::SeqCst);
            rt.flags.store(0, Ordering::SeqCst);
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
    svc_dests: MapHandle,
    persist: MapHandle,
    lblc: MapHandle,
    rand: MapHandle,
    nh_cfg: MapHandle,
    iface: MapHandle,
}

#[derive(Debug, Clone)]
struct Attachment {
    ifname: String,
    ifindex: i32,
    /// `XdpFlags` bits of the mode it was attached in (XDP).
    flags: u32,
    /// The clsact hook (tc), and whether this instance created the qdisc.
    tc: Option<(TcHook, bool)>,
}

/// The loaded data plane: program, maps, attachments.
pub struct Dataplane {
    obj: Object,
    maps: Maps,
    /// `xvs_expiry_scan` attached to `CONN_MAP` (None: the kernel could
    /// not load or attach it; expiry then reads the table itself).
    expiry: Option<(Link, MapHandle)>,
    scan_clock: ScanClock,
    dest_conns: DestConns,
    max_services: u32,
    max_dests: u32,
    ring_capacity: u32,
    mode: AttachMode,
    attached: Vec<Attachment>,
}

impl std::fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataplane")
            .field("max_services", &self.max_services)
            .field("max_dests", &self.max_dests)
            .field("ring_capacity", &self.ring_capacity)
            .field("mode", &self.mode)
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
        if opts.persist_capacity == 0 || opts.locality_capacity == 0 {
            return Err(Error::Invalid(
                "persist_capacity and locality_capacity > 0 required".into(),
            ));
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
        let load = |with_scan: bool| -> Result<Object, Error> {
            let mut open = ObjectBuilder::default()
                .open_memory(match opts.attach_mode {
                    AttachMode::Xdp => BPF_OBJ,
                    AttachMode::Tc => BPF_OBJ_TC,
                })
                .map_err(bpf_err("opening the BPF object"))?;
            for mut m in open.maps_mut() {
                let name = m.name().to_string_lossy().into_owned();
                let entries = match name.as_str() {
                    "SVC_MAP" | "SCHED_POS" | "SVC_STATS" => Some(opts.max_services),
                    "DEST_MAP" | "DEST_STATS" | "DEST_CONNS" => Some(opts.max_dests),
                    "RING_MAP" => Some(opts.ring_capacity),
                    "CONN_MAP" => Some(opts.conn_capacity),
                    "SVC_DESTS" => Some(opts.max_services.saturating_mul(2)),
                    "PERSIST_MAP" => Some(opts.persist_capacity),
                    "LBLC_MAP" => Some(opts.locality_capacity),
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
            if !with_scan {
                for mut p in open.progs_mut() {
                    if p.name() == "xvs_expiry_scan" {
                        p.set_autoload(false);
                    }
                }
            }
            open.load().map_err(bpf_err(
                "loading the BPF object (if reusing pinned maps: sizes must match the pinned ones)",
            ))
        };
        // The expiry scan needs the kernel's BTF and map-element iterators
        // (5.9); without them the rest loads alone and expiry reads the
        // table from user space. Asked beforehand: a failed load cannot
        // tell which part failed (a pinned map of another size fails too).
        let btf = std::path::Path::new("/sys/kernel/btf/vmlinux").exists() && kernel_at_least(5, 9);
        let obj = load(btf)?;

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
            svc_dests: handle("SVC_DESTS", 4, size_of::<xvs_svc_dests>())?,
            persist: handle(
                "PERSIST_MAP",
                size_of::<xvs_tmpl_key>(),
                size_of::<xvs_tmpl>(),
            )?,
            lblc: handle("LBLC_MAP", size_of::<xvs_lblc_key>(), size_of::<xvs_lblc>())?,
            rand: handle("XVS_RAND", 4, 8)?,
            nh_cfg: handle("XVS_NH_CFG", 4, 16)?,
            iface: handle("XVS_IFACE", 4, 4)?,
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
        let expiry = btf
            .then(|| {
                let cfg = handle("XVS_EXPIRY_CFG", 4, size_of::<xvs_expiry_cfg>())?;
                let prog = obj
                    .progs_mut()
                    .find(|p| p.name() == "xvs_expiry_scan")
                    .ok_or_else(|| Error::Abi("program xvs_expiry_scan missing".into()))?;
                let link = prog
                    .attach_iter(maps.conn.as_fd())
                    .map_err(bpf_err("attaching the expiry scan to CONN_MAP"))?;
                Ok::<_, Error>((link, cfg))
            })
            .transpose()
            .unwrap_or_else(|e| {
                warn!("{e}: connection expiry reads the whole table from user space instead");
                None
            });
        if !btf {
            info!("no expiry scan in this kernel: connection expiry reads the whole table from user space");
        }
        write_nh_cfg(&maps.nh_cfg, NEXTHOP_TTL_DEFAULT, 0)?;
        let max_services = maps.svc_stats.max_entries();
        let max_dests = maps.dest.max_entries();
        let ring_capacity = maps.ring.max_entries();
        Ok(Dataplane {
            obj,
            maps,
            expiry,
            scan_clock: ScanClock::default(),
            dest_conns,
            max_services,
            max_dests,
            ring_capacity,
            mode: opts.attach_mode,
            attached: Vec::new(),
        })
    }

    fn prog(&self, name: &str) -> Result<libbpf_rs::Program<'_>, Error> {
        self.obj
            .progs()
            .find(|p| p.name() == name)
            .ok_or_else(|| Error::Abi(format!("program {name} missing")))
    }

    /// The attach mode this instance was opened with.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// Attaches the program to `ifname`. XDP: native, falling back to
    /// generic (skb) mode with a warning; replaces any XDP program already
    /// there in that mode (e.g. the one a previous daemon left). tc: a
    /// clsact qdisc (created if missing) with `xvs_tc` as a direct-action
    /// ingress filter at a fixed handle and priority, replacing a previous
    /// daemon's filter.
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
        self.remove_other_mode(ifname, ifindex);
        let prog = self.prog(self.mode.prog_name())?;
        if self.mode == AttachMode::Tc {
            let mut hook = TcHookBuilder::new(prog.as_fd())
                .ifindex(ifindex)
                .replace(true)
                .handle(TC_HANDLE)
                .priority(TC_PRIORITY)
                .hook(TC_INGRESS);
            let created = match hook.create() {
                Ok(_) => true,
                Err(e) if e.kind() == libbpf_rs::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(bpf_err(format!("creating the clsact qdisc on {ifname}"))(e)),
            };
            if let Err(e) = hook.attach() {
                if created {
                    let _ = hook.destroy();
                }
                return Err(bpf_err(format!("attaching the tc filter to {ifname}"))(e));
            }
            // A veth with its peer in another namespace: frames out of
            // it go straight to the peer's ingress.
            let peer = neigh::veth_peer_elsewhere(ifindex).unwrap_or_else(|e| {
                warn!("{ifname}: cannot tell whether it is a veth ({e}); using plain redirects");
                false
            });
            if peer {
                let flags: u32 = xvs_iface_flags::XVS_IF_F_PEER.0;
                self.maps
                    .iface
                    .update(bytes(&(ifindex as u32)), bytes(&flags), MapFlags::ANY)
                    .map_err(bpf_err("XVS_IFACE update"))?;
                // cached next hops carry the flags of their egress
                self.flush_nexthops()?;
            }
            info!(
                "xvs_tc attached to {ifname} (tc clsact ingress{})",
                if peer {
                    "; veth: frames for it go to its peer directly"
                } else {
                    ""
                }
            );
            self.attached.push(Attachment {
                ifname: ifname.to_string(),
                ifindex,
                flags: 0,
                tc: Some((hook, created)),
            });
            return Ok(());
        }
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
            tc: None,
        });
        Ok(())
    }

    /// Removes the other build of the data plane from `ifindex`, left by a
    /// daemon of the other mode that did not detach (killed): it would
    /// see the packets before (XDP) or after (tc) this one.
    fn remove_other_mode(&self, ifname: &str, ifindex: i32) {
        match self.mode {
            AttachMode::Tc => {
                let Ok(ids) = decap::prog_ids(ifindex) else {
                    return;
                };
                for (id, flags) in ids {
                    if !decap::is_named(id, AttachMode::Xdp.prog_name()) {
                        continue;
                    }
                    if let Some(fd) = decap::prog_fd(id) {
                        warn!("{ifname}: removing a leftover xvs_xdp (program {id})");
                        let _ = Xdp::new(fd.as_fd()).detach(ifindex, flags);
                    }
                }
            }
            AttachMode::Xdp => {
                let id = tc::ingress_prog_at(ifindex, TC_HANDLE, TC_PRIORITY as u16);
                if !decap::is_named(id, AttachMode::Tc.prog_name()) {
                    return;
                }
                if let Some(fd) = decap::prog_fd(id) {
                    warn!("{ifname}: removing a leftover xvs_tc filter (program {id})");
                    let _ = TcHookBuilder::new(fd.as_fd())
                        .ifindex(ifindex)
                        .handle(TC_HANDLE)
                        .priority(TC_PRIORITY)
                        .hook(TC_INGRESS)
                        .detach();
                }
            }
        }
    }

    /// Interfaces the program is attached to (by this instance).
    pub fn attached(&self) -> Vec<String> {
        self.attached.iter().map(|a| a.ifname.clone()).collect()
    }

    /// Detaches from every interface this instance attached to.
    /// A clsact qdisc this instance created goes with its filter.
    pub fn detach_all(&mut self) {
        let attached = std::mem::take(&mut self.attached);
        let Ok(prog) = self.prog(self.mode.prog_name()) else {
            return;
        };
        let xdp = Xdp::new(prog.as_fd());
        for a in attached {
            let _ = self.maps.iface.delete(bytes(&(a.ifindex as u32)));
            if let Some((mut hook, created)) = a.tc {
                let r = if created {
                    // both hooks: the whole qdisc goes
                    hook.attach_point(TC_INGRESS | libbpf_rs::TC_EGRESS);
                    hook.destroy()
                } else {
                    hook.detach()
                };
                if let Err(e) = r {
                    warn!("detaching the tc filter from {}: {e}", a.ifname);
                }
                continue;
            }
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

    /// Creates or updates a service with its schedule ([`SvcSched`]: the
    /// rr/wrr ring or dh/sh/mh table, and the dest list in kernel list
    /// order). Both are written into the inactive generation, then
    /// `SVC_MAP` is flipped to it in one update. A new service, or a new
    /// scheduler on an existing one (`-E -s`), starts with fresh scheduler
    /// state, as the kernel binds a new scheduler instance: schedule
    /// position 0 and an empty lblc/lblcr cache. Persistence templates
    /// stay.
    pub fn upsert_service(
        &self,
        svc_id: u32,
        svc: &Service,
        sched: &SvcSched,
    ) -> Result<(), Error> {
        self.check_svc_id(svc_id)?;
        let ring = &sched.table;
        if ring.len() as u64 > (self.ring_capacity / 2) as u64 {
            return Err(Error::Invalid(format!(
                "ring of {} entries exceeds half the ring capacity ({})",
                ring.len(),
                self.ring_capacity
            )));
        }
        if ring.len() > MH_TAB_MAX {
            return Err(Error::Invalid(format!(
                "ring of {} entries exceeds the data plane's limit ({MH_TAB_MAX})",
                ring.len()
            )));
        }
        if let Some(&bad) = ring
            .iter()
            .chain(sched.dests.iter())
            .find(|&&d| d >= self.max_dests && d != NO_DEST)
        {
            return self.check_dest_id(bad);
        }
        if sched.dests.len() > SVC_DESTS_MAX {
            return Err(Error::Unsupported(format!(
                "more than {SVC_DESTS_MAX} real servers in one service"
            )));
        }
        let sched_no = sched_index(&svc.scheduler)
            .ok_or_else(|| Error::Invalid(format!("unknown scheduler {}", svc.scheduler)))?;
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
        let mut list = vec![0u32; 1 + SVC_DESTS_MAX];
        list[0] = sched.dests.len() as u32;
        list[1..=sched.dests.len()].copy_from_slice(&sched.dests);
        let list_bytes: Vec<u8> = list.iter().flat_map(|v| v.to_ne_bytes()).collect();
        self.maps
            .svc_dests
            .update(bytes(&(svc_id * 2 + gen)), &list_bytes, MapFlags::ANY)
            .map_err(bpf_err("SVC_DESTS update"))?;
        if cur.is_none() {
            self.trim_ring(svc_id, gen ^ 1, 0)?;
        }
        if cur.is_none_or(|c| c.sched != sched_no) {
            self.maps
                .sched_pos
                .update(bytes(&svc_id), bytes(&0u64), MapFlags::ANY)
                .map_err(bpf_err("SCHED_POS reset"))?;
            self.flush_locality(svc_id)?;
        }
        let val = xvs_svc {
            id: svc_id,
            flags: svc.flags,
            ring_len: ring.len() as u32,
            r#gen,
            sched: sched_no,
            timeout: svc.timeout,
            netmask: be32(svc.netmask),
            pad: 0,
        };
        self.maps
            .svc
            .update(bytes(&key), bytes(&val), MapFlags::ANY)
            .map_err(bpf_err("SVC_MAP update"))
    }

    /// Deletes the lblc/lblcr cache entries of a service.
    fn flush_locality(&self, svc_id: u32) -> Result<(), Error> {
        for (k, _) in self.read_all::<xvs_lblc_key, xvs_lblc>(&self.maps.lblc)? {
            if k.svc_id == svc_id {
                let _ = self.maps.lblc.delete(bytes(&k));
            }
        }
        Ok(())
    }

    /// Removes a service: its `SVC_MAP` entry, both ring generations, its
    /// schedule position, lblc/lblcr cache, persistence templates and
    /// stats. Connections stay until they expire or their dests are
    /// removed, as in IPVS. Absent service: `Ok`.
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
        self.flush_locality(svc_id)?;
        for (tk, t) in self.read_all::<xvs_tmpl_key, xvs_tmpl>(&self.maps.persist)? {
            if t.svc_id == svc_id && self.maps.persist.delete(bytes(&tk)).is_ok() {
                if let Some(rt) = self.dest_conns.slot(t.dest_id) {
                    rt.persist.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
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
            u_threshold: dest.u_threshold,
            l_threshold: dest.l_threshold,
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
        // __ip_vs_update_dest: a new upper threshold of 0, or one above
        // the old, clears OVERLOAD (a fresh slot's old threshold is 0).
        let old_u = self.dest_slot(dest_id)?.map_or(0, |d| d.u_threshold);
        if let Some(rt) = self.dest_conns.slot(dest_id) {
            let cur = rt.flags.load(Ordering::SeqCst) & OVERLOAD != 0;
            if !persist::overload_after_edit(old_u, dest.u_threshold, cur) {
                rt.flags.fetch_and(!OVERLOAD, Ordering::SeqCst);
            }
        }
        self.maps
            .dest
            .update(bytes(&dest_id), bytes(&val), MapFlags::ANY)
            .map_err(bpf_err("DEST_MAP update"))
    }

    /// The `DEST_MAP` slot, when it holds a dest.
    fn dest_slot(&self, dest_id: u32) -> Result<Option<xvs_dest>, Error> {
        Ok(self
            .maps
            .dest
            .lookup(bytes(&dest_id), MapFlags::ANY)
            .map_err(bpf_err("DEST_MAP lookup"))?
            .map(|v| from_bytes::<xvs_dest>(&v))
            .filter(|d| d.flags & xvs_dest_flags::XVS_DEST_F_AVAILABLE.0 as u8 != 0))
    }

    /// `(u_threshold, l_threshold)` of a dest (0, 0 when the slot is free).
    fn thresholds(&self, dest_id: u32) -> (u32, u32) {
        self.dest_slot(dest_id)
            .ok()
            .flatten()
            .map_or((0, 0), |d| (d.u_threshold, d.l_threshold))
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
    /// (both entries) and persistence templates, takes it out of lblc/lblcr
    /// caches, resets its `DEST_CONNS` and stats. Returns how many
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
        for (tk, t) in self.read_all::<xvs_tmpl_key, xvs_tmpl>(&self.maps.persist)? {
            if t.dest_id == dest_id {
                let _ = self.maps.persist.delete(bytes(&tk));
            }
        }
        for (lk, mut e) in self.read_all::<xvs_lblc_key, xvs_lblc>(&self.maps.lblc)? {
            let n = (e.n as usize).min(LBLCR_SET_MAX);
            if !e.dests[..n].contains(&dest_id) {
                continue;
            }
            let kept: Vec<u32> = e.dests[..n]
                .iter()
                .copied()
                .filter(|&d| d != dest_id)
                .collect();
            if kept.is_empty() {
                let _ = self.maps.lblc.delete(bytes(&lk));
                continue;
            }
            e.dests = [0; LBLCR_SET_MAX];
            e.dests[..kept.len()].copy_from_slice(&kept);
            e.n = kept.len() as u32;
            let _ = self
                .maps
                .lblc
                .update(bytes(&lk), bytes(&e), MapFlags::EXIST);
        }
        self.dest_conns.reset(dest_id);
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

    /// Counters of every service slot, summed over CPUs, indexed by
    /// service id (`0..max_services`), read in bulk.
    pub fn all_svc_stats(&self) -> Result<Vec<Stats>, Error> {
        Self::percpu_sum_all(&self.maps.svc_stats, self.max_services)
    }

    /// Counters of every dest slot, summed over CPUs, indexed by dest id
    /// (`0..max_dests`), read in bulk.
    pub fn all_dest_stats(&self) -> Result<Vec<Stats>, Error> {
        Self::percpu_sum_all(&self.maps.dest_stats, self.max_dests)
    }

    /// `(active, inactive)` connections of a dest (ESTABLISHED vs other).
    pub fn dest_conns(&self, dest_id: u32) -> Result<(u32, u32), Error> {
        self.check_dest_id(dest_id)?;
        let rt = self.dest_conns.slot(dest_id).expect("checked");
        Ok((
            rt.active.load(Ordering::SeqCst).max(0) as u32,
            rt.inactive.load(Ordering::SeqCst).max(0) as u32,
        ))
    }

    /// Persistence templates pointing at a dest (`PersistConn`).
    pub fn persist_conns(&self, dest_id: u32) -> Result<u32, Error> {
        self.check_dest_id(dest_id)?;
        let rt = self.dest_conns.slot(dest_id).expect("checked");
        Ok(rt.persist.load(Ordering::SeqCst).max(0) as u32)
    }

    /// The dest's `IP_VS_DEST_F_OVERLOAD` flag (thresholds `-x`/`-y`).
    pub fn dest_overloaded(&self, dest_id: u32) -> Result<bool, Error> {
        self.check_dest_id(dest_id)?;
        let rt = self.dest_conns.slot(dest_id).expect("checked");
        Ok(rt.flags.load(Ordering::SeqCst) & OVERLOAD != 0)
    }

    /// Sets or clears OVERLOAD by hand (tests; the program and expiry
    /// maintain it from the thresholds otherwise).
    pub fn set_dest_overloaded(&self, dest_id: u32, on: bool) -> Result<(), Error> {
        self.check_dest_id(dest_id)?;
        let rt = self.dest_conns.slot(dest_id).expect("checked");
        if on {
            rt.flags.fetch_or(OVERLOAD, Ordering::SeqCst);
        } else {
            rt.flags.fetch_and(!OVERLOAD, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Test hook: with a non-zero `seed`, the program draws twos' random
    /// numbers from an xorshift64 generator in that state
    /// ([`xorshift_next`]) instead of `bpf_get_prandom_u32`; 0 restores
    /// the real source.
    pub fn set_test_rand(&self, seed: u64) -> Result<(), Error> {
        self.maps
            .rand
            .update(bytes(&0u32), bytes(&seed), MapFlags::ANY)
            .map_err(bpf_err("XVS_RAND update"))
    }

    /// How long the program may reuse a next hop (egress interface and
    /// MACs) that `bpf_fib_lookup` found, before it asks the fib again:
    /// the bound within which a changed route or neighbour MAC is
    /// followed ([`NEXTHOP_TTL_DEFAULT`] after [`Dataplane::open`]). Zero
    /// turns the cache off: every packet takes the fib lookup. Also drops
    /// every cached next hop.
    pub fn set_nexthop_ttl(&self, ttl: Duration) -> Result<(), Error> {
        let gen = self.nh_gen()?.wrapping_add(1);
        write_nh_cfg(&self.maps.nh_cfg, ttl, gen)
    }

    /// The next-hop cache's TTL ([`Dataplane::set_nexthop_ttl`]).
    pub fn nexthop_ttl(&self) -> Result<Duration, Error> {
        Ok(Duration::from_nanos(u64::from_ne_bytes(
            self.nh_cfg_bytes()?[..8].try_into().expect("8 bytes"),
        )))
    }

    /// Drops every cached next hop at once (the next packet to each
    /// destination takes the fib lookup): call it when routes or
    /// neighbours are known to have changed, to follow them before the
    /// TTL runs out.
    pub fn flush_nexthops(&self) -> Result<(), Error> {
        let gen = self.nh_gen()?.wrapping_add(1);
        write_nh_cfg(&self.maps.nh_cfg, self.nexthop_ttl()?, gen)
    }

    fn nh_cfg_bytes(&self) -> Result<Vec<u8>, Error> {
        self.maps
            .nh_cfg
            .lookup(bytes(&0u32), MapFlags::ANY)
            .map_err(bpf_err("XVS_NH_CFG lookup"))?
            .filter(|v| v.len() == 16)
            .ok_or_else(|| Error::Abi("XVS_NH_CFG slot 0 missing".into()))
    }

    fn nh_gen(&self) -> Result<u32, Error> {
        Ok(u32::from_ne_bytes(
            self.nh_cfg_bytes()?[8..12].try_into().expect("4 bytes"),
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

    /// Every entry of a hash map, read in batches (a consistent-enough
    /// view of a table the program keeps changing).
    fn read_all<K: Pod, V: Pod>(&self, map: &MapHandle) -> Result<Vec<(K, V)>, Error> {
        let mut out = Vec::new();
        batch_read(map, size_of::<K>(), size_of::<V>(), |k, v| {
            out.push((from_bytes(k), from_bytes(v)))
        })?;
        Ok(out)
    }

    /// Every slot of a per-CPU stats array, summed over CPUs, indexed by
    /// id: one `BPF_MAP_LOOKUP_BATCH` per 4096 slots instead of a syscall
    /// per slot (110 000 dests cost xvsd 6 % of a CPU when idle, read one
    /// by one every 2 s for the rate estimators).
    fn percpu_sum_all(map: &MapHandle, slots: u32) -> Result<Vec<Stats>, Error> {
        let ncpu = libbpf_rs::num_possible_cpus().map_err(bpf_err("possible CPUs"))?;
        // The kernel hands out one 8-byte-aligned value per possible CPU.
        let stride = size_of::<xvs_stats>().div_ceil(8) * 8;
        let mut out = vec![Stats::default(); slots as usize];
        batch_read(map, size_of::<u32>(), stride * ncpu, |k, v| {
            let id = u32::from_ne_bytes(k.try_into().expect("4-byte key")) as usize;
            let Some(s) = out.get_mut(id) else { return };
            for cpu in v.chunks_exact(stride) {
                let x: xvs_stats = from_bytes(cpu);
                s.conns += x.conns;
                s.inpkts += x.inpkts;
                s.outpkts += x.outpkts;
                s.inbytes += x.inbytes;
                s.outbytes += x.outbytes;
            }
        })?;
        Ok(out)
    }

    /// Every `CONN_MAP` entry.
    fn raw_conns(&self) -> Result<Vec<RawConn>, Error> {
        self.read_all(&self.maps.conn)
    }

    /// Live connections (forward entries only).
    pub fn conns(&self) -> Result<Vec<Conn>, Error> {
        let reply = xvs_conn_flags::XVS_CONN_F_REPLY.0 as u8;
        let persistent = xvs_conn_flags::XVS_CONN_F_PERSIST.0 as u8;
        Ok(self
            .raw_conns()?
            .into_iter()
            .filter(|(_, c)| c.flags & reply == 0)
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
                    persistent: c.flags & persistent != 0,
                })
            })
            .collect())
    }

    /// `CONN_MAP` entries (two per NAT connection) as the last expiry
    /// scan counted them (0 before the first): no table read.
    pub fn conn_entries(&self) -> u64 {
        self.scan_clock.entries.load(Ordering::Relaxed)
    }

    /// Number of connections (forward entries) in `CONN_MAP`.
    pub fn conn_count(&self) -> Result<u64, Error> {
        Ok(self
            .raw_conns()?
            .iter()
            .filter(|(_, c)| c.flags & xvs_conn_flags::XVS_CONN_F_REPLY.0 as u8 == 0)
            .count() as u64)
    }

    /// Service id → (virtual port, persistence netmask), from `SVC_MAP`.
    fn svc_index(&self) -> Result<HashMap<u32, (u16, Ipv4Addr)>, Error> {
        Ok(self
            .read_all::<xvs_svc_key, xvs_svc>(&self.maps.svc)?
            .into_iter()
            .map(|(k, s)| (s.id, (port_of(k.port), ip_of(s.netmask))))
            .collect())
    }

    /// The template key of a persistent connection's forward key
    /// (`persist::persist_key`), given its service's port and netmask.
    fn tmpl_key_of(k: &xvs_conn_key, svc: Option<&(u16, Ipv4Addr)>) -> Option<xvs_tmpl_key> {
        let &(svc_port, netmask) = svc?;
        let flow = sched::FlowKey {
            proto: k.proto,
            saddr: ip_of(k.saddr),
            sport: port_of(k.sport),
            daddr: ip_of(k.daddr),
            dport: port_of(k.dport),
        };
        let pk = persist::persist_key(svc_port, netmask, &flow);
        Some(xvs_tmpl_key {
            caddr: be32(pk.caddr),
            vaddr: be32(pk.vaddr),
            vport: be16(pk.vport),
            proto: pk.proto,
            pad: 0,
        })
    }

    /// Template key → number of live connections it controls.
    fn tmpl_users(
        conns: &[RawConn],
        svcs: &HashMap<u32, (u16, Ipv4Addr)>,
    ) -> HashMap<[u8; 12], u32> {
        let flag = xvs_conn_flags::XVS_CONN_F_PERSIST.0 as u8;
        let reply = xvs_conn_flags::XVS_CONN_F_REPLY.0 as u8;
        let mut out = HashMap::new();
        for (k, c) in conns {
            if c.flags & reply != 0 || c.flags & flag == 0 {
                continue;
            }
            if let Some(tk) = Self::tmpl_key_of(k, svcs.get(&c.svc_id)) {
                let mut b = [0u8; 12];
                b.copy_from_slice(bytes(&tk));
                *out.entry(b).or_insert(0) += 1;
            }
        }
        out
    }

    /// Deletes both entries of every connection idle longer than its
    /// state's timeout, adjusting `DEST_CONNS` (and OVERLOAD, as
    /// `ip_vs_unbind_dest`) by the state the entry had when it was
    /// deleted. Also removes orphaned reply entries, one-packet reply
    /// entries idle longer than the udp timeout, and persistence templates
    /// that control no connection and were last used longer than their
    /// timeout ago. Returns the number of connections expired.
    ///
    /// The table is scanned in the kernel (`xvs_expiry_scan`), which
    /// reports only the entries to act on; each is re-checked here before
    /// it is deleted.
    pub fn expire_conns(&self, timeouts: &Timeouts) -> Result<u64, Error> {
        let mut cfg = expiry_cfg(timeouts);
        let now = cfg.now_ns;
        let Some(orphans) = self.scan_clock.start(now) else {
            return Ok(0);
        };
        if !orphans {
            cfg.orphan_grace_ns = u64::MAX;
        }
        let (recs, visited) = self.expiry_scan(&cfg, self.expiry.is_some())?;
        self.scan_clock.done(now, visited);
        let mut thresholds: HashMap<u32, (u32, u32)> = HashMap::new();
        let mut n = 0;
        // Live connections under a persistence template: (key, service).
        let mut persistent: Vec<(xvs_conn_key, u32)> = Vec::new();
        let idle_past = |c: &xvs_conn, limit: u64| now.saturating_sub(c.last_seen_ns) > limit;
        let state_limit = |c: &xvs_conn| cfg.timeout_ns[state_index(c.state)];
        for r in &recs {
            let k = &r.key;
            let live = |k: &xvs_conn_key| -> Result<Option<xvs_conn>, Error> {
                Ok(self
                    .maps
                    .conn
                    .lookup(bytes(k), MapFlags::ANY)
                    .map_err(bpf_err("CONN_MAP lookup"))?
                    .map(|v| from_bytes::<xvs_conn>(&v)))
            };
            match xvs_expiry_kind(r.kind as u32) {
                xvs_expiry_kind::XVS_EXP_PERSIST => persistent.push((*k, r.svc_id)),
                // Re-checked: a datagram may have refreshed it.
                xvs_expiry_kind::XVS_EXP_OPS
                    if live(k)?.is_some_and(|c| idle_past(&c, cfg.ops_timeout_ns)) =>
                {
                    let _ = self.maps.conn.delete(bytes(k));
                }
                xvs_expiry_kind::XVS_EXP_ORPHAN => {
                    // Orphan: its forward entry is gone or belongs to another
                    // connection (half-finished delete).
                    let Some(c) = live(k)? else { continue };
                    let mine = live(&c.peer)?.is_some_and(|f| bytes(&f.peer) == bytes(k));
                    if !mine && idle_past(&c, cfg.orphan_grace_ns) {
                        let _ = self.maps.conn.delete(bytes(k));
                    }
                }
                xvs_expiry_kind::XVS_EXP_IDLE => {
                    // The scan ran a moment ago: re-check the live entry,
                    // then delete it and account for the state it had.
                    match live(k)? {
                        Some(c) if idle_past(&c, state_limit(&c)) => {}
                        Some(c) => {
                            if c.flags & PERSIST != 0 {
                                persistent.push((*k, c.svc_id));
                            }
                            continue;
                        }
                        None => continue,
                    }
                    let Some(v) = self
                        .maps
                        .conn
                        .lookup_and_delete(bytes(k))
                        .map_err(bpf_err("CONN_MAP lookup_and_delete"))?
                    else {
                        continue;
                    };
                    let cur: xvs_conn = from_bytes(&v);
                    // DR/TUN connections have no reply entry; their `peer`
                    // key may be a NAT connection's reply entry, which must
                    // stay.
                    if cur.fwd == xvs_fwd::XVS_FWD_MASQ.0 as u8 {
                        let _ = self.maps.conn.delete(bytes(&cur.peer));
                    }
                    let th = *thresholds
                        .entry(cur.dest_id)
                        .or_insert_with(|| self.thresholds(cur.dest_id));
                    self.dest_conns.unbind(cur.dest_id, cur.state, th);
                    n += 1;
                }
                _ => {}
            }
        }
        self.expire_templates(&persistent, now)?;
        Ok(n)
    }

    /// The entries [`Dataplane::expire_conns`] acts on, and how many
    /// entries were looked at: from the kernel's scan (`in_kernel`), or by
    /// reading the whole table (kernels without BTF). Both give the same
    /// records; tests compare them.
    #[doc(hidden)]
    pub fn expiry_scan(
        &self,
        cfg: &xvs_expiry_cfg,
        in_kernel: bool,
    ) -> Result<(Vec<xvs_expiry_rec>, u64), Error> {
        if in_kernel {
            let Some((link, cfg_map)) = &self.expiry else {
                return Err(Error::Abi("the expiry scan is not loaded".into()));
            };
            cfg_map
                .update(bytes(&0u32), bytes(cfg), MapFlags::ANY)
                .map_err(bpf_err("XVS_EXPIRY_CFG update"))?;
            let mut it = libbpf_rs::Iter::new(link).map_err(bpf_err("expiry scan"))?;
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut it, &mut out).map_err(|source| Error::Io {
                context: "reading the expiry scan".into(),
                source,
            })?;
            let visited = cfg_map
                .lookup(bytes(&0u32), MapFlags::ANY)
                .map_err(bpf_err("XVS_EXPIRY_CFG lookup"))?
                .map_or(0, |v| from_bytes::<xvs_expiry_cfg>(&v).visited);
            let rs = size_of::<xvs_expiry_rec>();
            return Ok((out.chunks_exact(rs).map(from_bytes).collect(), visited));
        }
        let now = cfg.now_ns;
        let conns = self.raw_conns()?;
        // Forward key -> its reply key: a reply entry whose forward entry
        // points back at it is no orphan.
        let fwd_peer: HashMap<[u8; 16], [u8; 16]> = conns
            .iter()
            .filter(|(_, c)| c.flags & REPLY == 0)
            .map(|(k, c)| (key16(k), key16(&c.peer)))
            .collect();
        let mut out = Vec::new();
        for (k, c) in &conns {
            let idle = now.saturating_sub(c.last_seen_ns);
            let kind = if c.flags & REPLY != 0 {
                if c.flags & OPS != 0 {
                    if idle <= cfg.ops_timeout_ns {
                        continue;
                    }
                    xvs_expiry_kind::XVS_EXP_OPS
                } else {
                    if idle <= cfg.orphan_grace_ns
                        || fwd_peer.get(&key16(&c.peer)) == Some(&key16(k))
                    {
                        continue;
                    }
                    xvs_expiry_kind::XVS_EXP_ORPHAN
                }
            } else if idle > cfg.timeout_ns[state_index(c.state)] {
                xvs_expiry_kind::XVS_EXP_IDLE
            } else if c.flags & PERSIST != 0 {
                xvs_expiry_kind::XVS_EXP_PERSIST
            } else {
                continue;
            };
            out.push(xvs_expiry_rec {
                key: *k,
                svc_id: c.svc_id,
                kind: kind.0 as u8,
                flags: c.flags,
                ..Default::default()
            });
        }
        Ok((out, conns.len() as u64))
    }

    /// Deletes the persistence templates that no live connection uses
    /// (`persistent`: the live connections under one) and that were last
    /// used longer than their timeout ago.
    fn expire_templates(&self, persistent: &[(xvs_conn_key, u32)], now: u64) -> Result<(), Error> {
        let svcs = if persistent.is_empty() {
            HashMap::new()
        } else {
            self.svc_index()?
        };
        let users: HashSet<[u8; 12]> = persistent
            .iter()
            .filter_map(|(k, svc)| Self::tmpl_key_of(k, svcs.get(svc)))
            .map(|tk| {
                let mut b = [0u8; 12];
                b.copy_from_slice(bytes(&tk));
                b
            })
            .collect();
        for (tk, t) in self.read_all::<xvs_tmpl_key, xvs_tmpl>(&self.maps.persist)? {
            if users.contains(bytes(&tk)) {
                continue;
            }
            let limit = t.timeout as u64 * 1_000_000_000;
            if now.saturating_sub(t.last_seen_ns) <= limit {
                continue;
            }
            match self.maps.persist.lookup(bytes(&tk), MapFlags::ANY) {
                Ok(Some(v))
                    if now.saturating_sub(from_bytes::<xvs_tmpl>(&v).last_seen_ns) > limit => {}
                _ => continue,
            }
            if let Ok(Some(v)) = self.maps.persist.lookup_and_delete(bytes(&tk)) {
                let cur: xvs_tmpl = from_bytes(&v);
                if let Some(rt) = self.dest_conns.slot(cur.dest_id) {
                    rt.persist.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
        Ok(())
    }

    /// Persistence templates, with the number of live connections each
    /// controls.
    pub fn templates(&self) -> Result<Vec<Template>, Error> {
        let users = Self::tmpl_users(&self.raw_conns()?, &self.svc_index()?);
        Ok(self
            .read_all::<xvs_tmpl_key, xvs_tmpl>(&self.maps.persist)?
            .into_iter()
            .filter_map(|(k, t)| {
                Some(Template {
                    proto: proto_of(k.proto)?,
                    caddr: ip_of(k.caddr),
                    vaddr: ip_of(k.vaddr),
                    vport: port_of(k.vport),
                    daddr: ip_of(t.daddr),
                    dport: port_of(t.dport),
                    svc_id: t.svc_id,
                    dest_id: t.dest_id,
                    last_seen_ns: t.last_seen_ns,
                    timeout_secs: t.timeout,
                    conns: users.get(bytes(&k)).copied().unwrap_or(0),
                    fwd: self
                        .dest_slot(t.dest_id)
                        .ok()
                        .flatten()
                        .map_or(FwdMethod::Masq, |d| fwd_of(d.fwd)),
                })
            })
            .collect())
    }

    /// The lblc/lblcr caches.
    pub fn locality(&self) -> Result<Vec<LocalityEntry>, Error> {
        Ok(self
            .read_all::<xvs_lblc_key, xvs_lblc>(&self.maps.lblc)?
            .into_iter()
            .map(|(k, e)| LocalityEntry {
                svc_id: k.svc_id,
                daddr: ip_of(k.daddr),
                dests: e.dests[..(e.n as usize).min(LBLCR_SET_MAX)].to_vec(),
                lastuse_ns: e.lastuse_ns,
                lastmod_ns: e.lastmod_ns,
            })
            .collect())
    }

    /// One run of the lblc/lblcr garbage collector
    /// (`ip_vs_lblc(r)_check_expire`, every 60 s): with `full`, every entry
    /// idle for `expiration_secs` (the sysctl `lblc_expiration`, 24 h)
    /// goes; otherwise only services with more than
    /// `sched::locality::MAX_ENTRIES` entries lose entries idle for
    /// `ENTRY_TIMEOUT` (6 min), up to `min((n - MAX) * 4 / 3, MAX / 2)`.
    /// Returns the number of entries removed.
    pub fn expire_locality(&self, full: bool, expiration_secs: u64) -> Result<u64, Error> {
        use sched::locality::{ENTRY_TIMEOUT, MAX_ENTRIES};
        let now = monotonic_ns();
        let entries = self.read_all::<xvs_lblc_key, xvs_lblc>(&self.maps.lblc)?;
        let mut removed = 0;
        if full {
            for (k, e) in &entries {
                if now >= e.lastuse_ns.saturating_add(expiration_secs * 1_000_000_000)
                    && self.maps.lblc.delete(bytes(k)).is_ok()
                {
                    removed += 1;
                }
            }
            return Ok(removed);
        }
        let mut per_svc: HashMap<u32, Vec<(xvs_lblc_key, u64)>> = HashMap::new();
        for (k, e) in entries {
            per_svc.entry(k.svc_id).or_default().push((k, e.lastuse_ns));
        }
        for list in per_svc.values() {
            if list.len() <= MAX_ENTRIES {
                continue;
            }
            let mut goal = ((list.len() - MAX_ENTRIES) * 4 / 3).min(MAX_ENTRIES / 2);
            for (k, lastuse) in list {
                if goal == 0 {
                    break;
                }
                if now >= lastuse.saturating_add(ENTRY_TIMEOUT * 1_000_000_000)
                    && self.maps.lblc.delete(bytes(k)).is_ok()
                {
                    removed += 1;
                    goal -= 1;
                }
            }
        }
        Ok(removed)
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

    /// Runs the program once on `frame` with `BPF_PROG_TEST_RUN` (root).
    /// `ingress_ifindex` selects the receiving device (in the calling
    /// thread's network namespace; default loopback). Returns the verdict
    /// as an XDP action code, in either mode (see
    /// [`Dataplane::test_run_timed`]), and the frame as the program left
    /// it.
    pub fn test_run(
        &self,
        frame: &[u8],
        ingress_ifindex: Option<u32>,
    ) -> Result<(u32, Vec<u8>), Error> {
        self.test_run_timed(frame, ingress_ifindex)
            .map(|(v, out, _)| (v, out))
    }

    /// [`Dataplane::test_run`], also returning the kernel-measured
    /// duration of the program run (`repeat` 1: one run on this frame).
    /// A tc verdict is reported as the XDP action it corresponds to:
    /// `TC_ACT_OK` as `XDP_PASS`, `TC_ACT_SHOT` as `XDP_DROP`, and
    /// `TC_ACT_REDIRECT` as `XDP_TX` when the program sent the frame back
    /// out of the ingress device (it notes the device in `cb[0]`), else
    /// `XDP_REDIRECT`; so fixtures hold for both programs.
    pub fn test_run_timed(
        &self,
        frame: &[u8],
        ingress_ifindex: Option<u32>,
    ) -> Result<(u32, Vec<u8>, Duration), Error> {
        let name = self.mode.prog_name();
        let prog = self
            .obj
            .progs_mut()
            .find(|p| p.name() == name)
            .ok_or_else(|| Error::Abi(format!("program {name} missing")))?;
        let mut out = vec![0u8; frame.len() + 256];
        let (ret, n, duration) = match self.mode {
            AttachMode::Xdp => {
                // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
                // rx_queue_index, egress_ifindex.
                let mut ctx = [0u32; 6];
                ctx[1] = frame.len() as u32;
                ctx[3] = ingress_ifindex.unwrap_or(0);
                let ctx_bytes = u32s_as_bytes(&mut ctx);
                let input = libbpf_rs::ProgramInput {
                    data_in: Some(frame),
                    data_out: Some(&mut out),
                    context_in: ingress_ifindex.map(|_| ctx_bytes),
                    ..Default::default()
                };
                let r = prog.test_run(input).map_err(bpf_err("BPF_PROG_TEST_RUN"))?;
                (r.return_value, r.data.map_or(0, |d| d.len()), r.duration)
            }
            AttachMode::Tc => {
                // struct __sk_buff up to the end of cb[5]: ingress_ifindex
                // (word 9), ifindex (10), cb (12..17). Loopback (1) is
                // what the kernel uses without a device, as for XDP.
                let iif = ingress_ifindex.unwrap_or(1);
                let mut ctx = [0u32; 17];
                ctx[9] = iif;
                ctx[10] = iif;
                // The kernel copies all of its __sk_buff back (ENOSPC if smaller).
                let mut ctx_out = [0u32; 64];
                let input = libbpf_rs::ProgramInput {
                    data_in: Some(frame),
                    data_out: Some(&mut out),
                    context_in: Some(u32s_as_bytes(&mut ctx)),
                    context_out: Some(u32s_as_bytes(&mut ctx_out)),
                    ..Default::default()
                };
                let (rv, n, duration) = {
                    let r = prog.test_run(input).map_err(bpf_err("BPF_PROG_TEST_RUN"))?;
                    (r.return_value, r.data.map_or(0, |d| d.len()), r.duration)
                };
                let v = match rv {
                    TC_ACT_OK => XDP_PASS,
                    TC_ACT_SHOT => XDP_DROP,
                    TC_ACT_REDIRECT if ctx_out[12] == iif => XDP_TX,
                    TC_ACT_REDIRECT => XDP_REDIRECT,
                    other => other,
                };
                (v, n, duration)
            }
        };
        out.truncate(n);
        Ok((ret, out, duration))
    }
}

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;
const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;

fn u32s_as_bytes(w: &mut [u32]) -> &mut [u8] {
    // SAFETY: u32 has no padding and a stricter alignment than u8.
    unsafe { std::slice::from_raw_parts_mut(w.as_mut_ptr() as *mut u8, w.len() * 4) }
}

/// The next-hop cache TTL [`Dataplane::open`] sets: a changed route or
/// neighbour MAC is followed within 100 ms (see
/// [`Dataplane::set_nexthop_ttl`]).
pub const NEXTHOP_TTL_DEFAULT: Duration = Duration::from_millis(100);

/// `struct xvs_nh_cfg` { ttl_ns, gen, pad } into `XVS_NH_CFG[0]`.
fn write_nh_cfg(map: &MapHandle, ttl: Duration, gen: u32) -> Result<(), Error> {
    let mut v = [0u8; 16];
    let ns = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
    v[..8].copy_from_slice(&ns.to_ne_bytes());
    v[8..12].copy_from_slice(&gen.to_ne_bytes());
    map.update(bytes(&0u32), &v, MapFlags::ANY)
        .map_err(bpf_err("XVS_NH_CFG update"))
}

/// The test random source of the program ([`Dataplane::set_test_rand`]):
/// advances `state` (xorshift64 13/7/17) and returns its high 32 bits.
pub fn xorshift_next(state: &mut u64) -> u32 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    (x >> 32) as u32
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.detach_all();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernel_releases_compare_by_major_and_minor() {
        assert!(release_at_least("6.18.44-fc-v470", 5, 9));
        assert!(release_at_least("5.9.0", 5, 9));
        assert!(release_at_least("5.10.0-28-amd64", 5, 9));
        assert!(!release_at_least("5.8.18", 5, 9));
        assert!(!release_at_least("4.19.0-26-amd64", 5, 9));
        assert!(!release_at_least("garbage", 5, 9));
    }

    #[test]
    fn a_small_table_is_scanned_at_every_call_a_big_one_spread_out() {
        let s = 1_000_000_000;
        let c = ScanClock::default();
        assert_eq!(c.start(10 * s), Some(true));
        c.done(10 * s, 1000);
        assert_eq!(
            c.start(10 * s + 1),
            Some(true),
            "small: every call, orphans too"
        );
        c.done(10 * s, 1_000_000);
        // 1 M entries: every 4 s (due half a second early).
        assert_eq!(c.start(11 * s), None);
        assert_eq!(c.start(13 * s), None);
        assert!(c.start(13 * s + s / 2).is_some());
        c.done(14 * s, 100_000_000);
        assert_eq!(c.start(21 * s), None, "at most every 8 s");
        assert!(c.start(22 * s).is_some());
        // Orphans in one big scan of 16.
        let looks = (0..32).filter(|_| c.start(100 * s) == Some(true)).count();
        assert_eq!(looks, 2);
    }

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
