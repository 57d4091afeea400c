//! Between the maps' representation and the model's: network-order
//! fields, protocol and forwarding-method numbers, service keys.

use crate::error::Error;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xvs_core::model::{ConnState, FwdMethod, Protocol, ServiceKey};

use crate::abi::{
    as_bytes, xvs_addr, xvs_conn_key, xvs_fwd, xvs_sip_key, xvs_state, xvs_svc_key, xvs_tmpl_key,
};

// The model's state numbers are the kernel's, and so must the program's
// be; ConnState's next number (12, Assured) is IPVS's template flag.
const _: () = assert!(
    xvs_state::XVS_S_NONE.0 == ConnState::None as u32
        && xvs_state::XVS_S_ESTABLISHED.0 == ConnState::Established as u32
        && xvs_state::XVS_S_SYN_SENT.0 == ConnState::SynSent as u32
        && xvs_state::XVS_S_SYN_RECV.0 == ConnState::SynRecv as u32
        && xvs_state::XVS_S_FIN_WAIT.0 == ConnState::FinWait as u32
        && xvs_state::XVS_S_TIME_WAIT.0 == ConnState::TimeWait as u32
        && xvs_state::XVS_S_CLOSE.0 == ConnState::Close as u32
        && xvs_state::XVS_S_CLOSE_WAIT.0 == ConnState::CloseWait as u32
        && xvs_state::XVS_S_LAST_ACK.0 == ConnState::LastAck as u32
        && xvs_state::XVS_S_LISTEN.0 == ConnState::Listen as u32
        && xvs_state::XVS_S_SYNACK.0 == ConnState::SynAck as u32
        && xvs_state::XVS_S_UDP.0 == ConnState::Udp as u32
        && xvs_state::XVS_S_TCP_LAST.0 == ConnState::Udp as u32 + 1
        && xvs_state::XVS_S_SCTP_NONE.0 == ConnState::SctpNone as u32
        && xvs_state::XVS_S_SCTP_NONE.0 == ConnState::SCTP_BASE as u32
        && xvs_state::XVS_S_SCTP_INIT1.0 == ConnState::SctpInit1 as u32
        && xvs_state::XVS_S_SCTP_INIT.0 == ConnState::SctpInit as u32
        && xvs_state::XVS_S_SCTP_COOKIE_SENT.0 == ConnState::SctpCookieSent as u32
        && xvs_state::XVS_S_SCTP_COOKIE_REPLIED.0 == ConnState::SctpCookieReplied as u32
        && xvs_state::XVS_S_SCTP_COOKIE_WAIT.0 == ConnState::SctpCookieWait as u32
        && xvs_state::XVS_S_SCTP_COOKIE.0 == ConnState::SctpCookie as u32
        && xvs_state::XVS_S_SCTP_COOKIE_ECHOED.0 == ConnState::SctpCookieEchoed as u32
        && xvs_state::XVS_S_SCTP_ESTABLISHED.0 == ConnState::SctpEstablished as u32
        && xvs_state::XVS_S_SCTP_SHUTDOWN_SENT.0 == ConnState::SctpShutdownSent as u32
        && xvs_state::XVS_S_SCTP_SHUTDOWN_RECEIVED.0 == ConnState::SctpShutdownReceived as u32
        && xvs_state::XVS_S_SCTP_SHUTDOWN_ACK_SENT.0 == ConnState::SctpShutdownAckSent as u32
        && xvs_state::XVS_S_SCTP_REJECTED.0 == ConnState::SctpRejected as u32
        && xvs_state::XVS_S_SCTP_CLOSED.0 == ConnState::SctpClosed as u32
        && xvs_state::XVS_S_LAST.0 == ConnState::SctpClosed as u32 + 1
);

/// An IPv4 address as the bytes of a `__be32` field.
pub fn be32(a: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(a.octets())
}

/// `AF_INET`, the `af` byte of an IPv4 key or dest.
pub const AF_INET: u8 = 2;
/// `AF_INET6`, the `af` byte of an IPv6 key or dest.
pub const AF_INET6: u8 = 10;

/// The `af` byte of an address's family.
pub fn af_of(a: IpAddr) -> u8 {
    match a {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

/// An address as the 16 bytes of a `union xvs_addr`: IPv4 in the first
/// four, the rest zero. Every address the crate writes into a shared
/// struct goes through here (and [`from_addr16`] back).
pub fn addr16(a: IpAddr) -> [u8; 16] {
    let mut b = [0u8; 16];
    match a {
        IpAddr::V4(v4) => b[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => b = v6.octets(),
    }
    b
}

/// The address of family `af` in the 16 bytes of a `union xvs_addr`
/// (any other `af` reads as IPv4, the only family before ABI 5).
pub fn from_addr16(af: u8, b: [u8; 16]) -> IpAddr {
    if af == AF_INET6 {
        IpAddr::V6(Ipv6Addr::from(b))
    } else {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    }
}

/// An address as a `union xvs_addr` field.
pub fn xaddr(a: IpAddr) -> xvs_addr {
    xvs_addr { b: addr16(a) }
}

/// An IPv4 address as a `union xvs_addr` field.
pub fn xaddr4(a: Ipv4Addr) -> xvs_addr {
    xaddr(IpAddr::V4(a))
}

/// The 16 bytes of a `union xvs_addr` field.
pub fn bytes16(a: &xvs_addr) -> [u8; 16] {
    // SAFETY: every member is plain integers over the same 16 bytes.
    unsafe { a.b }
}

/// The address of family `af` in a `union xvs_addr` field.
pub fn addr_of(af: u8, a: &xvs_addr) -> IpAddr {
    from_addr16(af, bytes16(a))
}

/// The IPv4 address in a `union xvs_addr` field (its first word).
pub fn ip4_of(a: &xvs_addr) -> Ipv4Addr {
    let b = bytes16(a);
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// Refuses an IPv6 address (`what` names it) with [`Error::Unsupported`].
pub fn ipv4_only(a: IpAddr, what: &str) -> Result<Ipv4Addr, Error> {
    match a {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(_) => Err(Error::Unsupported(format!(
            "{what} {a} is IPv6, which the data plane does not forward yet"
        ))),
    }
}

/// A port as the bytes of a `__be16` field.
pub fn be16(p: u16) -> u16 {
    p.to_be()
}

/// The address in a `__be32` field.
pub fn ip_of(v: u32) -> Ipv4Addr {
    Ipv4Addr::from(v.to_ne_bytes())
}

/// The port in a `__be16` field.
pub fn port_of(v: u16) -> u16 {
    u16::from_be(v)
}

pub(crate) fn proto_of(n: u8) -> Option<Protocol> {
    Protocol::from_number(n)
}

pub(crate) fn fwd_of(n: u8) -> FwdMethod {
    match n as u32 {
        x if x == xvs_fwd::XVS_FWD_ROUTE.0 => FwdMethod::Route,
        x if x == xvs_fwd::XVS_FWD_TUNNEL.0 => FwdMethod::Tunnel,
        _ => FwdMethod::Masq,
    }
}

/// The `xvs_fwd` number of a forwarding method.
pub(crate) fn fwd_code(f: FwdMethod) -> u8 {
    match f {
        FwdMethod::Masq => xvs_fwd::XVS_FWD_MASQ.0 as u8,
        FwdMethod::Route => xvs_fwd::XVS_FWD_ROUTE.0 as u8,
        FwdMethod::Tunnel => xvs_fwd::XVS_FWD_TUNNEL.0 as u8,
    }
}

/// The service key as `SVC_MAP` stores it: a fwmark service as
/// `{ htonl(mark), 0, 0 }`.
pub fn svc_key(k: &ServiceKey) -> xvs_svc_key {
    if k.is_fwmark() {
        return xvs_svc_key {
            addr: xaddr4(Ipv4Addr::from(k.fwmark)),
            port: 0,
            proto: 0,
            af: AF_INET,
        };
    }
    let a = k.addr;
    xvs_svc_key {
        addr: xaddr(a),
        port: be16(k.port),
        proto: k.proto.number(),
        af: af_of(a),
    }
}

/// A connection key's bytes, for sets and maps of keys.
pub(crate) type ConnKeyBytes = [u8; size_of::<xvs_conn_key>()];
/// A template key's bytes, for sets and maps of keys.
pub(crate) type TmplKeyBytes = [u8; size_of::<xvs_tmpl_key>()];
/// A `--pe sip` template key's bytes, for sets and maps of keys.
pub(crate) type SipKeyBytes = [u8; size_of::<xvs_sip_key>()];

/// A connection key as bytes, for sets and maps of keys.
pub(crate) fn conn_key_bytes(k: &xvs_conn_key) -> ConnKeyBytes {
    let mut b = [0u8; size_of::<xvs_conn_key>()];
    b.copy_from_slice(as_bytes(k));
    b
}

/// A template key as bytes, for sets and maps of keys.
pub(crate) fn tmpl_key_bytes(k: &xvs_tmpl_key) -> TmplKeyBytes {
    let mut b = [0u8; size_of::<xvs_tmpl_key>()];
    b.copy_from_slice(as_bytes(k));
    b
}

/// A `--pe sip` template key as bytes, for sets and maps of keys.
pub(crate) fn sip_key_bytes(k: &xvs_sip_key) -> SipKeyBytes {
    let mut b = [0u8; size_of::<xvs_sip_key>()];
    b.copy_from_slice(as_bytes(k));
    b
}

// A union's generated Default sets its first member: v6, all 16 bytes, so
// keys made with ..Default::default() have no uninitialised bytes.
const _: () = assert!(size_of::<xvs_addr>() == 16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_helpers_round_trip() {
        let a = Ipv4Addr::new(192, 0, 2, 1);
        assert_eq!(ip_of(be32(a)), a);
        assert_eq!(be32(a).to_ne_bytes(), [192, 0, 2, 1]);
        assert_eq!(port_of(be16(8080)), 8080);
        assert_eq!(be16(0x1234).to_ne_bytes(), [0x12, 0x34]);
    }

    #[test]
    fn addr16_round_trips_both_families() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            addr16(a),
            [192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(from_addr16(AF_INET, addr16(a)), a);
        assert_eq!(addr_of(af_of(a), &xaddr(a)), a);
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(from_addr16(af_of(b), addr16(b)), b);
        assert_eq!(as_bytes(&xvs_conn_key::default()), &[0u8; 40][..]);
    }
}
