//! The kernel's own checks and limits around sync messages: valid states
//! per protocol, the sync id filter and the datagram size (`ip_vs_sync.c`).

use super::error::*;
use super::wire::*;

/// Number of states of a protocol IPVS handles (`pp->num_states`), or
/// `None` if `ip_vs_proto_get` knows no such protocol (TCP, UDP, SCTP, AH
/// and ESP are registered).
pub fn num_states(protocol: u8) -> Option<u16> {
    match protocol {
        IPPROTO_TCP => Some(tcp_state::LAST),
        IPPROTO_UDP | IPPROTO_AH | IPPROTO_ESP => Some(udp_state::LAST),
        IPPROTO_SCTP => Some(sctp_state::LAST),
        _ => None,
    }
}

/// The backup's protocol and state check: a non-template needs a known
/// protocol and a state below its `num_states`; a template passes
/// whatever its protocol (fwmark templates use 0) and state.
pub fn check_state(protocol: u8, flags: u32, state: u16) -> Result<(), SkipReason> {
    if flags & conn_flags::TEMPLATE != 0 {
        return Ok(());
    }
    let n = num_states(protocol).ok_or(SkipReason::Protocol(protocol))?;
    if state >= n {
        return Err(SkipReason::State { protocol, state });
    }
    Ok(())
}

/// Whether a backup configured with `configured` syncid processes a
/// message carrying `received`: 0 means "any".
pub fn accepts_syncid(configured: u8, received: u8) -> bool {
    configured == 0 || configured == received
}

/// Which side of the protocol a daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends.
    Master,
    /// Receives.
    Backup,
}

/// `sync_maxlen` as `start_sync_thread` computes it: the largest datagram
/// payload. `configured` is `--sync-maxlen` (0 if not given); the default
/// is a 1500-byte MTU for a master and the interface MTU (at least 1500)
/// for a backup, less the IP and UDP headers.
pub fn sync_maxlen(role: Role, configured: u16, dev_mtu: u32, group_is_v6: bool) -> u16 {
    let hlen: u32 = if group_is_v6 { 40 + 8 } else { 20 + 8 };
    let (mtu, min) = match role {
        Role::Master => (1500, 1),
        Role::Backup => (dev_mtu.clamp(1500, 65535), 1024),
    };
    let len = if configured != 0 {
        u32::from(configured).clamp(min, 65535 - hlen)
    } else {
        mtu - hlen
    };
    u16::try_from(len).unwrap_or(u16::MAX)
}
