//! Leases on work that one instance of several must do at a time (an outbox group to send, a
//! webhook subscription to serve), with the failures so far and when the next try is due. Kept
//! beside the ledger: how the work goes is not a fact the ledger records, only its outcome.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::leases;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = leases, treat_none_as_null = true)]
pub struct Lease {
    /// What the work is: an outbox group, or `webhook:<id>`.
    pub key: String,
    /// Tries that failed since the last success.
    pub failures: i32,
    /// The next try is not before this (microseconds since the epoch).
    pub next_at: i64,
    pub owner: Option<String>,
    pub until: Option<i64>,
    pub last_error: Option<String>,
}

/// Takes `key` for `owner` until `until`, if no one holds it and its next try is due: one
/// conditional update, so of several instances at most one gets it. True when taken.
pub fn claim(
    c: &mut AnyConnection,
    key: &str,
    owner: &str,
    now: i64,
    until: i64,
) -> QueryResult<bool> {
    crate::insert_or_ignore!(
        c,
        leases::table,
        &Lease {
            key: key.to_string(),
            failures: 0,
            next_at: 0,
            owner: None,
            until: None,
            last_error: None,
        }
    )?;
    let n = diesel::update(
        leases::table
            .filter(leases::key.eq(key))
            .filter(leases::next_at.le(now))
            .filter(leases::until.is_null().or(leases::until.lt(now))),
    )
    .set((leases::owner.eq(Some(owner)), leases::until.eq(Some(until))))
    .execute(c)?;
    Ok(n == 1)
}

/// A try that failed: counted, the next one not before `next_at`, the work let go.
pub fn failed(
    c: &mut AnyConnection,
    key: &str,
    owner: &str,
    next_at: i64,
    error: &str,
) -> QueryResult<usize> {
    diesel::update(
        leases::table
            .filter(leases::key.eq(key))
            .filter(leases::owner.eq(owner)),
    )
    .set((
        leases::failures.eq(leases::failures + 1),
        leases::next_at.eq(next_at),
        leases::owner.eq(None::<String>),
        leases::until.eq(None::<i64>),
        leases::last_error.eq(Some(error)),
    ))
    .execute(c)
}

/// A try that went through: the failures are forgotten (the work stays held).
pub fn succeeded(c: &mut AnyConnection, key: &str, owner: &str) -> QueryResult<usize> {
    diesel::update(
        leases::table
            .filter(leases::key.eq(key))
            .filter(leases::owner.eq(owner))
            .filter(leases::failures.gt(0)),
    )
    .set((
        leases::failures.eq(0),
        leases::last_error.eq(None::<String>),
    ))
    .execute(c)
}

/// Lets go of `key` (done, or found moot) so its lease does not linger.
pub fn release(c: &mut AnyConnection, key: &str, owner: &str) -> QueryResult<usize> {
    diesel::update(
        leases::table
            .filter(leases::key.eq(key))
            .filter(leases::owner.eq(owner)),
    )
    .set((
        leases::owner.eq(None::<String>),
        leases::until.eq(None::<i64>),
    ))
    .execute(c)
}

/// Lets go of everything `owner` holds (an instance stopping: others need not wait for its leases
/// to run out).
pub fn release_all(c: &mut AnyConnection, owner: &str) -> QueryResult<usize> {
    diesel::update(leases::table.filter(leases::owner.eq(owner)))
        .set((
            leases::owner.eq(None::<String>),
            leases::until.eq(None::<i64>),
        ))
        .execute(c)
}

/// The leases of `keys` that exist.
pub fn of(c: &mut AnyConnection, keys: &[String]) -> QueryResult<Vec<Lease>> {
    leases::table
        .filter(leases::key.eq_any(keys))
        .select(Lease::as_select())
        .load(c)
}

/// The wait before the next try after `failures` failed ones: `base` doubling, at most `max`.
pub fn backoff(
    base: std::time::Duration,
    max: std::time::Duration,
    failures: u32,
) -> std::time::Duration {
    base.checked_mul(1u32 << failures.min(20))
        .unwrap_or(max)
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_wait_doubles_up_to_the_maximum() {
        let (b, m) = (Duration::from_secs(30), Duration::from_secs(3600));
        let waits: Vec<u64> = (0..9).map(|f| backoff(b, m, f).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(backoff(b, m, u32::MAX), m);
    }
}
