//! What the keepalived half ([`crate::lvs`]) asks of the daemon that owns
//! the table: read the model, commit changes, start and stop sync
//! daemons. The daemon implements it; keeping it narrow keeps the
//! keepalived half from depending on the daemon.

use xvs_core::api::{ApiError, Request, Response};
use xvs_core::model::SyncDaemon;

use crate::owned::Owned;
use crate::table::Model;

/// The table's owner as the keepalived half sees it.
pub trait Director {
    /// The table as it is.
    fn model(&self) -> &Model;
    /// Applies `req` atomically (validated on a copy of the model, then
    /// synced to the plane, rolled back if the plane refuses) and, when
    /// `owned` is given, makes it the configuration's share of the table
    /// (its services and mark rules, [`Owned::apply`]).
    fn commit(&mut self, req: &Request, owned: Option<Owned>) -> Result<(), ApiError>;
    /// Answers one request as the control API does (sync daemons are
    /// started and stopped this way).
    fn handle(&mut self, req: Request) -> Response;
    /// The running sync daemons (defaults filled in), the master first.
    fn sync_daemons(&self) -> &[SyncDaemon];
}
