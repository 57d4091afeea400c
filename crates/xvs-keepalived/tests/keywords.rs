//! Every supported keyword, its default, and the conversion to the core model.

use std::net::IpAddr;
use std::time::Duration;
use xvs_core::model::{svc_flags, FwdMethod, Protocol, TunCsum, TunType};
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

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const FULL: &str = r#"
global_defs {
    router_id DIRECTOR1
    lvs_timeouts tcp 7200 tcpfin 60 udp 120
    lvs_flush
    lvs_flush_onstop VS
    script_user nobody nogroup
    enable_script_security
    vrrp_strict
}
SSL {
    password secret
    ca /etc/ca.pem
    certificate /etc/cert.pem
    key /etc/key.pem
}
virtual_server 10.0.0.1 80 {
    lvs_sched sh
    sh-port
    sh-fallback
    flag-3
    lvs_method DR
    protocol tcp
    persistence_timeout
    persistence_granularity 255.255.255.0
    persistence_engine sip
    delay_loop 2.5
    connect_timeout 4
    retry 2
    delay_before_retry 0.5
    warmup 1
    inhibit_on_failure
    alpha
    omega
    quorum 2
    hysteresis 1
    quorum_up "/bin/up.sh 'a b'" root wheel
    quorum_down /bin/down.sh
    ha_suspend
    hashed
    virtualhost vs.example
    weight 3
    sorry_server 10.0.9.9 80
    sorry_server_inhibit
    sorry_server_lvs_method NAT
    real_server 10.0.1.1 80 {
        weight 5
        uthreshold 100
        lthreshold 10
        notify_up "/bin/notify up"
        notify_down /bin/notify
        HTTP_GET {
            url {
                path /health
                status_code 200 301-302
                virtualhost url.example
                regex "OK [0-9]+"
                regex_no_match
            }
            url {
                path /other
            }
            virtualhost checker.example
            http_protocol 1.1
            fast_recovery
            connect_ip 10.0.1.100
            connect_port 8080
            bindto 10.0.0.254
            bind_port 5000
            bind_if eth0
            fwmark 7
            nb_get_retry 4
        }
    }
    real_server 10.0.1.2 {
        lvs_method TUN type gue port 6080 csum
        inhibit_on_failure off
        alpha no
        retry 5
        delay_before_retry 7
        warmup 0
        connect_timeout 9
        delay_loop 11
        virtualhost rs.example
        TCP_CHECK {
            retry 0
            alpha off
            log_all_failures
        }
        SSL_GET {
            url { path /
                  digest ABCDEF0123456789abcdef0123456789 }
            enable_sni
            sni_name sni.example
            tls_compliant
        }
        MISC_CHECK {
            misc_path "/bin/check --x 'y z'"
            misc_timeout 3
            misc_dynamic
            user nobody
        }
        UDP_CHECK {
            payload Ab12f 3 456
            require_reply 0x ff
            min_reply_length 2
            max_reply_length 100
        }
        DNS_CHECK {
            type aaaa
            name example.com
        }
    }
}
virtual_server 10.0.0.2 53 {
    protocol UDP
    lb_algo mh
    mh-port
    mh-fallback
    ops
    lb_kind TUN type gre
    real_server 10.0.2.1 53 {
        DNS_CHECK { }
        PING_CHECK { }
        FILE_CHECK { track_file f }
    }
}
"#;

#[test]
fn global_defs() {
    let c = parse(FULL);
    let g = &c.global;
    assert_eq!(g.router_id.as_deref(), Some("DIRECTOR1"));
    assert_eq!(
        g.lvs_timeouts,
        LvsTimeouts {
            tcp: Some(7200),
            tcp_fin: Some(60),
            udp: Some(120)
        }
    );
    assert_eq!(
        g.lvs_timeouts.apply(Default::default()),
        xvs_core::model::Timeouts {
            tcp: 7200,
            tcp_fin: 60,
            udp: 120
        }
    );
    assert!(g.lvs_flush && g.enable_script_security);
    assert_eq!(g.lvs_flush_on_stop, Some(FlushOnStop::Vs));
    assert_eq!(
        g.script_user,
        Some(ScriptUser {
            user: "nobody".into(),
            group: Some("nogroup".into())
        })
    );
    let ssl = c.ssl.as_ref().unwrap();
    assert_eq!(ssl.password.as_deref(), Some("secret"));
    assert_eq!(ssl.key.as_deref(), Some("/etc/key.pem"));
    assert!(c.warnings.iter().any(|w| w.to_string()
        == "t.conf:9: warning: global_defs: 'vrrp_strict' is not used by xvs - skipped"));
}

#[test]
fn virtual_server_keywords() {
    let c = parse(FULL);
    let vs = &c.virtual_servers[0];
    assert_eq!(
        (vs.addr, vs.port, vs.protocol),
        (ip("10.0.0.1"), 80, Protocol::Tcp)
    );
    assert_eq!(vs.scheduler, "sh");
    assert_eq!(
        vs.flags,
        svc_flags::SCHED1 | svc_flags::SCHED2 | svc_flags::SCHED3
    );
    assert_eq!(vs.forwarding.method, FwdMethod::Route);
    assert_eq!(vs.persistence_timeout, Some(360));
    assert_eq!(vs.persistence_granularity, Some(ip("255.255.255.0")));
    assert_eq!(vs.persistence_engine.as_deref(), Some("sip"));
    assert_eq!(vs.delay_loop, Duration::from_millis(2500));
    assert_eq!(vs.connect_timeout, Duration::from_secs(4));
    assert_eq!(vs.retry, Some(2));
    assert_eq!(vs.delay_before_retry, Some(Duration::from_millis(500)));
    assert_eq!(vs.warmup, Some(Duration::from_secs(1)));
    assert!(vs.inhibit_on_failure && vs.alpha && vs.omega && vs.ha_suspend);
    assert_eq!((vs.quorum, vs.hysteresis), (2, 1));
    let up = vs.quorum_up.as_ref().unwrap();
    assert_eq!(up.args, ["/bin/up.sh", "a b"]);
    assert_eq!(
        up.user,
        Some(ScriptUser {
            user: "root".into(),
            group: Some("wheel".into())
        })
    );
    assert_eq!(vs.quorum_down.as_ref().unwrap().args, ["/bin/down.sh"]);
    assert_eq!(vs.virtualhost.as_deref(), Some("vs.example"));
    let s = vs.sorry_server.as_ref().unwrap();
    assert_eq!(
        (s.addr, s.port, s.inhibit, s.forwarding.method),
        (ip("10.0.9.9"), 80, true, FwdMethod::Masq)
    );

    let svc = vs.to_service();
    assert_eq!(svc.key.to_string(), "TCP 10.0.0.1:80");
    assert_eq!(svc.scheduler, "sh");
    assert_eq!(
        svc.flags,
        svc_flags::PERSISTENT | svc_flags::SCHED1 | svc_flags::SCHED2 | svc_flags::SCHED3
    );
    assert_eq!((svc.timeout, svc.netmask), (360, ip("255.255.255.0")));
    assert_eq!(svc.pe_name.as_deref(), Some("sip"));

    let vs2 = &c.virtual_servers[1];
    assert_eq!(vs2.protocol, Protocol::Udp);
    assert_eq!(
        vs2.flags,
        svc_flags::ONEPACKET | svc_flags::SCHED1 | svc_flags::SCHED2
    );
    assert_eq!(vs2.forwarding.tun_type, TunType::Gre);
    assert_eq!(vs2.persistence_timeout, None);
    assert!(!vs2.to_service().is_persistent());
}

#[test]
fn real_server_keywords_and_inheritance() {
    let c = parse(FULL);
    let vs = &c.virtual_servers[0];
    let r1 = &vs.real_servers[0];
    assert_eq!(
        (r1.addr, r1.port, r1.weight, r1.u_threshold, r1.l_threshold),
        (ip("10.0.1.1"), 80, 5, 100, 10)
    );
    assert_eq!(
        r1.forwarding.method,
        FwdMethod::Route,
        "inherits the virtual server's lvs_method"
    );
    assert!(r1.inhibit_on_failure && r1.alpha, "inherited");
    assert_eq!(r1.notify_up.as_ref().unwrap().args, ["/bin/notify", "up"]);
    assert_eq!(r1.notify_down.as_ref().unwrap().args, ["/bin/notify"]);
    let d = r1.to_dest(vs);
    assert_eq!(
        (
            d.addr,
            d.port,
            d.fwd,
            d.weight,
            d.u_threshold,
            d.l_threshold
        ),
        (ip("10.0.1.1"), 80, FwdMethod::Route, 5, 100, 10)
    );

    let ch = &r1.checkers[0];
    let CheckerKind::Http(h) = &ch.kind else {
        panic!()
    };
    assert!(!h.tls && h.fast_recovery);
    assert_eq!(h.http_protocol, HttpProtocol::Http11);
    assert_eq!(h.urls[0].status_codes, [(200, 200), (301, 302)]);
    assert_eq!(h.urls[0].virtualhost.as_deref(), Some("url.example"));
    assert_eq!(h.urls[0].regex.as_deref(), Some("OK [0-9]+"));
    assert!(h.urls[0].regex_no_match);
    assert_eq!(
        h.urls[1].virtualhost.as_deref(),
        Some("checker.example"),
        "checker's virtualhost"
    );
    let co = ch.conn.as_ref().unwrap();
    assert_eq!((co.connect_ip, co.connect_port), (ip("10.0.1.100"), 8080));
    assert_eq!(
        (co.bindto, co.bind_port, co.bind_if.as_deref(), co.fwmark),
        (Some(ip("10.0.0.254")), Some(5000), Some("eth0"), Some(7))
    );
    assert_eq!(
        co.connect_timeout,
        Duration::from_secs(4),
        "virtual server's connect_timeout"
    );
    assert_eq!(ch.retry, 4, "nb_get_retry");
    assert_eq!(
        ch.delay_before_retry,
        Duration::from_millis(500),
        "virtual server's delay_before_retry"
    );
    assert_eq!(ch.delay_loop, Duration::from_millis(2500));
    assert_eq!(ch.warmup, Duration::from_secs(1));
    assert!(c
        .warnings
        .iter()
        .any(|w| w.message == "nb_get_retry is deprecated - use 'retry'"));

    let r2 = &vs.real_servers[1];
    assert_eq!(r2.port, 80, "port defaults to the virtual port");
    assert_eq!(r2.weight, 3, "virtual server's weight");
    assert_eq!(
        r2.forwarding,
        Forwarding {
            method: FwdMethod::Tunnel,
            tun_type: TunType::Gue,
            tun_port: 6080,
            tun_csum: TunCsum::Csum
        }
    );
    let d = r2.to_dest(vs);
    assert_eq!(
        (d.fwd, d.tun_type, d.tun_port, d.tun_csum),
        (FwdMethod::Tunnel, TunType::Gue, 6080, TunCsum::Csum)
    );
    assert!(!r2.inhibit_on_failure && !r2.alpha);
    assert_eq!(r2.virtualhost.as_deref(), Some("rs.example"));

    let tcp = &r2.checkers[0];
    assert_eq!(tcp.kind, CheckerKind::Tcp);
    assert_eq!(tcp.retry, 0, "checker retry 0");
    assert!(!tcp.alpha && tcp.log_all_failures);
    assert_eq!(
        tcp.conn.as_ref().unwrap().connect_timeout,
        Duration::from_secs(9),
        "real server's"
    );
    assert_eq!(
        (tcp.delay_before_retry, tcp.warmup, tcp.delay_loop),
        (
            Duration::from_secs(7),
            Duration::ZERO,
            Duration::from_secs(11)
        )
    );

    let CheckerKind::Http(ssl) = &r2.checkers[1].kind else {
        panic!()
    };
    assert!(ssl.tls && ssl.enable_sni && ssl.tls_compliant);
    assert_eq!(ssl.sni_name.as_deref(), Some("sni.example"));
    assert_eq!(
        ssl.urls[0].digest.as_deref(),
        Some("abcdef0123456789abcdef0123456789")
    );
    assert_eq!(
        ssl.urls[0].virtualhost.as_deref(),
        Some("rs.example"),
        "real server's virtualhost"
    );
    assert_eq!(r2.checkers[1].retry, 5);

    let misc = &r2.checkers[2];
    let CheckerKind::Misc(m) = &misc.kind else {
        panic!()
    };
    assert_eq!(m.script.args, ["/bin/check", "--x", "y z"]);
    assert_eq!(
        m.script.user,
        Some(ScriptUser {
            user: "nobody".into(),
            group: None
        })
    );
    assert_eq!(m.timeout, Duration::from_secs(3));
    assert!(m.dynamic);
    assert_eq!(
        misc.retry, 5,
        "real server's retry beats MISC_CHECK's default 0"
    );

    let CheckerKind::Udp(u) = &r2.checkers[3].kind else {
        panic!()
    };
    assert_eq!(
        u.payload.as_deref(),
        Some(&[0xab, 0x12, 0x0f, 0x03, 0x45, 0x06][..])
    );
    assert!(u.require_reply);
    assert_eq!(u.reply.as_deref(), Some(&[0x00, 0xff][..]));
    assert_eq!(u.reply_mask.as_deref(), Some(&[0x0f, 0x00][..]));
    assert_eq!((u.min_reply_length, u.max_reply_length), (2, 100));

    let CheckerKind::Dns(d) = &r2.checkers[4].kind else {
        panic!()
    };
    assert_eq!((d.qtype.as_str(), d.name.as_str()), ("AAAA", "example.com"));
}

#[test]
fn checker_defaults() {
    let c = parse(FULL);
    let vs = &c.virtual_servers[1];
    assert_eq!(vs.delay_loop, Duration::from_secs(60), "delay_loop default");
    assert_eq!(vs.quorum, 1);
    let rs = &vs.real_servers[0];
    assert_eq!(rs.weight, 1);
    assert_eq!(rs.forwarding.method, FwdMethod::Tunnel);
    let dns = &rs.checkers[0];
    let CheckerKind::Dns(d) = &dns.kind else {
        panic!()
    };
    assert_eq!((d.qtype.as_str(), d.name.as_str()), ("SOA", ""));
    assert_eq!(
        (dns.retry, dns.delay_before_retry),
        (3, Duration::from_secs(60)),
        "DNS_CHECK: retry 3, dbr = delay_loop"
    );
    let ping = &rs.checkers[1];
    assert_eq!(ping.kind, CheckerKind::Ping);
    assert_eq!(
        (ping.retry, ping.delay_before_retry, ping.warmup),
        (1, Duration::from_secs(1), Duration::from_secs(60))
    );
    let co = ping.conn.as_ref().unwrap();
    assert_eq!(
        (co.connect_ip, co.connect_port, co.connect_timeout),
        (ip("10.0.2.1"), 53, Duration::from_secs(5))
    );
    assert_eq!(
        rs.checkers[2].kind,
        CheckerKind::Unsupported {
            keyword: "FILE_CHECK".into()
        }
    );
}

#[test]
fn keepalived_defaults_and_adjustments() {
    let c = parse(
        "virtual_server 10.0.0.1 80 {\n\
         real_server 10.0.0.2 8080 {\n weight 2\n HTTP_GET {\n url {\n path /\n }\n }\n }\n\
         real_server 10.0.0.2 8080 {\n }\n\
         quorum 5\n hysteresis 9\n ops\n\
         }\n",
    );
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.scheduler, "wlc");
    assert_eq!(vs.protocol, Protocol::Udp, "keepalived defaults to UDP");
    assert_eq!(vs.forwarding.method, FwdMethod::Masq);
    assert_eq!(vs.real_servers.len(), 1, "duplicate removed");
    let rs = &vs.real_servers[0];
    assert_eq!(
        (rs.port, rs.forwarding.method),
        (8080, FwdMethod::Masq),
        "NAT keeps the real server's port"
    );
    let ch = &rs.checkers[0];
    assert_eq!(
        (ch.retry, ch.delay_before_retry),
        (1, Duration::from_secs(3)),
        "HTTP_GET defaults"
    );
    assert_eq!(
        ch.conn.as_ref().unwrap().connect_timeout,
        Duration::from_secs(5)
    );
    assert_eq!((vs.quorum, vs.hysteresis), (2, 1));
    assert_eq!(
        vs.flags & svc_flags::ONEPACKET,
        svc_flags::ONEPACKET,
        "UDP keeps ops"
    );
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        [
            "t.conf:1: warning: no protocol set - defaulting to UDP (as keepalived)",
            "t.conf:1: warning: no scheduler set - using 'wlc' (as keepalived)",
            "t.conf:1: warning: no forwarding method set - using NAT (as keepalived)",
            "t.conf:1: warning: quorum 5 exceeds the total weight of the real servers 2 - reduced to 2",
            "t.conf:1: warning: hysteresis 9 >= quorum 2 - set to 1",
            "t.conf:10: warning: real server 10.0.0.2:8080 duplicates the one at t.conf:2 - removed",
        ]
    );

    // DR forces the virtual port, with a warning; ops needs UDP.
    let c = parse("virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind DR\n ops\n real_server 10.0.0.2 8080 {\n }\n}\n");
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.real_servers[0].port, 80);
    assert_eq!(vs.flags, 0);
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert_eq!(
        c.warnings[0].to_string(),
        "t.conf:1: warning: virtual server 10.0.0.1:80: one packet scheduling requires UDP - resetting (as keepalived)"
    );

    // No real servers: ignored with a warning, as keepalived.
    let c = parse("virtual_server 10.0.0.1 80 {\n protocol TCP\n}\n");
    assert!(c.virtual_servers.is_empty());
    assert_eq!(c.warnings[0].to_string(), "t.conf:1: warning: virtual server 10.0.0.1:80 has no real servers - ignored (as keepalived)");

    // Zero port makes the service persistent.
    let c = parse("virtual_server 10.0.0.1 0 {\n protocol TCP\n lb_algo rr\n lb_kind DR\n real_server 10.0.0.2 {\n }\n}\n");
    assert_eq!(c.virtual_servers[0].persistence_timeout, Some(360));
}

#[test]
fn virtual_server_group_expansion() {
    let c = parse(
        "virtual_server_group G {\n 10.0.0.1 80\n 10.0.0.10-12 8080\n 10.0.1.0/30 443\n 10.0.2.254-10.0.3.1 81\n}\n\
         virtual_server group G {\n protocol TCP\n lb_algo rr\n lb_kind DR\n real_server 10.1.0.1 {\n }\n}\n",
    );
    let keys: Vec<String> = c
        .virtual_servers
        .iter()
        .map(|v| format!("{}:{}", v.addr, v.port))
        .collect();
    assert_eq!(
        keys,
        [
            "10.0.0.1:80",
            "10.0.0.10:8080",
            "10.0.0.11:8080",
            "10.0.0.12:8080",
            "10.0.1.0:443",
            "10.0.1.1:443",
            "10.0.1.2:443",
            "10.0.1.3:443",
            "10.0.2.254:81",
            "10.0.2.255:81",
            "10.0.3.0:81",
            "10.0.3.1:81",
        ]
    );
    for vs in &c.virtual_servers {
        assert_eq!(vs.group.as_deref(), Some("G"));
        assert_eq!(
            vs.real_servers[0].port, vs.port,
            "DR real server takes each entry's port"
        );
    }
}

#[test]
fn rejections() {
    let e = errors(
        "virtual_server fwmark 0 {\n real_server 10.0.0.2 { }\n}\n\
         virtual_server 10.0.0.1 80 {\n protocol SCTP\n ip_family inet6\n persistence_granularity 64\n}\n\
         virtual_server group NOPE {\n}\n\
         virtual_server_group G {\n fwmark 0\n ::1 80\n}\n\
         virtual_server 10.0.0.1 81 {\n lb_algo nope\n lb_kind FOO\n lb_kind TUN type gue\n lb_kind TUN type ipip csum\n sh-port\n real_server ::1 80 { }\n}\n\
         virtual_server 10.0.0.1 82 {\n @xvsd match tcp 10.0.0.0/8\n}\n",
    );
    assert_eq!(
        e,
        [
            "t.conf:1: virtual_server fwmark 0: fwmark must be 1..4294967295",
            "t.conf:6: Virtual server specified family inet6 conflicts with server family",
            "t.conf:7: persistence_granularity: invalid netmask '64'",
            "t.conf:9: virtual_server group NOPE: no virtual_server_group NOPE is defined",
            "t.conf:12: virtual_server_group G: fwmark 0: fwmark must be 1..4294967295",
            "t.conf:16: lb_algo: invalid scheduler 'nope' (rr|wrr|lc|wlc|lblc|sh|mh|dh|fo|ovf|lblcr|sed|nq|twos)",
            "t.conf:17: lb_kind: unknown forwarding method 'FOO' (NAT|DR|TUN)",
            "t.conf:18: lb_kind: gue tunnels require a port, other tunnel types cannot have one",
            "t.conf:19: lb_kind: ipip tunnels do not support a checksum option",
            "t.conf:20: sh-port only applies to the sh scheduler (set lvs_sched sh before it)",
            "t.conf:24: match is only valid in a virtual_server fwmark block",
        ]
    );
}

#[test]
fn value_errors() {
    let e = errors(
        "global_defs {\n lvs_timeouts tcp x\n}\n\
         virtual_server 10.0.0.1 80 {\n delay_loop 0\n delay_loop 1.1234567\n weight 0\n quorum\n persistence_timeout 99999999\n\
         real_server 10.0.0.2 80 {\n weight 70000\n inhibit_on_failure maybe\n\
         HTTP_GET {\n url {\n digest 123\n status_code 600 abc\n }\n }\n\
         MISC_CHECK {\n }\n\
         DNS_CHECK {\n type BOGUS\n name a..b\n }\n\
         UDP_CHECK {\n payload zz\n }\n\
         }\n\
         }\n",
    );
    assert_eq!(
        e,
        [
            "t.conf:2: lvs_timeouts: invalid tcp timeout 'x' (0..2678400)",
            "t.conf:5: delay_loop: 0 is outside [0.000001, ] seconds",
            "t.conf:6: delay_loop: number '1.1234567' has too many decimal places (at most 6)",
            "t.conf:7: weight: 0 is outside [1, 65535]",
            "t.conf:8: quorum: missing value",
            "t.conf:9: persistence_timeout: 99999999 is outside [1, 2678400]",
            "t.conf:11: weight: 70000 is outside [0, 65535]",
            "t.conf:12: inhibit_on_failure: invalid boolean 'maybe' (on|off|true|false|yes|no)",
            "t.conf:13: HTTP_GET has no url { } block",
            "t.conf:14: url has no path",
            "t.conf:15: digest '123' must be 32 hex digits (an MD5 sum)",
            "t.conf:16: invalid HTTP status code '600' (100-599, or LOW-HIGH)",
            "t.conf:16: invalid HTTP status code 'abc' (100-599, or LOW-HIGH)",
            "t.conf:19: MISC_CHECK has no misc_path",
            "t.conf:22: unknown DNS_CHECK type 'BOGUS' (A|NS|CNAME|SOA|MX|TXT|AAAA|RRSIG|DNSKEY)",
            "t.conf:23: DNS_CHECK name 'a..b' has an empty label",
            "t.conf:26: invalid hex string for UDP_CHECK payload",
        ]
    );
}

#[test]
fn unknown_keywords_warn() {
    let c = parse(
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n bogus 1\n smtp_alert\n snmp_name x\n\
         real_server 10.0.0.2 80 {\n frobnicate\n TCP_CHECK {\n zap 1\n }\n HTTP_GET {\n url {\n path /\n what\n }\n }\n }\n}\n\
         vrrp_instance VI {\n state MASTER\n}\nstatic_ipaddress {\n 1.2.3.4/24 dev eth0\n}\n",
    );
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        [
            "t.conf:5: warning: virtual_server: unknown keyword 'bogus' ignored",
            "t.conf:6: warning: smtp_alert ignored: xvs sends no e-mail",
            "t.conf:7: warning: snmp_name ignored: xvs has no SNMP agent",
            "t.conf:9: warning: real_server: unknown keyword 'frobnicate' ignored",
            "t.conf:11: warning: TCP_CHECK: unknown keyword 'zap' ignored",
            "t.conf:16: warning: url: unknown keyword 'what' ignored",
            "t.conf:21: warning: 'vrrp_instance' skipped: VRRP is left to keepalived (run it with --vrrp)",
            "t.conf:24: warning: 'static_ipaddress' skipped: xvs does not handle it",
        ]
    );
    // A keyword keepalived does not know at top level is an error, as `keepalived -t`.
    assert_eq!(
        errors("virtual_sever 10.0.0.1 80 {\n}\n"),
        ["t.conf:1: unknown keyword 'virtual_sever'"]
    );
}

#[test]
fn serde_round_trip() {
    let c = parse(FULL);
    let s = serde_json::to_string(&c).unwrap();
    let back: Config = serde_json::from_str(&s).unwrap();
    assert_eq!(back, c);
}

#[test]
fn sctp_virtual_servers() {
    // proto_handler compares with strcasecmp: any case is SCTP.
    for word in ["SCTP", "sctp", "Sctp"] {
        let c = parse(&format!(
            "virtual_server 10.0.0.1 5060 {{\n protocol {word}\n lb_algo rr\n lb_kind NAT\n\
             real_server 10.0.0.2 5061 {{\n weight 3\n }}\n}}\n"
        ));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let vs = &c.virtual_servers[0];
        assert_eq!(
            (vs.protocol, vs.port, vs.real_servers[0].port),
            (Protocol::Sctp, 5060, 5061)
        );
    }
    // ops is for UDP only: keepalived resets it for SCTP as for TCP.
    let c = parse(
        "virtual_server 10.0.0.1 5060 {\n protocol SCTP\n lb_algo rr\n lb_kind DR\n ops\n\
         persistence_timeout 60\n real_server 10.0.0.2 5060 {\n }\n}\n",
    );
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.protocol, Protocol::Sctp);
    assert_eq!(vs.flags & svc_flags::ONEPACKET, 0);
    assert_eq!(vs.persistence_timeout, Some(60));
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        ["t.conf:1: warning: virtual server 10.0.0.1:5060: one packet scheduling requires UDP - resetting (as keepalived)"]
    );
    // Groups expand to SCTP services too.
    let c = parse(
        "virtual_server_group G {\n 10.0.0.1-2 5060\n}\n\
         virtual_server group G {\n protocol sctp\n lb_algo rr\n lb_kind DR\n real_server 10.1.0.1 {\n }\n}\n",
    );
    assert_eq!(c.virtual_servers.len(), 2);
    assert!(c
        .virtual_servers
        .iter()
        .all(|v| v.protocol == Protocol::Sctp));
    // Anything else is still an error, naming the three protocols.
    assert_eq!(
        errors("virtual_server 10.0.0.1 80 {\n protocol DCCP\n}\n"),
        ["t.conf:2: protocol: unknown protocol 'DCCP' (TCP|UDP|SCTP)"]
    );
}

/// `persistence_engine` reaches IPVS with the persistence only
/// (keepalived's ipvs_set_srule); a name longer than 16 is cut, warned.
#[test]
fn persistence_engine_goes_with_the_persistence() {
    let c = parse(
        "virtual_server 192.0.2.10 5060 {\n protocol UDP\n persistence_timeout 60\n \
         persistence_engine sip\n real_server 203.0.113.1 5060 {\n}\n}\n\
         virtual_server 192.0.2.11 5060 {\n protocol UDP\n persistence_engine sip\n \
         real_server 203.0.113.1 5060 {\n}\n}\n\
         virtual_server 192.0.2.12 5060 {\n protocol UDP\n persistence_timeout\n \
         persistence_engine sipsipsipsipsipsipsip\n real_server 203.0.113.1 5060 {\n}\n}\n",
    );
    let pe: Vec<Option<String>> = c
        .virtual_servers
        .iter()
        .map(|v| v.to_service().pe_name)
        .collect();
    assert_eq!(
        pe,
        [
            Some("sip".to_string()),
            None,
            Some("sipsipsipsipsips".to_string())
        ]
    );
    assert!(
        c.warnings.iter().any(|w| w
            .to_string()
            .contains("persistence_name too long, truncating")),
        "{:?}",
        c.warnings
    );
}
