//! Ledger benchmark: prints figures, asserts nothing. Run with
//!
//!     cargo bench -p accord --bench ledger
//!
//! Environment: `ACCORD_BENCH_ENTRIES` (size of the tree for the proof and verification figures,
//! default 1,000,000), `ACCORD_BENCH_APPENDS` (appends timed per backend, default 100,000),
//! `ACCORD_BENCH_WRITERS` (concurrent writers, default 64; a run at 4× that many follows, since a
//! closed loop of N writers caps a batch at N entries), `ACCORD_BENCH_POSTGRES_URL` (a server
//! where a scratch database is created and dropped; PostgreSQL is skipped without it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use accord::clock::{SharedClock, SystemClock};
use accord::config::LedgerSettings;
use accord::db::{self, AnyConnection, DatabaseUrl, Manager};
use accord::keys::Keys;
use accord::ledger::{Actor, Ledger, LedgerEvent, proofs, verify};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use ed25519_dalek::SigningKey;

#[derive(serde::Serialize)]
struct Sent {
    n: u64,
    subject: String,
    channel: &'static str,
}

impl LedgerEvent for Sent {
    fn kind(&self) -> &'static str {
        "bench.sent"
    }
    fn entity(&self) -> String {
        format!("send:{}", self.n)
    }
    fn subject(&self) -> Option<&str> {
        Some(&self.subject)
    }
}

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn keys() -> Arc<Keys> {
    Arc::new(Keys::from_parts(
        SigningKey::from_bytes(&[1; 32]),
        SigningKey::from_bytes(&[2; 32]),
        [3; 32],
    ))
}

fn settings() -> LedgerSettings {
    LedgerSettings {
        origin: Some("bench.accord/ledger".into()),
        batch_max: 512,
        batch_wait: Duration::from_millis(2),
        checkpoint_interval: Duration::from_secs(3600),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Appends `total` events from `writers` concurrent tasks; returns (appends/s, latencies sorted).
fn appends(ledger: &Ledger, total: u64, writers: u64, first: u64) -> (f64, Vec<Duration>) {
    let system = actix_web::rt::System::new();
    system.block_on(async {
        let started = Instant::now();
        let per = total / writers;
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let l = ledger.clone();
                actix_web::rt::spawn(async move {
                    let mut lat = Vec::with_capacity(per as usize);
                    for i in 0..per {
                        let n = first + w * per + i;
                        let ev = Sent {
                            n,
                            subject: format!("subject-{}", n % 100_000),
                            channel: "email",
                        };
                        let t = Instant::now();
                        l.record(Actor::system(), None, &ev).await.expect("append");
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::with_capacity(total as usize);
        for t in tasks {
            all.extend(t.await.expect("writer"));
        }
        let secs = started.elapsed().as_secs_f64();
        all.sort_unstable();
        (all.len() as f64 / secs, all)
    })
}

fn open_ledger(url: &DatabaseUrl, clock: SharedClock) -> Ledger {
    let mut conn = Manager::new(url.clone()).open().expect("connect");
    db::run_migrations(&mut conn).expect("migrate");
    Ledger::open(&Manager::new(url.clone()), &settings(), keys(), clock).expect("open ledger")
}

fn shutdown(ledger: &Ledger) {
    actix_web::rt::System::new().block_on(ledger.shutdown());
}

fn report_appends(label: &str, ledger: &Ledger, total: u64, writers: u64, first: u64) {
    let (rate, lat) = appends(ledger, total, writers, first);
    println!(
        "{label}: {total} appends, {writers} concurrent writers: {rate:.0} appends/s, latency p50 {} p99 {}",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.99))
    );
}

fn proof_figures(conn: &mut AnyConnection, size: u64) {
    let mut times = Vec::new();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..1000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let seq = state % size;
        let t = Instant::now();
        let p = proofs::inclusion(conn, seq, size).expect("proof");
        times.push(t.elapsed());
        assert!(!p.is_empty() || size == 1);
    }
    times.sort_unstable();
    println!(
        "inclusion proof at {size} entries: p50 {} p99 {} (1000 random seqs)",
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99))
    );
    let t = Instant::now();
    proofs::consistency(conn, size / 3, size).expect("consistency");
    println!("consistency proof {}→{size}: {}", size / 3, ms(t.elapsed()));
}

fn main() {
    let entries = env_u64("ACCORD_BENCH_ENTRIES", 1_000_000);
    let total = env_u64("ACCORD_BENCH_APPENDS", 100_000).min(entries.max(1));
    let writers = env_u64("ACCORD_BENCH_WRITERS", 64).max(1);
    let clock: SharedClock = Arc::new(SystemClock);
    println!(
        "accord ledger benchmark (release: {})",
        !cfg!(debug_assertions)
    );

    // SQLite, synchronous=FULL.
    let dir = tempfile::tempdir().expect("temp dir");
    let url = DatabaseUrl::Sqlite(dir.path().join("bench.db"));
    let ledger = open_ledger(&url, clock.clone());
    report_appends("sqlite (synchronous=FULL)", &ledger, total, writers, 0);
    report_appends(
        "sqlite (synchronous=FULL)",
        &ledger,
        total,
        writers * 4,
        total,
    );
    // Fill up to the tree size for the proof and verification figures.
    let have = ledger.size();
    if entries > have {
        let t = Instant::now();
        let (rate, _) = appends(&ledger, entries - have, writers * 4, 2 * total);
        println!(
            "filled to {} entries in {:.1} s ({rate:.0} appends/s)",
            ledger.size(),
            t.elapsed().as_secs_f64()
        );
    }
    actix_web::rt::System::new()
        .block_on(ledger.publish_checkpoint())
        .expect("checkpoint");
    let size = ledger.size();
    let verifier = ledger.writer().verifier.clone();
    let origin = ledger.origin().to_string();
    shutdown(&ledger);

    let mut conn = Manager::new(url.clone()).open().expect("connect");
    proof_figures(&mut conn, size);

    let t = Instant::now();
    let outcome = verify::verify_database(&mut conn, &verifier, &[]).expect("verify");
    let secs = t.elapsed().as_secs_f64();
    let summary = outcome.expect("ledger verifies");
    println!(
        "online verification: {} entries in {secs:.2} s = {:.0} entries/s",
        summary.entries,
        summary.entries as f64 / secs
    );

    let export = dir.path().join("export.jsonl");
    let cp = accord::ledger::export::latest(&mut conn).expect("checkpoint");
    {
        let f = std::fs::File::create(&export).expect("export file");
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        accord::ledger::export::write_export(
            &mut conn,
            &origin,
            &verifier.to_vkey(),
            &cp,
            &mut w,
            |_| {},
        )
        .expect("export");
    }
    let bytes = std::fs::metadata(&export).map(|m| m.len()).unwrap_or(0);
    let t = Instant::now();
    let f = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&export).unwrap());
    let report = accord_audit::export::verify_export(f, &[], None, Default::default())
        .expect("export verifies");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "offline verification (accord-audit): {} entries ({:.0} MB) in {secs:.2} s = {:.0} entries/s",
        report.entries,
        bytes as f64 / 1e6,
        report.entries as f64 / secs
    );
    drop(conn);

    // PostgreSQL, default fsync.
    match std::env::var("ACCORD_BENCH_POSTGRES_URL") {
        Ok(admin) => {
            let name = format!("accord_bench_{}", std::process::id());
            let mut a = PgConnection::establish(&admin).expect("postgres");
            a.batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("create db");
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            let url = DatabaseUrl::Postgres(format!("{base}/{name}"));
            let ledger = open_ledger(&url, clock.clone());
            report_appends("postgres (fsync on)", &ledger, total, writers, 0);
            report_appends("postgres (fsync on)", &ledger, total, writers * 4, total);
            shutdown(&ledger);
            let _ = a.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"));
        }
        Err(_) => println!("postgres: skipped (set ACCORD_BENCH_POSTGRES_URL)"),
    }
}
