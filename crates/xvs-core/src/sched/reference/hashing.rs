//! dh, sh and mh: a table built when the destinations change.

use super::*;
use crate::sched::hash::addr_fold;

/// dh / sh / mh: a table built on [`Scheduler::dests_changed`], holding dest
/// ids, looked up per flow with the functions of [`super::table`].
pub(super) struct Hashing {
    kind: SchedKind,
    fallback: bool,
    port: bool,
    built: bool,
    /// slot → list index, valid for the list `ids` it was built from
    table: Vec<Option<usize>>,
    /// dest ids of that list, in order
    ids: Vec<u32>,
}

impl Hashing {
    pub(super) fn new(kind: SchedKind, fallback: bool, port: bool) -> Self {
        Hashing {
            kind,
            fallback,
            port,
            built: false,
            table: Vec::new(),
            ids: Vec::new(),
        }
    }
}

impl Scheduler for Hashing {
    fn kind(&self) -> SchedKind {
        self.kind
    }
    fn dests_changed(&mut self, dests: &[DestView]) {
        let t = match self.kind {
            SchedKind::Dh => dh_table(dests.len()),
            SchedKind::Sh => sh_table(&dests.iter().map(|d| d.weight).collect::<Vec<_>>()),
            _ => mh_table(
                &dests
                    .iter()
                    .map(|d| MhDest {
                        addr: addr_fold(d.addr),
                        port: d.port,
                        last_weight: d.last_weight,
                    })
                    .collect::<Vec<_>>(),
            ),
        };
        self.table = t;
        self.ids = dests.iter().map(|d| d.id).collect();
        self.built = true;
    }
    fn schedule(
        &mut self,
        dests: &[DestView],
        flow: &FlowKey,
        _now: u64,
        _rand: &mut dyn FnMut() -> u32,
    ) -> Option<usize> {
        if !self.built {
            self.dests_changed(dests);
        }
        // The table holds indices into the list it was built from; if the
        // caller changed the list without dests_changed(), translate by id
        // (a dest that vanished reads as an empty slot).
        let same =
            self.ids.len() == dests.len() && self.ids.iter().zip(dests).all(|(&a, d)| a == d.id);
        let translated: Vec<Option<usize>>;
        let idx: &[Option<usize>] = if same {
            &self.table
        } else {
            translated = self
                .table
                .iter()
                .map(|s| s.and_then(|i| dests.iter().position(|d| d.id == self.ids[i])))
                .collect();
            &translated
        };
        let avail = |i: usize| dests[i].schedulable();
        let port = if self.port { flow.hash_port() } else { 0 };
        match self.kind {
            SchedKind::Dh => dh_lookup(idx, avail, addr_fold(flow.daddr)),
            SchedKind::Sh if self.fallback => {
                sh_lookup_fallback(idx, avail, addr_fold(flow.saddr), port)
            }
            SchedKind::Sh => sh_lookup(idx, avail, addr_fold(flow.saddr), port),
            _ if self.fallback => mh_lookup_fallback(idx, avail, addr_fold(flow.saddr), port),
            _ => mh_lookup(idx, avail, addr_fold(flow.saddr), port),
        }
    }
}
