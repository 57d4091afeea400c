//! Trivial XDP programs (pass, drop, tx) loaded with bpf(2) itself and
//! attached to a testbed's devices.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::{io_err, Node, Result, Testbed};

/// Load the two-instruction program `return XDP_PASS;` and pin it at `path`
/// (on a bpffs), with the bpf(2) system call itself: no compiler needed.
pub(crate) fn pin_xdp_pass(path: &Path) -> io::Result<()> {
    pin_xdp_action(path, XDP_PASS, b"xvs_tb_pass")
}

/// `XDP_DROP`: the verdict of [`Testbed::xdp_action`]'s drop program.
pub const XDP_DROP: u32 = 1;
/// `XDP_PASS`.
pub const XDP_PASS: u32 = 2;
/// `XDP_TX`: bounce the frame back out of the interface it came in on.
pub const XDP_TX: u32 = 3;

/// Load the two-instruction program `return <action>;` (named `name`, at
/// most 15 bytes) and pin it at `path`.
pub(crate) fn pin_xdp_action(path: &Path, action: u32, name: &[u8]) -> io::Result<()> {
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_OBJ_PIN: libc::c_long = 6;
    const BPF_PROG_TYPE_XDP: u32 = 6;
    // r0 = action; exit.
    let a = action.to_le_bytes();
    let insns: [u8; 16] = [
        0xb7, 0, 0, 0, a[0], a[1], a[2], a[3], 0x95, 0, 0, 0, 0, 0, 0, 0,
    ];
    let license = b"GPL\0";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_XDP.to_ne_bytes());
    attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    let name = &name[..name.len().min(15)];
    attr[48..48 + name.len()].copy_from_slice(name);
    // SAFETY: attr is a valid union bpf_attr prefix for BPF_PROG_LOAD whose
    // pointers (insns, license) outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            attr.as_mut_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut attr = [0u8; 128];
    attr[0..8].copy_from_slice(&(cpath.as_ptr() as u64).to_ne_bytes());
    attr[8..12].copy_from_slice(&(fd as u32).to_ne_bytes());
    // SAFETY: attr is a valid BPF_OBJ_PIN attr; cpath outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_PIN,
            attr.as_mut_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    let err = io::Error::last_os_error();
    // SAFETY: fd is the program fd returned above; the pin keeps it alive.
    unsafe { libc::close(fd as libc::c_int) };
    if r < 0 {
        return Err(err);
    }
    Ok(())
}

impl Testbed {
    /// Attach a trivial `return XDP_PASS;` program (native mode) to `dev`
    /// in `node`: it gives a veth the NAPI that `XDP_TX` from its peer needs.
    pub fn xdp_pass(&self, node: Node, dev: &str) -> Result<()> {
        let pin = self.bpffs.join("xdp_pass");
        if !pin.exists() {
            pin_xdp_pass(&pin).map_err(io_err(format!(
                "load and pin an XDP_PASS program at {}",
                pin.display()
            )))?;
        }
        let pin = pin.to_string_lossy().into_owned();
        self.exec_ok(
            node,
            &["ip", "link", "set", "dev", dev, "xdpdrv", "pinned", &pin],
        )?;
        Ok(())
    }

    /// Attach the two-instruction program `return <action>;` (native mode)
    /// to `dev` in `node`, e.g. [`XDP_DROP`] or [`XDP_TX`]: the ceiling of
    /// any XDP forwarder on these links (benchmarks). Replaces any XDP
    /// program already there; [`Testbed::xdp_off`] removes it.
    pub fn xdp_action(&self, node: Node, dev: &str, action: u32) -> Result<()> {
        let pin = self.bpffs.join(format!("xdp_action_{action}"));
        if !pin.exists() {
            let name = format!("xvs_tb_act{action}");
            pin_xdp_action(&pin, action, name.as_bytes()).map_err(io_err(format!(
                "load and pin an XDP program returning {action} at {}",
                pin.display()
            )))?;
        }
        let pin = pin.to_string_lossy().into_owned();
        self.exec_ok(
            node,
            &[
                "ip", "-force", "link", "set", "dev", dev, "xdpdrv", "pinned", &pin,
            ],
        )?;
        Ok(())
    }

    /// Remove any (native or generic) XDP program from `dev` in `node`.
    pub fn xdp_off(&self, node: Node, dev: &str) -> Result<()> {
        self.exec_ok(node, &["ip", "link", "set", "dev", dev, "xdpdrv", "off"])?;
        self.exec_ok(
            node,
            &["ip", "link", "set", "dev", dev, "xdpgeneric", "off"],
        )?;
        Ok(())
    }
}
