//! Consent rules: validate a command, turn it into events, record them with their projection.
//! Used by the HTTP API and the CLI alike.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::definitions::{Definitions, LoadSummary};
use super::events::ConsentEvent;
use super::index::ConsentIndex;
use super::input::{ConsentContext, ConsentInput};
use super::model::{ConsentRecord, Method, NoticeDef, PurposeDef, PurposeStatus};
use super::projection;
use super::store::{self, NoticeRow, PurposeRow, RecordRow};
use super::views::{Defined, ImportSummary, RecordView, Recorded, recorded};
use crate::clock::{SharedClock, Timestamp};
use crate::db::{AnyConnection, Pool};
use crate::error::{AppError, ConflictCode};
use crate::idempotency::{self, Answer};
use crate::ledger::event::first;
use crate::ledger::read::Leaf;
use crate::ledger::{Actor, AppendRequest, Appended, EventDraft, Ledger};
use crate::vocab::Seq;

/// Events per append in a bulk import.
pub const IMPORT_CHUNK: usize = 1000;

const DUPLICATE: &str = "this consent decision is already recorded";

/// The consent commands, over a ledger, a pool and this instance's index.
#[derive(Clone)]
pub struct ConsentService {
    ledger: Ledger,
    pool: Pool,
    clock: SharedClock,
    /// This server's index (absent in the CLI, which has none to keep current).
    index: Option<Arc<ConsentIndex>>,
}

impl ConsentService {
    pub fn new(
        ledger: Ledger,
        pool: Pool,
        clock: SharedClock,
        index: Option<Arc<ConsentIndex>>,
    ) -> Self {
        ConsentService {
            ledger,
            pool,
            clock,
            index,
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        crate::db::blocking(&self.pool, f).await
    }

    /// Appends, then waits until this instance's index shows the change, so the caller reads its
    /// own write here without `min_seq`. Returns what the projection returned.
    async fn append_returning<T: Send + 'static>(
        &self,
        req: AppendRequest,
    ) -> Result<(Vec<Appended>, T), AppError> {
        let (out, value) = self.ledger.append_returning::<T>(req).await?;
        self.applied(&out).await;
        Ok((out, value))
    }

    /// Waits (a while) until this instance's index shows the entries.
    async fn applied(&self, out: &[Appended]) {
        if let (Some(last), Some(index)) = (out.last(), &self.index) {
            index.wait_for_write(last.seq.get()).await;
        }
    }

    // ----- purposes and notices -----

    /// Creates a purpose (`create_only`: refuses an existing key) or records a new version of it.
    /// Loading an unchanged definition records nothing.
    pub async fn define_purpose(
        &self,
        actor: Actor,
        request_id: Option<String>,
        mut def: PurposeDef,
        create_only: bool,
        answer: Option<Answer<Defined<PurposeDef>>>,
    ) -> Result<Defined<PurposeDef>, AppError> {
        let key = def.key.clone();
        let latest = self
            .read(move |c| Ok(store::latest_purpose(c, &key)?))
            .await?;
        if let Some(row) = &latest {
            if create_only {
                return Err(AppError::conflict(
                    ConflictCode::Exists,
                    format!(
                        "purpose {:?} exists (version {}); change it with PUT /v1/purposes/{}",
                        def.key, row.version, def.key
                    ),
                ));
            }
            let current = row.def()?;
            def.version = current.version;
            if current == def {
                return Ok(Defined::unchanged(row.seq, current));
            }
        }
        def.version = latest.as_ref().map(|r| r.version + 1).unwrap_or(1);
        let event = if def.status == PurposeStatus::Retired {
            ConsentEvent::PurposeRetired(def.clone())
        } else {
            ConsentEvent::PurposeDefined(def.clone())
        };
        let (key, version) = (def.key.clone(), def.version);
        let (_, out) = self
            .append_returning(
                AppendRequest::new(actor, vec![EventDraft::new(&event)?])
                    .request_id(request_id)
                    .project(move |c, appended| {
                        let now = store::latest_purpose(c, &key)?
                            .map(|r| r.version)
                            .unwrap_or(0);
                        if now + 1 != version {
                            return Err(AppError::conflict(ConflictCode::Changed, format!(
                                "purpose {key:?} changed meanwhile (now version {now}); read it and try again"
                            )));
                        }
                        let a = first(appended)?;
                        projection::apply(c, &event, a)?;
                        Ok(Defined::new(a, def))
                    })
                    .trailer(idempotency::trailer(answer, None)),
            )
            .await?;
        Ok(out)
    }

    /// Retires a purpose: checks then answer `purpose_retired`, no new consent is accepted, and
    /// its history stays.
    pub async fn retire_purpose(
        &self,
        actor: Actor,
        request_id: Option<String>,
        key: &str,
        answer: Option<Answer<Defined<PurposeDef>>>,
    ) -> Result<Defined<PurposeDef>, AppError> {
        let mut def = self.purpose(key).await?;
        def.status = PurposeStatus::Retired;
        self.define_purpose(actor, request_id, def, false, answer)
            .await
    }

    pub async fn purpose(&self, key: &str) -> Result<PurposeDef, AppError> {
        let k = key.to_string();
        let row = self
            .read(move |c| Ok(store::latest_purpose(c, &k)?))
            .await?;
        row.ok_or_else(|| AppError::NotFound(format!("no purpose {key:?}")))?
            .def()
            .map_err(AppError::from)
    }

    /// Every purpose at its latest version, by key.
    pub async fn purposes(&self) -> Result<Vec<(PurposeDef, Seq)>, AppError> {
        let rows = self.read(|c| Ok(store::all_purpose_versions(c)?)).await?;
        let mut latest: std::collections::BTreeMap<String, PurposeRow> = Default::default();
        for r in rows {
            latest.insert(r.key.clone(), r);
        }
        latest
            .into_values()
            .map(|r| Ok((r.def()?, r.seq)))
            .collect()
    }

    pub async fn purpose_history(&self, key: &str) -> Result<Vec<PurposeRow>, AppError> {
        let k = key.to_string();
        let rows = self
            .read(move |c| Ok(store::purpose_versions(c, &k)?))
            .await?;
        if rows.is_empty() {
            return Err(AppError::NotFound(format!("no purpose {key:?}")));
        }
        Ok(rows)
    }

    /// Publishes a notice version. Versions are immutable: publishing the same one again with the
    /// same content records nothing; with different content it is refused.
    pub async fn publish_notice(
        &self,
        actor: Actor,
        request_id: Option<String>,
        def: NoticeDef,
        answer: Option<Answer<Defined<NoticeDef>>>,
    ) -> Result<Defined<NoticeDef>, AppError> {
        let (k, v) = (def.key.clone(), def.version.clone());
        if let Some(row) = self.read(move |c| Ok(store::notice(c, &k, &v)?)).await? {
            let same = row.text_hash == def.text_hash
                && row.url == def.url
                && row.effective_at == def.effective_at.micros();
            if !same {
                return Err(AppError::conflict(
                    ConflictCode::Immutable,
                    format!(
                        "notice {:?} version {:?} is already published with other content; notice versions are immutable, publish a new version",
                        def.key, def.version
                    ),
                ));
            }
            return Ok(Defined::unchanged(row.seq, def));
        }
        let event = ConsentEvent::NoticePublished(def.clone());
        let (key, version) = (def.key.clone(), def.version.clone());
        let (_, out) = self
            .append_returning(
                AppendRequest::new(actor, vec![EventDraft::new(&event)?])
                    .request_id(request_id)
                    .project(move |c, appended| {
                        if store::notice(c, &key, &version)?.is_some() {
                            return Err(AppError::conflict(
                                ConflictCode::Changed,
                                format!(
                                    "notice {key:?} version {version:?} was published meanwhile"
                                ),
                            ));
                        }
                        let a = first(appended)?;
                        projection::apply(c, &event, a)?;
                        Ok(Defined::new(a, def))
                    })
                    .trailer(idempotency::trailer(answer, None)),
            )
            .await?;
        Ok(out)
    }

    pub async fn notices(&self) -> Result<Vec<NoticeRow>, AppError> {
        self.read(|c| Ok(store::all_notices(c)?)).await
    }

    // ----- consent -----

    /// Validates a consent input against the current purposes (notice versions are checked in
    /// the write itself).
    pub fn validate(
        &self,
        input: &ConsentInput,
        gpc: bool,
        default_method: Method,
    ) -> Result<ConsentRecord, AppError> {
        let index = self
            .index
            .clone()
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("no consent index here")))?;
        let lookup = move |k: &str| index.purpose_def(k);
        input.validate(&ConsentContext {
            now: self.clock.now(),
            purpose: &lookup,
            notice_exists: None,
            gpc,
            default_method,
        })
    }

    /// Records one consent decision. The same decision recorded before answers with that record
    /// (`duplicate`); an idempotency key replays the first answer.
    pub async fn record(
        &self,
        actor: Actor,
        request_id: Option<String>,
        record: ConsentRecord,
        answer: Option<Answer<Recorded>>,
    ) -> Result<Recorded, AppError> {
        let projected = record.clone();
        let event = ConsentEvent::ConsentRecorded(Box::new(record.clone()));
        let subject_ref = self.ledger.writer().keys().subject_ref(&record.subject);
        let key = answer.as_ref().map(|a| a.key().clone());
        let result = self
            .append_returning::<Recorded>(
                AppendRequest::new(actor, vec![EventDraft::new(&event)?])
                    .request_id(request_id)
                    .project(move |c, appended| {
                        let a = first(appended)?;
                        if store::seq_by_fingerprint(c, &projected.fingerprint)?.is_some() {
                            return Err(AppError::conflict(ConflictCode::Duplicate, DUPLICATE));
                        }
                        check_references(c, std::slice::from_ref(&projected))?;
                        projection::apply(c, &event, a)?;
                        Ok(recorded(&projected, a, false))
                    })
                    .trailer(idempotency::trailer(
                        answer,
                        Some((record.subject.clone(), subject_ref)),
                    )),
            )
            .await;
        match result {
            Ok((_, out)) => Ok(out),
            Err(e) if e.conflict_code() == Some(ConflictCode::Duplicate) => {
                // A request with the same key that recorded this decision first: its answer is
                // this one's.
                if let Some(key) = key {
                    let now = self.clock.now();
                    if self.read(move |c| key.stored(c, now)).await?.is_some() {
                        return Err(AppError::conflict(
                            ConflictCode::InFlight,
                            idempotency::IN_FLIGHT,
                        ));
                    }
                }
                let fp = record.fingerprint.clone();
                let existing = self
                    .read(move |c| {
                        let seq = store::seq_by_fingerprint(c, &fp)?;
                        Ok(match seq {
                            Some(s) => crate::ledger::read::entry(c, s.get())?
                                .map(|e| (s, e.leaf_hash, Timestamp(e.at))),
                            None => None,
                        })
                    })
                    .await?
                    .ok_or_else(|| AppError::conflict(ConflictCode::Duplicate, DUPLICATE))?;
                Ok(Recorded {
                    seq: existing.0,
                    leaf_hash: existing.1,
                    recorded_at: existing.2,
                    duplicate: true,
                    record: RecordView::from(&record),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Writes validated records in chunks, skipping those already recorded (by fingerprint), so a
    /// re-run of the same file writes nothing new. `progress` is told how many rows are done.
    pub async fn import(
        &self,
        actor: Actor,
        request_id: Option<String>,
        records: Vec<ConsentRecord>,
        progress: &(dyn Fn(u64) + Sync),
        mut answer: Option<Answer<ImportSummary>>,
    ) -> Result<ImportSummary, AppError> {
        let mut summary = ImportSummary {
            rows: records.len() as u64,
            ..ImportSummary::default()
        };
        let mut seen: HashSet<String> = HashSet::with_capacity(records.len());
        let mut done = 0u64;
        let mut iter = records.into_iter().peekable();
        while iter.peek().is_some() {
            let chunk: Vec<ConsentRecord> = iter.by_ref().take(IMPORT_CHUNK).collect();
            let n = chunk.len() as u64;
            let fps: Vec<String> = chunk.iter().map(|r| r.fingerprint.clone()).collect();
            let existing: HashSet<String> = self
                .read(move |c| {
                    let refs: Vec<&str> = fps.iter().map(String::as_str).collect();
                    Ok(store::existing_fingerprints(c, &refs)?)
                })
                .await?
                .into_iter()
                .collect();
            let fresh: Vec<ConsentRecord> = chunk
                .into_iter()
                .filter(|r| {
                    !existing.contains(&r.fingerprint) && seen.insert(r.fingerprint.clone())
                })
                .collect();
            summary.duplicates += n - fresh.len() as u64;
            // The answer is recorded with the last chunk, if the import wrote anything.
            let trailer = if iter.peek().is_none() && (summary.recorded > 0 || !fresh.is_empty()) {
                idempotency::trailer(answer.take(), None)
            } else {
                None
            };
            if !fresh.is_empty() || trailer.is_some() {
                let events: Vec<ConsentEvent> = fresh
                    .iter()
                    .map(|r| ConsentEvent::ConsentRecorded(Box::new(r.clone())))
                    .collect();
                let drafts = events
                    .iter()
                    .map(EventDraft::new)
                    .collect::<Result<Vec<_>, _>>()?;
                let so_far = summary.clone();
                let (_, folded) = self
                    .append_returning::<ImportSummary>(
                        AppendRequest::new(actor.clone(), drafts)
                            .request_id(request_id.clone())
                            .project(move |c, appended| {
                                check_references(c, &fresh)?;
                                projection::apply_all(c, &events, appended).map_err(|e| match e {
                                    diesel::result::Error::DatabaseError(
                                        diesel::result::DatabaseErrorKind::UniqueViolation,
                                        _,
                                    ) => AppError::conflict(
                                        ConflictCode::Changed,
                                        "some rows were recorded by another writer meanwhile; run the import again (it skips what is recorded)",
                                    ),
                                    other => other.into(),
                                })?;
                                Ok(so_far.with(appended))
                            })
                            .trailer(trailer),
                    )
                    .await?;
                summary = folded;
            }
            done += n;
            progress(done);
        }
        Ok(summary)
    }

    /// The subject's records in ledger order, each with its entry's leaf hash and time.
    pub async fn history(&self, subject: &str) -> Result<Vec<(RecordRow, String, i64)>, AppError> {
        let s = subject.to_string();
        self.read(move |c| {
            let rows = store::subject_history(c, &s)?;
            let seqs: Vec<Seq> = rows.iter().map(|r| r.seq).collect();
            let mut leaves: HashMap<Seq, Leaf> = crate::ledger::read::leaves(c, &seqs)?
                .into_iter()
                .map(|l| (l.seq, l))
                .collect();
            rows.into_iter()
                .map(|r| {
                    let leaf = leaves.remove(&r.seq).ok_or_else(|| {
                        AppError::internal(anyhow::anyhow!(
                            "consent record {} has no ledger entry",
                            r.seq
                        ))
                    })?;
                    Ok((r, leaf.leaf_hash, leaf.at))
                })
                .collect()
        })
        .await
    }

    /// Records purposes and notices from a definitions file; unchanged ones record nothing.
    pub async fn load_definitions(
        &self,
        actor: Actor,
        defs: &Definitions,
    ) -> Result<LoadSummary, AppError> {
        let mut summary = LoadSummary::default();
        let (purposes, notices) = defs.validate(self.clock.now())?;
        for d in purposes {
            if self
                .define_purpose(actor.clone(), None, d, false, None)
                .await?
                .changed
            {
                summary.purposes_changed += 1;
            } else {
                summary.unchanged += 1;
            }
        }
        for d in notices {
            if self
                .publish_notice(actor.clone(), None, d, None)
                .await?
                .changed
            {
                summary.notices_published += 1;
            } else {
                summary.unchanged += 1;
            }
        }
        Ok(summary)
    }
}

/// Inside a write: every purpose is registered and active, every notice version exists. This is
/// the authoritative check (the one before the write reads this instance's index).
fn check_references(c: &mut AnyConnection, records: &[ConsentRecord]) -> Result<(), AppError> {
    let purposes: BTreeSet<&str> = records.iter().map(|r| r.purpose.as_str()).collect();
    let mut status: HashMap<&str, bool> = HashMap::new();
    for p in purposes {
        let active = store::latest_purpose(c, p)?
            .is_some_and(|row| row.status == PurposeStatus::Active.as_str());
        status.insert(p, active);
    }
    if let Some(r) = records.iter().find(|r| !status[r.purpose.as_str()]) {
        return Err(AppError::unmet(
            "purpose",
            format!(
                "{:?} is not a registered, active purpose (it may have been retired meanwhile)",
                r.purpose
            ),
        ));
    }
    let notices: BTreeSet<(&str, &str)> = records
        .iter()
        .filter_map(|r| r.notice.as_ref())
        .map(|n| (n.key.as_str(), n.version.as_str()))
        .collect();
    for (k, v) in notices {
        if store::notice(c, k, v)?.is_none() {
            return Err(AppError::unmet(
                "notice_version",
                format!("notice {k:?} has no version {v:?} (see GET /v1/notices)"),
            ));
        }
    }
    Ok(())
}
