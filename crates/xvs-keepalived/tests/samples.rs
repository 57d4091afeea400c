//! keepalived's own sample configurations (doc/samples/, kept in
//! `shared/keepalived-samples/` beside the repository): each loads, with the
//! documented warnings (keepalived.conf.IPv6 included: its IPv6 virtual
//! server, real server and group are read as keepalived reads them).

use std::path::PathBuf;
use std::time::Duration;
use xvs_core::model::{svc_flags, FwdMethod, Protocol, ServiceKey};
use xvs_keepalived::{load_with, CheckerKind, Config, Options};

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/keepalived-samples")
        .join(name)
}

fn opts() -> Options {
    Options { config_id: None }
}

fn ok(name: &str) -> Config {
    load_with(&sample(name), &opts()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn file_name(p: &str) -> String {
    p.rsplit('/').next().unwrap_or(p).to_string()
}

fn warnings(c: &Config) -> Vec<String> {
    c.warnings
        .iter()
        .map(|w| format!("{}: {}", w.location.line, w.message))
        .collect()
}

/// The four `global_defs` mail keys most samples carry.
fn mail_warnings(first: u32) -> Vec<String> {
    vec![
        format!("{first}: global_defs: 'notification_email' is not used by xvs - skipped"),
        format!(
            "{}: global_defs: 'notification_email_from' is not used by xvs - skipped",
            first + 3
        ),
        format!(
            "{}: global_defs: 'smtp_server' is not used by xvs - skipped",
            first + 4
        ),
        format!(
            "{}: global_defs: 'smtp_connect_timeout' is not used by xvs - skipped",
            first + 5
        ),
    ]
}

#[test]
fn every_sample_is_covered() {
    let dir = sample("");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("keepalived.conf"))
        .collect();
    names.sort();
    let covered = [
        "keepalived.conf.HTTP_GET.port",
        "keepalived.conf.IPv6",
        "keepalived.conf.PING_CHECK",
        "keepalived.conf.SMTP_CHECK",
        "keepalived.conf.SSL_GET",
        "keepalived.conf.UDP_CHECK",
        "keepalived.conf.conditional_conf",
        "keepalived.conf.fwmark",
        "keepalived.conf.inhibit",
        "keepalived.conf.misc_check",
        "keepalived.conf.misc_check_arg",
        "keepalived.conf.quorum",
        "keepalived.conf.sample",
        "keepalived.conf.status_code",
        "keepalived.conf.virtual_server_group",
        "keepalived.conf.virtualhost",
        "keepalived.conf.vrrp.lvs_syncd",
    ];
    assert_eq!(
        names, covered,
        "a sample was added or removed: cover it here"
    );
}

#[test]
fn http_get_port() {
    let c = ok("keepalived.conf.HTTP_GET.port");
    assert_eq!(warnings(&c), mail_warnings(4));
    assert_eq!(c.global.router_id.as_deref(), Some("LVS_DEVEL"));
    let vs = &c.virtual_servers[0];
    assert_eq!(
        (vs.addr.to_string(), vs.port, vs.protocol),
        ("192.168.200.100".into(), 443, Protocol::Tcp)
    );
    assert_eq!(vs.persistence_timeout, Some(50));
    assert_eq!(vs.delay_loop, Duration::from_secs(6));
    let ch = &vs.real_servers[0].checkers[0];
    let CheckerKind::Http(h) = &ch.kind else {
        panic!("{ch:?}")
    };
    assert!(h.tls);
    assert_eq!(
        h.urls[0].digest.as_deref(),
        Some("ff20ad2481f97b1754ef3e12ecd3a9cc")
    );
    assert_eq!(h.urls[0].status_codes, [(200, 299)]);
    let conn = ch.conn.as_ref().unwrap();
    assert_eq!(
        (conn.connect_ip.to_string(), conn.connect_port),
        ("192.168.201.100".into(), 444)
    );
    assert_eq!(conn.connect_timeout, Duration::from_secs(3));
    assert_eq!(
        (ch.retry, ch.delay_before_retry),
        (3, Duration::from_secs(3))
    );
}

#[test]
fn ipv6() {
    let c = ok("keepalived.conf.IPv6");
    // The group is defined, but its `virtual_server group` line is
    // commented out.
    assert_eq!(
        warnings(&c),
        ["7: virtual_server_group IPv6_group is not used"]
    );
    assert_eq!(c.virtual_servers.len(), 1);
    let vs = &c.virtual_servers[0];
    // ipvsadm: `TCP  [ae00::1]:80 rr persistent 50`.
    let svc = vs.to_service();
    assert_eq!(svc.key, ServiceKey::new(Protocol::Tcp, ip6("ae00::1"), 80));
    assert_eq!(svc.scheduler, "rr");
    assert_ne!(svc.flags & svc_flags::PERSISTENT, 0);
    assert_eq!((svc.timeout, svc.netmask_prefix()), (50, 128));
    assert_eq!(vs.delay_loop, Duration::from_secs(6));
    // `  -> [ae00::10]:25  Masq  1`: NAT changes the port.
    assert_eq!(vs.real_servers.len(), 1);
    let rs = &vs.real_servers[0];
    let d = rs.to_dest(vs);
    assert_eq!(
        (d.addr, d.port, d.fwd, d.weight),
        (ip6("ae00::10"), 25, FwdMethod::Masq, 1)
    );
    assert_eq!(rs.checkers.len(), 1);
    let ch = &rs.checkers[0];
    let CheckerKind::Smtp(smtp) = &ch.kind else {
        panic!("{ch:?}")
    };
    assert_eq!(smtp.helo_name, "foo.bar.com");
    assert!(smtp.hosts.is_empty());
    let co = ch.conn.as_ref().unwrap();
    assert_eq!(
        (
            co.connect_ip,
            co.connect_port,
            co.bindto,
            co.connect_timeout
        ),
        (ip6("ae00::10"), 25, None, Duration::from_secs(3))
    );
    assert_eq!(ch.retry, 3);
}

#[test]
fn ipv6_with_its_group() {
    // The sample's commented-out `virtual_server group IPv6_group` line in
    // place of `virtual_server ae00::1 80`: ae00::2-9 is ae00::2 to ae00::9
    // (the end is the last group, in hex), then ae00::1.
    let text = std::fs::read_to_string(sample("keepalived.conf.IPv6")).unwrap();
    let text = text.replace(
        "# virtual_server group IPv6_group {\nvirtual_server ae00::1 80 {",
        "virtual_server group IPv6_group {",
    );
    let c = xvs_keepalived::parse_str_with(&text, "keepalived.conf.IPv6", &opts())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let got: Vec<_> = c
        .virtual_servers
        .iter()
        .map(|v| (v.addr, v.port, v.group.as_deref(), v.real_servers[0].port))
        .collect();
    let mut want: Vec<_> = (2..=9)
        .map(|i| (ip6(&format!("ae00::{i}")), 80, Some("IPv6_group"), 25))
        .collect();
    want.push((ip6("ae00::1"), 80, Some("IPv6_group"), 25));
    assert_eq!(got, want);
}

fn ip6(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

#[test]
fn ping_check_is_parsed() {
    let c = ok("keepalived.conf.PING_CHECK");
    assert_eq!(warnings(&c), mail_warnings(5));
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.protocol, Protocol::Udp);
    let ch = &vs.real_servers[0].checkers[0];
    assert_eq!(ch.kind, CheckerKind::Ping);
    assert_eq!(ch.kind.keyword(), "PING_CHECK");
    assert_eq!(ch.retry, 4);
    assert_eq!(
        ch.conn.as_ref().unwrap().connect_timeout,
        Duration::from_secs(5)
    );
}

#[test]
fn smtp_check_is_parsed() {
    let c = ok("keepalived.conf.SMTP_CHECK");
    assert_eq!(warnings(&c), mail_warnings(16));
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.real_servers.len(), 3);
    let CheckerKind::Smtp(s) = &vs.real_servers[0].checkers[0].kind else {
        panic!()
    };
    assert_eq!(s.helo_name, "foo.bar.com");
    assert!(s.hosts.is_empty());
    let CheckerKind::Smtp(s) = &vs.real_servers[2].checkers[0].kind else {
        panic!()
    };
    assert_eq!(s.hosts.len(), 3);
    assert_eq!(
        s.hosts[0].bindto.map(|a| a.to_string()).as_deref(),
        Some("172.16.1.2")
    );
    assert_eq!(s.hosts[2].connect_port, 587);
    assert_eq!(s.hosts[2].connect_timeout, Duration::from_secs(10));
}

#[test]
fn ssl_get_with_vrrp_instance() {
    let c = ok("keepalived.conf.SSL_GET");
    let mut w = mail_warnings(4);
    w.push("13: 'vrrp_instance' skipped: VRRP is left to keepalived (run it with --vrrp)".into());
    assert_eq!(warnings(&c), w);
    assert_eq!(c.virtual_servers.len(), 2);
    let CheckerKind::Http(h) = &c.virtual_servers[0].real_servers[0].checkers[0].kind else {
        panic!()
    };
    assert!(h.tls);
    assert_eq!(h.urls.len(), 2);
    assert_eq!(h.urls[1].path, "/mrtg/");
    let CheckerKind::Http(h) = &c.virtual_servers[1].real_servers[0].checkers[0].kind else {
        panic!()
    };
    assert!(!h.tls);
}

#[test]
fn udp_check() {
    let c = ok("keepalived.conf.UDP_CHECK");
    assert_eq!(warnings(&c), mail_warnings(5));
    let ch = &c.virtual_servers[0].real_servers[0].checkers[0];
    let CheckerKind::Udp(u) = &ch.kind else {
        panic!()
    };
    assert!(!u.require_reply, "require_reply is commented out with '!'");
    assert_eq!((u.min_reply_length, u.max_reply_length), (0, 255));
    assert_eq!(ch.retry, 3);
}

#[test]
fn conditional_conf() {
    // No config id: every '@id' line is dropped.
    let c = ok("keepalived.conf.conditional_conf");
    assert!(c.virtual_servers.is_empty());
    assert_eq!(
        warnings(&c),
        [
            "6: 'vrrp_script' skipped: VRRP is left to keepalived (run it with --vrrp)",
            "15: 'vrrp_instance' skipped: VRRP is left to keepalived (run it with --vrrp)",
        ]
    );
    // '-i high': the '@high' lines are read.
    let c = load_with(
        &sample("keepalived.conf.conditional_conf"),
        &Options {
            config_id: Some("high".into()),
        },
    )
    .unwrap();
    assert_eq!(
        warnings(&c),
        [
            "3: 'net_namespace' skipped: xvs does not handle it",
            "6: 'vrrp_script' skipped: VRRP is left to keepalived (run it with --vrrp)",
            "15: 'vrrp_instance' skipped: VRRP is left to keepalived (run it with --vrrp)",
        ]
    );
}

#[test]
fn fwmark() {
    let c = ok("keepalived.conf.fwmark");
    assert_eq!(
        warnings(&c),
        ["7: virtual server FWM 1: protocol specified for fwmark - protocol will be ignored"]
    );
    let [vs] = &c.virtual_servers[..] else {
        panic!("one virtual server: {:?}", c.virtual_servers)
    };
    let svc = vs.to_service();
    assert_eq!(svc.key, xvs_core::model::ServiceKey::fwmark(1));
    assert_eq!((svc.scheduler.as_str(), svc.timeout), ("rr", 900));
    assert!(svc.is_persistent());
    assert!(
        vs.mark_rules.is_empty(),
        "the sample has no @xvsd match lines"
    );
    // NAT real servers without a port stay at port 0; their checkers
    // connect to connect_port.
    for (rs, last) in vs.real_servers.iter().zip([100, 101]) {
        let d = rs.to_dest(vs);
        assert_eq!(
            (last_octet(d.addr), d.port, d.fwd, d.weight),
            (last, 0, FwdMethod::Masq, 1)
        );
        let conn = rs.checkers[0].conn.as_ref().unwrap();
        assert_eq!(
            (conn.connect_port, conn.connect_timeout),
            (80, Duration::from_secs(3))
        );
    }
}

#[test]
fn inhibit() {
    let c = ok("keepalived.conf.inhibit");
    assert_eq!(warnings(&c), mail_warnings(4));
    let rs = &c.virtual_servers[0].real_servers[0];
    assert!(rs.inhibit_on_failure);
    let CheckerKind::Http(h) = &rs.checkers[0].kind else {
        panic!()
    };
    assert_eq!(h.urls[0].path, "/testurl3/test.jsp");
}

#[test]
fn misc_check() {
    let c = ok("keepalived.conf.misc_check");
    assert_eq!(warnings(&c), mail_warnings(5));
    let vs = &c.virtual_servers[0];
    let ch = &vs.real_servers[0].checkers[0];
    let CheckerKind::Misc(m) = &ch.kind else {
        panic!()
    };
    assert_eq!(m.script.args, ["/usr/local/bin/script.sh"]);
    assert!(!m.dynamic, "misc_dynamic is commented out");
    assert_eq!(
        m.timeout, vs.delay_loop,
        "misc_timeout defaults to the virtual server's delay_loop"
    );
    assert_eq!(ch.retry, 0, "MISC_CHECK's retry default is 0");
    assert!(ch.conn.is_none());
}

#[test]
fn misc_check_arg() {
    let c = ok("keepalived.conf.misc_check_arg");
    assert_eq!(warnings(&c), mail_warnings(4));
    let CheckerKind::Misc(m) = &c.virtual_servers[0].real_servers[0].checkers[0].kind else {
        panic!()
    };
    assert_eq!(m.script.args, ["/usr/local/bin/script.sh", "arg1", "arg2"]);
}

#[test]
fn quorum() {
    let c = ok("keepalived.conf.quorum");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let vs = &c.virtual_servers[0];
    assert_eq!(
        (vs.quorum, vs.hysteresis, vs.alpha, vs.omega),
        (7, 2, true, true)
    );
    assert_eq!(
        vs.quorum_up.as_ref().unwrap().args,
        ["/usr/local/sbin/quorum-up.sh"]
    );
    assert_eq!(
        vs.quorum_down.as_ref().unwrap().args,
        ["/usr/local/sbin/quorum-down.sh"]
    );
    assert_eq!(vs.scheduler, "wrr");
    assert_eq!(vs.real_servers.len(), 10);
    for rs in &vs.real_servers {
        assert_eq!(rs.port, 8080);
        assert!(rs.alpha, "alpha is inherited from the virtual server");
        let ch = &rs.checkers[0];
        assert!(ch.alpha);
        assert_eq!(ch.conn.as_ref().unwrap().connect_port, 80);
    }
    let svc = vs.to_service();
    assert!(svc.is_persistent());
    assert_eq!(svc.timeout, 900);
}

#[test]
fn sample_with_sorry_server() {
    let c = ok("keepalived.conf.sample");
    let mut w = mail_warnings(4);
    w.push("13: 'vrrp_instance' skipped: VRRP is left to keepalived (run it with --vrrp)".into());
    assert_eq!(warnings(&c), w);
    let v = &c.vrrp_instances[..];
    assert_eq!(v.len(), 1);
    assert_eq!(
        (
            v[0].name.as_str(),
            v[0].virtual_router_id,
            v[0].interface.as_deref()
        ),
        ("VI_1", Some(50), Some("eth0"))
    );
    assert_eq!(c.global.lvs_sync_daemon, None);
    let vs = &c.virtual_servers[0];
    let s = vs.sorry_server.as_ref().unwrap();
    assert_eq!(
        (s.addr.to_string(), s.port, s.forwarding.method),
        ("192.168.200.200".into(), 1358, FwdMethod::Masq)
    );
    assert!(!s.inhibit);
    assert_eq!(s.to_dest().fwd, FwdMethod::Masq);
}

#[test]
fn status_code_ranges() {
    let c = ok("keepalived.conf.status_code");
    assert_eq!(warnings(&c), mail_warnings(5));
    let CheckerKind::Http(h) = &c.virtual_servers[0].real_servers[0].checkers[0].kind else {
        panic!()
    };
    assert_eq!(
        h.urls[0].status_codes,
        [(200, 299), (400, 499), (503, 503), (505, 505)]
    );
    assert!(h.urls[0].accepts(404) && !h.urls[0].accepts(302) && h.urls[0].accepts(505));
    assert_eq!(h.urls[1].status_codes, [(200, 200)]);
    assert!(h.urls[1].digest.is_some());
}

#[test]
fn virtual_server_group_with_fwmarks() {
    let c = ok("keepalived.conf.virtual_server_group");
    assert_eq!(warnings(&c), mail_warnings(4));
    let keys: Vec<String> = c
        .virtual_servers
        .iter()
        .map(|v| v.key().to_string())
        .collect();
    // The address entries (192.168.200.3-10 is eight), then one fwmark
    // service per fwmark entry, as keepalived's ipvs_group_cmd.
    assert_eq!(keys.len(), 3 + 8 + 2);
    assert_eq!(
        &keys[..3],
        [
            "TCP 10.0.0.1:8080",
            "TCP 10.0.0.2:80",
            "TCP 192.168.200.1:1358"
        ]
    );
    assert_eq!(&keys[11..], ["FWM 1", "FWM 2"]);
    for f in &c.virtual_servers[11..] {
        assert_eq!(f.persistence_timeout, Some(50));
        // NAT real servers keep their port.
        let ports: Vec<u16> = f.real_servers.iter().map(|r| r.port).collect();
        assert_eq!(ports, [1358, 1358]);
    }
}

#[test]
fn virtualhost_at_virtual_server_level() {
    let c = ok("keepalived.conf.virtualhost");
    assert_eq!(warnings(&c), mail_warnings(4));
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.virtualhost.as_deref(), Some("www.firewall.loc"));
    let CheckerKind::Http(h) = &vs.real_servers[0].checkers[0].kind else {
        panic!()
    };
    for u in &h.urls {
        assert_eq!(u.virtualhost.as_deref(), Some("www.firewall.loc"));
    }
}

#[test]
fn vrrp_lvs_syncd() {
    let c = ok("keepalived.conf.vrrp.lvs_syncd");
    assert_eq!(
        warnings(&c),
        [
            "3: 'vrrp_sync_group' skipped: VRRP is left to keepalived (run it with --vrrp)",
            "8: 'vrrp_instance' skipped: VRRP is left to keepalived (run it with --vrrp)",
            "11: (VI_1) lvs_sync_daemon_interface in a vrrp_instance is deprecated - use global_defs' 'lvs_sync_daemon eth1 VI_1 id 0' (the same)",
            "26: 'vrrp_instance' skipped: VRRP is left to keepalived (run it with --vrrp)",
            "38: 'vrrp_instance' skipped: VRRP is left to keepalived (run it with --vrrp)",
        ]
    );
    // The deprecated form inside VI_1: the daemon follows VI_1, and the sync
    // id is 0, not VI_1's VRID 51 (only an instance named on a global
    // `lvs_sync_daemon` line gives its VRID).
    let d = c.global.lvs_sync_daemon.as_ref().unwrap();
    assert_eq!(
        (
            d.interface.as_str(),
            d.vrrp_instance.as_deref(),
            d.syncid,
            file_name(&d.location.file),
            d.location.line
        ),
        (
            "eth1",
            Some("VI_1"),
            0,
            "keepalived.conf.vrrp.lvs_syncd".into(),
            11
        )
    );
    assert_eq!((d.maxlen, d.port, d.ttl, d.group), (None, None, None, None));
    let vrrp: Vec<_> = c
        .vrrp_instances
        .iter()
        .map(|v| {
            (
                v.name.as_str(),
                v.virtual_router_id,
                v.interface.as_deref(),
                v.location.line,
            )
        })
        .collect();
    assert_eq!(
        vrrp,
        [
            ("VI_1", Some(51), Some("eth0"), 8),
            ("VI_2", Some(52), Some("eth0"), 26),
            ("VI_3", Some(53), Some("eth1"), 38),
        ]
    );
    assert_eq!(c.global.notify_fifo, None);
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.delay_loop, Duration::from_secs(20));
    let ch = &vs.real_servers[0].checkers[0];
    assert_eq!(ch.kind, CheckerKind::Tcp);
    assert_eq!(
        (ch.retry, ch.delay_before_retry, ch.warmup),
        (1, Duration::from_secs(1), Duration::from_secs(20))
    );
    assert_eq!(ch.conn.as_ref().unwrap().connect_port, 80);
}

fn last_octet(a: std::net::IpAddr) -> u8 {
    match a {
        std::net::IpAddr::V4(a) => a.octets()[3],
        std::net::IpAddr::V6(a) => a.octets()[15],
    }
}
