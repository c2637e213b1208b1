//! Bad input gets a 4xx and changes nothing: instants beyond what the ledger can hold, imports
//! past their limits (bytes, rows, line length) or bad in a later chunk, batches and send lists
//! past theirs, and `min_seq` beyond the ledger. The limits are the configured ones, named in
//! each answer. On both databases.

use accord::auth::model::Role;
use accord::consent::service::IMPORT_CHUNK;
use accord_tests::{TestApp, TestDb, settings};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::problem_field;

on_both_backends!(bad_input_changes_nothing, super::limits);

fn row(n: usize, extra: &str) -> String {
    format!(
        "{{\"subject\":\"s-{n}\",\"purpose\":\"newsletter\",\"channel\":\"email\",\"decision\":\"granted\",\"collected_at\":\"2026-11-01T10:00:00Z\"{extra}}}\n"
    )
}

async fn limits(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let mut s = settings(&db, data.path());
    s.limits.import_rows = 1500;
    s.limits.import_bytes = 600_000;
    s.limits.line_bytes = 1024;
    s.limits.batch_items = 5;
    let app = TestApp::spawn(s).await.unwrap();
    let t = app.token(&[Role::ComplianceOfficer, Role::Service]).await;
    let (status, v) = app
        .post_json_with(
            "/v1/purposes",
            &t,
            &json!({"key": "newsletter", "title": "Newsletter", "legal_basis": "consent"}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let size = app.ledger.size();

    // Instants outside what the ledger can hold: 422 naming the field, not a 500.
    for (field, value) in [
        ("expires_at", "2300-01-01T00:00:00Z"),
        ("collected_at", "1600-01-01T00:00:00Z"),
    ] {
        let mut body = json!({"subject": "far", "purpose": "newsletter", "channel": "email",
                              "decision": "granted"});
        body[field] = json!(value);
        let (status, p) = app.post_json_with("/v1/consents", &t, &body).await;
        assert_eq!(status, 422, "{p}");
        assert_eq!(problem_field(&p), Some(field), "{p}");
    }
    let (status, p) = app
        .get_json_with(
            "/v1/consents/check?subject=far&purpose=newsletter&channel=email&at=9999-01-01T00:00:00Z",
            &t,
        )
        .await;
    assert_eq!(status, 422, "{p}");
    assert_eq!(problem_field(&p), Some("at"));

    let import = |ct: &'static str, body: String| {
        let (app, t) = (&app, t.clone());
        async move {
            let r = app
                .send(
                    "POST",
                    "/v1/consents/import",
                    Some(&t),
                    &[],
                    Some((ct, body.into_bytes())),
                )
                .await;
            (r.status, r.json())
        }
    };
    // The bad row in a later chunk: every row is validated before any is written.
    let mut body: String = (0..IMPORT_CHUNK).map(|n| row(n, "")).collect();
    body.push_str(&row(
        IMPORT_CHUNK,
        ",\"expires_at\":\"2300-01-01T00:00:00Z\"",
    ));
    let (status, p) = import("application/x-ndjson", body).await;
    assert_eq!(status, 422, "{p}");
    assert_eq!(p["errors"][0]["line"], IMPORT_CHUNK + 1, "{p}");
    assert_eq!(p["errors"][0]["field"], "expires_at", "{p}");

    // Past the row limit: 413 naming it and the line, without reading on.
    let body: String = (0..2000).map(|n| row(n, "")).collect();
    let (status, p) = import("application/x-ndjson", body).await;
    assert_eq!(status, 413, "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("limits.import_rows") && detail.contains("line 1501"),
        "{detail}"
    );
    // Past the byte limit.
    let (status, p) = import("application/x-ndjson", "\n".repeat(600_001)).await;
    assert_eq!(status, 413, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("limits.import_bytes"),
        "{p}"
    );
    // A line past the line limit, in NDJSON and in CSV.
    let long = format!(",\"source\":\"{}\"", "x".repeat(1100));
    let (status, p) = import(
        "application/x-ndjson",
        format!("{}{}", row(0, ""), row(1, &long)),
    )
    .await;
    assert_eq!(status, 413, "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("line 2") && detail.contains("limits.line_bytes"),
        "{detail}"
    );
    let csv = format!(
        "subject,purpose,channel,decision\ns-1,newsletter,email,granted\ns-2,newsletter,email,granted,{}\n",
        "y".repeat(1100)
    );
    let (status, p) = import("text/csv", csv).await;
    assert_eq!(status, 413, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("line 3"), "{p}");
    assert_eq!(app.ledger.size(), size, "bad input wrote nothing");

    // A batch past its limit.
    let items: Vec<Value> = (0..6)
        .map(|n| json!({"subject": format!("s-{n}"), "purpose": "newsletter", "channel": "email"}))
        .collect();
    let (status, p) = app
        .post_json_with("/v1/consents/check", &t, &json!({ "items": items }))
        .await;
    assert_eq!(
        (status, p["errors"][0]["field"].clone()),
        (422, json!("items")),
        "{p}"
    );
    assert!(
        p["detail"].as_str().unwrap().contains("limits.batch_items"),
        "{p}"
    );
    // A send list with a line past the limit: near its start, before the answer begins, a 413
    // naming the line and the limit; further on, the answer ends with the error in its trailer.
    let send_list = |body: String| {
        let app = &app;
        let t = &t;
        async move {
            app.send(
                "POST",
                "/v1/consents/filter?purpose=newsletter&channel=email",
                Some(t),
                &[],
                Some(("application/x-ndjson", body.into_bytes())),
            )
            .await
        }
    };
    let r = send_list(format!("\"s-1\"\n\"{}\"\n\"s-2\"\n", "z".repeat(2000))).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("line 2"), "{}", r.body);
    assert!(r.body.contains("limits.line_bytes"), "{}", r.body);
    let early: String = (0..10_000).map(|n| format!("\"s-{n}\"\n")).collect();
    assert!(
        early.len() > 64 * 1024,
        "past the part checked before answering"
    );
    let r = send_list(format!("{early}\"{}\"\n\"s-2\"\n", "z".repeat(2000))).await;
    assert_eq!(r.status, 200, "{}", &r.body[..200.min(r.body.len())]);
    let last: Value = serde_json::from_str(r.body.lines().last().unwrap()).unwrap();
    assert_eq!(last["trailer"]["error"]["line"], 10_001, "{last}");
    assert!(
        last["trailer"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limits.line_bytes"),
        "{last}"
    );
    // A bad line that begins before the mark and ends after it is still checked before answering.
    let lead: String = (0..)
        .map(|n| format!("\"s-{n}\"\n"))
        .scan(0, |len, l| {
            *len += l.len();
            (*len < 64 * 1024 - 20).then_some(l)
        })
        .collect();
    let n = lead.lines().count();
    let r = send_list(format!(
        "{lead}\"unterminated {}\n\"s-2\"\n",
        "y".repeat(100)
    ))
    .await;
    assert_eq!(r.status, 422, "{}", &r.body[..200.min(r.body.len())]);
    assert_eq!(r.json()["errors"][0]["line"], n + 1, "{}", r.body);
    // NDJSON lines are JSON: a bare id is refused (it belongs in a text/plain list).
    let r = send_list("\"s-1\"\ns-2\n".to_string()).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains("line 2") && r.body.contains("text/plain"),
        "{}",
        r.body
    );

    // A malformed batch is a 422 before its min_seq is waited for.
    let far = app.ledger.size() + 100;
    let (status, p) = app
        .post_json_with(
            "/v1/consents/check",
            &t,
            &json!({"items": [{"subject": " s", "purpose": "newsletter", "channel": "email"}], "min_seq": far}),
        )
        .await;
    assert_eq!(
        (status, problem_field(&p)),
        (422, Some("items/0/subject")),
        "{p}"
    );

    // A min_seq the ledger does not hold: 409 at once, not a wait.
    let far = app.ledger.size() + 100;
    let (status, p) = app
        .get_json_with(
            &format!(
                "/v1/consents/check?subject=s-1&purpose=newsletter&channel=email&min_seq={far}"
            ),
            &t,
        )
        .await;
    assert_eq!(status, 409, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("min_seq"), "{p}");
    app.stop().await;
}
