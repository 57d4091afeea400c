//! The command entry being built (`struct ipvs_command_entry`), the option
//! bits seen so far, and the `commands_v_options` / tunnel checks on them.

use super::command::*;
use super::table::*;
use super::values::*;
use crate::model::{FwdMethod, SyncState, Timeouts};
use std::net::{IpAddr, Ipv4Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Af {
    Unspec,
    V4,
    V6,
}

pub(super) fn af_of(a: &IpAddr) -> Af {
    match a {
        IpAddr::V4(_) => Af::V4,
        IpAddr::V6(_) => Af::V6,
    }
}

pub(super) struct Entry {
    pub(super) cmd: Option<Cmd>,
    pub(super) svc_af: Af,
    pub(super) proto: Proto,
    pub(super) addr: Option<IpAddr>,
    pub(super) port: u16,
    pub(super) fwmark: u32,
    pub(super) sched: String,
    pub(super) flags: u32,
    pub(super) timeout: u32,
    /// `ce.svc.netmask` while the service is IPv4 (`-M a.b.c.d`).
    pub(super) netmask: Ipv4Addr,
    /// `ce.svc.netmask` once the service is IPv6: a prefix length, 128
    /// after `-t [v6]:p` or `-6`, `-M N` after them.
    pub(super) netmask6: u32,
    pub(super) pe: String,
    pub(super) dest_af: Af,
    pub(super) dest_addr: Option<IpAddr>,
    pub(super) dest_port: u16,
    pub(super) fwd: FwdMethod,
    pub(super) weight: u32,
    pub(super) u_threshold: u32,
    pub(super) l_threshold: u32,
    pub(super) tun_type: usize,
    pub(super) tun_port: u16,
    pub(super) tun_flags: u32,
    pub(super) timeouts: Timeouts,
    /// `ce.daemon`: state, `--mcast-interface`, `--syncid`,
    /// `--sync-maxlen`, `--mcast-group`, `--mcast-port`, `--mcast-ttl`.
    pub(super) daemon_state: SyncState,
    pub(super) mcast_ifn: String,
    pub(super) syncid: u8,
    pub(super) sync_maxlen: u16,
    pub(super) mcast_group: Option<IpAddr>,
    pub(super) mcast_port: u16,
    pub(super) mcast_ttl: u8,
}

impl Entry {
    pub(super) fn new() -> Self {
        Entry {
            cmd: None,
            svc_af: Af::Unspec,
            proto: Proto::None,
            addr: None,
            port: 0,
            fwmark: 0,
            sched: String::new(),
            flags: 0,
            timeout: 0,
            netmask: Ipv4Addr::BROADCAST,
            netmask6: 128,
            pe: String::new(),
            dest_af: Af::Unspec,
            dest_addr: None,
            dest_port: 0,
            fwd: FwdMethod::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: 0,
            tun_port: 0,
            tun_flags: 0,
            timeouts: Timeouts {
                tcp: 0,
                tcp_fin: 0,
                udp: 0,
            },
            daemon_state: SyncState::Master,
            mcast_ifn: String::new(),
            syncid: 0,
            sync_maxlen: 0,
            mcast_group: None,
            mcast_port: 0,
            mcast_ttl: 0,
        }
    }
}

pub(super) fn set_option(options: &mut u64, optc: usize) -> Result<(), ParseError> {
    let bit = 1u64 << optc;
    if *options & bit != 0 {
        return Err(ParseError::fail(format!(
            "multiple '{}' options specified",
            OPTNAMES[optc]
        )));
    }
    *options |= bit;
    Ok(())
}

pub(super) fn has(options: u64, optc: usize) -> bool {
    options & (1u64 << optc) != 0
}

pub(super) fn generic_opt_check(cmd: Cmd, options: u64) -> Result<(), ParseError> {
    let i = cmd as usize;
    let row = COMMANDS_V_OPTIONS[i];
    let mut last = 0;
    let mut count = 0;
    for (j, &rule) in row.iter().enumerate() {
        if !has(options, j) {
            if rule == b'+' {
                return Err(ParseError::fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    OPTNAMES[j], CMDNAMES[i]
                )));
            }
        } else {
            if rule == b'x' {
                return Err(ParseError::fail(format!(
                    "Illegal '{}' option with the '{}' command",
                    OPTNAMES[j], CMDNAMES[i]
                )));
            }
            if rule == b'1' {
                count += 1;
                if count == 1 {
                    last = j;
                    continue;
                }
                return Err(ParseError::fail(format!(
                    "The option '{}' conflicts with the '{}' option in the '{}' command",
                    OPTNAMES[j], OPTNAMES[last], CMDNAMES[i]
                )));
            }
        }
    }
    Ok(())
}

pub(super) fn tunnel_opt_check(tun_type: usize, options: u64) -> Result<(), ParseError> {
    let row = TUNNEL_TYPES_V_OPTIONS[tun_type];
    let mut last = 0;
    let mut count = 0;
    for (j, &rule) in row.iter().enumerate() {
        let k = TUNOPTS[j];
        if !has(options, k) {
            if rule == b'+' {
                return Err(ParseError::fail(format!(
                    "You need to supply the '{}' option for the '{}' tunnel type",
                    OPTNAMES[k], TUNNAMES[tun_type]
                )));
            }
        } else {
            if rule == b'x' {
                return Err(ParseError::fail(format!(
                    "Illegal '{}' option with the '{}' tunnel type",
                    OPTNAMES[k], TUNNAMES[tun_type]
                )));
            }
            if rule == b'1' {
                count += 1;
                if count == 1 {
                    last = k;
                    continue;
                }
                return Err(ParseError::fail(format!(
                    "The option '{}' conflicts with the '{}' option in the '{}' tunnel type",
                    OPTNAMES[k], OPTNAMES[last], TUNNAMES[tun_type]
                )));
            }
        }
    }
    Ok(())
}
