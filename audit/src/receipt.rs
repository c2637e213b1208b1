//! Consent receipts: one consent record (ISO/IEC TS 27560 fields) with the ledger entry it was
//! recorded in, the entry's opened payload, its inclusion proof and the signed checkpoint the proof
//! is against. Anyone can check a receipt with [`verify_receipt`] and the log's verifier key,
//! without trusting the server that issued it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::body::LeafBody;
use crate::canon::canonical_json;
use crate::checkpoint::Checkpoint;
use crate::hash;
use crate::merkle::verify_inclusion;
use crate::note::NoteVerifier;
use crate::payload::payload_commit;

/// The receipt format this module reads and the server writes.
pub const RECEIPT_FORMAT: &str = "accord-consent-receipt/v1";
/// The ledger kind of a consent record.
pub const CONSENT_KIND: &str = "consent.recorded";

/// A consent receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentReceipt {
    /// [`RECEIPT_FORMAT`].
    pub format: String,
    /// The record, as ISO/IEC TS 27560 names its fields.
    pub record: ReceiptRecord,
    /// Why the record can be believed.
    pub proof: ReceiptProof,
}

/// The consent record's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiptRecord {
    /// `<origin>/<seq>`: unique across logs.
    pub record_id: String,
    /// The controller: the log's origin.
    pub controller: String,
    /// The data subject's id.
    pub pii_principal_id: String,
    /// The purpose, as defined when the record was made.
    pub purpose: ReceiptPurpose,
    /// Channel (`email`, `sms`, …, `any`).
    pub channel: String,
    /// The decision: `granted`, `withdrawn` or `denied`.
    pub state: String,
    /// GDPR Art. 6 basis.
    pub legal_basis: String,
    /// How the decision was collected.
    pub collection_method: String,
    /// The privacy notice shown, if recorded.
    pub notice: Option<ReceiptNotice>,
    /// When the person acted (RFC 3339, microseconds, UTC).
    pub collected_at: String,
    /// When the ledger recorded it.
    pub recorded_at: String,
    /// When a grant expires.
    pub expires_at: Option<String>,
    /// Jurisdiction (ISO 3166).
    pub jurisdiction: Option<String>,
    /// The system the decision came from.
    pub source: Option<String>,
    /// A Global Privacy Control signal accompanied the decision.
    pub gpc: bool,
}

/// The purpose of a receipt. Its definition is its own ledger entry (`seq`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiptPurpose {
    /// The purpose key.
    pub key: String,
    /// The version in force when the record was made.
    pub version: Option<i64>,
    /// Title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// DPV purpose IRI.
    pub dpv_iri: Option<String>,
    /// The ledger entry that defined this version.
    pub seq: Option<u64>,
}

/// The notice of a receipt. Its publication is its own ledger entry (`seq`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiptNotice {
    /// Notice key.
    pub key: String,
    /// Notice version.
    pub version: String,
    /// Where the notice text is.
    pub url: Option<String>,
    /// SHA-256 of the notice text.
    pub text_hash: Option<String>,
    /// The ledger entry that published it.
    pub seq: Option<u64>,
}

/// The ledger evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiptProof {
    /// The log's origin.
    pub origin: String,
    /// The entry's seq (its leaf index).
    pub seq: u64,
    /// The canonical leaf body.
    pub leaf_body: String,
    /// SHA-256(0x00 ‖ body), hex.
    pub leaf_hash: String,
    /// The canonical payload the body commits to.
    pub payload: String,
    /// The payload's salt, hex.
    pub salt: String,
    /// The size of the tree the proof is against.
    pub tree_size: u64,
    /// RFC 9162 inclusion proof, hex hashes.
    pub inclusion_proof: Vec<String>,
    /// The signed checkpoint (C2SP note) for `tree_size`.
    pub checkpoint: String,
    /// The log's verifier key as the server gave it (pin your own copy).
    pub verifier_key: String,
}

/// What a verified receipt shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceiptReport {
    /// The entry's seq.
    pub seq: u64,
    /// The tree size it is proven in.
    pub tree_size: u64,
    /// The checkpoint root, hex.
    pub root: String,
    /// Whether the key was given by the verifier (true) or taken from the receipt (false).
    pub key_pinned: bool,
    /// The subject, purpose, channel and decision proven.
    pub subject: String,
    /// Purpose key.
    pub purpose: String,
    /// Channel.
    pub channel: String,
    /// Decision.
    pub state: String,
}

/// Checks a receipt: the body hashes to the leaf, commits to the payload (with the salt), is a
/// consent record of this seq and origin; the record's fields are the payload's; the inclusion
/// proof leads to the root of a checkpoint signed by `key` (or, unpinned, the receipt's own key).
/// The error says which check failed.
pub fn verify_receipt(text: &str, key: Option<&NoteVerifier>) -> Result<ReceiptReport, String> {
    let r: ConsentReceipt =
        serde_json::from_str(text).map_err(|e| format!("not a consent receipt: {e}"))?;
    if r.format != RECEIPT_FORMAT {
        return Err(format!(
            "format is {:?}, expected {RECEIPT_FORMAT:?}",
            r.format
        ));
    }
    let p = &r.proof;
    let body = LeafBody::parse(&p.leaf_body).map_err(|e| format!("leaf body: {e}"))?;
    if hash::to_hex(&body.leaf_hash()) != p.leaf_hash {
        return Err("leaf hash does not match the leaf body".into());
    }
    if body.seq != p.seq || body.origin != p.origin {
        return Err(format!(
            "the leaf body is seq {} of {:?}, the receipt claims seq {} of {:?}",
            body.seq, body.origin, p.seq, p.origin
        ));
    }
    if body.kind != CONSENT_KIND {
        return Err(format!(
            "the entry is a {:?}, not a consent record",
            body.kind
        ));
    }
    let salt: [u8; 32] = hex::decode(&p.salt)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or("salt is not 64 hexadecimal digits")?;
    let payload: Value =
        serde_json::from_str(&p.payload).map_err(|e| format!("payload is not JSON: {e}"))?;
    let canonical = canonical_json(&payload).map_err(|e| format!("payload: {e}"))?;
    if canonical != p.payload {
        return Err("payload is not in canonical form".into());
    }
    if hash::to_hex(&payload_commit(&salt, &canonical)) != body.payload_commit {
        return Err("payload (with its salt) does not match the body's payload_commit".into());
    }
    check_record(&r.record, &payload, &body)?;
    let (verifier, pinned) = match key {
        Some(k) => (k.clone(), true),
        None => (
            NoteVerifier::parse(&p.verifier_key).map_err(|e| format!("verifier_key: {e}"))?,
            false,
        ),
    };
    let cp = Checkpoint::open(&p.checkpoint, &verifier).map_err(|e| format!("checkpoint: {e}"))?;
    if cp.origin != p.origin || cp.size != p.tree_size {
        return Err(format!(
            "the checkpoint is for size {} of {:?}, the proof for size {} of {:?}",
            cp.size, cp.origin, p.tree_size, p.origin
        ));
    }
    let proof = p
        .inclusion_proof
        .iter()
        .map(|h| hex::decode(h).map_err(|_| format!("inclusion proof hash {h:?} is not hex")))
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = hash::from_hex(&p.leaf_hash).map_err(|e| format!("leaf hash: {e}"))?;
    verify_inclusion(&leaf, p.seq, p.tree_size, &proof, &cp.root)
        .map_err(|e| format!("inclusion proof: {e}"))?;
    Ok(ReceiptReport {
        seq: p.seq,
        tree_size: p.tree_size,
        root: hash::to_hex(&cp.root),
        key_pinned: pinned,
        subject: r.record.pii_principal_id.clone(),
        purpose: r.record.purpose.key.clone(),
        channel: r.record.channel.clone(),
        state: r.record.state.clone(),
    })
}

/// The record's fields must be exactly what the committed payload says.
fn check_record(rec: &ReceiptRecord, payload: &Value, body: &LeafBody) -> Result<(), String> {
    let s = |k: &str| payload.get(k).and_then(Value::as_str);
    let t = |k: &str| payload.get(k).and_then(Value::as_i64).map(rfc3339_micros);
    let mismatch = |field: &str| Err(format!("record.{field} is not what the ledger entry says"));
    if payload.get("type").and_then(Value::as_str) != Some("consent_recorded") {
        return Err("the payload is not a consent record".into());
    }
    if Some(rec.pii_principal_id.as_str()) != s("subject") {
        return mismatch("pii_principal_id");
    }
    if Some(rec.purpose.key.as_str()) != s("purpose") {
        return mismatch("purpose.key");
    }
    if Some(rec.channel.as_str()) != s("channel") {
        return mismatch("channel");
    }
    if Some(rec.state.as_str()) != s("decision") {
        return mismatch("state");
    }
    if Some(rec.legal_basis.as_str()) != s("legal_basis") {
        return mismatch("legal_basis");
    }
    if Some(rec.collection_method.as_str()) != s("method") {
        return mismatch("collection_method");
    }
    if Some(rec.collected_at.clone()) != t("collected_at") {
        return mismatch("collected_at");
    }
    if rec.expires_at != t("expires_at") {
        return mismatch("expires_at");
    }
    if rec.recorded_at != rfc3339_micros(body.at) {
        return mismatch("recorded_at");
    }
    if rec.jurisdiction.as_deref() != s("jurisdiction") {
        return mismatch("jurisdiction");
    }
    if rec.source.as_deref() != s("source") {
        return mismatch("source");
    }
    if Some(rec.gpc) != payload.get("gpc").and_then(Value::as_bool) {
        return mismatch("gpc");
    }
    let notice = payload.get("notice").filter(|n| !n.is_null());
    let claimed = rec
        .notice
        .as_ref()
        .map(|n| (n.key.as_str(), n.version.as_str()));
    let recorded = notice.map(|n| {
        (
            n.get("key").and_then(Value::as_str).unwrap_or_default(),
            n.get("version").and_then(Value::as_str).unwrap_or_default(),
        )
    });
    if claimed != recorded {
        return mismatch("notice");
    }
    if rec.record_id != format!("{}/{}", body.origin, body.seq) || rec.controller != body.origin {
        return mismatch("record_id");
    }
    Ok(())
}

/// (year, month, day) of a count of days since 1970-01-01 in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` for microseconds since the Unix epoch (UTC, proleptic Gregorian).
pub fn rfc3339_micros(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_instants_like_rfc3339() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_micros(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(
            rfc3339_micros(951_782_400_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(rfc3339_micros(-1), "1969-12-31T23:59:59.999999Z");
    }
}
