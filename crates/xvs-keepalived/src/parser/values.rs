//! Value parsers shared by every section: numbers, keepalived's `<TIMER>`,
//! addresses, ports, hex strings, booleans, scripts and forwarding methods,
//! and the [`P`] helpers that report their errors at a keyword's line.

use super::*;

/// Parses a number made of decimal digits only.
pub(super) fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// keepalived's `<TIMER>`: seconds with up to 6 decimals, in microseconds.
pub(super) fn timer_us(s: &str) -> Result<u64, String> {
    if s.starts_with('-') {
        return Err(format!("negative number '{s}'"));
    }
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if frac.len() > 6 {
        return Err(format!(
            "number '{s}' has too many decimal places (at most 6)"
        ));
    }
    let int_v = if int.is_empty() && !frac.is_empty() {
        Some(0)
    } else {
        digits(int)
    };
    let frac_v = if frac.is_empty() {
        Some(0)
    } else {
        digits(frac)
    };
    match (int_v, frac_v) {
        (Some(i), Some(f)) => {
            let f = f * 10u64.pow(6 - frac.len() as u32);
            i.checked_mul(1_000_000)
                .and_then(|v| v.checked_add(f))
                .ok_or_else(|| format!("number '{s}' is too large"))
        }
        _ => Err(format!("invalid number '{s}'")),
    }
}

/// An address as keepalived's `inet_stosockaddr` reads it: IPv6 when the
/// text has a `:` (written bare: `2001:db8::1`, no brackets, the port a
/// word of its own), IPv4 otherwise; never a host name.
pub(super) fn parse_ip(s: &str) -> Result<IpAddr, String> {
    if s.contains(':') {
        s.parse::<std::net::Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| format!("invalid IPv6 address '{s}'"))
    } else {
        s.parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| format!("invalid IPv4 address '{s}'"))
    }
}

/// `addr:port`, `[addr]:port` for IPv6 (for messages).
pub(super) fn ap(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// An optional port: absent or all zeros means "no port".
pub(super) fn parse_port(s: Option<&str>) -> Result<Option<u16>, String> {
    match s {
        None => Ok(None),
        Some(p) if !p.is_empty() && p.bytes().all(|b| b == b'0') => Ok(None),
        Some(p) => match digits(p) {
            Some(v) if (1..=65535).contains(&v) => Ok(Some(v as u16)),
            _ => Err(format!("invalid port '{p}'")),
        },
    }
}

/// keepalived's `read_hex_str`: blank-separated groups, two hex digits per
/// byte, a lone last digit is a byte of its own; with `mask`, `x`/`X` is a
/// nibble to ignore.
pub(super) fn read_hex(s: &str, mask: bool) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let mut data = vec![];
    let mut m = vec![];
    let mut used_mask = false;
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    let nib = |c: char| -> Option<(u8, u8)> {
        if mask && (c == 'x' || c == 'X') {
            Some((0, 0x0f))
        } else {
            c.to_digit(16).map(|d| (d as u8, 0))
        }
    };
    loop {
        while i < b.len() && (b[i] == ' ' || b[i] == '\t') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let (mut v, mut mv) = nib(b[i])?;
        i += 1;
        if i < b.len() && b[i] != ' ' && b[i] != '\t' {
            let (v2, m2) = nib(b[i])?;
            i += 1;
            v = (v << 4) | v2;
            mv = (mv << 4) | m2;
        }
        used_mask |= mv != 0;
        data.push(v);
        m.push(mv);
    }
    if data.is_empty() {
        return None;
    }
    Some((data, used_mask.then_some(m)))
}

pub(super) fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "on" | "yes" => Some(true),
        "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

impl P {
    pub(super) fn err(&mut self, loc: &Location, msg: impl Into<String>) {
        self.errors.push(Error::new(loc.clone(), msg));
    }

    pub(super) fn warn(&mut self, loc: &Location, msg: impl Into<String>) {
        self.warnings.push(Warning::new(loc.clone(), msg));
    }

    /// Word `i` of `n`, or an error naming the keyword.
    pub(super) fn arg<'a>(&mut self, n: &'a Node, i: usize, what: &str) -> Option<&'a str> {
        match n.words.get(i) {
            Some(w) => Some(w),
            None => {
                self.err(&n.loc, format!("{}: missing {what}", n.kw()));
                None
            }
        }
    }

    pub(super) fn uint(&mut self, n: &Node, min: u64, max: u64) -> Option<u64> {
        let w = self.arg(n, 1, "value")?;
        match digits(w) {
            Some(v) if v >= min && v <= max => Some(v),
            Some(_) => {
                self.err(&n.loc, format!("{}: {w} is outside [{min}, {max}]", n.kw()));
                None
            }
            None => {
                self.err(&n.loc, format!("{}: invalid number '{w}'", n.kw()));
                None
            }
        }
    }

    pub(super) fn u32v(&mut self, n: &Node, min: u64, max: u64) -> Option<u32> {
        self.uint(n, min, max).map(|v| v as u32)
    }

    /// A `<TIMER>` argument, `min_us..=max_us` (`max_us` 0: no limit).
    pub(super) fn timer(&mut self, n: &Node, min_us: u64, max_us: u64) -> Option<Duration> {
        let w = self.arg(n, 1, "time in seconds")?;
        match timer_us(w) {
            Ok(v) if v >= min_us && (max_us == 0 || v <= max_us) => Some(Duration::from_micros(v)),
            Ok(_) => {
                let hi = if max_us == 0 {
                    String::from("")
                } else {
                    format!("{}", max_us as f64 / 1e6)
                };
                self.err(
                    &n.loc,
                    format!(
                        "{}: {w} is outside [{}, {hi}] seconds",
                        n.kw(),
                        min_us as f64 / 1e6
                    ),
                );
                None
            }
            Err(e) => {
                self.err(&n.loc, format!("{}: {e}", n.kw()));
                None
            }
        }
    }

    /// `KEYWORD [BOOL]` (no argument: true).
    pub(super) fn boolarg(&mut self, n: &Node) -> Option<bool> {
        match n.words.get(1) {
            None => Some(true),
            Some(w) => match parse_bool(w) {
                Some(b) => Some(b),
                None => {
                    self.err(
                        &n.loc,
                        format!(
                            "{}: invalid boolean '{w}' (on|off|true|false|yes|no)",
                            n.kw()
                        ),
                    );
                    None
                }
            },
        }
    }

    pub(super) fn string(&mut self, n: &Node, slot: &mut Option<String>) {
        if let Some(w) = self.arg(n, 1, "value") {
            if slot.is_some() {
                self.warn(&n.loc, format!("duplicate {} - overwriting", n.kw()));
            }
            *slot = Some(w.to_string());
        }
    }

    pub(super) fn ip(&mut self, n: &Node, i: usize) -> Option<IpAddr> {
        let w = self.arg(n, i, "address")?;
        match parse_ip(w) {
            Ok(a) => Some(a),
            Err(e) => {
                self.err(&n.loc, format!("{}: {e}", n.kw()));
                None
            }
        }
    }

    pub(super) fn no_block(&mut self, n: &Node) {
        if n.block.is_some() {
            self.warn(
                &n.loc,
                format!("{}: unexpected {{ }} block ignored", n.kw()),
            );
        }
    }

    pub(super) fn quote_check(&mut self, n: &Node) {
        if n.unmatched_quote {
            self.err(&n.loc, format!("unmatched quote: '{}'", n.raw));
        }
    }

    /// A script keyword: `KW "cmd args" [user [group]]`, re-read from the
    /// raw line as keepalived's `notify_script_init`.
    pub(super) fn script(&mut self, n: &Node) -> Option<Script> {
        let words = match split_quoted(&n.raw, false) {
            Ok(w) => w,
            Err(e) => {
                self.err(&n.loc, format!("{}: {e}", n.kw()));
                return None;
            }
        };
        let Some(cmd) = words.get(1) else {
            self.err(&n.loc, format!("{}: missing script", n.kw()));
            return None;
        };
        let args = match split_quoted(cmd, true) {
            Ok(a) if !a.is_empty() => a,
            Ok(_) => {
                self.err(&n.loc, format!("{}: empty script", n.kw()));
                return None;
            }
            Err(e) => {
                self.err(&n.loc, format!("{}: {e}", n.kw()));
                return None;
            }
        };
        let user = words.get(2).map(|u| ScriptUser {
            user: u.clone(),
            group: words.get(3).cloned(),
        });
        Some(Script { args, user })
    }

    /// `lvs_method` / `lb_kind` / `sorry_server_lvs_method` (`svr_forwarding_handler`).
    pub(super) fn forwarding(&mut self, n: &Node) -> Option<Forwarding> {
        let m = self.arg(n, 1, "method (NAT|DR|TUN)")?;
        let method = match m {
            "NAT" => FwdMethod::Masq,
            "DR" => FwdMethod::Route,
            "TUN" => FwdMethod::Tunnel,
            _ => {
                self.err(
                    &n.loc,
                    format!("{}: unknown forwarding method '{m}' (NAT|DR|TUN)", n.kw()),
                );
                return None;
            }
        };
        let mut f = Forwarding {
            method,
            ..Forwarding::NAT
        };
        let mut port = 0u64;
        let mut i = 2;
        while i < n.words.len() {
            match n.words[i].as_str() {
                "type" => {
                    let Some(t) = n.words.get(i + 1) else {
                        self.err(&n.loc, format!("{}: missing tunnel type", n.kw()));
                        return None;
                    };
                    f.tun_type = match t.as_str() {
                        "ipip" => TunType::Ipip,
                        "gue" => TunType::Gue,
                        "gre" => TunType::Gre,
                        _ => {
                            self.err(
                                &n.loc,
                                format!("{}: unknown tunnel type '{t}' (ipip|gue|gre)", n.kw()),
                            );
                            return None;
                        }
                    };
                    i += 1;
                }
                "port" => {
                    let v = n
                        .words
                        .get(i + 1)
                        .and_then(|p| digits(p))
                        .filter(|p| (1..=65535).contains(p));
                    let Some(v) = v else {
                        self.err(
                            &n.loc,
                            format!("{}: missing or invalid gue tunnel port", n.kw()),
                        );
                        return None;
                    };
                    port = v;
                    i += 1;
                }
                "nocsum" => f.tun_csum = TunCsum::NoCsum,
                "csum" => f.tun_csum = TunCsum::Csum,
                "remcsum" => f.tun_csum = TunCsum::RemCsum,
                o => {
                    self.err(&n.loc, format!("{}: invalid tunnel option '{o}'", n.kw()));
                    return None;
                }
            }
            i += 1;
        }
        if (f.tun_type == TunType::Gue) != (port != 0) {
            self.err(
                &n.loc,
                format!(
                    "{}: gue tunnels require a port, other tunnel types cannot have one",
                    n.kw()
                ),
            );
            return None;
        }
        if f.tun_type == TunType::Ipip && f.tun_csum != TunCsum::NoCsum {
            self.err(
                &n.loc,
                format!("{}: ipip tunnels do not support a checksum option", n.kw()),
            );
            return None;
        }
        if f.tun_type == TunType::Gre && f.tun_csum == TunCsum::RemCsum {
            self.err(
                &n.loc,
                format!("{}: gre tunnels do not support remcsum", n.kw()),
            );
            return None;
        }
        f.tun_port = port as u16;
        Some(f)
    }
}
