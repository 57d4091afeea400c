//! xvsd, the xvs daemon: owns the virtual server table, validates every
//! change, drives the BPF data plane, serves the control API and, with
//! `--config`, runs the LVS half of keepalived (configuration, health
//! checks, quorum and sorry servers, reload).

pub mod config;
pub mod daemon;
pub mod health;
pub mod lvs;
mod lvs_sync;
pub mod metrics;
pub mod reconcile;
pub mod server;
pub mod sync;
pub mod sync_io;
pub mod table;
pub mod vrrp_follow;
