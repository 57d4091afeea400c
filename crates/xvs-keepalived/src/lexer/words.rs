//! The tokenizer: keepalived's `decomment`, `alloc_strvec_r` and
//! `alloc_strvec_quoted_escaped_common`, and the test for a `$NAME=` line.

/// keepalived's `decomment`: returns the cleaned line and whether a `"` was
/// left open.
pub(crate) fn decomment(line: &str) -> (String, bool) {
    let s = line.trim_start_matches([' ', '\t']);
    let mut out = String::with_capacity(s.len());
    let mut quote = false;
    let mut cont = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quote = !quote;
                out.push(c);
            }
            '\\' => match chars.peek() {
                None => {
                    cont = true;
                    break;
                }
                Some(&n) => {
                    if !quote && (n == '#' || n == '!') {
                        out.push(n);
                    } else {
                        out.push('\\');
                        out.push(n);
                    }
                    chars.next();
                }
            },
            '#' | '!' if !quote => break,
            _ => out.push(c),
        }
    }
    let mut out = out
        .trim_end_matches([' ', '\t', '\x0b', '\x0c'])
        .to_string();
    if cont {
        out.push('\\');
    }
    (out, quote)
}

/// `alloc_strvec_r`: blanks separate words; a word starting with `"` runs to
/// the next `"` (quotes removed); other words also end at a `"`.
pub(crate) fn split_words(s: &str) -> (Vec<String>, bool) {
    const WS: &[char] = &[' ', '\t', '\x0c', '\n', '\r', '\x0b'];
    let mut words = vec![];
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches(WS);
        if rest.is_empty() {
            return (words, false);
        }
        if let Some(r) = rest.strip_prefix('"') {
            match r.find('"') {
                Some(e) => {
                    words.push(r[..e].to_string());
                    rest = &r[e + 1..];
                }
                None => return (words, true),
            }
        } else {
            let e = rest
                .find(|c: char| WS.contains(&c) || c == '"')
                .unwrap_or(rest.len());
            words.push(rest[..e].to_string());
            rest = &rest[e..];
        }
    }
}

/// `alloc_strvec_quoted_escaped_common`: words separated by blanks; `"..."`
/// and `'...'` group (quotes removed, may join with adjacent text); with
/// `escapes`, `\n`, `\t`, `\xHH`, `\ooo`, `\cC`... are decoded, otherwise a
/// `\` and its character are kept as they are.
pub(crate) fn split_quoted(s: &str, escapes: bool) -> Result<Vec<String>, String> {
    let ws = |c: char| matches!(c, ' ' | '\t' | '\x0c' | '\n' | '\r' | '\x0b');
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut words = vec![];
    while i < chars.len() {
        while i < chars.len() && ws(chars[i]) {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            if c == '\\' {
                i += 1;
                let Some(&n) = chars.get(i) else {
                    return Err(format!("missing escaped character at end of '{s}'"));
                };
                if !escapes {
                    word.push('\\');
                    word.push(n);
                    i += 1;
                    continue;
                }
                match n {
                    'x' if chars.get(i + 1).is_some_and(|c| c.is_ascii_hexdigit()) => {
                        i += 1;
                        let mut v = 0u32;
                        let mut k = 0;
                        while k < 2 && chars.get(i).is_some_and(|c| c.is_ascii_hexdigit()) {
                            v = v * 16 + chars[i].to_digit(16).unwrap_or(0);
                            i += 1;
                            k += 1;
                        }
                        word.push(char::from_u32(v).unwrap_or('?'));
                    }
                    'c' if chars.get(i + 1).is_some() => {
                        word.push(char::from_u32(chars[i + 1] as u32 & 0x1f).unwrap_or('?'));
                        i += 2;
                    }
                    '0'..='7' => {
                        let mut v = 0u32;
                        let mut k = 0;
                        while k < 3 && chars.get(i).is_some_and(|c| ('0'..='7').contains(c)) {
                            v = v * 8 + chars[i].to_digit(8).unwrap_or(0);
                            i += 1;
                            k += 1;
                        }
                        word.push(char::from_u32(v & 0xff).unwrap_or('?'));
                    }
                    _ => {
                        word.push(match n {
                            'a' => '\x07',
                            'b' => '\x08',
                            'E' => '\x1b',
                            'f' => '\x0c',
                            'n' => '\n',
                            'r' => '\r',
                            't' => '\t',
                            'v' => '\x0b',
                            o => o,
                        });
                        i += 1;
                    }
                }
                continue;
            }
            match quote {
                Some(q) if c == q => {
                    quote = None;
                    i += 1;
                }
                Some(_) => {
                    word.push(c);
                    i += 1;
                }
                None if c == '"' || c == '\'' => {
                    quote = Some(c);
                    i += 1;
                }
                None if ws(c) => break,
                None => {
                    word.push(c);
                    i += 1;
                }
            }
        }
        if let Some(q) = quote {
            return Err(format!("string '{s}': missing terminating {q}"));
        }
        words.push(word);
    }
    Ok(words)
}

/// Whether `buf` starts a `$NAME=VALUE` definition: `$`, a name of
/// letters, digits and `_` (not starting with a digit), then `=`.
pub(super) fn is_definition(buf: &str) -> bool {
    let b = buf.as_bytes();
    if b.len() < 2 || b[0] != b'$' || !(b[1].is_ascii_alphabetic() || b[1] == b'_') {
        return false;
    }
    for &c in &b[2..] {
        if c == b'=' {
            return true;
        }
        if !(c.is_ascii_alphanumeric() || c == b'_') {
            return false;
        }
    }
    false
}
