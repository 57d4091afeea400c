//! The [`Command`] model built from a checked entry; what xvs does not
//! model becomes [`ParseError::Unsupported`].

use super::command::*;
use super::entry::*;
use super::table::*;
use crate::model::{prefix_mask, Dest, Service, ServiceKey, SyncDaemon, TunCsum, TunType};
use std::net::{IpAddr, Ipv4Addr};

pub(super) fn unsupported(what: &str) -> ParseError {
    ParseError::Unsupported(format!("{what} not supported by xvs"))
}

/// The model key of the service in `ce`, or why xvs cannot represent it.
pub(super) fn service_key(ce: &Entry) -> Result<ServiceKey, ParseError> {
    if ce.fwmark != 0 {
        // `-f` sets af V4 and `-6` after it V6 (scan.rs), as ipvsadm.
        return Ok(match ce.svc_af {
            Af::V6 => ServiceKey::fwmark6(ce.fwmark),
            _ => ServiceKey::fwmark(ce.fwmark),
        });
    }
    // A service option always sets the protocol (fwmark is handled above),
    // so `Proto::None` only reaches here for a command without a service.
    let Some(proto) = ce.proto.model() else {
        return Err(unsupported("services without a protocol are"));
    };
    let addr = ce.addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    Ok(ServiceKey {
        fwmark: 0,
        proto,
        addr,
        port: ce.port,
    })
}

/// The netmask ipvsadm sends: the `-M` address of an IPv4 service, the
/// prefix length of an IPv6 one as a mask of its family.
pub(super) fn netmask(ce: &Entry, key: &ServiceKey) -> IpAddr {
    if key.is_ipv6() {
        prefix_mask(key.addr, ce.netmask6)
    } else {
        IpAddr::V4(ce.netmask)
    }
}

pub(super) fn dest_addr(ce: &Entry) -> Result<IpAddr, ParseError> {
    // `-r` always sets an address; commands without one have no dest.
    Ok(ce.dest_addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
}

pub(super) fn build_dest(ce: &Entry) -> Result<Dest, ParseError> {
    Ok(Dest {
        addr: dest_addr(ce)?,
        port: ce.dest_port,
        fwd: ce.fwd,
        weight: ce.weight,
        u_threshold: ce.u_threshold,
        l_threshold: ce.l_threshold,
        tun_type: match ce.tun_type {
            1 => TunType::Gue,
            2 => TunType::Gre,
            _ => TunType::Ipip,
        },
        tun_port: ce.tun_port,
        tun_csum: match ce.tun_flags {
            1 => TunCsum::Csum,
            2 => TunCsum::RemCsum,
            _ => TunCsum::NoCsum,
        },
    })
}

pub(super) fn build(
    cmd: Cmd,
    ce: &Entry,
    options: u64,
    mut list: ListOptions,
) -> Result<Command, ParseError> {
    let service = || -> Result<Service, ParseError> {
        let key = service_key(ce)?;
        Ok(Service {
            netmask: netmask(ce, &key),
            key,
            scheduler: ce.sched.clone(),
            flags: ce.flags,
            timeout: ce.timeout,
            pe_name: (!ce.pe.is_empty()).then(|| ce.pe.clone()),
        })
    };
    Ok(match cmd {
        Cmd::Add => Command::AddService(service()?),
        Cmd::Edit => Command::EditService(service()?),
        Cmd::Del => Command::DelService(service_key(ce)?),
        Cmd::Flush => Command::Clear,
        Cmd::AddDest => Command::AddDest {
            key: service_key(ce)?,
            dest: build_dest(ce)?,
        },
        Cmd::EditDest => Command::EditDest {
            key: service_key(ce)?,
            dest: build_dest(ce)?,
        },
        Cmd::DelDest => Command::DelDest {
            key: service_key(ce)?,
            addr: dest_addr(ce)?,
            port: ce.dest_port,
        },
        Cmd::List => {
            if has(options, OPTC_SERVICE) {
                list.service = Some(service_key(ce)?);
            }
            Command::List(list)
        }
        Cmd::Zero => Command::Zero(if has(options, OPTC_SERVICE) {
            Some(service_key(ce)?)
        } else {
            None
        }),
        Cmd::Timeout => Command::SetTimeouts(ce.timeouts),
        Cmd::Save => Command::Save {
            numeric: list.numeric,
        },
        Cmd::Restore => Command::Restore,
        Cmd::StartDaemon => {
            let mcast_group = match ce.mcast_group {
                None => Ipv4Addr::UNSPECIFIED,
                Some(IpAddr::V4(a)) => a,
                Some(IpAddr::V6(_)) => return Err(unsupported("IPv6 is")),
            };
            Command::StartDaemon(SyncDaemon {
                state: ce.daemon_state,
                // process_options: an empty interface is DEF_MCAST_IFN.
                mcast_ifn: if ce.mcast_ifn.is_empty() {
                    DEFAULT_MCAST_IFN.to_string()
                } else {
                    ce.mcast_ifn.clone()
                },
                syncid: ce.syncid,
                sync_maxlen: ce.sync_maxlen,
                mcast_group,
                mcast_port: ce.mcast_port,
                mcast_ttl: ce.mcast_ttl,
            })
        }
        Cmd::StopDaemon => Command::StopDaemon(ce.daemon_state),
    })
}
