//! The model of the virtual server table: services, dests and their
//! data-plane slots, the dest trash, and every change validated as IPVS
//! validates it ([`Model::apply`]).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use xvs_core::api::{ApiError, ErrorKind, Request};
use xvs_core::fwmark::MarkRule;
use xvs_core::model::{
    Dest, FwdMethod, Service, ServiceKey, SyncDaemon, Timeouts, TunCsum, TunType,
};
use xvs_core::sched;
use xvs_core::sched::reference::next_last_weight;
use xvs_dataplane::{scans_dest_list, RING_LEN_MAX, SVC_DESTS_MAX};

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

/// Schedulers that scan the service's dest list hold at most
/// `SVC_DESTS_MAX` dests; the data plane says which ([`scans_dest_list`]).
fn dest_limit(s: &Service, n: usize) -> Result<(), ApiError> {
    let scans = sched::SchedKind::from_name(&s.scheduler).is_ok_and(scans_dest_list);
    if n > SVC_DESTS_MAX && scans {
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
    /// The mark classifier's rules (`--add-mark`, keepalived `@xvsd
    /// match`), in the order given; they give packets the marks fwmark
    /// services match. `-C` keeps them, as `ipvsadm -C` keeps iptables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mark_rules: Vec<MarkRule>,
    /// The rules of `mark_rules` that the keepalived.conf put there (`@xvsd
    /// match`): a reload replaces these and never touches the others
    /// ([`crate::owned::Owned`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owned_marks: Vec<MarkRule>,
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

/// IPv6 services and real servers: the listing and parsing know them,
/// the data plane does not forward them yet.
fn ipv6_unsupported() -> ApiError {
    unsupported("IPv6 is not supported by xvs yet")
}

fn is_broadcast(a: IpAddr) -> bool {
    matches!(a, IpAddr::V4(a) if a.is_broadcast())
}

/// Checks what xvs can carry out today for a service definition.
fn validate_service(s: &Service) -> Result<(), ApiError> {
    if !sched::is_known(&s.scheduler) {
        return Err(err(ErrorKind::SchedulerNotFound));
    }
    // The kernel knows the engines it has modules for, by exact name
    // (ip_vs_pe_getbyname); xvs has sip.
    if s.pe_name.as_deref().is_some_and(|pe| pe != "sip") {
        return Err(err(ErrorKind::SchedulerNotFound));
    }
    if s.key.is_ipv6() {
        return Err(ipv6_unsupported());
    }
    // A fwmark service has no address or port of its own (IPVS keys it by
    // the mark; ipvsadm skips the zero-port check for -f).
    if s.key.is_fwmark() {
        return Ok(());
    }
    if s.key.port == 0 && !s.is_persistent() {
        return Err(ApiError::with(
            ErrorKind::Invalid,
            "Zero port specified for non-persistent service",
        ));
    }
    if s.key.addr.is_unspecified() || is_broadcast(s.key.addr) || s.key.addr.is_multicast() {
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
    if d.addr.is_ipv6() {
        return Err(ipv6_unsupported());
    }
    if d.addr.is_unspecified() || is_broadcast(d.addr) || d.addr.is_multicast() {
        return Err(err(ErrorKind::Invalid));
    }
    // A dest without port (`-r RS:0`) gets the service's port, as IPVS's
    // connections do (`dest->port ? dest->port : vport`).
    let _ = svc;
    Ok(())
}

/// DR and TUN cannot map ports: the real server sees the packet as the
/// client sent it. ipvsadm forces the service port silently; so does xvsd,
/// for clients other than xvsadm. Not for a fwmark service: ipvsadm and
/// the kernel keep its dest's port (`-r RS:80 -g` lists `RS:80`).
fn forced_port(svc: &Service, d: &Dest) -> Dest {
    let mut d = d.clone();
    if d.fwd != FwdMethod::Masq && !svc.key.is_fwmark() {
        d.port = svc.key.port;
    }
    d
}

impl Model {
    /// Applies one request to this model (no backend involved).
    pub fn apply(&mut self, req: &Request, limits: Limits) -> Result<(), ApiError> {
        match req {
            Request::AddService { service } => self.add_service(service, limits)?,
            Request::EditService { service } => self.edit_service(service)?,
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
            Request::AddDest { key, dest } => self.add_dest(key, dest, limits)?,
            Request::EditDest { key, dest } => self.edit_dest(key, dest)?,
            Request::DelDest { key, addr, port } => self.del_dest(key, *addr, *port)?,
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
            Request::AddMark { rule } => self.add_mark(rule)?,
            Request::DelMark { rule } => {
                let i = self
                    .mark_rules
                    .iter()
                    .position(|r| r == rule)
                    .ok_or_else(|| ApiError::with(ErrorKind::Invalid, "No such mark rule"))?;
                self.mark_rules.remove(i);
                // As a deleted service: the configuration's ownership ends
                // until the next reload.
                self.owned_marks.retain(|r| r != rule);
            }
            Request::ClearMarks => {
                self.mark_rules.clear();
                self.owned_marks.clear();
            }
            Request::GetTimeouts
            | Request::List
            | Request::ListConns
            | Request::Info
            | Request::ListDaemons
            | Request::ListMarks => {}
        }
        Ok(())
    }

    /// `--add-mark`: the rule set with the new rule must compile (no host
    /// bits, no conflict, fits the maps); a rule already present changes
    /// nothing.
    fn add_mark(&mut self, rule: &MarkRule) -> Result<(), ApiError> {
        if self.mark_rules.contains(rule) {
            return Ok(());
        }
        let mut rules = self.mark_rules.clone();
        rules.push(rule.clone());
        xvs_core::fwmark::compile(&rules)
            .map_err(|e| ApiError::with(ErrorKind::Invalid, e.to_string()))?;
        self.mark_rules = rules;
        Ok(())
    }

    /// `-A`.
    fn add_service(&mut self, service: &Service, limits: Limits) -> Result<(), ApiError> {
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
        Ok(())
    }

    /// `-E`.
    fn edit_service(&mut self, service: &Service) -> Result<(), ApiError> {
        let slot = self
            .services
            .get_mut(&service.key)
            .ok_or_else(|| err(ErrorKind::NoSuchService))?;
        validate_service(service)?;
        dest_limit(service, slot.dests.len())?;
        let w: Vec<u32> = slot.dests.iter().map(|d| d.dest.weight).collect();
        wrr_warn(service, &w);
        slot.service = service.clone();
        Ok(())
    }

    /// `-a`: a new dest goes to the front of the list; the same real
    /// server back from the trash gets its slot again.
    fn add_dest(&mut self, key: &ServiceKey, dest: &Dest, limits: Limits) -> Result<(), ApiError> {
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
            None => self
                .dest_ids
                .alloc(limits.max_dests)
                .ok_or_else(|| ApiError::with(ErrorKind::Internal, "destination table is full"))?,
        };
        slot.dests.insert(
            0,
            DestSlot {
                id,
                dest: dest.clone(),
                last_weight: Some(next_last_weight(true, 0, dest.weight)),
            },
        );
        Ok(())
    }

    /// `-e`.
    fn edit_dest(&mut self, key: &ServiceKey, dest: &Dest) -> Result<(), ApiError> {
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
        Ok(())
    }

    /// `-d`: the dest goes to the trash.
    fn del_dest(&mut self, key: &ServiceKey, addr: IpAddr, port: u16) -> Result<(), ApiError> {
        let slot = self
            .services
            .get_mut(key)
            .ok_or_else(|| err(ErrorKind::ServiceNotDefined))?;
        let pos = slot
            .dests
            .iter()
            .position(|d| d.dest.addr == addr && d.dest.port == port)
            .ok_or_else(|| err(ErrorKind::NoSuchDest))?;
        let d = slot.dests.remove(pos);
        let (svc, svc_obj) = (slot.service.key, slot.obj);
        self.trash.push(Trashed {
            slot: d,
            svc,
            svc_obj,
            idle_since: None,
        });
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
    pub(super) fn dest_index(&self) -> BTreeMap<u32, (u32, &Dest, u64)> {
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
