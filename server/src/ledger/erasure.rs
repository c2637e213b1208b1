//! Erasure of a data subject (GDPR Art. 17) at the ledger level: the payloads of every entry about
//! the subject are redacted, and an erasure entry lists them. Leaves, the tree and checkpoints are
//! untouched, so both verifiers still pass and show those entries as redacted by that entry.
//!
//! Domains add their own projection (deleting the subject's rows) to the same append.

use serde::{Deserialize, Serialize};

use super::store;
use super::{Appended, LedgerEvent};
use crate::db::AnyConnection;
use crate::error::AppError;
use crate::vocab::Seq;

/// The erasure entry's payload. The subject id itself is never in it: only its `subject_ref`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    #[serde(skip)]
    pub subject: String,
    pub subject_ref: String,
    /// The entries whose payloads this erasure removed (the verifiers accept exactly these).
    pub redacted_seqs: Vec<crate::vocab::Seq>,
    pub reason: Option<String>,
}

impl LedgerEvent for Erasure {
    fn kind(&self) -> &'static str {
        accord_audit::payload::ERASURE_KIND
    }

    fn entity(&self) -> String {
        format!("subject:{}", self.subject_ref)
    }

    fn subject(&self) -> Option<&str> {
        Some(&self.subject)
    }
}

/// Inside the erasure's append: checks that the listed seqs are still exactly the subject's open
/// entries before the erasure (an entry written between planning and this append makes it a
/// conflict, which the caller retries), then redacts them.
pub fn redact(
    conn: &mut AnyConnection,
    erasure: &Erasure,
    appended: &[Appended],
) -> Result<Seq, AppError> {
    let seq = appended
        .first()
        .map(|a| a.seq)
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("erasure append returned no entry")))?;
    let open = store::erasable_seqs(conn, &erasure.subject_ref, seq)?;
    if open != erasure.redacted_seqs {
        return Err(AppError::conflict(
            crate::error::ConflictCode::SubjectChanged,
            "the subject's entries changed while the erasure was being prepared; try again",
        ));
    }
    let n = store::redact_payloads(conn, &open, seq)?;
    if n != open.len() {
        return Err(AppError::internal(anyhow::anyhow!(
            "redacted {n} payloads, expected {}",
            open.len()
        )));
    }
    Ok(seq)
}
