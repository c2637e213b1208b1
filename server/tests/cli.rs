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
    accord_in(data_dir, Some(POLICIES), Path::new("."), args)
}

/// Runs `accord` from the working directory `cwd`, with a policies folder or (None) the built-in
/// policies.
fn accord_in(data_dir: &Path, policies: Option<&str>, cwd: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("ACCORD_DATABASE_URL")
        .env_remove("ACCORD_LISTEN")
        .env_remove("ACCORD_CONFIG")
        .env_remove("ACCORD_POLICIES_DIR");
    if let Some(p) = policies {
        cmd.env("ACCORD_POLICIES_DIR", p);
    }
    cmd.output().expect("run accord")
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
    // Requests that go well are not logged by default; errors are, by route pattern only.
    let res = http_get(&addr, "/healthz");
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    let res = http_get(
        &addr,
        "/v1/subjects/alice@example.org/consents?note=private-query",
    );
    assert!(res.starts_with("HTTP/1.1 401"), "{res}");

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
    let handled: Vec<&String> = rest.iter().filter(|l| l.contains("handled")).collect();
    assert_eq!(handled.len(), 1, "only the error is logged: {handled:?}");
    assert!(
        handled[0].contains("/v1/subjects/{id}/consents") && handled[0].contains("status=401"),
        "{handled:?}"
    );
    assert!(
        !rest
            .iter()
            .any(|l| l.contains("alice@example.org") || l.contains("private-query")),
        "{rest:?}"
    );

    let verified = accord(d, &["ledger", "verify"]);
    let out = String::from_utf8_lossy(&verified.stdout);
    assert_eq!(verified.status.code(), Some(0), "{out}");
    // Initialisation, start-up, the purposes and notice of policies/purposes.toml, and the
    // first-administrator link.
    assert!(out.contains("ledger OK: 7 entries"), "{out}");
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
        1 + 7 + 1,
        "header, seven entries, one checkpoint"
    );

    let cp = accord(d, &["ledger", "checkpoint"]);
    assert!(String::from_utf8_lossy(&cp.stdout).contains("\n7\n"));
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
    {
        use diesel::connection::SimpleConnection;
        let url = accord::db::DatabaseUrl::Sqlite(d.join("accord.db"));
        let mut c = accord::commands::open(&url, false).unwrap();
        c.batch_execute(
            "DROP TRIGGER ledger_entries_no_update; \
             UPDATE ledger_entries SET body = replace(body, 'server.started', 'server.stopped') \
             WHERE seq = 1",
        )
        .unwrap();
    }
    let out = accord(d, &["ledger", "verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("seq 1"), "{stdout}");
}

fn accord_with_stdin(data_dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("ACCORD_DATABASE_URL")
        .env("ACCORD_POLICIES_DIR", POLICIES)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One HTTP/1.1 exchange: status, headers (lowercase names), body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn cookie_from(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .filter_map(|(_, v)| v.split(';').next())
        .filter_map(|c| c.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[test]
fn users_and_tokens_from_the_command_line_and_no_secret_in_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let password = "correct horse battery staple";

    let out = accord_with_stdin(
        d,
        &[
            "user",
            "add",
            "--email",
            "Ada@Example.org",
            "--name",
            "Ada",
            "--role",
            "admin",
            "--role",
            "auditor",
            "--password-stdin",
        ],
        &format!("{password}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("added ada@example.org"));

    let out = accord(
        d,
        &[
            "user",
            "add",
            "--email",
            "bob@example.org",
            "--name",
            "Bob",
            "--role",
            "marketer",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let link = stdout
        .split_whitespace()
        .find(|w| w.contains("/ui/setup?token="))
        .expect("a set-password link")
        .to_string();
    let link_secret = link.split("token=").nth(1).unwrap().to_string();

    assert_clean_failure(
        &accord(
            d,
            &["user", "add", "--email", "bob@example.org", "--name", "B"],
        ),
        "already exists",
    );
    assert_clean_failure(
        &accord(
            d,
            &[
                "user",
                "add",
                "--email",
                "c@example.org",
                "--name",
                "C",
                "--role",
                "root",
            ],
        ),
        "is not a role",
    );
    let out = accord(
        d,
        &[
            "user",
            "roles",
            "bob@example.org",
            "--grant",
            "legal",
            "--revoke",
            "marketer",
        ],
    );
    assert!(
        text(&out.stdout).contains("now holds: legal"),
        "{}",
        text(&out.stderr)
    );
    let out = accord(d, &["user", "list"]);
    let list = text(&out.stdout);
    assert!(
        list.contains("ada@example.org\tAda\tadmin, auditor\tactive"),
        "{list}"
    );
    assert!(
        list.contains("bob@example.org\tBob\tlegal\tactive"),
        "{list}"
    );
    let out = accord(d, &["user", "disable", "bob@example.org"]);
    assert!(text(&out.stdout).contains("disabled bob@example.org"));
    assert!(text(&accord(d, &["user", "list"]).stdout).contains("legal\tdisabled"));

    let out = accord(
        d,
        &[
            "token", "issue", "--client", "crm", "--role", "service", "--ttl", "30d",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_string();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let jti = text(&out.stderr)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(text(&accord(d, &["token", "list"]).stdout).contains(&format!("{jti}\tcrm\tservice")));
    assert_clean_failure(
        &accord(
            d,
            &[
                "token", "issue", "--client", "crm", "--role", "service", "--ttl", "forever",
            ],
        ),
        "ttl",
    );

    // The server, with debug logging, sees the token, a sign-in, and a revocation from the CLI.
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(d)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "debug")
        .env("ACCORD_POLICIES_DIR", POLICIES)
        .env_remove("ACCORD_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server log");
        log.push(line.clone());
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let bearer = format!("Bearer {token}");
    let (status, _, body) = http(
        &addr,
        "GET",
        "/v1/access/me",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"service\""));

    let (status, headers, page) = http(&addr, "GET", "/ui/login", &[], "");
    assert_eq!(status, 200);
    let pre = cookie_from(&headers, "accord_pre").unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let origin = format!("http://{addr}");
    let form = form_encode(&[
        ("email", "ada@example.org"),
        ("password", password),
        ("csrf", &csrf),
    ]);
    let (status, headers, _) = http(
        &addr,
        "POST",
        "/ui/login",
        &[
            ("Cookie", &format!("accord_pre={pre}")),
            ("Origin", &origin),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &form,
    );
    assert_eq!(status, 303);
    let session = cookie_from(&headers, "accord_session").unwrap();

    let out = accord(d, &["token", "revoke", &jti]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let started = Instant::now();
    loop {
        let (status, _, _) = http(
            &addr,
            "GET",
            "/v1/access/me",
            &[("Authorization", &bearer)],
            "",
        );
        if status == 401 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "revocation not applied within a second"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    log.extend(rx.try_iter());
    let log = log.join("\n");
    assert!(log.contains("handled"), "debug log captured");
    let key_pem = std::fs::read_to_string(d.join("token-signing-key.pem")).unwrap();
    let key_body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let subject_key = std::fs::read_to_string(d.join("subject-ref.key")).unwrap();
    for (what, secret) in [
        ("password", password),
        ("token", token.as_str()),
        ("token signature", token.rsplit('.').next().unwrap()),
        ("session cookie", session.as_str()),
        ("pre-session cookie", pre.as_str()),
        ("CSRF token", csrf.as_str()),
        ("set-password link", link_secret.as_str()),
        ("signing key", key_body.as_str()),
        ("subject key", subject_key.trim()),
    ] {
        assert!(!log.contains(secret), "the {what} appears in the log");
    }
}

/// Runs `accord ARGS` and asserts that it exits 0 and prints `says` on standard output; returns the
/// output.
fn accord_says(d: &Path, args: &[&str], says: &str) -> Output {
    let out = accord(d, args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(says), "{}", text(&out.stdout));
    out
}

/// The ledger's entry count, from `accord ledger verify`.
fn ledger_entries(d: &Path) -> u64 {
    ledger_entries_with(d, None)
}

/// The ledger's entry count, with the policies folder given (None: the built-in policies).
fn ledger_entries_with(d: &Path, policies: Option<&str>) -> u64 {
    let out = accord_in(d, policies, Path::new("."), &["ledger", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    text.split("ledger OK: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no entry count in {text:?}"))
}

#[test]
fn purposes_load_and_consent_import_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let defs = d.join("defs.toml");
    std::fs::write(
        &defs,
        "[[purpose]]\nkey = \"cli.newsletter\"\ntitle = \"Newsletter\"\nlegal_basis = \"consent\"\n\
         lifetime_days = 365\n\n[[notice]]\nkey = \"cli.privacy\"\nversion = \"1\"\n\
         text = \"We send a newsletter.\"\nurl = \"https://example.com/privacy\"\n\
         effective_at = \"2026-01-01T00:00:00Z\"\n",
    )
    .unwrap();
    accord_says(
        d,
        &["purposes", "load", defs.to_str().unwrap()],
        "1 purposes changed, 1 notices published, 0 unchanged",
    );
    // Loading the same file again records nothing.
    let before = ledger_entries(d);
    accord_says(
        d,
        &["purposes", "load", defs.to_str().unwrap()],
        "0 purposes changed, 0 notices published, 2 unchanged",
    );
    assert_eq!(ledger_entries(d), before);

    // A file with one bad row: nothing is written, and the error names the line and the field.
    let row = |subject: &str, purpose: &str| {
        format!(
            "{{\"subject\":\"{subject}\",\"purpose\":\"{purpose}\",\"channel\":\"email\",\
             \"decision\":\"granted\",\"collected_at\":\"2026-11-01T10:00:00Z\",\
             \"notice_key\":\"cli.privacy\",\"notice_version\":\"1\"}}\n"
        )
    };
    let bad = d.join("bad.ndjson");
    std::fs::write(
        &bad,
        row("alice", "cli.newsletter") + row("bob", "no.such.purpose").as_str(),
    )
    .unwrap();
    let out = accord(d, &["consent", "import", bad.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(stderr.contains("purpose"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(ledger_entries(d), before, "a rejected import wrote nothing");

    // A good file: every row recorded, with a progress bar; a re-run records nothing new.
    let good = d.join("good.ndjson");
    std::fs::write(
        &good,
        row("alice", "cli.newsletter") + row("bob", "cli.newsletter").as_str(),
    )
    .unwrap();
    let out = accord_says(
        d,
        &["consent", "import", good.to_str().unwrap()],
        "2 rows, 2 recorded, 0 already recorded",
    );
    // Piped, as here, there is no progress bar: only the summary line.
    assert!(
        !text(&out.stderr).contains('\r') && !text(&out.stderr).contains("2/2 rows"),
        "{}",
        text(&out.stderr)
    );
    let after = ledger_entries(d);
    assert!(after >= before + 2, "{before} → {after}");
    accord_says(
        d,
        &["consent", "import", good.to_str().unwrap()],
        "2 rows, 0 recorded, 2 already recorded",
    );
    assert_eq!(ledger_entries(d), after);
}

/// The binary runs from any directory on its built-in policies, and a command on a fresh data
/// directory sees what a first start sets up: the built-in purposes and notices.
#[test]
fn runs_anywhere_and_the_first_command_sees_the_built_in_purposes() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let rows = d.with_extension("ndjson");
    std::fs::write(
        &rows,
        "{\"subject\":\"alice\",\"purpose\":\"marketing.email\",\"channel\":\"email\",\
         \"decision\":\"granted\",\"collected_at\":\"2026-11-01T10:00:00Z\",\
         \"notice_key\":\"privacy\",\"notice_version\":\"2026-01\"}\n",
    )
    .unwrap();
    let out = accord_in(
        &d,
        None,
        elsewhere.path(),
        &["consent", "import", rows.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 rows, 1 recorded"),
        "{}",
        text(&out.stdout)
    );
    assert!(ledger_entries_with(&d, None) > 2);
}

/// A start that fails on a setting or a file writes nothing: no data directory is left behind.
#[test]
fn a_bad_start_leaves_no_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let bad_policies = dir.path().join("policies");
    std::fs::create_dir_all(&bad_policies).unwrap();
    std::fs::copy(
        Path::new(POLICIES).join("model.conf"),
        bad_policies.join("model.conf"),
    )
    .unwrap();
    std::fs::write(bad_policies.join("policy.csv"), "p, root, user, read\n").unwrap();
    let bad = bad_policies.to_str().unwrap();
    let cases: Vec<(Option<&str>, Vec<&str>, &str)> = vec![
        (
            Some(bad),
            vec!["serve", "--listen", "127.0.0.1:0"],
            "policy.csv",
        ),
        (
            Some(bad),
            vec!["token", "issue", "--client", "x", "--role", "service"],
            "policy.csv",
        ),
        (
            Some("/nonexistent/policies"),
            vec!["serve", "--listen", "127.0.0.1:0"],
            "does not exist",
        ),
    ];
    for (policies, args, mentions) in cases {
        let out = accord_in(&d, policies, Path::new("."), &args);
        assert_clean_failure(&out, mentions);
        assert!(!d.exists(), "{args:?} left {} behind", d.display());
    }
    std::fs::write(bad_policies.join("policy.csv"), "p, admin, user, read\n").unwrap();
    std::fs::write(
        bad_policies.join("purposes.toml"),
        "[[purpose]]\nkey = \"\"\n",
    )
    .unwrap();
    let out = accord_in(
        &d,
        Some(bad),
        Path::new("."),
        &["serve", "--listen", "127.0.0.1:0"],
    );
    assert_clean_failure(&out, "purposes.toml");
    assert!(!d.exists());
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = accord_in(&d, None, Path::new("."), &["serve", "--listen", &addr]);
    assert_clean_failure(&out, "cannot listen");
    assert!(!d.exists());
}
