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
use crate::daemon::{Daemon, Plane};
use crate::lvs::Lvs;
use crate::vrrp_follow::Follower;

impl<P: Plane> Daemon<P> {
    fn sync_running(&self, state: SyncState) -> bool {
        self.sync_daemons().iter().any(|d| d.state == state)
    }

    fn sync_start(&mut self, cfg: &ManagedSync, state: SyncState) {
        if self.sync_running(state) {
            return;
        }
        let mut daemon = cfg.daemon.clone();
        daemon.state = state;
        if let Response::Error { error } = self.handle(Request::StartDaemon { daemon }) {
            log::error!(
                "{}: lvs_sync_daemon: starting the {state} sync daemon: {}",
                cfg.location,
                error.message
            );
        }
    }

    fn sync_stop(&mut self, state: SyncState) {
        if self.sync_running(state) {
            let _ = self.handle(Request::StopDaemon { state });
        }
    }

    /// After a (re)load: the daemons of the new `lvs_sync_daemon`, the old
    /// ones stopped when they differ. With an instance the daemon starts
    /// as backup, unless one already runs (restored from the state file
    /// after a restart: it keeps the role keepalived last gave it).
    pub(crate) fn apply_sync(&mut self, lvs: &mut Lvs, old: Option<&ManagedSync>) {
        let new = lvs.managed().sync.clone();
        if new.as_ref() != old && old.is_some() {
            let changed = match (&new, old) {
                (Some(n), Some(o)) => n.daemon != o.daemon || n.instance != o.instance,
                _ => true,
            };
            if changed {
                self.sync_stop(SyncState::Master);
                self.sync_stop(SyncState::Backup);
            }
        }
        let Some(cfg) = new else {
            lvs.follower = None;
            return;
        };
        if cfg.instance.is_none() {
            self.sync_start(&cfg, SyncState::Master);
            self.sync_start(&cfg, SyncState::Backup);
            lvs.follower = None;
            return;
        }
        if !self.sync_running(SyncState::Master) {
            self.sync_start(&cfg, SyncState::Backup);
        }
        let reopen = match (&lvs.follower, &cfg.fifo) {
            (Some(f), Some(p)) => f.path() != p.as_path(),
            (None, Some(_)) => true,
            (_, None) => {
                lvs.follower = None;
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
                    lvs.follower = Some(f);
                }
                Err(e) => log::error!("{}: notify_fifo {}: {e}", cfg.location, path.display()),
            }
        }
    }

    /// Reads keepalived's VRRP state lines and switches the sync daemon
    /// (called every second).
    pub fn vrrp_events(&mut self) {
        let Some(mut lvs) = self.lvs.take() else {
            return;
        };
        let lines = lvs
            .follower
            .as_mut()
            .map(Follower::lines)
            .unwrap_or_default();
        let cfg = lvs.managed().sync.clone();
        self.lvs = Some(lvs);
        let Some(cfg) = cfg else { return };
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
            let (stop, start) = match ev.state {
                NotifyState::Master => (SyncState::Backup, SyncState::Master),
                NotifyState::Backup | NotifyState::Fault | NotifyState::Stop => {
                    (SyncState::Master, SyncState::Backup)
                }
                _ => continue,
            };
            if self.sync_running(start) && !self.sync_running(stop) {
                continue;
            }
            log::info!("VRRP instance {instance}: {line:?}: sync daemon {start}");
            self.sync_stop(stop);
            self.sync_start(&cfg, start);
        }
    }
}
