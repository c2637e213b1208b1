//! The `accord` command line: parses arguments, sets up logging, loads settings and runs.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use accord::auth::model::{Role, parse_ttl};
use accord::auth::service::PURPOSE_SET_PASSWORD;
use accord::clock::{SystemClock, Timestamp};
use accord::commands::CliAccess;
use accord::config::{Overrides, Settings};
use accord::ledger::Actor;
use accord::{Application, StartError, commands, telemetry};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "accord",
    version,
    about = "Compliance and consent governance server"
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "ACCORD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (SQLite database, keys). Default ./accord-data
    #[arg(long, global = true, env = "ACCORD_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// SQLite file path or postgres://… URL. Default: accord.db in the data directory.
    #[arg(
        long,
        global = true,
        env = "ACCORD_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on. Default 127.0.0.1:8080
        #[arg(long, env = "ACCORD_LISTEN", value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Apply pending database migrations and list them.
    Migrate,
    /// The audit ledger.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// People who sign in to the web UI.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// API tokens for services.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Purposes and privacy notices.
    Purposes {
        #[command(subcommand)]
        command: PurposesCommand,
    },
    /// Consent records.
    Consent {
        #[command(subcommand)]
        command: ConsentCommand,
    },
}

#[derive(Subcommand)]
enum PurposesCommand {
    /// Record the purposes and notices of a definitions file (TOML, or JSON by extension), as the
    /// server does with policies/purposes.toml at start. Unchanged ones record nothing.
    Load { file: PathBuf },
}

#[derive(Subcommand)]
enum ConsentCommand {
    /// Import consent decisions from NDJSON (one object per line) or CSV (by the .csv
    /// extension; a header row names the columns). Every row is validated first; nothing is
    /// written if any is bad. Rows already recorded are skipped.
    Import { file: PathBuf },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user. Without --password-stdin, prints a one-time link (valid one hour) where the
    /// user sets their password.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// A role to grant; repeatable.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users with their roles.
    List,
    /// Disable a user: no more sign-ins, every session ends.
    Disable { email: String },
    /// Grant or revoke roles.
    Roles {
        email: String,
        #[arg(long = "grant", value_name = "ROLE")]
        grant: Vec<String>,
        #[arg(long = "revoke", value_name = "ROLE")]
        revoke: Vec<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issue a bearer token for a service and print it (it is not stored; keep it safe).
    Issue {
        #[arg(long)]
        client: String,
        /// A role the token carries; repeatable.
        #[arg(long = "role", value_name = "ROLE", required = true)]
        roles: Vec<String>,
        /// Lifetime such as 90d, 12h, 30m.
        #[arg(long, default_value = "90d")]
        ttl: String,
    },
    /// List issued tokens (never their text).
    List,
    /// Revoke a token by its id (jti); every instance refuses it within a second.
    Revoke { jti: String },
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Re-verify every entry and checkpoint in the database.
    Verify {
        /// A signed checkpoint kept from before; the ledger must agree with it. Repeatable.
        #[arg(long = "pin", value_name = "CHECKPOINT_FILE")]
        pins: Vec<PathBuf>,
    },
    /// Publish a signed checkpoint now and print it.
    Checkpoint,
    /// Write a JSON Lines export for offline verification with `accord-audit verify`.
    Export {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Rebuild every table from the ledger alone, into a scratch database, and compare it with
    /// the live one (exit 1 on any difference).
    Replay {
        /// Compare the rebuilt tables with the live ones (the only mode: the live database is
        /// never written).
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let listen = match &cli.command {
        Command::Serve { listen } => listen.clone(),
        _ => None,
    };
    let overrides = Overrides {
        config_file: cli.config.clone(),
        data_dir: cli.data_dir.clone(),
        listen,
        database_url: cli.database_url.clone(),
    };
    let settings = match Settings::load(&overrides) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    telemetry::init_logging(settings.log_format);
    let outcome = run(cli.command, settings);
    // Log lines still queued are written before anything else is said or the process ends.
    telemetry::flush_logs();
    match outcome {
        Ok(code) => code,
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("accord: {msg}");
    ExitCode::from(2)
}

fn run(command: Command, settings: Settings) -> Result<ExitCode, StartError> {
    match command {
        Command::Serve { .. } => serve(settings),
        Command::Migrate => {
            let applied = commands::migrate(&settings)?;
            if applied.is_empty() {
                println!("no pending migrations ({})", settings.database);
            }
            for m in applied {
                println!("applied {m}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ledger { command } => ledger(command, settings),
        Command::User { command } => with_access(settings, |a| Box::pin(user(command, a))),
        Command::Token { command } => with_access(settings, |a| Box::pin(token(command, a))),
        Command::Purposes { command } => with_access(settings, |a| Box::pin(purposes(command, a))),
        Command::Consent { command } => with_access(settings, |a| Box::pin(consent(command, a))),
    }
}

async fn purposes(command: PurposesCommand, a: &CliAccess) -> Result<(), StartError> {
    match command {
        PurposesCommand::Load { file } => {
            let defs = accord::consent::definitions::Definitions::read(&file)?;
            let s = a
                .consent
                .load_definitions(accord::ledger::Actor::cli(), &defs)
                .await
                .map_err(|e| StartError(format!("{}: {}", file.display(), problem_text(&e))))?;
            println!(
                "{}: {} purposes changed, {} notices published, {} unchanged",
                file.display(),
                s.purposes_changed,
                s.notices_published,
                s.unchanged
            );
            Ok(())
        }
    }
}

async fn consent(command: ConsentCommand, a: &CliAccess) -> Result<(), StartError> {
    match command {
        ConsentCommand::Import { file } => {
            let started = std::time::Instant::now();
            let pool = a.consent.pool().clone();
            let path = file.clone();
            let line_bytes = a.limits.line_bytes;
            if std::io::stderr().is_terminal() {
                eprintln!("validating {} ...", file.display());
            }
            let records = actix_web::web::block(move || {
                let mut c = pool.get()?;
                let reference = accord::consent::import::Reference::load(
                    &mut c,
                    accord::clock::Clock::now(&SystemClock),
                )?;
                accord::consent::import::validate_file(&path, reference, line_bytes)
            })
            .await
            .map_err(|e| StartError(e.to_string()))?
            .map_err(|e| StartError(format!("{}: {}", file.display(), problem_text(&e))))?;
            let bar = Progress::new(Some(records.len() as u64), "rows");
            let progress = |done: u64| bar.show(done);
            let s = a
                .consent
                .import(accord::ledger::Actor::cli(), None, records, &progress)
                .await?;
            bar.finish();
            println!(
                "{}: {} rows, {} recorded, {} already recorded{} in {:.1} s",
                file.display(),
                s.rows,
                s.recorded,
                s.duplicates,
                match (s.first_seq, s.last_seq) {
                    (Some(f), Some(l)) => format!(" (ledger seqs {f}..={l})"),
                    _ => String::new(),
                },
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

/// A progress bar on standard error, drawn only when it is a terminal: piped or logged output gets
/// just the command's one summary line.
struct Progress {
    tty: bool,
    total: Option<u64>,
    unit: &'static str,
}

impl Progress {
    fn new(total: Option<u64>, unit: &'static str) -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            total,
            unit,
        }
    }

    fn show(&self, done: u64) {
        if !self.tty {
            return;
        }
        match self.total {
            Some(total) => {
                let width = 30u64;
                let filled = (done * width)
                    .checked_div(total)
                    .unwrap_or(width)
                    .min(width) as usize;
                eprint!(
                    "\r[{}{}] {done}/{total} {}",
                    "#".repeat(filled),
                    "-".repeat(width as usize - filled),
                    self.unit
                );
            }
            None => eprint!("\r{done} {}", self.unit),
        }
    }

    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

/// A problem with its field-level errors (and row lines), for the terminal.
fn problem_text(e: &accord::error::AppError) -> String {
    match e {
        accord::error::AppError::Validation { detail, errors }
        | accord::error::AppError::Unmet { detail, errors } => {
            let mut out = detail.clone();
            for f in errors {
                out.push_str("\n  ");
                if let Some(l) = f.line {
                    out.push_str(&format!("line {l}: "));
                }
                if !f.field.is_empty() {
                    out.push_str(&format!("{}: ", f.field));
                }
                out.push_str(&f.message);
            }
            out
        }
        other => other.to_string(),
    }
}

type CliFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StartError>> + 'a>>;

/// Runs an access command with the ledger open, and closes the ledger after (also on failure).
fn with_access(
    settings: Settings,
    f: impl for<'a> FnOnce(&'a CliAccess) -> CliFuture<'a>,
) -> Result<ExitCode, StartError> {
    actix_web::rt::System::new().block_on(async move {
        let access = CliAccess::open(&settings).await?;
        let result = f(&access).await;
        access.close().await;
        result.map(|()| ExitCode::SUCCESS)
    })
}

fn roles(names: &[String], field: &str) -> Result<Vec<Role>, StartError> {
    names
        .iter()
        .map(|n| Role::parse_field(field, n).map_err(StartError::from))
        .collect()
}

async fn user(command: UserCommand, a: &CliAccess) -> Result<(), StartError> {
    match command {
        UserCommand::Add {
            email,
            name,
            roles: role_names,
            password_stdin,
        } => {
            let granted = roles(&role_names, "role")?;
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| StartError(format!("cannot read the password: {e}")))?;
                Some(line.trim_end_matches(['\n', '\r']).to_string())
            } else {
                None
            };
            let user = a
                .svc
                .create_user(
                    Actor::cli(),
                    None,
                    &email,
                    &name,
                    &granted,
                    password.as_deref(),
                )
                .await?;
            println!(
                "added {} ({}) with roles: {}",
                user.email,
                user.id,
                role_list(&granted)
            );
            if password.is_none() {
                let raw = a
                    .svc
                    .create_setup_link(Actor::cli(), PURPOSE_SET_PASSWORD, Some(user.id))
                    .await?;
                println!(
                    "one-time link to set the password (valid for one hour): {}/ui/setup?token={raw}",
                    a.public_url
                );
            }
        }
        UserCommand::List => {
            for (u, r) in a.svc.list_users().await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    u.email,
                    u.name,
                    role_list(&r),
                    if u.disabled { "disabled" } else { "active" }
                );
            }
        }
        UserCommand::Disable { email } => {
            let u = a.svc.disable_user(Actor::cli(), None, &email).await?;
            println!("disabled {}", u.email);
        }
        UserCommand::Roles {
            email,
            grant,
            revoke,
        } => {
            let held = a
                .svc
                .change_roles(
                    Actor::cli(),
                    None,
                    &email,
                    &roles(&grant, "grant")?,
                    &roles(&revoke, "revoke")?,
                )
                .await?;
            println!(
                "{} now holds: {}",
                email.trim().to_lowercase(),
                role_list(&held)
            );
        }
    }
    Ok(())
}

async fn token(command: TokenCommand, a: &CliAccess) -> Result<(), StartError> {
    match command {
        TokenCommand::Issue {
            client,
            roles: role_names,
            ttl,
        } => {
            let ttl = parse_ttl("ttl", &ttl)?;
            let issued = a
                .svc
                .issue_token(
                    Actor::cli(),
                    None,
                    &a.tokens,
                    &client,
                    &roles(&role_names, "role")?,
                    ttl,
                )
                .await?;
            eprintln!(
                "token {} for {} ({}), expires {}",
                issued.jti,
                issued.client,
                role_list(&issued.roles),
                issued.expires_at
            );
            println!("{}", issued.token);
        }
        TokenCommand::List => {
            for t in a.svc.list_tokens().await? {
                println!(
                    "{}\t{}\t{}\texpires {}\t{}",
                    t.jti,
                    t.client,
                    role_list(&t.role_list()),
                    Timestamp(t.expires_at),
                    match t.revoked_at {
                        Some(at) => format!("revoked {}", Timestamp(at)),
                        None => "active".into(),
                    }
                );
            }
        }
        TokenCommand::Revoke { jti } => {
            a.svc.revoke_token(Actor::cli(), None, &jti).await?;
            println!("revoked {jti}");
        }
    }
    Ok(())
}

fn role_list(roles: &[Role]) -> String {
    if roles.is_empty() {
        "none".into()
    } else {
        roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn serve(settings: Settings) -> Result<ExitCode, StartError> {
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        // Registered before start-up: SIGTERM or Ctrl-C at any moment leads to a graceful stop;
        // a second one ends the process at once.
        let mut signals = Signals::install()?;
        let app = Application::build_with_clock(settings, Arc::new(SystemClock)).await?;
        if let Some(link) = app.setup_link() {
            // A one-time secret: to the operator's terminal, never into the log.
            println!(
                "No user exists yet. Create the first administrator within one hour at:\n  {link}"
            );
        }
        let handle = app.handle();
        actix_web::rt::spawn(async move {
            signals.next().await;
            tracing::info!("stopping: finishing requests in flight and the ledger batch (signal again to force)");
            actix_web::rt::spawn(async move { handle.stop(true).await });
            signals.next().await;
            eprintln!("accord: stopped without finishing (second signal)");
            std::process::exit(130);
        });
        app.run_until_stopped()
            .await
            .map_err(|e| StartError(format!("server error: {e}")))?;
        Ok(ExitCode::SUCCESS)
    })
}

/// SIGTERM and SIGINT, registered as soon as `install` returns.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, StartError> {
        use tokio::signal::unix::{SignalKind, signal};
        let register = |kind| {
            signal(kind).map_err(|e| StartError(format!("cannot install a signal handler: {e}")))
        };
        Ok(Signals {
            term: register(SignalKind::terminate())?,
            int: register(SignalKind::interrupt())?,
        })
    }

    /// Resolves at the next SIGTERM or SIGINT.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

fn read_pins(files: &[PathBuf]) -> Result<Vec<String>, StartError> {
    files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f).map_err(|e| {
                StartError(format!(
                    "cannot read the pinned checkpoint {}: {e}",
                    f.display()
                ))
            })
        })
        .collect()
}

fn ledger(command: LedgerCommand, settings: Settings) -> Result<ExitCode, StartError> {
    match command {
        LedgerCommand::Verify { pins } => match commands::verify(&settings, &read_pins(&pins)?)? {
            Ok(s) => {
                println!(
                    "ledger OK: {} entries, {} checkpoints, {} redacted payloads, root {} ({} entries after the latest checkpoint), verified in {} ms",
                    s.entries, s.checkpoints, s.redacted, s.root, s.unsigned_tail, s.elapsed_ms
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(f) => {
                println!("ledger FAILED: {f}");
                Ok(ExitCode::from(1))
            }
        },
        LedgerCommand::Checkpoint => {
            let cp = commands::checkpoint(&settings, &SystemClock)?;
            print!("{}", cp.note);
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Replay { check } => {
            if !check {
                return Err(StartError(
                    "replay rebuilds the tables into a scratch database to compare them: run it as `accord ledger replay --check`".into(),
                ));
            }
            let bar = Progress::new(None, "entries replayed");
            let r = commands::replay_check(&settings, |done, _| bar.show(done))?;
            bar.finish();
            println!(
                "replayed {} entries ({} redacted by erasures, not applied) into a scratch {} database in {} ms",
                r.entries,
                r.redacted,
                settings.database.backend(),
                r.elapsed_ms
            );
            for (table, live, replayed) in &r.tables {
                println!("  {table:<16} {live:>9} rows live, {replayed:>9} replayed");
            }
            println!("not replayable (left out of the comparison):");
            for (table, column, why) in accord::replay::NOT_REPLAYABLE {
                let what = if *column == "*" {
                    table.to_string()
                } else {
                    format!("{table}.{column}")
                };
                println!("  {what}: {why}");
            }
            if r.ok() {
                println!("replay OK: every projected table equals the live database");
                Ok(ExitCode::SUCCESS)
            } else {
                println!(
                    "replay FAILED: {} differences between the live database and the ledger; the first {}:",
                    r.total_differences,
                    r.differences.len()
                );
                for d in &r.differences {
                    println!("  {d}");
                }
                Ok(ExitCode::from(1))
            }
        }
        LedgerCommand::Export { out } => {
            let bar = Progress::new(None, "entries exported");
            let s = commands::export(&settings, &SystemClock, &out, |n| bar.show(n))?;
            bar.finish();
            println!(
                "wrote {}: {} entries, {} checkpoints, covered by the checkpoint at size {}",
                out.display(),
                s.entries,
                s.checkpoints,
                s.checkpoint_size
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
