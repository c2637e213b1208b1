//! SHA-256 hashing with RFC 6962 domain separation, and the two text encodings of a hash.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, a node hash or a tree root.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of the empty string (RFC 6962 §2.1).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Why a hash in text form was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// Hex form: not exactly 64 characters.
    #[error("a hex hash must be exactly 64 characters, got {0}")]
    HexLength(usize),
    /// Hex form: a character outside `0-9a-f` (upper case is refused so one hash has one spelling).
    #[error("a hex hash must be lowercase hexadecimal (0-9, a-f)")]
    HexDigit,
    /// Base64 form: not valid standard base64 with padding.
    #[error("not valid base64: {0}")]
    Base64(String),
    /// Base64 form: decoded to the wrong number of bytes.
    #[error("a hash must be 32 bytes, got {0}")]
    Length(usize),
}

/// SHA-256(0x00 || body): the hash of a leaf (RFC 6962 §2.1).
pub fn leaf_hash(body: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(body);
    h.finalize().into()
}

/// SHA-256(0x01 || left || right): the hash of an interior node (RFC 6962 §2.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Plain SHA-256, for commitments and key ids.
pub(crate) fn sha256(parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Lowercase hex, 64 characters.
pub fn to_hex(h: &Hash) -> String {
    hex::encode(h)
}

/// Parses exactly 64 lowercase hex characters.
pub fn from_hex(s: &str) -> Result<Hash, HashError> {
    if s.len() != 64 {
        return Err(HashError::HexLength(s.len()));
    }
    if !is_lower_hex(s) {
        return Err(HashError::HexDigit);
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| HashError::HexDigit)?;
    Ok(out)
}

/// Standard base64 with padding (44 characters), as checkpoints carry roots.
pub fn to_b64(h: &Hash) -> String {
    STANDARD.encode(h)
}

/// Parses standard base64 (with padding) that decodes to exactly 32 bytes.
pub fn from_b64(s: &str) -> Result<Hash, HashError> {
    let bytes = STANDARD
        .decode(s)
        .map_err(|e| HashError::Base64(e.to_string()))?;
    Hash::try_from(bytes.as_slice()).map_err(|_| HashError::Length(bytes.len()))
}

/// True when every character is `0-9` or `a-f`.
pub(crate) fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(sha256(&[]), EMPTY_ROOT);
        assert_eq!(
            to_hex(&EMPTY_ROOT),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn leaf_and_node_hashes_match_rfc6962_reference() {
        // Reference values from the RFC 6962 test tree (leaf "" and the root over it and 0x00).
        assert_eq!(
            to_hex(&leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        let l0 = leaf_hash(b"");
        let l1 = leaf_hash(&[0x00]);
        assert_eq!(
            to_hex(&node_hash(&l0, &l1)),
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"
        );
    }

    #[test]
    fn hex_round_trip_and_strictness() {
        let h = leaf_hash(b"x");
        assert_eq!(from_hex(&to_hex(&h)), Ok(h));
        assert_eq!(from_hex("00"), Err(HashError::HexLength(2)));
        assert_eq!(
            from_hex(&to_hex(&h).to_uppercase()),
            Err(HashError::HexDigit)
        );
        let mut bad = to_hex(&h);
        bad.replace_range(0..1, "g");
        assert_eq!(from_hex(&bad), Err(HashError::HexDigit));
        // Multi-byte characters must not slip past the length check or panic.
        assert!(from_hex(&"é".repeat(32)).is_err());
    }

    #[test]
    fn b64_round_trip_and_strictness() {
        let h = leaf_hash(b"y");
        assert_eq!(from_b64(&to_b64(&h)), Ok(h));
        assert_eq!(from_b64(""), Err(HashError::Length(0)));
        assert_eq!(from_b64("ZG9uJ3QgY2FyZSAy"), Err(HashError::Length(12)));
        assert!(matches!(from_b64("!!!"), Err(HashError::Base64(_))));
        // Missing padding is refused: one hash, one spelling.
        assert!(from_b64(to_b64(&h).trim_end_matches('=')).is_err());
    }
}
