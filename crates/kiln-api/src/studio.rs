//! Studio (CONTRACT §2.14): a session's trace, replay into a new session
//! (SSE, `replay_started` first), and an analysis of a failed run.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{AgentSession, AgentStep};

/// `GET /studio/:sessionID`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StudioTrace {
    pub session: AgentSession,
    pub steps: Vec<AgentStep>,
    /// The complete system prompt the session's turns see.
    pub system_prompt: String,
    /// `execute_js` and the session's function-call tools.
    pub tools: Vec<String>,
    /// Go-only legacy: always `{}`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub memory: Map<String, Value>,
}

/// `POST /studio/:sessionID/replay`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplayRequest {
    /// Required: a step index of the session.
    pub from_step: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `POST /studio/:sessionID/analyze`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnalyzeRequest {
    /// Null means none.
    #[serde(default)]
    pub failed_steps: Option<Vec<i64>>,
    #[serde(default)]
    pub expected_outcome: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SuggestedEvalCase {
    pub name: String,
    pub prompt: String,
    pub criteria: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StudioFixSuggestion {
    pub prompt_changes: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_case: Option<SuggestedEvalCase>,
    pub reasoning: String,
}
