//! What callers send about vendors and DPAs, and the checks that turn it into the domain's types.
//! Every field is checked and all problems are answered at once (422); what depends on stored
//! state (a parent, a purpose, a terminated DPA) is checked by the service (409).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::index::day_start;
use super::model::{
    Clause, DpaVersionDef, Mechanism, SubprocessorDecision, Transfer, VendorDef, VendorRole,
    VendorStatus, VersionStatus,
};
use crate::clock::Timestamp;
use crate::error::AppError;
use crate::vocab::{self, Country, Key, Problems, Sha256Hex};

/// Most data categories or purposes one vendor or version lists.
pub const MAX_KEYS: usize = 100;
/// Most transfers one version lists.
pub const MAX_TRANSFERS: usize = 250;

/// A list of keys: each valid, none twice, at most [`MAX_KEYS`].
fn keys(p: &mut Problems, field: &str, list: &[String], required: bool) -> Vec<String> {
    if required && list.is_empty() {
        p.add(field, "name at least one");
    }
    if list.len() > MAX_KEYS {
        p.add(field, format!("at most {MAX_KEYS}"));
    }
    let mut seen = BTreeSet::new();
    for (i, k) in list.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if p.take(Key::check(&f, k)).is_some() && !seen.insert(k.as_str()) {
            p.add(f, format!("{k:?} is listed twice"));
        }
    }
    list.to_vec()
}

/// A date written `YYYY-MM-DD`.
fn date(p: &mut Problems, field: &str, s: &str) -> Option<String> {
    let ok = s.len() == 10 && day_start(s).is_some();
    if !ok {
        p.add(field, format!("{s:?} is not a date: write it YYYY-MM-DD"));
    }
    ok.then(|| s.to_string())
}

/// A date (`YYYY-MM-DD`, the day's start in UTC) or an RFC 3339 instant.
pub fn date_or_instant(field: &str, s: &str) -> Result<Timestamp, AppError> {
    if s.len() == 10 {
        return day_start(s).map(Timestamp).ok_or_else(|| {
            AppError::validation(field, format!("{s:?} is not a date: write it YYYY-MM-DD"))
        });
    }
    vocab::instant(field, s)
}

/// A vendor as callers send it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VendorInput {
    /// The vendor's id, a key such as `mailer` (in the path for `PUT`).
    pub id: Option<String>,
    #[schema(required = true, value_type = String)]
    pub name: Option<String>,
    pub legal_name: Option<String>,
    #[schema(required = true, value_type = Country)]
    pub country: Option<String>,
    #[schema(required = true, value_type = VendorRole)]
    pub role: Option<String>,
    pub contact: Option<String>,
    #[schema(value_type = Option<VendorStatus>)]
    pub status: Option<String>,
    /// The processor a sub-processor works for (required for, and only for, a sub-processor).
    pub parent: Option<String>,
    /// Keys of the data categories it receives.
    #[serde(default)]
    pub data_categories: Vec<String>,
}

impl VendorInput {
    /// Checks every field; `version` is filled in by the service.
    pub fn validate(&self, id: Option<&str>) -> Result<VendorDef, AppError> {
        let mut p = Problems::default();
        let id = match id.or(self.id.as_deref()) {
            None => {
                p.add("id", "is required, e.g. mailer");
                None
            }
            Some(k) => p.take(Key::check("id", k)).map(|()| k.to_string()),
        };
        let name = self.name.clone().unwrap_or_default();
        p.take(vocab::text("name", &name, 200, true));
        if let Some(l) = &self.legal_name {
            p.take(vocab::text("legal_name", l, 300, true));
        }
        let country = match &self.country {
            None => {
                p.add(
                    "country",
                    "is required: an ISO 3166-1 alpha-2 code such as DE",
                );
                None
            }
            Some(c) => p.take(Country::parse("country", c)),
        };
        let role = match &self.role {
            None => {
                p.add("role", "is required");
                None
            }
            Some(r) => p.take(VendorRole::parse_field("role", r)),
        };
        if let Some(c) = &self.contact {
            p.take(vocab::text("contact", c, 320, true));
        }
        let status = match &self.status {
            None => Some(VendorStatus::Active),
            Some(s) => p.take(VendorStatus::parse_field("status", s)),
        };
        match (&self.parent, role) {
            (Some(parent), _) => {
                if p.take(Key::check("parent", parent)).is_some() && id.as_deref() == Some(parent) {
                    p.add("parent", "a vendor cannot be its own parent");
                }
                if role.is_some_and(|r| r != VendorRole::SubProcessor) {
                    p.add("parent", "only a sub_processor names a parent");
                }
            }
            (None, Some(VendorRole::SubProcessor)) => {
                p.add("parent", "a sub_processor names the processor it works for")
            }
            (None, _) => {}
        }
        let data_categories = keys(&mut p, "data_categories", &self.data_categories, false);
        p.into_result()?;
        match (id, country, role, status) {
            (Some(id), Some(country), Some(role), Some(status)) => Ok(VendorDef {
                id,
                version: 0,
                name: name.trim().to_string(),
                legal_name: self.legal_name.clone(),
                country,
                role,
                contact: self.contact.clone(),
                status,
                parent: self.parent.clone(),
                data_categories,
            }),
            _ => Err(AppError::internal(anyhow::anyhow!(
                "vendor validation lost a field"
            ))),
        }
    }
}

/// A transfer as callers send it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferInput {
    #[schema(required = true, value_type = Country)]
    pub country: Option<String>,
    #[schema(required = true, value_type = Mechanism)]
    pub mechanism: Option<String>,
    /// With `scc`: the module, 1 to 4.
    #[schema(minimum = 1, maximum = 4)]
    #[serde(default, deserialize_with = "crate::body::whole_number")]
    pub scc_module: Option<i64>,
    pub tia_reference: Option<String>,
}

/// The terms of a DPA version as callers send them.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionInput {
    #[schema(required = true, value_type = String)]
    pub reference: Option<String>,
    /// `YYYY-MM-DD`.
    #[schema(required = true, value_type = String, format = Date)]
    pub signed_on: Option<String>,
    /// A date (`YYYY-MM-DD`) or an RFC 3339 instant.
    #[schema(required = true, value_type = String)]
    pub effective_from: Option<String>,
    /// A date or an RFC 3339 instant, after `effective_from`.
    pub expires_at: Option<String>,
    /// Keys of Accord purposes.
    #[serde(default)]
    #[schema(required = true)]
    pub purposes: Vec<String>,
    #[serde(default)]
    #[schema(required = true)]
    pub data_categories: Vec<String>,
    /// Each Art. 28(3) clause and whether the contract has it; all seven are named.
    #[serde(default)]
    #[schema(value_type = BTreeMap<Clause, bool>, required = true)]
    pub clauses: BTreeMap<String, bool>,
    #[serde(default)]
    pub transfers: Vec<TransferInput>,
    pub document_sha256: Option<String>,
    #[schema(value_type = Option<VersionStatus>)]
    pub status: Option<String>,
}

impl VersionInput {
    /// Checks every field of a version of `dpa`; `version` and `reminder_days` are filled in by
    /// the service. Field names carry `prefix` (`version.` inside a new DPA).
    pub fn validate(&self, dpa: &str, prefix: &str) -> Result<DpaVersionDef, AppError> {
        let mut p = Problems::default();
        let f = |name: &str| format!("{prefix}{name}");
        let reference = self.reference.clone().unwrap_or_default();
        p.take(vocab::text(&f("reference"), &reference, 200, true));
        let signed_on = match &self.signed_on {
            None => {
                p.add(f("signed_on"), "is required (YYYY-MM-DD)");
                None
            }
            Some(d) => date(&mut p, &f("signed_on"), d),
        };
        let effective_from = match &self.effective_from {
            None => {
                p.add(f("effective_from"), "is required (a date or an instant)");
                None
            }
            Some(s) => p.take(date_or_instant(&f("effective_from"), s)),
        };
        let expires_at = self
            .expires_at
            .as_ref()
            .and_then(|s| p.take(date_or_instant(&f("expires_at"), s)));
        if let (Some(from), Some(to)) = (effective_from, expires_at)
            && to <= from
        {
            p.add(f("expires_at"), "must be after effective_from");
        }
        let purposes = keys(&mut p, &f("purposes"), &self.purposes, true);
        let data_categories = keys(&mut p, &f("data_categories"), &self.data_categories, true);
        let mut clauses = BTreeMap::new();
        for (name, has) in &self.clauses {
            if let Some(c) = p.take(Clause::parse_field(&f(&format!("clauses.{name}")), name)) {
                clauses.insert(c, *has);
            }
        }
        for c in Clause::ALL {
            if !self.clauses.contains_key(c.as_str()) {
                p.add(
                    f(&format!("clauses.{}", c.as_str())),
                    "is required: say whether the contract has this Art. 28(3) clause",
                );
            }
        }
        if self.transfers.len() > MAX_TRANSFERS {
            p.add(f("transfers"), format!("at most {MAX_TRANSFERS}"));
        }
        let mut transfers = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, t) in self.transfers.iter().enumerate() {
            let tf = |name: &str| f(&format!("transfers[{i}].{name}"));
            let country = match &t.country {
                None => {
                    p.add(tf("country"), "is required");
                    None
                }
                Some(c) => p.take(Country::parse(&tf("country"), c)),
            };
            if let Some(c) = country {
                if c.in_eea() {
                    p.add(
                        tf("country"),
                        format!("{c} is in the EEA: a transfer there needs no mechanism"),
                    );
                }
                if !seen.insert(c) {
                    p.add(tf("country"), format!("{c} is listed twice"));
                }
            }
            let mechanism = match &t.mechanism {
                None => {
                    p.add(tf("mechanism"), "is required");
                    None
                }
                Some(m) => p.take(Mechanism::parse_field(&tf("mechanism"), m)),
            };
            let module = match (mechanism, t.scc_module) {
                (Some(Mechanism::Scc), None) => {
                    p.add(tf("scc_module"), "an SCC transfer names its module, 1 to 4");
                    None
                }
                (Some(Mechanism::Scc), Some(m)) if !(1..=4).contains(&m) => {
                    p.add(tf("scc_module"), "an SCC module is 1, 2, 3 or 4");
                    None
                }
                (Some(Mechanism::Scc), Some(m)) => u8::try_from(m).ok(),
                (_, Some(_)) => {
                    p.add(tf("scc_module"), "only an scc transfer has a module");
                    None
                }
                (_, None) => None,
            };
            if let (Some(Mechanism::Adequacy), Some(c)) = (mechanism, country)
                && !c.adequate()
                && !c.in_eea()
            {
                p.add(
                    tf("mechanism"),
                    format!("the European Commission has no adequacy decision for {c}"),
                );
            }
            if let Some(r) = &t.tia_reference {
                p.take(vocab::text(&tf("tia_reference"), r, 200, true));
            }
            if let (Some(country), Some(mechanism)) = (country, mechanism) {
                transfers.push(Transfer {
                    country,
                    mechanism,
                    scc_module: module,
                    tia_reference: t.tia_reference.clone(),
                });
            }
        }
        if let Some(h) = &self.document_sha256 {
            p.take(Sha256Hex::check(&f("document_sha256"), h));
        }
        let status = match &self.status {
            None => Some(VersionStatus::Active),
            Some(s) => p.take(VersionStatus::parse_field(&f("status"), s)),
        };
        p.into_result()?;
        match (signed_on, effective_from, status) {
            (Some(signed_on), Some(effective_from), Some(status)) => Ok(DpaVersionDef {
                dpa: dpa.to_string(),
                version: 0,
                reference: reference.trim().to_string(),
                signed_on,
                effective_from,
                expires_at,
                purposes,
                data_categories,
                clauses,
                transfers,
                document_sha256: self.document_sha256.clone(),
                status,
                reminder_days: Vec::new(),
            }),
            _ => Err(AppError::internal(anyhow::anyhow!(
                "DPA version validation lost a field"
            ))),
        }
    }
}

/// A new DPA: its id, the vendor, and its first version.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DpaInput {
    /// The DPA's id, a key such as `mailer-2026`.
    #[schema(required = true, value_type = String)]
    pub id: Option<String>,
    #[schema(required = true, value_type = String)]
    pub vendor: Option<String>,
    /// The terms of its first version.
    #[serde(default)]
    #[schema(required = true)]
    pub version: VersionInput,
}

impl DpaInput {
    /// (id, vendor, first version).
    pub fn validate(&self) -> Result<(String, String, DpaVersionDef), AppError> {
        let mut p = Problems::default();
        let id = match &self.id {
            None => {
                p.add("id", "is required, e.g. mailer-2026");
                None
            }
            Some(k) => p.take(Key::check("id", k)).map(|()| k.clone()),
        };
        let vendor = match &self.vendor {
            None => {
                p.add("vendor", "is required");
                None
            }
            Some(k) => p.take(Key::check("vendor", k)).map(|()| k.clone()),
        };
        let version = match self
            .version
            .validate(id.as_deref().unwrap_or_default(), "version.")
        {
            Ok(v) => Some(v),
            Err(e) => {
                p.take_prefixed("", e);
                None
            }
        };
        p.into_result()?;
        match (id, vendor, version) {
            (Some(id), Some(vendor), Some(version)) => Ok((id, vendor, version)),
            _ => Err(AppError::internal(anyhow::anyhow!(
                "DPA validation lost a field"
            ))),
        }
    }
}

/// Ending a DPA.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminateInput {
    /// When the termination takes effect (a date or an instant); now when absent.
    pub effective_at: Option<String>,
    pub reason: Option<String>,
}

/// The controller's decision about a processor's sub-processor.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionInput {
    /// The sub-processor's vendor id.
    #[schema(required = true, value_type = String)]
    pub subprocessor: Option<String>,
    #[schema(required = true, value_type = SubprocessorDecision)]
    pub decision: Option<String>,
    /// `YYYY-MM-DD`; today when absent.
    pub decided_on: Option<String>,
    pub note: Option<String>,
}

impl DecisionInput {
    /// (sub-processor, decision, date).
    pub fn validate(
        &self,
        today: Timestamp,
    ) -> Result<(String, SubprocessorDecision, String), AppError> {
        let mut p = Problems::default();
        let sub = match &self.subprocessor {
            None => {
                p.add("subprocessor", "is required: the sub-processor's vendor id");
                None
            }
            Some(k) => p.take(Key::check("subprocessor", k)).map(|()| k.clone()),
        };
        let decision = match &self.decision {
            None => {
                p.add("decision", "is required: authorised or objected");
                None
            }
            Some(d) => p.take(SubprocessorDecision::parse_field("decision", d)),
        };
        let decided_on = match &self.decided_on {
            None => Some(today.to_rfc3339()[..10].to_string()),
            Some(d) => date(&mut p, "decided_on", d),
        };
        if let Some(n) = &self.note {
            p.take(vocab::text("note", n, 1000, false));
        }
        p.into_result()?;
        match (sub, decision, decided_on) {
            (Some(s), Some(d), Some(on)) => Ok((s, d, on)),
            _ => Err(AppError::internal(anyhow::anyhow!(
                "decision validation lost a field"
            ))),
        }
    }
}
