//! Dests: their `DEST_MAP` slots (forwarding method, tunnel, weight and
//! thresholds), taking them out of service and removing them with what
//! refers to them, and their connection counts and OVERLOAD flag.

use std::sync::atomic::Ordering;

use libbpf_rs::{MapCore, MapFlags};
use log::warn;
use xvs_core::model::{Dest, FwdMethod, TunCsum, TunType};
use xvs_core::sched::persist;

use crate::abi::{
    as_bytes as bytes, xvs_conn_flags, xvs_dest, xvs_dest_flags, xvs_dest_nh, xvs_fwd, xvs_tmpl,
    xvs_tmpl_key, xvs_tun_flags, xvs_tun_type,
};
use crate::dataplane::Dataplane;
use crate::dest_conns::{DestRt, OVERLOAD};
use crate::error::{bpf_err, Error};
use crate::maps::lookup;
use crate::nexthop::Via;
use crate::repr::{be16, ipv4_only};

impl Dataplane {
    /// Creates or updates a dest slot, for every forwarding method:
    ///
    /// * `Masq`: NAT.
    /// * `Route`: direct routing; the real server must be on a link of the
    ///   director.
    /// * `Tunnel`: IPIP, or GUE to `tun_port` (`tun_csum`: `NoCsum` or
    ///   `Csum`).
    ///
    /// `Route` and `Tunnel` dests get their next hop (`DEST_NH`) resolved
    /// here when the route and neighbour are known; otherwise, as with
    /// IPVS, the dest is accepted anyway and its packets are dropped
    /// (counted) until [`Dataplane::refresh_nexthops`] finds it. A dest at
    /// one of the director's own addresses, of any method, is local: its
    /// packets go to the director's stack (NAT ones rewritten first).
    ///
    /// Errors: `--tun-type gre` and `--tun-remcsum`
    /// ([`Error::Unsupported`]); GUE without a port ([`Error::Invalid`]).
    pub fn upsert_dest(&self, dest_id: u32, svc_id: u32, dest: &Dest) -> Result<(), Error> {
        self.check_dest_id(dest_id)?;
        self.check_svc_id(svc_id)?;
        let addr = ipv4_only(dest.addr, "real server")?;
        let val = dest_value(svc_id, dest)?;
        // __ip_vs_update_dest: a new upper threshold of 0, or one above
        // the old, clears OVERLOAD (a fresh slot's old threshold is 0).
        let old_u = self.dest_slot(dest_id)?.map_or(0, |d| d.u_threshold);
        if let Some(rt) = self.dest_conns.slot(dest_id) {
            let cur = rt.flags.load(Ordering::SeqCst) & OVERLOAD != 0;
            if !persist::overload_after_edit(old_u, dest.u_threshold, cur) {
                rt.flags.fetch_and(!OVERLOAD, Ordering::SeqCst);
            }
        }
        // The next hop first: a dest must not be scheduled with the next
        // hop (or locality) of the slot's previous dest.
        if let Err(e) = self.refresh_nexthop(dest_id, addr, Via::from(dest.fwd)) {
            warn!("next hop of real server {}: {e}", dest.addr);
        }
        self.maps
            .dest
            .update(bytes(&dest_id), bytes(&val), MapFlags::ANY)
            .map_err(bpf_err("DEST_MAP update"))
    }

    /// The `DEST_MAP` slot, when it holds a dest.
    pub(crate) fn dest_slot(&self, dest_id: u32) -> Result<Option<xvs_dest>, Error> {
        Ok(
            lookup::<_, xvs_dest>(&self.maps.dest, &dest_id, "DEST_MAP lookup")?
                .filter(|d| d.flags & xvs_dest_flags::XVS_DEST_F_AVAILABLE.0 as u8 != 0),
        )
    }

    /// `(u_threshold, l_threshold)` of a dest (0, 0 when the slot is free).
    pub(crate) fn thresholds(&self, dest_id: u32) -> (u32, u32) {
        self.dest_slot(dest_id)
            .ok()
            .flatten()
            .map_or((0, 0), |d| (d.u_threshold, d.l_threshold))
    }

    /// Takes a dest out of service as IPVS's dest trash does: its slot is
    /// marked unavailable (no new connection; packets of its connections
    /// are dropped, counter `drop_dest_gone`, as with IPVS's default
    /// `expire_nodest_conn` 0), and its connections, templates, counts,
    /// counters and next hop stay, so that [`Dataplane::upsert_dest`] can
    /// bring it back as it was. Take it out of its service's schedule
    /// first. A free slot: `Ok`.
    pub fn trash_dest(&self, dest_id: u32) -> Result<(), Error> {
        self.check_dest_id(dest_id)?;
        let Some(mut d) = self.dest_slot(dest_id)? else {
            return Ok(());
        };
        d.flags &= !(xvs_dest_flags::XVS_DEST_F_AVAILABLE.0 as u8);
        self.maps
            .dest
            .update(bytes(&dest_id), bytes(&d), MapFlags::ANY)
            .map_err(bpf_err("DEST_MAP update"))
    }

    /// Removes a dest: marks its slot unavailable, deletes its connections
    /// (both entries) and persistence templates, takes it out of lblc/lblcr
    /// caches, resets its `DEST_CONNS` and stats. Returns how many
    /// connections were deleted. Rebuild the service ring without it first.
    pub fn remove_dest(&self, dest_id: u32) -> Result<u64, Error> {
        self.check_dest_id(dest_id)?;
        self.maps
            .dest
            .update(bytes(&dest_id), bytes(&xvs_dest::default()), MapFlags::ANY)
            .map_err(bpf_err("DEST_MAP clear"))?;
        self.maps
            .dest_nh
            .update(
                bytes(&dest_id),
                bytes(&xvs_dest_nh::default()),
                MapFlags::ANY,
            )
            .map_err(bpf_err("DEST_NH clear"))?;
        let mut n = 0;
        for (k, c) in self.raw_conns()? {
            if c.dest_id != dest_id {
                continue;
            }
            let _ = self.maps.conn.delete(bytes(&k));
            if c.flags & xvs_conn_flags::XVS_CONN_F_REPLY.0 as u8 == 0 {
                n += 1;
                if c.flags & xvs_conn_flags::XVS_CONN_F_PERSIST.0 as u8 != 0 {
                    self.sip_forget_conn(&k);
                }
            }
        }
        for (tk, t) in self.read_all::<xvs_tmpl_key, xvs_tmpl>(&self.maps.persist)? {
            if t.dest_id == dest_id {
                let _ = self.maps.persist.delete(bytes(&tk));
            }
        }
        self.sip_delete_where(|t| t.dest_id == dest_id)?;
        self.drop_dest_from_locality(dest_id)?;
        self.dest_conns.reset(dest_id);
        self.zero_dest_stats(dest_id)?;
        Ok(n)
    }

    /// The `DEST_CONNS` slot of a dest id within the table.
    fn dest_rt(&self, dest_id: u32) -> Result<DestRt<'_>, Error> {
        self.check_dest_id(dest_id)?;
        self.dest_conns.slot(dest_id).ok_or(Error::IdOutOfRange {
            what: "dest",
            id: dest_id,
            max: self.dest_conns.entries(),
        })
    }

    /// `(active, inactive)` connections of a dest (ESTABLISHED vs other).
    pub fn dest_conns(&self, dest_id: u32) -> Result<(u32, u32), Error> {
        let rt = self.dest_rt(dest_id)?;
        Ok((
            rt.active.load(Ordering::SeqCst).max(0) as u32,
            rt.inactive.load(Ordering::SeqCst).max(0) as u32,
        ))
    }

    /// Persistence templates pointing at a dest (`PersistConn`).
    pub fn persist_conns(&self, dest_id: u32) -> Result<u32, Error> {
        let rt = self.dest_rt(dest_id)?;
        Ok(rt.persist.load(Ordering::SeqCst).max(0) as u32)
    }

    /// The dest's `IP_VS_DEST_F_OVERLOAD` flag (thresholds `-x`/`-y`).
    pub fn dest_overloaded(&self, dest_id: u32) -> Result<bool, Error> {
        let rt = self.dest_rt(dest_id)?;
        Ok(rt.flags.load(Ordering::SeqCst) & OVERLOAD != 0)
    }

    /// Sets or clears OVERLOAD by hand (tests; the program and expiry
    /// maintain it from the thresholds otherwise).
    pub fn set_dest_overloaded(&self, dest_id: u32, on: bool) -> Result<(), Error> {
        let rt = self.dest_rt(dest_id)?;
        if on {
            rt.flags.fetch_or(OVERLOAD, Ordering::SeqCst);
        } else {
            rt.flags.fetch_and(!OVERLOAD, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// The `DEST_MAP` value of `dest` in service `svc_id`; refuses the
/// tunnel options the program does not implement.
fn dest_value(svc_id: u32, dest: &Dest) -> Result<xvs_dest, Error> {
    let mut val = xvs_dest {
        addr: crate::repr::xaddr(dest.addr),
        port: be16(dest.port),
        fwd: xvs_fwd::XVS_FWD_MASQ.0 as u8,
        flags: xvs_dest_flags::XVS_DEST_F_AVAILABLE.0 as u8,
        svc_id,
        weight: dest.weight,
        u_threshold: dest.u_threshold,
        l_threshold: dest.l_threshold,
        tun_port: 0,
        tun_type: 0,
        tun_flags: 0,
        af: crate::repr::af_of(dest.addr),
        pad: [0; 3],
    };
    match dest.fwd {
        FwdMethod::Masq => {}
        FwdMethod::Route => val.fwd = xvs_fwd::XVS_FWD_ROUTE.0 as u8,
        FwdMethod::Tunnel => {
            val.fwd = xvs_fwd::XVS_FWD_TUNNEL.0 as u8;
            val.tun_type = match dest.tun_type {
                TunType::Ipip => xvs_tun_type::XVS_TUN_IPIP.0 as u8,
                TunType::Gue if dest.tun_port == 0 => {
                    return Err(Error::Invalid(
                        "tunnel type gue needs a tunnel port (--tun-port)".into(),
                    ))
                }
                TunType::Gue => xvs_tun_type::XVS_TUN_GUE.0 as u8,
                TunType::Gre => {
                    return Err(Error::Unsupported(
                        "tunnel type gre (--tun-type gre); use ipip or gue".into(),
                    ))
                }
            };
            val.tun_flags =
                match dest.tun_csum {
                    TunCsum::NoCsum => 0,
                    // IPIP has no checksum of its own (IPVS ignores it too).
                    TunCsum::Csum if dest.tun_type == TunType::Ipip => 0,
                    TunCsum::Csum => xvs_tun_flags::XVS_TUN_F_CSUM.0 as u8,
                    TunCsum::RemCsum => return Err(Error::Unsupported(
                        "remote checksum offload (--tun-remcsum); use --tun-csum or --tun-nocsum"
                            .into(),
                    )),
                };
            if dest.tun_type == TunType::Gue {
                val.tun_port = be16(dest.tun_port);
            }
        }
    }
    Ok(val)
}
