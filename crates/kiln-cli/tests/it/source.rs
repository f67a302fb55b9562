//! CONTRACT §2.9 `source-validate`: a manifest checked against the
//! project, both content encodings, issues with positions, nothing written.

use base64::Engine;
use kiln_sdk::api::{CreateIndex, SourceAgent, SourceFile, SourceSyncManifest, SourceValidationIssue};
use sha2::Digest;

use crate::backends;
use crate::harness::TestApp;

backends!(
    validate_reports_every_issue_and_writes_nothing,
    validate_reads_go_style_base64_and_large_manifests,
);

fn file(path: &str, content: &str) -> SourceFile {
    SourceFile {
        path: path.into(),
        hash: format!("sha256:{:x}", sha2::Sha256::digest(content.as_bytes())),
        size: content.len() as i64,
        content: Some(content.into()),
    }
}

fn manifest(files: Vec<SourceFile>) -> SourceSyncManifest {
    SourceSyncManifest {
        project: "acme".into(),
        environment: None,
        source_hash: "sha256:abc".into(),
        agents: vec![SourceAgent {
            id: "support".into(),
            source_hash: "sha256:def".into(),
            files,
        }],
        generated_at: None,
    }
}

fn summary(issues: &[SourceValidationIssue]) -> Vec<(String, String, Option<u32>)> {
    issues
        .iter()
        .map(|i| (i.code.clone(), i.severity.clone(), i.line))
        .collect()
}

async fn validate_reports_every_issue_and_writes_nothing(app: &TestApp) {
    let c = &app.client;
    c.create_index(&CreateIndex {
        name: "help-center".into(),
        description: None,
        metadata: None,
    })
    .await
    .unwrap();
    let agent = "{\n  \"id\": \"support\",\n  // by name\n  \"indexes\": [\"help-center\", \"billing\"],\n  \"model\": \"kiln/offline\",\n}\n";
    let good = manifest(vec![file("agent.jsonc", agent), file("persona.md", "You help.")]);
    let issues = c.validate_source(&good).await.unwrap();
    assert_eq!(summary(&issues), [("missing_index".into(), "fatal".into(), None)]);
    assert_eq!(issues[0].file.as_deref(), Some("support/agent.jsonc"));
    assert!(issues[0].message.contains("`billing`"), "{}", issues[0].message);
    assert!(issues[0].hint.is_some());

    // A broken file: 200 with the position of the problem.
    let broken = manifest(vec![file(
        "agent.jsonc",
        "{\n  \"id\": \"support\",\n  \"model\": ]\n}",
    )]);
    let issues = c.validate_source(&broken).await.unwrap();
    assert_eq!(
        summary(&issues),
        [
            ("invalid_jsonc".into(), "fatal".into(), Some(3)),
            ("missing_persona".into(), "warn".into(), None),
        ]
    );
    // The raw body: camelCase, absent fields left out.
    let raw: serde_json::Value = app
        .http()
        .post(app.url("/api/sdk/source-validate"))
        .header("X-API-Key", &app.key)
        .json(&broken)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["issues"][0]["severity"], "fatal");
    assert!(raw["issues"][0]["column"].is_u64());
    assert!(raw["issues"][1].get("line").is_none());

    // Not JSON at all: 400.
    let response = app
        .http()
        .post(app.url("/api/sdk/source-validate"))
        .header("X-API-Key", &app.key)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    // Nothing was written: the project still has its one index only.
    assert_eq!(c.list_indexes().await.unwrap().len(), 1);
}

async fn validate_reads_go_style_base64_and_large_manifests(app: &TestApp) {
    // The Go SDK base64-encodes every file, text included.
    let go = |path: &str, content: &str| SourceFile {
        content: Some(base64::engine::general_purpose::STANDARD.encode(content)),
        ..file(path, content)
    };
    let good = manifest(vec![
        go(
            "tavora/agents/support/agent.jsonc",
            "{\"id\": \"support\", \"tools\": [\"search\"]}",
        ),
        go("persona.md", "You help."),
        go("skills/greet.md", "Greet by name."),
    ]);
    assert_eq!(app.client.validate_source(&good).await.unwrap(), Vec::new());

    // A manifest far above the JSON body limit is read; a file above the
    // per-file limit is an issue, not a 413.
    let big = "x".repeat(1024 * 1024 + 1);
    let large = manifest(vec![
        file("agent.jsonc", "{\"id\": \"support\"}"),
        file("persona.md", "p"),
        file("evals/data.json", &big),
    ]);
    let issues = app.client.validate_source(&large).await.unwrap();
    assert_eq!(
        summary(&issues),
        [("file_too_large".into(), "fatal".into(), None)]
    );
    assert_eq!(issues[0].file.as_deref(), Some("support/evals/data.json"));
}
