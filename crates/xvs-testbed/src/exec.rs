//! Running commands and servers inside a testbed's namespaces.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{bin, check, io_err, lock, render, Error, Node, Proc, ProcInner, Result, Testbed};

impl Testbed {
    pub(crate) fn command(&self, node: Node, argv: &[&str]) -> Result<Command> {
        if argv.is_empty() {
            return Err(Error::Other("empty command".into()));
        }
        let ns = self.ns(node);
        if !self.namespaces.contains(&ns) {
            return Err(Error::Other(format!("{node} is not part of this testbed")));
        }
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns])
            .args(argv)
            .stdin(Stdio::null());
        Ok(c)
    }

    /// Run `argv` inside `node`'s namespace and collect its output (any exit
    /// status).
    pub fn exec(&self, node: Node, argv: &[&str]) -> Result<Output> {
        self.command(node, argv)?
            .output()
            .map_err(io_err(format!("run `{}` in {node}", render(argv))))
    }

    /// Like [`Testbed::exec`] but an unsuccessful exit is an error; returns stdout.
    pub fn exec_ok(&self, node: Node, argv: &[&str]) -> Result<String> {
        let out = self.exec(node, argv)?;
        let out = check(argv, out).map_err(|e| match e {
            Error::Command {
                cmd,
                status,
                stderr,
            } => Error::Command {
                cmd: format!("{cmd} (in {node})"),
                status,
                stderr,
            },
            e => e,
        })?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Start `argv` in `node`'s namespace in the background. stdout and
    /// stderr go to a log file under [`Testbed::run_dir`]. The process is
    /// tracked: dropping the testbed kills it (by PID) if it still runs.
    pub fn spawn(&self, node: Node, argv: &[&str]) -> Result<Proc> {
        let k = self.spawned.fetch_add(1, Ordering::Relaxed);
        let prog = Path::new(argv.first().copied().unwrap_or("cmd"))
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "cmd".into());
        let label = format!("{node}-{prog}-{k}");
        let log = self.run_dir.join("logs").join(format!("{label}.log"));
        let file = fs::File::create(&log).map_err(io_err(format!("create {}", log.display())))?;
        let file2 = file
            .try_clone()
            .map_err(io_err(format!("dup {}", log.display())))?;
        let mut cmd = self.command(node, argv)?;
        cmd.stdout(file).stderr(file2);
        // `ip netns exec` execs the program, so the PID is the program's.
        let child = cmd
            .spawn()
            .map_err(io_err(format!("spawn `{}` in {node}", render(argv))))?;
        let p = Proc(Arc::new(ProcInner {
            label,
            pid: child.id(),
            child: Mutex::new(child),
            log,
        }));
        lock(&self.procs).push(p.clone());
        Ok(p)
    }

    /// Start `xvs-testsrv http --listen 0.0.0.0:<port> --name rsN` on every
    /// real server and wait until each listens.
    pub fn start_http_servers(&self, port: u16) -> Result<Vec<Proc>> {
        self.start_servers("http", port)
    }

    /// Start `xvs-testsrv udp-echo --listen 0.0.0.0:<port> --name rsN` on
    /// every real server and wait until each listens.
    pub fn start_udp_echo_servers(&self, port: u16) -> Result<Vec<Proc>> {
        self.start_servers("udp-echo", port)
    }

    pub(crate) fn start_servers(&self, kind: &str, port: u16) -> Result<Vec<Proc>> {
        let testsrv = bin("xvs-testsrv")?;
        let testsrv = testsrv.to_string_lossy().into_owned();
        let listen = format!("0.0.0.0:{port}");
        let mut procs = Vec::new();
        for n in 1..=self.rs_count {
            let name = format!("rs{n}");
            procs.push(self.spawn(
                Node::Rs(n),
                &[&testsrv, kind, "--listen", &listen, "--name", &name],
            )?);
        }
        for p in &procs {
            p.wait_for_log("listening on", Duration::from_secs(5))?;
        }
        Ok(procs)
    }
}
