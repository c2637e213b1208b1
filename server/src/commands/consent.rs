//! `accord purposes load` and `accord consent import`.

use std::io::IsTerminal;
use std::path::Path;

use super::CliAccess;
use super::output::{Progress, problem_text};
use crate::StartError;
use crate::bulk::validate_file;
use crate::clock::{Clock, SystemClock};
use crate::consent::definitions::Definitions;
use crate::consent::import::Reference;
use crate::ledger::Actor;

/// Records the purposes and notices of a definitions file (those unchanged record nothing).
pub async fn load_purposes(a: &CliAccess, file: &Path) -> Result<(), StartError> {
    let defs = Definitions::read(file)?;
    let s = a
        .consent
        .load_definitions(Actor::cli(), &defs)
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

/// Imports an NDJSON or CSV file: every row validated first, nothing written if any is bad.
pub async fn import(a: &CliAccess, file: &Path) -> Result<(), StartError> {
    let started = std::time::Instant::now();
    let pool = a.consent.pool().clone();
    let path = file.to_path_buf();
    let line_bytes = a.limits.line_bytes;
    if std::io::stderr().is_terminal() {
        eprintln!("validating {} ...", file.display());
    }
    let records = actix_web::web::block(move || {
        let mut c = pool.get()?;
        let reference = Reference::load(&mut c, SystemClock.now())?;
        validate_file(&path, reference, line_bytes).map(|(records, _)| records)
    })
    .await
    .map_err(|e| StartError(e.to_string()))?
    .map_err(|e| StartError(format!("{}: {}", file.display(), problem_text(&e))))?;
    let bar = Progress::new(Some(records.len() as u64), "rows");
    let progress = |done: u64| bar.show(done);
    let s = a
        .consent
        .import(Actor::cli(), None, records, &progress, None)
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
