//! Consent (DESIGN §4): purposes and notices, consent records with their evidence, checks for one
//! person or a whole send list — now or as of any past moment — receipts, and erasure.
//!
//! Writes go through the ledger like every change; checks are answered from each instance's
//! in-memory [`index::ConsentIndex`], which follows the ledger.

pub mod api;
pub mod definitions;
pub mod events;
pub mod import;
pub mod index;
pub mod input;
pub mod model;
pub mod projection;
pub mod receipt;
pub mod service;
pub mod store;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use crate::db::Pool;
use index::ConsentIndex;

/// How often each instance looks for consent changes made elsewhere when nobody asks sooner.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// The file in the policies directory whose purposes and notices are loaded at start.
pub const DEFINITIONS_FILE: &str = "purposes.toml";

/// Keeps the index current: applies new ledger entries whenever a write or a `min_seq` reader
/// asks, and at least every [`FOLLOW_INTERVAL`].
pub async fn follow(index: Arc<ConsentIndex>, pool: Pool) {
    crate::ledger::follow::run(index, pool, FOLLOW_INTERVAL).await
}

/// Of `keys`, those that name no registered purpose: for other domains' guards, inside their
/// writes (a DPA covers purposes; a campaign uses them).
pub fn unregistered_purposes(
    c: &mut crate::db::AnyConnection,
    keys: &[String],
) -> diesel::QueryResult<Vec<String>> {
    let mut out = Vec::new();
    for k in keys {
        if store::latest_purpose(c, k)?.is_none() {
            out.push(k.clone());
        }
    }
    Ok(out)
}

/// Starts consent for this instance: records the purposes and notices of the definitions file
/// (those unchanged record nothing), then loads the index from the database.
pub async fn start(ctx: &crate::StartContext<'_>) -> Result<Arc<ConsentIndex>, crate::StartError> {
    let files = ctx.files;
    if let Some(defs) = &files.definitions {
        let loaded = crate::load_definitions(
            ctx.ledger,
            ctx.pool,
            ctx.clock,
            crate::ledger::Actor::system(),
            defs,
        )
        .await
        .map_err(|e| {
            crate::StartError(format!(
                "cannot load {}: {}",
                files.definitions_name(),
                crate::AppErrorText(&e)
            ))
        })?;
        tracing::info!(
            source = %files.source,
            purposes_changed = loaded.purposes_changed,
            notices_published = loaded.notices_published,
            unchanged = loaded.unchanged,
            "purposes and notices loaded"
        );
    }
    let index = Arc::new(ConsentIndex::new());
    let (i, p) = (index.clone(), ctx.pool.clone());
    actix_web::web::block(move || -> Result<u64, crate::error::AppError> {
        let mut c = p.get()?;
        i.load(&mut c)
    })
    .await
    .map_err(|e| crate::StartError(format!("cannot load the consent index: {e}")))?
    .map_err(|e| crate::StartError(format!("cannot load the consent index: {e}")))?;
    Ok(index)
}
