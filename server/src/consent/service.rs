//! Consent rules: validate a command, turn it into events, record them with their projection.
//! Used by the HTTP API and the CLI alike.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use actix_web::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::events::ConsentEvent;
use super::index::ConsentIndex;
use super::model::{
    COLLECTED_SKEW_MICROS, Channel, ConsentRecord, Decision, Evidence, LegalBasis, MICROS_PER_DAY,
    Method, NoticeDef, NoticeRef, PurposeDef, PurposeStatus,
};
use super::projection;
use super::store::{self, NoticeRow, PurposeRow, RecordRow};
use crate::clock::{SharedClock, Timestamp};
use crate::db::{AnyConnection, Pool};
use crate::error::{AppError, ConflictCode};
use crate::idempotency::{self, IdempotencyKey};
use crate::ledger::{Actor, AppendRequest, Appended, EventDraft, Ledger};
use crate::vocab::{self, Jurisdiction, Key, Problems, Sha256Hex, SubjectId, Url, Version};

/// Events per append in a bulk import.
pub const IMPORT_CHUNK: usize = 1000;

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
            Some(k) => p.take(Key::parse("key", k)).map(Key::into_inner),
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
            p.take(Url::parse("dpv_iri", iri));
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
        p.take(Key::parse("key", &key));
        let version = self.version.clone().unwrap_or_default();
        p.take(Version::parse("version", &version));
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
        p.take(Url::parse("url", &url));
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
            p.take(SubjectId::parse("subject", s));
        }
        let purpose = match required(&mut p, "purpose", &self.purpose) {
            None => None,
            Some(k) => match (cx.purpose)(&k) {
                None if p.take(Key::parse("purpose", &k)).is_none() => None,
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
                let ok = p.take(Key::parse("notice_key", k)).is_some()
                    & p.take(Version::parse("notice_version", v)).is_some();
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
            p.take(Jurisdiction::parse("jurisdiction", j));
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

/// A consent record as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecordView {
    pub subject: String,
    pub purpose: String,
    pub channel: Channel,
    pub decision: Decision,
    pub legal_basis: LegalBasis,
    pub method: Method,
    pub notice_key: Option<String>,
    pub notice_version: Option<String>,
    #[serde(serialize_with = "crate::clock::rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub collected_at: Timestamp,
    #[serde(serialize_with = "crate::clock::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    pub jurisdiction: Option<String>,
    pub source: Option<String>,
    pub gpc: bool,
    pub evidence: Option<Evidence>,
}

impl From<&ConsentRecord> for RecordView {
    fn from(r: &ConsentRecord) -> Self {
        RecordView {
            subject: r.subject.clone(),
            purpose: r.purpose.clone(),
            channel: r.channel,
            decision: r.decision,
            legal_basis: r.legal_basis,
            method: r.method,
            notice_key: r.notice.as_ref().map(|n| n.key.clone()),
            notice_version: r.notice.as_ref().map(|n| n.version.clone()),
            collected_at: r.collected_at,
            expires_at: r.expires_at,
            jurisdiction: r.jurisdiction.clone(),
            source: r.source.clone(),
            gpc: r.gpc,
            evidence: r.evidence.clone(),
        }
    }
}

/// The answer to a consent write.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Recorded {
    pub seq: u64,
    pub leaf_hash: String,
    #[serde(serialize_with = "crate::clock::rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: Timestamp,
    /// The same decision was already recorded; `seq` is that record's.
    pub duplicate: bool,
    pub record: RecordView,
}

/// What a bulk import did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ImportSummary {
    pub rows: u64,
    pub recorded: u64,
    /// Rows already recorded (by an earlier run or earlier in the same file).
    pub duplicates: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
}

/// A purpose or notice change and the entry that made it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Defined<T> {
    pub seq: u64,
    pub leaf_hash: String,
    pub changed: bool,
    #[serde(flatten)]
    pub value: T,
}

const DUPLICATE: &str = "this consent decision is already recorded";

/// The consent commands, over a ledger, a pool and this instance's index.
#[derive(Clone)]
pub struct ConsentService {
    ledger: Ledger,
    pool: Pool,
    clock: SharedClock,
    /// This server's index (absent in the CLI, which has none to keep current).
    index: Option<Arc<ConsentIndex>>,
}

impl ConsentService {
    pub fn new(
        ledger: Ledger,
        pool: Pool,
        clock: SharedClock,
        index: Option<Arc<ConsentIndex>>,
    ) -> Self {
        ConsentService {
            ledger,
            pool,
            clock,
            index,
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        crate::db::blocking(&self.pool, f).await
    }

    /// Appends, then waits until this instance's index shows the change, so the caller reads its
    /// own write here without `min_seq`.
    async fn append(&self, req: AppendRequest) -> Result<Vec<Appended>, AppError> {
        let out = self.ledger.append(req).await?;
        self.applied(&out).await;
        Ok(out)
    }

    /// Waits (a while) until this instance's index shows the entries.
    async fn applied(&self, out: &[Appended]) {
        if let (Some(last), Some(index)) = (out.last(), &self.index) {
            index.wait_for_write(last.seq).await;
        }
    }

    // ----- purposes and notices -----

    /// Creates a purpose (`create_only`: refuses an existing key) or records a new version of it.
    /// Loading an unchanged definition records nothing.
    pub async fn define_purpose(
        &self,
        actor: Actor,
        request_id: Option<String>,
        mut def: PurposeDef,
        create_only: bool,
    ) -> Result<Defined<PurposeDef>, AppError> {
        let key = def.key.clone();
        let latest = self
            .read(move |c| Ok(store::latest_purpose(c, &key)?))
            .await?;
        if let Some(row) = &latest {
            if create_only {
                return Err(AppError::conflict(
                    ConflictCode::Exists,
                    format!(
                        "purpose {:?} exists (version {}); change it with PUT /v1/purposes/{}",
                        def.key, row.version, def.key
                    ),
                ));
            }
            let current = row.def()?;
            def.version = current.version;
            if current == def {
                return Ok(Defined {
                    seq: row.seq as u64,
                    leaf_hash: String::new(),
                    changed: false,
                    value: current,
                });
            }
        }
        def.version = latest.as_ref().map(|r| r.version + 1).unwrap_or(1);
        let event = if def.status == PurposeStatus::Retired {
            ConsentEvent::PurposeRetired(def.clone())
        } else {
            ConsentEvent::PurposeDefined(def.clone())
        };
        let (key, version) = (def.key.clone(), def.version);
        let out = self
            .append(
                AppendRequest::new(actor, vec![EventDraft::new(&event)?])
                    .request_id(request_id)
                    .project(move |c, appended| {
                        let now = store::latest_purpose(c, &key)?
                            .map(|r| r.version)
                            .unwrap_or(0);
                        if now + 1 != version {
                            return Err(AppError::conflict(ConflictCode::Changed, format!(
                                "purpose {key:?} changed meanwhile (now version {now}); read it and try again"
                            )));
                        }
                        Ok(projection::apply(c, &event, first(appended)?)?)
                    }),
            )
            .await?;
        let a = first(&out)?;
        Ok(Defined {
            seq: a.seq,
            leaf_hash: a.leaf_hash.clone(),
            changed: true,
            value: def,
        })
    }

    /// Retires a purpose: checks then answer `purpose_retired`, no new consent is accepted, and
    /// its history stays.
    pub async fn retire_purpose(
        &self,
        actor: Actor,
        request_id: Option<String>,
        key: &str,
    ) -> Result<Defined<PurposeDef>, AppError> {
        let mut def = self.purpose(key).await?;
        def.status = PurposeStatus::Retired;
        self.define_purpose(actor, request_id, def, false).await
    }

    pub async fn purpose(&self, key: &str) -> Result<PurposeDef, AppError> {
        let k = key.to_string();
        let row = self
            .read(move |c| Ok(store::latest_purpose(c, &k)?))
            .await?;
        row.ok_or_else(|| AppError::NotFound(format!("no purpose {key:?}")))?
            .def()
            .map_err(AppError::from)
    }

    /// Every purpose at its latest version, by key.
    pub async fn purposes(&self) -> Result<Vec<(PurposeDef, i64)>, AppError> {
        let rows = self.read(|c| Ok(store::all_purpose_versions(c)?)).await?;
        let mut latest: std::collections::BTreeMap<String, PurposeRow> = Default::default();
        for r in rows {
            latest.insert(r.key.clone(), r);
        }
        latest
            .into_values()
            .map(|r| Ok((r.def()?, r.seq)))
            .collect()
    }

    pub async fn purpose_history(&self, key: &str) -> Result<Vec<PurposeRow>, AppError> {
        let k = key.to_string();
        let rows = self
            .read(move |c| Ok(store::purpose_versions(c, &k)?))
            .await?;
        if rows.is_empty() {
            return Err(AppError::NotFound(format!("no purpose {key:?}")));
        }
        Ok(rows)
    }

    /// Publishes a notice version. Versions are immutable: publishing the same one again with the
    /// same content records nothing; with different content it is refused.
    pub async fn publish_notice(
        &self,
        actor: Actor,
        request_id: Option<String>,
        def: NoticeDef,
    ) -> Result<Defined<NoticeDef>, AppError> {
        let (k, v) = (def.key.clone(), def.version.clone());
        if let Some(row) = self.read(move |c| Ok(store::notice(c, &k, &v)?)).await? {
            let same = row.text_hash == def.text_hash
                && row.url == def.url
                && row.effective_at == def.effective_at.micros();
            if !same {
                return Err(AppError::conflict(
                    ConflictCode::Immutable,
                    format!(
                        "notice {:?} version {:?} is already published with other content; notice versions are immutable, publish a new version",
                        def.key, def.version
                    ),
                ));
            }
            return Ok(Defined {
                seq: row.seq as u64,
                leaf_hash: String::new(),
                changed: false,
                value: def,
            });
        }
        let event = ConsentEvent::NoticePublished(def.clone());
        let (key, version) = (def.key.clone(), def.version.clone());
        let out = self
            .append(
                AppendRequest::new(actor, vec![EventDraft::new(&event)?])
                    .request_id(request_id)
                    .project(move |c, appended| {
                        if store::notice(c, &key, &version)?.is_some() {
                            return Err(AppError::conflict(
                                ConflictCode::Changed,
                                format!(
                                    "notice {key:?} version {version:?} was published meanwhile"
                                ),
                            ));
                        }
                        Ok(projection::apply(c, &event, first(appended)?)?)
                    }),
            )
            .await?;
        let a = first(&out)?;
        Ok(Defined {
            seq: a.seq,
            leaf_hash: a.leaf_hash.clone(),
            changed: true,
            value: def,
        })
    }

    pub async fn notices(&self) -> Result<Vec<NoticeRow>, AppError> {
        self.read(|c| Ok(store::all_notices(c)?)).await
    }

    // ----- consent -----

    /// Validates a consent input against the current purposes (notice versions are checked in
    /// the write itself).
    pub fn validate(
        &self,
        input: &ConsentInput,
        gpc: bool,
        default_method: Method,
    ) -> Result<ConsentRecord, AppError> {
        let index = self
            .index
            .clone()
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("no consent index here")))?;
        let lookup = move |k: &str| index.purpose_def(k);
        input.validate(&ConsentContext {
            now: self.clock.now(),
            purpose: &lookup,
            notice_exists: None,
            gpc,
            default_method,
        })
    }

    /// Records one consent decision. The same decision recorded before answers with that record
    /// (`duplicate`); an idempotency key replays the first answer.
    pub async fn record(
        &self,
        actor: Actor,
        request_id: Option<String>,
        record: ConsentRecord,
        idem: Option<IdempotencyKey>,
    ) -> Result<Recorded, AppError> {
        let projected = record.clone();
        let event = ConsentEvent::ConsentRecorded(Box::new(record.clone()));
        let subject_ref = self.ledger.writer().keys().subject_ref(&record.subject);
        let result = self
            .append(
                AppendRequest::new(actor, vec![EventDraft::new(&event)?])
                    .request_id(request_id)
                    .project(move |c, appended| {
                        let a = first(appended)?;
                        if store::seq_by_fingerprint(c, &projected.fingerprint)?.is_some() {
                            return Err(AppError::conflict(ConflictCode::Duplicate, DUPLICATE));
                        }
                        check_references(c, std::slice::from_ref(&projected))?;
                        projection::apply(c, &event, a)?;
                        if let Some(key) = &idem {
                            let body = serde_json::to_string(&recorded(&projected, a, false))
                                .map_err(AppError::internal)?;
                            key.store(c, StatusCode::CREATED, &body, Some(&subject_ref), a.at)?;
                        }
                        Ok(())
                    }),
            )
            .await;
        match result {
            Ok(out) => Ok(recorded(&record, first(&out)?, false)),
            Err(e) if e.conflict_code() == Some(ConflictCode::Duplicate) => {
                let fp = record.fingerprint.clone();
                let existing = self
                    .read(move |c| {
                        let seq = store::seq_by_fingerprint(c, &fp)?;
                        Ok(match seq {
                            Some(s) => crate::ledger::store::entry(c, s as u64)?
                                .map(|e| (s as u64, e.leaf_hash, Timestamp(e.at))),
                            None => None,
                        })
                    })
                    .await?
                    .ok_or_else(|| AppError::conflict(ConflictCode::Duplicate, DUPLICATE))?;
                Ok(Recorded {
                    seq: existing.0,
                    leaf_hash: existing.1,
                    recorded_at: existing.2,
                    duplicate: true,
                    record: RecordView::from(&record),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Replays the stored answer for an idempotency key, if any.
    pub async fn replay(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<idempotency::Stored>, AppError> {
        let key = key.clone();
        let now = self.clock.now();
        self.read(move |c| key.replay(c, now)).await
    }

    /// Writes validated records in chunks, skipping those already recorded (by fingerprint), so a
    /// re-run of the same file writes nothing new. `progress` is told how many rows are done.
    pub async fn import(
        &self,
        actor: Actor,
        request_id: Option<String>,
        records: Vec<ConsentRecord>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<ImportSummary, AppError> {
        let mut summary = ImportSummary {
            rows: records.len() as u64,
            ..ImportSummary::default()
        };
        let mut seen: HashSet<String> = HashSet::with_capacity(records.len());
        let mut done = 0u64;
        let mut iter = records.into_iter().peekable();
        while iter.peek().is_some() {
            let chunk: Vec<ConsentRecord> = iter.by_ref().take(IMPORT_CHUNK).collect();
            let n = chunk.len() as u64;
            let fps: Vec<String> = chunk.iter().map(|r| r.fingerprint.clone()).collect();
            let existing: HashSet<String> = self
                .read(move |c| {
                    let refs: Vec<&str> = fps.iter().map(String::as_str).collect();
                    Ok(store::existing_fingerprints(c, &refs)?)
                })
                .await?
                .into_iter()
                .collect();
            let fresh: Vec<ConsentRecord> = chunk
                .into_iter()
                .filter(|r| {
                    !existing.contains(&r.fingerprint) && seen.insert(r.fingerprint.clone())
                })
                .collect();
            summary.duplicates += n - fresh.len() as u64;
            if !fresh.is_empty() {
                let events: Vec<ConsentEvent> = fresh
                    .iter()
                    .map(|r| ConsentEvent::ConsentRecorded(Box::new(r.clone())))
                    .collect();
                let drafts = events
                    .iter()
                    .map(EventDraft::new)
                    .collect::<Result<Vec<_>, _>>()?;
                let out = self
                    .append(
                        AppendRequest::new(actor.clone(), drafts)
                            .request_id(request_id.clone())
                            .project(move |c, appended| {
                                check_references(c, &fresh)?;
                                projection::apply_all(c, &events, appended).map_err(|e| match e {
                                    diesel::result::Error::DatabaseError(
                                        diesel::result::DatabaseErrorKind::UniqueViolation,
                                        _,
                                    ) => AppError::conflict(
                                        ConflictCode::Changed,
                                        "some rows were recorded by another writer meanwhile; run the import again (it skips what is recorded)",
                                    ),
                                    other => other.into(),
                                })
                            }),
                    )
                    .await?;
                summary.recorded += out.len() as u64;
                if summary.first_seq.is_none() {
                    summary.first_seq = out.first().map(|a| a.seq);
                }
                summary.last_seq = out.last().map(|a| a.seq).or(summary.last_seq);
            }
            done += n;
            progress(done);
        }
        Ok(summary)
    }

    /// The subject's records in ledger order, each with its leaf hash.
    pub async fn history(&self, subject: &str) -> Result<Vec<(RecordRow, String, i64)>, AppError> {
        let s = subject.to_string();
        self.read(move |c| Ok(store::subject_history(c, &s)?)).await
    }

    /// Records purposes and notices from a definitions file; unchanged ones record nothing.
    pub async fn load_definitions(
        &self,
        actor: Actor,
        defs: &Definitions,
    ) -> Result<LoadSummary, AppError> {
        let mut summary = LoadSummary::default();
        let (purposes, notices) = defs.validate(self.clock.now())?;
        for d in purposes {
            if self
                .define_purpose(actor.clone(), None, d, false)
                .await?
                .changed
            {
                summary.purposes_changed += 1;
            } else {
                summary.unchanged += 1;
            }
        }
        for d in notices {
            if self.publish_notice(actor.clone(), None, d).await?.changed {
                summary.notices_published += 1;
            } else {
                summary.unchanged += 1;
            }
        }
        Ok(summary)
    }
}

/// A definitions file (`policies/purposes.toml`): purposes and notice versions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definitions {
    #[serde(default)]
    pub purpose: Vec<PurposeInput>,
    #[serde(default)]
    pub notice: Vec<NoticeInput>,
}

impl Definitions {
    /// Reads a TOML (or, by extension, JSON) definitions file.
    pub fn read(path: &std::path::Path) -> Result<Definitions, AppError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AppError::BadRequest(format!("cannot read {}: {e}", path.display())))?;
        let json = path.extension().is_some_and(|e| e == "json");
        Self::parse(&text, json).map_err(|e| {
            AppError::BadRequest(format!(
                "{} is not a valid definitions file: {e}",
                path.display()
            ))
        })
    }

    /// Parses definitions from TOML (or JSON) text; the error is one line.
    pub fn parse(text: &str, json: bool) -> Result<Definitions, String> {
        if json {
            serde_json::from_str(text).map_err(|e| e.to_string())
        } else {
            toml::from_str(text).map_err(|e| crate::error::one_line(&e.to_string()))
        }
    }

    /// Validates every purpose and notice, listing every problem by its place in the file.
    pub fn validate(
        &self,
        now: crate::clock::Timestamp,
    ) -> Result<(Vec<PurposeDef>, Vec<NoticeDef>), AppError> {
        let mut problems = Problems::default();
        let mut purposes = Vec::new();
        for (i, p) in self.purpose.iter().enumerate() {
            match p.validate(None) {
                Ok(d) => purposes.push(d),
                Err(e) => problems.take_prefixed(&format!("purpose[{i}]."), e),
            }
        }
        let mut notices = Vec::new();
        for (i, n) in self.notice.iter().enumerate() {
            match n.validate(now) {
                Ok(d) => notices.push(d),
                Err(e) => problems.take_prefixed(&format!("notice[{i}]."), e),
            }
        }
        problems.into_result()?;
        Ok((purposes, notices))
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadSummary {
    pub purposes_changed: u64,
    pub notices_published: u64,
    pub unchanged: u64,
}

fn first(appended: &[Appended]) -> Result<&Appended, AppError> {
    appended
        .first()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("append returned no entry")))
}

fn recorded(r: &ConsentRecord, a: &Appended, duplicate: bool) -> Recorded {
    Recorded {
        seq: a.seq,
        leaf_hash: a.leaf_hash.clone(),
        recorded_at: a.at,
        duplicate,
        record: RecordView::from(r),
    }
}

/// Inside a write: every purpose is registered and active, every notice version exists. This is
/// the authoritative check (the one before the write reads this instance's index).
fn check_references(c: &mut AnyConnection, records: &[ConsentRecord]) -> Result<(), AppError> {
    let purposes: BTreeSet<&str> = records.iter().map(|r| r.purpose.as_str()).collect();
    let mut status: HashMap<&str, bool> = HashMap::new();
    for p in purposes {
        let active = store::latest_purpose(c, p)?
            .is_some_and(|row| row.status == PurposeStatus::Active.as_str());
        status.insert(p, active);
    }
    if let Some(r) = records.iter().find(|r| !status[r.purpose.as_str()]) {
        return Err(AppError::unmet(
            "purpose",
            format!(
                "{:?} is not a registered, active purpose (it may have been retired meanwhile)",
                r.purpose
            ),
        ));
    }
    let notices: BTreeSet<(&str, &str)> = records
        .iter()
        .filter_map(|r| r.notice.as_ref())
        .map(|n| (n.key.as_str(), n.version.as_str()))
        .collect();
    for (k, v) in notices {
        if store::notice(c, k, v)?.is_none() {
            return Err(AppError::unmet(
                "notice_version",
                format!("notice {k:?} has no version {v:?} (see GET /v1/notices)"),
            ));
        }
    }
    Ok(())
}
