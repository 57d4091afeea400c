//! What the daemon needs from a data plane: the writes the table makes
//! ([`Backend`]), what the daemon reads back and runs beside it
//! ([`Plane`]), and their error ([`PlaneError`]). Implemented over
//! `xvs_dataplane::Dataplane` by the `xvsd` binary, and by in-memory
//! fakes in tests.

use std::io;

use xvs_core::api::ConnEntry;
use xvs_core::fwmark::MarkRule;
use xvs_core::model::{Dest, Service, ServiceKey, Stats, SyncDaemon, SyncState, Timeouts};
use xvs_dataplane::SvcSched;

/// What [`Plane::start_sync`] answers by default: this plane cannot run a
/// connection-sync daemon. Requests get an `unsupported` error with this
/// text.
pub const SYNC_NOT_SUPPORTED: &str =
    "the connection synchronization daemon is not supported by this xvsd";

/// Why the data plane did not do what it was asked. The text is what
/// users see (`data plane: ...` in API errors, the log); it is the text
/// each source has always given.
#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    /// The BPF data plane refused or failed.
    #[error(transparent)]
    Dataplane(#[from] xvs_dataplane::Error),
    /// This plane cannot run a connection-sync daemon
    /// ([`SYNC_NOT_SUPPORTED`]).
    #[error("{}", SYNC_NOT_SUPPORTED)]
    SyncNotSupported,
    /// An OS call failed (a sync daemon's interface or socket), worded as
    /// ipvsadm words the kernel's errno: `strerror`, without the
    /// " (os error N)" of `io::Error`.
    #[error("{}", errno_text(.0))]
    Os(#[from] io::Error),
    /// Anything else, in words.
    #[error("{0}")]
    Other(String),
}

/// An OS error as the kernel's errno text ("No such device"), without
/// the " (os error N)" of `io::Error`'s display.
pub fn errno_text(e: &io::Error) -> String {
    strip_os_error(e.to_string())
}

/// `text` without a trailing " (os error N)".
pub(crate) fn strip_os_error(text: String) -> String {
    match text.find(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    }
}

/// What the table needs from the data plane. Implemented over
/// `xvs_dataplane::Dataplane`, and by a recording fake in tests.
pub trait Backend {
    /// Writes a service and what its scheduler picks from (ring or table,
    /// and the dest list in kernel order).
    fn upsert_service(
        &mut self,
        svc_id: u32,
        svc: &Service,
        sched: &SvcSched,
    ) -> Result<(), PlaneError>;
    /// Removes a service from the lookup map.
    fn remove_service(&mut self, svc_id: u32, key: &ServiceKey) -> Result<(), PlaneError>;
    /// Writes a destination.
    fn upsert_dest(&mut self, dest_id: u32, svc_id: u32, dest: &Dest) -> Result<(), PlaneError>;
    /// Removes a destination and ends its connections.
    fn remove_dest(&mut self, dest_id: u32) -> Result<(), PlaneError>;
    /// Takes a destination out of service into the trash: no new
    /// connection, packets of its connections dropped, connections,
    /// counts and counters kept (it may come back: the table keeps
    /// deleted dests as IPVS's dest trash does).
    fn trash_dest(&mut self, dest_id: u32) -> Result<(), PlaneError>;
    /// Zeroes the counters of a service.
    fn zero_svc(&mut self, svc_id: u32) -> Result<(), PlaneError>;
    /// Zeroes the counters of a destination.
    fn zero_dest(&mut self, dest_id: u32) -> Result<(), PlaneError>;
    /// Replaces the mark classifier's rules (the marks fwmark services
    /// match); `rules` has passed [`xvs_core::fwmark::compile`].
    fn set_mark_rules(&mut self, rules: &[MarkRule]) -> Result<(), PlaneError>;
}

/// Everything the daemon reads back from the data plane, on top of the
/// writes in [`Backend`].
pub trait Plane: Backend {
    /// Counters of every service slot and every dest slot, indexed by
    /// id, read in bulk: the estimators and listings want all of them, and
    /// one read per id costs a syscall each (110 000 every 2 s at
    /// 10 000 services × 10 dests).
    fn all_stats(&self) -> Result<AllStats, PlaneError>;
    /// (ActiveConn, InActConn) of a dest.
    fn dest_conns(&self, dest_id: u32) -> Result<(u32, u32), PlaneError>;
    /// PersistConn of a dest: persistence templates pointing at it.
    fn persist_conns(&self, _dest_id: u32) -> Result<u32, PlaneError> {
        Ok(0)
    }
    /// One run of the lblc/lblcr cache collector (every 60 s; `full` every
    /// 30th run, as `ip_vs_lblc_check_expire`).
    fn expire_locality(&mut self, _full: bool) {}
    /// The live connections and persistence templates, with time left
    /// under `timeouts`.
    fn conns(&self, timeouts: &Timeouts) -> Result<Vec<ConnEntry>, PlaneError>;
    /// Number of connection entries.
    fn conn_count(&self) -> Result<u64, PlaneError>;
    /// Connection table entries in use (two per NAT connection) as the
    /// last expiry scan counted them: free to ask, a few seconds old at
    /// most, for the once-a-second metrics.
    fn conn_entries(&self) -> u64;
    /// Deletes idle connections; returns how many.
    fn expire(&mut self, timeouts: &Timeouts) -> Result<u64, PlaneError>;
    /// Data-plane counters by name.
    fn counters(&self) -> Result<Vec<(String, u64)>, PlaneError>;
    /// Interfaces attached.
    fn interfaces(&self) -> Vec<String>;
    /// Connection table capacity.
    fn conn_capacity(&self) -> u32;
    /// The optional kernel features and whether the data plane has each.
    fn features(&self) -> Vec<(String, bool)>;
    /// The attach mode (`xdp` or `tc`).
    fn attach_mode(&self) -> String;
    /// A descriptor that becomes readable when the kernel's routes, links
    /// or neighbours change (DR/TUN next hops follow them).
    fn network_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
    /// Keeps the next hops of DR and TUN real servers current: called
    /// every second and when [`Plane::network_fd`] is readable.
    fn maintain_nexthops(&mut self);
    /// After a change: waits (briefly) for the neighbours of the DR/TUN
    /// real servers it added, so their first packets are not dropped.
    fn settle_nexthops(&mut self) {}
    /// Starts a connection-sync daemon (`--start-daemon`, and at start-up
    /// for the ones the state file says were running). Called only with a
    /// request that passed [`SyncDaemon::validate`], for a state (master
    /// or backup) not running. Returns the daemon as it runs, its defaults
    /// filled in as the kernel fills them: [`SyncDaemon::with_defaults`]
    /// with the interface's MTU. `Err`: why not, as ipvsadm words the
    /// kernel's errno: [`PlaneError::Os`] with ENODEV ("No such device")
    /// for an unknown interface. The default:
    /// [`PlaneError::SyncNotSupported`].
    fn start_sync(&mut self, _d: &SyncDaemon) -> Result<SyncDaemon, PlaneError> {
        Err(PlaneError::SyncNotSupported)
    }
    /// Stops the running sync daemon of `state` (`--stop-daemon`). `Err`
    /// (worded as for [`Plane::start_sync`]) leaves it listed as running.
    fn stop_sync(&mut self, _state: SyncState) -> Result<(), PlaneError> {
        Ok(())
    }
    /// The sync daemons' once-a-second work, under the current
    /// `timeouts`: called every second by the daemon. Default: nothing.
    fn sync_tick(&mut self, _timeouts: &Timeouts) {}
}

/// Counters of every slot, indexed by service id and dest id.
#[derive(Debug, Clone, Default)]
pub struct AllStats {
    /// By service id.
    pub svc: Vec<Stats>,
    /// By dest id.
    pub dest: Vec<Stats>,
}

impl AllStats {
    /// The counters of service slot `id` (zero when beyond the read).
    pub fn svc(&self, id: u32) -> Stats {
        self.svc.get(id as usize).copied().unwrap_or_default()
    }
    /// The counters of dest slot `id` (zero when beyond the read).
    pub fn dest(&self, id: u32) -> Stats {
        self.dest.get(id as usize).copied().unwrap_or_default()
    }
}
