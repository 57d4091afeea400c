//! IPv6 listings and command lines against Debian's ipvsadm 1.31 on
//! Debian's 6.12 kernel: `testdata/ipv6/capture.sh` built a table in the
//! VM (`cargo xtask vm`) and saved every listing, and ipvsadm's answer to
//! malformed IPv6 input, in `testdata/ipv6/6.12/`.
//!
//! The table is rebuilt here from the VM's own output: the services and
//! dests from `-Sn` (parsed by xvs's ipvsadm parser), their order as the
//! kernel dumps them (the sorting under test) and the connection counts
//! from `-Ln --nosort`, the counters from `--stats --exact` /
//! `--rate --exact`, thresholds and persistent counts from their
//! listings. Every format is then compared byte for byte.

use super::*;
use crate::api::{ConnEntry, DestEntry, ServiceEntry, Table};
use crate::ipvsadm::{parse_restore_line, parse_with, Command};
use crate::model::{ConnState, Rates, Service, Stats};
use crate::names::{FileNames, NoNames};
use std::collections::HashMap;

macro_rules! vm {
    ($name:literal) => {
        include_str!(concat!("../testdata/ipv6/6.12/", $name))
    };
}

/// The host names capture.sh adds to the VM's /etc/hosts before the
/// listings (long ones: an IPv4 name is cut, an IPv6 one never).
const HOSTS: &str = "2001:db8::80 a-long-virtual-service-name.example.org\n\
                     2001:db8::a0a0 rs-a0a0.example.org\n\
                     2001:db8::c1 tun6-dest-with-a-long-name.example.org\n\
                     203.0.113.7 a-very-long-real-server-name.example.net\n\
                     192.0.2.1 a-long-ipv4-virtual-service.example.net\n";

/// Those hosts, and the service names the VM's /etc/services (Debian
/// 12's netbase) gives the ports in the table.
fn names() -> FileNames {
    FileNames::from_texts(
        HOSTS,
        "domain 53/tcp\ndomain 53/udp\nhttp 80/tcp www\nhttps 443/tcp\nhttps 443/udp\n\
         sip 5060/tcp\nsip 5060/udp\nsip-tls 5061/tcp\nsip-tls 5061/udp\nmdns 5353/udp\n\
         http-alt 8080/tcp webcache\n",
    )
}

/// A service as the numeric listings name it: `TCP  [2001:db8::80]:80`,
/// `FWM  1 IPv6`.
fn svc_label(key: &ServiceKey) -> String {
    if key.is_fwmark() {
        let v6 = if key.is_ipv6() { " IPv6" } else { "" };
        return format!("FWM  {}{v6}", key.fwmark as i32);
    }
    format!("{:<4} {}", key.proto.name(), addr_label(key.addr, key.port))
}

fn addr_label(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// The label of a listing line and the fields after it: a service line
/// (`TCP  [..]:80 rr ...`, `FWM  1 IPv6 rr`) or a dest line (`  -> ..`).
fn split_line(line: &str) -> (bool, String, Vec<String>) {
    let w: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    if line.starts_with("  -> ") {
        return (false, w[1].clone(), w[2..].to_vec());
    }
    if w[0] == "FWM" {
        if w.get(2).map(String::as_str) == Some("IPv6") {
            return (true, format!("FWM  {} IPv6", w[1]), w[3..].to_vec());
        }
        return (true, format!("FWM  {}", w[1]), w[2..].to_vec());
    }
    (true, format!("{:<4} {}", w[0], w[1]), w[2..].to_vec())
}

/// The listing's body: service and dest lines, after the titles.
fn body(text: &str) -> impl Iterator<Item = (bool, String, Vec<String>)> + '_ {
    text.lines()
        .filter(|l| {
            !l.starts_with("IP Virtual Server")
                && !l.starts_with("Prot ")
                && !l.starts_with("  -> RemoteAddress")
        })
        .map(split_line)
}

/// Calls `f` with each dest line's service label, dest label and fields.
fn each_dest(text: &str, mut f: impl FnMut(&str, &str, &[String])) {
    let mut svc = String::new();
    for (is_svc, label, rest) in body(text) {
        if is_svc {
            svc = label;
        } else {
            f(&svc, &label, &rest);
        }
    }
}

fn each_service(text: &str, mut f: impl FnMut(&str, &[String])) {
    for (is_svc, label, rest) in body(text) {
        if is_svc {
            f(&label, &rest);
        }
    }
}

fn n(s: &str) -> u64 {
    s.parse().unwrap()
}

fn stats(v: &[String]) -> Stats {
    Stats {
        conns: n(&v[0]),
        inpkts: n(&v[1]),
        outpkts: n(&v[2]),
        inbytes: n(&v[3]),
        outbytes: n(&v[4]),
    }
}

fn rates(v: &[String]) -> Rates {
    Rates {
        cps: n(&v[0]),
        inpps: n(&v[1]),
        outpps: n(&v[2]),
        inbps: n(&v[3]),
        outbps: n(&v[4]),
    }
}

/// The VM's table, services and dests in the kernel's (`--nosort`) order.
fn table() -> Table {
    let mut all = table_from_sn();
    let mut services: Vec<ServiceEntry> = Vec::new();
    each_service(vm!("Ln_nosort.out"), |label, _| {
        let mut e = all.remove(label).unwrap_or_else(|| panic!("{label}"));
        let saved = std::mem::take(&mut e.dests);
        each_dest(vm!("Ln_nosort.out"), |s, d, rest| {
            if s == label {
                let mut de = saved
                    .iter()
                    .find(|x| addr_label(x.dest.addr, x.dest.port) == d)
                    .unwrap()
                    .clone();
                de.active_conns = n(&rest[2]) as u32;
                de.inact_conns = n(&rest[3]) as u32;
                e.dests.push(de);
            }
        });
        assert_eq!(e.dests.len(), saved.len(), "{label}");
        services.push(e);
    });
    assert!(all.is_empty(), "{:?}", all.keys());
    let find = |services: &mut [ServiceEntry], s: &str| -> usize {
        services
            .iter()
            .position(|e| svc_label(&e.service.key) == s)
            .unwrap()
    };
    let mut services_mut = services;
    let dest_mut =
        |services: &mut [ServiceEntry], s: &str, d: &str, f: &mut dyn FnMut(&mut DestEntry)| {
            let i = find(services, s);
            let de = services[i]
                .dests
                .iter_mut()
                .find(|x| addr_label(x.dest.addr, x.dest.port) == d)
                .unwrap();
            f(de);
        };
    each_service(vm!("stats_exact.out"), |s, v| {
        let i = find(&mut services_mut, s);
        services_mut[i].stats = stats(v);
    });
    each_service(vm!("rate_exact.out"), |s, v| {
        let i = find(&mut services_mut, s);
        services_mut[i].rates = rates(v);
    });
    each_dest(vm!("stats_exact.out"), |s, d, v| {
        dest_mut(&mut services_mut, s, d, &mut |de| de.stats = stats(v))
    });
    each_dest(vm!("rate_exact.out"), |s, d, v| {
        dest_mut(&mut services_mut, s, d, &mut |de| de.rates = rates(v))
    });
    each_dest(vm!("thresholds.out"), |s, d, v| {
        dest_mut(&mut services_mut, s, d, &mut |de| {
            de.dest.u_threshold = n(&v[0]) as u32;
            de.dest.l_threshold = n(&v[1]) as u32;
        })
    });
    each_dest(vm!("persistent.out"), |s, d, v| {
        dest_mut(&mut services_mut, s, d, &mut |de| {
            de.persist_conns = n(&v[1]) as u32
        })
    });
    Table {
        conn_tab_size: 4096,
        services: services_mut,
    }
}

/// `t` with the rates of `--rate` listing `text`.
fn with_rates(t: &Table, text: &str) -> Table {
    let mut t = t.clone();
    each_service(text, |s, v| {
        let e = t
            .services
            .iter_mut()
            .find(|e| svc_label(&e.service.key) == s)
            .unwrap();
        e.rates = rates(v);
    });
    each_dest(text, |s, d, v| {
        let e = t
            .services
            .iter_mut()
            .find(|e| svc_label(&e.service.key) == s)
            .unwrap();
        let de = e
            .dests
            .iter_mut()
            .find(|x| addr_label(x.dest.addr, x.dest.port) == d)
            .unwrap();
        de.rates = rates(v);
    });
    t
}

/// The services and dests of `-Sn`, by label.
fn table_from_sn() -> HashMap<String, ServiceEntry> {
    let mut m: HashMap<String, ServiceEntry> = HashMap::new();
    for (_, argv) in crate::ipvsadm::restore_lines(vm!("Sn.out"), "ipvsadm") {
        let argv: Vec<String> = argv
            .into_iter()
            .map(|w| if w == "-1" { "4294967295".into() } else { w })
            .collect();
        match parse_restore_line(&argv, &NoNames).unwrap() {
            Command::AddService(s) => {
                m.insert(
                    svc_label(&s.key),
                    ServiceEntry {
                        service: s,
                        stats: Stats::default(),
                        rates: Rates::default(),
                        dests: Vec::new(),
                    },
                );
            }
            Command::AddDest { key, dest } => {
                m.get_mut(&svc_label(&key)).unwrap().dests.push(DestEntry {
                    dest,
                    active_conns: 0,
                    inact_conns: 0,
                    persist_conns: 0,
                    stats: Stats::default(),
                    rates: Rates::default(),
                })
            }
            c => panic!("{c:?}"),
        }
    }
    m
}

fn opts(words: &str) -> ListOptions {
    let mut argv = vec!["ipvsadm".to_string(), "-L".to_string()];
    argv.extend(words.split_whitespace().map(str::to_string));
    match parse_with(&argv, &NoNames).unwrap() {
        Command::List(l) => l,
        c => panic!("{c:?}"),
    }
}

#[track_caller]
fn same(got: &str, want: &str) {
    if got != want {
        for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            assert_eq!(g, w, "first difference at line {}", i + 1);
        }
        assert_eq!(got, want);
    }
}

#[test]
fn kernel_order_is_not_sorted() {
    // The test would prove nothing if the kernel listed in sorted order.
    assert_ne!(vm!("Ln_nosort.out"), vm!("Ln.out"));
}

#[test]
fn list_numeric_and_names() {
    let t = table();
    same(&list_all(&t, &opts("-n"), &names()), vm!("Ln.out"));
    same(&list_all(&t, &opts(""), &names()), vm!("L.out"));
    same(
        &list_all(&t, &opts("-n --nosort"), &names()),
        vm!("Ln_nosort.out"),
    );
}

#[test]
fn list_stats_rate_exact() {
    let t = table();
    same(
        &list_all(&t, &opts("-n --stats"), &names()),
        vm!("stats.out"),
    );
    // The estimator moved between the two --rate listings: each has its
    // own figures (all below 10^8, so the scaled listing is exact too).
    same(
        &list_all(
            &with_rates(&t, vm!("rate.out")),
            &opts("-n --rate"),
            &names(),
        ),
        vm!("rate.out"),
    );
    same(
        &list_all(&t, &opts("-n --stats --exact"), &names()),
        vm!("stats_exact.out"),
    );
    same(
        &list_all(&t, &opts("-n --rate --exact"), &names()),
        vm!("rate_exact.out"),
    );
    same(
        &list_all(&t, &opts("--stats"), &names()),
        vm!("L_stats.out"),
    );
}

#[test]
fn list_thresholds_persistent_tun_info() {
    let t = table();
    same(
        &list_all(&t, &opts("-n --thresholds"), &names()),
        vm!("thresholds.out"),
    );
    same(
        &list_all(&t, &opts("-n --persistent-conn"), &names()),
        vm!("persistent.out"),
    );
    same(
        &list_all(&t, &opts("-n --tun-info"), &names()),
        vm!("tuninfo.out"),
    );
}

#[test]
fn save_numeric_and_names() {
    let t = table();
    same(&save(&t, true, &names()), vm!("Sn.out"));
    same(&save(&t, false, &names()), vm!("S.out"));
}

#[test]
fn list_one_service() {
    let t = table();
    for (words, want) in [
        ("-n -t [2001:db8::80]:80", vm!("Lone.out")),
        ("-n -f 1 -6", vm!("Lone_fwm.out")),
        ("-n -f 1", vm!("Lone_fwm4.out")),
        ("-n --stats -u [2001:db8::53]:53", vm!("Lone_stats.out")),
        ("-n -t 2001:db8::2", vm!("Lone_bare.out")),
    ] {
        let o = opts(words);
        let key = o.service.unwrap();
        let se = find_service(&t, &key).unwrap_or_else(|| panic!("{words}"));
        same(&list_service(se, &o, &names()), want);
    }
}

/// The connection rows of a `-Lc` listing, as entries.
fn conn_entries(text: &str) -> Vec<ConnEntry> {
    let addr = |s: &str| -> (IpAddr, u16) {
        let (a, p) = s.rsplit_once(':').unwrap();
        let a = a.trim_start_matches('[').trim_end_matches(']');
        let a = HOSTS
            .lines()
            .find_map(|l| {
                let (ip, name) = l.split_once(' ').unwrap();
                (name == a).then_some(ip)
            })
            .unwrap_or(a);
        let port = match p {
            "http" => 80,
            "https" => 443,
            p => p.parse().unwrap(),
        };
        (a.parse().unwrap(), port)
    };
    text.lines()
        .skip(2)
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let (m, s) = w[1].split_once(':').unwrap();
            let state = match w[2] {
                "NONE" => ConnState::None,
                "SYN_RECV" => ConnState::SynRecv,
                "ESTABLISHED" => ConnState::Established,
                "SYN_SENT" => ConnState::SynSent,
                "CLOSE" => ConnState::Close,
                "FIN_WAIT" => ConnState::FinWait,
                "TIME_WAIT" => ConnState::TimeWait,
                s => panic!("{s}"),
            };
            let (caddr, cport) = addr(w[3]);
            let (vaddr, vport) = addr(w[4]);
            let (daddr, dport) = addr(w[5]);
            // A fwmark template (`IP`): the mark is the virtual address.
            let fwmark = match (w[0], vaddr) {
                ("IP", IpAddr::V6(a)) => (u128::from(a) >> 96) as u32,
                ("IP", IpAddr::V4(a)) => u32::from(a),
                _ => 0,
            };
            ConnEntry {
                proto: Protocol::Tcp,
                caddr,
                cport,
                vaddr,
                vport,
                daddr,
                dport,
                state,
                fwd: crate::model::FwdMethod::Masq,
                expires_ms: (n(m) * 60 + n(s)) * 1000 + 999,
                fwmark,
                pe: None,
            }
        })
        .collect()
}

#[test]
fn list_connections() {
    for (words, want) in [
        ("-n -c", vm!("Lnc.out")),
        ("-c", vm!("Lc.out")),
        ("-n -c --persistent-conn", vm!("Lnc_pc.out")),
        ("-c --persistent-conn", vm!("Lc_pc.out")),
    ] {
        let c = conn_entries(want);
        assert!(c.len() >= 3, "{words}");
        same(&conns(&c, &opts(words), &names()), want);
    }
}

/// The cases of capture.sh (`run NAME ipvsadm ARGS...`) named `prefix*`:
/// (name, argv).
fn cases(prefix: &str) -> Vec<(String, Vec<String>)> {
    include_str!("../testdata/ipv6/capture.sh")
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() > 3 && w[0] == "run" && w[1].starts_with(prefix) && w[2] == "$A").then(|| {
                let mut argv = vec!["ipvsadm".to_string()];
                argv.extend(w[3..].iter().map(|s| s.to_string()));
                (w[1].to_string(), argv)
            })
        })
        .collect()
}

fn vm_case(name: &str) -> (String, i32) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/ipv6/6.12/");
    let err = std::fs::read_to_string(format!("{dir}{name}.err")).unwrap();
    let rc = std::fs::read_to_string(format!("{dir}{name}.rc")).unwrap();
    (err, rc.trim().parse().unwrap())
}

/// Every malformed or odd command line of capture.sh: where ipvsadm
/// itself refused it (exit 2), xvs's parser gives the same text and
/// status; where the kernel answered (exit 0, or 255 with the kernel's
/// error), the line parses. The kernel's own checks are xvsd's.
#[test]
fn command_lines_as_ipvsadm() {
    let mut checked = 0;
    for prefix in ["e", "s"] {
        for (name, argv) in cases(prefix) {
            let (err, rc) = vm_case(&name);
            let got = parse_with(&argv, &names());
            if rc == 2 {
                let e = got.expect_err(&name);
                assert_eq!(format!("{e}\n"), err, "{name}");
                assert_eq!(e.exit_code(), 2, "{name}");
            } else {
                assert!(got.is_ok(), "{name}: {got:?} (ipvsadm: {rc} {err})");
            }
            checked += 1;
        }
    }
    assert!(checked > 90, "{checked}");
}

/// What the odd-but-accepted lines mean, as the VM's `-Sn` afterwards
/// shows them: the `-M` order rules, `atoi`, bare addresses.
#[test]
fn accepted_lines_mean_what_ipvsadm_meant() {
    let svc = |args: &str| -> Service {
        let mut argv = vec!["ipvsadm".to_string()];
        argv.extend(args.split_whitespace().map(str::to_string));
        match parse_with(&argv, &names()).unwrap() {
            Command::AddService(s) | Command::EditService(s) => s,
            c => panic!("{c:?}"),
        }
    };
    let saved = |s: &Service| {
        let t = Table {
            conn_tab_size: 4096,
            services: vec![ServiceEntry {
                service: s.clone(),
                stats: Stats::default(),
                rates: Rates::default(),
                dests: Vec::new(),
            }],
        };
        save(&t, true, &NoNames)
    };
    let after = vm!("Sn_after.out");
    for args in [
        "-A -t [2001:db8::7]:80 -s rr -p -M 64abc",
        "-A -M 64 -t [2001:db8::8]:80 -s rr -p",
        "-A -f 5 -M 64 -6 -s rr -p",
        "-A -f 6 -6 -M 56 -s rr -p",
        "-A -t [2001:db8::9]:80 -s rr -M 64",
        "-A -f 10 -M 255.255.0.0 -6 -s rr -p",
        "-A -t [2001:DB8::A]:80 -s rr",
        "-A -f 7 -6 -6 -s rr",
        "-A -f 8 -s rr -6",
        "-A -t [::]:80 -s rr",
        "-A -t [ff02::1]:80 -s rr",
        "-E -t [2001:db8::80]:443 -s rr -p 10 -M 32",
    ] {
        let line = saved(&svc(args));
        assert!(after.contains(&line), "{args}: {line}");
    }
}

/// `-R` of ipvsadm's own `-S` output stops at `-f -1 -6` (its %d), as
/// ipvsadm did in the VM; errors in restore input are the command line's.
#[test]
fn restore_of_saved_table() {
    let (err, rc) = vm_case("r02");
    let first = vm!("restore_in.txt").lines().next().unwrap();
    let (_, argv) = crate::ipvsadm::restore_lines(first, "ipvsadm")
        .next()
        .unwrap();
    let e = parse_restore_line(&argv, &NoNames).unwrap_err();
    assert_eq!((format!("{e}\n"), e.exit_code()), (err, rc));
    for (file, case, bad) in [
        (vm!("restore_bad.txt"), "r05", 2),
        (vm!("restore_bad2.txt"), "r08", 2),
        (vm!("restore_bad3.txt"), "r11", 2),
    ] {
        let (err, rc) = vm_case(case);
        let lines: Vec<_> = crate::ipvsadm::restore_lines(file, "ipvsadm").collect();
        for (i, (_, argv)) in lines.iter().enumerate() {
            let got = parse_restore_line(argv, &NoNames);
            if i + 1 == bad {
                let e = got.unwrap_err();
                assert_eq!(
                    (format!("{e}\n"), e.exit_code()),
                    (err.clone(), rc),
                    "{case}"
                );
                break;
            }
            assert!(got.is_ok(), "{case} line {}", i + 1);
        }
    }
    // What the VM kept of each input: the lines before the bad one.
    assert_eq!(vm!("r03.out"), "");
    assert_eq!(vm!("r06.out"), "-A -t [2001:db8::1]:80 -s rr\n");
    assert_eq!(vm!("r09.out"), "-A -f 3 -6 -s rr -p 10 -M 64\n");
    assert_eq!(vm!("r12.out"), "-A -t [2001:db8::1]:80 -s rr\n");
}
