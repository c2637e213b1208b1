//! Byte-level primitives the canonical form and the fast scanner share: finding the bytes a JSON
//! string must escape (eight at a time) and RFC 8785's member order.

use std::cmp::Ordering;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Index of the first byte at or after `i` that is `"`, `\`, a control character (< 0x20) or,
/// with `HIGH`, not ASCII; `s.len()` when there is none. Eight bytes at a time.
#[inline]
pub(crate) fn find_stop<const HIGH: bool>(s: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = s.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        // The lowest flagged byte of each test is exact (borrows only run towards higher bytes).
        let mut hits = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (w.wrapping_sub(ONES * 0x20) & !w);
        if HIGH {
            hits |= w;
        }
        let hits = hits & HIGHS;
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = s.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 || (HIGH && c >= 0x80) {
            return i;
        }
        i += 1;
    }
    s.len()
}

/// Index of the first byte at or after `i` that is `"`, `\` or a control character (< 0x20), or
/// `s.len()` when there is none.
#[inline]
pub(crate) fn find_special(s: &[u8], i: usize) -> usize {
    find_stop::<false>(s, i)
}

/// Index of the first `byte` at or after `i`, or `s.len()`. Eight bytes at a time.
#[inline]
pub(crate) fn find_byte(s: &[u8], mut i: usize, byte: u8) -> usize {
    let pattern = ONES * u64::from(byte);
    while let Some(chunk) = s.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ pattern;
        let hits = x.wrapping_sub(ONES) & !x & HIGHS;
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = s.get(i) {
        if c == byte {
            return i;
        }
        i += 1;
    }
    s.len()
}

/// RFC 8785 member order: UTF-16 code units. Byte order (which is code point order) agrees with
/// it unless the first difference involves a character at or above U+E000 (lead byte 0xEE and
/// up), where code points above U+FFFF (surrogate pairs) sort first in UTF-16.
pub(crate) fn utf16_cmp(a: &str, b: &str) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    match x.iter().zip(y).position(|(p, q)| p != q) {
        None => x.len().cmp(&y.len()),
        Some(i) if x[i] < 0xee && y[i] < 0xee => x[i].cmp(&y[i]),
        Some(_) => a.encode_utf16().cmp(b.encode_utf16()),
    }
}
