//! `SMTP_CHECK` keywords (keepalived's `check_smtp.c`).

use super::*;

impl P {
    /// An `SMTP_CHECK` keyword; true if handled.
    pub(super) fn smtp_keyword(
        &mut self,
        helo: &mut Option<String>,
        hosts: &mut Vec<RawConn>,
        c: &Node,
    ) -> bool {
        match c.kw() {
            "helo_name" => {
                if c.words.len() < 2 {
                    self.err(&c.loc, "SMTP_CHECK helo_name missing");
                } else {
                    *helo = Some(c.words[1..].join(" "));
                }
                true
            }
            "host" => {
                let mut co = RawConn::default();
                for h in c.block.as_deref().unwrap_or(&[]) {
                    if !self.conn_keyword(&mut co, h) {
                        self.warn(
                            &h.loc,
                            format!("SMTP_CHECK host: keyword '{}' ignored", h.kw()),
                        );
                    }
                }
                if c.block.is_none() {
                    self.err(&c.loc, "SMTP_CHECK host: missing { } block");
                }
                hosts.push(co);
                true
            }
            _ => false,
        }
    }
}
