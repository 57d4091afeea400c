//! systemd's readiness protocol (`sd_notify(3)`, `Type=notify`): one
//! datagram `READY=1` to the unix socket named by `$NOTIFY_SOCKET`, sent
//! once the data plane is attached and the control socket answers, so
//! that units ordered after xvsd (xvs-rules.service restoring the table)
//! find a daemon that takes requests. Without `$NOTIFY_SOCKET` (not under
//! systemd, or another `Type=`) nothing is sent.

use std::ffi::OsString;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;

/// The variable systemd sets for a `Type=notify` service.
const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

static SOCKET: OnceLock<OsString> = OnceLock::new();

/// Takes `$NOTIFY_SOCKET` out of the environment, so that health-check and
/// notify scripts do not inherit it (their messages would be taken for
/// xvsd's under `NotifyAccess=all`). Called first thing in `main`, while
/// xvsd has one thread: changing the environment races with other threads
/// reading it.
pub(crate) fn take() {
    if let Some(path) = std::env::var_os(NOTIFY_SOCKET) {
        std::env::remove_var(NOTIFY_SOCKET);
        let _ = SOCKET.set(path);
    }
}

/// Tells the service manager that xvsd is ready. A failure is logged,
/// never fatal: forwarding does not depend on it.
pub(crate) fn ready() {
    let Some(path) = SOCKET.get() else {
        return;
    };
    match send(path.as_encoded_bytes(), b"READY=1") {
        Ok(()) => log::info!("told systemd: READY=1"),
        Err(e) => log::warn!("${NOTIFY_SOCKET} {}: {e}", path.to_string_lossy()),
    }
}

/// One datagram to `path`: a filesystem path, or `@name` for an abstract
/// socket (systemd uses both).
fn send(path: &[u8], msg: &[u8]) -> std::io::Result<()> {
    let addr = match path.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        None => {
            use std::os::unix::ffi::OsStrExt;
            SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(path))?
        }
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(msg, &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_and_an_abstract_name() {
        let dir = std::env::temp_dir().join(format!("xvsd-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str().as_encoded_bytes(), b"READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        std::fs::remove_dir_all(&dir).unwrap();

        use std::os::linux::net::SocketAddrExt;
        let name = format!("xvsd-notify-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        send(format!("@{name}").as_bytes(), b"READY=1").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
