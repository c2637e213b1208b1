use super::*;
use crate::builder::{LedgerBuilder, NewEntry};
use crate::export::ExportLine;
use crate::note::NoteSigner;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use serde_json::json;

const ORIGIN: &str = "accord.batch-test/log";

fn signer() -> NoteSigner {
    NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[9; 32])).unwrap()
}

fn entry(i: u64) -> NewEntry {
    NewEntry {
        at: 1_763_884_800_000_000 + i as i64,
        actor: if i.is_multiple_of(11) {
            "a \"q\"".into()
        } else {
            "svc".into()
        },
        kind: "consent.recorded".into(),
        entity: format!("e{i}"),
        subject_ref: Some(format!("{:064x}", i % 4)),
        request_id: Some(format!("r{i}")),
        payload: json!({"n": i, "s": "x\ny", "z": [i, {"k": null}]}),
        salt: [i as u8; 32],
    }
}

/// 300 entries with erasures (each of two earlier entries of its own subject), a checkpoint
/// every 100; the lines.
fn lines() -> Vec<ExportLine> {
    static LINES: std::sync::OnceLock<Vec<ExportLine>> = std::sync::OnceLock::new();
    LINES
        .get_or_init(|| {
            let mut b = LedgerBuilder::new(ORIGIN, signer());
            for i in 0..300u64 {
                if i % 50 == 49 {
                    let s = b.size();
                    b.erase(&[s - 8, s - 4], entry(i)).unwrap();
                } else {
                    b.append(entry(i)).unwrap();
                }
                if i % 100 == 99 {
                    b.checkpoint().unwrap();
                }
            }
            b.lines().to_vec()
        })
        .clone()
}

fn verifier() -> LedgerVerifier {
    let mut v = LedgerVerifier::new(ORIGIN, signer().verifier());
    v.set_threads(3);
    v
}

/// Entry by entry.
fn one_by_one(lines: &[ExportLine]) -> Result<Report, Failure> {
    let mut v = verifier();
    super::tests::feed_lines(&mut v, lines)?;
    v.finish()
}

/// Runs of entries through `entries`, checkpoints in between.
fn batched(lines: &[ExportLine], size: usize) -> Result<Report, Failure> {
    let mut v = verifier();
    let mut batch = Vec::new();
    for line in lines {
        match line {
            ExportLine::Entry {
                seq,
                body,
                leaf_hash,
                payload,
            } => batch.push(EntryInput {
                seq: *seq,
                body,
                leaf_hash,
                payload,
            }),
            ExportLine::Checkpoint { note } => {
                v.entries(&batch)?;
                batch.clear();
                v.checkpoint(note)?;
            }
            ExportLine::Header { .. } => unreachable!(),
        }
        if batch.len() == size {
            v.entries(&batch)?;
            batch.clear();
        }
    }
    v.entries(&batch)?;
    v.finish()
}

/// One by one with a check of the caller's own after each accepted entry (failing at seq
/// `own_failure`), and the same through `entries_with` in batches of `size`.
fn with_own_checks(
    lines: &[ExportLine],
    own_failure: u64,
    size: Option<usize>,
) -> Result<Report, Failure> {
    let own = |seq: u64| {
        if seq == own_failure {
            Err(Failure::at_seq(seq, "the caller's own check"))
        } else {
            Ok(())
        }
    };
    let mut v = verifier();
    let mut batch = Vec::new();
    for line in lines {
        match (line, size) {
            (
                ExportLine::Entry {
                    seq,
                    body,
                    leaf_hash,
                    payload,
                },
                None,
            ) => v
                .entry(*seq, body, leaf_hash, payload)
                .and_then(|()| own(*seq))?,
            (
                ExportLine::Entry {
                    seq,
                    body,
                    leaf_hash,
                    payload,
                },
                Some(_),
            ) => batch.push(EntryInput {
                seq: *seq,
                body,
                leaf_hash,
                payload,
            }),
            (ExportLine::Checkpoint { note }, _) => {
                v.entries_with(&batch, |i| own(batch[i].seq))?;
                batch.clear();
                v.checkpoint(note)?;
            }
            (ExportLine::Header { .. }, _) => unreachable!(),
        }
        if Some(batch.len()) == size {
            v.entries_with(&batch, |i| own(batch[i].seq))?;
            batch.clear();
        }
    }
    v.entries_with(&batch, |i| own(batch[i].seq))?;
    v.finish()
}

fn check(lines: &[ExportLine]) -> Result<Report, Failure> {
    let want = one_by_one(lines);
    for size in [1, 150, 1000] {
        assert_eq!(batched(lines, size), want, "batches of {size}");
    }
    for own_failure in [0, 57, 1000] {
        let want = with_own_checks(lines, own_failure, None);
        for size in [1, 150, 1000] {
            assert_eq!(
                with_own_checks(lines, own_failure, Some(size)),
                want,
                "batches of {size}, own failure at {own_failure}"
            );
        }
    }
    want
}

#[test]
fn intact_lines_pass_every_way() {
    let report = check(&lines()).unwrap();
    assert_eq!(report.entries, 300);
    assert_eq!(report.redacted, 12);
}

#[test]
fn the_callers_checks_run_after_each_accepted_entry_only() {
    let lines = lines();
    let entries: Vec<EntryInput<'_>> = lines
        .iter()
        .filter_map(|l| match l {
            ExportLine::Entry {
                seq,
                body,
                leaf_hash,
                payload,
            } => Some(EntryInput {
                seq: *seq,
                body,
                leaf_hash,
                payload,
            }),
            _ => None,
        })
        .take(99)
        .collect();
    let mut tampered = entries.clone();
    let wrong = String::from("zz");
    tampered[70].leaf_hash = &wrong;
    let mut v = verifier();
    let mut seen = Vec::new();
    let f = v
        .entries_with(&tampered, |i| {
            seen.push(i);
            Ok(())
        })
        .unwrap_err();
    assert_eq!(f.seq, Some(70));
    assert_eq!(seen, (0..70).collect::<Vec<_>>());
    assert_eq!(v.size(), 70);
    let mut v = verifier();
    v.entries(&entries[..40]).unwrap();
    v.entries(&entries[40..]).unwrap();
    assert_eq!(v.size(), 99);
}

#[derive(Debug, Clone)]
enum Change {
    Seq(usize, u64),
    BodyByte(usize, usize, bool),
    LeafHash(usize),
    Data(usize),
    Salt(usize),
    RedactedBy(usize, u64),
    Drop(usize),
    Swap(usize, usize),
    Note(usize),
}

fn change() -> impl Strategy<Value = Change> {
    let i = 0usize..340;
    prop_oneof![
        (i.clone(), 0u64..400).prop_map(|(i, s)| Change::Seq(i, s)),
        (i.clone(), 0usize..300, any::<bool>())
            .prop_map(|(i, at, rehash)| Change::BodyByte(i, at, rehash)),
        i.clone().prop_map(Change::LeafHash),
        i.clone().prop_map(Change::Data),
        i.clone().prop_map(Change::Salt),
        (i.clone(), 0u64..400).prop_map(|(i, by)| Change::RedactedBy(i, by)),
        i.clone().prop_map(Change::Drop),
        (i.clone(), i.clone()).prop_map(|(a, b)| Change::Swap(a, b)),
        i.prop_map(Change::Note),
    ]
}

fn apply(lines: &mut Vec<ExportLine>, c: &Change) {
    let n = lines.len();
    match *c {
        Change::Drop(i) => {
            lines.remove(i % n);
        }
        Change::Swap(a, b) => lines.swap(a % n, b % n),
        Change::Note(i) => {
            if let ExportLine::Checkpoint { note } = &mut lines[i % n] {
                *note = note.replacen('\n', "\n1", 1);
            }
        }
        ref c => {
            let (Change::Seq(i, _)
            | Change::BodyByte(i, _, _)
            | Change::LeafHash(i)
            | Change::Data(i)
            | Change::Salt(i)
            | Change::RedactedBy(i, _)) = *c
            else {
                unreachable!()
            };
            let ExportLine::Entry {
                seq,
                body,
                leaf_hash,
                payload,
            } = &mut lines[i % n]
            else {
                return;
            };
            match *c {
                Change::Seq(_, s) => *seq = s,
                Change::BodyByte(_, at, rehash) => {
                    let mut bytes = body.clone().into_bytes();
                    let at = at % bytes.len();
                    bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
                    *body = String::from_utf8(bytes).unwrap();
                    if rehash {
                        *leaf_hash = to_hex(&leaf_hash_of(body));
                    }
                }
                Change::LeafHash(_) => leaf_hash.replace_range(0..1, "A"),
                Change::Data(_) => {
                    if let PayloadRecord::Open { data, .. } = payload {
                        data["n"] = json!(1.5);
                    }
                }
                Change::Salt(_) => {
                    if let PayloadRecord::Open { salt, .. } = payload {
                        salt.replace_range(0..2, "00");
                    }
                }
                Change::RedactedBy(_, by) => {
                    *payload = PayloadRecord::Redacted { redacted_by: by };
                }
                _ => unreachable!(),
            }
        }
    }
}

fn leaf_hash_of(body: &str) -> Hash {
    leaf_hash(body.as_bytes())
}

/// Whether `changed` says what `original` says: the same entries in the same order, and only
/// checkpoints of the original (dropped, repeated or moved). Any other change must fail.
fn same_meaning(original: &[ExportLine], changed: &[ExportLine]) -> bool {
    let entries = |lines: &[ExportLine]| {
        lines
            .iter()
            .filter(|l| matches!(l, ExportLine::Entry { .. }))
            .cloned()
            .collect::<Vec<_>>()
    };
    entries(original) == entries(changed)
        && changed
            .iter()
            .all(|l| matches!(l, ExportLine::Entry { .. }) || original.contains(l))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Batches and the queue fail exactly where entry-by-entry feeding fails, and unless the
    /// changes leave what the lines say intact, they do fail.
    #[test]
    fn changed_lines_fail_the_same_every_way(changes in prop::collection::vec(change(), 1..3)) {
        let original = lines();
        let mut lines = original.clone();
        for c in &changes {
            apply(&mut lines, c);
        }
        let result = check(&lines);
        if !same_meaning(&original, &lines) {
            prop_assert!(result.is_err(), "{:?} passed: {:?}", changes, result);
        }
    }
}
