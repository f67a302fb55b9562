//! Scheduled runs (CONTRACT §2.11): a message sent into an agent session on
//! a cron schedule (five fields, UTC, or `@hourly`-style macros).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduledRun {
    pub id: String,
    pub project_id: String,
    pub app_id: String,
    pub agent_session_id: String,
    /// "" when unset.
    pub name: String,
    pub cron_expression: String,
    pub message: String,
    pub enabled: bool,
    pub last_run_at: Option<DateTime<Utc>>,
    /// Null while disabled.
    pub next_run_at: Option<DateTime<Utc>>,
    pub run_count: i64,
    /// "" when the last firing went well or none happened.
    pub last_error: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /scheduled-runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduledRunList {
    pub scheduled_runs: Vec<ScheduledRun>,
}

/// `POST /scheduled-runs`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateScheduledRun {
    #[serde(default)]
    pub agent_session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub cron_expression: String,
    #[serde(default)]
    pub message: String,
}

/// `PATCH /scheduled-runs/:id`: fields left out are unchanged.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateScheduledRun {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_expression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}
