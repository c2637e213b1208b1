//! What callers send to the consent domain (a purpose, a notice version, a consent decision:
//! as JSON, an NDJSON line or a CSV row), and the checks that turn it into the domain's types.

use serde::Deserialize;

use super::model::{
    COLLECTED_SKEW_MICROS, Channel, ConsentRecord, Decision, Evidence, LegalBasis, MICROS_PER_DAY,
    Method, NoticeDef, NoticeRef, PurposeDef, PurposeStatus,
};
use crate::clock::Timestamp;
use crate::error::AppError;
use crate::vocab::{self, Jurisdiction, Key, Problems, Sha256Hex, SubjectId, Url, Version};

/// A purpose as callers send it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurposeInput {
    /// The purpose's key (in the path for `PUT`).
    pub key: Option<String>,
    #[schema(required = true, value_type = String)]
    pub title: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = Option<LegalBasis>)]
    pub legal_basis: Option<String>,
    pub consent_required: Option<bool>,
    #[schema(minimum = 1, maximum = 36500)]
    #[serde(default, deserialize_with = "crate::body::whole_number")]
    pub lifetime_days: Option<i64>,
    pub gpc_applies: Option<bool>,
    pub dpv_iri: Option<String>,
    #[schema(value_type = Option<PurposeStatus>)]
    pub status: Option<String>,
}

impl PurposeInput {
    /// Checks every field; `version` is filled in by the service.
    pub fn validate(&self, key: Option<&str>) -> Result<PurposeDef, AppError> {
        let mut p = Problems::default();
        let key = key.or(self.key.as_deref());
        let key = match key {
            None => {
                p.add("key", "is required, e.g. marketing.email");
                None
            }
            Some(k) => p.take(Key::check("key", k)).map(|()| k.to_string()),
        };
        let title = self.title.clone().unwrap_or_default();
        p.take(vocab::text("title", &title, 200, true));
        let description = self.description.clone().unwrap_or_default();
        p.take(vocab::text("description", &description, 4000, false));
        let legal_basis = match &self.legal_basis {
            None => Some(LegalBasis::Consent),
            Some(b) => p.take(LegalBasis::parse_field("legal_basis", b)),
        };
        let consent_required = self
            .consent_required
            .unwrap_or(legal_basis == Some(LegalBasis::Consent));
        if legal_basis == Some(LegalBasis::Consent) && !consent_required {
            p.add(
                "consent_required",
                "a purpose whose legal basis is consent requires consent",
            );
        }
        let lifetime_days = match self.lifetime_days {
            None => None,
            Some(d) if (1..=36_500).contains(&d) => Some(d as i32),
            Some(_) => {
                p.add("lifetime_days", "must be between 1 and 36500 days");
                None
            }
        };
        if let Some(iri) = &self.dpv_iri {
            p.take(Url::check("dpv_iri", iri));
        }
        let status = match &self.status {
            None => Some(PurposeStatus::Active),
            Some(s) => p.take(PurposeStatus::parse_field("status", s)),
        };
        p.into_result()?;
        match (key, legal_basis, status) {
            (Some(key), Some(legal_basis), Some(status)) => Ok(PurposeDef {
                key,
                version: 0,
                title: title.trim().to_string(),
                description,
                legal_basis,
                consent_required,
                lifetime_days,
                gpc_applies: self.gpc_applies.unwrap_or(false),
                dpv_iri: self.dpv_iri.clone(),
                status,
            }),
            _ => Err(AppError::internal(anyhow::anyhow!(
                "purpose validation lost a field"
            ))),
        }
    }
}

/// A notice version as callers send it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoticeInput {
    #[schema(required = true, value_type = String)]
    pub key: Option<String>,
    #[schema(required = true, value_type = String)]
    pub version: Option<String>,
    /// SHA-256 of the notice text (hex); or the text itself, which is hashed and not kept.
    pub text_hash: Option<String>,
    pub text: Option<String>,
    #[schema(required = true, value_type = String)]
    pub url: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub effective_at: Option<String>,
}

impl NoticeInput {
    pub fn validate(&self, now: Timestamp) -> Result<NoticeDef, AppError> {
        let mut p = Problems::default();
        let key = self.key.clone().unwrap_or_default();
        p.take(Key::check("key", &key));
        let version = self.version.clone().unwrap_or_default();
        p.take(Version::check("version", &version));
        let text_hash = match (&self.text_hash, &self.text) {
            (Some(h), None) => p
                .take(Sha256Hex::parse("text_hash", h))
                .map(Sha256Hex::into_inner),
            (None, Some(t)) => Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                t.as_bytes(),
            ))),
            (Some(_), Some(_)) => {
                p.add("text", "give either text or text_hash, not both");
                None
            }
            (None, None) => {
                p.add(
                    "text_hash",
                    "is required: the SHA-256 of the notice text (or send the text itself)",
                );
                None
            }
        };
        let url = self.url.clone().unwrap_or_default();
        p.take(Url::check("url", &url));
        let effective_at = match &self.effective_at {
            None => Some(now),
            Some(s) => p.take(vocab::instant("effective_at", s)),
        };
        p.into_result()?;
        Ok(NoticeDef {
            key,
            version,
            text_hash: text_hash.unwrap_or_default(),
            url,
            effective_at: effective_at.unwrap_or(now),
        })
    }
}

/// A consent decision as callers send it (JSON, an NDJSON line or a CSV row).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    #[schema(required = true, value_type = String)]
    pub subject: Option<String>,
    #[schema(required = true, value_type = String)]
    pub purpose: Option<String>,
    #[schema(required = true, value_type = Channel)]
    pub channel: Option<String>,
    #[schema(value_type = Option<Decision>)]
    pub decision: Option<String>,
    #[schema(value_type = Option<LegalBasis>)]
    pub legal_basis: Option<String>,
    #[schema(value_type = Option<Method>)]
    pub method: Option<String>,
    pub notice_key: Option<String>,
    pub notice_version: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub collected_at: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<String>,
    pub jurisdiction: Option<String>,
    pub source: Option<String>,
    pub evidence: Option<Evidence>,
}

/// Whether a notice (key, version) exists.
pub type NoticeLookup<'a> = &'a dyn Fn(&str, &str) -> bool;

/// What validation of a consent input needs to know.
pub struct ConsentContext<'a> {
    pub now: Timestamp,
    /// The latest version of a purpose, by key.
    pub purpose: &'a dyn Fn(&str) -> Option<PurposeDef>,
    /// Whether a notice version exists; `None` defers that check to the write.
    pub notice_exists: Option<NoticeLookup<'a>>,
    /// The request carried `Sec-GPC: 1`.
    pub gpc: bool,
    pub default_method: Method,
}

impl ConsentInput {
    /// Checks every field and resolves defaults (legal basis, method, collection time, expiry)
    /// from the purpose.
    pub fn validate(&self, cx: &ConsentContext<'_>) -> Result<ConsentRecord, AppError> {
        let mut p = Problems::default();
        let subject = required(&mut p, "subject", &self.subject);
        if let Some(s) = &subject {
            p.take(SubjectId::check("subject", s));
        }
        let purpose = match required(&mut p, "purpose", &self.purpose) {
            None => None,
            Some(k) => match (cx.purpose)(&k) {
                None if p.take(Key::check("purpose", &k)).is_none() => None,
                None => {
                    p.unmet(
                        "purpose",
                        format!("{k:?} is not a registered purpose (see GET /v1/purposes)"),
                    );
                    None
                }
                Some(def) if def.status == PurposeStatus::Retired => {
                    p.unmet(
                        "purpose",
                        format!("{k:?} is retired; no new consent can be recorded for it"),
                    );
                    None
                }
                Some(def) => Some(def),
            },
        };
        let channel = required(&mut p, "channel", &self.channel)
            .and_then(|c| p.take(Channel::parse_field("channel", &c)));
        let gpc_honoured = cx.gpc && purpose.as_ref().is_some_and(|d| d.gpc_applies);
        let decision = match (&self.decision, gpc_honoured) {
            (None, true) => Some(Decision::Withdrawn),
            (None, false) => {
                p.add("decision", "is required: granted, withdrawn or denied");
                None
            }
            (Some(d), _) => p.take(Decision::parse_field("decision", d)),
        };
        if gpc_honoured && decision == Some(Decision::Granted) {
            p.unmet(
                "decision",
                "a grant conflicts with the Global Privacy Control signal (Sec-GPC: 1) this request carries, \
                 and the purpose honours GPC; record it without the signal or as an opt-out",
            );
        }
        let legal_basis = match &self.legal_basis {
            None => purpose.as_ref().map(|d| d.legal_basis),
            Some(b) => p.take(LegalBasis::parse_field("legal_basis", b)),
        };
        let method = match &self.method {
            None if gpc_honoured => Some(Method::Gpc),
            None => Some(cx.default_method),
            Some(m) => p.take(Method::parse_field("method", m)),
        };
        let notice = match (&self.notice_key, &self.notice_version) {
            (None, None) => None,
            (Some(k), Some(v)) => {
                let ok = p.take(Key::check("notice_key", k)).is_some()
                    & p.take(Version::check("notice_version", v)).is_some();
                if ok
                    && let Some(exists) = cx.notice_exists
                    && !exists(k, v)
                {
                    p.unmet(
                        "notice_version",
                        format!("notice {k:?} has no version {v:?} (see GET /v1/notices)"),
                    );
                }
                ok.then(|| NoticeRef {
                    key: k.clone(),
                    version: v.clone(),
                })
            }
            (Some(_), None) => {
                p.add("notice_version", "is required with notice_key");
                None
            }
            (None, Some(_)) => {
                p.add("notice_key", "is required with notice_version");
                None
            }
        };
        // As written (a future one still orders against expires_at), then as accepted.
        let collected_written = match &self.collected_at {
            None => Some(cx.now),
            Some(s) => p.take(vocab::instant("collected_at", s)),
        };
        let collected_at = collected_written.filter(|t| {
            let future = t.micros() > cx.now.micros() + COLLECTED_SKEW_MICROS;
            if future {
                p.unmet(
                    "collected_at",
                    format!(
                        "{} is in the future (the server's time is {}); at most 5 minutes of clock skew is accepted",
                        t, cx.now
                    ),
                );
            }
            !future
        });
        let expires_at = match &self.expires_at {
            None => None,
            Some(s) => p.take(vocab::instant("expires_at", s)),
        };
        if let (Some(e), Some(c)) = (expires_at, collected_written)
            && e <= c
        {
            if self.collected_at.is_some() {
                p.add(
                    "expires_at",
                    format!(
                        "{e} is not after collected_at ({c}); an expiry must come after the decision"
                    ),
                );
            } else {
                p.unmet(
                    "expires_at",
                    format!(
                        "{e} is not after the server's time ({c}), when this decision is recorded; an expiry must come after the decision"
                    ),
                );
            }
        }
        if expires_at.is_some() && decision.is_some_and(|d| d != Decision::Granted) {
            p.add("expires_at", "only a grant can expire");
        }
        if let Some(j) = &self.jurisdiction {
            p.take(Jurisdiction::check("jurisdiction", j));
        }
        if let Some(s) = &self.source {
            p.take(vocab::text("source", s, 200, true));
        }
        if let Some(e) = &self.evidence {
            for (field, v) in [
                ("evidence.form_id", &e.form_id),
                ("evidence.ip", &e.ip),
                ("evidence.user_agent", &e.user_agent),
                ("evidence.page_url", &e.page_url),
                ("evidence.reference", &e.reference),
            ] {
                if let Some(v) = v {
                    p.take(vocab::text(field, v, 1000, false));
                }
            }
        }
        p.into_result()?;
        let (
            Some(subject),
            Some(purpose),
            Some(channel),
            Some(decision),
            Some(legal_basis),
            Some(method),
            Some(collected_at),
        ) = (
            subject,
            purpose,
            channel,
            decision,
            legal_basis,
            method,
            collected_at,
        )
        else {
            return Err(AppError::internal(anyhow::anyhow!(
                "consent validation lost a field"
            )));
        };
        let expires_at = match (decision, expires_at, purpose.lifetime_days) {
            (Decision::Granted, Some(e), _) => Some(e),
            (Decision::Granted, None, Some(days)) => Some(Timestamp(
                collected_at.micros() + i64::from(days) * MICROS_PER_DAY,
            )),
            _ => None,
        };
        let mut record = ConsentRecord {
            subject,
            purpose: purpose.key,
            channel,
            decision,
            legal_basis,
            method,
            notice,
            collected_at,
            expires_at,
            jurisdiction: self.jurisdiction.clone(),
            source: self.source.clone(),
            gpc: cx.gpc,
            evidence: self.evidence.clone().filter(|e| !e.is_empty()),
            fingerprint: String::new(),
        };
        record.fingerprint = record.compute_fingerprint();
        Ok(record)
    }
}

fn required(p: &mut Problems, field: &str, v: &Option<String>) -> Option<String> {
    match v {
        Some(s) if !s.is_empty() => Some(s.clone()),
        _ => {
            p.add(field, "is required");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_795_428_000_000_000);

    fn purpose(key: &str, status: PurposeStatus, gpc: bool) -> PurposeDef {
        PurposeDef {
            key: key.into(),
            version: 1,
            title: "t".into(),
            description: String::new(),
            legal_basis: LegalBasis::Consent,
            consent_required: true,
            lifetime_days: Some(30),
            gpc_applies: gpc,
            dpv_iri: None,
            status,
        }
    }

    fn validate(input: serde_json::Value, gpc: bool) -> Result<ConsentRecord, AppError> {
        let input: ConsentInput = serde_json::from_value(input).unwrap();
        let lookup = |k: &str| match k {
            "news" => Some(purpose("news", PurposeStatus::Active, true)),
            "old" => Some(purpose("old", PurposeStatus::Retired, false)),
            _ => None,
        };
        let notices = |k: &str, v: &str| k == "privacy" && v == "v1";
        input.validate(&ConsentContext {
            now: NOW,
            purpose: &lookup,
            notice_exists: Some(&notices),
            gpc,
            default_method: Method::Api,
        })
    }

    /// The error's kind (422 or 409) and its fields.
    fn refused(r: Result<ConsentRecord, AppError>) -> (u16, Vec<String>) {
        let e = r.unwrap_err();
        let fields = e
            .field_errors()
            .unwrap_or_default()
            .iter()
            .map(|f| f.field.clone())
            .collect();
        let status = match e {
            AppError::Validation { .. } => 422,
            AppError::Unmet { .. } => 409,
            other => panic!("{other:?}"),
        };
        (status, fields)
    }

    #[test]
    fn a_decision_gets_its_defaults_from_the_purpose() {
        let r = validate(
            serde_json::json!({"subject": "s", "purpose": "news", "channel": "email", "decision": "granted"}),
            false,
        )
        .unwrap();
        assert_eq!((r.collected_at, r.method), (NOW, Method::Api));
        assert_eq!(r.expires_at, Some(Timestamp(NOW.0 + 30 * MICROS_PER_DAY)));
        assert_eq!(r.legal_basis, LegalBasis::Consent);
        assert!(!r.fingerprint.is_empty());
    }

    #[test]
    fn what_the_state_refuses_is_a_conflict_and_what_is_malformed_is_invalid() {
        let base = serde_json::json!({"subject": "s", "purpose": "news", "channel": "email", "decision": "granted"});
        let with = |k: &str, v: serde_json::Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        for (input, want) in [
            (with("purpose", "nope".into()), (409, vec!["purpose"])),
            (with("purpose", "old".into()), (409, vec!["purpose"])),
            (with("purpose", "No pe".into()), (422, vec!["purpose"])),
            (
                with("collected_at", "2200-01-01T00:00:00Z".into()),
                (409, vec!["collected_at"]),
            ),
            (
                with("notice_key", "privacy".into()),
                (422, vec!["notice_version"]),
            ),
        ] {
            let (status, fields) = refused(validate(input.clone(), false));
            assert_eq!(
                (status, fields),
                (want.0, want.1.iter().map(|s| s.to_string()).collect()),
                "{input}"
            );
        }
        // A malformed field makes it a 422 that lists the refused ones too.
        let mut both = with("collected_at", "2200-01-02T00:00:00Z".into());
        both["expires_at"] = "2200-01-01T00:00:00Z".into();
        assert_eq!(
            refused(validate(both, false)),
            (
                422,
                vec!["expires_at".to_string(), "collected_at".to_string()]
            )
        );
        let mut notice = base.clone();
        notice["notice_key"] = "privacy".into();
        notice["notice_version"] = "v9".into();
        assert_eq!(
            refused(validate(notice, false)),
            (409, vec!["notice_version".to_string()])
        );
        let mut denied = with("decision", "denied".into());
        denied["expires_at"] = "2226-01-01T00:00:00Z".into();
        assert_eq!(
            refused(validate(denied, false)),
            (422, vec!["expires_at".to_string()])
        );
    }

    #[test]
    fn a_gpc_signal_records_an_opt_out_and_refuses_a_grant() {
        let r = validate(
            serde_json::json!({"subject": "s", "purpose": "news", "channel": "email"}),
            true,
        )
        .unwrap();
        assert_eq!(
            (r.decision, r.method, r.gpc),
            (Decision::Withdrawn, Method::Gpc, true)
        );
        assert_eq!(r.expires_at, None);
        assert_eq!(
            refused(validate(
                serde_json::json!({"subject": "s", "purpose": "news", "channel": "email", "decision": "granted"}),
                true
            )),
            (409, vec!["decision".to_string()])
        );
        assert_eq!(
            refused(validate(
                serde_json::json!({"subject": "s", "purpose": "news", "channel": "email"}),
                false
            )),
            (422, vec!["decision".to_string()])
        );
    }

    #[test]
    fn purposes_and_notices_are_checked_as_a_whole() {
        let p: PurposeInput = serde_json::from_value(serde_json::json!({
            "title": " ", "legal_basis": "consent", "consent_required": false, "lifetime_days": 0
        }))
        .unwrap();
        let e = p.validate(None).unwrap_err();
        let fields: Vec<&str> = e
            .field_errors()
            .unwrap()
            .iter()
            .map(|f| f.field.as_str())
            .collect();
        assert_eq!(
            fields,
            ["key", "title", "consent_required", "lifetime_days"]
        );
        let d = PurposeInput {
            title: Some("Newsletter".into()),
            ..PurposeInput::default()
        }
        .validate(Some("newsletter"))
        .unwrap();
        assert_eq!(
            (d.legal_basis, d.consent_required),
            (LegalBasis::Consent, true)
        );

        let notice = |v: serde_json::Value| serde_json::from_value::<NoticeInput>(v).unwrap();
        let both = notice(
            serde_json::json!({"key": "privacy", "version": "v1", "url": "https://example.org",
                                             "text": "t", "text_hash": "00"}),
        );
        assert_eq!(
            both.validate(NOW).unwrap_err().field_errors().unwrap()[0].field,
            "text"
        );
        let neither = notice(
            serde_json::json!({"key": "privacy", "version": "v1", "url": "https://example.org"}),
        );
        assert_eq!(
            neither.validate(NOW).unwrap_err().field_errors().unwrap()[0].field,
            "text_hash"
        );
        let text = notice(
            serde_json::json!({"key": "privacy", "version": "v1", "url": "https://example.org",
                                             "text": "abc"}),
        )
        .validate(NOW)
        .unwrap();
        assert_eq!(
            text.text_hash,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(text.effective_at, NOW);
    }
}
