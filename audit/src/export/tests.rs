use super::*;
use crate::builder::{LedgerBuilder, NewEntry, render};
use crate::note::NoteSigner;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use serde_json::json;

const ORIGIN: &str = "accord.test/log";

/// The export verified line by line with [`LedgerVerifier::entry`] and
/// [`LedgerVerifier::checkpoint`], holding one line at a time: what [`verify_export`] must
/// agree with, result for result and failure for failure.
fn reference<R: BufRead>(
    input: R,
    pins: &[String],
    key: Option<NoteVerifier>,
) -> Result<Report, Failure> {
    reference_with(
        input,
        pins,
        key,
        VerifyOptions::default(),
        Tuning::default().max_line,
    )
}

fn reference_with<R: BufRead>(
    mut input: R,
    pins: &[String],
    key: Option<NoteVerifier>,
    options: VerifyOptions,
    max_line: usize,
) -> Result<Report, Failure> {
    let mut line = String::new();
    let mut line_no = 0u64;
    if !next_line(&mut input, &mut line, &mut line_no, max_line)? {
        return Err(Failure::general(
            "the export is empty: there is no header line",
        ));
    }
    let Ok(ExportLine::Header {
        origin,
        verifier_key,
        checkpoint,
        entries,
        ..
    }) = parse_line(&line)
    else {
        unreachable!("the tests keep the header intact")
    };
    let pinned = key.is_some();
    let key = key.unwrap_or_else(|| NoteVerifier::parse(&verifier_key).unwrap());
    let mut verifier = LedgerVerifier::new(&origin, key);
    if !pinned {
        verifier.set_key_from_data();
    }
    for pin in pins {
        verifier.pin(pin)?;
    }
    let signed = verifier.header_checkpoint(&checkpoint)?;
    check_header_count(entries, signed, options)?;
    let mut seen = 0u64;
    while next_line(&mut input, &mut line, &mut line_no, max_line)? {
        let parsed = parse_line(&line).map_err(|e| match e {
            LineError::Invalid(e) if !line.ends_with('\n') => Failure::general(format!(
                "line {line_no}: truncated: the last line is incomplete ({e})"
            )),
            e => Failure::general(format!("line {line_no}: {}", e.reason())),
        })?;
        match parsed {
            ExportLine::Header { .. } => {
                return Err(Failure::general(format!(
                    "line {line_no}: a second header line"
                )));
            }
            ExportLine::Entry {
                seq,
                body,
                leaf_hash,
                payload,
            } => {
                if seen == entries {
                    return Err(Failure::at_seq(
                        seq,
                        format!("the export has more entries than its header says ({entries})"),
                    ));
                }
                verifier.entry(seq, &body, &leaf_hash, &payload)?;
                seen += 1;
            }
            ExportLine::Checkpoint { note } => verifier.checkpoint(&note)?,
        }
    }
    if seen < entries {
        return Err(Failure::at_seq(
            seen,
            format!(
                "truncated: the export ends after {seen} entries but its header says {entries}"
            ),
        ));
    }
    verifier.finish_with(options.allow_unsigned_tail)
}

fn signer() -> NoteSigner {
    NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[5; 32])).unwrap()
}

/// Entries of every shape the readers distinguish: bodies that need escapes, payloads with
/// escapes, non-ASCII text, nesting, empty containers, negative numbers and erasures.
fn entry(i: u64) -> NewEntry {
    let actor = match i % 7 {
        0 => "svc:crm \"quoted\"".to_string(),
        1 => "user:zoë".to_string(),
        _ => format!("svc:crm-{}", i % 3),
    };
    NewEntry {
        at: 1_763_884_800_000_000 + i as i64 * 977 - 5_000,
        actor,
        kind: "consent.recorded".into(),
        entity: format!("consent:s{}/marketing.email/any", i % 5),
        subject_ref: (!i.is_multiple_of(4)).then(|| format!("{:064x}", i % 3)),
        request_id: (!i.is_multiple_of(3)).then(|| format!("req-{i}")),
        payload: json!({
            "subject": format!("s{}", i % 5),
            "note": if i.is_multiple_of(5) { "line\nbreak \"q\" \\ \u{1} é 😀" } else { "plain" },
            "n": i,
            "neg": -(i as i64),
            "nested": {"list": [1, {"b": null, "a": true}, []], "empty": {}},
            "\u{e000}": 1,
            "\u{1f600}": 2,
        }),
        salt: [(i as u8).wrapping_mul(13).wrapping_add(3); 32],
    }
}

/// `n` entries, a checkpoint every 40, erasures now and then (each of the two latest entries
/// of one subject); the export text.
fn export(n: u64) -> String {
    let mut b = LedgerBuilder::new(ORIGIN, signer());
    for i in 0..n {
        if i % 29 == 28 {
            let s = b.size();
            let subject = Some(format!("{:064x}", s % 3));
            let mut seqs: Vec<u64> = (s - 12..s)
                .rev()
                .filter(|&k| entry(k).subject_ref == subject)
                .take(2)
                .collect();
            seqs.reverse();
            let mut erasure = entry(i);
            erasure.subject_ref = subject;
            b.erase(&seqs, erasure).unwrap();
        } else {
            b.append(entry(i)).unwrap();
        }
        if i % 40 == 39 {
            b.checkpoint().unwrap();
        }
    }
    b.export().unwrap()
}

fn tunings() -> [Tuning; 4] {
    let max_line = Tuning::default().max_line;
    [
        Tuning::default(),
        Tuning {
            threads: Some(1),
            job_bytes: 1,
            max_line,
        },
        Tuning {
            threads: Some(3),
            job_bytes: 700,
            max_line,
        },
        Tuning {
            threads: Some(4),
            job_bytes: 5000,
            max_line,
        },
    ]
}

fn check(text: &[u8], pins: &[String]) {
    let want = reference(text, pins, None);
    for tuning in tunings() {
        let got = verify_export_with(text, pins, None, VerifyOptions::default(), tuning);
        assert_eq!(got, want, "{tuning:?}");
    }
}

#[test]
fn intact_export_agrees_with_the_reference() {
    let text = export(200);
    let report = verify_export(text.as_bytes(), &[], None, VerifyOptions::default()).unwrap();
    assert_eq!(report.entries, 200);
    assert!(report.redacted > 0);
    check(text.as_bytes(), &[]);
    let no_newline = text.trim_end();
    check(no_newline.as_bytes(), &[]);
}

/// A line at a time from a slice, then an error.
struct FailingAfter<'a> {
    data: &'a [u8],
    ok: usize,
}

impl std::io::Read for FailingAfter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.ok == 0 {
            return Err(std::io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.ok).min(self.data.len()).min(97);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.ok -= n;
        Ok(n)
    }
}

#[test]
fn read_errors_are_reported_after_the_lines_before_them() {
    let text = export(60);
    for ok in [0, 100, text.len() / 3, text.len() / 2 + 7] {
        let reader = || {
            std::io::BufReader::with_capacity(
                64,
                FailingAfter {
                    data: text.as_bytes(),
                    ok,
                },
            )
        };
        let want = reference(reader(), &[], None);
        assert!(
            want.as_ref()
                .is_err_and(|f| f.reason.contains("disk on fire"))
        );
        for tuning in tunings() {
            assert_eq!(
                verify_export_with(reader(), &[], None, VerifyOptions::default(), tuning),
                want
            );
        }
    }
    // An earlier failure comes first.
    let tampered = text.replacen("svc:crm-1", "svc:crm-2", 1);
    let reader = std::io::BufReader::new(FailingAfter {
        data: tampered.as_bytes(),
        ok: tampered.len() - 10,
    });
    let f = verify_export(reader, &[], None, VerifyOptions::default()).unwrap_err();
    assert!(f.reason.contains("leaf hash does not match body"), "{f}");
}

#[test]
fn over_long_lines_are_refused_like_the_line_reader_does() {
    let text = export(30);
    let longest = text.lines().map(str::len).max().unwrap();
    for max_line in [200, longest - 1, longest, longest + 1, 3 * longest] {
        let mut long = text.replacen("plain", &"x".repeat(2 * longest), 1);
        for data in [text.as_bytes().to_vec(), long.clone().into_bytes(), {
            // Not UTF-8 just inside and just outside the limit.
            let at = long.find(&"x".repeat(100)).unwrap();
            long.replace_range(at..at + 1, "é");
            let mut bytes = long.into_bytes();
            bytes[at + 1] = b'x';
            bytes
        }] {
            let want = reference_with(&data[..], &[], None, VerifyOptions::default(), max_line);
            for job_bytes in [1, 300, 4096] {
                let tuning = Tuning {
                    threads: Some(2),
                    job_bytes,
                    max_line,
                };
                let got =
                    verify_export_with(&data[..], &[], None, VerifyOptions::default(), tuning);
                assert_eq!(got, want, "{tuning:?}");
            }
            long = text.replacen("plain", &"x".repeat(2 * longest), 1);
        }
    }
}

#[derive(Debug, Clone)]
enum Tamper {
    Flip { at: usize, byte: u8 },
    Insert { at: usize, text: &'static str },
    Delete { at: usize, len: usize },
    SwapLines { a: usize, b: usize },
    DropLine(usize),
    RepeatLine(usize),
    Truncate(usize),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    let at = any::<prop::sample::Index>();
    prop_oneof![
        (at.clone(), any::<u8>()).prop_map(|(i, byte)| Tamper::Flip {
            at: i.index(usize::MAX),
            byte
        }),
        (
            at.clone(),
            prop::sample::select(vec![" ", "\\n", "\\u0041", "\n", "\u{e9}", "\u{ff}", "1"])
        )
            .prop_map(|(i, text)| Tamper::Insert {
                at: i.index(usize::MAX),
                text
            }),
        (at.clone(), 1usize..4).prop_map(|(i, len)| Tamper::Delete {
            at: i.index(usize::MAX),
            len
        }),
        (at.clone(), at.clone()).prop_map(|(a, b)| Tamper::SwapLines {
            a: a.index(usize::MAX),
            b: b.index(usize::MAX)
        }),
        at.clone()
            .prop_map(|i| Tamper::DropLine(i.index(usize::MAX))),
        at.clone()
            .prop_map(|i| Tamper::RepeatLine(i.index(usize::MAX))),
        at.prop_map(|i| Tamper::Truncate(i.index(usize::MAX))),
    ]
}

/// Applies `t` to the lines after the header (which stays intact).
fn apply(text: &str, t: &Tamper) -> Vec<u8> {
    let header_end = text.find('\n').unwrap() + 1;
    let (header, body) = text.as_bytes().split_at(header_end);
    let mut body = body.to_vec();
    let mut lines: Vec<Vec<u8>> = body
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    let n = lines.len();
    match *t {
        Tamper::Flip { at, byte } => {
            let i = at % body.len();
            body[i] = byte;
        }
        Tamper::Insert { at, text } => {
            let i = at % body.len();
            body.splice(i..i, text.bytes());
        }
        Tamper::Delete { at, len } => {
            let i = at % body.len();
            body.drain(i..(i + len).min(body.len()));
        }
        Tamper::SwapLines { a, b } => {
            lines.swap(a % n, b % n);
            body = lines.concat();
        }
        Tamper::DropLine(i) => {
            lines.remove(i % n);
            body = lines.concat();
        }
        Tamper::RepeatLine(i) => {
            let l = lines[i % n].clone();
            lines.insert(i % n, l);
            body = lines.concat();
        }
        Tamper::Truncate(at) => body.truncate(at % body.len()),
    }
    [header, &body[..]].concat()
}

/// Whether the lines after the header of `tampered` say what those of `text` say: every line
/// reads as an export line, the entries are the same in the same order, and each checkpoint
/// is one of the original's (dropped, repeated or moved). Any other change must fail.
fn same_meaning(text: &str, tampered: &[u8]) -> bool {
    fn read(bytes: &[u8]) -> Option<(Vec<ExportLine>, Vec<ExportLine>)> {
        let start = bytes.iter().position(|&b| b == b'\n')? + 1;
        let (mut entries, mut checkpoints) = (Vec::new(), Vec::new());
        for line in bytes[start..].split_inclusive(|&b| b == b'\n') {
            match parse_line(std::str::from_utf8(line).ok()?).ok()? {
                e @ ExportLine::Entry { .. } => entries.push(e),
                c @ ExportLine::Checkpoint { .. } => checkpoints.push(c),
                ExportLine::Header { .. } => return None,
            }
        }
        Some((entries, checkpoints))
    }
    match (read(text.as_bytes()), read(tampered)) {
        (Some((entries, checkpoints)), Some((kept, notes))) => {
            entries == kept && notes.iter().all(|n| checkpoints.contains(n))
        }
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever is done to the lines, the batched, parallel verification reports exactly
    /// what the line-by-line verification reports, and unless the change leaves what the
    /// lines say intact, that is a failure.
    #[test]
    fn tampered_exports_fail_exactly_as_line_by_line(t in tamper()) {
        static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let text = TEXT.get_or_init(|| export(90));
        let tampered = apply(text, &t);
        let want = reference(&tampered[..], &[], None);
        if !same_meaning(text, &tampered) {
            prop_assert!(want.is_err(), "{:?} passed: {:?}", t, want);
        }
        for tuning in tunings() {
            let got = verify_export_with(&tampered[..], &[], None, VerifyOptions::default(), tuning);
            prop_assert_eq!(&got, &want, "{:?}", tuning);
        }
    }
}

#[test]
fn changes_that_keep_the_meaning_are_told_apart() {
    let text = export(30);
    assert!(same_meaning(&text, text.as_bytes()));
    assert!(same_meaning(&text, text.trim_end().as_bytes()));
    let spaced = text.replacen("\"data\":{", "\"data\": {", 1);
    assert!(same_meaning(&text, spaced.as_bytes()));
    assert!(verify_export(spaced.as_bytes(), &[], None, VerifyOptions::default()).is_ok());
    let tampered = text.replacen("plain", "plaim", 1);
    assert!(!same_meaning(&text, tampered.as_bytes()));
    assert!(!same_meaning(&text, format!("{text}\n").as_bytes()));
}

/// `text` with `from` replaced by `to` once in the line starting with `prefix`, and that
/// line's number.
fn edit_line(text: &str, prefix: &str, from: &str, to: &str) -> (String, usize) {
    let mut at = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if line.starts_with(prefix) {
            assert!(line.contains(from), "{line} has no {from:?}");
            let edited = line.replacen(from, to, 1);
            let out = format!("{}{edited}{}", &text[..at], &text[at + line.len()..]);
            return (out, i + 1);
        }
        at += line.len();
    }
    panic!("no line starts with {prefix:?}")
}

/// The failure names the line and the repeated name, and every reading agrees.
fn expect_duplicate(text: &str, line: usize, name: &str, at: &str) {
    let f = verify_export(text.as_bytes(), &[], None, VerifyOptions::default()).unwrap_err();
    assert_eq!((f.seq, f.checkpoint_size), (None, None), "{f}");
    let want = format!("line {line}: duplicate member name {name:?}");
    assert!(
        f.reason.starts_with(&want),
        "{f} should start with {want:?}"
    );
    assert!(
        f.reason.contains(&format!("(at {at})")),
        "{f} should say where"
    );
    check(text.as_bytes(), &[]);
}

#[test]
fn duplicate_member_names_are_refused_naming_the_line() {
    let text = export(30);
    let entry5 = "{\"type\":\"entry\",\"seq\":5,";
    // In the payload data: `serde_json` keeps the last value, which is the committed one, so
    // only the check of names tells this line from the real one.
    let (forged, n) = edit_line(
        &text,
        entry5,
        "\"data\":{",
        "\"data\":{\"note\":\"forged\",",
    );
    assert!(forged.contains("\"note\":\"forged\""));
    expect_duplicate(&forged, n, "note", "$.payload.data.note");
    let (nested, n) = edit_line(&text, entry5, "\"nested\":{", "\"nested\":{\"empty\":[1],");
    expect_duplicate(&nested, n, "empty", "$.payload.data.nested.empty");
    // In the payload, the entry object and the entry's body.
    let salt = "\"payload\":{\"salt\":";
    let (payload, n) = edit_line(&text, entry5, salt, &format!("{salt}\"00\",\"salt\":"));
    expect_duplicate(&payload, n, "salt", "$.payload.salt");
    let (object, n) = edit_line(&text, entry5, "\"seq\":5,", "\"seq\":5,\"seq\":5,");
    expect_duplicate(&object, n, "seq", "$.seq");
    let (body, n) = edit_line(
        &text,
        entry5,
        "{\\\"actor\\\":",
        "{\\\"at\\\":1,\\\"actor\\\":",
    );
    expect_duplicate(&body, n, "at", "$.at");
    let f = verify_export(body.as_bytes(), &[], None, VerifyOptions::default()).unwrap_err();
    assert!(f.reason.contains("in the entry's body"), "{f}");
    // In a checkpoint line, and in the header.
    let (cp, n) = edit_line(
        &text,
        "{\"type\":\"checkpoint\"",
        "\"note\":",
        "\"note\":\"x\",\"note\":",
    );
    expect_duplicate(&cp, n, "note", "$.note");
    let (header, n) = edit_line(
        &text,
        "{\"type\":\"header\"",
        "\"entries\":",
        "\"entries\":0,\"entries\":",
    );
    assert_eq!(n, 1);
    let f = verify_export(header.as_bytes(), &[], None, VerifyOptions::default()).unwrap_err();
    assert!(
        f.reason
            .starts_with("line 1: duplicate member name \"entries\" (at $.entries)"),
        "{f}"
    );
}

#[test]
fn members_other_than_the_formats_are_refused() {
    let text = export(30);
    let entry5 = "{\"type\":\"entry\",\"seq\":5,";
    // An open payload that also claims to be redacted.
    let (both, n) = edit_line(
        &text,
        entry5,
        "\"payload\":{",
        "\"payload\":{\"redacted_by\":9,",
    );
    let f = verify_export(both.as_bytes(), &[], None, VerifyOptions::default()).unwrap_err();
    assert!(
        f.reason
            .starts_with(&format!("line {n}: not a valid export line")),
        "{f}"
    );
    check(both.as_bytes(), &[]);
    for (prefix, at) in [
        (entry5, "\"seq\":5,"),
        ("{\"type\":\"checkpoint\"", "\"note\":"),
        ("{\"type\":\"header\"", "\"entries\":"),
    ] {
        let (extra, n) = edit_line(&text, prefix, at, &format!("\"redacted\":true,{at}"));
        let f = verify_export(extra.as_bytes(), &[], None, VerifyOptions::default()).unwrap_err();
        assert!(f.reason.starts_with(&format!("line {n}: ")), "{f}");
        assert!(f.reason.contains("unknown field `redacted`"), "{f}");
    }
}

#[test]
fn pins_and_render_agree_with_the_reference() {
    let mut b = LedgerBuilder::new(ORIGIN, signer());
    let mut pins = Vec::new();
    for i in 0..80 {
        b.append(entry(i)).unwrap();
        if i % 25 == 3 {
            pins.push(b.checkpoint_note().unwrap());
        }
    }
    let text = b.export().unwrap();
    check(text.as_bytes(), &pins);
    // Checkpoints given ahead of their entries, and a header rendered by the builder.
    let lines = b.lines().to_vec();
    let mut moved = lines.clone();
    let cp = moved.pop().unwrap();
    moved.insert(3, cp);
    let note = b.checkpoint_note().unwrap();
    let text = render(&b.header(note), &moved);
    check(text.as_bytes(), &pins);
}
