//! The virtual server table as xvsd owns it: validation of every change,
//! id allocation, scheduler rings and tables, and pushing the result to a
//! [`Backend`].
//!
//! A request is first applied to a copy of the model; only when every part of
//! it is valid is the copy synced to the backend and kept. So a refused
//! request, or a refused batch, changes nothing.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use xvs_core::api::{ApiError, ErrorKind, Request};
use xvs_core::model::{
    Dest, FwdMethod, Service, ServiceKey, SyncDaemon, Timeouts, TunCsum, TunType,
};
use xvs_core::sched;
use xvs_core::sched::reference::next_last_weight;
use xvs_dataplane::{SchedDest, SvcSched, RING_LEN_MAX, SVC_DESTS_MAX};

/// What the table needs from the data plane. Implemented by
/// `xvs_dataplane::Dataplane`, and by a recording fake in tests.
pub trait Backend {
    /// Writes a service and what its scheduler picks from (ring or table,
    /// and the dest list in kernel order).
    fn upsert_service(
        &mut self,
        svc_id: u32,
        svc: &Service,
        sched: &SvcSched,
    ) -> Result<(), String>;
    /// Removes a service from the lookup map.
    fn remove_service(&mut self, svc_id: u32, key: &ServiceKey) -> Result<(), String>;
    /// Writes a destination.
    fn upsert_dest(&mut self, dest_id: u32, svc_id: u32, dest: &Dest) -> Result<(), String>;
    /// Removes a destination and ends its connections.
    fn remove_dest(&mut self, dest_id: u32) -> Result<(), String>;
    /// Takes a destination out of service into the trash: no new
    /// connection, packets of its connections dropped, connections,
    /// counts and counters kept (it may come back, see [`Trashed`]).
    fn trash_dest(&mut self, dest_id: u32) -> Result<(), String>;
    /// Zeroes the counters of a service.
    fn zero_svc(&mut self, svc_id: u32) -> Result<(), String>;
    /// Zeroes the counters of a destination.
    fn zero_dest(&mut self, dest_id: u32) -> Result<(), String>;
}

/// A dest together with the data-plane slot it occupies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestSlot {
    /// Data-plane dest id.
    pub id: u32,
    /// Configuration.
    pub dest: Dest,
    /// The kernel's `last_weight`: the weight it was added with, then the
    /// latest non-zero weight (mh keeps a quiesced dest's table slots).
    /// Absent in state files of older versions: the weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_weight: Option<u32>,
}

/// A dest deleted from its service (`-d`, or with its service by `-D`,
/// `-C`) and kept as IPVS keeps it in its dest trash: while connections
/// still use it, and 120 s after the last one ended. Adding the same real
/// server to a service of the same protocol, address and port brings it
/// back with its connections and counts (and its counters, when it is the
/// same service object): `ip_vs_trash_get_dest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trashed {
    /// The dest as it was, with its slot.
    pub slot: DestSlot,
    /// The service it belonged to.
    pub svc: ServiceKey,
    /// That service object's [`SvcSlot::obj`].
    pub svc_obj: u64,
    /// Seconds (monotonic) since when it has had no connections; `None`
    /// while it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_since: Option<u64>,
}

/// How long an unused dest stays in the trash (`IP_VS_DEST_TRASH_PERIOD`).
pub const TRASH_PERIOD_SECS: u64 = 120;

/// A service together with its data-plane slot and dests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SvcSlot {
    /// Data-plane service id.
    pub id: u32,
    /// Which service object this is (ids are reused; this is not): a dest
    /// back from the trash keeps its counters only in the same object.
    #[serde(default)]
    pub obj: u64,
    /// Configuration.
    pub service: Service,
    /// Dests in the kernel's list order: a new dest goes to the front
    /// (`list_add_rcu` on `svc->destinations`), which is the order rr and
    /// wrr walk.
    pub dests: Vec<DestSlot>,
}

/// Hands out small integer ids and takes them back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IdPool {
    next: u32,
    free: Vec<u32>,
}

impl IdPool {
    fn alloc(&mut self, limit: u32) -> Option<u32> {
        if let Some(id) = self.free.pop() {
            return Some(id);
        }
        if self.next >= limit {
            return None;
        }
        self.next += 1;
        Some(self.next - 1)
    }

    fn release(&mut self, id: u32) {
        self.free.push(id);
    }
}

/// Sizes the data plane was created with; ids must stay below them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Service slots.
    pub max_services: u32,
    /// Dest slots.
    pub max_dests: u32,
}

/// Schedulers whose data plane scans the service's dest list (at most
/// `SVC_DESTS_MAX` dests).
const SCANNING_SCHEDULERS: &[&str] = &[
    "lc", "wlc", "sed", "nq", "fo", "ovf", "twos", "lblc", "lblcr",
];

fn dest_limit(s: &Service, n: usize) -> Result<(), ApiError> {
    if n > SVC_DESTS_MAX && SCANNING_SCHEDULERS.contains(&s.scheduler.as_str()) {
        return Err(unsupported(format!(
            "scheduler '{}' supports at most {SVC_DESTS_MAX} real servers per service in xvs",
            s.scheduler
        )));
    }
    Ok(())
}

/// wrr runs one precomputed period of the kernel's sequence (docs/design.md):
/// weights whose period is longer than the data plane holds are scheduled
/// by weights scaled to fit ([`sched::wrr_fit`]); say so once per change.
fn wrr_warn(s: &Service, weights: &[u32]) {
    let period = sched::wrr_period(weights);
    if s.scheduler == "wrr" && period > RING_LEN_MAX as u64 {
        log::warn!(
            "wrr {}: these weights repeat every {period} picks, xvs holds {RING_LEN_MAX}; \
             scheduling by weights scaled to fit (same shares, a different order than IPVS)",
            s.key
        );
    }
}

/// The whole model: what `-S` would save, plus slot ids.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Services by key (saved as a list: JSON keys must be strings).
    #[serde(with = "services_as_list")]
    pub services: BTreeMap<ServiceKey, SvcSlot>,
    /// Connection timeouts (`--set`).
    pub timeouts: Timeouts,
    /// Services that come from the keepalived.conf (`xvsd --config`): a
    /// reload reconciles these and never touches the others. Deleting a
    /// service (`-D`, `-C`) ends its ownership until the next reload.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub owned: BTreeSet<ServiceKey>,
    /// Deleted dests kept for their connections ([`Trashed`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trash: Vec<Trashed>,
    /// The connection-sync daemons running, as they were asked for
    /// (`--start-daemon`, defaults unfilled: a restarted xvsd starts them
    /// again and fills them in afresh). At most one master and one
    /// backup. Requests change them through the daemon, not
    /// [`Model::apply`]; `-C` leaves them, as IPVS's flush does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_daemons: Vec<SyncDaemon>,
    svc_ids: IdPool,
    dest_ids: IdPool,
    #[serde(default)]
    next_obj: u64,
}

mod services_as_list {
    use super::SvcSlot;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;
    use xvs_core::model::ServiceKey;

    pub fn serialize<S: Serializer>(
        m: &BTreeMap<ServiceKey, SvcSlot>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.values())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<ServiceKey, SvcSlot>, D::Error> {
        let v = Vec::<SvcSlot>::deserialize(d)?;
        Ok(v.into_iter().map(|s| (s.service.key, s)).collect())
    }
}

fn err(kind: ErrorKind) -> ApiError {
    ApiError::new(kind)
}

fn unsupported(msg: impl Into<String>) -> ApiError {
    ApiError::with(ErrorKind::Unsupported, msg)
}

/// Checks what xvs can carry out today for a service definition.
fn validate_service(s: &Service) -> Result<(), ApiError> {
    if !sched::is_known(&s.scheduler) {
        return Err(err(ErrorKind::SchedulerNotFound));
    }
    if s.pe_name.is_some() {
        return Err(unsupported(
            "persistence engines (--pe) are not supported by xvs yet",
        ));
    }
    if s.key.port == 0 && !s.is_persistent() {
        return Err(ApiError::with(
            ErrorKind::Invalid,
            "Zero port specified for non-persistent service",
        ));
    }
    if s.key.addr.is_unspecified() || s.key.addr.is_broadcast() || s.key.addr.is_multicast() {
        return Err(err(ErrorKind::Invalid));
    }
    Ok(())
}

fn validate_dest(svc: &Service, d: &Dest) -> Result<(), ApiError> {
    if d.fwd == FwdMethod::Tunnel {
        match d.tun_type {
            TunType::Ipip => {}
            TunType::Gue if d.tun_port == 0 => {
                return Err(ApiError::with(
                    ErrorKind::Invalid,
                    "tunnel type gue needs a tunnel port (--tun-port)",
                ))
            }
            TunType::Gue => {}
            TunType::Gre => {
                return Err(unsupported(
                    "tunnel type gre is not supported by xvs yet (ipip and gue are)",
                ))
            }
        }
        if d.tun_csum == TunCsum::RemCsum {
            return Err(unsupported(
                "remote checksum offload (--tun-remcsum) is not supported by xvs yet",
            ));
        }
    }
    if d.weight > i32::MAX as u32 {
        // the kernel's weight is an int (__ip_vs_update_dest: < 0 -> ERANGE)
        return Err(err(ErrorKind::OutOfRange));
    }
    if d.l_threshold > d.u_threshold {
        // ip_vs_add_dest / ip_vs_edit_dest: ERANGE
        return Err(err(ErrorKind::OutOfRange));
    }
    if d.addr.is_unspecified() || d.addr.is_broadcast() || d.addr.is_multicast() {
        return Err(err(ErrorKind::Invalid));
    }
    // A dest without port (`-r RS:0`) gets the service's port, as IPVS's
    // connections do (`dest->port ? dest->port : vport`).
    let _ = svc;
    Ok(())
}

/// DR and TUN cannot map ports: the real server sees the packet as the
/// client sent it. ipvsadm forces the service port silently; so does xvsd,
/// for clients other than xvsadm.
fn forced_port(svc: &Service, d: &Dest) -> Dest {
    let mut d = d.clone();
    if d.fwd != FwdMethod::Masq {
        d.port = svc.key.port;
    }
    d
}

/// What the data plane schedules the service from: the rr/wrr ring or the
/// dh/sh/mh table (dest ids), and the dest list in kernel order.
pub fn sched_of(slot: &SvcSlot) -> SvcSched {
    let dests: Vec<SchedDest> = slot
        .dests
        .iter()
        .map(|d| SchedDest {
            id: d.id,
            addr: d.dest.addr,
            port: d.dest.port,
            weight: d.dest.weight,
            last_weight: d.last_weight.unwrap_or(d.dest.weight),
        })
        .collect();
    // Services only exist with a known scheduler and within the dest limit
    // (validate_service, dest_limit), so the error arm is unreachable in
    // practice and yields no dest at all.
    SvcSched::build(&slot.service.scheduler, &dests).unwrap_or_default()
}

/// The dest ids in the order the data plane hands out new connections
/// (rr/wrr), or the bucket table (dh/sh/mh).
pub fn ring(slot: &SvcSlot) -> Vec<u32> {
    sched_of(slot).table
}

impl Model {
    /// Applies one request to this model (no backend involved).
    pub fn apply(&mut self, req: &Request, limits: Limits) -> Result<(), ApiError> {
        match req {
            Request::AddService { service } => {
                if self.services.contains_key(&service.key) {
                    return Err(err(ErrorKind::ServiceExists));
                }
                validate_service(service)?;
                let id = self
                    .svc_ids
                    .alloc(limits.max_services)
                    .ok_or_else(|| ApiError::with(ErrorKind::Internal, "service table is full"))?;
                self.next_obj += 1;
                self.services.insert(
                    service.key,
                    SvcSlot {
                        id,
                        obj: self.next_obj,
                        service: service.clone(),
                        dests: Vec::new(),
                    },
                );
            }
            Request::EditService { service } => {
                let slot = self
                    .services
                    .get_mut(&service.key)
                    .ok_or_else(|| err(ErrorKind::NoSuchService))?;
                validate_service(service)?;
                dest_limit(service, slot.dests.len())?;
                let w: Vec<u32> = slot.dests.iter().map(|d| d.dest.weight).collect();
                wrr_warn(service, &w);
                slot.service = service.clone();
            }
            Request::DelService { key } => {
                let slot = self
                    .services
                    .remove(key)
                    .ok_or_else(|| err(ErrorKind::NoSuchService))?;
                self.owned.remove(key);
                self.release(slot);
            }
            Request::Clear => {
                self.owned.clear();
                let all = std::mem::take(&mut self.services);
                for slot in all.into_values() {
                    self.release(slot);
                }
            }
            Request::AddDest { key, dest } => {
                let slot = self
                    .services
                    .get_mut(key)
                    .ok_or_else(|| err(ErrorKind::ServiceNotDefined))?;
                let dest = &forced_port(&slot.service, dest);
                if slot
                    .dests
                    .iter()
                    .any(|d| d.dest.addr == dest.addr && d.dest.port == dest.port)
                {
                    return Err(err(ErrorKind::DestExists));
                }
                validate_dest(&slot.service, dest)?;
                dest_limit(&slot.service, slot.dests.len() + 1)?;
                let mut w: Vec<u32> = slot.dests.iter().map(|d| d.dest.weight).collect();
                w.push(dest.weight);
                wrr_warn(&slot.service, &w);
                let back = self.trash.iter().position(|t| {
                    t.svc == *key && t.slot.dest.addr == dest.addr && t.slot.dest.port == dest.port
                });
                let id = match back {
                    Some(i) => self.trash.remove(i).slot.id,
                    None => self.dest_ids.alloc(limits.max_dests).ok_or_else(|| {
                        ApiError::with(ErrorKind::Internal, "destination table is full")
                    })?,
                };
                slot.dests.insert(
                    0,
                    DestSlot {
                        id,
                        dest: dest.clone(),
                        last_weight: Some(next_last_weight(true, 0, dest.weight)),
                    },
                );
            }
            Request::EditDest { key, dest } => {
                let slot = self
                    .services
                    .get_mut(key)
                    .ok_or_else(|| err(ErrorKind::ServiceNotDefined))?;
                let dest = &forced_port(&slot.service, dest);
                validate_dest(&slot.service, dest)?;
                let w: Vec<u32> = slot
                    .dests
                    .iter()
                    .map(|d| {
                        if d.dest.addr == dest.addr && d.dest.port == dest.port {
                            dest.weight
                        } else {
                            d.dest.weight
                        }
                    })
                    .collect();
                let d = slot
                    .dests
                    .iter_mut()
                    .find(|d| d.dest.addr == dest.addr && d.dest.port == dest.port)
                    .ok_or_else(|| err(ErrorKind::NoSuchDest))?;
                wrr_warn(&slot.service, &w);
                let old = d.last_weight.unwrap_or(d.dest.weight);
                d.last_weight = Some(next_last_weight(false, old, dest.weight));
                d.dest = dest.clone();
            }
            Request::DelDest { key, addr, port } => {
                let slot = self
                    .services
                    .get_mut(key)
                    .ok_or_else(|| err(ErrorKind::ServiceNotDefined))?;
                let pos = slot
                    .dests
                    .iter()
                    .position(|d| d.dest.addr == *addr && d.dest.port == *port)
                    .ok_or_else(|| err(ErrorKind::NoSuchDest))?;
                let d = slot.dests.remove(pos);
                let (svc, svc_obj) = (slot.service.key, slot.obj);
                self.trash.push(Trashed {
                    slot: d,
                    svc,
                    svc_obj,
                    idle_since: None,
                });
            }
            Request::SetTimeouts { timeouts } => {
                if timeouts.tcp != 0 {
                    self.timeouts.tcp = timeouts.tcp;
                }
                if timeouts.tcp_fin != 0 {
                    self.timeouts.tcp_fin = timeouts.tcp_fin;
                }
                if timeouts.udp != 0 {
                    self.timeouts.udp = timeouts.udp;
                }
            }
            Request::Zero { key } => {
                if let Some(k) = key {
                    if !self.services.contains_key(k) {
                        return Err(err(ErrorKind::NoSuchService));
                    }
                }
            }
            Request::Batch { requests } => {
                for r in requests {
                    self.apply(r, limits)?;
                }
            }
            Request::Sequence { requests } => {
                for r in requests {
                    let mut c = self.clone();
                    if c.apply(r, limits).is_ok() {
                        *self = c;
                    }
                }
            }
            Request::StartDaemon { .. } | Request::StopDaemon { .. } => {
                return Err(ApiError::with(
                    ErrorKind::Invalid,
                    "sync daemons are started and stopped on their own, not in a batch",
                ));
            }
            Request::GetTimeouts
            | Request::List
            | Request::ListConns
            | Request::Info
            | Request::ListDaemons => {}
        }
        Ok(())
    }

    /// A deleted service: its id goes back to the pool, its dests to
    /// the trash (their connections stay, as IPVS's do).
    fn release(&mut self, slot: SvcSlot) {
        for d in slot.dests {
            self.trash.push(Trashed {
                slot: d,
                svc: slot.service.key,
                svc_obj: slot.obj,
                idle_since: None,
            });
        }
        self.svc_ids.release(slot.id);
    }

    /// The trash's dests that have been unused for [`TRASH_PERIOD_SECS`]
    /// at `now` (seconds) leave it, their ids free again; `in_use(id)`
    /// says whether a dest still has connections or templates. Returns
    /// the ids that left (their data-plane slots are to be cleared).
    pub fn collect_trash(&mut self, now: u64, in_use: impl Fn(u32) -> bool) -> Vec<u32> {
        let mut gone = Vec::new();
        self.trash.retain_mut(|t| {
            if in_use(t.slot.id) {
                t.idle_since = None;
                return true;
            }
            match t.idle_since {
                None => {
                    t.idle_since = Some(now);
                    true
                }
                Some(since) if now.saturating_sub(since) < TRASH_PERIOD_SECS => true,
                Some(_) => {
                    gone.push(t.slot.id);
                    false
                }
            }
        });
        for id in &gone {
            self.dest_ids.release(*id);
        }
        gone
    }

    /// Every dest id in use, with the id of its service.
    fn dest_index(&self) -> BTreeMap<u32, (u32, &Dest, u64)> {
        self.services
            .values()
            .flat_map(|s| s.dests.iter().map(move |d| (d.id, (s.id, &d.dest, s.obj))))
            .collect()
    }

    /// Finds a service by key.
    pub fn service(&self, key: &ServiceKey) -> Option<&SvcSlot> {
        self.services.get(key)
    }
}

/// Brings the backend from `old` to `new`, touching only what changed.
///
/// Order matters for in-flight packets: new dests are written before a ring
/// can point at them, rings stop pointing at a dest before it is removed.
pub fn sync(old: &Model, new: &Model, be: &mut dyn Backend) -> Result<(), String> {
    let old_dests = old.dest_index();
    let new_dests = new.dest_index();
    // The same real server (it may have been to the trash and back within
    // the batch) or, should an id have been freed and handed out again,
    // another one, whose predecessor's connections must end first.
    let same_rs = |a: &Dest, b: &Dest| a.addr == b.addr && a.port == b.port;
    for (id, n) in &new_dests {
        let (svc_id, dest, obj) = *n;
        // The object its counters belong to, if it keeps them.
        let kept_obj = match old_dests.get(id) {
            Some(o) if same_rs(o.1, dest) => Some(o.2),
            Some(_) => {
                be.remove_dest(*id)?;
                None
            }
            None => old
                .trash
                .iter()
                .find(|t| t.slot.id == *id)
                .map(|t| t.svc_obj),
        };
        match old_dests.get(id) {
            Some(o) if same_rs(o.1, dest) && o.0 == svc_id && o.2 == obj => {
                if o.1 != dest {
                    be.upsert_dest(*id, svc_id, dest)?;
                }
            }
            _ => {
                // New, or back from the trash: connections and counts
                // stay; counters too when it is the same service object.
                if kept_obj != Some(obj) {
                    be.zero_dest(*id)?;
                }
                be.upsert_dest(*id, svc_id, dest)?;
            }
        }
    }
    let old_by_id: BTreeMap<u32, &SvcSlot> = old.services.values().map(|s| (s.id, s)).collect();
    let new_by_id: BTreeMap<u32, &SvcSlot> = new.services.values().map(|s| (s.id, s)).collect();
    for (id, slot) in &old_by_id {
        match new_by_id.get(id) {
            Some(n) if n.service.key == slot.service.key => {}
            _ => be.remove_service(*id, &slot.service.key)?,
        }
    }
    for (id, slot) in &new_by_id {
        let changed = match old_by_id.get(id) {
            Some(o) if o.service.key == slot.service.key => *o != *slot,
            _ => {
                be.zero_svc(*id)?;
                true
            }
        };
        if changed {
            be.upsert_service(*id, &slot.service, &sched_of(slot))?;
        }
    }
    for id in old_dests.keys() {
        if !new_dests.contains_key(id) {
            if new.trash.iter().any(|t| t.slot.id == *id) {
                be.trash_dest(*id)?;
            } else {
                be.remove_dest(*id)?;
            }
        }
    }
    Ok(())
}

/// Writes a whole model to the backend without zeroing anything: used at
/// start-up over pinned maps, and to put the previous table back after the
/// backend refused part of a change.
pub fn restore(model: &Model, be: &mut dyn Backend) -> Result<(), String> {
    for slot in model.services.values() {
        for d in &slot.dests {
            be.upsert_dest(d.id, slot.id, &d.dest)?;
        }
        be.upsert_service(slot.id, &slot.service, &sched_of(slot))?;
    }
    for t in &model.trash {
        be.trash_dest(t.slot.id)?;
    }
    Ok(())
}

/// Zeroes counters as `-Z` asks: one service and its dests, or everything.
pub fn zero(model: &Model, key: Option<&ServiceKey>, be: &mut dyn Backend) -> Result<(), String> {
    for slot in model.services.values() {
        if key.is_some_and(|k| *k != slot.service.key) {
            continue;
        }
        be.zero_svc(slot.id)?;
        for d in &slot.dests {
            be.zero_dest(d.id)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use xvs_core::model::{svc_flags, Protocol};

    const LIMITS: Limits = Limits {
        max_services: 4,
        max_dests: 8,
    };

    #[derive(Default)]
    struct Fake {
        log: Vec<String>,
        fail_on: Option<&'static str>,
    }

    impl Fake {
        fn rec(&mut self, s: String) -> Result<(), String> {
            if let Some(f) = self.fail_on {
                if s.starts_with(f) {
                    return Err(format!("injected failure at {s}"));
                }
            }
            self.log.push(s);
            Ok(())
        }
    }

    impl Backend for Fake {
        fn upsert_service(
            &mut self,
            id: u32,
            svc: &Service,
            sched: &SvcSched,
        ) -> Result<(), String> {
            self.rec(format!("svc {id} {} {:?}", svc.scheduler, sched.table))
        }
        fn remove_service(&mut self, id: u32, _: &ServiceKey) -> Result<(), String> {
            self.rec(format!("rmsvc {id}"))
        }
        fn upsert_dest(&mut self, id: u32, svc: u32, d: &Dest) -> Result<(), String> {
            self.rec(format!(
                "dest {id} svc={svc} {}:{} w={}",
                d.addr, d.port, d.weight
            ))
        }
        fn remove_dest(&mut self, id: u32) -> Result<(), String> {
            self.rec(format!("rmdest {id}"))
        }
        fn trash_dest(&mut self, id: u32) -> Result<(), String> {
            self.rec(format!("trash {id}"))
        }
        fn zero_svc(&mut self, id: u32) -> Result<(), String> {
            self.rec(format!("zsvc {id}"))
        }
        fn zero_dest(&mut self, id: u32) -> Result<(), String> {
            self.rec(format!("zdest {id}"))
        }
    }

    fn key(port: u16) -> ServiceKey {
        ServiceKey {
            proto: Protocol::Tcp,
            addr: Ipv4Addr::new(198, 51, 100, 10),
            port,
        }
    }

    fn masq(last: u8, port: u16, weight: u32) -> Dest {
        let mut d = Dest::new(Ipv4Addr::new(203, 0, 113, last), port);
        d.fwd = FwdMethod::Masq;
        d.weight = weight;
        d
    }

    fn add_svc(port: u16, sched: &str) -> Request {
        Request::AddService {
            service: Service::new(key(port), sched),
        }
    }

    fn add_dest(port: u16, last: u8, w: u32) -> Request {
        Request::AddDest {
            key: key(port),
            dest: masq(last, 80, w),
        }
    }

    #[test]
    fn ipvsadm_errors_for_common_mistakes() {
        let mut m = Model::default();
        let e = m.apply(&add_dest(80, 11, 1), LIMITS).unwrap_err();
        assert_eq!(e.to_string(), "Service not defined");
        m.apply(&add_svc(80, "rr"), LIMITS).unwrap();
        assert_eq!(
            m.apply(&add_svc(80, "rr"), LIMITS).unwrap_err().to_string(),
            "Service already exists"
        );
        m.apply(&add_dest(80, 11, 1), LIMITS).unwrap();
        assert_eq!(
            m.apply(&add_dest(80, 11, 1), LIMITS)
                .unwrap_err()
                .to_string(),
            "Destination already exists"
        );
        let del = Request::DelDest {
            key: key(80),
            addr: Ipv4Addr::new(203, 0, 113, 99),
            port: 80,
        };
        assert_eq!(
            m.apply(&del, LIMITS).unwrap_err().to_string(),
            "No such destination"
        );
        let e = m.apply(&add_svc(81, "nosuch"), LIMITS).unwrap_err();
        assert_eq!(e.kind, ErrorKind::SchedulerNotFound);
        let e = m
            .apply(&Request::DelService { key: key(81) }, LIMITS)
            .unwrap_err();
        assert_eq!(e.to_string(), "No such service");
    }

    #[test]
    fn later_features_are_refused_not_ignored() {
        let mut m = Model::default();
        const BIG: Limits = Limits {
            max_services: 32,
            max_dests: 8,
        };
        // Every scheduler, persistence and -o are accepted now.
        for (port, s) in sched::SCHEDULERS.iter().enumerate() {
            m.apply(&add_svc(1000 + port as u16, s), BIG).unwrap();
        }
        let mut p = Service::new(key(0), "rr");
        let e = m
            .apply(&Request::AddService { service: p.clone() }, BIG)
            .unwrap_err();
        assert_eq!(e.message, "Zero port specified for non-persistent service");
        p.flags |= svc_flags::PERSISTENT | svc_flags::ONEPACKET;
        p.timeout = 360;
        m.apply(&Request::AddService { service: p.clone() }, BIG)
            .unwrap();
        let mut pe = Service::new(key(81), "rr");
        pe.pe_name = Some("sip".into());
        let e = m
            .apply(&Request::AddService { service: pe }, BIG)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        let mut t = masq(11, 80, 1);
        t.u_threshold = 5;
        t.l_threshold = 6;
        let e = m
            .apply(
                &Request::AddDest {
                    key: key(1000),
                    dest: t.clone(),
                },
                BIG,
            )
            .unwrap_err();
        // the kernel's ERANGE, as ipvsadm prints it
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::OutOfRange, "Numerical result out of range")
        );
        t.l_threshold = 2;
        m.apply(
            &Request::AddDest {
                key: key(1000),
                dest: t,
            },
            BIG,
        )
        .unwrap();
        let mut m = Model::default();
        m.apply(&add_svc(80, "rr"), LIMITS).unwrap();
        let mut d = masq(11, 80, 1);
        d.fwd = FwdMethod::Tunnel;
        d.tun_type = TunType::Gre;
        let add = |dest: Dest| Request::AddDest { key: key(80), dest };
        let e = m.apply(&add(d.clone()), LIMITS).unwrap_err();
        assert!(e.message.contains("gre"), "{}", e.message);
        d.tun_type = TunType::Gue;
        let e = m.apply(&add(d), LIMITS).unwrap_err();
        assert!(e.message.contains("--tun-port"), "{}", e.message);
    }

    #[test]
    fn dr_and_tun_dests_take_the_service_port() {
        let mut m = Model::default();
        m.apply(&add_svc(80, "rr"), LIMITS).unwrap();
        for (last, fwd) in [(11, FwdMethod::Route), (12, FwdMethod::Tunnel)] {
            let mut d = masq(last, 8080, 1);
            d.fwd = fwd;
            m.apply(
                &Request::AddDest {
                    key: key(80),
                    dest: d,
                },
                LIMITS,
            )
            .unwrap();
        }
        let slot = m.service(&key(80)).unwrap();
        let ports: Vec<u16> = slot.dests.iter().map(|d| d.dest.port).collect();
        assert_eq!(ports, vec![80, 80]);
    }

    #[test]
    fn failed_batch_changes_nothing() {
        let mut m = Model::default();
        m.apply(&add_svc(80, "rr"), LIMITS).unwrap();
        let before = m.clone();
        let batch = Request::Batch {
            requests: vec![
                add_dest(80, 11, 1),
                add_dest(80, 12, 1),
                add_dest(80, 11, 1),
            ],
        };
        let mut copy = m.clone();
        assert!(copy.apply(&batch, LIMITS).is_err());
        assert_eq!(m, before);
    }

    #[test]
    fn ids_are_bounded_and_reused() {
        let mut m = Model::default();
        for p in 1..=4 {
            m.apply(&add_svc(p, "rr"), LIMITS).unwrap();
        }
        let e = m.apply(&add_svc(5, "rr"), LIMITS).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Internal);
        m.apply(&Request::DelService { key: key(2) }, LIMITS)
            .unwrap();
        m.apply(&add_svc(5, "rr"), LIMITS).unwrap();
        assert_eq!(m.service(&key(5)).unwrap().id, 1);
    }

    #[test]
    fn sync_writes_dests_before_rings_and_removes_after() {
        let mut be = Fake::default();
        let old = Model::default();
        let mut new = old.clone();
        new.apply(&add_svc(80, "wrr"), LIMITS).unwrap();
        new.apply(&add_dest(80, 11, 3), LIMITS).unwrap();
        new.apply(&add_dest(80, 12, 1), LIMITS).unwrap();
        sync(&old, &new, &mut be).unwrap();
        assert_eq!(
            be.log,
            vec![
                "zdest 0",
                "dest 0 svc=0 203.0.113.11:80 w=3",
                "zdest 1",
                "dest 1 svc=0 203.0.113.12:80 w=1",
                "zsvc 0",
                // List order is newest first ([.12 w1, .11 w3]); the
                // kernel's wrr picks .11 at cw=3 and cw=2, then both.
                "svc 0 wrr [0, 0, 1, 0]",
            ]
        );
        be.log.clear();
        let old = new.clone();
        new.apply(
            &Request::DelDest {
                key: key(80),
                addr: Ipv4Addr::new(203, 0, 113, 11),
                port: 80,
            },
            LIMITS,
        )
        .unwrap();
        sync(&old, &new, &mut be).unwrap();
        // IPVS keeps a deleted dest in its trash with its connections.
        assert_eq!(be.log, vec!["svc 0 wrr [1]", "trash 0"]);
    }

    #[test]
    fn weight_zero_leaves_the_ring_but_keeps_the_dest() {
        let mut m = Model::default();
        m.apply(&add_svc(80, "rr"), LIMITS).unwrap();
        m.apply(&add_dest(80, 11, 1), LIMITS).unwrap();
        m.apply(&add_dest(80, 12, 1), LIMITS).unwrap();
        let edit = Request::EditDest {
            key: key(80),
            dest: masq(11, 80, 0),
        };
        m.apply(&edit, LIMITS).unwrap();
        let slot = m.service(&key(80)).unwrap();
        assert_eq!(slot.dests.len(), 2);
        assert_eq!(ring(slot), vec![1]);
    }

    #[test]
    fn quiesced_dests_keep_their_mh_slots_and_tables_follow_the_scheduler() {
        let mut m = Model::default();
        m.apply(&add_svc(80, "mh"), LIMITS).unwrap();
        m.apply(&add_dest(80, 11, 1), LIMITS).unwrap();
        m.apply(&add_dest(80, 12, 1), LIMITS).unwrap();
        let before = sched_of(m.service(&key(80)).unwrap());
        assert_eq!(before.table.len(), 4093);
        assert_eq!(before.dests, vec![1, 0]);
        let edit = Request::EditDest {
            key: key(80),
            dest: masq(11, 80, 0),
        };
        m.apply(&edit, LIMITS).unwrap();
        let slot = m.service(&key(80)).unwrap();
        assert_eq!(slot.dests[1].last_weight, Some(1));
        // weight 0 with last_weight 1: same table, the dest merely unavailable
        let after = sched_of(slot);
        assert_eq!((&after.dests, &after.table), (&before.dests, &before.table));
        // -E -s sh: a 256-bucket table; -s wlc: no table, the dest list
        let mut s = Service::new(key(80), "sh");
        m.apply(&Request::EditService { service: s.clone() }, LIMITS)
            .unwrap();
        assert_eq!(sched_of(m.service(&key(80)).unwrap()).table.len(), 256);
        s.scheduler = "wlc".into();
        m.apply(&Request::EditService { service: s }, LIMITS)
            .unwrap();
        let w = sched_of(m.service(&key(80)).unwrap());
        assert!(w.table.is_empty());
        assert_eq!(w.dests, vec![1, 0]);
    }

    #[test]
    fn a_deleted_dest_waits_in_the_trash_and_comes_back_with_its_slot() {
        let mut be = Fake::default();
        let mut old = Model::default();
        old.apply(&add_svc(80, "rr"), LIMITS).unwrap();
        old.apply(&add_dest(80, 11, 1), LIMITS).unwrap();
        let mut new = old.clone();
        let del = Request::DelDest {
            key: key(80),
            addr: Ipv4Addr::new(203, 0, 113, 11),
            port: 80,
        };
        let batch = Request::Batch {
            requests: vec![del.clone(), add_dest(80, 12, 1)],
        };
        new.apply(&batch, LIMITS).unwrap();
        sync(&old, &new, &mut be).unwrap();
        // .11 keeps slot 0 in the trash; .12 gets a slot of its own.
        assert_eq!(
            be.log,
            vec![
                "zdest 1",
                "dest 1 svc=0 203.0.113.12:80 w=1",
                "svc 0 rr [1]",
                "trash 0"
            ]
        );
        // Added again: back in slot 0, counters kept (same service).
        be.log.clear();
        let old = new.clone();
        new.apply(&add_dest(80, 11, 2), LIMITS).unwrap();
        sync(&old, &new, &mut be).unwrap();
        assert_eq!(
            be.log,
            vec!["dest 0 svc=0 203.0.113.11:80 w=2", "svc 0 rr [0, 1]"]
        );
        // Deleted with its service, then a new service of the same key:
        // the slot comes back, its counters zeroed (another object).
        be.log.clear();
        let old = new.clone();
        new.apply(&Request::DelService { key: key(80) }, LIMITS)
            .unwrap();
        new.apply(&add_svc(80, "rr"), LIMITS).unwrap();
        new.apply(&add_dest(80, 11, 1), LIMITS).unwrap();
        sync(&old, &new, &mut be).unwrap();
        assert!(be.log.contains(&"zdest 0".to_string()), "{:?}", be.log);
        assert!(be.log.contains(&"trash 1".to_string()), "{:?}", be.log);
        // Unused for 120 s, it leaves the trash and its slot is free.
        assert_eq!(new.trash.len(), 1);
        assert!(new.collect_trash(10, |_| false).is_empty());
        assert!(
            new.collect_trash(129, |id| id == 1).is_empty(),
            "in use again"
        );
        assert!(
            new.collect_trash(130, |_| false).is_empty(),
            "idle from 130"
        );
        assert_eq!(new.collect_trash(250, |_| false), vec![1]);
        assert!(new.trash.is_empty());
    }

    #[test]
    fn backend_failure_is_reported() {
        let mut be = Fake {
            fail_on: Some("svc"),
            ..Fake::default()
        };
        let old = Model::default();
        let mut new = old.clone();
        new.apply(&add_svc(80, "rr"), LIMITS).unwrap();
        assert!(sync(&old, &new, &mut be).is_err());
    }
}
