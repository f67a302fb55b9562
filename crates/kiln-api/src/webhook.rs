//! Kiln's session webhooks (an extension under `/api/sdk`): a session tells
//! up to five URLs about its turns, signed when a secret is set.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The header carrying a delivery's signature:
/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`.
pub const SIGNATURE_HEADER: &str = "X-Kiln-Signature";

/// The events a webhook can be told about.
pub mod webhook_events {
    /// A turn started.
    pub const SESSION_STARTED: &str = "session.started";
    /// A turn ended with `done`.
    pub const SESSION_COMPLETED: &str = "session.completed";
    /// A turn ended with an `error` other than a cancel.
    pub const SESSION_FAILED: &str = "session.failed";
    /// A turn was cancelled.
    pub const SESSION_CANCELLED: &str = "session.cancelled";
    /// A turn paused for a person's input or a client tool's result.
    pub const SESSION_WAITING: &str = "session.waiting";

    pub const ALL: [&str; 5] = [
        SESSION_STARTED,
        SESSION_COMPLETED,
        SESSION_FAILED,
        SESSION_CANCELLED,
        SESSION_WAITING,
    ];
}

/// One webhook of a session, as given on create or `PUT /agents/:id/webhooks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookConfig {
    #[serde(default)]
    pub url: String,
    /// Only these events (see [`webhook_events`]); left out: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// Signs each delivery (`X-Kiln-Signature`). Stored encrypted, never
    /// returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `PUT /agents/:id/webhooks`: the session's webhooks, replaced whole
/// (`[]` removes them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhooksUpdate {
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

/// A session's webhook as read back: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    pub url: String,
    /// The events it is told about (all of them when it gave none).
    pub events: Vec<String>,
    /// Whether deliveries are signed.
    pub has_secret: bool,
}

/// `GET` and `PUT /agents/:id/webhooks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
}

/// One delivery (an event for one URL) and its latest attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDelivery {
    pub id: String,
    pub event_type: String,
    pub url: String,
    /// Attempts made so far.
    pub attempt: i64,
    /// The receiver's status of the latest attempt.
    pub status_code: Option<i64>,
    /// Why the latest attempt failed.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When a 2xx answer arrived.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the next attempt is due; `null` once delivered or given up.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// `GET /agents/:id/webhook-deliveries`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDeliveryList {
    pub deliveries: Vec<WebhookDelivery>,
}

/// The JSON body a webhook receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookPayload {
    pub event_type: String,
    pub session_id: String,
    /// The turn.
    pub run_id: String,
    /// The session's status after the event.
    pub status: String,
    /// The turn's error message (`session.failed`, `session.cancelled`).
    pub error: Option<String>,
    /// The turn's tokens so far: `{"prompt", "completion"}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub usage: Value,
    /// The same for every attempt of one delivery: receivers deduplicate on it.
    pub delivery_id: String,
    pub created_at: DateTime<Utc>,
}
