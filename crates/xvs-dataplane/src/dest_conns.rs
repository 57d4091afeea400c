//! `DEST_CONNS`: each dest's active, inactive and persistent connection
//! counts and its OVERLOAD flag, shared with the program through a
//! mapping, so user space changes them with the program's atomics.

use std::mem::{offset_of, size_of};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use libbpf_rs::{MapCore, MapHandle};
use xvs_core::sched::persist;

use xvs_core::model::ConnState;

use crate::abi::{xvs_dest_conns, xvs_dest_rt_flags};
use crate::error::Error;

// `slot` reads the four words in this order.
const _: () = assert!(
    offset_of!(xvs_dest_conns, active) == 0
        && offset_of!(xvs_dest_conns, inactive) == 4
        && offset_of!(xvs_dest_conns, persist) == 8
        && offset_of!(xvs_dest_conns, flags) == 12
        && size_of::<xvs_dest_conns>() == 16
);

/// `DEST_CONNS`, mapped into this process so expiry can adjust it with the
/// same atomics the program uses.
pub(crate) struct DestConns {
    ptr: *mut libc::c_void,
    len: usize,
    entries: u32,
}

// SAFETY: the mapping is only accessed through atomics.
unsafe impl Send for DestConns {}
// SAFETY: as above.
unsafe impl Sync for DestConns {}

/// One `xvs_dest_conns` slot, seen through atomics.
pub(crate) struct DestRt<'a> {
    pub(crate) active: &'a AtomicI32,
    pub(crate) inactive: &'a AtomicI32,
    pub(crate) persist: &'a AtomicI32,
    pub(crate) flags: &'a AtomicI32,
}

/// `IP_VS_DEST_F_OVERLOAD` in `xvs_dest_conns.flags`.
pub(crate) const OVERLOAD: i32 = xvs_dest_rt_flags::XVS_DEST_F_OVERLOAD.0 as i32;

impl DestConns {
    /// Maps the mmapable `DEST_CONNS` array into this process.
    pub(crate) fn map(dc: &MapHandle) -> Result<DestConns, Error> {
        let entries = dc.max_entries();
        // SAFETY: sysconf is always safe to call.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len = (entries as usize * size_of::<xvs_dest_conns>()).div_ceil(page) * page;
        // SAFETY: mapping an mmapable BPF array of `len` bytes, shared.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                dc.as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Error::Io {
                context: "mmap DEST_CONNS".into(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(DestConns { ptr, len, entries })
    }

    /// Slots in the map.
    pub(crate) fn entries(&self) -> u32 {
        self.entries
    }

    /// The counts of `dest_id`; `None` past the map.
    pub(crate) fn slot(&self, dest_id: u32) -> Option<DestRt<'_>> {
        if dest_id >= self.entries {
            return None;
        }
        // SAFETY: in bounds of the mapping; xvs_dest_conns is four aligned
        // 32-bit words, and the kernel accesses them atomically too.
        unsafe {
            let p = (self.ptr as *mut i32).add(dest_id as usize * 4);
            Some(DestRt {
                active: AtomicI32::from_ptr(p),
                inactive: AtomicI32::from_ptr(p.add(1)),
                persist: AtomicI32::from_ptr(p.add(2)),
                flags: AtomicI32::from_ptr(p.add(3)),
            })
        }
    }

    /// `ip_vs_unbind_dest`: one connection in `state` fewer; OVERLOAD
    /// cleared as `persist::overload_after` says for thresholds `(u, l)`.
    pub(crate) fn unbind(&self, dest_id: u32, state: u32, thresholds: (u32, u32)) {
        let Some(rt) = self.slot(dest_id) else { return };
        let (a, i) = if ConnState::from_u8(state as u8).is_some_and(ConnState::is_active) {
            (
                rt.active.fetch_sub(1, Ordering::SeqCst) - 1,
                rt.inactive.load(Ordering::SeqCst),
            )
        } else {
            (
                rt.active.load(Ordering::SeqCst),
                rt.inactive.fetch_sub(1, Ordering::SeqCst) - 1,
            )
        };
        if rt.flags.load(Ordering::SeqCst) & OVERLOAD == 0 {
            return;
        }
        let total = (a.max(0) as u32).saturating_add(i.max(0) as u32);
        let (u, l) = thresholds;
        if !persist::overload_after(persist::ConnEvent::Unbind, total, u, l, true) {
            rt.flags.fetch_and(!OVERLOAD, Ordering::SeqCst);
        }
    }

    /// Zeroes the counts and flags of `dest_id`.
    pub(crate) fn reset(&self, dest_id: u32) {
        if let Some(rt) = self.slot(dest_id) {
            rt.active.store(0, Ordering::SeqCst);
            rt.inactive.store(0, Ordering::SeqCst);
            rt.persist.store(0, Ordering::SeqCst);
            rt.flags.store(0, Ordering::SeqCst);
        }
    }
}

impl Drop for DestConns {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what map() mapped.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}
