//! `include` / `includer|m|w|b|a` PATTERN: the files matched by the glob,
//! relative to the including file's directory, depth-limited.

use super::*;

impl Lexer {
    /// `include PATTERN` and its variants; true if `buf` was an include.
    pub(super) fn include(&mut self, buf: &str, loc: &Location) -> bool {
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
}
