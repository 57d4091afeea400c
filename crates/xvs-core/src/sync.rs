//! The kernel IPVS connection synchronisation protocol
//! (`net/netfilter/ipvs/ip_vs_sync.c`): a checked decoder for version 1
//! and version 0 messages and an encoder for version 1.
//!
//! A master multicasts UDP datagrams (default group 224.0.0.81, port 8848,
//! TTL 1) to backups. A version 1 datagram is an 8-byte header followed by
//! `nr_conns` connection entries, each starting on a 4-byte boundary
//! (all integers big-endian):
//!
//! ```text
//! header   0 reserved (0)  1 syncid  2..4 size (whole datagram)
//!          4 nr_conns      5 version (1)  6..8 spare (0)
//! entry    0 type (bit 0: IPv6)  1 protocol  2..4 ver_size (version<<12 | size)
//!          4..8 flags (IP_VS_CONN_F_*)  8..10 state  10..12 cport
//!          12..14 vport  14..16 dport  16..20 fwmark  20..24 timeout (s)
//!          24.. caddr, vaddr, daddr (3 x 4 bytes, or 3 x 16 for IPv6)
//!          then options: type (1) len (1) data (len), until `size`
//! ```
//!
//! An entry's `size` (36 for IPv4, 72 for IPv6, plus options) excludes the
//! padding that aligns the next entry. Options are `IPVS_OPT_SEQ_DATA`
//! (24 bytes: in and out `init_seq`, `delta`, `previous_delta`),
//! `IPVS_OPT_PE_DATA` and `IPVS_OPT_PE_NAME`.
//!
//! Decoding reproduces `ip_vs_process_message` and `ip_vs_proc_sync_conn`:
//! an error the kernel answers by dropping the rest of the datagram is a
//! [`SyncError`]; an entry the kernel skips while carrying on with the next
//! one is reported as [`Entry::Skip`] with a [`SkipReason`]. The kernel
//! applies the entries before a fatal error; [`MessageView::entries`]
//! yields them in that order, [`decode`] is all or nothing. Nothing here
//! panics or indexes unchecked on any input.
//!
//! The [`Encoder`] fills datagrams as `ip_vs_sync_conn` does (header,
//! padding, entry, options, in that order, never past `maxlen`), so a
//! kernel backup accepts what it writes.

mod conn;
mod decoder;
mod encoder;
mod error;
mod kernel;
mod wire;

pub use conn::{Header, Seq, SeqData, SyncConn, SyncVersion};
pub use decoder::{decode, Entries, Entry, MessageView, SyncMessage};
pub use encoder::{encode, entry_len, EncodeError, Encoder};
pub use error::{EntryError, OptionKind, SkipReason, SyncError};
pub use kernel::{accepts_syncid, check_state, num_states, sync_maxlen, Role};
pub use wire::*;

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
