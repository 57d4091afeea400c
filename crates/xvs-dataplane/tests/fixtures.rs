//! BPF_PROG_TEST_RUN fixtures for `xvs_xdp`: input frame -> verdict and
//! output frame. Need root; `cargo xtask test` runs them with `--ignored`.
//!
//! Every test first moves its own thread into a fresh network namespace,
//! so the program's fib lookup sees a deterministic world (no routes,
//! forwarding off: the rewritten packet is passed to the kernel).

mod common;

use common::attach_mode;
use libbpf_rs::MapCore as _;
use std::collections::HashSet;
use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use xvs_core::model::{
    ConnState, Dest, FwdMethod, Protocol, Service, ServiceKey, Timeouts, TunCsum, TunType,
};
use xvs_dataplane::decap::{self, DecapConfig};
use xvs_dataplane::{features, AttachMode, Dataplane, Error, Options, SvcSched};
use xvs_wire::{
    ethernet, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, GuePacket, GueRepr,
    Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr, TcpFlags, TcpPacket, TcpRepr,
    UdpChecksum, UdpPacket, UdpRepr,
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const VPORT: u16 = 80;
const CLIENT: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);
const RS0: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const RS1: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 11);
const RPORT: u16 = 8080;

// ---------------------------------------------------------------- frames

/// IPv4 header (+options) + payload through xvs-wire: id 0x1234, TOS 0,
/// `frag` the flags/fragment-offset word, correct header checksum.
fn ipv4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ttl: u8,
    opts: &[u8],
    frag: u16,
    payload: &[u8],
) -> Vec<u8> {
    Ipv4Repr {
        ident: 0x1234,
        dont_frag: frag & 0x4000 != 0,
        more_frags: frag & 0x2000 != 0,
        frag_offset: frag & 0x1fff,
        options: opts,
        ..Ipv4Repr::new(src, dst, proto.into(), ttl)
    }
    .to_vec(payload)
    .expect("IPv4 packet")
}

/// TCP segment: seq 1000, window 65535, correct checksum.
fn tcp_seg(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    TcpRepr {
        seq_number: 1000,
        window_len: 65535,
        ..TcpRepr::new(sport, dport, TcpFlags(flags))
    }
    .to_vec(payload, &src.into(), &dst.into())
    .expect("TCP segment")
}

fn udp_dgram(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
    with_csum: bool,
) -> Vec<u8> {
    let csum = if with_csum {
        UdpChecksum::Compute
    } else {
        UdpChecksum::Zero
    };
    UdpRepr {
        src_port: sport,
        dst_port: dport,
    }
    .to_vec(payload, &src.into(), &dst.into(), csum)
    .expect("UDP datagram")
}

/// Ethernet header (02:..:02 -> 02:..:01, IPv4) + `ip`.
fn eth(ip: &[u8]) -> Vec<u8> {
    EthernetRepr {
        src_addr: EthernetAddress([0x02, 0, 0, 0, 0, 0x02]),
        dst_addr: EthernetAddress([0x02, 0, 0, 0, 0, 0x01]),
        ethertype: EtherType::Ipv4,
    }
    .to_vec(ip)
}

fn tcp_frame(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    eth(&ipv4(
        src,
        dst,
        TCP,
        64,
        &[],
        0,
        &tcp_seg(src, dst, sport, dport, flags, b"hello"),
    ))
}

fn udp_frame(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, with_csum: bool) -> Vec<u8> {
    eth(&ipv4(
        src,
        dst,
        UDP,
        64,
        &[],
        0,
        &udp_dgram(src, dst, sport, dport, b"ping!", with_csum),
    ))
}

/// Parsed view of an output frame (Ethernet + IPv4) through xvs-wire.
struct Pkt<'a>(&'a [u8]);

impl<'a> Pkt<'a> {
    fn eth(&self) -> EthernetFrame<&'a [u8]> {
        EthernetFrame::new_checked(self.0).expect("Ethernet frame")
    }
    /// The IPv4 packet (what follows the Ethernet header).
    fn l3(&self) -> &'a [u8] {
        let b: &'a [u8] = self.0;
        b.get(ethernet::HEADER_LEN..).expect("Ethernet frame")
    }
    fn ip(&self) -> Ipv4Packet<&'a [u8]> {
        Ipv4Packet::new_checked(self.l3()).expect("IPv4 packet")
    }
    fn dst_mac(&self) -> [u8; 6] {
        self.eth().dst_addr().0
    }
    fn src_mac(&self) -> [u8; 6] {
        self.eth().src_addr().0
    }
    fn ihl(&self) -> usize {
        self.ip().header_len()
    }
    fn tot_len(&self) -> usize {
        self.ip().total_len().into()
    }
    fn proto(&self) -> u8 {
        self.ip().protocol().into()
    }
    fn saddr(&self) -> Ipv4Addr {
        self.ip().src_addr()
    }
    fn daddr(&self) -> Ipv4Addr {
        self.ip().dst_addr()
    }
    fn ttl(&self) -> u8 {
        self.ip().ttl()
    }
    fn l4(&self) -> &'a [u8] {
        let l3 = self.l3();
        let ip = Ipv4Packet::new_checked(l3).expect("IPv4 packet");
        l3.get(ip.header_len()..ip.total_len().into())
            .expect("IPv4 payload")
    }
    fn sport(&self) -> u16 {
        xvs_wire::ports(self.l4()).expect("ports").0
    }
    fn dport(&self) -> u16 {
        xvs_wire::ports(self.l4()).expect("ports").1
    }
    /// The UDP checksum field.
    fn udp_csum(&self) -> u16 {
        UdpPacket::new_checked(self.l4()).expect("UDP").checksum()
    }
    /// The ICMP message.
    fn icmp(&self) -> Icmpv4Packet<&'a [u8]> {
        Icmpv4Packet::new_checked(self.l4()).expect("ICMP")
    }
    fn ip_csum_ok(&self) -> bool {
        self.ip().verify_checksum()
    }
    /// Verifies the full L4 checksum (TCP, or UDP unless zero).
    fn l4_csum_ok(&self) -> bool {
        let (s, d) = (self.saddr().into(), self.daddr().into());
        match self.ip().protocol() {
            IpProtocol::Tcp => {
                TcpPacket::new_checked(self.l4()).is_ok_and(|t| t.verify_checksum(&s, &d))
            }
            IpProtocol::Udp => {
                UdpPacket::new_checked(self.l4()).is_ok_and(|u| u.verify_checksum(&s, &d))
            }
            _ => false,
        }
    }
}

// ---------------------------------------------------------------- setup

/// Keeps this test thread on one CPU: the next-hop cache is per CPU, and
/// a test that counts its fills must not wander to a CPU whose slot is
/// cold (`BPF_PROG_TEST_RUN` runs the program where the caller runs).
fn stay_on_one_cpu() {
    // SAFETY: a zeroed cpu_set_t with one bit set, for this thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(
        rc,
        0,
        "sched_setaffinity: {}",
        std::io::Error::last_os_error()
    );
}

/// Moves this test thread into a new, empty network namespace.
fn own_netns() {
    // SAFETY: affects only the calling thread (netns is per task).
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
}

fn opts() -> Options {
    common::options()
}

fn key(proto: Protocol) -> ServiceKey {
    ServiceKey {
        fwmark: 0,
        proto,
        addr: IpAddr::V4(VIP),
        port: VPORT,
    }
}

fn masq(addr: Ipv4Addr, port: u16) -> Dest {
    let mut d = Dest::new(addr, port);
    d.fwd = FwdMethod::Masq;
    d
}

/// Dataplane with service 0 (`proto` VIP:80) -> dests 0 (RS0) and 1 (RS1)
/// on port 8080, ring `ring`.
fn setup(o: Options, proto: Protocol, ring: &[u32]) -> Dataplane {
    own_netns();
    let dp = Dataplane::open(&o).expect("open (root needed)");
    dp.upsert_dest(0, 0, &masq(RS0, RPORT)).unwrap();
    dp.upsert_dest(1, 0, &masq(RS1, RPORT)).unwrap();
    dp.upsert_service(
        0,
        &Service::new(key(proto), "rr"),
        &SvcSched::from_ring(ring),
    )
    .unwrap();
    dp
}

/// Whether this kernel's BPF_PROG_TEST_RUN can say which interface a
/// frame came in on (an xdp_md context needs 5.15, an __sk_buff
/// ingress_ifindex a later kernel than 5.10): the tests of forwarding
/// decisions need it and are skipped, with the reason, where it cannot.
/// The e2e tests cover those paths with real traffic on every kernel.
/// Whether `dp` goes without `f`, said as "skipped `what`" with the
/// reason.
fn lacks(dp: &Dataplane, f: features::Feature, what: &str) -> bool {
    if dp.features().has(f) {
        return false;
    }
    let why = dp.features().why(f).unwrap_or("XVS_FEATURES_OFF");
    eprintln!("skipped {what}: no {} on this kernel ({why})", f.name);
    true
}

fn ingress_runs(dp: &Dataplane) -> bool {
    let arp = EthernetRepr {
        src_addr: EthernetAddress::default(),
        dst_addr: EthernetAddress::default(),
        ethertype: EtherType::Arp,
    }
    .to_vec(&[0u8; 46]);
    match dp.test_run(&arp, Some(1)) {
        Err(Error::Unsupported(why)) => {
            eprintln!("skipped: {why}");
            false
        }
        _ => true,
    }
}

fn run(dp: &Dataplane, f: &[u8]) -> (u32, Vec<u8>) {
    dp.test_run(f, None).expect("test_run")
}

fn state_of(dp: &Dataplane, cport: u16) -> ConnState {
    dp.conns()
        .unwrap()
        .into_iter()
        .find(|c| c.cport == cport)
        .expect("conn")
        .state
}

// ---------------------------------------------------------------- tests

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn tcp_syn_is_dnated_and_reply_snated() {
    let dp = setup(opts(), Protocol::Tcp, &[0]);
    let syn = tcp_frame(CLIENT, VIP, 40000, VPORT, SYN);
    let (v, out) = run(&dp, &syn);
    assert_eq!(
        v, XDP_PASS,
        "fib misses in an empty netns: rewritten packet passed"
    );
    let p = Pkt(&out);
    assert_eq!(out.len(), syn.len());
    assert_eq!((p.saddr(), p.sport()), (CLIENT, 40000));
    assert_eq!((p.daddr(), p.dport()), (RS0, RPORT));
    assert!(p.ip_csum_ok() && p.l4_csum_ok());
    assert_eq!(p.ttl(), 64, "TTL is left to the kernel when it forwards");
    assert_eq!(
        EthernetRepr::parse(&Pkt(&out).eth()),
        EthernetRepr::parse(&Pkt(&syn).eth())
    );

    let conns = dp.conns().unwrap();
    assert_eq!(conns.len(), 1);
    let c = &conns[0];
    assert_eq!(
        (c.proto, c.caddr, c.cport, c.vaddr, c.vport),
        (Protocol::Tcp, CLIENT, 40000, VIP, VPORT)
    );
    assert_eq!(
        (c.daddr, c.dport, c.state, c.fwd),
        (RS0, RPORT, ConnState::SynRecv, FwdMethod::Masq)
    );
    assert_eq!((c.svc_id, c.dest_id), (0, 0));
    let now = xvs_dataplane::monotonic_ns();
    assert!(
        now >= c.last_seen_ns && now - c.last_seen_ns < 5_000_000_000,
        "same clock"
    );
    assert_eq!(dp.conn_count().unwrap(), 1);
    assert_eq!(dp.dest_conns(0).unwrap(), (0, 1));

    let synack = tcp_frame(RS0, CLIENT, RPORT, 40000, SYN | ACK);
    let (v, out) = run(&dp, &synack);
    assert_eq!(v, XDP_PASS);
    let p = Pkt(&out);
    assert_eq!((p.saddr(), p.sport()), (VIP, VPORT));
    assert_eq!((p.daddr(), p.dport()), (CLIENT, 40000));
    assert!(p.ip_csum_ok() && p.l4_csum_ok());

    let s = dp.svc_stats(0).unwrap();
    let len = (syn.len() - 14) as u64;
    assert_eq!(
        (s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes),
        (1, 1, 1, len, len)
    );
    assert_eq!(dp.dest_stats(0).unwrap(), s);
    assert_eq!(dp.dest_stats(1).unwrap().conns, 0);
    // The bulk reads (rate estimators, listings) agree with the per-id ones.
    let all = dp.all_svc_stats().unwrap();
    assert_eq!((all.len(), all[0]), (opts().max_services as usize, s));
    assert!(all[1..].iter().all(|x| *x == Default::default()));
    let all = dp.all_dest_stats().unwrap();
    assert_eq!((all.len(), all[0]), (opts().max_dests as usize, s));
    assert!(all[1..].iter().all(|x| *x == Default::default()));
    assert_eq!(dp.counter("conn_new").unwrap(), 1);
    assert_eq!(dp.counter("nat_in").unwrap(), 1);
    assert_eq!(dp.counter("nat_out").unwrap(), 1);
    dp.zero_svc_stats(0).unwrap();
    dp.zero_dest_stats(0).unwrap();
    assert_eq!(dp.svc_stats(0).unwrap(), Default::default());
    assert_eq!(dp.dest_stats(0).unwrap(), Default::default());
}

/// A connection installed from a sync master (no SYN ever seen here) is
/// forwarded both ways as one the program made, counted on its dest, and
/// moves between active and inactive with the states the master sends.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_synchronised_connection_is_forwarded_both_ways() {
    use xvs_dataplane::synced::Installed;
    let dp = setup(opts(), Protocol::Tcp, &[0]);
    let idx = dp.sync_index().unwrap();
    assert_eq!(idx.service(TCP, VIP, VPORT), Some((0, false)));
    assert_eq!(idx.dest(0, RS1, RPORT), Some((1, FwdMethod::Masq)));
    assert_eq!(idx.dest(0, RS1, 1), None);
    assert_eq!(idx.service(UDP, VIP, VPORT), None);
    let mut c = xvs_dataplane::Conn {
        proto: Protocol::Tcp,
        caddr: CLIENT,
        cport: 40100,
        vaddr: VIP,
        vport: VPORT,
        daddr: RS1,
        dport: RPORT,
        state: ConnState::Established,
        fwd: FwdMethod::Masq,
        svc_id: 0,
        dest_id: 1,
        last_seen_ns: 0,
        persistent: false,
    };
    assert_eq!(dp.install_conn(&c).unwrap(), Installed::New);
    assert_eq!(dp.dest_conns(1).unwrap(), (1, 0));
    // Mid-stream: an ACK, which the program never schedules, goes to RS1
    // (the ring would say RS0).
    let (_, out) = run(&dp, &tcp_frame(CLIENT, VIP, 40100, VPORT, ACK));
    let p = Pkt(&out);
    assert_eq!((p.daddr(), p.dport()), (RS1, RPORT));
    assert!(p.ip_csum_ok() && p.l4_csum_ok());
    let (_, out) = run(&dp, &tcp_frame(RS1, CLIENT, RPORT, 40100, ACK));
    let p = Pkt(&out);
    assert_eq!((p.saddr(), p.sport()), (VIP, VPORT));
    assert_eq!(dp.counter("conn_new").unwrap(), 0);

    c.state = ConnState::FinWait;
    assert_eq!(dp.install_conn(&c).unwrap(), Installed::Updated);
    assert_eq!(dp.dest_conns(1).unwrap(), (0, 1));
    assert_eq!(state_of(&dp, 40100), ConnState::FinWait);
    assert_eq!(dp.conn_count().unwrap(), 1);
    // Expiry unbinds it like any other.
    let idle = xvs_dataplane::monotonic_ns() + 3_600_000_000_000;
    assert_eq!(dp.expire_conns_at(&Default::default(), idle).unwrap(), 1);
    assert_eq!(dp.dest_conns(1).unwrap(), (0, 0));
    c.dest_id = 99_999;
    assert!(dp.install_conn(&c).is_err(), "a dest id out of range");
}

/// A persistence template from a sync master sends the client's next
/// connection to the master's choice (the ring would say RS0), and is
/// counted as PersistConn of that dest.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_synchronised_template_keeps_the_client_on_its_server() {
    own_netns();
    let dp = Dataplane::open(&opts()).expect("open (root needed)");
    dp.upsert_dest(0, 0, &masq(RS0, RPORT)).unwrap();
    dp.upsert_dest(1, 0, &masq(RS1, RPORT)).unwrap();
    let mut svc = Service::new(key(Protocol::Tcp), "rr");
    svc.flags |= xvs_core::model::svc_flags::PERSISTENT;
    svc.timeout = 300;
    dp.upsert_service(0, &svc, &SvcSched::from_ring(&[0]))
        .unwrap();
    let t = xvs_dataplane::Template {
        proto: Protocol::Tcp,
        fwmark: 0,
        caddr: CLIENT,
        vaddr: VIP,
        vport: VPORT,
        daddr: RS1,
        dport: RPORT,
        svc_id: 0,
        dest_id: 1,
        last_seen_ns: 0,
        timeout_secs: 300,
        conns: 0,
        fwd: FwdMethod::Masq,
        assured: true,
        pe_data: None,
    };
    assert_eq!(
        dp.install_template(&t).unwrap(),
        xvs_dataplane::synced::Installed::New
    );
    assert_eq!(dp.persist_conns(1).unwrap(), 1);
    let (_, out) = run(&dp, &tcp_frame(CLIENT, VIP, 40200, VPORT, SYN));
    assert_eq!(Pkt(&out).daddr(), RS1, "the synchronised template decides");
    let got = dp.templates().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].dest_id, got[0].assured, got[0].timeout_secs),
        (1, true, 300)
    );
    // Refreshed by the master with another dest: moved, counts follow.
    let moved = xvs_dataplane::Template {
        daddr: RS0,
        dest_id: 0,
        ..t
    };
    dp.install_template(&moved).unwrap();
    assert_eq!(
        (dp.persist_conns(0).unwrap(), dp.persist_conns(1).unwrap()),
        (1, 0)
    );
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn tcp_states_follow_ipvs_table_and_dest_conns() {
    let dp = setup(opts(), Protocol::Tcp, &[1]);
    let c2v = |f| tcp_frame(CLIENT, VIP, 40001, VPORT, f);
    let r2c = |f| tcp_frame(RS1, CLIENT, RPORT, 40001, f);
    run(&dp, &c2v(SYN));
    assert_eq!(state_of(&dp, 40001), ConnState::SynRecv);
    run(&dp, &r2c(SYN | ACK));
    assert_eq!(state_of(&dp, 40001), ConnState::SynRecv);
    assert_eq!(dp.dest_conns(1).unwrap(), (0, 1));
    run(&dp, &c2v(ACK));
    assert_eq!(state_of(&dp, 40001), ConnState::Established);
    assert_eq!(dp.dest_conns(1).unwrap(), (1, 0));
    run(&dp, &c2v(ACK));
    assert_eq!(state_of(&dp, 40001), ConnState::Established);
    // Server closes first: OUTPUT fin from ES -> FIN_WAIT.
    run(&dp, &r2c(FIN | ACK));
    assert_eq!(state_of(&dp, 40001), ConnState::FinWait);
    assert_eq!(dp.dest_conns(1).unwrap(), (0, 1));
    // INPUT fin from FIN_WAIT -> TIME_WAIT.
    run(&dp, &c2v(FIN | ACK));
    assert_eq!(state_of(&dp, 40001), ConnState::TimeWait);
    // INPUT rst from TIME_WAIT -> CLOSE.
    run(&dp, &c2v(RST));
    assert_eq!(state_of(&dp, 40001), ConnState::Close);
    assert_eq!(dp.dest_conns(1).unwrap(), (0, 1));

    // Second conn: client closes first: INPUT fin ES -> CLOSE_WAIT,
    // then OUTPUT fin CW -> TIME_WAIT.
    let c2v = |f| tcp_frame(CLIENT, VIP, 40002, VPORT, f);
    let r2c = |f| tcp_frame(RS1, CLIENT, RPORT, 40002, f);
    run(&dp, &c2v(SYN));
    run(&dp, &r2c(SYN | ACK));
    run(&dp, &c2v(ACK));
    assert_eq!(dp.dest_conns(1).unwrap(), (1, 1));
    run(&dp, &c2v(FIN | ACK));
    assert_eq!(state_of(&dp, 40002), ConnState::CloseWait);
    run(&dp, &r2c(FIN | ACK));
    assert_eq!(state_of(&dp, 40002), ConnState::TimeWait);
    assert_eq!(dp.dest_conns(1).unwrap(), (0, 2));
}

/// The client's and the real server's FIN crossing, handled on two CPUs
/// at the same instant: both transitions must land (ES -> CW -> TW or
/// ES -> FW -> TW), as under IPVS's cp->lock. A compare-and-swap lost to
/// the other CPU once dropped its FIN and left the connection in FIN_WAIT
/// or CLOSE_WAIT (the VM's traffic oracle caught one in FIN_WAIT).
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn crossing_fins_on_two_cpus_both_count() {
    const N: u16 = 500; // within opts()'s connection table
    const PORT0: u16 = 41000;
    let dp = setup(opts(), Protocol::Tcp, &[0]);
    if lacks(
        &dp,
        features::ATOMICS,
        "the test (plain updates can lose a race)",
    ) {
        return;
    }
    for port in PORT0..PORT0 + N {
        run(&dp, &tcp_frame(CLIENT, VIP, port, VPORT, SYN));
        run(&dp, &tcp_frame(RS0, CLIENT, RPORT, port, SYN | ACK));
        run(&dp, &tcp_frame(CLIENT, VIP, port, VPORT, ACK));
    }
    assert_eq!(dp.dest_conns(0).unwrap(), (u32::from(N), 0));
    // A spinning rendezvous before each pair: a sleeping barrier wakes
    // the two threads microseconds apart, far wider than the window
    // between the program's read of the state and its compare-and-swap.
    let turn = [AtomicU32::new(0), AtomicU32::new(0)];
    let shared = SharedDp(&dp);
    let send = |me: usize, fin: &(dyn Fn(u16) -> Vec<u8> + Sync)| {
        pin_to(me);
        for (i, port) in (PORT0..PORT0 + N).enumerate() {
            let f = fin(port);
            let i = u32::try_from(i).expect("few ports");
            turn[me].store(i + 1, Ordering::SeqCst);
            while turn[1 - me].load(Ordering::SeqCst) < i + 1 {
                std::hint::spin_loop();
            }
            shared.run(&f);
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| send(0, &|p| tcp_frame(CLIENT, VIP, p, VPORT, FIN | ACK)));
        s.spawn(|| send(1, &|p| tcp_frame(RS0, CLIENT, RPORT, p, FIN | ACK)));
    });
    let stuck: Vec<_> = dp
        .conns()
        .unwrap()
        .into_iter()
        .filter(|c| c.state != ConnState::TimeWait)
        .map(|c| (c.cport, c.state))
        .collect();
    assert!(stuck.is_empty(), "not in TIME_WAIT: {stuck:?}");
    assert_eq!(dp.dest_conns(0).unwrap(), (0, u32::from(N)));
    assert_eq!(dp.counter("state_race").unwrap(), 0);
}

/// A `Dataplane` used by two threads at once for `test_run` only: that
/// looks its program up in the object (read-only) and makes the
/// BPF_PROG_TEST_RUN syscall, which the kernel serialises per map entry
/// no more than it does for real traffic.
struct SharedDp<'a>(&'a Dataplane);
// SAFETY: see the type's comment; nothing else is called through it.
unsafe impl Sync for SharedDp<'_> {}

impl SharedDp<'_> {
    fn run(&self, f: &[u8]) -> (u32, Vec<u8>) {
        run(self.0, f)
    }
}

/// Keeps this thread on `cpu` when the machine has it (one CPU: the
/// threads then interleave there, which races less but still must pass).
fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t with one bit set, for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

/// One `wrk -H 'Connection: close'` exchange on client port `cport`, as
/// the benchmark makes them (the real server closes first): SYN, SYN-ACK,
/// ACK, request, response, RS FIN, client ACK, client FIN, RS ACK. Every
/// packet must be translated; returns the real server the SYN went to.
fn close_exchange(dp: &Dataplane, cport: u16) -> Ipv4Addr {
    let c2v = |f| tcp_frame(CLIENT, VIP, cport, VPORT, f);
    let (v, out) = run(dp, &c2v(SYN));
    assert_eq!(v, XDP_PASS, "port {cport}: the SYN is forwarded");
    let p = Pkt(&out);
    let rs = p.daddr();
    assert_eq!((p.dport(), p.saddr(), p.sport()), (RPORT, CLIENT, cport));
    let r2c = |f| tcp_frame(rs, CLIENT, RPORT, cport, f);
    let check_out = |f: Vec<u8>| {
        let (v, out) = run(dp, &f);
        assert_eq!(v, XDP_PASS);
        let p = Pkt(&out);
        assert_eq!(
            (p.saddr(), p.sport(), p.daddr(), p.dport()),
            (VIP, VPORT, CLIENT, cport),
            "port {cport}: reply from {rs} translated"
        );
    };
    let check_in = |f: Vec<u8>| {
        let (v, out) = run(dp, &f);
        assert_eq!(v, XDP_PASS);
        let p = Pkt(&out);
        assert_eq!(
            (p.daddr(), p.dport()),
            (rs, RPORT),
            "port {cport}: client packet to {rs}"
        );
    };
    check_out(r2c(SYN | ACK));
    check_in(c2v(ACK));
    check_in(c2v(ACK | 0x08)); // request (PSH)
    assert_eq!(state_of(dp, cport), ConnState::Established);
    check_out(r2c(ACK | 0x08)); // response
    check_out(r2c(FIN | ACK));
    assert_eq!(state_of(dp, cport), ConnState::FinWait);
    check_in(c2v(ACK));
    check_in(c2v(FIN | ACK));
    assert_eq!(state_of(dp, cport), ConnState::TimeWait);
    check_out(r2c(ACK));
    assert_eq!(state_of(dp, cport), ConnState::TimeWait);
    rs
}

/// The benchmark's `Connection: close` workload once the client's
/// ephemeral ports wrap: a SYN on a port whose previous connection the
/// director holds in TIME_WAIT (the real server closed first) must start a
/// new connection at once, scheduled afresh, and its reply entry must not
/// clash with the old one's: not when the new connection goes to another
/// real server (the old reply key must go), not when it goes to the same
/// one (the reply key is identical). Nothing dropped, nothing passed
/// untranslated, no entry left behind.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn time_wait_port_reuse_reschedules_at_once_without_reply_clash() {
    let dp = setup(opts(), Protocol::Tcp, &[0, 1]);
    let cport = 40100;
    // rr over both dests: each reuse moves the port to the other RS.
    let mut last = None;
    for i in 0..6 {
        let rs = close_exchange(&dp, cport);
        assert_eq!(rs, if i % 2 == 0 { RS0 } else { RS1 }, "round {i}");
        if let Some(old) = last {
            // The previous connection's reply entry went with it: a late
            // packet from the old RS is not translated into the new one.
            let late = tcp_frame(old, CLIENT, RPORT, cport, FIN | ACK);
            let (v, out) = run(&dp, &late);
            assert_eq!((v, &out), (XDP_PASS, &late), "round {i}: late from {old}");
        }
        last = Some(rs);
        assert_eq!(dp.conn_count().unwrap(), 1, "round {i}: one connection");
        let (this, other) = if rs == RS0 { (0, 1) } else { (1, 0) };
        assert_eq!(dp.dest_conns(this).unwrap(), (0, 1), "round {i}");
        assert_eq!(dp.dest_conns(other).unwrap(), (0, 0), "round {i}");
    }
    // One dest only: the reused port goes back to the same RS, with the
    // very reply key the TIME_WAIT connection had.
    dp.upsert_service(
        0,
        &Service::new(key(Protocol::Tcp), "rr"),
        &SvcSched::from_ring(&[1]),
    )
    .unwrap();
    for i in 0..3 {
        assert_eq!(close_exchange(&dp, cport), RS1, "same-RS round {i}");
        assert_eq!(dp.conn_count().unwrap(), 1);
        assert_eq!(dp.dest_conns(1).unwrap(), (0, 1));
        assert_eq!(dp.dest_conns(0).unwrap(), (0, 0));
    }
    // A SYN retransmitted on the fresh connection (SYN_RECV) is no reuse.
    run(&dp, &tcp_frame(CLIENT, VIP, cport, VPORT, SYN));
    let (v, out) = run(&dp, &tcp_frame(CLIENT, VIP, cport, VPORT, SYN));
    assert_eq!((v, Pkt(&out).daddr()), (XDP_PASS, RS1));
    assert_eq!(dp.counter("conn_new").unwrap(), 10);
    assert_eq!(dp.counter("conn_reuse").unwrap(), 9);
    for bad in [
        "reply_takeover",
        "drop_conn_full",
        "pass_stale",
        "pass_tcp_no_conn",
        "pass_no_dest",
    ] {
        assert_eq!(dp.counter(bad).unwrap(), 0, "{bad}");
    }
    let s = dp.svc_stats(0).unwrap();
    assert_eq!(s.conns, 10);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn udp_both_ways_including_zero_checksum() {
    let dp = setup(opts(), Protocol::Udp, &[0]);
    let f = udp_frame(CLIENT, VIP, 5353, VPORT, true);
    let (v, out) = run(&dp, &f);
    assert_eq!(v, XDP_PASS);
    let p = Pkt(&out);
    assert_eq!((p.daddr(), p.dport()), (RS0, RPORT));
    assert!(p.ip_csum_ok() && p.l4_csum_ok());
    assert_ne!(p.udp_csum(), 0);
    assert_eq!(state_of(&dp, 5353), ConnState::Udp);
    assert_eq!(dp.dest_conns(0).unwrap(), (0, 1));

    let r = udp_frame(RS0, CLIENT, RPORT, 5353, true);
    let (_, out) = run(&dp, &r);
    let p = Pkt(&out);
    assert_eq!(
        (p.saddr(), p.sport(), p.daddr(), p.dport()),
        (VIP, VPORT, CLIENT, 5353)
    );
    assert!(p.ip_csum_ok() && p.l4_csum_ok());

    // Zero checksum means "none" and stays zero both ways.
    let f = udp_frame(CLIENT, VIP, 5354, VPORT, false);
    let (_, out) = run(&dp, &f);
    let p = Pkt(&out);
    assert_eq!((p.daddr(), p.dport()), (RS0, RPORT));
    assert_eq!(p.udp_csum(), 0);
    assert!(p.ip_csum_ok());
    let r = udp_frame(RS0, CLIENT, RPORT, 5354, false);
    let (_, out) = run(&dp, &r);
    let p = Pkt(&out);
    assert_eq!((p.saddr(), p.sport()), (VIP, VPORT));
    assert_eq!(p.udp_csum(), 0);
    assert!(p.ip_csum_ok());
    let s = dp.svc_stats(0).unwrap();
    assert_eq!((s.conns, s.inpkts, s.outpkts), (2, 2, 2));
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn non_vip_and_non_syn_pass_untouched() {
    let dp = setup(opts(), Protocol::Tcp, &[0]);
    let other = tcp_frame(CLIENT, Ipv4Addr::new(10, 0, 0, 99), 40000, VPORT, SYN);
    let (v, out) = run(&dp, &other);
    assert_eq!((v, &out), (XDP_PASS, &other));
    let wrong_port = tcp_frame(CLIENT, VIP, 40000, 81, SYN);
    let (v, out) = run(&dp, &wrong_port);
    assert_eq!((v, &out), (XDP_PASS, &wrong_port));
    let udp_to_tcp_svc = udp_frame(CLIENT, VIP, 40000, VPORT, true);
    let (v, out) = run(&dp, &udp_to_tcp_svc);
    assert_eq!((v, &out), (XDP_PASS, &udp_to_tcp_svc));
    assert_eq!(dp.counter("pass_no_svc").unwrap(), 3);

    for flags in [ACK, FIN | ACK, RST, SYN | RST, 0] {
        let f = tcp_frame(CLIENT, VIP, 40000, VPORT, flags);
        let (v, out) = run(&dp, &f);
        assert_eq!((v, &out), (XDP_PASS, &f));
    }
    assert_eq!(dp.counter("pass_tcp_no_conn").unwrap(), 5);
    assert_eq!(dp.conn_count().unwrap(), 0);

    let mut arp = tcp_frame(CLIENT, VIP, 40000, VPORT, SYN);
    EthernetFrame::new_checked(&mut arp[..])
        .unwrap()
        .set_ethertype(EtherType::Arp);
    let (v, out) = run(&dp, &arp);
    assert_eq!((v, &out), (XDP_PASS, &arp));
    assert_eq!(dp.counter("pass_not_ip").unwrap(), 1);

    let gre = eth(&ipv4(CLIENT, VIP, 47, 64, &[], 0, &[0u8; 24]));
    let (v, out) = run(&dp, &gre);
    assert_eq!((v, &out), (XDP_PASS, &gre));
    assert_eq!(dp.counter("pass_proto").unwrap(), 1);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn truncated_frames_never_crash_and_are_counted() {
    let dp = setup(opts(), Protocol::Tcp, &[0]);
    let frames = [
        tcp_frame(CLIENT, VIP, 40000, VPORT, SYN),
        udp_frame(CLIENT, VIP, 40000, VPORT, true),
        eth(&ipv4(
            CLIENT,
            VIP,
            TCP,
            64,
            &[1, 1, 1, 0],
            0,
            &tcp_seg(CLIENT, VIP, 1, VPORT, SYN, b""),
        )),
    ];
    let mut runs = 0;
    for f in &frames {
        // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header.
        for cut in 14..f.len() {
            let t = &f[..cut];
            if attach_mode() == AttachMode::Tc && cut < 14 + 20 {
                // An skb test run needs the IPv4 header the Ethernet
                // header announces; the kernel refuses, we never see it.
                assert!(dp.test_run(t, None).is_err(), "cut at {cut}");
                continue;
            }
            let (v, out) = run(&dp, t);
            runs += 1;
            assert_eq!(v, XDP_PASS, "cut at {cut}");
            assert_eq!(out, t, "cut at {cut} left untouched");
        }
    }
    assert_eq!(dp.conn_count().unwrap(), 0);
    let c = dp.counters().unwrap();
    let get = |n: &str| c.iter().find(|(k, _)| *k == n).unwrap().1;
    assert_eq!(get("rx"), runs);
    assert_eq!(get("pass_truncated") + get("pass_bad_ip"), runs);
    assert!(get("pass_truncated") > 0);
    // A frame shorter than Ethernet: refused by the kernel, or (older
    // kernels) handed to us, and then passed untouched and counted.
    let short = &frames[0][..10];
    if let Ok((v, out)) = dp.test_run(short, None) {
        assert_eq!((v, out.as_slice()), (XDP_PASS, short));
        assert_eq!(
            dp.counter("pass_truncated").unwrap(),
            get("pass_truncated") + 1
        );
    }
}

/// Sets an Ethernet + IPv4 frame's IP total length (checksum redone),
/// leaving the bytes after it in the frame, as padding.
fn set_tot_len(f: &mut [u8], len: u16) {
    let mut e = EthernetFrame::new_checked(f).expect("Ethernet frame");
    let mut p = Ipv4Packet::new_checked(e.payload_mut()).expect("IPv4 packet");
    p.set_total_len(len);
    p.fill_checksum();
}

/// Found by the data-plane fuzzer: bytes after the IP total length
/// (Ethernet padding) were read as the TCP/UDP header or as an ICMP
/// error's quote. The kernel trims them before IPVS sees the packet; a
/// packet too short for its L4 header goes to the kernel untouched.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn bytes_past_the_ip_total_length_are_not_the_packets() {
    let dp = setup(opts(), Protocol::Udp, &[1]);
    let (_, fwd) = run(&dp, &udp_frame(CLIENT, VIP, 6100, VPORT, true));
    assert_eq!(Pkt(&fwd).daddr(), RS1);

    // A datagram for the VIP whose UDP header lies past its total length.
    let mut f = udp_frame(CLIENT, VIP, 6101, VPORT, true);
    set_tot_len(&mut f, 20 + 4);
    let (v, out) = run(&dp, &f);
    assert_eq!((v, &out), (XDP_PASS, &f), "short UDP passes untouched");

    // An ICMP error of the connection whose quote lies past the length.
    let (_, rep) = run(&dp, &udp_frame(RS1, CLIENT, RPORT, 6100, true));
    let mut f = icmp_error(CLIENT, VIP, 3, 3, Pkt(&rep).l3());
    set_tot_len(&mut f, 20 + 8);
    let truncated = dp.counter("pass_truncated").unwrap();
    let (v, out) = run(&dp, &f);
    assert_eq!((v, &out), (XDP_PASS, &f), "cut ICMP error passes untouched");
    assert_eq!(dp.counter("icmp_in").unwrap(), 0, "not translated");
    assert_eq!(dp.counter("pass_truncated").unwrap(), truncated + 1);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn ipv4_options_are_honoured() {
    let dp = setup(opts(), Protocol::Tcp, &[0]);
    let opts_bytes = [0x01, 0x01, 0x01, 0x01, 0x94, 0x04, 0x00, 0x00]; // NOPs + router alert
    let seg = tcp_seg(CLIENT, VIP, 40100, VPORT, SYN, b"opt");
    let f = eth(&ipv4(CLIENT, VIP, TCP, 64, &opts_bytes, 0, &seg));
    let (v, out) = run(&dp, &f);
    assert_eq!(v, XDP_PASS);
    let p = Pkt(&out);
    assert_eq!(p.ihl(), 28);
    assert_eq!((p.daddr(), p.sport(), p.dport()), (RS0, 40100, RPORT));
    assert!(p.ip_csum_ok() && p.l4_csum_ok());
    assert_eq!(p.ip().options(), &opts_bytes);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn fragments_pass_untouched() {
    let dp = setup(opts(), Protocol::Udp, &[0]);
    let u = udp_dgram(CLIENT, VIP, 5000, VPORT, &[7u8; 32], true);
    for frag in [0x2000u16 /* MF */, 0x0004 /* offset 32 */, 0x2004] {
        let f = eth(&ipv4(CLIENT, VIP, UDP, 64, &[], frag, &u));
        let (v, out) = run(&dp, &f);
        assert_eq!((v, &out), (XDP_PASS, &f));
    }
    // DF alone is not a fragment.
    let f = eth(&ipv4(CLIENT, VIP, UDP, 64, &[], 0x4000, &u));
    let (_, out) = run(&dp, &f);
    assert_eq!(Pkt(&out).daddr(), RS0);
    assert_eq!(dp.counter("pass_fragment").unwrap(), 3);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn ttl_one_goes_to_the_kernel() {
    let dp = setup(opts(), Protocol::Tcp, &[0]);
    let f = eth(&ipv4(
        CLIENT,
        VIP,
        TCP,
        1,
        &[],
        0,
        &tcp_seg(CLIENT, VIP, 40000, VPORT, SYN, b""),
    ));
    let (v, out) = run(&dp, &f);
    assert_eq!((v, &out), (XDP_PASS, &f));
    assert_eq!(dp.counter("pass_ttl").unwrap(), 1);
    assert_eq!(dp.conn_count().unwrap(), 0);
}

/// ICMP message `ty`/`code` with bytes 4..8 = 1500 (an MTU where that
/// means one) and `inner_ip` as its data.
fn icmp_error(src: Ipv4Addr, dst: Ipv4Addr, ty: u8, code: u8, inner_ip: &[u8]) -> Vec<u8> {
    let ic = Icmpv4Repr::Other {
        msg_type: ty,
        code,
        rest: 1500,
        data: inner_ip,
    }
    .to_vec();
    eth(&ipv4(src, dst, ICMP, 64, &[], 0, &ic))
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn icmp_errors_are_translated_both_ways() {
    let dp = setup(opts(), Protocol::Udp, &[1]);
    let (_, fwd) = run(&dp, &udp_frame(CLIENT, VIP, 6000, VPORT, true));
    assert_eq!(Pkt(&fwd).daddr(), RS1);

    // RS1 answers the DNATed datagram with port unreachable (whole packet quoted).
    let inner = Pkt(&fwd).l3();
    let f = icmp_error(RS1, CLIENT, 3, 3, inner);
    let (v, out) = run(&dp, &f);
    assert_eq!(v, XDP_PASS);
    let p = Pkt(&out);
    assert_eq!((p.saddr(), p.daddr()), (VIP, CLIENT));
    assert!(p.ip_csum_ok());
    let icmp = p.icmp();
    assert!(icmp.verify_checksum(), "ICMP checksum valid");
    let q = icmp.quoted().unwrap();
    assert!(q.verify_checksum(), "inner IP checksum valid");
    assert_eq!(q.src_addr(), CLIENT);
    assert_eq!(q.dst_addr(), VIP);
    let (qs, qd) = xvs_wire::ports(q.payload()).unwrap();
    assert_eq!(qs, 6000);
    assert_eq!(qd, VPORT);
    assert_eq!(dp.counter("icmp_out").unwrap(), 1);

    // Frag-needed from a router quoting only 8 bytes of L4.
    let f = icmp_error(Ipv4Addr::new(192, 168, 1, 1), CLIENT, 3, 4, &inner[..28]);
    let (_, out) = run(&dp, &f);
    let p = Pkt(&out);
    assert_eq!(p.saddr(), VIP);
    assert!(p.ip_csum_ok());
    assert!(p.icmp().verify_checksum());

    // Client rejects the SNATed reply: ICMP to the VIP goes to the RS.
    let (_, rep) = run(&dp, &udp_frame(RS1, CLIENT, RPORT, 6000, true));
    assert_eq!(Pkt(&rep).saddr(), VIP);
    let f = icmp_error(CLIENT, VIP, 3, 3, Pkt(&rep).l3());
    let (_, out) = run(&dp, &f);
    let p = Pkt(&out);
    assert_eq!((p.saddr(), p.daddr()), (CLIENT, RS1));
    assert!(p.ip_csum_ok());
    assert!(p.icmp().verify_checksum());
    let icmp = p.icmp();
    let q = icmp.quoted().unwrap();
    assert!(q.verify_checksum());
    assert_eq!(q.src_addr(), RS1);
    assert_eq!(xvs_wire::ports(q.payload()).unwrap().0, RPORT);
    assert_eq!(dp.counter("icmp_in").unwrap(), 1);

    // Unrelated ICMP (echo, or error about an unknown flow) passes untouched.
    let echo = icmp_error(CLIENT, VIP, 8, 0, &[0u8; 28]);
    let (v, out) = run(&dp, &echo);
    assert_eq!((v, &out), (XDP_PASS, &echo));
    let other = udp_frame(CLIENT, Ipv4Addr::new(10, 9, 9, 9), 1, 2, true);
    let f = icmp_error(RS1, CLIENT, 3, 3, Pkt(&other).l3());
    let (v, out) = run(&dp, &f);
    assert_eq!((v, &out), (XDP_PASS, &f));
    assert_eq!(dp.counter("pass_icmp").unwrap(), 2);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn full_conn_table_fails_closed() {
    let mut o = opts();
    o.conn_capacity = 4; // two NAT connections
    let dp = setup(o, Protocol::Tcp, &[0, 1]);
    for port in [41000, 41001] {
        let (v, _) = run(&dp, &tcp_frame(CLIENT, VIP, port, VPORT, SYN));
        assert_eq!(v, XDP_PASS);
    }
    let f = tcp_frame(CLIENT, VIP, 41002, VPORT, SYN);
    let (v, _) = run(&dp, &f);
    assert_eq!(v, XDP_DROP);
    assert_eq!(dp.counter("drop_conn_full").unwrap(), 1);
    assert_eq!(dp.conn_count().unwrap(), 2);
    // Existing flows keep working.
    let (_, out) = run(&dp, &tcp_frame(CLIENT, VIP, 41001, VPORT, ACK));
    assert_eq!(Pkt(&out).daddr(), RS1);
    assert_eq!(dp.dest_conns(0).unwrap(), (0, 1));
    assert_eq!(dp.dest_conns(1).unwrap(), (1, 0), "the ACK established it");
}

/// One client port reaching the same real server through two services
/// shares the reply tuple (RS:rport -> client:cport). IPVS's newest
/// connection gets the replies; the older one's expiry must not take the
/// newer one's reply entry with it. (The traffic oracle found xvs dropping
/// the second connection's packets as a "clash" instead.)
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_reply_tuple_shared_by_two_services_goes_to_the_newest_connection() {
    let dp = setup(opts(), Protocol::Udp, &[0]);
    let other = ServiceKey {
        fwmark: 0,
        port: VPORT + 1,
        ..key(Protocol::Udp)
    };
    dp.upsert_service(1, &Service::new(other, "rr"), &SvcSched::from_ring(&[0]))
        .unwrap();
    let t0 = xvs_dataplane::monotonic_ns();
    let (v, out) = run(&dp, &udp_frame(CLIENT, VIP, 7000, VPORT, true));
    assert_eq!((v, Pkt(&out).daddr()), (XDP_PASS, RS0));
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (v, out) = run(&dp, &udp_frame(CLIENT, VIP, 7000, VPORT + 1, true));
    assert_eq!((v, Pkt(&out).daddr()), (XDP_PASS, RS0), "second service");
    assert_eq!(dp.counter("reply_takeover").unwrap(), 1);
    assert_eq!(dp.counter("drop_conn_full").unwrap(), 0);
    let reply = udp_frame(RS0, CLIENT, RPORT, 7000, true);
    let (_, out) = run(&dp, &reply);
    assert_eq!(Pkt(&out).sport(), VPORT + 1, "replies go to the newest");

    // The first connection expires (1 s UDP timeout), the second not yet.
    let t = Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 1,
    };
    assert_eq!(dp.expire_conns_at(&t, t0 + 1_050_000_000).unwrap(), 1);
    let left = dp.conns().unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].vport, VPORT + 1);
    let (_, out) = run(&dp, &reply);
    assert_eq!(Pkt(&out).sport(), VPORT + 1, "its reply entry stayed");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn expire_conns_removes_idle_entries() {
    let dp = setup(opts(), Protocol::Udp, &[0]);
    run(&dp, &udp_frame(CLIENT, VIP, 7000, VPORT, true));
    run(&dp, &udp_frame(CLIENT, VIP, 7001, VPORT, true));
    assert_eq!(dp.expire_conns(&Timeouts::default()).unwrap(), 0);
    assert_eq!(dp.conn_count().unwrap(), 2);
    assert_eq!(dp.dest_conns(0).unwrap(), (0, 2));
    std::thread::sleep(std::time::Duration::from_millis(2));
    let t = Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 0,
    };
    assert_eq!(dp.expire_conns(&t).unwrap(), 2);
    assert_eq!(dp.conn_count().unwrap(), 0);
    assert_eq!(dp.dest_conns(0).unwrap(), (0, 0));
    // The reply entry went too: the RS's packet is not ours any more.
    let r = udp_frame(RS0, CLIENT, RPORT, 7000, true);
    let (v, out) = run(&dp, &r);
    assert_eq!((v, &out), (XDP_PASS, &r));

    // TCP ESTABLISHED expiry gives the active count back.
    dp.upsert_service(
        1,
        &Service::new(key(Protocol::Tcp), "rr"),
        &SvcSched::from_ring(&[1]),
    )
    .unwrap();
    run(&dp, &tcp_frame(CLIENT, VIP, 7002, VPORT, SYN));
    run(&dp, &tcp_frame(CLIENT, VIP, 7002, VPORT, ACK));
    assert_eq!(dp.dest_conns(1).unwrap(), (1, 0));
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert_eq!(
        dp.expire_conns(&Timeouts {
            tcp: 0,
            tcp_fin: 0,
            udp: 0
        })
        .unwrap(),
        1
    );
    assert_eq!(dp.dest_conns(1).unwrap(), (0, 0));
    assert_eq!(dp.conn_count().unwrap(), 0);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn wrr_ring_sequence_is_followed() {
    let ring = [0u32, 0, 1, 0, 1];
    let dp = setup(opts(), Protocol::Tcp, &ring);
    let mut got = Vec::new();
    for i in 0..10u16 {
        let (_, out) = run(&dp, &tcp_frame(CLIENT, VIP, 42000 + i, VPORT, SYN));
        got.push(if Pkt(&out).daddr() == RS0 { 0 } else { 1 });
    }
    let want: Vec<u32> = ring.iter().chain(ring.iter()).copied().collect();
    assert_eq!(got, want);

    // Flip to a new ring (double-buffered); position continues.
    dp.upsert_service(
        0,
        &Service::new(key(Protocol::Tcp), "rr"),
        &SvcSched::from_ring(&[1]),
    )
    .unwrap();
    let (_, out) = run(&dp, &tcp_frame(CLIENT, VIP, 42100, VPORT, SYN));
    assert_eq!(Pkt(&out).daddr(), RS1);
    // Empty ring: no dest, counted, passed untouched.
    dp.upsert_service(
        0,
        &Service::new(key(Protocol::Tcp), "rr"),
        &SvcSched::from_ring(&[]),
    )
    .unwrap();
    let f = tcp_frame(CLIENT, VIP, 42101, VPORT, SYN);
    let (v, out) = run(&dp, &f);
    assert_eq!((v, &out), (XDP_PASS, &f));
    assert_eq!(dp.counter("pass_no_dest").unwrap(), 1);
    // Removing the service makes its VIP foreign again.
    dp.remove_service(0, &key(Protocol::Tcp)).unwrap();
    let (v, out) = run(&dp, &f);
    assert_eq!((v, &out), (XDP_PASS, &f));
    assert_eq!(dp.counter("pass_no_svc").unwrap(), 1);
    assert_eq!(dp.svc_stats(0).unwrap(), Default::default());
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn remove_dest_deletes_its_connections() {
    let dp = setup(opts(), Protocol::Tcp, &[0, 1]);
    for i in 0..6u16 {
        run(&dp, &tcp_frame(CLIENT, VIP, 43000 + i, VPORT, SYN));
    }
    assert_eq!(dp.dest_conns(0).unwrap(), (0, 3));
    dp.upsert_service(
        0,
        &Service::new(key(Protocol::Tcp), "rr"),
        &SvcSched::from_ring(&[1]),
    )
    .unwrap();
    assert_eq!(dp.remove_dest(0).unwrap(), 3);
    assert_eq!(dp.dest_conns(0).unwrap(), (0, 0));
    let conns = dp.conns().unwrap();
    assert_eq!(conns.len(), 3);
    assert!(conns.iter().all(|c| c.dest_id == 1));
    // Both entries went: a reply from RS0 is foreign now.
    let r = tcp_frame(RS0, CLIENT, RPORT, 43000, ACK);
    let (v, out) = run(&dp, &r);
    assert_eq!((v, &out), (XDP_PASS, &r));
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn unsupported_fwd_and_bad_ids_are_refused() {
    let dp = setup(opts(), Protocol::Tcp, &[0]);
    // DR/TUN without a route to the real server (none in this empty
    // netns) are accepted, as by IPVS, which routes per packet; their
    // next hop says why nothing can be sent yet.
    let mut d = masq(RS0, 80);
    d.fwd = FwdMethod::Route;
    dp.upsert_dest(2, 0, &d).unwrap();
    let no_route = xvs_dataplane::abi::xvs_nh_state::XVS_NH_NO_ROUTE.0 as u8;
    assert_eq!(dp.dest_nexthop(2).unwrap().state, no_route);
    d.fwd = FwdMethod::Tunnel;
    dp.upsert_dest(2, 0, &d).unwrap();
    assert_eq!(dp.dest_nexthop(2).unwrap().state, no_route);
    // GRE and remote checksum offload are refused by name.
    d.tun_type = TunType::Gre;
    let e = dp.upsert_dest(2, 0, &d).unwrap_err();
    assert!(
        matches!(e, Error::Unsupported(_)) && e.to_string().contains("gre"),
        "{e}"
    );
    d.tun_type = TunType::Gue;
    d.tun_port = 6080;
    d.tun_csum = TunCsum::RemCsum;
    let e = dp.upsert_dest(2, 0, &d).unwrap_err();
    assert!(
        matches!(e, Error::Unsupported(_)) && e.to_string().contains("remcsum"),
        "{e}"
    );
    d.tun_csum = TunCsum::NoCsum;
    d.tun_port = 0;
    assert!(matches!(dp.upsert_dest(2, 0, &d), Err(Error::Invalid(_))));
    assert!(matches!(
        dp.upsert_dest(64, 0, &masq(RS0, 80)),
        Err(Error::IdOutOfRange { .. })
    ));
    assert!(matches!(
        dp.upsert_service(
            16,
            &Service::new(key(Protocol::Udp), "rr"),
            &SvcSched::from_ring(&[0])
        ),
        Err(Error::IdOutOfRange { .. })
    ));
    assert!(matches!(
        dp.upsert_service(
            1,
            &Service::new(key(Protocol::Udp), "rr"),
            &SvcSched::from_ring(&[99])
        ),
        Err(Error::IdOutOfRange { .. })
    ));
    // A service key keeps its id.
    assert!(dp
        .upsert_service(
            3,
            &Service::new(key(Protocol::Tcp), "rr"),
            &SvcSched::from_ring(&[0])
        )
        .is_err());
}

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().expect("sh");
    assert!(st.success(), "{cmd}");
}

fn ifindex(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C string.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn fib_hit_transmits_or_redirects() {
    let dp = setup(opts(), Protocol::Tcp, &[0]);
    if !ingress_runs(&dp) {
        return;
    }
    // In this thread's namespace: client side on c0, real servers on r0.
    sh(
        "ip link add c0 type veth peer name c1 && ip link add r0 type veth peer name r1 \
        && ip link set c0 address 02:00:00:00:0c:00 && ip link set r0 address 02:00:00:00:0a:00 \
        && ip link set c0 up && ip link set c1 up && ip link set r0 up && ip link set r1 up \
        && ip addr add 172.16.0.254/24 dev c0 && ip addr add 192.168.1.1/24 dev r0 \
        && ip addr add 10.0.0.100/32 dev c0 \
        && ip neigh add 192.168.1.10 lladdr 02:00:00:00:0a:10 dev r0 nud permanent \
        && ip neigh add 172.16.0.1 lladdr 02:00:00:00:0c:01 dev c0 nud permanent \
        && sysctl -qw net.ipv4.ip_forward=1",
    );
    let c0 = ifindex("c0");
    let r0 = ifindex("r0");

    // Client -> VIP arriving on c0: DNAT to RS0, egress r0: redirect.
    let (v, out) = dp
        .test_run(&tcp_frame(CLIENT, VIP, 44000, VPORT, SYN), Some(c0))
        .unwrap();
    assert_eq!(v, XDP_REDIRECT);
    let p = Pkt(&out);
    assert_eq!(p.daddr(), RS0);
    assert_eq!(p.ttl(), 63, "we forward, so we decrement TTL");
    assert!(p.ip_csum_ok() && p.l4_csum_ok());
    assert_eq!(&Pkt(&out).dst_mac(), &[2, 0, 0, 0, 0x0a, 0x10]);
    assert_eq!(&Pkt(&out).src_mac(), &[2, 0, 0, 0, 0x0a, 0]);
    assert_eq!(dp.counter("redirect").unwrap(), 1);

    // Reply arriving on r0 destined to the client: redirect to c0.
    let (v, out) = dp
        .test_run(&tcp_frame(RS0, CLIENT, RPORT, 44000, SYN | ACK), Some(r0))
        .unwrap();
    assert_eq!(v, XDP_REDIRECT);
    let p = Pkt(&out);
    assert_eq!((p.saddr(), p.sport()), (VIP, VPORT));
    assert!(p.ip_csum_ok() && p.l4_csum_ok());
    assert_eq!(&Pkt(&out).dst_mac(), &[2, 0, 0, 0, 0x0c, 0x01]);

    // One-armed: a reply arriving on c0 for the client leaves via c0: XDP_TX.
    let (v, out) = dp
        .test_run(&tcp_frame(RS0, CLIENT, RPORT, 44000, ACK), Some(c0))
        .unwrap();
    assert_eq!(v, XDP_TX);
    assert_eq!(&Pkt(&out).dst_mac(), &[2, 0, 0, 0, 0x0c, 0x01]);
    assert_eq!(dp.counter("tx").unwrap(), 1);

    // No neighbour yet: the rewritten packet goes to the kernel.
    dp.upsert_dest(0, 0, &masq(Ipv4Addr::new(192, 168, 1, 20), RPORT))
        .unwrap();
    let (v, out) = dp
        .test_run(&tcp_frame(CLIENT, VIP, 44001, VPORT, SYN), Some(c0))
        .unwrap();
    assert_eq!(v, XDP_PASS);
    assert_eq!(Pkt(&out).daddr(), Ipv4Addr::new(192, 168, 1, 20));
    assert_eq!(Pkt(&out).ttl(), 64);
    assert_eq!(dp.counter("fib_no_neigh").unwrap(), 1);
}

/// More than the coarse clock's tick (at most 10 ms at HZ=100): sleeping
/// `ttl + NH_TICK_MARGIN` guarantees a cached next hop has expired.
const NH_TICK_MARGIN: Duration = Duration::from_millis(30);

/// The veth world of `fib_hit_transmits_or_redirects` in this thread's
/// namespace: client side on c0, real servers on r0; (c0, r0) ifindexes.
fn nat_links() -> (u32, u32) {
    sh(
        "ip link add c0 type veth peer name c1 && ip link add r0 type veth peer name r1 \
        && ip link set c0 address 02:00:00:00:0c:00 && ip link set r0 address 02:00:00:00:0a:00 \
        && ip link set c0 up && ip link set c1 up && ip link set r0 up && ip link set r1 up \
        && ip addr add 172.16.0.254/24 dev c0 && ip addr add 192.168.1.1/24 dev r0 \
        && ip addr add 10.0.0.100/32 dev c0 \
        && ip neigh add 192.168.1.10 lladdr 02:00:00:00:0a:10 dev r0 nud permanent \
        && ip neigh add 172.16.0.1 lladdr 02:00:00:00:0c:01 dev c0 nud permanent \
        && sysctl -qw net.ipv4.ip_forward=1",
    );
    (ifindex("c0"), ifindex("r0"))
}

/// The next-hop cache: a successful fib lookup is reused (counter
/// `nh_fill` counts the lookups that filled a slot) until the TTL runs
/// out, the cache is flushed, or a packet is longer than any the fib
/// accepted for it; a changed neighbour MAC is followed within the TTL,
/// at once after a flush, and on every packet with the cache off.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn nexthop_cache_follows_mac_and_mtu_changes_within_its_bounds() {
    stay_on_one_cpu();
    let dp = setup(opts(), Protocol::Tcp, &[0]);
    if !ingress_runs(&dp) {
        return;
    }
    assert_eq!(
        dp.nexthop_ttl().unwrap(),
        xvs_dataplane::NEXTHOP_TTL_DEFAULT
    );
    let (c0, r0) = nat_links();
    let fills = || dp.counter("nh_fill").unwrap();
    let to_rs = |flags: u8, payload: &[u8]| {
        let f = eth(&ipv4(
            CLIENT,
            VIP,
            TCP,
            64,
            &[],
            0,
            &tcp_seg(CLIENT, VIP, 47000, VPORT, flags, payload),
        ));
        let (v, out) = dp.test_run(&f, Some(c0)).unwrap();
        (v, Pkt(&out).dst_mac().to_vec())
    };
    let from_rs = || {
        let (v, out) = dp
            .test_run(&tcp_frame(RS0, CLIENT, RPORT, 47000, ACK), Some(r0))
            .unwrap();
        (v, Pkt(&out).dst_mac().to_vec())
    };
    let rs_mac = |last: u8| (XDP_REDIRECT, vec![2, 0, 0, 0, 0x0a, last]);
    let cl_mac = |last: u8| (XDP_REDIRECT, vec![2, 0, 0, 0, 0x0c, last]);

    // A long TTL: one fib lookup per direction, then the cache answers.
    dp.set_nexthop_ttl(Duration::from_secs(60)).unwrap();
    assert_eq!(to_rs(SYN, b""), rs_mac(0x10));
    assert_eq!(fills(), 1);
    assert_eq!(from_rs(), cl_mac(0x01));
    assert_eq!(fills(), 2);
    for _ in 0..5 {
        assert_eq!(to_rs(ACK, b"x"), rs_mac(0x10));
        assert_eq!(from_rs(), cl_mac(0x01));
    }
    assert_eq!(fills(), 2, "established packets hit the cache");

    // The RS MAC changes: within the TTL the cached one is still used,
    // after a flush the new one at once.
    sh("ip neigh replace 192.168.1.10 lladdr 02:00:00:00:0a:11 dev r0 nud permanent");
    assert_eq!(to_rs(ACK, b""), rs_mac(0x10), "cached within the TTL");
    dp.flush_nexthops().unwrap();
    assert_eq!(to_rs(ACK, b""), rs_mac(0x11), "flushed");
    assert_eq!(fills(), 3);

    // Longer than anything the fib accepted: asks the fib, which checks
    // the MTU; fits: the slot's length bound widens (no new fill).
    let big = vec![0u8; 1000];
    assert_eq!(to_rs(ACK, &big), rs_mac(0x11));
    assert_eq!(fills(), 3);
    sh("ip link set r0 mtu 600");
    dp.flush_nexthops().unwrap();
    assert_eq!(to_rs(ACK, b""), rs_mac(0x11));
    let (v, _) = to_rs(ACK, &big);
    assert_eq!(v, XDP_PASS, "too big for the new MTU: the kernel's job");
    assert_eq!(dp.counter("fib_frag_needed").unwrap(), 1);
    assert_eq!(to_rs(ACK, b"small"), rs_mac(0x11), "small ones still hit");
    sh("ip link set r0 mtu 1500");

    // A short TTL: the client's changed MAC is followed once it ran out.
    let ttl = Duration::from_millis(50);
    dp.set_nexthop_ttl(ttl).unwrap();
    assert_eq!(from_rs(), cl_mac(0x01));
    sh("ip neigh replace 172.16.0.1 lladdr 02:00:00:00:0c:02 dev c0 nud permanent");
    std::thread::sleep(ttl + NH_TICK_MARGIN);
    assert_eq!(from_rs(), cl_mac(0x02), "followed within the TTL");

    // TTL 0: no cache, every packet takes the fib and sees changes at once.
    dp.set_nexthop_ttl(Duration::ZERO).unwrap();
    let before = fills();
    sh("ip neigh replace 172.16.0.1 lladdr 02:00:00:00:0c:03 dev c0 nud permanent");
    assert_eq!(from_rs(), cl_mac(0x03));
    sh("ip neigh replace 192.168.1.10 lladdr 02:00:00:00:0a:12 dev r0 nud permanent");
    assert_eq!(to_rs(ACK, b""), rs_mac(0x12));
    assert_eq!(fills(), before, "nothing cached");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn pinned_maps_survive_a_reopen() {
    own_netns();
    let pins = PinDir::new("reopen");
    let dir = pins.0.clone();
    let mut o = opts();
    o.pin_path = Some(dir.join("xvs"));
    {
        let dp = Dataplane::open(&o).unwrap();
        dp.upsert_dest(0, 0, &masq(RS0, RPORT)).unwrap();
        dp.upsert_service(
            0,
            &Service::new(key(Protocol::Tcp), "rr"),
            &SvcSched::from_ring(&[0]),
        )
        .unwrap();
        dp.test_run(&tcp_frame(CLIENT, VIP, 45000, VPORT, SYN), None)
            .unwrap();
        assert_eq!(dp.conn_count().unwrap(), 1);
    }
    assert!(dir.join("xvs/CONN_MAP").exists());
    let dp = Dataplane::open(&o).unwrap();
    assert_eq!(dp.conn_count().unwrap(), 1);
    assert_eq!(dp.dest_conns(0).unwrap(), (0, 1));
    let (_, out) = dp
        .test_run(&tcp_frame(CLIENT, VIP, 45000, VPORT, ACK), None)
        .unwrap();
    assert_eq!(Pkt(&out).daddr(), RS0);
    assert_eq!(state_of(&dp, 45000), ConnState::Established);
    // Different sizes cannot silently reuse the pins.
    let mut bad = o.clone();
    bad.conn_capacity = 2048;
    assert!(Dataplane::open(&bad).is_err());
}

/// An ABI 4 map made by hand and pinned under `dir`: `entries` as the
/// bytes of ABI 4's layouts.
fn pin_abi4_map(
    dir: &std::path::Path,
    name: &str,
    ty: libbpf_rs::MapType,
    (ks, vs, max): (u32, u32, u32),
    entries: &[(Vec<u8>, Vec<u8>)],
) {
    let opts = libbpf_rs::libbpf_sys::bpf_map_create_opts {
        sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_map_create_opts>() as _,
        ..Default::default()
    };
    let mut m = libbpf_rs::MapHandle::create(ty, Some(name), ks, vs, max, &opts).unwrap();
    for (k, v) in entries {
        m.update(k, v, libbpf_rs::MapFlags::ANY).unwrap();
    }
    m.pin(dir.join(name)).unwrap();
}

/// ABI 4 `xvs_conn_key` bytes: saddr, daddr, sport, dport, proto, pad.
fn abi4_conn_key(s: Ipv4Addr, sp: u16, d: Ipv4Addr, dp: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(s.octets());
    b.extend(d.octets());
    b.extend(sp.to_be_bytes());
    b.extend(dp.to_be_bytes());
    b.extend([TCP, 0, 0, 0]);
    b
}

/// ABI 4 `xvs_conn` bytes: last_seen_ns, peer, svc_id, dest_id, state,
/// fwd, flags, pad.
fn abi4_conn(peer: &[u8], state: u32, flags: u8) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(xvs_dataplane::monotonic_ns().to_ne_bytes());
    b.extend(peer);
    b.extend(0u32.to_ne_bytes());
    b.extend(0u32.to_ne_bytes());
    b.extend(state.to_ne_bytes());
    b.extend([0, flags, 0, 0]);
    b
}

#[test]
#[ignore = "needs root: BPF_PROG_TEST_RUN"]
fn abi4_pins_are_upgraded_and_keep_their_connections() {
    use libbpf_rs::MapType;
    own_netns();
    let pins = PinDir::new("abi4");
    let dir = pins.0.join("xvs");
    std::fs::create_dir_all(&dir).unwrap();
    let o = {
        let mut o = opts();
        o.pin_path = Some(dir.clone());
        o
    };
    // The data plane an ABI 4 xvsd left: service 0 VIP:80 -> dest 0 RS0:8080
    // (NAT), an established connection (both entries) and a template.
    let abi = vec![(0u32.to_ne_bytes().to_vec(), 4u32.to_ne_bytes().to_vec())];
    pin_abi4_map(&dir, "XVS_ABI", MapType::Array, (4, 4, 1), &abi);
    let mut svc_key = VIP.octets().to_vec();
    svc_key.extend(VPORT.to_be_bytes());
    svc_key.extend([TCP, 0]);
    let mut svc = Vec::new();
    for w in [0u32, 0, 1, 0, 0, 300] {
        svc.extend(w.to_ne_bytes()); // id, flags, ring_len, gen, sched (rr), timeout
    }
    svc.extend([255, 255, 255, 255]); // netmask
    svc.extend(0u32.to_ne_bytes()); // fwmark
    pin_abi4_map(
        &dir,
        "SVC_MAP",
        MapType::Hash,
        (8, 32, o.max_services),
        &[(svc_key, svc)],
    );
    let mut dest = RS0.octets().to_vec();
    dest.extend(RPORT.to_be_bytes());
    dest.extend([0, 1]); // MASQ, AVAILABLE
    for w in [0u32, 1, 0, 0, 0, 0] {
        dest.extend(w.to_ne_bytes()); // svc_id, weight, thresholds, tun, pad
    }
    let dests = vec![(0u32.to_ne_bytes().to_vec(), dest)];
    pin_abi4_map(
        &dir,
        "DEST_MAP",
        MapType::Array,
        (4, 32, o.max_dests),
        &dests,
    );
    let fkey = abi4_conn_key(CLIENT, 45000, VIP, VPORT);
    let rkey = abi4_conn_key(RS0, RPORT, CLIENT, 45000);
    let conns = vec![
        (fkey.clone(), abi4_conn(&rkey, 1, 2)), // ESTABLISHED, PERSIST
        (rkey.clone(), abi4_conn(&fkey, 1, 1)), // REPLY
    ];
    pin_abi4_map(&dir, "CONN_MAP", MapType::Hash, (16, 40, 1024), &conns);
    let mut tk = CLIENT.octets().to_vec();
    tk.extend(VIP.octets());
    tk.extend(VPORT.to_be_bytes());
    tk.extend([TCP, 0]);
    let mut t = xvs_dataplane::monotonic_ns().to_ne_bytes().to_vec();
    t.extend(0u32.to_ne_bytes());
    t.extend(0u32.to_ne_bytes());
    t.extend(RS0.octets());
    t.extend(RPORT.to_be_bytes());
    t.extend(0u16.to_ne_bytes());
    t.extend(300u32.to_ne_bytes());
    t.extend(0u32.to_ne_bytes());
    pin_abi4_map(
        &dir,
        "PERSIST_MAP",
        MapType::Hash,
        (12, 32, 1024),
        &[(tk, t)],
    );

    let dp = Dataplane::open(&o).unwrap();
    let abi = libbpf_rs::MapHandle::from_pinned_path(dir.join("XVS_ABI")).unwrap();
    let v = abi
        .lookup(&0u32.to_ne_bytes(), libbpf_rs::MapFlags::ANY)
        .unwrap()
        .unwrap();
    assert_eq!(v, xvs_dataplane::pins::ABI_VERSION.to_ne_bytes());
    assert_eq!(xvs_dataplane::pins::ABI_VERSION, 5);
    let conn = libbpf_rs::MapHandle::from_pinned_path(dir.join("CONN_MAP")).unwrap();
    assert_eq!(conn.key_size(), 40, "this build's CONN_MAP is pinned");
    let c = dp.conns().unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].caddr, c[0].cport, c[0].vaddr, c[0].vport, c[0].daddr, c[0].dport),
        (CLIENT, 45000, VIP, VPORT, RS0, RPORT)
    );
    assert_eq!(c[0].state, ConnState::Established);
    assert!(c[0].persistent);
    let t = dp.templates().unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].caddr, t[0].daddr, t[0].conns), (CLIENT, RS0, 1));
    // The connection goes on forwarding both ways through the new maps.
    let (_, out) = dp
        .test_run(&tcp_frame(CLIENT, VIP, 45000, VPORT, ACK), None)
        .unwrap();
    assert_eq!((Pkt(&out).daddr(), Pkt(&out).dport()), (RS0, RPORT));
    let (_, out) = dp
        .test_run(&tcp_frame(RS0, CLIENT, RPORT, 45000, ACK), None)
        .unwrap();
    assert_eq!((Pkt(&out).saddr(), Pkt(&out).sport()), (VIP, VPORT));
    drop(dp);
    // And the upgraded pins are adopted as this build's.
    let dp = Dataplane::open(&o).unwrap();
    assert_eq!(dp.conn_count().unwrap(), 1);
}

/// A bpffs of the test's own for pinned maps, unmounted on drop.
struct PinDir(std::path::PathBuf);

impl PinDir {
    fn new(tag: &str) -> PinDir {
        let dir = std::env::temp_dir().join(format!("xvs-pin-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        sh(&format!("mount -t bpf bpf {}", dir.display()));
        PinDir(dir)
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A data plane with its maps pinned in a bpffs of the test's own, and
/// its `CONN_MAP` opened from the pin, to write or delete entries behind
/// the program's back.
fn pinned_dp(tag: &str) -> (PinDir, Dataplane, libbpf_rs::MapHandle) {
    let pins = PinDir::new(tag);
    let mut o = opts();
    o.pin_path = Some(pins.0.join("xvs"));
    let dp = Dataplane::open(&o).unwrap();
    let conn = libbpf_rs::MapHandle::from_pinned_path(pins.0.join("xvs/CONN_MAP")).unwrap();
    (pins, dp, conn)
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn expiry_removes_orphaned_reply_entries_and_keeps_paired_ones() {
    own_netns();
    let (_pins, dp, conn_map) = pinned_dp("orphan");
    dp.upsert_dest(0, 0, &masq(RS0, RPORT)).unwrap();
    dp.upsert_service(
        0,
        &Service::new(key(Protocol::Tcp), "rr"),
        &SvcSched::from_ring(&[0]),
    )
    .unwrap();
    for port in [46000, 46001] {
        dp.test_run(&tcp_frame(CLIENT, VIP, port, VPORT, SYN), None)
            .unwrap();
    }
    let entries = || conn_map.keys().count();
    assert_eq!(entries(), 4, "two NAT connections, two entries each");
    // A half-finished delete: the forward entry of 46000 is gone, its
    // reply entry (RS -> client) is left.
    let k = xvs_dataplane::abi::xvs_conn_key::new(6, CLIENT, 46000, VIP, VPORT);
    conn_map.delete(xvs_dataplane::abi::as_bytes(&k)).unwrap();
    let t = Timeouts::default();
    assert_eq!(dp.expire_conns(&t).unwrap(), 0);
    assert_eq!(entries(), 3, "a fresh orphan may be a delete in progress");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(dp.expire_conns(&t).unwrap(), 0);
    assert_eq!(entries(), 2, "the orphan went, the live pair stayed");
    assert_eq!(dp.conn_count().unwrap(), 1);
    let (_, out) = dp
        .test_run(&tcp_frame(RS0, CLIENT, RPORT, 46001, SYN | ACK), None)
        .unwrap();
    let p = Pkt(&out);
    assert_eq!((p.saddr(), p.sport(), p.dport()), (VIP, VPORT, 46001));
    let (_, out) = dp
        .test_run(&tcp_frame(RS0, CLIENT, RPORT, 46000, SYN | ACK), None)
        .unwrap();
    assert_eq!(Pkt(&out).saddr(), RS0, "no translation left for 46000");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn the_kernel_expiry_scan_reports_what_a_table_walk_does() {
    use xvs_dataplane::abi::{xvs_conn, xvs_conn_flags, xvs_conn_key, xvs_expiry_kind, xvs_state};
    own_netns();
    let (_pins, dp, conn_map) = pinned_dp("scan");
    if lacks(&dp, features::EXPIRY_SCAN, "the test") {
        return;
    }
    use xvs_dataplane::abi::as_bytes as raw;
    let key = |port| xvs_conn_key::new(6, CLIENT, port, VIP, VPORT);
    let reply = |port| xvs_conn_key::new(6, RS0, RPORT, CLIENT, port);
    // The scan's clock is the configuration's: a machine up for less than
    // the longest idle time below (a fresh VM) still has room before now.
    let now = xvs_dataplane::monotonic_ns().max(1_000_000_000_000);
    let ago = |s: u64| now - s * 1_000_000_000;
    let put = |k: xvs_conn_key, peer: xvs_conn_key, state: xvs_state, flags: u32, seen: u64| {
        let v = xvs_conn {
            last_seen_ns: seen,
            peer,
            svc_id: 3,
            state: state.0,
            flags: flags as u8,
            ..Default::default()
        };
        conn_map
            .update(raw(&k), raw(&v), libbpf_rs::MapFlags::ANY)
            .unwrap();
    };
    let (est, close, udp) = (
        xvs_state::XVS_S_ESTABLISHED,
        xvs_state::XVS_S_CLOSE,
        xvs_state::XVS_S_UDP,
    );
    let (rep, persist, ops) = (
        xvs_conn_flags::XVS_CONN_F_REPLY.0,
        xvs_conn_flags::XVS_CONN_F_PERSIST.0,
        xvs_conn_flags::XVS_CONN_F_OPS.0,
    );
    // 1: a live pair; 2: a forward entry in CLOSE (10 s) idle 20 s, with
    // its reply; 3: a reply entry whose forward entry is gone, idle 5 s;
    // 4: the same but fresh (a delete may be in progress); 5: a live
    // persistent pair; 6: a one-packet reply entry idle past the udp
    // timeout, 7: one within it; 8: a reply whose forward entry points at
    // another reply; 9: an entry with an unknown state (times out as NONE,
    // 2 s), idle 3 s.
    put(key(1), reply(1), est, 0, ago(1));
    put(reply(1), key(1), est, rep, ago(100));
    put(key(2), reply(2), close, 0, ago(20));
    put(reply(2), key(2), est, rep, ago(20));
    put(reply(3), key(3), est, rep, ago(5));
    put(reply(4), key(4), est, rep, now);
    put(key(5), reply(5), est, persist, ago(1));
    put(reply(5), key(5), est, rep, ago(1));
    put(reply(6), key(6), udp, rep | ops, ago(400));
    put(reply(7), key(7), udp, rep | ops, ago(100));
    put(key(8), reply(1), est, 0, ago(1));
    put(reply(8), key(8), est, rep, ago(3));
    put(key(9), reply(9), xvs_state(77), 0, ago(3));
    let mut cfg = xvs_dataplane::expiry_cfg(&Timeouts::default());
    cfg.now_ns = now;
    let sorted = |mut v: Vec<xvs_dataplane::abi::xvs_expiry_rec>| {
        v.sort_by_key(|r| raw(&r.key).to_vec());
        v.into_iter()
            .map(|r| (raw(&r.key).to_vec(), r.kind, r.flags, r.svc_id))
            .collect::<Vec<_>>()
    };
    let (kernel, seen) = dp
        .expiry_scan(&cfg, true)
        .expect("the kernel scan is loaded");
    let (walk, walked) = dp.expiry_scan(&cfg, false).unwrap();
    assert_eq!((seen, walked), (13, 13));
    let (kernel, walk) = (sorted(kernel), sorted(walk));
    assert_eq!(kernel, walk);
    let kind = |k: xvs_conn_key| {
        kernel
            .iter()
            .find(|r| r.0 == raw(&k))
            .map(|r| xvs_expiry_kind(r.1 as u32))
    };
    let (idle, orphan, persistent, one_packet) = (
        Some(xvs_expiry_kind::XVS_EXP_IDLE),
        Some(xvs_expiry_kind::XVS_EXP_ORPHAN),
        Some(xvs_expiry_kind::XVS_EXP_PERSIST),
        Some(xvs_expiry_kind::XVS_EXP_OPS),
    );
    let want = [
        (key(1), None),
        (reply(1), None),
        (key(2), idle),
        (reply(2), None),
        (reply(3), orphan),
        (reply(4), None),
        (key(5), persistent),
        (reply(5), None),
        (reply(6), one_packet),
        (reply(7), None),
        (reply(8), orphan),
        (key(9), idle),
    ];
    for (i, (k, w)) in want.iter().enumerate() {
        assert_eq!(kind(*k), *w, "entry {i}");
    }
    assert_eq!(kernel.len(), 6);
    // And expiry acts on them: 2 and 9 go (2 with its reply), both
    // orphans and the stale one-packet entry go; everything else stays.
    dp.expire_conns_at(&Timeouts::default(), now).unwrap();
    let left: HashSet<Vec<u8>> = conn_map.keys().collect();
    let gone = [key(2), reply(2), reply(3), reply(6), reply(8), key(9)];
    for k in gone {
        assert!(!left.contains(raw(&k)), "{k:?} left");
    }
    assert_eq!(left.len(), 13 - gone.len());
}

fn tc() -> bool {
    attach_mode() == AttachMode::Tc
}

/// `decap::test_run` of the build under test.
#[allow(clippy::type_complexity)]
fn decap_run(
    cfg: &DecapConfig,
    f: &[u8],
) -> Result<(u32, Vec<u8>, Vec<(&'static str, u64)>), Error> {
    decap::test_run_as(cfg, f, tc())
}

/// The `xvs_decap` attached to `dev` in the mode under test (XDP: its
/// program id; tc: its filter line).
fn decap_prog(dev: &str) -> Option<String> {
    if tc() {
        let out = Command::new("tc")
            .args(["filter", "show", "dev", dev, "ingress"])
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        return s
            .lines()
            .find(|l| l.contains("xvs_decap"))
            .map(str::to_string);
    }
    xdp_prog_id(dev)
}

/// The data plane attached to `dev` in the mode under test (XDP: its
/// program id; tc: the ingress filter line naming `xvs_tc`).
fn dp_prog(dev: &str) -> Option<String> {
    if attach_mode() == AttachMode::Tc {
        let out = Command::new("tc")
            .args(["filter", "show", "dev", dev, "ingress"])
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        return s.lines().find(|l| l.contains("xvs_tc")).map(str::to_string);
    }
    xdp_prog_id(dev)
}

fn xdp_prog_id(dev: &str) -> Option<String> {
    let out = Command::new("ip")
        .args(["-d", "link", "show", dev])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.split_whitespace()
        .skip_while(|w| *w != "prog/xdp")
        .nth(2)
        .map(str::to_string)
        .or_else(|| s.contains("xdp").then(|| s.clone()))
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn attach_and_detach_native_xdp_on_veth() {
    // (with XVS_TEST_ATTACH=tc: the tc filter, and the clsact qdisc it made)
    let mut dp = setup(opts(), Protocol::Tcp, &[0]);
    sh("ip link add a0 type veth peer name a1 && ip link set a0 up && ip link set a1 up");
    assert!(matches!(dp.attach("nope0"), Err(Error::NoSuchInterface(_))));
    dp.attach("a0").unwrap();
    dp.attach("a0").unwrap(); // idempotent
    assert_eq!(dp.attached(), vec!["a0".to_string()]);
    assert!(dp_prog("a0").is_some(), "XDP program attached");
    dp.detach_all();
    assert!(dp.attached().is_empty());
    assert!(dp_prog("a0").is_none(), "detached");
    if attach_mode() == AttachMode::Tc {
        let q = Command::new("tc")
            .args(["qdisc", "show", "dev", "a0"])
            .output()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&q.stdout).contains("clsact"),
            "the clsact qdisc it created is gone"
        );
    }
    dp.attach("a1").unwrap();
    drop(dp);
    assert!(dp_prog("a1").is_none(), "Drop detaches");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_leftover_program_of_the_other_mode_is_removed_on_attach() {
    own_netns();
    sh("ip link add a0 type veth peer name a1 && ip link set a0 up && ip link set a1 up");
    let tc_filter = || {
        let o = Command::new("tc")
            .args(["filter", "show", "dev", "a0", "ingress"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).contains("xvs_tc")
    };
    let with = |m: AttachMode| Options {
        attach_mode: m,
        ..opts()
    };
    // A daemon killed in XDP mode leaves its program (nothing detaches).
    let mut x = Dataplane::open(&with(AttachMode::Xdp)).unwrap();
    x.attach("a0").unwrap();
    std::mem::forget(x);
    assert!(xdp_prog_id("a0").is_some());
    // The next one, in tc mode, must not run behind it.
    let mut t = Dataplane::open(&with(AttachMode::Tc)).unwrap();
    t.attach("a0").unwrap();
    assert!(xdp_prog_id("a0").is_none(), "the leftover xvs_xdp is gone");
    assert!(tc_filter());
    std::mem::forget(t);
    // And the other way round.
    let mut x = Dataplane::open(&with(AttachMode::Xdp)).unwrap();
    x.attach("a0").unwrap();
    assert!(!tc_filter(), "the leftover xvs_tc filter is gone");
    assert!(xdp_prog_id("a0").is_some());
}

// ------------------------------------------------------- DR and TUN

const C0_MAC: [u8; 6] = [2, 0, 0, 0, 0x0c, 0];
const R0_MAC: [u8; 6] = [2, 0, 0, 0, 0x0a, 0];
const RS0_MAC: [u8; 6] = [2, 0, 0, 0, 0x0a, 0x10];
/// The director's address on the real servers' link (the tunnel source).
const DIR_R: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
const GUE_PORT: u16 = 6080;

/// In this thread's fresh netns: client link c0 (172.16.0.254/24), real
/// server link r0 (192.168.1.1/24, mtu `rmtu`), RS0 and the client as
/// permanent neighbours, VIP on lo, forwarding on. Returns (c0, r0).
fn dr_links(rmtu: u32) -> (u32, u32) {
    sh(&format!(
        "ip link set lo up && ip addr add 10.0.0.100/32 dev lo \
        && ip link add c0 type veth peer name c1 && ip link add r0 type veth peer name r1 \
        && ip link set c0 address 02:00:00:00:0c:00 && ip link set r0 address 02:00:00:00:0a:00 \
        && ip link set r0 mtu {rmtu} \
        && ip link set c0 up && ip link set c1 up && ip link set r0 up && ip link set r1 up \
        && ip addr add 172.16.0.254/24 dev c0 && ip addr add 192.168.1.1/24 dev r0 \
        && ip neigh add 192.168.1.10 lladdr 02:00:00:00:0a:10 dev r0 nud permanent \
        && ip neigh add 172.16.0.1 lladdr 02:00:00:00:0c:01 dev c0 nud permanent \
        && sysctl -qw net.ipv4.ip_forward=1"
    ));
    (ifindex("c0"), ifindex("r0"))
}

fn route_dest(addr: Ipv4Addr) -> Dest {
    let mut d = Dest::new(addr, VPORT);
    d.fwd = FwdMethod::Route;
    d
}

fn tun_dest(addr: Ipv4Addr, ty: TunType, csum: TunCsum) -> Dest {
    let mut d = Dest::new(addr, VPORT);
    d.fwd = FwdMethod::Tunnel;
    d.tun_type = ty;
    d.tun_csum = csum;
    if ty == TunType::Gue {
        d.tun_port = GUE_PORT;
    }
    d
}

/// Dataplane (own netns with `dr_links`) with service 0 = `proto`
/// VIP:80 -> dest 0 = `dest`.
fn setup_fwd(proto: Protocol, dest: &Dest, rmtu: u32) -> (Dataplane, u32, u32) {
    own_netns();
    let (c0, r0) = dr_links(rmtu);
    let dp = Dataplane::open(&opts()).expect("open (root needed)");
    dp.upsert_dest(0, 0, dest).unwrap();
    dp.upsert_service(
        0,
        &Service::new(key(proto), "rr"),
        &SvcSched::from_ring(&[0]),
    )
    .unwrap();
    (dp, c0, r0)
}

/// An IPv4 packet with its TTL decremented and header checksum redone.
fn ttl_dec(ip: &[u8]) -> Vec<u8> {
    let mut v = ip.to_vec();
    let mut p = Ipv4Packet::new_checked(&mut v[..]).expect("IPv4 packet");
    p.set_ttl(p.ttl() - 1);
    p.fill_checksum();
    v
}

/// Sets TOS and flags/fragment word of an Ethernet+IPv4 frame, checksum
/// redone.
fn set_tos_frag(f: &mut [u8], tos: u8, frag: u16) {
    let mut e = EthernetFrame::new_checked(f).expect("Ethernet frame");
    let mut p = Ipv4Packet::new_checked(e.payload_mut()).expect("IPv4 packet");
    p.set_tos(tos);
    p.set_frag_field(frag);
    p.fill_checksum();
}

/// The UDP header of an Ethernet+IPv4 `frame`, writable.
fn udp_of(f: &mut [u8]) -> UdpPacket<&mut [u8]> {
    let ihl = Pkt(f).ihl();
    let l3 = &mut f[ethernet::HEADER_LEN..];
    UdpPacket::new_checked(&mut l3[ihl..]).expect("UDP")
}

fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// Mirror of gue_sport() in xvs.bpf.c (raw loads of network-order fields).
fn gue_sport(c: Ipv4Addr, cport: u16, proto: u8) -> u16 {
    let ne = |a: Ipv4Addr| u32::from_ne_bytes(a.octets());
    let mut h = fmix32(ne(c));
    h = fmix32(h ^ ne(VIP));
    h = fmix32(h ^ (cport.to_be() as u32 | (VPORT.to_be() as u32) << 16));
    h = fmix32(h ^ proto as u32);
    h ^= h << 16;
    (((h as u64 * (60999 - 32768)) >> 32) + 32768) as u16
}

fn neigh_show(addr: &str) -> String {
    let out = Command::new("ip")
        .args(["neigh", "show", addr])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn dr_rewrites_macs_only_and_tracks_input_only_state() {
    let (dp, c0, r0) = setup_fwd(Protocol::Tcp, &route_dest(RS0), 1500);
    if !ingress_runs(&dp) {
        return;
    }
    let syn = tcp_frame(CLIENT, VIP, 46000, VPORT, SYN);
    let (v, out) = dp.test_run(&syn, Some(c0)).unwrap();
    assert_eq!(v, XDP_REDIRECT);
    assert_eq!(&Pkt(&out).dst_mac(), &RS0_MAC, "dst MAC = real server");
    assert_eq!(&Pkt(&out).src_mac(), &R0_MAC, "src MAC = egress interface");
    assert_eq!(out.len(), syn.len());
    // The IP packet is the client's: addresses, ports, payload untouched;
    // only the TTL is decremented (as IPVS's __ip_vs_get_out_rt does).
    assert_eq!(Pkt(&out).eth().ethertype(), EtherType::Ipv4);
    assert_eq!(Pkt(&out).eth().payload(), &ttl_dec(Pkt(&syn).l3())[..]);
    let p = Pkt(&out);
    assert_eq!((p.saddr(), p.daddr(), p.ttl()), (CLIENT, VIP, 63));
    assert!(p.ip_csum_ok() && p.l4_csum_ok());
    assert_eq!(&p.l4(), &Pkt(&syn).l4());
    assert_eq!(dp.counter("dr_in").unwrap(), 1);
    assert_eq!(dp.counter("redirect").unwrap(), 1);

    let c = &dp.conns().unwrap()[0];
    assert_eq!(
        (c.fwd, c.daddr, c.state, c.dest_id),
        (FwdMethod::Route, RS0, ConnState::SynRecv, 0)
    );
    assert_eq!(dp.conn_count().unwrap(), 1);
    // No reply entry: the real server's answer is not ours.
    let r = tcp_frame(VIP, CLIENT, VPORT, 46000, SYN | ACK);
    let (v, o) = dp.test_run(&r, Some(r0)).unwrap();
    assert_eq!((v, &o), (XDP_PASS, &r));

    // INPUT_ONLY rows: ack SR->ES, fin ES->FIN_WAIT (INPUT would give
    // CLOSE_WAIT), ack stays FW, rst -> CLOSE.
    let step = |f: u8, want: ConnState| {
        let (v, _) = dp
            .test_run(&tcp_frame(CLIENT, VIP, 46000, VPORT, f), Some(c0))
            .unwrap();
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(state_of(&dp, 46000), want, "after flags {f:#x}");
    };
    step(ACK, ConnState::Established);
    assert_eq!(dp.dest_conns(0).unwrap(), (1, 0));
    step(FIN | ACK, ConnState::FinWait);
    assert_eq!(dp.dest_conns(0).unwrap(), (0, 1));
    step(ACK, ConnState::FinWait);
    step(RST, ConnState::Close);
    let s = dp.svc_stats(0).unwrap();
    let len = (syn.len() - 14) as u64;
    assert_eq!(
        (s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes),
        (1, 5, 0, 5 * len, 0),
        "in-direction only"
    );

    // The next hop is user space's: a changed RS MAC is followed once it
    // refreshes (xvsd does when the kernel reports the change).
    sh("ip neigh replace 192.168.1.10 lladdr 02:00:00:00:0a:11 dev r0 nud permanent");
    assert_eq!(dp.refresh_nexthops().unwrap(), (1, 0));
    let (_, out) = dp
        .test_run(&tcp_frame(CLIENT, VIP, 46000, VPORT, ACK), Some(c0))
        .unwrap();
    assert_eq!(&Pkt(&out).dst_mac(), &[2, 0, 0, 0, 0x0a, 0x11]);

    // ICMP errors about the flow go to the real server unchanged.
    let vip2c = ipv4(
        VIP,
        CLIENT,
        TCP,
        64,
        &[],
        0,
        &tcp_seg(VIP, CLIENT, VPORT, 46000, ACK, b""),
    );
    let icmp = icmp_error(CLIENT, VIP, 3, 3, &vip2c[..28]);
    let (v, out) = dp.test_run(&icmp, Some(c0)).unwrap();
    assert_eq!(v, XDP_REDIRECT);
    assert_eq!(&Pkt(&out).dst_mac(), &[2, 0, 0, 0, 0x0a, 0x11]);
    assert_eq!(Pkt(&out).eth().ethertype(), EtherType::Ipv4);
    assert_eq!(Pkt(&out).eth().payload(), &ttl_dec(Pkt(&icmp).l3())[..]);
    assert_eq!(dp.counter("icmp_in").unwrap(), 1);

    // One-armed: a real server on the ingress link means XDP_TX.
    sh("ip neigh add 172.16.0.50 lladdr 02:00:00:00:0c:50 dev c0 nud permanent");
    dp.upsert_dest(1, 1, &route_dest(Ipv4Addr::new(172, 16, 0, 50)))
        .unwrap();
    dp.upsert_service(
        1,
        &Service::new(key(Protocol::Udp), "rr"),
        &SvcSched::from_ring(&[1]),
    )
    .unwrap();
    let (v, out) = dp
        .test_run(&udp_frame(CLIENT, VIP, 5555, VPORT, true), Some(c0))
        .unwrap();
    assert_eq!(v, XDP_TX);
    assert_eq!(&Pkt(&out).dst_mac(), &[2, 0, 0, 0, 0x0c, 0x50]);
    assert_eq!(&Pkt(&out).src_mac(), &C0_MAC);
    assert_eq!(Pkt(&out).daddr(), VIP);
    assert_eq!(state_of(&dp, 5555), ConnState::Udp);

    // Neighbour unknown: dropped (the kernel would answer for the VIP),
    // counted so the daemon resolves it.
    dp.upsert_dest(0, 0, &route_dest(Ipv4Addr::new(192, 168, 1, 20)))
        .unwrap();
    let f = tcp_frame(CLIENT, VIP, 46001, VPORT, SYN);
    let (v, _) = dp.test_run(&f, Some(c0)).unwrap();
    assert_eq!(v, XDP_DROP);
    assert_eq!(dp.counter("drop_no_neigh").unwrap(), 1);
    // No route (here a route turned blackhole): dropped too.
    sh("ip route add 198.51.100.0/24 via 192.168.1.254");
    dp.upsert_dest(0, 0, &route_dest(Ipv4Addr::new(198, 51, 100, 7)))
        .unwrap();
    sh("ip route replace blackhole 198.51.100.0/24");
    dp.refresh_nexthops().unwrap();
    let (v, _) = dp
        .test_run(&tcp_frame(CLIENT, VIP, 46002, VPORT, SYN), Some(c0))
        .unwrap();
    assert_eq!(v, XDP_DROP);
    assert_eq!(dp.counter("drop_fib").unwrap(), 1);

    // A connection is made before the packet is dropped (as IPVS), so the
    // retransmitted SYN finds it once the neighbour is known.
    assert_eq!(dp.conn_count().unwrap(), 4);
    // Expiry of DR conns (UDP: timeout 0 here; the TCP ones keep their
    // fixed SYN_RECV/CLOSE timeouts).
    std::thread::sleep(std::time::Duration::from_millis(2));
    let t = Timeouts {
        tcp: 0,
        tcp_fin: 0,
        udp: 0,
    };
    assert_eq!(dp.expire_conns(&t).unwrap(), 1);
    assert_eq!(dp.conn_count().unwrap(), 3);
    assert_eq!(dp.dest_conns(1).unwrap(), (0, 0));
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn resolve_neighbours_creates_neighbour_entries() {
    let (dp, _c0, _r0) = setup_fwd(Protocol::Tcp, &route_dest(RS0), 1500);
    sh("ip route add 10.9.0.0/16 via 192.168.1.254");
    assert!(neigh_show("192.168.1.20").is_empty());
    dp.resolve_neighbours(&[
        Ipv4Addr::new(192, 168, 1, 20),
        Ipv4Addr::new(10, 9, 0, 5),
        RS0,
    ])
    .unwrap();
    let n = neigh_show("192.168.1.20");
    assert!(n.contains("dev r0"), "entry created: {n:?}");
    // Behind a gateway, the gateway is what must be resolved.
    let g = neigh_show("192.168.1.254");
    assert!(g.contains("dev r0"), "gateway entry created: {g:?}");
    assert!(neigh_show("10.9.0.5").is_empty());
    // Permanent entries stay as they are.
    let p = neigh_show("192.168.1.10");
    assert!(
        p.contains("PERMANENT") && p.contains("02:00:00:00:0a:10"),
        "{p:?}"
    );
    // Resolving twice is harmless; no route is an error.
    dp.resolve_neighbours(&[Ipv4Addr::new(192, 168, 1, 20)])
        .unwrap();
    assert!(dp
        .resolve_neighbours(&[Ipv4Addr::new(203, 0, 113, 1)])
        .is_err());
}

/// Expected TUN output for `inner_in` (an Ethernet frame as received):
/// Ethernet (RS0 MAC, r0 MAC), outer headers, inner packet TTL-1.
fn expected_tun(inner_in: &[u8], gue: Option<(u16, bool)>, id: u16) -> Vec<u8> {
    let inner = ttl_dec(Pkt(inner_in).l3());
    let ip = Ipv4Packet::new_checked(&inner[..]).expect("IPv4 packet");
    let tos = ip.tos();
    let tos = if tos & 3 == 3 { (tos & !3) | 2 } else { tos };
    let outer = |proto: IpProtocol, payload: &[u8]| {
        Ipv4Repr {
            tos,
            ident: id,
            dont_frag: ip.dont_frag(),
            ..Ipv4Repr::new(DIR_R, RS0, proto, ip.ttl())
        }
        .to_vec(payload)
        .unwrap()
    };
    let l3 = match gue {
        None => outer(IpProtocol::IpIp, &inner),
        Some((sport, with_csum)) => {
            let g = GueRepr {
                protocol: IpProtocol::IpIp,
                flags: 0,
            }
            .to_vec(&inner);
            let csum = if with_csum {
                UdpChecksum::Compute
            } else {
                UdpChecksum::Zero
            };
            let u = UdpRepr {
                src_port: sport,
                dst_port: GUE_PORT,
            }
            .to_vec(&g, &DIR_R.into(), &RS0.into(), csum)
            .unwrap();
            outer(IpProtocol::Udp, &u)
        }
    };
    EthernetRepr {
        src_addr: EthernetAddress(R0_MAC),
        dst_addr: EthernetAddress(RS0_MAC),
        ethertype: EtherType::Ipv4,
    }
    .to_vec(&l3)
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn tun_ipip_encapsulation_is_byte_exact() {
    let d = tun_dest(RS0, TunType::Ipip, TunCsum::NoCsum);
    let (dp, c0, _r0) = setup_fwd(Protocol::Tcp, &d, 1500);
    if !ingress_runs(&dp) {
        return;
    }
    // DF, TOS with ECN CE: outer gets DF, id 0, TOS with ECT(0).
    let mut syn = tcp_frame(CLIENT, VIP, 47000, VPORT, SYN);
    set_tos_frag(&mut syn, 0x2b, 0x4000);
    let (v, out) = dp.test_run(&syn, Some(c0)).unwrap();
    assert_eq!(v, XDP_REDIRECT);
    assert_eq!(out, expected_tun(&syn, None, 0));
    assert_eq!(dp.counter("tun_in").unwrap(), 1);
    let c = &dp.conns().unwrap()[0];
    assert_eq!(
        (c.fwd, c.daddr, c.state),
        (FwdMethod::Tunnel, RS0, ConnState::SynRecv)
    );
    // INPUT_ONLY state for TUN too.
    let mut ack = tcp_frame(CLIENT, VIP, 47000, VPORT, ACK);
    set_tos_frag(&mut ack, 0x10, 0);
    let (_, out) = dp.test_run(&ack, Some(c0)).unwrap();
    assert_eq!(state_of(&dp, 47000), ConnState::Established);
    // No DF: outer id is random, everything else exact.
    let id = Pkt(&out).ip().ident();
    assert_eq!(out, expected_tun(&ack, None, id));
    let (_, out) = dp
        .test_run(&tcp_frame(CLIENT, VIP, 47000, VPORT, FIN | ACK), Some(c0))
        .unwrap();
    assert_eq!(state_of(&dp, 47000), ConnState::FinWait);
    assert!(Pkt(&out).ip_csum_ok());
    // IP options in the inner packet are carried as they are.
    let seg = tcp_seg(CLIENT, VIP, 47001, VPORT, SYN, b"opt");
    let f = eth(&ipv4(CLIENT, VIP, TCP, 64, &[1, 1, 1, 1], 0x4000, &seg));
    let (_, out) = dp.test_run(&f, Some(c0)).unwrap();
    assert_eq!(out, expected_tun(&f, None, 0));

    // Neighbour unknown: dropped and counted (the kernel's forwarding may
    // be off, as IPVS allows), until user space has resolved it.
    let rs2 = Ipv4Addr::new(192, 168, 1, 20);
    dp.upsert_dest(0, 0, &tun_dest(rs2, TunType::Ipip, TunCsum::NoCsum))
        .unwrap();
    let mut f = tcp_frame(CLIENT, VIP, 47002, VPORT, SYN);
    set_tos_frag(&mut f, 0, 0x4000);
    let (v, _) = dp.test_run(&f, Some(c0)).unwrap();
    assert_eq!(v, XDP_DROP);
    assert_eq!(dp.counter("drop_no_neigh").unwrap(), 1);
    assert_eq!(dp.counter("tun_in").unwrap(), 4);
    sh("ip neigh replace 192.168.1.20 lladdr 02:00:00:00:0a:20 dev r0 nud permanent");
    assert_eq!(dp.refresh_nexthops().unwrap(), (1, 0));
    let (v, out) = dp.test_run(&f, Some(c0)).unwrap();
    assert_eq!(v, XDP_REDIRECT);
    assert_eq!(&Pkt(&out).dst_mac(), &[2, 0, 0, 0, 0x0a, 0x20]);
    let p = Pkt(&out);
    assert_eq!((p.saddr(), p.daddr(), p.proto()), (DIR_R, rs2, 4));
    assert!(p.ip_csum_ok());
    assert_eq!(&p.eth().payload()[p.ihl()..], &ttl_dec(Pkt(&f).l3())[..]);
    assert_eq!(dp.counter("tun_in").unwrap(), 5);
    let s = dp.svc_stats(0).unwrap();
    assert_eq!((s.inpkts, s.outpkts), (6, 0));
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn tun_gue_encapsulation_with_and_without_udp_checksum() {
    let d = tun_dest(RS0, TunType::Gue, TunCsum::NoCsum);
    let (dp, c0, _r0) = setup_fwd(Protocol::Udp, &d, 1500);
    if !ingress_runs(&dp) {
        return;
    }
    let sport = gue_sport(CLIENT, 48000, UDP);
    let mut f = udp_frame(CLIENT, VIP, 48000, VPORT, true);
    set_tos_frag(&mut f, 0, 0x4000);
    let (v, out) = dp.test_run(&f, Some(c0)).unwrap();
    assert_eq!(v, XDP_REDIRECT);
    assert_eq!(out, expected_tun(&f, Some((sport, false)), 0));
    // Same flow, same source port; another flow, (most likely) another.
    let (_, out2) = dp.test_run(&f, Some(c0)).unwrap();
    assert_eq!(xvs_wire::ports(Pkt(&out2).l4()).unwrap().0, sport);
    assert_ne!(gue_sport(CLIENT, 48001, UDP), sport);

    // --tun-csum: full UDP checksum, for odd lengths and long packets too
    // (the BPF side sums in 256-byte chunks, then words, then the tail).
    dp.upsert_dest(0, 0, &tun_dest(RS0, TunType::Gue, TunCsum::Csum))
        .unwrap();
    for (i, n) in [5usize, 6, 255, 256, 700, 1401].into_iter().enumerate() {
        let cport = 48100 + i as u16;
        let payload: Vec<u8> = (0..n).map(|b| (b * 7 + 3) as u8).collect();
        let ip = ipv4(
            CLIENT,
            VIP,
            UDP,
            64,
            &[],
            0x4000,
            &udp_dgram(CLIENT, VIP, cport, VPORT, &payload, true),
        );
        let f = eth(&ip);
        let (v, out) = dp.test_run(&f, Some(c0)).unwrap();
        assert_eq!(v, XDP_REDIRECT, "payload {n}");
        let sport = gue_sport(CLIENT, cport, UDP);
        assert_eq!(out, expected_tun(&f, Some((sport, true)), 0), "payload {n}");
        let udp = UdpPacket::new_checked(Pkt(&out).l4()).unwrap();
        assert!(
            udp.checksum() != 0 && udp.verify_checksum(&DIR_R.into(), &RS0.into()),
            "valid UDP checksum, payload {n}"
        );
    }
    // IPIP ignores --tun-csum, as IPVS does.
    dp.upsert_dest(0, 0, &tun_dest(RS0, TunType::Ipip, TunCsum::Csum))
        .unwrap();
    let f = udp_frame(CLIENT, VIP, 48000, VPORT, true);
    let (_, out) = dp.test_run(&f, Some(c0)).unwrap();
    assert_eq!(Pkt(&out).proto(), 4);
}

/// Checks an ICMP frag-needed answer to `f` (received on c0).
fn check_frag_needed(out: &[u8], f: &[u8], mtu: u16) {
    let ihl = Pkt(f).ihl();
    assert_eq!(
        Pkt(out).dst_mac(),
        Pkt(f).src_mac(),
        "back to the sender's MAC"
    );
    assert_eq!(Pkt(out).src_mac(), Pkt(f).dst_mac());
    let p = Pkt(out);
    assert_eq!(
        out.len(),
        14 + 20 + 8 + ihl + 8,
        "IP header + 8 bytes quoted"
    );
    assert_eq!(p.tot_len(), out.len() - 14);
    assert_eq!((p.saddr(), p.daddr(), p.proto()), (VIP, CLIENT, ICMP));
    assert!(p.ip_csum_ok());
    let ic = p.icmp();
    assert_eq!((ic.msg_type(), ic.code()), (3, 4));
    assert!(ic.verify_checksum(), "ICMP checksum valid");
    assert_eq!(ic.next_hop_mtu(), mtu);
    assert_eq!(ic.rest_of_header() >> 16, 0);
    assert_eq!(
        ic.data(),
        &Pkt(f).l3()[..ihl + 8],
        "original header + 8 bytes"
    );
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn oversize_df_packets_get_icmp_frag_needed() {
    // RS link MTU 1400; the client link 1500.
    let d = tun_dest(RS0, TunType::Ipip, TunCsum::NoCsum);
    let (dp, c0, _r0) = setup_fwd(Protocol::Udp, &d, 1400);
    if !ingress_runs(&dp) {
        return;
    }
    let big = |cport: u16, inner_len: usize, frag: u16, opts: &[u8]| {
        let n = inner_len - 20 - opts.len() - 8;
        let u = udp_dgram(CLIENT, VIP, cport, VPORT, &vec![0x5a; n], true);
        eth(&ipv4(CLIENT, VIP, UDP, 64, opts, frag, &u))
    };
    // 1380 + 20 fits exactly.
    let (v, out) = dp
        .test_run(&big(49000, 1380, 0x4000, &[]), Some(c0))
        .unwrap();
    assert_eq!(v, XDP_REDIRECT);
    assert_eq!(Pkt(&out).tot_len(), 1400);
    // 1381 does not: ICMP with MTU 1400 - 20.
    let f = big(49001, 1381, 0x4000, &[]);
    let (v, out) = dp.test_run(&f, Some(c0)).unwrap();
    assert_eq!(v, XDP_TX);
    check_frag_needed(&out, &f, 1380);
    // IP options are quoted whole.
    let f = big(49002, 1400, 0x4000, &[1, 1, 1, 1, 1, 1, 1, 0]);
    let (v, out) = dp.test_run(&f, Some(c0)).unwrap();
    assert_eq!(v, XDP_TX);
    check_frag_needed(&out, &f, 1380);
    assert_eq!(dp.counter("icmp_frag_needed").unwrap(), 2);

    // Without DF: encapsulated anyway (outer DF clear) and handed to the
    // kernel, which fragments the outer packet.
    let f = big(49003, 1450, 0, &[]);
    let (v, out) = dp.test_run(&f, Some(c0)).unwrap();
    assert_eq!(v, XDP_PASS);
    let p = Pkt(&out);
    assert_eq!(
        (p.proto(), p.tot_len(), p.ip().dont_frag()),
        (4, 1470, false)
    );
    assert!(p.ip_csum_ok());
    assert_eq!(dp.counter("fib_frag_needed").unwrap(), 1);

    // GUE: MTU less 32.
    dp.upsert_dest(0, 0, &tun_dest(RS0, TunType::Gue, TunCsum::NoCsum))
        .unwrap();
    let f = big(49004, 1369, 0x4000, &[]);
    let (v, out) = dp.test_run(&f, Some(c0)).unwrap();
    assert_eq!(v, XDP_TX);
    check_frag_needed(&out, &f, 1368);

    // DR: the route MTU itself; without DF the packet cannot be
    // fragmented here nor passed to the kernel: dropped, counted.
    dp.upsert_dest(0, 0, &route_dest(RS0)).unwrap();
    let f = big(49005, 1401, 0x4000, &[]);
    let (v, out) = dp.test_run(&f, Some(c0)).unwrap();
    assert_eq!(v, XDP_TX);
    check_frag_needed(&out, &f, 1400);
    let (v, _) = dp.test_run(&big(49006, 1401, 0, &[]), Some(c0)).unwrap();
    assert_eq!(v, XDP_DROP);
    assert_eq!(dp.counter("drop_too_big").unwrap(), 1);
    let (v, _) = dp
        .test_run(&big(49007, 1400, 0x4000, &[]), Some(c0))
        .unwrap();
    assert_eq!(v, XDP_REDIRECT);
}

fn decap_cfg() -> DecapConfig {
    DecapConfig {
        vips: vec![Ipv4Addr::new(10, 0, 0, 1), VIP],
        gue_ports: vec![GUE_PORT],
    }
}

/// Found by the data-plane fuzzer: the decap program stripped an outer
/// header whose inner packet lay past the outer total length (padding) or
/// whose outer packet was cut short; the kernel trims the one and drops
/// the other before its own ipip would look, so both pass untouched.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn decap_takes_only_what_lies_inside_the_outer_packet() {
    own_netns();
    let cfg = decap_cfg();
    let inner = ipv4(
        CLIENT,
        VIP,
        TCP,
        64,
        &[],
        0,
        &tcp_seg(CLIENT, VIP, 1, VPORT, SYN, b""),
    );
    let whole = eth(&ipv4(DIR_R, RS0, 4, 64, &[], 0, &inner));
    let (v, out, _) = decap::test_run(&cfg, &whole).unwrap();
    assert_eq!(v, XDP_PASS);
    assert_ne!(out, whole, "a whole IPIP packet is decapsulated");
    let mut padded = whole.clone();
    set_tot_len(&mut padded, 20);
    let (v, out, _) = decap::test_run(&cfg, &padded).unwrap();
    assert_eq!(
        (v, &out),
        (XDP_PASS, &padded),
        "inner packet in the padding"
    );
    let cut = &whole[..whole.len() - 4];
    let (v, out, _) = decap::test_run(&cfg, cut).unwrap();
    assert_eq!((v, &out[..]), (XDP_PASS, cut), "outer packet cut short");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn decap_strips_what_the_director_encapsulated() {
    let d = tun_dest(RS0, TunType::Ipip, TunCsum::NoCsum);
    let (dp, c0, _r0) = setup_fwd(Protocol::Tcp, &d, 1500);
    if !ingress_runs(&dp) {
        return;
    }
    let cfg = decap_cfg();
    let frames = [
        tcp_frame(CLIENT, VIP, 50000, VPORT, SYN),
        eth(&ipv4(
            CLIENT,
            VIP,
            TCP,
            64,
            &[1, 1, 1, 1],
            0x4000,
            &tcp_seg(CLIENT, VIP, 50001, VPORT, SYN, b"x"),
        )),
    ];
    for (ty, csum_mode, counter) in [
        (TunType::Ipip, TunCsum::NoCsum, "decap_ipip"),
        (TunType::Gue, TunCsum::NoCsum, "decap_gue"),
        (TunType::Gue, TunCsum::Csum, "decap_gue"),
    ] {
        dp.upsert_dest(0, 0, &tun_dest(RS0, ty, csum_mode)).unwrap();
        for f in &frames {
            let (v, enc) = dp.test_run(f, Some(c0)).unwrap();
            assert_eq!(v, XDP_REDIRECT);
            let (v, out, cnt) = decap_run(&cfg, &enc).unwrap();
            assert_eq!(v, XDP_PASS);
            let e = Pkt(&enc);
            let inner = if ty == TunType::Gue {
                let u = UdpPacket::new_checked(e.l4()).unwrap();
                GuePacket::new_checked(u.payload())
                    .unwrap()
                    .payload()
                    .to_vec()
            } else {
                e.l4().to_vec()
            };
            let want = EthernetRepr::parse(&e.eth()).unwrap().to_vec(&inner);
            assert_eq!(out, want, "{ty:?}: inner packet, Ethernet header kept");
            assert_eq!(Pkt(&out).l3(), &ttl_dec(Pkt(f).l3())[..]);
            assert!(
                cnt.contains(&(counter, 1)) && cnt.contains(&("pass", 0)),
                "{cnt:?}"
            );
        }
    }

    // Not ours: passed untouched.
    dp.upsert_dest(0, 0, &tun_dest(RS0, TunType::Gue, TunCsum::NoCsum))
        .unwrap();
    let (_, gue) = dp
        .test_run(&tcp_frame(CLIENT, VIP, 50002, VPORT, SYN), Some(c0))
        .unwrap();
    let mut wrong_port = gue.clone();
    udp_of(&mut wrong_port).set_dst_port(6081);
    let mut wrong_ver = gue.clone();
    let mut u = udp_of(&mut wrong_ver);
    GuePacket::new_checked(u.payload_mut())
        .unwrap()
        .set_version(1);
    let mut wrong_ctype = gue.clone();
    let mut u = udp_of(&mut wrong_ctype);
    GuePacket::new_checked(u.payload_mut())
        .unwrap()
        .set_proto_ctype(41);
    let other_vip = DecapConfig {
        vips: vec![Ipv4Addr::new(10, 0, 0, 1)],
        gue_ports: vec![GUE_PORT],
    };
    for (c, f) in [
        (&cfg, &wrong_port),
        (&cfg, &wrong_ver),
        (&cfg, &wrong_ctype),
        (&other_vip, &gue),
        (&cfg, &tcp_frame(CLIENT, VIP, 50003, VPORT, SYN)),
        (&cfg, &udp_frame(CLIENT, RS0, 1234, GUE_PORT, true)),
    ] {
        let (v, out, cnt) = decap_run(c, f).unwrap();
        assert_eq!((v, &out), (XDP_PASS, f));
        assert!(cnt.contains(&("pass", 1)), "{cnt:?}");
    }
    // IPIP to a VIP not configured, and a truncated IPIP header.
    let ipip = eth(&ipv4(DIR_R, RS0, 4, 64, &[], 0, &[0x45, 0, 0, 20]));
    let (v, out, _) = decap_run(&cfg, &ipip).unwrap();
    assert_eq!((v, &out), (XDP_PASS, &ipip));
    // Bad configurations are refused.
    assert!(decap_run(&DecapConfig::default(), &ipip).is_err());
    let many = DecapConfig {
        vips: vec![VIP; 17],
        gue_ports: vec![],
    };
    assert!(decap_run(&many, &ipip).is_err());
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn decap_attach_replace_detach() {
    // (with XVS_TEST_ATTACH=tc: the tc build, as a clsact filter)
    own_netns();
    sh("ip link add d0 type veth peer name d1 && ip link set d0 up && ip link set d1 up");
    assert!(!decap::attached("d0").unwrap());
    decap::detach("d0").unwrap(); // nothing attached: no-op
    decap::attach_as("d0", &decap_cfg(), tc()).unwrap();
    // Nothing of ours holds it: it stays attached (netlink, not a link).
    assert!(decap::attached("d0").unwrap());
    let id1 = decap_prog("d0").expect("attached");
    decap::attach_as("d0", &decap_cfg(), tc()).unwrap();
    let id2 = decap_prog("d0").expect("attached");
    assert_ne!(id1, id2, "replaced by a fresh load");
    assert!(decap::counters("d0")
        .unwrap()
        .iter()
        .any(|(n, _)| *n == "decap_ipip"));
    decap::detach("d0").unwrap();
    assert!(!decap::attached("d0").unwrap());
    assert!(decap_prog("d0").is_none());
    assert!(matches!(
        decap::attach("nope0", &decap_cfg()),
        Err(Error::NoSuchInterface(_))
    ));
    // Auto on a veth picks the tc build and replaces an XDP one; detach
    // leaves no clsact qdisc behind (teardown restores the interface).
    let show = |what: &[&str]| {
        let o = Command::new("tc").args(what).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    decap::attach_as("d0", &decap_cfg(), false).unwrap();
    assert!(xdp_prog_id("d0").is_some());
    decap::attach("d0", &decap_cfg()).unwrap();
    assert!(xdp_prog_id("d0").is_none(), "the XDP one was replaced");
    assert!(show(&["filter", "show", "dev", "d0", "ingress"]).contains("xvs_decap"));
    decap::detach("d0").unwrap();
    assert!(!decap::attached("d0").unwrap());
    assert!(!show(&["qdisc", "show", "dev", "d0"]).contains("clsact"));
    // Someone else's filter on the hook: detach takes only its own and
    // leaves the qdisc to the other.
    decap::attach("d0", &decap_cfg()).unwrap();
    sh("tc filter add dev d0 egress pref 7 bpf bytecode '1,6 0 0 4294967295,'");
    decap::detach("d0").unwrap();
    assert!(!decap::attached("d0").unwrap());
    assert!(show(&["qdisc", "show", "dev", "d0"]).contains("clsact"));
    assert!(show(&["filter", "show", "dev", "d0", "egress"]).contains("bytecode"));
    assert!(!show(&["filter", "show", "dev", "d0", "ingress"]).contains("xvs_decap"));
}

/// The counters that are not zero.
fn nonzero_counters(dp: &Dataplane) -> Vec<(&'static str, u64)> {
    let mut c = dp.counters().unwrap();
    c.retain(|(_, v)| *v != 0);
    c
}

/// `DEST_NH` state of dest 0.
fn nh_state(dp: &Dataplane) -> u8 {
    dp.dest_nexthop(0).unwrap().state
}

const NH_LOCAL: u8 = xvs_dataplane::abi::xvs_nh_state::XVS_NH_LOCAL.0 as u8;

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_local_dr_or_tun_dest_gets_the_packet_unchanged() {
    for dest in [
        route_dest(DIR_R),
        tun_dest(DIR_R, TunType::Ipip, TunCsum::NoCsum),
    ] {
        // Each in a fresh namespace of its own (setup_fwd unshares).
        let (dp, c0, _) = setup_fwd(Protocol::Tcp, &dest, 1500);
        if !ingress_runs(&dp) {
            return;
        }
        assert_eq!(
            nh_state(&dp),
            NH_LOCAL,
            "{:?} at the director's address",
            dest.fwd
        );
        let syn = tcp_frame(CLIENT, VIP, 46001, VPORT, SYN);
        let (v, out) = dp.test_run(&syn, Some(c0)).unwrap();
        // ip_vs_dr_xmit / ip_vs_tunnel_xmit on a local route: the packet
        // continues to the director's own stack as it came.
        assert_eq!((v, &out), (XDP_PASS, &syn), "{:?}", dest.fwd);
        assert_eq!(dp.counter("pass_local").unwrap(), 1);
        let c = &dp.conns().unwrap()[0];
        assert_eq!(
            (c.fwd, c.daddr, c.state),
            (dest.fwd, DIR_R, ConnState::SynRecv)
        );
        let (v, _) = dp
            .test_run(&tcp_frame(CLIENT, VIP, 46001, VPORT, ACK), Some(c0))
            .unwrap();
        assert_eq!(v, XDP_PASS);
        assert_eq!(state_of(&dp, 46001), ConnState::Established);
        assert_eq!(dp.dest_conns(0).unwrap(), (1, 0));
        assert_eq!(dp.svc_stats(0).unwrap().inpkts, 2);
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_local_nat_dest_is_reached_through_the_stack_and_answers_as_the_vip() {
    let (dp, c0, _) = setup_fwd(Protocol::Tcp, &masq(DIR_R, RPORT), 1500);
    if !ingress_runs(&dp) {
        return;
    }
    assert_eq!(nh_state(&dp), NH_LOCAL);
    let syn = tcp_frame(CLIENT, VIP, 46002, VPORT, SYN);
    let (v, out_syn) = dp.test_run(&syn, Some(c0)).unwrap();
    assert_eq!(v, XDP_PASS, "the director's stack delivers it");
    let p = Pkt(&out_syn);
    assert_eq!(
        (p.saddr(), p.sport(), p.daddr(), p.dport()),
        (CLIENT, 46002, DIR_R, RPORT)
    );
    assert!(p.ip_csum_ok() && p.l4_csum_ok());
    let counted = nonzero_counters(&dp);
    assert_eq!(dp.counter("pass_local").unwrap(), 1, "{counted:?}");
    assert_eq!(dp.counter("nat_in").unwrap(), 1, "{counted:?}");

    if lacks(&dp, features::LOCAL_OUT, "the answer") {
        return;
    }
    // The local server's answer leaves the stack from DIR_R:RPORT; the
    // egress program gives it the VIP back (IPVS's LOCAL_OUT hook).
    let synack = tcp_frame(DIR_R, CLIENT, RPORT, 46002, SYN | ACK);
    let (v, out) = dp.test_run_local_out(&synack).unwrap();
    assert_eq!(v, XDP_PASS);
    let p = Pkt(&out);
    assert_eq!(
        (p.saddr(), p.sport(), p.daddr(), p.dport()),
        (VIP, VPORT, CLIENT, 46002)
    );
    assert!(p.ip_csum_ok() && p.l4_csum_ok());
    assert_eq!(dp.counter("local_out").unwrap(), 1);
    let s = dp.svc_stats(0).unwrap();
    assert_eq!((s.inpkts, s.outpkts), (1, 1));
    // An ICMP error of the local stack about the connection's packet
    // (quoted as it arrived, DNAT'ed) is shown from the VIP too.
    let err = icmp_error(DIR_R, CLIENT, 3, 3, Pkt(&out_syn).l3());
    let (v, out) = dp.test_run_local_out(&err).unwrap();
    assert_eq!(v, XDP_PASS);
    let p = Pkt(&out);
    assert_eq!((p.saddr(), p.daddr()), (VIP, CLIENT));
    let icmp = p.icmp();
    assert!(p.ip_csum_ok() && icmp.verify_checksum());
    let q = icmp.quoted().unwrap();
    assert!(q.verify_checksum());
    assert_eq!((q.src_addr(), q.dst_addr()), (CLIENT, VIP));
    assert_eq!(xvs_wire::ports(q.payload()).unwrap(), (46002, VPORT));
    assert_eq!(dp.counter("local_out").unwrap(), 2);
    // Other ICMP leaves as it is.
    let echo = icmp_error(DIR_R, CLIENT, 0, 0, &[0; 8]);
    assert_eq!(dp.test_run_local_out(&echo).unwrap(), (XDP_PASS, echo));
    // Anything else leaves as it is: another connection's packet, and
    // a NAT dest's that is not local is not the egress program's.
    for other in [
        tcp_frame(DIR_R, CLIENT, RPORT, 46099, SYN | ACK),
        tcp_frame(DIR_R, CLIENT, 22, 46002, ACK),
        udp_frame(DIR_R, CLIENT, RPORT, 46002, true),
    ] {
        assert_eq!(dp.test_run_local_out(&other).unwrap(), (XDP_PASS, other));
    }
    assert_eq!(dp.counter("local_out").unwrap(), 2);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_nat_dest_on_loopback_refuses_packets_from_outside() {
    let (dp, c0, _) = setup_fwd(Protocol::Tcp, &masq(Ipv4Addr::LOCALHOST, RPORT), 1500);
    if !ingress_runs(&dp) {
        return;
    }
    assert_eq!(nh_state(&dp), NH_LOCAL);
    let syn = tcp_frame(CLIENT, VIP, 46003, VPORT, SYN);
    let (v, _) = dp.test_run(&syn, Some(c0)).unwrap();
    // ip_vs_nat_xmit: "stopping DNAT to loopback address".
    assert_eq!(v, XDP_DROP);
    assert_eq!(dp.counter("drop_loopback").unwrap(), 1);
}
