//! Accord's tamper-evident ledger, as a library with no I/O of its own.
//!
//! The pieces, bottom up:
//! - [`hash`]: SHA-256 leaf and node hashing (RFC 6962 domain separation) and hash encodings.
//! - [`canon`]: RFC 8785 JSON canonicalisation, so hashed JSON never depends on a serializer's whims.
//! - [`body`]: the versioned canonical leaf body; its `prev` field chains every leaf to the one before.
//! - [`payload`]: salted commitments to payloads, which live outside the leaf so they can be erased.
//! - [`merkle`]: the RFC 6962 / RFC 9162 Merkle tree, proof generation and verification.
//! - [`note`] and [`checkpoint`]: C2SP signed notes and tlog checkpoints (Ed25519).
//! - [`export`]: the JSON Lines export format.
//! - [`verify`]: the one streaming verifier used by the server and by the offline CLI.
//! - [`receipt`]: consent receipts a data subject or auditor can verify on their own.
//! - [`builder`]: an in-memory ledger writer that produces valid exports (tests, tools).
//!
//! Nothing here reads the clock or a random source: salts and keys come from the caller.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod body;
pub mod builder;
mod bytes;
pub mod canon;
pub mod checkpoint;
pub mod export;
pub mod hash;
pub mod merkle;
pub mod note;
pub mod payload;
pub mod receipt;
mod scan;
pub mod verify;

pub use body::{BODY_VERSION, BodyError, LeafBody};
pub use builder::{BuildError, LedgerBuilder, NewEntry};
pub use canon::{CanonError, DuplicateMember, canonical_json, duplicate_member};
pub use checkpoint::{Checkpoint, CheckpointError};
pub use export::{EXPORT_FORMAT, ExportLine, PayloadRecord, VerifyOptions, verify_export};
pub use hash::{
    EMPTY_ROOT, Hash, HashError, from_b64, from_hex, leaf_hash, node_hash, to_b64, to_hex,
};
pub use merkle::{
    Frontier, MemoryTree, MerkleError, NodeSource, ProofError, ProofGenError, consistency_proof,
    inclusion_proof, root_of, verify_consistency, verify_inclusion,
};
pub use note::{NoteError, NoteSigner, NoteVerifier, OpenedNote, open_note};
pub use payload::{
    ACCESS_KIND_PREFIX, ERASURE_KIND, PAYLOAD_DOMAIN, erasure_redacted_seqs, payload_commit,
};
pub use verify::{EntryInput, Failure, LedgerVerifier, Report};
