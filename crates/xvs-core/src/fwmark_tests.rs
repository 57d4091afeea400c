use super::*;

fn rule(mark: u32, proto: Protocol, net: &str, ports: &[(u16, u16)]) -> MarkRule {
    let (a, l) = net.split_once('/').unwrap_or((net, "32"));
    MarkRule {
        mark,
        proto,
        addr: a.parse().unwrap(),
        prefix_len: l.parse().unwrap(),
        ports: ports
            .iter()
            .map(|&(first, last)| PortRange { first, last })
            .collect(),
    }
}

/// What the data plane does with the compiled form: longest prefix,
/// then the port entry, else the any-port mark.
fn lookup(c: &[Compiled], proto: Protocol, daddr: Ipv4Addr, dport: u16) -> u32 {
    let d = u32::from(daddr);
    let hit = c
        .iter()
        .filter(|e| e.node.proto == proto && d & prefix_mask(e.node.len) == e.node.net)
        .max_by_key(|e| e.node.len);
    hit.map_or(0, |e| {
        e.ports.get(&dport).copied().unwrap_or(e.any_port_mark)
    })
}

#[test]
fn most_specific_wins_and_compiled_form_agrees() {
    use Protocol::*;
    let rules = vec![
        rule(1, Tcp, "10.0.0.0/8", &[]),
        rule(2, Tcp, "10.1.0.0/16", &[(80, 80), (443, 443)]),
        rule(3, Tcp, "10.1.2.0/24", &[]),
        rule(4, Tcp, "10.1.2.128/25", &[(8000, 8010)]),
        rule(5, Udp, "10.1.0.0/16", &[(53, 53)]),
        rule(6, Tcp, "0.0.0.0/0", &[(22, 22)]),
    ];
    let c = compile(&rules).unwrap();
    assert_eq!(c.len(), 6);
    let cases = [
        (Tcp, "10.9.9.9", 80, 1),
        (Tcp, "10.1.9.9", 80, 2),
        (Tcp, "10.1.9.9", 81, 1),
        (Tcp, "10.1.2.1", 80, 3),
        (Tcp, "10.1.2.200", 80, 3),
        (Tcp, "10.1.2.200", 8005, 4),
        (Tcp, "10.1.2.200", 22, 3),
        (Tcp, "192.0.2.1", 22, 6),
        (Tcp, "192.0.2.1", 23, 0),
        (Udp, "10.1.0.1", 53, 5),
        (Udp, "10.1.0.1", 54, 0),
        (Sctp, "10.1.0.1", 80, 0),
    ];
    for (p, a, port, want) in cases {
        let a: Ipv4Addr = a.parse().unwrap();
        assert_eq!(classify(&rules, p, a, port), want, "{p} {a}:{port}");
        assert_eq!(lookup(&c, p, a, port), want, "compiled {p} {a}:{port}");
    }
    // 10.1.2.0/24 has an any-port rule: 10.1.0.0/16's ports stop there.
    let n24 = c.iter().find(|e| e.node.len == 24).unwrap();
    assert!(n24.ports.is_empty());
    assert_eq!(n24.any_port_mark, 3);
}

#[test]
fn conflicts_and_host_bits_are_refused() {
    use Protocol::*;
    let e = compile(&[
        rule(1, Tcp, "10.1.0.0/24", &[(80, 90)]),
        rule(3, Tcp, "10.1.0.0/24", &[(85, 85)]),
    ])
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "mark rule tcp 10.1.0.0/24:85 conflicts with mark 1 given for the same addresses and port"
    );
    let e = compile(&[
        rule(1, Tcp, "10.1.0.0/24", &[]),
        rule(2, Tcp, "10.1.0.0/24", &[]),
    ]);
    assert!(matches!(e, Err(RuleError::Conflict { other: 1, .. })));
    // The same mark twice, or another protocol, is no conflict.
    compile(&[
        rule(1, Tcp, "10.1.0.0/24", &[]),
        rule(1, Tcp, "10.1.0.0/24", &[(80, 80)]),
    ])
    .unwrap();
    compile(&[
        rule(1, Tcp, "10.1.0.0/24", &[]),
        rule(2, Udp, "10.1.0.0/24", &[]),
    ])
    .unwrap();
    let e = compile(&[rule(1, Tcp, "10.0.0.1/24", &[])]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid mark address `10.0.0.1/24' (host bits set)"
    );
}

#[test]
fn caps_are_enforced() {
    let r = rule(1, Protocol::Tcp, "10.0.0.0/16", &[(1, 65535)]);
    let r2 = rule(1, Protocol::Tcp, "10.0.0.0/24", &[(1, 2)]);
    assert_eq!(
        compile(&[r, r2]).unwrap_err(),
        RuleError::TooMany(MAX_PORT_ENTRIES)
    );
}

#[test]
fn display_and_masks() {
    let r = rule(2, Protocol::Sctp, "10.1.0.0/24", &[(80, 80), (8000, 8080)]);
    assert_eq!(r.to_string(), "sctp 10.1.0.0/24:80,8000-8080");
    assert_eq!(
        rule(1, Protocol::Tcp, "0.0.0.0/0", &[]).to_string(),
        "tcp 0.0.0.0/0:*"
    );
    assert_eq!(prefix_mask(0), 0);
    assert_eq!(prefix_mask(24), 0xffff_ff00);
    assert_eq!(prefix_mask(32), u32::MAX);
}
