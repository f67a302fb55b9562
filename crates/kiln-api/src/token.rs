//! Short-lived tokens (a Kiln extension): an API key exchanged for a token
//! a browser may hold, scoped to the key's project and optionally to one
//! session.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `POST /api/sdk/tokens`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateToken {
    /// Lifetime in seconds: 1 to 86400, 900 when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
    /// Only this session: other sessions answer 404.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// `POST /api/sdk/tokens` (201).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenCreated {
    /// Usable as `X-API-Key` or `Authorization: Bearer`, like a key.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}
