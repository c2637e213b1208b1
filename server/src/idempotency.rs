//! `Idempotency-Key` (DESIGN §6): a POST retried with the same key by the same caller gets the first
//! answer again and writes nothing. The answer is stored by the write's own projection, in the
//! same transaction as its ledger entries, so a retry after a lost response finds it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;
use crate::db::AnyConnection;
use crate::db::schema::idempotency_keys;
use crate::error::AppError;

pub const HEADER: &str = "idempotency-key";
/// How long a stored answer is replayed.
pub const RETENTION_MICROS: i64 = 24 * 3600 * 1_000_000;

/// A request's idempotency key, scoped to its caller, with a hash of what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub caller: String,
    pub key: String,
    pub request_hash: String,
}

impl IdempotencyKey {
    /// Reads the header, if present: 1 to 200 visible ASCII characters.
    pub fn from_request(
        req: &HttpRequest,
        caller: &str,
        body: &[u8],
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
        let mut h = Sha256::new();
        h.update(req.method().as_str().as_bytes());
        h.update(b" ");
        h.update(req.path().as_bytes());
        h.update(b"?");
        h.update(req.query_string().as_bytes());
        h.update(b"\n");
        h.update(body);
        Ok(Some(IdempotencyKey {
            caller: caller.to_string(),
            key: key.to_string(),
            request_hash: hex::encode(h.finalize()),
        }))
    }

    /// The stored answer for this key, if a request with it has completed. A key reused for a
    /// different request is refused.
    pub fn replay(
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
                crate::error::ConflictCode::KeyReused,
                "this Idempotency-Key was already used for a different request; use a new key for a new request",
            )),
            Some((_, status, body, _)) => Ok(Some(Stored { status, body })),
        }
    }

    /// Stores the answer; part of the write's projection. A concurrent request with the same key
    /// that got here first makes this fail, and that request's answer is replayed instead.
    pub fn store(
        &self,
        conn: &mut AnyConnection,
        status: StatusCode,
        body: &str,
        subject_ref: Option<&str>,
        now: Timestamp,
    ) -> Result<(), AppError> {
        // An expired answer for the same key makes room for the new one.
        diesel::delete(
            idempotency_keys::table
                .filter(idempotency_keys::caller.eq(&self.caller))
                .filter(idempotency_keys::key.eq(&self.key))
                .filter(idempotency_keys::created_at.lt(now.micros() - RETENTION_MICROS)),
        )
        .execute(conn)?;
        diesel::insert_into(idempotency_keys::table)
            .values((
                idempotency_keys::caller.eq(&self.caller),
                idempotency_keys::key.eq(&self.key),
                idempotency_keys::request_hash.eq(&self.request_hash),
                idempotency_keys::status.eq(i32::from(status.as_u16())),
                idempotency_keys::response.eq(body),
                idempotency_keys::subject_ref.eq(subject_ref),
                idempotency_keys::created_at.eq(now.micros()),
            ))
            .execute(conn)
            .map_err(|e| match e {
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ) => AppError::conflict(crate::error::ConflictCode::InFlight, IN_FLIGHT),
                other => other.into(),
            })?;
        Ok(())
    }
}

/// The message of the conflict a concurrent duplicate gets before its replay is found.
pub const IN_FLIGHT: &str = "a request with this Idempotency-Key is being processed; retry shortly";

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
    pub fn response(&self) -> HttpResponse {
        let status = u16::try_from(self.status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK);
        HttpResponse::build(status)
            .content_type("application/json")
            .insert_header(("Idempotent-Replayed", "true"))
            .body(self.body.clone())
    }
}
