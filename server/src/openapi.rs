//! The OpenAPI 3.1 document served at `/v1/openapi.json`. Each operation is described here; who
//! may call it comes from the routes as registered, and every body's schema is generated from the
//! Rust type that (de)serialises it (`utoipa::ToSchema`), so document and code cannot drift. A test
//! checks that every API route is described and every description is a route; schemathesis checks
//! the server against the document (`.ci/schemathesis`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::authz::{Access, RouteSpec};
use crate::config::Limits;
use crate::error::Problem;
use crate::vocab::schema as rule;

/// `GET /v1/openapi.json`, open to anyone.
pub fn routes(r: &mut crate::authz::Routes) {
    r.get("/v1/openapi.json", Access::Public, serve);
}

/// The document, built once the routes are registered (`AppState::openapi`).
async fn serve(state: actix_web::web::Data<crate::state::AppState>) -> actix_web::HttpResponse {
    match state.openapi.get() {
        Some(doc) => actix_web::HttpResponse::Ok().json(doc),
        None => actix_web::HttpResponse::ServiceUnavailable().finish(),
    }
}

/// This document's own operation.
pub fn operations(_s: &mut Schemas, _limits: &Limits) -> Vec<Op> {
    let json = "application/json";
    vec![op("GET", "/v1/openapi.json", "This document").ok(200, json, json!({"type": "object"}))]
}

/// The component schemas an operation list refers to, generated from the types.
#[derive(Default)]
pub struct Schemas(BTreeMap<String, Value>);

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl Schemas {
    /// Adds `T` and every schema it refers to.
    pub fn add<T: ToSchema>(&mut self) {
        let name = T::name().into_owned();
        if self.0.contains_key(&name) {
            return;
        }
        let schema = refined(&name, to_json(&T::schema()));
        self.0.insert(name, schema);
        self.deps::<T>();
    }

    /// Adds the schemas `T` refers to.
    fn deps<T: ToSchema>(&mut self) {
        let mut deps = Vec::new();
        T::schemas(&mut deps);
        for (name, schema) in deps {
            if let std::collections::btree_map::Entry::Vacant(slot) = self.0.entry(name) {
                let schema = refined(slot.key(), to_json(&schema));
                slot.insert(schema);
            }
        }
    }

    /// A reference to `T`'s component schema.
    pub fn of<T: ToSchema>(&mut self) -> Value {
        self.add::<T>();
        json!({"$ref": format!("#/components/schemas/{}", T::name())})
    }

    /// `T`'s schema written in place (for generic wrappers, whose names would collide).
    pub fn inline<T: ToSchema>(&mut self) -> Value {
        self.deps::<T>();
        refined(&T::name(), to_json(&T::schema()))
    }

    /// The component schema named `name`, if added.
    pub fn component(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// An array of `T`.
    pub fn array_of<T: ToSchema>(&mut self) -> Value {
        json!({"type": "array", "items": self.of::<T>()})
    }
}

/// A path parameter, query parameter or header of an operation.
#[derive(Clone)]
pub struct Param {
    name: &'static str,
    place: &'static str,
    required: bool,
    schema: Value,
    description: &'static str,
}

pub fn path(name: &'static str, schema: Value, description: &'static str) -> Param {
    Param {
        name,
        place: "path",
        required: true,
        schema,
        description,
    }
}

pub fn query(
    name: &'static str,
    required: bool,
    schema: Value,
    description: &'static str,
) -> Param {
    Param {
        name,
        place: "query",
        required,
        schema,
        description,
    }
}

pub fn header(name: &'static str, schema: Value, description: &'static str) -> Param {
    Param {
        name,
        place: "header",
        required: false,
        schema,
        description,
    }
}

/// One described operation.
pub struct Op {
    pub method: &'static str,
    pub path: &'static str,
    summary: &'static str,
    params: Vec<Param>,
    /// Request media types and their schemas; whether a body is required.
    body: Vec<(&'static str, Value)>,
    body_required: bool,
    /// Success status, media type and schema.
    ok: (u16, &'static str, Value),
    /// Further statuses this operation answers with, beyond those every operation of its kind
    /// can (see [`error_statuses`]).
    also: Vec<u16>,
    /// Relations between two of its inputs that JSON Schema cannot state, `[a, op, b]` with `a`
    /// and `b` written `place.field` (`query`, `path`, `header`, or `body`: each row of a list
    /// body) and op `<`, `<=`, `==` or `!=` (they hold when both are given); `required unless`
    /// with `b` written `place.field=value` (the schema requires `a`, which may be left out when
    /// `b` has that value); `distinct` (no two items of the list `a` have the same member `b`); or
    /// `unique` (no two rows of a list body have the same `a`); or `distinct values` (the
    /// comma-separated `a` names each item once). A request breaking one is a 422
    /// or, for what the stored state decides, a 409 (`x-accord-order`).
    order: Vec<Value>,
}

pub fn op(method: &'static str, path: &'static str, summary: &'static str) -> Op {
    Op {
        method,
        path,
        summary,
        params: Vec::new(),
        body: Vec::new(),
        body_required: true,
        ok: (200, "application/json", json!({"type": "object"})),
        also: Vec::new(),
        order: Vec::new(),
    }
}

impl Op {
    pub fn params(mut self, p: Vec<Param>) -> Self {
        self.params = p;
        self
    }
    pub fn body(mut self, media: &'static str, schema: Value) -> Self {
        self.body.push((media, schema));
        self
    }
    pub fn optional_body(mut self) -> Self {
        self.body_required = false;
        self
    }
    pub fn ok(mut self, status: u16, media: &'static str, schema: Value) -> Self {
        self.ok = (status, media, schema);
        self
    }
    /// Honours `Idempotency-Key` (see [`crate::idempotency::respond`]); a reused key is one of the
    /// 409s every write may answer.
    pub fn idempotent(mut self) -> Self {
        self.params.push(header(
            "Idempotency-Key",
            json!({"type": "string", "pattern": "^[!-~]{1,200}$"}),
            "1 to 200 visible ASCII characters (a UUID is a good choice). A retry by the same caller with the same key and request gets the first answer (`Idempotent-Replayed: true`) and writes nothing; the key with another request is a 409 `key-reused`.",
        ));
        self
    }
    pub fn also(mut self, statuses: &[u16]) -> Self {
        self.also.extend_from_slice(statuses);
        self
    }
    /// `a op b` must hold when both are given (see [`Op::order`]'s field).
    pub fn order(mut self, a: &str, op: &str, b: &str) -> Self {
        self.order.push(json!([a, op, b]));
        self
    }
}

pub fn text() -> Value {
    json!({"type": "string"})
}

/// A change and the entry that recorded it: `Defined<T>`, written in place, with `T` among the
/// components.
pub fn defined<T: utoipa::ToSchema>(s: &mut Schemas) -> Value
where
    crate::ledger::Defined<T>: utoipa::ToSchema,
{
    s.add::<T>();
    s.inline::<crate::ledger::Defined<T>>()
}

/// A ledger seq (see [`crate::vocab::Seq`]: both backends store it as a signed 64-bit integer).
pub fn seq() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": i64::MAX})
}

pub fn instant() -> Value {
    rule::instant()
}

pub fn with_examples(mut schema: Value, examples: Value) -> Value {
    schema["examples"] = examples;
    schema
}

/// A tree size: 1 or more.
pub fn size() -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": i64::MAX})
}

/// What the validators check on each field that the types alone do not say: each validator's own
/// schema (`vocab::schema`), merged into the derived property so it stays nullable where
/// the field is optional. (schema, property, rule)
fn field_rules() -> Vec<(&'static str, &'static str, Value)> {
    let evidence = || rule::text(1000, false);
    vec![
        ("ConsentInput", "subject", rule::subject()),
        ("ConsentInput", "purpose", rule::key()),
        ("ConsentInput", "notice_key", rule::key()),
        ("ConsentInput", "notice_version", rule::version()),
        ("ConsentInput", "collected_at", rule::instant()),
        ("ConsentInput", "expires_at", rule::instant()),
        ("ConsentInput", "jurisdiction", rule::jurisdiction()),
        ("ConsentInput", "source", rule::text(200, true)),
        ("Evidence", "form_id", evidence()),
        ("Evidence", "ip", evidence()),
        ("Evidence", "user_agent", evidence()),
        ("Evidence", "page_url", evidence()),
        ("Evidence", "reference", evidence()),
        ("PurposeInput", "key", rule::key()),
        ("PurposeInput", "title", rule::text(200, true)),
        ("PurposeInput", "description", rule::text(4000, false)),
        ("PurposeInput", "dpv_iri", rule::url()),
        ("NoticeInput", "key", rule::key()),
        ("NoticeInput", "version", rule::version()),
        ("NoticeInput", "text_hash", rule::sha256_hex()),
        ("NoticeInput", "url", rule::url()),
        ("NoticeInput", "effective_at", rule::instant()),
        (
            "IssueRequest",
            "client",
            crate::auth::model::client_schema(),
        ),
        ("IssueRequest", "ttl", crate::auth::model::ttl_schema()),
        ("EraseRequest", "reason", rule::text(1000, false)),
        ("BatchItem", "subject", rule::subject()),
        ("BatchItem", "purpose", rule::key()),
        ("BatchItem", "at", rule::instant()),
    ]
    .into_iter()
    .chain(crate::dpa::schema::field_rules())
    .collect()
}

/// Examples of fields that name what a fresh server holds (a built-in purpose), so generated
/// requests reach past "not registered" too.
fn field_examples(name: &str, field: &str) -> Option<Value> {
    match (name, field) {
        ("ConsentInput" | "BatchItem", "purpose") => Some(json!(["marketing.email"])),
        ("ConsentInput" | "BatchItem", "subject") => Some(json!(["alice@example.org"])),
        ("ConsentInput", "channel") => Some(json!(["email"])),
        _ => None,
    }
}

/// Rules between the fields of an object that the validators check, as JSON Schema.
fn object_rules(name: &str) -> Vec<Value> {
    relations(name, &json!({"type": "string"}), &json!({"type": "null"}))
}

/// [`object_rules`], with what a field `given` or `absent` looks like (in JSON: a string, or
/// left out or null; in a CSV row: a non-empty cell, or an empty one).
pub fn relations(name: &str, given_value: &Value, absent_value: &Value) -> Vec<Value> {
    let fields = |given: &[&str], absent: &[&str]| {
        let mut props = Map::new();
        for f in given {
            props.insert(f.to_string(), given_value.clone());
        }
        for f in absent {
            props.insert(f.to_string(), absent_value.clone());
        }
        json!({"required": given, "properties": props})
    };
    match name {
        "ConsentInput" => vec![
            // A notice is named by key and version together.
            json!({"anyOf": [
                fields(&[], &["notice_key", "notice_version"]),
                fields(&["notice_key", "notice_version"], &[]),
            ]}),
            // Only a grant expires.
            json!({"anyOf": [
                fields(&[], &["expires_at"]),
                {"properties": {"decision": {"const": "granted"}}},
            ]}),
        ],
        // The text or its hash, not both.
        "NoticeInput" => vec![json!({"anyOf": [
            fields(&["text_hash"], &["text"]),
            fields(&["text"], &["text_hash"]),
        ]})],
        // A purpose whose legal basis is consent (the default) requires consent.
        "PurposeInput" => vec![json!({"not": {
            "required": ["consent_required"],
            "properties": {
                "consent_required": {"const": false},
                "legal_basis": {"enum": ["consent", null]},
            },
        }})],
        other => crate::dpa::schema::relations(other, given_value, absent_value),
    }
}

/// A row of a CSV import whose JSON form is the object schema `row` (named `name`): a cell is
/// taken as written, and an empty one is a field left out (so each optional field may be `""`),
/// with the relations between fields as they look in a CSV row.
pub fn csv_row(mut row: Value, name: &str) -> Value {
    let required: Vec<Value> = row["required"].as_array().cloned().unwrap_or_default();
    if let Some(props) = row.get_mut("properties").and_then(Value::as_object_mut) {
        for (field, prop) in props.iter_mut() {
            if !required.contains(&json!(field)) {
                *prop = json!({"anyOf": [prop.clone(), {"const": ""}]});
            }
        }
    }
    row["allOf"] = Value::Array(relations(
        name,
        &json!({"type": "string", "minLength": 1}),
        &json!({"enum": [null, ""]}),
    ));
    row
}

/// Fields the derived schema leaves optional that the validator requires: a consent decision
/// (unless a GPC signal answers for it, see `Sec-GPC`).
fn required_fields(name: &str) -> &'static [&'static str] {
    if name == "ConsentInput" {
        &["decision"]
    } else {
        &[]
    }
}

/// `schema` (named `name`) with the rules above written into it. (Only existing members are
/// touched: indexing a `Value` mutably would add `null` ones.)
fn refined(name: &str, mut schema: Value) -> Value {
    let required = required_fields(name);
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for (owner, field, rule) in field_rules() {
            if let (true, Some(Value::Object(prop)), Value::Object(rule)) =
                (owner == name, props.get_mut(field), rule)
            {
                prop.extend(rule.into_iter().filter(|(k, _)| k != "type"));
            }
        }
        for (field, prop) in props.iter_mut() {
            if let (Some(examples), Some(prop)) =
                (field_examples(name, field), prop.as_object_mut())
            {
                prop.insert("examples".into(), examples);
            }
            // Required, so not null: `oneOf: [T, null]` becomes T.
            if required.contains(&field.as_str()) {
                let single = prop
                    .get("oneOf")
                    .and_then(Value::as_array)
                    .and_then(|alts| alts.iter().find(|a| a["type"] != json!("null")).cloned());
                if let Some(t) = single {
                    *prop = t;
                }
            }
        }
    }
    if let Some(list) = schema.get_mut("required").and_then(Value::as_array_mut) {
        list.extend(required.iter().map(|f| json!(f)));
    }
    let relations = object_rules(name);
    if !relations.is_empty() {
        schema["allOf"] = Value::Array(relations);
    }
    schema
}

/// A rule's schema that also admits `null` (an optional field sent as null is left out).
pub fn nullable(mut rule: Value) -> Value {
    rule["type"] = json!([rule["type"].clone(), "null"]);
    rule
}

/// The statuses an operation can answer with besides its success: refusals of credentials and
/// permissions, bad input of each kind it takes, conflicts of writes, and the server's own
/// trouble.
fn error_statuses(o: &Op, access: Option<Access>) -> Vec<u16> {
    let mut v: Vec<u16> = Vec::new();
    if matches!(
        access,
        Some(Access::Authenticated) | Some(Access::Permission(_))
    ) {
        v.extend([401, 403]);
    }
    let takes_input = !o.params.is_empty() || !o.body.is_empty();
    if takes_input {
        v.extend([400, 422]);
    }
    if !o.body.is_empty() {
        v.extend([413, 415]);
    }
    if o.path.contains('{') {
        v.push(404);
    }
    if o.method != "GET" {
        v.push(409);
    }
    v.extend(o.also.iter().copied().filter(|s| *s != o.ok.0));
    v.extend([500, 503]);
    v.sort_unstable();
    v.dedup();
    v
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "Success",
        400 => "The request could not be understood (bad JSON, query string or encoding)",
        401 => "Credentials are missing or refused",
        403 => "The caller's roles do not grant this",
        404 => "No such record",
        409 => {
            "Conflict with the current state (already done, changed meanwhile, or a seq the ledger does not hold)"
        }
        413 => "The body is past a limit; the problem names it",
        415 => "Unsupported content type",
        422 => "Invalid fields; the problem lists each with what is wrong",
        500 => "The server failed; the cause is in its log",
        503 => "A dependency (database, sequencer) is unavailable; retry later",
        _ => "Answer",
    }
}

/// The document, with each operation's access taken from the registered routes.
pub fn document(
    routes: &[RouteSpec],
    limits: &Limits,
    operations: fn(&mut Schemas, &Limits) -> Vec<Op>,
) -> Value {
    let mut s = Schemas::default();
    let problem = s.of::<Problem>();
    let mut paths = Map::new();
    for o in operations(&mut s, limits) {
        let access = routes
            .iter()
            .find(|r| r.method.as_str() == o.method && r.path == o.path)
            .map(|r| r.access);
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
        if !o.body.is_empty() {
            let content: Map<String, Value> = o
                .body
                .iter()
                .map(|(media, schema)| (media.to_string(), json!({"schema": schema})))
                .collect();
            operation.insert(
                "requestBody".into(),
                json!({"required": o.body_required, "content": content}),
            );
        }
        let mut responses = Map::new();
        let (status, media, schema) = &o.ok;
        responses.insert(
            status.to_string(),
            if *status == 204 {
                json!({"description": "Done; no body"})
            } else {
                json!({"description": reason(*status), "content": {*media: {"schema": schema}}})
            },
        );
        for code in error_statuses(&o, access) {
            let body = if code == 200 {
                json!({"description": reason(code), "content": {*media: {"schema": schema}}})
            } else {
                json!({"description": reason(code),
                       "content": {"application/problem+json": {"schema": problem}}})
            };
            responses.insert(code.to_string(), body);
        }
        operation.insert("responses".into(), Value::Object(responses));
        if !o.order.is_empty() {
            operation.insert("x-accord-order".into(), Value::Array(o.order.clone()));
        }
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
            "schemas": s.0,
        },
    })
}

/// Whether a route belongs to the API the document describes (the web UI does not).
pub fn is_api(path: &str) -> bool {
    !path.starts_with("/ui") && !path.starts_with("/bench")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `properties` in the document is an object (a stray `null` breaks OpenAPI tools).
    fn properties_are_objects(v: &Value, at: &str) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if k == "properties" {
                        assert!(v.is_object(), "{at}/properties is {v}");
                    }
                    properties_are_objects(v, &format!("{at}/{k}"));
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    properties_are_objects(v, &format!("{at}/{i}"));
                }
            }
            _ => {}
        }
    }

    #[test]
    fn send_lists_and_client_names_match_what_the_server_reads() {
        let send_list = crate::consent::api::send_list_text();
        let send_list = regex::Regex::new(send_list["pattern"].as_str().unwrap()).unwrap();
        for ok in [
            "",
            "a",
            "a\n",
            " a \r\n\nb",
            "\t\n\n",
            "é è",
            &"x".repeat(256),
        ] {
            assert!(send_list.is_match(ok), "{ok:?}");
        }
        for bad in ["a\u{1}", "\u{a0}a", &"x".repeat(257), "a\n\u{85}"] {
            assert!(!send_list.is_match(bad), "{bad:?}");
        }
        let client = crate::auth::model::client_schema();
        let client = regex::Regex::new(client["pattern"].as_str().unwrap()).unwrap();
        for s in [
            "crm",
            " crm\t",
            "a.b_c-1",
            "",
            "CRM",
            "c rm",
            "\u{a0}crm\u{3000}",
            &"c".repeat(65),
        ] {
            assert_eq!(
                client.is_match(s),
                crate::auth::model::validate_client("client", s).is_ok(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn every_field_rule_lands_on_a_property() {
        let doc = document(&[], &Limits::default(), crate::operations);
        properties_are_objects(&doc, "");
        let schemas = &doc["components"]["schemas"];
        for (owner, field, rule) in field_rules() {
            let prop = &schemas[owner]["properties"][field];
            assert!(prop.is_object(), "{owner} has no property {field}");
            for (k, v) in rule.as_object().unwrap() {
                if k != "type" {
                    assert_eq!(&prop[k], v, "{owner}.{field}.{k}");
                }
            }
        }
        for name in ["ConsentInput", "NoticeInput", "PurposeInput"] {
            assert!(schemas[name]["allOf"].is_array(), "{name}");
        }
        let import = &doc["paths"]["/v1/consents/import"]["post"];
        let csv = &import["requestBody"]["content"]["text/csv"]["schema"]["items"];
        assert!(csv["properties"]["evidence_ip"]["anyOf"][0]["pattern"].is_string());
        assert_eq!(
            csv["properties"]["evidence_ip"]["anyOf"][1],
            json!({"const": ""})
        );
        assert!(csv["properties"]["evidence"].is_null());
        assert_eq!(
            import["x-accord-order"][0],
            json!(["body.collected_at", "<", "body.expires_at"])
        );
        assert!(
            schemas["ConsentInput"]["required"]
                .as_array()
                .unwrap()
                .contains(&json!("decision"))
        );
        assert_eq!(
            schemas["ConsentInput"]["properties"]["decision"],
            json!({"$ref": "#/components/schemas/Decision"})
        );
    }
}
