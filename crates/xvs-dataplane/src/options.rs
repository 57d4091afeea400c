//! Sizes, pinning and attach mode of a data plane.

use std::path::PathBuf;

use crate::error::Error;
use crate::mode::AttachMode;

/// Sizes and pinning of the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Directory (on a bpffs) to pin every map in, as `<pin_path>/<MAP>`.
    /// Pinned maps already there are reused, so a restarted daemon keeps
    /// its flows. `None`: nothing pinned (tests).
    pub pin_path: Option<PathBuf>,
    /// `CONN_MAP` capacity in entries. Every NAT connection takes two
    /// (forward and reply), a DR/TUN connection one, so this holds at least
    /// `conn_capacity / 2` connections.
    /// Default `1 << 20` (~110 MiB of preallocated kernel memory).
    pub conn_capacity: u32,
    /// Service ids are `0..max_services`. Default 4096.
    pub max_services: u32,
    /// Dest ids are `0..max_dests`. Default 16384.
    pub max_dests: u32,
    /// `RING_MAP` entries over all services and both generations; one
    /// service's ring (or dh/sh/mh table: 256, 256 and 4093 entries) may
    /// use at most half of it. Default `1 << 18`.
    pub ring_capacity: u32,
    /// `PERSIST_MAP` capacity: persistence templates (one per client
    /// network and persistent service). Default `1 << 16`.
    pub persist_capacity: u32,
    /// `LBLC_MAP` capacity: lblc/lblcr cache entries over all services.
    /// Default 16384 (the kernel's per-service `max_size`).
    pub locality_capacity: u32,
    /// Which program to load and how [`Dataplane::attach`] hooks it in.
    /// Default [`AttachMode::Xdp`].
    pub attach_mode: AttachMode,
}

impl Options {
    /// Refuses sizes the data plane cannot work with.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.conn_capacity < 2 || self.max_services == 0 || self.max_dests == 0 {
            return Err(Error::Invalid(
                "conn_capacity >= 2, max_services and max_dests > 0 required".into(),
            ));
        }
        if self.ring_capacity < 2 {
            return Err(Error::Invalid("ring_capacity >= 2 required".into()));
        }
        if self.persist_capacity == 0 || self.locality_capacity == 0 {
            return Err(Error::Invalid(
                "persist_capacity and locality_capacity > 0 required".into(),
            ));
        }
        Ok(())
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pin_path: None,
            conn_capacity: 1 << 20,
            max_services: 4096,
            max_dests: 16384,
            ring_capacity: 1 << 18,
            persist_capacity: 1 << 16,
            locality_capacity: 16384,
            attach_mode: AttachMode::Xdp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_sane() {
        let o = Options::default();
        assert_eq!(o.conn_capacity, 1 << 20);
        assert!(o.ring_capacity >= 2 && o.max_dests > 0 && o.max_services > 0);
        assert!(o.validate().is_ok());
    }
}
