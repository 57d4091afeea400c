//! Sizes and shifts the program and user space share, each taken from
//! `bpf/xvs.h` (`enum xvs_limit`, through the skeleton) or, for a
//! `#define` the skeleton cannot carry, asserted against the header's text
//! (`limits_tests.rs`).

use crate::abi::xvs_limit;

/// Size of the `XVS_CNT` map (`XVS_CNT_SLOTS` in `xvs.h`): room for new
/// counters without resizing a pinned map.
pub(crate) const CNT_SLOTS: u32 = xvs_limit::XVS_LIM_CNT_SLOTS.0;
/// Where a ring key's slot keeps its generation (`XVS_RING_GEN_SHIFT`).
pub(crate) const RING_GEN_SHIFT: u32 = xvs_limit::XVS_LIM_RING_GEN_SHIFT.0;
/// `XVS_NO_DEST`: a dh/sh/mh table slot without a dest.
pub const NO_DEST: u32 = u32::MAX;
/// Dests per service the program scans (`XVS_SVC_DESTS_MAX`): the limit
/// for the schedulers [`scans_dest_list`](crate::scans_dest_list) names.
pub const SVC_DESTS_MAX: usize = xvs_limit::XVS_LIM_SVC_DESTS_MAX.0 as usize;
/// Members of an lblcr replica set (`XVS_LBLCR_SET_MAX`).
pub const LBLCR_SET_MAX: usize = xvs_limit::XVS_LIM_LBLCR_SET_MAX.0 as usize;
/// The largest mh table the program accepts (`XVS_MH_TAB_MAX`).
pub(crate) const MH_TAB_MAX: usize = xvs_limit::XVS_LIM_MH_TAB_MAX.0 as usize;
/// The longest ring (rr/wrr) or table (dh/sh/mh) of one service.
pub const RING_LEN_MAX: usize = MH_TAB_MAX;

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
