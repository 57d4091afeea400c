//! The pinned maps: which maps are pinned, how big each is under given
//! [`Options`], and whether pins found at start can be adopted. The pins
//! hold the running data plane's connections (its program stays attached
//! while xvsd restarts), so a daemon whose maps differ in layout or size
//! must not reuse them, nor silently replace them: it refuses with what to
//! do instead.

use std::path::Path;

use libbpf_rs::{MapCore, MapFlags, MapHandle};

use crate::abi::xvs_abi_version;
use crate::error::{bpf_err, Error};
use crate::maps::sizes;
use crate::options::Options;

/// Maps pinned under [`Options::pin_path`] (all state; `.rodata` is not).
pub(crate) const PINNED_MAPS: [&str; 18] = [
    "SVC_MAP",
    "DEST_MAP",
    "DEST_NH",
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
    "FWM_ADDR",
    "FWM_PORT",
    "SIP_TMPL",
    "SIP_CTL",
    "XVS_ABI",
];

/// The data plane version this build pins (`XVS_ABI_VERSION`).
pub const ABI_VERSION: u32 = xvs_abi_version::XVS_ABI_VERSION.0;

/// A map's entries as `opts` size it, and the option that sets it; `None`
/// for maps the object sizes itself.
pub(crate) fn entries(name: &str, opts: &Options) -> Option<(u32, &'static str)> {
    Some(match name {
        "SVC_MAP" | "SCHED_POS" | "SVC_STATS" => (opts.max_services, "--max-services"),
        "DEST_MAP" | "DEST_STATS" | "DEST_CONNS" | "DEST_NH" => (opts.max_dests, "--max-dests"),
        "RING_MAP" => (opts.ring_capacity, "the ring capacity"),
        "CONN_MAP" => (opts.conn_capacity, "--conn-tab-size"),
        "SVC_DESTS" => (opts.max_services.saturating_mul(2), "--max-services"),
        "PERSIST_MAP" | "SIP_TMPL" | "SIP_CTL" => (opts.persist_capacity, "the template capacity"),
        "LBLC_MAP" => (opts.locality_capacity, "the locality capacity"),
        _ => return None,
    })
}

/// What `xvsd` says to do about pins it cannot adopt.
fn refusal(dir: &Path, why: String) -> Error {
    Error::Pins(format!(
        "{}: the pinned maps of the running data plane cannot be adopted: {why}. They hold \
         its connections, and its program forwards with them. Start xvsd with the version and \
         options that made them, or remove that data plane with `xvsd --detach --pin-path {}` \
         (its connections are lost) and start again",
        dir.display(),
        dir.display()
    ))
}

/// Checks that the maps pinned under `dir` (if any) are this build's, of
/// the sizes `opts` asks for. `XVS_CNT` of another size is left to the
/// caller (counters are statistics: it is recreated).
pub(crate) fn check(dir: &Path, opts: &Options) -> Result<(), Error> {
    let pinned: Vec<(&str, MapHandle)> = PINNED_MAPS
        .iter()
        .filter_map(|n| Some((*n, MapHandle::from_pinned_path(dir.join(n)).ok()?)))
        .collect();
    if pinned.is_empty() {
        return Ok(());
    }
    let version = pinned
        .iter()
        .find(|(n, _)| *n == "XVS_ABI")
        .and_then(|(_, m)| m.lookup(&0u32.to_ne_bytes(), MapFlags::ANY).ok().flatten())
        .and_then(|v| Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?)));
    match version {
        Some(v) if v == ABI_VERSION => {}
        Some(v) => {
            return Err(refusal(
                dir,
                format!("they are data plane ABI {v}, this xvsd's is {ABI_VERSION}"),
            ))
        }
        None => {
            return Err(refusal(
                dir,
                format!(
                    "they are from an xvs before data plane ABI 4 (no XVS_ABI), this xvsd's \
                     is {ABI_VERSION}"
                ),
            ))
        }
    }
    for (name, m) in &pinned {
        let Some((key, value)) = sizes(name) else {
            continue;
        };
        if (m.key_size() as usize, m.value_size() as usize) != (key, value) {
            return Err(refusal(
                dir,
                format!(
                    "{name} has {}/{}-byte keys/values, this xvsd's {key}/{value}",
                    m.key_size(),
                    m.value_size()
                ),
            ));
        }
        if let Some((want, option)) = entries(name, opts) {
            if m.max_entries() != want {
                return Err(refusal(
                    dir,
                    format!(
                        "{name} has {} entries, {option} asks for {want}",
                        m.max_entries()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Records this build's version in the (just created or adopted)
/// `XVS_ABI` map.
pub(crate) fn stamp(abi: &MapHandle) -> Result<(), Error> {
    abi.update(
        &0u32.to_ne_bytes(),
        &ABI_VERSION.to_ne_bytes(),
        MapFlags::ANY,
    )
    .map_err(bpf_err("XVS_ABI update"))
}

/// Removes every pin under `dir` and the directory; true when there was
/// anything to remove.
pub fn remove(dir: &Path) -> Result<bool, Error> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(Error::Io {
            context: format!("removing {}", dir.display()),
            source,
        }),
    }
}
