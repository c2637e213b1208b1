use super::*;
use crate::builder::{LedgerBuilder, NewEntry, render};
use crate::checkpoint::Checkpoint;
use crate::export::{ExportLine, VerifyOptions, verify_export};
use crate::note::NoteSigner;
use ed25519_dalek::SigningKey;
use serde_json::json;

const ORIGIN: &str = "accord.test/log";

fn signer(n: u8) -> NoteSigner {
    NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[n; 32])).unwrap()
}

fn new_entry(i: u64, flavour: &str) -> NewEntry {
    NewEntry {
        at: 1_763_884_800_000_000 + i as i64 * 1_000,
        actor: "svc:crm".into(),
        kind: "consent.recorded".into(),
        entity: format!("consent:s{}/marketing.email/any", i % 3),
        subject_ref: Some(subject_ref(i % 3)),
        request_id: Some(format!("req-{i}")),
        payload: json!({
            "subject": format!("s{}", i % 3),
            "purpose": "marketing.email",
            "decision": "granted",
            "flavour": flavour,
            "n": i,
        }),
        salt: [(i as u8).wrapping_mul(7).wrapping_add(1); 32],
    }
}

/// The `subject_ref` of subject `s{n}`.
fn subject_ref(n: u64) -> String {
    to_hex(&leaf_hash(&n.to_be_bytes()))
}

/// 12 entries: checkpoints at 3 and 7, an erasure (seq 10) of seqs 1 and 4 (all three of
/// subject s1), a final checkpoint at 12.
fn build(key: u8, flavour: &str) -> LedgerBuilder {
    let mut b = LedgerBuilder::new(ORIGIN, signer(key));
    for i in 0..10 {
        b.append(new_entry(i, flavour)).unwrap();
        if i == 2 || i == 6 {
            b.checkpoint().unwrap();
        }
    }
    b.erase(&[1, 4], new_entry(10, flavour)).unwrap();
    b.append(new_entry(11, flavour)).unwrap();
    b.checkpoint().unwrap();
    b
}

struct Export {
    header: ExportLine,
    lines: Vec<ExportLine>,
}

fn export() -> Export {
    let mut b = build(1, "a");
    let text = b.export().unwrap();
    let mut all: Vec<ExportLine> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let header = all.remove(0);
    Export { header, lines: all }
}

impl Export {
    fn run(&self, pins: &[String]) -> Result<Report, Failure> {
        let text = render(&self.header, &self.lines);
        verify_export(text.as_bytes(), pins, None, VerifyOptions::default())
    }

    fn entry_index(&self, seq: u64) -> usize {
        self.lines
            .iter()
            .position(|l| matches!(l, ExportLine::Entry { seq: s, .. } if *s == seq))
            .unwrap()
    }

    fn checkpoint_index(&self, size: u64) -> usize {
        self.lines
            .iter()
            .position(|l| match l {
                ExportLine::Checkpoint { note } => {
                    Checkpoint::peek_unverified(note).unwrap().size == size
                }
                _ => false,
            })
            .unwrap()
    }

    fn body_mut(&mut self, seq: u64) -> (&mut String, &mut String, &mut PayloadRecord) {
        let i = self.entry_index(seq);
        match &mut self.lines[i] {
            ExportLine::Entry {
                body,
                leaf_hash,
                payload,
                ..
            } => (body, leaf_hash, payload),
            _ => unreachable!(),
        }
    }
}

fn expect_seq(result: Result<Report, Failure>, seq: u64, words: &str) -> Failure {
    let f = result.unwrap_err();
    assert_eq!(f.seq, Some(seq), "{f}");
    assert!(f.reason.contains(words), "{f} should mention {words:?}");
    assert!(f.to_string().starts_with(&format!("seq {seq}: ")), "{f}");
    f
}

fn expect_checkpoint(result: Result<Report, Failure>, size: u64, words: &str) -> Failure {
    let f = result.unwrap_err();
    assert_eq!(f.checkpoint_size, Some(size), "{f}");
    assert_eq!(f.seq, None, "{f}");
    assert!(
        f.to_string().contains(words),
        "{f} should mention {words:?}"
    );
    f
}

#[test]
fn intact_ledger_passes() {
    let e = export();
    let report = e.run(&[]).unwrap();
    assert_eq!(report.entries, 12);
    assert_eq!(report.size, 12);
    assert_eq!((report.signed_size, report.unsigned_tail), (12, 0));
    assert!(!report.key_pinned);
    assert_eq!(report.checkpoints, 3);
    assert_eq!(report.pins, 0);
    assert_eq!(report.redacted, 2);
    assert_eq!(report.root, to_hex(&build(1, "a").root()));
}

#[test]
fn pins_of_the_same_log_pass() {
    let mut b = LedgerBuilder::new(ORIGIN, signer(1));
    let mut pins = Vec::new();
    for i in 0..12 {
        b.append(new_entry(i, "a")).unwrap();
        if i == 4 || i == 8 {
            pins.push(b.checkpoint_note().unwrap());
        }
    }
    let text = b.export().unwrap();
    let report = verify_export(text.as_bytes(), &pins, None, VerifyOptions::default()).unwrap();
    assert_eq!(report.pins, 2);
    assert_eq!(report.checkpoints, 1);
}

#[test]
fn flipped_body_byte_is_named() {
    let mut e = export();
    let (body, _, _) = e.body_mut(5);
    *body = body.replacen("svc:crm", "svc:crn", 1);
    expect_seq(e.run(&[]), 5, "leaf hash does not match body");
}

#[test]
fn rehashed_body_breaks_the_chain() {
    let mut e = export();
    let (body, leaf, _) = e.body_mut(5);
    *body = body.replacen("svc:crm", "svc:crn", 1);
    *leaf = to_hex(&leaf_hash(body.as_bytes()));
    expect_seq(e.run(&[]), 6, "prev does not match the leaf hash of seq 5");
}

#[test]
fn wrong_prev_is_named() {
    let mut e = export();
    let (body, leaf, _) = e.body_mut(5);
    let mut parsed = LeafBody::parse(body).unwrap();
    parsed.prev = "00".repeat(32);
    *body = parsed.encode();
    *leaf = to_hex(&parsed.leaf_hash());
    expect_seq(e.run(&[]), 5, "prev does not match the leaf hash of seq 4");
}

#[test]
fn non_canonical_body_is_named() {
    let mut e = export();
    let (body, leaf, _) = e.body_mut(3);
    *body = body.replacen(",", ", ", 1);
    *leaf = to_hex(&leaf_hash(body.as_bytes()));
    expect_seq(e.run(&[]), 3, "body is not canonical");
}

#[test]
fn bad_stored_leaf_hash_is_named() {
    let mut e = export();
    let (_, leaf, _) = e.body_mut(2);
    *leaf = "zz".repeat(32);
    expect_seq(e.run(&[]), 2, "stored leaf hash");
}

#[test]
fn deleted_entry_is_named() {
    let mut e = export();
    let i = e.entry_index(5);
    e.lines.remove(i);
    expect_seq(e.run(&[]), 5, "expected seq 5, found seq 6");
}

#[test]
fn swapped_entries_are_named() {
    let mut e = export();
    let (i, j) = (e.entry_index(5), e.entry_index(6));
    e.lines.swap(i, j);
    expect_seq(e.run(&[]), 5, "expected seq 5");
}

#[test]
fn duplicated_entry_is_named() {
    let mut e = export();
    let i = e.entry_index(5);
    let dup = e.lines[i].clone();
    e.lines.insert(i + 1, dup);
    expect_seq(e.run(&[]), 6, "expected seq 6, found seq 5");
}

#[test]
fn renumbered_entry_is_named() {
    // Rows swapped behind the seq column: the body still says where it belongs.
    let mut e = export();
    let (i, j) = (e.entry_index(5), e.entry_index(6));
    e.lines.swap(i, j);
    if let ExportLine::Entry { seq, .. } = &mut e.lines[i] {
        *seq = 5;
    }
    if let ExportLine::Entry { seq, .. } = &mut e.lines[j] {
        *seq = 6;
    }
    expect_seq(e.run(&[]), 5, "expected seq 5, but the body says seq 6");
}

#[test]
fn altered_payload_is_named() {
    let mut e = export();
    let (_, _, payload) = e.body_mut(6);
    if let PayloadRecord::Open { data, .. } = payload {
        data["decision"] = json!("withdrawn");
    }
    expect_seq(e.run(&[]), 6, "payload does not match its commitment");
    let mut e = export();
    let (_, _, payload) = e.body_mut(6);
    if let PayloadRecord::Open { salt, .. } = payload {
        *salt = "00".repeat(32);
    }
    expect_seq(e.run(&[]), 6, "payload does not match its commitment");
    let mut e = export();
    let (_, _, payload) = e.body_mut(6);
    if let PayloadRecord::Open { salt, .. } = payload {
        salt.pop();
    }
    expect_seq(e.run(&[]), 6, "salt");
    let mut e = export();
    let (_, _, payload) = e.body_mut(6);
    if let PayloadRecord::Open { data, .. } = payload {
        data["n"] = json!(6.5);
    }
    expect_seq(e.run(&[]), 6, "$.n");
}

#[test]
fn truncated_export_is_named() {
    let mut e = export();
    let i = e.entry_index(9);
    e.lines.truncate(i);
    expect_seq(e.run(&[]), 9, "truncated");
    // Even when the header's count is edited to match, it no longer matches its checkpoint.
    if let ExportLine::Header { entries, .. } = &mut e.header {
        *entries = 9;
    }
    expect_header_count(e.run(&[]), 9, 12);
}

/// The failure is line 1's and names both numbers.
fn expect_header_count(result: Result<Report, Failure>, entries: u64, size: u64) -> Failure {
    let f = result.unwrap_err();
    assert_eq!((f.seq, f.checkpoint_size), (None, None), "{f}");
    let want =
        format!("line 1: the header says {entries} entries, but its checkpoint is at size {size}");
    assert!(
        f.reason.starts_with(&want),
        "{f} should start with {want:?}"
    );
    f
}

#[test]
fn header_count_must_equal_its_checkpoint_size() {
    // Fewer: refused whatever the options.
    let mut e = export();
    if let ExportLine::Header { entries, .. } = &mut e.header {
        *entries = 11;
    }
    expect_header_count(e.run(&[]), 11, 12);
    let text = render(&e.header, &e.lines);
    let allow = VerifyOptions {
        allow_unsigned_tail: true,
    };
    expect_header_count(verify_export(text.as_bytes(), &[], None, allow), 11, 12);
    // More: refused, saying how to accept an unsigned tail.
    let mut e = export();
    if let ExportLine::Header { entries, .. } = &mut e.header {
        *entries = 13;
    }
    let f = expect_header_count(e.run(&[]), 13, 12);
    assert!(f.reason.contains("--allow-unsigned-tail"), "{f}");
}

#[test]
fn extra_entries_beyond_the_header_count_fail() {
    // A header whose checkpoint and count agree on an earlier size.
    let mut e = export();
    let i = e.checkpoint_index(7);
    let ExportLine::Checkpoint { note } = e.lines[i].clone() else {
        unreachable!()
    };
    if let ExportLine::Header {
        entries,
        checkpoint,
        ..
    } = &mut e.header
    {
        *entries = 7;
        *checkpoint = note;
    }
    expect_seq(e.run(&[]), 7, "more entries than its header says (7)");
}

/// Feeds entry and checkpoint lines one by one, as the server feeds its database.
pub(super) fn feed_lines(v: &mut LedgerVerifier, lines: &[ExportLine]) -> Result<(), Failure> {
    for line in lines {
        match line {
            ExportLine::Entry {
                seq,
                body,
                leaf_hash,
                payload,
            } => v.entry(*seq, body, leaf_hash, payload)?,
            ExportLine::Checkpoint { note } => v.checkpoint(note)?,
            ExportLine::Header { .. } => unreachable!(),
        }
    }
    Ok(())
}

/// `lines` fed one by one to a verifier with the log key, as the server feeds its database,
/// ended by `finish` (`None`) or `finish_with`.
fn online(lines: &[ExportLine], allow_unsigned_tail: Option<bool>) -> Result<Report, Failure> {
    let mut v = LedgerVerifier::new(ORIGIN, signer(1).verifier());
    feed_lines(&mut v, lines)?;
    match allow_unsigned_tail {
        None => v.finish(),
        Some(allow) => v.finish_with(allow),
    }
}

const ALLOW_TAIL: VerifyOptions = VerifyOptions {
    allow_unsigned_tail: true,
};

/// The hole an outside review found: take an export, append a correctly chained erasure
/// entry after the last signed entry (no key needed), redact a signed entry with it and
/// count the new entry in the header.
#[test]
fn an_erasure_appended_without_the_key_cannot_hide_a_signed_entry() {
    let mut b = build(1, "a");
    let real = b.export().unwrap();
    assert!(verify_export(real.as_bytes(), &[], None, VerifyOptions::default()).is_ok());
    // Seq 6, signed, is subject s0's; the forged erasure names that subject, as it must.
    let mut erasure = new_entry(12, "a");
    erasure.subject_ref = Some(subject_ref(0));
    assert_eq!(b.erase(&[6], erasure).unwrap(), 12);
    let forged = b.export_unsigned().unwrap();
    assert!(forged.contains(r#""redacted_by":12"#));
    let key = || Some(signer(1).verifier());
    for k in [None, key()] {
        let f = verify_export(forged.as_bytes(), &[], k, VerifyOptions::default());
        expect_header_count(f, 13, 12);
    }
    // Accepting an unsigned tail accepts the entry, not the redaction it claims.
    for k in [None, key()] {
        let f = verify_export(forged.as_bytes(), &[], k, ALLOW_TAIL);
        let f = expect_seq(f, 6, "redaction is not covered by a signed erasure");
        assert!(f.reason.contains("seq 12"), "{f}");
    }
    // With the header's count left as it was, the extra entry is refused.
    let mut lines: Vec<ExportLine> = forged
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut header = lines.remove(0);
    if let ExportLine::Header { entries, .. } = &mut header {
        *entries = 12;
    }
    let text = render(&header, &lines);
    let f = verify_export(text.as_bytes(), &[], None, VerifyOptions::default());
    expect_seq(f, 12, "more entries than its header says");
    // Fed entry by entry: `finish_with` refuses it; the live-ledger `finish` reports how far
    // the signatures reach.
    let f = expect_seq(
        online(b.lines(), Some(false)),
        6,
        "not covered by a signed erasure",
    );
    assert!(f.reason.contains("seq 12"), "{f}");
    expect_seq(
        online(b.lines(), Some(true)),
        6,
        "not covered by a signed erasure",
    );
    let report = online(b.lines(), None).unwrap();
    assert_eq!((report.signed_size, report.unsigned_tail), (12, 1));
    // Once a checkpoint signs the erasure, it counts.
    b.checkpoint().unwrap();
    let report = online(b.lines(), Some(false)).unwrap();
    assert_eq!(
        (report.signed_size, report.unsigned_tail, report.redacted),
        (13, 0, 3)
    );
    let text = b.export().unwrap();
    let report = verify_export(text.as_bytes(), &[], None, VerifyOptions::default()).unwrap();
    assert_eq!((report.signed_size, report.redacted), (13, 3));
}

#[test]
fn an_erasure_in_the_unsigned_tail_cannot_cover_anything() {
    // Seqs 0..12 signed; the erasure of seq 7 (s1) at 13 is not, nor what follows.
    let mut b = build(1, "a");
    b.append(new_entry(12, "a")).unwrap();
    let mut erasure = new_entry(13, "a");
    erasure.subject_ref = Some(subject_ref(1));
    b.erase(&[7], erasure).unwrap();
    b.append(new_entry(14, "a")).unwrap();
    let text = b.export_unsigned().unwrap();
    let f = verify_export(text.as_bytes(), &[], None, ALLOW_TAIL);
    let f = expect_seq(f, 7, "redaction is not covered by a signed erasure");
    assert!(f.reason.contains("seq 13"), "{f}");
    assert!(f.reason.contains("size 12"), "{f}");
    expect_seq(
        online(b.lines(), Some(true)),
        7,
        "not covered by a signed erasure",
    );
    // A pin at 14 covers the erasure (pins are signed by the same key).
    let pin = b.checkpoint_note().unwrap();
    let mut v = LedgerVerifier::new(ORIGIN, signer(1).verifier());
    v.pin(&pin).unwrap();
    let fed: Result<(), Failure> = b.lines().iter().try_for_each(|l| match l {
        ExportLine::Entry {
            seq,
            body,
            leaf_hash,
            payload,
        } => v.entry(*seq, body, leaf_hash, payload),
        ExportLine::Checkpoint { note } => v.checkpoint(note),
        ExportLine::Header { .. } => unreachable!(),
    });
    fed.unwrap();
    assert_eq!(v.signed_size(), 15);
    let report = v.finish_with(false).unwrap();
    assert_eq!(
        (report.pins, report.signed_size, report.unsigned_tail),
        (1, 15, 0)
    );
}

#[test]
fn an_access_entry_can_never_be_redacted() {
    let mut b = LedgerBuilder::new(ORIGIN, signer(1));
    for i in 0..5 {
        let mut e = new_entry(i, "a");
        if i == 2 {
            e.kind = "access.logged_in".into();
        }
        b.append(e).unwrap();
    }
    let mut erasure = new_entry(5, "a");
    erasure.subject_ref = Some(subject_ref(2));
    b.erase(&[2], erasure).unwrap();
    let text = b.export().unwrap();
    let f = verify_export(text.as_bytes(), &[], None, VerifyOptions::default());
    let f = expect_seq(f, 2, "access records (access.*) can never be redacted");
    assert!(f.reason.contains("\"access.logged_in\""), "{f}");
    expect_seq(online(b.lines(), None), 2, "can never be redacted");
}

#[test]
fn a_redaction_needs_an_erasure_of_its_own_subject() {
    // Seq 4 is subject s1's; the erasure at 10 names s2.
    let mut b = LedgerBuilder::new(ORIGIN, signer(1));
    for i in 0..10 {
        b.append(new_entry(i, "a")).unwrap();
    }
    let mut erasure = new_entry(10, "a");
    erasure.subject_ref = Some(subject_ref(2));
    b.erase(&[4], erasure.clone()).unwrap();
    let text = b.export().unwrap();
    let f = verify_export(text.as_bytes(), &[], None, VerifyOptions::default());
    let f = expect_seq(
        f,
        4,
        "redaction is not covered by an erasure of its subject",
    );
    assert!(f.reason.contains(&subject_ref(1)), "{f}");
    assert!(f.reason.contains(&subject_ref(2)), "{f}");
    expect_seq(online(b.lines(), None), 4, "erasure of its subject");
    // An erasure naming no subject covers nothing.
    let mut b = LedgerBuilder::new(ORIGIN, signer(1));
    for i in 0..10 {
        b.append(new_entry(i, "a")).unwrap();
    }
    erasure.subject_ref = None;
    b.erase(&[4], erasure).unwrap();
    let text = b.export().unwrap();
    let f = verify_export(text.as_bytes(), &[], None, VerifyOptions::default());
    let f = expect_seq(f, 4, "erasure of its subject");
    assert!(f.reason.contains("subject_ref null"), "{f}");
}

#[test]
fn an_entry_without_a_subject_cannot_be_redacted() {
    let mut b = LedgerBuilder::new(ORIGIN, signer(1));
    for i in 0..6 {
        let mut e = new_entry(i, "a");
        if i == 3 {
            e.subject_ref = None;
        }
        b.append(e).unwrap();
    }
    let mut erasure = new_entry(6, "a");
    erasure.subject_ref = None;
    b.erase(&[3], erasure).unwrap();
    let text = b.export().unwrap();
    let f = verify_export(text.as_bytes(), &[], None, VerifyOptions::default());
    expect_seq(f, 3, "the entry has no subject_ref");
    expect_seq(online(b.lines(), None), 3, "no subject_ref");
}

#[test]
fn an_unsigned_tail_passes_only_when_allowed() {
    let mut b = build(1, "a");
    b.append(new_entry(12, "a")).unwrap();
    b.append(new_entry(13, "a")).unwrap();
    let text = b.export_unsigned().unwrap();
    let f = verify_export(text.as_bytes(), &[], None, VerifyOptions::default());
    let f = expect_header_count(f, 14, 12);
    assert!(f.reason.contains("--allow-unsigned-tail"), "{f}");
    let report = verify_export(text.as_bytes(), &[], None, ALLOW_TAIL).unwrap();
    assert_eq!(report.entries, 14);
    assert_eq!((report.signed_size, report.unsigned_tail), (12, 2));
    assert!(!report.key_pinned);
    let key = Some(signer(1).verifier());
    let report = verify_export(text.as_bytes(), &[], key, ALLOW_TAIL).unwrap();
    assert!(report.key_pinned);
    // Entry by entry, the failure names the first unsigned seq.
    let f = expect_seq(
        online(b.lines(), Some(false)),
        12,
        "not covered by any signed checkpoint (unsigned tail of 2 entries from seq 12); pass --allow-unsigned-tail to accept it",
    );
    assert_eq!(
        f.to_string(),
        "seq 12: not covered by any signed checkpoint (unsigned tail of 2 entries from seq 12); pass --allow-unsigned-tail to accept it"
    );
    let report = online(b.lines(), Some(true)).unwrap();
    assert_eq!((report.signed_size, report.unsigned_tail), (12, 2));
    assert!(report.key_pinned);
    let report = online(b.lines(), None).unwrap();
    assert_eq!((report.signed_size, report.unsigned_tail), (12, 2));
    // Nothing signed at all.
    let mut unsigned = LedgerBuilder::new(ORIGIN, signer(1));
    unsigned.append(new_entry(0, "a")).unwrap();
    assert!(unsigned.export_unsigned().is_none());
    expect_seq(
        online(unsigned.lines(), Some(false)),
        0,
        "unsigned tail of 1 entries from seq 0",
    );
}

#[test]
fn checkpoint_signed_by_another_key_is_named() {
    let mut e = export();
    let i = e.checkpoint_index(7);
    let ExportLine::Checkpoint { note } = &e.lines[i] else {
        unreachable!()
    };
    let cp = Checkpoint::peek_unverified(note).unwrap();
    e.lines[i] = ExportLine::Checkpoint {
        note: cp.sign(&signer(2)).unwrap(),
    };
    let f = expect_checkpoint(e.run(&[]), 7, "signature");
    assert!(f.to_string().starts_with("checkpoint at size 7: "), "{f}");
}

#[test]
fn checkpoint_with_wrong_root_is_named() {
    let mut e = export();
    let i = e.checkpoint_index(7);
    let forged = Checkpoint {
        origin: ORIGIN.into(),
        size: 7,
        root: leaf_hash(b"forged"),
    };
    e.lines[i] = ExportLine::Checkpoint {
        note: forged.sign(&signer(1)).unwrap(),
    };
    expect_checkpoint(e.run(&[]), 7, "checkpoint at size 7: root does not match");
}

#[test]
fn checkpoint_for_another_origin_is_named() {
    let mut e = export();
    let i = e.checkpoint_index(3);
    let ExportLine::Checkpoint { note } = &e.lines[i] else {
        unreachable!()
    };
    let mut cp = Checkpoint::peek_unverified(note).unwrap();
    cp.origin = "other.test/log".into();
    e.lines[i] = ExportLine::Checkpoint {
        note: cp.sign(&signer(1)).unwrap(),
    };
    expect_checkpoint(e.run(&[]), 3, "origin");
}

#[test]
fn checkpoint_out_of_order_is_named() {
    let mut e = export();
    let i = e.checkpoint_index(3);
    let cp = e.lines.remove(i);
    let j = e.entry_index(5);
    e.lines.insert(j, cp);
    expect_checkpoint(e.run(&[]), 3, "out of order");
}

#[test]
fn early_checkpoint_is_checked_when_reached() {
    let mut e = export();
    let i = e.checkpoint_index(7);
    let cp = e.lines.remove(i);
    e.lines.insert(0, cp);
    assert_eq!(e.run(&[]).unwrap().checkpoints, 3);
}

#[test]
fn rewritten_history_fails_against_a_pin() {
    // The auditor kept the checkpoint at size 7 of the real log.
    let real = build(1, "a");
    let ExportLine::Checkpoint { note: pin } = &real.lines()[8] else {
        panic!("line 8 should be the checkpoint at size 7")
    };
    assert_eq!(Checkpoint::peek_unverified(pin).unwrap().size, 7);
    // The operator rewrote entries before 7 and re-signed everything with the same key.
    let mut forged = build(1, "b");
    let text = forged.export().unwrap();
    assert!(verify_export(text.as_bytes(), &[], None, VerifyOptions::default()).is_ok());
    let r = verify_export(
        text.as_bytes(),
        std::slice::from_ref(pin),
        None,
        VerifyOptions::default(),
    );
    let f = expect_checkpoint(r, 7, "pinned checkpoint at size 7: root does not match");
    assert!(
        f.reason
            .starts_with("pinned checkpoint at size 7: root does not match")
    );
    assert_eq!(
        f.to_string(),
        f.reason,
        "the pin label is not repeated by Display"
    );
    // And the real export passes with the same pin.
    let mut real = build(1, "a");
    let text = real.export().unwrap();
    let report = verify_export(
        text.as_bytes(),
        std::slice::from_ref(pin),
        None,
        VerifyOptions::default(),
    )
    .unwrap();
    assert_eq!(report.pins, 1);
}

#[test]
fn pin_signed_by_another_key_or_beyond_the_end_fails() {
    let e = export();
    let other = build(2, "a");
    let foreign_pin = other.checkpoint_note().unwrap();
    expect_checkpoint(
        e.run(&[foreign_pin]),
        12,
        "pinned checkpoint at size 12: signature",
    );
    let mut longer = build(1, "a");
    longer.append(new_entry(12, "a")).unwrap();
    let future_pin = longer.checkpoint_note().unwrap();
    expect_checkpoint(
        e.run(&[future_pin]),
        13,
        "pinned checkpoint at size 13: truncated",
    );
}

#[test]
fn redaction_not_covered_by_an_erasure_is_named() {
    // Erasure seq 10 lists 1 and 4, not 3.
    let mut e = export();
    let (_, _, payload) = e.body_mut(3);
    *payload = PayloadRecord::Redacted { redacted_by: 10 };
    expect_seq(e.run(&[]), 3, "redaction is not covered by an erasure");
    // Seq 11 is not an erasure at all.
    let mut e = export();
    let (_, _, payload) = e.body_mut(3);
    *payload = PayloadRecord::Redacted { redacted_by: 11 };
    expect_seq(e.run(&[]), 3, "redaction is not covered by an erasure");
    // The erasure never arrives.
    let mut e = export();
    let (_, _, payload) = e.body_mut(3);
    *payload = PayloadRecord::Redacted { redacted_by: 40 };
    expect_seq(e.run(&[]), 3, "redaction is not covered by an erasure");
    // An erasure cannot precede what it erases.
    let mut e = export();
    let (_, _, payload) = e.body_mut(3);
    *payload = PayloadRecord::Redacted { redacted_by: 2 };
    expect_seq(e.run(&[]), 3, "redaction by seq 2 is impossible");
    // The erasure's own payload removed: the redactions it covered cannot be checked.
    let mut e = export();
    let (_, _, payload) = e.body_mut(10);
    *payload = PayloadRecord::Redacted { redacted_by: 11 };
    expect_seq(e.run(&[]), 1, "redaction cannot be checked");
}

#[test]
fn redaction_covered_by_an_erasure_passes() {
    let mut e = export();
    for seq in [1, 4] {
        let (_, _, payload) = e.body_mut(seq);
        assert_eq!(payload, &PayloadRecord::Redacted { redacted_by: 10 });
    }
    assert_eq!(e.run(&[]).unwrap().redacted, 2);
}

#[test]
fn bad_lines_and_headers_are_named() {
    let e = export();
    let mut text = render(&e.header, &e.lines);
    text.insert_str(text.find('\n').unwrap() + 1, "{not json\n");
    let f = verify_export(text.as_bytes(), &[], None, VerifyOptions::default()).unwrap_err();
    assert!(f.reason.starts_with("line 2: "), "{f}");
    let f = verify_export(&b""[..], &[], None, VerifyOptions::default()).unwrap_err();
    assert!(f.reason.contains("empty"), "{f}");
    let body_first = render(&e.lines[0], &e.lines[1..]);
    let f = verify_export(body_first.as_bytes(), &[], None, VerifyOptions::default()).unwrap_err();
    assert!(f.reason.contains("header"), "{f}");
    let mut e2 = export();
    if let ExportLine::Header { format, .. } = &mut e2.header {
        *format = "something/v2".into();
    }
    assert!(e2.run(&[]).unwrap_err().reason.contains("format"));
    let mut e3 = export();
    let h = e3.header.clone();
    e3.lines.insert(2, h);
    assert!(e3.run(&[]).unwrap_err().reason.contains("second header"));
    let full = render(&e.header, &e.lines);
    let cut = &full[..full.len() - 40];
    let f = verify_export(cut.as_bytes(), &[], None, VerifyOptions::default()).unwrap_err();
    assert!(f.reason.contains("truncated"), "{f}");
    let bad_utf8 = [render(&e.header, &[]).as_bytes(), b"\xff\xfe\n"].concat();
    assert!(
        verify_export(&bad_utf8[..], &[], None, VerifyOptions::default())
            .unwrap_err()
            .reason
            .starts_with("line 2: ")
    );
}

#[test]
fn expected_key_must_match_the_header_key() {
    let e = export();
    let text = render(&e.header, &e.lines);
    let right = signer(1).verifier();
    assert!(verify_export(text.as_bytes(), &[], Some(right), VerifyOptions::default()).is_ok());
    let wrong = signer(2).verifier();
    let f = verify_export(text.as_bytes(), &[], Some(wrong), VerifyOptions::default()).unwrap_err();
    assert!(f.reason.contains("not the expected key"), "{f}");
    // An export re-signed by another key with its own header key is caught by --key.
    let mut other = build(2, "a");
    let text = other.export().unwrap();
    assert!(verify_export(text.as_bytes(), &[], None, VerifyOptions::default()).is_ok());
    assert!(
        verify_export(
            text.as_bytes(),
            &[],
            Some(signer(1).verifier()),
            VerifyOptions::default()
        )
        .is_err()
    );
}

#[test]
fn wrong_origin_in_bodies_is_named() {
    let b = build(1, "a");
    let mut v = LedgerVerifier::new("other.test/log", signer(1).verifier());
    let ExportLine::Entry {
        seq,
        body,
        leaf_hash,
        payload,
    } = &b.lines()[0]
    else {
        unreachable!()
    };
    let f = v.entry(*seq, body, leaf_hash, payload).unwrap_err();
    assert_eq!(f.seq, Some(0));
    assert!(f.reason.contains("origin"), "{f}");
}

#[test]
fn failure_display() {
    assert_eq!(
        Failure::at_seq(41, "prev does not match the leaf hash of seq 40").to_string(),
        "seq 41: prev does not match the leaf hash of seq 40"
    );
    assert_eq!(
        Failure::at_checkpoint(Some(12), "root does not match").to_string(),
        "checkpoint at size 12: root does not match"
    );
    assert_eq!(
        Failure::at_checkpoint(
            Some(12),
            "pinned checkpoint at size 12: root does not match"
        )
        .to_string(),
        "pinned checkpoint at size 12: root does not match"
    );
    assert_eq!(Failure::general("line 3: bad").to_string(), "line 3: bad");
}

#[test]
fn empty_ledger_and_size_zero_checkpoint() {
    let mut b = LedgerBuilder::new(ORIGIN, signer(1));
    let text = b.export().unwrap();
    let report = verify_export(text.as_bytes(), &[], None, VerifyOptions::default()).unwrap();
    assert_eq!(report.entries, 0);
    assert_eq!(report.root, to_hex(&crate::hash::EMPTY_ROOT));
}

#[test]
fn memory_does_not_grow_with_entries() {
    let mut b = LedgerBuilder::new(ORIGIN, signer(1));
    let n = 3000u64;
    for i in 0..n {
        b.append(new_entry(i, "m")).unwrap();
        if i % 500 == 499 {
            b.checkpoint().unwrap();
        }
    }
    let mut v = LedgerVerifier::new(ORIGIN, signer(1).verifier());
    let mut peak = 0usize;
    for line in b.lines() {
        match line {
            ExportLine::Entry {
                seq,
                body,
                leaf_hash,
                payload,
            } => v.entry(*seq, body, leaf_hash, payload).unwrap(),
            ExportLine::Checkpoint { note } => v.checkpoint(note).unwrap(),
            ExportLine::Header { .. } => unreachable!(),
        }
        peak = peak.max(v.frontier.hashes().len() + v.pending.len() + v.redactions.len());
    }
    assert!(peak <= 64 - n.leading_zeros() as usize, "peak {peak}");
    let report = v.finish().unwrap();
    assert_eq!(report.entries, n);
    assert_eq!(report.checkpoints, n / 500);
}
