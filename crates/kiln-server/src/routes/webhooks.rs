//! Kiln's session webhooks (an extension under `/api/sdk`): set on create
//! (`webhooks`) or replaced here; deliveries and their attempts listed.
//! Sending is the core's (`kiln_core::webhooks`).

use axum::Json;
use axum::extract::State;
use kiln_api::ErrorBody;
use kiln_api::webhook::{WebhookDeliveryList, WebhookList, WebhooksUpdate};
use kiln_core::ids::SessionId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{ApiPath, Authed, JsonBody};
use crate::{AppState, convert};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, replace_webhooks))
        .routes(routes!(list_deliveries))
}

/// Kiln: the session's webhooks (never their secrets).
#[utoipa::path(get, path = "/api/sdk/agents/{id}/webhooks", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = WebhookList), (status = 404, body = ErrorBody)))]
async fn list_webhooks(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<WebhookList>, ApiError> {
    let webhooks = state.webhooks.list(&ctx, &SessionId::from_string(id)).await?;
    Ok(Json(convert::webhooks(webhooks)))
}

/// Kiln: replaces the session's webhooks whole (`[]` removes them): at most
/// 5, `https://` URLs (`http://` only when the server allows private
/// networks), private and loopback targets refused, `events` from
/// `session.started`, `session.completed`, `session.failed`,
/// `session.cancelled`, `session.waiting` (left out: all), a `secret` to
/// sign deliveries (`X-Kiln-Signature`). Deliveries already written keep
/// their URL.
#[utoipa::path(put, path = "/api/sdk/agents/{id}/webhooks", tag = "agents", params(("id" = String, Path)),
    request_body = WebhooksUpdate,
    responses((status = 200, body = WebhookList), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn replace_webhooks(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<WebhooksUpdate>,
) -> Result<Json<WebhookList>, ApiError> {
    let webhooks = state
        .webhooks
        .replace(
            &ctx,
            &SessionId::from_string(id),
            body.webhooks.into_iter().map(convert::webhook_input).collect(),
        )
        .await?;
    Ok(Json(convert::webhooks(webhooks)))
}

/// Kiln: the session's webhook deliveries, newest first (at most 200): one
/// per event and webhook, with its attempts so far, the latest answer's
/// status or error, and when the next attempt is due.
#[utoipa::path(get, path = "/api/sdk/agents/{id}/webhook-deliveries", tag = "agents",
    params(("id" = String, Path)),
    responses((status = 200, body = WebhookDeliveryList), (status = 404, body = ErrorBody)))]
async fn list_deliveries(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<WebhookDeliveryList>, ApiError> {
    let deliveries = state
        .webhooks
        .deliveries(&ctx, &SessionId::from_string(id))
        .await?;
    Ok(Json(WebhookDeliveryList {
        deliveries: deliveries.into_iter().map(convert::webhook_delivery).collect(),
    }))
}
