//! CONTRACT §2.9: the code-first source family. So far `source-validate`;
//! sync, deploy, rename, delete, export and diff build on the same checks.

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use kiln_api::{ErrorBody, SourceSyncManifest, SourceValidateResult};
use kiln_core::agents::source;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{Authed, JsonBody};
use crate::{AppState, convert};

/// A manifest may hold up to 20 MiB of files, base64 (a third larger) from
/// the Go SDK, plus the JSON around them.
const MANIFEST_BODY_LIMIT: usize = source::MAX_MANIFEST_BYTES / 3 * 4 + 1024 * 1024;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(validate_source))
        .layer(DefaultBodyLimit::max(MANIFEST_BODY_LIMIT))
}

/// Checks a manifest and writes nothing: always 200 with every issue, fatal
/// or not (400 only when the body is not JSON).
#[utoipa::path(post, path = "/api/sdk/source-validate", tag = "source", request_body = SourceSyncManifest,
    responses((status = 200, body = SourceValidateResult), (status = 400, body = ErrorBody)))]
async fn validate_source(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    JsonBody(body): JsonBody<SourceSyncManifest>,
) -> Result<Json<SourceValidateResult>, ApiError> {
    let issues = state
        .agents
        .validate_source(&ctx, &convert::manifest(body))
        .await?;
    Ok(Json(SourceValidateResult {
        issues: issues.into_iter().map(convert::source_issue).collect(),
    }))
}
