//! The virtual server table as xvsd owns it: validation of every change,
//! id allocation, scheduler rings and tables ([`model`]), and pushing the
//! result to a [`Backend`](crate::plane::Backend) ([`push`]).
//!
//! A request is first applied to a copy of the model; only when every part of
//! it is valid is the copy synced to the backend and kept. So a refused
//! request, or a refused batch, changes nothing.

pub mod model;
pub mod push;

pub use model::{DestSlot, IdPool, Limits, Model, SvcSlot, Trashed, TRASH_PERIOD_SECS};
pub use push::{restore, ring, sched_of, sync, zero};

#[cfg(test)]
mod tests;
