//! CONTRACT §2.14: the studio. A session's trace, a replay into a new
//! session streamed like `/run` (with `replay_started` first), and an
//! analysis of a failed run by the session's model.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::Response;
use kiln_api::{
    AnalyzeRequest, ErrorBody, ReplayRequest, StudioFixSuggestion, StudioTrace, SuggestedEvalCase,
};
use kiln_core::ids::SessionId;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{ApiPath, Authed, JsonBody};
use crate::routes::agents::event_stream;
use crate::{AppState, convert};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_trace))
        .routes(routes!(replay))
        .routes(routes!(analyze))
}

/// The session, its steps, the complete system prompt its turns see and
/// its tools.
#[utoipa::path(get, path = "/api/sdk/studio/{id}", tag = "studio", params(("id" = String, Path)),
    responses((status = 200, body = StudioTrace), (status = 404, body = ErrorBody)))]
async fn get_trace(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StudioTrace>, ApiError> {
    let trace = state.runtime.trace(&ctx, &SessionId::from_string(id)).await?;
    Ok(Json(StudioTrace {
        session: convert::session(trace.session),
        steps: trace.steps.into_iter().map(convert::step).collect(),
        system_prompt: trace.system_prompt,
        tools: trace.tools,
        memory: Default::default(),
    }))
}

/// Replays the session from `from_step` into a new session: the turns
/// before the one holding that step are copied, and that turn runs again
/// (with `message` and `system_prompt` when given). The stream starts with
/// `replay_started` (the new session id) and ends with `done` or `error`.
/// 400 when `from_step` is missing or not one of the session's steps.
#[utoipa::path(post, path = "/api/sdk/studio/{id}/replay", tag = "studio", params(("id" = String, Path)),
    request_body = ReplayRequest,
    responses((status = 200, content_type = "text/event-stream", body = kiln_api::AgentEvent),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn replay(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<ReplayRequest>,
) -> Result<Response, ApiError> {
    let Some(from_step) = body.from_step else {
        return Err(ApiError::validation("from_step is required", Some("from_step")));
    };
    let source = SessionId::from_string(id);
    let replay = state
        .runtime
        .replay(&ctx, &source, from_step, body.system_prompt, body.message)
        .await?;
    let new_id = replay.session.id.to_string();
    let started = kiln_api::AgentEvent {
        kind: kiln_api::event_types::REPLAY_STARTED.to_owned(),
        content: Some(new_id.clone()),
        args: json!({ "session_id": new_id, "source_session_id": source.as_str(), "from_step": from_step })
            .as_object()
            .cloned(),
        ..Default::default()
    };
    let mut response = event_stream(replay.session.id, replay.events, Some(started));
    response
        .headers_mut()
        .insert(kiln_api::EVENT_CURSOR_HEADER, HeaderValue::from(replay.cursor));
    Ok(response)
}

/// One call of the session's model over its trace: prompt changes, an
/// optional regression case, and why. 502 when the model fails or answers
/// with something other than the JSON asked for.
#[utoipa::path(post, path = "/api/sdk/studio/{id}/analyze", tag = "studio", params(("id" = String, Path)),
    request_body = AnalyzeRequest,
    responses((status = 200, body = StudioFixSuggestion), (status = 404, body = ErrorBody),
              (status = 502, body = ErrorBody)))]
async fn analyze(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<AnalyzeRequest>,
) -> Result<Json<StudioFixSuggestion>, ApiError> {
    let suggestion = state
        .studio
        .analyze(
            &ctx,
            &SessionId::from_string(id),
            &body.failed_steps.unwrap_or_default(),
            &body.expected_outcome,
        )
        .await?;
    Ok(Json(StudioFixSuggestion {
        prompt_changes: suggestion.prompt_changes,
        eval_case: suggestion.eval_case.map(|c| SuggestedEvalCase {
            name: c.name,
            prompt: c.prompt,
            criteria: c.criteria,
        }),
        reasoning: suggestion.reasoning,
    }))
}
