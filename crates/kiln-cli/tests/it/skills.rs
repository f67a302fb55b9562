//! CONTRACT §2.10: module skills. A `skills/<name>.js` file is checked at
//! sync (syntax at its line, a top level that throws or never ends), its
//! exports describe it to the model and in `GET /skills`, `require(name)`
//! reaches it in a session's blocks with a `skill_call` event per call, and
//! a session keeps the code of the version it started on.

use kiln_providers::fake::{FakeProvider, Reply};
use kiln_sdk::api::{CreateSession, SourceAgent, SourceDeployRequest, SourceFile, SourceSyncManifest};
use kiln_sdk::{TurnEvent, TurnEventKind};
use serde_json::json;

use crate::harness::{TestApp, api_err};

const PRICING: &str = "// Prices orders in euros.\nexport const CURRENCY = \"EUR\";\nexport function quote(items, { coupon } = {}) {\n  const total = items.reduce((sum, item) => sum + item.price * item.quantity, 0);\n  return coupon === \"WELCOME10\" ? total * 0.9 : total;\n}\n";

fn manifest(pricing: &str) -> SourceSyncManifest {
    let file = |path: &str, content: &str| kiln_sdk::source_dir::source_file(path, content.as_bytes());
    let files: Vec<SourceFile> = vec![
        file("agent.jsonc", "{\"id\": \"support\"}"),
        file("persona.md", "You quote prices."),
        file("skills/pricing.js", pricing),
    ];
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

async fn deploy(app: &TestApp) {
    app.client
        .deploy_source(&SourceDeployRequest {
            project: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn turn(app: &TestApp, session: &str, message: &str) -> Vec<TurnEvent> {
    app.client
        .run_agent(session, message)
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap()
}

/// The `(kind, summary)` of the turn's sandbox events other than model text.
fn sandbox_events(events: &[TurnEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            TurnEventKind::SandboxEvent { kind, summary, .. } if kind != "llm" => {
                Some((kind.clone(), summary.clone()))
            }
            _ => None,
        })
        .collect()
}

fn result(events: &[TurnEvent]) -> Option<serde_json::Value> {
    events.iter().find_map(|e| match &e.kind {
        TurnEventKind::ExecuteJsResult { result, .. } => result.clone(),
        _ => None,
    })
}

const QUOTE_BLOCK: &str = "const { quote, CURRENCY } = require(\"pricing\");\n[quote([{ price: 5, quantity: 2 }], { coupon: \"WELCOME10\" }), CURRENCY]";

pub(crate) async fn module_skills_run_in_the_sandbox_of_the_agents_sessions(
    app: &TestApp,
    fake: &FakeProvider,
) {
    let c = &app.client;
    let synced = c.sync_source(&manifest(PRICING)).await.unwrap();
    assert!(synced.server_issues.is_empty(), "{:?}", synced.server_issues);
    deploy(app).await;
    let agent_id = synced.agents[0].agent_id.clone();

    // GET /skills describes the module by its exports.
    let skills = c.list_skills().await.unwrap();
    assert_eq!(skills.len(), 1);
    assert_eq!(
        (
            skills[0].kind.as_str(),
            skills[0].description.as_str(),
            skills[0].enabled
        ),
        ("module", "Prices orders in euros.", true)
    );
    assert_eq!(
        skills[0].config,
        json!({
            "agent_id": agent_id,
            "path": "skills/pricing.js",
            "exports": [{ "name": "CURRENCY" }, { "name": "quote", "params": ["items", "{ coupon }"] }],
        })
    );

    // A block requires the skill; the call shows as a `skill_call` event.
    let session = c
        .create_session(&CreateSession {
            agent_id: Some(agent_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    fake.push(Reply::tool_call("execute_js", json!({ "code": QUOTE_BLOCK })));
    fake.push(Reply::text("That is 9 EUR."));
    let events = turn(app, &session.id, "What do two 5 EUR items cost with WELCOME10?").await;
    assert_eq!(result(&events), Some(json!([9, "EUR"])));
    assert_eq!(
        sandbox_events(&events),
        [("skill_call".to_owned(), "pricing.quote()".to_owned())]
    );
    // The system prompt told the model what the module offers.
    let system = fake.requests()[0].body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        system.contains("- `require(\"pricing\")`: Prices orders in euros.\n  - `CURRENCY` (a value)\n  - `quote(items, { coupon })`"),
        "{system}"
    );

    // A new version changes the code; the running session keeps its own.
    let doubled = PRICING.replace("total * 0.9 : total", "total * 1.8 : total * 2");
    c.sync_source(&manifest(&doubled)).await.unwrap();
    deploy(app).await;
    let newer = c
        .create_session(&CreateSession {
            agent_id: Some(agent_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    for (id, expected) in [(&session.id, 9), (&newer.id, 18)] {
        fake.push(Reply::tool_call("execute_js", json!({ "code": QUOTE_BLOCK })));
        fake.push(Reply::text("Done."));
        let events = turn(app, id, "Again?").await;
        assert_eq!(result(&events), Some(json!([expected, "EUR"])), "session {id}");
    }

    // An ad hoc session has no skills: `require` says so.
    let ad_hoc = c.create_session(&CreateSession::default()).await.unwrap();
    fake.push(Reply::tool_call("execute_js", json!({ "code": QUOTE_BLOCK })));
    fake.push(Reply::text("No skill."));
    let events = turn(app, &ad_hoc.id, "Quote?").await;
    let error = events.iter().find_map(|e| match &e.kind {
        TurnEventKind::ExecuteJsResult { error, .. } => error.clone(),
        _ => None,
    });
    assert_eq!(
        error.as_deref(),
        Some("Error: no skill module named `pricing` (this agent has no skill modules)")
    );
}

pub(crate) async fn broken_skill_modules_are_refused_at_their_line(app: &TestApp, _fake: &FakeProvider) {
    let c = &app.client;
    c.sync_source(&manifest(PRICING)).await.unwrap();

    // A syntax error: 422 with the line, and the draft is left as it was.
    let broken = PRICING.replace("return coupon", "return coupon ===");
    let err = api_err(c.sync_source(&manifest(&broken)).await, 422, "source_invalid");
    let issue = &err.details["serverIssues"][0];
    assert_eq!(issue["code"], "skill_syntax");
    assert_eq!(issue["severity"], "fatal");
    assert_eq!(issue["file"], "support/skills/pricing.js");
    assert_eq!(issue["line"], 5);
    assert!(
        issue["message"].as_str().unwrap().starts_with("SyntaxError: "),
        "{issue}"
    );
    let skills = c.list_skills().await.unwrap();
    assert_eq!(
        skills[0].config["exports"][1]["name"], "quote",
        "the draft is unchanged"
    );

    // A top level that throws, or never ends, is refused too.
    let throws = "export const a = 1;\nthrow new Error(\"no config\");\n";
    let issues = c.validate_source(&manifest(throws)).await.unwrap();
    let found: Vec<(&str, Option<u32>)> = issues.iter().map(|i| (i.code.as_str(), i.line)).collect();
    assert_eq!(found, [("skill_error", Some(2))]);
    assert!(
        issues[0].message.contains("Error: no config"),
        "{}",
        issues[0].message
    );
    let spins = "export const a = 1;\nwhile (true) {}\n";
    let issues = c.validate_source(&manifest(spins)).await.unwrap();
    let found: Vec<&str> = issues.iter().map(|i| i.code.as_str()).collect();
    assert_eq!(found, ["skill_timeout"]);

    // POST /skills/validate checks one module alone.
    assert!(
        c.validate_skill(PRICING, Some("pricing"))
            .await
            .unwrap()
            .is_empty()
    );
    let issues = c
        .validate_skill("export function f() {\n  return ;;;(\n}\n", None)
        .await
        .unwrap();
    assert_eq!(issues.len(), 1);
    assert_eq!(
        (issues[0].code.as_str(), issues[0].file.as_deref(), issues[0].line),
        ("skill_syntax", Some("skills/skill.js"), Some(3))
    );
    let named = c
        .validate_skill("export const search = 1;", Some("search"))
        .await
        .unwrap();
    let found: Vec<(&str, &str)> = named
        .iter()
        .map(|i| (i.code.as_str(), i.severity.as_str()))
        .collect();
    assert_eq!(found, [("reserved_name", "warn")]);
    api_err(
        c.validate_skill("1", Some("../x")).await,
        400,
        "validation_failed",
    );
}
