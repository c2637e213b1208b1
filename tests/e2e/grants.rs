//! Who may mint which token: the policy's `(role:<name>, grant)` permissions, who minted each
//! token, the ledger actor of a token holder, and revocation of everything a disabled person or a
//! revoked token minted. On both databases.

use std::time::Duration;

use accord::auth::model::Role;
use accord::auth::service::{AccessService, TokenOrder};
use accord::ledger::Actor;
use accord_tests::{TestApp, TestDb, settings};
use serde_json::{Value, json};

use crate::on_both_backends;

on_both_backends!(grants_follow_the_policy, super::grants);
on_both_backends!(minted_tokens_go_with_their_minter, super::cascade);
on_both_backends!(
    a_token_minted_elsewhere_works_at_once,
    super::minted_elsewhere
);

/// Every role as the caller × every role requested: 201 exactly when the policy grants the
/// caller both `token:write` and `(role:<requested>, grant)`, else 403 naming what is missing.
async fn grants(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(settings(&db, data.path())).await.unwrap();
    let policy = &app.state.access.policy;
    let token_write = accord::auth::api::TOKEN_WRITE;
    let mut minted = 0;
    for &caller in Role::ALL {
        let token = app.token(&[caller]).await;
        for &wanted in Role::ALL {
            let (status, body) = app
                .post_json_with(
                    "/v1/tokens",
                    &token,
                    &json!({"client": "minted", "roles": [wanted.as_str()], "ttl": "1h"}),
                )
                .await;
            let detail = body["detail"].as_str().unwrap_or_default().to_string();
            if !policy.role_allows(caller, token_write) {
                assert_eq!(status, 403, "{caller} minting {wanted}: {body}");
                assert!(detail.contains("token:write"), "{detail}");
            } else if policy.role_allows(caller, accord::authz::Perm::grant(wanted)) {
                assert_eq!(status, 201, "{caller} minting {wanted}: {body}");
                minted += 1;
            } else {
                assert_eq!(status, 403, "{caller} minting {wanted}: {body}");
                assert!(
                    detail.contains(&format!("role:{wanted}:grant")),
                    "{caller} minting {wanted}: {detail}"
                );
            }
        }
    }
    // The shipped policy: admins mint service and marketer tokens, nothing else.
    assert_eq!(minted, 2);
    let admin = app.token(&[Role::Admin]).await;
    let (status, body) = app
        .post_json_with(
            "/v1/tokens",
            &admin,
            &json!({"client": "crm", "roles": ["service", "auditor", "admin"], "ttl": "366d"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("role:auditor:grant") && detail.contains("role:admin:grant"),
        "{detail}"
    );
    assert!(!detail.contains("role:service:grant"), "{detail}");
    app.stop().await;
}

async fn token_row(app: &TestApp, jti: &str) -> Value {
    let admin = app.token(&[Role::Admin]).await;
    let (status, list) = app.get_json_with("/v1/tokens", &admin).await;
    assert_eq!(status, 200);
    list.as_array()
        .unwrap()
        .iter()
        .find(|t| t["jti"] == jti)
        .cloned()
        .unwrap_or_else(|| panic!("token {jti} is not listed: {list}"))
}

async fn mint_over_http(app: &TestApp, with: &str, client: &str) -> (String, String) {
    let (status, body) = app
        .post_json_with(
            "/v1/tokens",
            with,
            &json!({"client": client, "roles": ["service"], "ttl": "1h"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    (
        body["token"].as_str().unwrap().to_string(),
        body["jti"].as_str().unwrap().to_string(),
    )
}

fn jti_of(token: &str) -> String {
    use base64::Engine;
    let claims = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    claims["jti"].as_str().unwrap().to_string()
}

/// A token records who minted it and acts in the ledger as `service:<client>#<jti>`; disabling the
/// person who minted tokens revokes them (and what they minted in turn), and revoking a token
/// revokes what was minted with it — each a ledger entry that says why.
async fn cascade(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(settings(&db, data.path())).await.unwrap();
    let svc = accord::auth::api::service(&app.state);

    // Tokens minted with a token: minted_by is that token's actor.
    let admin = app.token(&[Role::Admin]).await;
    let admin_jti = jti_of(&admin);
    let (child, child_jti) = mint_over_http(&app, &admin, "child").await;
    let row = token_row(&app, &child_jti).await;
    assert_eq!(
        row["minted_by"],
        format!("service:test-client#{admin_jti}"),
        "{row}"
    );
    let (status, _) = app.get_json_with("/v1/access/me", &child).await;
    assert_eq!(status, 200);

    // A person mints a token (as the web UI or their session would), which mints another.
    let user = svc
        .create_user(
            Actor::cli(),
            None,
            "minter@example.org",
            "Minter",
            &[Role::Admin],
            None,
        )
        .await
        .unwrap();
    let by_user = svc
        .issue_token(
            Actor::user(&user.id),
            None,
            &app.state.access.tokens,
            TokenOrder {
                client: "by-user",
                roles: &[Role::Admin],
                ttl: Duration::from_secs(3600),
            },
            None,
        )
        .await
        .unwrap();
    let (grandchild, grandchild_jti) = mint_over_http(&app, &by_user.token, "grandchild").await;
    assert_eq!(
        token_row(&app, &grandchild_jti).await["minted_by"],
        format!("service:by-user#{}", by_user.jti)
    );

    svc.disable_user(Actor::cli(), None, "minter@example.org")
        .await
        .unwrap();
    for (token, what) in [
        (&by_user.token, "by the user"),
        (&grandchild, "by that token"),
    ] {
        let (status, p) = app.get_json_with("/v1/access/me", token).await;
        assert_eq!(status, 401, "the token minted {what} still works: {p}");
        assert!(p["detail"].as_str().unwrap().contains("revoked"), "{p}");
    }
    assert!(token_row(&app, &by_user.jti).await["revoked_at"].is_string());
    assert!(token_row(&app, &grandchild_jti).await["revoked_at"].is_string());
    let revocations = revocation_payloads(&app).await;
    for jti in [&by_user.jti, &grandchild_jti] {
        let r = revocations
            .iter()
            .find(|p| p["jti"] == jti.as_str())
            .unwrap_or_else(|| panic!("no revocation entry for {jti}: {revocations:?}"));
        assert!(
            r["because"]
                .as_str()
                .unwrap()
                .contains(&format!("user:{}", user.id)),
            "{r}"
        );
    }
    // A mint that was on its way when the minter was disabled mints nothing: checked again
    // under the ledger's lock.
    let late = svc
        .issue_token(
            Actor::user(&user.id),
            None,
            &app.state.access.tokens,
            TokenOrder {
                client: "too-late",
                roles: &[Role::Service],
                ttl: Duration::from_secs(3600),
            },
            None,
        )
        .await;
    assert!(
        matches!(late, Err(accord::error::AppError::Forbidden(_))),
        "{late:?}"
    );
    // Other tokens are untouched.
    let (status, _) = app.get_json_with("/v1/access/me", &child).await;
    assert_eq!(status, 200);

    // Revoking a token revokes what was minted with it.
    let res = app
        .send(
            "DELETE",
            &format!("/v1/tokens/{admin_jti}"),
            Some(&app.token(&[Role::Admin]).await),
            &[],
            None,
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.body);
    let (status, p) = app.get_json_with("/v1/access/me", &child).await;
    assert_eq!(status, 401, "{p}");
    let revocations = revocation_payloads(&app).await;
    let r = revocations
        .iter()
        .find(|p| p["jti"] == child_jti.as_str())
        .unwrap();
    assert!(r["because"].as_str().unwrap().contains(&admin_jti), "{r}");
    app.stop().await;
}

async fn revocation_payloads(app: &TestApp) -> Vec<Value> {
    let auditor = app.token(&[Role::Auditor]).await;
    let mut out = Vec::new();
    let mut from = 0u64;
    loop {
        let (status, page) = app
            .get_json_with(
                &format!("/v1/ledger/entries?from={from}&limit=1000"),
                &auditor,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        for e in page["entries"].as_array().unwrap() {
            let body: Value = serde_json::from_str(e["body"].as_str().unwrap()).unwrap();
            if body["kind"] == "access.token_revoked" {
                out.push(e["payload"]["data"].clone());
            }
        }
        match page["next"].as_u64() {
            Some(n) => from = n,
            None => break,
        }
    }
    out
}

/// A token minted by another process (the CLI, another instance) is usable at once: the instance
/// looks it up before refusing it. A signed token on no record stays refused.
async fn minted_elsewhere(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(settings(&db, data.path())).await.unwrap();
    // A service without the running instance's access state, as the CLI has.
    let elsewhere = AccessService::new(
        app.ledger.clone(),
        app.pool.clone(),
        app.state.clock.clone(),
        None,
    );
    for n in 0..3 {
        let issued = elsewhere
            .issue_token(
                Actor::cli(),
                None,
                &app.state.access.tokens,
                TokenOrder {
                    client: &format!("tour-{n}"),
                    roles: &[Role::Service],
                    ttl: Duration::from_secs(3600),
                },
                None,
            )
            .await
            .unwrap();
        let (status, me) = app.get_json_with("/v1/access/me", &issued.token).await;
        assert_eq!(status, 200, "a fresh token is refused: {me}");
    }
    let rogue = app.unrecorded_token(&[Role::Admin]);
    for _ in 0..3 {
        let (status, p) = app.get_json_with("/v1/access/me", &rogue).await;
        assert_eq!(status, 401, "{p}");
        assert!(
            p["detail"].as_str().unwrap().contains("not on record"),
            "{p}"
        );
    }
    app.stop().await;
}
