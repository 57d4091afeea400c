use super::*;
use crate::{ethernet, ipv4, Ipv4Packet, Ipv4Repr};
use std::net::Ipv4Addr;

/// A SYN captured on a veth pair with transmit checksum offload off
/// (Linux 6.1, 198.51.100.1:43244 -> 198.51.100.2:8080): MSS, SACK
/// permitted, timestamps, NOP, window scale.
const CAPTURED: &str = "d2f5035019a6127b41a752ce08004500003c09f440004006dc5dc6336401c6336402\
a8ec1f90b012a1ad00000000a002faf079aa0000020405b40402080aacedb7cc000000000103030a";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn captured_syn_verifies_and_parses() {
    let f = unhex(CAPTURED);
    let eth = ethernet::Frame::new_checked(&f[..]).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let ipr = Ipv4Repr::parse(&ip).unwrap();
    assert_eq!(ipr.src_addr, Ipv4Addr::new(198, 51, 100, 1));
    assert!(ipr.dont_frag);
    let (s, d) = (ipr.src_addr.into(), ipr.dst_addr.into());
    let t = Packet::new_checked(ip.payload()).unwrap();
    let r = TcpRepr::parse(&t, &s, &d).unwrap();
    assert_eq!(
        (r.src_port, r.dst_port, r.flags),
        (43244, 8080, TcpFlags::SYN)
    );
    assert_eq!(r.window_len, 64240);
    let opts: Vec<_> = options(r.options).map(|o| o.unwrap()).collect();
    assert_eq!(
        opts,
        [
            TcpOption::Mss(1460),
            TcpOption::SackPermitted,
            TcpOption::Timestamps(0xaced_b7cc, 0),
            TcpOption::NoOp,
            TcpOption::WindowScale(10),
        ]
    );
    // Emitting the parsed meanings gives back the captured bytes.
    let seg = r.to_vec(t.payload(), &s, &d).unwrap();
    let ip_again = Ipv4Repr {
        ident: 0x09f4,
        ..ipr
    }
    .to_vec(&seg)
    .unwrap();
    assert_eq!(&ip_again[..], &f[ethernet::HEADER_LEN..]);
    assert_eq!(t.checksum(), 0x79aa);
    assert_eq!(ip.checksum(), 0xdc5d);
    // A wrong address fails the pseudo-header.
    let other = Ipv4Addr::new(198, 51, 100, 3).into();
    assert_eq!(TcpRepr::parse(&t, &s, &other), Err(Error::Checksum("TCP")));
}

#[test]
fn round_trip_and_every_truncation() {
    let (s, d) = (
        IpAddress::from(Ipv4Addr::new(172, 16, 0, 1)),
        IpAddress::from(Ipv4Addr::new(10, 0, 0, 100)),
    );
    let r = TcpRepr {
        seq_number: 1000,
        ack_number: 7,
        window_len: 65535,
        options: &[1, 1, 1, 0],
        ..TcpRepr::new(40000, 80, TcpFlags::SYN | TcpFlags::ACK)
    };
    let b = r.to_vec(b"hello", &s, &d).unwrap();
    let p = Packet::new_checked(&b[..]).unwrap();
    assert_eq!(TcpRepr::parse(&p, &s, &d).unwrap(), r);
    assert_eq!(p.payload(), b"hello");
    assert!(p.flags().contains(TcpFlags::ACK));
    // A prefix is a shorter segment: its checksum no longer verifies.
    crate::every_prefix(&b, b.len(), |x| {
        TcpRepr::parse(&Packet::new_checked(x)?, &s, &d).map(drop)
    });
    let ip = Ipv4Repr::new(
        Ipv4Addr::LOCALHOST,
        Ipv4Addr::LOCALHOST,
        IpProtocol::Tcp,
        64,
    )
    .to_vec(&b)
    .unwrap();
    crate::every_prefix(&ip, ip.len(), |x| {
        let ip = ipv4::Packet::new_checked(x)?;
        Packet::new_checked(ip.payload()).map(|_| ())
    });
}

#[test]
fn bad_options_and_offsets() {
    let bad: [&[u8]; 5] = [&[2], &[2, 1], &[2, 3, 0], &[3, 9, 0], &[8, 10, 0, 0]];
    for o in bad {
        assert!(options(o).any(|x| x.is_err()), "{o:?}");
    }
    assert_eq!(options(&[0, 9, 9]).count(), 1, "EOL ends the list");
    assert_eq!(
        options(&[30, 3, 7]).next(),
        Some(Ok(TcpOption::Unknown(30, &[7])))
    );
    let mut b = [0u8; 20];
    b[12] = 0x40;
    assert!(Packet::new_checked(&b[..]).is_err());
    b[12] = 0x60;
    assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
    let mut raw = [0x50u8; 20];
    let mut p = Packet::new_checked(&mut raw[..]).unwrap();
    p.set_header_len(60);
    assert!(p.options().is_empty() && p.payload().is_empty());
}
