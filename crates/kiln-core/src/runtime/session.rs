//! The agent session and its steps, as stored and as the API shows them.

use serde_json::{Map, Value};

use crate::agents::config::{McpServerSpec, ModuleSkill};
use crate::ids::{AgentId, AgentVersionId, EventId, IndexId, ProjectId, SessionId, TurnId};
use crate::llm::Usage;
use crate::time::Timestamp;

/// Where a session is in its life (CONTRACT §4.1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionStatus {
    /// Idle, ready for a turn.
    Active,
    /// A turn is running.
    Running,
    /// A turn is paused on `input()`.
    AwaitingInput,
    /// A turn is paused on a client tool call.
    AwaitingTool,
    /// The last turn failed; the session still takes turns.
    Error,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Active => "active",
            SessionStatus::Running => "running",
            SessionStatus::AwaitingInput => "awaiting_input",
            SessionStatus::AwaitingTool => "awaiting_tool",
            SessionStatus::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<SessionStatus> {
        Some(match s {
            "active" => SessionStatus::Active,
            "running" => SessionStatus::Running,
            "awaiting_input" => SessionStatus::AwaitingInput,
            "awaiting_tool" => SessionStatus::AwaitingTool,
            "error" => SessionStatus::Error,
            _ => return None,
        })
    }
}

/// The function-call tools a session may add beside the sandbox (`tools`
/// on create), the same for agents.
pub use crate::agents::source::TOOL_NAMES;

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: SessionId,
    pub project_id: ProjectId,
    pub title: String,
    /// The persona, appended to the platform prompt.
    pub system_prompt: String,
    /// `provider/model`, resolved at creation.
    pub model: String,
    /// Extra function-call tools, from [`TOOL_NAMES`].
    pub tools: Vec<String>,
    /// Tools the client runs (`client_tools` on create).
    pub client_tools: Vec<crate::llm::ToolSpec>,
    pub metadata: Value,
    pub status: SessionStatus,
    /// `None`: every index of the project; `Some([])`: no search.
    pub index_ids: Option<Vec<IndexId>>,
    /// What `data.set` stored.
    pub data: Map<String, Value>,
    /// The running turn, if any.
    pub turn_id: Option<TurnId>,
    pub usage: Usage,
    pub step_count: i64,
    /// The sequence number of the session's last logged event (0: none):
    /// where a reader that wants only what comes next starts.
    pub last_seq: i64,
    pub duration_ms: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The agent the session runs, when it was started on one.
    pub agent_id: Option<AgentId>,
    /// The version it runs; `None` on an agent: the agent's draft.
    pub agent_version_id: Option<AgentVersionId>,
    /// The agent's module skills as the session started: what `require`
    /// reaches in its blocks.
    pub modules: Vec<ModuleSkill>,
    /// The agent's MCP servers and their tools as the session started.
    pub mcp_servers: Vec<McpServerSpec>,
}

impl Session {
    /// The wire's `tools_config`: `{"tools": [...]}`, plus the declared
    /// `client_tools` when there are any.
    pub fn tools_config(&self) -> Value {
        if self.client_tools.is_empty() {
            serde_json::json!({ "tools": self.tools })
        } else {
            serde_json::json!({ "tools": self.tools, "client_tools": self.client_tools })
        }
    }
}

/// One persisted step (CONTRACT §4.1.5): the user message or a non-terminal
/// event of a turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub id: EventId,
    pub session_id: SessionId,
    pub step_index: i64,
    pub step_type: crate::runtime::event::EventKind,
    pub content: String,
    pub tool_name: String,
    pub tool_args: Value,
    pub duration_ms: i64,
    pub usage: Usage,
    pub created_at: Timestamp,
}
