//! The OpenAPI 3.1 document served at `/v1/openapi.json`. Each operation is described here; who
//! may call it comes from the routes as registered, so the two cannot disagree, and a test checks
//! that every API route is described and every description is a route.

use serde_json::{Map, Value, json};

use crate::authz::{Access, RouteSpec};

/// A path parameter, query parameter or header of an operation.
struct Param {
    name: &'static str,
    place: &'static str,
    required: bool,
    schema: Value,
    description: &'static str,
}

fn path(name: &'static str, description: &'static str) -> Param {
    Param {
        name,
        place: "path",
        required: true,
        schema: json!({"type": "string"}),
        description,
    }
}

fn query(name: &'static str, required: bool, schema: Value, description: &'static str) -> Param {
    Param {
        name,
        place: "query",
        required,
        schema,
        description,
    }
}

fn header(name: &'static str, description: &'static str) -> Param {
    Param {
        name,
        place: "header",
        required: false,
        schema: json!({"type": "string"}),
        description,
    }
}

/// One described operation.
pub struct Op {
    pub method: &'static str,
    pub path: &'static str,
    summary: &'static str,
    params: Vec<Param>,
    /// Request media type and schema.
    body: Option<(&'static str, Value)>,
    /// Success status, media type and schema.
    ok: (u16, &'static str, Value),
}

fn op(method: &'static str, path: &'static str, summary: &'static str) -> Op {
    Op {
        method,
        path,
        summary,
        params: Vec::new(),
        body: None,
        ok: (200, "application/json", json!({"type": "object"})),
    }
}

impl Op {
    fn params(mut self, p: Vec<Param>) -> Self {
        self.params = p;
        self
    }
    fn body(mut self, media: &'static str, schema: Value) -> Self {
        self.body = Some((media, schema));
        self
    }
    fn ok(mut self, status: u16, media: &'static str, schema: Value) -> Self {
        self.ok = (status, media, schema);
        self
    }
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn text() -> Value {
    json!({"type": "string"})
}

fn seq() -> Value {
    json!({"type": "integer", "minimum": 0})
}

fn instant() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn subject_params(extra: Vec<Param>) -> Vec<Param> {
    let mut v = vec![path("id", "The data subject's id.")];
    v.extend(extra);
    v
}

fn min_seq() -> Param {
    query(
        "min_seq",
        false,
        seq(),
        "Wait (at most 5 s) until this instance has applied this ledger seq: read your own writes on any instance.",
    )
}

fn check_params(required: bool) -> Vec<Param> {
    let mut v = vec![
        query(
            "purpose",
            true,
            text(),
            "Purpose key, e.g. marketing.email.",
        ),
        query(
            "channel",
            true,
            r("Channel"),
            "Channel; `any` matches records for any channel only.",
        ),
        query(
            "at",
            false,
            instant(),
            "Answer as of this moment, from history (records collected by then).",
        ),
        min_seq(),
    ];
    if required {
        v.insert(0, query("subject", true, text(), "The data subject's id."));
    }
    v
}

/// Every API operation Accord serves (the web UI's pages are not part of the API).
pub fn operations() -> Vec<Op> {
    let ndjson = "application/x-ndjson";
    vec![
        op("GET", "/healthz", "The process is up").ok(200, "application/json", json!({"type": "object"})),
        op("GET", "/readyz", "Database reachable, migrations current, sequencer running"),
        op("GET", "/metrics", "Prometheus metrics").ok(200, "text/plain", text()),
        op("GET", "/v1/openapi.json", "This document"),
        op("GET", "/v1/ledger/checkpoint", "The latest signed checkpoint (C2SP signed note)")
            .ok(200, "text/plain", text()),
        op("GET", "/v1/ledger/entries", "Ledger entries in seq order, with payloads or redaction markers")
            .params(vec![
                query("from", false, seq(), "First seq (default 0)."),
                query("limit", false, json!({"type": "integer", "minimum": 1, "maximum": 1000}), "Page size."),
            ]),
        op("GET", "/v1/ledger/proofs/inclusion", "RFC 9162 inclusion proof of an entry")
            .params(vec![
                query("seq", true, seq(), "The entry."),
                query("size", false, seq(), "Tree size (default: the latest checkpoint's)."),
            ]),
        op("GET", "/v1/ledger/proofs/consistency", "RFC 9162 consistency proof between two tree sizes")
            .params(vec![
                query("from", true, seq(), "Older tree size."),
                query("to", false, seq(), "Newer tree size (default: the latest checkpoint's)."),
            ]),
        op("GET", "/v1/ledger/key", "The ledger's verifier key (signed-note vkey)").ok(200, "text/plain", text()),
        op("GET", "/v1/access/me", "Who the caller is: roles and permissions"),
        op("GET", "/v1/access/policy", "The access model and rules in force"),
        op("GET", "/v1/tokens", "API tokens issued (never their text)"),
        op("POST", "/v1/tokens", "Issue an API token for a service")
            .body("application/json", json!({"type": "object", "required": ["client", "roles"],
                "properties": {"client": text(), "roles": {"type": "array", "items": text()}, "ttl": text()}}))
            .ok(201, "application/json", json!({"type": "object"})),
        op("DELETE", "/v1/tokens/{jti}", "Revoke an API token").params(vec![path("jti", "The token's id.")]),
        op("GET", "/v1/purposes", "Every purpose at its latest version")
            .ok(200, "application/json", json!({"type": "object", "properties": {"purposes": {"type": "array", "items": r("Purpose")}}})),
        op("POST", "/v1/purposes", "Register a purpose")
            .body("application/json", r("PurposeInput"))
            .ok(201, "application/json", r("PurposeChange")),
        op("GET", "/v1/purposes/{key}", "A purpose and every version of it")
            .params(vec![path("key", "Purpose key.")]),
        op("PUT", "/v1/purposes/{key}", "Record a new version of a purpose (unchanged: nothing recorded)")
            .params(vec![path("key", "Purpose key.")])
            .body("application/json", r("PurposeInput"))
            .ok(200, "application/json", r("PurposeChange")),
        op("POST", "/v1/purposes/{key}/retire", "Retire a purpose; its history stays")
            .params(vec![path("key", "Purpose key.")])
            .ok(200, "application/json", r("PurposeChange")),
        op("GET", "/v1/notices", "Privacy-notice versions"),
        op("POST", "/v1/notices", "Publish a privacy-notice version (immutable once published)")
            .body("application/json", r("NoticeInput"))
            .ok(201, "application/json", json!({"type": "object"})),
        op("POST", "/v1/consents", "Record a consent decision")
            .params(vec![
                header("Idempotency-Key", "Retries with the same key get the first answer and write nothing."),
                header("Sec-GPC", "`1`: a Global Privacy Control signal; recorded as an opt-out where the purpose honours GPC, and a grant is refused."),
            ])
            .body("application/json", r("ConsentInput"))
            .ok(201, "application/json", r("Recorded")),
        op("POST", "/v1/consents/import", "Import consent decisions in bulk (validated first; all or nothing; re-runs write nothing new)")
            .body(ndjson, r("ConsentInput"))
            .ok(200, "application/json", r("ImportSummary")),
        op("GET", "/v1/consents/check", "May we? One subject, purpose and channel, now or as of a moment")
            .params(check_params(true))
            .ok(200, "application/json", r("CheckAnswer")),
        op("POST", "/v1/consents/check", "May we? Up to 10,000 checks, answered in order")
            .body("application/json", r("BatchRequest"))
            .ok(200, "application/json", r("BatchAnswer")),
        op("POST", "/v1/consents/filter", "Send list in (NDJSON subject ids), permitted subset out, then a trailer line with counts per reason")
            .params(check_params(false))
            .body(ndjson, text())
            .ok(200, ndjson, text()),
        op("GET", "/v1/consents/receipts/{seq}", "A consent receipt (ISO/IEC TS 27560 fields) with its inclusion proof and signed checkpoint; check it with `accord-audit verify-receipt`")
            .params(vec![path("seq", "The consent record's ledger seq.")]),
        op("GET", "/v1/subjects/{id}/consents", "A subject's current consent per purpose and channel")
            .params(subject_params(vec![min_seq()])),
        op("GET", "/v1/subjects/{id}/consents/history", "Every consent event of a subject, with notice and ledger reference")
            .params(subject_params(vec![])),
        op("POST", "/v1/subjects/{id}/erase", "Erase a data subject (GDPR Art. 17): records removed, payloads redacted, an erasure entry lists them")
            .params(subject_params(vec![]))
            .body("application/json", json!({"type": "object", "properties": {"reason": text()}}))
            .ok(200, "application/json", r("Erased")),
    ]
}

fn schemas() -> Value {
    let opt_text = json!({"type": ["string", "null"]});
    json!({
        "Problem": {"type": "object", "description": "RFC 9457 problem details",
            "properties": {"type": text(), "title": text(), "status": {"type": "integer"}, "detail": text(),
                "errors": {"type": "array", "items": {"type": "object", "properties": {
                    "field": text(), "message": text(), "line": {"type": "integer"}}}}}},
        "Channel": {"type": "string", "enum": ["email", "sms", "phone", "post", "push", "web", "ads", "any"]},
        "Decision": {"type": "string", "enum": ["granted", "withdrawn", "denied"]},
        "LegalBasis": {"type": "string", "enum": ["consent", "contract", "legal_obligation", "vital_interests", "public_task", "legitimate_interests"]},
        "Method": {"type": "string", "enum": ["web_form", "api", "import", "gpc", "app", "email", "phone", "paper", "in_person", "other"]},
        "PurposeInput": {"type": "object", "required": ["title"], "properties": {
            "key": text(), "title": text(), "description": text(), "legal_basis": r("LegalBasis"),
            "consent_required": {"type": "boolean"}, "lifetime_days": {"type": "integer", "minimum": 1},
            "gpc_applies": {"type": "boolean"}, "dpv_iri": text(),
            "status": {"type": "string", "enum": ["active", "retired"]}}},
        "Purpose": {"allOf": [r("PurposeInput"), {"type": "object", "properties": {"version": {"type": "integer"}, "seq": seq()}}]},
        "PurposeChange": {"type": "object", "properties": {"seq": seq(), "leaf_hash": text(), "changed": {"type": "boolean"}}},
        "NoticeInput": {"type": "object", "required": ["key", "version", "url"], "properties": {
            "key": text(), "version": text(), "text_hash": text(), "text": text(), "url": text(), "effective_at": instant()}},
        "Evidence": {"type": "object", "additionalProperties": false, "properties": {
            "form_id": text(), "ip": text(), "user_agent": text(), "page_url": text(), "reference": text()}},
        "ConsentInput": {"type": "object", "additionalProperties": false, "required": ["subject", "purpose", "channel"],
            "properties": {"subject": text(), "purpose": text(), "channel": r("Channel"), "decision": r("Decision"),
                "legal_basis": r("LegalBasis"), "method": r("Method"), "notice_key": text(), "notice_version": text(),
                "collected_at": instant(), "expires_at": instant(), "jurisdiction": text(), "source": text(),
                "evidence": r("Evidence")}},
        "Recorded": {"type": "object", "properties": {"seq": seq(), "leaf_hash": text(), "recorded_at": instant(),
            "duplicate": {"type": "boolean"}, "record": {"type": "object"}}},
        "CheckAnswer": {"type": "object", "properties": {
            "allowed": {"type": "boolean"}, "decision": {"type": ["string", "null"]},
            "reason": {"type": "string", "description": "granted, withdrawn, denied, expired, no_record, purpose_retired or not_required:<legal basis>"},
            "legal_basis": opt_text, "channel": {"type": ["string", "null"]}, "collected_at": {"type": ["string", "null"]},
            "expires_at": {"type": ["string", "null"]}, "seq": {"type": ["integer", "null"]}}},
        "BatchRequest": {"type": "object", "required": ["items"], "properties": {
            "items": {"type": "array", "maxItems": 10000, "items": {"type": "object", "required": ["subject", "purpose", "channel"],
                "properties": {"subject": text(), "purpose": text(), "channel": r("Channel"), "at": instant()}}},
            "min_seq": seq()}},
        "BatchAnswer": {"type": "object", "properties": {"results": {"type": "array", "items": r("CheckAnswer")}, "applied_seq": seq()}},
        "ImportSummary": {"type": "object", "properties": {"rows": {"type": "integer"}, "recorded": {"type": "integer"},
            "duplicates": {"type": "integer"}, "first_seq": {"type": ["integer", "null"]}, "last_seq": {"type": ["integer", "null"]}}},
        "Erased": {"type": "object", "properties": {"seq": seq(), "leaf_hash": text(),
            "redacted_seqs": {"type": "array", "items": seq()}, "records_removed": {"type": "integer"}}},
    })
}

/// The document, with each operation's access taken from the registered routes.
pub fn document(routes: &[RouteSpec]) -> Value {
    let mut paths = Map::new();
    for o in operations() {
        let access = routes
            .iter()
            .find(|s| s.method.as_str() == o.method && s.path == o.path)
            .map(|s| s.access);
        let mut operation = Map::new();
        operation.insert("summary".into(), json!(o.summary));
        if !o.params.is_empty() {
            operation.insert(
                "parameters".into(),
                Value::Array(
                    o.params
                        .iter()
                        .map(|p| {
                            json!({"name": p.name, "in": p.place, "required": p.required,
                                   "schema": p.schema, "description": p.description})
                        })
                        .collect(),
                ),
            );
        }
        if let Some((media, schema)) = &o.body {
            operation.insert(
                "requestBody".into(),
                json!({"required": true, "content": {*media: {"schema": schema}}}),
            );
        }
        let (status, media, schema) = &o.ok;
        let problem = json!({"content": {"application/problem+json": {"schema": r("Problem")}}});
        operation.insert(
            "responses".into(),
            json!({
                status.to_string(): {"description": "Success", "content": {*media: {"schema": schema}}},
                "4XX": {"description": "The request was refused; the problem says why and where", "content": problem["content"]},
                "5XX": {"description": "Temporarily unavailable or failed", "content": problem["content"]},
            }),
        );
        match access {
            Some(Access::Public) | None => {
                operation.insert("security".into(), json!([]));
            }
            Some(Access::Authenticated) => {
                operation.insert("security".into(), json!([{"bearer": []}, {"session": []}]));
            }
            Some(Access::Permission(p)) => {
                operation.insert("security".into(), json!([{"bearer": []}, {"session": []}]));
                operation.insert("x-accord-permission".into(), json!(p.to_string()));
            }
        }
        let entry = paths
            .entry(o.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(o.method.to_ascii_lowercase(), Value::Object(operation));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Accord",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Compliance and consent governance with a tamper-evident ledger. Every write answers with the ledger seq and leaf hash of its entry. Errors are RFC 9457 problems. `x-accord-permission` names the resource:action a caller's roles must grant (policies/policy.csv).",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT (EdDSA), from `accord token issue` or POST /v1/tokens"},
                "session": {"type": "apiKey", "in": "cookie", "name": "accord_session"},
            },
            "schemas": schemas(),
        },
    })
}

/// Whether a route belongs to the API the document describes (the web UI does not).
pub fn is_api(path: &str) -> bool {
    !path.starts_with("/ui") && !path.starts_with("/bench")
}
