//! `accord ledger replay --check`: every projection rebuilt from the ledger alone, into a scratch
//! database of the same backend, and compared table by table with the live one (DESIGN §3: the
//! state is exactly what the ledger says).
//!
//! Entries are applied in seq order by the same `projection::apply` functions the write path
//! calls. An entry whose payload an erasure redacted is not applied: an erased subject replays as
//! erased. What the ledger deliberately never holds is listed in [`NOT_REPLAYABLE`] and left out
//! of the comparison.

use std::time::Instant;

use diesel::Connection;
use diesel::connection::SimpleConnection;
use serde_json::Value;

use crate::auth::events::AccessEvent;
use crate::clock::Timestamp;
use crate::consent::events::{self as consent_events, ConsentEvent};
use crate::db::{AnyConnection, ProjectedTable, Rows};
use crate::error::AppError;
use crate::idempotency::IdempotencyEvent;
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
        "leases",
        "*",
        "which instance is sending a mail or serving a webhook, its failures and next try: the ledger records the outcome (a mail sent), not each try",
    ),
    (
        "webhook_secrets",
        "*",
        "webhook signing secrets: the ledger holds each one's SHA-256 (webhooks.secret_sha256), not the secret",
    ),
    (
        "webhook_cursors",
        "*",
        "how far each webhook's deliveries got: the changes themselves are ledger entries",
    ),
    (
        "webhook_deliveries",
        "*",
        "each delivery tried (status, error): operational, not a fact the ledger keeps",
    ),
    (
        "dpa_document_bytes",
        "*",
        "the bytes of signed DPA documents: the ledger holds each one's SHA-256 (dpa_documents), not the document",
    ),
];

/// Every projected table, domain by domain.
pub fn tables() -> impl Iterator<Item = &'static ProjectedTable> {
    crate::consent::projection::TABLES
        .iter()
        .chain(crate::auth::projection::TABLES)
        .chain(crate::dpa::projection::TABLES)
        .chain(crate::notify::projection::TABLES)
        .chain(crate::changes::webhooks::TABLES)
        .chain(crate::idempotency::TABLES)
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
    } else if crate::dpa::events::DPA_KINDS.contains(&a.kind.as_str()) {
        let event: crate::dpa::events::DpaEvent = serde_json::from_str(payload).map_err(bad)?;
        crate::dpa::projection::apply(c, &event, a)?;
    } else if crate::notify::events::NOTIFY_KINDS.contains(&a.kind.as_str()) {
        let event: crate::notify::events::NotifyEvent =
            serde_json::from_str(payload).map_err(bad)?;
        crate::notify::projection::apply(c, &event, a)?;
    } else if crate::changes::webhooks::WEBHOOK_KINDS.contains(&a.kind.as_str()) {
        let event: crate::changes::webhooks::WebhookEvent =
            serde_json::from_str(payload).map_err(bad)?;
        crate::changes::webhooks::apply(c, &event, a)?;
    } else if a.kind == crate::idempotency::ANSWERED {
        let event: IdempotencyEvent = serde_json::from_str(payload).map_err(bad)?;
        crate::idempotency::apply(c, &event, a)?;
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

    /// Counts a difference, and keeps it if fewer than [`LISTED`] are kept.
    fn note(&mut self, d: Difference) {
        self.total_differences += 1;
        if self.differences.len() < LISTED {
            self.differences.push(d);
        }
    }
}

/// Replays every entry of `live`'s ledger into `scratch` (migrated and empty), then compares,
/// reading large tables `compare_page` rows at a time.
/// `progress` is told how many entries are done, of how many.
pub fn replay_check(
    live: &mut AnyConnection,
    scratch: &mut AnyConnection,
    compare_page: i64,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report, AppError> {
    let started = Instant::now();
    // Every read of the live database sees one moment, even while a server keeps writing.
    crate::per_backend!(
        &mut *live,
        postgres | c | c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
        sqlite | c | c.batch_execute("BEGIN DEFERRED"),
    )?;
    let result = replay_in_snapshot(live, scratch, compare_page, &mut progress);
    let end = live.batch_execute(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
    let mut report = result?;
    end?;
    report.elapsed_ms = started.elapsed().as_millis();
    Ok(report)
}

/// A stored entry as its projection sees it.
fn appended(row: &store::EntryRow) -> Result<Appended, AppError> {
    let body: Value = serde_json::from_str(&row.body).map_err(|e| {
        AppError::internal(anyhow::anyhow!("entry {}: unreadable leaf: {e}", row.seq))
    })?;
    Ok(Appended {
        seq: row.seq,
        leaf_hash: row.leaf_hash.clone(),
        at: Timestamp(row.columns.at),
        kind: row.columns.kind.clone(),
        actor: body["actor"].as_str().unwrap_or_default().to_string(),
    })
}

fn replay_in_snapshot(
    live: &mut AnyConnection,
    scratch: &mut AnyConnection,
    compare_page: i64,
    progress: &mut impl FnMut(u64, u64),
) -> Result<Report, AppError> {
    let size = store::read_tree_state(live)?
        .map(|s| s.size())
        .ok_or_else(|| AppError::NotFound("the database holds no ledger".into()))?;
    let mut report = Report::default();
    scratch.transaction::<_, AppError, _>(|scratch| {
        let mut from = 0u64;
        while from < size {
            let page = store::entries_page(live, from, size, PAGE)?;
            let Some(last) = page.last() else { break };
            from = last.seq.get() + 1;
            for row in &page {
                report.entries += 1;
                let Some(payload) = row.payload.as_deref() else {
                    if row.redacted_by.is_none() {
                        return Err(AppError::conflict(
                            crate::error::ConflictCode::Ledger,
                            format!(
                                "entry {} has no payload and no erasure redacted it; run `accord ledger verify`",
                                row.seq
                            ),
                        ));
                    }
                    report.redacted += 1;
                    if row.columns.kind == crate::idempotency::ANSWERED {
                        crate::idempotency::apply_redacted(
                            scratch,
                            &row.columns.entity,
                            &appended(row)?,
                        )?;
                    }
                    continue;
                };
                apply_entry(scratch, payload, &appended(row)?)?;
            }
            progress(from, size);
        }
        Ok(())
    })?;
    for table in tables() {
        compare(table, live, scratch, compare_page.max(1), &mut report)?;
    }
    Ok(report)
}

/// Rows compared per page of a table read by seq.
pub const COMPARE_PAGE: i64 = 10_000;

/// A row's place in its table's order: its seq, or its key columns as text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Seq(i64),
    Key(String),
}

/// One side of a comparison: a table's rows in key order, read a page at a time (or whole).
struct Side<'c> {
    conn: &'c mut AnyConnection,
    table: &'static ProjectedTable,
    buffered: std::collections::VecDeque<(Place, Value)>,
    page: i64,
    after: i64,
    done: bool,
    count: usize,
}

impl<'c> Side<'c> {
    fn new(conn: &'c mut AnyConnection, table: &'static ProjectedTable, page: i64) -> Self {
        Side {
            conn,
            table,
            buffered: Default::default(),
            page,
            after: i64::MIN,
            done: false,
            count: 0,
        }
    }

    fn key_text(&self, row: &Value) -> String {
        self.table
            .key
            .iter()
            .map(|k| format!("{k}={}", text(&row[*k])))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The next row in key order.
    fn next(&mut self) -> Result<Option<(Place, Value)>, AppError> {
        if self.buffered.is_empty() && !self.done {
            match self.table.rows {
                Rows::All(read) => {
                    let mut rows: Vec<(Place, Value)> = read(self.conn)?
                        .into_iter()
                        .map(|r| (Place::Key(self.key_text(&r)), r))
                        .collect();
                    rows.sort_by(|a, b| a.0.cmp(&b.0));
                    self.buffered.extend(rows);
                    self.done = true;
                }
                Rows::BySeq(read) => {
                    let page = read(self.conn, self.after, self.page)?;
                    self.done = (page.len() as i64) < self.page;
                    for r in page {
                        let seq = r["seq"].as_i64().unwrap_or_default();
                        self.after = self.after.max(seq);
                        self.buffered.push_back((Place::Seq(seq), r));
                    }
                }
            }
        }
        let next = self.buffered.pop_front();
        self.count += usize::from(next.is_some());
        Ok(next)
    }
}

/// Compares one table, both sides read in key order and merged, so a table of millions of rows
/// is held a page at a time.
fn compare(
    table: &'static ProjectedTable,
    live: &mut AnyConnection,
    scratch: &mut AnyConnection,
    page: i64,
    report: &mut Report,
) -> Result<(), AppError> {
    let skipped: Vec<&str> = NOT_REPLAYABLE
        .iter()
        .filter(|(t, _, _)| *t == table.name)
        .map(|(_, c, _)| *c)
        .collect();
    let mut a = Side::new(live, table, page);
    let mut b = Side::new(scratch, table, page);
    let (mut x, mut y) = (a.next()?, b.next()?);
    loop {
        let order = match (&x, &y) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((p, _)), Some((q, _))) => p.cmp(q),
        };
        match order {
            std::cmp::Ordering::Less => {
                if let Some((_, row)) = &x {
                    report.note(Difference {
                        table: table.name,
                        key: a.key_text(row),
                        column: None,
                        live: Some(text(row)),
                        replayed: None,
                    });
                }
                x = a.next()?;
            }
            std::cmp::Ordering::Greater => {
                if let Some((_, row)) = &y {
                    report.note(Difference {
                        table: table.name,
                        key: b.key_text(row),
                        column: None,
                        live: None,
                        replayed: Some(text(row)),
                    });
                }
                y = b.next()?;
            }
            std::cmp::Ordering::Equal => {
                if let (Some((_, row)), Some((_, other))) = (&x, &y) {
                    let columns = row.as_object().into_iter().flat_map(|m| m.keys());
                    for column in columns {
                        if !skipped.contains(&column.as_str()) && row[column] != other[column] {
                            report.note(Difference {
                                table: table.name,
                                key: a.key_text(row),
                                column: Some(column.clone()),
                                live: Some(text(&row[column])),
                                replayed: Some(text(&other[column])),
                            });
                        }
                    }
                }
                x = a.next()?;
                y = b.next()?;
            }
        }
    }
    report.tables.push((table.name, a.count, b.count));
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
