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

mod include;
mod params;
mod seq;
mod words;

use words::is_definition;
pub(crate) use words::{decomment, split_quoted, split_words};

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

#[cfg(test)]
#[path = "lexer_tests.rs"]
mod tests;
