//! The `accord-audit` binary, run as a user would.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use accord_audit::{
    Checkpoint, LedgerBuilder, MemoryTree, NewEntry, NoteSigner, inclusion_proof, leaf_hash,
    to_b64, to_hex,
};
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_accord-audit");
const ORIGIN: &str = "accord.cli-test/log";

/// A fresh directory under the target's scratch space, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

fn scratch() -> Scratch {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "cli-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

fn signer(n: u8) -> NoteSigner {
    NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[n; 32])).unwrap()
}

fn entry(i: u64) -> NewEntry {
    NewEntry {
        at: 1_763_884_800_000_000 + i as i64,
        actor: "svc:cli".into(),
        kind: "consent.recorded".into(),
        entity: format!("consent:s{i}"),
        subject_ref: Some(format!("{i:064x}")),
        request_id: None,
        payload: json!({"subject": format!("s{i}"), "decision": "granted"}),
        salt: [i as u8 ^ 0x5a; 32],
    }
}

/// 20 entries with checkpoints every 6, an erasure of seq 2; plus a pin kept at size 6.
fn ledger(key: u8) -> (LedgerBuilder, String) {
    let mut b = LedgerBuilder::new(ORIGIN, signer(key));
    let mut pin = String::new();
    for i in 0..19 {
        b.append(entry(i)).unwrap();
        if b.size().is_multiple_of(6) {
            let note = b.checkpoint().unwrap();
            if b.size() == 6 {
                pin = note;
            }
        }
    }
    let mut erasure = entry(19);
    erasure.subject_ref = entry(2).subject_ref;
    b.erase(&[2], erasure).unwrap();
    (b, pin)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

const UNPINNED: &str = "accord-audit: warning: no --key given";

/// At most one sentence on stderr besides the warning about a key that was not given.
fn assert_clean_stderr(out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.lines().filter(|l| !l.starts_with(UNPINNED)).count() <= 1,
        "more than one line on stderr: {err}"
    );
}

/// Whether stderr warns that the data's own key was trusted.
fn warned(out: &Output) -> bool {
    String::from_utf8_lossy(&out.stderr).contains(UNPINNED)
}

/// The failure reason of a run that exited 1.
fn failure(out: &Output) -> (Value, String) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_clean_stderr(out);
    let r = stdout_json(out);
    assert_eq!(r["ok"], json!(false));
    let reason = r["failure"]["reason"].as_str().unwrap().to_string();
    (r["failure"]["seq"].clone(), reason)
}

#[test]
fn verify_passes_and_reports() {
    let dir = scratch();
    let (mut b, pin) = ledger(1);
    let export = write(&dir, "ledger.jsonl", &b.export().unwrap());
    // A stray newline after the note, as an editor may add, is tolerated.
    let pin_file = write(&dir, "pin.note", &format!("{pin}\n"));
    let p = export.to_str().unwrap();
    let out = run(&["verify", p, "--pin", pin_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let r = stdout_json(&out);
    assert_eq!(r["ok"], json!(true));
    assert_eq!(r["entries"], json!(20));
    assert_eq!(r["size"], json!(20));
    assert_eq!(r["checkpoints"], json!(4));
    assert_eq!(r["pins"], json!(1));
    assert_eq!(r["redacted"], json!(1));
    assert_eq!(r["root"], json!(to_hex(&b.root())));
    assert_eq!(r["signed_size"], json!(20));
    assert_eq!(r["unsigned_tail"], json!(0));
    assert_eq!(r["key_pinned"], json!(false));
    assert!(r["elapsed_ms"].is_u64());
    // The export's own key was trusted, and stderr says so.
    assert!(warned(&out), "{out:?}");
    assert_clean_stderr(&out);

    // --key as a string and as a file.
    let vkey = signer(1).verifier().to_vkey();
    let out = run(&["verify", p, "--key", &vkey]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout_json(&out)["key_pinned"], json!(true));
    assert!(out.stderr.is_empty(), "{out:?}");
    let key_file = write(&dir, "log.vkey", &format!("{vkey}\n"));
    let out = run(&["verify", p, "--key", key_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// The hole an outside review found, through the binary: a correctly chained erasure appended
/// after the last signed entry (no key needed) that redacts a signed consent grant, with the
/// header's count bumped.
#[test]
fn verify_refuses_an_erasure_appended_without_the_key() {
    let dir = scratch();
    let (mut b, _) = ledger(1);
    b.export().unwrap();
    let mut erasure = entry(20);
    erasure.subject_ref = entry(5).subject_ref;
    assert_eq!(b.erase(&[5], erasure).unwrap(), 20);
    let forged = write(&dir, "forged.jsonl", &b.export_unsigned().unwrap());
    let p = forged.to_str().unwrap();
    let vkey = signer(1).verifier().to_vkey();
    for args in [vec!["verify", p], vec!["verify", p, "--key", &vkey]] {
        let (seq, reason) = failure(&run(&args));
        assert_eq!(seq, Value::Null);
        assert!(
            reason.starts_with(
                "line 1: the header says 21 entries, but its checkpoint is at size 20"
            ),
            "{reason}"
        );
    }
    // Accepting an unsigned tail does not accept the redaction.
    let out = run(&["verify", p, "--key", &vkey, "--allow-unsigned-tail"]);
    let (seq, reason) = failure(&out);
    assert_eq!(seq, json!(5));
    assert!(
        reason.contains("redaction is not covered by a signed erasure: its erasure, seq 20"),
        "{reason}"
    );
    assert!(!warned(&out));
}

#[test]
fn verify_accepts_an_unsigned_tail_only_when_asked() {
    let dir = scratch();
    let (mut b, _) = ledger(1);
    b.export().unwrap();
    b.append(entry(20)).unwrap();
    b.append(entry(21)).unwrap();
    let tail = write(&dir, "tail.jsonl", &b.export_unsigned().unwrap());
    let p = tail.to_str().unwrap();
    let vkey = signer(1).verifier().to_vkey();
    let (_, reason) = failure(&run(&["verify", p, "--key", &vkey]));
    assert!(reason.contains("pass --allow-unsigned-tail"), "{reason}");
    let out = run(&["verify", p, "--key", &vkey, "--allow-unsigned-tail"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let r = stdout_json(&out);
    assert_eq!(r["entries"], json!(22));
    assert_eq!(r["signed_size"], json!(20));
    assert_eq!(r["unsigned_tail"], json!(2));
    assert_eq!(r["key_pinned"], json!(true));
    let out = run(&["verify", p, "--allow-unsigned-tail"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout_json(&out)["key_pinned"], json!(false));
    assert!(warned(&out));
}

#[test]
fn verify_reads_standard_input() {
    let (mut b, _) = ledger(1);
    let text = b.export().unwrap();
    let mut child = Command::new(BIN)
        .args(["verify", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout_json(&out)["entries"], json!(20));
}

#[test]
fn verify_names_the_failure() {
    let dir = scratch();
    let (mut b, _) = ledger(1);
    let text = b.export().unwrap();
    // Flip one byte inside seq 7's body.
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.contains(r#""type":"entry""#) && l.contains(r#"\"seq\":7,"#) {
                l.replacen("svc:cli", "svc:clj", 1)
            } else {
                l.to_string()
            }
        })
        .collect();
    let tampered = write(&dir, "tampered.jsonl", &(lines.join("\n") + "\n"));
    let out = run(&["verify", tampered.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_clean_stderr(&out);
    let r = stdout_json(&out);
    assert_eq!(r["ok"], json!(false));
    assert_eq!(r["failure"]["seq"], json!(7));
    assert_eq!(r["failure"]["checkpoint_size"], Value::Null);
    assert!(
        r["failure"]["reason"]
            .as_str()
            .unwrap()
            .contains("leaf hash does not match body"),
        "{r}"
    );

    // Truncated.
    let truncated: Vec<&str> = text.lines().take(10).collect();
    let truncated = write(&dir, "truncated.jsonl", &(truncated.join("\n") + "\n"));
    let out = run(&["verify", truncated.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout_json(&out)["failure"]["reason"]
            .as_str()
            .unwrap()
            .contains("truncated")
    );
}

#[test]
fn verify_against_a_pin_from_a_rewritten_log_fails() {
    let dir = scratch();
    // The auditor's pin comes from the real log; the export is a rewrite signed by the same key.
    let (_, real_pin) = ledger(1);
    let mut forged = LedgerBuilder::new(ORIGIN, signer(1));
    for i in 0..20 {
        let mut e = entry(i);
        e.actor = "svc:rewritten".into();
        forged.append(e).unwrap();
    }
    let export = write(&dir, "forged.jsonl", &forged.export().unwrap());
    let pin = write(&dir, "pin.note", &real_pin);
    let out = run(&[
        "verify",
        export.to_str().unwrap(),
        "--pin",
        pin.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let r = stdout_json(&out);
    assert_eq!(r["failure"]["checkpoint_size"], json!(6));
    assert!(
        r["failure"]["reason"]
            .as_str()
            .unwrap()
            .contains("pinned checkpoint at size 6: root does not match"),
        "{r}"
    );
}

#[test]
fn verify_with_another_key_fails() {
    let dir = scratch();
    let (mut b, _) = ledger(2);
    let export = write(&dir, "other.jsonl", &b.export().unwrap());
    let vkey = signer(1).verifier().to_vkey();
    let out = run(&["verify", export.to_str().unwrap(), "--key", &vkey]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout_json(&out)["failure"]["reason"]
            .as_str()
            .unwrap()
            .contains("not the expected key")
    );
}

#[test]
fn usage_errors_exit_2_with_one_sentence() {
    let dir = scratch();
    let missing = dir.join("missing.jsonl");
    let out = run(&["verify", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_clean_stderr(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));

    let (mut b, _) = ledger(1);
    let export = write(&dir, "ok.jsonl", &b.export().unwrap());
    let p = export.to_str().unwrap();
    let out = run(&["verify", p, "--pin", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_clean_stderr(&out);
    let out = run(&["verify", p, "--key", "not-a-key"]);
    assert_eq!(out.status.code(), Some(2));
    assert_clean_stderr(&out);
    let out = run(&["verify", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_clean_stderr(&out);

    assert_eq!(run(&[]).status.code(), Some(2));
    assert_eq!(run(&["verify"]).status.code(), Some(2));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(run(&["verify", p, "--bogus"]).status.code(), Some(2));
    assert_eq!(run(&["--help"]).status.code(), Some(0));
}

#[test]
fn verify_receipt_warns_without_a_key() {
    let dir = scratch();
    let receipt = write(
        &dir,
        "receipt.json",
        r#"{"format":"accord-consent-receipt/v1"}"#,
    );
    let p = receipt.to_str().unwrap();
    let out = run(&["verify-receipt", p]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_clean_stderr(&out);
    assert!(warned(&out), "{out:?}");
    let vkey = signer(1).verifier().to_vkey();
    let out = run(&["verify-receipt", p, "--key", &vkey]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!warned(&out), "{out:?}");
    // A receipt with a member name twice is refused, naming it.
    let dup = write(
        &dir,
        "dup.json",
        r#"{"format":"accord-consent-receipt/v1","format":"accord-consent-receipt/v1"}"#,
    );
    let out = run(&["verify-receipt", dup.to_str().unwrap(), "--key", &vkey]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let reason = stdout_json(&out)["reason"].as_str().unwrap().to_string();
    assert!(
        reason.starts_with("the receipt has the member name \"format\" twice"),
        "{reason}"
    );
}

#[test]
fn verify_inclusion_command() {
    let leaves: Vec<_> = (0u64..11).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let mut tree = MemoryTree::from_leaves(leaves.clone());
    let root = tree.root().unwrap();
    let proof = inclusion_proof(&mut tree, 6, 11).unwrap();
    let proof_hex: Vec<String> = proof.iter().map(to_hex).collect();
    let proof_b64: Vec<String> = proof.iter().map(to_b64).collect();
    let leaf = to_hex(&leaves[6]);
    let good = |root: &str, proof: &str| {
        run(&[
            "verify-inclusion",
            "--leaf-hash",
            &leaf,
            "--index",
            "6",
            "--size",
            "11",
            "--root",
            root,
            "--proof",
            proof,
        ])
    };
    let out = good(&to_b64(&root), &proof_hex.join(","));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout_json(&out)["ok"], json!(true));
    let out = good(&to_hex(&root), &proof_b64.join(","));
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let mut wrong = proof_hex.clone();
    wrong.swap(0, 1);
    let out = good(&to_b64(&root), &wrong.join(","));
    assert_eq!(out.status.code(), Some(1));
    let r = stdout_json(&out);
    assert_eq!(r["ok"], json!(false));
    assert!(r["reason"].as_str().unwrap().contains("root"));

    let out = good(&to_b64(&root), "nothex,abc");
    assert_eq!(out.status.code(), Some(2));
    assert_clean_stderr(&out);
    let out = good("short", &proof_hex.join(","));
    assert_eq!(out.status.code(), Some(2));

    // A one-leaf tree takes an empty proof.
    let out = run(&[
        "verify-inclusion",
        "--leaf-hash",
        &leaf,
        "--index",
        "0",
        "--size",
        "1",
        "--root",
        &leaf,
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn checkpoint_command() {
    let dir = scratch();
    let s = signer(1);
    let cp = Checkpoint {
        origin: ORIGIN.into(),
        size: 42,
        root: leaf_hash(b"r"),
    };
    let note = write(&dir, "cp.note", &cp.sign(&s).unwrap());
    let vkey = s.verifier().to_vkey();
    let out = run(&["checkpoint", note.to_str().unwrap(), "--key", &vkey]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let r = stdout_json(&out);
    assert_eq!(r["ok"], json!(true));
    assert_eq!(r["origin"], json!(ORIGIN));
    assert_eq!(r["size"], json!(42));
    assert_eq!(r["root"], json!(to_b64(&cp.root)));
    assert_eq!(r["root_hex"], json!(to_hex(&cp.root)));

    let other = signer(2).verifier().to_vkey();
    let out = run(&["checkpoint", note.to_str().unwrap(), "--key", &other]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout_json(&out)["reason"]
            .as_str()
            .unwrap()
            .contains("signature")
    );
    let out = run(&[
        "checkpoint",
        dir.join("nope.note").to_str().unwrap(),
        "--key",
        &vkey,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_clean_stderr(&out);
}
