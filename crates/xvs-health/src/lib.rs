//! Health checking for xvs, with keepalived's semantics.
//!
//! The checkers are keepalived's: `TCP_CHECK`, `HTTP_GET`, `SSL_GET`,
//! `MISC_CHECK` (with `misc_dynamic`), `UDP_CHECK` and `DNS_CHECK`, with
//! keepalived's options and defaults ([`config`]). The [`HealthEngine`]
//! runs every checker as its own tokio task, so a slow or silent real
//! server never delays another; it applies keepalived's retry rules per
//! checker, declares a real server up only when all its checkers are up,
//! and reports every change as a [`Transition`] on a tokio channel, while
//! the current [`RsState`] of each real server can be queried at any time.
//! [`script::spawn_notify`] runs `notify_up`/`notify_down` scripts.
//!
//! ```no_run
//! # async fn demo() {
//! use xvs_core::model::{Protocol, ServiceKey};
//! use xvs_health::{config::*, HealthEngine, RsId, RsSpec};
//! let (engine, mut transitions) = HealthEngine::new();
//! let id = RsId {
//!     service: ServiceKey { fwmark: 0, proto: Protocol::Tcp, addr: "10.0.0.1".parse().unwrap(), port: 80 },
//!     dest: "192.0.2.10:80".parse().unwrap(),
//! };
//! let mut tcp = CheckerConfig::new(CheckKind::Tcp(TcpCheck));
//! tcp.common.delay_loop = Some(std::time::Duration::from_secs(6));
//! engine.set_rs(RsSpec { id, checkers: vec![tcp] }).unwrap();
//! while let Some(t) = transitions.recv().await {
//!     println!("{} is {}: {}", t.rs, if t.up { "up" } else { "down" }, t.reason);
//! }
//! # }
//! ```
//!
//! The rules, with references into keepalived's source, are in
//! `docs/keepalived.md`, section "Health checks".

#![warn(missing_docs)]

mod check;
pub mod config;
mod engine;
pub mod script;

pub use engine::{CheckerState, EngineError, HealthEngine, RsId, RsSpec, RsState, Transition};

/// The result of one checker attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the attempt succeeded.
    pub ok: bool,
    /// What happened, for logs, the API and transition reasons.
    pub message: String,
    /// `misc_dynamic`: the weight the script asked for (exit code − 2).
    pub weight: Option<u32>,
}

impl Outcome {
    /// A success.
    pub fn up(message: impl Into<String>) -> Outcome {
        Outcome {
            ok: true,
            message: message.into(),
            weight: None,
        }
    }

    /// A failure.
    pub fn down(message: impl Into<String>) -> Outcome {
        Outcome {
            ok: false,
            message: message.into(),
            weight: None,
        }
    }
}

/// A random number from the std library's per-process random keys (no
/// extra dependency): warmup spreading and DNS query ids.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}
