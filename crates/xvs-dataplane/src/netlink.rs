//! A minimal rtnetlink client over a raw socket (no shelling out, no extra
//! crates): one request, its replies up to the ack, error or end of dump.
//! Neighbour resolution ([`crate::neigh`]) and the tc queries
//! ([`crate::tc`]) speak through it.

use crate::error::Error;
use std::io;
use std::mem::size_of;

pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLM_F_REQUEST: u16 = 0x01;
pub(crate) const NLM_F_ACK: u16 = 0x04;
pub(crate) const NLM_F_DUMP: u16 = 0x300;

pub(crate) struct Netlink {
    fd: libc::c_int,
    seq: u32,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        // SAFETY: closing the socket we opened.
        unsafe { libc::close(self.fd) };
    }
}

pub(crate) fn os_err(context: &str) -> Error {
    Error::Io {
        context: context.to_string(),
        source: io::Error::last_os_error(),
    }
}

pub(crate) fn push_attr(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// Attributes of a message body starting at `off` (after the fixed header).
pub(crate) fn attrs(body: &[u8], off: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut i = off;
    while i + 4 <= body.len() {
        let len = u16::from_ne_bytes([body[i], body[i + 1]]) as usize;
        let ty = u16::from_ne_bytes([body[i + 2], body[i + 3]]) & 0x3fff;
        if len < 4 || i + len > body.len() {
            break;
        }
        out.push((ty, &body[i + 4..i + len]));
        i += len.next_multiple_of(4);
    }
    out
}

impl Netlink {
    pub(crate) fn open() -> Result<Netlink, Error> {
        // SAFETY: plain socket(2).
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(os_err("netlink socket"));
        }
        let nl = Netlink { fd, seq: 1 };
        // Replies must not wait forever.
        let tv = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: valid option value of the right size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                size_of::<libc::timeval>() as u32,
            )
        };
        Ok(nl)
    }

    /// Sends one request, returns the reply messages `(type, body)` up to
    /// the ack/error/done (an error reply becomes `Err`, errno kept).
    pub(crate) fn request(
        &mut self,
        ty: u16,
        flags: u16,
        body: &[u8],
    ) -> Result<Vec<(u16, Vec<u8>)>, io::Error> {
        self.seq += 1;
        let seq = self.seq;
        let mut msg = Vec::with_capacity(NLMSG_HDRLEN + body.len());
        msg.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(&flags.to_ne_bytes());
        msg.extend_from_slice(&seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: a zeroed sockaddr_nl is the kernel's address.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: buffer and address are valid for the call.
        let n = unsafe {
            libc::sendto(
                self.fd,
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
                &sa as *const _ as *const libc::sockaddr,
                size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut out = Vec::new();
        let mut buf = vec![0u8; 32768];
        loop {
            // SAFETY: receiving into our buffer.
            let n =
                unsafe { libc::recv(self.fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let data = &buf[..n as usize];
            let mut i = 0;
            while i + NLMSG_HDRLEN <= data.len() {
                let len = u32::from_ne_bytes(data[i..i + 4].try_into().unwrap()) as usize;
                let mty = u16::from_ne_bytes([data[i + 4], data[i + 5]]);
                let mseq = u32::from_ne_bytes(data[i + 8..i + 12].try_into().unwrap());
                if len < NLMSG_HDRLEN || i + len > data.len() {
                    break;
                }
                let body = &data[i + NLMSG_HDRLEN..i + len];
                i += len.next_multiple_of(4);
                if mseq != seq {
                    continue;
                }
                match mty {
                    NLMSG_ERROR => {
                        let errno = i32::from_ne_bytes(body[..4].try_into().unwrap_or([0; 4]));
                        if errno != 0 {
                            return Err(io::Error::from_raw_os_error(-errno));
                        }
                        return Ok(out);
                    }
                    NLMSG_DONE => return Ok(out),
                    _ => {
                        out.push((mty, body.to_vec()));
                        // A non-dump, non-ack request gets one answer.
                        if flags & (NLM_F_ACK | NLM_F_DUMP) == 0 {
                            return Ok(out);
                        }
                    }
                }
            }
        }
    }
}
