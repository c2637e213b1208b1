//! Mail through the outbox, against a real SMTP server on loopback: DPA expiry reminders reach the
//! right people once each, with the right subject and link; they wait while the mail server is
//! down and go out when it is back; a restart sends nothing twice; amendments and terminations
//! cancel what they make moot; two instances on one PostgreSQL database send each mail once.

use std::sync::Arc;
use std::time::Duration;

use accord::auth::model::Role;
use accord::clock::{Clock, ManualClock, SystemClock, Timestamp};
use accord::commands;
use accord::config::{NotifySettings, Settings, SmtpSettings, SmtpTls};
use accord::ledger::Actor;
use accord_tests::smtp::SmtpServer;
use accord_tests::{TestApp, TestDb, settings};
use serde_json::{Value, json};

use crate::on_both_backends;

const DAY: i64 = 86_400_000_000;

fn with_smtp(mut s: Settings, smtp: &SmtpServer) -> Settings {
    s.smtp = Some(SmtpSettings {
        host: "127.0.0.1".into(),
        port: smtp.port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "Accord <accord@example.test>".into(),
    });
    s.notify = NotifySettings {
        poll: Duration::from_millis(50),
        retry_base: Duration::from_secs(1),
        retry_max: Duration::from_secs(10),
        lease: Duration::from_secs(120),
    };
    s
}

fn clauses() -> Value {
    json!({"instructions": true, "confidentiality": true, "security": true, "sub_processing": true,
           "assistance": true, "deletion_or_return": true, "audits": true})
}

/// A version in force since last year, expiring at `expires`.
fn version(reference: &str, expires: Timestamp) -> Value {
    let year: i32 = SystemClock.now().to_rfc3339()[..4].parse().unwrap();
    json!({"reference": reference, "signed_on": format!("{}-12-01", year - 2),
           "effective_from": format!("{}-01-01", year - 1), "expires_at": expires.to_rfc3339(),
           "purposes": ["marketing.email"], "data_categories": ["email_address"],
           "clauses": clauses()})
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let (status, v) = app.post_json_with(path, token, &body).await;
    assert!(status == 200 || status == 201, "{path}: {status} {v}");
    v
}

/// The outbox's items by id: (state, failures).
async fn outbox(app: &TestApp, token: &str) -> Vec<(String, String, u64)> {
    let (status, v) = app.get_json_with("/v1/outbox", token).await;
    assert_eq!(status, 200, "{v}");
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_string(),
                i["state"].as_str().unwrap().to_string(),
                i["failures"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Users: two who get reminders, one who does not, one disabled.
async fn people(app: &TestApp) {
    let svc = accord::auth::api::service(&app.state);
    for (email, roles) in [
        ("officer@example.test", vec![Role::ComplianceOfficer]),
        ("counsel@example.test", vec![Role::Legal, Role::Marketer]),
        ("marketer@example.test", vec![Role::Marketer]),
        ("gone@example.test", vec![Role::Legal]),
    ] {
        svc.create_user(Actor::cli(), None, email, email, &roles, None)
            .await
            .unwrap();
    }
    svc.disable_user(Actor::cli(), None, "gone@example.test")
        .await
        .unwrap();
}

async fn reminders(db: TestDb) {
    let Some(mut smtp) = SmtpServer::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let s = with_smtp(settings(&db, data.path()), &smtp);
    let start = SystemClock.now();
    let clock = Arc::new(ManualClock::new(start));
    let app = TestApp::spawn_with_clock(s.clone(), clock.clone())
        .await
        .unwrap();
    people(&app).await;
    let token = app
        .token_valid_for(
            &[Role::ComplianceOfficer, Role::Admin],
            Duration::from_secs(400 * 86_400),
        )
        .await;
    post(
        &app,
        &token,
        "/v1/purposes",
        json!({"key": "marketing.email", "title": "E-mail"}),
    )
    .await;
    for (id, name) in [("mailer", "Mailer GmbH"), ("print", "Print BV")] {
        post(
            &app,
            &token,
            "/v1/vendors",
            json!({"id": id, "name": name, "country": "DE", "role": "processor"}),
        )
        .await;
    }
    // Expires in 45 days: the 60-day reminder is due at once, the 30- and 7-day ones later.
    let expires = Timestamp(start.micros() + 45 * DAY);
    post(
        &app,
        &token,
        "/v1/dpas",
        json!({"id": "mailer-dpa", "vendor": "mailer", "version": version("M-1", expires)}),
    )
    .await;
    let mails = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let m = &mails[0];
    let mut to = m.to.clone();
    to.sort();
    assert_eq!(to, ["counsel@example.test", "officer@example.test"]);
    assert_eq!(m.from, "accord@example.test");
    let date = &expires.to_rfc3339()[..10];
    assert_eq!(
        m.header("Subject").unwrap(),
        format!("DPA mailer-dpa with Mailer GmbH expires on {date}")
    );
    let body = m.body();
    assert!(body.contains("reminder 60 days ahead"), "{body}");
    assert!(
        body.contains(&format!("{}/ui/vendors/mailer", app.address)),
        "{body}"
    );

    let state = |items: &[(String, String, u64)], id: &str| {
        items
            .iter()
            .find(|i| i.0 == id)
            .map(|i| (i.1.clone(), i.2))
            .unwrap_or_else(|| panic!("no outbox item {id}: {items:?}"))
    };
    // The mail server has it; its sending is recorded right after.
    let mut items = outbox(&app, &token).await;
    for _ in 0..200 {
        if state(&items, "dpa:mailer-dpa:v1:60d").0 == "sent" {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
        items = outbox(&app, &token).await;
    }
    assert_eq!(state(&items, "dpa:mailer-dpa:v1:60d").0, "sent");
    assert_eq!(state(&items, "dpa:mailer-dpa:v1:30d").0, "pending");
    assert_eq!(state(&items, "dpa:mailer-dpa:v1:7d").0, "pending");
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.received().len(), 1, "sent once");

    // An amendment ends the reminders of the version before it; a termination ends the rest.
    let far = Timestamp(start.micros() + 200 * DAY);
    post(
        &app,
        &token,
        "/v1/dpas",
        json!({"id": "print-dpa", "vendor": "print", "version": version("P-1", far)}),
    )
    .await;
    post(
        &app,
        &token,
        "/v1/dpas/print-dpa/versions",
        version("P-2", Timestamp(far.micros() + 100 * DAY)),
    )
    .await;
    let items = outbox(&app, &token).await;
    assert_eq!(state(&items, "dpa:print-dpa:v1:60d").0, "cancelled");
    assert_eq!(state(&items, "dpa:print-dpa:v2:60d").0, "pending");
    post(
        &app,
        &token,
        "/v1/dpas/print-dpa/terminate",
        json!({"reason": "moved on"}),
    )
    .await;
    let items = outbox(&app, &token).await;
    assert_eq!(state(&items, "dpa:print-dpa:v2:60d").0, "cancelled");

    // Sixteen days on, the 30-day reminder.
    clock.advance_micros(16 * DAY);
    let mails = smtp.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 2);
    assert!(mails[1].body().contains("reminder 30 days ahead"));

    // The mail server goes down before the 7-day reminder: tried, failed, kept, not retried
    // before its back-off has passed.
    smtp.down();
    clock.advance_micros(23 * DAY);
    let mut failures = 0;
    for _ in 0..200 {
        failures = state(&outbox(&app, &token).await, "dpa:mailer-dpa:v1:7d").1;
        if failures > 0 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(failures > 0, "the failed try is counted");
    let (_, v) = app.get_json_with("/v1/outbox?state=pending", &token).await;
    let item = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "dpa:mailer-dpa:v1:7d")
        .cloned()
        .unwrap();
    assert!(
        item["last_error"].as_str().unwrap().contains("127.0.0.1"),
        "{item}"
    );
    assert!(item["next_try_at"].is_string(), "{item}");
    let (status, v) = app.get_json_with("/v1/outbox?limit=1001", &token).await;
    assert_eq!(
        (status, v["errors"][0]["field"].clone()),
        (422, json!("limit")),
        "{v}"
    );
    let (status, v) = app.get_json_with("/v1/outbox?state=lost", &token).await;
    assert_eq!(
        (status, v["errors"][0]["field"].clone()),
        (422, json!("state")),
        "{v}"
    );
    smtp.up();
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        smtp.received().len(),
        2,
        "not before the back-off has passed"
    );
    clock.advance_micros(2 * 1_000_000);
    let mails = smtp.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 3);
    assert!(mails[2].body().contains("reminder 7 days ahead"));

    // A restart sends nothing again; what was pending and moot stays unsent.
    app.stop().await;
    let app = TestApp::spawn_with_clock(s.clone(), clock.clone())
        .await
        .unwrap();
    clock.advance_micros(300 * DAY);
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.received().len(), 3, "{:?}", smtp.received());
    let items = outbox(&app, &token).await;
    assert!(
        items.iter().all(|i| i.1 != "pending"),
        "nothing left pending: {items:?}"
    );
    // Services following the ledger learnt of the expiry and the termination, in order.
    let (status, feed) = app
        .get_json_with(
            "/v1/changes?kinds=dpa.expiring,dpa.expired,dpa.terminated",
            &token,
        )
        .await;
    assert_eq!(status, 200, "{feed}");
    let seen: Vec<(String, String)> = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_string(),
                c["data"]["dpa"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let seen: Vec<(&str, &str)> = seen.iter().map(|(k, d)| (k.as_str(), d.as_str())).collect();
    assert_eq!(
        seen,
        [
            ("dpa.expiring", "mailer-dpa"),
            ("dpa.terminated", "print-dpa"),
            ("dpa.expired", "mailer-dpa")
        ]
    );
    // Each sending is a ledger entry: the outbox replays from the ledger alone.
    app.stop().await;
    let report = commands::replay_check(&s, |_, _| {}).unwrap();
    assert!(report.ok(), "{:?}", report.differences);
    let rows = crate::support::replayed_rows(&report, "outbox");
    assert_eq!(rows.0, rows.1);
    assert_eq!(
        rows.0, 15,
        "three mails and two moments for each of three versions"
    );
}

on_both_backends!(dpa_reminders_by_mail, super::reminders);

#[actix_web::test]
async fn two_instances_send_each_mail_once() {
    let Some(db) = TestDb::postgres() else { return };
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let mut s = with_smtp(settings(&db, data.path()), &smtp);
    // Both look often, so they race for the same mail.
    s.notify.poll = Duration::from_millis(10);
    let a = TestApp::spawn(s.clone()).await.unwrap();
    let b = TestApp::spawn(s.clone()).await.unwrap();
    people(&a).await;
    let token = a.token(&[Role::ComplianceOfficer]).await;
    post(
        &a,
        &token,
        "/v1/purposes",
        json!({"key": "marketing.email", "title": "E-mail"}),
    )
    .await;
    // Twenty DPAs, each expiring within a week: all three reminders of each are due at once and
    // go out as one mail per DPA, from whichever instance takes it.
    let now = SystemClock.now();
    for i in 0..20 {
        let app = if i % 2 == 0 { &a } else { &b };
        let id = format!("v{i}");
        post(
            app,
            &token,
            "/v1/vendors",
            json!({"id": id, "name": format!("Vendor {i}"), "country": "DE", "role": "processor"}),
        )
        .await;
        post(
            app,
            &token,
            "/v1/dpas",
            json!({"id": format!("dpa-{i}"), "vendor": id,
                    "version": version("R", Timestamp(now.micros() + 5 * DAY))}),
        )
        .await;
    }
    let mails = smtp.wait_for(20, Duration::from_secs(20)).await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let mails_after = smtp.received();
    assert!(mails.len() >= 20, "{mails:?}");
    assert_eq!(mails_after.len(), 20, "no mail twice");
    let mut subjects: Vec<String> = mails_after
        .iter()
        .map(|m| m.header("Subject").unwrap())
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 20);
    a.stop().await;
    b.stop().await;
    let report = commands::replay_check(&s, |_, _| {}).unwrap();
    assert!(report.ok(), "{:?}", report.differences);
}

#[actix_web::test]
async fn mail_test_says_what_happened() {
    let Some(mut smtp) = SmtpServer::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite();
    let bare = settings(&db, data.path());
    let e = commands::notify::mail_test(&bare, "ops@example.test")
        .await
        .unwrap_err();
    assert!(e.0.contains("no mail server is configured"), "{e}");
    let s = with_smtp(bare, &smtp);
    let e = commands::notify::mail_test(&s, "not an address")
        .await
        .unwrap_err();
    assert!(e.0.contains("is not an e-mail address"), "{e}");
    let said = commands::notify::mail_test(&s, "ops@example.test")
        .await
        .unwrap();
    assert!(said.contains("kept"), "{said}");
    let got = smtp.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, ["ops@example.test"]);
    assert_eq!(got[0].header("Subject").unwrap(), "Accord test mail");
    smtp.down();
    let e = commands::notify::mail_test(&s, "ops@example.test")
        .await
        .unwrap_err();
    assert!(
        e.0.contains(&format!("127.0.0.1:{}", smtp.port)),
        "names the server: {e}"
    );
}
