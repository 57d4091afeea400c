//! keepalived's line reader (`lib/parser.c`: `read_line`, `decomment`,
//! `alloc_strvec_r`), producing one [`Line`] per keyword line with braces on
//! lines of their own.
//!
//! Per physical line, in keepalived's order:
//! 1. end-of-line characters are removed; `decomment` strips leading and
//!    trailing blanks and everything from an unquoted `#` or `!` on
//!    (`\#` and `\!` are a literal `#`/`!`); a trailing `\` is kept as a
//!    continuation mark, which only multi-line definitions use;
//! 2. while a multi-line `$NAME=... \` definition is open, the line is added
//!    to it;
//! 3. `@ID` / `@^ID` conditional lines are kept only when ID matches (or, with
//!    `^`, does not match) the config id;
//! 4. `$NAME=VALUE` defines a parameter; `~SEQ(VAR, [START,] END [, STEP])
//!    TEXT` repeats TEXT; `$NAME` and `${NAME}` are substituted (recursively);
//! 5. `include` / `includer|m|w|b|a` PATTERN reads files matched by the glob
//!    PATTERN, relative to the directory of the including file;
//! 6. the line is cut before and after every `{` and `}` outside double
//!    quotes, and each piece is split into words: blanks separate words and
//!    `"..."` is one word without its quotes.

use crate::glob;
use crate::{Error, Location, Warning};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One logical line: a keyword line, `{`, or `}`.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub loc: Location,
    pub words: Vec<String>,
    /// The text the words came from (after comments, conditionals and
    /// substitutions), re-split by keywords that take quoted scripts.
    pub raw: String,
    /// `alloc_strvec_r` found a `"` without its closing partner.
    pub unmatched_quote: bool,
}

#[derive(Debug, Clone)]
struct Def {
    /// Lines of the value; more than one for a multi-line definition.
    value: Vec<String>,
    multiline: bool,
}

const MAX_INCLUDE_DEPTH: usize = 32;
const MAX_SUBST: usize = 1000;

pub(crate) struct Lexer {
    config_id: Option<String>,
    defs: HashMap<String, Def>,
    /// Name of the open multi-line definition.
    open_def: Option<String>,
    pub lines: Vec<Line>,
    pub errors: Vec<Error>,
    pub warnings: Vec<Warning>,
    /// Every file read, in the order it was opened.
    pub files: Vec<String>,
    /// Files being read, to refuse include loops.
    stack: Vec<PathBuf>,
    /// Directory of the file being read (`$_PWD`).
    cur_dir: PathBuf,
    allow_includes: bool,
}

impl Lexer {
    pub fn new(config_id: Option<String>, allow_includes: bool) -> Self {
        Lexer {
            config_id,
            defs: HashMap::new(),
            open_def: None,
            lines: vec![],
            errors: vec![],
            warnings: vec![],
            files: vec![],
            stack: vec![],
            cur_dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            allow_includes,
        }
    }

    fn err(&mut self, loc: &Location, msg: impl Into<String>) {
        self.errors.push(Error::new(loc.clone(), msg));
    }

    fn warn(&mut self, loc: &Location, msg: impl Into<String>) {
        self.warnings.push(Warning::new(loc.clone(), msg));
    }

    /// Reads a file given on the command line (not through `include`).
    pub fn read_top_file(&mut self, path: &Path) {
        let name = path.display().to_string();
        match std::fs::read(path) {
            Ok(bytes) => {
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                let dir = if dir.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    dir
                };
                let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
                self.read_text(&String::from_utf8_lossy(&bytes), &name, dir, Some(canon));
            }
            Err(e) => {
                self.files.push(name.clone());
                self.errors.push(Error::new(
                    Location::file(&name),
                    format!("cannot read: {e}"),
                ))
            }
        }
    }

    /// Reads `text` as the file `name` whose includes are relative to `dir`.
    pub fn read_text(&mut self, text: &str, name: &str, dir: PathBuf, canon: Option<PathBuf>) {
        let saved_dir = std::mem::replace(&mut self.cur_dir, dir);
        self.files.push(name.to_string());
        if let Some(c) = &canon {
            self.stack.push(c.clone());
        }
        for (i, raw) in text.split('\n').enumerate() {
            let loc = Location::new(name, i as u32 + 1);
            self.physical_line(raw, &loc);
        }
        if let Some(d) = self.open_def.take() {
            let loc = Location::new(name, text.split('\n').count() as u32);
            self.warn(
                &loc,
                format!("multi-line definition ${d} still open at end of file"),
            );
        }
        if canon.is_some() {
            self.stack.pop();
        }
        self.cur_dir = saved_dir;
    }

    fn physical_line(&mut self, raw: &str, loc: &Location) {
        let raw = raw.trim_end_matches(['\r', '\n']);
        if raw.is_empty() {
            if let Some(d) = self.open_def.take() {
                if let Some(def) = self.defs.get_mut(&d) {
                    if def.value.iter().all(|l| l.is_empty()) {
                        def.multiline = false;
                    }
                }
            }
            return;
        }
        if raw.contains('\0') {
            self.err(loc, "configuration has embedded NULs - line ignored");
            return;
        }
        let (buf, unterminated) = decomment(raw);
        if unterminated {
            self.err(loc, format!("unterminated quote in '{buf}'"));
        }
        if buf.is_empty() {
            return;
        }
        if let Some(name) = self.open_def.clone() {
            let (text, more) = match buf.strip_suffix('\\') {
                Some(t) => (t.trim_end_matches([' ', '\t']).to_string(), true),
                None => (buf.clone(), false),
            };
            let def = self.defs.get_mut(&name).expect("open definition exists");
            if def.value.len() == 1 && def.value[0].is_empty() {
                def.value[0] = text;
            } else {
                def.value.push(text);
            }
            if !more {
                self.open_def = None;
            }
            return;
        }
        self.logical_line(buf, loc, 0);
    }

    /// Steps 3 to 6 for one line (also used for `~SEQ` bodies and the
    /// further lines of multi-line definitions).
    fn logical_line(&mut self, mut buf: String, loc: &Location, depth: usize) {
        if depth > 64 {
            self.err(loc, "definitions nested too deeply");
            return;
        }
        let mut extra: Vec<String> = vec![];
        for _round in 0..16 {
            if let Some(rest) = buf.strip_prefix('@') {
                let (rev, rest) = match rest.strip_prefix('^') {
                    Some(r) => (true, r),
                    None => (false, rest),
                };
                let Some(sp) = rest.find([' ', '\t']) else {
                    return;
                };
                let id = &rest[..sp];
                let matches = self.config_id.as_deref() == Some(id) || id == crate::XVSD_ID;
                if matches == rev {
                    return;
                }
                buf = rest[sp..].trim_start_matches([' ', '\t']).to_string();
                if buf.is_empty() {
                    return;
                }
            }
            if buf.starts_with('$') && self.definition(&buf) {
                return;
            }
            if buf.starts_with("~SEQ") {
                self.seq(&buf, loc, depth);
                return;
            }
            if buf.starts_with("~LST") {
                self.err(loc, "~LST is not supported by xvs");
                return;
            }
            if buf.starts_with('~') {
                break;
            }
            if self.defs.is_empty() || !buf.contains('$') {
                break;
            }
            let (changed, more) = self.substitute(&mut buf, loc);
            extra.splice(0..0, more);
            if !changed {
                break;
            }
            let (b, _) = decomment(&buf);
            buf = b;
            if buf.is_empty() {
                break;
            }
            let again = buf.starts_with('@') || (buf.starts_with('$') && is_definition(&buf));
            if !again {
                break;
            }
        }
        if !buf.is_empty() && !self.include(&buf, loc) {
            self.split_braces(&buf, loc);
        }
        for l in extra {
            let (b, _) = decomment(&l);
            if !b.is_empty() {
                self.logical_line(b, loc, depth + 1);
            }
        }
    }

    /// `$NAME=VALUE`: returns true when `buf` is a definition (and stores it).
    fn definition(&mut self, buf: &str) -> bool {
        if !is_definition(buf) {
            return false;
        }
        let eq = buf.find('=').expect("definition has '='");
        let name = buf[1..eq].to_string();
        let mut value = buf[eq + 1..].trim_start_matches([' ', '\t']).to_string();
        let multiline = value.ends_with('\\');
        if multiline {
            value.pop();
            let v = value.trim_end_matches([' ', '\t']);
            value = v.to_string();
            self.open_def = Some(name.clone());
        }
        self.defs.insert(
            name,
            Def {
                value: vec![value],
                multiline,
            },
        );
        true
    }

    /// Value of a standard (`$_NAME`) definition.
    fn std_def(&self, name: &str, params: Option<&str>) -> Option<String> {
        match name {
            "_PWD" => Some(self.cur_dir.display().to_string()),
            "_HASH" => Some("#".into()),
            "_BANG" => Some("!".into()),
            "_INSTANCE" => Some(String::new()),
            "_ENV" => params.map(|p| std::env::var(p.trim()).unwrap_or_default()),
            _ => None,
        }
    }

    /// `replace_param`: substitutes `$NAME` / `${NAME}` in `buf`; returns
    /// whether anything changed and the further lines of a multi-line value.
    fn substitute(&mut self, buf: &mut String, loc: &Location) -> (bool, Vec<String>) {
        let mut pos = 0;
        let mut changed = false;
        let mut extra = vec![];
        let mut count = 0;
        while let Some(off) = buf[pos..].find('$') {
            let at = pos + off;
            let after = &buf[at + 1..];
            let braces = after.starts_with('{');
            let name_start = if braces { 1 } else { 0 };
            let name_len = after[name_start..]
                .char_indices()
                .take_while(|&(i, c)| {
                    c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_alphanumeric())
                })
                .count();
            if name_len == 0 {
                pos = at + 1;
                continue;
            }
            let name = &after[name_start..name_start + name_len];
            let rest = &after[name_start + name_len..];
            let (end, params) = if braces {
                // `${NAME}` or `${NAME params}`
                let Some(close) = rest.find('}') else {
                    pos = at + 1;
                    continue;
                };
                let p = rest[..close].trim();
                if !rest[..close].is_empty() && !rest[..close].starts_with([' ', '\t']) {
                    pos = at + 1;
                    continue;
                }
                (
                    at + 1 + name_start + name_len + close + 1,
                    if p.is_empty() {
                        None
                    } else {
                        Some(p.to_string())
                    },
                )
            } else {
                if !(rest.is_empty() || rest.starts_with([' ', '\t', ',', ')'])) {
                    pos = at + 1;
                    continue;
                }
                (at + 1 + name_len, None)
            };
            let at_end = end == buf.len();
            let value: Option<(Vec<String>, bool)> = match self.defs.get(name) {
                Some(d) if d.multiline && !at_end => None,
                Some(d) => Some((d.value.clone(), d.multiline)),
                None => self
                    .std_def(name, params.as_deref())
                    .map(|v| (vec![v], false)),
            };
            let Some((value, multiline)) = value else {
                pos = at + 1;
                continue;
            };
            count += 1;
            if count > MAX_SUBST {
                self.err(loc, "parameter substitution does not terminate");
                return (changed, extra);
            }
            changed = true;
            let first = value.first().cloned().unwrap_or_default();
            buf.replace_range(at..end, &first);
            if multiline {
                let mut e = value[1..].to_vec();
                e.append(&mut extra);
                extra = e;
            }
            if first.trim_start_matches([' ', '\t']).starts_with('~') {
                break;
            }
            pos = at;
        }
        (changed, extra)
    }

    /// `~SEQ(VAR, ...) TEXT` and `~SEQx(...)`.
    fn seq(&mut self, buf: &str, loc: &Location, depth: usize) {
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

    /// `include PATTERN` and its variants; true if `buf` was an include.
    fn include(&mut self, buf: &str, loc: &Location) -> bool {
        let Some(rest) = buf.strip_prefix("include") else {
            return false;
        };
        let (kind, pat) = match rest.chars().next() {
            Some(c) if c == ' ' || c == '\t' => (' ', &rest[1..]),
            Some(c) if "rmwba".contains(c) && rest[1..].starts_with([' ', '\t']) => (c, &rest[2..]),
            _ => return false,
        };
        let pat = pat.trim_matches([' ', '\t']).to_string();
        if !self.allow_includes {
            self.err(loc, format!("include is not allowed here ('{pat}')"));
            return true;
        }
        if pat.is_empty() {
            self.err(loc, "include needs a file name or pattern");
            return true;
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            self.err(
                loc,
                format!("includes nested more than {MAX_INCLUDE_DEPTH} deep at '{pat}'"),
            );
            return true;
        }
        let wildcards = glob::has_wildcards(&pat) || glob::expand_braces(&pat).len() > 1;
        let files = glob::glob(&pat, &self.cur_dir);
        if files.is_empty() {
            if !wildcards {
                self.err(loc, format!("include '{pat}': no such file"));
            } else if kind == 'w' || kind == 'a' {
                self.err(loc, format!("include '{pat}': no config files matched"));
            } else {
                self.warn(loc, format!("include '{pat}': no config files matched"));
            }
            return true;
        }
        for f in files {
            let shown = f.display().to_string();
            if shown.ends_with('/') {
                self.warn(
                    loc,
                    format!("include: configuration file '{shown}' is a directory - skipping"),
                );
                continue;
            }
            let md = match std::fs::metadata(&f) {
                Ok(m) => m,
                Err(e) => {
                    self.err(loc, format!("include: cannot read '{shown}': {e}"));
                    continue;
                }
            };
            #[cfg(unix)]
            let exec = {
                use std::os::unix::fs::PermissionsExt;
                md.permissions().mode() & 0o111 != 0
            };
            #[cfg(not(unix))]
            let exec = false;
            if !md.is_file() || exec {
                self.warn(
                    loc,
                    format!("include: configuration file '{shown}' is not a regular non-executable file - skipping"),
                );
                continue;
            }
            let canon = std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone());
            if self.stack.contains(&canon) {
                self.err(loc, format!("include loop: '{shown}' includes itself"));
                continue;
            }
            let text = match std::fs::read(&f) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => {
                    self.err(loc, format!("include: cannot read '{shown}': {e}"));
                    continue;
                }
            };
            let dir = f
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| self.cur_dir.clone());
            self.read_text(&text, &shown, dir, Some(canon));
        }
        true
    }

    /// Cuts `buf` around `{` / `}` outside quotes and emits the pieces.
    fn split_braces(&mut self, buf: &str, loc: &Location) {
        let mut rest = buf.trim_matches([' ', '\t']);
        while !rest.is_empty() {
            let mut cut = None;
            if rest.starts_with(['{', '}']) {
                cut = Some(0);
            } else {
                let mut q = false;
                for (i, c) in rest.char_indices() {
                    match c {
                        '"' => q = !q,
                        '{' | '}' if !q => {
                            cut = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
            }
            match cut {
                Some(0) => {
                    self.emit(&rest[..1], loc);
                    rest = rest[1..].trim_matches([' ', '\t']);
                }
                Some(i) => {
                    self.emit(rest[..i].trim_end_matches([' ', '\t']), loc);
                    rest = &rest[i..];
                }
                None => {
                    self.emit(rest, loc);
                    rest = "";
                }
            }
        }
    }

    fn emit(&mut self, piece: &str, loc: &Location) {
        let (words, unmatched_quote) = split_words(piece);
        if words.is_empty() {
            return;
        }
        self.lines.push(Line {
            loc: loc.clone(),
            words,
            raw: piece.to_string(),
            unmatched_quote,
        });
    }
}

fn is_definition(buf: &str) -> bool {
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

/// `strtol(s, &end, 0)` that must consume the whole string.
fn parse_c_long(s: &str) -> Option<i64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decomment_rules() {
        assert_eq!(decomment("  a b # c").0, "a b");
        assert_eq!(decomment("a ! c").0, "a");
        assert_eq!(decomment("a \"# x\" ! c").0, "a \"# x\"");
        assert_eq!(decomment("a \\# b").0, "a # b");
        assert_eq!(decomment("a \\").0, "a\\");
        assert!(decomment("a \"b").1);
    }

    #[test]
    fn words() {
        assert_eq!(split_words("a \"b c\" d").0, ["a", "b c", "d"]);
        assert_eq!(split_words("ab\"c d\"").0, ["ab", "c d"]);
        assert!(split_words("a \"b").1);
        assert_eq!(
            split_quoted("/bin/x 'a b' \"c d\"e", true).unwrap(),
            ["/bin/x", "a b", "c de"]
        );
        assert_eq!(split_quoted("a\\x41\\tb", true).unwrap(), ["aA\tb"]);
        assert_eq!(split_quoted("a\\x41", false).unwrap(), ["a\\x41"]);
        assert!(split_quoted("'a", true).is_err());
    }

    #[test]
    fn c_long() {
        assert_eq!(parse_c_long("0x10"), Some(16));
        assert_eq!(parse_c_long("010"), Some(8));
        assert_eq!(parse_c_long("-3"), Some(-3));
        assert_eq!(parse_c_long("x"), None);
    }
}
