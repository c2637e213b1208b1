"""Serializers and deserializers schemathesis needs for Accord's line-based bodies.

The OpenAPI document describes an NDJSON or CSV body as an array of its rows: each item is
written as one line (NDJSON) or one CSV row under a header of every column the items use.
"""

import csv
import io
import json

import schemathesis


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


@schemathesis.deserializer("application/x-ndjson")
def ndjson_lines(ctx, response):
    text = response.content.decode(response.encoding or "utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
