use super::*;
use crate::every_prefix;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn repr() -> Ipv6Repr {
    let mut r = Ipv6Repr::new(a("2001:db8::2"), a("2001:db8:1::10"), IpProtocol::Tcp, 64);
    r.traffic_class = 0xb9;
    r.flow_label = 0xabcde;
    r
}

/// An extension header of `len` bytes (a multiple of 8) with next header
/// `next`.
fn opts(next: u8, len: usize) -> Vec<u8> {
    let mut h = vec![0u8; len];
    h[0] = next;
    h[1] = (len / 8 - 1) as u8;
    h
}

fn frag(next: u8, offset_bytes: u16, more: bool) -> Vec<u8> {
    let mut h = vec![0u8; 8];
    h[0] = next;
    let f = offset_bytes | u16::from(more);
    h[2..4].copy_from_slice(&f.to_be_bytes());
    h[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    h
}

#[test]
fn round_trip_and_known_bytes() {
    let pkt = repr().to_vec(&[1, 2, 3, 4]).unwrap();
    assert_eq!(pkt.len(), 44);
    // version 6, tc 0xb9, flow 0xabcde
    assert_eq!(&pkt[..8], &[0x6b, 0x9a, 0xbc, 0xde, 0, 4, 6, 64]);
    let p = Packet::new_checked(&pkt[..]).unwrap();
    assert_eq!(Ipv6Repr::parse(&p).unwrap(), repr());
    assert_eq!(p.payload(), &[1, 2, 3, 4]);
    assert_eq!(
        p.upper().unwrap(),
        Upper {
            protocol: 6,
            offset: 0,
            fragment: false,
            frag_offset: 0
        }
    );
}

#[test]
fn lengths_are_checked() {
    let pkt = repr().to_vec(&[0; 20]).unwrap();
    every_prefix(&pkt, pkt.len(), |b| Packet::new_checked(b).map(drop));
    assert!(Packet::new_quoted(&pkt[..40]).is_ok());
    assert!(Packet::new_quoted(&pkt[..39]).is_err());
    let mut v4 = pkt.clone();
    v4[0] = 0x45;
    let p = Packet::new_checked(&v4[..]).unwrap();
    assert!(Ipv6Repr::parse(&p).is_err());
}

#[test]
fn the_walk_steps_over_extension_headers() {
    use nexthdr::*;
    // hop-by-hop (8) -> dest opts (16) -> routing (24) -> AH (4 words + 2
    // = 24 bytes, hdrlen 4) -> UDP
    let mut payload = opts(DEST, 8);
    payload.extend(opts(ROUTING, 16));
    payload.extend(opts(AUTH, 24));
    let mut ah = vec![0u8; 24];
    ah[0] = 17;
    ah[1] = 4; // (4 + 2) * 4 = 24
    payload.extend(ah);
    payload.extend([0u8; 8]);
    let u = find_upper(HOP, &payload).unwrap();
    assert_eq!((u.protocol, u.offset, u.fragment), (17, 72, false));
    // As the kernel, the walk reads only the first two bytes of each
    // header (next header, length; the headers start at 0, 8, 24, 48): a
    // prefix without all of those is an error, one that cuts only the
    // rest of the last ends with an offset the upper-layer read then
    // finds past the end. Never a panic.
    for n in 0..72 {
        let cut = n < 48 + 2;
        let r = find_upper(HOP, &payload[..n]);
        assert_eq!(r.is_err(), cut, "{n}: {r:?}");
        if let Ok(u) = r {
            assert!(u.offset > n, "{n}: {u:?}");
        }
    }
}

#[test]
fn fragments_as_the_kernel_reports_them() {
    use nexthdr::*;
    // first fragment: walked through, flag set
    let mut first = frag(6, 0, true);
    first.extend([0u8; 20]);
    let u = find_upper(FRAGMENT, &first).unwrap();
    assert_eq!(
        u,
        Upper {
            protocol: 6,
            offset: 8,
            fragment: true,
            frag_offset: 0
        }
    );
    // later fragment: ends at the fragment header with its offset
    let later = frag(6, 1448, false);
    let u = find_upper(FRAGMENT, &later).unwrap();
    assert_eq!((u.protocol, u.fragment, u.frag_offset), (6, true, 1448));
    // a later fragment followed by an extension header: the kernel's -ENOENT
    assert!(find_upper(FRAGMENT, &frag(DEST, 8, false)).is_err());
}

#[test]
fn none_and_esp_end_the_walk_and_the_count_is_bounded() {
    use nexthdr::*;
    assert_eq!(find_upper(NONE, &[]).unwrap().protocol, NONE);
    let u = find_upper(HOP, &opts(ESP, 8)).unwrap();
    assert_eq!((u.protocol, u.offset), (ESP, 8));
    // twelve extension headers are walked, a thirteenth is refused
    let chain = |n: usize| {
        let mut v = Vec::new();
        for i in 0..n {
            v.extend(opts(if i + 1 == n { 6 } else { DEST }, 8));
        }
        v
    };
    assert_eq!(find_upper(DEST, &chain(12)).unwrap().offset, 96);
    assert!(find_upper(DEST, &chain(13)).is_err());
}
