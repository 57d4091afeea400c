//! The keepalived half's tests, through a daemon over an in-memory plane
//! and a fake health engine: loads and reloads, health transitions,
//! quorum and sorry servers, scripts, the health report,
//! `lvs_sync_daemon`.

use super::*;
use crate::daemon::Daemon;
use crate::testing::{list, Mem, LIMITS};
use std::cell::RefCell;
use std::io::Write;
use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::rc::Rc;
use xvs_core::api::Response;
use xvs_core::model::{FwdMethod, Protocol, Service, Stats, SyncState};
use xvs_health::{RsSpec, Transition};
use xvs_keepalived::ScriptUser;

#[derive(Default)]
struct Inner {
    states: BTreeMap<RsId, RsState>,
    pending: Vec<Transition>,
    scripts: Vec<String>,
}

#[derive(Clone, Default)]
struct Fake(Rc<RefCell<Inner>>);

impl Fake {
    /// The health engine reports `addr` of the service on port 80.
    fn set(&self, port: u16, last: u8, up: bool, weight: Option<u32>) {
        let id = rs(port, last);
        let mut i = self.0.borrow_mut();
        let st = i.states.get_mut(&id).expect("known real server");
        if st.up != up {
            st.transitions += 1;
        }
        st.up = up;
        st.weight = weight;
        i.pending.push(Transition {
            rs: id,
            up,
            reason: if up {
                "check ok".into()
            } else {
                "check failed".into()
            },
            weight,
        });
    }
    fn scripts(&self) -> Vec<String> {
        std::mem::take(&mut self.0.borrow_mut().scripts)
    }
}

impl Health for Fake {
    fn sync(&mut self, specs: Vec<RsSpec>) -> Result<(), String> {
        let mut i = self.0.borrow_mut();
        let keep: BTreeSet<RsId> = specs.iter().map(|s| s.id).collect();
        i.states.retain(|k, _| keep.contains(k));
        for s in specs {
            i.states.entry(s.id).or_insert(RsState {
                up: !s.checkers.iter().any(|c| c.common.alpha),
                weight: None,
                last_result: None,
                last_check: None,
                transitions: 0,
                checkers: vec![],
            });
        }
        Ok(())
    }
    fn states(&self) -> Vec<(RsId, RsState)> {
        self.0
            .borrow()
            .states
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }
    fn take_transitions(&mut self) -> Vec<Transition> {
        std::mem::take(&mut self.0.borrow_mut().pending)
    }
    fn run_script(&self, s: &Script, _: Option<&xvs_keepalived::ScriptUser>, what: &str) {
        self.0
            .borrow_mut()
            .scripts
            .push(format!("{what}: {}", s.args.join(" ")));
    }
    fn run_scripts_and_wait(
        &self,
        scripts: Vec<(Script, String)>,
        u: Option<&xvs_keepalived::ScriptUser>,
        _: Duration,
    ) {
        for (s, w) in scripts {
            self.run_script(&s, u, &w);
        }
    }
}

fn vip() -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 1)
}

fn key(port: u16) -> ServiceKey {
    ServiceKey {
        fwmark: 0,
        proto: Protocol::Tcp,
        addr: IpAddr::V4(vip()),
        port,
    }
}

fn rs(port: u16, last: u8) -> RsId {
    RsId {
        service: key(port),
        dest: std::net::SocketAddr::from(([10, 0, 1, last], 80)),
    }
}

struct T {
    d: Daemon<Mem>,
    h: Fake,
    file: PathBuf,
    dir: PathBuf,
}

impl Drop for T {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn start(conf: &str, state: bool) -> T {
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("xvsd-lvs-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keepalived.conf");
    std::fs::write(&file, conf).unwrap();
    let sf = state.then(|| dir.join("state"));
    let mut d = Daemon::new(Mem::default(), LIMITS, sf).unwrap();
    let h = Fake::default();
    let lvs = Lvs::new(
        file.clone(),
        Options { config_id: None },
        Box::new(h.clone()),
    );
    d.use_config(lvs).unwrap_or_else(|e| panic!("{e:?}"));
    T { d, h, file, dir }
}

impl T {
    fn rewrite(&self, conf: &str) {
        std::fs::write(&self.file, conf).unwrap();
    }
    fn events(&mut self) {
        self.d.health_events();
    }
    /// (last octet, weight) of each dest of the service on `port`, sorted.
    fn dests(&mut self, port: u16) -> Vec<(u8, u32)> {
        let t = list(&mut self.d);
        let mut v: Vec<(u8, u32)> = t
            .services
            .iter()
            .find(|s| s.service.key == key(port))
            .map(|s| {
                s.dests
                    .iter()
                    .map(|d| (last_octet(d.dest.addr), d.dest.weight))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
    fn services(&mut self) -> Vec<u16> {
        list(&mut self.d)
            .services
            .iter()
            .map(|s| s.service.key.port)
            .collect()
    }
}

fn conf(body: &str) -> String {
    format!(
        "global_defs {{\n  lvs_timeouts tcp 1000\n}}\n\
         virtual_server 10.0.0.1 80 {{\n  protocol TCP\n  lvs_sched wrr\n  lvs_method NAT\n{body}}}\n"
    )
}

fn rs_block(last: u8, extra: &str) -> String {
    format!("  real_server 10.0.1.{last} 80 {{\n{extra}    TCP_CHECK {{\n    }}\n  }}\n")
}

fn three(weights: [u32; 3], extra: &str) -> String {
    let mut b = String::from(extra);
    for (i, w) in weights.iter().enumerate() {
        b.push_str(&rs_block(
            i as u8 + 1,
            &format!(
                "    weight {w}\n    notify_up \"/bin/up {}\"\n    notify_down \"/bin/down {}\"\n",
                i + 1,
                i + 1
            ),
        ));
    }
    conf(&b)
}

#[test]
fn load_owns_its_services_and_applies_lvs_timeouts() {
    let mut t = start(&three([1, 2, 3], ""), false);
    assert_eq!(t.dests(80), [(1, 1), (2, 2), (3, 3)]);
    assert_eq!(t.d.model.owned, BTreeSet::from([key(80)]));
    assert_eq!(t.d.timeouts().tcp, 1000);
    let s = t.d.model.service(&key(80)).unwrap();
    assert_eq!(s.service.scheduler, "wrr");
    assert!(s.dests.iter().all(|d| d.dest.fwd == FwdMethod::Masq));
}

#[test]
fn reload_diffs_keeps_runtime_services_and_unchanged_dests() {
    let mut t = start(&three([1, 2, 3], ""), false);
    // A runtime service beside the configuration's.
    let r = t.d.handle(Request::AddService {
        service: Service::new(key(8080), "rr"),
    });
    assert_eq!(r, Response::Ok);
    let id_of = |t: &T, last: u8| {
        t.d.model
            .service(&key(80))
            .unwrap()
            .dests
            .iter()
            .find(|d| last_octet(d.dest.addr) == last)
            .unwrap()
            .id
    };
    let id1 = id_of(&t, 1);
    t.d.plane_mut().stats.insert(
        id1,
        Stats {
            conns: 42,
            ..Stats::default()
        },
    );
    // rs2's weight changes, rs3 goes, a second service comes.
    let mut c = conf(&format!(
        "{}{}",
        rs_block(1, "    weight 1\n"),
        rs_block(2, "    weight 5\n")
    ));
    c.push_str(
        "virtual_server 10.0.0.1 81 {\n  protocol TCP\n  real_server 10.0.1.9 81 {\n  }\n}\n",
    );
    t.rewrite(&c);
    let rep = t.d.reload().unwrap();
    assert_eq!((rep.services, rep.real_servers, rep.changes), (2, 3, 4));
    assert_eq!(t.dests(80), [(1, 1), (2, 5)]);
    assert_eq!(id_of(&t, 1), id1, "rs1 keeps its slot");
    assert_eq!(t.d.plane_mut().stats[&id1].conns, 42, "and its counters");
    assert_eq!(t.services(), [80, 81, 8080]);
    assert_eq!(t.d.model.owned, BTreeSet::from([key(80), key(81)]));
    // A configuration without port 80: the owned service goes, the
    // runtime one stays.
    t.rewrite(
        "virtual_server 10.0.0.1 81 {\n  protocol TCP\n  real_server 10.0.1.9 81 {\n  }\n}\n",
    );
    t.d.reload().unwrap();
    assert_eq!(t.services(), [81, 8080]);
}

#[test]
fn a_bad_configuration_is_refused_and_the_table_kept() {
    let mut t = start(&three([1, 2, 3], ""), false);
    let before = list(&mut t.d);
    let f = t.file.display().to_string();
    // A parse error, then something xvsd cannot run.
    t.rewrite(&conf(
        "  lvs_sched nosuch\n  real_server 10.0.1.1 80 {\n  }\n",
    ));
    let errs = t.d.reload().unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(&format!("{f}:8: lvs_sched")),
        "{errs:?}"
    );
    t.rewrite(&conf("  real_server 10.0.1.1 80 {\n    SMTP_CHECK {\n    }\n  }\n  real_server 10.0.1.2 80 {\n    PING_CHECK {\n    }\n  }\n"));
    let errs = t.d.reload().unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with(&format!("{f}:9: SMTP_CHECK is not supported")),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with(&format!("{f}:13: PING_CHECK is not supported")),
        "{errs:?}"
    );
    assert_eq!(list(&mut t.d), before);
    assert_eq!(t.d.health_report().reload_failures, 2);
    assert_eq!(
        t.h.states().len(),
        3,
        "the checkers are those of the running configuration"
    );
}

#[test]
fn failing_servers_leave_and_come_back_with_scripts() {
    let mut t = start(&three([1, 2, 3], ""), false);
    t.h.set(80, 2, false, None);
    t.events();
    assert_eq!(t.dests(80), [(1, 1), (3, 3)]);
    assert_eq!(
        t.h.scripts(),
        ["notify_down of [10.0.1.2]:80 of TCP 10.0.0.1:80: /bin/down 2"]
    );
    t.h.set(80, 2, true, None);
    t.events();
    assert_eq!(t.dests(80), [(1, 1), (2, 2), (3, 3)]);
    assert_eq!(
        t.h.scripts(),
        ["notify_up of [10.0.1.2]:80 of TCP 10.0.0.1:80: /bin/up 2"]
    );
    // misc_dynamic weight: applied, no script.
    t.h.set(80, 3, true, Some(9));
    t.events();
    assert_eq!(t.dests(80), [(1, 1), (2, 2), (3, 9)]);
    assert!(t.h.scripts().is_empty());
    let rep = t.d.health_report();
    let r = &rep.services[0].real_servers[1];
    assert_eq!((last_octet(r.addr), r.up, r.transitions), (2, true, 2));
}

#[test]
fn inhibit_on_failure_drains_at_weight_zero() {
    let mut t = start(&three([1, 2, 3], "  inhibit_on_failure\n"), false);
    t.h.set(80, 1, false, None);
    t.events();
    assert_eq!(t.dests(80), [(1, 0), (2, 2), (3, 3)]);
    t.h.set(80, 1, true, None);
    t.events();
    assert_eq!(t.dests(80), [(1, 1), (2, 2), (3, 3)]);
}

#[test]
fn alpha_servers_start_out_of_the_table() {
    let mut t = start(&three([1, 2, 3], "  alpha\n"), false);
    assert!(t.dests(80).is_empty());
    t.h.set(80, 1, true, None);
    t.events();
    assert_eq!(t.dests(80), [(1, 1)]);
}

#[test]
fn a_restart_keeps_alpha_servers_that_were_serving() {
    let mut t = start(&three([1, 2, 3], "  alpha\n"), true);
    t.h.set(80, 1, true, None);
    t.events();
    assert_eq!(t.dests(80), [(1, 1)]);
    // xvsd restarts on the same state file and configuration.
    let mut d = Daemon::new(Mem::default(), LIMITS, Some(t.dir.join("state"))).unwrap();
    let h = Fake::default();
    let lvs = Lvs::new(
        t.file.clone(),
        Options { config_id: None },
        Box::new(h.clone()),
    );
    d.use_config(lvs).unwrap();
    let mut t2 = T {
        d,
        h,
        file: t.file.clone(),
        dir: t.dir.clone(),
    };
    assert_eq!(t2.dests(80), [(1, 1)], "rs1 was serving: it stays");
}

#[test]
fn sorry_server_and_quorum() {
    let extra = "  sorry_server 10.0.1.99 80\n  quorum 3\n  hysteresis 1\n  quorum_up /bin/qup\n  quorum_down /bin/qdown\n";
    let mut t = start(&three([1, 2, 3], extra), false);
    assert_eq!(t.dests(80), [(1, 1), (2, 2), (3, 3)]);
    // 6 alive; lost below 3 - 1 = 2.
    t.h.set(80, 3, false, None);
    t.events();
    assert_eq!(t.dests(80), [(1, 1), (2, 2)]);
    t.h.scripts();
    // 1 alive < 2: lost, the sorry server takes over from rs1.
    t.h.set(80, 2, false, None);
    t.events();
    assert_eq!(t.dests(80), [(99, 1)]);
    assert_eq!(
        t.h.scripts(),
        [
            "notify_down of [10.0.1.2]:80 of TCP 10.0.0.1:80: /bin/down 2",
            "quorum_down of TCP 10.0.0.1:80: /bin/qdown"
        ]
    );
    t.h.set(80, 1, false, None);
    t.events();
    assert_eq!(t.dests(80), [(99, 1)]);
    // Back: 2 alive < 3 + 1: still the sorry server.
    t.h.set(80, 2, true, None);
    t.events();
    assert_eq!(t.dests(80), [(99, 1)]);
    // 5 >= 4: gained, the sorry server leaves, the alive ones come in.
    t.h.set(80, 3, true, None);
    t.events();
    assert_eq!(t.dests(80), [(2, 2), (3, 3)]);
    let s = t.h.scripts();
    assert!(
        s.contains(&"quorum_up of TCP 10.0.0.1:80: /bin/qup".to_string()),
        "{s:?}"
    );
    let rep = t.d.health_report();
    assert_eq!(rep.services[0].quorum_up, Some(true));
    assert!(!rep.services[0].sorry_active);
}

#[test]
fn the_sorry_server_answers_when_every_server_is_down() {
    let mut t = start(
        &three(
            [1, 1, 1],
            "  sorry_server 10.0.1.99 80\n  sorry_server_inhibit\n  quorum_down /bin/qdown\n",
        ),
        false,
    );
    assert_eq!(t.dests(80), [(1, 1), (2, 1), (3, 1), (99, 0)]);
    for i in 1..=3 {
        t.h.set(80, i, false, None);
    }
    t.events();
    assert_eq!(t.dests(80), [(99, 1)]);
    assert!(t
        .h
        .scripts()
        .contains(&"quorum_down of TCP 10.0.0.1:80: /bin/qdown".to_string()));
    t.h.set(80, 2, true, None);
    t.events();
    assert_eq!(t.dests(80), [(2, 1), (99, 0)]);
}

#[test]
fn runtime_changes_last_until_the_next_reload() {
    let mut t = start(&three([1, 2, 3], ""), true);
    let mut d = Dest::new(Ipv4Addr::new(10, 0, 1, 3), 80);
    d.fwd = FwdMethod::Masq;
    d.weight = 7;
    assert_eq!(
        t.d.handle(Request::EditDest {
            key: key(80),
            dest: d
        }),
        Response::Ok
    );
    t.h.set(80, 1, false, None);
    t.events();
    assert_eq!(t.dests(80), [(2, 2), (3, 7)], "the runtime weight stays");
    t.d.reload().unwrap();
    assert_eq!(t.dests(80), [(2, 2), (3, 3)], "the configuration wins");
    // -D ends ownership: health changes no longer touch it.
    assert_eq!(
        t.d.handle(Request::DelService { key: key(80) }),
        Response::Ok
    );
    assert!(t.d.model.owned.is_empty());
    t.h.set(80, 1, true, None);
    t.events();
    assert!(t.services().is_empty());
    // The state file keeps ownership across restarts.
    t.d.reload().unwrap();
    let saved = std::fs::read_to_string(t.dir.join("state")).unwrap();
    let m: crate::table::Model = serde_json::from_str(&saved).unwrap();
    assert_eq!(m.owned, BTreeSet::from([key(80)]));
}

#[test]
fn omega_runs_the_down_scripts_at_shutdown() {
    let mut t = start(
        &three([1, 1, 1], "  omega\n  quorum_down /bin/qdown\n"),
        false,
    );
    t.h.set(80, 1, false, None);
    t.events();
    t.h.scripts();
    t.d.shutdown_lvs();
    let mut s = t.h.scripts();
    s.sort();
    assert_eq!(
        s,
        [
            "notify_down of [10.0.1.2]:80 of TCP 10.0.0.1:80 (omega): /bin/down 2",
            "notify_down of [10.0.1.3]:80 of TCP 10.0.0.1:80 (omega): /bin/down 3",
            "quorum_down of TCP 10.0.0.1:80 (omega): /bin/qdown",
        ]
    );
}

#[test]
fn health_and_metrics_report_runtime_dests_too() {
    let mut t = start(&three([1, 2, 3], ""), false);
    let mut d = Dest::new(Ipv4Addr::new(10, 0, 1, 50), 80);
    d.fwd = FwdMethod::Masq;
    assert_eq!(
        t.d.handle(Request::AddDest {
            key: key(80),
            dest: d
        }),
        Response::Ok
    );
    let rep = t.d.health_report();
    let extra = rep.services[0]
        .real_servers
        .iter()
        .find(|r| last_octet(r.addr) == 50)
        .unwrap();
    assert!(!extra.config_owned && !extra.checked && extra.in_table);
    let text = t.d.metrics_text();
    assert!(text.contains("xvs_real_server_up{proto=\"tcp\",vip=\"10.0.0.1\",vport=\"80\",rip=\"10.0.1.50\",rport=\"80\",config_owned=\"false\"} 1"), "{text}");
    assert!(
        text.contains("# TYPE xvs_dest_connections_total counter"),
        "{text}"
    );
    assert!(
        text.contains("xvs_service_quorum_up{proto=\"tcp\",vip=\"10.0.0.1\",vport=\"80\"} 1"),
        "{text}"
    );
    // The health answer is plain JSON.
    let line = crate::server::answer_line(&mut t.d, b"{\"op\":\"health\"}");
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(v["result"], "health");
    assert_eq!(v["health"]["services"][0]["real_servers"][0]["up"], true);
    let line = crate::server::answer_line(&mut t.d, b"{\"op\":\"reload\"}");
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(v["result"], "reload", "{v}");
}

// lvs_sync_daemon

/// Health checking with no real servers (the configurations below
/// have none).
struct NoChecks;

impl Health for NoChecks {
    fn sync(&mut self, _: Vec<RsSpec>) -> Result<(), String> {
        Ok(())
    }
    fn states(&self) -> Vec<(RsId, RsState)> {
        Vec::new()
    }
    fn take_transitions(&mut self) -> Vec<Transition> {
        Vec::new()
    }
    fn run_script(&self, _: &Script, _: Option<&ScriptUser>, _: &str) {}
    fn run_scripts_and_wait(&self, _: Vec<(Script, String)>, _: Option<&ScriptUser>, _: Duration) {}
}

fn roles(d: &Daemon<Mem>) -> Vec<SyncState> {
    d.sync_daemons().iter().map(|s| s.state).collect()
}

#[test]
fn the_sync_daemon_follows_the_instance_keepalived_reports() {
    let dir = std::env::temp_dir().join(format!("xvsd-lvs-sync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("notify.fifo");
    let file = dir.join("keepalived.conf");
    let conf = |sync: &str| {
        format!(
            "global_defs {{\n  notify_fifo {}\n{sync}}}\n\
             vrrp_instance VI_1 {{\n  interface lo\n  virtual_router_id 51\n}}\n",
            fifo.display()
        )
    };
    std::fs::write(&file, conf("  @xvsd lvs_sync_daemon lo VI_1\n")).unwrap();
    let mut d = Daemon::new(Mem::default(), LIMITS, None).unwrap();
    let lvs = Lvs::new(
        file.clone(),
        Options { config_id: None },
        Box::new(NoChecks),
    );
    d.use_config(lvs).unwrap();
    // Backup until keepalived says MASTER; the syncid is the VRID.
    assert_eq!(roles(&d), [SyncState::Backup]);
    assert_eq!(d.sync_daemons()[0].syncid, 51);
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(b"INSTANCE \"VI_2\" MASTER 100\nINSTANCE \"VI_1\" MASTER 100\n")
        .unwrap();
    d.vrrp_events();
    assert_eq!(roles(&d), [SyncState::Master]);
    w.write_all(b"INSTANCE \"VI_1\" FAULT 0\n").unwrap();
    d.vrrp_events();
    assert_eq!(roles(&d), [SyncState::Backup]);
    // Without an instance both run; without the line neither.
    std::fs::write(&file, conf("  @xvsd lvs_sync_daemon lo\n")).unwrap();
    d.reload().unwrap();
    assert_eq!(roles(&d), [SyncState::Master, SyncState::Backup]);
    std::fs::write(&file, conf("")).unwrap();
    d.reload().unwrap();
    assert!(roles(&d).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

fn fwm_conf(rules: &str) -> String {
    format!(
        "virtual_server fwmark 1 {{\n{rules}  lb_algo rr\n  lb_kind DR\n  persistence_timeout 60\n  \
         real_server 10.0.1.1 {{\n  }}\n}}\n"
    )
}

fn mark_rule(mark: u32, last: u8, proto: Protocol) -> xvs_core::fwmark::MarkRule {
    xvs_core::fwmark::MarkRule {
        mark,
        proto,
        addr: Ipv4Addr::new(10, 0, 0, last),
        prefix_len: 32,
        ports: vec![],
    }
}

#[test]
fn a_reload_reconciles_its_mark_rules_and_keeps_xvsadms() {
    let mut t = start(
        &fwm_conf("  @xvsd match tcp 10.0.0.1\n  @xvsd match udp 10.0.0.1\n"),
        false,
    );
    let fwm = ServiceKey::fwmark(1);
    assert!(t.d.model.services.contains_key(&fwm));
    assert_eq!(
        t.d.model.mark_rules,
        [
            mark_rule(1, 1, Protocol::Tcp),
            mark_rule(1, 1, Protocol::Udp)
        ]
    );
    let in_model = t.d.model.mark_rules.clone();
    assert_eq!(t.d.plane_mut().mark_rules, in_model);
    // What `xvsadm --add-mark -t 10.0.0.9 -f 9` leaves (its request is
    // not this module's business).
    let extra = mark_rule(9, 9, Protocol::Tcp);
    t.d.model.mark_rules.push(extra.clone());
    t.d.plane_mut().mark_rules.push(extra.clone());
    // The UDP rule goes, a TCP rule for 10.0.0.2 comes.
    t.rewrite(&fwm_conf(
        "  @xvsd match tcp 10.0.0.1\n  @xvsd match tcp 10.0.0.2\n",
    ));
    let rep = t.d.reload().unwrap();
    assert_eq!(rep.changes, 2, "one rule out, one in, nothing else");
    let want = [
        mark_rule(1, 1, Protocol::Tcp),
        extra.clone(),
        mark_rule(1, 2, Protocol::Tcp),
    ];
    assert_eq!(t.d.model.mark_rules, want);
    assert_eq!(t.d.plane_mut().mark_rules, want);
    // A configuration that conflicts with xvsadm's rule is refused whole.
    t.rewrite(&fwm_conf("  @xvsd match tcp 10.0.0.9\n"));
    let errs = t.d.reload().unwrap_err();
    assert!(errs[0].contains("conflicts with mark 9"), "{errs:?}");
    assert_eq!(t.d.model.mark_rules, want);
    // Without fwmark services: the service and the config's rules go.
    t.rewrite(
        "virtual_server 10.0.0.1 81 {\n  protocol TCP\n  real_server 10.0.1.9 81 {\n  }\n}\n",
    );
    t.d.reload().unwrap();
    assert!(!t.d.model.services.contains_key(&fwm));
    assert_eq!(t.d.model.mark_rules, std::slice::from_ref(&extra));
    assert_eq!(t.d.plane_mut().mark_rules, [extra]);
    assert!(t.d.model.owned_marks.is_empty());
}

fn last_octet(a: std::net::IpAddr) -> u8 {
    match a {
        std::net::IpAddr::V4(a) => a.octets()[3],
        std::net::IpAddr::V6(a) => a.octets()[15],
    }
}
