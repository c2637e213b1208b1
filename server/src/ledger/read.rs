//! What domains read of the ledger. A domain never queries the ledger's tables itself: it asks
//! here (its size, an entry, the latest checkpoint, the entries of the kinds it follows, a
//! subject's open entries).

use diesel::QueryResult;

use super::store;
use crate::db::AnyConnection;
use crate::vocab::Seq;

pub use store::{CheckpointRow, FollowedEntry, Leaf, StoredEntry};

/// The number of entries (0 before the ledger is initialised).
pub fn size(c: &mut AnyConnection) -> QueryResult<u64> {
    Ok(store::read_tree_state(c)?.map(|s| s.size()).unwrap_or(0))
}

/// The entry `seq`, if the ledger holds it.
pub fn entry(c: &mut AnyConnection, seq: u64) -> QueryResult<Option<StoredEntry>> {
    store::entry(c, seq)
}

/// The latest signed checkpoint, if one was published.
pub fn latest_checkpoint(c: &mut AnyConnection) -> QueryResult<Option<CheckpointRow>> {
    store::latest_checkpoint(c)
}

/// At most `limit` entries of the given kinds with seqs in `from..until`, in seq order, with
/// their payloads (`None` where redacted): what a follower applies.
pub fn follow(
    c: &mut AnyConnection,
    kinds: &[&str],
    from: u64,
    until: u64,
    limit: i64,
) -> QueryResult<Vec<FollowedEntry>> {
    store::entries_of_kinds(c, from, until, kinds, limit)
}

/// The leaf hash and time of each entry in `seqs` that the ledger holds, in seq order.
pub fn leaves(c: &mut AnyConnection, seqs: &[Seq]) -> QueryResult<Vec<Leaf>> {
    store::leaves(c, seqs)
}

/// The seqs of the entries about a subject (by `subject_ref`) whose payloads are still open.
pub fn open_entries_of(c: &mut AnyConnection, subject_ref: &str) -> QueryResult<Vec<Seq>> {
    store::erasable_seqs(c, subject_ref, Seq::new(u64::MAX))
}
