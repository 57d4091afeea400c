//! xvsd, the xvs daemon: owns the virtual server table, validates every
//! change, drives the XDP data plane and serves the control API.

pub mod daemon;
pub mod server;
pub mod table;
