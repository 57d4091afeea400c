//! One attempt of each checker kind. An attempt never panics and always
//! ends: every network step is bounded by `connect_timeout`, a script by
//! `misc_timeout`.

mod dns;
mod http;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::time::timeout;

use crate::config::{CheckKind, CheckerConfig, MiscCheck, Timing, UdpCheck};
use crate::script::{self, ScriptStatus};
use crate::Outcome;

/// Run one attempt of `cfg` against `target`.
pub(crate) async fn attempt(cfg: &CheckerConfig, target: SocketAddr, t: &Timing) -> Outcome {
    match &cfg.kind {
        CheckKind::Tcp(_) => match connect(cfg, target, t.connect_timeout).await {
            Ok(_) => Outcome::up(format!("TCP connection to {target} succeeded")),
            Err(e) => Outcome::down(format!("TCP connection to {target} failed: {e}")),
        },
        CheckKind::Http(h) => http::check(cfg, h, target, t.connect_timeout).await,
        CheckKind::Misc(m) => misc(m, t).await,
        CheckKind::Udp(u) => udp(cfg, u, target, t.connect_timeout).await,
        CheckKind::Dns(d) => dns::check(cfg, d, target, t.connect_timeout).await,
        CheckKind::Custom(c) => c.probe.probe(target).await,
    }
}

fn unspecified(target: SocketAddr) -> IpAddr {
    match target {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// `tcp_bind_connect` + `tcp_connection_state`: bind if asked, connect
/// within `limit`.
pub(crate) async fn connect(
    cfg: &CheckerConfig,
    target: SocketAddr,
    limit: Duration,
) -> Result<TcpStream, String> {
    let sock = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| format!("socket: {e}"))?;
    if let Some(b) = cfg.bind_addr(target) {
        sock.bind(b).map_err(|e| format!("bind {b}: {e}"))?;
    }
    match timeout(limit, sock.connect(target)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("connect timeout ({limit:?})")),
    }
}

async fn misc(m: &MiscCheck, t: &Timing) -> Outcome {
    let argv = match script::split_command(&m.path) {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => return Outcome::down("MISC_CHECK has no command".to_string()),
        Err(e) => return Outcome::down(format!("MISC_CHECK {e}")),
    };
    let run_as = match &m.user {
        Some(u) => match script::resolve_user(u, m.group.as_deref()) {
            Ok(r) => Some(r),
            Err(e) => return Outcome::down(format!("MISC_CHECK {}: {e}", argv[0])),
        },
        None => None,
    };
    // keepalived: misc_timeout, or the virtual server's delay_loop.
    let limit = m.timeout.unwrap_or(t.delay_loop);
    let st = script::run_script(&argv, limit, run_as).await;
    let text = format!("MISC_CHECK {} {st}", argv[0]);
    match st {
        ScriptStatus::Exited(0) => Outcome::up(text),
        ScriptStatus::Exited(c) if m.dynamic && (2..=255).contains(&c) => Outcome {
            ok: true,
            message: text,
            weight: Some(c as u32 - 2),
        },
        _ => Outcome::down(text),
    }
}

/// keepalived's default UDP payload (`set_buf` in `layer4.c`): 32 bytes of
/// a repeated marker.
fn default_payload() -> Vec<u8> {
    b"keepalived check - "
        .iter()
        .copied()
        .cycle()
        .take(32)
        .collect()
}

async fn udp(cfg: &CheckerConfig, u: &UdpCheck, target: SocketAddr, limit: Duration) -> Outcome {
    let bind = cfg
        .bind_addr(target)
        .unwrap_or(SocketAddr::new(unspecified(target), 0));
    let fail = |e: String| Outcome::down(format!("UDP_CHECK {target}: {e}"));
    let sock = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => return fail(format!("bind {bind}: {e}")),
    };
    if let Err(e) = sock.connect(target).await {
        return fail(format!("connect: {e}"));
    }
    let payload = u.payload.clone().unwrap_or_else(default_payload);
    if let Err(e) = sock.send(&payload).await {
        return fail(format!("send: {e}"));
    }
    let mut buf = vec![0u8; usize::from(u.max_reply_len) + 1];
    match timeout(limit, sock.recv(&mut buf)).await {
        // keepalived's udp_socket_state: a read timeout is success unless a
        // reply is required.
        Err(_) if u.require_reply => fail(format!("no reply within {limit:?}")),
        Err(_) => Outcome::up(format!("UDP_CHECK {target}: no error within {limit:?}")),
        Ok(Err(e)) => fail(e.to_string()),
        Ok(Ok(n)) => {
            let reply = &buf[..n];
            if let Some(p) = &u.reply {
                if n < usize::from(u.min_reply_len) || n > usize::from(u.max_reply_len) {
                    return fail(format!(
                        "reply length {n} outside {}..={}",
                        u.min_reply_len, u.max_reply_len
                    ));
                }
                if !p.matches(reply) {
                    return fail("reply data mismatch".into());
                }
            }
            Outcome::up(format!("UDP_CHECK {target}: reply of {n} bytes"))
        }
    }
}
