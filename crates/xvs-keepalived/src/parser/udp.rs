//! `UDP_CHECK` keywords (keepalived's `check_udp.c`).

use super::values::read_hex;
use super::*;

impl P {
    pub(super) fn udp_keyword(&mut self, u: &mut UdpCheck, c: &Node) -> bool {
        match c.kw() {
            "payload" => {
                if c.words.len() < 2 {
                    self.err(&c.loc, "UDP_CHECK payload requires a payload");
                } else {
                    match read_hex(&c.words[1..].join(" "), false) {
                        Some((d, _)) => u.payload = Some(d),
                        None => self.err(&c.loc, "invalid hex string for UDP_CHECK payload"),
                    }
                }
            }
            "require_reply" => {
                u.require_reply = true;
                if c.words.len() > 1 {
                    match read_hex(&c.words[1..].join(" "), true) {
                        Some((d, m)) => {
                            u.reply = Some(d);
                            u.reply_mask = m;
                        }
                        None => self.err(&c.loc, "invalid hex string for UDP_CHECK reply"),
                    }
                }
            }
            "min_reply_length" => {
                u.min_reply_length = self
                    .u32v(c, 0, 65535)
                    .map_or(u.min_reply_length, |v| v as u16)
            }
            "max_reply_length" => {
                u.max_reply_length = self
                    .u32v(c, 0, 65535)
                    .map_or(u.max_reply_length, |v| v as u16)
            }
            _ => return false,
        }
        true
    }
}
