//! `xvs-realserver setup|teardown|status` (`xvs-realserver --help`).

use xvs_realserver::{cli, Error};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match cli::parse(&args) {
        Ok(c) => c,
        Err(Error::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("xvs-realserver: {e}\n(xvs-realserver --help shows the options)");
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
