//! The batching sequencer: one thread per instance that owns a database connection, gathers appends
//! for a moment, and writes them as one transaction under the sequencing lock: one fsync per batch.
//! Each append's projection runs in its own savepoint, so one failing request does not fail its
//! neighbours. Several instances on one PostgreSQL serialise through the tree-state row lock.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use diesel::Connection;
use tokio::sync::oneshot;

use super::event::{Actor, Appended, EventDraft};
use super::store::{self, PendingRows};
use super::{Projected, Projection, Shared, Trailer};
use crate::db::{AnyConnection, Manager};
use crate::error::AppError;

pub(super) struct Pending {
    pub actor: Actor,
    pub request_id: Option<String>,
    pub events: Vec<EventDraft>,
    pub apply: Option<Projection>,
    pub trailer: Option<Trailer>,
    pub queued: Instant,
    pub reply: oneshot::Sender<AppendOutcome>,
}

pub(super) enum Command {
    Append(Pending),
    Checkpoint(oneshot::Sender<Result<Option<store::CheckpointRow>, AppError>>),
    Shutdown,
}

pub(super) struct Sequencer {
    pub shared: Arc<Shared>,
    pub manager: Manager,
    pub conn: Option<AnyConnection>,
    pub rx: Receiver<Command>,
    pub batch_max: usize,
    pub batch_wait: Duration,
    pub checkpoint_interval: Duration,
}

/// Clears the running flag however the thread ends (a panic included), so `/readyz` tells the truth.
struct RunningFlag(Arc<Shared>);

impl Drop for RunningFlag {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::SeqCst);
    }
}

impl Sequencer {
    pub fn run(mut self) {
        let _running = RunningFlag(self.shared.clone());
        let mut next_checkpoint = Instant::now() + self.checkpoint_interval;
        let mut shutting_down = false;
        while !shutting_down {
            let wait = next_checkpoint.saturating_duration_since(Instant::now());
            let first = match self.rx.recv_timeout(wait) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut batch: Vec<Pending> = Vec::new();
            let mut events = 0usize;
            let mut waiters = Vec::new();
            let mut take = |cmd: Command,
                            batch: &mut Vec<Pending>,
                            events: &mut usize,
                            shutting_down: &mut bool| match cmd {
                Command::Append(p) => {
                    *events += p.events.len();
                    batch.push(p);
                }
                Command::Checkpoint(w) => waiters.push(w),
                Command::Shutdown => *shutting_down = true,
            };
            if let Some(c) = first {
                take(c, &mut batch, &mut events, &mut shutting_down);
            }
            if !batch.is_empty() {
                // Gather what arrives within the batch window, up to the batch size; stop early
                // once the queue has been quiet for a moment (writers answered by the last batch
                // come back within microseconds; waiting longer only adds latency).
                let deadline = Instant::now() + self.batch_wait;
                let quiet = (self.batch_wait / 8).max(Duration::from_micros(100));
                while events < self.batch_max && !shutting_down {
                    let next = match self.rx.try_recv() {
                        Ok(c) => Some(c),
                        Err(_) => {
                            let left = deadline.saturating_duration_since(Instant::now());
                            if left.is_zero() {
                                None
                            } else {
                                self.rx.recv_timeout(left.min(quiet)).ok()
                            }
                        }
                    };
                    match next {
                        Some(c) => take(c, &mut batch, &mut events, &mut shutting_down),
                        None => break,
                    }
                }
            }
            if shutting_down {
                // Drain: everything queued before the shutdown request is still written.
                while let Ok(c) = self.rx.try_recv() {
                    take(c, &mut batch, &mut events, &mut shutting_down);
                }
            }
            if !batch.is_empty() {
                self.flush(batch);
            }
            if !waiters.is_empty() || Instant::now() >= next_checkpoint || shutting_down {
                let outcome = self.checkpoint();
                for w in waiters {
                    let _ = w.send(outcome.as_ref().map(Clone::clone).map_err(copy_error));
                }
                if let Err(e) = outcome {
                    tracing::error!(error = %e, "checkpoint publication failed");
                }
                next_checkpoint = Instant::now() + self.checkpoint_interval;
            }
        }
        tracing::info!("ledger sequencer stopped");
    }

    fn connection(&mut self) -> Result<&mut AnyConnection, AppError> {
        if self.conn.is_none() {
            let c = self
                .manager
                .open()
                .map_err(|e| AppError::Unavailable(format!("ledger database: {e}")))?;
            self.conn = Some(c);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| AppError::Unavailable("ledger database connection lost".into()))
    }

    fn checkpoint(&mut self) -> Result<Option<store::CheckpointRow>, AppError> {
        let now = self.shared.clock.now();
        let shared = self.shared.clone();
        let conn = self.connection()?;
        let r = shared.writer.publish_checkpoint(conn, now);
        match &r {
            Ok(Some(cp)) => shared.note_checkpoint(cp),
            Ok(None) => {}
            Err(_) => self.drop_connection_if_broken(),
        }
        r
    }

    fn drop_connection_if_broken(&mut self) {
        let broken = match self.conn.as_mut() {
            Some(c) => {
                use diesel::connection::SimpleConnection;
                c.batch_execute("SELECT 1").is_err()
            }
            None => false,
        };
        if broken {
            tracing::warn!("ledger connection broken; reconnecting on the next batch");
            self.conn = None;
        }
    }

    fn flush(&mut self, mut batch: Vec<Pending>) {
        let shared = self.shared.clone();
        let started = Instant::now();
        let now = shared.clock.now().micros();
        let result = match self.connection() {
            Ok(conn) => write_batch(conn, &shared, &mut batch, now),
            Err(e) => Err(e),
        };
        match result {
            Ok((outcomes, size)) => {
                shared.size.store(size, Ordering::SeqCst);
                metrics::gauge!("accord_ledger_size").set(size as f64);
                let written: usize = outcomes
                    .iter()
                    .map(|o| o.as_ref().map(|(a, _)| a.len()).unwrap_or(0))
                    .sum();
                metrics::histogram!("accord_ledger_batch_entries").record(written as f64);
                metrics::histogram!("accord_ledger_batch_write_seconds")
                    .record(started.elapsed().as_secs_f64());
                for (p, outcome) in batch.into_iter().zip(outcomes) {
                    metrics::histogram!("accord_ledger_append_latency_seconds")
                        .record(p.queued.elapsed().as_secs_f64());
                    let _ = p.reply.send(outcome);
                }
            }
            Err(e) => {
                let request_ids: Vec<&str> = batch
                    .iter()
                    .filter_map(|p| p.request_id.as_deref())
                    .collect();
                tracing::error!(error = %e, appends = batch.len(), ?request_ids, "ledger batch failed");
                self.drop_connection_if_broken();
                for p in batch {
                    let _ = p.reply.send(Err(copy_error(&e)));
                }
            }
        }
    }
}

/// What an append recorded, and what its projection returned.
pub(super) type AppendOutcome = Result<(Vec<Appended>, Option<Projected>), AppError>;

/// Writes one batch in one transaction. Returns each append's outcome (in order) and the new size.
fn write_batch(
    conn: &mut AnyConnection,
    shared: &Shared,
    batch: &mut [Pending],
    now: i64,
) -> Result<(Vec<AppendOutcome>, u64), AppError> {
    conn.transaction::<_, AppError, _>(|conn| {
        let mut state = store::lock_tree_state(conn)?
            .ok_or_else(|| AppError::Unavailable("the ledger is not initialised".into()))?;
        // Time never runs backwards along the log, whatever the clocks of several instances say.
        let at = now.max(state.last_at);
        let mut rows = PendingRows::default();
        let mut outcomes = Vec::with_capacity(batch.len());
        for p in batch.iter_mut() {
            match p.apply.take() {
                None if p.trailer.is_some() => {
                    outcomes.push(Err(AppError::internal(anyhow::anyhow!(
                        "a trailer entry needs a projection to read"
                    ))));
                }
                None => {
                    let staged = shared.writer.stage(
                        &mut state,
                        at,
                        &p.actor,
                        p.request_id.as_deref(),
                        &p.events,
                        &mut rows,
                    );
                    outcomes.push(staged.map(|a| (a, None)));
                }
                Some(apply) => {
                    // Rows gathered so far go in first, outside this append's savepoint.
                    store::insert_rows(conn, &mut rows)?;
                    let before = state.clone();
                    let trailer = p.trailer.take();
                    let (actor, request_id) = (&p.actor, p.request_id.as_deref());
                    let r = conn.transaction::<_, AppError, _>(|conn| {
                        // Stages entries and writes their rows now, inside this savepoint.
                        let mut write = |conn: &mut AnyConnection, events: &[EventDraft]| {
                            let mut own = PendingRows::default();
                            let appended = shared
                                .writer
                                .stage(&mut state, at, actor, request_id, events, &mut own)?;
                            store::insert_rows(conn, &mut own)?;
                            Ok::<_, AppError>(appended)
                        };
                        let appended = write(conn, &p.events)?;
                        // A panicking projection fails its own append, not the sequencer.
                        let value = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            apply(conn, &appended)
                        }))
                        .map_err(|_| {
                            AppError::internal(anyhow::anyhow!("the projection panicked"))
                        })??;
                        if let Some(trailer) = trailer {
                            let entry = trailer(&*value)?;
                            let trailed = write(conn, std::slice::from_ref(&entry.draft))?;
                            let a = trailed.first().ok_or_else(|| {
                                AppError::internal(anyhow::anyhow!("a trailer staged no entry"))
                            })?;
                            (entry.apply)(conn, a)?;
                        }
                        Ok((appended, Some(value)))
                    });
                    if r.is_err() {
                        state = before;
                    }
                    outcomes.push(r);
                }
            }
        }
        store::insert_rows(conn, &mut rows)?;
        store::save_tree_state(conn, &state)?;
        Ok((outcomes, state.size()))
    })
}

/// AppError is not Clone (it may hold an anyhow chain); a batch failure is reported to every
/// waiting request as the same kind of error.
fn copy_error(e: &AppError) -> AppError {
    match e {
        AppError::Unavailable(m) => AppError::Unavailable(m.clone()),
        AppError::Validation { detail, errors } => AppError::Validation {
            detail: detail.clone(),
            errors: errors.clone(),
        },
        AppError::Unmet { detail, errors } => AppError::Unmet {
            detail: detail.clone(),
            errors: errors.clone(),
        },
        AppError::Conflict { code, detail } => AppError::Conflict {
            code: *code,
            detail: detail.clone(),
        },
        AppError::Internal(cause) => {
            AppError::internal(anyhow::anyhow!("ledger write failed: {cause:#}"))
        }
        other => AppError::internal(anyhow::anyhow!("ledger write failed: {other}")),
    }
}
