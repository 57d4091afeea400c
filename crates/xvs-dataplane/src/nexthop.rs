//! Next hops of DR and TUN dests (`DEST_NH`), resolved in user space from
//! the kernel's routes, links and neighbours, as IPVS's output route
//! (`__ip_vs_get_out_rt`) would find them. The program then never asks
//! `bpf_fib_lookup`, which refuses to answer on a director whose
//! forwarding is off — and IPVS needs no forwarding for DR and TUN, since
//! it transmits from LOCAL_IN.
//!
//! * DR: the real server itself is the next hop (IPVS's `KNOWN_NH`), on
//!   the interface of the route towards it.
//! * TUN: the route's next hop (its gateway, if any); the route's
//!   preferred source is the outer source address.
//! * MTU: the route's `mtu` metric, else the interface's.
//! * Local: a dest (of any method, NAT too) whose route is `RTN_LOCAL` is
//!   one of the director's own addresses; its packets go to the
//!   director's stack, as IPVS's transmitters continue them locally. A
//!   NAT dest is matched against the local table (`local_table`),
//!   read once per pass.
//!
//! [`Monitor`] tells when routes, links, addresses or neighbours change, so
//! the caller refreshes; an unknown neighbour is asked for with `NTF_USE`
//! (see [`crate::neigh`]) and filled in when it answers.

use crate::abi::{xvs_dest_nh, xvs_fwd, xvs_nh_state};
use crate::error::Error;
use crate::local_table::LocalTable;
use crate::netlink::{socket, Netlink, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteMetric, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::SocketAddr;
use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

/// Neighbour states with a usable link-layer address.
const NUD_VALID: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80;
/// rtnetlink multicast groups (`RTMGRP_*`): links, neighbours, IPv4
/// addresses and routes.
const GROUPS: u32 = 0x1 | 0x4 | 0x10 | 0x40;

/// A route towards an address: egress interface, next hop, source, MTU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    pub oif: u32,
    pub via: Ipv4Addr,
    pub src: Ipv4Addr,
    pub mtu: u32,
    /// `RTN_LOCAL`: the address is the director's own.
    pub local: bool,
}

/// What a dest's `DEST_NH` entry is for, by its forwarding method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// DR: the real server is its own next hop (IPVS's `KNOWN_NH`).
    Dr,
    /// TUN: the route's next hop.
    Tun,
    /// NAT: only whether the dest is local (`bpf_fib_lookup` finds the
    /// rest per packet).
    Nat,
}

impl From<xvs_core::model::FwdMethod> for Via {
    fn from(f: xvs_core::model::FwdMethod) -> Via {
        use xvs_core::model::FwdMethod;
        match f {
            FwdMethod::Route => Via::Dr,
            FwdMethod::Tunnel => Via::Tun,
            FwdMethod::Masq => Via::Nat,
        }
    }
}

impl Via {
    /// The `Via` of an `enum xvs_fwd` value.
    pub(crate) fn of(fwd: u8) -> Via {
        if fwd == xvs_fwd::XVS_FWD_ROUTE.0 as u8 {
            Via::Dr
        } else if fwd == xvs_fwd::XVS_FWD_TUNNEL.0 as u8 {
            Via::Tun
        } else {
            Via::Nat
        }
    }
}

/// `ifindex -> (MTU, MAC)`; the MAC only for Ethernet-like devices.
pub(crate) type Links = HashMap<u32, (u32, Option<[u8; 6]>)>;

/// One pass of resolution: links, neighbours and the local routes are
/// read once (dumps), routes per DR/TUN address.
pub(crate) struct Resolver {
    nl: Netlink,
    links: Links,
    neighs: Neighs,
    /// Read on the first NAT dest of the pass.
    locals: Option<LocalTable>,
}

/// `(ifindex, address) -> (NUD state, MAC)` of the IPv4 neighbours.
pub(crate) type Neighs = HashMap<(u32, Ipv4Addr), (u16, Option<[u8; 6]>)>;

/// NUD_INCOMPLETE: the kernel is asking for it right now.
const NUD_INCOMPLETE: u16 = 0x01;

impl Resolver {
    /// Opens a netlink socket and reads the links and neighbours.
    pub(crate) fn new() -> Result<Resolver, Error> {
        let mut nl = Netlink::open()?;
        let links = dump_links(&mut nl).map_err(|source| Error::Io {
            context: "reading the links (RTM_GETLINK)".into(),
            source,
        })?;
        let neighs = dump_neighs(&mut nl).map_err(|source| Error::Io {
            context: "reading the neighbours (RTM_GETNEIGH)".into(),
            source,
        })?;
        Ok(Resolver {
            nl,
            links,
            neighs,
            locals: None,
        })
    }

    /// The next hop of a dest at `addr` reached `via` DR, TUN or NAT; a
    /// dest at one of the director's own addresses is `XVS_NH_LOCAL`
    /// whatever its method (IPVS's transmitters deliver locally when the
    /// output route is local). The second value is the neighbour to ask
    /// for when its MAC is unknown.
    pub(crate) fn resolve(
        &mut self,
        addr: Ipv4Addr,
        via: Via,
    ) -> Result<(xvs_dest_nh, Option<(u32, Ipv4Addr)>), Error> {
        let mut nh = xvs_dest_nh {
            state: xvs_nh_state::XVS_NH_NO_ROUTE.0 as u8,
            ..Default::default()
        };
        // A NAT dest needs nothing but its locality: no route lookup.
        if via == Via::Nat {
            if self.locals.is_none() {
                self.locals = Some(LocalTable::read()?);
            }
            let local = self.locals.as_ref().is_some_and(|l| l.contains(addr));
            nh.state = if local {
                xvs_nh_state::XVS_NH_LOCAL.0 as u8
            } else {
                xvs_nh_state::XVS_NH_NONE.0 as u8
            };
            return Ok((nh, None));
        }
        let route = route(&mut self.nl, addr).map_err(|source| Error::Io {
            context: format!("route lookup for real server {addr}"),
            source,
        })?;
        let Some(r) = route else {
            return Ok((nh, None));
        };
        if r.local {
            nh.state = xvs_nh_state::XVS_NH_LOCAL.0 as u8;
            return Ok((nh, None));
        }
        let hop = if via == Via::Dr { addr } else { r.via };
        let Some(&(link_mtu, Some(smac))) = self.links.get(&r.oif) else {
            // Not an Ethernet device (a tunnel, loopback): no frame to send.
            return Ok((nh, None));
        };
        nh.ifindex = r.oif;
        nh.mtu = if r.mtu != 0 { r.mtu } else { link_mtu };
        nh.src = crate::repr::xaddr4(r.src);
        nh.smac = smac;
        match self.neighs.get(&(r.oif, hop)) {
            Some(&(state, Some(mac))) if state & NUD_VALID != 0 => {
                nh.dmac = mac;
                nh.state = xvs_nh_state::XVS_NH_OK.0 as u8;
                Ok((nh, None))
            }
            _ => {
                nh.state = xvs_nh_state::XVS_NH_NO_NEIGH.0 as u8;
                Ok((nh, Some((r.oif, hop))))
            }
        }
    }

    /// Whether the kernel is resolving `(ifindex, address)` now (or has
    /// not started: no entry yet), as opposed to having given up.
    pub(crate) fn resolving(&self, hop: (u32, Ipv4Addr)) -> bool {
        self.neighs
            .get(&hop)
            .is_none_or(|&(state, _)| state & NUD_INCOMPLETE != 0)
    }
}

/// A 6-byte (Ethernet) address, else `None`.
fn mac_of(v: &[u8]) -> Option<[u8; 6]> {
    v.try_into().ok()
}

fn dump_links(nl: &mut Netlink) -> Result<Links, io::Error> {
    let req = RouteNetlinkMessage::GetLink(LinkMessage::default());
    Ok(links_of(nl.request(req, NLM_F_REQUEST | NLM_F_DUMP)?))
}

/// The links of an `RTM_GETLINK` dump's answer.
pub(crate) fn links_of(replies: Vec<RouteNetlinkMessage>) -> Links {
    let mut out = HashMap::new();
    for reply in replies {
        let RouteNetlinkMessage::NewLink(l) = reply else {
            continue;
        };
        let (mut mtu, mut mac) = (0, None);
        for a in l.attributes {
            match a {
                LinkAttribute::Mtu(m) => mtu = m,
                LinkAttribute::Address(v) => mac = mac_of(&v),
                _ => {}
            }
        }
        out.insert(l.header.index, (mtu, mac));
    }
    out
}

/// The request of a dump of the IPv4 neighbours.
fn neigh_dump() -> RouteNetlinkMessage {
    let mut req = NeighbourMessage::default();
    req.header.family = AddressFamily::Inet;
    RouteNetlinkMessage::GetNeighbour(req)
}

fn dump_neighs(nl: &mut Netlink) -> Result<Neighs, io::Error> {
    Ok(neighs_of(
        nl.request(neigh_dump(), NLM_F_REQUEST | NLM_F_DUMP)?,
    ))
}

/// Every IPv4 neighbour of an `RTM_GETNEIGH` dump's answer, with its
/// state and link-layer address.
pub(crate) fn neighs_of(replies: Vec<RouteNetlinkMessage>) -> Neighs {
    let mut out = HashMap::new();
    for reply in replies {
        let RouteNetlinkMessage::NewNeighbour(n) = reply else {
            continue;
        };
        let (mut dst, mut mac) = (None, None);
        for a in n.attributes {
            match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(d)) => dst = Some(d),
                NeighbourAttribute::LinkLayerAddress(v) => mac = mac_of(&v),
                _ => {}
            }
        }
        if let Some(d) = dst {
            out.insert((n.header.ifindex, d), (u16::from(n.header.state), mac));
        }
    }
    out
}

/// An `RTM_GETROUTE` request for the route the kernel would use to send
/// to `addr`.
pub(crate) fn route_get(addr: Ipv4Addr) -> RouteNetlinkMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet;
    m.header.destination_prefix_length = 32;
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::Inet(addr)));
    RouteNetlinkMessage::GetRoute(m)
}

/// The unicast or local route the kernel would use to send to `addr`
/// (`None`: no route, or a blackhole/unreachable one).
pub(crate) fn route(nl: &mut Netlink, addr: Ipv4Addr) -> Result<Option<Route>, io::Error> {
    let replies = match nl.request(route_get(addr), NLM_F_REQUEST) {
        Ok(r) => r,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ENETDOWN | libc::EINVAL)
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    Ok(route_of(replies, addr))
}

/// The unicast or local route in an `RTM_GETROUTE` answer for `addr`
/// (`None`: a blackhole/unreachable one, or none with an egress
/// interface).
pub(crate) fn route_of(replies: Vec<RouteNetlinkMessage>, addr: Ipv4Addr) -> Option<Route> {
    for reply in replies {
        let RouteNetlinkMessage::NewRoute(m) = reply else {
            continue;
        };
        let local = m.header.kind == RouteType::Local;
        if m.header.kind != RouteType::Unicast && !local {
            continue;
        }
        let mut r = Route {
            oif: 0,
            via: addr,
            src: Ipv4Addr::UNSPECIFIED,
            mtu: 0,
            local,
        };
        for a in m.attributes {
            match a {
                RouteAttribute::Oif(o) => r.oif = o,
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => r.via = g,
                RouteAttribute::PrefSource(RouteAddress::Inet(s)) => r.src = s,
                RouteAttribute::Metrics(ms) => {
                    for m in ms {
                        if let RouteMetric::Mtu(mtu) = m {
                            r.mtu = mtu;
                        }
                    }
                }
                _ => {}
            }
        }
        return (r.oif != 0).then_some(r);
    }
    None
}

/// A netlink socket subscribed to route, link, address and neighbour
/// changes: readable when the next hops may have moved.
pub struct Monitor {
    socket: netlink_sys::Socket,
}

impl Monitor {
    /// Subscribes (non-blocking socket).
    pub fn open() -> Result<Monitor, Error> {
        let mut socket = socket("netlink socket")?;
        let subscribed = socket
            .bind(&SocketAddr::new(0, GROUPS))
            .and_then(|()| socket.set_non_blocking(true));
        subscribed.map_err(|source| Error::Io {
            context: "subscribing to route/neighbour changes".into(),
            source,
        })?;
        Ok(Monitor { socket })
    }

    /// The socket, for poll(2).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }

    /// Reads every pending notification; whether there was any (an
    /// overrun counts: something changed and was lost).
    pub fn drain(&self) -> bool {
        let mut buf = Vec::with_capacity(65536);
        let mut any = false;
        loop {
            buf.clear();
            match self.socket.recv(&mut buf, libc::MSG_DONTWAIT) {
                Ok(n) if n > 0 => any = true,
                Ok(_) => return any,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(libc::ENOBUFS) => any = true,
                    _ => return any,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ethernet_addresses_are_macs() {
        assert_eq!(mac_of(&[1, 2, 3, 4, 5]), None);
        assert_eq!(mac_of(&[1, 2, 3, 4, 5, 6]), Some([1, 2, 3, 4, 5, 6]));
        assert_eq!(mac_of(&[0; 16]), None);
    }

    #[test]
    fn the_neighbour_dump_asks_for_ipv4_only() {
        let mut nd = vec![0u8; 12];
        nd[0] = libc::AF_INET as u8;
        assert_eq!(crate::netlink::body(&neigh_dump()), nd);
        let links = RouteNetlinkMessage::GetLink(LinkMessage::default());
        assert_eq!(crate::netlink::body(&links), [0u8; 16]);
    }
}
