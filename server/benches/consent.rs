//! Consent under load: loads `ACCORD_BENCH_SUBJECTS` subjects (default 1,000,000) × 3 purposes
//! through the import path, then runs a server in a second process and measures it from a third
//! (wrk, curl) on loopback:
//!
//! - single checks (`GET /v1/consents/check`, random subjects) against a plain actix-web handler
//!   returning a fixed small JSON body in the same server (the ceiling);
//! - batch checks (10,000 items per request) and the filter (the whole list as plain text);
//! - consent writes (`POST /v1/consents`, SQLite with synchronous=FULL);
//! - resident memory of the loaded server against the same server with no consent, per record.
//!
//! Prints figures, asserts nothing. Run with
//!
//!     cargo bench -p accord --bench consent
//!
//! Environment: `ACCORD_BENCH_SUBJECTS`, `ACCORD_BENCH_SECONDS` (per wrk run, default 10),
//! `ACCORD_BENCH_ROUNDS` (default 3; medians are reported), `ACCORD_BENCH_CONNECTIONS` (default 64),
//! `ACCORD_BENCH_DIR` (keep the loaded database there and reuse it on the next run with the same
//! number of subjects instead of loading again; a run that measured writes leaves it to be loaded
//! afresh), `ACCORD_BENCH_PARTS` (a comma-separated subset of
//! `memory,checks,dpa,batch,filter,writes`; default all). The `dpa` part records a processor
//! with a DPA and measures single coverage checks (`POST /v1/dpas/check`) against single consent
//! checks in the same run.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord::Application;
use accord::authz::{Access, Routes};
use accord::clock::{Clock, SystemClock, Timestamp};
use accord::consent::model::{Channel, ConsentRecord, Decision, LegalBasis, Method};
use accord::ledger::Actor;
use actix_web::HttpResponse;
use common::{WrkResult, env_u64, median, settings, summary, wrk};

const PURPOSES: [(&str, Channel); 3] = [
    ("marketing.email", Channel::Email),
    ("analytics", Channel::Web),
    ("ads.personalised", Channel::Ads),
];
const SERVE_ENV: &str = "ACCORD_BENCH_SERVE_DIR";

async fn fixed() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"allowed": true, "reason": "granted", "seq": 1}))
}

fn bench_routes(r: &mut Routes) {
    r.get("/bench/fixed", Access::Public, fixed);
}

/// The server process: starts on `dir`, prints its address and a service token, serves.
fn serve_child(dir: PathBuf) {
    // Logging as `accord serve` sets it up (default filter and access log), so its cost is in
    // the figures; the parent sends the lines to a file, as a log collector would take them.
    accord::telemetry::init_logging(accord::config::LogFormat::Text);
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build_with_routes(
            settings(&dir),
            Arc::new(SystemClock),
            Some(bench_routes),
        )
        .await
        .expect("application");
        let token = common::service_token(&app, Duration::from_secs(6 * 3600)).await;
        println!("READY {} {token}", app.address());
        std::io::stdout().flush().ok();
        app.run_until_stopped().await.expect("server");
    });
}

struct Server {
    child: Child,
    addr: String,
    token: String,
}

impl Server {
    fn start(dir: &Path) -> Server {
        std::fs::create_dir_all(dir).expect("server directory");
        let log = std::fs::File::create(dir.join("server.log")).expect("server log");
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .env(SERVE_ENV, dir)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("server process");
        let out = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(out)
            .read_line(&mut line)
            .expect("server line");
        let mut parts = line.split_whitespace();
        assert_eq!(parts.next(), Some("READY"), "{line}");
        let addr = parts.next().expect("address").to_string();
        let token = parts.next().expect("token").to_string();
        // Let the access follower see the token.
        std::thread::sleep(Duration::from_millis(600));
        Server { child, addr, token }
    }

    fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    }

    /// Stops the server gracefully (SIGTERM) and waits for it.
    fn stop(self) {
        drop(self);
    }
}

/// However the benchmark ends, a panic included, the server process does not outlive it.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn record(i: u64, purpose: usize, now: Timestamp) -> ConsentRecord {
    let (key, channel) = PURPOSES[purpose];
    let mut r = ConsentRecord {
        subject: format!("s{i}"),
        purpose: key.into(),
        channel,
        // One in five has withdrawn.
        decision: if (i + purpose as u64).is_multiple_of(5) {
            Decision::Withdrawn
        } else {
            Decision::Granted
        },
        legal_basis: LegalBasis::Consent,
        method: Method::Import,
        notice: None,
        collected_at: Timestamp(now.micros() - 86_400_000_000),
        expires_at: None,
        jurisdiction: None,
        source: Some("bench".into()),
        gpc: false,
        evidence: None,
        fingerprint: String::new(),
    };
    r.fingerprint = r.compute_fingerprint();
    r
}

/// Loads the consent records through the import path (ledger entries and projections).
fn load(dir: &Path, subjects: u64) -> (u64, f64) {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings(dir))
            .await
            .expect("application");
        let svc = accord::consent::api::service(&app.state());
        let started = Instant::now();
        let now = SystemClock.now();
        let chunk = 50_000u64;
        let mut recorded = 0;
        let mut i = 0;
        while i < subjects {
            let end = (i + chunk).min(subjects);
            let records: Vec<ConsentRecord> = (i..end)
                .flat_map(|s| (0..PURPOSES.len()).map(move |p| record(s, p, now)))
                .collect();
            let s = svc
                .import(Actor::system(), None, records, &|_| {}, None)
                .await
                .expect("import");
            recorded += s.recorded;
            i = end;
            eprint!("\rloaded {recorded} consent records");
        }
        eprintln!();
        let secs = started.elapsed().as_secs_f64();
        // Stops the server and drains the ledger like SIGTERM would.
        let handle = app.handle();
        let running = actix_web::rt::spawn(app.run_until_stopped());
        handle.stop(true).await;
        let _ = running.await;
        (recorded, secs)
    })
}

/// Records a processor with a DPA covering e-mail marketing (for the coverage check part); what is
/// already there stays.
fn contracts(dir: &Path) {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings(dir))
            .await
            .expect("application");
        let svc = accord::dpa::api::service(&app.state());
        let vendor = accord::dpa::input::VendorInput {
            id: Some("mailer".into()),
            name: Some("Mailer".into()),
            country: Some("DE".into()),
            role: Some("processor".into()),
            ..Default::default()
        };
        svc.define_vendor(
            Actor::system(),
            None,
            vendor.validate(None).unwrap(),
            false,
            None,
        )
        .await
        .expect("vendor");
        let dpa: accord::dpa::input::DpaInput = serde_json::from_value(serde_json::json!({
            "id": "mailer-dpa", "vendor": "mailer", "version": {
                "reference": "bench", "signed_on": "2026-01-01", "effective_from": "2026-01-01",
                "purposes": ["marketing.email"], "data_categories": ["email_address"],
                "clauses": {"instructions": true, "confidentiality": true, "security": true,
                    "sub_processing": true, "assistance": true, "deletion_or_return": true,
                    "audits": true}}}))
        .expect("DPA body");
        match svc
            .create_dpa(Actor::system(), None, dpa.validate().unwrap(), None)
            .await
        {
            Ok(_) => {}
            Err(e) if e.conflict_code() == Some(accord::error::ConflictCode::Exists) => {}
            Err(e) => panic!("DPA: {e}"),
        }
        let handle = app.handle();
        let running = actix_web::rt::spawn(app.run_until_stopped());
        handle.stop(true).await;
        let _ = running.await;
    })
}

fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("script");
    p
}

fn main() {
    if let Some(dir) = std::env::var_os(SERVE_ENV) {
        serve_child(PathBuf::from(dir));
        return;
    }
    let subjects = env_u64("ACCORD_BENCH_SUBJECTS", 1_000_000);
    let seconds = env_u64("ACCORD_BENCH_SECONDS", 10);
    let rounds = env_u64("ACCORD_BENCH_ROUNDS", 3).max(1);
    let connections = env_u64("ACCORD_BENCH_CONNECTIONS", 64);
    const PARTS: [&str; 6] = ["memory", "checks", "dpa", "batch", "filter", "writes"];
    let parts: Vec<String> = match std::env::var("ACCORD_BENCH_PARTS") {
        Ok(v) => v.split(',').map(|p| p.trim().to_string()).collect(),
        Err(_) => PARTS.iter().map(|p| p.to_string()).collect(),
    };
    if let Some(bad) = parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
        panic!("ACCORD_BENCH_PARTS: unknown part {bad:?}; the parts are {PARTS:?}");
    }
    let part = |name: &str| parts.iter().any(|p| p == name);
    let work = tempfile::tempdir().expect("temp dir");
    let empty_dir = work.path().join("empty");
    // A kept database is reused only if the marker beside it says it holds exactly this load;
    // anything else there (another size, an interrupted load, writes from an earlier run) is
    // removed and loaded afresh.
    let (data_dir, marker) = match std::env::var_os("ACCORD_BENCH_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            (d.join("data"), Some(d.join("loaded")))
        }
        None => (work.path().join("data"), None),
    };
    let reusable = data_dir.exists()
        && marker.as_ref().is_some_and(|m| {
            std::fs::read_to_string(m)
                .is_ok_and(|said| said.trim() == format!("{subjects} subjects"))
        });
    if !reusable && data_dir.exists() {
        std::fs::remove_dir_all(&data_dir).expect("remove the old data directory");
    }

    // Resident memory with no consent, as the baseline.
    let rss_empty = if part("memory") {
        let empty = Server::start(&empty_dir);
        std::thread::sleep(Duration::from_secs(1));
        let rss = empty.rss_bytes();
        empty.stop();
        rss
    } else {
        0
    };

    let recorded = subjects * PURPOSES.len() as u64;
    if reusable {
        println!("load: reusing {} ({subjects} subjects)", data_dir.display());
    } else {
        if let Some(m) = &marker {
            let _ = std::fs::remove_file(m);
        }
        let (loaded, load_secs) = load(&data_dir, subjects);
        assert_eq!(loaded, recorded, "every record of the load was recorded");
        println!(
            "load: {loaded} consent records ({subjects} subjects × {} purposes) through the import path in {load_secs:.1} s ({:.0} records/s)",
            PURPOSES.len(),
            loaded as f64 / load_secs
        );
        if let Some(m) = &marker {
            std::fs::write(m, format!("{subjects} subjects")).expect("marker");
        }
    }

    if part("dpa") {
        contracts(&data_dir);
    }
    let started = Instant::now();
    let server = Server::start(&data_dir);
    println!(
        "start-up with the index loaded from the database: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(1));
    let rss_loaded = server.rss_bytes();
    if part("memory") {
        println!(
            "resident memory: {:.0} MiB loaded vs {:.0} MiB empty = {:.0} bytes per current-consent entry",
            rss_loaded as f64 / 1048576.0,
            rss_empty as f64 / 1048576.0,
            (rss_loaded.saturating_sub(rss_empty)) as f64 / recorded.max(1) as f64
        );
    }
    let auth = format!("Authorization: Bearer {}", server.token);
    let base = format!("http://{}", server.addr);
    let detail = format!(", {connections} connections, {seconds} s each");

    if part("checks") {
        // Single checks and the ceiling, alternating, random subjects.
        let query = format!(
            "?subject=s\" .. math.random(0, {}) .. \"&purpose=marketing.email&channel=email",
            subjects - 1
        );
        let single = script(
            work.path(),
            "single.lua",
            &format!(
                "math.randomseed(os.time())\nrequest = function()\n  return wrk.format(nil, \"/v1/consents/check{query}\")\nend\n"
            ),
        );
        let ceiling = script(
            work.path(),
            "ceiling.lua",
            &format!(
                "math.randomseed(os.time())\nrequest = function()\n  return wrk.format(nil, \"/bench/fixed{query}\")\nend\n"
            ),
        );
        wrk(&base, &[&auth], Some(&single), 2, connections);
        wrk(&base, &[], Some(&ceiling), 2, connections);
        let (mut checks, mut ceil) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            ceil.push(wrk(&base, &[], Some(&ceiling), seconds, connections));
            checks.push(wrk(&base, &[&auth], Some(&single), seconds, connections));
        }
        let c = summary("ceiling (plain handler, fixed JSON)", &ceil, &detail);
        let s = summary("single checks", &checks, &detail);
        println!("ratio single checks / ceiling: {:.3}", s / c);
    }
    if part("dpa") {
        // A single coverage check (POST, a small JSON body) against the single consent check, in
        // the same run, alternating.
        let consent = script(
            work.path(),
            "consent.lua",
            "request = function()\n  return wrk.format(nil, \"/v1/consents/check?subject=s1&purpose=marketing.email&channel=email\")\nend\n",
        );
        let coverage = script(
            work.path(),
            "coverage.lua",
            "wrk.method = \"POST\"\nwrk.path = \"/v1/dpas/check\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{\"vendor\":\"mailer\",\"purpose\":\"marketing.email\",\"data_categories\":[\"email_address\"]}'\n",
        );
        wrk(&base, &[&auth], Some(&coverage), 2, connections);
        let (mut cov, mut con) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            con.push(wrk(&base, &[&auth], Some(&consent), seconds, connections));
            cov.push(wrk(&base, &[&auth], Some(&coverage), seconds, connections));
        }
        let c = summary("single consent checks (one subject)", &con, &detail);
        let d = summary("single coverage checks", &cov, &detail);
        println!("ratio coverage / consent checks: {:.3}", d / c);
    }
    if part("batch") {
        // Batches of 10,000.
        let items: Vec<serde_json::Value> = (0..10_000u64)
        .map(|k| {
            let i = (k * 7919) % subjects;
            let (p, ch) = PURPOSES[(k % 3) as usize];
            serde_json::json!({"subject": format!("s{i}"), "purpose": p, "channel": ch.as_str()})
        })
        .collect();
        let body_path = work.path().join("batch.json");
        std::fs::write(
            &body_path,
            serde_json::json!({ "items": items }).to_string(),
        )
        .expect("body");
        let batch = script(
            work.path(),
            "batch.lua",
            &format!(
                "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nlocal f = io.open(\"{}\", \"rb\")\nwrk.body = f:read(\"*a\")\nf:close()\n",
                body_path.display()
            ),
        );
        let batch_conns = 4;
        let batches: Vec<WrkResult> = (0..rounds)
            .map(|_| {
                wrk(
                    &format!("{base}/v1/consents/check"),
                    &[&auth],
                    Some(&batch),
                    seconds,
                    batch_conns,
                )
            })
            .collect();
        let b = summary(
            "batch checks (10,000 items a request)",
            &batches,
            &format!(", {batch_conns} connections, {seconds} s each"),
        );
        println!("batch: {:.0} subject-checks/s", b * 10_000.0);
    }
    if part("filter") {
        // The filter over a 1,000,000-id send list (or every subject, if fewer).
        let list_len = subjects.min(1_000_000);
        let list_path = work.path().join("list.txt");
        let mut list = String::with_capacity(list_len as usize * 10);
        for i in 0..list_len {
            list.push_str(&format!("s{}\n", (i * 7919) % subjects));
        }
        std::fs::write(&list_path, list).expect("list");
        let out_path = work.path().join("filtered.ndjson");
        let mut filter_secs = Vec::new();
        let mut trailer = String::new();
        for _ in 0..rounds {
            let started = Instant::now();
            let status = Command::new("curl")
                .args(["-s", "-S", "-o"])
                .arg(&out_path)
                .args(["-H", &auth, "-H", "Content-Type: text/plain"])
                .arg("--data-binary")
                .arg(format!("@{}", list_path.display()))
                .arg(format!(
                    "{base}/v1/consents/filter?purpose=marketing.email&channel=email"
                ))
                .status()
                .expect("curl");
            filter_secs.push(started.elapsed().as_secs_f64());
            assert!(status.success());
            trailer = std::fs::read_to_string(&out_path)
                .unwrap_or_default()
                .lines()
                .last()
                .unwrap_or_default()
                .to_string();
        }
        let f = median(filter_secs);
        println!(
            "filter: {list_len} ids in {:.2} s = {:.0} subject-checks/s (median of {rounds}); trailer {trailer}",
            f,
            list_len as f64 / f
        );
    }
    if part("writes") {
        // Writes change the database: a kept one is not reused after them.
        if let Some(m) = &marker {
            let _ = std::fs::remove_file(m);
        }
        // Writes, with durability on.
        let write = script(
            work.path(),
            "write.lua",
            "math.randomseed(os.time())\nlocal n = 0\nwrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nrequest = function()\n  n = n + 1\n  local body = '{\"subject\":\"w' .. math.random(1, 1000000000) .. '-' .. n .. '\",\"purpose\":\"analytics\",\"channel\":\"web\",\"decision\":\"granted\"}'\n  return wrk.format(nil, \"/v1/consents\", nil, body)\nend\n",
        );
        let writes: Vec<WrkResult> = (0..rounds)
            .map(|_| {
                wrk(
                    &format!("{base}/v1/consents"),
                    &[&auth],
                    Some(&write),
                    seconds,
                    connections,
                )
            })
            .collect();
        summary(
            "consent writes (SQLite, synchronous=FULL)",
            &writes,
            &detail,
        );
    }
    server.stop();
}
