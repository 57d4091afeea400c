//! xvsadm: the ipvsadm command line, talking to xvsd instead of the kernel.
//!
//! `xvsadm [--socket PATH] <ipvsadm arguments>`. The socket is `--socket`
//! (only as the first argument), else `$XVS_SOCKET`, else
//! [`xvs_core::api::DEFAULT_SOCKET`]. Arguments are parsed with
//! [`xvs_core::ipvsadm`] and output is printed with [`xvs_core::format`],
//! so text and exit statuses are ipvsadm's:
//!
//! * 0: success (also `-h`, `-v`);
//! * 2: ipvsadm's `fail(2, ...)` parse errors, and xvsd unreachable or
//!   its socket not ours to open (as ipvsadm's "Can't initialize ipvs"
//!   exits 2, "Permission denied (you must be root)" for a non-root user);
//! * 255: popt errors / "Try ...", a change refused by xvsd (ipvsadm returns
//!   -1; a non-root peer's change prints "Permission denied (you must be
//!   root)"), and operations xvs does not support;
//! * 1: a listing failed (ipvsadm's `exit(1)` in its list functions, e.g.
//!   "No such service" for `-L -t`), or xvsd answered nonsense.
//!
//! xvs extensions: `--json` with a list command (`-L` and its modifiers,
//! `--list-marks`) prints one JSON document ([`xvs_core::json`],
//! docs/json.md) instead of the table; `--json-schema` prints that
//! document's JSON Schema. Both are taken out of the arguments before the
//! ipvsadm grammar sees them, so it stays ipvsadm's.

pub mod client;
mod restore;

use client::Client;
use std::io::{Read, Write};
use std::path::Path;
use xvs_core::api::{ApiError, ErrorKind, Request, Response, DEFAULT_SOCKET};
use xvs_core::format;
use xvs_core::ipvsadm::{self, Command, ListOptions, ListTarget, EXIT_ERROR};
use xvs_core::json::ListDoc;
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

/// `--json`: the listing as a JSON document (xvs extension).
pub const JSON_OPTION: &str = "--json";

/// `--json-schema`: print the JSON Schema of `--json`'s documents.
pub const JSON_SCHEMA_OPTION: &str = "--json-schema";

/// What the xvs output options asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonOptions {
    /// `--json` was given.
    pub json: bool,
    /// `--json-schema` was given.
    pub schema: bool,
}

/// Takes `--json` and `--json-schema` out of `argv` (program name first),
/// wherever they stand: ipvsadm has no such options, and its grammar
/// (which must stay byte for byte ipvsadm's) never sees them.
pub fn split_json(argv: &[String]) -> (JsonOptions, Vec<String>) {
    let mut o = JsonOptions::default();
    let mut rest = Vec::with_capacity(argv.len());
    for (i, a) in argv.iter().enumerate() {
        match a.as_str() {
            JSON_OPTION if i > 0 => o.json = true,
            JSON_SCHEMA_OPTION if i > 0 => o.schema = true,
            _ => rest.push(a.clone()),
        }
    }
    (o, rest)
}

/// Why `--json` or `--json-schema` cannot be used with `cmd`, as a
/// `fail(2, ...)` text; `None` when they can.
pub fn json_misuse(o: JsonOptions, argv: &[String], cmd: Option<&Command>) -> Option<String> {
    if o.schema {
        return (o.json || argv.len() > 1)
            .then(|| "--json-schema takes no other option".to_string());
    }
    match cmd {
        _ if !o.json => None,
        Some(Command::List(_) | Command::ListMarks { .. }) => None,
        _ => Some("--json only applies to the list commands (-L, --list-marks)".to_string()),
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
/// defined" for real-server commands, "No such service" otherwise, "No
/// daemon is running" for `--stop-daemon`; EEXIST of `--start-daemon` is
/// "Daemon has already run").
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
        ErrorKind::DaemonRunning | ErrorKind::NoDaemon | ErrorKind::PermissionDenied => {
            e.kind.ipvsadm_message().to_string()
        }
        _ => e.message.clone(),
    }
}

/// The text of an error xvsd returned whatever was asked: its message,
/// but ipvsadm's words for a refusal to a non-root peer.
pub(crate) fn plain_text(e: &ApiError) -> &str {
    match e.kind {
        ErrorKind::PermissionDenied => e.kind.ipvsadm_message(),
        _ => &e.message,
    }
}

pub(crate) struct Io<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

impl Io<'_> {
    pub(crate) fn print(&mut self, s: &str) {
        let _ = self.out.write_all(s.as_bytes());
    }
    pub(crate) fn eprint(&mut self, s: &str) {
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
    // First, so that `--json --socket PATH` finds the socket too.
    let (json, args) = split_json(args);
    let (socket, argv) = match split_socket(&args) {
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
    if json.schema {
        if let Some(m) = json_misuse(json, &argv, None) {
            io.eprint(&format!("{m}\n"));
            return ipvsadm::EXIT_FAIL;
        }
        // A Value always serialises; the fallback only keeps this
        // panic-free.
        let text = serde_json::to_string_pretty(&xvs_core::json::schema()).unwrap_or_default();
        io.print(&format!("{text}\n"));
        return 0;
    }

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
    // After the grammar, so that its errors (and exit codes) come first.
    if let Some(m) = json_misuse(json, &argv, Some(&cmd)) {
        io.eprint(&format!("{m}\n"));
        return ipvsadm::EXIT_FAIL;
    }
    match cmd {
        Command::Help => {
            io.print(&ipvsadm::usage_text(&prog));
            return 0;
        }
        Command::Version => {
            io.print(&ipvsadm::version_text());
            return 0;
        }
        // Needs no daemon: it only translates.
        Command::ImportMarks { file } => {
            return import_marks(file.as_deref(), stdin, &mut io, &prog)
        }
        _ => {}
    }

    let client = match Client::connect(Path::new(&socket)) {
        Ok(c) => c,
        // Not allowed to open the socket: ipvsadm's words for EPERM.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            io.eprint(&format!(
                "{prog}: cannot connect to xvsd at {socket}: {}\n",
                ErrorKind::PermissionDenied.ipvsadm_message()
            ));
            return EXIT_NO_DAEMON;
        }
        Err(e) => {
            io.eprint(&format!(
                "{prog}: cannot connect to xvsd at {socket}: {} (is xvsd running?)\n",
                io_text(&e)
            ));
            return EXIT_NO_DAEMON;
        }
    };
    let mut session = Session {
        client,
        io,
        prog,
        json: json.json,
    };
    if cmd == Command::Restore {
        let mut text = String::new();
        if let Err(e) = stdin.read_to_string(&mut text) {
            let m = format!("{}: reading stdin: {}\n", session.prog, io_text(&e));
            session.io.eprint(&m);
            return ipvsadm::EXIT_FAIL;
        }
        return restore::restore(&text, &mut session);
    }
    session.execute(&cmd)
}

/// `--import-marks`: the `--add-mark` lines of an `iptables-save` dump's
/// MARK rules on stdout (for `xvsadm -R`), what was skipped on stderr;
/// exit 2, printing nothing on stdout, when a rule cannot be translated.
fn import_marks(file: Option<&str>, stdin: &mut dyn Read, io: &mut Io<'_>, prog: &str) -> i32 {
    let mut text = String::new();
    let read = match file {
        Some(f) => std::fs::read_to_string(f).map(|t| text = t),
        None => stdin.read_to_string(&mut text).map(drop),
    };
    if let Err(e) = read {
        let what = file.unwrap_or("stdin");
        io.eprint(&format!("{prog}: reading {what}: {}\n", io_text(&e)));
        return ipvsadm::EXIT_FAIL;
    }
    match xvs_core::fwmark::import::from_iptables_save(&text) {
        Ok(got) => {
            for n in &got.notes {
                io.eprint(&format!("{prog}: note: {n}\n"));
            }
            io.print(&ipvsadm::save_marks(&got.rules));
            0
        }
        Err(e) => {
            io.eprint(&format!("{prog}: {e}\n"));
            ipvsadm::EXIT_FAIL
        }
    }
}

/// A connected xvsadm: where it prints, and the daemon it asks.
pub(crate) struct Session<'a> {
    client: Client,
    io: Io<'a>,
    prog: String,
    /// `--json`: listings print [`xvs_core::json::ListDoc`]s.
    json: bool,
}

impl Session<'_> {
    /// One request; `None` (reported) when xvsd could not be asked.
    fn call(&mut self, req: &Request) -> Option<Response> {
        match self.client.call(req) {
            Ok(r) => Some(r),
            Err(e) => {
                self.io.eprint(&format!("{}: {e:#}\n", self.prog));
                None
            }
        }
    }

    fn unexpected(&mut self) -> i32 {
        let m = format!("{}: unexpected response from xvsd\n", self.prog);
        self.io.eprint(&m);
        EXIT_LIST
    }

    /// Prints a listing, `doc` with `--json` and `text` without;
    /// returns the exit status.
    fn print_list(&mut self, doc: impl FnOnce() -> ListDoc, text: impl FnOnce() -> String) -> i32 {
        let out = if self.json {
            match serde_json::to_string(&doc()) {
                Ok(s) => s + "\n",
                // Only maps with non-string keys fail; the document has none.
                Err(e) => {
                    let m = format!("{}: encoding JSON: {e}\n", self.prog);
                    self.io.eprint(&m);
                    return EXIT_LIST;
                }
            }
        } else {
            text()
        };
        self.io.print(&out);
        0
    }

    fn list_error(&mut self, e: &ApiError) -> i32 {
        self.io.eprint(&format!("{}\n", plain_text(e)));
        EXIT_LIST
    }

    /// Carries out one parsed command (not `-R`, `-h`, `-v`): listings
    /// print, changes go to xvsd. Returns ipvsadm's exit status for it.
    pub(crate) fn execute(&mut self, cmd: &Command) -> i32 {
        let names: Box<dyn Resolver> = match cmd {
            Command::List(o) if o.numeric => Box::new(NoNames),
            Command::Save { numeric: true } => Box::new(NoNames),
            _ => Box::new(FileNames::system()),
        };
        match cmd {
            Command::List(opts) => self.list(opts, names.as_ref()),
            Command::Save { numeric } => match self.call(&Request::List) {
                Some(Response::Table { table }) => {
                    let mut text = format::save(&table, *numeric, names.as_ref());
                    // xvs extension: the mark rules, so that `-S | -R`
                    // round-trips; nothing without rules (or from a
                    // daemon that has none to give).
                    if let Some(Response::Marks { rules }) = self.call(&Request::ListMarks) {
                        text.push_str(&ipvsadm::save_marks(&rules));
                    }
                    self.io.print(&text);
                    0
                }
                Some(Response::Error { error }) => self.list_error(&error),
                Some(_) => self.unexpected(),
                None => EXIT_LIST,
            },
            Command::ListMarks { .. } => match self.call(&Request::ListMarks) {
                Some(Response::Marks { rules }) => {
                    self.print_list(|| ListDoc::marks(&rules), || ipvsadm::list_marks(&rules))
                }
                Some(Response::Error { error }) => self.list_error(&error),
                Some(_) => self.unexpected(),
                None => EXIT_LIST,
            },
            other => {
                let Some(req) = other.request() else {
                    return self.unexpected();
                };
                match self.call(&req) {
                    Some(Response::Ok) => 0,
                    Some(Response::Error { error }) => {
                        self.io.eprint(&format!("{}\n", error_text(other, &error)));
                        if other.is_mark_command() {
                            ipvsadm::EXIT_FAIL
                        } else {
                            EXIT_ERROR
                        }
                    }
                    Some(_) => self.unexpected(),
                    None => EXIT_ERROR,
                }
            }
        }
    }

    fn list(&mut self, opts: &ListOptions, names: &dyn Resolver) -> i32 {
        match opts.target() {
            ListTarget::Daemon => match self.call(&Request::ListDaemons) {
                Some(Response::Daemons { daemons }) => {
                    self.print_list(|| ListDoc::daemons(&daemons), || format::daemons(&daemons))
                }
                Some(Response::Error { error }) => self.list_error(&error),
                Some(_) => self.unexpected(),
                None => EXIT_LIST,
            },
            ListTarget::Connections => match self.call(&Request::ListConns) {
                Some(Response::Conns { conns }) => self.print_list(
                    || ListDoc::connections(&conns),
                    || format::conns(&conns, opts, names),
                ),
                Some(Response::Error { error }) => self.list_error(&error),
                Some(_) => self.unexpected(),
                None => EXIT_LIST,
            },
            ListTarget::Timeouts => match self.call(&Request::GetTimeouts) {
                Some(Response::Timeouts { timeouts }) => self.print_list(
                    || ListDoc::timeouts(timeouts),
                    || format::timeouts(&timeouts),
                ),
                Some(Response::Error { error }) => self.list_error(&error),
                Some(_) => self.unexpected(),
                None => EXIT_LIST,
            },
            target => match self.call(&Request::List) {
                Some(Response::Table { table }) => {
                    if let ListTarget::Service(key) = target {
                        match format::find_service(&table, &key) {
                            Some(se) => {
                                return self.print_list(
                                    || ListDoc::service(table.conn_tab_size, se, opts.nosort),
                                    || format::list_service(se, opts, names),
                                )
                            }
                            None => {
                                self.io.eprint(&format!(
                                    "{}\n",
                                    ErrorKind::NoSuchService.ipvsadm_message()
                                ));
                                return EXIT_LIST;
                            }
                        }
                    }
                    self.print_list(
                        || ListDoc::services(&table, opts.nosort),
                        || format::list_all(&table, opts, names),
                    )
                }
                Some(Response::Error { error }) => self.list_error(&error),
                Some(_) => self.unexpected(),
                None => EXIT_LIST,
            },
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
                fwmark: 0,
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
        let start = ipvsadm::parse(&v(&["ipvsadm", "--start-daemon", "master"])).unwrap();
        let stop = ipvsadm::parse(&v(&["ipvsadm", "--stop-daemon", "master"])).unwrap();
        let e = ApiError::with(ErrorKind::DaemonRunning, "master sync daemon running");
        assert_eq!(error_text(&start, &e), "Daemon has already run");
        let e = ApiError::with(ErrorKind::NoDaemon, "no master sync daemon");
        assert_eq!(error_text(&stop, &e), "No daemon is running");
        let e = ApiError::with(ErrorKind::Internal, "No such device");
        assert_eq!(error_text(&start, &e), "No such device");
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

    /// `--import-marks` needs no daemon (the socket here does not exist):
    /// a dump's MARK rules become `-R` lines, or nothing and exit 2.
    #[test]
    fn import_marks_translates_without_a_daemon() {
        let dump = "*mangle\n-A PREROUTING -d 10.1.0.0/16 -p tcp --dport 80 -j MARK --set-mark 7\n\
                    -A POSTROUTING -j MARK --set-mark 9\nCOMMIT\n";
        let (c, o, e) = run_args(&["xvsadm", "--import-marks"], dump);
        assert_eq!(c, 0, "{e}");
        assert_eq!(o, "--add-mark -t 10.1.0.0/16:80 -f 7\n");
        assert_eq!(
            e,
            "xvsadm: note: mangle/POSTROUTING: not read (xvs classifies mangle PREROUTING and INPUT only)\n"
        );
        let bad = "*mangle\n-A INPUT -i eth0 -j MARK --set-mark 1\n";
        let (c, o, e) = run_args(&["xvsadm", "--import-marks", "-"], bad);
        assert_eq!((c, o.as_str()), (2, ""));
        assert!(
            e.contains("rule 1 of mangle/INPUT (-i eth0 -j MARK --set-mark 1): interface"),
            "{e}"
        );
        let (c, _, e) = run_args(&["xvsadm", "--import-marks", "/nonexistent/rules"], "");
        assert_eq!(c, 2);
        assert!(e.starts_with("xvsadm: reading /nonexistent/rules: "), "{e}");
    }

    /// A daemon that answers each request line with the next of `answers`
    /// and records what it was asked.
    fn fake_xvsd(answers: Vec<Response>) -> (String, std::thread::JoinHandle<Vec<Request>>) {
        use std::io::{BufRead, BufReader};
        let dir = std::env::temp_dir().join(format!("xvsadm-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("s{}", answers.len()));
        let _ = std::fs::remove_file(&path);
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let h = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            let mut asked = Vec::new();
            for a in answers {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                asked.push(serde_json::from_str(line.trim_end()).unwrap());
                w.write_all(format!("{}\n", serde_json::to_string(&a).unwrap()).as_bytes())
                    .unwrap();
            }
            asked
        });
        (path.to_string_lossy().into_owned(), h)
    }

    #[test]
    fn restore_goes_line_by_line_as_ipvsadm_does() {
        let exists = ApiError::new(ErrorKind::ServiceExists);
        let (sock, h) = fake_xvsd(vec![
            Response::Sequence {
                results: vec![None, Some(exists)],
            },
            Response::Timeouts {
                timeouts: xvs_core::model::Timeouts::default(),
            },
            Response::Sequence {
                results: vec![None],
            },
        ]);
        let input =
            "-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80\n-A -t 10.0.0.5:80 --bogus\n-L --timeout\n\
                     -a -t 10.0.0.1:80 -r 10.0.0.2\n-a -t 10.0.0.1:80 -r 10.0.0.3 -w 2147483648\n\
                     -A -t 10.0.0.9:80\n";
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(
            &v(&["ipvsadm", "-R"]),
            Some(&sock),
            &mut input.as_bytes(),
            &mut out,
            &mut err,
        );
        let asked = h.join().unwrap();
        // The refused change and the popt error print where they stand, the
        // listing prints between them, the bad weight stops the restore
        // with the lines before it applied and the line after it unsent.
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "Service already exists\n--bogus: unknown option\nillegal weight specified\n"
        );
        assert!(String::from_utf8(out)
            .unwrap()
            .starts_with("Timeout (tcp tcpfin udp):"));
        assert_eq!(code, 2);
        assert_eq!(asked.len(), 3);
        assert!(matches!(&asked[0], Request::Sequence { requests } if requests.len() == 2));
        assert!(matches!(&asked[2], Request::Sequence { requests } if requests.len() == 1));
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
        // -R needs the daemon before it reads a line, as ipvsadm needs
        // the kernel's IPVS.
        let (c, _, e) = run_args(&["xvsadm", "-R"], "-A -t 10.0.0.1:80\n");
        assert_eq!(c, EXIT_NO_DAEMON);
        assert!(e.contains("cannot connect to xvsd"), "{e}");
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
