//! CONTRACT §2.3: uploads, versioning by name, provenance, list filters,
//! soft and hard delete, limits, on both route families.

use std::time::Duration;

use kiln_sdk::api::{CreateIndex, Document};
use kiln_sdk::{DocumentQuery, UploadOptions};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::backends;
use crate::harness::{TEST_UPLOAD_LIMIT, TestApp, api_err};

backends!(
    upload_and_versions,
    upload_bad_input_writes_nothing,
    list_filters,
    delete_soft_and_hard,
);

pub fn meta(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

pub async fn index(app: &TestApp, name: &str) -> String {
    app.client
        .create_index(&CreateIndex {
            name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .id
}

fn named(name: &str) -> UploadOptions {
    UploadOptions {
        name: Some(name.into()),
        ..Default::default()
    }
}

async fn upload_and_versions(app: &TestApp) {
    let c = &app.client;
    let idx = index(app, "docs").await;
    let body = b"# Guide\n\nReset your password from Settings.".to_vec();
    let v1 = c
        .upload_document_bytes(
            &idx,
            "guide.md",
            body.clone(),
            &UploadOptions {
                name: Some("docs/guide.md".into()),
                metadata: Some(meta(json!({"source": "claude-code", "task": "refactor"}))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v1.status, "pending");
    assert_eq!(
        v1.content_type, "text/markdown",
        "from the extension, not the part type"
    );
    assert_eq!(v1.file_size, body.len() as i64);
    assert_eq!(
        v1.content_sha256.as_deref(),
        Some(hex(&Sha256::digest(&body)).as_str())
    );
    assert_eq!((v1.version, v1.is_latest, v1.chunk_count), (1, true, 0));
    assert_eq!(
        v1.metadata,
        meta(json!({"source": "claude-code", "task": "refactor"}))
    );
    assert_eq!(v1.index_id, idx);
    assert!(v1.created_by_api_key_id.is_some());
    assert_eq!((v1.parent_id.as_deref(), v1.deleted_at), (None, None));

    let v2 = c
        .upload_document_bytes(&idx, "guide.md", b"# Guide v2".to_vec(), &named("docs/guide.md"))
        .await
        .unwrap();
    assert_eq!((v2.version, v2.is_latest), (2, true));
    let old = c.get_document(&v1.id).await.unwrap();
    assert!(!old.is_latest, "the previous version is no longer latest");

    // By name (the name holds a slash: one percent-encoded segment).
    let latest = c.get_document_by_name(&idx, "docs/guide.md", None).await.unwrap();
    assert_eq!(latest.id, v2.id);
    let pinned = c
        .get_document_by_name(&idx, "docs/guide.md", Some(1))
        .await
        .unwrap();
    assert_eq!(pinned.id, v1.id);
    let zero = c
        .get_document_by_name(&idx, "docs/guide.md", Some(0))
        .await
        .unwrap();
    assert_eq!(zero.id, v2.id, "version ≤ 0 means latest");
    api_err(
        c.get_document_by_name(&idx, "docs/guide.md", Some(9)).await,
        404,
        "NOT_FOUND",
    );
    api_err(
        c.get_document_by_name(&idx, "nope.md", None).await,
        404,
        "NOT_FOUND",
    );
    let bad_version = app
        .http()
        .get(app.url(&format!("/api/sdk/indexes/{idx}/documents/by-name/x?version=abc")))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_version.status(), 400);

    // if_version: a mismatch is 409 with the current version, nothing written.
    let conflict = api_err(
        c.upload_document_bytes(
            &idx,
            "guide.md",
            b"stale".to_vec(),
            &UploadOptions {
                name: Some("docs/guide.md".into()),
                if_version: Some(1),
                ..Default::default()
            },
        )
        .await,
        409,
        "version_conflict",
    );
    assert_eq!(conflict.details.get("current_version"), Some(&json!(2)));
    let versions = c.list_document_versions(&idx, "docs/guide.md").await.unwrap();
    assert_eq!(versions.iter().map(|d| d.version).collect::<Vec<_>>(), vec![2, 1]);
    let v3 = c
        .upload_document_bytes(
            &idx,
            "guide.md",
            b"fresh".to_vec(),
            &UploadOptions {
                name: Some("docs/guide.md".into()),
                if_version: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    // if_version=0 means "no live version yet".
    let first = c
        .upload_document_bytes(
            &idx,
            "new.md",
            b"new".to_vec(),
            &UploadOptions {
                name: Some("new.md".into()),
                if_version: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.version, 1);

    // Without a name: unrelated rows, each version 1.
    let a = c
        .upload_document_bytes(&idx, "a.txt", b"x".to_vec(), &UploadOptions::default())
        .await
        .unwrap();
    let b = c
        .upload_document_bytes(&idx, "a.txt", b"x".to_vec(), &UploadOptions::default())
        .await
        .unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(
        (a.version, b.version, a.is_latest, b.is_latest),
        (1, 1, true, true)
    );
    assert_eq!(a.content_type, "text/plain");
    assert_eq!(a.name, None);

    // Provenance, and the index-level alias with its index check.
    let child = c
        .upload_document_bytes(
            &idx,
            "notes.json",
            b"{}".to_vec(),
            &UploadOptions {
                parent_id: Some(v3.id.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(child.parent_id.as_deref(), Some(v3.id.as_str()));
    assert_eq!(child.status, "stored", "JSON is stored, never indexed");
    assert_eq!(child.content_type, "application/json");
    assert_eq!(c.get_index_document(&idx, &child.id).await.unwrap().id, child.id);
    let other = index(app, "other").await;
    api_err(c.get_index_document(&other, &child.id).await, 404, "NOT_FOUND");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn total(app: &TestApp) -> i64 {
    app.client
        .list_documents(&DocumentQuery {
            include_deleted: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .total
}

/// Sends a raw multipart form (what the SDK would never send).
async fn raw_upload(app: &TestApp, index_id: &str, form: reqwest::multipart::Form) -> (u16, Value) {
    let response = app
        .http()
        .post(app.url(&format!("/api/sdk/indexes/{index_id}/documents")))
        .header("X-API-Key", &app.key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn file_part(bytes: &[u8]) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("f.md")
}

async fn upload_bad_input_writes_nothing(app: &TestApp) {
    let c = &app.client;
    let idx = index(app, "docs").await;
    let form = || reqwest::multipart::Form::new().part("file", file_part(b"# hi"));

    let (status, body) = raw_upload(app, &idx, form().text("metadata", "{not json")).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("metadata")));
    let (status, _) = raw_upload(app, &idx, form().text("metadata", "[1, 2]")).await;
    assert_eq!(status, 400, "metadata must be an object");
    let (status, body) = raw_upload(app, &idx, form().text("if_version", "two").text("name", "n")).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("if_version")));
    let (status, body) = raw_upload(app, &idx, form().text("if_version", "1")).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("if_version")),
        "if_version needs a name"
    );
    let (status, body) = raw_upload(app, &idx, reqwest::multipart::Form::new().text("name", "n")).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("file")));
    let (status, _) = raw_upload(app, &idx, form().text("index_id", "someone-else")).await;
    assert_eq!(status, 400, "index_id in the form must match the path");
    let (status, body) = raw_upload(app, &idx, form().text("parent_id", "missing")).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("parent_id")));
    let (status, body) = raw_upload(app, "no-such-index", form()).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")));
    let not_multipart = app
        .http()
        .post(app.url(&format!("/api/sdk/indexes/{idx}/documents")))
        .header("X-API-Key", &app.key)
        .json(&json!({"file": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(not_multipart.status(), 400);

    // Over the upload limit: 413 with the contract's body.
    let big = vec![b'a'; TEST_UPLOAD_LIMIT as usize + 1];
    let err = api_err(
        c.upload_document_bytes(&idx, "big.txt", big, &UploadOptions::default())
            .await,
        413,
        "payload_too_large",
    );
    assert!(err.message.contains("limit"), "{}", err.message);
    let exact = vec![b'a'; TEST_UPLOAD_LIMIT as usize];
    c.upload_document_bytes(&idx, "exact.txt", exact, &UploadOptions::default())
        .await
        .expect("a file of exactly the limit is accepted");

    // Another project's index is unknown here.
    let (_, stranger) = app.key_for("stranger").await;
    api_err(
        stranger
            .upload_document_bytes(&idx, "x.md", b"x".to_vec(), &UploadOptions::default())
            .await,
        404,
        "NOT_FOUND",
    );
    assert_eq!(total(app).await, 1, "only the accepted upload was written");
}

async fn upload(app: &TestApp, idx: &str, filename: &str, body: &[u8], metadata: Value) -> Document {
    app.client
        .upload_document_bytes(
            idx,
            filename,
            body.to_vec(),
            &UploadOptions {
                metadata: Some(meta(metadata)),
                ..Default::default()
            },
        )
        .await
        .unwrap()
}

async fn list_filters(app: &TestApp) {
    let c = &app.client;
    let idx = index(app, "docs").await;
    let other = index(app, "other").await;
    let a = upload(
        app,
        &idx,
        "Alpha-Report.md",
        b"same bytes",
        json!({"source": "cli", "team": "red"}),
    )
    .await;
    let b = upload(
        app,
        &idx,
        "beta_notes.txt",
        b"same bytes",
        json!({"source": "web", "team": "red"}),
    )
    .await;
    let c3 = upload(
        app,
        &other,
        "gamma.md",
        b"other bytes",
        json!({"source": "cli", "team": "blue"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;

    let ids = |list: kiln_sdk::api::DocumentList| list.data.into_iter().map(|d| d.id).collect::<Vec<_>>();
    let q = |f: fn(&mut DocumentQuery)| {
        let mut query = DocumentQuery::default();
        f(&mut query);
        query
    };
    // Newest first across the project.
    assert_eq!(
        ids(c.list_documents(&DocumentQuery::default()).await.unwrap()),
        vec![c3.id.clone(), b.id.clone(), a.id.clone()]
    );
    assert_eq!(
        ids(c
            .list_index_documents(&idx, &DocumentQuery::default())
            .await
            .unwrap()),
        vec![b.id.clone(), a.id.clone()]
    );
    // q: case-insensitive filename substring; `_` and `%` are literal.
    assert_eq!(
        ids(c
            .list_documents(&q(|q| q.q = Some("alpha".into())))
            .await
            .unwrap()),
        vec![a.id.clone()]
    );
    assert_eq!(
        ids(c.list_documents(&q(|q| q.q = Some("_".into()))).await.unwrap()),
        vec![b.id.clone()]
    );
    assert!(
        c.list_documents(&q(|q| q.q = Some("%".into())))
            .await
            .unwrap()
            .data
            .is_empty()
    );
    // source and metadata.<key>, combined with AND.
    assert_eq!(
        ids(c
            .list_documents(&q(|q| q.source = Some("cli".into())))
            .await
            .unwrap()),
        vec![c3.id.clone(), a.id.clone()]
    );
    let red_cli = q(|q| {
        q.source = Some("cli".into());
        q.metadata = vec![("team".into(), "red".into())];
    });
    assert_eq!(ids(c.list_documents(&red_cli).await.unwrap()), vec![a.id.clone()]);
    // Hashes and duplicates.
    let sha = a.content_sha256.clone().unwrap();
    assert_eq!(
        ids(c
            .list_documents(&q(|q| q.content_sha256 = Some("x".into())))
            .await
            .unwrap()),
        Vec::<String>::new()
    );
    let by_sha = DocumentQuery {
        content_sha256: Some(sha),
        ..Default::default()
    };
    assert_eq!(
        ids(c.list_documents(&by_sha).await.unwrap()),
        vec![b.id.clone(), a.id.clone()]
    );
    let mut dup = DocumentQuery {
        duplicate_of: Some(a.id.clone()),
        ..Default::default()
    };
    assert_eq!(
        ids(c.list_documents(&dup).await.unwrap()),
        vec![b.id.clone()],
        "the original is left out"
    );
    dup.duplicate_of = Some("missing".into());
    api_err(c.list_documents(&dup).await, 404, "NOT_FOUND");
    // Paging: total counts every match, has_more says whether more follow.
    let page = c
        .list_documents(&q(|q| {
            q.limit = Some(2);
        }))
        .await
        .unwrap();
    assert_eq!((page.data.len(), page.total, page.has_more), (2, 3, true));
    let rest = c
        .list_documents(&q(|q| {
            q.limit = Some(2);
            q.offset = Some(2);
        }))
        .await
        .unwrap();
    assert_eq!(
        (ids(rest.clone()), rest.total, rest.has_more),
        (vec![a.id.clone()], 3, false)
    );
    // Unknown index on the index route: 404.
    api_err(
        c.list_index_documents("nope", &DocumentQuery::default()).await,
        404,
        "NOT_FOUND",
    );
    // A raw `metadata.<key>` query works the same way.
    let raw: Value = app
        .http()
        .get(app.url("/api/sdk/documents?metadata.team=blue&limit=50&offset=0"))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["total"], 1);
    assert_eq!(raw["data"][0]["id"], json!(c3.id));
    // Another project sees none of it.
    let (_, stranger) = app.key_for("stranger").await;
    assert_eq!(
        stranger
            .list_documents(&DocumentQuery::default())
            .await
            .unwrap()
            .total,
        0
    );
    api_err(stranger.get_document(&a.id).await, 404, "NOT_FOUND");
}

async fn delete_soft_and_hard(app: &TestApp) {
    let c = &app.client;
    let idx = index(app, "docs").await;
    let v1 = c
        .upload_document_bytes(&idx, "g.json", b"{}".to_vec(), &named("g"))
        .await
        .unwrap();
    let v2 = c
        .upload_document_bytes(&idx, "g.json", b"{ }".to_vec(), &named("g"))
        .await
        .unwrap();

    c.delete_document(&v2.id, false).await.unwrap();
    api_err(c.get_document(&v2.id).await, 404, "NOT_FOUND");
    let deleted = c.get_document_including_deleted(&v2.id).await.unwrap();
    assert!(deleted.deleted_at.is_some());
    assert!(!deleted.is_latest);
    c.delete_document(&v2.id, false)
        .await
        .expect("deleting again is 204");
    c.delete_document("never-existed", false)
        .await
        .expect("unknown ids are 204");
    // No live version now; versions still lists the deleted one.
    api_err(c.get_document_by_name(&idx, "g", None).await, 404, "NOT_FOUND");
    let versions = c.list_document_versions(&idx, "g").await.unwrap();
    assert_eq!(versions.iter().map(|d| d.version).collect::<Vec<_>>(), vec![2, 1]);
    assert!(versions[0].deleted_at.is_some());
    assert_eq!(
        c.get_document_by_name(&idx, "g", Some(2)).await.unwrap().id,
        v2.id,
        "an exact pin sees deleted history"
    );
    // A new upload continues the numbering; if_version compares with 0.
    let v3 = c
        .upload_document_bytes(
            &idx,
            "g.json",
            b"[]".to_vec(),
            &UploadOptions {
                name: Some("g".into()),
                if_version: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    // Lists hide deleted rows unless asked.
    let listed = c.list_documents(&DocumentQuery::default()).await.unwrap();
    assert_eq!(
        listed.data.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        vec![v3.id.as_str()]
    );
    let with_deleted = c
        .list_documents(&DocumentQuery {
            include_deleted: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(with_deleted.total, 2);

    // The index-level delete leaves other indexes' documents alone.
    let other = index(app, "other").await;
    c.delete_index_document(&other, &v3.id, false).await.unwrap();
    assert_eq!(c.get_document(&v3.id).await.unwrap().id, v3.id);
    c.delete_index_document(&idx, &v3.id, true).await.unwrap();
    api_err(c.get_document_including_deleted(&v3.id).await, 404, "NOT_FOUND");

    // Hard delete removes the row and its bytes, soft-deleted or not.
    c.delete_document(&v1.id, true).await.unwrap();
    api_err(c.get_document_including_deleted(&v1.id).await, 404, "NOT_FOUND");
    let store = app.second_store().await;
    let project = app.server.bootstrap.as_ref().unwrap().project.id.clone();
    use kiln_core::rag::store::RagStore;
    let bytes = store
        .document_bytes(&project, &kiln_core::ids::DocumentId::from_string(v1.id.clone()))
        .await
        .unwrap();
    assert_eq!(bytes, None, "the bytes are gone too");
    let kept = store
        .document_bytes(&project, &kiln_core::ids::DocumentId::from_string(v2.id.clone()))
        .await
        .unwrap();
    assert_eq!(
        kept.as_deref(),
        Some(&b"{ }"[..]),
        "a soft delete keeps the bytes"
    );
    store.close().await;
}
