//! CONTRACT §2.7 and §4.1: agent sessions, turns streamed over SSE, the
//! sandbox and its primitives, input requests, cancel, limits, faults, and
//! event streams that resume from a cursor, against the fake provider (and
//! the offline model).

use std::time::Duration;

use futures::StreamExt;
use kiln_core::runtime::RuntimeConfig;
use kiln_providers::fake::{FakeProvider, Reply};
use kiln_sdk::api::CreateSession;
use kiln_sdk::{TurnEvent, TurnEventKind, UploadOptions};
use serde_json::{Value, json};

use crate::client_tools::{
    an_unanswered_client_tool_times_out, client_tools_pause_the_turn_until_the_client_answers,
    run_with_tools_answers_every_call,
};
use crate::files::code_saves_files_that_clients_read;
use crate::harness::{Backend, TestApp, TestOptions, api_err};
use crate::mcp::{
    agents_reach_mcp_tools_with_their_vault_token, agents_reach_sse_mcp_servers,
    kiln_serves_its_project_over_mcp, mcp_servers_that_cannot_serve_are_issues,
    web_search_uses_the_projects_engine,
};
use crate::queue::{
    a_full_queue_refuses_more, concurrent_messages_run_once_each_across_servers,
    queued_turns_run_in_order_one_at_a_time, queued_turns_survive_a_restart_and_run_once,
};
use crate::realtime::{
    realtime_authenticates_by_header_or_token, realtime_sends_session_news_and_events_in_order,
    session_handles_follow_turns_and_the_queue_and_reconnect,
};
use crate::skills::{
    broken_skill_modules_are_refused_at_their_line, module_skills_run_in_the_sandbox_of_the_agents_sessions,
};
use crate::webhooks::{a_receiver_that_keeps_failing_is_given_up, webhooks_are_signed_retried_and_listed};

/// Generates a SQLite and a PostgreSQL test for each
/// `async fn(&TestApp, &FakeProvider)`, the fake being the project's
/// default model, with the given runtime settings.
/// `postgres_only` tests need several servers on one database, which
/// SQLite is not deployed as: they get no SQLite test (rather than one that
/// passes without running).
macro_rules! agent_tests {
    (postgres_only: $($name:ident => $runtime:expr),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run(Backend::Postgres, $runtime, |app, fake| Box::pin(super::$name(app, fake))).await;
            }
        }
    )*};
    ($($name:ident => $runtime:expr),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(Backend::Sqlite, $runtime, |app, fake| Box::pin(super::$name(app, fake))).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run(Backend::Postgres, $runtime, |app, fake| Box::pin(super::$name(app, fake))).await;
            }
        }
    )*};
}

type TestFn = for<'a> fn(&'a TestApp, &'a FakeProvider) -> futures::future::BoxFuture<'a, ()>;

async fn run(backend: Backend, runtime: RuntimeConfig, test: TestFn) {
    let fake = FakeProvider::start().await;
    let options = TestOptions {
        runtime,
        ..fake_options(&fake)
    };
    let Some(app) = TestApp::start_with(backend, options).await else {
        return;
    };
    test(&app, &fake).await;
    app.stop().await;
}

/// A server whose default model is the fake (set in the environment, as
/// an operator would).
pub(crate) fn fake_options(fake: &FakeProvider) -> TestOptions {
    TestOptions {
        provider_env: vec![
            ("openai_api_key", "test-key".to_owned()),
            ("openai_base_url", fake.openai_base_url()),
            ("default_model", "openai/gpt-test".to_owned()),
        ],
        ..TestOptions::default()
    }
}

fn defaults() -> RuntimeConfig {
    RuntimeConfig::default()
}

agent_tests!(postgres_only:
    a_reader_on_another_server_follows_and_controls_the_turn => defaults(),
);

agent_tests!(
    sessions_are_created_listed_and_deleted => defaults(),
    a_code_step_runs_in_the_sandbox_and_goes_back_to_the_model => defaults(),
    history_carries_across_turns => defaults(),
    a_long_history_is_cut_to_the_models_budget_and_the_model_is_told => RuntimeConfig {
        history: kiln_core::runtime::HistoryBudget {
            default_tokens: 100_000,
            // The fake's model: 300 bytes.
            models: vec![("openai/gpt-test".into(), 100)],
        },
        ..defaults()
    },
    fenced_code_and_faulty_code_are_contained => RuntimeConfig {
        sandbox: kiln_core::sandbox::SandboxLimits {
            time: Duration::from_millis(400),
            memory_bytes: 16 * 1024 * 1024,
            ..Default::default()
        },
        ..defaults()
    },
    limits_and_model_failures_end_the_turn_with_an_error => RuntimeConfig {
        max_steps: 2,
        ..defaults()
    },
    input_requests_pause_the_turn_until_answered => defaults(),
    time_and_token_limits_end_the_turn_and_idle_streams_get_heartbeats => RuntimeConfig {
        max_turn_time: Duration::from_millis(600),
        max_turn_tokens: 50,
        heartbeat: Duration::from_millis(100),
        ..defaults()
    },
    a_block_waiting_for_input_gives_back_its_slot => RuntimeConfig {
        max_concurrent_blocks: 1,
        ..defaults()
    },
    unanswered_input_times_out => RuntimeConfig {
        input_timeout: Duration::from_millis(400),
        ..defaults()
    },
    cancel_stops_a_running_turn => defaults(),
    a_busy_session_and_bad_runs_are_refused_before_streaming => defaults(),
    dropped_streams_resume_from_a_cursor => defaults(),
    primitives_reach_data_ai_fetch_and_search => defaults(),
    the_offline_model_searches_and_quotes => defaults(),
    function_call_tools_stream_as_tool_calls => defaults(),
    the_stream_is_framed_as_the_contract_says => defaults(),
    turns_of_a_dead_server_are_ended_at_the_next_start => defaults(),
    appends_are_numbered_under_the_turns_claim_or_not_written => defaults(),
    module_skills_run_in_the_sandbox_of_the_agents_sessions => defaults(),
    broken_skill_modules_are_refused_at_their_line => defaults(),
    agents_reach_mcp_tools_with_their_vault_token => defaults(),
    agents_reach_sse_mcp_servers => defaults(),
    mcp_servers_that_cannot_serve_are_issues => defaults(),
    kiln_serves_its_project_over_mcp => defaults(),
    web_search_uses_the_projects_engine => defaults(),
    queued_turns_run_in_order_one_at_a_time => defaults(),
    a_full_queue_refuses_more => defaults(),
    queued_turns_survive_a_restart_and_run_once => defaults(),
    concurrent_messages_run_once_each_across_servers => defaults(),
    client_tools_pause_the_turn_until_the_client_answers => defaults(),
    run_with_tools_answers_every_call => defaults(),
    webhooks_are_signed_retried_and_listed => defaults(),
    code_saves_files_that_clients_read => defaults(),
    a_receiver_that_keeps_failing_is_given_up => defaults(),
    realtime_sends_session_news_and_events_in_order => defaults(),
    realtime_authenticates_by_header_or_token => defaults(),
    session_handles_follow_turns_and_the_queue_and_reconnect => defaults(),
    run_input_and_cancel_are_audited => defaults(),
    session_data_is_capped => defaults(),
    host_calls_are_bounded_per_block_and_per_turn => RuntimeConfig {
        max_host_calls_per_turn: 40,
        ..defaults()
    },
    ai_calls_hold_their_tokens_before_they_start => RuntimeConfig {
        max_turn_tokens: 10_000,
        ..defaults()
    },
    sandbox_slots_are_shared_between_projects => RuntimeConfig {
        max_concurrent_blocks: 4,
        ..defaults()
    },
    paused_blocks_are_capped_per_server_and_project => RuntimeConfig {
        max_paused_blocks: 2,
        ..defaults()
    },
    a_blocks_fetches_are_bounded_by_its_memory => RuntimeConfig {
        sandbox: kiln_core::sandbox::SandboxLimits {
            memory_bytes: 8 * 1024 * 1024,
            ..Default::default()
        },
        ..defaults()
    },
    a_revoked_keys_turn_stops => RuntimeConfig {
        turn_lease: Duration::from_millis(600),
        ..defaults()
    },
    an_unanswered_client_tool_times_out => RuntimeConfig {
        input_timeout: Duration::from_millis(400),
        ..defaults()
    },
);

async fn session(app: &TestApp, input: CreateSession) -> String {
    app.client.create_session(&input).await.unwrap().id
}

async fn turn(app: &TestApp, id: &str, message: &str) -> Vec<TurnEvent> {
    app.client
        .run_agent(id, message)
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap()
}

/// Waits until the fake has received `count` requests in all: the model
/// is "thinking" on the last one (a condition, where a fixed sleep would
/// race the harness's provider timeout).
pub(crate) async fn asked(fake: &FakeProvider, count: usize) {
    for _ in 0..400 {
        if fake.request_count() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the model was asked {} times, not {count}", fake.request_count());
}

fn types(events: &[TurnEvent]) -> Vec<&str> {
    events.iter().map(|e| e.raw.kind.as_str()).collect()
}

fn code(js: &str) -> Reply {
    Reply::tool_call("execute_js", json!({ "code": js }))
}

/// The `execute_js_result` events' `(content, result, error)`.
fn results(events: &[TurnEvent]) -> Vec<(String, Option<Value>, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            TurnEventKind::ExecuteJsResult {
                content,
                result,
                error,
            } => Some((content.clone(), result.clone(), error.clone())),
            _ => None,
        })
        .collect()
}

fn terminal(events: &[TurnEvent]) -> &TurnEventKind {
    &events.last().expect("a terminal event").kind
}

fn error_code(events: &[TurnEvent]) -> String {
    match terminal(events) {
        TurnEventKind::Error { code, .. } => code.clone().unwrap_or_default(),
        other => panic!("expected an error event, got {other:?}"),
    }
}

async fn status(app: &TestApp, id: &str) -> String {
    app.client.get_session(id).await.unwrap().session.status
}

async fn sessions_are_created_listed_and_deleted(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let plain = c.create_session(&CreateSession::default()).await.unwrap();
    assert_eq!(plain.status, "active");
    assert_eq!(plain.model, "openai/gpt-test", "the project default");
    assert_eq!(plain.tools_config, json!({ "tools": [] }));
    assert_eq!(plain.metadata, json!({}));
    assert_eq!(plain.index_ids, None, "every index");
    assert_eq!((plain.step_count, plain.prompt_tokens), (0, 0));

    let index = c
        .create_index(&kiln_sdk::api::CreateIndex {
            name: "handbook".into(),
            description: Some("The staff handbook".into()),
            metadata: None,
        })
        .await
        .unwrap();
    let full = c
        .create_session(&CreateSession {
            title: Some("Support".into()),
            system_prompt: Some("You are a support agent".into()),
            model: Some("kiln/offline".into()),
            tools: Some(vec!["search".into(), "fetch".into()]),
            metadata: Some(json!({ "customer": 42, "tags": ["vip"] })),
            index_ids: Some(vec![index.id.clone()]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(full.title, "Support");
    assert_eq!(full.system_prompt, "You are a support agent");
    assert_eq!(full.model, "kiln/offline");
    assert_eq!(full.tools_config, json!({ "tools": ["search", "fetch"] }));
    assert_eq!(full.metadata, json!({ "customer": 42, "tags": ["vip"] }));
    assert_eq!(full.index_ids, Some(vec![index.id.clone()]));
    let none = c
        .create_session(&CreateSession {
            index_ids: Some(vec![]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        none.index_ids,
        Some(vec![]),
        "[] means no search, kept apart from null"
    );

    let unknown = api_err(
        c.create_session(&CreateSession {
            tools: Some(vec!["search".into(), "shell".into()]),
            ..Default::default()
        })
        .await,
        400,
        "unknown_tool",
    );
    assert!(
        unknown.message.contains("unknown tool: shell"),
        "{}",
        unknown.message
    );
    let refused = [
        (
            CreateSession {
                index_ids: Some(vec!["no-such-index".into()]),
                ..Default::default()
            },
            "validation_failed",
        ),
        (
            CreateSession {
                target: Some("staging".into()),
                ..Default::default()
            },
            "validation_failed",
        ),
        (
            CreateSession {
                model: Some("nonsense".into()),
                ..Default::default()
            },
            "validation_failed",
        ),
    ];
    for (input, code) in refused {
        api_err(c.create_session(&input).await, 400, code);
    }
    // An agent that does not exist (sessions on agents: tests/it/source.rs).
    let unknown_agent = CreateSession {
        agent_id: Some("agent-1".into()),
        ..Default::default()
    };
    api_err(c.create_session(&unknown_agent).await, 404, "NOT_FOUND");

    let listed: Vec<String> = c
        .list_sessions(None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        listed,
        [none.id.clone(), full.id.clone(), plain.id.clone()],
        "newest first"
    );
    let page: Vec<String> = c
        .list_sessions(Some(1), Some(1))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(page, vec![full.id.clone()]);

    let detail = c.get_session(&full.id).await.unwrap();
    assert_eq!(detail.session, full);
    assert!(detail.steps.is_empty());

    let prompt = c.agent_system_prompt().await.unwrap();
    for needle in [
        "execute_js",
        "await search(",
        "await input(",
        "data.set(",
        "handbook",
    ] {
        assert!(prompt.contains(needle), "the system prompt documents {needle}");
    }

    // Before any turn every session is active; then one turn ends done
    // (completed) and one fails (error): the three add up to the total.
    let metrics = c.get_metrics().await.unwrap();
    assert_eq!(
        (
            metrics.agents.total_sessions,
            metrics.agents.active_sessions,
            metrics.agents.completed_sessions,
            metrics.agents.error_sessions
        ),
        (3, 3, 0, 0)
    );
    fake.push(Reply::text("Done."));
    turn(app, &plain.id, "Finish").await;
    fake.push(Reply::status(400, "refused"));
    let failed = turn(app, &none.id, "Fail").await;
    assert_eq!(error_code(&failed), "upstream_error");
    let metrics = c.get_metrics().await.unwrap();
    assert_eq!(
        (
            metrics.agents.total_sessions,
            metrics.agents.active_sessions,
            metrics.agents.completed_sessions,
            metrics.agents.error_sessions
        ),
        (3, 1, 1, 1)
    );

    c.delete_session(&full.id).await.unwrap();
    api_err(c.get_session(&full.id).await, 404, "NOT_FOUND");
    let audit = c
        .list_audit_log(&kiln_sdk::api::AuditLogQuery {
            subject_type: Some("agent_session".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<(&str, &str)> = audit
        .entries
        .iter()
        .map(|e| (e.action.as_str(), e.subject_id.as_str()))
        .collect();
    assert!(
        actions.contains(&("agent_session.create", plain.id.as_str())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("agent_session.delete", full.id.as_str())),
        "{actions:?}"
    );
    api_err(c.delete_session(&full.id).await, 404, "NOT_FOUND");

    // Another project sees none of them.
    let (_, other) = app.key_for("elsewhere").await;
    assert!(other.list_sessions(None, None).await.unwrap().is_empty());
    api_err(other.get_session(&plain.id).await, 404, "NOT_FOUND");
    api_err(other.run_agent(&plain.id, "hi").await, 404, "NOT_FOUND");
}

async fn a_code_step_runs_in_the_sandbox_and_goes_back_to_the_model(app: &TestApp, fake: &FakeProvider) {
    fake.push(
        Reply::tool_calls(vec![(
            "execute_js",
            json!({ "code": "console.log('adding'); const y = 2; y + 2" }),
        )])
        .usage(100, 20),
    );
    fake.push(Reply::text("It is 4.").usage(130, 5));
    let id = session(app, CreateSession::default()).await;
    let events = turn(app, &id, "What is 2 + 2?").await;
    assert_eq!(
        types(&events),
        ["execute_js", "execute_js_result", "response", "done"]
    );
    match &events[0].kind {
        TurnEventKind::ExecuteJs { code, tokens } => {
            assert_eq!(code, "console.log('adding'); const y = 2; y + 2");
            assert_eq!(tokens.map(|t| (t.prompt, t.completion)), Some((100, 20)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(events[0].raw.tool.as_deref(), Some("execute_js"));
    assert_eq!(
        results(&events),
        [("Console:\nadding\n\nResult:\n4".to_owned(), Some(json!(4)), None)]
    );
    match &events[2].kind {
        TurnEventKind::Response { content, tokens } => {
            assert_eq!(content, "It is 4.");
            assert_eq!(tokens.map(|t| (t.prompt, t.completion)), Some((130, 5)));
        }
        other => panic!("{other:?}"),
    }
    match terminal(&events) {
        TurnEventKind::Done(summary) => {
            assert_eq!(summary.session_id, id);
            assert_eq!(summary.steps, 3, "execute_js, its result, the response");
            assert_eq!((summary.tokens.prompt, summary.tokens.completion), (230, 25));
        }
        other => panic!("{other:?}"),
    }
    // Sequence numbers rise by one; the user message took the first.
    let seqs: Vec<i64> = events.iter().map(|e| e.seq.unwrap()).collect();
    assert_eq!(seqs, [2, 3, 4, 5]);

    // The model got the sandbox's result as the tool call's answer.
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0].body;
    assert_eq!(first["tools"][0]["function"]["name"], "execute_js");
    assert_eq!(first["messages"][0]["role"], "system");
    assert!(
        first["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("execute_js")
    );
    let second = requests[1].body["messages"].as_array().unwrap();
    let tool = second
        .iter()
        .find(|m| m["role"] == "tool")
        .expect("a tool message");
    assert_eq!(tool["content"], "Console:\nadding\n\nResult:\n4");
    let call_id = second
        .iter()
        .find_map(|m| m["tool_calls"][0]["id"].as_str())
        .unwrap();
    assert_eq!(tool["tool_call_id"], call_id);

    // The session keeps the steps and the totals.
    let detail = app.client.get_session(&id).await.unwrap();
    assert_eq!(detail.session.status, "active");
    assert_eq!(
        (detail.session.prompt_tokens, detail.session.completion_tokens),
        (230, 25)
    );
    assert_eq!(detail.session.step_count, 4);
    let steps: Vec<(i64, &str)> = detail
        .steps
        .iter()
        .map(|s| (s.step_index, s.step_type.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            (0, "user_message"),
            (1, "execute_js"),
            (2, "execute_js_result"),
            (3, "response")
        ]
    );
    assert_eq!(detail.steps[0].content, "What is 2 + 2?");
    assert_eq!(detail.steps[1].tool_name, "execute_js");
    assert_eq!(detail.steps[1].prompt_tokens, 100);
}

async fn history_carries_across_turns(app: &TestApp, fake: &FakeProvider) {
    fake.push(code("'remembered'"));
    fake.push(Reply::text("First answer."));
    fake.push(Reply::text("Second answer."));
    let id = session(
        app,
        CreateSession {
            system_prompt: Some("You are terse.".into()),
            ..Default::default()
        },
    )
    .await;
    turn(app, &id, "First question").await;
    let events = turn(app, &id, "Second question").await;
    assert_eq!(types(&events), ["response", "done"]);
    let messages = fake.requests()[2].body["messages"].clone();
    let roles: Vec<&str> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "tool", "assistant", "user"]
    );
    assert!(
        messages[0]["content"]
            .as_str()
            .unwrap()
            .ends_with("You are terse.\n")
    );
    assert_eq!(messages[1]["content"], "First question");
    assert_eq!(messages[3]["content"], "remembered");
    assert_eq!(messages[4]["content"], "First answer.");
    assert_eq!(messages[5]["content"], "Second question");
}

/// A session longer than its model's budget: each request holds the newest
/// messages within it, the first telling the model that earlier ones are
/// left out, and the cut moves in steps (several requests in a row start
/// the same way), not a turn at a time.
async fn a_long_history_is_cut_to_the_models_budget_and_the_model_is_told(
    app: &TestApp,
    fake: &FakeProvider,
) {
    let id = session(app, CreateSession::default()).await;
    let turns = 16;
    for n in 0..turns {
        fake.push(Reply::text(format!("Answer {n}.")));
        turn(app, &id, &format!("Question {n}, asked at some length.")).await;
    }
    let requests = fake.requests();
    assert_eq!(requests.len(), turns);
    let mut firsts = Vec::new();
    for (n, request) in requests.iter().enumerate() {
        let messages = request.body["messages"].as_array().unwrap();
        let texts: Vec<&str> = messages[1..]
            .iter()
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        assert_eq!(
            *texts.last().unwrap(),
            format!("Question {n}, asked at some length."),
            "the newest message is sent"
        );
        let note = texts[0].starts_with("[Earlier messages of this session are left out");
        let bytes: usize = texts.iter().map(|t| t.len() + 12).sum();
        let note_bytes = if note {
            texts[0].find("\n\n").unwrap() + 2
        } else {
            0
        };
        assert!(bytes - note_bytes <= 300, "request {n}: {bytes} bytes of history");
        if n < 3 {
            assert!(!note, "request {n} has all of the history: {texts:?}");
            assert_eq!(texts.len(), 2 * n + 1);
        }
        if note {
            assert!(texts[0].ends_with("asked at some length."), "{texts:?}");
        }
        firsts.push(texts[0].to_owned());
    }
    assert!(firsts.last().unwrap().starts_with("[Earlier messages"));
    let starts: std::collections::BTreeSet<&String> = firsts.iter().collect();
    assert!(
        starts.len() < turns / 2,
        "the start moved {} times in {turns} turns",
        starts.len()
    );
    // The log keeps everything.
    let steps = app.client.get_session(&id).await.unwrap().steps;
    let questions = steps.iter().filter(|s| s.step_type == "user_message").count();
    assert_eq!(questions, turns);
}

async fn fenced_code_and_faulty_code_are_contained(app: &TestApp, fake: &FakeProvider) {
    fake.push(Reply::text("Let me loop.\n```js\nwhile (true) {}\n```"));
    fake.push(code("const a = []; while (true) a.push('x'.repeat(1e5));"));
    fake.push(code("function f() { return f() + 1 } f()"));
    fake.push(code("throw new TypeError('bad input')"));
    fake.push(code("console.log('y'.repeat(200000)); 'big'.repeat(20000)"));
    fake.push(code("this is not javascript"));
    fake.push(Reply::text("I give up."));
    let id = session(app, CreateSession::default()).await;
    let events = turn(app, &id, "Break things").await;
    match &events[0].kind {
        TurnEventKind::SandboxEvent {
            kind,
            summary,
            content,
            ..
        } => {
            assert_eq!((kind.as_str(), summary.as_str()), ("llm", "Let me loop."));
            assert_eq!(content, "Let me loop.");
        }
        other => panic!("text before a fenced block is a sandbox_event: {other:?}"),
    }
    assert_eq!(events[1].raw.content.as_deref(), Some("while (true) {}"));
    let results = results(&events);
    assert_eq!(results.len(), 6);
    let errors: Vec<String> = results.iter().map(|r| r.2.clone().unwrap_or_default()).collect();
    assert_eq!(errors[0], "the code ran past its time limit");
    assert_eq!(errors[1], "the code ran out of memory");
    assert_eq!(errors[2], "maximum call stack size exceeded");
    assert_eq!(errors[3], "TypeError: bad input");
    assert_eq!(errors[4], "", "huge output is cut, not an error");
    assert!(errors[5].starts_with("SyntaxError"), "{}", errors[5]);
    assert_eq!(results[3].0, "Error: TypeError: bad input");
    let big = &results[4];
    assert!(big.0.len() <= 16 * 1024 && big.0.ends_with("[truncated]"));
    assert!(big.1.as_ref().unwrap().as_str().unwrap().ends_with("[truncated]"));
    assert_eq!(types(&events).last(), Some(&"done"));
    // The fenced result went back as text.
    let second = fake.requests()[1].body["messages"].clone();
    let last = second.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["role"], "user");
    assert!(
        last["content"]
            .as_str()
            .unwrap()
            .starts_with("Result of your code:\nError: the code ran past")
    );
    // The server is fine.
    fake.push(Reply::text("ok"));
    assert_eq!(types(&turn(app, &id, "again").await), ["response", "done"]);
}

async fn limits_and_model_failures_end_the_turn_with_an_error(app: &TestApp, fake: &FakeProvider) {
    let id = session(app, CreateSession::default()).await;
    fake.push(code("1"));
    fake.push(code("2"));
    let events = turn(app, &id, "Loop forever").await;
    assert_eq!(fake.request_count(), 2, "two model calls");
    assert_eq!(error_code(&events), "step_limit");
    assert_eq!(status(app, &id).await, "error");
    assert_eq!(results(&events).len(), 2, "two steps ran");

    // The session takes the next turn; a provider failure mid-turn is an
    // error event, not a broken stream.
    fake.push(code("1 + 1"));
    fake.push(Reply::status(500, "boom"));
    fake.push(Reply::status(500, "boom"));
    fake.push(Reply::status(500, "boom"));
    let events = turn(app, &id, "Try").await;
    assert_eq!(error_code(&events), "upstream_error");
    let TurnEventKind::Error { message, .. } = terminal(&events) else {
        unreachable!()
    };
    assert!(message.contains("500"), "{message}");
    assert_eq!(status(app, &id).await, "error");

    fake.push(Reply::text("fine"));
    let events = turn(app, &id, "Again").await;
    assert_eq!(types(&events), ["response", "done"]);
    assert_eq!(status(app, &id).await, "active");
    let detail = app.client.get_session(&id).await.unwrap();
    assert!(
        detail
            .steps
            .iter()
            .all(|s| s.step_type != "error" && s.step_type != "done"),
        "terminal events are not steps"
    );
}

/// Reads events until `pred` holds, returning them.
pub(crate) async fn read_until(
    stream: &mut kiln_sdk::AgentEventStream,
    pred: impl Fn(&TurnEvent) -> bool,
) -> Vec<TurnEvent> {
    let mut seen = Vec::new();
    while let Some(item) = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10 s")
    {
        let event = item.unwrap();
        let stop = pred(&event);
        seen.push(event);
        if stop {
            break;
        }
    }
    seen
}

fn input_request(event: &TurnEvent) -> kiln_sdk::InputRequest {
    match &event.kind {
        TurnEventKind::InputRequest(request) => request.clone(),
        other => panic!("expected an input request, got {other:?}"),
    }
}

async fn input_requests_pause_the_turn_until_answered(app: &TestApp, fake: &FakeProvider) {
    fake.push(code(
        "const ok = await input({ type: 'confirm', message: 'Proceed?' });\n\
         const pick = await input({ type: 'choice', message: 'Pick one', options: ['a', 'b'] });\n\
         const name = await input('Your name?');\n\
         ({ ok, pick, name })",
    ));
    fake.push(Reply::text("Thanks."));
    let c = &app.client;
    let id = session(app, CreateSession::default()).await;
    let mut stream = c.run_agent(&id, "Ask me things").await.unwrap();
    let seen = read_until(&mut stream, |e| e.raw.kind == "input_request").await;
    let confirm = input_request(seen.last().unwrap());
    assert_eq!(confirm.input_type, kiln_sdk::InputType::Confirm);
    assert_eq!(confirm.message, "Proceed?");
    assert_eq!(seen.last().unwrap().raw.content.as_deref(), Some("Proceed?"));
    assert_eq!(
        seen.last().unwrap().raw.args.as_ref().unwrap()["options"],
        json!([])
    );
    assert_eq!(status(app, &id).await, "awaiting_input");

    api_err(
        c.respond_to_input(&id, &confirm.request_id, json!("yes")).await,
        400,
        "validation_failed",
    );
    api_err(
        c.respond_to_input(&id, "no-such-request", json!(true)).await,
        404,
        "NOT_FOUND",
    );
    api_err(
        c.respond_to_input("no-such-session", &confirm.request_id, json!(true))
            .await,
        404,
        "NOT_FOUND",
    );
    c.respond_to_input(&id, &confirm.request_id, json!(true))
        .await
        .unwrap();
    api_err(
        c.respond_to_input(&id, &confirm.request_id, json!(true)).await,
        400,
        "input_already_answered",
    );

    let seen = read_until(&mut stream, |e| e.raw.kind == "input_request").await;
    let choice = input_request(seen.last().unwrap());
    assert_eq!(choice.options, ["a", "b"]);
    api_err(
        c.respond_to_input(&id, &choice.request_id, json!("z")).await,
        400,
        "validation_failed",
    );
    c.respond_to_input(&id, &choice.request_id, json!("b"))
        .await
        .unwrap();

    let seen = read_until(&mut stream, |e| e.raw.kind == "input_request").await;
    let text = input_request(seen.last().unwrap());
    assert_eq!(text.input_type, kiln_sdk::InputType::Text);
    api_err(
        c.respond_to_input(&id, &text.request_id, json!(5)).await,
        400,
        "validation_failed",
    );
    c.respond_to_input(&id, &text.request_id, json!("Ada"))
        .await
        .unwrap();

    let rest = read_until(&mut stream, TurnEvent::is_terminal).await;
    assert_eq!(
        results(&rest),
        [(
            r#"{"name":"Ada","ok":true,"pick":"b"}"#.to_owned(),
            Some(json!({ "ok": true, "pick": "b", "name": "Ada" })),
            None
        )]
    );
    assert!(matches!(terminal(&rest), TurnEventKind::Done(_)));
    assert_eq!(status(app, &id).await, "active");
}

async fn unanswered_input_times_out(app: &TestApp, fake: &FakeProvider) {
    fake.push(code("await input('Anyone there?')"));
    let id = session(app, CreateSession::default()).await;
    let events = turn(app, &id, "Ask").await;
    assert!(types(&events).contains(&"input_request"));
    assert_eq!(error_code(&events), "input_timeout");
    assert_eq!(status(app, &id).await, "error");
}

async fn cancel_stops_a_running_turn(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let id = session(app, CreateSession::default()).await;
    api_err(c.cancel_session(&id).await, 409, "not_running");

    // While the model is thinking (the upstream request is aborted).
    fake.push(Reply::hang());
    let before = fake.request_count();
    let mut stream = c.run_agent(&id, "Think hard").await.unwrap();
    asked(fake, before + 1).await;
    let cancelled = c.cancel_session(&id).await.unwrap();
    assert!(cancelled.ok);
    assert_eq!(cancelled.session.status, "active");
    let events = read_until(&mut stream, TurnEvent::is_terminal).await;
    assert_eq!(error_code(&events), "cancelled");
    assert!(stream.next().await.is_none(), "nothing after the terminal event");
    api_err(c.cancel_session(&id).await, 409, "not_running");

    // While code runs in the sandbox.
    fake.push(code("while (true) {}"));
    let mut stream = c.run_agent(&id, "Spin").await.unwrap();
    read_until(&mut stream, |e| e.raw.kind == "execute_js").await;
    c.cancel_session(&id).await.unwrap();
    let events = read_until(&mut stream, TurnEvent::is_terminal).await;
    assert_eq!(error_code(&events), "cancelled");

    // While waiting for input; then the session takes turns again.
    fake.push(code("await input('Sure?')"));
    let mut stream = c.run_agent(&id, "Ask").await.unwrap();
    let seen = read_until(&mut stream, |e| e.raw.kind == "input_request").await;
    let request = input_request(seen.last().unwrap());
    assert_eq!(c.cancel_session(&id).await.unwrap().session.status, "active");
    assert_eq!(
        error_code(&read_until(&mut stream, TurnEvent::is_terminal).await),
        "cancelled"
    );
    api_err(
        c.respond_to_input(&id, &request.request_id, json!("yes")).await,
        400,
        "input_expired",
    );
    fake.push(Reply::text("back"));
    assert_eq!(types(&turn(app, &id, "hello").await), ["response", "done"]);
    // The calls cancelled turns left without a result were answered in the
    // history (function-calling APIs refuse a call without one).
    let messages = fake.requests().last().unwrap().body["messages"].clone();
    let ended = messages
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool" && m["content"] == "The turn ended before this call finished.")
        .count();
    assert_eq!(ended, 2, "{messages:#}");

    // Deleting a session ends its running turn for every reader.
    fake.push(Reply::hang());
    let before = fake.request_count();
    let stream = c.run_agent(&id, "Think").await.unwrap();
    asked(fake, before + 1).await;
    c.delete_session(&id).await.unwrap();
    let events = tokio::time::timeout(Duration::from_secs(5), stream.collect_turn())
        .await
        .expect("the stream ends")
        .unwrap();
    assert_eq!(error_code(&events), "session_deleted");
}

async fn a_busy_session_and_bad_runs_are_refused_before_streaming(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let id = session(app, CreateSession::default()).await;
    api_err(c.run_agent(&id, "").await, 400, "validation_failed");
    api_err(c.run_agent(&id, "   ").await, 400, "validation_failed");
    api_err(c.run_agent("no-such-session", "hi").await, 404, "NOT_FOUND");
    api_err(c.resume_events("no-such-session", 0).await, 404, "NOT_FOUND");
    api_err(c.cancel_session("no-such-session").await, 404, "NOT_FOUND");

    fake.push(Reply::text("slow").delay(Duration::from_millis(700)));
    let stream = c.run_agent(&id, "first").await.unwrap();
    let busy = api_err(c.run_agent(&id, "second").await, 409, "run_in_progress");
    assert!(busy.message.contains("already running"));
    let events = stream.collect_turn().await.unwrap();
    assert_eq!(types(&events), ["response", "done"]);
    fake.push(Reply::text("now"));
    assert_eq!(types(&turn(app, &id, "second").await), ["response", "done"]);
}

async fn dropped_streams_resume_from_a_cursor(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    fake.push(code("const a = await input('First?'); a"));
    fake.push(Reply::text("Got it."));
    let id = session(app, CreateSession::default()).await;
    let mut stream = c.run_agent(&id, "Ask once").await.unwrap();
    assert_eq!(
        stream.last_seq(),
        Some(1),
        "the user message's number, from the response header"
    );
    let seen = read_until(&mut stream, |e| e.raw.kind == "input_request").await;
    let request = input_request(seen.last().unwrap());
    let cursor = seen.last().unwrap().seq.unwrap();
    drop(stream);

    // The turn went on without a reader.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(status(app, &id).await, "awaiting_input");
    // A replay from the start gives the same events.
    let mut replay = c.resume_events(&id, 0).await.unwrap();
    let replayed = read_until(&mut replay, |e| e.raw.kind == "input_request").await;
    assert_eq!(replayed, seen);
    drop(replay);

    let mut resumed = c.resume_events(&id, cursor).await.unwrap();
    c.respond_to_input(&id, &request.request_id, json!("yes"))
        .await
        .unwrap();
    let rest = read_until(&mut resumed, TurnEvent::is_terminal).await;
    assert_eq!(rest[0].seq, Some(cursor + 1), "nothing missed, nothing repeated");
    assert_eq!(
        types(&rest),
        ["sandbox_event", "execute_js_result", "response", "done"]
    );

    // After the turn: the replay ends at its terminal event, and a cursor
    // at the end gives an empty stream.
    let all = c
        .resume_events(&id, 0)
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();
    assert_eq!(all.len(), seen.len() + rest.len());
    let last = rest.last().unwrap().seq.unwrap();
    let body = app
        .http()
        .get(app.url(&format!("/api/sdk/agents/{id}/events")))
        .header("X-API-Key", &app.key)
        .header("Last-Event-ID", last.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!body.contains("data: "), "{body}");
    let body = app
        .http()
        .get(app.url(&format!("/api/sdk/agents/{id}/events")))
        .header("X-API-Key", &app.key)
        .header("Last-Event-ID", (last - 1).to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains(&format!("id: {last}\nevent: done\ndata: ")),
        "{body}"
    );
}

async fn primitives_reach_data_ai_fetch_and_search(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
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
            b"# Passwords\n\nTo reset your password open Settings, then Security, then Reset password."
                .to_vec(),
            &UploadOptions::default(),
        )
        .await
        .unwrap();
    c.wait_for_document(&doc.id, Duration::from_secs(20))
        .await
        .unwrap();

    let models_url = format!("{}/v1/models", fake.base_url());
    fake.push(code(&format!(
        "await data.set('plan', {{ step: 1 }});\n\
         const plan = await data.get('plan');\n\
         const summary = await ai('Summarise: hello');\n\
         const hits = await search('reset password', {{ top_k: 2 }});\n\
         const page = await fetch({models_url:?});\n\
         ({{ plan, summary, source: hits[0].source, status: page.status, models: page.json.data.length > 0 }})"
    ))
    .usage(11, 13));
    fake.push(Reply::text("A summary.").usage(7, 3));
    fake.push(Reply::text("Done.").usage(17, 19));
    let id = session(app, CreateSession::default()).await;
    let events = turn(app, &id, "Use everything").await;
    let kinds: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            TurnEventKind::SandboxEvent { kind, .. } => Some(kind.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["data", "data", "ai", "search", "fetch"]);
    let update = events.iter().find(|e| e.raw.kind == "data_update").unwrap();
    assert_eq!(
        update.raw.args,
        json!({ "plan": { "step": 1 } }).as_object().cloned()
    );
    let ai = events
        .iter()
        .find(|e| matches!(&e.kind, TurnEventKind::SandboxEvent { kind, .. } if kind == "ai"))
        .unwrap();
    assert_eq!(ai.raw.tokens.map(|t| (t.prompt, t.completion)), Some((7, 3)));
    assert_eq!(ai.raw.content.as_deref(), Some("A summary."));
    let search = events
        .iter()
        .find(|e| matches!(&e.kind, TurnEventKind::SandboxEvent { kind, .. } if kind == "search"))
        .unwrap();
    assert_eq!(
        search.raw.args.as_ref().unwrap()["summary"],
        "\"reset password\" → 1 result"
    );
    assert_eq!(
        results(&events)[0].1,
        Some(
            json!({ "plan": { "step": 1 }, "summary": "A summary.", "source": "reset.md", "status": 200, "models": true })
        )
    );
    match terminal(&events) {
        // The two steps' tokens and ai()'s.
        TurnEventKind::Done(summary) => assert_eq!(
            (summary.tokens.prompt, summary.tokens.completion),
            (11 + 7 + 17, 13 + 3 + 19)
        ),
        other => panic!("{other:?}"),
    }

    // A session without search, and one scoped to another index.
    let other = c
        .create_index(&kiln_sdk::api::CreateIndex {
            name: "other".into(),
            description: None,
            metadata: None,
        })
        .await
        .unwrap();
    for (scope, expected) in [
        (Some(vec![]), "search is disabled in this session"),
        (Some(vec![other.id.clone()]), "[]"),
    ] {
        fake.push(code(
            "try { JSON.stringify(await search('reset password')) } catch (e) { e.message }",
        ));
        fake.push(Reply::text("ok"));
        let id = session(
            app,
            CreateSession {
                index_ids: scope,
                ..Default::default()
            },
        )
        .await;
        let events = turn(app, &id, "Search").await;
        let content = &results(&events)[0].0;
        assert!(content.contains(expected), "{content}");
    }
}

async fn the_stream_is_framed_as_the_contract_says(app: &TestApp, fake: &FakeProvider) {
    fake.push(Reply::text("Thinking first.\n```js\n'line one\\nline two'\n```"));
    // Control characters take six bytes each once escaped.
    fake.push(code(
        "console.log('\\u0001'.repeat(30000)); '\\u0002'.repeat(30000)",
    ));
    fake.push(Reply::text("Answer with\na newline."));
    let id = session(app, CreateSession::default()).await;
    let response = app
        .http()
        .post(app.url(&format!("/api/sdk/agents/{id}/run")))
        .header("X-API-Key", &app.key)
        .header("Accept", "text/event-stream")
        .json(&json!({ "message": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(header("content-type").as_deref(), Some("text/event-stream"));
    assert_eq!(header("cache-control").as_deref(), Some("no-cache"));
    assert_eq!(header("x-accel-buffering").as_deref(), Some("no"));
    let body = response.text().await.unwrap();
    assert!(body.ends_with("\n\n"));
    let events: Vec<&str> = body.trim_end().split("\n\n").collect();
    let mut names = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let lines: Vec<&str> = event.lines().collect();
        assert_eq!(lines.len(), 3, "id, event, one data line: {event:?}");
        assert_eq!(lines[0], format!("id: {}", i + 2));
        let name = lines[1].strip_prefix("event: ").expect("event: with a space");
        let data = lines[2].strip_prefix("data: ").expect("data: with a space");
        let json: Value = serde_json::from_str(data).unwrap();
        assert_eq!(json["type"], name, "the event name is the type");
        assert!(data.len() < 64 * 1024);
        names.push(name.to_owned());
    }
    assert_eq!(
        names,
        [
            "sandbox_event",
            "execute_js",
            "execute_js_result",
            "execute_js",
            "execute_js_result",
            "response",
            "done"
        ]
    );
    assert!(
        body.lines().all(|l| l.len() < 64 * 1024),
        "every line under 64 KiB"
    );
    assert!(!body.contains("\r"));
    let done: Value =
        serde_json::from_str(events[6].lines().nth(2).unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(done["summary"]["session_id"], id.as_str());
    assert_eq!(
        done.as_object().unwrap().len(),
        2,
        "only type and summary: {done}"
    );
    assert!(done.get("tokens").is_none());
}

async fn a_reader_on_another_server_follows_and_controls_the_turn(app: &TestApp, fake: &FakeProvider) {
    let (_replica, other, _dir) = app.replica(0).await;
    fake.push(code("await input({ type: 'confirm', message: 'Go?' })"));
    fake.push(Reply::text("Went."));
    let id = session(app, CreateSession::default()).await;
    let mut stream = app.client.run_agent(&id, "Ask").await.unwrap();
    let seen = read_until(&mut stream, |e| e.raw.kind == "input_request").await;
    let request = input_request(seen.last().unwrap());
    drop(stream);

    // The replica replays, is answered, and follows the turn to its end.
    let mut remote = other.resume_events(&id, 0).await.unwrap();
    let replayed = read_until(&mut remote, |e| e.raw.kind == "input_request").await;
    assert_eq!(replayed, seen);
    other
        .respond_to_input(&id, &request.request_id, json!(true))
        .await
        .unwrap();
    let rest = read_until(&mut remote, TurnEvent::is_terminal).await;
    assert!(matches!(terminal(&rest), TurnEventKind::Done(_)));
    assert_eq!(results(&rest)[0].1, Some(json!(true)));

    // A cancel sent to the replica stops a turn running here.
    fake.push(Reply::hang());
    let before = fake.request_count();
    let stream = app.client.run_agent(&id, "Think").await.unwrap();
    asked(fake, before + 1).await;
    let cancelled = other.cancel_session(&id).await.unwrap();
    assert_eq!(cancelled.session.status, "active");
    let events = stream.collect_turn().await.unwrap();
    assert_eq!(error_code(&events), "cancelled");
    let codes: Vec<_> = events.iter().filter(|e| e.is_terminal()).collect();
    assert_eq!(codes.len(), 1, "exactly one terminal event");
}

async fn turns_of_a_dead_server_are_ended_at_the_next_start(app: &TestApp, _fake: &FakeProvider) {
    use kiln_core::runtime::store::{AgentStore, BeginTurn, NewEvent};
    let id = session(app, CreateSession::default()).await;
    // A server claimed a turn, wrote its first event, and died.
    let store = app.second_store().await;
    let detail = app.client.get_session(&id).await.unwrap();
    let project = kiln_core::ids::ProjectId::from_string(detail.session.project_id.clone());
    let sid = kiln_core::ids::SessionId::from_string(id.clone());
    let turn = kiln_core::ids::TurnId::generate();
    let expired = chrono::Utc::now() - chrono::Duration::seconds(5);
    let first = NewEvent {
        body: kiln_core::runtime::EventBody::UserMessage {
            content: "lost".into(),
        },
        duration_ms: 0,
        at: chrono::Utc::now(),
        status: None,
        totals: None,
    };
    let begun = store
        .begin_turn(&project, &sid, &turn, expired, Some(&first))
        .await
        .unwrap();
    assert!(matches!(begun, BeginTurn::Started(Some(_))), "{begun:?}");
    store.close().await;
    assert_eq!(status(app, &id).await, "running");
    api_err(app.client.run_agent(&id, "hi").await, 409, "run_in_progress");

    // The next server to start ends it; readers see the terminal event.
    let (_replica, _client, _dir) = app.replica(0).await;
    assert_eq!(status(app, &id).await, "error");
    let events = app
        .client
        .resume_events(&id, 0)
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();
    assert_eq!(error_code(&events), "interrupted");
    let _ = app
        .client
        .run_agent(&id, "hi")
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();
}

/// The store's appends (each one round trip): numbered in order under the
/// turn's claim, all of a call's events or none, and nothing at all from a
/// turn that does not hold the session.
async fn appends_are_numbered_under_the_turns_claim_or_not_written(app: &TestApp, _fake: &FakeProvider) {
    use kiln_core::runtime::store::{AgentStore, BeginTurn, NewEvent, TurnTotals};
    use kiln_core::runtime::{EventBody, SessionStatus};
    let id = session(app, CreateSession::default()).await;
    let store = app.second_store().await;
    let detail = app.client.get_session(&id).await.unwrap();
    let project = kiln_core::ids::ProjectId::from_string(detail.session.project_id.clone());
    let sid = kiln_core::ids::SessionId::from_string(id.clone());
    let (mine, other) = (
        kiln_core::ids::TurnId::generate(),
        kiln_core::ids::TurnId::generate(),
    );
    let lease = chrono::Utc::now() + chrono::Duration::seconds(60);
    let update = |key: &str| NewEvent {
        body: EventBody::DataUpdate {
            changes: serde_json::Map::from_iter([(key.to_owned(), json!(1))]),
        },
        duration_ms: 1,
        at: chrono::Utc::now(),
        status: None,
        totals: None,
    };
    let seqs =
        |events: &[kiln_core::runtime::event::StoredEvent]| events.iter().map(|e| e.seq).collect::<Vec<_>>();
    let logged = || async {
        let events = store.events_after(&project, &sid, 0, 100).await.unwrap();
        seqs(&events)
    };

    let begun = store
        .begin_turn(
            &project,
            &sid,
            &mine,
            lease,
            Some(&NewEvent::user_message("hi", chrono::Utc::now())),
        )
        .await
        .unwrap();
    let BeginTurn::Started(Some(first)) = begun else {
        panic!("{begun:?}")
    };
    assert_eq!(first.seq, 1);
    assert_eq!(logged().await, [1]);

    // Another turn can neither take the session nor write to it.
    let refused = store
        .begin_turn(
            &project,
            &sid,
            &other,
            lease,
            Some(&NewEvent::user_message("no", chrono::Utc::now())),
        )
        .await
        .unwrap();
    assert!(matches!(refused, BeginTurn::Busy), "{refused:?}");
    for events in [vec![update("a")], vec![update("a"), update("b")]] {
        let written = store
            .append_events(&project, &sid, &other, &events)
            .await
            .unwrap();
        assert!(written.is_none(), "{written:?}");
    }
    assert_eq!(logged().await, [1]);

    // The holder's events are numbered in order, one call's together.
    let one = store
        .append_events(&project, &sid, &mine, &[update("a")])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seqs(&one), [2]);
    let mut done = update("end");
    done.body = EventBody::Done {
        steps: 1,
        tokens: Default::default(),
    };
    done.status = Some(SessionStatus::Active);
    done.totals = Some(TurnTotals {
        usage: Default::default(),
        duration_ms: 5,
    });
    let end = store
        .append_events(&project, &sid, &mine, &[update("b"), update("c"), done])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seqs(&end), [3, 4, 5]);
    let stored = store.events_after(&project, &sid, 1, 100).await.unwrap();
    assert_eq!(seqs(&stored), [2, 3, 4, 5]);
    assert_eq!(stored[3].body, end[2].body);
    assert_eq!(
        stored.iter().map(|e| e.id.clone()).collect::<Vec<_>>()[1..],
        end.iter().map(|e| e.id.clone()).collect::<Vec<_>>()
    );
    let session = store.get_session(&project, &sid).await.unwrap().unwrap();
    assert_eq!(
        (session.last_seq, session.status, session.turn_id),
        (5, SessionStatus::Active, None)
    );

    // The ended turn's claim is gone: it writes nothing more.
    let late = store
        .append_events(&project, &sid, &mine, &[update("late")])
        .await
        .unwrap();
    assert!(late.is_none(), "{late:?}");
    assert_eq!(logged().await, [1, 2, 3, 4, 5]);
    store.close().await;
    assert_eq!(status(app, &id).await, "active");
}

async fn the_offline_model_searches_and_quotes(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let index = c
        .create_index(&kiln_sdk::api::CreateIndex {
            name: "help".into(),
            description: None,
            metadata: None,
        })
        .await
        .unwrap();
    for (name, text) in [
        (
            "reset.md",
            "# Passwords\n\nTo reset your password open Settings, then Security, then Reset password.",
        ),
        (
            "billing.md",
            "# Billing\n\nInvoices are sent on the first day of each month.",
        ),
    ] {
        let doc = c
            .upload_document_bytes(
                &index.id,
                name,
                text.as_bytes().to_vec(),
                &UploadOptions::default(),
            )
            .await
            .unwrap();
        c.wait_for_document(&doc.id, Duration::from_secs(20))
            .await
            .unwrap();
    }
    let id = session(
        app,
        CreateSession {
            model: Some("kiln/offline".into()),
            system_prompt: Some("You are a support agent".into()),
            ..Default::default()
        },
    )
    .await;
    let events = turn(app, &id, "How do I reset my password?").await;
    assert_eq!(
        types(&events),
        [
            "sandbox_event",
            "execute_js",
            "sandbox_event",
            "execute_js_result",
            "response",
            "done"
        ]
    );
    assert!(
        events[1]
            .raw
            .content
            .as_deref()
            .unwrap()
            .contains("search(\"How do I reset my password?\"")
    );
    let hits = results(&events)[0].1.clone().unwrap();
    assert_eq!(hits[0]["source"], "reset.md");
    let TurnEventKind::Response { content, .. } = &events[4].kind else {
        unreachable!()
    };
    assert!(
        content.contains("open Settings, then Security") && content.contains("reset.md"),
        "{content}"
    );
    assert_eq!(fake.request_count(), 0, "the offline model needs no provider");
}

async fn a_block_waiting_for_input_gives_back_its_slot(app: &TestApp, fake: &FakeProvider) {
    // One block may run at a time on this server.
    fake.push(code("await input('Wait for me?')"));
    fake.push(code("6 * 7"));
    fake.push(Reply::text("42"));
    fake.push(Reply::text("Thanks."));
    let c = &app.client;
    let waiting = session(app, CreateSession::default()).await;
    let mut stream = c.run_agent(&waiting, "Ask").await.unwrap();
    let seen = read_until(&mut stream, |e| e.raw.kind == "input_request").await;
    let request = input_request(seen.last().unwrap());

    let other = session(app, CreateSession::default()).await;
    let events = tokio::time::timeout(Duration::from_secs(10), turn(app, &other, "Compute"))
        .await
        .expect("the other session's block runs while the first waits");
    assert_eq!(results(&events)[0].1, Some(json!(42)));

    c.respond_to_input(&waiting, &request.request_id, json!("yes"))
        .await
        .unwrap();
    let rest = read_until(&mut stream, TurnEvent::is_terminal).await;
    assert_eq!(results(&rest)[0].1, Some(json!("yes")));
}

async fn time_and_token_limits_end_the_turn_and_idle_streams_get_heartbeats(
    app: &TestApp,
    fake: &FakeProvider,
) {
    let id = session(app, CreateSession::default()).await;
    // A block that would run for 30 s; the turn has 0.6 s.
    fake.push(code("while (true) {}").usage(5, 5));
    let events = turn(app, &id, "Spin").await;
    assert_eq!(error_code(&events), "time_limit");
    // One call over the token budget.
    fake.push(Reply::text("Long answer").usage(40, 20));
    let events = turn(app, &id, "Talk").await;
    assert_eq!(error_code(&events), "token_limit");
    let TurnEventKind::Error { message, .. } = terminal(&events) else {
        unreachable!()
    };
    assert!(
        message.contains("60 tokens") && message.contains("50"),
        "{message}"
    );
    assert_eq!(status(app, &id).await, "error");

    // Time waiting for a person does not count, and the open stream gets
    // `: ping` comments meanwhile.
    fake.push(code("await input('Still there?')").usage(5, 5));
    fake.push(Reply::text("ok").usage(5, 5));
    let response = app
        .http()
        .post(app.url(&format!("/api/sdk/agents/{id}/run")))
        .header("X-API-Key", &app.key)
        .json(&json!({ "message": "Ask" }))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while !text.contains("event: input_request") {
        text.push_str(&String::from_utf8_lossy(&body.next().await.unwrap().unwrap()));
    }
    let request_id = text
        .split("\"request_id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(900)).await;
    app.client
        .respond_to_input(&id, &request_id, json!("yes"))
        .await
        .unwrap();
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(text.contains("\n: ping\n\n"), "heartbeats while waiting: {text}");
    assert!(
        text.contains("event: done\n"),
        "the wait did not count against 0.6 s: {text}"
    );

    // An `input()` aborted with its block (a sibling call failed) gives the
    // clock back: the next block is still bounded by the turn's time.
    fake.push(code("await Promise.all([input('Never answered'), fetch('not a url')])").usage(5, 5));
    fake.push(code("while (true) {}").usage(5, 5));
    let events = tokio::time::timeout(Duration::from_secs(10), turn(app, &id, "Both"))
        .await
        .expect("the turn ends on its time limit");
    assert!(results(&events)[0].2.is_some(), "the first block failed");
    assert_eq!(error_code(&events), "time_limit");
}

async fn function_call_tools_stream_as_tool_calls(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let index = c
        .create_index(&kiln_sdk::api::CreateIndex {
            name: "faq".into(),
            description: Some("Answers".into()),
            metadata: None,
        })
        .await
        .unwrap();
    let id = session(
        app,
        CreateSession {
            tools: Some(vec!["list_stores".into()]),
            ..Default::default()
        },
    )
    .await;
    fake.push(
        Reply::tool_calls(vec![
            ("list_stores", json!({})),
            ("fetch", json!({ "url": "http://x" })),
        ])
        .usage(9, 4),
    );
    fake.push(Reply::text("You have one index."));
    let events = turn(app, &id, "What can you search?").await;
    assert_eq!(
        types(&events),
        [
            "sandbox_event",
            "tool_call",
            "tool_result",
            "tool_call",
            "tool_result",
            "response",
            "done"
        ]
    );
    // The model call's tokens sit on the event that closes it, never on a tool event.
    assert_eq!(
        events[0].raw.tokens.map(|t| (t.prompt, t.completion)),
        Some((9, 4))
    );
    assert!(events[1..5].iter().all(|e| e.raw.tokens.is_none()));
    match &events[2].kind {
        TurnEventKind::ToolResult { tool, result, .. } => {
            assert_eq!(tool, "list_stores");
            assert_eq!(result.as_ref().unwrap()[0]["id"], index.id.as_str());
            assert_eq!(result.as_ref().unwrap()[0]["name"], "faq");
        }
        other => panic!("{other:?}"),
    }
    match &events[4].kind {
        TurnEventKind::ToolResult { tool, result, .. } => {
            assert_eq!(tool, "fetch");
            assert_eq!(
                result.as_ref().unwrap()["error"],
                "unknown tool: fetch",
                "not in the session's tools"
            );
        }
        other => panic!("{other:?}"),
    }
    // Both results went back to the model, each answering its call.
    let messages = fake.requests()[1].body["messages"].clone();
    let tools: Vec<&Value> = messages
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    assert_eq!(tools.len(), 2);
    let assistant = messages
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "assistant")
        .unwrap();
    assert_eq!(assistant["tool_calls"].as_array().unwrap().len(), 2);
    assert_eq!(tools[0]["tool_call_id"], assistant["tool_calls"][0]["id"]);
    assert_eq!(tools[1]["tool_call_id"], assistant["tool_calls"][1]["id"]);
}

/// Without `--allow-private-network`, the sandbox's `fetch()` refuses
/// loopback (the fake stands in for an internal service here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_refuses_private_addresses_unless_allowed() {
    let fake = FakeProvider::start().await;
    let options = TestOptions {
        allow_private_network: false,
        ..fake_options(&fake)
    };
    let app = TestApp::start_with(Backend::Sqlite, options).await.unwrap();
    let url = format!("{}/v1/models", fake.base_url());
    fake.push(code(&format!(
        "try {{ await fetch({url:?}) }} catch (e) {{ e.message }}"
    )));
    fake.push(code(
        "try { await fetch('http://169.254.169.254/latest/meta-data/') } catch (e) { e.message }",
    ));
    fake.push(Reply::text("ok"));
    let id = session(&app, CreateSession::default()).await;
    let events = turn(&app, &id, "Fetch").await;
    let results = results(&events);
    for (content, _, _) in &results {
        assert!(content.starts_with("fetch refused"), "{content}");
        assert!(content.contains("--allow-private-network"), "{content}");
    }
    assert_eq!(results.len(), 2);
    assert_eq!(
        fake.request_count(),
        3,
        "nothing reached the fake but the model calls"
    );
    app.stop().await;
}

/// A server that shuts down ends the turns it runs: their streams get an
/// `interrupted` error before the server drains, and the sessions can be
/// used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_running_turns() {
    let fake = FakeProvider::start().await;
    let options = fake_options(&fake);
    let app = TestApp::start_with(Backend::Sqlite, options).await.unwrap();
    fake.push(Reply::hang());
    let id = session(&app, CreateSession::default()).await;
    let stream = app.client.run_agent(&id, "Think").await.unwrap();
    asked(&fake, 1).await;
    let database_url = app.database_url.clone();
    // The rest of `app` (its temp dir) lives to the end of the test.
    let TestApp { server, .. } = app;
    let (shutdown, events) = tokio::join!(server.shutdown(), stream.collect_turn());
    shutdown.unwrap();
    assert_eq!(error_code(&events.unwrap()), "interrupted");
    use kiln_core::runtime::store::AgentStore;
    let store = kiln_store::SqlStore::connect(&database_url).await.unwrap();
    let projects = kiln_core::control::store::ControlStore::list_projects(&store)
        .await
        .unwrap();
    let session = store
        .get_session(&projects[0].id, &kiln_core::ids::SessionId::from_string(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.status, kiln_core::runtime::SessionStatus::Error);
    assert_eq!(session.turn_id, None, "nothing stays running");
    store.close().await;
}

/// A turn acts as the key that started it: revoking the key stops the turn
/// at its next lease renewal, on whichever server runs it.
async fn a_revoked_keys_turn_stops(app: &TestApp, fake: &FakeProvider) {
    let created = app
        .server
        .control
        .create_key("default", "short-lived")
        .await
        .unwrap();
    let client = kiln_sdk::Client::new(&app.server.base_url(), &created.plaintext).unwrap();
    let id = client.create_session(&CreateSession::default()).await.unwrap().id;
    fake.push(code("await input('wait for me')"));
    let mut stream = client.run_agent(&id, "hold on").await.unwrap();
    while let Some(event) = stream.next().await {
        if event.unwrap().raw.kind == "input_request" {
            break;
        }
    }
    app.server.control.revoke_key(&created.key.id).await.unwrap();
    let rest = stream.collect_turn().await.unwrap();
    let last = rest.last().expect("a terminal event");
    assert_eq!(
        (last.raw.kind.as_str(), last.raw.code.as_deref()),
        ("error", Some("cancelled")),
        "{rest:?}"
    );
    assert!(
        last.raw
            .content
            .as_deref()
            .unwrap_or_default()
            .contains("revoked"),
        "{last:?}"
    );
    let detail = app.client.get_session(&id).await.unwrap();
    assert_eq!(detail.session.status, "active");
}

/// `run`, queued messages, input answers and cancels each write an audit
/// entry acting as the caller's key.
async fn run_input_and_cancel_are_audited(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let id = session(app, CreateSession::default()).await;
    fake.push(code("await input('name?')"));
    fake.push(Reply::text("thanks"));
    let mut stream = c.run_agent(&id, "ask me").await.unwrap();
    let mut request_id = None;
    while let Some(event) = stream.next().await {
        let event = event.unwrap();
        if event.raw.kind == "input_request" {
            request_id = event
                .raw
                .args
                .as_ref()
                .and_then(|a| a["request_id"].as_str().map(str::to_owned));
            break;
        }
    }
    c.respond_to_input(&id, &request_id.unwrap(), json!("Ada"))
        .await
        .unwrap();
    stream.collect_turn().await.unwrap();
    fake.push(code("await input('again?')"));
    let mut stream = c.run_agent(&id, "ask again").await.unwrap();
    while let Some(event) = stream.next().await {
        if event.unwrap().raw.kind == "input_request" {
            break;
        }
    }
    c.cancel_session(&id).await.unwrap();
    fake.push(Reply::text("queued"));
    c.enqueue_message(&id, "one more").await.unwrap();

    let audit = c
        .list_audit_log(&kiln_sdk::api::AuditLogQuery {
            subject_type: Some("agent_session".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut actions: Vec<&str> = audit
        .entries
        .iter()
        .filter(|e| e.subject_id == id)
        .map(|e| e.action.as_str())
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "agent_session.cancel",
            "agent_session.create",
            "agent_session.input",
            "agent_session.run",
            "agent_session.run",
            "agent_session.run"
        ],
        "{:?}",
        audit.entries
    );
    assert!(audit.entries.iter().all(|e| e.actor_api_key_id.is_some()));
}

/// A session's `data` holds at most 1 MiB of JSON: a `data.set` past it
/// fails in the code and changes nothing.
async fn session_data_is_capped(app: &TestApp, fake: &FakeProvider) {
    fake.push(code(
        "const chunk = 'x'.repeat(200000);\n\
         for (let i = 0; i < 5; i++) { await data.set('k' + i, chunk); }\n\
         let refused = '';\n\
         try { await data.set('k5', chunk); } catch (e) { refused = String(e); }\n\
         ({ refused, k4: (await data.get('k4')).length, k5: await data.get('k5') })",
    ));
    fake.push(Reply::text("Done."));
    let id = session(app, CreateSession::default()).await;
    let events = turn(app, &id, "Fill it").await;
    let (_, result, error) = results(&events).into_iter().next().expect("a block ran");
    assert_eq!(error, None);
    let result = result.expect("the block's value");
    assert!(
        result["refused"]
            .as_str()
            .unwrap()
            .contains("over its limit of 1048576"),
        "{result}"
    );
    assert_eq!(
        (result["k4"].as_u64(), &result["k5"]),
        (Some(200000), &Value::Null)
    );
}

/// The requests the fake got from `ai()`: one user message, no system
/// prompt or tools.
fn ai_requests(fake: &FakeProvider) -> Vec<Value> {
    fake.requests()
        .into_iter()
        .map(|r| r.body)
        .filter(|body| body["messages"].as_array().is_some_and(|m| m.len() == 1))
        .collect()
}

/// `Promise.all` over 3,000 `ai()` calls: the provider sees them at most
/// 16 at a time, and no more of them than the turn's host-call limit; the
/// rest reject in the code, which goes on.
async fn host_calls_are_bounded_per_block_and_per_turn(app: &TestApp, fake: &FakeProvider) {
    fake.push(code(
        "const replies = await Promise.all(Array.from({ length: 3000 }, (_, i) =>\n\
           ai('question ' + i).then(() => 'answered', (e) => e.message)));\n\
         ({ answered: replies.filter((r) => r === 'answered').length,\n\
            refused: replies.filter((r) => r.includes('made 40 host calls')).length })",
    ));
    fake.set_default(Reply::text("fine").delay(Duration::from_millis(20)));
    let id = session(app, CreateSession::default()).await;
    let events = turn(app, &id, "Ask everything").await;
    assert_eq!(
        results(&events)[0].1,
        Some(json!({ "answered": 40, "refused": 2960 }))
    );
    assert_eq!(ai_requests(fake).len(), 40);
    let most = fake.most_concurrent();
    assert!((2..=16).contains(&most), "{most} calls at once");
    assert!(matches!(terminal(&events), TurnEventKind::Done(_)));
}

/// `ai()` calls in flight together cannot spend past the turn's budget:
/// each holds its prompt and `max_tokens` before it starts, one that does
/// not fit waits, and the last gets what is left.
async fn ai_calls_hold_their_tokens_before_they_start(app: &TestApp, fake: &FakeProvider) {
    fake.push(
        code(
            "await Promise.all(Array.from({ length: 10 }, (_, i) =>\n\
               ai('q' + i).then(() => 'answered', (e) => e.message)))",
        )
        .usage(10, 10),
    );
    fake.set_default(
        Reply::text("a long answer")
            .usage(10, 3000)
            .delay(Duration::from_millis(30)),
    );
    let id = session(app, CreateSession::default()).await;
    let events = turn(app, &id, "Ask ten times").await;
    assert_eq!(error_code(&events), "token_limit");
    let sent = ai_requests(fake);
    // Three answers of 3,010 fit in 10,000; a fourth gets what is left.
    assert_eq!(sent.len(), 4, "{sent:#?}");
    let caps: Vec<u64> = sent
        .iter()
        .map(|body| body["max_tokens"].as_u64().expect("ai() sends max_tokens"))
        .collect();
    let spent: u64 = 20 + caps.iter().map(|cap| 10 + cap.min(&3000)).sum::<u64>();
    assert!(spent <= 10_000, "{caps:?} spend {spent}");
    let detail = app.client.get_session(&id).await.unwrap().session;
    assert_eq!(
        u64::try_from(detail.prompt_tokens + detail.completion_tokens).unwrap(),
        spent,
        "the session counts what the provider reported"
    );
}

/// What one block's `fetch()` calls bring in is bounded by its memory:
/// bodies are cut at what is left, then `fetch()` rejects.
async fn a_blocks_fetches_are_bounded_by_its_memory(app: &TestApp, fake: &FakeProvider) {
    let url = app.url("/openapi.json");
    fake.push(code(&format!(
        "let total = 0, calls = 0, refused = '', cut = false;\n\
         while (calls < 200) {{\n\
           try {{ const page = await fetch({url:?}); total += page.body.length; cut ||= page.truncated; calls++; }}\n\
           catch (e) {{ refused = e.message; break; }}\n\
         }}\n\
         ({{ total, calls, refused, cut }})"
    )));
    fake.push(Reply::text("Done."));
    let id = session(app, CreateSession::default()).await;
    let events = turn(app, &id, "Fetch a lot").await;
    let result = results(&events)[0].1.clone().expect("the block's value");
    let limit = 8 * 1024 * 1024;
    // UTF-16 units in the code, bytes in the budget: never more.
    let total = result["total"].as_u64().unwrap();
    assert!(total <= limit && total > limit / 2, "{result}");
    assert!(result["calls"].as_u64().unwrap() >= 2, "{result}");
    assert_eq!(result["cut"], json!(true), "{result}");
    let refused = result["refused"].as_str().unwrap();
    assert!(
        refused.contains("has fetched") && refused.contains("the block's memory, 8388608 bytes"),
        "{result}"
    );
}

/// Four slots: one project's blocks take three (its share) and its fourth
/// waits, so another project's block runs at once instead of waiting for
/// them.
async fn sandbox_slots_are_shared_between_projects(app: &TestApp, fake: &FakeProvider) {
    // Every block of the busy project notes that it started, then spins
    // until cancelled.
    fake.set_default(Reply::code_step(
        "await data.set('started', true); while (true) {}",
        "never",
    ));
    let mut busy = Vec::new();
    for _ in 0..4 {
        let id = session(app, CreateSession::default()).await;
        let stream = app.client.run_agent(&id, "Spin").await.unwrap();
        busy.push((id, stream));
    }
    for _ in 0..200 {
        if fake.request_count() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(fake.request_count(), 4, "every busy turn asked the model");
    fake.push(code("6 * 7"));
    fake.push(Reply::text("42"));
    let (_, other) = app.key_for("elsewhere").await;
    let id = other.create_session(&CreateSession::default()).await.unwrap().id;
    let events = tokio::time::timeout(Duration::from_secs(20), async {
        other
            .run_agent(&id, "Compute")
            .await
            .unwrap()
            .collect_turn()
            .await
            .unwrap()
    })
    .await
    .expect("the other project's block got the free slot");
    assert_eq!(results(&events)[0].1, Some(json!(42)));
    // Three of the busy project's blocks run; its fourth still waits for a
    // slot (the cap holds) though the other project's turn came and went.
    let ids: Vec<String> = busy.iter().map(|(id, _)| id.clone()).collect();
    let mut started = 0;
    for _ in 0..200 {
        started = 0;
        for id in &ids {
            let detail = app.client.get_session(id).await.unwrap();
            assert_eq!(detail.session.status, "running", "the busy turns still spin");
            started += usize::from(detail.steps.iter().any(|s| s.step_type == "data_update"));
        }
        if started >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(started, 3, "blocks running for the busy project");
    let sandbox = app.client.get_metrics().await.unwrap().sandbox;
    assert_eq!(
        (
            sandbox.running_blocks,
            sandbox.waiting_blocks,
            sandbox.running_blocks_limit
        ),
        (3, 1, 3),
        "the busy project's metrics"
    );
    // The other project's block holds its slot until its thread has freed
    // its heap, just after its result (at idle priority, beside spinners).
    let mut others_running = 1;
    for _ in 0..200 {
        others_running = other.get_metrics().await.unwrap().sandbox.running_blocks;
        if others_running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(others_running, 0, "the other project's block gave its slot back");
    for (id, stream) in busy {
        app.client.cancel_session(&id).await.unwrap();
        let events = stream.collect_turn().await.unwrap();
        assert_eq!(error_code(&events), "cancelled");
    }
}

/// Two places for paused blocks, one per project: a project's second
/// `input()` is refused at once, another project's is taken, and a third
/// project finds the server full.
async fn paused_blocks_are_capped_per_server_and_project(app: &TestApp, fake: &FakeProvider) {
    let ask = "try { await input('Anyone?') } catch (e) { 'refused: ' + e.message }";
    fake.set_default(Reply::code_step(ask, "asked"));
    let (_, second) = app.key_for("second").await;
    let (_, third) = app.key_for("third").await;
    let mut waiting = Vec::new();
    for client in [&app.client, &second] {
        let id = client.create_session(&CreateSession::default()).await.unwrap().id;
        let mut stream = client.run_agent(&id, "Ask").await.unwrap();
        let seen = read_until(&mut stream, |e| e.raw.kind == "input_request").await;
        waiting.push((client, id, input_request(seen.last().unwrap()), stream));
    }
    // Each project's paused block shows in its metrics, with its share.
    for client in [&app.client, &second, &third] {
        let sandbox = client.get_metrics().await.unwrap().sandbox;
        let expected = if std::ptr::eq(client, &third) { 0 } else { 1 };
        assert_eq!(
            (sandbox.paused_blocks, sandbox.paused_blocks_limit),
            (expected, 1)
        );
        assert_eq!(sandbox.running_blocks, 0, "a paused block gives its slot back");
    }
    for (client, expected) in [
        (&app.client, "this project already has 1 code blocks waiting"),
        (&third, "this server already has 2 code blocks waiting"),
    ] {
        let id = client.create_session(&CreateSession::default()).await.unwrap().id;
        let events = client
            .run_agent(&id, "Ask")
            .await
            .unwrap()
            .collect_turn()
            .await
            .unwrap();
        let result = results(&events)[0].1.clone().unwrap();
        let text = result.as_str().unwrap();
        assert!(
            text.starts_with("refused: input() is refused") && text.contains(expected),
            "{text}"
        );
    }
    for (client, id, request, stream) in waiting {
        client
            .respond_to_input(&id, &request.request_id, json!("here"))
            .await
            .unwrap();
        let events = stream.collect_turn().await.unwrap();
        assert_eq!(results(&events)[0].1, Some(json!("here")));
    }
    // Answered, their places are free again.
    let id = third.create_session(&CreateSession::default()).await.unwrap().id;
    let mut stream = third.run_agent(&id, "Ask").await.unwrap();
    read_until(&mut stream, |e| e.raw.kind == "input_request").await;
    third.cancel_session(&id).await.unwrap();
}
