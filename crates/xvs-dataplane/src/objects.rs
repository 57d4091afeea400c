//! The compiled objects (the director's four builds and the expiry scan)
//! and how each is opened, sized, pinned and loaded.

use std::os::fd::AsFd;

use libbpf_rs::{Link, MapCore, MapHandle, Object, ObjectBuilder};

use crate::error::{bpf_err, Error};
use crate::mode::AttachMode;
use crate::options::Options;
use crate::pins::{self, PINNED_MAPS};
use crate::skel;

/// The compiled BPF object (the same bytes the skeleton embeds).
static BPF_OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xvs.bpf.o"));
/// The same program built for tc (`-DXVS_TC`): `xvs_tc`.
static BPF_OBJ_TC: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xvs_tc.bpf.o"));
/// Both again without 5.12's atomic instructions, for older kernels.
static BPF_OBJ_COMPAT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xvs_compat.bpf.o"));
static BPF_OBJ_TC_COMPAT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xvs_tc_compat.bpf.o"));

/// The object of `mode`, with or without 5.12's atomics.
fn director_obj(mode: AttachMode, atomics: bool) -> &'static [u8] {
    match (mode, atomics) {
        (AttachMode::Xdp, true) => BPF_OBJ,
        (AttachMode::Tc, true) => BPF_OBJ_TC,
        (AttachMode::Xdp, false) => BPF_OBJ_COMPAT,
        (AttachMode::Tc, false) => BPF_OBJ_TC_COMPAT,
    }
}

// Every build keeps `xvs_feat` where `set_feat_bits` writes it.
const _: () = assert!(
    std::mem::offset_of!(skel::xvs::types::rodata, xvs_feat)
        == std::mem::offset_of!(skel::xvs_compat::types::rodata, xvs_feat)
        && std::mem::offset_of!(skel::xvs_tc::types::rodata, xvs_feat)
            == std::mem::offset_of!(skel::xvs_tc_compat::types::rodata, xvs_feat)
);
/// The expiry scan (`bpf/expiry.bpf.c`), loaded after the program.
static BPF_OBJ_EXPIRY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/expiry.bpf.o"));

/// Writes the probed feature bits into `xvs_feat` of the program's
/// `.rodata` (before load: the verifier then knows which code is dead).
fn set_feat_bits(
    m: &mut libbpf_rs::OpenMapMut<'_>,
    mode: AttachMode,
    bits: u32,
) -> Result<(), Error> {
    let off = match mode {
        AttachMode::Xdp => std::mem::offset_of!(skel::xvs::types::rodata, xvs_feat),
        AttachMode::Tc => std::mem::offset_of!(skel::xvs_tc::types::rodata, xvs_feat),
    };
    let data = m
        .initial_value_mut()
        .ok_or_else(|| Error::Abi("the program's .rodata has no initial value".into()))?;
    let slot = data
        .get_mut(off..off + 4)
        .ok_or_else(|| Error::Abi("xvs_feat lies outside .rodata".into()))?;
    slot.copy_from_slice(&bits.to_ne_bytes());
    Ok(())
}

/// The loaded expiry scan: its object, the iterator link on `CONN_MAP`
/// and its configuration map.
pub(crate) struct Expiry {
    _obj: Object,
    /// The iterator: each read runs one scan.
    pub(crate) link: Link,
    /// `XVS_EXPIRY_CFG`: the scan's limits in, the entries visited out.
    pub(crate) cfg: MapHandle,
}

impl Expiry {
    /// Loads `xvs_expiry_scan` on the program's `conn` map and attaches
    /// it. Fails (with the reason) where the kernel has no map-element
    /// iterators or its policy refuses tracing programs; the data plane is
    /// already loaded by then and stays.
    pub(crate) fn load(conn: &MapHandle) -> Result<Expiry, Error> {
        let why = |what: &str, e: libbpf_rs::Error| bpf_err(what)(e);
        let missing = |what: &str| Error::Missing(format!("the expiry object has no {what}"));
        let mut open = ObjectBuilder::default()
            .open_memory(BPF_OBJ_EXPIRY)
            .map_err(|e| why("opening its object", e))?;
        for mut m in open.maps_mut() {
            if m.name() == "CONN_MAP" {
                m.set_max_entries(conn.max_entries())
                    .and_then(|()| m.reuse_fd(conn.as_fd()))
                    .map_err(|e| why("sharing CONN_MAP", e))?;
            }
        }
        let obj = quiet_libbpf(|| open.load()).map_err(|e| why("loading", e))?;
        let cfg = obj
            .maps()
            .find(|m| m.name() == "XVS_EXPIRY_CFG")
            .map(|m| MapHandle::try_from(&m))
            .ok_or_else(|| missing("XVS_EXPIRY_CFG"))?
            .map_err(|e| why("XVS_EXPIRY_CFG", e))?;
        let link = obj
            .progs_mut()
            .find(|p| p.name() == "xvs_expiry_scan")
            .ok_or_else(|| missing("xvs_expiry_scan"))?
            .attach_iter(conn.as_fd())
            .map_err(|e| why("attaching it to CONN_MAP", e))?;
        Ok(Expiry {
            _obj: obj,
            link,
            cfg,
        })
    }
}

/// Runs `f` with libbpf's own messages off: an optional program that the
/// kernel refuses is reported in one line by the caller, not with the
/// verifier's log.
pub(crate) fn quiet_libbpf<T>(f: impl FnOnce() -> T) -> T {
    let prev = libbpf_rs::get_print();
    libbpf_rs::set_print(None);
    let r = f();
    libbpf_rs::set_print(prev);
    r
}

/// Opens the director's object (the build for `opts.attach_mode`, with or
/// without 5.12's atomics), sizes and pins its maps as `opts` says, sets
/// the feature bits in `.rodata` and loads it.
pub(crate) fn load_director(opts: &Options, atomics: bool, bits: u32) -> Result<Object, Error> {
    let mut open = ObjectBuilder::default()
        .open_memory(director_obj(opts.attach_mode, atomics))
        .map_err(bpf_err("opening the BPF object"))?;
    for mut m in open.maps_mut() {
        let name = m.name().to_string_lossy().into_owned();
        if name.ends_with(".rodata") {
            set_feat_bits(&mut m, opts.attach_mode, bits)?;
            continue;
        }
        if let Some((n, _)) = pins::entries(&name, opts) {
            m.set_max_entries(n)
                .map_err(bpf_err(format!("sizing {name}")))?;
        }
        if let (Some(dir), true) = (&opts.pin_path, PINNED_MAPS.contains(&name.as_str())) {
            m.set_pin_path(dir.join(&name))
                .map_err(bpf_err(format!("pin path of {name}")))?;
        }
    }
    open.load().map_err(bpf_err("loading the BPF object"))
}
