//! Tiny HTTP/UDP servers and clients for xvs tests; see `xvs_testbed::testsrv`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(xvs_testbed::testsrv::main_with_args(&args));
}
