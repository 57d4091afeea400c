//! Request handling: one [`Daemon`] owns the model and the data plane and
//! answers every [`Request`]. It is driven by the server loop and by timers
//! (connection expiry, rate estimation).

use crate::table::{self, Backend, Limits, Model};
use std::collections::HashMap;
use std::path::PathBuf;
use xvs_core::api::{ApiError, ConnEntry, DestEntry, ErrorKind, Info, Request, Response, ServiceEntry, Table};
use xvs_core::estimator::Estimator;
use xvs_core::model::{ServiceKey, Stats, Timeouts};

/// Everything the daemon reads back from the data plane, on top of the
/// writes in [`Backend`].
pub trait Plane: Backend {
    /// Counters of a service.
    fn svc_stats(&self, svc_id: u32) -> Result<Stats, String>;
    /// Counters of a dest.
    fn dest_stats(&self, dest_id: u32) -> Result<Stats, String>;
    /// (ActiveConn, InActConn) of a dest.
    fn dest_conns(&self, dest_id: u32) -> Result<(u32, u32), String>;
    /// The live connections, with time left under `timeouts`.
    fn conns(&self, timeouts: &Timeouts) -> Result<Vec<ConnEntry>, String>;
    /// Number of connection entries.
    fn conn_count(&self) -> Result<u64, String>;
    /// Deletes idle connections; returns how many.
    fn expire(&mut self, timeouts: &Timeouts) -> Result<u64, String>;
    /// Data-plane counters by name.
    fn counters(&self) -> Result<Vec<(String, u64)>, String>;
    /// Interfaces attached.
    fn interfaces(&self) -> Vec<String>;
    /// Connection table capacity.
    fn conn_capacity(&self) -> u32;
}

/// Identifies whose rate an estimator follows, independent of slot ids
/// (which are reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum EstKey {
    Svc(ServiceKey),
    Dest(ServiceKey, std::net::Ipv4Addr, u16),
}

/// The daemon's state.
pub struct Daemon<P: Plane> {
    model: Model,
    limits: Limits,
    plane: P,
    estimators: HashMap<EstKey, Estimator>,
    state_file: Option<PathBuf>,
}

fn internal(e: String) -> ApiError {
    ApiError::with(ErrorKind::Internal, format!("data plane: {e}"))
}

/// `-Z` requests inside a request, for batches.
fn zero_targets(req: &Request, out: &mut Vec<Option<ServiceKey>>) {
    match req {
        Request::Zero { key } => out.push(*key),
        Request::Batch { requests } => requests.iter().for_each(|r| zero_targets(r, out)),
        _ => {}
    }
}

impl<P: Plane> Daemon<P> {
    /// A daemon over `plane`. When `state_file` names an existing file, the
    /// table saved there is loaded and written to the plane again (a restart
    /// with pinned maps keeps its connections and counters).
    pub fn new(plane: P, limits: Limits, state_file: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut d = Daemon {
            model: Model::default(),
            limits,
            plane,
            estimators: HashMap::new(),
            state_file,
        };
        if let Some(path) = &d.state_file {
            if path.exists() {
                let text = std::fs::read_to_string(path)?;
                let model: Model = serde_json::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                table::restore(&model, &mut d.plane).map_err(|e| anyhow::anyhow!(e))?;
                log::info!(
                    "restored {} service(s) from {}",
                    model.services.len(),
                    path.display()
                );
                d.model = model;
            }
        }
        Ok(d)
    }

    /// The data plane, for shutdown.
    pub fn plane_mut(&mut self) -> &mut P {
        &mut self.plane
    }

    /// Current timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.model.timeouts
    }

    /// Answers one request.
    pub fn handle(&mut self, req: Request) -> Response {
        let result = match &req {
            Request::List => self.table().map(|table| Response::Table { table }),
            Request::ListConns => self
                .plane
                .conns(&self.model.timeouts)
                .map(|conns| Response::Conns { conns })
                .map_err(internal),
            Request::GetTimeouts => Ok(Response::Timeouts {
                timeouts: self.model.timeouts,
            }),
            Request::Info => self.info().map(|info| Response::Info { info }),
            _ => self.change(&req).map(|()| Response::Ok),
        };
        result.unwrap_or_else(|error| Response::Error { error })
    }

    fn change(&mut self, req: &Request) -> Result<(), ApiError> {
        let mut new = self.model.clone();
        new.apply(req, self.limits)?;
        if let Err(e) = table::sync(&self.model, &new, &mut self.plane) {
            log::error!("data plane refused {req:?}: {e}; restoring the previous table");
            // Undo by diffing back: removes what the change added, rewrites
            // what it altered.
            if let Err(e2) = table::sync(&new, &self.model, &mut self.plane) {
                log::error!("restoring the previous table failed too: {e2}");
            }
            return Err(internal(e));
        }
        let mut zeros = Vec::new();
        zero_targets(req, &mut zeros);
        for key in zeros {
            table::zero(&new, key.as_ref(), &mut self.plane).map_err(internal)?;
            self.estimators.retain(|k, _| match (k, key) {
                (_, None) => false,
                (EstKey::Svc(s) | EstKey::Dest(s, _, _), Some(z)) => *s != z,
            });
        }
        if !matches!(req, Request::Zero { .. }) {
            log::info!("applied {}", describe(req));
        }
        self.model = new;
        self.save_state();
        Ok(())
    }

    fn save_state(&self) {
        let Some(path) = &self.state_file else { return };
        let tmp = path.with_extension("tmp");
        let res = serde_json::to_vec(&self.model)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = res {
            log::warn!("cannot save state to {}: {e}", path.display());
        }
    }

    fn table(&self) -> Result<Table, ApiError> {
        let mut services = Vec::new();
        for slot in self.model.services.values() {
            let key = slot.service.key;
            let mut dests = Vec::new();
            for d in &slot.dests {
                let (active, inact) = self.plane.dest_conns(d.id).map_err(internal)?;
                dests.push(DestEntry {
                    dest: d.dest.clone(),
                    active_conns: active,
                    inact_conns: inact,
                    persist_conns: 0,
                    stats: self.plane.dest_stats(d.id).map_err(internal)?,
                    rates: self
                        .estimators
                        .get(&EstKey::Dest(key, d.dest.addr, d.dest.port))
                        .map(Estimator::rates)
                        .unwrap_or_default(),
                });
            }
            services.push(ServiceEntry {
                service: slot.service.clone(),
                stats: self.plane.svc_stats(slot.id).map_err(internal)?,
                rates: self
                    .estimators
                    .get(&EstKey::Svc(key))
                    .map(Estimator::rates)
                    .unwrap_or_default(),
                dests,
            });
        }
        Ok(Table {
            conn_tab_size: self.plane.conn_capacity(),
            services,
        })
    }

    fn info(&self) -> Result<Info, ApiError> {
        Ok(Info {
            version: env!("CARGO_PKG_VERSION").to_string(),
            conn_tab_size: self.plane.conn_capacity(),
            conn_count: self.plane.conn_count().map_err(internal)?,
            interfaces: self.plane.interfaces(),
            counters: self.plane.counters().map_err(internal)?,
        })
    }

    /// Expires idle connections (called every second).
    pub fn expire(&mut self) {
        match self.plane.expire(&self.model.timeouts) {
            Ok(0) => {}
            Ok(n) => log::debug!("expired {n} connection(s)"),
            Err(e) => log::warn!("connection expiry failed: {e}"),
        }
    }

    /// Feeds the rate estimators (called every 2 seconds, as IPVS does).
    pub fn estimate(&mut self) {
        let mut seen = Vec::new();
        for slot in self.model.services.values() {
            let key = slot.service.key;
            if let Ok(s) = self.plane.svc_stats(slot.id) {
                self.estimators.entry(EstKey::Svc(key)).or_default().update(&s);
                seen.push(EstKey::Svc(key));
            }
            for d in &slot.dests {
                let k = EstKey::Dest(key, d.dest.addr, d.dest.port);
                if let Ok(s) = self.plane.dest_stats(d.id) {
                    self.estimators.entry(k).or_default().update(&s);
                    seen.push(k);
                }
            }
        }
        self.estimators.retain(|k, _| seen.contains(k));
    }
}

/// A one-line account of a change for the log.
fn describe(req: &Request) -> String {
    match req {
        Request::AddService { service } => format!("add service {} ({})", service.key, service.scheduler),
        Request::EditService { service } => format!("edit service {} ({})", service.key, service.scheduler),
        Request::DelService { key } => format!("delete service {key}"),
        Request::Clear => "clear table".into(),
        Request::AddDest { key, dest } => format!(
            "add dest {}:{} to {key} ({}, weight {})",
            dest.addr, dest.port, dest.fwd, dest.weight
        ),
        Request::EditDest { key, dest } => format!(
            "edit dest {}:{} of {key} ({}, weight {})",
            dest.addr, dest.port, dest.fwd, dest.weight
        ),
        Request::DelDest { key, addr, port } => format!("delete dest {addr}:{port} from {key}"),
        Request::SetTimeouts { timeouts } => format!(
            "set timeouts tcp {} tcpfin {} udp {}",
            timeouts.tcp, timeouts.tcp_fin, timeouts.udp
        ),
        Request::Batch { requests } => format!("batch of {} change(s)", requests.len()),
        other => format!("{other:?}"),
    }
}
