//! Agents as code from the terminal, through the built `kiln` binary:
//! `kiln init`, `deploy` (and `--dry-run`), `run --agent`, `agents`, `pull`,
//! `rename`, `delete`, against a real server.

use std::path::Path;
use std::process::Command;

use crate::backends;
use crate::harness::TestApp;

backends!(init_deploy_and_run_an_agent_from_the_terminal);

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

/// Runs `kiln ARGS` in `dir` against the app; (success, stdout, stderr).
pub(crate) async fn kiln(app: &TestApp, dir: &Path, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(KILN);
    command
        .args(args)
        .current_dir(dir)
        .env("KILN_URL", app.base_url())
        .env("KILN_API_KEY", &app.key)
        .env_remove("RUST_LOG");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

async fn init_deploy_and_run_an_agent_from_the_terminal(app: &TestApp) {
    let work = tempfile::tempdir().unwrap();
    let (ok, _, err) = kiln(app, work.path(), &["init", "support-app"]).await;
    assert!(ok, "{err}");
    let project = work.path().join("support-app");
    for file in [
        "kiln.jsonc",
        "kiln/agents/support/agent.jsonc",
        "kiln/agents/support/persona.md",
    ] {
        assert!(project.join(file).is_file(), "{file}");
    }
    let (ok, _, err) = kiln(app, work.path(), &["init", "support-app"]).await;
    assert!(!ok && err.contains("not empty"), "{err}");

    // A dry run validates; a deploy syncs and publishes 1.0.0, then 1.0.1.
    let (ok, _, err) = kiln(app, &project, &["deploy", "--dry-run"]).await;
    assert!(ok, "{err}");
    let (ok, out, err) = kiln(app, &project, &["deploy"]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("support  1.0.0  "), "{out}");
    let (ok, out, err) = kiln(app, &project, &["deploy"]).await;
    assert!(ok && out.starts_with("support  1.0.1  "), "{out}{err}");

    // The app runs the deployed agent (the built-in model answers offline).
    let (ok, out, err) = kiln(
        app,
        &project,
        &["run", "--agent", "support", "How do I reset my password?"],
    )
    .await;
    assert!(ok, "{out}\n{err}");
    assert!(err.contains("done:"), "{err}");
    let session_id = err
        .lines()
        .find_map(|l| l.strip_prefix("session "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let session = app.client.get_session(&session_id).await.unwrap().session;
    assert!(
        session.system_prompt.starts_with("You are Support"),
        "{}",
        session.system_prompt
    );
    assert!(session.agent_version_id.is_some());

    let (ok, out, _) = kiln(app, &project, &["agents", "list"]).await;
    assert!(
        ok && out.contains("support") && out.contains("support-app"),
        "{out}"
    );
    let (ok, out, _) = kiln(app, &project, &["agents", "versions", "support"]).await;
    assert!(
        ok && out.contains("1.0.1 (live)") && out.contains("1.0.0"),
        "{out}"
    );

    // deploy --run-evals deploys, plays the example's case and waits: the
    // offline model cannot greet back, so the gate fails and says so.
    let (ok, out, err) = kiln(app, &project, &["deploy", "--run-evals"]).await;
    assert!(!ok, "{out}\n{err}");
    assert!(out.starts_with("support  1.0.2  "), "{out}");
    assert!(err.contains("[1/1] greets  0/10"), "{err}");
    assert!(out.contains("failed: 0 of 1 passed"), "{out}");
    assert!(
        err.contains("deployed, but the evals of support did not pass"),
        "{err}"
    );

    // Errors print like a compiler's: file:line:column, code, hint.
    let agent_file = project.join("kiln/agents/support/agent.jsonc");
    std::fs::write(
        &agent_file,
        "{\n  \"id\": \"support\",\n  \"tools\": [\"shell\"]\n}\n",
    )
    .unwrap();
    let (ok, _, err) = kiln(app, &project, &["deploy"]).await;
    assert!(!ok, "{err}");
    assert!(
        err.contains("kiln/agents/support/agent.jsonc:3:3: error[unknown_tool]: unknown tool `shell`"),
        "{err}"
    );
    assert!(
        err.contains("  hint: known tools: search, fetch, list_stores"),
        "{err}"
    );
    assert_eq!(
        app.client
            .list_agent_versions(&session.agent_id.clone().unwrap())
            .await
            .unwrap()
            .len(),
        3
    );

    // Pull writes the live version back.
    std::fs::remove_file(&agent_file).unwrap();
    let (ok, _, err) = kiln(app, &project, &["pull"]).await;
    assert!(ok, "{err}");
    assert!(
        std::fs::read_to_string(&agent_file)
            .unwrap()
            .contains("\"id\": \"support\"")
    );

    // Rename, then delete (which needs --force).
    let (ok, _, err) = kiln(app, &project, &["rename", "support", "helpdesk"]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = kiln(app, &project, &["delete", "helpdesk"]).await;
    assert!(!ok && err.contains("--force"), "{err}");
    let (ok, _, err) = kiln(app, &project, &["delete", "helpdesk", "--force"]).await;
    assert!(ok, "{err}");
    assert!(app.client.list_agent_configs().await.unwrap().is_empty());
}

backends!(dev_syncs_every_save_to_the_draft);

async fn dev_syncs_every_save_to_the_draft(app: &TestApp) {
    let work = tempfile::tempdir().unwrap();
    assert!(kiln(app, work.path(), &["init", "app"]).await.0);
    let project = work.path().join("app");
    let mut child = Command::new(KILN)
        .args(["dev", "--poll-ms", "50"])
        .current_dir(&project)
        .env("KILN_URL", app.base_url())
        .env("KILN_API_KEY", &app.key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let draft_prompt = || async {
        let agents = app.client.list_agent_configs().await.ok()?;
        let agent = agents.first()?;
        let session = app
            .client
            .create_session(&kiln_sdk::api::CreateSession {
                agent_id: Some(agent.id.clone()),
                target: Some("draft".into()),
                ..Default::default()
            })
            .await
            .ok()?;
        Some(session.system_prompt)
    };
    let wait_for = |want: &'static str| async move {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            // The persona comes first; the example's prompt skill follows.
            if draft_prompt().await.is_some_and(|p| p.starts_with(want)) {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    let synced_at_start = wait_for("You are Support").await;
    std::fs::write(project.join("kiln/agents/support/persona.md"), "Edited persona.").unwrap();
    let synced_the_edit = wait_for("Edited persona.").await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(synced_at_start, "kiln dev syncs the folder when it starts");
    assert!(synced_the_edit, "kiln dev syncs a saved change");
}

backends!(mcp_verbs_list_an_agents_tools_and_print_the_client_config);

async fn mcp_verbs_list_an_agents_tools_and_print_the_client_config(app: &TestApp) {
    let server = kiln_providers::fake_mcp::FakeMcpServer::start(None).await;
    let agent =
        serde_json::json!({ "id": "desk", "mcp": [{ "name": "orders", "url": server.url }] }).to_string();
    let file = |path: &str, content: &str| kiln_sdk::source_dir::source_file(path, content.as_bytes());
    app.client
        .sync_source(&kiln_sdk::api::SourceSyncManifest {
            project: "acme".into(),
            environment: None,
            source_hash: "sha256:abc".into(),
            agents: vec![kiln_sdk::api::SourceAgent {
                id: "desk".into(),
                source_hash: "sha256:def".into(),
                files: vec![file("agent.jsonc", &agent), file("persona.md", "p")],
            }],
            generated_at: None,
        })
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let (ok, out, err) = kiln(app, work.path(), &["mcp", "tools", "desk"]).await;
    assert!(ok, "{err}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().take(2).collect())
        .collect();
    assert_eq!(rows[0], ["SERVER", "TOOL"]);
    assert_eq!(rows[1], ["orders", "lookup_order"]);
    assert_eq!(rows.len(), 7, "{out}");

    let (ok, out, err) = kiln(app, work.path(), &["mcp", "serve-info"]).await;
    assert!(ok, "{err}");
    let endpoint = format!("{}/mcp", app.base_url());
    assert!(out.contains(&format!("Kiln's MCP endpoint: {endpoint}")), "{out}");
    assert!(
        out.contains(&format!("\"Authorization\": \"Bearer {}\"", app.key)),
        "{out}"
    );

    let (ok, _, err) = kiln(app, work.path(), &["mcp", "tools", "nobody"]).await;
    assert!(!ok);
    assert!(err.contains("no agent `nobody`"), "{err}");
}

backends!(kiln_eval_run_is_a_ci_gate);

async fn kiln_eval_run_is_a_ci_gate(app: &TestApp) {
    let file = |path: &str, content: &str| kiln_sdk::source_dir::source_file(path, content.as_bytes());
    let sync = |case: &'static str| {
        let manifest = kiln_sdk::api::SourceSyncManifest {
            project: "acme".into(),
            environment: None,
            source_hash: "sha256:abc".into(),
            agents: vec![kiln_sdk::api::SourceAgent {
                id: "support".into(),
                source_hash: "sha256:def".into(),
                files: vec![
                    file("agent.jsonc", r#"{ "id": "support" }"#),
                    file("persona.md", "p"),
                    file("evals/gate.json", case),
                ],
            }],
            generated_at: None,
        };
        async move { app.client.sync_source(&manifest).await.unwrap() }
    };
    // The built-in offline model answers; a regex for any text passes.
    sync(r#"{"name": "answers", "prompt": "Hello?", "type": "regex", "config": {"pattern": "\\S"}}"#).await;
    app.client
        .deploy_source(&kiln_sdk::api::SourceDeployRequest {
            project: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let (ok, out, err) = kiln(app, work.path(), &["eval", "run", "--agent", "support"]).await;
    assert!(ok, "{out}\n{err}");
    assert!(err.contains("[1/1] answers  10/10"), "{err}");
    assert!(out.lines().next().unwrap().starts_with("CASE"), "{out}");
    assert!(out.contains("passed: 1 of 1 passed"), "{out}");

    // A draft whose case fails: exit 1, and `eval show` tells the same.
    sync(r#"{"name": "never", "prompt": "Hello?", "type": "contains", "config": {"value": "zzz-never"}}"#)
        .await;
    let (ok, out, err) = kiln(
        app,
        work.path(),
        &["eval", "run", "--agent", "support", "--draft"],
    )
    .await;
    assert!(!ok, "{out}\n{err}");
    assert!(out.contains("failed: 0 of 1 passed"), "{out}");
    assert!(err.contains("the eval run failed"), "{err}");
    let run = err
        .split_whitespace()
        .skip_while(|w| *w != "run")
        .nth(1)
        .unwrap()
        .to_owned();
    let (ok, out, _) = kiln(app, work.path(), &["eval", "show", &run]).await;
    assert!(!ok);
    assert!(out.contains("never") && out.contains("does not contain"), "{out}");
}
