//! The last minutes of every service's rates, for the status page's
//! charts: one sample per service on each rate-estimator tick (every 2
//! seconds), kept in xvsd so a page opened now shows what happened before.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use xvs_core::model::{Rates, ServiceKey};

/// Samples kept per service: 150 ticks of 2 s, five minutes.
pub const SAMPLES: usize = 150;

/// A service's rates at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// When it was taken, Unix milliseconds.
    pub t_ms: u64,
    /// The estimator's rates then.
    #[serde(flatten)]
    pub rates: Rates,
}

/// Per service, its last [`SAMPLES`] samples, oldest first.
#[derive(Debug, Default)]
pub struct History {
    rings: BTreeMap<ServiceKey, VecDeque<Sample>>,
}

impl History {
    /// Adds one sample for each of `services` taken at `t_ms`. Services
    /// not among them are gone from the table: their history goes too
    /// (a service added again starts afresh, as its counters do).
    pub fn record(&mut self, t_ms: u64, services: impl IntoIterator<Item = (ServiceKey, Rates)>) {
        let mut old = std::mem::take(&mut self.rings);
        for (key, rates) in services {
            let mut ring = old.remove(&key).unwrap_or_default();
            if ring.len() == SAMPLES {
                ring.pop_front();
            }
            ring.push_back(Sample { t_ms, rates });
            self.rings.insert(key, ring);
        }
    }

    /// The samples of `key`, oldest first.
    pub fn samples(&self, key: &ServiceKey) -> Vec<Sample> {
        self.rings
            .get(key)
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Forgets the samples of one service (`None`: all), for `-Z`, which
    /// restarts the rates too.
    pub fn forget(&mut self, key: Option<ServiceKey>) {
        match key {
            Some(k) => {
                self.rings.remove(&k);
            }
            None => self.rings.clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use xvs_core::model::Protocol;

    fn key(port: u16) -> ServiceKey {
        ServiceKey::new(Protocol::Tcp, Ipv4Addr::new(198, 51, 100, 10), port)
    }

    fn rates(cps: u64) -> Rates {
        Rates {
            cps,
            ..Rates::default()
        }
    }

    #[test]
    fn keeps_five_minutes_per_service_and_drops_gone_services() {
        let mut h = History::default();
        for t in 0..(SAMPLES as u64 + 10) {
            h.record(t, [(key(80), rates(t)), (key(443), rates(1))]);
        }
        let s = h.samples(&key(80));
        assert_eq!(s.len(), SAMPLES);
        assert_eq!(s[0].t_ms, 10, "the oldest went first");
        assert_eq!(s[SAMPLES - 1].rates.cps, SAMPLES as u64 + 9);
        h.record(1000, [(key(80), rates(0))]);
        assert!(h.samples(&key(443)).is_empty(), "gone from the table");
        h.forget(Some(key(80)));
        assert!(h.samples(&key(80)).is_empty());
    }
}
