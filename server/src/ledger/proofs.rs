//! Merkle proofs served from the database. Perfect-subtree roots come from the stored nodes (every
//! [`NODE_STRIDE`]th level) or the leaf hashes, so a proof costs O(log n) small reads at any size.

use accord_audit::hash::{self, Hash};
use accord_audit::merkle::{self, NodeSource, ProofGenError};

use super::store::{self, NODE_STRIDE};
use crate::db::AnyConnection;
use crate::error::AppError;

/// Perfect-subtree roots read from the ledger tables.
pub struct DbNodes<'a> {
    conn: &'a mut AnyConnection,
}

impl<'a> DbNodes<'a> {
    pub fn new(conn: &'a mut AnyConnection) -> Self {
        DbNodes { conn }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    #[error("the stored tree is incomplete at level {level}, index {index}")]
    Missing { level: u32, index: u64 },
    #[error("a stored hash is malformed: {0}")]
    Malformed(String),
}

impl NodeSource for DbNodes<'_> {
    type Error = NodeError;

    fn subtree(&mut self, level: u32, index: u64) -> Result<Hash, NodeError> {
        let base = level - level % NODE_STRIDE;
        let span = 1u64 << (level - base);
        let first = index << (level - base);
        let stored = if base == 0 {
            store::leaf_hashes(self.conn, first, span)?
        } else {
            store::node_hashes(self.conn, base, first, span)?
        };
        if stored.len() as u64 != span {
            return Err(NodeError::Missing { level, index });
        }
        let mut layer: Vec<Hash> = stored
            .iter()
            .map(|h| hash::from_hex(h).map_err(|e| NodeError::Malformed(e.to_string())))
            .collect::<Result<_, _>>()?;
        while layer.len() > 1 {
            layer = layer
                .chunks(2)
                .map(|pair| hash::node_hash(&pair[0], &pair[1]))
                .collect();
        }
        Ok(layer[0])
    }
}

fn gen_error(e: ProofGenError<NodeError>) -> AppError {
    match e {
        ProofGenError::Invalid(why) => AppError::validation("size", why),
        ProofGenError::Source(NodeError::Db(e)) => AppError::from(e),
        ProofGenError::Source(other) => AppError::internal(anyhow::anyhow!("{other}")),
    }
}

/// The root of the first `size` leaves.
pub fn root_at(conn: &mut AnyConnection, size: u64) -> Result<Hash, AppError> {
    merkle::root_of(&mut DbNodes::new(conn), size).map_err(gen_error)
}

/// The inclusion proof of `seq` in the tree of `size` leaves.
pub fn inclusion(conn: &mut AnyConnection, seq: u64, size: u64) -> Result<Vec<Hash>, AppError> {
    merkle::inclusion_proof(&mut DbNodes::new(conn), seq, size).map_err(gen_error)
}

/// The consistency proof between trees of `size1` and `size2` leaves.
pub fn consistency(
    conn: &mut AnyConnection,
    size1: u64,
    size2: u64,
) -> Result<Vec<Hash>, AppError> {
    merkle::consistency_proof(&mut DbNodes::new(conn), size1, size2).map_err(gen_error)
}
