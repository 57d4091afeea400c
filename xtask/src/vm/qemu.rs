//! Running qemu: the accelerator choice, the command line, and the host
//! side of the guest's three virtio ports (stdout, stderr, status).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// `--accel`: what the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AccelChoice {
    /// KVM where it can run a stock kernel, TCG otherwise.
    Auto,
    /// `-accel kvm -cpu host`.
    Kvm,
    /// `-accel tcg,thread=multi -cpu max`.
    Tcg,
}

/// The accelerator qemu gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// Emulation, one host thread per vCPU.
    Tcg,
}

impl Accel {
    fn args(self) -> [&'static str; 4] {
        match self {
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg => ["-accel", "tcg,thread=multi", "-cpu", "max"],
        }
    }

    /// `kvm` or `tcg`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Resolve `choice` on this host.
pub(crate) fn accel(choice: AccelChoice) -> Accel {
    match choice {
        AccelChoice::Kvm => Accel::Kvm,
        AccelChoice::Tcg => Accel::Tcg,
        AccelChoice::Auto => auto_accel(
            &std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default(),
            Path::new("/sys/module/kvm_pvm").exists(),
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/kvm")
                .is_ok(),
        ),
    }
}

/// KVM only when `/dev/kvm` opens and the CPU has vmx or svm: these hosts
/// have a `/dev/kvm` that is kvm_pvm, a paravirtual hypervisor (no vmx/svm
/// in the flags) that only runs guests built for it; a stock kernel hangs
/// there at 100 % CPU right after "Probing EDD".
pub(crate) fn auto_accel(cpuinfo: &str, kvm_pvm_loaded: bool, dev_kvm_opens: bool) -> Accel {
    let hw = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .filter_map(|l| l.split_once(':'))
        .any(|(_, flags)| flags.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    if hw && dev_kvm_opens && !kvm_pvm_loaded {
        Accel::Kvm
    } else {
        Accel::Tcg
    }
}

/// What one boot needs.
pub(crate) struct Boot<'a> {
    pub(crate) vmlinuz: &'a Path,
    pub(crate) initramfs: &'a Path,
    /// The host directory with `params` and `cmd.sh`; the sockets and logs
    /// go there too.
    pub(crate) run_dir: &'a Path,
    pub(crate) accel: Accel,
    pub(crate) mem_mib: u32,
    pub(crate) smp: u32,
    pub(crate) timeout: Duration,
    pub(crate) verbose: bool,
}

/// How a boot ended.
pub(crate) struct Outcome {
    /// The command's exit status, if the guest reported one.
    pub(crate) exit: Option<i32>,
    /// From starting qemu to the guest starting the command.
    pub(crate) boot_time: Option<Duration>,
    /// From starting qemu to qemu's exit.
    pub(crate) total: Duration,
    /// Why qemu was killed before the guest finished.
    pub(crate) stopped: Option<Stopped>,
}

/// Why xtask killed qemu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// `--timeout` passed (the value).
    Timeout(Duration),
    /// SIGINT or SIGTERM reached xtask.
    Interrupted,
}

/// The guest's ports and where their bytes go on the host.
const PORTS: [&str; 3] = ["org.xvs.out", "org.xvs.err", "org.xvs.status"];

/// Messages from the status port's reader.
enum Status {
    Started(Instant),
    Exit(i32),
}

impl Boot<'_> {
    fn argv(&self) -> Vec<String> {
        let run = self.run_dir.to_string_lossy();
        let mut v: Vec<String> = [
            "-nographic",
            "-nodefaults",
            "-no-reboot",
            "-nic",
            "none",
            "-m",
            &self.mem_mib.to_string(),
            "-smp",
            &self.smp.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(self.accel.args().map(String::from));
        v.extend([
            "-kernel".into(),
            self.vmlinuz.to_string_lossy().into_owned(),
            "-initrd".into(),
            self.initramfs.to_string_lossy().into_owned(),
            "-append".into(),
            // panic=-1 reboots at once, which -no-reboot turns into qemu's
            // exit: a stage that dies does not leave qemu running until
            // the timeout. mitigations=off: a throwaway guest has nothing
            // to protect, and the mitigations cost time under TCG.
            format!("console=ttyS0 panic=-1 mitigations=off xvs.run={run}"),
            "-virtfs".into(),
            "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
                .into(),
            "-serial".into(),
            format!("file:{run}/console.log"),
            "-device".into(),
            "virtio-serial-pci".into(),
        ]);
        for (i, name) in PORTS.iter().enumerate() {
            v.extend([
                "-chardev".into(),
                format!("socket,id=port{i},path={run}/port{i}.sock"),
                "-device".into(),
                format!("virtserialport,chardev=port{i},name={name}"),
            ]);
        }
        v
    }

    /// Boot, stream the command's output to our stdout/stderr, and wait
    /// for qemu to exit (killed, by PID, on timeout or interrupt).
    pub(crate) fn run(&self) -> Result<Outcome> {
        // qemu connects to these at startup, before the guest runs: no
        // output can be lost to a late reader.
        let listeners: Vec<UnixListener> = (0..PORTS.len())
            .map(|i| {
                let p = self.run_dir.join(format!("port{i}.sock"));
                let l =
                    UnixListener::bind(&p).with_context(|| format!("binding {}", p.display()))?;
                l.set_nonblocking(true)?;
                Ok(l)
            })
            .collect::<Result<_>>()?;
        let argv = self.argv();
        if self.verbose {
            eprintln!("xtask vm: $ qemu-system-x86_64 {}", argv.join(" "));
        }
        let log = std::fs::File::create(self.run_dir.join("qemu.log"))?;
        let start = Instant::now();
        let mut child = Command::new("qemu-system-x86_64")
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a Ctrl-C in the terminal reaches only
            // xtask, which then kills qemu by PID and cleans up.
            .process_group(0)
            .spawn()
            .context("starting qemu-system-x86_64")?;
        let mut qemu = Qemu { child: &mut child };
        let streams = qemu
            .accept_all(&listeners, self.timeout.min(Duration::from_secs(60)))
            .map_err(|e| {
                let log = tail(&self.run_dir.join("qemu.log"), 20);
                anyhow!("{e}\n--- qemu's own output ---\n{log}")
            })?;
        let (tx, rx) = mpsc::channel();
        let readers = spawn_readers(streams, tx);
        let mut outcome = qemu.wait(start, self.timeout, &rx);
        for r in readers {
            let _ = r.join();
        }
        // The readers may have seen the last status lines after wait() gave up.
        for msg in rx.try_iter() {
            outcome.note(msg, start);
        }
        Ok(outcome)
    }
}

impl Outcome {
    fn note(&mut self, msg: Status, start: Instant) {
        match msg {
            Status::Started(at) => self.boot_time = Some(at - start),
            Status::Exit(rc) => self.exit = Some(rc),
        }
    }
}

/// The running qemu; killed by PID when dropped before it exited.
struct Qemu<'a> {
    child: &'a mut Child,
}

impl Drop for Qemu<'_> {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Qemu<'_> {
    fn accept_all(
        &mut self,
        listeners: &[UnixListener],
        within: Duration,
    ) -> Result<Vec<UnixStream>> {
        let deadline = Instant::now() + within;
        let mut streams: Vec<Option<UnixStream>> = listeners.iter().map(|_| None).collect();
        while streams.iter().any(Option::is_none) {
            for (l, s) in listeners.iter().zip(streams.iter_mut()) {
                if s.is_none() {
                    if let Ok((conn, _)) = l.accept() {
                        conn.set_nonblocking(false)?;
                        *s = Some(conn);
                    }
                }
            }
            if let Some(st) = self.child.try_wait()? {
                bail!("qemu exited ({st}) before connecting its virtio ports");
            }
            if xvs_testbed::interrupted() {
                bail!("interrupted");
            }
            if Instant::now() > deadline {
                bail!("qemu did not connect its virtio ports within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(streams.into_iter().flatten().collect())
    }

    /// Wait for qemu's exit; kill it on timeout, on interrupt, or when it
    /// lingers after the guest reported the exit status.
    fn wait(&mut self, start: Instant, timeout: Duration, rx: &mpsc::Receiver<Status>) -> Outcome {
        let mut out = Outcome {
            exit: None,
            boot_time: None,
            total: Duration::ZERO,
            stopped: None,
        };
        let mut reported_at = None;
        loop {
            for msg in rx.try_iter() {
                if matches!(msg, Status::Exit(_)) {
                    reported_at = Some(Instant::now());
                }
                out.note(msg, start);
            }
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            let stop = if xvs_testbed::interrupted() {
                Some(Some(Stopped::Interrupted))
            } else if start.elapsed() > timeout {
                Some(Some(Stopped::Timeout(timeout)))
            } else if reported_at.is_some_and(|t| t.elapsed() > Duration::from_secs(15)) {
                // The status is in; a guest that does not power off is no
                // reason to fail the command.
                Some(None)
            } else {
                None
            };
            if let Some(why) = stop {
                let _ = self.child.kill();
                let _ = self.child.wait();
                out.stopped = why;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        out.total = start.elapsed();
        out
    }
}

/// One thread per port: stdout and stderr copied through as they come,
/// status lines parsed.
fn spawn_readers(streams: Vec<UnixStream>, tx: mpsc::Sender<Status>) -> Vec<JoinHandle<()>> {
    let mut it = streams.into_iter();
    let (out, err, status) = (it.next(), it.next(), it.next());
    let mut handles = Vec::new();
    if let Some(s) = out {
        handles.push(std::thread::spawn(move || copy(s, std::io::stdout())));
    }
    if let Some(s) = err {
        handles.push(std::thread::spawn(move || copy(s, std::io::stderr())));
    }
    if let Some(s) = status {
        handles.push(std::thread::spawn(move || {
            for line in BufReader::new(s).lines() {
                let Ok(line) = line else { break };
                let msg = match line.trim().split_once(' ') {
                    _ if line.trim() == "XVS-START" => Status::Started(Instant::now()),
                    Some(("XVS-EXIT", rc)) => match rc.trim().parse() {
                        Ok(rc) => Status::Exit(rc),
                        Err(_) => continue,
                    },
                    _ => continue,
                };
                if tx.send(msg).is_err() {
                    break;
                }
            }
        }));
    }
    handles
}

/// Copy until EOF. After a write error (`xtask vm ... | head`), keep
/// reading and drop the bytes: a port nobody reads would block the guest's
/// writer, and the command with it, until the timeout.
fn copy(mut from: UnixStream, mut to: impl Write) {
    let mut buf = [0u8; 16384];
    let mut open = true;
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if open {
                    open = to.write_all(&buf[..n]).and_then(|()| to.flush()).is_ok();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
}

/// The last `n` lines of a file, for error messages.
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PVM: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\n\
        flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep hypervisor lahf_lm\n\n\
        processor\t: 1\nflags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep hypervisor\n";
    const VMX: &str = "processor\t: 0\nflags\t\t: fpu vme de pse tsc vmx ept\n";
    const SVM: &str = "processor\t: 0\nflags\t\t: fpu vme de pse tsc svm npt\n";

    #[test]
    fn kvm_only_with_hardware_virtualisation() {
        assert_eq!(auto_accel(PVM, true, true), Accel::Tcg);
        assert_eq!(auto_accel(PVM, false, true), Accel::Tcg);
        assert_eq!(auto_accel(VMX, false, true), Accel::Kvm);
        assert_eq!(auto_accel(SVM, false, true), Accel::Kvm);
        assert_eq!(auto_accel(VMX, true, true), Accel::Tcg, "kvm_pvm loaded");
        assert_eq!(auto_accel(VMX, false, false), Accel::Tcg, "no /dev/kvm");
        // A word that only contains "vmx" is no flag.
        assert_eq!(auto_accel("flags\t: xvmxx\n", false, true), Accel::Tcg);
        assert_eq!(auto_accel("model name\t: vmx\n", false, true), Accel::Tcg);
    }

    #[test]
    fn qemu_command_line() {
        let b = Boot {
            vmlinuz: Path::new("/c/vmlinuz"),
            initramfs: Path::new("/c/initramfs.cpio.gz"),
            run_dir: Path::new("/tmp/xvs-vm-1"),
            accel: Accel::Tcg,
            mem_mib: 3072,
            smp: 2,
            timeout: Duration::from_secs(1),
            verbose: false,
        };
        let a = b.argv().join(" ");
        for want in [
            "-no-reboot -nic none -m 3072 -smp 2 -accel tcg,thread=multi -cpu max",
            "-kernel /c/vmlinuz -initrd /c/initramfs.cpio.gz",
            "xvs.run=/tmp/xvs-vm-1",
            "mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
            "-serial file:/tmp/xvs-vm-1/console.log",
            "virtserialport,chardev=port2,name=org.xvs.status",
        ] {
            assert!(a.contains(want), "{want:?} not in {a}");
        }
    }
}
