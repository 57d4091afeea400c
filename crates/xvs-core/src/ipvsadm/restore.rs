//! `-R`: ipvsadm's `config_stream_read` line splitting and the nested `-R`
//! refusal.

use super::command::*;
use super::scan::parse_inner;
use crate::names::Resolver;

/// The argument vectors `ipvsadm -R` makes of its input, as its
/// `config_stream_read` does: each line split at spaces, tabs and
/// carriage returns, every word `ipvsadm` dropped, `program` put first;
/// a line without words is skipped. Nothing else is special: `#` and
/// quotes are plain characters (the `ipvsadm-restore` script drops
/// comment lines before ipvsadm sees them). Returns (line number, argv).
pub fn restore_lines<'a>(
    text: &'a str,
    program: &'a str,
) -> impl Iterator<Item = (usize, Vec<String>)> + 'a {
    text.lines().enumerate().filter_map(move |(i, line)| {
        let words: Vec<String> = line
            .split([' ', '\t', '\r'])
            .filter(|w| !w.is_empty() && *w != "ipvsadm")
            .map(str::to_string)
            .collect();
        if words.is_empty() {
            return None;
        }
        let mut argv = vec![program.to_string()];
        argv.extend(words);
        Some((i + 1, argv))
    })
}

/// Parses one line of `-R` input ([`restore_lines`]) as ipvsadm's
/// `process_options` does while reading stdin (a nested `-R` is refused).
pub fn parse_restore_line(argv: &[String], names: &dyn Resolver) -> Result<Command, ParseError> {
    parse_inner(argv, names, true)
}
