//! keepalived's `validate_check_config`: defaults and adjustments that turn
//! the raw forms into [`VirtualServer`]s.

use super::values::ap;
use super::*;

impl P {
    /// keepalived's `validate_check_config` for one virtual server and one of
    /// its addresses.
    pub(super) fn resolve(
        &mut self,
        vs: &RawVs,
        group: Option<&str>,
        entry: Entry,
    ) -> Option<VirtualServer> {
        let af = self.entry_af(vs, entry);
        let (fwmark, addr, port) = match entry {
            Entry::Addr(a, p) => (0, a, p),
            Entry::Fwmark { mark, .. } => (mark, af.unspecified(), 0),
        };
        let name = match entry {
            Entry::Addr(..) => ap(addr, port),
            Entry::Fwmark { mark, .. } => format!("FWM {mark}"),
        };
        let granularity = match vs.granularity {
            Some(g) if Af::of(g) != af => {
                self.warn(
                    &vs.loc,
                    format!("virtual server {name}: persistence_granularity is of the other address family - ignored"),
                );
                None
            }
            g => g,
        };
        if vs.rs.is_empty() {
            self.warn(
                &vs.loc,
                format!("virtual server {name} has no real servers - ignored (as keepalived)"),
            );
            return None;
        }
        let (protocol, flags, persistence_timeout) = match entry {
            Entry::Addr(..) => self.addr_checks(vs, &name, port),
            Entry::Fwmark { grouped, .. } => {
                // keepalived drops the protocol of a fwmark VS (its
                // service_type), and IPVS keys a fwmark service as TCP.
                if vs.protocol.is_some() && !grouped {
                    self.warn(
                        &vs.loc,
                        format!("virtual server {name}: protocol specified for fwmark - protocol will be ignored"),
                    );
                }
                (Protocol::Tcp, vs.flags, vs.persistence_timeout)
            }
        };
        let ha_suspend = vs.ha_suspend && fwmark == 0;
        if vs.ha_suspend && fwmark != 0 {
            self.warn(
                &vs.loc,
                format!("virtual server {name}: cannot use ha_suspend with fwmarks - clearing ha_suspend"),
            );
        }
        let scheduler = vs.sched.clone().unwrap_or_else(|| {
            self.warn(&vs.loc, "no scheduler set - using 'wlc' (as keepalived)");
            "wlc".into()
        });
        let mut warned_fwd = false;
        let (rss, weight_sum) = self.resolve_real_servers(vs, entry, af, &mut warned_fwd);
        if rss.is_empty() {
            self.warn(
                &vs.loc,
                format!("virtual server {name}: no real server of its address family - ignored"),
            );
            return None;
        }
        let sorry_server = self.resolve_sorry(vs, entry, af, &rss, &mut warned_fwd);
        let mut quorum = vs.quorum;
        if u64::from(quorum) > weight_sum {
            self.warn(
                &vs.loc,
                format!("quorum {quorum} exceeds the total weight of the real servers {weight_sum} - reduced to {weight_sum}"),
            );
            quorum = weight_sum as u32;
        }
        let mut hysteresis = vs.hysteresis;
        if hysteresis >= quorum && hysteresis > 0 {
            let h = quorum.saturating_sub(1);
            self.warn(
                &vs.loc,
                format!("hysteresis {hysteresis} >= quorum {quorum} - set to {h}"),
            );
            hysteresis = h;
        }
        Some(VirtualServer {
            location: vs.loc.clone(),
            group: group.map(str::to_string),
            fwmark,
            mark_rules: if fwmark != 0 {
                self.match_rules(vs, fwmark)
            } else {
                vec![]
            },
            addr,
            port,
            protocol,
            scheduler,
            flags,
            forwarding: vs.fwd.unwrap_or_default(),
            persistence_timeout,
            // keepalived's ipvs_group_cmd resets the netmask of a group's
            // fwmark entries to the full mask (fwmark.md §C.3).
            persistence_granularity: match entry {
                Entry::Fwmark { grouped: true, .. } => None,
                _ => granularity,
            },
            persistence_engine: vs.engine.clone(),
            delay_loop: vs.delay_loop,
            connect_timeout: vs.connect_timeout,
            retry: vs.retry,
            delay_before_retry: vs.delay_before_retry,
            warmup: vs.warmup,
            inhibit_on_failure: vs.inhibit,
            alpha: vs.alpha,
            omega: vs.omega,
            quorum,
            hysteresis,
            quorum_up: vs.quorum_up.clone(),
            quorum_down: vs.quorum_down.clone(),
            ha_suspend,
            virtualhost: vs.virtualhost.clone(),
            sorry_server,
            real_servers: rss,
        })
    }

    /// The family of one service of `vs`: an address's own; a fwmark
    /// entry's named family (`fwmark N inet6` in a group), else the
    /// virtual server's (`ip_family`, its non-tunnelled servers,
    /// `persistence_granularity`), else a group's addresses' (IPv4 if it
    /// has any), else that of its tunnelled servers when they agree, else
    /// IPv4 (keepalived's `vs_end_handler` and `ipvs_set_srule`).
    fn entry_af(&self, vs: &RawVs, entry: Entry) -> Af {
        match entry {
            Entry::Addr(a, _) => Af::of(a),
            Entry::Fwmark { af: Some(af), .. } => af,
            Entry::Fwmark { .. } => {
                if let Some(af) = vs.af {
                    return af;
                }
                if let Target::Group(g) = &vs.target {
                    if let Some(grp) = self.groups.get(g) {
                        let has = |af| grp.entries.iter().any(|&(a, _)| Af::of(a) == af);
                        if has(Af::Inet) {
                            return Af::Inet;
                        }
                        if has(Af::Inet6) {
                            return Af::Inet6;
                        }
                    }
                }
                match vs.tunnel_afs.split_first() {
                    Some((&first, rest)) if rest.iter().all(|&a| a == first) => first,
                    _ => Af::Inet,
                }
            }
        }
    }

    /// keepalived's checks of an address service: the protocol (UDP when
    /// unset), one-packet scheduling (UDP only) and port 0 (persistent
    /// only). fwmark services skip all three.
    fn addr_checks(&mut self, vs: &RawVs, name: &str, port: u16) -> (Protocol, u32, Option<u32>) {
        let protocol = vs.protocol.unwrap_or_else(|| {
            self.warn(
                &vs.loc,
                "no protocol set - defaulting to UDP (as keepalived)",
            );
            Protocol::Udp
        });
        let mut flags = vs.flags;
        // keepalived's check_data.c clears the flag for TCP and SCTP alike.
        if flags & svc_flags::ONEPACKET != 0 && protocol != Protocol::Udp {
            self.warn(
                &vs.loc,
                format!(
                    "virtual server {name}: one packet scheduling requires UDP - resetting (as keepalived)"
                ),
            );
            flags &= !svc_flags::ONEPACKET;
        }
        let mut persistence_timeout = vs.persistence_timeout;
        if persistence_timeout.is_none() && port == 0 {
            self.warn(
                &vs.loc,
                "zero port only valid for persistent services - setting persistence_timeout 360",
            );
            persistence_timeout = Some(DEFAULT_PERSISTENCE);
        }
        (protocol, flags, persistence_timeout)
    }

    /// The port of a real (`what`) or sorry server of `entry`. An address
    /// service: the given port, else the virtual port; DR/TUN always the
    /// virtual port. A fwmark service (keepalived's check_data.c): NAT keeps
    /// the given port (0 if none), DR/TUN get 0, with a warning when a port
    /// was given.
    fn server_port(
        &mut self,
        entry: Entry,
        loc: &Location,
        what: &str,
        addr: IpAddr,
        given: Option<u16>,
        method: FwdMethod,
    ) -> u16 {
        let port = match entry {
            Entry::Addr(_, port) => port,
            Entry::Fwmark { mark, grouped, .. } => {
                if method == FwdMethod::Masq {
                    return given.unwrap_or(0);
                }
                if let Some(p) = given {
                    let a = ap(addr, p);
                    let m = if grouped {
                        format!("fwmark virtual server FWM {mark}, {what} {a} has port specified - port will be ignored")
                    } else {
                        format!("fwmark virtual server FWM {mark}, {what} {a} has port specified - clearing")
                    };
                    self.warn(loc, m);
                }
                return 0;
            }
        };
        let rport = given.unwrap_or(port);
        if method != FwdMethod::Masq && rport != port {
            let m = if what == "real server" {
                format!("real server {}: port differs from virtual server port {port} with DR/TUN - using {port}", ap(addr, rport))
            } else {
                format!("sorry server port differs from virtual server port {port} with DR/TUN - using {port}")
            };
            self.warn(loc, m);
        }
        if method != FwdMethod::Masq {
            port
        } else {
            rport
        }
    }

    /// The virtual server's forwarding method for a real or sorry server
    /// without its own; the missing-method warning once per virtual server.
    fn vs_fwd(&mut self, vs: &RawVs, warned: &mut bool) -> Forwarding {
        vs.fwd.unwrap_or_else(|| {
            if !*warned {
                self.warn(
                    &vs.loc,
                    "no forwarding method set - using NAT (as keepalived)",
                );
                *warned = true;
            }
            Forwarding::NAT
        })
    }

    /// The real servers of one virtual server address, duplicates removed,
    /// and the sum of their weights.
    fn resolve_real_servers(
        &mut self,
        vs: &RawVs,
        entry: Entry,
        af: Af,
        warned_fwd: &mut bool,
    ) -> (Vec<RealServer>, u64) {
        let mut rss: Vec<RealServer> = vec![];
        let mut weight_sum: u64 = 0;
        for r in &vs.rs {
            let fwd = match r.fwd {
                Some(f) => f,
                None => self.vs_fwd(vs, warned_fwd),
            };
            if !self.same_af(af, r.addr, fwd, &r.loc, "real server") {
                continue;
            }
            let rport = self.server_port(entry, &r.loc, "real server", r.addr, r.port, fwd.method);
            if let Some(prev) = rss.iter().find(|x| x.addr == r.addr && x.port == rport) {
                let p = prev.location.clone();
                self.warn(
                    &r.loc,
                    format!(
                        "real server {} duplicates the one at {p} - removed",
                        ap(r.addr, rport)
                    ),
                );
                continue;
            }
            let weight = r.weight.unwrap_or(vs.weight);
            weight_sum += u64::from(weight);
            let inhibit = r.inhibit.unwrap_or(vs.inhibit);
            let alpha = r.alpha.unwrap_or(vs.alpha);
            let mut checkers = vec![];
            for c in &r.checkers {
                checkers.push(self.resolve_checker(vs, r, c, rport));
            }
            rss.push(RealServer {
                location: r.loc.clone(),
                addr: r.addr,
                port: rport,
                weight,
                forwarding: fwd,
                u_threshold: r.u_threshold,
                l_threshold: r.l_threshold,
                inhibit_on_failure: inhibit,
                alpha,
                notify_up: r.notify_up.clone(),
                notify_down: r.notify_down.clone(),
                virtualhost: r.virtualhost.clone(),
                checkers,
            });
        }
        (rss, weight_sum)
    }

    /// The sorry server, its port and inhibit_on_failure adjusted like the
    /// real servers'.
    fn resolve_sorry(
        &mut self,
        vs: &RawVs,
        entry: Entry,
        af: Af,
        rss: &[RealServer],
        warned_fwd: &mut bool,
    ) -> Option<SorryServer> {
        vs.sorry.as_ref().and_then(|s| {
            let fwd = match s.fwd {
                Some(f) => f,
                None => self.vs_fwd(vs, warned_fwd),
            };
            if !self.same_af(af, s.addr, fwd, &s.loc, "sorry server") {
                return None;
            }
            let sport = self.server_port(entry, &s.loc, "sorry server", s.addr, s.port, fwd.method);
            let mut inhibit = s.inhibit;
            if let Some(rs) = rss.iter().find(|r| r.addr == s.addr && r.port == sport) {
                if rs.inhibit_on_failure != inhibit {
                    self.warn(&s.loc, "sorry server is also a real server with another inhibit_on_failure - using the real server's");
                    inhibit = rs.inhibit_on_failure;
                }
            }
            Some(SorryServer { location: s.loc.clone(), addr: s.addr, port: sport, forwarding: fwd, inhibit })
        })
    }

    /// Whether a server may serve a service of family `af`: its own
    /// family, or either when tunnelled (IPVS allows mixed families for
    /// tunnels only). A group's entries can be of both families; a server
    /// of the other one is skipped for those entries, with keepalived's
    /// message.
    fn same_af(
        &mut self,
        af: Af,
        addr: IpAddr,
        fwd: Forwarding,
        loc: &Location,
        what: &str,
    ) -> bool {
        if fwd.method == FwdMethod::Tunnel || Af::of(addr) == af {
            return true;
        }
        self.warn(
            loc,
            format!(
                "Address family of virtual server and {what} {addr} don't match - skipping {what}."
            ),
        );
        false
    }

    pub(super) fn resolve_checker(
        &mut self,
        vs: &RawVs,
        r: &RawRs,
        c: &RawChecker,
        rport: u16,
    ) -> Checker {
        let conn_timeout = r.connect_timeout.unwrap_or(vs.connect_timeout);
        let conn_of = |co: &RawConn, base: Option<&ConnOpts>| ConnOpts {
            connect_ip: co
                .connect_ip
                .or(base.map(|b| b.connect_ip))
                .unwrap_or(r.addr),
            connect_port: co
                .connect_port
                .or(base.map(|b| b.connect_port))
                .unwrap_or(rport),
            bindto: co.bindto.or(base.and_then(|b| b.bindto)),
            bind_port: co.bind_port.or(base.and_then(|b| b.bind_port)),
            bind_if: co.bind_if.clone().or(base.and_then(|b| b.bind_if.clone())),
            fwmark: co.fwmark.or(base.and_then(|b| b.fwmark)),
            connect_timeout: co
                .connect_timeout
                .or(base.map(|b| b.connect_timeout))
                .unwrap_or(conn_timeout),
        };
        let conn = c.conn.as_ref().map(|co| conn_of(co, None));
        let delay_loop = c.delay_loop.or(r.delay_loop).unwrap_or(vs.delay_loop);
        let (default_retry, default_dbr) = match &c.kind {
            RawKind::Http(..) => (1, Duration::from_secs(3)),
            RawKind::Misc(..) => (0, Duration::from_secs(1)),
            RawKind::Dns(_) => (3, delay_loop),
            _ => (1, Duration::from_secs(1)),
        };
        let kind = match &c.kind {
            RawKind::Tcp => CheckerKind::Tcp,
            RawKind::Ping => CheckerKind::Ping,
            RawKind::Unsupported(k) => CheckerKind::Unsupported { keyword: k.clone() },
            RawKind::Udp(u) => CheckerKind::Udp(u.clone()),
            RawKind::Dns(d) => CheckerKind::Dns(d.clone()),
            RawKind::Http(h, vhost) => {
                let mut h = h.clone();
                for u in &mut h.urls {
                    if u.virtualhost.is_none() {
                        u.virtualhost = vhost
                            .clone()
                            .or(r.virtualhost.clone())
                            .or(vs.virtualhost.clone());
                    }
                }
                CheckerKind::Http(h)
            }
            RawKind::Misc(script, timeout, dynamic, user) => {
                let mut script = script
                    .clone()
                    .expect("MISC_CHECK without misc_path is rejected");
                if user.is_some() {
                    script.user = user.clone();
                }
                CheckerKind::Misc(MiscCheck {
                    script,
                    timeout: timeout.unwrap_or(vs.delay_loop),
                    dynamic: *dynamic,
                })
            }
            RawKind::Smtp(helo, hosts) => CheckerKind::Smtp(SmtpCheck {
                helo_name: helo
                    .clone()
                    .unwrap_or_else(|| "smtpchecker.keepalived.org".into()),
                hosts: hosts.iter().map(|h| conn_of(h, conn.as_ref())).collect(),
            }),
        };
        Checker {
            location: c.loc.clone(),
            kind,
            conn,
            retry: c.retry.or(r.retry).or(vs.retry).unwrap_or(default_retry),
            delay_before_retry: c
                .delay_before_retry
                .or(r.delay_before_retry)
                .or(vs.delay_before_retry)
                .unwrap_or(default_dbr),
            warmup: c.warmup.or(r.warmup).or(vs.warmup).unwrap_or(delay_loop),
            delay_loop,
            alpha: c.alpha.or(r.alpha).unwrap_or(vs.alpha),
            log_all_failures: c.log_all_failures,
        }
    }
}
