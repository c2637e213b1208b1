//! What every request handler shares.

use std::sync::{Arc, OnceLock};

use crate::auth::access::AccessState;
use crate::authz::RouteSpec;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::db::{AnyConnection, Pool};
use crate::error::AppError;
use crate::ledger::Ledger;

pub struct AppState {
    pub pool: Pool,
    pub ledger: Ledger,
    pub clock: SharedClock,
    pub settings: Arc<Settings>,
    /// This process's id, as recorded in its `server.started` entry.
    pub instance: String,
    pub access: Arc<AccessState>,
    /// This instance's consent index, following the ledger.
    pub consent: Arc<crate::consent::index::ConsentIndex>,
    /// This instance's coverage index (vendors and DPAs).
    pub dpa: Arc<crate::dpa::index::DpaIndex>,
    /// Every route registered, with its declared access (filled when the routes are built).
    pub routes: OnceLock<Vec<RouteSpec>>,
    /// The OpenAPI document of those routes (built with them).
    pub openapi: OnceLock<serde_json::Value>,
}

impl AppState {
    /// A request that may carry an `Idempotency-Key`, as [`crate::idempotency::respond`] takes it.
    pub fn keyed<'a>(
        &'a self,
        req: &'a actix_web::HttpRequest,
        caller: &'a str,
    ) -> crate::idempotency::Keyed<'a> {
        crate::idempotency::Keyed {
            pool: &self.pool,
            keys: self.ledger.writer().keys(),
            now: self.clock.now(),
            req,
            caller,
        }
    }

    /// Runs blocking database work on the blocking pool with a pooled connection.
    pub async fn db<T, F>(&self, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T, AppError> + Send + 'static,
    {
        crate::db::blocking(&self.pool, f).await
    }
}
