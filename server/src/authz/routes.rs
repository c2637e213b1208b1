//! The one way to register a route: with the access it requires. [`Routes::register`] groups
//! routes by path into resources, each wrapped by [`Authorize`], and returns the list of what was
//! registered (the route-walk test reads it).

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::{Method, header};
use actix_web::{FromRequest, Handler, HttpMessage, HttpResponse, Responder, ResponseError, web};
use futures_util::future::LocalBoxFuture;
use serde::Serialize;

use super::{Access, Perm};
use crate::auth::{Authn, PrincipalKind};
use crate::error::AppError;
use crate::state::AppState;

/// A registered route and what it requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteSpec {
    #[serde(serialize_with = "method_str")]
    pub method: Method,
    pub path: String,
    pub access: Access,
}

fn method_str<S: serde::Serializer>(m: &Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

/// Collects routes with their access, then registers them.
#[derive(Default)]
pub struct Routes {
    entries: Vec<(String, Method, Access, actix_web::Route)>,
}

impl Routes {
    pub fn new() -> Self {
        Routes::default()
    }

    pub fn route<F, Args>(
        &mut self,
        method: Method,
        path: &str,
        access: Access,
        handler: F,
    ) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.entries.push((
            path.to_string(),
            method.clone(),
            access,
            web::method(method).to(handler),
        ));
        self
    }

    pub fn get<F, Args>(&mut self, path: &str, access: Access, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::GET, path, access, handler)
    }

    pub fn post<F, Args>(&mut self, path: &str, access: Access, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::POST, path, access, handler)
    }

    pub fn delete<F, Args>(&mut self, path: &str, access: Access, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::DELETE, path, access, handler)
    }

    /// Registers every route (one resource per path, all its methods, one [`Authorize`]) and
    /// returns what was registered, in the order declared. Fixed paths are matched before paths
    /// with `{parameters}`: a fixed path wins over a pattern that would also match it, and the
    /// common fixed routes (a consent check) skip the pattern matching altogether.
    pub fn register(self, cfg: &mut web::ServiceConfig) -> Vec<RouteSpec> {
        let mut order: Vec<String> = Vec::new();
        let mut by_path: HashMap<String, Vec<(Method, Access, actix_web::Route)>> = HashMap::new();
        let mut specs = Vec::new();
        for (path, method, access, route) in self.entries {
            specs.push(RouteSpec {
                method: method.clone(),
                path: path.clone(),
                access,
            });
            if !by_path.contains_key(&path) {
                order.push(path.clone());
            }
            by_path
                .entry(path)
                .or_default()
                .push((method, access, route));
        }
        order.sort_by_key(|path| path.contains('{'));
        for path in order {
            let Some(routes) = by_path.remove(&path) else {
                continue;
            };
            let access: HashMap<Method, Access> =
                routes.iter().map(|(m, a, _)| (m.clone(), *a)).collect();
            let mut resource = web::resource(path.as_str());
            for (_, _, route) in routes {
                resource = resource.route(route);
            }
            cfg.service(resource.wrap(Authorize {
                access: Rc::new(access),
            }));
        }
        specs
    }
}

/// Enforces a resource's declared access before its handler runs.
pub struct Authorize {
    access: Rc<HashMap<Method, Access>>,
}

impl<S, B> Transform<S, ServiceRequest> for Authorize
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = AuthorizeService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AuthorizeService {
            service: Rc::new(service),
            access: self.access.clone(),
        }))
    }
}

pub struct AuthorizeService<S> {
    service: Rc<S>,
    access: Rc<HashMap<Method, Access>>,
}

impl<S, B> Service<ServiceRequest> for AuthorizeService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        match self.access.get(req.method()) {
            // An undeclared method falls through to actix's 405.
            None => self.pass(req),
            Some(access) => match decide(&req, *access) {
                Ok(()) => self.pass(req),
                Err(refusal) => {
                    let res = refusal.response(req.path().starts_with("/ui"));
                    Box::pin(async move { Ok(req.into_response(res).map_into_right_body()) })
                }
            },
        }
    }
}

impl<S, B> AuthorizeService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    fn pass(
        &self,
        req: ServiceRequest,
    ) -> LocalBoxFuture<'static, Result<ServiceResponse<EitherBody<B>>, actix_web::Error>> {
        let fut = self.service.call(req);
        Box::pin(async move { fut.await.map(ServiceResponse::map_into_left_body) })
    }
}

enum Refusal {
    Unauthenticated(String),
    Forbidden(String),
}

impl Refusal {
    fn response(self, ui: bool) -> HttpResponse {
        match (self, ui) {
            (Refusal::Unauthenticated(_), true) => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/ui/login"))
                .finish(),
            (Refusal::Forbidden(why), true) => crate::web::error_page(403, "Not permitted", &why),
            (Refusal::Unauthenticated(why), false) => {
                AppError::Unauthenticated(why).error_response()
            }
            (Refusal::Forbidden(why), false) => AppError::Forbidden(why).error_response(),
        }
    }
}

fn decide(req: &ServiceRequest, access: Access) -> Result<(), Refusal> {
    if access == Access::Public {
        return Ok(());
    }
    let authn = req
        .extensions()
        .get::<Authn>()
        .cloned()
        .unwrap_or(Authn::Anonymous);
    let principal = match authn {
        Authn::Authenticated(p) => p,
        Authn::Refused(why) => return Err(Refusal::Unauthenticated(why)),
        Authn::Anonymous => {
            return Err(Refusal::Unauthenticated(
                "this needs credentials: a bearer token (Authorization: Bearer …) or a signed-in session"
                    .into(),
            ));
        }
    };
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Err(Refusal::Forbidden("access policy unavailable".into()));
    };
    // By the route's registered pattern, never the raw path (an encoded `/%761/...` reaches
    // the same handler). Only the web UI's own forms, which check their CSRF field, are exempt.
    if let PrincipalKind::User { session, .. } = &principal.kind
        && !req.method().is_safe()
        && !req.match_pattern().is_some_and(|p| p.starts_with("/ui/"))
    {
        session_write_allowed(req, state, &session.sid).map_err(Refusal::Forbidden)?;
    }
    let Access::Permission(perm) = access else {
        return Ok(());
    };
    if principal.allowed(&state.access.policy, perm) {
        Ok(())
    } else {
        Err(Refusal::Forbidden(missing(perm, &principal.role_names())))
    }
}

/// The header a signed-in page sends with a state-changing API request: the session's CSRF token
/// (`GET /v1/access/me` gives it to a session).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A session cookie changes state through the API only from Accord's own origin (`Origin` naming
/// this host, or `Sec-Fetch-Site: same-origin`) and with the session's CSRF token in
/// [`CSRF_HEADER`]; a cross-site page cannot do either.
fn session_write_allowed(req: &ServiceRequest, state: &AppState, sid: &str) -> Result<(), String> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let host = crate::forwarded::Client::of(
        req.headers(),
        req.peer_addr(),
        &state.settings.trusted_proxies,
    )
    .host;
    let origin_ok = match header("origin") {
        Some(o) => crate::auth::sessions::same_origin(Some(o), header("sec-fetch-site"), &host),
        None => header("sec-fetch-site") == Some("same-origin"),
    };
    if !origin_ok {
        return Err(
            "a signed-in session changes data through the API only from Accord's own pages (same-origin Origin or Sec-Fetch-Site); services use a bearer token"
                .into(),
        );
    }
    let token = header(CSRF_HEADER).unwrap_or_default();
    if !state
        .access
        .sessions
        .csrf_ok(&crate::auth::sessions::session_binding(sid), token)
    {
        return Err(format!(
            "the {CSRF_HEADER} header is missing or wrong: send the session's CSRF token (GET /v1/access/me)"
        ));
    }
    Ok(())
}

fn missing(perm: Perm, roles: &[&str]) -> String {
    let held = if roles.is_empty() {
        "you hold no role".to_string()
    } else {
        format!("none of your roles ({}) grants it", roles.join(", "))
    };
    format!(
        "this needs the permission {perm} ({} {}), and {held}",
        perm.action, perm.resource
    )
}

#[cfg(test)]
mod tests {
    use actix_web::{App, test};

    use super::*;

    #[actix_web::test]
    async fn a_fixed_path_wins_over_an_earlier_pattern() {
        let mut r = Routes::new();
        r.get("/things/{id}", Access::Public, || async { "pattern" })
            .get("/things/special", Access::Public, || async { "fixed" })
            .get("/things/{id}/parts", Access::Public, || async { "parts" });
        let mut specs = Vec::new();
        let app = test::init_service(App::new().configure(|cfg| specs = r.register(cfg))).await;
        let paths: Vec<&str> = specs.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/things/{id}", "/things/special", "/things/{id}/parts"],
            "reported as declared"
        );
        for (path, want) in [
            ("/things/special", "fixed"),
            ("/things/7", "pattern"),
            ("/things/7/parts", "parts"),
        ] {
            let res =
                test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
            let body = test::read_body(res).await;
            assert_eq!(body, want.as_bytes(), "{path}");
        }
    }
}
