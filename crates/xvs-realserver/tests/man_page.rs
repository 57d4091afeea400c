//! man/xvs-realserver.8 renders without warnings and documents every
//! subcommand and every long option of the built binary's `--help` (each
//! subcommand's too), so a new one fails this test until the page names
//! it.

#[allow(dead_code)]
#[path = "../../../man/check.rs"]
mod check;

use std::collections::BTreeSet;

fn help(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xvs-realserver"))
        .args(args)
        .arg("--help")
        .output()
        .expect("running xvs-realserver --help");
    assert!(
        out.status.success(),
        "xvs-realserver {args:?} --help: {}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The subcommands of clap's `Commands:` section.
fn subcommands(top: &str) -> Vec<String> {
    top.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn xvs_realserver_page_renders_cleanly() {
    let (path, _) = check::page("xvs-realserver.8");
    check::renders_cleanly(&path);
}

#[test]
fn xvs_realserver_page_documents_every_command_and_option() {
    let top = help(&[]);
    let subs = subcommands(&top);
    for s in ["setup", "teardown", "status"] {
        assert!(subs.iter().any(|c| c == s), "{s} not among {subs:?}");
    }
    let mut wanted: BTreeSet<String> = check::long_options(&top);
    for s in subs.iter().filter(|s| *s != "help") {
        wanted.extend(check::long_options(&help(&[s])));
    }
    assert!(wanted.contains("vip"), "{wanted:?}");
    let (_, source) = check::page("xvs-realserver.8");
    check::assert_documents("xvs-realserver.8", &source, &wanted);
    let plain = check::plain(&source);
    let missing: Vec<&String> = subs
        .iter()
        .filter(|s| !plain.contains(&format!("xvs-realserver {s}")))
        .collect();
    assert!(
        missing.is_empty(),
        "man/xvs-realserver.8's SYNOPSIS lacks the commands {missing:?}"
    );
}
