//! The web UI in a real headless Chromium (Debian's chromium and chromium-driver): sign in, submit
//! a form, be refused when the CSRF token is tampered with, sign out.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use accord::auth::model::Role;
use accord::ledger::Actor;
use accord_tests::{TestApp, TestDb, required, settings, unavailable};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
    profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Option<Driver> {
        if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists()
        {
            return unavailable("browser", "chromium and chromium-driver are not installed");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .ok()?;
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => return unavailable("browser", &format!("chromedriver did not start: {e}")),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                return unavailable("browser", "chromedriver did not listen within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile: tempfile::tempdir().ok()?,
        })
    }

    async fn browser(&self) -> Client {
        let caps = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--window-size=1280,800", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-quic",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ]
            }
        });
        let caps = caps.as_object().cloned().unwrap_or_default();
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("connect to chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn fill(c: &Client, css: &str, value: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .send_keys(value)
        .await
        .unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Saves what the browser shows to `$ACCORD_TEST_SCREENSHOTS/<name>.png`, when that is set (to
/// look at the pages).
/// The current page has no serious or critical accessibility violation by axe-core's rules. axe
/// comes from npm (`.ci/run` installs it under `target/axe`; `ACCORD_TEST_AXE` names another
/// `axe.min.js`); without it the check is skipped with a notice, unless the browser is required.
async fn accessible(c: &Client, page: &str) {
    let path = std::env::var("ACCORD_TEST_AXE").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/axe/node_modules/axe-core/axe.min.js"
        )
        .into()
    });
    let Ok(source) = std::fs::read_to_string(&path) else {
        assert!(
            !required("browser"),
            "axe-core is required with the browser but {path} is missing (npm install --prefix target/axe axe-core@4)"
        );
        eprintln!("SKIPPED (axe-core unavailable: no {path})");
        return;
    };
    c.execute(&source, vec![]).await.expect("load axe-core");
    let found = c
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations
  .filter(v => v.impact === 'serious' || v.impact === 'critical')
  .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at '
       + v.nodes.map(n => n.target.join(' ')).join(', '))));"#,
            vec![],
        )
        .await
        .expect("run axe-core");
    let violations: Vec<String> = serde_json::from_value(found).unwrap_or_default();
    assert!(violations.is_empty(), "{page}: {violations:#?}");
}

async fn screenshot(c: &Client, name: &str) {
    if let Ok(dir) = std::env::var("ACCORD_TEST_SCREENSHOTS") {
        let png = c.screenshot().await.expect("screenshot");
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

/// An application on SQLite with one user (holding `roles`), and a browser signed in as them
/// through the form.
async fn signed_in(
    driver: &Driver,
    db: &TestDb,
    data: &std::path::Path,
    (email, name, password): (&str, &str, &str),
    roles: &[Role],
) -> (TestApp, Client) {
    let app = TestApp::spawn(settings(db, data)).await.unwrap();
    accord::auth::api::service(&app.state)
        .create_user(Actor::cli(), None, email, name, roles, Some(password))
        .await
        .unwrap();
    let c = driver.browser().await;
    c.goto(&app.url("/ui/login")).await.unwrap();
    fill(&c, "input[name=email]", email).await;
    fill(&c, "input[name=password]", password).await;
    click(&c, "#login button[type=submit]").await;
    wait_for_path(&c, "/ui/").await;
    (app, c)
}

async fn wait_for_path(c: &Client, path: &str) {
    let started = Instant::now();
    loop {
        let url = c.current_url().await.unwrap();
        if url.path() == path {
            return;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let source = c.source().await.unwrap_or_default();
            panic!("still at {url}, waiting for {path}; the page says:\n{source}");
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn sign_in_submit_tamper_and_sign_out_in_chromium() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let db = TestDb::sqlite();
    let data = tempfile::tempdir().unwrap();
    // Sign in through the form.
    let grace = ("grace@example.org", "Grace Hopper", "first compiler 1952");
    let (app, c) = signed_in(&driver, &db, data.path(), grace, &[Role::Legal]).await;
    assert!(text_of(&c, "#who").await.contains("Grace Hopper"));
    assert_eq!(text_of(&c, "#roles").await, "legal");
    accessible(&c, "home").await;

    // Submit a form: change the password.
    fill(&c, "#password input[name=current]", "first compiler 1952").await;
    fill(&c, "#password input[name=new]", "nanoseconds of wire").await;
    click(&c, "#password button[type=submit]").await;
    let started = Instant::now();
    while c.find(Locator::Css("#notice")).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no confirmation"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(text_of(&c, "#notice").await.contains("changed"));

    // The same form with a tampered CSRF token is refused, and the password stays.
    c.execute(
        "document.querySelector('#password input[name=csrf]').value = 'tampered';",
        vec![],
    )
    .await
    .unwrap();
    fill(&c, "#password input[name=current]", "nanoseconds of wire").await;
    fill(&c, "#password input[name=new]", "a password never set").await;
    click(&c, "#password button[type=submit]").await;
    let started = Instant::now();
    while c.find(Locator::Css("#detail")).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no refusal page"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(text_of(&c, "#detail").await.contains("security token"));
    accessible(&c, "error page").await;

    // Sign out; the pages then send us to the sign-in form.
    c.goto(&app.url("/ui/")).await.unwrap();
    click(&c, "#logout button[type=submit]").await;
    wait_for_path(&c, "/ui/login").await;
    assert!(text_of(&c, "#notice").await.contains("signed out"));
    accessible(&c, "sign-in page").await;
    c.goto(&app.url("/ui/")).await.unwrap();
    wait_for_path(&c, "/ui/login").await;

    // The password changed once: the new one works, the tampered submission had no effect.
    fill(&c, "input[name=email]", "grace@example.org").await;
    fill(&c, "input[name=password]", "nanoseconds of wire").await;
    click(&c, "#login button[type=submit]").await;
    wait_for_path(&c, "/ui/").await;

    c.close().await.unwrap();
    app.stop().await;
}

#[actix_web::test]
async fn vendor_pages_with_the_expiry_timeline_in_chromium() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let db = TestDb::sqlite();
    let data = tempfile::tempdir().unwrap();
    let ada = ("ada@example.org", "Ada Lovelace", "analytical engine 1843");
    let (app, c) = signed_in(
        &driver,
        &db,
        data.path(),
        ada,
        &[Role::Legal, Role::ComplianceOfficer],
    )
    .await;
    // A processor with a DPA (one version in force, one amendment), and its sub-processor.
    let token = app.token(&[Role::ComplianceOfficer]).await;
    let post = |path: &'static str, body: serde_json::Value| {
        let (app, token) = (&app, &token);
        async move {
            let (status, v) = app.post_json_with(path, token, &body).await;
            assert!(status < 300, "{path}: {v}");
        }
    };
    post(
        "/v1/purposes",
        json!({"key": "newsletter", "title": "Newsletter"}),
    )
    .await;
    post(
        "/v1/vendors",
        json!({"id": "mailer", "name": "Mailer GmbH", "country": "DE", "role": "processor"}),
    )
    .await;
    post("/v1/vendors", json!({"id": "relay", "name": "Relay Inc.", "country": "US", "role": "sub_processor", "parent": "mailer"})).await;
    post(
        "/v1/vendors/mailer/subprocessors",
        json!({"subprocessor": "relay", "decision": "authorised"}),
    )
    .await;
    let clauses = json!({"instructions": true, "confidentiality": true, "security": true,
        "sub_processing": true, "assistance": true, "deletion_or_return": true, "audits": false});
    let today = accord::clock::Timestamp(app.state.clock.now().micros());
    let year = &today.to_rfc3339()[..4];
    let next: i32 = year.parse::<i32>().unwrap() + 2;
    post(
        "/v1/dpas",
        json!({"id": "mailer-dpa", "vendor": "mailer", "version": {
        "reference": "DPA-1", "signed_on": "2025-01-01", "effective_from": "2025-01-01",
        "expires_at": format!("{next}-01-01"), "purposes": ["newsletter"],
        "data_categories": ["email_address"], "clauses": clauses,
        "transfers": [{"country": "US", "mechanism": "scc", "scc_module": 3}]}}),
    )
    .await;

    c.goto(&app.url("/ui/")).await.unwrap();
    // By keyboard: Enter on the link.
    c.find(Locator::Css("#vendors-link"))
        .await
        .unwrap()
        .send_keys("\u{e007}")
        .await
        .unwrap();
    wait_for_path(&c, "/ui/vendors").await;
    // The timeline is a picture with a name and a description, one bar per DPA version.
    let svg = c.find(Locator::Css("svg#timeline")).await.unwrap();
    assert_eq!(svg.attr("role").await.unwrap().as_deref(), Some("img"));
    assert_eq!(
        svg.attr("aria-labelledby").await.unwrap().as_deref(),
        Some("timeline-title")
    );
    assert_eq!(
        svg.attr("aria-describedby").await.unwrap().as_deref(),
        Some("timeline-desc")
    );
    // The same versions in text, for those who would rather read.
    click(&c, "#timeline-table summary").await;
    assert!(
        text_of(&c, "#timeline-table")
            .await
            .contains("mailer-dpa v1")
    );
    let title = c
        .execute(
            "return document.querySelector('#timeline-title').textContent",
            vec![],
        )
        .await
        .unwrap();
    assert!(title.as_str().unwrap().contains("DPA versions"), "{title}");
    let bars = c.find_all(Locator::Css("#timeline g.bar")).await.unwrap();
    assert_eq!(bars.len(), 1);
    assert!(c.find(Locator::Css("#timeline line.today")).await.is_ok());
    screenshot(&c, "vendors").await;
    accessible(&c, "vendors page").await;
    // The table says where each vendor stands; the sub-processor stands on its processor's DPA.
    let table = text_of(&c, "#vendors").await;
    assert!(
        table.contains("Mailer GmbH") && table.contains("Relay Inc."),
        "{table}"
    );
    // Its DPA is in force but lacks the audit clause: not cover, and said so.
    assert_eq!(
        table.matches("clause missing: audits").count(),
        2,
        "{table}"
    );

    click(&c, "a[href='/ui/vendors/mailer']").await;
    wait_for_path(&c, "/ui/vendors/mailer").await;
    assert_eq!(
        text_of(&c, "#standing").await,
        "Art. 28(3) clause missing: audits"
    );
    assert!(text_of(&c, "#subprocessors").await.contains("authorised"));
    let clauses = text_of(&c, "table.clauses").await;
    assert!(
        clauses.contains("audits") && clauses.contains("missing"),
        "{clauses}"
    );
    assert!(text_of(&c, "main").await.contains("US: scc module 3"));
    // The version's reminders, 60, 30 and 7 days before it expires, each still to come.
    let rows = c
        .find_all(Locator::Css("table[aria-labelledby=reminders] tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    let first = rows[0].text().await.unwrap();
    assert!(
        first.contains("mailer-dpa") && first.contains("due"),
        "{first}"
    );
    screenshot(&c, "vendor").await;
    accessible(&c, "vendor page").await;

    // The outbox page: no mail server here, so it says so; the three reminders are listed.
    c.goto(&app.url("/ui/")).await.unwrap();
    click(&c, "#outbox-link").await;
    wait_for_path(&c, "/ui/outbox").await;
    let smtp = text_of(&c, "#smtp").await;
    assert!(smtp.contains("No mail server is configured"), "{smtp}");
    let rows = c.find_all(Locator::Css("#mail tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 3);
    let first = rows[0].text().await.unwrap();
    assert!(
        first.contains("compliance_officer, legal") && first.contains("DPA mailer-dpa"),
        "{first}"
    );
    screenshot(&c, "outbox").await;
    accessible(&c, "outbox page").await;

    c.close().await.unwrap();
    app.stop().await;
}
