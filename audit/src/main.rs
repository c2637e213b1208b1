//! `accord-audit`: offline verification of Accord ledger exports, inclusion proofs and signed
//! checkpoints. No network, no database.
//!
//! Exit codes: 0 verified, 1 verification failed (the JSON report on stdout says why),
//! 2 usage error or unreadable input (one sentence on stderr).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use accord_audit::{
    Checkpoint, Failure, Hash, NoteVerifier, VerifyOptions, from_b64, from_hex, to_b64, to_hex,
    verify_export, verify_inclusion,
};
use clap::{Parser, Subcommand};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "accord-audit",
    version,
    about = "Verify Accord ledger exports, inclusion proofs and signed checkpoints offline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify a JSON Lines ledger export end to end and print a JSON report.
    Verify {
        /// The export file ("-" reads standard input).
        file: PathBuf,
        /// A checkpoint note kept from earlier; the export must agree with it. Repeatable.
        #[arg(long = "pin", value_name = "CHECKPOINT_FILE")]
        pins: Vec<PathBuf>,
        /// The log's verifier key (name+id+base64), or a file holding it. Without it the key in
        /// the export's header is trusted (and a warning says so).
        #[arg(long, value_name = "VKEY_OR_FILE")]
        key: Option<String>,
        /// Accept entries after the last signed checkpoint: they are checked as far as hashes go
        /// and counted in `unsigned_tail`, but nothing vouches for them (anyone can append such
        /// entries without the key), and a redaction by an erasure among them is refused anyway.
        #[arg(long)]
        allow_unsigned_tail: bool,
    },
    /// Verify that a leaf hash is included in a tree of the given size and root.
    VerifyInclusion {
        /// The leaf hash, 64 lowercase hex characters.
        #[arg(long, value_name = "HEX")]
        leaf_hash: String,
        /// The leaf's index (its seq).
        #[arg(long, value_name = "N")]
        index: u64,
        /// The tree size.
        #[arg(long, value_name = "N")]
        size: u64,
        /// The tree root, base64 (as in a checkpoint) or 64 hex characters.
        #[arg(long, value_name = "B64|HEX")]
        root: String,
        /// The audit path, comma-separated, each base64 or hex; empty for a one-leaf tree.
        #[arg(long, value_name = "h1,h2,...", default_value = "")]
        proof: String,
    },
    /// Verify a consent receipt (from GET /v1/consents/receipts/{seq}): the record is what the
    /// ledger entry says, and the entry is in the tree of a checkpoint signed by the log's key.
    VerifyReceipt {
        /// The receipt file ("-" reads standard input).
        file: PathBuf,
        /// The log's verifier key (name+id+base64), or a file holding it. Without it the key in
        /// the receipt is trusted, and the report says so.
        #[arg(long, value_name = "VKEY_OR_FILE")]
        key: Option<String>,
    },
    /// Open a signed checkpoint note with a verifier key and print what it says.
    Checkpoint {
        /// The signed note.
        note_file: PathBuf,
        /// The log's verifier key (name+id+base64), or a file holding it.
        #[arg(long, value_name = "VKEY_OR_FILE")]
        key: String,
    },
}

/// A usage problem or unreadable input: reported in one sentence, exit status 2.
struct UsageError(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Verify {
            file,
            pins,
            key,
            allow_unsigned_tail,
        } => run_verify(
            &file,
            &pins,
            key.as_deref(),
            VerifyOptions {
                allow_unsigned_tail,
            },
        ),
        Command::VerifyInclusion {
            leaf_hash,
            index,
            size,
            root,
            proof,
        } => run_verify_inclusion(&leaf_hash, index, size, &root, &proof),
        Command::VerifyReceipt { file, key } => run_verify_receipt(&file, key.as_deref()),
        Command::Checkpoint { note_file, key } => run_checkpoint(&note_file, &key),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(UsageError(message)) => {
            let _ = writeln!(io::stderr(), "accord-audit: {message}");
            ExitCode::from(2)
        }
    }
}

/// Warns on stderr that the data verified chose its own key, so it proves only that it is
/// consistent with itself.
fn warn_unpinned(what: &str) {
    let _ = writeln!(
        io::stderr(),
        "accord-audit: warning: no --key given, so the verifier key in the {what} itself was trusted: anyone can make one that verifies this way; pass --key with the log's key"
    );
}

/// Writes one JSON document and a newline to stdout. A closed stdout is not worth a panic.
fn print_json<T: Serialize>(value: &T) {
    if let Ok(text) = serde_json::to_string(value) {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

/// Reads a signed note from a file. Whitespace after the last signature line is dropped (an
/// editor or `echo` may add a newline), since a note must end in exactly one.
fn read_note(path: &Path, what: &str) -> Result<String, UsageError> {
    let text = read_text(path, what)?;
    Ok(format!("{}\n", text.trim_end()))
}

fn read_text(path: &Path, what: &str) -> Result<String, UsageError> {
    std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("cannot read {what} {}: {e}.", path.display())))
}

/// `--key` takes a verifier key or the path of a file that holds one.
fn resolve_key(arg: &str) -> Result<NoteVerifier, UsageError> {
    let path = Path::new(arg);
    let text = if path.is_file() {
        read_text(path, "key file")?
    } else {
        arg.to_string()
    };
    NoteVerifier::parse(&text).map_err(|e| {
        UsageError(format!(
            "--key is neither a readable key file nor a valid verifier key: {e}."
        ))
    })
}

#[derive(Serialize)]
struct Passed<'a> {
    ok: bool,
    entries: u64,
    checkpoints: u64,
    pins: u64,
    redacted: u64,
    size: u64,
    root: &'a str,
    signed_size: u64,
    unsigned_tail: u64,
    key_pinned: bool,
    elapsed_ms: u64,
}

#[derive(Serialize)]
struct Failed<'a> {
    ok: bool,
    failure: &'a Failure,
}

fn run_verify(
    file: &Path,
    pin_files: &[PathBuf],
    key: Option<&str>,
    options: VerifyOptions,
) -> Result<bool, UsageError> {
    let key = key.map(resolve_key).transpose()?;
    let pins = pin_files
        .iter()
        .map(|p| read_note(p, "pin file"))
        .collect::<Result<Vec<_>, _>>()?;
    let input: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        let f = File::open(file)
            .map_err(|e| UsageError(format!("cannot read export {}: {e}.", file.display())))?;
        if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            return Err(UsageError(format!(
                "cannot read export {}: it is a directory.",
                file.display()
            )));
        }
        Box::new(BufReader::with_capacity(1 << 16, f))
    };
    let started = Instant::now();
    let pinned = key.is_some();
    let result = verify_export(input, &pins, key, options);
    if !pinned {
        warn_unpinned("export");
    }
    match result {
        Ok(report) => {
            print_json(&Passed {
                ok: true,
                entries: report.entries,
                checkpoints: report.checkpoints,
                pins: report.pins,
                redacted: report.redacted,
                size: report.size,
                root: &report.root,
                signed_size: report.signed_size,
                unsigned_tail: report.unsigned_tail,
                key_pinned: report.key_pinned,
                elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
            Ok(true)
        }
        Err(failure) => {
            print_json(&Failed {
                ok: false,
                failure: &failure,
            });
            let _ = writeln!(io::stderr(), "accord-audit: verification failed: {failure}");
            Ok(false)
        }
    }
}

/// A hash given on the command line: 64 hex characters or standard base64.
fn parse_hash(s: &str, what: &str) -> Result<Hash, UsageError> {
    let s = s.trim();
    let parsed = if s.len() == 64 {
        from_hex(s)
    } else {
        from_b64(s)
    };
    parsed.map_err(|e| UsageError(format!("{what} is not a hash: {e}.")))
}

#[derive(Serialize)]
struct Outcome<'a> {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(flatten)]
    detail: Option<&'a serde_json::Value>,
}

fn run_verify_inclusion(
    leaf_hash: &str,
    index: u64,
    size: u64,
    root: &str,
    proof: &str,
) -> Result<bool, UsageError> {
    let leaf = from_hex(leaf_hash.trim())
        .map_err(|e| UsageError(format!("--leaf-hash is not a hex hash: {e}.")))?;
    let root = parse_hash(root, "--root")?;
    let proof = proof
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
        .map(|(i, p)| parse_hash(p, &format!("--proof element {}", i + 1)).map(|h| h.to_vec()))
        .collect::<Result<Vec<_>, _>>()?;
    let detail = serde_json::json!({
        "leaf_hash": to_hex(&leaf),
        "index": index,
        "size": size,
        "root": to_b64(&root),
    });
    match verify_inclusion(&leaf, index, size, &proof, &root) {
        Ok(()) => {
            print_json(&Outcome {
                ok: true,
                reason: None,
                detail: Some(&detail),
            });
            Ok(true)
        }
        Err(e) => {
            print_json(&Outcome {
                ok: false,
                reason: Some(e.to_string()),
                detail: Some(&detail),
            });
            let _ = writeln!(io::stderr(), "accord-audit: inclusion proof rejected: {e}");
            Ok(false)
        }
    }
}

fn run_verify_receipt(file: &Path, key: Option<&str>) -> Result<bool, UsageError> {
    let key = key.map(resolve_key).transpose()?;
    let text = if file.as_os_str() == "-" {
        let mut s = String::new();
        io::Read::read_to_string(&mut io::stdin(), &mut s).map_err(|e| {
            UsageError(format!("cannot read the receipt from standard input: {e}."))
        })?;
        s
    } else {
        read_text(file, "receipt")?
    };
    let result = accord_audit::receipt::verify_receipt(&text, key.as_ref());
    if key.is_none() {
        warn_unpinned("receipt");
    }
    match result {
        Ok(report) => {
            let detail = serde_json::to_value(&report).unwrap_or_default();
            print_json(&Outcome {
                ok: true,
                reason: None,
                detail: Some(&detail),
            });
            Ok(true)
        }
        Err(reason) => {
            let _ = writeln!(io::stderr(), "accord-audit: receipt rejected: {reason}");
            print_json(&Outcome {
                ok: false,
                reason: Some(reason),
                detail: None,
            });
            Ok(false)
        }
    }
}

fn run_checkpoint(note_file: &Path, key: &str) -> Result<bool, UsageError> {
    let key = resolve_key(key)?;
    let note = read_note(note_file, "checkpoint note")?;
    match Checkpoint::open(&note, &key) {
        Ok(cp) => {
            let detail = serde_json::json!({
                "origin": cp.origin,
                "size": cp.size,
                "root": to_b64(&cp.root),
                "root_hex": to_hex(&cp.root),
                "key": format!("{}+{:08x}", key.name(), key.key_id()),
            });
            print_json(&Outcome {
                ok: true,
                reason: None,
                detail: Some(&detail),
            });
            Ok(true)
        }
        Err(e) => {
            print_json(&Outcome {
                ok: false,
                reason: Some(e.to_string()),
                detail: None,
            });
            let _ = writeln!(io::stderr(), "accord-audit: checkpoint rejected: {e}");
            Ok(false)
        }
    }
}
