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
use crate::export::PayloadRecord;
use crate::hash::{Hash, from_hex, leaf_hash, sha256, to_b64, to_hex};
use crate::merkle::Frontier;
use crate::note::NoteVerifier;
use crate::payload::{ACCESS_KIND_PREFIX, ERASURE_KIND, PAYLOAD_DOMAIN, erasure_redacted_seqs};
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
mod tests {
    use super::*;
    use crate::builder::{LedgerBuilder, NewEntry, render};
    use crate::checkpoint::Checkpoint;
    use crate::export::{ExportLine, VerifyOptions, verify_export};
    use crate::note::NoteSigner;
    use ed25519_dalek::SigningKey;
    use serde_json::json;

    const ORIGIN: &str = "accord.test/log";

    fn signer(n: u8) -> NoteSigner {
        NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[n; 32])).unwrap()
    }

    fn new_entry(i: u64, flavour: &str) -> NewEntry {
        NewEntry {
            at: 1_763_884_800_000_000 + i as i64 * 1_000,
            actor: "svc:crm".into(),
            kind: "consent.recorded".into(),
            entity: format!("consent:s{}/marketing.email/any", i % 3),
            subject_ref: Some(subject_ref(i % 3)),
            request_id: Some(format!("req-{i}")),
            payload: json!({
                "subject": format!("s{}", i % 3),
                "purpose": "marketing.email",
                "decision": "granted",
                "flavour": flavour,
                "n": i,
            }),
            salt: [(i as u8).wrapping_mul(7).wrapping_add(1); 32],
        }
    }

    /// The `subject_ref` of subject `s{n}`.
    fn subject_ref(n: u64) -> String {
        to_hex(&leaf_hash(&n.to_be_bytes()))
    }

    /// 12 entries: checkpoints at 3 and 7, an erasure (seq 10) of seqs 1 and 4 (all three of
    /// subject s1), a final checkpoint at 12.
    fn build(key: u8, flavour: &str) -> LedgerBuilder {
        let mut b = LedgerBuilder::new(ORIGIN, signer(key));
        for i in 0..10 {
            b.append(new_entry(i, flavour)).unwrap();
            if i == 2 || i == 6 {
                b.checkpoint().unwrap();
            }
        }
        b.erase(&[1, 4], new_entry(10, flavour)).unwrap();
        b.append(new_entry(11, flavour)).unwrap();
        b.checkpoint().unwrap();
        b
    }

    struct Export {
        header: ExportLine,
        lines: Vec<ExportLine>,
    }

    fn export() -> Export {
        let mut b = build(1, "a");
        let text = b.export().unwrap();
        let mut all: Vec<ExportLine> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let header = all.remove(0);
        Export { header, lines: all }
    }

    impl Export {
        fn run(&self, pins: &[String]) -> Result<Report, Failure> {
            let text = render(&self.header, &self.lines);
            verify_export(text.as_bytes(), pins, None, VerifyOptions::default())
        }

        fn entry_index(&self, seq: u64) -> usize {
            self.lines
                .iter()
                .position(|l| matches!(l, ExportLine::Entry { seq: s, .. } if *s == seq))
                .unwrap()
        }

        fn checkpoint_index(&self, size: u64) -> usize {
            self.lines
                .iter()
                .position(|l| match l {
                    ExportLine::Checkpoint { note } => {
                        Checkpoint::peek_unverified(note).unwrap().size == size
                    }
                    _ => false,
                })
                .unwrap()
        }

        fn body_mut(&mut self, seq: u64) -> (&mut String, &mut String, &mut PayloadRecord) {
            let i = self.entry_index(seq);
            match &mut self.lines[i] {
                ExportLine::Entry {
                    body,
                    leaf_hash,
                    payload,
                    ..
                } => (body, leaf_hash, payload),
                _ => unreachable!(),
            }
        }
    }

    fn expect_seq(result: Result<Report, Failure>, seq: u64, words: &str) -> Failure {
        let f = result.unwrap_err();
        assert_eq!(f.seq, Some(seq), "{f}");
        assert!(f.reason.contains(words), "{f} should mention {words:?}");
        assert!(f.to_string().starts_with(&format!("seq {seq}: ")), "{f}");
        f
    }

    fn expect_checkpoint(result: Result<Report, Failure>, size: u64, words: &str) -> Failure {
        let f = result.unwrap_err();
        assert_eq!(f.checkpoint_size, Some(size), "{f}");
        assert_eq!(f.seq, None, "{f}");
        assert!(
            f.to_string().contains(words),
            "{f} should mention {words:?}"
        );
        f
    }

    #[test]
    fn intact_ledger_passes() {
        let e = export();
        let report = e.run(&[]).unwrap();
        assert_eq!(report.entries, 12);
        assert_eq!(report.size, 12);
        assert_eq!((report.signed_size, report.unsigned_tail), (12, 0));
        assert!(!report.key_pinned);
        assert_eq!(report.checkpoints, 3);
        assert_eq!(report.pins, 0);
        assert_eq!(report.redacted, 2);
        assert_eq!(report.root, to_hex(&build(1, "a").root()));
    }

    #[test]
    fn pins_of_the_same_log_pass() {
        let mut b = LedgerBuilder::new(ORIGIN, signer(1));
        let mut pins = Vec::new();
        for i in 0..12 {
            b.append(new_entry(i, "a")).unwrap();
            if i == 4 || i == 8 {
                pins.push(b.checkpoint_note().unwrap());
            }
        }
        let text = b.export().unwrap();
        let report = verify_export(text.as_bytes(), &pins, None, VerifyOptions::default()).unwrap();
        assert_eq!(report.pins, 2);
        assert_eq!(report.checkpoints, 1);
    }

    #[test]
    fn flipped_body_byte_is_named() {
        let mut e = export();
        let (body, _, _) = e.body_mut(5);
        *body = body.replacen("svc:crm", "svc:crn", 1);
        expect_seq(e.run(&[]), 5, "leaf hash does not match body");
    }

    #[test]
    fn rehashed_body_breaks_the_chain() {
        let mut e = export();
        let (body, leaf, _) = e.body_mut(5);
        *body = body.replacen("svc:crm", "svc:crn", 1);
        *leaf = to_hex(&leaf_hash(body.as_bytes()));
        expect_seq(e.run(&[]), 6, "prev does not match the leaf hash of seq 5");
    }

    #[test]
    fn wrong_prev_is_named() {
        let mut e = export();
        let (body, leaf, _) = e.body_mut(5);
        let mut parsed = LeafBody::parse(body).unwrap();
        parsed.prev = "00".repeat(32);
        *body = parsed.encode();
        *leaf = to_hex(&parsed.leaf_hash());
        expect_seq(e.run(&[]), 5, "prev does not match the leaf hash of seq 4");
    }

    #[test]
    fn non_canonical_body_is_named() {
        let mut e = export();
        let (body, leaf, _) = e.body_mut(3);
        *body = body.replacen(",", ", ", 1);
        *leaf = to_hex(&leaf_hash(body.as_bytes()));
        expect_seq(e.run(&[]), 3, "body is not canonical");
    }

    #[test]
    fn bad_stored_leaf_hash_is_named() {
        let mut e = export();
        let (_, leaf, _) = e.body_mut(2);
        *leaf = "zz".repeat(32);
        expect_seq(e.run(&[]), 2, "stored leaf hash");
    }

    #[test]
    fn deleted_entry_is_named() {
        let mut e = export();
        let i = e.entry_index(5);
        e.lines.remove(i);
        expect_seq(e.run(&[]), 5, "expected seq 5, found seq 6");
    }

    #[test]
    fn swapped_entries_are_named() {
        let mut e = export();
        let (i, j) = (e.entry_index(5), e.entry_index(6));
        e.lines.swap(i, j);
        expect_seq(e.run(&[]), 5, "expected seq 5");
    }

    #[test]
    fn duplicated_entry_is_named() {
        let mut e = export();
        let i = e.entry_index(5);
        let dup = e.lines[i].clone();
        e.lines.insert(i + 1, dup);
        expect_seq(e.run(&[]), 6, "expected seq 6, found seq 5");
    }

    #[test]
    fn renumbered_entry_is_named() {
        // Rows swapped behind the seq column: the body still says where it belongs.
        let mut e = export();
        let (i, j) = (e.entry_index(5), e.entry_index(6));
        e.lines.swap(i, j);
        if let ExportLine::Entry { seq, .. } = &mut e.lines[i] {
            *seq = 5;
        }
        if let ExportLine::Entry { seq, .. } = &mut e.lines[j] {
            *seq = 6;
        }
        expect_seq(e.run(&[]), 5, "expected seq 5, but the body says seq 6");
    }

    #[test]
    fn altered_payload_is_named() {
        let mut e = export();
        let (_, _, payload) = e.body_mut(6);
        if let PayloadRecord::Open { data, .. } = payload {
            data["decision"] = json!("withdrawn");
        }
        expect_seq(e.run(&[]), 6, "payload does not match its commitment");
        let mut e = export();
        let (_, _, payload) = e.body_mut(6);
        if let PayloadRecord::Open { salt, .. } = payload {
            *salt = "00".repeat(32);
        }
        expect_seq(e.run(&[]), 6, "payload does not match its commitment");
        let mut e = export();
        let (_, _, payload) = e.body_mut(6);
        if let PayloadRecord::Open { salt, .. } = payload {
            salt.pop();
        }
        expect_seq(e.run(&[]), 6, "salt");
        let mut e = export();
        let (_, _, payload) = e.body_mut(6);
        if let PayloadRecord::Open { data, .. } = payload {
            data["n"] = json!(6.5);
        }
        expect_seq(e.run(&[]), 6, "$.n");
    }

    #[test]
    fn truncated_export_is_named() {
        let mut e = export();
        let i = e.entry_index(9);
        e.lines.truncate(i);
        expect_seq(e.run(&[]), 9, "truncated");
        // Even when the header's count is edited to match, it no longer matches its checkpoint.
        if let ExportLine::Header { entries, .. } = &mut e.header {
            *entries = 9;
        }
        expect_header_count(e.run(&[]), 9, 12);
    }

    /// The failure is line 1's and names both numbers.
    fn expect_header_count(result: Result<Report, Failure>, entries: u64, size: u64) -> Failure {
        let f = result.unwrap_err();
        assert_eq!((f.seq, f.checkpoint_size), (None, None), "{f}");
        let want = format!(
            "line 1: the header says {entries} entries, but its checkpoint is at size {size}"
        );
        assert!(
            f.reason.starts_with(&want),
            "{f} should start with {want:?}"
        );
        f
    }

    #[test]
    fn header_count_must_equal_its_checkpoint_size() {
        // Fewer: refused whatever the options.
        let mut e = export();
        if let ExportLine::Header { entries, .. } = &mut e.header {
            *entries = 11;
        }
        expect_header_count(e.run(&[]), 11, 12);
        let text = render(&e.header, &e.lines);
        let allow = VerifyOptions {
            allow_unsigned_tail: true,
        };
        expect_header_count(verify_export(text.as_bytes(), &[], None, allow), 11, 12);
        // More: refused, saying how to accept an unsigned tail.
        let mut e = export();
        if let ExportLine::Header { entries, .. } = &mut e.header {
            *entries = 13;
        }
        let f = expect_header_count(e.run(&[]), 13, 12);
        assert!(f.reason.contains("--allow-unsigned-tail"), "{f}");
    }

    #[test]
    fn extra_entries_beyond_the_header_count_fail() {
        // A header whose checkpoint and count agree on an earlier size.
        let mut e = export();
        let i = e.checkpoint_index(7);
        let ExportLine::Checkpoint { note } = e.lines[i].clone() else {
            unreachable!()
        };
        if let ExportLine::Header {
            entries,
            checkpoint,
            ..
        } = &mut e.header
        {
            *entries = 7;
            *checkpoint = note;
        }
        expect_seq(e.run(&[]), 7, "more entries than its header says (7)");
    }

    /// Feeds entry and checkpoint lines one by one, as the server feeds its database.
    pub(super) fn feed_lines(v: &mut LedgerVerifier, lines: &[ExportLine]) -> Result<(), Failure> {
        for line in lines {
            match line {
                ExportLine::Entry {
                    seq,
                    body,
                    leaf_hash,
                    payload,
                } => v.entry(*seq, body, leaf_hash, payload)?,
                ExportLine::Checkpoint { note } => v.checkpoint(note)?,
                ExportLine::Header { .. } => unreachable!(),
            }
        }
        Ok(())
    }

    /// `lines` fed one by one to a verifier with the log key, as the server feeds its database,
    /// ended by `finish` (`None`) or `finish_with`.
    fn online(lines: &[ExportLine], allow_unsigned_tail: Option<bool>) -> Result<Report, Failure> {
        let mut v = LedgerVerifier::new(ORIGIN, signer(1).verifier());
        feed_lines(&mut v, lines)?;
        match allow_unsigned_tail {
            None => v.finish(),
            Some(allow) => v.finish_with(allow),
        }
    }

    const ALLOW_TAIL: VerifyOptions = VerifyOptions {
        allow_unsigned_tail: true,
    };

    /// The hole an outside review found: take an export, append a correctly chained erasure
    /// entry after the last signed entry (no key needed), redact a signed entry with it and
    /// count the new entry in the header.
    #[test]
    fn an_erasure_appended_without_the_key_cannot_hide_a_signed_entry() {
        let mut b = build(1, "a");
        let real = b.export().unwrap();
        assert!(verify_export(real.as_bytes(), &[], None, VerifyOptions::default()).is_ok());
        // Seq 6, signed, is subject s0's; the forged erasure names that subject, as it must.
        let mut erasure = new_entry(12, "a");
        erasure.subject_ref = Some(subject_ref(0));
        assert_eq!(b.erase(&[6], erasure).unwrap(), 12);
        let forged = b.export_unsigned().unwrap();
        assert!(forged.contains(r#""redacted_by":12"#));
        let key = || Some(signer(1).verifier());
        for k in [None, key()] {
            let f = verify_export(forged.as_bytes(), &[], k, VerifyOptions::default());
            expect_header_count(f, 13, 12);
        }
        // Accepting an unsigned tail accepts the entry, not the redaction it claims.
        for k in [None, key()] {
            let f = verify_export(forged.as_bytes(), &[], k, ALLOW_TAIL);
            let f = expect_seq(f, 6, "redaction is not covered by a signed erasure");
            assert!(f.reason.contains("seq 12"), "{f}");
        }
        // With the header's count left as it was, the extra entry is refused.
        let mut lines: Vec<ExportLine> = forged
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mut header = lines.remove(0);
        if let ExportLine::Header { entries, .. } = &mut header {
            *entries = 12;
        }
        let text = render(&header, &lines);
        let f = verify_export(text.as_bytes(), &[], None, VerifyOptions::default());
        expect_seq(f, 12, "more entries than its header says");
        // Fed entry by entry: `finish_with` refuses it; the live-ledger `finish` reports how far
        // the signatures reach.
        let f = expect_seq(
            online(b.lines(), Some(false)),
            6,
            "not covered by a signed erasure",
        );
        assert!(f.reason.contains("seq 12"), "{f}");
        expect_seq(
            online(b.lines(), Some(true)),
            6,
            "not covered by a signed erasure",
        );
        let report = online(b.lines(), None).unwrap();
        assert_eq!((report.signed_size, report.unsigned_tail), (12, 1));
        // Once a checkpoint signs the erasure, it counts.
        b.checkpoint().unwrap();
        let report = online(b.lines(), Some(false)).unwrap();
        assert_eq!(
            (report.signed_size, report.unsigned_tail, report.redacted),
            (13, 0, 3)
        );
        let text = b.export().unwrap();
        let report = verify_export(text.as_bytes(), &[], None, VerifyOptions::default()).unwrap();
        assert_eq!((report.signed_size, report.redacted), (13, 3));
    }

    #[test]
    fn an_erasure_in_the_unsigned_tail_cannot_cover_anything() {
        // Seqs 0..12 signed; the erasure of seq 7 (s1) at 13 is not, nor what follows.
        let mut b = build(1, "a");
        b.append(new_entry(12, "a")).unwrap();
        let mut erasure = new_entry(13, "a");
        erasure.subject_ref = Some(subject_ref(1));
        b.erase(&[7], erasure).unwrap();
        b.append(new_entry(14, "a")).unwrap();
        let text = b.export_unsigned().unwrap();
        let f = verify_export(text.as_bytes(), &[], None, ALLOW_TAIL);
        let f = expect_seq(f, 7, "redaction is not covered by a signed erasure");
        assert!(f.reason.contains("seq 13"), "{f}");
        assert!(f.reason.contains("size 12"), "{f}");
        expect_seq(
            online(b.lines(), Some(true)),
            7,
            "not covered by a signed erasure",
        );
        // A pin at 14 covers the erasure (pins are signed by the same key).
        let pin = b.checkpoint_note().unwrap();
        let mut v = LedgerVerifier::new(ORIGIN, signer(1).verifier());
        v.pin(&pin).unwrap();
        let fed: Result<(), Failure> = b.lines().iter().try_for_each(|l| match l {
            ExportLine::Entry {
                seq,
                body,
                leaf_hash,
                payload,
            } => v.entry(*seq, body, leaf_hash, payload),
            ExportLine::Checkpoint { note } => v.checkpoint(note),
            ExportLine::Header { .. } => unreachable!(),
        });
        fed.unwrap();
        assert_eq!(v.signed_size(), 15);
        let report = v.finish_with(false).unwrap();
        assert_eq!(
            (report.pins, report.signed_size, report.unsigned_tail),
            (1, 15, 0)
        );
    }

    #[test]
    fn an_access_entry_can_never_be_redacted() {
        let mut b = LedgerBuilder::new(ORIGIN, signer(1));
        for i in 0..5 {
            let mut e = new_entry(i, "a");
            if i == 2 {
                e.kind = "access.logged_in".into();
            }
            b.append(e).unwrap();
        }
        let mut erasure = new_entry(5, "a");
        erasure.subject_ref = Some(subject_ref(2));
        b.erase(&[2], erasure).unwrap();
        let text = b.export().unwrap();
        let f = verify_export(text.as_bytes(), &[], None, VerifyOptions::default());
        let f = expect_seq(f, 2, "access records (access.*) can never be redacted");
        assert!(f.reason.contains("\"access.logged_in\""), "{f}");
        expect_seq(online(b.lines(), None), 2, "can never be redacted");
    }

    #[test]
    fn a_redaction_needs_an_erasure_of_its_own_subject() {
        // Seq 4 is subject s1's; the erasure at 10 names s2.
        let mut b = LedgerBuilder::new(ORIGIN, signer(1));
        for i in 0..10 {
            b.append(new_entry(i, "a")).unwrap();
        }
        let mut erasure = new_entry(10, "a");
        erasure.subject_ref = Some(subject_ref(2));
        b.erase(&[4], erasure.clone()).unwrap();
        let text = b.export().unwrap();
        let f = verify_export(text.as_bytes(), &[], None, VerifyOptions::default());
        let f = expect_seq(
            f,
            4,
            "redaction is not covered by an erasure of its subject",
        );
        assert!(f.reason.contains(&subject_ref(1)), "{f}");
        assert!(f.reason.contains(&subject_ref(2)), "{f}");
        expect_seq(online(b.lines(), None), 4, "erasure of its subject");
        // An erasure naming no subject covers nothing.
        let mut b = LedgerBuilder::new(ORIGIN, signer(1));
        for i in 0..10 {
            b.append(new_entry(i, "a")).unwrap();
        }
        erasure.subject_ref = None;
        b.erase(&[4], erasure).unwrap();
        let text = b.export().unwrap();
        let f = verify_export(text.as_bytes(), &[], None, VerifyOptions::default());
        let f = expect_seq(f, 4, "erasure of its subject");
        assert!(f.reason.contains("subject_ref null"), "{f}");
    }

    #[test]
    fn an_entry_without_a_subject_cannot_be_redacted() {
        let mut b = LedgerBuilder::new(ORIGIN, signer(1));
        for i in 0..6 {
            let mut e = new_entry(i, "a");
            if i == 3 {
                e.subject_ref = None;
            }
            b.append(e).unwrap();
        }
        let mut erasure = new_entry(6, "a");
        erasure.subject_ref = None;
        b.erase(&[3], erasure).unwrap();
        let text = b.export().unwrap();
        let f = verify_export(text.as_bytes(), &[], None, VerifyOptions::default());
        expect_seq(f, 3, "the entry has no subject_ref");
        expect_seq(online(b.lines(), None), 3, "no subject_ref");
    }

    #[test]
    fn an_unsigned_tail_passes_only_when_allowed() {
        let mut b = build(1, "a");
        b.append(new_entry(12, "a")).unwrap();
        b.append(new_entry(13, "a")).unwrap();
        let text = b.export_unsigned().unwrap();
        let f = verify_export(text.as_bytes(), &[], None, VerifyOptions::default());
        let f = expect_header_count(f, 14, 12);
        assert!(f.reason.contains("--allow-unsigned-tail"), "{f}");
        let report = verify_export(text.as_bytes(), &[], None, ALLOW_TAIL).unwrap();
        assert_eq!(report.entries, 14);
        assert_eq!((report.signed_size, report.unsigned_tail), (12, 2));
        assert!(!report.key_pinned);
        let key = Some(signer(1).verifier());
        let report = verify_export(text.as_bytes(), &[], key, ALLOW_TAIL).unwrap();
        assert!(report.key_pinned);
        // Entry by entry, the failure names the first unsigned seq.
        let f = expect_seq(
            online(b.lines(), Some(false)),
            12,
            "not covered by any signed checkpoint (unsigned tail of 2 entries from seq 12); pass --allow-unsigned-tail to accept it",
        );
        assert_eq!(
            f.to_string(),
            "seq 12: not covered by any signed checkpoint (unsigned tail of 2 entries from seq 12); pass --allow-unsigned-tail to accept it"
        );
        let report = online(b.lines(), Some(true)).unwrap();
        assert_eq!((report.signed_size, report.unsigned_tail), (12, 2));
        assert!(report.key_pinned);
        let report = online(b.lines(), None).unwrap();
        assert_eq!((report.signed_size, report.unsigned_tail), (12, 2));
        // Nothing signed at all.
        let mut unsigned = LedgerBuilder::new(ORIGIN, signer(1));
        unsigned.append(new_entry(0, "a")).unwrap();
        assert!(unsigned.export_unsigned().is_none());
        expect_seq(
            online(unsigned.lines(), Some(false)),
            0,
            "unsigned tail of 1 entries from seq 0",
        );
    }

    #[test]
    fn checkpoint_signed_by_another_key_is_named() {
        let mut e = export();
        let i = e.checkpoint_index(7);
        let ExportLine::Checkpoint { note } = &e.lines[i] else {
            unreachable!()
        };
        let cp = Checkpoint::peek_unverified(note).unwrap();
        e.lines[i] = ExportLine::Checkpoint {
            note: cp.sign(&signer(2)).unwrap(),
        };
        let f = expect_checkpoint(e.run(&[]), 7, "signature");
        assert!(f.to_string().starts_with("checkpoint at size 7: "), "{f}");
    }

    #[test]
    fn checkpoint_with_wrong_root_is_named() {
        let mut e = export();
        let i = e.checkpoint_index(7);
        let forged = Checkpoint {
            origin: ORIGIN.into(),
            size: 7,
            root: leaf_hash(b"forged"),
        };
        e.lines[i] = ExportLine::Checkpoint {
            note: forged.sign(&signer(1)).unwrap(),
        };
        expect_checkpoint(e.run(&[]), 7, "checkpoint at size 7: root does not match");
    }

    #[test]
    fn checkpoint_for_another_origin_is_named() {
        let mut e = export();
        let i = e.checkpoint_index(3);
        let ExportLine::Checkpoint { note } = &e.lines[i] else {
            unreachable!()
        };
        let mut cp = Checkpoint::peek_unverified(note).unwrap();
        cp.origin = "other.test/log".into();
        e.lines[i] = ExportLine::Checkpoint {
            note: cp.sign(&signer(1)).unwrap(),
        };
        expect_checkpoint(e.run(&[]), 3, "origin");
    }

    #[test]
    fn checkpoint_out_of_order_is_named() {
        let mut e = export();
        let i = e.checkpoint_index(3);
        let cp = e.lines.remove(i);
        let j = e.entry_index(5);
        e.lines.insert(j, cp);
        expect_checkpoint(e.run(&[]), 3, "out of order");
    }

    #[test]
    fn early_checkpoint_is_checked_when_reached() {
        let mut e = export();
        let i = e.checkpoint_index(7);
        let cp = e.lines.remove(i);
        e.lines.insert(0, cp);
        assert_eq!(e.run(&[]).unwrap().checkpoints, 3);
    }

    #[test]
    fn rewritten_history_fails_against_a_pin() {
        // The auditor kept the checkpoint at size 7 of the real log.
        let real = build(1, "a");
        let ExportLine::Checkpoint { note: pin } = &real.lines()[8] else {
            panic!("line 8 should be the checkpoint at size 7")
        };
        assert_eq!(Checkpoint::peek_unverified(pin).unwrap().size, 7);
        // The operator rewrote entries before 7 and re-signed everything with the same key.
        let mut forged = build(1, "b");
        let text = forged.export().unwrap();
        assert!(verify_export(text.as_bytes(), &[], None, VerifyOptions::default()).is_ok());
        let r = verify_export(
            text.as_bytes(),
            std::slice::from_ref(pin),
            None,
            VerifyOptions::default(),
        );
        let f = expect_checkpoint(r, 7, "pinned checkpoint at size 7: root does not match");
        assert!(
            f.reason
                .starts_with("pinned checkpoint at size 7: root does not match")
        );
        assert_eq!(
            f.to_string(),
            f.reason,
            "the pin label is not repeated by Display"
        );
        // And the real export passes with the same pin.
        let mut real = build(1, "a");
        let text = real.export().unwrap();
        let report = verify_export(
            text.as_bytes(),
            std::slice::from_ref(pin),
            None,
            VerifyOptions::default(),
        )
        .unwrap();
        assert_eq!(report.pins, 1);
    }

    #[test]
    fn pin_signed_by_another_key_or_beyond_the_end_fails() {
        let e = export();
        let other = build(2, "a");
        let foreign_pin = other.checkpoint_note().unwrap();
        expect_checkpoint(
            e.run(&[foreign_pin]),
            12,
            "pinned checkpoint at size 12: signature",
        );
        let mut longer = build(1, "a");
        longer.append(new_entry(12, "a")).unwrap();
        let future_pin = longer.checkpoint_note().unwrap();
        expect_checkpoint(
            e.run(&[future_pin]),
            13,
            "pinned checkpoint at size 13: truncated",
        );
    }

    #[test]
    fn redaction_not_covered_by_an_erasure_is_named() {
        // Erasure seq 10 lists 1 and 4, not 3.
        let mut e = export();
        let (_, _, payload) = e.body_mut(3);
        *payload = PayloadRecord::Redacted { redacted_by: 10 };
        expect_seq(e.run(&[]), 3, "redaction is not covered by an erasure");
        // Seq 11 is not an erasure at all.
        let mut e = export();
        let (_, _, payload) = e.body_mut(3);
        *payload = PayloadRecord::Redacted { redacted_by: 11 };
        expect_seq(e.run(&[]), 3, "redaction is not covered by an erasure");
        // The erasure never arrives.
        let mut e = export();
        let (_, _, payload) = e.body_mut(3);
        *payload = PayloadRecord::Redacted { redacted_by: 40 };
        expect_seq(e.run(&[]), 3, "redaction is not covered by an erasure");
        // An erasure cannot precede what it erases.
        let mut e = export();
        let (_, _, payload) = e.body_mut(3);
        *payload = PayloadRecord::Redacted { redacted_by: 2 };
        expect_seq(e.run(&[]), 3, "redaction by seq 2 is impossible");
        // The erasure's own payload removed: the redactions it covered cannot be checked.
        let mut e = export();
        let (_, _, payload) = e.body_mut(10);
        *payload = PayloadRecord::Redacted { redacted_by: 11 };
        expect_seq(e.run(&[]), 1, "redaction cannot be checked");
    }

    #[test]
    fn redaction_covered_by_an_erasure_passes() {
        let mut e = export();
        for seq in [1, 4] {
            let (_, _, payload) = e.body_mut(seq);
            assert_eq!(payload, &PayloadRecord::Redacted { redacted_by: 10 });
        }
        assert_eq!(e.run(&[]).unwrap().redacted, 2);
    }

    #[test]
    fn bad_lines_and_headers_are_named() {
        let e = export();
        let mut text = render(&e.header, &e.lines);
        text.insert_str(text.find('\n').unwrap() + 1, "{not json\n");
        let f = verify_export(text.as_bytes(), &[], None, VerifyOptions::default()).unwrap_err();
        assert!(f.reason.starts_with("line 2: "), "{f}");
        let f = verify_export(&b""[..], &[], None, VerifyOptions::default()).unwrap_err();
        assert!(f.reason.contains("empty"), "{f}");
        let body_first = render(&e.lines[0], &e.lines[1..]);
        let f =
            verify_export(body_first.as_bytes(), &[], None, VerifyOptions::default()).unwrap_err();
        assert!(f.reason.contains("header"), "{f}");
        let mut e2 = export();
        if let ExportLine::Header { format, .. } = &mut e2.header {
            *format = "something/v2".into();
        }
        assert!(e2.run(&[]).unwrap_err().reason.contains("format"));
        let mut e3 = export();
        let h = e3.header.clone();
        e3.lines.insert(2, h);
        assert!(e3.run(&[]).unwrap_err().reason.contains("second header"));
        let full = render(&e.header, &e.lines);
        let cut = &full[..full.len() - 40];
        let f = verify_export(cut.as_bytes(), &[], None, VerifyOptions::default()).unwrap_err();
        assert!(f.reason.contains("truncated"), "{f}");
        let bad_utf8 = [render(&e.header, &[]).as_bytes(), b"\xff\xfe\n"].concat();
        assert!(
            verify_export(&bad_utf8[..], &[], None, VerifyOptions::default())
                .unwrap_err()
                .reason
                .starts_with("line 2: ")
        );
    }

    #[test]
    fn expected_key_must_match_the_header_key() {
        let e = export();
        let text = render(&e.header, &e.lines);
        let right = signer(1).verifier();
        assert!(verify_export(text.as_bytes(), &[], Some(right), VerifyOptions::default()).is_ok());
        let wrong = signer(2).verifier();
        let f =
            verify_export(text.as_bytes(), &[], Some(wrong), VerifyOptions::default()).unwrap_err();
        assert!(f.reason.contains("not the expected key"), "{f}");
        // An export re-signed by another key with its own header key is caught by --key.
        let mut other = build(2, "a");
        let text = other.export().unwrap();
        assert!(verify_export(text.as_bytes(), &[], None, VerifyOptions::default()).is_ok());
        assert!(
            verify_export(
                text.as_bytes(),
                &[],
                Some(signer(1).verifier()),
                VerifyOptions::default()
            )
            .is_err()
        );
    }

    #[test]
    fn wrong_origin_in_bodies_is_named() {
        let b = build(1, "a");
        let mut v = LedgerVerifier::new("other.test/log", signer(1).verifier());
        let ExportLine::Entry {
            seq,
            body,
            leaf_hash,
            payload,
        } = &b.lines()[0]
        else {
            unreachable!()
        };
        let f = v.entry(*seq, body, leaf_hash, payload).unwrap_err();
        assert_eq!(f.seq, Some(0));
        assert!(f.reason.contains("origin"), "{f}");
    }

    #[test]
    fn failure_display() {
        assert_eq!(
            Failure::at_seq(41, "prev does not match the leaf hash of seq 40").to_string(),
            "seq 41: prev does not match the leaf hash of seq 40"
        );
        assert_eq!(
            Failure::at_checkpoint(Some(12), "root does not match").to_string(),
            "checkpoint at size 12: root does not match"
        );
        assert_eq!(
            Failure::at_checkpoint(
                Some(12),
                "pinned checkpoint at size 12: root does not match"
            )
            .to_string(),
            "pinned checkpoint at size 12: root does not match"
        );
        assert_eq!(Failure::general("line 3: bad").to_string(), "line 3: bad");
    }

    #[test]
    fn empty_ledger_and_size_zero_checkpoint() {
        let mut b = LedgerBuilder::new(ORIGIN, signer(1));
        let text = b.export().unwrap();
        let report = verify_export(text.as_bytes(), &[], None, VerifyOptions::default()).unwrap();
        assert_eq!(report.entries, 0);
        assert_eq!(report.root, to_hex(&crate::hash::EMPTY_ROOT));
    }

    #[test]
    fn memory_does_not_grow_with_entries() {
        let mut b = LedgerBuilder::new(ORIGIN, signer(1));
        let n = 3000u64;
        for i in 0..n {
            b.append(new_entry(i, "m")).unwrap();
            if i % 500 == 499 {
                b.checkpoint().unwrap();
            }
        }
        let mut v = LedgerVerifier::new(ORIGIN, signer(1).verifier());
        let mut peak = 0usize;
        for line in b.lines() {
            match line {
                ExportLine::Entry {
                    seq,
                    body,
                    leaf_hash,
                    payload,
                } => v.entry(*seq, body, leaf_hash, payload).unwrap(),
                ExportLine::Checkpoint { note } => v.checkpoint(note).unwrap(),
                ExportLine::Header { .. } => unreachable!(),
            }
            peak = peak.max(v.frontier.hashes().len() + v.pending.len() + v.redactions.len());
        }
        assert!(peak <= 64 - n.leading_zeros() as usize, "peak {peak}");
        let report = v.finish().unwrap();
        assert_eq!(report.entries, n);
        assert_eq!(report.checkpoints, n / 500);
    }
}

#[cfg(test)]
mod batch_tests {
    use super::*;
    use crate::builder::{LedgerBuilder, NewEntry};
    use crate::export::ExportLine;
    use crate::note::NoteSigner;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;
    use serde_json::json;

    const ORIGIN: &str = "accord.batch-test/log";

    fn signer() -> NoteSigner {
        NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[9; 32])).unwrap()
    }

    fn entry(i: u64) -> NewEntry {
        NewEntry {
            at: 1_763_884_800_000_000 + i as i64,
            actor: if i.is_multiple_of(11) {
                "a \"q\"".into()
            } else {
                "svc".into()
            },
            kind: "consent.recorded".into(),
            entity: format!("e{i}"),
            subject_ref: Some(format!("{:064x}", i % 4)),
            request_id: Some(format!("r{i}")),
            payload: json!({"n": i, "s": "x\ny", "z": [i, {"k": null}]}),
            salt: [i as u8; 32],
        }
    }

    /// 300 entries with erasures (each of two earlier entries of its own subject), a checkpoint
    /// every 100; the lines.
    fn lines() -> Vec<ExportLine> {
        static LINES: std::sync::OnceLock<Vec<ExportLine>> = std::sync::OnceLock::new();
        LINES
            .get_or_init(|| {
                let mut b = LedgerBuilder::new(ORIGIN, signer());
                for i in 0..300u64 {
                    if i % 50 == 49 {
                        let s = b.size();
                        b.erase(&[s - 8, s - 4], entry(i)).unwrap();
                    } else {
                        b.append(entry(i)).unwrap();
                    }
                    if i % 100 == 99 {
                        b.checkpoint().unwrap();
                    }
                }
                b.lines().to_vec()
            })
            .clone()
    }

    fn verifier() -> LedgerVerifier {
        let mut v = LedgerVerifier::new(ORIGIN, signer().verifier());
        v.set_threads(3);
        v
    }

    /// Entry by entry.
    fn one_by_one(lines: &[ExportLine]) -> Result<Report, Failure> {
        let mut v = verifier();
        super::tests::feed_lines(&mut v, lines)?;
        v.finish()
    }

    /// Runs of entries through `entries`, checkpoints in between.
    fn batched(lines: &[ExportLine], size: usize) -> Result<Report, Failure> {
        let mut v = verifier();
        let mut batch = Vec::new();
        for line in lines {
            match line {
                ExportLine::Entry {
                    seq,
                    body,
                    leaf_hash,
                    payload,
                } => batch.push(EntryInput {
                    seq: *seq,
                    body,
                    leaf_hash,
                    payload,
                }),
                ExportLine::Checkpoint { note } => {
                    v.entries(&batch)?;
                    batch.clear();
                    v.checkpoint(note)?;
                }
                ExportLine::Header { .. } => unreachable!(),
            }
            if batch.len() == size {
                v.entries(&batch)?;
                batch.clear();
            }
        }
        v.entries(&batch)?;
        v.finish()
    }

    /// One by one with a check of the caller's own after each accepted entry (failing at seq
    /// `own_failure`), and the same through `entries_with` in batches of `size`.
    fn with_own_checks(
        lines: &[ExportLine],
        own_failure: u64,
        size: Option<usize>,
    ) -> Result<Report, Failure> {
        let own = |seq: u64| {
            if seq == own_failure {
                Err(Failure::at_seq(seq, "the caller's own check"))
            } else {
                Ok(())
            }
        };
        let mut v = verifier();
        let mut batch = Vec::new();
        for line in lines {
            match (line, size) {
                (
                    ExportLine::Entry {
                        seq,
                        body,
                        leaf_hash,
                        payload,
                    },
                    None,
                ) => v
                    .entry(*seq, body, leaf_hash, payload)
                    .and_then(|()| own(*seq))?,
                (
                    ExportLine::Entry {
                        seq,
                        body,
                        leaf_hash,
                        payload,
                    },
                    Some(_),
                ) => batch.push(EntryInput {
                    seq: *seq,
                    body,
                    leaf_hash,
                    payload,
                }),
                (ExportLine::Checkpoint { note }, _) => {
                    v.entries_with(&batch, |i| own(batch[i].seq))?;
                    batch.clear();
                    v.checkpoint(note)?;
                }
                (ExportLine::Header { .. }, _) => unreachable!(),
            }
            if Some(batch.len()) == size {
                v.entries_with(&batch, |i| own(batch[i].seq))?;
                batch.clear();
            }
        }
        v.entries_with(&batch, |i| own(batch[i].seq))?;
        v.finish()
    }

    fn check(lines: &[ExportLine]) -> Result<Report, Failure> {
        let want = one_by_one(lines);
        for size in [1, 150, 1000] {
            assert_eq!(batched(lines, size), want, "batches of {size}");
        }
        for own_failure in [0, 57, 1000] {
            let want = with_own_checks(lines, own_failure, None);
            for size in [1, 150, 1000] {
                assert_eq!(
                    with_own_checks(lines, own_failure, Some(size)),
                    want,
                    "batches of {size}, own failure at {own_failure}"
                );
            }
        }
        want
    }

    #[test]
    fn intact_lines_pass_every_way() {
        let report = check(&lines()).unwrap();
        assert_eq!(report.entries, 300);
        assert_eq!(report.redacted, 12);
    }

    #[test]
    fn the_callers_checks_run_after_each_accepted_entry_only() {
        let lines = lines();
        let entries: Vec<EntryInput<'_>> = lines
            .iter()
            .filter_map(|l| match l {
                ExportLine::Entry {
                    seq,
                    body,
                    leaf_hash,
                    payload,
                } => Some(EntryInput {
                    seq: *seq,
                    body,
                    leaf_hash,
                    payload,
                }),
                _ => None,
            })
            .take(99)
            .collect();
        let mut tampered = entries.clone();
        let wrong = String::from("zz");
        tampered[70].leaf_hash = &wrong;
        let mut v = verifier();
        let mut seen = Vec::new();
        let f = v
            .entries_with(&tampered, |i| {
                seen.push(i);
                Ok(())
            })
            .unwrap_err();
        assert_eq!(f.seq, Some(70));
        assert_eq!(seen, (0..70).collect::<Vec<_>>());
        assert_eq!(v.size(), 70);
        let mut v = verifier();
        v.entries(&entries[..40]).unwrap();
        v.entries(&entries[40..]).unwrap();
        assert_eq!(v.size(), 99);
    }

    #[derive(Debug, Clone)]
    enum Change {
        Seq(usize, u64),
        BodyByte(usize, usize, bool),
        LeafHash(usize),
        Data(usize),
        Salt(usize),
        RedactedBy(usize, u64),
        Drop(usize),
        Swap(usize, usize),
        Note(usize),
    }

    fn change() -> impl Strategy<Value = Change> {
        let i = 0usize..340;
        prop_oneof![
            (i.clone(), 0u64..400).prop_map(|(i, s)| Change::Seq(i, s)),
            (i.clone(), 0usize..300, any::<bool>())
                .prop_map(|(i, at, rehash)| Change::BodyByte(i, at, rehash)),
            i.clone().prop_map(Change::LeafHash),
            i.clone().prop_map(Change::Data),
            i.clone().prop_map(Change::Salt),
            (i.clone(), 0u64..400).prop_map(|(i, by)| Change::RedactedBy(i, by)),
            i.clone().prop_map(Change::Drop),
            (i.clone(), i.clone()).prop_map(|(a, b)| Change::Swap(a, b)),
            i.prop_map(Change::Note),
        ]
    }

    fn apply(lines: &mut Vec<ExportLine>, c: &Change) {
        let n = lines.len();
        match *c {
            Change::Drop(i) => {
                lines.remove(i % n);
            }
            Change::Swap(a, b) => lines.swap(a % n, b % n),
            Change::Note(i) => {
                if let ExportLine::Checkpoint { note } = &mut lines[i % n] {
                    *note = note.replacen('\n', "\n1", 1);
                }
            }
            ref c => {
                let (Change::Seq(i, _)
                | Change::BodyByte(i, _, _)
                | Change::LeafHash(i)
                | Change::Data(i)
                | Change::Salt(i)
                | Change::RedactedBy(i, _)) = *c
                else {
                    unreachable!()
                };
                let ExportLine::Entry {
                    seq,
                    body,
                    leaf_hash,
                    payload,
                } = &mut lines[i % n]
                else {
                    return;
                };
                match *c {
                    Change::Seq(_, s) => *seq = s,
                    Change::BodyByte(_, at, rehash) => {
                        let mut bytes = body.clone().into_bytes();
                        let at = at % bytes.len();
                        bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
                        *body = String::from_utf8(bytes).unwrap();
                        if rehash {
                            *leaf_hash = to_hex(&leaf_hash_of(body));
                        }
                    }
                    Change::LeafHash(_) => leaf_hash.replace_range(0..1, "A"),
                    Change::Data(_) => {
                        if let PayloadRecord::Open { data, .. } = payload {
                            data["n"] = json!(1.5);
                        }
                    }
                    Change::Salt(_) => {
                        if let PayloadRecord::Open { salt, .. } = payload {
                            salt.replace_range(0..2, "00");
                        }
                    }
                    Change::RedactedBy(_, by) => {
                        *payload = PayloadRecord::Redacted { redacted_by: by };
                    }
                    _ => unreachable!(),
                }
            }
        }
    }

    fn leaf_hash_of(body: &str) -> Hash {
        leaf_hash(body.as_bytes())
    }

    /// Whether `changed` says what `original` says: the same entries in the same order, and only
    /// checkpoints of the original (dropped, repeated or moved). Any other change must fail.
    fn same_meaning(original: &[ExportLine], changed: &[ExportLine]) -> bool {
        let entries = |lines: &[ExportLine]| {
            lines
                .iter()
                .filter(|l| matches!(l, ExportLine::Entry { .. }))
                .cloned()
                .collect::<Vec<_>>()
        };
        entries(original) == entries(changed)
            && changed
                .iter()
                .all(|l| matches!(l, ExportLine::Entry { .. }) || original.contains(l))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Batches and the queue fail exactly where entry-by-entry feeding fails, and unless the
        /// changes leave what the lines say intact, they do fail.
        #[test]
        fn changed_lines_fail_the_same_every_way(changes in prop::collection::vec(change(), 1..3)) {
            let original = lines();
            let mut lines = original.clone();
            for c in &changes {
                apply(&mut lines, c);
            }
            let result = check(&lines);
            if !same_meaning(&original, &lines) {
                prop_assert!(result.is_err(), "{:?} passed: {:?}", changes, result);
            }
        }
    }
}
