//! The `accord` binary as an operator meets it: bad values end with one sentence and exit status 2,
//! SIGTERM stops it gracefully, and the ledger commands report and exit 0/1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_accord");
const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");

fn accord(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("ACCORD_DATABASE_URL")
        .env_remove("ACCORD_LISTEN")
        .env_remove("ACCORD_CONFIG")
        .env("ACCORD_POLICIES_DIR", POLICIES)
        .output()
        .expect("run accord")
}

/// Exit status 2 and one line on stderr, no panic, no backtrace.
fn assert_clean_failure(out: &Output, mentions: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.starts_with("accord: "), "{stderr}");
    assert!(
        last.contains(mentions),
        "{last:?} should mention {mentions:?}"
    );
}

#[test]
fn bad_values_end_with_one_sentence_and_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_clean_failure(
        &accord(d, &["--database-url", "mysql://x/y", "migrate"]),
        "database URL",
    );
    assert_clean_failure(
        &accord(
            d,
            &[
                "--database-url",
                "postgres://nobody@127.0.0.1:1/none",
                "serve",
            ],
        ),
        "cannot connect to PostgreSQL",
    );
    assert_clean_failure(
        &accord(d, &["serve", "--listen", "nowhere"]),
        "listen address",
    );
    let cfg = d.join("bad.toml");
    std::fs::write(&cfg, "listen = 5\n").unwrap();
    assert_clean_failure(
        &accord(d, &["--config", cfg.to_str().unwrap(), "serve"]),
        "not valid",
    );
    assert_clean_failure(
        &accord(&d.join("missing"), &["ledger", "verify"]),
        "no database",
    );
}

#[test]
fn port_in_use_is_a_clean_failure() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_clean_failure(
        &accord(dir.path(), &["serve", "--listen", &addr]),
        "cannot listen",
    );
}

#[test]
fn unreadable_key_is_a_clean_failure() {
    let dir = tempfile::tempdir().unwrap();
    let out = accord(dir.path(), &["migrate"]);
    assert!(out.status.success());
    std::fs::write(dir.path().join("ledger-signing-key.pem"), "not a key").unwrap();
    assert_clean_failure(
        &accord(dir.path(), &["serve", "--listen", "127.0.0.1:0"]),
        "ledger-signing-key.pem",
    );
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serve_stops_gracefully_on_sigterm_and_the_ledger_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let migrated = accord(d, &["migrate"]);
    assert!(migrated.status.success());
    assert!(String::from_utf8_lossy(&migrated.stdout).contains("applied"));
    let again = accord(d, &["migrate"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("no pending migrations"));

    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(d)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env("ACCORD_POLICIES_DIR", POLICIES)
        .env_remove("ACCORD_DATABASE_URL")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let started = Instant::now();
    let addr = loop {
        let line = lines.next().expect("server log ended early").unwrap();
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no address logged"
        );
    };
    let res = http_get(&addr, "/readyz");
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.to_ascii_lowercase().contains("x-request-id"), "{res}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("accord stopped")),
        "{rest:?}"
    );

    let verified = accord(d, &["ledger", "verify"]);
    let out = String::from_utf8_lossy(&verified.stdout);
    assert_eq!(verified.status.code(), Some(0), "{out}");
    // Initialisation, start-up, and the first-administrator link.
    assert!(out.contains("ledger OK: 3 entries"), "{out}");
    assert!(
        out.contains("(0 entries after the latest checkpoint)"),
        "{out}"
    );

    let export = d.join("export.jsonl");
    let exported = accord(d, &["ledger", "export", "--out", export.to_str().unwrap()]);
    assert!(exported.status.success());
    let text = std::fs::read_to_string(&export).unwrap();
    assert_eq!(
        text.lines().count(),
        1 + 3 + 1,
        "header, three entries, one checkpoint"
    );

    let cp = accord(d, &["ledger", "checkpoint"]);
    assert!(String::from_utf8_lossy(&cp.stdout).contains("\n3\n"));
}

#[test]
fn verify_exits_1_and_names_the_seq_when_the_ledger_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(d)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("ACCORD_POLICIES_DIR", POLICIES)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    while let Some(Ok(l)) = lines.next() {
        if l.contains("accord listening") {
            break;
        }
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());

    // Damage seq 1 directly in the file, past the triggers, as someone with the file could.
    let db = d.join("accord.db");
    let script = format!(
        "import sqlite3; c = sqlite3.connect('{}'); \
         c.execute('DROP TRIGGER ledger_entries_no_update'); \
         c.execute(\"UPDATE ledger_entries SET body = replace(body, 'server.started', 'server.stopped') WHERE seq = 1\"); \
         c.commit()",
        db.display()
    );
    let ok = Command::new("python3").args(["-c", &script]).status();
    if !ok.map(|s| s.success()).unwrap_or(false) {
        eprintln!("SKIPPED (python3 with sqlite3 unavailable)");
        return;
    }
    let out = accord(d, &["ledger", "verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("seq 1"), "{stdout}");
}
