//! `GET /v1/changes` (the feed) and the webhook subscriptions.

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::webhooks::{self, DeliveryRow, WebhookEvent, WebhookRow};
use super::{ChangeKind, Page, parse_kinds};
use crate::auth::Principal;
use crate::authz::{Access, Perm, Routes};
use crate::clock::Timestamp;
use crate::error::AppError;
use crate::ledger::event::first;
use crate::ledger::{AppendRequest, EventDraft};
use crate::openapi::{Op, Schemas, op, path, query};
use crate::state::AppState;
use crate::telemetry::RequestId;
use crate::vocab::{Problems, Seq};

pub const WEBHOOK_READ: Perm = Perm::new("webhook", "read");
pub const WEBHOOK_WRITE: Perm = Perm::new("webhook", "write");

/// Changes per page at most.
pub const MAX_LIMIT: u64 = 1000;
/// The longest a feed request waits for a change.
pub const MAX_WAIT_SECS: u64 = 30;

pub fn routes(r: &mut Routes) {
    r.get("/v1/changes", Access::Authenticated, changes)
        .get("/v1/webhooks", Access::Permission(WEBHOOK_READ), list)
        .post("/v1/webhooks", Access::Permission(WEBHOOK_WRITE), create)
        .get(
            "/v1/webhooks/{id}",
            Access::Permission(WEBHOOK_READ),
            get_one,
        )
        .route(
            Method::DELETE,
            "/v1/webhooks/{id}",
            Access::Permission(WEBHOOK_WRITE),
            delete,
        );
}

/// The kinds asked for, refused (403) unless the caller may read each.
fn allowed_kinds(
    state: &AppState,
    p: &Principal,
    field: &str,
    kinds: &[String],
) -> Result<Vec<ChangeKind>, AppError> {
    let kinds = parse_kinds(field, kinds)?;
    for k in &kinds {
        let need = k.needs();
        if !p.allowed(&state.access.policy, need) {
            return Err(AppError::Forbidden(format!(
                "following {} needs the permission {need}, which your roles do not grant",
                k.as_str()
            )));
        }
    }
    Ok(kinds)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    after: Option<Seq>,
    kinds: Option<String>,
    limit: Option<u64>,
    wait: Option<u64>,
}

/// `GET /v1/changes?kinds=…&after=SEQ&limit=N&wait=S`: the changes after a seq, oldest first.
async fn changes(
    state: web::Data<AppState>,
    p: Principal,
    q: web::Query<ChangesQuery>,
) -> Result<HttpResponse, AppError> {
    let q = q.into_inner();
    let listed: Vec<String> = q
        .kinds
        .as_deref()
        .map(|k| k.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let kinds = allowed_kinds(&state, &p, "kinds", &listed)?;
    let mut after = q.after;
    let limit = crate::vocab::bounded("limit", q.limit, 1..=MAX_LIMIT, 100)? as usize;
    let wait = crate::vocab::bounded("wait", q.wait, 0..=MAX_WAIT_SECS, 0)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait);
    loop {
        let k = kinds.clone();
        let page: Page = state
            .db(move |c| {
                let size = crate::ledger::read::size(c)?;
                if let Some(a) = after
                    && a.get() >= size
                {
                    return Err(Seq::beyond("after", a.get(), size));
                }
                super::page(c, &k, after, limit)
            })
            .await?;
        if !page.changes.is_empty() || page.more || std::time::Instant::now() >= deadline {
            return Ok(HttpResponse::Ok().json(page));
        }
        // Nothing yet: what was looked at need not be looked at again.
        after = Some(page.next).filter(|n| n.get() > 0 || after.is_some());
        actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A subscription as callers send it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// Where changes are POSTed: an `http` or `https` URL.
    #[schema(required = true, value_type = String)]
    pub url: Option<String>,
    /// The change kinds to receive.
    #[serde(default)]
    #[schema(required = true, value_type = Vec<ChangeKind>)]
    pub kinds: Vec<String>,
    /// The key of each delivery's HMAC-SHA256 signature (16 to 256 printable ASCII characters);
    /// kept by Accord, never shown again.
    #[schema(required = true, value_type = String)]
    pub secret: Option<String>,
}

/// The characters besides ASCII letters and digits a webhook URL's path and query may hold
/// (RFC 3986 unreserved, sub-delims, `:`, `@`, `/`, `%`; `?` in the query).
const URL_MARKS: &str = "._~!$&'()*+,;=:@%/-";
/// Ports 1 to 65535.
const PORT: &str =
    "(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[5])";

/// The URL rule as a pattern (what [`check_url`] accepts, exactly).
pub fn url_pattern() -> String {
    let p = format!("A-Za-z0-9{URL_MARKS}");
    format!("^https?://[A-Za-z0-9.-]{{1,253}}(?::{PORT})?(?:/[{p}]*)?(?:[?][?{p}]*)?$")
}

/// Checks a webhook URL: `http` or `https`, a host name or IPv4 address (letters, digits, `.`,
/// `-`), an optional port, then a path and query of plain URL characters; at most 2000
/// characters. No user name or password, no fragment.
fn check_url(p: &mut Problems, url: &str) -> Option<String> {
    let refuse = |p: &mut Problems, why: &str| {
        p.add("url", format!("{url:?} {why}"));
        None
    };
    if url.len() > 2000 {
        return refuse(p, "is longer than 2000 characters");
    }
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return refuse(p, "is not an http:// or https:// URL");
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return refuse(
            p,
            "carries a user name or password: put the secret in `secret`",
        );
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, port)) => (h, Some(port)),
        None => (authority, None),
    };
    if host.is_empty()
        || host.len() > 253
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return refuse(p, "names no host (letters, digits, '.' and '-')");
    }
    if let Some(port) = port {
        let ok = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && !port.starts_with('0')
            && port.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n));
        if !ok {
            return refuse(p, "has a port that is not a number from 1 to 65535");
        }
    }
    let plain = |b: u8, query: bool| {
        b.is_ascii_alphanumeric() || URL_MARKS.as_bytes().contains(&b) || (query && b == b'?')
    };
    let (path, query) = match tail.split_once('?') {
        Some((path, q)) => (path, Some(q)),
        None => (tail, None),
    };
    if !path.bytes().all(|b| plain(b, false))
        || !query.unwrap_or("").bytes().all(|b| plain(b, true))
    {
        return refuse(
            p,
            "holds a character a URL must percent-encode (only letters, digits and ._~!$&'()*+,;=:@%/- may appear, and ? in the query); fragments (#) are not sent",
        );
    }
    if url.parse::<actix_web::http::Uri>().is_err() {
        return refuse(p, "is not a URL");
    }
    Some(url.to_string())
}

/// A subscription as Accord shows it (never its secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    #[schema(value_type = Vec<ChangeKind>)]
    pub kinds: Vec<String>,
    /// The subscription's entry: changes after it are delivered.
    pub seq: Seq,
    pub created_by: String,
    #[serde(serialize_with = "crate::clock::rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub deleted_seq: Option<Seq>,
    /// The last change the receiver acknowledged.
    pub delivered_seq: Option<Seq>,
    /// Failed tries of the change it is at.
    pub failures: u32,
    #[serde(serialize_with = "crate::clock::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_try_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

fn view(row: WebhookRow, progress: webhooks::Progress) -> WebhookView {
    WebhookView {
        kinds: serde_json::from_str(&row.kinds).unwrap_or_default(),
        delivered_seq: progress.delivered_seq,
        failures: progress.failures,
        next_try_at: progress.next_try,
        last_error: progress.last_error,
        id: row.id,
        url: row.url,
        seq: row.seq,
        created_by: row.created_by,
        created_at: Timestamp(row.at),
        deleted_seq: row.deleted_seq,
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookList {
    webhooks: Vec<WebhookView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookDetail {
    #[serde(flatten)]
    webhook: WebhookView,
    /// The latest deliveries tried, newest first (at most 100).
    deliveries: Vec<DeliveryView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    seq: Seq,
    kind: String,
    /// `delivered`, or `failing` (to be tried again).
    state: String,
    tries: u32,
    http_status: Option<u16>,
    error: Option<String>,
    #[serde(serialize_with = "crate::clock::rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    at: Timestamp,
}

impl From<DeliveryRow> for DeliveryView {
    fn from(d: DeliveryRow) -> Self {
        DeliveryView {
            seq: d.seq,
            kind: d.kind,
            state: d.state,
            tries: d.tries.max(0) as u32,
            http_status: d.http_status.and_then(|s| u16::try_from(s).ok()),
            error: d.error,
            at: Timestamp(d.at),
        }
    }
}

async fn list(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let webhooks = state
        .db(|c| {
            webhooks::all(c)?
                .into_iter()
                .map(|w| {
                    let cur = webhooks::progress(c, &w.id)?;
                    Ok(view(w, cur))
                })
                .collect::<Result<Vec<_>, AppError>>()
        })
        .await?;
    Ok(HttpResponse::Ok().json(WebhookList { webhooks }))
}

async fn get_one(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let detail = state
        .db(move |c| {
            let row = webhooks::one(c, &id)?
                .ok_or_else(|| AppError::NotFound(format!("no webhook {id:?}")))?;
            let cur = webhooks::progress(c, &id)?;
            let deliveries = webhooks::deliveries(c, &id, webhooks::LISTED)?
                .into_iter()
                .map(DeliveryView::from)
                .collect();
            Ok(WebhookDetail {
                webhook: view(row, cur),
                deliveries,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(detail))
}

async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    rid: RequestId,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let caller = p.actor();
    let st = state.clone();
    state
        .post_json(
            &req,
            &caller,
            payload,
            |_: &WebhookView| StatusCode::CREATED,
            |input: WebhookInput, answer| async move {
                let mut problems = Problems::default();
                let url = match &input.url {
                    None => {
                        problems.add("url", "is required");
                        None
                    }
                    Some(u) => check_url(&mut problems, u),
                };
                let secret = match &input.secret {
                    None => {
                        problems.add(
                            "secret",
                            "is required: 16 to 256 printable ASCII characters",
                        );
                        None
                    }
                    Some(s)
                        if (16..=256).contains(&s.len())
                            && s.bytes().all(|b| (0x21..=0x7e).contains(&b)) =>
                    {
                        Some(s.clone())
                    }
                    Some(_) => {
                        problems.add(
                            "secret",
                            "must be 16 to 256 printable ASCII characters, no spaces",
                        );
                        None
                    }
                };
                let kinds = match parse_kinds("kinds", &input.kinds) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        for f in e.field_errors().unwrap_or_default() {
                            problems.add(f.field.clone(), f.message.clone());
                        }
                        None
                    }
                };
                problems.into_result()?;
                let (Some(url), Some(secret), Some(_)) = (url, secret, kinds) else {
                    return Err(AppError::internal(anyhow::anyhow!(
                        "webhook validation lost a field"
                    )));
                };
                let kinds = allowed_kinds(&st, &p, "kinds", &input.kinds)?;
                let id = format!("wh_{}", crate::telemetry::new_request_id());
                let event = WebhookEvent::Created {
                    id: id.clone(),
                    url,
                    kinds: kinds.iter().map(|k| k.as_str().to_string()).collect(),
                    secret_sha256: hex::encode(Sha256::digest(secret.as_bytes())),
                    created_by: p.actor().as_str().to_string(),
                };
                let (_, v) = st
                    .ledger
                    .append_returning::<WebhookView>(
                        AppendRequest::new(p.actor(), vec![EventDraft::new(&event)?])
                            .request_id(Some(rid.0))
                            .project(move |c, appended| {
                                let a = first(appended)?;
                                webhooks::apply(c, &event, a)?;
                                webhooks::put_secret(c, &id, &secret)?;
                                let row = webhooks::one(c, &id)?.ok_or_else(|| {
                                    AppError::internal(anyhow::anyhow!(
                                        "the webhook was not stored"
                                    ))
                                })?;
                                Ok(view(row, webhooks::Progress::default()))
                            })
                            .trailer(crate::idempotency::trailer(answer, None)),
                    )
                    .await?;
                Ok(v)
            },
        )
        .await
}

async fn delete(
    state: web::Data<AppState>,
    p: Principal,
    rid: RequestId,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let event = WebhookEvent::Deleted { id: id.clone() };
    let (_, v) = state
        .ledger
        .append_returning::<WebhookView>(
            AppendRequest::new(p.actor(), vec![EventDraft::new(&event)?])
                .request_id(Some(rid.0))
                .project(move |c, appended| {
                    let row = webhooks::one(c, &id)?
                        .ok_or_else(|| AppError::NotFound(format!("no webhook {id:?}")))?;
                    if row.deleted_seq.is_some() {
                        return Err(AppError::NotFound(format!("webhook {id:?} was deleted")));
                    }
                    let a = first(appended)?;
                    webhooks::apply(c, &event, a)?;
                    webhooks::drop_secret(c, &id)?;
                    let row = webhooks::one(c, &id)?.unwrap_or(row);
                    let cur = webhooks::progress(c, &id)?;
                    Ok(view(row, cur))
                }),
        )
        .await?;
    Ok(HttpResponse::Ok().json(v))
}

pub fn operations(s: &mut Schemas) -> Vec<Op> {
    let json = "application/json";
    let kinds_list = ChangeKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>();
    let one_kind = kinds_list
        .iter()
        .map(|k| k.replace('.', "[.]"))
        .collect::<Vec<_>>()
        .join("|");
    let id = path(
        "id",
        json!({"type": "string", "pattern": "^wh_[0-9a-f]{24}$"}),
        "The webhook's id.",
    );
    vec![
        op("GET", "/v1/changes", "Changes of the kinds asked for, after a seq, oldest first; each kind needs its domain's read permission")
            .params(vec![
                query("kinds", true, json!({"type": "string", "pattern": format!("^(?:{one_kind})(?:,(?:{one_kind}))*$")}), "Comma-separated change kinds, each once."),
                query("after", false, crate::openapi::seq(), "Only changes after this seq (the `next` of the previous page); all from the start without it. Past the ledger: 409."),
                query("limit", false, json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}), "At most this many changes (default 100)."),
                query("wait", false, json!({"type": "integer", "minimum": 0, "maximum": MAX_WAIT_SECS}), "Seconds to wait for a change when there is none yet (long poll; default 0)."),
            ])
            .order("query.kinds", "distinct values", "")
            .also(&[409])
            .ok(200, json, s.of::<Page>()),
        op("GET", "/v1/webhooks", "Every webhook subscription with how its deliveries go").ok(200, json, s.of::<WebhookList>()),
        op("POST", "/v1/webhooks", "Subscribe a URL to change kinds: each change after this entry is POSTed once, signed (Accord-Signature), retried with back-off")
            .body(json, {
                let mut b = s.inline::<WebhookInput>();
                b["required"] = json!(["url", "kinds", "secret"]);
                b["properties"]["url"] = json!({"type": "string", "pattern": url_pattern(), "maxLength": 2000});
                b["properties"]["kinds"] = json!({"type": "array", "items": {"enum": kinds_list}, "minItems": 1, "uniqueItems": true});
                b["properties"]["secret"] = json!({"type": "string", "pattern": "^[!-~]{16,256}$"});
                b
            })
            .ok(201, json, s.of::<WebhookView>())
            .idempotent(),
        op("GET", "/v1/webhooks/{id}", "A webhook subscription and its latest deliveries").params(vec![id.clone()]).ok(200, json, s.of::<WebhookDetail>()),
        op("DELETE", "/v1/webhooks/{id}", "End a subscription (nothing more is delivered)").params(vec![id]).ok(200, json, s.of::<WebhookView>()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule and its pattern agree.
    #[test]
    fn urls_are_checked_as_the_document_says() {
        let re = regex::Regex::new(&url_pattern()).unwrap();
        for url in [
            "http://127.0.0.1:8080/hook",
            "https://crm.example.com/accord?x=1&y=a/b?c",
            "https://a",
            "http://a:65535",
            "http://a:65536",
            "http://a:0",
            "http://a:080",
            "ftp://a",
            "http://user:pw@a/",
            "http://a/#frag",
            "http://a b/",
            "http://a/é",
            "http://a/{x}",
            "http://a_b/",
            "http://[::1]/",
            "http:///x",
            "http://a?q",
            "http://a/%zz",
            "https://h:65500?x>BA",
            "http://a/x<y",
        ] {
            let mut p = Problems::default();
            let ok = check_url(&mut p, url).is_some();
            assert_eq!(ok, re.is_match(url), "{url}: rule {ok}, pattern {}", !ok);
        }
        for good in [
            "http://127.0.0.1:8080/hook",
            "https://crm.example.com/a/b?x=1&y=a/b?c",
            "https://JnLg?;1",
        ] {
            assert!(
                check_url(&mut Problems::default(), good).is_some(),
                "{good}"
            );
        }
        for bad in [
            "http://a/{x}",
            "http://a_b/",
            "http://a:65536/",
            "http://a/#f",
        ] {
            assert!(check_url(&mut Problems::default(), bad).is_none(), "{bad}");
        }
    }
}
