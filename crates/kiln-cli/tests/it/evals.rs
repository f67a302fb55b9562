//! CONTRACT §2.12, §2.8 eval runs, §4.4: cases authored as `evals/*.json`
//! arrive through source-sync (checked), the agent's own suite is pinned on
//! its first deploy and versioned by each deploy, and a run plays every case
//! as a real session scored by a check or by the judge (which is asked
//! again once when its answer is malformed). Runs on the draft, the case
//! time limit, cancel, metrics.

use std::time::Duration;

use kiln_providers::fake::{FakeProvider, Reply};
use kiln_sdk::api::{
    EvalRunDetail, SourceAgent, SourceDeployRequest, SourceSyncManifest, UpdateAgentSettings,
};
use serde_json::json;

use crate::agents::fake_options;
use crate::harness::{Backend, TestApp, TestOptions, api_err};

fn manifest(evals: &[(&str, &str)]) -> SourceSyncManifest {
    let file = |path: &str, content: &str| kiln_sdk::source_dir::source_file(path, content.as_bytes());
    let mut files = vec![
        file("agent.jsonc", r#"{ "id": "support" }"#),
        file("persona.md", "You answer support questions."),
    ];
    files.extend(evals.iter().map(|(path, content)| file(path, content)));
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

const BASICS: &str = r#"[
  { "name": "greets", "prompt": "Say hello", "type": "contains", "config": { "value": "HELLO", "ignore_case": true }, "set_name": "smoke" },
  { "name": "digits", "prompt": "How many days?", "type": "regex", "config": { "pattern": "^\\d+ days$" } },
  { "name": "refund", "prompt": "Can I get a refund?", "criteria": "Mentions the 30-day window", "owner": "ana" },
  { "name": "computes", "prompt": "What is 1+1?", "type": "tool_use", "tools": ["execute_js"] }
]"#;
const SHAPE: &str = r#"{ "name": "shape", "prompt": "Answer as JSON", "type": "json_schema",
  "config": { "schema": { "type": "object", "required": ["days"], "properties": { "days": { "type": "integer" } } } } }"#;

async fn finished(app: &TestApp, id: &str) -> EvalRunDetail {
    for _ in 0..300 {
        let detail = app.client.get_eval_run(id).await.unwrap();
        if !matches!(detail.run.status.as_str(), "pending" | "running") {
            return detail;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("eval run {id} did not end");
}

async fn evals_gate_an_agent(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    // A case without a prompt is fatal; an unknown field warns.
    let err = api_err(
        c.sync_source(&manifest(&[(
            "evals/bad.json",
            r#"{"name": "x", "criteria": "c"}"#,
        )]))
        .await,
        422,
        "source_invalid",
    );
    assert_eq!(err.details["serverIssues"][0]["code"], "missing_field");
    assert_eq!(err.details["serverIssues"][0]["file"], "support/evals/bad.json");
    let synced = c
        .sync_source(&manifest(&[
            ("evals/basics.json", BASICS),
            ("evals/shape.json", SHAPE),
        ]))
        .await
        .unwrap();
    let warned: Vec<&str> = synced.server_issues.iter().map(|i| i.code.as_str()).collect();
    assert_eq!(warned, ["unknown_key"]);
    let agent_id = synced.agents[0].agent_id.clone();

    let cases = c.list_eval_cases().await.unwrap();
    let names: Vec<(&str, &str)> = cases.iter().map(|c| (c.name.as_str(), c.kind.as_str())).collect();
    assert_eq!(
        names,
        [
            ("greets", "contains"),
            ("digits", "regex"),
            ("refund", "llm_judge"),
            ("computes", "tool_use"),
            ("shape", "json_schema")
        ]
    );
    assert_eq!(cases[0].set_name, "smoke");
    assert_eq!(cases[2].pass_threshold, 7);
    assert_eq!(
        c.get_eval_case(&cases[3].id).await.unwrap().tools,
        json!(["execute_js"])
    );
    api_err(c.get_eval_case("nope").await, 404, "NOT_FOUND");

    // Nothing is pinned before the first deploy.
    api_err(c.start_eval_run(&agent_id, false).await, 409, "no_eval_suite");
    api_err(c.get_agent_eval_suite(&agent_id).await, 404, "NOT_FOUND");
    c.deploy_source(&SourceDeployRequest {
        project: "acme".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let agent = c.get_agent_config(&agent_id).await.unwrap();
    let suite = c.get_agent_eval_suite(&agent_id).await.unwrap();
    assert_eq!(agent.eval_suite_id.as_deref(), Some(suite.id.as_str()));
    assert_eq!((suite.name.as_str(), suite.threshold), ("support", 0.8));
    assert_eq!(c.list_eval_suites().await.unwrap(), vec![suite.clone()]);
    assert_eq!(c.get_eval_suite(&suite.id).await.unwrap(), suite);
    api_err(c.get_eval_suite("nope").await, 404, "NOT_FOUND");
    let versions = c.list_eval_suite_versions(&suite.id).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].semver, "1.0.0");
    assert_eq!(
        versions[0].case_ids,
        cases.iter().map(|c| c.id.clone()).collect::<Vec<_>>()
    );
    let version = c.list_agent_versions(&agent_id).await.unwrap().remove(0);
    assert_eq!(version.eval_suite_id.as_deref(), Some(suite.id.as_str()));
    assert_eq!(version.eval_suite_version.as_deref(), Some("1.0.0"));

    // One case at a time (TestOptions), so the fake's replies line up.
    fake.push(Reply::text("Hello there!"));
    fake.push(Reply::text("forty-two days"));
    fake.push(Reply::text("Refunds are possible within 30 days."));
    fake.push(Reply::text("I think it is good."));
    fake.push(Reply::text(
        "{\"score\": 8, \"reason\": \"It names the 30-day window.\"}",
    ));
    fake.push(Reply::tool_call("execute_js", json!({ "code": "1 + 1" })));
    fake.push(Reply::text("2"));
    fake.push(Reply::text("{\"days\": 30}"));
    let run = c.start_eval_run(&agent_id, false).await.unwrap();
    assert_eq!((run.status.as_str(), run.total_cases), ("pending", 5));
    assert_eq!(run.judge_model, "openai/gpt-test");
    let detail = finished(app, &run.id).await;
    let scored: Vec<(&str, i64, bool)> = detail
        .results
        .iter()
        .map(|r| (r.case_name.as_str(), r.score, r.pass))
        .collect();
    assert_eq!(
        scored,
        [
            ("greets", 10, true),
            ("digits", 0, false),
            ("refund", 8, true),
            ("computes", 10, true),
            ("shape", 10, true)
        ]
    );
    // 4 of 5 pass: exactly the suite's 0.8.
    assert_eq!(detail.run.status, "passed", "{detail:?}");
    assert_eq!((detail.run.passed, detail.run.failed), (4, 1));
    assert!((detail.run.average_score - 7.6).abs() < 1e-9);
    let refund = &detail.results[2];
    assert_eq!(refund.reasoning, "It names the 30-day window.");
    assert_eq!(refund.response, "Refunds are possible within 30 days.");
    assert!(detail.results[1].reasoning.contains("does not match"));
    assert_eq!(detail.results[3].tool_calls[0]["name"], "execute_js");
    assert_eq!(detail.results[0].tool_calls, json!([]));
    assert!(
        detail
            .results
            .iter()
            .all(|r| r.error.is_empty() && !r.session_id.is_empty())
    );
    // The judge saw the case's criteria and the answer; it was asked twice.
    let judge = fake
        .requests()
        .into_iter()
        .filter(|r| {
            r.body["messages"][0]["content"]
                .as_str()
                .is_some_and(|s| s.starts_with("You grade"))
        })
        .collect::<Vec<_>>();
    assert_eq!(judge.len(), 2);
    let asked = judge[0].body["messages"][1]["content"].as_str().unwrap();
    assert!(
        asked.contains("Mentions the 30-day window") && asked.contains("within 30 days"),
        "{asked}"
    );
    assert_eq!(judge[0].body["response_format"]["type"], "json_schema");

    assert_eq!(
        c.list_agent_eval_runs(&agent_id, None).await.unwrap()[0].id,
        run.id
    );
    assert_eq!(c.list_eval_runs().await.unwrap().len(), 1);
    api_err(c.cancel_eval_run(&run.id).await, 409, "run_ended");
    let metrics = c.get_metrics().await.unwrap();
    assert_eq!(
        (
            metrics.evals.total_runs,
            metrics.evals.completed_runs,
            metrics.evals.total_passed,
            metrics.evals.total_failed
        ),
        (1, 1, 4, 1)
    );

    // The draft's cases: a judge that answers garbage twice errors the case,
    // and a run below the threshold fails.
    c.sync_source(&manifest(&[(
        "evals/one.json",
        r#"{"name": "polite", "prompt": "Hi", "criteria": "Is polite"}"#,
    )]))
    .await
    .unwrap();
    fake.push(Reply::text("Hi!"));
    fake.push(Reply::text("ten out of ten"));
    fake.push(Reply::text("{\"score\": 12}"));
    let draft = c.start_eval_run(&agent_id, true).await.unwrap();
    let detail = finished(app, &draft.id).await;
    assert_eq!(
        (detail.run.status.as_str(), detail.run.target.as_str()),
        ("failed", "draft")
    );
    assert_eq!(detail.run.suite_version, None);
    assert_eq!(detail.results.len(), 1);
    assert!(
        detail.results[0].error.contains("the judge answered badly twice"),
        "{:?}",
        detail.results[0]
    );
    assert_eq!((detail.results[0].score, detail.results[0].pass), (0, false));
    // Live still runs the deployed cases.
    assert_eq!(
        c.get_eval_run(&run.id)
            .await
            .unwrap()
            .run
            .suite_version
            .as_deref(),
        Some("1.0.0")
    );

    // A case that hangs hits the time limit; a cancelled run keeps what
    // finished and says so.
    fake.push(Reply::hang());
    let slow = c.start_eval_run(&agent_id, true).await.unwrap();
    let detail = finished(app, &slow.id).await;
    assert!(
        detail.results[0].error.contains("time limit"),
        "{:?}",
        detail.results[0]
    );
    // Cancelled halfway: the case that ended is kept.
    c.sync_source(&manifest(&[(
        "evals/two.json",
        r#"[{"name": "quick", "prompt": "Hi", "type": "contains", "config": {"value": "hi"}},
            {"name": "stuck", "prompt": "Hello", "type": "contains", "config": {"value": "hi"}}]"#,
    )]))
    .await
    .unwrap();
    fake.push(Reply::text("hi there"));
    fake.push(Reply::hang());
    let asked = fake.request_count();
    let stopped = c.start_eval_run(&agent_id, true).await.unwrap();
    // Cancel once the first case is recorded and the second one's turn
    // has reached the (hanging) model.
    for _ in 0..300 {
        let recorded = !c.get_eval_run(&stopped.id).await.unwrap().results.is_empty();
        if recorded && fake.request_count() >= asked + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cancelled = c.cancel_eval_run(&stopped.id).await.unwrap();
    assert_eq!(cancelled.status, "cancelled");
    let detail = finished(app, &stopped.id).await;
    assert_eq!(detail.run.status, "cancelled");
    let kept: Vec<&str> = detail.results.iter().map(|r| r.case_name.as_str()).collect();
    assert_eq!(kept, ["quick"]);
    assert!(detail.run.finished_at.is_some());
    assert_eq!((detail.run.total_cases, detail.run.passed), (2, 1));

    // Another agent's suite can be pinned; an unknown one is 404; "" clears.
    api_err(
        c.update_agent_settings(
            &agent_id,
            &UpdateAgentSettings {
                eval_suite_id: Some("nope".into()),
                ..Default::default()
            },
        )
        .await,
        404,
        "NOT_FOUND",
    );
    let cleared = c
        .update_agent_settings(
            &agent_id,
            &UpdateAgentSettings {
                eval_suite_id: Some(String::new()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.eval_suite_id, None);
    api_err(c.start_eval_run(&agent_id, false).await, 409, "no_eval_suite");
    let pinned = c
        .update_agent_settings(
            &agent_id,
            &UpdateAgentSettings {
                eval_suite_id: Some(suite.id.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(pinned.eval_suite_id, Some(suite.id));

    // A deploy with runEvals starts the advisory run and names it.
    fake.push(Reply::text("hi"));
    fake.push(Reply::text("hi again"));
    let deployed = c
        .deploy_source(&SourceDeployRequest {
            project: "acme".into(),
            run_evals: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    let run_id = deployed.agents[0].eval_run_id.clone().expect("a run started");
    let detail = finished(app, &run_id).await;
    assert_eq!(
        (detail.run.status.as_str(), detail.run.suite_version.as_deref()),
        ("passed", Some("1.0.1"))
    );
    assert_eq!(detail.results.len(), 2);
}

/// At the default concurrency (several cases at once, each a session with
/// its writes) every case ends and is recorded.
async fn cases_run_at_once(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let cases: Vec<String> = (0..12)
        .map(|i| format!(r#"{{"name": "c{i}", "prompt": "Question {i}", "type": "contains", "config": {{"value": "ok"}}}}"#))
        .collect();
    let json = format!("[{}]", cases.join(","));
    let synced = c
        .sync_source(&manifest(&[("evals/many.json", &json)]))
        .await
        .unwrap();
    c.deploy_source(&SourceDeployRequest {
        project: "acme".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    fake.set_default(Reply::text("ok"));
    let run = c.start_eval_run(&synced.agents[0].agent_id, false).await.unwrap();
    let detail = finished(app, &run.id).await;
    assert_eq!(
        (detail.run.status.as_str(), detail.results.len()),
        ("passed", 12),
        "{detail:?}"
    );
    let mut names: Vec<&str> = detail.results.iter().map(|r| r.case_name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_run_at_once_sqlite() {
    let fake = FakeProvider::start().await;
    if let Some(app) = TestApp::start_with(Backend::Sqlite, fake_options(&fake)).await {
        cases_run_at_once(&app, &fake).await;
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_run_at_once_postgres() {
    let fake = FakeProvider::start().await;
    if let Some(app) = TestApp::start_with(Backend::Postgres, fake_options(&fake)).await {
        cases_run_at_once(&app, &fake).await;
        app.stop().await;
    }
}

async fn run(backend: Backend) {
    let fake = FakeProvider::start().await;
    let options = TestOptions {
        evals: kiln_core::evals::EvalSettings {
            concurrency: 1,
            case_timeout: Duration::from_secs(2),
            judge_model: None,
        },
        // Longer than the case time limit, which a hung provider meets first.
        provider_timeout: Duration::from_secs(10),
        ..fake_options(&fake)
    };
    let Some(app) = TestApp::start_with(backend, options).await else {
        return;
    };
    evals_gate_an_agent(&app, &fake).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evals_gate_an_agent_sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evals_gate_an_agent_postgres() {
    run(Backend::Postgres).await;
}
