//! `POST /v1/subjects/{id}/erase`.

use super::service::Erased;
use crate::config::Limits;
use crate::consent::api::subject_params;
use crate::openapi::{Op, Schemas, op};

use actix_web::http::StatusCode;
use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;

use super::service::SubjectsService;
use crate::auth::Principal;
use crate::authz::{Access, Perm, Routes};
use crate::body;
use crate::error::AppError;
use crate::state::AppState;
use crate::telemetry::RequestId;
use crate::vocab::{self, SubjectId};

/// Erasing a subject. The permission keeps the name it was given with consent, its first domain.
pub const SUBJECT_ERASE: Perm = Perm::new("consent", "erase");

pub fn routes(r: &mut Routes) {
    r.post(
        "/v1/subjects/{id}/erase",
        Access::Permission(SUBJECT_ERASE),
        erase_subject,
    );
}

pub fn service(state: &AppState) -> SubjectsService {
    SubjectsService::new(
        state.ledger.clone(),
        state.pool.clone(),
        Some(state.consent.clone()),
    )
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    reason: Option<String>,
}

async fn erase_subject(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    rid: RequestId,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    SubjectId::check("id", &id)?;
    let bytes = body::read_limited(payload, 64 * 1024).await?;
    let input: EraseRequest = body::optional_json(&req, &bytes)?;
    if let Some(r) = &input.reason {
        vocab::text("reason", r, 1000, false)?;
    }
    let (svc, caller) = (service(&state), p.actor());
    state
        .respond(
            &req,
            &caller,
            &bytes,
            |_: &Erased| StatusCode::OK,
            |answer| async move {
                svc.erase(p.actor(), Some(rid.0), &id, input.reason, answer)
                    .await
            },
        )
        .await
}

// ----- the OpenAPI operations of these routes -----

/// Erasure.
pub fn operations(s: &mut Schemas, _limits: &Limits) -> Vec<Op> {
    let json = "application/json";
    vec![
        op("POST", "/v1/subjects/{id}/erase", "Erase a data subject (GDPR Art. 17): records removed, payloads redacted, an erasure entry lists them")
            .params(subject_params(vec![]))
            .body(json, s.of::<EraseRequest>())
            .optional_body()
            .ok(200, json, s.of::<Erased>())
            .idempotent(),
    ]
}
