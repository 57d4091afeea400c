//! Listings of fwmark services (docs/research/fwmark.md §B.3). The
//! expected texts were made with Python's C-compatible `%` operator and
//! ipvsadm.c's format strings, the order with glibc's merge sort by hand.

use super::*;
use crate::api::{ConnEntry, DestEntry, ServiceEntry, Table};
use crate::model::{ConnState, Dest, Rates, Service, Stats};
use crate::names::FileNames;
use std::net::Ipv4Addr;

const LN: &str = "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nFWM  -1 wrr ops\nTCP  10.1.1.1:80 wlc\n  -> 10.2.2.2:80                  Masq    1      0          0         \nFWM  1 rr persistent 300 mask 255.255.255.0\n  -> 10.2.2.2:80                  Masq    1      0          0         \n  -> 10.2.2.3:0                   Route   2      0          0         \n";
const L: &str = "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nFWM  -1 wrr ops\nTCP  vip:http wlc\n  -> rs2:http                     Masq    1      0          0         \nFWM  1 rr persistent 300 mask 255.255.255.0\n  -> rs2:80                       Masq    1      0          0         \n  -> 10.2.2.3:0                   Route   2      0          0         \n";
const SAVE: &str = "-A -f -1 -s wrr -o\n-A -t 10.1.1.1:80 -s wlc\n-a -t 10.1.1.1:80 -r 10.2.2.2:80 -m -w 1\n-A -f 1 -s rr -p 300 -M 255.255.255.0\n-a -f 1 -r 10.2.2.2:80 -m -w 1\n-a -f 1 -r 10.2.2.3:0 -g -w 2\n";
const STATS: &str = "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\nFWM  -1                                  0        0        0        0        0\nTCP  10.1.1.1:80                         0        0        0        0        0\n  -> 10.2.2.2:80                         0        0        0        0        0\nFWM  1                                   1        2        3        4        5\n  -> 10.2.2.2:80                         0        0        0        0        0\n  -> 10.2.2.3:0                          0        0        0        0        0\n";
const CONNS: &str = "IPVS connection entries\npro expire state       source             virtual            destination\nIP  04:58  NONE        vip:0              0.0.0.1:0          rs2:0\nTCP 14:59  ESTABLISHED 10.0.0.9:40000     vip:http           rs2:http\n";

fn names() -> FileNames {
    FileNames::from_texts("10.1.1.1 vip\n10.2.2.2 rs2\n", "http 80/tcp\nhttp 80/udp\n")
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

fn table() -> Table {
    let tcp = ServiceKey::new(Protocol::Tcp, Ipv4Addr::new(10, 1, 1, 1), 80);
    let mut fwm1 = Service::new(ServiceKey::fwmark(1), "rr");
    fwm1.flags = svc_flags::PERSISTENT;
    fwm1.timeout = 300;
    fwm1.netmask = Ipv4Addr::new(255, 255, 255, 0).into();
    let mut fwm_max = Service::new(ServiceKey::fwmark(u32::MAX), "wrr");
    fwm_max.flags = svc_flags::ONEPACKET;
    let mut s1 = svc(
        fwm1,
        vec![
            dest([10, 2, 2, 3], 0, FwdMethod::Route, 2),
            dest([10, 2, 2, 2], 80, FwdMethod::Masq, 1),
        ],
    );
    s1.stats = Stats {
        conns: 1,
        inpkts: 2,
        outpkts: 3,
        inbytes: 4,
        outbytes: 5,
    };
    Table {
        conn_tab_size: 4096,
        services: vec![
            svc(
                Service::new(tcp, "wlc"),
                vec![dest([10, 2, 2, 2], 80, FwdMethod::Masq, 1)],
            ),
            s1,
            svc(fwm_max, vec![]),
        ],
    }
}

#[test]
fn list_fwmark_services() {
    let t = table();
    let n = ListOptions {
        numeric: true,
        ..ListOptions::default()
    };
    assert_eq!(list_all(&t, &n, &names()), LN);
    // Without -n host names resolve, but a fwmark service's dest ports
    // stay numbers (ipvsadm sees protocol 0).
    assert_eq!(list_all(&t, &ListOptions::default(), &names()), L);
    assert_eq!(save(&t, true, &names()), SAVE);
    let st = ListOptions {
        numeric: true,
        stats: true,
        ..ListOptions::default()
    };
    assert_eq!(list_all(&t, &st, &names()), STATS);
    let rate = ListOptions {
        numeric: true,
        rate: true,
        ..ListOptions::default()
    };
    assert!(list_all(&t, &rate, &names()).contains(&format!("\n{:<33}{:>9}", "FWM  1", 0)));
}

#[test]
fn list_one_fwmark_service() {
    let t = table();
    let se = find_service(&t, &ServiceKey::fwmark(1)).unwrap();
    let n = ListOptions {
        numeric: true,
        ..ListOptions::default()
    };
    let out = list_service(se, &n, &names());
    assert!(out.starts_with("Prot LocalAddress:Port Scheduler Flags\n"));
    assert!(out.contains("\nFWM  1 rr persistent 300 mask 255.255.255.0\n"));
    assert!(!out.contains("FWM  -1"));
    assert!(find_service(&t, &ServiceKey::fwmark(2)).is_none());
}

fn marks(keys: &[u32]) -> Vec<u32> {
    let mut v: Vec<ServiceEntry> = keys
        .iter()
        .map(|&m| {
            let key = if m == 0 {
                ServiceKey::new(Protocol::Tcp, Ipv4Addr::new(10, 0, 0, 1), 80)
            } else {
                ServiceKey::fwmark(m)
            };
            svc(Service::new(key, "rr"), vec![])
        })
        .collect();
    sort_services(&mut v);
    v.iter().map(|s| s.service.key.fwmark).collect()
}

#[test]
fn sort_wraps_the_mark_difference() {
    const H: u32 = 1 << 31;
    // ipvs_cmp_services: `s1->fwmark - s2->fwmark` read as an int.
    assert_eq!(
        marks(&[0, 1, H, H + 1, u32::MAX]),
        [0, 1, H, H + 1, u32::MAX]
    );
    assert_eq!(
        marks(&[u32::MAX, H + 1, H, 1, 0]),
        [H, H + 1, u32::MAX, 0, 1]
    );
    // An address service sorts after a mark above 2^31, before one below.
    assert_eq!(marks(&[0, u32::MAX]), [u32::MAX, 0]);
    // 0 - 2^31 and 2^31 - 0 are both INT_MIN: each is "less", so the
    // input order stays.
    assert_eq!(marks(&[H, 0]), [H, 0]);
    assert_eq!(marks(&[0, H]), [0, H]);
}

#[test]
fn fwmark_template_rows() {
    let conn =
        |fwmark, proto, c: ([u8; 4], u16), v: ([u8; 4], u16), d: ([u8; 4], u16), state, ms| {
            ConnEntry {
                proto,
                caddr: c.0.into(),
                cport: c.1,
                vaddr: v.0.into(),
                vport: v.1,
                daddr: d.0.into(),
                dport: d.1,
                state,
                fwd: FwdMethod::Masq,
                expires_ms: ms,
                fwmark,
                pe: None,
            }
        };
    let rows = vec![
        // The template: IPVS's <IPPROTO_IP, caddr, 0, mark, 0>.
        conn(
            1,
            Protocol::Tcp,
            ([10, 1, 1, 1], 0),
            ([0, 0, 0, 1], 0),
            ([10, 2, 2, 2], 0),
            ConnState::None,
            298_000,
        ),
        conn(
            0,
            Protocol::Tcp,
            ([10, 0, 0, 9], 40000),
            ([10, 1, 1, 1], 80),
            ([10, 2, 2, 2], 80),
            ConnState::Established,
            899_500,
        ),
    ];
    assert_eq!(conns(&rows, &ListOptions::default(), &names()), CONNS);
    let n = ListOptions {
        numeric: true,
        ..ListOptions::default()
    };
    let out = conns(&rows, &n, &names());
    assert!(
        out.contains("\nIP  04:58  NONE        10.1.1.1:0         0.0.0.1:0          10.2.2.2:0\n")
    );
    // A connection carries no `fwmark` in JSON, and older daemons'
    // entries without it read as 0.
    let json = serde_json::to_string(&rows[1]).unwrap();
    assert!(!json.contains("fwmark"));
    let c: ConnEntry = serde_json::from_str(&json).unwrap();
    assert_eq!(c, rows[1]);
    let t = serde_json::to_string(&rows[0]).unwrap();
    assert!(t.contains("\"fwmark\":1"));
}

/// Every order of `v`, for the sort's input-order (in)dependence.
fn permutations(v: &[u32]) -> Vec<Vec<u32>> {
    if v.len() <= 1 {
        return vec![v.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..v.len() {
        let mut rest = v.to_vec();
        let x = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, x);
            out.push(p);
        }
    }
    out
}

#[test]
fn marks_within_half_the_circle_sort_the_same_from_any_order() {
    // The oracle corpus's marks: within 2^31 of each other and of 0, the
    // wrapped difference is an order, so the kernel's dump order (a hash
    // xvs cannot know) does not matter.
    for p in permutations(&[0, 1, 2, 3_000_000_000, 3_500_000_000, u32::MAX]) {
        assert_eq!(
            marks(&p),
            [3_000_000_000, 3_500_000_000, u32::MAX, 0, 1, 2],
            "{p:?}"
        );
    }
}

#[test]
fn saved_fwmark_lines_restore_to_the_same_services() {
    use crate::ipvsadm::{parse_restore_line, restore_lines, Command};
    let mut t = table();
    // `-f -1` (a mark of 2^31 or more) does not read back, in ipvsadm
    // either: leave it out.
    t.services.retain(|s| s.service.key.fwmark != u32::MAX);
    let text = save(&t, true, &names());
    let cmds: Vec<Command> = restore_lines(&text, "xvsadm")
        .map(|(_, argv)| parse_restore_line(&argv, &names()).unwrap())
        .collect();
    let want = &t.services[1];
    assert_eq!(cmds[2], Command::AddService(want.service.clone()));
    let dests: Vec<(u16, FwdMethod)> = cmds[3..]
        .iter()
        .map(|c| match c {
            Command::AddDest { key, dest } => {
                assert_eq!(*key, ServiceKey::fwmark(1));
                (dest.port, dest.fwd)
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(dests, [(80, FwdMethod::Masq), (0, FwdMethod::Route)]);
}
