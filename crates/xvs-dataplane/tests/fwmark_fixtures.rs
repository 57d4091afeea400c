//! BPF_PROG_TEST_RUN fixtures for fwmark services (`-f`) and the mark
//! classifier that gives packets their marks: IPVS's lookup order (the
//! fwmark service first), prefixes, port sets and protocols against the
//! reference `xvs_core::fwmark::classify`, the dest port of persistent
//! and non-persistent fwmark connections, and one persistence template
//! across every address, port and protocol of a mark. Need root; `cargo
//! xtask test` runs them with `--ignored` in both attach modes.

mod common;

use std::net::Ipv4Addr;

use xvs_core::fwmark::{classify, MarkRule, PortRange};
use xvs_core::model::{svc_flags, Dest, FwdMethod, Protocol, Service, ServiceKey};
use xvs_dataplane::{Dataplane, SvcSched};
use xvs_wire::{
    ethernet, EtherType, EthernetAddress, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, TcpFlags,
    TcpPacket, TcpRepr, UdpChecksum, UdpPacket, UdpRepr,
};

const XDP_PASS: u32 = 2;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const VIP2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 101);
const CLIENT: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);
const CLIENT2: Ipv4Addr = Ipv4Addr::new(172, 16, 9, 1);
const RS0: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const RS1: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 11);

fn eth(ip: Vec<u8>) -> Vec<u8> {
    EthernetRepr {
        src_addr: EthernetAddress([0x02, 0, 0, 0, 0, 0x02]),
        dst_addr: EthernetAddress([0x02, 0, 0, 0, 0, 0x01]),
        ethertype: EtherType::Ipv4,
    }
    .to_vec(&ip)
}

fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Vec<u8> {
    let seg = TcpRepr {
        seq_number: 1000,
        window_len: 65535,
        ..TcpRepr::new(sport, dport, TcpFlags(flags))
    }
    .to_vec(b"hello", &src.into(), &dst.into())
    .expect("TCP segment");
    eth(Ipv4Repr::new(src, dst, 6.into(), 64)
        .to_vec(&seg)
        .expect("IPv4"))
}

fn udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    let d = UdpRepr {
        src_port: sport,
        dst_port: dport,
    }
    .to_vec(b"hello", &src.into(), &dst.into(), UdpChecksum::Compute)
    .expect("UDP datagram");
    eth(Ipv4Repr::new(src, dst, 17.into(), 64)
        .to_vec(&d)
        .expect("IPv4"))
}

/// Where an output frame goes: (daddr, dport), checksums verified.
fn dst_of(f: &[u8]) -> (Ipv4Addr, u16) {
    let l3 = f.get(ethernet::HEADER_LEN..).expect("Ethernet");
    let ip = Ipv4Packet::new_checked(l3).expect("IPv4");
    assert!(ip.verify_checksum(), "IP checksum");
    let l4 = l3
        .get(ip.header_len()..usize::from(ip.total_len()))
        .expect("payload");
    let port = match ip.protocol() {
        IpProtocol::Tcp => {
            let t = TcpPacket::new_checked(l4).expect("TCP");
            assert!(
                t.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()),
                "TCP checksum"
            );
            t.dst_port()
        }
        _ => UdpPacket::new_checked(l4).expect("UDP").dst_port(),
    };
    (ip.dst_addr(), port)
}

fn rule(mark: u32, proto: Protocol, net: &str, ports: &[(u16, u16)]) -> MarkRule {
    let (a, l) = net.split_once('/').unwrap_or((net, "32"));
    MarkRule {
        mark,
        proto,
        addr: a.parse().expect("address"),
        prefix_len: l.parse().expect("prefix length"),
        ports: ports
            .iter()
            .map(|&(first, last)| PortRange { first, last })
            .collect(),
    }
}

fn masq(addr: Ipv4Addr, port: u16) -> Dest {
    let mut d = Dest::new(addr, port);
    d.fwd = FwdMethod::Masq;
    d
}

/// A namespace of its own and an empty table.
fn open() -> Dataplane {
    // SAFETY: affects only the calling thread (netns is per task).
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
    Dataplane::open(&common::options()).expect("open (root needed)")
}

/// Service `svc_id` for `key` over `dests` (ids), rr in that order,
/// persistent for `persist` seconds when non-zero.
fn service(dp: &Dataplane, svc_id: u32, key: ServiceKey, dests: &[u32], persist: u32) {
    let mut s = Service::new(key, "rr");
    if persist != 0 {
        s.flags |= svc_flags::PERSISTENT;
        s.timeout = persist;
    }
    dp.upsert_service(svc_id, &s, &SvcSched::from_ring(dests))
        .expect("service");
}

/// Sends `f` and returns where it went (None: passed unchanged).
fn goes(dp: &Dataplane, f: &[u8]) -> Option<(Ipv4Addr, u16)> {
    let (v, out) = dp.test_run(f, None).expect("test_run");
    assert_eq!(v, XDP_PASS, "fib misses in an empty netns: passed");
    (out != f).then(|| dst_of(&out))
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_marked_packet_finds_its_fwmark_service_before_the_address_service() {
    let dp = open();
    dp.upsert_dest(0, 0, &masq(RS0, 0)).expect("dest");
    dp.upsert_dest(1, 1, &masq(RS1, 8080)).expect("dest");
    service(&dp, 0, ServiceKey::fwmark(1), &[0], 0);
    service(&dp, 1, ServiceKey::new(Protocol::Tcp, VIP, 80), &[1], 0);

    // No rule: the address service.
    assert_eq!(
        goes(&dp, &tcp(CLIENT, 40000, VIP, 80, SYN)),
        Some((RS1, 8080))
    );
    // A rule for the VIP: the fwmark service wins (ip_vs_service_find),
    // and a dest without port keeps the port asked for.
    dp.set_mark_rules(&[rule(1, Protocol::Tcp, "10.0.0.100/32", &[])])
        .expect("rules");
    assert_eq!(
        goes(&dp, &tcp(CLIENT, 40001, VIP, 80, SYN)),
        Some((RS0, 80))
    );
    assert_eq!(
        goes(&dp, &tcp(CLIENT, 40002, VIP, 22, SYN)),
        Some((RS0, 22))
    );
    // The established connection stays where it is when the rules go.
    dp.set_mark_rules(&[]).expect("rules");
    assert_eq!(
        goes(&dp, &tcp(CLIENT, 40001, VIP, 80, ACK)),
        Some((RS0, 80))
    );
    assert_eq!(
        goes(&dp, &tcp(CLIENT, 40003, VIP, 80, SYN)),
        Some((RS1, 8080))
    );
    assert_eq!(goes(&dp, &tcp(CLIENT, 40004, VIP, 22, SYN)), None);

    // A mark without a service falls through to the address lookup.
    dp.set_mark_rules(&[rule(7, Protocol::Tcp, "10.0.0.0/24", &[])])
        .expect("rules");
    assert_eq!(
        goes(&dp, &tcp(CLIENT, 40005, VIP, 80, SYN)),
        Some((RS1, 8080))
    );
    let passed = dp.counter("pass_no_svc").expect("counter");
    assert_eq!(goes(&dp, &tcp(CLIENT, 40006, VIP2, 80, SYN)), None);
    assert_eq!(dp.counter("pass_no_svc").expect("counter"), passed + 1);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn the_classifier_agrees_with_the_reference_on_prefixes_ports_and_protocols() {
    let dp = open();
    dp.upsert_dest(0, 0, &masq(RS0, 0)).expect("dest");
    dp.upsert_dest(1, 1, &masq(RS1, 0)).expect("dest");
    dp.upsert_dest(2, 2, &masq(RS0, 9000)).expect("dest");
    service(&dp, 0, ServiceKey::fwmark(1), &[0], 0);
    service(&dp, 1, ServiceKey::fwmark(2), &[1], 0);
    service(&dp, 2, ServiceKey::fwmark(u32::MAX), &[2], 0);
    let rules = vec![
        rule(1, Protocol::Tcp, "10.1.0.0/16", &[(80, 80), (443, 443)]),
        rule(2, Protocol::Tcp, "10.1.2.0/24", &[]),
        rule(u32::MAX, Protocol::Tcp, "10.1.2.128/25", &[(8000, 8010)]),
        rule(1, Protocol::Udp, "10.1.0.0/16", &[(53, 53)]),
        rule(2, Protocol::Tcp, "0.0.0.0/0", &[(22, 22)]),
    ];
    dp.set_mark_rules(&rules).expect("rules");
    let addrs = [
        "10.1.9.9",
        "10.1.2.1",
        "10.1.2.200",
        "10.2.0.1",
        "192.0.2.7",
    ];
    let ports = [22u16, 53, 80, 81, 443, 7999, 8000, 8010, 8011];
    let mut sport = 30000u16;
    let mut hits = 0;
    for a in addrs {
        let a: Ipv4Addr = a.parse().expect("address");
        for p in ports {
            for proto in [Protocol::Tcp, Protocol::Udp] {
                sport += 1;
                let want = match classify(&rules, proto, a, p) {
                    0 => None,
                    1 => Some((RS0, p)),
                    2 => Some((RS1, p)),
                    _ => Some((RS0, 9000)),
                };
                hits += usize::from(want.is_some());
                let f = match proto {
                    Protocol::Tcp => tcp(CLIENT, sport, a, p, SYN),
                    _ => udp(CLIENT, sport, a, p),
                };
                assert_eq!(goes(&dp, &f), want, "{proto} {a}:{p}");
            }
        }
    }
    assert!(hits > 20, "the grid hits every mark ({hits} hits)");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_persistent_fwmark_connection_keeps_the_packets_port() {
    // ip_vs_schedule uses the dest's port; ip_vs_sched_persist, for a
    // fwmark service, the port the client asked for.
    let dp = open();
    dp.upsert_dest(0, 0, &masq(RS0, 8080)).expect("dest");
    service(&dp, 0, ServiceKey::fwmark(5), &[0], 0);
    dp.set_mark_rules(&[rule(5, Protocol::Tcp, "10.0.0.100/32", &[])])
        .expect("rules");
    assert_eq!(
        goes(&dp, &tcp(CLIENT, 40000, VIP, 80, SYN)),
        Some((RS0, 8080))
    );
    service(&dp, 0, ServiceKey::fwmark(5), &[0], 300);
    assert_eq!(
        goes(&dp, &tcp(CLIENT2, 40001, VIP, 443, SYN)),
        Some((RS0, 443))
    );
    let t = dp.templates().expect("templates");
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].fwmark, t[0].vport, t[0].dport), (5, 0, 0));
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn one_template_covers_every_address_port_and_protocol_of_a_mark() {
    let dp = open();
    dp.upsert_dest(0, 0, &masq(RS0, 0)).expect("dest");
    dp.upsert_dest(1, 0, &masq(RS1, 0)).expect("dest");
    service(&dp, 0, ServiceKey::fwmark(1), &[0, 1], 300);
    dp.set_mark_rules(&[
        rule(1, Protocol::Tcp, "10.0.0.100/31", &[]),
        rule(1, Protocol::Udp, "10.0.0.100/31", &[(53, 53)]),
    ])
    .expect("rules");

    let (rs, _) = goes(&dp, &tcp(CLIENT, 40000, VIP, 80, SYN)).expect("scheduled");
    assert_eq!(
        goes(&dp, &tcp(CLIENT, 40001, VIP2, 443, SYN)),
        Some((rs, 443))
    );
    assert_eq!(goes(&dp, &udp(CLIENT, 40002, VIP2, 53)), Some((rs, 53)));
    // Another client gets the other server (rr), for every port too.
    let other = if rs == RS0 { RS1 } else { RS0 };
    assert_eq!(
        goes(&dp, &tcp(CLIENT2, 40003, VIP2, 443, SYN)),
        Some((other, 443))
    );
    assert_eq!(
        goes(&dp, &tcp(CLIENT2, 40004, VIP, 80, SYN)),
        Some((other, 80))
    );

    let mut t = dp.templates().expect("templates");
    t.sort_by_key(|t| t.caddr);
    assert_eq!(t.len(), 2, "one template per client: {t:?}");
    assert_eq!((t[0].caddr, t[0].daddr, t[0].conns), (CLIENT, rs, 3));
    assert_eq!(t[0].vaddr, Ipv4Addr::new(0, 0, 0, 1), "the mark as address");
    assert!(!t[0].assured);
    // An established connection assures the template
    // (ip_vs_control_assure_ct), found again through the classifier.
    let syn_ack = tcp(rs, 80, CLIENT, 40000, SYN | ACK);
    let (v, _) = dp.test_run(&syn_ack, None).expect("test_run");
    assert_eq!(v, XDP_PASS);
    assert_eq!(goes(&dp, &tcp(CLIENT, 40000, VIP, 80, ACK)), Some((rs, 80)));
    let t = dp.templates().expect("templates");
    let mine = t.iter().find(|t| t.caddr == CLIENT).expect("template");
    assert!(mine.assured, "assured by the reply: {mine:?}");
}
