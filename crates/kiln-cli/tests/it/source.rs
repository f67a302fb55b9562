//! CONTRACT §2.9 and §2.8: `source-validate` (a manifest checked against
//! the project, both content encodings, issues with positions, nothing
//! written), `source-sync` (agents and drafts), `source-deploy` (versions)
//! and the agent configs they leave.

use base64::Engine;
use kiln_sdk::api::{
    AuditLogQuery, CreateIndex, CreateSession, SourceAgent, SourceDeleteRequest, SourceDeployRequest,
    SourceFile, SourceRenameRequest, SourceSyncManifest, SourceValidationIssue, UpdateAgentSettings,
};

use crate::backends;
use crate::harness::{TestApp, api_err};

backends!(
    validate_reports_every_issue_and_writes_nothing,
    validate_reads_go_style_base64_and_large_manifests,
    sync_creates_agents_and_replaces_their_drafts,
    a_sync_with_a_fatal_issue_writes_nothing,
    deploy_publishes_immutable_versions,
    sessions_start_on_an_agents_version_or_draft,
    rename_export_diff_and_settings,
    deleting_an_agent_removes_its_versions_and_sessions,
    a_deploy_racing_syncs_publishes_one_sync_whole,
    skills_are_listed_from_the_live_version_and_the_guide_is_markdown,
);

fn file(path: &str, content: &str) -> SourceFile {
    // As the SDK reads it from disk: text as text.
    kiln_sdk::source_dir::source_file(path, content.as_bytes())
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

fn agent(id: &str, files: Vec<SourceFile>) -> SourceAgent {
    SourceAgent {
        id: id.into(),
        source_hash: format!("sha256:{id}-{}", files.len()),
        files,
    }
}

async fn sync_creates_agents_and_replaces_their_drafts(app: &TestApp) {
    let c = &app.client;
    c.create_index(&CreateIndex {
        name: "help-center".into(),
        description: None,
        metadata: None,
    })
    .await
    .unwrap();
    let support = |persona: &str| {
        agent(
            "support",
            vec![
                file(
                    "agent.jsonc",
                    "{ \"id\": \"support\", \"name\": \"Support\", \"description\": \"Answers customers\", \"indexes\": [\"help-center\"] }",
                ),
                file("persona.md", persona),
            ],
        )
    };
    let mut first = manifest(Vec::new());
    first.agents = vec![
        support("You help."),
        agent("triage", vec![file("agent.jsonc", "{\"id\": \"triage\"}")]),
    ];
    let unseeded = c.seed_project().await.unwrap();
    assert!(!unseeded.already_seeded && unseeded.agent_id.is_none());
    let synced = c.sync_source(&first).await.unwrap();
    assert_eq!(synced.draft_hash, first.source_hash);
    for seeded in [c.seed_project().await.unwrap(), c.seed_app().await.unwrap()] {
        assert!(seeded.already_seeded);
        assert_eq!(
            seeded.agent_id.as_deref(),
            Some(synced.agents[0].agent_id.as_str())
        );
        assert_eq!(seeded.agent_name.as_deref(), Some("Support"));
    }
    let ids: Vec<&str> = synced.agents.iter().map(|a| a.local_id.as_str()).collect();
    assert_eq!(ids, ["support", "triage"]);
    assert_eq!(synced.agents[0].source_hash, first.agents[0].source_hash);
    // The warning travels with the 200.
    let warnings: Vec<_> = synced
        .server_issues
        .iter()
        .map(|i| (i.code.as_str(), i.severity.as_str()))
        .collect();
    assert_eq!(warnings, [("missing_persona", "warn")]);

    let agents = c.list_agent_configs().await.unwrap();
    assert_eq!(agents.len(), 2);
    let support_agent = &agents[0];
    assert_eq!(support_agent.id, synced.agents[0].agent_id);
    assert_eq!(support_agent.name, "Support");
    assert_eq!(support_agent.description, "Answers customers");
    assert_eq!(support_agent.code_first_project.as_deref(), Some("acme"));
    assert_eq!(support_agent.code_first_local_id.as_deref(), Some("support"));
    assert_eq!(
        support_agent.active_version_id, None,
        "nothing is live before a deploy"
    );
    assert_eq!(
        agents[1].name, "triage",
        "the local id names an agent without a name"
    );

    // Syncing again keeps the agent and its draft; another environment has
    // a draft of its own.
    let mut again = manifest(Vec::new());
    again.agents = vec![support("You help, briefly.")];
    let resynced = c.sync_source(&again).await.unwrap();
    assert_eq!(resynced.agents[0].agent_id, synced.agents[0].agent_id);
    assert_eq!(resynced.agents[0].draft_id, synced.agents[0].draft_id);
    again.environment = Some("staging".into());
    let staging = c.sync_source(&again).await.unwrap();
    assert_eq!(staging.agents[0].agent_id, synced.agents[0].agent_id);
    assert_ne!(staging.agents[0].draft_id, synced.agents[0].draft_id);
    assert_eq!(c.list_agent_configs().await.unwrap().len(), 2);

    // The same local id under another manifest project is another agent.
    let mut other = again.clone();
    other.project = "other-repo".into();
    let elsewhere = c.sync_source(&other).await.unwrap();
    assert_ne!(elsewhere.agents[0].agent_id, synced.agents[0].agent_id);

    // One agent by id: the contract's shape, Go-only fields included.
    let raw: serde_json::Value = app
        .http()
        .get(app.url(&format!("/api/sdk/agent-configs/{}", support_agent.id)))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["skills_json"], serde_json::json!([]));
    assert_eq!(raw["stores_json"], serde_json::json!([]));
    assert_eq!(raw["app_id"], raw["project_id"]);
    assert_eq!(raw["run_eval_on_publish"], false);
    assert!(raw["draft_config"].is_null() && raw["published_at"].is_null());
    api_err(c.get_agent_config("no-such-agent").await, 404, "NOT_FOUND");
    let (_, stranger) = app.key_for("stranger").await;
    assert!(stranger.list_agent_configs().await.unwrap().is_empty());
    api_err(
        stranger.get_agent_config(&support_agent.id).await,
        404,
        "NOT_FOUND",
    );

    // Every sync is audited, one entry per agent.
    let audit = c
        .list_audit_log(&AuditLogQuery {
            action: Some("agent.sync".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.total, 5);
}

async fn a_sync_with_a_fatal_issue_writes_nothing(app: &TestApp) {
    let c = &app.client;
    let mut both = manifest(Vec::new());
    both.agents = vec![
        agent(
            "good",
            vec![file("agent.jsonc", "{\"id\": \"good\"}"), file("persona.md", "p")],
        ),
        agent(
            "bad",
            vec![
                file("agent.jsonc", "{\"id\": \"bad\", \"indexes\": [\"nowhere\"]}"),
                file("persona.md", "p"),
            ],
        ),
    ];
    let err = api_err(c.sync_source(&both).await, 422, "source_invalid");
    let issues = err.details["serverIssues"].as_array().unwrap();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0]["code"], "missing_index");
    assert_eq!(issues[0]["file"], "bad/agent.jsonc");
    assert!(
        err.message.contains("missing") || err.message.contains("nowhere"),
        "{}",
        err.message
    );
    // Nothing was written, not even the good agent.
    assert!(c.list_agent_configs().await.unwrap().is_empty());
    let audit = c
        .list_audit_log(&AuditLogQuery {
            action: Some("agent.sync".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.total, 0);
}

async fn deploy_publishes_immutable_versions(app: &TestApp) {
    let c = &app.client;
    let index = c
        .create_index(&CreateIndex {
            name: "help-center".into(),
            description: None,
            metadata: None,
        })
        .await
        .unwrap();
    let support = |persona: &str| {
        agent(
            "support",
            vec![
                file(
                    "agent.jsonc",
                    "{ \"id\": \"support\", \"model\": \"kiln/offline\", \"indexes\": [\"help-center\"], \"tools\": [\"search\"] }",
                ),
                file("persona.md", persona),
            ],
        )
    };
    let mut both = manifest(Vec::new());
    both.agents = vec![
        support("You help."),
        agent(
            "triage",
            vec![
                file("agent.jsonc", "{\"id\": \"triage\"}"),
                file("persona.md", "Sort."),
            ],
        ),
    ];
    let synced = c.sync_source(&both).await.unwrap();
    let deploy = |local: Option<&str>| SourceDeployRequest {
        project: "acme".into(),
        local_agent_id: local.map(str::to_owned),
        ..Default::default()
    };
    let first = c.deploy_source(&deploy(None)).await.unwrap();
    assert_eq!(first.version, "1.0.0");
    let semvers: Vec<(&str, &str)> = first
        .agents
        .iter()
        .map(|a| (a.local_id.as_str(), a.semver.as_str()))
        .collect();
    assert_eq!(semvers, [("support", "1.0.0"), ("triage", "1.0.0")]);
    assert_eq!(first.agents[0].agent_id, synced.agents[0].agent_id);

    // The version is live: the agent's fields are its.
    let live = c.get_agent_config(&first.agents[0].agent_id).await.unwrap();
    assert_eq!(
        live.active_version_id.as_deref(),
        Some(first.agents[0].version_id.as_str())
    );
    assert_eq!(live.persona_md, "You help.");
    assert_eq!((live.provider.as_str(), live.model.as_str()), ("kiln", "offline"));
    assert_eq!(live.stores_json, serde_json::json!([index.id]));
    assert!(live.published_at.is_some());

    // A changed draft of one agent becomes its next version; the first is
    // kept as it was.
    c.sync_source(&SourceSyncManifest {
        agents: vec![support("You help, briefly.")],
        ..manifest(Vec::new())
    })
    .await
    .unwrap();
    let second = c.deploy_source(&deploy(Some("support"))).await.unwrap();
    assert_eq!((second.version.as_str(), second.agents.len()), ("1.0.1", 1));
    let versions = c.list_agent_versions(&live.id).await.unwrap();
    let listed: Vec<(&str, &str)> = versions
        .iter()
        .map(|v| (v.semver.as_str(), v.persona_md.as_str()))
        .collect();
    assert_eq!(listed, [("1.0.1", "You help, briefly."), ("1.0.0", "You help.")]);
    let old = c
        .get_agent_version(&live.id, &first.agents[0].version_id)
        .await
        .unwrap();
    assert_eq!(
        (old.semver.as_str(), old.agent_id.as_str()),
        ("1.0.0", live.id.as_str())
    );
    assert_eq!(
        c.get_agent_config(&live.id).await.unwrap().persona_md,
        "You help, briefly."
    );
    let triage = &first.agents[1];
    assert_eq!(c.list_agent_versions(&triage.agent_id).await.unwrap().len(), 1);
    // A version is read only through its own agent.
    api_err(
        c.get_agent_version(&triage.agent_id, &old.id).await,
        404,
        "NOT_FOUND",
    );
    api_err(c.list_agent_versions("no-such-agent").await, 404, "NOT_FOUND");

    // Nothing to deploy, or a bad project name.
    api_err(
        c.deploy_source(&SourceDeployRequest {
            project: "elsewhere".into(),
            ..Default::default()
        })
        .await,
        404,
        "NOT_FOUND",
    );
    api_err(c.deploy_source(&deploy(Some("ghost"))).await, 404, "NOT_FOUND");
    api_err(
        c.deploy_source(&SourceDeployRequest {
            project: "a b".into(),
            ..Default::default()
        })
        .await,
        400,
        "validation_failed",
    );

    // The draft is checked again at deploy: its index is gone now.
    c.delete_index(&index.id).await.unwrap();
    let err = api_err(
        c.deploy_source(&deploy(Some("support"))).await,
        422,
        "source_invalid",
    );
    assert_eq!(err.details["serverIssues"][0]["code"], "missing_index");
    assert_eq!(
        c.list_agent_versions(&live.id).await.unwrap().len(),
        2,
        "nothing was published"
    );

    let audit = c
        .list_audit_log(&AuditLogQuery {
            action: Some("agent.deploy".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.total, 3);
}

async fn sessions_start_on_an_agents_version_or_draft(app: &TestApp) {
    let c = &app.client;
    let index = c
        .create_index(&CreateIndex {
            name: "help-center".into(),
            description: None,
            metadata: None,
        })
        .await
        .unwrap();
    let support = |persona: &str| SourceSyncManifest {
        agents: vec![agent(
            "support",
            vec![
                file(
                    "agent.jsonc",
                    "{ \"id\": \"support\", \"model\": \"kiln/offline\", \"indexes\": [\"help-center\"], \"tools\": [\"search\"] }",
                ),
                file("persona.md", persona),
            ],
        )],
        ..manifest(Vec::new())
    };
    let synced = c.sync_source(&support("You are Support v1.")).await.unwrap();
    let agent_id = synced.agents[0].agent_id.clone();
    let on = |target: Option<&str>| CreateSession {
        agent_id: Some(agent_id.clone()),
        target: target.map(str::to_owned),
        ..Default::default()
    };

    // Nothing deployed yet: the live config is refused, the draft runs.
    api_err(c.create_session(&on(None)).await, 409, "not_deployed");
    let draft = c.create_session(&on(Some("draft"))).await.unwrap();
    assert_eq!(draft.system_prompt, "You are Support v1.");
    assert_eq!(draft.model, "kiln/offline");
    assert_eq!(draft.index_ids, Some(vec![index.id.clone()]));
    assert_eq!(draft.tools_config, serde_json::json!({"tools": ["search"]}));
    assert_eq!(
        (draft.agent_id.as_deref(), draft.agent_version_id.as_deref()),
        (Some(agent_id.as_str()), None)
    );

    // After a deploy the live version runs, and a session records it.
    let v1 = c
        .deploy_source(&SourceDeployRequest {
            project: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .agents[0]
        .version_id
        .clone();
    c.sync_source(&support("You are Support v2.")).await.unwrap();
    let live_v1 = c.create_session(&on(None)).await.unwrap();
    assert_eq!(live_v1.agent_version_id.as_deref(), Some(v1.as_str()));
    assert_eq!(
        live_v1.system_prompt, "You are Support v1.",
        "the draft is not live until deployed"
    );
    let v2 = c
        .deploy_source(&SourceDeployRequest {
            project: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .agents[0]
        .version_id
        .clone();
    let live = c.create_session(&on(None)).await.unwrap();
    assert_eq!(
        (live.system_prompt.as_str(), live.agent_version_id.as_deref()),
        ("You are Support v2.", Some(v2.as_str()))
    );
    // An older version, pinned.
    let pinned = c
        .create_session(&CreateSession {
            agent_version_id: Some(v1.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pinned.system_prompt, "You are Support v1.");
    assert_eq!(pinned.agent_id.as_deref(), Some(agent_id.as_str()));
    // Inline fields override the version.
    let overridden = c
        .create_session(&CreateSession {
            system_prompt: Some("Be terse.".into()),
            index_ids: Some(Vec::new()),
            tools: Some(Vec::new()),
            ..on(None)
        })
        .await
        .unwrap();
    assert_eq!(overridden.system_prompt, "Be terse.");
    assert_eq!(overridden.index_ids, Some(Vec::new()));
    assert_eq!(overridden.tools_config, serde_json::json!({"tools": []}));

    // Refusals: an unknown version, a version of another agent, a draft
    // that was never synced for the default environment.
    api_err(
        c.create_session(&CreateSession {
            agent_version_id: Some("no-such-version".into()),
            ..Default::default()
        })
        .await,
        404,
        "NOT_FOUND",
    );
    let mut staging_only = manifest(vec![
        file("agent.jsonc", "{\"id\": \"triage\"}"),
        file("persona.md", "Sort."),
    ]);
    staging_only.agents[0].id = "triage".into();
    staging_only.environment = Some("staging".into());
    let triage = c.sync_source(&staging_only).await.unwrap().agents[0]
        .agent_id
        .clone();
    api_err(
        c.create_session(&CreateSession {
            agent_id: Some(triage.clone()),
            agent_version_id: Some(v1.clone()),
            ..Default::default()
        })
        .await,
        400,
        "validation_failed",
    );
    api_err(
        c.create_session(&CreateSession {
            agent_id: Some(triage),
            target: Some("draft".into()),
            ..Default::default()
        })
        .await,
        409,
        "no_draft",
    );

    // Prompt skills (skills/*.md) join the persona under a heading each.
    let mut with_skill = support("You are Support v3.");
    with_skill.agents[0]
        .files
        .push(file("skills/tone.md", "Be warm.\n"));
    with_skill.agents[0]
        .files
        .push(file("skills/brevity.md", "Keep it short."));
    c.sync_source(&with_skill).await.unwrap();
    let skilled = c.create_session(&on(Some("draft"))).await.unwrap();
    assert_eq!(
        skilled.system_prompt,
        "You are Support v3.\n\n## Skill: brevity\n\nKeep it short.\n\n## Skill: tone\n\nBe warm."
    );

    // A turn runs on the agent's session with the built-in model.
    let events = c
        .run_agent(&live.id, "How do I reset my password?")
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();
    assert!(
        matches!(
            events.last().map(|e| &e.kind),
            Some(kiln_sdk::TurnEventKind::Done(_))
        ),
        "{events:?}"
    );
}

async fn rename_export_diff_and_settings(app: &TestApp) {
    let c = &app.client;
    let files = |persona: &str| {
        vec![
            file("agent.jsonc", "{\"id\": \"support\"}"),
            file("persona.md", persona),
        ]
    };
    let synced = c.sync_source(&manifest(files("v1"))).await.unwrap();
    let agent_id = synced.agents[0].agent_id.clone();

    // Export before any deploy: the draft, base64.
    let export = c.export_source("acme").await.unwrap();
    assert_eq!((export.project.as_str(), export.agents.len()), ("acme", 1));
    let persona = export.agents[0]
        .files
        .iter()
        .find(|f| f.path == "persona.md")
        .unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(persona.content.as_deref().unwrap())
        .unwrap();
    assert_eq!((bytes.as_slice(), persona.size), (b"v1".as_slice(), 2));
    assert!(c.export_source("nobody").await.unwrap().agents.is_empty());
    api_err(c.export_source("not a name").await, 400, "validation_failed");

    // Diff against what is published: nothing yet, so every file is local.
    let diff = c.diff_source(&manifest(files("v1"))).await.unwrap();
    assert!(!diff.in_sync);
    let states: Vec<(&str, &str)> = diff
        .paths
        .iter()
        .map(|p| (p.path.as_str(), p.state.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("support/agent.jsonc", "local-only"),
            ("support/persona.md", "local-only")
        ]
    );
    c.deploy_source(&SourceDeployRequest {
        project: "acme".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let same = c.diff_source(&manifest(files("v1"))).await.unwrap();
    assert!(same.in_sync && same.paths.is_empty(), "{same:?}");
    let mut edited = manifest(files("v2"));
    edited.agents[0].files.retain(|f| f.path != "agent.jsonc");
    edited.agents[0].files.push(file("skills/tone.md", "Be kind."));
    let changed = c.diff_source(&edited).await.unwrap();
    let states: Vec<(&str, &str)> = changed
        .paths
        .iter()
        .map(|p| (p.path.as_str(), p.state.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("support/agent.jsonc", "server-only"),
            ("support/persona.md", "changed"),
            ("support/skills/tone.md", "local-only"),
        ]
    );

    // Rename keeps the agent; the old local id is gone, a taken one is 409.
    let rename = |old: &str, new: &str| SourceRenameRequest {
        project: "acme".into(),
        old_local_id: old.into(),
        new_local_id: new.into(),
    };
    let renamed = c.rename_source(&rename("support", "helpdesk")).await.unwrap();
    assert_eq!(renamed.agent_id, agent_id);
    assert_eq!(
        c.get_agent_config(&agent_id)
            .await
            .unwrap()
            .code_first_local_id
            .as_deref(),
        Some("helpdesk")
    );
    api_err(c.rename_source(&rename("support", "x")).await, 404, "NOT_FOUND");
    let mut second = manifest(vec![file("agent.jsonc", "{\"id\": \"other\"}")]);
    second.agents[0].id = "other".into();
    c.sync_source(&second).await.unwrap();
    api_err(
        c.rename_source(&rename("other", "helpdesk")).await,
        409,
        "conflict",
    );
    api_err(
        c.rename_source(&rename("other", "../x")).await,
        400,
        "validation_failed",
    );

    // Settings: "" clears the pin, an unknown suite is 404, Go's extra
    // field is accepted.
    let settings = |suite: Option<&str>| UpdateAgentSettings {
        eval_suite_id: suite.map(str::to_owned),
        run_eval_on_publish: Some(true),
    };
    let cleared = c
        .update_agent_settings(&agent_id, &settings(Some("")))
        .await
        .unwrap();
    assert_eq!(cleared.eval_suite_id, None);
    assert!(!cleared.run_eval_on_publish);
    assert_eq!(
        c.update_agent_settings(&agent_id, &settings(None))
            .await
            .unwrap()
            .id,
        agent_id
    );
    api_err(
        c.update_agent_settings(&agent_id, &settings(Some("suite-1")))
            .await,
        404,
        "NOT_FOUND",
    );
    api_err(
        c.update_agent_settings("nope", &settings(Some(""))).await,
        404,
        "NOT_FOUND",
    );

    let audit = |action: &str| AuditLogQuery {
        action: Some(action.into()),
        ..Default::default()
    };
    assert_eq!(c.list_audit_log(&audit("agent.rename")).await.unwrap().total, 1);
    assert_eq!(
        c.list_audit_log(&audit("agent.settings.update"))
            .await
            .unwrap()
            .total,
        1
    );
}

async fn deleting_an_agent_removes_its_versions_and_sessions(app: &TestApp) {
    let c = &app.client;
    let mut two = manifest(Vec::new());
    two.agents = vec![
        agent(
            "support",
            vec![
                file(
                    "agent.jsonc",
                    "{\"id\": \"support\", \"model\": \"kiln/offline\"}",
                ),
                file("persona.md", "p"),
            ],
        ),
        agent(
            "triage",
            vec![
                file("agent.jsonc", "{\"id\": \"triage\"}"),
                file("persona.md", "p"),
            ],
        ),
    ];
    let synced = c.sync_source(&two).await.unwrap();
    c.deploy_source(&SourceDeployRequest {
        project: "acme".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let (support, triage) = (
        synced.agents[0].agent_id.clone(),
        synced.agents[1].agent_id.clone(),
    );
    let session = c
        .create_session(&CreateSession {
            agent_id: Some(support.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    c.run_agent(&session.id, "hello")
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();
    let ad_hoc = c.create_session(&CreateSession::default()).await.unwrap();

    let delete = |local: &str, force: bool| SourceDeleteRequest {
        project: "acme".into(),
        local_id: local.into(),
        force,
    };
    let refused = api_err(
        c.delete_source(&delete("support", false)).await,
        400,
        "force_required",
    );
    assert!(refused.message.contains("force"), "{}", refused.message);
    assert!(c.get_agent_config(&support).await.is_ok(), "nothing was deleted");

    let deleted = c.delete_source(&delete("support", true)).await.unwrap();
    assert_eq!(
        (
            deleted.agent_id.as_str(),
            deleted.local_id.as_str(),
            deleted.deleted
        ),
        (support.as_str(), "support", true)
    );
    api_err(c.get_agent_config(&support).await, 404, "NOT_FOUND");
    api_err(c.list_agent_versions(&support).await, 404, "NOT_FOUND");
    api_err(c.get_session(&session.id).await, 404, "NOT_FOUND");
    assert!(c.get_session(&ad_hoc.id).await.is_ok(), "other sessions stay");
    api_err(c.delete_source(&delete("support", true)).await, 404, "NOT_FOUND");
    // The local id is free again: a sync creates a new agent.
    let again = c
        .sync_source(&SourceSyncManifest {
            agents: vec![two.agents[0].clone()],
            ..manifest(Vec::new())
        })
        .await
        .unwrap();
    assert_ne!(again.agents[0].agent_id, support);

    // DELETE /agent-configs/{id}: the same, without the flag.
    c.delete_agent_config(&triage).await.unwrap();
    api_err(c.get_agent_config(&triage).await, 404, "NOT_FOUND");
    api_err(c.delete_agent_config(&triage).await, 404, "NOT_FOUND");
    let audit = c
        .list_audit_log(&AuditLogQuery {
            action: Some("agent.delete".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.total, 2);
}

async fn a_deploy_racing_syncs_publishes_one_sync_whole(app: &TestApp) {
    let c = &app.client;
    // Every sync gives both agents the same marker.
    let both = |n: usize| {
        let mut m = manifest(Vec::new());
        m.agents = ["alpha", "beta"]
            .iter()
            .map(|id| {
                agent(
                    id,
                    vec![
                        file("agent.jsonc", &format!("{{\"id\": \"{id}\"}}")),
                        file("persona.md", &format!("marker {n}")),
                    ],
                )
            })
            .collect();
        m
    };
    c.sync_source(&both(0)).await.unwrap();
    let syncs = async {
        for n in 1..=40 {
            c.sync_source(&both(n)).await.unwrap();
        }
    };
    let deploys = async {
        let mut done = Vec::new();
        for _ in 0..20 {
            done.push(
                c.deploy_source(&SourceDeployRequest {
                    project: "acme".into(),
                    ..Default::default()
                })
                .await
                .unwrap(),
            );
        }
        done
    };
    let ((), deploys) = tokio::join!(syncs, deploys);
    for deployed in deploys {
        let mut personas = Vec::new();
        for a in &deployed.agents {
            personas.push(
                c.get_agent_version(&a.agent_id, &a.version_id)
                    .await
                    .unwrap()
                    .persona_md,
            );
        }
        assert_eq!(personas[0], personas[1], "one deploy published two syncs' drafts");
    }
}

async fn skills_are_listed_from_the_live_version_and_the_guide_is_markdown(app: &TestApp) {
    let c = &app.client;
    let with_tone = |tone: &str| {
        manifest(vec![
            file("agent.jsonc", "{\"id\": \"support\"}"),
            file("persona.md", "p"),
            file("skills/tone.md", tone),
            file(
                "skills/lookup.js",
                "// Looks up orders\nexport function lookup(id) { return id }\n",
            ),
        ])
    };
    assert!(c.list_skills().await.unwrap().is_empty());
    let synced = c.sync_source(&with_tone("# Tone\nBe warm.")).await.unwrap();
    let agent_id = synced.agents[0].agent_id.clone();
    let skills = c.list_skills().await.unwrap();
    let summary: Vec<(&str, &str, &str, bool)> = skills
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.kind.as_str(),
                s.description.as_str(),
                s.enabled,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("lookup", "module", "Looks up orders", true),
            ("tone", "prompt", "Tone", true)
        ]
    );
    assert_eq!(skills[1].prompt, "# Tone\nBe warm.");
    assert_eq!(
        skills[1].config,
        serde_json::json!({"agent_id": agent_id, "path": "skills/tone.md"})
    );
    assert_eq!(skills[1].app_id, skills[1].project_id);

    // Once deployed, the live version's skills are listed, under the same ids.
    c.deploy_source(&SourceDeployRequest {
        project: "acme".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    c.sync_source(&with_tone("# Tone\nBe curt.")).await.unwrap();
    let live = c.get_skill(&skills[1].id).await.unwrap();
    assert_eq!(live.prompt, "# Tone\nBe warm.", "the draft is not live");
    api_err(c.get_skill("skill_none").await, 404, "NOT_FOUND");

    // The guide is Markdown, and names every primitive the sandbox offers.
    let response = app
        .http()
        .get(app.url("/api/sdk/skills/authoring-guide"))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/markdown; charset=utf-8");
    let guide = c.skill_authoring_guide().await.unwrap();
    assert!(guide.starts_with("# Writing skills"), "{guide}");
    for primitive in ["search(", "fetch(", "ai(", "input(", "data.get(", "data.set("] {
        assert!(guide.contains(primitive), "{primitive} is missing from the guide");
    }
    assert!(guide.contains("Reserved names"));
}
