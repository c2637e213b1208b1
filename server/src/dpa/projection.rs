//! The vendor and DPA tables as a fold over the ledger: [`apply`] writes what one event means to
//! them. The write path calls it inside the append (after the service's guards), and `accord
//! ledger replay` calls it for every recorded event.

use diesel::QueryResult;

use super::events::DpaEvent;
use super::model::{DpaVersionDef, VersionStatus};
use super::store::{self, DecisionRow, DocumentRow, DpaRow, DpaVersionRow, VendorRow};
use crate::auth::model::Role;
use crate::clock::Timestamp;
use crate::db::{AnyConnection, ProjectedTable, Rows, json_rows};
use crate::ledger::Appended;
use crate::notify::projection::{self as notify, Mail, Moment};

/// What services following the ledger learn when an active version nears its expiry, and reaches it
/// (`notify.due` entries of these kinds).
pub const DPA_EXPIRING: &str = "dpa.expiring";
pub const DPA_EXPIRED: &str = "dpa.expired";

/// The roles whose holders get a DPA's expiry reminders.
pub const REMINDED: &[Role] = &[Role::ComplianceOfficer, Role::Legal];

/// What a DPA's outbox items are about.
pub fn about(dpa: &str) -> String {
    format!("dpa:{dpa}")
}

/// An active version that expires schedules its reminders (one per day count it recorded) and
/// ends those of the versions before it; a draft changes nothing. A version recorded after its
/// expiry schedules none.
fn schedule_reminders(c: &mut AnyConnection, def: &DpaVersionDef, a: &Appended) -> QueryResult<()> {
    if def.status != VersionStatus::Active {
        return Ok(());
    }
    notify::cancel(c, &about(&def.dpa), a)?;
    let Some(expires) = def.expires_at.filter(|e| *e > a.at) else {
        return Ok(());
    };
    let vendor = match store::dpa(c, &def.dpa)? {
        Some(d) => store::latest_vendor(c, &d.vendor)?,
        None => None,
    };
    let (vendor_id, vendor_name) = vendor
        .map(|v| (v.id, v.name))
        .unwrap_or_else(|| (String::new(), String::new()));
    let date = expires.to_rfc3339()[..10].to_string();
    let mut days = def.reminder_days.clone();
    days.sort_unstable();
    days.dedup();
    // Two moments services may follow: the version is expiring (at the first reminder), then
    // it has expired.
    let data = serde_json::json!({
        "dpa": def.dpa, "version": def.version, "reference": def.reference,
        "vendor": vendor_id, "expires_at": expires.to_rfc3339(),
    });
    let ahead = days.last().copied().unwrap_or(0);
    for (kind, due_at) in [
        (
            DPA_EXPIRING,
            Timestamp(
                expires
                    .micros()
                    .saturating_sub(i64::from(ahead) * 86_400_000_000),
            ),
        ),
        (DPA_EXPIRED, expires),
    ] {
        notify::schedule_moment(
            c,
            Moment {
                id: format!(
                    "dpa:{}:v{}:{}",
                    def.dpa,
                    def.version,
                    kind.trim_start_matches("dpa.")
                ),
                about: about(&def.dpa),
                due_at,
                kind: kind.into(),
                data: data.clone(),
            },
            a,
        )?;
    }
    for d in days {
        let due_at = Timestamp(
            expires
                .micros()
                .saturating_sub(i64::from(d) * 86_400_000_000),
        );
        notify::schedule(
            c,
            Mail {
                id: format!("dpa:{}:v{}:{d}d", def.dpa, def.version),
                about: about(&def.dpa),
                group: format!("dpa:{}:v{}", def.dpa, def.version),
                due_at,
                roles: REMINDED.iter().map(|r| r.as_str().to_string()).collect(),
                subject: format!("DPA {} with {vendor_name} expires on {date}", def.dpa),
                body: format!(
                    "The data processing agreement {} (version {}, reference {}) with {vendor_name} ({vendor_id}) expires on {date} (UTC).\n\n\
                     This is the reminder {d} days ahead. Record a new version to renew it, or plan the end of the processing: once it expires, the coverage check answers `expired` for this vendor and nothing it does is covered.",
                    def.dpa, def.version, def.reference
                ),
                link: (!vendor_id.is_empty()).then(|| format!("/ui/vendors/{vendor_id}")),
            },
            a,
        )?;
    }
    Ok(())
}

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
            store::insert_version(c, &DpaVersionRow::new(def, a.at, a.seq))?;
            schedule_reminders(c, def, a)
        }
        DpaEvent::DpaTerminated {
            id,
            effective_at,
            reason,
        } => {
            store::terminate(c, id, *effective_at, reason.as_deref(), a.seq)?;
            notify::cancel(c, &about(id), a).map(drop)
        }
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
