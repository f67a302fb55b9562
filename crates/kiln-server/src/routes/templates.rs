//! CONTRACT §2.13: prompt templates.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use kiln_api::{CreatePromptTemplate, ErrorBody, PromptTemplate, PromptTemplateList, UpdatePromptTemplate};
use kiln_core::ids::TemplateId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{ApiPath, Authed, JsonBody};
use crate::{AppState, convert};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates, create_template))
        .routes(routes!(get_template, update_template, delete_template))
}

#[utoipa::path(get, path = "/api/sdk/prompt-templates", tag = "prompt-templates",
    responses((status = 200, body = PromptTemplateList)))]
async fn list_templates(
    State(state): State<AppState>,
    Authed(ctx): Authed,
) -> Result<Json<PromptTemplateList>, ApiError> {
    let templates = state.control.list_templates(&ctx).await?;
    Ok(Json(PromptTemplateList {
        templates: templates.into_iter().map(convert::template).collect(),
    }))
}

/// `variables` left out: filled from the `{{var}}` placeholders in `content`.
#[utoipa::path(post, path = "/api/sdk/prompt-templates", tag = "prompt-templates",
    request_body = CreatePromptTemplate,
    responses((status = 201, body = PromptTemplate), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_template(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    JsonBody(body): JsonBody<CreatePromptTemplate>,
) -> Result<(StatusCode, Json<PromptTemplate>), ApiError> {
    let template = state
        .control
        .create_template(&ctx, &body.name, &body.content, body.variables)
        .await?;
    Ok((StatusCode::CREATED, Json(convert::template(template))))
}

#[utoipa::path(get, path = "/api/sdk/prompt-templates/{id}", tag = "prompt-templates",
    params(("id" = String, Path)),
    responses((status = 200, body = PromptTemplate), (status = 404, body = ErrorBody)))]
async fn get_template(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PromptTemplate>, ApiError> {
    let template = state
        .control
        .get_template(&ctx, &TemplateId::from_string(id))
        .await?;
    Ok(Json(convert::template(template)))
}

/// Empty or missing `name`/`content` keep the current value.
#[utoipa::path(patch, path = "/api/sdk/prompt-templates/{id}", tag = "prompt-templates",
    params(("id" = String, Path)), request_body = UpdatePromptTemplate,
    responses((status = 200, body = PromptTemplate), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_template(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<UpdatePromptTemplate>,
) -> Result<Json<PromptTemplate>, ApiError> {
    let template = state
        .control
        .update_template(
            &ctx,
            &TemplateId::from_string(id),
            body.name.as_deref(),
            body.content.as_deref(),
            body.variables,
        )
        .await?;
    Ok(Json(convert::template(template)))
}

#[utoipa::path(delete, path = "/api/sdk/prompt-templates/{id}", tag = "prompt-templates",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_template(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state
        .control
        .delete_template(&ctx, &TemplateId::from_string(id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
