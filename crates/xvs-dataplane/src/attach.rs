//! Attaching the program to interfaces and detaching it: XDP (native,
//! else generic) or a tc clsact ingress filter, with `xvs_local_out` on
//! the clsact egress hook beside either; and the other build a killed
//! daemon of the other mode left behind.

use std::ffi::CString;
use std::os::fd::AsFd;

use libbpf_rs::{MapCore, MapFlags, Xdp, XdpFlags, TC_INGRESS};
use log::{info, warn};

use crate::abi::{as_bytes as bytes, xvs_iface_flags};
use crate::dataplane::{Attachment, Dataplane};
use crate::decap;
use crate::error::{bpf_err, Error};
use crate::local_out;
use crate::mode::{AttachMode, TC_HANDLE, TC_PRIORITY};
use crate::neigh;
use crate::tc;

impl Dataplane {
    /// Attaches the program to `ifname`. XDP: native, falling back to
    /// generic (skb) mode with a warning; replaces any XDP program already
    /// there in that mode (e.g. the one a previous daemon left). tc: a
    /// clsact qdisc (created if missing) with `xvs_tc` as a direct-action
    /// ingress filter at a fixed handle and priority, replacing a previous
    /// daemon's filter.
    pub fn attach(&mut self, ifname: &str) -> Result<(), Error> {
        if self.attached.iter().any(|a| a.ifname == ifname) {
            return Ok(());
        }
        let cname = CString::new(ifname).map_err(|_| Error::NoSuchInterface(ifname.into()))?;
        // SAFETY: valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(Error::NoSuchInterface(ifname.into()));
        }
        self.remove_other_mode(ifname, ifindex);
        let mut a = match self.mode {
            AttachMode::Tc => self.attach_tc(ifname, ifindex)?,
            AttachMode::Xdp => self.attach_xdp(ifname, ifindex)?,
        };
        // Optional: without it only local NAT dests go unanswered.
        if let Some(l) = &self.local_out {
            match l.attach(ifname, ifindex) {
                Ok(e) => a.egress = Some(e),
                Err(e) => warn!("{ifname}: {e}; local NAT real servers cannot answer through it"),
            }
        }
        self.attached.push(a);
        Ok(())
    }

    /// `xvs_tc` as the clsact ingress filter of `ifindex`.
    fn attach_tc(&self, ifname: &str, ifindex: i32) -> Result<Attachment, Error> {
        let prog = self.prog(self.mode.prog_name())?;
        let (hook, created) =
            tc::attach_filter(prog.as_fd(), ifname, ifindex, TC_INGRESS, "the tc filter")?;
        // A veth with its peer in another namespace: frames out of
        // it go straight to the peer's ingress.
        let peer = neigh::veth_peer_elsewhere(ifindex).unwrap_or_else(|e| {
            warn!("{ifname}: cannot tell whether it is a veth ({e}); using plain redirects");
            false
        });
        if peer {
            let flags: u32 = xvs_iface_flags::XVS_IF_F_PEER.0;
            self.maps
                .iface
                .update(bytes(&(ifindex as u32)), bytes(&flags), MapFlags::ANY)
                .map_err(bpf_err("XVS_IFACE update"))?;
            // cached next hops carry the flags of their egress
            self.flush_nexthops()?;
        }
        info!(
            "xvs_tc attached to {ifname} (tc clsact ingress{})",
            if peer {
                "; veth: frames for it go to its peer directly"
            } else {
                ""
            }
        );
        Ok(Attachment {
            ifname: ifname.to_string(),
            ifindex,
            flags: 0,
            tc: Some((hook, created)),
            egress: None,
        })
    }

    /// `xvs_xdp` on `ifindex`: native, else generic.
    fn attach_xdp(&self, ifname: &str, ifindex: i32) -> Result<Attachment, Error> {
        let prog = self.prog(self.mode.prog_name())?;
        let xdp = Xdp::new(prog.as_fd());
        let (flags, mode) = match xdp.attach(ifindex, XdpFlags::DRV_MODE) {
            Ok(()) => (XdpFlags::DRV_MODE, "native"),
            Err(e) => {
                warn!("{ifname}: native XDP attach failed ({e}); falling back to generic XDP");
                xdp.attach(ifindex, XdpFlags::SKB_MODE)
                    .map_err(bpf_err(format!("attaching XDP to {ifname}")))?;
                (XdpFlags::SKB_MODE, "generic")
            }
        };
        info!("xvs_xdp attached to {ifname} ({mode} mode)");
        Ok(Attachment {
            ifname: ifname.to_string(),
            ifindex,
            flags: flags.bits(),
            tc: None,
            egress: None,
        })
    }

    /// Removes the other build of the data plane from `ifindex`, left by a
    /// daemon of the other mode that did not detach (killed): it would
    /// see the packets before (XDP) or after (tc) this one.
    fn remove_other_mode(&self, ifname: &str, ifindex: i32) {
        match self.mode {
            AttachMode::Tc => {
                let Ok(ids) = decap::prog_ids(ifindex) else {
                    return;
                };
                for (id, flags) in ids {
                    if !decap::is_named(id, AttachMode::Xdp.prog_name()) {
                        continue;
                    }
                    if let Some(fd) = decap::prog_fd(id) {
                        warn!("{ifname}: removing a leftover xvs_xdp (program {id})");
                        let _ = Xdp::new(fd.as_fd()).detach(ifindex, flags);
                    }
                }
            }
            AttachMode::Xdp => {
                let id = tc::ingress_prog_at(ifindex, TC_HANDLE, TC_PRIORITY as u16);
                if !decap::is_named(id, AttachMode::Tc.prog_name()) {
                    return;
                }
                if let Some(fd) = decap::prog_fd(id) {
                    warn!("{ifname}: removing a leftover xvs_tc filter (program {id})");
                    let _ = tc::filter_hook(fd.as_fd(), ifindex, TC_INGRESS).detach();
                }
            }
        }
    }

    /// Interfaces the program is attached to (by this instance).
    pub fn attached(&self) -> Vec<String> {
        self.attached.iter().map(|a| a.ifname.clone()).collect()
    }

    /// Forgets the interfaces this instance attached to, leaving the
    /// program on them (dropping the instance then detaches nothing): the
    /// data plane forwards on while no daemon runs, with the pinned maps.
    /// Returns the interfaces.
    pub fn leave_attached(&mut self) -> Vec<String> {
        std::mem::take(&mut self.attached)
            .into_iter()
            .map(|a| a.ifname)
            .collect()
    }

    /// Detaches from every interface this instance attached to.
    /// A clsact qdisc this instance created goes with its filter.
    pub fn detach_all(&mut self) {
        let attached = std::mem::take(&mut self.attached);
        let Ok(prog) = self.prog(self.mode.prog_name()) else {
            return;
        };
        let xdp = Xdp::new(prog.as_fd());
        for a in attached {
            let _ = self.maps.iface.delete(bytes(&(a.ifindex as u32)));
            let ingress_qdisc = matches!(a.tc, Some((_, true)));
            if let Some((mut hook, created)) = a.egress {
                // A qdisc the ingress filter brought goes with it below.
                let r = if created && !ingress_qdisc {
                    hook.attach_point(TC_INGRESS | libbpf_rs::TC_EGRESS);
                    hook.destroy()
                } else {
                    hook.detach()
                };
                if let Err(e) = r {
                    warn!("detaching {} from {}: {e}", local_out::PROG, a.ifname);
                }
            }
            if let Some((mut hook, created)) = a.tc {
                let r = if created {
                    // both hooks: the whole qdisc goes
                    hook.attach_point(TC_INGRESS | libbpf_rs::TC_EGRESS);
                    hook.destroy()
                } else {
                    hook.detach()
                };
                if let Err(e) = r {
                    warn!("detaching the tc filter from {}: {e}", a.ifname);
                }
                continue;
            }
            if let Err(e) = xdp.detach(a.ifindex, XdpFlags::from_bits_truncate(a.flags)) {
                warn!("detaching XDP from {}: {e}", a.ifname);
            }
        }
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.detach_all();
    }
}
