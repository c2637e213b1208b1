//! Erasure of a data subject across every domain.

use std::sync::Arc;

use serde::Serialize;

use crate::consent::index::ConsentIndex;
use crate::db::{AnyConnection, Pool};
use crate::error::{AppError, ConflictCode};
use crate::idempotency::{self, Answer};
use crate::ledger::erasure::{self, Erasure};
use crate::ledger::{Actor, AppendRequest, EventDraft, Ledger};

/// How often an erasure is prepared again when the subject's entries changed meanwhile.
const ATTEMPTS: usize = 5;

/// What an erasure did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Erased {
    pub seq: crate::vocab::Seq,
    pub leaf_hash: String,
    pub redacted_seqs: Vec<crate::vocab::Seq>,
    /// Consent records removed.
    pub records_removed: usize,
}

/// Every domain forgets the subject, inside the erasure's append; returns the consent records
/// removed.
fn forget_subject(c: &mut AnyConnection, e: &Erasure) -> Result<usize, AppError> {
    let records = crate::consent::projection::forget_subject(c, &e.subject)?;
    crate::idempotency::forget_subject(c, &e.subject_ref)?;
    Ok(records)
}

/// The commands about a data subject.
#[derive(Clone)]
pub struct SubjectsService {
    ledger: Ledger,
    pool: Pool,
    /// This instance's consent index, to wait for (none in the CLI).
    consent: Option<Arc<ConsentIndex>>,
}

impl SubjectsService {
    pub fn new(ledger: Ledger, pool: Pool, consent: Option<Arc<ConsentIndex>>) -> Self {
        SubjectsService {
            ledger,
            pool,
            consent,
        }
    }

    /// Erases a data subject (Art. 17): the payloads of every entry about them are redacted, an
    /// erasure entry lists the redacted seqs, and every domain forgets them in the same change.
    pub async fn erase(
        &self,
        actor: Actor,
        request_id: Option<String>,
        subject: &str,
        reason: Option<String>,
        answer: Option<Answer<Erased>>,
    ) -> Result<Erased, AppError> {
        let subject_ref = self.ledger.writer().keys().subject_ref(subject);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let sref = subject_ref.clone();
            // Every open entry so far; the erasure's own write re-checks the list under the lock.
            let planned = crate::db::blocking(&self.pool, move |c| {
                Ok(crate::ledger::read::open_entries_of(c, &sref)?)
            })
            .await?;
            let event = Erasure {
                subject: subject.to_string(),
                subject_ref: subject_ref.clone(),
                redacted_seqs: planned.clone(),
                reason: reason.clone(),
            };
            let projected = event.clone();
            let result = self
                .ledger
                .append_returning::<Erased>(
                    AppendRequest::new(actor.clone(), vec![EventDraft::new(&event)?])
                        .request_id(request_id.clone())
                        .project(move |c, appended| {
                            erasure::redact(c, &projected, appended)?;
                            let records_removed = forget_subject(c, &projected)?;
                            let a = appended.last().ok_or_else(|| {
                                AppError::internal(anyhow::anyhow!("append returned no entry"))
                            })?;
                            Ok(Erased {
                                seq: a.seq,
                                leaf_hash: a.leaf_hash.clone(),
                                redacted_seqs: projected.redacted_seqs,
                                records_removed,
                            })
                        })
                        // Made again for each attempt; used by the one that is recorded.
                        .trailer(idempotency::trailer(
                            answer.as_ref().map(Answer::again),
                            None,
                        )),
                )
                .await;
            match result {
                Ok((_, erased)) => {
                    if let Some(index) = &self.consent {
                        index.wait_for_write(erased.seq.get()).await;
                    }
                    // A redaction counts for the verifiers only once a checkpoint signs its
                    // erasure: sign one now rather than at the next interval.
                    if let Err(e) = self.ledger.publish_checkpoint().await {
                        tracing::warn!(error = %e, "cannot publish a checkpoint after an erasure");
                    }
                    return Ok(erased);
                }
                Err(e)
                    if e.conflict_code() == Some(ConflictCode::SubjectChanged)
                        && attempts < ATTEMPTS =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
