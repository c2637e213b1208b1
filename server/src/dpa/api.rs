//! The vendor and DPA API: vendors and their sub-processors, DPAs with their versions and signed
//! documents, and the coverage check that processing must pass.

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::import::VendorRows;
use super::index::{CheckError, Query};
use super::input::{
    DecisionInput, DpaInput, TerminateInput, VendorInput, VersionInput, date_or_instant,
};
use super::model::{Coverage, DpaVersionDef, VendorDef};
use super::service::{Attached, DpaService, DpaView, SubprocessorView, VendorImportSummary};
use crate::auth::Principal;
use crate::authz::{Access, Perm, Routes};
use crate::body;
use crate::config::Limits;
use crate::error::AppError;
use crate::idempotency;
use crate::ledger::Defined;
use crate::openapi::{Op, Schemas, op, path};
use crate::state::AppState;
use crate::telemetry::RequestId;
use crate::vocab::{self, Country, Key, Problems, Seq};

pub const DPA_READ: Perm = Perm::new("dpa", "read");
pub const DPA_WRITE: Perm = Perm::new("dpa", "write");

pub fn routes(r: &mut Routes) {
    let read = Access::Permission(DPA_READ);
    let write = Access::Permission(DPA_WRITE);
    r.get("/v1/vendors", read, list_vendors)
        .post("/v1/vendors", write, create_vendor)
        .post("/v1/vendors/import", write, import_vendors)
        .get("/v1/vendors/{id}", read, get_vendor)
        .route(Method::PUT, "/v1/vendors/{id}", write, put_vendor)
        .post("/v1/vendors/{id}/subprocessors", write, decide_subprocessor)
        .get("/v1/dpas", read, list_dpas)
        .post("/v1/dpas", write, create_dpa)
        .post("/v1/dpas/check", read, check)
        .get("/v1/dpas/{id}", read, get_dpa)
        .post("/v1/dpas/{id}/versions", write, add_version)
        .post("/v1/dpas/{id}/terminate", write, terminate)
        .route(
            Method::PUT,
            "/v1/dpas/{id}/versions/{n}/document",
            write,
            put_document,
        )
        .get("/v1/dpas/{id}/versions/{n}/document", read, get_document);
}

pub fn service(state: &AppState) -> DpaService {
    DpaService::new(
        state.ledger.clone(),
        state.pool.clone(),
        state.clock.clone(),
        Some(state.dpa.clone()),
        state.settings.dpa_reminder_days.clone(),
    )
}

/// A JSON body read by hand (its bytes are hashed for `Idempotency-Key`).
async fn json_bytes(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<web::BytesMut, AppError> {
    body::json_media_type(req)?;
    body::read_limited(payload, state.settings.max_body_bytes).await
}

// ----- vendors -----

/// A vendor at its latest version, with the entry that recorded it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VendorView {
    #[serde(flatten)]
    vendor: VendorDef,
    seq: Seq,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VendorList {
    vendors: Vec<VendorView>,
}

/// A vendor now, every version of it, its DPAs and the sub-processors that work for it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VendorDetail {
    vendor: VendorDef,
    versions: Vec<VendorView>,
    dpas: Vec<String>,
    subprocessors: Vec<SubprocessorState>,
}

/// A sub-processor of this vendor and the controller's latest decision about it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubprocessorState {
    id: String,
    name: String,
    /// `authorised`, `objected`, or absent when the controller has not decided.
    decision: Option<String>,
    decided_on: Option<String>,
}

async fn list_vendors(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let vendors = service(&state)
        .vendors()
        .await?
        .into_iter()
        .map(|r| {
            Ok(VendorView {
                vendor: r.def()?,
                seq: r.seq,
            })
        })
        .collect::<Result<Vec<_>, AppError>>()?;
    Ok(HttpResponse::Ok().json(VendorList { vendors }))
}

async fn create_vendor(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    rid: RequestId,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let (svc, caller) = (service(&state), p.actor());
    let status = |_: &Defined<VendorDef>| StatusCode::CREATED;
    state
        .post_json(
            &req,
            &caller,
            payload,
            status,
            |input: VendorInput, answer| async move {
                let def = input.validate(None)?;
                svc.define_vendor(p.actor(), Some(rid.0), def, true, answer)
                    .await
            },
        )
        .await
}

/// `POST /v1/vendors/import`: vendors in bulk, NDJSON or CSV, all or nothing (see
/// [`super::import`]).
async fn import_vendors(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    rid: RequestId,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let stored = state.db(VendorRows::load).await?;
    let (v, hash) = crate::bulk::read_http(&req, payload, state.settings.limits, stored).await?;
    let (svc, caller) = (service(&state), p.actor());
    idempotency::respond(
        state.keyed(&req, caller.as_str()),
        hash,
        idempotency::Answering::json(|_: &VendorImportSummary| StatusCode::OK),
        idempotency::Stored::response,
        |answer| async move {
            let (rows, stored) = v.finish_with_reference()?;
            svc.import_vendors(p.actor(), Some(rid.0), (rows, stored), None, answer)
                .await
        },
    )
    .await
}

async fn put_vendor(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    rid: RequestId,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    Key::check("id", &id)?;
    let bytes = json_bytes(&state, &req, payload).await?;
    let input: VendorInput = body::json(&bytes)?;
    body::same_as_path("id", input.id.as_deref(), &id)?;
    let def = input.validate(Some(&id))?;
    let out = service(&state)
        .define_vendor(p.actor(), Some(rid.0), def, false, None)
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

async fn get_vendor(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    Key::check("id", &id)?;
    let svc = service(&state);
    let rows = svc.vendor(&id).await?;
    let versions = rows
        .iter()
        .map(|r| {
            Ok(VendorView {
                vendor: r.def()?,
                seq: r.seq,
            })
        })
        .collect::<Result<Vec<_>, AppError>>()?;
    let vendor = versions
        .last()
        .map(|v| v.vendor.clone())
        .ok_or_else(|| AppError::NotFound(format!("no vendor {:?}", id.as_str())))?;
    let id = id.into_inner();
    let (dpas, subprocessors) = state
        .db(move |c| {
            let dpas = super::store::dpas_of(c, &id)?
                .into_iter()
                .map(|d| d.id)
                .collect();
            let mut subs = Vec::new();
            for child in super::store::children(c, &id)? {
                let last = super::store::decisions_of(c, &child.id)?
                    .into_iter()
                    .rev()
                    .find(|d| d.parent == id);
                subs.push(SubprocessorState {
                    id: child.id.clone(),
                    name: child.name.clone(),
                    decision: last.as_ref().map(|d| d.decision.clone()),
                    decided_on: last.map(|d| d.decided_on),
                });
            }
            Ok((dpas, subs))
        })
        .await?;
    Ok(HttpResponse::Ok().json(VendorDetail {
        vendor,
        versions,
        dpas,
        subprocessors,
    }))
}

async fn decide_subprocessor(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    rid: RequestId,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    Key::check("id", &id)?;
    let (svc, caller, now) = (service(&state), p.actor(), state.clock.now());
    let status = |_: &Defined<SubprocessorView>| StatusCode::CREATED;
    state
        .post_json(
            &req,
            &caller,
            payload,
            status,
            |input: DecisionInput, answer| async move {
                let decision = input.validate(now)?;
                svc.decide_subprocessor(p.actor(), Some(rid.0), &id, decision, input.note, answer)
                    .await
            },
        )
        .await
}

// ----- DPAs -----

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DpaList {
    dpas: Vec<DpaView>,
}

async fn list_dpas(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let dpas = service(&state).dpas().await?;
    Ok(HttpResponse::Ok().json(DpaList { dpas }))
}

async fn get_dpa(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    Key::check("id", &id)?;
    Ok(HttpResponse::Ok().json(service(&state).dpa(&id).await?))
}

async fn create_dpa(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    rid: RequestId,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let (svc, caller) = (service(&state), p.actor());
    let status = |_: &DpaView| StatusCode::CREATED;
    state
        .post_json(
            &req,
            &caller,
            payload,
            status,
            |input: DpaInput, answer| async move {
                svc.create_dpa(p.actor(), Some(rid.0), input.validate()?, answer)
                    .await
            },
        )
        .await
}

async fn add_version(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    rid: RequestId,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    Key::check("id", &id)?;
    let (svc, caller) = (service(&state), p.actor());
    let status = |_: &Defined<DpaVersionDef>| StatusCode::CREATED;
    state
        .post_json(
            &req,
            &caller,
            payload,
            status,
            |input: VersionInput, answer| async move {
                let version = input.validate(&id, "")?;
                svc.add_version(p.actor(), Some(rid.0), version, answer)
                    .await
            },
        )
        .await
}

async fn terminate(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    rid: RequestId,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    Key::check("id", &id)?;
    let bytes = body::read_limited(payload, 64 * 1024).await?;
    let input: TerminateInput = body::optional_json(&req, &bytes)?;
    let mut problems = Problems::default();
    let effective_at = match &input.effective_at {
        None => Some(state.clock.now()),
        Some(s) => problems.take(date_or_instant("effective_at", s)),
    };
    if let Some(r) = &input.reason {
        problems.take(vocab::text("reason", r, 1000, false));
    }
    problems.into_result()?;
    let effective_at = effective_at.unwrap_or_else(|| state.clock.now());
    let (svc, caller) = (service(&state), p.actor());
    state
        .respond(
            &req,
            &caller,
            &bytes,
            |_: &DpaView| StatusCode::OK,
            |answer| async move {
                svc.terminate(
                    p.actor(),
                    Some(rid.0),
                    &id,
                    effective_at,
                    input.reason,
                    answer,
                )
                .await
            },
        )
        .await
}

/// The media types a signed document may have.
const DOCUMENT_TYPES: &[&str] = &["application/pdf"];

/// A version number in a path.
fn version_number(n: &str) -> Result<i32, AppError> {
    n.parse::<i32>().ok().filter(|v| *v >= 1).ok_or_else(|| {
        AppError::validation("n", format!("{n:?} is not a version number (1, 2, …)"))
    })
}

async fn put_document(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    rid: RequestId,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let (id, n) = path.into_inner();
    Key::check("id", &id)?;
    let version = version_number(&n)?;
    let media_type = body::media_type(&req, DOCUMENT_TYPES)?;
    let limit = state.settings.limits.document_bytes;
    let bytes = body::read_limited(payload, limit)
        .await
        .map_err(|e| match e {
            AppError::PayloadTooLarge(_) => AppError::PayloadTooLarge(format!(
                "a document holds at most {limit} bytes (the limit limits.document_bytes)"
            )),
            other => other,
        })?;
    if !bytes.starts_with(b"%PDF-") {
        return Err(AppError::validation(
            "body",
            "the document is not a PDF (it does not begin with %PDF-)",
        ));
    }
    let out: Attached = service(&state)
        .attach_document(
            p.actor(),
            Some(rid.0),
            (id, version),
            media_type.to_string(),
            bytes.to_vec(),
        )
        .await?;
    Ok(HttpResponse::build(idempotency::created_if(out.changed)).json(out))
}

async fn get_document(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (id, n) = path.into_inner();
    Key::check("id", &id)?;
    let version = version_number(&n)?;
    let (doc, bytes) = service(&state).document(&id, version).await?;
    let digest = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(hex::decode(&doc.sha256).unwrap_or_default())
    };
    Ok(HttpResponse::Ok()
        .content_type(doc.media_type.as_str())
        .insert_header(("ETag", format!("\"{}\"", doc.sha256)))
        .insert_header(("Repr-Digest", format!("sha-256=:{digest}:")))
        .insert_header(("X-Content-SHA256", doc.sha256.clone()))
        .body(bytes))
}

// ----- the coverage check -----

/// One use of personal data by a vendor, to check against its DPA cover.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CoverageItem {
    #[schema(required = true, value_type = String)]
    pub vendor: Option<String>,
    #[schema(required = true, value_type = String)]
    pub purpose: Option<String>,
    #[serde(default)]
    pub data_categories: Vec<String>,
    /// Where the data goes; the vendor's country when absent.
    #[schema(value_type = Option<Country>)]
    pub country: Option<String>,
    /// As the contracts stood at this moment (RFC 3339); now when absent.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub at: Option<String>,
}

/// Several checks, answered in order.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CoverageBatch {
    pub items: Vec<CoverageItem>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CoverageResults {
    pub results: Vec<Coverage>,
}

/// A checked item: the fields a query borrows.
struct Checked {
    vendor: String,
    purpose: String,
    data_categories: Vec<String>,
    country: Option<Country>,
    at: crate::clock::Timestamp,
}

fn checked(
    p: &mut Problems,
    prefix: &str,
    item: &CoverageItem,
    now: crate::clock::Timestamp,
) -> Option<Checked> {
    let f = |name: &str| format!("{prefix}{name}");
    let vendor = match &item.vendor {
        None => {
            p.add(f("vendor"), "is required");
            None
        }
        Some(v) => p.take(Key::check(&f("vendor"), v)).map(|()| v.clone()),
    };
    let purpose = match &item.purpose {
        None => {
            p.add(f("purpose"), "is required");
            None
        }
        Some(v) => p.take(Key::check(&f("purpose"), v)).map(|()| v.clone()),
    };
    for (i, c) in item.data_categories.iter().enumerate() {
        p.take(Key::check(&f(&format!("data_categories[{i}]")), c));
    }
    let country = item
        .country
        .as_ref()
        .and_then(|c| p.take(Country::parse(&f("country"), c)));
    let at = match &item.at {
        None => Some(now),
        Some(s) => p.take(vocab::instant(&f("at"), s)),
    };
    Some(Checked {
        vendor: vendor?,
        purpose: purpose?,
        data_categories: item.data_categories.clone(),
        country,
        at: at?,
    })
}

async fn check(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    body::media_type(&req, &["application/json"])?;
    let limits = state.settings.limits;
    let bytes = body::read_limited(
        payload,
        limits.batch_items.saturating_mul(1024).max(1 << 20),
    )
    .await?;
    let value: Value = body::json(&bytes)?;
    let batch = value.get("items").is_some();
    let items = if batch {
        let b: CoverageBatch = serde_json::from_value(value)
            .map_err(|e| AppError::BadRequest(format!("bad JSON body: {e}")))?;
        if b.items.is_empty() || b.items.len() > limits.batch_items {
            return Err(AppError::validation(
                "items",
                format!(
                    "name 1 to {} checks (the limit limits.batch_items)",
                    limits.batch_items
                ),
            ));
        }
        b.items
    } else {
        vec![
            serde_json::from_value::<CoverageItem>(value)
                .map_err(|e| AppError::BadRequest(format!("bad JSON body: {e}")))?,
        ]
    };
    let now = state.clock.now();
    let mut p = Problems::default();
    let checked: Vec<Option<Checked>> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let prefix = if batch {
                format!("items[{i}].")
            } else {
                String::new()
            };
            checked(&mut p, &prefix, item, now)
        })
        .collect();
    p.into_result()?;
    let queries = checked.iter().flatten().map(|c| Query {
        vendor: &c.vendor,
        purpose: &c.purpose,
        data_categories: &c.data_categories,
        country: c.country,
        at: c.at,
    });
    let answers = state.dpa.check_all(queries)?;
    let mut results = Vec::with_capacity(answers.len());
    let mut p = Problems::default();
    for (i, a) in answers.into_iter().enumerate() {
        match a {
            Ok(c) => results.push(c),
            Err(CheckError::UnknownVendor) => {
                let prefix = if batch {
                    format!("items[{i}].")
                } else {
                    String::new()
                };
                p.unmet(
                    format!("{prefix}vendor"),
                    format!(
                        "{:?} is not a registered vendor (see GET /v1/vendors)",
                        items[i].vendor.as_deref().unwrap_or_default()
                    ),
                );
            }
        }
    }
    p.into_result()?;
    if batch {
        Ok(HttpResponse::Ok().json(CoverageResults { results }))
    } else {
        Ok(HttpResponse::Ok().json(results.into_iter().next()))
    }
}

// ----- the OpenAPI operations of these routes -----

/// A vendor as `POST /v1/vendors` and each import row take it (the id required).
fn vendor_body(s: &mut Schemas) -> Value {
    let mut b = s.inline::<VendorInput>();
    b["required"] = json!(["id", "name", "country", "role"]);
    b["properties"]["id"]["type"] = json!("string");
    b
}

/// A CSV row of a vendor import: the vendor's fields, `data_categories` as keys separated by `;`.
fn vendor_csv_row(s: &mut Schemas) -> Value {
    let mut row = vendor_body(s);
    let key = crate::vocab::schema::KEY
        .trim_start_matches('^')
        .trim_end_matches('$');
    row["properties"]["data_categories"] = json!({
        "type": "string",
        "pattern": format!("^{key}(?:;{key}){{0,{}}}$", super::input::MAX_KEYS - 1),
    });
    crate::openapi::csv_row(row, "VendorInput")
}

/// Vendors and DPAs.
pub fn operations(s: &mut Schemas, limits: &Limits) -> Vec<Op> {
    let json = "application/json";
    let id = |what: &'static str| path("id", crate::vocab::schema::key(), what);
    let n = path(
        "n",
        json!({"type": "string", "pattern": "^[1-9][0-9]{0,8}$"}),
        "The version number.",
    );
    vec![
        op("GET", "/v1/vendors", "Every vendor at its latest version").ok(200, json, s.of::<VendorList>()),
        op("POST", "/v1/vendors", "Register a vendor")
            .body(json, vendor_body(s))
            .order("body.parent", "!=", "body.id")
            .ok(201, json, crate::openapi::defined::<VendorDef>(s))
            .idempotent(),
        op("POST", "/v1/vendors/import", "Register or update vendors in bulk: NDJSON (one vendor per line) or CSV (data_categories separated by ';'); validated first, all or nothing; unchanged vendors record nothing")
            .body("application/x-ndjson", json!({"type": "array", "items": vendor_body(s), "minItems": 1, "maxItems": limits.import_rows}))
            .body("text/csv", json!({"type": "array", "items": vendor_csv_row(s), "minItems": 1, "maxItems": limits.import_rows}))
            .order("body.parent", "!=", "body.id")
            .order("body.id", "unique", "")
            .ok(200, json, s.of::<VendorImportSummary>())
            .idempotent(),
        op("GET", "/v1/vendors/{id}", "A vendor, every version of it, its DPAs and its sub-processors")
            .params(vec![id("The vendor's id.")])
            .ok(200, json, s.of::<VendorDetail>()),
        op("PUT", "/v1/vendors/{id}", "Record a new version of a vendor (unchanged: nothing recorded)")
            .params(vec![id("The vendor's id (a body's `id`, if any, must equal it).")])
            .body(json, s.of::<VendorInput>())
            .order("body.id", "==", "path.id")
            .order("body.parent", "!=", "path.id")
            .ok(200, json, crate::openapi::defined::<VendorDef>(s)),
        op("POST", "/v1/vendors/{id}/subprocessors", "Authorise (or object to) a sub-processor this processor engages (GDPR Art. 28(2))")
            .params(vec![id("The processor's vendor id.")])
            .body(json, s.of::<DecisionInput>())
            .ok(201, json, crate::openapi::defined::<SubprocessorView>(s))
            .idempotent(),
        op("GET", "/v1/dpas", "Every DPA with its versions").ok(200, json, s.of::<DpaList>()),
        op("POST", "/v1/dpas", "Record a DPA with a vendor and its first version")
            .body(json, s.of::<DpaInput>())
            .order("body.version.effective_from", "<", "body.version.expires_at")
            .order("body.version.transfers", "distinct", "country")
            .ok(201, json, s.of::<DpaView>())
            .idempotent(),
        op("POST", "/v1/dpas/check", "Is this use covered by a DPA? One check, or `{\"items\": […]}` answered in order (at most `limits.batch_items`)")
            .body(json, json!({"oneOf": [
                s.of::<CoverageItem>(),
                {"type": "object", "required": ["items"], "additionalProperties": false,
                 "properties": {"items": {"type": "array", "minItems": 1, "maxItems": limits.batch_items, "items": s.of::<CoverageItem>()}}},
            ]}))
            .ok(200, json, json!({"oneOf": [s.of::<Coverage>(), s.of::<CoverageResults>()]})),
        op("GET", "/v1/dpas/{id}", "A DPA with every version")
            .params(vec![id("The DPA's id.")])
            .ok(200, json, s.of::<DpaView>()),
        op("POST", "/v1/dpas/{id}/versions", "Record an amendment: a new version (versions are immutable)")
            .params(vec![id("The DPA's id.")])
            .body(json, s.of::<VersionInput>())
            .order("body.effective_from", "<", "body.expires_at")
            .order("body.transfers", "distinct", "country")
            .ok(201, json, crate::openapi::defined::<DpaVersionDef>(s))
            .idempotent(),
        op("POST", "/v1/dpas/{id}/terminate", "End a DPA (now, or at `effective_at`)")
            .params(vec![id("The DPA's id.")])
            .body(json, s.of::<TerminateInput>())
            .optional_body()
            .ok(200, json, s.of::<DpaView>())
            .idempotent(),
        op("PUT", "/v1/dpas/{id}/versions/{n}/document", "Store a version's signed document (PDF, at most `limits.document_bytes`); its SHA-256 is recorded")
            .params(vec![id("The DPA's id."), n.clone()])
            .body("application/pdf", json!({"type": "string", "format": "binary"}))
            .ok(201, json, s.of::<Attached>())
            .also(&[200]),
        op("GET", "/v1/dpas/{id}/versions/{n}/document", "A version's signed document, with its SHA-256 (`Repr-Digest`, `ETag`)")
            .params(vec![id("The DPA's id."), n])
            .ok(200, "application/pdf", json!({"type": "string", "format": "binary"})),
    ]
}
