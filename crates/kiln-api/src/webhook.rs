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
    /// The session's tokens after the event: `{"prompt", "completion"}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub usage: Value,
    /// The same for every attempt of one delivery: receivers deduplicate on it.
    pub delivery_id: String,
    pub created_at: DateTime<Utc>,
}

/// The hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`: the `v1`
/// part of [`SIGNATURE_HEADER`].
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    use hmac::Mac;
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

/// The whole [`SIGNATURE_HEADER`] value: `t=<timestamp>,v1=<signature>`.
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", signature(secret, timestamp, body))
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Why a webhook signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// The header is not `t=<unix seconds>,v1=<hex>`.
    Malformed,
    /// The timestamp is further than the tolerance from now (a replay).
    Stale,
    /// No `v1` matches the body under the secret.
    Mismatch,
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignatureError::Malformed => "the signature header is not t=<unix seconds>,v1=<hex>",
            SignatureError::Stale => "the signature's timestamp is outside the tolerance",
            SignatureError::Mismatch => "the signature does not match the body",
        })
    }
}

impl std::error::Error for SignatureError {}

/// Checks a delivery: `header` is the [`SIGNATURE_HEADER`] value, `body`
/// the raw request body, `now` the receiver's unix seconds; a timestamp more
/// than `tolerance_seconds` away is [`SignatureError::Stale`]. Any `v1`
/// part may match (room for a secret rotation); the comparison takes
/// constant time.
pub fn verify_signature(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_seconds: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            Some(("v1", v1)) => signatures.push(hex::decode(v1).map_err(|_| SignatureError::Malformed)?),
            _ => {}
        }
    }
    let (Some(timestamp), false) = (timestamp, signatures.is_empty()) else {
        return Err(SignatureError::Malformed);
    };
    if (now - timestamp).abs() > tolerance_seconds {
        return Err(SignatureError::Stale);
    }
    use hmac::Mac;
    let matched = signatures
        .iter()
        .any(|v1| mac(secret, timestamp, body).verify_slice(v1).is_ok());
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_secret_and_time() {
        let body = br#"{"event_type":"session.completed"}"#;
        let header = signature_header("s3cret", 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(
            verify_signature("s3cret", &header, body, 1_700_000_010, 300),
            Ok(())
        );
        assert_eq!(
            verify_signature("other", &header, body, 1_700_000_010, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature("s3cret", &header, b"{}", 1_700_000_010, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature("s3cret", &header, body, 1_700_001_000, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature("s3cret", "v1=abcd", body, 1_700_000_000, 300),
            Err(SignatureError::Malformed)
        );
        // The RFC 4231 test case 2 key and data, through the same MAC.
        let known = {
            use hmac::{KeyInit, Mac};
            let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
            m.update(b"what do ya want for nothing?");
            hex::encode(m.finalize().into_bytes())
        };
        assert_eq!(
            known,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
