//! The outbox tables. `outbox` is written only by projections (inside the ledger append, or by
//! replay); `outbox_attempts` by the sender, beside the ledger: how sending goes is not a fact the
//! ledger keeps, only that a message went out.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::{outbox, outbox_attempts};
use crate::vocab::Seq;

pub const PENDING: &str = "pending";
pub const SENT: &str = "sent";
pub const CANCELLED: &str = "cancelled";

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = outbox, treat_none_as_null = true)]
pub struct OutboxRow {
    pub id: String,
    pub channel: String,
    pub about: String,
    pub grp: String,
    pub due_at: i64,
    pub recipients: String,
    pub subject: String,
    pub body: String,
    pub link: Option<String>,
    pub seq: Seq,
    pub state: String,
    pub done_seq: Option<Seq>,
    pub done_at: Option<i64>,
    pub sent_to: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = outbox_attempts, treat_none_as_null = true)]
pub struct AttemptRow {
    pub grp: String,
    pub attempts: i32,
    pub next_at: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
}

pub fn insert(c: &mut AnyConnection, row: &OutboxRow) -> QueryResult<()> {
    diesel::insert_into(outbox::table)
        .values(row)
        .execute(c)
        .map(drop)
}

/// Cancels the pending items about `about`; returns how many.
pub fn cancel_about(c: &mut AnyConnection, about: &str, seq: Seq, at: i64) -> QueryResult<usize> {
    diesel::update(
        outbox::table
            .filter(outbox::about.eq(about))
            .filter(outbox::state.eq(PENDING)),
    )
    .set((
        outbox::state.eq(CANCELLED),
        outbox::done_seq.eq(Some(seq)),
        outbox::done_at.eq(Some(at)),
    ))
    .execute(c)
}

/// Marks pending items sent; returns how many were pending.
pub fn mark_sent(
    c: &mut AnyConnection,
    ids: &[String],
    sent_to: &str,
    seq: Seq,
    at: i64,
) -> QueryResult<usize> {
    diesel::update(
        outbox::table
            .filter(outbox::id.eq_any(ids))
            .filter(outbox::state.eq(PENDING)),
    )
    .set((
        outbox::state.eq(SENT),
        outbox::done_seq.eq(Some(seq)),
        outbox::done_at.eq(Some(at)),
        outbox::sent_to.eq(Some(sent_to)),
    ))
    .execute(c)
}

pub fn all(c: &mut AnyConnection) -> QueryResult<Vec<OutboxRow>> {
    outbox::table
        .order(outbox::id.asc())
        .select(OutboxRow::as_select())
        .load(c)
}

/// Items in `state` (all of them without one), soonest due first, at most `limit`.
pub fn listed(
    c: &mut AnyConnection,
    state: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<OutboxRow>> {
    let mut q = outbox::table
        .order((outbox::due_at.asc(), outbox::id.asc()))
        .select(OutboxRow::as_select())
        .limit(limit)
        .into_boxed();
    if let Some(s) = state {
        q = q.filter(outbox::state.eq(s.to_string()));
    }
    q.load(c)
}

/// The items about `about`, in the order they fall due.
pub fn about(c: &mut AnyConnection, about: &str) -> QueryResult<Vec<OutboxRow>> {
    outbox::table
        .filter(outbox::about.eq(about))
        .order((outbox::due_at.asc(), outbox::id.asc()))
        .select(OutboxRow::as_select())
        .load(c)
}

/// Pending items of `channel` due by `now`, soonest first, at most `limit`.
pub fn due(
    c: &mut AnyConnection,
    channel: &str,
    now: i64,
    limit: i64,
) -> QueryResult<Vec<OutboxRow>> {
    outbox::table
        .filter(outbox::channel.eq(channel))
        .filter(outbox::state.eq(PENDING))
        .filter(outbox::due_at.le(now))
        .order((outbox::due_at.asc(), outbox::id.asc()))
        .limit(limit)
        .select(OutboxRow::as_select())
        .load(c)
}

/// The pending items of one group due by `now`.
pub fn due_in_group(c: &mut AnyConnection, grp: &str, now: i64) -> QueryResult<Vec<OutboxRow>> {
    outbox::table
        .filter(outbox::grp.eq(grp))
        .filter(outbox::state.eq(PENDING))
        .filter(outbox::due_at.le(now))
        .order((outbox::due_at.asc(), outbox::id.asc()))
        .select(OutboxRow::as_select())
        .load(c)
}

pub fn attempts_of(c: &mut AnyConnection, groups: &[String]) -> QueryResult<Vec<AttemptRow>> {
    outbox_attempts::table
        .filter(outbox_attempts::grp.eq_any(groups))
        .select(AttemptRow::as_select())
        .load(c)
}

/// Takes a group (its items go out as one mail) for `owner` until `until`, if no one holds it and
/// its next try is due: one conditional update, so of several instances at most one gets it.
/// True when taken.
pub fn claim(
    c: &mut AnyConnection,
    grp: &str,
    owner: &str,
    now: i64,
    until: i64,
) -> QueryResult<bool> {
    crate::insert_or_ignore!(
        c,
        outbox_attempts::table,
        &AttemptRow {
            grp: grp.to_string(),
            attempts: 0,
            next_at: 0,
            lease_owner: None,
            lease_until: None,
            last_error: None,
        }
    )?;
    let n = diesel::update(
        outbox_attempts::table
            .filter(outbox_attempts::grp.eq(grp))
            .filter(outbox_attempts::next_at.le(now))
            .filter(
                outbox_attempts::lease_until
                    .is_null()
                    .or(outbox_attempts::lease_until.lt(now)),
            ),
    )
    .set((
        outbox_attempts::lease_owner.eq(Some(owner)),
        outbox_attempts::lease_until.eq(Some(until)),
    ))
    .execute(c)?;
    Ok(n == 1)
}

/// A try that failed: counted, the next one not before `next_at`, the group let go.
pub fn failed(
    c: &mut AnyConnection,
    grp: &str,
    owner: &str,
    next_at: i64,
    error: &str,
) -> QueryResult<usize> {
    diesel::update(
        outbox_attempts::table
            .filter(outbox_attempts::grp.eq(grp))
            .filter(outbox_attempts::lease_owner.eq(owner)),
    )
    .set((
        outbox_attempts::attempts.eq(outbox_attempts::attempts + 1),
        outbox_attempts::next_at.eq(next_at),
        outbox_attempts::lease_owner.eq(None::<String>),
        outbox_attempts::lease_until.eq(None::<i64>),
        outbox_attempts::last_error.eq(Some(error)),
    ))
    .execute(c)
}

/// Lets go of a group (sent, or found moot) so its lease does not linger.
pub fn release(c: &mut AnyConnection, grp: &str, owner: &str) -> QueryResult<usize> {
    diesel::update(
        outbox_attempts::table
            .filter(outbox_attempts::grp.eq(grp))
            .filter(outbox_attempts::lease_owner.eq(owner)),
    )
    .set((
        outbox_attempts::lease_owner.eq(None::<String>),
        outbox_attempts::lease_until.eq(None::<i64>),
    ))
    .execute(c)
}

/// Lets go of every group `owner` holds (an instance stopping: others need not wait for its leases
/// to run out).
pub fn release_all(c: &mut AnyConnection, owner: &str) -> QueryResult<usize> {
    diesel::update(outbox_attempts::table.filter(outbox_attempts::lease_owner.eq(owner)))
        .set((
            outbox_attempts::lease_owner.eq(None::<String>),
            outbox_attempts::lease_until.eq(None::<i64>),
        ))
        .execute(c)
}
