//! Consent receipts (`GET /v1/consents/receipts/{seq}`): the record with its ledger proof, in the
//! format `accord-audit verify-receipt` checks (see `accord_audit::receipt`).

use accord_audit::hash;
use accord_audit::receipt::{
    CONSENT_KIND, ConsentReceipt, RECEIPT_FORMAT, ReceiptNotice, ReceiptProof, ReceiptPurpose,
    ReceiptRecord,
};
use actix_web::web;

use super::events::ConsentEvent;
use super::model::ConsentRecord;
use super::store;
use crate::clock::Timestamp;
use crate::db::AnyConnection;
use crate::error::AppError;
use crate::ledger::read as ledger_read;
use crate::ledger::{Ledger, proofs};
use crate::vocab::Seq;

/// Builds the receipt of the consent record at `seq`, proven against the latest checkpoint
/// (publishing one first when none covers the entry yet). With `subject`, only a record of that
/// subject has a receipt. Nothing is published for a seq that is not a consent record (or not the
/// subject's, or erased).
pub async fn receipt(
    ledger: &Ledger,
    pool: &crate::db::Pool,
    seq: Seq,
    subject: Option<String>,
) -> Result<ConsentReceipt, AppError> {
    let p = pool.clone();
    let covered = web::block(move || -> Result<bool, AppError> {
        let mut c = p.get()?;
        let record = record_at(&mut c, seq)?;
        if let Some(s) = &subject
            && *s != record.subject
        {
            return Err(not_a_record(seq));
        }
        Ok(ledger_read::latest_checkpoint(&mut c)?.is_some_and(|cp| cp.size > seq))
    })
    .await??;
    if !covered {
        ledger.publish_checkpoint().await?;
    }
    let p = pool.clone();
    let origin = ledger.origin().to_string();
    let vkey = ledger.verifier_key();
    web::block(move || {
        let mut c = p.get()?;
        build(&mut c, seq, origin, vkey)
    })
    .await?
}

fn not_a_record(seq: Seq) -> AppError {
    AppError::NotFound(format!("ledger entry {seq} is not a consent record"))
}

/// The consent record at `seq`, if the entry is one and is not erased.
fn record_at(c: &mut AnyConnection, seq: Seq) -> Result<ConsentRecord, AppError> {
    Ok(*open_entry(c, seq)?.6)
}

#[allow(clippy::type_complexity)]
fn open_entry(
    c: &mut AnyConnection,
    seq: Seq,
) -> Result<
    (
        String,
        String,
        i64,
        String,
        String,
        String,
        Box<ConsentRecord>,
    ),
    AppError,
> {
    let ledger_read::StoredEntry {
        body,
        leaf_hash,
        at,
        kind,
        salt,
        payload,
        redacted_by,
    } = ledger_read::entry(c, seq.get())?.ok_or_else(|| not_a_record(seq))?;
    if kind != CONSENT_KIND {
        return Err(not_a_record(seq));
    }
    let (Some(salt), Some(payload)) = (salt, payload) else {
        return Err(AppError::NotFound(format!(
            "the consent record at seq {seq} was erased (by the erasure at seq {}); no receipt can be given",
            redacted_by.unwrap_or_default()
        )));
    };
    let ConsentEvent::ConsentRecorded(r) = serde_json::from_str::<ConsentEvent>(&payload)
        .map_err(|e| AppError::internal(anyhow::anyhow!("entry {seq} is unreadable: {e}")))?
    else {
        return Err(not_a_record(seq));
    };
    Ok((body, leaf_hash, at, kind, salt, payload, r))
}

fn build(
    c: &mut AnyConnection,
    seq: Seq,
    origin: String,
    verifier_key: String,
) -> Result<ConsentReceipt, AppError> {
    let (body, leaf_hash, at, _, salt, payload, r) = open_entry(c, seq)?;
    let cp = ledger_read::latest_checkpoint(c)?
        .filter(|cp| cp.size > seq)
        .ok_or_else(|| {
            AppError::Unavailable("no checkpoint covers this entry yet; retry".into())
        })?;
    let size = cp.size.get();
    let path = proofs::inclusion(c, seq.get(), size)?;
    let purpose = store::purpose_versions(c, &r.purpose)?
        .into_iter()
        .rev()
        .find(|v| v.at <= at);
    let notice = match &r.notice {
        None => None,
        Some(n) => {
            let row = store::notice(c, &n.key, &n.version)?;
            Some(ReceiptNotice {
                key: n.key.clone(),
                version: n.version.clone(),
                url: row.as_ref().map(|r| r.url.clone()),
                text_hash: row.as_ref().map(|r| r.text_hash.clone()),
                seq: row.map(|r| r.seq.get()),
            })
        }
    };
    Ok(ConsentReceipt {
        format: RECEIPT_FORMAT.to_string(),
        record: ReceiptRecord {
            record_id: format!("{origin}/{seq}"),
            controller: origin.clone(),
            pii_principal_id: r.subject.clone(),
            purpose: ReceiptPurpose {
                key: r.purpose.clone(),
                version: purpose.as_ref().map(|p| i64::from(p.version)),
                title: purpose.as_ref().map(|p| p.title.clone()),
                description: purpose.as_ref().map(|p| p.description.clone()),
                dpv_iri: purpose.as_ref().and_then(|p| p.dpv_iri.clone()),
                seq: purpose.as_ref().map(|p| p.seq.get()),
            },
            channel: r.channel.as_str().into(),
            state: r.decision.as_str().into(),
            legal_basis: r.legal_basis.as_str().into(),
            collection_method: r.method.as_str().into(),
            notice,
            collected_at: r.collected_at.to_rfc3339(),
            recorded_at: Timestamp(at).to_rfc3339(),
            expires_at: r.expires_at.map(Timestamp::to_rfc3339),
            jurisdiction: r.jurisdiction.clone(),
            source: r.source.clone(),
            gpc: r.gpc,
        },
        proof: ReceiptProof {
            origin,
            seq: seq.get(),
            leaf_body: body,
            leaf_hash,
            payload,
            salt,
            tree_size: size,
            inclusion_proof: path.iter().map(hash::to_hex).collect(),
            checkpoint: cp.note,
            verifier_key,
        },
    })
}
