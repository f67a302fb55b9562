//! CONTRACT §2.1: project, app alias, metrics, vault designation.

use kiln_sdk::api::CreateSecretVault;

use crate::backends;
use crate::harness::{TestApp, api_err};

backends!(
    project_and_app_alias_describe_the_keys_project,
    metrics_report_every_counter,
    vault_designation_round_trips
);

async fn project_and_app_alias_describe_the_keys_project(app: &TestApp) {
    let project = app.client.get_project().await.unwrap();
    assert_eq!(project.name, "default");
    assert_eq!(project.slug, "default");
    assert_eq!(project.description, "");
    assert_eq!(project.vault_id, None);
    assert_eq!(app.client.get_app().await.unwrap(), project);

    let (_, acme) = app.key_for("Acme Corp").await;
    let acme_project = acme.get_project().await.unwrap();
    assert_eq!(acme_project.name, "Acme Corp");
    assert_eq!(acme_project.slug, "acme-corp");
    assert_ne!(acme_project.id, project.id);

    // Raw shape: JSON content type, RFC 3339 UTC timestamps, explicit nulls.
    let response = app
        .http()
        .get(app.url("/api/sdk/project"))
        .header("X-API-Key", &app.key)
        .header("Content-Type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let raw: serde_json::Value = response.json().await.unwrap();
    assert!(raw["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(raw.get("vault_id").unwrap().is_null());
    assert_eq!(raw["team_id"], "default");
}

async fn metrics_report_every_counter(app: &TestApp) {
    let raw: serde_json::Value = app
        .http()
        .get(app.url("/api/sdk/metrics"))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (group, keys) in [
        (
            "tokens",
            &[
                "prompt_tokens",
                "candidate_tokens",
                "total_tokens",
                "request_count",
            ][..],
        ),
        (
            "agents",
            &[
                "total_sessions",
                "active_sessions",
                "completed_sessions",
                "error_sessions",
                "total_steps",
            ],
        ),
        (
            "evals",
            &["total_runs", "completed_runs", "total_passed", "total_failed"],
        ),
    ] {
        for key in keys {
            assert_eq!(raw[group][key].as_i64(), Some(0), "{group}.{key} in {raw}");
        }
    }
    assert_eq!(raw["evals"]["average_score"].as_f64(), Some(0.0));
    // The sandbox's use now, and the project's shares of the server's caps
    // (three quarters of its 16 slots, half of its 20,000 paused places).
    let sandbox = &raw["sandbox"];
    for key in ["running_blocks", "waiting_blocks", "paused_blocks"] {
        assert_eq!(sandbox[key].as_i64(), Some(0), "sandbox.{key} in {raw}");
    }
    assert_eq!(sandbox["running_blocks_limit"].as_i64(), Some(12), "{raw}");
    assert_eq!(sandbox["paused_blocks_limit"].as_i64(), Some(10_000), "{raw}");
    let mut metrics = app.client.get_metrics().await.unwrap();
    metrics.sandbox = Default::default();
    assert_eq!(metrics, Default::default());
}

async fn vault_designation_round_trips(app: &TestApp) {
    let vault = app
        .client
        .create_secret_vault(&CreateSecretVault {
            name: "llm".into(),
            metadata: None,
        })
        .await
        .unwrap();
    let set = app.client.set_project_vault(Some(&vault.id)).await.unwrap();
    assert_eq!(set.vault_id.as_deref(), Some(vault.id.as_str()));
    assert_eq!(
        app.client.get_project().await.unwrap().vault_id.as_deref(),
        Some(vault.id.as_str())
    );

    // The alias clears it; "" clears too.
    assert_eq!(app.client.set_app_vault(None).await.unwrap().vault_id, None);
    assert_eq!(app.client.get_project().await.unwrap().vault_id, None);
    app.client.set_project_vault(Some(&vault.id)).await.unwrap();
    assert_eq!(
        app.client.set_project_vault(Some("")).await.unwrap().vault_id,
        None
    );

    // An unknown vault is 404 and changes nothing.
    app.client.set_project_vault(Some(&vault.id)).await.unwrap();
    api_err(
        app.client.set_project_vault(Some("no-such-vault")).await,
        404,
        "NOT_FOUND",
    );
    assert_eq!(
        app.client.get_project().await.unwrap().vault_id.as_deref(),
        Some(vault.id.as_str())
    );

    // Deleting the designated vault clears the designation.
    app.client.delete_secret_vault(&vault.id).await.unwrap();
    assert_eq!(app.client.get_project().await.unwrap().vault_id, None);
}
