//! One-time links: the first administrator, and setting a password.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{UiError, check_form, csrf_binding, html, respond, see_other, with_status};
use crate::auth::api::service;
use crate::auth::service::PURPOSE_FIRST_ADMIN;
use crate::error::AppError;
use crate::state::AppState;
use crate::telemetry::RequestId;

#[derive(Template)]
#[template(path = "setup.html")]
pub(super) struct SetupPage {
    heading: String,
    csrf: String,
    token: String,
    first_admin: bool,
    email: String,
    name: String,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct SetupQuery {
    token: String,
}

fn setup_heading(first_admin: bool) -> String {
    if first_admin {
        "Create the first administrator".into()
    } else {
        "Set your password".into()
    }
}

pub(super) async fn setup_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<SetupQuery>,
) -> Result<HttpResponse, UiError> {
    let link = service(&state).usable_link(&q.token).await?;
    let (binding, cookie) = csrf_binding(&req);
    let first_admin = link.purpose == PURPOSE_FIRST_ADMIN;
    let page = html(&SetupPage {
        heading: setup_heading(first_admin),
        csrf: state.access.sessions.csrf_token(&binding),
        token: q.token.clone(),
        first_admin,
        email: String::new(),
        name: String::new(),
        error: None,
    })?;
    Ok(respond(page, cookie))
}

#[derive(Debug, Deserialize)]
pub(super) struct SetupForm {
    csrf: String,
    token: String,
    email: Option<String>,
    name: Option<String>,
    password: String,
}

pub(super) async fn setup(
    req: HttpRequest,
    state: web::Data<AppState>,
    rid: RequestId,
    form: web::Form<SetupForm>,
) -> Result<HttpResponse, UiError> {
    check_form(&req, &state, &form.csrf)?;
    let svc = service(&state);
    let link = svc.usable_link(&form.token).await?;
    let first_admin = link.purpose == PURPOSE_FIRST_ADMIN;
    let result = if first_admin {
        svc.complete_first_admin(
            Some(rid.0.clone()),
            &form.token,
            form.email.as_deref().unwrap_or(""),
            form.name.as_deref().unwrap_or(""),
            &form.password,
        )
        .await
        .map(|_| "created")
    } else {
        svc.complete_set_password(Some(rid.0.clone()), &form.token, &form.password)
            .await
            .map(|_| "password-set")
    };
    match result {
        Ok(notice) => Ok(see_other(&format!("/ui/login?notice={notice}"))),
        Err(AppError::Validation { detail, .. }) => {
            let (binding, _) = csrf_binding(&req);
            let page = html(&SetupPage {
                heading: setup_heading(first_admin),
                csrf: state.access.sessions.csrf_token(&binding),
                token: form.token.clone(),
                first_admin,
                email: form.email.clone().unwrap_or_default(),
                name: form.name.clone().unwrap_or_default(),
                error: Some(detail),
            })?;
            Ok(with_status(
                page,
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            ))
        }
        Err(e) => Err(UiError(e)),
    }
}
