//! CONTRACT §3.3 tier C: the legacy writes that conflict with "source-sync
//! is the only writer" (direct agent, skill, eval and MCP-server edits).
//! Each answers 410 `endpoint_removed` (never 404, which Go's `IsNotFound`
//! would read as "already gone"), after authentication like every route.
//! They are documented (status 410 only); the SDK has no methods
//! for them.

use kiln_api::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Authed;

/// Every removed route as `(METHOD, path)`, for tests and docs.
pub const REMOVED_ROUTES: [(&str, &str); 19] = [
    ("POST", "/api/sdk/agent-configs"),
    ("PATCH", "/api/sdk/agent-configs/{id}/draft"),
    ("DELETE", "/api/sdk/agent-configs/{id}/draft"),
    ("POST", "/api/sdk/agent-configs/{id}/publish"),
    ("POST", "/api/sdk/agent-configs/{id}/revert"),
    ("POST", "/api/sdk/skills"),
    ("DELETE", "/api/sdk/skills/{id}"),
    ("POST", "/api/sdk/evals"),
    ("DELETE", "/api/sdk/evals/{id}"),
    ("POST", "/api/sdk/evals/run"),
    ("POST", "/api/sdk/eval-suites"),
    ("DELETE", "/api/sdk/eval-suites/{id}"),
    ("POST", "/api/sdk/eval-suites/{id}/versions"),
    ("GET", "/api/sdk/mcp-servers"),
    ("POST", "/api/sdk/mcp-servers"),
    ("GET", "/api/sdk/mcp-servers/{id}"),
    ("PATCH", "/api/sdk/mcp-servers/{id}"),
    ("DELETE", "/api/sdk/mcp-servers/{id}"),
    ("POST", "/api/sdk/mcp-servers/{id}/test"),
];

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_agent_config))
        .routes(routes!(update_agent_draft, discard_agent_draft))
        .routes(routes!(publish_agent))
        .routes(routes!(revert_agent))
        .routes(routes!(create_skill))
        .routes(routes!(delete_skill))
        .routes(routes!(create_eval_case))
        .routes(routes!(delete_eval_case))
        .routes(routes!(run_evals))
        .routes(routes!(create_eval_suite))
        .routes(routes!(delete_eval_suite))
        .routes(routes!(create_eval_suite_version))
        .routes(routes!(list_mcp_servers, create_mcp_server))
        .routes(routes!(get_mcp_server, update_mcp_server, delete_mcp_server))
        .routes(routes!(test_mcp_server))
}

/// The 410 every removed route answers.
fn removed(route: &str) -> ApiError {
    ApiError::endpoint_removed(format!(
        "{route} was removed; author agents via PUT /api/sdk/source-sync (kiln dev / kiln deploy)"
    ))
}

#[utoipa::path(post, path = "/api/sdk/agent-configs", tag = "agent-configs", operation_id = "legacy_create_agent_config",
    responses((status = 410, body = ErrorBody, description = "removed: author agents through source-sync")))]
async fn create_agent_config(_authed: Authed) -> ApiError {
    removed("POST /api/sdk/agent-configs")
}

#[utoipa::path(patch, path = "/api/sdk/agent-configs/{id}/draft", tag = "agent-configs", operation_id = "legacy_update_agent_draft", params(("id" = String, Path)),
    responses((status = 410, body = ErrorBody, description = "removed: author agents through source-sync")))]
async fn update_agent_draft(_authed: Authed) -> ApiError {
    removed("PATCH /api/sdk/agent-configs/:id/draft")
}

#[utoipa::path(delete, path = "/api/sdk/agent-configs/{id}/draft", tag = "agent-configs", operation_id = "legacy_discard_agent_draft", params(("id" = String, Path)),
    responses((status = 410, body = ErrorBody, description = "removed: author agents through source-sync")))]
async fn discard_agent_draft(_authed: Authed) -> ApiError {
    removed("DELETE /api/sdk/agent-configs/:id/draft")
}

#[utoipa::path(post, path = "/api/sdk/agent-configs/{id}/publish", tag = "agent-configs", operation_id = "legacy_publish_agent", params(("id" = String, Path)),
    responses((status = 410, body = ErrorBody, description = "removed: author agents through source-sync")))]
async fn publish_agent(_authed: Authed) -> ApiError {
    removed("POST /api/sdk/agent-configs/:id/publish")
}

#[utoipa::path(post, path = "/api/sdk/agent-configs/{id}/revert", tag = "agent-configs", operation_id = "legacy_revert_agent", params(("id" = String, Path)),
    responses((status = 410, body = ErrorBody, description = "removed: author agents through source-sync")))]
async fn revert_agent(_authed: Authed) -> ApiError {
    removed("POST /api/sdk/agent-configs/:id/revert")
}

#[utoipa::path(post, path = "/api/sdk/skills", tag = "skills", operation_id = "legacy_create_skill",
    responses((status = 410, body = ErrorBody, description = "removed: author agents through source-sync")))]
async fn create_skill(_authed: Authed) -> ApiError {
    removed("POST /api/sdk/skills")
}

#[utoipa::path(delete, path = "/api/sdk/skills/{id}", tag = "skills", operation_id = "legacy_delete_skill", params(("id" = String, Path)),
    responses((status = 410, body = ErrorBody, description = "removed: author agents through source-sync")))]
async fn delete_skill(_authed: Authed) -> ApiError {
    removed("DELETE /api/sdk/skills/:id")
}

#[utoipa::path(post, path = "/api/sdk/evals", tag = "evals", operation_id = "legacy_create_eval_case",
    responses((status = 410, body = ErrorBody, description = "removed: author agents through source-sync")))]
async fn create_eval_case(_authed: Authed) -> ApiError {
    removed("POST /api/sdk/evals")
}

#[utoipa::path(delete, path = "/api/sdk/evals/{id}", tag = "evals", operation_id = "legacy_delete_eval_case", params(("id" = String, Path)),
    responses((status = 410, body = ErrorBody, description = "removed: author agents through source-sync")))]
async fn delete_eval_case(_authed: Authed) -> ApiError {
    removed("DELETE /api/sdk/evals/:id")
}

#[utoipa::path(post, path = "/api/sdk/evals/run", tag = "evals", operation_id = "legacy_run_evals",
    responses((status = 410, body = ErrorBody, description = "removed: author agents through source-sync")))]
async fn run_evals(_authed: Authed) -> ApiError {
    removed("POST /api/sdk/evals/run")
}

#[utoipa::path(post, path = "/api/sdk/eval-suites", tag = "eval-suites", operation_id = "legacy_create_eval_suite",
    responses((status = 410, body = ErrorBody, description = "removed: author agents through source-sync")))]
async fn create_eval_suite(_authed: Authed) -> ApiError {
    removed("POST /api/sdk/eval-suites")
}

#[utoipa::path(delete, path = "/api/sdk/eval-suites/{id}", tag = "eval-suites", operation_id = "legacy_delete_eval_suite", params(("id" = String, Path)),
    responses((status = 410, body = ErrorBody, description = "removed: author agents through source-sync")))]
async fn delete_eval_suite(_authed: Authed) -> ApiError {
    removed("DELETE /api/sdk/eval-suites/:id")
}

#[utoipa::path(post, path = "/api/sdk/eval-suites/{id}/versions", tag = "eval-suites", operation_id = "legacy_create_eval_suite_version", params(("id" = String, Path)),
    responses((status = 410, body = ErrorBody, description = "removed: author agents through source-sync")))]
async fn create_eval_suite_version(_authed: Authed) -> ApiError {
    removed("POST /api/sdk/eval-suites/:id/versions")
}

#[utoipa::path(get, path = "/api/sdk/mcp-servers", tag = "mcp-servers", operation_id = "legacy_list_mcp_servers",
    responses((status = 410, body = ErrorBody, description = "removed: author agents through source-sync")))]
async fn list_mcp_servers(_authed: Authed) -> ApiError {
    removed("GET /api/sdk/mcp-servers")
}

#[utoipa::path(post, path = "/api/sdk/mcp-servers", tag = "mcp-servers", operation_id = "legacy_create_mcp_server",
    responses((status = 410, body = ErrorBody, description = "removed: author agents through source-sync")))]
async fn create_mcp_server(_authed: Authed) -> ApiError {
    removed("POST /api/sdk/mcp-servers")
}

#[utoipa::path(get, path = "/api/sdk/mcp-servers/{id}", tag = "mcp-servers", operation_id = "legacy_get_mcp_server", params(("id" = String, Path)),
    responses((status = 410, body = ErrorBody, description = "removed: author agents through source-sync")))]
async fn get_mcp_server(_authed: Authed) -> ApiError {
    removed("GET /api/sdk/mcp-servers/:id")
}

#[utoipa::path(patch, path = "/api/sdk/mcp-servers/{id}", tag = "mcp-servers", operation_id = "legacy_update_mcp_server", params(("id" = String, Path)),
    responses((status = 410, body = ErrorBody, description = "removed: author agents through source-sync")))]
async fn update_mcp_server(_authed: Authed) -> ApiError {
    removed("PATCH /api/sdk/mcp-servers/:id")
}

#[utoipa::path(delete, path = "/api/sdk/mcp-servers/{id}", tag = "mcp-servers", operation_id = "legacy_delete_mcp_server", params(("id" = String, Path)),
    responses((status = 410, body = ErrorBody, description = "removed: author agents through source-sync")))]
async fn delete_mcp_server(_authed: Authed) -> ApiError {
    removed("DELETE /api/sdk/mcp-servers/:id")
}

#[utoipa::path(post, path = "/api/sdk/mcp-servers/{id}/test", tag = "mcp-servers", operation_id = "legacy_test_mcp_server", params(("id" = String, Path)),
    responses((status = 410, body = ErrorBody, description = "removed: author agents through source-sync")))]
async fn test_mcp_server(_authed: Authed) -> ApiError {
    removed("POST /api/sdk/mcp-servers/:id/test")
}
