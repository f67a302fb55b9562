//! Tenancy: another project's key sees none of this project's data and gets
//! 404 for every one of its ids, on every endpoint.

use kiln_sdk::AuditExportFormat;
use kiln_sdk::api::{
    AuditLogQuery, CreatePromptTemplate, CreateSecretVault, UpdatePromptTemplate, UpdateSecretVault,
};

use crate::backends;
use crate::harness::{Backend, TestApp, api_err};

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
    let metrics = other.get_metrics().await.unwrap();
    assert_eq!(
        (metrics.tokens, metrics.agents, metrics.evals),
        Default::default(),
        "none of the first project's counters"
    );
    assert_eq!(
        (metrics.sandbox.running_blocks, metrics.sandbox.paused_blocks),
        (0, 0)
    );

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

mod another_projects_key_cannot_touch_documents_or_sessions {
    use kiln_providers::fake::FakeProvider;

    use crate::harness::{Backend, TestApp};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::documents_and_sessions(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::documents_and_sessions(Backend::Postgres).await;
    }

    pub(super) async fn start(backend: Backend, fake: &FakeProvider) -> Option<TestApp> {
        TestApp::start_with(backend, crate::agents::fake_options(fake)).await
    }
}

/// Another project's key, holding the ids of a document and of a session
/// whose turn waits for input: every call that would read, answer, cancel,
/// follow or delete the session is 404, a document delete is the
/// contract's idempotent 204 that deletes nothing, and the owner's turn and
/// document go on.
async fn documents_and_sessions(backend: Backend) {
    use kiln_providers::fake::{FakeProvider, Reply};
    use serde_json::json;

    let fake = FakeProvider::start().await;
    let Some(app) = another_projects_key_cannot_touch_documents_or_sessions::start(backend, &fake).await
    else {
        return;
    };
    let owner = &app.client;
    let index = crate::documents::index(&app, "private").await;
    let doc = owner
        .upload_document_bytes(
            &index,
            "secret.md",
            b"# Secret\n\nOwner only.".to_vec(),
            &kiln_sdk::UploadOptions::default(),
        )
        .await
        .unwrap();
    owner
        .wait_for_document(&doc.id, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    fake.push(Reply::tool_call(
        "execute_js",
        json!({ "code": "await input('Owner only?')" }),
    ));
    fake.push(Reply::text("Answered."));
    let session = owner
        .create_session(&kiln_sdk::api::CreateSession::default())
        .await
        .unwrap()
        .id;
    let mut stream = owner.run_agent(&session, "Ask me").await.unwrap();
    let seen = crate::agents::read_until(&mut stream, |e| e.raw.kind == "input_request").await;
    let kiln_sdk::TurnEventKind::InputRequest(request) = &seen.last().unwrap().kind else {
        panic!("an input request")
    };

    let (_, other) = app.key_for("intruder").await;
    api_err(other.get_document(&doc.id).await, 404, "NOT_FOUND");
    // Document deletes are 204 for any id (CONTRACT: idempotent), and
    // touch nothing of another project's.
    other.delete_document(&doc.id, false).await.unwrap();
    other.delete_document(&doc.id, true).await.unwrap();
    other.delete_index_document(&index, &doc.id, true).await.unwrap();
    let untouched = owner.get_document(&doc.id).await.unwrap();
    assert_eq!((untouched.status.as_str(), untouched.deleted_at), ("ready", None));
    assert_eq!(
        owner
            .search(&kiln_sdk::api::SearchRequest {
                query: "owner only".into(),
                ..Default::default()
            })
            .await
            .unwrap()[0]
            .document_id,
        doc.id
    );
    api_err(other.get_session(&session).await, 404, "NOT_FOUND");
    api_err(other.cancel_session(&session).await, 404, "NOT_FOUND");
    api_err(
        other
            .respond_to_input(&session, &request.request_id, json!("intruder"))
            .await,
        404,
        "NOT_FOUND",
    );
    api_err(other.resume_events(&session, 0).await, 404, "NOT_FOUND");
    api_err(other.run_agent(&session, "hijack").await, 404, "NOT_FOUND");
    api_err(other.enqueue_message(&session, "later").await, 404, "NOT_FOUND");
    api_err(other.list_files(&session).await, 404, "NOT_FOUND");
    api_err(other.delete_session(&session).await, 404, "NOT_FOUND");

    // The owner's turn still waits, takes the owner's answer and ends; the
    // document is there.
    assert_eq!(
        owner.get_session(&session).await.unwrap().session.status,
        "awaiting_input"
    );
    owner
        .respond_to_input(&session, &request.request_id, json!("owner"))
        .await
        .unwrap();
    let rest = crate::agents::read_until(&mut stream, kiln_sdk::TurnEvent::is_terminal).await;
    assert_eq!(rest.last().unwrap().raw.kind, "done");
    assert_eq!(owner.get_document(&doc.id).await.unwrap().status, "ready");
    app.stop().await;
}
