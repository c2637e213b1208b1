//! The home page: who you are, what you may do, and changing your password.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{UiError, check_form, csrf_binding, html, https, respond, with_status};
use crate::auth::sessions::{self, Session};
use crate::auth::{Principal, PrincipalKind, api::service};
use crate::error::AppError;
use crate::state::AppState;
use crate::telemetry::RequestId;

#[derive(Template)]
#[template(path = "home.html")]
pub(super) struct HomePage {
    name: String,
    email: String,
    roles: Vec<String>,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
}

fn home_page(
    req: &HttpRequest,
    state: &AppState,
    p: &Principal,
    notice: Option<String>,
    error: Option<String>,
    binding: Option<String>,
) -> Result<HttpResponse, UiError> {
    let binding = binding.unwrap_or_else(|| csrf_binding(req).0);
    let user = match &p.kind {
        PrincipalKind::User { user_id, .. } => state.access.user(user_id),
        _ => None,
    };
    html(&HomePage {
        name: user
            .as_ref()
            .map(|u| u.name.clone())
            .unwrap_or_else(|| p.name.clone()),
        email: user.map(|u| u.email).unwrap_or_default(),
        roles: p.roles.iter().map(|r| r.as_str().to_string()).collect(),
        csrf: state.access.sessions.csrf_token(&binding),
        notice,
        error,
    })
}

pub(super) async fn home(
    req: HttpRequest,
    state: web::Data<AppState>,
    p: Principal,
) -> Result<HttpResponse, UiError> {
    home_page(&req, &state, &p, None, None, None)
}

#[derive(Debug, Deserialize)]
pub(super) struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
}

pub(super) async fn change_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    p: Principal,
    rid: RequestId,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, UiError> {
    check_form(&req, &state, &form.csrf)?;
    let PrincipalKind::User { user_id, session } = &p.kind else {
        return Err(UiError(AppError::Forbidden(
            "only people change passwords here".into(),
        )));
    };
    let svc = service(&state);
    let uid = user_id.clone();
    let current_ok = {
        let pool = state.pool.clone();
        let current = form.current.clone();
        web::block(move || -> Result<bool, AppError> {
            let mut c = pool.get()?;
            let row = crate::auth::store::user_by_id(&mut c, &uid)?;
            Ok(row
                .and_then(|u| u.password_hash)
                .is_some_and(|h| crate::auth::passwords::verify(&current, &h)))
        })
        .await
        .map_err(AppError::from)??
    };
    if !current_ok {
        let page = home_page(
            &req,
            &state,
            &p,
            None,
            Some("The current password is not correct.".into()),
            None,
        )?;
        return Ok(with_status(
            page,
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    match svc
        .set_password(p.actor(), Some(rid.0), user_id, &form.new)
        .await
    {
        Ok(()) => {
            // The password change ended every session, this one included: start a new one.
            let epoch = state.access.user(user_id).map(|u| u.epoch).unwrap_or(0);
            let now = state.clock.now().micros();
            let fresh = Session {
                epoch,
                seen: now,
                iat: now,
                ..session.clone()
            };
            let cookie = state
                .access
                .session_cookie(state.access.sessions.encode(&fresh), https(&req));
            let page = home_page(
                &req,
                &state,
                &p,
                Some("Your password has been changed.".into()),
                None,
                Some(sessions::session_binding(&fresh.sid)),
            )?;
            Ok(respond(page, Some(cookie)))
        }
        Err(AppError::Validation { detail, .. }) => {
            let page = home_page(&req, &state, &p, None, Some(detail), None)?;
            Ok(with_status(
                page,
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            ))
        }
        Err(e) => Err(UiError(e)),
    }
}
