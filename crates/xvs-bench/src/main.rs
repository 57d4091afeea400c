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

mod dpcost;
mod frames;
mod harness;
mod report;
mod sys;

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

const USAGE: &str = "\
usage: xvs-bench [--smoke] [--rounds N] [--duration S] [--conns C]
                 [--rs-server nginx|testsrv] [--only NAME,...] [--no-dp-cost] [--no-scale]
                 [--out FILE] [--in-vm]
  --smoke        every contender and metric once for 1 s, small scale tests (harness check)
  --rounds N     rounds of A B C ... (default 3; the report shows median [min-max])
  --duration S   seconds per workload (default 5)
  --conns C      wrk connections (default 32; 2 threads)
  --rs-server    HTTP server on the real servers (default nginx)
  --only         contenders to run (default all): direct kernel-fwd nft-nat haproxy
                 nginx-stream ipvs-nat xvs-nat xvs-nat-xdp xvs-nat-1rs direct-dr ipvs-dr
                 xvs-dr xvs-dr-xdp ipvs-tun xvs-tun xvs-tun-xdp xdp-drop xdp-tx
                 (ipvs-*: the kernel's IPVS via ipvsadm; not run where the kernel has none)
  --out FILE     write the markdown report there (between the result markers if present)
  --in-vm        running inside `cargo xtask vm` (set by `cargo xtask bench --vm`): the
                 report states first that it was measured in a VM (TCG or KVM) and that
                 only ratios within the run are meaningful";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = if args.first().map(String::as_str) == Some("dp-cost") {
        dpcost::main(&args[1..])
    } else {
        parse(&args).and_then(|cfg| match cfg {
            Some(cfg) => harness::run(cfg),
            None => Ok(()),
        })
    };
    if let Err(e) = r {
        eprintln!("xvs-bench: error: {e:#}");
        std::process::exit(1);
    }
}

fn parse(args: &[String]) -> Result<Option<harness::Config>> {
    let mut c = harness::Config {
        smoke: false,
        rounds: 3,
        duration: 5,
        conns: 32,
        rs_server: harness::RsServer::Nginx,
        only: None,
        dp_cost: true,
        scale: true,
        out: None,
        command_line: std::iter::once("xvs-bench".to_string())
            .chain(args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
        in_vm: false,
    };
    let mut rounds = None;
    let mut duration = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (k, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut val = || -> Result<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .with_context(|| format!("{k} needs a value")),
            }
        };
        match k {
            "--smoke" => c.smoke = true,
            "--rounds" => rounds = Some(val()?.parse::<u32>().context("--rounds")?),
            "--duration" => duration = Some(val()?.parse::<u32>().context("--duration")?),
            "--conns" => c.conns = val()?.parse().context("--conns")?,
            "--rs-server" => {
                c.rs_server = match val()?.as_str() {
                    "nginx" => harness::RsServer::Nginx,
                    "testsrv" => harness::RsServer::Testsrv,
                    o => bail!("--rs-server {o:?}: nginx or testsrv"),
                }
            }
            "--only" => {
                let v = val()?;
                let names: Vec<String> = v.split(',').map(str::to_string).collect();
                for n in &names {
                    if harness::Contender::by_name(n).is_none() {
                        bail!("--only: unknown contender {n:?}\n{USAGE}");
                    }
                }
                c.only = Some(names);
            }
            "--no-dp-cost" => c.dp_cost = false,
            "--no-scale" => c.scale = false,
            "--in-vm" => c.in_vm = true,
            "--out" => c.out = Some(PathBuf::from(val()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            o => bail!("unknown option {o:?}\n{USAGE}"),
        }
    }
    if c.smoke {
        c.rounds = rounds.unwrap_or(1);
        c.duration = duration.unwrap_or(1);
    } else {
        c.rounds = rounds.unwrap_or(3);
        c.duration = duration.unwrap_or(5);
    }
    if c.rounds == 0 || c.duration == 0 || c.conns == 0 {
        bail!("--rounds, --duration and --conns must be at least 1");
    }
    Ok(Some(c))
}
