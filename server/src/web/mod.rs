//! The web UI: server-rendered pages (askama templates, escaped by construction), every form
//! protected against cross-site request forgery, strict security headers on every response.
//! Handlers are thin: they call the domain services.

pub mod headers;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use serde::Deserialize;

use crate::auth::service::{LoginError, PURPOSE_FIRST_ADMIN};
use crate::auth::sessions::{self, PRESESSION_COOKIE, Session, same_origin};
use crate::auth::{Authn, Principal, PrincipalKind, api::service};
use crate::authz::{Access, Routes};
use crate::error::AppError;
use crate::keys::random_bytes;
use crate::state::AppState;
use crate::telemetry::RequestId;

pub fn routes(r: &mut Routes) {
    r.get("/ui/login", Access::Public, login_page)
        .post("/ui/login", Access::Public, login)
        .get("/ui/setup", Access::Public, setup_page)
        .post("/ui/setup", Access::Public, setup)
        .get("/ui/", Access::Authenticated, home)
        .post("/ui/password", Access::Authenticated, change_password)
        .post("/ui/logout", Access::Authenticated, logout)
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

fn html(t: &impl Template) -> Result<HttpResponse, UiError> {
    let body = t
        .render()
        .map_err(|e| UiError(AppError::internal(anyhow::anyhow!("template: {e}"))))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body))
}

fn with_status(mut res: HttpResponse, status: actix_web::http::StatusCode) -> HttpResponse {
    *res.status_mut() = status;
    res
}

/// The value CSRF tokens of this request's forms are bound to: the session, or before sign-in a
/// random pre-session cookie (set here if missing).
fn csrf_binding(req: &HttpRequest) -> (String, Option<Cookie<'static>>) {
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
fn check_form(req: &HttpRequest, state: &AppState, submitted: &str) -> Result<(), UiError> {
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

fn respond(page: HttpResponse, cookie: Option<Cookie<'static>>) -> HttpResponse {
    let mut page = page;
    if let Some(c) = cookie {
        let _ = page.add_cookie(&c);
    }
    page
}

/// The client of a request, as the configured trusted proxies report it.
fn client(req: &HttpRequest, state: &AppState) -> crate::forwarded::Client {
    crate::forwarded::Client::of_request(req, &state.settings.trusted_proxies)
}

/// Whether the request came over TLS (as a trusted proxy reports it).
fn https(req: &HttpRequest) -> bool {
    req.app_data::<web::Data<AppState>>()
        .is_some_and(|state| client(req, state).https)
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_string()))
        .finish()
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    email: String,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    notice: Option<String>,
}

async fn login_page(
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
struct LoginForm {
    csrf: String,
    email: String,
    password: String,
}

/// The one message for every failed login: it tells nothing about which part was wrong.
pub const LOGIN_FAILED: &str =
    "The e-mail address or password is not correct, or the account cannot sign in right now.";

async fn login(
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

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    heading: String,
    csrf: String,
    token: String,
    first_admin: bool,
    email: String,
    name: String,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SetupQuery {
    token: String,
}

fn setup_heading(first_admin: bool) -> String {
    if first_admin {
        "Create the first administrator".into()
    } else {
        "Set your password".into()
    }
}

async fn setup_page(
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
struct SetupForm {
    csrf: String,
    token: String,
    email: Option<String>,
    name: Option<String>,
    password: String,
}

async fn setup(
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

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
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

async fn home(
    req: HttpRequest,
    state: web::Data<AppState>,
    p: Principal,
) -> Result<HttpResponse, UiError> {
    home_page(&req, &state, &p, None, None, None)
}

#[derive(Debug, Deserialize)]
struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
}

async fn change_password(
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

#[derive(Debug, Deserialize)]
struct CsrfOnly {
    csrf: String,
}

async fn logout(
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

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../../static/accord.css"))
}
