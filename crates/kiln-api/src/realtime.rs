//! The realtime channel (a Kiln extension): `GET /api/sdk/ws`, a WebSocket
//! of JSON text messages, each with a `type`.
//!
//! The client subscribes to its project's sessions (`created`, `patched`,
//! `removed`) and to single sessions (their event log from a cursor, then
//! live, through every turn, plus their own `patched` and `removed`).
//! Every message the client sends may carry an `id`, echoed on the answer
//! (`subscribed`, `unsubscribed`, `pong` or `error`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::{AgentEvent, AgentSession};
use crate::error::ErrorBody;

/// The `scope` of a project subscription.
pub const SCOPE_PROJECT: &str = "project";
/// The `scope` the server names on a session subscription's answer.
pub const SCOPE_SESSION: &str = "session";
/// Sessions one connection may follow at once.
pub const MAX_SESSION_SUBSCRIPTIONS: usize = 100;
/// Largest message a client may send, in bytes.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 64 * 1024;

/// A message from the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// `{"type":"subscribe","scope":"project"}` or
    /// `{"type":"subscribe","session_id":"…","after":12}`.
    Subscribe(Subscription),
    /// The same shape as `subscribe`; `after` is ignored.
    Unsubscribe(Subscription),
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
    },
}

/// What a `subscribe` or `unsubscribe` names: the project (`scope`) or one
/// session (`session_id`), exactly one of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Replay the session's events after this sequence number (0: all of
    /// them); left out, only what comes next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    /// Echoed on the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
}

impl Subscription {
    pub fn project() -> Subscription {
        Subscription {
            scope: Some(SCOPE_PROJECT.into()),
            ..Subscription::default()
        }
    }

    pub fn session(session_id: impl Into<String>, after: Option<i64>) -> Subscription {
        Subscription {
            session_id: Some(session_id.into()),
            after,
            ..Subscription::default()
        }
    }
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to `subscribe`. For a session: the session now, and the
    /// cursor its `event` messages follow from (`after`).
    Subscribed {
        scope: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<AgentSession>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
    },
    Unsubscribed {
        scope: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
    },
    /// A session of the project was created.
    Created {
        session_id: String,
        session: AgentSession,
    },
    /// A session's status, usage or step count changed: the session now.
    Patched {
        session_id: String,
        session: AgentSession,
    },
    /// A session was deleted: the session as it was. `session` is `null`
    /// only when another server deleted a session this one never read.
    Removed {
        session_id: String,
        session: Option<AgentSession>,
    },
    /// One event of a subscribed session's log, in order.
    Event {
        session_id: String,
        seq: i64,
        event: AgentEvent,
    },
    /// The project's news came faster than this connection read it and
    /// some was lost: read the sessions list again.
    Resync { scope: String },
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
    },
    /// A message could not be served: the contract's error body, plus the
    /// `id` of the message it answers (and its `session_id`, if any). The
    /// connection stays open.
    Error {
        #[serde(flatten)]
        error: ErrorBody,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
    },
}
