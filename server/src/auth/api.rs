//! Access API: who am I, the effective policy, and API tokens for admins.

use crate::auth::service::{IssuedToken, KeptToken, TokenOrder};
use crate::config::Limits;
use crate::idempotency::{self, Answer, Answering, RequestHash, Stored};
use crate::openapi::{Op, Schemas, op};
use crate::openapi::{path, text};
use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use serde_json::json;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::model::{Role, parse_ttl};
use super::service::AccessService;
use super::{Principal, PrincipalKind};
use crate::authz::{Access, Perm, Routes, Rule};
use crate::body;
use crate::clock::Timestamp;
use crate::error::AppError;
use crate::state::AppState;
use crate::telemetry::RequestId;

pub const TOKEN_READ: Perm = Perm::new("token", "read");
pub const TOKEN_WRITE: Perm = Perm::new("token", "write");
pub const ACCESS_READ: Perm = Perm::new("access", "read");

pub fn routes(r: &mut Routes) {
    r.get("/v1/access/me", Access::Authenticated, me)
        .get("/v1/access/policy", Access::Permission(ACCESS_READ), policy)
        .get("/v1/tokens", Access::Permission(TOKEN_READ), list_tokens)
        .post("/v1/tokens", Access::Permission(TOKEN_WRITE), issue_token)
        .delete(
            "/v1/tokens/{jti}",
            Access::Permission(TOKEN_WRITE),
            revoke_token,
        );
}

pub fn service(state: &AppState) -> AccessService {
    AccessService::new(
        state.ledger.clone(),
        state.pool.clone(),
        state.clock.clone(),
        Some(state.access.clone()),
    )
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    id: String,
    kind: &'static str,
    name: String,
    roles: Vec<Role>,
    /// Every permission of the policy this caller holds, as `resource:action`.
    permissions: Vec<String>,
    /// For a signed-in session: the token to send in `X-CSRF-Token` with state-changing requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
}

async fn me(state: web::Data<AppState>, p: Principal) -> web::Json<Me> {
    let subjects = p.casbin_subjects();
    let permissions = state
        .access
        .policy
        .permissions()
        .into_iter()
        .filter(|(res, act)| {
            subjects
                .iter()
                .any(|s| state.access.policy.allows_dynamic(s, res, act))
        })
        .map(|(res, act)| format!("{res}:{act}"))
        .collect();
    web::Json(Me {
        id: p.id(),
        kind: match p.kind {
            PrincipalKind::User { .. } => "user",
            PrincipalKind::Service { .. } => "service",
            PrincipalKind::External { .. } => "external",
        },
        name: p.name.clone(),
        roles: p.roles.clone(),
        permissions,
        csrf_token: match &p.kind {
            PrincipalKind::User { session, .. } => Some(
                state
                    .access
                    .sessions
                    .csrf_token(&super::sessions::session_binding(&session.sid)),
            ),
            _ => None,
        },
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyView<'a> {
    #[schema(value_type = String)]
    model: &'a str,
    #[schema(value_type = Vec<Rule>)]
    rules: &'a [Rule],
    #[schema(value_type = Vec<Role>)]
    roles: Vec<&'static str>,
}

async fn policy(state: web::Data<AppState>) -> HttpResponse {
    let p = &state.access.policy;
    HttpResponse::Ok().json(PolicyView {
        model: p.model_text(),
        rules: p.rules(),
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    jti: String,
    client: String,
    roles: Vec<Role>,
    issued_at: String,
    expires_at: String,
    /// Who minted it: `user:<id>`, `service:<client>#<jti>` or `cli`.
    minted_by: String,
    revoked_at: Option<String>,
    revoked_by: Option<String>,
}

async fn list_tokens(state: web::Data<AppState>) -> Result<web::Json<Vec<TokenView>>, AppError> {
    let rows = service(&state).list_tokens().await?;
    Ok(web::Json(
        rows.into_iter()
            .map(|t| TokenView {
                roles: t.role_list(),
                jti: t.jti,
                client: t.client,
                issued_at: Timestamp(t.issued_at).to_rfc3339(),
                expires_at: Timestamp(t.expires_at).to_rfc3339(),
                minted_by: t.minted_by,
                revoked_at: t.revoked_at.map(|a| Timestamp(a).to_rfc3339()),
                revoked_by: t.revoked_by,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// The service's name: 1 to 64 characters of a-z, 0-9, '.', '_' or '-'.
    #[schema(pattern = r"^\s*[a-z0-9._-]{1,64}\s*$")]
    client: String,
    #[schema(value_type = Vec<Role>, min_items = 1)]
    roles: Vec<String>,
    /// Lifetime such as `90d`; default 90 days.
    ttl: Option<String>,
}

async fn issue_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    rid: RequestId,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    body::json_media_type(&req)?;
    let bytes = body::read_limited(payload, state.settings.max_body_bytes).await?;
    let caller = p.actor();
    let replayed = |stored: Stored| {
        let kept: KeptToken = serde_json::from_str(&stored.body).map_err(AppError::internal)?;
        // Signed again only for a caller who may still grant every role on it.
        may_grant(&state, &p, &kept.claims.roles)?;
        let issued = IssuedToken::sign(&state.access.tokens, kept.claims, kept.seq)?;
        Ok(HttpResponse::build(stored.status())
            .insert_header(("Idempotent-Replayed", "true"))
            .json(issued))
    };
    let answering = Answering {
        status: |_: &IssuedToken| StatusCode::CREATED,
        kept: IssuedToken::kept,
    };
    idempotency::respond(
        state.keyed(&req, caller.as_str()),
        RequestHash::of(&req, &bytes),
        answering,
        replayed,
        |answer| mint(&state, &p, rid, &bytes, answer),
    )
    .await
}

/// Issues the token a request asks for, if the caller may grant its roles.
async fn mint(
    state: &AppState,
    p: &Principal,
    rid: RequestId,
    bytes: &[u8],
    answer: Option<Answer<IssuedToken>>,
) -> Result<IssuedToken, AppError> {
    let body: IssueRequest = body::json(bytes)?;
    let roles = body
        .roles
        .iter()
        .enumerate()
        .map(|(i, r)| Role::parse_field(&format!("roles[{i}]"), r))
        .collect::<Result<Vec<_>, _>>()?;
    let ttl = parse_ttl("ttl", body.ttl.as_deref().unwrap_or("90d"))?;
    may_grant(state, p, &roles)?;
    service(state)
        .issue_token(
            p.actor(),
            Some(rid.0),
            &state.access.tokens,
            TokenOrder {
                client: &body.client,
                roles: &roles,
                ttl,
            },
            answer,
        )
        .await
}

/// Refuses (403) roles the caller may not put on a token, naming the permissions they need.
fn may_grant(state: &AppState, p: &Principal, roles: &[Role]) -> Result<(), AppError> {
    let refused = p.ungrantable(&state.access.policy, roles);
    if refused.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = refused
        .iter()
        .map(|r| Perm::grant(*r).to_string())
        .collect();
    Err(AppError::Forbidden(format!(
        "you may not put {} on a token: that needs the permission {} ({} held); tokens with \
         these roles are issued with `accord token issue` by an operator",
        refused
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        names.join(" and "),
        match p.role_names().as_slice() {
            [] => "no role".to_string(),
            held => format!("you hold {}", held.join(", ")),
        }
    )))
}

async fn revoke_token(
    state: web::Data<AppState>,
    p: Principal,
    rid: RequestId,
    jti: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    service(&state)
        .revoke_token(p.actor(), Some(rid.0), &jti)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

// ----- the OpenAPI operations of these routes -----

/// Access and tokens.
pub fn operations(s: &mut Schemas, _limits: &Limits) -> Vec<Op> {
    let json = "application/json";
    vec![
        op(
            "GET",
            "/v1/access/me",
            "Who the caller is: roles and permissions",
        )
        .ok(200, json, s.of::<Me>()),
        op(
            "GET",
            "/v1/access/policy",
            "The access model and rules in force",
        )
        .ok(200, json, s.of::<PolicyView>()),
        op("GET", "/v1/tokens", "API tokens issued (never their text)").ok(
            200,
            json,
            s.array_of::<TokenView>(),
        ),
        op(
            "POST",
            "/v1/tokens",
            "Issue an API token for a service (each role needs the caller's `role:<name>:grant`)",
        )
        .body(json, s.of::<IssueRequest>())
        .ok(201, json, s.of::<IssuedToken>())
        .idempotent(),
        op(
            "DELETE",
            "/v1/tokens/{jti}",
            "Revoke an API token and every token minted with it",
        )
        .params(vec![path("jti", text(), "The token's id.")])
        .ok(204, json, json!({})),
    ]
}
