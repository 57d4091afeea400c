//! `kacheck FILE [CONFIG_ID]`: loads a keepalived.conf and prints the result
//! (like `keepalived -t`): errors and warnings as `file:line: ...`.
fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: kacheck FILE [CONFIG_ID]");
        std::process::exit(2);
    };
    let opts = xvs_keepalived::Options {
        config_id: args.next(),
    };
    match xvs_keepalived::load_with(std::path::Path::new(&path), &opts) {
        Ok(cfg) => {
            for w in &cfg.warnings {
                eprintln!("{w}");
            }
            for vs in &cfg.virtual_servers {
                println!(
                    "{} {} {} rs",
                    vs.to_service().key,
                    vs.scheduler,
                    vs.real_servers.len()
                );
            }
        }
        Err(e) => {
            for w in &e.warnings {
                eprintln!("{w}");
            }
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
