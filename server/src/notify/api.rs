//! `GET /v1/outbox`: what is waiting to go out, what went, and how sending goes — readable with or
//! without a mail server configured.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::lease::Lease;
use super::store::{self, OutboxRow};
use crate::authz::{Access, Perm, Routes};
use crate::clock::Timestamp;
use crate::error::AppError;
use crate::openapi::{Op, Schemas, op, query};
use crate::state::AppState;
use crate::vocab::Seq;

pub const OUTBOX_READ: Perm = Perm::new("outbox", "read");

/// Items listed at most.
pub const MAX_LIMIT: u64 = 1000;

pub fn routes(r: &mut Routes) {
    r.get("/v1/outbox", Access::Permission(OUTBOX_READ), list);
}

/// One item of the outbox.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OutboxItem {
    pub id: String,
    /// `mail`.
    pub channel: String,
    /// What it is about (e.g. `dpa:mailer-2026`).
    pub about: String,
    pub group: String,
    #[serde(serialize_with = "crate::clock::rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub due_at: Timestamp,
    /// Roles whose holders receive it.
    pub roles: Vec<String>,
    pub subject: String,
    pub body: String,
    pub link: Option<String>,
    /// `pending`, `sent` or `cancelled`.
    pub state: String,
    /// The entry that scheduled it.
    pub seq: Seq,
    /// The entry that recorded it sent or cancelled.
    pub done_seq: Option<Seq>,
    #[serde(serialize_with = "crate::clock::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub done_at: Option<Timestamp>,
    /// The addresses a sent mail went to.
    pub sent_to: Option<Vec<String>>,
    /// Failed tries so far (of its group: items of a group go out as one mail).
    pub failures: u32,
    #[serde(serialize_with = "crate::clock::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_try_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

impl OutboxItem {
    pub fn new(row: OutboxRow, attempt: Option<&Lease>) -> OutboxItem {
        let pending = row.state == store::PENDING;
        OutboxItem {
            roles: serde_json::from_str(&row.recipients).unwrap_or_default(),
            sent_to: row
                .sent_to
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            due_at: Timestamp(row.due_at),
            done_at: row.done_at.map(Timestamp),
            failures: attempt.map(|a| a.failures.max(0) as u32).unwrap_or(0),
            next_try_at: attempt
                .filter(|a| pending && a.failures > 0)
                .map(|a| Timestamp(a.next_at)),
            last_error: attempt.and_then(|a| a.last_error.clone()),
            id: row.id,
            channel: row.channel,
            about: row.about,
            group: row.grp,
            subject: row.subject,
            body: row.body,
            link: row.link,
            state: row.state,
            seq: row.seq,
            done_seq: row.done_seq,
        }
    }
}

/// Items with how sending each goes, read in one go.
pub fn with_attempts(
    c: &mut crate::db::AnyConnection,
    rows: Vec<OutboxRow>,
) -> Result<Vec<OutboxItem>, AppError> {
    let groups: Vec<String> = rows.iter().map(|r| r.grp.clone()).collect();
    let attempts = super::lease::of(c, &groups)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let a = attempts.iter().find(|a| a.key == r.grp);
            OutboxItem::new(r, a)
        })
        .collect())
}

/// The items about each of `abouts` (e.g. `dpa:mailer-2026`), in the order they fall due.
pub fn items_about(
    c: &mut crate::db::AnyConnection,
    abouts: &[String],
) -> Result<Vec<OutboxItem>, AppError> {
    let mut rows = Vec::new();
    for a in abouts {
        rows.extend(store::about(c, a)?);
    }
    rows.sort_by(|x, y| (x.due_at, &x.id).cmp(&(y.due_at, &y.id)));
    with_attempts(c, rows)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OutboxList {
    /// Whether a mail server is configured (without one, mail stays pending).
    pub smtp_configured: bool,
    pub items: Vec<OutboxItem>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    state: Option<String>,
    limit: Option<u64>,
}

async fn list(
    state: web::Data<AppState>,
    q: web::Query<OutboxQuery>,
) -> Result<HttpResponse, AppError> {
    let q = q.into_inner();
    let wanted = match q.state.as_deref() {
        None => None,
        Some(s @ (store::PENDING | store::SENT | store::CANCELLED)) => Some(s.to_string()),
        Some(other) => {
            return Err(AppError::validation(
                "state",
                format!("{other:?} is not one of pending, sent, cancelled"),
            ));
        }
    };
    let limit = crate::vocab::bounded("limit", q.limit, 1..=MAX_LIMIT, 100)? as i64;
    let items = state
        .db(move |c| {
            let rows = store::listed(c, wanted.as_deref(), limit)?;
            with_attempts(c, rows)
        })
        .await?;
    Ok(HttpResponse::Ok().json(OutboxList {
        smtp_configured: state.settings.smtp.is_some(),
        items,
    }))
}

pub fn operations(s: &mut Schemas) -> Vec<Op> {
    vec![
        op("GET", "/v1/outbox", "Mail waiting to go out, sent or cancelled, soonest due first, with how sending each goes")
            .params(vec![
                query("state", false, json!({"enum": [store::PENDING, store::SENT, store::CANCELLED]}), "Only items in this state."),
                query("limit", false, json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}), "At most this many (default 100)."),
            ])
            .ok(200, "application/json", s.of::<OutboxList>()),
    ]
}
