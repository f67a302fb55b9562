//! `/openapi.json` describes exactly the routes the server serves.

use std::collections::BTreeSet;

use crate::backends;
use crate::harness::TestApp;

backends!(openapi_document_matches_the_router);

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

async fn openapi_document_matches_the_router(app: &TestApp) {
    let doc = app.client.openapi().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method.to_lowercase()).is_some() {
                documented.insert((method.to_owned(), path.clone()));
            }
        }
    }
    // Every endpoint the SDK calls is documented, and nothing else but the
    // removed legacy routes (documented with their 410, no SDK method).
    let sdk: BTreeSet<(String, String)> = kiln_sdk::ENDPOINTS
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let removed: BTreeSet<(String, String)> = kiln_server::REMOVED_ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert!(
        removed.is_subset(&documented),
        "every removed route is documented"
    );
    let current: BTreeSet<_> = documented.difference(&removed).cloned().collect();
    assert_eq!(current, sdk, "OpenAPI document and SDK endpoint list differ");

    // Every documented operation is served, past authentication, by its
    // handler: with a valid key it answers neither 401 nor the router's
    // own 404 (`no such route`), nor 405, nor a 5xx. Every other method on
    // a documented path is 405 (so the router holds nothing undocumented
    // there).
    let http = app.http();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{id}", "some-id")
            .replace("{name}", "some_name")
            .replace("{doc_id}", "some-doc")
            .replace("{path}", "notes/todo.md");
        for method in METHODS {
            let documented = item.get(method.to_lowercase()).is_some();
            let public = item[method.to_lowercase()]["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.as_object().is_some_and(|r| r.is_empty())));
            let mut request = http.request(method.parse().unwrap(), app.url(&concrete));
            if path.starts_with("/v1/") {
                request = request.bearer_auth(&app.key);
            } else {
                request = request.header("X-API-Key", &app.key);
            }
            if method != "GET" && method != "DELETE" {
                request = request.json(&serde_json::json!({}));
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            if documented {
                assert!(
                    status != 405 && status < 500 && (status != 401 || public),
                    "{method} {path} is documented but answered {status}: {body}"
                );
                assert!(
                    !(status == 404 && body.contains("no such route")),
                    "{method} {path} is documented but the router does not serve it"
                );
            } else {
                assert_eq!(
                    status, 405,
                    "{method} {path} is not documented but answered {status}"
                );
            }
        }
    }
    // Schemas referenced by operations are present.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "Project",
        "ProjectMetrics",
        "SecretVault",
        "RedactedSecret",
        "PromptTemplate",
        "AuditLogPage",
        "ErrorBody",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
}
