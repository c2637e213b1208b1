//! The tamper suite: the database is edited behind Accord's back (triggers dropped first), and both
//! the online verifier (`accord ledger verify`) and the offline one (`accord-audit verify` on an
//! export) must fail, naming the seq or checkpoint and the reason.

use std::path::Path;

use accord::clock::SystemClock;
use accord::commands;
use accord::config::Settings;
use accord::db::AnyConnection;
use accord::ledger::Actor;
use accord_audit::checkpoint::Checkpoint;
use accord_audit::note::NoteSigner;
use accord_audit::verify::Failure;
use accord_tests::{TestApp, TestDb, settings};
use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, RunQueryDsl, sql_query};
use ed25519_dalek::SigningKey;

use crate::on_both_backends;
use crate::support::Noted;

/// Builds a ledger of 43 entries (initialisation, start-up, first-administrator link, 40 notes)
/// with checkpoints at 13, 23 and 43, and stops the server.
async fn build_ledger(db: &TestDb, data: &Path) -> Settings {
    let s = settings(db, data);
    let app = TestApp::spawn(s.clone()).await.unwrap();
    for i in 0..40u64 {
        app.ledger
            .record(Actor::system(), None, &Noted::new(i))
            .await
            .unwrap();
        if i == 9 || i == 19 {
            app.ledger.publish_checkpoint().await.unwrap();
        }
    }
    app.stop().await;
    s
}

fn drop_triggers(conn: &mut AnyConnection) {
    #[derive(QueryableByName)]
    struct Trigger {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        tbl: String,
    }
    let sql = match conn {
        AnyConnection::Sqlite(_) => {
            "SELECT name, tbl_name AS tbl FROM sqlite_master WHERE type = 'trigger'"
        }
        AnyConnection::Postgresql(_) => {
            "SELECT t.tgname::text AS name, c.relname::text AS tbl FROM pg_trigger t \
             JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal"
        }
    };
    let triggers: Vec<Trigger> = sql_query(sql).load(conn).unwrap();
    assert!(!triggers.is_empty());
    for t in triggers {
        let stmt = match conn {
            AnyConnection::Sqlite(_) => format!("DROP TRIGGER {}", t.name),
            AnyConnection::Postgresql(_) => format!("DROP TRIGGER {} ON {}", t.name, t.tbl),
        };
        conn.batch_execute(&stmt).unwrap();
    }
}

/// A 43-entry ledger with its triggers dropped, ready to be edited behind Accord's back.
struct Tampered {
    data: tempfile::TempDir,
    s: Settings,
    c: AnyConnection,
}

async fn tampered(db: &TestDb) -> Tampered {
    let data = tempfile::tempdir().unwrap();
    let s = build_ledger(db, data.path()).await;
    let mut c = db.connect();
    drop_triggers(&mut c);
    Tampered { data, s, c }
}

/// Both verifiers fail, each naming the seq or checkpoint and the reason.
fn both_fail_naming(
    s: &Settings,
    dir: &Path,
    pins: &[String],
    seq: Option<u64>,
    cp: Option<u64>,
    words: &str,
) {
    let (on, off) = both_fail(s, dir, pins);
    assert_names(&on, seq, cp, words);
    assert_names(&off, seq, cp, words);
}

/// Runs both verifiers and returns their failures.
fn both_fail(s: &Settings, dir: &Path, pins: &[String]) -> (Failure, Failure) {
    let online = commands::verify(s, pins)
        .unwrap()
        .expect_err("online verification must fail");
    let out = dir.join("tampered.jsonl");
    let offline = match commands::export(s, &SystemClock, &out, |_| {}) {
        Ok(_) => {
            let f = std::io::BufReader::new(std::fs::File::open(&out).unwrap());
            accord_audit::export::verify_export(f, pins, None, Default::default())
                .expect_err("offline verification must fail")
        }
        Err(e) => panic!("export of the tampered ledger failed: {e}"),
    };
    (online, offline)
}

fn assert_names(f: &Failure, seq: Option<u64>, cp: Option<u64>, words: &str) {
    let text = f.to_string();
    assert!(
        text.to_lowercase().contains(&words.to_lowercase()),
        "failure {text:?} should mention {words:?}"
    );
    if let Some(seq) = seq {
        assert_eq!(f.seq, Some(seq), "{text}");
    }
    if let Some(size) = cp {
        assert_eq!(f.checkpoint_size, Some(size), "{text}");
    }
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    body: String,
    #[diesel(sql_type = Text)]
    leaf_hash: String,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

async fn flipped_body_byte(db: TestDb) {
    let Tampered { data, s, mut c } = tampered(&db).await;
    let row: Row = sql_query("SELECT seq, body, leaf_hash FROM ledger_entries WHERE seq = 7")
        .get_result(&mut c)
        .unwrap();
    let flipped = row
        .body
        .replacen("\"actor\":\"system\"", "\"actor\":\"systen\"", 1);
    assert_ne!(flipped, row.body);
    c.batch_execute(&format!(
        "UPDATE ledger_entries SET body = {} WHERE seq = 7",
        quote(&flipped)
    ))
    .unwrap();
    both_fail_naming(
        &s,
        data.path(),
        &[],
        Some(7),
        None,
        "leaf hash does not match",
    );
}

on_both_backends!(tamper_flipped_body_byte, super::flipped_body_byte);

async fn deleted_row(db: TestDb) {
    let Tampered { data, s, mut c } = tampered(&db).await;
    c.batch_execute(
        "DELETE FROM ledger_payloads WHERE seq = 12; DELETE FROM ledger_entries WHERE seq = 12;",
    )
    .unwrap();
    both_fail_naming(&s, data.path(), &[], None, None, "expected seq 12");
}

on_both_backends!(tamper_deleted_row, super::deleted_row);

async fn swapped_rows(db: TestDb) {
    let Tampered { data, s, mut c } = tampered(&db).await;
    let rows: Vec<Row> = sql_query(
        "SELECT seq, body, leaf_hash FROM ledger_entries WHERE seq IN (5, 6) ORDER BY seq",
    )
    .load(&mut c)
    .unwrap();
    assert_eq!(rows[0].seq, 5);
    for (target, src) in [(5, &rows[1]), (6, &rows[0])] {
        c.batch_execute(&format!(
            "UPDATE ledger_entries SET body = {}, leaf_hash = {} WHERE seq = {target}",
            quote(&src.body),
            quote(&src.leaf_hash)
        ))
        .unwrap();
    }
    let (on, off) = both_fail(&s, data.path(), &[]);
    assert_eq!(on.seq, Some(5), "{on}");
    assert_eq!(off.seq, Some(5), "{off}");
}

on_both_backends!(tamper_swapped_rows, super::swapped_rows);

async fn altered_payload(db: TestDb) {
    let Tampered { data, s, mut c } = tampered(&db).await;
    c.batch_execute(
        "UPDATE ledger_payloads SET payload = '{\"n\":9,\"note\":\"rewritten\",\"subject\":\"subject-2\"}' WHERE seq = 11",
    )
    .unwrap();
    both_fail_naming(
        &s,
        data.path(),
        &[],
        Some(11),
        None,
        "payload does not match",
    );
}

on_both_backends!(tamper_altered_payload, super::altered_payload);

async fn truncated_log(db: TestDb) {
    let Tampered { data, s, mut c } = tampered(&db).await;
    c.batch_execute(
        "DELETE FROM ledger_payloads WHERE seq >= 37; DELETE FROM ledger_entries WHERE seq >= 37;",
    )
    .unwrap();
    both_fail_naming(&s, data.path(), &[], None, None, "truncated");
}

on_both_backends!(tamper_truncated_log, super::truncated_log);

async fn checkpoint_signed_by_another_key(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let s = build_ledger(&db, data.path()).await;
    let mut c = db.connect();
    let latest = accord::ledger::store::latest_checkpoint(&mut c)
        .unwrap()
        .unwrap();
    let origin = accord::ledger::store::read_tree_state(&mut c)
        .unwrap()
        .unwrap()
        .origin;
    let genuine = Checkpoint::open(
        &latest.note,
        &NoteSigner::new(&origin, SigningKey::from_bytes(&[0; 32]))
            .unwrap()
            .verifier(),
    );
    assert!(
        genuine.is_err(),
        "the test key must differ from the ledger key"
    );
    let forged = Checkpoint {
        origin: origin.clone(),
        size: latest.size.get(),
        root: accord_audit::hash::from_hex(&latest.root).unwrap(),
    }
    .sign(&NoteSigner::new(&origin, SigningKey::from_bytes(&[7; 32])).unwrap())
    .unwrap();
    drop_triggers(&mut c);
    c.batch_execute(&format!(
        "UPDATE ledger_checkpoints SET note = {} WHERE size = {}",
        quote(&forged),
        latest.size
    ))
    .unwrap();
    both_fail_naming(
        &s,
        data.path(),
        &[],
        None,
        Some(latest.size.get()),
        "signature",
    );
}

on_both_backends!(
    tamper_checkpoint_other_key,
    super::checkpoint_signed_by_another_key
);

/// History rewritten by someone holding the database and the signing key: a fork that verifies on
/// its own, but not against a checkpoint the auditor pinned before.
async fn fork_from_pinned_checkpoint(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let s = build_ledger(&db, data.path()).await;
    let mut c = db.connect();
    let pin = accord::ledger::store::latest_checkpoint(&mut c)
        .unwrap()
        .unwrap();
    let origin = accord::ledger::store::read_tree_state(&mut c)
        .unwrap()
        .unwrap()
        .origin;
    drop(c);

    // The fork: same keys, same origin, a different history that is longer than the pin.
    let fork_db = TestDb::new(db.kind()).unwrap();
    let mut fs = settings(&fork_db, data.path());
    fs.ledger.origin = Some(origin);
    let app = TestApp::spawn(fs.clone()).await.unwrap();
    for i in 0..60u64 {
        app.ledger
            .record(Actor::system(), None, &Noted::new(1000 + i))
            .await
            .unwrap();
    }
    app.stop().await;
    // On its own the fork is consistent: only the pin exposes it.
    commands::verify(&fs, &[]).unwrap().unwrap();
    let (on, off) = both_fail(&fs, data.path(), std::slice::from_ref(&pin.note));
    assert_names(&on, None, Some(pin.size.get()), "pinned");
    assert_names(&off, None, Some(pin.size.get()), "pinned");
    // The genuine ledger still agrees with its pin.
    commands::verify(&s, std::slice::from_ref(&pin.note))
        .unwrap()
        .unwrap();
}

on_both_backends!(tamper_fork_from_pin, super::fork_from_pinned_checkpoint);

/// Without dropping the triggers, the database itself refuses changes other than redaction.
async fn triggers_refuse_changes(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let s = build_ledger(&db, data.path()).await;
    let mut c = db.connect();
    for stmt in [
        "UPDATE ledger_entries SET kind = 'x' WHERE seq = 3",
        "DELETE FROM ledger_entries WHERE seq = 41",
        "UPDATE ledger_checkpoints SET note = 'x'",
        "DELETE FROM ledger_checkpoints",
        "DELETE FROM ledger_nodes",
        "DELETE FROM ledger_payloads WHERE seq = 41",
        "UPDATE ledger_payloads SET payload = '{}' WHERE seq = 4",
        // Redaction naming an earlier entry is not a redaction.
        "UPDATE ledger_payloads SET salt = NULL, payload = NULL, redacted_by = 2 WHERE seq = 4",
        "DELETE FROM ledger_tree_state",
        // The tree state only moves forward.
        "UPDATE ledger_tree_state SET size = 3",
        "UPDATE ledger_tree_state SET checkpoint_size = 0",
    ] {
        let r = c.batch_execute(stmt);
        assert!(r.is_err(), "{stmt} must be refused");
    }
    if let AnyConnection::Postgresql(_) = c {
        for t in [
            "ledger_entries",
            "ledger_payloads",
            "ledger_checkpoints",
            "ledger_nodes",
        ] {
            assert!(
                c.batch_execute(&format!("TRUNCATE {t} CASCADE")).is_err(),
                "TRUNCATE {t} must be refused"
            );
        }
        // ENABLE ALWAYS: replica mode does not switch them off.
        c.batch_execute("SET session_replication_role = replica")
            .unwrap();
        assert!(
            c.batch_execute("DELETE FROM ledger_entries WHERE seq = 41")
                .is_err()
        );
        c.batch_execute("SET session_replication_role = origin")
            .unwrap();
    }
    // Redaction is the one change the triggers permit; it is still caught by both verifiers,
    // since entry 40 is no erasure listing seq 4.
    c.batch_execute(
        "UPDATE ledger_payloads SET salt = NULL, payload = NULL, redacted_by = 40 WHERE seq = 4",
    )
    .unwrap();
    both_fail_naming(&s, data.path(), &[], Some(4), None, "redaction");
}

on_both_backends!(append_only_triggers, super::triggers_refuse_changes);

/// The tree-state row set back to an earlier size (computable from public leaf hashes, no key
/// needed): writes would fail and proofs would lie, so the online verifier must notice. The
/// history itself is intact, so an export of it still verifies offline.
async fn rolled_back_tree_state(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let s = build_ledger(&db, data.path()).await;
    let mut c = db.connect();
    let rows: Vec<Row> =
        sql_query("SELECT seq, body, leaf_hash FROM ledger_entries WHERE seq < 30 ORDER BY seq")
            .load(&mut c)
            .unwrap();
    let mut f = accord_audit::merkle::Frontier::new();
    for r in &rows {
        f.push(
            accord_audit::hash::from_hex(&r.leaf_hash).unwrap(),
            |_, _, _| {},
        );
    }
    let last = accord_audit::body::LeafBody::parse(&rows[29].body).unwrap();
    drop_triggers(&mut c);
    c.batch_execute(&format!(
        "UPDATE ledger_tree_state SET size = 30, frontier = {}, root = {}, last_leaf = {}, \
         last_at = {}, checkpoint_size = 23",
        quote(&f.to_hex()),
        quote(&accord_audit::hash::to_hex(&f.root())),
        quote(&rows[29].leaf_hash),
        last.at
    ))
    .unwrap();
    let online = commands::verify(&s, &[]).unwrap().unwrap_err();
    assert_names(&online, None, None, "rolled back");
    let out = data.path().join("export.jsonl");
    commands::export(&s, &SystemClock, &out, |_| {}).unwrap();
    let file = std::io::BufReader::new(std::fs::File::open(&out).unwrap());
    let report = accord_audit::export::verify_export(file, &[], None, Default::default()).unwrap();
    assert_eq!(report.entries, 43);
}

on_both_backends!(tamper_rolled_back_tree_state, super::rolled_back_tree_state);

/// A forged stored Merkle node would make served proofs fail; verification recomputes them.
async fn forged_merkle_node(db: TestDb) {
    let Tampered {
        data: _data,
        s,
        mut c,
    } = tampered(&db).await;
    c.batch_execute(&format!(
        "UPDATE ledger_nodes SET hash = {} WHERE level = 4 AND idx = 1",
        quote(&"ab".repeat(32))
    ))
    .unwrap();
    let online = commands::verify(&s, &[]).unwrap().unwrap_err();
    assert_names(
        &online,
        Some(31),
        None,
        "stored Merkle node at level 4, index 1",
    );
}

on_both_backends!(tamper_forged_merkle_node, super::forged_merkle_node);

/// The columns beside the body (used to find a subject's entries for erasure) must agree with it.
async fn edited_subject_ref_column(db: TestDb) {
    let Tampered {
        data: _data,
        s,
        mut c,
    } = tampered(&db).await;
    c.batch_execute(&format!(
        "UPDATE ledger_entries SET subject_ref = {} WHERE seq = 10",
        quote(&"cd".repeat(32))
    ))
    .unwrap();
    let online = commands::verify(&s, &[]).unwrap().unwrap_err();
    assert_names(&online, Some(10), None, "subject_ref column");
}

on_both_backends!(
    tamper_edited_subject_ref_column,
    super::edited_subject_ref_column
);
