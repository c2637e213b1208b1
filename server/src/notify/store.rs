//! The outbox table, written only by projections (inside the ledger append, or by replay). How
//! sending each group goes is in [`super::lease`].

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::outbox;
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
