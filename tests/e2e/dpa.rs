//! Vendors and DPAs through the HTTP API: registration and its rules, DPA versions and their
//! validation, sub-processor decisions, every coverage reason — now and as the contracts stood at
//! an earlier moment — signed documents, and replay of every table.

use accord::auth::model::Role;
use accord::commands;
use accord_tests::{TestApp, TestDb, settings};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::problem_field;

/// Every Art. 28(3) clause, each `true` unless named in `missing`.
fn clauses(missing: &[&str]) -> Value {
    let all = [
        "instructions",
        "confidentiality",
        "security",
        "sub_processing",
        "assistance",
        "deletion_or_return",
        "audits",
    ];
    Value::Object(
        all.iter()
            .map(|c| (c.to_string(), json!(!missing.contains(c))))
            .collect(),
    )
}

/// This year plus `n`, as the system clock says (terms are dated around today).
fn year(n: i32) -> i32 {
    use accord::clock::Clock;
    let now = accord::clock::SystemClock.now().to_rfc3339();
    now[..4].parse::<i32>().unwrap() + n
}

/// Version terms: marketing e-mail with names and addresses, transfers to the US under SCC
/// module 3, in force from last year to the year after next.
fn terms(reference: &str) -> Value {
    json!({
        "reference": reference,
        "signed_on": format!("{}-12-15", year(-2)),
        "effective_from": format!("{}-01-01", year(-1)),
        "expires_at": format!("{}-01-01", year(2)),
        "purposes": ["marketing.email"],
        "data_categories": ["email_address", "name"],
        "clauses": clauses(&[]),
        "transfers": [{"country": "US", "mechanism": "scc", "scc_module": 3}],
    })
}

struct World {
    app: TestApp,
    token: String,
}

impl World {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.app.post_json_with(path, &self.token, &body).await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .app
            .send(
                "PUT",
                path,
                Some(&self.token),
                &[],
                Some(("application/json", body.to_string().into_bytes())),
            )
            .await;
        (r.status, r.json())
    }

    /// The reason codes of one check (empty when covered).
    async fn reasons(&self, item: Value) -> Vec<String> {
        let (status, v) = self.post("/v1/dpas/check", item.clone()).await;
        assert_eq!(status, 200, "{item}: {v}");
        let reasons: Vec<String> = v["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        assert_eq!(v["covered"], json!(reasons.is_empty()), "{v}");
        reasons
    }
}

fn use_of(vendor: &str, purpose: &str, categories: &[&str]) -> Value {
    json!({"vendor": vendor, "purpose": purpose, "data_categories": categories})
}

async fn vendors_and_dpas(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let s = settings(&db, data.path());
    let app = TestApp::spawn(s.clone()).await.unwrap();
    let token = app.token(&[Role::ComplianceOfficer]).await;
    let w = World { app, token };

    for key in ["marketing.email", "analytics"] {
        let (status, v) = w
            .post("/v1/purposes", json!({"key": key, "title": key}))
            .await;
        assert_eq!(status, 201, "{v}");
    }

    // Vendors: a processor in the EEA and its sub-processor in the US.
    let (status, v) = w
        .post(
            "/v1/vendors",
            json!({"id": "mailer", "name": "Mailer GmbH", "country": "DE", "role": "processor",
                   "data_categories": ["email_address", "name"]}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        (v["version"].clone(), v["changed"].clone()),
        (json!(1), json!(true))
    );
    let (status, v) = w
        .post(
            "/v1/vendors",
            json!({"id": "mailer", "name": "Again", "country": "DE", "role": "processor"}),
        )
        .await;
    assert_eq!(
        (status, v["type"].clone()),
        (409, json!("/problems/conflict/exists")),
        "{v}"
    );
    let (status, v) = w
        .put(
            "/v1/vendors/mailer",
            json!({"name": "Mailer GmbH", "country": "DE", "role": "processor",
                   "data_categories": ["email_address", "name"]}),
        )
        .await;
    assert_eq!((status, v["changed"].clone()), (200, json!(false)), "{v}");
    // A sub-processor names its processor; the rules between fields are 422s, an unknown parent
    // a 409.
    for (body, field) in [
        (
            json!({"id": "relay", "name": "Relay", "country": "US", "role": "sub_processor"}),
            "parent",
        ),
        (
            json!({"id": "relay", "name": "Relay", "country": "XX", "role": "sub_processor", "parent": "mailer"}),
            "country",
        ),
        (
            json!({"id": "relay", "name": "Relay", "country": "US", "role": "processor", "parent": "mailer"}),
            "parent",
        ),
        (
            json!({"id": "relay", "name": "", "country": "US", "role": "sub_processor", "parent": "mailer"}),
            "name",
        ),
    ] {
        let (status, v) = w.post("/v1/vendors", body.clone()).await;
        assert_eq!(
            (status, problem_field(&v)),
            (422, Some(field)),
            "{body}: {v}"
        );
    }
    let (status, v) = w
        .post("/v1/vendors", json!({"id": "relay", "name": "Relay", "country": "US", "role": "sub_processor", "parent": "nobody"}))
        .await;
    assert_eq!((status, problem_field(&v)), (409, Some("parent")), "{v}");
    let (status, v) = w
        .post("/v1/vendors", json!({"id": "relay", "name": "Relay Inc.", "country": "US", "role": "sub_processor", "parent": "mailer"}))
        .await;
    assert_eq!(status, 201, "{v}");

    // DPA validation: each a field-level error, nothing written.
    let size = w.app.ledger.size();
    let bad = |path: &str, change: Value| {
        let mut body = json!({"id": "mailer-2026", "vendor": "mailer", "version": terms("DPA-1")});
        let target = path.split('.').fold(&mut body, |v, k| &mut v[k]);
        *target = change;
        body
    };
    for (body, status_field) in [
        (
            bad(
                "version.transfers",
                json!([{"country": "US", "mechanism": "scc"}]),
            ),
            (422, "version.transfers[0].scc_module"),
        ),
        (
            bad(
                "version.transfers",
                json!([{"country": "CN", "mechanism": "adequacy"}]),
            ),
            (422, "version.transfers[0].mechanism"),
        ),
        (
            bad(
                "version.transfers",
                json!([{"country": "FR", "mechanism": "scc", "scc_module": 2}]),
            ),
            (422, "version.transfers[0].country"),
        ),
        (
            bad("version.expires_at", json!(format!("{}-06-01", year(-2)))),
            (422, "version.expires_at"),
        ),
        (
            bad("version.clauses", {
                let mut c = clauses(&[]);
                c.as_object_mut().unwrap().remove("audits");
                c
            }),
            (422, "version.clauses.audits"),
        ),
        (
            bad("version.purposes", json!(["no.such.purpose"])),
            (409, "version.purposes[0]"),
        ),
        (bad("vendor", json!("nobody")), (409, "vendor")),
    ] {
        let (status, v) = w.post("/v1/dpas", body.clone()).await;
        assert_eq!(
            (status, problem_field(&v).map(str::to_string)),
            (status_field.0, Some(status_field.1.to_string())),
            "{body}: {v}"
        );
    }
    assert_eq!(w.app.ledger.size(), size, "refused requests write nothing");

    let (status, v) = w
        .post(
            "/v1/dpas",
            json!({"id": "mailer-2026", "vendor": "mailer", "version": terms("DPA-1")}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["versions"][0]["version"], 1);
    assert_eq!(
        v["versions"][0]["effective_from"],
        format!("{}-01-01T00:00:00.000000Z", year(-1))
    );

    // Coverage now.
    assert!(
        w.reasons(use_of("mailer", "marketing.email", &["email_address"]))
            .await
            .is_empty()
    );
    assert_eq!(
        w.reasons(use_of("mailer", "analytics", &["email_address"]))
            .await,
        ["purpose_not_covered"]
    );
    assert_eq!(
        w.reasons(use_of("mailer", "marketing.email", &["health"]))
            .await,
        ["category_not_covered"]
    );
    let mut to_china = use_of("mailer", "marketing.email", &[]);
    to_china["country"] = json!("CN");
    assert_eq!(w.reasons(to_china).await, ["transfer_not_covered"]);
    let (status, v) = w
        .post("/v1/dpas/check", use_of("nobody", "marketing.email", &[]))
        .await;
    assert_eq!((status, problem_field(&v)), (409, Some("vendor")), "{v}");

    // The sub-processor is covered through its processor's DPA once the controller authorises it.
    assert_eq!(
        w.reasons(use_of("relay", "marketing.email", &["email_address"]))
            .await,
        ["subprocessor_not_authorised"]
    );
    let (status, v) = w
        .post(
            "/v1/vendors/mailer/subprocessors",
            json!({"subprocessor": "relay", "decision": "authorised", "decided_on": format!("{}-01-05", year(-1))}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert!(
        w.reasons(use_of("relay", "marketing.email", &["email_address"]))
            .await
            .is_empty()
    );
    let (status, v) = w
        .post(
            "/v1/vendors/relay/subprocessors",
            json!({"subprocessor": "mailer", "decision": "authorised"}),
        )
        .await;
    assert_eq!(
        (status, problem_field(&v)),
        (409, Some("subprocessor")),
        "{v}"
    );

    // An amendment adds analytics but drops the audit clause; checks as of before it still see
    // version 1.
    let before_amendment = accord::clock::Timestamp(w.app.state.clock.now().micros()).to_rfc3339();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut v2 = terms("DPA-1 amendment 1");
    v2["purposes"] = json!(["marketing.email", "analytics"]);
    v2["clauses"] = clauses(&["audits"]);
    let (status, v) = w.post("/v1/dpas/mailer-2026/versions", v2).await;
    assert_eq!((status, v["version"].clone()), (201, json!(2)), "{v}");
    let (status, v) = w
        .post("/v1/dpas/check", use_of("mailer", "analytics", &[]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (v["version"].clone(), v["reasons"].clone()),
        (json!(2), json!(["clause_missing:audits"])),
        "{v}"
    );
    let mut then = use_of("mailer", "analytics", &[]);
    then["at"] = json!(before_amendment);
    let (status, v) = w.post("/v1/dpas/check", then.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(
        (v["version"].clone(), v["reasons"].clone()),
        (json!(1), json!(["purpose_not_covered"])),
        "{v}"
    );

    // Not yet in force, expired, terminated, offboarded, and before anything was recorded.
    w.post(
        "/v1/vendors",
        json!({"id": "later", "name": "Later", "country": "FR", "role": "processor"}),
    )
    .await;
    let mut future = terms("F-1");
    future["effective_from"] = json!(format!("{}-01-01", year(4)));
    future["expires_at"] = json!(format!("{}-01-01", year(5)));
    let (status, v) = w
        .post(
            "/v1/dpas",
            json!({"id": "later-1", "vendor": "later", "version": future}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        w.reasons(use_of("later", "marketing.email", &[])).await,
        ["not_yet_effective"]
    );
    w.post(
        "/v1/vendors",
        json!({"id": "old", "name": "Old", "country": "FR", "role": "processor"}),
    )
    .await;
    let mut past = terms("O-1");
    past["effective_from"] = json!("2020-01-01");
    past["expires_at"] = json!("2021-01-01");
    w.post(
        "/v1/dpas",
        json!({"id": "old-1", "vendor": "old", "version": past}),
    )
    .await;
    assert_eq!(
        w.reasons(use_of("old", "marketing.email", &[])).await,
        ["expired"]
    );
    w.post(
        "/v1/vendors",
        json!({"id": "bare", "name": "Bare", "country": "FR", "role": "processor"}),
    )
    .await;
    assert_eq!(
        w.reasons(use_of("bare", "marketing.email", &[])).await,
        ["no_dpa"]
    );
    let mut early = use_of("mailer", "marketing.email", &[]);
    early["at"] = json!("2020-01-01T00:00:00Z");
    assert_eq!(
        w.reasons(early).await,
        ["no_dpa"],
        "nothing was recorded then"
    );

    let (status, v) = w
        .post(
            "/v1/dpas/mailer-2026/terminate",
            json!({"reason": "switched providers"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["terminated_at"].is_string(), "{v}");
    assert_eq!(
        w.reasons(use_of("mailer", "marketing.email", &[])).await,
        ["terminated"]
    );
    let (status, v) = w.post("/v1/dpas/mailer-2026/terminate", json!({})).await;
    assert_eq!(
        (status, v["type"].clone()),
        (409, json!("/problems/conflict/done")),
        "{v}"
    );
    let (status, v) = w
        .post("/v1/dpas/mailer-2026/versions", terms("too late"))
        .await;
    assert_eq!((status, problem_field(&v)), (409, Some("dpa")), "{v}");
    assert!(
        w.reasons(then)
            .await
            .contains(&"purpose_not_covered".to_string()),
        "the past is unchanged"
    );
    let (status, v) = w
        .put(
            "/v1/vendors/later",
            json!({"name": "Later", "country": "FR", "role": "processor", "status": "offboarded"}),
        )
        .await;
    assert_eq!((status, v["version"].clone()), (200, json!(2)), "{v}");
    assert_eq!(
        w.reasons(use_of("later", "marketing.email", &[])).await,
        ["not_yet_effective", "vendor_offboarded"]
    );

    // The chain of sub-processors stays a chain, ending at a processor; a DPA is made with a
    // processor; a decision is not dated in the future.
    let (status, v) = w
        .put("/v1/vendors/mailer", json!({"name": "Mailer GmbH", "country": "DE", "role": "sub_processor", "parent": "relay"}))
        .await;
    assert_eq!(
        (status, problem_field(&v)),
        (409, Some("parent")),
        "a circle: {v}"
    );
    let (status, v) = w
        .put(
            "/v1/vendors/mailer",
            json!({"name": "Mailer GmbH", "country": "DE", "role": "controller"}),
        )
        .await;
    assert_eq!(
        (status, problem_field(&v)),
        (409, Some("role")),
        "it has a sub-processor: {v}"
    );
    let (status, v) = w
        .post(
            "/v1/dpas",
            json!({"id": "relay-dpa", "vendor": "relay", "version": terms("R-1")}),
        )
        .await;
    assert_eq!((status, problem_field(&v)), (409, Some("vendor")), "{v}");
    let (status, v) = w
        .post("/v1/vendors/mailer/subprocessors", json!({"subprocessor": "relay", "decision": "objected", "decided_on": format!("{}-01-01", year(1))}))
        .await;
    assert_eq!(
        (status, problem_field(&v)),
        (409, Some("decided_on")),
        "{v}"
    );
    // A DPA ended before it took effect is terminated, not still to come.
    w.post(
        "/v1/vendors",
        json!({"id": "soon", "name": "Soon", "country": "FR", "role": "processor"}),
    )
    .await;
    let mut ahead = terms("S-1");
    ahead["effective_from"] = json!(format!("{}-01-01", year(3)));
    ahead["expires_at"] = json!(format!("{}-01-01", year(4)));
    let (status, v) = w
        .post(
            "/v1/dpas",
            json!({"id": "soon-1", "vendor": "soon", "version": ahead}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = w.post("/v1/dpas/soon-1/terminate", json!({})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        w.reasons(use_of("soon", "marketing.email", &[])).await,
        ["terminated"]
    );

    // A batch is answered in order.
    let (status, v) = w
        .post("/v1/dpas/check", json!({"items": [use_of("bare", "marketing.email", &[]), use_of("old", "marketing.email", &[])]}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["results"][0]["reasons"], json!(["no_dpa"]));
    assert_eq!(v["results"][1]["reasons"], json!(["expired"]));

    // The signed document: stored once, its hash recorded, served with it.
    let pdf = b"%PDF-1.7\n signed \n%%EOF\n".to_vec();
    let put = |bytes: Vec<u8>, ct: &'static str| {
        let (app, token) = (&w.app, &w.token);
        async move {
            app.send(
                "PUT",
                "/v1/dpas/old-1/versions/1/document",
                Some(token),
                &[],
                Some((ct, bytes)),
            )
            .await
        }
    };
    let r = put(pdf.clone(), "application/pdf").await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sha = r.json()["sha256"].as_str().unwrap().to_string();
    assert_eq!(put(pdf.clone(), "application/pdf").await.status, 200);
    let r = put(b"%PDF-1.7 another".to_vec(), "application/pdf").await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = put(b"not a pdf".to_vec(), "application/pdf").await;
    assert_eq!(
        (r.status, problem_field(&r.json())),
        (422, Some("body")),
        "{}",
        r.body
    );
    assert_eq!(put(pdf.clone(), "text/plain").await.status, 415);
    let (status, ct, body) = w
        .app
        .get_with("/v1/dpas/old-1/versions/1/document", &w.token)
        .await;
    assert_eq!(
        (status, ct.as_str(), body.as_bytes()),
        (200, "application/pdf", pdf.as_slice())
    );
    let (status, _, _) = w
        .app
        .get_with("/v1/dpas/old-1/versions/7/document", &w.token)
        .await;
    assert_eq!(status, 404);
    let (status, v) = w.app.get_json_with("/v1/dpas/old-1", &w.token).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["documents"][0]["sha256"], json!(sha), "{v}");

    // Another instance of the index, built from the ledger alone, answers alike.
    w.app.stop().await;
    let app = TestApp::spawn(s.clone()).await.unwrap();
    let w = World {
        app,
        token: w.token,
    };
    assert_eq!(
        w.reasons(use_of("old", "marketing.email", &[])).await,
        ["expired"]
    );
    let (status, v) = w.app.get_json_with("/v1/vendors/mailer", &w.token).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["subprocessors"][0]["decision"], "authorised");
    assert_eq!(v["dpas"], json!(["mailer-2026"]));
    w.app.stop().await;

    let report = commands::replay_check(&s, |_, _| {}).unwrap();
    assert!(report.ok(), "{:?}", report.differences);
    let rows = |table: &str| crate::support::replayed_rows(&report, table);
    assert_eq!(rows("vendors"), (7, 7));
    assert_eq!(rows("dpa_versions"), (5, 5));
    assert_eq!(rows("dpa_documents"), (1, 1));
    assert_eq!(rows("subprocessor_decisions"), (1, 1));
    assert!(!sha.is_empty());
}

on_both_backends!(vendors_and_dpas_api, super::vendors_and_dpas);

/// `POST /v1/vendors/import` and `accord vendors import`: validated whole, rows named by line,
/// rules across rows, all or nothing, re-runs record nothing.
async fn vendor_import(db: TestDb) {
    let data = tempfile::tempdir().unwrap();
    let s = settings(&db, data.path());
    let app = TestApp::spawn(s.clone()).await.unwrap();
    let token = app.token(&[Role::ComplianceOfficer]).await;
    let w = World { app, token };
    let (status, v) = w
        .post(
            "/v1/vendors",
            json!({"id": "mailer", "name": "Mailer GmbH", "country": "DE", "role": "processor"}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let import = |ct: &'static str, body: String| {
        let (app, token) = (&w.app, w.token.clone());
        async move {
            let r = app
                .send(
                    "POST",
                    "/v1/vendors/import",
                    Some(&token),
                    &[],
                    Some((ct, body.into_bytes())),
                )
                .await;
            (r.status, r.json())
        }
    };
    let size = w.app.ledger.size();

    // Rows bad on their own: each named by line and field, nothing written.
    let ndjson = [
        json!({"id": "cloud", "name": "Cloud", "country": "IE", "role": "sub_processor", "parent": "mailer"}),
        json!({"id": "sms", "name": "SMS", "country": "ZZ", "role": "sub_processor", "parent": "cloud"}),
        json!({"id": "agency", "name": "Agency", "country": "FR", "role": "boss"}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let (status, v) = import("application/x-ndjson", ndjson).await;
    assert_eq!(status, 422, "{v}");
    let named: Vec<(Value, Value)> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].clone(), e["field"].clone()))
        .collect();
    assert_eq!(
        named,
        [(json!(2), json!("country")), (json!(3), json!("role"))],
        "{v}"
    );
    assert_eq!(w.app.ledger.size(), size);

    // Rules across rows: a circle and an unknown parent, refused with their lines (409).
    let csv = "id,name,country,role,parent\n\
               a,A,DE,sub_processor,b\n\
               b,B,DE,sub_processor,a\n\
               c,C,DE,sub_processor,nowhere\n\
               d,D,DE,processor,\n";
    let (status, v) = import("text/csv", csv.into()).await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("3 of 4 rows are refused"),
        "{v}"
    );
    let lines: Vec<Value> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].clone())
        .collect();
    assert_eq!(lines, [json!(2), json!(3), json!(4)], "{v}");
    assert_eq!(w.app.ledger.size(), size);

    // A good file: a sub-processor listed before its parent, a change to a stored vendor.
    let csv = "id,name,legal_name,country,role,parent,data_categories\n\
               sms,SMS Co,\"SMS Co, Inc.\",US,sub_processor,cloud,phone_number;name\n\
               cloud,Cloud,,IE,sub_processor,mailer,email_address\n\
               mailer,Mailer SE,,DE,processor,,\n\
               agency,Agency,,FR,controller,,\n";
    let (status, v) = import("text/csv", csv.into()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (&v["rows"], &v["registered"], &v["changed"], &v["unchanged"]),
        (&json!(4), &json!(3), &json!(1), &json!(0)),
        "{v}"
    );
    assert_eq!(w.app.ledger.size(), size + 4);
    let (status, sms) = w.app.get_json_with("/v1/vendors/sms", &w.token).await;
    assert_eq!(status, 200, "{sms}");
    assert_eq!(sms["vendor"]["legal_name"], "SMS Co, Inc.");
    assert_eq!(
        sms["vendor"]["data_categories"],
        json!(["phone_number", "name"])
    );
    // The index follows at once: the sub-processor is known, and not yet authorised.
    assert_eq!(
        w.reasons(use_of("sms", "marketing.email", &[])).await,
        ["no_dpa", "subprocessor_not_authorised"]
    );

    // A re-run records nothing.
    let (status, v) = import("text/csv", csv.into()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!((&v["registered"], &v["unchanged"]), (&json!(0), &json!(4)));
    assert_eq!(w.app.ledger.size(), size + 4);
    let (status, _) = import("application/json", "{}".into()).await;
    assert_eq!(status, 415);
    w.app.stop().await;

    // The command line: the same rules, from a file.
    let file = data.path().join("vendors.ndjson");
    std::fs::write(
        &file,
        [
            json!({"id": "print", "name": "Print", "country": "NL", "role": "processor"}),
            json!({"id": "agency", "name": "Agency", "country": "FR", "role": "controller"}),
        ]
        .iter()
        .map(|v| v.to_string() + "\n")
        .collect::<String>(),
    )
    .unwrap();
    let cli = commands::CliAccess::open(&s).await.unwrap();
    commands::dpa::import_vendors(&cli, &file).await.unwrap();
    std::fs::write(&file, "{\"id\":\"x\",\"name\":\"X\",\"country\":\"DE\",\"role\":\"sub_processor\",\"parent\":\"agency\"}\n").unwrap();
    let e = commands::dpa::import_vendors(&cli, &file)
        .await
        .unwrap_err();
    assert!(e.0.contains("line 1, parent"), "{e}");
    assert!(e.0.contains("\"agency\" is a controller"), "{e}");
    cli.close().await;

    let report = commands::replay_check(&s, |_, _| {}).unwrap();
    assert!(report.ok(), "{:?}", report.differences);
    assert_eq!(crate::support::replayed_rows(&report, "vendors"), (6, 6));
}

on_both_backends!(vendor_import_api_and_cli, super::vendor_import);
