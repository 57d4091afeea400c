//! The control protocol between `xvsadm` (or any client) and `xvsd`.
//!
//! Transport: a unix stream socket. Each request is one JSON object on one
//! line; the daemon answers each with one JSON line. See `docs/api.md`.

use crate::fwmark::MarkRule;
use crate::model::{
    ConnState, Dest, FwdMethod, Protocol, Rates, Service, ServiceKey, Stats, SyncDaemon, SyncState,
    Timeouts,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
#[cfg(test)]
use std::net::Ipv4Addr;

/// Default control socket path (overridden by `--socket` or `XVS_SOCKET`).
pub const DEFAULT_SOCKET: &str = "/run/xvs/xvsd.sock";

/// Environment variable naming the control socket for both binaries.
pub const SOCKET_ENV: &str = "XVS_SOCKET";

/// One change or query. Changes are validated and applied atomically:
/// when the daemon answers with an error, nothing changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// `-A`: add a virtual service.
    AddService {
        /// The new service.
        service: Service,
    },
    /// `-E`: edit a virtual service (scheduler, persistence, flags).
    EditService {
        /// The service with its new settings; `service.key` names it.
        service: Service,
    },
    /// `-D`: delete a virtual service and its destinations.
    DelService {
        /// Which service.
        key: ServiceKey,
    },
    /// `-C`: clear the whole table.
    Clear,
    /// `-a`: add a real server to a service.
    AddDest {
        /// Which service.
        key: ServiceKey,
        /// The new destination.
        dest: Dest,
    },
    /// `-e`: edit a real server.
    EditDest {
        /// Which service.
        key: ServiceKey,
        /// The destination with its new settings; address and port name it.
        dest: Dest,
    },
    /// `-d`: delete a real server.
    DelDest {
        /// Which service.
        key: ServiceKey,
        /// Real server address.
        addr: IpAddr,
        /// Real server port.
        port: u16,
    },
    /// `-Z`: zero counters of one service, or of all when `key` is `None`.
    Zero {
        /// Which service, or all.
        key: Option<ServiceKey>,
    },
    /// `--set tcp tcpfin udp`: a zero value keeps the current timeout.
    SetTimeouts {
        /// New timeouts (0 = unchanged).
        timeouts: Timeouts,
    },
    /// `-L --timeout`.
    GetTimeouts,
    /// `-L`: services, destinations, counters and rates.
    List,
    /// `-L -c`: the connection table.
    ListConns,
    /// Apply several changes as one: all or nothing.
    Batch {
        /// Changes, applied in order.
        requests: Vec<Request>,
    },
    /// Apply changes one after the other, each on its own: a refused one
    /// changes nothing and the next ones still apply, as `ipvsadm -R`'s
    /// lines do. Answered by [`Response::Sequence`].
    Sequence {
        /// Changes, applied in order.
        requests: Vec<Request>,
    },
    /// Daemon facts: version, table sizes, drop counters.
    Info,
    /// `--start-daemon`: starts a connection-sync daemon (not inside a
    /// `Batch` or `Sequence`).
    StartDaemon {
        /// What to start; zero fields take the defaults.
        daemon: SyncDaemon,
    },
    /// `--stop-daemon`: stops the master or the backup sync daemon (not
    /// inside a `Batch` or `Sequence`).
    StopDaemon {
        /// Which one.
        state: SyncState,
    },
    /// `-L --daemon`: the running sync daemons. Answered by
    /// [`Response::Daemons`].
    ListDaemons,
    /// `--add-mark` (xvs extension): adds a mark classifier rule. The
    /// whole rule set must still compile ([`crate::fwmark::compile`]);
    /// adding a rule equal to one present changes nothing.
    AddMark {
        /// The rule.
        rule: MarkRule,
    },
    /// `--del-mark` (xvs extension): removes a rule equal to `rule`.
    DelMark {
        /// The rule.
        rule: MarkRule,
    },
    /// `--clear-marks` (xvs extension): removes every mark rule. `Clear`
    /// (`-C`) keeps them.
    ClearMarks,
    /// `--list-marks` (xvs extension): answered by [`Response::Marks`].
    ListMarks,
}

impl Request {
    /// True for the requests that only read (listings, timeouts, `info`,
    /// the sync daemons): what the control socket answers to any peer
    /// allowed to connect. Every other request changes something and
    /// needs root, as every IPVS change needs CAP_NET_ADMIN.
    pub fn is_read_only(&self) -> bool {
        match self {
            Request::GetTimeouts
            | Request::List
            | Request::ListConns
            | Request::Info
            | Request::ListMarks
            | Request::ListDaemons => true,
            Request::AddService { .. }
            | Request::EditService { .. }
            | Request::DelService { .. }
            | Request::Clear
            | Request::AddDest { .. }
            | Request::EditDest { .. }
            | Request::DelDest { .. }
            | Request::Zero { .. }
            | Request::SetTimeouts { .. }
            | Request::Batch { .. }
            | Request::Sequence { .. }
            | Request::StartDaemon { .. }
            | Request::StopDaemon { .. }
            | Request::AddMark { .. }
            | Request::DelMark { .. }
            | Request::ClearMarks => false,
        }
    }
}

/// The daemon's answer to one [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// The change was applied.
    Ok,
    /// Nothing was changed; `error` says why.
    Error {
        /// What went wrong.
        error: ApiError,
    },
    /// Answer to `List`.
    Table {
        /// The table.
        table: Table,
    },
    /// Answer to `ListConns`.
    Conns {
        /// Live connections.
        conns: Vec<ConnEntry>,
    },
    /// Answer to `GetTimeouts`.
    Timeouts {
        /// Current timeouts.
        timeouts: Timeouts,
    },
    /// Answer to `Info`.
    Info {
        /// Daemon facts.
        info: Info,
    },
    /// Answer to `Sequence`: per request, `None` when applied, else why
    /// not.
    Sequence {
        /// One result per request, in order.
        results: Vec<Option<ApiError>>,
    },
    /// Answer to `ListDaemons`: the running sync daemons, the master
    /// first, with their defaults filled in.
    Daemons {
        /// At most one master and one backup.
        daemons: Vec<SyncDaemon>,
    },
    /// Answer to `ListMarks`: the mark rules in the order they were added.
    Marks {
        /// The rules.
        rules: Vec<MarkRule>,
    },
}

/// Why a request was refused. `kind` maps to ipvsadm's messages and exit codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// Classification.
    pub kind: ErrorKind,
    /// Human-readable message; for the kinds ipvsadm knows, exactly ipvsadm's text.
    pub message: String,
}

impl ApiError {
    /// An error of `kind` with ipvsadm's standard message for it.
    pub fn new(kind: ErrorKind) -> Self {
        ApiError {
            message: kind.ipvsadm_message().to_string(),
            kind,
        }
    }

    /// An error of `kind` with a specific message.
    pub fn with(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }
}

/// Error classes, after the errno values IPVS returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// `-A` of an existing service (EEXIST).
    ServiceExists,
    /// `-E`, `-D`, `-Z` of a missing service (ESRCH).
    NoSuchService,
    /// `-a`, `-e`, `-d` on a missing service (ESRCH).
    ServiceNotDefined,
    /// `-a` of an existing destination (EEXIST).
    DestExists,
    /// `-e`, `-d` of a missing destination (ENOENT).
    NoSuchDest,
    /// Unknown scheduler or persistence engine (ENOENT).
    SchedulerNotFound,
    /// A valid request that xvs does not implement (yet).
    Unsupported,
    /// A malformed or inconsistent request (EINVAL).
    Invalid,
    /// A value out of its range, e.g. a lower threshold above the upper
    /// one (ERANGE, which ipvsadm prints with `strerror`).
    OutOfRange,
    /// The daemon could not apply a valid request (map full, kernel error).
    /// For a sync daemon that could not start, `message` is the system's
    /// text for it, as ipvsadm prints it (`No such device` for an unknown
    /// interface).
    Internal,
    /// `--start-daemon` of a master or backup already running (EEXIST).
    DaemonRunning,
    /// `--stop-daemon` of a master or backup not running (ESRCH).
    NoDaemon,
    /// The peer on the control socket may not make this request: only
    /// root changes the table (EPERM; ipvsadm's "Permission denied (you
    /// must be root)").
    PermissionDenied,
}

impl ErrorKind {
    /// ipvsadm's message for this error (`ipvs_strerror`).
    pub fn ipvsadm_message(self) -> &'static str {
        match self {
            ErrorKind::ServiceExists => "Service already exists",
            ErrorKind::NoSuchService => "No such service",
            ErrorKind::ServiceNotDefined => "Service not defined",
            ErrorKind::DestExists => "Destination already exists",
            ErrorKind::NoSuchDest => "No such destination",
            ErrorKind::SchedulerNotFound => "Scheduler or persistence engine not found",
            ErrorKind::Unsupported => "Operation not supported",
            ErrorKind::Invalid => {
                "Invalid operation.  Possibly wrong module version, address not unicast, ..."
            }
            ErrorKind::OutOfRange => "Numerical result out of range",
            ErrorKind::Internal => "Memory allocation problem",
            ErrorKind::DaemonRunning => "Daemon has already run",
            ErrorKind::NoDaemon => "No daemon is running",
            ErrorKind::PermissionDenied => "Permission denied (you must be root)",
        }
    }
}

/// The whole virtual server table with counters, as `-L` needs it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Table {
    /// Connection table size, printed as `(size=N)` in the header.
    pub conn_tab_size: u32,
    /// Services in the order `ipvsadm -L` would list them.
    pub services: Vec<ServiceEntry>,
}

/// One service with its runtime figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceEntry {
    /// Configuration.
    pub service: Service,
    /// Counters since creation or the last `-Z`.
    pub stats: Stats,
    /// Rate estimates.
    pub rates: Rates,
    /// Real servers.
    pub dests: Vec<DestEntry>,
}

/// One destination with its runtime figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DestEntry {
    /// Configuration.
    pub dest: Dest,
    /// Connections in ESTABLISHED.
    pub active_conns: u32,
    /// Connections in any other state.
    pub inact_conns: u32,
    /// Persistence templates pointing at this destination.
    pub persist_conns: u32,
    /// Counters.
    pub stats: Stats,
    /// Rate estimates.
    pub rates: Rates,
}

/// One live connection, as `-Lc` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConnEntry {
    /// Protocol.
    pub proto: Protocol,
    /// Client address.
    #[schemars(schema_with = "crate::model::ip_schema")]
    pub caddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Virtual address.
    #[schemars(schema_with = "crate::model::ip_schema")]
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Real server address.
    #[schemars(schema_with = "crate::model::ip_schema")]
    pub daddr: IpAddr,
    /// Real server port.
    pub dport: u16,
    /// Connection state.
    pub state: ConnState,
    /// Forwarding method.
    pub fwd: FwdMethod,
    /// Time left before expiry, in milliseconds.
    pub expires_ms: u64,
    /// Nonzero for the persistence template of fwmark service `fwmark`:
    /// IPVS's `<IPPROTO_IP, caddr & mask, 0, mark, 0>`, listed with
    /// protocol `IP` and numeric ports; `proto` is then a placeholder and
    /// `vaddr` is the mark as an address (`0.0.0.1`). Absent (0) for
    /// connections and address-service templates, and from older daemons.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fwmark: u32,
    /// A persistence engine's template: the engine (`sip`) and its data
    /// (the Call-ID), `-Lc --persistent-conn`'s `pe name` and `pe_data`.
    /// The data is the kernel's bytes, each as the char of its number
    /// (Latin-1), so none is lost. Absent for everything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pe: Option<PeData>,
}

/// A template's persistence-engine name and data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PeData {
    /// The engine (`sip`).
    pub name: String,
    /// Its data (`sip`: the Call-ID), one char per byte.
    pub data: String,
}

impl PeData {
    /// The `sip` engine's data: Call-ID `callid`.
    pub fn sip(callid: &[u8]) -> Self {
        PeData {
            name: "sip".into(),
            data: callid.iter().map(|&b| char::from(b)).collect(),
        }
    }
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// Daemon facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// xvs version.
    pub version: String,
    /// Connection table capacity.
    pub conn_tab_size: u32,
    /// Live connection entries.
    pub conn_count: u64,
    /// Interfaces the data plane is attached to.
    pub interfaces: Vec<String>,
    /// Data-plane counters by name (drops and fallbacks included).
    pub counters: Vec<(String, u64)>,
    /// The data plane's optional kernel features and whether this kernel
    /// has each (docs/design.md, "Kernel features"); absent from older
    /// daemons.
    #[serde(default)]
    pub features: Vec<(String, bool)>,
    /// The attach mode in use (`xdp` or `tc`); absent from older daemons.
    #[serde(default)]
    pub attach_mode: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_as_one_json_line() {
        let key = ServiceKey {
            fwmark: 0,
            proto: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)),
            port: 80,
        };
        let req = Request::Batch {
            requests: vec![
                Request::AddService {
                    service: Service::new(key, "rr"),
                },
                Request::DelDest {
                    key,
                    addr: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 11)),
                    port: 80,
                },
            ],
        };
        let line = serde_json::to_string(&req).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), req);
    }

    #[test]
    fn errors_carry_ipvsadm_text() {
        let e = ApiError::new(ErrorKind::DestExists);
        assert_eq!(e.to_string(), "Destination already exists");
        // ipvs_strerror's entries for ipvs_start_daemon / ipvs_stop_daemon
        let e = ApiError::new(ErrorKind::DaemonRunning);
        assert_eq!(e.to_string(), "Daemon has already run");
        let e = ApiError::new(ErrorKind::NoDaemon);
        assert_eq!(e.to_string(), "No daemon is running");
    }

    #[test]
    fn sync_daemon_requests_as_json() {
        let req = Request::StartDaemon {
            daemon: SyncDaemon::new(SyncState::Master, "eth0"),
        };
        let line = serde_json::to_string(&req).unwrap();
        assert!(line.starts_with(r#"{"op":"start_daemon","daemon":{"state":"master""#));
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), req);
        let stop: Request =
            serde_json::from_str(r#"{"op":"stop_daemon","state":"backup"}"#).unwrap();
        assert_eq!(
            stop,
            Request::StopDaemon {
                state: SyncState::Backup
            }
        );
        let list: Request = serde_json::from_str(r#"{"op":"list_daemons"}"#).unwrap();
        assert_eq!(list, Request::ListDaemons);
        let resp = Response::Daemons {
            daemons: vec![SyncDaemon::new(SyncState::Backup, "lo").with_defaults(65536)],
        };
        let line = serde_json::to_string(&resp).unwrap();
        assert!(line.starts_with(r#"{"result":"daemons","daemons":[{"state":"backup""#));
        assert_eq!(serde_json::from_str::<Response>(&line).unwrap(), resp);
    }
}
