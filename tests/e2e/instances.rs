//! Several instances on one PostgreSQL database: one linear history, no gap, no duplicate.

use std::collections::BTreeSet;

use accord::commands;
use accord::ledger::Actor;
use accord_tests::{TestApp, TestDb, settings};
use futures_util::future::join_all;

use crate::support::Noted;

const PER_INSTANCE: u64 = 2500;

#[actix_web::test]
async fn two_instances_write_one_linear_history() {
    let Some(db) = TestDb::postgres() else { return };
    let data = tempfile::tempdir().unwrap();
    // Both instances share the data directory's keys, as instances of one deployment share them.
    let a = TestApp::spawn(settings(&db, data.path())).await.unwrap();
    let b = TestApp::spawn(settings(&db, data.path())).await.unwrap();
    assert_eq!(a.ledger.origin(), b.ledger.origin());

    let events: Vec<Noted> = (0..2 * PER_INSTANCE).map(Noted::new).collect();
    let appends = events.iter().enumerate().map(|(i, e)| {
        let ledger = if i % 2 == 0 { &a.ledger } else { &b.ledger };
        ledger.record(Actor::system(), None, e)
    });
    // Both instances publish checkpoints while the writes race.
    let checkpoints = async {
        for _ in 0..5 {
            a.ledger.publish_checkpoint().await.unwrap();
            b.ledger.publish_checkpoint().await.unwrap();
            actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    let (results, ()) = tokio::join!(join_all(appends), checkpoints);
    let seqs: BTreeSet<u64> = results.into_iter().map(|r| r.unwrap().seq.get()).collect();
    assert_eq!(
        seqs.len() as u64,
        2 * PER_INSTANCE,
        "no seq was given twice"
    );
    // Seqs 0..5 are the initialisation, the two start-up entries and each instance's
    // first-administrator link.
    assert_eq!(
        seqs.iter().copied().collect::<Vec<_>>(),
        (5..5 + 2 * PER_INSTANCE).collect::<Vec<_>>(),
        "one contiguous history"
    );
    b.ledger.publish_checkpoint().await.unwrap();
    let s = a.settings.clone();
    a.stop().await;
    b.stop().await;
    let summary = commands::verify(&s, &[]).unwrap().unwrap();
    assert_eq!(summary.entries, 5 + 2 * PER_INSTANCE);
    assert!(summary.checkpoints >= 3);
    assert_eq!(summary.unsigned_tail, 0);
}
