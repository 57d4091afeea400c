//! Expiry of connections and persistence templates: the kernel's scan
//! (`xvs_expiry_scan`) or a read of the whole table finds the entries to
//! act on, and each is re-checked before it is deleted.

use std::collections::{HashMap, HashSet};
use std::mem::size_of;
use std::sync::atomic::Ordering;

use libbpf_rs::{MapCore, MapFlags};
use xvs_core::model::{ConnState, Timeouts};

use crate::abi::{
    as_bytes as bytes, from_bytes, xvs_conn, xvs_conn_flags, xvs_conn_key, xvs_expiry_cfg,
    xvs_expiry_kind, xvs_expiry_rec, xvs_fwd, xvs_state, xvs_tmpl, xvs_tmpl_key,
};
use crate::clock::monotonic_ns;
use crate::conns::tmpl_key_of;
use crate::dataplane::Dataplane;
use crate::error::{bpf_err, Error};
use crate::mapio;
use crate::maps::lookup;
use crate::objects::Expiry;
use crate::repr::{conn_key_bytes, tmpl_key_bytes, ConnKeyBytes, TmplKeyBytes};

const REPLY: u8 = xvs_conn_flags::XVS_CONN_F_REPLY.0 as u8;
const PERSIST: u8 = xvs_conn_flags::XVS_CONN_F_PERSIST.0 as u8;
const OPS: u8 = xvs_conn_flags::XVS_CONN_F_OPS.0 as u8;

/// The index of a state's limit in `xvs_expiry_cfg.timeout_ns`: a state
/// number past the known ones times out as NONE, as in the kernel's scan.
fn state_index(state: u32) -> usize {
    if state < xvs_state::XVS_S_LAST.0 {
        state as usize
    } else {
        xvs_state::XVS_S_NONE.0 as usize
    }
}

/// The expiry scan's limits for these timeouts (`ipvsadm --set`; the
/// other states have IPVS's fixed timeouts), as of now.
pub fn expiry_cfg(t: &Timeouts) -> xvs_expiry_cfg {
    let mut cfg = xvs_expiry_cfg {
        ops_timeout_ns: u64::from(t.udp) * 1_000_000_000,
        orphan_grace_ns: 1_000_000_000,
        now_ns: monotonic_ns(),
        ..Default::default()
    };
    for (st, limit) in cfg.timeout_ns.iter_mut().enumerate() {
        let state = ConnState::from_u8(st as u8).unwrap_or(ConnState::None);
        *limit = u64::from(state.timeout_secs(t)) * 1_000_000_000;
    }
    cfg
}

impl Dataplane {
    /// Deletes both entries of every connection idle longer than its
    /// state's timeout, adjusting `DEST_CONNS` (and OVERLOAD, as
    /// `ip_vs_unbind_dest`) by the state the entry had when it was
    /// deleted. Also removes orphaned reply entries, one-packet reply
    /// entries idle longer than the udp timeout, and persistence templates
    /// that control no connection and were last used longer than their
    /// timeout ago. Returns the number of connections expired.
    ///
    /// The table is scanned in the kernel (`xvs_expiry_scan`), which
    /// reports only the entries to act on; each is re-checked here before
    /// it is deleted.
    pub fn expire_conns(&self, timeouts: &Timeouts) -> Result<u64, Error> {
        self.expire_conns_at(timeouts, monotonic_ns())
    }

    /// [`Dataplane::expire_conns`] as if [`monotonic_ns`] read `now`:
    /// tests of idle times longer than a fresh machine's uptime.
    pub fn expire_conns_at(&self, timeouts: &Timeouts, now: u64) -> Result<u64, Error> {
        let mut cfg = expiry_cfg(timeouts);
        cfg.now_ns = now;
        let Some(orphans) = self.scan_clock.start(now) else {
            return Ok(0);
        };
        if !orphans {
            cfg.orphan_grace_ns = u64::MAX;
        }
        let (recs, visited) = self.expiry_scan(&cfg, self.expiry.is_some())?;
        self.scan_clock.done(now, visited);
        let mut thresholds: HashMap<u32, (u32, u32)> = HashMap::new();
        let mut n = 0;
        // Live connections under a persistence template: (key, service).
        let mut persistent: Vec<(xvs_conn_key, u32)> = Vec::new();
        let idle_past = |c: &xvs_conn, limit: u64| now.saturating_sub(c.last_seen_ns) > limit;
        let state_limit = |c: &xvs_conn| cfg.timeout_ns[state_index(c.state)];
        for r in &recs {
            let k = &r.key;
            let live = |k: &xvs_conn_key| -> Result<Option<xvs_conn>, Error> {
                lookup(&self.maps.conn, k, "CONN_MAP lookup")
            };
            match xvs_expiry_kind(r.kind as u32) {
                xvs_expiry_kind::XVS_EXP_PERSIST => persistent.push((*k, r.svc_id)),
                // Re-checked: a datagram may have refreshed it.
                xvs_expiry_kind::XVS_EXP_OPS
                    if live(k)?.is_some_and(|c| idle_past(&c, cfg.ops_timeout_ns)) =>
                {
                    let _ = self.maps.conn.delete(bytes(k));
                }
                xvs_expiry_kind::XVS_EXP_ORPHAN => {
                    // Orphan: its forward entry is gone or belongs to another
                    // connection (half-finished delete).
                    let Some(c) = live(k)? else { continue };
                    let mine = live(&c.peer)?.is_some_and(|f| bytes(&f.peer) == bytes(k));
                    if !mine && idle_past(&c, cfg.orphan_grace_ns) {
                        let _ = self.maps.conn.delete(bytes(k));
                    }
                }
                xvs_expiry_kind::XVS_EXP_IDLE => {
                    // The scan ran a moment ago: re-check the live entry,
                    // then delete it and account for the state it had.
                    match live(k)? {
                        Some(c) if idle_past(&c, state_limit(&c)) => {}
                        Some(c) => {
                            if c.flags & PERSIST != 0 {
                                persistent.push((*k, c.svc_id));
                            }
                            continue;
                        }
                        None => continue,
                    }
                    let Some(v) = mapio::take(&self.maps.conn, bytes(k))? else {
                        continue;
                    };
                    let cur: xvs_conn = from_bytes(&v);
                    if cur.flags & PERSIST != 0 {
                        self.sip_forget_conn(k);
                    }
                    // DR/TUN connections have no reply entry; their `peer`
                    // key may be a NAT connection's reply entry, which must
                    // stay. So must one a newer connection took over.
                    if cur.fwd == xvs_fwd::XVS_FWD_MASQ.0 as u8
                        && live(&cur.peer)?.is_some_and(|r| bytes(&r.peer) == bytes(k))
                    {
                        let _ = self.maps.conn.delete(bytes(&cur.peer));
                    }
                    let th = *thresholds
                        .entry(cur.dest_id)
                        .or_insert_with(|| self.thresholds(cur.dest_id));
                    self.dest_conns.unbind(cur.dest_id, cur.state, th);
                    n += 1;
                }
                _ => {}
            }
        }
        self.expire_templates(&persistent, now)?;
        self.sip_expire(&persistent, now)?;
        Ok(n)
    }

    /// The entries [`Dataplane::expire_conns`] acts on, and how many
    /// entries were looked at: from the kernel's scan (`in_kernel`), or by
    /// reading the whole table (kernels without BTF). Both give the same
    /// records; tests compare them.
    #[doc(hidden)]
    pub fn expiry_scan(
        &self,
        cfg: &xvs_expiry_cfg,
        in_kernel: bool,
    ) -> Result<(Vec<xvs_expiry_rec>, u64), Error> {
        if in_kernel {
            return self.kernel_scan(cfg);
        }
        self.table_scan(cfg)
    }

    /// The records of `xvs_expiry_scan`, run once with `cfg`.
    fn kernel_scan(&self, cfg: &xvs_expiry_cfg) -> Result<(Vec<xvs_expiry_rec>, u64), Error> {
        let Some(Expiry {
            link, cfg: cfg_map, ..
        }) = &self.expiry
        else {
            return Err(Error::Abi("the expiry scan is not loaded".into()));
        };
        cfg_map
            .update(bytes(&0u32), bytes(cfg), MapFlags::ANY)
            .map_err(bpf_err("XVS_EXPIRY_CFG update"))?;
        let mut it = libbpf_rs::Iter::new(link).map_err(bpf_err("expiry scan"))?;
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut it, &mut out).map_err(|source| Error::Io {
            context: "reading the expiry scan".into(),
            source,
        })?;
        let visited = lookup::<_, xvs_expiry_cfg>(cfg_map, &0u32, "XVS_EXPIRY_CFG lookup")?
            .map_or(0, |c| c.visited);
        let rs = size_of::<xvs_expiry_rec>();
        Ok((out.chunks_exact(rs).map(from_bytes).collect(), visited))
    }

    /// The same records from a read of the whole table (kernels without
    /// the iterator).
    fn table_scan(&self, cfg: &xvs_expiry_cfg) -> Result<(Vec<xvs_expiry_rec>, u64), Error> {
        let now = cfg.now_ns;
        let conns = self.raw_conns()?;
        // Forward key -> its reply key: a reply entry whose forward entry
        // points back at it is no orphan.
        let fwd_peer: HashMap<ConnKeyBytes, ConnKeyBytes> = conns
            .iter()
            .filter(|(_, c)| c.flags & REPLY == 0)
            .map(|(k, c)| (conn_key_bytes(k), conn_key_bytes(&c.peer)))
            .collect();
        let mut out = Vec::new();
        for (k, c) in &conns {
            let idle = now.saturating_sub(c.last_seen_ns);
            let kind = if c.flags & REPLY != 0 {
                if c.flags & OPS != 0 {
                    if idle <= cfg.ops_timeout_ns {
                        continue;
                    }
                    xvs_expiry_kind::XVS_EXP_OPS
                } else {
                    if idle <= cfg.orphan_grace_ns
                        || fwd_peer.get(&conn_key_bytes(&c.peer)) == Some(&conn_key_bytes(k))
                    {
                        continue;
                    }
                    xvs_expiry_kind::XVS_EXP_ORPHAN
                }
            } else if idle > cfg.timeout_ns[state_index(c.state)] {
                xvs_expiry_kind::XVS_EXP_IDLE
            } else if c.flags & PERSIST != 0 {
                xvs_expiry_kind::XVS_EXP_PERSIST
            } else {
                continue;
            };
            out.push(xvs_expiry_rec {
                key: *k,
                svc_id: c.svc_id,
                kind: kind.0 as u8,
                flags: c.flags,
                ..Default::default()
            });
        }
        Ok((out, conns.len() as u64))
    }

    /// Deletes the persistence templates that no live connection uses
    /// (`persistent`: the live connections under one) and that were last
    /// used longer than their timeout ago.
    fn expire_templates(&self, persistent: &[(xvs_conn_key, u32)], now: u64) -> Result<(), Error> {
        let svcs = if persistent.is_empty() {
            HashMap::new()
        } else {
            self.svc_index()?
        };
        let users: HashSet<TmplKeyBytes> = persistent
            .iter()
            .filter_map(|(k, svc)| tmpl_key_of(k, svcs.get(svc)))
            .map(|tk| tmpl_key_bytes(&tk))
            .collect();
        for (tk, t) in self.read_all::<xvs_tmpl_key, xvs_tmpl>(&self.maps.persist)? {
            if users.contains(bytes(&tk)) {
                continue;
            }
            let limit = t.timeout as u64 * 1_000_000_000;
            if now.saturating_sub(t.last_seen_ns) <= limit {
                continue;
            }
            match self.maps.persist.lookup(bytes(&tk), MapFlags::ANY) {
                Ok(Some(v))
                    if now.saturating_sub(from_bytes::<xvs_tmpl>(&v).last_seen_ns) > limit => {}
                _ => continue,
            }
            if let Ok(Some(v)) = mapio::take(&self.maps.persist, bytes(&tk)) {
                let cur: xvs_tmpl = from_bytes(&v);
                if let Some(rt) = self.dest_conns.slot(cur.dest_id) {
                    rt.persist.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn every_state_gets_its_kernel_timeout() {
        let t = Timeouts {
            tcp: 1000,
            tcp_fin: 100,
            udp: 30,
        };
        let cfg = expiry_cfg(&t);
        let at = |s: ConnState| cfg.timeout_ns[s as usize];
        assert_eq!(at(ConnState::Established), 1000 * S);
        assert_eq!(at(ConnState::FinWait), 100 * S);
        assert_eq!(at(ConnState::Udp), 30 * S);
        assert_eq!(cfg.ops_timeout_ns, 30 * S);
        // SCTP: sctp_timeouts[], which --set does not change.
        assert_eq!(at(ConnState::SctpNone), 2 * S);
        assert_eq!(at(ConnState::SctpInit1), 4 * S);
        assert_eq!(at(ConnState::SctpRejected), 4 * S);
        assert_eq!(at(ConnState::SctpEstablished), 900 * S);
        for s in [
            ConnState::SctpInit,
            ConnState::SctpCookieSent,
            ConnState::SctpCookieEchoed,
            ConnState::SctpShutdownAckSent,
            ConnState::SctpClosed,
        ] {
            assert_eq!(at(s), 61 * S, "{s:?}");
        }
        // The slots between TCP's and SCTP's states (12: the template
        // mark, 13-15 unused) expire as NONE.
        for n in 12..ConnState::SCTP_BASE as usize {
            assert_eq!(cfg.timeout_ns[n], 2 * S, "{n}");
        }
        assert_eq!(cfg.timeout_ns.len(), ConnState::SctpClosed as usize + 1);
        assert_eq!(state_index(99), xvs_state::XVS_S_NONE.0 as usize);
    }
}
