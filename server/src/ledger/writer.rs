//! Turning events into leaves, and publishing checkpoints. Used by the sequencer for every batch and
//! by the CLI; always inside a transaction that holds the sequencing lock.

use std::sync::Arc;

use accord_audit::body::{BODY_VERSION, LeafBody};
use accord_audit::checkpoint::Checkpoint;
use accord_audit::hash;
use accord_audit::note::{NoteSigner, NoteVerifier};
use accord_audit::payload::payload_commit;
use diesel::Connection;

use super::event::{Actor, Appended, EventDraft};
use super::proofs;
use super::store::{self, NODE_STRIDE, NewEntry, NewNode, NewPayload, PendingRows, TreeState};
use crate::clock::Timestamp;
use crate::db::AnyConnection;
use crate::error::AppError;
use crate::keys::{Keys, random_bytes};
use crate::vocab::Seq;

/// What every writer of this ledger shares: its origin and keys.
pub struct Writer {
    pub origin: String,
    pub signer: NoteSigner,
    pub verifier: NoteVerifier,
    keys: Arc<Keys>,
}

impl Writer {
    pub fn new(origin: &str, keys: Arc<Keys>) -> Result<Writer, AppError> {
        let signer = NoteSigner::new(origin, keys.ledger.clone()).map_err(|e| {
            AppError::internal(anyhow::anyhow!(
                "cannot use {origin:?} as the signer name: {e}"
            ))
        })?;
        let verifier = signer.verifier();
        Ok(Writer {
            origin: origin.to_string(),
            signer,
            verifier,
            keys,
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Builds the leaves for `events` on top of `state` (advancing it) and adds their rows to `rows`.
    /// Nothing is written here.
    pub fn stage(
        &self,
        state: &mut TreeState,
        at: i64,
        actor: &Actor,
        request_id: Option<&str>,
        events: &[EventDraft],
        rows: &mut PendingRows,
    ) -> Result<Vec<Appended>, AppError> {
        // The salts are the only fallible part; drawn first, so a failure leaves `state` and
        // `rows` untouched.
        let salts = events
            .iter()
            .map(|_| random_bytes::<32>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
        let mut out = Vec::with_capacity(events.len());
        for (ev, salt) in events.iter().zip(salts) {
            let seq = state.size();
            let commit = payload_commit(&salt, &ev.payload);
            let subject_ref = ev.subject.as_deref().map(|s| self.keys.subject_ref(s));
            let body = LeafBody {
                v: BODY_VERSION,
                origin: self.origin.clone(),
                seq,
                prev: hash::to_hex(&state.last_leaf),
                at,
                actor: actor.as_str().to_string(),
                kind: ev.kind.clone(),
                entity: ev.entity.clone(),
                subject_ref: subject_ref.clone(),
                payload_commit: hash::to_hex(&commit),
                request_id: request_id.map(str::to_string),
            };
            let text = body.encode();
            let leaf = hash::leaf_hash(text.as_bytes());
            let leaf_hex = hash::to_hex(&leaf);
            state.frontier.push(leaf, |level, idx, h| {
                if level % NODE_STRIDE == 0 {
                    rows.nodes.push(NewNode {
                        level: level as i32,
                        idx: store::to_i64(idx),
                        hash: hash::to_hex(h),
                    });
                }
            });
            state.last_leaf = leaf;
            state.last_at = at;
            rows.entries.push(NewEntry {
                seq: Seq::new(seq),
                body: text,
                leaf_hash: leaf_hex.clone(),
                at,
                kind: ev.kind.clone(),
                entity: ev.entity.clone(),
                subject_ref,
                request_id: request_id.map(str::to_string),
            });
            rows.payloads.push(NewPayload {
                seq: Seq::new(seq),
                salt: Some(hex::encode(salt)),
                payload: Some(ev.payload.clone()),
                redacted_by: None,
            });
            out.push(Appended {
                seq: Seq::new(seq),
                leaf_hash: leaf_hex,
                at: Timestamp(at),
                kind: ev.kind.clone(),
                actor: actor.as_str().to_string(),
            });
        }
        Ok(out)
    }

    /// Publishes a checkpoint for the current tree if it has grown since the last one, under the
    /// sequencing lock (compare-and-swap on `checkpoint_size`), after proving the new tree consistent
    /// with the previous checkpoint. Returns the latest checkpoint either way.
    pub fn publish_checkpoint(
        &self,
        conn: &mut AnyConnection,
        now: Timestamp,
    ) -> Result<Option<store::CheckpointRow>, AppError> {
        conn.transaction::<_, AppError, _>(|c| {
            let Some(mut state) = store::lock_tree_state(c)? else {
                return Ok(None);
            };
            let latest = store::latest_checkpoint(c)?;
            let size = state.size();
            let latest_size = latest.as_ref().map(|l| l.size.get()).unwrap_or(0);
            if latest.is_some() && latest_size >= size {
                return Ok(latest);
            }
            let root = state.frontier.root();
            if let Some(prev) = &latest
                && latest_size > 0
            {
                // The previous root comes from its signed note, not from a column beside it.
                let prev_root = Checkpoint::open(&prev.note, &self.verifier)
                    .map_err(|e| {
                        AppError::internal(anyhow::anyhow!(
                            "the stored checkpoint at size {latest_size} does not verify: {e}"
                        ))
                    })?
                    .root;
                let prev = store::CheckpointRow {
                    size: prev.size,
                    root: hash::to_hex(&prev_root),
                    note: String::new(),
                    published_at: prev.published_at,
                };
                let proof = proofs::consistency(c, latest_size, size)?;
                let proof: Vec<Vec<u8>> = proof.iter().map(|h| h.to_vec()).collect();
                accord_audit::merkle::verify_consistency(
                    latest_size,
                    size,
                    &proof,
                    &prev_root,
                    &root,
                )
                .map_err(|e| {
                    AppError::internal(anyhow::anyhow!(
                        "refusing to publish a checkpoint at size {size}: it is not consistent with the one at size {}: {e}",
                        prev.size
                    ))
                })?;
            }
            let note = Checkpoint {
                origin: self.origin.clone(),
                size,
                root,
            }
            .sign(&self.signer)
            .map_err(|e| AppError::internal(anyhow::anyhow!("cannot sign the checkpoint: {e}")))?;
            let row = store::CheckpointRow {
                size: Seq::new(size),
                root: hash::to_hex(&root),
                note,
                published_at: now.micros(),
            };
            store::insert_checkpoint(c, &row)?;
            state.checkpoint_size = size;
            store::save_tree_state(c, &state)?;
            Ok(Some(row))
        })
    }
}
