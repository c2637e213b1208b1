//! The vocabulary of consent (DESIGN §4): purposes, notices, consent records and check answers,
//! with the rules between their fields (the checks every domain shares are in `crate::vocab`).

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
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
    pub seq: Option<crate::vocab::Seq>,
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
