//! What a command line means: [`Command`], its list modifiers, [`ParseError`]
//! and ipvsadm's constants and exit codes.

use crate::api::Request;
use crate::fwmark::MarkRule;
use crate::model::{Dest, Service, ServiceKey, SyncDaemon, SyncState, Timeouts};

/// ipvsadm's `MAX_TIMEOUT`: 31 days.
pub const MAX_TIMEOUT: u32 = 86400 * 31;

/// Persistence timeout used when `-p` has no value (`IPVS_SVC_PERSISTENT_TIMEOUT`).
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 360;

/// The sync daemon's interface when `--start-daemon` has no
/// `--mcast-interface` (ipvsadm's `DEF_MCAST_IFN`).
pub const DEFAULT_MCAST_IFN: &str = "eth0";

/// Exit status of `fail(2, ...)`.
pub const EXIT_FAIL: i32 = 2;

/// Exit status when ipvsadm returns -1 (popt errors, "Try ...", kernel errors).
pub const EXIT_ERROR: i32 = 255;

/// List modifiers of `-L` (and `-S -n`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// `-n`: no name resolution.
    pub numeric: bool,
    /// `-c`: list connections.
    pub connection: bool,
    /// `--timeout`: list timeouts.
    pub timeout: bool,
    /// `--daemon`: list sync daemons.
    pub daemon: bool,
    /// `--stats`.
    pub stats: bool,
    /// `--rate`.
    pub rate: bool,
    /// `--thresholds`.
    pub thresholds: bool,
    /// `--persistent-conn`.
    pub persistent_conn: bool,
    /// `--nosort`.
    pub nosort: bool,
    /// `--exact` (`-X`).
    pub exact: bool,
    /// `--tun-info`.
    pub tun_info: bool,
    /// `-L -t|-u service`: list only this service.
    pub service: Option<ServiceKey>,
}

/// What `-L` shows, in ipvsadm's order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListTarget {
    /// `-c`.
    Connections,
    /// `-t/-u`: one service.
    Service(ServiceKey),
    /// `--timeout`.
    Timeouts,
    /// `--daemon`.
    Daemon,
    /// Everything.
    All,
}

impl ListOptions {
    /// Which listing ipvsadm would produce for these options.
    pub fn target(&self) -> ListTarget {
        if self.connection {
            ListTarget::Connections
        } else if let Some(k) = self.service {
            ListTarget::Service(k)
        } else if self.timeout {
            ListTarget::Timeouts
        } else if self.daemon {
            ListTarget::Daemon
        } else {
            ListTarget::All
        }
    }
}

/// A parsed ipvsadm command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `-A`.
    AddService(Service),
    /// `-E` (ipvsadm sends the whole service: unspecified fields get defaults).
    EditService(Service),
    /// `-D`.
    DelService(ServiceKey),
    /// `-C`.
    Clear,
    /// `-a`.
    AddDest {
        /// Service.
        key: ServiceKey,
        /// New real server.
        dest: Dest,
    },
    /// `-e` (unspecified fields get defaults, e.g. weight 1).
    EditDest {
        /// Service.
        key: ServiceKey,
        /// Real server settings.
        dest: Dest,
    },
    /// `-d`.
    DelDest {
        /// Service.
        key: ServiceKey,
        /// Real server address.
        addr: std::net::IpAddr,
        /// Real server port.
        port: u16,
    },
    /// `-L` / `-l`.
    List(ListOptions),
    /// `-Z [service]`.
    Zero(Option<ServiceKey>),
    /// `--set tcp tcpfin udp`.
    SetTimeouts(Timeouts),
    /// `-S [-n]`.
    Save {
        /// `-n`.
        numeric: bool,
    },
    /// `-R`: read commands from stdin.
    Restore,
    /// `--start-daemon master|backup [daemon-options]`: the daemon as
    /// ipvsadm sends it (unset options zero, the interface `eth0` when
    /// not given).
    StartDaemon(SyncDaemon),
    /// `--stop-daemon master|backup`.
    StopDaemon(SyncState),
    /// `--add-mark` (xvs extension): the rules of one command line (an
    /// address range gives one rule per prefix), added as one.
    AddMarks(Vec<MarkRule>),
    /// `--del-mark` (xvs extension): the rules to remove, as one.
    DelMarks(Vec<MarkRule>),
    /// `--list-marks [-n]` (xvs extension).
    ListMarks {
        /// `-n`.
        numeric: bool,
    },
    /// `--clear-marks` (xvs extension).
    ClearMarks,
    /// `--import-marks [FILE|-]` (xvs extension): print the `--add-mark`
    /// lines of an `iptables-save` dump's MARK rules (stdin for `None`).
    ImportMarks {
        /// The dump's path; `None` for stdin.
        file: Option<String>,
    },
    /// `-h`: print [`usage_text`](super::usage_text) to stdout, exit 0.
    Help,
    /// `-v`: print [`version_text`](super::version_text) to stdout, exit 0.
    Version,
}

impl Command {
    /// The control request for a change (of the table, or starting or
    /// stopping a sync daemon); `None` for commands that are not changes
    /// (list, save, restore, help, version).
    pub fn request(&self) -> Option<Request> {
        Some(match self {
            Command::AddService(s) => Request::AddService { service: s.clone() },
            Command::EditService(s) => Request::EditService { service: s.clone() },
            Command::DelService(k) => Request::DelService { key: *k },
            Command::Clear => Request::Clear,
            Command::AddDest { key, dest } => Request::AddDest {
                key: *key,
                dest: dest.clone(),
            },
            Command::EditDest { key, dest } => Request::EditDest {
                key: *key,
                dest: dest.clone(),
            },
            Command::DelDest { key, addr, port } => Request::DelDest {
                key: *key,
                addr: *addr,
                port: *port,
            },
            Command::Zero(k) => Request::Zero { key: *k },
            Command::SetTimeouts(t) => Request::SetTimeouts { timeouts: *t },
            Command::StartDaemon(d) => Request::StartDaemon { daemon: d.clone() },
            Command::StopDaemon(state) => Request::StopDaemon { state: *state },
            Command::AddMarks(rules) => one_or_batch(rules, |rule| Request::AddMark { rule }),
            Command::DelMarks(rules) => one_or_batch(rules, |rule| Request::DelMark { rule }),
            Command::ClearMarks => Request::ClearMarks,
            _ => return None,
        })
    }
}

/// One request per rule; several go as one all-or-nothing `Batch`.
fn one_or_batch(rules: &[MarkRule], req: fn(MarkRule) -> Request) -> Request {
    match rules {
        [one] => req(one.clone()),
        _ => Request::Batch {
            requests: rules.iter().cloned().map(req).collect(),
        },
    }
}

impl Command {
    /// Whether this is one of xvs's mark classifier commands (their
    /// errors exit 2, as `fail()` does).
    pub fn is_mark_command(&self) -> bool {
        matches!(
            self,
            Command::AddMarks(_)
                | Command::DelMarks(_)
                | Command::ListMarks { .. }
                | Command::ClearMarks
                | Command::ImportMarks { .. }
        )
    }
}

/// Why a command line was refused; `Display` is ipvsadm's exact text
/// (without the trailing newline ipvsadm adds).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// `fail(2, ...)`: exit status 2.
    #[error("{0}")]
    Fail(String),
    /// `tryhelp_exit(argv[0], -1)`: exit status 255.
    #[error("Try `{0} -h' or '{0} --help' for more information.")]
    TryHelp(String),
    /// A popt error after the command: `"<argv element>: <reason>"`, exit 255.
    #[error("{option}: {reason}")]
    Popt {
        /// The offending command-line element.
        option: String,
        /// popt's `poptStrerror` text.
        reason: String,
    },
    /// Valid for ipvsadm but not implemented by xvs; exit 255.
    #[error("{0}")]
    Unsupported(String),
}

impl ParseError {
    /// The exit status ipvsadm uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            ParseError::Fail(_) => EXIT_FAIL,
            _ => EXIT_ERROR,
        }
    }

    pub(super) fn fail(msg: impl Into<String>) -> Self {
        ParseError::Fail(msg.into())
    }
}
