"""What schemathesis needs to test Accord from its OpenAPI document.

- Serializers for the line-based bodies: the document describes an NDJSON or CSV body as an array
  of its rows; each item is written as one line (NDJSON) or one CSV row under a header of every
  column the items use.
- `map_case`: the change feed's long poll is kept short.
- `filter_case`: the relations between two inputs the document states in `x-accord-order`, which
  JSON Schema cannot express, are kept by generated data.
- `filter_failure`: a "schema-violating request accepted" failure is dropped only when the request
  does satisfy the document after all (the generator negated one branch of an `anyOf` another
  branch admits); the run's summary counts what was dropped.
"""

import csv
import io
import json
from datetime import datetime

import jsonschema_rs
import schemathesis
from hypothesis import strategies as st
from schemathesis.core import NOT_SET


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, list):
        return "".join(json.dumps(v) + "\n" for v in value).encode("utf-8")
    return (json.dumps(value) + "\n").encode("utf-8")


@schemathesis.serializer("text/csv")
def csv_rows(ctx, value):
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        return str(value).encode("utf-8")
    columns = []
    for row in value:
        for k in row:
            if k not in columns:
                columns.append(k)
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=columns)
    w.writeheader()
    for row in value:
        w.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue().encode("utf-8")


# A signed document: what the server takes for a PDF.
schemathesis.openapi.media_type(
    "application/pdf",
    st.sampled_from([b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"]),
)


@schemathesis.deserializer("application/x-ndjson")
def ndjson_lines(ctx, response):
    text = response.content.decode(response.encoding or "utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _comparable(v):
    """An instant (a `YYYY-MM-DD` date is its first instant, UTC) or a whole number, from JSON or
    from a query string; None otherwise."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        if v.isascii() and v.isdigit():
            return int(v)
        try:
            t = datetime.fromisoformat(v + "T00:00:00+00:00" if len(v) == 10 else v)
        except ValueError:
            return v
        return t if t.tzinfo is not None else None
    return None


def _holds(a, op, b):
    """Whether `a op b`; values it cannot compare (a negative case's) are let through."""
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    a, b = _comparable(a), _comparable(b)
    if a is None or b is None or type(a) is not type(b) or isinstance(a, str):
        return True
    return a < b if op == "<" else a <= b


def _values(case, ref):
    """The values `place.field` names in a case: one per row of a list body (a header's name
    in any case)."""
    place, field = ref.split(".", 1)
    if place == "body":
        rows = case.body if isinstance(case.body, list) else [case.body]
    elif place == "header":
        headers = {k.lower(): v for k, v in (case.headers or {}).items()}
        return [headers.get(field.lower())]
    else:
        rows = [{"query": case.query, "path": case.path_parameters}.get(place) or {}]
    return [_member(row, field) for row in rows]


def _member(value, path):
    """The member a dotted path names inside an object (`version.expires_at`), or None."""
    for name in path.split("."):
        value = value.get(name) if isinstance(value, dict) else None
    return value


# The change feed's long poll holds a request up to `wait` seconds by design.
LONG_POLL_SECONDS = 3


@schemathesis.hook
def map_case(ctx, case):
    """Generated feed requests wait at most LONG_POLL_SECONDS (a valid value stays valid), so the
    response-time check keeps its limit for everything else."""
    query = case.query
    if case.operation.path == "/v1/changes" and isinstance(query, dict):
        wait = query.get("wait")
        if isinstance(wait, (int, str)) and not isinstance(wait, bool) and str(wait).isdigit():
            if int(wait) > LONG_POLL_SECONDS:
                query["wait"] = LONG_POLL_SECONDS if isinstance(wait, int) else str(LONG_POLL_SECONDS)
    return case


@schemathesis.hook
def filter_case(ctx, case):
    """Keeps the relations the document states in `x-accord-order` (JSON Schema cannot state
    them): generated data breaking one would rightly get a 422, and a case that leaves out a
    field its condition makes optional is not the negative case it claims to be."""
    for a, op, b in case.operation.definition.raw.get("x-accord-order", []):
        if op == "distinct":
            # No two items of the list `a` have the same `b`.
            for items in _values(case, a):
                if not isinstance(items, list):
                    continue  # a negative case's wrong type: nothing to compare
                seen = [i.get(b) for i in items if isinstance(i, dict) and i.get(b) is not None]
                if len(seen) != len(set(map(json.dumps, seen))):
                    return False
            continue
        if op == "distinct values":
            # A comma-separated value names each item once.
            for v in _values(case, a):
                if isinstance(v, str):
                    items = v.split(",")
                    if len(items) != len(set(items)):
                        return False
            continue
        if op == "unique":
            # No two rows of a list body have the same `a` (an empty cell names nothing).
            seen = [json.dumps(v) for v in _values(case, a) if v not in (None, "")]
            if len(seen) != len(set(seen)):
                return False
            continue
        if op == "required unless":
            ref, wanted = b.split("=", 1)
            (given,) = _values(case, ref)
            if given == wanted and any(v is None for v in _values(case, a)):
                return False
            continue
        left, right = _values(case, a), _values(case, b)
        if len(right) == 1:
            right = right * len(left)
        for x, y in zip(left, right):
            if x is not None and y is not None and not _holds(x, op, y):
                return False
    return True


def _valid(root, schema, value):
    doc = dict(schema)
    doc["components"] = root.get("components", {})
    validator = jsonschema_rs.Draft202012Validator(doc, validate_formats=True)
    return validator.is_valid(value)


def _query_value(schema, value):
    """A query or header value as its schema types it (they travel as text)."""
    if isinstance(value, str) and schema.get("type") == "integer":
        try:
            return int(value)
        except ValueError:
            return value
    return value


def _as_sent(media_type, body):
    """The body as the server reads it: CSV cells are text (an absent value an empty cell); an
    NDJSON body that is not a list is sent as its one line."""
    if media_type == "application/x-ndjson" and not isinstance(body, list):
        return [body]
    if media_type == "text/csv" and isinstance(body, list):
        return [
            {k: "" if v is None else str(v) for k, v in row.items()} if isinstance(row, dict) else row
            for row in body
        ]
    return body


def _satisfies_document(case):
    """Whether every part of the request is one the document admits."""
    root = case.operation.schema.raw_schema
    op = case.operation.definition.raw
    given = {
        "query": case.query or {},
        "path": case.path_parameters or {},
        "header": case.headers or {},
    }
    for p in op.get("parameters", []):
        values = given.get(p["in"])
        if values is None:
            continue
        if p["in"] == "header":
            values = {k.lower(): v for k, v in values.items()}
            name = p["name"].lower()
        else:
            name = p["name"]
        if name not in values:
            if p.get("required"):
                return False
            continue
        if not _valid(root, p["schema"], _query_value(p["schema"], values[name])):
            return False
    body = op.get("requestBody")
    if body is not None:
        if case.body is NOT_SET:
            return not body.get("required", False)
        media = body["content"].get(case.media_type)
        if media is None or not _valid(root, media["schema"], _as_sent(case.media_type, case.body)):
            return False
    return True


@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    if type(failure).__name__ != "AcceptedNegativeData":
        return True
    try:
        return not _satisfies_document(case)
    except Exception:
        return True
