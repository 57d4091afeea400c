//! Running external programs: `MISC_CHECK` scripts and the `notify_up` /
//! `notify_down` scripts, the way keepalived runs them.
//!
//! keepalived does not hand a script line to a shell: it splits the line
//! itself (`alloc_strvec_quoted` in `lib/parser.c`) and `execve`s the words
//! (`system_call_script` in `keepalived/core/notify.c`). Only a file that
//! cannot be executed directly (no `#!` line, so `execve` fails with
//! `ENOEXEC`) is run through `/bin/sh -c` with its words single-quoted.
//! The child gets its own process group, `IFS`, `LD_PRELOAD` and
//! `LD_LIBRARY_PATH` removed from its environment, and `/dev/null` as
//! standard input and output. On timeout the whole group gets SIGTERM, then
//! SIGKILL 2 s later (`misc_check_child_thread`).

use std::fmt;
use std::time::Duration;

use tokio::process::Command;

/// How long a group has after SIGTERM before SIGKILL (keepalived: 2 s).
const TERM_GRACE: Duration = Duration::from_secs(2);

/// Split a script line into words as keepalived does: words are separated
/// by blanks; `'…'` and `"…"` group (the quotes are removed, and may appear
/// inside a word: `a"b c"d` is `ab cd`); a backslash keeps itself and the
/// next character (`\ ` does not end a word). An unterminated quote or a
/// trailing backslash is an error.
pub fn split_command(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(&c) = chars.peek() {
            match (quote, c) {
                (_, '\\') => {
                    chars.next();
                    let n = chars
                        .next()
                        .ok_or_else(|| format!("missing character after '\\' in {line:?}"))?;
                    word.push('\\');
                    word.push(n);
                }
                (Some(q), c) if c == q => {
                    chars.next();
                    quote = None;
                }
                (Some(_), c) => {
                    chars.next();
                    word.push(c);
                }
                (None, '"' | '\'') => {
                    chars.next();
                    quote = Some(c);
                }
                (None, c) if c.is_ascii_whitespace() => break,
                (None, c) => {
                    chars.next();
                    word.push(c);
                }
            }
        }
        if let Some(q) = quote {
            return Err(format!("missing terminating {q} in {line:?}"));
        }
        words.push(word);
    }
    Ok(words)
}

/// keepalived's `cmd_str`: the words single-quoted for `/bin/sh -c`
/// (a first word starting with `<` or `>` is left as is).
pub fn shell_quote(argv: &[String]) -> String {
    let mut out = String::new();
    for (i, a) in argv.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if i == 0 && (a.starts_with('<') || a.starts_with('>')) {
            out.push_str(a);
            continue;
        }
        out.push('\'');
        out.push_str(&a.replace('\'', r"'\''"));
        out.push('\'');
    }
    out
}

/// How a script run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptStatus {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by this signal (not by us).
    Signaled(i32),
    /// It ran past its timeout and was terminated.
    TimedOut,
    /// It could not be started.
    SpawnFailed(String),
}

impl fmt::Display for ScriptStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScriptStatus::Exited(c) => write!(f, "exited with status {c}"),
            ScriptStatus::Signaled(s) => write!(f, "killed by signal {s}"),
            ScriptStatus::TimedOut => f.write_str("timed out"),
            ScriptStatus::SpawnFailed(e) => write!(f, "could not be started: {e}"),
        }
    }
}

/// A user and group to run a script as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Resolve `user [group]` (names or numbers) through `/etc/passwd` and
/// `/etc/group`, as keepalived's `set_script_uid_gid` does.
pub fn resolve_user(user: &str, group: Option<&str>) -> Result<RunAs, String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let mut found = None;
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 4 && (f[0] == user || f[2] == user) {
            if let (Ok(uid), Ok(gid)) = (f[2].parse::<u32>(), f[3].parse::<u32>()) {
                found = Some(RunAs { uid, gid });
                break;
            }
        }
    }
    let mut run_as = match (found, user.parse::<u32>()) {
        (Some(r), _) => r,
        (None, Ok(uid)) => RunAs { uid, gid: uid },
        (None, Err(_)) => return Err(format!("unknown user {user:?}")),
    };
    if let Some(g) = group {
        let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
        let gid = groups
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() >= 3 && (f[0] == g || f[2] == g))
            .and_then(|f| f[2].parse::<u32>().ok())
            .or_else(|| g.parse().ok())
            .ok_or_else(|| format!("unknown group {g:?}"))?;
        run_as.gid = gid;
    }
    Ok(run_as)
}

fn command(program: &str, args: &[String], run_as: Option<RunAs>) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .env_remove("IFS")
        .env_remove("LD_PRELOAD")
        .env_remove("LD_LIBRARY_PATH")
        .process_group(0)
        .kill_on_drop(true);
    if let Some(r) = run_as {
        cmd.uid(r.uid).gid(r.gid);
    }
    cmd
}

/// Kills the child's process group if the run is abandoned (the future is
/// dropped, e.g. when its checker is removed).
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            signal_group(pid, libc::SIGKILL);
        }
    }
}

fn signal_group(pid: i32, sig: i32) {
    if pid > 0 {
        // SAFETY: kill(2) has no memory-safety preconditions; a negative pid
        // addresses the process group the child leads (process_group(0)).
        unsafe {
            libc::kill(-pid, sig);
        }
    }
}

/// Run `argv` to completion or until `timeout`, never blocking the caller's
/// thread. On timeout the process group gets SIGTERM, then SIGKILL 2 s
/// later if it is still there; the result is then [`ScriptStatus::TimedOut`].
pub async fn run_script(argv: &[String], timeout: Duration, run_as: Option<RunAs>) -> ScriptStatus {
    let Some(program) = argv.first() else {
        return ScriptStatus::SpawnFailed("empty command".into());
    };
    let child = match command(program, &argv[1..], run_as).spawn() {
        Ok(c) => Ok(c),
        Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => {
            // No #! line: keepalived falls back to system(), i.e. /bin/sh -c.
            command("/bin/sh", &["-c".to_string(), shell_quote(argv)], run_as).spawn()
        }
        Err(e) => Err(e),
    };
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return ScriptStatus::SpawnFailed(format!("{program}: {e}")),
    };
    let pid = child.id().map(|p| p as i32);
    let mut guard = GroupGuard(pid);
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return ScriptStatus::SpawnFailed(format!("{program}: wait: {e}")),
        Err(_) => {
            if let Some(pid) = pid {
                signal_group(pid, libc::SIGTERM);
            }
            if tokio::time::timeout(TERM_GRACE, child.wait())
                .await
                .is_err()
            {
                if let Some(pid) = pid {
                    signal_group(pid, libc::SIGKILL);
                }
                let _ = child.wait().await;
            } else if let Some(pid) = pid {
                // Children of a script that obeyed SIGTERM go too.
                signal_group(pid, libc::SIGKILL);
            }
            guard.0 = None;
            return ScriptStatus::TimedOut;
        }
    };
    guard.0 = None;
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => ScriptStatus::Exited(c),
        (None, Some(s)) => ScriptStatus::Signaled(s),
        (None, None) => ScriptStatus::Exited(-1),
    }
}

/// Run a `notify_up`/`notify_down` (or any keepalived-style) script line in
/// the background: split as keepalived splits it, bounded by `timeout`,
/// logged when it ends. Never blocks; must be called inside a tokio
/// runtime. The returned handle may be awaited or dropped.
pub fn spawn_notify(line: &str, timeout: Duration) -> tokio::task::JoinHandle<ScriptStatus> {
    let line = line.to_string();
    tokio::spawn(async move {
        let argv = match split_command(&line) {
            Ok(a) if !a.is_empty() => a,
            Ok(_) => return ScriptStatus::SpawnFailed("empty command".into()),
            Err(e) => return ScriptStatus::SpawnFailed(e),
        };
        let st = run_script(&argv, timeout, None).await;
        match &st {
            ScriptStatus::Exited(0) => log::debug!("notify script {line:?} {st}"),
            _ => log::warn!("notify script {line:?} {st}"),
        }
        st
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn split_like_keepalived() {
        assert_eq!(split_command("  /bin/true  ").unwrap(), s(&["/bin/true"]));
        assert_eq!(
            split_command("/x.sh 'a b' \"c d\" e").unwrap(),
            s(&["/x.sh", "a b", "c d", "e"])
        );
        assert_eq!(split_command("a\"b c\"d").unwrap(), s(&["ab cd"]));
        assert_eq!(split_command(r"a\ b c").unwrap(), s(&[r"a\ b", "c"]));
        assert_eq!(split_command("'it''s'").unwrap(), s(&["its"]));
        assert_eq!(split_command("a ''").unwrap(), s(&["a", ""]));
        assert!(split_command("'open").is_err());
        assert!(split_command("x\\").is_err());
        assert!(split_command("   ").unwrap().is_empty());
    }

    #[test]
    fn quote_for_shell() {
        assert_eq!(shell_quote(&s(&["/x", "it's"])), r"'/x' 'it'\''s'");
        assert_eq!(shell_quote(&s(&[">/tmp/f"])), ">/tmp/f");
    }

    #[test]
    fn resolve_root() {
        assert_eq!(
            resolve_user("root", None).unwrap(),
            RunAs { uid: 0, gid: 0 }
        );
        assert_eq!(
            resolve_user("0", Some("0")).unwrap(),
            RunAs { uid: 0, gid: 0 }
        );
        assert!(resolve_user("no-such-user-xvs", None).is_err());
    }
}
