//! `accord vendors import`.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::{Either, select};

use super::CliAccess;
use super::output::{Progress, problem_text};
use crate::StartError;
use crate::bulk::validate_file;
use crate::dpa::import::VendorRows;
use crate::ledger::Actor;

/// Imports vendors from an NDJSON or CSV file: every row validated first, nothing written if any
/// is bad; all of them written in one ledger append.
pub async fn import_vendors(a: &CliAccess, file: &Path) -> Result<(), StartError> {
    let started = std::time::Instant::now();
    let pool = a.dpa.pool().clone();
    let path = file.to_path_buf();
    let line_bytes = a.limits.line_bytes;
    if std::io::stderr().is_terminal() {
        eprintln!("validating {} ...", file.display());
    }
    let (rows, stored) = actix_web::web::block(move || {
        let mut c = pool.get()?;
        let stored = VendorRows::load(&mut c)?;
        validate_file(&path, stored, line_bytes)
    })
    .await
    .map_err(|e| StartError(e.to_string()))?
    .map_err(|e| StartError(format!("{}: {}", file.display(), problem_text(&e))))?;
    let bar = Progress::new(Some(rows.len() as u64), "vendors");
    let done = Arc::new(AtomicU64::new(0));
    let write = a
        .dpa
        .import_vendors(Actor::cli(), None, (rows, stored), Some(done.clone()), None);
    let tick = Box::pin(async {
        loop {
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
            bar.show(done.load(Ordering::Relaxed));
        }
    });
    let s = match select(Box::pin(write), tick).await {
        Either::Left((written, _)) => written,
        Either::Right(_) => unreachable!("the progress loop does not end"),
    }
    .map_err(|e| StartError(format!("{}: {}", file.display(), problem_text(&e))))?;
    bar.show(s.registered + s.changed);
    bar.finish();
    println!(
        "{}: {} rows, {} vendors registered, {} changed, {} unchanged{} in {:.1} s",
        file.display(),
        s.rows,
        s.registered,
        s.changed,
        s.unchanged,
        match (s.first_seq, s.last_seq) {
            (Some(f), Some(l)) => format!(" (ledger seqs {f}..={l})"),
            _ => String::new(),
        },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
