//! CONTRACT §2.5: vaults and secrets, encrypted, never returned.

use kiln_core::ids::{ProjectId, VaultId};
use kiln_sdk::api::{CreateSecretVault, UpdateSecretVault};
use serde_json::json;

use crate::backends;
use crate::harness::{Backend, TestApp, TestOptions, api_err};

backends!(
    vault_lifecycle,
    secrets_are_upserted_redacted_and_idempotently_deleted,
    deleting_a_vault_takes_its_secrets
);

fn meta(value: serde_json::Value) -> Option<serde_json::Map<String, serde_json::Value>> {
    value.as_object().cloned()
}

async fn vault_lifecycle(app: &TestApp) {
    let c = &app.client;
    assert!(c.list_secret_vaults().await.unwrap().is_empty());
    let vault = c
        .create_secret_vault(&CreateSecretVault {
            name: "prod".into(),
            metadata: meta(json!({"team": "ml", "n": 1})),
        })
        .await
        .unwrap();
    assert_eq!(vault.project_id, vault.app_id);
    assert_eq!(vault.project_id, c.get_project().await.unwrap().id);
    assert_eq!(vault.metadata, meta(json!({"team": "ml", "n": 1})).unwrap());

    // Raw status and shape: 201, bare entity; metadata defaults to {}.
    let response = app
        .http()
        .post(app.url("/api/sdk/secret-vaults"))
        .header("X-API-Key", &app.key)
        .body(r#"{"name":"staging"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let staging: serde_json::Value = response.json().await.unwrap();
    assert_eq!(staging["metadata"], json!({}));

    api_err(
        c.create_secret_vault(&CreateSecretVault {
            name: "prod".into(),
            metadata: None,
        })
        .await,
        409,
        "conflict",
    );

    let listed: Vec<String> = c
        .list_secret_vaults()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(listed, ["prod", "staging"]);
    assert_eq!(c.get_secret_vault(&vault.id).await.unwrap(), vault);

    // PATCH without metadata keeps it; with metadata replaces it.
    let same = c
        .update_secret_vault(&vault.id, &UpdateSecretVault { metadata: None })
        .await
        .unwrap();
    assert_eq!(same.metadata, vault.metadata);
    let changed = c
        .update_secret_vault(
            &vault.id,
            &UpdateSecretVault {
                metadata: meta(json!({"team": "infra"})),
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.metadata, meta(json!({"team": "infra"})).unwrap());
    assert_eq!(changed.name, "prod");
    assert!(changed.updated_at >= vault.updated_at);

    c.delete_secret_vault(&vault.id).await.unwrap();
    api_err(c.get_secret_vault(&vault.id).await, 404, "NOT_FOUND");
    api_err(c.delete_secret_vault(&vault.id).await, 404, "NOT_FOUND");
    api_err(
        c.update_secret_vault(&vault.id, &UpdateSecretVault { metadata: None })
            .await,
        404,
        "NOT_FOUND",
    );
}

async fn secrets_are_upserted_redacted_and_idempotently_deleted(app: &TestApp) {
    let c = &app.client;
    let vault = c
        .create_secret_vault(&CreateSecretVault {
            name: "keys".into(),
            metadata: None,
        })
        .await
        .unwrap();
    let value = "sk-test-51Hx-unique-plaintext";
    let first = c.put_secret(&vault.id, "openai_api_key", value).await.unwrap();
    assert_eq!(first.vault_id, vault.id);
    assert_eq!(first.name, "openai_api_key");
    assert!(first.kek_id.starts_with("kek_"));

    // The raw response holds no value and no ciphertext.
    let raw = app
        .http()
        .get(app.url(&format!("/api/sdk/secret-vaults/{}/secrets", vault.id)))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!raw.contains(value));
    let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let mut keys: Vec<&String> = raw["secrets"][0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["created_at", "kek_id", "name", "updated_at", "vault_id"]);

    // Upsert keeps created_at, moves updated_at, and re-encrypts.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = c
        .put_secret(&vault.id, "openai_api_key", "sk-rotated")
        .await
        .unwrap();
    assert_eq!(second.created_at, first.created_at);
    assert!(second.updated_at > first.updated_at);
    assert_eq!(c.list_secrets(&vault.id).await.unwrap().len(), 1);

    // The server can still open it (for provider keys), and only in its project.
    let project = ProjectId::from_string(vault.project_id.clone());
    let vault_id = VaultId::from_string(vault.id.clone());
    let revealed = app
        .server
        .control
        .reveal_secret(&project, &vault_id, "openai_api_key")
        .await
        .unwrap();
    assert_eq!(revealed.as_deref(), Some("sk-rotated"));
    let elsewhere = ProjectId::from_string("another-project");
    assert_eq!(
        app.server
            .control
            .reveal_secret(&elsewhere, &vault_id, "openai_api_key")
            .await
            .unwrap(),
        None
    );

    // Bad input.
    api_err(
        c.put_secret(&vault.id, "bad name", "v").await,
        400,
        "validation_failed",
    );
    api_err(
        c.put_secret(&vault.id, "empty", "").await,
        400,
        "validation_failed",
    );
    api_err(
        c.put_secret(&vault.id, "huge", &"v".repeat(64 * 1024 + 1)).await,
        400,
        "validation_failed",
    );
    let missing_value = app
        .http()
        .put(app.url(&format!("/api/sdk/secret-vaults/{}/secrets/x", vault.id)))
        .header("X-API-Key", &app.key)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(missing_value.status(), 400);
    api_err(c.put_secret("no-such-vault", "k", "v").await, 404, "NOT_FOUND");
    api_err(c.list_secrets("no-such-vault").await, 404, "NOT_FOUND");

    // Delete is idempotent; an unknown vault is still 404.
    c.delete_secret(&vault.id, "openai_api_key").await.unwrap();
    c.delete_secret(&vault.id, "openai_api_key").await.unwrap();
    c.delete_secret(&vault.id, "never_existed").await.unwrap();
    assert!(c.list_secrets(&vault.id).await.unwrap().is_empty());
    api_err(c.delete_secret("no-such-vault", "k").await, 404, "NOT_FOUND");
}

async fn deleting_a_vault_takes_its_secrets(app: &TestApp) {
    let c = &app.client;
    let vault = c
        .create_secret_vault(&CreateSecretVault {
            name: "temp".into(),
            metadata: None,
        })
        .await
        .unwrap();
    c.put_secret(&vault.id, "a", "1").await.unwrap();
    c.put_secret(&vault.id, "b", "2").await.unwrap();
    c.delete_secret_vault(&vault.id).await.unwrap();
    let again = c
        .create_secret_vault(&CreateSecretVault {
            name: "temp".into(),
            metadata: None,
        })
        .await
        .unwrap();
    assert_ne!(again.id, vault.id);
    assert!(c.list_secrets(&again.id).await.unwrap().is_empty());
    let project = ProjectId::from_string(vault.project_id.clone());
    let old = VaultId::from_string(vault.id.clone());
    assert_eq!(
        app.server
            .control
            .reveal_secret(&project, &old, "a")
            .await
            .unwrap(),
        None
    );
}

/// Without a key-encryption key every vault endpoint answers 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vaults_answer_503_without_a_kek() {
    let app = TestApp::start_with(
        Backend::Sqlite,
        TestOptions {
            with_kek: false,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let c = &app.client;
    api_err(c.list_secret_vaults().await, 503, "secrets_disabled");
    api_err(
        c.create_secret_vault(&CreateSecretVault {
            name: "v".into(),
            metadata: None,
        })
        .await,
        503,
        "secrets_disabled",
    );
    api_err(c.get_secret_vault("x").await, 503, "secrets_disabled");
    api_err(c.put_secret("x", "k", "v").await, 503, "secrets_disabled");
    api_err(c.list_secrets("x").await, 503, "secrets_disabled");
    api_err(c.delete_secret("x", "k").await, 503, "secrets_disabled");
    api_err(c.delete_secret_vault("x").await, 503, "secrets_disabled");
    // The rest of the API works.
    c.get_project().await.unwrap();
    app.stop().await;
}
