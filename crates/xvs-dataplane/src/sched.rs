//! What the program schedules a service's new connections from: the
//! rr/wrr ring or dh/sh/mh table and the dest list, built with
//! `xvs_core::sched`; and which schedulers scan that list.

use std::net::IpAddr;

use xvs_core::sched::{self, SchedKind};

use crate::abi::xvs_sched;
use crate::error::Error;
use crate::limits::{NO_DEST, RING_LEN_MAX, SVC_DESTS_MAX};

/// Each scheduler beside its `enum xvs_sched` value (`xvs_svc.sched`):
/// a reordered or inserted enumerator fails the build, one out of
/// `SchedKind::ALL`'s order fails the unit test.
const SCHED_NUMBERS: [(xvs_sched, SchedKind); xvs_sched::XVS_SCHED_MAX.0 as usize] = [
    (xvs_sched::XVS_SCHED_RR, SchedKind::Rr),
    (xvs_sched::XVS_SCHED_WRR, SchedKind::Wrr),
    (xvs_sched::XVS_SCHED_LC, SchedKind::Lc),
    (xvs_sched::XVS_SCHED_WLC, SchedKind::Wlc),
    (xvs_sched::XVS_SCHED_LBLC, SchedKind::Lblc),
    (xvs_sched::XVS_SCHED_LBLCR, SchedKind::Lblcr),
    (xvs_sched::XVS_SCHED_DH, SchedKind::Dh),
    (xvs_sched::XVS_SCHED_SH, SchedKind::Sh),
    (xvs_sched::XVS_SCHED_SED, SchedKind::Sed),
    (xvs_sched::XVS_SCHED_NQ, SchedKind::Nq),
    (xvs_sched::XVS_SCHED_FO, SchedKind::Fo),
    (xvs_sched::XVS_SCHED_OVF, SchedKind::Ovf),
    (xvs_sched::XVS_SCHED_MH, SchedKind::Mh),
    (xvs_sched::XVS_SCHED_TWOS, SchedKind::Twos),
];
assert_enum_order!(SCHED_NUMBERS);
const _: () = assert!(SCHED_NUMBERS.len() == SchedKind::ALL.len());

/// Whether the program schedules `kind` by scanning the service's dest
/// list (`SVC_DESTS`, at most [`SVC_DESTS_MAX`] dests): every scheduler
/// but those that follow a ring (rr, wrr) or a hash table (dh, sh, mh).
/// The one statement of this on the Rust side: the data plane refuses
/// more dests for them ([`SvcSched::build`]), and so should its callers.
pub const fn scans_dest_list(kind: SchedKind) -> bool {
    !matches!(
        kind,
        SchedKind::Rr | SchedKind::Wrr | SchedKind::Dh | SchedKind::Sh | SchedKind::Mh
    )
}

/// One dest as the scheduler table builders see it (kernel list order is
/// the order of the slice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedDest {
    /// Dest id.
    pub id: u32,
    /// Real server address.
    pub addr: IpAddr,
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
    /// Dest ids in kernel list order (newest first): the array the
    /// schedulers of [`scans_dest_list`] scan (at most [`SVC_DESTS_MAX`]).
    pub dests: Vec<u32>,
    /// rr/wrr: one period of the selection sequence; dh/sh/mh: the bucket
    /// table (slot → dest id, [`NO_DEST`] when empty); others: empty.
    pub table: Vec<u32>,
    /// The weights of `dests`, in the same order ([`SvcSched::build`]):
    /// with them, an rr/wrr service continues after a change of its dest
    /// list where the kernel's cursor would ([`sched::cursor`]). Empty
    /// (a ring given by hand): the position is kept.
    pub weights: Vec<u32>,
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
            weights: Vec::new(),
        }
    }

    /// Builds the schedule of `scheduler` over `dests` (kernel list
    /// order) with the `xvs_core::sched` builders: rr/wrr rings, dh/sh/mh
    /// tables; the dest list for everyone.
    pub fn build(scheduler: &str, dests: &[SchedDest]) -> Result<SvcSched, Error> {
        let kind = SchedKind::from_name(scheduler).map_err(|e| Error::Invalid(e.to_string()))?;
        if scans_dest_list(kind) && dests.len() > SVC_DESTS_MAX {
            return Err(Error::Unsupported(format!(
                "scheduler {scheduler} with more than {SVC_DESTS_MAX} real servers"
            )));
        }
        let mut weights: Vec<u32> = dests.iter().map(|d| d.weight).collect();
        if kind == SchedKind::Wrr {
            weights = sched::wrr_fit(&weights, RING_LEN_MAX as u64);
        }
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
                        addr: sched::hash::addr_fold(d.addr),
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
            weights: weights.into_iter().take(SVC_DESTS_MAX).collect(),
        })
    }
}

/// The `enum xvs_sched` number of a scheduler name.
pub(crate) fn sched_index(name: &str) -> Option<u32> {
    let kind = SchedKind::from_name(name).ok()?;
    SCHED_NUMBERS
        .iter()
        .find(|(_, k)| *k == kind)
        .map(|(n, _)| n.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_numbers_follow_the_model_order() {
        for (i, (n, kind)) in SCHED_NUMBERS.iter().enumerate() {
            assert_eq!(SchedKind::ALL[i], *kind);
            assert_eq!(sched::SCHEDULERS[i], kind.name());
            assert_eq!(sched_index(kind.name()), Some(n.0));
        }
        assert_eq!(sched_index("bogus"), None);
    }

    #[test]
    fn the_ring_and_table_schedulers_do_not_scan() {
        let scanning: Vec<&str> = SchedKind::ALL
            .into_iter()
            .filter(|k| scans_dest_list(*k))
            .map(SchedKind::name)
            .collect();
        assert_eq!(
            scanning,
            ["lc", "wlc", "lblc", "lblcr", "sed", "nq", "fo", "ovf", "twos"]
        );
    }
}
