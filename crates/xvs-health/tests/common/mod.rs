//! Helpers shared by the integration tests. Every server binds 127.0.0.1
//! on an ephemeral port; nothing leaves loopback.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use xvs_core::model::{Protocol, ServiceKey};
use xvs_health::config::{CheckKind, CheckerConfig};
use xvs_health::{RsId, Transition};

/// Upper bound for waiting on a transition in real-time tests: only there
/// so that a broken test fails instead of hanging; never a performance
/// assertion.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn rs_id(dest: SocketAddr) -> RsId {
    RsId {
        service: ServiceKey {
            fwmark: 0,
            proto: Protocol::Tcp,
            addr: "10.10.10.10".parse().unwrap(),
            port: 80,
        },
        dest,
    }
}

/// A checker with fast real-time settings: delay_loop 100 ms, no warmup,
/// retry 0, connect_timeout 2 s.
pub fn fast(kind: CheckKind) -> CheckerConfig {
    let mut c = CheckerConfig::new(kind);
    c.common.delay_loop = Some(Duration::from_millis(100));
    c.common.warmup = Some(Duration::ZERO);
    c.common.retry = Some(0);
    c.common.connect_timeout = Some(Duration::from_secs(2));
    c
}

pub fn alpha(mut c: CheckerConfig) -> CheckerConfig {
    c.common.alpha = true;
    c
}

pub async fn next(rx: &mut UnboundedReceiver<Transition>) -> Transition {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("no transition in time")
        .expect("transition stream ended")
}

/// A loopback port with nothing listening (bound once, then released).
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}
