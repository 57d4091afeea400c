//! Who may do what on the control socket. IPVS asks CAP_NET_ADMIN for
//! every change and every listing; xvsd keeps the changes to root and lets
//! an operator open listings to one group:
//!
//! * the socket file is `root:root 0600`, or `root:GROUP 0660` with
//!   `--control-group GROUP`, so only root and that group can connect
//!   (the kernel checks write permission on the file at `connect`,
//!   supplementary groups included);
//! * every request is checked against the peer's credentials
//!   (`SO_PEERCRED`, taken when the connection is accepted): what only
//!   reads ([`Request::is_read_only`], and `health`) is answered to any
//!   peer that could connect, everything else only to uid 0.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::{Gid, Group};
use xvs_core::api::{ApiError, ErrorKind, Request};

/// The peer of a control connection, as the kernel recorded it at
/// `connect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its effective uid.
    pub uid: u32,
    /// Its effective gid.
    pub gid: u32,
    /// Its process id.
    pub pid: i32,
}

impl Peer {
    /// True for root, the only peer that may change the table.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// The credentials of `stream`'s peer.
pub fn peer_of(stream: &UnixStream) -> std::io::Result<Peer> {
    let c = getsockopt(stream, PeerCredentials).map_err(std::io::Error::from)?;
    Ok(Peer {
        uid: c.uid(),
        gid: c.gid(),
        pid: c.pid(),
    })
}

/// Why the control socket's permissions could not be set.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// `--control-group` names no group.
    #[error("no group named '{0}'")]
    NoGroup(String),
    /// The group database could not be read.
    #[error("looking up group '{name}'")]
    Lookup {
        /// The group's name.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// chown or chmod of the socket failed.
    #[error("setting the owner and mode of {}", .path.display())]
    Permissions {
        /// The socket file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The gid of the group `name` (`--control-group`).
pub fn group_id(name: &str) -> Result<u32, AccessError> {
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(AccessError::NoGroup(name.to_string())),
        Err(e) => Err(AccessError::Lookup {
            name: name.to_string(),
            source: e.into(),
        }),
    }
}

/// Gives the socket file at `path` to `group` (mode 0660), or keeps it to
/// its owner (0600) when there is none.
pub fn restrict(path: &Path, group: Option<u32>) -> Result<(), AccessError> {
    let err = |source: std::io::Error| AccessError::Permissions {
        path: path.to_path_buf(),
        source,
    };
    if let Some(gid) = group {
        nix::unistd::chown(path, None, Some(Gid::from_raw(gid))).map_err(|e| err(e.into()))?;
    }
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)
}

/// What a request line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// Only reads: `health`, or a [`Request`] that
    /// [`Request::is_read_only`].
    Read,
    /// Changes something: `reload`, any other request, and any `op` not
    /// known here (so an op added to the server later is root's until it
    /// is classified: fail closed).
    Change,
    /// Not a request at all (no `op`); answered with "malformed request",
    /// changes nothing.
    Malformed,
}

/// Classifies one request line.
pub fn classify(line: &[u8]) -> LineKind {
    #[derive(serde::Deserialize)]
    struct Op {
        op: String,
    }
    let Ok(Op { op }) = serde_json::from_slice::<Op>(line) else {
        return LineKind::Malformed;
    };
    if op == "health" {
        return LineKind::Read;
    }
    match serde_json::from_slice::<Request>(line) {
        Ok(r) if r.is_read_only() => LineKind::Read,
        _ => LineKind::Change,
    }
}

/// The error a peer gets for a request it may not make, or `None` when it
/// may. A peer whose credentials could not be read is not root.
pub fn refusal(line: &[u8], peer: Option<&Peer>) -> Option<ApiError> {
    if peer.is_some_and(Peer::is_root) || classify(line) != LineKind::Change {
        return None;
    }
    Some(ApiError::with(
        ErrorKind::PermissionDenied,
        "permission denied: changing the table needs root (this peer may only list)",
    ))
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
