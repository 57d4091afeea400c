//! `~SEQ(VAR, [START,] END [, STEP]) TEXT`: TEXT repeated with VAR set to
//! each value (keepalived's `process_seq`).

use super::*;

impl Lexer {
    /// `~SEQ(VAR, ...) TEXT` and `~SEQx(...)`.
    pub(super) fn seq(&mut self, buf: &str, loc: &Location, depth: usize) {
        let bad = |s: &mut Self| s.err(loc, format!("invalid ~SEQ specification '{buf}'"));
        let mut p = &buf[4..];
        let hex = p.starts_with('x');
        if hex {
            p = &p[1..];
        }
        let p = p.trim_start_matches([' ', '\t']);
        let Some(p) = p.strip_prefix('(') else {
            return bad(self);
        };
        let Some(close) = p.find(')') else {
            return bad(self);
        };
        let inner = &p[..close];
        let text = p[close + 1..].trim_start_matches([' ', '\t']).to_string();
        let mut parts = inner.split(',').map(|s| s.trim().to_string());
        let var = parts.next().unwrap_or_default();
        if var.is_empty() || var.starts_with('{') || var.contains([' ', '\t']) {
            return bad(self);
        }
        let mut nums = vec![];
        for s in parts {
            let mut s = s;
            if s.contains('$') {
                self.substitute(&mut s, loc);
            }
            match parse_c_long(s.trim()) {
                Some(n) => nums.push(n),
                None => return bad(self),
            }
        }
        let (start, step, end) = match nums[..] {
            [e] => (if e < 0 { -1 } else { 1 }, if e < 1 { -1 } else { 1 }, e),
            [s, e] => (s, if s <= e { 1 } else { -1 }, e),
            [s, st, e] => {
                if st == 0 || (s < e && st < 0) || (s > e && st > 0) {
                    return self.err(loc, format!("invalid ~SEQ values '{buf}'"));
                }
                (s, st, e)
            }
            _ => return bad(self),
        };
        if hex && (start < 0 || end < 0) {
            return self.err(
                loc,
                format!("~SEQx is only valid for positive numbers '{buf}'"),
            );
        }
        let mut v = start;
        let mut n = 0;
        while (step > 0 && v <= end) || (step < 0 && v >= end) {
            n += 1;
            if n > 65536 {
                return self.err(loc, "~SEQ produces more than 65536 lines");
            }
            let val = if hex { format!("{v:x}") } else { v.to_string() };
            self.defs.insert(
                var.clone(),
                Def {
                    value: vec![val],
                    multiline: false,
                },
            );
            self.logical_line(text.clone(), loc, depth + 1);
            v += step;
        }
    }
}

/// `strtol(s, &end, 0)` that must consume the whole string.
pub(super) fn parse_c_long(s: &str) -> Option<i64> {
    let (neg, t) = match s.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        i64::from_str_radix(&t[1..], 8).ok()?
    } else {
        t.parse().ok()?
    };
    Some(if neg { -v } else { v })
}
