//! Session webhooks (Kiln extension): set on create or replaced, told
//! about turns from a durable outbox, signed, retried with backoff until a
//! receiver answers 2xx, attempts visible through the deliveries endpoint.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use kiln_providers::fake::{FakeProvider, Reply};
use kiln_sdk::api::CreateSession;
use kiln_sdk::api::webhook::{WebhookConfig, WebhookDelivery, WebhookPayload};
use serde_json::json;

use crate::harness::{TestApp, api_err};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    signature: Option<String>,
    body: Bytes,
}

impl Received {
    fn payload(&self) -> WebhookPayload {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A webhook receiver on 127.0.0.1 that answers `failures` requests with
/// 500 before it answers 204.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    #[allow(
        clippy::disallowed_methods,
        reason = "a test's webhook receiver, not a Kiln route: it has no place in the OpenAPI document"
    )]
    async fn start(failures: usize) -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let seen = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let seen = seen.clone();
                async move {
                    let mut seen = seen.lock().unwrap();
                    seen.push(Received {
                        signature: headers
                            .get("x-kiln-signature")
                            .map(|v| v.to_str().unwrap().to_owned()),
                        body,
                    });
                    if seen.len() <= failures {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { url, got, task }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits (up to 20 s) until the session's deliveries satisfy `done`.
async fn deliveries_until(
    app: &TestApp,
    id: &str,
    what: &str,
    done: impl Fn(&[WebhookDelivery]) -> bool,
) -> Vec<WebhookDelivery> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let deliveries = app.client.list_webhook_deliveries(id).await.unwrap();
        if done(&deliveries) {
            return deliveries;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {deliveries:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hook(url: &str, events: Option<&[&str]>, secret: Option<&str>) -> WebhookConfig {
    WebhookConfig {
        url: url.to_owned(),
        events: events.map(|e| e.iter().map(|s| (*s).to_owned()).collect()),
        secret: secret.map(str::to_owned),
    }
}

pub(crate) async fn webhooks_are_signed_retried_and_listed(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    // The first attempt fails: the delivery is retried, not lost.
    let all = Receiver::start(1).await;
    let completed_only = Receiver::start(0).await;
    let id = c
        .create_session(&CreateSession {
            webhooks: Some(vec![
                hook(&all.url, None, Some("whsec_test")),
                hook(&completed_only.url, Some(&["session.completed"]), None),
            ]),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    let listed = c.list_webhooks(&id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed[0].has_secret && !listed[1].has_secret);
    assert_eq!(listed[0].events.len(), 5, "all events when none are chosen");
    assert_eq!(listed[1].events, ["session.completed"]);
    let raw = serde_json::to_string(&listed).unwrap();
    assert!(!raw.contains("whsec_test"), "a secret is never returned: {raw}");

    fake.push(Reply::text("hello").usage(7, 3));
    let events = c
        .run_agent(&id, "hi")
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();
    assert_eq!(events.last().unwrap().raw.kind, "done");

    let deliveries = deliveries_until(app, &id, "three deliveries", |d| {
        d.len() == 3 && d.iter().all(|d| d.delivered_at.is_some())
    })
    .await;
    // Newest first; the failed first attempt shows as a second attempt.
    let started = deliveries
        .iter()
        .find(|d| d.event_type == "session.started")
        .unwrap();
    let completed: Vec<&WebhookDelivery> = deliveries
        .iter()
        .filter(|d| d.event_type == "session.completed")
        .collect();
    assert_eq!(completed.len(), 2);
    assert!(deliveries.iter().all(|d| d.next_attempt_at.is_none()));
    assert!(deliveries.iter().all(|d| d.status_code == Some(204)));
    let attempts: i64 = deliveries
        .iter()
        .filter(|d| d.url == all.url)
        .map(|d| d.attempt)
        .sum();
    assert_eq!(
        attempts, 3,
        "one retry among the first receiver's two: {deliveries:#?}"
    );
    assert_eq!(started.url, all.url);

    // The signed receiver: every request verifies; a retry carries the
    // same delivery id.
    let got = all.received();
    assert_eq!(got.len(), 3, "{got:?}");
    for r in &got {
        let header = r.signature.as_deref().expect("signed");
        kiln_sdk::verify_webhook_signature("whsec_test", header, &r.body, Duration::from_secs(300)).unwrap();
        assert!(
            kiln_sdk::verify_webhook_signature("wrong", header, &r.body, Duration::from_secs(300)).is_err()
        );
    }
    // Sent at once, so in either order; the retry repeats its delivery id.
    let payloads: Vec<WebhookPayload> = got.iter().map(Received::payload).collect();
    let mut ids: Vec<&str> = payloads.iter().map(|p| p.delivery_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2, "two deliveries, one sent twice: {payloads:#?}");
    let start = payloads
        .iter()
        .find(|p| p.event_type == "session.started")
        .unwrap();
    assert_eq!(start.status, "running");
    let done = payloads
        .iter()
        .find(|p| p.event_type == "session.completed")
        .unwrap();
    assert_eq!(done.session_id, id);
    assert_eq!(done.status, "active");
    assert_eq!(done.error, None);
    assert_eq!(done.usage, json!({"prompt": 7, "completion": 3}));
    assert_eq!(done.run_id, start.run_id, "one turn");
    // The filtered, unsigned receiver got only the completion.
    let plain = completed_only.received();
    assert_eq!(plain.len(), 1);
    assert!(plain[0].signature.is_none());
    assert_eq!(plain[0].payload().event_type, "session.completed");

    // Waiting, failing and cancelling are told too.
    c.set_webhooks(
        &id,
        &[hook(
            &completed_only.url,
            Some(&["session.waiting", "session.failed", "session.cancelled"]),
            None,
        )],
    )
    .await
    .unwrap();
    fake.push(Reply::tool_call(
        "execute_js",
        json!({"code": "await input('Sure?')"}),
    ));
    let mut stream = c.run_agent(&id, "ask").await.unwrap();
    crate::agents::read_until(&mut stream, |e| e.raw.kind == "input_request").await;
    c.cancel_session(&id).await.unwrap();
    fake.push(Reply::status(400, "bad request"));
    c.run_agent(&id, "fail")
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();
    let tail = deliveries_until(app, &id, "waiting, cancelled, failed", |d| {
        d.iter().filter(|d| d.delivered_at.is_some()).count() == 6
    })
    .await;
    let kinds: Vec<&str> = tail[..3].iter().rev().map(|d| d.event_type.as_str()).collect();
    assert_eq!(kinds, ["session.waiting", "session.cancelled", "session.failed"]);
    // Sent at once when due together: found by type, not by order.
    let got: Vec<WebhookPayload> = completed_only.received().iter().map(Received::payload).collect();
    let of = |kind: &str| got.iter().find(|p| p.event_type == kind).unwrap().clone();
    let failed = of("session.failed");
    assert_eq!(failed.status, "error");
    assert!(failed.error.is_some());
    let cancelled = of("session.cancelled");
    assert_eq!(cancelled.status, "active");
    assert!(cancelled.error.is_some());
    assert_eq!(of("session.waiting").status, "awaiting_input");

    // Bad webhooks are refused before anything is written.
    let six: Vec<WebhookConfig> = (0..6).map(|_| hook(&all.url, None, None)).collect();
    api_err(c.set_webhooks(&id, &six).await, 400, "validation_failed");
    api_err(
        c.set_webhooks(&id, &[hook(&all.url, Some(&["session.exploded"]), None)])
            .await,
        400,
        "validation_failed",
    );
    api_err(
        c.set_webhooks(&id, &[hook("ftp://example.com/x", None, None)])
            .await,
        400,
        "validation_failed",
    );
    api_err(
        c.set_webhooks(&id, &[hook("not a url", None, None)]).await,
        400,
        "validation_failed",
    );
    let before = c.list_sessions(None, None).await.unwrap().len();
    api_err(
        c.create_session(&CreateSession {
            webhooks: Some(six),
            ..Default::default()
        })
        .await,
        400,
        "validation_failed",
    );
    assert_eq!(
        c.list_sessions(None, None).await.unwrap().len(),
        before,
        "no session half-made"
    );
    assert_eq!(c.list_webhooks(&id).await.unwrap().len(), 1, "unchanged");
    // Other projects and unknown sessions.
    let (_, other) = app.key_for("webhooks-other").await;
    api_err(other.list_webhooks(&id).await, 404, "NOT_FOUND");
    api_err(other.list_webhook_deliveries(&id).await, 404, "NOT_FOUND");
    api_err(other.set_webhooks(&id, &[]).await, 404, "NOT_FOUND");
    api_err(c.list_webhooks("missing").await, 404, "NOT_FOUND");
    c.set_webhooks(&id, &[]).await.unwrap();
    assert!(c.list_webhooks(&id).await.unwrap().is_empty());
}

/// A receiver that never answers 2xx: attempts back off and stop at the
/// limit; the turn is never held up.
pub(crate) async fn a_receiver_that_keeps_failing_is_given_up(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let down = Receiver::start(usize::MAX).await;
    let id = c
        .create_session(&CreateSession {
            webhooks: Some(vec![hook(&down.url, Some(&["session.completed"]), None)]),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    fake.push(Reply::text("fine"));
    let events = c
        .run_agent(&id, "hi")
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();
    assert_eq!(
        events.last().unwrap().raw.kind,
        "done",
        "the turn does not wait for receivers"
    );
    let max = 4; // TestOptions' webhooks.max_attempts
    let given_up = deliveries_until(app, &id, "the delivery to be given up", |d| {
        d.len() == 1 && d[0].attempt == max && d[0].next_attempt_at.is_none()
    })
    .await;
    assert_eq!(given_up[0].status_code, Some(500));
    assert!(given_up[0].error.as_deref().unwrap().contains("500"));
    assert!(given_up[0].delivered_at.is_none());
    assert_eq!(down.received().len(), max as usize);
}
