//! Liveness and readiness bodies, outside `/api/sdk`.

use serde::{Deserialize, Serialize};

/// `GET /healthz` and `GET /readyz`: `{"status": "ok"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthStatus {
    pub status: String,
}
