//! Agent sessions, their steps and the turn event stream (CONTRACT §2.7),
//! plus Kiln's additions: cancel and resumable event streams.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// On a `run` response: the sequence number of the turn's user message, the
/// cursor to resume from (`GET /agents/:id/events?after=`) when the stream
/// drops before its first event.
pub const EVENT_CURSOR_HEADER: &str = "kiln-event-cursor";

/// The event types of a turn (`AgentEvent.type`), and the step type of the
/// user message that starts it (`AgentStep.step_type`).
pub mod event_types {
    /// A step only, never streamed.
    pub const USER_MESSAGE: &str = "user_message";
    pub const SANDBOX_EVENT: &str = "sandbox_event";
    pub const EXECUTE_JS: &str = "execute_js";
    pub const EXECUTE_JS_RESULT: &str = "execute_js_result";
    pub const TOOL_CALL: &str = "tool_call";
    pub const TOOL_RESULT: &str = "tool_result";
    pub const DATA_UPDATE: &str = "data_update";
    pub const RESPONSE: &str = "response";
    pub const INPUT_REQUEST: &str = "input_request";
    pub const ERROR: &str = "error";
    pub const DONE: &str = "done";
    /// First on a studio replay's stream: `content` and `args.session_id`
    /// are the new session, `args.source_session_id` and `args.from_step`
    /// what it replays.
    pub const REPLAY_STARTED: &str = "replay_started";

    /// Every type Kiln emits.
    pub const ALL: [&str; 12] = [
        USER_MESSAGE,
        SANDBOX_EVENT,
        EXECUTE_JS,
        EXECUTE_JS_RESULT,
        TOOL_CALL,
        TOOL_RESULT,
        DATA_UPDATE,
        RESPONSE,
        INPUT_REQUEST,
        ERROR,
        DONE,
        REPLAY_STARTED,
    ];
}

/// The `code` of a terminal `error` event (a Kiln addition; clients that do
/// not know it ignore it).
pub mod turn_error_codes {
    /// `POST /agents/:id/cancel` stopped the turn.
    pub const CANCELLED: &str = "cancelled";
    /// The turn used its steps (`--agent-max-steps`).
    pub const STEP_LIMIT: &str = "step_limit";
    /// The turn ran past its time (`--agent-max-turn-secs`).
    pub const TIME_LIMIT: &str = "time_limit";
    /// The turn used its tokens (`--agent-max-turn-tokens`).
    pub const TOKEN_LIMIT: &str = "token_limit";
    /// An `input()` request was not answered in time.
    pub const INPUT_TIMEOUT: &str = "input_timeout";
    /// The model provider failed.
    pub const UPSTREAM_ERROR: &str = "upstream_error";
    /// The server running the turn stopped before it ended.
    pub const INTERRUPTED: &str = "interrupted";
    /// The session was deleted while the turn ran.
    pub const SESSION_DELETED: &str = "session_deleted";
    /// A client tool call got no result in time (`--agent-input-timeout-secs`).
    pub const TOOL_TIMEOUT: &str = "tool_timeout";
    /// Something inside Kiln failed.
    pub const INTERNAL: &str = "internal_error";

    /// Every code Kiln emits.
    pub const ALL: [&str; 10] = [
        TOOL_TIMEOUT,
        CANCELLED,
        STEP_LIMIT,
        TIME_LIMIT,
        TOKEN_LIMIT,
        INPUT_TIMEOUT,
        UPSTREAM_ERROR,
        INTERRUPTED,
        SESSION_DELETED,
        INTERNAL,
    ];
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentSession {
    pub id: String,
    pub project_id: String,
    pub app_id: String,
    pub title: String,
    pub system_prompt: String,
    /// The resolved model, `provider/model`.
    pub model: String,
    /// `{"tools": [...]}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub tools_config: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Value,
    /// `active`, `running`, `awaiting_input`, `awaiting_tool` or `error`.
    pub status: String,
    /// The search scope: `null` = every index of the project, `[]` = none.
    pub index_ids: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub step_count: i64,
    pub duration_ms: i64,
    pub finished_at: Option<DateTime<Utc>>,
    /// Kiln: the agent the session runs (`null` for an ad-hoc session).
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Kiln: the agent version it runs (`null` on a draft or ad hoc).
    #[serde(default)]
    pub agent_version_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentStep {
    pub id: String,
    pub session_id: String,
    pub step_index: i64,
    /// The event type, or `user_message`.
    pub step_type: String,
    pub content: String,
    pub tool_name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub tool_args: Value,
    pub duration_ms: i64,
    pub created_at: DateTime<Utc>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateSession {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// `live` (default) or `draft`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Extra function-call tools: `search`, `fetch`, `list_stores`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Value>,
    /// Left out or `null`: every index; `[]`: no search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_ids: Option<Vec<String>>,
    /// Kiln: tools the client runs. A call pauses the turn (`awaiting_tool`)
    /// until `POST /agents/:id/tool-results` answers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_tools: Option<Vec<ClientTool>>,
    /// Kiln: webhooks told about the session's turns (at most 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<Vec<crate::webhook::WebhookConfig>>,
}

/// A tool the client runs, as the model sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClientTool {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A JSON Schema of the arguments (an object schema); left out: no
    /// arguments.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: Value,
}

/// `POST /agents/:id/tool-results`: exactly one of `result` and `error`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolResultBody {
    #[serde(default)]
    pub call_id: String,
    /// The tool's result (any JSON, `null` included).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<Value>,
    /// The tool failed: the model reads `{"error": <this>}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A field that is present, even as `null`, is `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// `POST /agents/:id/messages` (202): the turn runs now or waits its turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Enqueued {
    /// The turn's id, kept from the queue to its run.
    pub id: String,
    /// `running` or `queued`.
    pub status: String,
    /// 1-based place in the queue; 0 when running.
    pub queue_position: i64,
}

/// One turn waiting in a session's queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueuedTurn {
    pub id: String,
    pub message: String,
    /// 1-based; 1 runs next.
    pub queue_position: i64,
    pub created_at: DateTime<Utc>,
}

/// `GET /agents/:id/queue`, and `PUT`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueList {
    pub queue: Vec<QueuedTurn>,
}

/// `PUT /agents/:id/queue`: these queued turns first, in this order; the
/// others follow as they were.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueOrder {
    #[serde(default)]
    pub order: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionList {
    pub sessions: Vec<AgentSession>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionDetail {
    pub session: AgentSession,
    pub steps: Vec<AgentStep>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunAgent {
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InputAnswer {
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub value: Value,
}

/// `{"ok": true}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Acknowledged {
    pub ok: bool,
}

/// `POST /agents/:id/cancel`: the session after its turn ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CancelResult {
    pub ok: bool,
    pub session: AgentSession,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SystemPrompt {
    pub prompt: String,
}

/// `GET /agents/:id/events?after=N`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct EventsQuery {
    /// Replay events with a sequence number above this (the `id:` of the
    /// last event seen); `Last-Event-ID` is read when this is missing.
    #[serde(default)]
    pub after: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventTokens {
    pub prompt: i64,
    pub completion: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventSummary {
    pub session_id: String,
    /// Steps persisted during the turn (the user message not counted).
    pub steps: i64,
    /// This turn's tokens.
    pub tokens: EventTokens,
}

/// One `data:` line of a turn stream. Every key but `type` is left out when
/// it does not apply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentEvent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub args: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<EventSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<EventTokens>,
    /// On `error`: why the turn ended (see [`turn_error_codes`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Kiln: on a client tool's `tool_call` and `tool_result`, the id to
    /// answer with `POST /agents/:id/tool-results`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
}

impl AgentEvent {
    /// `done` and `error` end a turn.
    pub fn is_terminal(&self) -> bool {
        self.kind == event_types::DONE || self.kind == event_types::ERROR
    }
}

/// `GET /agents/:id/files` (Kiln): a session's captured files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileTree {
    pub tree: Vec<FileEntry>,
}

/// One captured file in the tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileEntry {
    pub path: String,
    /// Bytes.
    pub size: i64,
    pub updated_at: DateTime<Utc>,
}

/// `GET /agents/:id/files/<path>` (Kiln): one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileContent {
    pub path: String,
    pub size: i64,
    /// `raw` (UTF-8 text as is) or `base64`.
    pub encoding: String,
    pub content: String,
}
