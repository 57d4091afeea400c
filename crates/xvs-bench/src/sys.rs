//! The few bpf(2) commands the data-plane cost measurement needs, done with
//! the system call itself (no libbpf): find the program `xvsd` loaded by
//! the id of its pinned `CONN_MAP`, run it with `BPF_PROG_TEST_RUN`, fill
//! the connection table with `BPF_MAP_UPDATE_BATCH`. Plus `/proc/stat`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_PROG_TYPE_XDP: u32 = 6;

type Attr = [u8; 128];

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<i64> {
    // SAFETY: attr is a zero-padded `union bpf_attr` for `cmd`; every
    // pointer stored in it points to memory that outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn put32(a: &mut [u8], off: usize, v: u32) {
    a[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(a: &mut [u8], off: usize, v: u64) {
    a[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

fn get32(a: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(a[off..off + 4].try_into().expect("4 bytes"))
}

fn fd_of(r: i64) -> OwnedFd {
    // SAFETY: r is a file descriptor the kernel just returned to us.
    unsafe { OwnedFd::from_raw_fd(r as i32) }
}

/// Open a pinned BPF object.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut a: Attr = [0; 128];
    put64(&mut a, 0, c.as_ptr() as u64);
    bpf(BPF_OBJ_GET, &mut a).map(fd_of)
}

fn info(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<()> {
    let mut a: Attr = [0; 128];
    put32(&mut a, 0, fd.as_raw_fd() as u32);
    put32(&mut a, 4, buf.len() as u32);
    put64(&mut a, 8, buf.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a).map(|_| ())
}

/// What `BPF_OBJ_GET_INFO_BY_FD` says about a map.
#[derive(Debug, Clone, Copy)]
pub struct MapInfo {
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

pub fn map_info(fd: &OwnedFd) -> io::Result<MapInfo> {
    let mut b = [0u8; 96];
    info(fd, &mut b)?;
    Ok(MapInfo {
        id: get32(&b, 4),
        key_size: get32(&b, 8),
        value_size: get32(&b, 12),
        max_entries: get32(&b, 16),
    })
}

/// Name and map ids of a program.
#[derive(Debug, Clone)]
pub struct ProgInfo {
    pub name: String,
    pub map_ids: Vec<u32>,
}

pub fn prog_info(fd: &OwnedFd) -> io::Result<ProgInfo> {
    // struct bpf_prog_info: nr_map_ids @52, map_ids @56, name[16] @64.
    let mut b = [0u8; 256];
    info(fd, &mut b)?;
    let n = get32(&b, 52) as usize;
    let mut ids = vec![0u32; n];
    let mut b = [0u8; 256];
    put32(&mut b, 52, n as u32);
    put64(&mut b, 56, ids.as_mut_ptr() as u64);
    info(fd, &mut b)?;
    let raw = &b[64..80];
    let end = raw.iter().position(|&c| c == 0).unwrap_or(16);
    ids.truncate(get32(&b, 52).min(n as u32) as usize);
    Ok(ProgInfo {
        name: String::from_utf8_lossy(&raw[..end]).into_owned(),
        map_ids: ids,
    })
}

/// Every loaded program's id.
pub fn prog_ids() -> Vec<u32> {
    let mut out = Vec::new();
    let mut id = 0u32;
    loop {
        let mut a: Attr = [0; 128];
        put32(&mut a, 0, id);
        if bpf(BPF_PROG_GET_NEXT_ID, &mut a).is_err() {
            return out;
        }
        id = get32(&a, 4);
        out.push(id);
    }
}

pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut a: Attr = [0; 128];
    put32(&mut a, 0, id);
    bpf(BPF_PROG_GET_FD_BY_ID, &mut a).map(fd_of)
}

/// The program called `name` that uses the map with id `map_id`.
pub fn find_prog(name: &str, map_id: u32) -> io::Result<OwnedFd> {
    for id in prog_ids() {
        let Ok(fd) = prog_fd_by_id(id) else { continue };
        if let Ok(i) = prog_info(&fd) {
            if i.name == name && i.map_ids.contains(&map_id) {
                return Ok(fd);
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no program {name} uses map id {map_id}"),
    ))
}

/// Load `r0 = action; exit` as an XDP program (the baseline of the cost
/// measurement of `xvs_xdp`).
pub fn load_xdp_action(action: u32) -> io::Result<OwnedFd> {
    load_action(BPF_PROG_TYPE_XDP, action)
}

/// Load `r0 = action; exit` as a tc (`SCHED_CLS`) program (the baseline of
/// the cost measurement of `xvs_tc`; 0 = `TC_ACT_OK`).
pub fn load_tc_action(action: u32) -> io::Result<OwnedFd> {
    load_action(BPF_PROG_TYPE_SCHED_CLS, action)
}

fn load_action(prog_type: u32, action: u32) -> io::Result<OwnedFd> {
    let a4 = action.to_le_bytes();
    let insns: [u8; 16] = [
        0xb7, 0, 0, 0, a4[0], a4[1], a4[2], a4[3], 0x95, 0, 0, 0, 0, 0, 0, 0,
    ];
    let license = b"GPL\0";
    let mut a: Attr = [0; 128];
    put32(&mut a, 0, prog_type);
    put32(&mut a, 4, 2);
    put64(&mut a, 8, insns.as_ptr() as u64);
    put64(&mut a, 16, license.as_ptr() as u64);
    a[48..59].copy_from_slice(b"xvs_bench_a");
    bpf(BPF_PROG_LOAD, &mut a).map(fd_of)
}

/// One `BPF_PROG_TEST_RUN`: (return value, kernel-measured ns per run —
/// the mean over the `repeat` runs —, output length). `ctx_out`, when
/// given, receives the context as the program left it (for tc it must be
/// the kernel's full `struct __sk_buff`, else `ENOSPC`).
pub fn test_run(
    prog: &OwnedFd,
    data: &[u8],
    out: &mut [u8],
    ctx: Option<&[u8]>,
    ctx_out: Option<&mut [u8]>,
    repeat: u32,
) -> io::Result<(u32, u32, usize)> {
    let mut a: Attr = [0; 128];
    put32(&mut a, 0, prog.as_raw_fd() as u32);
    put32(&mut a, 8, data.len() as u32);
    put32(&mut a, 12, out.len() as u32);
    put64(&mut a, 16, data.as_ptr() as u64);
    put64(&mut a, 24, out.as_mut_ptr() as u64);
    put32(&mut a, 32, repeat);
    if let Some(c) = ctx {
        put32(&mut a, 40, c.len() as u32);
        put64(&mut a, 48, c.as_ptr() as u64);
    }
    if let Some(c) = ctx_out {
        put32(&mut a, 44, c.len() as u32);
        put64(&mut a, 56, c.as_mut_ptr() as u64);
    }
    bpf(BPF_PROG_TEST_RUN, &mut a)?;
    Ok((get32(&a, 4), get32(&a, 36), get32(&a, 12) as usize))
}

/// `BPF_MAP_UPDATE_BATCH` of `count` keys and values (packed arrays).
pub fn map_update_batch(map: &OwnedFd, keys: &[u8], values: &[u8], count: u32) -> io::Result<u32> {
    let mut a: Attr = [0; 128];
    put64(&mut a, 16, keys.as_ptr() as u64);
    put64(&mut a, 24, values.as_ptr() as u64);
    put32(&mut a, 32, count);
    put32(&mut a, 36, map.as_raw_fd() as u32);
    match bpf(BPF_MAP_UPDATE_BATCH, &mut a) {
        Ok(_) => Ok(get32(&a, 32)),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("{e} after {} entries", get32(&a, 32)),
        )),
    }
}

/// A field (`memlock`, `max_entries`, …) of `/proc/self/fdinfo/<fd>`.
pub fn fdinfo_field(fd: &OwnedFd, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

/// Machine-wide CPU time from `/proc/stat`: (busy, total) in clock ticks.
pub fn cpu_ticks() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest counted in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU time of one process (user + system) in clock ticks, from
/// `/proc/PID/stat` (fields 14 and 15; the command name before them may
/// hold spaces, so count from its closing parenthesis).
pub fn proc_cpu_ticks(pid: u32) -> io::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = s
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/stat: no command name")))?;
    // After ")": state is field 3, so utime (14) and stime (15) are the
    // 12th and 13th words.
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    match f[..] {
        [u, s] => Ok(u + s),
        _ => Err(io::Error::other(format!(
            "/proc/{pid}/stat: no utime/stime"
        ))),
    }
}

/// Clock ticks per second (`USER_HZ`).
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}
