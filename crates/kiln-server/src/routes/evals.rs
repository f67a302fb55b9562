//! CONTRACT §2.12 and the eval runs of §2.8: cases and suites (read-only,
//! derived from the agents' `evals/*.json`), runs started on an agent, read
//! back with their results, and cancelled (a Kiln extension).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use kiln_api::{
    ErrorBody, EvalCase, EvalCaseList, EvalRun, EvalRunDetail, EvalRunEnvelope, EvalRunLimit, EvalRunList,
    EvalRunTarget, EvalSuite, EvalSuiteVersion,
};
use kiln_core::agents::Target;
use kiln_core::ids::{AgentId, EvalRunId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, Authed};
use crate::{AppState, convert};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_eval_cases))
        .routes(routes!(get_eval_case))
        .routes(routes!(list_eval_runs))
        .routes(routes!(get_eval_run))
        .routes(routes!(cancel_eval_run))
        .routes(routes!(list_eval_suites))
        .routes(routes!(get_eval_suite))
        .routes(routes!(list_eval_suite_versions))
        .routes(routes!(start_agent_eval_run, list_agent_eval_runs))
        .routes(routes!(get_agent_eval_suite))
}

/// Every agent's current cases (its `dev` draft's, else its live version's).
#[utoipa::path(get, path = "/api/sdk/evals", tag = "evals",
    responses((status = 200, body = EvalCaseList)))]
async fn list_eval_cases(
    State(state): State<AppState>,
    Authed(ctx): Authed,
) -> Result<Json<EvalCaseList>, ApiError> {
    let cases = state.agents.list_eval_cases(&ctx).await?;
    Ok(Json(EvalCaseList {
        cases: cases.into_iter().map(convert::eval_case).collect(),
    }))
}

#[utoipa::path(get, path = "/api/sdk/evals/{id}", tag = "evals", params(("id" = String, Path)),
    responses((status = 200, body = EvalCase), (status = 404, body = ErrorBody)))]
async fn get_eval_case(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<EvalCase>, ApiError> {
    Ok(Json(convert::eval_case(
        state.agents.get_eval_case(&ctx, &id).await?,
    )))
}

/// Newest first (at most `limit`, default 50, up to 200).
#[utoipa::path(get, path = "/api/sdk/eval-runs", tag = "evals", params(EvalRunLimit),
    responses((status = 200, body = EvalRunList)))]
async fn list_eval_runs(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiQuery(query): ApiQuery<EvalRunLimit>,
) -> Result<Json<EvalRunList>, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let runs = state.evals.list_runs(&ctx, limit).await?;
    Ok(Json(EvalRunList {
        runs: runs.into_iter().map(convert::eval_run).collect(),
    }))
}

/// The run with the results of the cases that have ended so far.
#[utoipa::path(get, path = "/api/sdk/eval-runs/{id}", tag = "evals", params(("id" = String, Path)),
    responses((status = 200, body = EvalRunDetail), (status = 404, body = ErrorBody)))]
async fn get_eval_run(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<EvalRunDetail>, ApiError> {
    let (run, results) = state
        .evals
        .get_run_with_results(&ctx, &EvalRunId::from_string(id))
        .await?;
    Ok(Json(EvalRunDetail {
        run: convert::eval_run(run),
        results: results.into_iter().map(convert::eval_result).collect(),
    }))
}

/// Kiln extension: stops a pending or running run; the results so far are
/// kept and its status becomes `cancelled`. 409 `run_ended` once it ended.
#[utoipa::path(post, path = "/api/sdk/eval-runs/{id}/cancel", tag = "evals", params(("id" = String, Path)),
    responses((status = 200, body = EvalRunEnvelope), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn cancel_eval_run(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<EvalRunEnvelope>, ApiError> {
    let run = state.evals.cancel_run(&ctx, &EvalRunId::from_string(id)).await?;
    Ok(Json(EvalRunEnvelope {
        run: convert::eval_run(run),
    }))
}

/// One suite per agent.
#[utoipa::path(get, path = "/api/sdk/eval-suites", tag = "evals",
    responses((status = 200, body = Vec<EvalSuite>)))]
async fn list_eval_suites(
    State(state): State<AppState>,
    Authed(ctx): Authed,
) -> Result<Json<Vec<EvalSuite>>, ApiError> {
    let suites = state.agents.list_eval_suites(&ctx).await?;
    Ok(Json(suites.into_iter().map(convert::eval_suite).collect()))
}

#[utoipa::path(get, path = "/api/sdk/eval-suites/{id}", tag = "evals", params(("id" = String, Path)),
    responses((status = 200, body = EvalSuite), (status = 404, body = ErrorBody)))]
async fn get_eval_suite(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<EvalSuite>, ApiError> {
    Ok(Json(convert::eval_suite(
        state.agents.get_eval_suite(&ctx, &id).await?,
    )))
}

/// One version per deploy of the suite's agent, newest first, with the
/// case ids it froze.
#[utoipa::path(get, path = "/api/sdk/eval-suites/{id}/versions", tag = "evals", params(("id" = String, Path)),
    responses((status = 200, body = Vec<EvalSuiteVersion>), (status = 404, body = ErrorBody)))]
async fn list_eval_suite_versions(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<EvalSuiteVersion>>, ApiError> {
    let versions = state.agents.list_eval_suite_versions(&ctx, &id).await?;
    Ok(Json(
        versions.into_iter().map(convert::eval_suite_version).collect(),
    ))
}

/// Starts an advisory run of the agent's pinned suite on its live version
/// (default) or its draft; 202 with the run `pending`. 409 `no_eval_suite`
/// (nothing pinned), `no_draft`, `not_deployed`; 400 for another target.
#[utoipa::path(post, path = "/api/sdk/agent-configs/{id}/eval-runs", tag = "agent-configs",
    params(("id" = String, Path), EvalRunTarget),
    responses((status = 202, body = EvalRunEnvelope), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn start_agent_eval_run(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<EvalRunTarget>,
) -> Result<(StatusCode, Json<EvalRunEnvelope>), ApiError> {
    let target = match query.target.as_deref().filter(|t| !t.is_empty()) {
        Some(target) => Target::parse(target)?,
        None => Target::Live,
    };
    let run = state
        .evals
        .start_run(&ctx, &AgentId::from_string(id), target)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(EvalRunEnvelope {
            run: convert::eval_run(run),
        }),
    ))
}

/// The agent's newest runs (`limit` default 5, at most 50).
#[utoipa::path(get, path = "/api/sdk/agent-configs/{id}/eval-runs", tag = "agent-configs",
    params(("id" = String, Path), EvalRunLimit),
    responses((status = 200, body = Vec<EvalRun>), (status = 404, body = ErrorBody)))]
async fn list_agent_eval_runs(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<EvalRunLimit>,
) -> Result<Json<Vec<EvalRun>>, ApiError> {
    let runs = state
        .evals
        .list_agent_runs(&ctx, &AgentId::from_string(id), query.limit)
        .await?;
    Ok(Json(runs.into_iter().map(convert::eval_run).collect()))
}

/// The agent's pinned suite; 404 when none is pinned.
#[utoipa::path(get, path = "/api/sdk/agent-configs/{id}/eval-suite", tag = "agent-configs",
    params(("id" = String, Path)),
    responses((status = 200, body = EvalSuite), (status = 404, body = ErrorBody)))]
async fn get_agent_eval_suite(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<EvalSuite>, ApiError> {
    let suite = state
        .agents
        .agent_eval_suite(&ctx, &AgentId::from_string(id))
        .await?;
    Ok(Json(convert::eval_suite(suite)))
}
