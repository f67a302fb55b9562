//! Kiln's per-session queue (an extension under `/api/sdk`):
//! `POST /agents/:id/messages` runs a turn now when the session is free and
//! queues it otherwise; queued turns run one at a time in order, across
//! restarts and servers. Follow them with `GET /agents/:id/events`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use kiln_api::{ErrorBody, QueueList, QueueOrder, RunAgent};
use kiln_core::ids::SessionId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{ApiPath, Authed, JsonBody};
use crate::{AppState, convert};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(enqueue_message))
        .routes(routes!(list_queue, reorder_queue))
        .routes(routes!(cancel_queued))
}

/// Kiln: sends a message to the session (202). It runs at once when the
/// session is free (`status: "running"`, `queue_position: 0`), else waits
/// in the queue (`status: "queued"`, its 1-based `queue_position`). A
/// queue holds at most 100 turns (409 `queue_full`). `run` still answers
/// 409 while anything runs or waits.
#[utoipa::path(post, path = "/api/sdk/agents/{id}/messages", tag = "agents", params(("id" = String, Path)),
    request_body = RunAgent,
    responses((status = 202, body = kiln_api::Enqueued), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn enqueue_message(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<RunAgent>,
) -> Result<(StatusCode, Json<kiln_api::Enqueued>), ApiError> {
    state
        .control
        .rate_limit(&ctx, kiln_core::control::rate::RateKind::Run)?;
    let enqueued = state
        .runtime
        .enqueue_message(&ctx, &SessionId::from_string(id), &body.message)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(convert::enqueued(enqueued))))
}

/// Kiln: the turns waiting, next first.
#[utoipa::path(get, path = "/api/sdk/agents/{id}/queue", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = QueueList), (status = 404, body = ErrorBody)))]
async fn list_queue(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<QueueList>, ApiError> {
    let queue = state
        .runtime
        .list_queue(&ctx, &SessionId::from_string(id))
        .await?;
    Ok(Json(convert::queue(queue)))
}

/// Kiln: reorders the queue: the listed turns first, in that order, the
/// others after them as they were. 400 when an id is not queued (any more)
/// or listed twice. Answers the new queue.
#[utoipa::path(put, path = "/api/sdk/agents/{id}/queue", tag = "agents", params(("id" = String, Path)),
    request_body = QueueOrder,
    responses((status = 200, body = QueueList), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn reorder_queue(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<QueueOrder>,
) -> Result<Json<QueueList>, ApiError> {
    let queue = state
        .runtime
        .reorder_queue(&ctx, &SessionId::from_string(id), body.order)
        .await?;
    Ok(Json(convert::queue(queue)))
}

/// Kiln: takes a turn off the queue before it runs (204). A turn that has
/// started is not in the queue: cancel it with `POST /agents/{id}/cancel`.
#[utoipa::path(delete, path = "/api/sdk/agents/{id}/queue/{qid}", tag = "agents",
    params(("id" = String, Path), ("qid" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn cancel_queued(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath((id, qid)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .runtime
        .cancel_queued(&ctx, &SessionId::from_string(id), &qid)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
