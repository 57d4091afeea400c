//! Golden texts come from `testdata/format_golden.py`, which applies
//! ipvsadm.c's printf format strings with Python's C-compatible `%`
//! operator, independently of this Rust code.

use super::*;
use crate::api::{ConnEntry, DestEntry, ServiceEntry, Table};
use crate::model::{ConnState, Dest, Rates, Service, Stats};
use crate::names::{FileNames, NoNames};
use std::collections::HashMap;
use std::net::IpAddr;
use std::net::Ipv4Addr;

fn gold(name: &str) -> String {
    let all: HashMap<String, String> =
        serde_json::from_str(include_str!("../testdata/format_golden.json")).unwrap();
    all.get(name)
        .cloned()
        .unwrap_or_else(|| panic!("no golden {name}"))
}

fn names() -> FileNames {
    FileNames::from_texts(
        "10.1.1.1 vip\n10.2.2.2 rs2\n",
        "http 80/tcp\nhttp 80/udp\ndomain 53/udp\ndomain 53/tcp\n",
    )
}

fn key(proto: Protocol, a: [u8; 4], port: u16) -> ServiceKey {
    ServiceKey {
        fwmark: 0,
        proto,
        addr: IpAddr::V4(Ipv4Addr::from(a)),
        port,
    }
}

fn dest(a: [u8; 4], port: u16, fwd: FwdMethod, weight: u32) -> DestEntry {
    let mut d = Dest::new(Ipv4Addr::from(a), port);
    d.fwd = fwd;
    d.weight = weight;
    DestEntry {
        dest: d,
        active_conns: 0,
        inact_conns: 0,
        persist_conns: 0,
        stats: Stats::default(),
        rates: Rates::default(),
    }
}

fn svc(service: Service, dests: Vec<DestEntry>) -> ServiceEntry {
    ServiceEntry {
        service,
        stats: Stats::default(),
        rates: Rates::default(),
        dests,
    }
}

/// Deliberately unsorted, to exercise ipvsadm's sorting.
fn table() -> Table {
    let mut udp = Service::new(key(Protocol::Udp, [10, 1, 1, 1], 53), "rr");
    udp.flags = svc_flags::PERSISTENT | svc_flags::ONEPACKET;
    udp.timeout = 360;
    udp.netmask = Ipv4Addr::new(255, 255, 255, 0).into();
    let mut d3 = dest([10, 2, 2, 3], 80, FwdMethod::Masq, 1);
    d3.active_conns = 2;
    d3.inact_conns = 3;
    let mut sh = Service::new(key(Protocol::Tcp, [10, 0, 0, 5], 443), "sh");
    sh.flags = svc_flags::SCHED2;
    Table {
        conn_tab_size: 4096,
        services: vec![
            svc(udp, vec![]),
            svc(
                Service::new(key(Protocol::Tcp, [10, 1, 1, 1], 80), "wlc"),
                vec![d3, dest([10, 2, 2, 2], 80, FwdMethod::Route, 2)],
            ),
            svc(sh, vec![]),
        ],
    }
}

fn opts(f: impl FnOnce(&mut ListOptions)) -> ListOptions {
    let mut o = ListOptions::default();
    f(&mut o);
    o
}

#[test]
fn list_numeric_and_names() {
    let t = table();
    assert_eq!(
        list_all(&t, &opts(|o| o.numeric = true), &names()),
        gold("ln")
    );
    assert_eq!(list_all(&t, &ListOptions::default(), &names()), gold("l"));
    // -n never resolves, whatever the resolver knows
    assert_eq!(
        list_all(&t, &opts(|o| o.numeric = true), &NoNames),
        gold("ln")
    );
}

#[test]
fn save_formats() {
    let t = table();
    assert_eq!(save(&t, true, &names()), gold("save_n"));
    assert_eq!(save(&t, false, &names()), gold("save"));
}

fn one_service_table() -> Table {
    let mut t = table();
    t.services.retain(|s| s.service.key.port == 80);
    t
}

fn stats(v: [u64; 5]) -> Stats {
    Stats {
        conns: v[0],
        inpkts: v[1],
        outpkts: v[2],
        inbytes: v[3],
        outbytes: v[4],
    }
}

fn rates(v: [u64; 5]) -> Rates {
    Rates {
        cps: v[0],
        inpps: v[1],
        outpps: v[2],
        inbps: v[3],
        outbps: v[4],
    }
}

#[test]
fn stats_and_rates() {
    let mut t = one_service_table();
    let s = &mut t.services[0];
    s.stats = stats([1, 123456789, 99999999, 1234567890123, 999999999999999]);
    s.rates = rates([12, 3456, 789, 123456789, 5]);
    // dests are [10.2.2.3, 10.2.2.2]: sorted output puts .2 first
    s.dests[1].stats = stats([0, 5, 100000000, 7, 8]);
    s.dests[0].stats = stats([3, 4, 5, 6, 123456789012]);
    s.dests[1].rates = rates([1, 2, 3, 1000000000, 4]);
    let base = |f: fn(&mut ListOptions)| {
        let mut o = ListOptions {
            numeric: true,
            ..Default::default()
        };
        f(&mut o);
        o
    };
    assert_eq!(
        list_all(&t, &base(|o| o.stats = true), &NoNames),
        gold("stats")
    );
    assert_eq!(
        list_all(
            &t,
            &base(|o| {
                o.stats = true;
                o.exact = true
            }),
            &NoNames
        ),
        gold("stats_exact")
    );
    t.services[0].dests.remove(0);
    assert_eq!(
        list_all(&t, &base(|o| o.rate = true), &NoNames),
        gold("rate")
    );
}

#[test]
fn thresholds_and_persistent_conn() {
    let mut t = one_service_table();
    let d = &mut t.services[0].dests;
    d.remove(0);
    d[0].dest.u_threshold = 100;
    d[0].dest.l_threshold = 10;
    d[0].active_conns = 7;
    d[0].inact_conns = 8;
    d[0].persist_conns = 9;
    let o = |thr: bool| ListOptions {
        numeric: true,
        thresholds: thr,
        persistent_conn: !thr,
        ..Default::default()
    };
    assert_eq!(list_all(&t, &o(true), &NoNames), gold("thr"));
    assert_eq!(list_all(&t, &o(false), &NoNames), gold("pc"));
}

fn tunnel_table() -> Table {
    let mut gue = dest([10, 2, 2, 2], 80, FwdMethod::Tunnel, 1);
    gue.dest.tun_type = TunType::Gue;
    gue.dest.tun_port = 6080;
    gue.dest.tun_csum = TunCsum::RemCsum;
    let mut gre = dest([10, 2, 2, 3], 80, FwdMethod::Tunnel, 1);
    gre.dest.tun_type = TunType::Gre;
    gre.dest.tun_csum = TunCsum::Csum;
    Table {
        conn_tab_size: 4096,
        services: vec![svc(
            Service::new(key(Protocol::Tcp, [10, 1, 1, 1], 80), "rr"),
            vec![
                dest([10, 2, 2, 4], 80, FwdMethod::Masq, 1),
                gre,
                gue,
                dest([10, 2, 2, 1], 80, FwdMethod::Tunnel, 1),
            ],
        )],
    }
}

#[test]
fn tunnel_info_and_save() {
    let t = tunnel_table();
    let o = ListOptions {
        numeric: true,
        tun_info: true,
        ..Default::default()
    };
    assert_eq!(list_all(&t, &o, &NoNames), gold("tun"));
    assert_eq!(save(&t, true, &NoNames), gold("tun_save"));
}

fn conn_list() -> Vec<ConnEntry> {
    vec![
        ConnEntry {
            proto: Protocol::Tcp,
            caddr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            cport: 40000,
            vaddr: IpAddr::V4(Ipv4Addr::new(10, 1, 1, 1)),
            vport: 80,
            daddr: IpAddr::V4(Ipv4Addr::new(10, 2, 2, 2)),
            dport: 80,
            state: ConnState::Established,
            fwd: FwdMethod::Masq,
            expires_ms: 899_999,
            fwmark: 0,
            pe: None,
        },
        ConnEntry {
            proto: Protocol::Udp,
            caddr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            cport: 5353,
            vaddr: IpAddr::V4(Ipv4Addr::new(10, 1, 1, 1)),
            vport: 53,
            daddr: IpAddr::V4(Ipv4Addr::new(10, 2, 2, 2)),
            dport: 53,
            state: ConnState::Udp,
            fwd: FwdMethod::Masq,
            expires_ms: 6_059_000,
            fwmark: 0,
            pe: None,
        },
    ]
}

#[test]
fn connection_entries() {
    let c = conn_list();
    let n = ListOptions {
        numeric: true,
        connection: true,
        ..Default::default()
    };
    assert_eq!(conns(&c, &n, &names()), gold("conn_n"));
    let l = ListOptions {
        connection: true,
        ..Default::default()
    };
    assert_eq!(conns(&c, &l, &names()), gold("conn"));
    let pc = ListOptions {
        numeric: true,
        connection: true,
        persistent_conn: true,
        ..Default::default()
    };
    assert_eq!(conns(&c, &pc, &names()), gold("conn_pc"));
    assert_eq!(
        conns(&[], &n, &NoNames),
        "IPVS connection entries\npro expire state       source             virtual            destination\n"
    );
}

/// A --pe sip template: with --persistent-conn ipvsadm's long entry
/// (print_conn's 11 fields: dname 16 wide, the engine name 18), else the
/// short one; its connection keeps the short one always.
#[test]
fn sip_template_rows() {
    let tmpl = ConnEntry {
        proto: Protocol::Udp,
        caddr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 0)),
        cport: 0,
        vaddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100)),
        vport: 5060,
        daddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        dport: 5060,
        state: ConnState::None,
        fwd: FwdMethod::Masq,
        expires_ms: 360_000,
        fwmark: 0,
        pe: Some(crate::api::PeData::sip(
            b"a84b4c76e66710@pc33.atlanta.example",
        )),
    };
    let conn = ConnEntry {
        caddr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        cport: 5060,
        state: ConnState::Udp,
        expires_ms: 300_000,
        pe: None,
        ..tmpl.clone()
    };
    let rows = [tmpl, conn];
    let o = |pc| ListOptions {
        numeric: true,
        connection: true,
        persistent_conn: pc,
        ..Default::default()
    };
    assert_eq!(
        conns(&rows, &o(true), &NoNames),
        "IPVS connection entries\n\
         pro expire state       source             virtual            destination        pe name          pe_data\n\
         UDP 06:00  NONE        192.0.2.0:0        10.0.0.100:5060    10.0.0.2:5060    sip                a84b4c76e66710@pc33.atlanta.example\n\
         UDP 05:00  UDP         192.0.2.7:5060     10.0.0.100:5060    10.0.0.2:5060\n"
    );
    assert_eq!(
        conns(&rows, &o(false), &NoNames),
        "IPVS connection entries\n\
         pro expire state       source             virtual            destination\n\
         UDP 06:00  NONE        192.0.2.0:0        10.0.0.100:5060    10.0.0.2:5060\n\
         UDP 05:00  UDP         192.0.2.7:5060     10.0.0.100:5060    10.0.0.2:5060\n"
    );
}

#[test]
fn timeout_line() {
    assert_eq!(
        timeouts(&Timeouts::default()),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
}

#[test]
fn daemon_lines() {
    use crate::model::{SyncDaemon, SyncState};
    assert_eq!(daemons(&[]), "");
    // As the kernel lists them: defaults filled in, the master first.
    let backup = SyncDaemon::new(SyncState::Backup, "lo").with_defaults(65536);
    let mut master = SyncDaemon::new(SyncState::Master, "eth0");
    master.syncid = 7;
    master.mcast_group = std::net::Ipv4Addr::new(239, 0, 0, 1);
    master.mcast_port = 9000;
    master.mcast_ttl = 2;
    let master = master.with_defaults(1500);
    assert_eq!(
        daemons(&[backup.clone(), master]),
        "master sync daemon (mcast=eth0, syncid=7, maxlen=1472, group=239.0.0.1, port=9000, ttl=2)\n\
         backup sync daemon (mcast=lo, syncid=0, maxlen=65507, group=224.0.0.81, port=8848, ttl=1)\n"
    );
    // list_daemon prints only what is set (an old kernel sends no more).
    assert_eq!(
        daemons(&[SyncDaemon::new(SyncState::Backup, "eth1")]),
        "backup sync daemon (mcast=eth1, syncid=0)\n"
    );
}

#[test]
fn header_line() {
    assert_eq!(
        header(4096),
        "IP Virtual Server version 1.2.1 (size=4096)\n"
    );
    let empty = Table::default();
    assert_eq!(
        list_all(&empty, &ListOptions::default(), &NoNames),
        "IP Virtual Server version 1.2.1 (size=0)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
    );
    assert_eq!(save(&empty, false, &NoNames), "");
}

#[test]
fn truncation() {
    let host = "averyveryverylonghostname.example.org";
    let n = FileNames::from_texts(&format!("10.1.1.1 {host}\n"), "http 80/tcp\n");
    let t = Table {
        conn_tab_size: 4096,
        services: vec![svc(
            Service::new(key(Protocol::Tcp, [10, 1, 1, 1], 80), "wlc"),
            vec![dest([10, 1, 1, 1], 80, FwdMethod::Route, 1)],
        )],
    };
    assert_eq!(list_all(&t, &ListOptions::default(), &n), gold("trunc"));
    // save never truncates
    assert!(save(&t, false, &n).contains(&format!("-A -t {host}:http -s wlc\n")));
}

#[test]
fn nosort_and_list_service() {
    let t = table();
    let o = ListOptions {
        numeric: true,
        nosort: true,
        ..Default::default()
    };
    let out = list_all(&t, &o, &NoNames);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[3].starts_with("UDP  10.1.1.1:53 rr"));
    assert!(lines[4].starts_with("TCP  10.1.1.1:80 wlc"));
    assert!(lines[5].starts_with("  -> 10.2.2.3:80"));
    let k = key(Protocol::Tcp, [10, 1, 1, 1], 80);
    let se = find_service(&t, &k).unwrap();
    let one = list_service(se, &opts(|o| o.numeric = true), &NoNames);
    let expect: String = gold("ln")
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("TCP  10.0.0.5") && !l.starts_with("UDP"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(one, expect);
    assert!(find_service(&t, &key(Protocol::Udp, [10, 1, 1, 1], 80)).is_none());
}

#[test]
fn sort_reproduces_signed_wraparound() {
    // ipvs_cmp_services subtracts addresses as u32 and reads an int, so
    // 200.0.0.1 sorts before 10.0.0.1; both input orders agree.
    let a = svc(
        Service::new(key(Protocol::Tcp, [10, 0, 0, 1], 80), "rr"),
        vec![],
    );
    let b = svc(
        Service::new(key(Protocol::Tcp, [200, 0, 0, 1], 80), "rr"),
        vec![],
    );
    for mut v in [vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]] {
        sort_services(&mut v);
        assert_eq!(v[0].service.key.addr, Ipv4Addr::new(200, 0, 0, 1));
    }
    // within half the space the order is numeric, then by port
    let mut v: Vec<ServiceEntry> = [(3, 80), (1, 443), (1, 80), (2, 1)]
        .iter()
        .map(|&(h, p)| {
            svc(
                Service::new(key(Protocol::Tcp, [10, 0, 0, h], p), "rr"),
                vec![],
            )
        })
        .collect();
    sort_services(&mut v);
    let got: Vec<(u8, u16)> = v
        .iter()
        .map(|s| (last_octet(s.service.key.addr), s.service.key.port))
        .collect();
    assert_eq!(got, vec![(1, 80), (1, 443), (2, 1), (3, 80)]);
}

#[test]
fn largenum_scales() {
    assert_eq!(largenum(0, false), "        0");
    assert_eq!(largenum(99_999_999, false), " 99999999");
    assert_eq!(largenum(100_000_000, false), "  100000K");
    assert_eq!(largenum(1_000_000_000, false), "    1000M");
    assert_eq!(largenum(100_000_000_000, false), "     100G");
    assert_eq!(largenum(100_000_000_000_000, false), "     100T");
    assert_eq!(largenum(123_456_789, true), " 123456789");
    assert_eq!(largenum(12_345_678, true), " 12345678");
}

#[test]
fn service_line_variants() {
    let mut s = Service::new(key(Protocol::Tcp, [10, 1, 1, 1], 0), "wrr");
    s.flags = svc_flags::PERSISTENT | svc_flags::SCHED1 | svc_flags::SCHED3;
    s.timeout = 60;
    s.pe_name = Some("sip".into());
    let t = Table {
        conn_tab_size: 1,
        services: vec![svc(s, vec![])],
    };
    let o = opts(|o| o.numeric = true);
    assert!(list_all(&t, &o, &NoNames)
        .ends_with("TCP  10.1.1.1:0 wrr (flag-1,flag-3) persistent 60 pe sip\n"));
    assert_eq!(
        save(&t, true, &NoNames),
        "-A -t 10.1.1.1:0 -s wrr -p 60 --pe sip -b flag-1,flag-3\n"
    );
}

fn sctp_names() -> FileNames {
    FileNames::from_texts(
        "10.0.0.1 sipvip\n10.0.0.2 rs2\n",
        "sip 5060/sctp\nsip 5060/tcp\nsip-tls 5061/tcp\nhttp 80/tcp\ndomain 53/udp\n",
    )
}

/// An SCTP service with two dests (unsorted) next to a TCP and a UDP one.
fn sctp_table() -> Table {
    let mut masq = dest([10, 0, 0, 3], 5061, FwdMethod::Masq, 1);
    masq.active_conns = 4;
    masq.inact_conns = 5;
    Table {
        conn_tab_size: 4096,
        services: vec![
            svc(
                Service::new(key(Protocol::Sctp, [10, 0, 0, 1], 5060), "rr"),
                vec![masq, dest([10, 0, 0, 2], 5060, FwdMethod::Route, 2)],
            ),
            svc(
                Service::new(key(Protocol::Tcp, [10, 0, 0, 9], 80), "wlc"),
                vec![],
            ),
            svc(
                Service::new(key(Protocol::Udp, [10, 0, 0, 1], 53), "rr"),
                vec![],
            ),
        ],
    }
}

#[test]
fn sctp_list_and_save() {
    let t = sctp_table();
    let n = ListOptions {
        numeric: true,
        ..Default::default()
    };
    assert_eq!(list_all(&t, &n, &sctp_names()), gold("sctp_ln"));
    assert_eq!(
        list_all(&t, &ListOptions::default(), &sctp_names()),
        gold("sctp_l")
    );
    assert_eq!(save(&t, true, &sctp_names()), gold("sctp_save_n"));
    assert_eq!(save(&t, false, &sctp_names()), gold("sctp_save"));
}

#[test]
fn sctp_stats_rates_thresholds() {
    let mut t = sctp_table();
    t.services.retain(|s| s.service.key.proto == Protocol::Sctp);
    let s = &mut t.services[0];
    s.stats = stats([1, 123456789, 99999999, 1234567890123, 999999999999999]);
    s.rates = rates([12, 3456, 789, 123456789, 5]);
    // dests are [10.0.0.3, 10.0.0.2]; sorted output puts .2 first
    s.dests[1].stats = stats([0, 5, 100000000, 7, 8]);
    s.dests[0].stats = stats([3, 4, 5, 6, 123456789012]);
    s.dests[1].rates = rates([1, 2, 3, 1000000000, 4]);
    s.dests[1].dest.u_threshold = 100;
    s.dests[1].dest.l_threshold = 10;
    s.dests[0].persist_conns = 9;
    let o = |f: fn(&mut ListOptions)| {
        let mut o = ListOptions {
            numeric: true,
            ..Default::default()
        };
        f(&mut o);
        o
    };
    assert_eq!(
        list_all(&t, &o(|o| o.stats = true), &NoNames),
        gold("sctp_stats")
    );
    assert_eq!(
        list_all(&t, &o(|o| o.rate = true), &NoNames),
        gold("sctp_rate")
    );
    assert_eq!(
        list_all(&t, &o(|o| o.thresholds = true), &NoNames),
        gold("sctp_thr")
    );
    assert_eq!(
        list_all(&t, &o(|o| o.persistent_conn = true), &NoNames),
        gold("sctp_pc")
    );
}

#[test]
fn sctp_connection_entries() {
    let conn = |c: ([u8; 4], u16), d: ([u8; 4], u16), state, expires_ms| ConnEntry {
        proto: Protocol::Sctp,
        caddr: IpAddr::V4(Ipv4Addr::from(c.0)),
        cport: c.1,
        vaddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        vport: 5060,
        daddr: IpAddr::V4(Ipv4Addr::from(d.0)),
        dport: d.1,
        state,
        fwd: FwdMethod::Masq,
        expires_ms,
        fwmark: 0,
        pe: None,
    };
    let c = vec![
        conn(
            ([192, 0, 2, 7], 40000),
            ([10, 0, 0, 3], 5061),
            ConnState::SctpEstablished,
            899_999,
        ),
        conn(
            ([192, 0, 2, 8], 40001),
            ([10, 0, 0, 2], 5060),
            ConnState::SctpCookieSent,
            60_500,
        ),
        conn(
            ([192, 0, 2, 9], 5060),
            ([10, 0, 0, 2], 5060),
            ConnState::SctpShutdownAckSent,
            3_000,
        ),
    ];
    let o = |numeric: bool, persistent_conn: bool| ListOptions {
        numeric,
        connection: true,
        persistent_conn,
        ..Default::default()
    };
    assert_eq!(
        conns(&c, &o(true, false), &sctp_names()),
        gold("sctp_conn_n")
    );
    assert_eq!(
        conns(&c, &o(false, false), &sctp_names()),
        gold("sctp_conn")
    );
    assert_eq!(
        conns(&c, &o(true, true), &sctp_names()),
        gold("sctp_conn_pc")
    );
}

#[test]
fn sctp_truncation() {
    let host = "averyveryverylonghostname.example.org";
    let n = FileNames::from_texts(&format!("10.0.0.1 {host}\n"), "sip 5060/sctp\n");
    let t = Table {
        conn_tab_size: 4096,
        services: vec![svc(
            Service::new(key(Protocol::Sctp, [10, 0, 0, 1], 5060), "rr"),
            vec![],
        )],
    };
    assert_eq!(
        list_all(&t, &ListOptions::default(), &n),
        gold("sctp_trunc")
    );
    assert!(save(&t, false, &n).contains(&format!("-A --sctp-service {host}:sip -s rr\n")));
}

fn last_octet(a: std::net::IpAddr) -> u8 {
    match a {
        std::net::IpAddr::V4(a) => a.octets()[3],
        std::net::IpAddr::V6(a) => a.octets()[15],
    }
}
