//! Optional kernel features of the data plane, decided by trying them on
//! the running kernel (a helper probe, a tiny program load, a BTF lookup,
//! or loading the optional program itself), never by its version. Each
//! missing one degrades to a slower or less exact path, logged once, and
//! none can keep the core program from loading.
//!
//! `XVS_FEATURES_OFF=name,name` (or `all`) turns features off as if the
//! kernel lacked them, so tests can run every fallback on any kernel.

use libbpf_rs::libbpf_sys;
use std::collections::BTreeSet;

use crate::abi::xvs_feat;

/// One optional feature: its name (as `XVS_FEATURES_OFF` and reports
/// spell it), what provides it, and what happens without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// Short name.
    pub name: &'static str,
    /// The kernel facility it needs.
    pub needs: &'static str,
    /// The fallback.
    pub without: &'static str,
}

/// `bpf_ktime_get_coarse_ns`.
pub const COARSE_CLOCK: Feature = Feature {
    name: "coarse_clock",
    needs: "bpf_ktime_get_coarse_ns (5.11)",
    without: "the program reads the clocksource for every packet (bpf_ktime_get_ns)",
};
/// BPF atomic fetch, cmpxchg, and/or.
pub const ATOMICS: Feature = Feature {
    name: "atomics",
    needs: "BPF atomic fetch/cmpxchg/and/or instructions (5.12)",
    without: "connection states, counts and OVERLOAD use plain updates: a race between two \
              CPUs on one connection can miscount it or lose one state change",
};
/// `bpf_redirect_peer`.
pub const REDIRECT_PEER: Feature = Feature {
    name: "redirect_peer",
    needs: "bpf_redirect_peer (5.10)",
    without: "tc sends frames for a veth through its transmit path",
};
/// The `bpf_cast_to_kern_ctx` kfunc (tc's checksum state).
pub const CSUM_STATE: Feature = Feature {
    name: "csum_state",
    needs: "kfunc bpf_cast_to_kern_ctx (6.3)",
    without: "tc NAT updates every L4 checksum through the kernel's helpers",
};
/// The expiry scan (a map-element iterator).
pub const EXPIRY_SCAN: Feature = Feature {
    name: "expiry_scan",
    needs: "BPF map-element iterators (5.9) with BTF, and a policy that allows them",
    without: "xvsd reads the whole connection table for expiry",
};
/// The egress program of local NAT dests' answers.
pub const LOCAL_OUT: Feature = Feature {
    name: "local_out",
    needs: "tc clsact egress programs (4.5) sharing the director's maps",
    without: "a NAT real server at one of the director's own addresses gets connections \
              it cannot answer (DR and TUN ones still work)",
};

/// `BPF_MAP_LOOKUP_BATCH` on the maps xvsd reads in bulk.
pub const BATCH_OPS: Feature = Feature {
    name: "batch_ops",
    needs: "BPF_MAP_LOOKUP_BATCH on hash and (per-CPU) array maps (5.6/5.7)",
    without: "xvsd reads counters and tables key by key (one syscall per entry)",
};
/// `BPF_MAP_LOOKUP_AND_DELETE_ELEM` on hash maps.
pub const LOOKUP_AND_DELETE: Feature = Feature {
    name: "lookup_and_delete",
    needs: "BPF_MAP_LOOKUP_AND_DELETE_ELEM on hash maps (5.14)",
    without: "expiry reads an entry, then deletes it: a packet in between can leave \
              its dest's counts off by one",
};

/// Every feature, in report order.
pub const ALL: [Feature; 8] = [
    COARSE_CLOCK,
    ATOMICS,
    REDIRECT_PEER,
    CSUM_STATE,
    EXPIRY_SCAN,
    LOCAL_OUT,
    BATCH_OPS,
    LOOKUP_AND_DELETE,
];

/// The features decided by loading their own program after the
/// director's: a director that loads without the others keeps them.
pub(crate) const AFTER_LOAD: [Feature; 2] = [EXPIRY_SCAN, LOCAL_OUT];

/// What the running kernel offers (after `XVS_FEATURES_OFF`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    have: BTreeSet<&'static str>,
    why: std::collections::BTreeMap<&'static str, String>,
}

impl Features {
    /// Whether `f` is available.
    pub fn has(&self, f: Feature) -> bool {
        self.have.contains(f.name)
    }

    pub(crate) fn set(&mut self, f: Feature, on: bool) {
        if on {
            self.have.insert(f.name);
        } else {
            self.have.remove(f.name);
        }
    }

    /// Why `f` is unavailable, when more is known than its absence (the
    /// kernel's answer to loading it).
    pub fn why(&self, f: Feature) -> Option<&str> {
        self.why.get(f.name).map(String::as_str)
    }

    pub(crate) fn set_why(&mut self, f: Feature, why: String) {
        self.why.insert(f.name, why);
    }

    /// `(feature, available)` for every feature, in report order.
    pub fn report(&self) -> Vec<(Feature, bool)> {
        ALL.iter().map(|&f| (f, self.has(f))).collect()
    }

    /// The program's `xvs_feat` bits for these features.
    pub(crate) fn bits(&self) -> u32 {
        let mut b = 0;
        for (f, bit) in [
            (COARSE_CLOCK, xvs_feat::XVS_FEAT_COARSE_CLOCK),
            (REDIRECT_PEER, xvs_feat::XVS_FEAT_REDIRECT_PEER),
            (CSUM_STATE, xvs_feat::XVS_FEAT_CSUM_STATE),
        ] {
            if self.has(f) {
                b |= bit.0;
            }
        }
        b
    }
}

/// The features `XVS_FEATURES_OFF` turns off (`all`: every one). Unknown
/// names are reported, not ignored silently.
pub(crate) fn forced_off() -> Result<BTreeSet<&'static str>, String> {
    let Ok(v) = std::env::var("XVS_FEATURES_OFF") else {
        return Ok(BTreeSet::new());
    };
    parse_off(&v)
}

fn parse_off(v: &str) -> Result<BTreeSet<&'static str>, String> {
    let mut off = BTreeSet::new();
    for name in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if name == "all" {
            off.extend(ALL.iter().map(|f| f.name));
            continue;
        }
        match ALL.iter().find(|f| f.name == name) {
            Some(f) => {
                off.insert(f.name);
            }
            None => {
                return Err(format!(
                    "XVS_FEATURES_OFF: unknown feature `{name}` (known: all, {})",
                    ALL.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                ))
            }
        }
    }
    Ok(off)
}

/// Probes the program-level features on the running kernel (the expiry
/// scan is decided by loading it, after the program).
pub(crate) fn probe(off: &BTreeSet<&'static str>) -> Features {
    let mut f = Features::default();
    let probes: [(Feature, fn() -> bool); 4] = [
        (COARSE_CLOCK, || {
            helper(
                libbpf_sys::BPF_PROG_TYPE_XDP,
                libbpf_sys::BPF_FUNC_ktime_get_coarse_ns,
            )
        }),
        (ATOMICS, atomics),
        (REDIRECT_PEER, || {
            helper(
                libbpf_sys::BPF_PROG_TYPE_SCHED_CLS,
                libbpf_sys::BPF_FUNC_redirect_peer,
            )
        }),
        (CSUM_STATE, || kernel_func("bpf_cast_to_kern_ctx")),
    ];
    for (feat, probe) in probes {
        f.set(feat, !off.contains(feat.name) && probe());
    }
    f
}

/// Whether programs of `prog_type` may call helper `func` here.
fn helper(prog_type: libbpf_sys::bpf_prog_type, func: libbpf_sys::bpf_func_id) -> bool {
    // SAFETY: plain call; NULL options are allowed.
    unsafe { libbpf_sys::libbpf_probe_bpf_helper(prog_type, func, std::ptr::null()) == 1 }
}

/// One BPF instruction, as the kernel reads it.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> libbpf_sys::bpf_insn {
    // SAFETY: plain struct of integers (with a bitfield), zero is valid.
    let mut i: libbpf_sys::bpf_insn = unsafe { std::mem::zeroed() };
    i.code = code;
    i.set_dst_reg(dst);
    i.set_src_reg(src);
    i.off = off;
    i.imm = imm;
    i
}

/// Loads an XDP program using a fetching atomic add and a cmpxchg (the
/// 5.12 instructions): `*(u64 *)(fp-8) = 0; r1 = 1; r1 = atomic_fetch_add(
/// fp-8, r1); r0 = 0; r0 = cmpxchg(fp-8, r0, r1); r0 = XDP_PASS; exit`.
fn atomics() -> bool {
    const ST_MEM_DW: u8 = 0x7a; // BPF_ST | BPF_MEM | BPF_DW
    const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
    const ATOMIC_DW: u8 = 0xdb; // BPF_STX | BPF_ATOMIC | BPF_DW
    const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT
    const FETCH_ADD: i32 = 0x01; // BPF_ADD | BPF_FETCH
    const CMPXCHG: i32 = 0xf1; // BPF_CMPXCHG (includes BPF_FETCH)
    let prog = [
        insn(ST_MEM_DW, 10, 0, -8, 0),
        insn(MOV64_K, 1, 0, 0, 1),
        insn(ATOMIC_DW, 10, 1, -8, FETCH_ADD),
        insn(MOV64_K, 0, 0, 0, 0),
        insn(ATOMIC_DW, 10, 1, -8, CMPXCHG),
        insn(MOV64_K, 0, 0, 0, 2),
        insn(EXIT, 0, 0, 0, 0),
    ];
    // SAFETY: valid instruction array and NUL-terminated strings; the
    // returned fd (if any) is closed right away.
    unsafe {
        let fd = libbpf_sys::bpf_prog_load(
            libbpf_sys::BPF_PROG_TYPE_XDP,
            c"xvs_probe".as_ptr(),
            c"GPL".as_ptr(),
            prog.as_ptr(),
            prog.len() as _,
            std::ptr::null_mut(),
        );
        if fd >= 0 {
            libc::close(fd);
        }
        fd >= 0
    }
}

/// Whether the kernel's BTF has a function `name` (a kfunc's presence:
/// libbpf resolves weak kfuncs the same way).
fn kernel_func(name: &str) -> bool {
    let Ok(cname) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: libbpf allocates the BTF and we free it; the name is a
    // valid C string.
    unsafe {
        let btf = libbpf_sys::btf__load_vmlinux_btf();
        if btf.is_null() {
            return false;
        }
        let id = libbpf_sys::btf__find_by_name_kind(btf, cname.as_ptr(), libbpf_sys::BTF_KIND_FUNC);
        libbpf_sys::btf__free(btf);
        id > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_list_names_features_and_refuses_unknown_ones() {
        assert!(parse_off("").unwrap().is_empty());
        let off = parse_off("atomics, expiry_scan").unwrap();
        assert_eq!(
            off.into_iter().collect::<Vec<_>>(),
            ["atomics", "expiry_scan"]
        );
        assert_eq!(parse_off("all").unwrap().len(), ALL.len());
        let e = parse_off("atomics,bogus").unwrap_err();
        assert!(e.contains("unknown feature `bogus`"), "{e}");
    }

    #[test]
    fn bits_follow_the_header() {
        let mut f = Features::default();
        assert_eq!(f.bits(), 0);
        f.set(COARSE_CLOCK, true);
        // not program bits: a build, and an object of its own
        f.set(ATOMICS, true);
        f.set(EXPIRY_SCAN, true);
        assert_eq!(f.bits(), xvs_feat::XVS_FEAT_COARSE_CLOCK.0);
        f.set(ATOMICS, false);
        assert!(!f.has(ATOMICS));
    }
}
