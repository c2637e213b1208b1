//! The rules of vendors and DPAs: validate a command against what is stored, turn it into events,
//! record them with their projection. Guards are checked again under the ledger's lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::chain::{check_parent, unknown_vendor};
use super::events::DpaEvent;
use super::index::DpaIndex;
use super::model::{DpaVersionDef, SubprocessorDecision, VendorDef, VendorRole};
use super::projection;
use super::store::{self, DocumentRow, DpaRow, DpaVersionRow, VendorRow};
use crate::clock::{SharedClock, Timestamp};
use crate::db::{AnyConnection, Pool};
use crate::error::{AppError, ConflictCode};
use crate::idempotency::{self, Answer};
use crate::ledger::event::first;
use crate::ledger::{Actor, AppendRequest, Defined, EventDraft, Ledger};

/// A DPA and every version of it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DpaView {
    pub id: String,
    pub vendor: String,
    pub seq: crate::vocab::Seq,
    #[serde(serialize_with = "crate::clock::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub terminated_at: Option<Timestamp>,
    pub termination_reason: Option<String>,
    pub versions: Vec<Defined<DpaVersionDef>>,
    /// The signed documents stored, by version.
    pub documents: Vec<Attached>,
}

/// A document stored for a DPA version.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Attached {
    pub dpa: String,
    pub version: i32,
    pub sha256: String,
    pub media_type: String,
    pub size: u64,
    pub seq: crate::vocab::Seq,
    /// False when the same document was already stored (nothing recorded).
    pub changed: bool,
}

/// The vendor and DPA commands.
#[derive(Clone)]
pub struct DpaService {
    ledger: Ledger,
    pool: Pool,
    clock: SharedClock,
    /// This instance's coverage index (none in the CLI).
    index: Option<Arc<DpaIndex>>,
    /// Days before a version's expiry on which reminders are due.
    reminder_days: Vec<u32>,
}

/// Inside a write: every purpose a version covers is registered.
fn check_purposes(
    c: &mut AnyConnection,
    def: &DpaVersionDef,
    prefix: &str,
) -> Result<(), AppError> {
    let unknown = crate::consent::unregistered_purposes(c, &def.purposes)?;
    let mut p = crate::vocab::Problems::default();
    for (i, k) in def.purposes.iter().enumerate() {
        if unknown.contains(k) {
            p.unmet(
                format!("{prefix}purposes[{i}]"),
                format!("{k:?} is not a registered purpose (see GET /v1/purposes)"),
            );
        }
    }
    p.into_result()
}

impl DpaService {
    pub fn new(
        ledger: Ledger,
        pool: Pool,
        clock: SharedClock,
        index: Option<Arc<DpaIndex>>,
        reminder_days: Vec<u32>,
    ) -> Self {
        DpaService {
            ledger,
            pool,
            clock,
            index,
            reminder_days,
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

    /// Appends, then waits until this instance's index shows the change (a check here right after
    /// sees it). Returns what the projection returned.
    async fn append<T: Send + 'static>(&self, req: AppendRequest) -> Result<T, AppError> {
        let (out, value) = self.ledger.append_returning::<T>(req).await?;
        if let (Some(last), Some(index)) = (out.last(), &self.index) {
            index.wait_for_write(last.seq.get()).await;
        }
        Ok(value)
    }

    // ----- vendors -----

    /// Registers a vendor (`create_only`: refuses an existing id) or records a new version of it.
    /// An unchanged vendor records nothing.
    pub async fn define_vendor(
        &self,
        actor: Actor,
        request_id: Option<String>,
        mut def: VendorDef,
        create_only: bool,
        answer: Option<Answer<Defined<VendorDef>>>,
    ) -> Result<Defined<VendorDef>, AppError> {
        let id = def.id.clone();
        let latest = self
            .read(move |c| Ok(store::latest_vendor(c, &id)?))
            .await?;
        if let Some(row) = &latest {
            if create_only {
                return Err(AppError::conflict(
                    ConflictCode::Exists,
                    format!(
                        "vendor {:?} exists (version {}); change it with PUT /v1/vendors/{}",
                        def.id, row.version, def.id
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
        let event = DpaEvent::VendorDefined(def.clone());
        self.append(
            AppendRequest::new(actor, vec![EventDraft::new(&event)?])
                .request_id(request_id)
                .project(move |c, appended| {
                    let now = store::latest_vendor(c, &def.id)?
                        .map(|r| r.version)
                        .unwrap_or(0);
                    if now + 1 != def.version {
                        return Err(AppError::conflict(
                            ConflictCode::Changed,
                            format!(
                                "vendor {:?} changed meanwhile (now version {now}); read it and try again",
                                def.id
                            ),
                        ));
                    }
                    check_parent(c, &def)?;
                    let a = first(appended)?;
                    projection::apply(c, &event, a)?;
                    Ok(Defined::new(a, def))
                })
                .trailer(idempotency::trailer(answer, None)),
        )
        .await
    }

    /// Writes an import's vendors (validated and ordered by [`super::import::VendorRows`]) in one
    /// append: all or nothing. Rows equal to the stored vendor record nothing, so a re-run writes
    /// nothing new. `mark` is the last vendor change the rows were checked against; if another
    /// writer changed a vendor since, nothing is written (409: run it again). `progress` counts
    /// the vendors written.
    pub async fn import_vendors(
        &self,
        actor: Actor,
        request_id: Option<String>,
        (rows, stored): (Vec<VendorDef>, super::import::VendorRows),
        progress: Option<Arc<AtomicU64>>,
        answer: Option<Answer<VendorImportSummary>>,
    ) -> Result<VendorImportSummary, AppError> {
        let mut summary = VendorImportSummary {
            rows: rows.len() as u64,
            ..VendorImportSummary::default()
        };
        let mut events = Vec::new();
        for mut def in rows {
            match stored.stored(&def.id) {
                Some(current) => {
                    def.version = current.version;
                    if *current == def {
                        summary.unchanged += 1;
                        continue;
                    }
                    def.version += 1;
                    summary.changed += 1;
                }
                None => {
                    def.version = 1;
                    summary.registered += 1;
                }
            }
            events.push(DpaEvent::VendorDefined(def));
        }
        if events.is_empty() {
            return Ok(summary);
        }
        let drafts = events
            .iter()
            .map(EventDraft::new)
            .collect::<Result<Vec<_>, _>>()?;
        let mark = stored.mark;
        self.append(
            AppendRequest::new(actor, drafts)
                .request_id(request_id)
                .project(move |c, appended| {
                    if store::last_vendor_change(c)? != mark {
                        return Err(AppError::conflict(
                            ConflictCode::Changed,
                            "vendors changed while the import was checked; run it again (it skips what is recorded)",
                        ));
                    }
                    for (i, (event, a)) in events.iter().zip(appended).enumerate() {
                        projection::apply(c, event, a)?;
                        if let Some(p) = &progress {
                            p.store(i as u64 + 1, Ordering::Relaxed);
                        }
                    }
                    summary.first_seq = appended.first().map(|a| a.seq);
                    summary.last_seq = appended.last().map(|a| a.seq);
                    Ok(summary)
                })
                .trailer(idempotency::trailer(answer, None)),
        )
        .await
    }

    pub async fn vendor(&self, id: &str) -> Result<Vec<VendorRow>, AppError> {
        let id = id.to_string();
        let rows = self
            .read({
                let id = id.clone();
                move |c| Ok(store::vendor_versions(c, &id)?)
            })
            .await?;
        if rows.is_empty() {
            return Err(AppError::NotFound(format!("no vendor {id:?}")));
        }
        Ok(rows)
    }

    pub async fn vendors(&self) -> Result<Vec<VendorRow>, AppError> {
        self.read(|c| Ok(store::latest_vendors(c)?)).await
    }

    /// Records the controller's authorisation of (or objection to) a sub-processor that the
    /// processor `parent` engages (Art. 28(2)).
    pub async fn decide_subprocessor(
        &self,
        actor: Actor,
        request_id: Option<String>,
        parent: &str,
        decision: (String, SubprocessorDecision, String),
        note: Option<String>,
        answer: Option<Answer<Defined<SubprocessorView>>>,
    ) -> Result<Defined<SubprocessorView>, AppError> {
        let (vendor, decision, decided_on) = decision;
        let event = DpaEvent::SubprocessorDecided {
            vendor: vendor.clone(),
            parent: parent.to_string(),
            decision,
            decided_on: decided_on.clone(),
            note,
        };
        let decided = decided_on.clone();
        let view = SubprocessorView {
            subprocessor: vendor.clone(),
            parent: parent.to_string(),
            decision,
            decided_on,
        };
        let parent = parent.to_string();
        self.append(
            AppendRequest::new(actor, vec![EventDraft::new(&event)?])
                .request_id(request_id)
                .project(move |c, appended| {
                    store::latest_vendor(c, &parent)?
                        .ok_or_else(|| AppError::NotFound(format!("no vendor {parent:?}")))?;
                    let sub = store::latest_vendor(c, &vendor)?
                        .ok_or_else(|| unknown_vendor("subprocessor", &vendor))?
                        .def()?;
                    let a = first(appended)?;
                    if super::index::day_start(&decided).is_none_or(|d| d > a.at.micros()) {
                        return Err(AppError::unmet(
                            "decided_on",
                            format!("{decided} is after today (UTC): record a decision once it is made"),
                        ));
                    }
                    if sub.role != VendorRole::SubProcessor || sub.parent.as_deref() != Some(&parent)
                    {
                        return Err(AppError::unmet(
                            "subprocessor",
                            format!(
                                "{vendor:?} is not registered as a sub-processor of {parent:?} (set its role and parent with PUT /v1/vendors/{vendor})"
                            ),
                        ));
                    }
                    projection::apply(c, &event, a)?;
                    Ok(Defined::new(a, view))
                })
                .trailer(idempotency::trailer(answer, None)),
        )
        .await
    }

    // ----- DPAs -----

    /// Records a DPA with a vendor and its first version.
    pub async fn create_dpa(
        &self,
        actor: Actor,
        request_id: Option<String>,
        (id, vendor, mut version): (String, String, DpaVersionDef),
        answer: Option<Answer<DpaView>>,
    ) -> Result<DpaView, AppError> {
        version.version = 1;
        version.reminder_days = self.reminder_days.clone();
        let created = DpaEvent::DpaCreated {
            id: id.clone(),
            vendor: vendor.clone(),
        };
        let added = DpaEvent::DpaVersionAdded(version.clone());
        let drafts = vec![EventDraft::new(&created)?, EventDraft::new(&added)?];
        self.append(
            AppendRequest::new(actor, drafts)
                .request_id(request_id)
                .project(move |c, appended| {
                    if store::dpa(c, &id)?.is_some() {
                        return Err(AppError::conflict(
                            ConflictCode::Exists,
                            format!("DPA {id:?} exists; amend it with POST /v1/dpas/{id}/versions"),
                        ));
                    }
                    let party = store::latest_vendor(c, &vendor)?
                        .ok_or_else(|| unknown_vendor("vendor", &vendor))?
                        .def()?;
                    if party.role != VendorRole::Processor {
                        return Err(AppError::unmet(
                            "vendor",
                            format!(
                                "{vendor:?} is a {}: a DPA (Art. 28) is made with a processor; a sub-processor is covered through its processor's",
                                party.role
                            ),
                        ));
                    }
                    check_purposes(c, &version, "version.")?;
                    let (a, b) = match appended {
                        [a, b] => (a, b),
                        _ => {
                            return Err(AppError::internal(anyhow::anyhow!(
                                "a new DPA is two entries"
                            )));
                        }
                    };
                    projection::apply(c, &created, a)?;
                    projection::apply(c, &added, b)?;
                    Ok(DpaView {
                        id,
                        vendor,
                        seq: a.seq,
                        terminated_at: None,
                        termination_reason: None,
                        versions: vec![Defined::new(b, version)],
                        documents: Vec::new(),
                    })
                })
                .trailer(idempotency::trailer(answer, None)),
        )
        .await
    }

    /// Records an amendment: a new version with the next number.
    pub async fn add_version(
        &self,
        actor: Actor,
        request_id: Option<String>,
        mut version: DpaVersionDef,
        answer: Option<Answer<Defined<DpaVersionDef>>>,
    ) -> Result<Defined<DpaVersionDef>, AppError> {
        let dpa = version.dpa.clone();
        let latest = self
            .read(move |c| {
                let row = store::dpa(c, &dpa)?
                    .ok_or_else(|| AppError::NotFound(format!("no DPA {dpa:?}")))?;
                Ok((row, store::versions_of(c, &dpa)?.len()))
            })
            .await?;
        let next = i32::try_from(latest.1 + 1).unwrap_or(i32::MAX);
        version.version = next;
        version.reminder_days = self.reminder_days.clone();
        let event = DpaEvent::DpaVersionAdded(version.clone());
        self.append(
            AppendRequest::new(actor, vec![EventDraft::new(&event)?])
                .request_id(request_id)
                .project(move |c, appended| {
                    let row = store::dpa(c, &version.dpa)?.ok_or_else(|| {
                        AppError::NotFound(format!("no DPA {:?}", version.dpa))
                    })?;
                    let now = first(appended)?.at;
                    if row.terminated_at.is_some_and(|t| t <= now.micros()) {
                        return Err(AppError::unmet(
                            "dpa",
                            format!(
                                "DPA {:?} is terminated; record a new DPA instead",
                                version.dpa
                            ),
                        ));
                    }
                    let now = store::versions_of(c, &version.dpa)?.len();
                    if now != latest.1 {
                        return Err(AppError::conflict(
                            ConflictCode::Changed,
                            format!(
                                "DPA {:?} was amended meanwhile (now {now} versions); read it and try again",
                                version.dpa
                            ),
                        ));
                    }
                    check_purposes(c, &version, "")?;
                    let a = first(appended)?;
                    projection::apply(c, &event, a)?;
                    Ok(Defined::new(a, version))
                })
                .trailer(idempotency::trailer(answer, None)),
        )
        .await
    }

    /// Ends a DPA at `effective_at`.
    pub async fn terminate(
        &self,
        actor: Actor,
        request_id: Option<String>,
        id: &str,
        effective_at: Timestamp,
        reason: Option<String>,
        answer: Option<Answer<DpaView>>,
    ) -> Result<DpaView, AppError> {
        let event = DpaEvent::DpaTerminated {
            id: id.to_string(),
            effective_at,
            reason,
        };
        let id = id.to_string();
        self.append(
            AppendRequest::new(actor, vec![EventDraft::new(&event)?])
                .request_id(request_id)
                .project(move |c, appended| {
                    let row = store::dpa(c, &id)?
                        .ok_or_else(|| AppError::NotFound(format!("no DPA {id:?}")))?;
                    if row.terminated_seq.is_some() {
                        return Err(AppError::conflict(
                            ConflictCode::Done,
                            format!("DPA {id:?} is already terminated"),
                        ));
                    }
                    projection::apply(c, &event, first(appended)?)?;
                    view(c, &id)
                })
                .trailer(idempotency::trailer(answer, None)),
        )
        .await
    }

    pub async fn dpa(&self, id: &str) -> Result<DpaView, AppError> {
        let id = id.to_string();
        self.read(move |c| view(c, &id)).await
    }

    pub async fn dpas(&self) -> Result<Vec<DpaView>, AppError> {
        self.read(|c| {
            store::all_dpas(c)?
                .into_iter()
                .map(|d| view(c, &d.id))
                .collect()
        })
        .await
    }

    /// Stores a version's signed document and records its hash. The same document again records
    /// nothing; another one for a version that has one is refused (versions are immutable).
    pub async fn attach_document(
        &self,
        actor: Actor,
        request_id: Option<String>,
        (dpa, version): (String, i32),
        media_type: String,
        bytes: Vec<u8>,
    ) -> Result<Attached, AppError> {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        let (d, v, h) = (dpa.clone(), version, sha256.clone());
        let existing = self
            .read(move |c| {
                let terms = store::versions_of(c, &d)?
                    .into_iter()
                    .find(|r| r.version == v)
                    .ok_or_else(|| {
                        AppError::NotFound(format!("DPA {d:?} has no version {v}"))
                    })?;
                if let Some(expected) = &terms.document_sha256
                    && *expected != h
                {
                    return Err(AppError::conflict(
                        ConflictCode::Immutable,
                        format!(
                            "version {v} of DPA {d:?} names the document with SHA-256 {expected}; this one's is {h}"
                        ),
                    ));
                }
                Ok(store::document(c, &d, v)?)
            })
            .await?;
        if let Some(doc) = existing {
            if doc.sha256 != sha256 {
                return Err(AppError::conflict(
                    ConflictCode::Immutable,
                    format!(
                        "version {version} of DPA {dpa:?} already has a document (SHA-256 {}); versions are immutable: record a new version",
                        doc.sha256
                    ),
                ));
            }
            return Ok(attached(&doc, false));
        }
        let event = DpaEvent::DocumentAttached {
            dpa: dpa.clone(),
            version,
            sha256: sha256.clone(),
            media_type,
            size,
        };
        self.append(
            AppendRequest::new(actor, vec![EventDraft::new(&event)?])
                .request_id(request_id)
                .project(move |c, appended| {
                    if store::document(c, &dpa, version)?.is_some() {
                        return Err(AppError::conflict(
                            ConflictCode::Changed,
                            "a document was attached to this version meanwhile; read it again",
                        ));
                    }
                    store::put_bytes(c, &sha256, &bytes)?;
                    let a = first(appended)?;
                    projection::apply(c, &event, a)?;
                    let doc = store::document(c, &dpa, version)?.ok_or_else(|| {
                        AppError::internal(anyhow::anyhow!("the document row is missing"))
                    })?;
                    Ok(attached(&doc, true))
                }),
        )
        .await
    }

    /// A version's document: its row and its bytes.
    pub async fn document(
        &self,
        dpa: &str,
        version: i32,
    ) -> Result<(DocumentRow, Vec<u8>), AppError> {
        let dpa = dpa.to_string();
        self.read(move |c| {
            let doc = store::document(c, &dpa, version)?.ok_or_else(|| {
                AppError::NotFound(format!("version {version} of DPA {dpa:?} has no document"))
            })?;
            let bytes = store::bytes(c, &doc.sha256)?.ok_or_else(|| {
                AppError::internal(anyhow::anyhow!(
                    "the bytes of document {} are missing",
                    doc.sha256
                ))
            })?;
            Ok((doc, bytes))
        })
        .await
    }
}

fn attached(doc: &DocumentRow, changed: bool) -> Attached {
    Attached {
        dpa: doc.dpa.clone(),
        version: doc.version,
        sha256: doc.sha256.clone(),
        media_type: doc.media_type.clone(),
        size: u64::try_from(doc.size).unwrap_or(0),
        seq: doc.seq,
        changed,
    }
}

/// A DPA with its versions, as stored.
fn view(c: &mut AnyConnection, id: &str) -> Result<DpaView, AppError> {
    let DpaRow {
        id,
        vendor,
        seq,
        terminated_at,
        termination_reason,
        ..
    } = store::dpa(c, id)?.ok_or_else(|| AppError::NotFound(format!("no DPA {id:?}")))?;
    let rows = store::versions_of(c, &id)?;
    let seqs: Vec<_> = rows.iter().map(|r| r.seq).collect();
    let leaves = crate::ledger::read::leaves(c, &seqs)?;
    let versions = rows
        .iter()
        .map(|r: &DpaVersionRow| {
            Ok(Defined {
                seq: r.seq,
                leaf_hash: leaves
                    .iter()
                    .find(|l| l.seq == r.seq)
                    .map(|l| l.leaf_hash.clone())
                    .unwrap_or_default(),
                changed: true,
                value: r.def()?,
            })
        })
        .collect::<Result<Vec<_>, AppError>>()?;
    let documents = store::documents_of(c, &id)?
        .iter()
        .map(|d| attached(d, true))
        .collect();
    Ok(DpaView {
        id,
        vendor,
        seq,
        terminated_at: terminated_at.map(Timestamp),
        termination_reason,
        versions,
        documents,
    })
}

/// What a vendor import did.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct VendorImportSummary {
    pub rows: u64,
    /// Vendors this import registered.
    pub registered: u64,
    /// Vendors this import gave a new version.
    pub changed: u64,
    /// Rows equal to the vendor as stored: nothing recorded.
    pub unchanged: u64,
    pub first_seq: Option<crate::vocab::Seq>,
    pub last_seq: Option<crate::vocab::Seq>,
}

/// A sub-processor decision as answered.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SubprocessorView {
    pub subprocessor: String,
    pub parent: String,
    pub decision: SubprocessorDecision,
    pub decided_on: String,
}
