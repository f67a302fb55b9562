//! The web console: served by the server itself with a strict policy, and
//! used in a real browser (headless Chromium driven by playwright-core, the
//! suite in `e2e/`) against the built `kiln` binary.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{Backend, TestApp};

/// `/` leads to the console; the page and every script it loads come with a
/// policy that allows nothing from elsewhere and nothing inline; a missing
/// file is a 404 with the error body.
#[tokio::test]
async fn the_console_is_served_with_a_strict_policy() {
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = http.get(app.url("/")).send().await.unwrap();
    assert!(root.status().is_redirection(), "{}", root.status());
    assert_eq!(root.headers()["location"], "/console");

    let page = http.get(app.url("/console")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(part), "{policy}");
    }
    assert!(!policy.contains("unsafe") && !policy.contains("http"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "no inline code"
    );

    // The entry script and the modules it imports, found by reading them.
    let mut pending = vec!["main.js".to_owned()];
    let mut seen = Vec::new();
    while let Some(name) = pending.pop() {
        if seen.contains(&name) {
            continue;
        }
        let response = http
            .get(app.url(&format!("/console/assets/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(
            response.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert!(response.headers().contains_key("content-security-policy"));
        let source = response.text().await.unwrap();
        for import in source.lines().filter_map(|l| l.split("from './").nth(1)) {
            pending.push(import.split('\'').next().unwrap().to_owned());
        }
        // Every call goes through the public API: no other origin, no
        // private path.
        assert!(
            !source.contains("http://") && !source.contains("https://"),
            "{name}"
        );
        seen.push(name);
    }
    assert!(seen.len() >= 10, "{seen:?}");

    let missing = http.get(app.url("/console/assets/nope.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "NOT_FOUND");
    app.stop().await;
}

/// The browser suite (`e2e/console.test.mjs`) against the built binary. It
/// needs Node.js, `npm ci` in `e2e/` and Chromium; without them it is
/// skipped with the reason, except in CI, where it must run.
#[test]
fn the_console_works_in_a_browser() {
    let e2e = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../e2e");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let missing = [
        (!e2e.join("node_modules/playwright-core").exists())
            .then_some("e2e/node_modules (run `npm ci` in e2e/)"),
        (!PathBuf::from(&chromium).exists()).then_some("Chromium (apt-get install chromium)"),
        Command::new("node")
            .arg("--version")
            .output()
            .is_err()
            .then_some("Node.js"),
    ];
    let missing: Vec<&str> = missing.into_iter().flatten().collect();
    if !missing.is_empty() {
        assert!(
            std::env::var("CI").is_err(),
            "the browser tests must run in CI; missing: {}",
            missing.join(", ")
        );
        eprintln!("skipping the browser tests; missing: {}", missing.join(", "));
        return;
    }
    let output = Command::new("node")
        .args([
            "--test",
            "--test-concurrency=1",
            "--test-reporter=tap",
            "console.test.mjs",
        ])
        .current_dir(&e2e)
        .env("KILN_BIN", env!("CARGO_BIN_EXE_kiln"))
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "browser tests failed:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains("# fail 0") && !report.contains("# pass 0"),
        "{report}"
    );
}
