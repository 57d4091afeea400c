//! Test frames: Ethernet + IPv4 + TCP/UDP with correct checksums, and the
//! `trafgen` configuration of the UDP workloads.

use std::net::Ipv4Addr;
use xvs_wire::{
    ethernet, ipv4, udp, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpProtocol,
    Ipv4Packet, Ipv4Repr, TcpFlags, TcpRepr, UdpChecksum, UdpRepr,
};

pub const TCP_SYN: u8 = 0x02;
pub const TCP_ACK: u8 = 0x10;

/// Parse `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    s.parse::<EthernetAddress>().ok().map(|m| m.0)
}

/// Ethernet (IPv4) + IPv4 header (DF, `ttl`) around `l4`.
fn ipv4_frame(dst_mac: [u8; 6], src_mac: [u8; 6], ip: Ipv4Repr<'_>, l4: &[u8]) -> Vec<u8> {
    let packet = ip.to_vec(l4).expect("a 20-byte header and a short payload");
    EthernetRepr {
        src_addr: EthernetAddress(src_mac),
        dst_addr: EthernetAddress(dst_mac),
        ethertype: EtherType::Ipv4,
    }
    .to_vec(&packet)
}

fn ipv4_repr(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol) -> Ipv4Repr<'static> {
    Ipv4Repr {
        dont_frag: true,
        ..Ipv4Repr::new(src, dst, proto, 64)
    }
}

/// A 54-byte TCP segment without payload.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    seq: u32,
) -> Vec<u8> {
    let flags = TcpFlags(flags);
    let seg = TcpRepr {
        seq_number: seq,
        ack_number: u32::from(flags.contains(TcpFlags::ACK)),
        window_len: 64240,
        ..TcpRepr::new(sport, dport, flags)
    }
    .to_vec(&[], &src.into(), &dst.into())
    .expect("a 20-byte header");
    ipv4_frame(dst_mac, src_mac, ipv4_repr(src, dst, IpProtocol::Tcp), &seg)
}

/// Set the IPv4 TTL of an Ethernet + IPv4 `frame` (as [`tcp`] builds it)
/// and recompute the header checksum (the TCP/UDP checksum does not cover
/// the TTL). Frames that are not Ethernet + IPv4 are left as they are.
pub fn set_ttl(frame: &mut [u8], ttl: u8) {
    let Ok(mut eth) = EthernetFrame::new_checked(frame) else {
        return;
    };
    if let Ok(mut ip) = Ipv4Packet::new_checked(eth.payload_mut()) {
        ip.set_ttl(ttl);
        ip.fill_checksum();
    }
}

/// The TTL of an Ethernet + IPv4 `frame`, 0 when it is none.
pub fn ttl(frame: &[u8]) -> u8 {
    EthernetFrame::new_checked(frame)
        .ok()
        .and_then(|e| Some(Ipv4Packet::new_quoted(e.payload()).ok()?.ttl()))
        .unwrap_or(0)
}

/// Destination address and port of an Ethernet + IPv4 + TCP/UDP `frame`.
pub fn destination(frame: &[u8]) -> Option<(Ipv4Addr, u16)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    Some((ip.dst_addr(), xvs_wire::ports(ip.payload()).ok()?.1))
}

/// Size of the UDP benchmark frames (Ethernet header included, FCS not).
pub const UDP_FRAME: usize = 64;

/// A `trafgen` configuration sending 64-byte UDP frames from `src` to
/// `dst:dport` (UDP checksum 0, i.e. none, so the source port may vary).
/// `many`: the source port walks two co-prime byte counters
/// (127 × 256 = 32 512 different flows, one per packet in turn); otherwise
/// every frame is the same flow (source port 40000).
pub fn trafgen_udp(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    dport: u16,
    many: bool,
) -> String {
    let payload = UDP_FRAME - ethernet::HEADER_LEN - ipv4::HEADER_LEN - udp::HEADER_LEN;
    let dgram = UdpRepr {
        src_port: 40000,
        dst_port: dport,
    }
    .to_vec(
        &vec![0x41; payload],
        &src.into(),
        &dst.into(),
        UdpChecksum::Zero,
    )
    .expect("a short datagram");
    let f = ipv4_frame(
        dst_mac,
        src_mac,
        ipv4_repr(src, dst, IpProtocol::Udp),
        &dgram,
    );
    // trafgen lists the bytes up to the UDP source port, then the port
    // (walking or fixed), then the rest of the UDP header, then the fill.
    let hex = |b: &[u8]| b.iter().map(|b| format!("0x{b:02x}")).collect::<Vec<_>>();
    let sport_at = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
    let data_at = sport_at + udp::HEADER_LEN;
    let mut items = hex(&f[..sport_at]);
    if many {
        items.push("dinc(4, 130)".into());
        items.push("dinc(0, 255)".into());
    } else {
        items.extend(hex(&f[sport_at..sport_at + 2]));
    }
    items.extend(hex(&f[sport_at + 2..data_at]));
    items.push(format!("fill(0x41, {payload})"));
    format!("{{ {} }}\n", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use xvs_wire::TcpPacket;

    #[test]
    fn checksums_verify() {
        let f = tcp(
            [2; 6],
            [4; 6],
            "198.51.100.2".parse().unwrap(),
            "198.51.100.10".parse().unwrap(),
            1234,
            80,
            TCP_SYN,
            7,
        );
        assert_eq!(f.len(), 54);
        let ip = |f: &[u8]| Ipv4Packet::new_checked(f[14..].to_vec()).unwrap();
        assert!(ip(&f).verify_checksum());
        let (s, d) = (ip(&f).src_addr().into(), ip(&f).dst_addr().into());
        let seg = TcpPacket::new_checked(ip(&f).payload().to_vec()).unwrap();
        assert!(seg.verify_checksum(&s, &d));
        let mut g = f.clone();
        set_ttl(&mut g, 255);
        assert_eq!(ttl(&g), 255);
        assert!(ip(&g).verify_checksum());
        assert_eq!(ip(&g).payload(), ip(&f).payload());
        assert_eq!(
            destination(&f),
            Some(("198.51.100.10".parse().unwrap(), 80))
        );
        assert_eq!(destination(&f[..37]), None);
    }

    #[test]
    fn trafgen_frame_is_64_bytes() {
        let c = trafgen_udp(
            [2; 6],
            [4; 6],
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            9,
            false,
        );
        // 62 listed bytes + fill(…, 22)… minus the 20 payload bytes.
        assert_eq!(c.matches("0x").count() - 1, UDP_FRAME - 22);
        assert!(c.contains("fill(0x41, 22)"));
        let m = trafgen_udp(
            [2; 6],
            [4; 6],
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            9,
            true,
        );
        assert_eq!(m.matches("dinc").count(), 2);
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Some([2, 0, 0, 0, 0, 10]));
    }
}
