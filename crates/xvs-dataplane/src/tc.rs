//! What is on an interface's clsact hook, asked over rtnetlink: whether
//! the qdisc exists and which filters use it. libbpf can only query a
//! filter whose handle and priority it knows; shelling out to iproute2's
//! `tc` made xvsd depend on it, and without it leftover programs and
//! qdiscs were quietly left behind.

use crate::error::Error;
use crate::netlink::{attrs, u32_at as checked_u32_at, Netlink, NLM_F_DUMP, NLM_F_REQUEST};

const RTM_NEWQDISC: u16 = 36;
const RTM_GETQDISC: u16 = 38;
const RTM_NEWTFILTER: u16 = 44;
const RTM_GETTFILTER: u16 = 46;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_ID: u16 = 11;
/// `struct tcmsg`: family, pad ×3, ifindex, handle, parent, info.
const TCMSG_LEN: usize = 20;
/// clsact's ingress and egress hooks (`TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_*)`).
pub(crate) const TC_PARENT_INGRESS: u32 = 0xFFFF_FFF2;
pub(crate) const TC_PARENT_EGRESS: u32 = 0xFFFF_FFF3;

fn tcmsg(ifindex: i32, parent: u32) -> Vec<u8> {
    let mut b = vec![libc::AF_UNSPEC as u8, 0, 0, 0];
    b.extend_from_slice(&ifindex.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&parent.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b
}

/// The `u32` at `off`, 0 when `b` is too short.
fn u32_at(b: &[u8], off: usize) -> u32 {
    checked_u32_at(b, off).unwrap_or(0)
}

fn kind(body: &[u8]) -> Option<&[u8]> {
    attrs(body, TCMSG_LEN)
        .into_iter()
        .find(|(t, _)| *t == TCA_KIND)
        .map(|(_, v)| v.split(|&c| c == 0).next().unwrap_or(v))
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
    let replies = nl
        .request(RTM_GETQDISC, NLM_F_REQUEST | NLM_F_DUMP, &tcmsg(ifindex, 0))
        .map_err(nl_err(format!("RTM_GETQDISC on ifindex {ifindex}")))?;
    Ok(replies.iter().any(|(t, b)| {
        *t == RTM_NEWQDISC
            && b.len() >= TCMSG_LEN
            && u32_at(b, 4) as i32 == ifindex
            && kind(b) == Some(b"clsact")
    }))
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
    filters(ifindex, TC_PARENT_INGRESS)
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
    let replies = nl
        .request(
            RTM_GETTFILTER,
            NLM_F_REQUEST | NLM_F_DUMP,
            &tcmsg(ifindex, parent),
        )
        .map_err(nl_err(format!("RTM_GETTFILTER on ifindex {ifindex}")))?;
    Ok(replies
        .iter()
        // Handle 0 is the priority's chain header, not a filter.
        .filter(|(t, b)| *t == RTM_NEWTFILTER && b.len() >= TCMSG_LEN && u32_at(b, 8) != 0)
        .map(|(_, b)| {
            let kind = String::from_utf8_lossy(kind(b).unwrap_or_default()).into_owned();
            let prog = attrs(b, TCMSG_LEN)
                .into_iter()
                .find(|(t, _)| *t == TCA_OPTIONS)
                .and_then(|(_, opts)| {
                    attrs(opts, 0)
                        .into_iter()
                        .find(|(t, v)| *t == TCA_BPF_ID && v.len() >= 4)
                        .map(|(_, v)| u32_at(v, 0))
                });
            Filter {
                kind,
                prog,
                handle: u32_at(b, 8),
                // tcm_info: priority in the upper 16 bits, protocol below.
                priority: (u32_at(b, 16) >> 16) as u16,
            }
        })
        .collect())
}
