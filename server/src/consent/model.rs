//! The vocabulary of consent (DESIGN §4): purposes, notices, consent records and check answers,
//! with the checks on what callers send.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{AppError, FieldError};
use crate::text_enum;

text_enum! {
    /// Where a person may be contacted or their data used. `any` applies where no record for the
    /// specific channel exists.
    pub enum Channel: "channel" {
        Email => "email",
        Sms => "sms",
        Phone => "phone",
        Post => "post",
        Push => "push",
        Web => "web",
        Ads => "ads",
        Any => "any",
    }
}

text_enum! {
    /// What the person decided.
    pub enum Decision: "decision" {
        Granted => "granted",
        Withdrawn => "withdrawn",
        Denied => "denied",
    }
}

impl Decision {
    /// Which decision wins when two records for the same key were collected at the same moment:
    /// a withdrawal, then a denial, then a grant.
    pub fn tie_rank(self) -> u8 {
        match self {
            Decision::Granted => 0,
            Decision::Denied => 1,
            Decision::Withdrawn => 2,
        }
    }
}

text_enum! {
    /// The lawful bases of GDPR Art. 6(1).
    pub enum LegalBasis: "legal basis" {
        Consent => "consent",
        Contract => "contract",
        LegalObligation => "legal_obligation",
        VitalInterests => "vital_interests",
        PublicTask => "public_task",
        LegitimateInterests => "legitimate_interests",
    }
}

text_enum! {
    /// How the decision was collected.
    pub enum Method: "collection method" {
        WebForm => "web_form",
        Api => "api",
        Import => "import",
        Gpc => "gpc",
        App => "app",
        Email => "email",
        Phone => "phone",
        Paper => "paper",
        InPerson => "in_person",
        Other => "other",
    }
}

text_enum! {
    pub enum PurposeStatus: "purpose status" {
        Active => "active",
        Retired => "retired",
    }
}

text_enum! {
    /// Why a check answered as it did.
    pub enum Reason: "reason" {
        Granted => "granted",
        Withdrawn => "withdrawn",
        Denied => "denied",
        Expired => "expired",
        NoRecord => "no_record",
        PurposeRetired => "purpose_retired",
        NotRequired => "not_required",
    }
}

/// Allowed clock skew for `collected_at` ahead of the server's time.
pub const COLLECTED_SKEW_MICROS: i64 = 5 * 60 * 1_000_000;
pub const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;

/// A purpose as defined (one version of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PurposeDef {
    pub key: String,
    pub version: i32,
    pub title: String,
    pub description: String,
    pub legal_basis: LegalBasis,
    pub consent_required: bool,
    /// Default lifetime of a grant, in days; `None`: grants do not expire unless they say so.
    pub lifetime_days: Option<i32>,
    pub gpc_applies: bool,
    pub dpv_iri: Option<String>,
    pub status: PurposeStatus,
}

/// A privacy-notice version: proof of what the person was shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NoticeDef {
    pub key: String,
    pub version: String,
    /// SHA-256 of the notice text, lowercase hex.
    pub text_hash: String,
    pub url: String,
    pub effective_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeRef {
    pub key: String,
    pub version: String,
}

/// Evidence of how a decision was captured. Personal data: erased with the subject.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_url: Option<String>,
    /// A reference into the source system (a ticket, a scanned form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl Evidence {
    pub fn is_empty(&self) -> bool {
        self == &Evidence::default()
    }
}

/// One consent decision as recorded (the payload of a `consent.recorded` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    pub subject: String,
    pub purpose: String,
    pub channel: Channel,
    pub decision: Decision,
    pub legal_basis: LegalBasis,
    pub method: Method,
    pub notice: Option<NoticeRef>,
    pub collected_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub jurisdiction: Option<String>,
    pub source: Option<String>,
    /// The request carried a Global Privacy Control signal (`Sec-GPC: 1`).
    pub gpc: bool,
    pub evidence: Option<Evidence>,
    /// Identifies the decision (subject, purpose, channel, decision, basis, method, notice, times,
    /// jurisdiction, source): the same decision recorded twice is recorded once.
    pub fingerprint: String,
}

impl ConsentRecord {
    pub fn compute_fingerprint(&self) -> String {
        let notice = self
            .notice
            .as_ref()
            .map(|n| format!("{}\u{1f}{}", n.key, n.version))
            .unwrap_or_default();
        let fields = [
            self.subject.as_str(),
            self.purpose.as_str(),
            self.channel.as_str(),
            self.decision.as_str(),
            self.legal_basis.as_str(),
            self.method.as_str(),
            &notice,
            &self.collected_at.micros().to_string(),
            &self
                .expires_at
                .map(|t| t.micros().to_string())
                .unwrap_or_default(),
            self.jurisdiction.as_deref().unwrap_or(""),
            self.source.as_deref().unwrap_or(""),
        ];
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"accord/consent-fingerprint/v1");
        for f in fields {
            h.update((f.len() as u64).to_be_bytes());
            h.update(f.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// The answer to "may we?" for one (subject, purpose, channel) at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CheckAnswer {
    pub allowed: bool,
    pub decision: Option<Decision>,
    /// `granted`, `withdrawn`, `denied`, `expired`, `no_record`, `purpose_retired`, or
    /// `not_required:<legal basis>`.
    #[schema(value_type = String)]
    pub reason: ReasonCode,
    pub legal_basis: Option<LegalBasis>,
    pub channel: Option<Channel>,
    #[serde(serialize_with = "crate::clock::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub collected_at: Option<Timestamp>,
    #[serde(serialize_with = "crate::clock::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// The ledger entry of the record the answer rests on.
    pub seq: Option<u64>,
}

/// A reason with, for `not_required`, the legal basis that makes consent unnecessary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReasonCode {
    pub reason: Reason,
    pub basis: Option<LegalBasis>,
}

impl ReasonCode {
    pub fn of(reason: Reason) -> Self {
        ReasonCode {
            reason,
            basis: None,
        }
    }

    pub fn not_required(basis: LegalBasis) -> Self {
        ReasonCode {
            reason: Reason::NotRequired,
            basis: Some(basis),
        }
    }

    pub fn text(&self) -> std::borrow::Cow<'static, str> {
        match self.basis {
            Some(b) => format!("{}:{}", self.reason.as_str(), b.as_str()).into(),
            None => self.reason.as_str().into(),
        }
    }
}

impl Serialize for ReasonCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.basis {
            None => s.serialize_str(self.reason.as_str()),
            Some(_) => s.serialize_str(&self.text()),
        }
    }
}

/// Collects field errors so a request is checked as a whole and answered once.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<FieldError>);

impl Problems {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Keeps the value when the result is Ok; records the error's fields otherwise.
    pub fn take<T>(&mut self, r: Result<T, AppError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(AppError::Validation { errors, .. }) => {
                self.0.extend(errors);
                None
            }
            Err(other) => {
                self.add("", other.to_string());
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result(self) -> Result<(), AppError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let detail = if self.0.len() == 1 {
            format!("{}: {}", self.0[0].field, self.0[0].message)
        } else {
            format!(
                "{} fields are invalid; the first: {}: {}",
                self.0.len(),
                self.0[0].field,
                self.0[0].message
            )
        };
        Err(AppError::Validation {
            detail,
            errors: self.0,
        })
    }
}

fn bad(field: &str, why: impl Into<String>) -> AppError {
    AppError::validation(field, why)
}

/// A subject id: 1–256 bytes of UTF-8, no control characters, no surrounding spaces.
pub fn subject_id(field: &str, s: &str) -> Result<(), AppError> {
    if s.is_empty() || s.len() > 256 {
        return Err(bad(field, "a subject id has 1 to 256 bytes (UTF-8)"));
    }
    if s.chars().any(char::is_control) {
        return Err(bad(field, "a subject id cannot hold control characters"));
    }
    if s.trim() != s {
        return Err(bad(
            field,
            "a subject id cannot start or end with white space",
        ));
    }
    Ok(())
}

/// A key such as `marketing.email`: lowercase letters, digits, `.`, `_`, `-`, starting with a
/// letter, at most 64 characters.
pub fn key(field: &str, s: &str) -> Result<(), AppError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(bad(
            field,
            format!(
                "{s:?} is not a valid key: use 1 to 64 lowercase letters, digits, '.', '_' or '-', starting with a letter"
            ),
        ))
    }
}

/// A notice version such as `2026-03` or `v4.1`.
pub fn version(field: &str, s: &str) -> Result<(), AppError> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(bad(
            field,
            format!("{s:?} is not a valid version: use 1 to 32 letters, digits, '.', '_' or '-'"),
        ))
    }
}

/// Free text with a length limit and no control characters except newlines and tabs.
pub fn text(field: &str, s: &str, max: usize, required: bool) -> Result<(), AppError> {
    if required && s.trim().is_empty() {
        return Err(bad(field, "must not be empty"));
    }
    if s.chars().count() > max {
        return Err(bad(field, format!("must be at most {max} characters")));
    }
    if s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(bad(field, "must not hold control characters"));
    }
    Ok(())
}

/// An absolute `http(s)://` URL or IRI.
pub fn url(field: &str, s: &str) -> Result<(), AppError> {
    text(field, s, 2048, true)?;
    let lower = s.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.contains(char::is_whitespace) => Ok(()),
        _ => Err(bad(field, format!("{s:?} is not an absolute http(s) URL"))),
    }
}

/// A SHA-256 as 64 lowercase hex digits.
pub fn sha256_hex(field: &str, s: &str) -> Result<(), AppError> {
    if s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(bad(
            field,
            "must be a SHA-256 digest as 64 lowercase hexadecimal digits",
        ))
    }
}

/// A jurisdiction: an ISO 3166 code such as `DE`, `US-CA`, or `EU`.
pub fn jurisdiction(field: &str, s: &str) -> Result<(), AppError> {
    let ok = (2..=6).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
        && s.starts_with(|c: char| c.is_ascii_uppercase());
    if ok {
        Ok(())
    } else {
        Err(bad(
            field,
            format!("{s:?} is not a jurisdiction: use an ISO 3166 code such as DE, US-CA or EU"),
        ))
    }
}

/// Parses an RFC 3339 instant, truncated to whole microseconds, within the range the ledger can
/// hold ([`Timestamp::MIN`] to [`Timestamp::MAX`]).
pub fn instant(field: &str, s: &str) -> Result<Timestamp, AppError> {
    let t = chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|dt| Timestamp(dt.timestamp_micros()))
        .map_err(|e| {
            bad(
                field,
                format!("{s:?} is not an RFC 3339 date-time such as 2026-11-23T10:00:00Z ({e})"),
            )
        })?;
    if !t.in_ledger_range() {
        return Err(bad(
            field,
            format!(
                "{s:?} is outside the range of instants the ledger can hold, {} to {}",
                Timestamp::MIN,
                Timestamp::MAX
            ),
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_separate_fields() {
        let mut r = ConsentRecord {
            subject: "ab".into(),
            purpose: "c".into(),
            channel: Channel::Email,
            decision: Decision::Granted,
            legal_basis: LegalBasis::Consent,
            method: Method::Api,
            notice: None,
            collected_at: Timestamp(1),
            expires_at: None,
            jurisdiction: None,
            source: None,
            gpc: false,
            evidence: None,
            fingerprint: String::new(),
        };
        let a = r.compute_fingerprint();
        r.subject = "a".into();
        r.purpose = "bc".into();
        assert_ne!(a, r.compute_fingerprint());
        r.subject = "ab".into();
        r.purpose = "c".into();
        r.evidence = Some(Evidence {
            ip: Some("192.0.2.1".into()),
            ..Evidence::default()
        });
        assert_eq!(a, r.compute_fingerprint(), "evidence is not part of it");
    }

    #[test]
    fn validators_name_the_problem() {
        assert!(key("purpose", "marketing.email").is_ok());
        assert!(key("purpose", "Marketing").is_err());
        assert!(key("purpose", "1abc").is_err());
        assert!(subject_id("subject", "s-1").is_ok());
        assert!(subject_id("subject", "").is_err());
        assert!(subject_id("subject", " s").is_err());
        assert!(subject_id("subject", "a\u{0}b").is_err());
        assert!(version("version", "2026-03").is_ok());
        assert!(version("version", "a b").is_err());
        assert!(url("url", "https://example.com/privacy").is_ok());
        assert!(url("url", "ftp://example.com").is_err());
        assert!(jurisdiction("j", "US-CA").is_ok());
        assert!(jurisdiction("j", "germany").is_err());
        assert_eq!(
            instant("at", "2026-11-23T10:00:00.1234567Z").unwrap(),
            Timestamp(1_795_428_000_123_456)
        );
        assert!(instant("at", "yesterday").is_err());
        // The ledger's range ends where canonical JSON's integers do.
        assert!(instant("at", "2255-06-05T23:47:34.740991Z").is_ok());
        let late = instant("expires_at", "2255-06-05T23:47:34.740992Z").unwrap_err();
        assert!(late.to_string().contains("expires_at"), "{late}");
        assert!(instant("at", "2300-01-01T00:00:00Z").is_err());
        assert!(instant("at", "1684-01-01T00:00:00Z").is_err());
        assert!(instant("at", "1700-01-01T00:00:00Z").is_ok());
    }

    #[test]
    fn reason_codes_serialise_with_the_basis() {
        assert_eq!(
            serde_json::to_string(&ReasonCode::not_required(LegalBasis::Contract)).unwrap(),
            "\"not_required:contract\""
        );
        assert_eq!(
            serde_json::to_string(&ReasonCode::of(Reason::NoRecord)).unwrap(),
            "\"no_record\""
        );
    }
}
