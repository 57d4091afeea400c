//! The data plane against random and mutated frames, through
//! `BPF_PROG_TEST_RUN`, checked against invariants rather than expected
//! outputs (root; `cargo xtask test` runs a short run in both attach modes,
//! `cargo xtask fuzz --dataplane N` a long one).
//!
//! The table has a service of every forwarding method: NAT TCP and UDP, a
//! persistent port-0 NAT service, DR, TUN with IPIP and with GUE. Frames
//! are valid ones built through xvs-wire (clients and real servers, SYNs
//! and the rest, IP options, fragments, TTLs, ICMP errors quoting any of
//! them, tunnels in tunnels), the same mutated (bytes, bits, lengths, cut
//! or extended), and random bytes. After every frame:
//!
//! 1. the verdict is one of DROP, PASS, TX, REDIRECT;
//! 2. a frame that names none of the table's addresses anywhere leaves
//!    untouched with PASS;
//! 3. a frame the program rewrote (and did not drop) is Ethernet + IPv4
//!    again; where the input's checksums held, the output's IP and L4
//!    checksums hold; a new destination is a real server of a service on
//!    the input's destination, a new source is a VIP;
//! 4. on every 32nd frame, the counters: `rx` grows by one, a counter that
//!    accounts for the verdict grows, none shrinks.
//!
//! `XVS_DP_FUZZ_FRAMES` (default 200 000) and `XVS_DP_FUZZ_SEED` (default
//! fixed, printed) choose the run.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::process::Command;

use common::attach_mode;
use xvs_core::fwmark::{MarkRule, PortRange};
use xvs_core::model::{Dest, FwdMethod, Protocol, Service, ServiceKey, Timeouts, TunCsum, TunType};
use xvs_dataplane::decap::{self, DecapConfig};
use xvs_dataplane::{features, AttachMode, Dataplane, Error, Options, SvcSched};
use xvs_wire::{
    ethernet, sctp, EtherType, EthernetAddress, EthernetRepr, GueRepr, Icmpv4Packet, Icmpv4Repr,
    IpProtocol, Ipv4Packet, Ipv4Repr, SctpPacket, SctpRepr, TcpFlags, TcpPacket, TcpRepr,
    UdpChecksum, UdpPacket, UdpRepr,
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;

const CLIENT_NET: [u8; 3] = [203, 0, 113];
const DIRECTOR_C: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 254);
const DIRECTOR_R: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const RS: [Ipv4Addr; 2] = [
    Ipv4Addr::new(198, 51, 100, 10),
    Ipv4Addr::new(198, 51, 100, 11),
];
const VIP_NAT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const VIP_DR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const VIP_TUN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);
const VIP_PERSIST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 13);
/// Services whose real server is the director itself (DIRECTOR_R).
const VIP_LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 14);
const VIPS: [Ipv4Addr; 5] = [VIP_NAT, VIP_DR, VIP_TUN, VIP_PERSIST, VIP_LOCAL];
/// Every real server's address: the two others and the director's own.
const SERVERS: [Ipv4Addr; 3] = [RS[0], RS[1], DIRECTOR_R];
const GUE_PORT: u16 = 6080;
const PORTS: [u16; 10] = [80, 53, 443, 8080, 6080, 0, 22, 65535, 5060, 6060];

// ---------------------------------------------------------------- random

/// SplitMix64: small, seedable, good enough to pick bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

// ---------------------------------------------------------------- frames

fn client(r: &mut Rng) -> Ipv4Addr {
    let [a, b, c] = CLIENT_NET;
    Ipv4Addr::new(a, b, c, 1 + r.below(4) as u8)
}

/// Any address a frame may carry: ours most of the time, sometimes not.
fn addr(r: &mut Rng) -> Ipv4Addr {
    match r.below(10) {
        0..=3 => r.pick(&VIPS),
        4..=5 => r.pick(&SERVERS),
        6..=7 => client(r),
        8 => r.pick(&[DIRECTOR_C, DIRECTOR_R]),
        _ => Ipv4Addr::from(r.next() as u32),
    }
}

fn port(r: &mut Rng) -> u16 {
    if r.chance(80) {
        r.pick(&PORTS)
    } else {
        r.next() as u16
    }
}

/// An IPv4 packet around `payload` of `proto`, with random TTL, options
/// and fragment fields now and then.
fn ip(r: &mut Rng, src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let opts = if r.chance(5) {
        let n = 4 * (1 + r.below(10));
        let mut o = r.bytes(n);
        if r.chance(50) {
            o.fill(1); // NOPs
        }
        o
    } else {
        Vec::new()
    };
    let ttl = if r.chance(5) { r.below(3) as u8 } else { 64 };
    let frag = r.chance(4);
    Ipv4Repr {
        ident: r.next() as u16,
        tos: if r.chance(5) { r.byte() } else { 0 },
        dont_frag: r.chance(50),
        more_frags: frag && r.chance(50),
        frag_offset: if frag { r.below(0x2000) as u16 } else { 0 },
        options: &opts,
        ..Ipv4Repr::new(src, dst, proto.into(), ttl)
    }
    .to_vec(payload)
    .unwrap_or_else(|_| payload.to_vec())
}

fn tcp(r: &mut Rng, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let flags = match r.below(6) {
        0 | 1 => 0x02,
        2 => 0x12,
        3 => 0x10,
        4 => r.pick(&[0x11u8, 0x04, 0x14, 0x18]),
        _ => r.byte(),
    };
    let opts = if r.chance(10) {
        let n = 4 * r.below(10);
        r.bytes(n)
    } else {
        Vec::new()
    };
    let n = r.below(64);
    let payload = r.bytes(n);
    TcpRepr {
        seq_number: r.next() as u32,
        ack_number: r.next() as u32,
        window_len: r.next() as u16,
        options: &opts,
        ..TcpRepr::new(port(r), port(r), TcpFlags(flags))
    }
    .to_vec(&payload, &src.into(), &dst.into())
    .unwrap_or(payload)
}

/// SCTP with one to three chunks of the types IPVS tells apart (or any),
/// mostly with a right CRC; the CRC itself is never checked by IPVS.
fn sctp(r: &mut Rng) -> Vec<u8> {
    let mut chunks = Vec::new();
    for _ in 0..r.below(4) {
        let kind = if r.chance(80) {
            r.below(15) as u8
        } else {
            r.byte()
        };
        let n = r.below(48);
        chunks.extend(sctp::chunk(kind, r.byte(), &r.bytes(n)).unwrap_or_default());
    }
    let mut p = SctpRepr {
        src_port: port(r),
        dst_port: port(r),
        verification_tag: r.next() as u32,
    }
    .to_vec(&chunks);
    if r.chance(10) {
        let i = r.below(p.len());
        if let Some(b) = p.get_mut(i) {
            *b ^= 1 << r.below(8);
        }
    }
    p
}

fn udp(r: &mut Rng, src: Ipv4Addr, dst: Ipv4Addr, inner: Option<Vec<u8>>) -> Vec<u8> {
    let (dport, payload) = match inner {
        Some(p) => (GUE_PORT, p),
        None => {
            let n = r.below(64);
            (port(r), r.bytes(n))
        }
    };
    let csum = if r.chance(20) {
        UdpChecksum::Zero
    } else {
        UdpChecksum::Compute
    };
    UdpRepr {
        src_port: port(r),
        dst_port: dport,
    }
    .to_vec(&payload, &src.into(), &dst.into(), csum)
    .unwrap_or(payload)
}

/// A random IPv4 packet: TCP, UDP, SCTP, ICMP (echo or an error quoting
/// another packet), IPIP or GUE around another packet, or another
/// protocol.
fn packet(r: &mut Rng, depth: u32) -> Vec<u8> {
    // Mostly client → VIP and real server → client, the flows that exist.
    let (src, dst) = match r.below(10) {
        0..=4 => (client(r), r.pick(&VIPS)),
        5..=6 => (r.pick(&SERVERS), client(r)),
        _ => (addr(r), addr(r)),
    };
    let kind = if depth > 2 { r.below(3) } else { r.below(8) };
    match kind {
        7 => {
            let s = sctp(r);
            ip(r, src, dst, 132, &s)
        }
        0 | 1 => {
            let t = tcp(r, src, dst);
            ip(r, src, dst, 6, &t)
        }
        2 => {
            let u = udp(r, src, dst, None);
            ip(r, src, dst, 17, &u)
        }
        3 => {
            // An ICMP error about a packet flowing the other way.
            let quoted = packet(r, depth + 1);
            let cut = quoted.len().min(20 + 8 + r.below(64));
            let quote = quoted.get(..cut).unwrap_or(&quoted);
            let ty = r.pick(&[3u8, 11, 4, 12, 5]);
            let m = Icmpv4Repr::Error {
                msg_type: ty,
                code: r.below(16) as u8,
                rest: if r.chance(50) { 1400 } else { r.next() as u32 },
                quote,
            }
            .to_vec();
            let from = addr(r);
            ip(r, from, src, 1, &m)
        }
        4 => {
            let n = r.below(32);
            let data = r.bytes(n);
            let m = Icmpv4Repr::EchoRequest {
                ident: r.next() as u16,
                seq_no: r.next() as u16,
                data: &data,
            }
            .to_vec();
            ip(r, src, dst, 1, &m)
        }
        5 => {
            // A tunnel around another packet: IPIP, or GUE in UDP.
            let inner = packet(r, depth + 1);
            let (s, d) = (addr(r), addr(r));
            if r.chance(50) {
                ip(r, s, d, 4, &inner)
            } else {
                let g = GueRepr {
                    protocol: IpProtocol::IpIp,
                    flags: 0,
                }
                .to_vec(&inner);
                let u = udp(r, s, d, Some(g));
                ip(r, s, d, 17, &u)
            }
        }
        _ => {
            let n = r.below(64);
            let p = r.bytes(n);
            let proto = r.pick(&[0u8, 2, 41, 47, 50, 132, 255]);
            ip(r, src, dst, proto, &p)
        }
    }
}

fn eth(r: &mut Rng, l3: &[u8]) -> Vec<u8> {
    let ethertype = if r.chance(2) {
        EtherType::from(r.next() as u16)
    } else {
        EtherType::Ipv4
    };
    EthernetRepr {
        src_addr: EthernetAddress([2, 0, 0, 0, 0x0c, 1]),
        dst_addr: EthernetAddress([2, 0, 0, 0, 0x0c, 0]),
        ethertype,
    }
    .to_vec(l3)
}

/// Mutations of a valid frame: flipped bits, random bytes (the IP and L4
/// headers more often than the payload), lengths cut or extended.
fn mutate(r: &mut Rng, f: &mut Vec<u8>) {
    for _ in 0..1 + r.below(4) {
        match r.below(6) {
            0 => {
                let i = r.below(f.len());
                f[i] ^= 1 << r.below(8);
            }
            1 | 2 => {
                // Somewhere in the first 64 bytes: the headers.
                let i = ethernet::HEADER_LEN + r.below(64);
                if let Some(b) = f.get_mut(i) {
                    *b = r.byte();
                }
            }
            3 => {
                let keep = ethernet::HEADER_LEN + r.below(f.len().saturating_sub(13).max(1));
                f.truncate(keep.min(f.len()));
            }
            4 => {
                let n = 1 + r.below(64);
                let extra = r.bytes(n);
                f.extend(extra);
            }
            _ => {
                let i = r.below(f.len());
                f[i] = r.byte();
            }
        }
    }
}

fn frame(r: &mut Rng) -> Vec<u8> {
    match r.below(10) {
        0 => {
            let n = ethernet::HEADER_LEN + r.below(120);
            let mut f = r.bytes(n);
            if r.chance(70) {
                f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            }
            f
        }
        1..=3 => {
            let p = packet(r, 0);
            let mut f = eth(r, &p);
            mutate(r, &mut f);
            f
        }
        _ => {
            let p = packet(r, 0);
            eth(r, &p)
        }
    }
}

// ---------------------------------------------------------------- table

fn sh(cmd: &str) {
    let st = Command::new("sh").args(["-c", cmd]).status().expect("sh");
    assert!(st.success(), "{cmd}");
}

/// The index of `name` in this thread's network namespace (sysfs shows
/// the namespace it was mounted in).
fn ifindex(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).expect("interface name");
    // SAFETY: a NUL-terminated name; the call only reads it.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(i, 0, "no interface {name}");
    i
}

/// This thread's own network namespace with a client link c0 and a real
/// server link r0 (both real servers permanent neighbours), the VIPs on
/// lo, forwarding on. Returns (c0, r0).
fn links() -> (u32, u32) {
    // SAFETY: affects only the calling thread (netns is per task).
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
    let vips: String = VIPS
        .iter()
        .map(|v| format!(" && ip addr add {v}/32 dev lo"))
        .collect();
    sh(&format!(
        "ip link set lo up{vips} \
        && ip link add c0 type veth peer name c1 && ip link add r0 type veth peer name r1 \
        && ip link set c0 address 02:00:00:00:0c:00 && ip link set r0 address 02:00:00:00:0a:00 \
        && ip link set c0 up && ip link set c1 up && ip link set r0 up && ip link set r1 up \
        && ip addr add {DIRECTOR_C}/24 dev c0 && ip addr add {DIRECTOR_R}/24 dev r0 \
        && ip neigh add {} lladdr 02:00:00:00:0a:10 dev r0 nud permanent \
        && ip neigh add {} lladdr 02:00:00:00:0a:11 dev r0 nud permanent \
        && ip neigh add 203.0.113.1 lladdr 02:00:00:00:0c:01 dev c0 nud permanent \
        && sysctl -qw net.ipv4.ip_forward=1",
        RS[0], RS[1]
    ));
    (ifindex("c0"), ifindex("r0"))
}

/// Services of every forwarding method; returns the data plane and, per
/// VIP, the real servers a rewritten packet to it may go to.
fn table() -> (Dataplane, BTreeMap<Ipv4Addr, Vec<Ipv4Addr>>) {
    let dp = Dataplane::open(&Options {
        conn_capacity: 4096,
        ..common::options()
    })
    .expect("open (root needed)");
    let mut next_dest = 0u32;
    let mut add = |svc: u32,
                   proto: Protocol,
                   vip: Ipv4Addr,
                   vport: u16,
                   make: &dyn Fn(Ipv4Addr) -> Dest,
                   timeout: u32| {
        let mut ring = Vec::new();
        for rs in RS {
            dp.upsert_dest(next_dest, svc, &make(rs)).expect("dest");
            ring.push(next_dest);
            next_dest += 1;
        }
        let mut s = Service::new(
            ServiceKey {
                fwmark: 0,
                proto,
                addr: IpAddr::V4(vip),
                port: vport,
            },
            "rr",
        );
        s.timeout = timeout;
        dp.upsert_service(svc, &s, &SvcSched::from_ring(&ring))
            .expect("service");
    };
    let fwd = |f: FwdMethod, port: u16| {
        move |a: Ipv4Addr| {
            let mut d = Dest::new(a, port);
            d.fwd = f;
            d
        }
    };
    add(
        0,
        Protocol::Tcp,
        VIP_NAT,
        80,
        &fwd(FwdMethod::Masq, 8080),
        0,
    );
    add(1, Protocol::Udp, VIP_NAT, 53, &fwd(FwdMethod::Masq, 53), 0);
    add(
        2,
        Protocol::Tcp,
        VIP_PERSIST,
        0,
        &fwd(FwdMethod::Masq, 0),
        300,
    );
    add(3, Protocol::Tcp, VIP_DR, 80, &fwd(FwdMethod::Route, 80), 0);
    add(
        4,
        Protocol::Tcp,
        VIP_TUN,
        80,
        &fwd(FwdMethod::Tunnel, 80),
        0,
    );
    let gue = |a: Ipv4Addr| {
        let mut d = Dest::new(a, 443);
        d.fwd = FwdMethod::Tunnel;
        d.tun_type = TunType::Gue;
        d.tun_port = GUE_PORT;
        d.tun_csum = TunCsum::Csum;
        d
    };
    add(5, Protocol::Udp, VIP_TUN, 443, &gue, 0);
    add(
        8,
        Protocol::Sctp,
        VIP_NAT,
        5060,
        &fwd(FwdMethod::Masq, 6060),
        0,
    );
    add(
        9,
        Protocol::Sctp,
        VIP_DR,
        5060,
        &fwd(FwdMethod::Route, 5060),
        0,
    );
    // The director's own address as the real server, NAT and DR.
    for (svc, port, f) in [(6, 80, FwdMethod::Masq), (7, 443, FwdMethod::Route)] {
        let mut d = Dest::new(DIRECTOR_R, if f == FwdMethod::Masq { 8080 } else { port });
        d.fwd = f;
        dp.upsert_dest(next_dest, svc, &d).expect("local dest");
        let key = ServiceKey {
            fwmark: 0,
            proto: Protocol::Tcp,
            addr: IpAddr::V4(VIP_LOCAL),
            port,
        };
        dp.upsert_service(
            svc,
            &Service::new(key, "rr"),
            &SvcSched::from_ring(&[next_dest]),
        )
        .expect("local service");
        next_dest += 1;
    }
    // A persistent fwmark service (NAT) whose mark the classifier gives
    // UDP to the persistence VIP and TCP to its port 443 (which its
    // port-0 service would take otherwise), and a mark without a service.
    let ring: Vec<u32> = (next_dest..next_dest + RS.len() as u32).collect();
    for rs in RS {
        let mut d = Dest::new(rs, 0);
        d.fwd = FwdMethod::Masq;
        dp.upsert_dest(next_dest, 10, &d).expect("dest");
        next_dest += 1;
    }
    let mut s = Service::new(ServiceKey::fwmark(1), "rr");
    s.flags |= xvs_core::model::svc_flags::PERSISTENT;
    s.timeout = 300;
    dp.upsert_service(10, &s, &SvcSched::from_ring(&ring))
        .expect("fwmark service");
    let rule = |mark, proto, ports: &[u16]| MarkRule {
        mark,
        proto,
        addr: VIP_PERSIST,
        prefix_len: 32,
        ports: ports
            .iter()
            .map(|&p| PortRange { first: p, last: p })
            .collect(),
    };
    dp.set_mark_rules(&[
        rule(1, Protocol::Udp, &[]),
        rule(1, Protocol::Tcp, &[443]),
        rule(2, Protocol::Tcp, &[22]),
    ])
    .expect("mark rules");
    dp.refresh_nexthops().expect("next hops");
    let mut allowed: BTreeMap<_, _> = VIPS.iter().map(|v| (*v, RS.to_vec())).collect();
    allowed.insert(VIP_LOCAL, vec![DIRECTOR_R]);
    (dp, allowed)
}

// ---------------------------------------------------------------- checks

/// The first IPv4 header of an Ethernet frame, if it is one.
fn ipv4_of(f: &[u8]) -> Option<Ipv4Packet<&[u8]>> {
    let l3 = f.get(ethernet::HEADER_LEN..)?;
    if f.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    Ipv4Packet::new_checked(l3).ok()
}

/// Whether the IP packet's transport checksum holds (TCP, UDP unless zero,
/// ICMP); None for other protocols, fragments or a cut payload.
fn l4_ok(p: &Ipv4Packet<&[u8]>) -> Option<bool> {
    if p.is_fragment() {
        return None;
    }
    let (s, d) = (p.src_addr().into(), p.dst_addr().into());
    match p.protocol() {
        IpProtocol::Tcp => TcpPacket::new_checked(p.payload())
            .ok()
            .map(|t| t.verify_checksum(&s, &d)),
        IpProtocol::Udp => UdpPacket::new_checked(p.payload())
            .ok()
            .map(|u| u.verify_checksum(&s, &d)),
        IpProtocol::Icmp => Icmpv4Packet::new_checked(p.payload())
            .ok()
            .map(|i| i.verify_checksum()),
        IpProtocol::Sctp => SctpPacket::new_checked(p.payload())
            .ok()
            .map(|s| s.verify_checksum()),
        _ => None,
    }
}

fn mentions(f: &[u8], a: Ipv4Addr) -> bool {
    f.windows(4).any(|w| w == a.octets())
}

fn ours(f: &[u8]) -> bool {
    VIPS.iter().chain(SERVERS.iter()).any(|a| mentions(f, *a))
}

/// What a run found; a violation is a message naming the frame.
#[derive(Default)]
struct Tally {
    frames: u64,
    refused: u64,
    rewritten: u64,
    /// Frames `xvs_local_out` rewrote (the local NAT dest's answers).
    local_out: u64,
    verdicts: BTreeMap<u32, u64>,
    violations: Vec<String>,
}

impl Tally {
    fn violate(&mut self, what: String, f: &[u8]) {
        if self.violations.len() < 20 {
            self.violations.push(format!("{what}; frame {}", hex(f)));
        }
    }

    /// The run's verdict: no violation, and some frame was rewritten (else
    /// the generator missed the table: `missed` says how).
    fn assert_clean(&self, missed: &str) {
        assert!(
            self.violations.is_empty(),
            "violations:\n{}",
            self.violations.join("\n")
        );
        assert!(self.rewritten > 0, "{missed}");
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Invariants 1–3 for one frame.
fn check_frame(
    t: &mut Tally,
    allowed: &BTreeMap<Ipv4Addr, Vec<Ipv4Addr>>,
    f: &[u8],
    verdict: u32,
    out: &[u8],
) {
    if !matches!(verdict, XDP_DROP | XDP_PASS | XDP_TX | XDP_REDIRECT) {
        t.violate(format!("verdict {verdict}"), f);
        return;
    }
    let untouched = out == f;
    if !ours(f) {
        if verdict != XDP_PASS || !untouched {
            t.violate(
                format!("not ours, yet verdict {verdict} / changed {}", !untouched),
                f,
            );
        }
        return;
    }
    if untouched || verdict == XDP_DROP {
        return;
    }
    t.rewritten += 1;
    let (Some(i), Some(o)) = (ipv4_of(f), ipv4_of(out)) else {
        t.violate(
            "rewritten into something that is not Ethernet + IPv4".into(),
            f,
        );
        return;
    };
    if i.verify_checksum() && !o.verify_checksum() {
        t.violate("IP header checksum broken".into(), f);
    }
    // An ICMP error is forwarded by the connection of the packet it
    // quotes, as ip_vs_in_icmp/ip_vs_out_icmp do: whatever its outer
    // addresses, the quoted source (a VIP, seen from outside) or the
    // quoted destination (a real server, seen from inside) decides.
    let quoted = quoted_addrs(&i);
    let to_rs_of = |vip: Ipv4Addr| allowed.get(&vip).is_some_and(|v| v.contains(&o.dst_addr()));
    let to_a_rs = to_rs_of(i.dst_addr()) || quoted.is_some_and(|(qs, _)| to_rs_of(qs));
    let encapsulated = o.protocol() == IpProtocol::IpIp
        || (o.protocol() == IpProtocol::Udp && i.protocol() != IpProtocol::Udp)
        || o.payload().len() > i.payload().len() + 8;
    if encapsulated {
        // The inner packet is the input's; the outer destination a real
        // server of a TUN service.
        if !to_a_rs {
            t.violate(format!("tunnelled to {}", o.dst_addr()), f);
        }
        if o.protocol() == IpProtocol::Udp && l4_ok(&o) == Some(false) {
            t.violate("GUE UDP checksum broken".into(), f);
        }
        return;
    }
    if l4_ok(&i) == Some(true) && l4_ok(&o) == Some(false) {
        t.violate(format!("{:?} checksum broken", o.protocol()), f);
    }
    if o.dst_addr() != i.dst_addr() && !to_a_rs {
        t.violate(
            format!("destination {} → {}", i.dst_addr(), o.dst_addr()),
            f,
        );
    }
    let from_rs =
        SERVERS.contains(&i.src_addr()) || quoted.is_some_and(|(_, qd)| SERVERS.contains(&qd));
    if o.src_addr() != i.src_addr() && !(VIPS.contains(&o.src_addr()) && from_rs) {
        t.violate(format!("source {} → {}", i.src_addr(), o.src_addr()), f);
    }
}

/// Source and destination of the packet an ICMP error quotes.
fn quoted_addrs(p: &Ipv4Packet<&[u8]>) -> Option<(Ipv4Addr, Ipv4Addr)> {
    if p.protocol() != IpProtocol::Icmp {
        return None;
    }
    let q = Ipv4Packet::new_quoted(p.payload().get(8..)?).ok()?;
    Some((q.src_addr(), q.dst_addr()))
}

/// Counters that account for a verdict, by name prefix.
fn accounts_for(verdict: u32, name: &str) -> bool {
    match verdict {
        XDP_DROP => name.starts_with("drop_"),
        XDP_TX => matches!(name, "tx" | "icmp_frag_needed" | "peer"),
        XDP_REDIRECT => matches!(name, "redirect" | "peer"),
        _ => {
            name.starts_with("pass_")
                || name.starts_with("fib_")
                || matches!(name, "tun_in" | "dr_in" | "peer")
        }
    }
}

/// Invariant 4 around one frame: before/after counters.
fn check_counters(
    t: &mut Tally,
    before: &[(&'static str, u64)],
    after: &[(&'static str, u64)],
    verdict: u32,
    f: &[u8],
) {
    let mut accounted = false;
    for ((name, b), (_, a)) in before.iter().zip(after) {
        if a < b {
            t.violate(format!("counter {name} went back from {b} to {a}"), f);
        }
        if *name == "rx" && *a != b + 1 {
            t.violate(format!("rx grew by {}", a.wrapping_sub(*b)), f);
        }
        if a > b && accounts_for(verdict, name) {
            accounted = true;
        }
    }
    if !accounted {
        t.violate(format!("verdict {verdict} counted nowhere"), f);
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn random_and_mutated_frames_keep_the_invariants() {
    let frames = env_u64("XVS_DP_FUZZ_FRAMES", 200_000);
    let seed = env_u64("XVS_DP_FUZZ_SEED", 0x5eed_f1b5);
    let (c0, r0) = links();
    let (dp, allowed) = table();
    // Kernels whose test runs cannot name the ingress device run every
    // frame as if from loopback.
    let with_ingress = !matches!(
        dp.test_run(&[0u8; 60], Some(c0)),
        Err(Error::Unsupported(_))
    );
    let local_out = dp.features().has(features::LOCAL_OUT);
    let mut r = Rng(seed);
    let mut t = Tally::default();
    let timeouts = Timeouts::default();
    let mut last = dp.counters().expect("counters");
    let started = std::time::Instant::now();
    for n in 0..frames {
        let f = frame(&mut r);
        let ingress = with_ingress.then(|| if r.chance(50) { c0 } else { r0 });
        let sample = n % 32 == 0;
        let before = if sample {
            dp.counters().expect("counters")
        } else {
            Vec::new()
        };
        let (verdict, out) = match dp.test_run(&f, ingress) {
            Ok(v) => v,
            Err(e) => {
                // The kernel refuses to run tc programs on an IPv4 frame
                // shorter than an IPv4 header (bpf_prog_test_run_skb):
                // nothing ran. Anything else is a finding.
                if f.len() >= ethernet::HEADER_LEN + 20 {
                    t.violate(format!("test run refused: {e}"), &f);
                }
                t.refused += 1;
                continue;
            }
        };
        t.frames += 1;
        *t.verdicts.entry(verdict).or_default() += 1;
        check_frame(&mut t, &allowed, &f, verdict, &out);
        if sample {
            let after = dp.counters().expect("counters");
            check_counters(&mut t, &before, &after, verdict, &f);
            check_counters_monotonic(&mut t, &last, &after);
            last = after;
        }
        // The same frame as if the director's own stack sent it.
        if local_out {
            if let Ok((v, out)) = dp.test_run_local_out(&f) {
                check_local_out(&mut t, &f, v, &out);
            }
        }
        if n % 50_000 == 49_999 {
            // Expire everything now and then, so new connections keep
            // being made rather than refused by a full table.
            let far = xvs_dataplane::monotonic_ns() + 86_400_000_000_000;
            dp.expire_conns_at(&timeouts, far).expect("expire");
        }
        if !t.violations.is_empty() && t.violations.len() >= 20 {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "dp_fuzz: mode {:?}, seed {seed:#x}: {} frames run ({} refused by the kernel) in {secs:.1} s, \
         {} rewritten, {} local answers rewritten on egress, verdicts {:?}, {} violations",
        attach_mode(),
        t.frames,
        t.refused,
        t.rewritten,
        t.local_out,
        t.verdicts,
        t.violations.len()
    );
    t.assert_clean("no frame was ever rewritten: the generator misses the table");
}

/// `xvs_local_out` on a frame as the director's stack would send it:
/// PASS or DROP; a frame not of the table leaves untouched; a rewritten
/// one was the local dest's answer (or an ICMP error about a packet to
/// it) and now comes from a VIP, to the same destination, its checksums
/// intact where the input's held.
fn check_local_out(t: &mut Tally, f: &[u8], verdict: u32, out: &[u8]) {
    if !passed_changed(t, "local_out", f, verdict, out) {
        return;
    }
    if !ours(f) {
        t.violate("local_out changed a frame not of the table".into(), f);
        return;
    }
    t.local_out += 1;
    let (Some(i), Some(o)) = (ipv4_of(f), ipv4_of(out)) else {
        t.violate("local_out made something not Ethernet + IPv4".into(), f);
        return;
    };
    // The local dest's answer, or an ICMP error (from any of the stack's
    // addresses) quoting a packet it was sent.
    let from_local =
        i.src_addr() == DIRECTOR_R || quoted_addrs(&i).is_some_and(|(_, qd)| qd == DIRECTOR_R);
    if !from_local || !VIPS.contains(&o.src_addr()) {
        t.violate(
            format!("local_out: source {} → {}", i.src_addr(), o.src_addr()),
            f,
        );
    }
    if o.dst_addr() != i.dst_addr() {
        t.violate("local_out changed the destination".into(), f);
    }
    if i.verify_checksum() && !o.verify_checksum() {
        t.violate("local_out broke the IP header checksum".into(), f);
    }
    if l4_ok(&i) == Some(true) && l4_ok(&o) == Some(false) {
        t.violate(
            format!("local_out broke the {:?} checksum", o.protocol()),
            f,
        );
    }
}

fn check_counters_monotonic(
    t: &mut Tally,
    last: &[(&'static str, u64)],
    now: &[(&'static str, u64)],
) {
    for ((name, a), (_, b)) in last.iter().zip(now) {
        if b < a {
            t.violations.push(format!(
                "counter {name} went back from {a} to {b} between samples"
            ));
        }
    }
}

/// The real server's decap program under the same frames: it strips an
/// IPIP or GUE header (to a configured port) in front of an IPv4 packet
/// to a VIP, lying inside the outer packet, and leaves everything else
/// alone. Checked: PASS or DROP only, DROP only when counted as an error;
/// a changed frame is the input's Ethernet header followed by the input's
/// inner packet (bytes that were in the outer packet), to a VIP; `rx`
/// grows by one per frame and no counter goes back.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn the_decap_program_keeps_its_invariants() {
    let frames = env_u64("XVS_DP_FUZZ_FRAMES", 200_000);
    let seed = env_u64("XVS_DP_FUZZ_SEED", 0x5eed_f1b5) ^ 0xdeca;
    let tc = attach_mode() == AttachMode::Tc;
    let cfg = DecapConfig {
        vips: VIPS.to_vec(),
        gue_ports: vec![GUE_PORT],
    };
    let mut r = Rng(seed);
    let mut gen = (0..frames).map(move |_| frame(&mut r));
    let mut t = Tally::default();
    let mut n = 0u64;
    let mut last: Vec<(&'static str, u64)> = Vec::new();
    decap::test_run_each(&cfg, tc, &mut gen, &mut |f, run, counters| {
        n += 1;
        let sample = n % 32 == 1;
        let (verdict, out) = match run {
            Ok(v) => v,
            Err(e) => {
                if f.len() >= ethernet::HEADER_LEN + 20 {
                    t.violate(format!("test run refused: {e}"), f);
                }
                t.refused += 1;
                return;
            }
        };
        t.frames += 1;
        *t.verdicts.entry(verdict).or_default() += 1;
        check_decap(&mut t, f, verdict, out);
        if sample {
            let now = counters().expect("decap counters");
            if !last.is_empty() {
                check_counters_monotonic(&mut t, &last, &now);
            }
            last = now;
        }
    })
    .expect("decap test runs");
    eprintln!(
        "dp_fuzz decap: tc {tc}, seed {seed:#x}: {} frames run ({} refused by the kernel), \
         {} decapsulated, verdicts {:?}, {} violations",
        t.frames,
        t.refused,
        t.rewritten,
        t.verdicts,
        t.violations.len()
    );
    let rx = last.iter().find(|(n, _)| *n == "rx").map_or(0, |(_, v)| *v);
    assert!(
        rx <= t.frames && rx + 64 >= t.frames,
        "rx {rx} for {} frames",
        t.frames
    );
    t.assert_clean("nothing was ever decapsulated: the generator misses");
}

/// For a program that may only pass or drop: a violation for any other
/// verdict; whether the frame passed changed.
fn passed_changed(t: &mut Tally, who: &str, f: &[u8], verdict: u32, out: &[u8]) -> bool {
    if !matches!(verdict, XDP_PASS | XDP_DROP) {
        t.violate(format!("{who} verdict {verdict}"), f);
        return false;
    }
    out != f && verdict == XDP_PASS
}

fn check_decap(t: &mut Tally, f: &[u8], verdict: u32, out: &[u8]) {
    if !passed_changed(t, "decap", f, verdict, out) {
        return;
    }
    t.rewritten += 1;
    let Some(outer) = ipv4_of(f) else {
        t.violate("decapsulated a frame that is not IPv4".into(), f);
        return;
    };
    let hdr = ethernet::HEADER_LEN;
    let inner = out.get(hdr..).unwrap_or_default();
    // The inner packet is the tail of the outer one, from inside it.
    let outer_l3 = f.get(hdr..).unwrap_or_default();
    let strip = outer_l3.len().checked_sub(inner.len());
    let ok_tail = strip.is_some_and(|s| outer_l3.get(s..) == Some(inner));
    let inside = strip.is_some_and(|s| s + 20 <= usize::from(outer.total_len()));
    if out.get(..hdr) != f.get(..hdr) || !ok_tail || !inside {
        t.violate(
            "decapsulated into something that is not the inner packet".into(),
            f,
        );
        return;
    }
    // The inner header is only looked at for its version and destination,
    // as the kernel's ipip/fou do: a malformed one is the inner stack's to
    // drop.
    let to_vip = inner.first().is_some_and(|b| b >> 4 == 4)
        && inner
            .get(16..20)
            .and_then(|d| <[u8; 4]>::try_from(d).ok())
            .is_some_and(|d| VIPS.contains(&Ipv4Addr::from(d)));
    if !to_vip {
        t.violate("decapsulated a packet that is not to a VIP".into(), f);
    }
}
