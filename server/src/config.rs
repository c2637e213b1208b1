//! Settings: defaults < config file (TOML) < `ACCORD_*` environment < command-line flags.
//! Everything is validated here, at start, so a bad value ends the process with one clear sentence
//! instead of failing later.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::DatabaseUrl;

/// A configuration problem, phrased for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// How the ledger batches and publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerSettings {
    /// The log's origin line (C2SP checkpoint); chosen once, when the ledger is initialised.
    pub origin: Option<String>,
    /// Most entries written in one transaction.
    pub batch_max: usize,
    /// How long the sequencer waits for more appends before it writes a batch.
    pub batch_wait: Duration,
    /// How often a checkpoint is published when the tree has grown.
    pub checkpoint_interval: Duration,
}

/// Limits on what one request may carry, each named in the error that enforces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Largest consent import body (`POST /v1/consents/import`), in bytes.
    pub import_bytes: usize,
    /// Most rows in one import.
    pub import_rows: u64,
    /// Longest line of an NDJSON or CSV body (imports, send lists), in bytes.
    pub line_bytes: usize,
    /// Most items in one batch check.
    pub batch_items: usize,
    /// Largest signed document stored for a DPA version, in bytes.
    pub document_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            import_bytes: 256 * 1024 * 1024,
            import_rows: 1_000_000,
            line_bytes: 64 * 1024,
            batch_items: 10_000,
            document_bytes: 20 * 1024 * 1024,
        }
    }
}

/// Which requests get a line in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLog {
    /// None.
    Off,
    /// Answers with a 4xx or 5xx status, and requests slower than `slow_request_ms`.
    Errors,
    /// Every request.
    All,
}

/// A network (address and prefix length) whose hosts are trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `::1/128` or a bare address (the host alone).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: std::net::IpAddr = a
            .parse()
            .map_err(|_| format!("{s:?} is not an address or a CIDR network such as 10.0.0.0/8"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A trusted identity provider whose tokens Accord accepts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalIssuer {
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// The `aud` its tokens must carry for Accord.
    pub audience: String,
    /// Its public keys, as a JWKS file (each key with `kid` and `alg`).
    pub jwks_file: PathBuf,
    /// The claim listing the caller's groups or roles.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Group name in that claim → Accord roles.
    #[serde(default)]
    pub role_map: std::collections::BTreeMap<String, Vec<String>>,
}

fn default_roles_claim() -> String {
    "roles".into()
}

/// Sign-in and token settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthSettings {
    /// Where people reach this server (links printed and e-mailed use it); when not configured,
    /// the address the server listens on.
    pub public_url: Option<String>,
    /// Mark session cookies `Secure` (on by default when `public_url` is https).
    pub cookie_secure: bool,
    pub external_issuers: Vec<ExternalIssuer>,
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub database: DatabaseUrl,
    pub pool_size: u32,
    /// A folder whose policy files replace the built-in ones; `None`: the built-in files.
    pub policies_dir: Option<PathBuf>,
    pub log_format: LogFormat,
    pub ledger: LedgerSettings,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_timeout: Duration,
    /// The largest request body accepted on any route.
    pub max_body_bytes: usize,
    /// HTTP worker threads (0: one per core).
    pub workers: usize,
    pub auth: AuthSettings,
    pub limits: Limits,
    /// Which requests are logged.
    pub access_log: AccessLog,
    /// Requests slower than this are logged under `access_log = "errors"`.
    pub slow_request: Duration,
    /// Proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed; from anyone else
    /// those headers are ignored.
    pub trusted_proxies: Vec<Cidr>,
    /// Days before a DPA version expires on which reminders are due.
    pub dpa_reminder_days: Vec<u32>,
    /// The mail server; without one, mail stays in the outbox.
    pub smtp: Option<SmtpSettings>,
    pub notify: NotifySettings,
}

/// A value kept out of logs and `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain SMTP (a relay on the same host or network).
    None,
    /// Plain at first, then upgraded (`STARTTLS`), required.
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

impl SmtpTls {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::None => "none",
            SmtpTls::Starttls => "starttls",
            SmtpTls::Tls => "tls",
        }
    }
}

/// The `[smtp]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The sender, `Accord <accord@example.com>` or a bare address.
    pub from: String,
}

/// How the outbox is drained (`[notify]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifySettings {
    /// How often each instance looks for mail that is due.
    pub poll: Duration,
    /// The wait after a first failed try; it doubles with each failure up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long an instance holds an item it is sending before another may take it.
    pub lease: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            poll: Duration::from_secs(5),
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            lease: Duration::from_secs(120),
        }
    }
}

/// Values given on the command line or through the environment variables clap reads.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    database_url: Option<String>,
    pool_size: Option<u32>,
    policies_dir: Option<PathBuf>,
    log_format: Option<LogFormat>,
    shutdown_timeout_secs: Option<u64>,
    max_body_bytes: Option<usize>,
    workers: Option<usize>,
    access_log: Option<AccessLog>,
    slow_request_ms: Option<u64>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    dpa_reminder_days: Option<Vec<u32>>,
    smtp: Option<FileSmtp>,
    #[serde(default)]
    notify: FileNotify,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    ledger: FileLedger,
    #[serde(default)]
    auth: FileAuth,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    public_url: Option<String>,
    cookie_secure: Option<bool>,
    #[serde(default)]
    external_issuers: Vec<ExternalIssuer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSmtp {
    host: Option<String>,
    port: Option<u16>,
    tls: Option<SmtpTls>,
    username: Option<String>,
    password: Option<String>,
    from: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNotify {
    poll_ms: Option<u64>,
    retry_base_ms: Option<u64>,
    retry_max_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    import_bytes: Option<u64>,
    import_rows: Option<u64>,
    line_bytes: Option<u64>,
    batch_items: Option<u64>,
    document_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLedger {
    origin: Option<String>,
    batch_max: Option<usize>,
    batch_wait_ms: Option<u64>,
    checkpoint_interval_secs: Option<u64>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./accord-data";
pub const SQLITE_FILE: &str = "accord.db";

impl Settings {
    /// Loads settings from the process environment and the given overrides.
    pub fn load(overrides: &Overrides) -> Result<Settings, ConfigError> {
        Self::load_with(overrides, |k| std::env::var(k).ok())
    }

    /// Loads settings with an explicit environment (tests pass their own).
    pub fn load_with(
        overrides: &Overrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let file = match &overrides.config_file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let env_parse = |key: &str| -> Result<Option<u64>, ConfigError> {
            match env(key) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| ConfigError(format!("{key}={v:?} is not a whole number"))),
            }
        };

        let data_dir = overrides
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        if data_dir.as_os_str().is_empty() {
            return Err(ConfigError("the data directory must not be empty".into()));
        }

        let listen_raw = overrides
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen: SocketAddr = listen_raw.trim().parse().map_err(|_| {
            ConfigError(format!(
                "the listen address {listen_raw:?} is not an IP address and port such as 127.0.0.1:8080"
            ))
        })?;

        let database = match overrides.database_url.clone().or(file.database_url) {
            Some(u) => {
                DatabaseUrl::parse(&u).map_err(|e| ConfigError(format!("bad database URL: {e}")))?
            }
            None => DatabaseUrl::Sqlite(data_dir.join(SQLITE_FILE)),
        };

        let pool_size = match env_parse("ACCORD_POOL_SIZE")? {
            Some(v) => u32::try_from(v).unwrap_or(u32::MAX),
            None => file.pool_size.unwrap_or(8),
        };
        if !(1..=256).contains(&pool_size) {
            return Err(ConfigError(format!(
                "pool_size {pool_size} is out of range: use 1 to 256"
            )));
        }

        let policies_dir = env("ACCORD_POLICIES_DIR")
            .map(PathBuf::from)
            .or(file.policies_dir);

        let log_format = match env("ACCORD_LOG_FORMAT") {
            Some(v) => match v.trim() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(ConfigError(format!(
                        "ACCORD_LOG_FORMAT={other:?} is not one of text, json"
                    )));
                }
            },
            None => file.log_format.unwrap_or_default(),
        };

        let origin = env("ACCORD_LEDGER_ORIGIN").or(file.ledger.origin);
        if let Some(o) = &origin {
            validate_origin(o)?;
        }
        let batch_max = env_parse("ACCORD_LEDGER_BATCH_MAX")?
            .map(|v| v as usize)
            .or(file.ledger.batch_max)
            .unwrap_or(512);
        if !(1..=4096).contains(&batch_max) {
            return Err(ConfigError(format!(
                "ledger.batch_max {batch_max} is out of range: use 1 to 4096"
            )));
        }
        let batch_wait_ms = env_parse("ACCORD_LEDGER_BATCH_WAIT_MS")?
            .or(file.ledger.batch_wait_ms)
            .unwrap_or(2);
        if batch_wait_ms > 1000 {
            return Err(ConfigError(format!(
                "ledger.batch_wait_ms {batch_wait_ms} is out of range: use 0 to 1000"
            )));
        }
        let checkpoint_secs = env_parse("ACCORD_LEDGER_CHECKPOINT_INTERVAL_SECS")?
            .or(file.ledger.checkpoint_interval_secs)
            .unwrap_or(10);
        if !(1..=86_400).contains(&checkpoint_secs) {
            return Err(ConfigError(format!(
                "ledger.checkpoint_interval_secs {checkpoint_secs} is out of range: use 1 to 86400"
            )));
        }

        let shutdown_timeout = Duration::from_secs(file.shutdown_timeout_secs.unwrap_or(30));
        let max_body_bytes = file.max_body_bytes.unwrap_or(1024 * 1024);
        if max_body_bytes < 1024 {
            return Err(ConfigError(format!(
                "max_body_bytes {max_body_bytes} is too small: use at least 1024"
            )));
        }
        let workers = match env_parse("ACCORD_WORKERS")? {
            Some(v) => v as usize,
            None => file.workers.unwrap_or(0),
        };

        let public_url = env("ACCORD_PUBLIC_URL")
            .or(file.auth.public_url)
            .map(|u| u.trim_end_matches('/').to_string());
        if let Some(u) = &public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(ConfigError(format!(
                "the public URL {u:?} must start with http:// or https://"
            )));
        }
        let cookie_secure = file.auth.cookie_secure.unwrap_or(
            public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://")),
        );
        for ext in &file.auth.external_issuers {
            if ext.issuer.is_empty() || ext.audience.is_empty() {
                return Err(ConfigError(
                    "every external issuer needs an issuer and an audience".into(),
                ));
            }
        }

        let defaults = Limits::default();
        let limit = |key: &str,
                     name: &str,
                     file: Option<u64>,
                     default: u64,
                     range: std::ops::RangeInclusive<u64>|
         -> Result<u64, ConfigError> {
            let v = env_parse(key)?.or(file).unwrap_or(default);
            if range.contains(&v) {
                Ok(v)
            } else {
                Err(ConfigError(format!(
                    "limits.{name} {v} is out of range: use {} to {}",
                    range.start(),
                    range.end()
                )))
            }
        };
        let limits = Limits {
            import_bytes: limit(
                "ACCORD_LIMITS_IMPORT_BYTES",
                "import_bytes",
                file.limits.import_bytes,
                defaults.import_bytes as u64,
                1024..=(16 << 30),
            )? as usize,
            import_rows: limit(
                "ACCORD_LIMITS_IMPORT_ROWS",
                "import_rows",
                file.limits.import_rows,
                defaults.import_rows,
                1..=100_000_000,
            )?,
            line_bytes: limit(
                "ACCORD_LIMITS_LINE_BYTES",
                "line_bytes",
                file.limits.line_bytes,
                defaults.line_bytes as u64,
                256..=(16 << 20),
            )? as usize,
            batch_items: limit(
                "ACCORD_LIMITS_BATCH_ITEMS",
                "batch_items",
                file.limits.batch_items,
                defaults.batch_items as u64,
                1..=1_000_000,
            )? as usize,
            document_bytes: limit(
                "ACCORD_LIMITS_DOCUMENT_BYTES",
                "document_bytes",
                file.limits.document_bytes,
                defaults.document_bytes as u64,
                1024..=(1 << 30),
            )? as usize,
        };
        let dpa_reminder_days = file.dpa_reminder_days.unwrap_or_else(|| vec![60, 30, 7]);
        if dpa_reminder_days.iter().any(|d| !(1..=3650).contains(d)) {
            return Err(ConfigError(
                "dpa_reminder_days: each is a number of days from 1 to 3650".into(),
            ));
        }
        let access_log = match env("ACCORD_ACCESS_LOG") {
            Some(v) => match v.trim() {
                "off" => AccessLog::Off,
                "errors" => AccessLog::Errors,
                "all" => AccessLog::All,
                other => {
                    return Err(ConfigError(format!(
                        "ACCORD_ACCESS_LOG={other:?} is not one of off, errors, all"
                    )));
                }
            },
            None => file.access_log.unwrap_or(AccessLog::Errors),
        };
        let slow_request = Duration::from_millis(
            env_parse("ACCORD_SLOW_REQUEST_MS")?
                .or(file.slow_request_ms)
                .unwrap_or(1000),
        );
        let proxies: Vec<String> = match env("ACCORD_TRUSTED_PROXIES") {
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            None => file.trusted_proxies,
        };
        let trusted_proxies = proxies
            .iter()
            .map(|p| Cidr::parse(p).map_err(|e| ConfigError(format!("trusted_proxies: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;

        let smtp = smtp_settings(file.smtp, &env)?;
        let defaults = NotifySettings::default();
        let ms = |key: &str, v: Option<u64>, d: Duration| -> Result<Duration, ConfigError> {
            match env_parse(&format!("ACCORD_NOTIFY_{}", key.to_ascii_uppercase()))?.or(v) {
                None => Ok(d),
                Some(n) if (10..=86_400_000).contains(&n) => Ok(Duration::from_millis(n)),
                Some(n) => Err(ConfigError(format!(
                    "notify.{key} = {n} is out of range: use 10 to 86400000 (milliseconds)"
                ))),
            }
        };
        let notify = NotifySettings {
            poll: ms("poll_ms", file.notify.poll_ms, defaults.poll)?,
            retry_base: ms(
                "retry_base_ms",
                file.notify.retry_base_ms,
                defaults.retry_base,
            )?,
            retry_max: ms("retry_max_ms", file.notify.retry_max_ms, defaults.retry_max)?,
            lease: defaults.lease,
        };
        if notify.retry_max < notify.retry_base {
            return Err(ConfigError(
                "notify.retry_max_ms is less than notify.retry_base_ms".into(),
            ));
        }

        Ok(Settings {
            limits,
            dpa_reminder_days,
            smtp,
            notify,
            access_log,
            slow_request,
            trusted_proxies,
            auth: AuthSettings {
                public_url,
                cookie_secure,
                external_issuers: file.auth.external_issuers,
            },
            data_dir,
            listen,
            database,
            pool_size,
            policies_dir,
            log_format,
            ledger: LedgerSettings {
                origin,
                batch_max,
                batch_wait: Duration::from_millis(batch_wait_ms),
                checkpoint_interval: Duration::from_secs(checkpoint_secs),
            },
            shutdown_timeout,
            max_body_bytes,
            workers,
        })
    }

    /// Where people reach this server: the configured public URL, or `http://` and the address
    /// the server listens on.
    pub fn public_url(&self, bound: Option<SocketAddr>) -> String {
        self.auth
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", bound.unwrap_or(self.listen)))
    }

    /// SHA-256 over the settings that shape behaviour (secrets masked), recorded in the ledger at
    /// every start so a configuration change is visible in the trail.
    pub fn fingerprint(&self) -> String {
        let v = serde_json::json!({
            "data_dir": self.data_dir.display().to_string(),
            "listen": self.listen.to_string(),
            "database": self.database.to_string(),
            "pool_size": self.pool_size,
            "policies_dir": self.policies_dir.as_ref().map(|d| d.display().to_string()),
            "ledger": {
                "origin": self.ledger.origin,
                "batch_max": self.ledger.batch_max,
                "batch_wait_ms": self.ledger.batch_wait.as_millis() as u64,
                "checkpoint_interval_secs": self.ledger.checkpoint_interval.as_secs(),
            },
            "max_body_bytes": self.max_body_bytes,
            "limits": self.limits,
            "access_log": self.access_log,
            "slow_request_ms": self.slow_request.as_millis() as u64,
            "trusted_proxies": self.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "auth": self.auth,
            "dpa_reminder_days": self.dpa_reminder_days,
            "smtp": self.smtp.as_ref().map(|m| serde_json::json!({
                "host": m.host, "port": m.port, "tls": m.tls, "username": m.username,
                "password": m.password.as_ref().map(|_| "***"), "from": m.from,
            })),
            "notify": {
                "poll_ms": self.notify.poll.as_millis() as u64,
                "retry_base_ms": self.notify.retry_base.as_millis() as u64,
                "retry_max_ms": self.notify.retry_max.as_millis() as u64,
            },
        });
        let canonical = accord_audit::canon::canonical_json(&v).unwrap_or_default();
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }
}

/// The `[smtp]` section, each field overridable by `ACCORD_SMTP_<FIELD>`. None without a host.
fn smtp_settings(
    file: Option<FileSmtp>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<SmtpSettings>, ConfigError> {
    let file = file.unwrap_or_default();
    let text = |key: &str, v: Option<String>| {
        env(&format!("ACCORD_SMTP_{}", key.to_ascii_uppercase()))
            .or(v)
            .filter(|s| !s.trim().is_empty())
    };
    let Some(host) = text("host", file.host) else {
        return Ok(None);
    };
    let tls = match env("ACCORD_SMTP_TLS") {
        Some(v) => match v.trim() {
            "none" => SmtpTls::None,
            "starttls" => SmtpTls::Starttls,
            "tls" => SmtpTls::Tls,
            other => {
                return Err(ConfigError(format!(
                    "ACCORD_SMTP_TLS={other:?} is not one of none, starttls, tls"
                )));
            }
        },
        None => file.tls.unwrap_or(SmtpTls::Starttls),
    };
    let port = match env("ACCORD_SMTP_PORT") {
        Some(v) => v
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| ConfigError(format!("ACCORD_SMTP_PORT={v:?} is not a port number")))?,
        None => match file.port {
            Some(0) => return Err(ConfigError("smtp.port 0 is not a port".into())),
            Some(p) => p,
            None => match tls {
                SmtpTls::None => 25,
                SmtpTls::Starttls => 587,
                SmtpTls::Tls => 465,
            },
        },
    };
    let username = text("username", file.username);
    let password = text("password", file.password).map(Secret::new);
    if password.is_some() != username.is_some() {
        return Err(ConfigError(
            "smtp: give both username and password, or neither".into(),
        ));
    }
    if password.is_some() && tls == SmtpTls::None {
        return Err(ConfigError(
            "smtp: a password is not sent over a plain connection: use tls = \"starttls\" or \"tls\"".into(),
        ));
    }
    let Some(from) = text("from", file.from) else {
        return Err(ConfigError(
            "smtp.from is required: the address mail comes from, e.g. \"Accord <accord@example.com>\"".into(),
        ));
    };
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(ConfigError(format!(
            "smtp.from = {from:?} is not an e-mail address"
        )));
    }
    Ok(Some(SmtpSettings {
        host: host.trim().to_string(),
        port,
        tls,
        username,
        password,
        from,
    }))
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "cannot read the config file {}: {e}",
            path.display()
        ))
    })?;
    toml::from_str(&text).map_err(|e| {
        ConfigError(format!(
            "the config file {} is not valid: {}",
            path.display(),
            crate::error::one_line(&e.to_string())
        ))
    })
}

/// An origin names the log in every checkpoint and is the signing key's name: printable, no spaces,
/// no `+`.
pub fn validate_origin(origin: &str) -> Result<(), ConfigError> {
    if origin.is_empty()
        || origin.len() > 200
        || origin.contains('+')
        || origin.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ConfigError(format!(
            "the ledger origin {origin:?} must be 1 to 200 printable characters without spaces or '+'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(o: &Overrides, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let m: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_with(o, |k| m.get(k).cloned())
    }

    #[test]
    fn defaults_are_a_local_sqlite_server() {
        // The README's defaults, written out.
        let s = load(&Overrides::default(), &[]).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./accord-data"));
        assert_eq!(
            s.database,
            DatabaseUrl::Sqlite(PathBuf::from("./accord-data/accord.db"))
        );
        assert_eq!(s.policies_dir, None, "the built-in policies");
        assert_eq!(s.access_log, AccessLog::Errors);
        assert_eq!(s.slow_request, Duration::from_millis(1000));
        assert!(s.trusted_proxies.is_empty());
        assert_eq!(s.max_body_bytes, 1024 * 1024);
        assert_eq!(s.limits.import_bytes, 256 * 1024 * 1024);
        assert_eq!(s.limits.import_rows, 1_000_000);
        assert_eq!(s.limits.line_bytes, 64 * 1024);
        assert_eq!(s.limits.batch_items, 10_000);
        assert_eq!(s.ledger.checkpoint_interval, Duration::from_secs(10));
    }

    #[test]
    fn file_is_overridden_by_flags() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("accord.toml");
        std::fs::write(
            &f,
            "listen = \"127.0.0.1:9000\"\npool_size = 4\n[ledger]\nbatch_max = 64\n",
        )
        .unwrap();
        let mut o = Overrides {
            config_file: Some(f.clone()),
            ..Default::default()
        };
        let s = load(&o, &[]).unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.pool_size, 4);
        assert_eq!(s.ledger.batch_max, 64);
        o.listen = Some("127.0.0.1:9100".into());
        assert_eq!(load(&o, &[]).unwrap().listen.port(), 9100);
        assert_eq!(load(&o, &[("ACCORD_POOL_SIZE", "2")]).unwrap().pool_size, 2);
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let bad_listen = Overrides {
            listen: Some("localhost".into()),
            ..Default::default()
        };
        assert!(
            load(&bad_listen, &[])
                .unwrap_err()
                .0
                .contains("listen address")
        );
        let bad_url = Overrides {
            database_url: Some("mysql://x/y".into()),
            ..Default::default()
        };
        assert!(load(&bad_url, &[]).unwrap_err().0.contains("database URL"));
        assert!(
            load(&Overrides::default(), &[("ACCORD_LEDGER_BATCH_MAX", "0")])
                .unwrap_err()
                .0
                .contains("batch_max")
        );
        assert!(
            load(&Overrides::default(), &[("ACCORD_LEDGER_ORIGIN", "a b")])
                .unwrap_err()
                .0
                .contains("origin")
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.toml");
        std::fs::write(&f, "no_such_key = 1\n").unwrap();
        let o = Overrides {
            config_file: Some(f),
            ..Default::default()
        };
        assert!(load(&o, &[]).unwrap_err().0.contains("not valid"));
    }

    #[test]
    fn fingerprint_hides_the_database_password() {
        let o = Overrides {
            database_url: Some("postgres://a:secret1@h/db".into()),
            ..Default::default()
        };
        let o2 = Overrides {
            database_url: Some("postgres://a:secret2@h/db".into()),
            ..Default::default()
        };
        assert_eq!(
            load(&o, &[]).unwrap().fingerprint(),
            load(&o2, &[]).unwrap().fingerprint()
        );
    }
}
