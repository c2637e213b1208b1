//! Authentication: who is calling. Services send bearer tokens (Accord's own EdDSA JWTs or an
//! external issuer's); people sign in to the web UI and carry a signed session cookie.
//!
//! Each instance keeps the access records it needs on every request — users with their roles and
//! session epochs, issued tokens with their revocation — in memory, reloaded from the database
//! whenever the ledger shows an `access.*` entry (polled several times a second), so a revocation
//! or a role change made on any instance applies on all of them within a second.

pub mod access;
pub mod api;
pub mod events;
pub mod limiter;
pub mod model;
pub mod passwords;
pub mod projection;
pub mod service;
pub mod sessions;
pub mod store;
pub mod tokens;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};

use crate::error::AppError;
use crate::state::AppState;
use access::Bearer;
pub use access::{
    AccessState, Authn, CachedToken, CachedUser, FOLLOW_INTERVAL, Principal, PrincipalKind,
    UNKNOWN_TOKEN_MICROS,
};
use sessions::SESSION_COOKIE;

/// Reads the caller's credentials into the request's [`Authn`] (the route's [`crate::authz::Authorize`]
/// decides what they allow). A bearer token wins over a session cookie.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut refreshed = None;
    let authn = match req.app_data::<web::Data<AppState>>() {
        None => Authn::Anonymous,
        Some(state) => {
            let now = state.clock.now();
            if let Some(h) = req.headers().get(header::AUTHORIZATION) {
                // UTF-8 in one pass; any character a token cannot hold fails its verification.
                match std::str::from_utf8(h.as_bytes()).map(|v| state.access.bearer(v, now)) {
                    Ok(Bearer::Done(a)) => a,
                    Ok(Bearer::Unknown { jti, principal }) => {
                        state
                            .access
                            .bearer_not_loaded(&state.pool, jti, principal, now)
                            .await
                    }
                    Err(_) => Authn::Refused("the Authorization header is not text".into()),
                }
            } else if let Some(c) = req.cookie(SESSION_COOKIE) {
                let https = crate::forwarded::Client::of(
                    req.headers(),
                    req.peer_addr(),
                    &state.settings.trusted_proxies,
                )
                .https;
                let (a, r) = state.access.session(c.value(), now, https);
                refreshed = r;
                a
            } else {
                Authn::Anonymous
            }
        }
    };
    req.extensions_mut().insert(authn);
    let mut res = next.call(req).await?;
    if let Some(cookie) = refreshed {
        let handler_set_it = res.response().cookies().any(|c| c.name() == SESSION_COOKIE);
        if !handler_set_it {
            let _ = res.response_mut().add_cookie(&cookie);
        }
    }
    Ok(res)
}

/// The authenticated caller, for handlers behind a non-public route.
impl actix_web::FromRequest for Principal {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let p = match req.extensions().get::<Authn>() {
            Some(Authn::Authenticated(p)) => Ok((**p).clone()),
            _ => Err(AppError::Unauthenticated("this needs credentials".into()).into()),
        };
        std::future::ready(p)
    }
}

/// Starts access for this instance: the token authority, the session codec, and users, grants
/// and tokens loaded from the database under `policy`.
pub async fn start(
    ctx: &crate::StartContext<'_>,
    policy: crate::authz::Policy,
) -> Result<std::sync::Arc<AccessState>, crate::StartError> {
    let tokens = tokens::TokenAuthority::new(
        &crate::token_issuer(ctx.ledger.origin()),
        &ctx.keys.token,
        &ctx.settings.auth.external_issuers,
    )?;
    let access = std::sync::Arc::new(AccessState::new(
        policy,
        tokens,
        sessions::SessionCodec::new(ctx.keys.session_key()),
        ctx.settings.auth.cookie_secure,
    ));
    access.reload(ctx.pool).await?;
    Ok(access)
}

/// With no user yet: a one-time link (its secret) for creating the first administrator.
pub async fn first_admin_link(
    ctx: &crate::StartContext<'_>,
    access: &std::sync::Arc<AccessState>,
) -> Result<Option<String>, crate::StartError> {
    let svc = service::AccessService::new(
        ctx.ledger.clone(),
        ctx.pool.clone(),
        ctx.clock.clone(),
        Some(access.clone()),
    );
    if svc.count_users().await? > 0 {
        return Ok(None);
    }
    let raw = svc
        .create_setup_link(
            crate::ledger::Actor::system(),
            service::PURPOSE_FIRST_ADMIN,
            None,
        )
        .await?;
    Ok(Some(raw))
}

/// Applies access changes made on any instance (follows the ledger).
pub async fn follow(access: std::sync::Arc<AccessState>, pool: crate::db::Pool) {
    crate::ledger::follow::run(access, pool, FOLLOW_INTERVAL).await
}
