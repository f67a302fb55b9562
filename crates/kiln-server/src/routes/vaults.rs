//! CONTRACT §2.5: secret vaults and their secrets. Responses never carry a
//! value or a ciphertext.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use kiln_api::{
    CreateSecretVault, ErrorBody, PutSecret, RedactedSecret, SecretList, SecretVault, SecretVaultList,
    UpdateSecretVault,
};
use kiln_core::ids::VaultId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{ApiPath, Authed, JsonBody};
use crate::{AppState, convert};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_vaults, create_vault))
        .routes(routes!(get_vault, update_vault, delete_vault))
        .routes(routes!(list_secrets))
        .routes(routes!(put_secret, delete_secret))
}

#[utoipa::path(get, path = "/api/sdk/secret-vaults", tag = "secret-vaults",
    responses((status = 200, body = SecretVaultList), (status = 503, body = ErrorBody)))]
async fn list_vaults(
    State(state): State<AppState>,
    Authed(ctx): Authed,
) -> Result<Json<SecretVaultList>, ApiError> {
    let vaults = state.control.list_vaults(&ctx).await?;
    Ok(Json(SecretVaultList {
        secret_vaults: vaults.into_iter().map(convert::vault).collect(),
    }))
}

#[utoipa::path(post, path = "/api/sdk/secret-vaults", tag = "secret-vaults", request_body = CreateSecretVault,
    responses((status = 201, body = SecretVault), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_vault(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    JsonBody(body): JsonBody<CreateSecretVault>,
) -> Result<(StatusCode, Json<SecretVault>), ApiError> {
    let vault = state
        .control
        .create_vault(&ctx, &body.name, body.metadata)
        .await?;
    Ok((StatusCode::CREATED, Json(convert::vault(vault))))
}

#[utoipa::path(get, path = "/api/sdk/secret-vaults/{id}", tag = "secret-vaults",
    params(("id" = String, Path)),
    responses((status = 200, body = SecretVault), (status = 404, body = ErrorBody)))]
async fn get_vault(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SecretVault>, ApiError> {
    let vault = state.control.get_vault(&ctx, &VaultId::from_string(id)).await?;
    Ok(Json(convert::vault(vault)))
}

#[utoipa::path(patch, path = "/api/sdk/secret-vaults/{id}", tag = "secret-vaults",
    params(("id" = String, Path)), request_body = UpdateSecretVault,
    responses((status = 200, body = SecretVault), (status = 404, body = ErrorBody)))]
async fn update_vault(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<UpdateSecretVault>,
) -> Result<Json<SecretVault>, ApiError> {
    let vault = state
        .control
        .update_vault(&ctx, &VaultId::from_string(id), body.metadata)
        .await?;
    Ok(Json(convert::vault(vault)))
}

/// Deletes the vault and every secret in it; clears it as the project vault.
#[utoipa::path(delete, path = "/api/sdk/secret-vaults/{id}", tag = "secret-vaults",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_vault(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state
        .control
        .delete_vault(&ctx, &VaultId::from_string(id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/sdk/secret-vaults/{id}/secrets", tag = "secret-vaults",
    params(("id" = String, Path)),
    responses((status = 200, body = SecretList), (status = 404, body = ErrorBody)))]
async fn list_secrets(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SecretList>, ApiError> {
    let secrets = state
        .control
        .list_secrets(&ctx, &VaultId::from_string(id))
        .await?;
    Ok(Json(SecretList {
        secrets: secrets.into_iter().map(convert::secret).collect(),
    }))
}

/// Upserts a secret, encrypted with a fresh data key and nonce.
#[utoipa::path(put, path = "/api/sdk/secret-vaults/{id}/secrets/{name}", tag = "secret-vaults",
    params(("id" = String, Path), ("name" = String, Path, description = "percent-encoded; [A-Za-z0-9_.-]{1,128}")),
    request_body = PutSecret,
    responses((status = 200, body = RedactedSecret), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn put_secret(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath((id, name)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody<PutSecret>,
) -> Result<Json<RedactedSecret>, ApiError> {
    let secret = state
        .control
        .put_secret(&ctx, &VaultId::from_string(id), &name, &body.value)
        .await?;
    Ok(Json(convert::secret(secret)))
}

/// Idempotent: 204 whether or not the secret existed; 404 for an unknown vault.
#[utoipa::path(delete, path = "/api/sdk/secret-vaults/{id}/secrets/{name}", tag = "secret-vaults",
    params(("id" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_secret(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath((id, name)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .control
        .delete_secret(&ctx, &VaultId::from_string(id), &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
