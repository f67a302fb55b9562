//! Tenancy: another project's key sees none of this project's data and gets
//! 404 for every one of its ids, on every endpoint.

use kiln_sdk::AuditExportFormat;
use kiln_sdk::api::{
    AuditLogQuery, CreatePromptTemplate, CreateSecretVault, UpdatePromptTemplate, UpdateSecretVault,
};

use crate::backends;
use crate::harness::{TestApp, api_err};

backends!(another_projects_key_sees_nothing);

async fn another_projects_key_sees_nothing(app: &TestApp) {
    let owner = &app.client;
    let vault = owner
        .create_secret_vault(&CreateSecretVault {
            name: "private".into(),
            metadata: None,
        })
        .await
        .unwrap();
    owner
        .put_secret(&vault.id, "openai_api_key", "sk-owner-only")
        .await
        .unwrap();
    owner.set_project_vault(Some(&vault.id)).await.unwrap();
    let template = owner
        .create_prompt_template(&CreatePromptTemplate {
            name: "private".into(),
            content: "x".into(),
            variables: None,
        })
        .await
        .unwrap();

    let (_, other) = app.key_for("intruder").await;
    let other_project = other.get_project().await.unwrap();
    assert_eq!(other_project.vault_id, None);
    assert_ne!(other_project.id, vault.project_id);

    // Lists are empty.
    assert!(other.list_secret_vaults().await.unwrap().is_empty());
    assert!(other.list_prompt_templates().await.unwrap().is_empty());
    let audit = other.list_audit_log(&AuditLogQuery::default()).await.unwrap();
    assert!(audit.entries.iter().all(|e| e.project_id == other_project.id));
    let export = other
        .export_audit_log(AuditExportFormat::Json, &AuditLogQuery::default())
        .await
        .unwrap();
    assert!(!String::from_utf8(export).unwrap().contains(&vault.project_id));
    assert_eq!(other.get_metrics().await.unwrap(), Default::default());

    // Every id-taking endpoint answers 404 NOT_FOUND.
    api_err(other.get_secret_vault(&vault.id).await, 404, "NOT_FOUND");
    api_err(
        other
            .update_secret_vault(&vault.id, &UpdateSecretVault::default())
            .await,
        404,
        "NOT_FOUND",
    );
    api_err(other.delete_secret_vault(&vault.id).await, 404, "NOT_FOUND");
    api_err(other.list_secrets(&vault.id).await, 404, "NOT_FOUND");
    api_err(
        other.put_secret(&vault.id, "openai_api_key", "overwrite").await,
        404,
        "NOT_FOUND",
    );
    api_err(
        other.delete_secret(&vault.id, "openai_api_key").await,
        404,
        "NOT_FOUND",
    );
    api_err(other.set_project_vault(Some(&vault.id)).await, 404, "NOT_FOUND");
    api_err(other.set_app_vault(Some(&vault.id)).await, 404, "NOT_FOUND");
    api_err(other.get_prompt_template(&template.id).await, 404, "NOT_FOUND");
    api_err(
        other
            .update_prompt_template(&template.id, &UpdatePromptTemplate::default())
            .await,
        404,
        "NOT_FOUND",
    );
    api_err(other.delete_prompt_template(&template.id).await, 404, "NOT_FOUND");

    // The owner's data is untouched, and names are per project.
    assert_eq!(owner.list_secrets(&vault.id).await.unwrap().len(), 1);
    assert_eq!(
        owner.get_project().await.unwrap().vault_id.as_deref(),
        Some(vault.id.as_str())
    );
    assert_eq!(
        owner.get_prompt_template(&template.id).await.unwrap().name,
        "private"
    );
    other
        .create_secret_vault(&CreateSecretVault {
            name: "private".into(),
            metadata: None,
        })
        .await
        .unwrap();
    other
        .create_prompt_template(&CreatePromptTemplate {
            name: "private".into(),
            content: "y".into(),
            variables: None,
        })
        .await
        .unwrap();
}
