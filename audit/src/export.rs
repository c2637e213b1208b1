//! The JSON Lines export: a header line, then every entry in seq order, each checkpoint right
//! after the entry that brings the tree to its size.

use std::io::{BufRead, Read as _};

use serde::{Deserialize, Serialize};

use crate::note::NoteVerifier;
use crate::verify::{Failure, LedgerVerifier, Report};

/// The `format` value of the header line this crate writes and reads.
pub const EXPORT_FORMAT: &str = "accord-ledger-export/v1";

/// Longest line [`verify_export`] accepts, so a hostile file cannot make it buffer without bound.
pub const MAX_LINE_BYTES: u64 = 64 * 1024 * 1024;

/// One line of an export, tagged by `"type"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportLine {
    /// The first line.
    Header {
        /// Always [`EXPORT_FORMAT`].
        format: String,
        /// The log origin.
        origin: String,
        /// The log's verifier key (`name+id+base64`).
        verifier_key: String,
        /// The latest signed checkpoint note when the export was taken.
        checkpoint: String,
        /// Number of entry lines that follow.
        entries: u64,
    },
    /// One ledger entry.
    Entry {
        /// Its position.
        seq: u64,
        /// The canonical leaf body text.
        body: String,
        /// Lowercase hex leaf hash as stored.
        leaf_hash: String,
        /// The payload, or the erasure that removed it.
        payload: PayloadRecord,
    },
    /// A signed checkpoint note, written right after the entry that brings the tree to its size.
    Checkpoint {
        /// The signed note.
        note: String,
    },
}

/// An entry's payload as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PayloadRecord {
    /// The payload and its salt (64 lowercase hex).
    Open {
        /// The commitment salt, 64 lowercase hex characters.
        salt: String,
        /// The payload JSON.
        data: serde_json::Value,
    },
    /// Erased by the erasure entry `redacted_by`.
    Redacted {
        /// Seq of the erasure entry.
        redacted_by: u64,
    },
}

/// Verifies an export read line by line, holding one line at a time.
///
/// The first line must be a header with `format == EXPORT_FORMAT`. The log key is the header's
/// `verifier_key`, unless `key` is given: then the header must carry that same key (an export
/// cannot choose its own trust root). `pins` are auditors' kept checkpoint notes. The header's
/// checkpoint is checked like any other; fewer entries than the header's `entries` (or than a
/// checkpoint's size) fails as "truncated". A line that is not a valid export line fails naming
/// its line number (1-based).
pub fn verify_export<R: BufRead>(
    mut input: R,
    pins: &[String],
    key: Option<NoteVerifier>,
) -> Result<Report, Failure> {
    let mut line = String::new();
    let mut line_no = 0u64;

    if !next_line(&mut input, &mut line, &mut line_no)? {
        return Err(Failure::general(
            "the export is empty: there is no header line",
        ));
    }
    let header = serde_json::from_str::<ExportLine>(&line)
        .map_err(|e| Failure::general(format!("line 1: not a valid export header: {e}")))?;
    let ExportLine::Header {
        format,
        origin,
        verifier_key,
        checkpoint,
        entries,
    } = header
    else {
        return Err(Failure::general(
            "line 1: the first line must be the header",
        ));
    };
    if format != EXPORT_FORMAT {
        return Err(Failure::general(format!(
            "line 1: format {format:?} is not {EXPORT_FORMAT:?}"
        )));
    }
    let header_key = NoteVerifier::parse(&verifier_key).map_err(|e| {
        Failure::general(format!("line 1: the header's verifier_key is invalid: {e}"))
    })?;
    let key = match key {
        Some(expected) => {
            if expected != header_key {
                return Err(Failure::general(format!(
                    "the export's verifier key {} is not the expected key {}",
                    header_key.to_vkey(),
                    expected.to_vkey()
                )));
            }
            expected
        }
        None => header_key,
    };

    let mut verifier = LedgerVerifier::new(&origin, key);
    for pin in pins {
        verifier.pin(pin)?;
    }
    verifier.header_checkpoint(&checkpoint)?;

    let mut seen = 0u64;
    while next_line(&mut input, &mut line, &mut line_no)? {
        let parsed = serde_json::from_str::<ExportLine>(&line).map_err(|e| {
            // A last line without its newline that does not parse was most likely cut off.
            if line.ends_with('\n') {
                Failure::general(format!("line {line_no}: not a valid export line: {e}"))
            } else {
                Failure::general(format!(
                    "line {line_no}: truncated: the last line is incomplete ({e})"
                ))
            }
        })?;
        match parsed {
            ExportLine::Header { .. } => {
                return Err(Failure::general(format!(
                    "line {line_no}: a second header line"
                )));
            }
            ExportLine::Entry {
                seq,
                body,
                leaf_hash,
                payload,
            } => {
                if seen == entries {
                    return Err(Failure::at_seq(
                        seq,
                        format!("the export has more entries than its header says ({entries})"),
                    ));
                }
                verifier.entry(seq, &body, &leaf_hash, &payload)?;
                seen += 1;
            }
            ExportLine::Checkpoint { note } => verifier.checkpoint(&note)?,
        }
    }
    if seen < entries {
        return Err(Failure::at_seq(
            seen,
            format!(
                "truncated: the export ends after {seen} entries but its header says {entries}"
            ),
        ));
    }
    verifier.finish()
}

/// Reads the next line into the reused buffer; false at end of input.
fn next_line<R: BufRead>(
    input: &mut R,
    line: &mut String,
    line_no: &mut u64,
) -> Result<bool, Failure> {
    line.clear();
    *line_no += 1;
    let n = input
        .by_ref()
        .take(MAX_LINE_BYTES + 1)
        .read_line(line)
        .map_err(|e| Failure::general(format!("line {line_no}: cannot be read: {e}")))?;
    if n as u64 > MAX_LINE_BYTES {
        return Err(Failure::general(format!(
            "line {line_no}: longer than {MAX_LINE_BYTES} bytes"
        )));
    }
    Ok(n > 0)
}
