//! `Idempotency-Key` (DESIGN §6): a POST retried with the same key by the same caller gets the first
//! answer again and writes nothing.
//!
//! Every writing POST goes through [`respond`]: it replays a stored answer, or runs the request with
//! an [`Answer`] that the service hands to its append as a trailer. The answer is then recorded as
//! an `idempotency.answered` entry right after the request's own entries, in the same savepoint, and
//! projected into `idempotency_keys` — so a retry after a lost response finds it, and
//! `accord ledger replay` rebuilds the table like any other. A request that wrote nothing keeps no
//! answer: asking again gives the same answer.

use std::future::Future;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;
use crate::db::schema::idempotency_keys;
use crate::db::{AnyConnection, Pool, ProjectedTable, Rows};
use crate::error::{AppError, ConflictCode};
use crate::keys::Keys;
use crate::ledger::{Appended, EventDraft, LedgerEvent, Trailer, TrailerEntry};

pub const HEADER: &str = "idempotency-key";
/// How long a stored answer is replayed.
pub const RETENTION_MICROS: i64 = 24 * 3600 * 1_000_000;
/// The kind of the entry that records an answer.
pub const ANSWERED: &str = "idempotency.answered";

/// The table this module projects.
pub const TABLES: &[ProjectedTable] = &[ProjectedTable {
    name: "idempotency_keys",
    key: &["caller", "key"],
    rows: Rows::All(|c| {
        crate::db::json_rows(
            idempotency_keys::table
                .order((idempotency_keys::caller.asc(), idempotency_keys::key.asc()))
                .select(AnswerRow::as_select())
                .load(c)?,
        )
    }),
}];

/// A stored answer, as the table holds it.
#[derive(Debug, Queryable, Selectable, Serialize)]
#[diesel(table_name = idempotency_keys)]
pub struct AnswerRow {
    pub caller: String,
    pub key: String,
    pub request_hash: String,
    pub status: i32,
    pub response: String,
    pub subject_ref: Option<String>,
    pub created_at: i64,
}

/// A request's idempotency key (as a keyed reference), scoped to its caller (the credential that
/// sent it, as the ledger names it: a user, one service token, an external subject), with a keyed
/// hash of what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub caller: String,
    pub key: String,
    pub request_hash: String,
}

impl IdempotencyKey {
    /// Reads the header, if present: 1 to 200 visible ASCII characters. `body` is what was sent.
    /// Reads the header, if present: 1 to 200 visible ASCII characters. `hash` is of what was
    /// asked. Both the key and the hash are kept only as keyed references (see
    /// [`Keys::request_ref`]).
    pub fn read(
        req: &HttpRequest,
        caller: &str,
        hash: RequestHash,
        keys: &Keys,
    ) -> Result<Option<IdempotencyKey>, AppError> {
        let Some(v) = req.headers().get(HEADER) else {
            return Ok(None);
        };
        let key = v
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 200 && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                AppError::validation(
                    "Idempotency-Key",
                    "must be 1 to 200 visible ASCII characters (a UUID is a good choice)",
                )
            })?;
        Ok(Some(IdempotencyKey {
            caller: caller.to_string(),
            key: keys.request_ref("key", key),
            request_hash: keys.request_ref("request", &hex::encode(hash.0.finalize())),
        }))
    }

    /// The stored answer for this key, if a request with it has completed. A key reused for a
    /// different request is refused.
    pub fn stored(
        &self,
        conn: &mut AnyConnection,
        now: Timestamp,
    ) -> Result<Option<Stored>, AppError> {
        let row: Option<(String, i32, String, i64)> = idempotency_keys::table
            .filter(idempotency_keys::caller.eq(&self.caller))
            .filter(idempotency_keys::key.eq(&self.key))
            .select((
                idempotency_keys::request_hash,
                idempotency_keys::status,
                idempotency_keys::response,
                idempotency_keys::created_at,
            ))
            .first(conn)
            .optional()?;
        match row {
            None => Ok(None),
            Some((_, _, _, created)) if now.micros() - created > RETENTION_MICROS => Ok(None),
            Some((hash, _, _, _)) if hash != self.request_hash => Err(AppError::conflict(
                ConflictCode::KeyReused,
                "this Idempotency-Key was already used for a different request; use a new key for a new request",
            )),
            Some((_, status, body, _)) => Ok(Some(Stored { status, body })),
        }
    }
}

/// What a request asked (method, path, query and body), hashed as the body streams in.
pub struct RequestHash(Sha256);

impl RequestHash {
    pub fn new(req: &HttpRequest) -> RequestHash {
        let mut h = Sha256::new();
        h.update(req.method().as_str().as_bytes());
        h.update(b" ");
        h.update(req.path().as_bytes());
        h.update(b"?");
        h.update(req.query_string().as_bytes());
        h.update(b"\n");
        RequestHash(h)
    }

    /// The hash of a request whose whole body is at hand.
    pub fn of(req: &HttpRequest, body: &[u8]) -> RequestHash {
        let mut h = RequestHash::new(req);
        h.update(body);
        h
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }
}

/// The message of the conflict a concurrent duplicate gets before its replay is found.
pub const IN_FLIGHT: &str = "a request with this Idempotency-Key is being processed; retry shortly";

/// How a request's result becomes its answer.
pub struct Answering<T> {
    /// The status of the answer.
    pub status: fn(&T) -> StatusCode,
    /// The body that is kept (and recorded in the ledger); all of the result unless it holds a
    /// secret, which [`respond`]'s `replayed` then puts back.
    pub kept: fn(&T) -> Result<String, AppError>,
}

impl<T: Serialize> Answering<T> {
    /// The result as JSON, with `status`.
    pub fn json(status: fn(&T) -> StatusCode) -> Answering<T> {
        Answering {
            status,
            kept: |t| serde_json::to_string(t).map_err(AppError::internal),
        }
    }
}

impl<T> Clone for Answering<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Answering<T> {}

/// 201 for a request that made something new, 200 for one that found it made.
pub fn created_if(new: bool) -> StatusCode {
    if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// What a service needs to record the answer of a request that carried a key.
pub struct Answer<T> {
    key: IdempotencyKey,
    answering: Answering<T>,
}

impl<T> Answer<T> {
    pub fn key(&self) -> &IdempotencyKey {
        &self.key
    }

    /// The same answer again, for a write that is attempted more than once.
    pub fn again(&self) -> Answer<T> {
        Answer {
            key: self.key.clone(),
            answering: self.answering,
        }
    }
}

impl<T: Send + 'static> Answer<T> {
    /// The trailer that records the answer after the append's entries, from what its projection
    /// returned (a `T`). `subject` (id, `subject_ref`) when the answer names a data subject: their
    /// erasure then removes it.
    pub fn trailer(self, subject: Option<(String, String)>) -> Trailer {
        Box::new(move |value| {
            let out = value.downcast_ref::<T>().ok_or_else(|| {
                AppError::internal(anyhow::anyhow!(
                    "the projection returned no value of the answer's type"
                ))
            })?;
            let (subject, subject_ref) = subject.unzip();
            let event = IdempotencyEvent::Answered {
                caller: self.key.caller,
                key: self.key.key,
                request_hash: self.key.request_hash,
                status: (self.answering.status)(out).as_u16(),
                body: (self.answering.kept)(out)?,
                subject_ref,
            };
            let mut draft = EventDraft::new(&event)?;
            draft.subject = subject;
            Ok(TrailerEntry {
                draft,
                apply: Box::new(move |c, a| apply(c, &event, a)),
            })
        })
    }
}

/// The trailer for an optional answer.
pub fn trailer<T: Send + 'static>(
    answer: Option<Answer<T>>,
    subject: Option<(String, String)>,
) -> Option<Trailer> {
    answer.map(|a| a.trailer(subject))
}

/// A keyed request as [`respond`] sees it.
pub struct Keyed<'a> {
    pub pool: &'a Pool,
    pub keys: &'a Keys,
    pub now: Timestamp,
    pub req: &'a HttpRequest,
    pub caller: &'a str,
}

/// The idempotent POST: a stored answer for the request's key is replayed (through `replayed`,
/// which puts back what was not kept); otherwise `run` does the request, given the [`Answer`] to
/// record if a key came with it, and its result is answered. A concurrent request with the same key
/// that got there first is answered as it was.
pub async fn respond<T, Fut>(
    k: Keyed<'_>,
    hash: RequestHash,
    answering: Answering<T>,
    replayed: impl Fn(Stored) -> Result<HttpResponse, AppError>,
    run: impl FnOnce(Option<Answer<T>>) -> Fut,
) -> Result<HttpResponse, AppError>
where
    T: Serialize,
    Fut: Future<Output = Result<T, AppError>>,
{
    let key = IdempotencyKey::read(k.req, k.caller, hash, k.keys)?;
    let find = |key: IdempotencyKey| {
        let now = k.now;
        crate::db::blocking(k.pool, move |c| key.stored(c, now))
    };
    if let Some(key) = &key
        && let Some(stored) = find(key.clone()).await?
    {
        return replayed(stored);
    }
    let answer = key.clone().map(|key| Answer { key, answering });
    match run(answer).await {
        Ok(out) => Ok(HttpResponse::build((answering.status)(&out)).json(out)),
        Err(e) if e.conflict_code() == Some(ConflictCode::InFlight) => match key {
            Some(key) => match find(key).await? {
                Some(stored) => replayed(stored),
                None => Err(e),
            },
            None => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// The events of this module.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IdempotencyEvent {
    /// The answer a request with an idempotency key got.
    Answered {
        caller: String,
        key: String,
        request_hash: String,
        status: u16,
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject_ref: Option<String>,
    },
}

impl LedgerEvent for IdempotencyEvent {
    fn kind(&self) -> &'static str {
        ANSWERED
    }

    /// `answer:<key>`: readable after an erasure redacts the payload, so a replay still clears an
    /// expired answer the redacted one replaced (see [`apply_redacted`]).
    fn entity(&self) -> String {
        match self {
            IdempotencyEvent::Answered { key, .. } => format!("{ENTITY_PREFIX}{key}"),
        }
    }
}

const ENTITY_PREFIX: &str = "answer:";

/// Removes the caller's answer for `key` if it expired by `at`: it makes room for a new one.
fn clear_expired(
    c: &mut AnyConnection,
    caller: &str,
    key: &str,
    at: Timestamp,
) -> QueryResult<usize> {
    diesel::delete(
        idempotency_keys::table
            .filter(idempotency_keys::caller.eq(caller))
            .filter(idempotency_keys::key.eq(key))
            .filter(idempotency_keys::created_at.lt(at.micros() - RETENTION_MICROS)),
    )
    .execute(c)
}

/// Stores an answer (its time is the entry's). An expired answer for the same key makes room; a
/// live one means a concurrent request with the key got here first, and this one fails.
pub fn apply(c: &mut AnyConnection, e: &IdempotencyEvent, a: &Appended) -> Result<(), AppError> {
    let IdempotencyEvent::Answered {
        caller,
        key,
        request_hash,
        status,
        body,
        subject_ref,
    } = e;
    clear_expired(c, caller, key, a.at)?;
    diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::caller.eq(caller),
            idempotency_keys::key.eq(key),
            idempotency_keys::request_hash.eq(request_hash),
            idempotency_keys::status.eq(i32::from(*status)),
            idempotency_keys::response.eq(body),
            idempotency_keys::subject_ref.eq(subject_ref),
            idempotency_keys::created_at.eq(a.at.micros()),
        ))
        .execute(c)
        .map_err(|e| match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => AppError::conflict(ConflictCode::InFlight, IN_FLIGHT),
            other => other.into(),
        })?;
    Ok(())
}

/// Replays an answer entry whose payload an erasure redacted: the answer itself went with the
/// subject, but the expired answer it replaced is gone too. The key is read from the entity, the
/// caller from the leaf (the answer's caller is the request's actor).
pub fn apply_redacted(c: &mut AnyConnection, entity: &str, a: &Appended) -> Result<(), AppError> {
    let key = entity.strip_prefix(ENTITY_PREFIX).ok_or_else(|| {
        AppError::internal(anyhow::anyhow!(
            "entry {}: an answer's entity is {entity:?}",
            a.seq
        ))
    })?;
    clear_expired(c, &a.actor, key, a.at)?;
    Ok(())
}

/// Removes stored answers about a subject (its erasure).
pub fn forget_subject(conn: &mut AnyConnection, subject_ref: &str) -> QueryResult<usize> {
    diesel::delete(idempotency_keys::table.filter(idempotency_keys::subject_ref.eq(subject_ref)))
        .execute(conn)
}

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub status: i32,
    pub body: String,
}

impl Stored {
    pub fn status(&self) -> StatusCode {
        u16::try_from(self.status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK)
    }

    /// The stored answer as it was given, marked as replayed.
    pub fn response(self) -> Result<HttpResponse, AppError> {
        Ok(HttpResponse::build(self.status())
            .content_type("application/json")
            .insert_header(("Idempotent-Replayed", "true"))
            .body(self.body))
    }
}
