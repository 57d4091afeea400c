//! The ipvsadm 1.31 command-line grammar.
//!
//! [`parse`] follows `process_options()` in ipvsadm.c step by step: popt's
//! option scanning (short clusters such as `-Lnc`, `--long=value`, `-p`'s
//! optional argument, left-over arguments), the first option must be a
//! command, per-option checks in the order given, `--set` arguments,
//! `commands_v_options`, the service/destination consistency checks and the
//! tunnel option table. Error texts and exit codes are ipvsadm's:
//! `fail(2, ...)` exits 2, popt errors and "Try ..." exit 255 (ipvsadm
//! returns -1 from `main`).
//!
//! xvs only models IPv4 TCP/UDP/SCTP and fwmark services and IPv4
//! sync-daemon groups; IPv6 parses exactly as in ipvsadm and then yields
//! [`ParseError::Unsupported`]. The mark classifier commands
//! (`--add-mark`, `--del-mark`, `--list-marks`, `--clear-marks`) are an
//! xvs extension with a grammar of their own (`marks.rs`).

mod build;
mod command;
mod entry;
mod marks;
mod popt;
mod restore;
mod scan;
mod table;
mod text;
mod values;

pub use command::{
    Command, ListOptions, ListTarget, ParseError, DEFAULT_MCAST_IFN, DEFAULT_PERSISTENT_TIMEOUT,
    EXIT_ERROR, EXIT_FAIL, MAX_TIMEOUT,
};
pub use marks::{list_marks, save_marks};
pub use restore::{parse_restore_line, restore_lines};
pub use scan::{parse, parse_with};
pub use table::long_options;
pub use text::{usage_text, version_text};
pub use values::inet_aton;

#[cfg(test)]
#[path = "ipvsadm_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "ipvsadm_fwmark_tests.rs"]
mod fwmark_tests;
