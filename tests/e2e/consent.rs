//! Consent through the HTTP API: purposes and notices, recording (GPC, idempotency, duplicates),
//! checks now and as of a past moment, receipts verified offline, bulk import, erasure, validation,
//! and a second instance reading its own writes with `min_seq`.

use accord::auth::model::Role;
use accord::clock::SystemClock;
use accord::commands;
use accord_audit::note::NoteVerifier;
use accord_tests::{TestApp, TestDb, policies_dir, settings};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{each, json_lines, problem_field};

pub struct World {
    pub app: TestApp,
    /// compliance_officer: purposes, notices, consent, erasure.
    pub officer: String,
    /// service: records and checks consent.
    pub service: String,
    pub _data: tempfile::TempDir,
}

pub async fn world(db: &TestDb) -> World {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(settings(db, data.path())).await.unwrap();
    let officer = app.token(&[Role::ComplianceOfficer]).await;
    let service = app.token(&[Role::Service]).await;
    World {
        app,
        officer,
        service,
        _data: data,
    }
}

impl World {
    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.app.post_json_with(path, token, &body).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.app.get_json_with(path, &self.service).await
    }

    pub async fn purpose(&self, body: Value) {
        let (status, v) = self.post("/v1/purposes", &self.officer, body).await;
        assert_eq!(status, 201, "{v}");
    }

    pub async fn record(&self, body: Value) -> Value {
        let (status, v) = self.post("/v1/consents", &self.service, body).await;
        assert_eq!(status, 201, "{v}");
        v
    }

    pub async fn check(&self, subject: &str, purpose: &str, channel: &str) -> Value {
        let (status, v) = self
            .get(&format!(
                "/v1/consents/check?subject={subject}&purpose={purpose}&channel={channel}"
            ))
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }
}

/// Checkpoints published so far.
pub async fn checkpoint_count(app: &TestApp) -> i64 {
    let pool = app.pool.clone();
    actix_web::web::block(move || {
        use accord::db::schema::ledger_checkpoints::dsl::*;
        use diesel::prelude::*;
        let mut c = pool.get().unwrap();
        ledger_checkpoints
            .count()
            .get_result::<i64>(&mut c)
            .unwrap()
    })
    .await
    .unwrap()
}

fn email_purpose() -> Value {
    json!({"key": "marketing.email", "title": "E-mail marketing", "legal_basis": "consent",
           "lifetime_days": 365, "gpc_applies": true,
           "dpv_iri": "https://w3id.org/dpv#DirectMarketing"})
}

async fn tour(db: TestDb) {
    let w = world(&db).await;
    w.purpose(email_purpose()).await;
    let (status, v) = w
        .post(
            "/v1/notices",
            &w.officer,
            json!({"key": "privacy", "version": "2026-01", "text": "We use your e-mail address to…",
                   "url": "https://example.com/privacy/2026-01", "effective_at": "2026-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    // The same notice again records nothing; other content under the same version is refused.
    let (status, v) = w
        .post(
            "/v1/notices",
            &w.officer,
            json!({"key": "privacy", "version": "2026-01", "text": "We use your e-mail address to…",
                   "url": "https://example.com/privacy/2026-01", "effective_at": "2026-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!((status, v["changed"].clone()), (200, json!(false)), "{v}");
    let (status, v) = w
        .post(
            "/v1/notices",
            &w.officer,
            json!({"key": "privacy", "version": "2026-01", "text": "Other text",
                   "url": "https://example.com/privacy/2026-01", "effective_at": "2026-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(v["type"], "/problems/conflict/immutable", "{v}");

    let granted = w
        .record(json!({"subject": "s-1", "purpose": "marketing.email", "channel": "email",
                       "decision": "granted", "method": "web_form", "notice_key": "privacy",
                       "notice_version": "2026-01", "collected_at": "2026-11-01T10:00:00Z",
                       "jurisdiction": "DE", "source": "shop",
                       "evidence": {"form_id": "signup", "ip": "192.0.2.7", "user_agent": "Firefox"}}))
        .await;
    let grant_seq = granted["seq"].as_u64().unwrap();
    assert_eq!(granted["leaf_hash"].as_str().unwrap().len(), 64);
    // The purpose's default lifetime gives the expiry.
    assert_eq!(
        granted["record"]["expires_at"],
        "2027-11-01T10:00:00.000000Z"
    );

    let a = w.check("s-1", "marketing.email", "email").await;
    assert_eq!(
        (a["allowed"].clone(), a["reason"].clone(), a["seq"].clone()),
        (json!(true), json!("granted"), json!(grant_seq))
    );
    assert_eq!(a["legal_basis"], "consent");
    // No record for another channel, nor for another subject.
    assert_eq!(
        w.check("s-1", "marketing.email", "sms").await["reason"],
        "no_record"
    );
    assert_eq!(
        w.check("s-2", "marketing.email", "email").await["reason"],
        "no_record"
    );

    let withdrawn = w
        .record(
            json!({"subject": "s-1", "purpose": "marketing.email", "channel": "email",
                       "decision": "withdrawn", "collected_at": "2026-11-10T10:00:00Z"}),
        )
        .await;
    let a = w.check("s-1", "marketing.email", "email").await;
    assert_eq!(
        (a["allowed"].clone(), a["reason"].clone()),
        (json!(false), json!("withdrawn"))
    );
    assert_eq!(a["seq"], withdrawn["seq"]);
    // As of before the withdrawal, from history.
    let (_, a) = w
        .get("/v1/consents/check?subject=s-1&purpose=marketing.email&channel=email&at=2026-11-05T00:00:00Z")
        .await;
    assert_eq!(
        (a["allowed"].clone(), a["seq"].clone()),
        (json!(true), json!(grant_seq))
    );
    // And before anything was collected.
    let (_, a) = w
        .get("/v1/consents/check?subject=s-1&purpose=marketing.email&channel=email&at=2026-10-01T00:00:00Z")
        .await;
    assert_eq!(a["reason"], "no_record");

    // The same decision twice is one record.
    let (status, dup) = w
        .post(
            "/v1/consents",
            &w.service,
            json!({"subject": "s-1", "purpose": "marketing.email", "channel": "email",
                   "decision": "withdrawn", "collected_at": "2026-11-10T10:00:00Z"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (dup["duplicate"].clone(), dup["seq"].clone()),
        (json!(true), withdrawn["seq"].clone())
    );

    // Global Privacy Control: a grant carrying the signal is refused; an opt-out is noted.
    let gpc = |body: Value| {
        let app = &w.app;
        let token = w.service.clone();
        async move {
            app.send(
                "POST",
                "/v1/consents",
                Some(&token),
                &[("Sec-GPC", "1")],
                Some(("application/json", body.to_string().into_bytes())),
            )
            .await
        }
    };
    let r = gpc(json!({"subject": "s-3", "purpose": "marketing.email", "channel": "email", "decision": "granted"})).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["type"], "/problems/conflict/state");
    assert_eq!(problem_field(&r.json()), Some("decision"));
    assert!(r.body.contains("Global Privacy Control"), "{}", r.body);
    let r = gpc(json!({"subject": "s-3", "purpose": "marketing.email", "channel": "any"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    assert_eq!(
        (
            v["record"]["decision"].clone(),
            v["record"]["method"].clone(),
            v["record"]["gpc"].clone()
        ),
        (json!("withdrawn"), json!("gpc"), json!(true))
    );
    assert_eq!(
        w.check("s-3", "marketing.email", "push").await["reason"],
        "withdrawn"
    );

    // Idempotency-Key: a retry replays the first answer and writes nothing.
    let body = json!({"subject": "s-4", "purpose": "marketing.email", "channel": "sms", "decision": "granted"});
    let send = |key: &'static str, body: Value| {
        let app = &w.app;
        let token = w.service.clone();
        async move {
            app.send(
                "POST",
                "/v1/consents",
                Some(&token),
                &[("Idempotency-Key", key)],
                Some(("application/json", body.to_string().into_bytes())),
            )
            .await
        }
    };
    let first = send("k-1", body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let size = w.app.ledger.size();
    let again = send("k-1", body.clone()).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.json(), first.json());
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(w.app.ledger.size(), size, "a replay writes nothing");
    let other = send("k-1", json!({"subject": "s-5", "purpose": "marketing.email", "channel": "sms", "decision": "granted"})).await;
    assert_eq!(other.status, 409, "{}", other.body);
    assert_eq!(other.json()["type"], "/problems/conflict/key-reused");

    // Current state and history of a subject.
    let (_, state) = w.get("/v1/subjects/s-1/consents").await;
    assert_eq!(state["consents"][0]["state"]["reason"], "withdrawn");
    let (_, hist) = w.get("/v1/subjects/s-1/consents/history").await;
    let events = hist["history"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["record"]["notice_version"], "2026-01");
    assert_eq!(events[0]["record"]["evidence"]["form_id"], "signup");
    assert_eq!(events[1]["seq"], withdrawn["seq"]);

    // The receipt verifies offline against the key the auditor pins.
    let (status, receipt) = w
        .get(&format!("/v1/consents/receipts/{grant_seq}?subject=s-1"))
        .await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["record"]["pii_principal_id"], "s-1");
    assert_eq!(
        receipt["record"]["notice"]["url"],
        "https://example.com/privacy/2026-01"
    );
    let auditor = w.app.token(&[Role::Auditor]).await;
    let (_, _, vkey) = w.app.get_with("/v1/ledger/key", &auditor).await;
    let key = NoteVerifier::parse(vkey.trim()).unwrap();
    let report = accord_audit::receipt::verify_receipt(&receipt.to_string(), Some(&key)).unwrap();
    assert!(report.key_pinned);
    assert_eq!(report.state, "granted");
    // Any edit to what the receipt claims is caught.
    let mut forged = receipt.clone();
    forged["record"]["state"] = json!("withdrawn");
    let e = accord_audit::receipt::verify_receipt(&forged.to_string(), Some(&key)).unwrap_err();
    assert!(e.contains("record.state"), "{e}");
    let mut forged = receipt.clone();
    forged["proof"]["payload"] = json!(
        receipt["proof"]["payload"]
            .as_str()
            .unwrap()
            .replace("s-1", "s-9")
    );
    assert!(accord_audit::receipt::verify_receipt(&forged.to_string(), Some(&key)).is_err());
    // A service gets receipts of the subject it names only; consent:receipt reads any.
    let (status, p) = w.get(&format!("/v1/consents/receipts/{grant_seq}")).await;
    assert_eq!(status, 422, "{p}");
    assert_eq!(problem_field(&p), Some("subject"));
    let (status, _) = w
        .get(&format!("/v1/consents/receipts/{grant_seq}?subject=s-2"))
        .await;
    assert_eq!(status, 404);
    let (status, _) = w
        .app
        .get_json_with(&format!("/v1/consents/receipts/{grant_seq}"), &w.officer)
        .await;
    assert_eq!(status, 200);
    // A seq that is not a consent record has no receipt, and nothing is published for it.
    let checkpoints = checkpoint_count(&w.app).await;
    let (status, _) = w.get("/v1/consents/receipts/0?subject=s-1").await;
    assert_eq!(status, 404);
    let far = w.app.ledger.size() + 1000;
    let (status, _) = w
        .app
        .get_json_with(&format!("/v1/consents/receipts/{far}"), &w.officer)
        .await;
    assert_eq!(status, 404);
    assert_eq!(checkpoint_count(&w.app).await, checkpoints);

    // Batch checks answer in order.
    let (status, v) = w
        .post(
            "/v1/consents/check",
            &w.service,
            json!({"items": [
                {"subject": "s-1", "purpose": "marketing.email", "channel": "email"},
                {"subject": "s-1", "purpose": "marketing.email", "channel": "email", "at": "2026-11-05T00:00:00Z"},
                {"subject": "s-4", "purpose": "marketing.email", "channel": "sms"},
                {"subject": "nobody", "purpose": "marketing.email", "channel": "sms"}
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        each(&v["results"], "reason"),
        ["withdrawn", "granted", "granted", "no_record"]
    );

    // Filter: a send list in, the permitted subset out, counts in the trailer.
    let send_list = |media: &'static str, body: &'static [u8]| {
        let w = &w;
        async move {
            let r = w
                .app
                .send(
                    "POST",
                    "/v1/consents/filter?purpose=marketing.email&channel=sms",
                    Some(&w.service),
                    &[],
                    Some((media, body.to_vec())),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            json_lines(&r.body)
        }
    };
    let lines = send_list(
        "application/x-ndjson",
        b"\"s-1\"\n\"s-4\"\n{\"subject\":\"s-3\"}\n\"nobody\"",
    )
    .await;
    assert_eq!(lines[0], json!("s-4"));
    let trailer = &lines[1]["trailer"];
    assert_eq!(trailer["checked"], 4);
    assert_eq!(trailer["allowed"], 1);
    // The same list as plain text, one id per line, taken as written (quotes are part of an id).
    let plain = send_list("text/plain", b"s-1\r\n s-4 \n\ns-3\n\"s-4\"\n").await;
    assert_eq!(plain[0], json!("s-4"));
    assert_eq!(plain[1]["trailer"]["checked"], 4, "{plain:?}");
    assert_eq!(plain[1]["trailer"]["allowed"], 1, "{plain:?}");
    assert_eq!(trailer["reasons"]["no_record"], 2);
    assert_eq!(trailer["reasons"]["withdrawn"], 1);

    // Retiring a purpose: checks say so, new records are refused, history stays.
    let (status, v) = w
        .post("/v1/purposes/marketing.email/retire", &w.officer, json!({}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        w.check("s-4", "marketing.email", "sms").await["reason"],
        "purpose_retired"
    );
    let (status, v) = w
        .post(
            "/v1/consents",
            &w.service,
            json!({"subject": "s-6", "purpose": "marketing.email", "channel": "sms", "decision": "granted"}),
        )
        .await;
    assert_eq!((status, problem_field(&v)), (409, Some("purpose")), "{v}");
    let (_, p) = w.get("/v1/purposes/marketing.email").await;
    assert_eq!(p["versions"].as_array().unwrap().len(), 2);
    assert_eq!(p["purpose"]["status"], "retired");
    // As of before the retirement the answer came from the records.
    let (_, a) = w
        .get("/v1/consents/check?subject=s-1&purpose=marketing.email&channel=email&at=2026-11-05T00:00:00Z")
        .await;
    assert_eq!(a["reason"], "granted");

    // A restarted instance loads the same state.
    let s = w.app.settings.clone();
    w.app.stop().await;
    let app = TestApp::spawn(s.clone()).await.unwrap();
    let (_, a) = app
        .get_json_with(
            "/v1/consents/check?subject=s-1&purpose=marketing.email&channel=email&at=2026-11-05T00:00:00Z",
            &w.service,
        )
        .await;
    assert_eq!(a["seq"], json!(grant_seq));
    app.stop().await;
    assert!(commands::verify(&s, &[]).unwrap().is_ok());
}

on_both_backends!(consent_tour, super::tour);

async fn validation(db: TestDb) {
    let w = world(&db).await;
    w.purpose(email_purpose()).await;
    w.purpose(json!({"key": "old.purpose", "title": "Old"}))
        .await;
    let (status, _) = w
        .post("/v1/purposes/old.purpose/retire", &w.officer, json!({}))
        .await;
    assert_eq!(status, 200);
    let size = w.app.ledger.size();
    let ok = json!({"subject": "s-1", "purpose": "marketing.email", "channel": "email", "decision": "granted"});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            with("purpose", json!("nope")),
            "purpose",
            "not a registered purpose",
        ),
        (with("purpose", json!("old.purpose")), "purpose", "retired"),
        (with("channel", json!("fax")), "channel", "use one of"),
        (with("decision", json!("maybe")), "decision", "use one of"),
        (with("subject", json!("")), "subject", "required"),
        (with("subject", json!(" padded")), "subject", "white space"),
        (with("subject", json!("x".repeat(300))), "subject", "256"),
        (
            with("collected_at", json!("2200-01-01T00:00:00Z")),
            "collected_at",
            "future",
        ),
        (
            with("collected_at", json!("last tuesday")),
            "collected_at",
            "RFC 3339",
        ),
        (
            json!({"subject": "s-1", "purpose": "marketing.email", "channel": "email", "decision": "granted",
                   "collected_at": "2026-01-02T00:00:00Z", "expires_at": "2026-01-01T00:00:00Z"}),
            "expires_at",
            "not after collected_at",
        ),
        // A malformed field is a 422 even beside one the clock refuses.
        (
            json!({"subject": "s-1", "purpose": "marketing.email", "channel": "email", "decision": "granted",
                   "collected_at": "2200-01-02T00:00:00Z", "expires_at": "2200-01-01T00:00:00Z"}),
            "expires_at",
            "not after collected_at",
        ),
        (
            json!({"subject": "s-1", "purpose": "marketing.email", "channel": "email", "decision": "granted",
                   "notice_key": "privacy", "notice_version": "9"}),
            "notice_version",
            "has no version",
        ),
        (
            with("notice_key", json!("privacy")),
            "notice_version",
            "required with notice_key",
        ),
        (
            with("jurisdiction", json!("germany")),
            "jurisdiction",
            "ISO 3166",
        ),
    ];
    // Refusals that depend on what is registered, published or the server's clock are 409s;
    // the rest are malformed fields, 422s.
    let unmet = [
        "not a registered purpose",
        "retired",
        "future",
        "has no version",
    ];
    for (body, field, words) in cases {
        let (status, v) = w.post("/v1/consents", &w.service, body.clone()).await;
        let expected = if unmet.contains(&words) { 409 } else { 422 };
        assert_eq!(status, expected, "{body} -> {v}");
        assert_eq!(problem_field(&v), Some(field), "{body} -> {v}");
        assert!(
            v["errors"][0]["message"].as_str().unwrap().contains(words),
            "{v}"
        );
    }
    // Unknown fields, bad JSON and wrong content types are refused too.
    let (status, _) = w
        .post("/v1/consents", &w.service, with("colour", json!("red")))
        .await;
    assert_eq!(status, 400);
    let r = w
        .app
        .send(
            "POST",
            "/v1/consents",
            Some(&w.service),
            &[],
            Some(("text/plain", b"{}".to_vec())),
        )
        .await;
    assert_eq!(r.status, 415, "{}", r.body);
    // Oversized batches.
    let items: Vec<Value> = (0..10_001)
        .map(|i| json!({"subject": format!("s{i}"), "purpose": "marketing.email", "channel": "email"}))
        .collect();
    let (status, v) = w
        .post("/v1/consents/check", &w.service, json!({"items": items}))
        .await;
    assert_eq!(
        (status, v["errors"][0]["field"].clone()),
        (422, json!("items")),
        "{v}"
    );
    // A batch with bad items names each: malformed fields first (a 422), and only when every
    // item is well-formed, the purposes this instance does not know (a 409).
    let batch = |items: Value| w.post("/v1/consents/check", &w.service, json!({ "items": items }));
    let (status, v) = batch(json!([
        {"subject": "a", "purpose": "marketing.email", "channel": "email"},
        {"subject": "b", "purpose": "nope", "channel": "fax"},
        {"subject": " c", "purpose": "Nope", "channel": "email"}
    ]))
    .await;
    assert_eq!(status, 422, "{v}");
    let fields = each(&v["errors"], "field");
    assert_eq!(
        fields,
        ["items/1/channel", "items/2/subject", "items/2/purpose"]
    );
    let (status, v) = batch(json!([
        {"subject": "a", "purpose": "marketing.email", "channel": "email"},
        {"subject": "b", "purpose": "nope", "channel": "email"}
    ]))
    .await;
    assert_eq!(
        (status, problem_field(&v)),
        (409, Some("items/1/purpose")),
        "{v}"
    );
    // Single checks.
    for (query, field, expected) in [
        ("subject=a&purpose=nope&channel=email", "purpose", 409),
        ("subject=a&purpose=Nope&channel=email", "purpose", 422),
        (
            "subject=a&purpose=marketing.email&channel=email&at=soon",
            "at",
            422,
        ),
        (
            "subject=a&purpose=marketing.email&channel=email&at=2026-11-05t00:00:00Z",
            "at",
            422,
        ),
        ("purpose=marketing.email&channel=email", "subject", 422),
    ] {
        let (status, v) = w.get(&format!("/v1/consents/check?{query}")).await;
        assert_eq!(
            (status, problem_field(&v)),
            (expected, Some(field)),
            "{query}"
        );
    }
    // A parameter given twice is refused, not settled by picking one.
    let (status, v) = w
        .get("/v1/consents/check?subject=a&purpose=marketing.email&channel=email&subject=b")
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("`subject` is given more than once"),
        "{v}"
    );
    // A bad line near the start of a send list is a 422 naming it, before any answer (further
    // on, it ends the answer with the error in the trailer: see the limits tests).
    let r = w
        .app
        .send(
            "POST",
            "/v1/consents/filter?purpose=marketing.email&channel=email",
            Some(&w.service),
            &[],
            Some((
                "application/x-ndjson",
                b"\"a\"\n\"unterminated\n\"b\"\n".to_vec(),
            )),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["errors"][0]["line"], 2, "{}", r.body);
    // Purposes: a consent basis cannot be declared as not needing consent; keys are checked.
    let (status, v) = w
        .post(
            "/v1/purposes",
            &w.officer,
            json!({"key": "Bad Key", "title": "", "legal_basis": "consent", "consent_required": false}),
        )
        .await;
    assert_eq!(status, 422);
    let fields = each(&v["errors"], "field");
    assert_eq!(fields, ["key", "title", "consent_required"]);
    let (status, _) = w.post("/v1/purposes", &w.officer, email_purpose()).await;
    assert_eq!(status, 409, "an existing key is not created twice");
    // A service may not define purposes.
    let (status, _) = w.post("/v1/purposes", &w.service, email_purpose()).await;
    assert_eq!(status, 403);
    assert_eq!(w.app.ledger.size(), size, "bad input wrote nothing");
    // Percent-encoded values are decoded (`+` is a space, `%2B` a plus); unknown parameters are
    // ignored.
    w.record(json!({"subject": "a b+c/é", "purpose": "marketing.email", "channel": "email", "decision": "granted"}))
        .await;
    let (status, v) = w
        .get("/v1/consents/check?subject=a+b%2Bc%2F%C3%A9&purpose=marketing.email&channel=email&utm=x")
        .await;
    assert_eq!((status, &v["allowed"]), (200, &json!(true)), "{v}");
    w.app.stop().await;
}

on_both_backends!(consent_validation, super::validation);

async fn import(db: TestDb) {
    let w = world(&db).await;
    w.purpose(email_purpose()).await;
    w.purpose(json!({"key": "analytics", "title": "Analytics"}))
        .await;
    let size = w.app.ledger.size();
    let import = |ct: &'static str, body: String| {
        let app = &w.app;
        let token = w.service.clone();
        async move {
            app.send(
                "POST",
                "/v1/consents/import",
                Some(&token),
                &[],
                Some((ct, body.into_bytes())),
            )
            .await
        }
    };
    let mut rows: Vec<String> = (0..2500)
        .map(|i| {
            json!({"subject": format!("imp-{i}"), "purpose": if i % 2 == 0 { "marketing.email" } else { "analytics" },
                   "channel": "email", "decision": "granted", "collected_at": "2026-06-01T00:00:00Z",
                   "source": "legacy-crm"})
            .to_string()
        })
        .collect();
    // Two bad rows: nothing is written, each is named by line and field.
    rows[10] = json!({"subject": "imp-10", "purpose": "marketing.email", "channel": "fax", "decision": "granted"}).to_string();
    rows[2000] = "{not json".into();
    let r = import("application/x-ndjson", rows.join("\n")).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let v = r.json();
    assert_eq!(v["errors"][0]["line"], 11);
    assert_eq!(v["errors"][0]["field"], "channel");
    assert_eq!(v["errors"][1]["line"], 2001);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("2 of 2500 rows are invalid"),
        "{v}"
    );
    assert_eq!(w.app.ledger.size(), size, "nothing was written");

    rows[10] = json!({"subject": "imp-10", "purpose": "marketing.email", "channel": "email", "decision": "granted", "collected_at": "2026-06-01T00:00:00Z", "source": "legacy-crm"}).to_string();
    rows[2000] = json!({"subject": "imp-2000", "purpose": "marketing.email", "channel": "email", "decision": "granted", "collected_at": "2026-06-01T00:00:00Z", "source": "legacy-crm"}).to_string();
    let r = import("application/x-ndjson", rows.join("\n") + "\n").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        (
            v["rows"].clone(),
            v["recorded"].clone(),
            v["duplicates"].clone()
        ),
        (json!(2500), json!(2500), json!(0))
    );
    assert_eq!(
        w.check("imp-2000", "marketing.email", "email").await["reason"],
        "granted"
    );
    // A re-run writes nothing new.
    let size = w.app.ledger.size();
    let r = import("application/x-ndjson", rows.join("\n")).await;
    let v = r.json();
    assert_eq!(
        (v["recorded"].clone(), v["duplicates"].clone()),
        (json!(0), json!(2500)),
        "{v}"
    );
    assert_eq!(w.app.ledger.size(), size);

    // CSV, with evidence columns and quoting.
    let csv = "subject,purpose,channel,decision,collected_at,evidence_user_agent\n\
               csv-1,analytics,web,denied,2026-06-02T00:00:00Z,\"Mozilla/5.0 (X11, Linux)\"\n\
               csv-2,analytics,web,granted,2026-06-02T00:00:00Z,\n";
    let r = import("text/csv", csv.into()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["recorded"], 2);
    assert_eq!(
        w.check("csv-1", "analytics", "web").await["reason"],
        "denied"
    );
    let (_, h) = w.get("/v1/subjects/csv-1/consents/history").await;
    assert_eq!(
        h["history"][0]["record"]["evidence"]["user_agent"],
        "Mozilla/5.0 (X11, Linux)"
    );
    assert_eq!(h["history"][0]["record"]["method"], "import");
    let r = import("application/json", "{}".into()).await;
    assert_eq!(r.status, 415);
    w.app.stop().await;
}

on_both_backends!(consent_import, super::import);

async fn erasure(db: TestDb) {
    let w = world(&db).await;
    w.purpose(email_purpose()).await;
    for d in ["granted", "withdrawn"] {
        w.record(json!({"subject": "erase-me@example.com", "purpose": "marketing.email", "channel": "email",
                        "decision": d, "evidence": {"ip": "198.51.100.23"}}))
            .await;
    }
    let kept = w
        .record(json!({"subject": "keep-me", "purpose": "marketing.email", "channel": "email", "decision": "granted"}))
        .await;
    // A service may not erase.
    let (status, _) = w
        .post(
            "/v1/subjects/erase-me@example.com/erase",
            &w.service,
            json!({}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, v) = w
        .post(
            "/v1/subjects/erase-me@example.com/erase",
            &w.officer,
            json!({"reason": "Art. 17 request 2026-117"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let redacted = v["redacted_seqs"].as_array().unwrap().clone();
    assert_eq!(redacted.len(), 2);
    assert_eq!(v["records_removed"], 2);
    assert_eq!(
        w.check("erase-me@example.com", "marketing.email", "email")
            .await["reason"],
        "no_record"
    );
    let (_, h) = w
        .get("/v1/subjects/erase-me@example.com/consents/history")
        .await;
    assert_eq!(h["history"], json!([]));
    let (status, _) = w
        .get(&format!(
            "/v1/consents/receipts/{}?subject=erase-me@example.com",
            redacted[0]
        ))
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        w.check("keep-me", "marketing.email", "email").await["seq"],
        kept["seq"]
    );

    // Both verifications pass and show the entries as redacted by the erasure.
    let s = w.app.settings.clone();
    w.app.ledger.publish_checkpoint().await.unwrap();
    let online = commands::verify(&s, &[]).unwrap().unwrap();
    assert_eq!(online.redacted, 2);
    let out = w._data.path().join("export.jsonl");
    commands::export(&s, &SystemClock, &out, |_| {}).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        !text.contains("erase-me"),
        "the export holds no trace of the subject id"
    );
    assert!(!text.contains("198.51.100.23"), "nor of the evidence");
    let report =
        accord_audit::export::verify_export(text.as_bytes(), &[], None, Default::default())
            .unwrap();
    assert_eq!(report.redacted, 2);
    let erasure_line = text
        .lines()
        .find(|l| l.contains("redacted_seqs"))
        .expect("the erasure entry");
    assert!(erasure_line.contains(&format!(
        "\"redacted_seqs\":[{},{}]",
        redacted[0], redacted[1]
    )));
    // Erasing again finds nothing more, and the erasure entries stay readable.
    let (status, v) = w
        .post(
            "/v1/subjects/erase-me@example.com/erase",
            &w.officer,
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["redacted_seqs"], json!([]));
    w.app.stop().await;
    assert!(commands::verify(&s, &[]).unwrap().is_ok());
}

on_both_backends!(consent_erasure, super::erasure);

/// The repository's `policies/purposes.toml` is loaded at start, once.
#[actix_web::test]
async fn purposes_file_is_loaded_at_start() {
    let db = TestDb::sqlite();
    let data = tempfile::tempdir().unwrap();
    let mut s = settings(&db, data.path());
    s.policies_dir = Some(policies_dir());
    let app = TestApp::spawn(s.clone()).await.unwrap();
    let service = app.token(&[Role::Service]).await;
    let (_, v) = app.get_json_with("/v1/purposes", &service).await;
    let keys: Vec<&str> = v["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"marketing.email"), "{v}");
    let (_, n) = app.get_json_with("/v1/notices", &service).await;
    assert_eq!(n["notices"][0]["key"], "privacy");
    let size = app.ledger.size();
    app.stop().await;
    // A restart with the same file records only its start (and, with no user yet, a new
    // first-administrator link): no purpose or notice again.
    let app = TestApp::spawn(s).await.unwrap();
    assert_eq!(app.ledger.size(), size + 2);
    app.stop().await;
}

/// Two instances on one PostgreSQL: a write through one is read through the other with `min_seq`.
#[actix_web::test]
async fn second_instance_reads_its_writes_with_min_seq() {
    let Some(db) = TestDb::postgres() else { return };
    let w = world(&db).await;
    let b = TestApp::spawn(w.app.settings.clone()).await.unwrap();
    w.purpose(email_purpose()).await;
    for i in 0..20 {
        let decision = if i % 2 == 0 { "granted" } else { "withdrawn" };
        let v = w
            .record(json!({"subject": "ms-1", "purpose": "marketing.email", "channel": "email",
                           "decision": decision, "collected_at": format!("2026-11-01T10:00:{i:02}Z")}))
            .await;
        let seq = v["seq"].as_u64().unwrap();
        let (status, a) = b
            .get_json_with(
                &format!("/v1/consents/check?subject=ms-1&purpose=marketing.email&channel=email&min_seq={seq}"),
                &w.service,
            )
            .await;
        assert_eq!(status, 200, "{a}");
        assert_eq!(
            a["seq"],
            json!(seq),
            "instance b answers from the write just made on a"
        );
        assert_eq!(a["decision"], decision);
    }
    // A seq no instance has written is refused at once: no write returned it.
    let started = std::time::Instant::now();
    let (status, v) = b
        .get_json_with(
            "/v1/consents/check?subject=ms-1&purpose=marketing.email&channel=email&min_seq=999999",
            &w.service,
        )
        .await;
    assert_eq!(status, 409, "{v}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "answered without waiting for the 5 s limit"
    );
    b.stop().await;
    w.app.stop().await;
}

/// The OpenAPI document describes every API route, each with the access it is registered with,
/// and nothing else.
#[actix_web::test]
async fn openapi_document_matches_the_routes() {
    let db = TestDb::sqlite();
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(settings(&db, data.path())).await.unwrap();
    let (status, doc) = app.get_json("/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    // Schemas come from the types: bodies that refuse unknown fields say so, and answers have the
    // shape the handlers give them.
    let schemas = &doc["components"]["schemas"];
    for body in [
        "ConsentInput",
        "PurposeInput",
        "NoticeInput",
        "IssueRequest",
    ] {
        assert_eq!(
            schemas[body]["additionalProperties"],
            json!(false),
            "{body}: {}",
            schemas[body]
        );
    }
    let batch = &doc["paths"]["/v1/consents/check"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"];
    assert_eq!(batch["additionalProperties"], json!(false), "{batch}");
    assert_eq!(
        batch["properties"]["items"]["maxItems"],
        json!(10_000),
        "{batch}"
    );
    assert_eq!(
        doc["paths"]["/v1/tokens"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            ["type"],
        "array"
    );
    assert!(
        doc["paths"]["/v1/consents"]["post"]["responses"]
            .get("422")
            .is_some(),
        "every status is documented with its body"
    );
    let mut described = std::collections::BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            described.insert((method.to_uppercase(), path.clone()));
            let route = app
                .routes
                .iter()
                .find(|r| r.method.as_str() == method.to_uppercase() && &r.path == path)
                .unwrap_or_else(|| panic!("{method} {path} is described but not a route"));
            match route.access {
                accord::authz::Access::Permission(p) => {
                    assert_eq!(op["x-accord-permission"], p.to_string(), "{method} {path}")
                }
                accord::authz::Access::Public => assert_eq!(op["security"], json!([])),
                accord::authz::Access::Authenticated => {
                    assert!(op.get("x-accord-permission").is_none())
                }
            }
            // Every schema reference resolves.
            let text = op.to_string();
            for part in text.split("#/components/schemas/").skip(1) {
                let name: String = part.chars().take_while(|c| c.is_alphanumeric()).collect();
                assert!(
                    doc["components"]["schemas"].get(&name).is_some(),
                    "{method} {path} refers to a missing schema {name}"
                );
            }
        }
    }
    let routes: std::collections::BTreeSet<(String, String)> = app
        .routes
        .iter()
        .filter(|r| accord::openapi::is_api(&r.path))
        .map(|r| (r.method.as_str().to_string(), r.path.clone()))
        .collect();
    let missing: Vec<_> = routes.difference(&described).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document: {missing:?}"
    );
    app.stop().await;
}
