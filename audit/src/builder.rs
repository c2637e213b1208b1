//! An in-memory ledger writer that produces export lines: for tests, demonstrations and tools that
//! need a real ledger without a database. It chains bodies, commits to payloads, signs
//! checkpoints and redacts erased payloads as the server does; what goes in is the caller's
//! choice (kinds, subjects, which entries an erasure lists, whether the end is signed), so tests
//! can also build ledgers the verifier must refuse.

use serde_json::Value;

use crate::body::{BODY_VERSION, LeafBody};
use crate::canon::{CanonError, canonical_json};
use crate::checkpoint::Checkpoint;
use crate::export::{EXPORT_FORMAT, ExportLine};
use crate::hash::{Hash, to_hex};
use crate::merkle::Frontier;
use crate::note::{NoteError, NoteSigner};
use crate::payload::PayloadRecord;
use crate::payload::{ERASURE_KIND, payload_commit};

/// Why the builder refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The payload has no canonical form.
    #[error(transparent)]
    Canon(#[from] CanonError),
    /// Signing failed (e.g. an origin that cannot be a checkpoint line).
    #[error(transparent)]
    Note(#[from] NoteError),
    /// An erasure named a seq that does not exist yet.
    #[error("seq {0} does not exist")]
    NoSuchSeq(u64),
    /// An erasure named a seq whose line was already taken out with [`LedgerBuilder::take_lines`].
    #[error("seq {0} was already taken out of the builder and can no longer be erased")]
    Taken(u64),
}

/// The caller-chosen parts of a new entry. The salt comes from the caller: this crate has no
/// random source.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    /// Microseconds since the Unix epoch, UTC.
    pub at: i64,
    /// Who caused it.
    pub actor: String,
    /// Event kind.
    pub kind: String,
    /// The entity it concerns.
    pub entity: String,
    /// Hex HMAC of the subject id, if any.
    pub subject_ref: Option<String>,
    /// Request id, if any.
    pub request_id: Option<String>,
    /// The payload JSON (must be canonicalisable).
    pub payload: Value,
    /// 32 random bytes from the caller.
    pub salt: [u8; 32],
}

/// Builds a ledger in memory; see the module docs.
#[derive(Debug, Clone)]
pub struct LedgerBuilder {
    origin: String,
    signer: NoteSigner,
    frontier: Frontier,
    prev: Hash,
    lines: Vec<ExportLine>,
    /// Lines already handed out by [`LedgerBuilder::take_lines`].
    taken: usize,
    /// Index of each seq's entry line, counting taken lines too (`lines` starts at `taken`).
    entry_lines: Vec<usize>,
    latest_checkpoint: Option<(u64, String)>,
}

impl LedgerBuilder {
    /// An empty ledger for `origin`, whose checkpoints `signer` signs.
    pub fn new(origin: &str, signer: NoteSigner) -> Self {
        Self {
            origin: origin.to_string(),
            signer,
            frontier: Frontier::new(),
            prev: [0; 32],
            lines: Vec::new(),
            taken: 0,
            entry_lines: Vec::new(),
            latest_checkpoint: None,
        }
    }

    /// Number of entries.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Current root.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Appends an entry and returns its seq and leaf hash.
    pub fn append(&mut self, entry: NewEntry) -> Result<(u64, Hash), BuildError> {
        let canonical = canonical_json(&entry.payload)?;
        let seq = self.frontier.size();
        let body = LeafBody {
            v: BODY_VERSION,
            origin: self.origin.clone(),
            seq,
            prev: to_hex(&self.prev),
            at: entry.at,
            actor: entry.actor,
            kind: entry.kind,
            entity: entry.entity,
            subject_ref: entry.subject_ref,
            payload_commit: to_hex(&payload_commit(&entry.salt, &canonical)),
            request_id: entry.request_id,
        };
        let text = body.encode();
        let leaf = body.leaf_hash();
        self.frontier.push(leaf, |_, _, _| {});
        self.prev = leaf;
        self.entry_lines.push(self.taken + self.lines.len());
        self.lines.push(ExportLine::Entry {
            seq,
            body: text,
            leaf_hash: to_hex(&leaf),
            payload: PayloadRecord::Open {
                salt: to_hex(&entry.salt),
                data: entry.payload,
            },
        });
        Ok((seq, leaf))
    }

    /// Appends an erasure entry listing `seqs` (its kind and payload are set here) and replaces
    /// those entries' payloads with redaction markers. Returns the erasure's seq. The verifier
    /// accepts it only when `entry.subject_ref` is the `subject_ref` of every erased entry, none
    /// of them is an access record, and a signed checkpoint covers the erasure; that is left to
    /// the caller.
    pub fn erase(&mut self, seqs: &[u64], mut entry: NewEntry) -> Result<u64, BuildError> {
        if let Some(&missing) = seqs.iter().find(|&&s| s >= self.size()) {
            return Err(BuildError::NoSuchSeq(missing));
        }
        if let Some(&gone) = seqs.iter().find(|&&s| self.line_of(s).is_none()) {
            return Err(BuildError::Taken(gone));
        }
        entry.kind = ERASURE_KIND.to_string();
        entry.payload = serde_json::json!({ "redacted_seqs": seqs });
        let (by, _) = self.append(entry)?;
        for &s in seqs {
            let idx = self.line_of(s);
            if let Some(ExportLine::Entry { payload, .. }) = idx.and_then(|i| self.lines.get_mut(i))
            {
                *payload = PayloadRecord::Redacted { redacted_by: by };
            }
        }
        Ok(by)
    }

    /// Index in `lines` of `seq`'s entry line, if it exists and was not taken.
    fn line_of(&self, seq: u64) -> Option<usize> {
        let i = usize::try_from(seq).ok()?;
        self.entry_lines.get(i)?.checked_sub(self.taken)
    }

    /// Signs a checkpoint at the current size, appends it as a line and returns the note.
    pub fn checkpoint(&mut self) -> Result<String, BuildError> {
        let note = self.checkpoint_note()?;
        self.lines
            .push(ExportLine::Checkpoint { note: note.clone() });
        self.latest_checkpoint = Some((self.size(), note.clone()));
        Ok(note)
    }

    /// Signs a checkpoint at the current size without recording it (e.g. one an auditor keeps).
    pub fn checkpoint_note(&self) -> Result<String, BuildError> {
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size: self.size(),
            root: self.frontier.root(),
        };
        Ok(cp.sign(&self.signer)?)
    }

    /// The lines after the header (those not taken out with [`LedgerBuilder::take_lines`]).
    pub fn lines(&self) -> &[ExportLine] {
        &self.lines
    }

    /// Removes and returns the lines written so far, so that a long ledger can be written out
    /// while it is built without holding it all in memory. Entries whose lines were taken can no
    /// longer be erased ([`BuildError::Taken`]); [`LedgerBuilder::export`] renders only the lines
    /// still held, and [`LedgerBuilder::header`] still counts every entry.
    pub fn take_lines(&mut self) -> Vec<ExportLine> {
        self.taken += self.lines.len();
        std::mem::take(&mut self.lines)
    }

    /// The export: a header (whose checkpoint is a fresh one at the full size, appended as the
    /// last line unless the latest checkpoint already is at that size) and every line, as one
    /// JSON Lines text.
    pub fn export(&mut self) -> Result<String, BuildError> {
        let latest = match &self.latest_checkpoint {
            Some((size, note)) if *size == self.size() => note.clone(),
            _ => self.checkpoint()?,
        };
        let header = self.header(latest);
        Ok(render(&header, &self.lines))
    }

    /// The export as it stands, signing nothing: the header names the latest checkpoint signed so
    /// far and counts every entry, so the entries appended since are an unsigned tail. This is
    /// what anyone can make by appending entries to an export without the key (tests check that
    /// the verifier refuses it). `None` before the first checkpoint.
    pub fn export_unsigned(&self) -> Option<String> {
        let (_, note) = self.latest_checkpoint.as_ref()?;
        Some(render(&self.header(note.clone()), &self.lines))
    }

    /// The header line for these entries with the given checkpoint note.
    pub fn header(&self, checkpoint: String) -> ExportLine {
        ExportLine::Header {
            format: EXPORT_FORMAT.to_string(),
            origin: self.origin.clone(),
            verifier_key: self.signer.verifier().to_vkey(),
            checkpoint,
            entries: self.size(),
        }
    }
}

/// One JSON Lines text: `header`, then `lines`, each followed by '\n'.
pub fn render(header: &ExportLine, lines: &[ExportLine]) -> String {
    let mut out = String::new();
    for line in std::iter::once(header).chain(lines) {
        // Serialising these types cannot fail: every map key is a string.
        if let Ok(text) = serde_json::to_string(line) {
            out.push_str(&text);
            out.push('\n');
        }
    }
    out
}
