//! `accord ledger export`: the JSON Lines file an auditor verifies offline with `accord-audit verify`.
//! A header (format, origin, verifier key, latest signed checkpoint, entry count), then every entry
//! up to that checkpoint with its payload (or redaction marker), each checkpoint after the entry that
//! completes it.

use std::io::Write;

use accord_audit::export::{EXPORT_FORMAT, ExportLine};
use serde::Serialize;

use super::store::{self, CheckpointRow};
use super::stream::{Item, LedgerStream};
use crate::db::AnyConnection;
use crate::error::AppError;

#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    pub entries: u64,
    pub checkpoints: u64,
    pub checkpoint_size: u64,
}

/// Writes the export of everything covered by `checkpoint` (normally the latest) to `out`.
/// `progress` is called with the number of entries written so far.
pub fn write_export<W: Write>(
    conn: &mut AnyConnection,
    origin: &str,
    verifier_key: &str,
    checkpoint: &CheckpointRow,
    out: &mut W,
    mut progress: impl FnMut(u64),
) -> Result<ExportSummary, AppError> {
    let size = checkpoint.size.get();
    let io =
        |e: std::io::Error| AppError::internal(anyhow::anyhow!("cannot write the export: {e}"));
    let line = |l: &ExportLine, out: &mut W| -> Result<(), AppError> {
        serde_json::to_writer(&mut *out, l).map_err(AppError::internal)?;
        out.write_all(b"\n").map_err(io)
    };
    line(
        &ExportLine::Header {
            format: EXPORT_FORMAT.to_string(),
            origin: origin.to_string(),
            verifier_key: verifier_key.to_string(),
            checkpoint: checkpoint.note.clone(),
            entries: size,
        },
        out,
    )?;
    let mut stream = LedgerStream::new(size);
    let mut summary = ExportSummary {
        entries: 0,
        checkpoints: 0,
        checkpoint_size: size,
    };
    while let Some(item) = stream.next(conn)? {
        match item {
            Item::Entry {
                seq,
                body,
                leaf_hash,
                payload,
                ..
            } => {
                let payload = payload.map_err(|why| {
                    AppError::conflict(crate::error::ConflictCode::Ledger, format!(
                        "seq {seq}: {why}; the database was changed outside Accord — run `accord ledger verify`"
                    ))
                })?;
                line(
                    &ExportLine::Entry {
                        seq,
                        body,
                        leaf_hash,
                        payload,
                    },
                    out,
                )?;
                summary.entries += 1;
                if summary.entries.is_multiple_of(10_000) {
                    progress(summary.entries);
                }
            }
            Item::Checkpoint(cp) => {
                line(&ExportLine::Checkpoint { note: cp.note }, out)?;
                summary.checkpoints += 1;
            }
        }
    }
    progress(summary.entries);
    out.flush().map_err(io)?;
    Ok(summary)
}

/// The latest checkpoint, for the export header.
pub fn latest(conn: &mut AnyConnection) -> Result<CheckpointRow, AppError> {
    store::latest_checkpoint(conn)?
        .ok_or_else(|| AppError::NotFound("the ledger has no checkpoint yet".into()))
}
