//! CONTRACT §2.15: every change leaves an audit entry; list, filter, export.

use kiln_sdk::AuditExportFormat;
use kiln_sdk::api::{AuditLogQuery, CreatePromptTemplate, CreateSecretVault, UpdateSecretVault};

use crate::backends;
use crate::harness::{TestApp, api_err};

backends!(
    every_change_is_audited_with_its_actor,
    audit_filters_and_paging,
    audit_export_as_json_and_csv,
    audit_export_streams_every_row_across_pages,
);

async fn make_changes(app: &TestApp) -> String {
    let c = &app.client;
    let vault = c
        .create_secret_vault(&CreateSecretVault {
            name: "v".into(),
            metadata: None,
        })
        .await
        .unwrap();
    c.update_secret_vault(
        &vault.id,
        &UpdateSecretVault {
            metadata: serde_json::json!({"a": 1}).as_object().cloned(),
        },
    )
    .await
    .unwrap();
    c.put_secret(&vault.id, "token", "hunter2-secret-value")
        .await
        .unwrap();
    c.delete_secret(&vault.id, "token").await.unwrap();
    c.set_project_vault(Some(&vault.id)).await.unwrap();
    let template = c
        .create_prompt_template(&CreatePromptTemplate {
            name: "t".into(),
            content: "x".into(),
            variables: None,
        })
        .await
        .unwrap();
    c.delete_prompt_template(&template.id).await.unwrap();
    c.delete_secret_vault(&vault.id).await.unwrap();
    vault.id
}

async fn every_change_is_audited_with_its_actor(app: &TestApp) {
    let vault_id = make_changes(app).await;
    let page = app
        .client
        .list_audit_log(&AuditLogQuery::default())
        .await
        .unwrap();
    let actions: Vec<&str> = page.entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "secret_vault.delete",
            "prompt_template.delete",
            "prompt_template.create",
            "project.vault.set",
            "secret.delete",
            "secret.put",
            "secret_vault.update",
            "secret_vault.create",
            "api_key.create",
            "project.create",
        ],
        "newest first"
    );
    assert_eq!(page.total, 10);
    assert_eq!((page.limit, page.offset), (100, 0));

    let key_id = app.server.control.list_keys(None).await.unwrap()[0]
        .key
        .id
        .to_string();
    let project_id = app.client.get_project().await.unwrap().id;
    for entry in &page.entries[..8] {
        assert_eq!(
            entry.actor_api_key_id.as_deref(),
            Some(key_id.as_str()),
            "{entry:?}"
        );
        assert_eq!(entry.project_id, project_id);
        assert_eq!(entry.app_id, project_id);
        assert_eq!(entry.subject_type, entry.action.split('.').next().unwrap());
    }
    // Bootstrap entries were made by the operator, not a key.
    assert_eq!(page.entries[9].actor_api_key_id, None);
    let put = &page.entries[5];
    assert_eq!(put.subject_id, format!("{vault_id}/token"));
    assert_eq!(put.metadata["name"], "token");
    assert_eq!(page.entries[0].subject_id, vault_id);
    // No entry ever holds the secret's value.
    let raw = serde_json::to_string(&page).unwrap();
    assert!(!raw.contains("hunter2-secret-value"));
}

async fn audit_filters_and_paging(app: &TestApp) {
    make_changes(app).await;
    let c = &app.client;
    let q = |f: fn(&mut AuditLogQuery)| {
        let mut query = AuditLogQuery::default();
        f(&mut query);
        query
    };
    let secrets = c
        .list_audit_log(&q(|q| q.subject_type = Some("secret".into())))
        .await
        .unwrap();
    assert_eq!(secrets.total, 2);
    assert!(secrets.entries.iter().all(|e| e.subject_type == "secret"));
    let puts = c
        .list_audit_log(&q(|q| q.action = Some("secret.put".into())))
        .await
        .unwrap();
    assert_eq!(puts.entries.len(), 1);
    let nobody = c
        .list_audit_log(&q(|q| q.actor_user_id = Some("u1".into())))
        .await
        .unwrap();
    assert_eq!(nobody.total, 0);
    assert!(nobody.entries.is_empty());

    // Paging: limit/offset echo; total ignores them; clamped to 500.
    let page = c
        .list_audit_log(&q(|q| {
            q.limit = Some(3);
            q.offset = Some(2)
        }))
        .await
        .unwrap();
    assert_eq!(
        (page.entries.len(), page.total, page.limit, page.offset),
        (3, 10, 3, 2)
    );
    let all = c.list_audit_log(&AuditLogQuery::default()).await.unwrap();
    assert_eq!(page.entries, all.entries[2..5]);
    let clamped = c
        .list_audit_log(&q(|q| {
            q.limit = Some(100_000);
            q.offset = Some(-4)
        }))
        .await
        .unwrap();
    assert_eq!((clamped.limit, clamped.offset), (500, 0));

    // from inclusive, to exclusive, any offset and fractional seconds.
    let pivot = all.entries[4].created_at;
    let from = pivot.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let newer = c
        .list_audit_log(&AuditLogQuery {
            from: Some(from.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(newer.entries.iter().all(|e| e.created_at >= pivot));
    assert!(newer.entries.iter().any(|e| e.id == all.entries[4].id));
    let older = c
        .list_audit_log(&AuditLogQuery {
            to: Some(from),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(older.entries.iter().all(|e| e.created_at < pivot));
    assert_eq!(newer.total + older.total, 10);
    let offset_form = pivot
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .to_rfc3339();
    let same = c
        .list_audit_log(&AuditLogQuery {
            to: Some(offset_form),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(same.entries.iter().all(|e| e.created_at < pivot));

    // Bad query values are 400.
    api_err(
        c.list_audit_log(&AuditLogQuery {
            from: Some("yesterday".into()),
            ..Default::default()
        })
        .await,
        400,
        "validation_failed",
    );
    let response = app
        .http()
        .get(app.url("/api/sdk/audit-log?limit=abc"))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

async fn audit_export_as_json_and_csv(app: &TestApp) {
    make_changes(app).await;
    let c = &app.client;
    let json = c
        .export_audit_log(AuditExportFormat::Json, &AuditLogQuery::default())
        .await
        .unwrap();
    let entries: Vec<kiln_sdk::api::AuditEntry> = serde_json::from_slice(&json).unwrap();
    assert_eq!(entries.len(), 10);
    let listed = c.list_audit_log(&AuditLogQuery::default()).await.unwrap();
    assert_eq!(entries, listed.entries);

    let filtered = c
        .export_audit_log(
            AuditExportFormat::Json,
            &AuditLogQuery {
                subject_type: Some("secret_vault".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let filtered: Vec<serde_json::Value> = serde_json::from_slice(&filtered).unwrap();
    assert_eq!(filtered.len(), 3);

    let response = app
        .http()
        .get(app.url("/api/sdk/audit-log/export?format=csv"))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("audit-log.csv")
    );
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "id,project_id,actor_user_id,actor_api_key_id,action,subject_type,subject_id,agent_version_id,session_id,metadata,created_at"
    );
    assert_eq!(lines.len(), 11);
    // Metadata is a quoted JSON cell with doubled quotes.
    assert!(lines.iter().any(|l| l.contains(r#""{""name"":""v""}""#)), "{csv}");
    assert_eq!(
        csv,
        String::from_utf8(
            c.export_audit_log(AuditExportFormat::Csv, &AuditLogQuery::default())
                .await
                .unwrap()
        )
        .unwrap()
    );

    let bad = app
        .http()
        .get(app.url("/api/sdk/audit-log/export?format=xml"))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["field"], "format");
}

/// Exports stream keyset pages of 500 rows; every row arrives exactly once,
/// newest first, in both formats.
async fn audit_export_streams_every_row_across_pages(app: &TestApp) {
    let c = &app.client;
    for i in 0..260 {
        let t = c
            .create_prompt_template(&CreatePromptTemplate {
                name: format!("t{i}"),
                content: "x".into(),
                variables: None,
            })
            .await
            .unwrap();
        c.delete_prompt_template(&t.id).await.unwrap();
    }
    let total = c.list_audit_log(&AuditLogQuery::default()).await.unwrap().total;
    assert_eq!(total, 522);
    let json = c
        .export_audit_log(AuditExportFormat::Json, &AuditLogQuery::default())
        .await
        .unwrap();
    let entries: Vec<kiln_sdk::api::AuditEntry> = serde_json::from_slice(&json).unwrap();
    assert_eq!(entries.len(), 522);
    let ids: std::collections::HashSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 522, "no row twice");
    assert!(
        entries
            .windows(2)
            .all(|w| (w[0].created_at, &w[0].id) > (w[1].created_at, &w[1].id)),
        "newest first"
    );
    assert_eq!(entries.last().unwrap().action, "project.create");

    let csv = c
        .export_audit_log(AuditExportFormat::Csv, &AuditLogQuery::default())
        .await
        .unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(
        csv.split("\r\n").filter(|l| !l.is_empty()).count(),
        523,
        "header and one line per row"
    );

    let filtered = c
        .export_audit_log(
            AuditExportFormat::Json,
            &AuditLogQuery {
                action: Some("prompt_template.delete".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Vec<serde_json::Value>>(&filtered)
            .unwrap()
            .len(),
        260
    );
}
