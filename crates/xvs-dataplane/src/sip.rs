//! `--pe sip` templates as user space sees them: `SIP_TMPL` (the program's
//! templates keyed with the Call-ID, which they keep as IPVS's `pe_data`)
//! and `SIP_CTL` (the template each connection was made through, IPVS's
//! `cp->control`). Listing, the deletes that go with a service or dest,
//! expiry, and installing a synchronised template.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use libbpf_rs::{MapCore, MapFlags};
use xvs_core::sched::persist::{callid_hash, PE_DATA_MAX};

use crate::abi::{as_bytes as bytes, from_bytes, xvs_conn_key, xvs_sip_key, xvs_sip_tmpl};
use crate::abi::{xvs_tmpl, xvs_tmpl_key};
use crate::dataplane::Dataplane;
use crate::dataplane::RawConn;
use crate::error::{bpf_err, Error};
use crate::mapio;
use crate::repr::{conn_key_bytes, sip_key_bytes, ConnKeyBytes, SipKeyBytes};

/// The `SIP_TMPL` key of template key `tk` and Call-ID `callid`.
pub(crate) fn sip_key(tk: xvs_tmpl_key, callid: &[u8]) -> xvs_sip_key {
    xvs_sip_key {
        tk,
        callid_len: callid.len() as u32,
        callid_hash: callid_hash(callid),
    }
}

/// The Call-ID a template keeps.
pub(crate) fn callid_of(t: &xvs_sip_tmpl, k: &xvs_sip_key) -> Vec<u8> {
    let n = (k.callid_len as usize).min(PE_DATA_MAX);
    t.callid[..n].to_vec()
}

impl Dataplane {
    /// Every `SIP_TMPL` entry.
    pub(crate) fn sip_templates_raw(&self) -> Result<Vec<(xvs_sip_key, xvs_sip_tmpl)>, Error> {
        self.read_all(&self.maps.sip_tmpl)
    }

    /// How many live connections each SIP template controls.
    pub(crate) fn sip_users(&self, conns: &[RawConn]) -> Result<HashMap<SipKeyBytes, u32>, Error> {
        let ctl: HashMap<ConnKeyBytes, xvs_sip_key> = self
            .read_all::<xvs_conn_key, xvs_sip_key>(&self.maps.sip_ctl)?
            .into_iter()
            .map(|(k, v)| (conn_key_bytes(&k), v))
            .collect();
        let mut out = HashMap::new();
        if ctl.is_empty() {
            return Ok(out);
        }
        for (k, c) in conns {
            if c.flags & crate::conns::REPLY != 0 || c.flags & crate::conns::PERSIST == 0 {
                continue;
            }
            if let Some(sk) = ctl.get(&conn_key_bytes(k)) {
                *out.entry(sip_key_bytes(sk)).or_insert(0) += 1;
            }
        }
        Ok(out)
    }

    /// Deletes the SIP templates `gone` picks, as the program's templates
    /// leave `DEST_CONNS.persist`.
    pub(crate) fn sip_delete_where(&self, gone: impl Fn(&xvs_tmpl) -> bool) -> Result<(), Error> {
        for (k, t) in self.sip_templates_raw()? {
            if gone(&t.t) && self.maps.sip_tmpl.delete(bytes(&k)).is_ok() {
                self.persist_sub(t.t.dest_id);
            }
        }
        Ok(())
    }

    /// How many connections are linked to a SIP template (`SIP_CTL`
    /// entries): each goes with its connection, none is left behind.
    pub fn sip_links(&self) -> Result<usize, Error> {
        Ok(self
            .read_all::<xvs_conn_key, xvs_sip_key>(&self.maps.sip_ctl)?
            .len())
    }

    /// The connection with forward key `k` is gone: so is its link.
    pub(crate) fn sip_forget_conn(&self, k: &xvs_conn_key) {
        let _ = self.maps.sip_ctl.delete(bytes(k));
    }

    /// Expiry of SIP templates: those no live connection uses (`live`:
    /// persistent forward keys) and idle past their timeout go.
    pub(crate) fn sip_expire(&self, live: &[(xvs_conn_key, u32)], now: u64) -> Result<(), Error> {
        let mut users: HashSet<SipKeyBytes> = HashSet::new();
        for (k, _) in live {
            if let Ok(Some(v)) = self.maps.sip_ctl.lookup(bytes(k), MapFlags::ANY) {
                users.insert(sip_key_bytes(&from_bytes::<xvs_sip_key>(&v)));
            }
        }
        for (k, t) in self.sip_templates_raw()? {
            let limit = u64::from(t.t.timeout) * 1_000_000_000;
            if users.contains(&sip_key_bytes(&k)) || now.saturating_sub(t.t.last_seen_ns) <= limit {
                continue;
            }
            // Re-read, as expire_templates does: a packet may have used
            // it since it was read.
            match self.maps.sip_tmpl.lookup(bytes(&k), MapFlags::ANY) {
                Ok(Some(v))
                    if now.saturating_sub(from_bytes::<xvs_sip_tmpl>(&v).t.last_seen_ns)
                        > limit => {}
                _ => continue,
            }
            if let Some(v) = mapio::take(&self.maps.sip_tmpl, bytes(&k))? {
                self.persist_sub(from_bytes::<xvs_sip_tmpl>(&v).t.dest_id);
            }
        }
        Ok(())
    }

    /// Writes template `val` with Call-ID `callid` under template key
    /// `tk`.
    pub(crate) fn sip_install(
        &self,
        tk: xvs_tmpl_key,
        callid: &[u8],
        val: xvs_tmpl,
    ) -> Result<(), Error> {
        let key = sip_key(tk, callid);
        let mut v = xvs_sip_tmpl {
            t: val,
            ..Default::default()
        };
        let n = callid.len().min(PE_DATA_MAX);
        v.callid[..n].copy_from_slice(&callid[..n]);
        self.maps
            .sip_tmpl
            .update(bytes(&key), bytes(&v), MapFlags::ANY)
            .map_err(bpf_err("SIP_TMPL update"))
    }

    fn persist_sub(&self, dest_id: u32) {
        if let Some(rt) = self.dest_conns.slot(dest_id) {
            rt.persist.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
