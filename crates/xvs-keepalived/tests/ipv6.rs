//! IPv6 in keepalived.conf as keepalived 2.2 reads it (docs/research/ipv6.md
//! §7): bare addresses with the port a word of its own, `ip_family`, the
//! family of a fwmark service, IPv6 `persistence_granularity`, group ranges
//! and checkers' IPv6 addresses.

use std::net::IpAddr;
use std::time::Duration;
use xvs_core::model::{prefix_mask, FwdMethod, Protocol, ServiceKey};
use xvs_keepalived::*;

fn parse(text: &str) -> Config {
    parse_str_with(text, "t.conf", &Options::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn errors(text: &str) -> Vec<String> {
    match parse_str_with(text, "t.conf", &Options::default()) {
        Ok(c) => panic!("parsed: {c:?}"),
        Err(e) => e.errors.iter().map(|e| e.to_string()).collect(),
    }
}

fn warnings(c: &Config) -> Vec<String> {
    c.warnings
        .iter()
        .map(|w| format!("{}:{}: {}", w.location.file, w.location.line, w.message))
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn an_ipv6_virtual_server_with_its_servers_and_checkers() {
    let c = parse(
        "virtual_server 2001:db8::1 443 {\n\
         lvs_sched rr\n lvs_method DR\n protocol TCP\n persistence_timeout 60\n\
         persistence_granularity 64\n\
         sorry_server 2001:db8::99 443\n\
         real_server 2001:db8::10 443 {\n weight 3\n\
         TCP_CHECK {\n connect_ip 2001:db8::11\n connect_port 8443\n bindto 2001:db8::2\n }\n\
         HTTP_GET {\n url {\n path /\n }\n bindto 2001:db8::2\n }\n\
         }\n}\n",
    );
    assert_eq!(warnings(&c), Vec::<String>::new());
    let vs = &c.virtual_servers[0];
    assert_eq!((vs.addr, vs.port), (ip("2001:db8::1"), 443));
    let svc = vs.to_service();
    assert_eq!(
        svc.key,
        ServiceKey::new(Protocol::Tcp, ip("2001:db8::1"), 443)
    );
    assert_eq!(svc.netmask, prefix_mask(ip("::"), 64));
    assert_eq!(svc.netmask_prefix(), 64);
    let rs = &vs.real_servers[0];
    let d = rs.to_dest(vs);
    assert_eq!(
        (d.addr, d.port, d.weight, d.fwd),
        (ip("2001:db8::10"), 443, 3, FwdMethod::Route)
    );
    let tcp = rs.checkers[0].conn.as_ref().unwrap();
    assert_eq!(
        (tcp.connect_ip, tcp.connect_port, tcp.bindto),
        (ip("2001:db8::11"), 8443, Some(ip("2001:db8::2")))
    );
    let http = rs.checkers[1].conn.as_ref().unwrap();
    assert_eq!(
        (http.connect_ip, http.connect_port, http.bindto),
        (ip("2001:db8::10"), 443, Some(ip("2001:db8::2")))
    );
    let sorry = vs.sorry_server.as_ref().unwrap().to_dest();
    assert_eq!((sorry.addr, sorry.port), (ip("2001:db8::99"), 443));
}

#[test]
fn the_family_of_a_fwmark_service() {
    let c = parse(
        "virtual_server fwmark 1 {\n ip_family inet6\n lvs_sched rr\n lvs_method TUN\n\
         real_server 10.0.0.2 { }\n}\n\
         virtual_server fwmark 2 {\n lvs_sched rr\n real_server 2001:db8::10 80 { }\n}\n\
         virtual_server fwmark 3 {\n lvs_sched rr\n lvs_method TUN\n real_server 2001:db8::10 { }\n}\n\
         virtual_server fwmark 4 {\n lvs_sched rr\n lvs_method TUN\n\
         real_server 2001:db8::10 { }\n real_server 10.0.0.2 { }\n}\n\
         virtual_server fwmark 5 {\n lvs_sched rr\n persistence_granularity 48\n\
         lvs_method TUN\n real_server 10.0.0.2 { }\n}\n\
         virtual_server fwmark 6 {\n lvs_sched rr\n lvs_method NAT\n real_server 10.0.0.2 { }\n}\n",
    );
    let keys: Vec<ServiceKey> = c.virtual_servers.iter().map(|v| v.key()).collect();
    assert_eq!(
        keys,
        [
            // ip_family; a tunnelled server of the other family is kept.
            ServiceKey::fwmark6(1),
            // From the first non-tunnelled real server.
            ServiceKey::fwmark6(2),
            // All servers tunnelled: theirs when they agree, else IPv4.
            ServiceKey::fwmark6(3),
            ServiceKey::fwmark(4),
            // persistence_granularity without '.': IPv6.
            ServiceKey::fwmark6(5),
            ServiceKey::fwmark(6),
        ]
    );
    assert_eq!(c.virtual_servers[0].addr, ip("::"));
    assert_eq!(c.virtual_servers[0].real_servers[0].addr, ip("10.0.0.2"));
    assert_eq!(
        c.virtual_servers[4].to_service().netmask_prefix(),
        48,
        "IPv6 granularity is a prefix length"
    );
}

#[test]
fn servers_of_the_other_family_are_skipped_as_keepalived_does() {
    let c = parse(
        "virtual_server 2001:db8::1 80 {\n lvs_sched rr\n lvs_method NAT\n protocol TCP\n\
         sorry_server 10.0.0.9 80\n\
         real_server 10.0.0.2 80 { }\n real_server 2001:db8::10 80 { }\n}\n\
         virtual_server fwmark 2 {\n lvs_sched rr\n real_server 10.0.0.2 { }\n\
         real_server 2001:db8::10 { }\n}\n",
    );
    assert_eq!(
        warnings(&c),
        [
            "t.conf:5: Address family of virtual server and sorry server 10.0.0.9 don't match - skipping sorry server.",
            "t.conf:6: Address family of virtual server and real server 10.0.0.2 don't match - skipping real server.",
            "t.conf:9: no forwarding method set - using NAT (as keepalived)",
            "t.conf:12: Address family of virtual server and real server 2001:db8::10 don't match - skipping real server.",
        ]
    );
    let v = &c.virtual_servers;
    assert_eq!(v[0].real_servers.len(), 1);
    assert!(v[0].sorry_server.is_none());
    assert_eq!(v[1].key(), ServiceKey::fwmark(2));
    assert_eq!(v[1].real_servers.len(), 1);
}

#[test]
fn ipv6_group_entries() {
    let c = parse(
        "virtual_server_group G {\n ae00::2-9 80\n ae00::1 80\n ae00::a-ff 81\n\
         2001:db8::1:fffe-2001:db8::1:ffff 82\n2001:db8::/126 83\n fwmark 9 inet6\n}\n\
         virtual_server group G {\n lvs_sched rr\n lvs_method DR\n protocol TCP\n\
         real_server 2001:db8::10 { }\n}\n",
    );
    let keys: Vec<String> = c
        .virtual_servers
        .iter()
        .map(|v| match v.addr {
            _ if v.fwmark != 0 => format!("{} {}", v.fwmark, v.addr),
            a => format!("[{a}]:{}", v.port),
        })
        .collect();
    let mut want: Vec<String> = (2..=9).map(|i| format!("[ae00::{i:x}]:80")).collect();
    want.push("[ae00::1]:80".into());
    want.extend((0xa..=0xff).map(|i| format!("[ae00::{i:x}]:81")));
    want.push("[2001:db8::1:fffe]:82".into());
    want.push("[2001:db8::1:ffff]:82".into());
    want.extend((0..4).map(|i| format!("[2001:db8::{i}]:83").replace("::0]", "::]")));
    want.push("9 ::".into());
    assert_eq!(keys, want);
    assert_eq!(
        c.virtual_servers.last().unwrap().key(),
        ServiceKey::fwmark6(9)
    );
    // DR: each entry's port.
    assert_eq!(c.virtual_servers[0].real_servers[0].port, 80);
}

#[test]
fn a_group_of_both_families() {
    // Valid when every real server is tunnelled (keepalived's man page):
    // each entry gets them all.
    let c = parse(
        "virtual_server_group G {\n 10.0.0.1 80\n 2001:db8::1 80\n fwmark 3 inet6\n}\n\
         virtual_server group G {\n lvs_sched rr\n lvs_method TUN\n protocol TCP\n\
         real_server 10.0.1.1 80 { }\n real_server 2001:db8::10 80 { }\n}\n",
    );
    let v = &c.virtual_servers;
    assert_eq!(
        v.iter()
            .map(|v| (v.key(), v.real_servers.len()))
            .collect::<Vec<_>>(),
        [
            (ServiceKey::new(Protocol::Tcp, ip("10.0.0.1"), 80), 2),
            (ServiceKey::new(Protocol::Tcp, ip("2001:db8::1"), 80), 2),
            (ServiceKey::fwmark6(3), 2),
        ]
    );
    // With NAT the first server decides the family (keepalived's
    // rs_end_handler), and an entry of the other family has none.
    let c = parse(
        "virtual_server_group G {\n 10.0.0.1 80\n 2001:db8::1 80\n}\n\
         virtual_server group G {\n lvs_sched rr\n lvs_method NAT\n protocol TCP\n\
         real_server 10.0.1.1 80 { }\n real_server 2001:db8::10 80 { }\n}\n",
    );
    assert_eq!(
        warnings(&c),
        [
            "t.conf:5: virtual server [2001:db8::1]:80: no real server of its address family - ignored",
            // For the IPv6 entry.
            "t.conf:9: Address family of virtual server and real server 10.0.1.1 don't match - skipping real server.",
            "t.conf:10: Address family of virtual server and real server 2001:db8::10 don't match - skipping real server.",
        ]
    );
    assert_eq!(c.virtual_servers.len(), 1);
    assert_eq!(
        errors(
            "virtual_server_group G {\n 10.0.0.1 80\n 2001:db8::1 80\n fwmark 3\n}\n\
             virtual_server group G {\n lvs_sched rr\n real_server 10.0.1.1 80 { }\n}\n"
        ),
        [
            "t.conf:1: virtual server group G cannot have IPv4, IPv6 and fwmark without family - removing",
            "t.conf:6: virtual_server group G: no virtual_server_group G is defined",
        ]
    );
}

#[test]
fn ipv6_errors_at_file_and_line() {
    assert_eq!(
        errors(
            "virtual_server [2001:db8::1] 80 {\n}\n\
             virtual_server 2001:db8::1 80 {\n ip_family inet\n ip_family inet7\n\
             persistence_granularity 0\n persistence_granularity 129\n\
             persistence_granularity 255.255.255.0\n real_server 2001:db8::g 80 { }\n\
             real_server 2001:db8::10 80 {\n TCP_CHECK {\n connect_ip 2001:db8:::1\n }\n }\n}\n\
             virtual_server_group G {\n ae00::9-2 80\n ae00::1-10000 80\n ae00::1-ae01::2 80\n\
             ae00::1/64 80\n ae00::/0 80\n ae00::/64 80\n ae00::1-x 80\n}\n"
        ),
        [
            "t.conf:1: virtual_server: invalid IPv6 address '[2001:db8::1]'",
            "t.conf:4: Virtual server specified family inet conflicts with server family",
            "t.conf:5: ip_family: unknown address family inet7",
            "t.conf:6: Invalid IPv6 persistence_granularity specified - 0",
            "t.conf:7: Invalid IPv6 persistence_granularity specified - 129",
            "t.conf:8: Invalid IPv6 persistence_granularity specified - 255.255.255.0",
            "t.conf:9: real_server: invalid IPv6 address '2001:db8::g'",
            "t.conf:12: connect_ip: invalid IPv6 address '2001:db8:::1'",
            "t.conf:17: virtual_server_group entry 'ae00::9-2': range end is below its start",
            "t.conf:18: virtual_server_group entry 'ae00::1-10000': end '10000' too large",
            "t.conf:19: virtual_server_group entry 'ae00::1-ae01::2': range end differs from its start outside the last group",
            "t.conf:20: virtual_server_group entry 'ae00::1/64': address has host bits set",
            "t.conf:21: virtual_server_group entry 'ae00::/0': invalid netmask",
            "t.conf:22: virtual_server_group entry 'ae00::/64': range has more than 65536 addresses",
            "t.conf:23: virtual_server_group entry 'ae00::1-x': invalid range end",
        ]
    );
}

#[test]
fn smtp_hosts_with_ipv6() {
    let c = parse(
        "virtual_server ae00::1 25 {\n lvs_sched rr\n lvs_method NAT\n protocol TCP\n\
         real_server ae00::10 25 {\n SMTP_CHECK {\n connect_timeout 3\n\
         host {\n bindto ae00::2\n connect_ip ae00::10\n connect_port 2525\n }\n }\n }\n}\n",
    );
    let ch = &c.virtual_servers[0].real_servers[0].checkers[0];
    let CheckerKind::Smtp(s) = &ch.kind else {
        panic!("{ch:?}")
    };
    assert_eq!(
        (
            s.hosts[0].connect_ip,
            s.hosts[0].connect_port,
            s.hosts[0].bindto
        ),
        (ip("ae00::10"), 2525, Some(ip("ae00::2")))
    );
    assert_eq!(s.hosts[0].connect_timeout, Duration::from_secs(3));
}

#[test]
fn a_sorry_server_of_the_other_family_is_skipped_with_its_own_keywords() {
    let c = parse(
        "virtual_server 2001:db8::1 80 {\n lvs_sched rr\n lvs_method NAT\n protocol TCP\n\
         sorry_server 10.0.0.9 80\n sorry_server_inhibit\n sorry_server_lvs_method DR\n\
         real_server 2001:db8::10 80 { }\n}\n\
         virtual_server fwmark 2 {\n lvs_sched rr\n lvs_method NAT\n\
         sorry_server 2001:db8::9 80\n real_server 10.0.0.2 { }\n}\n\
         virtual_server 2001:db8::2 80 {\n lvs_sched rr\n lvs_method NAT\n protocol TCP\n\
         sorry_server 10.0.0.9 80\n sorry_server_lvs_method TUN\n\
         real_server 2001:db8::10 80 { }\n}\n",
    );
    assert_eq!(
        warnings(&c),
        [
            "t.conf:5: Address family of virtual server and sorry server 10.0.0.9 don't match - skipping sorry server.",
            "t.conf:10: virtual server FWM 2 has no real servers - ignored (as keepalived)",
            // The sorry server came first: the family is IPv6.
            "t.conf:14: Address family of virtual server and real server 10.0.0.2 don't match - skipping real server.",
        ]
    );
    let v = &c.virtual_servers;
    assert!(v[0].sorry_server.is_none());
    // fwmark 2 has no server of its family left: dropped, as keepalived
    // drops a virtual server without real servers.
    assert_eq!(v.len(), 2);
    // A tunnelled sorry server may be of the other family.
    assert_eq!(
        v[1].sorry_server
            .as_ref()
            .map(|s| (s.addr, s.forwarding.method)),
        Some((ip("10.0.0.9"), FwdMethod::Tunnel))
    );
}
