//! Session webhooks (a Kiln extension): a session tells up to five URLs
//! when a turn starts, completes, fails, is cancelled or waits (for input or
//! a client tool's result).
//!
//! Durable and at least once: the store writes one delivery row per
//! (event, webhook) in the transaction that appends the event to the
//! session's log ([`outbox_event`] says which events), so a committed event
//! is never lost to a crash and turns never wait on a receiver. Every
//! server's sender claims due rows (moving `next_attempt_at` forward is the
//! claim, so two servers do not send one attempt), posts them through the
//! [`WebhookTransport`] port with a signature when the webhook has a secret,
//! and records the attempt: a 2xx delivers it; anything else is retried
//! after 1 s, 2 s, 4 s … (capped at 5 min) up to [`WebhookConfig::max_attempts`],
//! then given up. A receiver sees the same `delivery_id` on every attempt.
//!
//! Targets: `https://` only, unless the operator allows private networks
//! (development), which also permits `http://`; private, loopback and
//! link-local addresses are refused after DNS resolution by the transport,
//! and literal ones already when the webhook is set.

pub mod store;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;

use crate::auth::AuthContext;
use crate::crypto::{Kek, SealedValue};
use crate::error::{Error, Result};
use crate::ids::{ProjectId, SessionId, TurnId, WebhookDeliveryId};
use crate::runtime::{AgentRuntime, EventBody, TurnErrorCode};
use crate::time::{Timestamp, now};
use store::{Attempt, WebhookStore};

/// Webhooks per session at most.
pub const MAX_WEBHOOKS: usize = 5;
/// The longest webhook URL.
pub const MAX_URL_BYTES: usize = 2048;
/// The longest secret.
pub const MAX_SECRET_BYTES: usize = 256;
/// Deliveries one sender pass claims at most (and sends at once).
const BATCH: i64 = 32;
/// How long a claimed attempt may take before another server may retry it.
const CLAIM_LEASE: chrono::Duration = chrono::Duration::seconds(60);
/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What a webhook is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookEvent {
    Started,
    Completed,
    Failed,
    Cancelled,
    Waiting,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 5] = [
        WebhookEvent::Started,
        WebhookEvent::Completed,
        WebhookEvent::Failed,
        WebhookEvent::Cancelled,
        WebhookEvent::Waiting,
    ];

    /// The wire (and storage) name; `kiln_api::webhook::webhook_events`
    /// lists the same (a server test checks).
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::Started => "session.started",
            WebhookEvent::Completed => "session.completed",
            WebhookEvent::Failed => "session.failed",
            WebhookEvent::Cancelled => "session.cancelled",
            WebhookEvent::Waiting => "session.waiting",
        }
    }

    pub fn parse(name: &str) -> Option<WebhookEvent> {
        WebhookEvent::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

/// The webhook event an appended event raises, with the turn's error
/// message when it failed or was cancelled. The store calls it inside the
/// append's transaction.
pub fn outbox_event(body: &EventBody) -> Option<(WebhookEvent, Option<&str>)> {
    match body {
        EventBody::UserMessage { .. } => Some((WebhookEvent::Started, None)),
        EventBody::Done { .. } => Some((WebhookEvent::Completed, None)),
        EventBody::Error {
            code: TurnErrorCode::Cancelled,
            message,
        } => Some((WebhookEvent::Cancelled, Some(message))),
        EventBody::Error { message, .. } => Some((WebhookEvent::Failed, Some(message))),
        EventBody::InputRequest { .. } => Some((WebhookEvent::Waiting, None)),
        EventBody::ToolCall { client: true, .. } => Some((WebhookEvent::Waiting, None)),
        _ => None,
    }
}

/// A webhook as given (on create or `PUT /agents/:id/webhooks`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WebhookInput {
    pub url: String,
    /// `None`: every event.
    pub events: Option<Vec<String>>,
    pub secret: Option<String>,
}

/// A checked webhook, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedWebhook {
    url: String,
    /// Empty: every event.
    events: Vec<WebhookEvent>,
    secret: Option<String>,
}

/// A session's webhook as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionWebhook {
    pub url: String,
    /// Empty: every event.
    pub events: Vec<WebhookEvent>,
    pub secret: Option<SealedValue>,
    pub created_at: Timestamp,
}

/// One delivery (an event for one webhook) and its latest attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: WebhookDeliveryId,
    pub project_id: ProjectId,
    pub session_id: SessionId,
    pub url: String,
    pub event: WebhookEvent,
    pub run_id: TurnId,
    /// The session's status after the event.
    pub session_status: String,
    pub session_error: Option<String>,
    /// The session's tokens after the event.
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    pub next_attempt_at: Option<Timestamp>,
}

/// A claimed delivery with its webhook's sealed secret (`None`: unsigned;
/// the webhook is gone: `webhook_gone`).
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    pub delivery: Delivery,
    pub secret: Option<SealedValue>,
    pub webhook_gone: bool,
}

/// Sends deliveries over HTTP (an adapter: kiln-providers).
#[async_trait]
pub trait WebhookTransport: Send + Sync {
    /// Whether webhooks may target `url`: `https://` (or `http://` when the
    /// operator allows private networks), and no private address literal.
    /// Names are checked again, resolved, on every delivery.
    fn check_url(&self, url: &str) -> std::result::Result<(), String>;
    /// Posts the JSON `body`, signed with `secret` at `timestamp` when
    /// given. Answers the receiver's status, or why nothing was answered.
    async fn post(
        &self,
        url: &str,
        body: String,
        secret: Option<String>,
        timestamp: i64,
    ) -> std::result::Result<u16, String>;
}

/// The operator's webhook settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Attempts before a delivery is given up.
    pub max_attempts: i64,
    /// The first retry's wait; each next one doubles it.
    pub first_backoff: Duration,
    /// How often the sender looks for due deliveries.
    pub poll: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            max_attempts: 10,
            first_backoff: Duration::from_secs(1),
            poll: Duration::from_millis(500),
        }
    }
}

/// The webhook service: sessions' webhooks, their deliveries, the sender.
pub struct Webhooks {
    store: Arc<dyn WebhookStore>,
    runtime: Arc<AgentRuntime>,
    /// Seals secrets; without one, a webhook with a secret is refused like
    /// a vault secret (`SecretsDisabled`).
    kek: Option<Kek>,
    transport: Arc<dyn WebhookTransport>,
    config: WebhookConfig,
}

/// The seal's context of a webhook secret.
fn secret_context(session: &SessionId) -> String {
    format!("webhook:{session}")
}

impl Webhooks {
    pub fn new(
        store: Arc<dyn WebhookStore>,
        runtime: Arc<AgentRuntime>,
        kek: Option<Kek>,
        transport: Arc<dyn WebhookTransport>,
        config: WebhookConfig,
    ) -> Webhooks {
        Webhooks {
            store,
            runtime,
            kek,
            transport,
            config,
        }
    }

    /// Checks webhooks before anything is written: at most five, each URL
    /// one the transport accepts, known event names, a secret of at most
    /// 256 bytes.
    pub fn check(&self, webhooks: Vec<WebhookInput>) -> Result<Vec<CheckedWebhook>> {
        let invalid = |message: String| Error::validation(message, Some("webhooks"));
        if webhooks.len() > MAX_WEBHOOKS {
            return Err(invalid(format!("at most {MAX_WEBHOOKS} webhooks per session")));
        }
        webhooks
            .into_iter()
            .map(|w| {
                if w.url.len() > MAX_URL_BYTES {
                    return Err(invalid(format!(
                        "a webhook URL takes at most {MAX_URL_BYTES} bytes"
                    )));
                }
                self.transport.check_url(&w.url).map_err(|why| {
                    invalid(format!(
                        "webhook URL `{}`: {why}",
                        crate::runtime::event::first_chars(&w.url, 120)
                    ))
                })?;
                let mut events = Vec::new();
                for name in w.events.unwrap_or_default() {
                    let event = WebhookEvent::parse(&name).ok_or_else(|| {
                        invalid(format!(
                            "unknown webhook event `{}`; one of {}",
                            crate::runtime::event::first_chars(&name, 60),
                            WebhookEvent::ALL.map(WebhookEvent::as_str).join(", ")
                        ))
                    })?;
                    if !events.contains(&event) {
                        events.push(event);
                    }
                }
                let secret = w.secret.filter(|s| !s.is_empty());
                if secret.as_ref().is_some_and(|s| s.len() > MAX_SECRET_BYTES) {
                    return Err(invalid(format!(
                        "a webhook secret takes at most {MAX_SECRET_BYTES} bytes"
                    )));
                }
                if secret.is_some() && self.kek.is_none() {
                    return Err(Error::SecretsDisabled);
                }
                Ok(CheckedWebhook {
                    url: w.url,
                    events,
                    secret,
                })
            })
            .collect()
    }

    /// Stores checked webhooks for a session (on create, after
    /// [`Webhooks::check`]), replacing any it had.
    pub async fn attach(
        &self,
        ctx: &AuthContext,
        id: &SessionId,
        webhooks: Vec<CheckedWebhook>,
    ) -> Result<Vec<SessionWebhook>> {
        let at = now();
        let stored = webhooks
            .into_iter()
            .map(|w| {
                let secret = match (w.secret, &self.kek) {
                    (None, _) => None,
                    (Some(secret), Some(kek)) => Some(kek.seal(secret.as_bytes(), &secret_context(id))),
                    (Some(_), None) => return Err(Error::SecretsDisabled),
                };
                Ok(SessionWebhook {
                    url: w.url,
                    events: w.events,
                    secret,
                    created_at: at,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if !self.store.replace_webhooks(&ctx.project.id, id, &stored).await? {
            return Err(Error::not_found(crate::error::EntityKind::Session, id));
        }
        Ok(stored)
    }

    /// `PUT /agents/:id/webhooks`: replaces the session's webhooks whole.
    pub async fn replace(
        &self,
        ctx: &AuthContext,
        id: &SessionId,
        webhooks: Vec<WebhookInput>,
    ) -> Result<Vec<SessionWebhook>> {
        self.runtime.get_session(ctx, id).await?;
        let checked = self.check(webhooks)?;
        self.attach(ctx, id, checked).await
    }

    /// `GET /agents/:id/webhooks`.
    pub async fn list(&self, ctx: &AuthContext, id: &SessionId) -> Result<Vec<SessionWebhook>> {
        self.runtime.get_session(ctx, id).await?;
        Ok(self.store.list_webhooks(&ctx.project.id, id).await?)
    }

    /// `GET /agents/:id/webhook-deliveries`: newest first, at most 200.
    pub async fn deliveries(&self, ctx: &AuthContext, id: &SessionId) -> Result<Vec<Delivery>> {
        self.runtime.get_session(ctx, id).await?;
        Ok(self.store.list_deliveries(&ctx.project.id, id, 200).await?)
    }

    /// One sender pass: claims due deliveries and sends them at once.
    /// Returns how many it claimed.
    pub async fn send_due(&self) -> Result<usize> {
        let at = now();
        let due = self.store.claim_deliveries(at, at + CLAIM_LEASE, BATCH).await?;
        let claimed = due.len();
        futures_util::stream::iter(due)
            .for_each_concurrent(None, |due| async move {
                let attempt = self.attempt(due).await;
                if let Err(e) = self.store.record_attempt(&attempt).await {
                    tracing::warn!(error = %e, "recording a webhook attempt failed; it is retried after its lease");
                }
            })
            .await;
        Ok(claimed)
    }

    async fn attempt(&self, due: DueDelivery) -> Attempt {
        let d = &due.delivery;
        // The claim counted this attempt already.
        let attempt = d.attempt;
        let result = if due.webhook_gone {
            Err("the webhook was removed from the session".to_owned())
        } else {
            let secret = match &due.secret {
                None => Ok(None),
                Some(sealed) => self
                    .kek
                    .as_ref()
                    .ok_or(Error::SecretsDisabled)
                    .and_then(|kek| kek.open(sealed, &secret_context(&d.session_id)))
                    .map(|s| Some(String::from_utf8_lossy(&s).into_owned()))
                    .map_err(|_| "the webhook's secret cannot be opened with this server's key".to_owned()),
            };
            match secret {
                Ok(secret) => {
                    let body = payload(d).to_string();
                    self.transport.post(&d.url, body, secret, now().timestamp()).await
                }
                Err(e) => Err(e),
            }
        };
        let at = now();
        let (status_code, error) = match result {
            Ok(status) if (200..300).contains(&status) => {
                return Attempt {
                    id: d.id.clone(),
                    status_code: Some(i64::from(status)),
                    error: None,
                    delivered_at: Some(at),
                    next_attempt_at: None,
                    failed: false,
                };
            }
            Ok(status) => (Some(i64::from(status)), format!("the receiver answered {status}")),
            Err(e) => (None, e),
        };
        let give_up = due.webhook_gone || attempt >= self.config.max_attempts;
        let next_attempt_at = (!give_up).then(|| {
            let wait = self
                .config
                .first_backoff
                .saturating_mul(1u32 << (attempt - 1).clamp(0, 20) as u32)
                .min(MAX_BACKOFF);
            at + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::seconds(300))
        });
        Attempt {
            id: d.id.clone(),
            status_code,
            error: Some(error),
            delivered_at: None,
            next_attempt_at,
            failed: give_up,
        }
    }

    /// The sender on this server until `shutdown`.
    pub async fn run_sender(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        loop {
            let claimed = match self.send_due().await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "a webhook sender pass failed; the next one retries");
                    0
                }
            };
            // A full batch: there may be more due at once.
            if claimed as i64 == BATCH {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(self.config.poll) => {}
            }
        }
    }
}

/// The JSON a receiver gets (`kiln_api::webhook::WebhookPayload`).
fn payload(d: &Delivery) -> serde_json::Value {
    serde_json::json!({
        "event_type": d.event.as_str(),
        "session_id": d.session_id.as_str(),
        "run_id": d.run_id.as_str(),
        "status": d.session_status,
        "error": d.session_error,
        "usage": {"prompt": d.prompt_tokens, "completion": d.completion_tokens},
        "delivery_id": d.id.as_str(),
        "created_at": d.created_at,
    })
}
