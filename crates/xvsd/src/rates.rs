//! Rate estimation (`--rate`, `--stats`'s rates): one IPVS estimator per
//! service and dest slot, fed every 2 seconds from the slots' counters.

use std::net::IpAddr;

use xvs_core::estimator::Estimator;
use xvs_core::model::{Rates, ServiceKey, Stats};

/// Identifies whose rate an estimator follows, independent of slot ids
/// (which are reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum EstKey {
    Svc(ServiceKey),
    Dest(ServiceKey, IpAddr, u16),
}

impl EstKey {
    fn service(&self) -> ServiceKey {
        match self {
            EstKey::Svc(s) | EstKey::Dest(s, _, _) => *s,
        }
    }
}

/// Rate estimators by slot id, each with whom it follows: a slot reused
/// by another service or dest starts afresh. Indexed, not hashed: with
/// 110 000 dests, rebuilding a hash map every 2 s was most of an idle
/// xvsd's CPU.
#[derive(Debug, Default)]
pub(crate) struct Estimators {
    pub(crate) svc: Vec<Option<(EstKey, Estimator)>>,
    pub(crate) dest: Vec<Option<(EstKey, Estimator)>>,
}

impl Estimators {
    pub(crate) fn rates(v: &[Option<(EstKey, Estimator)>], id: u32, key: EstKey) -> Rates {
        match v.get(id as usize) {
            Some(Some((k, e))) if *k == key => e.rates(),
            _ => Rates::default(),
        }
    }

    /// Ticks the estimator of slot `id` from `old` into `next`, or starts
    /// one when the slot followed someone else.
    pub(crate) fn tick(
        old: &mut [Option<(EstKey, Estimator)>],
        next: &mut Vec<Option<(EstKey, Estimator)>>,
        id: u32,
        key: EstKey,
        s: Stats,
    ) {
        let i = id as usize;
        let e = match old.get_mut(i).and_then(Option::take) {
            Some((k, mut e)) if k == key => {
                e.tick(s);
                e
            }
            _ => Estimator::new(s),
        };
        if next.len() <= i {
            next.resize(i + 1, None);
        }
        next[i] = Some((key, e));
    }

    /// Forgets the estimators of one service and its dests (`None`: all),
    /// for `-Z`.
    pub(crate) fn forget(&mut self, svc: Option<ServiceKey>) {
        for slot in self.svc.iter_mut().chain(self.dest.iter_mut()) {
            if slot
                .as_ref()
                .is_some_and(|(k, _)| svc.is_none_or(|z| k.service() == z))
            {
                *slot = None;
            }
        }
    }
}
