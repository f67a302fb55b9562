//! CONTRACT §3.3 tier C: the legacy direct-write routes answer 410
//! `endpoint_removed`, never 404 (Go's `IsNotFound` would read a 404 as
//! "already gone").

use crate::backends;
use crate::harness::TestApp;

backends!(removed_routes_answer_410_and_point_to_source_sync);

async fn removed_routes_answer_410_and_point_to_source_sync(app: &TestApp) {
    let http = app.http();
    for (method, path) in kiln_server::REMOVED_ROUTES {
        let concrete = path.replace("{id}", "some-id");
        let send = |key: &str| {
            http.request(method.parse().unwrap(), app.url(&concrete))
                .header("X-API-Key", key)
                .json(&serde_json::json!({"name": "x"}))
                .send()
        };
        let anonymous = send("kiln_invalid").await.unwrap();
        assert_eq!(
            anonymous.status().as_u16(),
            401,
            "{method} {path} without a valid key"
        );

        let response = send(&app.key).await.unwrap();
        assert_eq!(response.status().as_u16(), 410, "{method} {path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "endpoint_removed", "{method} {path}: {body}");
        assert_eq!(body["error"], "endpoint_removed");
        let message = body["message"].as_str().unwrap();
        let route = format!("{method} {}", path.replace("{id}", ":id"));
        assert!(message.starts_with(&route), "{message}");
        assert!(message.contains("PUT /api/sdk/source-sync"), "{message}");
    }
}
