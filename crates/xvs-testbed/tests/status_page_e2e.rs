//! End to end: xvsd's status page in headless Chromium. The real `xvsd
//! --config keepalived.conf` (a NAT service, three real servers with
//! HTTP checks) runs in the director namespace of the NAT testbed with
//! `--metrics-listen` and `--status-token-file`; Debian's `chromium` runs
//! in the same namespace (so it reaches nothing but the testbed) and
//! loads the page with `--dump-dom` after its script has polled
//! `/status.json`. The test asserts that the page shows the VIP and its
//! real servers, that a rate grows while a bounded client sends
//! requests, that a stopped real server shows as down, and keeps a
//! screenshot under `target/artefacts/`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xvs_testbed::harness::{in_netns, Xvsd};
use xvs_testbed::{rs_ip, Node, Testbed, VIP};

/// xvsd's HTTP listener, inside the director namespace.
const LISTEN: &str = "127.0.0.1:9100";
const TOKEN: &str = "status-page-e2e-token-0123456789";
/// delay_loop + retry × delay_before_retry + 1 s.
const DETECT: Duration = Duration::from_secs(3);

fn conf() -> String {
    let mut rs = String::new();
    for n in 1..=3 {
        rs.push_str(&format!(
            "  real_server {} 80 {{\n    weight 1\n    HTTP_GET {{\n      url {{\n        path /\n        status_code 200\n      }}\n      connect_timeout 1\n      retry 1\n      delay_before_retry 1\n    }}\n  }}\n",
            rs_ip(n)
        ));
    }
    format!(
        "global_defs {{\n  router_id xvs_status_e2e\n}}\n\
         virtual_server {VIP} 80 {{\n  delay_loop 1\n  lvs_sched wrr\n  lvs_method NAT\n  protocol TCP\n{rs}}}\n"
    )
}

/// A testbed with xvsd serving the status page, writable with [`TOKEN`].
struct Lb {
    // Field order is drop order: stop xvsd before the namespaces go.
    xvsd: Xvsd,
    tb: Testbed,
}

impl Lb {
    fn start() -> Lb {
        let tb = Testbed::nat().expect("testbed");
        let file = tb.run_dir().join("keepalived.conf");
        std::fs::write(&file, conf()).unwrap();
        let token = tb.run_dir().join("status.token");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&token)
                .unwrap();
            writeln!(f, "{TOKEN}").unwrap();
        }
        let xvsd = Xvsd::start(
            &tb,
            Node::Director,
            &[
                "--config",
                &file.to_string_lossy(),
                "--metrics-listen",
                LISTEN,
                "--status-token-file",
                &token.to_string_lossy(),
            ],
        );
        Lb { xvsd, tb }
    }

    /// One HTTP/1.1 request to the listener from the director namespace;
    /// the whole answer (head and body).
    fn http(&self, head: String, body: String) -> String {
        in_netns(&self.tb.ns(Node::Director), move || {
            let a: SocketAddr = LISTEN.parse().unwrap();
            // The control socket (what `Xvsd::start` waits for) is bound
            // before the HTTP listener: give it a moment.
            let end = Instant::now() + Duration::from_secs(5);
            let mut s = loop {
                match TcpStream::connect_timeout(&a, Duration::from_secs(2)) {
                    Ok(s) => break s,
                    Err(e) if Instant::now() > end => panic!("listener {LISTEN}: {e}"),
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(body.as_bytes()).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
    }

    /// `/status.json`, parsed.
    fn status(&self) -> serde_json::Value {
        let a = self.http(
            "GET /status.json HTTP/1.1\r\nHost: xvs\r\nConnection: close\r\n\r\n".into(),
            String::new(),
        );
        let body = a.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {a}"))
    }

    /// Waits until `f` holds for `/status.json`.
    fn wait_status(&self, what: &str, limit: Duration, f: impl Fn(&serde_json::Value) -> bool) {
        let end = Instant::now() + limit;
        loop {
            let s = self.status();
            if f(&s) {
                return;
            }
            assert!(
                Instant::now() < end,
                "{what} not seen within {limit:?}: {s:#}\nxvsd log:\n{}",
                self.xvsd.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The real server `addr` of the first service in a `/status.json`.
fn rs_of<'a>(s: &'a serde_json::Value, addr: &str) -> Option<&'a serde_json::Value> {
    s["services"][0]["real_servers"]
        .as_array()?
        .iter()
        .find(|r| r["address"] == addr)
}

/// Headless Chromium in the director namespace, with everything that
/// would reach out (updates, sync, crash reports, ...) off: it only
/// opens xvsd's listener.
struct Chromium {
    dir: PathBuf,
    ns: String,
    runs: u32,
}

impl Chromium {
    fn new(tb: &Testbed) -> Chromium {
        let dir = tb.run_dir().join("chromium");
        std::fs::create_dir_all(&dir).unwrap();
        Chromium {
            dir,
            ns: tb.ns(Node::Director),
            runs: 0,
        }
    }

    /// Runs chromium with `args` on the page; its stdout. Killed (by PID)
    /// after 30 s.
    fn run(&mut self, args: &[&str]) -> String {
        self.runs += 1;
        let out = self.dir.join(format!("out-{}.txt", self.runs));
        let err = self.dir.join(format!("err-{}.txt", self.runs));
        let profile = self.dir.join("profile");
        let url = format!("http://{LISTEN}/");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "chromium"])
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-default-apps",
                "--disable-extensions",
                "--disable-sync",
                "--disable-breakpad",
                "--metrics-recording-only",
                "--hide-scrollbars",
                "--window-size=1280,1500",
                // The page's console on stderr: a script error fails the test.
                "--enable-logging=stderr",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            .arg(&url)
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("chromium (cargo xtask test installs it)");
        let status = wait_or_kill(child, Duration::from_secs(30));
        let stdout = std::fs::read_to_string(&out).unwrap_or_default();
        let stderr = std::fs::read_to_string(&err).unwrap_or_default();
        assert!(
            status == Some(true),
            "chromium failed ({status:?}):\n{stderr}"
        );
        let console: Vec<&str> = stderr.lines().filter(|l| l.contains("CONSOLE")).collect();
        assert!(
            !console
                .iter()
                .any(|l| l.contains("Uncaught") || l.contains("Error")),
            "the page's script failed:\n{}",
            console.join("\n")
        );
        stdout
    }

    /// The page's DOM after its script has fetched and rendered
    /// `/status.json` (virtual time runs 2.5 s: one poll, with room).
    fn dom(&mut self) -> String {
        let d = self.run(&["--dump-dom", "--virtual-time-budget=2500"]);
        assert!(d.contains("data-loaded=\"yes\""), "page did not load:\n{d}");
        d
    }

    fn screenshot(&mut self, path: &Path) {
        self.run(&[
            &format!("--screenshot={}", path.display()),
            "--virtual-time-budget=2500",
        ]);
    }
}

/// Waits for `child`; kills it by its PID after `limit`. Some(success)
/// when it ended by itself.
fn wait_or_kill(mut child: Child, limit: Duration) -> Option<bool> {
    let end = Instant::now() + limit;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st.success());
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `data-value` of the first `data-rate="NAME"` in `dom`.
fn rate(dom: &str, name: &str) -> u64 {
    let key = format!("data-rate=\"{name}\" data-value=\"");
    let at = dom
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in\n{dom}"))
        + key.len();
    dom[at..]
        .split('"')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("bad {name} value in\n{dom}"))
}

/// The health shown in the row of real server `addr`.
fn health(dom: &str, addr: &str) -> String {
    let row = format!("data-rs=\"{addr}\"");
    let at = dom
        .find(&row)
        .unwrap_or_else(|| panic!("no row {addr}:\n{dom}"));
    let rest = &dom[at..];
    let rest = &rest[..rest.find("</tr>").unwrap_or(rest.len())];
    let key = "data-health=\"";
    let h = rest.find(key).map(|i| &rest[i + key.len()..]).unwrap_or("");
    h.split('"').next().unwrap_or("").to_string()
}

/// A bounded client in the client namespace: one request per new
/// connection every 20 ms, at most 500, until stopped.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Traffic {
    fn start(tb: &Testbed) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let ns = tb.ns(Node::Client);
        let thread = std::thread::spawn(move || {
            in_netns(&ns, move || {
                let a: SocketAddr = format!("{VIP}:80").parse().unwrap();
                let mut ok = 0;
                for _ in 0..500 {
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(mut c) = TcpStream::connect_timeout(&a, Duration::from_secs(1)) {
                        c.set_read_timeout(Some(Duration::from_secs(2))).ok();
                        let req =
                            format!("GET / HTTP/1.1\r\nHost: {VIP}\r\nConnection: close\r\n\r\n");
                        let mut out = Vec::new();
                        if c.write_all(req.as_bytes()).is_ok() && c.read_to_end(&mut out).is_ok() {
                            ok += 1;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                ok
            })
        });
        Traffic {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().map_or(0, |t| t.join().unwrap())
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn artefacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("artefacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
#[ignore = "needs root and chromium: cargo xtask test runs it"]
fn the_status_page_shows_services_rates_and_health_in_a_browser() {
    let started = Instant::now();
    let lb = Lb::start();
    let servers = lb.tb.start_http_servers(80).unwrap();
    let rs: Vec<String> = (1..=3).map(|n| format!("{}:80", rs_ip(n))).collect();
    lb.wait_status("three real servers up", DETECT * 2, |s| {
        rs.iter()
            .all(|a| rs_of(s, a).is_some_and(|r| r["health"] == "up"))
    });
    let mut browser = Chromium::new(&lb.tb);

    // The VIP and its real servers, in words.
    let dom = browser.dom();
    for want in [
        format!("Virtual service {VIP}:80 (TCP)"),
        "weighted round robin".to_string(),
        "NAT (masquerading)".to_string(),
        "Real servers".to_string(),
    ] {
        assert!(dom.contains(&want), "page lacks {want:?}:\n{dom}");
    }
    for a in &rs {
        assert_eq!(health(&dom, a), "up", "{a}");
    }
    let before = rate(&dom, "inpps");

    // Traffic: the packet rate the page shows grows.
    let traffic = Traffic::start(&lb.tb);
    lb.wait_status("a packet rate", Duration::from_secs(12), |s| {
        s["services"][0]["rates"]["inpps"]
            .as_u64()
            .is_some_and(|v| v > before)
    });
    let dom = browser.dom();
    let during = rate(&dom, "inpps");
    assert!(during > before, "in packets/s {before} -> {during}");
    let sent = traffic.finish();
    assert!(sent > 20, "only {sent} requests answered");
    eprintln!("page: in packets/s {before} before the traffic, {during} during ({sent} requests)");

    // A real server stopped: its health shows down, with the check's result.
    servers[1].stop(Duration::from_secs(2));
    lb.wait_status("rs2 down", DETECT + Duration::from_secs(2), |s| {
        rs_of(s, &rs[1]).is_some_and(|r| r["health"] == "down")
    });
    let dom = browser.dom();
    assert_eq!(health(&dom, &rs[1]), "down");
    assert_eq!(health(&dom, &rs[0]), "up");
    assert!(dom.contains("out of the table"), "{dom}");

    // The write action, with the token: drain rs1 as `-e -w 0` does.
    let body = format!(
        "{{\"service\": \"TCP {VIP}:80\", \"dest\": \"{}\", \"weight\": 0}}",
        rs[0]
    );
    let post = |auth: &str| {
        lb.http(
            format!(
                "POST /api/dest/weight HTTP/1.1\r\nHost: xvs\r\nConnection: close\r\n{auth}\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ),
            body.clone(),
        )
    };
    let a = post("Authorization: Bearer wrong-token-wrong-token\r\n");
    assert!(a.starts_with("HTTP/1.1 403"), "{a}");
    let a = post(&format!("Authorization: Bearer {TOKEN}\r\n"));
    assert!(a.starts_with("HTTP/1.1 200"), "{a}");
    let list = lb.xvsd.adm_ok(&["-Ln"]);
    let row = list
        .lines()
        .find(|l| l.contains(&rs[0]))
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(row.split_whitespace().nth(3), Some("0"), "{list}");

    // The screenshot, kept.
    let shot = artefacts().join("status.png");
    let _ = std::fs::remove_file(&shot);
    browser.screenshot(&shot);
    let png = std::fs::read(&shot).unwrap_or_default();
    assert!(
        png.starts_with(b"\x89PNG"),
        "no screenshot at {}",
        shot.display()
    );
    eprintln!("status page screenshot: {}", shot.display());
    eprintln!("took {:?}", started.elapsed());
}
