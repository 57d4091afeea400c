//! The subset of glibc `glob(3)` that keepalived's `include` uses:
//! `GLOB_BRACE | GLOB_MARK`, sorted results, `*` `?` `[...]` wildcards,
//! `\` escapes, and no match of a leading `.` by a wildcard.

use std::path::{Path, PathBuf};

/// True if `s` has an unescaped glob wildcard (`*`, `?`, `[`).
pub(crate) fn has_wildcards(s: &str) -> bool {
    let mut esc = false;
    for c in s.chars() {
        if esc {
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if matches!(c, '*' | '?' | '[') {
            return true;
        }
    }
    false
}

/// csh-style brace expansion, as `GLOB_BRACE`: `a{b,c{d,e}}f` gives
/// `abf`, `acdf`, `acef`, in that order. Unbalanced braces are left alone.
pub(crate) fn expand_braces(pat: &str) -> Vec<String> {
    let b = pat.as_bytes();
    // Find the first unescaped '{' with a matching '}'.
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'{' => {
                let mut depth = 0;
                let mut j = i;
                let mut commas = vec![];
                let mut close = None;
                while j < b.len() {
                    match b[j] {
                        b'\\' => j += 1,
                        b'{' => depth += 1,
                        b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                close = Some(j);
                                break;
                            }
                        }
                        b',' if depth == 1 => commas.push(j),
                        _ => {}
                    }
                    j += 1;
                }
                let Some(close) = close else {
                    return vec![pat.to_string()];
                };
                let prefix = &pat[..i];
                let suffix = &pat[close + 1..];
                let mut bounds = vec![i];
                bounds.extend(commas);
                bounds.push(close);
                let mut out = vec![];
                for w in bounds.windows(2) {
                    let alt = &pat[w[0] + 1..w[1]];
                    for e in expand_braces(&format!("{prefix}{alt}{suffix}")) {
                        out.push(e);
                    }
                }
                return out;
            }
            _ => i += 1,
        }
    }
    vec![pat.to_string()]
}

/// Removes `\` escapes from a literal (wildcard-free) component.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut esc = false;
    for c in s.chars() {
        if !esc && c == '\\' {
            esc = true;
            continue;
        }
        esc = false;
        out.push(c);
    }
    out
}

/// `fnmatch(3)` without flags but with `FNM_PERIOD` semantics for a leading dot.
pub(crate) fn fnmatch(pat: &str, name: &str) -> bool {
    if name.starts_with('.') && !pat.starts_with('.') && !pat.starts_with("\\.") {
        return false;
    }
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((ok, len)) = class(&p[pi..], n[ni]) {
                        if ok {
                            pi += len;
                            ni += 1;
                            continue;
                        }
                    } else if n[ni] == '[' {
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                '\\' if pi + 1 < p.len() => {
                    if p[pi + 1] == n[ni] {
                        pi += 2;
                        ni += 1;
                        continue;
                    }
                }
                c => {
                    if c == n[ni] {
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Matches a bracket expression at the start of `p`; returns (matched, length).
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let neg = matches!(p.get(1), Some('!') | Some('^'));
    if neg {
        i += 1;
    }
    let mut ok = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((ok != neg, i + 1));
        }
        first = false;
        let lo = p[i];
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if lo <= c && c <= p[i + 2] {
                ok = true;
            }
            i += 3;
        } else {
            if lo == c {
                ok = true;
            }
            i += 1;
        }
    }
    None
}

/// Expands `pattern` (relative paths are taken from `base`) like glibc's
/// `glob(GLOB_BRACE | GLOB_MARK)`: alternatives in order, each one's matches
/// sorted bytewise; directories get a trailing `/`. A pattern without
/// wildcards gives itself when the path exists.
pub(crate) fn glob(pattern: &str, base: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for alt in expand_braces(pattern) {
        let (start, rest) = if let Some(r) = alt.strip_prefix('/') {
            (PathBuf::from("/"), r.to_string())
        } else {
            (base.to_path_buf(), alt.clone())
        };
        let comps: Vec<&str> = rest.split('/').filter(|c| !c.is_empty()).collect();
        let mut found = vec![start];
        for comp in &comps {
            let mut next = vec![];
            for dir in &found {
                if has_wildcards(comp) {
                    let Ok(rd) = std::fs::read_dir(dir) else {
                        continue;
                    };
                    let mut names: Vec<String> = rd
                        .filter_map(|e| e.ok())
                        .filter_map(|e| e.file_name().into_string().ok())
                        .filter(|n| fnmatch(comp, n))
                        .collect();
                    names.sort();
                    next.extend(names.into_iter().map(|n| dir.join(n)));
                } else {
                    let p = dir.join(unescape(comp));
                    if std::fs::symlink_metadata(&p).is_ok() {
                        next.push(p);
                    }
                }
            }
            found = next;
        }
        if comps.is_empty() {
            continue;
        }
        for p in found {
            if p.is_dir() {
                let mut s = p.into_os_string();
                s.push("/");
                out.push(PathBuf::from(s));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn braces() {
        assert_eq!(expand_braces("a{b,c{d,e}}f"), ["abf", "acdf", "acef"]);
        assert_eq!(expand_braces("x{,y}"), ["x", "xy"]);
        assert_eq!(expand_braces("a{b"), ["a{b"]);
        assert_eq!(expand_braces("a\\{b,c}"), ["a\\{b,c}"]);
    }

    #[test]
    fn matching() {
        assert!(fnmatch("*.conf", "a.conf"));
        assert!(!fnmatch("*.conf", ".a.conf"));
        assert!(fnmatch(".*", ".a"));
        assert!(fnmatch("a?c", "abc"));
        assert!(fnmatch("[a-c]x", "bx"));
        assert!(!fnmatch("[!a-c]x", "bx"));
        assert!(fnmatch("[]]", "]"));
        assert!(fnmatch("a\\*", "a*"));
        assert!(!fnmatch("a\\*", "ab"));
        assert!(fnmatch("*a*b*", "xxaxxbxx"));
        assert!(!fnmatch("*a*b", "xxaxxbxx"));
        assert!(has_wildcards("a*"));
        assert!(!has_wildcards("a\\*"));
    }
}
