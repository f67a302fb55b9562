//! CONTRACT §2.1: the caller's project, its metrics, its designated vault.

use axum::Json;
use axum::extract::State;
use kiln_api::{ErrorBody, Project, ProjectMetrics, ProjectVault, SetProjectVault};
use kiln_core::ids::VaultId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{Authed, JsonBody};
use crate::{AppState, convert};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_project))
        .routes(routes!(get_app))
        .routes(routes!(get_metrics))
        .routes(routes!(put_project_vault))
        .routes(routes!(put_app_vault))
}

/// The project the API key belongs to.
#[utoipa::path(get, path = "/api/sdk/project", tag = "project",
    responses((status = 200, body = Project), (status = 401, body = ErrorBody)))]
async fn get_project(Authed(ctx): Authed) -> Json<Project> {
    Json(convert::project(&ctx.project))
}

/// Alias of `GET /api/sdk/project` (the Go SDK's name).
#[utoipa::path(get, path = "/api/sdk/app", tag = "project",
    responses((status = 200, body = Project), (status = 401, body = ErrorBody)))]
async fn get_app(authed: Authed) -> Json<Project> {
    get_project(authed).await
}

/// Counters for dashboards; every one present, 0 when nothing happened.
#[utoipa::path(get, path = "/api/sdk/metrics", tag = "project",
    responses((status = 200, body = ProjectMetrics), (status = 401, body = ErrorBody)))]
async fn get_metrics(
    State(state): State<AppState>,
    Authed(ctx): Authed,
) -> Result<Json<ProjectMetrics>, ApiError> {
    let sandbox = state.runtime.sandbox_use(&ctx.project.id);
    Ok(Json(convert::metrics(
        state.control.metrics(&ctx).await?,
        sandbox,
    )))
}

/// Designates the vault that supplies provider keys; `null` or `""` clears it.
#[utoipa::path(put, path = "/api/sdk/project/vault", tag = "project", request_body = SetProjectVault,
    responses((status = 200, body = ProjectVault), (status = 404, body = ErrorBody)))]
async fn put_project_vault(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    JsonBody(body): JsonBody<SetProjectVault>,
) -> Result<Json<ProjectVault>, ApiError> {
    let Some(vault_id) = body.vault_id else {
        return Err(ApiError::validation(
            "`vault_id` is required: a vault id, or null to clear the designation",
            Some("vault_id"),
        ));
    };
    let vault_id = vault_id.filter(|v| !v.is_empty()).map(VaultId::from_string);
    let vault_id = state.control.set_project_vault(&ctx, vault_id).await?;
    Ok(Json(ProjectVault {
        vault_id: vault_id.map(VaultId::into_string),
    }))
}

/// Alias of `PUT /api/sdk/project/vault`.
#[utoipa::path(put, path = "/api/sdk/app/vault", tag = "project", request_body = SetProjectVault,
    responses((status = 200, body = ProjectVault), (status = 404, body = ErrorBody)))]
async fn put_app_vault(
    state: State<AppState>,
    authed: Authed,
    body: JsonBody<SetProjectVault>,
) -> Result<Json<ProjectVault>, ApiError> {
    put_project_vault(state, authed, body).await
}
