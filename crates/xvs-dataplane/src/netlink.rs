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

/// Reads of kernel bytes through checked views: a read that falls
/// outside the slice is `None`, never a panic.
pub(crate) fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// See [`u16_at`].
pub(crate) fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// See [`u16_at`].
pub(crate) fn i32_at(b: &[u8], off: usize) -> Option<i32> {
    u32_at(b, off).map(|v| v as i32)
}

/// The IPv4 address in the first four bytes of an attribute.
pub(crate) fn ipv4_at(b: &[u8], off: usize) -> Option<std::net::Ipv4Addr> {
    let o: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(std::net::Ipv4Addr::from(o))
}

/// Attributes of a message body starting at `off` (after the fixed
/// header), up to the first one that does not fit.
pub(crate) fn attrs(body: &[u8], off: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut i = off;
    while let (Some(len), Some(ty)) = (u16_at(body, i), u16_at(body, i + 2)) {
        let len = len as usize;
        let Some(value) = body.get(i + 4..i + len).filter(|_| len >= 4) else {
            break;
        };
        out.push((ty & 0x3fff, value));
        i += len.next_multiple_of(4);
    }
    out
}

/// One netlink message of a datagram: type, sequence number, body.
type Message<'a> = (u16, u32, &'a [u8]);

/// The messages of one datagram, up to the first that does not fit.
fn messages(data: &[u8]) -> Vec<Message<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while let (Some(len), Some(ty), Some(seq)) =
        (u32_at(data, i), u16_at(data, i + 4), u32_at(data, i + 8))
    {
        let len = len as usize;
        let Some(body) = data
            .get(i + NLMSG_HDRLEN..i.saturating_add(len))
            .filter(|_| len >= NLMSG_HDRLEN)
        else {
            break;
        };
        out.push((ty, seq, body));
        i += len.next_multiple_of(4);
    }
    out
}

/// What one datagram of replies to request `seq` says.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Wait for more.
    More,
    /// The answer is complete.
    Done,
    /// The kernel refused the request (errno).
    Failed(i32),
}

/// Collects the replies to `seq` in `data` into `out` (`flags`: the
/// request's, which tell whether more than one answer comes).
fn replies(data: &[u8], seq: u32, flags: u16, out: &mut Vec<(u16, Vec<u8>)>) -> Step {
    for (ty, mseq, body) in messages(data) {
        if mseq != seq {
            continue;
        }
        match ty {
            NLMSG_ERROR => {
                // struct nlmsgerr starts with the (negative) errno; a
                // message too short to hold it is no answer.
                return match i32_at(body, 0) {
                    Some(0) => Step::Done,
                    Some(errno) => Step::Failed(errno.saturating_neg()),
                    None => Step::Failed(libc::EPROTO),
                };
            }
            NLMSG_DONE => return Step::Done,
            _ => {
                out.push((ty, body.to_vec()));
                // A non-dump, non-ack request gets one answer.
                if flags & (NLM_F_ACK | NLM_F_DUMP) == 0 {
                    return Step::Done;
                }
            }
        }
    }
    Step::More
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
            let data = buf.get(..n as usize).unwrap_or_default();
            match replies(data, seq, flags, &mut out) {
                Step::More => {}
                Step::Done => return Ok(out),
                Step::Failed(errno) => return Err(io::Error::from_raw_os_error(errno)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        m.resize(m.len().next_multiple_of(4), 0);
        m
    }

    #[test]
    fn replies_are_collected_up_to_the_ack_or_error() {
        let mut data = msg(24, 7, &[1, 2, 3, 4]);
        data.extend(msg(24, 6, &[9]));
        data.extend(msg(NLMSG_ERROR, 7, &0i32.to_ne_bytes()));
        let mut out = Vec::new();
        assert_eq!(replies(&data, 7, NLM_F_ACK, &mut out), Step::Done);
        assert_eq!(out, [(24, vec![1, 2, 3, 4])]);
        let err = msg(NLMSG_ERROR, 7, &(-libc::ENOENT).to_ne_bytes());
        assert_eq!(
            replies(&err, 7, NLM_F_ACK, &mut out),
            Step::Failed(libc::ENOENT)
        );
        let dump = msg(24, 7, &[5]);
        assert_eq!(replies(&dump, 7, NLM_F_DUMP, &mut out), Step::More);
        assert_eq!(replies(&dump, 7, 0, &mut Vec::new()), Step::Done);
    }

    #[test]
    fn truncated_kernel_input_is_never_a_panic() {
        // An error message without its errno, a header cut short, a length
        // past the end, a length below the header's.
        let short_err = msg(NLMSG_ERROR, 7, &[0xff, 0xff]);
        assert_eq!(
            replies(&short_err, 7, NLM_F_ACK, &mut Vec::new()),
            Step::Failed(libc::EPROTO)
        );
        let whole = msg(24, 7, &[1, 2, 3, 4, 5, 6, 7, 8]);
        for cut in 0..whole.len() {
            let _ = replies(&whole[..cut], 7, NLM_F_DUMP, &mut Vec::new());
        }
        let mut long = whole.clone();
        long[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(messages(&long).is_empty());
        let mut tiny = whole;
        tiny[..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(messages(&tiny).is_empty());
    }

    #[test]
    fn attributes_stop_at_the_first_that_does_not_fit() {
        let mut b = vec![0u8; 4];
        push_attr(&mut b, 1, &[10, 0, 0, 1]);
        push_attr(&mut b, 0x8002, &[7]);
        assert_eq!(attrs(&b, 4), [(1, &[10, 0, 0, 1][..]), (2, &[7][..])]);
        for cut in 0..b.len() {
            assert!(attrs(&b[..cut], 4).len() <= 2);
        }
        let mut bad = b.clone();
        bad[4..6].copy_from_slice(&2u16.to_ne_bytes());
        assert!(attrs(&bad, 4).is_empty(), "length below the header's");
        assert!(attrs(&b, 400).is_empty());
        assert_eq!(u16_at(&[1], 0), None);
        assert_eq!(u32_at(&[1, 2, 3, 4], usize::MAX), None);
        assert_eq!(ipv4_at(&[192, 0, 2], 0), None);
    }
}
