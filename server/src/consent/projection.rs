//! The consent tables as a fold over the ledger: [`apply`] writes what one consent event means to
//! them. The write path calls it inside the append (after the service's guards), and `accord
//! ledger replay` calls it for every recorded event, so both arrive at the same rows.

use diesel::QueryResult;

use super::events::ConsentEvent;
use super::store::{self, NoticeRow, PurposeRow, RecordRow};
use crate::db::{AnyConnection, ProjectedTable, Rows, json_rows};
use crate::ledger::Appended;

/// The tables this projection writes, as `replay --check` compares them.
pub const TABLES: &[ProjectedTable] = &[
    ProjectedTable {
        name: "purposes",
        key: &["key", "version"],
        rows: Rows::All(|c| json_rows(store::all_purpose_versions(c)?)),
    },
    ProjectedTable {
        name: "notices",
        key: &["key", "version"],
        rows: Rows::All(|c| json_rows(store::all_notices(c)?)),
    },
    ProjectedTable {
        name: "consent_records",
        key: &["seq"],
        rows: Rows::BySeq(|c, after, limit| json_rows(store::records_after(c, after, limit)?)),
    },
];

/// Applies one consent event recorded as `a`.
pub fn apply(c: &mut AnyConnection, event: &ConsentEvent, a: &Appended) -> QueryResult<()> {
    match event {
        ConsentEvent::PurposeDefined(def) | ConsentEvent::PurposeRetired(def) => {
            store::insert_purpose(c, &PurposeRow::new(def, a.at, a.seq))
        }
        ConsentEvent::NoticePublished(def) => {
            store::insert_notice(c, &NoticeRow::new(def, a.at, a.seq))
        }
        ConsentEvent::ConsentRecorded(r) => store::insert_records(c, &[RecordRow::new(r, a.seq)]),
    }
}

/// Applies a run of consent events recorded as `appended` (one insert for a run of records).
pub fn apply_all(
    c: &mut AnyConnection,
    events: &[ConsentEvent],
    appended: &[Appended],
) -> QueryResult<()> {
    let records: Vec<RecordRow> = events
        .iter()
        .zip(appended)
        .filter_map(|(e, a)| match e {
            ConsentEvent::ConsentRecorded(r) => Some(RecordRow::new(r, a.seq)),
            _ => None,
        })
        .collect();
    if records.len() == events.len() {
        return store::insert_records(c, &records);
    }
    for (e, a) in events.iter().zip(appended) {
        apply(c, e, a)?;
    }
    Ok(())
}

/// Removes what the consent tables hold about a subject (an erasure); returns the records removed.
pub fn forget_subject(c: &mut AnyConnection, subject: &str) -> QueryResult<usize> {
    store::delete_subject(c, subject)
}
