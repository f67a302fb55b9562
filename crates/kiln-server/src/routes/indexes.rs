//! CONTRACT §2.2: RAG indexes. `GET /indexes/:id` is the one wrapped
//! single-entity GET (`{"index": ...}`); create and update answer bare.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use kiln_api::{CreateIndex, ErrorBody, Index, IndexEnvelope, IndexList, UpdateIndex};
use kiln_core::ids::IndexId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{ApiPath, Authed, JsonBody};
use crate::{AppState, convert};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_indexes, create_index))
        .routes(routes!(get_index, update_index, delete_index))
}

/// Every index of the project, by name (not paginated).
#[utoipa::path(get, path = "/api/sdk/indexes", tag = "indexes", responses((status = 200, body = IndexList)))]
async fn list_indexes(
    State(state): State<AppState>,
    Authed(ctx): Authed,
) -> Result<Json<IndexList>, ApiError> {
    let indexes = state.rag.list_indexes(&ctx).await?;
    Ok(Json(IndexList {
        indexes: indexes.into_iter().map(convert::index).collect(),
    }))
}

#[utoipa::path(post, path = "/api/sdk/indexes", tag = "indexes", request_body = CreateIndex,
    responses((status = 201, body = Index), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_index(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    JsonBody(body): JsonBody<CreateIndex>,
) -> Result<(StatusCode, Json<Index>), ApiError> {
    let index = state
        .rag
        .create_index(&ctx, &body.name, body.description.as_deref(), body.metadata)
        .await?;
    Ok((StatusCode::CREATED, Json(convert::index(index))))
}

#[utoipa::path(get, path = "/api/sdk/indexes/{id}", tag = "indexes", params(("id" = String, Path)),
    responses((status = 200, body = IndexEnvelope), (status = 404, body = ErrorBody)))]
async fn get_index(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<IndexEnvelope>, ApiError> {
    let index = state.rag.get_index(&ctx, &IndexId::from_string(id)).await?;
    Ok(Json(IndexEnvelope {
        index: convert::index(index),
    }))
}

/// Missing or `""` name keeps the name; missing description or metadata
/// keep theirs; `{}` clears metadata.
#[utoipa::path(patch, path = "/api/sdk/indexes/{id}", tag = "indexes", params(("id" = String, Path)),
    request_body = UpdateIndex,
    responses((status = 200, body = Index), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_index(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<UpdateIndex>,
) -> Result<Json<Index>, ApiError> {
    let index = state
        .rag
        .update_index(
            &ctx,
            &IndexId::from_string(id),
            body.name.as_deref(),
            body.description.as_deref(),
            body.metadata,
        )
        .await?;
    Ok(Json(convert::index(index)))
}

/// Deletes the index and everything in it.
#[utoipa::path(delete, path = "/api/sdk/indexes/{id}", tag = "indexes", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_index(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.rag.delete_index(&ctx, &IndexId::from_string(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
