//! `virtual_server fwmark N`, group `fwmark N` entries and `@xvsd match`
//! rules, with keepalived 2.2.8's adjustments (docs/research/fwmark.md §C).

use std::net::Ipv4Addr;
use xvs_core::fwmark::PortRange;
use xvs_core::model::{svc_flags, FwdMethod, Protocol, ServiceKey};
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
    c.warnings.iter().map(|w| w.to_string()).collect()
}

fn rules(vs: &VirtualServer) -> Vec<String> {
    vs.mark_rules
        .iter()
        .map(|m| format!("{}:{} {}", m.location.line, m.rule.mark, m.rule))
        .collect()
}

const FWM: &str = "\
virtual_server fwmark 1 {
    @xvsd match tcp 207.175.44.110/31
    @xvsd match udp 207.175.44.110-111 53
    @xvsd match tcp 10.1.0.0/24 80,443,8000-8080
    @othernode match tcp 10.9.0.0/16
    delay_loop 6
    lb_algo rr
    lb_kind DR
    protocol UDP
    ops
    ha_suspend
    persistence_timeout 300
    real_server 192.168.10.1 80 {
        TCP_CHECK { connect_port 80 }
    }
    real_server 192.168.10.2 {
        lvs_method NAT
    }
    real_server 192.168.10.3 8080 {
        lvs_method NAT
    }
    sorry_server 192.168.10.9 80
}
";

#[test]
fn a_fwmark_virtual_server_as_keepalived_adjusts_it() {
    let c = parse(FWM);
    assert_eq!(
        warnings(&c),
        [
            "t.conf:1: warning: virtual server FWM 1: protocol specified for fwmark - protocol will be ignored",
            "t.conf:1: warning: virtual server FWM 1: cannot use ha_suspend with fwmarks - clearing ha_suspend",
            "t.conf:13: warning: fwmark virtual server FWM 1, real server 192.168.10.1:80 has port specified - clearing",
            "t.conf:22: warning: fwmark virtual server FWM 1, sorry server 192.168.10.9:80 has port specified - clearing",
        ]
    );
    let [vs] = &c.virtual_servers[..] else {
        panic!("{:?}", c.virtual_servers)
    };
    assert_eq!(vs.key(), ServiceKey::fwmark(1));
    assert_eq!(vs.key().to_string(), "FWM 1");
    assert!(!vs.ha_suspend);
    let svc = vs.to_service();
    // ops stays: IPVS applies it to the UDP packets of the mark only.
    assert_eq!(svc.flags & svc_flags::ONEPACKET, svc_flags::ONEPACKET);
    assert_eq!((svc.key.proto, svc.timeout), (Protocol::Tcp, 300));
    let ports: Vec<(u16, FwdMethod)> = vs
        .real_servers
        .iter()
        .map(|r| (r.port, r.forwarding.method))
        .collect();
    assert_eq!(
        ports,
        [
            (0, FwdMethod::Route),
            (0, FwdMethod::Masq),
            (8080, FwdMethod::Masq)
        ]
    );
    assert_eq!(vs.sorry_server.as_ref().map(|s| s.port), Some(0));
    // The checker of a port-0 real server keeps its connect_port.
    let conn = vs.real_servers[0].checkers[0].conn.as_ref().unwrap();
    assert_eq!(conn.connect_port, 80);
    assert_eq!(
        rules(vs),
        [
            "2:1 tcp 207.175.44.110/31:*",
            "3:1 udp 207.175.44.110/31:53",
            "4:1 tcp 10.1.0.0/24:80,443,8000-8080",
        ]
    );
    assert_eq!(
        vs.mark_rules[2].rule.ports[2],
        PortRange {
            first: 8000,
            last: 8080
        }
    );
}

#[test]
fn group_fwmark_entries_are_one_service_each_with_the_full_netmask() {
    let c = parse(
        "virtual_server_group G {\n 10.0.0.1 80\n fwmark 7\n fwmark 8 inet\n}\n\
         virtual_server group G {\n lb_algo rr\n lb_kind DR\n protocol TCP\n persistence_timeout 60\n\
         persistence_granularity 255.255.255.0\n\
         real_server 10.0.1.1 80 { }\n}\n",
    );
    let keys: Vec<String> = c
        .virtual_servers
        .iter()
        .map(|v| v.key().to_string())
        .collect();
    assert_eq!(keys, ["TCP 10.0.0.1:80", "FWM 7", "FWM 8"]);
    let [a, f7, f8] = &c.virtual_servers[..] else {
        unreachable!()
    };
    assert_eq!(
        a.persistence_granularity,
        Some(Ipv4Addr::new(255, 255, 255, 0).into())
    );
    for f in [f7, f8] {
        assert_eq!(f.group.as_deref(), Some("G"));
        assert_eq!(
            f.persistence_granularity, None,
            "keepalived's netmask reset"
        );
        assert_eq!(f.to_service().netmask, Ipv4Addr::BROADCAST);
        assert_eq!(
            f.real_servers[0].port, 0,
            "DR real server of a fwmark entry"
        );
    }
    assert_eq!(a.real_servers[0].port, 80);
    assert!(warnings(&c).iter().any(|w| w
        == "t.conf:12: warning: fwmark virtual server FWM 7, real server 10.0.1.1:80 has port specified - port will be ignored"));
}

#[test]
fn match_lines_of_a_group_go_to_its_only_fwmark_entry() {
    let c = parse(
        "virtual_server_group G {\n fwmark 7\n}\n\
         virtual_server group G {\n @xvsd match sctp 10.0.0.0/30\n lb_algo rr\n\
         real_server 10.0.1.1 { }\n}\n",
    );
    assert_eq!(rules(&c.virtual_servers[0]), ["5:7 sctp 10.0.0.0/30:*"]);
    // keepalived's default (no lb_kind) is NAT: the port-less server stays 0.
    assert_eq!(c.virtual_servers[0].real_servers[0].port, 0);
}

#[test]
fn fwmark_errors_at_file_and_line() {
    assert_eq!(
        errors(
            "virtual_server_group G {\n fwmark 7\n fwmark 8\n fwmark 9 inet6\n fwmark x\n}\n\
             virtual_server group G {\n @xvsd match tcp 10.0.0.1\n real_server 10.0.1.1 { }\n}\n\
             virtual_server fwmark 1 {\n match tcp 10.0.0.1/24\n match icmp 10.0.0.1\n\
             match udp 10.0.0.1 90-80\n match udp\n match tcp ::1\n real_server 10.0.1.1 { }\n}\n\
             virtual_server fwmark 1 {\n real_server 10.0.1.2 { }\n}\n\
             virtual_server fwmark 4294967296 {\n}\n"
        ),
        [
            "t.conf:5: virtual_server_group G: fwmark x: fwmark must be 1..4294967295",
            // `fwmark 9 inet6` is an IPv6 fwmark entry.
            "t.conf:8: match: virtual_server_group G has 3 fwmark entries - a match line needs exactly one",
            "t.conf:12: match: invalid mark address '10.0.0.1/24' (host bits set)",
            "t.conf:13: match: unknown protocol 'icmp' (tcp|udp|sctp)",
            "t.conf:14: match: illegal port range '90-80'",
            "t.conf:15: match: expected PROTO ADDR[/LEN|-LAST] [PORTS]",
            "t.conf:16: match: IPv6 is not supported by xvs (IPv4 only)",
            "t.conf:19: duplicate virtual server FWM 1 (first at t.conf:11)",
            "t.conf:22: virtual_server fwmark 4294967296: fwmark must be 1..4294967295",
        ]
    );
}

#[test]
fn keepalived_skips_the_match_lines() {
    // A keepalived reading the same file has another config id: with one
    // that is not xvsd's, `@xvsd` lines still count (xvsd always answers
    // to it), but `@othernode` ones do not.
    let opts = Options {
        config_id: Some("othernode".into()),
    };
    let c = parse_str_with(FWM, "t.conf", &opts).unwrap();
    assert_eq!(c.virtual_servers[0].mark_rules.len(), 4);
}
