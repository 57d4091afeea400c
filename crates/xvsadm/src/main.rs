//! `xvsadm [--socket PATH] <ipvsadm arguments>`: see the library docs.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let env_socket = std::env::var(xvs_core::api::SOCKET_ENV).ok();
    let code = xvsadm::run(
        &args,
        env_socket.as_deref(),
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    std::process::exit(code);
}
