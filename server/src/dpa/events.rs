//! The ledger events of vendors and DPAs. Their payloads are what instances follow to keep their
//! coverage index current, and what `accord ledger replay` rebuilds the tables from.

use serde::{Deserialize, Serialize};

use super::model::{DpaVersionDef, SubprocessorDecision, VendorDef};
use crate::clock::Timestamp;
use crate::ledger::LedgerEvent;

pub const VENDOR_DEFINED: &str = "vendor.defined";
pub const SUBPROCESSOR_DECIDED: &str = "vendor.subprocessor_decided";
pub const DPA_CREATED: &str = "dpa.created";
pub const DPA_VERSION_ADDED: &str = "dpa.version_added";
pub const DPA_TERMINATED: &str = "dpa.terminated";
pub const DPA_DOCUMENT_ATTACHED: &str = "dpa.document_attached";

/// Every kind this domain records.
pub const DPA_KINDS: &[&str] = &[
    VENDOR_DEFINED,
    SUBPROCESSOR_DECIDED,
    DPA_CREATED,
    DPA_VERSION_ADDED,
    DPA_TERMINATED,
    DPA_DOCUMENT_ATTACHED,
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DpaEvent {
    /// A vendor was registered or changed; the payload is the whole new version.
    VendorDefined(VendorDef),
    /// The controller authorised (or objected to) a processor's sub-processor.
    SubprocessorDecided {
        vendor: String,
        parent: String,
        decision: SubprocessorDecision,
        /// The date of the decision (`YYYY-MM-DD`).
        decided_on: String,
        note: Option<String>,
    },
    /// A DPA with a vendor; its first version follows in the same append.
    DpaCreated {
        id: String,
        vendor: String,
    },
    DpaVersionAdded(DpaVersionDef),
    /// The DPA ends at `effective_at` (every version with it).
    DpaTerminated {
        id: String,
        #[serde(
            serialize_with = "crate::clock::rfc3339::serialize",
            deserialize_with = "crate::vocab::rules::de_instant"
        )]
        effective_at: Timestamp,
        reason: Option<String>,
    },
    /// A version's signed document was stored; its bytes are not in the ledger, its hash is.
    DocumentAttached {
        dpa: String,
        version: i32,
        sha256: String,
        media_type: String,
        size: u64,
    },
}

impl LedgerEvent for DpaEvent {
    fn kind(&self) -> &'static str {
        match self {
            DpaEvent::VendorDefined(_) => VENDOR_DEFINED,
            DpaEvent::SubprocessorDecided { .. } => SUBPROCESSOR_DECIDED,
            DpaEvent::DpaCreated { .. } => DPA_CREATED,
            DpaEvent::DpaVersionAdded(_) => DPA_VERSION_ADDED,
            DpaEvent::DpaTerminated { .. } => DPA_TERMINATED,
            DpaEvent::DocumentAttached { .. } => DPA_DOCUMENT_ATTACHED,
        }
    }

    fn entity(&self) -> String {
        match self {
            DpaEvent::VendorDefined(v) => format!("vendor:{}", v.id),
            DpaEvent::SubprocessorDecided { vendor, .. } => format!("vendor:{vendor}"),
            DpaEvent::DpaCreated { id, .. } | DpaEvent::DpaTerminated { id, .. } => {
                format!("dpa:{id}")
            }
            DpaEvent::DpaVersionAdded(v) => format!("dpa:{}", v.dpa),
            DpaEvent::DocumentAttached { dpa, .. } => format!("dpa:{dpa}"),
        }
    }
}
