//! The director's own addresses as the kernel's `local` routing table
//! has them (`RTN_LOCAL` routes: every interface address, 127.0.0.0/8,
//! and any `ip route add local ...`), read with one dump: whether a NAT
//! dest is local is a prefix match, not a route lookup per dest, so a
//! table of thousands of NAT real servers costs one netlink dump per
//! refresh. DR/TUN dests are local when their route lookup (which they
//! need anyway) says so.

use std::net::Ipv4Addr;

use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::Error;
use crate::netlink::{Netlink, NLM_F_DUMP, NLM_F_REQUEST};

/// `RT_TABLE_LOCAL`.
const TABLE_LOCAL: u32 = 255;

/// The local IPv4 prefixes: `(network, prefix length)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LocalTable(Vec<(u32, u8)>);

impl LocalTable {
    /// Dumps the local table (a socket of its own in strict mode, so the
    /// kernel sends that table only, not a router's full tables) and
    /// keeps its `RTN_LOCAL` routes.
    pub(crate) fn read() -> Result<LocalTable, Error> {
        let mut nl = Netlink::open()?;
        nl.strict();
        let mut req = RouteMessage::default();
        req.header.address_family = AddressFamily::Inet;
        req.header.table = TABLE_LOCAL as u8;
        let replies = nl
            .request(
                RouteNetlinkMessage::GetRoute(req),
                NLM_F_REQUEST | NLM_F_DUMP,
            )
            .map_err(|source| Error::Io {
                context: "reading the local routes (RTM_GETROUTE)".into(),
                source,
            })?;
        Ok(Self::of(replies))
    }

    /// The local table's `RTN_LOCAL` routes of a route dump's answer.
    pub(crate) fn of(replies: Vec<RouteNetlinkMessage>) -> LocalTable {
        let mut out = Vec::new();
        for reply in replies {
            let RouteNetlinkMessage::NewRoute(m) = reply else {
                continue;
            };
            if m.header.kind != RouteType::Local {
                continue;
            }
            // The header holds the table id below 256; RTA_TABLE any.
            let mut table = u32::from(m.header.table);
            let mut dst = None;
            for a in &m.attributes {
                match a {
                    RouteAttribute::Table(t) => table = *t,
                    RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = Some(*d),
                    _ => {}
                }
            }
            let len = m.header.destination_prefix_length.min(32);
            if let (TABLE_LOCAL, Some(d)) = (table, dst) {
                out.push((u32::from(d) & mask(len), len));
            }
        }
        LocalTable(out)
    }

    /// Whether `addr` is one of the director's own (inside a local
    /// prefix), as `inet_addr_type` would say `RTN_LOCAL`.
    pub(crate) fn contains(&self, addr: Ipv4Addr) -> bool {
        let a = u32::from(addr);
        self.0.iter().any(|&(net, len)| a & mask(len) == net)
    }
}

fn mask(len: u8) -> u32 {
    match len {
        0 => 0,
        l => u32::MAX << (32 - u32::from(l.min(32))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(kind: RouteType, table: u8, dst: Ipv4Addr, len: u8) -> RouteNetlinkMessage {
        let mut m = RouteMessage::default();
        m.header.kind = kind;
        m.header.table = table;
        m.header.destination_prefix_length = len;
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
        RouteNetlinkMessage::NewRoute(m)
    }

    #[test]
    fn local_routes_of_the_local_table_make_local_addresses() {
        let t = LocalTable::of(vec![
            route(RouteType::Local, 255, Ipv4Addr::new(127, 0, 0, 0), 8),
            route(RouteType::Local, 255, Ipv4Addr::new(198, 51, 100, 1), 32),
            // Broadcast routes of the local table, and main-table routes,
            // are not local addresses.
            route(
                RouteType::Broadcast,
                255,
                Ipv4Addr::new(198, 51, 100, 255),
                32,
            ),
            route(RouteType::Unicast, 254, Ipv4Addr::new(203, 0, 113, 0), 24),
            route(RouteType::Local, 254, Ipv4Addr::new(203, 0, 113, 7), 32),
        ]);
        assert!(t.contains(Ipv4Addr::new(127, 0, 0, 1)));
        assert!(t.contains(Ipv4Addr::new(127, 255, 0, 9)));
        assert!(t.contains(Ipv4Addr::new(198, 51, 100, 1)));
        assert!(!t.contains(Ipv4Addr::new(198, 51, 100, 2)));
        assert!(!t.contains(Ipv4Addr::new(198, 51, 100, 255)));
        assert!(!t.contains(Ipv4Addr::new(203, 0, 113, 7)));
        assert!(!LocalTable::default().contains(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn any_prefix_length_is_taken() {
        let t = LocalTable::of(vec![
            route(RouteType::Local, 255, Ipv4Addr::new(10, 1, 2, 3), 0),
            route(RouteType::Local, 255, Ipv4Addr::new(10, 1, 2, 3), 200),
        ]);
        // /0 (AnyIP everything) and a length the kernel never sends.
        assert!(t.contains(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(t.0[1], (u32::from(Ipv4Addr::new(10, 1, 2, 3)), 32));
    }
}
