//! xvsadm run as a user who may not open xvsd's socket: ipvsadm's words
//! for EPERM, exit 2 (root only: the binary is run as uid/gid 65534).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::process::Command;

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn socket_not_ours_to_open() {
    // /proc/self belongs to the effective uid.
    let euid = std::fs::metadata("/proc/self").map(|m| m.uid());
    assert_eq!(euid.ok(), Some(0), "needs root");
    let dir = std::env::temp_dir().join(format!("xvsadm-perm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.join("xvsd.sock");
    let _ = std::fs::remove_file(&sock);
    let _l = UnixListener::bind(&sock).unwrap();
    // What xvsd makes of it without --control-group.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xvsadm"))
        .arg0("xvsadm")
        .arg("--socket")
        .arg(&sock)
        .arg("-Ln")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "xvsadm: cannot connect to xvsd at {}: Permission denied (you must be root)\n",
            sock.display()
        )
    );
}
