//! Every constant the Rust side holds for a `#define` of the BPF headers,
//! checked against the headers' text: the skeleton carries enums and
//! types, not macros. The headers are read wherever under `bpf/` they are,
//! so moving a definition between headers needs no change here.

use std::collections::HashMap;
use std::path::Path;

use xvs_core::model::svc_flags;
use xvs_core::sched::{hash, locality};

use super::*;
use crate::decap;

/// `NAME -> value` of every `#define XVS_...` with an integer value in the
/// C sources under `dir`.
fn defines(dir: &Path) -> HashMap<String, u64> {
    let mut text = HashMap::new();
    collect(dir, &mut text);
    let mut out = HashMap::new();
    for name in text.keys() {
        if let Some(v) = eval(name, &text, 0) {
            out.insert(name.clone(), v);
        }
    }
    out
}

fn collect(dir: &Path, out: &mut HashMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
            continue;
        }
        if !matches!(p.extension().and_then(|x| x.to_str()), Some("h" | "c")) {
            continue;
        }
        let src = std::fs::read_to_string(&p).unwrap_or_default();
        for line in src.lines() {
            let Some(rest) = line.trim_start().strip_prefix("#define ") else {
                continue;
            };
            let mut it = rest.splitn(2, char::is_whitespace);
            let (Some(name), Some(value)) = (it.next(), it.next()) else {
                continue;
            };
            if name.starts_with("XVS_") && !name.contains('(') {
                let value = value.split("/*").next().unwrap_or("").trim();
                out.insert(name.to_string(), value.to_string());
            }
        }
    }
}

/// The value of macro `name`: integer literals (with `u`/`l` suffixes),
/// other macros, parentheses, `*` and `<<`: what the shared constants use.
fn eval(name: &str, text: &HashMap<String, String>, depth: u32) -> Option<u64> {
    if depth > 8 {
        return None;
    }
    let expr = text.get(name)?;
    let tokens = tokenize(expr)?;
    let mut pos = 0;
    let v = binary(&tokens, &mut pos, text, depth, &OPS)?;
    (pos == tokens.len()).then_some(v)
}

fn tokenize(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let mut t = String::new();
            while let Some(&d) = chars
                .peek()
                .filter(|d| d.is_ascii_alphanumeric() || **d == '_')
            {
                t.push(d);
                chars.next();
            }
            out.push(t);
        } else if c == '<' {
            chars.next();
            (chars.next() == Some('<')).then_some(())?;
            out.push("<<".into());
        } else if matches!(c, '(' | ')' | '*') {
            out.push(c.to_string());
            chars.next();
        } else {
            return None;
        }
    }
    Some(out)
}

/// A binary expression of `ops`, loosest first (`<<` binds looser
/// than `*`, as in C), over atoms.
fn binary(
    t: &[String],
    pos: &mut usize,
    text: &HashMap<String, String>,
    depth: u32,
    ops: &[&str],
) -> Option<u64> {
    let Some((&op, tighter)) = ops.split_first() else {
        return atom(t, pos, text, depth);
    };
    let mut v = binary(t, pos, text, depth, tighter)?;
    while t.get(*pos).map(String::as_str) == Some(op) {
        *pos += 1;
        let r = binary(t, pos, text, depth, tighter)?;
        v = match op {
            "<<" => v.checked_shl(u32::try_from(r).ok()?)?,
            _ => v.checked_mul(r)?,
        };
    }
    Some(v)
}

/// The operators the headers' constants use, loosest first.
const OPS: [&str; 2] = ["<<", "*"];

fn atom(t: &[String], pos: &mut usize, text: &HashMap<String, String>, depth: u32) -> Option<u64> {
    let tok = t.get(*pos)?;
    *pos += 1;
    if tok == "(" {
        let v = binary(t, pos, text, depth, &OPS)?;
        (t.get(*pos).map(String::as_str) == Some(")")).then_some(())?;
        *pos += 1;
        return Some(v);
    }
    if tok.starts_with(|c: char| c.is_ascii_digit()) {
        let digits = tok.trim_end_matches(['u', 'U', 'l', 'L']);
        return match digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => digits.parse().ok(),
        };
    }
    eval(tok, text, depth + 1)
}

#[test]
fn the_evaluator_reads_the_forms_the_headers_use() {
    let text: HashMap<String, String> = [
        ("A", "0xffffffffu"),
        ("B", "(1u << A_BITS)"),
        ("A_BITS", "12"),
        ("C", "(24ULL * 3600 * 1000000000ULL)"),
        ("D", "A + 1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(eval("A", &text, 0), Some(0xffff_ffff));
    assert_eq!(eval("B", &text, 0), Some(4096));
    assert_eq!(eval("C", &text, 0), Some(86_400_000_000_000));
    assert_eq!(eval("D", &text, 0), None, "not a form it knows: no guess");
}

#[test]
fn rust_constants_match_the_bpf_headers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bpf");
    let defs = defines(&dir);
    let expect: [(&str, u64); 15] = [
        ("XVS_NO_DEST", NO_DEST.into()),
        ("XVS_SVC_DESTS_MAX", SVC_DESTS_MAX as u64),
        ("XVS_LBLCR_SET_MAX", LBLCR_SET_MAX as u64),
        ("XVS_MH_TAB_MAX", MH_TAB_MAX as u64),
        ("XVS_RING_GEN_SHIFT", RING_GEN_SHIFT.into()),
        ("XVS_CNT_SLOTS", CNT_SLOTS.into()),
        ("XVS_SVC_F_PERSISTENT", svc_flags::PERSISTENT.into()),
        ("XVS_SVC_F_ONEPACKET", svc_flags::ONEPACKET.into()),
        ("XVS_SVC_F_SCHED1", svc_flags::SCHED1.into()),
        ("XVS_SVC_F_SCHED2", svc_flags::SCHED2.into()),
        ("XVS_HASH_TAB_SIZE", hash::SH_TAB_SIZE as u64),
        ("XVS_HASH_TAB_SIZE", hash::DH_TAB_SIZE as u64),
        (
            "XVS_LBLC_EXPIRATION_NS",
            locality::DEFAULT_EXPIRATION * 1_000_000_000,
        ),
        ("XVS_DECAP_MAX_VIPS", decap::MAX_VIPS as u64),
        ("XVS_DECAP_MAX_PORTS", decap::MAX_GUE_PORTS as u64),
    ];
    for (name, want) in expect {
        assert_eq!(
            defs.get(name),
            Some(&want),
            "{name} in {} and in the Rust side differ (or it is no longer a #define there)",
            dir.display()
        );
    }
}
