//! The director's program where no running daemon holds it: xvsd leaves
//! it attached when it stops (the data plane forwards while the daemon is
//! down or being replaced), so finding and removing it is a job of its
//! own: `xvsd --detach`, and a starting xvsd that no longer serves an
//! interface its predecessor did.

use std::ffi::CStr;
use std::os::fd::AsFd;

use libbpf_rs::{Xdp, TC_EGRESS, TC_INGRESS};

use crate::decap;
use crate::error::Error;
use crate::local_out;
use crate::mode::{AttachMode, TC_HANDLE, TC_PRIORITY};
use crate::tc;

/// One interface with the director's program on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// Interface name.
    pub ifname: String,
    /// Interface index.
    pub ifindex: i32,
    /// Which build is there.
    pub mode: AttachMode,
}

/// Every interface of this network namespace with `xvs_xdp` or `xvs_tc`
/// attached (as xvsd attaches them: XDP in either mode, tc at xvsd's
/// handle and priority on clsact ingress).
pub fn find() -> Vec<Attached> {
    let mut out = Vec::new();
    for (ifindex, ifname) in interfaces() {
        let xdp = decap::prog_ids(ifindex).ok();
        if xdp
            .iter()
            .flatten()
            .any(|(id, _)| decap::is_named(*id, AttachMode::Xdp.prog_name()))
        {
            out.push(Attached {
                ifname: ifname.clone(),
                ifindex,
                mode: AttachMode::Xdp,
            });
        }
        let id = tc::ingress_prog_at(ifindex, TC_HANDLE, TC_PRIORITY as u16);
        if decap::is_named(id, AttachMode::Tc.prog_name()) {
            out.push(Attached {
                ifname,
                ifindex,
                mode: AttachMode::Tc,
            });
        }
    }
    out
}

/// Removes the program from `a`'s interface, and `xvs_local_out` from its
/// egress hook; a clsact qdisc they leave without filters goes too (xvsd
/// creates one where there is none). Returns what was done, for the log.
pub fn remove(a: &Attached) -> Result<String, Error> {
    let err = |what: &str, e: libbpf_rs::Error| Error::Bpf {
        context: format!("{what} on {}", a.ifname),
        source: e,
    };
    let mut done = match a.mode {
        AttachMode::Xdp => {
            for (id, flags) in decap::prog_ids(a.ifindex)? {
                if !decap::is_named(id, AttachMode::Xdp.prog_name()) {
                    continue;
                }
                if let Some(fd) = decap::prog_fd(id) {
                    Xdp::new(fd.as_fd())
                        .detach(a.ifindex, flags)
                        .map_err(|e| err("detaching xvs_xdp", e))?;
                }
            }
            format!("{}: removed xvs_xdp", a.ifname)
        }
        AttachMode::Tc => {
            let id = tc::ingress_prog_at(a.ifindex, TC_HANDLE, TC_PRIORITY as u16);
            match decap::prog_fd(id) {
                Some(fd) => {
                    tc::filter_hook(fd.as_fd(), a.ifindex, TC_INGRESS)
                        .detach()
                        .map_err(|e| err("detaching xvs_tc", e))?;
                    format!("{}: removed xvs_tc", a.ifname)
                }
                None => format!("{}: xvs_tc already gone", a.ifname),
            }
        }
    };
    let id = tc::prog_at(
        a.ifindex,
        tc::TC_PARENT_EGRESS,
        TC_HANDLE,
        TC_PRIORITY as u16,
    );
    let egress = decap::is_named(id, local_out::PROG);
    if let (true, Some(fd)) = (egress, decap::prog_fd(id)) {
        tc::filter_hook(fd.as_fd(), a.ifindex, TC_EGRESS)
            .detach()
            .map_err(|e| err("detaching xvs_local_out", e))?;
        done.push_str(" and xvs_local_out");
    }
    if a.mode == AttachMode::Xdp && !egress {
        return Ok(done);
    }
    let left = tc::filters(a.ifindex, tc::TC_PARENT_INGRESS)?.len()
        + tc::filters(a.ifindex, tc::TC_PARENT_EGRESS)?.len();
    if left > 0 {
        return Ok(format!(
            "{done} (the clsact qdisc stays: {left} other filter(s))"
        ));
    }
    if !tc::has_clsact(a.ifindex)? {
        return Ok(done);
    }
    // Any program fd will do: destroying the qdisc names no filter.
    let Some(fd) = decap::prog_fd(id).or_else(|| {
        decap::prog_fd(tc::ingress_prog_at(
            a.ifindex,
            TC_HANDLE,
            TC_PRIORITY as u16,
        ))
    }) else {
        return Ok(done);
    };
    let mut hook = tc::filter_hook(fd.as_fd(), a.ifindex, TC_INGRESS | TC_EGRESS);
    hook.destroy()
        .map_err(|e| err("removing the clsact qdisc", e))?;
    Ok(format!("{done} and its clsact qdisc"))
}

/// (ifindex, name) of every interface of this network namespace.
fn interfaces() -> Vec<(i32, String)> {
    let mut out = Vec::new();
    // SAFETY: if_nameindex returns a list terminated by a zero entry, or
    // NULL; it is freed below with if_freenameindex.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return out;
        }
        let mut p = list;
        while (*p).if_index != 0 && !(*p).if_name.is_null() {
            let name = CStr::from_ptr((*p).if_name).to_string_lossy().into_owned();
            out.push(((*p).if_index as i32, name));
            p = p.add(1);
        }
        libc::if_freenameindex(list);
    }
    out
}
