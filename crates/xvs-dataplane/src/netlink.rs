//! A thin synchronous rtnetlink client: one request, its replies up to
//! the ack, error or end of dump. The messages are built and parsed by
//! `netlink-packet-route`/`netlink-packet-core`, the socket is
//! `netlink-sys`'s (blocking, no async runtime). Neighbour resolution
//! ([`crate::neigh`]), next hops ([`crate::nexthop`]) and the tc queries
//! ([`crate::tc`]) speak through it.

use crate::error::Error;
use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLMSG_ERROR,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::mem::size_of;
use std::os::fd::AsRawFd;

pub(crate) use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST,
};

pub(crate) struct Netlink {
    socket: Socket,
    seq: u32,
}

/// An rtnetlink socket, as [`Error::Io`] with `context` when it cannot be
/// opened.
pub(crate) fn socket(context: &str) -> Result<Socket, Error> {
    Socket::new(NETLINK_ROUTE).map_err(|source| Error::Io {
        context: context.to_string(),
        source,
    })
}

/// What one datagram of replies to request `seq` says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Wait for more.
    More,
    /// The answer is complete.
    Done,
    /// The kernel refused the request (errno).
    Failed(i32),
}

/// Collects the replies to `seq` in `data` into `out` (`flags`: the
/// request's, which tell whether more than one answer comes). A message
/// whose length does not fit ends the datagram; one the crate cannot
/// parse is skipped (an error message too short to hold its errno is no
/// answer: `EPROTO`).
pub(crate) fn replies(
    data: &[u8],
    seq: u32,
    flags: u16,
    out: &mut Vec<RouteNetlinkMessage>,
) -> Step {
    let mut i = 0;
    while let Some(buf) = data
        .get(i..)
        .and_then(|d| NetlinkBuffer::new_checked(d).ok())
    {
        let len = buf.length() as usize;
        let (ty, mseq) = (buf.message_type(), buf.sequence_number());
        let this = data.get(i..i + len).unwrap_or_default();
        i += len.next_multiple_of(4);
        if mseq != seq {
            continue;
        }
        let msg = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(this) {
            Ok(m) => m,
            Err(_) if ty == NLMSG_ERROR => return Step::Failed(libc::EPROTO),
            Err(e) => {
                log::debug!("skipping an rtnetlink message of type {ty}: {e}");
                if flags & (NLM_F_ACK | NLM_F_DUMP) == 0 {
                    return Step::Done;
                }
                continue;
            }
        };
        match msg.payload {
            NetlinkPayload::Error(e) => {
                return match e.code {
                    None => Step::Done,
                    Some(errno) => Step::Failed(errno.get().saturating_neg()),
                };
            }
            NetlinkPayload::Done(_) => return Step::Done,
            NetlinkPayload::InnerMessage(m) => {
                out.push(m);
                // A non-dump, non-ack request gets one answer.
                if flags & (NLM_F_ACK | NLM_F_DUMP) == 0 {
                    return Step::Done;
                }
            }
            _ => {}
        }
    }
    Step::More
}

impl Netlink {
    pub(crate) fn open() -> Result<Netlink, Error> {
        let socket = socket("netlink socket")?;
        // Replies must not wait forever.
        let tv = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: valid option value of the right size on our socket.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                size_of::<libc::timeval>() as u32,
            )
        };
        Ok(Netlink { socket, seq: 1 })
    }

    /// Asks the kernel to check requests strictly, which also makes it
    /// filter dumps by the request's header (4.20+; older kernels dump
    /// everything and the caller filters anyway).
    pub(crate) fn strict(&self) {
        if let Err(e) = self.socket.set_netlink_get_strict_chk(true) {
            log::debug!("NETLINK_GET_STRICT_CHK: {e}");
        }
    }

    /// Sends one request, returns the reply messages up to the
    /// ack/error/done (an error reply becomes `Err`, errno kept).
    pub(crate) fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, io::Error> {
        self.seq += 1;
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        msg.finalize();
        let mut bytes = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut bytes);
        self.socket.send_to(&bytes, &SocketAddr::new(0, 0), 0)?;
        let mut out = Vec::new();
        let mut buf = Vec::with_capacity(32768);
        loop {
            buf.clear();
            match self.socket.recv(&mut buf, 0) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            match replies(&buf, seq, flags, &mut out) {
                Step::More => {}
                Step::Done => return Ok(out),
                Step::Failed(errno) => return Err(io::Error::from_raw_os_error(errno)),
            }
        }
    }
}

/// The bytes of a message's body as the kernel gets them (after the
/// `nlmsghdr`), for tests holding them against the kernel's layouts.
#[cfg(test)]
pub(crate) fn body(m: &RouteNetlinkMessage) -> Vec<u8> {
    use netlink_packet_core::NetlinkSerializable;
    let mut b = vec![0u8; m.buffer_len()];
    m.serialize(&mut b);
    b
}

/// An attribute as the kernel lays it out (`struct nlattr`, padded).
#[cfg(test)]
pub(crate) fn attr(ty: u16, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    b.extend_from_slice(&ty.to_ne_bytes());
    b.extend_from_slice(data);
    b.resize(b.len().next_multiple_of(4), 0);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{DoneMessage, ErrorMessage, NLMSG_DONE};
    use netlink_packet_route::link::LinkMessage;
    use std::num::NonZeroI32;

    /// A netlink message header's length (`struct nlmsghdr`).
    const NLMSG_HDRLEN: usize = 16;

    fn msg(seq: u32, payload: NetlinkPayload<RouteNetlinkMessage>) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = seq;
        let mut m = NetlinkMessage::new(header, payload);
        m.finalize();
        let mut b = vec![0u8; m.buffer_len()];
        m.serialize(&mut b);
        b.resize(b.len().next_multiple_of(4), 0);
        b
    }

    fn link(index: u32) -> NetlinkPayload<RouteNetlinkMessage> {
        let mut l = LinkMessage::default();
        l.header.index = index;
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l))
    }

    fn err(code: i32) -> NetlinkPayload<RouteNetlinkMessage> {
        let mut e = ErrorMessage::default();
        e.code = NonZeroI32::new(code);
        NetlinkPayload::Error(e)
    }

    fn raw(ty: u16, seq: u32, body: &[u8]) -> Vec<u8> {
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
        let mut data = msg(7, link(4));
        data.extend(msg(6, link(9)));
        data.extend(msg(7, err(0)));
        let mut out = Vec::new();
        assert_eq!(replies(&data, 7, NLM_F_ACK, &mut out), Step::Done);
        assert!(matches!(&out[..], [RouteNetlinkMessage::NewLink(l)] if l.header.index == 4));
        let nack = msg(7, err(-libc::ENOENT));
        assert_eq!(
            replies(&nack, 7, NLM_F_ACK, &mut out),
            Step::Failed(libc::ENOENT)
        );
        let dump = msg(7, link(5));
        assert_eq!(replies(&dump, 7, NLM_F_DUMP, &mut out), Step::More);
        assert_eq!(replies(&dump, 7, 0, &mut Vec::new()), Step::Done);
        let done = msg(7, NetlinkPayload::Done(DoneMessage::default()));
        assert_eq!(replies(&done, 7, NLM_F_DUMP, &mut out), Step::Done);
        assert_eq!(
            replies(&raw(NLMSG_DONE, 7, &[]), 7, NLM_F_DUMP, &mut out),
            Step::Done
        );
    }

    #[test]
    fn truncated_kernel_input_is_never_a_panic() {
        // An error message without its errno, a header cut short, a length
        // past the end, a length below the header's.
        let short_err = raw(NLMSG_ERROR, 7, &[0xff, 0xff]);
        assert_eq!(
            replies(&short_err, 7, NLM_F_ACK, &mut Vec::new()),
            Step::Failed(libc::EPROTO)
        );
        let whole = msg(7, link(3));
        for cut in 0..whole.len() {
            let mut out = Vec::new();
            assert_eq!(replies(&whole[..cut], 7, NLM_F_DUMP, &mut out), Step::More);
            assert!(out.is_empty());
        }
        let mut long = whole.clone();
        long[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(replies(&long, 7, 0, &mut Vec::new()), Step::More);
        let mut tiny = whole;
        tiny[..4].copy_from_slice(&3u32.to_ne_bytes());
        assert_eq!(replies(&tiny, 7, 0, &mut Vec::new()), Step::More);
        // A body the crate cannot parse (a link message cut inside its
        // header) is skipped, not a panic.
        let bad = raw(16, 7, &[0; 6]);
        let mut out = Vec::new();
        assert_eq!(replies(&bad, 7, NLM_F_DUMP, &mut out), Step::More);
        assert!(out.is_empty());
    }
}
