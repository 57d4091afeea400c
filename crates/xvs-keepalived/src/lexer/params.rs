//! Parameters: `$NAME=VALUE` definitions (one line or continued with `\`),
//! the standard `$_NAME`s, and `$NAME` / `${NAME}` substitution
//! (keepalived's `replace_param`).

use super::*;

impl Lexer {
    /// `$NAME=VALUE`: returns true when `buf` is a definition (and stores it).
    pub(super) fn definition(&mut self, buf: &str) -> bool {
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
    pub(super) fn std_def(&self, name: &str, params: Option<&str>) -> Option<String> {
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
    pub(super) fn substitute(&mut self, buf: &mut String, loc: &Location) -> (bool, Vec<String>) {
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
}
