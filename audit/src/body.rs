//! The versioned canonical leaf body: what each Merkle leaf commits to.

use serde::{Deserialize, Serialize};

use crate::canon::{MAX_SAFE_INTEGER, write_string};
use crate::hash::{Hash, is_lower_hex, leaf_hash};

/// The only body version this crate writes and accepts.
pub const BODY_VERSION: u32 = 1;

/// One ledger entry's leaf body. Its canonical JSON text ([`LeafBody::encode`]) is what gets
/// hashed into the leaf; `prev` (the previous leaf hash, 64 zeros for seq 0) makes the leaves a
/// hash chain as well as a Merkle tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeafBody {
    /// Body format version, always [`BODY_VERSION`].
    pub v: u32,
    /// The log's origin line (the checkpoint origin), so a leaf cannot be replayed into another log.
    pub origin: String,
    /// Position in the log, from 0, contiguous.
    pub seq: u64,
    /// Lowercase hex of the previous entry's leaf hash; 64 zeros for seq 0.
    pub prev: String,
    /// Server time in whole microseconds since the Unix epoch, UTC.
    pub at: i64,
    /// Who caused the entry.
    pub actor: String,
    /// Event kind, e.g. `consent.recorded` or [`crate::ERASURE_KIND`].
    pub kind: String,
    /// The entity the event is about.
    pub entity: String,
    /// Lowercase hex HMAC of the data subject's id, or null.
    pub subject_ref: Option<String>,
    /// Lowercase hex of the salted payload commitment ([`crate::payload_commit`]).
    pub payload_commit: String,
    /// The request id that produced the entry, if any.
    pub request_id: Option<String>,
}

/// Why a body text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not JSON, a wrong type, a missing or unknown field.
    #[error("body is not a valid leaf body: {0}")]
    Json(String),
    /// A `v` this crate does not know.
    #[error("body version {0} is not supported (expected {BODY_VERSION})")]
    Version(u32),
    /// A field with a value outside its format.
    #[error("body field {field} is invalid: {reason}")]
    Field {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Valid content, but the text is not its canonical encoding (whitespace, key order, escapes,
    /// a missing null field...): a byte-different body would hash differently.
    #[error("body is not canonical: it differs from the canonical encoding of its own content")]
    NotCanonical,
}

impl LeafBody {
    /// The canonical JSON text (RFC 8785: members in UTF-16 order, no whitespace, nulls written
    /// out). Identical to `canonical_json(&serde_json::to_value(self))` for every body that
    /// [`LeafBody::parse`] accepts; written by hand so it cannot fail.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(256 + self.origin.len() + self.actor.len());
        // All member names are ASCII, so this fixed order is the UTF-16 order.
        out.push_str("{\"actor\":");
        write_string(&mut out, &self.actor);
        out.push_str(",\"at\":");
        out.push_str(&self.at.to_string());
        out.push_str(",\"entity\":");
        write_string(&mut out, &self.entity);
        out.push_str(",\"kind\":");
        write_string(&mut out, &self.kind);
        out.push_str(",\"origin\":");
        write_string(&mut out, &self.origin);
        out.push_str(",\"payload_commit\":");
        write_string(&mut out, &self.payload_commit);
        out.push_str(",\"prev\":");
        write_string(&mut out, &self.prev);
        out.push_str(",\"request_id\":");
        write_opt(&mut out, self.request_id.as_deref());
        out.push_str(",\"seq\":");
        out.push_str(&self.seq.to_string());
        out.push_str(",\"subject_ref\":");
        write_opt(&mut out, self.subject_ref.as_deref());
        out.push_str(",\"v\":");
        out.push_str(&self.v.to_string());
        out.push('}');
        out
    }

    /// `leaf_hash(self.encode().as_bytes())`.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(self.encode().as_bytes())
    }

    /// Parses and validates a body text: JSON with exactly the known fields, `v == BODY_VERSION`,
    /// `prev`, `payload_commit` (and `subject_ref` when present) 64 lowercase hex characters,
    /// `seq` and `at` within ±(2^53-1), and `text` byte-for-byte equal to [`LeafBody::encode`] of
    /// the result (else [`BodyError::NotCanonical`]).
    pub fn parse(text: &str) -> Result<LeafBody, BodyError> {
        let body: LeafBody =
            serde_json::from_str(text).map_err(|e| BodyError::Json(e.to_string()))?;
        if body.v != BODY_VERSION {
            return Err(BodyError::Version(body.v));
        }
        check_hex("prev", &body.prev)?;
        check_hex("payload_commit", &body.payload_commit)?;
        if let Some(s) = &body.subject_ref {
            check_hex("subject_ref", s)?;
        }
        // Beyond 2^53 the number has no RFC 8785 form that every JSON reader agrees on.
        if body.seq > MAX_SAFE_INTEGER {
            return Err(BodyError::Field {
                field: "seq",
                reason: "exceeds 2^53-1".into(),
            });
        }
        if body.at.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(BodyError::Field {
                field: "at",
                reason: "outside ±(2^53-1)".into(),
            });
        }
        if body.encode() != text {
            return Err(BodyError::NotCanonical);
        }
        Ok(body)
    }
}

fn write_opt(out: &mut String, v: Option<&str>) {
    match v {
        Some(s) => write_string(out, s),
        None => out.push_str("null"),
    }
}

fn check_hex(field: &'static str, s: &str) -> Result<(), BodyError> {
    if s.len() == 64 && is_lower_hex(s) {
        Ok(())
    } else {
        Err(BodyError::Field {
            field,
            reason: "must be 64 lowercase hex characters".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canon::canonical_json;

    fn sample() -> LeafBody {
        LeafBody {
            v: BODY_VERSION,
            origin: "accord.example/log".into(),
            seq: 7,
            prev: "ab".repeat(32),
            at: 1_763_884_800_123_456,
            actor: "user:ada \"the\" admin\n".into(),
            kind: "consent.recorded".into(),
            entity: "consent:s1/marketing.email/any".into(),
            subject_ref: Some("cd".repeat(32)),
            payload_commit: "ef".repeat(32),
            request_id: None,
        }
    }

    #[test]
    fn encode_equals_generic_canonicalisation() {
        let b = sample();
        let generic = canonical_json(&serde_json::to_value(&b).unwrap()).unwrap();
        assert_eq!(b.encode(), generic);
        let mut b2 = b.clone();
        b2.subject_ref = None;
        b2.request_id = Some("req-\u{1f600}\u{e000}".into());
        b2.at = -5;
        let generic = canonical_json(&serde_json::to_value(&b2).unwrap()).unwrap();
        assert_eq!(b2.encode(), generic);
    }

    #[test]
    fn parse_round_trip() {
        let b = sample();
        let text = b.encode();
        assert_eq!(LeafBody::parse(&text).unwrap(), b);
        assert_eq!(b.leaf_hash(), leaf_hash(text.as_bytes()));
    }

    #[test]
    fn parse_rejects_non_canonical_text() {
        let text = sample().encode();
        let spaced = text.replacen(":", ": ", 1);
        assert_eq!(LeafBody::parse(&spaced), Err(BodyError::NotCanonical));
        let escaped = text.replacen("accord.example", "accord\\u002eexample", 1);
        assert_eq!(LeafBody::parse(&escaped), Err(BodyError::NotCanonical));
        // Dropping an explicit null changes the bytes even though the value is the same.
        let dropped = text.replacen("\"request_id\":null,", "", 1);
        assert_eq!(LeafBody::parse(&dropped), Err(BodyError::NotCanonical));
        // Reordered members.
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let reordered = serde_json::to_string(&v).unwrap();
        let mut fields: Vec<(String, serde_json::Value)> =
            v.as_object().unwrap().clone().into_iter().collect();
        fields.reverse();
        let rev = format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), v))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(LeafBody::parse(&reordered).unwrap(), sample());
        assert_eq!(LeafBody::parse(&rev), Err(BodyError::NotCanonical));
    }

    #[test]
    fn parse_rejects_bad_fields() {
        let mut b = sample();
        b.v = 2;
        assert_eq!(LeafBody::parse(&b.encode()), Err(BodyError::Version(2)));
        let mut b = sample();
        b.prev = "AB".repeat(32);
        assert!(matches!(
            LeafBody::parse(&b.encode()),
            Err(BodyError::Field { field: "prev", .. })
        ));
        let mut b = sample();
        b.payload_commit = "ab".into();
        assert!(matches!(
            LeafBody::parse(&b.encode()),
            Err(BodyError::Field {
                field: "payload_commit",
                ..
            })
        ));
        let mut b = sample();
        b.subject_ref = Some("zz".repeat(32));
        assert!(matches!(
            LeafBody::parse(&b.encode()),
            Err(BodyError::Field {
                field: "subject_ref",
                ..
            })
        ));
        let mut b = sample();
        b.seq = 1 << 53;
        assert!(matches!(
            LeafBody::parse(&b.encode()),
            Err(BodyError::Field { field: "seq", .. })
        ));
        let text = sample().encode().replacen('{', "{\"extra\":1,", 1);
        assert!(matches!(LeafBody::parse(&text), Err(BodyError::Json(_))));
        assert!(matches!(
            LeafBody::parse("not json"),
            Err(BodyError::Json(_))
        ));
        assert!(matches!(LeafBody::parse(""), Err(BodyError::Json(_))));
    }
}
