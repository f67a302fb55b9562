//! CONTRACT §2.11: scheduled runs. Five-field cron in UTC or a macro
//! (`@hourly`, ...); a seconds field is 400. Each firing is a headless turn
//! in the session, once across every server on the database.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use kiln_api::{CreateScheduledRun, ErrorBody, ScheduledRun, ScheduledRunList, UpdateScheduledRun};
use kiln_core::ids::ScheduleId;
use kiln_core::schedules::{NewSchedule, ScheduleChanges};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{ApiPath, Authed, JsonBody};
use crate::{AppState, convert};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_schedules, create_schedule))
        .routes(routes!(get_schedule, update_schedule, delete_schedule))
}

/// Oldest first.
#[utoipa::path(get, path = "/api/sdk/scheduled-runs", tag = "scheduled-runs",
    responses((status = 200, body = ScheduledRunList)))]
async fn list_schedules(
    State(state): State<AppState>,
    Authed(ctx): Authed,
) -> Result<Json<ScheduledRunList>, ApiError> {
    let schedules = state.schedules.list(&ctx).await?;
    Ok(Json(ScheduledRunList {
        scheduled_runs: schedules.into_iter().map(convert::schedule).collect(),
    }))
}

/// 201 with `next_run_at` computed; 400 for a bad expression (a seconds
/// field included) or an empty message; 404 for a session not in the project.
#[utoipa::path(post, path = "/api/sdk/scheduled-runs", tag = "scheduled-runs",
    request_body = CreateScheduledRun,
    responses((status = 201, body = ScheduledRun), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_schedule(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    JsonBody(body): JsonBody<CreateScheduledRun>,
) -> Result<(StatusCode, Json<ScheduledRun>), ApiError> {
    let schedule = state
        .schedules
        .create(
            &ctx,
            NewSchedule {
                session_id: body.agent_session_id,
                name: body.name,
                cron_expression: body.cron_expression,
                message: body.message,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(convert::schedule(schedule))))
}

#[utoipa::path(get, path = "/api/sdk/scheduled-runs/{id}", tag = "scheduled-runs", params(("id" = String, Path)),
    responses((status = 200, body = ScheduledRun), (status = 404, body = ErrorBody)))]
async fn get_schedule(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ScheduledRun>, ApiError> {
    let schedule = state.schedules.get(&ctx, &ScheduleId::from_string(id)).await?;
    Ok(Json(convert::schedule(schedule)))
}

/// Fields left out are unchanged. `next_run_at` is recomputed from now when
/// `cron_expression` changes or the schedule is enabled again; disabling
/// sets it to null.
#[utoipa::path(patch, path = "/api/sdk/scheduled-runs/{id}", tag = "scheduled-runs", params(("id" = String, Path)),
    request_body = UpdateScheduledRun,
    responses((status = 200, body = ScheduledRun), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_schedule(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<UpdateScheduledRun>,
) -> Result<Json<ScheduledRun>, ApiError> {
    let schedule = state
        .schedules
        .update(
            &ctx,
            &ScheduleId::from_string(id),
            ScheduleChanges {
                name: body.name,
                cron_expression: body.cron_expression,
                message: body.message,
                enabled: body.enabled,
            },
        )
        .await?;
    Ok(Json(convert::schedule(schedule)))
}

#[utoipa::path(delete, path = "/api/sdk/scheduled-runs/{id}", tag = "scheduled-runs", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_schedule(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.schedules.delete(&ctx, &ScheduleId::from_string(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
