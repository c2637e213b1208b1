//! `Idempotency-Key` on every writing POST: a retry gets the first answer again (the same token
//! text for a token), marked as replayed, and writes nothing; a key reused for another request is
//! refused; two requests with one key at once write once. Answers are ledger entries, so
//! `accord ledger replay --check` rebuilds them, and an erasure takes those naming the subject.

use std::sync::Arc;
use std::time::Duration;

use accord::auth::model::Role;
use accord::clock::{Clock, ManualClock, Timestamp};
use accord::commands;
use accord::db::schema::ledger_payloads;
use accord_tests::{Reply, TestApp, TestDb, settings};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::on_both_backends;

/// A caller of the API: one token.
struct Caller<'a> {
    app: &'a TestApp,
    token: &'a str,
}

impl Caller<'_> {
    /// A POST with an `Idempotency-Key`.
    async fn keyed(&self, path: &str, key: &str, body: Option<(&str, String)>) -> Reply {
        let body = body.map(|(ct, b)| (ct, b.into_bytes()));
        self.app
            .send(
                "POST",
                path,
                Some(self.token),
                &[("Idempotency-Key", key)],
                body,
            )
            .await
    }

    /// Sends the same POST twice with one key; the second is the first answer again and writes
    /// nothing.
    async fn twice(&self, path: &str, key: &str, body: Option<(&str, String)>) -> Reply {
        let send = || self.keyed(path, key, body.clone());
        let first = send().await;
        assert!(
            first.status < 300,
            "{path}: {} {}",
            first.status,
            first.body
        );
        assert_eq!(first.header("idempotent-replayed"), None);
        let size = self.app.ledger.size();
        let again = send().await;
        assert_eq!(again.status, first.status, "{path}: {}", again.body);
        assert_eq!(again.json(), first.json(), "{path}");
        assert_eq!(again.header("idempotent-replayed"), Some("true"), "{path}");
        assert_eq!(
            self.app.ledger.size(),
            size,
            "{path}: a replay writes nothing"
        );
        first
    }

    /// Sends an import twice with one key when it writes nothing: both are answered alike,
    /// neither as a replay (no answer was kept).
    async fn twice_unkept(&self, path: &str, key: &str, body: String) -> Value {
        let send = || self.keyed(path, key, Some(("application/x-ndjson", body.clone())));
        let size = self.app.ledger.size();
        let first = send().await;
        let again = send().await;
        assert_eq!(first.status, 200, "{}", first.body);
        assert_eq!(again.json(), first.json());
        assert_eq!(again.header("idempotent-replayed"), None);
        assert_eq!(self.app.ledger.size(), size);
        first.json()
    }
}

/// Replays the ledger (which must match the live tables) and counts the kept answers: (live,
/// replayed).
fn replayed_answers(s: &accord::config::Settings) -> (usize, usize) {
    let report = commands::replay_check(s, |_, _| {}).unwrap();
    assert!(report.ok(), "{:?}", report.differences);
    crate::support::replayed_rows(&report, "idempotency_keys")
}

/// A newsletter grant by e-mail, as a JSON body.
fn grant(subject: &str) -> Option<(&'static str, String)> {
    json_body(
        json!({"subject": subject, "purpose": "newsletter", "channel": "email", "decision": "granted"}),
    )
}

fn json_body(v: Value) -> Option<(&'static str, String)> {
    Some(("application/json", v.to_string()))
}

async fn every_post(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let s = settings(&db, data.path());
    let app = TestApp::spawn(s.clone()).await.unwrap();
    let token = app
        .token(&[Role::Admin, Role::ComplianceOfficer, Role::Service])
        .await;
    let t = token.as_str();
    let caller = Caller {
        app: &app,
        token: t,
    };

    // Without a key, creating a purpose twice is refused the second time; with one, the retry is
    // the first answer.
    for (key, purpose) in [("p-1", "newsletter"), ("p-2", "old")] {
        let body = json_body(json!({"key": purpose, "title": purpose}));
        let r = caller.twice("/v1/purposes", key, body).await;
        assert_eq!(r.status, 201);
    }
    // A key belongs to the credential that sent it: another token using it asks anew.
    let other = app.token(&[Role::ComplianceOfficer]).await;
    let r = app
        .send(
            "POST",
            "/v1/purposes",
            Some(&other),
            &[("Idempotency-Key", "p-1")],
            json_body(json!({"key": "newsletter", "title": "newsletter"}))
                .map(|(ct, b)| (ct, b.into_bytes())),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["type"], "/problems/conflict/exists");
    let r = caller.twice("/v1/purposes/old/retire", "p-3", None).await;
    assert_eq!(r.json()["status"], "retired", "{}", r.body);
    let r = caller.twice("/v1/notices",
        "n-1",
        json_body(json!({"key": "privacy", "version": "v1", "text": "We use …", "url": "https://example.org/p"})),
    )
    .await;
    assert_eq!(r.status, 201);

    // A decision: its answer is an entry of its own, right after the record's.
    let before = app.ledger.size();
    let r = caller.twice("/v1/consents", "c-1", grant("s-1")).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["seq"], before, "{}", r.body);
    assert_eq!(app.ledger.size(), before + 2, "the record and its answer");
    // The same key for another request is refused, and so is a malformed key.
    let other = app
        .send(
            "POST",
            "/v1/consents",
            Some(t),
            &[("Idempotency-Key", "c-1")],
            Some(("application/json", json!({"subject": "s-9", "purpose": "newsletter", "channel": "email", "decision": "granted"}).to_string().into_bytes())),
        )
        .await;
    assert_eq!(other.status, 409, "{}", other.body);
    assert_eq!(other.json()["type"], "/problems/conflict/key-reused");
    let long = "k".repeat(201);
    for bad in ["", long.as_str(), "with space"] {
        let r = app
            .send(
                "POST",
                "/v1/consents",
                Some(t),
                &[("Idempotency-Key", bad)],
                Some(("application/json", json!({"subject": "s-9", "purpose": "newsletter", "channel": "email", "decision": "granted"}).to_string().into_bytes())),
            )
            .await;
        assert_eq!(r.status, 422, "{bad:?}: {}", r.body);
        assert!(r.body.contains("Idempotency-Key"), "{}", r.body);
    }

    // An import: the retry answers "3 recorded" again (a run without a key would find 3 duplicates).
    let rows: String = (0..3)
        .map(|i| format!("{{\"subject\":\"i-{i}\",\"purpose\":\"newsletter\",\"channel\":\"sms\",\"decision\":\"granted\",\"collected_at\":\"2026-01-01T00:00:00Z\"}}\n"))
        .collect();
    let r = caller
        .twice(
            "/v1/consents/import",
            "i-1",
            Some(("application/x-ndjson", rows.clone())),
        )
        .await;
    assert_eq!(
        (r.json()["recorded"].clone(), r.json()["duplicates"].clone()),
        (json!(3), json!(0))
    );
    // The same rows under another key wrote nothing: no answer is kept, and asking again answers alike.
    let r = caller
        .twice_unkept("/v1/consents/import", "i-2", rows)
        .await;
    assert_eq!(r["duplicates"], 3, "{r}");

    // A token: the retry gets the same token text, and it works.
    let r = caller
        .twice(
            "/v1/tokens",
            "t-1",
            json_body(json!({"client": "crm", "roles": ["marketer"]})),
        )
        .await;
    assert_eq!(r.status, 201);
    let minted = r.json()["token"].as_str().unwrap().to_string();
    let (status, me) = app.get_json_with("/v1/access/me", &minted).await;
    assert_eq!(status, 200, "{me}");
    // Nothing in the ledger holds the token's text, nor the keys as sent.
    let mut c = db.connect();
    let payloads: Vec<String> = ledger_payloads::table
        .select(ledger_payloads::payload)
        .load::<Option<String>>(&mut c)
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    assert!(payloads.iter().all(|p| !p.contains(&minted)));
    assert!(payloads.iter().all(|p| !p.contains("\"t-1\"")));
    assert!(
        payloads.iter().any(|p| p.contains("claims")),
        "the token's answer is recorded"
    );

    // Bodies read by hand keep the JSON extractor's rules: `+json` types are JSON, and one too
    // large is a problem document.
    let r = app
        .send(
            "POST",
            "/v1/tokens",
            Some(t),
            &[],
            Some((
                "application/vnd.accord+json",
                json!({"client": "crm2", "roles": ["marketer"]})
                    .to_string()
                    .into_bytes(),
            )),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let big = vec![b' '; s.max_body_bytes + 1];
    let r = app
        .send(
            "POST",
            "/v1/notices",
            Some(t),
            &[],
            Some(("application/json", big)),
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));

    // Two requests with one key at once: one writes, the other is its answer.
    let body = json!({"subject": "s-2", "purpose": "newsletter", "channel": "push", "decision": "granted"}).to_string();
    let size = app.ledger.size();
    let send = || {
        app.send(
            "POST",
            "/v1/consents",
            Some(t),
            &[("Idempotency-Key", "race")],
            Some(("application/json", body.clone().into_bytes())),
        )
    };
    let (a, b) = tokio::join!(send(), send());
    assert_eq!((a.status, b.status), (201, 201), "{} / {}", a.body, b.body);
    assert_eq!(a.json(), b.json());
    assert_eq!(app.ledger.size(), size + 2, "one record and its answer");

    // Erasing s-1 takes the answer that names them; the erasure's own answer stays.
    let r = caller.twice("/v1/subjects/s-1/erase", "e-1", None).await;
    assert_eq!(r.status, 200);
    app.stop().await;

    // p-1, p-2, p-3, n-1, i-1, t-1, race, e-1 (c-1 went with s-1).
    assert_eq!(replayed_answers(&s), (8, 8));
    let verified = commands::ledger::verify(&s, &[]).unwrap();
    assert!(verified.is_ok(), "{verified:?}");

    // An answer changed behind Accord's back is named (the import's: keys are kept hashed).
    c.batch_execute(
        "UPDATE idempotency_keys SET status = 202 WHERE response LIKE '%\"duplicates\"%';",
    )
    .unwrap();
    let report = commands::replay_check(&s, |_, _| {}).unwrap();
    assert_eq!(report.total_differences, 1, "{:?}", report.differences);
    let d = &report.differences[0];
    assert_eq!(
        (
            d.table,
            d.column.as_deref(),
            d.live.as_deref(),
            d.replayed.as_deref()
        ),
        ("idempotency_keys", Some("status"), Some("202"), Some("200")),
        "{d}"
    );
}

/// An answer that expired and was replaced by one naming a subject, who is then erased: the live
/// table holds neither, and neither does the replay.
async fn expired_then_erased(db: TestDb) {
    let day = 24 * 3600 * 1_000_000;
    let now = accord::clock::SystemClock.now().micros();
    let clock = Arc::new(ManualClock::new(Timestamp(now)));
    let data = tempfile::tempdir().unwrap();
    let s = settings(&db, data.path());
    let app = TestApp::spawn_with_clock(s.clone(), clock.clone())
        .await
        .unwrap();
    let long = Duration::from_secs(3 * 86_400);
    let token = app
        .token_valid_for(&[Role::ComplianceOfficer, Role::Service], long)
        .await;
    let t = token.as_str();
    let caller = Caller {
        app: &app,
        token: t,
    };
    caller
        .twice(
            "/v1/purposes",
            "k",
            json_body(json!({"key": "newsletter", "title": "Newsletter"})),
        )
        .await;
    clock.advance_micros(day + 1);
    let r = caller.twice("/v1/consents", "k", grant("s-1")).await;
    assert_eq!(r.status, 201, "an expired answer is not replayed");
    let (status, v) = app
        .post_json_with("/v1/subjects/s-1/erase", t, &json!({}))
        .await;
    assert_eq!(status, 200, "{v}");
    app.stop().await;
    assert_eq!(replayed_answers(&s), (0, 0));
}

on_both_backends!(idempotent_posts, super::every_post);
on_both_backends!(expired_answers_replay, super::expired_then_erased);
