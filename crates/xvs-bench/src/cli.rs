//! The command line of the benchmark run (the internal `dp-cost` helper
//! parses its own).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, ValueEnum};

use crate::harness::{Config, Contender, RsServer};

/// The HTTP server on the real servers.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum RsServerArg {
    Nginx,
    Testsrv,
}

/// xvs-bench: the benchmark harness behind `cargo xtask bench`.
#[derive(Debug, Parser)]
#[command(name = "xvs-bench")]
struct Args {
    /// Every contender and metric once for 1 s, small scale tests (harness check).
    #[arg(long)]
    smoke: bool,
    /// Rounds of A B C ... (default 3, 1 with --smoke; the report shows median [min-max]).
    #[arg(long, value_name = "N")]
    rounds: Option<u32>,
    /// Seconds per workload (default 5, 1 with --smoke).
    #[arg(long, value_name = "S")]
    duration: Option<u32>,
    /// wrk connections (2 threads).
    #[arg(long, value_name = "C", default_value_t = 32)]
    conns: u32,
    /// HTTP server on the real servers.
    #[arg(long, value_enum, default_value = "nginx")]
    rs_server: RsServerArg,
    /// Contenders to run (default all): direct kernel-fwd nft-nat haproxy
    /// nginx-stream ipvs-nat xvs-nat xvs-nat-xdp xvs-nat-1rs direct-dr ipvs-dr
    /// xvs-dr xvs-dr-xdp ipvs-tun xvs-tun xvs-tun-xdp xdp-drop xdp-tx
    /// (ipvs-*: the kernel's IPVS via ipvsadm; not run where the kernel has none).
    #[arg(long, value_name = "NAME,...", value_parser = contender)]
    only: Option<String>,
    /// No data-plane cost (BPF_PROG_TEST_RUN) section.
    #[arg(long)]
    no_dp_cost: bool,
    /// No scale-of-state section.
    #[arg(long)]
    no_scale: bool,
    /// Write the markdown report there (between the result markers if present).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Running inside `cargo xtask vm` (set by `cargo xtask bench --vm`): the
    /// report states first that it was measured in a VM (TCG or KVM) and that
    /// only ratios within the run are meaningful.
    #[arg(long)]
    in_vm: bool,
}

/// `--only`'s list, every name a known contender.
fn contender(v: &str) -> Result<String, String> {
    match v.split(',').find(|n| Contender::by_name(n).is_none()) {
        Some(n) => Err(format!("unknown contender {n:?}")),
        None => Ok(v.to_string()),
    }
}

/// The run's configuration from the arguments after the program name;
/// `--help` and `--version` print and exit.
pub fn parse(args: &[String]) -> Result<Config> {
    let a = match Args::try_parse_from(
        std::iter::once("xvs-bench").chain(args.iter().map(String::as_str)),
    ) {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => e.exit(),
        // Our own prefix says "error:" already.
        Err(e) => bail!("{}", e.to_string().trim_start_matches("error: ").trim_end()),
    };
    let (rounds, duration) = if a.smoke { (1, 1) } else { (3, 5) };
    let c = Config {
        smoke: a.smoke,
        rounds: a.rounds.unwrap_or(rounds),
        duration: a.duration.unwrap_or(duration),
        conns: a.conns,
        rs_server: match a.rs_server {
            RsServerArg::Nginx => RsServer::Nginx,
            RsServerArg::Testsrv => RsServer::Testsrv,
        },
        only: a.only.map(|v| v.split(',').map(str::to_string).collect()),
        dp_cost: !a.no_dp_cost,
        scale: !a.no_scale,
        out: a.out,
        command_line: std::iter::once("xvs-bench".to_string())
            .chain(args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
        in_vm: a.in_vm,
    };
    if c.rounds == 0 || c.duration == 0 || c.conns == 0 {
        bail!("--rounds, --duration and --conns must be at least 1");
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn defaults_and_smoke() {
        let c = parse(&[]).unwrap();
        assert_eq!((c.rounds, c.duration, c.conns), (3, 5, 32));
        assert!(c.dp_cost && c.scale && !c.smoke && c.only.is_none());
        let c = parse(&args("--smoke --rounds 2")).unwrap();
        assert_eq!((c.rounds, c.duration), (2, 1));
        assert_eq!(c.command_line, "xvs-bench --smoke --rounds 2");
        let c = parse(&args(
            "--only=xvs-nat,direct --rs-server testsrv --no-scale --out x.md",
        ))
        .unwrap();
        assert_eq!(
            c.only,
            Some(vec!["xvs-nat".to_string(), "direct".to_string()])
        );
        assert_eq!(c.rs_server, RsServer::Testsrv);
        assert!(!c.scale && c.dp_cost);
        assert_eq!(c.out, Some(PathBuf::from("x.md")));
    }

    #[test]
    fn rejects() {
        for bad in [
            "--conns 0",
            "--rounds 0",
            "--only xvs-nat,nope",
            "--rs-server apache",
            "--bogus",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }
}
