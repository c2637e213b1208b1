//! `accord ledger replay --check`: every projection rebuilt from the ledger alone, into a scratch
//! database of the same backend, and compared table by table with the live one (DESIGN §3: the
//! state is exactly what the ledger says).
//!
//! Entries are applied in seq order by the same `projection::apply` functions the write path
//! calls. An entry whose payload an erasure redacted is not applied: an erased subject replays as
//! erased. What the ledger deliberately never holds is listed in [`NOT_REPLAYABLE`] and left out
//! of the comparison.

use std::collections::BTreeMap;
use std::time::Instant;

use diesel::Connection;
use serde_json::Value;

use crate::auth::events::AccessEvent;
use crate::clock::Timestamp;
use crate::consent::events::{self as consent_events, ConsentEvent};
use crate::db::{AnyConnection, ProjectedTable};
use crate::error::AppError;
use crate::ledger::{Appended, store};

/// Entries read per query.
const PAGE: i64 = 1000;
/// Differences listed (all are counted).
pub const LISTED: usize = 20;

/// What no ledger entry holds, and why: (table, column, reason); `*` for a whole table.
pub const NOT_REPLAYABLE: &[(&str, &str, &str)] = &[
    (
        "users",
        "password_hash",
        "a password hash is a secret: it is kept out of the ledger and its exports",
    ),
    (
        "idempotency_keys",
        "*",
        "answers kept for 24 hours so that a retried request gets its first answer: a cache of responses, not a record",
    ),
];

/// Every projected table, domain by domain.
pub fn tables() -> impl Iterator<Item = &'static ProjectedTable> {
    crate::consent::projection::TABLES
        .iter()
        .chain(crate::auth::projection::TABLES)
}

/// Applies one recorded entry to the projections. The ledger's own entries (its start, an
/// instance's start, an erasure) project nothing: an erasure's work is the redaction of the
/// entries it lists, which are then never applied.
pub fn apply_entry(c: &mut AnyConnection, payload: &str, a: &Appended) -> Result<(), AppError> {
    let bad = |e: serde_json::Error| {
        AppError::internal(anyhow::anyhow!(
            "entry {} ({}): its payload is not a {} event: {e}",
            a.seq,
            a.kind,
            a.kind
        ))
    };
    if a.kind.starts_with("access.") {
        let event: AccessEvent = serde_json::from_str(payload).map_err(bad)?;
        crate::auth::projection::apply(c, &event, a)?;
    } else if [
        consent_events::PURPOSE_DEFINED,
        consent_events::PURPOSE_RETIRED,
        consent_events::NOTICE_PUBLISHED,
        consent_events::CONSENT_RECORDED,
    ]
    .contains(&a.kind.as_str())
    {
        let event: ConsentEvent = serde_json::from_str(payload).map_err(bad)?;
        crate::consent::projection::apply(c, &event, a)?;
    }
    Ok(())
}

/// One way the live tables and the replayed ones differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub table: &'static str,
    /// The row's primary key, `column=value` joined with commas.
    pub key: String,
    /// `None`: the whole row is only on one side.
    pub column: Option<String>,
    pub live: Option<String>,
    pub replayed: Option<String>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(no row)".into());
        match &self.column {
            Some(col) => write!(
                f,
                "{} [{}] {col}: live {} vs replayed {}",
                self.table,
                self.key,
                show(&self.live),
                show(&self.replayed)
            ),
            None => write!(
                f,
                "{} [{}]: {}",
                self.table,
                self.key,
                if self.live.is_some() {
                    "in the live database only"
                } else {
                    "in the replay only"
                }
            ),
        }
    }
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct Report {
    pub entries: u64,
    /// Entries whose payload an erasure redacted (not applied).
    pub redacted: u64,
    /// (table, rows live, rows replayed).
    pub tables: Vec<(&'static str, usize, usize)>,
    /// The first [`LISTED`] differences.
    pub differences: Vec<Difference>,
    pub total_differences: usize,
    pub elapsed_ms: u128,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.total_differences == 0
    }
}

/// Replays every entry of `live`'s ledger into `scratch` (migrated and empty), then compares.
/// `progress` is told how many entries are done, of how many.
pub fn replay_check(
    live: &mut AnyConnection,
    scratch: &mut AnyConnection,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report, AppError> {
    let started = Instant::now();
    let size = store::read_tree_state(live)?
        .map(|s| s.size())
        .ok_or_else(|| AppError::NotFound("the database holds no ledger".into()))?;
    let mut report = Report::default();
    scratch.transaction::<_, AppError, _>(|scratch| {
        let mut from = 0u64;
        while from < size {
            let page = store::entries_page(live, from, size, PAGE)?;
            let Some(last) = page.last() else { break };
            from = last.seq as u64 + 1;
            for row in &page {
                report.entries += 1;
                let Some(payload) = row.payload.as_deref() else {
                    report.redacted += 1;
                    continue;
                };
                let body: Value = serde_json::from_str(&row.body).map_err(|e| {
                    AppError::internal(anyhow::anyhow!("entry {}: unreadable leaf: {e}", row.seq))
                })?;
                let appended = Appended {
                    seq: row.seq as u64,
                    leaf_hash: row.leaf_hash.clone(),
                    at: Timestamp(row.columns.at),
                    kind: row.columns.kind.clone(),
                    actor: body["actor"].as_str().unwrap_or_default().to_string(),
                };
                apply_entry(scratch, payload, &appended)?;
            }
            progress(from, size);
        }
        Ok(())
    })?;
    for table in tables() {
        compare(table, live, scratch, &mut report)?;
    }
    report.elapsed_ms = started.elapsed().as_millis();
    Ok(report)
}

fn compare(
    table: &'static ProjectedTable,
    live: &mut AnyConnection,
    scratch: &mut AnyConnection,
    report: &mut Report,
) -> Result<(), AppError> {
    let skipped: Vec<&str> = NOT_REPLAYABLE
        .iter()
        .filter(|(t, _, _)| *t == table.name)
        .map(|(_, c, _)| *c)
        .collect();
    let keyed = |rows: Vec<Value>| -> BTreeMap<String, Value> {
        rows.into_iter()
            .map(|r| {
                let key = table
                    .key
                    .iter()
                    .map(|k| format!("{k}={}", text(&r[*k])))
                    .collect::<Vec<_>>()
                    .join(",");
                (key, r)
            })
            .collect()
    };
    let a = keyed((table.rows)(live)?);
    let b = keyed((table.rows)(scratch)?);
    report.tables.push((table.name, a.len(), b.len()));
    let mut note = |d: Difference| {
        report.total_differences += 1;
        if report.differences.len() < LISTED {
            report.differences.push(d);
        }
    };
    for (key, row) in &a {
        let Some(other) = b.get(key) else {
            note(Difference {
                table: table.name,
                key: key.clone(),
                column: None,
                live: Some(text(row)),
                replayed: None,
            });
            continue;
        };
        let columns = row.as_object().into_iter().flat_map(|m| m.keys());
        for column in columns {
            if skipped.contains(&column.as_str()) {
                continue;
            }
            if row[column] != other[column] {
                note(Difference {
                    table: table.name,
                    key: key.clone(),
                    column: Some(column.clone()),
                    live: Some(text(&row[column])),
                    replayed: Some(text(&other[column])),
                });
            }
        }
    }
    for (key, row) in &b {
        if !a.contains_key(key) {
            note(Difference {
                table: table.name,
                key: key.clone(),
                column: None,
                live: None,
                replayed: Some(text(row)),
            });
        }
    }
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
