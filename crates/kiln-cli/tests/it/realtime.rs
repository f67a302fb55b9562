//! The realtime channel (Kiln extension): `GET /api/sdk/ws` through the
//! SDK's `Realtime` connection and its reactive `SessionHandle`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use kiln_providers::fake::{FakeProvider, Reply};
use kiln_sdk::api::CreateSession;
use kiln_sdk::api::realtime::{ClientMessage, ServerMessage};
use kiln_sdk::{Realtime, SessionState};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::agents::fake_options;
use crate::harness::{TestApp, api_err};

/// Reads messages until one satisfies `wanted` (up to 20 s); returns every
/// message read, that one last.
async fn read_until(
    rt: &mut Realtime,
    what: &str,
    wanted: impl Fn(&ServerMessage) -> bool,
) -> Vec<ServerMessage> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let message = tokio::time::timeout_at(deadline, rt.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}; read {seen:#?}"))
            .unwrap_or_else(|| panic!("the connection closed before {what}"))
            .unwrap();
        let done = wanted(&message);
        seen.push(message);
        if done {
            return seen;
        }
    }
}

fn is_event(message: &ServerMessage, kind: &str) -> bool {
    matches!(message, ServerMessage::Event { event, .. } if event.kind == kind)
}

/// `(seq, type)` of the event messages among `messages`.
fn events(messages: &[ServerMessage]) -> Vec<(i64, String)> {
    messages
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Event { seq, event, .. } => Some((*seq, event.kind.clone())),
            _ => None,
        })
        .collect()
}

/// The statuses of the `patched` messages among `messages`.
fn patched_statuses(messages: &[ServerMessage], id: &str) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Patched { session_id, session } if session_id == id => {
                Some(session.status.clone())
            }
            _ => None,
        })
        .collect()
}

pub(crate) async fn realtime_sends_session_news_and_events_in_order(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let mut rt = c.realtime().await.unwrap();
    rt.subscribe_project().await.unwrap();

    // created, with the session.
    let id = c
        .create_session(&CreateSession {
            title: Some("watched".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    let seen = read_until(&mut rt, "created", |m| matches!(m, ServerMessage::Created { .. })).await;
    match seen.last().unwrap() {
        ServerMessage::Created { session_id, session } => {
            assert_eq!(
                (session_id.as_str(), session.id.as_str()),
                (id.as_str(), id.as_str())
            );
            assert_eq!(
                (session.title.as_str(), session.status.as_str()),
                ("watched", "active")
            );
        }
        other => panic!("{other:?}"),
    }

    // A session subscription without `after`: only what comes next.
    let subscribed = rt.subscribe_session(&id, None).await.unwrap();
    assert_eq!(
        (subscribed.after, subscribed.session.id.as_str()),
        (0, id.as_str())
    );

    // A turn: its user message and events in order, and the session
    // patched to running, then back to active with its totals.
    fake.push(Reply::tool_call("execute_js", json!({ "code": "1 + 1" })));
    fake.push(Reply::text("two"));
    c.run_agent(&id, "add")
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();
    let seen = read_until(&mut rt, "the turn's end", |m| {
        matches!(m, ServerMessage::Patched { session, .. } if session.status == "active" && session.step_count > 0)
    })
    .await;
    let turn = events(&seen);
    let kinds: Vec<&str> = turn.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "user_message",
            "execute_js",
            "execute_js_result",
            "response",
            "done"
        ],
        "{seen:#?}"
    );
    let seqs: Vec<i64> = turn.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    let statuses = patched_statuses(&seen, &id);
    assert_eq!(statuses.first().map(String::as_str), Some("running"), "{seen:#?}");
    assert_eq!(statuses.last().map(String::as_str), Some("active"));
    let user = seen.iter().find(|m| is_event(m, "user_message")).unwrap();
    assert!(matches!(user, ServerMessage::Event { event, session_id, .. }
        if event.content.as_deref() == Some("add") && session_id == &id));

    // A second connection replays from a cursor: all, or after 3.
    let mut replay = c.realtime().await.unwrap();
    let from_start = replay.subscribe_session(&id, Some(0)).await.unwrap();
    assert_eq!(from_start.after, 0);
    assert_eq!(from_start.session.status, "active");
    let seen = read_until(&mut replay, "the replayed done", |m| is_event(m, "done")).await;
    assert_eq!(events(&seen), turn);
    replay.unsubscribe_session(&id).await.unwrap();
    let later = replay.subscribe_session(&id, Some(3)).await.unwrap();
    assert_eq!(later.after, 3);
    let seen = read_until(&mut replay, "the replayed done", |m| is_event(m, "done")).await;
    assert_eq!(events(&seen), turn[3..]);
    // A cursor past the end is the end.
    replay.unsubscribe_session(&id).await.unwrap();
    assert_eq!(replay.subscribe_session(&id, Some(99)).await.unwrap().after, 5);

    // Queue changes patch the session.
    fake.push(Reply::text("queued reply").delay(Duration::from_millis(300)));
    fake.push(Reply::text("second"));
    c.enqueue_message(&id, "one").await.unwrap();
    c.enqueue_message(&id, "two").await.unwrap();
    let seen = read_until(
        &mut rt,
        "both queued turns",
        |m| matches!(m, ServerMessage::Event { seq, event, .. } if event.kind == "done" && *seq > 8),
    )
    .await;
    assert_eq!(
        events(&seen).iter().filter(|(_, k)| k == "user_message").count(),
        2
    );

    // Errors answer the message's id and leave the connection open.
    rt.send(&ClientMessage::Ping {
        id: Some(json!("p1")),
    })
    .await
    .unwrap();
    let seen = read_until(&mut rt, "pong", |m| matches!(m, ServerMessage::Pong { .. })).await;
    assert!(matches!(seen.last(), Some(ServerMessage::Pong { id: Some(id) }) if id == "p1"));
    api_err(rt.subscribe_session("sess_nope", None).await, 404, "NOT_FOUND");
    let both = kiln_sdk::api::realtime::Subscription {
        scope: Some("project".into()),
        session_id: Some(id.clone()),
        after: None,
        id: Some(json!(7)),
    };
    rt.send(&ClientMessage::Subscribe(both)).await.unwrap();
    let seen = read_until(&mut rt, "an error", |m| matches!(m, ServerMessage::Error { .. })).await;
    match seen.last().unwrap() {
        ServerMessage::Error { error, id } => {
            assert_eq!(
                (error.code.as_str(), error.error.as_str()),
                ("validation_failed", "validation_failed")
            );
            assert_eq!(id, &Some(json!(7)));
        }
        other => panic!("{other:?}"),
    }
    api_err(
        rt.subscribe_session(&id, Some(-1)).await,
        400,
        "validation_failed",
    );

    // removed, with the session as it was; the subscription ends.
    c.delete_session(&id).await.unwrap();
    let seen = read_until(&mut rt, "removed", |m| matches!(m, ServerMessage::Removed { .. })).await;
    match seen.last().unwrap() {
        ServerMessage::Removed { session_id, session } => {
            assert_eq!(session_id, &id);
            assert_eq!(session.as_ref().map(|s| s.title.as_str()), Some("watched"));
        }
        other => panic!("{other:?}"),
    }

    // On PostgreSQL, a second server's watchers see the first's turns.
    if !app.database_url.starts_with("sqlite") {
        let (_replica, other, _dir) = app.replica_with(fake_options(fake)).await;
        let mut far = other.realtime().await.unwrap();
        far.subscribe_project().await.unwrap();
        let id = c.create_session(&CreateSession::default()).await.unwrap().id;
        read_until(
            &mut far,
            "created on the other server",
            |m| matches!(m, ServerMessage::Created { session_id, .. } if *session_id == id),
        )
        .await;
        far.subscribe_session(&id, None).await.unwrap();
        fake.push(Reply::text("far"));
        c.run_agent(&id, "hi")
            .await
            .unwrap()
            .collect_turn()
            .await
            .unwrap();
        let seen = read_until(
            &mut far,
            "the turn's end on the other server",
            |m| matches!(m, ServerMessage::Patched { session, .. } if session.status == "active"),
        )
        .await;
        assert_eq!(
            patched_statuses(&seen, &id).first().map(String::as_str),
            Some("running")
        );
        let seen = if events(&seen).len() < 3 {
            read_until(&mut far, "the done event", |m| is_event(m, "done")).await
        } else {
            seen
        };
        assert!(events(&seen).iter().any(|(_, k)| k == "response"), "{seen:#?}");
        c.delete_session(&id).await.unwrap();
        let seen = read_until(&mut far, "removed on the other server", |m| {
            matches!(m, ServerMessage::Removed { .. })
        })
        .await;
        assert!(matches!(seen.last(), Some(ServerMessage::Removed { session_id, .. }) if *session_id == id));
    }
}

pub(crate) async fn realtime_authenticates_by_header_or_token(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let url = c.realtime_url_with_token("").unwrap();
    let bare = url.split('?').next().unwrap().to_owned();
    api_err(Realtime::connect(&bare).await, 401, "unauthorized");
    // An API key does not go in a URL.
    api_err(
        Realtime::connect(&c.realtime_url_with_token(&app.key).unwrap()).await,
        401,
        "unauthorized",
    );
    api_err(
        Realtime::connect(&c.realtime_url_with_token("kiln_tok_forged.sig").unwrap()).await,
        401,
        "unauthorized",
    );
    // Not a WebSocket request.
    let plain = reqwest::Client::new()
        .get(format!("{}/api/sdk/ws", c.base_url()))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 400);

    let mine = c.create_session(&CreateSession::default()).await.unwrap().id;
    let other = c.create_session(&CreateSession::default()).await.unwrap().id;
    // A project token in the query.
    let token = c.create_token(Some(60), None).await.unwrap().token;
    let mut rt = Realtime::connect(&c.realtime_url_with_token(&token).unwrap())
        .await
        .unwrap();
    rt.subscribe_session(&other, None).await.unwrap();
    // A session token: only its session, also in the project scope.
    let scoped = c.create_token(Some(60), Some(&mine)).await.unwrap().token;
    let mut rt = Realtime::connect(&c.realtime_url_with_token(&scoped).unwrap())
        .await
        .unwrap();
    api_err(rt.subscribe_session(&other, None).await, 404, "NOT_FOUND");
    rt.subscribe_project().await.unwrap();
    fake.push(Reply::text("other"));
    c.run_agent(&other, "hi")
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();
    fake.push(Reply::text("mine"));
    c.run_agent(&mine, "hi")
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();
    let seen = read_until(
        &mut rt,
        "the scoped session's news",
        |m| matches!(m, ServerMessage::Patched { session, .. } if session.status == "active"),
    )
    .await;
    for message in &seen {
        if let ServerMessage::Patched { session_id, .. } | ServerMessage::Created { session_id, .. } = message
        {
            assert_eq!(session_id, &mine, "{seen:#?}");
        }
    }
    // The scoped token also works in the header.
    let scoped_client = kiln_sdk::Client::new(c.base_url(), &scoped).unwrap();
    let mut rt = scoped_client.realtime().await.unwrap();
    assert_eq!(rt.subscribe_session(&mine, Some(0)).await.unwrap().after, 0);
}

/// A TCP proxy in front of the server whose connections the test can cut,
/// and which can refuse new ones for a while.
struct CuttableProxy {
    url: String,
    refusing: Arc<AtomicBool>,
    generation: Arc<AtomicUsize>,
}

impl CuttableProxy {
    async fn start(target: String) -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let refusing = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicUsize::new(0));
        let (r, g) = (refusing.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if r.load(Ordering::SeqCst) {
                    continue;
                }
                let (target, g) = (target.clone(), g.clone());
                tokio::spawn(async move {
                    let born = g.load(Ordering::SeqCst);
                    let Ok(outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut inbound, mut outbound) = (inbound, outbound);
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    let cut = async {
                        while g.load(Ordering::SeqCst) == born {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = copy => {}
                        () = cut => {}
                    }
                });
            }
        });
        CuttableProxy {
            url,
            refusing,
            generation,
        }
    }

    /// Cuts every open connection and refuses new ones until `resume`.
    fn cut(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn resume(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }
}

fn ended_turns(state: &SessionState) -> usize {
    state.turns.iter().filter(|t| t.end.is_some()).count()
}

async fn wait(
    handle: &kiln_sdk::SessionHandle,
    what: &str,
    ready: impl Fn(&SessionState) -> bool,
) -> Arc<SessionState> {
    tokio::time::timeout(Duration::from_secs(20), handle.wait_for(&ready))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}: {:#?}", handle.state()))
}

pub(crate) async fn session_handles_follow_turns_and_the_queue_and_reconnect(
    app: &TestApp,
    fake: &FakeProvider,
) {
    let c = &app.client;
    let id = c.create_session(&CreateSession::default()).await.unwrap().id;
    fake.push(Reply::text("before"));
    c.run_agent(&id, "earlier")
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();

    let target = c.base_url().trim_start_matches("http://").to_owned();
    let proxy = CuttableProxy::start(target).await;
    let through = kiln_sdk::Client::new(&proxy.url, &app.key).unwrap();
    api_err(through.watch_session("sess_nope").await, 404, "NOT_FOUND");
    let handle = through.watch_session(&id).await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    handle.on_change(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
    });

    // Hydrated: the earlier turn, replayed.
    let state = wait(&handle, "the earlier turn", |s| ended_turns(s) == 1).await;
    assert_eq!(state.turns[0].message.as_deref(), Some("earlier"));
    assert_eq!(state.turns[0].end.as_ref().map(|e| e.kind.as_str()), Some("done"));
    assert!(state.connected && !state.streaming && state.queued.is_empty());

    // A turn paused on input, with one queued behind it.
    fake.push(Reply::tool_call(
        "execute_js",
        json!({ "code": "await input({ type: 'confirm', message: 'Go on?' })" }),
    ));
    fake.push(Reply::text("answered"));
    fake.push(Reply::text("queued one ran"));
    c.enqueue_message(&id, "ask me").await.unwrap();
    let state = wait(&handle, "the pause", |s| {
        s.session.as_ref().is_some_and(|s| s.status == "awaiting_input")
    })
    .await;
    assert!(state.streaming);
    c.enqueue_message(&id, "after that").await.unwrap();
    let state = wait(&handle, "the queued turn", |s| s.queued.len() == 1).await;
    assert_eq!(state.queued[0].message, "after that");
    let request_id = state
        .events
        .iter()
        .find(|e| e.event.kind == "input_request")
        .and_then(|e| {
            e.event
                .args
                .as_ref()?
                .get("request_id")?
                .as_str()
                .map(str::to_owned)
        })
        .expect("the input request's id");
    c.respond_to_input(&id, &request_id, json!(true)).await.unwrap();
    let state = wait(&handle, "both turns", |s| {
        ended_turns(s) == 3 && s.queued.is_empty()
    })
    .await;
    assert_eq!(state.turns[2].message.as_deref(), Some("after that"));
    assert!(!state.streaming);
    assert!(calls.load(Ordering::SeqCst) >= 4);

    // The connection drops; a turn runs meanwhile; the handle reconnects
    // and resumes from its last event: nothing missed, nothing twice.
    proxy.cut();
    wait(&handle, "the disconnect", |s| !s.connected).await;
    fake.push(Reply::text("while away"));
    c.run_agent(&id, "meanwhile")
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();
    proxy.resume();
    let state = wait(&handle, "the turn run while away", |s| {
        s.connected && ended_turns(s) == 4
    })
    .await;
    assert_eq!(state.turns[3].message.as_deref(), Some("meanwhile"));
    let seqs: Vec<i64> = state.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert_eq!(state.last_seq, seqs.len() as i64);

    c.delete_session(&id).await.unwrap();
    let state = wait(&handle, "the removal", |s| s.removed).await;
    assert!(!state.streaming);
}
