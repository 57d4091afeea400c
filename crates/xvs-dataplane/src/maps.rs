//! The director's maps as user space holds them: one handle each, checked
//! against the Rust types' key and value sizes when the object is loaded.

use std::mem::size_of;

use libbpf_rs::{MapCore, MapHandle, Object};

use libbpf_rs::MapFlags;

use crate::abi::*;
use crate::error::{bpf_err, Error};

/// Handles on the program's maps (`DEST_CONNS` is mapped instead:
/// [`crate::dest_conns`]).
pub(crate) struct Maps {
    pub(crate) svc: MapHandle,
    pub(crate) dest: MapHandle,
    pub(crate) dest_nh: MapHandle,
    pub(crate) ring: MapHandle,
    pub(crate) sched_pos: MapHandle,
    pub(crate) conn: MapHandle,
    pub(crate) svc_stats: MapHandle,
    pub(crate) dest_stats: MapHandle,
    pub(crate) cnt: MapHandle,
    pub(crate) svc_dests: MapHandle,
    pub(crate) persist: MapHandle,
    pub(crate) lblc: MapHandle,
    pub(crate) rand: MapHandle,
    pub(crate) nh_cfg: MapHandle,
    pub(crate) iface: MapHandle,
    pub(crate) fwm_addr: MapHandle,
    pub(crate) fwm_port: MapHandle,
    pub(crate) sip_tmpl: MapHandle,
    pub(crate) sip_ctl: MapHandle,
}

/// The value of `key` in `map` (`None`: not there), read as `V`;
/// `context` names the map in the error.
pub(crate) fn lookup<K: Pod, V: Pod>(
    map: &MapHandle,
    key: &K,
    context: &'static str,
) -> Result<Option<V>, Error> {
    Ok(map
        .lookup(as_bytes(key), MapFlags::ANY)
        .map_err(bpf_err(context))?
        .map(|v| from_bytes::<V>(&v)))
}

/// Key and value sizes of each map, as the Rust types have them.
pub(crate) fn sizes(name: &str) -> Option<(usize, usize)> {
    Some(match name {
        "SVC_MAP" => (size_of::<xvs_svc_key>(), size_of::<xvs_svc>()),
        "DEST_MAP" => (4, size_of::<xvs_dest>()),
        "DEST_NH" => (4, size_of::<xvs_dest_nh>()),
        "RING_MAP" => (size_of::<xvs_ring_key>(), 4),
        "SCHED_POS" => (4, 8),
        "CONN_MAP" => (size_of::<xvs_conn_key>(), size_of::<xvs_conn>()),
        "SVC_STATS" | "DEST_STATS" => (4, size_of::<xvs_stats>()),
        "DEST_CONNS" => (4, size_of::<xvs_dest_conns>()),
        "XVS_CNT" => (4, 8),
        "SVC_DESTS" => (4, size_of::<xvs_svc_dests>()),
        "PERSIST_MAP" => (size_of::<xvs_tmpl_key>(), size_of::<xvs_tmpl>()),
        "LBLC_MAP" => (size_of::<xvs_lblc_key>(), size_of::<xvs_lblc>()),
        "XVS_ABI" => (4, 4),
        "XVS_RAND" => (4, 8),
        "XVS_NH_CFG" => (4, size_of::<xvs_nh_cfg>()),
        "XVS_IFACE" => (4, 4),
        "FWM_ADDR" => (size_of::<xvs_fwm_addr_key>(), size_of::<xvs_fwm_addr>()),
        "FWM_PORT" => (size_of::<xvs_fwm_port_key>(), 4),
        "SIP_TMPL" => (size_of::<xvs_sip_key>(), size_of::<xvs_sip_tmpl>()),
        "SIP_CTL" => (size_of::<xvs_conn_key>(), size_of::<xvs_sip_key>()),
        _ => return None,
    })
}

/// A handle on the loaded object's map `name`, refused when its key or
/// value size is not the Rust type's.
pub(crate) fn handle(obj: &Object, name: &str) -> Result<MapHandle, Error> {
    let map = obj
        .maps()
        .find(|m| m.name() == name)
        .ok_or_else(|| Error::Abi(format!("map {name} missing")))?;
    let h = MapHandle::try_from(&map).map_err(bpf_err(format!("map {name}")))?;
    let (key, value) =
        sizes(name).ok_or_else(|| Error::Abi(format!("map {name}: no Rust type")))?;
    if h.key_size() as usize != key || h.value_size() as usize != value {
        return Err(Error::Abi(format!(
            "{name}: key/value {}/{} bytes, Rust expects {key}/{value}",
            h.key_size(),
            h.value_size()
        )));
    }
    Ok(h)
}

impl Maps {
    /// Handles on every map of the loaded director object.
    pub(crate) fn open(obj: &Object) -> Result<Maps, Error> {
        let h = |name: &str| handle(obj, name);
        Ok(Maps {
            svc: h("SVC_MAP")?,
            dest: h("DEST_MAP")?,
            dest_nh: h("DEST_NH")?,
            ring: h("RING_MAP")?,
            sched_pos: h("SCHED_POS")?,
            conn: h("CONN_MAP")?,
            svc_stats: h("SVC_STATS")?,
            dest_stats: h("DEST_STATS")?,
            cnt: h("XVS_CNT")?,
            svc_dests: h("SVC_DESTS")?,
            persist: h("PERSIST_MAP")?,
            lblc: h("LBLC_MAP")?,
            rand: h("XVS_RAND")?,
            nh_cfg: h("XVS_NH_CFG")?,
            iface: h("XVS_IFACE")?,
            fwm_addr: h("FWM_ADDR")?,
            fwm_port: h("FWM_PORT")?,
            sip_tmpl: h("SIP_TMPL")?,
            sip_ctl: h("SIP_CTL")?,
        })
    }
}
