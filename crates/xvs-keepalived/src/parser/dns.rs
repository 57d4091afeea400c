//! `DNS_CHECK` keywords (keepalived's `check_dns.c`).

use super::*;

impl P {
    pub(super) fn dns_keyword(&mut self, d: &mut DnsCheck, c: &Node) -> bool {
        const TYPES: &[&str] = &[
            "A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA", "RRSIG", "DNSKEY",
        ];
        match c.kw() {
            "type" => {
                if let Some(t) = self.arg(c, 1, "query type") {
                    let up = t.to_ascii_uppercase();
                    if TYPES.contains(&up.as_str()) {
                        d.qtype = up;
                    } else {
                        self.err(
                            &c.loc,
                            format!("unknown DNS_CHECK type '{t}' ({})", TYPES.join("|")),
                        );
                    }
                }
            }
            "name" => {
                if let Some(name) = self.arg(c, 1, "name") {
                    let empty_label = (name.starts_with('.') && name != ".") || name.contains("..");
                    if empty_label {
                        self.err(
                            &c.loc,
                            format!("DNS_CHECK name '{name}' has an empty label"),
                        );
                    } else if !d.name.is_empty() {
                        self.err(&c.loc, "DNS_CHECK name already specified");
                    } else {
                        d.name = name.to_string();
                    }
                }
            }
            _ => return false,
        }
        true
    }
}
