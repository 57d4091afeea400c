//! The Internet checksum (RFC 1071), family-generic pseudo-headers.
//!
//! Convention (smoltcp's): [`data`] and [`pseudo_header`] return *folded
//! sums*, not complemented; a header's checksum field holds
//! `!combine(&[..])`, and a packet verifies when the combined sum over the
//! covered bytes, field included, is `0xffff`.

use crate::{IpAddress, IpProtocol};

/// Adds big-endian 16-bit words of `data` (an odd last byte is padded
/// with zero) into a wide accumulator that cannot overflow for any frame.
fn add(mut acc: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    acc
}

/// Folds a wide sum to 16 bits with end-around carry.
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Folded ones'-complement sum of `data`.
pub fn data(data: &[u8]) -> u16 {
    fold(add(0, data))
}

/// Ones'-complement sum of partial sums.
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// Folded sum of the TCP/UDP pseudo-header of either family: IPv4's
/// (addresses, zero, protocol, 16-bit length) and IPv6's (addresses,
/// 32-bit length, zeros, next header) add up to the same words, so one
/// function serves both.
pub fn pseudo_header(src: &IpAddress, dst: &IpAddress, proto: IpProtocol, length: u32) -> u16 {
    let mut acc = add(add(0, &src.octets()), &dst.octets());
    acc += u64::from(u8::from(proto));
    acc += u64::from(length >> 16) + u64::from(length & 0xffff);
    fold(acc)
}

/// The checksum field for `data` alone (e.g. an IPv4 header or an ICMP
/// message): complement of its sum.
pub fn checksum(bytes: &[u8]) -> u16 {
    !data(bytes)
}

/// Whether `bytes`, checksum field included, verify.
pub fn verifies(bytes: &[u8]) -> bool {
    data(bytes) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let b = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&b), 0xddf2);
        assert_eq!(checksum(&b), 0x220d);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(data(&[]), 0);
    }

    #[test]
    fn pseudo_header_matches_the_layouts() {
        let (s, d) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(192, 168, 1, 2));
        let mut v4 = Vec::new();
        v4.extend_from_slice(&s.octets());
        v4.extend_from_slice(&d.octets());
        v4.extend_from_slice(&[0, 6, 0x05, 0xdc]);
        let got = pseudo_header(&s.into(), &d.into(), IpProtocol::Tcp, 1500);
        assert_eq!(got, data(&v4));

        let (s, d) = (
            Ipv6Addr::LOCALHOST,
            "2001:db8::1".parse::<Ipv6Addr>().unwrap(),
        );
        let mut v6 = Vec::new();
        v6.extend_from_slice(&s.octets());
        v6.extend_from_slice(&d.octets());
        v6.extend_from_slice(&70000u32.to_be_bytes());
        v6.extend_from_slice(&[0, 0, 0, 17]);
        let got = pseudo_header(&s.into(), &d.into(), IpProtocol::Udp, 70000);
        assert_eq!(got, data(&v6));
    }

    #[test]
    fn large_buffers_do_not_overflow() {
        let b = vec![0xff; 1 << 20];
        assert_eq!(data(&b), 0xffff);
    }
}
