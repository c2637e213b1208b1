//! SHA-256 hashing with RFC 6962 domain separation, and the two text encodings of a hash.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::block_api::compress256;

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
    sha256(&[&[0x00], body])
}

/// SHA-256(0x01 || left || right): the hash of an interior node (RFC 6962 §2.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], left, right])
}

/// SHA-256's initial state (FIPS 180-4 §5.3.3).
const SHA256_INIT: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// Plain SHA-256 of the concatenated `parts`, for leaves, nodes, commitments and key ids. Whole
/// blocks go to the compression function straight from the parts; only the bytes around them
/// (and the padding) pass through a one-block buffer.
pub(crate) fn sha256(parts: &[&[u8]]) -> Hash {
    let mut state = SHA256_INIT;
    let mut block = [0u8; 64];
    let mut filled = 0usize;
    let mut total = 0u64;
    for part in parts {
        let mut rest: &[u8] = part;
        total += rest.len() as u64;
        if filled > 0 {
            let take = rest.len().min(64 - filled);
            block[filled..filled + take].copy_from_slice(&rest[..take]);
            filled += take;
            rest = &rest[take..];
            if filled < 64 {
                continue;
            }
            compress256(&mut state, &[block]);
        }
        let (blocks, tail) = rest.as_chunks::<64>();
        if !blocks.is_empty() {
            compress256(&mut state, blocks);
        }
        block[..tail.len()].copy_from_slice(tail);
        filled = tail.len();
    }
    // Padding: 0x80, zeros, and the length in bits (big-endian) in the last eight bytes.
    block[filled] = 0x80;
    block[filled + 1..].fill(0);
    if filled + 1 > 56 {
        compress256(&mut state, &[block]);
        block = [0; 64];
    }
    block[56..].copy_from_slice(&(total * 8).to_be_bytes());
    compress256(&mut state, &[block]);
    let mut out = [0u8; 32];
    for (bytes, word) in out.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    out
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
    decode_hash(s.as_bytes()).ok_or(HashError::HexDigit)
}

/// The value of each byte as a lowercase hex digit, 0xff for any other byte.
const HEX_VALUE: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Decodes exactly 64 lowercase hex digits; `None` for anything else. Eight digits at a time.
#[inline]
pub(crate) fn decode_hash(s: &[u8]) -> Option<Hash> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Adding 0x80 - c to an ASCII byte sets its top bit exactly when the byte is >= c (and
    // cannot carry into the next byte).
    const fn at_least(c: u8) -> u64 {
        ONES * (0x80 - c as u64)
    }
    let digits: &[u8; 64] = s.try_into().ok()?;
    let mut out = [0u8; 32];
    let mut invalid = 0u64;
    for k in 0..8 {
        let mut word = [0u8; 8];
        word.copy_from_slice(&digits[8 * k..8 * k + 8]);
        let w = u64::from_le_bytes(word);
        let above = |c: u8| w.wrapping_add(at_least(c));
        let digit = above(b'0') & !above(b'9' + 1);
        let letter = above(b'a') & !above(b'f' + 1);
        // Not ASCII, or neither a digit nor a-f. (For non-ASCII bytes the sums above may carry
        // into the next byte, but the first test already rejects the word.)
        invalid |= (w & HIGHS) | (!(digit | letter) & HIGHS);
        // Each byte's value: its low four bits, plus 9 for a-f.
        let nibbles = (w & (ONES * 0x0f)) + ((letter & HIGHS) >> 7) * 9;
        // Digit pairs (high, low) into one byte per 16-bit lane, then the lanes side by side.
        let lanes =
            ((nibbles & 0x00ff_00ff_00ff_00ff) << 4) | ((nibbles >> 8) & 0x00ff_00ff_00ff_00ff);
        let halves = (lanes | (lanes >> 8)) & 0x0000_ffff_0000_ffff;
        let packed = (halves | (halves >> 16)) as u32;
        out[4 * k..4 * k + 4].copy_from_slice(&packed.to_le_bytes());
    }
    (invalid == 0).then_some(out)
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
    s.bytes().all(|b| HEX_VALUE[usize::from(b)] < 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_agrees_with_the_sha2_hasher() {
        use sha2::{Digest, Sha256};
        let data: Vec<u8> = (0..400u32).map(|i| (i * 7 + i / 5) as u8).collect();
        for len in (0..200).chain([255, 256, 257, 399, 400]) {
            let bytes = &data[..len];
            let want: Hash = Sha256::digest(bytes).into();
            assert_eq!(sha256(&[bytes]), want, "{len}");
            for cut in [0, 1, 55, 56, 63, 64, 65, 130] {
                let (a, b) = bytes.split_at(cut.min(len));
                assert_eq!(sha256(&[a, b]), want, "{len} at {cut}");
                let (b1, b2) = b.split_at(b.len() / 2);
                assert_eq!(sha256(&[a, &[], b1, b2]), want, "{len} at {cut} in three");
            }
        }
    }

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
    fn decode_hash_agrees_with_the_hex_crate() {
        for seed in 0u8..64 {
            let h = leaf_hash(&[seed]);
            let text = to_hex(&h);
            assert_eq!(decode_hash(text.as_bytes()), Some(h));
            let mut bytes = text.clone().into_bytes();
            for bad in [
                b'g',
                b'A',
                b'F',
                b'/',
                b':',
                b'`',
                0x80,
                0xff,
                b' ',
                b'0' - 1,
            ] {
                bytes[usize::from(seed)] = bad;
                assert_eq!(decode_hash(&bytes), None, "{bad}");
            }
        }
        let all: String = "0123456789abcdef".repeat(4);
        let mut want = [0u8; 32];
        hex::decode_to_slice(&all, &mut want).unwrap();
        assert_eq!(decode_hash(all.as_bytes()), Some(want));
        assert_eq!(decode_hash(&all.as_bytes()[1..]), None);
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
