//! CI declares the services it provides (`ACCORD_TEST_REQUIRE`); this checks each one is really
//! there, so a CI run cannot pass by skipping.

use std::process::Command;

use accord_tests::{TestDb, required};

#[test]
fn required_services_are_present() {
    if required("postgres") {
        assert!(
            TestDb::postgres().is_some(),
            "PostgreSQL is required but unreachable"
        );
    }
    if required("browser") {
        for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            let out = Command::new(bin).arg("--version").output();
            assert!(
                out.map(|o| o.status.success()).unwrap_or(false),
                "{bin} is required (browser) but does not run"
            );
        }
    }
    if required("smtp") {
        let ok = Command::new("/usr/bin/python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "python3-aiosmtpd is required (smtp) but not installed");
    }
}
