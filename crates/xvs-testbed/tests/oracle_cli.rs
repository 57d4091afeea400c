//! The CLI oracle: every case of `oracle/ipvsadm-cli.txt` runs through
//! Debian's `ipvsadm` on the kernel's IPVS (a fresh network namespace per
//! case) and through `xvsadm` on `xvsd` (cleared and its timeouts reset
//! per case), both invoked as `ipvsadm`; every command's stdout, stderr
//! and exit status must agree (after `oracle::normalize`), except for the
//! cases in `oracle/known-differences.txt`, each with its reason. Needs
//! IPVS: it runs in the VM tier (`cargo xtask matrix`), and elsewhere
//! says so and passes.

use std::os::unix::fs::symlink;

use xvs_testbed::harness::{bin_path, Xvsd};
use xvs_testbed::oracle::{
    ipvs_available, normalize, parse_corpus, parse_known, run_case_in_ns, run_here, Case, Outcome,
};
use xvs_testbed::{Node, Testbed};

const CORPUS: &str = include_str!("../oracle/ipvsadm-cli.txt");
const KNOWN: &str = include_str!("../oracle/known-differences.txt");

/// IPVS's defaults for `--set` (tcp, tcpfin, udp).
const DEFAULT_TIMEOUTS: [&str; 4] = ["--set", "900", "120", "300"];

fn words(args: &[String]) -> Vec<String> {
    let mut v = vec!["ipvsadm".to_string()];
    v.extend(args.iter().cloned());
    v
}

/// The case through the kernel's IPVS, in a namespace of its own.
fn ipvs_side(tb: &Testbed, i: usize, case: &Case) -> Vec<Outcome> {
    let ns = format!("{}-ipvs{i}", tb.prefix());
    let dir = tb.run_dir().join(format!("ipvs{i}"));
    std::fs::create_dir_all(&dir).unwrap();
    tb_sh(&["ip", "netns", "add", &ns]);
    // IPVS refuses real servers whose address type it cannot tell, which
    // in a namespace without even `lo` is every one (no local table).
    tb_sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
    let out = run_case_in_ns(&ns, &dir, &case.cmds);
    tb_sh(&["ip", "netns", "del", &ns]);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn tb_sh(argv: &[&str]) {
    let st = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .status()
        .unwrap_or_else(|e| panic!("{}: {e}", argv.join(" ")));
    assert!(st.success(), "{}: {st}", argv.join(" "));
}

fn show(o: &Outcome) -> String {
    format!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        o.status, o.stdout, o.stderr
    )
}

/// IPVS's side from a recording (`XVS_ORACLE_REPLAY=FILE`, made in the VM
/// with `XVS_ORACLE_RECORD=FILE`): a developer's loop on a machine without
/// IPVS. One JSON object per command: case, index, stdout, stderr, status.
fn replayed() -> Option<std::collections::HashMap<(String, usize), Outcome>> {
    let path = std::env::var("XVS_ORACLE_REPLAY").ok()?;
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut m = std::collections::HashMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        m.insert(
            (s("case"), v["index"].as_u64().unwrap_or(0) as usize),
            Outcome {
                stdout: s("stdout"),
                stderr: s("stderr"),
                status: v["status"].as_i64().unwrap_or(-1) as i32,
            },
        );
    }
    Some(m)
}

fn record(case: &Case, out: &[Outcome]) {
    let Ok(path) = std::env::var("XVS_ORACLE_RECORD") else {
        return;
    };
    let mut text = String::new();
    for (i, o) in out.iter().enumerate() {
        let v = serde_json::json!({
            "case": case.name, "index": i, "stdout": o.stdout, "stderr": o.stderr,
            "status": o.status,
        });
        text += &format!("{v}\n");
    }
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
#[ignore = "needs root and IPVS: cargo xtask matrix runs it in the VM"]
fn ipvsadm_and_xvsadm_agree_on_the_cli_corpus() {
    let replay = replayed();
    if replay.is_none() {
        if let Err(why) = ipvs_available() {
            eprintln!("skipped: {why}");
            return;
        }
    }
    let cases = parse_corpus(CORPUS).expect("oracle/ipvsadm-cli.txt");
    let known = parse_known(KNOWN).expect("oracle/known-differences.txt");
    for (name, _) in &known {
        assert!(
            cases.iter().any(|c| &c.name == name),
            "known-differences.txt names a case the corpus lacks: {name}"
        );
    }
    let tb = Testbed::pair().expect("pair testbed");
    let xvsd = Xvsd::start(&tb, Node::Director, &["--interfaces", "eth0"]);
    // xvsadm as `ipvsadm`, first on PATH: argv[0] is the same on both sides.
    let dir = tb.run_dir().join("as-ipvsadm");
    std::fs::create_dir_all(&dir).unwrap();
    symlink(bin_path("xvsadm"), dir.join("ipvsadm")).unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // xvsadm speaks to xvsd over a unix socket: no namespace needed.
    let env = [("PATH", path.as_str()), ("XVS_SOCKET", xvsd.sock())];

    let (mut same, mut diffs, mut known_seen) = (0, Vec::new(), Vec::new());
    for (i, case) in cases.iter().enumerate() {
        let want = match &replay {
            Some(r) => (0..case.cmds.len())
                .map(|k| {
                    r.get(&(case.name.clone(), k))
                        .cloned()
                        .unwrap_or_else(|| panic!("{}: no recording of command {k}", case.name))
                })
                .collect(),
            None => ipvs_side(&tb, i, case),
        };
        record(case, &want);
        for reset in [&["-C"][..], &DEFAULT_TIMEOUTS[..]] {
            let args: Vec<String> = reset.iter().map(|s| s.to_string()).collect();
            let o = run_here(&env, &words(&args), None);
            assert_eq!(o.status, 0, "resetting xvsd: {}", show(&o));
        }
        let mut first_diff = None;
        for (cmd, w) in case.cmds.iter().zip(&want) {
            let got = run_here(&env, &words(&cmd.args), cmd.stdin.as_deref());
            let norm = |o: &Outcome| (normalize(&o.stdout), normalize(&o.stderr), o.status);
            if first_diff.is_none() && norm(&got) != norm(w) {
                first_diff = Some(format!(
                    "$ ipvsadm {}\n=== IPVS: {}=== xvs: {}",
                    cmd.line,
                    show(w),
                    show(&got)
                ));
            }
        }
        match (first_diff, known.iter().find(|(n, _)| *n == case.name)) {
            (None, None) => same += 1,
            (None, Some(_)) => diffs.push(format!(
                "case {} (line {}) is listed as a known difference but agrees: \
                 take it off known-differences.txt",
                case.name, case.line
            )),
            (Some(_), Some((_, why))) => known_seen.push(format!("{}: {why}", case.name)),
            (Some(d), None) => {
                let d = format!("case {} (line {}):\n{d}", case.name, case.line);
                // As they come: a slow run (emulated) shows its progress.
                eprintln!("{d}\n");
                diffs.push(d);
            }
        }
    }
    println!(
        "{} cases: {same} identical, {} known differences, {} unexpected",
        cases.len(),
        known_seen.len(),
        diffs.len()
    );
    for k in &known_seen {
        println!("  known: {k}");
    }
    assert!(
        diffs.is_empty(),
        "{} case(s) differ from ipvsadm on IPVS:\n\n{}",
        diffs.len(),
        diffs.join("\n\n")
    );
}
