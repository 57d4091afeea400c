//! The sync daemons' sockets and their once-a-second work: a master reads
//! the data plane's table and multicasts what `sync::Master` selects; a
//! backup drains its socket and installs what `sync::resolve` makes of
//! each entry. Sockets as IPVS makes them (`make_send_sock`,
//! `make_receive_sock`): the master's bound to the interface and its
//! address, multicast loop off, TTL `--mcast-ttl`; the backup's bound to
//! the group and port on the interface, joined to the group there.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol as SockProto, Socket, Type};
use xvs_core::model::{SyncDaemon, SyncState, Timeouts};
use xvs_core::sync::{accepts_syncid, decode, Encoder, SkipReason};
use xvs_dataplane::Dataplane;

use crate::plane::PlaneError;
use crate::sync::{resolve, Install, Master, Skip};

/// Receive buffer of a backup's socket: a second of a busy master's
/// messages (it is drained once a second).
const BACKUP_RCVBUF: usize = 8 << 20;

/// The running sync daemons of one xvsd (at most a master and a backup).
#[derive(Default)]
pub struct SyncDaemons {
    master: Option<MasterRun>,
    backup: Option<BackupRun>,
}

struct MasterRun {
    cfg: SyncDaemon,
    sock: UdpSocket,
    logic: Master,
    sent: u64,
    /// Datagrams the socket refused (the entries are sent again).
    failed: u64,
    /// The last send error, logged when it first happens.
    last_err: Option<String>,
}

struct BackupRun {
    cfg: SyncDaemon,
    sock: UdpSocket,
    buf: Vec<u8>,
    installed: u64,
    /// Entries not installed, by reason (the codec's skips included).
    skipped: BTreeMap<Skip, u64>,
    /// Datagrams that did not decode.
    dropped: u64,
}

fn ifindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::ENODEV))?;
    // SAFETY: a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::from_raw_os_error(libc::ENODEV)),
        i => Ok(i),
    }
}

/// The interface's MTU (`SIOCGIFMTU`).
fn mtu(name: &str) -> io::Result<u32> {
    ifindex(name)?;
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))?;
    text.trim()
        .parse()
        .map_err(|_| io::Error::other(format!("{name}: unreadable MTU {text:?}")))
}

/// The interface's first IPv4 address (`inet_select_addr`).
fn if_addr(name: &str) -> io::Result<Ipv4Addr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = None;
    let mut p = head;
    // SAFETY: walking the list getifaddrs returned, reading only entries
    // whose pointers are non-null; sockaddr_in for AF_INET entries.
    unsafe {
        while !p.is_null() {
            let a = &*p;
            if !a.ifa_addr.is_null()
                && i32::from((*a.ifa_addr).sa_family) == libc::AF_INET
                && std::ffi::CStr::from_ptr(a.ifa_name).to_bytes() == name.as_bytes()
            {
                let sin = &*(a.ifa_addr as *const libc::sockaddr_in);
                found = Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
                break;
            }
            p = a.ifa_next;
        }
        libc::freeifaddrs(head);
    }
    found.ok_or_else(|| {
        io::Error::other(format!(
            "{name} has no IPv4 address (the kernel: \"You probably need to specify IP \
             address on multicast interface.\")"
        ))
    })
}

fn master_socket(d: &SyncDaemon) -> io::Result<UdpSocket> {
    let addr = if_addr(&d.mcast_ifn)?;
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(SockProto::UDP))?;
    s.bind_device(Some(d.mcast_ifn.as_bytes()))?;
    s.set_multicast_if_v4(&addr)?;
    s.set_multicast_loop_v4(false)?;
    s.set_multicast_ttl_v4(u32::from(d.mcast_ttl))?;
    s.bind(&SocketAddrV4::new(addr, 0).into())?;
    s.connect(&SocketAddrV4::new(d.mcast_group, d.mcast_port).into())?;
    s.set_write_timeout(Some(std::time::Duration::from_millis(200)))?;
    Ok(s.into())
}

fn backup_socket(d: &SyncDaemon) -> io::Result<UdpSocket> {
    let idx = ifindex(&d.mcast_ifn)?;
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(SockProto::UDP))?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(d.mcast_ifn.as_bytes()))?;
    let _ = s.set_recv_buffer_size(BACKUP_RCVBUF);
    s.bind(&SocketAddrV4::new(d.mcast_group, d.mcast_port).into())?;
    s.join_multicast_v4_n(&d.mcast_group, &InterfaceIndexOrAddress::Index(idx))?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

impl SyncDaemons {
    /// Starts the daemon `d` asks for, with the kernel's defaults filled
    /// in (returned). An interface that does not exist is "No such
    /// device", as the kernel's ENODEV.
    pub fn start(&mut self, d: &SyncDaemon) -> Result<SyncDaemon, PlaneError> {
        let mtu = mtu(&d.mcast_ifn)?;
        let d = d.with_defaults(mtu);
        match d.state {
            SyncState::Master => {
                let sock = master_socket(&d)?;
                log::info!(
                    "sync master on {} (syncid {}, {}:{}, maxlen {})",
                    d.mcast_ifn,
                    d.syncid,
                    d.mcast_group,
                    d.mcast_port,
                    d.sync_maxlen
                );
                self.master = Some(MasterRun {
                    cfg: d.clone(),
                    sock,
                    logic: Master::new(),
                    sent: 0,
                    failed: 0,
                    last_err: None,
                });
            }
            SyncState::Backup => {
                let sock = backup_socket(&d)?;
                log::info!(
                    "sync backup on {} (syncid {}, {}:{})",
                    d.mcast_ifn,
                    d.syncid,
                    d.mcast_group,
                    d.mcast_port
                );
                self.backup = Some(BackupRun {
                    cfg: d.clone(),
                    sock,
                    buf: vec![0; usize::from(d.sync_maxlen)],
                    installed: 0,
                    skipped: BTreeMap::new(),
                    dropped: 0,
                });
            }
        }
        Ok(d)
    }

    /// Stops the daemon of `state` (nothing when none runs).
    pub fn stop(&mut self, state: SyncState) {
        match state {
            SyncState::Master => {
                if let Some(m) = self.master.take() {
                    log::info!(
                        "sync master stopped ({} entries sent, {} datagrams refused by the socket)",
                        m.sent,
                        m.failed
                    );
                }
            }
            SyncState::Backup => {
                if let Some(b) = self.backup.take() {
                    log::info!(
                        "sync backup stopped ({} entries installed, skipped {:?}, {} datagrams \
                         undecodable)",
                        b.installed,
                        b.skipped,
                        b.dropped
                    );
                }
            }
        }
    }

    /// The once-a-second work of both daemons.
    pub fn tick(&mut self, dp: &Dataplane, timeouts: &Timeouts) {
        if let Some(b) = &mut self.backup {
            b.drain(dp);
        }
        if let Some(m) = &mut self.master {
            match m.send(dp, timeouts) {
                Ok(()) => m.last_err = None,
                Err(e) => {
                    if m.last_err.as_ref() != Some(&e) {
                        log::warn!("sync master: {e} (entries are sent again once it works)");
                    }
                    m.last_err = Some(e);
                }
            }
        }
    }
}

impl MasterRun {
    fn send(&mut self, dp: &Dataplane, timeouts: &Timeouts) -> Result<(), String> {
        let conns = dp.conns().map_err(|e| e.to_string())?;
        let templates = dp.templates().map_err(|e| e.to_string())?;
        // The mark each fwmark service's connections go with (IPVS:
        // cp->fwmark); read before `select`, which counts what it picks as
        // sent.
        let marks = dp.sync_index().map_err(|e| e.to_string())?.service_marks();
        let out = self
            .logic
            .select(&conns, &templates, timeouts, xvs_dataplane::monotonic_ns());
        if out.is_empty() {
            return Ok(());
        }
        let mut enc = Encoder::new(self.cfg.syncid, usize::from(self.cfg.sync_maxlen));
        let mut datagrams = Vec::new();
        for o in &out {
            match enc.push(&o.to_wire(&marks)) {
                Ok(Some(d)) => datagrams.push(d),
                Ok(None) => {}
                Err(e) => log::warn!("sync master: {e}"),
            }
        }
        datagrams.extend(enc.finish());
        // The socket blocks (briefly) while its buffer is full, as the
        // kernel's sender waits; what it refuses is forgotten by the
        // selection, so every entry goes out again on the next tick.
        for d in &datagrams {
            if let Err(e) = self.sock.send(d) {
                self.failed += 1;
                self.logic = Master::new();
                return Err(format!("sending to {}: {e}", self.cfg.mcast_group));
            }
        }
        self.sent += out.len() as u64;
        Ok(())
    }
}

impl BackupRun {
    fn drain(&mut self, dp: &Dataplane) {
        let mut index = None;
        loop {
            let n = match self.sock.recv(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::warn!("sync backup: receiving: {e}");
                    break;
                }
            };
            let Some(datagram) = self.buf.get(..n) else {
                continue;
            };
            let msg = match decode(datagram) {
                Ok(m) => m,
                Err(e) => {
                    self.dropped += 1;
                    log::debug!("sync backup: message dropped: {e}");
                    continue;
                }
            };
            if !accepts_syncid(self.cfg.syncid, msg.header.syncid) {
                continue;
            }
            for (_, reason) in &msg.skipped {
                let skip = match reason {
                    SkipReason::State { .. } => Skip::State,
                    SkipReason::Protocol(_) => Skip::Protocol,
                    _ => Skip::Invalid,
                };
                *self.skipped.entry(skip).or_default() += 1;
            }
            if index.is_none() {
                match dp.sync_index() {
                    Ok(i) => index = Some(i),
                    Err(e) => {
                        log::warn!("sync backup: reading the table: {e}");
                        return;
                    }
                }
            }
            let Some(idx) = &index else { return };
            for e in &msg.conns {
                let r = match resolve(e, idx) {
                    Ok(Install::Conn(c)) => dp.install_conn(&c).map(|_| ()),
                    Ok(Install::Template(t)) => dp.install_template(&t).map(|_| ()),
                    Err(skip) => {
                        let n = self.skipped.entry(skip).or_default();
                        // Each reason is logged at its first entry (IPv6
                        // ones too: the master has IPv6 connections this
                        // director cannot install yet), then counted.
                        if *n == 0 {
                            log::warn!(
                                "sync backup: {} {}:{} -> {}:{}: {} (logged once)",
                                if e.is_template() {
                                    "template"
                                } else {
                                    "connection"
                                },
                                e.caddr,
                                e.cport,
                                e.vaddr,
                                e.vport,
                                skip.name()
                            );
                        }
                        *n += 1;
                        continue;
                    }
                };
                match r {
                    Ok(()) => self.installed += 1,
                    Err(err) => log::warn!("sync backup: installing: {err}"),
                }
            }
        }
    }
}
