//! Compiles `bpf/xvs.bpf.c` with clang and generates the libbpf-rs skeleton.

use libbpf_cargo::SkeletonBuilder;
use std::env;
use std::path::PathBuf;

const SRC: &str = "bpf/xvs.bpf.c";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR must be set by cargo"));
    let obj = out.join("xvs.bpf.o");
    let skel = out.join("xvs.skel.rs");
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
    SkeletonBuilder::new()
        .source(SRC)
        .obj(&obj)
        .clang_args(args)
        .build_and_generate(&skel)
        .unwrap_or_else(|e| panic!("building {SRC}: {e:#}"));
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed=bpf/xvs.h");
}
