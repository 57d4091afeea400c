//! Test frames: Ethernet + IPv4 + TCP/UDP with correct checksums, and the
//! `trafgen` configuration of the UDP workloads.

use std::net::Ipv4Addr;

pub const TCP_SYN: u8 = 0x02;
pub const TCP_ACK: u8 = 0x10;

/// Parse `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s
        .trim()
        .split(':')
        .filter_map(|x| u8::from_str_radix(x, 16).ok())
        .collect();
    v.try_into().ok()
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn sum16(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

/// Internet checksum (RFC 1071) of `data`.
pub fn csum(data: &[u8]) -> u16 {
    fold(sum16(data))
}

fn ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4_len: usize, ttl: u8) -> [u8; 20] {
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = ttl;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip
}

fn ether(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    f
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
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    if flags & TCP_ACK != 0 {
        t[8..12].copy_from_slice(&1u32.to_be_bytes());
    }
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let mut pseudo = Vec::with_capacity(32);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    pseudo.extend_from_slice(&t);
    let c = csum(&pseudo);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    let mut f = ether(dst_mac, src_mac);
    f.extend_from_slice(&ipv4_header(src, dst, 6, 20, 64));
    f.extend_from_slice(&t);
    f
}

/// Set the IPv4 TTL of an Ethernet + IPv4 `frame` (as [`tcp`] builds it)
/// and recompute the header checksum (the TCP/UDP checksum does not cover
/// the TTL).
pub fn set_ttl(frame: &mut [u8], ttl: u8) {
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    frame[22] = ttl;
    frame[24..26].fill(0);
    let c = csum(&frame[14..14 + ihl]);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
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
    let payload = UDP_FRAME - 14 - 20 - 8;
    let mut f = ether(dst_mac, src_mac);
    f.extend_from_slice(&ipv4_header(src, dst, 17, 8 + payload, 64));
    let mut items: Vec<String> = f.iter().map(|b| format!("0x{b:02x}")).collect();
    if many {
        items.push("dinc(4, 130)".into());
        items.push("dinc(0, 255)".into());
    } else {
        items.extend(40000u16.to_be_bytes().iter().map(|b| format!("0x{b:02x}")));
    }
    let mut udp = Vec::new();
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    items.extend(udp.iter().map(|b| format!("0x{b:02x}")));
    items.push(format!("fill(0x41, {payload})"));
    format!("{{ {} }}\n", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(csum(&f[14..34]), 0);
        let mut pseudo = f[26..34].to_vec();
        pseudo.extend_from_slice(&[0, 6, 0, 20]);
        pseudo.extend_from_slice(&f[34..]);
        assert_eq!(csum(&pseudo), 0);
        let mut g = f.clone();
        set_ttl(&mut g, 255);
        assert_eq!(g[22], 255);
        assert_eq!(csum(&g[14..34]), 0);
        assert_eq!(g[34..], f[34..]);
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
