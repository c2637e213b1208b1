//! `accord serve`: the server until SIGTERM or Ctrl-C (a second one ends the process at once).

use std::process::ExitCode;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::config::Settings;
use crate::{Application, StartError};

pub fn serve(settings: Settings) -> Result<ExitCode, StartError> {
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
