//! The migrated schema matches schema.rs on both backends, and every migration's down then up gives
//! back the same schema.

use accord::db::{self, Backend, introspect, schema::TABLES};
use accord_tests::TestDb;

use crate::on_both_backends;

async fn matches_schema_rs(db: TestDb) {
    let mut conn = db.connect();
    db::run_migrations(&mut conn).unwrap();
    let actual = introspect::columns(&mut conn).unwrap();
    let declared: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
    let mut found: Vec<&str> = actual.keys().map(String::as_str).collect();
    found.sort_unstable();
    let mut expected = declared.clone();
    expected.sort_unstable();
    assert_eq!(found, expected, "tables in the database vs schema.rs");
    for t in TABLES {
        let cols = &actual[t.name];
        let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        let want: Vec<&str> = t.columns.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, want, "columns of {}", t.name);
        for ((name, ty), col) in t.columns.iter().zip(cols) {
            let (sql_type, nullable) = introspect::expected_type(ty);
            assert_eq!(col.sql_type, sql_type, "type of {}.{name}", t.name);
            assert_eq!(col.nullable, nullable, "nullability of {}.{name}", t.name);
        }
    }
}

on_both_backends!(schema_matches_schema_rs, super::matches_schema_rs);

async fn down_then_up_is_identity(db: TestDb) {
    let mut conn = db.connect();
    db::run_migrations(&mut conn).unwrap();
    let full = introspect::dump(&mut conn).unwrap();
    assert!(!full.is_empty());
    let backend = conn.backend();
    let n = db::migration_count(backend);
    assert!(n >= 1);
    for k in 1..=n {
        for _ in 0..k {
            db::revert_last_migration(&mut conn).unwrap();
        }
        if k == n {
            let left = introspect::columns(&mut conn).unwrap();
            assert!(left.is_empty(), "after reverting everything: {left:?}");
        }
        let applied = db::run_migrations(&mut conn).unwrap();
        assert_eq!(applied.len(), k);
        assert_eq!(
            introspect::dump(&mut conn).unwrap(),
            full,
            "schema after reverting {k} migration(s) and re-applying ({backend})"
        );
    }
    assert!(!db::has_pending_migrations(&mut conn).unwrap());
    assert!(matches!(backend, Backend::Sqlite | Backend::Postgres));
}

on_both_backends!(migrations_round_trip, super::down_then_up_is_identity);
