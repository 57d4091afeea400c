//! Why the kernel drops a datagram ([`SyncError`]), fails an entry
//! ([`EntryError`]) or skips one ([`SkipReason`]).

/// Why the kernel would skip one entry and go on with the next.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SkipReason {
    /// An option type it does not know, without `OPT_F_PARAM`.
    #[error("unknown mandatory option type {0}")]
    UnknownOption(u8),
    /// A non-template for a protocol IPVS does not handle.
    #[error("protocol {0} is not handled by IPVS")]
    Protocol(u8),
    /// A non-template state out of its protocol's range.
    #[error("state {state} is out of range for protocol {protocol}")]
    State {
        /// Protocol number.
        protocol: u8,
        /// State received.
        state: u16,
    },
    /// `IPVS_OPT_PE_DATA` without `IPVS_OPT_PE_NAME`.
    #[error("persistence-engine data without an engine name")]
    PeDataWithoutName,
}

/// Which option an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionKind {
    /// `IPVS_OPT_SEQ_DATA`.
    SeqData,
    /// `IPVS_OPT_PE_DATA`.
    PeData,
    /// `IPVS_OPT_PE_NAME`.
    PeName,
}

impl std::fmt::Display for OptionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OptionKind::SeqData => "sequence data",
            OptionKind::PeData => "persistence-engine data",
            OptionKind::PeName => "persistence-engine name",
        })
    }
}

/// What is wrong with an entry, for errors that make the kernel drop the
/// rest of the datagram. Offsets are from the start of the entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum EntryError {
    /// Fewer bytes left than an entry's fixed part ("too small", v0
    /// "bogus conn" and "bogus conn options").
    #[error("only {have} bytes left where an entry needs {need}")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes left in the datagram.
        have: usize,
    },
    /// The entry's size runs past the datagram ("msg > buffer").
    #[error("entry size {size} runs past the {have} bytes left")]
    Overrun {
        /// Size field.
        size: usize,
        /// Bytes left in the datagram.
        have: usize,
    },
    /// The version nibble of `ver_size` is not 0.
    #[error("unknown entry version {0}")]
    Version(u8),
    /// A type byte with bits set but not `STYPE_F_INET6` (error -10).
    #[error("unknown entry type {0:#04x}")]
    Type(u8),
    /// The size is below the fixed part for its family (error -20).
    #[error("entry size {size} is below the {need}-byte fixed part")]
    Undersized {
        /// Size field.
        size: usize,
        /// Fixed part length.
        need: usize,
    },
    /// One byte left where an option header needs two (error -30).
    #[error("option header at offset {offset} is cut off")]
    OptionHeader {
        /// Offset of the option.
        offset: usize,
    },
    /// Option length 0, or data past the entry's end (error -40).
    #[error("option type {ptype} at offset {offset}: length {len} is 0 or runs past the entry")]
    OptionLength {
        /// Offset of the option.
        offset: usize,
        /// Option type byte.
        ptype: u8,
        /// Option length byte.
        len: u8,
    },
    /// Sequence data not 24 bytes long (error -50).
    #[error("sequence data of {0} bytes, expected 24")]
    SeqLength(u8),
    /// An option given twice (errors -50, -60, -70).
    #[error("{0} given twice")]
    Duplicate(OptionKind),
    /// Engine name longer than 16 bytes (error -70).
    #[error("persistence-engine name of {0} bytes, at most 16")]
    PeNameTooLong(u8),
}

/// Why a datagram (or its remainder) is dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SyncError {
    /// Shorter than the 4-byte version 0 header ("header too short").
    #[error("datagram of {len} bytes is shorter than a header")]
    HeaderTooShort {
        /// Bytes received.
        len: usize,
    },
    /// The header's size differs from the length received ("bogus message
    /// size").
    #[error("header says {size} bytes, {len} were received")]
    SizeMismatch {
        /// Header size field.
        size: u16,
        /// Bytes received.
        len: usize,
    },
    /// Entry `index` (from 0) is malformed; entries before it are good.
    #[error("entry {index}: {error}")]
    Entry {
        /// Position of the entry in the datagram.
        index: usize,
        /// What is wrong.
        error: EntryError,
    },
}
