//! xvsd, the xvs daemon: owns the virtual server table, validates every
//! change, drives the BPF data plane, serves the control API and, with
//! `--config`, runs the LVS half of keepalived (configuration, health
//! checks, quorum and sorry servers, reload).
//!
//! Modules, each using only those listed before it (docs/design.md has
//! the graph): [`plane`] (what a data plane does, its error), [`table`]
//! (the model and its push to a plane), `rates`, `describe`,
//! [`report`] (listings, info, the health and reload answers),
//! [`history`] (recent rates), [`metrics`], [`web`] (the HTTP listener:
//! metrics, the status page, its write actions), [`config`] and [`reconcile`] (keepalived.conf into
//! wanted tables), [`health`], [`vrrp_follow`], [`director`] (what the
//! keepalived half asks of the daemon), `lvs_sync`, [`lvs`]
//! (keepalived state), [`lvs_report`], [`daemon`] (request dispatch),
//! [`access`] (who may do what on the control socket), [`server`] (the
//! socket loop), [`sync`] and [`sync_io`] (connection
//! synchronisation over a `Dataplane`).

pub mod access;
pub mod config;
pub mod daemon;
mod describe;
pub mod director;
pub mod health;
pub mod history;
pub mod lvs;
pub mod lvs_report;
mod lvs_sync;
pub mod metrics;
pub mod owned;
pub mod plane;
mod rates;
pub mod reconcile;
pub mod report;
pub mod server;
pub mod sync;
pub mod sync_io;
pub mod table;
#[cfg(test)]
mod testing;
pub mod vrrp_follow;
pub mod web;
