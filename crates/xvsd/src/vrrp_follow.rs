//! The VRRP state keepalived reports through its `notify_fifo`: one line
//! per state change (`INSTANCE "VI_1" MASTER 150`), which xvsd reads to
//! switch its connection sync daemon between master and backup as
//! keepalived's `lvs_sync_daemon` does for the kernel's. The FIFO is
//! created when missing (keepalived creates it too); xvsd keeps a write
//! end of its own open so that reads never see end-of-file between two
//! keepalived writers (a restart of keepalived).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The read end of a notify FIFO, read without blocking.
pub struct Follower {
    path: PathBuf,
    read: File,
    _write: File,
    pending: Vec<u8>,
}

/// Creates `path` as a FIFO (mode 0600) unless it exists; an existing
/// file that is not a FIFO is an error.
fn ensure_fifo(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_fifo() => return Ok(()),
        Ok(_) => {
            return Err(io::Error::other(format!(
                "{} exists and is not a FIFO",
                path.display()
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::other("a path with a NUL byte"))?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::AlreadyExists {
            return Err(e);
        }
    }
    Ok(())
}

impl Follower {
    /// Opens (creating if needed) the FIFO at `path`.
    pub fn open(path: &Path) -> io::Result<Follower> {
        ensure_fifo(path)?;
        let read = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        let write = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        Ok(Follower {
            path: path.to_path_buf(),
            read,
            _write: write,
            pending: Vec::new(),
        })
    }

    /// The FIFO's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The complete lines written since the last call.
    pub fn lines(&mut self) -> Vec<String> {
        let mut buf = [0u8; 4096];
        loop {
            match self.read.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("{}: {e}", self.path.display());
                    break;
                }
            }
        }
        let mut out = Vec::new();
        while let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=i).collect();
            out.push(String::from_utf8_lossy(&line).trim_end().to_string());
        }
        // A line longer than any keepalived writes: drop it.
        if self.pending.len() > 4096 {
            self.pending.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn lines_written_by_another_opener_arrive_whole() {
        let dir = std::env::temp_dir().join(format!("xvsd-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.fifo");
        let mut f = Follower::open(&path).unwrap();
        assert!(f.lines().is_empty());
        let mut w = OpenOptions::new().write(true).open(&path).unwrap();
        w.write_all(b"INSTANCE \"VI_1\" MASTER 150\nINSTANCE \"VI")
            .unwrap();
        assert_eq!(f.lines(), vec!["INSTANCE \"VI_1\" MASTER 150"]);
        w.write_all(b"_1\" BACKUP 150\n").unwrap();
        drop(w);
        assert_eq!(f.lines(), vec!["INSTANCE \"VI_1\" BACKUP 150"]);
        // The writer went away: no end-of-file trouble, the next one is read.
        let mut w = OpenOptions::new().write(true).open(&path).unwrap();
        w.write_all(b"INSTANCE \"VI_1\" FAULT 0\n").unwrap();
        assert_eq!(f.lines(), vec!["INSTANCE \"VI_1\" FAULT 0"]);
        // Reopened: the FIFO is reused.
        drop(f);
        assert!(Follower::open(&path).is_ok());
        std::fs::write(dir.join("plain"), "").unwrap();
        assert!(Follower::open(&dir.join("plain")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
