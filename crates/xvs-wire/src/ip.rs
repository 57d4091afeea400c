//! Family-generic IP pieces: addresses and protocol numbers.

use std::net::{Ipv4Addr, Ipv6Addr};

/// An IP address of either family (TCP and UDP checksums take these, so
/// IPv6 reuses them unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpAddress {
    /// IPv4.
    V4(Ipv4Addr),
    /// IPv6.
    V6(Ipv6Addr),
}

impl IpAddress {
    /// The address bytes in network order (4 or 16).
    pub fn octets(&self) -> Vec<u8> {
        match self {
            IpAddress::V4(a) => a.octets().to_vec(),
            IpAddress::V6(a) => a.octets().to_vec(),
        }
    }
}

impl From<Ipv4Addr> for IpAddress {
    fn from(a: Ipv4Addr) -> Self {
        IpAddress::V4(a)
    }
}

impl From<Ipv6Addr> for IpAddress {
    fn from(a: Ipv6Addr) -> Self {
        IpAddress::V6(a)
    }
}

/// IP protocol numbers (IPv4 `protocol`, IPv6 `next header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    /// ICMP (1).
    Icmp,
    /// IPv4 in IPv4, IPIP (4).
    IpIp,
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
    /// IPv6 in IP (41).
    Ipv6,
    /// GRE (47).
    Gre,
    /// ICMPv6 (58).
    Icmpv6,
    /// Any other number.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            1 => IpProtocol::Icmp,
            4 => IpProtocol::IpIp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            132 => IpProtocol::Sctp,
            41 => IpProtocol::Ipv6,
            47 => IpProtocol::Gre,
            58 => IpProtocol::Icmpv6,
            o => IpProtocol::Unknown(o),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::Icmp => 1,
            IpProtocol::IpIp => 4,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Sctp => 132,
            IpProtocol::Ipv6 => 41,
            IpProtocol::Gre => 47,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Unknown(o) => o,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_numbers_round_trip() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(v)), v);
        }
    }
}
