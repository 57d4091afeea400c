//! The differential oracle's plumbing: the kernel's IPVS and Debian's
//! `ipvsadm` (present in the VM tier, `cargo xtask vm`) as the reference
//! that xvs is compared with.
//!
//! * A CLI corpus (`oracle/ipvsadm-cli.txt`): cases of `ipvsadm` argument
//!   lines, each run on a fresh table through `ipvsadm` on IPVS (a network
//!   namespace of its own) and through `xvsadm` on `xvsd`, both invoked as
//!   `ipvsadm`; stdout, stderr and exit status must agree after
//!   [`normalize`], except for the cases listed with a reason in
//!   `oracle/known-differences.txt`.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::{run, Node, Result, Testbed, Topology};

/// The director's address in [`Testbed::pair`].
pub const PAIR_DIRECTOR_IP: &str = "192.0.2.1";
/// The client's address in [`Testbed::pair`].
pub const PAIR_CLIENT_IP: &str = "192.0.2.2";

impl Testbed {
    /// The smallest testbed: a client and a director on one veth link
    /// (`eth0` both sides, [`PAIR_CLIENT_IP`] and [`PAIR_DIRECTOR_IP`]),
    /// for what needs a daemon but little traffic (the CLI oracle).
    pub fn pair() -> Result<Testbed> {
        let mut tb = Testbed::empty()?;
        tb.topology = Topology::Selftest;
        for node in [Node::Client, Node::Director] {
            tb.add_ns(node)?;
        }
        let (cli, dir) = (tb.ns(Node::Client), tb.ns(Node::Director));
        run(&[
            "ip", "link", "add", "eth0", "netns", &cli, "type", "veth", "peer", "name", "eth0",
            "netns", &dir,
        ])?;
        tb.addr(Node::Client, "eth0", &format!("{PAIR_CLIENT_IP}/24"))?;
        tb.addr(Node::Director, "eth0", &format!("{PAIR_DIRECTOR_IP}/24"))?;
        Ok(tb)
    }
}

/// One `ipvsadm` invocation of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    /// The line as written (for reports).
    pub line: String,
    /// Its words.
    pub args: Vec<String>,
    /// What it reads on stdin (`<<EOF` ... `EOF`).
    pub stdin: Option<String>,
}

/// A case: commands run in order on a fresh table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Its name (`=== name`).
    pub name: String,
    /// Line of the corpus where it starts.
    pub line: usize,
    /// Its commands.
    pub cmds: Vec<Cmd>,
}

/// What one command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Its exit status (-1: killed by a signal).
    pub status: i32,
}

/// Parses a corpus (format in `oracle/ipvsadm-cli.txt`); errors name the
/// line.
pub fn parse_corpus(text: &str) -> Result<Vec<Case>, String> {
    let mut cases: Vec<Case> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix("=== ") {
            let name = name.trim();
            if name.is_empty() || cases.iter().any(|c| c.name == name) {
                return Err(format!("line {n}: missing or repeated case name {name:?}"));
            }
            cases.push(Case {
                name: name.to_string(),
                line: n,
                cmds: Vec::new(),
            });
            continue;
        }
        let Some(case) = cases.last_mut() else {
            return Err(format!("line {n}: a command before the first `=== name`"));
        };
        let (words, heredoc) = match line.strip_suffix("<<EOF") {
            Some(head) => (head.trim_end(), true),
            None => (line, false),
        };
        let args = shlex::split(words).ok_or_else(|| format!("line {n}: unbalanced quotes"))?;
        let stdin = if heredoc {
            let mut body = String::new();
            loop {
                match lines.next() {
                    Some((_, "EOF")) => break Some(body),
                    Some((_, l)) => {
                        body.push_str(l);
                        body.push('\n');
                    }
                    None => return Err(format!("line {n}: `<<EOF` without its `EOF`")),
                }
            }
        } else {
            None
        };
        case.cmds.push(Cmd {
            line: line.to_string(),
            args,
            stdin,
        });
    }
    Ok(cases)
}

/// Parses `oracle/known-differences.txt`: `case-name: reason` lines.
pub fn parse_known(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, why) = line
            .split_once(':')
            .ok_or_else(|| format!("line {}: expected `case-name: reason`", i + 1))?;
        if why.trim().is_empty() {
            return Err(format!(
                "line {}: a known difference needs its reason",
                i + 1
            ));
        }
        out.push((name.trim().to_string(), why.trim().to_string()));
    }
    Ok(out)
}

/// What may differ without being a difference: the connection table size
/// in `-L`'s header (IPVS prints its hash table's, xvs its table's
/// capacity).
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("(size=") {
        out.push_str(&rest[..i + 6]);
        rest = &rest[i + 6..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        out.push('N');
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// Runs `argv` (a program found on `PATH`, so its `argv[0]` is its bare
/// name) in network namespace `ns` with `env` added, feeding `stdin`.
pub fn run_in_ns(ns: &str, env: &[(&str, &str)], argv: &[String], stdin: Option<&str>) -> Outcome {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, "env"]);
    for (k, v) in env {
        c.arg(format!("{k}={v}"));
    }
    c.args(argv);
    run_command(c, stdin)
}

fn run_command(mut c: Command, stdin: Option<&str>) -> Outcome {
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) => {
            return Outcome {
                stdout: String::new(),
                stderr: format!("cannot run ip netns exec: {e}"),
                status: -2,
            }
        }
    };
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // ipvsadm may stop reading early (a bad line): a broken pipe is
        // its answer, not ours.
        let _ = pipe.write_all(text.as_bytes());
    }
    match child.wait_with_output() {
        Ok(o) => Outcome {
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            status: o.status.code().unwrap_or(-1),
        },
        Err(e) => Outcome {
            stdout: String::new(),
            stderr: format!("waiting for ip netns exec: {e}"),
            status: -2,
        },
    }
}

/// Runs a case's commands (`ipvsadm` found on `PATH`, argv[0] its bare
/// name) in network namespace `ns` in one go: a script writes each
/// command's output to files in `dir` (one `ip netns exec` per case, not
/// per command: the VM tier runs under emulation).
pub fn run_case_in_ns(ns: &str, dir: &std::path::Path, cmds: &[Cmd]) -> Vec<Outcome> {
    let mut script = String::from("cd \"$1\" || exit 125\n");
    for (i, c) in cmds.iter().enumerate() {
        let mut words = vec!["ipvsadm".to_string()];
        for a in &c.args {
            words.push(shlex::try_quote(a).map_or_else(|_| "''".into(), |q| q.into_owned()));
        }
        if let Some(text) = &c.stdin {
            let _ = std::fs::write(dir.join(format!("in.{i}")), text);
        } else {
            let _ = std::fs::write(dir.join(format!("in.{i}")), "");
        }
        script += &format!(
            "{} <in.{i} >out.{i} 2>err.{i}; echo $? >rc.{i}\n",
            words.join(" ")
        );
    }
    let path = dir.join("case.sh");
    let _ = std::fs::write(&path, script);
    let dir_s = dir.to_string_lossy().into_owned();
    let argv = ["sh".to_string(), path.to_string_lossy().into_owned(), dir_s];
    let ran = run_in_ns(ns, &[], &argv, None);
    (0..cmds.len())
        .map(|i| {
            let read = |f: &str| std::fs::read_to_string(dir.join(format!("{f}.{i}")));
            match read("rc") {
                Ok(rc) => Outcome {
                    stdout: read("out").unwrap_or_default(),
                    stderr: read("err").unwrap_or_default(),
                    status: rc.trim().parse().unwrap_or(-3),
                },
                Err(_) => Outcome {
                    stdout: String::new(),
                    stderr: format!("the case's script stopped: {}", ran.stderr),
                    status: -3,
                },
            }
        })
        .collect()
}

/// Runs `argv` (found on `PATH`) in this namespace with `env` added.
pub fn run_here(env: &[(&str, &str)], argv: &[String], stdin: Option<&str>) -> Outcome {
    let mut c = Command::new("env");
    for (k, v) in env {
        c.arg(format!("{k}={v}"));
    }
    c.args(argv);
    run_command(c, stdin)
}

/// Whether the kernel's IPVS and Debian's `ipvsadm` are here (the VM
/// tier); `Err` says what is missing.
pub fn ipvs_available() -> Result<(), String> {
    let ok = |argv: &[&str]| {
        Command::new(argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(&["modprobe", "ip_vs"]) {
        return Err("no IPVS in this kernel (modprobe ip_vs failed)".into());
    }
    if !ok(&["ipvsadm", "-v"]) {
        return Err("no ipvsadm on this machine".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_parses_cases_words_and_heredocs_and_names_bad_lines() {
        let text = "# c\n=== one\n-A -t 192.0.2.10:80 -s rr\n\n-L -n\n=== two\n-R <<EOF\n-A -t 192.0.2.10:80\n  -x\nEOF\n-a -t 'a b' \"c d\"\n";
        let cases = parse_corpus(text).unwrap();
        assert_eq!(cases.len(), 2);
        assert_eq!((cases[0].name.as_str(), cases[0].line), ("one", 2));
        assert_eq!(
            cases[0].cmds[0].args,
            ["-A", "-t", "192.0.2.10:80", "-s", "rr"]
        );
        assert_eq!(cases[1].cmds[0].args, ["-R"]);
        assert_eq!(
            cases[1].cmds[0].stdin.as_deref(),
            Some("-A -t 192.0.2.10:80\n  -x\n")
        );
        assert_eq!(cases[1].cmds[1].args, ["-a", "-t", "a b", "c d"]);
        assert!(parse_corpus("-L\n").unwrap_err().starts_with("line 1:"));
        assert!(parse_corpus("=== a\n=== a\n")
            .unwrap_err()
            .contains("repeated"));
        assert!(parse_corpus("=== a\n-R <<EOF\nx\n")
            .unwrap_err()
            .contains("EOF"));
        assert!(parse_corpus("=== a\n-a 'x\n")
            .unwrap_err()
            .contains("quotes"));
    }

    #[test]
    fn known_differences_need_a_reason() {
        let k = parse_known("# x\nfwmark-basic: fwmark services (#15)\n").unwrap();
        assert_eq!(k, [("fwmark-basic".into(), "fwmark services (#15)".into())]);
        assert!(parse_known("a\n").is_err());
        assert!(parse_known("a:  \n").is_err());
    }

    #[test]
    fn only_the_table_size_is_normalized() {
        assert_eq!(
            normalize("IP Virtual Server version 1.2.1 (size=4096)\nTCP 1\n"),
            "IP Virtual Server version 1.2.1 (size=N)\nTCP 1\n"
        );
        assert_eq!(normalize("(size=65536) (size=)"), "(size=N) (size=N)");
        assert_eq!(normalize("size=4096"), "size=4096");
    }
}
