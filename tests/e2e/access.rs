//! Access end to end: every route guarded as declared, tokens over HTTP, revocation on every
//! instance, external issuers, security headers, sign-in, CSRF, lockout, first-administrator set-up,
//! and every access change in the ledger.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use accord::auth::model::Role;
use accord::authz::Access;
use accord::config::ExternalIssuer;
use accord::ledger::Actor;
use accord_tests::{TestApp, TestDb, settings};

use crate::on_both_backends;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

on_both_backends!(
    every_route_is_guarded_as_the_policy_says,
    super::every_route_is_guarded_as_the_policy_says
);

/// Every registered route declares its access; without credentials each guarded one answers 401;
/// for every role in policy.csv the answer is 403 exactly when the policy denies.
async fn every_route_is_guarded_as_the_policy_says(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(settings(&db, data.path())).await.unwrap();
    assert!(app.routes.len() >= 15, "{:?}", app.routes);
    let policy = &app.state.access.policy;
    let roles: BTreeSet<Role> = policy
        .rules()
        .iter()
        .filter_map(|r| Role::parse(&r.role))
        .collect();
    assert_eq!(
        roles.len(),
        Role::ALL.len(),
        "every role appears in policy.csv"
    );
    let mut tokens = Vec::new();
    for role in &roles {
        tokens.push((*role, app.token(&[*role]).await));
    }
    let client = app.client();
    for spec in &app.routes {
        let path = spec.path.replace("{jti}", "t_none");
        let call = |token: Option<&str>| {
            let mut req = client.request(spec.method.clone(), app.url(&path));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            async move { req.send().await.unwrap().status().as_u16() }
        };
        let anonymous = call(None).await;
        // Pages send people to the sign-in page instead of answering 401.
        let refused = if path.starts_with("/ui") { 303 } else { 401 };
        match spec.access {
            Access::Public => assert_ne!(anonymous, refused, "{} {path}", spec.method),
            _ => assert_eq!(
                anonymous, refused,
                "{} {path} without credentials",
                spec.method
            ),
        }
        for (role, token) in &tokens {
            let status = call(Some(token)).await;
            let denied = match spec.access {
                Access::Public | Access::Authenticated => false,
                Access::Permission(p) => !policy.role_allows(*role, p),
            };
            assert_eq!(
                status == 403,
                denied,
                "{} {path} as {role}: got {status}, policy {}",
                spec.method,
                if denied { "denies" } else { "allows" }
            );
            assert_ne!(status, 401, "{} {path} as {role}", spec.method);
        }
    }
    app.stop().await;
}

on_both_backends!(
    tokens_are_issued_used_and_revoked_over_http,
    super::tokens_are_issued_used_and_revoked_over_http
);

async fn tokens_are_issued_used_and_revoked_over_http(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(settings(&db, data.path())).await.unwrap();
    let admin = app.token(&[Role::Admin]).await;
    let client = app.client();

    let mut res = client
        .post(app.url("/v1/tokens"))
        .bearer_auth(&admin)
        .send_json(&json!({"client": "crm-sync", "roles": ["service"], "ttl": "1d"}))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let issued: serde_json::Value = res.json().await.unwrap();
    let token = issued["token"].as_str().unwrap().to_string();
    let jti = issued["jti"].as_str().unwrap().to_string();
    // The header says what it is.
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    assert!(header["kid"].is_string());

    let (status, me) = app.get_json_with("/v1/access/me", &token).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["kind"], "service");
    assert_eq!(me["roles"], json!(["service"]));
    let perms: Vec<&str> = me["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(perms.contains(&"consent:read"));
    assert!(!perms.contains(&"ledger:read"));

    let (status, list) = app.get_json_with("/v1/tokens", &admin).await;
    assert_eq!(status, 200);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|t| t["jti"] == jti.as_str())
    );
    assert!(
        !list.to_string().contains(&token),
        "token text is never listed"
    );

    // Bad input names the field.
    for (body, field) in [
        (json!({"client": "crm", "roles": ["root"]}), "roles[0]"),
        (
            json!({"client": "crm", "roles": ["service"], "ttl": "forever"}),
            "ttl",
        ),
        (
            json!({"client": "CRM Sync", "roles": ["service"]}),
            "client",
        ),
        (json!({"client": "crm", "roles": []}), "roles"),
    ] {
        let mut res = client
            .post(app.url("/v1/tokens"))
            .bearer_auth(&admin)
            .send_json(&body)
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 422, "{body}");
        let p: serde_json::Value = res.json().await.unwrap();
        assert_eq!(p["errors"][0]["field"], field, "{p}");
    }
    let res = client
        .post(app.url("/v1/tokens"))
        .bearer_auth(&admin)
        .insert_header(("content-type", "text/plain"))
        .send_body("client=crm")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 415);
    let huge = json!({"client": "x".repeat(2 << 20), "roles": ["service"]});
    let res = client
        .post(app.url("/v1/tokens"))
        .bearer_auth(&admin)
        .send_json(&huge)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 413);

    // Revoked: refused at once on this instance.
    let res = client
        .delete(app.url(&format!("/v1/tokens/{jti}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 204);
    let (status, p) = app.get_json_with("/v1/access/me", &token).await;
    assert_eq!(status, 401);
    assert!(p["detail"].as_str().unwrap().contains("revoked"), "{p}");
    let res = client
        .delete(app.url(&format!("/v1/tokens/{jti}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 409);

    // A token not on record (signed with the key, but never issued through the ledger) is refused.
    let rogue = app.unrecorded_token(&[Role::Admin]);
    let (status, _) = app.get_json_with("/v1/access/me", &rogue).await;
    assert_eq!(status, 401);

    // Everything above is on the record.
    let kinds = ledger_kinds(&app).await;
    assert!(kinds.contains("access.token_issued"));
    assert!(kinds.contains("access.token_revoked"));
    app.stop().await;
}

async fn ledger_kinds(app: &TestApp) -> BTreeSet<String> {
    ledger_kinds_all(app).await.into_iter().collect()
}

/// Every entry's kind, in ledger order.
async fn ledger_kinds_all(app: &TestApp) -> Vec<String> {
    let pool = app.pool.clone();
    actix_web::web::block(move || {
        use accord::db::schema::ledger_entries::dsl::*;
        use diesel::prelude::*;
        let mut c = pool.get().unwrap();
        ledger_entries
            .select(kind)
            .order(seq.asc())
            .load::<String>(&mut c)
            .unwrap()
    })
    .await
    .unwrap()
}

on_both_backends!(
    revocation_reaches_every_instance_within_a_second,
    super::revocation_reaches_every_instance_within_a_second
);

/// A revocation on one instance is honoured by another within a second.
async fn revocation_reaches_every_instance_within_a_second(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let a = TestApp::spawn(settings(&db, data.path())).await.unwrap();
    let b = TestApp::spawn(settings(&db, data.path())).await.unwrap();
    let token = a.token(&[Role::Service]).await;
    let until = |target: u16, app: &TestApp| {
        let token = token.clone();
        let app_url = app.url("/v1/access/me");
        let client = app.client();
        async move {
            let start = Instant::now();
            loop {
                let status = client
                    .get(&app_url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                if status == target {
                    return start.elapsed();
                }
                assert!(start.elapsed() < Duration::from_secs(5), "still {status}");
                actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let seen = until(200, &b).await;
    assert!(
        seen < Duration::from_secs(1),
        "issued token known on B after {seen:?}"
    );
    let jti = accord::auth::api::service(&a.state)
        .list_tokens()
        .await
        .unwrap()
        .pop()
        .unwrap()
        .jti;
    accord::auth::api::service(&a.state)
        .revoke_token(Actor::system(), None, &jti)
        .await
        .unwrap();
    let refused = until(401, &b).await;
    assert!(
        refused < Duration::from_secs(1),
        "revocation reached B after {refused:?}"
    );
    a.stop().await;
    b.stop().await;
}

on_both_backends!(
    external_issuer_tokens_are_mapped_and_checked,
    super::external_issuer_tokens_are_mapped_and_checked
);

/// Tokens of a configured identity provider: accepted with mapped roles, refused when their
/// audience, expiry or key is wrong.
async fn external_issuer_tokens_are_mapped_and_checked(db: TestDb) {
    use ed25519_dalek::SigningKey;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    let data = tempfile::tempdir().unwrap();
    let key = SigningKey::from_bytes(&[11; 32]);
    let jwks = data.path().join("idp-jwks.json");
    std::fs::write(
        &jwks,
        json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": "idp-1",
            "x": URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
        }]})
        .to_string(),
    )
    .unwrap();
    let mut s = settings(&db, data.path());
    s.auth.external_issuers = vec![ExternalIssuer {
        issuer: "https://idp.example".into(),
        audience: "accord".into(),
        jwks_file: jwks,
        roles_claim: "groups".into(),
        role_map: [("privacy-auditors".to_string(), vec!["auditor".to_string()])]
            .into_iter()
            .collect(),
    }];
    let app = TestApp::spawn(s).await.unwrap();
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    let enc = EncodingKey::from_ed_pem(pem.as_bytes()).unwrap();
    let sign = |claims: serde_json::Value, kid: &str| {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(&h, &claims, &enc).unwrap()
    };
    let now = 1_795_000_000i64.max(
        std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .unwrap()
            .as_secs() as i64,
    );
    let good = json!({"iss": "https://idp.example", "aud": "accord", "sub": "alice",
                      "exp": now + 600, "iat": now, "groups": ["privacy-auditors", "staff"]});
    let t = sign(good.clone(), "idp-1");
    let (status, me) = app.get_json_with("/v1/access/me", &t).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["kind"], "external");
    assert_eq!(me["roles"], json!(["auditor"]));
    assert_eq!(app.get_with("/v1/ledger/key", &t).await.0, 200);

    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    assert_eq!(
        app.get_with("/v1/access/me", &sign(wrong_aud, "idp-1"))
            .await
            .0,
        401
    );
    let mut expired = good.clone();
    expired["exp"] = json!(now - 3600);
    assert_eq!(
        app.get_with("/v1/access/me", &sign(expired, "idp-1"))
            .await
            .0,
        401
    );
    assert_eq!(
        app.get_with("/v1/access/me", &sign(good.clone(), "idp-2"))
            .await
            .0,
        401
    );
    let mut no_groups = good.clone();
    no_groups["groups"] = json!(["staff"]);
    let t = sign(no_groups, "idp-1");
    assert_eq!(app.get_with("/v1/access/me", &t).await.0, 200);
    assert_eq!(app.get_with("/v1/ledger/key", &t).await.0, 403);
    // An HMAC token claiming the external key id: the algorithm is pinned, so it is refused.
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("idp-1".into());
    let hs = jsonwebtoken::encode(&h, &good, &EncodingKey::from_secret(b"x")).unwrap();
    assert_eq!(app.get_with("/v1/access/me", &hs).await.0, 401);
    app.stop().await;
}

on_both_backends!(
    every_response_carries_security_headers,
    super::every_response_carries_security_headers
);

async fn every_response_carries_security_headers(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(settings(&db, data.path())).await.unwrap();
    for (path, csp_part) in [
        ("/healthz", "default-src 'none'"),
        ("/v1/access/me", "frame-ancestors 'none'"),
        ("/ui/login", "form-action 'self'"),
        ("/no/such/page", "default-src 'none'"),
    ] {
        let res = app.client().get(app.url(path)).send().await.unwrap();
        let h = res.headers();
        let get = |n: &str| {
            h.get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(get("x-content-type-options"), "nosniff", "{path}");
        assert!(get("content-security-policy").contains(csp_part), "{path}");
        assert!(
            get("content-security-policy").contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(get("referrer-policy"), "same-origin", "{path}");
    }
    app.stop().await;
}

/// A browser-like client over HTTP: cookies and the CSRF field by hand.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: std::collections::BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            cookies: Default::default(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies<S>(&mut self, res: &awc::ClientResponse<S>) {
        for v in res.headers().get_all("set-cookie") {
            let Ok(text) = v.to_str() else { continue };
            let first = text.split(';').next().unwrap_or("");
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let removed = value.is_empty() || text.contains("Max-Age=0");
            if removed {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_string(), value.to_string());
            }
        }
    }

    async fn get(&mut self, path: &str) -> (u16, String, String) {
        let mut res = self
            .app
            .client()
            .get(self.app.url(path))
            .insert_header(("cookie", self.cookie_header()))
            .send()
            .await
            .unwrap();
        self.keep_cookies(&res);
        let location = res
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = String::from_utf8_lossy(&res.body().await.unwrap()).into_owned();
        (res.status().as_u16(), location, body)
    }

    async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (u16, String, String) {
        let mut req = self
            .app
            .client()
            .post(self.app.url(path))
            .insert_header(("cookie", self.cookie_header()));
        if let Some(o) = origin {
            req = req.insert_header(("origin", o));
        }
        let mut res = req.send_form(&form).await.unwrap();
        self.keep_cookies(&res);
        let location = res
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = String::from_utf8_lossy(&res.body().await.unwrap()).into_owned();
        (res.status().as_u16(), location, body)
    }
}

fn csrf_of(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    page[start..].split('"').next().unwrap().to_string()
}

fn error_of(page: &str) -> String {
    page.split("id=\"error\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or("")
        .to_string()
}

on_both_backends!(
    sign_in_csrf_lockout_and_sign_out,
    super::sign_in_csrf_lockout_and_sign_out
);

async fn sign_in_csrf_lockout_and_sign_out(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(settings(&db, data.path())).await.unwrap();
    let svc = accord::auth::api::service(&app.state);
    svc.create_user(
        Actor::cli(),
        None,
        "Ada@Example.org",
        "Ada Lovelace",
        &[Role::ComplianceOfficer],
        Some("analytical engine 1843"),
    )
    .await
    .unwrap();
    svc.create_user(
        Actor::cli(),
        None,
        "bob@example.org",
        "Bob",
        &[],
        Some("bob's long password"),
    )
    .await
    .unwrap();
    let origin = app.address.clone();
    let mut b = Browser::new(&app);
    let (status, _, page) = b.get("/ui/login").await;
    assert_eq!(status, 200);
    let csrf = csrf_of(&page);

    // Without the token, with a wrong one, or from another site: refused, nothing else happens.
    let (status, _, refusal) = b
        .post(
            "/ui/login",
            &[
                ("email", "ada@example.org"),
                ("password", "analytical engine 1843"),
                ("csrf", ""),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(status, 403);
    // The page names the request's id, to quote when reporting it.
    let id = refusal
        .split("Request id <code>")
        .nth(1)
        .and_then(|rest| rest.split("</code>").next())
        .unwrap_or_else(|| panic!("no request id on the page: {refusal}"));
    assert!(
        id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let (status, _, _) = b
        .post(
            "/ui/login",
            &[
                ("email", "ada@example.org"),
                ("password", "analytical engine 1843"),
                ("csrf", "AAAA"),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = b
        .post(
            "/ui/login",
            &[
                ("email", "ada@example.org"),
                ("password", "analytical engine 1843"),
                ("csrf", &csrf),
            ],
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(status, 403);

    // Wrong password and unknown account: one generic message.
    let (status, _, wrong) = b
        .post(
            "/ui/login",
            &[
                ("email", "ada@example.org"),
                ("password", "difference engine"),
                ("csrf", &csrf),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(status, 401);
    let (_, _, unknown) = b
        .post(
            "/ui/login",
            &[
                ("email", "nobody@example.org"),
                ("password", "difference engine"),
                ("csrf", &csrf),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(error_of(&wrong), error_of(&unknown));
    assert!(!error_of(&wrong).is_empty());

    // Signed in: the session cookie is HttpOnly and SameSite=Strict.
    let mut res = app
        .client()
        .post(app.url("/ui/login"))
        .insert_header(("cookie", b.cookie_header()))
        .insert_header(("origin", origin.as_str()))
        .send_form(&[
            ("email", "ada@example.org"),
            ("password", "analytical engine 1843"),
            ("csrf", csrf.as_str()),
        ])
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    let set_cookie = res
        .headers()
        .get_all("set-cookie")
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("accord_session="))
        .expect("session cookie")
        .to_string();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    b.keep_cookies(&res);
    let _ = res.body().await;
    let (status, _, home) = b.get("/ui/").await;
    assert_eq!(status, 200);
    assert!(home.contains("Ada Lovelace"));
    assert!(home.contains("compliance_officer"));
    // The same session works for the JSON API.
    let mut res = app
        .client()
        .get(app.url("/v1/access/me"))
        .insert_header(("cookie", b.cookie_header()))
        .send()
        .await
        .unwrap();
    let me: serde_json::Value = res.json().await.unwrap();
    assert_eq!(me["kind"], "user");
    let csrf_header = me["csrf_token"]
        .as_str()
        .expect("a session's CSRF token")
        .to_string();
    let old_session = b.cookies.get("accord_session").cloned().unwrap();

    // The session changes data through the API only from this origin and with its CSRF header.
    let host = origin.trim_start_matches("http://").to_string();
    let port: u16 = host.rsplit(':').next().unwrap().parse().unwrap();
    let same_site = format!("http://127.0.0.1:{}", port.wrapping_add(1).max(1));
    let purpose = |n: u32| {
        serde_json::json!({"key": format!("session.p{n}"), "title": "Set from a page"}).to_string()
    };
    type Headers<'a> = Vec<(&'a str, &'a str)>;
    let attempts: Vec<(Headers, u16, &str)> = vec![
        (
            vec![("origin", "https://evil.example")],
            403,
            "foreign origin",
        ),
        (
            vec![
                ("origin", same_site.as_str()),
                ("sec-fetch-site", "same-site"),
            ],
            403,
            "same-site, other origin",
        ),
        (vec![], 403, "no origin at all"),
        (vec![("origin", origin.as_str())], 403, "no CSRF header"),
        (
            vec![("origin", origin.as_str()), ("x-csrf-token", "AAAA")],
            403,
            "a wrong CSRF header",
        ),
        (
            vec![
                ("sec-fetch-site", "cross-site"),
                ("x-csrf-token", csrf_header.as_str()),
            ],
            403,
            "cross-site fetch",
        ),
        (
            vec![
                ("origin", origin.as_str()),
                ("x-csrf-token", csrf_header.as_str()),
            ],
            201,
            "same origin with the header",
        ),
        (
            vec![
                ("sec-fetch-site", "same-origin"),
                ("x-csrf-token", csrf_header.as_str()),
            ],
            201,
            "same-origin fetch with the header",
        ),
    ];
    // An encoded path reaches the same handler, and gets the same rule.
    let cookie = b.cookie_header();
    let r = app
        .send(
            "POST",
            "/%761/purposes",
            None,
            &[
                ("origin", "https://evil.example"),
                ("cookie", cookie.as_str()),
            ],
            Some(("application/json", purpose(99).into_bytes())),
        )
        .await;
    assert_eq!(r.status, 403, "an encoded path: {}", r.body);
    for (n, (headers, want, what)) in attempts.into_iter().enumerate() {
        let mut all = headers.clone();
        let cookie = b.cookie_header();
        all.push(("cookie", cookie.as_str()));
        let r = app
            .send(
                "POST",
                "/v1/purposes",
                None,
                &all,
                Some(("application/json", purpose(n as u32).into_bytes())),
            )
            .await;
        assert_eq!(r.status, want, "{what}: {}", r.body);
    }

    // Sign out ends the session everywhere: a second session of the same person ends too.
    let mut second = Browser::new(&app);
    let (_, _, page) = second.get("/ui/login").await;
    let second_csrf = csrf_of(&page);
    let (status, _, _) = second
        .post(
            "/ui/login",
            &[
                ("email", "ada@example.org"),
                ("password", "analytical engine 1843"),
                ("csrf", &second_csrf),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(status, 303);
    let (status, _, _) = second.get("/ui/").await;
    assert_eq!(status, 200, "the second session works before the sign-out");
    let csrf = csrf_of(&home);
    let (status, location, _) = b
        .post("/ui/logout", &[("csrf", &csrf)], Some(&origin))
        .await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/ui/login?notice=signed-out")
    );
    b.cookies.insert("accord_session".into(), old_session);
    let (status, location, _) = b.get("/ui/").await;
    assert_eq!((status, location.as_str()), (303, "/ui/login"));
    let (status, location, _) = second.get("/ui/").await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/ui/login"),
        "the other session ended too"
    );

    // Five wrong passwords lock the account: then even the right one is refused (429) without
    // its password being checked.
    let mut b = Browser::new(&app);
    let (_, _, page) = b.get("/ui/login").await;
    let csrf = csrf_of(&page);
    for _ in 0..5 {
        let (status, _, _) = b
            .post(
                "/ui/login",
                &[
                    ("email", "bob@example.org"),
                    ("password", "not bob's password"),
                    ("csrf", &csrf),
                ],
                Some(&origin),
            )
            .await;
        assert_eq!(status, 401);
    }
    let (status, _, locked) = b
        .post(
            "/ui/login",
            &[
                ("email", "bob@example.org"),
                ("password", "bob's long password"),
                ("csrf", &csrf),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(status, 429);
    assert!(
        error_of(&locked).contains("Too many failed sign-ins"),
        "{locked}"
    );
    assert_eq!(
        ledger_kinds_all(&app)
            .await
            .iter()
            .filter(|k| *k == "access.locked_out")
            .count(),
        1,
        "one lockout, one entry"
    );

    let kinds = ledger_kinds(&app).await;
    for k in [
        "access.user_created",
        "access.password_set",
        "access.logged_in",
        "access.logged_out",
        "access.locked_out",
        "access.setup_link_created",
    ] {
        assert!(kinds.contains(k), "{k} missing from the ledger: {kinds:?}");
    }
    app.stop().await;
}

on_both_backends!(
    the_first_administrator_is_created_through_the_one_time_link,
    super::the_first_administrator_is_created_through_the_one_time_link
);

async fn the_first_administrator_is_created_through_the_one_time_link(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(settings(&db, data.path())).await.unwrap();
    let link = app.setup_link.clone().expect("a link when no user exists");
    let path = link
        .split_once(&app.address)
        .map(|(_, p)| p.to_string())
        .unwrap();
    let token = path.split("token=").nth(1).unwrap().to_string();
    let origin = app.address.clone();
    let mut b = Browser::new(&app);
    let (status, _, page) = b.get(&path).await;
    assert_eq!(status, 200);
    let csrf = csrf_of(&page);
    // A short password is refused with the reason; the link stays usable.
    let (status, _, page) = b
        .post(
            "/ui/setup",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("email", "root@example.org"),
                ("name", "Root"),
                ("password", "short"),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(status, 422);
    assert!(error_of(&page).contains("12 characters"), "{page}");
    let (status, location, _) = b
        .post(
            "/ui/setup",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("email", "root@example.org"),
                ("name", "Root"),
                ("password", "a long enough password"),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/ui/login?notice=created")
    );
    let users = accord::auth::api::service(&app.state)
        .list_users()
        .await
        .unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].1, vec![Role::Admin]);
    // Single use.
    let (status, _, _) = b.get(&path).await;
    assert_eq!(status, 404);
    let (status, _, _) = b
        .post(
            "/ui/setup",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("email", "x@example.org"),
                ("name", "X"),
                ("password", "a long enough password"),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(status, 404);
    // The administrator can sign in.
    let (_, _, page) = b.get("/ui/login").await;
    let csrf = csrf_of(&page);
    let (status, location, _) = b
        .post(
            "/ui/login",
            &[
                ("email", "root@example.org"),
                ("password", "a long enough password"),
                ("csrf", &csrf),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!((status, location.as_str()), (303, "/ui/"));
    let kinds = ledger_kinds(&app).await;
    assert!(kinds.contains("access.setup_link_used"));
    app.stop().await;
}

on_both_backends!(
    session_cookies_are_secure_over_tls,
    super::session_cookies_are_secure_over_tls
);

/// Behind a trusted TLS proxy (X-Forwarded-Proto: https) the session cookie is marked Secure; the
/// same header from anyone else is ignored.
async fn session_cookies_are_secure_over_tls(db: TestDb) {
    let second = accord_tests::TestDb::new(db.kind()).expect("a second database");
    for (db, proxies, secure) in [(db, vec![], false), (second, vec!["127.0.0.1/32"], true)] {
        let data = tempfile::tempdir().unwrap();
        let app = behind_proxies(&db, data.path(), &proxies).await;
        let (status, cookies) = sign_in_with(&app, &[("x-forwarded-proto", "https")]).await;
        assert_eq!(status, 303);
        let cookie = cookies
            .iter()
            .find(|c| c.starts_with("accord_session="))
            .unwrap();
        assert_eq!(
            cookie.contains("Secure"),
            secure,
            "trusted proxies {proxies:?}: {cookie}"
        );
        app.stop().await;
    }
}

on_both_backends!(
    parallel_wrong_passwords_meet_the_limit_first,
    super::parallel_wrong_passwords_meet_the_limit_first
);

/// Twelve wrong passwords at once for one account: five are checked (401), the rest are refused
/// before any hash is checked (429), and the account is locked by exactly one ledger entry.
async fn parallel_wrong_passwords_meet_the_limit_first(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(settings(&db, data.path())).await.unwrap();
    accord::auth::api::service(&app.state)
        .create_user(
            Actor::cli(),
            None,
            "carol@example.org",
            "Carol",
            &[],
            Some("carol's own passphrase"),
        )
        .await
        .unwrap();
    let origin = app.address.clone();
    let mut b = Browser::new(&app);
    let (_, _, page) = b.get("/ui/login").await;
    let csrf = csrf_of(&page);
    let cookie = b.cookie_header();
    let attempts = (0..12).map(|_| {
        let (cookie, csrf, origin) = (cookie.clone(), csrf.clone(), origin.clone());
        let client = app.client();
        let url = app.url("/ui/login");
        async move {
            client
                .post(url)
                .insert_header(("cookie", cookie))
                .insert_header(("origin", origin))
                .send_form(&[
                    ("email", "carol@example.org"),
                    ("password", "a wrong passphrase"),
                    ("csrf", csrf.as_str()),
                ])
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, refused), (5, 7), "{statuses:?}");
    let lockouts = ledger_kinds_all(&app)
        .await
        .into_iter()
        .filter(|k| k == "access.locked_out")
        .count();
    assert_eq!(lockouts, 1);
    // Addresses longer than any e-mail address are refused before they are counted: more of
    // them than the address limit leave this address free to try.
    let long = format!("{}@example.org", "x".repeat(300));
    for _ in 0..21 {
        let (status, _, _) = b
            .post(
                "/ui/login",
                &[
                    ("email", &long),
                    ("password", "whatever it is"),
                    ("csrf", &csrf),
                ],
                Some(&origin),
            )
            .await;
        assert_eq!(status, 401);
    }
    let (status, _, _) = b
        .post(
            "/ui/login",
            &[
                ("email", "someone.else@example.org"),
                ("password", "a wrong passphrase"),
                ("csrf", &csrf),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(status, 401, "the address was not counted");
    app.stop().await;
}

on_both_backends!(
    forwarded_addresses_count_only_behind_a_trusted_proxy,
    super::forwarded_addresses_count_only_behind_a_trusted_proxy
);

/// The sign-in entry records the client's address: the connection's own unless it comes from a
/// configured trusted proxy, whose `X-Forwarded-For` then names the client.
async fn forwarded_addresses_count_only_behind_a_trusted_proxy(db: TestDb) {
    let kind = db.kind();
    let second = accord_tests::TestDb::new(kind).expect("a second database");
    for (db, proxies, expected) in [
        (db, vec![], "127.0.0.1"),
        (second, vec!["127.0.0.1/32"], "203.0.113.5"),
    ] {
        let data = tempfile::tempdir().unwrap();
        let app = behind_proxies(&db, data.path(), &proxies).await;
        let origin = app.address.clone();
        let (status, _) = sign_in_with(
            &app,
            &[
                ("origin", origin.as_str()),
                ("x-forwarded-for", "203.0.113.5"),
            ],
        )
        .await;
        assert_eq!(status, 303);
        let auditor = app.token(&[Role::Auditor]).await;
        let (_, page) = app
            .get_json_with("/v1/ledger/entries?from=0&limit=1000", &auditor)
            .await;
        let logged_in = page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["body"].as_str().unwrap().contains("access.logged_in"))
            .expect("a sign-in entry");
        assert_eq!(
            logged_in["payload"]["data"]["address"], expected,
            "trusted proxies {proxies:?}"
        );
        // The sign-in entry carries the request's id, like every entry a request writes.
        let body: serde_json::Value =
            serde_json::from_str(logged_in["body"].as_str().unwrap()).unwrap();
        assert!(body["request_id"].is_string(), "{body}");
        app.stop().await;
    }
}

/// A server that trusts the forwarding headers of `proxies`, with one user who can sign in.
async fn behind_proxies(db: &TestDb, data: &std::path::Path, proxies: &[&str]) -> TestApp {
    let mut s = settings(db, data);
    s.trusted_proxies = proxies
        .iter()
        .map(|p| accord::config::Cidr::parse(p).unwrap())
        .collect();
    let app = TestApp::spawn(s).await.unwrap();
    accord::auth::api::service(&app.state)
        .create_user(
            Actor::cli(),
            None,
            "proxied@example.org",
            "P",
            &[],
            Some("a long enough password"),
        )
        .await
        .unwrap();
    app
}

/// Signs in as the user of [`behind_proxies`], sending `headers` with the form; the status and
/// the cookies set.
async fn sign_in_with(app: &TestApp, headers: &[(&str, &str)]) -> (u16, Vec<String>) {
    let mut b = Browser::new(app);
    let (_, _, page) = b.get("/ui/login").await;
    let csrf = csrf_of(&page);
    let mut req = app
        .client()
        .post(app.url("/ui/login"))
        .insert_header(("cookie", b.cookie_header()));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let res = req
        .send_form(&[
            ("email", "proxied@example.org"),
            ("password", "a long enough password"),
            ("csrf", csrf.as_str()),
        ])
        .await
        .unwrap();
    let cookies = res
        .headers()
        .get_all("set-cookie")
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    (res.status().as_u16(), cookies)
}
