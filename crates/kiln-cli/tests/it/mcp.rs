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

pub(crate) async fn agents_reach_sse_mcp_servers(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let server = FakeMcpServer::start_sse(None).await;
    let declared = json!([{ "name": "orders", "url": server.url, "transport": "sse" }]);
    let synced = c.sync_source(&manifest(declared)).await.unwrap();
    assert!(synced.server_issues.is_empty(), "{:?}", synced.server_issues);
    c.deploy_source(&SourceDeployRequest {
        project: "acme".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let skills = c.list_skills().await.unwrap();
    let mcp = skills
        .iter()
        .find(|s| s.kind == "mcp")
        .expect("the server is a skill");
    assert_eq!(mcp.config["transport"], "sse");
    assert_eq!(mcp.config["tools"].as_array().map(Vec::len), Some(6));
    let session = c
        .create_session(&CreateSession {
            agent_id: Some(synced.agents[0].agent_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    fake.push(Reply::tool_call(
        "execute_js",
        json!({ "code": "const { lookup_order, echo } = require(\"orders\");\n[(await lookup_order({ id: \"S-9\" })).id, await echo({ text: \"over sse\" })]" }),
    ));
    fake.push(Reply::text("Done."));
    let (result, error, calls) = outcome(&turn(app, &session.id).await);
    assert_eq!((result, error), (Some(json!(["S-9", "over sse"])), None));
    assert_eq!(calls.len(), 2, "{calls:?}");
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

/// An MCP client of Kiln's `/mcp`, as a desktop app would connect.
pub(crate) async fn mcp_client(
    app: &TestApp,
    key: &str,
) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    use rmcp::ServiceExt;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let config = StreamableHttpClientTransportConfig::with_uri(app.url("/mcp")).auth_header(key.to_owned());
    ().serve(StreamableHttpClientTransport::with_client(
        reqwest::Client::new(),
        config,
    ))
    .await
    .expect("an MCP session with Kiln")
}

pub(crate) async fn mcp_call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    tool: &str,
    args: Value,
) -> rmcp::model::CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments are an object")
    };
    client
        .call_tool(rmcp::model::CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
        .unwrap()
}

pub(crate) async fn kiln_serves_its_project_over_mcp(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    // No key, or a wrong one: 401 with the contract's error body.
    let response = app
        .http()
        .post(app.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized");

    let client = mcp_client(app, &app.key).await;
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["search", "list_agents", "run_agent", "answer_input"]);

    // search reads the project's indexes.
    let index = c
        .create_index(&kiln_sdk::api::CreateIndex {
            name: "handbook".into(),
            description: None,
            metadata: None,
        })
        .await
        .unwrap();
    let doc = c
        .upload_document_bytes(
            &index.id,
            "reset.md",
            b"# Passwords\n\nTo reset your password open Settings, then Security.".to_vec(),
            &kiln_sdk::UploadOptions::default(),
        )
        .await
        .unwrap();
    c.wait_for_document(&doc.id, std::time::Duration::from_secs(20))
        .await
        .unwrap();
    let found = mcp_call(&client, "search", json!({ "query": "reset password" })).await;
    let results = &found.structured_content.unwrap()["results"];
    assert_eq!(results[0]["document_id"], doc.id.as_str());
    assert!(results[0]["content"].as_str().unwrap().contains("Settings"));

    // The project's documents are resources, read as their indexed text.
    let resources = client.list_all_resources().await.unwrap();
    let uri = format!("kiln://documents/{}", doc.id);
    let listed = resources
        .iter()
        .find(|r| r.uri == uri)
        .expect("the document is a resource");
    assert_eq!(listed.name, "reset.md");
    let read = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(uri.clone()))
        .await
        .unwrap();
    match &read.contents[0] {
        rmcp::model::ResourceContents::TextResourceContents { text, .. } => {
            assert!(text.contains("open Settings, then Security"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        client
            .read_resource(rmcp::model::ReadResourceRequestParams::new(
                "kiln://documents/nope"
            ))
            .await
            .is_err()
    );

    // list_agents, then run_agent on one; a question pauses it, answer_input resumes it.
    let synced = c.sync_source(&manifest(json!([]))).await.unwrap();
    c.deploy_source(&SourceDeployRequest {
        project: "acme".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let agent_id = synced.agents[0].agent_id.clone();
    let listed = mcp_call(&client, "list_agents", json!({})).await;
    assert_eq!(
        listed.structured_content.unwrap()["agents"][0]["id"],
        agent_id.as_str()
    );

    fake.push(Reply::text("Your order A-7 has shipped."));
    let ran = mcp_call(
        &client,
        "run_agent",
        json!({ "agent_id": agent_id, "message": "Where is A-7?" }),
    )
    .await;
    let ran = ran.structured_content.unwrap();
    assert_eq!(
        (ran["status"].as_str(), ran["answer"].as_str()),
        (Some("done"), Some("Your order A-7 has shipped."))
    );
    let session_id = ran["session_id"].as_str().unwrap().to_owned();
    assert_eq!(
        c.get_session(&session_id)
            .await
            .unwrap()
            .session
            .agent_id
            .as_deref(),
        Some(agent_id.as_str())
    );

    fake.push(Reply::tool_call(
        "execute_js",
        json!({ "code": "await input({ type: \"confirm\", message: \"Cancel A-7?\" })" }),
    ));
    fake.push(Reply::text("Cancelled."));
    let paused = mcp_call(
        &client,
        "run_agent",
        json!({ "session_id": session_id, "message": "Cancel it" }),
    )
    .await;
    let paused = paused.structured_content.unwrap();
    assert_eq!(paused["status"], "awaiting_input");
    assert_eq!(paused["input_request"]["message"], "Cancel A-7?");
    let request_id = paused["input_request"]["id"].as_str().unwrap().to_owned();
    let answered = mcp_call(
        &client,
        "answer_input",
        json!({ "session_id": session_id, "input_request_id": request_id, "value": true }),
    )
    .await;
    let answered = answered
        .structured_content
        .unwrap_or_else(|| panic!("{:?}", answered.content));
    assert_eq!(
        (answered["status"].as_str(), answered["answer"].as_str()),
        (Some("done"), Some("Cancelled."))
    );

    // Another project's key sees none of it.
    let other_key = app
        .server
        .control
        .create_key("elsewhere", "mcp")
        .await
        .unwrap()
        .plaintext;
    let other = mcp_client(app, &other_key).await;
    let theirs = mcp_call(&other, "list_agents", json!({})).await;
    assert_eq!(theirs.structured_content.unwrap()["agents"], json!([]));
    let refused = mcp_call(
        &other,
        "run_agent",
        json!({ "session_id": session_id, "message": "hi" }),
    )
    .await;
    assert_eq!(refused.is_error, Some(true));
}

pub(crate) async fn web_search_uses_the_projects_engine(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let session = c.create_session(&CreateSession::default()).await.unwrap();
    let block = "await web_search(\"kiln agents\", { count: 2 })";
    let run = |answer: &'static str| {
        fake.push(Reply::tool_call("execute_js", json!({ "code": block })));
        fake.push(Reply::text(answer));
    };

    // No engine configured: the code gets an error saying what to set.
    run("No engine.");
    let events = turn(app, &session.id).await;
    let error = events.iter().find_map(|e| match &e.kind {
        TurnEventKind::ExecuteJsResult { error, .. } => error.clone(),
        _ => None,
    });
    assert!(error.unwrap().contains("brave_api_key"));

    // Brave, from the project's vault (a Brave-compatible server: the fake).
    let vault = c
        .create_secret_vault(&CreateSecretVault {
            name: "search".into(),
            metadata: None,
        })
        .await
        .unwrap();
    c.put_secret(&vault.id, "brave_api_key", "brave-key")
        .await
        .unwrap();
    c.put_secret(&vault.id, "brave_base_url", fake.base_url())
        .await
        .unwrap();
    c.set_project_vault(Some(&vault.id)).await.unwrap();
    run("Found two.");
    let events = turn(app, &session.id).await;
    let result = events.iter().find_map(|e| match &e.kind {
        TurnEventKind::ExecuteJsResult { result, .. } => result.clone(),
        _ => None,
    });
    assert_eq!(
        result,
        Some(json!([
            { "title": "Result 1 for kiln agents", "url": "https://example.com/1", "snippet": "Snippet 1 about kiln agents." },
            { "title": "Result 2 for kiln agents", "url": "https://example.com/2", "snippet": "Snippet 2 about kiln agents." },
        ]))
    );
    let kinds: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            TurnEventKind::SandboxEvent { kind, summary, .. } if kind == "web_search" => {
                Some((kind.clone(), summary.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [(
            "web_search".to_owned(),
            "2 result(s) for \"kiln agents\"".to_owned()
        )]
    );

    // SearXNG instead.
    c.delete_secret(&vault.id, "brave_api_key").await.unwrap();
    c.delete_secret(&vault.id, "brave_base_url").await.unwrap();
    c.put_secret(&vault.id, "searxng_base_url", fake.base_url())
        .await
        .unwrap();
    run("Found them.");
    let events = turn(app, &session.id).await;
    let result = events.iter().find_map(|e| match &e.kind {
        TurnEventKind::ExecuteJsResult { result, .. } => result.clone(),
        _ => None,
    });
    assert_eq!(result.unwrap()[1]["snippet"], "Snippet 2 about kiln agents.");
}
