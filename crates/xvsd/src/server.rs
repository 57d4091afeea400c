//! The control socket: a single-threaded poll loop, so requests are applied
//! one at a time in arrival order and the timers (expiry, rate estimation)
//! never race a change. One JSON request per line, one JSON answer per line.
//! Each line is checked against the peer's credentials first
//! ([`crate::access`]): only root changes the table.

use crate::access::{self, Peer};
use crate::daemon::Daemon;
use crate::plane::Plane;
use std::io::{ErrorKind as IoKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use xvs_core::api::{ApiError, ErrorKind, Request, Response};

/// A request line longer than this is refused (a `-R` of 110 000 rules is
/// about 25 MiB of JSON).
const MAX_LINE: usize = 256 << 20;

const EXPIRE_EVERY: Duration = Duration::from_secs(1);
/// IPVS estimates rates every 2 seconds.
const ESTIMATE_EVERY: Duration = Duration::from_secs(2);

/// Why the control socket could not be set up or served. Each names what
/// was being done; the OS error is its source (shown after it by
/// `{:#}`, as the binary prints errors).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The socket's directory could not be made.
    #[error("creating {}", .path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A live xvsd answers on the socket.
    #[error("another xvsd is already serving {}", .0.display())]
    InUse(PathBuf),
    /// A stale socket file could not be removed.
    #[error("removing stale {}", .path.display())]
    RemoveStale {
        /// The socket file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The socket could not be bound.
    #[error("binding {}", .path.display())]
    Bind {
        /// The socket file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The loop's poll(2) failed.
    #[error("poll")]
    Poll(#[source] std::io::Error),
    /// Another OS call failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

type Result<T> = std::result::Result<T, ServerError>;

/// Binds the control socket, replacing a stale socket file but never one a
/// live daemon still serves.
pub fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ServerError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(ServerError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(|source| ServerError::RemoveStale {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let l = UnixListener::bind(path).map_err(|source| ServerError::Bind {
        path: path.to_path_buf(),
        source,
    })?;
    l.set_nonblocking(true)?;
    Ok(l)
}

struct Client {
    stream: UnixStream,
    /// Its credentials; `None` when they could not be read (then it may
    /// only read).
    peer: Option<Peer>,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    eof: bool,
}

impl Client {
    /// Reads what is there; false when the peer is gone or misbehaved.
    fn read(&mut self) -> bool {
        let mut buf = [0u8; 65536];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    return true;
                }
                Ok(n) => {
                    self.inbuf.extend_from_slice(&buf[..n]);
                    if self.inbuf.len() > MAX_LINE {
                        log::warn!("control client sent a line over {MAX_LINE} bytes; closing it");
                        return false;
                    }
                }
                Err(e) if e.kind() == IoKind::WouldBlock => return true,
                Err(e) if e.kind() == IoKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }

    fn write(&mut self) -> bool {
        while !self.outbuf.is_empty() {
            match self.stream.write(&self.outbuf) {
                Ok(n) => {
                    self.outbuf.drain(..n);
                }
                Err(e) if e.kind() == IoKind::WouldBlock => return true,
                Err(e) if e.kind() == IoKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        true
    }
}

/// Requests xvsd answers beyond the ipvsadm set (`docs/api.md`).
#[derive(serde::Deserialize)]
struct Op {
    op: String,
}

/// Parses and answers one request line: the `xvs_core::api` requests, plus
/// `reload` and `health`. Returns the JSON answer without its newline.
pub fn answer_line<P: Plane>(daemon: &mut Daemon<P>, line: &[u8]) -> Vec<u8> {
    if let Ok(Op { op }) = serde_json::from_slice::<Op>(line) {
        let v = match op.as_str() {
            "reload" => Some(match daemon.reload() {
                Ok(report) => serde_json::json!({"result": "reload", "reload": report}),
                Err(errors) => {
                    let kind = if daemon.lvs().is_none() {
                        "unsupported"
                    } else {
                        "invalid"
                    };
                    let message = match errors.len() {
                        1 => format!("configuration refused: {}", errors[0]),
                        n => format!(
                            "configuration refused: {} (and {} more error(s))",
                            errors.first().map(String::as_str).unwrap_or(""),
                            n.saturating_sub(1)
                        ),
                    };
                    serde_json::json!({"result": "error", "error": {
                        "kind": kind, "message": message, "errors": errors}})
                }
            }),
            "health" => {
                Some(serde_json::json!({"result": "health", "health": daemon.health_report()}))
            }
            _ => None,
        };
        if let Some(v) = v {
            return serde_json::to_vec(&v).unwrap_or_default();
        }
    }
    match serde_json::to_vec(&answer(daemon, line)) {
        Ok(b) => b,
        Err(e) => {
            log::error!("cannot encode a response: {e}");
            Vec::new()
        }
    }
}

/// [`answer_line`] for `peer`: a change it may not make is refused
/// (and logged) without reaching the daemon.
pub fn answer_checked<P: Plane>(
    daemon: &mut Daemon<P>,
    line: &[u8],
    peer: Option<&Peer>,
) -> Vec<u8> {
    match access::refusal(line, peer) {
        None => answer_line(daemon, line),
        Some(error) => {
            match peer {
                Some(p) => log::warn!(
                    "refused a change from uid {} (pid {}): not root",
                    p.uid,
                    p.pid
                ),
                None => log::warn!("refused a change from a peer of unknown credentials"),
            }
            serde_json::to_vec(&Response::Error { error }).unwrap_or_default()
        }
    }
}

/// Parses and answers one request line.
pub fn answer<P: Plane>(daemon: &mut Daemon<P>, line: &[u8]) -> Response {
    match serde_json::from_slice::<Request>(line) {
        Ok(req) => daemon.handle(req),
        Err(e) => Response::Error {
            error: ApiError::with(ErrorKind::Invalid, format!("malformed request: {e}")),
        },
    }
}

/// What the loop watches besides the control socket.
pub struct Signals<'a> {
    /// Set by SIGTERM/SIGINT: leave the loop.
    pub stop: &'a AtomicBool,
    /// Set by SIGHUP: reload the configuration.
    pub reload: &'a AtomicBool,
    /// Becomes readable when a signal arrived (a self-pipe the handler
    /// writes to), so the loop reacts at once.
    pub wake: Option<&'a UnixStream>,
}

/// Serves until `stop` is set (by SIGTERM or SIGINT).
pub fn run<P: Plane>(
    daemon: &mut Daemon<P>,
    listener: &UnixListener,
    stop: &AtomicBool,
) -> Result<()> {
    static NEVER: AtomicBool = AtomicBool::new(false);
    run_with(
        daemon,
        listener,
        &Signals {
            stop,
            reload: &NEVER,
            wake: None,
        },
    )
}

fn drain(s: &UnixStream) {
    let mut buf = [0u8; 64];
    while matches!((&*s).read(&mut buf), Ok(n) if n > 0) {}
}

/// Serves until `sig.stop` is set; reloads when `sig.reload` is set; applies
/// health transitions as soon as the health engine reports them, and the
/// status page's write actions as soon as they arrive.
pub fn run_with<P: Plane>(
    daemon: &mut Daemon<P>,
    listener: &UnixListener,
    sig: &Signals<'_>,
) -> Result<()> {
    let stop = sig.stop;
    let mut clients: Vec<Client> = Vec::new();
    let mut next_expire = Instant::now() + EXPIRE_EVERY;
    let mut next_estimate = Instant::now() + ESTIMATE_EVERY;
    while !stop.load(Ordering::SeqCst) {
        let mut fds = vec![libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // Wake-ups (signals, health transitions) come before the clients.
        let extra: Vec<i32> = sig
            .wake
            .map(|w| w.as_raw_fd())
            .into_iter()
            .chain(daemon.health_wake_fd())
            .chain(daemon.web_wake_fd())
            .chain(daemon.network_fd())
            .collect();
        for fd in &extra {
            fds.push(libc::pollfd {
                fd: *fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let first_client = 1 + extra.len();
        for c in &clients {
            let mut events = libc::POLLIN;
            if !c.outbuf.is_empty() {
                events |= libc::POLLOUT;
            }
            fds.push(libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events,
                revents: 0,
            });
        }
        let now = Instant::now();
        let wait = next_expire
            .min(next_estimate)
            .saturating_duration_since(now);
        let timeout = wait.as_millis().min(500) as libc::c_int;
        // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd for
        // the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == IoKind::Interrupted {
                continue;
            }
            return Err(ServerError::Poll(e));
        }
        if let Some(w) = sig.wake {
            drain(w);
        }
        if sig.reload.swap(false, Ordering::SeqCst) {
            log::info!("SIGHUP: reloading the configuration");
            if let Err(errors) = daemon.reload() {
                log::error!(
                    "reload refused ({} error(s)); the running configuration is kept",
                    errors.len()
                );
            }
        }
        daemon.health_events();
        daemon.web_actions();
        let net = daemon.network_fd();
        if fds[1..first_client]
            .iter()
            .any(|p| Some(p.fd) == net && p.revents & libc::POLLIN != 0)
        {
            daemon.network_changed();
        }
        if fds[0].revents & libc::POLLIN != 0 {
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(true)?;
                        let peer = access::peer_of(&stream)
                            .map_err(|e| log::warn!("control client's credentials: {e}"))
                            .ok();
                        clients.push(Client {
                            stream,
                            peer,
                            inbuf: Vec::new(),
                            outbuf: Vec::new(),
                            eof: false,
                        });
                    }
                    Err(e) if e.kind() == IoKind::WouldBlock => break,
                    Err(e) if e.kind() == IoKind::Interrupted => continue,
                    Err(e) => {
                        log::warn!("accept on the control socket: {e}");
                        break;
                    }
                }
            }
        }
        let mut alive = vec![true; clients.len()];
        for (i, c) in clients.iter_mut().enumerate() {
            let rev = fds.get(i + first_client).map_or(0, |p| p.revents);
            if rev & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 && !c.read() {
                alive[i] = false;
                continue;
            }
            while let Some(pos) = c.inbuf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = c.inbuf.drain(..=pos).collect();
                let line = &line[..line.len() - 1];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let mut bytes = answer_checked(daemon, line, c.peer.as_ref());
                bytes.push(b'\n');
                c.outbuf.extend_from_slice(&bytes);
            }
            if !c.write() || (c.eof && c.outbuf.is_empty()) {
                alive[i] = false;
            }
        }
        let mut i = 0;
        clients.retain(|_| {
            i += 1;
            alive[i - 1]
        });
        let now = Instant::now();
        if now >= next_expire {
            daemon.every_second();
            next_expire = now + EXPIRE_EVERY;
        }
        if now >= next_estimate {
            daemon.estimate();
            next_estimate += ESTIMATE_EVERY;
            if next_estimate < now {
                next_estimate = now + ESTIMATE_EVERY;
            }
        }
    }
    Ok(())
}
