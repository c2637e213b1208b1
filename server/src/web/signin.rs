//! Signing in and out.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{
    UiError, check_form, client, csrf_binding, html, https, respond, see_other, with_status,
};
use crate::auth::service::LoginError;
use crate::auth::sessions::Session;
use crate::auth::{Principal, PrincipalKind, api::service};
use crate::error::AppError;
use crate::keys::random_bytes;
use crate::state::AppState;
use crate::telemetry::RequestId;

#[derive(Template)]
#[template(path = "login.html")]
pub(super) struct LoginPage {
    csrf: String,
    email: String,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginQuery {
    notice: Option<String>,
}

pub(super) async fn login_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<LoginQuery>,
) -> Result<HttpResponse, UiError> {
    let (binding, cookie) = csrf_binding(&req);
    let notice = match q.notice.as_deref() {
        Some("signed-out") => Some("You have signed out.".to_string()),
        Some("created") => Some("Your account is ready. Sign in.".to_string()),
        Some("password-set") => Some("Your password is set. Sign in.".to_string()),
        _ => None,
    };
    let page = html(&LoginPage {
        csrf: state.access.sessions.csrf_token(&binding),
        email: String::new(),
        error: None,
        notice,
    })?;
    Ok(respond(page, cookie))
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    csrf: String,
    email: String,
    password: String,
}

/// The one message for every failed login: it tells nothing about which part was wrong.
pub const LOGIN_FAILED: &str =
    "The e-mail address or password is not correct, or the account cannot sign in right now.";

pub(super) async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    rid: RequestId,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, UiError> {
    check_form(&req, &state, &form.csrf)?;
    let address = client(&req, &state).address();
    let outcome = service(&state)
        .login(
            &state.access,
            &form.email,
            &form.password,
            &address,
            Some(rid.0),
        )
        .await;
    match outcome {
        Ok(user) => {
            let now = state.clock.now().micros();
            let sid = random_bytes::<16>()
                .map(hex::encode)
                .map_err(|e| UiError(AppError::internal(anyhow::anyhow!(e))))?;
            let session = Session {
                sid,
                uid: user.id,
                epoch: user.session_epoch,
                iat: now,
                seen: now,
            };
            let cookie = state
                .access
                .session_cookie(state.access.sessions.encode(&session), https(&req));
            Ok(respond(see_other("/ui/"), Some(cookie)))
        }
        Err(e) => {
            let (binding, _) = csrf_binding(&req);
            let (status, message) = match e {
                LoginError::Generic => (actix_web::http::StatusCode::UNAUTHORIZED, LOGIN_FAILED),
                LoginError::TooManyAttempts => (
                    actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                    "Too many failed sign-ins. Wait a few minutes and try again.",
                ),
            };
            let page = html(&LoginPage {
                csrf: state.access.sessions.csrf_token(&binding),
                email: form.email.trim().to_string(),
                error: Some(message.into()),
                notice: None,
            })?;
            Ok(with_status(page, status))
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct CsrfOnly {
    csrf: String,
}

pub(super) async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    p: Principal,
    rid: RequestId,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, UiError> {
    check_form(&req, &state, &form.csrf)?;
    if let PrincipalKind::User { user_id, .. } = &p.kind {
        service(&state).logout(user_id, Some(rid.0)).await?;
    }
    Ok(respond(
        see_other("/ui/login?notice=signed-out"),
        Some(state.access.clear_session_cookie(https(&req))),
    ))
}
