//! The vocabulary of vendors and their data processing agreements (DESIGN §4, GDPR Art. 28 and
//! Chapter V): vendors, DPA versions with the Art. 28(3) clauses and transfers, sub-processor
//! decisions, and the answers of a coverage check.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::text_enum;
use crate::vocab::{Country, Seq};

text_enum! {
    /// What a vendor is to the controller.
    pub enum VendorRole: "vendor role" {
        Processor => "processor",
        SubProcessor => "sub_processor",
        JointController => "joint_controller",
        Controller => "controller",
    }
}

text_enum! {
    /// Whether the vendor still works for the controller.
    pub enum VendorStatus: "vendor status" {
        Active => "active",
        Offboarded => "offboarded",
    }
}

text_enum! {
    /// What GDPR Art. 28(3) requires a processor contract to stipulate.
    pub enum Clause: "Art. 28(3) clause" {
        /// (a) processes only on documented instructions.
        Instructions => "instructions",
        /// (b) persons authorised to process are bound to confidentiality.
        Confidentiality => "confidentiality",
        /// (c) the security measures of Art. 32.
        Security => "security",
        /// (d) engages sub-processors only as Art. 28(2) and (4) allow.
        SubProcessing => "sub_processing",
        /// (e, f) assists with data subjects' requests and with Art. 32–36.
        Assistance => "assistance",
        /// (g) deletes or returns the data at the end.
        DeletionOrReturn => "deletion_or_return",
        /// (h) makes information available and allows audits.
        Audits => "audits",
    }
}

text_enum! {
    /// How a transfer outside the EEA is made lawful (GDPR Art. 45–49).
    pub enum Mechanism: "transfer mechanism" {
        Adequacy => "adequacy",
        Scc => "scc",
        Bcr => "bcr",
        Derogation49 => "derogation_49",
    }
}

text_enum! {
    /// A DPA version's standing: only an active version covers anything.
    pub enum VersionStatus: "DPA version status" {
        Draft => "draft",
        Active => "active",
    }
}

text_enum! {
    /// The controller's answer to a processor engaging a sub-processor (Art. 28(2)).
    pub enum SubprocessorDecision: "sub-processor decision" {
        Authorised => "authorised",
        Objected => "objected",
    }
}

/// A vendor as recorded: every change is a new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VendorDef {
    pub id: String,
    pub version: i32,
    pub name: String,
    pub legal_name: Option<String>,
    pub country: Country,
    pub role: VendorRole,
    pub contact: Option<String>,
    pub status: VendorStatus,
    /// The processor a sub-processor works for.
    pub parent: Option<String>,
    /// Keys of the data categories it receives.
    pub data_categories: Vec<String>,
}

/// A transfer a DPA version allows: a country outside the EEA and how the transfer is made lawful.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Transfer {
    pub country: Country,
    pub mechanism: Mechanism,
    /// The SCC module (2021/914): 1 controller to controller, 2 controller to processor, 3
    /// processor to processor, 4 processor to controller. Only with `scc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scc_module: Option<u8>,
    /// The transfer impact assessment's reference, if one was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tia_reference: Option<String>,
}

/// One version of a DPA: its terms. Versions are immutable; an amendment is a new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DpaVersionDef {
    pub dpa: String,
    pub version: i32,
    pub reference: String,
    /// The date it was signed (`YYYY-MM-DD`).
    pub signed_on: String,
    #[serde(
        serialize_with = "crate::clock::rfc3339::serialize",
        deserialize_with = "crate::vocab::rules::de_instant"
    )]
    #[schema(value_type = String, format = DateTime)]
    pub effective_from: Timestamp,
    #[serde(
        serialize_with = "crate::clock::rfc3339::option",
        deserialize_with = "crate::vocab::rules::de_instant_opt"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// Keys of the purposes it covers.
    pub purposes: Vec<String>,
    /// Keys of the data categories it covers.
    pub data_categories: Vec<String>,
    /// Each Art. 28(3) clause, and whether the contract has it.
    pub clauses: BTreeMap<Clause, bool>,
    pub transfers: Vec<Transfer>,
    /// SHA-256 of the signed document, if known when the version was recorded.
    pub document_sha256: Option<String>,
    pub status: VersionStatus,
    /// Days before expiry on which reminders are due, as configured when it was recorded.
    pub reminder_days: Vec<u32>,
}

impl DpaVersionDef {
    /// The clauses the contract lacks, in the order Art. 28(3) lists them.
    pub fn missing_clauses(&self) -> impl Iterator<Item = Clause> + '_ {
        Clause::ALL
            .iter()
            .copied()
            .filter(|c| !self.clauses.get(c).copied().unwrap_or(false))
    }
}

/// Why a use of data is not covered (or, with `covered`, nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    NoDpa,
    NotYetEffective,
    Expired,
    Terminated,
    PurposeNotCovered,
    CategoryNotCovered,
    TransferNotCovered,
    ClauseMissing(Clause),
    SubprocessorNotAuthorised,
    VendorOffboarded,
}

impl Reason {
    pub fn code(self) -> String {
        match self {
            Reason::NoDpa => "no_dpa".into(),
            Reason::NotYetEffective => "not_yet_effective".into(),
            Reason::Expired => "expired".into(),
            Reason::Terminated => "terminated".into(),
            Reason::PurposeNotCovered => "purpose_not_covered".into(),
            Reason::CategoryNotCovered => "category_not_covered".into(),
            Reason::TransferNotCovered => "transfer_not_covered".into(),
            Reason::ClauseMissing(c) => format!("clause_missing:{}", c.as_str()),
            Reason::SubprocessorNotAuthorised => "subprocessor_not_authorised".into(),
            Reason::VendorOffboarded => "vendor_offboarded".into(),
        }
    }

    /// Every code a coverage answer may carry.
    pub fn codes() -> Vec<String> {
        let mut all = vec![
            Reason::NoDpa,
            Reason::NotYetEffective,
            Reason::Expired,
            Reason::Terminated,
            Reason::PurposeNotCovered,
            Reason::CategoryNotCovered,
            Reason::TransferNotCovered,
        ];
        all.extend(Clause::ALL.iter().map(|c| Reason::ClauseMissing(*c)));
        all.extend([Reason::SubprocessorNotAuthorised, Reason::VendorOffboarded]);
        all.into_iter().map(Reason::code).collect()
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.code())
    }
}

impl utoipa::PartialSchema for Reason {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("Why the use is not covered."))
            .enum_values(Some(Reason::codes()))
            .into()
    }
}

impl utoipa::ToSchema for Reason {}

/// The answer of a coverage check: covered, by which DPA version, or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Coverage {
    pub covered: bool,
    /// The DPA that covers the use, or the one that came closest.
    pub dpa: Option<String>,
    pub version: Option<i32>,
    /// Empty when covered.
    pub reasons: Vec<Reason>,
    /// The ledger entry of that DPA version (what the answer rests on).
    pub seq: Option<Seq>,
}
