//! CONTRACT §1: error bodies for every failure, tolerant JSON, 413, 404/405,
//! CORS, percent-encoded path segments, graceful shutdown.

use std::time::Duration;

use kiln_sdk::api::{AuditLogQuery, CreateSecretVault};

use crate::backends;
use crate::harness::{Backend, TEST_BODY_LIMIT, TestApp, api_err};

backends!(
    nul_characters_are_refused_everywhere,
    framework_errors_carry_the_error_body,
    bad_json_is_400_naming_the_field_and_writes_nothing,
    oversized_bodies_are_413,
    bodies_are_read_tolerantly,
    names_in_paths_are_decoded_after_routing,
    cors_preflight_needs_no_key,
);

async fn error_json(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{status}: {content_type}"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert_eq!(body["error"], body["code"], "{body}");
    (status, body)
}

/// PostgreSQL cannot store NUL in text; every input path refuses it with a
/// 400 instead of failing inside the database.
async fn nul_characters_are_refused_everywhere(app: &TestApp) {
    for path in [
        "/api/sdk/secret-vaults/a%00b",
        "/api/sdk/prompt-templates/%00",
        "/api/sdk/audit-log?action=%00",
    ] {
        let response = app
            .http()
            .get(app.url(path))
            .header("X-API-Key", &app.key)
            .send()
            .await
            .unwrap();
        let (status, body) = error_json(response).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("bad_request")),
            "{path}"
        );
    }
    let response = app
        .http()
        .post(app.url("/api/sdk/prompt-templates"))
        .header("X-API-Key", &app.key)
        .body(r#"{"name":"t","content":"a\u0000b"}"#)
        .send()
        .await
        .unwrap();
    let (status, body) = error_json(response).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("content")));
    let response = app
        .http()
        .put(app.url("/api/sdk/project/vault"))
        .header("X-API-Key", &app.key)
        .body(r#"{"vault_id":"\u0000"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // Control characters in names are a validation failure, naming the field.
    let err = api_err(
        app.client
            .create_secret_vault(&CreateSecretVault {
                name: "line\nbreak".into(),
                metadata: None,
            })
            .await,
        400,
        "validation_failed",
    );
    assert_eq!(err.details["field"], "name");
    // A wrong-typed secret value is refused without echoing it.
    let vault = app
        .client
        .create_secret_vault(&CreateSecretVault {
            name: "v".into(),
            metadata: None,
        })
        .await
        .unwrap();
    let response = app
        .http()
        .put(app.url(&format!("/api/sdk/secret-vaults/{}/secrets/k", vault.id)))
        .header("X-API-Key", &app.key)
        .body(r#"{"value": 8675309123}"#)
        .send()
        .await
        .unwrap();
    let (status, body) = error_json(response).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("value")));
    assert!(!body.to_string().contains("8675309123"), "{body}");
}

async fn framework_errors_carry_the_error_body(app: &TestApp) {
    let (status, body) = error_json(app.http().get(app.url("/api/sdk/nope")).send().await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")));
    // Outside the API too (`/` is the console's redirect).
    let (status, body) = error_json(app.http().get(app.url("/nope")).send().await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")));

    let response = app
        .http()
        .delete(app.url("/api/sdk/project"))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("allow"));
    let (status, body) = error_json(response).await;
    assert_eq!((status, body["code"].as_str()), (405, Some("method_not_allowed")));

    // Unknown ids are 404 NOT_FOUND with a message naming them.
    let err = api_err(
        app.client.get_prompt_template("missing-id").await,
        404,
        "NOT_FOUND",
    );
    assert!(err.message.contains("missing-id"), "{}", err.message);
}

async fn bad_json_is_400_naming_the_field_and_writes_nothing(app: &TestApp) {
    let post = |body: &'static str| {
        app.http()
            .post(app.url("/api/sdk/secret-vaults"))
            .header("X-API-Key", &app.key)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let (status, body) = error_json(post("{\"name\": ").await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));
    assert!(body["message"].as_str().unwrap().contains("not valid JSON"));

    let (status, body) = error_json(post("{\"name\": 42}").await.unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str(), body["field"].as_str()),
        (400, Some("bad_request"), Some("name"))
    );

    let (status, body) = error_json(post("{\"metadata\": {}}").await.unwrap()).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("name")));

    let (status, body) = error_json(post("{\"name\": \"v\", \"metadata\": [1]}").await.unwrap()).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("metadata")));

    let (status, body) = error_json(post("{\"name\": \"   \"}").await.unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str(), body["field"].as_str()),
        (400, Some("validation_failed"), Some("name"))
    );

    let (status, _) = error_json(post("[1, 2]").await.unwrap()).await;
    assert_eq!(status, 400);

    assert!(
        app.client.list_secret_vaults().await.unwrap().is_empty(),
        "nothing written"
    );
    let audit = app
        .client
        .list_audit_log(&AuditLogQuery::default())
        .await
        .unwrap();
    assert!(
        audit.entries.iter().all(|e| e.action != "secret_vault.create"),
        "no audit entry for a refused write"
    );
}

async fn oversized_bodies_are_413(app: &TestApp) {
    let value = "x".repeat(TEST_BODY_LIMIT + 1);
    let body = serde_json::json!({ "name": "big", "content": value }).to_string();
    let response = app
        .http()
        .post(app.url("/api/sdk/prompt-templates"))
        .header("X-API-Key", &app.key)
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, body) = error_json(response).await;
    assert_eq!((status, body["code"].as_str()), (413, Some("payload_too_large")));
    assert!(app.client.list_prompt_templates().await.unwrap().is_empty());
}

async fn bodies_are_read_tolerantly(app: &TestApp) {
    // An empty body reads as {}: a PATCH with nothing to change succeeds.
    let vault = app
        .client
        .create_secret_vault(&CreateSecretVault {
            name: "v".into(),
            metadata: serde_json::json!({"k": 1}).as_object().cloned(),
        })
        .await
        .unwrap();
    let response = app
        .http()
        .patch(app.url(&format!("/api/sdk/secret-vaults/{}", vault.id)))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["metadata"], serde_json::json!({"k": 1}));

    // But an empty body never clears the vault designation by accident.
    app.client.set_project_vault(Some(&vault.id)).await.unwrap();
    let response = app
        .http()
        .put(app.url("/api/sdk/project/vault"))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .unwrap();
    let (status, body) = error_json(response).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("vault_id")));
    assert_eq!(
        app.client.get_project().await.unwrap().vault_id.as_deref(),
        Some(vault.id.as_str())
    );

    // No Content-Type, unknown fields and Go's nulls are all accepted.
    let response = app
        .http()
        .post(app.url("/api/sdk/prompt-templates"))
        .header("X-API-Key", &app.key)
        .body(r#"{"name":"t","content":"Hi {{who}}","variables":null,"indexId":"x","run_eval_on_publish":false}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: serde_json::Value = response.json().await.unwrap();
    assert_eq!(created["variables"], serde_json::json!(["who"]));
}

async fn names_in_paths_are_decoded_after_routing(app: &TestApp) {
    let vault = app
        .client
        .create_secret_vault(&CreateSecretVault {
            name: "v".into(),
            metadata: None,
        })
        .await
        .unwrap();
    // `%2F` stays inside one segment: it routes, then fails name validation.
    let err = api_err(
        app.client.put_secret(&vault.id, "a/b", "x").await,
        400,
        "validation_failed",
    );
    assert!(err.message.contains("`a/b`"), "{}", err.message);
    // `+` in a path segment stays a plus, never a space.
    let response = app
        .http()
        .put(app.url(&format!("/api/sdk/secret-vaults/{}/secrets/a+b", vault.id)))
        .header("X-API-Key", &app.key)
        .body(r#"{"value":"x"}"#)
        .send()
        .await
        .unwrap();
    let (status, body) = error_json(response).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("`a+b`"), "{body}");
    // Encoded unreserved characters decode to the same name.
    let response = app
        .http()
        .put(app.url(&format!(
            "/api/sdk/secret-vaults/{}/secrets/openai%5Fapi%2Ekey",
            vault.id
        )))
        .header("X-API-Key", &app.key)
        .body(r#"{"value":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let names: Vec<String> = app
        .client
        .list_secrets(&vault.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["openai_api.key"]);
}

async fn cors_preflight_needs_no_key(app: &TestApp) {
    let response = app
        .http()
        .request(reqwest::Method::OPTIONS, app.url("/api/sdk/secret-vaults"))
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "PATCH")
        .header("Access-Control-Request-Headers", "x-api-key, content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("PATCH")
    );
    assert!(
        headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_lowercase()
            .contains("x-api-key")
    );
}

/// An in-flight request finishes when shutdown starts mid-body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_in_flight_requests_finish() {
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let request = app
        .http()
        .post(app.url("/api/sdk/secret-vaults"))
        .header("X-API-Key", &app.key)
        .header("Content-Type", "application/json")
        .body(body)
        .send();
    let in_flight = tokio::spawn(request);
    tx.send(Ok(br#"{"name":"#.to_vec())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let token = app.server.shutdown_token();
    token.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // New connections are refused once shutdown has begun.
    assert!(
        reqwest::Client::new()
            .get(app.url("/healthz"))
            .send()
            .await
            .is_err()
    );

    tx.send(Ok(br#""late-vault"}"#.to_vec())).await.unwrap();
    drop(tx);
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 201, "the in-flight request completed");
    let vault: serde_json::Value = response.json().await.unwrap();
    assert_eq!(vault["name"], "late-vault");
    app.server.wait().await.unwrap();
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
