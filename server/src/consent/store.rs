//! Consent tables. Written only by projections of consent events (inside their ledger append);
//! read by the service, the API and the index loader.

use diesel::prelude::*;

use super::model::{
    Channel, ConsentRecord, Decision, Evidence, LegalBasis, Method, NoticeDef, NoticeRef,
    PurposeDef, PurposeStatus,
};
use crate::clock::Timestamp;
use crate::db::AnyConnection;
use crate::db::schema::{consent_records, notices, purposes};
use crate::vocab::Seq;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = purposes, treat_none_as_null = true)]
pub struct PurposeRow {
    pub key: String,
    pub version: i32,
    pub title: String,
    pub description: String,
    pub legal_basis: String,
    pub consent_required: bool,
    pub lifetime_days: Option<i32>,
    pub gpc_applies: bool,
    pub dpv_iri: Option<String>,
    pub status: String,
    pub at: i64,
    pub seq: Seq,
}

fn corrupt(table: &str, column: &str, value: &str) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(
        format!("{table}.{column} holds {value:?}, which is not a valid value").into(),
    )
}

impl PurposeRow {
    pub fn new(def: &PurposeDef, at: Timestamp, seq: Seq) -> Self {
        PurposeRow {
            key: def.key.clone(),
            version: def.version,
            title: def.title.clone(),
            description: def.description.clone(),
            legal_basis: def.legal_basis.as_str().into(),
            consent_required: def.consent_required,
            lifetime_days: def.lifetime_days,
            gpc_applies: def.gpc_applies,
            dpv_iri: def.dpv_iri.clone(),
            status: def.status.as_str().into(),
            at: at.micros(),
            seq,
        }
    }

    pub fn def(&self) -> QueryResult<PurposeDef> {
        Ok(PurposeDef {
            key: self.key.clone(),
            version: self.version,
            title: self.title.clone(),
            description: self.description.clone(),
            legal_basis: LegalBasis::parse(&self.legal_basis)
                .ok_or_else(|| corrupt("purposes", "legal_basis", &self.legal_basis))?,
            consent_required: self.consent_required,
            lifetime_days: self.lifetime_days,
            gpc_applies: self.gpc_applies,
            dpv_iri: self.dpv_iri.clone(),
            status: PurposeStatus::parse(&self.status)
                .ok_or_else(|| corrupt("purposes", "status", &self.status))?,
        })
    }
}

pub fn insert_purpose(conn: &mut AnyConnection, row: &PurposeRow) -> QueryResult<()> {
    diesel::insert_into(purposes::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The latest version of a purpose.
pub fn latest_purpose(conn: &mut AnyConnection, key: &str) -> QueryResult<Option<PurposeRow>> {
    purposes::table
        .filter(purposes::key.eq(key))
        .order(purposes::version.desc())
        .select(PurposeRow::as_select())
        .first(conn)
        .optional()
}

/// Every version of every purpose, in ledger order.
pub fn all_purpose_versions(conn: &mut AnyConnection) -> QueryResult<Vec<PurposeRow>> {
    purposes::table
        .order(purposes::seq.asc())
        .select(PurposeRow::as_select())
        .load(conn)
}

/// Every version of one purpose, oldest first.
pub fn purpose_versions(conn: &mut AnyConnection, key: &str) -> QueryResult<Vec<PurposeRow>> {
    purposes::table
        .filter(purposes::key.eq(key))
        .order(purposes::version.asc())
        .select(PurposeRow::as_select())
        .load(conn)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = notices)]
pub struct NoticeRow {
    pub key: String,
    pub version: String,
    pub text_hash: String,
    pub url: String,
    pub effective_at: i64,
    pub at: i64,
    pub seq: Seq,
}

impl NoticeRow {
    pub fn new(def: &NoticeDef, at: Timestamp, seq: Seq) -> Self {
        NoticeRow {
            key: def.key.clone(),
            version: def.version.clone(),
            text_hash: def.text_hash.clone(),
            url: def.url.clone(),
            effective_at: def.effective_at.micros(),
            at: at.micros(),
            seq,
        }
    }
}

pub fn insert_notice(conn: &mut AnyConnection, row: &NoticeRow) -> QueryResult<()> {
    diesel::insert_into(notices::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

pub fn notice(
    conn: &mut AnyConnection,
    key: &str,
    version: &str,
) -> QueryResult<Option<NoticeRow>> {
    notices::table
        .filter(notices::key.eq(key))
        .filter(notices::version.eq(version))
        .select(NoticeRow::as_select())
        .first(conn)
        .optional()
}

pub fn all_notices(conn: &mut AnyConnection) -> QueryResult<Vec<NoticeRow>> {
    notices::table
        .order((
            notices::key.asc(),
            notices::effective_at.asc(),
            notices::seq.asc(),
        ))
        .select(NoticeRow::as_select())
        .load(conn)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = consent_records, treat_none_as_null = true)]
pub struct RecordRow {
    pub seq: Seq,
    pub subject: String,
    pub purpose: String,
    pub channel: String,
    pub decision: String,
    pub legal_basis: String,
    pub method: String,
    pub notice_key: Option<String>,
    pub notice_version: Option<String>,
    pub collected_at: i64,
    pub expires_at: Option<i64>,
    pub jurisdiction: Option<String>,
    pub source: Option<String>,
    pub gpc: bool,
    pub evidence: Option<String>,
    pub fingerprint: String,
}

impl RecordRow {
    pub fn new(r: &ConsentRecord, seq: Seq) -> Self {
        RecordRow {
            seq,
            subject: r.subject.clone(),
            purpose: r.purpose.clone(),
            channel: r.channel.as_str().into(),
            decision: r.decision.as_str().into(),
            legal_basis: r.legal_basis.as_str().into(),
            method: r.method.as_str().into(),
            notice_key: r.notice.as_ref().map(|n| n.key.clone()),
            notice_version: r.notice.as_ref().map(|n| n.version.clone()),
            collected_at: r.collected_at.micros(),
            expires_at: r.expires_at.map(Timestamp::micros),
            jurisdiction: r.jurisdiction.clone(),
            source: r.source.clone(),
            gpc: r.gpc,
            evidence: r
                .evidence
                .as_ref()
                .and_then(|e| serde_json::to_string(e).ok()),
            fingerprint: r.fingerprint.clone(),
        }
    }

    /// The record as its event carried it.
    pub fn record(&self) -> QueryResult<ConsentRecord> {
        let t = "consent_records";
        Ok(ConsentRecord {
            subject: self.subject.clone(),
            purpose: self.purpose.clone(),
            channel: Channel::parse(&self.channel)
                .ok_or_else(|| corrupt(t, "channel", &self.channel))?,
            decision: Decision::parse(&self.decision)
                .ok_or_else(|| corrupt(t, "decision", &self.decision))?,
            legal_basis: LegalBasis::parse(&self.legal_basis)
                .ok_or_else(|| corrupt(t, "legal_basis", &self.legal_basis))?,
            method: Method::parse(&self.method)
                .ok_or_else(|| corrupt(t, "method", &self.method))?,
            notice: match (&self.notice_key, &self.notice_version) {
                (Some(k), Some(v)) => Some(NoticeRef {
                    key: k.clone(),
                    version: v.clone(),
                }),
                _ => None,
            },
            collected_at: Timestamp(self.collected_at),
            expires_at: self.expires_at.map(Timestamp),
            jurisdiction: self.jurisdiction.clone(),
            source: self.source.clone(),
            gpc: self.gpc,
            evidence: match &self.evidence {
                None => None,
                Some(e) => Some(
                    serde_json::from_str::<Evidence>(e).map_err(|_| corrupt(t, "evidence", e))?,
                ),
            },
            fingerprint: self.fingerprint.clone(),
        })
    }
}

/// Inserts consent records (as [`crate::insert_all!`] does best on each backend).
pub fn insert_records(conn: &mut AnyConnection, rows: &[RecordRow]) -> QueryResult<()> {
    crate::insert_all!(conn, consent_records::table, rows)
}

/// The seq of the record with this fingerprint, if one exists.
pub fn seq_by_fingerprint(conn: &mut AnyConnection, fingerprint: &str) -> QueryResult<Option<Seq>> {
    consent_records::table
        .filter(consent_records::fingerprint.eq(fingerprint))
        .select(consent_records::seq)
        .first(conn)
        .optional()
}

/// Which of `fingerprints` are already recorded.
pub fn existing_fingerprints(
    conn: &mut AnyConnection,
    fingerprints: &[&str],
) -> QueryResult<Vec<String>> {
    let mut out = Vec::new();
    for chunk in fingerprints.chunks(500) {
        out.extend(
            consent_records::table
                .filter(consent_records::fingerprint.eq_any(chunk))
                .select(consent_records::fingerprint)
                .load::<String>(conn)?,
        );
    }
    Ok(out)
}

/// A subject's records in ledger order.
pub fn subject_history(conn: &mut AnyConnection, subject: &str) -> QueryResult<Vec<RecordRow>> {
    consent_records::table
        .filter(consent_records::subject.eq(subject))
        .order(consent_records::seq.asc())
        .select(RecordRow::as_select())
        .load(conn)
}

/// At most `limit` consent records after seq `after`, in seq order.
pub fn records_after(
    conn: &mut AnyConnection,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<RecordRow>> {
    consent_records::table
        .filter(consent_records::seq.gt(after))
        .order(consent_records::seq.asc())
        .limit(limit)
        .select(RecordRow::as_select())
        .load(conn)
}

pub fn delete_subject(conn: &mut AnyConnection, subject: &str) -> QueryResult<usize> {
    diesel::delete(consent_records::table.filter(consent_records::subject.eq(subject)))
        .execute(conn)
}

/// The columns the in-memory index needs.
pub type IndexRow = (
    Seq,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
);

/// Records with `after <= seq < before`, in seq order, at most `limit`, as the index needs them.
pub fn index_page(
    conn: &mut AnyConnection,
    from: Seq,
    before: Seq,
    limit: i64,
) -> QueryResult<Vec<IndexRow>> {
    consent_records::table
        .filter(consent_records::seq.ge(from))
        .filter(consent_records::seq.lt(before))
        .order(consent_records::seq.asc())
        .limit(limit)
        .select((
            consent_records::seq,
            consent_records::subject,
            consent_records::purpose,
            consent_records::channel,
            consent_records::decision,
            consent_records::legal_basis,
            consent_records::collected_at,
            consent_records::expires_at,
        ))
        .load(conn)
}
