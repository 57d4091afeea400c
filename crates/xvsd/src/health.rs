//! Health checking for config-owned real servers: the `xvs-health` engine on
//! a tokio runtime in a background thread, its transitions handed to the
//! single-threaded daemon loop through a channel and a wake-up socket the
//! loop polls; notify scripts run on the same runtime, never blocking the
//! loop.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::Duration;

use xvs_health::script::{resolve_user, run_script, ScriptStatus};
use xvs_health::{HealthEngine, RsId, RsSpec, RsState, Transition};
use xvs_keepalived::{Script, ScriptUser};

/// How long a notify or quorum script may run before it is terminated.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// What the daemon needs from health checking (a fake in tests).
pub trait Health {
    /// Replaces the set of checked real servers; unchanged ones keep their
    /// state.
    fn sync(&mut self, specs: Vec<RsSpec>) -> Result<(), String>;
    /// The current state of every checked real server.
    fn states(&self) -> Vec<(RsId, RsState)>;
    /// Transitions since the last call.
    fn take_transitions(&mut self) -> Vec<Transition>;
    /// A descriptor that becomes readable when transitions wait.
    fn wake_fd(&self) -> Option<RawFd> {
        None
    }
    /// Runs a script in the background (`what` names it in logs).
    fn run_script(&self, script: &Script, default_user: Option<&ScriptUser>, what: &str);
    /// Runs scripts and waits for them, at most `limit` (shutdown).
    fn run_scripts_and_wait(
        &self,
        scripts: Vec<(Script, String)>,
        default_user: Option<&ScriptUser>,
        limit: Duration,
    );
}

/// The real thing: an [`HealthEngine`] on its own runtime thread.
pub struct Engine {
    engine: HealthEngine,
    handle: tokio::runtime::Handle,
    rx: mpsc::Receiver<Transition>,
    wake: UnixStream,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Engine {
    /// Starts the runtime thread and the engine.
    pub fn start() -> std::io::Result<Engine> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("xvsd-health")
            .build()?;
        let handle = rt.handle().clone();
        let (engine, mut trx) = {
            let _g = rt.enter();
            HealthEngine::new()
        };
        let (tx, rx) = mpsc::channel();
        let (wake, mut wake_w) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        wake_w.set_nonblocking(true)?;
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let eng = engine.clone();
        let thread = std::thread::Builder::new()
            .name("xvsd-health".into())
            .spawn(move || {
                rt.block_on(async move {
                    loop {
                        tokio::select! {
                            t = trx.recv() => match t {
                                Some(t) => {
                                    if tx.send(t).is_err() {
                                        break;
                                    }
                                    // Full means a wake-up is pending anyway.
                                    let _ = wake_w.write(&[1]);
                                }
                                None => break,
                            },
                            _ = &mut stop_rx => break,
                        }
                    }
                    eng.stop().await;
                });
            })?;
        Ok(Engine {
            engine,
            handle,
            rx,
            wake,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    fn spawn_script(
        &self,
        script: &Script,
        default_user: Option<&ScriptUser>,
        what: &str,
        done: Option<mpsc::Sender<()>>,
    ) {
        let argv = script.args.clone();
        let user = script.user.as_ref().or(default_user);
        let run_as = match user {
            Some(u) => match resolve_user(&u.user, u.group.as_deref()) {
                Ok(r) => Some(r),
                Err(e) => {
                    log::warn!("{what} script {argv:?} not run: {e}");
                    return;
                }
            },
            None => None,
        };
        let what = what.to_string();
        log::info!("running {what} script {argv:?}");
        self.handle.spawn(async move {
            let st = run_script(&argv, NOTIFY_TIMEOUT, run_as).await;
            match st {
                ScriptStatus::Exited(0) => log::debug!("{what} script {argv:?} {st}"),
                _ => log::warn!("{what} script {argv:?} {st}"),
            }
            if let Some(d) = done {
                let _ = d.send(());
            }
        });
    }
}

impl Health for Engine {
    fn sync(&mut self, specs: Vec<RsSpec>) -> Result<(), String> {
        self.engine.sync(specs).map_err(|e| e.to_string())
    }

    fn states(&self) -> Vec<(RsId, RsState)> {
        self.engine.states()
    }

    fn take_transitions(&mut self) -> Vec<Transition> {
        let mut buf = [0u8; 256];
        while matches!(self.wake.read(&mut buf), Ok(n) if n > 0) {}
        self.rx.try_iter().collect()
    }

    fn wake_fd(&self) -> Option<RawFd> {
        Some(self.wake.as_raw_fd())
    }

    fn run_script(&self, script: &Script, default_user: Option<&ScriptUser>, what: &str) {
        self.spawn_script(script, default_user, what, None);
    }

    fn run_scripts_and_wait(
        &self,
        scripts: Vec<(Script, String)>,
        default_user: Option<&ScriptUser>,
        limit: Duration,
    ) {
        let (tx, rx) = mpsc::channel();
        let n = scripts.len();
        for (s, what) in &scripts {
            self.spawn_script(s, default_user, what, Some(tx.clone()));
        }
        drop(tx);
        let deadline = std::time::Instant::now() + limit;
        for _ in 0..n {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if rx.recv_timeout(left).is_err() {
                log::warn!("shutdown scripts still running after {limit:?}; not waiting");
                break;
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
