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

/// Collects field errors so a request is checked as a whole and answered once: a 422 when a field
/// is invalid (listing those the current state does not allow too), else a 409 when the current
/// state does not allow one.
#[derive(Debug, Default)]
pub struct Problems {
    invalid: Vec<FieldError>,
    unmet: Vec<FieldError>,
}

impl Problems {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.invalid.push(FieldError::new(field, message));
    }

    /// A field that is well-formed but refers to what the current state does not allow.
    pub fn unmet(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.unmet.push(FieldError::new(field, message));
    }

    /// Keeps the value when the result is Ok; records the error's fields otherwise.
    pub fn take<T>(&mut self, r: Result<T, AppError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(AppError::Validation { errors, .. }) => {
                self.invalid.extend(errors);
                None
            }
            Err(AppError::Unmet { errors, .. }) => {
                self.unmet.extend(errors);
                None
            }
            Err(other) => {
                self.add("", other.to_string());
                None
            }
        }
    }

    /// Records another error's fields under `prefix` (`items/3/`, `purpose[0].`).
    pub fn take_prefixed(&mut self, prefix: &str, e: AppError) {
        match e {
            AppError::Validation { errors, .. } => {
                self.invalid.extend(errors.into_iter().map(|f| FieldError {
                    field: format!("{prefix}{}", f.field),
                    ..f
                }))
            }
            AppError::Unmet { errors, .. } => {
                self.unmet.extend(errors.into_iter().map(|f| FieldError {
                    field: format!("{prefix}{}", f.field),
                    ..f
                }))
            }
            other => self.add(prefix.trim_end_matches(['/', '.']), other.to_string()),
        }
    }

    pub fn len(&self) -> usize {
        self.invalid.len() + self.unmet.len()
    }

    pub fn is_empty(&self) -> bool {
        self.invalid.is_empty() && self.unmet.is_empty()
    }

    pub fn into_result(self) -> Result<(), AppError> {
        let (errors, unmet) = if !self.invalid.is_empty() {
            let mut all = self.invalid;
            all.extend(self.unmet);
            (all, false)
        } else if !self.unmet.is_empty() {
            (self.unmet, true)
        } else {
            return Ok(());
        };
        let detail = if errors.len() == 1 {
            format!("{}: {}", errors[0].field, errors[0].message)
        } else {
            format!(
                "{} fields are {}; the first: {}: {}",
                errors.len(),
                if unmet { "refused" } else { "invalid" },
                errors[0].field,
                errors[0].message
            )
        };
        Err(if unmet {
            AppError::Unmet { detail, errors }
        } else {
            AppError::Validation { detail, errors }
        })
    }
}

fn bad(field: &str, why: impl Into<String>) -> AppError {
    AppError::validation(field, why)
}

/// A subject id: 1–256 characters, no control characters, no surrounding white space.
pub fn subject_id(field: &str, s: &str) -> Result<(), AppError> {
    if s.is_empty() || s.chars().count() > 256 {
        return Err(bad(field, "a subject id has 1 to 256 characters"));
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

/// Parses an RFC 3339 instant written as [`schema::INSTANT`] says (a year from 1700 to 2249,
/// `T` and `Z` in capitals, at most nine fractional digits), truncated to whole microseconds. Every
/// such instant lies within the range the ledger can hold ([`Timestamp::MIN`] to
/// [`Timestamp::MAX`]).
pub fn instant(field: &str, s: &str) -> Result<Timestamp, AppError> {
    if !schema::instant_shape(s) {
        return Err(bad(
            field,
            format!(
                "{s:?} is not an RFC 3339 date-time such as 2026-11-23T10:00:00Z, with a year from 1700 to 2249"
            ),
        ));
    }
    let t = chrono::DateTime::parse_from_rfc3339(s)
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

/// The rules above as JSON Schema, for the OpenAPI document: each pattern admits exactly what
/// its validator does under JSON Schema's (ECMA-262) and Rust's `regex` semantics (a test holds
/// them to it), so character classes are spelt out: `\s` means different things in different
/// engines. (Python's `re` differs in one way: its `$` also matches before a final newline.)
pub mod schema {
    use serde_json::{Value, json};

    /// Unicode's control characters (general category Cc: what `char::is_control` is).
    pub const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";
    /// The controls free text may not hold: all but tab, line feed and carriage return.
    pub const CONTROL_BUT_LINES: &str = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f";
    /// Unicode White_Space that is not a control (`char::is_whitespace` minus `CONTROL`).
    pub const SPACE: &str = r"\u0020\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
    /// Every Unicode White_Space character (`char::is_whitespace`; what `str::trim` removes).
    pub const WHITE_SPACE: &str =
        r"\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

    pub const KEY: &str = "^[a-z][a-z0-9._-]{0,63}$";
    pub const VERSION: &str = "^[A-Za-z0-9._-]{1,32}$";
    pub const SHA256_HEX: &str = "^[0-9a-f]{64}$";
    pub const JURISDICTION: &str = "^[A-Z][A-Z0-9-]{1,5}$";
    /// An instant: RFC 3339 with a year from 1700 to 2249 (inside the ledger's range whatever
    /// the offset).
    pub const INSTANT: &str = concat!(
        "^(?:1[7-9][0-9]{2}|2[01][0-9]{2}|22[0-4][0-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])",
        "T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:[.][0-9]{1,9})?",
        "(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
    );

    fn string(pattern: String, min: usize, max: usize) -> Value {
        json!({"type": "string", "pattern": pattern, "minLength": min, "maxLength": max})
    }

    pub fn subject() -> Value {
        string(
            format!("^[^{CONTROL}{SPACE}](?:[^{CONTROL}]*[^{CONTROL}{SPACE}])?$"),
            1,
            256,
        )
    }

    pub fn key() -> Value {
        string(KEY.into(), 1, 64)
    }

    pub fn version() -> Value {
        string(VERSION.into(), 1, 32)
    }

    pub fn sha256_hex() -> Value {
        string(SHA256_HEX.into(), 64, 64)
    }

    pub fn jurisdiction() -> Value {
        string(JURISDICTION.into(), 2, 6)
    }

    /// Free text of at most `max` characters: no controls but tab and line breaks; when
    /// `required`, something besides white space.
    pub fn text(max: usize, required: bool) -> Value {
        if required {
            string(
                format!("^[^{CONTROL_BUT_LINES}]*[^{CONTROL}{SPACE}][^{CONTROL_BUT_LINES}]*$"),
                1,
                max,
            )
        } else {
            string(format!("^[^{CONTROL_BUT_LINES}]*$"), 0, max)
        }
    }

    pub fn url() -> Value {
        string(
            format!("^[hH][tT][tT][pP][sS]?://[^{CONTROL}{SPACE}]+$"),
            8,
            2048,
        )
    }

    pub fn instant() -> Value {
        json!({"type": "string", "format": "date-time", "pattern": INSTANT, "minLength": 20, "maxLength": 35})
    }

    /// Whether `s` is written as [`INSTANT`] says (the calendar is checked by the parser).
    pub fn instant_shape(s: &str) -> bool {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| {
            b.get(r.clone())
                .is_some_and(|d| d.len() == r.len() && d.iter().all(u8::is_ascii_digit))
        };
        let num = |r: std::ops::Range<usize>| -> u32 {
            b[r].iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
        };
        if b.len() < 20
            || !digits(0..4)
            || b[4] != b'-'
            || !digits(5..7)
            || b[7] != b'-'
            || !digits(8..10)
            || b[10] != b'T'
            || !digits(11..13)
            || b[13] != b':'
            || !digits(14..16)
            || b[16] != b':'
            || !digits(17..19)
        {
            return false;
        }
        let (year, month, day) = (num(0..4), num(5..7), num(8..10));
        let (hour, minute, second) = (num(11..13), num(14..16), num(17..19));
        if !(1700..=2249).contains(&year)
            || !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return false;
        }
        let mut i = 19;
        if b[i] == b'.' {
            let n = b[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
            if !(1..=9).contains(&n) {
                return false;
            }
            i += 1 + n;
        }
        match &b[i..] {
            b"Z" => true,
            [sign, ..] if (*sign == b'+' || *sign == b'-') && b.len() == i + 6 => {
                digits(i + 1..i + 3)
                    && b[i + 3] == b':'
                    && digits(i + 4..i + 6)
                    && num(i + 1..i + 3) <= 23
                    && num(i + 4..i + 6) <= 59
            }
            _ => false,
        }
    }

    /// A pattern for the whole numbers 1 to `max` written without leading zeros.
    pub fn up_to(max: u64) -> String {
        let m = max.to_string();
        let m = m.as_bytes();
        let k = m.len();
        let mut alts = Vec::new();
        if k > 1 {
            alts.push(if k == 2 {
                "[1-9]".to_string()
            } else {
                format!("[1-9][0-9]{{0,{}}}", k - 2)
            });
        }
        for i in 0..k {
            let low = if i == 0 { b'1' } else { b'0' };
            if m[i] > low {
                let prefix = std::str::from_utf8(&m[..i]).unwrap_or_default();
                let rest = k - i - 1;
                let class = if m[i] - 1 == low {
                    format!("{}", char::from(low))
                } else {
                    format!("[{}-{}]", char::from(low), char::from(m[i] - 1))
                };
                alts.push(match rest {
                    0 => format!("{prefix}{class}"),
                    1 => format!("{prefix}{class}[0-9]"),
                    _ => format!("{prefix}{class}[0-9]{{{rest}}}"),
                });
            }
        }
        alts.push(std::str::from_utf8(m).unwrap_or_default().to_string());
        format!("(?:{})", alts.join("|"))
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
        // Years 1700 to 2249, inside the ledger's range (canonical JSON's integers) whatever
        // the offset.
        assert!(instant("at", "2249-12-31T23:59:59.999999999-23:59").is_ok());
        assert!(instant("at", "1700-01-01T00:00:00+23:59").is_ok());
        let late = instant("expires_at", "2250-01-01T00:00:00Z").unwrap_err();
        assert!(late.to_string().contains("expires_at"), "{late}");
        assert!(late.to_string().contains("1700 to 2249"), "{late}");
        assert!(instant("at", "2300-01-01T00:00:00Z").is_err());
        assert!(instant("at", "1684-01-01T00:00:00Z").is_err());
        assert!(instant("at", "1699-12-31T23:59:59Z").is_err());
        for bad in [
            "2026-11-23t10:00:00Z",
            "2026-11-23T10:00:00z",
            "2026-11-23 10:00:00Z",
            " 2026-11-23T10:00:00Z",
            "2026-11-23T10:00:00Z\n",
            "2026-11-23T10:00:60Z",
            "2026-11-23T10:00:00.Z",
            "2026-11-23T10:00:00.1234567890Z",
            "2026-11-23T10:00:00+24:00",
            "2026-11-23T10:00:00+0100",
            "2026-02-30T10:00:00Z",
            "+2026-11-23T10:00:00Z",
        ] {
            assert!(instant("at", bad).is_err(), "{bad:?}");
        }
        assert!(subject_id("subject", &"é".repeat(256)).is_ok());
        assert!(subject_id("subject", &"é".repeat(257)).is_err());
    }

    /// Strings from an alphabet of the characters each rule draws a line at.
    fn corpus() -> Vec<String> {
        let alphabet: Vec<char> = "aZz09._-:/ hHtTpPsS+TZé\u{0}\u{8}\t\n\u{b}\r\u{1f}\u{7f}\u{85}\u{9f}\u{a0}\u{1680}\u{2000}\u{200b}\u{2028}\u{3000}\u{feff}😀"
            .chars()
            .collect();
        let mut out: Vec<String> = [
            "",
            "a",
            " a",
            "a ",
            "a b",
            "marketing.email",
            "https://x",
            "http://",
            "HTTPS://example.com/p",
            "https://a b",
            "2026-03",
            "DE",
            "US-CA",
            "EU-",
            "dE",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 12) as usize;
            let mut s = String::new();
            let mut y = x;
            for _ in 0..len {
                y = y
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s.push(alphabet[(y >> 33) as usize % alphabet.len()]);
            }
            // Some well-formed prefixes, so the rules' accepting side is exercised too.
            match x % 5 {
                0 => s.insert_str(0, "https://"),
                1 => s.insert(0, 'a'),
                _ => {}
            }
            out.push(s);
        }
        out
    }

    fn admits(schema: &serde_json::Value, re: &regex::Regex, s: &str) -> bool {
        let n = s.chars().count() as u64;
        re.is_match(s)
            && n >= schema["minLength"].as_u64().unwrap_or(0)
            && n <= schema["maxLength"].as_u64().unwrap_or(u64::MAX)
    }

    #[test]
    fn schemas_admit_exactly_what_validators_do() {
        type Validator = Box<dyn Fn(&str) -> bool>;
        let rules: Vec<(&str, serde_json::Value, Validator)> = vec![
            (
                "subject",
                schema::subject(),
                Box::new(|s| subject_id("f", s).is_ok()),
            ),
            ("key", schema::key(), Box::new(|s| key("f", s).is_ok())),
            (
                "version",
                schema::version(),
                Box::new(|s| version("f", s).is_ok()),
            ),
            (
                "sha256",
                schema::sha256_hex(),
                Box::new(|s| sha256_hex("f", s).is_ok()),
            ),
            (
                "jurisdiction",
                schema::jurisdiction(),
                Box::new(|s| jurisdiction("f", s).is_ok()),
            ),
            (
                "text required",
                schema::text(5, true),
                Box::new(|s| text("f", s, 5, true).is_ok()),
            ),
            (
                "text",
                schema::text(5, false),
                Box::new(|s| text("f", s, 5, false).is_ok()),
            ),
            ("url", schema::url(), Box::new(|s| url("f", s).is_ok())),
        ];
        let mut corpus = corpus();
        corpus.push("a".repeat(64));
        corpus.push(format!("a{}", "b".repeat(64)));
        corpus.push("f".repeat(64));
        corpus.push("x".repeat(256));
        corpus.push("x".repeat(257));
        for (name, schema, validator) in &rules {
            let re = regex::Regex::new(schema["pattern"].as_str().unwrap()).unwrap();
            let mut accepted = 0;
            for s in &corpus {
                assert_eq!(
                    admits(schema, &re, s),
                    validator(s),
                    "the {name} schema and validator disagree on {s:?}"
                );
                accepted += usize::from(validator(s));
            }
            assert!(accepted > 0, "the corpus never satisfies the {name} rule");
        }
    }

    #[test]
    fn the_instant_schema_admits_exactly_what_the_parser_does() {
        let mut samples = vec![
            "2026-11-23T10:00:00Z".to_string(),
            "2026-11-23T10:00:00.5+01:00".to_string(),
        ];
        let parts: [&[&str]; 8] = [
            &[
                "1699", "1700", "2026", "2249", "2250", "0001", "9999", "20x6",
            ],
            &["-01", "-12", "-13", "-00", "/01"],
            &["-01", "-28", "-31", "-32", "-00"],
            &["T", "t", " "],
            &[
                "00:00:00", "23:59:59", "24:00:00", "12:60:00", "12:00:60", "1:00:00",
            ],
            &["", ".1", ".123456789", ".1234567890", "."],
            &[
                "Z", "z", "+00:00", "-23:59", "+24:00", "+01:60", "+0100", "",
            ],
            &["", "\n", " "],
        ];
        let mut x: u64 = 7;
        for _ in 0..20_000 {
            let mut s = String::new();
            for p in parts {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s.push_str(p[(x >> 33) as usize % p.len()]);
            }
            samples.push(s);
        }
        let re = regex::Regex::new(schema::INSTANT).unwrap();
        let mut accepted = 0;
        for s in &samples {
            // The schema's `format: date-time` adds the calendar (no 31 November), as the parser does.
            let calendar = chrono::DateTime::parse_from_rfc3339(s).is_ok();
            assert_eq!(
                re.is_match(s) && calendar,
                instant("at", s).is_ok(),
                "the instant schema and parser disagree on {s:?}"
            );
            assert_eq!(re.is_match(s), schema::instant_shape(s), "{s:?}");
            accepted += usize::from(instant("at", s).is_ok());
        }
        assert!(accepted > 10, "{accepted}");
    }

    #[test]
    fn number_patterns_match_one_to_max() {
        for max in [
            1, 5, 9, 10, 11, 19, 20, 99, 100, 101, 366, 999, 1000, 8784, 527_040, 31_622_400,
        ] {
            let re = regex::Regex::new(&format!("^{}$", schema::up_to(max))).unwrap();
            for n in 0..=(max + 50).min(40_000) {
                assert_eq!(
                    re.is_match(&n.to_string()),
                    (1..=max).contains(&n),
                    "{max}: {n}"
                );
            }
            assert!(re.is_match(&max.to_string()));
            assert!(!re.is_match(&(max + 1).to_string()));
            assert!(!re.is_match(&format!("0{max}")));
        }
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
