//! The end-to-end test harness: a fresh database per test (a temporary SQLite file, or a new
//! PostgreSQL database created and dropped around the test), the real application built with
//! `Application::build` on port 0, and the rule that a service a test needs is skipped with a
//! notice locally but required in CI (`ACCORD_TEST_REQUIRE=postgres,browser,smtp`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use accord::clock::{SharedClock, SystemClock};
use accord::config::{Overrides, Settings};
use accord::db::{AnyConnection, DatabaseUrl, Manager};
use accord::{Application, StartError};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use tempfile::TempDir;

pub mod smtp;

/// Whether CI demands this service (`ACCORD_TEST_REQUIRE` is a comma-separated list).
pub fn required(service: &str) -> bool {
    std::env::var("ACCORD_TEST_REQUIRE")
        .map(|v| v.split(',').any(|s| s.trim() == service))
        .unwrap_or(false)
}

/// Skips (returns `None` after a notice) or, when the service is required, fails the test.
pub fn unavailable<T>(service: &str, why: &str) -> Option<T> {
    if required(service) {
        panic!("{service} is required by ACCORD_TEST_REQUIRE but unavailable: {why}");
    }
    eprintln!("SKIPPED ({service} unavailable: {why})");
    None
}

/// A database for one test, removed when dropped.
pub enum TestDb {
    Sqlite {
        _dir: TempDir,
        path: PathBuf,
    },
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("accord.db");
        TestDb::Sqlite { _dir: dir, path }
    }

    /// A fresh PostgreSQL database, or `None` (skipped) when PostgreSQL is not configured.
    pub fn postgres() -> Option<TestDb> {
        let Ok(admin_url) = std::env::var("ACCORD_TEST_POSTGRES_URL") else {
            return unavailable("postgres", "ACCORD_TEST_POSTGRES_URL is not set");
        };
        let mut admin = match PgConnection::establish(&admin_url) {
            Ok(c) => c,
            Err(e) => return unavailable("postgres", &e.to_string()),
        };
        let name = format!("accord_test_{}", hex::encode(rand_bytes()));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create test database");
        let url = replace_db_name(&admin_url, &name);
        Some(TestDb::Postgres {
            admin_url,
            name,
            url,
        })
    }

    pub fn new(kind: Kind) -> Option<TestDb> {
        match kind {
            Kind::Sqlite => Some(TestDb::sqlite()),
            Kind::Postgres => TestDb::postgres(),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            TestDb::Sqlite { .. } => Kind::Sqlite,
            TestDb::Postgres { .. } => Kind::Postgres,
        }
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite { path, .. } => path.display().to_string(),
            TestDb::Postgres { url, .. } => url.clone(),
        }
    }

    pub fn database_url(&self) -> DatabaseUrl {
        DatabaseUrl::parse(&self.url()).expect("test database URL")
    }

    /// A direct connection, for tests that look at (or tamper with) the tables.
    pub fn connect(&self) -> AnyConnection {
        Manager::new(self.database_url())
            .open()
            .expect("connect to test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres {
            admin_url, name, ..
        } = self
            && let Ok(mut c) = PgConnection::establish(admin_url)
        {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let (head, _) = match base[scheme_end..].find('/') {
        Some(i) => base.split_at(scheme_end + i),
        None => (base, ""),
    };
    match query {
        Some(q) => format!("{head}/{name}?{q}"),
        None => format!("{head}/{name}"),
    }
}

pub fn rand_bytes() -> [u8; 6] {
    accord::keys::random_bytes::<6>().expect("randomness")
}

/// Settings for a test server: its own data directory, port 0, small pools, no periodic checkpoint
/// unless asked.
pub fn settings(db: &TestDb, data_dir: &Path) -> Settings {
    let overrides = Overrides {
        config_file: None,
        data_dir: Some(data_dir.to_path_buf()),
        listen: Some("127.0.0.1:0".into()),
        database_url: Some(db.url()),
    };
    let mut s = Settings::load_with(&overrides, |_| None).expect("test settings");
    s.policies_dir = Some(access_policies(data_dir));
    s.pool_size = 4;
    s.workers = 2;
    s.ledger.checkpoint_interval = Duration::from_secs(3600);
    s.shutdown_timeout = Duration::from_secs(5);
    s
}

/// A policies folder with the repository's access model and policy only: tests start with no
/// purposes (one test loads the repository's `purposes.toml` on purpose).
pub fn access_policies(data_dir: &Path) -> PathBuf {
    let dir = data_dir.join("policies");
    std::fs::create_dir_all(&dir).expect("policies dir");
    for f in ["model.conf", "policy.csv"] {
        std::fs::copy(policies_dir().join(f), dir.join(f)).expect("copy policy file");
    }
    dir
}

/// The repository's policies folder.
pub fn policies_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../policies"))
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        if self.body.is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A running application and what a test needs to talk to it.
pub struct TestApp {
    pub address: String,
    pub settings: Settings,
    pub ledger: accord::ledger::Ledger,
    pub pool: accord::db::Pool,
    pub state: actix_web::web::Data<accord::state::AppState>,
    pub routes: Vec<accord::authz::RouteSpec>,
    pub setup_link: Option<String>,
    handle: actix_web::dev::ServerHandle,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// Builds and runs the application (inside an actix system, as `#[actix_web::test]` provides).
    pub async fn spawn(settings: Settings) -> Result<TestApp, StartError> {
        Self::spawn_with_clock(settings, Arc::new(SystemClock)).await
    }

    pub async fn spawn_with_clock(
        settings: Settings,
        clock: SharedClock,
    ) -> Result<TestApp, StartError> {
        let app = Application::build_with_clock(settings.clone(), clock).await?;
        let address = format!("http://{}", app.address());
        let ledger = app.ledger().clone();
        let pool = app.pool().clone();
        let handle = app.handle();
        let state = app.state();
        let setup_link = app.setup_link().map(str::to_string);
        let task = actix_web::rt::spawn(app.run_until_stopped());
        // Routes are registered when the first worker starts.
        let mut routes = Vec::new();
        for _ in 0..100 {
            routes = state.routes.get().cloned().unwrap_or_default();
            if !routes.is_empty() {
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
        if routes.is_empty() {
            handle.stop(false).await;
            return Err(StartError(
                "the server registered no routes within a second of starting".into(),
            ));
        }
        Ok(TestApp {
            address,
            settings,
            ledger,
            pool,
            state,
            routes,
            setup_link,
            handle,
            task: Some(task),
        })
    }

    /// Issues an API token carrying `roles` (as an admin would), valid for an hour.
    pub async fn token(&self, roles: &[accord::auth::model::Role]) -> String {
        self.token_valid_for(roles, Duration::from_secs(3600)).await
    }

    /// Issues an API token valid for `ttl` (tests that move a manual clock need long ones).
    pub async fn token_valid_for(
        &self,
        roles: &[accord::auth::model::Role],
        ttl: Duration,
    ) -> String {
        accord::auth::api::service(&self.state)
            .issue_token(
                accord::ledger::Actor::system(),
                None,
                &self.state.access.tokens,
                accord::auth::service::TokenOrder {
                    client: "test-client",
                    roles,
                    ttl,
                },
                None,
            )
            .await
            .expect("issue token")
            .token
    }

    /// A token signed with this server's key but never issued through the ledger (as someone
    /// holding the key file could make): it must be refused.
    pub fn unrecorded_token(&self, roles: &[accord::auth::model::Role]) -> String {
        let tokens = &self.state.access.tokens;
        tokens
            .sign(&accord::auth::tokens::ApiClaims {
                iss: tokens.issuer().to_string(),
                aud: accord::auth::tokens::API_AUDIENCE.into(),
                sub: "service:rogue".into(),
                exp: 4_000_000_000,
                iat: 1,
                jti: "t_rogue".into(),
                roles: roles.to_vec(),
            })
            .expect("sign")
    }

    /// GET with a bearer token: status, content type, body.
    pub async fn get_with(&self, path: &str, token: &str) -> (u16, String, String) {
        self.fetch(path, Some(token)).await
    }

    async fn fetch(&self, path: &str, token: Option<&str>) -> (u16, String, String) {
        let mut req = self.client().get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let mut res = req.send().await.expect("request");
        let ct = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = res.body().limit(64 << 20).await.expect("body");
        (
            res.status().as_u16(),
            ct,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    /// Any request: method, path, bearer token, extra headers, and a body with its content type.
    /// Returns status, response headers (lowercase names) and body text.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client().request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        let sent = match body {
            Some((ct, bytes)) => {
                req.insert_header(("content-type", ct))
                    .send_body(bytes)
                    .await
            }
            None => req.send().await,
        };
        let mut res = sent.expect("request");
        let headers = res
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let body = res.body().limit(256 << 20).await.expect("body");
        Reply {
            status: res.status().as_u16(),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// POST a JSON body with a bearer token; the answer as JSON (`null` for an empty body).
    pub async fn post_json_with(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let r = self
            .send(
                "POST",
                path,
                Some(token),
                &[],
                Some(("application/json", body.to_string().into_bytes())),
            )
            .await;
        (r.status, r.json())
    }

    pub async fn get_json_with(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let (status, _, body) = self.get_with(path, token).await;
        let v = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: body is not JSON ({e}): {body}"));
        (status, v)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn client(&self) -> awc::Client {
        awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .disable_redirects()
            .finish()
    }

    /// GET, returning status, content type and body text.
    pub async fn get(&self, path: &str) -> (u16, String, String) {
        self.fetch(path, None).await
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let (status, _, body) = self.get(path).await;
        let v = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: body is not JSON ({e}): {body}"));
        (status, v)
    }

    /// Stops gracefully (as SIGTERM does) and waits until the ledger is drained.
    pub async fn stop(mut self) {
        self.handle.stop(true).await;
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// Runs `f` for each backend available (SQLite always, PostgreSQL when configured).
pub fn backends() -> Vec<Kind> {
    vec![Kind::Sqlite, Kind::Postgres]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced_in_urls() {
        assert_eq!(
            replace_db_name("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            replace_db_name("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(replace_db_name("postgres://h", "t3"), "postgres://h/t3");
    }
}
