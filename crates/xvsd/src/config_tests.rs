//! The conversion's unit tests: what xvsd refuses, at which line, and
//! the checkers' effective timing.

use super::*;

fn parse(text: &str) -> Result<Loaded, Errors> {
    let cfg = xvs_keepalived::parse_str_with(text, "t.conf", &Options { config_id: None })?;
    convert(&cfg)
}

#[test]
fn join_round_trips() {
    for args in [
        vec!["/bin/x", "a b", "it's", "say \"hi\"", "c\\d", ""],
        vec!["/usr/bin/true"],
    ] {
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let line = join_command(&args).unwrap();
        assert_eq!(xvs_health::script::split_command(&line).unwrap(), args);
    }
    assert!(join_command(&["a\\".to_string()]).is_err());
}

#[test]
fn unsupported_checkers_and_options_are_errors_at_their_line() {
    let e = parse(
        "virtual_server 10.0.0.1 80 {\n\
         protocol TCP\n\
         real_server 10.0.1.1 80 {\n\
           SMTP_CHECK {\n\
           }\n\
         }\n\
         real_server 10.0.1.2 80 {\n\
           HTTP_GET {\n\
             url {\n\
               path /\n\
               regex \"ok\"\n\
             }\n\
           }\n\
         }\n\
         real_server 10.0.1.3 80 {\n\
           PING_CHECK {\n\
           }\n\
           TCP_CHECK {\n\
             bind_if eth0\n\
           }\n\
         }\n\
        }\n",
    )
    .unwrap_err();
    let lines: Vec<String> = e.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        lines,
        [
            format!("t.conf:4: SMTP_CHECK is not supported by xvs ({SUPPORTED})"),
            "t.conf:8: HTTP_GET: url /: regex is not supported by xvs (use status_code or digest)"
                .to_string(),
            format!("t.conf:16: PING_CHECK is not supported by xvs ({SUPPORTED})"),
            "t.conf:18: TCP_CHECK: bind_if eth0 is not supported by xvs".to_string(),
        ]
    );
}

#[test]
fn table_validation_names_the_line() {
    let e = parse(
        "virtual_server 10.0.0.1 80 {\n\
         protocol TCP\n\
         persistence_timeout 60\n\
         persistence_engine foo\n\
         real_server 10.0.1.1 80 {\n\
         }\n\
        }\n\
        virtual_server 10.0.0.2 80 {\n\
         protocol TCP\n\
         lvs_method TUN type gre\n\
         real_server 10.0.1.1 80 {\n\
         }\n\
        }\n",
    )
    .unwrap_err();
    let lines: Vec<String> = e.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("t.conf:1: virtual server TCP"),
        "{lines:?}"
    );
    assert!(
        lines[0].contains("persistence engine not found"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("t.conf:11: real server 10.0.1.1:80"),
        "{lines:?}"
    );
    assert!(lines[1].contains("gre"), "{lines:?}");
}

#[test]
fn checkers_get_their_effective_timing() {
    let l = parse(
        "virtual_server 10.0.0.1 80 {\n\
         protocol TCP\n\
         delay_loop 2\n\
         real_server 10.0.1.1 8080 {\n\
           weight 3\n\
           inhibit_on_failure\n\
           HTTP_GET {\n\
             url {\n\
               path /health\n\
               status_code 204\n\
             }\n\
             connect_timeout 1\n\
             retry 2\n\
             delay_before_retry 1\n\
           }\n\
         }\n\
        }\n",
    )
    .unwrap();
    let vs = &l.managed.services[0];
    let rs = &vs.rs[0];
    assert!(rs.inhibit);
    assert_eq!(rs.dest.weight, 3);
    let t = rs.checkers[0].timing();
    assert_eq!(t.delay_loop, std::time::Duration::from_secs(2));
    assert_eq!(t.retry, 2);
    assert_eq!(t.connect_timeout, std::time::Duration::from_secs(1));
    let hc::CheckKind::Http(h) = &rs.checkers[0].kind else {
        panic!()
    };
    assert!(h.urls[0].status_ok(204) && !h.urls[0].status_ok(200));
    assert_eq!(
        l.managed.rs_specs()[0].id.dest,
        "10.0.1.1:8080".parse::<SocketAddr>().unwrap()
    );
}

#[test]
fn sctp_virtual_servers_become_sctp_services() {
    let l = parse(
        "virtual_server 10.0.0.1 5060 {\n\
         protocol sctp\n\
         lb_algo wrr\n\
         lb_kind NAT\n\
         real_server 10.0.1.1 5061 {\n\
         weight 2\n\
         }\n\
        }\n\
        virtual_server 10.0.0.1 5060 {\n\
         protocol TCP\n\
         lb_algo rr\n\
         lb_kind NAT\n\
         real_server 10.0.1.1 5060 {\n\
         }\n\
        }\n",
    )
    .unwrap();
    let s = &l.managed.services;
    assert_eq!(s.len(), 2, "same address and port, two protocols");
    let k = s[0].key();
    assert_eq!(
        (k.proto, k.addr, k.port),
        (
            xvs_core::model::Protocol::Sctp,
            std::net::IpAddr::from([10, 0, 0, 1]),
            5060
        )
    );
    assert_eq!(s[0].service.scheduler, "wrr");
    assert_eq!((s[0].rs[0].dest.port, s[0].rs[0].dest.weight), (5061, 2));
    assert_eq!(s[1].key().proto, xvs_core::model::Protocol::Tcp);
}

#[test]
fn fwmark_services_and_their_mark_rules() {
    let l = parse(
        "virtual_server fwmark 1 {\n\
         @xvsd match tcp 10.0.0.0/31\n\
         @xvsd match udp 10.0.0.0/31 53\n\
         lb_algo rr\n\
         lb_kind DR\n\
         persistence_timeout 300\n\
         real_server 10.0.1.1 {\n\
           TCP_CHECK { connect_port 80 }\n\
         }\n\
        }\n\
        virtual_server fwmark 2 {\n\
         lb_algo rr\n\
         real_server 10.0.1.2 8080 { }\n\
        }\n",
    )
    .unwrap();
    let s = &l.managed.services;
    assert_eq!(s[0].key(), ServiceKey::fwmark(1));
    assert_eq!(
        (s[0].rs[0].dest.port, s[0].rs[0].dest.fwd),
        (0, xvs_core::model::FwdMethod::Route)
    );
    assert_eq!(
        s[1].rs[0].dest.port, 8080,
        "a NAT real server keeps its port"
    );
    let o = l.managed.owned();
    assert_eq!(
        o.services,
        BTreeSet::from([ServiceKey::fwmark(1), ServiceKey::fwmark(2)])
    );
    let rules: Vec<String> = o.marks.iter().map(|r| format!("{} {r}", r.mark)).collect();
    assert_eq!(rules, ["1 tcp 10.0.0.0/31:*", "1 udp 10.0.0.0/31:53"]);
    let w: Vec<String> = l.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        w.contains(&"t.conf:11: warning: virtual server FWM 2: no @xvsd match line gives packets mark 2 - xvs has no iptables marks, so only xvsadm --add-mark rules can feed it".to_string()),
        "{w:?}"
    );
}

#[test]
fn mark_rule_conflicts_and_port_zero_checks_are_errors_at_their_line() {
    let e = parse(
        "virtual_server fwmark 1 {\n\
         @xvsd match tcp 10.0.0.0/24 80\n\
         lb_algo rr\n\
         real_server 10.0.1.1 {\n\
           TCP_CHECK { }\n\
         }\n\
        }\n\
        virtual_server fwmark 2 {\n\
         @xvsd match tcp 10.0.0.0/24 443,80\n\
         lb_algo rr\n\
         real_server 10.0.1.2 { }\n\
        }\n",
    )
    .unwrap_err();
    let lines: Vec<String> = e.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        lines,
        [
            "t.conf:5: TCP_CHECK: no port to check (the real server's port is 0) - set connect_port",
            "t.conf:9: match: mark rule tcp 10.0.0.0/24:443,80 conflicts with mark 1 given for the same addresses and port",
        ]
    );
}

#[test]
fn ipv6_virtual_servers_are_read_and_refused_by_the_table_at_their_line() {
    let e = parse(
        "virtual_server 2001:db8::1 80 {\n\
         protocol TCP\n\
         real_server 2001:db8::10 80 {\n\
         TCP_CHECK {\n\
         bindto 2001:db8::2\n\
         }\n\
         }\n\
        }\n\
        virtual_server fwmark 5 {\n\
         ip_family inet6\n\
         real_server 2001:db8::10 80 {\n\
         }\n\
        }\n",
    )
    .unwrap_err();
    let lines: Vec<String> = e.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("t.conf:1: virtual server TCP [2001:db8::1]:80")
            && lines[0].contains("IPv6 is not supported by xvs yet"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("t.conf:9: virtual server FWM 5")
            && lines[1].contains("IPv6 is not supported by xvs yet"),
        "{lines:?}"
    );
}

#[test]
fn ipv6_checker_addresses_reach_the_health_checker() {
    let cfg = xvs_keepalived::parse_str_with(
        "virtual_server 2001:db8::1 80 {\n\
         protocol TCP\n\
         real_server 2001:db8::10 80 {\n\
         HTTP_GET {\n\
         url {\n\
         path /\n\
         }\n\
         connect_ip 2001:db8::11\n\
         bindto 2001:db8::2\n\
         }\n\
         }\n\
        }\n",
        "t.conf",
        &Options { config_id: None },
    )
    .unwrap();
    let mut w = vec![];
    let c = &cfg.virtual_servers[0].real_servers[0].checkers[0];
    let h = checker(c, &mut w).unwrap();
    assert_eq!(
        (h.common.connect_ip, h.common.connect_port, h.common.bindto),
        (
            Some("2001:db8::11".parse().unwrap()),
            Some(80),
            Some("2001:db8::2".parse().unwrap())
        )
    );
}
