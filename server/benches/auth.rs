//! What authentication and authorisation cost per request: the same small handler behind the
//! full stack (bearer token + Casbin permission) and unguarded, in one run, under load from `wrk`
//! in a second process on loopback. Prints figures, asserts nothing. Run with
//!
//!     cargo bench -p accord --bench auth
//!
//! Environment: `ACCORD_BENCH_SECONDS` (per measurement, default 10), `ACCORD_BENCH_CONNECTIONS`
//! (default 64), `ACCORD_BENCH_ROUNDS` (alternating rounds, default 3; medians are reported).

use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use accord::Application;
use accord::auth::model::Role;
use accord::authz::{Access, Perm, Routes};
use accord::clock::SystemClock;
use accord::config::{Overrides, Settings};
use accord::ledger::Actor;
use actix_web::HttpResponse;

async fn fixed() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"allowed": true, "reason": "granted"}))
}

fn bench_routes(r: &mut Routes) {
    r.get("/bench/open", Access::Public, fixed).get(
        "/bench/guarded",
        Access::Permission(Perm::new("consent", "read")),
        fixed,
    );
}

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct WrkResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn parse_ms(s: &str) -> f64 {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let v: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        _ => f64::NAN,
    }
}

fn wrk(url: &str, header: Option<&str>, seconds: u64, connections: u64) -> WrkResult {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    if let Some(h) = header {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut r = WrkResult {
        rps: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
    };
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().unwrap_or(f64::NAN);
        } else if let Some(v) = t.strip_prefix("50%") {
            r.p50_ms = parse_ms(v);
        } else if let Some(v) = t.strip_prefix("99%") {
            r.p99_ms = parse_ms(v);
        }
    }
    if t_non_2xx(&text) {
        eprintln!("warning: wrk saw non-2xx answers:\n{text}");
    }
    r
}

fn t_non_2xx(text: &str) -> bool {
    text.contains("Non-2xx")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let seconds = env_u64("ACCORD_BENCH_SECONDS", 10);
    let connections = env_u64("ACCORD_BENCH_CONNECTIONS", 64);
    let rounds = env_u64("ACCORD_BENCH_ROUNDS", 3).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let overrides = Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    };
    let mut settings = Settings::load_with(&overrides, |_| None).expect("settings");
    settings.policies_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies").into();

    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app =
                Application::build_with_routes(settings, Arc::new(SystemClock), Some(bench_routes))
                    .await
                    .expect("application");
            let state = app.state();
            let token = accord::auth::api::service(&state)
                .issue_token(
                    Actor::system(),
                    None,
                    &state.access.tokens,
                    "bench",
                    &[Role::Service],
                    Duration::from_secs(3600),
                )
                .await
                .expect("token")
                .token;
            tx.send((app.address(), token)).expect("send");
            app.run_until_stopped().await.expect("server");
        });
    });
    let (addr, token) = rx.recv().expect("server started");
    let auth = format!("Authorization: Bearer {token}");
    let open_url = format!("http://{addr}/bench/open");
    let guarded_url = format!("http://{addr}/bench/guarded");
    // Warm up both paths (the first guarded request verifies the signature and fills the caches).
    wrk(&open_url, None, 2, connections);
    wrk(&guarded_url, Some(&auth), 2, connections);

    let (mut open, mut guarded) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        open.push(wrk(&open_url, None, seconds, connections));
        guarded.push(wrk(&guarded_url, Some(&auth), seconds, connections));
    }
    let summary = |name: &str, v: &[WrkResult]| {
        let rps = median(v.iter().map(|r| r.rps).collect());
        println!(
            "{name}: {rps:.0} req/s, p50 {:.2} ms, p99 {:.2} ms (median of {} rounds, {connections} connections, {seconds} s each)",
            median(v.iter().map(|r| r.p50_ms).collect()),
            median(v.iter().map(|r| r.p99_ms).collect()),
            v.len()
        );
        rps
    };
    let o = summary("unguarded", &open);
    let g = summary("bearer token + Casbin permission", &guarded);
    println!("ratio guarded / unguarded: {:.3}", g / o);
}
