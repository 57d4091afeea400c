//! keepalived's `lvs_sync_daemon` in xvsd: the connection sync daemons the
//! configuration asks for, master or backup as keepalived's VRRP process
//! would switch them. keepalived runs VRRP here (`keepalived --vrrp`), so
//! xvsd learns the instance's state from the lines keepalived writes to
//! `notify_fifo` (`INSTANCE "VI_1" MASTER 150`): MASTER starts the master
//! daemon and stops the backup, BACKUP, FAULT and STOP the reverse
//! (keepalived's `ipvs_syncd_master` / `ipvs_syncd_backup`). Without an
//! instance both daemons run, as keepalived's checker process runs them.

use xvs_core::api::{Request, Response};
use xvs_core::model::SyncState;
use xvs_keepalived::{parse_notify_line, NotifyKind, NotifyState};

use crate::config::ManagedSync;
use crate::director::Director;
use crate::vrrp_follow::Follower;

fn running(d: &dyn Director, state: SyncState) -> bool {
    d.sync_daemons().iter().any(|s| s.state == state)
}

fn start(d: &mut dyn Director, cfg: &ManagedSync, state: SyncState) {
    if running(d, state) {
        return;
    }
    let mut daemon = cfg.daemon.clone();
    daemon.state = state;
    if let Response::Error { error } = d.handle(Request::StartDaemon { daemon }) {
        log::error!(
            "{}: lvs_sync_daemon: starting the {state} sync daemon: {}",
            cfg.location,
            error.message
        );
    }
}

fn stop(d: &mut dyn Director, state: SyncState) {
    if running(d, state) {
        let _ = d.handle(Request::StopDaemon { state });
    }
}

/// After a (re)load: the daemons of the `lvs_sync_daemon` of `new`, the
/// `old` ones stopped when they differ, `follower` reading the FIFO `new`
/// names (or none). With an instance the daemon starts as backup, unless
/// one already runs (restored from the state file after a restart: it
/// keeps the role keepalived last gave it).
pub(crate) fn apply(
    d: &mut dyn Director,
    follower: &mut Option<Follower>,
    new: Option<&ManagedSync>,
    old: Option<&ManagedSync>,
) {
    if let Some(o) = old {
        let same = new.is_some_and(|n| n.daemon == o.daemon && n.instance == o.instance);
        if !same {
            stop(d, SyncState::Master);
            stop(d, SyncState::Backup);
        }
    }
    let Some(cfg) = new else {
        *follower = None;
        return;
    };
    if cfg.instance.is_none() {
        start(d, cfg, SyncState::Master);
        start(d, cfg, SyncState::Backup);
        *follower = None;
        return;
    }
    if !running(d, SyncState::Master) {
        start(d, cfg, SyncState::Backup);
    }
    let reopen = match (&*follower, &cfg.fifo) {
        (Some(f), Some(p)) => f.path() != p.as_path(),
        (None, Some(_)) => true,
        (_, None) => {
            *follower = None;
            false
        }
    };
    if let (true, Some(path)) = (reopen, &cfg.fifo) {
        match Follower::open(path) {
            Ok(f) => {
                log::info!(
                    "following VRRP instance {} through {}",
                    cfg.instance.as_deref().unwrap_or(""),
                    path.display()
                );
                *follower = Some(f);
            }
            Err(e) => log::error!("{}: notify_fifo {}: {e}", cfg.location, path.display()),
        }
    }
}

/// Switches the sync daemon as keepalived's VRRP state `lines` say
/// (read from the FIFO every second).
pub(crate) fn follow(d: &mut dyn Director, cfg: &ManagedSync, lines: Vec<String>) {
    let Some(instance) = &cfg.instance else {
        return;
    };
    for line in lines {
        let Some(ev) = parse_notify_line(&line) else {
            continue;
        };
        if ev.kind != NotifyKind::Instance || &ev.name != instance {
            continue;
        }
        let (to_stop, to_start) = match ev.state {
            NotifyState::Master => (SyncState::Backup, SyncState::Master),
            NotifyState::Backup | NotifyState::Fault | NotifyState::Stop => {
                (SyncState::Master, SyncState::Backup)
            }
            _ => continue,
        };
        if running(d, to_start) && !running(d, to_stop) {
            continue;
        }
        log::info!("VRRP instance {instance}: {line:?}: sync daemon {to_start}");
        stop(d, to_stop);
        start(d, cfg, to_start);
    }
}
