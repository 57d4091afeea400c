//! Reference models of the 14 IPVS schedulers: what the kernel would pick for
//! a new connection, given the destination list in the kernel's list order.
//!
//! The data plane is tested against these. Each model restates the kernel's
//! `ip_vs_<name>_schedule` (file named in the docs), including its
//! tie-breaks and its treatment of weight 0 and `IP_VS_DEST_F_OVERLOAD`.
//!
//! One entry point: [`model`]`(name, svc_flags)` gives a boxed [`Scheduler`].
//! Callers must call [`Scheduler::dests_changed`] whenever a destination is
//! added, removed or edited (the kernel's `add_dest`/`del_dest`/`upd_dest`
//! hooks), and [`Scheduler::tick`] every [`CHECK_EXPIRE_INTERVAL`] seconds
//! (the lblc/lblcr garbage-collection timer).
//!
//! The stateless pickers ([`lc_pick`], [`wlc_pick`], [`sed_pick`],
//! [`nq_pick`], [`fo_pick`], [`ovf_pick`], [`twos_pick`]) are also public,
//! for direct use.

use std::net::{IpAddr, Ipv4Addr};

use super::hash::random_below;
use super::locality::{Lblc, Lblcr, LocalityEntry};
use super::table::{
    dh_lookup, dh_table, mh_lookup, mh_lookup_fallback, mh_table, sh_lookup, sh_lookup_fallback,
    sh_table, MhDest,
};
use super::SchedError;
use crate::model::svc_flags;

pub use super::locality::CHECK_EXPIRE_INTERVAL;

mod hashing;
mod pick;
mod rr_wrr;

use hashing::*;
pub use pick::*;
use rr_wrr::*;

/// What a scheduler sees of one destination (`struct ip_vs_dest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestView {
    /// xvs destination id (stable across list changes; the data plane's key).
    pub id: u32,
    /// Real server address (used by mh's permutation).
    pub addr: IpAddr,
    /// Real server port (used by mh's permutation).
    pub port: u16,
    /// Current weight; 0 = quiesced (never picked for a new connection,
    /// except through a persistence template or an lblc cache hit — see
    /// [`Lblc`]).
    pub weight: u32,
    /// The kernel's `last_weight` (latest non-zero weight; see
    /// [`next_last_weight`]). Only mh uses it.
    pub last_weight: u32,
    /// Active (ESTABLISHED) connections.
    pub activeconns: u32,
    /// Inactive connections.
    pub inactconns: u32,
    /// `IP_VS_DEST_F_OVERLOAD` (see [`super::persist::overload_after`]).
    pub overloaded: bool,
}

impl DestView {
    /// A destination with id `id`, weight (and last weight) `weight`, address
    /// 0.0.0.0:0, no connections, not overloaded.
    pub fn new(id: u32, weight: u32) -> Self {
        DestView {
            id,
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
            weight,
            last_weight: weight,
            activeconns: 0,
            inactconns: 0,
            overloaded: false,
        }
    }

    /// Same, with connection counts.
    pub fn with_conns(mut self, active: u32, inactive: u32) -> Self {
        self.activeconns = active;
        self.inactconns = inactive;
        self
    }

    /// Same, with an address and port.
    pub fn with_addr(mut self, addr: impl Into<IpAddr>, port: u16) -> Self {
        self.addr = addr.into();
        self.port = port;
        self
    }

    /// Same, with the OVERLOAD flag set.
    pub fn overloaded(mut self) -> Self {
        self.overloaded = true;
        self
    }

    /// `ip_vs_dest_conn_overhead`: `(activeconns << 8) + inactconns`
    /// (computed in 64 bits; the kernel's `int` would wrap at 2^23 active
    /// connections).
    pub fn overhead(&self) -> u64 {
        ((self.activeconns as u64) << 8) + self.inactconns as u64
    }

    /// Eligible for a new connection in the usual sense: `weight > 0` and not
    /// OVERLOAD (the hashing schedulers' `is_unavailable` negated).
    pub fn schedulable(&self) -> bool {
        self.weight > 0 && !self.overloaded
    }
}

/// `last_weight` after an add (`add = true`) or edit of a destination to
/// `new_weight` (`__ip_vs_update_dest`: kept unless the new weight is 0 on an
/// edit).
pub fn next_last_weight(add: bool, old_last_weight: u32, new_weight: u32) -> u32 {
    if add || new_weight != 0 {
        new_weight
    } else {
        old_last_weight
    }
}

/// The packet that needs a destination (ports in host order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowKey {
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP).
    pub proto: u8,
    /// Client (source) address.
    pub saddr: IpAddr,
    /// Client (source) port.
    pub sport: u16,
    /// Destination address (the VIP for a normal service).
    pub daddr: IpAddr,
    /// Destination port (the virtual port).
    pub dport: u16,
}

impl FlowKey {
    /// A TCP flow.
    pub fn tcp(saddr: impl Into<IpAddr>, sport: u16, daddr: impl Into<IpAddr>, dport: u16) -> Self {
        FlowKey {
            proto: 6,
            saddr: saddr.into(),
            sport,
            daddr: daddr.into(),
            dport,
        }
    }

    /// The port `sh-port`/`mh-port` hash: the source port for TCP, UDP and
    /// SCTP, 0 for anything else (`ip_vs_sh_get_port`/`ip_vs_mh_get_port`).
    pub fn hash_port(&self) -> u16 {
        match self.proto {
            6 | 17 | 132 => self.sport,
            _ => 0,
        }
    }
}

/// The 14 IPVS schedulers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedKind {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connection.
    Lc,
    /// Weighted least connection.
    Wlc,
    /// Locality-based least connection.
    Lblc,
    /// Locality-based least connection with replication.
    Lblcr,
    /// Destination hashing.
    Dh,
    /// Source hashing.
    Sh,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Weighted failover.
    Fo,
    /// Weighted overflow.
    Ovf,
    /// Maglev hashing.
    Mh,
    /// Power of two choices.
    Twos,
}

impl SchedKind {
    /// All schedulers, in the order of [`super::SCHEDULERS`].
    pub const ALL: [SchedKind; 14] = [
        SchedKind::Rr,
        SchedKind::Wrr,
        SchedKind::Lc,
        SchedKind::Wlc,
        SchedKind::Lblc,
        SchedKind::Lblcr,
        SchedKind::Dh,
        SchedKind::Sh,
        SchedKind::Sed,
        SchedKind::Nq,
        SchedKind::Fo,
        SchedKind::Ovf,
        SchedKind::Mh,
        SchedKind::Twos,
    ];

    /// The `-s` name.
    pub fn name(self) -> &'static str {
        match self {
            SchedKind::Rr => "rr",
            SchedKind::Wrr => "wrr",
            SchedKind::Lc => "lc",
            SchedKind::Wlc => "wlc",
            SchedKind::Lblc => "lblc",
            SchedKind::Lblcr => "lblcr",
            SchedKind::Dh => "dh",
            SchedKind::Sh => "sh",
            SchedKind::Sed => "sed",
            SchedKind::Nq => "nq",
            SchedKind::Fo => "fo",
            SchedKind::Ovf => "ovf",
            SchedKind::Mh => "mh",
            SchedKind::Twos => "twos",
        }
    }

    /// Parse an exact `-s` name.
    pub fn from_name(name: &str) -> Result<Self, SchedError> {
        SchedKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| SchedError::Unknown(name.to_string()))
    }
}

/// A reference model of one service's scheduler instance.
pub trait Scheduler: Send {
    /// Which scheduler this is.
    fn kind(&self) -> SchedKind;

    /// The destination list (or a weight) changed: the kernel's
    /// `init_service`/`add_dest`/`del_dest`/`upd_dest`. Rebuilds tables
    /// (dh, sh, mh), resets wrr's position, moves rr's cursor off a removed
    /// destination. Also call it once with the initial list.
    fn dests_changed(&mut self, dests: &[DestView]);

    /// Pick a destination for a new connection: an index into `dests`
    /// (kernel list order), or `None` ("no destination available").
    ///
    /// `now_secs` is a monotonic clock (lblc/lblcr cache times); `rand`
    /// yields uniformly random `u32`s (only twos draws from it).
    fn schedule(
        &mut self,
        dests: &[DestView],
        flow: &FlowKey,
        now_secs: u64,
        rand: &mut dyn FnMut() -> u32,
    ) -> Option<usize>;

    /// The periodic garbage-collection timer (lblc/lblcr; every
    /// [`CHECK_EXPIRE_INTERVAL`] seconds). A no-op elsewhere.
    fn tick(&mut self, _now_secs: u64) {}

    /// The locality cache (lblc/lblcr) in a canonical order (by address), for
    /// comparison with the data plane's map; `None` for other schedulers.
    fn locality_cache(&self) -> Option<Vec<LocalityEntry>> {
        None
    }
}

/// The reference model for scheduler `name` with service flags `flags`
/// (`IP_VS_SVC_F_*`; `SCHED1` = sh/mh-fallback, `SCHED2` = sh/mh-port).
pub fn model(name: &str, flags: u32) -> Result<Box<dyn Scheduler>, SchedError> {
    let kind = SchedKind::from_name(name)?;
    let fallback = flags & svc_flags::SCHED1 != 0;
    let port = flags & svc_flags::SCHED2 != 0;
    Ok(match kind {
        SchedKind::Rr => Box::new(Rr::default()),
        SchedKind::Wrr => Box::new(Wrr::default()),
        SchedKind::Lc => Box::new(Stateless(SchedKind::Lc, lc_pick)),
        SchedKind::Wlc => Box::new(Stateless(SchedKind::Wlc, wlc_pick)),
        SchedKind::Sed => Box::new(Stateless(SchedKind::Sed, sed_pick)),
        SchedKind::Nq => Box::new(Stateless(SchedKind::Nq, nq_pick)),
        SchedKind::Fo => Box::new(Stateless(SchedKind::Fo, fo_pick)),
        SchedKind::Ovf => Box::new(Stateless(SchedKind::Ovf, ovf_pick)),
        SchedKind::Twos => Box::new(Twos),
        SchedKind::Dh => Box::new(Hashing::new(SchedKind::Dh, false, false)),
        SchedKind::Sh => Box::new(Hashing::new(SchedKind::Sh, fallback, port)),
        SchedKind::Mh => Box::new(Hashing::new(SchedKind::Mh, fallback, port)),
        SchedKind::Lblc => Box::new(Lblc::new()),
        SchedKind::Lblcr => Box::new(Lblcr::new()),
    })
}

// lblc / lblcr implement Scheduler in `locality`.

#[cfg(test)]
#[path = "reference_tests.rs"]
mod tests;
