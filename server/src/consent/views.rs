//! What the consent domain answers with.

use serde::Serialize;

use super::model::{Channel, ConsentRecord, Decision, Evidence, LegalBasis, Method};
use crate::clock::Timestamp;
use crate::ledger::Appended;

/// A consent record as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecordView {
    pub subject: String,
    pub purpose: String,
    pub channel: Channel,
    pub decision: Decision,
    pub legal_basis: LegalBasis,
    pub method: Method,
    pub notice_key: Option<String>,
    pub notice_version: Option<String>,
    #[serde(serialize_with = "crate::clock::rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub collected_at: Timestamp,
    #[serde(serialize_with = "crate::clock::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    pub jurisdiction: Option<String>,
    pub source: Option<String>,
    pub gpc: bool,
    pub evidence: Option<Evidence>,
}

impl From<&ConsentRecord> for RecordView {
    fn from(r: &ConsentRecord) -> Self {
        RecordView {
            subject: r.subject.clone(),
            purpose: r.purpose.clone(),
            channel: r.channel,
            decision: r.decision,
            legal_basis: r.legal_basis,
            method: r.method,
            notice_key: r.notice.as_ref().map(|n| n.key.clone()),
            notice_version: r.notice.as_ref().map(|n| n.version.clone()),
            collected_at: r.collected_at,
            expires_at: r.expires_at,
            jurisdiction: r.jurisdiction.clone(),
            source: r.source.clone(),
            gpc: r.gpc,
            evidence: r.evidence.clone(),
        }
    }
}

/// The answer to a consent write.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Recorded {
    pub seq: crate::vocab::Seq,
    pub leaf_hash: String,
    #[serde(serialize_with = "crate::clock::rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: Timestamp,
    /// The same decision was already recorded; `seq` is that record's.
    pub duplicate: bool,
    pub record: RecordView,
}

/// What a bulk import did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ImportSummary {
    pub rows: u64,
    pub recorded: u64,
    /// Rows already recorded (by an earlier run or earlier in the same file).
    pub duplicates: u64,
    pub first_seq: Option<crate::vocab::Seq>,
    pub last_seq: Option<crate::vocab::Seq>,
}

impl ImportSummary {
    /// This summary with the entries of one more chunk counted.
    pub fn with(mut self, appended: &[Appended]) -> ImportSummary {
        self.recorded += appended.len() as u64;
        if self.first_seq.is_none() {
            self.first_seq = appended.first().map(|a| a.seq);
        }
        self.last_seq = appended.last().map(|a| a.seq).or(self.last_seq);
        self
    }
}

pub use crate::ledger::Defined;

pub(super) fn recorded(r: &ConsentRecord, a: &Appended, duplicate: bool) -> Recorded {
    Recorded {
        seq: a.seq,
        leaf_hash: a.leaf_hash.clone(),
        recorded_at: a.at,
        duplicate,
        record: RecordView::from(r),
    }
}
