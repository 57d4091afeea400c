//! Upgrading the pins of an ABI 4 data plane (4-byte addresses) to this
//! build's ABI 5 (16-byte `union xvs_addr`, `af` bytes) so that an
//! upgrade keeps the connections: before loading, the maps whose layout
//! changed are read with ABI 4's layouts (written out below, field by
//! field, as `bpf/xvs.h` had them), their entries converted, and their
//! pins removed; the load then creates and pins this build's maps in
//! their place (as it does for a map the pinned set lacks) and the
//! converted entries are written into them. The old program keeps its
//! own maps and forwards with them until the new program is attached;
//! what it changes in between (a new connection, a state change) is not
//! carried over. The maps of unchanged layout (`DEST_CONNS`, the rings,
//! stats, counters, ...) are adopted as they are. Should the load fail,
//! the old maps are pinned back and `XVS_ABI` says 4 again.

use std::path::{Path, PathBuf};

use libbpf_rs::{MapCore, MapFlags, MapHandle, Object};
use log::{info, warn};

use crate::abi::{
    as_bytes, xvs_conn, xvs_conn_key, xvs_dest, xvs_dest_nh, xvs_fwm_addr_key, xvs_lblc_key,
    xvs_sip_key, xvs_sip_tmpl, xvs_svc, xvs_svc_key, xvs_tmpl, xvs_tmpl_key,
};
use crate::error::{bpf_err, Error};
use crate::maps;
use crate::repr::AF_INET;

/// The ABI this module upgrades from.
pub(crate) const FROM_ABI: u32 = 4;

/// Map, ABI 4 key and value sizes: the maps whose layout ABI 5 changed.
const CHANGED: [(&str, usize, usize); 9] = [
    ("SVC_MAP", 8, 32),
    ("DEST_MAP", 4, 32),
    ("DEST_NH", 4, 28),
    ("CONN_MAP", 16, 40),
    ("PERSIST_MAP", 12, 32),
    ("SIP_TMPL", 24, 288),
    ("SIP_CTL", 16, 24),
    ("LBLC_MAP", 8, 88),
    ("FWM_ADDR", 12, 8),
];

/// A map's entries as key and value bytes.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Converted entries waiting for this build's maps, and the old maps
/// (to pin back if the load fails).
pub(crate) struct Migration {
    dir: PathBuf,
    old: Vec<(&'static str, MapHandle)>,
    entries: Vec<(&'static str, Entries)>,
    abi: MapHandle,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_ne_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes(b[o..o + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_ne_bytes(b[o..o + 8].try_into().unwrap())
}

/// A 4-byte `__be32` address at `o` as a `union xvs_addr`.
fn addr_at(b: &[u8], o: usize) -> crate::abi::xvs_addr {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&b[o..o + 4]);
    crate::abi::xvs_addr { b: a }
}

/// ABI 4 `xvs_conn_key`: saddr, daddr, sport, dport, proto, pad[3].
fn conn_key(b: &[u8]) -> xvs_conn_key {
    xvs_conn_key {
        saddr: addr_at(b, 0),
        daddr: addr_at(b, 4),
        sport: u16_at(b, 8),
        dport: u16_at(b, 10),
        proto: b[12],
        af: AF_INET,
        ..Default::default()
    }
}

/// ABI 4 `xvs_conn`: last_seen_ns, peer (16), svc_id, dest_id, state,
/// fwd, flags, pad.
fn conn(b: &[u8]) -> xvs_conn {
    xvs_conn {
        last_seen_ns: u64_at(b, 0),
        peer: conn_key(&b[8..24]),
        svc_id: u32_at(b, 24),
        dest_id: u32_at(b, 28),
        state: u32_at(b, 32),
        fwd: b[36],
        flags: b[37],
        ..Default::default()
    }
}

/// ABI 4 `xvs_tmpl_key`: caddr, vaddr, vport, proto, pad.
fn tmpl_key(b: &[u8]) -> xvs_tmpl_key {
    xvs_tmpl_key {
        caddr: addr_at(b, 0),
        vaddr: addr_at(b, 4),
        vport: u16_at(b, 8),
        proto: b[10],
        af: AF_INET,
    }
}

/// ABI 4 `xvs_tmpl`: last_seen_ns, svc_id, dest_id, daddr, dport, flags,
/// timeout, pad2.
fn tmpl(b: &[u8]) -> xvs_tmpl {
    xvs_tmpl {
        last_seen_ns: u64_at(b, 0),
        svc_id: u32_at(b, 8),
        dest_id: u32_at(b, 12),
        daddr: addr_at(b, 16),
        dport: u16_at(b, 20),
        flags: u16_at(b, 22),
        timeout: u32_at(b, 24),
        daf: AF_INET,
        ..Default::default()
    }
}

/// ABI 4 `xvs_sip_key`: tk (12), callid_len, callid_hash.
fn sip_key(b: &[u8]) -> xvs_sip_key {
    xvs_sip_key {
        tk: tmpl_key(&b[..12]),
        callid_len: u32_at(b, 12),
        callid_hash: u64_at(b, 16),
    }
}

/// One entry converted; `None` drops it (an empty array slot).
fn convert(name: &str, k: &[u8], v: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let pair = |k: &[u8], v: &[u8]| Some((k.to_vec(), v.to_vec()));
    match name {
        // ABI 4 xvs_svc_key: addr, port, proto, pad.
        "SVC_MAP" => {
            let key = xvs_svc_key {
                addr: addr_at(k, 0),
                port: u16_at(k, 4),
                proto: k[6],
                af: AF_INET,
            };
            // ABI 4 xvs_svc: id, flags, ring_len, gen, sched, timeout,
            // netmask, fwmark.
            let val = xvs_svc {
                id: u32_at(v, 0),
                flags: u32_at(v, 4),
                ring_len: u32_at(v, 8),
                r#gen: u32_at(v, 12),
                sched: u32_at(v, 16),
                timeout: u32_at(v, 20),
                netmask: addr_at(v, 24),
                fwmark: u32_at(v, 28),
            };
            pair(as_bytes(&key), as_bytes(&val))
        }
        // ABI 4 xvs_dest: addr, port, fwd, flags, svc_id, weight,
        // u_threshold, l_threshold, tun_port, tun_type, tun_flags, pad.
        "DEST_MAP" => {
            if v.iter().all(|&b| b == 0) {
                return None;
            }
            let val = xvs_dest {
                addr: addr_at(v, 0),
                port: u16_at(v, 4),
                fwd: v[6],
                flags: v[7],
                svc_id: u32_at(v, 8),
                weight: u32_at(v, 12),
                u_threshold: u32_at(v, 16),
                l_threshold: u32_at(v, 20),
                tun_port: u16_at(v, 24),
                tun_type: v[26],
                tun_flags: v[27],
                af: AF_INET,
                pad: [0; 3],
            };
            pair(k, as_bytes(&val))
        }
        // ABI 4 xvs_dest_nh: ifindex, mtu, src, dmac, smac, state, pad.
        "DEST_NH" => {
            if v.iter().all(|&b| b == 0) {
                return None;
            }
            let mut val = xvs_dest_nh {
                ifindex: u32_at(v, 0),
                mtu: u32_at(v, 4),
                src: addr_at(v, 8),
                state: v[24],
                ..Default::default()
            };
            val.dmac.copy_from_slice(&v[12..18]);
            val.smac.copy_from_slice(&v[18..24]);
            pair(k, as_bytes(&val))
        }
        "CONN_MAP" => pair(as_bytes(&conn_key(k)), as_bytes(&conn(v))),
        "PERSIST_MAP" => pair(as_bytes(&tmpl_key(k)), as_bytes(&tmpl(v))),
        // ABI 4 xvs_sip_tmpl: t (32), callid (256).
        "SIP_TMPL" => {
            let mut val = xvs_sip_tmpl {
                t: tmpl(&v[..32]),
                ..Default::default()
            };
            val.callid.copy_from_slice(&v[32..]);
            pair(as_bytes(&sip_key(k)), as_bytes(&val))
        }
        "SIP_CTL" => pair(as_bytes(&conn_key(k)), as_bytes(&sip_key(v))),
        // ABI 4 xvs_lblc_key: svc_id, daddr; the value is unchanged.
        "LBLC_MAP" => {
            let key = xvs_lblc_key {
                svc_id: u32_at(k, 0),
                daddr: addr_at(k, 4),
            };
            pair(as_bytes(&key), v)
        }
        // ABI 4 xvs_fwm_addr_key: prefixlen, proto, pad[3], daddr; an
        // IPv4 prefix keeps its length (32 + address bits).
        "FWM_ADDR" => {
            let key = xvs_fwm_addr_key {
                prefixlen: u32_at(k, 0),
                proto: k[4],
                af: AF_INET,
                pad: [0; 2],
                daddr: addr_at(k, 8),
            };
            pair(as_bytes(&key), v)
        }
        _ => None,
    }
}

/// The ABI of the maps pinned under `dir` (`None`: none pinned or no
/// `XVS_ABI`).
pub(crate) fn pinned_abi(dir: &Path) -> Option<(u32, MapHandle)> {
    let m = MapHandle::from_pinned_path(dir.join("XVS_ABI")).ok()?;
    let v = m.lookup(&0u32.to_ne_bytes(), MapFlags::ANY).ok()??;
    Some((u32::from_ne_bytes(v.get(..4)?.try_into().ok()?), m))
}

/// Reads and converts the ABI 4 maps pinned under `dir`, removes their
/// pins and marks `XVS_ABI` as this build's.
pub(crate) fn take(dir: &Path, abi: MapHandle) -> Result<Migration, Error> {
    let mut old = Vec::new();
    let mut entries = Vec::new();
    for (name, ks, vs) in CHANGED {
        let Ok(m) = MapHandle::from_pinned_path(dir.join(name)) else {
            continue;
        };
        if (m.key_size() as usize, m.value_size() as usize) != (ks, vs) {
            return Err(Error::Pins(format!(
                "{}: {name} has {}/{}-byte keys/values, not data plane ABI {FROM_ABI}'s \
                 {ks}/{vs}: cannot upgrade it; `xvsd --detach --pin-path {}` removes that \
                 data plane (its connections are lost)",
                dir.display(),
                m.key_size(),
                m.value_size(),
                dir.display()
            )));
        }
        let mut conv = Vec::new();
        for k in m.keys() {
            let Ok(Some(v)) = m.lookup(&k, MapFlags::ANY) else {
                continue; // gone in between
            };
            if k.len() == ks && v.len() == vs {
                conv.extend(convert(name, &k, &v));
            }
        }
        entries.push((name, conv));
        old.push((name, m));
    }
    let mig = Migration {
        dir: dir.to_path_buf(),
        old,
        entries,
        abi,
    };
    for (name, _) in &mig.old {
        if let Err(source) = std::fs::remove_file(dir.join(name)) {
            mig.restore();
            return Err(Error::Io {
                context: format!("unpinning {}", dir.join(name).display()),
                source,
            });
        }
    }
    if let Err(e) = crate::pins::stamp(&mig.abi) {
        mig.restore();
        return Err(e);
    }
    Ok(mig)
}

impl Migration {
    /// Writes the converted entries into the maps of the loaded object.
    pub(crate) fn apply(&self, obj: &Object) -> Result<(), Error> {
        for (name, conv) in &self.entries {
            let h = maps::handle(obj, name)?;
            let mut lost = 0usize;
            for (k, v) in conv {
                if h.update(k, v, MapFlags::ANY).is_err() {
                    lost += 1;
                }
            }
            if lost > 0 {
                warn!(
                    "{name}: {lost} of {} entries of data plane ABI {FROM_ABI} did not fit",
                    conv.len()
                );
            }
            info!(
                "{name}: {} entries upgraded from data plane ABI {FROM_ABI}",
                conv.len() - lost
            );
        }
        Ok(())
    }

    /// Puts the old maps back (the load failed): their pins and ABI 4.
    pub(crate) fn restore(&self) {
        for (name, m) in &self.old {
            let path = self.dir.join(name);
            let _ = std::fs::remove_file(&path);
            let mut m = match MapHandle::try_from(m) {
                Ok(m) => m,
                Err(_) => continue,
            };
            if let Err(e) = m.pin(&path) {
                warn!("re-pinning {}: {e}", path.display());
            }
        }
        let _ = self
            .abi
            .update(&0u32.to_ne_bytes(), &FROM_ABI.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf_err("XVS_ABI update"));
    }
}
