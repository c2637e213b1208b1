//! Every inclusion and consistency vector in the RFC 6962 vector set kept in `tests/vectors/`
//! (from transparency-dev/merkle, see its README): happy paths verify, every `wantErr` case is
//! rejected.

use std::path::{Path, PathBuf};

use accord_audit::{verify_consistency, verify_inclusion};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/rfc6962-merkle");

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "json") {
            out.push(path);
        }
    }
}

fn b64(v: &Value) -> Vec<u8> {
    // Invalid base64 stands for "garbage"; no vector uses it, but map it to bytes that fail.
    STANDARD
        .decode(v.as_str().expect("hash fields are strings"))
        .unwrap_or_else(|_| vec![0xff])
}

/// `proof` may be null, meaning empty.
fn proof(v: &Value) -> Vec<Vec<u8>> {
    match v {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().map(b64).collect(),
        other => panic!("proof is neither null nor an array: {other}"),
    }
}

#[test]
fn all_vectors() {
    let mut files = Vec::new();
    json_files(Path::new(VECTORS), &mut files);
    let (mut inclusion, mut consistency, mut happy, mut rejected) = (0, 0, 0, 0);
    let mut wrong = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let want_err = v["wantErr"].as_bool().expect("wantErr is a bool");
        let result = if v.get("leafIdx").is_some() {
            inclusion += 1;
            verify_inclusion(
                &b64(&v["leafHash"]),
                v["leafIdx"].as_u64().expect("leafIdx is a u64"),
                v["treeSize"].as_u64().expect("treeSize is a u64"),
                &proof(&v["proof"]),
                &b64(&v["root"]),
            )
        } else {
            consistency += 1;
            verify_consistency(
                v["size1"].as_u64().expect("size1 is a u64"),
                v["size2"].as_u64().expect("size2 is a u64"),
                &proof(&v["proof"]),
                &b64(&v["root1"]),
                &b64(&v["root2"]),
            )
        };
        match (want_err, &result) {
            (false, Ok(())) => happy += 1,
            (true, Err(_)) => rejected += 1,
            _ => wrong.push(format!(
                "{}: wantErr {want_err}, got {result:?}",
                path.display()
            )),
        }
    }
    assert!(
        wrong.is_empty(),
        "vectors mishandled:\n{}",
        wrong.join("\n")
    );
    assert!(
        files.len() > 150,
        "only {} vector files found under {VECTORS}",
        files.len()
    );
    assert!(inclusion > 50 && consistency > 50);
    assert!(happy >= 10, "happy paths: {happy}");
    assert!(rejected > 100, "rejections: {rejected}");
    println!(
        "{} vector files: {inclusion} inclusion, {consistency} consistency, {happy} verified, {rejected} rejected",
        files.len()
    );
}
