//! Accord: a compliance and consent governance server. Every change is an entry in a hash-chained,
//! Merkle-tree ledger with signed checkpoints; see the README and SECURITY.md.
//!
//! [`Application::build`] assembles the whole service from [`config::Settings`]; the binary and the
//! end-to-end tests start exactly the same thing.

pub mod auth;
pub mod authz;
pub mod body;
pub mod bulk;
pub mod changes;
pub mod clock;
pub mod commands;
pub mod config;
pub mod consent;
pub mod db;
pub mod dpa;
pub mod error;
pub mod forwarded;
pub mod idempotency;
pub mod keys;
pub mod ledger;
pub mod notify;
pub mod openapi;
pub mod ops;
pub mod policies;
pub mod replay;
pub mod state;
pub mod subjects;
pub mod telemetry;
pub mod vocab;
pub mod web;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer};

use crate::clock::{SharedClock, SystemClock};
use crate::config::Settings;
use crate::db::{Manager, Pool};
use crate::error::AppError;
use crate::keys::Keys;
use crate::ledger::{Actor, Ledger, SystemEvent};
use crate::state::AppState;

/// Why the server could not start, as one sentence for the operator (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

impl From<AppError> for StartError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Internal(cause) => StartError(format!("{cause:#}")),
            other => StartError(other.to_string()),
        }
    }
}

/// A built, bound, not yet running server.
pub struct Application {
    server: Server,
    address: SocketAddr,
    state: actix_web::web::Data<AppState>,
    setup_link: Option<String>,
    followers: Vec<actix_web::rt::task::JoinHandle<()>>,
}

impl Application {
    /// Builds the service with the system clock.
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// Creates the data directory and keys if needed, connects, migrates, opens the ledger, records
    /// this start, publishes a checkpoint and binds the listener.
    pub async fn build_with_clock(
        settings: Settings,
        clock: SharedClock,
    ) -> Result<Application, StartError> {
        Self::build_with_routes(settings, clock, None).await
    }

    /// As [`Application::build_with_clock`], with more routes (benchmarks and tests add their
    /// own, declared like every other route).
    pub async fn build_with_routes(
        settings: Settings,
        clock: SharedClock,
        extra_routes: Option<fn(&mut authz::Routes)>,
    ) -> Result<Application, StartError> {
        telemetry::metrics_handle();
        let settings = Arc::new(settings);
        // Every setting and file is read and validated before anything is written.
        let files = policies::PolicyFiles::load(settings.policies_dir.as_deref())?;
        let policy = authz::Policy::from_parts(files.model.clone(), files.rules.clone())
            .await
            .map_err(|e| StartError(format!("access policy ({}): {e}", files.source)))?;
        files.check_definitions(clock.now())?;
        auth::tokens::check_external_issuers(&settings.auth.external_issuers)?;
        // Bind first: a start that cannot listen writes nothing.
        let listener = TcpListener::bind(settings.listen)
            .map_err(|e| StartError(format!("cannot listen on {}: {e}", settings.listen)))?;

        let fresh = FreshDataDir::claim(&settings.data_dir);
        let keys = Arc::new(fresh.check(
            Keys::load_or_create(&settings.data_dir).map_err(|e| StartError(e.to_string())),
        )?);
        for f in &keys.created {
            tracing::info!(file = %f.display(), "created key");
        }
        let pool = fresh.check(
            db::connect(&settings.database, settings.pool_size)
                .map_err(|e| StartError(e.to_string())),
        )?;
        let applied = fresh.check(
            pool.get()
                .map_err(|e| StartError(format!("no database connection: {e}")))
                .and_then(|mut conn| {
                    db::run_migrations(&mut conn).map_err(|e| StartError(format!("{e:#}")))
                }),
        )?;
        for m in &applied {
            tracing::info!(migration = %m, "applied migration");
        }
        let manager = Manager::new(settings.database.clone());
        // Not removed past this point: once the ledger may have recorded its initialisation
        // (in PostgreSQL, outside the data directory), its keys must stay.
        let ledger = Ledger::open(&manager, &settings.ledger, keys.clone(), clock.clone())?;
        let start = Start {
            settings: settings.clone(),
            files,
            policy,
            listener,
        };
        match Self::finish_build(start, pool, ledger.clone(), keys, clock, extra_routes).await {
            Ok(app) => Ok(app),
            Err(e) => {
                ledger.shutdown().await;
                Err(e)
            }
        }
    }

    async fn finish_build(
        start: Start,
        pool: Pool,
        ledger: Ledger,
        keys: Arc<Keys>,
        clock: SharedClock,
        extra_routes: Option<fn(&mut authz::Routes)>,
    ) -> Result<Application, StartError> {
        let Start {
            settings,
            files,
            policy,
            listener,
        } = start;
        let ctx = StartContext {
            settings: &settings,
            pool: &pool,
            ledger: &ledger,
            clock: &clock,
            keys: &keys,
            files: &files,
        };
        let access = auth::start(&ctx, policy).await?;
        let instance: String = telemetry::new_request_id().chars().take(16).collect();
        let started = SystemEvent::ServerStarted {
            instance: instance.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            backend: settings.database.backend().to_string(),
            config_fingerprint: settings.fingerprint(),
            policies: files.hashes.clone(),
            policies_source: Some(files.source.to_string()),
        };
        ledger.record(Actor::system(), None, &started).await?;
        let setup_link = auth::first_admin_link(&ctx, &access).await?.map(|raw| {
            format!(
                "{}/ui/setup?token={raw}",
                settings.public_url(listener.local_addr().ok())
            )
        });
        let consent = consent::start(&ctx).await?;
        let dpa = dpa::start(&ctx).await?;
        ledger.publish_checkpoint().await?;

        let address = listener
            .local_addr()
            .map_err(|e| StartError(format!("cannot read the listen address: {e}")))?;
        let state = actix_web::web::Data::new(AppState {
            pool,
            ledger,
            clock,
            settings: settings.clone(),
            instance,
            access,
            consent: consent.clone(),
            dpa: dpa.clone(),
            routes: std::sync::OnceLock::new(),
            openapi: std::sync::OnceLock::new(),
        });
        let follower = actix_web::rt::spawn(auth::follow(state.access.clone(), state.pool.clone()));
        let consent_follower = actix_web::rt::spawn(consent::follow(consent, state.pool.clone()));
        let dpa_follower = actix_web::rt::spawn(dpa::follow(dpa, state.pool.clone()));
        let mailer = settings
            .smtp
            .as_ref()
            .map(notify::mailer::Mailer::new)
            .transpose()
            .map_err(StartError)?;
        let sender = notify::sender::Sender::new(
            state.ledger.clone(),
            state.pool.clone(),
            state.clock.clone(),
            mailer,
            settings.notify,
            settings.public_url(Some(address)),
            state.instance.clone(),
            role_recipients(),
        );
        let sender_task = actix_web::rt::spawn(sender.run());
        let dispatcher = changes::webhooks::Dispatcher::new(
            state.pool.clone(),
            state.clock.clone(),
            settings.notify,
            state.instance.clone(),
            state.access.clone(),
        );
        let dispatcher_task = actix_web::rt::spawn(dispatcher.run());
        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .configure(|cfg| configure(cfg, &app_state, extra_routes))
                .wrap(from_fn(auth::authenticate))
                .wrap(from_fn(web::headers::security_headers))
                .wrap(from_fn(telemetry::observe))
        })
        .shutdown_timeout(settings.shutdown_timeout.as_secs())
        // The binary installs its own handlers before start-up (see main.rs), so a signal that
        // arrives while the server is starting is not lost.
        .disable_signals();
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        let server = server
            .listen(listener)
            .map_err(|e| StartError(format!("cannot listen on {}: {e}", settings.listen)))?
            .run();
        tracing::info!(
            address = %address,
            database = %settings.database,
            data_dir = %settings.data_dir.display(),
            origin = %state.ledger.origin(),
            "accord listening"
        );
        Ok(Application {
            server,
            address,
            state,
            setup_link,
            followers: vec![
                follower,
                consent_follower,
                dpa_follower,
                sender_task,
                dispatcher_task,
            ],
        })
    }

    /// The one-time link for creating the first administrator, when the server started with no
    /// user (printed by `accord serve`). A secret: never logged.
    pub fn setup_link(&self) -> Option<&str> {
        self.setup_link.as_deref()
    }

    /// Every route with the access it requires.
    pub fn routes(&self) -> Vec<authz::RouteSpec> {
        self.state.routes.get().cloned().unwrap_or_default()
    }

    pub fn state(&self) -> actix_web::web::Data<AppState> {
        self.state.clone()
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn ledger(&self) -> &Ledger {
        &self.state.ledger
    }

    pub fn pool(&self) -> &Pool {
        &self.state.pool
    }

    /// A handle to stop the server gracefully (what SIGTERM does).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGTERM, Ctrl-C or [`ServerHandle::stop`]); in-flight requests finish,
    /// then the sequencer writes what is queued and publishes a last checkpoint.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        for f in &self.followers {
            f.abort();
        }
        // What this instance was sending is let go, so another (or this one restarted) takes it
        // at once rather than when the lease runs out; a change cut off mid-delivery goes again.
        let owner = self.state.instance.clone();
        let released = db::blocking(&self.state.pool, move |c| {
            notify::lease::release_all(c, &owner)?;
            Ok(())
        })
        .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, "outbox and webhook leases could not be let go");
        }
        self.state.ledger.shutdown().await;
        tracing::info!("accord stopped");
        result
    }
}

/// What was read and validated before anything was written.
/// What a domain needs to start (`auth::start`, `consent::start`): the checked settings and
/// files, the database, the ledger and the clock.
pub struct StartContext<'a> {
    pub settings: &'a Settings,
    pub pool: &'a Pool,
    pub ledger: &'a Ledger,
    pub clock: &'a SharedClock,
    pub keys: &'a Keys,
    pub files: &'a policies::PolicyFiles,
}

struct Start {
    settings: Arc<Settings>,
    files: policies::PolicyFiles,
    policy: authz::Policy,
    listener: TcpListener,
}

/// Whether this start created the data directory, so that a start failing before the ledger is
/// opened (nothing recorded yet) leaves no directory behind. The directory is claimed with one
/// `create_dir`: of two instances starting on a new directory, only the one that created it may
/// remove it.
struct FreshDataDir(Option<std::path::PathBuf>);

impl FreshDataDir {
    fn claim(dir: &Path) -> FreshDataDir {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(parent);
        }
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        FreshDataDir(builder.create(dir).is_ok().then(|| dir.to_path_buf()))
    }

    /// Passes `r` through; on an error, removes the data directory if this start created it.
    fn check<T>(&self, r: Result<T, StartError>) -> Result<T, StartError> {
        if r.is_err()
            && let Some(dir) = &self.0
            && let Err(e) = std::fs::remove_dir_all(dir)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove the new data directory");
        }
        r
    }
}

/// Records the purposes and notices of a definitions file (unchanged ones record nothing): what
/// every start does, and every CLI command on a data directory before its first start.
pub async fn load_definitions(
    ledger: &Ledger,
    pool: &Pool,
    clock: &SharedClock,
    actor: Actor,
    defs: &consent::definitions::Definitions,
) -> Result<consent::definitions::LoadSummary, AppError> {
    consent::service::ConsentService::new(ledger.clone(), pool.clone(), clock.clone(), None)
        .load_definitions(actor, defs)
        .await
}

/// A validation error's detail with its fields, for one-line start-up messages.
pub(crate) struct AppErrorText<'a>(pub(crate) &'a AppError);

impl std::fmt::Display for AppErrorText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.field_errors() {
            Some(errors) => {
                let parts: Vec<String> = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect();
                f.write_str(&parts.join("; "))
            }
            None => write!(f, "{}", self.0),
        }
    }
}

/// The issuer named in the API tokens this Accord signs.
pub fn token_issuer(origin: &str) -> String {
    format!("accord:{origin}")
}

/// The routes (each with its declared access), body limits and error shapes.
pub fn configure(
    cfg: &mut actix_web::web::ServiceConfig,
    state: &actix_web::web::Data<AppState>,
    extra_routes: Option<fn(&mut authz::Routes)>,
) {
    let max_body = state.settings.max_body_bytes;
    cfg.app_data(
        actix_web::web::JsonConfig::default()
            .limit(max_body)
            .error_handler(|e, _| error::json_error(e)),
    )
    .app_data(actix_web::web::PayloadConfig::new(max_body))
    .app_data(actix_web::web::QueryConfig::default().error_handler(|e, _| error::query_error(e)))
    .app_data(actix_web::web::PathConfig::default().error_handler(|e, _| error::path_error(e)))
    .app_data(
        actix_web::web::FormConfig::default()
            .limit(max_body)
            .error_handler(|e, _| {
                web::UiError(AppError::BadRequest(format!("bad form: {e}"))).into()
            }),
    );
    let mut routes = authz::Routes::new();
    ops::routes(&mut routes);
    openapi::routes(&mut routes);
    ledger::api::routes(&mut routes);
    auth::api::routes(&mut routes);
    consent::api::routes(&mut routes);
    dpa::api::routes(&mut routes);
    notify::api::routes(&mut routes);
    changes::api::routes(&mut routes);
    subjects::api::routes(&mut routes);
    web::routes(&mut routes);
    if let Some(extra) = extra_routes {
        extra(&mut routes);
    }
    let specs = routes.register(cfg);
    state
        .openapi
        .get_or_init(|| openapi::document(&specs, &state.settings.limits, operations));
    let _ = state.routes.set(specs);
    cfg.default_service(actix_web::web::to(not_found));
}

/// Every API operation Accord serves, domain by domain as their routes are registered (the web
/// UI's pages are not part of the API).
pub fn operations(s: &mut openapi::Schemas, limits: &config::Limits) -> Vec<openapi::Op> {
    let mut ops = ops::operations(s, limits);
    ops.extend(openapi::operations(s, limits));
    ops.extend(ledger::api::operations(s, limits));
    ops.extend(auth::api::operations(s, limits));
    ops.extend(consent::api::operations(s, limits));
    ops.extend(dpa::api::operations(s, limits));
    ops.extend(notify::api::operations(s));
    ops.extend(changes::api::operations(s));
    ops.extend(subjects::api::operations(s, limits));
    ops
}

async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// Mail to the holders of some roles goes to the enabled users holding them.
pub fn role_recipients() -> notify::sender::Recipients {
    std::sync::Arc::new(|c, roles| Ok(auth::store::emails_with_roles(c, roles)?))
}
