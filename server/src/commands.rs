//! The work behind the CLI's commands other than `serve`, as functions the tests call directly.
//! Each returns a [`StartError`] (one sentence, exit status 2) when it cannot even begin.

use std::io::BufWriter;
use std::path::Path;

use crate::StartError;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::{self, AnyConnection, DatabaseUrl, Manager};
use crate::error::AppError;
use crate::keys::Keys;
use crate::ledger::export::{self, ExportSummary};
use crate::ledger::store::{self, CheckpointRow};
use crate::ledger::verify::{self, VerifyOutcome};
use crate::ledger::writer::Writer;

/// Applies pending migrations; returns the versions applied.
pub fn migrate(settings: &Settings) -> Result<Vec<String>, StartError> {
    let mut conn = open(&settings.database, true)?;
    db::run_migrations(&mut conn).map_err(|e| StartError(format!("{e:#}")))
}

/// Opens one connection; for commands that only read, a missing SQLite file is an error rather than
/// a new empty database.
pub fn open(url: &DatabaseUrl, create: bool) -> Result<AnyConnection, StartError> {
    if let DatabaseUrl::Sqlite(path) = url
        && !create
        && !path.exists()
    {
        return Err(StartError(format!(
            "there is no database at {}: check --data-dir or --database-url",
            path.display()
        )));
    }
    if create {
        // Creates the parent directory of a SQLite file if needed.
        db::connect(url, 1).map_err(|e| StartError(e.to_string()))?;
    }
    Manager::new(url.clone())
        .open()
        .map_err(|e| StartError(e.to_string()))
}

fn writer_for(settings: &Settings, conn: &mut AnyConnection) -> Result<Writer, StartError> {
    let keys = Keys::load(&settings.data_dir).map_err(|e| StartError(e.to_string()))?;
    let state = store::read_tree_state(conn)
        .map_err(|e| StartError(format!("cannot read the ledger: {e}")))?
        .ok_or_else(|| {
            StartError("the database holds no ledger yet: start the server once".into())
        })?;
    Writer::new(&state.origin, std::sync::Arc::new(keys)).map_err(StartError::from)
}

/// Re-verifies the whole ledger in the database, and that it agrees with each pinned checkpoint
/// (signed notes an auditor kept from before).
pub fn verify(settings: &Settings, pins: &[String]) -> Result<VerifyOutcome, StartError> {
    let mut conn = open(&settings.database, false)?;
    let writer = writer_for(settings, &mut conn)?;
    verify::verify_database(&mut conn, &writer.verifier, pins).map_err(StartError::from)
}

/// Publishes a checkpoint now if the tree has grown; returns the latest.
pub fn checkpoint(settings: &Settings, clock: &dyn Clock) -> Result<CheckpointRow, StartError> {
    let mut conn = open(&settings.database, false)?;
    let writer = writer_for(settings, &mut conn)?;
    writer
        .publish_checkpoint(&mut conn, clock.now())?
        .ok_or_else(|| StartError("the ledger is empty".into()))
}

/// Publishes a checkpoint (so the export is current) and writes the export to `out`: to a temporary
/// file beside it first, renamed when complete, so a failed export never leaves a partial file.
pub fn export(
    settings: &Settings,
    clock: &dyn Clock,
    out: &Path,
    progress: impl FnMut(u64),
) -> Result<ExportSummary, StartError> {
    let mut conn = open(&settings.database, false)?;
    let writer = writer_for(settings, &mut conn)?;
    let cp = writer
        .publish_checkpoint(&mut conn, clock.now())?
        .ok_or_else(|| StartError("the ledger is empty".into()))?;
    let tmp = out.with_extension("partial");
    // The export holds opened payloads (personal data): owner-only, like the database.
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts
        .open(&tmp)
        .map_err(|e| StartError(format!("cannot create {}: {e}", tmp.display())))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let result = export::write_export(
        &mut conn,
        &writer.origin,
        &writer.verifier.to_vkey(),
        &cp,
        &mut w,
        progress,
    )
    .and_then(|summary| {
        let file = w.into_inner().map_err(|e| {
            AppError::internal(anyhow::anyhow!("cannot write the export: {}", e.error()))
        })?;
        file.sync_all()
            .map_err(|e| AppError::internal(anyhow::anyhow!("cannot write the export: {e}")))?;
        Ok(summary)
    });
    match result {
        Ok(summary) => {
            std::fs::rename(&tmp, out).map_err(|e| {
                StartError(format!("cannot move the export to {}: {e}", out.display()))
            })?;
            Ok(summary)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(StartError::from(e))
        }
    }
}

/// What the `user`, `token`, `purposes` and `consent` commands work with: the services over this
/// process's own ledger writer (its entries interleave with any running server's through the sequencing lock).
pub struct CliAccess {
    pub svc: crate::auth::service::AccessService,
    pub consent: crate::consent::service::ConsentService,
    pub ledger: crate::ledger::Ledger,
    pub tokens: crate::auth::tokens::TokenAuthority,
    pub public_url: String,
    pub limits: crate::config::Limits,
}

impl CliAccess {
    /// Opens (creating and migrating on first use) the data directory and database.
    /// On a ledger this command creates, the purposes and notices of the policy files in force
    /// are recorded as a first server start would, so a command run before the first start sees
    /// them. An existing ledger is left alone: the CLI's policies may not be the server's.
    pub async fn open(settings: &Settings) -> Result<CliAccess, StartError> {
        let files = crate::policies::PolicyFiles::load(settings.policies_dir.as_deref())?;
        let clock: crate::clock::SharedClock = std::sync::Arc::new(crate::clock::SystemClock);
        files.check_definitions(clock.now())?;
        let keys = std::sync::Arc::new(
            Keys::load_or_create(&settings.data_dir).map_err(|e| StartError(e.to_string()))?,
        );
        let pool = db::connect(&settings.database, 2).map_err(|e| StartError(e.to_string()))?;
        {
            let mut c = pool
                .get()
                .map_err(|e| StartError(format!("no database connection: {e}")))?;
            db::run_migrations(&mut c).map_err(|e| StartError(format!("{e:#}")))?;
        }
        let new_ledger = {
            let mut c = pool
                .get()
                .map_err(|e| StartError(format!("no database connection: {e}")))?;
            store::read_tree_state(&mut c)
                .map_err(|e| StartError(format!("cannot read the ledger: {e}")))?
                .is_none()
        };
        let ledger = crate::ledger::Ledger::open(
            &Manager::new(settings.database.clone()),
            &settings.ledger,
            keys.clone(),
            clock.clone(),
        )?;
        let tokens = crate::auth::tokens::TokenAuthority::new(
            &crate::token_issuer(ledger.origin()),
            &keys.token,
            &settings.auth.external_issuers,
        )?;
        if let Some(defs) = files.definitions.as_ref().filter(|_| new_ledger) {
            let loaded =
                crate::load_definitions(&ledger, &pool, &clock, crate::ledger::Actor::cli(), defs)
                    .await;
            if let Err(e) = loaded {
                ledger.shutdown().await;
                return Err(StartError(format!(
                    "cannot load {}: {e}",
                    files.definitions_name()
                )));
            }
        }
        Ok(CliAccess {
            consent: crate::consent::service::ConsentService::new(
                ledger.clone(),
                pool.clone(),
                clock.clone(),
                None,
            ),
            svc: crate::auth::service::AccessService::new(ledger.clone(), pool, clock, None),
            ledger,
            tokens,
            public_url: settings.public_url(None),
            limits: settings.limits,
        })
    }

    /// Writes what is queued and publishes a checkpoint.
    pub async fn close(self) {
        self.ledger.shutdown().await;
    }
}

/// A scratch database of the live one's backend, removed when dropped: a SQLite file in a
/// temporary directory, or a schema of its own in the live PostgreSQL database.
struct Scratch {
    url: DatabaseUrl,
    /// The SQLite directory, or the PostgreSQL schema (dropped through `live`).
    place: ScratchPlace,
}

enum ScratchPlace {
    Dir(std::path::PathBuf),
    Schema(String, DatabaseUrl),
}

impl Scratch {
    fn create(live: &DatabaseUrl, conn: &mut AnyConnection) -> Result<Scratch, StartError> {
        let name = format!(
            "accord_replay_{}",
            hex::encode(crate::keys::random_bytes::<6>().map_err(|e| StartError(e.to_string()))?)
        );
        match live {
            DatabaseUrl::Sqlite(_) => {
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir(&dir)
                    .map_err(|e| StartError(format!("cannot create {}: {e}", dir.display())))?;
                Ok(Scratch {
                    url: DatabaseUrl::Sqlite(dir.join("replay.db")),
                    place: ScratchPlace::Dir(dir),
                })
            }
            DatabaseUrl::Postgres(url) => {
                if url.contains("options=") {
                    return Err(StartError(
                        "replay --check sets the connection's options (its search_path): remove options= from the database URL".into(),
                    ));
                }
                use diesel::connection::SimpleConnection;
                conn.batch_execute(&format!("CREATE SCHEMA {name}"))
                    .map_err(|e| StartError(format!("cannot create a scratch schema: {e}")))?;
                let sep = if url.contains('?') { '&' } else { '?' };
                Ok(Scratch {
                    url: DatabaseUrl::Postgres(format!("{url}{sep}options=-csearch_path%3D{name}")),
                    place: ScratchPlace::Schema(name, live.clone()),
                })
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        match &self.place {
            ScratchPlace::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            ScratchPlace::Schema(name, live) => {
                use diesel::connection::SimpleConnection;
                if let Ok(mut c) = Manager::new(live.clone()).open() {
                    let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
                }
            }
        }
    }
}

/// Rebuilds every projection from the ledger alone into a scratch database of the same backend
/// and compares it, table by table, with the live one (`accord ledger replay --check`).
pub fn replay_check(
    settings: &Settings,
    progress: impl FnMut(u64, u64),
) -> Result<crate::replay::Report, StartError> {
    let mut live = open(&settings.database, false)?;
    let scratch = Scratch::create(&settings.database, &mut live)?;
    let mut conn = open(&scratch.url, true)?;
    db::run_migrations(&mut conn).map_err(|e| StartError(format!("{e:#}")))?;
    let report = crate::replay::replay_check(&mut live, &mut conn, progress);
    drop(conn);
    drop(scratch);
    report.map_err(StartError::from)
}
