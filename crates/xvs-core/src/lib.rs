//! The xvs model: everything about LVS virtual services that can be computed
//! without touching the kernel.
//!
//! * [`model`]: services, destinations, forwarding methods, timeouts, counters.
//! * [`api`]: the JSON control protocol spoken between `xvsadm` and `xvsd`.
//! * [`sched`]: scheduler names, the rr/wrr rings the data plane cycles, the
//!   dh/sh/mh tables, and reference models of all 14 IPVS schedulers.
//! * [`estimator`]: the IPVS 2-second EWMA rate estimator.
//! * [`ipvsadm`]: the ipvsadm 1.31 command-line grammar and `-R` input.
//! * [`format`]: ipvsadm 1.31's listing and save output, byte for byte.
//! * [`json`]: `xvsadm --json`'s listing documents and their JSON Schema.
//! * [`fwmark`]: the mark classifier that stands in for iptables MARK rules.
//! * [`names`]: host/service names from `/etc/hosts` and `/etc/services`.
//! * [`sync`]: the kernel IPVS connection-sync protocol (v1 codec, v0 decoding).
//!
//! Everything here is pure and testable without root.

pub mod api;
pub mod estimator;
pub mod format;
pub mod fwmark;
pub mod ipvsadm;
pub mod json;
pub mod model;
pub mod names;
pub mod sched;
pub mod sync;
