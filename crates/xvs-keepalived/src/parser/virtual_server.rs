//! `virtual_server_group` and `virtual_server` blocks and their keywords
//! (keepalived's `check_parser.c`).

use super::values::{digits, parse_ip, parse_port};
use super::*;
use std::net::Ipv6Addr;

impl P {
    pub(super) fn vsg(&mut self, n: &Node) {
        let Some(name) = self.arg(n, 1, "group name") else {
            return;
        };
        let name = name.to_string();
        let Some(b) = &n.block else {
            self.err(
                &n.loc,
                format!("virtual_server_group {name}: missing {{ }} block"),
            );
            return;
        };
        let mut entries = vec![];
        let mut fwmarks = vec![];
        let mut bad = false;
        for e in b {
            if e.kw() == "fwmark" {
                match self.vsg_fwmark(&name, e) {
                    Some(m) => fwmarks.push(m),
                    None => bad = true,
                }
                continue;
            }
            match self.vsg_entry(e) {
                Some(v) => entries.extend(v),
                None => bad = true,
            }
        }
        // keepalived's alloc_vsg: a fwmark entry without a family takes the
        // group's, which must then be one.
        let have = |af| entries.iter().any(|&(a, _)| Af::of(a) == af);
        if have(Af::Inet) && have(Af::Inet6) && fwmarks.iter().any(|f| f.2.is_none()) {
            self.err(
                &n.loc,
                format!("virtual server group {name} cannot have IPv4, IPv6 and fwmark without family - removing"),
            );
            return;
        }
        if entries.is_empty() && fwmarks.is_empty() && !bad {
            self.err(
                &n.loc,
                format!("virtual_server_group {name} has no entries"),
            );
        }
        if let Some(prev) = self.groups.get(&name) {
            let p = prev.loc.clone();
            self.err(
                &n.loc,
                format!("virtual_server_group {name} already defined at {p}"),
            );
            return;
        }
        self.groups.insert(
            name,
            Group {
                loc: n.loc.clone(),
                entries,
                fwmarks,
            },
        );
    }

    /// `IP [PORT]`, `IP-LAST [PORT]`, `IP-IP [PORT]`, `IP/LEN [PORT]`, IPv4
    /// or IPv6 (see [`P::vsg_entry_v6`]).
    pub(super) fn vsg_entry(&mut self, e: &Node) -> Option<Vec<(IpAddr, u16)>> {
        let spec = e.kw();
        let port = match parse_port(e.words.get(1).map(String::as_str)) {
            Ok(p) => p.unwrap_or(0),
            Err(m) => {
                self.err(&e.loc, format!("virtual_server_group entry: {m}"));
                return None;
            }
        };
        let fail = |s: &mut Self, m: String| {
            s.err(&e.loc, format!("virtual_server_group entry '{spec}': {m}"));
            None
        };
        if spec.contains(':') {
            return self.vsg_entry_v6(e, spec, port);
        }
        let (first, last) = if let Some((a, len)) = spec.split_once('/') {
            let a: Ipv4Addr = match a.parse() {
                Ok(a) => a,
                Err(_) => return fail(self, "invalid address".into()),
            };
            let len = match digits(len) {
                Some(l) if (1..=32).contains(&l) => l as u32,
                _ => return fail(self, "invalid netmask".into()),
            };
            let host = if len == 32 { 0 } else { u32::MAX >> len };
            let a = u32::from(a);
            if a & host != 0 {
                return fail(self, "address has host bits set".into());
            }
            (a, a | host)
        } else if let Some((a, end)) = spec.split_once('-') {
            let a: Ipv4Addr = match a.parse() {
                Ok(a) => a,
                Err(_) => return fail(self, "invalid range start".into()),
            };
            let a = u32::from(a);
            let end = if end.contains('.') {
                match end.parse::<Ipv4Addr>() {
                    Ok(x) => u32::from(x),
                    Err(_) => return fail(self, "invalid range end".into()),
                }
            } else {
                match digits(end) {
                    Some(x) if x <= 255 => (a & 0xffff_ff00) | x as u32,
                    _ => return fail(self, "invalid range end".into()),
                }
            };
            if end < a {
                return fail(self, "range end is below its start".into());
            }
            (a, end)
        } else {
            match spec.parse::<Ipv4Addr>() {
                Ok(a) => (u32::from(a), u32::from(a)),
                Err(_) => return fail(self, "invalid address".into()),
            }
        };
        if u64::from(last - first) >= MAX_RANGE {
            return fail(self, format!("range has more than {MAX_RANGE} addresses"));
        }
        Some(
            (first..=last)
                .map(|a| (IpAddr::V4(Ipv4Addr::from(a)), port))
                .collect(),
        )
    }

    /// An IPv6 group entry (keepalived's `inet_stor` with `AF_INET6`):
    /// `A-B` ends at B, a full address differing from A in the last 16-bit
    /// group only, or (no `:` in B) at B read as a hex number, the last
    /// group (`ae00::2-9`, `ae00::a-ff`); `A/LEN` is 1..128 with the host
    /// bits clear.
    fn vsg_entry_v6(&mut self, e: &Node, spec: &str, port: u16) -> Option<Vec<(IpAddr, u16)>> {
        let fail = |s: &mut Self, m: String| {
            s.err(&e.loc, format!("virtual_server_group entry '{spec}': {m}"));
            None
        };
        let (first, last) = if let Some((a, len)) = spec.split_once('/') {
            let a: Ipv6Addr = match a.parse() {
                Ok(a) => a,
                Err(_) => return fail(self, "invalid address".into()),
            };
            let len = match digits(len) {
                Some(l) if (1..=128).contains(&l) => l as u32,
                _ => return fail(self, "invalid netmask".into()),
            };
            let host = u128::MAX.checked_shr(len).unwrap_or(0);
            let a = u128::from(a);
            if a & host != 0 {
                return fail(self, "address has host bits set".into());
            }
            (a, a | host)
        } else if let Some((a, end)) = spec.split_once('-') {
            let a = match a.parse::<Ipv6Addr>() {
                Ok(a) => u128::from(a),
                Err(_) => return fail(self, "invalid range start".into()),
            };
            let end = if end.contains(':') {
                match end.parse::<Ipv6Addr>() {
                    Ok(x) if u128::from(x) >> 16 == a >> 16 => u128::from(x),
                    Ok(_) => {
                        return fail(
                            self,
                            "range end differs from its start outside the last group".into(),
                        )
                    }
                    Err(_) => return fail(self, "invalid range end".into()),
                }
            } else if !end.is_empty() && end.bytes().all(|b| b.is_ascii_hexdigit()) {
                match u16::from_str_radix(end, 16) {
                    Ok(x) => (a & !0xffff) | u128::from(x),
                    Err(_) => return fail(self, format!("end '{end}' too large")),
                }
            } else {
                return fail(self, "invalid range end".into());
            };
            if end < a {
                return fail(self, "range end is below its start".into());
            }
            (a, end)
        } else {
            match spec.parse::<Ipv6Addr>() {
                Ok(a) => (u128::from(a), u128::from(a)),
                Err(_) => return fail(self, "invalid address".into()),
            }
        };
        if last - first >= u128::from(MAX_RANGE) {
            return fail(self, format!("range has more than {MAX_RANGE} addresses"));
        }
        Some(
            (first..=last)
                .map(|a| (IpAddr::V6(Ipv6Addr::from(a)), port))
                .collect(),
        )
    }

    /// The services a virtual server block stands for: its address or
    /// mark, or its group's entries (addresses first, then fwmark entries,
    /// as keepalived's `ipvs_group_cmd`). `None` after an error.
    pub(super) fn entries(&mut self, vs: &RawVs) -> Option<Vec<Entry>> {
        let g = match &vs.target {
            Target::Addr(a, p) => return Some(vec![Entry::Addr(*a, *p)]),
            Target::Fwmark(mark) => {
                return Some(vec![Entry::Fwmark {
                    mark: *mark,
                    grouped: false,
                    af: None,
                }])
            }
            Target::Group(g) => g,
        };
        let Some(grp) = self.groups.get(g) else {
            self.err(
                &vs.loc,
                format!("virtual_server group {g}: no virtual_server_group {g} is defined"),
            );
            return None;
        };
        let mut out: Vec<Entry> = grp
            .entries
            .iter()
            .map(|&(a, p)| Entry::Addr(a, p))
            .collect();
        out.extend(grp.fwmarks.iter().map(|&(_, mark, af)| Entry::Fwmark {
            mark,
            grouped: true,
            af,
        }));
        // A `match` line gives one mark: the group's only fwmark entry.
        if !vs.matches.is_empty() && grp.fwmarks.len() != 1 {
            let n = grp.fwmarks.len();
            for m in &vs.matches {
                self.err(
                    &m.loc,
                    format!("match: virtual_server_group {g} has {n} fwmark entries - a match line needs exactly one"),
                );
            }
            return None;
        }
        Some(out)
    }

    // ------------------------------------------------------ virtual_server

    pub(super) fn virtual_server(&mut self, n: &Node) {
        let Some(first) = self.arg(n, 1, "address, 'fwmark N' or 'group NAME'") else {
            return;
        };
        let target = match first {
            "group" => match n.words.get(2) {
                Some(g) => Target::Group(g.clone()),
                None => {
                    self.err(&n.loc, "virtual_server group: missing group name");
                    return;
                }
            },
            "fwmark" => {
                let Some(m) = n.words.get(2) else {
                    self.err(&n.loc, "virtual_server fwmark: missing mark");
                    return;
                };
                match super::fwmark::parse_mark(m) {
                    Ok(mark) => Target::Fwmark(mark),
                    Err(e) => {
                        self.err(&n.loc, format!("virtual_server fwmark {m}: {e}"));
                        return;
                    }
                }
            }
            a => {
                let addr = match parse_ip(a) {
                    Ok(addr) => addr,
                    Err(e) => {
                        self.err(&n.loc, format!("virtual_server: {e}"));
                        return;
                    }
                };
                match parse_port(n.words.get(2).map(String::as_str)) {
                    Ok(p) => Target::Addr(addr, p.unwrap_or(0)),
                    Err(e) => {
                        self.err(&n.loc, format!("virtual_server: {e}"));
                        return;
                    }
                }
            }
        };
        let Some(b) = &n.block else {
            self.err(&n.loc, "virtual_server: missing { } block");
            return;
        };
        let af = match &target {
            Target::Addr(a, _) => Some(Af::of(*a)),
            _ => None,
        };
        let mut vs = RawVs {
            loc: n.loc.clone(),
            af,
            tunnel_afs: vec![],
            target,
            protocol: None,
            sched: None,
            flags: 0,
            fwd: None,
            persistence_timeout: None,
            granularity: None,
            engine: None,
            delay_loop: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            retry: None,
            delay_before_retry: None,
            warmup: None,
            inhibit: false,
            alpha: false,
            omega: false,
            quorum: 1,
            hysteresis: 0,
            quorum_up: None,
            quorum_down: None,
            ha_suspend: false,
            virtualhost: None,
            weight: 1,
            sorry: None,
            rs: vec![],
            matches: vec![],
        };
        for c in b {
            self.vs_keyword(&mut vs, c);
        }
        self.vss.push(vs);
    }

    pub(super) fn vs_keyword(&mut self, vs: &mut RawVs, n: &Node) {
        let kw = n.kw();
        if kw != "real_server" {
            self.no_block(n);
        }
        if !matches!(kw, "quorum_up" | "quorum_down") {
            self.quote_check(n);
        }
        match kw {
            "ip_family" => {
                let af = match n.words.get(1).map(String::as_str) {
                    Some("inet") => Af::Inet,
                    Some("inet6") => Af::Inet6,
                    Some(o) => {
                        self.err(&n.loc, format!("ip_family: unknown address family {o}"));
                        return;
                    }
                    None => {
                        self.err(&n.loc, "ip_family: missing family");
                        return;
                    }
                };
                match vs.af {
                    Some(cur) if cur != af => self.err(
                        &n.loc,
                        format!(
                            "Virtual server specified family {} conflicts with server family",
                            n.words[1]
                        ),
                    ),
                    _ => vs.af = Some(af),
                }
            }
            "retry" => vs.retry = self.u32v(n, 1, u32::MAX as u64).or(vs.retry),
            "delay_before_retry" => {
                vs.delay_before_retry = self.timer(n, 0, 0).or(vs.delay_before_retry)
            }
            "warmup" => vs.warmup = self.timer(n, 0, 0).or(vs.warmup),
            "connect_timeout" => {
                vs.connect_timeout = self
                    .timer(n, 1, u32::MAX as u64)
                    .unwrap_or(vs.connect_timeout)
            }
            "delay_loop" => vs.delay_loop = self.timer(n, 1, 0).unwrap_or(vs.delay_loop),
            "inhibit_on_failure" => vs.inhibit = true,
            "lb_algo" | "lvs_sched" => {
                if let Some(s) = self.arg(n, 1, "scheduler") {
                    if SCHEDULERS.contains(&s) {
                        vs.sched = Some(s.to_string());
                    } else {
                        self.err(
                            &n.loc,
                            format!("{kw}: invalid scheduler '{s}' ({})", SCHEDULERS.join("|")),
                        );
                    }
                }
            }
            "hashed" => {}
            "ops" => vs.flags |= svc_flags::ONEPACKET,
            "flag-1" => vs.flags |= svc_flags::SCHED1,
            "flag-2" => vs.flags |= svc_flags::SCHED2,
            "flag-3" => vs.flags |= svc_flags::SCHED3,
            "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" => {
                let want = &kw[..2];
                if vs.sched.as_deref() == Some(want) {
                    vs.flags |= if kw.ends_with("port") {
                        svc_flags::SCHED2
                    } else {
                        svc_flags::SCHED1
                    };
                } else {
                    self.err(&n.loc, format!("{kw} only applies to the {want} scheduler (set lvs_sched {want} before it)"));
                }
            }
            "lb_kind" | "lvs_method" => {
                if let Some(f) = self.forwarding(n) {
                    vs.fwd = Some(f);
                }
            }
            "persistence_engine" => {
                if let Some(e) = self.arg(n, 1, "engine name") {
                    // IP_VS_PENAME_MAXLEN, as keepalived's pengine_handler
                    // cuts it.
                    let cut: String = e.chars().take(16).collect();
                    if cut.len() < e.len() {
                        self.warn(
                            &n.loc,
                            format!("persistence_name too long, truncating - {e}"),
                        );
                    }
                    vs.engine = Some(cut);
                }
            }
            "persistence_timeout" => {
                if n.words.len() < 2 {
                    vs.persistence_timeout = Some(DEFAULT_PERSISTENCE);
                } else if let Some(t) = self.u32v(n, 1, LVS_MAX_TIMEOUT) {
                    vs.persistence_timeout = Some(t);
                }
            }
            "persistence_granularity" => {
                if let Some(m) = self.arg(n, 1, "netmask") {
                    // keepalived's pgr_handler: the family's form (IPv6:
                    // a prefix length 1..128); with no family yet, the
                    // value's form decides it (a '.' means IPv4).
                    let af = vs
                        .af
                        .unwrap_or(if m.contains('.') { Af::Inet } else { Af::Inet6 });
                    let mask = match af {
                        Af::Inet6 => match digits(m) {
                            Some(l) if (1..=128).contains(&l) => Some(
                                xvs_core::model::prefix_mask(Af::Inet6.unspecified(), l as u32),
                            ),
                            _ => {
                                self.err(
                                    &n.loc,
                                    format!("Invalid IPv6 persistence_granularity specified - {m}"),
                                );
                                None
                            }
                        },
                        Af::Inet => match m.parse::<Ipv4Addr>() {
                            Ok(a) => Some(IpAddr::V4(a)),
                            Err(_) => {
                                self.err(
                                    &n.loc,
                                    format!("persistence_granularity: invalid netmask '{m}'"),
                                );
                                None
                            }
                        },
                    };
                    if let Some(mask) = mask {
                        vs.af = Some(af);
                        vs.granularity = Some(mask);
                        if vs.persistence_timeout.is_none() {
                            vs.persistence_timeout = Some(DEFAULT_PERSISTENCE);
                        }
                    }
                }
            }
            _ => self.vs_member_keyword(vs, n, kw),
        }
    }

    /// The keywords of a `virtual_server` block after the scheduling and
    /// persistence ones: protocol, alerts, quorum, sorry server, real servers.
    fn vs_member_keyword(&mut self, vs: &mut RawVs, n: &Node, kw: &str) {
        match kw {
            "protocol" => {
                if let Some(p) = self.arg(n, 1, "protocol") {
                    match p.to_ascii_uppercase().as_str() {
                        "TCP" => vs.protocol = Some(Protocol::Tcp),
                        "UDP" => vs.protocol = Some(Protocol::Udp),
                        "SCTP" => vs.protocol = Some(Protocol::Sctp),
                        _ => self.err(
                            &n.loc,
                            format!("protocol: unknown protocol '{p}' (TCP|UDP|SCTP)"),
                        ),
                    }
                }
            }
            "ha_suspend" => vs.ha_suspend = true,
            "match" => self.match_line(vs, n),
            "smtp_alert" => self.warn(&n.loc, "smtp_alert ignored: xvs sends no e-mail"),
            "snmp_name" => self.warn(&n.loc, "snmp_name ignored: xvs has no SNMP agent"),
            "virtualhost" => self.string(n, &mut vs.virtualhost),
            "alpha" => vs.alpha = true,
            "omega" => vs.omega = true,
            "quorum_up" | "quorum_down" => {
                let slot = if kw == "quorum_up" {
                    &vs.quorum_up
                } else {
                    &vs.quorum_down
                };
                if slot.is_some() {
                    self.err(&n.loc, format!("{kw} script already specified"));
                } else if let Some(s) = self.script(n) {
                    if kw == "quorum_up" {
                        vs.quorum_up = Some(s);
                    } else {
                        vs.quorum_down = Some(s);
                    }
                }
            }
            "quorum" => vs.quorum = self.u32v(n, 1, u32::MAX as u64).unwrap_or(vs.quorum),
            "hysteresis" => {
                vs.hysteresis = self.u32v(n, 0, u32::MAX as u64).unwrap_or(vs.hysteresis)
            }
            "weight" => vs.weight = self.u32v(n, 1, MAX_WEIGHT).unwrap_or(vs.weight),
            "sorry_server" => {
                let Some(addr) = self.ip(n, 1) else { return };
                match parse_port(n.words.get(2).map(String::as_str)) {
                    Ok(port) => {
                        // It may give the virtual server its family; one of
                        // the other family is skipped when resolved, with
                        // its final lvs_method (sorry_server_lvs_method
                        // comes after this line).
                        let tunnel = vs.fwd.is_some_and(|f| f.method == FwdMethod::Tunnel);
                        if tunnel {
                            vs.tunnel_afs.push(Af::of(addr));
                        } else if vs.af.is_none() {
                            vs.af = Some(Af::of(addr));
                        }
                        vs.sorry = Some(RawSorry {
                            loc: n.loc.clone(),
                            addr,
                            port,
                            fwd: vs.fwd,
                            inhibit: false,
                        })
                    }
                    Err(e) => self.err(&n.loc, format!("sorry_server: {e}")),
                }
            }
            "sorry_server_inhibit" => match &mut vs.sorry {
                Some(s) => s.inhibit = true,
                None => self.err(
                    &n.loc,
                    "sorry_server_inhibit used before or without sorry_server",
                ),
            },
            "sorry_server_lvs_method" => {
                if vs.sorry.is_none() {
                    self.err(
                        &n.loc,
                        "sorry_server_lvs_method used before or without sorry_server",
                    );
                } else if let Some(f) = self.forwarding(n) {
                    if let Some(s) = &mut vs.sorry {
                        s.fwd = Some(f);
                    }
                }
            }
            "real_server" => {
                if let Some(rs) = self.real_server(vs, n) {
                    if self.server_af(vs, n, "real server", rs.addr, rs.fwd) {
                        vs.rs.push(rs);
                    }
                }
            }
            k => self.warn(
                &n.loc,
                format!("virtual_server: unknown keyword '{k}' ignored"),
            ),
        }
    }

    /// keepalived's `rs_end_handler`: a non-tunnelled real server sets the
    /// family of a virtual server that has none yet, and one of the other
    /// family is skipped; tunnelled servers may be of either family (IPVS
    /// allows mixed families for tunnels only). False if the server is
    /// skipped.
    fn server_af(
        &mut self,
        vs: &mut RawVs,
        n: &Node,
        what: &str,
        addr: IpAddr,
        fwd: Option<Forwarding>,
    ) -> bool {
        let af = Af::of(addr);
        if fwd.is_some_and(|f| f.method == FwdMethod::Tunnel) {
            vs.tunnel_afs.push(af);
            return true;
        }
        match vs.af {
            None => {
                vs.af = Some(af);
                true
            }
            Some(cur) if cur == af => true,
            Some(_) => {
                self.warn(
                    &n.loc,
                    format!("Address family of virtual server and {what} {addr} don't match - skipping {what}."),
                );
                false
            }
        }
    }
}
