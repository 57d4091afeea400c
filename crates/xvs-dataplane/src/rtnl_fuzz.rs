//! Every reader of the kernel's rtnetlink answers behind one entry, for
//! the `rtnetlink` fuzz target (`fuzz/`): the datagram collector and what
//! next hops, the local table, neighbour resolution and the tc queries
//! take out of the messages. Not an API.

use crate::local_table::LocalTable;
use crate::netlink::{replies, Step, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use crate::{neigh, nexthop, tc};
use netlink_packet_core::NetlinkBuffer;
use std::net::Ipv4Addr;

/// Reads `data` as one datagram of answers (to the sequence number of its
/// first message, as a request of each kind would), then hands what it
/// collected to every reader. Returns how many messages were collected;
/// panics only where a reader would.
#[doc(hidden)]
pub fn read_rtnetlink(data: &[u8]) -> usize {
    let seq = NetlinkBuffer::new_checked(data).map_or(0, |b| b.sequence_number());
    let mut total = 0;
    for flags in [
        NLM_F_REQUEST,
        NLM_F_REQUEST | NLM_F_ACK,
        NLM_F_REQUEST | NLM_F_DUMP,
    ] {
        let mut out = Vec::new();
        if let Step::Failed(errno) = replies(data, seq, flags, &mut out) {
            // What `Netlink::request` makes of it.
            let _ = std::io::Error::from_raw_os_error(errno).to_string();
        }
        total += out.len();
        let addr = Ipv4Addr::new(192, 0, 2, 1);
        let _ = nexthop::links_of(out.clone());
        let _ = nexthop::neighs_of(out.clone());
        let _ = nexthop::route_of(out.clone(), addr);
        let _ = LocalTable::of(out.clone()).contains(addr);
        let _ = neigh::neigh_state_of(out.clone());
        let _ = neigh::remote_veth(out.clone());
        let _ = tc::clsact_in(&out, 1);
        let _ = tc::filters_of(out);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::RouteNetlinkMessage;

    /// The fuzzer's seeds, as the kernel would send them.
    fn seed(name: &str) -> Vec<u8> {
        let p = format!(
            "{}/../../fuzz/corpus/rtnetlink/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn collect(data: &[u8], flags: u16) -> (Step, Vec<RouteNetlinkMessage>) {
        let mut out = Vec::new();
        (replies(data, 7, flags, &mut out), out)
    }

    #[test]
    fn the_seeds_read_as_the_kernels_answers() {
        let (step, out) = collect(&seed("route-unicast"), NLM_F_REQUEST);
        assert_eq!(step, Step::Done);
        let r = nexthop::route_of(out, Ipv4Addr::new(192, 0, 2, 1)).expect("a unicast route");
        assert_eq!((r.oif, r.mtu), (3, 1400));
        assert_eq!(r.via, Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(r.src, Ipv4Addr::new(198, 51, 100, 2));
        assert!(!r.local);

        let (_, out) = collect(&seed("route-local"), NLM_F_REQUEST);
        assert!(LocalTable::of(out.clone()).contains(Ipv4Addr::new(198, 51, 100, 9)));
        let r = nexthop::route_of(out, Ipv4Addr::new(198, 51, 100, 9)).expect("a local route");
        assert!(r.local);
        assert_eq!(r.oif, 1);

        let (step, _) = collect(&seed("error-enetunreach"), NLM_F_REQUEST);
        assert_eq!(step, Step::Failed(libc::ENETUNREACH));

        let (step, out) = collect(&seed("link-dump"), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(step, Step::Done);
        assert!(neigh::remote_veth(out.clone()));
        let links = nexthop::links_of(out);
        assert_eq!(links[&3], (1500, Some([2, 0, 0, 0, 0, 3])));
        assert_eq!(links[&1].0, 65536);

        let (_, out) = collect(&seed("neigh-dump"), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(neigh::neigh_state_of(out.clone()), Some(2));
        let n = nexthop::neighs_of(out);
        assert_eq!(
            n[&(3, Ipv4Addr::new(198, 51, 100, 2))],
            (2, Some([2, 0, 0, 0, 0, 9]))
        );

        let (step, _) = collect(&seed("neigh-ack"), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(step, Step::Done);

        let (_, out) = collect(&seed("tc-dump"), NLM_F_REQUEST | NLM_F_DUMP);
        assert!(tc::clsact_in(&out, 1));
        let f = tc::filters_of(out);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].kind.as_str(), f[0].prog, f[0].priority),
            ("bpf", Some(42), 1)
        );
    }

    #[test]
    fn every_seed_cut_short_is_read_without_a_panic() {
        for name in [
            "route-unicast",
            "route-local",
            "link-dump",
            "neigh-dump",
            "tc-dump",
            "error-enetunreach",
        ] {
            let s = seed(name);
            for n in 0..=s.len() {
                read_rtnetlink(&s[..n]);
            }
        }
    }
}
