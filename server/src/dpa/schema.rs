//! What the validators of these bodies check, as JSON Schema: the field rules and the relations
//! between fields that the OpenAPI document writes into the derived schemas (see
//! `openapi::field_rules` and `openapi::relations`).

use serde_json::{Value, json};

/// A date, `YYYY-MM-DD`, in the years an instant may have.
pub fn date_schema() -> Value {
    json!({"type": "string", "format": "date",
           "pattern": "^(1[7-9][0-9]{2}|2[01][0-9]{2}|22[0-4][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"})
}

/// A date or an instant; `null` too when `optional`.
pub fn date_or_instant_schema(optional: bool) -> Value {
    let mut any = vec![date_schema(), crate::vocab::schema::instant()];
    if optional {
        any.push(json!({"type": "null"}));
    }
    json!({"anyOf": any})
}

/// A list of keys, each once.
pub fn keys_schema(min: usize) -> Value {
    json!({"type": "array", "items": crate::vocab::schema::key(), "uniqueItems": true,
           "minItems": min, "maxItems": super::input::MAX_KEYS})
}

/// What the validators check on each field of these bodies (see `openapi::field_rules`).
pub fn field_rules() -> Vec<(&'static str, &'static str, Value)> {
    use crate::vocab::schema as rule;
    let clauses: Vec<&str> = super::model::Clause::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    let clause_props: serde_json::Map<String, Value> = clauses
        .iter()
        .map(|c| (c.to_string(), json!({"type": "boolean"})))
        .collect();
    let outside_eea: Vec<&str> = crate::vocab::country::ISO_3166_1
        .iter()
        .copied()
        .filter(|c| !crate::vocab::country::EEA.contains(c))
        .collect();
    vec![
        ("VendorInput", "id", rule::key()),
        ("VendorInput", "name", rule::text(200, true)),
        ("VendorInput", "legal_name", rule::text(300, true)),
        ("VendorInput", "contact", rule::text(320, true)),
        ("VendorInput", "parent", rule::key()),
        ("VendorInput", "data_categories", keys_schema(0)),
        ("VersionInput", "reference", rule::text(200, true)),
        ("VersionInput", "signed_on", date_schema()),
        (
            "VersionInput",
            "effective_from",
            date_or_instant_schema(false),
        ),
        ("VersionInput", "expires_at", date_or_instant_schema(true)),
        ("VersionInput", "purposes", keys_schema(1)),
        ("VersionInput", "data_categories", keys_schema(1)),
        (
            "VersionInput",
            "clauses",
            json!({"type": "object", "required": clauses, "properties": clause_props,
                   "additionalProperties": false}),
        ),
        (
            "VersionInput",
            "transfers",
            json!({"maxItems": super::input::MAX_TRANSFERS}),
        ),
        ("VersionInput", "document_sha256", rule::sha256_hex()),
        ("TransferInput", "country", json!({"enum": outside_eea})),
        ("TransferInput", "tia_reference", rule::text(200, true)),
        ("DpaInput", "id", rule::key()),
        ("DpaInput", "vendor", rule::key()),
        ("DecisionInput", "subprocessor", rule::key()),
        ("DecisionInput", "decided_on", date_schema()),
        ("DecisionInput", "note", rule::text(1000, false)),
        (
            "TerminateInput",
            "effective_at",
            date_or_instant_schema(true),
        ),
        ("TerminateInput", "reason", rule::text(1000, false)),
        ("CoverageItem", "vendor", rule::key()),
        ("CoverageItem", "purpose", rule::key()),
        ("CoverageItem", "data_categories", keys_schema(0)),
        ("CoverageItem", "at", rule::instant()),
    ]
}

/// Rules between the fields of these bodies, as JSON Schema (see `openapi::relations`), with what
/// a text field `given` and any field `absent` look like.
pub fn relations(name: &str, given: &Value, absent: &Value) -> Vec<Value> {
    match name {
        // A sub-processor names its processor; nothing else names a parent.
        "VendorInput" => vec![json!({"anyOf": [
            {"required": ["role", "parent"], "properties": {
                "role": {"const": "sub_processor"}, "parent": given}},
            {"properties": {"role": {"not": {"const": "sub_processor"}}, "parent": absent}},
        ]})],
        // An SCC transfer names its module, and only it; adequacy only where the Commission found it.
        "TransferInput" => vec![
            json!({"anyOf": [
                {"required": ["mechanism", "scc_module"], "properties": {
                    "mechanism": {"const": "scc"}, "scc_module": {"type": "integer"}}},
                {"properties": {"mechanism": {"not": {"const": "scc"}}, "scc_module": absent}},
            ]}),
            json!({"anyOf": [
                {"properties": {"mechanism": {"not": {"const": "adequacy"}}}},
                {"properties": {"country": {"enum": crate::vocab::country::ADEQUATE}}},
            ]}),
        ],
        _ => Vec::new(),
    }
}
