//! The turn loop, driven through `AgentRuntime` alone: the step loop, each
//! limit, cancel, and an `input()` pause with its answer.

use std::time::Duration;

use kiln_core::runtime::{EventBody, RuntimeConfig, SessionStatus, TurnErrorCode};
use kiln_providers::fake::Reply;
use serde_json::json;

use crate::harness::{Engines, collect, end_code};

fn code(source: &str) -> Reply {
    Reply::tool_call("execute_js", json!({ "code": source }))
}

#[tokio::test]
async fn a_code_step_runs_and_its_result_goes_back_to_the_model() {
    let engines = Engines::start(RuntimeConfig::default()).await;
    engines
        .fake
        .push(code("[1, 2, 3].map(x => x * 2)").usage(100, 10));
    engines
        .fake
        .push(Reply::text("They double to 2, 4 and 6.").usage(120, 8));
    let session = engines.session().await;

    let events = engines.turn(&session, "Double 1, 2 and 3").await;

    assert_eq!(end_code(&events), None, "{events:#?}");
    assert!(matches!(&events[0], EventBody::ExecuteJs { code, .. } if code.contains("x * 2")));
    assert!(
        matches!(&events[1], EventBody::ExecuteJsResult { result, error: None, .. } if *result == json!([2, 4, 6]))
    );
    assert!(
        matches!(&events[2], EventBody::Response { content, .. } if content == "They double to 2, 4 and 6.")
    );
    let EventBody::Done { steps, tokens } = &events[3] else {
        panic!("no done: {events:#?}")
    };
    assert_eq!((*steps, tokens.total()), (3, 238));
    // The model saw the block's result on its second call.
    let second = &engines.fake.requests()[1].body["messages"];
    assert!(second.to_string().contains("[2,4,6]"), "{second}");
    // The session is idle again, with the turn's totals and steps stored.
    let (after, stored_steps) = engines
        .runtime
        .session_steps(&engines.ctx, &session.id)
        .await
        .unwrap();
    assert_eq!(after.status, SessionStatus::Active);
    assert_eq!(after.turn_id, None);
    assert_eq!(after.usage.total(), 238);
    assert_eq!(stored_steps.len(), 4, "user message, code, result, answer");
    // The gateway recorded both model calls in the usage log the control
    // plane counts from.
    let metrics = engines.control.metrics(&engines.ctx).await.unwrap();
    assert_eq!((metrics.request_count, metrics.total_tokens), (2, 238));
    assert_eq!((metrics.total_sessions, metrics.total_steps), (1, 4));
}

#[tokio::test]
async fn the_step_limit_ends_a_turn_that_never_answers() {
    let engines = Engines::start(RuntimeConfig {
        max_steps: 3,
        ..RuntimeConfig::default()
    })
    .await;
    engines.fake.set_default(code("1"));
    let session = engines.session().await;
    let events = engines.turn(&session, "loop forever").await;
    assert_eq!(end_code(&events), Some(TurnErrorCode::StepLimit));
    assert_eq!(engines.fake.request_count(), 3, "one model call per step");
    let after = engines
        .runtime
        .get_session(&engines.ctx, &session.id)
        .await
        .unwrap();
    assert_eq!(after.status, SessionStatus::Error);
}

#[tokio::test]
async fn the_token_limit_ends_a_turn_that_spends_too_much() {
    let engines = Engines::start(RuntimeConfig {
        max_turn_tokens: 1_000,
        ..RuntimeConfig::default()
    })
    .await;
    engines.fake.push(code("1").usage(900, 50));
    engines.fake.push(code("2").usage(900, 50));
    engines.fake.push(Reply::text("never reached"));
    let session = engines.session().await;
    let events = engines.turn(&session, "spend").await;
    assert_eq!(end_code(&events), Some(TurnErrorCode::TokenLimit), "{events:#?}");
    assert_eq!(engines.fake.request_count(), 2);
}

#[tokio::test]
async fn the_time_limit_ends_a_turn_whose_model_is_slow() {
    let engines = Engines::start(RuntimeConfig {
        max_turn_time: Duration::from_millis(300),
        ..RuntimeConfig::default()
    })
    .await;
    // The model never answers (and the provider's own timeout is a
    // minute): only the turn's limit can end it.
    engines.fake.push(Reply::hang());
    let session = engines.session().await;
    let events = tokio::time::timeout(Duration::from_secs(20), engines.turn(&session, "hurry"))
        .await
        .expect("the turn ended at its limit, without waiting for the model");
    assert_eq!(end_code(&events), Some(TurnErrorCode::TimeLimit), "{events:#?}");
}

#[tokio::test]
async fn cancel_ends_a_running_turn_and_leaves_the_session_ready() {
    let engines = Engines::start(RuntimeConfig::default()).await;
    engines.fake.push(Reply::hang());
    let session = engines.session().await;
    let (_, events) = engines
        .runtime
        .run_turn(&engines.ctx, &session.id, "wait")
        .await
        .unwrap();
    // Cancel once the model call is in flight.
    while engines.fake.request_count() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = engines
        .runtime
        .cancel_turn(&engines.ctx, &session.id)
        .await
        .unwrap();
    assert_eq!(after.status, SessionStatus::Active);
    assert_eq!(after.turn_id, None);
    assert_eq!(end_code(&collect(events).await), Some(TurnErrorCode::Cancelled));
    // Nothing runs now: a second cancel is refused, a new turn starts.
    let again = engines.runtime.cancel_turn(&engines.ctx, &session.id).await;
    assert!(
        matches!(
            again,
            Err(kiln_core::Error::Refused {
                refusal: kiln_core::error::Refusal::NotRunning,
                ..
            })
        ),
        "{again:?}"
    );
    engines.fake.push(Reply::text("ready"));
    assert_eq!(end_code(&engines.turn(&session, "again").await), None);
}

#[tokio::test]
async fn input_pauses_the_turn_until_it_is_answered() {
    let engines = Engines::start(RuntimeConfig::default()).await;
    engines
        .fake
        .push(code("const name = await input('Your name?'); `Hello, ${name}`"));
    engines.fake.push(Reply::text("Greeted."));
    let session = engines.session().await;
    let (_, mut events) = engines
        .runtime
        .run_turn(&engines.ctx, &session.id, "greet me")
        .await
        .unwrap();

    // Read up to the question.
    let mut seen = Vec::new();
    let request_id = loop {
        use futures::StreamExt;
        let Some(kiln_core::runtime::FollowItem::Event(event)) = events.next().await else {
            continue;
        };
        seen.push(event.body.clone());
        if let EventBody::InputRequest {
            request_id, message, ..
        } = &event.body
        {
            assert_eq!(message, "Your name?");
            break request_id.clone();
        }
        assert!(!event.body.is_terminal(), "ended before asking: {seen:#?}");
    };
    let waiting = engines
        .runtime
        .get_session(&engines.ctx, &session.id)
        .await
        .unwrap();
    assert_eq!(waiting.status, SessionStatus::AwaitingInput);
    // A wrong type is refused and changes nothing; the right one resumes.
    let wrong = engines
        .runtime
        .answer_input(&engines.ctx, &session.id, &request_id, json!(42))
        .await;
    assert!(
        matches!(wrong, Err(kiln_core::Error::Validation { .. })),
        "{wrong:?}"
    );
    engines
        .runtime
        .answer_input(&engines.ctx, &session.id, &request_id, json!("Ada"))
        .await
        .unwrap();

    let rest = collect(events).await;
    assert_eq!(end_code(&rest), None, "{rest:#?}");
    assert!(
        rest.iter().any(
            |e| matches!(e, EventBody::ExecuteJsResult { result, .. } if *result == json!("Hello, Ada"))
        ),
        "{rest:#?}"
    );
    let twice = engines
        .runtime
        .answer_input(&engines.ctx, &session.id, &request_id, json!("Bob"))
        .await;
    assert!(
        matches!(
            twice,
            Err(kiln_core::Error::Refused {
                refusal: kiln_core::error::Refusal::InputAlreadyAnswered,
                ..
            })
        ),
        "{twice:?}"
    );
}

#[tokio::test]
async fn an_unanswered_input_ends_the_turn_when_its_time_runs_out() {
    let engines = Engines::start(RuntimeConfig {
        input_timeout: Duration::from_millis(300),
        ..RuntimeConfig::default()
    })
    .await;
    engines.fake.push(code("await input('Anyone there?')"));
    let session = engines.session().await;
    let events = engines.turn(&session, "ask").await;
    assert_eq!(
        end_code(&events),
        Some(TurnErrorCode::InputTimeout),
        "{events:#?}"
    );
    assert!(events.iter().any(|e| matches!(e, EventBody::InputRequest { .. })));
    let after = engines
        .runtime
        .get_session(&engines.ctx, &session.id)
        .await
        .unwrap();
    assert_eq!((after.status, after.turn_id), (SessionStatus::Error, None));
}

#[tokio::test]
async fn deleting_an_agent_ends_its_running_turns_and_removes_its_sessions() {
    use kiln_core::agents::source::{Manifest, ManifestAgent, ManifestFile};
    let engines = Engines::start(RuntimeConfig::default()).await;
    let text = |path: &str, content: &str| ManifestFile {
        path: path.into(),
        hash: format!("sha256:{}", kiln_core::crypto::sha256_hex(content.as_bytes())),
        size: content.len() as i64,
        content: Some(content.into()),
    };
    let manifest = Manifest {
        project: "acme".into(),
        agents: vec![ManifestAgent {
            id: "support".into(),
            source_hash: "h".into(),
            files: vec![
                text("agent.jsonc", "{\"id\": \"support\"}"),
                text("persona.md", "You help."),
            ],
        }],
        ..Default::default()
    };
    let synced = engines.agents.sync_source(&engines.ctx, &manifest).await.unwrap();
    let session = engines
        .runtime
        .create_session(
            &engines.ctx,
            kiln_core::runtime::CreateSession {
                agent_id: Some(synced.agents[0].agent_id.to_string()),
                target: Some("draft".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(session.system_prompt, "You help.");
    engines.fake.push(Reply::hang());
    let (_, events) = engines
        .runtime
        .run_turn(&engines.ctx, &session.id, "wait")
        .await
        .unwrap();
    while engines.fake.request_count() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let agent = engines
        .agents
        .get_agent_config(&engines.ctx, &synced.agents[0].agent_id)
        .await
        .unwrap();
    engines.runtime.delete_agent(&engines.ctx, &agent).await.unwrap();
    assert_eq!(
        end_code(&collect(events).await),
        Some(TurnErrorCode::SessionDeleted)
    );
    assert!(matches!(
        engines.runtime.get_session(&engines.ctx, &session.id).await,
        Err(kiln_core::Error::NotFound { .. })
    ));
    assert!(
        engines
            .agents
            .list_agent_configs(&engines.ctx)
            .await
            .unwrap()
            .is_empty()
    );
}
