//! Agent configs (CONTRACT §2.8): read-only over the API; agents are
//! created and changed through the source family.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentConfig {
    pub id: String,
    pub project_id: String,
    pub app_id: String,
    pub name: String,
    pub description: String,
    pub created_by: String,
    /// The live persona (empty before the first deploy).
    pub persona_md: String,
    /// `SkillBinding[]` (`{skill_id, version}`), a parsed array.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub skills_json: Value,
    /// Index ids, a parsed array.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub stores_json: Value,
    pub provider: String,
    pub model: String,
    pub enabled_capabilities: Option<Vec<String>>,
    pub eval_suite_id: Option<String>,
    pub active_version_id: Option<String>,
    pub published_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The manifest's `project`.
    pub code_first_project: Option<String>,
    /// `agent.jsonc` → `id`.
    pub code_first_local_id: Option<String>,
    /// Go-only: always false (the toggle was removed upstream).
    #[serde(default)]
    pub run_eval_on_publish: bool,
    /// Go-only: always null (the draft endpoints are removed).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(default)]
    pub draft_config: Option<Value>,
}

/// An immutable snapshot of an agent, one per deploy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentVersion {
    pub id: String,
    pub agent_id: String,
    /// `1.0.0`, then `1.0.1`, … per deploy.
    pub semver: String,
    pub persona_md: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub skills_json: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub stores_json: Value,
    pub provider: String,
    pub model: String,
    pub eval_suite_id: Option<String>,
    pub eval_suite_version: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// `PATCH /agent-configs/:id/settings`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateAgentSettings {
    /// Left out: unchanged; `""`: clear the pin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_suite_id: Option<String>,
    /// Go sends it; accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_eval_on_publish: Option<bool>,
}

/// `POST /project/seed` (alias `/app/seed`): Kiln does not create starter
/// agents (agents come from source-sync), so it only tells whether the
/// project has any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SeedResult {
    pub already_seeded: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
}

/// A skill: one `skills/` file of an agent (CONTRACT §2.10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Skill {
    pub id: String,
    pub project_id: String,
    pub app_id: String,
    /// The file stem.
    pub name: String,
    pub description: String,
    /// `prompt` or `module`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A prompt skill's Markdown; `""` otherwise.
    pub prompt: String,
    /// `{"agent_id", "path"}`, and for a module its `exports`
    /// (`[{"name", "params"?}]`, `params` for functions); for an MCP
    /// server `{"agent_id", "path", "server", "transport", "url",
    /// "tools": [{"name", "description", "inputSchema"}]}` (the URL as
    /// written, secrets unresolved).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: Value,
    /// Always true: every skill of a live version is in use.
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /skills`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SkillList {
    pub skills: Vec<Skill>,
}

/// The `type` of a skill.
pub mod skill_types {
    pub const PROMPT: &str = "prompt";
    pub const MODULE: &str = "module";
    pub const MCP: &str = "mcp";
}
