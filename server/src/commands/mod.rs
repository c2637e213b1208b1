//! The work behind the CLI's commands other than `serve`, as functions the tests call directly.
//! Each returns a [`StartError`] (one sentence, exit status 2) when it cannot even begin.

pub mod access;
pub mod consent;
pub mod dpa;
pub mod ledger;
pub mod notify;
pub mod output;
pub mod serve;

use crate::StartError;
use crate::config::Settings;
use crate::db::{self, AnyConnection, DatabaseUrl, Manager};
use crate::keys::Keys;
use crate::ledger::store;

pub use ledger::{checkpoint, export, replay_check, verify};

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

/// What the `user`, `token`, `purposes` and `consent` commands work with: the services over this
/// process's own ledger writer (its entries interleave with any running server's through the sequencing lock).
pub struct CliAccess {
    pub svc: crate::auth::service::AccessService,
    pub consent: crate::consent::service::ConsentService,
    pub dpa: crate::dpa::service::DpaService,
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
            dpa: crate::dpa::service::DpaService::new(
                ledger.clone(),
                pool.clone(),
                clock.clone(),
                None,
                settings.dpa_reminder_days.clone(),
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
