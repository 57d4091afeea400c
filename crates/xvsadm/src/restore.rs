//! `-R`: ipvsadm's restore, line by line as `ipvsadm -R` does it
//! (`restore_table` in ipvsadm.c): every line is a command of its own. A
//! change xvsd refuses prints its error and the restore goes on; so does a
//! popt error ("unknown option"); a `fail()` error (exit 2) or a "Try ..."
//! (exit 255) stops it, the lines before it staying applied; listings
//! print where they stand. The exit status is the last line's.
//!
//! Consecutive changes go to xvsd in one `Sequence` request (each applied
//! on its own, as separate commands would be, with one sync): a saved
//! table of 100 000 lines is one round trip, not 100 000. `--start-daemon`
//! and `--stop-daemon` lines go on their own, in their place; a refused
//! one prints its error and the restore goes on, as a refused change.

use xvs_core::api::{Request, Response};
use xvs_core::ipvsadm::{self, Command, ParseError, EXIT_ERROR};
use xvs_core::names::FileNames;

use crate::{error_text, plain_text, Session};

/// Restores `text`; returns the exit status.
pub(crate) fn restore(text: &str, s: &mut Session<'_>) -> i32 {
    let prog = s.prog.clone();
    let names = FileNames::system();
    let mut pending: Vec<(Command, Request)> = Vec::new();
    let mut last = 0;
    for (_, argv) in ipvsadm::restore_lines(text, &prog) {
        let parsed = ipvsadm::parse_restore_line(&argv, &names);
        if let Ok(cmd) = &parsed {
            if let Some(req) = cmd.request() {
                if !is_daemon_command(cmd) {
                    pending.push((cmd.clone(), req));
                    continue;
                }
            }
        }
        // Whatever prints must come after the changes before it.
        if let Err(code) = flush(&mut pending, s, &mut last) {
            return code;
        }
        match parsed {
            Ok(Command::Help) => {
                s.io.print(&ipvsadm::usage_text(&prog));
                return 0;
            }
            Ok(Command::Version) => {
                s.io.print(&ipvsadm::version_text());
                return 0;
            }
            Ok(cmd) if is_daemon_command(&cmd) => last = s.execute(&cmd),
            Ok(cmd) => {
                // A listing: a failed one ends ipvsadm there (exit 1).
                let code = s.execute(&cmd);
                if code != 0 {
                    return code;
                }
                last = 0;
            }
            Err(e) => {
                s.io.eprint(&format!("{e}\n"));
                match e {
                    ParseError::Fail(_) | ParseError::TryHelp(_) => return e.exit_code(),
                    ParseError::Popt { .. } | ParseError::Unsupported(_) => last = EXIT_ERROR,
                }
            }
        }
    }
    if let Err(code) = flush(&mut pending, s, &mut last) {
        return code;
    }
    last
}

/// Sync-daemon commands are not table changes: xvsd takes them one by
/// one, outside `Sequence`s.
fn is_daemon_command(cmd: &Command) -> bool {
    matches!(cmd, Command::StartDaemon(_) | Command::StopDaemon(_))
}

/// Sends the pending changes as one `Sequence`, prints the errors of the
/// refused ones in their place; `last` becomes the last one's status.
/// `Err`: xvsd could not be asked (the restore ends with that status).
fn flush(
    pending: &mut Vec<(Command, Request)>,
    s: &mut Session<'_>,
    last: &mut i32,
) -> Result<(), i32> {
    if pending.is_empty() {
        return Ok(());
    }
    let (cmds, requests): (Vec<Command>, Vec<Request>) = pending.drain(..).unzip();
    match s.call(&Request::Sequence { requests }) {
        Some(Response::Sequence { results }) if results.len() == cmds.len() => {
            for (cmd, r) in cmds.iter().zip(results) {
                match r {
                    None => *last = 0,
                    Some(e) => {
                        s.io.eprint(&format!("{}\n", error_text(cmd, &e)));
                        *last = EXIT_ERROR;
                    }
                }
            }
            Ok(())
        }
        Some(Response::Error { error }) => {
            s.io.eprint(&format!("{}\n", plain_text(&error)));
            Err(EXIT_ERROR)
        }
        Some(_) => Err(s.unexpected()),
        None => Err(EXIT_ERROR),
    }
}
