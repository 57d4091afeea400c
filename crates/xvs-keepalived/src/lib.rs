//! keepalived.conf reader for xvs: the LVS half of keepalived's configuration
//! (`virtual_server`, `virtual_server_group`, `real_server`, health
//! checkers, `global_defs`' LVS keys), read exactly as keepalived reads it,
//! into serde-serializable types that convert to [`xvs_core::model`].
//!
//! ```no_run
//! let cfg = xvs_keepalived::load(std::path::Path::new("/etc/keepalived/keepalived.conf"))
//!     .unwrap_or_else(|errs| panic!("{errs}"));
//! for w in &cfg.warnings {
//!     eprintln!("{w}");
//! }
//! for vs in &cfg.virtual_servers {
//!     let svc = vs.to_service();
//!     let dests: Vec<_> = vs.real_servers.iter().map(|rs| rs.to_dest(vs)).collect();
//!     println!("{} {} dests", svc.key, dests.len());
//! }
//! ```
//!
//! * The syntax (comments, quoting, braces, `include` with globs, `@id`
//!   conditional lines, `$NAME=` parameters, `~SEQ`) is keepalived's
//!   `lib/parser.c`; `docs/keepalived.md` lists every rule and keyword.
//! * Keywords and defaults are keepalived's `check/check_parser.c`,
//!   `check/check_data.c` and the checkers' sources.
//! * Every problem is reported as `file:line: what is wrong`; all errors of a
//!   load are collected ([`Errors`]), not just the first.
//! * `global_defs`' `lvs_sync_daemon`, `notify_fifo` and `vrrp_notify_fifo`
//!   are read as keepalived's `core/global_parser.c`; of the `vrrp_instance`
//!   blocks only the name, `virtual_router_id` and `interface` are kept
//!   ([`Config::vrrp_instances`]), for the sync daemon's instance and sync id.
//!   [`parse_notify_line`] reads the lines keepalived writes to a notify FIFO.
//! * What xvs does not handle but keepalived does (VRRP blocks, unused
//!   `global_defs` keys, unknown keywords inside virtual/real servers) gives
//!   one [`Warning`] each. What xvs cannot do faithfully is an error
//!   naming it.
//! * IPv6 is read as keepalived 2.2 reads it: bare addresses with the port
//!   a word of its own (`virtual_server 2001:db8::1 80`), `ip_family` and
//!   the family of a fwmark service taken from its servers, IPv6
//!   `persistence_granularity` as a prefix length, group ranges whose end
//!   is the last group in hex (`ae00::2-9`), checkers' IPv6 addresses, and
//!   servers of the other family skipped with keepalived's message.
//! * `virtual_server fwmark N` and group `fwmark N` entries are fwmark
//!   services with keepalived's adjustments. xvs marks packets itself: the
//!   rules are `@xvsd match PROTO ADDR[/LEN|-LAST] [PORTS]` lines in the
//!   block ([`VirtualServer::mark_rules`]), which keepalived skips.

mod glob;
mod lexer;
pub mod model;
pub mod notify;
mod parser;

pub use model::*;

/// The config id xvsd always answers to, besides its own: a line written
/// `@xvsd ...` is read by xvsd and skipped by keepalived (whose config id
/// is the host name), for what keepalived must not act on next to xvs,
/// such as `lvs_sync_daemon` (keepalived's VRRP process would start the
/// kernel's sync daemon, and keepalived 2.2.7 crashes over it where the
/// kernel has no IPVS), and for what keepalived has no keyword for, such
/// as a fwmark virtual server's `match` rules.
pub const XVSD_ID: &str = "xvsd";
pub use notify::{parse_notify_line, NotifyEvent, NotifyKind, NotifyState};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// A place in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Location {
    /// File name as given (or as matched by an include pattern).
    pub file: String,
    /// 1-based line number; 0 when the problem concerns the whole file.
    pub line: u32,
}

impl Location {
    /// `file:line`.
    pub fn new(file: &str, line: u32) -> Self {
        Location {
            file: file.to_string(),
            line,
        }
    }

    /// The whole file.
    pub fn file(file: &str) -> Self {
        Location {
            file: file.to_string(),
            line: 0,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}", self.file, self.line)
        }
    }
}

/// A configuration error: `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{location}: {message}")]
pub struct Error {
    /// Where.
    pub location: Location,
    /// What is wrong.
    pub message: String,
}

impl Error {
    /// An error at `location`.
    pub fn new(location: Location, message: impl Into<String>) -> Self {
        Error {
            location,
            message: message.into(),
        }
    }
}

/// Something skipped or adjusted: `file:line: warning: message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// Where.
    pub location: Location,
    /// What was skipped or changed.
    pub message: String,
}

impl Warning {
    /// A warning at `location`.
    pub fn new(location: Location, message: impl Into<String>) -> Self {
        Warning {
            location,
            message: message.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: {}", self.location, self.message)
    }
}

/// Every error of a load, in file order; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct Errors {
    /// The errors (never empty).
    pub errors: Vec<Error>,
    /// Warnings found on the way (to print along with the errors).
    pub warnings: Vec<Warning>,
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// How to read a configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The config id that `@ID` lines are compared with (keepalived's
    /// `--config-id`, which defaults to the host name up to its first `.`).
    /// `None`: every `@ID` line is dropped and every `@^ID` line kept.
    pub config_id: Option<String>,
}

impl Options {
    /// keepalived's default: the config id is the host name up to the first dot.
    pub fn from_host() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string());
        Options {
            config_id: host
                .filter(|h| !h.is_empty())
                .map(|h| h.split('.').next().unwrap_or("").to_string()),
        }
    }
}

/// Reads `path` and everything it includes, with keepalived's default config
/// id (see [`Options::from_host`]).
pub fn load(path: &Path) -> Result<Config, Errors> {
    load_with(path, &Options::from_host())
}

/// Reads `path` and everything it includes.
pub fn load_with(path: &Path, opts: &Options) -> Result<Config, Errors> {
    let mut lx = lexer::Lexer::new(opts.config_id.clone(), true);
    lx.read_top_file(path);
    parser::parse(lx)
}

/// Parses `text` as if it were the file `name`; `include` patterns are
/// relative to the current directory. Uses keepalived's default config id.
pub fn parse_str(text: &str, name: &str) -> Result<Config, Errors> {
    parse_str_with(text, name, &Options::from_host())
}

/// Parses `text` as if it were the file `name`, with `opts`.
pub fn parse_str_with(text: &str, name: &str, opts: &Options) -> Result<Config, Errors> {
    let mut lx = lexer::Lexer::new(opts.config_id.clone(), true);
    let dir = std::env::current_dir().unwrap_or_else(|_| ".".into());
    lx.read_text(text, name, dir, None);
    parser::parse(lx)
}
