//! `accord ledger replay --check`: every projected table rebuilt from the ledger alone equals the
//! live one after a mixed workload (erasure included), and a row changed, added or deleted behind
//! Accord's back in any projected table is named.

use accord::auth::model::Role;
use accord::auth::service::TokenOrder;
use accord::commands;
use accord::ledger::Actor;
use accord::replay::Difference;
use accord_tests::{TestApp, TestDb, settings};
use diesel::connection::SimpleConnection;
use serde_json::json;

use crate::on_both_backends;

async fn replay(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let s = settings(&db, data.path());
    let app = TestApp::spawn(s.clone()).await.unwrap();
    let officer = app.token(&[Role::ComplianceOfficer, Role::Service]).await;
    let post = |path: &'static str, body: serde_json::Value| {
        let (app, officer) = (&app, &officer);
        async move { app.post_json_with(path, officer, &body).await }
    };
    // Purposes (a new one, a new version, a retirement), a notice, decisions, an import, an erasure.
    let (status, v) = post(
        "/v1/purposes",
        json!({"key": "newsletter", "title": "Newsletter"}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = post("/v1/purposes", json!({"key": "old", "title": "Old"})).await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = post("/v1/purposes/old/retire", json!({})).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = post(
        "/v1/notices",
        json!({"key": "privacy", "version": "v1", "text": "We use your data for …", "url": "https://example.org/privacy"}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    for (subject, decision) in [("s-1", "granted"), ("s-2", "denied"), ("s-1", "withdrawn")] {
        let (status, v) = post(
            "/v1/consents",
            json!({"subject": subject, "purpose": "newsletter", "channel": "email", "decision": decision,
                   "notice_key": "privacy", "notice_version": "v1", "evidence": {"ip": "192.0.2.1"}}),
        )
        .await;
        assert_eq!(status, 201, "{v}");
    }
    let rows: String = (0..30)
        .map(|i| format!("{{\"subject\":\"i-{i}\",\"purpose\":\"newsletter\",\"channel\":\"sms\",\"decision\":\"granted\"}}\n"))
        .collect();
    let r = app
        .send(
            "POST",
            "/v1/consents/import",
            Some(&officer),
            &[],
            Some(("application/x-ndjson", rows.into_bytes())),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (status, v) = post("/v1/subjects/s-2/erase", json!({})).await;
    assert_eq!(status, 200, "{v}");
    // Access: a user with a password, roles changed, a lockout-free sign-out, tokens minted and
    // revoked, the user disabled (revoking what they minted).
    let access = accord::auth::api::service(&app.state);
    let user = access
        .create_user(
            Actor::cli(),
            None,
            "ops@example.org",
            "Ops",
            &[Role::Admin],
            Some("correct horse battery"),
        )
        .await
        .unwrap();
    access
        .change_roles(Actor::cli(), None, "ops@example.org", &[Role::Auditor], &[])
        .await
        .unwrap();
    access.logout(&user.id, None).await.unwrap();
    let minted = access
        .issue_token(
            Actor::user(&user.id),
            None,
            &app.state.access.tokens,
            TokenOrder {
                client: "crm",
                roles: &[Role::Service],
                ttl: std::time::Duration::from_secs(3600),
            },
            None,
        )
        .await
        .unwrap();
    let spare = app.token(&[Role::Marketer]).await;
    let (status, v) = app.get_json_with("/v1/access/me", &spare).await;
    assert_eq!(status, 200, "{v}");
    access
        .create_setup_link(Actor::cli(), "set_password", Some(user.id.clone()))
        .await
        .unwrap();
    // Two disables at once: one is recorded, the other finds it done (checked under the lock).
    let (first, second) = tokio::join!(
        access.disable_user(Actor::cli(), None, "ops@example.org"),
        access.disable_user(Actor::cli(), None, "ops@example.org"),
    );
    let codes: Vec<_> = [&first, &second]
        .iter()
        .map(|r| r.as_ref().err().and_then(|e| e.conflict_code()))
        .collect();
    assert!(
        codes.contains(&None) && codes.contains(&Some(accord::error::ConflictCode::Done)),
        "{first:?} / {second:?}"
    );
    app.stop().await;

    let report = commands::replay_check(&s, |_, _| {}).unwrap();
    assert!(report.ok(), "{:?}", report.differences);
    assert_eq!(
        report.redacted, 1,
        "the erased subject's one entry: {report:?}"
    );
    let rows = |table: &str| crate::support::replayed_rows(&report, table);
    assert_eq!(rows("purposes").0, rows("purposes").1);
    assert_eq!(
        rows("purposes").0,
        3,
        "newsletter, and old in two versions: {report:?}"
    );
    assert_eq!(rows("consent_records"), (32, 32), "s-2's record was erased");
    assert_eq!(rows("users"), (1, 1));
    assert_eq!(rows("user_roles"), (2, 2));
    assert!(rows("api_tokens").0 >= 3, "{report:?}");
    assert_eq!(rows("setup_links").0, rows("setup_links").1);
    assert_eq!(rows("api_tokens").0, rows("api_tokens").1);
    assert!(!minted.token.is_empty());

    // Behind Accord's back: a change, an addition and a deletion, each named.
    let mut c = db.connect();
    c.batch_execute(
        "UPDATE consent_records SET decision = 'denied' WHERE subject = 'i-3'; \
         INSERT INTO notices (key, version, text_hash, url, effective_at, at, seq) \
           VALUES ('forged', 'v9', 'aa', 'https://example.org', 0, 0, 99999); \
         DELETE FROM user_roles WHERE role = 'auditor'; \
         UPDATE users SET password_hash = 'changed';",
    )
    .unwrap();
    let report = commands::replay_check(&s, |_, _| {}).unwrap();
    assert!(!report.ok());
    let named = |table: &str, column: Option<&str>| -> Option<&Difference> {
        report
            .differences
            .iter()
            .find(|d| d.table == table && d.column.as_deref() == column)
    };
    let changed = named("consent_records", Some("decision")).expect("the changed decision");
    assert_eq!(
        (changed.live.as_deref(), changed.replayed.as_deref()),
        (Some("denied"), Some("granted")),
        "{changed}"
    );
    let added = named("notices", None).expect("the added notice");
    assert!(added.key.contains("key=forged"), "{added}");
    assert!(added.replayed.is_none());
    let deleted = named("user_roles", None).expect("the deleted grant");
    assert!(
        deleted.key.contains("role=auditor") && deleted.live.is_none(),
        "{deleted}"
    );
    assert!(
        named("users", Some("password_hash")).is_none(),
        "not replayable, not compared"
    );
    assert_eq!(report.total_differences, 3, "{:?}", report.differences);
    // Large tables are compared a page at a time: pages of 7 (the 32 records and one more make
    // five) find the same differences, and a row only the live side holds past the last page.
    let mut c = db.connect();
    c.batch_execute(
        "INSERT INTO consent_records (seq, subject, purpose, channel, decision, legal_basis, method, \
           collected_at, gpc, fingerprint) \
         VALUES (99998, 'ghost', 'newsletter', 'email', 'granted', 'consent', 'api', 0, false, 'f');",
    )
    .unwrap();
    let paged = commands::ledger::replay_check_paged(&s, 7, |_, _| {}).unwrap();
    assert_eq!(paged.total_differences, 4, "{:?}", paged.differences);
    assert!(
        paged
            .differences
            .iter()
            .any(|d| d.table == "consent_records" && d.key == "seq=99998" && d.replayed.is_none()),
        "{:?}",
        paged.differences
    );
    let records = paged
        .tables
        .iter()
        .find(|t| t.0 == "consent_records")
        .unwrap();
    assert_eq!((records.1, records.2), (33, 32));
}

on_both_backends!(replay_rebuilds_every_table, super::replay);
