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
    /// The idempotent POST whose answer is its result as JSON (see [`crate::idempotency::respond`]):
    /// `body` is what was sent (hashed here, so `run` may take it), `status` the answer's status
    /// for a result.
    pub fn respond<'a, T, Fut>(
        &'a self,
        req: &'a actix_web::HttpRequest,
        actor: &'a crate::ledger::Actor,
        body: &[u8],
        status: fn(&T) -> actix_web::http::StatusCode,
        run: impl FnOnce(Option<crate::idempotency::Answer<T>>) -> Fut + 'a,
    ) -> impl std::future::Future<Output = Result<actix_web::HttpResponse, AppError>> + 'a
    where
        T: serde::Serialize + 'a,
        Fut: std::future::Future<Output = Result<T, AppError>> + 'a,
    {
        use crate::idempotency::{Answering, RequestHash, Stored, respond};
        let hash = RequestHash::of(req, body);
        respond(
            self.keyed(req, actor.as_str()),
            hash,
            Answering::json(status),
            Stored::response,
            run,
        )
    }

    /// The idempotent POST of a JSON body: reads it (a JSON media type, at most
    /// `max_body_bytes`), then [`Self::respond`] with `run` given the body as `I`.
    pub async fn post_json<I, T, Fut>(
        &self,
        req: &actix_web::HttpRequest,
        actor: &crate::ledger::Actor,
        payload: actix_web::web::Payload,
        status: fn(&T) -> actix_web::http::StatusCode,
        run: impl FnOnce(I, Option<crate::idempotency::Answer<T>>) -> Fut,
    ) -> Result<actix_web::HttpResponse, AppError>
    where
        I: serde::de::DeserializeOwned,
        T: serde::Serialize,
        Fut: std::future::Future<Output = Result<T, AppError>>,
    {
        crate::body::json_media_type(req)?;
        let bytes = crate::body::read_limited(payload, self.settings.max_body_bytes).await?;
        let bytes: &[u8] = &bytes;
        self.respond(req, actor, bytes, status, |answer| async move {
            run(crate::body::json(bytes)?, answer).await
        })
        .await
    }

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
