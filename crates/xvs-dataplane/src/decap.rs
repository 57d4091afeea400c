//! The real-server side of tunnelling (`-i`): the `xvs_decap` XDP program
//! (`bpf/decap.bpf.c`) strips IPIP and GUE outer headers from packets to
//! configured VIPs, so a real server needs neither the `ipip` nor the `fou`
//! module. It is attached through netlink (not a `bpf_link`), so it stays
//! attached after the process that attached it exits.

use crate::Error;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, Xdp, XdpFlags};
use log::{info, warn};
use std::ffi::CString;
use std::mem::{size_of, MaybeUninit};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

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
    include!(concat!(env!("OUT_DIR"), "/decap.skel.rs"));
}

use skel::types::{xvs_decap_cfg, xvs_decap_counter};

/// Name of the program (as `bpftool prog` and `ip link` show it).
pub const PROG_NAME: &str = "xvs_decap";
/// Most VIPs one program matches.
pub const MAX_VIPS: usize = 16;
/// Most GUE ports one program matches.
pub const MAX_GUE_PORTS: usize = 4;

/// Names of the `DECAP_CNT` counters, in `enum xvs_decap_counter` order.
pub const COUNTER_NAMES: [&str; 5] = ["rx", "decap_ipip", "decap_gue", "pass", "error"];

const _: () = assert!(COUNTER_NAMES.len() == xvs_decap_counter::XVS_DECAP_MAX.0 as usize);
const _: () = assert!(size_of::<xvs_decap_cfg>() == 80);
const _: () = assert!(MAX_VIPS == 16 && MAX_GUE_PORTS == 4);

/// What `xvs_decap` decapsulates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecapConfig {
    /// Inner destinations accepted (at most [`MAX_VIPS`]).
    pub vips: Vec<Ipv4Addr>,
    /// UDP ports carrying GUE (at most [`MAX_GUE_PORTS`]; empty: IPIP only).
    pub gue_ports: Vec<u16>,
}

fn cfg_of(cfg: &DecapConfig) -> Result<xvs_decap_cfg, Error> {
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
    let mut c = xvs_decap_cfg::default();
    for (i, v) in cfg.vips.iter().enumerate() {
        c.vips[i] = crate::be32(*v);
    }
    for (i, p) in cfg.gue_ports.iter().enumerate() {
        c.gue_ports[i] = crate::be16(*p);
    }
    c.nvips = cfg.vips.len() as u32;
    c.nports = cfg.gue_ports.len() as u32;
    Ok(c)
}

fn bpf_err(context: &str) -> impl FnOnce(libbpf_rs::Error) -> Error + '_ {
    move |source| Error::Bpf {
        context: context.to_string(),
        source,
    }
}

/// Opens, configures and loads the program; `f` gets the loaded skeleton.
fn with_loaded<T>(
    cfg: &DecapConfig,
    f: impl FnOnce(&skel::DecapSkel<'_>) -> Result<T, Error>,
) -> Result<T, Error> {
    let c = cfg_of(cfg)?;
    let mut storage = MaybeUninit::uninit();
    let mut open = skel::DecapSkelBuilder::default()
        .open(&mut storage)
        .map_err(bpf_err("opening the decap BPF object"))?;
    let ro = open
        .maps
        .rodata_data
        .as_deref_mut()
        .ok_or_else(|| Error::Abi("decap .rodata not mapped".into()))?;
    ro.decap_cfg = c;
    let skel = open
        .load()
        .map_err(bpf_err("loading the decap BPF program"))?;
    f(&skel)
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
fn prog_ids(ifindex: i32) -> Result<[(u32, XdpFlags); 2], Error> {
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

fn prog_fd(id: u32) -> Option<OwnedFd> {
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
    if id == 0 {
        return false;
    }
    let Some(fd) = prog_fd(id) else {
        return false;
    };
    prog_info(&fd).is_some_and(|i| {
        let name: Vec<u8> = i
            .name
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        name == PROG_NAME.as_bytes()
    })
}

/// Loads `xvs_decap` for `cfg` and attaches it to `ifname` (native XDP,
/// generic as a fallback), replacing a previous `xvs_decap` (or any other
/// XDP program, with a warning) there. It stays attached after this
/// process exits; [`detach`] removes it.
pub fn attach(ifname: &str, cfg: &DecapConfig) -> Result<(), Error> {
    let ifindex = ifindex(ifname)?;
    let before = prog_ids(ifindex)?;
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
        let name = if mode.bits() == XdpFlags::DRV_MODE.bits() {
            "native"
        } else {
            "generic"
        };
        info!("{PROG_NAME} attached to {ifname} ({name} mode)");
        Ok(())
    })
}

/// Detaches `xvs_decap` from `ifname` (both modes). Other programs and an
/// interface without XDP are left alone.
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
    Ok(())
}

/// True when an XDP program named `xvs_decap` is attached to `ifname`.
pub fn attached(ifname: &str) -> Result<bool, Error> {
    let ifindex = ifindex(ifname)?;
    Ok(prog_ids(ifindex)?.iter().any(|(id, _)| is_decap(*id)))
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
            .map(|v| u64::from_ne_bytes(v[..8].try_into().unwrap_or([0; 8])))
            .sum();
        out.push((*name, sum));
    }
    Ok(out)
}

/// Counters of the `xvs_decap` attached to `ifname`, summed over CPUs
/// (empty when none is attached).
pub fn counters(ifname: &str) -> Result<Vec<(&'static str, u64)>, Error> {
    let ifindex = ifindex(ifname)?;
    let Some((id, _)) = prog_ids(ifindex)?.into_iter().find(|(id, _)| is_decap(*id)) else {
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
    with_loaded(cfg, |skel| {
        let mut out = vec![0u8; frame.len() + 256];
        let input = libbpf_rs::ProgramInput {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..Default::default()
        };
        let r = skel
            .progs
            .xvs_decap
            .test_run(input)
            .map_err(bpf_err("BPF_PROG_TEST_RUN"))?;
        let ret = r.return_value;
        let n = r.data.map_or(0, |d| d.len());
        out.truncate(n);
        Ok((ret, out, sum_counters(&skel.maps.DECAP_CNT)?))
    })
}
