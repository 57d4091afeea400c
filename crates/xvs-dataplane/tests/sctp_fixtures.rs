//! BPF_PROG_TEST_RUN fixtures for SCTP services (`--sctp-service`): the
//! NAT rewrite with its CRC32c update, IPVS's SCTP state table in both
//! directions and input-only, which packets may open a connection, and a
//! closed connection's tuple reused by a new INIT. Need root; `cargo
//! xtask test` runs them with `--ignored` in both attach modes.

mod common;

use std::net::Ipv4Addr;

use xvs_core::model::{ConnState, Dest, FwdMethod, Protocol, Service, ServiceKey};
use xvs_dataplane::{Dataplane, SvcSched};
use xvs_wire::sctp::{chunk, chunk as cid};
use xvs_wire::{
    ethernet, EtherType, EthernetAddress, EthernetRepr, Ipv4Packet, Ipv4Repr, SctpPacket, SctpRepr,
};

const XDP_PASS: u32 = 2;
const SCTP: u8 = 132;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const VPORT: u16 = 5060;
const CLIENT: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);
const RS: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const RPORT: u16 = 6060;

/// An SCTP frame `src:sport -> dst:dport` carrying `chunks` (each a
/// (type, value length) pair), CRC right.
fn frame(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, chunks: &[(u8, usize)]) -> Vec<u8> {
    let mut body = Vec::new();
    for &(kind, len) in chunks {
        let value: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        body.extend(chunk(kind, 0, &value).expect("chunk fits"));
    }
    let sctp = SctpRepr {
        src_port: sport,
        dst_port: dport,
        verification_tag: 0x0102_0304,
    }
    .to_vec(&body);
    let ip = Ipv4Repr::new(src, dst, SCTP.into(), 64)
        .to_vec(&sctp)
        .expect("IPv4 packet");
    EthernetRepr {
        src_addr: EthernetAddress([0x02, 0, 0, 0, 0, 0x02]),
        dst_addr: EthernetAddress([0x02, 0, 0, 0, 0, 0x01]),
        ethertype: EtherType::Ipv4,
    }
    .to_vec(&ip)
}

fn c2v(sport: u16, chunks: &[(u8, usize)]) -> Vec<u8> {
    frame(CLIENT, sport, VIP, VPORT, chunks)
}

fn r2c(cport: u16, chunks: &[(u8, usize)]) -> Vec<u8> {
    frame(RS, RPORT, CLIENT, cport, chunks)
}

/// The IPv4 packet of an output frame, and its SCTP packet.
fn parts(f: &[u8]) -> (Ipv4Packet<&[u8]>, SctpPacket<&[u8]>) {
    let l3 = f.get(ethernet::HEADER_LEN..).expect("Ethernet");
    let ip = Ipv4Packet::new_checked(l3).expect("IPv4");
    let l4 = l3
        .get(ip.header_len()..usize::from(ip.total_len()))
        .expect("payload");
    (ip, SctpPacket::new_checked(l4).expect("SCTP"))
}

/// A namespace of its own and service VIP:5060 (SCTP, rr) to RS:6060 by
/// `fwd`.
fn setup(fwd: FwdMethod, rport: u16) -> Dataplane {
    // SAFETY: affects only the calling thread (netns is per task).
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
    let dp = Dataplane::open(&common::options()).expect("open (root needed)");
    let mut d = Dest::new(RS, rport);
    d.fwd = fwd;
    dp.upsert_dest(0, 0, &d).expect("dest");
    let key = ServiceKey {
        fwmark: 0,
        proto: Protocol::Sctp,
        addr: VIP.into(),
        port: VPORT,
    };
    dp.upsert_service(0, &Service::new(key, "rr"), &SvcSched::from_ring(&[0]))
        .expect("service");
    dp
}

fn run(dp: &Dataplane, f: &[u8]) -> (u32, Vec<u8>) {
    dp.test_run(f, None).expect("test_run")
}

fn state(dp: &Dataplane, cport: u16) -> ConnState {
    let conns = dp.conns().expect("conns");
    let c = conns.iter().find(|c| c.cport == cport).expect("conn");
    assert_eq!(c.proto, Protocol::Sctp);
    c.state
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn nat_rewrites_the_ports_and_keeps_the_crc_right_at_every_length() {
    let dp = setup(FwdMethod::Masq, RPORT);
    // SCTP lengths whose "bytes after the port" use one to three nibbles
    // of sctp_crc.h's table (the fourth: sctp_crc_table_is_the_powers).
    for (i, len) in [0usize, 40, 300, 1380].into_iter().enumerate() {
        let cport = 40000 + i as u16;
        let init = c2v(cport, &[(cid::INIT, len)]);
        let (v, out) = run(&dp, &init);
        assert_eq!(v, XDP_PASS, "fib misses in an empty netns: passed");
        let (ip, sctp) = parts(&out);
        assert_eq!((ip.dst_addr(), sctp.dst_port()), (RS, RPORT));
        assert_eq!((ip.src_addr(), sctp.src_port()), (CLIENT, cport));
        assert!(ip.verify_checksum(), "IP checksum");
        assert!(sctp.verify_checksum(), "CRC after DNAT, length {len}");

        let ack = r2c(cport, &[(cid::INIT_ACK, len + 8)]);
        let (v, out) = run(&dp, &ack);
        assert_eq!(v, XDP_PASS);
        let (ip, sctp) = parts(&out);
        assert_eq!((ip.src_addr(), sctp.src_port()), (VIP, VPORT));
        assert!(ip.verify_checksum());
        assert!(sctp.verify_checksum(), "CRC after SNAT, length {len}");
    }
    assert_eq!(dp.counter("nat_in").expect("counter"), 4);
    assert_eq!(dp.counter("nat_out").expect("counter"), 4);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_wrong_crc_stays_wrong_and_an_unchanged_port_keeps_it() {
    // vport == rport: IPVS leaves the CRC bytes as they came.
    let dp = setup(FwdMethod::Masq, VPORT);
    let mut init = frame(CLIENT, 41000, VIP, VPORT, &[(cid::INIT, 20)]);
    let crc_at = ethernet::HEADER_LEN + 20 + 8;
    let crc_in = init[crc_at..crc_at + 4].to_vec();
    let (_, out) = run(&dp, &init);
    assert_eq!(&out[crc_at..crc_at + 4], &crc_in[..]);
    assert!(parts(&out).1.verify_checksum());

    // With a port change, a corrupt packet is not made valid.
    let dp = setup(FwdMethod::Masq, RPORT);
    init[crc_at] ^= 0x40;
    let (_, out) = run(&dp, &init);
    let (_, sctp) = parts(&out);
    assert_eq!(sctp.dst_port(), RPORT);
    assert!(!sctp.verify_checksum());
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn nat_states_follow_ipvs_table_and_a_closed_tuple_is_reused() {
    let dp = setup(FwdMethod::Masq, RPORT);
    let cp = 42000;
    let steps: [(bool, u8, ConnState); 9] = [
        (true, cid::INIT, ConnState::SctpInit1),
        (false, cid::INIT_ACK, ConnState::SctpCookieSent),
        (true, cid::COOKIE_ECHO, ConnState::SctpCookieReplied),
        (false, cid::COOKIE_ACK, ConnState::SctpEstablished),
        (true, cid::DATA, ConnState::SctpEstablished),
        (false, cid::SACK, ConnState::SctpEstablished),
        (true, cid::SHUTDOWN, ConnState::SctpShutdownReceived),
        (false, cid::SHUTDOWN_ACK, ConnState::SctpShutdownAckSent),
        (true, cid::SHUTDOWN_COMPLETE, ConnState::SctpClosed),
    ];
    for (inbound, kind, want) in steps {
        let f = if inbound {
            c2v(cp, &[(kind, 8)])
        } else {
            r2c(cp, &[(kind, 8)])
        };
        assert_eq!(run(&dp, &f).0, XDP_PASS);
        assert_eq!(state(&dp, cp), want, "after chunk {kind}");
        let active = u32::from(want == ConnState::SctpEstablished);
        assert_eq!(dp.dest_conns(0).expect("dest conns"), (active, 1 - active));
    }
    // A new INIT on the CLOSED tuple is a new association, at once.
    run(&dp, &c2v(cp, &[(cid::INIT, 8)]));
    assert_eq!(state(&dp, cp), ConnState::SctpInit1);
    assert_eq!(dp.counter("conn_reuse").expect("counter"), 1);
    assert_eq!(dp.conn_count().expect("count"), 1);
    // Rejected: the server aborts the INIT.
    run(&dp, &r2c(cp, &[(cid::ABORT, 0)]));
    assert_eq!(state(&dp, cp), ConnState::SctpRejected);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn only_an_init_opens_a_connection() {
    let dp = setup(FwdMethod::Masq, RPORT);
    for (i, kind) in [cid::DATA, cid::ABORT, cid::COOKIE_ECHO, cid::SHUTDOWN]
        .into_iter()
        .enumerate()
    {
        let f = c2v(43000 + i as u16, &[(kind, 4)]);
        let (v, out) = run(&dp, &f);
        assert_eq!((v, &out), (XDP_PASS, &f), "chunk {kind}: passed untouched");
    }
    // A common header without a chunk is no INIT either.
    let bare = c2v(43010, &[]);
    assert_eq!(run(&dp, &bare), (XDP_PASS, bare.clone()));
    assert_eq!(dp.counter("pass_sctp_no_init").expect("counter"), 5);
    assert_eq!(dp.conn_count().expect("count"), 0);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn dr_states_are_input_only_and_an_abort_after_a_cookie_counts() {
    let dp = setup(FwdMethod::Route, VPORT);
    let cp = 44000;
    run(&dp, &c2v(cp, &[(cid::INIT, 8)]));
    assert_eq!(state(&dp, cp), ConnState::SctpInit1);
    run(&dp, &c2v(cp, &[(cid::COOKIE_ECHO, 8), (cid::DATA, 8)]));
    assert_eq!(state(&dp, cp), ConnState::SctpEstablished);
    assert_eq!(dp.dest_conns(0).expect("dest conns"), (1, 0));
    run(&dp, &c2v(cp, &[(cid::SHUTDOWN_ACK, 0)]));
    assert_eq!(state(&dp, cp), ConnState::SctpClosed);
    assert_eq!(dp.dest_conns(0).expect("dest conns"), (0, 1));

    // COOKIE ECHO with an ABORT bundled after it: the abort counts. The
    // cookie is long, past what tc pulls for direct access.
    let cp = 44001;
    run(&dp, &c2v(cp, &[(cid::INIT, 8)]));
    run(&dp, &c2v(cp, &[(cid::COOKIE_ECHO, 301), (cid::ABORT, 0)]));
    assert_eq!(state(&dp, cp), ConnState::SctpClosed);
}

/// The table of x^(8 j 16^i) in sctp_crc.h is what its comment says:
/// computed here from the polynomial, every entry (nibble 3 needs
/// packets over 4 KiB, which BPF_PROG_TEST_RUN does not take).
#[test]
fn sctp_crc_table_is_the_powers() {
    const P: u32 = 0x82f6_3b78;
    let mulx = |r: u32| (r >> 1) ^ if r & 1 != 0 { P } else { 0 };
    let mul = |a: u32, mut b: u32| {
        let mut prod = 0;
        for i in (0..32).rev() {
            if (a >> i) & 1 != 0 {
                prod ^= b;
            }
            b = mulx(b);
        }
        prod
    };
    let src = include_str!("../bpf/lib/sctp_crc.h");
    let table = src
        .split("sctp_x8pow[4][16] = {")
        .nth(1)
        .and_then(|s| s.split("};").next())
        .expect("table in sctp_crc.h");
    let got: Vec<u32> = table
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter_map(|w| w.strip_prefix("0x"))
        .map(|h| u32::from_str_radix(h, 16).expect("hex"))
        .collect();
    let mut want = Vec::new();
    for i in 0..4 {
        // x^(8 * 16^i)
        let mut base = 0x8000_0000u32;
        for _ in 0..8 * 16u32.pow(i) {
            base = mulx(base);
        }
        let mut acc = 0x8000_0000u32;
        for _ in 0..16 {
            want.push(acc);
            acc = mul(acc, base);
        }
    }
    assert_eq!(got, want);
}
