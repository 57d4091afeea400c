//! Connections and persistence templates installed from a sync master
//! (IPVS's connection synchronisation, backup side): the entries the
//! program would have made had it scheduled the flow itself, so that when
//! the VIP moves here established flows go on to the same real server.
//! xvsd decodes the messages and resolves service and dest slots; this
//! only writes the maps.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;

use libbpf_rs::{MapCore, MapFlags};
use xvs_core::model::{svc_flags, ConnState, FwdMethod};

use crate::abi::{as_bytes as bytes, *};
use crate::clock::monotonic_ns;
use crate::conns::{Conn, Template};
use crate::dataplane::Dataplane;
use crate::error::{bpf_err, Error};
use crate::maps::lookup;
use crate::repr::{be16, bytes16, fwd_code, fwd_of, ip4_of, port_of, xaddr4, AF_INET};

/// What installing a synchronised connection did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// A new connection (both entries for NAT).
    New,
    /// An existing one, refreshed (and its state changed, if it did).
    Updated,
}

fn active(state: u32) -> bool {
    ConnState::from_u8(state as u8).is_some_and(ConnState::is_active)
}

impl Dataplane {
    /// Installs or refreshes connection `c` (its forward entry, and the
    /// reply entry of a NAT connection) as last seen now, binding it to
    /// `c.dest_id` as the program binds a new connection (`DEST_CONNS`
    /// active or inactive by state). An existing entry keeps its slot and
    /// moves between active and inactive when its state does; one bound to
    /// another dest (the master rescheduled the tuple) is rebound.
    pub fn install_conn(&self, c: &Conn) -> Result<Installed, Error> {
        self.check_dest_id(c.dest_id)?;
        self.check_svc_id(c.svc_id)?;
        let proto = c.proto.number();
        let fkey = xvs_conn_key::new(proto, c.caddr, c.cport, c.vaddr, c.vport);
        let rkey = xvs_conn_key::new(proto, c.daddr, c.dport, c.caddr, c.cport);
        // ConnState numbers are the kernel's, as xvs_state's.
        let state = c.state as u32;
        let now = monotonic_ns();
        let mut flags = 0u8;
        if c.persistent {
            flags |= xvs_conn_flags::XVS_CONN_F_PERSIST.0 as u8;
        }
        let old: Option<xvs_conn> = lookup(&self.maps.conn, &fkey, "CONN_MAP lookup")?;
        let mut val = xvs_conn {
            last_seen_ns: now,
            peer: rkey,
            svc_id: c.svc_id,
            dest_id: c.dest_id,
            state,
            fwd: fwd_code(c.fwd),
            flags,
            pad: 0,
        };
        if let Some(o) = &old {
            // A template's mark made by this director's own traffic stays.
            val.flags |= o.flags & xvs_conn_flags::XVS_CONN_F_ASSURED.0 as u8;
        }
        self.maps
            .conn
            .update(bytes(&fkey), bytes(&val), MapFlags::ANY)
            .map_err(bpf_err("CONN_MAP update"))?;
        if c.fwd == FwdMethod::Masq {
            let mut reply = val;
            reply.peer = fkey;
            reply.flags = xvs_conn_flags::XVS_CONN_F_REPLY.0 as u8;
            if let Err(e) = self
                .maps
                .conn
                .update(bytes(&rkey), bytes(&reply), MapFlags::ANY)
            {
                if old.is_none() {
                    let _ = self.maps.conn.delete(bytes(&fkey));
                }
                return Err(bpf_err("CONN_MAP update")(e));
            }
        }
        if let Some(o) = &old {
            if o.dest_id != c.dest_id {
                // The old dest's reply entry, if the tuple changed, is an
                // orphan now; the expiry removes it.
                self.dest_conns.unbind(o.dest_id, o.state, (0, 0));
                self.bind(c.dest_id, state);
            } else if active(o.state) != active(state) {
                if let Some(rt) = self.dest_conns.slot(c.dest_id) {
                    let (from, to) = if active(state) {
                        (&rt.inactive, &rt.active)
                    } else {
                        (&rt.active, &rt.inactive)
                    };
                    from.fetch_sub(1, Ordering::SeqCst);
                    to.fetch_add(1, Ordering::SeqCst);
                }
            }
            return Ok(Installed::Updated);
        }
        self.bind(c.dest_id, state);
        Ok(Installed::New)
    }

    /// Counts one more connection in `state` on `dest_id`.
    fn bind(&self, dest_id: u32, state: u32) {
        if let Some(rt) = self.dest_conns.slot(dest_id) {
            if active(state) {
                rt.active.fetch_add(1, Ordering::SeqCst);
            } else {
                rt.inactive.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// Installs or refreshes persistence template `t` (key: protocol,
    /// masked client address, virtual address and port), as last used
    /// now, pointing at `t.dest_id`; `DEST_CONNS.persist` counts it.
    pub fn install_template(&self, t: &Template) -> Result<Installed, Error> {
        self.check_dest_id(t.dest_id)?;
        self.check_svc_id(t.svc_id)?;
        // A fwmark template: <IPPROTO_IP, caddr, 0, htonl(mark), 0>.
        let key = if t.fwmark != 0 {
            xvs_tmpl_key {
                caddr: xaddr4(t.caddr),
                vaddr: xaddr4(t.fwmark.into()),
                vport: 0,
                proto: 0,
                af: AF_INET,
            }
        } else {
            xvs_tmpl_key {
                caddr: xaddr4(t.caddr),
                vaddr: xaddr4(t.vaddr),
                vport: be16(t.vport),
                proto: t.proto.number(),
                af: AF_INET,
            }
        };
        let old: Option<xvs_tmpl> = match &t.pe_data {
            Some(callid) => lookup::<_, xvs_sip_tmpl>(
                &self.maps.sip_tmpl,
                &crate::sip::sip_key(key, callid),
                "SIP_TMPL lookup",
            )?
            .map(|v| v.t),
            None => lookup(&self.maps.persist, &key, "PERSIST_MAP lookup")?,
        };
        let mut flags = 0u16;
        if t.assured
            || old.is_some_and(|o| {
                o.flags & xvs_tmpl_flags::XVS_TMPL_F_ASSURED.0 as u16 != 0 && o.dest_id == t.dest_id
            })
        {
            flags |= xvs_tmpl_flags::XVS_TMPL_F_ASSURED.0 as u16;
        }
        let val = xvs_tmpl {
            last_seen_ns: monotonic_ns(),
            svc_id: t.svc_id,
            dest_id: t.dest_id,
            daddr: xaddr4(t.daddr),
            dport: be16(t.dport),
            flags,
            timeout: t.timeout_secs,
            daf: AF_INET,
            pad: [0; 3],
            pad2: 0,
        };
        match &t.pe_data {
            // A --pe sip template: keyed with its Call-ID too.
            Some(callid) => {
                self.sip_install(key, callid, val)?;
            }
            None => self
                .maps
                .persist
                .update(bytes(&key), bytes(&val), MapFlags::ANY)
                .map_err(bpf_err("PERSIST_MAP update"))?,
        }
        let persist = |dest_id: u32, delta: i32| {
            if let Some(rt) = self.dest_conns.slot(dest_id) {
                rt.persist.fetch_add(delta, Ordering::SeqCst);
            }
        };
        match old {
            Some(o) if o.dest_id == t.dest_id => Ok(Installed::Updated),
            Some(o) => {
                persist(o.dest_id, -1);
                persist(t.dest_id, 1);
                Ok(Installed::Updated)
            }
            None => {
                persist(t.dest_id, 1);
                Ok(Installed::New)
            }
        }
    }
}

/// Where synchronised entries go: services by (protocol, VIP, port) and
/// their available dests by address and port, as the maps hold them now.
#[derive(Debug, Default)]
pub struct SyncIndex {
    services: HashMap<(u8, Ipv4Addr, u16), (u32, bool)>,
    dests: HashMap<(u32, Ipv4Addr, u16), (u32, FwdMethod)>,
}

impl SyncIndex {
    /// Adds a service (tests, and callers that know the table otherwise).
    pub fn add_service(
        &mut self,
        proto: u8,
        vaddr: Ipv4Addr,
        vport: u16,
        id: u32,
        persistent: bool,
    ) {
        self.services
            .insert((proto, vaddr, vport), (id, persistent));
    }

    /// Adds the fwmark service of `mark` (`SVC_MAP` keys it `{ htonl(mark),
    /// 0, 0 }`, which [`Dataplane::sync_index`] reads back as protocol 0,
    /// the mark as address, port 0).
    pub fn add_fwmark_service(&mut self, mark: u32, id: u32, persistent: bool) {
        self.add_service(0, Ipv4Addr::from(mark), 0, id, persistent);
    }

    /// The service slot of the fwmark service of `mark` and whether it is
    /// persistent.
    pub fn fwmark_service(&self, mark: u32) -> Option<(u32, bool)> {
        if mark == 0 {
            return None;
        }
        self.service(0, Ipv4Addr::from(mark), 0)
    }

    /// Service id → mark, for the fwmark services.
    pub fn service_marks(&self) -> HashMap<u32, u32> {
        self.services
            .iter()
            .filter(|((proto, _, _), _)| *proto == 0)
            .map(|((_, addr, _), (id, _))| (*id, u32::from(*addr)))
            .collect()
    }

    /// Adds a dest of service `svc_id`.
    pub fn add_dest(&mut self, svc_id: u32, daddr: Ipv4Addr, dport: u16, id: u32, fwd: FwdMethod) {
        self.dests.insert((svc_id, daddr, dport), (id, fwd));
    }

    /// The service slot of `proto vaddr:vport` and whether it is
    /// persistent (`-p`).
    pub fn service(&self, proto: u8, vaddr: Ipv4Addr, vport: u16) -> Option<(u32, bool)> {
        self.services.get(&(proto, vaddr, vport)).copied()
    }

    /// The dest slot of `daddr:dport` in service `svc_id`, and how it is
    /// forwarded to.
    pub fn dest(&self, svc_id: u32, daddr: Ipv4Addr, dport: u16) -> Option<(u32, FwdMethod)> {
        self.dests.get(&(svc_id, daddr, dport)).copied()
    }
}

impl Dataplane {
    /// Reads [`SyncIndex`] from `SVC_MAP` and `DEST_MAP` (dests in the
    /// trash or otherwise unavailable are left out).
    pub fn sync_index(&self) -> Result<SyncIndex, Error> {
        let persistent = svc_flags::PERSISTENT;
        let services = self
            .read_all::<xvs_svc_key, xvs_svc>(&self.maps.svc)?
            .into_iter()
            .map(|(k, s)| {
                (
                    (k.proto, ip4_of(&k.addr), port_of(k.port)),
                    (s.id, s.flags & persistent != 0),
                )
            })
            .collect();
        let available = xvs_dest_flags::XVS_DEST_F_AVAILABLE.0 as u8;
        let dests = self
            .read_all::<u32, xvs_dest>(&self.maps.dest)?
            .into_iter()
            .filter(|(_, d)| d.flags & available != 0 && bytes16(&d.addr) != [0; 16])
            .map(|(id, d)| {
                (
                    (d.svc_id, ip4_of(&d.addr), port_of(d.port)),
                    (id, fwd_of(d.fwd)),
                )
            })
            .collect();
        Ok(SyncIndex { services, dests })
    }
}
