//! What the guest runs: the per-run files stage 2 reads, and the shell
//! quoting of the command.

use std::path::Path;

use super::KernelTree;

/// `PATH` in the guest: the host's tools, nothing from the caller's
/// environment.
const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Stage 2's settings for this kernel.
pub(super) fn params(tree: &KernelTree) -> String {
    format!(
        "KVER={}\nMODULES={}\nVM_HOSTNAME=xvs-vm\n",
        shell_quote(&tree.kver),
        shell_quote(&tree.modules.to_string_lossy())
    )
}

/// Whether the guest gets the host's environment variable `name`.
fn passed_through(name: &str) -> bool {
    (name.starts_with("XVS_") || name.starts_with("RUST_") || name == "CARGO_TERM_COLOR")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The script the guest runs (with `env -i /bin/sh`): a clean environment
/// plus the passed-through variables, `cd` to `cwd`, then the command.
pub(super) fn cmd_script(argv: &[String], cwd: &Path, env: &[(String, String)]) -> String {
    let mut s = String::from("# written by cargo xtask vm\n");
    // The host's Rust toolchain too (the guest sees the host's root), so
    // `cargo` and xtask's own checks work inside.
    let cargo_dir = env
        .iter()
        .find(|(k, _)| k == "CARGO")
        .and_then(|(_, v)| Path::new(v).parent())
        .map(|d| format!(":{}", shell_quote(&d.to_string_lossy())))
        .unwrap_or_default();
    s +=
        &format!("export PATH={GUEST_PATH}{cargo_dir}\nexport HOME=/root USER=root LOGNAME=root\n");
    let mut pass: Vec<&(String, String)> = env.iter().filter(|(k, _)| passed_through(k)).collect();
    pass.sort();
    for (k, v) in pass {
        s += &format!("export {k}={}\n", shell_quote(v));
    }
    s += &format!("cd {} || exit 125\n", shell_quote(&cwd.to_string_lossy()));
    s += &command_line(argv);
    s.push('\n');
    s
}

/// `argv` as one shell command line that runs exactly these words.
pub(super) fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `s` as one shell word: as is when it has only harmless characters,
/// single-quoted otherwise.
pub(super) fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc-1.2_x/y=z:w,@%+"), "abc-1.2_x/y=z:w,@%+");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME;`x`\n\"*\""), "'$HOME;`x`\n\"*\"'");
        assert_eq!(
            command_line(&args(&["sh", "-c", "echo err >&2; exit 3"])),
            "sh -c 'echo err >&2; exit 3'"
        );
    }

    /// The quoted line, run by a real sh, gives back the same words.
    #[test]
    fn quoting_round_trips_through_sh() {
        let words = args(&[
            "printf", "[%s]\n", "a b", "it's", "", "$x", "\\n", "*", "'\"'",
        ]);
        let out = std::process::Command::new("sh")
            .args(["-c", &command_line(&words)])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "[a b]\n[it's]\n[]\n[$x]\n[\\n]\n[*]\n['\"']\n"
        );
    }

    #[test]
    fn script_environment() {
        let env = vec![
            ("XVS_TEST_ATTACH".to_string(), "tc".to_string()),
            ("RUST_LOG".to_string(), "debug x".to_string()),
            ("CARGO_TERM_COLOR".to_string(), "always".to_string()),
            ("RUSTUP_HOME".to_string(), "/r".to_string()),
            ("PATH".to_string(), "/evil".to_string()),
            ("XVS_BAD-NAME".to_string(), "1".to_string()),
        ];
        let s = cmd_script(&args(&["true"]), Path::new("/work/main dir"), &env);
        assert!(s.contains("export XVS_TEST_ATTACH=tc\n"), "{s}");
        assert!(s.contains("export RUST_LOG='debug x'\n"), "{s}");
        assert!(s.contains("export CARGO_TERM_COLOR=always\n"), "{s}");
        assert!(!s.contains("RUSTUP_HOME") && !s.contains("/evil") && !s.contains("BAD"));
        assert!(s.contains(&format!("export PATH={GUEST_PATH}\n")));
        let with_cargo = cmd_script(
            &["true".to_string()],
            Path::new("/"),
            &[("CARGO".to_string(), "/root/.cargo/bin/cargo".to_string())],
        );
        assert!(with_cargo.contains(&format!("export PATH={GUEST_PATH}:/root/.cargo/bin\n")));
        assert!(
            s.ends_with("cd '/work/main dir' || exit 125\ntrue\n"),
            "{s}"
        );
    }
}
