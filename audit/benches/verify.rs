//! Offline verification throughput: builds an N-entry export (N from `ACCORD_BENCH_ENTRIES`,
//! default 1,000,000) in a temporary file with the crate's own builder, then times
//! `verify_export` over it three times and prints the median as entries/s and MB/s.
//!
//! Run: `cargo bench -p accord-audit --bench verify`. With `ACCORD_BENCH_KEEP=FILE` the export is
//! written to FILE and kept (e.g. to profile `accord-audit verify FILE`).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use accord_audit::{ExportLine, LedgerBuilder, NewEntry, NoteSigner, VerifyOptions, verify_export};
use ed25519_dalek::SigningKey;
use serde_json::json;

const ORIGIN: &str = "accord.bench/log";
const CHECKPOINT_EVERY: u64 = 10_000;
const ERASURE_EVERY: u64 = 50_000;
const RUNS: usize = 3;

/// Removes the temporary files when the bench ends, however it ends.
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn entry(i: u64) -> NewEntry {
    let subject = i.wrapping_mul(2_654_435_761) % 250_000;
    let purposes = [
        "marketing.email",
        "marketing.sms",
        "analytics.product",
        "research.clinical",
    ];
    let decisions = ["granted", "withdrawn", "granted", "refused"];
    let purpose = purposes[(i % 4) as usize];
    let mut salt = [0u8; 32];
    for (k, b) in salt.iter_mut().enumerate() {
        *b = (i.wrapping_mul(31).wrapping_add(k as u64 * 17) % 251) as u8;
    }
    NewEntry {
        at: 1_763_884_800_000_000 + i as i64 * 1_250,
        actor: format!("svc:crm-{}", i % 7),
        kind: "consent.recorded".into(),
        entity: format!("consent:subject-{subject}/{purpose}/any"),
        subject_ref: Some(format!("{:064x}", u128::from(subject) * 0x9e37_79b9)),
        request_id: Some(format!("req-{i:012}")),
        payload: json!({
            "subject": format!("subject-{subject}"),
            "purpose": purpose,
            "decision": decisions[(i % 4) as usize],
            "channel": if i.is_multiple_of(3) { "web" } else { "call-centre" },
            "policy_version": 3 + i % 5,
            "jurisdiction": "EU/DE",
            "recorded_at": 1_763_884_800_000_000u64 + i * 1_250,
            "evidence": {
                "form": "signup-2025-11",
                "ip_prefix": "203.0.113.0/24",
            },
            "notes": "Captured at sign-up; wording \"v3\" shown.",
            "sequence": i,
        }),
        salt,
    }
}

fn write_line(out: &mut impl Write, line: &ExportLine) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")
}

/// Builds the export at `path` and returns its size in bytes.
fn build(path: &Path, lines_path: &Path, n: u64) -> Result<u64, Box<dyn std::error::Error>> {
    let signer = NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[7; 32]))?;
    let mut b = LedgerBuilder::new(ORIGIN, signer);
    let mut lines = BufWriter::with_capacity(1 << 20, File::create(lines_path)?);
    for i in 0..n {
        if i % ERASURE_EVERY == ERASURE_EVERY - 1 && i >= 10 {
            // Erase a recent entry still held by the builder (entry k is seq k), as its subject's.
            let seq = b.size() - 1;
            let mut erasure = entry(i);
            erasure.subject_ref = entry(seq).subject_ref;
            b.erase(&[seq], erasure)?;
        } else {
            b.append(entry(i))?;
        }
        if (i + 1) % CHECKPOINT_EVERY == 0 {
            b.checkpoint()?;
            for line in b.take_lines() {
                write_line(&mut lines, &line)?;
            }
        }
    }
    let last = if n.is_multiple_of(CHECKPOINT_EVERY) && n > 0 {
        b.checkpoint_note()?
    } else {
        b.checkpoint()?
    };
    for line in b.take_lines() {
        write_line(&mut lines, &line)?;
    }
    lines.flush()?;
    drop(lines);

    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    write_line(&mut out, &b.header(last))?;
    std::io::copy(&mut File::open(lines_path)?, &mut out)?;
    out.flush()?;
    std::fs::remove_file(lines_path)?;
    Ok(std::fs::metadata(path)?.len())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = match std::env::var("ACCORD_BENCH_ENTRIES") {
        Ok(v) => v.trim().replace('_', "").parse()?,
        Err(_) => 1_000_000,
    };
    let dir = std::env::temp_dir();
    let tag = format!("accord-bench-verify-{}", std::process::id());
    let lines_path = dir.join(format!("{tag}.lines"));
    let (path, _cleanup) = match std::env::var_os("ACCORD_BENCH_KEEP") {
        Some(keep) => (PathBuf::from(keep), TempFiles(vec![lines_path.clone()])),
        None => {
            let path = dir.join(format!("{tag}.jsonl"));
            let cleanup = TempFiles(vec![path.clone(), lines_path.clone()]);
            (path, cleanup)
        }
    };

    let started = Instant::now();
    let bytes = build(&path, &lines_path, n)?;
    println!(
        "built {n} entries, {:.1} MB ({:.0} bytes/line), in {:.2} s",
        bytes as f64 / 1e6,
        bytes as f64 / n.max(1) as f64,
        started.elapsed().as_secs_f64()
    );

    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    for run in 1..=RUNS {
        let file = File::open(&path)?;
        let started = Instant::now();
        let report = verify_export(
            BufReader::with_capacity(1 << 16, file),
            &[],
            None,
            VerifyOptions::default(),
        )?;
        let took = started.elapsed();
        if report.entries != n {
            return Err(format!("verified {} entries, expected {n}", report.entries).into());
        }
        println!(
            "run {run}: {:.3} s ({} checkpoints, {} redacted)",
            took.as_secs_f64(),
            report.checkpoints,
            report.redacted
        );
        times.push(took);
    }
    times.sort();
    let median = times[RUNS / 2].as_secs_f64();
    println!(
        "verify_export: {n} entries in {median:.3} s (median of {RUNS}): {:.0} entries/s, {:.1} MB/s",
        n as f64 / median,
        bytes as f64 / 1e6 / median
    );
    Ok(())
}
