//! CONTRACT §2.2: indexes, their wrappers and field semantics.

use kiln_sdk::api::{CreateIndex, UpdateIndex};
use serde_json::json;

use crate::backends;
use crate::harness::{TestApp, api_err};

backends!(index_lifecycle, index_wrappers_on_the_wire);

fn meta(value: serde_json::Value) -> Option<serde_json::Map<String, serde_json::Value>> {
    value.as_object().cloned()
}

async fn index_lifecycle(app: &TestApp) {
    let c = &app.client;
    assert!(c.list_indexes().await.unwrap().is_empty());
    let docs = c
        .create_index(&CreateIndex {
            name: "support-docs".into(),
            description: Some("Help center".into()),
            metadata: meta(json!({"owner": "support", "nested": {"a": [1, 2]}})),
        })
        .await
        .unwrap();
    assert_eq!(docs.description, "Help center");
    assert_eq!(
        docs.metadata,
        meta(json!({"owner": "support", "nested": {"a": [1, 2]}})).unwrap()
    );
    assert_eq!(docs.project_id, docs.app_id);
    let bare = c
        .create_index(&CreateIndex {
            name: "bare".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((bare.description.as_str(), bare.metadata.is_empty()), ("", true));

    api_err(
        c.create_index(&CreateIndex {
            name: "support-docs".into(),
            ..Default::default()
        })
        .await,
        409,
        "conflict",
    );
    api_err(
        c.create_index(&CreateIndex {
            name: " ".into(),
            ..Default::default()
        })
        .await,
        400,
        "validation_failed",
    );

    let names: Vec<String> = c
        .list_indexes()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["bare", "support-docs"]);
    assert_eq!(c.get_index(&docs.id).await.unwrap(), docs);

    // Go sends `name: ""`: the name stays; metadata left out stays too.
    let same = c
        .update_index(
            &docs.id,
            &UpdateIndex {
                name: Some(String::new()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (same.name.as_str(), same.description.as_str()),
        ("support-docs", "Help center")
    );
    assert_eq!(same.metadata, docs.metadata);
    let renamed = c
        .update_index(
            &docs.id,
            &UpdateIndex {
                name: Some("kb".into()),
                description: Some(String::new()),
                metadata: meta(json!({})),
            },
        )
        .await
        .unwrap();
    assert_eq!((renamed.name.as_str(), renamed.description.as_str()), ("kb", ""));
    assert!(renamed.metadata.is_empty(), "{{}} clears metadata");
    api_err(
        c.update_index(
            &docs.id,
            &UpdateIndex {
                name: Some("bare".into()),
                ..Default::default()
            },
        )
        .await,
        409,
        "conflict",
    );
    assert_eq!(c.get_index(&docs.id).await.unwrap().name, "kb");

    // Chat with an index: a known (empty) index answers; an unknown one is 404.
    let mut input = kiln_sdk::api::ChatCompletionInput {
        messages: vec![kiln_sdk::api::ChatMessage {
            role: "user".into(),
            content: "q".into(),
        }],
        use_rag: Some(true),
        index_id: Some(docs.id.clone()),
        model: None,
    };
    c.chat_completion(&input)
        .await
        .expect("an empty index gives no passages");

    c.delete_index(&docs.id).await.unwrap();
    api_err(c.get_index(&docs.id).await, 404, "NOT_FOUND");
    api_err(c.delete_index(&docs.id).await, 404, "NOT_FOUND");
    api_err(
        c.update_index(&docs.id, &UpdateIndex::default()).await,
        404,
        "NOT_FOUND",
    );
    input.use_rag = None;
    api_err(c.chat_completion(&input).await, 404, "NOT_FOUND");

    // Another project sees none of it; names are per project.
    let (_, other) = app.key_for("other").await;
    assert!(other.list_indexes().await.unwrap().is_empty());
    api_err(other.get_index(&bare.id).await, 404, "NOT_FOUND");
    api_err(
        other.update_index(&bare.id, &UpdateIndex::default()).await,
        404,
        "NOT_FOUND",
    );
    api_err(other.delete_index(&bare.id).await, 404, "NOT_FOUND");
    other
        .create_index(&CreateIndex {
            name: "bare".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let actions: Vec<String> = c
        .list_audit_log(&kiln_sdk::api::AuditLogQuery {
            subject_type: Some("index".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "index.delete",
            "index.update",
            "index.update",
            "index.create",
            "index.create"
        ]
    );
}

async fn index_wrappers_on_the_wire(app: &TestApp) {
    let get = |path: String| {
        let request = app.http().get(app.url(&path)).header("X-API-Key", &app.key);
        async move {
            request
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let response = app
        .http()
        .post(app.url("/api/sdk/indexes"))
        .header("X-API-Key", &app.key)
        .body(r#"{"name":"wire"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: serde_json::Value = response.json().await.unwrap();
    assert_eq!(created["name"], "wire", "create answers the bare index");
    assert_eq!(created["metadata"], json!({}));
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        get(format!("/api/sdk/indexes/{id}")).await["index"]["id"],
        id.as_str(),
        "GET is wrapped"
    );
    assert_eq!(
        get("/api/sdk/indexes".into()).await["indexes"][0]["id"],
        id.as_str()
    );
}
