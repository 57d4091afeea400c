//! `xvs-bench`: the benchmark harness behind `cargo xtask bench`.
//!
//! ```text
//! xvs-bench [--smoke] [--rounds N] [--duration S] [--conns C]
//!           [--rs-server nginx|testsrv] [--only a,b,...] [--no-dp-cost] [--no-scale]
//!           [--out FILE] [--in-vm]
//! xvs-bench dp-cost ...   (internal: run inside the director by the harness)
//! ```
//!
//! See `docs/benchmarks.md` for what every contender and metric is and how
//! it is measured. Needs root, the workspace binaries (`xvsd`, `xvsadm`,
//! `xvs-realserver`, `xvs-testsrv`, found next to this one or in
//! `$XVS_BIN_DIR`) and `wrk`, `trafgen`, `haproxy`, `nginx` (+ stream
//! module), `nft`; for the IPVS contenders `ipvsadm` and the kernel's
//! `ip_vs` (skipped, with a line in the report, where either is missing).

mod cli;
mod dpcost;
mod frames;
mod harness;
mod report;
mod sys;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = if args.first().map(String::as_str) == Some("dp-cost") {
        dpcost::main(&args[1..])
    } else {
        cli::parse(&args).and_then(harness::run)
    };
    if let Err(e) = r {
        eprintln!("xvs-bench: error: {e:#}");
        std::process::exit(1);
    }
}
