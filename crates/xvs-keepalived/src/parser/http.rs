//! `HTTP_GET` / `SSL_GET` keywords and their `url` blocks
//! (keepalived's `check_http.c`).

use super::values::digits;
use super::*;

impl P {
    pub(super) fn http_keyword(
        &mut self,
        h: &mut HttpCheck,
        vhost: &mut Option<String>,
        c: &Node,
    ) -> bool {
        match c.kw() {
            "virtualhost" => self.string(c, vhost),
            "http_protocol" => match c.words.get(1).map(String::as_str) {
                Some("1.0") => h.http_protocol = HttpProtocol::Http10,
                Some("1.1") => h.http_protocol = HttpProtocol::Http11,
                Some("1.0C") | Some("1.0c") => h.http_protocol = HttpProtocol::Http10Close,
                Some(o) => self.err(
                    &c.loc,
                    format!("http_protocol: invalid version '{o}' (1.0|1.0C|1.1)"),
                ),
                None => self.err(&c.loc, "http_protocol: missing version"),
            },
            "enable_sni" => h.enable_sni = self.boolarg(c).unwrap_or(h.enable_sni),
            "sni_name" => {
                if let Some(s) = c.words.get(1) {
                    h.sni_name = Some(s.clone());
                }
                h.enable_sni = true;
            }
            "fast_recovery" => h.fast_recovery = self.boolarg(c).unwrap_or(h.fast_recovery),
            "tls_compliant" => h.tls_compliant = self.boolarg(c).unwrap_or(h.tls_compliant),
            "url" => {
                if let Some(u) = self.url(c) {
                    h.urls.push(u);
                }
            }
            _ => return false,
        }
        true
    }

    pub(super) fn url(&mut self, n: &Node) -> Option<Url> {
        let Some(b) = &n.block else {
            self.err(&n.loc, "url: missing { } block");
            return None;
        };
        let mut u = Url {
            path: String::new(),
            digest: None,
            status_codes: vec![],
            virtualhost: None,
            regex: None,
            regex_no_match: false,
            regex_options: vec![],
            regex_min_offset: None,
            regex_max_offset: None,
            tls_compliant: false,
        };
        let mut path = None;
        for c in b {
            self.no_block(c);
            match c.kw() {
                "path" => self.string(c, &mut path),
                "digest" => {
                    let Some(d) = self.arg(c, 1, "digest") else {
                        continue;
                    };
                    if u.digest.is_some() {
                        self.err(&c.loc, format!("digest '{d}' is a duplicate"));
                    } else if d.len() != 32 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
                        self.err(
                            &c.loc,
                            format!("digest '{d}' must be 32 hex digits (an MD5 sum)"),
                        );
                    } else {
                        u.digest = Some(d.to_ascii_lowercase());
                    }
                }
                "status_code" => {
                    if c.words.len() < 2 {
                        self.err(&c.loc, "status_code: missing code");
                    }
                    for s in &c.words[1..] {
                        let (lo, hi) = match s.split_once('-') {
                            Some((a, b)) => (digits(a), digits(b)),
                            None => (digits(s), digits(s)),
                        };
                        match (lo, hi) {
                            (Some(lo), Some(hi))
                                if (100..=599).contains(&lo)
                                    && (100..=599).contains(&hi)
                                    && lo <= hi =>
                            {
                                u.status_codes.push((lo as u16, hi as u16))
                            }
                            _ => self.err(
                                &c.loc,
                                format!("invalid HTTP status code '{s}' (100-599, or LOW-HIGH)"),
                            ),
                        }
                    }
                }
                "virtualhost" => self.string(c, &mut u.virtualhost),
                "regex" => match split_quoted(&c.raw, true) {
                    Ok(w) if w.len() == 2 => u.regex = Some(w[1].clone()),
                    Ok(_) => self.err(
                        &c.loc,
                        "regex: missing or too many fields (quote the pattern)",
                    ),
                    Err(e) => self.err(&c.loc, format!("regex: {e}")),
                },
                "regex_no_match" => u.regex_no_match = true,
                "regex_options" => u.regex_options.extend(c.words[1..].iter().cloned()),
                "regex_min_offset" => u.regex_min_offset = self.uint(c, 0, u64::MAX),
                "regex_max_offset" => u.regex_max_offset = self.uint(c, 0, u64::MAX),
                "regex_stack" => {}
                "tls_compliant" => u.tls_compliant = self.boolarg(c).unwrap_or(false),
                k => self.warn(&c.loc, format!("url: unknown keyword '{k}' ignored")),
            }
        }
        let Some(p) = path else {
            self.err(&n.loc, "url has no path");
            return None;
        };
        u.path = p;
        if u.status_codes.is_empty() {
            u.status_codes.push((200, 299));
        }
        if u.regex.is_none() && (u.regex_no_match || !u.regex_options.is_empty()) {
            self.warn(&n.loc, "regex parameters specified without regex - ignored");
            u.regex_no_match = false;
            u.regex_options.clear();
        }
        Some(u)
    }
}
