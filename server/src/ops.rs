//! Operations endpoints: liveness, readiness and Prometheus metrics.

use crate::config::Limits;
use crate::openapi::text;
use crate::openapi::{Op, Schemas, op};

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::authz::{Access, Perm, Routes};
use crate::db;
use crate::error::AppError;
use crate::state::AppState;

pub fn routes(r: &mut Routes) {
    // Probes answer anyone (load balancers); metrics need a role the policy allows.
    r.get("/healthz", Access::Public, healthz)
        .get("/readyz", Access::Public, readyz)
        .get(
            "/metrics",
            Access::Permission(Perm::new("metrics", "read")),
            metrics,
        );
}

/// `{"status": "ok"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    #[schema(value_type = String)]
    status: &'static str,
}

/// The process is up and serving.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    ready: bool,
    database: String,
    migrations: String,
    sequencer: String,
}

/// Ready when the database answers, no migration is pending and the sequencer runs.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db_check = state
        .db(|c| {
            use diesel::connection::SimpleConnection;
            c.batch_execute("SELECT 1")?;
            db::has_pending_migrations(c).map_err(AppError::internal)
        })
        .await;
    let (database, migrations) = match db_check {
        Ok(false) => ("ok".to_string(), "current".to_string()),
        Ok(true) => ("ok".to_string(), "pending".to_string()),
        Err(e) => {
            // The cause (a host name, a libpq message) is for the operator's log, not for an
            // unauthenticated caller.
            tracing::warn!(error = %e, "readiness: the database is unavailable");
            ("unavailable".to_string(), "unknown".to_string())
        }
    };
    let sequencer = if state.ledger.is_running() {
        "running"
    } else {
        "stopped"
    };
    let ready = database == "ok" && migrations == "current" && sequencer == "running";
    let body = Readiness {
        ready,
        database,
        migrations,
        sequencer: sequencer.into(),
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let (_, at) = state.ledger.last_checkpoint();
    if at > 0 {
        let age = state
            .clock
            .now()
            .saturating_sub_micros(crate::clock::Timestamp(at));
        metrics::gauge!("accord_ledger_checkpoint_age_seconds").set(age as f64 / 1e6);
    }
    metrics::gauge!("accord_ledger_size").set(state.ledger.size() as f64);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::telemetry::metrics_handle().render())
}

// ----- the OpenAPI operations of these routes -----

/// The operations endpoints.
pub fn operations(s: &mut Schemas, _limits: &Limits) -> Vec<Op> {
    let json = "application/json";
    let plain = "text/plain";
    vec![
        op("GET", "/healthz", "The process is up").ok(200, json, s.of::<Health>()),
        op(
            "GET",
            "/readyz",
            "Database reachable, migrations current, sequencer running (503 otherwise)",
        )
        .ok(200, json, s.of::<Readiness>()),
        op("GET", "/metrics", "Prometheus metrics").ok(200, plain, text()),
    ]
}
