//! Project, its metrics and the vault designation (CONTRACT §2.1).

use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

/// The project an API key belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Project {
    pub id: String,
    /// Kiln has no teams; every project reports the single team `default`.
    pub team_id: String,
    pub name: String,
    pub slug: String,
    /// `""` when unset.
    pub description: String,
    /// Kiln extension: the secret vault designated with `PUT /project/vault`.
    #[serde(default)]
    pub vault_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /metrics`: every counter present, `0` where nothing happened yet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectMetrics {
    pub tokens: TokenMetrics,
    pub agents: AgentMetrics,
    pub evals: EvalMetrics,
    /// Kiln extension: the project's use of this server's sandbox now.
    #[serde(default)]
    pub sandbox: SandboxMetrics,
}

/// Code blocks of the project on the server that answered, now, and the
/// project's share of each cap (`--agent-max-concurrent-blocks`,
/// `--agent-max-paused-blocks`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SandboxMetrics {
    /// Blocks holding a sandbox slot (running, or waiting on host calls).
    pub running_blocks: i64,
    /// Blocks waiting for a slot.
    pub waiting_blocks: i64,
    /// The most slots the project may hold at once.
    pub running_blocks_limit: i64,
    /// Blocks paused on `input()`, waiting for an answer.
    pub paused_blocks: i64,
    /// The most blocks the project may have paused at once.
    pub paused_blocks_limit: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenMetrics {
    pub prompt_tokens: i64,
    pub candidate_tokens: i64,
    pub total_tokens: i64,
    pub request_count: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentMetrics {
    pub total_sessions: i64,
    pub active_sessions: i64,
    pub completed_sessions: i64,
    pub error_sessions: i64,
    pub total_steps: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvalMetrics {
    pub total_runs: i64,
    pub completed_runs: i64,
    pub total_passed: i64,
    pub total_failed: i64,
    pub average_score: f64,
}

/// `PUT /project/vault` response: the designated vault, `null` when none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectVault {
    #[serde(default)]
    pub vault_id: Option<String>,
}

/// `PUT /project/vault` body. `vault_id` must be present: a vault id
/// designates it, `null` or `""` clears the designation (so an empty body
/// cannot clear it by accident).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetProjectVault {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub vault_id: Option<Option<String>>,
}

/// Tells a present `null` (`Some(None)`) from a missing key (`None`).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}
