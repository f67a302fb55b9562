//! CONTRACT §2.7, §2.9: MCP servers in agents. A server declared in
//! `agent.jsonc → mcp` (its token in the project's vault) is listed at sync
//! and deploy, described in the system prompt, and reached from a block as
//! `require('<server>').<tool>(args)`, each call a `mcp_call` event; a
//! missing secret, an unknown stdio server and an unreachable server are
//! issues (the last a warning at sync, fatal at deploy).

use kiln_providers::fake::{FakeProvider, Reply};
use kiln_providers::fake_mcp::FakeMcpServer;
use kiln_sdk::api::{CreateSecretVault, CreateSession, SourceAgent, SourceDeployRequest, SourceSyncManifest};
use kiln_sdk::{TurnEvent, TurnEventKind};
use serde_json::{Value, json};

use crate::harness::{TestApp, api_err};

fn manifest(mcp: Value) -> SourceSyncManifest {
    let agent = json!({ "id": "desk", "mcp": mcp }).to_string();
    let file = |path: &str, content: &str| kiln_sdk::source_dir::source_file(path, content.as_bytes());
    SourceSyncManifest {
        project: "acme".into(),
        environment: None,
        source_hash: "sha256:abc".into(),
        agents: vec![SourceAgent {
            id: "desk".into(),
            source_hash: "sha256:def".into(),
            files: vec![
                file("agent.jsonc", &agent),
                file("persona.md", "You track orders."),
            ],
        }],
        generated_at: None,
    }
}

fn orders(url: &str, token_ref: &str) -> Value {
    json!([{ "name": "orders", "url": url, "transport": "streamable_http",
             "auth": { "type": "bearer", "tokenRef": token_ref } }])
}

async fn turn(app: &TestApp, session: &str) -> Vec<TurnEvent> {
    app.client
        .run_agent(session, "Where is my order?")
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap()
}

fn outcome(events: &[TurnEvent]) -> (Option<Value>, Option<String>, Vec<(String, String)>) {
    let mut result = None;
    let mut error = None;
    let mut calls = Vec::new();
    for event in events {
        match &event.kind {
            TurnEventKind::ExecuteJsResult {
                result: r, error: e, ..
            } => {
                result = r.clone();
                error = e.clone();
            }
            TurnEventKind::SandboxEvent { kind, summary, .. } if kind == "mcp_call" => {
                calls.push((kind.clone(), summary.clone()));
            }
            _ => {}
        }
    }
    (result, error, calls)
}

pub(crate) async fn agents_reach_mcp_tools_with_their_vault_token(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let server = FakeMcpServer::start(Some("tok-123")).await;
    let vault = c
        .create_secret_vault(&CreateSecretVault {
            name: "tools".into(),
            metadata: None,
        })
        .await
        .unwrap();
    c.put_secret(&vault.id, "ORDERS_TOKEN", "tok-123").await.unwrap();

    // Before the project uses the vault, the token is missing: fatal.
    let err = api_err(
        c.sync_source(&manifest(orders(&server.url, "ORDERS_TOKEN")))
            .await,
        422,
        "source_invalid",
    );
    assert_eq!(err.details["serverIssues"][0]["code"], "missing_secret");
    assert_eq!(err.details["serverIssues"][0]["file"], "desk/agent.jsonc");
    c.set_project_vault(Some(&vault.id)).await.unwrap();

    let synced = c
        .sync_source(&manifest(orders(&server.url, "ORDERS_TOKEN")))
        .await
        .unwrap();
    assert!(synced.server_issues.is_empty(), "{:?}", synced.server_issues);
    c.deploy_source(&SourceDeployRequest {
        project: "acme".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    // GET /skills lists the server with the tools it listed, and no secret.
    let skills = c.list_skills().await.unwrap();
    let mcp = skills
        .iter()
        .find(|s| s.kind == "mcp")
        .expect("the server is a skill");
    assert_eq!(mcp.name, "orders");
    assert_eq!(mcp.config["url"], server.url.as_str());
    assert_eq!(mcp.config["transport"], "streamable_http");
    assert_eq!(mcp.config["tools"][0]["name"], "lookup_order");
    assert!(!mcp.config.to_string().contains("tok-123"));
    let session = c
        .create_session(&CreateSession {
            agent_id: Some(synced.agents[0].agent_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();

    fake.push(Reply::tool_call(
        "execute_js",
        json!({ "code": "const order = await require(\"orders\").lookup_order({ id: \"A-7\" });\n[order.status, order.total]" }),
    ));
    fake.push(Reply::text("It has shipped."));
    let (result, error, calls) = outcome(&turn(app, &session.id).await);
    assert_eq!((result, error), (Some(json!(["shipped", 42.5])), None));
    assert_eq!(
        calls,
        [("mcp_call".to_owned(), "orders.lookup_order()".to_owned())]
    );
    let system = fake.requests()[0].body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        system.contains("- `require(\"orders\")`\n  - `lookup_order(args)`: Looks up an order by id"),
        "{system}"
    );
    assert!(system.contains("\"required\":[\"id\"]"), "{system}");

    // A tool error is an exception the code may catch; text results are strings.
    fake.push(Reply::tool_call(
        "execute_js",
        json!({ "code": "const { fail, echo } = require(\"orders\");\nlet caught;\ntry { await fail({}) } catch (e) { caught = String(e) }\n[caught, await echo({ text: \"hi\" })]" }),
    ));
    fake.push(Reply::text("Sorry."));
    let (result, _, calls) = outcome(&turn(app, &session.id).await);
    assert_eq!(result, Some(json!(["Error: the order service is down", "hi"])));
    assert_eq!(calls, [("mcp_call".to_owned(), "orders.echo()".to_owned())]);
}

pub(crate) async fn mcp_servers_that_cannot_serve_are_issues(app: &TestApp, _fake: &FakeProvider) {
    let c = &app.client;
    // Nothing listens on port 9 of 127.0.0.1: a warning at sync, fatal at deploy.
    let down = json!([{ "name": "orders", "url": "http://127.0.0.1:9/mcp" }]);
    let synced = c.sync_source(&manifest(down)).await.unwrap();
    let codes: Vec<(&str, &str)> = synced
        .server_issues
        .iter()
        .map(|i| (i.code.as_str(), i.severity.as_str()))
        .collect();
    assert_eq!(codes, [("mcp_unreachable", "warn")]);
    let err = api_err(
        c.deploy_source(&SourceDeployRequest {
            project: "acme".into(),
            ..Default::default()
        })
        .await,
        422,
        "source_invalid",
    );
    assert_eq!(err.details["serverIssues"][0]["code"], "mcp_unreachable");
    assert!(
        c.list_agent_versions(&synced.agents[0].agent_id)
            .await
            .unwrap()
            .is_empty()
    );

    // A stdio server the operator did not declare; shapes that are wrong.
    let issues = c
        .validate_source(&manifest(json!([{ "name": "files" }])))
        .await
        .unwrap();
    assert_eq!(issues[0].code, "unknown_mcp_server");
    for (bad, what) in [
        (json!([{ "url": "https://x.example/mcp" }]), "has no `name`"),
        (
            json!([{ "name": "a b", "url": "https://x.example/mcp" }]),
            "use letters",
        ),
        (json!([{ "name": "x", "url": "ftp://x.example" }]), "https://"),
        (
            json!([{ "name": "x", "url": "https://x.example", "transport": "ws" }]),
            "`streamable_http` or `sse`",
        ),
        (
            json!([{ "name": "x", "url": "https://x.example", "auth": { "type": "bearer" } }]),
            "tokenRef",
        ),
    ] {
        let issues = c.validate_source(&manifest(bad)).await.unwrap();
        assert_eq!(issues[0].code, "invalid_value", "{issues:?}");
        assert!(issues[0].message.contains(what), "{}", issues[0].message);
    }
}
