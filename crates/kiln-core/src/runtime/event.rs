//! What happens in a turn, as the durable event log records it. The HTTP
//! edge turns each [`EventBody`] into the contract's `AgentEvent`; the store
//! keeps it as JSON (the serde form below is the storage format, not the
//! wire's).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{EventId, TurnId};
use crate::llm::Usage;
use crate::time::Timestamp;

/// What kind of event an [`EventBody`] is. The wire spelling of each is in
/// `kiln_api::agent::event_types`, reached by the HTTP edge's exhaustive
/// mapping; [`EventKind::storage_name`] is the database's (`step_type`),
/// equal by design so stored logs read the same as streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The message that starts a turn: a step, never streamed.
    UserMessage,
    SandboxEvent,
    ExecuteJs,
    ExecuteJsResult,
    ToolCall,
    ToolResult,
    DataUpdate,
    Response,
    InputRequest,
    Error,
    Done,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::UserMessage,
        EventKind::SandboxEvent,
        EventKind::ExecuteJs,
        EventKind::ExecuteJsResult,
        EventKind::ToolCall,
        EventKind::ToolResult,
        EventKind::DataUpdate,
        EventKind::Response,
        EventKind::InputRequest,
        EventKind::Error,
        EventKind::Done,
    ];

    /// The `step_type` column's value (storage format).
    pub fn storage_name(self) -> &'static str {
        match self {
            EventKind::UserMessage => "user_message",
            EventKind::SandboxEvent => "sandbox_event",
            EventKind::ExecuteJs => "execute_js",
            EventKind::ExecuteJsResult => "execute_js_result",
            EventKind::ToolCall => "tool_call",
            EventKind::ToolResult => "tool_result",
            EventKind::DataUpdate => "data_update",
            EventKind::Response => "response",
            EventKind::InputRequest => "input_request",
            EventKind::Error => "error",
            EventKind::Done => "done",
        }
    }

    pub fn from_storage_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.storage_name() == name)
    }
}

/// Why a turn ended in an `error` event. The wire spelling of each is in
/// `kiln_api::agent::turn_error_codes`; the serde form (snake case of the
/// variant) is the storage format, equal by design.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnErrorCode {
    /// `cancel`, from any server.
    Cancelled,
    StepLimit,
    TimeLimit,
    TokenLimit,
    /// `input()` was not answered in time.
    InputTimeout,
    /// The model failed mid-turn.
    UpstreamError,
    /// The server running the turn stopped (shutdown, crash, lost claim).
    Interrupted,
    SessionDeleted,
    /// A client tool call got no result in time.
    ToolTimeout,
    #[serde(rename = "internal_error")]
    Internal,
}

impl TurnErrorCode {
    pub const ALL: [TurnErrorCode; 10] = [
        TurnErrorCode::Cancelled,
        TurnErrorCode::StepLimit,
        TurnErrorCode::TimeLimit,
        TurnErrorCode::TokenLimit,
        TurnErrorCode::InputTimeout,
        TurnErrorCode::UpstreamError,
        TurnErrorCode::Interrupted,
        TurnErrorCode::SessionDeleted,
        TurnErrorCode::ToolTimeout,
        TurnErrorCode::Internal,
    ];
}

/// Event contents are cut to this many bytes (the contract's lines must stay
/// under 64 KiB, and a result may be as long again).
pub const MAX_EVENT_CONTENT_BYTES: usize = 16 * 1024;
/// A result whose JSON is longer is replaced by its truncated rendering.
pub const MAX_EVENT_RESULT_BYTES: usize = 32 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    /// The message that started the turn (a step, never streamed).
    UserMessage { content: String },
    /// Model text before a code block (`kind: "llm"`), or a primitive call
    /// inside the sandbox (`kind: "search"`, `"fetch"`, `"ai"`, ...).
    SandboxEvent {
        kind: String,
        summary: String,
        content: String,
        #[serde(default)]
        tokens: Option<Usage>,
    },
    /// A code block about to run.
    ExecuteJs {
        code: String,
        #[serde(default)]
        tokens: Option<Usage>,
        /// The model's tool-call id; `None` when the code came as a fenced
        /// block in its text.
        #[serde(default)]
        call_id: Option<String>,
    },
    /// The block finished: readable `content`, raw `result`, and the error
    /// when it failed.
    ExecuteJsResult {
        content: String,
        result: Value,
        #[serde(default)]
        error: Option<String>,
    },
    /// A function-call tool was invoked.
    ToolCall {
        tool: String,
        args: Map<String, Value>,
        #[serde(default)]
        call_id: Option<String>,
        /// One of the session's client tools: the client answers it
        /// (`POST /agents/:id/tool-results` with this `call_id`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        client: bool,
    },
    /// That tool returned.
    ToolResult {
        tool: String,
        result: Value,
        content: String,
        /// A client tool's call id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call_id: Option<String>,
    },
    /// `data.set` changed these keys.
    DataUpdate { changes: Map<String, Value> },
    /// The turn's answer.
    Response {
        content: String,
        #[serde(default)]
        tokens: Option<Usage>,
    },
    /// `input()` is waiting for `POST /agents/:id/input`.
    InputRequest {
        request_id: String,
        input_type: String,
        message: String,
        options: Vec<String>,
        placeholder: String,
    },
    /// Terminal: the turn failed.
    Error { message: String, code: TurnErrorCode },
    /// Terminal: the turn finished.
    Done { steps: i64, tokens: Usage },
}

impl EventBody {
    pub fn kind(&self) -> EventKind {
        match self {
            EventBody::UserMessage { .. } => EventKind::UserMessage,
            EventBody::SandboxEvent { .. } => EventKind::SandboxEvent,
            EventBody::ExecuteJs { .. } => EventKind::ExecuteJs,
            EventBody::ExecuteJsResult { .. } => EventKind::ExecuteJsResult,
            EventBody::ToolCall { .. } => EventKind::ToolCall,
            EventBody::ToolResult { .. } => EventKind::ToolResult,
            EventBody::DataUpdate { .. } => EventKind::DataUpdate,
            EventBody::Response { .. } => EventKind::Response,
            EventBody::InputRequest { .. } => EventKind::InputRequest,
            EventBody::Error { .. } => EventKind::Error,
            EventBody::Done { .. } => EventKind::Done,
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self, EventBody::Error { .. } | EventBody::Done { .. })
    }

    /// Whether clients see it on the event stream (the user message is a
    /// step only).
    pub fn is_streamed(&self) -> bool {
        !matches!(self, EventBody::UserMessage { .. })
    }

    /// The LLM usage this event closes, if it closes a call.
    pub fn tokens(&self) -> Option<Usage> {
        match self {
            EventBody::SandboxEvent { tokens, .. }
            | EventBody::ExecuteJs { tokens, .. }
            | EventBody::Response { tokens, .. } => *tokens,
            _ => None,
        }
    }

    /// The step this event is stored as: `(content, tool_name, tool_args)`;
    /// `None` for terminal events, which are not steps.
    pub fn step_fields(&self) -> Option<(String, String, Value)> {
        let empty = || Value::Object(Map::new());
        Some(match self {
            EventBody::UserMessage { content } => (content.clone(), String::new(), empty()),
            EventBody::SandboxEvent {
                kind,
                summary,
                content,
                ..
            } => (
                content.clone(),
                String::new(),
                serde_json::json!({ "kind": kind, "summary": summary }),
            ),
            EventBody::ExecuteJs { code, .. } => (
                code.clone(),
                "execute_js".to_owned(),
                serde_json::json!({ "code": code }),
            ),
            EventBody::ExecuteJsResult { content, error, .. } => (
                content.clone(),
                "execute_js".to_owned(),
                match error {
                    Some(error) => serde_json::json!({ "error": error }),
                    None => empty(),
                },
            ),
            EventBody::ToolCall { tool, args, .. } => {
                (String::new(), tool.clone(), Value::Object(args.clone()))
            }
            EventBody::ToolResult { tool, content, .. } => (content.clone(), tool.clone(), empty()),
            EventBody::DataUpdate { changes } => {
                (String::new(), String::new(), Value::Object(changes.clone()))
            }
            EventBody::Response { content, .. } => (content.clone(), String::new(), empty()),
            EventBody::InputRequest {
                request_id,
                input_type,
                message,
                options,
                placeholder,
            } => (
                message.clone(),
                String::new(),
                serde_json::json!({
                    "request_id": request_id,
                    "input_type": input_type,
                    "message": message,
                    "options": options,
                    "placeholder": placeholder,
                }),
            ),
            EventBody::Error { .. } | EventBody::Done { .. } => return None,
        })
    }
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: EventId,
    /// Per session, from 1, without gaps.
    pub seq: i64,
    pub turn_id: TurnId,
    /// Set when the event is a step.
    pub step_index: Option<i64>,
    pub body: EventBody,
    /// Time since the previous event of the turn (for steps).
    pub duration_ms: i64,
    pub created_at: Timestamp,
}

/// Cuts `text` to at most `max` bytes on a char boundary, marking the cut.
pub fn truncate_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(20);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [truncated]", &text[..end])
}

/// At most `max` characters of `text`, with `…` when cut (summaries).
pub fn first_chars(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// A JSON value as readable text: strings as they are, the rest as JSON.
pub fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `result` as the event carries it: itself when its JSON is small enough,
/// else a truncated string rendering.
pub fn bounded_result(result: Value) -> Value {
    let rendered = result.to_string();
    if rendered.len() <= MAX_EVENT_RESULT_BYTES {
        result
    } else {
        Value::String(truncate_text(&rendered, MAX_EVENT_RESULT_BYTES))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_results_become_truncated_strings() {
        let small = serde_json::json!({"a": 1});
        assert_eq!(bounded_result(small.clone()), small);
        let big = Value::String("é".repeat(40_000));
        let Value::String(cut) = bounded_result(big) else {
            panic!("a string")
        };
        assert!(cut.len() <= MAX_EVENT_RESULT_BYTES);
        assert!(cut.ends_with("[truncated]"));
    }

    #[test]
    fn storage_form_round_trips() {
        let body = EventBody::InputRequest {
            request_id: "r1".into(),
            input_type: "choice".into(),
            message: "Pick".into(),
            options: vec!["a".into(), "b".into()],
            placeholder: String::new(),
        };
        let json = serde_json::to_string(&body).unwrap();
        assert_eq!(serde_json::from_str::<EventBody>(&json).unwrap(), body);
        assert_eq!(body.kind(), EventKind::InputRequest);
        assert!(!body.is_terminal());
        assert!(
            EventBody::Done {
                steps: 1,
                tokens: Usage::default()
            }
            .step_fields()
            .is_none()
        );
    }
}
