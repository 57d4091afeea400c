//! What every checker shares (`install_checker_common_keywords`): the
//! connection and timing keywords, and the dispatch of a checker block to
//! its family.

use super::*;

impl P {
    /// Connection keyword (`install_checker_common_keywords(true)`); true if handled.
    pub(super) fn conn_keyword(&mut self, co: &mut RawConn, n: &Node) -> bool {
        match n.kw() {
            "connect_ip" => co.connect_ip = self.ip(n, 1).or(co.connect_ip),
            "connect_port" => {
                co.connect_port = self.u32v(n, 1, 65535).map(|p| p as u16).or(co.connect_port)
            }
            "bindto" => co.bindto = self.ip(n, 1).or(co.bindto),
            "bind_port" => co.bind_port = self.u32v(n, 1, 65535).map(|p| p as u16).or(co.bind_port),
            "bind_if" => {
                if let Some(i) = self.arg(n, 1, "interface name") {
                    if i.len() > 15 {
                        self.err(&n.loc, format!("bind_if: interface name '{i}' is too long"));
                    } else {
                        co.bind_if = Some(i.to_string());
                    }
                }
            }
            "connect_timeout" => {
                co.connect_timeout = self.timer(n, 1, u32::MAX as u64).or(co.connect_timeout)
            }
            "fwmark" => co.fwmark = self.u32v(n, 0, u32::MAX as u64).or(co.fwmark),
            _ => return false,
        }
        true
    }

    /// Timing keywords every checker has; true if handled.
    pub(super) fn common_keyword(&mut self, ch: &mut RawChecker, n: &Node) -> bool {
        match n.kw() {
            "retry" => ch.retry = self.u32v(n, 0, u32::MAX as u64).or(ch.retry),
            "delay_before_retry" => {
                ch.delay_before_retry = self.timer(n, 0, 0).or(ch.delay_before_retry)
            }
            "warmup" => ch.warmup = self.timer(n, 0, 0).or(ch.warmup),
            "delay_loop" => ch.delay_loop = self.timer(n, 1, 0).or(ch.delay_loop),
            "alpha" => ch.alpha = self.boolarg(n).or(ch.alpha),
            "log_all_failures" => {
                ch.log_all_failures = self.boolarg(n).unwrap_or(ch.log_all_failures)
            }
            _ => return false,
        }
        true
    }

    pub(super) fn checker(&mut self, n: &Node) -> Option<RawChecker> {
        let kw = n.kw().to_string();
        let Some(b) = &n.block else {
            self.err(&n.loc, format!("{kw}: missing {{ }} block"));
            return None;
        };
        let kind = checker_kind(&kw);
        let conn = match kind {
            RawKind::Misc(..) | RawKind::Unsupported(_) => None,
            _ => Some(RawConn::default()),
        };
        let mut ch = RawChecker {
            loc: n.loc.clone(),
            kind,
            conn,
            retry: None,
            delay_before_retry: None,
            warmup: None,
            delay_loop: None,
            alpha: None,
            log_all_failures: false,
        };
        if matches!(ch.kind, RawKind::Unsupported(_)) {
            return Some(ch);
        }
        for c in b {
            if !matches!(c.kw(), "misc_path") {
                self.quote_check(c);
            }
            if c.kw() != "url" && c.kw() != "host" {
                self.no_block(c);
            }
            if let Some(co) = ch.conn.as_mut() {
                let mut co2 = std::mem::take(co);
                let handled = self.conn_keyword(&mut co2, c);
                *ch.conn.as_mut().expect("conn") = co2;
                if handled {
                    continue;
                }
            }
            if self.common_keyword(&mut ch, c) {
                continue;
            }
            let handled = match &mut ch.kind {
                RawKind::Http(h, vhost) => self.http_keyword(h, vhost, c),
                RawKind::Misc(script, timeout, dynamic, user) => {
                    self.misc_keyword(script, timeout, dynamic, user, c)
                }
                RawKind::Udp(u) => self.udp_keyword(u, c),
                RawKind::Dns(d) => self.dns_keyword(d, c),
                RawKind::Smtp(helo, hosts) => self.smtp_keyword(helo, hosts, c),
                _ => false,
            };
            if !handled {
                self.warn(
                    &c.loc,
                    format!("{kw}: unknown keyword '{}' ignored", c.kw()),
                );
            }
        }
        match &ch.kind {
            RawKind::Http(h, _) if h.urls.is_empty() => {
                self.err(&n.loc, format!("{kw} has no url {{ }} block"));
                return None;
            }
            RawKind::Misc(None, ..) => {
                self.err(&n.loc, "MISC_CHECK has no misc_path");
                return None;
            }
            RawKind::Udp(u) if u.min_reply_length > u.max_reply_length => self.warn(
                &n.loc,
                "UDP_CHECK min_reply_length > max_reply_length - the check will always fail",
            ),
            _ => {}
        }
        Some(ch)
    }
}

/// A checker block's family, with keepalived's defaults.
fn checker_kind(kw: &str) -> RawKind {
    match kw {
        "TCP_CHECK" => RawKind::Tcp,
        "HTTP_GET" | "SSL_GET" => RawKind::Http(
            HttpCheck {
                tls: kw == "SSL_GET",
                urls: vec![],
                http_protocol: HttpProtocol::Http10,
                enable_sni: false,
                sni_name: None,
                fast_recovery: false,
                tls_compliant: false,
            },
            None,
        ),
        "MISC_CHECK" => RawKind::Misc(None, None, false, None),
        "UDP_CHECK" => RawKind::Udp(UdpCheck {
            payload: None,
            require_reply: false,
            reply: None,
            reply_mask: None,
            min_reply_length: 0,
            max_reply_length: 255,
        }),
        "DNS_CHECK" => RawKind::Dns(DnsCheck {
            qtype: "SOA".into(),
            name: String::new(),
        }),
        "SMTP_CHECK" => RawKind::Smtp(None, vec![]),
        "PING_CHECK" => RawKind::Ping,
        _ => RawKind::Unsupported(kw.to_string()),
    }
}
