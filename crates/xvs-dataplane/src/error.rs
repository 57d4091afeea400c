//! The data plane's error type.

use xvs_core::model::FwdMethod;

/// Data-plane errors.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// A libbpf operation failed.
    #[error("{context}: {source}")]
    Bpf {
        /// What was being done.
        context: String,
        /// The libbpf error.
        #[source]
        source: libbpf_rs::Error,
    },
    /// An OS call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An invalid option or argument.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// An id beyond the configured table size.
    #[error("{what} id {id} out of range (max {max})")]
    IdOutOfRange {
        /// Which id space.
        what: &'static str,
        /// The id.
        id: u32,
        /// Table size.
        max: u32,
    },
    /// A forwarding method the data plane does not implement (none today;
    /// kept for API stability).
    #[error("forwarding method {0} is not supported by the xvs data plane")]
    UnsupportedFwd(FwdMethod),
    /// A tunnel option the data plane does not implement (`--tun-type
    /// gre`, `--tun-remcsum`).
    #[error("not supported by the xvs data plane: {0}")]
    Unsupported(String),
    /// No such network interface.
    #[error("no such interface: {0}")]
    NoSuchInterface(String),
    /// Pinned maps this build cannot adopt (another version or size).
    #[error("{0}")]
    Pins(String),
    /// The loaded object does not match the Rust types (should not happen).
    #[error("ABI mismatch: {0}")]
    Abi(String),
    /// An optional object lacks a program or map it should have (the
    /// expiry scan's; reported as the reason the feature is off).
    #[error("{0}")]
    Missing(String),
}

/// Wraps a libbpf error with what was being done.
pub(crate) fn bpf_err(context: impl Into<String>) -> impl FnOnce(libbpf_rs::Error) -> Error {
    let context = context.into();
    move |source| Error::Bpf { context, source }
}
