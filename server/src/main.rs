//! The `accord` command line: parses arguments, sets up logging, loads settings and runs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use accord::clock::SystemClock;
use accord::config::{Overrides, Settings};
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
    match run(cli.command, settings) {
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
    }
}

fn serve(settings: Settings) -> Result<ExitCode, StartError> {
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        // Registered before start-up: SIGTERM or Ctrl-C at any moment leads to a graceful stop;
        // a second one ends the process at once.
        let mut signals = Signals::install()?;
        let app = Application::build_with_clock(settings, Arc::new(SystemClock)).await?;
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
        LedgerCommand::Export { out } => {
            let s = commands::export(&settings, &SystemClock, &out, |n| {
                eprint!("\rexported {n} entries");
            })?;
            eprintln!();
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
