//! Consent API: purposes, notices, recording and importing consent, checks (single, batch,
//! filter, as of a moment), a subject's state and history, receipts, and erasure.

use super::model::{NoticeDef, PurposeDef};
use crate::config::Limits;
use crate::openapi::{Op, Schemas, op};
use crate::openapi::{Param, header, instant, path, query, seq, text, with_examples};
use crate::vocab::schema as rule;
use serde_json::{Value, json};
use utoipa::ToSchema as _;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::import::Reference;
use super::index::{CheckError, ConsentIndex, PurposeId};
use super::input::{ConsentInput, NoticeInput, PurposeInput};
use super::model::{self, Channel, CheckAnswer, Method as CollectionMethod};
use super::receipt;
use super::service::ConsentService;
use super::views::{Defined, ImportSummary, RecordView, Recorded};
use crate::auth::Principal;
use crate::authz::{Access, Perm, Routes};
use crate::body;
use crate::clock::Timestamp;
use crate::error::{AppError, FieldError};
use crate::idempotency::{self, Answering, Stored};
use crate::state::AppState;
use crate::telemetry::RequestId;
use crate::vocab::{self, Key, Problems, Seq, SubjectId};

pub const CONSENT_READ: Perm = Perm::new("consent", "read");
pub const CONSENT_WRITE: Perm = Perm::new("consent", "write");
/// Any consent receipt; without it, a caller with `consent:read` gets receipts of the subject it
/// names only.
pub const CONSENT_RECEIPT: Perm = Perm::new("consent", "receipt");
pub const PURPOSE_WRITE: Perm = Perm::new("purpose", "write");

/// Longest a check waits for `min_seq` to be applied here.
const MIN_SEQ_WAIT: Duration = Duration::from_secs(5);
/// Room per item in a batch check's body: the longest item the document allows (a 256-character
/// subject, each character escaped as JSON may write it, twelve bytes) fits.
const BATCH_ITEM_BYTES: usize = 4096;
/// How much of a send list is read and checked before its answer begins.
const FILTER_PREFLIGHT_BYTES: usize = 64 * 1024;
/// Largest body of a batch check (10,000 items fit easily).
/// The largest batch-check body: room for `items` items of well over the usual size (at least
/// 8 MiB).
fn batch_body_limit(items: usize) -> usize {
    (items.saturating_mul(BATCH_ITEM_BYTES)).max(8 * 1024 * 1024)
}

pub fn routes(r: &mut Routes) {
    let read = Access::Permission(CONSENT_READ);
    let write = Access::Permission(CONSENT_WRITE);
    let define = Access::Permission(PURPOSE_WRITE);
    r.get("/v1/purposes", read, list_purposes)
        .post("/v1/purposes", define, create_purpose)
        .get("/v1/purposes/{key}", read, get_purpose)
        .route(Method::PUT, "/v1/purposes/{key}", define, put_purpose)
        .post("/v1/purposes/{key}/retire", define, retire_purpose)
        .get("/v1/notices", read, list_notices)
        .post("/v1/notices", define, publish_notice)
        .post("/v1/consents", write, record_consent)
        .post("/v1/consents/import", write, import_http)
        .get("/v1/consents/check", read, check_one)
        .post("/v1/consents/check", read, check_batch)
        .post("/v1/consents/filter", read, filter)
        .get("/v1/consents/receipts/{seq}", read, receipt_http)
        .get("/v1/subjects/{id}/consents", read, subject_consents)
        .get("/v1/subjects/{id}/consents/history", read, subject_history);
}

pub fn service(state: &AppState) -> ConsentService {
    ConsentService::new(
        state.ledger.clone(),
        state.pool.clone(),
        state.clock.clone(),
        Some(state.consent.clone()),
    )
}

// ----- purposes and notices -----

/// A purpose at its latest version, with the entry that recorded it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PurposeView {
    #[serde(flatten)]
    def: model::PurposeDef,
    seq: Seq,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PurposeList {
    purposes: Vec<PurposeView>,
}

/// One version of a purpose.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PurposeVersion {
    definition: model::PurposeDef,
    seq: Seq,
    #[schema(value_type = String, format = DateTime)]
    recorded_at: String,
}

/// A purpose now, and every version of it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PurposeDetail {
    purpose: model::PurposeDef,
    versions: Vec<PurposeVersion>,
}

/// A privacy-notice version as listed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NoticeView {
    key: String,
    version: String,
    text_hash: String,
    url: String,
    #[schema(value_type = String, format = DateTime)]
    effective_at: String,
    seq: Seq,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NoticeList {
    notices: Vec<NoticeView>,
}

async fn list_purposes(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let purposes: Vec<PurposeView> = service(&state)
        .purposes()
        .await?
        .into_iter()
        .map(|(def, seq)| PurposeView { def, seq })
        .collect();
    Ok(HttpResponse::Ok().json(PurposeList { purposes }))
}

async fn get_purpose(
    state: web::Data<AppState>,
    key: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let rows = service(&state).purpose_history(&key).await?;
    let versions = rows
        .iter()
        .map(|r| {
            Ok(PurposeVersion {
                definition: r.def()?,
                seq: r.seq,
                recorded_at: Timestamp(r.at).to_rfc3339(),
            })
        })
        .collect::<Result<Vec<_>, AppError>>()?;
    let current = rows
        .last()
        .map(|r| r.def())
        .transpose()?
        .ok_or_else(|| AppError::NotFound(format!("no purpose {:?}", key.as_str())))?;
    Ok(HttpResponse::Ok().json(PurposeDetail {
        purpose: current,
        versions,
    }))
}

async fn create_purpose(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    rid: RequestId,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let (svc, caller) = (service(&state), p.actor());
    let status = |_: &Defined<PurposeDef>| StatusCode::CREATED;
    state
        .post_json(
            &req,
            &caller,
            payload,
            status,
            |input: PurposeInput, answer| async move {
                let def = input.validate(None)?;
                svc.define_purpose(p.actor(), Some(rid.0), def, true, answer)
                    .await
            },
        )
        .await
}

async fn put_purpose(
    state: web::Data<AppState>,
    p: Principal,
    rid: RequestId,
    key: web::Path<String>,
    input: web::Json<PurposeInput>,
) -> Result<HttpResponse, AppError> {
    body::same_as_path("key", input.key.as_deref(), &key)?;
    let def = input.validate(Some(&key))?;
    let out = service(&state)
        .define_purpose(p.actor(), Some(rid.0), def, false, None)
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

async fn retire_purpose(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    rid: RequestId,
    key: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let (svc, caller) = (service(&state), p.actor());
    state
        .respond(
            &req,
            &caller,
            b"",
            |_: &Defined<PurposeDef>| StatusCode::OK,
            |answer| async move {
                svc.retire_purpose(p.actor(), Some(rid.0), &key, answer)
                    .await
            },
        )
        .await
}

async fn list_notices(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let notices: Vec<NoticeView> = service(&state)
        .notices()
        .await?
        .into_iter()
        .map(|n| NoticeView {
            key: n.key,
            version: n.version,
            text_hash: n.text_hash,
            url: n.url,
            effective_at: Timestamp(n.effective_at).to_rfc3339(),
            seq: n.seq,
        })
        .collect();
    Ok(HttpResponse::Ok().json(NoticeList { notices }))
}

async fn publish_notice(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    rid: RequestId,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let (svc, caller, now) = (service(&state), p.actor(), state.clock.now());
    let status = |out: &Defined<NoticeDef>| idempotency::created_if(out.changed);
    state
        .post_json(
            &req,
            &caller,
            payload,
            status,
            |input: NoticeInput, answer| async move {
                let def = input.validate(now)?;
                svc.publish_notice(p.actor(), Some(rid.0), def, answer)
                    .await
            },
        )
        .await
}

// ----- recording -----

/// Whether the request carries a Global Privacy Control signal.
pub fn gpc_signal(req: &HttpRequest) -> bool {
    req.headers()
        .get("sec-gpc")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "1")
}

async fn record_consent(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    rid: RequestId,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    body::media_type(&req, &["application/json"])?;
    let bytes = body::read_limited(payload, state.settings.max_body_bytes).await?;
    let bytes: &[u8] = &bytes;
    let (svc, caller, gpc) = (service(&state), p.actor(), gpc_signal(&req));
    state
        .respond(
            &req,
            &caller,
            bytes,
            |out: &Recorded| idempotency::created_if(!out.duplicate),
            |answer| async move {
                let input: ConsentInput = body::json(bytes)?;
                let record = svc.validate(&input, gpc, CollectionMethod::Api)?;
                svc.record(p.actor(), Some(rid.0), record, answer).await
            },
        )
        .await
}

// ----- checks -----

/// The query of a single check and of a filter (which takes its subjects from the body and ignores
/// `subject`), read straight from the query string: values borrow from it unless they were
/// percent-encoded, so a check allocates nothing to read its parameters. Unknown parameters are
/// ignored; a known one given twice is refused.
#[derive(Debug, Default)]
struct CheckQuery<'q> {
    subject: Option<Cow<'q, str>>,
    purpose: Option<Cow<'q, str>>,
    channel: Option<Cow<'q, str>>,
    at: Option<Cow<'q, str>>,
    min_seq: Option<Cow<'q, str>>,
}

impl<'q> CheckQuery<'q> {
    fn read(query: &'q str) -> Result<CheckQuery<'q>, AppError> {
        let mut q = CheckQuery::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*key {
                "subject" => &mut q.subject,
                "purpose" => &mut q.purpose,
                "channel" => &mut q.channel,
                "at" => &mut q.at,
                "min_seq" => &mut q.min_seq,
                _ => continue,
            };
            if slot.is_some() {
                return Err(AppError::BadRequest(format!(
                    "bad query string: the parameter `{key}` is given more than once"
                )));
            }
            *slot = Some(value);
        }
        Ok(q)
    }
}

/// [`CheckQuery`]'s purpose, channel, `at` and `min_seq`, checked field by field.
struct CheckOnParsed<'a> {
    purpose: &'a str,
    channel: Channel,
    at: Option<Timestamp>,
    min_seq: Option<Seq>,
}

impl CheckQuery<'_> {
    fn parse(&self, p: &mut Problems) -> CheckOnParsed<'_> {
        let purpose = self.purpose.as_deref().unwrap_or("");
        if purpose.is_empty() {
            p.add("purpose", "is required");
        } else {
            p.take(Key::check("purpose", purpose));
        }
        let channel = match self.channel.as_deref() {
            None => {
                p.add("channel", "is required");
                None
            }
            Some(c) => p.take(Channel::parse_field("channel", c)),
        };
        CheckOnParsed {
            purpose,
            channel: channel.unwrap_or(Channel::Any),
            at: parse_at(p, "at", self.at.as_deref()),
            min_seq: parse_min_seq(p, "min_seq", self.min_seq.as_deref()),
        }
    }
}

/// Waits until this instance has applied `min_seq`, or says why it cannot answer yet.
/// Waits until this instance has applied ledger seq `min_seq` (at most [`MIN_SEQ_WAIT`]). A seq
/// the ledger does not hold yet is a 409 at once, not a wait: no write returned it.
pub async fn await_min_seq(state: &AppState, min_seq: Option<Seq>) -> Result<(), AppError> {
    let Some(seq) = min_seq.map(Seq::get) else {
        return Ok(());
    };
    let index = &state.consent;
    if index.applied() > seq {
        return Ok(());
    }
    let size = state.db(|c| Ok(crate::ledger::read::size(c)?)).await?;
    if seq >= size {
        return Err(Seq::beyond("min_seq", seq, size));
    }
    if index.wait_applied(seq, MIN_SEQ_WAIT).await {
        Ok(())
    } else {
        Err(AppError::Unavailable(format!(
            "this instance has not yet applied ledger seq {seq} (it has applied {} entries); retry shortly",
            index.applied()
        )))
    }
}

fn parse_min_seq(p: &mut Problems, field: &str, v: Option<&str>) -> Option<Seq> {
    p.take(Seq::parse(field, v?))
}

fn parse_at(p: &mut Problems, field: &str, v: Option<&str>) -> Option<Timestamp> {
    v.and_then(|s| p.take(vocab::instant(field, s)))
}

fn unknown_purpose(field: &str, key: &str) -> AppError {
    AppError::unmet(
        field,
        format!("{key:?} is not a registered purpose (see GET /v1/purposes)"),
    )
}

async fn check_one(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let q = CheckQuery::read(req.query_string())?;
    let mut p = Problems::default();
    let subject = q.subject.as_deref().unwrap_or("");
    p.take(SubjectId::check("subject", subject));
    let CheckOnParsed {
        purpose,
        channel,
        at,
        min_seq,
    } = q.parse(&mut p);
    p.into_result()?;
    let index = &state.consent;
    await_min_seq(&state, min_seq).await?;
    match index.check(subject, purpose, channel, at, state.clock.now()) {
        Ok(answer) => Ok(HttpResponse::Ok().json(answer)),
        Err(CheckError::UnknownPurpose) => Err(unknown_purpose("purpose", purpose)),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    subject: String,
    purpose: String,
    #[schema(value_type = Channel)]
    channel: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    at: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    items: Vec<BatchItem>,
    #[serde(default, deserialize_with = "crate::body::whole_number")]
    min_seq: Option<Seq>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchAnswer {
    results: Vec<CheckAnswer>,
    applied_seq: Seq,
}

async fn check_batch(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    body::media_type(&req, &["application/json"])?;
    let max_items = state.settings.limits.batch_items;
    let bytes = body::read_limited(payload, batch_body_limit(max_items)).await?;
    let batch: BatchRequest = body::json(&bytes)?;
    if batch.items.len() > max_items {
        // What the document states as `maxItems`: a field's rule, so a 422 naming it (as the
        // DPA check answers); the body's size itself is bounded above (413).
        return Err(AppError::validation(
            "items",
            format!(
                "a batch holds at most {max_items} items (the limit limits.batch_items), this one {}; split it, or use POST /v1/consents/filter for a send list",
                batch.items.len()
            ),
        ));
    }
    // The items' fields first (a malformed batch is a 422 at once), then, once this instance
    // has applied min_seq, their purposes.
    let mut p = Problems::default();
    let mut parsed: Vec<(Channel, Option<Timestamp>)> = Vec::with_capacity(batch.items.len());
    for (i, item) in batch.items.iter().enumerate() {
        if p.len() >= 100 {
            break;
        }
        let at = format!("items/{i}/");
        if let Err(e) = SubjectId::check("subject", &item.subject) {
            p.take_prefixed(&at, e);
        }
        if let Err(e) = Key::check("purpose", &item.purpose) {
            p.take_prefixed(&at, e);
        }
        let channel = p.take(Channel::parse_field(
            &format!("items/{i}/channel"),
            &item.channel,
        ));
        let when = parse_at(&mut p, &format!("items/{i}/at"), item.at.as_deref());
        if let Some(channel) = channel {
            parsed.push((channel, when));
        }
    }
    p.into_result()?;
    let index = &state.consent;
    await_min_seq(&state, batch.min_seq).await?;
    let mut p = Problems::default();
    let mut resolved: Vec<(PurposeId, Channel, Option<Timestamp>)> =
        Vec::with_capacity(batch.items.len());
    let mut purposes: BTreeMap<&str, Option<PurposeId>> = BTreeMap::new();
    for (i, (item, (channel, at))) in batch.items.iter().zip(parsed).enumerate() {
        if p.len() >= 100 {
            break;
        }
        let pid = *purposes
            .entry(item.purpose.as_str())
            .or_insert_with(|| index.purpose(&item.purpose));
        match pid {
            Some(pid) => resolved.push((pid, channel, at)),
            None => p.unmet(
                format!("items/{i}/purpose"),
                format!("{:?} is not a registered purpose", item.purpose),
            ),
        }
    }
    p.into_result()?;
    let now = state.clock.now();
    let results = batch
        .items
        .iter()
        .zip(resolved)
        .map(|(item, (pid, channel, at))| index.check_id(&item.subject, pid, channel, at, now))
        .collect();
    Ok(HttpResponse::Ok().json(BatchAnswer {
        results,
        applied_seq: Seq::new(index.applied()),
    }))
}

/// Counts per reason, for the filter's trailer.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct FilterTrailer {
    checked: u64,
    allowed: u64,
    reasons: BTreeMap<String, u64>,
    applied_seq: Seq,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<FilterError>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FilterError {
    line: u64,
    message: String,
}

struct FilterState {
    payload: web::Payload,
    index: Arc<ConsentIndex>,
    purpose: PurposeId,
    channel: Channel,
    at: Option<Timestamp>,
    now: Timestamp,
    lines: body::LineBuffer,
    /// NDJSON: each line a JSON string or an object with `subject`; otherwise plain text.
    json_lines: bool,
    trailer: FilterTrailer,
    reasons: std::collections::HashMap<model::ReasonCode, u64>,
    /// Output computed before the answer began, sent first.
    pending: Vec<u8>,
    /// The part of a chunk read before the answer began that was not checked then.
    carry: Option<Bytes>,
    input_done: bool,
    finished: bool,
}

impl FilterState {
    /// Feeds a chunk of the body (`None` at its end), writing permitted ids to `out`.
    fn feed(&mut self, chunk: Option<&[u8]>, out: &mut Vec<u8>) {
        let mut lines = std::mem::replace(&mut self.lines, body::LineBuffer::new(0));
        match chunk {
            Some(c) => lines.push(c, |n, l| self.check_line(n, l, out)),
            None => lines.finish(|n, l| self.check_line(n, l, out)),
        };
        if let Some(line) = lines.too_long() {
            self.trailer.error = Some(FilterError {
                line,
                message: format!(
                    "the line is longer than {} bytes (the limit limits.line_bytes)",
                    lines.max_line()
                ),
            });
        }
        self.lines = lines;
    }

    /// Checks one line; false (and the error noted) when it is not a subject id.
    fn check_line(&mut self, n: u64, raw: &[u8], out: &mut Vec<u8>) -> bool {
        let line = raw.trim_ascii();
        if line.is_empty() {
            return true;
        }
        let subject: Result<std::borrow::Cow<'_, str>, String> = match line[0] {
            _ if !self.json_lines => std::str::from_utf8(line)
                .map(Into::into)
                .map_err(|_| "not UTF-8 text".to_string()),
            b'"' => serde_json::from_slice::<String>(line)
                .map(Into::into)
                .map_err(|e| format!("not a JSON string: {e}")),
            b'{' => serde_json::from_slice::<FilterLine>(line)
                .map(|l| l.subject.into())
                .map_err(|e| format!("not an object with a subject: {e}")),
            _ => Err(
                "not a JSON string or an object with a subject (send plain ids as text/plain)"
                    .to_string(),
            ),
        };
        let subject = match subject.and_then(|s| {
            SubjectId::check("subject", &s)
                .map(|()| s)
                .map_err(|e| e.to_string())
        }) {
            Ok(s) => s,
            Err(message) => {
                self.trailer.error = Some(FilterError { line: n, message });
                return false;
            }
        };
        let a = self
            .index
            .check_id(&subject, self.purpose, self.channel, self.at, self.now);
        self.trailer.checked += 1;
        *self.reasons.entry(a.reason).or_default() += 1;
        if a.allowed {
            self.trailer.allowed += 1;
            let _ = serde_json::to_writer(&mut *out, subject.as_ref());
            out.push(b'\n');
        }
        true
    }

    fn trailer(&mut self, out: &mut Vec<u8>) {
        self.trailer.applied_seq = Seq::new(self.index.applied());
        self.trailer.reasons = self
            .reasons
            .iter()
            .map(|(r, n)| (r.text().into_owned(), *n))
            .collect();
        let _ = serde_json::to_writer(&mut *out, &serde_json::json!({ "trailer": &self.trailer }));
        out.push(b'\n');
    }
}

#[derive(Debug, Deserialize)]
struct FilterLine {
    subject: String,
}

/// Send list in (NDJSON: one subject id per line, as a JSON string, an object with `subject`, or
/// plain text), permitted subset out as it is read, then a trailer line with counts per reason.
/// A bad line that begins in the first [`FILTER_PREFLIGHT_BYTES`] is a 422 (a line past
/// `limits.line_bytes` a 413); later, once the answer has begun, a bad line ends it with the
/// error in the trailer.
async fn filter(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let q = CheckQuery::read(req.query_string())?;
    let media = body::media_type(
        &req,
        &["application/x-ndjson", "application/jsonl", "text/plain"],
    )?;
    let mut p = Problems::default();
    let CheckOnParsed {
        purpose,
        channel,
        at,
        min_seq,
    } = q.parse(&mut p);
    p.into_result()?;
    let index = state.consent.clone();
    await_min_seq(&state, min_seq).await?;
    let purpose = index
        .purpose(purpose)
        .ok_or_else(|| unknown_purpose("purpose", purpose))?;
    let mut st = FilterState {
        payload,
        index,
        purpose,
        channel,
        at,
        now: state.clock.now(),
        lines: body::LineBuffer::new(state.settings.limits.line_bytes),
        json_lines: media != "text/plain",
        trailer: FilterTrailer::default(),
        reasons: Default::default(),
        pending: Vec::new(),
        carry: None,
        input_done: false,
        finished: false,
    };
    // The lines that begin in the first FILTER_PREFLIGHT_BYTES are checked before answering, so
    // a bad one there is a 4xx; past them, the answer has begun and a bad line ends it with the
    // error in the trailer.
    let mut read = 0;
    let mut out = Vec::new();
    while st.trailer.error.is_none() {
        let next = match st.carry.take() {
            Some(rest) => Some(Ok(rest)),
            None => st.payload.next().await,
        };
        match next {
            Some(Ok(mut chunk)) => {
                let take = if read < FILTER_PREFLIGHT_BYTES {
                    chunk.len().min(FILTER_PREFLIGHT_BYTES - read)
                } else {
                    // The line that straddles the mark, up to its end.
                    chunk
                        .iter()
                        .position(|b| *b == b'\n')
                        .map_or(chunk.len(), |i| i + 1)
                };
                let head = chunk.split_to(take);
                read += take;
                st.feed(Some(&head), &mut out);
                if !chunk.is_empty() {
                    st.carry = Some(chunk);
                }
                if read >= FILTER_PREFLIGHT_BYTES && !st.lines.mid_line() {
                    break;
                }
            }
            Some(Err(e)) => {
                return Err(AppError::BadRequest(format!(
                    "the body could not be read: {e}"
                )));
            }
            None => {
                st.feed(None, &mut out);
                st.input_done = true;
                break;
            }
        }
    }
    if let Some(FilterError { line, message }) = st.trailer.error.take() {
        return Err(if st.lines.too_long().is_some() {
            AppError::PayloadTooLarge(format!("line {line}: {message}"))
        } else {
            AppError::Validation {
                detail: format!("line {line}: {message}"),
                errors: vec![FieldError {
                    line: Some(line),
                    ..FieldError::new("", message)
                }],
            }
        });
    }
    st.pending = out;
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        if st.finished {
            return None;
        }
        let mut out = std::mem::take(&mut st.pending);
        while !st.input_done {
            let next = match st.carry.take() {
                Some(rest) => Some(Ok(rest)),
                None => st.payload.next().await,
            };
            match next {
                Some(Ok(chunk)) => {
                    st.feed(Some(&chunk), &mut out);
                    if st.trailer.error.is_some() {
                        break;
                    }
                    if out.len() >= 16 * 1024 {
                        return Some((Ok::<_, actix_web::Error>(Bytes::from(out)), st));
                    }
                }
                Some(Err(e)) => {
                    st.trailer.error = Some(FilterError {
                        line: st.lines.line + 1,
                        message: format!("the body could not be read: {e}"),
                    });
                    break;
                }
                None => {
                    st.feed(None, &mut out);
                    break;
                }
            }
        }
        st.trailer(&mut out);
        st.finished = true;
        Some((Ok(Bytes::from(out)), st))
    });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(stream))
}

// ----- subjects -----

fn subject_path(id: &str) -> Result<(), AppError> {
    SubjectId::check("id", id)
}

async fn subject_consents(
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<MinSeqQuery>,
) -> Result<HttpResponse, AppError> {
    subject_path(&id)?;
    let mut p = Problems::default();
    let min_seq = parse_min_seq(&mut p, "min_seq", q.min_seq.as_deref());
    p.into_result()?;
    await_min_seq(&state, min_seq).await?;
    let consents: Vec<SubjectConsent> = state
        .consent
        .subject_state(&id, state.clock.now())
        .into_iter()
        .map(|(purpose, channel, answer)| SubjectConsent {
            purpose,
            channel,
            state: answer,
        })
        .collect();
    Ok(HttpResponse::Ok().json(SubjectConsents {
        subject: id.into_inner(),
        consents,
        applied_seq: Seq::new(state.consent.applied()),
    }))
}

/// A subject's consent now, per purpose and channel.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubjectConsents {
    subject: String,
    consents: Vec<SubjectConsent>,
    /// The ledger size the answer reflects.
    applied_seq: Seq,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubjectConsent {
    purpose: String,
    channel: Channel,
    state: CheckAnswer,
}

/// Every consent event of a subject.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubjectHistory {
    subject: String,
    history: Vec<HistoryEvent>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryEvent {
    seq: Seq,
    leaf_hash: String,
    #[schema(value_type = String, format = DateTime)]
    recorded_at: String,
    record: RecordView,
    /// Where its receipt is.
    receipt: String,
}

#[derive(Debug, Deserialize)]
struct MinSeqQuery {
    min_seq: Option<String>,
}

async fn subject_history(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    subject_path(&id)?;
    let rows = service(&state).history(&id).await?;
    let events = rows
        .into_iter()
        .map(|(row, leaf_hash, recorded_at)| {
            let record = row.record()?;
            Ok(HistoryEvent {
                seq: row.seq,
                leaf_hash,
                recorded_at: Timestamp(recorded_at).to_rfc3339(),
                record: RecordView::from(&record),
                receipt: format!("/v1/consents/receipts/{}", row.seq),
            })
        })
        .collect::<Result<Vec<_>, AppError>>()?;
    Ok(HttpResponse::Ok().json(SubjectHistory {
        subject: id.into_inner(),
        history: events,
    }))
}

// ----- bulk import and receipts -----

/// `POST /v1/consents/import`: NDJSON (`application/x-ndjson`) validated as it streams in, or CSV
/// (`text/csv`). Every row is validated before any is written; past a limit (bytes, rows, line
/// length) the request ends at once with 413 naming the limit and the line.
pub async fn import_http(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    rid: RequestId,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let reference = state.db(move |c| Reference::load(c, now)).await?;
    let (v, hash) = crate::bulk::read_http(&req, payload, state.settings.limits, reference).await?;
    let (svc, caller) = (service(&state), p.actor());
    idempotency::respond(
        state.keyed(&req, caller.as_str()),
        hash,
        Answering::json(|_: &ImportSummary| StatusCode::OK),
        Stored::response,
        |answer| async move {
            let records = v.finish()?;
            svc.import(p.actor(), Some(rid.0), records, &|_| {}, answer)
                .await
        },
    )
    .await
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptQuery {
    subject: Option<String>,
}

/// `GET /v1/consents/receipts/{seq}[?subject=ID]`: any receipt with `consent:receipt`; with only
/// `consent:read`, the receipt of a record of the subject the caller names.
pub async fn receipt_http(
    state: web::Data<AppState>,
    p: Principal,
    seq: web::Path<String>,
    q: web::Query<ReceiptQuery>,
) -> Result<HttpResponse, AppError> {
    let seq = Seq::parse("seq", &seq)?;
    let subject = if p.allowed(&state.access.policy, CONSENT_RECEIPT) {
        q.into_inner().subject
    } else {
        match q.into_inner().subject {
            Some(s) => Some(s),
            None => {
                return Err(AppError::validation(
                    "subject",
                    "name the record's subject: without the permission consent:receipt, only receipts of a subject you name are given",
                ));
            }
        }
    };
    if let Some(s) = &subject {
        crate::vocab::SubjectId::check("subject", s)?;
    }
    let r = receipt::receipt(&state.ledger, &state.pool, seq, subject).await?;
    Ok(HttpResponse::Ok().json(r))
}

// ----- the OpenAPI operations of these routes -----

/// A send list as plain text: one subject id per line; lines may be empty, and ASCII blanks
/// around an id are ignored.
pub fn send_list_text() -> Value {
    let (c, sp) = (rule::CONTROL, rule::SPACE);
    // Blanks, then optionally an id and blanks: one way to read each line (no backtracking).
    let line = format!("[\\t\\f\\r ]*(?:[^{c}{sp}](?:[^{c}]{{0,254}}[^{c}{sp}])?[\\t\\f\\r ]*)?");
    json!({"type": "string", "pattern": format!("^{line}(?:\\n{line})*$")})
}

/// A CSV row of an import: the consent fields, with evidence as `evidence_<field>` columns. A
/// cell is taken as written; an empty one is a field left out.
pub fn csv_row(s: &mut Schemas) -> Value {
    s.add::<ConsentInput>();
    let mut row = s
        .component(ConsentInput::name().as_ref())
        .cloned()
        .unwrap_or_default();
    if let Some(props) = row.get_mut("properties").and_then(Value::as_object_mut) {
        props.remove("evidence");
        for column in crate::consent::import::CSV_COLUMNS {
            if column.starts_with("evidence_") {
                props.insert(
                    column.to_string(),
                    crate::openapi::nullable(rule::text(1000, false)),
                );
            }
        }
    }
    crate::openapi::csv_row(row, "ConsentInput")
}

pub fn subject_params(extra: Vec<Param>) -> Vec<Param> {
    let mut v = vec![path("id", rule::subject(), "The data subject's id.")];
    v.extend(extra);
    v
}

pub fn min_seq() -> Param {
    query(
        "min_seq",
        false,
        seq(),
        "Wait (at most 5 s) until this instance has applied this ledger seq: read your own writes on any instance. A seq the ledger does not hold is a 409.",
    )
}

fn check_params(s: &mut Schemas, required: bool) -> Vec<Param> {
    let mut v = vec![
        query(
            "purpose",
            true,
            with_examples(rule::key(), json!(["marketing.email"])),
            "Purpose key, e.g. marketing.email; one not registered is a 409.",
        ),
        query(
            "channel",
            true,
            s.of::<crate::consent::model::Channel>(),
            "Channel; `any` matches records for any channel only.",
        ),
        query(
            "at",
            false,
            instant(),
            "Answer as of this moment, from history (records collected by then).",
        ),
        min_seq(),
    ];
    if required {
        v.insert(
            0,
            query("subject", true, rule::subject(), "The data subject's id."),
        );
    }
    v
}

/// Purposes, notices, consent, checks, receipts and a subject's consent.
pub fn operations(s: &mut Schemas, limits: &Limits) -> Vec<Op> {
    let json = "application/json";
    let ndjson = "application/x-ndjson";
    let plain = "text/plain";
    vec![
        op("GET", "/v1/purposes", "Every purpose at its latest version").ok(200, json, s.of::<PurposeList>()),
        op("POST", "/v1/purposes", "Register a purpose")
            .body(json, {
                let mut b = s.inline::<PurposeInput>();
                b["required"] = json!(["key", "title"]);
                b["properties"]["key"]["type"] = json!("string");
                b
            })
            .ok(201, json, crate::openapi::defined::<PurposeDef>(s))
            .idempotent(),
        op("GET", "/v1/purposes/{key}", "A purpose and every version of it")
            .params(vec![path("key", rule::key(), "Purpose key.")])
            .ok(200, json, s.of::<PurposeDetail>()),
        op("PUT", "/v1/purposes/{key}", "Record a new version of a purpose (unchanged: nothing recorded)")
            .params(vec![path("key", rule::key(), "Purpose key (a body's `key`, if any, must equal it).")])
            .body(json, s.of::<PurposeInput>())
            .order("body.key", "==", "path.key")
            .ok(200, json, crate::openapi::defined::<PurposeDef>(s)),
        op("POST", "/v1/purposes/{key}/retire", "Retire a purpose; its history stays")
            .params(vec![path("key", rule::key(), "Purpose key.")])
            .ok(200, json, crate::openapi::defined::<PurposeDef>(s))
            .idempotent(),
        op("GET", "/v1/notices", "Privacy-notice versions").ok(200, json, s.of::<NoticeList>()),
        op("POST", "/v1/notices", "Publish a privacy-notice version (immutable once published; the same version again is a 200 that records nothing)")
            .body(json, s.of::<NoticeInput>())
            .ok(201, json, crate::openapi::defined::<NoticeDef>(s))
            .also(&[200])
            .idempotent(),
        op("POST", "/v1/consents", "Record a consent decision (200 with `duplicate` when it was already recorded)")
            .params(vec![
                header("Sec-GPC", text(), "`1`: a Global Privacy Control signal; recorded as an opt-out where the purpose honours GPC (then `decision` may be left out), and a grant is refused with a 409."),
            ])
            .body(json, s.of::<ConsentInput>())
            .order("body.collected_at", "<", "body.expires_at")
            .order("body.decision", "required unless", "header.Sec-GPC=1")
            .ok(201, json, s.of::<Recorded>())
            .also(&[200])
            .idempotent(),
        op("POST", "/v1/consents/import", "Import consent decisions in bulk: NDJSON (one decision per line) or CSV; validated first, all or nothing; re-runs write nothing new")
            .body(ndjson, json!({"type": "array", "items": s.of::<ConsentInput>(), "minItems": 1, "maxItems": limits.import_rows}))
            .body("text/csv", json!({"type": "array", "items": csv_row(s), "minItems": 1, "maxItems": limits.import_rows}))
            .order("body.collected_at", "<", "body.expires_at")
            .ok(200, json, s.of::<ImportSummary>())
            .idempotent(),
        op("GET", "/v1/consents/check", "May we? One subject, purpose and channel, now or as of a moment")
            .params(check_params(s, true))
            .ok(200, json, s.of::<CheckAnswer>())
            .also(&[404, 409]),
        op("POST", "/v1/consents/check", "May we? A batch of checks (at most `limits.batch_items`), answered in order")
            .body(json, {
                let mut b = s.inline::<BatchRequest>();
                b["properties"]["items"]["maxItems"] = json!(limits.batch_items);
                b
            })
            .ok(200, json, s.of::<BatchAnswer>())
            .also(&[409]),
        op("POST", "/v1/consents/filter", "Send list in (NDJSON: a JSON string or an object with `subject` per line; text/plain: one id per line), permitted subset out, then a trailer line with counts per reason. A bad line in the first 64 KiB is a 422; later it ends the answer, with the error in the trailer")
            .params(check_params(s, false))
            .body(ndjson, json!({"type": "array", "items": {"anyOf": [
                rule::subject(),
                {"type": "object", "required": ["subject"], "properties": {"subject": rule::subject()}},
            ]}}))
            .body(plain, send_list_text())
            .ok(200, ndjson, json!({"type": "array", "items": {"oneOf": [
                text(),
                {"type": "object", "required": ["trailer"], "properties": {"trailer": s.of::<FilterTrailer>()}},
            ]}}))
            .also(&[404, 409]),
        op("GET", "/v1/consents/receipts/{seq}", "A consent receipt (ISO/IEC TS 27560 fields) with its inclusion proof and signed checkpoint; check it with `accord-audit verify-receipt`. Without `consent:receipt`, name the record's subject.")
            .params(vec![
                path("seq", seq(), "The consent record's ledger seq."),
                query("subject", false, rule::subject(), "The record's subject: required without the permission consent:receipt."),
            ])
            .ok(200, json, json!({"type": "object"})),
        op("GET", "/v1/subjects/{id}/consents", "A subject's current consent per purpose and channel")
            .params(subject_params(vec![min_seq()]))
            .ok(200, json, s.of::<SubjectConsents>())
            .also(&[409]),
        op("GET", "/v1/subjects/{id}/consents/history", "Every consent event of a subject, with notice and ledger reference")
            .params(subject_params(vec![]))
            .ok(200, json, s.of::<SubjectHistory>()),
    ]
}
