//! Processes started in a testbed: their logs, signals and waits.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::{lock, Error, Result};

pub(crate) struct ProcInner {
    pub(crate) label: String,
    pub(crate) pid: u32,
    pub(crate) child: Mutex<Child>,
    pub(crate) log: PathBuf,
}

/// A process started by [`Testbed::spawn`]. Cloning shares the process; the
/// testbed keeps a clone and kills the process on drop if it still runs.
/// Its stdout and stderr go to [`Proc::log_path`].
#[derive(Clone)]
pub struct Proc(pub(crate) Arc<ProcInner>);

impl fmt::Debug for Proc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proc({} pid {})", self.0.label, self.0.pid)
    }
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.pid
    }

    /// `<node>-<program>-<k>`.
    pub fn label(&self) -> &str {
        &self.0.label
    }

    pub fn log_path(&self) -> &Path {
        &self.0.log
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read(&self.0.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Exit status if the process has ended (reaps it).
    pub fn try_wait(&self) -> Option<ExitStatus> {
        lock(&self.0.child).try_wait().ok().flatten()
    }

    pub fn is_running(&self) -> bool {
        self.try_wait().is_none()
    }

    /// Send `sig` (e.g. `libc::SIGTERM`) unless the process already ended.
    /// The child is not reaped before the signal, so the PID cannot have
    /// been reused.
    pub fn signal(&self, sig: i32) -> Result<()> {
        let mut child = lock(&self.0.child);
        if child.try_wait().ok().flatten().is_some() {
            return Ok(());
        }
        // SAFETY: kill(2) on our own unreaped child.
        if unsafe { libc::kill(self.0.pid as i32, sig) } != 0 {
            return Err(Error::Io {
                what: format!("kill {} ({})", self.0.pid, self.0.label),
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Wait up to `timeout` for the process to end.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL and reap.
    pub fn stop(&self, grace: Duration) -> Option<ExitStatus> {
        let _ = self.signal(libc::SIGTERM);
        if let Some(st) = self.wait_timeout(grace) {
            return Some(st);
        }
        let mut child = lock(&self.0.child);
        let _ = child.kill();
        child.wait().ok()
    }

    /// Wait until the log contains `needle`, the process exits, or `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return Ok(());
            }
            if let Some(st) = self.try_wait() {
                return Err(Error::Other(format!(
                    "{} exited ({st}) before logging {needle:?}:\n{}",
                    self.0.label,
                    self.log()
                )));
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("{} to log {needle:?}", self.0.label),
                    detail: self.log(),
                });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}
