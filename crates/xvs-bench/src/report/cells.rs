//! Table cells: `median [min–max]` and number formats.

/// `median [min–max]` (or just the value for one sample).
pub(super) fn stat(v: &[f64], fmt: fn(f64) -> String) -> String {
    if v.is_empty() {
        return "–".into();
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let med = if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    };
    if s.len() == 1 {
        fmt(med)
    } else {
        format!("{} [{}–{}]", fmt(med), fmt(s[0]), fmt(s[s.len() - 1]))
    }
}

pub(super) fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    Some(if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    })
}

pub(super) fn k(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// `20 000`: thousands separated by a space.
pub(super) fn fmt_int(v: u32) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

pub(super) fn f2(v: f64) -> String {
    format!("{v:.2}")
}

pub(super) fn f1(v: f64) -> String {
    format!("{v:.1}")
}

pub(super) fn f0(v: f64) -> String {
    format!("{v:.0}")
}
