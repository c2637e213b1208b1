//! The in-memory consent index (DESIGN §8): every instance holds each subject's consent records in
//! compact form, loaded at start from the projection and advanced by following the ledger, so a
//! check — current or as of any past moment — touches no database.
//!
//! Only the follower (one task per instance) changes the index, always in ledger order, so it is
//! exactly the fold of the ledger up to [`ConsentIndex::applied`]. `min_seq` waits for that.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::RwLock;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::events::{CONSENT_RECORDED, ConsentEvent, PURPOSE_DEFINED, PURPOSE_RETIRED};
use super::model::{
    Channel, CheckAnswer, ConsentRecord, Decision, LegalBasis, PurposeDef, PurposeStatus, Reason,
    ReasonCode,
};
use super::store;
use crate::clock::Timestamp;
use crate::db::AnyConnection;
use crate::error::AppError;
use crate::ledger::erasure::Erasure;
use crate::ledger::follow::Follower;
use crate::ledger::read::{self, FollowedEntry};
use crate::vocab::Seq;

/// How long a write waits for this instance's index to show it before answering.
pub const WRITE_WAIT: Duration = Duration::from_secs(5);
/// The ledger kinds the index follows.
pub const FOLLOWED_KINDS: &[&str] = &[
    PURPOSE_DEFINED,
    PURPOSE_RETIRED,
    CONSENT_RECORDED,
    accord_audit::payload::ERASURE_KIND,
];

const SHARDS: usize = 64;
const NO_EXPIRY: i64 = i64::MAX;

/// One consent record, as a check needs it: 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rec {
    collected: i64,
    /// Exclusive end of a grant; `NO_EXPIRY` when it does not expire.
    expires: i64,
    seq: u64,
    purpose: u32,
    channel: u8,
    decision: u8,
    basis: u8,
}

impl Rec {
    const BYTES: usize = 32;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.collected.to_le_bytes());
        out.extend_from_slice(&self.expires.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.purpose.to_le_bytes());
        out.extend_from_slice(&[self.channel, self.decision, self.basis, 0]);
    }

    /// Reads a record [`Rec::encode`] wrote (`b` is exactly [`Rec::BYTES`] long).
    fn decode(b: &[u8]) -> Rec {
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[at..at + 8]);
            w
        };
        let mut purpose = [0u8; 4];
        purpose.copy_from_slice(&b[24..28]);
        Rec {
            collected: i64::from_le_bytes(word(0)),
            expires: i64::from_le_bytes(word(8)),
            seq: u64::from_le_bytes(word(16)),
            purpose: u32::from_le_bytes(purpose),
            channel: b[28],
            decision: b[29],
            basis: b[30],
        }
    }

    fn decision(&self) -> Decision {
        Decision::from_index(self.decision).unwrap_or(Decision::Denied)
    }

    /// Order among records for the same key: latest collected-at, then withdrawal over denial
    /// over grant, then the later entry.
    fn rank(&self) -> (i64, u8, u64) {
        (self.collected, self.decision().tie_rank(), self.seq)
    }
}

/// A purpose's versions in the order they were recorded, each with the time it took effect.
#[derive(Debug, Default)]
struct PurposeHistory {
    key: String,
    versions: Vec<(Timestamp, PurposeDef)>,
}

impl PurposeHistory {
    fn at(&self, t: Option<Timestamp>) -> Option<&PurposeDef> {
        match t {
            None => self.versions.last().map(|(_, d)| d),
            // Before its first version the purpose is taken as first defined: consent collected
            // before a purpose was registered here (and imported later) still counts.
            Some(t) => self
                .versions
                .iter()
                .rev()
                .find(|(from, _)| *from <= t)
                .or(self.versions.first())
                .map(|(_, d)| d),
        }
    }
}

#[derive(Debug, Default)]
struct Purposes {
    ids: HashMap<String, u32>,
    histories: Vec<PurposeHistory>,
}

impl Purposes {
    fn id(&mut self, key: &str) -> u32 {
        if let Some(id) = self.ids.get(key) {
            return *id;
        }
        let id = self.histories.len() as u32;
        self.ids.insert(key.to_string(), id);
        self.histories.push(PurposeHistory {
            key: key.to_string(),
            versions: Vec::new(),
        });
        id
    }

    fn def_at(&self, id: u32, t: Timestamp) -> Option<PurposeAt> {
        self.histories
            .get(id as usize)
            .and_then(|h| h.at(Some(t)))
            .map(|d| (d.status, d.consent_required, d.legal_basis))
    }

    fn add(&mut self, at: Timestamp, def: PurposeDef) {
        let id = self.id(&def.key);
        self.histories[id as usize].versions.push((at, def));
    }
}

/// One subject's records in one allocation: the id's length (four bytes), the id, then each record
/// in [`Rec::BYTES`]. One allocation a subject rather than two, and a 16-byte slot in the table
/// rather than 32, keep the index about 30 bytes a subject smaller (measured at a million
/// subjects). Hashed and compared as the subject id alone, so a shard is looked up by `&str`.
#[derive(Debug, Clone)]
struct Entry(Vec<u8>);

impl Entry {
    const HEAD: usize = 4;

    fn new(subject: &str, recs: impl Iterator<Item = Rec>) -> Entry {
        let recs: Vec<Rec> = recs.collect();
        let mut b = Vec::with_capacity(Self::HEAD + subject.len() + Rec::BYTES * recs.len());
        // Subject ids are at most 256 characters, 1024 bytes (vocab::SubjectId); four bytes hold
        // any length.
        b.extend_from_slice(&(subject.len() as u32).to_le_bytes());
        b.extend_from_slice(subject.as_bytes());
        for r in &recs {
            r.encode(&mut b);
        }
        Entry(b)
    }

    /// Appends a record. Room grows by half the records held (at least one), so a subject with
    /// many records costs amortised constant copying per record, while the usual few records
    /// waste no space.
    fn push(&mut self, rec: Rec) {
        if self.0.len() + Rec::BYTES > self.0.capacity() {
            let held = self.split().1.len() / Rec::BYTES;
            count_copied(self.0.len());
            self.0.reserve_exact(Rec::BYTES * (held / 2).max(1));
        }
        rec.encode(&mut self.0);
    }

    /// The last record (the highest seq: records arrive in ledger order).
    fn last(&self) -> Option<Rec> {
        let recs = self.split().1;
        (recs.len() >= Rec::BYTES).then(|| Rec::decode(&recs[recs.len() - Rec::BYTES..]))
    }

    fn split(&self) -> (&[u8], &[u8]) {
        let mut len = [0u8; Self::HEAD];
        len.copy_from_slice(&self.0[..Self::HEAD]);
        self.0[Self::HEAD..].split_at(u32::from_le_bytes(len) as usize)
    }

    fn subject(&self) -> &str {
        // Always the bytes of the `&str` given to `Entry::new`, whole.
        std::str::from_utf8(self.split().0).unwrap_or_default()
    }

    fn recs(&self) -> impl Iterator<Item = Rec> + Clone + '_ {
        self.split().1.chunks_exact(Rec::BYTES).map(Rec::decode)
    }
}

impl Hash for Entry {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.subject().hash(h);
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.subject() == other.subject()
    }
}

impl Eq for Entry {}

impl Borrow<str> for Entry {
    fn borrow(&self) -> &str {
        self.subject()
    }
}

type Shard = HashSet<Entry>;

#[cfg(test)]
thread_local! {
    /// Bytes of records copied when entries grew, on this thread (the linear-cost test reads it).
    static COPIED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
fn count_copied(bytes: usize) {
    COPIED.with(|c| c.set(c.get() + bytes));
}

#[cfg(not(test))]
fn count_copied(_: usize) {}

/// Why a check could not be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    UnknownPurpose,
}

/// A resolved purpose for many checks in a row (a batch or a filter).
#[derive(Debug, Clone, Copy)]
pub struct PurposeId(u32);

pub struct ConsentIndex {
    shards: Box<[RwLock<Shard>]>,
    hasher: RandomState,
    purposes: RwLock<Purposes>,
    applied: watch::Sender<u64>,
    kick: Notify,
}

impl std::fmt::Debug for ConsentIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentIndex")
            .field("applied", &self.applied())
            .finish_non_exhaustive()
    }
}

impl Default for ConsentIndex {
    fn default() -> Self {
        Self::new()
    }
}

const LOAD_PAGE: i64 = 20_000;

impl ConsentIndex {
    pub fn new() -> Self {
        ConsentIndex {
            shards: (0..SHARDS).map(|_| RwLock::new(HashSet::new())).collect(),
            hasher: RandomState::new(),
            purposes: RwLock::new(Purposes::default()),
            applied: watch::channel(0).0,
            kick: Notify::new(),
        }
    }

    /// The ledger size this index reflects: every entry below it has been applied.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    fn shard(&self, subject: &str) -> &RwLock<Shard> {
        let h = self.hasher.hash_one(subject);
        &self.shards[(h as usize) % SHARDS]
    }

    /// Loads the projection as of the current tree size (blocking; at start).
    pub fn load(&self, conn: &mut AnyConnection) -> Result<u64, AppError> {
        let size = read::size(conn)?;
        {
            let mut purposes = self.purposes.write().map_err(poisoned)?;
            *purposes = Purposes::default();
            for row in store::all_purpose_versions(conn)? {
                if row.seq.get() < size {
                    purposes.add(Timestamp(row.at), row.def()?);
                }
            }
        }
        for shard in self.shards.iter() {
            shard.write().map_err(poisoned)?.clear();
        }
        let mut from = Seq::ZERO;
        let mut loaded = 0u64;
        loop {
            let page = store::index_page(conn, from, Seq::new(size), LOAD_PAGE)?;
            let Some(last) = page.last() else { break };
            from = last.0.next();
            let mut purposes = self.purposes.write().map_err(poisoned)?;
            for (seq, subject, purpose, channel, decision, basis, collected, expires) in page {
                let (Some(channel), Some(decision), Some(basis)) = (
                    Channel::parse(&channel),
                    Decision::parse(&decision),
                    LegalBasis::parse(&basis),
                ) else {
                    return Err(AppError::internal(anyhow::anyhow!(
                        "consent record {seq} holds an unknown channel, decision or legal basis"
                    )));
                };
                let rec = Rec {
                    collected,
                    expires: expires.unwrap_or(NO_EXPIRY),
                    seq: seq.get(),
                    purpose: purposes.id(&purpose),
                    channel: channel.index(),
                    decision: decision.index(),
                    basis: basis.index(),
                };
                self.insert(&subject, rec)?;
                loaded += 1;
            }
        }
        self.applied.send_replace(size);
        tracing::info!(records = loaded, ledger_size = size, "consent index loaded");
        Ok(size)
    }

    /// Adds a record; records arrive in ledger order, so one at or below the subject's last seq
    /// has been applied already.
    fn insert(&self, subject: &str, rec: Rec) -> Result<(), AppError> {
        let mut shard = self.shard(subject).write().map_err(poisoned)?;
        let entry = match shard.take(subject) {
            Some(e) if e.last().is_some_and(|last| last.seq >= rec.seq) => e,
            Some(mut e) => {
                e.push(rec);
                e
            }
            None => Entry::new(subject, [rec].into_iter()),
        };
        shard.insert(entry);
        Ok(())
    }

    fn apply_entry(&self, e: &FollowedEntry) -> Result<(), AppError> {
        let Some(payload) = &e.payload else {
            // Redacted: the erasure that redacted it comes later and removes what was applied.
            return Ok(());
        };
        if e.kind == accord_audit::payload::ERASURE_KIND {
            let erasure: Erasure = serde_json::from_str(payload).map_err(|err| {
                AppError::internal(anyhow::anyhow!("erasure {} is unreadable: {err}", e.seq))
            })?;
            self.erase(&erasure.redacted_seqs)?;
            return Ok(());
        }
        let event: ConsentEvent = serde_json::from_str(payload).map_err(|err| {
            AppError::internal(anyhow::anyhow!("entry {} is unreadable: {err}", e.seq))
        })?;
        match event {
            ConsentEvent::PurposeDefined(def) | ConsentEvent::PurposeRetired(def) => {
                self.purposes
                    .write()
                    .map_err(poisoned)?
                    .add(Timestamp(e.at), def);
            }
            ConsentEvent::ConsentRecorded(r) => self.record(&r, e.seq.get())?,
            ConsentEvent::NoticePublished(_) => {}
        }
        Ok(())
    }

    fn record(&self, r: &ConsentRecord, seq: u64) -> Result<(), AppError> {
        let purpose = self.purposes.write().map_err(poisoned)?.id(&r.purpose);
        self.insert(
            &r.subject,
            Rec {
                collected: r.collected_at.micros(),
                expires: r.expires_at.map(Timestamp::micros).unwrap_or(NO_EXPIRY),
                seq,
                purpose,
                channel: r.channel.index(),
                decision: r.decision.index(),
                basis: r.legal_basis.index(),
            },
        )
    }

    /// Removes every record whose entry an erasure redacted.
    fn erase(&self, seqs: &[Seq]) -> Result<(), AppError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let gone: HashSet<u64> = seqs.iter().map(|s| s.get()).collect();
        for shard in self.shards.iter() {
            let mut shard = shard.write().map_err(poisoned)?;
            let touched: Vec<Entry> = shard
                .iter()
                .filter(|e| e.recs().any(|r| gone.contains(&r.seq)))
                .cloned()
                .collect();
            for e in touched {
                shard.remove(e.subject());
                let mut kept = e.recs().filter(|r| !gone.contains(&r.seq)).peekable();
                if kept.peek().is_some() {
                    shard.insert(Entry::new(e.subject(), kept));
                }
            }
        }
        Ok(())
    }

    /// Asks the follower to look at the ledger now.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Resolves when the follower is asked to look, or after `interval`.
    pub async fn wait_for_kick(&self, interval: Duration) {
        let _ = tokio::time::timeout(interval, self.kick.notified()).await;
    }

    /// Waits (at most `limit`) until every entry below `seq + 1` is applied. Returns whether it was.
    pub async fn wait_applied(&self, seq: u64, limit: Duration) -> bool {
        if self.applied() > seq {
            return true;
        }
        self.kick();
        let mut rx = self.applied.subscribe();
        matches!(
            tokio::time::timeout(limit, rx.wait_for(|applied| *applied > seq)).await,
            Ok(Ok(_))
        )
    }

    /// After a write: waits (at most [`WRITE_WAIT`]) until this index shows entry `seq`, so the
    /// writer's next check on this instance sees it; a warning if it does not in time.
    pub async fn wait_for_write(&self, seq: u64) {
        if !self.wait_applied(seq, WRITE_WAIT).await {
            tracing::warn!(
                seq,
                "the consent index did not apply a write within {} s",
                WRITE_WAIT.as_secs()
            );
        }
    }

    /// The purpose's id for repeated checks, if the index knows it.
    pub fn purpose(&self, key: &str) -> Option<PurposeId> {
        self.purposes
            .read()
            .ok()
            .and_then(|p| p.ids.get(key).copied())
            .map(PurposeId)
    }

    /// The latest version of a purpose, as the index holds it.
    pub fn purpose_def(&self, key: &str) -> Option<PurposeDef> {
        let p = self.purposes.read().ok()?;
        let id = *p.ids.get(key)?;
        p.histories[id as usize].at(None).cloned()
    }

    /// The current answer for every (purpose, channel) the subject has a record for, by purpose
    /// key then channel.
    pub fn subject_state(
        &self,
        subject: &str,
        now: Timestamp,
    ) -> Vec<(String, Channel, CheckAnswer)> {
        let pairs: std::collections::BTreeSet<(u32, u8)> = {
            let shard = match self.shard(subject).read() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            shard
                .get(subject)
                .map(|e| e.recs().map(|r| (r.purpose, r.channel)).collect())
                .unwrap_or_default()
        };
        let mut out: Vec<(String, Channel, CheckAnswer)> = pairs
            .into_iter()
            .filter_map(|(p, c)| {
                let key = self
                    .purposes
                    .read()
                    .ok()?
                    .histories
                    .get(p as usize)?
                    .key
                    .clone();
                let channel = Channel::from_index(c)?;
                Some((
                    key,
                    channel,
                    self.check_id(subject, PurposeId(p), channel, None, now),
                ))
            })
            .collect();
        out.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));
        out
    }

    /// Answers one check. `at`: as of that moment (records collected by then, the purpose as it
    /// stood then); `None`: now, from every record.
    pub fn check(
        &self,
        subject: &str,
        purpose: &str,
        channel: Channel,
        at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<CheckAnswer, CheckError> {
        let t = at.unwrap_or(now);
        // The purpose's id and its definition then, under one acquisition of the lock.
        let (id, def) = {
            let p = self.read_purposes();
            let id = *p.ids.get(purpose).ok_or(CheckError::UnknownPurpose)?;
            (id, p.def_at(id, t))
        };
        Ok(self.answer(subject, id, channel, at, t, def))
    }

    /// [`ConsentIndex::check`] with a resolved purpose.
    pub fn check_id(
        &self,
        subject: &str,
        purpose: PurposeId,
        channel: Channel,
        at: Option<Timestamp>,
        now: Timestamp,
    ) -> CheckAnswer {
        let t = at.unwrap_or(now);
        let def = self.read_purposes().def_at(purpose.0, t);
        self.answer(subject, purpose.0, channel, at, t, def)
    }

    fn read_purposes(&self) -> std::sync::RwLockReadGuard<'_, Purposes> {
        match self.purposes.read() {
            Ok(p) => p,
            Err(p) => p.into_inner(),
        }
    }

    fn answer(
        &self,
        subject: &str,
        purpose: u32,
        channel: Channel,
        at: Option<Timestamp>,
        t: Timestamp,
        def: Option<PurposeAt>,
    ) -> CheckAnswer {
        let best = {
            let shard = match self.shard(subject).read() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            shard
                .get(subject)
                .and_then(|e| best_record(e.recs(), purpose, channel, at))
        };
        decide(def, best, t)
    }
}

/// The record a check rests on: the best record for the channel itself, else the best for `any`.
fn best_record(
    recs: impl Iterator<Item = Rec> + Clone,
    purpose: u32,
    channel: Channel,
    at: Option<Timestamp>,
) -> Option<Rec> {
    let eligible = |r: &Rec| r.purpose == purpose && at.is_none_or(|t| r.collected <= t.micros());
    let best_for = |c: Channel| {
        recs.clone()
            .filter(eligible)
            .filter(|r| r.channel == c.index())
            .max_by_key(|r| r.rank())
    };
    match channel {
        Channel::Any => best_for(Channel::Any),
        c => best_for(c).or_else(|| best_for(Channel::Any)),
    }
}

/// What a check needs of a purpose as it stood: status, whether consent is required, legal basis.
type PurposeAt = (PurposeStatus, bool, LegalBasis);

fn decide(purpose: Option<PurposeAt>, best: Option<Rec>, t: Timestamp) -> CheckAnswer {
    let (reason, allowed) = match (purpose, best) {
        // A purpose with no version (only reachable through a record naming an unknown purpose).
        (None, _) => (ReasonCode::of(Reason::NoRecord), false),
        (Some((PurposeStatus::Retired, _, _)), _) => {
            (ReasonCode::of(Reason::PurposeRetired), false)
        }
        (Some((_, required, basis)), best) => {
            let state = match best {
                None => Reason::NoRecord,
                Some(r) => match r.decision() {
                    Decision::Granted if r.expires <= t.micros() => Reason::Expired,
                    Decision::Granted => Reason::Granted,
                    Decision::Withdrawn => Reason::Withdrawn,
                    Decision::Denied => Reason::Denied,
                },
            };
            match (required, state) {
                (_, Reason::Withdrawn | Reason::Denied) => (ReasonCode::of(state), false),
                (false, _) => (ReasonCode::not_required(basis), true),
                (true, Reason::Granted) => (ReasonCode::of(state), true),
                (true, _) => (ReasonCode::of(state), false),
            }
        }
    };
    let legal_basis = match (reason.basis, best, purpose) {
        (Some(b), _, _) => Some(b),
        (None, Some(r), _) => LegalBasis::from_index(r.basis),
        (None, None, Some((_, _, b))) => Some(b),
        (None, None, None) => None,
    };
    CheckAnswer {
        allowed,
        decision: best.map(|r| r.decision()),
        reason,
        legal_basis,
        channel: best.and_then(|r| Channel::from_index(r.channel)),
        collected_at: best.map(|r| Timestamp(r.collected)),
        expires_at: best
            .filter(|r| r.expires != NO_EXPIRY)
            .map(|r| Timestamp(r.expires)),
        seq: best.map(|r| Seq::new(r.seq)),
    }
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> AppError {
    AppError::internal(anyhow::anyhow!("the consent index lock is poisoned"))
}

/// The index follows the consent entries and the erasures.
impl Follower for ConsentIndex {
    const NAME: &'static str = "consent index";

    fn kinds(&self) -> &'static [&'static str] {
        FOLLOWED_KINDS
    }

    fn applied(&self) -> u64 {
        ConsentIndex::applied(self)
    }

    fn apply(&self, page: &[FollowedEntry]) -> Result<(), AppError> {
        page.iter().try_for_each(|e| self.apply_entry(e))
    }

    fn advanced(&self, seq: u64) {
        // Readers waiting on a seq below it may go now.
        self.applied.send_replace(seq);
    }

    fn wait(&self, interval: Duration) -> impl std::future::Future<Output = ()> + Send {
        self.wait_for_kick(interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(collected: i64, decision: Decision, channel: Channel, seq: u64) -> Rec {
        Rec {
            collected,
            expires: NO_EXPIRY,
            seq,
            purpose: 0,
            channel: channel.index(),
            decision: decision.index(),
            basis: LegalBasis::Consent.index(),
        }
    }

    #[test]
    fn records_are_32_bytes() {
        assert_eq!(std::mem::size_of::<Rec>(), 32);
        let mut b = Vec::new();
        rec(1, Decision::Granted, Channel::Email, 2).encode(&mut b);
        assert_eq!(b.len(), Rec::BYTES);
    }

    #[test]
    fn an_entry_holds_its_subject_and_records() {
        let mut r = rec(-5, Decision::Withdrawn, Channel::Ads, u64::MAX);
        r.expires = i64::MAX - 1;
        r.purpose = u32::MAX;
        r.basis = LegalBasis::LegitimateInterests.index();
        let e = Entry::new("subject é", [r].into_iter());
        assert_eq!(e.subject(), "subject é");
        assert_eq!(e.recs().collect::<Vec<_>>(), [r]);
        let g = rec(7, Decision::Granted, Channel::Email, 3);
        let mut e2 = e.clone();
        e2.push(g);
        assert_eq!(e2.recs().collect::<Vec<_>>(), [r, g]);
        assert_eq!(e2.last(), Some(g));
        assert_eq!(e, e2, "entries are equal by subject");
        let mut shard = Shard::new();
        shard.insert(e2);
        assert_eq!(shard.get("subject é").map(|e| e.recs().count()), Some(2));
        assert!(!shard.contains("subject"));
        let long = "x".repeat(256);
        assert_eq!(Entry::new(&long, std::iter::empty()).subject(), long);
    }

    /// One subject with 100,000 records: each record is copied a bounded number of times as its
    /// entry grows (linear), not once per later record (quadratic: 5·10⁹ record copies here).
    #[test]
    fn many_records_of_one_subject_cost_linear_copying() {
        let index = ConsentIndex::new();
        let n = 100_000u64;
        COPIED.with(|c| c.set(0));
        for seq in 0..n {
            index
                .insert(
                    "busy",
                    rec(seq as i64, Decision::Granted, Channel::Email, seq),
                )
                .unwrap();
        }
        // A repeat of an applied record changes nothing.
        index
            .insert("busy", rec(0, Decision::Withdrawn, Channel::Email, 7))
            .unwrap();
        let copied = COPIED.with(|c| c.get()) as u64 / Rec::BYTES as u64;
        assert!(copied <= 4 * n, "{copied} record copies for {n} records");
        let shard = index.shard("busy").read().unwrap();
        let e = shard.get("busy").unwrap();
        assert_eq!(e.recs().count() as u64, n);
        assert_eq!(e.last().unwrap().seq, n - 1);
    }

    #[test]
    fn channel_specific_beats_any_latest_wins_withdrawal_wins_ties() {
        let recs = [
            rec(10, Decision::Granted, Channel::Any, 1),
            rec(5, Decision::Granted, Channel::Email, 2),
            rec(7, Decision::Withdrawn, Channel::Email, 3),
            rec(7, Decision::Granted, Channel::Email, 4),
        ];
        let b = best_record(recs.iter().copied(), 0, Channel::Email, None).unwrap();
        assert_eq!(
            b.seq, 3,
            "specific beats a later any; withdrawal wins the tie"
        );
        let b = best_record(recs.iter().copied(), 0, Channel::Sms, None).unwrap();
        assert_eq!(b.seq, 1, "any applies where no specific record exists");
        let b = best_record(recs.iter().copied(), 0, Channel::Email, Some(Timestamp(6))).unwrap();
        assert_eq!(b.seq, 2, "as of 6 only the first email grant was collected");
        assert!(best_record(recs.iter().copied(), 0, Channel::Email, Some(Timestamp(4))).is_none());
        assert!(best_record(recs.iter().copied(), 1, Channel::Email, None).is_none());
    }

    #[test]
    fn decisions() {
        let active = Some((PurposeStatus::Active, true, LegalBasis::Consent));
        let mut g = rec(1, Decision::Granted, Channel::Email, 9);
        g.expires = 100;
        let a = decide(active, Some(g), Timestamp(50));
        assert!(a.allowed);
        assert_eq!(a.reason, ReasonCode::of(Reason::Granted));
        assert_eq!(a.expires_at, Some(Timestamp(100)));
        let a = decide(active, Some(g), Timestamp(100));
        assert!(!a.allowed);
        assert_eq!(a.reason, ReasonCode::of(Reason::Expired));
        let a = decide(active, None, Timestamp(1));
        assert_eq!(a.reason, ReasonCode::of(Reason::NoRecord));
        assert_eq!(a.legal_basis, Some(LegalBasis::Consent));
        let retired = Some((PurposeStatus::Retired, true, LegalBasis::Consent));
        assert_eq!(
            decide(retired, Some(g), Timestamp(2)).reason,
            ReasonCode::of(Reason::PurposeRetired)
        );
        let li = Some((
            PurposeStatus::Active,
            false,
            LegalBasis::LegitimateInterests,
        ));
        let a = decide(li, None, Timestamp(1));
        assert!(a.allowed);
        assert_eq!(a.reason.text(), "not_required:legitimate_interests");
        let w = rec(1, Decision::Withdrawn, Channel::Email, 3);
        let a = decide(li, Some(w), Timestamp(2));
        assert!(
            !a.allowed,
            "an objection is honoured even where consent is not required"
        );
        assert_eq!(a.reason, ReasonCode::of(Reason::Withdrawn));
        assert_eq!(
            decide(None, None, Timestamp(1)).reason,
            ReasonCode::of(Reason::NoRecord)
        );
    }
}
