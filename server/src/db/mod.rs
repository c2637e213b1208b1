//! Database access: one connection type over SQLite and PostgreSQL, the pool, per-connection set-up,
//! and the embedded migrations. What differs between the backends is written here, once:
//! [`insert_all!`](crate::insert_all), [`insert_or_ignore!`](crate::insert_or_ignore) and, for the
//! rare statement with no common form (the sequencing lock), [`per_backend!`](crate::per_backend);
//! stores never match on the connection type themselves.

pub mod introspect;
pub mod schema;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{self, ManageConnection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::one_line;

/// Rows per multi-row INSERT on PostgreSQL, below its bind-parameter limit for any of our tables.
pub const PG_INSERT_CHUNK: usize = 1000;

/// Inserts every row of a slice into a table, the way each backend is fastest: multi-row statements
/// in chunks on PostgreSQL (one round trip each), one cached prepared statement executed per row
/// on SQLite (faster there than preparing a new multi-row statement each time). Evaluates to a
/// `diesel::QueryResult<()>`. `insert_all!(conn, table, rows)`.
#[macro_export]
macro_rules! insert_all {
    ($conn:expr, $table:expr, $rows:expr) => {{
        use diesel::RunQueryDsl as _;
        let rows = $rows;
        match $conn {
            $crate::db::AnyConnection::Postgresql(c) => rows
                .chunks($crate::db::PG_INSERT_CHUNK)
                .try_for_each(|chunk| {
                    diesel::insert_into($table)
                        .values(chunk)
                        .execute(c)
                        .map(drop)
                }),
            $crate::db::AnyConnection::Sqlite(c) => rows
                .iter()
                .try_for_each(|row| diesel::insert_into($table).values(row).execute(c).map(drop)),
        }
    }};
}

/// One statement written for each backend, for the rare one with no common form:
/// `per_backend!(conn, postgres |c| …, sqlite |c| …)`.
#[macro_export]
macro_rules! per_backend {
    ($conn:expr, postgres |$p:ident| $pg:expr, sqlite |$s:ident| $lite:expr $(,)?) => {
        match $conn {
            $crate::db::AnyConnection::Postgresql($p) => $pg,
            $crate::db::AnyConnection::Sqlite($s) => $lite,
        }
    };
}

/// Inserts one row unless its key exists (`ON CONFLICT DO NOTHING` / `INSERT OR IGNORE`).
/// Evaluates to a `diesel::QueryResult<usize>`. `insert_or_ignore!(conn, table, values)`.
#[macro_export]
macro_rules! insert_or_ignore {
    ($conn:expr, $table:expr, $values:expr) => {{
        use diesel::RunQueryDsl as _;
        match $conn {
            $crate::db::AnyConnection::Postgresql(c) => diesel::insert_into($table)
                .values($values)
                .on_conflict_do_nothing()
                .execute(c),
            $crate::db::AnyConnection::Sqlite(c) => diesel::insert_or_ignore_into($table)
                .values($values)
                .execute(c),
        }
    }};
}

/// A table a domain's projection writes, as `accord ledger replay --check` compares it: its
/// primary key columns, and how to read its rows (as JSON objects, one member per column).
pub struct ProjectedTable {
    pub name: &'static str,
    pub key: &'static [&'static str],
    pub rows: Rows,
}

/// How a projected table's rows are read.
#[derive(Clone, Copy)]
pub enum Rows {
    /// A small table, read whole.
    All(fn(&mut AnyConnection) -> diesel::QueryResult<Vec<serde_json::Value>>),
    /// A table keyed by a ledger seq (its only key column), read in seq order a page at a time:
    /// the rows after `after`, at most `limit` of them.
    BySeq(fn(&mut AnyConnection, i64, i64) -> diesel::QueryResult<Vec<serde_json::Value>>),
}

/// Rows as JSON objects, for [`ProjectedTable::rows`].
pub fn json_rows<T: serde::Serialize>(rows: Vec<T>) -> diesel::QueryResult<Vec<serde_json::Value>> {
    rows.iter()
        .map(|r| {
            serde_json::to_value(r)
                .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
        })
        .collect()
}

/// How long a SQLite connection waits for a lock before it reports the database busy.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5000;
/// Pages the SQLite write-ahead log may hold before a commit copies it into the database. SQLite's
/// default (1,000) made the sequencer spend a quarter of its time checkpointing: the pages every
/// batch rewrites (the tree state, the ends of the append-only tables, the upper index levels) were
/// copied again each time. With a longer log they are copied once per checkpoint.
const SQLITE_AUTOCHECKPOINT_PAGES: u32 = 16_384;
/// Bytes the log file is cut back to after a checkpoint restarts it.
const SQLITE_JOURNAL_SIZE_LIMIT: u64 = 64 << 20;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// A connection to either backend. PostgreSQL first: the variant is always chosen from the URL
/// scheme by [`Manager`], never by trying one after the other (SQLite would accept any string as a
/// file name and create it).
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

impl AnyConnection {
    pub fn backend(&self) -> Backend {
        match self {
            AnyConnection::Postgresql(_) => Backend::Postgres,
            AnyConnection::Sqlite(_) => Backend::Sqlite,
        }
    }
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConn = r2d2::PooledConnection<Manager>;

/// Runs blocking database work on the blocking thread pool with a pooled connection (taken
/// there too, so waiting for one never blocks an async worker).
pub async fn blocking<T, F>(pool: &Pool, f: F) -> Result<T, crate::error::AppError>
where
    T: Send + 'static,
    F: FnOnce(&mut AnyConnection) -> Result<T, crate::error::AppError> + Send + 'static,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get()?;
        f(&mut conn)
    })
    .await?
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// Where the database is. Parsed once, at start; the PostgreSQL URL may hold a password, so
/// `Display` masks it.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    /// `postgres://…` / `postgresql://…` is PostgreSQL; `sqlite://PATH`, `sqlite:PATH` or a plain path
    /// is a SQLite file.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("the database URL is empty".into());
        }
        if let Some(rest) = s
            .strip_prefix("postgres://")
            .or_else(|| s.strip_prefix("postgresql://"))
        {
            if rest.is_empty() || rest.starts_with('/') && rest.len() == 1 {
                return Err(format!(
                    "the database URL {} names no host or database",
                    mask_password(s)
                ));
            }
            return Ok(DatabaseUrl::Postgres(s.to_string()));
        }
        if let Some((scheme, _)) = s.split_once("://")
            && scheme != "sqlite"
        {
            return Err(format!(
                "the database URL scheme {scheme:?} is not supported: use postgres://… or a SQLite file path"
            ));
        }
        let path = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
            .unwrap_or(s);
        if path.is_empty() || path == ":memory:" {
            return Err(
                "the SQLite database must be a file path (an in-memory database would be empty for every connection)"
                    .into(),
            );
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
    }

    pub fn backend(&self) -> Backend {
        match self {
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            DatabaseUrl::Postgres(u) => f.write_str(&mask_password(u)),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let masked_authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    // A password may also come as a query parameter.
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let q: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", q.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{masked_authority}{tail}")
}

/// Adds libpq connection parameters the URL does not set itself: a connect timeout, and TCP
/// keepalives so a peer that vanished is noticed in about a minute rather than hours.
pub fn with_pg_defaults(url: &str) -> String {
    const DEFAULTS: [(&str, &str); 5] = [
        ("connect_timeout", "10"),
        ("keepalives", "1"),
        ("keepalives_idle", "30"),
        ("keepalives_interval", "10"),
        ("keepalives_count", "3"),
    ];
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let present: Vec<&str> = query
        .split('&')
        .filter_map(|kv| kv.split('=').next())
        .collect();
    let mut out = url.to_string();
    let mut sep = if url.contains('?') { '&' } else { '?' };
    for (k, v) in DEFAULTS {
        if !present.contains(&k) {
            out.push(sep);
            out.push_str(k);
            out.push('=');
            out.push_str(v);
            sep = '&';
        }
    }
    out
}

/// Why a connection could not be made, on one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(String);

/// The r2d2 manager: builds the right variant for the URL and prepares each SQLite connection.
#[derive(Debug, Clone)]
pub struct Manager {
    url: DatabaseUrl,
}

impl Manager {
    pub fn new(url: DatabaseUrl) -> Self {
        Manager { url }
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Opens one connection outside the pool (the sequencer keeps its own).
    pub fn open(&self) -> Result<AnyConnection, ConnectError> {
        match &self.url {
            DatabaseUrl::Postgres(u) => {
                let mut c = PgConnection::establish(&with_pg_defaults(u)).map_err(|e| {
                    ConnectError(format!(
                        "cannot connect to PostgreSQL at {}: {}",
                        mask_password(u),
                        one_line(&e.to_string())
                    ))
                })?;
                // A session that dies inside a transaction must not hold the sequencing lock for
                // hours, and no one waits on a lock forever.
                c.batch_execute(
                    "SET idle_in_transaction_session_timeout = '60s'; SET lock_timeout = '30s'",
                )
                .map_err(|e| {
                    ConnectError(format!(
                        "cannot prepare the PostgreSQL session at {}: {}",
                        mask_password(u),
                        one_line(&e.to_string())
                    ))
                })?;
                Ok(AnyConnection::Postgresql(c))
            }
            DatabaseUrl::Sqlite(path) => {
                let path_str = path.to_str().ok_or_else(|| {
                    ConnectError(format!("the SQLite path {} is not UTF-8", path.display()))
                })?;
                let mut c = SqliteConnection::establish(path_str).map_err(|e| {
                    ConnectError(format!(
                        "cannot open the SQLite database {}: {}",
                        path.display(),
                        one_line(&e.to_string())
                    ))
                })?;
                // busy_timeout first, so that switching to WAL waits for other openers.
                c.batch_execute(&format!(
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL; \
                     PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; \
                     PRAGMA wal_autocheckpoint = {SQLITE_AUTOCHECKPOINT_PAGES}; \
                     PRAGMA journal_size_limit = {SQLITE_JOURNAL_SIZE_LIMIT};"
                ))
                .map_err(|e| {
                    ConnectError(format!(
                        "cannot prepare the SQLite database {}: {e}",
                        path.display()
                    ))
                })?;
                Ok(AnyConnection::Sqlite(c))
            }
        }
    }
}

impl ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<AnyConnection, ConnectError> {
        self.open()
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), ConnectError> {
        conn.batch_execute("SELECT 1")
            .map_err(|e| ConnectError(e.to_string()))
    }

    fn has_broken(&self, _conn: &mut AnyConnection) -> bool {
        false
    }
}

/// Builds the pool and checks that one connection can be made now, so a bad URL or an unreachable
/// database is reported at start with the reason.
pub fn connect(url: &DatabaseUrl, max_size: u32) -> Result<Pool, ConnectError> {
    if let DatabaseUrl::Sqlite(path) = url {
        ensure_parent_dir(path)?;
    }
    let manager = Manager::new(url.clone());
    // Fail fast with the real reason rather than r2d2's generic timeout.
    drop(manager.open()?);
    r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(10))
        .test_on_check_out(false)
        .build(manager)
        .map_err(|e| ConnectError(format!("cannot build the connection pool: {e}")))
}

/// Creates the SQLite file's directory, and the file itself readable only by its owner (SQLite
/// gives its -wal and -shm files the same permissions).
fn ensure_parent_dir(path: &Path) -> Result<(), ConnectError> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            ConnectError(format!(
                "cannot create the directory {}: {e}",
                parent.display()
            ))
        })?;
    }
    if !path.exists() {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        match opts.open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(ConnectError(format!(
                    "cannot create the SQLite database {}: {e}",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

/// One applied migration, as `accord migrate` reports it.
pub type MigrationReport = Vec<String>;

fn migrations_for(conn: &AnyConnection) -> EmbeddedMigrations {
    match conn.backend() {
        Backend::Sqlite => SQLITE_MIGRATIONS,
        Backend::Postgres => POSTGRES_MIGRATIONS,
    }
}

/// Key of the PostgreSQL advisory lock that serialises migrations between instances starting at once.
const MIGRATION_LOCK: i64 = 0x6163_636f_7264_0001;

/// Applies every pending migration and names the ones applied. On PostgreSQL, instances starting
/// together take turns (advisory lock), so none fails on half-created tables.
pub fn run_migrations(conn: &mut AnyConnection) -> anyhow::Result<MigrationReport> {
    let migrations = migrations_for(conn);
    let applied = match conn {
        AnyConnection::Postgresql(c) => {
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
            let r = c
                .run_pending_migrations(migrations)
                .map(|v| v.iter().map(|m| m.to_string()).collect::<Vec<_>>())
                .map_err(|e| anyhow::anyhow!("migration failed: {e}"));
            c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
            r?
        }
        AnyConnection::Sqlite(c) => c
            .run_pending_migrations(migrations)
            .map(|v| v.iter().map(|m| m.to_string()).collect::<Vec<_>>())
            .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?,
    };
    Ok(applied)
}

/// Whether migrations are pending (for `/readyz`).
pub fn has_pending_migrations(conn: &mut AnyConnection) -> anyhow::Result<bool> {
    let migrations = migrations_for(conn);
    match conn {
        AnyConnection::Postgresql(c) => c.has_pending_migration(migrations),
        AnyConnection::Sqlite(c) => c.has_pending_migration(migrations),
    }
    .map_err(|e| anyhow::anyhow!("cannot read the migration state: {e}"))
}

/// Reverts the most recent migration (for the migration round-trip test and operators).
pub fn revert_last_migration(conn: &mut AnyConnection) -> anyhow::Result<String> {
    let migrations = migrations_for(conn);
    let v = match conn {
        AnyConnection::Postgresql(c) => c.revert_last_migration(migrations),
        AnyConnection::Sqlite(c) => c.revert_last_migration(migrations),
    }
    .map_err(|e| anyhow::anyhow!("revert failed: {e}"))?;
    Ok(v.to_string())
}

/// Number of migrations embedded for a backend.
pub fn migration_count(backend: Backend) -> usize {
    use diesel::migration::MigrationSource;
    let src = match backend {
        Backend::Sqlite => SQLITE_MIGRATIONS,
        Backend::Postgres => POSTGRES_MIGRATIONS,
    };
    MigrationSource::<diesel::sqlite::Sqlite>::migrations(&src)
        .map(|m| m.len())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_backend_from_the_scheme() {
        assert_eq!(
            DatabaseUrl::parse("postgres://u:p@h/db").map(|u| u.backend()),
            Ok(Backend::Postgres)
        );
        assert_eq!(
            DatabaseUrl::parse("postgresql://h/db").map(|u| u.backend()),
            Ok(Backend::Postgres)
        );
        assert_eq!(
            DatabaseUrl::parse("./data/accord.db"),
            Ok(DatabaseUrl::Sqlite("./data/accord.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db"),
            Ok(DatabaseUrl::Sqlite("/tmp/x.db".into()))
        );
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
        assert!(DatabaseUrl::parse("").is_err());
        assert!(DatabaseUrl::parse(":memory:").is_err());
    }

    #[test]
    fn postgres_urls_get_timeouts_and_keepalives_unless_set() {
        assert_eq!(
            with_pg_defaults("postgres://h/db"),
            "postgres://h/db?connect_timeout=10&keepalives=1&keepalives_idle=30&keepalives_interval=10&keepalives_count=3"
        );
        let u = with_pg_defaults("postgres://h/db?connect_timeout=3&sslmode=disable");
        assert!(u.starts_with("postgres://h/db?connect_timeout=3&sslmode=disable&keepalives=1"));
        assert_eq!(u.matches("connect_timeout").count(), 1);
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_password("postgres://app:s3cret@db:5432/accord"),
            "postgres://app:***@db:5432/accord"
        );
        assert_eq!(
            mask_password("postgres://db/accord?user=a&password=s3cret"),
            "postgres://db/accord?user=a&password=***"
        );
        let u = DatabaseUrl::parse("postgres://app:s3cret@db/accord").unwrap();
        assert!(!format!("{u} {u:?}").contains("s3cret"));
    }
}
