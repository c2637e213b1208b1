//! `accord ledger verify`: re-reads the whole ledger from the database and runs it through the same
//! streaming verifier an auditor runs offline, then checks that the database's own bookkeeping — the
//! tree state, the stored Merkle nodes used for proofs, the checkpoint and entry columns — agrees
//! with what the entries prove.

use std::collections::VecDeque;
use std::time::Instant;

use accord_audit::body::LeafBody;
use accord_audit::checkpoint::Checkpoint;
use accord_audit::hash;
use accord_audit::merkle::Frontier;
use accord_audit::note::NoteVerifier;
use accord_audit::verify::{Failure, LedgerVerifier};
use serde::Serialize;

use super::store::{self, CheckpointRow, EntryColumns, NODE_STRIDE, TreeState};
use super::stream::{Item, LedgerStream};
use crate::db::AnyConnection;
use crate::error::AppError;

#[derive(Debug, Clone, Serialize)]
pub struct VerifySummary {
    pub entries: u64,
    pub checkpoints: u64,
    pub redacted: u64,
    pub size: u64,
    pub root: String,
    /// Entries after the latest checkpoint: chained and hashed, but not yet signed.
    pub unsigned_tail: u64,
    pub elapsed_ms: u128,
}

/// The outcome: a summary, or the first failure (with the seq or checkpoint it concerns).
pub type VerifyOutcome = Result<VerifySummary, Failure>;

fn fail(seq: Option<u64>, checkpoint_size: Option<u64>, reason: impl Into<String>) -> Failure {
    Failure {
        seq,
        checkpoint_size,
        reason: reason.into(),
    }
}

pub fn verify_database(
    conn: &mut AnyConnection,
    verifier: &NoteVerifier,
    pins: &[String],
) -> Result<VerifyOutcome, AppError> {
    let started = Instant::now();
    let state = match store::read_tree_state(conn) {
        Ok(Some(s)) => s,
        Ok(None) => return Err(AppError::NotFound("the database holds no ledger".into())),
        Err(diesel::result::Error::DeserializationError(e)) => {
            return Ok(Err(fail(None, None, e.to_string())));
        }
        Err(e) => return Err(e.into()),
    };
    let size = state.size();
    let mut v = LedgerVerifier::new(&state.origin, verifier.clone());
    for pin in pins {
        if let Err(f) = v.pin(pin) {
            return Ok(Err(f));
        }
    }
    let mut books = Bookkeeping::new();
    let mut stream = LedgerStream::new(size);
    while let Some(item) = stream.next(conn)? {
        let step = match item {
            Item::Entry {
                seq,
                body,
                leaf_hash,
                payload,
                columns,
            } => match payload {
                Ok(p) => v
                    .entry(seq, &body, &leaf_hash, &p)
                    .and_then(|()| books.entry(conn, seq, &body, &leaf_hash, &columns)),
                Err(why) => Err(fail(Some(seq), None, why)),
            },
            Item::Checkpoint(cp) => v
                .checkpoint(&cp.note)
                .and_then(|()| books.checkpoint(&cp, verifier)),
        };
        if let Err(f) = step {
            return Ok(Err(f));
        }
    }
    // Entries after the latest checkpoint are normal in a running ledger (reported as the
    // unsigned tail), but a redaction counts only when its erasure is signed: the server
    // publishes a checkpoint right after every erasure.
    let report = match v.finish_with(true) {
        Ok(r) => r,
        Err(f) => return Ok(Err(f)),
    };
    if report.size != size {
        return Ok(Err(fail(
            Some(report.size),
            None,
            format!(
                "the tree state says {size} entries but only {} were found (truncated)",
                report.size
            ),
        )));
    }
    if let Err(f) = books.finish(conn, &state, &report.root)? {
        return Ok(Err(f));
    }
    Ok(Ok(VerifySummary {
        entries: report.entries,
        checkpoints: report.checkpoints,
        redacted: report.redacted,
        size: report.size,
        root: report.root,
        unsigned_tail: report.unsigned_tail,
        elapsed_ms: started.elapsed().as_millis(),
    }))
}

/// Checks of what the database keeps beside the entries, done in the same pass.
struct Bookkeeping {
    /// Recomputes the stored Merkle nodes (every NODE_STRIDE-th level) from the leaves.
    frontier: Frontier,
    cursors: Vec<NodeCursor>,
    nodes_seen: u64,
    last_leaf: String,
    last_at: Option<i64>,
    last_checkpoint: u64,
}

impl Bookkeeping {
    fn new() -> Self {
        Bookkeeping {
            frontier: Frontier::new(),
            cursors: Vec::new(),
            nodes_seen: 0,
            last_leaf: hash::to_hex(&[0u8; 32]),
            last_at: None,
            last_checkpoint: 0,
        }
    }

    /// Called after the verifier accepted the entry (so the body parses and the leaf hash is right).
    fn entry(
        &mut self,
        conn: &mut AnyConnection,
        seq: u64,
        body: &str,
        leaf_hash: &str,
        columns: &EntryColumns,
    ) -> Result<(), Failure> {
        let parsed = LeafBody::parse(body).map_err(|e| fail(Some(seq), None, e.to_string()))?;
        let mismatch = if parsed.at != columns.at {
            Some("at")
        } else if parsed.kind != columns.kind {
            Some("kind")
        } else if parsed.entity != columns.entity {
            Some("entity")
        } else if parsed.subject_ref != columns.subject_ref {
            Some("subject_ref")
        } else if parsed.request_id != columns.request_id {
            Some("request_id")
        } else {
            None
        };
        if let Some(col) = mismatch {
            return Err(fail(
                Some(seq),
                None,
                format!("the {col} column does not match the body"),
            ));
        }
        self.last_at = Some(parsed.at);
        self.last_leaf = leaf_hash.to_string();
        let leaf = hash::from_hex(leaf_hash).map_err(|e| fail(Some(seq), None, e.to_string()))?;
        let mut completed = Vec::new();
        self.frontier.push(leaf, |level, idx, h| {
            if level % NODE_STRIDE == 0 {
                completed.push((level, idx, *h));
            }
        });
        for (level, idx, h) in completed {
            self.nodes_seen += 1;
            let slot = (level / NODE_STRIDE) as usize - 1;
            while self.cursors.len() <= slot {
                let l = (self.cursors.len() as u32 + 1) * NODE_STRIDE;
                self.cursors.push(NodeCursor::new(l));
            }
            let stored = self.cursors[slot]
                .next(conn)
                .map_err(|e| fail(Some(seq), None, format!("cannot read stored nodes: {e}")))?;
            let ok = matches!(&stored, Some((i, s)) if *i == idx && s == &hash::to_hex(&h));
            if !ok {
                return Err(fail(
                    Some(seq),
                    None,
                    format!(
                        "the stored Merkle node at level {level}, index {idx} is missing or wrong \
                         (proofs served from it would not verify)"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Called after the verifier accepted the checkpoint's signed note: the row's columns must say
    /// what the note says.
    fn checkpoint(&mut self, cp: &CheckpointRow, verifier: &NoteVerifier) -> Result<(), Failure> {
        let size = cp.size.get();
        let signed = Checkpoint::open(&cp.note, verifier)
            .map_err(|e| fail(None, Some(size), e.to_string()))?;
        if signed.size != size || hash::to_hex(&signed.root) != cp.root {
            return Err(fail(
                None,
                Some(size),
                "the checkpoint row's size or root column does not match its signed note",
            ));
        }
        self.last_checkpoint = self.last_checkpoint.max(size);
        Ok(())
    }

    fn finish(
        &mut self,
        conn: &mut AnyConnection,
        state: &TreeState,
        root: &str,
    ) -> Result<Result<(), Failure>, AppError> {
        let size = state.size();
        let tree = |why: String| Ok(Err(fail(None, None, format!("tree state: {why}"))));
        let beyond = store::count_entries_from(conn, size)?;
        if beyond > 0 {
            return tree(format!(
                "{beyond} entries lie at or beyond its size {size}: it was rolled back"
            ));
        }
        if let Some(max) = store::max_checkpoint_size(conn)?
            && max.get() > size
        {
            return tree(format!(
                "a checkpoint at size {max} lies beyond its size {size}: it was rolled back"
            ));
        }
        if hash::to_hex(&state.frontier.root()) != root || state.stored_root != root {
            return tree("its root does not match the entries".into());
        }
        if state.last_leaf != hash::from_hex(&self.last_leaf).unwrap_or([0xff; 32]) {
            return tree("its last leaf hash does not match the last entry".into());
        }
        if let Some(at) = self.last_at
            && state.last_at != at
        {
            return tree(format!(
                "its last time {} does not match the last entry's {at}",
                state.last_at
            ));
        }
        if state.checkpoint_size != self.last_checkpoint {
            return tree(format!(
                "it names a checkpoint at size {} but the latest is at {}",
                state.checkpoint_size, self.last_checkpoint
            ));
        }
        let stored_nodes = store::count_nodes(conn)?.max(0) as u64;
        if stored_nodes != self.nodes_seen {
            return Ok(Err(fail(
                None,
                None,
                format!(
                    "{stored_nodes} Merkle nodes are stored where the entries make {}",
                    self.nodes_seen
                ),
            )));
        }
        Ok(Ok(()))
    }
}

/// Reads one level's stored nodes in index order, a page at a time.
struct NodeCursor {
    level: u32,
    next_idx: u64,
    buf: VecDeque<(i64, String)>,
    done: bool,
}

impl NodeCursor {
    const PAGE: i64 = 2000;

    fn new(level: u32) -> Self {
        NodeCursor {
            level,
            next_idx: 0,
            buf: VecDeque::new(),
            done: false,
        }
    }

    fn next(&mut self, conn: &mut AnyConnection) -> Result<Option<(u64, String)>, AppError> {
        if self.buf.is_empty() && !self.done {
            let page = store::nodes_page(conn, self.level, self.next_idx, Self::PAGE)?;
            if (page.len() as i64) < Self::PAGE {
                self.done = true;
            }
            if let Some((idx, _)) = page.last() {
                self.next_idx = idx.max(&0).unsigned_abs() + 1;
            }
            self.buf.extend(page);
        }
        Ok(self
            .buf
            .pop_front()
            .map(|(idx, h)| (idx.max(0).unsigned_abs(), h)))
    }
}
