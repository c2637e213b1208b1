//! `accord ledger …`: verify, checkpoint, export and replay, and what they print.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::open;
use super::output::Progress;
use crate::StartError;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::db::{self, AnyConnection, DatabaseUrl, Manager};
use crate::error::AppError;
use crate::keys::Keys;
use crate::ledger::export::{self, ExportSummary};
use crate::ledger::store::{self, CheckpointRow};
use crate::ledger::verify::{self, VerifyOutcome};
use crate::ledger::writer::Writer;

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
        // The scratch copy holds personal data: say so if it cannot be removed.
        match &self.place {
            ScratchPlace::Dir(dir) => {
                if let Err(e) = std::fs::remove_dir_all(dir) {
                    eprintln!(
                        "accord: cannot remove the replay's scratch directory {} ({e}); remove it by hand",
                        dir.display()
                    );
                }
            }
            ScratchPlace::Schema(name, live) => {
                use diesel::connection::SimpleConnection;
                let dropped = Manager::new(live.clone())
                    .open()
                    .map_err(|e| e.to_string())
                    .and_then(|mut c| {
                        c.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                            .map_err(|e| e.to_string())
                    });
                if let Err(e) = dropped {
                    eprintln!(
                        "accord: cannot drop the replay's scratch schema {name} ({e}); drop it by hand"
                    );
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
    replay_check_paged(settings, crate::replay::COMPARE_PAGE, progress)
}

/// [`replay_check`], reading large tables `page` rows at a time.
pub fn replay_check_paged(
    settings: &Settings,
    page: i64,
    progress: impl FnMut(u64, u64),
) -> Result<crate::replay::Report, StartError> {
    let mut live = open(&settings.database, false)?;
    let scratch = Scratch::create(&settings.database, &mut live)?;
    let mut conn = open(&scratch.url, true)?;
    db::run_migrations(&mut conn).map_err(|e| StartError(format!("{e:#}")))?;
    let report = crate::replay::replay_check(&mut live, &mut conn, page, progress);
    drop(conn);
    drop(scratch);
    report.map_err(StartError::from)
}

pub fn read_pins(files: &[PathBuf]) -> Result<Vec<String>, StartError> {
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

/// `accord ledger verify`: exit 0, or 1 naming the first bad seq and why.
pub fn run_verify(settings: &Settings, pins: &[PathBuf]) -> Result<ExitCode, StartError> {
    match verify(settings, &read_pins(pins)?)? {
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
    }
}

/// `accord ledger checkpoint`: publishes one now and prints it.
pub fn run_checkpoint(settings: &Settings) -> Result<ExitCode, StartError> {
    let cp = checkpoint(settings, &SystemClock)?;
    print!("{}", cp.note);
    Ok(ExitCode::SUCCESS)
}

/// `accord ledger export --out FILE`.
pub fn run_export(settings: &Settings, out: &Path) -> Result<ExitCode, StartError> {
    let bar = Progress::new(None, "entries exported");
    let s = export(settings, &SystemClock, out, |n| bar.show(n))?;
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

/// `accord ledger replay --check`: exit 0, or 1 listing the first differences.
pub fn run_replay(settings: &Settings, check: bool) -> Result<ExitCode, StartError> {
    if !check {
        return Err(StartError(
            "replay rebuilds the tables into a scratch database to compare them: run it as `accord ledger replay --check`".into(),
        ));
    }
    let bar = Progress::new(None, "entries replayed");
    let r = replay_check(settings, |done, _| bar.show(done))?;
    bar.finish();
    println!(
        "replayed {} entries ({} redacted by erasures, not applied) into a scratch {} database in {} ms",
        r.entries,
        r.redacted,
        settings.database.backend(),
        r.elapsed_ms
    );
    let width = r.tables.iter().map(|(t, _, _)| t.len()).max().unwrap_or(0);
    for (table, live, replayed) in &r.tables {
        println!("  {table:<width$} {live:>9} rows live, {replayed:>9} replayed");
    }
    println!("not replayable (left out of the comparison):");
    for (table, column, why) in crate::replay::NOT_REPLAYABLE {
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
