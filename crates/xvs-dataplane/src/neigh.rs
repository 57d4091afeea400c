//! Neighbour resolution for DR/TUN dests over rtnetlink (no shelling out;
//! the messages are `netlink-packet-route`'s).
//!
//! * [`resolve`]: for each address, `RTM_GETROUTE` finds the egress
//!   interface and next hop (the gateway when the route has one), then
//!   `RTM_NEWNEIGH` with `NTF_USE` starts ARP for it. The entry is created
//!   `managed` (`NTF_EXT_MANAGED`, kernel >= 5.16), so the kernel keeps it
//!   resolved even though XDP-forwarded traffic never confirms it; older
//!   kernels fall back to a plain `NTF_USE`. Permanent and no-ARP entries
//!   are left alone.

use crate::error::Error;
use crate::netlink::{Netlink, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST};
use crate::nexthop::{route, Route};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourExtFlags, NeighbourFlags, NeighbourMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::io;
use std::net::Ipv4Addr;

const NUD_NOARP: u16 = 0x40;
const NUD_PERMANENT: u16 = 0x80;

impl Netlink {
    fn ndmsg(ifindex: i32, flags: NeighbourFlags, addr: Ipv4Addr) -> NeighbourMessage {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.ifindex = ifindex as u32;
        m.header.flags = flags;
        m.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                addr,
            )));
        m
    }

    /// NUD state of an existing neighbour entry.
    fn neigh_state(&mut self, ifindex: i32, addr: Ipv4Addr) -> Result<Option<u16>, io::Error> {
        let req =
            RouteNetlinkMessage::GetNeighbour(Self::ndmsg(ifindex, NeighbourFlags::empty(), addr));
        match self.request(req, NLM_F_REQUEST) {
            Ok(r) => Ok(neigh_state_of(r)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn neigh_use(&mut self, ifindex: i32, addr: Ipv4Addr, managed: bool) -> Result<(), io::Error> {
        let mut m = Self::ndmsg(ifindex, NeighbourFlags::Use, addr);
        if managed {
            m.attributes
                .push(NeighbourAttribute::ExtFlags(NeighbourExtFlags::Managed));
        }
        self.request(
            RouteNetlinkMessage::NewNeighbour(m),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(|_| ())
    }
}

/// The NUD state in an `RTM_GETNEIGH` answer.
pub(crate) fn neigh_state_of(replies: Vec<RouteNetlinkMessage>) -> Option<u16> {
    replies.into_iter().find_map(|m| match m {
        RouteNetlinkMessage::NewNeighbour(n) => Some(u16::from(n.header.state)),
        _ => None,
    })
}

/// Whether `ifindex` is a veth whose peer lives in another network
/// namespace (`RTM_GETLINK`: link kind `veth` and an `IFLA_LINK_NETNSID`,
/// which the kernel only reports for a peer elsewhere). Only then can tc
/// hand frames straight to the peer (`bpf_redirect_peer`).
pub(crate) fn veth_peer_elsewhere(ifindex: i32) -> Result<bool, Error> {
    let mut nl = Netlink::open()?;
    let mut req = LinkMessage::default();
    req.header.index = ifindex as u32;
    let replies = nl
        .request(RouteNetlinkMessage::GetLink(req), NLM_F_REQUEST)
        .map_err(|source| Error::Io {
            context: format!("RTM_GETLINK for ifindex {ifindex}"),
            source,
        })?;
    Ok(remote_veth(replies))
}

/// Whether an `RTM_GETLINK` answer is a veth with its peer in another
/// namespace.
pub(crate) fn remote_veth(replies: Vec<RouteNetlinkMessage>) -> bool {
    let Some(link) = replies.into_iter().find_map(|m| match m {
        RouteNetlinkMessage::NewLink(l) => Some(l),
        _ => None,
    }) else {
        return false;
    };
    let mut veth = false;
    let mut elsewhere = false;
    for a in link.attributes {
        match a {
            LinkAttribute::LinkInfo(infos) => {
                veth = infos
                    .iter()
                    .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Veth)));
            }
            LinkAttribute::LinkNetNsId(_) => elsewhere = true,
            _ => {}
        }
    }
    veth && elsewhere
}

/// Starts ARP for each `(ifindex, address)` (managed where the kernel
/// has it), leaving permanent and no-ARP entries alone.
pub(crate) fn ask(hops: &[(u32, Ipv4Addr)]) -> Result<(), Error> {
    if hops.is_empty() {
        return Ok(());
    }
    let mut nl = Netlink::open()?;
    for &(ifindex, via) in hops {
        nl.ask(ifindex as i32, via).map_err(|source| Error::Io {
            context: format!("triggering ARP for {via}"),
            source,
        })?;
    }
    Ok(())
}

impl Netlink {
    fn ask(&mut self, ifindex: i32, via: Ipv4Addr) -> Result<(), io::Error> {
        let state = self.neigh_state(ifindex, via)?;
        if state.is_some_and(|s| s & (NUD_PERMANENT | NUD_NOARP) != 0) {
            return Ok(());
        }
        match self.neigh_use(ifindex, via, true) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP)) => {
                self.neigh_use(ifindex, via, false)
            }
            r => r,
        }
    }
}

/// See the module documentation.
pub(crate) fn resolve(addrs: &[Ipv4Addr]) -> Result<(), Error> {
    let mut nl = Netlink::open()?;
    for &addr in addrs {
        let ctx = |what: &str| format!("{what} for real server {addr}");
        let Some(Route {
            oif, via, local, ..
        }) = route(&mut nl, addr).map_err(|source| Error::Io {
            context: ctx("route lookup"),
            source,
        })?
        else {
            return Err(Error::Io {
                context: ctx("route lookup"),
                source: io::Error::new(io::ErrorKind::NotFound, "no unicast route"),
            });
        };
        // The director's own address has no neighbour to ask for.
        if local {
            continue;
        }
        nl.ask(oif as i32, via).map_err(|source| Error::Io {
            context: ctx(&format!("triggering ARP for {via}")),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::{attr, body};
    use crate::nexthop::route_get;

    /// `struct ndmsg`: family, pads, ifindex, state, flags, type.
    fn ndmsg(ifindex: i32, flags: u8) -> Vec<u8> {
        let mut b = vec![libc::AF_INET as u8, 0, 0, 0];
        b.extend_from_slice(&ifindex.to_ne_bytes());
        b.extend_from_slice(&[0, 0, flags, 0]);
        b
    }

    #[test]
    fn requests_carry_the_kernels_layouts() {
        let a = Ipv4Addr::new(192, 0, 2, 7);
        // struct rtmsg: AF_INET, /32, the rest zero; then RTA_DST.
        let mut rt = vec![libc::AF_INET as u8, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        rt.extend(attr(1, &a.octets()));
        assert_eq!(body(&route_get(a)), rt);
        let get = Netlink::ndmsg(3, NeighbourFlags::empty(), a);
        let mut nd = ndmsg(3, 0);
        nd.extend(attr(1, &a.octets()));
        assert_eq!(body(&RouteNetlinkMessage::GetNeighbour(get)), nd);
        // NTF_USE, NDA_DST, NDA_FLAGS_EXT = NTF_EXT_MANAGED.
        let mut used = Netlink::ndmsg(3, NeighbourFlags::Use, a);
        used.attributes
            .push(NeighbourAttribute::ExtFlags(NeighbourExtFlags::Managed));
        let mut nd = ndmsg(3, 0x01);
        nd.extend(attr(1, &a.octets()));
        nd.extend(attr(15, &1u32.to_ne_bytes()));
        assert_eq!(body(&RouteNetlinkMessage::NewNeighbour(used)), nd);
        // struct ifinfomsg: AF_UNSPEC, index, zeros.
        let mut link = LinkMessage::default();
        link.header.index = 5;
        let mut ifi = vec![0u8; 16];
        ifi[4..8].copy_from_slice(&5i32.to_ne_bytes());
        assert_eq!(body(&RouteNetlinkMessage::GetLink(link)), ifi);
    }
}
