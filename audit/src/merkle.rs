//! The RFC 6962 / RFC 9162 Merkle tree: the compact frontier, proof generation from stored
//! perfect subtrees, and proof verification over untrusted bytes.

use crate::hash::{EMPTY_ROOT, Hash, HashError, from_hex, node_hash, to_hex};

/// Why a frontier or tree request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// The number of frontier hashes must equal the number of set bits of the size.
    #[error("a frontier of size {size} has {expected} hashes, got {got}")]
    FrontierCount {
        /// Tree size.
        size: u64,
        /// popcount(size).
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// The frontier's hex text was not 64-character chunks of lowercase hex.
    #[error("frontier hex is invalid: {0}")]
    FrontierHex(HashError),
    /// A subtree that does not lie entirely inside the tree was requested.
    #[error("subtree at level {level}, index {index} is not inside a tree of {size} leaves")]
    SubtreeOutOfRange {
        /// Height of the subtree.
        level: u32,
        /// Its position among subtrees of that height.
        index: u64,
        /// Leaves in the tree.
        size: u64,
    },
}

/// The compact range `[0, size)`: the roots of the perfect subtrees for the set bits of `size`,
/// largest first. Enough to append leaves and compute the root in O(log n) memory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect-subtree roots, largest (leftmost) first; `popcount(size)` of them.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Rebuilds a frontier from stored parts. The hash count must equal `popcount(size)`.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, MerkleError> {
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(MerkleError::FrontierCount {
                size,
                expected,
                got: hashes.len(),
            });
        }
        Ok(Self { size, hashes })
    }

    /// Appends a leaf hash. `on_node(level, index, &hash)` is called, lowest level first, for every
    /// perfect subtree this append completes with `level >= 1`; `index` is the position of the
    /// subtree's first leaf shifted right by `level`, so the subtree covers leaves
    /// `[index << level, (index + 1) << level)`.
    ///
    /// A tree of 2^64 - 1 leaves cannot grow further (the size would overflow); pushing onto one
    /// leaves it unchanged.
    pub fn push(&mut self, leaf: Hash, mut on_node: impl FnMut(u32, u64, &Hash)) {
        let pos = self.size;
        let Some(new_size) = pos.checked_add(1) else {
            return;
        };
        let mut hash = leaf;
        let mut level = 0u32;
        // Each set low bit of the old size is a subtree of that height waiting for a right sibling.
        while level < 64 && (pos >> level) & 1 == 1 {
            let Some(left) = self.hashes.pop() else {
                break;
            };
            hash = node_hash(&left, &hash);
            level += 1;
            on_node(level, pos >> level, &hash);
        }
        self.hashes.push(hash);
        self.size = new_size;
    }

    /// The tree root: the frontier hashes folded right to left; [`EMPTY_ROOT`] for size 0.
    pub fn root(&self) -> Hash {
        let mut it = self.hashes.iter().rev();
        match it.next() {
            None => EMPTY_ROOT,
            Some(last) => it.fold(*last, |acc, h| node_hash(h, &acc)),
        }
    }

    /// The frontier's subtrees as `(level, index, hash)`, largest first, in the same coordinates
    /// as [`NodeSource::subtree`].
    pub fn subtrees(&self) -> impl Iterator<Item = (u32, u64, Hash)> + '_ {
        let mut start = 0u64;
        let mut bits = (0..64u32).rev().filter(move |b| (self.size >> b) & 1 == 1);
        self.hashes.iter().filter_map(move |h| {
            let level = bits.next()?;
            let index = start >> level;
            start += 1u64 << level;
            Some((level, index, *h))
        })
    }

    /// The hashes as one string of concatenated 64-character lowercase hex chunks.
    pub fn to_hex(&self) -> String {
        self.hashes.iter().map(to_hex).collect()
    }

    /// Parses [`Frontier::to_hex`] output for a tree of `size` leaves.
    pub fn from_hex(size: u64, s: &str) -> Result<Self, MerkleError> {
        let expected = size.count_ones() as usize;
        if s.len() != expected * 64 {
            return Err(MerkleError::FrontierCount {
                size,
                expected,
                got: s.len() / 64,
            });
        }
        let hashes = s
            .as_bytes()
            .chunks(64)
            .map(|chunk| {
                let text = std::str::from_utf8(chunk).map_err(|_| HashError::HexDigit)?;
                from_hex(text)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(MerkleError::FrontierHex)?;
        Self::from_parts(size, hashes)
    }
}

/// Source of perfect-subtree roots for proof generation.
///
/// `subtree(level, index)` must return the root of leaves `[index * 2^level, (index+1) * 2^level)`
/// (for level 0, the leaf hash itself). Proof generation only asks for subtrees that lie entirely
/// inside the tree it was asked about, and only O(log n) of them per proof.
pub trait NodeSource {
    /// The source's own failure (e.g. a database error).
    type Error;
    /// The root of the perfect subtree at (`level`, `index`).
    fn subtree(&mut self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// Why a proof could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofGenError<E> {
    /// The request itself is impossible (index >= size, size1 > size2, size1 == 0).
    #[error("invalid proof request: {0}")]
    Invalid(String),
    /// The node source failed.
    #[error("node source failed: {0}")]
    Source(E),
}

/// All leaf hashes in memory; for tests, benchmarks and small tools. `subtree` hashes the
/// requested range from the leaves, so it costs O(2^level).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemoryTree(pub Vec<Hash>);

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree over the given leaf hashes.
    pub fn from_leaves(leaves: Vec<Hash>) -> Self {
        Self(leaves)
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.0.push(leaf);
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.0.len() as u64
    }

    /// True when there are no leaves.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The leaf hashes.
    pub fn leaves(&self) -> &[Hash] {
        &self.0
    }

    /// The root of the first `size` leaves (see [`root_of`]).
    pub fn root(&mut self) -> Result<Hash, ProofGenError<MerkleError>> {
        let size = self.len();
        root_of(self, size)
    }
}

impl From<Vec<Hash>> for MemoryTree {
    fn from(leaves: Vec<Hash>) -> Self {
        Self(leaves)
    }
}

impl NodeSource for MemoryTree {
    type Error = MerkleError;

    fn subtree(&mut self, level: u32, index: u64) -> Result<Hash, MerkleError> {
        let size = self.len();
        let out_of_range = MerkleError::SubtreeOutOfRange { level, index, size };
        let width = 1u64
            .checked_shl(level)
            .ok_or_else(|| out_of_range.clone())?;
        let start = index
            .checked_mul(width)
            .ok_or_else(|| out_of_range.clone())?;
        let end = start
            .checked_add(width)
            .ok_or_else(|| out_of_range.clone())?;
        let leaves = usize::try_from(start)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(s, e)| self.0.get(s..e))
            .ok_or(out_of_range)?;
        let mut layer = leaves.to_vec();
        while layer.len() > 1 {
            layer = layer
                .chunks_exact(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
        }
        layer
            .pop()
            .ok_or(MerkleError::SubtreeOutOfRange { level, index, size })
    }
}

/// Largest power of two strictly less than `n` (n >= 2): the RFC 6962 split point.
fn split_point(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// MTH of leaves `[start, start + n)`, n >= 1, built from perfect subtrees: a perfect aligned range
/// is one request; any other range splits at the RFC's point into a perfect left part and the
/// rest, so a range costs popcount(n) requests.
fn range_hash<S: NodeSource>(
    src: &mut S,
    start: u64,
    n: u64,
) -> Result<Hash, ProofGenError<S::Error>> {
    if n == 0 {
        return Err(ProofGenError::Invalid("empty range".into()));
    }
    if n.is_power_of_two() {
        if !start.is_multiple_of(n) {
            // Cannot happen for ranges produced by PATH/SUBPROOF; refuse rather than guess.
            return Err(ProofGenError::Invalid(format!(
                "range [{start}, {}) is not an aligned subtree",
                start + n
            )));
        }
        let level = n.trailing_zeros();
        return src
            .subtree(level, start >> level)
            .map_err(ProofGenError::Source);
    }
    let k = split_point(n);
    let left = range_hash(src, start, k)?;
    let right = range_hash(src, start + k, n - k)?;
    Ok(node_hash(&left, &right))
}

/// RFC 9162 §2.1.3.1 PATH(index, D[0:size]): the inclusion proof, leaf-side sibling first.
pub fn inclusion_proof<S: NodeSource>(
    src: &mut S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofGenError<S::Error>> {
    if index >= size {
        return Err(ProofGenError::Invalid(format!(
            "index {index} is not below tree size {size}"
        )));
    }
    // Walk from the root down, collecting the sibling at each split, then reverse.
    let mut siblings = Vec::new();
    let (mut start, mut n, mut m) = (0u64, size, index);
    while n > 1 {
        let k = split_point(n);
        if m < k {
            siblings.push(range_hash(src, start + k, n - k)?);
            n = k;
        } else {
            siblings.push(range_hash(src, start, k)?);
            start += k;
            m -= k;
            n -= k;
        }
    }
    siblings.reverse();
    Ok(siblings)
}

/// RFC 9162 §2.1.4.1 PROOF(size1, D[0:size2]) via SUBPROOF. Empty when the sizes are equal.
pub fn consistency_proof<S: NodeSource>(
    src: &mut S,
    size1: u64,
    size2: u64,
) -> Result<Vec<Hash>, ProofGenError<S::Error>> {
    if size1 == 0 {
        return Err(ProofGenError::Invalid(
            "a consistency proof from the empty tree is meaningless".into(),
        ));
    }
    if size1 > size2 {
        return Err(ProofGenError::Invalid(format!(
            "size1 {size1} is larger than size2 {size2}"
        )));
    }
    let mut out = Vec::new();
    let (mut start, mut m, mut n, mut whole) = (0u64, size1, size2, true);
    loop {
        if m == n {
            // `whole` means this subtree is the entire old tree, whose root the verifier has.
            if !whole {
                out.push(range_hash(src, start, m)?);
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            out.push(range_hash(src, start + k, n - k)?);
            n = k;
        } else {
            out.push(range_hash(src, start, k)?);
            start += k;
            m -= k;
            n -= k;
            whole = false;
        }
    }
    out.reverse();
    Ok(out)
}

/// The root of the first `size` leaves; [`EMPTY_ROOT`] for 0.
pub fn root_of<S: NodeSource>(src: &mut S, size: u64) -> Result<Hash, ProofGenError<S::Error>> {
    if size == 0 {
        return Ok(EMPTY_ROOT);
    }
    range_hash(src, 0, size)
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Inclusion: the index is not inside the tree.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// Claimed leaf index.
        index: u64,
        /// Claimed tree size.
        size: u64,
    },
    /// A hash that is not exactly 32 bytes.
    #[error("{what} is {len} bytes, a hash must be 32")]
    HashLength {
        /// Which input: "leaf hash", "root", "root1", "root2" or "proof[i]".
        what: String,
        /// Its length.
        len: usize,
    },
    /// More proof elements than the tree sizes call for.
    #[error("proof has more elements than the tree sizes call for")]
    ProofTooLong,
    /// Fewer proof elements than the tree sizes call for.
    #[error("proof has fewer elements than the tree sizes call for")]
    ProofTooShort,
    /// Inclusion: the recomputed root differs.
    #[error("root recomputed from the proof does not match the given root")]
    RootMismatch,
    /// Consistency from size 0 proves nothing and is refused.
    #[error("consistency from the empty tree (size1 = 0) is not checkable")]
    Size1Zero,
    /// Consistency: the old tree is larger than the new one.
    #[error("size1 {size1} is larger than size2 {size2}")]
    Size1AboveSize2 {
        /// Old size.
        size1: u64,
        /// New size.
        size2: u64,
    },
    /// Consistency between equal sizes takes an empty proof.
    #[error("sizes are equal, so the proof must be empty")]
    ProofNotEmpty,
    /// Consistency between equal sizes: the roots must be identical.
    #[error("sizes are equal but the roots differ")]
    RootsDiffer,
    /// Consistency between different sizes needs at least one proof element.
    #[error("proof is empty but the sizes differ")]
    EmptyProof,
    /// Consistency: the proof does not lead to the old root.
    #[error("root recomputed for size1 does not match root1")]
    Root1Mismatch,
    /// Consistency: the proof does not lead to the new root.
    #[error("root recomputed for size2 does not match root2")]
    Root2Mismatch,
}

fn exact_hash(bytes: &[u8], what: impl FnOnce() -> String) -> Result<Hash, ProofError> {
    Hash::try_from(bytes).map_err(|_| ProofError::HashLength {
        what: what(),
        len: bytes.len(),
    })
}

fn exact_proof(proof: &[Vec<u8>]) -> Result<Vec<Hash>, ProofError> {
    proof
        .iter()
        .enumerate()
        .map(|(i, p)| exact_hash(p, || format!("proof[{i}]")))
        .collect()
}

/// RFC 9162 §2.1.3.2: checks that `leaf_hash` is leaf `index` of the tree of `size` leaves with
/// root `root`, given the audit path `proof` (leaf-side first). Every input hash must be exactly
/// 32 bytes; nothing here panics on hostile input.
pub fn verify_inclusion(
    leaf_hash: &[u8],
    index: u64,
    size: u64,
    proof: &[Vec<u8>],
    root: &[u8],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let leaf = exact_hash(leaf_hash, || "leaf hash".into())?;
    let root = exact_hash(root, || "root".into())?;
    let proof = exact_proof(proof)?;
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = leaf;
    for p in &proof {
        if sn == 0 {
            return Err(ProofError::ProofTooLong);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            // Skip the levels where this node has no right sibling (the tree's right edge).
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::ProofTooShort);
    }
    if r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: checks that the tree of `size1` leaves with root `root1` is a prefix of the
/// tree of `size2` leaves with root `root2`.
///
/// `size1 == 0` is an error (it proves nothing). Equal sizes need an empty proof and roots that
/// are equal byte for byte, whatever their length (transparency-dev semantics, which the test
/// vectors require); otherwise every hash must be exactly 32 bytes.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Vec<u8>],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::Size1AboveSize2 { size1, size2 });
    }
    if size1 == 0 {
        return Err(ProofError::Size1Zero);
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::ProofNotEmpty);
        }
        if root1 != root2 {
            return Err(ProofError::RootsDiffer);
        }
        return Ok(());
    }
    let root1 = exact_hash(root1, || "root1".into())?;
    let root2 = exact_hash(root2, || "root2".into())?;
    let proof = exact_proof(proof)?;
    if proof.is_empty() {
        return Err(ProofError::EmptyProof);
    }
    // When size1 is a power of two the old root is itself a node of the new tree, so the proof
    // omits it and the verifier starts from root1.
    let (seed, rest): (Hash, &[Hash]) = if size1.is_power_of_two() {
        (root1, &proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => return Err(ProofError::EmptyProof),
        }
    };
    let (mut fn_, mut sn) = (size1 - 1, size2 - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in rest {
        if sn == 0 {
            return Err(ProofError::ProofTooLong);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::ProofTooShort);
    }
    if fr != root1 {
        return Err(ProofError::Root1Mismatch);
    }
    if sr != root2 {
        return Err(ProofError::Root2Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    // Reference implementations: the RFC 9162 definitions written literally over a leaf slice
    // (D[start:start+len]), memoising MTH so the property tests stay fast in debug builds.
    struct Reference<'a> {
        d: &'a [Hash],
        memo: std::collections::HashMap<(usize, usize), Hash>,
    }

    impl<'a> Reference<'a> {
        fn new(d: &'a [Hash]) -> Self {
            Self {
                d,
                memo: Default::default(),
            }
        }

        fn mth(&mut self, start: usize, len: usize) -> Hash {
            if let Some(h) = self.memo.get(&(start, len)) {
                return *h;
            }
            let h = match len {
                0 => EMPTY_ROOT,
                1 => self.d[start],
                n => {
                    let k = split_point(n as u64) as usize;
                    let l = self.mth(start, k);
                    let r = self.mth(start + k, n - k);
                    node_hash(&l, &r)
                }
            };
            self.memo.insert((start, len), h);
            h
        }

        fn path(&mut self, m: usize, start: usize, n: usize) -> Vec<Hash> {
            if n <= 1 {
                return vec![];
            }
            let k = split_point(n as u64) as usize;
            if m < k {
                let mut p = self.path(m, start, k);
                p.push(self.mth(start + k, n - k));
                p
            } else {
                let mut p = self.path(m - k, start + k, n - k);
                p.push(self.mth(start, k));
                p
            }
        }

        fn subproof(&mut self, m: usize, start: usize, n: usize, b: bool) -> Vec<Hash> {
            if m == n {
                return if b { vec![] } else { vec![self.mth(start, n)] };
            }
            let k = split_point(n as u64) as usize;
            if m <= k {
                let mut p = self.subproof(m, start, k, b);
                p.push(self.mth(start + k, n - k));
                p
            } else {
                let mut p = self.subproof(m - k, start + k, n - k, false);
                p.push(self.mth(start, k));
                p
            }
        }
    }

    fn mth(d: &[Hash]) -> Hash {
        Reference::new(d).mth(0, d.len())
    }

    /// The sequence of sibling sides PATH walks through (true: sibling on the right). Two
    /// (index, size) pairs with the same shape make the verifier hash identically.
    fn inclusion_shape(m: u64, n: u64) -> Vec<bool> {
        let (mut m, mut n, mut out) = (m, n, vec![]);
        while n > 1 {
            let k = split_point(n);
            if m < k {
                out.push(true);
                n = k;
            } else {
                out.push(false);
                m -= k;
                n -= k;
            }
        }
        out
    }

    /// SUBPROOF's walk: the sides taken and whether the old root itself is the starting node.
    fn consistency_shape(m: u64, n: u64) -> (Vec<bool>, bool) {
        let (mut m, mut n, mut whole, mut out) = (m, n, true, vec![]);
        while m != n {
            let k = split_point(n);
            if m <= k {
                out.push(true);
                n = k;
            } else {
                out.push(false);
                m -= k;
                n -= k;
                whole = false;
            }
        }
        (out, whole)
    }

    fn v(p: &[Hash]) -> Vec<Vec<u8>> {
        p.iter().map(|h| h.to_vec()).collect()
    }

    fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
        let mut b = bytes.to_vec();
        b[bit / 8] ^= 1 << (bit % 8);
        b
    }

    /// Counts requests and checks each asks for a perfect subtree inside the tree.
    struct Counting {
        tree: MemoryTree,
        requests: u64,
    }

    impl NodeSource for Counting {
        type Error = MerkleError;
        fn subtree(&mut self, level: u32, index: u64) -> Result<Hash, MerkleError> {
            self.requests += 1;
            self.tree.subtree(level, index)
        }
    }

    #[test]
    fn rfc6962_reference_roots() {
        // The eight-leaf test tree from RFC 6962 / Certificate Transparency.
        let data: [&[u8]; 8] = [
            b"",
            &[0x00],
            &[0x10],
            &[0x20, 0x21],
            &[0x30, 0x31],
            &[0x40, 0x41, 0x42, 0x43],
            &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            &[
                0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
                0x6e, 0x6f,
            ],
        ];
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let mut f = Frontier::new();
        let mut tree = MemoryTree::new();
        assert_eq!(f.root(), EMPTY_ROOT);
        for (d, want) in data.iter().zip(roots) {
            let h = leaf_hash(d);
            f.push(h, |_, _, _| {});
            tree.push(h);
            assert_eq!(to_hex(&f.root()), want);
            assert_eq!(to_hex(&tree.root().unwrap()), want);
        }
    }

    #[test]
    fn frontier_parts_and_hex() {
        let mut f = Frontier::new();
        for h in leaves(13) {
            f.push(h, |_, _, _| {});
        }
        assert_eq!(f.hashes().len(), 3);
        let g = Frontier::from_hex(13, &f.to_hex()).unwrap();
        assert_eq!(f, g);
        assert_eq!(Frontier::from_parts(13, f.hashes().to_vec()).unwrap(), f);
        assert!(matches!(
            Frontier::from_parts(12, f.hashes().to_vec()),
            Err(MerkleError::FrontierCount { .. })
        ));
        assert!(Frontier::from_hex(12, &f.to_hex()).is_err());
        assert!(Frontier::from_hex(13, &f.to_hex().to_uppercase()).is_err());
        assert!(Frontier::from_hex(1, &"é".repeat(32)).is_err());
        assert_eq!(Frontier::from_hex(0, "").unwrap(), Frontier::new());
        let subtrees: Vec<_> = f.subtrees().map(|(l, i, _)| (l, i)).collect();
        assert_eq!(subtrees, vec![(3, 0), (2, 2), (0, 12)]);
    }

    #[test]
    fn proof_requests_are_few_and_perfect() {
        for n in [1u64, 2, 3, 5, 8, 100, 255, 256, 257, 1000, 1023, 1025] {
            let bound = 2 * (64 - n.leading_zeros() as u64) + 2;
            let mut src = Counting {
                tree: MemoryTree::from_leaves(leaves(n)),
                requests: 0,
            };
            for i in [0, n / 3, n / 2, n - 1] {
                src.requests = 0;
                inclusion_proof(&mut src, i, n).unwrap();
                assert!(src.requests <= bound, "inclusion {i}/{n}: {}", src.requests);
            }
            for m in [1, n / 3 + 1, n / 2 + 1, n] {
                src.requests = 0;
                consistency_proof(&mut src, m.min(n), n).unwrap();
                assert!(
                    src.requests <= bound,
                    "consistency {m}/{n}: {}",
                    src.requests
                );
            }
            src.requests = 0;
            root_of(&mut src, n).unwrap();
            assert_eq!(src.requests, u64::from(n.count_ones()));
        }
    }

    #[test]
    fn proof_generation_refuses_impossible_requests() {
        let mut t = MemoryTree::from_leaves(leaves(4));
        assert!(matches!(
            inclusion_proof(&mut t, 4, 4),
            Err(ProofGenError::Invalid(_))
        ));
        assert!(matches!(
            consistency_proof(&mut t, 0, 4),
            Err(ProofGenError::Invalid(_))
        ));
        assert!(matches!(
            consistency_proof(&mut t, 3, 2),
            Err(ProofGenError::Invalid(_))
        ));
        assert_eq!(consistency_proof(&mut t, 4, 4).unwrap(), Vec::<Hash>::new());
        // A tree that claims more leaves than the source has surfaces the source's error.
        assert!(matches!(
            inclusion_proof(&mut t, 0, 5),
            Err(ProofGenError::Source(MerkleError::SubtreeOutOfRange { .. }))
        ));
        assert!(t.subtree(64, 0).is_err());
        assert!(t.subtree(1, u64::MAX).is_err());
    }

    #[test]
    fn verifiers_reject_malformed_input_without_panicking() {
        let l = leaves(3);
        let mut t = MemoryTree::from_leaves(l.clone());
        let root = t.root().unwrap();
        let proof = v(&inclusion_proof(&mut t, 2, 3).unwrap());
        assert_eq!(verify_inclusion(&l[2], 2, 3, &proof, &root), Ok(()));
        assert!(matches!(
            verify_inclusion(&l[2][..31], 2, 3, &proof, &root),
            Err(ProofError::HashLength { .. })
        ));
        assert!(matches!(
            verify_inclusion(&l[2], 2, 3, &proof, &[]),
            Err(ProofError::HashLength { .. })
        ));
        let mut long = proof.clone();
        long[0].push(0);
        assert!(matches!(
            verify_inclusion(&l[2], 2, 3, &long, &root),
            Err(ProofError::HashLength { .. })
        ));
        assert_eq!(
            verify_inclusion(&l[2], u64::MAX, 3, &proof, &root),
            Err(ProofError::IndexOutOfRange {
                index: u64::MAX,
                size: 3
            })
        );
        assert!(verify_inclusion(&l[0], 0, u64::MAX, &proof, &root).is_err());
        assert!(verify_consistency(u64::MAX, u64::MAX, &[], &root, &root).is_ok());
        assert!(verify_consistency(1, u64::MAX, &proof, &root, &root).is_err());
        assert_eq!(
            verify_consistency(0, 0, &[], &root, &root),
            Err(ProofError::Size1Zero)
        );
        assert_eq!(
            verify_consistency(2, 3, &[], &root, &root),
            Err(ProofError::EmptyProof)
        );
    }

    #[test]
    fn frontier_reports_every_perfect_subtree_once() {
        let n = 70u64;
        let l = leaves(n);
        let mut f = Frontier::new();
        let mut seen = BTreeMap::new();
        for (pos, h) in l.iter().enumerate() {
            f.push(*h, |level, index, hash| {
                // Completed by this push: the subtree ends at leaf `pos`.
                assert_eq!((index + 1) << level, pos as u64 + 1);
                assert!(seen.insert((level, index), *hash).is_none());
            });
        }
        let mut want = BTreeMap::new();
        for level in 1..7u32 {
            let width = 1usize << level;
            for index in 0..(n as usize / width) {
                want.insert(
                    (level, index as u64),
                    mth(&l[index * width..(index + 1) * width]),
                );
            }
        }
        assert_eq!(seen, want);
    }

    proptest! {
        // Few cases, each over a whole tree of up to 300 leaves: debug-build hashing is slow.
        #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

        #[test]
        fn generated_proofs_match_the_rfc_and_verify(n in 1u64..300, seed in any::<u64>()) {
            let l: Vec<Hash> = (0..n).map(|i| leaf_hash(&[seed.to_be_bytes(), i.to_be_bytes()].concat())).collect();
            let mut reference = Reference::new(&l);
            let mut tree = MemoryTree::from_leaves(l.clone());
            let root = reference.mth(0, n as usize);
            prop_assert_eq!(root_of(&mut tree, n).unwrap(), root);
            for i in 0..n {
                let p = inclusion_proof(&mut tree, i, n).unwrap();
                prop_assert_eq!(&p, &reference.path(i as usize, 0, n as usize));
                prop_assert_eq!(verify_inclusion(&l[i as usize], i, n, &v(&p), &root), Ok(()));
            }
            for m in 1..=n {
                let p = consistency_proof(&mut tree, m, n).unwrap();
                if m < n {
                    prop_assert_eq!(&p, &reference.subproof(m as usize, 0, n as usize, true));
                } else {
                    prop_assert!(p.is_empty());
                }
                let root1 = reference.mth(0, m as usize);
                prop_assert_eq!(verify_consistency(m, n, &v(&p), &root1, &root), Ok(()));
            }
            for m in [1, n / 2, n] {
                prop_assert_eq!(root_of(&mut tree, m).unwrap(), reference.mth(0, m as usize));
            }
        }

        #[test]
        fn mutated_inclusion_proofs_fail(n in 1u64..300, pick in any::<u64>()) {
            let l = leaves(n);
            let mut tree = MemoryTree::from_leaves(l.clone());
            let root = tree.root().unwrap();
            let i = pick % n;
            let leaf = l[i as usize];
            let p = v(&inclusion_proof(&mut tree, i, n).unwrap());
            prop_assert_eq!(verify_inclusion(&leaf, i, n, &p, &root), Ok(()));
            for bit in 0..256 {
                for e in 0..p.len() {
                    let mut q = p.clone();
                    q[e] = flip(&q[e], bit);
                    prop_assert!(verify_inclusion(&leaf, i, n, &q, &root).is_err());
                }
                prop_assert!(verify_inclusion(&leaf, i, n, &p, &flip(&root, bit)).is_err());
                prop_assert!(verify_inclusion(&flip(&leaf, bit), i, n, &p, &root).is_err());
            }
            // Another index in the same tree always walks a different path, so it must fail.
            let shape = inclusion_shape(i, n);
            for j in (0..n).filter(|&j| j != i) {
                prop_assert_ne!(&inclusion_shape(j, n), &shape);
                prop_assert!(verify_inclusion(&leaf, j, n, &p, &root).is_err());
            }
            // Another size fails unless it walks the identical path (the proof then hashes the
            // same way; the size is bound by the signed checkpoint, not by the proof).
            for m in (1..=2 * n + 2).filter(|&m| m != n) {
                let ok = verify_inclusion(&leaf, i, m, &p, &root).is_ok();
                prop_assert_eq!(ok, i < m && inclusion_shape(i, m) == shape, "size {}", m);
            }
            prop_assert!(verify_inclusion(&leaf, i, 0, &p, &root).is_err());
            let mut dropped = p.clone();
            if dropped.pop().is_some() {
                prop_assert!(verify_inclusion(&leaf, i, n, &dropped, &root).is_err());
            }
            let mut extra = p.clone();
            extra.push(root.to_vec());
            prop_assert!(verify_inclusion(&leaf, i, n, &extra, &root).is_err());
        }

        #[test]
        fn mutated_consistency_proofs_fail(n in 2u64..300, pick in any::<u64>()) {
            let l = leaves(n);
            let mut tree = MemoryTree::from_leaves(l.clone());
            let root2 = tree.root().unwrap();
            let m = 1 + pick % (n - 1);
            let root1 = root_of(&mut tree, m).unwrap();
            let p = v(&consistency_proof(&mut tree, m, n).unwrap());
            prop_assert_eq!(verify_consistency(m, n, &p, &root1, &root2), Ok(()));
            for bit in 0..256 {
                for e in 0..p.len() {
                    let mut q = p.clone();
                    q[e] = flip(&q[e], bit);
                    prop_assert!(verify_consistency(m, n, &q, &root1, &root2).is_err());
                }
                prop_assert!(verify_consistency(m, n, &p, &flip(&root1, bit), &root2).is_err());
                prop_assert!(verify_consistency(m, n, &p, &root1, &flip(&root2, bit)).is_err());
            }
            let shape = consistency_shape(m, n);
            for m2 in (1..=n).filter(|&x| x != m) {
                let ok = verify_consistency(m2, n, &p, &root1, &root2).is_ok();
                prop_assert_eq!(ok, m2 < n && consistency_shape(m2, n) == shape, "size1 {}", m2);
            }
            for n2 in (m..=2 * n + 2).filter(|&x| x != n) {
                let ok = verify_consistency(m, n2, &p, &root1, &root2).is_ok();
                prop_assert_eq!(ok, m < n2 && consistency_shape(m, n2) == shape, "size2 {}", n2);
            }
            prop_assert!(verify_consistency(0, n, &p, &root1, &root2).is_err());
            prop_assert!(verify_consistency(m, n, &p, &root2, &root1).is_err());
            let mut dropped = p.clone();
            dropped.pop();
            prop_assert!(verify_consistency(m, n, &dropped, &root1, &root2).is_err());
            let mut extra = p.clone();
            extra.push(root1.to_vec());
            prop_assert!(verify_consistency(m, n, &extra, &root1, &root2).is_err());
        }

        #[test]
        fn frontier_matches_memory_tree(n in 0u64..300) {
            let l = leaves(n);
            let mut f = Frontier::new();
            let mut tree = MemoryTree::new();
            let mut reported = Vec::new();
            prop_assert_eq!(f.root(), EMPTY_ROOT);
            for h in &l {
                f.push(*h, |level, index, hash| reported.push((level, index, *hash)));
                tree.push(*h);
                prop_assert_eq!(f.root(), root_of(&mut tree, f.size()).unwrap());
                prop_assert_eq!(f.hashes().len(), f.size().count_ones() as usize);
                for (level, index, hash) in f.subtrees() {
                    prop_assert_eq!(tree.subtree(level, index).unwrap(), hash);
                }
            }
            let mut want = Vec::new();
            for level in 1..64u32 {
                let width = 1u64 << level;
                for index in 0..n / width {
                    want.push((level, index));
                }
            }
            let mut got: Vec<(u32, u64)> = reported.iter().map(|(l, i, _)| (*l, *i)).collect();
            got.sort();
            want.sort();
            prop_assert_eq!(got, want);
            for (level, index, hash) in reported {
                let w = 1usize << level;
                let s = index as usize * w;
                prop_assert_eq!(hash, mth(&l[s..s + w]));
            }
        }
    }
}
