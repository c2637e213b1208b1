//! Vendor and DPA tables. Written only by projections of their events (inside the ledger append),
//! and the documents' bytes by the upload beside it; read by the service and the API.

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::model::{
    Clause, DpaVersionDef, SubprocessorDecision, Transfer, VendorDef, VendorRole, VendorStatus,
    VersionStatus,
};
use crate::clock::Timestamp;
use crate::db::AnyConnection;
use crate::db::schema::{
    dpa_document_bytes, dpa_documents, dpa_versions, dpas, subprocessor_decisions, vendors,
};
use crate::vocab::{Country, Seq};

fn corrupt(table: &str, column: &str, value: &str) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(
        format!("{table}.{column} holds {value:?}, which is not a valid value").into(),
    )
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn from_json<T: serde::de::DeserializeOwned>(table: &str, column: &str, s: &str) -> QueryResult<T> {
    serde_json::from_str(s).map_err(|_| corrupt(table, column, s))
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = vendors, treat_none_as_null = true)]
pub struct VendorRow {
    pub id: String,
    pub version: i32,
    pub name: String,
    pub legal_name: Option<String>,
    pub country: String,
    pub role: String,
    pub contact: Option<String>,
    pub status: String,
    pub parent: Option<String>,
    pub data_categories: String,
    pub at: i64,
    pub seq: Seq,
}

impl VendorRow {
    pub fn new(def: &VendorDef, at: Timestamp, seq: Seq) -> Self {
        VendorRow {
            id: def.id.clone(),
            version: def.version,
            name: def.name.clone(),
            legal_name: def.legal_name.clone(),
            country: def.country.as_str().into(),
            role: def.role.as_str().into(),
            contact: def.contact.clone(),
            status: def.status.as_str().into(),
            parent: def.parent.clone(),
            data_categories: to_json(&def.data_categories),
            at: at.micros(),
            seq,
        }
    }

    pub fn def(&self) -> QueryResult<VendorDef> {
        let t = "vendors";
        Ok(VendorDef {
            id: self.id.clone(),
            version: self.version,
            name: self.name.clone(),
            legal_name: self.legal_name.clone(),
            country: Country::parse("country", &self.country)
                .map_err(|_| corrupt(t, "country", &self.country))?,
            role: VendorRole::parse(&self.role).ok_or_else(|| corrupt(t, "role", &self.role))?,
            contact: self.contact.clone(),
            status: VendorStatus::parse(&self.status)
                .ok_or_else(|| corrupt(t, "status", &self.status))?,
            parent: self.parent.clone(),
            data_categories: from_json(t, "data_categories", &self.data_categories)?,
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = dpas, treat_none_as_null = true)]
pub struct DpaRow {
    pub id: String,
    pub vendor: String,
    pub at: i64,
    pub seq: Seq,
    pub terminated_at: Option<i64>,
    pub termination_reason: Option<String>,
    pub terminated_seq: Option<Seq>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = dpa_versions, treat_none_as_null = true)]
pub struct DpaVersionRow {
    pub dpa: String,
    pub version: i32,
    pub reference: String,
    pub signed_on: String,
    pub effective_from: i64,
    pub expires_at: Option<i64>,
    pub purposes: String,
    pub data_categories: String,
    pub clauses: String,
    pub transfers: String,
    pub document_sha256: Option<String>,
    pub status: String,
    pub reminder_days: String,
    pub at: i64,
    pub seq: Seq,
}

impl DpaVersionRow {
    pub fn new(def: &DpaVersionDef, at: Timestamp, seq: Seq) -> Self {
        DpaVersionRow {
            dpa: def.dpa.clone(),
            version: def.version,
            reference: def.reference.clone(),
            signed_on: def.signed_on.clone(),
            effective_from: def.effective_from.micros(),
            expires_at: def.expires_at.map(Timestamp::micros),
            purposes: to_json(&def.purposes),
            data_categories: to_json(&def.data_categories),
            clauses: to_json(&def.clauses),
            transfers: to_json(&def.transfers),
            document_sha256: def.document_sha256.clone(),
            status: def.status.as_str().into(),
            reminder_days: to_json(&def.reminder_days),
            at: at.micros(),
            seq,
        }
    }

    pub fn def(&self) -> QueryResult<DpaVersionDef> {
        let t = "dpa_versions";
        let clauses: BTreeMap<Clause, bool> = from_json(t, "clauses", &self.clauses)?;
        let transfers: Vec<Transfer> = from_json(t, "transfers", &self.transfers)?;
        Ok(DpaVersionDef {
            dpa: self.dpa.clone(),
            version: self.version,
            reference: self.reference.clone(),
            signed_on: self.signed_on.clone(),
            effective_from: Timestamp(self.effective_from),
            expires_at: self.expires_at.map(Timestamp),
            purposes: from_json(t, "purposes", &self.purposes)?,
            data_categories: from_json(t, "data_categories", &self.data_categories)?,
            clauses,
            transfers,
            document_sha256: self.document_sha256.clone(),
            status: VersionStatus::parse(&self.status)
                .ok_or_else(|| corrupt(t, "status", &self.status))?,
            reminder_days: from_json(t, "reminder_days", &self.reminder_days)?,
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = dpa_documents)]
pub struct DocumentRow {
    pub dpa: String,
    pub version: i32,
    pub sha256: String,
    pub media_type: String,
    pub size: i64,
    pub at: i64,
    pub seq: Seq,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = subprocessor_decisions, treat_none_as_null = true)]
pub struct DecisionRow {
    pub seq: Seq,
    pub vendor: String,
    pub parent: String,
    pub decision: String,
    pub decided_on: String,
    pub note: Option<String>,
    pub at: i64,
}

impl DecisionRow {
    pub fn decision(&self) -> QueryResult<SubprocessorDecision> {
        SubprocessorDecision::parse(&self.decision)
            .ok_or_else(|| corrupt("subprocessor_decisions", "decision", &self.decision))
    }
}

// ----- vendors -----

pub fn insert_vendor(c: &mut AnyConnection, row: &VendorRow) -> QueryResult<()> {
    diesel::insert_into(vendors::table)
        .values(row)
        .execute(c)
        .map(drop)
}

pub fn latest_vendor(c: &mut AnyConnection, id: &str) -> QueryResult<Option<VendorRow>> {
    vendors::table
        .filter(vendors::id.eq(id))
        .order(vendors::version.desc())
        .select(VendorRow::as_select())
        .first(c)
        .optional()
}

pub fn vendor_versions(c: &mut AnyConnection, id: &str) -> QueryResult<Vec<VendorRow>> {
    vendors::table
        .filter(vendors::id.eq(id))
        .order(vendors::version.asc())
        .select(VendorRow::as_select())
        .load(c)
}

/// Every version of every vendor, by id and version.
pub fn all_vendor_versions(c: &mut AnyConnection) -> QueryResult<Vec<VendorRow>> {
    vendors::table
        .order((vendors::id.asc(), vendors::version.asc()))
        .select(VendorRow::as_select())
        .load(c)
}

/// The latest version of each vendor, by id.
pub fn latest_vendors(c: &mut AnyConnection) -> QueryResult<Vec<VendorRow>> {
    let mut rows = all_vendor_versions(c)?;
    rows.reverse();
    let mut seen = std::collections::HashSet::new();
    rows.retain(|r| seen.insert(r.id.clone()));
    rows.reverse();
    Ok(rows)
}

/// The seq of the last vendor change recorded, if any.
pub fn last_vendor_change(c: &mut AnyConnection) -> QueryResult<Option<Seq>> {
    Ok(latest_vendors(c)?.into_iter().map(|r| r.seq).max())
}

/// The vendors working for `parent` (their latest versions name it).
pub fn children(c: &mut AnyConnection, parent: &str) -> QueryResult<Vec<VendorRow>> {
    Ok(latest_vendors(c)?
        .into_iter()
        .filter(|v| v.parent.as_deref() == Some(parent))
        .collect())
}

// ----- sub-processor decisions -----

pub fn insert_decision(c: &mut AnyConnection, row: &DecisionRow) -> QueryResult<()> {
    diesel::insert_into(subprocessor_decisions::table)
        .values(row)
        .execute(c)
        .map(drop)
}

pub fn decisions_of(c: &mut AnyConnection, vendor: &str) -> QueryResult<Vec<DecisionRow>> {
    subprocessor_decisions::table
        .filter(subprocessor_decisions::vendor.eq(vendor))
        .order(subprocessor_decisions::seq.asc())
        .select(DecisionRow::as_select())
        .load(c)
}

pub fn all_decisions(c: &mut AnyConnection) -> QueryResult<Vec<DecisionRow>> {
    subprocessor_decisions::table
        .order(subprocessor_decisions::seq.asc())
        .select(DecisionRow::as_select())
        .load(c)
}

// ----- DPAs -----

pub fn insert_dpa(c: &mut AnyConnection, row: &DpaRow) -> QueryResult<()> {
    diesel::insert_into(dpas::table)
        .values(row)
        .execute(c)
        .map(drop)
}

pub fn dpa(c: &mut AnyConnection, id: &str) -> QueryResult<Option<DpaRow>> {
    dpas::table
        .filter(dpas::id.eq(id))
        .select(DpaRow::as_select())
        .first(c)
        .optional()
}

pub fn all_dpas(c: &mut AnyConnection) -> QueryResult<Vec<DpaRow>> {
    dpas::table
        .order(dpas::id.asc())
        .select(DpaRow::as_select())
        .load(c)
}

pub fn dpas_of(c: &mut AnyConnection, vendor: &str) -> QueryResult<Vec<DpaRow>> {
    dpas::table
        .filter(dpas::vendor.eq(vendor))
        .order(dpas::id.asc())
        .select(DpaRow::as_select())
        .load(c)
}

/// Records a termination; returns the rows changed (0 when it was already terminated).
pub fn terminate(
    c: &mut AnyConnection,
    id: &str,
    effective_at: Timestamp,
    reason: Option<&str>,
    seq: Seq,
) -> QueryResult<usize> {
    diesel::update(
        dpas::table
            .filter(dpas::id.eq(id))
            .filter(dpas::terminated_seq.is_null()),
    )
    .set((
        dpas::terminated_at.eq(Some(effective_at.micros())),
        dpas::termination_reason.eq(reason),
        dpas::terminated_seq.eq(Some(seq)),
    ))
    .execute(c)
}

pub fn insert_version(c: &mut AnyConnection, row: &DpaVersionRow) -> QueryResult<()> {
    diesel::insert_into(dpa_versions::table)
        .values(row)
        .execute(c)
        .map(drop)
}

pub fn versions_of(c: &mut AnyConnection, dpa: &str) -> QueryResult<Vec<DpaVersionRow>> {
    dpa_versions::table
        .filter(dpa_versions::dpa.eq(dpa))
        .order(dpa_versions::version.asc())
        .select(DpaVersionRow::as_select())
        .load(c)
}

pub fn all_versions(c: &mut AnyConnection) -> QueryResult<Vec<DpaVersionRow>> {
    dpa_versions::table
        .order((dpa_versions::dpa.asc(), dpa_versions::version.asc()))
        .select(DpaVersionRow::as_select())
        .load(c)
}

// ----- documents -----

pub fn insert_document(c: &mut AnyConnection, row: &DocumentRow) -> QueryResult<()> {
    diesel::insert_into(dpa_documents::table)
        .values(row)
        .execute(c)
        .map(drop)
}

pub fn document(
    c: &mut AnyConnection,
    dpa: &str,
    version: i32,
) -> QueryResult<Option<DocumentRow>> {
    dpa_documents::table
        .filter(dpa_documents::dpa.eq(dpa))
        .filter(dpa_documents::version.eq(version))
        .select(DocumentRow::as_select())
        .first(c)
        .optional()
}

pub fn documents_of(c: &mut AnyConnection, dpa: &str) -> QueryResult<Vec<DocumentRow>> {
    dpa_documents::table
        .filter(dpa_documents::dpa.eq(dpa))
        .order(dpa_documents::version.asc())
        .select(DocumentRow::as_select())
        .load(c)
}

pub fn all_documents(c: &mut AnyConnection) -> QueryResult<Vec<DocumentRow>> {
    dpa_documents::table
        .order((dpa_documents::dpa.asc(), dpa_documents::version.asc()))
        .select(DocumentRow::as_select())
        .load(c)
}

/// Keeps a document's bytes under their SHA-256 (once, whoever uploads them).
pub fn put_bytes(c: &mut AnyConnection, sha256: &str, bytes: &[u8]) -> QueryResult<usize> {
    crate::insert_or_ignore!(
        c,
        dpa_document_bytes::table,
        (
            dpa_document_bytes::sha256.eq(sha256),
            dpa_document_bytes::bytes.eq(bytes)
        )
    )
}

pub fn bytes(c: &mut AnyConnection, sha256: &str) -> QueryResult<Option<Vec<u8>>> {
    dpa_document_bytes::table
        .filter(dpa_document_bytes::sha256.eq(sha256))
        .select(dpa_document_bytes::bytes)
        .first(c)
        .optional()
}
