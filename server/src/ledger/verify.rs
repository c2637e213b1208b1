//! `accord ledger verify`: re-reads the whole ledger from the database and runs it through the same
//! streaming verifier an auditor runs offline, then checks the stored tree state against it.

use std::time::Instant;

use accord_audit::note::NoteVerifier;
use accord_audit::verify::{Failure, LedgerVerifier};
use serde::Serialize;

use super::store;
use super::stream::{Item, LedgerStream};
use crate::db::AnyConnection;
use crate::error::AppError;

#[derive(Debug, Clone, Serialize)]
pub struct VerifySummary {
    pub entries: u64,
    pub checkpoints: u64,
    pub redacted: u64,
    pub size: u64,
    pub root: String,
    /// Entries after the latest checkpoint: chained and hashed, but not yet signed.
    pub unsigned_tail: u64,
    pub elapsed_ms: u128,
}

/// The outcome: a summary, or the first failure (with the seq or checkpoint it concerns).
pub type VerifyOutcome = Result<VerifySummary, Failure>;

pub fn verify_database(
    conn: &mut AnyConnection,
    verifier: &NoteVerifier,
    pins: &[String],
) -> Result<VerifyOutcome, AppError> {
    let started = Instant::now();
    let Some(state) = store::read_tree_state(conn)? else {
        return Err(AppError::NotFound("the database holds no ledger".into()));
    };
    let size = state.size();
    let mut v = LedgerVerifier::new(&state.origin, verifier.clone());
    for pin in pins {
        if let Err(f) = v.pin(pin) {
            return Ok(Err(f));
        }
    }
    let mut stream = LedgerStream::new(size);
    let mut last_cp = 0u64;
    while let Some(item) = stream.next(conn)? {
        let step = match item {
            Item::Entry {
                seq,
                body,
                leaf_hash,
                payload,
            } => match payload {
                Ok(p) => v.entry(seq, &body, &leaf_hash, &p),
                Err(why) => Err(Failure {
                    seq: Some(seq),
                    checkpoint_size: None,
                    reason: why,
                }),
            },
            Item::Checkpoint(cp) => {
                last_cp = last_cp.max(cp.size.max(0) as u64);
                v.checkpoint(&cp.note)
            }
        };
        if let Err(f) = step {
            return Ok(Err(f));
        }
    }
    let report = match v.finish() {
        Ok(r) => r,
        Err(f) => return Ok(Err(f)),
    };
    if report.size != size {
        return Ok(Err(Failure {
            seq: Some(report.size),
            checkpoint_size: None,
            reason: format!(
                "the tree state says {size} entries but only {} were found (truncated)",
                report.size
            ),
        }));
    }
    let stored_root = accord_audit::hash::to_hex(&state.frontier.root());
    if stored_root != report.root {
        return Ok(Err(Failure {
            seq: None,
            checkpoint_size: None,
            reason: "the stored tree state's root does not match the entries".into(),
        }));
    }
    Ok(Ok(VerifySummary {
        entries: report.entries,
        checkpoints: report.checkpoints,
        redacted: report.redacted,
        size: report.size,
        root: report.root,
        unsigned_tail: size.saturating_sub(last_cp),
        elapsed_ms: started.elapsed().as_millis(),
    }))
}
