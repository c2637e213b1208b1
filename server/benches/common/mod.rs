//! What the HTTP benchmarks share: load from `wrk` in a second process, and medians.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

pub fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One wrk run's figures.
#[derive(Debug, Clone, Copy)]
pub struct WrkResult {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers that were not 2xx (or socket errors).
    pub errors: u64,
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

/// Load for `seconds` with wrk (2 threads, keep-alive), optional headers and Lua script.
pub fn wrk(
    url: &str,
    headers: &[&str],
    script: Option<&Path>,
    seconds: u64,
    connections: u64,
) -> WrkResult {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--timeout",
        "10s",
        "--latency",
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let out = cmd.arg(url).output().expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut r = WrkResult {
        rps: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        errors: 0,
    };
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().unwrap_or(f64::NAN);
        } else if let Some(v) = t.strip_prefix("50%") {
            r.p50_ms = parse_ms(v);
        } else if let Some(v) = t.strip_prefix("99%") {
            r.p99_ms = parse_ms(v);
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.errors += v.trim().parse::<u64>().unwrap_or(1);
        } else if t.starts_with("Socket errors:") {
            r.errors += 1;
        }
    }
    if r.errors > 0 {
        eprintln!("warning: wrk saw errors:\n{text}");
    }
    r
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Medians of several runs, printed as one line; returns the median rate.
pub fn summary(name: &str, v: &[WrkResult], detail: &str) -> f64 {
    let rps = median(v.iter().map(|r| r.rps).collect());
    println!(
        "{name}: {rps:.0} req/s, p50 {:.2} ms, p99 {:.2} ms (median of {} rounds{detail})",
        median(v.iter().map(|r| r.p50_ms).collect()),
        median(v.iter().map(|r| r.p99_ms).collect()),
        v.len()
    );
    rps
}

/// Settings for a benchmark server on `dir`, any free port, with the repository's policies.
pub fn settings(dir: &Path) -> accord::config::Settings {
    let overrides = accord::config::Overrides {
        data_dir: Some(dir.to_path_buf()),
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    };
    let mut s = accord::config::Settings::load_with(&overrides, |_| None).expect("settings");
    s.policies_dir = None;
    s
}

/// A service-role API token for the load generator.
pub async fn service_token(app: &accord::Application, ttl: std::time::Duration) -> String {
    let state = app.state();
    accord::auth::api::service(&state)
        .issue_token(
            accord::ledger::Actor::system(),
            None,
            &state.access.tokens,
            accord::auth::service::TokenOrder {
                client: "bench",
                roles: &[accord::auth::model::Role::Service],
                ttl,
            },
            None,
        )
        .await
        .expect("token")
        .token
}
