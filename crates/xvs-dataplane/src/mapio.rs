//! Bulk reads and atomic removals on BPF maps, with the fallback each
//! needs on kernels that lack the syscall command: `BPF_MAP_LOOKUP_BATCH`
//! (5.6, arrays later) falls back to a key-by-key walk, and
//! `BPF_MAP_LOOKUP_AND_DELETE_ELEM` on hash maps (5.14) to a lookup and a
//! delete. Each fallback is decided by the kernel's answer the first time
//! and remembered, never by its version.

use crate::error::Error;
use libbpf_rs::libbpf_sys;
use libbpf_rs::{MapCore, MapFlags, MapHandle};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Entries per `BPF_MAP_LOOKUP_BATCH` call.
pub(crate) const BATCH: u32 = 4096;

/// The kernel refused batch lookups once: walk key by key from then on.
static NO_BATCH: AtomicBool = AtomicBool::new(false);
/// The kernel refused lookup-and-delete on a hash map once.
static NO_TAKE: AtomicBool = AtomicBool::new(false);

/// Whether `errno` says "this command is not implemented for this map".
fn unsupported(errno: i32) -> bool {
    // 524: the kernel's ENOTSUPP, which libc does not name.
    matches!(errno, 524 | libc::EOPNOTSUPP | libc::EINVAL)
}

/// Uses the fallbacks from now on, as if the kernel had refused (tests of
/// the fallbacks; `XVS_FEATURES_OFF`).
pub(crate) fn force_fallbacks(batch: bool, take: bool) {
    if batch {
        NO_BATCH.store(true, Ordering::Relaxed);
    }
    if take {
        NO_TAKE.store(true, Ordering::Relaxed);
    }
}

/// Tries a batch lookup on each of `maps` and a lookup-and-delete of a key
/// that cannot exist (all zero) on `hash`; returns whether each works.
/// Later calls use the fallbacks where they do not.
pub(crate) fn probe(maps: &[&MapHandle], hash: &MapHandle) -> (bool, bool) {
    for m in maps {
        let (k, v) = (m.key_size() as usize, m.value_size() as usize);
        let ncpu = libbpf_rs::num_possible_cpus().unwrap_or(1);
        // per-CPU maps hand out one 8-byte-aligned value per CPU
        let v = if matches!(
            m.map_type(),
            libbpf_rs::MapType::PercpuArray | libbpf_rs::MapType::PercpuHash
        ) {
            v.div_ceil(8) * 8 * ncpu
        } else {
            v
        };
        if let Err(Batch::Unsupported) = batch(m, k, v, &mut |_, _| {}) {
            NO_BATCH.store(true, Ordering::Relaxed);
        }
    }
    let _ = take(hash, &vec![0u8; hash.key_size() as usize]);
    (
        !NO_BATCH.load(Ordering::Relaxed),
        !NO_TAKE.load(Ordering::Relaxed),
    )
}

/// Reads every entry of `map`, handing each key and value (`vsize` bytes
/// as the kernel returns them: per-CPU maps give one 8-byte-aligned value
/// per possible CPU) to `each`: in batches where the kernel can, else key
/// by key.
pub(crate) fn read_each(
    map: &MapHandle,
    ksize: usize,
    vsize: usize,
    mut each: impl FnMut(&[u8], &[u8]),
) -> Result<(), Error> {
    if !NO_BATCH.load(Ordering::Relaxed) {
        match batch(map, ksize, vsize, &mut each) {
            Err(Batch::Unsupported) => NO_BATCH.store(true, Ordering::Relaxed),
            Err(Batch::Failed(source)) => {
                return Err(Error::Io {
                    context: "BPF map batch lookup".into(),
                    source,
                })
            }
            Ok(()) => return Ok(()),
        }
    }
    walk(map, ksize, vsize, &mut each)
}

enum Batch {
    /// Refused before any entry was handed out.
    Unsupported,
    Failed(std::io::Error),
}

fn batch(
    map: &MapHandle,
    ksize: usize,
    vsize: usize,
    each: &mut impl FnMut(&[u8], &[u8]),
) -> Result<(), Batch> {
    let mut keys = vec![0u8; ksize * BATCH as usize];
    let mut vals = vec![0u8; vsize * BATCH as usize];
    let mut in_batch = 0u64;
    let mut out_batch = 0u64;
    let mut first = true;
    loop {
        let mut count = BATCH;
        // SAFETY: plain libbpf_sys struct, zero is its default.
        let mut opts: libbpf_sys::bpf_map_batch_opts = unsafe { std::mem::zeroed() };
        opts.sz = size_of::<libbpf_sys::bpf_map_batch_opts>() as _;
        // SAFETY: buffers hold BATCH keys/values of the map's sizes; batch
        // tokens are u64 (>= a hash map's 4-byte bucket token and an
        // array's 4-byte key).
        let rc = unsafe {
            libbpf_sys::bpf_map_lookup_batch(
                map.as_fd().as_raw_fd(),
                if first {
                    std::ptr::null_mut()
                } else {
                    &mut in_batch as *mut u64 as *mut _
                },
                &mut out_batch as *mut u64 as *mut _,
                keys.as_mut_ptr() as *mut _,
                vals.as_mut_ptr() as *mut _,
                &mut count,
                &opts,
            )
        };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            let errno = err.raw_os_error().unwrap_or(0);
            if errno == libc::EINTR || errno == libc::EAGAIN {
                continue;
            }
            if errno != libc::ENOENT {
                if first && unsupported(errno) {
                    return Err(Batch::Unsupported);
                }
                return Err(Batch::Failed(err));
            }
        }
        for i in 0..(count as usize).min(BATCH as usize) {
            each(
                &keys[i * ksize..(i + 1) * ksize],
                &vals[i * vsize..(i + 1) * vsize],
            );
        }
        if rc < 0 {
            return Ok(()); // ENOENT: that was the last batch
        }
        in_batch = out_batch;
        first = false;
    }
}

/// Key by key: `BPF_MAP_GET_NEXT_KEY`, then a lookup of each (the raw
/// syscall, so per-CPU values come laid out as a batch gives them). An
/// entry deleted in between is skipped.
fn walk(
    map: &MapHandle,
    ksize: usize,
    vsize: usize,
    each: &mut impl FnMut(&[u8], &[u8]),
) -> Result<(), Error> {
    let fd = map.as_fd().as_raw_fd();
    let mut key = vec![0u8; ksize];
    let mut next = vec![0u8; ksize];
    let mut val = vec![0u8; vsize];
    let mut first = true;
    loop {
        // SAFETY: key buffers of the map's key size.
        let rc = unsafe {
            libbpf_sys::bpf_map_get_next_key(
                fd,
                if first {
                    std::ptr::null()
                } else {
                    key.as_ptr() as *const _
                },
                next.as_mut_ptr() as *mut _,
            )
        };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENOENT) {
                return Ok(());
            }
            return Err(Error::Io {
                context: "BPF map key walk".into(),
                source: err,
            });
        }
        first = false;
        std::mem::swap(&mut key, &mut next);
        // SAFETY: a value buffer of what the kernel writes for this map.
        let rc = unsafe {
            libbpf_sys::bpf_map_lookup_elem(
                fd,
                key.as_ptr() as *const _,
                val.as_mut_ptr() as *mut _,
            )
        };
        if rc == 0 {
            each(&key, &val);
        }
    }
}

/// Removes `key` from `map`, returning its value as it was removed: one
/// `BPF_MAP_LOOKUP_AND_DELETE_ELEM` where the kernel has it for this map,
/// else a lookup and a delete (a change in between is then lost: the
/// caller's bookkeeping may be off by that change). `None`: not there.
pub(crate) fn take(map: &MapHandle, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    let fd = map.as_fd().as_raw_fd();
    let mut val = vec![0u8; map.value_size() as usize];
    if !NO_TAKE.load(Ordering::Relaxed) {
        // SAFETY: key and value buffers of the map's sizes.
        let rc = unsafe {
            libbpf_sys::bpf_map_lookup_and_delete_elem(
                fd,
                key.as_ptr() as *const _,
                val.as_mut_ptr() as *mut _,
            )
        };
        if rc == 0 {
            return Ok(Some(val));
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ENOENT) => return Ok(None),
            Some(n) if unsupported(n) => NO_TAKE.store(true, Ordering::Relaxed),
            _ => {
                return Err(Error::Io {
                    context: "BPF map lookup-and-delete".into(),
                    source: err,
                })
            }
        }
    }
    let Some(v) = map
        .lookup(key, MapFlags::ANY)
        .map_err(|source| Error::Bpf {
            context: "map lookup".into(),
            source,
        })?
    else {
        return Ok(None);
    };
    match map.delete(key) {
        Ok(()) => Ok(Some(v)),
        Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Bpf {
            context: "map delete".into(),
            source,
        }),
    }
}
