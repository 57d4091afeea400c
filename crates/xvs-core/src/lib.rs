//! The xvs model: everything about LVS virtual services that can be computed
//! without touching the kernel.
//!
//! * [`model`]: services, destinations, forwarding methods, timeouts, counters.
//! * [`api`]: the JSON control protocol spoken between `xvsadm` and `xvsd`.
//!
//! Everything here is pure and testable without root.

pub mod api;
pub mod model;
