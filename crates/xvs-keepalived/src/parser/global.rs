//! `global_defs` (the LVS keys of keepalived's `global_parser.c`: sync
//! daemon, notify FIFOs, LVS timeouts), the `SSL` block and what xvs keeps of
//! `vrrp_instance`, then `vrrp_complete_init`'s resolution of the sync
//! daemon's instance and id.

use super::values::digits;
use super::*;

impl P {
    pub(super) fn global_defs(&mut self, nodes: &[Node]) {
        for n in nodes {
            match n.kw() {
                "router_id" => {
                    let mut r = self.global.router_id.take();
                    self.string(n, &mut r);
                    self.global.router_id = r;
                }
                "lvs_timeouts" => self.lvs_timeouts(n),
                "lvs_flush" => self.global.lvs_flush = true,
                "lvs_flush_onstop" | "lvs_flush_on_stop" => {
                    match n.words.get(1).map(String::as_str) {
                        None => self.global.lvs_flush_on_stop = Some(FlushOnStop::Full),
                        Some("VS") => self.global.lvs_flush_on_stop = Some(FlushOnStop::Vs),
                        Some(o) => self.err(
                            &n.loc,
                            format!("{}: unknown type '{o}' (VS or nothing)", n.kw()),
                        ),
                    }
                }
                "script_user" => {
                    if let Some(u) = self.arg(n, 1, "user name") {
                        self.global.script_user = Some(ScriptUser {
                            user: u.to_string(),
                            group: n.words.get(2).cloned(),
                        });
                    }
                }
                "enable_script_security" => self.global.enable_script_security = true,
                "lvs_sync_daemon" => self.lvs_sync_daemon(n),
                "notify_fifo" => self.notify_fifo(n, 0),
                "vrrp_notify_fifo" => self.notify_fifo(n, 1),
                "{" => {}
                k => self.warn(
                    &n.loc,
                    format!("global_defs: '{k}' is not used by xvs - skipped"),
                ),
            }
        }
    }

    /// keepalived's `lvs_syncd_handler`: `lvs_sync_daemon INTERFACE
    /// [[inst] VRRP_INSTANCE] [id SYNC_ID] [maxlen LEN] [port PORT] [ttl TTL]
    /// [group IPADDR]`, with the old positional `INTERFACE VRRP_INSTANCE
    /// [SYNC_ID]`.
    pub(super) fn lvs_sync_daemon(&mut self, n: &Node) {
        if let Some(prev) = &self.syncd {
            let l = prev.loc.clone();
            self.err(
                &n.loc,
                format!("lvs_sync_daemon already specified at {l} - keepalived ignores this one"),
            );
            return;
        }
        let Some(ifname) = n.words.get(1) else {
            self.err(&n.loc, "lvs_sync_daemon: missing interface");
            return;
        };
        if ifname.len() >= IP_VS_IFNAME_MAXLEN {
            self.err(
                &n.loc,
                format!(
                    "lvs_sync_daemon: interface name '{ifname}' too long (at most {} characters)",
                    IP_VS_IFNAME_MAXLEN - 1
                ),
            );
            return;
        }
        let mut d = RawSyncd {
            loc: n.loc.clone(),
            interface: ifname.clone(),
            named: None,
            legacy: None,
            syncid: None,
            maxlen: None,
            port: None,
            ttl: None,
            group: None,
        };
        let w = &n.words;
        let num = |v: &str, min: u64, max: u64| digits(v).filter(|x| (min..=max).contains(x));
        let mut i = 2;
        while i < w.len() {
            let opt = w[i].as_str();
            if matches!(opt, "inst" | "id" | "maxlen" | "port" | "ttl" | "group") {
                let Some(v) = w.get(i + 1).map(String::as_str) else {
                    let what = if opt == "inst" {
                        "VRRP instance name"
                    } else {
                        "value"
                    };
                    self.err(
                        &n.loc,
                        format!("lvs_sync_daemon: missing {what} after '{opt}'"),
                    );
                    i += 1;
                    continue;
                };
                match opt {
                    "inst" => match &d.named {
                        Some(prev) => {
                            let prev = prev.clone();
                            self.err(
                                &n.loc,
                                format!("lvs_sync_daemon: VRRP instance already specified as {prev} - '{v}' ignored"),
                            );
                        }
                        None => d.named = Some(v.to_string()),
                    },
                    "id" => match num(v, 0, 255) {
                        Some(x) => d.syncid = Some(x as u8),
                        None => self.err(
                            &n.loc,
                            format!("lvs_sync_daemon: invalid id '{v}' (0..255)"),
                        ),
                    },
                    "maxlen" => match num(v, 1, SYNC_MAXLEN) {
                        Some(x) => d.maxlen = Some(x as u16),
                        None => self.err(
                            &n.loc,
                            format!("lvs_sync_daemon: invalid maxlen '{v}' (1..{SYNC_MAXLEN})"),
                        ),
                    },
                    "port" => match num(v, 1, 65535) {
                        Some(x) => d.port = Some(x as u16),
                        None => self.err(
                            &n.loc,
                            format!("lvs_sync_daemon: invalid port '{v}' (1..65535)"),
                        ),
                    },
                    "ttl" => match num(v, 1, 255) {
                        Some(x) => d.ttl = Some(x as u8),
                        None => self.err(
                            &n.loc,
                            format!("lvs_sync_daemon: invalid ttl '{v}' (1..255)"),
                        ),
                    },
                    _ => {
                        // inet_stosockaddr drops a '-range' or '/mask' suffix.
                        let a = v.split(['-', '/']).next().unwrap_or(v);
                        match a.parse::<IpAddr>() {
                            Ok(a) if a.is_multicast() => d.group = Some(a),
                            Ok(_) => self.err(
                                &n.loc,
                                format!("lvs_sync_daemon: group address {v} is not multicast"),
                            ),
                            Err(_) => self.err(
                                &n.loc,
                                format!("lvs_sync_daemon: invalid group address '{v}'"),
                            ),
                        }
                    }
                }
                i += 2;
                continue;
            }
            // The old `lvs_sync_daemon INTERFACE VRRP_INSTANCE [SYNC_ID]`.
            if i == 2 {
                d.named = Some(opt.to_string());
            } else if i == 3 {
                match num(opt, 0, 255) {
                    Some(x) => {
                        self.warn(
                            &n.loc,
                            format!("lvs_sync_daemon: write the sync id as 'id {opt}' (keepalived: Please use keyword \"id\" before lvs_sync_daemon SYNCID)"),
                        );
                        d.syncid = Some(x as u8);
                    }
                    None => self.err(
                        &n.loc,
                        format!("lvs_sync_daemon: invalid sync id '{opt}' (0..255)"),
                    ),
                }
            } else {
                self.err(
                    &n.loc,
                    format!(
                        "lvs_sync_daemon: unknown option '{opt}' (inst|id|maxlen|port|ttl|group)"
                    ),
                );
            }
            i += 1;
        }
        self.syncd = Some(d);
    }

    /// `notify_fifo` (`which` 0) / `vrrp_notify_fifo` (1) `PATH [USER
    /// [GROUP]]` (keepalived's `notify_fifo`).
    pub(super) fn notify_fifo(&mut self, n: &Node, which: usize) {
        let Some(path) = n.words.get(1) else {
            self.err(&n.loc, format!("{}: missing FIFO name", n.kw()));
            return;
        };
        if let Some(l) = self.fifo_loc[which].clone() {
            self.err(
                &n.loc,
                format!(
                    "{} already specified at {l} - keepalived ignores '{path}'",
                    n.kw()
                ),
            );
            return;
        }
        let fifo = NotifyFifo {
            path: PathBuf::from(path),
            user: n.words.get(2).map(|u| ScriptUser {
                user: u.clone(),
                group: n.words.get(3).cloned(),
            }),
        };
        self.fifo_loc[which] = Some(n.loc.clone());
        if which == 0 {
            self.global.notify_fifo = Some(fifo);
        } else {
            self.global.vrrp_notify_fifo = Some(fifo);
        }
    }

    /// What xvs keeps of a `vrrp_instance` block (keepalived's
    /// `vrrp_handler`, `vrrp_vrid_handler`, `vrrp_int_handler`,
    /// `vrrp_lvs_syncd_handler`); everything else is keepalived's.
    pub(super) fn vrrp_instance(&mut self, n: &Node) {
        // keepalived skips a block without exactly one name, or with a
        // name already used ("vrrp_instance must have a name", "vrrp
        // instance X already defined"): left to keepalived --vrrp to report.
        if n.words.len() != 2 || self.vrrp.iter().any(|v| v.name == n.words[1]) {
            return;
        }
        let name = n.words[1].clone();
        let mut r = VrrpInstanceRef {
            location: n.loc.clone(),
            name: name.clone(),
            virtual_router_id: None,
            interface: None,
        };
        for c in n.block.as_deref().unwrap_or_default() {
            let arg = c.words.get(1);
            match c.kw() {
                "virtual_router_id" => {
                    if let Some(v) = arg
                        .and_then(|a| digits(a))
                        .filter(|v| (1..=255).contains(v))
                    {
                        r.virtual_router_id = Some(v as u8);
                    }
                }
                "interface" => {
                    if let Some(a) = arg.filter(|a| a.len() < IFNAMSIZ) {
                        r.interface = Some(a.clone());
                    }
                }
                "lvs_sync_daemon_interface" => self.lvs_sync_daemon_interface(c, &name),
                _ => {}
            }
        }
        self.vrrp.push(r);
    }

    /// The deprecated `lvs_sync_daemon_interface INTERFACE` of a
    /// `vrrp_instance`: the sync daemon follows that instance, sync id 0.
    pub(super) fn lvs_sync_daemon_interface(&mut self, c: &Node, inst: &str) {
        let Some(ifname) = c.words.get(1) else {
            self.err(&c.loc, "lvs_sync_daemon_interface: missing interface");
            return;
        };
        self.warn(
            &c.loc,
            format!("({inst}) lvs_sync_daemon_interface in a vrrp_instance is deprecated - use global_defs' 'lvs_sync_daemon {ifname} {inst} id 0' (the same)"),
        );
        if let Some(prev) = &self.syncd {
            let l = prev.loc.clone();
            self.err(
                &c.loc,
                format!("({inst}) lvs_sync_daemon_interface: the sync daemon is already specified at {l} - keepalived ignores this one"),
            );
            return;
        }
        self.syncd = Some(RawSyncd {
            loc: c.loc.clone(),
            interface: ifname.clone(),
            named: None,
            legacy: Some(inst.to_string()),
            syncid: None,
            maxlen: None,
            port: None,
            ttl: None,
            group: None,
        });
    }

    /// `vrrp_complete_init`: the named instance must exist; without `id` the
    /// sync id is its VRID (0 without a named instance). Then
    /// `global_data.c`: a `vrrp_notify_fifo` that is the `notify_fifo` is
    /// ignored.
    pub(super) fn resolve_global(&mut self) {
        if let Some(d) = self.syncd.take() {
            let resolved = match (&d.named, &d.legacy) {
                (Some(name), _) => match self.vrrp.iter().find(|v| v.name == *name) {
                    None => {
                        self.err(
                            &d.loc,
                            format!("lvs_sync_daemon: no vrrp_instance {name} is defined (keepalived then runs no sync daemon)"),
                        );
                        None
                    }
                    Some(v) => match d.syncid.or(v.virtual_router_id) {
                        Some(id) => Some((Some(name.clone()), id)),
                        None => {
                            let l = v.location.clone();
                            self.err(
                                &d.loc,
                                format!("lvs_sync_daemon: no id, and vrrp_instance {name} at {l} has no valid virtual_router_id to take it from"),
                            );
                            None
                        }
                    },
                },
                (None, legacy) => Some((legacy.clone(), d.syncid.unwrap_or(0))),
            };
            if let Some((vrrp_instance, syncid)) = resolved {
                self.global.lvs_sync_daemon = Some(LvsSyncDaemon {
                    location: d.loc,
                    interface: d.interface,
                    vrrp_instance,
                    syncid,
                    maxlen: d.maxlen,
                    port: d.port,
                    ttl: d.ttl,
                    group: d.group,
                });
            }
        }
        let same = match (&self.global.notify_fifo, &self.global.vrrp_notify_fifo) {
            (Some(a), Some(b)) => a.path.as_os_str() == b.path.as_os_str(),
            _ => false,
        };
        if same {
            let l = self.fifo_loc[1].clone().expect("vrrp_notify_fifo was read");
            self.warn(
                &l,
                "vrrp_notify_fifo is the notify_fifo - keepalived ignores vrrp_notify_fifo (each line is written once)",
            );
            self.global.vrrp_notify_fifo = None;
        }
    }

    pub(super) fn lvs_timeouts(&mut self, n: &Node) {
        if n.words.len() < 3 {
            self.err(
                &n.loc,
                "lvs_timeouts requires at least one option (tcp|tcpfin|udp N)",
            );
            return;
        }
        let mut i = 1;
        while i < n.words.len() {
            let opt = n.words[i].as_str();
            if !matches!(opt, "tcp" | "tcpfin" | "udp") {
                self.err(
                    &n.loc,
                    format!("lvs_timeouts: unknown option '{opt}' (tcp|tcpfin|udp)"),
                );
                i += 1;
                continue;
            }
            let Some(v) = n.words.get(i + 1) else {
                self.err(&n.loc, format!("lvs_timeouts: no value for {opt}"));
                break;
            };
            match digits(v).filter(|&v| v <= LVS_MAX_TIMEOUT) {
                Some(v) => {
                    let t = &mut self.global.lvs_timeouts;
                    let slot = match opt {
                        "tcp" => &mut t.tcp,
                        "tcpfin" => &mut t.tcp_fin,
                        _ => &mut t.udp,
                    };
                    *slot = Some(v as u32);
                }
                None => self.err(
                    &n.loc,
                    format!("lvs_timeouts: invalid {opt} timeout '{v}' (0..{LVS_MAX_TIMEOUT})"),
                ),
            }
            i += 2;
        }
    }

    pub(super) fn ssl(&mut self, n: &Node) {
        let Some(b) = &n.block else {
            self.err(&n.loc, "SSL: missing { } block");
            return;
        };
        if self.ssl.is_some() {
            self.warn(&n.loc, "SSL context already specified - replacing");
        }
        let mut ctx = SslContext::default();
        for c in b {
            let slot = match c.kw() {
                "password" => &mut ctx.password,
                "ca" => &mut ctx.ca,
                "certificate" => &mut ctx.certificate,
                "key" => &mut ctx.key,
                k => {
                    self.warn(&c.loc, format!("SSL: unknown keyword '{k}' ignored"));
                    continue;
                }
            };
            match c.words.get(1) {
                Some(v) => *slot = Some(v.clone()),
                None => self.err(&c.loc, format!("SSL {} missing", c.kw())),
            }
        }
        self.ssl = Some(ctx);
    }
}
