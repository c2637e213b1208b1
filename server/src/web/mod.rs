//! The web UI: server-rendered pages (askama templates, escaped by construction), every form
//! protected against cross-site request forgery, strict security headers on every response.
//! Handlers are thin: they call the domain services.

pub mod headers;
mod home;
mod outbox;
mod setup;
mod signin;
mod vendors;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;

use crate::auth::sessions::{self, PRESESSION_COOKIE, same_origin};
use crate::auth::{Authn, PrincipalKind};
use crate::authz::{Access, Routes};
use crate::error::AppError;
use crate::keys::random_bytes;
use crate::state::AppState;

pub fn routes(r: &mut Routes) {
    r.get("/ui/login", Access::Public, signin::login_page)
        .post("/ui/login", Access::Public, signin::login)
        .get("/ui/setup", Access::Public, setup::setup_page)
        .post("/ui/setup", Access::Public, setup::setup)
        .get("/ui/", Access::Authenticated, home::home)
        .post("/ui/password", Access::Authenticated, home::change_password)
        .post("/ui/logout", Access::Authenticated, signin::logout)
        .get(
            "/ui/vendors",
            Access::Permission(crate::dpa::api::DPA_READ),
            vendors::vendors,
        )
        .get(
            "/ui/vendors/{id}",
            Access::Permission(crate::dpa::api::DPA_READ),
            vendors::vendor,
        )
        .get(
            "/ui/outbox",
            Access::Permission(crate::notify::api::OUTBOX_READ),
            outbox::outbox,
        )
        .get("/ui/static/accord.css", Access::Public, stylesheet);
}

/// An error shown as an HTML page.
#[derive(Debug)]
pub struct UiError(pub AppError);

impl std::fmt::Display for UiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for UiError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        self.0.status_code()
    }
    fn error_response(&self) -> HttpResponse {
        if let AppError::Internal(cause) = &self.0 {
            tracing::error!(error = %cause, chain = ?cause, "page failed");
        }
        let p = self.0.problem();
        error_page(p.status, p.title, &p.detail)
    }
}

impl From<AppError> for UiError {
    fn from(e: AppError) -> Self {
        UiError(e)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    heading: &'a str,
    detail: &'a str,
    /// The request's id, to quote when reporting the problem (it is on every log line of it).
    request_id: Option<String>,
}

/// An HTML error page with `status`, naming the request's id.
pub fn error_page(status: u16, heading: &str, detail: &str) -> HttpResponse {
    let body = ErrorPage {
        heading,
        detail,
        request_id: crate::telemetry::current_request_id(),
    }
    .render()
    .unwrap_or_else(|_| "error".into());
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    )
    .content_type("text/html; charset=utf-8")
    .body(body)
}

pub(super) fn html(t: &impl Template) -> Result<HttpResponse, UiError> {
    let body = t
        .render()
        .map_err(|e| UiError(AppError::internal(anyhow::anyhow!("template: {e}"))))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body))
}

pub(super) fn with_status(
    mut res: HttpResponse,
    status: actix_web::http::StatusCode,
) -> HttpResponse {
    *res.status_mut() = status;
    res
}

/// The value CSRF tokens of this request's forms are bound to: the session, or before sign-in a
/// random pre-session cookie (set here if missing).
pub(super) fn csrf_binding(req: &HttpRequest) -> (String, Option<Cookie<'static>>) {
    if let Some(Authn::Authenticated(p)) = req.extensions().get::<Authn>()
        && let PrincipalKind::User { session, .. } = &p.kind
    {
        return (sessions::session_binding(&session.sid), None);
    }
    if let Some(c) = req.cookie(PRESESSION_COOKIE)
        && c.value().len() == 32
    {
        return (format!("pre:{}", c.value()), None);
    }
    let value = random_bytes::<16>().map(hex::encode).unwrap_or_default();
    let cookie = Cookie::build(PRESESSION_COOKIE, value.clone())
        .path("/ui")
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish();
    (format!("pre:{value}"), Some(cookie))
}

/// Refuses a form post that is not from our own pages or whose CSRF token is wrong.
pub(super) fn check_form(
    req: &HttpRequest,
    state: &AppState,
    submitted: &str,
) -> Result<(), UiError> {
    let header_str = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let host = client(req, state).host;
    if !same_origin(header_str("origin"), header_str("sec-fetch-site"), &host) {
        return Err(UiError(AppError::Forbidden(
            "This form was sent from another site and has been refused.".into(),
        )));
    }
    let (binding, fresh) = csrf_binding(req);
    if fresh.is_some() || !state.access.sessions.csrf_ok(&binding, submitted) {
        return Err(UiError(AppError::Forbidden(
            "The form's security token is missing or wrong. Reload the page and try again.".into(),
        )));
    }
    Ok(())
}

pub(super) fn respond(page: HttpResponse, cookie: Option<Cookie<'static>>) -> HttpResponse {
    let mut page = page;
    if let Some(c) = cookie {
        let _ = page.add_cookie(&c);
    }
    page
}

/// The client of a request, as the configured trusted proxies report it.
pub(super) fn client(req: &HttpRequest, state: &AppState) -> crate::forwarded::Client {
    crate::forwarded::Client::of_request(req, &state.settings.trusted_proxies)
}

/// Whether the request came over TLS (as a trusted proxy reports it).
pub(super) fn https(req: &HttpRequest) -> bool {
    req.app_data::<web::Data<AppState>>()
        .is_some_and(|state| client(req, state).https)
}

pub(super) fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_string()))
        .finish()
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../../static/accord.css"))
}
