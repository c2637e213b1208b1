//! One error type for the whole service. Every failure a caller can see becomes an RFC 9457
//! `application/problem+json` answer that says what was wrong and what to do; internal causes go to the
//! log (with the request id), never into the body.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// Library messages (libpq's, TOML's) span several lines; an operator gets one sentence.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One field-level problem: where (a JSON pointer-like path or a parameter name) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    /// For bulk input: the line (1-based) of the row the problem is in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
            line: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is well-formed but some fields are invalid.
    #[error("{detail}")]
    Validation {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// The request is well-formed, but some fields refer to what the current state does not
    /// allow: a purpose not registered or retired, a notice version not published, a time after
    /// the server's clock.
    #[error("{detail}")]
    Unmet {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// The request cannot be understood (bad JSON, bad query string).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state, for the reason its code names.
    #[error("{detail}")]
    Conflict { code: ConflictCode, detail: String },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A dependency (database, sequencer) is not available right now; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: an opaque 500 for the caller, the cause chain for the log.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        let e = FieldError::new(field, message);
        AppError::Validation {
            detail: format!("{}: {}", e.field, e.message),
            errors: vec![e],
        }
    }

    /// A well-formed field the current state does not allow (409).
    pub fn unmet(field: impl Into<String>, message: impl Into<String>) -> Self {
        let e = FieldError::new(field, message);
        AppError::Unmet {
            detail: format!("{}: {}", e.field, e.message),
            errors: vec![e],
        }
    }

    /// A conflict with the current state, for the reason `code` names.
    pub fn conflict(code: ConflictCode, detail: impl Into<String>) -> Self {
        AppError::Conflict {
            code,
            detail: detail.into(),
        }
    }

    /// The conflict's code, if this is one.
    pub fn conflict_code(&self) -> Option<ConflictCode> {
        match self {
            AppError::Conflict { code, .. } => Some(*code),
            AppError::Unmet { .. } => Some(ConflictCode::State),
            _ => None,
        }
    }

    /// The field-level problems of a 422 or 409 that lists them.
    pub fn field_errors(&self) -> Option<&[FieldError]> {
        match self {
            AppError::Validation { errors, .. } | AppError::Unmet { errors, .. } => Some(errors),
            _ => None,
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(e.into())
    }

    /// The problem type's short name; the `type` URI is `/problems/<slug>`, and a conflict's is
    /// `/problems/conflict/<code>`.
    pub fn slug(&self) -> &'static str {
        match self {
            AppError::Validation { .. } => "validation",
            AppError::BadRequest(_) => "bad-request",
            AppError::NotFound(_) => "not-found",
            AppError::Unmet { .. } | AppError::Conflict { .. } => "conflict",
            AppError::Unauthenticated(_) => "unauthenticated",
            AppError::Forbidden(_) => "forbidden",
            AppError::PayloadTooLarge(_) => "payload-too-large",
            AppError::UnsupportedMediaType(_) => "unsupported-media-type",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            AppError::Validation { .. } => "The request has invalid fields",
            AppError::Unmet { .. } => "Conflict with the current state",
            AppError::BadRequest(_) => "The request could not be understood",
            AppError::NotFound(_) => "Not found",
            AppError::Conflict { .. } => "Conflict with the current state",
            AppError::Unauthenticated(_) => "Authentication required",
            AppError::Forbidden(_) => "Not permitted",
            AppError::PayloadTooLarge(_) => "Request body too large",
            AppError::UnsupportedMediaType(_) => "Unsupported content type",
            AppError::Unavailable(_) => "Temporarily unavailable",
            AppError::Internal(_) => "Internal error",
        }
    }

    /// The RFC 9457 body.
    pub fn problem(&self) -> Problem {
        let status = self.status_code().as_u16();
        let detail = match self {
            AppError::Internal(_) => {
                "The server failed to handle this request; the cause is in its log.".to_string()
            }
            other => other.to_string(),
        };
        Problem {
            r#type: match self.conflict_code() {
                Some(code) => format!("/problems/conflict/{}", code.as_str()),
                None => format!("/problems/{}", self.slug()),
            },
            title: self.title(),
            status,
            detail,
            errors: self.field_errors().map(<[_]>::to_vec).unwrap_or_default(),
        }
    }
}

/// Why a request conflicts with the current state: the last part of its problem type
/// (`/problems/conflict/<code>`), so callers (and Accord itself) never read the message to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictCode {
    /// What the request creates exists already.
    Exists,
    /// It was done already (disabled, revoked, a link used).
    Done,
    /// The state changed between reading it and writing; read again and retry.
    Changed,
    /// The same decision is recorded already (answered as a duplicate, not as an error).
    Duplicate,
    /// Published versions do not change.
    Immutable,
    /// A one-time link used for something it was not made for.
    LinkPurpose,
    /// A request with this Idempotency-Key is being processed.
    InFlight,
    /// This Idempotency-Key was used for a different request.
    KeyReused,
    /// Fields that the current state does not allow (a purpose not registered, …), listed.
    State,
    /// The tokens a change revokes changed while it was prepared (retried).
    MintedChanged,
    /// A subject's entries changed while their erasure was prepared (retried).
    SubjectChanged,
    /// The ledger in the database disagrees with itself or the configuration.
    Ledger,
}

impl ConflictCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictCode::Exists => "exists",
            ConflictCode::Done => "done",
            ConflictCode::Changed => "changed",
            ConflictCode::Duplicate => "duplicate",
            ConflictCode::Immutable => "immutable",
            ConflictCode::LinkPurpose => "link-purpose",
            ConflictCode::InFlight => "in-flight",
            ConflictCode::KeyReused => "key-reused",
            ConflictCode::State => "state",
            ConflictCode::MintedChanged => "minted-changed",
            ConflictCode::SubjectChanged => "subject-changed",
            ConflictCode::Ledger => "ledger",
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    pub r#type: String,
    #[schema(value_type = String)]
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unmet { .. } => StatusCode::CONFLICT,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            AppError::Internal(cause) => {
                tracing::error!(error = %cause, chain = ?cause, "request failed")
            }
            AppError::Unavailable(why) => tracing::warn!(%why, "dependency unavailable"),
            _ => {}
        }
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        if let AppError::Unauthenticated(_) = self {
            res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if let AppError::Unavailable(_) = self {
            res.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        res.body(serde_json::to_string(&self.problem()).unwrap_or_default())
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        AppError::Internal(e.into())
    }
}

impl From<diesel::r2d2::PoolError> for AppError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        AppError::Unavailable(format!("no database connection available: {e}"))
    }
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        AppError::Internal(anyhow::anyhow!("blocking task failed: {e}"))
    }
}

/// Turns actix-web's extractor failures (bad query string, bad JSON, oversized body) into problems.
pub fn query_error(err: actix_web::error::QueryPayloadError) -> actix_web::Error {
    AppError::BadRequest(format!("bad query string: {err}")).into()
}

pub fn json_error(err: actix_web::error::JsonPayloadError) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    match err {
        J::Overflow { limit } | J::OverflowKnownLength { limit, .. } => {
            AppError::PayloadTooLarge(format!("the JSON body is larger than {limit} bytes"))
        }
        J::ContentType => {
            AppError::UnsupportedMediaType("send the body as application/json".into())
        }
        J::Deserialize(e) => AppError::BadRequest(format!("bad JSON body: {e}")),
        other => AppError::BadRequest(format!("bad JSON body: {other}")),
    }
    .into()
}

pub fn path_error(err: actix_web::error::PathError) -> actix_web::Error {
    AppError::BadRequest(format!("bad path parameter: {err}")).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the mapping from error to status and problem type: callers and dashboards rely on it.
    #[test]
    fn conflicts_name_their_code_in_the_problem_type() {
        assert_eq!(
            AppError::conflict(ConflictCode::KeyReused, "x")
                .problem()
                .r#type,
            "/problems/conflict/key-reused"
        );
        assert_eq!(
            AppError::unmet("purpose", "x").problem().r#type,
            "/problems/conflict/state"
        );
    }

    #[test]
    fn status_and_type_mapping_is_pinned() {
        let cases: Vec<(AppError, u16, &str)> = vec![
            (
                AppError::validation("subject", "must not be empty"),
                422,
                "validation",
            ),
            (AppError::BadRequest("x".into()), 400, "bad-request"),
            (AppError::NotFound("x".into()), 404, "not-found"),
            (
                AppError::conflict(ConflictCode::Exists, "x"),
                409,
                "conflict",
            ),
            (AppError::unmet("purpose", "x"), 409, "conflict"),
            (
                AppError::Unauthenticated("x".into()),
                401,
                "unauthenticated",
            ),
            (AppError::Forbidden("x".into()), 403, "forbidden"),
            (
                AppError::PayloadTooLarge("x".into()),
                413,
                "payload-too-large",
            ),
            (
                AppError::UnsupportedMediaType("x".into()),
                415,
                "unsupported-media-type",
            ),
            (AppError::Unavailable("x".into()), 503, "unavailable"),
            (
                AppError::internal(anyhow::anyhow!("secret cause")),
                500,
                "internal",
            ),
        ];
        for (err, status, slug) in cases {
            assert_eq!(err.status_code().as_u16(), status, "{err:?}");
            let p = err.problem();
            assert_eq!(p.status, status);
            let expected = match err.conflict_code() {
                Some(code) => format!("/problems/{slug}/{}", code.as_str()),
                None => format!("/problems/{slug}"),
            };
            assert_eq!(p.r#type, expected);
            let res = err.error_response();
            assert_eq!(
                res.headers()
                    .get(header::CONTENT_TYPE)
                    .map(|v| v.as_bytes()),
                Some(&b"application/problem+json"[..])
            );
        }
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let p = AppError::internal(anyhow::anyhow!("password=hunter2")).problem();
        assert!(!p.detail.contains("hunter2"));
    }

    #[test]
    fn validation_names_the_field() {
        let p = AppError::validation("limit", "must be at most 1000").problem();
        assert_eq!(
            p.errors,
            vec![FieldError::new("limit", "must be at most 1000")]
        );
        assert!(p.detail.contains("limit"));
    }

    #[test]
    fn unauthenticated_carries_www_authenticate() {
        let res = AppError::Unauthenticated("no token".into()).error_response();
        assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
