//! `xvs-realserver setup|teardown|status`: see `xvs_realserver::cli::USAGE`.

use xvs_realserver::{cli, Error};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match cli::parse(&args) {
        Ok(c) => c,
        Err(Error::Help) => {
            println!("{}", cli::USAGE);
            return;
        }
        Err(e) => {
            eprintln!("xvs-realserver: {e}\n{}", cli::USAGE);
            std::process::exit(2);
        }
    };
    let result: anyhow::Result<()> =
        xvs_realserver::run(&parsed, &mut |line| println!("{line}")).map_err(anyhow::Error::from);
    if let Err(e) = result {
        // The typed errors already spell out their causes.
        eprintln!("xvs-realserver: error: {e}");
        std::process::exit(1);
    }
}
