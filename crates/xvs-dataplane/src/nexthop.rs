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
//!
//! [`Monitor`] tells when routes, links, addresses or neighbours change, so
//! the caller refreshes; an unknown neighbour is asked for with `NTF_USE`
//! (see [`crate::neigh`]) and filled in when it answers.

use crate::abi::{xvs_dest_nh, xvs_nh_state};
use crate::error::Error;
use crate::netlink::{
    attrs, ipv4_at, os_err, push_attr, u16_at, u32_at, Netlink, NLM_F_DUMP, NLM_F_REQUEST,
};
use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const IFLA_ADDRESS: u16 = 1;
const IFLA_MTU: u16 = 4;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PREFSRC: u16 = 7;
const RTA_METRICS: u16 = 8;
const RTAX_MTU: u16 = 2;
const RTN_UNICAST: u8 = 1;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// Neighbour states with a usable link-layer address.
const NUD_VALID: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80;
/// rtnetlink multicast groups (`RTMGRP_*`): links, neighbours, IPv4
/// addresses and routes.
const GROUPS: u32 = 0x1 | 0x4 | 0x10 | 0x40;

/// A route towards an address: egress interface, next hop, source, MTU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route {
    oif: u32,
    via: Ipv4Addr,
    src: Ipv4Addr,
    mtu: u32,
}

/// `ifindex -> (MTU, MAC)`; the MAC only for Ethernet-like devices.
type Links = HashMap<u32, (u32, Option<[u8; 6]>)>;

/// One pass of resolution: links and neighbours are read once (dumps),
/// routes per address.
pub(crate) struct Resolver {
    nl: Netlink,
    links: Links,
    neighs: Neighs,
}

/// `(ifindex, address) -> (NUD state, MAC)` of the IPv4 neighbours.
type Neighs = HashMap<(u32, Ipv4Addr), (u16, Option<[u8; 6]>)>;

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
        Ok(Resolver { nl, links, neighs })
    }

    /// The next hop of a dest at `addr`: DR (`dr`: the dest is its own
    /// next hop) or TUN. The second value is the neighbour to ask for when
    /// its MAC is unknown.
    pub(crate) fn resolve(
        &mut self,
        addr: Ipv4Addr,
        dr: bool,
    ) -> Result<(xvs_dest_nh, Option<(u32, Ipv4Addr)>), Error> {
        let mut nh = xvs_dest_nh {
            state: xvs_nh_state::XVS_NH_NO_ROUTE.0 as u8,
            ..Default::default()
        };
        let route = route(&mut self.nl, addr).map_err(|source| Error::Io {
            context: format!("route lookup for real server {addr}"),
            source,
        })?;
        let Some(r) = route else {
            return Ok((nh, None));
        };
        let via = if dr { addr } else { r.via };
        let Some(&(link_mtu, Some(smac))) = self.links.get(&r.oif) else {
            // Not an Ethernet device (a tunnel, loopback): no frame to send.
            return Ok((nh, None));
        };
        nh.ifindex = r.oif;
        nh.mtu = if r.mtu != 0 { r.mtu } else { link_mtu };
        nh.src = u32::from_ne_bytes(r.src.octets());
        nh.smac = smac;
        match self.neighs.get(&(r.oif, via)) {
            Some(&(state, Some(mac))) if state & NUD_VALID != 0 => {
                nh.dmac = mac;
                nh.state = xvs_nh_state::XVS_NH_OK.0 as u8;
                Ok((nh, None))
            }
            _ => {
                nh.state = xvs_nh_state::XVS_NH_NO_NEIGH.0 as u8;
                Ok((nh, Some((r.oif, via))))
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

fn dump_links(nl: &mut Netlink) -> Result<Links, io::Error> {
    // struct ifinfomsg: family, pad, type(u16), index(i32), flags, change.
    let body = [0u8; 16];
    let mut out = HashMap::new();
    for (t, b) in nl.request(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, &body)? {
        let Some(ifindex) = u32_at(&b, 4) else {
            continue;
        };
        if t != RTM_NEWLINK {
            continue;
        }
        let (mut mtu, mut mac) = (0, None);
        for (ty, v) in attrs(&b, 16) {
            match ty {
                IFLA_MTU => mtu = u32_of(v).unwrap_or(0),
                IFLA_ADDRESS if v.len() == 6 => mac = v.try_into().ok(),
                _ => {}
            }
        }
        out.insert(ifindex, (mtu, mac));
    }
    Ok(out)
}

/// Every IPv4 neighbour with its state and link-layer address.
fn dump_neighs(nl: &mut Netlink) -> Result<Neighs, io::Error> {
    // struct ndmsg: family, pad1, pad2(u16), ifindex(i32), state(u16),
    // flags(u8), type(u8).
    let mut body = vec![libc::AF_INET as u8, 0, 0, 0];
    body.extend_from_slice(&[0; 8]);
    let mut out = HashMap::new();
    for (t, b) in nl.request(RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, &body)? {
        let (Some(ifindex), Some(state)) = (u32_at(&b, 4), u16_at(&b, 8)) else {
            continue;
        };
        if t != RTM_NEWNEIGH {
            continue;
        }
        let (mut dst, mut mac) = (None, None);
        for (ty, v) in attrs(&b, 12) {
            match ty {
                NDA_DST => dst = ipv4_of(v),
                NDA_LLADDR if v.len() == 6 => mac = v.try_into().ok(),
                _ => {}
            }
        }
        if let Some(d) = dst {
            out.insert((ifindex, d), (state, mac));
        }
    }
    Ok(out)
}

/// The unicast route the kernel would use to send to `addr` (`None`: no
/// route, or a local/blackhole/unreachable one).
fn route(nl: &mut Netlink, addr: Ipv4Addr) -> Result<Option<Route>, io::Error> {
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope,
    // type, flags(u32).
    let mut body = vec![libc::AF_INET as u8, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    push_attr(&mut body, RTA_DST, &addr.octets());
    let replies = match nl.request(RTM_GETROUTE, NLM_F_REQUEST, &body) {
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
    for (ty, b) in replies {
        if ty != RTM_NEWROUTE || b.get(7) != Some(&RTN_UNICAST) {
            continue;
        }
        let mut r = Route {
            oif: 0,
            via: addr,
            src: Ipv4Addr::UNSPECIFIED,
            mtu: 0,
        };
        for (t, v) in attrs(&b, 12) {
            match t {
                RTA_OIF => r.oif = u32_of(v).unwrap_or(0),
                RTA_GATEWAY => r.via = ipv4_of(v).unwrap_or(addr),
                RTA_PREFSRC => r.src = ipv4_of(v).unwrap_or(Ipv4Addr::UNSPECIFIED),
                RTA_METRICS => {
                    for (m, mv) in attrs(v, 0) {
                        if m == RTAX_MTU {
                            r.mtu = u32_of(mv).unwrap_or(0);
                        }
                    }
                }
                _ => {}
            }
        }
        return Ok((r.oif != 0).then_some(r));
    }
    Ok(None)
}

fn u32_of(v: &[u8]) -> Option<u32> {
    u32_at(v, 0)
}

fn ipv4_of(v: &[u8]) -> Option<Ipv4Addr> {
    ipv4_at(v, 0)
}

/// A netlink socket subscribed to route, link, address and neighbour
/// changes: readable when the next hops may have moved.
pub struct Monitor {
    fd: libc::c_int,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        // SAFETY: closing the socket we opened.
        unsafe { libc::close(self.fd) };
    }
}

impl Monitor {
    /// Subscribes (non-blocking socket).
    pub fn open() -> Result<Monitor, Error> {
        // SAFETY: plain socket(2).
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(os_err("netlink socket"));
        }
        let m = Monitor { fd };
        // SAFETY: a zeroed sockaddr_nl with our groups.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        sa.nl_groups = GROUPS;
        // SAFETY: valid address of the right size.
        let rc = unsafe {
            libc::bind(
                fd,
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(os_err("subscribing to route/neighbour changes"));
        }
        Ok(m)
    }

    /// The socket, for poll(2).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.fd
    }

    /// Reads every pending notification; whether there was any (an
    /// overrun counts: something changed and was lost).
    pub fn drain(&self) -> bool {
        let mut buf = vec![0u8; 65536];
        let mut any = false;
        loop {
            // SAFETY: receiving into our buffer.
            let n = unsafe {
                libc::recv(
                    self.fd,
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                any = true;
                continue;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ENOBUFS) => any = true,
                _ => return any,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_readers_refuse_short_values() {
        assert_eq!(u32_of(&[1, 0, 0]), None);
        assert_eq!(u32_of(&5u32.to_ne_bytes()), Some(5));
        assert_eq!(ipv4_of(&[192, 0, 2]), None);
        assert_eq!(ipv4_of(&[192, 0, 2, 7]), Some(Ipv4Addr::new(192, 0, 2, 7)));
    }
}
