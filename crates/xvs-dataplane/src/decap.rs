//! The real-server side of tunnelling (`-i`): the `xvs_decap` program
//! (`bpf/decap.bpf.c`) strips IPIP and GUE outer headers from packets to
//! configured VIPs, so a real server needs neither the `ipip` nor the `fou`
//! module. It is attached through netlink (not a `bpf_link`), so it stays
//! attached after the process that attached it exits: as XDP on a device
//! with a driver, as a tc clsact ingress filter on a virtual one (veth,
//! ...), where native XDP would convert and copy every skb (the same
//! reason as the director's `--attach auto`, docs/design.md).

use crate::error::Error;
use crate::repr::be16;
use crate::tc;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, TcHook, TcHookBuilder, Xdp, XdpFlags, TC_EGRESS, TC_INGRESS};
use log::{info, warn};
use std::ffi::CString;
use std::mem::{size_of, MaybeUninit};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

bpf_skeleton!(skel, "/decap.skel.rs");

bpf_skeleton!(
    /// The same program built for tc (`-DXVS_TC`).
    skel_tc,
    "/decap_tc.skel.rs"
);

use skel::types::{xvs_decap_cfg, xvs_decap_counter};

/// tc filter handle and priority of `xvs_decap` on clsact ingress (fixed:
/// a later attach replaces it, detach finds it).
const TC_HANDLE: u32 = 0x7864;
const TC_PRIORITY: u32 = 1;

/// Name of the program (as `bpftool prog` and `ip link` show it).
pub const PROG_NAME: &str = "xvs_decap";
/// Most VIPs one program matches.
pub const MAX_VIPS: usize = 16;
/// Most GUE ports one program matches.
pub const MAX_GUE_PORTS: usize = 4;

/// Names of the `DECAP_CNT` counters, in `enum xvs_decap_counter` order.
pub const COUNTER_NAMES: [&str; 5] = ["rx", "decap_ipip", "decap_gue", "pass", "error"];
// Each name at its enumerator's value.
const _: () = assert!(
    xvs_decap_counter::XVS_DECAP_RX.0 == 0
        && xvs_decap_counter::XVS_DECAP_IPIP.0 == 1
        && xvs_decap_counter::XVS_DECAP_GUE.0 == 2
        && xvs_decap_counter::XVS_DECAP_PASS.0 == 3
        && xvs_decap_counter::XVS_DECAP_ERR.0 == 4
);

const _: () = assert!(COUNTER_NAMES.len() == xvs_decap_counter::XVS_DECAP_MAX.0 as usize);
const _: () = assert!(size_of::<xvs_decap_cfg>() == 16 * MAX_VIPS + 2 * MAX_GUE_PORTS + 8);
// The arrays of `struct xvs_decap_cfg` are as long as the limits say
// (`XVS_DECAP_MAX_VIPS`, `XVS_DECAP_MAX_PORTS`; also asserted against the
// header's text in `limits_tests.rs`).
const _: () = assert!(
    std::mem::offset_of!(xvs_decap_cfg, gue_ports) == 16 * MAX_VIPS
        && std::mem::offset_of!(xvs_decap_cfg, nvips) == 16 * MAX_VIPS + 2 * MAX_GUE_PORTS
);

/// What `xvs_decap` decapsulates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecapConfig {
    /// Inner destinations accepted (at most [`MAX_VIPS`]).
    pub vips: Vec<Ipv4Addr>,
    /// UDP ports carrying GUE (at most [`MAX_GUE_PORTS`]; empty: IPIP only).
    pub gue_ports: Vec<u16>,
}

fn check_cfg(cfg: &DecapConfig) -> Result<(), Error> {
    if cfg.vips.is_empty() || cfg.vips.len() > MAX_VIPS {
        return Err(Error::Invalid(format!(
            "decap needs 1 to {MAX_VIPS} VIPs, got {}",
            cfg.vips.len()
        )));
    }
    if cfg.gue_ports.len() > MAX_GUE_PORTS || cfg.gue_ports.contains(&0) {
        return Err(Error::Invalid(format!(
            "decap takes at most {MAX_GUE_PORTS} non-zero GUE ports, got {:?}",
            cfg.gue_ports
        )));
    }
    Ok(())
}

fn bpf_err(context: &str) -> impl FnOnce(libbpf_rs::Error) -> Error + '_ {
    move |source| Error::Bpf {
        context: context.to_string(),
        source,
    }
}

/// `fn $name(cfg, f)`: opens the `$m` skeleton, writes `cfg` into its
/// `.rodata` (`struct xvs_decap_cfg`, the same in both builds), loads it
/// and hands it to `f`.
macro_rules! decap_loader {
    ($name:ident, $m:ident, $skel:ident, $builder:ident, $what:literal) => {
        fn $name<T>(
            cfg: &DecapConfig,
            f: impl FnOnce(&$m::$skel<'_>) -> Result<T, Error>,
        ) -> Result<T, Error> {
            check_cfg(cfg)?;
            let mut storage = MaybeUninit::uninit();
            let mut open = $m::$builder::default()
                .open(&mut storage)
                .map_err(bpf_err(concat!("opening the decap BPF object", $what)))?;
            let ro = open
                .maps
                .rodata_data
                .as_deref_mut()
                .ok_or_else(|| Error::Abi("decap .rodata not mapped".into()))?;
            let c = &mut ro.decap_cfg;
            for (i, v) in cfg.vips.iter().enumerate() {
                c.vips[i].b = crate::repr::addr16((*v).into());
            }
            for (i, p) in cfg.gue_ports.iter().enumerate() {
                c.gue_ports[i] = be16(*p);
            }
            c.nvips = cfg.vips.len() as u32;
            c.nports = cfg.gue_ports.len() as u32;
            let skel = open
                .load()
                .map_err(bpf_err(concat!("loading the decap BPF program", $what)))?;
            f(&skel)
        }
    };
}

decap_loader!(with_loaded, skel, DecapSkel, DecapSkelBuilder, "");
decap_loader!(
    with_loaded_tc,
    skel_tc,
    DecapTcSkel,
    DecapTcSkelBuilder,
    " (tc)"
);

/// Whether `ifname` gets the tc build: a virtual device (no
/// `/sys/class/net/IF/device`), where XDP would run on converted skbs.
fn wants_tc(ifname: &str) -> bool {
    !std::path::Path::new("/sys/class/net")
        .join(ifname)
        .join("device")
        .exists()
}

fn tc_hook(fd: std::os::fd::BorrowedFd<'_>, ifindex: i32) -> TcHook {
    TcHookBuilder::new(fd)
        .ifindex(ifindex)
        .replace(true)
        .handle(TC_HANDLE)
        .priority(TC_PRIORITY)
        .hook(TC_INGRESS)
}

/// Id of the program in xvs_decap's tc slot on `ifindex` (0: none).
fn tc_prog_id(ifindex: i32) -> u32 {
    tc::ingress_prog_at(ifindex, TC_HANDLE, TC_PRIORITY as u16)
}

/// Whether `ifindex` has tc filters other than xvs_decap's. When that
/// cannot be told, it has (the qdisc stays).
fn tc_others(ifindex: i32) -> bool {
    [tc::TC_PARENT_INGRESS, tc::TC_PARENT_EGRESS]
        .iter()
        .any(|&parent| match tc::filters(ifindex, parent) {
            Ok(fs) => fs
                .iter()
                .any(|f| !(f.kind == "bpf" && f.prog.is_some_and(is_decap))),
            Err(_) => true,
        })
}

fn ifindex(ifname: &str) -> Result<i32, Error> {
    let c = CString::new(ifname).map_err(|_| Error::NoSuchInterface(ifname.into()))?;
    // SAFETY: valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) } as i32;
    if i == 0 {
        return Err(Error::NoSuchInterface(ifname.into()));
    }
    Ok(i)
}

/// XDP program ids on an interface: (native or hw, generic).
pub(crate) fn prog_ids(ifindex: i32) -> Result<[(u32, XdpFlags); 2], Error> {
    // SAFETY: zeroed opts with sz set is the documented init.
    let mut opts: libbpf_rs::libbpf_sys::bpf_xdp_query_opts = unsafe { std::mem::zeroed() };
    opts.sz = size_of::<libbpf_rs::libbpf_sys::bpf_xdp_query_opts>() as _;
    // SAFETY: valid opts.
    let rc = unsafe { libbpf_rs::libbpf_sys::bpf_xdp_query(ifindex, 0, &mut opts) };
    if rc < 0 {
        return Err(Error::Io {
            context: format!("querying XDP on ifindex {ifindex}"),
            source: std::io::Error::from_raw_os_error(-rc),
        });
    }
    Ok([
        (opts.drv_prog_id, XdpFlags::DRV_MODE),
        (opts.skb_prog_id, XdpFlags::SKB_MODE),
    ])
}

pub(crate) fn prog_fd(id: u32) -> Option<OwnedFd> {
    // SAFETY: plain syscall wrapper.
    let fd = unsafe { libbpf_rs::libbpf_sys::bpf_prog_get_fd_by_id(id) };
    // SAFETY: a fresh fd we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

fn prog_info(fd: &OwnedFd) -> Option<libbpf_rs::libbpf_sys::bpf_prog_info> {
    // SAFETY: zeroed info is valid input; the kernel fills what fits.
    let mut info: libbpf_rs::libbpf_sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libbpf_rs::libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: info and len are valid for the call.
    let rc = unsafe {
        libbpf_rs::libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len)
    };
    (rc == 0).then_some(info)
}

fn is_decap(id: u32) -> bool {
    is_named(id, PROG_NAME)
}

/// Whether program `id` exists and is called `name`.
pub(crate) fn is_named(id: u32, name: &str) -> bool {
    if id == 0 {
        return false;
    }
    let Some(fd) = prog_fd(id) else {
        return false;
    };
    prog_info(&fd).is_some_and(|i| {
        let n: Vec<u8> = i
            .name
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        n == name.as_bytes()
    })
}

/// Loads `xvs_decap` for `cfg` and attaches it to `ifname`: on a device
/// with a driver as XDP (native, generic as a fallback), replacing a
/// previous `xvs_decap` (or any other XDP program, with a warning) there;
/// on a virtual device as a tc clsact ingress filter (the qdisc is created
/// when missing). An `xvs_decap` attached the other way is removed. It
/// stays attached after this process exits; [`detach`] removes it.
pub fn attach(ifname: &str, cfg: &DecapConfig) -> Result<(), Error> {
    attach_as(ifname, cfg, wants_tc(ifname))
}

/// [`attach`] with the choice made by the caller: `tc` or XDP.
pub fn attach_as(ifname: &str, cfg: &DecapConfig, tc: bool) -> Result<(), Error> {
    let ifindex = ifindex(ifname)?;
    let before = prog_ids(ifindex)?;
    if tc {
        return with_loaded_tc(cfg, |skel| {
            let prog = &skel.progs.xvs_decap;
            let mut hook = tc_hook(prog.as_fd(), ifindex);
            if !tc::has_clsact(ifindex)? {
                hook.create()
                    .map_err(bpf_err("creating the clsact qdisc"))?;
            }
            hook.attach().map_err(bpf_err("attaching xvs_decap (tc)"))?;
            for (id, m) in before {
                if is_decap(id) {
                    if let Some(fd) = prog_fd(id) {
                        let _ = Xdp::new(fd.as_fd()).detach(ifindex, m);
                    }
                }
            }
            info!("{PROG_NAME} attached to {ifname} (tc clsact ingress)");
            Ok(())
        });
    }
    for (id, _) in &before {
        if *id != 0 && !is_decap(*id) {
            warn!("{ifname}: replacing XDP program id {id} with {PROG_NAME}");
        }
    }
    with_loaded(cfg, |skel| {
        let prog = &skel.progs.xvs_decap;
        let xdp = Xdp::new(prog.as_fd());
        let mode = match xdp.attach(ifindex, XdpFlags::DRV_MODE) {
            Ok(()) => XdpFlags::DRV_MODE,
            Err(e) => {
                warn!("{ifname}: native XDP attach failed ({e}); falling back to generic XDP");
                xdp.attach(ifindex, XdpFlags::SKB_MODE)
                    .map_err(bpf_err("attaching xvs_decap"))?;
                XdpFlags::SKB_MODE
            }
        };
        // A program left in the other mode would see the packets first
        // (native) or again (generic): remove an old xvs_decap there.
        for (id, m) in before {
            if m.bits() != mode.bits() && is_decap(id) {
                let _ = xdp.detach(ifindex, m);
            }
        }
        detach_tc(ifindex)?;
        let name = if mode.bits() == XdpFlags::DRV_MODE.bits() {
            "native"
        } else {
            "generic"
        };
        info!("{PROG_NAME} attached to {ifname} ({name} mode)");
        Ok(())
    })
}

/// Removes xvs_decap's tc filter from `ifindex`, and the clsact qdisc when
/// nothing else uses it (it was made for the filter: teardown restores the
/// interface as it was). Nothing there: a no-op.
fn detach_tc(ifindex: i32) -> Result<(), Error> {
    let id = tc_prog_id(ifindex);
    if !is_decap(id) {
        return Ok(());
    }
    let fd = prog_fd(id).ok_or_else(|| Error::Io {
        context: format!("opening tc program {id}"),
        source: std::io::Error::last_os_error(),
    })?;
    let mut hook = tc_hook(fd.as_fd(), ifindex);
    hook.detach().map_err(bpf_err("detaching xvs_decap (tc)"))?;
    if !tc_others(ifindex) {
        hook.attach_point(TC_INGRESS | TC_EGRESS);
        let _ = hook.destroy();
    }
    Ok(())
}

/// Detaches `xvs_decap` from `ifname` (XDP, both modes, and tc). Other
/// programs and an interface without any are left alone.
pub fn detach(ifname: &str) -> Result<(), Error> {
    let ifindex = ifindex(ifname)?;
    for (id, mode) in prog_ids(ifindex)? {
        if !is_decap(id) {
            continue;
        }
        let fd = prog_fd(id).ok_or_else(|| Error::Io {
            context: format!("opening XDP program {id}"),
            source: std::io::Error::last_os_error(),
        })?;
        Xdp::new(fd.as_fd())
            .detach(ifindex, mode)
            .map_err(bpf_err("detaching xvs_decap"))?;
    }
    detach_tc(ifindex)
}

/// True when a program named `xvs_decap` is attached to `ifname` (XDP or
/// tc).
pub fn attached(ifname: &str) -> Result<bool, Error> {
    let ifindex = ifindex(ifname)?;
    Ok(prog_ids(ifindex)?.iter().any(|(id, _)| is_decap(*id)) || is_decap(tc_prog_id(ifindex)))
}

fn sum_counters(map: &impl MapCore) -> Result<Vec<(&'static str, u64)>, Error> {
    let mut out = Vec::with_capacity(COUNTER_NAMES.len());
    for (i, name) in COUNTER_NAMES.iter().enumerate() {
        let vals = map
            .lookup_percpu(&(i as u32).to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf_err("DECAP_CNT lookup"))?
            .unwrap_or_default();
        let sum = vals
            .iter()
            .map(|v| {
                v.get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u64::from_ne_bytes)
            })
            .sum();
        out.push((*name, sum));
    }
    Ok(out)
}

/// Counters of the `xvs_decap` attached to `ifname`, summed over CPUs
/// (empty when none is attached).
pub fn counters(ifname: &str) -> Result<Vec<(&'static str, u64)>, Error> {
    let ifindex = ifindex(ifname)?;
    let xdp = prog_ids(ifindex)?
        .into_iter()
        .map(|(id, _)| id)
        .find(|id| is_decap(*id));
    let Some(id) = xdp.or_else(|| Some(tc_prog_id(ifindex)).filter(|id| is_decap(*id))) else {
        return Ok(Vec::new());
    };
    let fd = prog_fd(id).ok_or_else(|| Error::Io {
        context: format!("opening XDP program {id}"),
        source: std::io::Error::last_os_error(),
    })?;
    // First call learns how many maps, second fetches their ids.
    let info = prog_info(&fd).ok_or_else(|| Error::Abi("bpf_prog_info".into()))?;
    let mut ids = vec![0u32; info.nr_map_ids as usize];
    // SAFETY: zeroed info with map_ids pointing at `ids`.
    let mut info2: libbpf_rs::libbpf_sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    info2.nr_map_ids = ids.len() as u32;
    info2.map_ids = ids.as_mut_ptr() as u64;
    let mut len = size_of::<libbpf_rs::libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: buffers valid for the call.
    let rc = unsafe {
        libbpf_rs::libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info2, &mut len)
    };
    if rc != 0 {
        return Err(Error::Abi("bpf_prog_info map ids".into()));
    }
    for id in ids {
        let Ok(map) = libbpf_rs::MapHandle::from_map_id(id) else {
            continue;
        };
        if map.name() == "DECAP_CNT" {
            return sum_counters(&map);
        }
    }
    Ok(Vec::new())
}

/// Runs a freshly loaded (not attached) `xvs_decap` for `cfg` once on
/// `frame` with `BPF_PROG_TEST_RUN` (root). Returns the XDP action, the
/// frame as the program left it, and the counters of that run.
#[allow(clippy::type_complexity)]
pub fn test_run(
    cfg: &DecapConfig,
    frame: &[u8],
) -> Result<(u32, Vec<u8>, Vec<(&'static str, u64)>), Error> {
    test_run_as(cfg, frame, false)
}

/// [`test_run`] of the XDP (`tc` false) or the tc build; a tc verdict is
/// reported as the XDP action it stands for (`TC_ACT_OK`: `XDP_PASS`,
/// `TC_ACT_SHOT`: `XDP_DROP`).
#[allow(clippy::type_complexity)]
pub fn test_run_as(
    cfg: &DecapConfig,
    frame: &[u8],
    tc: bool,
) -> Result<(u32, Vec<u8>, Vec<(&'static str, u64)>), Error> {
    let mut result = None;
    let mut frames = std::iter::once(frame.to_vec());
    test_run_each(cfg, tc, &mut frames, &mut |_, run, counters| {
        result = Some(
            run.map(|(verdict, out)| (verdict, out.to_vec()))
                .and_then(|(verdict, out)| Ok((verdict, out, counters()?))),
        );
    })?;
    result.unwrap_or_else(|| Err(Error::Missing("a test run".into())))
}

/// The decap counters so far, read on demand (a per-CPU map read).
pub type DecapCounters<'a> = &'a dyn Fn() -> Result<Vec<(&'static str, u64)>, Error>;

/// One test run: the verdict and the frame as the program left it, or
/// the kernel's refusal to run it.
pub type DecapRun<'a> = Result<(u32, &'a [u8]), Error>;

/// What [`test_run_each`] calls for every frame: the frame, its run, the
/// counters.
pub type DecapEach<'e> = dyn FnMut(&[u8], DecapRun<'_>, DecapCounters<'_>) + 'e;

/// Loads `xvs_decap` for `cfg` once (the XDP build, or tc's with `tc`) and
/// runs it with `BPF_PROG_TEST_RUN` on every frame of `frames`, handing
/// `each` the frame, the run (the verdict as in [`test_run_as`] and the
/// frame as the program left it, or the kernel's refusal to run it), and a
/// reader of the counters. For long runs, such as the fuzzer's: loading is
/// the slow part.
pub fn test_run_each(
    cfg: &DecapConfig,
    tc: bool,
    frames: &mut dyn Iterator<Item = Vec<u8>>,
    each: &mut DecapEach<'_>,
) -> Result<(), Error> {
    if tc {
        with_loaded_tc(cfg, |skel| {
            run_each(
                &skel.progs.xvs_decap,
                &skel.maps.DECAP_CNT,
                true,
                frames,
                each,
            )
        })
    } else {
        with_loaded(cfg, |skel| {
            run_each(
                &skel.progs.xvs_decap,
                &skel.maps.DECAP_CNT,
                false,
                frames,
                each,
            )
        })
    }
}

fn run_each(
    prog: &libbpf_rs::ProgramMut<'_>,
    cnt: &libbpf_rs::Map<'_>,
    tc: bool,
    frames: &mut dyn Iterator<Item = Vec<u8>>,
    each: &mut DecapEach<'_>,
) -> Result<(), Error> {
    let counters = || sum_counters(cnt);
    for frame in frames {
        let mut out = vec![0u8; frame.len() + 256];
        let input = libbpf_rs::ProgramInput {
            data_in: Some(&frame),
            data_out: Some(&mut out),
            ..Default::default()
        };
        let run = prog
            .test_run(input)
            .map(|r| (r.return_value, r.data.map_or(0, |d| d.len())))
            .map_err(bpf_err("BPF_PROG_TEST_RUN"));
        match run {
            Ok((ret, n)) => {
                out.truncate(n);
                let verdict = match (tc, ret) {
                    (true, 0) => 2, // TC_ACT_OK: XDP_PASS
                    (true, 2) => 1, // TC_ACT_SHOT: XDP_DROP
                    (_, other) => other,
                };
                each(&frame, Ok((verdict, &out)), &counters);
            }
            Err(e) => each(&frame, Err(e), &counters),
        }
    }
    Ok(())
}
