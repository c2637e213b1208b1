//! The ledger through its public surfaces: HTTP read API, proofs, metrics, online verification,
//! export and offline verification.

use accord::auth::model::Role;
use accord::clock::SystemClock;
use accord::commands;
use accord::ledger::{Actor, AppendRequest, EventDraft};
use accord_audit::body::LeafBody;
use accord_audit::checkpoint::Checkpoint;
use accord_audit::hash;
use accord_audit::merkle;
use accord_audit::note::NoteVerifier;
use accord_tests::{TestApp, TestDb, settings};
use futures_util::future::join_all;

use crate::on_both_backends;
use crate::support::{Noted, problem_field};

fn unhex(v: &serde_json::Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

fn unhex_all(v: &serde_json::Value) -> Vec<Vec<u8>> {
    v.as_array().expect("array").iter().map(unhex).collect()
}

async fn round_trip(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(settings(&db, data.path())).await.unwrap();
    let auditor = app.token(&[Role::Auditor]).await;

    assert_eq!(app.get("/healthz").await.0, 200);
    let (status, ready) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["ready"], true);

    // The first checkpoint covers the initialisation and start-up entries.
    let (status, ct, note) = app.get_with("/v1/ledger/checkpoint", &auditor).await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/plain"), "{ct}");
    let (_, _, vkey) = app.get_with("/v1/ledger/key", &auditor).await;
    let verifier = NoteVerifier::parse(vkey.trim()).unwrap();
    let first = Checkpoint::open(&note, &verifier).unwrap();
    // Initialisation, start-up, the first-administrator link, the test's token.
    assert_eq!(first.size, 3);
    assert_eq!(first.origin, app.ledger.origin());

    // Concurrent appends get distinct, contiguous seqs, and carry their request ids.
    let events: Vec<Noted> = (0..300u64).map(Noted::new).collect();
    let appends = events.iter().enumerate().map(|(i, e)| {
        app.ledger
            .record(Actor::system(), Some(format!("req-{i}")), e)
    });
    let mut seqs: Vec<u64> = join_all(appends)
        .await
        .into_iter()
        .map(|r| r.unwrap().seq.get())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (4..304).collect::<Vec<_>>());
    let cp = app.ledger.publish_checkpoint().await.unwrap().unwrap();
    assert_eq!(cp.size, 304);

    // Entries by page: bodies are canonical leaf bodies whose hash is the leaf hash.
    let (status, page) = app
        .get_json_with("/v1/ledger/entries?from=0&limit=5", &auditor)
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["size"], 304);
    assert_eq!(page["next"], 5);
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5);
    let body0 = LeafBody::parse(entries[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body0.kind, "ledger.initialised");
    assert_eq!(body0.prev, "0".repeat(64));
    assert_eq!(
        hash::to_hex(&body0.leaf_hash()),
        entries[0]["leaf_hash"].as_str().unwrap()
    );
    let (_, page) = app
        .get_json_with("/v1/ledger/entries?from=302&limit=10", &auditor)
        .await;
    let last = page["entries"].as_array().unwrap();
    assert_eq!(last.len(), 2);
    assert!(page["next"].is_null());
    let body = LeafBody::parse(last[0]["body"].as_str().unwrap()).unwrap();
    assert!(body.request_id.as_deref().unwrap().starts_with("req-"));
    assert!(body.subject_ref.is_some());
    assert!(
        !last[0]["body"].as_str().unwrap().contains("subject-"),
        "the subject id must not appear in the leaf"
    );

    // An inclusion proof verifies against the signed checkpoint's root.
    let signed = Checkpoint::open(&cp.note, &verifier).unwrap();
    for seq in [0u64, 1, 150, 303] {
        let (status, p) = app
            .get_json_with(&format!("/v1/ledger/proofs/inclusion?seq={seq}"), &auditor)
            .await;
        assert_eq!(status, 200, "{p}");
        assert_eq!(p["size"], 304);
        assert_eq!(unhex(&p["root"]), signed.root.to_vec());
        merkle::verify_inclusion(
            &unhex(&p["leaf_hash"]),
            seq,
            304,
            &unhex_all(&p["proof"]),
            &signed.root,
        )
        .unwrap();
        assert_eq!(p["checkpoint"].as_str(), Some(cp.note.as_str()));
    }
    // And a consistency proof links the first checkpoint to the latest.
    let (status, p) = app
        .get_json_with("/v1/ledger/proofs/consistency?from=3&to=304", &auditor)
        .await;
    assert_eq!(status, 200, "{p}");
    merkle::verify_consistency(3, 304, &unhex_all(&p["proof"]), &first.root, &signed.root).unwrap();

    // Without credentials, 401; with a role the policy does not allow, 403 naming the permission.
    let (status, p) = app.get_json("/v1/ledger/checkpoint").await;
    assert_eq!(status, 401, "{p}");
    let service = app.token(&[Role::Service]).await;
    let (status, p) = app.get_json_with("/v1/ledger/checkpoint", &service).await;
    assert_eq!(status, 403, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("ledger:read"), "{p}");

    // Bad input: a problem document naming what was wrong.
    let (status, p) = app
        .get_json_with("/v1/ledger/entries?limit=0", &auditor)
        .await;
    assert_eq!(status, 422);
    assert_eq!(problem_field(&p), Some("limit"));
    // A seq past what any ledger can hold is refused, not answered with an empty page.
    let (status, p) = app
        .get_json_with("/v1/ledger/entries?from=9223372036854775808", &auditor)
        .await;
    assert_eq!(status, 400, "{p}");
    let (status, p) = app
        .get_json_with("/v1/ledger/proofs/inclusion?seq=abc", &auditor)
        .await;
    assert_eq!(status, 400, "{p}");
    assert_eq!(p["type"], "/problems/bad-request");
    // Sizes past the ledger, or past the latest checkpoint by default, depend on the ledger's
    // state (409); a request at odds with itself is a 422.
    for (query, expected, field) in [
        ("inclusion?seq=5000", 409, "seq"),
        ("inclusion?seq=5&size=3", 422, "seq"),
        ("inclusion?seq=9000&size=5000", 422, "seq"),
        ("consistency?from=6000&to=5000", 422, "from"),
        ("inclusion?seq=0&size=5000", 409, "size"),
        ("consistency?from=3&to=2", 422, "from"),
        ("consistency?from=1&to=5000", 409, "to"),
        ("consistency?from=0&to=3", 422, "from"),
    ] {
        let (status, p) = app
            .get_json_with(&format!("/v1/ledger/proofs/{query}"), &auditor)
            .await;
        assert_eq!(
            (status, problem_field(&p)),
            (expected, Some(field)),
            "{query}: {p}"
        );
    }
    let (status, ct, _) = app.get("/no/such/route").await;
    assert_eq!(status, 404);
    assert_eq!(ct, "application/problem+json");

    // The caller's request id comes back.
    let res = app
        .client()
        .get(app.url("/healthz"))
        .insert_header(("x-request-id", "trace-abc-123"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers().get("x-request-id").unwrap().to_str().unwrap(),
        "trace-abc-123"
    );

    // Metrics.
    let (status, _, metrics) = app.get_with("/metrics", &auditor).await;
    assert_eq!(status, 200);
    for name in [
        "accord_http_requests_total",
        "accord_http_request_duration_seconds_bucket",
        "accord_ledger_size",
        "accord_ledger_append_latency_seconds_bucket",
        "accord_ledger_batch_entries_bucket",
        "accord_ledger_checkpoint_age_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    assert!(metrics.contains("route=\"/v1/ledger/proofs/inclusion\""));

    // Online verification, export, offline verification.
    let s = app.settings.clone();
    // 304 and the service token issued for the 403 check.
    let summary = commands::verify(&s, &[]).unwrap().unwrap();
    assert_eq!(summary.entries, 305);
    assert!(summary.checkpoints >= 2);
    let out = data.path().join("export.jsonl");
    let exported = commands::export(&s, &SystemClock, &out, |_| {}).unwrap();
    assert_eq!(exported.entries, 305);
    let file = std::io::BufReader::new(std::fs::File::open(&out).unwrap());
    let report = accord_audit::export::verify_export(
        file,
        std::slice::from_ref(&note),
        None,
        Default::default(),
    )
    .unwrap();
    assert_eq!(report.entries, 305);
    assert_eq!(report.pins, 1);

    app.stop().await;
}

on_both_backends!(ledger_round_trip, super::round_trip);

/// A projection that fails rolls back its own append only: its neighbours are written and the
/// log stays contiguous.
async fn failing_projection_is_isolated(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(settings(&db, data.path())).await.unwrap();
    let ok = |n| {
        AppendRequest::new(
            Actor::system(),
            vec![EventDraft::new(&Noted::new(n)).unwrap()],
        )
        .project(|conn, appended| {
            use diesel::connection::SimpleConnection;
            assert_eq!(appended.len(), 1);
            conn.batch_execute("SELECT 1")?;
            Ok(())
        })
    };
    let bad = AppendRequest::new(
        Actor::system(),
        vec![EventDraft::new(&Noted::new(99)).unwrap()],
    )
    .project(|_, _| -> Result<(), _> {
        Err(accord::error::AppError::conflict(
            accord::error::ConflictCode::Changed,
            "refused by the projection",
        ))
    });
    let panics = AppendRequest::new(
        Actor::system(),
        vec![EventDraft::new(&Noted::new(98)).unwrap()],
    )
    .project(|_, _| -> Result<(), _> { panic!("a bug in a projection") });
    let (a, b, c, d) = tokio::join!(
        app.ledger.append(ok(1)),
        app.ledger.append(bad),
        app.ledger.append(ok(2)),
        app.ledger.append(panics)
    );
    match d {
        Err(accord::error::AppError::Internal(e)) => assert!(e.to_string().contains("panicked")),
        other => panic!("expected the panic as an error, got {other:?}"),
    }
    // The sequencer survived it.
    assert!(app.ledger.is_running());
    assert_eq!(app.get_json("/readyz").await.0, 200);
    let a = a.unwrap();
    let c = c.unwrap();
    match b {
        Err(accord::error::AppError::Conflict { detail, .. }) => {
            assert!(detail.contains("refused"))
        }
        other => panic!("expected the projection's error, got {other:?}"),
    }
    let mut seqs = vec![a[0].seq, c[0].seq];
    seqs.sort_unstable();
    assert_eq!(seqs, vec![3, 4]);
    app.ledger.publish_checkpoint().await.unwrap();
    let summary = commands::verify(&app.settings, &[]).unwrap().unwrap();
    assert_eq!(summary.entries, 5);
    app.stop().await;
}

on_both_backends!(projection_isolation, super::failing_projection_is_isolated);

/// Graceful stop writes what is queued and publishes a final checkpoint covering it.
async fn stop_drains_and_checkpoints(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let s = settings(&db, data.path());
    let app = TestApp::spawn(s.clone()).await.unwrap();
    let before = app.ledger.size();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let total = 2000u64;
    let appends: Vec<_> = (0..total)
        .map(|i| {
            let (l, done) = (app.ledger.clone(), done.clone());
            actix_web::rt::spawn(async move {
                let r = l.record(Actor::system(), None, &Noted::new(i)).await;
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                r
            })
        })
        .collect();
    // Stop once some appends are written and others are still queued or in flight.
    while done.load(std::sync::atomic::Ordering::SeqCst) < 10 {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let at_stop = done.load(std::sync::atomic::Ordering::SeqCst);
    app.stop().await;
    assert!(
        (at_stop as u64) < total,
        "every append had finished before the stop: nothing was in flight"
    );
    let mut acknowledged = 0u64;
    for a in appends {
        if a.await.unwrap().is_ok() {
            acknowledged += 1;
        }
    }
    let mut conn = db.connect();
    let state = accord::ledger::store::read_tree_state(&mut conn)
        .unwrap()
        .unwrap();
    assert_eq!(
        state.size(),
        before + acknowledged,
        "exactly the acknowledged appends were written"
    );
    let latest = accord::ledger::store::latest_checkpoint(&mut conn)
        .unwrap()
        .unwrap();
    assert_eq!(
        latest.size.get(),
        state.size(),
        "the final checkpoint covers every entry"
    );
    // A restart records a new start (and, still with no user, a new first-administrator link)
    // and keeps the log verifiable.
    let app = TestApp::spawn(s.clone()).await.unwrap();
    assert_eq!(app.ledger.size(), state.size() + 2);
    app.stop().await;
    let summary = commands::verify(&s, &[]).unwrap().unwrap();
    assert_eq!(summary.entries, state.size() + 2);
    assert_eq!(summary.unsigned_tail, 0);
}

on_both_backends!(graceful_stop, super::stop_drains_and_checkpoints);
