//! The ledger's read API: the latest signed checkpoint, entries by page, inclusion and consistency
//! proofs, and the verifier key. (Access control restricts these to auditors and compliance.)

use crate::config::Limits;
use crate::openapi::{Op, Schemas, op};
use crate::openapi::{query, seq, size, text};
use serde_json::json;

use accord_audit::export::PayloadRecord;
use accord_audit::hash;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::store::{self, CheckpointRow};
use super::stream::{Item, LedgerStream};
use crate::authz::{Access, Perm, Routes};
use crate::error::AppError;
use crate::state::AppState;
use crate::vocab::Seq;

/// Reading the ledger: entries carry payloads with personal data, so auditors and compliance only.
pub const LEDGER_READ: Perm = Perm::new("ledger", "read");

pub fn routes(r: &mut Routes) {
    let read = Access::Permission(LEDGER_READ);
    r.get("/v1/ledger/checkpoint", read, checkpoint)
        .get("/v1/ledger/entries", read, entries)
        .get("/v1/ledger/proofs/inclusion", read, inclusion)
        .get("/v1/ledger/proofs/consistency", read, consistency)
        .get("/v1/ledger/key", read, key);
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn checkpoint(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let cp = state
        .db(|c| {
            store::latest_checkpoint(c)?
                .ok_or_else(|| AppError::NotFound("no checkpoint has been published yet".into()))
        })
        .await?;
    Ok(HttpResponse::Ok().content_type(TEXT).body(cp.note))
}

async fn key(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(TEXT)
        .body(format!("{}\n", state.ledger.verifier_key()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntriesQuery {
    from: Option<Seq>,
    limit: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntryView {
    seq: crate::vocab::Seq,
    /// The canonical leaf body, exactly as hashed.
    body: String,
    leaf_hash: String,
    #[schema(value_type = Option<PayloadView>)]
    payload: Option<PayloadRecord>,
}

/// An entry's payload as the ledger holds it: open (with its salt) or redacted by an erasure.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum PayloadView {
    Open {
        /// The commitment salt, 64 lowercase hex characters.
        salt: String,
        /// The event, as JSON.
        data: serde_json::Value,
    },
    Redacted {
        /// The erasure entry that removed it.
        redacted_by: u64,
    },
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntriesPage {
    size: u64,
    entries: Vec<EntryView>,
    /// The `from` of the next page, absent on the last page.
    next: Option<u64>,
}

const MAX_PAGE: u64 = 1000;

async fn entries(
    state: web::Data<AppState>,
    q: web::Query<EntriesQuery>,
) -> Result<web::Json<EntriesPage>, AppError> {
    let from = q.from.map(Seq::get).unwrap_or(0);
    let limit = crate::vocab::bounded("limit", q.limit, 1..=MAX_PAGE, 100)?;
    let page = state
        .db(move |c| {
            let size = tree_size(c)?;
            let until = from.saturating_add(limit).min(size);
            let mut stream = LedgerStream::entries_only(from, until);
            let mut out = Vec::new();
            while let Some(item) = stream.next(c)? {
                if let Item::Entry {
                    seq,
                    body,
                    leaf_hash,
                    payload,
                    ..
                } = item
                {
                    out.push(EntryView {
                        seq: Seq::new(seq),
                        body,
                        leaf_hash,
                        payload: payload.ok(),
                    });
                }
            }
            let next = (until < size).then_some(until);
            Ok(EntriesPage {
                size,
                entries: out,
                next,
            })
        })
        .await?;
    Ok(web::Json(page))
}

fn tree_size(c: &mut crate::db::AnyConnection) -> Result<u64, AppError> {
    Ok(store::read_tree_state(c)?.map(|s| s.size()).unwrap_or(0))
}

fn latest_or_404(c: &mut crate::db::AnyConnection) -> Result<CheckpointRow, AppError> {
    store::latest_checkpoint(c)?
        .ok_or_else(|| AppError::NotFound("no checkpoint has been published yet".into()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionQuery {
    seq: u64,
    size: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InclusionProof {
    seq: u64,
    size: u64,
    leaf_hash: String,
    root: String,
    proof: Vec<String>,
    /// The signed checkpoint for `size`, when one was published at exactly that size.
    checkpoint: Option<String>,
}

/// `field` is not `relation` the tree size `size_field`: a 422 when the caller named that size,
/// a 409 when it is the latest checkpoint's (a later checkpoint may cover it).
fn past_size(
    given: bool,
    field: &str,
    relation: &str,
    value: u64,
    size_field: &str,
    size: u64,
) -> AppError {
    if given {
        AppError::validation(field, format!("must be {relation} {size_field} ({size})"))
    } else {
        AppError::unmet(
            field,
            format!(
                "{value} is not {relation} the latest checkpoint's size {size}; ask again once a checkpoint covers it, or name {size_field}"
            ),
        )
    }
}

async fn inclusion(
    state: web::Data<AppState>,
    q: web::Query<InclusionQuery>,
) -> Result<web::Json<InclusionProof>, AppError> {
    let InclusionQuery { seq, size } = q.into_inner();
    let proof = state
        .db(move |c| {
            // The request on its own first (422), then against the ledger (404, 409).
            match size {
                Some(0) => return Err(AppError::validation("size", "must be at least 1")),
                Some(size) if seq >= size => {
                    return Err(past_size(true, "seq", "below", seq, "size", size));
                }
                _ => {}
            }
            let tree = tree_size(c)?;
            let latest = latest_or_404(c)?;
            if let Some(size) = size
                && size > tree
            {
                return Err(Seq::beyond("size", size, tree));
            }
            let size = size.unwrap_or(latest.size.get());
            if seq >= size {
                return Err(past_size(false, "seq", "below", seq, "size", size));
            }
            let leaf = store::leaf_hashes(c, seq, 1)?
                .pop()
                .ok_or_else(|| AppError::NotFound(format!("no entry with seq {seq}")))?;
            let path = super::proofs::inclusion(c, seq, size)?;
            let root = super::proofs::root_at(c, size)?;
            let checkpoint = if latest.size.get() == size {
                Some(latest.note)
            } else {
                store::checkpoints_page(c, Some(size - 1), size, 1)?
                    .pop()
                    .map(|cp| cp.note)
            };
            Ok(InclusionProof {
                seq,
                size,
                leaf_hash: leaf,
                root: hash::to_hex(&root),
                proof: path.iter().map(hash::to_hex).collect(),
                checkpoint,
            })
        })
        .await?;
    Ok(web::Json(proof))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    from: u64,
    to: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConsistencyProof {
    from: u64,
    to: u64,
    from_root: String,
    to_root: String,
    proof: Vec<String>,
}

async fn consistency(
    state: web::Data<AppState>,
    q: web::Query<ConsistencyQuery>,
) -> Result<web::Json<ConsistencyProof>, AppError> {
    let ConsistencyQuery { from, to } = q.into_inner();
    let proof = state
        .db(move |c| {
            // The request on its own first (422), then against the ledger (404, 409).
            let mut p = crate::vocab::Problems::default();
            if from == 0 {
                p.add("from", "must be at least 1");
            }
            if to == Some(0) {
                p.add("to", "must be at least 1");
            }
            p.into_result()?;
            if let Some(to) = to
                && from > to
            {
                return Err(past_size(true, "from", "at most", from, "to", to));
            }
            let tree = tree_size(c)?;
            let to = match to {
                Some(t) => t,
                None => latest_or_404(c)?.size.get(),
            };
            if to > tree {
                return Err(Seq::beyond("to", to, tree));
            }
            if from > to {
                return Err(past_size(false, "from", "at most", from, "to", to));
            }
            let path = super::proofs::consistency(c, from, to)?;
            Ok(ConsistencyProof {
                from,
                to,
                from_root: hash::to_hex(&super::proofs::root_at(c, from)?),
                to_root: hash::to_hex(&super::proofs::root_at(c, to)?),
                proof: path.iter().map(hash::to_hex).collect(),
            })
        })
        .await?;
    Ok(web::Json(proof))
}

// ----- the OpenAPI operations of these routes -----

/// The ledger's read routes.
pub fn operations(s: &mut Schemas, _limits: &Limits) -> Vec<Op> {
    let json = "application/json";
    let plain = "text/plain";
    vec![
        op(
            "GET",
            "/v1/ledger/checkpoint",
            "The latest signed checkpoint (C2SP signed note)",
        )
        .ok(200, plain, text())
        .also(&[404]),
        op(
            "GET",
            "/v1/ledger/entries",
            "Ledger entries in seq order, with payloads or redaction markers",
        )
        .params(vec![
            query("from", false, seq(), "First seq (default 0)."),
            query(
                "limit",
                false,
                json!({"type": "integer", "minimum": 1, "maximum": 1000}),
                "Page size (default 100).",
            ),
        ])
        .ok(200, json, s.of::<EntriesPage>()),
        op(
            "GET",
            "/v1/ledger/proofs/inclusion",
            "RFC 9162 inclusion proof of an entry",
        )
        .params(vec![
            query("seq", true, seq(), "The entry."),
            query(
                "size",
                false,
                size(),
                "Tree size (default: the latest checkpoint's); beyond the ledger is a 409.",
            ),
        ])
        .order("query.seq", "<", "query.size")
        .ok(200, json, s.of::<InclusionProof>())
        .also(&[404, 409]),
        op(
            "GET",
            "/v1/ledger/proofs/consistency",
            "RFC 9162 consistency proof between two tree sizes",
        )
        .params(vec![
            query("from", true, size(), "Older tree size."),
            query(
                "to",
                false,
                size(),
                "Newer tree size (default: the latest checkpoint's); beyond the ledger is a 409.",
            ),
        ])
        .order("query.from", "<=", "query.to")
        .ok(200, json, s.of::<ConsistencyProof>())
        .also(&[404, 409]),
        op(
            "GET",
            "/v1/ledger/key",
            "The ledger's verifier key (signed-note vkey)",
        )
        .ok(200, plain, text()),
    ]
}
