//! CONTRACT §2.14: the studio. A session's trace (steps, the complete
//! system prompt, tools), replay from a step into a new session over SSE
//! (`replay_started` first, the overrides applied, the earlier turns
//! copied as the model's history, `done` naming the new session), analyze
//! (a structured answer, 502 when the model answers badly), and the CLI's
//! `kiln trace` and `kiln replay`.

use futures::StreamExt;
use kiln_providers::fake::{FakeProvider, Reply};
use kiln_sdk::TurnEventKind;
use kiln_sdk::api::{AnalyzeRequest, CreateSession, ReplayRequest};
use serde_json::json;

use crate::agents::fake_options;
use crate::code_cli::kiln;
use crate::harness::{Backend, TestApp, api_err};

async fn studio_traces_replays_and_analyzes(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let session = c
        .create_session(&CreateSession {
            system_prompt: Some("You are the billing desk.".into()),
            title: Some("billing".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    // Turn 1: a code step, then an answer. Turn 2: an answer.
    fake.push(Reply::tool_call(
        "execute_js",
        json!({ "code": "await data.set('plan', 'pro'); 6 * 7" }),
    ));
    fake.push(Reply::text("The answer is 42."));
    c.run_agent(&session.id, "What is six times seven?")
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();
    fake.push(Reply::text("Your plan is pro."));
    c.run_agent(&session.id, "Which plan am I on?")
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();

    let trace = c.get_studio_trace(&session.id).await.unwrap();
    assert_eq!(trace.session.id, session.id);
    let types: Vec<&str> = trace.steps.iter().map(|s| s.step_type.as_str()).collect();
    assert_eq!(types[0], "user_message");
    assert!(
        types.contains(&"execute_js") && types.contains(&"execute_js_result"),
        "{types:?}"
    );
    assert!(trace.system_prompt.contains("You are the billing desk."));
    assert!(trace.system_prompt.len() > "You are the billing desk.".len());
    assert_eq!(trace.tools, ["execute_js"]);
    assert!(trace.memory.is_empty());
    let second_turn = trace
        .steps
        .iter()
        .rev()
        .find(|s| s.step_type == "user_message")
        .unwrap()
        .step_index;

    // Replay the second turn with another message and system prompt.
    fake.push(Reply::tool_call(
        "execute_js",
        json!({ "code": "await data.get('plan')" }),
    ));
    fake.push(Reply::text("You are on the pro plan."));
    let before = fake.request_count();
    let events = c
        .replay_session(
            &session.id,
            &ReplayRequest {
                from_step: Some(second_turn + 1),
                system_prompt: Some("You are the new billing desk.".into()),
                message: Some("What plan do I have?".into()),
            },
        )
        .await
        .unwrap()
        .collect::<Vec<_>>()
        .await;
    let events: Vec<_> = events.into_iter().map(Result::unwrap).collect();
    let TurnEventKind::ReplayStarted {
        session_id: replayed,
        source_session_id,
        from_step,
    } = &events[0].kind
    else {
        panic!("{:?}", events[0]);
    };
    assert_eq!(
        (source_session_id.as_str(), *from_step),
        (session.id.as_str(), second_turn + 1)
    );
    assert_ne!(replayed, &session.id);
    let TurnEventKind::Done(summary) = &events.last().unwrap().kind else {
        panic!("{:?}", events.last());
    };
    assert_eq!(&summary.session_id, replayed);
    assert!(events.iter().any(|e| matches!(&e.kind, TurnEventKind::Response { content, .. } if content == "You are on the pro plan.")));
    // The model saw the new prompt, the first turn as history, the new message.
    let request = &fake.requests()[before].body;
    let messages = request["messages"].as_array().unwrap();
    assert!(
        messages[0]["content"]
            .as_str()
            .unwrap()
            .contains("You are the new billing desk.")
    );
    let said: Vec<&str> = messages.iter().filter_map(|m| m["content"].as_str()).collect();
    assert!(said.contains(&"What is six times seven?"), "{said:?}");
    assert!(!said.contains(&"Which plan am I on?"), "{said:?}");
    assert_eq!(said.last(), Some(&"What plan do I have?"));
    // The new session holds the copied turn and the replayed one; the
    // original is untouched; the data set by the copied turn came along.
    let copy = c.get_session(replayed).await.unwrap();
    assert_eq!(copy.session.system_prompt, "You are the new billing desk.");
    assert_eq!(
        copy.session.metadata["replay_of"]["session_id"],
        session.id.as_str()
    );
    let asked: Vec<&str> = copy
        .steps
        .iter()
        .filter(|s| s.step_type == "user_message")
        .map(|s| s.content.as_str())
        .collect();
    assert_eq!(asked, ["What is six times seven?", "What plan do I have?"]);
    // The data the copied turn set came along.
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.kind, TurnEventKind::ExecuteJsResult { result: Some(r), .. } if r == "pro")),
        "{events:?}"
    );
    assert_eq!(
        c.get_session(&session.id).await.unwrap().steps.len(),
        trace.steps.len()
    );

    // Steps out of range, a missing from_step, an unknown session.
    for bad in [Some(-1), Some(trace.steps.len() as i64), None] {
        let request = ReplayRequest {
            from_step: bad,
            ..Default::default()
        };
        api_err(
            c.replay_session(&session.id, &request).await,
            400,
            "validation_failed",
        );
    }
    api_err(c.get_studio_trace("nope").await, 404, "NOT_FOUND");

    // Analyze: a structured suggestion; a bad answer is 502.
    fake.push(Reply::text(
        "{\"prompt_changes\": \"Always name the plan.\", \"eval_case\": {\"name\": \"plan\", \"prompt\": \"Which plan?\", \"criteria\": \"Names the plan\"}, \"reasoning\": \"It hedged.\"}",
    ));
    let suggestion = c
        .analyze_session(
            &session.id,
            &AnalyzeRequest {
                failed_steps: Some(vec![second_turn + 1]),
                expected_outcome: "It names the plan".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(suggestion.prompt_changes, "Always name the plan.");
    assert_eq!(suggestion.eval_case.unwrap().criteria, "Names the plan");
    let asked = fake.requests().last().unwrap().body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        asked.contains("It names the plan") && asked.contains("(FAILED)"),
        "{asked}"
    );
    fake.push(Reply::text("I would change a few things."));
    api_err(
        c.analyze_session(&session.id, &AnalyzeRequest::default()).await,
        502,
        "upstream_error",
    );

    // The CLI: `kiln trace` and `kiln replay`.
    let work = tempfile::tempdir().unwrap();
    let (ok, out, err) = kiln(app, work.path(), &["trace", &session.id]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("#0 user_message") && out.contains("> What is six times seven?"),
        "{out}"
    );
    assert!(
        out.contains("```js\nawait data.set('plan', 'pro'); 6 * 7\n```"),
        "{out}"
    );
    assert!(out.contains("tools: execute_js"), "{out}");
    fake.push(Reply::text("Pro, again."));
    let from = (second_turn).to_string();
    let (ok, out, err) = kiln(app, work.path(), &["replay", &session.id, "--from", &from]).await;
    assert!(ok, "{err}");
    assert!(out.contains("Pro, again."), "{out}");
    assert!(
        err.contains(&format!("replay of {} from step {from}", session.id)),
        "{err}"
    );
}

async fn run(backend: Backend) {
    let fake = FakeProvider::start().await;
    let Some(app) = TestApp::start_with(backend, fake_options(&fake)).await else {
        return;
    };
    studio_traces_replays_and_analyzes(&app, &fake).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn studio_sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn studio_postgres() {
    run(Backend::Postgres).await;
}
