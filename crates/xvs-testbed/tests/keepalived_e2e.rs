//! End to end: the real `xvsd --config keepalived.conf` in the director
//! namespace of the NAT testbed, real HTTP servers on the real servers,
//! health checks, the sorry server, quorum, SIGHUP reloads and metrics.
//! Each test builds its own testbed, torn down on drop (also on failure).
//! Client traffic comes from threads of this process moved into the client
//! namespace (`setns`), so every request's time and answer are known.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xvs_testbed::harness::{client_get, counts, in_netns, serve, tally, vip_url, Xvsd};
use xvs_testbed::{rs_ip, Node, Proc, Testbed, VIP};

const METRICS: &str = "127.0.0.1:9100";

/// One HTTP request on `s` (keep-alive); the body (the server's name).
fn request(s: &mut TcpStream, keepalive: bool) -> Result<String, String> {
    let conn = if keepalive { "keep-alive" } else { "close" };
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {VIP}\r\nConnection: {conn}\r\n\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let mut status = String::new();
    r.read_line(&mut status).map_err(|e| format!("read: {e}"))?;
    if !status.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status:?}"));
    }
    let mut len = 0usize;
    loop {
        let mut l = String::new();
        r.read_line(&mut l).map_err(|e| format!("read: {e}"))?;
        if l.trim().is_empty() {
            break;
        }
        if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().map_err(|_| format!("bad length {l:?}"))?;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).map_err(|e| format!("body: {e}"))?;
    Ok(String::from_utf8_lossy(&body).trim().to_string())
}

fn connect(addr: &str) -> Result<TcpStream, String> {
    let a: SocketAddr = addr.parse().unwrap();
    let s = TcpStream::connect_timeout(&a, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok();
    s.set_write_timeout(Some(Duration::from_secs(3))).ok();
    Ok(s)
}

/// A request on a new connection to the VIP.
fn get_once() -> Result<String, String> {
    let mut s = connect(&format!("{VIP}:80"))?;
    request(&mut s, false)
}

/// Requests sent one after another from the client namespace, every 50 ms,
/// until stopped (at most 2000): (when sent, answer).
/// A request: when it was sent, and the answering server's name or the error.
type Sent = (Instant, Result<String, String>);

struct Load {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Sent>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(tb: &Testbed) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (s, l) = (stop.clone(), log.clone());
        let ns = tb.ns(Node::Client);
        let thread = std::thread::spawn(move || {
            in_netns(&ns, move || {
                for _ in 0..2000 {
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    let t = Instant::now();
                    let r = get_once();
                    l.lock().unwrap().push((t, r));
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        });
        Load {
            stop,
            log,
            thread: Some(thread),
        }
    }

    fn since(&self, t: Instant) -> Vec<Sent> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(w, _)| *w >= t)
            .cloned()
            .collect()
    }

    /// Waits until a request sent after `t` was answered by `name`.
    fn wait_for(&self, name: &str, t: Instant, limit: Duration) -> Option<Instant> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some((w, _)) = self
                .since(t)
                .into_iter()
                .find(|(_, r)| r.as_deref() == Ok(name))
            {
                return Some(w);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn finish(mut self) -> Vec<Sent> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A testbed with `xvsd --config` in the director.
struct Lb {
    // Field order is drop order: stop xvsd before the namespaces go.
    xvsd: Xvsd,
    conf: std::path::PathBuf,
    tb: Testbed,
}

impl Lb {
    fn start(conf: &str) -> Lb {
        let tb = Testbed::nat().expect("testbed");
        let file = tb.run_dir().join("keepalived.conf");
        std::fs::write(&file, conf).unwrap();
        let xvsd = Xvsd::start(
            &tb,
            Node::Director,
            &[
                "--config",
                &file.to_string_lossy(),
                "--metrics-listen",
                METRICS,
            ],
        );
        Lb {
            xvsd,
            conf: file,
            tb,
        }
    }

    /// (real server address, weight) rows of `-Ln` for the VIP:80 service.
    fn table(&self) -> Vec<(String, u32)> {
        let list = self.xvsd.adm_ok(&["-Ln"]);
        let mut rows = Vec::new();
        let mut in_svc = false;
        for l in list.lines() {
            if l.starts_with("TCP") || l.starts_with("UDP") {
                in_svc = l.contains(&format!("{VIP}:80 "));
            } else if in_svc && l.trim_start().starts_with("->") && !l.contains("RemoteAddress") {
                let f: Vec<&str> = l.split_whitespace().collect();
                rows.push((f[1].to_string(), f[3].parse().unwrap()));
            }
        }
        rows.sort();
        rows
    }

    /// Waits until `table()` is `want`; returns when it became so.
    fn wait_table(&self, want: &[(&str, u32)], limit: Duration) -> Instant {
        let want: Vec<(String, u32)> = want.iter().map(|(a, w)| (a.to_string(), *w)).collect();
        let end = Instant::now() + limit;
        loop {
            let got = self.table();
            if got == want {
                return Instant::now();
            }
            assert!(
                Instant::now() < end,
                "table {got:?}, want {want:?} within {limit:?}\n{}\nxvsd log:\n{}",
                self.xvsd.adm_ok(&["-Ln"]),
                self.xvsd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn http_server(&self, n: u8, port: u16, name: &str) -> Proc {
        serve(
            &self.tb,
            Node::Rs(n),
            "http",
            &format!("0.0.0.0:{port}"),
            name,
        )
    }

    /// `n` requests on new connections with xvs-testsrv; names by count.
    fn split(&self, n: u32) -> BTreeMap<String, usize> {
        tally(&client_get(
            &self.tb,
            Node::Client,
            &vip_url(),
            n,
            true,
            || self.xvsd.report(),
        ))
    }

    /// The metrics text once it contains every one of `want` (the snapshot
    /// is refreshed every second).
    fn metrics_with(&self, want: &[&str]) -> String {
        let end = Instant::now() + Duration::from_secs(3);
        loop {
            let m = self.metrics();
            if want.iter().all(|w| m.contains(w)) {
                return m;
            }
            assert!(Instant::now() < end, "metrics lack one of {want:?}:\n{m}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn metrics(&self) -> String {
        in_netns(&self.tb.ns(Node::Director), || {
            let mut s = connect(METRICS).expect("metrics endpoint");
            // As Prometheus asks: HTTP/1.1, here without keep-alive so the
            // answer ends with the connection.
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: xvs\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
    }

    fn rewrite(&self, conf: &str) {
        std::fs::write(&self.conf, conf).unwrap();
    }

    fn sighup(&self) {
        self.xvsd.proc().signal(libc::SIGHUP).unwrap();
    }
}

fn rs(n: u8) -> String {
    format!("{}:80", rs_ip(n))
}

/// keepalived.conf for VIP:80 with `body` inside the virtual server.
fn conf(body: &str) -> String {
    format!(
        "global_defs {{\n  router_id xvs_e2e\n}}\n\
         vrrp_instance VI_1 {{\n  state MASTER\n  interface eth0\n  virtual_router_id 51\n}}\n\
         virtual_server {VIP} 80 {{\n  delay_loop 1\n  lvs_sched rr\n  lvs_method NAT\n  protocol TCP\n{body}}}\n"
    )
}

/// A real server with an HTTP_GET checker of the e2e timing.
fn http_rs(n: u8, status: u16, weight: u32) -> String {
    format!(
        "  real_server {} 80 {{\n    weight {weight}\n    HTTP_GET {{\n      url {{\n        path /\n        status_code {status}\n      }}\n      connect_timeout 1\n      retry 1\n      delay_before_retry 1\n    }}\n  }}\n",
        rs_ip(n)
    )
}

/// delay_loop + retry × delay_before_retry + 1 s.
const DETECT: Duration = Duration::from_secs(1 + 1 + 1);

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_stopped_server_leaves_within_the_detection_time_and_comes_back() {
    let lb = Lb::start(&conf(&format!(
        "{}{}{}",
        http_rs(1, 200, 1),
        http_rs(2, 200, 1),
        http_rs(3, 200, 1)
    )));
    let mut servers = lb.tb.start_http_servers(80).unwrap();
    lb.wait_table(&[(&rs(1), 1), (&rs(2), 1), (&rs(3), 1)], DETECT);
    // Let every checker pass once (warmup is up to delay_loop).
    std::thread::sleep(Duration::from_millis(1500));
    let load = Load::start(&lb.tb);
    assert!(
        load.wait_for("rs2", Instant::now(), Duration::from_secs(3))
            .is_some(),
        "rs2 answers before it is stopped"
    );
    let stopped = Instant::now();
    servers[1].stop(Duration::from_secs(2));
    let gone = lb.wait_table(&[(&rs(1), 1), (&rs(3), 1)], DETECT + Duration::from_secs(1));
    let deadline = stopped + DETECT;
    assert!(
        gone <= deadline + Duration::from_millis(200),
        "rs2 left the table {:?} after it stopped (limit {DETECT:?})",
        gone - stopped
    );
    // Keep sending past the deadline, then start rs2 again.
    std::thread::sleep(Duration::from_secs(2));
    let restarted = Instant::now();
    servers[1] = lb.http_server(2, 80, "rs2");
    let back = load.wait_for("rs2", restarted, DETECT + Duration::from_secs(2));
    assert!(
        back.is_some(),
        "rs2 gets no traffic after its restart:\n{}\n{}",
        lb.xvsd.adm_ok(&["-Ln"]),
        lb.xvsd.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let log = load.finish();
    assert!(log.len() > 60, "only {} requests were sent", log.len());
    // Only the requests scheduled to rs2 between its stop and its removal
    // may fail (reset by rs2's kernel, as with LVS and keepalived); after
    // the deadline every request is answered, and none by the dead rs2.
    for (t, r) in &log {
        if *t >= gone && *t < restarted {
            assert!(
                matches!(r.as_deref(), Ok("rs1") | Ok("rs3")),
                "request {:?} after rs2 left: {r:?}",
                *t - stopped
            );
        }
        if *t < stopped || *t >= restarted {
            assert!(
                r.is_ok(),
                "request {:?} after the stop failed: {r:?}",
                *t - stopped
            );
        }
    }
    let after = log
        .iter()
        .filter(|(t, _)| *t >= gone && *t < restarted)
        .count();
    assert!(after >= 20, "only {after} requests while rs2 was out");
    let failed = log.iter().filter(|(_, r)| r.is_err()).count();
    eprintln!(
        "{} requests, {failed} failed (all between rs2's stop and its removal {:?} later)",
        log.len(),
        gone - stopped
    );
    assert!(failed <= 20, "{failed} requests failed");
    // The transitions are logged with their reason.
    let xlog = lb.xvsd.log();
    assert!(
        xlog.contains(&format!("[{}]:80 of TCP {VIP}:80: DOWN", rs_ip(2))),
        "{xlog}"
    );
    assert!(
        xlog.contains(&format!("[{}]:80 of TCP {VIP}:80: UP", rs_ip(2))),
        "{xlog}"
    );
    let h = lb.xvsd.api("{\"op\":\"health\"}");
    assert!(h.contains("\"transitions\":2"), "{h}");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn wrong_status_code_marks_down_and_the_sorry_server_takes_over() {
    // rs3 expects 404 from a server that answers 200: down. The sorry
    // server listens on rs3:8081.
    let body = format!(
        "  sorry_server {} 8081\n{}{}{}",
        rs_ip(3),
        http_rs(1, 200, 1),
        http_rs(2, 200, 1),
        http_rs(3, 404, 1)
    );
    let lb = Lb::start(&conf(&body));
    let mut servers = lb.tb.start_http_servers(80).unwrap();
    let _sorry = lb.http_server(3, 8081, "sorry");
    lb.wait_table(&[(&rs(1), 1), (&rs(2), 1)], DETECT);
    let h = lb.xvsd.api("{\"op\":\"health\"}");
    assert!(h.contains("HTTP status code 200 not accepted"), "{h}");
    let up3 = format!(
        "xvs_real_server_up{{proto=\"tcp\",vip=\"{VIP}\",vport=\"80\",rip=\"{}\",rport=\"80\",config_owned=\"true\"}} 0",
        rs_ip(3)
    );
    let m = lb.metrics_with(&[
        &up3,
        "xvs_dest_connections_total{",
        "xvs_dataplane_packets_total{counter=\"rx\"}",
    ]);
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert_eq!(lb.split(4), counts(&[("rs1", 2), ("rs2", 2)]));
    // The table's use, as the expiry scan (every second) counts it: at
    // least these four NAT connections, two entries each.
    let entries = |m: &str| -> Option<u64> {
        m.lines()
            .find_map(|l| l.strip_prefix("xvs_conn_table_entries "))
            .and_then(|v| v.trim().parse().ok())
    };
    let end = Instant::now() + Duration::from_secs(3);
    loop {
        let m = lb.metrics();
        match entries(&m) {
            Some(n) if n >= 8 && n % 2 == 0 => break,
            n => assert!(Instant::now() < end, "xvs_conn_table_entries {n:?}:\n{m}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every real server down: the sorry server answers.
    servers[0].stop(Duration::from_secs(2));
    servers[1].stop(Duration::from_secs(2));
    lb.wait_table(&[(&format!("{}:8081", rs_ip(3)), 1)], DETECT + DETECT);
    assert_eq!(lb.split(3), counts(&[("sorry", 3)]));
    lb.metrics_with(&[&format!(
        "xvs_service_sorry_server_active{{proto=\"tcp\",vip=\"{VIP}\",vport=\"80\"}} 1"
    )]);
    // One back: quorum (1) is back, the sorry server leaves.
    servers[0] = lb.http_server(1, 80, "rs1");
    lb.wait_table(&[(&rs(1), 1)], DETECT + DETECT);
    assert_eq!(lb.split(3), counts(&[("rs1", 3)]));
    let xlog = lb.xvsd.log();
    assert!(xlog.contains("Lost quorum"), "{xlog}");
    assert!(xlog.contains("Gained quorum"), "{xlog}");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn sighup_changes_weights_keeps_connections_and_refuses_bad_configs() {
    let tcp_rs = |n: u8, w: u32| {
        format!(
            "  real_server {} 80 {{\n    weight {w}\n    TCP_CHECK {{\n      connect_timeout 1\n    }}\n  }}\n",
            rs_ip(n)
        )
    };
    let sched =
        |s: &str, body: String| conf(&body).replace("lvs_sched rr", &format!("lvs_sched {s}"));
    let lb = Lb::start(&sched(
        "wrr",
        format!("{}{}{}", tcp_rs(1, 1), tcp_rs(2, 1), tcp_rs(3, 1)),
    ));
    let _servers = lb.tb.start_http_servers(80).unwrap();
    lb.wait_table(&[(&rs(1), 1), (&rs(2), 1), (&rs(3), 1)], DETECT);
    // A runtime service beside the configuration's.
    lb.xvsd
        .adm_ok(&["-A", "-t", &format!("{VIP}:8080"), "-s", "rr"]);
    // An open keep-alive connection.
    let ka = in_netns(&lb.tb.ns(Node::Client), || {
        let mut s = connect(&format!("{VIP}:80")).unwrap();
        let who = request(&mut s, true).unwrap();
        (s, who)
    });
    let (mut ka, who) = ka;
    assert_eq!(
        lb.split(30),
        counts(&[("rs1", 10), ("rs2", 10), ("rs3", 10)])
    );
    lb.rewrite(&sched(
        "wrr",
        format!("{}{}{}", tcp_rs(1, 3), tcp_rs(2, 2), tcp_rs(3, 1)),
    ));
    lb.sighup();
    lb.wait_table(
        &[(&rs(1), 3), (&rs(2), 2), (&rs(3), 1)],
        Duration::from_secs(3),
    );
    assert_eq!(
        request(&mut ka, true).unwrap(),
        who,
        "the open connection still works"
    );
    assert_eq!(
        lb.split(30),
        counts(&[("rs1", 15), ("rs2", 10), ("rs3", 5)])
    );
    let list = lb.xvsd.adm_ok(&["-Ln"]);
    assert!(list.contains(&format!("TCP  {VIP}:8080 rr")), "{list}");
    // A configuration with errors is refused; the table stays.
    lb.rewrite(&sched(
        "nosuch",
        format!("{}{}", tcp_rs(1, 1), tcp_rs(2, 1)),
    ));
    lb.sighup();
    lb.xvsd
        .proc()
        .wait_for_log("configuration refused", Duration::from_secs(3))
        .unwrap();
    let file = lb.conf.display().to_string();
    assert!(
        lb.xvsd.log().contains(&format!("{file}:11: lvs_sched")),
        "{}",
        lb.xvsd.log()
    );
    let r = lb.xvsd.api("{\"op\":\"reload\"}");
    assert!(
        r.contains("\"result\":\"error\"") && r.contains(&format!("{file}:11: lvs_sched")),
        "{r}"
    );
    assert_eq!(lb.table(), {
        let mut v = vec![(rs(1), 3), (rs(2), 2), (rs(3), 1)];
        v.sort();
        v
    });
    assert_eq!(request(&mut ka, true).unwrap(), who);
    // Drop rs3 and the runtime service survives a good reload too.
    lb.rewrite(&sched("wrr", format!("{}{}", tcp_rs(1, 1), tcp_rs(2, 1))));
    let r = lb.xvsd.api("{\"op\":\"reload\"}");
    assert!(r.contains("\"result\":\"reload\""), "{r}");
    lb.wait_table(&[(&rs(1), 1), (&rs(2), 1)], Duration::from_secs(2));
    let list = lb.xvsd.adm_ok(&["-Ln"]);
    assert!(list.contains(&format!("TCP  {VIP}:8080 rr")), "{list}");
}
