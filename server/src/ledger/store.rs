//! Ledger tables: queries take `&mut AnyConnection` and never open transactions of their own; the
//! caller (the sequencer, the checkpoint publisher) owns the transaction and the lock.

use accord_audit::hash::{self, Hash};
use accord_audit::merkle::Frontier;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::{
    ledger_checkpoints, ledger_entries, ledger_nodes, ledger_payloads, ledger_tree_state,
};
use crate::vocab::Seq;

/// Every 4th level of the tree is stored, so any perfect subtree root is at most 8 reads away.
pub const NODE_STRIDE: u32 = 4;

/// The one row every append locks.
#[derive(Debug, Clone)]
pub struct TreeState {
    pub origin: String,
    /// The `root` column as stored (derived from the frontier on every write; checked by verify).
    pub stored_root: String,
    pub frontier: Frontier,
    pub last_leaf: Hash,
    pub last_at: i64,
    pub checkpoint_size: u64,
}

impl TreeState {
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = ledger_tree_state)]
struct TreeStateRow {
    origin: String,
    size: i64,
    root: String,
    frontier: String,
    last_leaf: String,
    last_at: i64,
    checkpoint_size: i64,
}

fn corrupt(what: impl std::fmt::Display) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(
        format!("ledger tree state is damaged: {what}").into(),
    )
}

impl TryFrom<TreeStateRow> for TreeState {
    type Error = diesel::result::Error;
    fn try_from(r: TreeStateRow) -> Result<Self, Self::Error> {
        let size = u64::try_from(r.size).map_err(corrupt)?;
        Ok(TreeState {
            origin: r.origin,
            stored_root: r.root,
            frontier: Frontier::from_hex(size, &r.frontier).map_err(corrupt)?,
            last_leaf: hash::from_hex(&r.last_leaf).map_err(corrupt)?,
            last_at: r.last_at,
            checkpoint_size: u64::try_from(r.checkpoint_size).map_err(corrupt)?,
        })
    }
}

/// Reads the tree state without locking (for reads that only need a recent view).
pub fn read_tree_state(conn: &mut AnyConnection) -> QueryResult<Option<TreeState>> {
    let row = ledger_tree_state::table
        .filter(ledger_tree_state::id.eq(0))
        .select(TreeStateRow::as_select())
        .first::<TreeStateRow>(conn)
        .optional()?;
    row.map(TreeState::try_from).transpose()
}

/// Reads the tree state and holds the sequencing lock until the surrounding transaction ends:
/// PostgreSQL locks the row; SQLite takes the database write lock by writing first (a deferred
/// transaction that reads before it writes can fail with SQLITE_BUSY without waiting).
pub fn lock_tree_state(conn: &mut AnyConnection) -> QueryResult<Option<TreeState>> {
    let row = crate::per_backend!(
        conn,
        postgres
            | c
            | ledger_tree_state::table
                .filter(ledger_tree_state::id.eq(0))
                .select(TreeStateRow::as_select())
                .for_update()
                .first::<TreeStateRow>(c)
                .optional()?,
        sqlite | c | {
            diesel::update(ledger_tree_state::table.filter(ledger_tree_state::id.eq(0)))
                .set(ledger_tree_state::size.eq(ledger_tree_state::size))
                .execute(c)?;
            ledger_tree_state::table
                .filter(ledger_tree_state::id.eq(0))
                .select(TreeStateRow::as_select())
                .first::<TreeStateRow>(c)
                .optional()?
        },
    );
    row.map(TreeState::try_from).transpose()
}

/// Creates the tree-state row for an empty log unless one exists (two instances may race here).
pub fn create_tree_state_if_absent(
    conn: &mut AnyConnection,
    origin: &str,
    now: i64,
) -> QueryResult<()> {
    let values = (
        ledger_tree_state::id.eq(0),
        ledger_tree_state::origin.eq(origin),
        ledger_tree_state::size.eq(0i64),
        ledger_tree_state::root.eq(hash::to_hex(&accord_audit::hash::EMPTY_ROOT)),
        ledger_tree_state::frontier.eq(""),
        ledger_tree_state::last_leaf.eq(hash::to_hex(&[0u8; 32])),
        ledger_tree_state::last_at.eq(now),
        ledger_tree_state::checkpoint_size.eq(0i64),
    );
    crate::insert_or_ignore!(conn, ledger_tree_state::table, values)?;
    Ok(())
}

pub fn save_tree_state(conn: &mut AnyConnection, st: &TreeState) -> QueryResult<()> {
    diesel::update(ledger_tree_state::table.filter(ledger_tree_state::id.eq(0)))
        .set((
            ledger_tree_state::size.eq(to_i64(st.size())),
            ledger_tree_state::root.eq(hash::to_hex(&st.frontier.root())),
            ledger_tree_state::frontier.eq(st.frontier.to_hex()),
            ledger_tree_state::last_leaf.eq(hash::to_hex(&st.last_leaf)),
            ledger_tree_state::last_at.eq(st.last_at),
            ledger_tree_state::checkpoint_size.eq(to_i64(st.checkpoint_size)),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = ledger_entries, treat_none_as_null = true)]
pub struct NewEntry {
    pub seq: Seq,
    pub body: String,
    pub leaf_hash: String,
    pub at: i64,
    pub kind: String,
    pub entity: String,
    pub subject_ref: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = ledger_payloads, treat_none_as_null = true)]
pub struct NewPayload {
    pub seq: Seq,
    pub salt: Option<String>,
    pub payload: Option<String>,
    pub redacted_by: Option<Seq>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = ledger_nodes)]
pub struct NewNode {
    pub level: i32,
    pub idx: i64,
    pub hash: String,
}

/// Rows produced by appends, written in bulk.
#[derive(Debug, Default)]
pub struct PendingRows {
    pub entries: Vec<NewEntry>,
    pub payloads: Vec<NewPayload>,
    pub nodes: Vec<NewNode>,
}

impl PendingRows {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.nodes.is_empty()
    }
}

/// Writes the staged rows (as [`crate::insert_all!`] does best on each backend) and empties
/// `rows`.
pub fn insert_rows(conn: &mut AnyConnection, rows: &mut PendingRows) -> QueryResult<()> {
    crate::insert_all!(&mut *conn, ledger_entries::table, &rows.entries)?;
    crate::insert_all!(&mut *conn, ledger_payloads::table, &rows.payloads)?;
    crate::insert_all!(&mut *conn, ledger_nodes::table, &rows.nodes)?;
    rows.entries.clear();
    rows.payloads.clear();
    rows.nodes.clear();
    Ok(())
}

/// A stored checkpoint.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = ledger_checkpoints)]
pub struct CheckpointRow {
    pub size: Seq,
    pub root: String,
    pub note: String,
    pub published_at: i64,
}

pub fn insert_checkpoint(conn: &mut AnyConnection, row: &CheckpointRow) -> QueryResult<()> {
    diesel::insert_into(ledger_checkpoints::table)
        .values((
            ledger_checkpoints::size.eq(row.size),
            ledger_checkpoints::root.eq(&row.root),
            ledger_checkpoints::note.eq(&row.note),
            ledger_checkpoints::published_at.eq(row.published_at),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn latest_checkpoint(conn: &mut AnyConnection) -> QueryResult<Option<CheckpointRow>> {
    ledger_checkpoints::table
        .order(ledger_checkpoints::size.desc())
        .select(CheckpointRow::as_select())
        .first(conn)
        .optional()
}

/// Checkpoints with `after < size <= upto`, smallest first.
pub fn checkpoints_page(
    conn: &mut AnyConnection,
    after: Option<u64>,
    upto: u64,
    limit: i64,
) -> QueryResult<Vec<CheckpointRow>> {
    let mut q = ledger_checkpoints::table
        .filter(ledger_checkpoints::size.le(to_i64(upto)))
        .order(ledger_checkpoints::size.asc())
        .select(CheckpointRow::as_select())
        .limit(limit)
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(ledger_checkpoints::size.gt(to_i64(a)));
    }
    q.load(conn)
}

/// An entry with its payload row (absent if someone deleted it behind Accord's back).
#[derive(Debug, Clone)]
pub struct EntryRow {
    pub seq: Seq,
    pub body: String,
    pub leaf_hash: String,
    pub columns: EntryColumns,
    pub salt: Option<String>,
    pub payload: Option<String>,
    pub redacted_by: Option<Seq>,
    pub has_payload_row: bool,
}

/// The entry columns that repeat parts of the body for queries; verification checks they agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryColumns {
    pub at: i64,
    pub kind: String,
    pub entity: String,
    pub subject_ref: Option<String>,
    pub request_id: Option<String>,
}

type EntryTuple = (
    (Seq, String, String),
    (i64, String, String, Option<String>, Option<String>),
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<Seq>,
);

/// Entries with `from <= seq < until`, in seq order, at most `limit`.
pub fn entries_page(
    conn: &mut AnyConnection,
    from: u64,
    until: u64,
    limit: i64,
) -> QueryResult<Vec<EntryRow>> {
    let rows: Vec<EntryTuple> = ledger_entries::table
        .left_join(ledger_payloads::table)
        .filter(ledger_entries::seq.ge(to_i64(from)))
        .filter(ledger_entries::seq.lt(to_i64(until)))
        .order(ledger_entries::seq.asc())
        .limit(limit)
        .select((
            (
                ledger_entries::seq,
                ledger_entries::body,
                ledger_entries::leaf_hash,
            ),
            (
                ledger_entries::at,
                ledger_entries::kind,
                ledger_entries::entity,
                ledger_entries::subject_ref,
                ledger_entries::request_id,
            ),
            ledger_payloads::seq.nullable(),
            ledger_payloads::salt.nullable(),
            ledger_payloads::payload.nullable(),
            ledger_payloads::redacted_by.nullable(),
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |((seq, body, leaf_hash), cols, pseq, salt, payload, redacted_by)| EntryRow {
                seq,
                body,
                leaf_hash,
                columns: EntryColumns {
                    at: cols.0,
                    kind: cols.1,
                    entity: cols.2,
                    subject_ref: cols.3,
                    request_id: cols.4,
                },
                salt,
                payload,
                redacted_by,
                has_payload_row: pseq.is_some(),
            },
        )
        .collect())
}

/// Leaf hashes for `first <= seq < first + count`, in order.
pub fn leaf_hashes(conn: &mut AnyConnection, first: u64, count: u64) -> QueryResult<Vec<String>> {
    ledger_entries::table
        .filter(ledger_entries::seq.ge(to_i64(first)))
        .filter(ledger_entries::seq.lt(to_i64(first.saturating_add(count))))
        .order(ledger_entries::seq.asc())
        .select(ledger_entries::leaf_hash)
        .load(conn)
}

/// Stored node hashes at `level` for `first <= idx < first + count`, in order.
pub fn node_hashes(
    conn: &mut AnyConnection,
    level: u32,
    first: u64,
    count: u64,
) -> QueryResult<Vec<String>> {
    ledger_nodes::table
        .filter(ledger_nodes::level.eq(level as i32))
        .filter(ledger_nodes::idx.ge(to_i64(first)))
        .filter(ledger_nodes::idx.lt(to_i64(first.saturating_add(count))))
        .order(ledger_nodes::idx.asc())
        .select(ledger_nodes::hash)
        .load(conn)
}

/// Stored nodes at `level` with `idx >= from`, in order, at most `limit`.
pub fn nodes_page(
    conn: &mut AnyConnection,
    level: u32,
    from: u64,
    limit: i64,
) -> QueryResult<Vec<(i64, String)>> {
    ledger_nodes::table
        .filter(ledger_nodes::level.eq(level as i32))
        .filter(ledger_nodes::idx.ge(to_i64(from)))
        .order(ledger_nodes::idx.asc())
        .limit(limit)
        .select((ledger_nodes::idx, ledger_nodes::hash))
        .load(conn)
}

pub fn count_nodes(conn: &mut AnyConnection) -> QueryResult<i64> {
    ledger_nodes::table.count().get_result(conn)
}

/// Entries with `seq >= from` (there should be none at or beyond the tree size).
pub fn count_entries_from(conn: &mut AnyConnection, from: u64) -> QueryResult<i64> {
    ledger_entries::table
        .filter(ledger_entries::seq.ge(to_i64(from)))
        .count()
        .get_result(conn)
}

/// The largest checkpoint size stored, if any.
pub fn max_checkpoint_size(conn: &mut AnyConnection) -> QueryResult<Option<Seq>> {
    ledger_checkpoints::table
        .select(diesel::dsl::max(ledger_checkpoints::size))
        .first(conn)
}

/// An entry a domain follows: seq, time, kind and its open payload (`None` once redacted).
#[derive(Debug, Clone)]
pub struct FollowedEntry {
    pub seq: Seq,
    pub at: i64,
    pub kind: String,
    pub payload: Option<String>,
}

/// Entries with `from <= seq < until` whose kind is one of `kinds`, with their payloads, in seq
/// order, at most `limit`.
pub fn entries_of_kinds(
    conn: &mut AnyConnection,
    from: u64,
    until: u64,
    kinds: &[&str],
    limit: i64,
) -> QueryResult<Vec<FollowedEntry>> {
    let rows: Vec<(Seq, i64, String, Option<String>)> = ledger_entries::table
        .left_join(ledger_payloads::table)
        .filter(ledger_entries::seq.ge(to_i64(from)))
        .filter(ledger_entries::seq.lt(to_i64(until)))
        .filter(ledger_entries::kind.eq_any(kinds))
        .order(ledger_entries::seq.asc())
        .limit(limit)
        .select((
            ledger_entries::seq,
            ledger_entries::at,
            ledger_entries::kind,
            ledger_payloads::payload.nullable(),
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(seq, at, kind, payload)| FollowedEntry {
            seq,
            at,
            kind,
            payload,
        })
        .collect())
}

/// One entry as stored: its leaf body and hash, time and kind, and its payload (with the salt of
/// its commitment), or the seq of the erasure that redacted it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct StoredEntry {
    pub body: String,
    pub leaf_hash: String,
    pub at: i64,
    pub kind: String,
    pub salt: Option<String>,
    pub payload: Option<String>,
    pub redacted_by: Option<Seq>,
}

/// The entry `seq`, if the ledger holds it.
pub fn entry(conn: &mut AnyConnection, seq: u64) -> QueryResult<Option<StoredEntry>> {
    ledger_entries::table
        .left_join(ledger_payloads::table)
        .filter(ledger_entries::seq.eq(to_i64(seq)))
        .select((
            ledger_entries::body,
            ledger_entries::leaf_hash,
            ledger_entries::at,
            ledger_entries::kind,
            ledger_payloads::salt.nullable(),
            ledger_payloads::payload.nullable(),
            ledger_payloads::redacted_by.nullable(),
        ))
        .first::<StoredEntry>(conn)
        .optional()
}

/// An entry's place in the tree: its seq, leaf hash and time.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct Leaf {
    pub seq: Seq,
    pub leaf_hash: String,
    pub at: i64,
}

/// The [`Leaf`] of each entry in `seqs` the ledger holds, in seq order.
pub fn leaves(conn: &mut AnyConnection, seqs: &[Seq]) -> QueryResult<Vec<Leaf>> {
    let mut out = Vec::with_capacity(seqs.len());
    for chunk in seqs.chunks(1000) {
        out.extend(
            ledger_entries::table
                .filter(ledger_entries::seq.eq_any(chunk))
                .order(ledger_entries::seq.asc())
                .select((
                    ledger_entries::seq,
                    ledger_entries::leaf_hash,
                    ledger_entries::at,
                ))
                .load::<Leaf>(conn)?,
        );
    }
    out.sort_by_key(|l| l.seq);
    Ok(out)
}

/// Seqs of the entries about `subject_ref` whose payloads are still open, below `before`,
/// erasure entries excepted (they hold no personal data, and their own lists must stay readable).
pub fn erasable_seqs(
    conn: &mut AnyConnection,
    subject_ref: &str,
    before: Seq,
) -> QueryResult<Vec<Seq>> {
    ledger_entries::table
        .inner_join(ledger_payloads::table)
        .filter(ledger_entries::subject_ref.eq(subject_ref))
        .filter(ledger_entries::seq.lt(before))
        .filter(ledger_entries::kind.ne(accord_audit::payload::ERASURE_KIND))
        .filter(ledger_payloads::redacted_by.is_null())
        .order(ledger_entries::seq.asc())
        .select(ledger_entries::seq)
        .load(conn)
}

/// Removes the salt and payload of each entry in `seqs`, naming the erasure entry `by`.
pub fn redact_payloads(conn: &mut AnyConnection, seqs: &[Seq], by: Seq) -> QueryResult<usize> {
    let mut n = 0;
    for chunk in seqs.chunks(1000) {
        n += diesel::update(ledger_payloads::table.filter(ledger_payloads::seq.eq_any(chunk)))
            .set((
                ledger_payloads::salt.eq(None::<String>),
                ledger_payloads::payload.eq(None::<String>),
                ledger_payloads::redacted_by.eq(Some(by)),
            ))
            .execute(conn)?;
    }
    Ok(n)
}
