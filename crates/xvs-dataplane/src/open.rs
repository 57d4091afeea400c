//! Opening a data plane: pins checked (or made), the director's object
//! loaded with the optional features the kernel takes, its maps and
//! `DEST_CONNS` taken in hand, the expiry scan attached and the egress
//! program of local dests loaded where they load.

use std::path::Path;

use libbpf_rs::{MapCore, MapHandle, Object};
use log::{info, warn};

use crate::dataplane::Dataplane;
use crate::dest_conns::DestConns;
use crate::error::Error;
use crate::features::{self, Features};
use crate::limits::CNT_SLOTS;
use crate::local_out::LocalOut;
use crate::mapio;
use crate::maps::{self, Maps};
use crate::migrate::{self, Migration};
use crate::nh_cache::{write_nh_cfg, NEXTHOP_TTL_DEFAULT};
use crate::objects::{load_director, Expiry};
use crate::options::Options;
use crate::pins;
use crate::scan_clock::ScanClock;

impl Dataplane {
    /// Loads the program and creates (or reuses pinned) maps.
    pub fn open(opts: &Options) -> Result<Dataplane, Error> {
        opts.validate()?;
        let mig = match &opts.pin_path {
            Some(p) => prepare_pins(p, opts)?,
            None => None,
        };
        Self::open_loaded(opts, mig.as_ref()).inspect_err(|_| {
            if let Some(m) = &mig {
                m.restore();
            }
        })
    }

    /// [`Dataplane::open`] after the pins are checked (and, from ABI 4,
    /// taken apart: `mig`'s entries go into the new maps).
    fn open_loaded(opts: &Options, mig: Option<&Migration>) -> Result<Dataplane, Error> {
        let off = features::forced_off().map_err(Error::Invalid)?;
        let mut feats = features::probe(&off);
        let obj = load_with_fallback(opts, &mut feats)?;
        let maps = Maps::open(&obj)?;
        if let Some(m) = mig {
            m.apply(&obj)?;
        }
        pins::stamp(&maps::handle(&obj, "XVS_ABI")?)?;
        let dest_conns = DestConns::map(&maps::handle(&obj, "DEST_CONNS")?)?;
        let expiry = if off.contains(features::EXPIRY_SCAN.name) {
            None
        } else {
            match Expiry::load(&maps.conn) {
                Ok(x) => Some(x),
                Err(e) => {
                    feats.set_why(features::EXPIRY_SCAN, e.to_string());
                    None
                }
            }
        };
        feats.set(features::EXPIRY_SCAN, expiry.is_some());
        let local_out = if off.contains(features::LOCAL_OUT.name) {
            None
        } else {
            match LocalOut::load(&obj, feats.has(features::ATOMICS), feats.bits()) {
                Ok(l) => Some(l),
                Err(e) => {
                    feats.set_why(features::LOCAL_OUT, e.to_string());
                    None
                }
            }
        };
        feats.set(features::LOCAL_OUT, local_out.is_some());
        mapio::force_fallbacks(
            off.contains(features::BATCH_OPS.name),
            off.contains(features::LOOKUP_AND_DELETE.name),
        );
        let (batch, take) = mapio::probe(&[&maps.svc_stats, &maps.dest, &maps.conn], &maps.conn);
        feats.set(features::BATCH_OPS, batch);
        feats.set(features::LOOKUP_AND_DELETE, take);
        report_features(&feats, opts);
        write_nh_cfg(&maps.nh_cfg, NEXTHOP_TTL_DEFAULT, 0)?;
        let max_services = maps.svc_stats.max_entries();
        let max_dests = maps.dest.max_entries();
        let ring_capacity = maps.ring.max_entries();
        Ok(Dataplane {
            obj,
            maps,
            expiry,
            local_out,
            features: feats,
            nh_pending: Default::default(),
            cursors: Default::default(),
            scan_clock: ScanClock::default(),
            dest_conns,
            max_services,
            max_dests,
            ring_capacity,
            mode: opts.attach_mode,
            attached: Vec::new(),
        })
    }
}

/// Creates the pin directory and checks that the maps pinned there can be
/// adopted; the pins of an ABI 4 data plane are taken apart for the
/// upgrade (`migrate`).
fn prepare_pins(p: &Path, opts: &Options) -> Result<Option<Migration>, Error> {
    std::fs::create_dir_all(p).map_err(|source| Error::Io {
        context: format!("creating pin directory {}", p.display()),
        source,
    })?;
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
    let mig = match migrate::pinned_abi(p) {
        Some((v, abi)) if v == migrate::FROM_ABI => Some(migrate::take(p, abi)?),
        _ => None,
    };
    if let Err(e) = pins::check(p, opts) {
        if let Some(m) = &mig {
            m.restore();
        }
        return Err(e);
    }
    Ok(mig)
}

/// Loads the director with the features `feats` found. A probe that says
/// yes for a feature the verifier then refuses (another program type, a
/// policy) must not cost the data plane: the program is loaded again
/// without the optional features, and `feats` says so.
fn load_with_fallback(opts: &Options, feats: &mut Features) -> Result<Object, Error> {
    let atomics = feats.has(features::ATOMICS);
    match load_director(opts, atomics, feats.bits()) {
        Ok(obj) => Ok(obj),
        Err(e) if atomics || feats.bits() != 0 => {
            let lost: Vec<&str> = features::ALL
                .iter()
                .filter(|f| feats.has(**f) && !features::AFTER_LOAD.contains(f))
                .map(|f| f.name)
                .collect();
            let obj = load_director(opts, false, 0).map_err(|_| e)?;
            warn!(
                "the data plane did not load with the optional features {} and was loaded \
                 without them",
                lost.join(", ")
            );
            for f in features::ALL {
                if !features::AFTER_LOAD.contains(&f) {
                    feats.set(f, false);
                }
            }
            Ok(obj)
        }
        Err(e) => Err(e),
    }
}

/// Logs each feature the program of this mode could use but goes without.
fn report_features(feats: &Features, opts: &Options) {
    for (f, on) in feats.report() {
        if !on && opts.attach_mode.uses(f) {
            let why = feats.why(f).map(|w| format!(": {w}")).unwrap_or_default();
            info!(
                "kernel feature {} unavailable (needs {}{why}); {}",
                f.name, f.needs, f.without
            );
        }
    }
}
