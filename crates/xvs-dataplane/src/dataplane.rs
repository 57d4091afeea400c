//! The loaded data plane: the object, its maps and what this instance
//! keeps beside them. Its operations live with their subject: loading in
//! `open`, attaching in `attach`, services, dests, next hops,
//! connections, expiry, statistics and counters in modules of their own.

use std::collections::HashMap;
use std::mem::size_of;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use libbpf_rs::{MapHandle, Object, TcHook};
use xvs_core::sched::cursor::{CursorDest, Memo};

use crate::abi::{from_bytes, xvs_conn, xvs_conn_key, Pod};
use crate::dest_conns::DestConns;
use crate::error::Error;
use crate::features;
use crate::local_out::LocalOut;
use crate::mapio;
use crate::maps::Maps;
use crate::mode::AttachMode;
use crate::nexthop::Via;
use crate::objects::Expiry;
use crate::scan_clock::ScanClock;

/// One interface this instance attached the program to.
#[derive(Debug, Clone)]
pub(crate) struct Attachment {
    pub(crate) ifname: String,
    pub(crate) ifindex: i32,
    /// `XdpFlags` bits of the mode it was attached in (XDP).
    pub(crate) flags: u32,
    /// The clsact hook (tc), and whether this instance created the qdisc.
    pub(crate) tc: Option<(TcHook, bool)>,
    /// `xvs_local_out` on the clsact egress hook, and whether this
    /// instance created the qdisc for it.
    pub(crate) egress: Option<(TcHook, bool)>,
}

/// The loaded data plane: program, maps, attachments.
pub struct Dataplane {
    pub(crate) obj: Object,
    pub(crate) maps: Maps,
    /// `xvs_expiry_scan` attached to `CONN_MAP` (None: the kernel could
    /// not load or attach it; expiry then reads the table itself).
    pub(crate) expiry: Option<Expiry>,
    /// `xvs_local_out`, for the egress hooks (None: the kernel could not
    /// load it; local NAT dests then cannot answer).
    pub(crate) local_out: Option<LocalOut>,
    /// The optional kernel features in use.
    pub(crate) features: features::Features,
    /// DR/TUN dests whose neighbour was being asked for when they were
    /// written (see [`Dataplane::await_nexthops`]).
    pub(crate) nh_pending: Mutex<Vec<(u32, Ipv4Addr, Via)>>,
    /// rr/wrr services: the dest list of the last change and the kernel
    /// cursor's memo then ([`Dataplane::move_cursor`]).
    pub(crate) cursors: Mutex<HashMap<u32, CursorState>>,
    pub(crate) scan_clock: ScanClock,
    pub(crate) dest_conns: DestConns,
    pub(crate) max_services: u32,
    pub(crate) max_dests: u32,
    pub(crate) ring_capacity: u32,
    pub(crate) mode: AttachMode,
    pub(crate) attached: Vec<Attachment>,
}

impl std::fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataplane")
            .field("max_services", &self.max_services)
            .field("max_dests", &self.max_dests)
            .field("ring_capacity", &self.ring_capacity)
            .field("mode", &self.mode)
            .field(
                "attached",
                &self.attached.iter().map(|a| &a.ifname).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A conn entry read from the table.
pub(crate) type RawConn = (xvs_conn_key, xvs_conn);

/// An rr/wrr service's dest list at its last change and the cursor memo.
pub(crate) type CursorState = (Vec<CursorDest>, Memo);

impl Dataplane {
    /// The program of this name in the loaded object.
    pub(crate) fn prog(&self, name: &str) -> Result<libbpf_rs::Program<'_>, Error> {
        self.obj
            .progs()
            .find(|p| p.name() == name)
            .ok_or_else(|| Error::Abi(format!("program {name} missing")))
    }

    /// The optional kernel features this instance uses (probed at
    /// [`Dataplane::open`]; see [`features`]).
    pub fn features(&self) -> &features::Features {
        &self.features
    }

    /// The attach mode this instance was opened with.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// Refuses a service id past the table.
    pub(crate) fn check_svc_id(&self, id: u32) -> Result<(), Error> {
        check_id("service", id, self.max_services)
    }

    /// Refuses a dest id past the table.
    pub(crate) fn check_dest_id(&self, id: u32) -> Result<(), Error> {
        check_id("dest", id, self.max_dests)
    }

    /// Every entry of a hash map, read in batches (a consistent-enough
    /// view of a table the program keeps changing).
    pub(crate) fn read_all<K: Pod, V: Pod>(&self, map: &MapHandle) -> Result<Vec<(K, V)>, Error> {
        let mut out = Vec::new();
        mapio::read_each(map, size_of::<K>(), size_of::<V>(), |k, v| {
            out.push((from_bytes(k), from_bytes(v)))
        })?;
        Ok(out)
    }
}

/// Refuses an id of the `what` table past its `max` slots.
fn check_id(what: &'static str, id: u32, max: u32) -> Result<(), Error> {
    if id >= max {
        return Err(Error::IdOutOfRange { what, id, max });
    }
    Ok(())
}
