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
        if let Some(o) = old {
            let same = new
                .as_ref()
                .is_some_and(|n| n.daemon == o.daemon && n.instance == o.instance);
            if !same {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::tests::{Mem, LIMITS};
    use std::io::Write;
    use std::time::Duration;
    use xvs_health::{RsId, RsSpec, RsState, Transition};
    use xvs_keepalived::{Options, Script, ScriptUser};

    /// Health checking with no real servers (the configurations below
    /// have none).
    struct NoChecks;

    impl crate::health::Health for NoChecks {
        fn sync(&mut self, _: Vec<RsSpec>) -> Result<(), String> {
            Ok(())
        }
        fn states(&self) -> Vec<(RsId, RsState)> {
            Vec::new()
        }
        fn take_transitions(&mut self) -> Vec<Transition> {
            Vec::new()
        }
        fn run_script(&self, _: &Script, _: Option<&ScriptUser>, _: &str) {}
        fn run_scripts_and_wait(
            &self,
            _: Vec<(Script, String)>,
            _: Option<&ScriptUser>,
            _: Duration,
        ) {
        }
    }

    fn roles(d: &Daemon<Mem>) -> Vec<SyncState> {
        d.sync_daemons().iter().map(|s| s.state).collect()
    }

    #[test]
    fn the_sync_daemon_follows_the_instance_keepalived_reports() {
        let dir = std::env::temp_dir().join(format!("xvsd-lvs-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("notify.fifo");
        let file = dir.join("keepalived.conf");
        let conf = |sync: &str| {
            format!(
                "global_defs {{\n  notify_fifo {}\n{sync}}}\n\
                 vrrp_instance VI_1 {{\n  interface lo\n  virtual_router_id 51\n}}\n",
                fifo.display()
            )
        };
        std::fs::write(&file, conf("  @xvsd lvs_sync_daemon lo VI_1\n")).unwrap();
        let mut d = Daemon::new(Mem::default(), LIMITS, None).unwrap();
        let lvs = Lvs::new(
            file.clone(),
            Options { config_id: None },
            Box::new(NoChecks),
        );
        d.use_config(lvs).unwrap();
        // Backup until keepalived says MASTER; the syncid is the VRID.
        assert_eq!(roles(&d), [SyncState::Backup]);
        assert_eq!(d.sync_daemons()[0].syncid, 51);
        let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        w.write_all(b"INSTANCE \"VI_2\" MASTER 100\nINSTANCE \"VI_1\" MASTER 100\n")
            .unwrap();
        d.vrrp_events();
        assert_eq!(roles(&d), [SyncState::Master]);
        w.write_all(b"INSTANCE \"VI_1\" FAULT 0\n").unwrap();
        d.vrrp_events();
        assert_eq!(roles(&d), [SyncState::Backup]);
        // Without an instance both run; without the line neither.
        std::fs::write(&file, conf("  @xvsd lvs_sync_daemon lo\n")).unwrap();
        d.reload().unwrap();
        assert_eq!(roles(&d), [SyncState::Master, SyncState::Backup]);
        std::fs::write(&file, conf("")).unwrap();
        d.reload().unwrap();
        assert!(roles(&d).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
