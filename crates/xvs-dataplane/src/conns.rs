//! Listing the connection table (`CONN_MAP`) and the persistence
//! templates (`PERSIST_MAP`), as `ipvsadm -Lc` shows them.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;

use xvs_core::model::{ConnState, FwdMethod, Protocol};
use xvs_core::sched::{self, persist};

use crate::abi::{
    as_bytes as bytes, xvs_conn_flags, xvs_conn_key, xvs_svc, xvs_svc_key, xvs_tmpl,
    xvs_tmpl_flags, xvs_tmpl_key,
};
use crate::dataplane::{Dataplane, RawConn};
use crate::error::Error;
use crate::repr::{
    addr_of, be16, fwd_of, ip4_of, port_of, proto_of, tmpl_key_bytes, xaddr, TmplKeyBytes,
};

/// One live connection (its forward entry), as `ipvsadm -Lc` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    /// Protocol.
    pub proto: Protocol,
    /// Client address.
    pub caddr: Ipv4Addr,
    /// Client port.
    pub cport: u16,
    /// Virtual address.
    pub vaddr: Ipv4Addr,
    /// Virtual port.
    pub vport: u16,
    /// Real server address.
    pub daddr: Ipv4Addr,
    /// Real server port.
    pub dport: u16,
    /// State (TCP and SCTP per IPVS's tables, `Udp` for UDP).
    pub state: ConnState,
    /// Forwarding method.
    pub fwd: FwdMethod,
    /// Service id.
    pub svc_id: u32,
    /// Dest id.
    pub dest_id: u32,
    /// Last packet, [`monotonic_ns`](crate::monotonic_ns) clock.
    pub last_seen_ns: u64,
    /// Controlled by a persistence template.
    pub persistent: bool,
}

/// One persistence template (`PERSIST_MAP`), as `ipvsadm -Lc` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Protocol of the connections it serves (TCP for a fwmark
    /// template, which serves every protocol: see `fwmark`).
    pub proto: Protocol,
    /// The mark of a fwmark service's template, IPVS's `<IPPROTO_IP,
    /// caddr, 0, mark, 0>` (`-Lc` prints protocol `IP`); 0 otherwise.
    /// `vaddr` is then the mark as an address, as IPVS stores it.
    pub fwmark: u32,
    /// Client address masked with the persistence netmask.
    pub caddr: Ipv4Addr,
    /// Virtual address.
    pub vaddr: Ipv4Addr,
    /// Virtual port, 0 for port-0 (and FTP) services.
    pub vport: u16,
    /// Real server address.
    pub daddr: Ipv4Addr,
    /// Real server port, 0 for port-0 (and FTP) services.
    pub dport: u16,
    /// Service id.
    pub svc_id: u32,
    /// Dest id.
    pub dest_id: u32,
    /// Creation or the last connection made through it.
    pub last_seen_ns: u64,
    /// Persistence timeout in seconds.
    pub timeout_secs: u32,
    /// Live connections it controls (at the time of listing).
    pub conns: u32,
    /// Forwarding method of its dest.
    pub fwd: FwdMethod,
    /// A connection it controls got established (TCP, SCTP) or answered
    /// (UDP).
    pub assured: bool,
    /// A `--pe sip` template's Call-ID (IPVS's `pe_data`); such a
    /// template is one per Call-ID besides the key above.
    pub pe_data: Option<Vec<u8>>,
}

/// `xvs_conn.flags` bits the listings look at.
pub(crate) const REPLY: u8 = xvs_conn_flags::XVS_CONN_F_REPLY.0 as u8;
pub(crate) const PERSIST: u8 = xvs_conn_flags::XVS_CONN_F_PERSIST.0 as u8;

impl Dataplane {
    /// Every `CONN_MAP` entry.
    pub(crate) fn raw_conns(&self) -> Result<Vec<RawConn>, Error> {
        self.read_all(&self.maps.conn)
    }

    /// Live connections (forward entries only).
    pub fn conns(&self) -> Result<Vec<Conn>, Error> {
        let reply = xvs_conn_flags::XVS_CONN_F_REPLY.0 as u8;
        let persistent = xvs_conn_flags::XVS_CONN_F_PERSIST.0 as u8;
        Ok(self
            .raw_conns()?
            .into_iter()
            .filter(|(_, c)| c.flags & reply == 0)
            .filter_map(|(k, c)| {
                Some(Conn {
                    proto: proto_of(k.proto)?,
                    caddr: ip4_of(&k.saddr),
                    cport: port_of(k.sport),
                    vaddr: ip4_of(&k.daddr),
                    vport: port_of(k.dport),
                    daddr: ip4_of(&c.peer.saddr),
                    dport: port_of(c.peer.sport),
                    state: ConnState::from_u8(c.state as u8).unwrap_or(ConnState::None),
                    fwd: fwd_of(c.fwd),
                    svc_id: c.svc_id,
                    dest_id: c.dest_id,
                    last_seen_ns: c.last_seen_ns,
                    persistent: c.flags & persistent != 0,
                })
            })
            .collect())
    }

    /// `CONN_MAP` entries (two per NAT connection) as the last expiry
    /// scan counted them (0 before the first): no table read.
    pub fn conn_entries(&self) -> u64 {
        self.scan_clock.entries.load(Ordering::Relaxed)
    }

    /// Number of connections (forward entries) in `CONN_MAP`.
    pub fn conn_count(&self) -> Result<u64, Error> {
        Ok(self
            .raw_conns()?
            .iter()
            .filter(|(_, c)| c.flags & xvs_conn_flags::XVS_CONN_F_REPLY.0 as u8 == 0)
            .count() as u64)
    }

    /// Service id → (virtual port, persistence netmask, mark), from
    /// `SVC_MAP`.
    pub(crate) fn svc_index(&self) -> Result<HashMap<u32, SvcIdx>, Error> {
        Ok(self
            .read_all::<xvs_svc_key, xvs_svc>(&self.maps.svc)?
            .into_iter()
            .map(|(k, s)| (s.id, (port_of(k.port), ip4_of(&s.netmask), s.fwmark)))
            .collect())
    }

    /// Persistence templates, with the number of live connections each
    /// controls.
    pub fn templates(&self) -> Result<Vec<Template>, Error> {
        let conns = self.raw_conns()?;
        let users = tmpl_users(&conns, &self.svc_index()?);
        let sip_users = self.sip_users(&conns)?;
        let mut out: Vec<Template> = self
            .read_all::<xvs_tmpl_key, xvs_tmpl>(&self.maps.persist)?
            .into_iter()
            .filter_map(|(k, t)| {
                let n = users.get(bytes(&k)).copied().unwrap_or(0);
                self.template_of(&k, &t, n, None)
            })
            .collect();
        for (k, t) in self.sip_templates_raw()? {
            let n = sip_users
                .get(&crate::repr::sip_key_bytes(&k))
                .copied()
                .unwrap_or(0);
            let callid = crate::sip::callid_of(&t, &k);
            out.extend(self.template_of(&k.tk, &t.t, n, Some(callid)));
        }
        Ok(out)
    }

    fn template_of(
        &self,
        k: &xvs_tmpl_key,
        t: &xvs_tmpl,
        conns: u32,
        pe_data: Option<Vec<u8>>,
    ) -> Option<Template> {
        let fwmark = if k.proto == 0 {
            u32::from(ip4_of(&k.vaddr))
        } else {
            0
        };
        Some(Template {
            proto: if fwmark != 0 {
                Protocol::Tcp
            } else {
                proto_of(k.proto)?
            },
            fwmark,
            caddr: ip4_of(&k.caddr),
            vaddr: ip4_of(&k.vaddr),
            vport: port_of(k.vport),
            daddr: ip4_of(&t.daddr),
            dport: port_of(t.dport),
            svc_id: t.svc_id,
            dest_id: t.dest_id,
            last_seen_ns: t.last_seen_ns,
            timeout_secs: t.timeout,
            conns,
            fwd: self
                .dest_slot(t.dest_id)
                .ok()
                .flatten()
                .map_or(FwdMethod::Masq, |d| fwd_of(d.fwd)),
            assured: t.flags & xvs_tmpl_flags::XVS_TMPL_F_ASSURED.0 as u16 != 0,
            pe_data,
        })
    }
}

/// What a template key needs of a service: virtual port, persistence
/// netmask, mark.
pub(crate) type SvcIdx = (u16, Ipv4Addr, u32);

/// The template key of a persistent connection's forward key
/// (`persist::persist_key`), given its service's port, netmask and mark.
pub(crate) fn tmpl_key_of(k: &xvs_conn_key, svc: Option<&SvcIdx>) -> Option<xvs_tmpl_key> {
    let &(svc_port, netmask, fwmark) = svc?;
    let flow = sched::FlowKey {
        proto: k.proto,
        saddr: addr_of(k.af, &k.saddr),
        sport: port_of(k.sport),
        daddr: addr_of(k.af, &k.daddr),
        dport: port_of(k.dport),
    };
    let pk = if fwmark != 0 {
        persist::persist_key_fwmark(fwmark, netmask.into(), &flow)
    } else {
        persist::persist_key(svc_port, netmask.into(), &flow)
    };
    Some(xvs_tmpl_key {
        caddr: xaddr(pk.caddr),
        vaddr: xaddr(pk.vaddr),
        vport: be16(pk.vport),
        proto: pk.proto,
        af: k.af,
    })
}

/// Template key → number of live connections it controls.
fn tmpl_users(conns: &[RawConn], svcs: &HashMap<u32, SvcIdx>) -> HashMap<TmplKeyBytes, u32> {
    let flag = xvs_conn_flags::XVS_CONN_F_PERSIST.0 as u8;
    let reply = xvs_conn_flags::XVS_CONN_F_REPLY.0 as u8;
    let mut out = HashMap::new();
    for (k, c) in conns {
        if c.flags & reply != 0 || c.flags & flag == 0 {
            continue;
        }
        if let Some(tk) = tmpl_key_of(k, svcs.get(&c.svc_id)) {
            *out.entry(tmpl_key_bytes(&tk)).or_insert(0) += 1;
        }
    }
    out
}
