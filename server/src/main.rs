//! The `accord` command line: parses arguments, sets up logging, loads settings and dispatches
//! to the command bodies in `accord::commands`.

use std::path::PathBuf;
use std::process::ExitCode;

use accord::commands::CliAccess;
use accord::config::{Overrides, Settings};
use accord::{StartError, commands, telemetry};
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
    /// Mail: check that the configured mail server takes Accord's mail.
    Mail {
        #[command(subcommand)]
        command: MailCommand,
    },
    /// Vendors that process personal data for you.
    Vendors {
        #[command(subcommand)]
        command: VendorsCommand,
    },
}

#[derive(Subcommand)]
enum MailCommand {
    /// Send one test mail through the [smtp] settings and say what the mail server answered.
    Test {
        #[arg(long, value_name = "ADDR")]
        to: String,
    },
}

#[derive(Subcommand)]
enum VendorsCommand {
    /// Register or update vendors from NDJSON (one vendor object per line, as POST /v1/vendors
    /// takes it) or CSV (by the .csv extension; data_categories separated by ';'). Every row is
    /// validated first; nothing is written if any is bad. Unchanged vendors record nothing.
    Import { file: PathBuf },
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
    use commands::{access, consent, dpa, ledger};
    match command {
        Command::Serve { .. } => commands::serve::serve(settings),
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
        Command::Mail {
            command: MailCommand::Test { to },
        } => actix_web::rt::System::new().block_on(async move {
            let said = commands::notify::mail_test(&settings, &to).await?;
            println!("{said}");
            Ok(ExitCode::SUCCESS)
        }),
        Command::Ledger { command } => match command {
            LedgerCommand::Verify { pins } => ledger::run_verify(&settings, &pins),
            LedgerCommand::Checkpoint => ledger::run_checkpoint(&settings),
            LedgerCommand::Export { out } => ledger::run_export(&settings, &out),
            LedgerCommand::Replay { check } => ledger::run_replay(&settings, check),
        },
        Command::User { command } => with_access(settings, move |a| {
            Box::pin(async move {
                match command {
                    UserCommand::Add {
                        email,
                        name,
                        roles,
                        password_stdin,
                    } => access::add_user(a, &email, &name, &roles, password_stdin).await,
                    UserCommand::List => access::list_users(a).await,
                    UserCommand::Disable { email } => access::disable_user(a, &email).await,
                    UserCommand::Roles {
                        email,
                        grant,
                        revoke,
                    } => access::change_roles(a, &email, &grant, &revoke).await,
                }
            })
        }),
        Command::Token { command } => with_access(settings, move |a| {
            Box::pin(async move {
                match command {
                    TokenCommand::Issue { client, roles, ttl } => {
                        access::issue_token(a, &client, &roles, &ttl).await
                    }
                    TokenCommand::List => access::list_tokens(a).await,
                    TokenCommand::Revoke { jti } => access::revoke_token(a, &jti).await,
                }
            })
        }),
        Command::Purposes { command } => with_access(settings, move |a| {
            Box::pin(async move {
                match command {
                    PurposesCommand::Load { file } => consent::load_purposes(a, &file).await,
                }
            })
        }),
        Command::Consent { command } => with_access(settings, move |a| {
            Box::pin(async move {
                match command {
                    ConsentCommand::Import { file } => consent::import(a, &file).await,
                }
            })
        }),
        Command::Vendors { command } => with_access(settings, move |a| {
            Box::pin(async move {
                match command {
                    VendorsCommand::Import { file } => dpa::import_vendors(a, &file).await,
                }
            })
        }),
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
