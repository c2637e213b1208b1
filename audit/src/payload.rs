//! Salted payload commitments.
//!
//! A payload (the event's full JSON, which may hold personal data) lives outside the leaf. The
//! leaf holds only `SHA-256(domain || salt || canonical payload)`, so deleting the salt and the
//! payload erases the data while the leaf, the tree and every checkpoint stay valid. The salt
//! stops anyone from confirming a guessed payload against the commitment.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::hash::{Hash, sha256};

/// Domain separation for payload commitments, so they can never collide with leaf or node hashes.
pub const PAYLOAD_DOMAIN: &[u8] = b"accord/payload/v1";

/// The `kind` of an erasure entry. Its payload has `"redacted_seqs": [u64, ...]`, the entries
/// whose payloads it erased, and its body's `subject_ref` is the erased subject's. The verifier
/// accepts a redacted payload only when such an entry, later in the log, lists it and carries the
/// same `subject_ref` as the redacted entry's body.
pub const ERASURE_KIND: &str = "ledger.erasure";

/// The start of the kinds that record who accessed what (`access.logged_in`, ...). Their payloads
/// are never redacted: the verifier refuses a redacted payload on such an entry.
pub const ACCESS_KIND_PREFIX: &str = "access.";

/// SHA-256(PAYLOAD_DOMAIN || salt || canonical_payload). `canonical_payload` must already be
/// canonical JSON ([`crate::canonical_json`]); this function hashes the bytes it is given.
pub fn payload_commit(salt: &[u8; 32], canonical_payload: &str) -> Hash {
    sha256(&[PAYLOAD_DOMAIN, salt, canonical_payload.as_bytes()])
}

/// The `redacted_seqs` list of an erasure payload, or `None` when the field is missing or is not
/// an array of non-negative integers.
pub fn erasure_redacted_seqs(payload: &Value) -> Option<Vec<u64>> {
    payload
        .get("redacted_seqs")?
        .as_array()?
        .iter()
        .map(Value::as_u64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commitment_is_domain_separated_and_salted() {
        let a = payload_commit(&[1; 32], "{\"x\":1}");
        let b = payload_commit(&[2; 32], "{\"x\":1}");
        let c = payload_commit(&[1; 32], "{\"x\":2}");
        assert_ne!(a, b);
        assert_ne!(a, c);
        let mut raw = Vec::new();
        raw.extend_from_slice(b"accord/payload/v1");
        raw.extend_from_slice(&[1; 32]);
        raw.extend_from_slice(b"{\"x\":1}");
        assert_eq!(a, sha256(&[&raw]));
    }

    #[test]
    fn erasure_seqs() {
        assert_eq!(
            erasure_redacted_seqs(&json!({"redacted_seqs": [1, 5]})),
            Some(vec![1, 5])
        );
        assert_eq!(
            erasure_redacted_seqs(&json!({"redacted_seqs": []})),
            Some(vec![])
        );
        assert_eq!(erasure_redacted_seqs(&json!({"redacted_seqs": [-1]})), None);
        assert_eq!(erasure_redacted_seqs(&json!({"redacted_seqs": "1"})), None);
        assert_eq!(erasure_redacted_seqs(&json!({})), None);
    }
}

/// An entry's payload as exported: exactly `salt` and `data`, or exactly `redacted_by` (a payload
/// with both, which could be read either way, is refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
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
