//! BPF_PROG_TEST_RUN fixtures for `--pe sip`: the program's Call-ID
//! search against the reference `xvs_wire::sip::call_id` on messages that
//! steer it every way, one template per (client network, Call-ID) that
//! keeps its Call-ID, IPVS's drops (no Call-ID; not UDP), the template
//! assured by an answer, and a SIP template's end with its dest. Need
//! root; `cargo xtask test` runs them with `--ignored` in both attach
//! modes.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use xvs_core::model::{svc_flags, Dest, FwdMethod, Protocol, Service, ServiceKey, Timeouts};
use xvs_dataplane::{Dataplane, Options, SvcSched};
use xvs_wire::sip::{call_id, steering_messages};
use xvs_wire::{
    ethernet, EtherType, EthernetAddress, EthernetRepr, Ipv4Packet, Ipv4Repr, TcpFlags, TcpRepr,
    UdpChecksum, UdpRepr,
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const SIP_PORT: u16 = 5060;
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

fn udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let d = UdpRepr {
        src_port: sport,
        dst_port: dport,
    }
    .to_vec(payload, &src.into(), &dst.into(), UdpChecksum::Compute)
    .expect("UDP datagram");
    eth(Ipv4Repr::new(src, dst, 17.into(), 64)
        .to_vec(&d)
        .expect("IPv4"))
}

fn invite(callid: &str) -> Vec<u8> {
    format!(
        "INVITE sip:bob@biloxi.example SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK776asdhds\r\n\
         To: Bob <sip:bob@biloxi.example>\r\n\
         Call-ID: {callid}\r\n\
         CSeq: 314159 INVITE\r\n\r\n"
    )
    .into_bytes()
}

/// Where an output frame goes.
fn dst_of(f: &[u8]) -> Ipv4Addr {
    let l3 = f.get(ethernet::HEADER_LEN..).expect("Ethernet");
    Ipv4Packet::new_checked(l3).expect("IPv4").dst_addr()
}

fn masq(addr: Ipv4Addr, port: u16) -> Dest {
    let mut d = Dest::new(addr, port);
    d.fwd = FwdMethod::Masq;
    d
}

/// A namespace of its own and a UDP VIP:5060 service, persistent
/// (netmask 255.255.255.0) with --pe sip, rr over RS0 and RS1.
fn open(conns: u32) -> Dataplane {
    // SAFETY: affects only the calling thread (netns is per task).
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
    let dp = Dataplane::open(&Options {
        conn_capacity: conns,
        persist_capacity: conns,
        ..common::options()
    })
    .expect("open (root needed)");
    dp.upsert_dest(0, 0, &masq(RS0, SIP_PORT)).expect("dest");
    dp.upsert_dest(1, 0, &masq(RS1, SIP_PORT)).expect("dest");
    let mut s = Service::new(ServiceKey::new(Protocol::Udp, VIP, SIP_PORT), "rr");
    s.flags |= svc_flags::PERSISTENT;
    s.timeout = 360;
    s.netmask = Ipv4Addr::new(255, 255, 255, 0).into();
    s.pe_name = Some("sip".into());
    dp.upsert_service(0, &s, &SvcSched::from_ring(&[0, 1]))
        .expect("service");
    dp
}

fn run(dp: &Dataplane, f: &[u8]) -> (u32, Vec<u8>) {
    dp.test_run(f, None).expect("test_run")
}

/// The Call-IDs of the SIP templates.
fn callids(dp: &Dataplane) -> BTreeSet<Vec<u8>> {
    dp.templates()
        .expect("templates")
        .into_iter()
        .filter_map(|t| t.pe_data)
        .collect()
}

/// A few messages by hand, then xvs-wire's steering corpus.
fn messages(n: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![
        invite("a84b4c76e66710@pc33.atlanta.example"),
        invite(&"x".repeat(255)),
        invite(&"x".repeat(256)),
        b"OPTIONS sip:x SIP/2.0\r\nCall-ID:\r\n  xfolded\r\n".to_vec(),
    ];
    // Call-IDs just inside and beyond what the program reads (2048
    // bytes; beyond: not seen, dropped).
    for pad in [1900, 2030, 2100] {
        let mut m = vec![b'X'; pad];
        m.extend_from_slice(b"\r\ni: near-the-end\r\n");
        out.push(m);
    }
    let more = n.saturating_sub(out.len());
    out.extend(steering_messages(more, 0x2545_f491_4f6c_dd1d));
    out
}

/// Every message, as the first datagram of a new flow: forwarded with a
/// template of exactly the Call-ID the reference finds, or dropped
/// (counted) when it finds none, as IPVS does.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn the_programs_call_id_is_the_references() {
    let msgs = messages(1500);
    let dp = open(4096);
    let mut want = BTreeSet::new();
    let (mut drops, mut found) = (0, 0);
    for (i, m) in msgs.iter().enumerate() {
        let f = udp(CLIENT, 20000 + i as u16, VIP, SIP_PORT, m);
        let (v, _) = run(&dp, &f);
        // The program reads the first 2048 bytes (docs/differences.md).
        match call_id(&m[..m.len().min(2048)]) {
            Ok(id) => {
                assert_eq!(v, XDP_PASS, "message {i} {:?}", String::from_utf8_lossy(m));
                want.insert(id.to_vec());
                found += 1;
            }
            Err(e) => {
                assert_eq!(
                    v,
                    XDP_DROP,
                    "message {i} ({e}) {:?}",
                    String::from_utf8_lossy(m)
                );
                drops += 1;
            }
        }
    }
    assert!(drops > 100 && found > 100, "{drops} drops, {found} found");
    assert_eq!(callids(&dp), want);
    assert_eq!(dp.counter("drop_sip").unwrap(), drops);
}

/// One template per (client network, Call-ID): the same call from another
/// port of the network goes where its first message went; a new call is
/// scheduled; another network's same Call-ID is another template. An
/// answer assures the template.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_call_stays_on_its_server() {
    let dp = open(1024);
    let first = run(&dp, &udp(CLIENT, 5060, VIP, SIP_PORT, &invite("call-1@a")));
    let rs_of_1 = dst_of(&first.1);
    let other = run(&dp, &udp(CLIENT, 5070, VIP, SIP_PORT, &invite("call-2@a")));
    assert_ne!(dst_of(&other.1), rs_of_1, "a new call is scheduled (rr)");
    let near = Ipv4Addr::new(172, 16, 0, 77);
    let again = run(&dp, &udp(near, 5080, VIP, SIP_PORT, &invite("call-1@a")));
    assert_eq!(dst_of(&again.1), rs_of_1, "same network, same call");
    let far = run(&dp, &udp(CLIENT2, 5060, VIP, SIP_PORT, &invite("call-1@a")));
    // Another network: a template of its own, scheduled (rr's third
    // pick); three templates below.
    assert_eq!(dst_of(&far.1), RS0, "another network is scheduled afresh");
    let ts = dp.templates().unwrap();
    assert_eq!(ts.len(), 3, "{ts:?}");
    let t1 = ts
        .iter()
        .find(|t| {
            t.pe_data.as_deref() == Some(&b"call-1@a"[..])
                && t.caddr == Ipv4Addr::new(172, 16, 0, 0)
        })
        .expect("call-1 template");
    assert_eq!(
        (t1.caddr, t1.vaddr, t1.vport, t1.daddr, t1.timeout_secs),
        (Ipv4Addr::new(172, 16, 0, 0), VIP, SIP_PORT, rs_of_1, 360)
    );
    assert_eq!(t1.conns, 2, "two connections made through it");
    assert!(!t1.assured);
    // The real server answers the first connection: assured.
    run(
        &dp,
        &udp(rs_of_1, SIP_PORT, CLIENT, 5060, b"SIP/2.0 100 Trying\r\n"),
    );
    let t1 = dp
        .templates()
        .unwrap()
        .into_iter()
        .find(|t| t.pe_data.as_deref() == Some(&b"call-1@a"[..]) && t.caddr == t1.caddr)
        .unwrap();
    assert!(t1.assured, "{t1:?}");
    // The dest goes: so do its templates, and its connections' links
    // (call-2's alone is left).
    assert_eq!(dp.sip_links().unwrap(), 4);
    dp.remove_dest(rs_of_1_id(rs_of_1)).expect("remove");
    assert!(dp.templates().unwrap().iter().all(|t| t.daddr != rs_of_1));
    assert_eq!(dp.sip_links().unwrap(), 1);
}

fn rs_of_1_id(rs: Ipv4Addr) -> u32 {
    u32::from(rs != RS0)
}

/// IPVS's ip_vs_sip_fill_param fails for anything but UDP: a persistent
/// TCP service with --pe sip drops every new connection. Without -p the
/// engine is never asked.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn tcp_is_dropped_and_non_persistent_services_ignore_the_engine() {
    let dp = open(1024);
    let mut s = Service::new(ServiceKey::new(Protocol::Tcp, VIP, SIP_PORT), "rr");
    s.flags |= svc_flags::PERSISTENT;
    s.timeout = 60;
    s.pe_name = Some("sip".into());
    dp.upsert_service(1, &s, &SvcSched::from_ring(&[2]))
        .expect("service");
    dp.upsert_dest(2, 1, &masq(RS0, SIP_PORT)).expect("dest");
    let seg = TcpRepr {
        seq_number: 1,
        window_len: 65535,
        ..TcpRepr::new(40000, SIP_PORT, TcpFlags(0x02))
    }
    .to_vec(b"", &CLIENT.into(), &VIP.into())
    .expect("TCP");
    let syn = eth(Ipv4Repr::new(CLIENT, VIP, 6.into(), 64)
        .to_vec(&seg)
        .expect("IPv4"));
    assert_eq!(run(&dp, &syn).0, XDP_DROP);
    assert_eq!(dp.counter("drop_sip").unwrap(), 1);

    // Not persistent: scheduled as any UDP service, message or not.
    let mut s = Service::new(ServiceKey::new(Protocol::Udp, VIP, SIP_PORT), "rr");
    s.pe_name = Some("sip".into());
    dp.upsert_service(0, &s, &SvcSched::from_ring(&[0, 1]))
        .expect("service");
    let (v, out) = run(&dp, &udp(CLIENT, 30000, VIP, SIP_PORT, b"no call id here"));
    assert_eq!(v, XDP_PASS);
    assert_ne!(out, udp(CLIENT, 30000, VIP, SIP_PORT, b"no call id here"));
    assert!(callids(&dp).is_empty());
}

/// Expiry: a call's connection goes after the UDP timeout, with its link
/// to the template; the template, used by none, after its own timeout.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn expiry_takes_the_link_and_then_the_template() {
    let dp = open(1024);
    run(&dp, &udp(CLIENT, 5060, VIP, SIP_PORT, &invite("call-x@a")));
    assert_eq!((dp.sip_links().unwrap(), callids(&dp).len()), (1, 1));
    let t = Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    };
    let now = xvs_dataplane::monotonic_ns();
    // Past the UDP timeout, within the template's 360 s: the connection
    // and its link go, the template stays.
    assert_eq!(dp.expire_conns_at(&t, now + 320 * SEC).unwrap(), 1);
    assert_eq!((dp.sip_links().unwrap(), callids(&dp).len()), (0, 1));
    // Past the template's timeout: it goes too.
    dp.expire_conns_at(&t, now + 400 * SEC).unwrap();
    assert!(callids(&dp).is_empty());
}

const SEC: u64 = 1_000_000_000;
