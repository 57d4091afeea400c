//! What the end-to-end tests (`tests/*_e2e.rs`) share: the real `xvsd` in
//! a node of a [`Testbed`], driven by the real `xvsadm` and its API socket
//! ([`Xvsd`]); requests from the client with `xvs-testsrv`
//! ([`client_get`], [`testsrv_ok`]); test servers ([`serve`]); real-server
//! preparation ([`setup_real_servers`]); threads inside a namespace
//! ([`in_netns`]); and small parsers of what comes back ([`tally`],
//! [`stats_row`], [`server_names`]).
//!
//! Everything here panics on failure, with what is needed to see why (exit
//! status, output, xvsd's log): it is for tests. Binaries are found with
//! [`bin`], next to the running test executable, so build them first
//! (`cargo build --workspace --bins`).

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{bin, Node, Proc, Testbed, VIP};

/// Per-request timeout of [`client_get`] (`--timeout-ms`).
pub const GET_TIMEOUT_MS: u32 = 3000;

/// How long [`Xvsd::start`] waits for xvsd's socket.
pub const XVSD_START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long [`Xvsd::stop`] waits after SIGTERM before it kills. xvsd
/// acts on SIGTERM once it serves; a stop that arrives while it starts
/// (the socket listens from the first moment, so [`Xvsd::respawn`]
/// returns early) waits for the start to finish, which took up to 10 s
/// under emulation (5.10 in the VM tier). xvsd exits at once otherwise.
pub const XVSD_STOP_GRACE: Duration = Duration::from_secs(20);

/// The path of a workspace binary as a string; panics when it is missing
/// (the error says how to build it).
pub fn bin_path(name: &str) -> String {
    bin(name)
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string_lossy()
        .into_owned()
}

/// `http://VIP/`: the URL of the tests' HTTP services.
pub fn vip_url() -> String {
    format!("http://{VIP}/")
}

/// The real `xvsd` running in one node of a testbed.
///
/// It listens on `<run dir>/xvsd-<node>.sock` and pins its maps under
/// `<bpffs>/xvs-<node>`, so two directors of one testbed do not share
/// either. The process is one of the testbed's, killed when the testbed
/// is dropped; keep an `Xvsd` in a field declared before the [`Testbed`]
/// (fields drop in order).
#[derive(Debug)]
pub struct Xvsd {
    proc: Proc,
    node: Node,
    sock: String,
    argv: Vec<String>,
}

impl Xvsd {
    /// Starts `xvsd --socket S --pin-path P --conn-tab-size 65536 EXTRA...`
    /// in `node` and waits (up to [`XVSD_START_TIMEOUT`]) until its socket
    /// accepts connections. Panics with xvsd's log if it exits first or the
    /// socket does not come up.
    pub fn start(tb: &Testbed, node: Node, extra: &[&str]) -> Xvsd {
        let sock = tb
            .run_dir()
            .join(format!("xvsd-{node}.sock"))
            .to_string_lossy()
            .into_owned();
        let pin = tb
            .bpffs()
            .join(format!("xvs-{node}"))
            .to_string_lossy()
            .into_owned();
        let mut argv = vec![
            bin_path("xvsd"),
            "--socket".into(),
            sock.clone(),
            "--pin-path".into(),
            pin,
            "--conn-tab-size".into(),
            "65536".into(),
        ];
        argv.extend(extra.iter().map(|a| a.to_string()));
        // `XVS_TEST_ATTACH=xdp|tc` runs a suite against that program
        // (`cargo xtask test` runs the veth suites in both; xvsd's auto
        // mode picks tc there).
        if let Ok(mode) = std::env::var("XVS_TEST_ATTACH") {
            if !extra.contains(&"--attach") {
                argv.extend(["--attach".to_string(), mode]);
            }
        }
        let proc = spawn_and_wait(tb, node, &sock, &argv);
        Xvsd {
            proc,
            node,
            sock,
            argv,
        }
    }

    /// Starts xvsd again with the same arguments (socket, pins, extra
    /// options), e.g. after [`Xvsd::stop`], and waits for its socket.
    pub fn respawn(&mut self, tb: &Testbed) {
        self.proc = spawn_and_wait(tb, self.node, &self.sock, &self.argv);
    }

    /// SIGTERM, then SIGKILL after [`XVSD_STOP_GRACE`]; asserts that xvsd
    /// ended and exited successfully (showing its log otherwise).
    pub fn stop(&self) -> ExitStatus {
        let st = self.proc.stop(XVSD_STOP_GRACE).expect("xvsd stops");
        assert!(
            st.success(),
            "xvsd in {} exit: {st}\n{}",
            self.node,
            self.log()
        );
        st
    }

    /// [`Xvsd::stop`], then [`Xvsd::respawn`]: same socket, same pins.
    pub fn restart(&mut self, tb: &Testbed) {
        self.stop();
        self.respawn(tb);
    }

    /// The node xvsd runs in.
    pub fn node(&self) -> Node {
        self.node
    }

    /// xvsd's API socket (for `xvsadm --socket`).
    pub fn sock(&self) -> &str {
        &self.sock
    }

    /// The xvsd process (signals, exit, log).
    pub fn proc(&self) -> &Proc {
        &self.proc
    }

    /// Everything xvsd logged so far.
    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// Whether xvsd still runs (e.g. not after [`Xvsd::stop`]).
    pub fn is_running(&self) -> bool {
        self.proc.is_running()
    }

    /// `xvsadm --socket S ARGS...`, whatever its exit status.
    pub fn adm(&self, args: &[&str]) -> Output {
        self.adm_command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run xvsadm")
    }

    /// `xvsadm --socket S ARGS...` with `input` on its stdin (`-R`),
    /// whatever its exit status.
    pub fn adm_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .adm_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run xvsadm");
        child
            .stdin
            .take()
            .expect("xvsadm stdin")
            .write_all(input.as_bytes())
            .expect("write xvsadm's stdin");
        child.wait_with_output().expect("wait for xvsadm")
    }

    /// `xvsadm --socket S ARGS...`, which must succeed; its stdout.
    /// Panics with its status, stderr and xvsd's log.
    pub fn adm_ok(&self, args: &[&str]) -> String {
        let out = self.adm(args);
        assert!(
            out.status.success(),
            "{} xvsadm {args:?}: {}\n{}\nxvsd log:\n{}",
            self.node,
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn adm_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin_path("xvsadm"));
        c.arg("--socket").arg(&self.sock).args(args);
        c
    }

    /// One raw API request line (without the newline); the answer line.
    pub fn try_api(&self, line: &str) -> io::Result<String> {
        let mut s = UnixStream::connect(&self.sock)?;
        s.write_all(format!("{line}\n").as_bytes())?;
        let mut out = String::new();
        BufReader::new(s).read_line(&mut out)?;
        Ok(out)
    }

    /// One raw API request line; the answer as JSON text. Panics (with
    /// xvsd's log) when xvsd does not answer.
    pub fn api(&self, line: &str) -> String {
        self.try_api(line).unwrap_or_else(|e| {
            panic!(
                "API {line} to {}: {e}\nxvsd log:\n{}",
                self.sock,
                self.log()
            )
        })
    }

    /// The data plane's counters, from xvsd's `info` request. Panics (with
    /// the answer and xvsd's log) when there are none.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let info = self.api("{\"op\":\"info\"}");
        parse_counters(&info).unwrap_or_else(|| {
            panic!(
                "no counters in xvsd's info answer {info:?}\nxvsd log:\n{}",
                self.log()
            )
        })
    }

    /// Like [`Xvsd::counters`], but empty when xvsd does not answer (for
    /// failure messages, and where a missing counter is tolerated).
    pub fn counters_or_empty(&self) -> BTreeMap<String, u64> {
        self.try_api("{\"op\":\"info\"}")
            .ok()
            .and_then(|info| parse_counters(&info))
            .unwrap_or_default()
    }

    /// The counters (when xvsd answers) and xvsd's log: the context of a
    /// failure message.
    pub fn report(&self) -> String {
        format!(
            "counters: {:?}\nxvsd log:\n{}",
            self.counters_or_empty(),
            self.log()
        )
    }
}

/// Spawns `argv` in `node` and waits until `sock` accepts connections.
fn spawn_and_wait(tb: &Testbed, node: Node, sock: &str, argv: &[String]) -> Proc {
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let xvsd = tb
        .spawn(node, &argv)
        .unwrap_or_else(|e| panic!("spawn xvsd in {node}: {e}"));
    let deadline = Instant::now() + XVSD_START_TIMEOUT;
    while UnixStream::connect(sock).is_err() {
        if let Some(st) = xvsd.try_wait() {
            panic!("xvsd in {node} exited ({st}):\n{}", xvsd.log());
        }
        assert!(
            Instant::now() < deadline,
            "xvsd socket {sock} in {node} not up:\n{}",
            xvsd.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    xvsd
}

/// The `"counters":[["rx",12],["pass_not_ip",0],...]` of xvsd's answer
/// to `{"op":"info"}` (in its `info` object, or at the top), by name;
/// `None` when the answer has none.
pub fn parse_counters(info: &str) -> Option<BTreeMap<String, u64>> {
    let answer: serde_json::Value = serde_json::from_str(info).ok()?;
    let facts = answer.get("info").unwrap_or(&answer);
    let list = facts.get("counters")?.as_array()?;
    let pair = |item: &serde_json::Value| match item.as_array()?.as_slice() {
        [name, value] => Some((name.as_str()?.to_string(), value.as_u64()?)),
        _ => None,
    };
    Some(list.iter().filter_map(pair).collect())
}

/// `xvs-testsrv ARGS...` in `node`, whatever its exit status.
pub fn testsrv(tb: &Testbed, node: Node, args: &[&str]) -> Output {
    let prog = bin_path("xvs-testsrv");
    let mut argv = vec![prog.as_str()];
    argv.extend_from_slice(args);
    tb.exec(node, &argv)
        .unwrap_or_else(|e| panic!("xvs-testsrv {args:?} in {node}: {e}"))
}

/// `xvs-testsrv ARGS...` in `node`, which must succeed; its stdout. On
/// failure panics with the exit status, stdout, stderr and `context()`
/// (e.g. [`Xvsd::report`]), which is only called then.
pub fn testsrv_ok(
    tb: &Testbed,
    node: Node,
    args: &[&str],
    context: impl FnOnce() -> String,
) -> String {
    let out = testsrv(tb, node, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "xvs-testsrv {args:?} in {node}: {}\n{stdout}{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        context()
    );
    stdout
}

/// `xvs-testsrv get URL --count N [--new-conn] --timeout-ms T` in `node`
/// (`n` HTTP requests, each on a new connection with `new_conn`), whatever
/// its exit status.
pub fn client_get_output(
    tb: &Testbed,
    node: Node,
    url: &str,
    n: u32,
    new_conn: bool,
    timeout_ms: u32,
) -> Output {
    testsrv(
        tb,
        node,
        &get_args(url, &n.to_string(), new_conn, &timeout_ms.to_string()),
    )
}

/// `n` HTTP requests from `node` to `url` (each on a new connection with
/// `new_conn`, [`GET_TIMEOUT_MS`] each), which must all succeed: one line
/// per request, the name of the server that answered. On failure panics
/// with the exit status, stdout, stderr and `context()`.
pub fn client_get(
    tb: &Testbed,
    node: Node,
    url: &str,
    n: u32,
    new_conn: bool,
    context: impl FnOnce() -> String,
) -> Vec<String> {
    let (count, timeout) = (n.to_string(), GET_TIMEOUT_MS.to_string());
    let args = get_args(url, &count, new_conn, &timeout);
    testsrv_ok(tb, node, &args, context)
        .lines()
        .map(str::to_string)
        .collect()
}

fn get_args<'a>(url: &'a str, count: &'a str, new_conn: bool, timeout: &'a str) -> Vec<&'a str> {
    let mut args = vec!["get", url, "--count", count];
    if new_conn {
        args.push("--new-conn");
    }
    args.extend(["--timeout-ms", timeout]);
    args
}

/// The server names of `xvs-testsrv udp` output (`rs3: ping 0` → `rs3`),
/// one per line.
pub fn server_names(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split(':').next().unwrap_or("").to_string())
        .collect()
}

/// Starts `xvs-testsrv KIND --listen LISTEN --name NAME` (`http`,
/// `udp-echo`) in `node` and waits up to 5 s until it listens.
pub fn serve(tb: &Testbed, node: Node, kind: &str, listen: &str, name: &str) -> Proc {
    let p = tb
        .spawn(
            node,
            &[
                &bin_path("xvs-testsrv"),
                kind,
                "--listen",
                listen,
                "--name",
                name,
            ],
        )
        .unwrap_or_else(|e| panic!("xvs-testsrv {kind} in {node}: {e}"));
    p.wait_for_log("listening on", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("xvs-testsrv {kind} in {node}: {e}"));
    p
}

/// `xvs-realserver setup --vip VIP ARGS...` on every real server of `tb`;
/// asserts that each put the VIP on lo.
pub fn setup_real_servers(tb: &Testbed, args: &[&str]) {
    let mut argv = vec!["setup", "--vip", VIP];
    argv.extend_from_slice(args);
    for n in 1..=tb.rs_count() {
        let out = tb
            .realserver(Node::Rs(n), &argv)
            .unwrap_or_else(|e| panic!("rs{n}: xvs-realserver {argv:?}: {e}"));
        assert!(out.contains(&format!("{VIP}/32 to lo")), "rs{n}: {out}");
    }
}

/// How often each name occurs.
pub fn tally(names: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for n in names {
        *m.entry(n.clone()).or_insert(0) += 1;
    }
    m
}

/// A [`tally`] written out: `counts(&[("rs1", 2), ("rs2", 1)])`.
pub fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Parses `xvsadm -Ln --stats` into (Conns, InPkts, OutPkts, InBytes,
/// OutBytes) of the first line that starts (after indentation) with
/// `start`; panics when there is none.
pub fn stats_row(text: &str, start: &str) -> [u64; 5] {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(start))
        .unwrap_or_else(|| panic!("no row {start} in\n{text}"));
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let n = nums.len();
    assert!(n >= 5, "{line}");
    [
        nums[n - 5],
        nums[n - 4],
        nums[n - 3],
        nums[n - 2],
        nums[n - 1],
    ]
}

/// Runs `f` on a new thread inside the network namespace `ns` (a name of
/// [`Testbed::ns`]) and returns its result; a panic in `f` is passed on.
/// Sockets `f` creates stay in that namespace whatever thread uses them
/// later.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = format!("/run/netns/{ns}");
    let thread = std::thread::spawn(move || {
        let fd = std::fs::File::open(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        // SAFETY: setns(2) on a valid namespace fd; affects this thread only.
        let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {file}: {}", io::Error::last_os_error());
        f()
    });
    thread
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// A long transfer in the background: `xvs-testsrv get
/// http://VIP/slow/BYTES/MS` from the client, one request, which takes
/// about `ms` and whose body the client checks byte by byte. Its log ends
/// with [`slow_done`] when it completed.
pub fn slow_download(tb: &Testbed, bytes: usize, ms: u64) -> Proc {
    let url = format!("http://{VIP}/slow/{bytes}/{ms}");
    tb.spawn(
        Node::Client,
        &[
            &bin_path("xvs-testsrv"),
            "get",
            &url,
            "--count",
            "1",
            "--timeout-ms",
            "8000",
        ],
    )
    .unwrap_or_else(|e| panic!("starting a download: {e}"))
}

/// Whether a [`slow_download`] of `bytes` finished with every byte.
pub fn slow_done(p: &Proc, bytes: usize) -> bool {
    // The body is the server's name ("rsN"), a newline and the pattern.
    let want = format!("({} bytes)", bytes + 4);
    p.try_wait().is_some_and(|st| st.success()) && p.log().trim_end().ends_with(&want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_from_an_info_answer() {
        let info =
            "{\"result\":\"ok\",\"counters\":[[\"rx\",12],[\"pass_not_ip\",0],[\"tx\",7]]}\n";
        let c = parse_counters(info).unwrap();
        assert_eq!(c.len(), 3, "{c:?}");
        assert_eq!((c["rx"], c["pass_not_ip"], c["tx"]), (12, 0, 7));
        assert_eq!(parse_counters("{\"result\":\"error\"}"), None);
        let nested =
            "{\"result\":\"info\",\"info\":{\"version\":\"0.1.0\",\"counters\":[[\"rx\",3]]}}";
        assert_eq!(parse_counters(nested).unwrap()["rx"], 3);
    }

    #[test]
    fn stats_row_takes_the_last_five_numbers() {
        let text = "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n\
                    TCP  198.51.100.10:80                   30      150      120     9000    12000\n\
                    \x20 -> 203.0.113.11:80                  10       50       40     3000     4000\n";
        assert_eq!(
            stats_row(text, "TCP  198.51.100.10:80"),
            [30, 150, 120, 9000, 12000]
        );
        assert_eq!(
            stats_row(text, "-> 203.0.113.11:80"),
            [10, 50, 40, 3000, 4000]
        );
    }

    #[test]
    fn names_and_tallies() {
        let names = server_names("rs3: ping 0\nrs1: ping 1\nrs3: ping 2\n");
        assert_eq!(names, ["rs3", "rs1", "rs3"]);
        assert_eq!(tally(&names), counts(&[("rs1", 1), ("rs3", 2)]));
        assert_eq!(
            get_args("http://x/", "3", false, "500"),
            ["get", "http://x/", "--count", "3", "--timeout-ms", "500"]
        );
    }
}
