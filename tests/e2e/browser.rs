//! The web UI in a real headless Chromium (Debian's chromium and chromium-driver): sign in, submit
//! a form, be refused when the CSRF token is tampered with, sign out.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use accord::auth::model::Role;
use accord::ledger::Actor;
use accord_tests::{TestApp, TestDb, settings, unavailable};
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
    let app = TestApp::spawn(settings(&db, data.path())).await.unwrap();
    accord::auth::api::service(&app.state)
        .create_user(
            Actor::cli(),
            None,
            "grace@example.org",
            "Grace Hopper",
            &[Role::Legal],
            Some("first compiler 1952"),
        )
        .await
        .unwrap();
    let c = driver.browser().await;

    // Sign in through the form.
    c.goto(&app.url("/ui/login")).await.unwrap();
    fill(&c, "input[name=email]", "grace@example.org").await;
    fill(&c, "input[name=password]", "first compiler 1952").await;
    click(&c, "#login button[type=submit]").await;
    wait_for_path(&c, "/ui/").await;
    assert!(text_of(&c, "#who").await.contains("Grace Hopper"));
    assert_eq!(text_of(&c, "#roles").await, "legal");

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

    // Sign out; the pages then send us to the sign-in form.
    c.goto(&app.url("/ui/")).await.unwrap();
    click(&c, "#logout button[type=submit]").await;
    wait_for_path(&c, "/ui/login").await;
    assert!(text_of(&c, "#notice").await.contains("signed out"));
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
