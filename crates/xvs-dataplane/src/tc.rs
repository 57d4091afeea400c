//! xvsd's filters on an interface's clsact hooks, and what is there,
//! asked over rtnetlink: whether the qdisc exists and which filters use
//! it. libbpf can only query a
//! filter whose handle and priority it knows; shelling out to iproute2's
//! `tc` made xvsd depend on it, and without it leftover programs and
//! qdiscs were quietly left behind.

use std::os::fd::BorrowedFd;

use libbpf_rs::{TcAttachPoint, TcHook, TcHookBuilder};

use crate::error::{bpf_err, Error};
use crate::mode::{TC_HANDLE, TC_PRIORITY};
use crate::netlink::{Netlink, NLM_F_DUMP, NLM_F_REQUEST};
use crate::objects::quiet_libbpf;
use netlink_packet_route::tc::{TcAttribute, TcFilterBpfOption, TcHandle, TcMessage, TcOption};
use netlink_packet_route::RouteNetlinkMessage;

/// clsact's ingress and egress hooks (`TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_*)`).
pub(crate) const TC_PARENT_INGRESS: u32 = 0xFFFF_FFF2;
pub(crate) const TC_PARENT_EGRESS: u32 = 0xFFFF_FFF3;

/// xvsd's filter slot (its handle and priority) for program `fd` on the
/// clsact hook(s) `point` of `ifindex`.
pub(crate) fn filter_hook(fd: BorrowedFd<'_>, ifindex: i32, point: TcAttachPoint) -> TcHook {
    TcHookBuilder::new(fd)
        .ifindex(ifindex)
        .replace(true)
        .handle(TC_HANDLE)
        .priority(TC_PRIORITY)
        .hook(point)
}

/// Attaches program `fd` (`what`, for errors) as xvsd's filter on hook
/// `point` of `ifname`, replacing a predecessor's, with a clsact qdisc
/// created where there is none. Returns the hook and whether the qdisc
/// was created for it.
pub(crate) fn attach_filter(
    fd: BorrowedFd<'_>,
    ifname: &str,
    ifindex: i32,
    point: TcAttachPoint,
    what: &str,
) -> Result<(TcHook, bool), Error> {
    let mut hook = filter_hook(fd, ifindex, point);
    // An existing qdisc is the usual case: libbpf's message is noise.
    let created = match quiet_libbpf(|| hook.create()) {
        Ok(_) => true,
        Err(e) if e.kind() == libbpf_rs::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(bpf_err(format!("creating the clsact qdisc on {ifname}"))(e)),
    };
    if let Err(e) = hook.attach() {
        if created {
            let _ = hook.destroy();
        }
        return Err(bpf_err(format!("attaching {what} to {ifname}"))(e));
    }
    Ok((hook, created))
}

fn tcmsg(ifindex: i32, parent: u32) -> TcMessage {
    let mut m = TcMessage::with_index(ifindex);
    m.header.parent = TcHandle::from(parent);
    m
}

fn kind(m: &TcMessage) -> Option<&str> {
    m.attributes.iter().find_map(|a| match a {
        TcAttribute::Kind(k) => Some(k.as_str()),
        _ => None,
    })
}

/// The program id of a `bpf` filter's options.
fn bpf_prog(m: &TcMessage) -> Option<u32> {
    m.attributes.iter().find_map(|a| match a {
        TcAttribute::Options(opts) => opts.iter().find_map(|o| match o {
            TcOption::Bpf(TcFilterBpfOption::ProgId(id)) => Some(*id),
            _ => None,
        }),
        _ => None,
    })
}

fn nl_err(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io {
        context: what,
        source,
    }
}

/// Whether `ifindex` has a clsact qdisc.
pub(crate) fn has_clsact(ifindex: i32) -> Result<bool, Error> {
    let mut nl = Netlink::open()?;
    let req = RouteNetlinkMessage::GetQueueDiscipline(tcmsg(ifindex, 0));
    let replies = nl
        .request(req, NLM_F_REQUEST | NLM_F_DUMP)
        .map_err(nl_err(format!("RTM_GETQDISC on ifindex {ifindex}")))?;
    Ok(clsact_in(&replies, ifindex))
}

/// Whether an `RTM_GETQDISC` dump's answer has clsact on `ifindex`.
pub(crate) fn clsact_in(replies: &[RouteNetlinkMessage], ifindex: i32) -> bool {
    replies.iter().any(|m| {
        matches!(m, RouteNetlinkMessage::NewQueueDiscipline(q)
            if q.header.index == ifindex && kind(q) == Some("clsact"))
    })
}

/// A filter on a clsact hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    /// The classifier (`bpf`, `u32`, `flower`, ...).
    pub kind: String,
    /// For `bpf` filters, the program's id.
    pub prog: Option<u32>,
    pub handle: u32,
    pub priority: u16,
}

/// The program of the `bpf` filter at `handle`/`priority` on the clsact
/// ingress hook of `ifindex` (0: none there, or it cannot be told).
pub(crate) fn ingress_prog_at(ifindex: i32, handle: u32, priority: u16) -> u32 {
    prog_at(ifindex, TC_PARENT_INGRESS, handle, priority)
}

/// The same on the clsact hook `parent` ([`TC_PARENT_INGRESS`],
/// [`TC_PARENT_EGRESS`]).
pub(crate) fn prog_at(ifindex: i32, parent: u32, handle: u32, priority: u16) -> u32 {
    filters(ifindex, parent)
        .unwrap_or_default()
        .into_iter()
        .find(|f| f.handle == handle && f.priority == priority)
        .and_then(|f| f.prog)
        .unwrap_or(0)
}

/// The filters on one clsact hook of `ifindex` (`parent`: one of
/// [`TC_PARENT_INGRESS`], [`TC_PARENT_EGRESS`]); empty without clsact.
pub(crate) fn filters(ifindex: i32, parent: u32) -> Result<Vec<Filter>, Error> {
    if !has_clsact(ifindex)? {
        return Ok(Vec::new());
    }
    let mut nl = Netlink::open()?;
    let req = RouteNetlinkMessage::GetTrafficFilter(tcmsg(ifindex, parent));
    let replies = nl
        .request(req, NLM_F_REQUEST | NLM_F_DUMP)
        .map_err(nl_err(format!("RTM_GETTFILTER on ifindex {ifindex}")))?;
    Ok(filters_of(replies))
}

/// The filters of an `RTM_GETTFILTER` dump's answer.
pub(crate) fn filters_of(replies: Vec<RouteNetlinkMessage>) -> Vec<Filter> {
    replies
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewTrafficFilter(f) => Some(f),
            _ => None,
        })
        // Handle 0 is the priority's chain header, not a filter.
        .filter(|f| u32::from(f.header.handle) != 0)
        .map(|f| Filter {
            kind: kind(&f).unwrap_or_default().to_string(),
            prog: bpf_prog(&f),
            handle: u32::from(f.header.handle),
            // tcm_info: priority in the upper 16 bits, protocol below.
            priority: (f.header.info >> 16) as u16,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::body;

    #[test]
    fn queries_carry_the_kernels_tcmsg() {
        // struct tcmsg: AF_UNSPEC, pads, ifindex, handle, parent, info.
        let mut b = vec![0u8; 20];
        b[4..8].copy_from_slice(&7i32.to_ne_bytes());
        b[12..16].copy_from_slice(&TC_PARENT_EGRESS.to_ne_bytes());
        let m = RouteNetlinkMessage::GetTrafficFilter(tcmsg(7, TC_PARENT_EGRESS));
        assert_eq!(body(&m), b);
    }
}
