//! The consent domain's ledger events. Their payloads are what instances follow to keep their
//! in-memory index current.

use serde::{Deserialize, Serialize};

use super::model::{ConsentRecord, NoticeDef, PurposeDef};
use crate::ledger::LedgerEvent;

pub const PURPOSE_DEFINED: &str = "purpose.defined";
pub const PURPOSE_RETIRED: &str = "purpose.retired";
pub const NOTICE_PUBLISHED: &str = "notice.published";
pub const CONSENT_RECORDED: &str = "consent.recorded";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConsentEvent {
    /// A purpose was created or changed; the payload is the whole new version.
    PurposeDefined(PurposeDef),
    /// A purpose was retired; the payload is the retired version. Its history stays.
    PurposeRetired(PurposeDef),
    NoticePublished(NoticeDef),
    ConsentRecorded(Box<ConsentRecord>),
}

impl LedgerEvent for ConsentEvent {
    fn kind(&self) -> &'static str {
        match self {
            ConsentEvent::PurposeDefined(_) => PURPOSE_DEFINED,
            ConsentEvent::PurposeRetired(_) => PURPOSE_RETIRED,
            ConsentEvent::NoticePublished(_) => NOTICE_PUBLISHED,
            ConsentEvent::ConsentRecorded(_) => CONSENT_RECORDED,
        }
    }

    fn entity(&self) -> String {
        match self {
            ConsentEvent::PurposeDefined(p) | ConsentEvent::PurposeRetired(p) => {
                format!("purpose:{}", p.key)
            }
            ConsentEvent::NoticePublished(n) => format!("notice:{}@{}", n.key, n.version),
            ConsentEvent::ConsentRecorded(r) => format!("consent:{}", r.purpose),
        }
    }

    fn subject(&self) -> Option<&str> {
        match self {
            ConsentEvent::ConsentRecorded(r) => Some(&r.subject),
            _ => None,
        }
    }
}
