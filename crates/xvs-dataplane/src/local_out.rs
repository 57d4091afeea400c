//! `xvs_local_out` (`bpf/local_out.bpf.c`): the answers of a real server
//! at one of the director's own addresses leave through the director's
//! stack, not its ingress, so they get their VIP source back on the
//! clsact egress hook of every interface the director serves. Loaded
//! after the director, on the director's own maps; optional (feature
//! `local_out`): without it only local NAT dests lose their answers.

use std::os::fd::AsFd;

use libbpf_rs::{MapCore, MapHandle, Object, ObjectBuilder, TcHook, TC_EGRESS};

use crate::error::{bpf_err, Error};
use crate::objects::quiet_libbpf;
use crate::skel;
use crate::tc;

static OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/local_out.bpf.o"));
static OBJ_COMPAT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/local_out_compat.bpf.o"));

/// The program's name in its object (and on the egress hook).
pub(crate) const PROG: &str = "xvs_local_out";

// Both builds keep `xvs_feat` at one offset of `.rodata`.
const FEAT_OFF: usize = std::mem::offset_of!(skel::local_out::types::rodata, xvs_feat);
const _: () =
    assert!(FEAT_OFF == std::mem::offset_of!(skel::local_out_compat::types::rodata, xvs_feat));

/// The loaded egress program.
pub(crate) struct LocalOut {
    obj: Object,
}

impl LocalOut {
    /// Loads it on `director`'s maps (every map of the same name is the
    /// director's), with the director's feature `bits` and atomics.
    pub(crate) fn load(director: &Object, atomics: bool, bits: u32) -> Result<LocalOut, Error> {
        let why = |what: &str| bpf_err(format!("local_out: {what}"));
        let mut open = ObjectBuilder::default()
            .open_memory(if atomics { OBJ } else { OBJ_COMPAT })
            .map_err(why("opening its object"))?;
        for mut m in open.maps_mut() {
            let name = m.name().to_string_lossy().into_owned();
            if name.ends_with(".rodata") {
                let data = m
                    .initial_value_mut()
                    .ok_or_else(|| Error::Abi("local_out's .rodata has no initial value".into()))?;
                let slot = data.get_mut(FEAT_OFF..FEAT_OFF + 4).ok_or_else(|| {
                    Error::Abi("xvs_feat lies outside local_out's .rodata".into())
                })?;
                slot.copy_from_slice(&bits.to_ne_bytes());
                continue;
            }
            // Its own .bss/.data, if any; every other map is the director's.
            if name.contains('.') {
                continue;
            }
            let theirs = director
                .maps()
                .find(|d| d.name() == name.as_str())
                .ok_or_else(|| Error::Abi(format!("local_out: the director has no map {name}")))
                .and_then(|d| MapHandle::try_from(&d).map_err(why(&format!("map {name}"))))?;
            m.set_max_entries(theirs.max_entries())
                .and_then(|()| m.reuse_fd(theirs.as_fd()))
                .map_err(why(&format!("sharing {name}")))?;
        }
        let obj = quiet_libbpf(|| open.load()).map_err(why("loading"))?;
        Ok(LocalOut { obj })
    }

    /// The program, for a test run.
    pub(crate) fn prog_mut(&self) -> Result<libbpf_rs::ProgramMut<'_>, Error> {
        self.obj
            .progs_mut()
            .find(|p| p.name() == PROG)
            .ok_or_else(|| Error::Abi(format!("program {PROG} missing")))
    }

    /// Attaches it as the clsact egress filter of `ifindex` (at xvsd's
    /// handle and priority, replacing a predecessor's). Returns the hook
    /// and whether the qdisc was created for it.
    pub(crate) fn attach(&self, ifname: &str, ifindex: i32) -> Result<(TcHook, bool), Error> {
        let prog = self
            .obj
            .progs()
            .find(|p| p.name() == PROG)
            .ok_or_else(|| Error::Abi(format!("program {PROG} missing")))?;
        tc::attach_filter(
            prog.as_fd(),
            ifname,
            ifindex,
            TC_EGRESS,
            &format!("{PROG} (tc egress)"),
        )
    }
}
