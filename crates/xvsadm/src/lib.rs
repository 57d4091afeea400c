//! xvsadm: the ipvsadm command line, talking to xvsd instead of the kernel.
//!
//! `xvsadm [--socket PATH] <ipvsadm arguments>`. The socket is `--socket`
//! (only as the first argument), else `$XVS_SOCKET`, else
//! [`xvs_core::api::DEFAULT_SOCKET`]. Arguments are parsed with
//! [`xvs_core::ipvsadm`] and output is printed with [`xvs_core::format`],
//! so text and exit statuses are ipvsadm's:
//!
//! * 0: success (also `-h`, `-v`);
//! * 2: ipvsadm's `fail(2, ...)` parse errors, and xvsd unreachable (as
//!   ipvsadm's "Can't initialize ipvs" exits 2);
//! * 255: popt errors / "Try ...", a change refused by xvsd (ipvsadm returns
//!   -1), and operations xvs does not support;
//! * 1: a listing failed (ipvsadm's `exit(1)` in its list functions, e.g.
//!   "No such service" for `-L -t`), or xvsd answered nonsense.

pub mod client;

use client::Client;
use std::io::{Read, Write};
use std::path::Path;
use xvs_core::api::{ApiError, ErrorKind, Request, Response, DEFAULT_SOCKET};
use xvs_core::format;
use xvs_core::ipvsadm::{self, Command, ListOptions, ListTarget, EXIT_ERROR};
use xvs_core::names::{FileNames, NoNames, Resolver};

/// Exit status when xvsd cannot be reached.
pub const EXIT_NO_DAEMON: i32 = 2;

/// Exit status of a failed listing.
pub const EXIT_LIST: i32 = 1;

/// Splits a leading `--socket PATH` / `--socket=PATH` off the arguments.
/// Returns the socket (if given) and argv for ipvsadm (program name first).
pub fn split_socket(args: &[String]) -> Result<(Option<String>, Vec<String>), String> {
    let prog = args
        .first()
        .cloned()
        .unwrap_or_else(|| "xvsadm".to_string());
    let rest = args.get(1..).unwrap_or(&[]);
    match rest.first().map(String::as_str) {
        Some("--socket") => match rest.get(1) {
            Some(p) => Ok((
                Some(p.clone()),
                std::iter::once(prog)
                    .chain(rest[2..].iter().cloned())
                    .collect(),
            )),
            None => Err(format!("{prog}: --socket requires a path")),
        },
        Some(a) if a.starts_with("--socket=") => Ok((
            Some(a["--socket=".len()..].to_string()),
            std::iter::once(prog)
                .chain(rest[1..].iter().cloned())
                .collect(),
        )),
        _ => Ok((None, args.to_vec())),
    }
}

/// Strips Rust's " (os error N)" so the text reads like `strerror`.
fn io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// ipvsadm's `ipvs_strerror` text for an error xvsd returned for `cmd`:
/// the same errno reads differently per operation (ESRCH is "Service not
/// defined" for real-server commands, "No such service" otherwise).
pub fn error_text(cmd: &Command, e: &ApiError) -> String {
    let dest_cmd = matches!(
        cmd,
        Command::AddDest { .. } | Command::EditDest { .. } | Command::DelDest { .. }
    );
    match e.kind {
        ErrorKind::NoSuchService | ErrorKind::ServiceNotDefined if dest_cmd => {
            ErrorKind::ServiceNotDefined.ipvsadm_message().to_string()
        }
        ErrorKind::NoSuchService | ErrorKind::ServiceNotDefined => {
            ErrorKind::NoSuchService.ipvsadm_message().to_string()
        }
        _ => e.message.clone(),
    }
}

struct Io<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

impl Io<'_> {
    fn print(&mut self, s: &str) {
        let _ = self.out.write_all(s.as_bytes());
    }
    fn eprint(&mut self, s: &str) {
        let _ = self.err.write_all(s.as_bytes());
    }
}

/// Runs xvsadm with `args` (program name first) and returns the exit status.
pub fn run(
    args: &[String],
    env_socket: Option<&str>,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let mut io = Io { out, err };
    let (socket, argv) = match split_socket(args) {
        Ok(v) => v,
        Err(m) => {
            io.eprint(&format!("{m}\n"));
            return ipvsadm::EXIT_FAIL;
        }
    };
    let socket = socket
        .or_else(|| env_socket.map(str::to_string))
        .unwrap_or_else(|| DEFAULT_SOCKET.to_string());
    let prog = argv
        .first()
        .cloned()
        .unwrap_or_else(|| "xvsadm".to_string());

    // No arguments lists the table, as ipvsadm does.
    let cmd = if argv.len() <= 1 {
        Command::List(ListOptions::default())
    } else {
        match ipvsadm::parse(&argv) {
            Ok(c) => c,
            Err(e) => {
                io.eprint(&format!("{e}\n"));
                return e.exit_code();
            }
        }
    };
    match cmd {
        Command::Help => {
            io.print(&ipvsadm::usage_text(&prog));
            return 0;
        }
        Command::Version => {
            io.print(&ipvsadm::version_text());
            return 0;
        }
        _ => {}
    }

    // Parse -R input completely before touching the daemon: a bad line
    // changes nothing.
    let restore = if cmd == Command::Restore {
        let mut text = String::new();
        if let Err(e) = stdin.read_to_string(&mut text) {
            io.eprint(&format!("{prog}: reading stdin: {}\n", io_text(&e)));
            return ipvsadm::EXIT_FAIL;
        }
        match ipvsadm::parse_restore_with(&text, &prog, &FileNames::system()) {
            Ok(cmds) => Some(cmds),
            Err(e) => {
                io.eprint(&format!("{e}\n"));
                return e.error.exit_code();
            }
        }
    } else {
        None
    };

    let mut client = match Client::connect(Path::new(&socket)) {
        Ok(c) => c,
        Err(e) => {
            io.eprint(&format!(
                "{prog}: cannot connect to xvsd at {socket}: {} (is xvsd running?)\n",
                io_text(&e)
            ));
            return EXIT_NO_DAEMON;
        }
    };
    let mut call = |req: &Request, io: &mut Io| -> Option<Response> {
        match client.call(req) {
            Ok(r) => Some(r),
            Err(e) => {
                io.eprint(&format!("{prog}: {e:#}\n"));
                None
            }
        }
    };
    let unexpected = |io: &mut Io| {
        io.eprint(&format!("{prog}: unexpected response from xvsd\n"));
        EXIT_LIST
    };

    if let Some(cmds) = restore {
        let requests = cmds.iter().filter_map(Command::request).collect();
        return match call(&Request::Batch { requests }, &mut io) {
            Some(Response::Ok) => 0,
            Some(Response::Error { error }) => {
                io.eprint(&format!("{}\n", error.message));
                EXIT_ERROR
            }
            Some(_) => unexpected(&mut io),
            None => EXIT_LIST,
        };
    }

    let names: Box<dyn Resolver> = match &cmd {
        Command::List(o) if o.numeric => Box::new(NoNames),
        Command::Save { numeric: true } => Box::new(NoNames),
        _ => Box::new(FileNames::system()),
    };

    let list_error = |io: &mut Io, e: &ApiError| {
        io.eprint(&format!("{}\n", e.message));
        EXIT_LIST
    };

    match &cmd {
        Command::List(opts) => match opts.target() {
            ListTarget::Daemon => 0, // no sync daemon ever runs: nothing to show
            ListTarget::Connections => match call(&Request::ListConns, &mut io) {
                Some(Response::Conns { conns }) => {
                    io.print(&format::conns(&conns, opts, names.as_ref()));
                    0
                }
                Some(Response::Error { error }) => list_error(&mut io, &error),
                Some(_) => unexpected(&mut io),
                None => EXIT_LIST,
            },
            ListTarget::Timeouts => match call(&Request::GetTimeouts, &mut io) {
                Some(Response::Timeouts { timeouts }) => {
                    io.print(&format::timeouts(&timeouts));
                    0
                }
                Some(Response::Error { error }) => list_error(&mut io, &error),
                Some(_) => unexpected(&mut io),
                None => EXIT_LIST,
            },
            target => match call(&Request::List, &mut io) {
                Some(Response::Table { table }) => {
                    if let ListTarget::Service(key) = target {
                        match format::find_service(&table, &key) {
                            Some(se) => io.print(&format::list_service(se, opts, names.as_ref())),
                            None => {
                                io.eprint(&format!(
                                    "{}\n",
                                    ErrorKind::NoSuchService.ipvsadm_message()
                                ));
                                return EXIT_LIST;
                            }
                        }
                    } else {
                        io.print(&format::list_all(&table, opts, names.as_ref()));
                    }
                    0
                }
                Some(Response::Error { error }) => list_error(&mut io, &error),
                Some(_) => unexpected(&mut io),
                None => EXIT_LIST,
            },
        },
        Command::Save { numeric } => match call(&Request::List, &mut io) {
            Some(Response::Table { table }) => {
                io.print(&format::save(&table, *numeric, names.as_ref()));
                0
            }
            Some(Response::Error { error }) => list_error(&mut io, &error),
            Some(_) => unexpected(&mut io),
            None => EXIT_LIST,
        },
        other => {
            let Some(req) = other.request() else {
                return unexpected(&mut io);
            };
            match call(&req, &mut io) {
                Some(Response::Ok) => 0,
                Some(Response::Error { error }) => {
                    io.eprint(&format!("{}\n", error_text(other, &error)));
                    EXIT_ERROR
                }
                Some(_) => unexpected(&mut io),
                None => EXIT_ERROR,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn socket_option() {
        assert_eq!(
            split_socket(&v(&["xvsadm", "--socket", "/tmp/s", "-Ln"])).unwrap(),
            (Some("/tmp/s".into()), v(&["xvsadm", "-Ln"]))
        );
        assert_eq!(
            split_socket(&v(&["xvsadm", "--socket=/x", "-C"])).unwrap(),
            (Some("/x".into()), v(&["xvsadm", "-C"]))
        );
        assert_eq!(
            split_socket(&v(&["xvsadm", "-L", "--socket", "/x"])).unwrap(),
            (None, v(&["xvsadm", "-L", "--socket", "/x"]))
        );
        assert!(split_socket(&v(&["xvsadm", "--socket"])).is_err());
        assert_eq!(
            split_socket(&v(&["xvsadm"])).unwrap(),
            (None, v(&["xvsadm"]))
        );
    }

    #[test]
    fn error_texts_per_command() {
        let del = Command::DelDest {
            key: xvs_core::model::ServiceKey {
                proto: xvs_core::model::Protocol::Tcp,
                addr: "10.0.0.1".parse().unwrap(),
                port: 80,
            },
            addr: "10.0.0.2".parse().unwrap(),
            port: 80,
        };
        let e = ApiError::new(ErrorKind::NoSuchService);
        assert_eq!(error_text(&del, &e), "Service not defined");
        assert_eq!(error_text(&Command::Zero(None), &e), "No such service");
        let e = ApiError::new(ErrorKind::DestExists);
        assert_eq!(error_text(&del, &e), "Destination already exists");
    }

    fn run_args(args: &[&str], stdin: &str) -> (i32, String, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = run(
            &v(args),
            Some("/nonexistent/xvs-test.sock"),
            &mut stdin.as_bytes(),
            &mut out,
            &mut err,
        );
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn offline_paths() {
        let (c, o, _) = run_args(&["xvsadm", "-v"], "");
        assert_eq!(
            (c, o.as_str()),
            (
                0,
                "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n"
            )
        );
        let (c, o, _) = run_args(&["xvsadm", "-h"], "");
        assert_eq!(c, 0);
        assert!(o.contains("  xvsadm -D virtual-service\n"));
        let (c, _, e) = run_args(&["xvsadm", "-A", "-t", "10.0.0.1:80", "-w", "1"], "");
        assert_eq!(
            (c, e.as_str()),
            (
                2,
                "Illegal 'weight' option with the 'add-service' command\n"
            )
        );
        let (c, _, e) = run_args(&["xvsadm", "--bogus"], "");
        assert_eq!(
            (c, e.as_str()),
            (
                255,
                "Try `xvsadm -h' or 'xvsadm --help' for more information.\n"
            )
        );
        let (c, _, e) = run_args(
            &["xvsadm", "-R"],
            "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r x:y\n",
        );
        assert_eq!(
            (c, e.as_str()),
            (2, "line 2: illegal real server address[:port] specified\n")
        );
        let (c, _, e) = run_args(&["xvsadm", "-Ln"], "");
        assert_eq!(c, EXIT_NO_DAEMON);
        assert_eq!(
            e,
            "xvsadm: cannot connect to xvsd at /nonexistent/xvs-test.sock: No such file or directory (is xvsd running?)\n"
        );
        let (c, _, e) = run_args(&["xvsadm", "--socket", "/nonexistent/other", "-C"], "");
        assert_eq!(c, EXIT_NO_DAEMON);
        assert!(e.contains("at /nonexistent/other:"));
    }
}
