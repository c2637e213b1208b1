//! The change feed and webhooks, against a real HTTP receiver started by the test: each change
//! delivered once, in order, with a signature the test verifies; retried while the receiver fails;
//! nothing lost or repeated across a restart or between two instances; the feed pages without
//! gaps; nobody follows what they may not read.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accord::auth::model::Role;
use accord::changes::webhooks::signature;
use accord::commands;
use accord::config::{NotifySettings, Settings};
use accord_tests::{TestApp, TestDb, settings};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::on_both_backends;

const SECRET: &str = "a-receiver-secret-0123456789";

/// What the receiver got: (headers we check, body).
#[derive(Debug, Clone)]
struct Got {
    seq_header: String,
    signature: String,
    body: Vec<u8>,
}

/// An HTTP receiver on loopback that keeps every POST and answers `status` (200 unless told).
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    status: Arc<AtomicU16>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    async fn start() -> Receiver {
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let (g, s) = (got.clone(), status.clone());
        let server = HttpServer::new(move || {
            let (g, s) = (g.clone(), s.clone());
            App::new().route(
                "/hook",
                web::post().to(move |req: HttpRequest, body: web::Bytes| {
                    let (g, s) = (g.clone(), s.clone());
                    async move {
                        let h = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string()
                        };
                        let code = s.load(Ordering::SeqCst);
                        if code == 200 {
                            g.lock().unwrap().push(Got {
                                seq_header: h("Accord-Seq"),
                                signature: h("Accord-Signature"),
                                body: body.to_vec(),
                            });
                        }
                        HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap())
                            .finish()
                    }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Receiver {
            url: format!("http://{addr}/hook"),
            got,
            status,
            handle,
        }
    }

    fn bodies(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|g| serde_json::from_slice(&g.body).unwrap())
            .collect()
    }

    async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..400 {
            if self.got.lock().unwrap().len() >= n {
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(25)).await;
        }
        self.bodies()
    }
}

fn quick(mut s: Settings) -> Settings {
    s.notify = NotifySettings {
        poll: Duration::from_millis(30),
        retry_base: Duration::from_millis(200),
        retry_max: Duration::from_secs(1),
        lease: Duration::from_secs(120),
    };
    s
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    app.post_json_with(path, token, &body).await
}

fn consent(subject: &str, decision: &str) -> Value {
    json!({"subject": subject, "purpose": "newsletter", "channel": "email", "decision": decision})
}

/// Every signature verifies with the secret, over the body as sent.
fn verify(got: &[Got]) {
    for g in got {
        let t: i64 = g
            .signature
            .split(',')
            .find_map(|p| p.strip_prefix("t="))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(g.signature, signature(SECRET, t, &g.body));
        let body: Value = serde_json::from_slice(&g.body).unwrap();
        assert_eq!(g.seq_header, body["seq"].to_string());
    }
}

async fn webhooks_and_feed(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let s = quick(settings(&db, data.path()));
    let app = TestApp::spawn(s.clone()).await.unwrap();
    let service = app.token(&[Role::Service]).await;
    let officer = app.token(&[Role::ComplianceOfficer]).await;
    let admin = app.token(&[Role::Admin]).await;
    let (status, v) = post(
        &app,
        &officer,
        "/v1/purposes",
        json!({"key": "newsletter", "title": "News"}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let rx = Receiver::start().await;
    let (_, before) = post(&app, &service, "/v1/consents", consent("early", "granted")).await;

    // Bad subscriptions: each field named; a kind the caller may not read is refused.
    let (status, v) = post(
        &app,
        &service,
        "/v1/webhooks",
        json!({"url": "ftp://x/y", "kinds": ["consent.nope"], "secret": "short"}),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    let fields: BTreeSet<String> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        fields,
        ["kinds[0]", "secret", "url"].map(String::from).into()
    );
    let (status, v) = post(&app, &service, "/v1/webhooks",
        json!({"url": "http://user:pw@127.0.0.1/", "kinds": ["consent.withdrawn"], "secret": SECRET})).await;
    assert_eq!(
        (status, v["errors"][0]["field"].clone()),
        (422, json!("url")),
        "{v}"
    );
    let (status, v) = post(
        &app,
        &admin,
        "/v1/webhooks",
        json!({"url": rx.url, "kinds": ["consent.withdrawn"], "secret": SECRET}),
    )
    .await;
    assert_eq!(status, 403, "an admin may not follow consent: {v}");

    let (status, hook) = post(&app, &service, "/v1/webhooks",
        json!({"url": rx.url, "kinds": ["consent.withdrawn", "consent.recorded"], "secret": SECRET})).await;
    assert_eq!(status, 201, "{hook}");
    assert!(hook.get("secret").is_none());
    let id = hook["id"].as_str().unwrap().to_string();
    assert!(hook["seq"].as_u64().unwrap() > before["seq"].as_u64().unwrap());

    // Changes after the subscription arrive, in order, signed; the earlier one does not.
    let (_, g) = post(&app, &service, "/v1/consents", consent("ann", "granted")).await;
    let (_, w) = post(&app, &service, "/v1/consents", consent("ann", "withdrawn")).await;
    let got = rx.wait_for(2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (got[0]["seq"].clone(), got[0]["kind"].clone()),
        (g["seq"].clone(), json!("consent.recorded"))
    );
    assert_eq!(
        (got[1]["seq"].clone(), got[1]["kind"].clone()),
        (w["seq"].clone(), json!("consent.withdrawn"))
    );
    assert_eq!(got[1]["data"]["subject"], "ann");
    assert_eq!(got[1]["webhook"], json!(id));
    verify(&rx.got.lock().unwrap());

    // The receiver fails: the change is retried, and delivered once it answers again.
    rx.status.store(503, Ordering::SeqCst);
    let (_, w2) = post(&app, &service, "/v1/consents", consent("bo", "withdrawn")).await;
    let mut failing = Value::Null;
    for _ in 0..200 {
        let (_, v) = app
            .get_json_with(&format!("/v1/webhooks/{id}"), &service)
            .await;
        if v["failures"].as_u64().unwrap_or(0) >= 2 {
            failing = v;
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        failing["last_error"].as_str().unwrap().contains("503"),
        "{failing}"
    );
    assert_eq!(failing["deliveries"][0]["state"], "failing", "{failing}");
    assert!(
        failing["deliveries"][0]["tries"].as_u64().unwrap() >= 2,
        "{failing}"
    );
    // The server restarts while the change is still undelivered: nothing is lost, nothing
    // repeated, and what follows is delivered too.
    app.stop().await;
    rx.status.store(200, Ordering::SeqCst);
    let app = TestApp::spawn(s.clone()).await.unwrap();
    let got = rx.wait_for(3).await;
    assert_eq!(got[2]["seq"], w2["seq"]);
    let (_, w3) = post(&app, &service, "/v1/consents", consent("cy", "withdrawn")).await;
    let got = rx.wait_for(4).await;
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let got_after = rx.bodies();
    assert_eq!(got_after.len(), 4, "{got_after:?}");
    assert_eq!(got[3]["seq"], w3["seq"]);
    let seqs: Vec<u64> = got_after
        .iter()
        .map(|b| b["seq"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|p| p[0] < p[1]),
        "in order, once: {seqs:?}"
    );
    verify(&rx.got.lock().unwrap());

    // An erasure reaches the subscriber as the seqs it emptied.
    let (status, v) = post(
        &app,
        &officer,
        "/v1/subjects/ann/erase",
        json!({"reason": "Art. 17"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, hook2) = post(
        &app,
        &service,
        "/v1/webhooks",
        json!({"url": rx.url, "kinds": ["consent.erased"], "secret": SECRET}),
    )
    .await;
    assert_eq!(status, 201, "{hook2}");
    // (A subscription made after the erasure does not get it; the first one was not for erasures.)

    // The feed: every page follows the last; together they are the changes, no gap, no repeat.
    let (status, all) = app
        .get_json_with(
            "/v1/changes?kinds=consent.recorded,consent.withdrawn,consent.erased",
            &service,
        )
        .await;
    assert_eq!(status, 200, "{all}");
    let every: Vec<u64> = all["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["seq"].as_u64().unwrap())
        .collect();
    // ann's two records were erased: only the erasure, listing them, stands for them now.
    assert_eq!(every.len(), 4, "{all}");
    assert!(!every.contains(&g["seq"].as_u64().unwrap()), "{all}");
    let erased = all["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "consent.erased")
        .unwrap();
    let emptied: Vec<u64> = erased["data"]["erased_seqs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect();
    assert_eq!(
        emptied,
        [g["seq"].as_u64().unwrap(), w["seq"].as_u64().unwrap()]
    );
    let mut paged = Vec::new();
    let mut after: Option<u64> = None;
    for _ in 0..20 {
        let q = match after {
            Some(a) => format!(
                "/v1/changes?kinds=consent.recorded,consent.withdrawn,consent.erased&limit=2&after={a}"
            ),
            None => {
                "/v1/changes?kinds=consent.recorded,consent.withdrawn,consent.erased&limit=2".into()
            }
        };
        let (status, page) = app.get_json_with(&q, &service).await;
        assert_eq!(status, 200, "{page}");
        paged.extend(
            page["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["seq"].as_u64().unwrap()),
        );
        after = page["next"].as_u64();
        if page["more"] == json!(false) {
            break;
        }
    }
    assert_eq!(paged, every);
    let (status, v) = app
        .get_json_with("/v1/changes?kinds=consent.withdrawn&after=999999", &service)
        .await;
    assert_eq!(
        (status, v["errors"][0]["field"].clone()),
        (409, json!("after")),
        "{v}"
    );
    let (status, _) = app
        .get_json_with(
            "/v1/changes?kinds=consent.withdrawn,consent.withdrawn",
            &service,
        )
        .await;
    assert_eq!(status, 422);
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("wait=31", "wait"),
    ] {
        let (status, v) = app
            .get_json_with(
                &format!("/v1/changes?kinds=consent.withdrawn&{q}"),
                &service,
            )
            .await;
        assert_eq!(
            (status, v["errors"][0]["field"].clone()),
            (422, json!(field)),
            "{q}: {v}"
        );
    }
    let (status, _) = app
        .get_json_with("/v1/changes?kinds=consent.withdrawn&limit=many", &service)
        .await;
    assert_eq!(status, 400, "not a number: the query cannot be read");
    let (status, _) = app
        .get_json_with("/v1/changes?kinds=consent.withdrawn", &admin)
        .await;
    assert_eq!(status, 403);
    // Long poll: a change recorded while the request waits is answered at once.
    let last = every.last().copied().unwrap();
    let wait_url = format!("/v1/changes?kinds=consent.withdrawn&after={last}&wait=10");
    let poll = app.get_json_with(&wait_url, &service);
    let write = async {
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        post(&app, &service, "/v1/consents", consent("dee", "withdrawn")).await
    };
    let started = std::time::Instant::now();
    let ((status, page), (_, d)) = tokio::join!(poll, write);
    assert_eq!(status, 200);
    assert_eq!(page["changes"][0]["seq"], d["seq"]);
    assert!(started.elapsed() < Duration::from_secs(5));

    // A subscription reaches only what its creator may still read: once their token is revoked,
    // it is paused and says why.
    let (status, minted) = post(
        &app,
        &admin,
        "/v1/tokens",
        json!({"client": "crm-2", "roles": ["service"], "ttl": "1d"}),
    )
    .await;
    assert_eq!(status, 201, "{minted}");
    let crm2 = minted["token"].as_str().unwrap().to_string();
    let (status, hook3) = post(
        &app,
        &crm2,
        "/v1/webhooks",
        json!({"url": rx.url, "kinds": ["consent.withdrawn"], "secret": SECRET}),
    )
    .await;
    assert_eq!(status, 201, "{hook3}");
    let id3 = hook3["id"].as_str().unwrap().to_string();
    let r = app
        .send(
            "DELETE",
            &format!("/v1/tokens/{}", minted["jti"].as_str().unwrap()),
            Some(&admin),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let (_, f) = post(&app, &service, "/v1/consents", consent("fay", "withdrawn")).await;
    let mut paused = Value::Null;
    for _ in 0..200 {
        let (_, v) = app
            .get_json_with(&format!("/v1/webhooks/{id3}"), &service)
            .await;
        if v["last_error"].is_string() {
            paused = v;
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        paused["last_error"]
            .as_str()
            .unwrap()
            .starts_with("paused:"),
        "{paused}"
    );
    let fay: Vec<Value> = rx
        .wait_for(6)
        .await
        .into_iter()
        .filter(|b| b["seq"] == f["seq"])
        .collect();
    assert_eq!(
        fay.len(),
        1,
        "only the first subscription delivers it: {fay:?}"
    );
    assert_eq!(fay[0]["webhook"], json!(id));

    // Deleting ends deliveries; subscriptions replay from the ledger.
    let r = app
        .send(
            "DELETE",
            &format!("/v1/webhooks/{id}"),
            Some(&service),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    post(&app, &service, "/v1/consents", consent("eve", "withdrawn")).await;
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.bodies().len(),
        4 + 2,
        "dee and fay arrived, not eve (after the deletion): {:?}",
        rx.bodies()
    );
    app.stop().await;
    rx.handle.stop(false).await;
    let report = commands::replay_check(&s, |_, _| {}).unwrap();
    assert!(report.ok(), "{:?}", report.differences);
    assert_eq!(crate::support::replayed_rows(&report, "webhooks"), (3, 3));
}

on_both_backends!(webhooks_and_the_change_feed, super::webhooks_and_feed);

#[actix_web::test]
async fn two_instances_deliver_each_change_once() {
    let Some(db) = TestDb::postgres() else { return };
    let data = tempfile::tempdir().unwrap();
    let s = quick(settings(&db, data.path()));
    let a = TestApp::spawn(s.clone()).await.unwrap();
    let b = TestApp::spawn(s.clone()).await.unwrap();
    let service = a.token(&[Role::Service, Role::ComplianceOfficer]).await;
    let (status, v) = post(
        &a,
        &service,
        "/v1/purposes",
        json!({"key": "newsletter", "title": "News"}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    // Both instances know the purpose before consents are recorded on either.
    for _ in 0..100 {
        let (_, check) = b
            .get_json_with(
                "/v1/consents/check?subject=x&purpose=newsletter&channel=email",
                &service,
            )
            .await;
        if check.get("allowed").is_some() {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let rx = Receiver::start().await;
    let (status, v) = post(
        &b,
        &service,
        "/v1/webhooks",
        json!({"url": rx.url, "kinds": ["consent.withdrawn"], "secret": SECRET}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let mut expected = BTreeSet::new();
    for i in 0..40 {
        let app = if i % 2 == 0 { &a } else { &b };
        let (status, r) = post(
            app,
            &service,
            "/v1/consents",
            consent(&format!("s{i}"), "withdrawn"),
        )
        .await;
        assert_eq!(status, 201, "{r}");
        expected.insert(r["seq"].as_u64().unwrap());
    }
    rx.wait_for(40).await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let seqs: Vec<u64> = rx
        .bodies()
        .iter()
        .map(|b| b["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs.len(), 40, "each once: {seqs:?}");
    assert_eq!(seqs.iter().copied().collect::<BTreeSet<_>>(), expected);
    assert!(seqs.windows(2).all(|p| p[0] < p[1]), "in order: {seqs:?}");
    verify(&rx.got.lock().unwrap());
    a.stop().await;
    b.stop().await;
    rx.handle.stop(false).await;
}
