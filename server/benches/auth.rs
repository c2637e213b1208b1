//! What authentication and authorisation cost per request: the same small handler behind the
//! full stack (bearer token + Casbin permission) and unguarded, in one run, under load from `wrk`
//! in a second process on loopback. Prints figures, asserts nothing. Run with
//!
//!     cargo bench -p accord --bench auth
//!
//! Environment: `ACCORD_BENCH_SECONDS` (per measurement, default 10), `ACCORD_BENCH_CONNECTIONS`
//! (default 64), `ACCORD_BENCH_ROUNDS` (alternating rounds, default 3; medians are reported).

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use accord::Application;
use accord::authz::{Access, Perm, Routes};
use accord::clock::SystemClock;
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

mod common;
use common::{env_u64, summary, wrk};

fn main() {
    let seconds = env_u64("ACCORD_BENCH_SECONDS", 10);
    let connections = env_u64("ACCORD_BENCH_CONNECTIONS", 64);
    let rounds = env_u64("ACCORD_BENCH_ROUNDS", 3).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = common::settings(dir.path());

    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app =
                Application::build_with_routes(settings, Arc::new(SystemClock), Some(bench_routes))
                    .await
                    .expect("application");
            let token = common::service_token(&app, Duration::from_secs(3600)).await;
            tx.send((app.address(), token)).expect("send");
            app.run_until_stopped().await.expect("server");
        });
    });
    let (addr, token) = rx.recv().expect("server started");
    let auth = format!("Authorization: Bearer {token}");
    let open_url = format!("http://{addr}/bench/open");
    let guarded_url = format!("http://{addr}/bench/guarded");
    // Warm up both paths (the first guarded request verifies the signature and fills the caches).
    wrk(&open_url, &[], None, 2, connections);
    wrk(&guarded_url, &[&auth], None, 2, connections);

    let (mut open, mut guarded) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        open.push(wrk(&open_url, &[], None, seconds, connections));
        guarded.push(wrk(&guarded_url, &[&auth], None, seconds, connections));
    }
    let detail = format!(", {connections} connections, {seconds} s each");
    let o = summary("unguarded", &open, &detail);
    let g = summary("bearer token + Casbin permission", &guarded, &detail);
    println!("ratio guarded / unguarded: {:.3}", g / o);
}
