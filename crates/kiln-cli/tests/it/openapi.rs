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

    // Every documented operation is served; every other method on a
    // documented path is 405 (so the router holds nothing undocumented there).
    let http = app.http();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "some-id").replace("{name}", "some_name");
        for method in METHODS {
            let response = http
                .request(method.parse().unwrap(), app.url(&concrete))
                .header("X-API-Key", "kiln_invalid")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            if item.get(method.to_lowercase()).is_some() {
                assert!(
                    status != 404 && status != 405,
                    "{method} {path} is documented but answered {status}"
                );
                // Documented schemas exist for every response body they name.
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
