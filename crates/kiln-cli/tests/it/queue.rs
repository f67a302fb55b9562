//! The per-session queue (Kiln extension): `POST /agents/:id/messages`
//! runs at once or queues, queued turns drain in order one at a time,
//! across a restart and across two servers on one database; list, cancel
//! and reorder; `run` keeps refusing a busy session.

use std::time::Duration;

use kiln_providers::fake::{FakeProvider, Reply};
use kiln_sdk::api::CreateSession;
use serde_json::json;

use crate::agents::fake_options;
use crate::harness::{TestApp, api_err};

fn code(js: &str) -> Reply {
    Reply::tool_call("execute_js", json!({ "code": js }))
}

/// Waits (up to 20 s) until the session's detail satisfies `done`.
async fn wait_for(
    client: &kiln_sdk::Client,
    id: &str,
    what: &str,
    done: impl Fn(&kiln_sdk::api::SessionDetail) -> bool,
) -> kiln_sdk::api::SessionDetail {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let detail = client.get_session(id).await.unwrap();
        if done(&detail) {
            return detail;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: status {}, {} steps",
            detail.session.status,
            detail.steps.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The user messages of the session, in log order.
fn user_messages(detail: &kiln_sdk::api::SessionDetail) -> Vec<String> {
    detail
        .steps
        .iter()
        .filter(|s| s.step_type == "user_message")
        .map(|s| s.content.clone())
        .collect()
}

/// `(user message, response)` pairs in log order; a turn that ended
/// without a response (cancelled, interrupted: its `error` event is in the
/// stream, not in the steps) pairs with "". Two turns at once would show as
/// a pair with another turn's response.
fn turns(detail: &kiln_sdk::api::SessionDetail) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for step in &detail.steps {
        match step.step_type.as_str() {
            "user_message" => pairs.push((step.content.clone(), String::new())),
            "response" => {
                let last = pairs.last_mut().expect("a response belongs to a turn");
                assert!(last.1.is_empty(), "two responses in one turn: {:?}", detail.steps);
                last.1 = step.content.clone();
            }
            _ => {}
        }
    }
    pairs
}

fn idle(detail: &kiln_sdk::api::SessionDetail) -> bool {
    detail.session.status == "active" || detail.session.status == "error"
}

pub(crate) async fn queued_turns_run_in_order_one_at_a_time(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let id = c.create_session(&CreateSession::default()).await.unwrap().id;

    // A free session runs the message at once.
    fake.push(code("await input({ type: 'confirm', message: 'Go on?' })"));
    fake.push(Reply::text("first done"));
    let first = c.enqueue_message(&id, "first").await.unwrap();
    assert_eq!((first.status.as_str(), first.queue_position), ("running", 0));
    let waiting = wait_for(c, &id, "the input request", |d| {
        d.session.status == "awaiting_input"
    })
    .await;
    let request_id = waiting
        .steps
        .iter()
        .find(|s| s.step_type == "input_request")
        .map(|s| s.tool_args["request_id"].as_str().unwrap().to_owned())
        .unwrap();

    // A busy session queues; `run` still refuses it.
    api_err(c.run_agent(&id, "jump the queue").await, 409, "run_in_progress");
    let mut queued = Vec::new();
    for (i, message) in ["second", "third", "fourth"].into_iter().enumerate() {
        let enqueued = c.enqueue_message(&id, message).await.unwrap();
        assert_eq!(enqueued.status, "queued");
        assert_eq!(enqueued.queue_position, i as i64 + 1);
        assert_ne!(enqueued.id, first.id);
        queued.push(enqueued.id);
    }
    let queue = c.list_queue(&id).await.unwrap();
    let listed: Vec<(&str, &str, i64)> = queue
        .iter()
        .map(|q| (q.id.as_str(), q.message.as_str(), q.queue_position))
        .collect();
    assert_eq!(
        listed,
        [
            (queued[0].as_str(), "second", 1),
            (queued[1].as_str(), "third", 2),
            (queued[2].as_str(), "fourth", 3)
        ]
    );

    // Reorder: "fourth" first, the rest as they were.
    let reordered = c.reorder_queue(&id, &[&queued[2]]).await.unwrap();
    let messages: Vec<&str> = reordered.iter().map(|q| q.message.as_str()).collect();
    assert_eq!(messages, ["fourth", "second", "third"]);
    assert_eq!(
        reordered.iter().map(|q| q.queue_position).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    api_err(c.reorder_queue(&id, &["nope"]).await, 400, "validation_failed");
    api_err(
        c.reorder_queue(&id, &[&queued[0], &queued[0]]).await,
        400,
        "validation_failed",
    );
    // Take "third" off; a second time it is gone.
    c.cancel_queued(&id, &queued[1]).await.unwrap();
    api_err(c.cancel_queued(&id, &queued[1]).await, 404, "NOT_FOUND");
    let messages: Vec<String> = c
        .list_queue(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.message)
        .collect();
    assert_eq!(messages, ["fourth", "second"]);
    // Bad input and unknown sessions.
    api_err(c.enqueue_message(&id, "  ").await, 400, "validation_failed");
    api_err(c.enqueue_message("missing", "hi").await, 404, "NOT_FOUND");
    api_err(c.list_queue("missing").await, 404, "NOT_FOUND");
    api_err(c.cancel_queued("missing", &queued[0]).await, 404, "NOT_FOUND");
    api_err(c.reorder_queue("missing", &[]).await, 404, "NOT_FOUND");

    // Answering lets the first turn end; the queue drains in its order.
    fake.push(Reply::text("fourth done"));
    fake.push(Reply::text("second done"));
    c.respond_to_input(&id, &request_id, json!(true)).await.unwrap();
    let done = wait_for(c, &id, "the queue to drain", |d| {
        idle(d)
            && user_messages(d).len() == 3
            && d.steps.iter().filter(|s| s.step_type == "response").count() == 3
    })
    .await;
    assert_eq!(
        turns(&done),
        [
            ("first".to_owned(), "first done".to_owned()),
            ("fourth".to_owned(), "fourth done".to_owned()),
            ("second".to_owned(), "second done".to_owned()),
        ]
    );
    assert!(c.list_queue(&id).await.unwrap().is_empty());
    // The queued turns' events are in the session's stream.
    let events = c
        .resume_events(&id, 0)
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();
    assert!(events.iter().any(|e| e.raw.kind == "input_request"));

    // Cancelling the running turn leaves the queue: its turns still run.
    fake.push(code("await input({ type: 'confirm', message: 'Again?' })"));
    fake.push(Reply::text("fifth done"));
    fake.push(Reply::text("sixth done"));
    c.enqueue_message(&id, "will be cancelled").await.unwrap();
    wait_for(c, &id, "the second input request", |d| {
        d.session.status == "awaiting_input"
    })
    .await;
    c.enqueue_message(&id, "fifth").await.unwrap();
    c.enqueue_message(&id, "sixth").await.unwrap();
    let cancelled = c.cancel_session(&id).await.unwrap();
    assert!(cancelled.ok);
    let done = wait_for(c, &id, "the queue after a cancel", |d| {
        idle(d) && d.steps.iter().filter(|s| s.step_type == "response").count() == 5
    })
    .await;
    let pairs = turns(&done);
    assert_eq!(
        pairs[3..],
        [
            ("will be cancelled".to_owned(), String::new()),
            ("fifth".to_owned(), "fifth done".to_owned()),
            ("sixth".to_owned(), "sixth done".to_owned())
        ]
    );

    // A deleted session takes its queue with it.
    fake.push(code("await input({ type: 'confirm', message: 'Last?' })"));
    c.enqueue_message(&id, "running").await.unwrap();
    wait_for(c, &id, "the third input request", |d| {
        d.session.status == "awaiting_input"
    })
    .await;
    let left = c.enqueue_message(&id, "left behind").await.unwrap();
    c.delete_session(&id).await.unwrap();
    api_err(c.list_queue(&id).await, 404, "NOT_FOUND");
    api_err(c.cancel_queued(&id, &left.id).await, 404, "NOT_FOUND");
    api_err(c.enqueue_message(&id, "hi").await, 404, "NOT_FOUND");
}

pub(crate) async fn a_full_queue_refuses_more(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let id = c.create_session(&CreateSession::default()).await.unwrap().id;
    fake.push(code("await input({ type: 'confirm', message: 'Hold?' })"));
    c.enqueue_message(&id, "hold").await.unwrap();
    wait_for(c, &id, "the input request", |d| {
        d.session.status == "awaiting_input"
    })
    .await;
    let max = kiln_core::runtime::queue::MAX_QUEUED_TURNS;
    for i in 0..max {
        let queued = c.enqueue_message(&id, &format!("m{i}")).await.unwrap();
        assert_eq!(queued.queue_position, i + 1);
    }
    api_err(c.enqueue_message(&id, "one too many").await, 409, "queue_full");
    assert_eq!(c.list_queue(&id).await.unwrap().len() as i64, max);
    // Another project's key sees none of it.
    let (_, other) = app.key_for("queue-other").await;
    api_err(other.list_queue(&id).await, 404, "NOT_FOUND");
    api_err(other.enqueue_message(&id, "hi").await, 404, "NOT_FOUND");
    c.delete_session(&id).await.unwrap();
}

/// A server died with a turn running and two queued: the next server to
/// start ends the dead turn and runs the queued ones, each once, in order.
pub(crate) async fn queued_turns_survive_a_restart_and_run_once(app: &TestApp, fake: &FakeProvider) {
    use kiln_core::ids::{ApiKeyId, ProjectId, SessionId, TurnId};
    use kiln_core::runtime::store::{AgentStore, Enqueue, NewEvent, QueuedTurn};

    let id = app
        .client
        .create_session(&CreateSession::default())
        .await
        .unwrap()
        .id;
    let detail = app.client.get_session(&id).await.unwrap();
    let project = ProjectId::from_string(detail.session.project_id.clone());
    let sid = SessionId::from_string(id.clone());
    // A key of the session's project (`default`), as the queued turns act.
    let key_id: ApiKeyId = app
        .server
        .control
        .create_key("default", "queue")
        .await
        .unwrap()
        .key
        .id;
    // What a dead server left: its turn's claim, lapsed, and two turns
    // queued behind it.
    let store = app.second_store().await;
    let lapsed = chrono::Utc::now() - chrono::Duration::seconds(5);
    for message in ["running when it died", "queued one", "queued two"] {
        let queued = QueuedTurn {
            id: TurnId::generate(),
            project_id: project.clone(),
            session_id: sid.clone(),
            key_id: key_id.clone(),
            message: message.to_owned(),
            position: 0,
            created_at: chrono::Utc::now(),
        };
        let first = NewEvent::user_message(message, chrono::Utc::now());
        let outcome = store.enqueue_turn(&queued, lapsed, &first, 100).await.unwrap();
        match message {
            "running when it died" => assert!(matches!(outcome, Enqueue::Started(_)), "{outcome:?}"),
            _ => assert!(matches!(outcome, Enqueue::Queued { .. }), "{outcome:?}"),
        }
    }
    store.close().await;
    api_err(app.client.run_agent(&id, "hi").await, 409, "run_in_progress");

    fake.push(Reply::text("one done"));
    fake.push(Reply::text("two done"));
    let (_replica, other, _dir) = app
        .replica_with(crate::harness::TestOptions {
            ingest_workers: 0,
            ..fake_options(fake)
        })
        .await;
    let done = wait_for(&other, &id, "the queued turns after a restart", |d| {
        idle(d) && d.steps.iter().filter(|s| s.step_type == "response").count() == 2
    })
    .await;
    assert_eq!(
        turns(&done),
        [
            ("running when it died".to_owned(), String::new()),
            ("queued one".to_owned(), "one done".to_owned()),
            ("queued two".to_owned(), "two done".to_owned())
        ]
    );
    assert!(other.list_queue(&id).await.unwrap().is_empty());
}

/// Many messages sent at once (on PostgreSQL through two servers on one
/// database): each runs exactly once and never two at a time.
pub(crate) async fn concurrent_messages_run_once_each_across_servers(app: &TestApp, fake: &FakeProvider) {
    fake.set_default(Reply::text("ok").delay(Duration::from_millis(5)));
    let postgres = !app.database_url.starts_with("sqlite");
    let replica = if postgres {
        Some(
            app.replica_with(crate::harness::TestOptions {
                ingest_workers: 0,
                ..fake_options(fake)
            })
            .await,
        )
    } else {
        None
    };
    let id = app
        .client
        .create_session(&CreateSession::default())
        .await
        .unwrap()
        .id;
    const MESSAGES: usize = 16;
    let mut sends = Vec::new();
    for i in 0..MESSAGES {
        let client = match (&replica, i % 2) {
            (Some((_, other, _)), 1) => other.clone(),
            _ => app.client.clone(),
        };
        let id = id.clone();
        sends.push(tokio::spawn(async move {
            client.enqueue_message(&id, &format!("m{i}")).await.unwrap()
        }));
    }
    let mut running = 0;
    for send in sends {
        if send.await.unwrap().status == "running" {
            running += 1;
        }
    }
    assert!(running >= 1, "the first message found the session free");
    let done = wait_for(&app.client, &id, "every message", |d| {
        idle(d) && d.steps.iter().filter(|s| s.step_type == "response").count() == MESSAGES
    })
    .await;
    // `turns` fails if two turns interleaved.
    let mut ran: Vec<String> = turns(&done).into_iter().map(|(m, _)| m).collect();
    assert_eq!(ran.len(), MESSAGES);
    ran.sort();
    ran.dedup();
    assert_eq!(ran.len(), MESSAGES, "every message ran exactly once");
}
