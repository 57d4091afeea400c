//! IPVS connection synchronisation (`ipvsadm --start-daemon`), the parts
//! that decide: which connections and templates a master sends, and what
//! a backup installs for a received entry. The wire format is
//! `xvs_core::sync`; sockets and the data plane are in `sync_io`.
//!
//! IPVS's master sends from its packet path (`ip_vs_sync_conn_needed`: a
//! TCP connection on reaching ESTABLISHED at its third packet and every 50
//! after, at once on FIN_WAIT, CLOSE_WAIT, CLOSE and TIME_WAIT; SCTP the
//! same way with ESTABLISHED, then SHUTDOWN_SENT, SHUTDOWN_RECEIVED,
//! SHUTDOWN_ACK_SENT and CLOSED; UDP at the third packet and every 50). xvs's program never writes per packet
//! for this, so the master reads the table once a second instead and
//! sends what is new, what changed state, and (as IPVS's
//! `sync_refresh_period` does) what was used since it was last sent once
//! half its timeout (at least 10 s) has gone by, so a backup never
//! expires a live connection. Templates go the same way, before the
//! connections. The difference in timing is in docs/differences.md.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use xvs_core::model::{ConnState, FwdMethod, Protocol, Timeouts};
use xvs_core::sync::{conn_flags, tpl_state, SyncConn};
use xvs_dataplane::synced::SyncIndex;
use xvs_dataplane::{Conn, Template};

/// Least time between two refreshes of one entry.
const MIN_REFRESH_NS: u64 = 10_000_000_000;

/// An entry the master tracks, by its tuple.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Id {
    Conn(u8, IpAddr, u16, IpAddr, u16),
    /// A template: protocol, client network, virtual address and port,
    /// and a `--pe sip` template's Call-ID (one template per call).
    Tmpl(u8, IpAddr, IpAddr, u16, Option<Vec<u8>>),
}

/// What was last sent of an entry.
#[derive(Debug, Clone, Copy)]
struct Sent {
    state: ConnState,
    dest: (IpAddr, u16),
    last_seen_ns: u64,
    at_ns: u64,
}

/// One entry to send: a connection or a template, with the timeout the
/// backup is to give it (seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A connection.
    Conn(Conn, u32),
    /// A persistence template.
    Template(Template),
}

/// The master's memory of what it sent.
#[derive(Debug, Default)]
pub struct Master {
    sent: HashMap<Id, Sent>,
}

/// Whether IPVS synchronises a connection in this state
/// (`ip_vs_sync_conn_needed`): TCP and SCTP once established or closing,
/// never during the handshake (nor an SCTP association REJECTED before it
/// was up); UDP always.
pub fn sync_worthy(c: &Conn) -> bool {
    use ConnState::*;
    match c.proto {
        Protocol::Tcp => matches!(
            c.state,
            Established | FinWait | Close | CloseWait | TimeWait
        ),
        Protocol::Sctp => matches!(
            c.state,
            SctpEstablished
                | SctpShutdownSent
                | SctpShutdownReceived
                | SctpShutdownAckSent
                | SctpClosed
        ),
        Protocol::Udp => true,
    }
}

impl Master {
    /// A fresh master: everything in the table is new to it.
    pub fn new() -> Master {
        Master::default()
    }

    fn due(&mut self, id: Id, now: u64, cur: Sent, timeout_secs: u32) -> bool {
        let send = match self.sent.get(&id) {
            None => true,
            Some(s) if s.state != cur.state || s.dest != cur.dest => true,
            Some(s) => {
                let refresh = (u64::from(timeout_secs) * 500_000_000).max(MIN_REFRESH_NS);
                cur.last_seen_ns > s.last_seen_ns && now.saturating_sub(s.at_ns) >= refresh
            }
        };
        if send {
            self.sent.insert(id, Sent { at_ns: now, ..cur });
        }
        send
    }

    /// What to send now, given the table (`conns`: forward entries,
    /// `templates`), its timeouts and the time (`now`, the data plane's
    /// clock). Entries gone from the table are forgotten.
    pub fn select(
        &mut self,
        conns: &[Conn],
        templates: &[Template],
        timeouts: &Timeouts,
        now: u64,
    ) -> Vec<Outgoing> {
        let mut out = Vec::new();
        let mut live = std::collections::HashSet::new();
        for t in templates {
            let id = Id::Tmpl(
                tmpl_proto(t),
                t.caddr.into(),
                t.vaddr.into(),
                t.vport,
                t.pe_data.clone(),
            );
            live.insert(id.clone());
            let cur = Sent {
                state: if t.assured {
                    ConnState::Assured
                } else {
                    ConnState::None
                },
                dest: (t.daddr.into(), t.dport),
                last_seen_ns: t.last_seen_ns,
                at_ns: now,
            };
            if self.due(id, now, cur, t.timeout_secs) {
                out.push(Outgoing::Template(t.clone()));
            }
        }
        for c in conns.iter().filter(|c| sync_worthy(c)) {
            let id = Id::Conn(
                c.proto.number(),
                c.caddr.into(),
                c.cport,
                c.vaddr.into(),
                c.vport,
            );
            live.insert(id.clone());
            let timeout = c.state.timeout_secs(timeouts);
            let cur = Sent {
                state: c.state,
                dest: (c.daddr.into(), c.dport),
                last_seen_ns: c.last_seen_ns,
                at_ns: now,
            };
            if self.due(id, now, cur, timeout) {
                out.push(Outgoing::Conn(c.clone(), timeout));
            }
        }
        self.sent.retain(|id, _| live.contains(id));
        out
    }
}

/// Why a received entry was not installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// Not TCP, UDP or SCTP (AH, ESP and others).
    Protocol,
    /// An IPv6 connection or template (`STYPE_F_INET6`): decoded, but
    /// xvs's data plane does not forward IPv6 yet, so it has nowhere to
    /// go. (A mixed-family entry cannot occur: an entry carries one family
    /// for its three addresses, as in IPVS.)
    Ipv6,
    /// No such virtual service here.
    NoService,
    /// The service has no such real server here.
    NoDest,
    /// A state number outside the protocol's table.
    State,
    /// Skipped by the protocol's own checks (an unknown mandatory option,
    /// engine data without a name), as the kernel's receiver skips it.
    Invalid,
}

impl Skip {
    /// For the log.
    pub fn name(self) -> &'static str {
        match self {
            Skip::Protocol => "protocol not supported",
            Skip::Ipv6 => "IPv6 is not supported by xvs's data plane yet",
            Skip::NoService => "no such virtual service",
            Skip::NoDest => "no such real server",
            Skip::State => "bad state",
            Skip::Invalid => "invalid entry",
        }
    }
}

/// What the backup installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Install {
    /// A connection.
    Conn(Conn),
    /// A persistence template.
    Template(Template),
}

/// Resolves a received entry against this director's services and real
/// servers (which must match the master's, as in IPVS, where an entry
/// without its dest is of no use for forwarding), the way IPVS's
/// `ip_vs_proc_conn` does through `ip_vs_find_dest`: a nonzero mark finds
/// its fwmark service first, else the address service; a template of
/// protocol 0 is a fwmark template. IPv6 entries are not installed yet
/// ([`Skip::Ipv6`]).
pub fn resolve(e: &SyncConn, idx: &SyncIndex) -> Result<Install, Skip> {
    let (caddr, vaddr, daddr) = addrs_v4(e).ok_or(Skip::Ipv6)?;
    if e.is_template() && e.protocol == 0 {
        return resolve_fwmark_template(e, idx, caddr, vaddr, daddr);
    }
    let proto = Protocol::from_number(e.protocol).ok_or(Skip::Protocol)?;
    let (svc_id, persistent) = idx
        .fwmark_service(e.fwmark)
        .or_else(|| idx.service(e.protocol, vaddr, e.vport))
        .ok_or(Skip::NoService)?;
    let (dest_id, fwd) = find_dest(e, idx, svc_id, daddr).ok_or(Skip::NoDest)?;
    if e.is_template() {
        let pe_data = pe_data_of(e)?;
        return Ok(Install::Template(Template {
            proto,
            fwmark: 0,
            caddr,
            vaddr,
            vport: e.vport,
            daddr,
            dport: e.dport,
            svc_id,
            dest_id,
            last_seen_ns: 0,
            timeout_secs: e.timeout,
            conns: 0,
            fwd,
            assured: e.state == tpl_state::ASSURED,
            pe_data,
        }));
    }
    // The codec has checked the state against the protocol's table
    // (`sync::check_state`); checked again here, as a wrong number would
    // install a connection in another protocol's state.
    let state = state_from_wire(proto, e.state).ok_or(Skip::State)?;
    Ok(Install::Conn(Conn {
        proto,
        caddr,
        cport: e.cport,
        vaddr,
        vport: e.vport,
        daddr,
        dport: e.dport,
        state,
        // As this director's dest says (the master's names the same method
        // when the two are configured alike).
        fwd,
        svc_id,
        dest_id,
        last_seen_ns: 0,
        persistent,
    }))
}

/// A fwmark template, `<IPPROTO_IP, caddr, 0, htonl(mark), 0>`: its
/// service is the fwmark service of the mark (the entry's `fwmark`, else
/// the virtual address, which carries the mark too); only that service.
fn resolve_fwmark_template(
    e: &SyncConn,
    idx: &SyncIndex,
    caddr: Ipv4Addr,
    vaddr: Ipv4Addr,
    daddr: Ipv4Addr,
) -> Result<Install, Skip> {
    let mark = if e.fwmark != 0 {
        e.fwmark
    } else {
        u32::from(vaddr)
    };
    let (svc_id, _) = idx.fwmark_service(mark).ok_or(Skip::NoService)?;
    let (dest_id, fwd) = find_dest(e, idx, svc_id, daddr).ok_or(Skip::NoDest)?;
    let pe_data = pe_data_of(e)?;
    Ok(Install::Template(Template {
        // The data plane keys it by `fwmark`; the protocol is a placeholder.
        proto: Protocol::Tcp,
        fwmark: mark,
        caddr,
        vaddr: Ipv4Addr::from(mark),
        vport: 0,
        daddr,
        dport: 0,
        svc_id,
        dest_id,
        last_seen_ns: 0,
        timeout_secs: e.timeout,
        conns: 0,
        fwd,
        assured: e.state == tpl_state::ASSURED,
        pe_data,
    }))
}

/// A template's persistence-engine data: the Call-ID of the `sip`
/// engine, the only one there is; another engine's entry is skipped, as
/// the kernel's receiver skips one whose engine is not loaded.
fn pe_data_of(e: &SyncConn) -> Result<Option<Vec<u8>>, Skip> {
    match (&e.pe_name, &e.pe_data) {
        (None, _) => Ok(None),
        (Some(name), Some(data)) if name.as_slice() == b"sip" => Ok(Some(data.clone())),
        (Some(_), _) => Err(Skip::Invalid),
    }
}

/// `ip_vs_find_dest`'s dest lookup: with a mark and a method other than
/// NAT, port 0 first, then the received port; otherwise the received port,
/// then 0 (`port ^ dport`).
fn find_dest(
    e: &SyncConn,
    idx: &SyncIndex,
    svc_id: u32,
    daddr: Ipv4Addr,
) -> Option<(u32, FwdMethod)> {
    let masq = e.flags & conn_flags::FWD_MASK == conn_flags::MASQ;
    let port = if e.fwmark != 0 && !masq { 0 } else { e.dport };
    idx.dest(svc_id, daddr, port)
        .or_else(|| idx.dest(svc_id, daddr, port ^ e.dport))
}

/// The protocol a template goes on the wire with: IPPROTO_IP (0) for a
/// fwmark template, whose `proto` is a placeholder.
fn tmpl_proto(t: &Template) -> u8 {
    if t.fwmark != 0 {
        0
    } else {
        t.proto.number()
    }
}

/// The model state of a connection's wire state: TCP's numbers are the
/// model's, UDP has its one state (0), an SCTP state `n` (the kernel's
/// `enum ip_vs_sctp_states`) is `ConnState::SCTP_BASE + n`.
fn state_from_wire(proto: Protocol, state: u16) -> Option<ConnState> {
    let n = u8::try_from(state).ok()?;
    match proto {
        Protocol::Udp => (n == 0).then_some(ConnState::Udp),
        Protocol::Tcp => ConnState::from_u8(n).filter(|s| *s as u8 <= ConnState::SynAck as u8),
        Protocol::Sctp => {
            ConnState::from_u8(n.checked_add(ConnState::SCTP_BASE)?).filter(|s| s.is_sctp())
        }
    }
}

/// The wire state of a connection's model state, the inverse of
/// [`state_from_wire`].
fn state_to_wire(state: ConnState) -> u16 {
    match state {
        ConnState::Udp => 0,
        s if s.is_sctp() => u16::from(s as u8 - ConnState::SCTP_BASE),
        s => u16::from(s as u8),
    }
}

/// The client, virtual and real-server addresses of an IPv4 entry (`None`
/// for an IPv6 one; the codec never yields a mixed one).
fn addrs_v4(e: &SyncConn) -> Option<(Ipv4Addr, Ipv4Addr, Ipv4Addr)> {
    let v4 = |a: IpAddr| match a {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    };
    Some((v4(e.caddr)?, v4(e.vaddr)?, v4(e.daddr)?))
}

fn fwd_flags(f: FwdMethod) -> u32 {
    match f {
        FwdMethod::Masq => conn_flags::MASQ,
        FwdMethod::Tunnel => conn_flags::TUNNEL,
        FwdMethod::Route => conn_flags::DROUTE,
    }
}

impl Outgoing {
    /// The entry as IPVS's master would send it: its forwarding method in
    /// the flags, INACTIVE unless an established TCP or SCTP connection
    /// (IPVS binds every connection inactive and only the TCP and SCTP
    /// state machines make one active, so UDP ones always are), the state
    /// as the kernel numbers it per protocol, templates with port 0 and
    /// their state (NONE or ASSURED).
    ///
    /// The mark is the service's (`marks`: service id → mark, the fwmark
    /// services), as IPVS's `cp->fwmark`; a fwmark template goes as
    /// `<IPPROTO_IP, caddr, 0, mark, 0>` with dport 0.
    pub fn to_wire(&self, marks: &HashMap<u32, u32>) -> SyncConn {
        match self {
            Outgoing::Conn(c, timeout) => {
                let mut flags = fwd_flags(c.fwd);
                if !c.state.is_active() {
                    flags |= conn_flags::INACTIVE;
                }
                SyncConn {
                    protocol: c.proto.number(),
                    caddr: c.caddr.into(),
                    cport: c.cport,
                    vaddr: c.vaddr.into(),
                    vport: c.vport,
                    daddr: c.daddr.into(),
                    dport: c.dport,
                    flags,
                    state: state_to_wire(c.state),
                    fwmark: marks.get(&c.svc_id).copied().unwrap_or(0),
                    timeout: *timeout,
                    seq: None,
                    pe_name: None,
                    pe_data: None,
                }
            }
            Outgoing::Template(t) => {
                let fwm = t.fwmark != 0;
                SyncConn {
                    protocol: tmpl_proto(t),
                    caddr: t.caddr.into(),
                    cport: 0,
                    vaddr: if fwm {
                        Ipv4Addr::from(t.fwmark).into()
                    } else {
                        t.vaddr.into()
                    },
                    vport: if fwm { 0 } else { t.vport },
                    daddr: t.daddr.into(),
                    dport: if fwm { 0 } else { t.dport },
                    flags: conn_flags::TEMPLATE | fwd_flags(t.fwd),
                    state: if t.assured {
                        tpl_state::ASSURED
                    } else {
                        tpl_state::NONE
                    },
                    fwmark: t.fwmark,
                    timeout: t.timeout_secs,
                    seq: None,
                    // A --pe sip template's Call-ID (IPVS_OPT_PE_DATA and
                    // _NAME, protocol version 1 only).
                    pe_name: t.pe_data.as_ref().map(|_| b"sip".to_vec()),
                    pe_data: t.pe_data.clone(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(cport: u16, state: ConnState, last_seen_ns: u64) -> Conn {
        Conn {
            proto: Protocol::Tcp,
            caddr: Ipv4Addr::new(192, 0, 2, 2),
            cport,
            vaddr: Ipv4Addr::new(198, 51, 100, 10),
            vport: 80,
            daddr: Ipv4Addr::new(203, 0, 113, 11),
            dport: 80,
            state,
            fwd: FwdMethod::Masq,
            svc_id: 0,
            dest_id: 0,
            last_seen_ns,
            persistent: false,
        }
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn the_master_sends_new_changed_and_refreshed_entries_once() {
        let t = Timeouts::default();
        let mut m = Master::new();
        let syn = conn(1000, ConnState::SynRecv, 0);
        let est = conn(1001, ConnState::Established, 0);
        let sent = m.select(&[syn.clone(), est.clone()], &[], &t, 100 * S);
        assert_eq!(
            sent,
            vec![Outgoing::Conn(est.clone(), 900)],
            "no handshakes"
        );
        assert!(m
            .select(std::slice::from_ref(&est), &[], &t, 101 * S)
            .is_empty());
        let fin = conn(1001, ConnState::FinWait, 101 * S);
        assert_eq!(
            m.select(std::slice::from_ref(&fin), &[], &t, 102 * S),
            vec![Outgoing::Conn(fin.clone(), 120)]
        );
        // Used since, but within half the timeout (60 s): not yet.
        let used = conn(1001, ConnState::FinWait, 150 * S);
        assert!(m
            .select(std::slice::from_ref(&used), &[], &t, 150 * S)
            .is_empty());
        assert_eq!(
            m.select(std::slice::from_ref(&used), &[], &t, 163 * S)
                .len(),
            1
        );
        // Idle since: nothing to refresh.
        assert!(m
            .select(std::slice::from_ref(&used), &[], &t, 400 * S)
            .is_empty());
        // Gone, then back: new again.
        assert!(m.select(&[], &[], &t, 401 * S).is_empty());
        assert_eq!(m.select(&[used], &[], &t, 402 * S).len(), 1);
    }

    #[test]
    fn what_the_master_sends_decodes_to_what_the_backup_resolves() {
        let mut c = conn(1001, ConnState::Established, 0);
        c.fwd = FwdMethod::Route;
        let w = Outgoing::Conn(c.clone(), 900).to_wire(&HashMap::new());
        assert_eq!((w.flags, w.state, w.timeout), (conn_flags::DROUTE, 1, 900));
        let msgs = xvs_core::sync::encode(7, 1472, &[w]).unwrap();
        let back = xvs_core::sync::decode(&msgs[0]).unwrap();
        assert_eq!(back.header.syncid, 7);
        let e = &back.conns[0];
        assert_eq!(
            (e.caddr, e.cport, e.state, e.is_template()),
            (IpAddr::V4(c.caddr), 1001, 1, false)
        );
        let mut idx = SyncIndex::default();
        idx.add_service(6, c.vaddr, 80, 0, false);
        idx.add_dest(0, c.daddr, 80, 3, FwdMethod::Route);
        let Ok(Install::Conn(got)) = resolve(e, &idx) else {
            panic!()
        };
        assert_eq!(
            got,
            Conn {
                dest_id: 3,
                ..c.clone()
            }
        );
        let fin = Outgoing::Conn(conn(1, ConnState::FinWait, 0), 120).to_wire(&HashMap::new());
        assert_eq!(fin.flags, conn_flags::INACTIVE);
    }

    #[test]
    fn received_entries_resolve_or_say_why_not() {
        let idx = SyncIndex::default();
        let e = SyncConn {
            protocol: 6,
            caddr: Ipv4Addr::new(192, 0, 2, 2).into(),
            cport: 1000,
            vaddr: Ipv4Addr::new(198, 51, 100, 10).into(),
            vport: 80,
            daddr: Ipv4Addr::new(203, 0, 113, 11).into(),
            dport: 80,
            flags: 0,
            state: 1,
            fwmark: 0,
            timeout: 900,
            seq: None,
            pe_name: None,
            pe_data: None,
        };
        let (vaddr, daddr) = (
            Ipv4Addr::new(198, 51, 100, 10),
            Ipv4Addr::new(203, 0, 113, 11),
        );
        assert_eq!(resolve(&e, &idx), Err(Skip::NoService));
        assert_eq!(
            resolve(
                &SyncConn {
                    // AH: the kernel syncs it, xvs has no AH services.
                    protocol: 51,
                    state: 0,
                    ..e.clone()
                },
                &idx
            ),
            Err(Skip::Protocol)
        );
        // A mark without its fwmark service here: the address service.
        assert_eq!(
            resolve(
                &SyncConn {
                    fwmark: 3,
                    ..e.clone()
                },
                &idx
            ),
            Err(Skip::NoService)
        );
        let mut idx = SyncIndex::default();
        idx.add_service(6, vaddr, 80, 4, true);
        assert_eq!(resolve(&e, &idx), Err(Skip::NoDest));
        idx.add_dest(4, daddr, 80, 9, FwdMethod::Route);
        let Ok(Install::Conn(c)) = resolve(&e, &idx) else {
            panic!("{:?}", resolve(&e, &idx))
        };
        assert_eq!(
            (c.svc_id, c.dest_id, c.state, c.fwd, c.persistent),
            (4, 9, ConnState::Established, FwdMethod::Route, true)
        );
        assert_eq!(
            resolve(
                &SyncConn {
                    state: 11,
                    ..e.clone()
                },
                &idx
            ),
            Err(Skip::State)
        );
        let tmpl = SyncConn {
            flags: conn_flags::TEMPLATE,
            cport: 0,
            state: 1,
            timeout: 360,
            ..e.clone()
        };
        let Ok(Install::Template(t)) = resolve(&tmpl, &idx) else {
            panic!()
        };
        assert_eq!((t.dest_id, t.timeout_secs, t.assured), (9, 360, true));
    }

    fn sctp(cport: u16, state: ConnState) -> Conn {
        Conn {
            proto: Protocol::Sctp,
            vport: 5060,
            dport: 5060,
            ..conn(cport, state, 0)
        }
    }

    #[test]
    fn sctp_is_sent_established_or_closing_as_ipvs_does() {
        use ConnState::*;
        let t = Timeouts::default();
        let all = [
            SctpNone,
            SctpInit1,
            SctpInit,
            SctpCookieSent,
            SctpCookieReplied,
            SctpCookieWait,
            SctpCookie,
            SctpCookieEchoed,
            SctpEstablished,
            SctpShutdownSent,
            SctpShutdownReceived,
            SctpShutdownAckSent,
            SctpRejected,
            SctpClosed,
        ];
        let conns: Vec<Conn> = all
            .iter()
            .enumerate()
            .map(|(i, s)| sctp(2000 + i as u16, *s))
            .collect();
        let sent: Vec<(ConnState, u32)> = Master::new()
            .select(&conns, &[], &t, 100 * S)
            .into_iter()
            .map(|o| match o {
                Outgoing::Conn(c, timeout) => (c.state, timeout),
                Outgoing::Template(_) => panic!("no templates here"),
            })
            .collect();
        // ip_vs_sync_conn_needed's SCTP mask, each with its own timeout.
        assert_eq!(
            sent,
            vec![
                (SctpEstablished, 900),
                (SctpShutdownSent, 61),
                (SctpShutdownReceived, 61),
                (SctpShutdownAckSent, 61),
                (SctpClosed, 61),
            ]
        );
    }

    #[test]
    fn sctp_states_go_on_the_wire_as_the_kernel_numbers_them() {
        use xvs_core::sync::sctp_state;
        let est = Outgoing::Conn(sctp(1, ConnState::SctpEstablished), 900).to_wire(&HashMap::new());
        assert_eq!(
            (est.protocol, est.state, est.flags),
            (132, sctp_state::ESTABLISHED, conn_flags::MASQ)
        );
        let closed = Outgoing::Conn(sctp(1, ConnState::SctpClosed), 61).to_wire(&HashMap::new());
        assert_eq!(
            (closed.state, closed.flags),
            (sctp_state::CLOSED, conn_flags::MASQ | conn_flags::INACTIVE)
        );
        let sa =
            Outgoing::Conn(sctp(1, ConnState::SctpShutdownAckSent), 61).to_wire(&HashMap::new());
        assert_eq!(sa.state, sctp_state::SHUTDOWN_ACK_SENT);
        // TCP and UDP numbering is unchanged.
        let udp = Conn {
            proto: Protocol::Udp,
            ..conn(1, ConnState::Udp, 0)
        };
        let w = Outgoing::Conn(udp, 300).to_wire(&HashMap::new());
        assert_eq!(
            (w.state, w.flags),
            (0, conn_flags::MASQ | conn_flags::INACTIVE)
        );
        let w = Outgoing::Conn(conn(1, ConnState::TimeWait, 0), 120).to_wire(&HashMap::new());
        assert_eq!(w.state, 5);
    }

    #[test]
    fn sctp_round_trips_through_the_codec_and_resolves() {
        let (vaddr, daddr) = (
            Ipv4Addr::new(198, 51, 100, 10),
            Ipv4Addr::new(203, 0, 113, 11),
        );
        let mut idx = SyncIndex::default();
        idx.add_service(132, vaddr, 5060, 2, false);
        idx.add_dest(2, daddr, 5060, 5, FwdMethod::Masq);
        let c = Conn {
            svc_id: 2,
            dest_id: 5,
            ..sctp(40000, ConnState::SctpShutdownReceived)
        };
        let w = Outgoing::Conn(c.clone(), 61).to_wire(&HashMap::new());
        let msgs = xvs_core::sync::encode(0, 1472, &[w]).unwrap();
        let back = xvs_core::sync::decode(&msgs[0]).unwrap();
        assert_eq!(
            back.conns[0].state,
            xvs_core::sync::sctp_state::SHUTDOWN_RECEIVED
        );
        assert_eq!(resolve(&back.conns[0], &idx), Ok(Install::Conn(c)));
        // A TCP service on the same address and port is another service.
        let mut tcp_only = SyncIndex::default();
        tcp_only.add_service(6, vaddr, 5060, 2, false);
        tcp_only.add_dest(2, daddr, 5060, 5, FwdMethod::Masq);
        assert_eq!(resolve(&back.conns[0], &tcp_only), Err(Skip::NoService));
    }

    #[test]
    fn received_sctp_states_map_to_the_model() {
        use xvs_core::sync::sctp_state;
        let e = SyncConn {
            protocol: 132,
            caddr: Ipv4Addr::new(192, 0, 2, 2).into(),
            cport: 1000,
            vaddr: Ipv4Addr::new(198, 51, 100, 10).into(),
            vport: 5060,
            daddr: Ipv4Addr::new(203, 0, 113, 11).into(),
            dport: 5060,
            flags: conn_flags::INACTIVE,
            state: sctp_state::NONE,
            fwmark: 0,
            timeout: 2,
            seq: None,
            pe_name: None,
            pe_data: None,
        };
        let mut idx = SyncIndex::default();
        idx.add_service(132, Ipv4Addr::new(198, 51, 100, 10), 5060, 0, true);
        idx.add_dest(0, Ipv4Addr::new(203, 0, 113, 11), 5060, 1, FwdMethod::Route);
        for n in 0..sctp_state::LAST {
            let Ok(Install::Conn(c)) = resolve(
                &SyncConn {
                    state: n,
                    ..e.clone()
                },
                &idx,
            ) else {
                panic!("state {n}")
            };
            assert_eq!(c.state as u16, u16::from(ConnState::SCTP_BASE) + n);
            assert!(c.state.is_sctp());
            assert!(c.persistent);
        }
        assert_eq!(
            resolve(
                &SyncConn {
                    state: sctp_state::LAST,
                    ..e.clone()
                },
                &idx
            ),
            Err(Skip::State)
        );
        // An SCTP template: the template states, not SCTP's.
        let tmpl = SyncConn {
            flags: conn_flags::TEMPLATE,
            cport: 0,
            state: 1,
            timeout: 360,
            ..e
        };
        let Ok(Install::Template(t)) = resolve(&tmpl, &idx) else {
            panic!()
        };
        assert_eq!((t.proto, t.assured), (Protocol::Sctp, true));
    }

    fn fwm_template(mark: u32) -> Template {
        Template {
            proto: Protocol::Tcp,
            fwmark: mark,
            caddr: Ipv4Addr::new(10, 0, 0, 1),
            vaddr: Ipv4Addr::from(mark),
            vport: 0,
            daddr: Ipv4Addr::new(10, 1, 1, 2),
            dport: 0,
            svc_id: 5,
            dest_id: 8,
            last_seen_ns: 0,
            timeout_secs: 360,
            conns: 0,
            fwd: FwdMethod::Route,
            assured: true,
            pe_data: None,
        }
    }

    /// Two calls from one client network: two templates, both sent (the
    /// master once told them apart by key only and sent just one).
    #[test]
    fn the_master_sends_every_calls_template() {
        let call = |id: &[u8]| Template {
            pe_data: Some(id.to_vec()),
            ..fwm_template(7)
        };
        let sent = Master::new().select(
            &[],
            &[call(b"call-1@x"), call(b"call-2@x")],
            &Timeouts::default(),
            100 * S,
        );
        let ids: Vec<Option<Vec<u8>>> = sent
            .into_iter()
            .map(|o| match o {
                Outgoing::Template(t) => t.pe_data,
                Outgoing::Conn(..) => panic!("no connections here"),
            })
            .collect();
        assert_eq!(
            ids,
            [Some(b"call-1@x".to_vec()), Some(b"call-2@x".to_vec())]
        );
    }

    /// A --pe sip template goes with its Call-ID and engine name (sync
    /// v1's options) and comes back with them; another engine's is
    /// skipped.
    #[test]
    fn a_sip_template_carries_its_call_id() {
        let mut idx = SyncIndex::default();
        idx.add_fwmark_service(7, 2, true);
        idx.add_dest(2, Ipv4Addr::new(10, 1, 1, 2), 0, 20, FwdMethod::Route);
        let mut t = fwm_template(7);
        t.pe_data = Some(b"a84b4c76e66710@pc33.atlanta.example".to_vec());
        let w = Outgoing::Template(t.clone()).to_wire(&HashMap::new());
        assert_eq!(w.pe_name.as_deref(), Some(&b"sip"[..]));
        let Ok(Install::Template(got)) = resolve(&w, &idx) else {
            panic!("{:?}", resolve(&w, &idx))
        };
        assert_eq!(got.pe_data, t.pe_data);
        let other = SyncConn {
            pe_name: Some(b"xyz".to_vec()),
            ..w
        };
        assert_eq!(resolve(&other, &idx), Err(Skip::Invalid));
    }

    #[test]
    fn the_master_sends_the_mark_of_fwmark_services() {
        let marks = HashMap::from([(5, 7)]);
        // A fwmark template goes as xvs_core's fixture: <IPPROTO_IP,
        // caddr, 0, 0.0.0.7, 0> with dport 0 and fwmark 7.
        let w = Outgoing::Template(fwm_template(7)).to_wire(&marks);
        assert_eq!(
            (w.protocol, w.vaddr, w.vport, w.dport, w.fwmark, w.cport),
            (0, IpAddr::V4(Ipv4Addr::new(0, 0, 0, 7)), 0, 0, 7, 0)
        );
        assert_eq!(w.flags, conn_flags::TEMPLATE | conn_flags::DROUTE);
        let back =
            xvs_core::sync::decode(&xvs_core::sync::encode(1, 1472, &[w]).unwrap()[0]).unwrap();
        assert_eq!(back.conns[0].fwmark, 7);
        // A connection of the fwmark service carries the mark; one of an
        // address service carries 0.
        let mut c = conn(1000, ConnState::Established, 0);
        c.svc_id = 5;
        assert_eq!(Outgoing::Conn(c.clone(), 900).to_wire(&marks).fwmark, 7);
        c.svc_id = 6;
        assert_eq!(Outgoing::Conn(c, 900).to_wire(&marks).fwmark, 0);
        // The master tells a fwmark template from a TCP one of a port-0
        // service whose address happens to be the mark.
        let mut tcp = fwm_template(7);
        tcp.fwmark = 0;
        let t = Timeouts::default();
        let sent = Master::new().select(&[], &[fwm_template(7), tcp], &t, 100 * S);
        assert_eq!(sent.len(), 2);
    }

    fn fwm_entry(fwmark: u32, flags: u32, dport: u16) -> SyncConn {
        SyncConn {
            protocol: 17,
            caddr: Ipv4Addr::new(192, 0, 2, 2).into(),
            cport: 5353,
            vaddr: Ipv4Addr::new(198, 51, 100, 10).into(),
            vport: 53,
            daddr: Ipv4Addr::new(203, 0, 113, 11).into(),
            dport,
            flags,
            state: 0,
            fwmark,
            timeout: 300,
            seq: None,
            pe_name: None,
            pe_data: None,
        }
    }

    #[test]
    fn the_backup_finds_the_fwmark_service_before_the_address_service() {
        let (vaddr, daddr) = (
            Ipv4Addr::new(198, 51, 100, 10),
            Ipv4Addr::new(203, 0, 113, 11),
        );
        let mut idx = SyncIndex::default();
        idx.add_service(17, vaddr, 53, 1, false);
        idx.add_dest(1, daddr, 53, 10, FwdMethod::Masq);
        idx.add_fwmark_service(7, 2, true);
        idx.add_dest(2, daddr, 0, 20, FwdMethod::Route);
        idx.add_dest(2, daddr, 53, 21, FwdMethod::Masq);
        let got = |e: &SyncConn| match resolve(e, &idx) {
            Ok(Install::Conn(c)) => (c.svc_id, c.dest_id, c.persistent),
            other => panic!("{other:?}"),
        };
        // Mark 7: the fwmark service; DR tries port 0 first, NAT the
        // received port first.
        assert_eq!(got(&fwm_entry(7, conn_flags::DROUTE, 53)), (2, 20, true));
        assert_eq!(got(&fwm_entry(7, conn_flags::MASQ, 53)), (2, 21, true));
        // Each falls back to the other port.
        assert_eq!(
            got(&fwm_entry(7, conn_flags::MASQ, 5300)),
            (2, 20, true),
            "NAT: 5300, then 0"
        );
        // No mark, or a mark without a service here: the address service.
        assert_eq!(got(&fwm_entry(0, conn_flags::MASQ, 53)), (1, 10, false));
        assert_eq!(got(&fwm_entry(9, conn_flags::MASQ, 53)), (1, 10, false));
        // A DR dest at port 0 only: found through the second lookup.
        let mut dr = SyncIndex::default();
        dr.add_fwmark_service(7, 2, true);
        dr.add_dest(2, daddr, 53, 30, FwdMethod::Route);
        let Ok(Install::Conn(c)) = resolve(&fwm_entry(7, conn_flags::DROUTE, 53), &dr) else {
            panic!()
        };
        assert_eq!(c.dest_id, 30, "DR: 0, then 53");
    }

    #[test]
    fn a_protocol_0_template_installs_as_a_fwmark_template() {
        let mut idx = SyncIndex::default();
        idx.add_fwmark_service(7, 2, true);
        idx.add_dest(2, Ipv4Addr::new(10, 1, 1, 2), 0, 20, FwdMethod::Route);
        let w = Outgoing::Template(fwm_template(7)).to_wire(&HashMap::new());
        let Ok(Install::Template(t)) = resolve(&w, &idx) else {
            panic!("{:?}", resolve(&w, &idx))
        };
        assert_eq!(
            t,
            Template {
                svc_id: 2,
                dest_id: 20,
                ..fwm_template(7)
            }
        );
        // Without the fwmark service: skipped, never an address service.
        let mut other = SyncIndex::default();
        other.add_service(6, Ipv4Addr::new(0, 0, 0, 7), 0, 3, true);
        assert_eq!(resolve(&w, &other), Err(Skip::NoService));
    }

    #[test]
    fn an_ipv6_entry_decodes_and_is_skipped_as_ipv6() {
        use std::net::Ipv6Addr;
        let a = |n: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n));
        let e = SyncConn {
            protocol: 6,
            caddr: a(2),
            cport: 40000,
            vaddr: a(1),
            vport: 80,
            daddr: a(0x10),
            dport: 80,
            flags: conn_flags::DROUTE,
            state: 1,
            fwmark: 0,
            timeout: 900,
            seq: None,
            pe_name: None,
            pe_data: None,
        };
        let wire = xvs_core::sync::encode(0, 1472, std::slice::from_ref(&e)).unwrap();
        assert_eq!(wire[0].len(), 8 + 72);
        let back = xvs_core::sync::decode(&wire[0]).unwrap();
        assert_eq!(back.conns, vec![e.clone()]);
        // Even with an IPv4 service of the same port, nothing to install.
        let mut idx = SyncIndex::default();
        idx.add_service(6, Ipv4Addr::new(198, 51, 100, 10), 80, 4, false);
        assert_eq!(resolve(&back.conns[0], &idx), Err(Skip::Ipv6));
        let tmpl = SyncConn {
            flags: conn_flags::TEMPLATE | conn_flags::DROUTE,
            protocol: 0,
            cport: 0,
            vport: 0,
            fwmark: 7,
            ..e
        };
        assert_eq!(resolve(&tmpl, &idx), Err(Skip::Ipv6));
        assert_eq!(
            Skip::Ipv6.name(),
            "IPv6 is not supported by xvs's data plane yet"
        );
    }
}
