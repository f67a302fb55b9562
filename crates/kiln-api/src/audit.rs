//! The audit log (CONTRACT §2.15): entries, the paged list and the query.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use chrono::{DateTime, Utc};

/// `TenantAuditEntry` on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: String,
    pub project_id: String,
    pub app_id: String,
    pub actor_user_id: Option<String>,
    pub actor_api_key_id: Option<String>,
    /// Dotted `<subject>.<verb>`, for example `secret.put`.
    pub action: String,
    pub subject_type: String,
    pub subject_id: String,
    pub agent_version_id: Option<String>,
    pub session_id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Map<String, Value>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditLogPage {
    pub entries: Vec<AuditEntry>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// Query of `GET /audit-log` and `GET /audit-log/export`. Timestamps are
/// RFC 3339 strings; `from` is inclusive and `to` exclusive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct AuditLogQuery {
    pub action: Option<String>,
    pub actor_user_id: Option<String>,
    pub subject_type: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Default 100, clamped to 500.
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// Export only: `json` (default) or `csv`.
    pub format: Option<String>,
}
