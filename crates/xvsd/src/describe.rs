//! One-line accounts of changes and sync daemons, for the log.

use xvs_core::api::Request;
use xvs_core::model::SyncDaemon;

/// A running sync daemon for the log.
pub(crate) fn describe_sync(d: &SyncDaemon) -> String {
    format!(
        "{} sync daemon on {} (syncid {}, maxlen {}, group {}:{}, ttl {})",
        d.state, d.mcast_ifn, d.syncid, d.sync_maxlen, d.mcast_group, d.mcast_port, d.mcast_ttl
    )
}

/// A one-line account of a change for the log.
pub(crate) fn describe(req: &Request) -> String {
    match req {
        Request::AddService { service } => {
            format!("add service {} ({})", service.key, service.scheduler)
        }
        Request::EditService { service } => {
            format!("edit service {} ({})", service.key, service.scheduler)
        }
        Request::DelService { key } => format!("delete service {key}"),
        Request::Clear => "clear table".into(),
        Request::AddDest { key, dest } => format!(
            "add dest {}:{} to {key} ({}, weight {})",
            dest.addr, dest.port, dest.fwd, dest.weight
        ),
        Request::EditDest { key, dest } => format!(
            "edit dest {}:{} of {key} ({}, weight {})",
            dest.addr, dest.port, dest.fwd, dest.weight
        ),
        Request::DelDest { key, addr, port } => format!("delete dest {addr}:{port} from {key}"),
        Request::SetTimeouts { timeouts } => format!(
            "set timeouts tcp {} tcpfin {} udp {}",
            timeouts.tcp, timeouts.tcp_fin, timeouts.udp
        ),
        Request::AddMark { rule } => format!("add mark rule {rule} -> mark {}", rule.mark),
        Request::DelMark { rule } => format!("delete mark rule {rule} (mark {})", rule.mark),
        Request::ClearMarks => "clear mark rules".into(),
        Request::Batch { requests } => format!("batch of {} change(s)", requests.len()),
        other => format!("{other:?}"),
    }
}
