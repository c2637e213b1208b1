//! The one write path. Domain code validates a command, turns it into events and calls
//! [`Ledger::append`] with a projection; the events become ledger entries and the projection updates
//! the domain tables in the same transaction. Nothing else writes domain tables.

pub mod api;
pub mod erasure;
pub mod event;
pub mod export;
pub mod follow;
pub mod proofs;
pub mod read;
mod sequencer;
pub mod store;
mod stream;
pub mod verify;
pub mod writer;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use diesel::Connection;
use tokio::sync::oneshot;

pub use event::{Actor, Appended, Defined, EventDraft, LedgerEvent, SystemEvent};
use sequencer::{Command, Pending, Sequencer};
pub use writer::Writer;

use crate::clock::SharedClock;
use crate::config::LedgerSettings;
use crate::db::{AnyConnection, Manager};
use crate::error::AppError;
use crate::keys::{Keys, random_bytes};

/// What a projection returns, handed back to the writer with the recorded entries.
pub type Projected = Box<dyn std::any::Any + Send>;

/// Applies an append's events to the domain tables, inside the append's transaction. It receives the
/// recorded entries (seqs, leaf hashes, time, actor). An error rolls back this append only.
pub type Projection = Box<
    dyn FnOnce(&mut AnyConnection, &[Appended]) -> Result<Projected, AppError> + Send + 'static,
>;

/// One more entry an append adds after its own events, made from what its projection returned
/// (an idempotency answer: it quotes the seqs the events were given). It is staged and applied in
/// the append's savepoint, so it is recorded exactly when the events are. It is not among the
/// entries the append returns.
pub type Trailer =
    Box<dyn FnOnce(&(dyn std::any::Any + Send)) -> Result<TrailerEntry, AppError> + Send + 'static>;

/// A trailer's event and how it is applied once recorded.
pub struct TrailerEntry {
    pub draft: EventDraft,
    pub apply: ApplyOne,
}

/// Applies one recorded entry.
pub type ApplyOne = Box<dyn FnOnce(&mut AnyConnection, &Appended) -> Result<(), AppError> + Send>;

/// One append: events, who caused them, the request they came from, and an optional projection.
pub struct AppendRequest {
    pub actor: Actor,
    pub request_id: Option<String>,
    pub events: Vec<EventDraft>,
    pub apply: Option<Projection>,
    pub trailer: Option<Trailer>,
}

impl AppendRequest {
    pub fn new(actor: Actor, events: Vec<EventDraft>) -> Self {
        AppendRequest {
            actor,
            request_id: None,
            events,
            apply: None,
            trailer: None,
        }
    }

    pub fn request_id(mut self, id: Option<String>) -> Self {
        self.request_id = id;
        self
    }

    /// Applies the events with `f` in the append's transaction; what `f` returns comes back
    /// from [`Ledger::append_returning`].
    pub fn project<T: Send + 'static>(
        mut self,
        f: impl FnOnce(&mut AnyConnection, &[Appended]) -> Result<T, AppError> + Send + 'static,
    ) -> Self {
        self.apply = Some(Box::new(move |c: &mut AnyConnection, a: &[Appended]| {
            f(c, a).map(|v| Box::new(v) as Projected)
        }));
        self
    }

    /// Adds a trailer entry (see [`Trailer`]); it needs a projection, whose value it reads.
    pub fn trailer(mut self, trailer: Option<Trailer>) -> Self {
        self.trailer = trailer;
        self
    }
}

pub(crate) struct Shared {
    pub writer: Writer,
    pub clock: SharedClock,
    /// The tree size this instance last wrote or saw.
    pub size: AtomicU64,
    pub running: AtomicBool,
    pub last_checkpoint_size: AtomicU64,
    pub last_checkpoint_at: AtomicI64,
}

impl Shared {
    fn note_checkpoint(&self, cp: &store::CheckpointRow) {
        self.last_checkpoint_size
            .store(cp.size.get(), Ordering::SeqCst);
        self.last_checkpoint_at
            .store(cp.published_at, Ordering::SeqCst);
    }
}

/// A handle on the ledger; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    shared: Arc<Shared>,
    tx: Sender<Command>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Ledger {
    /// Opens the ledger on a migrated database: creates the tree and records `ledger.initialised` as
    /// seq 0 if the log is empty, checks that the signing key matches the log's latest checkpoint,
    /// and starts the sequencer thread.
    pub fn open(
        manager: &Manager,
        settings: &LedgerSettings,
        keys: Arc<Keys>,
        clock: SharedClock,
    ) -> Result<Ledger, AppError> {
        let mut conn = manager
            .open()
            .map_err(|e| AppError::Unavailable(e.to_string()))?;
        let origin = initialise(&mut conn, settings, &keys, &clock)?;
        let writer = Writer::new(&origin, keys)?;
        let state = store::read_tree_state(&mut conn)?
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("ledger tree state missing")))?;
        let latest = store::latest_checkpoint(&mut conn)?;
        if let Some(cp) = &latest {
            accord_audit::checkpoint::Checkpoint::open(&cp.note, &writer.verifier).map_err(|e| {
                AppError::Unavailable(format!(
                    "the ledger signing key does not verify the latest checkpoint (size {}): {e}; \
                     was the key file replaced?",
                    cp.size
                ))
            })?;
        }
        let shared = Arc::new(Shared {
            writer,
            clock,
            size: AtomicU64::new(state.size()),
            running: AtomicBool::new(true),
            last_checkpoint_size: AtomicU64::new(0),
            last_checkpoint_at: AtomicI64::new(0),
        });
        if let Some(cp) = &latest {
            shared.note_checkpoint(cp);
        }
        let (tx, rx) = channel();
        let seq = Sequencer {
            shared: shared.clone(),
            manager: manager.clone(),
            conn: Some(conn),
            rx,
            batch_max: settings.batch_max,
            batch_wait: settings.batch_wait,
            checkpoint_interval: settings.checkpoint_interval,
        };
        let thread = std::thread::Builder::new()
            .name("accord-sequencer".into())
            .spawn(move || seq.run())
            .map_err(|e| AppError::internal(anyhow::anyhow!("cannot start the sequencer: {e}")))?;
        Ok(Ledger {
            shared,
            tx,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    pub fn origin(&self) -> &str {
        &self.shared.writer.origin
    }

    pub fn writer(&self) -> &Writer {
        &self.shared.writer
    }

    /// The verifier key in signed-note form (`name+keyid+base64`).
    pub fn verifier_key(&self) -> String {
        self.shared.writer.verifier.to_vkey()
    }

    /// The tree size this instance last wrote.
    pub fn size(&self) -> u64 {
        self.shared.size.load(Ordering::SeqCst)
    }

    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::SeqCst)
    }

    /// (size, published_at µs) of the latest checkpoint this instance published or saw at start.
    pub fn last_checkpoint(&self) -> (u64, i64) {
        (
            self.shared.last_checkpoint_size.load(Ordering::SeqCst),
            self.shared.last_checkpoint_at.load(Ordering::SeqCst),
        )
    }

    /// Records events (and applies their projection) in one transaction; resolves when committed.
    pub async fn append(&self, req: AppendRequest) -> Result<Vec<Appended>, AppError> {
        Ok(self.submit(req).await?.0)
    }

    /// [`Ledger::append`], with what the projection returned (a `T`, as [`AppendRequest::project`]
    /// was given).
    pub async fn append_returning<T: 'static>(
        &self,
        req: AppendRequest,
    ) -> Result<(Vec<Appended>, T), AppError> {
        let (appended, value) = self.submit(req).await?;
        let value = value.and_then(|v| v.downcast::<T>().ok()).ok_or_else(|| {
            AppError::internal(anyhow::anyhow!(
                "the projection returned no value of the type asked for"
            ))
        })?;
        Ok((appended, *value))
    }

    async fn submit(&self, req: AppendRequest) -> sequencer::AppendOutcome {
        if req.events.is_empty() && req.trailer.is_none() {
            return Ok((Vec::new(), None));
        }
        let (reply, rx) = oneshot::channel();
        let pending = Pending {
            actor: req.actor,
            request_id: req.request_id,
            events: req.events,
            apply: req.apply,
            trailer: req.trailer,
            queued: Instant::now(),
            reply,
        };
        self.tx
            .send(Command::Append(pending))
            .map_err(|_| stopped())?;
        match tokio::time::timeout(APPEND_TIMEOUT, rx).await {
            Ok(reply) => reply.map_err(|_| stopped())?,
            Err(_) => Err(AppError::Unavailable(format!(
                "the ledger did not confirm the write within {} s; its outcome is unknown",
                APPEND_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Records one event with no projection.
    pub async fn record<E: LedgerEvent>(
        &self,
        actor: Actor,
        request_id: Option<String>,
        event: &E,
    ) -> Result<Appended, AppError> {
        let draft = EventDraft::new(event)?;
        let mut out = self
            .append(AppendRequest::new(actor, vec![draft]).request_id(request_id))
            .await?;
        out.pop()
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("append returned no entry")))
    }

    /// Publishes a checkpoint now if the tree has grown; returns the latest checkpoint.
    pub async fn publish_checkpoint(&self) -> Result<Option<store::CheckpointRow>, AppError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Checkpoint(reply))
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Stops the sequencer after it has written everything queued so far and published a final
    /// checkpoint. Idempotent.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown);
        let handle = self.thread.lock().ok().and_then(|mut g| g.take());
        if let Some(h) = handle {
            let joined = tokio::time::timeout(
                SHUTDOWN_TIMEOUT,
                tokio::task::spawn_blocking(move || h.join()),
            )
            .await;
            if joined.is_err() {
                tracing::error!(
                    "the ledger sequencer did not stop within {} s",
                    SHUTDOWN_TIMEOUT.as_secs()
                );
            }
        }
    }
}

/// Longest a caller waits for its append to be committed (the database's own lock and idle
/// timeouts are shorter, so this is only reached when something is badly wrong).
const APPEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);
/// Longest shutdown waits for the sequencer to drain.
const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

fn stopped() -> AppError {
    AppError::Unavailable("the ledger is shutting down".into())
}

/// Ensures the tree exists and seq 0 is the `ledger.initialised` entry; returns the log's origin.
fn initialise(
    conn: &mut AnyConnection,
    settings: &LedgerSettings,
    keys: &Arc<Keys>,
    clock: &SharedClock,
) -> Result<String, AppError> {
    let now = clock.now().micros();
    let proposed = match &settings.origin {
        Some(o) => o.clone(),
        None => {
            let id = random_bytes::<8>().map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
            format!("accord.local/{}", hex::encode(id))
        }
    };
    conn.transaction::<_, AppError, _>(|c| {
        store::create_tree_state_if_absent(c, &proposed, now)?;
        let mut state = store::lock_tree_state(c)?
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("ledger tree state missing")))?;
        if let Some(configured) = &settings.origin
            && configured != &state.origin
        {
            return Err(AppError::conflict(
                crate::error::ConflictCode::Ledger,
                format!(
                    "the ledger's origin is {:?} but the configuration says {configured:?}; \
                 the origin is fixed when the ledger is created",
                    state.origin
                ),
            ));
        }
        if state.size() == 0 {
            let writer = Writer::new(&state.origin, keys.clone())?;
            let event = SystemEvent::LedgerInitialised {
                origin: state.origin.clone(),
                verifier_key: writer.verifier.to_vkey(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            };
            let mut rows = store::PendingRows::default();
            writer.stage(
                &mut state,
                now,
                &Actor::system(),
                None,
                &[EventDraft::new(&event)?],
                &mut rows,
            )?;
            store::insert_rows(c, &mut rows)?;
            store::save_tree_state(c, &state)?;
            tracing::info!(origin = %state.origin, "ledger initialised");
        }
        Ok(state.origin)
    })
}
