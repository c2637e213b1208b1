//! The vendor and DPA tables as a fold over the ledger: [`apply`] writes what one event means to
//! them. The write path calls it inside the append (after the service's guards), and `accord
//! ledger replay` calls it for every recorded event.

use diesel::QueryResult;

use super::events::DpaEvent;
use super::store::{self, DecisionRow, DocumentRow, DpaRow, DpaVersionRow, VendorRow};
use crate::db::{AnyConnection, ProjectedTable, Rows, json_rows};
use crate::ledger::Appended;

/// The tables this projection writes, as `replay --check` compares them.
pub const TABLES: &[ProjectedTable] = &[
    ProjectedTable {
        name: "vendors",
        key: &["id", "version"],
        rows: Rows::All(|c| json_rows(store::all_vendor_versions(c)?)),
    },
    ProjectedTable {
        name: "subprocessor_decisions",
        key: &["seq"],
        rows: Rows::All(|c| json_rows(store::all_decisions(c)?)),
    },
    ProjectedTable {
        name: "dpas",
        key: &["id"],
        rows: Rows::All(|c| json_rows(store::all_dpas(c)?)),
    },
    ProjectedTable {
        name: "dpa_versions",
        key: &["dpa", "version"],
        rows: Rows::All(|c| json_rows(store::all_versions(c)?)),
    },
    ProjectedTable {
        name: "dpa_documents",
        key: &["dpa", "version"],
        rows: Rows::All(|c| json_rows(store::all_documents(c)?)),
    },
];

/// Applies one vendor or DPA event recorded as `a`.
pub fn apply(c: &mut AnyConnection, event: &DpaEvent, a: &Appended) -> QueryResult<()> {
    match event {
        DpaEvent::VendorDefined(def) => store::insert_vendor(c, &VendorRow::new(def, a.at, a.seq)),
        DpaEvent::SubprocessorDecided {
            vendor,
            parent,
            decision,
            decided_on,
            note,
        } => store::insert_decision(
            c,
            &DecisionRow {
                seq: a.seq,
                vendor: vendor.clone(),
                parent: parent.clone(),
                decision: decision.as_str().into(),
                decided_on: decided_on.clone(),
                note: note.clone(),
                at: a.at.micros(),
            },
        ),
        DpaEvent::DpaCreated { id, vendor } => store::insert_dpa(
            c,
            &DpaRow {
                id: id.clone(),
                vendor: vendor.clone(),
                at: a.at.micros(),
                seq: a.seq,
                terminated_at: None,
                termination_reason: None,
                terminated_seq: None,
            },
        ),
        DpaEvent::DpaVersionAdded(def) => {
            store::insert_version(c, &DpaVersionRow::new(def, a.at, a.seq))
        }
        DpaEvent::DpaTerminated {
            id,
            effective_at,
            reason,
        } => store::terminate(c, id, *effective_at, reason.as_deref(), a.seq).map(drop),
        DpaEvent::DocumentAttached {
            dpa,
            version,
            sha256,
            media_type,
            size,
        } => store::insert_document(
            c,
            &DocumentRow {
                dpa: dpa.clone(),
                version: *version,
                sha256: sha256.clone(),
                media_type: media_type.clone(),
                size: i64::try_from(*size).unwrap_or(i64::MAX),
                at: a.at.micros(),
                seq: a.seq,
            },
        ),
    }
}
