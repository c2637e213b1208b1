//! Helpers shared by the test modules.

use accord::ledger::LedgerEvent;

/// Generates one test per backend from an async function taking a [`accord_tests::TestDb`].
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            #[actix_web::test]
            async fn sqlite() {
                if let Some(db) = accord_tests::TestDb::new(accord_tests::Kind::Sqlite) {
                    $body(db).await
                }
            }

            #[actix_web::test]
            async fn postgres() {
                if let Some(db) = accord_tests::TestDb::new(accord_tests::Kind::Postgres) {
                    $body(db).await
                }
            }
        }
    };
}

/// An event for tests: something with a subject and a little personal data.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Noted {
    pub n: u64,
    pub subject: String,
    pub note: String,
}

impl Noted {
    pub fn new(n: u64) -> Self {
        Noted {
            n,
            subject: format!("subject-{}", n % 7),
            note: format!("note {n} with ünïcödé and \"quotes\""),
        }
    }
}

impl LedgerEvent for Noted {
    fn kind(&self) -> &'static str {
        "test.noted"
    }
    fn entity(&self) -> String {
        format!("note:{}", self.n)
    }
    fn subject(&self) -> Option<&str> {
        Some(&self.subject)
    }
}

/// (live, replayed) rows of a table in a replay report.
pub fn replayed_rows(report: &accord::replay::Report, table: &str) -> (usize, usize) {
    report
        .tables
        .iter()
        .find(|(t, _, _)| *t == table)
        .map(|(_, live, replayed)| (*live, *replayed))
        .unwrap_or_else(|| panic!("no table {table} in {report:?}"))
}

pub fn problem_field(v: &serde_json::Value) -> Option<&str> {
    v["errors"][0]["field"].as_str()
}

/// One string member of each object in a JSON array (`errors` → their `field`s).
pub fn each<'a>(list: &'a serde_json::Value, member: &str) -> Vec<&'a str> {
    list.as_array()
        .map(|items| items.iter().filter_map(|i| i[member].as_str()).collect())
        .unwrap_or_default()
}

/// The lines of an NDJSON answer (a send list's permitted ids, then its trailer).
pub fn json_lines(body: &str) -> Vec<serde_json::Value> {
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}
