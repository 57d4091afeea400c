//! popt emulation: the option scanner `process_options` drives.

use super::table::*;

pub(super) const POPT_BADOPT: &str = "unknown option";
pub(super) const POPT_NOARG: &str = "missing argument";
pub(super) const POPT_UNWANTEDARG: &str = "option does not take an argument";

pub(super) enum Next {
    Opt(Tag, Option<String>),
    End,
    Err(String, &'static str),
}

/// A scanner with popt's rules: options and left-over arguments may be
/// interleaved, `--` ends options, a lone `-` is an argument, short options
/// cluster, an argument may be glued to a short option (`-w5`, `-w=5`) or
/// follow `=` on a long one, and an optional argument (`-p`) takes the next
/// element only when it does not start with `-`.
pub(super) struct Popt<'a> {
    pub(super) args: &'a [String],
    pub(super) next: usize,
    /// Remaining characters of the short-option cluster being scanned.
    pub(super) cluster: Option<String>,
    pub(super) rest_leftover: bool,
    pub(super) leftover: Vec<String>,
}

impl<'a> Popt<'a> {
    pub(super) fn new(args: &'a [String]) -> Self {
        Popt {
            args,
            next: 1,
            cluster: None,
            rest_leftover: false,
            leftover: Vec::new(),
        }
    }

    pub(super) fn current(&self) -> String {
        self.args
            .get(self.next.saturating_sub(1))
            .cloned()
            .unwrap_or_default()
    }

    pub(super) fn take_arg(
        &mut self,
        arg: Arg,
        glued: Option<String>,
    ) -> Result<Option<String>, Next> {
        match arg {
            Arg::No => Ok(None),
            _ if glued.is_some() => Ok(glued),
            Arg::Required => match self.args.get(self.next) {
                Some(a) => {
                    self.next += 1;
                    Ok(Some(a.clone()))
                }
                None => Err(Next::Err(self.current(), POPT_NOARG)),
            },
            Arg::Optional => match self.args.get(self.next) {
                Some(a) if !a.starts_with('-') => {
                    self.next += 1;
                    Ok(Some(a.clone()))
                }
                _ => Ok(None),
            },
        }
    }

    pub(super) fn next_opt(&mut self) -> Next {
        loop {
            if let Some(cl) = self.cluster.take() {
                let mut chars = cl.chars();
                let Some(c) = chars.next() else { continue };
                let mut rest: String = chars.collect();
                if let Some(r) = rest.strip_prefix('=') {
                    rest = r.to_string();
                }
                let Some(&(_, _, arg, tag)) = OPTIONS.iter().find(|o| o.1 == Some(c)) else {
                    return Next::Err(self.current(), POPT_BADOPT);
                };
                let glued = if arg != Arg::No && !rest.is_empty() {
                    Some(std::mem::take(&mut rest))
                } else {
                    None
                };
                if !rest.is_empty() {
                    self.cluster = Some(rest);
                }
                return match self.take_arg(arg, glued) {
                    Ok(a) => Next::Opt(tag, a),
                    Err(e) => e,
                };
            }
            let Some(s) = self.args.get(self.next).cloned() else {
                return Next::End;
            };
            self.next += 1;
            if self.rest_leftover || !s.starts_with('-') || s == "-" {
                self.leftover.push(s);
                continue;
            }
            if s == "--" {
                self.rest_leftover = true;
                continue;
            }
            if let Some(long) = s.strip_prefix("--") {
                let (name, val) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                let Some(&(_, _, arg, tag)) = OPTIONS.iter().find(|o| o.0 == name) else {
                    return Next::Err(s, POPT_BADOPT);
                };
                if arg == Arg::No && val.is_some() {
                    return Next::Err(s, POPT_UNWANTEDARG);
                }
                return match self.take_arg(arg, val) {
                    Ok(a) => Next::Opt(tag, a),
                    Err(e) => e,
                };
            }
            self.cluster = Some(s[1..].to_string());
        }
    }
}
