//! The one streaming ledger verifier, fed entry by entry or in batches (from the database by the
//! server, from an export file by the CLI).
//!
//! Memory stays O(log n) in the number of entries: the verifier keeps the Merkle frontier, the
//! previous leaf hash, checkpoints and pins not yet reached, redactions whose erasure entry has
//! not arrived yet, and the latest erasure that covered a redaction (plus, while a batch is
//! verified, that bounded batch). It stops at the first problem and says which seq (or which
//! checkpoint size) and why, in plain words.
//!
//! Only a signed checkpoint vouches for entries: anyone can append a correctly chained entry
//! without the key. The verifier keeps the largest tree size whose root a signed checkpoint (a
//! pin, or an export header's checkpoint) confirmed; the entries after it are the unsigned tail,
//! which [`LedgerVerifier::finish_with`] refuses unless told otherwise, and an erasure in it
//! cannot hide anything.
//!
//! Each entry's own checks (stored leaf hash, canonical body, body seq and origin, payload
//! commitment) do not depend on the entries before it, so a batch runs them on all cores; the
//! checks that link entries (seq contiguity, the `prev` chain, the Merkle frontier, checkpoint
//! roots, redactions) then run in stream order on one thread. The failure reported is always the
//! one the entry-by-entry order meets first.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::body::{BodyError, LeafBody};
use crate::canon::canonical_json_into;
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::hash::{Hash, from_hex, leaf_hash, sha256, to_b64, to_hex};
use crate::merkle::Frontier;
use crate::note::NoteVerifier;
use crate::payload::{
    ACCESS_KIND_PREFIX, ERASURE_KIND, PAYLOAD_DOMAIN, PayloadRecord, erasure_redacted_seqs,
};
use crate::scan::{self, BodyRef, Decoded};

/// Below this many items per thread a batch is verified on the calling thread alone.
const MIN_ITEMS_PER_THREAD: usize = 64;

/// The first problem found. `seq` names the entry (for a gap, the first missing seq);
/// `checkpoint_size` names a checkpoint or pin by its tree size; `reason` says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The entry at fault, when the problem is an entry.
    pub seq: Option<u64>,
    /// The tree size of the checkpoint or pin at fault, when the problem is a checkpoint.
    pub checkpoint_size: Option<u64>,
    /// What is wrong, in plain words.
    pub reason: String,
}

impl Failure {
    pub(crate) fn at_seq(seq: u64, reason: impl Into<String>) -> Self {
        Self {
            seq: Some(seq),
            checkpoint_size: None,
            reason: reason.into(),
        }
    }

    pub(crate) fn at_checkpoint(size: Option<u64>, reason: impl Into<String>) -> Self {
        Self {
            seq: None,
            checkpoint_size: size,
            reason: reason.into(),
        }
    }

    pub(crate) fn general(reason: impl Into<String>) -> Self {
        Self {
            seq: None,
            checkpoint_size: None,
            reason: reason.into(),
        }
    }
}

/// `seq 41: prev does not match the leaf hash of seq 40`, `checkpoint at size 12: root does not
/// match ...`; pins and the export header's checkpoint read `pinned checkpoint at size N: ...` and
/// `header checkpoint at size N: ...`.
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.seq, self.checkpoint_size) {
            (Some(seq), _) => write!(f, "seq {seq}: {}", self.reason),
            (None, Some(size)) => {
                // Pin and header reasons already carry their own "... checkpoint at size N:" label.
                if self.reason.contains(&format!("checkpoint at size {size}:")) {
                    f.write_str(&self.reason)
                } else {
                    write!(f, "checkpoint at size {size}: {}", self.reason)
                }
            }
            (None, None) => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for Failure {}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Entries verified.
    pub entries: u64,
    /// Signed checkpoints whose roots were checked (not counting pins or an export header's).
    pub checkpoints: u64,
    /// Pinned checkpoints whose roots were checked.
    pub pins: u64,
    /// Entries whose payload was redacted, each covered by an erasure entry.
    pub redacted: u64,
    /// Lowercase hex of the root over all entries.
    pub root: String,
    /// Tree size at the end (equals `entries`).
    pub size: u64,
    /// The largest tree size whose root a signed checkpoint, pin or export header's checkpoint
    /// confirmed: the entries below it are vouched for by the key.
    pub signed_size: u64,
    /// Entries after `signed_size` (`entries - signed_size`): chained and hashed, but not signed,
    /// so anyone could have appended them.
    pub unsigned_tail: u64,
    /// Whether the key the checkpoints were checked with came from the caller (true) or from the
    /// data verified, such as an export's header (false: then the data vouches for itself, and
    /// only pins tie it to a log the caller knows). [`LedgerVerifier::finish`] reports true: its
    /// caller gave the key; [`crate::verify_export`] reports false when it used the header's key.
    pub key_pinned: bool,
}

/// One entry for [`LedgerVerifier::entries`], borrowed from wherever the caller keeps it: the
/// same four things [`LedgerVerifier::entry`] takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EntryInput<'a> {
    /// Its position, as stored next to the body.
    pub seq: u64,
    /// The leaf body text.
    pub body: &'a str,
    /// The stored leaf hash, lowercase hex.
    pub leaf_hash: &'a str,
    /// The payload, or the erasure that removed it.
    pub payload: &'a PayloadRecord,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckKind {
    Checkpoint,
    Pin,
    Header,
}

impl CheckKind {
    /// The label a failure reason starts with; empty for plain checkpoints because
    /// [`Failure`]'s Display adds "checkpoint at size N: " itself.
    fn label(self, size: Option<u64>) -> String {
        match (self, size) {
            (CheckKind::Checkpoint, Some(_)) => String::new(),
            (CheckKind::Checkpoint, None) => "checkpoint: ".into(),
            (CheckKind::Pin, Some(n)) => format!("pinned checkpoint at size {n}: "),
            (CheckKind::Pin, None) => "pinned checkpoint: ".into(),
            (CheckKind::Header, Some(n)) => format!("header checkpoint at size {n}: "),
            (CheckKind::Header, None) => "header checkpoint: ".into(),
        }
    }
}

#[derive(Debug, Clone)]
struct PendingCheck {
    kind: CheckKind,
    root: Hash,
}

/// An entry's payload as the checks see it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PayloadView<'a> {
    /// An open payload given as a JSON value.
    Value { salt: &'a str, data: &'a Value },
    /// An open payload with its salt decoded, given as JSON text that is already its own
    /// canonical form.
    Canonical { salt: Hash, data: &'a [u8] },
    /// Erased by the erasure entry with this seq.
    Redacted(u64),
}

impl<'a> From<&'a PayloadRecord> for PayloadView<'a> {
    fn from(p: &'a PayloadRecord) -> Self {
        match p {
            PayloadRecord::Open { salt, data } => PayloadView::Value { salt, data },
            PayloadRecord::Redacted { redacted_by } => PayloadView::Redacted(*redacted_by),
        }
    }
}

/// Reusable buffers of one verifying thread.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// Canonical payload text.
    pub(crate) canon: String,
    /// Strings decoded from export lines.
    pub(crate) decoded: Decoded,
}

/// The checks of one entry that do not depend on the entries before it, made ahead (on any
/// thread) and applied in stream order by [`LedgerVerifier::apply_entry`].
#[derive(Debug)]
pub(crate) struct PreparedEntry {
    pub(crate) seq: u64,
    /// Err: the reason of the first failing check among the stored leaf hash, the body, the
    /// body's seq and its origin.
    checked: Result<CheckedEntry, String>,
}

#[derive(Debug)]
struct CheckedEntry {
    leaf: Hash,
    prev: Hash,
    /// The body's `subject_ref`.
    subject_ref: Option<Hash>,
    payload: CheckedPayload,
}

#[derive(Debug)]
enum CheckedPayload {
    /// An open payload. Err: why its salt, canonical form, commitment or erasure list failed.
    /// Ok: the seqs it lists when it is an erasure entry, `None` for any other kind.
    Open(Result<Option<Vec<u64>>, String>),
    /// Erased by the entry `by`; the entry is a data subject's (`subject_ref`), not an access
    /// record.
    Redacted { by: u64, subject_ref: Hash },
}

/// A redacted entry waiting for its erasure entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Redaction {
    seq: u64,
    /// The redacted entry's `subject_ref`, which the erasure's must equal.
    subject_ref: Hash,
}

/// The latest erasure entry that covered a redaction, and the first redaction it covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CoveringErasure {
    seq: u64,
    first_redacted: u64,
}

/// What [`LedgerVerifier::end`] accepts after the last signed checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// Anything: unsigned entries, and erasures among them ([`LedgerVerifier::finish`]).
    Unchecked,
    /// Unsigned entries, but no erasure among them that covered a redaction.
    Allowed,
    /// Nothing: every entry must be covered by a signed checkpoint.
    Refused,
}

/// A checkpoint or pin whose signature and origin were checked ahead: its size and root, or the
/// failure.
#[derive(Debug)]
pub(crate) struct PreparedCheck {
    kind: CheckKind,
    opened: Result<(u64, Hash), Failure>,
}

/// Streams a ledger through every check: seq contiguity, canonical bodies, the `prev` chain,
/// stored leaf hashes, payload commitments, redactions covered by signed erasures of the same
/// subject, and the Merkle root at every signed checkpoint and pin.
///
/// Feed [`LedgerVerifier::pin`]s first, then entries in seq order with their checkpoints (a
/// checkpoint right after the entry that brings the tree to its size, or earlier), then call
/// [`LedgerVerifier::finish_with`] (an auditor's check: only what a signed checkpoint covers is
/// vouched for) or [`LedgerVerifier::finish`] (a live ledger between checkpoints). Entries can
/// be fed one by one ([`LedgerVerifier::entry`]) or in batches ([`LedgerVerifier::entries`]),
/// which are verified on all cores. The first error is final: do not keep feeding after one.
#[derive(Debug, Clone)]
pub struct LedgerVerifier {
    log: Log,
    next_seq: u64,
    prev: Hash,
    frontier: Frontier,
    pending: BTreeMap<u64, Vec<PendingCheck>>,
    /// Erasure seq -> the redactions that name it, waiting for it to arrive.
    redactions: BTreeMap<u64, Vec<Redaction>>,
    /// The latest erasure that covered a redaction (erasures arrive in seq order, so the highest).
    covering_erasure: Option<CoveringErasure>,
    /// The largest tree size whose root a signed checkpoint, pin or header checkpoint confirmed.
    signed_size: u64,
    /// Whether the caller gave the key (see [`Report::key_pinned`]).
    key_pinned: bool,
    checkpoints: u64,
    pins: u64,
    redacted: u64,
    /// Threads a batch is verified on.
    threads: usize,
}

impl LedgerVerifier {
    /// A verifier for the log `origin` whose checkpoints are signed by `key`.
    pub fn new(origin: &str, key: NoteVerifier) -> Self {
        Self {
            log: Log {
                origin: origin.to_string(),
                key,
            },
            next_seq: 0,
            prev: [0; 32],
            frontier: Frontier::new(),
            pending: BTreeMap::new(),
            redactions: BTreeMap::new(),
            covering_erasure: None,
            signed_size: 0,
            key_pinned: true,
            checkpoints: 0,
            pins: 0,
            redacted: 0,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// Entries verified so far (the next expected seq).
    pub fn size(&self) -> u64 {
        self.next_seq
    }

    /// The root over the entries verified so far.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The largest tree size whose root a signed checkpoint, pin or export header's checkpoint has
    /// confirmed so far (0 before any): the entries below it are vouched for by the key.
    pub fn signed_size(&self) -> u64 {
        self.signed_size
    }

    /// Records that the key came from the data verified rather than from the caller, for
    /// [`Report::key_pinned`].
    pub(crate) fn set_key_from_data(&mut self) {
        self.key_pinned = false;
    }

    /// Threads batches are verified on (the machine's available parallelism by default).
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Sets the threads batches are verified on (at least one).
    pub(crate) fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// An auditor's kept checkpoint (a signed note): its signature and origin are checked now, its
    /// root when the ledger reaches its size. Pins must be given before the entries pass their
    /// size. A failure reads `pinned checkpoint at size N: ...`.
    pub fn pin(&mut self, note: &str) -> Result<(), Failure> {
        self.add_check(note, CheckKind::Pin)
    }

    /// Feeds the next entry. Checks, in order: `seq` is the expected one; the stored leaf hash is
    /// 64 hex and equals the hash of `body`; `body` parses and is canonical; its seq and origin are
    /// right; a redacted payload is on an entry with a `subject_ref` whose kind does not start
    /// with [`ACCESS_KIND_PREFIX`]; its `prev` is the previous leaf hash (zeros for seq 0); an open
    /// payload has a 64-hex salt and matches `payload_commit`; a redacted payload names a later
    /// erasure entry, which must list this seq and carry the same `subject_ref` in its body
    /// (checked when it arrives, or at [`LedgerVerifier::finish`]). Then any checkpoint or pin at
    /// the new size is checked.
    pub fn entry(
        &mut self,
        seq: u64,
        body: &str,
        leaf_hash_hex: &str,
        payload: &PayloadRecord,
    ) -> Result<(), Failure> {
        let prepared = prepare_entry(
            &self.log.origin,
            seq,
            BodyInput::Text(body),
            HashField::Text(leaf_hash_hex),
            payload.into(),
            &mut String::new(),
        );
        self.apply_entry(prepared, || kind_of(body))
    }

    /// Feeds the next entries, in seq order: exactly the checks of [`LedgerVerifier::entry`] for
    /// each in turn, with the same first failure, but each entry's own checks (leaf hash, body,
    /// payload commitment) run on all cores. Any checkpoint or pin reached is checked on the way.
    /// Memory grows with the batch, so keep batches bounded (a few thousand entries).
    pub fn entries(&mut self, batch: &[EntryInput<'_>]) -> Result<(), Failure> {
        self.entries_with(batch, |_| Ok(()))
    }

    /// [`LedgerVerifier::entries`] for a caller with checks of its own: `accepted(i)` is called
    /// right after `batch[i]` passes (in order, before the next entry is applied), where a caller
    /// feeding [`LedgerVerifier::entry`] one by one would go on with that entry. The first error,
    /// the verifier's or `accepted`'s, ends the batch, so the failure is the one that one-by-one
    /// feeding would meet first.
    pub fn entries_with(
        &mut self,
        batch: &[EntryInput<'_>],
        mut accepted: impl FnMut(usize) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let prepared = {
            let origin = self.log.origin();
            par_map(self.threads, batch, |e, scratch| {
                prepare_entry(
                    origin,
                    e.seq,
                    BodyInput::Text(e.body),
                    HashField::Text(e.leaf_hash),
                    e.payload.into(),
                    &mut scratch.canon,
                )
            })
        };
        for (i, (p, e)) in prepared.into_iter().zip(batch).enumerate() {
            self.apply_entry(p, || kind_of(e.body))?;
            accepted(i)?;
        }
        Ok(())
    }

    /// Applies an entry prepared by [`prepare_entry`]: the checks that depend on the entries
    /// before it, in the order [`LedgerVerifier::entry`] documents. `kind_of` gives the body's
    /// kind for a failure message that names it.
    pub(crate) fn apply_entry(
        &mut self,
        prepared: PreparedEntry,
        kind_of: impl FnOnce() -> String,
    ) -> Result<(), Failure> {
        let seq = prepared.seq;
        let expected = self.next_seq;
        if seq != expected {
            let what = if seq > expected {
                if seq - expected == 1 {
                    format!("seq {expected} is missing")
                } else {
                    format!("seqs {expected}..{} are missing", seq - 1)
                }
            } else {
                format!("seq {seq} is repeated or out of order")
            };
            return Err(Failure::at_seq(
                expected,
                format!("expected seq {expected}, found seq {seq}: {what}"),
            ));
        }
        let checked = prepared
            .checked
            .map_err(|reason| Failure::at_seq(seq, reason))?;
        if checked.prev != self.prev {
            let reason = match seq.checked_sub(1) {
                Some(before) => format!(
                    "prev does not match the leaf hash of seq {before} (body has {}, expected {})",
                    to_hex(&checked.prev),
                    to_hex(&self.prev)
                ),
                None => "prev does not match: seq 0 must have 64 zeros as prev".to_string(),
            };
            return Err(Failure::at_seq(seq, reason));
        }
        self.apply_payload(seq, checked.subject_ref, checked.payload, kind_of)?;

        self.frontier.push(checked.leaf, |_, _, _| {});
        self.prev = checked.leaf;
        self.next_seq += 1;
        self.check_pending()
    }

    fn apply_payload(
        &mut self,
        seq: u64,
        subject_ref: Option<Hash>,
        payload: CheckedPayload,
        kind_of: impl FnOnce() -> String,
    ) -> Result<(), Failure> {
        // Redactions of earlier entries that name this entry as their erasure.
        let waiting = self.redactions.remove(&seq).unwrap_or_default();
        match payload {
            CheckedPayload::Open(checked) => {
                let listed = checked.map_err(|reason| Failure::at_seq(seq, reason))?;
                if let Some(first) = waiting.first().map(|r| r.seq) {
                    let Some(listed) = listed else {
                        return Err(Failure::at_seq(
                            first,
                            format!(
                                "redaction is not covered by an erasure: it names seq {seq}, which is a {:?} entry, not {ERASURE_KIND:?}",
                                kind_of()
                            ),
                        ));
                    };
                    let listed: std::collections::BTreeSet<u64> = listed.into_iter().collect();
                    for r in &waiting {
                        if !listed.contains(&r.seq) {
                            return Err(Failure::at_seq(
                                r.seq,
                                format!(
                                    "redaction is not covered by an erasure: erasure seq {seq} does not list seq {} in redacted_seqs",
                                    r.seq
                                ),
                            ));
                        }
                        if subject_ref != Some(r.subject_ref) {
                            return Err(Failure::at_seq(
                                r.seq,
                                format!(
                                    "redaction is not covered by an erasure of its subject: erasure seq {seq} has subject_ref {}, but this entry's subject_ref is {}",
                                    subject_ref.map_or_else(|| "null".to_string(), |h| to_hex(&h)),
                                    to_hex(&r.subject_ref)
                                ),
                            ));
                        }
                    }
                    self.covering_erasure = Some(CoveringErasure {
                        seq,
                        first_redacted: first,
                    });
                }
            }
            CheckedPayload::Redacted { by, subject_ref } => {
                if let Some(first) = waiting.first() {
                    return Err(Failure::at_seq(
                        first.seq,
                        format!(
                            "redaction cannot be checked: its erasure, seq {seq}, has a redacted payload itself"
                        ),
                    ));
                }
                if by <= seq {
                    return Err(Failure::at_seq(
                        seq,
                        format!(
                            "redaction by seq {by} is impossible: an erasure must come after the entries it erases"
                        ),
                    ));
                }
                self.redactions
                    .entry(by)
                    .or_default()
                    .push(Redaction { seq, subject_ref });
                self.redacted += 1;
            }
        }
        Ok(())
    }

    /// A signed checkpoint: the signature must verify under the log key and the origin must match.
    /// At the current size its root is compared now; beyond it, it is queued until the ledger
    /// reaches its size; below it, it is out of order and fails.
    pub fn checkpoint(&mut self, note: &str) -> Result<(), Failure> {
        self.add_check(note, CheckKind::Checkpoint)
    }

    /// The export header's checkpoint: like a checkpoint, but named as the header's in failures
    /// and not counted in the report. Returns its (signed) size.
    pub(crate) fn header_checkpoint(&mut self, note: &str) -> Result<u64, Failure> {
        let prepared = self.log.prepare_check(note, CheckKind::Header);
        let size = prepared.opened.as_ref().map_or(0, |(size, _)| *size);
        self.apply_check(prepared)?;
        Ok(size)
    }

    fn add_check(&mut self, note: &str, kind: CheckKind) -> Result<(), Failure> {
        let prepared = self.log.prepare_check(note, kind);
        self.apply_check(prepared)
    }

    /// The checks of a checkpoint or pin that depend on the entries: its size against the entries
    /// so far, and its root when reached.
    pub(crate) fn apply_check(&mut self, prepared: PreparedCheck) -> Result<(), Failure> {
        let kind = prepared.kind;
        let (size, root) = prepared.opened?;
        match size.cmp(&self.next_seq) {
            std::cmp::Ordering::Equal => self.compare(kind, size, &root),
            std::cmp::Ordering::Greater => {
                self.pending
                    .entry(size)
                    .or_default()
                    .push(PendingCheck { kind, root });
                Ok(())
            }
            std::cmp::Ordering::Less => Err(Failure::at_checkpoint(
                Some(size),
                format!(
                    "{}out of order: it arrived after {} entries had been verified; it must come right after seq {}",
                    kind.label(Some(size)),
                    self.next_seq,
                    size.saturating_sub(1)
                ),
            )),
        }
    }

    fn compare(&mut self, kind: CheckKind, size: u64, root: &Hash) -> Result<(), Failure> {
        let computed = self.frontier.root();
        if &computed != root {
            return Err(Failure::at_checkpoint(
                Some(size),
                format!(
                    "{}root does not match the root recomputed from the entries (signed {}, recomputed {})",
                    kind.label(Some(size)),
                    to_b64(root),
                    to_b64(&computed)
                ),
            ));
        }
        match kind {
            CheckKind::Checkpoint => self.checkpoints += 1,
            CheckKind::Pin => self.pins += 1,
            CheckKind::Header => {}
        }
        self.signed_size = self.signed_size.max(size);
        Ok(())
    }

    fn check_pending(&mut self) -> Result<(), Failure> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Some(list) = self.pending.remove(&self.next_seq) {
            for p in list {
                self.compare(p.kind, self.next_seq, &p.root)?;
            }
        }
        Ok(())
    }

    /// Ends the stream as a check of a live ledger between checkpoints does: entries after the
    /// last signed checkpoint, and erasures among them, are accepted ([`Report::signed_size`] and
    /// [`Report::unsigned_tail`] say how far the signatures reach). Fails if a checkpoint or pin
    /// lies beyond the last entry (the ledger was truncated, or the pin belongs to another log) or
    /// a redaction's erasure never arrived. An auditor's check uses
    /// [`LedgerVerifier::finish_with`], which vouches only for what is signed.
    pub fn finish(self) -> Result<Report, Failure> {
        self.end(Tail::Unchecked)
    }

    /// Ends the stream like [`LedgerVerifier::finish`], and also refuses a redaction whose
    /// erasure entry is not covered by a signed checkpoint (anyone can append an erasure; only
    /// the key holder can sign one), naming the redacted seq. Unless `allow_unsigned_tail`, every
    /// entry must be covered by a signed checkpoint, pin or header checkpoint; otherwise the
    /// failure names the first entry after the signed range.
    pub fn finish_with(self, allow_unsigned_tail: bool) -> Result<Report, Failure> {
        self.end(if allow_unsigned_tail {
            Tail::Allowed
        } else {
            Tail::Refused
        })
    }

    fn end(self, tail: Tail) -> Result<Report, Failure> {
        if let Some((&size, list)) = self.pending.iter().next() {
            let kind = list.first().map_or(CheckKind::Checkpoint, |p| p.kind);
            return Err(Failure::at_checkpoint(
                Some(size),
                format!(
                    "{}truncated: the ledger ends after {} entries, before this checkpoint's size",
                    kind.label(Some(size)),
                    self.next_seq
                ),
            ));
        }
        if let Some((&by, waiting)) = self.redactions.iter().next() {
            let first = waiting.first().map_or(by, |r| r.seq);
            return Err(Failure::at_seq(
                first,
                format!(
                    "redaction is not covered by an erasure: it names seq {by}, but the ledger ends after {} entries",
                    self.next_seq
                ),
            ));
        }
        let signed = self.signed_size;
        if tail != Tail::Unchecked
            && let Some(erasure) = self.covering_erasure
            && erasure.seq >= signed
        {
            return Err(Failure::at_seq(
                erasure.first_redacted,
                format!(
                    "redaction is not covered by a signed erasure: its erasure, seq {}, is not covered by any signed checkpoint (they reach only size {signed}), and anyone can append an entry there",
                    erasure.seq
                ),
            ));
        }
        // A checkpoint is confirmed only at the size reached, so `signed` is at most `next_seq`.
        let unsigned = self.next_seq.saturating_sub(signed);
        if tail == Tail::Refused && unsigned > 0 {
            return Err(Failure::at_seq(
                signed,
                format!(
                    "not covered by any signed checkpoint (unsigned tail of {unsigned} entries from seq {signed}); pass --allow-unsigned-tail to accept it"
                ),
            ));
        }
        Ok(Report {
            entries: self.next_seq,
            checkpoints: self.checkpoints,
            pins: self.pins,
            redacted: self.redacted,
            root: to_hex(&self.frontier.root()),
            size: self.next_seq,
            signed_size: signed,
            unsigned_tail: unsigned,
            key_pinned: self.key_pinned,
        })
    }

    /// The log's origin and key, which the checks that need no earlier entries use.
    pub(crate) fn log(&self) -> &Log {
        &self.log
    }
}

/// The log being verified: its origin and its checkpoint key.
#[derive(Debug, Clone)]
pub(crate) struct Log {
    origin: String,
    key: NoteVerifier,
}

impl Log {
    /// The origin bodies and checkpoints must carry.
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// The checks of a checkpoint or pin that do not depend on the entries: signature and origin.
    pub(crate) fn prepare_check(&self, note: &str, kind: CheckKind) -> PreparedCheck {
        PreparedCheck {
            kind,
            opened: self.open_check(note, kind),
        }
    }

    fn open_check(&self, note: &str, kind: CheckKind) -> Result<(u64, Hash), Failure> {
        // The size is read before the signature is checked only to name the checkpoint.
        let claimed_size = Checkpoint::peek_unverified(note).map(|c| c.size);
        let fail = |reason: String| {
            Failure::at_checkpoint(
                claimed_size,
                format!("{}{reason}", kind.label(claimed_size)),
            )
        };
        let cp = Checkpoint::open(note, &self.key).map_err(|e| match e {
            CheckpointError::Note(e) => fail(format!(
                "signature does not verify under the log key {}+{:08x}: {e}",
                self.key.name(),
                self.key.key_id()
            )),
            CheckpointError::Malformed(m) => fail(format!("checkpoint is malformed: {m}")),
        })?;
        if cp.origin != self.origin {
            let size = Some(cp.size);
            return Err(Failure::at_checkpoint(
                size,
                format!(
                    "{}origin {:?} does not match the log origin {:?}",
                    kind.label(size),
                    cp.origin,
                    self.origin
                ),
            ));
        }
        Ok((cp.size, cp.root))
    }
}

/// The kind named in a body (for a failure message about a body that passed its own checks).
pub(crate) fn kind_of(body: &str) -> String {
    match scan::canonical_body(body) {
        Some(b) => String::from_utf8_lossy(b.kind).into_owned(),
        None => LeafBody::parse(body).map(|b| b.kind).unwrap_or_default(),
    }
}

/// A stored hash as the checks see it: text still to be decoded, or already decoded.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HashField<'a> {
    Text(&'a str),
    Decoded(Hash),
}

/// An entry's body as the checks see it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BodyInput<'a> {
    /// The body text, parsed by the checks.
    Text(&'a str),
    /// A body already read in the canonical layout ([`scan::export_line`]): its bytes and fields.
    Read {
        bytes: &'a [u8],
        fields: BodyRef<'a>,
    },
}

/// The checks of one entry that do not depend on the entries before it, in the order
/// [`LedgerVerifier::entry`] makes them: the stored leaf hash, the body (parsed and canonical), its
/// seq and origin, then the payload (salt, canonical form, commitment, erasure list). `canon` is
/// a reusable buffer.
pub(crate) fn prepare_entry(
    origin: &str,
    seq: u64,
    body: BodyInput<'_>,
    stored_hash: HashField<'_>,
    payload: PayloadView<'_>,
    canon: &mut String,
) -> PreparedEntry {
    PreparedEntry {
        seq,
        checked: check_entry(origin, seq, body, stored_hash, payload, canon),
    }
}

fn check_entry(
    origin: &str,
    seq: u64,
    body: BodyInput<'_>,
    stored_hash: HashField<'_>,
    payload: PayloadView<'_>,
    canon: &mut String,
) -> Result<CheckedEntry, String> {
    let stored = match stored_hash {
        HashField::Text(text) => {
            from_hex(text).map_err(|e| format!("stored leaf hash is not a valid hash: {e}"))?
        }
        HashField::Decoded(hash) => hash,
    };
    let computed = leaf_hash(match body {
        BodyInput::Text(text) => text.as_bytes(),
        BodyInput::Read { bytes, .. } => bytes,
    });
    if stored != computed {
        return Err(format!(
            "leaf hash does not match body: stored {}, body hashes to {}",
            to_hex(&stored),
            to_hex(&computed)
        ));
    }
    // A body in the exact canonical layout is read directly; anything else goes through
    // `LeafBody::parse`, which accepts the same bodies and names what is wrong with the others.
    let parsed;
    let fields = match body {
        BodyInput::Read { fields, .. } => fields,
        BodyInput::Text(text) => match scan::canonical_body(text) {
            Some(fields) => fields,
            None => {
                parsed = LeafBody::parse(text).map_err(|e| match e {
                    BodyError::NotCanonical => {
                        "body is not canonical: its bytes differ from the canonical encoding of its content".to_string()
                    }
                    other => other.to_string(),
                })?;
                // Both hashes are 64 lowercase hex characters: `parse` checked them.
                let hash = |field: &str, hex: &str| {
                    from_hex(hex).map_err(|e| format!("body field {field} is invalid: {e}"))
                };
                BodyRef {
                    seq: parsed.seq,
                    origin: parsed.origin.as_bytes(),
                    kind: parsed.kind.as_bytes(),
                    prev: hash("prev", &parsed.prev)?,
                    subject_ref: parsed
                        .subject_ref
                        .as_deref()
                        .map(|h| hash("subject_ref", h))
                        .transpose()?,
                    payload_commit: hash("payload_commit", &parsed.payload_commit)?,
                }
            }
        },
    };
    if fields.seq != seq {
        return Err(format!(
            "expected seq {seq}, but the body says seq {}: entries were moved",
            fields.seq
        ));
    }
    if fields.origin != origin.as_bytes() {
        return Err(format!(
            "origin {:?} in the body does not match the log origin {origin:?}",
            String::from_utf8_lossy(fields.origin)
        ));
    }
    let payload = match payload {
        PayloadView::Redacted(by) => CheckedPayload::Redacted {
            by,
            subject_ref: redactable(&fields)?,
        },
        open => CheckedPayload::Open(check_open(&fields, open, canon)),
    };
    Ok(CheckedEntry {
        leaf: computed,
        // Decoded from 64 lowercase hex, so comparing bytes is comparing the texts.
        prev: fields.prev,
        subject_ref: fields.subject_ref,
        payload,
    })
}

/// Whether an entry's payload may have been redacted: erasure removes a data subject's entries,
/// so the entry must name a subject, and it is never an access record. Its `subject_ref` if so.
fn redactable(body: &BodyRef<'_>) -> Result<Hash, String> {
    if body.kind.starts_with(ACCESS_KIND_PREFIX.as_bytes()) {
        return Err(format!(
            "payload is redacted, but this is a {:?} entry, and access records ({ACCESS_KIND_PREFIX}*) can never be redacted",
            String::from_utf8_lossy(body.kind)
        ));
    }
    body.subject_ref.ok_or_else(|| {
        "payload is redacted, but the entry has no subject_ref: erasure removes only a data subject's entries".to_string()
    })
}

/// An open payload's checks: salt, canonical form, commitment, and an erasure's list.
fn check_open(
    body: &BodyRef<'_>,
    payload: PayloadView<'_>,
    canon: &mut String,
) -> Result<Option<Vec<u64>>, String> {
    let salt = match payload {
        PayloadView::Value { salt, .. } => from_hex(salt)
            .map_err(|_| "payload salt is not 64 lowercase hex characters".to_string())?,
        PayloadView::Canonical { salt, .. } => salt,
        PayloadView::Redacted(_) => return Ok(None),
    };
    let (canonical, value) = match payload {
        PayloadView::Value { data, .. } => {
            canon.clear();
            canonical_json_into(data, canon)
                .map_err(|e| format!("payload cannot be canonicalised: {e}"))?;
            (canon.as_bytes(), Some(data))
        }
        PayloadView::Canonical { data, .. } => (data, None),
        PayloadView::Redacted(_) => return Ok(None),
    };
    let commit = sha256(&[PAYLOAD_DOMAIN, &salt, canonical]);
    if body.payload_commit != commit {
        return Err("payload does not match its commitment (payload_commit in the body)".into());
    }
    if body.kind != ERASURE_KIND.as_bytes() {
        return Ok(None);
    }
    let listed = match value {
        Some(v) => erasure_redacted_seqs(v),
        None => serde_json::from_slice::<Value>(canonical)
            .ok()
            .and_then(|v| erasure_redacted_seqs(&v)),
    };
    listed
        .map(Some)
        .ok_or_else(|| "erasure payload has no valid redacted_seqs list of seq numbers".to_string())
}

/// `f` over `items`, in order, split across up to `threads` threads (the calling thread takes
/// the first share), each thread with its own [`Scratch`].
fn par_map<T: Sync, R: Send>(
    threads: usize,
    items: &[T],
    f: impl Fn(&T, &mut Scratch) -> R + Sync,
) -> Vec<R> {
    let threads = threads.min(items.len() / MIN_ITEMS_PER_THREAD).max(1);
    let run = |chunk: &[T]| {
        let mut scratch = Scratch::default();
        chunk
            .iter()
            .map(|item| f(item, &mut scratch))
            .collect::<Vec<R>>()
    };
    if threads == 1 {
        return run(items);
    }
    let per = items.len().div_ceil(threads);
    let mut chunks = items.chunks(per);
    let first = chunks.next().unwrap_or_default();
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks.map(|c| s.spawn(move || run(c))).collect();
        let mut out = run(first);
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod batch_tests;
