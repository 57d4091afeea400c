//! The engine's keepalived rules, with in-process probes and tokio's paused
//! clock: exact, fast and free of timing flakiness.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::rs_id;
use tokio::time::Instant;
use xvs_health::config::{CheckKind, CheckerConfig, CustomCheck, Probe};
use xvs_health::{EngineError, HealthEngine, Outcome, RsSpec};

/// A probe whose health the test flips, recording when it runs.
struct Flip {
    healthy: AtomicBool,
    weight: AtomicU32,
    calls: Mutex<Vec<Instant>>,
}

impl Flip {
    fn new(healthy: bool) -> Arc<Flip> {
        Arc::new(Flip {
            healthy: AtomicBool::new(healthy),
            weight: AtomicU32::new(u32::MAX),
            calls: Mutex::new(Vec::new()),
        })
    }
    fn set(&self, h: bool) {
        self.healthy.store(h, Ordering::SeqCst);
    }
    fn calls_since(&self, t0: Instant) -> Vec<Duration> {
        self.calls.lock().unwrap().iter().map(|t| *t - t0).collect()
    }
}

impl Probe for Flip {
    fn probe(
        &self,
        _target: SocketAddr,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + '_>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(Instant::now());
            if self.healthy.load(Ordering::SeqCst) {
                let w = self.weight.load(Ordering::SeqCst);
                Outcome {
                    ok: true,
                    message: "probe ok".into(),
                    weight: (w != u32::MAX).then_some(w),
                }
            } else {
                Outcome::down("probe failed")
            }
        })
    }
}

fn checker(p: &Arc<Flip>, delay_loop: u64, retry: u32, dbr: u64) -> CheckerConfig {
    let mut c = CheckerConfig::new(CheckKind::Custom(CustomCheck {
        name: "PROBE".into(),
        probe: p.clone(),
    }));
    c.common.delay_loop = Some(Duration::from_secs(delay_loop));
    c.common.retry = Some(retry);
    c.common.delay_before_retry = Some(Duration::from_secs(dbr));
    c.common.warmup = Some(Duration::ZERO);
    c
}

fn secs(v: &[u64]) -> Vec<Duration> {
    v.iter().map(|s| Duration::from_secs(*s)).collect()
}

fn id(n: u16) -> xvs_health::RsId {
    rs_id(SocketAddr::from(([127, 0, 0, 1], 10000 + n)))
}

#[tokio::test(start_paused = true)]
async fn retries_every_delay_before_retry_then_down_and_one_success_brings_it_back() {
    let (engine, mut rx) = HealthEngine::new();
    let p = Flip::new(true);
    let t0 = Instant::now();
    let st = engine
        .set_rs(RsSpec {
            id: id(1),
            checkers: vec![checker(&p, 10, 2, 3)],
        })
        .unwrap();
    assert!(st.up, "a non-alpha real server starts up");

    tokio::time::sleep(Duration::from_secs(5)).await;
    p.set(false);
    let t = rx.recv().await.unwrap();
    assert!(!t.up);
    assert!(t.reason.contains("probe failed") && t.reason.contains("after 2 retries"));
    // Checks at 0 (ok), 10 (fail), then retry 1 at 13, retry 2 at 16: down.
    assert_eq!(Instant::now() - t0, Duration::from_secs(16));
    assert_eq!(p.calls_since(t0), secs(&[0, 10, 13, 16]));

    p.set(true);
    let t = rx.recv().await.unwrap();
    assert!(t.up, "one success is enough to come back");
    assert_eq!(Instant::now() - t0, Duration::from_secs(26));
    let st = engine.state(&id(1)).unwrap();
    assert_eq!(st.transitions, 2);
    assert_eq!(st.last_result.as_deref(), Some("probe ok"));
    assert!(st.last_check.is_some());
    engine.stop().await;
}

#[tokio::test(start_paused = true)]
async fn one_failure_is_enough_at_start_and_a_success_in_between_resets_retries() {
    let (engine, mut rx) = HealthEngine::new();
    let p = Flip::new(false);
    let t0 = Instant::now();
    engine
        .set_rs(RsSpec {
            id: id(2),
            checkers: vec![checker(&p, 10, 3, 1)],
        })
        .unwrap();
    let t = rx.recv().await.unwrap();
    assert!(!t.up);
    assert_eq!(Instant::now() - t0, Duration::ZERO, "no retries at start");
    assert!(!t.reason.contains("retries"));

    // Back up at 10; then fail, succeed, fail: never down.
    p.set(true);
    assert!(rx.recv().await.unwrap().up);
    assert_eq!(Instant::now() - t0, Duration::from_secs(10));
    p.set(false);
    tokio::time::sleep(Duration::from_secs(10) + Duration::from_millis(500)).await; // fail at 20
    p.set(true); // retry at 21 succeeds
    tokio::time::sleep(Duration::from_secs(11)).await; // ok at 31
    p.set(false); // fail at 41, retries 42, 43, 44 → down at 44
    let t = rx.recv().await.unwrap();
    assert!(!t.up);
    assert_eq!(Instant::now() - t0, Duration::from_secs(44));
    assert_eq!(
        p.calls_since(t0),
        secs(&[0, 10, 20, 21, 31, 41, 42, 43, 44])
    );
    engine.stop().await;
}

#[tokio::test(start_paused = true)]
async fn alpha_starts_down_and_confirms_with_a_transition() {
    let (engine, mut rx) = HealthEngine::new();
    let up = Flip::new(true);
    let mut c = checker(&up, 5, 1, 1);
    c.common.alpha = true;
    let st = engine
        .set_rs(RsSpec {
            id: id(3),
            checkers: vec![c.clone()],
        })
        .unwrap();
    assert!(!st.up, "alpha: down until the first success");
    assert!(rx.recv().await.unwrap().up);

    // An alpha checker whose first attempt fails: keepalived runs
    // notify_down once, so a (down) transition is reported.
    let down = Flip::new(false);
    let mut c = checker(&down, 5, 1, 1);
    c.common.alpha = true;
    engine
        .set_rs(RsSpec {
            id: id(4),
            checkers: vec![c],
        })
        .unwrap();
    let t = rx.recv().await.unwrap();
    assert_eq!((t.rs, t.up), (id(4), false));
    assert_eq!(engine.state(&id(4)).unwrap().transitions, 0);
    engine.stop().await;
}

#[tokio::test(start_paused = true)]
async fn up_only_when_all_checkers_are_up() {
    let (engine, mut rx) = HealthEngine::new();
    let a = Flip::new(true);
    let b = Flip::new(true);
    engine
        .set_rs(RsSpec {
            id: id(5),
            checkers: vec![checker(&a, 5, 0, 1), checker(&b, 7, 0, 1)],
        })
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    b.set(false);
    let t = rx.recv().await.unwrap();
    assert!(!t.up);
    a.set(false);
    b.set(true);
    // b comes back, but a is now down: still down, no transition until a is
    // back too.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(rx.try_recv().is_err());
    let st = engine.state(&id(5)).unwrap();
    assert!(!st.up);
    assert!(!st.checkers[0].up && st.checkers[1].up);
    a.set(true);
    assert!(rx.recv().await.unwrap().up);
    engine.stop().await;
}

#[tokio::test(start_paused = true)]
async fn dynamic_weight_changes_are_reported_and_reset_on_down() {
    let (engine, mut rx) = HealthEngine::new();
    let p = Flip::new(true);
    p.weight.store(5, Ordering::SeqCst);
    engine
        .set_rs(RsSpec {
            id: id(6),
            checkers: vec![checker(&p, 5, 0, 1)],
        })
        .unwrap();
    let t = rx.recv().await.unwrap();
    assert_eq!((t.up, t.weight), (true, Some(5)));
    p.weight.store(u32::MAX, Ordering::SeqCst); // exit 0: configured weight
    let t = rx.recv().await.unwrap();
    assert_eq!((t.up, t.weight), (true, None));
    assert_eq!(engine.state(&id(6)).unwrap().transitions, 0);
    p.weight.store(9, Ordering::SeqCst);
    let t = rx.recv().await.unwrap();
    assert_eq!((t.up, t.weight), (true, Some(9)));
    p.set(false);
    let t = rx.recv().await.unwrap();
    assert_eq!((t.up, t.weight), (false, None));
    assert_eq!(engine.state(&id(6)).unwrap().transitions, 1);
    engine.stop().await;
}

#[tokio::test(start_paused = true)]
async fn reload_keeps_state_of_unchanged_and_matching_checkers() {
    let (engine, mut rx) = HealthEngine::new();
    let a = Flip::new(false);
    let spec = RsSpec {
        id: id(7),
        checkers: vec![checker(&a, 10, 1, 1)],
    };
    engine.set_rs(spec.clone()).unwrap();
    assert!(!rx.recv().await.unwrap().up);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Same spec: nothing restarts (no extra attempt), state kept.
    let calls = a.calls_since(Instant::now()).len();
    let st = engine.set_rs(spec.clone()).unwrap();
    assert!(!st.up && st.transitions == 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(a.calls_since(Instant::now()).len(), calls);

    // A new timing for the same check: its down state migrates.
    let mut slower = spec.clone();
    slower.checkers[0].common.delay_loop = Some(Duration::from_secs(20));
    let b = Flip::new(true);
    slower.checkers.push(checker(&b, 10, 1, 1));
    let st = engine.set_rs(slower).unwrap();
    assert!(!st.up && st.transitions == 1);
    assert!(!st.checkers[0].up && st.checkers[0].has_run);

    // Drop the failing checker: the real server comes up by the reload.
    let only_b = RsSpec {
        id: id(7),
        checkers: vec![checker(&b, 10, 1, 1)],
    };
    engine.set_rs(only_b).unwrap();
    let t = rx.recv().await.unwrap();
    assert!(t.up && t.reason.contains("reload"));
    assert_eq!(engine.state(&id(7)).unwrap().transitions, 2);
    engine.stop().await;
}

#[tokio::test(start_paused = true)]
async fn remove_sync_and_stop() {
    let (engine, mut rx) = HealthEngine::new();
    let a = Flip::new(true);
    let b = Flip::new(true);
    engine
        .sync(vec![
            RsSpec {
                id: id(8),
                checkers: vec![checker(&a, 5, 0, 1)],
            },
            RsSpec {
                id: id(9),
                checkers: vec![checker(&b, 5, 0, 1)],
            },
        ])
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(engine.states().len(), 2);
    engine
        .sync(vec![RsSpec {
            id: id(9),
            checkers: vec![checker(&b, 5, 0, 1)],
        }])
        .unwrap();
    assert!(engine.state(&id(8)).is_none());
    let n = a.calls_since(Instant::now()).len();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        a.calls_since(Instant::now()).len(),
        n,
        "removed: no more checks"
    );
    assert!(!engine.remove_rs(&id(8)));

    // An invalid spec changes nothing.
    let bad = CheckerConfig::new(CheckKind::Http(Default::default()));
    let err = engine
        .sync(vec![RsSpec {
            id: id(10),
            checkers: vec![bad],
        }])
        .unwrap_err();
    assert!(matches!(err, EngineError::InvalidConfig { index: 0, .. }));
    assert!(engine.state(&id(9)).is_some());
    // A TCP check of a port-0 real server (a fwmark service's) needs
    // connect_port.
    let port0 = rs_id(SocketAddr::from(([127, 0, 0, 1], 0)));
    let err = engine
        .sync(vec![RsSpec {
            id: port0,
            checkers: vec![CheckerConfig::new(CheckKind::Tcp(Default::default()))],
        }])
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::InvalidConfig { msg, .. } if msg.contains("set connect_port")),
        "{err:?}"
    );
    assert!(engine.state(&id(9)).is_some(), "nothing changed");

    engine.stop().await;
    assert!(engine.states().is_empty());
    let err = engine
        .set_rs(RsSpec {
            id: id(9),
            checkers: vec![],
        })
        .unwrap_err();
    assert_eq!(err, EngineError::Stopped);
    assert!(rx.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn warmup_delays_the_first_check_by_at_most_warmup() {
    let (engine, _rx) = HealthEngine::new();
    let p = Flip::new(true);
    let mut c = checker(&p, 100, 0, 1);
    c.common.warmup = Some(Duration::from_secs(30));
    let t0 = Instant::now();
    engine
        .set_rs(RsSpec {
            id: id(11),
            checkers: vec![c],
        })
        .unwrap();
    tokio::time::sleep(Duration::from_secs(31)).await;
    let calls = p.calls_since(t0);
    assert_eq!(calls.len(), 1);
    assert!(calls[0] <= Duration::from_secs(30));
    engine.stop().await;
}

#[test]
fn keepalived_defaults() {
    use xvs_health::config::*;
    let t = CheckerConfig::new(CheckKind::Tcp(TcpCheck)).timing();
    assert_eq!(t.delay_loop, Duration::from_secs(60));
    assert_eq!(t.warmup, Duration::from_secs(60));
    assert_eq!(t.retry, 1);
    assert_eq!(t.delay_before_retry, Duration::from_secs(1));
    assert_eq!(t.connect_timeout, Duration::from_secs(5));
    let t = CheckerConfig::new(CheckKind::Http(HttpCheck::default())).timing();
    assert_eq!((t.retry, t.delay_before_retry), (1, Duration::from_secs(3)));
    let t = CheckerConfig::new(CheckKind::Misc(MiscCheck::default())).timing();
    assert_eq!(t.retry, 0);
    let mut dns = CheckerConfig::new(CheckKind::Dns(DnsCheck::default()));
    dns.common.delay_loop = Some(Duration::from_secs(7));
    let t = dns.timing();
    assert_eq!((t.retry, t.delay_before_retry), (3, Duration::from_secs(7)));
    assert!(Url::new("/").status_ok(299) && !Url::new("/").status_ok(300));
    let p = HexPattern::parse("6b 6X 7", true).unwrap();
    assert_eq!(p.data, vec![0x6b, 0x60, 0x07]);
    assert_eq!(p.mask, vec![0, 0x0f, 0]);
    assert!(p.matches(b"\x6b\x6f"));
    assert!(!p.matches(b"\x6c"));
    assert!(HexPattern::parse("zz", true).is_err());
    assert_eq!(DnsType::from_name("aaaa"), Some(DnsType::Aaaa));
}
