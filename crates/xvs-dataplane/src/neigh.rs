//! Neighbour resolution for DR/TUN dests, with raw rtnetlink (no shelling
//! out, no extra crates).
//!
//! * [`resolve`]: for each address, `RTM_GETROUTE` finds the egress
//!   interface and next hop (the gateway when the route has one), then
//!   `RTM_NEWNEIGH` with `NTF_USE` starts ARP for it. The entry is created
//!   `managed` (`NTF_EXT_MANAGED`, kernel >= 5.16), so the kernel keeps it
//!   resolved even though XDP-forwarded traffic never confirms it; older
//!   kernels fall back to a plain `NTF_USE`. Permanent and no-ARP entries
//!   are left alone.

use crate::error::Error;
use crate::netlink::{
    attrs, i32_at, ipv4_at, push_attr, u16_at, Netlink, NLM_F_ACK, NLM_F_REQUEST,
};
use std::io;
use std::net::Ipv4Addr;

const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_LINK_NETNSID: u16 = 37;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTN_UNICAST: u8 = 1;
const NDA_DST: u16 = 1;
const NDA_FLAGS_EXT: u16 = 15;
const NTF_USE: u8 = 0x01;
const NTF_EXT_MANAGED: u32 = 0x01;
const NUD_NOARP: u16 = 0x40;
const NUD_PERMANENT: u16 = 0x80;

impl Netlink {
    /// `(ifindex, next hop)` of the route to `addr`; `None` when it is not
    /// a unicast route (local, blackhole, ...).
    fn route(&mut self, addr: Ipv4Addr) -> Result<Option<(i32, Ipv4Addr)>, io::Error> {
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol,
        // scope, type, flags(u32).
        let mut body = vec![libc::AF_INET as u8, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        push_attr(&mut body, RTA_DST, &addr.octets());
        let replies = self.request(RTM_GETROUTE, NLM_F_REQUEST, &body)?;
        for (ty, b) in replies {
            if ty != RTM_NEWROUTE || b.len() < 12 {
                continue;
            }
            if b.get(7) != Some(&RTN_UNICAST) {
                return Ok(None);
            }
            let mut oif = 0;
            let mut via = addr;
            for (t, v) in attrs(&b, 12) {
                match t {
                    RTA_OIF if v.len() == 4 => oif = i32_at(v, 0).unwrap_or(0),
                    RTA_GATEWAY if v.len() == 4 => via = ipv4_at(v, 0).unwrap_or(via),
                    _ => {}
                }
            }
            return Ok((oif > 0).then_some((oif, via)));
        }
        Ok(None)
    }

    fn ndmsg(ifindex: i32, state: u16, flags: u8) -> Vec<u8> {
        // struct ndmsg: family, pad1, pad2(u16), ifindex(i32), state(u16),
        // flags(u8), type(u8).
        let mut b = vec![libc::AF_INET as u8, 0, 0, 0];
        b.extend_from_slice(&ifindex.to_ne_bytes());
        b.extend_from_slice(&state.to_ne_bytes());
        b.push(flags);
        b.push(0);
        b
    }

    /// NUD state of an existing neighbour entry.
    fn neigh_state(&mut self, ifindex: i32, addr: Ipv4Addr) -> Result<Option<u16>, io::Error> {
        let mut body = Self::ndmsg(ifindex, 0, 0);
        push_attr(&mut body, NDA_DST, &addr.octets());
        match self.request(RTM_GETNEIGH, NLM_F_REQUEST, &body) {
            Ok(r) => Ok(r
                .into_iter()
                .find(|(t, b)| *t == RTM_NEWNEIGH && b.len() >= 12)
                .and_then(|(_, b)| u16_at(&b, 8))),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn neigh_use(&mut self, ifindex: i32, addr: Ipv4Addr, managed: bool) -> Result<(), io::Error> {
        let mut body = Self::ndmsg(ifindex, 0, NTF_USE);
        push_attr(&mut body, NDA_DST, &addr.octets());
        if managed {
            push_attr(&mut body, NDA_FLAGS_EXT, &NTF_EXT_MANAGED.to_ne_bytes());
        }
        self.request(
            RTM_NEWNEIGH,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            &body,
        )
        .map(|_| ())
    }
}

/// Whether `ifindex` is a veth whose peer lives in another network
/// namespace (`RTM_GETLINK`: link kind `veth` and an `IFLA_LINK_NETNSID`,
/// which the kernel only reports for a peer elsewhere). Only then can tc
/// hand frames straight to the peer (`bpf_redirect_peer`).
pub(crate) fn veth_peer_elsewhere(ifindex: i32) -> Result<bool, Error> {
    let mut nl = Netlink::open()?;
    // struct ifinfomsg: family, pad, type(u16), index(i32), flags, change.
    let mut body = vec![libc::AF_UNSPEC as u8, 0, 0, 0];
    body.extend_from_slice(&ifindex.to_ne_bytes());
    body.extend_from_slice(&[0; 8]);
    let replies = nl
        .request(RTM_GETLINK, NLM_F_REQUEST, &body)
        .map_err(|source| Error::Io {
            context: format!("RTM_GETLINK for ifindex {ifindex}"),
            source,
        })?;
    let Some((_, b)) = replies
        .iter()
        .find(|(t, b)| *t == RTM_NEWLINK && b.len() >= 16)
    else {
        return Ok(false);
    };
    let mut veth = false;
    let mut elsewhere = false;
    for (t, v) in attrs(b, 16) {
        match t {
            IFLA_LINKINFO => {
                veth = attrs(v, 0).iter().any(|(k, d)| {
                    *k == IFLA_INFO_KIND && d.split(|&c| c == 0).next() == Some(b"veth")
                });
            }
            IFLA_LINK_NETNSID => elsewhere = true,
            _ => {}
        }
    }
    Ok(veth && elsewhere)
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
        let Some((ifindex, via)) = nl.route(addr).map_err(|source| Error::Io {
            context: ctx("route lookup"),
            source,
        })?
        else {
            return Err(Error::Io {
                context: ctx("route lookup"),
                source: io::Error::new(io::ErrorKind::NotFound, "no unicast route"),
            });
        };
        nl.ask(ifindex, via).map_err(|source| Error::Io {
            context: ctx(&format!("triggering ARP for {via}")),
            source,
        })?;
    }
    Ok(())
}
