//! Evals (CONTRACT §2.12, §2.8 eval runs, §4.4): cases and suites are
//! read-only (authored as `evals/*.json`, written by source-sync); runs are
//! started on an agent and read back with their results.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvalCase {
    pub id: String,
    pub project_id: String,
    pub app_id: String,
    /// Kiln: the agent whose `evals/` holds it.
    pub agent_id: String,
    pub name: String,
    pub description: String,
    pub set_name: String,
    /// `llm_judge` (default), `contains`, `regex`, `json_schema`, `tool_use`.
    #[serde(rename = "type")]
    pub kind: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config: Value,
    pub prompt: String,
    pub criteria: String,
    pub system_prompt: String,
    /// Tool names, a parsed array.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub tools: Value,
    /// 0–10.
    pub pass_threshold: i64,
    pub created_at: DateTime<Utc>,
}

/// `GET /evals`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvalCaseList {
    pub cases: Vec<EvalCase>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvalRun {
    pub id: String,
    /// `pending`, `running`, `passed`, `failed`, `cancelled`, `error`.
    pub status: String,
    pub total_cases: i64,
    pub passed: i64,
    pub failed: i64,
    /// Mean case score so far, 0–10.
    pub average_score: f64,
    pub judge_model: String,
    pub created_at: DateTime<Utc>,
    /// Kiln: the agent, its suite, the suite version the cases came from
    /// (null for a draft), `live` or `draft`.
    pub agent_id: String,
    pub suite_id: String,
    pub suite_version: Option<String>,
    pub target: String,
    /// Kiln: the suite threshold (0–1) the status was decided by.
    pub threshold: f64,
    /// Kiln: why the run ended as `error`; "" otherwise.
    pub error: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvalResult {
    pub id: String,
    pub case_name: String,
    pub set_name: String,
    /// 0–10.
    pub score: i64,
    pub pass: bool,
    pub reasoning: String,
    pub response: String,
    /// `[{name, args?, summary?}]`; `[]` when none.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub tool_calls: Value,
    pub duration_ms: i64,
    pub error: String,
    /// Kiln: the case and the session it ran in.
    pub case_id: String,
    pub session_id: String,
}

/// `GET /eval-runs/:id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvalRunDetail {
    pub run: EvalRun,
    pub results: Vec<EvalResult>,
}

/// `GET /eval-runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvalRunList {
    pub runs: Vec<EvalRun>,
}

/// `POST /agent-configs/:id/eval-runs` (202) and `POST /eval-runs/:id/cancel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvalRunEnvelope {
    pub run: EvalRun,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvalSuite {
    pub id: String,
    pub project_id: String,
    pub app_id: String,
    pub agent_id: Option<String>,
    pub name: String,
    pub description: String,
    /// 0–1.
    pub threshold: f64,
    pub active_version_id: Option<String>,
    /// Kiln: `evalSuite.judgeModel`, when set.
    pub judge_model: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvalSuiteVersion {
    pub id: String,
    pub suite_id: String,
    pub semver: String,
    pub case_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// `?target=live|draft` of `POST /agent-configs/:id/eval-runs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct EvalRunTarget {
    pub target: Option<String>,
}

/// `?limit=N`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct EvalRunLimit {
    pub limit: Option<i64>,
}
