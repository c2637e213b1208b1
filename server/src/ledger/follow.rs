//! Following the ledger: how an instance keeps what it holds in memory (the consent index, the
//! access state) current with entries any instance wrote. A [`Follower`] names the kinds it
//! applies; [`step`] hands it every new entry of those kinds in seq order, a page at a time, and
//! [`run`] steps it for as long as the server runs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::read::{self, FollowedEntry};
use crate::db::{AnyConnection, Pool};
use crate::error::AppError;

/// Entries read per page.
const PAGE: i64 = 5_000;

/// Something kept current from the ledger.
pub trait Follower: Send + Sync + 'static {
    /// What it is, for the log.
    const NAME: &'static str;

    /// The entry kinds it applies.
    fn kinds(&self) -> &'static [&'static str];

    /// Every entry below this seq has been applied.
    fn applied(&self) -> u64;

    /// Applies entries of its kinds, in seq order (payload `None` where an erasure redacted it).
    /// Runs on a blocking thread.
    fn apply(&self, page: &[FollowedEntry]) -> Result<(), AppError>;

    /// Every entry below `seq` is now applied (after each page, and once the ledger's size is
    /// reached).
    fn advanced(&self, seq: u64);

    /// Waits for the next step: `interval`, or sooner if the follower is asked to look.
    fn wait(&self, interval: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(interval)
    }

    /// After a step that applied `applied` entries: what must not run on a blocking thread.
    fn settle(&self, _pool: &Pool, _applied: usize) -> impl Future<Output = Result<(), AppError>> {
        async { Ok(()) }
    }
}

/// Applies every entry of the follower's kinds from its [`Follower::applied`] up to the ledger's
/// size (blocking). Returns how many it applied.
pub fn step<F: Follower>(f: &F, c: &mut AnyConnection) -> Result<usize, AppError> {
    let until = read::size(c)?;
    let mut from = f.applied();
    let mut applied = 0;
    while from < until {
        let page = read::follow(c, f.kinds(), from, until, PAGE)?;
        f.apply(&page)?;
        applied += page.len();
        from = match page.last() {
            Some(last) if page.len() == PAGE as usize => last.seq.get() + 1,
            _ => until,
        };
        f.advanced(from);
    }
    Ok(applied)
}

/// Steps the follower whenever it is asked and at least every `interval`, until the server stops.
pub async fn run<F: Follower>(f: Arc<F>, pool: Pool, interval: Duration) {
    loop {
        f.wait(interval).await;
        let g = f.clone();
        let stepped = crate::db::blocking(&pool, move |c| step(&*g, c)).await;
        let settled = match stepped {
            Ok(applied) => f.settle(&pool, applied).await,
            Err(e) => Err(e),
        };
        if let Err(e) = settled {
            tracing::warn!(error = %e, follower = F::NAME, "cannot follow the ledger");
        }
    }
}
