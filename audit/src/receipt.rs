//! Consent receipts: one consent record (ISO/IEC TS 27560 fields) with the ledger entry it was
//! recorded in, the entry's opened payload, its inclusion proof and the signed checkpoint the proof
//! is against. Anyone can check a receipt with [`verify_receipt`] and the log's verifier key,
//! without trusting the server that issued it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::body::LeafBody;
use crate::canon::{canonical_json, duplicate_member};
use crate::checkpoint::Checkpoint;
use crate::hash;
use crate::merkle::verify_inclusion;
use crate::note::NoteVerifier;
use crate::payload::payload_commit;

/// The receipt format this module reads and the server writes.
pub const RECEIPT_FORMAT: &str = "accord-consent-receipt/v1";
/// The ledger kind of a consent record.
pub const CONSENT_KIND: &str = "consent.recorded";

/// A consent receipt. Reading refuses members other than those named here (in every part), so
/// nothing in a receipt can go unread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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

/// Checks a receipt: no member name appears twice in one object (of the receipt, its payload or
/// its leaf body) and no member is unknown; the body hashes to the leaf, commits to the payload
/// (with the salt), is a consent record of this seq and origin; the record's fields are the
/// payload's; the checkpoint's tree size covers the seq and the inclusion proof leads to the root
/// of that checkpoint, signed by `key` (or, unpinned, by the receipt's own key:
/// [`ReceiptReport::key_pinned`] is then false, and the receipt proves only that it is consistent
/// with itself). The error says which check failed.
///
/// What the receipt proves is what the consent entry holds. The purpose's `version`, `title`,
/// `description`, `dpv_iri` and `seq`, and the notice's `url`, `text_hash` and `seq`, come from
/// other ledger entries the receipt carries no proof of: they are not checked.
pub fn verify_receipt(text: &str, key: Option<&NoteVerifier>) -> Result<ReceiptReport, String> {
    unique("the receipt", text)?;
    let r: ConsentReceipt =
        serde_json::from_str(text).map_err(|e| format!("not a consent receipt: {e}"))?;
    if r.format != RECEIPT_FORMAT {
        return Err(format!(
            "format is {:?}, expected {RECEIPT_FORMAT:?}",
            r.format
        ));
    }
    let p = &r.proof;
    unique("the leaf body", &p.leaf_body)?;
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
    unique("the payload", &p.payload)?;
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
    if p.seq >= cp.size {
        return Err(format!(
            "the checkpoint at size {} does not cover seq {}: a tree of that size holds seqs 0 to {}",
            cp.size,
            p.seq,
            cp.size.saturating_sub(1)
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

/// Refuses JSON `text` with a member name repeated in one object: `serde_json` would keep the
/// last silently, another reader the first. Text that is not JSON is left to the parse after.
fn unique(what: &str, text: &str) -> Result<(), String> {
    match duplicate_member(text) {
        Ok(Some(m)) => Err(format!(
            "{what} has the member name {:?} twice in one object (at {}): a name may appear only once",
            m.name, m.path
        )),
        _ => Ok(()),
    }
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
    use crate::builder::{LedgerBuilder, NewEntry};
    use crate::export::ExportLine;
    use crate::merkle::{MemoryTree, inclusion_proof};
    use crate::note::NoteSigner;
    use ed25519_dalek::SigningKey;
    use serde_json::json;

    const ORIGIN: &str = "accord.receipt-test/log";

    fn signer() -> NoteSigner {
        NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[3; 32])).unwrap()
    }

    fn consent(i: u64) -> NewEntry {
        NewEntry {
            at: 1_763_884_800_000_000 + i as i64,
            actor: "svc:crm".into(),
            kind: CONSENT_KIND.into(),
            entity: "consent:marketing.email".into(),
            subject_ref: Some(format!("{i:064x}")),
            request_id: None,
            payload: json!({
                "type": "consent_recorded",
                "subject": format!("s{i}"),
                "purpose": "marketing.email",
                "channel": "email",
                "decision": "granted",
                "legal_basis": "consent",
                "method": "web_form",
                "notice": null,
                "collected_at": 1_763_884_000_000_000i64,
                "expires_at": null,
                "jurisdiction": "EU",
                "source": null,
                "gpc": false,
            }),
            salt: [i as u8 + 1; 32],
        }
    }

    /// The receipt of seq 2 in a ledger of 5 entries, proven against a checkpoint at `size`
    /// (with a proof made for `proof_size`).
    fn receipt_at(size: u64, proof_size: u64) -> ConsentReceipt {
        let mut b = LedgerBuilder::new(ORIGIN, signer());
        let mut leaves = Vec::new();
        let mut note = String::new();
        for i in 0..5 {
            leaves.push(b.append(consent(i)).unwrap().1);
            if b.size() == size {
                note = b.checkpoint_note().unwrap();
            }
        }
        let seq = 2;
        let ExportLine::Entry {
            body,
            leaf_hash,
            payload: crate::PayloadRecord::Open { salt, data },
            ..
        } = b.lines()[seq].clone()
        else {
            unreachable!()
        };
        let mut tree = MemoryTree::from_leaves(leaves);
        let proof = inclusion_proof(&mut tree, seq as u64, proof_size).unwrap_or_default();
        ConsentReceipt {
            format: RECEIPT_FORMAT.into(),
            record: ReceiptRecord {
                record_id: format!("{ORIGIN}/{seq}"),
                controller: ORIGIN.into(),
                pii_principal_id: "s2".into(),
                purpose: ReceiptPurpose {
                    key: "marketing.email".into(),
                    version: Some(1),
                    title: Some("Marketing e-mail".into()),
                    description: None,
                    dpv_iri: None,
                    seq: Some(0),
                },
                channel: "email".into(),
                state: "granted".into(),
                legal_basis: "consent".into(),
                collection_method: "web_form".into(),
                notice: None,
                collected_at: rfc3339_micros(1_763_884_000_000_000),
                recorded_at: rfc3339_micros(1_763_884_800_000_002),
                expires_at: None,
                jurisdiction: Some("EU".into()),
                source: None,
                gpc: false,
            },
            proof: ReceiptProof {
                origin: ORIGIN.into(),
                seq: seq as u64,
                leaf_body: body,
                leaf_hash,
                payload: canonical_json(&data).unwrap(),
                salt,
                tree_size: size,
                inclusion_proof: proof.iter().map(hash::to_hex).collect(),
                checkpoint: note,
                verifier_key: signer().verifier().to_vkey(),
            },
        }
    }

    fn text(r: &ConsentReceipt) -> String {
        serde_json::to_string(r).unwrap()
    }

    #[test]
    fn a_receipt_verifies_and_says_whose_key_it_used() {
        let r = text(&receipt_at(5, 5));
        let key = signer().verifier();
        let report = verify_receipt(&r, Some(&key)).unwrap();
        assert_eq!((report.seq, report.tree_size), (2, 5));
        assert!(report.key_pinned);
        assert_eq!(report.state, "granted");
        assert!(!verify_receipt(&r, None).unwrap().key_pinned);
        let other = NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[4; 32])).unwrap();
        let e = verify_receipt(&r, Some(&other.verifier())).unwrap_err();
        assert!(e.starts_with("checkpoint: "), "{e}");
    }

    #[test]
    fn duplicate_member_names_are_refused() {
        let r = text(&receipt_at(5, 5));
        let key = signer().verifier();
        // In the receipt: a second "state" that a first-wins reader would show.
        let dup = r.replacen("\"state\":", "\"state\":\"withdrawn\",\"state\":", 1);
        let e = verify_receipt(&dup, Some(&key)).unwrap_err();
        assert_eq!(
            e,
            "the receipt has the member name \"state\" twice in one object (at $.record.state): a name may appear only once"
        );
        // In the payload text, where the later value is the committed one.
        let dup = r.replacen(
            "\"payload\":\"{",
            "\"payload\":\"{\\\"decision\\\":\\\"withdrawn\\\",",
            1,
        );
        let e = verify_receipt(&dup, Some(&key)).unwrap_err();
        assert!(
            e.starts_with(
                "the payload has the member name \"decision\" twice in one object (at $.decision)"
            ),
            "{e}"
        );
        // In the leaf body.
        let dup = r.replacen("\"leaf_body\":\"{", "\"leaf_body\":\"{\\\"seq\\\":9,", 1);
        let e = verify_receipt(&dup, Some(&key)).unwrap_err();
        assert!(
            e.starts_with("the leaf body has the member name \"seq\""),
            "{e}"
        );
    }

    #[test]
    fn unknown_members_are_refused() {
        let r = text(&receipt_at(5, 5));
        let key = signer().verifier();
        for (at, name) in [
            ("\"format\":", "verified"),
            ("\"state\":", "verified"),
            ("\"origin\":", "verified"),
        ] {
            let extra = r.replacen(at, &format!("\"{name}\":true,{at}"), 1);
            let e = verify_receipt(&extra, Some(&key)).unwrap_err();
            assert!(e.contains("unknown field `verified`"), "{e}");
        }
    }

    #[test]
    fn the_checkpoint_must_cover_the_entry() {
        // A checkpoint at size 2 holds seqs 0 and 1, not the receipt's seq 2.
        let r = text(&receipt_at(2, 2));
        let e = verify_receipt(&r, Some(&signer().verifier())).unwrap_err();
        assert_eq!(
            e,
            "the checkpoint at size 2 does not cover seq 2: a tree of that size holds seqs 0 to 1"
        );
        let r = text(&receipt_at(3, 3));
        assert!(verify_receipt(&r, Some(&signer().verifier())).is_ok());
    }

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
