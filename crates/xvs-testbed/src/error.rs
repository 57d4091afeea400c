//! The testbed's errors.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Errors of the testbed.
#[derive(Debug)]
pub enum Error {
    /// The testbed needs root (namespaces, bpffs, XDP).
    NotRoot,
    /// A system call or file operation failed.
    Io { what: String, source: io::Error },
    /// A command exited unsuccessfully.
    Command {
        cmd: String,
        status: Option<i32>,
        stderr: String,
    },
    /// A workspace binary is missing.
    MissingBinary {
        name: String,
        searched: Vec<PathBuf>,
    },
    /// Something did not happen in time.
    Timeout { what: String, detail: String },
    /// Anything else.
    Other(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotRoot => write!(
                f,
                "the xvs testbed needs root (network namespaces, bpffs, XDP)"
            ),
            Error::Io { what, source } => write!(f, "{what}: {source}"),
            Error::Command {
                cmd,
                status,
                stderr,
            } => {
                match status {
                    Some(c) => write!(f, "`{cmd}` exited with status {c}")?,
                    None => write!(f, "`{cmd}` was killed by a signal")?,
                }
                let stderr = stderr.trim();
                if !stderr.is_empty() {
                    write!(f, ": {stderr}")?;
                }
                Ok(())
            }
            Error::MissingBinary { name, searched } => write!(
                f,
                "binary `{name}` not found in {}; run `cargo build --workspace --bins` first",
                searched
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Error::Timeout { what, detail } => {
                write!(f, "timed out waiting for {what}")?;
                if !detail.trim().is_empty() {
                    write!(f, "\n{}", detail.trim_end())?;
                }
                Ok(())
            }
            Error::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
