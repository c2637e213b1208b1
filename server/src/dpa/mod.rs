//! Vendors and their data processing agreements (DESIGN §4, GDPR Art. 28 and Chapter V): who may
//! process what, under which contract, until when, and which sub-processors the controller
//! authorised. Coverage is a gate: `POST /v1/dpas/check` answers from each instance's in-memory
//! [`index::DpaIndex`], which follows the ledger, for now or any past moment.

pub mod api;
mod chain;
pub mod events;
pub mod import;
pub mod index;
pub mod input;
pub mod model;
pub mod projection;
pub mod schema;
pub mod service;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use crate::db::Pool;
use index::DpaIndex;

/// How often each instance looks for contract changes made elsewhere when nobody asks sooner.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// Keeps the coverage index current.
pub async fn follow(index: Arc<DpaIndex>, pool: Pool) {
    crate::ledger::follow::run(index, pool, FOLLOW_INTERVAL).await
}

/// Starts the domain for this instance: reads every vendor and DPA entry into the index.
pub async fn start(ctx: &crate::StartContext<'_>) -> Result<Arc<DpaIndex>, crate::StartError> {
    let index = Arc::new(DpaIndex::new());
    let i = index.clone();
    crate::db::blocking(ctx.pool, move |c| {
        crate::ledger::follow::step(&*i, c).map(drop)
    })
    .await
    .map_err(|e| {
        crate::StartError(format!(
            "cannot load the coverage index: {}",
            crate::AppErrorText(&e)
        ))
    })?;
    Ok(index)
}
