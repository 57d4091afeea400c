//! Compiles the BPF programs with clang and generates their libbpf-rs
//! skeletons: `bpf/xvs.bpf.c` as the director's `xvs_xdp` and, with
//! `-DXVS_TC`, as its tc twin `xvs_tc`, each also without 5.12's atomics
//! (`-DXVS_NO_ATOMICS`, for older kernels); `bpf/expiry.bpf.c` (the
//! director's optional expiry scan); `bpf/local_out.bpf.c` (the egress
//! hook of local NAT dests' answers, tc only, likewise twice); and
//! `bpf/decap.bpf.c` (the real
//! server's `xvs_decap`), likewise twice. The director's stages and the
//! context both attachments share are headers in `bpf/lib/`.

use libbpf_cargo::SkeletonBuilder;
use std::env;
use std::path::PathBuf;

/// Source, object name, extra clang arguments.
const SRCS: [(&str, &str, &[&str]); 9] = [
    ("bpf/xvs.bpf.c", "xvs", &[]),
    ("bpf/xvs.bpf.c", "xvs_tc", &["-DXVS_TC"]),
    // For kernels without 5.12's atomic instructions.
    ("bpf/xvs.bpf.c", "xvs_compat", &["-DXVS_NO_ATOMICS"]),
    (
        "bpf/xvs.bpf.c",
        "xvs_tc_compat",
        &["-DXVS_TC", "-DXVS_NO_ATOMICS"],
    ),
    ("bpf/expiry.bpf.c", "expiry", &[]),
    // Always tc: the egress hook of a local NAT dest's answers.
    ("bpf/local_out.bpf.c", "local_out", &["-DXVS_TC"]),
    (
        "bpf/local_out.bpf.c",
        "local_out_compat",
        &["-DXVS_TC", "-DXVS_NO_ATOMICS"],
    ),
    ("bpf/decap.bpf.c", "decap", &[]),
    ("bpf/decap.bpf.c", "decap_tc", &["-DXVS_TC"]),
];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR must be set by cargo"));
    let mut args = vec![
        "-Wall".to_string(),
        "-Werror".to_string(),
        "-mcpu=v3".to_string(),
        "-Ibpf".to_string(),
    ];
    // <asm/types.h> lives in the multiarch include dir on Debian.
    let multiarch = format!("/usr/include/{}-linux-gnu", env::consts::ARCH);
    if std::path::Path::new(&multiarch).is_dir() {
        args.push(format!("-I{multiarch}"));
    }
    for (src, name, extra) in SRCS {
        let mut a = args.clone();
        a.extend(extra.iter().map(|s| s.to_string()));
        SkeletonBuilder::new()
            .source(src)
            .obj(out.join(format!("{name}.bpf.o")))
            .clang_args(a)
            .build_and_generate(out.join(format!("{name}.skel.rs")))
            .unwrap_or_else(|e| panic!("building {src}: {e:#}"));
        println!("cargo:rerun-if-changed={src}");
    }
    println!("cargo:rerun-if-changed=bpf/xvs.h");
    // A directory: cargo rebuilds when any file in it changes.
    println!("cargo:rerun-if-changed=bpf/lib");
}
