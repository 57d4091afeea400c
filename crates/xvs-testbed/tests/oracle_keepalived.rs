//! The keepalived oracle: one keepalived.conf run by Debian's keepalived
//! (its checker process driving the kernel's IPVS) and by `xvsd --config`,
//! each on a NAT testbed of its own, through the same real-server failures
//! and recoveries: the table (`-Ln`) must go through the same states.
//! Needs IPVS and keepalived: it runs in the VM tier (`cargo xtask
//! matrix`), and elsewhere says so and passes.

use std::time::{Duration, Instant};

use xvs_testbed::harness::{serve, Xvsd};
use xvs_testbed::oracle::{ipvs_available, normalize, run_in_ns};
use xvs_testbed::{rs_ip, Node, Proc, Testbed, NAT_RS_COUNT, VIP};

/// HTTP_GET on 80 for VIP:80 (rr, NAT), TCP_CHECK with
/// inhibit_on_failure on VIP:81, a sorry server and quorum on VIP:82, and
/// a DR fwmark service checked on 83 (keepalived clears its real
/// servers' ports and ignores its protocol; the `@xvsd match` line, which
/// keepalived skips, gives xvs its mark).
fn conf() -> String {
    let mut c = String::from("global_defs {\n  router_id xvs_oracle\n}\n");
    let rs = |n: u8, port: u16, check: &str| {
        format!(
            "  real_server {} {port} {{\n    weight {n}\n    {check} {{\n      connect_timeout 1\n      retry 1\n      delay_before_retry 1\n{}    }}\n  }}\n",
            rs_ip(n),
            if check == "HTTP_GET" {
                "      url {\n        path /\n        status_code 200\n      }\n"
            } else {
                ""
            }
        )
    };
    let vs = |port: u16, extra: &str, body: String| {
        format!(
            "virtual_server {VIP} {port} {{\n  delay_loop 1\n  lvs_sched wrr\n  lvs_method NAT\n  protocol TCP\n{extra}{body}}}\n"
        )
    };
    let all = |port: u16, check: &str| -> String {
        (1..=NAT_RS_COUNT).map(|n| rs(n, port, check)).collect()
    };
    c += &vs(80, "", all(80, "HTTP_GET"));
    c += &vs(81, "  inhibit_on_failure\n", all(81, "TCP_CHECK"));
    c += &format!(
        "virtual_server fwmark 7 {{\n  delay_loop 1\n  lvs_sched wrr\n  lvs_method DR\n  protocol TCP\n  @xvsd match tcp {VIP} 83\n{}}}\n",
        (1..=NAT_RS_COUNT)
            .map(|n| rs(n, 83, "TCP_CHECK").replace("connect_timeout 1", "connect_port 83\n      connect_timeout 1"))
            .collect::<String>()
    );
    c += &vs(
        82,
        &format!(
            "  quorum 4\n  hysteresis 1\n  sorry_server {} 82\n",
            rs_ip(3)
        ),
        (1..=2).map(|n| rs(n, 82, "TCP_CHECK")).collect(),
    );
    c
}

/// How one side lists its table.
enum Side {
    Keepalived { ns: String, _proc: Proc },
    Xvs(Xvsd),
}

impl Side {
    fn list(&self) -> String {
        let argv = match self {
            Side::Keepalived { .. } => vec!["ipvsadm".to_string(), "-Ln".into()],
            Side::Xvs(x) => vec![
                xvs_testbed::harness::bin_path("xvsadm"),
                "--socket".into(),
                x.sock().to_string(),
                "-Ln".into(),
            ],
        };
        let ns = match self {
            Side::Keepalived { ns, .. } => ns.clone(),
            Side::Xvs(_) => String::new(),
        };
        let out = if ns.is_empty() {
            xvs_testbed::oracle::run_here(&[], &argv, None)
        } else {
            run_in_ns(&ns, &[], &argv, None)
        };
        normalize(&out.stdout)
    }
}

/// Waits until the listing has changed from `prev` (unless `prev` is
/// `None`) and then stayed the same for 3 s; returns it.
fn settle(side: &Side, prev: Option<&str>, limit: Duration) -> String {
    let end = Instant::now() + limit;
    let mut last = side.list();
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let now = side.list();
        if now != last {
            last = now;
            since = Instant::now();
            continue;
        }
        let changed = prev.is_none_or(|p| p != last);
        if changed && since.elapsed() >= Duration::from_secs(3) {
            return last;
        }
        if Instant::now() >= end {
            return format!("(no settled change within {limit:?})\n{last}");
        }
    }
}

/// The servers: HTTP on 80 and plain TCP (HTTP answers) on 81 to 83.
fn servers(tb: &Testbed, n: u8) -> Vec<Proc> {
    [80, 81, 82, 83]
        .iter()
        .map(|p| {
            serve(
                tb,
                Node::Rs(n),
                "http",
                &format!("0.0.0.0:{p}"),
                &format!("rs{n}"),
            )
        })
        .collect()
}

/// The states the table goes through: all up; rs2 down; rs2 back; rs1
/// and rs2 down (quorum lost on :82, the sorry server takes it).
fn run(side_of: impl FnOnce(&Testbed) -> Side) -> Vec<String> {
    let tb = Testbed::nat().expect("NAT testbed");
    let mut srv: Vec<Vec<Proc>> = (1..=NAT_RS_COUNT).map(|n| servers(&tb, n)).collect();
    let side = side_of(&tb);
    let limit = Duration::from_secs(30);
    let stop = |procs: &mut Vec<Proc>| {
        for p in procs.drain(..) {
            p.stop(Duration::from_secs(2));
        }
    };
    let mut states = vec![settle(&side, None, limit)];
    stop(&mut srv[1]);
    states.push(settle(&side, states.last().map(String::as_str), limit));
    srv[1] = servers(&tb, 2);
    states.push(settle(&side, states.last().map(String::as_str), limit));
    stop(&mut srv[0]);
    stop(&mut srv[1]);
    states.push(settle(&side, states.last().map(String::as_str), limit));
    states
}

/// The states keepalived takes IPVS through; `None` (and why, on stderr)
/// where IPVS or keepalived is missing. With `XVS_ORACLE_RECORD=FILE` they
/// are also written there (a JSON list) for `XVS_ORACLE_REPLAY=FILE` on a
/// machine without them.
fn keepalived_states() -> Option<Vec<String>> {
    if let Err(why) = ipvs_available() {
        eprintln!("skipped: {why}");
        return None;
    }
    let ok = std::process::Command::new("keepalived")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stderr.is_empty());
    if !ok {
        eprintln!("skipped: no keepalived on this machine");
        return None;
    }
    let want = run(|tb| {
        let file = tb.run_dir().join("keepalived.conf");
        std::fs::write(&file, conf()).unwrap();
        let pid = |n: &str| tb.run_dir().join(n).to_string_lossy().into_owned();
        let proc = tb
            .spawn(
                Node::Director,
                &[
                    "keepalived",
                    "--check",
                    "--dont-fork",
                    "--log-console",
                    "--use-file",
                    &file.to_string_lossy(),
                    "--pid",
                    &pid("k.pid"),
                    "--checkers_pid",
                    &pid("c.pid"),
                    "--vrrp_pid",
                    &pid("v.pid"),
                ],
            )
            .expect("keepalived");
        Side::Keepalived {
            ns: tb.ns(Node::Director),
            _proc: proc,
        }
    });
    if let Ok(path) = std::env::var("XVS_ORACLE_RECORD") {
        let text = serde_json::to_string(&want).expect("strings serialize");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    Some(want)
}

#[test]
#[ignore = "needs root, IPVS and keepalived: cargo xtask matrix runs it in the VM"]
fn keepalived_and_xvsd_take_the_table_through_the_same_states() {
    let want = match std::env::var("XVS_ORACLE_REPLAY") {
        Ok(path) => {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            serde_json::from_str::<Vec<String>>(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
        }
        Err(_) => match keepalived_states() {
            Some(w) => w,
            None => return,
        },
    };
    let got = run(|tb| {
        let file = tb.run_dir().join("keepalived.conf");
        std::fs::write(&file, conf()).unwrap();
        Side::Xvs(Xvsd::start(
            tb,
            Node::Director,
            &["--config", &file.to_string_lossy()],
        ))
    });
    let steps = ["all up", "rs2 down", "rs2 back", "rs1 and rs2 down"];
    let mut diffs = Vec::new();
    for ((w, g), step) in want.iter().zip(&got).zip(steps) {
        if w != g {
            diffs.push(format!("{step}:\n--- keepalived + IPVS\n{w}--- xvsd\n{g}"));
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
