//! The status page's write actions (drain, set weight): off unless xvsd
//! has a token (`--status-token-file`). A request must carry it as
//! `Authorization: Bearer TOKEN`; it is compared in constant time. An
//! accepted change is handed to the daemon loop, which applies it as the
//! control socket applies `-e` (edit dest), and the answer comes back.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use serde::Deserialize;
use xvs_core::api::ApiError;
use xvs_core::model::{Protocol, ServiceKey};

/// Tokens shorter than this are refused: a bearer token must not be
/// guessable.
pub const MIN_TOKEN_LEN: usize = 16;

/// The largest weight ipvsadm accepts (`-w`).
pub const MAX_WEIGHT: u32 = i32::MAX as u32;

/// Why the token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// It could not be read.
    #[error("reading {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Others than its owner may read or write it.
    #[error(
        "{} has mode {mode:o}: make it readable by root only (chown root; chmod 600)",
        .path.display()
    )]
    Mode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It belongs to another user than root.
    #[error("{} belongs to uid {uid}: make it root's (chown root; chmod 600)", .path.display())]
    Owner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        uid: u32,
    },
    /// The token (the file's first line, trimmed) is too short.
    #[error("{}: the token must be at least {MIN_TOKEN_LEN} characters", .path.display())]
    Short {
        /// The file.
        path: PathBuf,
    },
}

/// The secret that enables write actions. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// The token of `path`: its first line, surrounding blanks removed.
    /// The file must be root's and neither group- nor world-accessible
    /// (anyone who reads it may change weights).
    pub fn load(path: &Path) -> Result<Token, TokenError> {
        let read = |source| TokenError::Read {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(TokenError::Mode {
                path: path.to_path_buf(),
                mode,
            });
        }
        // Root's only, or the owner could hand it to anyone; tests run
        // as root too, so this costs them nothing.
        if meta.uid() != 0 && meta.uid() != nix::unistd::geteuid().as_raw() {
            return Err(TokenError::Owner {
                path: path.to_path_buf(),
                uid: meta.uid(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Token::new(text.lines().next().unwrap_or("")).ok_or_else(|| TokenError::Short {
            path: path.to_path_buf(),
        })
    }

    /// `text` (trimmed) as a token, if it is long enough.
    pub fn new(text: &str) -> Option<Token> {
        let t = text.trim();
        (t.len() >= MIN_TOKEN_LEN).then(|| Token(t.as_bytes().to_vec()))
    }

    /// Whether `presented` is the token, in time that depends only on
    /// the lengths (a byte-by-byte early exit would tell an attacker how
    /// much of a guess was right).
    pub fn matches(&self, presented: &[u8]) -> bool {
        ct_eq(&self.0, presented)
    }
}

/// Constant-time equality of two byte strings (time depends on their
/// lengths only).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// Why a write request was refused before reaching the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// xvsd has no token: write actions are off.
    Disabled,
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token that is not xvsd's.
    Wrong,
}

impl Denied {
    /// What the client is told.
    pub fn message(self) -> &'static str {
        match self {
            Denied::Disabled => {
                "write actions are disabled: start xvsd with --status-token-file to enable them"
            }
            Denied::Missing => "missing token: send 'Authorization: Bearer TOKEN'",
            Denied::Wrong => "wrong token",
        }
    }
}

/// Checks an `Authorization` header's value against `token`.
pub fn authorize(token: Option<&Token>, header: Option<&[u8]>) -> Result<(), Denied> {
    let token = token.ok_or(Denied::Disabled)?;
    let h = header.ok_or(Denied::Missing)?;
    let presented = h
        .strip_prefix(b"Bearer ")
        .or_else(|| h.strip_prefix(b"bearer "))
        .ok_or(Denied::Missing)?;
    if token.matches(presented.trim_ascii()) {
        Ok(())
    } else {
        Err(Denied::Wrong)
    }
}

/// A weight change asked for by the page (`weight` 0 drains).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightChange {
    /// The service.
    pub service: ServiceKey,
    /// The real server's address.
    pub addr: Ipv4Addr,
    /// The real server's port.
    pub port: u16,
    /// The new weight.
    pub weight: u32,
}

/// The body of `POST /api/dest/weight`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    service: String,
    dest: String,
    weight: u64,
}

/// What a body must look like, for error messages.
pub const BODY_SHAPE: &str = r#"{"service": "TCP 198.51.100.10:80" (or "FWM 5"), "dest": "203.0.113.11:80", "weight": 0..2147483647}"#;

/// A service as the status page names it ([`super::status::service_id`]).
pub fn parse_service(s: &str) -> Option<ServiceKey> {
    let (proto, rest) = s.trim().split_once(' ')?;
    let rest = rest.trim();
    let proto = match proto.to_ascii_uppercase().as_str() {
        "FWM" => {
            return rest
                .parse()
                .ok()
                .filter(|m| *m != 0)
                .map(ServiceKey::fwmark)
        }
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        _ => return None,
    };
    let a: SocketAddrV4 = rest.parse().ok()?;
    Some(ServiceKey::new(proto, *a.ip(), a.port()))
}

/// Parses a `POST /api/dest/weight` body; the error says what is wrong.
pub fn parse_body(bytes: &[u8]) -> Result<WeightChange, String> {
    let b: Body = serde_json::from_slice(bytes)
        .map_err(|e| format!("bad body ({e}); expected {BODY_SHAPE}"))?;
    let service = parse_service(&b.service)
        .ok_or_else(|| format!("bad service {:?}; expected {BODY_SHAPE}", b.service))?;
    let dest: SocketAddrV4 = b
        .dest
        .trim()
        .parse()
        .map_err(|_| format!("bad dest {:?}; expected ADDRESS:PORT", b.dest))?;
    let weight = u32::try_from(b.weight)
        .ok()
        .filter(|w| *w <= MAX_WEIGHT)
        .ok_or_else(|| format!("weight {} is out of range 0..{MAX_WEIGHT}", b.weight))?;
    Ok(WeightChange {
        service,
        addr: *dest.ip(),
        port: dest.port(),
        weight,
    })
}

/// A change on its way to the daemon loop, with where its answer goes.
#[derive(Debug)]
pub struct Action {
    /// What to change.
    pub change: WeightChange,
    /// The daemon's answer: applied, or why not.
    pub reply: tokio::sync::oneshot::Sender<Result<(), ApiError>>,
}

/// The daemon loop's end: actions and a descriptor that becomes readable
/// when some wait, for the loop's poll.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<Action>,
    wake: UnixStream,
}

impl Inbox {
    /// The descriptor to poll.
    pub fn wake_fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    /// The actions that arrived.
    pub fn take(&self) -> Vec<Action> {
        let mut buf = [0u8; 64];
        while matches!((&self.wake).read(&mut buf), Ok(n) if n > 0) {}
        self.rx.try_iter().collect()
    }
}

/// The listener's end.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Action>,
    wake: Arc<UnixStream>,
}

impl Outbox {
    /// Hands `a` to the daemon loop; false when the loop is gone.
    pub fn send(&self, a: Action) -> bool {
        if self.tx.send(a).is_err() {
            return false;
        }
        // A full socket means a wake-up is pending anyway.
        let _ = (&*self.wake).write(&[1]);
        true
    }
}

/// A connected pair of ends.
pub fn channel() -> std::io::Result<(Outbox, Inbox)> {
    let (tx, rx) = mpsc::channel();
    let (r, w) = UnixStream::pair()?;
    r.set_nonblocking(true)?;
    w.set_nonblocking(true)?;
    Ok((
        Outbox {
            tx,
            wake: Arc::new(w),
        },
        Inbox { rx, wake: r },
    ))
}

#[cfg(test)]
#[path = "actions_tests.rs"]
mod tests;
