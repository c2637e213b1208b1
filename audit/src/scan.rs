//! Byte-level readers for the exact texts this crate writes: canonical leaf bodies, canonical JSON
//! payloads and export lines in the layout `serde_json` gives [`crate::ExportLine`].
//!
//! Each reader accepts only texts whose meaning it can decide exactly, and answers `None` for
//! anything else (other member orders, whitespace, unusual escapes, floats, deep nesting, bytes
//! that are not UTF-8...). The callers then take the general path (`serde_json`,
//! [`crate::LeafBody::parse`], [`crate::canonical_json`]), which gives the same result or the same
//! error. So these readers make the common case fast without changing what is accepted or how a
//! rejection reads.
//!
//! The readers work on bytes and check UTF-8 as they go: every byte of an accepted text is either
//! ASCII they matched or part of a string they checked, so an accepted text is valid UTF-8.

use std::cmp::Ordering;

use crate::body::BODY_VERSION;
use crate::bytes::{find_stop, utf16_cmp};
use crate::canon::MAX_SAFE_INTEGER;
use crate::hash::{Hash, decode_hash};

/// Deepest nesting of a payload the fast path checks; deeper payloads take the general path.
const MAX_DEPTH: u32 = 64;

/// Skips string content that needs no escape: ASCII from 0x20 other than `"` and `\`, and whole
/// UTF-8 characters. Returns the index of the byte that stops it (`"`, `\`, a control character,
/// or the end), or `None` at bytes that are not UTF-8.
#[inline(always)]
fn skip_text(s: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = find_stop::<true>(s, i);
        match s.get(i) {
            Some(&lead) if lead >= 0x80 => {
                let len = match lead {
                    0xc2..=0xdf => 2,
                    0xe0..=0xef => 3,
                    0xf0..=0xf4 => 4,
                    _ => return None,
                };
                std::str::from_utf8(s.get(i..i + len)?).ok()?;
                i += len;
            }
            _ => return Some(i),
        }
    }
}

/// The value of eight ASCII digits (the first in the lowest byte), or `None` if any byte is not
/// a digit.
#[inline(always)]
fn eight_digits(w: u64) -> Option<u64> {
    // A digit's high nibble is 3, and adding 6 keeps it 3.
    let high = w & 0xf0f0_f0f0_f0f0_f0f0;
    let plus_six = w.wrapping_add(0x0606_0606_0606_0606) & 0xf0f0_f0f0_f0f0_f0f0;
    if high | (plus_six >> 4) != 0x3333_3333_3333_3333 {
        return None;
    }
    // Pairs, then quads, then all eight (each step: high part times 10^k plus low part).
    let v = w & 0x0f0f_0f0f_0f0f_0f0f;
    let v = v.wrapping_mul(10 * 256 + 1) >> 8;
    let v = (v & 0x00ff_00ff_00ff_00ff).wrapping_mul(100 * 65536 + 1) >> 16;
    Some((v & 0x0000_ffff_0000_ffff).wrapping_mul(10_000 * (1 << 32) + 1) >> 32)
}

/// [`utf16_cmp`] of UTF-8 bytes; `None` if they are not UTF-8.
#[inline(always)]
fn utf16_cmp_bytes(x: &[u8], y: &[u8]) -> Option<Ordering> {
    match x.iter().zip(y).position(|(p, q)| p != q) {
        None => Some(x.len().cmp(&y.len())),
        Some(i) if x[i] < 0xee && y[i] < 0xee => Some(x[i].cmp(&y[i])),
        Some(_) => Some(utf16_cmp(
            std::str::from_utf8(x).ok()?,
            std::str::from_utf8(y).ok()?,
        )),
    }
}

/// Where [`body_members`] puts the body's bytes as it reads them (nowhere, or a buffer).
trait Sink {
    /// Appends `bytes`; `None` when they do not fit.
    fn put(&mut self, bytes: &[u8]) -> Option<()>;
}

impl Sink for () {
    #[inline(always)]
    fn put(&mut self, _: &[u8]) -> Option<()> {
        Some(())
    }
}

/// A fixed-size buffer and how much of it is used.
struct Fill<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl Sink for Fill<'_> {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.len + bytes.len();
        self.buf.get_mut(self.len..end)?.copy_from_slice(bytes);
        self.len = end;
        Some(())
    }
}

/// A position in bytes being read.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self::at(bytes, 0)
    }

    fn at(bytes: &'a [u8], pos: usize) -> Self {
        Self { bytes, pos }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    #[inline(always)]
    fn eat(&mut self, literal: &[u8]) -> Option<()> {
        let end = self.pos + literal.len();
        if self.bytes.get(self.pos..end)? == literal {
            self.pos = end;
            Some(())
        } else {
            None
        }
    }

    fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }

    /// `0` or `[1-9][0-9]*` that fits a u64.
    #[inline(always)]
    fn uint(&mut self) -> Option<u64> {
        let b = self.bytes;
        let first = *b.get(self.pos)?;
        if first == b'0' {
            self.pos += 1;
            return Some(0);
        }
        if !first.is_ascii_digit() {
            return None;
        }
        let mut n = 0u64;
        let mut i = self.pos;
        while let Some(chunk) = b.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let Some(eight) = eight_digits(u64::from_le_bytes(word)) else {
                break;
            };
            n = n.checked_mul(100_000_000)?.checked_add(eight)?;
            i += 8;
        }
        while let Some(&d) = b.get(i) {
            if !d.is_ascii_digit() {
                break;
            }
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            i += 1;
        }
        self.pos = i;
        Some(n)
    }

    /// An integer in canonical form (no `-0`) with magnitude at most 2^53 - 1.
    #[inline(always)]
    fn safe_int(&mut self) -> Option<i64> {
        let negative = self.eat(b"-").is_some();
        let n = self.uint()?;
        if n > MAX_SAFE_INTEGER || (negative && n == 0) {
            return None;
        }
        let n = i64::try_from(n).ok()?;
        Some(if negative { -n } else { n })
    }

    /// A string whose content needs no escape: the content.
    #[inline(always)]
    fn plain_str(&mut self) -> Option<&'a [u8]> {
        self.eat(b"\"")?;
        let start = self.pos;
        let end = skip_text(self.bytes, start)?;
        if self.bytes.get(end) != Some(&b'"') {
            return None;
        }
        self.pos = end + 1;
        self.bytes.get(start..end)
    }

    /// A string of exactly 64 lowercase hex digits, decoded.
    #[inline(always)]
    fn hash_str(&mut self) -> Option<Hash> {
        self.eat(b"\"")?;
        let hash = decode_hash(self.bytes.get(self.pos..self.pos + 64)?)?;
        self.pos += 64;
        self.eat(b"\"")?;
        Some(hash)
    }

    /// A string whose escapes are all of the short forms (`\"` `\\` `\/` `\b` `\f` `\n` `\r`
    /// `\t`), decoded onto the end of `out`. `\u` escapes are left to the general path.
    fn unescape_str(&mut self, out: &mut String) -> Option<()> {
        self.eat(b"\"")?;
        let b = self.bytes;
        let mut run = self.pos;
        loop {
            let at = skip_text(b, self.pos)?;
            out.push_str(std::str::from_utf8(b.get(run..at)?).ok()?);
            match *b.get(at)? {
                b'"' => {
                    self.pos = at + 1;
                    return Some(());
                }
                b'\\' => {
                    out.push(match *b.get(at + 1)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{08}',
                        b'f' => '\u{0c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        _ => return None,
                    });
                    self.pos = at + 2;
                    run = self.pos;
                }
                _ => return None,
            }
        }
    }

    /// A string in RFC 8785 form: only the escapes `canonical_json` writes.
    #[inline(always)]
    fn canonical_str(&mut self) -> Option<()> {
        self.eat(b"\"")?;
        let b = self.bytes;
        loop {
            let at = skip_text(b, self.pos)?;
            match *b.get(at)? {
                b'"' => {
                    self.pos = at + 1;
                    return Some(());
                }
                b'\\' => match *b.get(at + 1)? {
                    b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos = at + 2,
                    b'u' => {
                        // \u00xx, lowercase, only for the controls without a short form.
                        let hex = b.get(at + 2..at + 6)?;
                        if hex[0] != b'0' || hex[1] != b'0' {
                            return None;
                        }
                        let digit = |c: u8| match c {
                            b'0'..=b'9' => Some(c - b'0'),
                            b'a'..=b'f' => Some(c - b'a' + 10),
                            _ => None,
                        };
                        let code = digit(hex[2])? * 16 + digit(hex[3])?;
                        if code >= 0x20 || matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                            return None;
                        }
                        self.pos = at + 6;
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
    }

    /// A JSON value that is exactly its own RFC 8785 canonical form as [`crate::canonical_json`]
    /// writes it: no whitespace, members in strictly increasing UTF-16 order (so no duplicates),
    /// member names without escapes, canonical string escapes, integers within ±(2^53-1) (no
    /// `-0`), nesting at most `depth`.
    fn canonical_value(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'{' => {
                let depth = depth.checked_sub(1)?;
                self.pos += 1;
                if self.eat(b"}").is_some() {
                    return Some(());
                }
                let mut previous: &[u8] = &[];
                let mut first = true;
                loop {
                    let name = self.plain_str()?;
                    if !first && utf16_cmp_bytes(previous, name)? != Ordering::Less {
                        return None;
                    }
                    first = false;
                    previous = name;
                    self.eat(b":")?;
                    self.nested_value(depth)?;
                    match self.next()? {
                        b',' => {}
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'[' => {
                let depth = depth.checked_sub(1)?;
                self.pos += 1;
                if self.eat(b"]").is_some() {
                    return Some(());
                }
                loop {
                    self.nested_value(depth)?;
                    match self.next()? {
                        b',' => {}
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            _ => self.canonical_scalar(),
        }
    }

    /// A member or item: scalars are read here, containers by [`Cursor::canonical_value`].
    #[inline(always)]
    fn nested_value(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'{' | b'[' => self.canonical_value(depth),
            _ => self.canonical_scalar(),
        }
    }

    /// A string, literal or integer in canonical form.
    #[inline(always)]
    fn canonical_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.canonical_str(),
            b't' => self.eat(b"true"),
            b'f' => self.eat(b"false"),
            b'n' => self.eat(b"null"),
            b'-' | b'0'..=b'9' => self.safe_int().map(|_| ()),
            _ => None,
        }
    }
}

/// The fields of a leaf body the verifier needs. `origin` and `kind` are UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyRef<'a> {
    pub(crate) seq: u64,
    pub(crate) origin: &'a [u8],
    pub(crate) kind: &'a [u8],
    pub(crate) prev: Hash,
    pub(crate) subject_ref: Option<Hash>,
    pub(crate) payload_commit: Hash,
}

/// The text of a canonical leaf body around its values: before the first value, between each
/// two, and after the last. String values' quotes belong to this text, except those of the two
/// members that may be null (`request_id`, `subject_ref`).
const BODY_TEXT: [&[u8]; 12] = [
    b"{\"actor\":\"",
    b"\",\"at\":",
    b",\"entity\":\"",
    b"\",\"kind\":\"",
    b"\",\"origin\":\"",
    b"\",\"payload_commit\":\"",
    b"\",\"prev\":\"",
    b"\",\"request_id\":",
    b",\"seq\":",
    b",\"subject_ref\":",
    b",\"v\":",
    b"}",
];

/// [`BODY_TEXT`] as it appears inside a JSON string (each quote escaped).
const ESCAPED_BODY_TEXT: [&[u8]; 12] = [
    b"{\\\"actor\\\":\\\"",
    b"\\\",\\\"at\\\":",
    b",\\\"entity\\\":\\\"",
    b"\\\",\\\"kind\\\":\\\"",
    b"\\\",\\\"origin\\\":\\\"",
    b"\\\",\\\"payload_commit\\\":\\\"",
    b"\\\",\\\"prev\\\":\\\"",
    b"\\\",\\\"request_id\\\":",
    b",\\\"seq\\\":",
    b",\\\"subject_ref\\\":",
    b",\\\"v\\\":",
    b"}",
];

/// Reads the members of a body in the canonical layout, either as plain text or as it appears
/// escaped inside a JSON string (`ESCAPED`), and gives the body's own bytes to `sink`. Checks what
/// [`crate::LeafBody::parse`] checks: `v` == [`BODY_VERSION`], hex fields 64 lowercase hex, `seq`
/// and `at` within ±(2^53-1); and that strings are UTF-8 needing no escape.
fn body_members<'a, const ESCAPED: bool>(
    c: &mut Cursor<'a>,
    sink: &mut impl Sink,
) -> Option<BodyRef<'a>> {
    let bytes = c.bytes;
    // The text before value `i`, as read and as the body has it.
    macro_rules! before {
        ($i:expr) => {{
            c.eat(if ESCAPED {
                ESCAPED_BODY_TEXT[$i]
            } else {
                BODY_TEXT[$i]
            })?;
            sink.put(BODY_TEXT[$i])?;
        }};
    }
    // A string's content up to its closing quote (left for the text that follows).
    macro_rules! content {
        () => {{
            let start = c.pos;
            c.pos = skip_text(bytes, start)?;
            let s = bytes.get(start..c.pos)?;
            sink.put(s)?;
            s
        }};
    }
    macro_rules! hash {
        () => {{
            let hex = bytes.get(c.pos..c.pos + 64)?;
            let h = decode_hash(hex)?;
            c.pos += 64;
            sink.put(hex)?;
            h
        }};
    }
    macro_rules! quote {
        () => {{
            c.eat(if ESCAPED { b"\\\"" } else { b"\"" })?;
            sink.put(b"\"")?;
        }};
    }
    macro_rules! int {
        ($read:expr) => {{
            let start = c.pos;
            let n: u64 = $read?;
            sink.put(bytes.get(start..c.pos)?)?;
            if n > MAX_SAFE_INTEGER {
                return None;
            }
            n
        }};
    }
    before!(0);
    content!();
    before!(1);
    int!(c.safe_int().map(i64::unsigned_abs));
    before!(2);
    content!();
    before!(3);
    let kind = content!();
    before!(4);
    let origin = content!();
    before!(5);
    let payload_commit = hash!();
    before!(6);
    let prev = hash!();
    before!(7);
    if c.eat(b"null").is_some() {
        sink.put(b"null")?;
    } else {
        quote!();
        content!();
        quote!();
    }
    before!(8);
    let seq = int!(c.uint());
    before!(9);
    let subject_ref = if c.eat(b"null").is_some() {
        sink.put(b"null")?;
        None
    } else {
        quote!();
        let h = hash!();
        quote!();
        Some(h)
    };
    before!(10);
    if int!(c.uint()) != u64::from(BODY_VERSION) {
        return None;
    }
    before!(11);
    Some(BodyRef {
        seq,
        origin,
        kind,
        prev,
        subject_ref,
        payload_commit,
    })
}

/// Reads a leaf body that is exactly the canonical encoding ([`crate::LeafBody::encode`]) of a
/// body [`crate::LeafBody::parse`] accepts, with strings that need no escapes. `None` means "use
/// `LeafBody::parse`", which then decides (and names the problem).
pub(crate) fn canonical_body(text: &str) -> Option<BodyRef<'_>> {
    let mut c = Cursor::new(text.as_bytes());
    let body = body_members::<false>(&mut c, &mut ())?;
    c.at_end().then_some(body)
}

/// True when `text` is one JSON value that is exactly its own canonical form (see
/// [`Cursor::canonical_value`]), so `canonical_json(&serde_json::from_str(text)?) == text`.
#[cfg(test)]
pub(crate) fn is_canonical_json(text: &str) -> bool {
    let mut c = Cursor::new(text.as_bytes());
    c.canonical_value(MAX_DEPTH).is_some() && c.at_end()
}

/// An export line read by [`export_line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Returned by value and used at once, once per line; boxing the entry would allocate per line.
#[allow(clippy::large_enum_variant)]
pub(crate) enum FastLine<'a> {
    /// An entry.
    Entry {
        seq: u64,
        body: FastBody<'a>,
        leaf_hash: Hash,
        payload: FastPayload<'a>,
    },
    /// A checkpoint; its note was decoded onto the end of the scratch text from `note_start`.
    Checkpoint { note_start: usize },
}

/// An entry's body as read by [`export_line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FastBody<'a> {
    /// In the canonical layout: its fields; its bytes are [`Decoded::body`].
    Canonical { fields: BodyRef<'a> },
    /// Anything else: its text, decoded onto the end of the scratch text from `start`.
    Text { start: usize },
}

/// An entry's payload as read by [`export_line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FastPayload<'a> {
    /// The salt and the payload's JSON text, which is already canonical.
    Open { salt: Hash, data: &'a [u8] },
    /// Erased by this seq.
    Redacted(u64),
}

/// Longest body [`export_line`] reads in place; longer ones are decoded for the general path.
const BODY_ROOM: usize = 4096;

/// Where [`export_line`] puts decoded strings.
#[derive(Debug)]
pub(crate) struct Decoded {
    /// A body in the canonical layout: `body[..body_len]`.
    body: Vec<u8>,
    body_len: usize,
    /// Other bodies, and checkpoint notes.
    pub(crate) text: String,
}

impl Default for Decoded {
    fn default() -> Self {
        Self {
            body: vec![0; BODY_ROOM],
            body_len: 0,
            text: String::new(),
        }
    }
}

impl Decoded {
    /// The body read in the canonical layout by the last [`export_line`].
    pub(crate) fn body(&self) -> &[u8] {
        &self.body[..self.body_len]
    }
}

/// Reads the export line starting at `start` in `bytes`, in exactly the layout `serde_json`
/// writes for an entry (`type`, `seq`, `body`, `leaf_hash`, `payload` with `salt` and canonical
/// `data`, or `redacted_by`) or a checkpoint (`type`, `note`), ended by `\n` or the end of
/// `bytes`, with a stored leaf hash and salt of 64 lowercase hex digits. Returns what it read and
/// where the line ends (after its newline); an accepted line is valid UTF-8. Decoded strings go
/// in `out`. Anything else is `None`: the caller then parses the line with
/// `serde_json`, which gives the same values for every line read here.
pub(crate) fn export_line<'a>(
    bytes: &'a [u8],
    start: usize,
    out: &mut Decoded,
) -> Option<(FastLine<'a>, usize)> {
    let mut c = Cursor::at(bytes, start);
    c.eat(b"{\"type\":\"")?;
    let read = if c.eat(b"entry\",\"seq\":").is_some() {
        let seq = c.uint()?;
        c.eat(b",\"body\":")?;
        let body = read_body(&mut c, out)?;
        c.eat(b",\"leaf_hash\":")?;
        let leaf_hash = c.hash_str()?;
        c.eat(b",\"payload\":{\"")?;
        let payload = if c.eat(b"salt\":").is_some() {
            let salt = c.hash_str()?;
            c.eat(b",\"data\":")?;
            let start = c.pos;
            c.canonical_value(MAX_DEPTH)?;
            let data = bytes.get(start..c.pos)?;
            FastPayload::Open { salt, data }
        } else {
            c.eat(b"redacted_by\":")?;
            FastPayload::Redacted(c.uint()?)
        };
        c.eat(b"}}")?;
        FastLine::Entry {
            seq,
            body,
            leaf_hash,
            payload,
        }
    } else {
        c.eat(b"checkpoint\",\"note\":")?;
        let note_start = out.text.len();
        c.unescape_str(&mut out.text)?;
        c.eat(b"}")?;
        FastLine::Checkpoint { note_start }
    };
    if !c.at_end() {
        c.eat(b"\n")?;
    }
    Some((read, c.pos))
}

/// The `body` string of an entry line: read in place when the body inside is in the canonical
/// layout with no escapes of its own (so the string's only escapes are `\"`), else decoded.
fn read_body<'a>(c: &mut Cursor<'a>, out: &mut Decoded) -> Option<FastBody<'a>> {
    let open = c.pos;
    c.eat(b"\"")?;
    let mut inner = Cursor::at(c.bytes, c.pos);
    let mut fill = Fill {
        buf: &mut out.body,
        len: 0,
    };
    if let Some(fields) = body_members::<true>(&mut inner, &mut fill)
        && inner.eat(b"\"").is_some()
    {
        out.body_len = fill.len;
        c.pos = inner.pos;
        return Some(FastBody::Canonical { fields });
    }
    out.body_len = 0;
    c.pos = open;
    let start = out.text.len();
    c.unescape_str(&mut out.text)?;
    Some(FastBody::Text { start })
}

#[cfg(test)]
mod tests;
