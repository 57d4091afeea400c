//! `real_server` blocks (keepalived's `rs_handler` and its keywords).

use super::values::{parse_ip, parse_port};
use super::*;

impl P {
    pub(super) fn real_server(&mut self, vs: &RawVs, n: &Node) -> Option<RawRs> {
        let a = self.arg(n, 1, "address")?;
        let addr = match parse_ip(a) {
            Ok(x) => x,
            Err(e) => {
                self.err(&n.loc, format!("real_server: {e}"));
                return None;
            }
        };
        let port = match parse_port(n.words.get(2).map(String::as_str)) {
            Ok(p) => p,
            Err(e) => {
                self.err(&n.loc, format!("real_server: {e}"));
                return None;
            }
        };
        let mut rs = RawRs {
            loc: n.loc.clone(),
            addr,
            port,
            weight: None,
            fwd: vs.fwd,
            u_threshold: 0,
            l_threshold: 0,
            inhibit: None,
            alpha: None,
            notify_up: None,
            notify_down: None,
            retry: None,
            delay_before_retry: None,
            warmup: None,
            connect_timeout: None,
            delay_loop: None,
            virtualhost: None,
            checkers: vec![],
        };
        let Some(b) = &n.block else {
            self.err(&n.loc, "real_server: missing { } block");
            return Some(rs);
        };
        for c in b {
            let kw = c.kw();
            if !matches!(kw, "notify_up" | "notify_down") {
                self.quote_check(c);
            }
            match kw {
                "weight" => rs.weight = self.u32v(c, 0, MAX_WEIGHT).or(rs.weight),
                "lvs_method" => {
                    if let Some(f) = self.forwarding(c) {
                        rs.fwd = Some(f);
                    }
                }
                "uthreshold" => {
                    rs.u_threshold = self.u32v(c, 0, u32::MAX as u64).unwrap_or(rs.u_threshold)
                }
                "lthreshold" => {
                    rs.l_threshold = self.u32v(c, 0, u32::MAX as u64).unwrap_or(rs.l_threshold)
                }
                "inhibit_on_failure" => rs.inhibit = self.boolarg(c).or(rs.inhibit),
                "alpha" => rs.alpha = self.boolarg(c).or(rs.alpha),
                "notify_up" | "notify_down" => {
                    let slot = if kw == "notify_up" {
                        &mut rs.notify_up
                    } else {
                        &mut rs.notify_down
                    };
                    if slot.is_some() {
                        self.err(&c.loc, format!("{kw} script already specified"));
                    } else {
                        *slot = self.script(c);
                    }
                }
                "retry" => rs.retry = self.u32v(c, 1, u32::MAX as u64).or(rs.retry),
                "delay_before_retry" => {
                    rs.delay_before_retry = self.timer(c, 0, 0).or(rs.delay_before_retry)
                }
                "warmup" => rs.warmup = self.timer(c, 0, 0).or(rs.warmup),
                "connect_timeout" => {
                    rs.connect_timeout = self.timer(c, 1, u32::MAX as u64).or(rs.connect_timeout)
                }
                "delay_loop" => rs.delay_loop = self.timer(c, 1, 0).or(rs.delay_loop),
                "smtp_alert" => self.warn(&c.loc, "smtp_alert ignored: xvs sends no e-mail"),
                "snmp_name" => self.warn(&c.loc, "snmp_name ignored: xvs has no SNMP agent"),
                "virtualhost" => self.string(c, &mut rs.virtualhost),
                "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "UDP_CHECK" | "DNS_CHECK"
                | "SMTP_CHECK" | "PING_CHECK" | "BFD_CHECK" | "FILE_CHECK" => {
                    if let Some(ch) = self.checker(c) {
                        rs.checkers.push(ch);
                    }
                    continue;
                }
                k => {
                    self.warn(
                        &c.loc,
                        format!("real_server: unknown keyword '{k}' ignored"),
                    );
                    continue;
                }
            }
            self.no_block(c);
        }
        Some(rs)
    }
}
