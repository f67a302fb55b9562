//! CONTRACT §2.7: agent sessions and their turns, plus Kiln's additions:
//! `POST /agents/:id/cancel` and `GET /agents/:id/events?after=N`.
//!
//! Both event streams are framed per §1.12: for each event an `id: <seq>`
//! line (the cursor to resume from; the contract's clients ignore it),
//! `event: <type>`, one compact `data:` line, a blank line; `: ping`
//! comments while nothing happens; the response ends right after `done` or
//! `error`.

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use kiln_api::{
    Acknowledged, AgentSession, CancelResult, CreateSession, ErrorBody, EventsQuery, InputAnswer, PageQuery,
    RunAgent, SessionDetail, SessionList, SystemPrompt, ToolResultBody,
};
use kiln_core::ids::SessionId;
use kiln_core::runtime::{EventFollow, FollowItem};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, Authed, JsonBody};
use crate::{AppState, convert};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(system_prompt))
        .routes(routes!(list_sessions, create_session))
        .routes(routes!(get_session, delete_session))
        .routes(routes!(run_turn))
        .routes(routes!(answer_input))
        .routes(routes!(answer_tool_call))
        .routes(routes!(cancel_turn))
        .routes(routes!(follow_events))
}

/// The platform prompt every agent of this project sees: how to write code
/// and what the sandbox offers, and the project's indexes.
#[utoipa::path(get, path = "/api/sdk/agents/system-prompt", tag = "agents",
    responses((status = 200, body = SystemPrompt)))]
async fn system_prompt(
    State(state): State<AppState>,
    Authed(ctx): Authed,
) -> Result<Json<SystemPrompt>, ApiError> {
    let prompt = state.runtime.agent_system_prompt(&ctx).await?;
    Ok(Json(SystemPrompt { prompt }))
}

/// Creates an ad-hoc session. `index_ids` left out searches every index;
/// `[]` turns search off. `tools` adds function-call tools (`search`,
/// `fetch`, `list_stores`); unknown names get 400 `unknown_tool`.
#[utoipa::path(post, path = "/api/sdk/agents", tag = "agents", request_body = CreateSession,
    responses((status = 201, body = AgentSession), (status = 400, body = ErrorBody)))]
async fn create_session(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    JsonBody(body): JsonBody<CreateSession>,
) -> Result<(StatusCode, Json<AgentSession>), ApiError> {
    // Webhooks are checked before the session is written, and a session
    // whose webhooks cannot be stored is taken back.
    let webhooks = body
        .webhooks
        .map(|w| {
            state
                .webhooks
                .check(w.into_iter().map(convert::webhook_input).collect())
        })
        .transpose()?;
    let session = state
        .runtime
        .create_session(
            &ctx,
            kiln_core::runtime::CreateSession {
                agent_version_id: body.agent_version_id,
                agent_id: body.agent_id,
                target: body.target,
                title: body.title,
                system_prompt: body.system_prompt,
                model: body.model,
                tools: body.tools,
                metadata: body.metadata,
                index_ids: body.index_ids,
                client_tools: body.client_tools.map(|tools| {
                    tools
                        .into_iter()
                        .map(|t| kiln_core::llm::ToolSpec {
                            name: t.name,
                            description: t.description,
                            parameters: t.parameters,
                        })
                        .collect()
                }),
            },
        )
        .await?;
    if let Some(webhooks) = webhooks.filter(|w| !w.is_empty())
        && let Err(e) = state.webhooks.attach(&ctx, &session.id, webhooks).await
    {
        if let Err(undo) = state.runtime.delete_session(&ctx, &session.id).await {
            tracing::error!(error = %undo, session = %session.id, "taking back a session whose webhooks failed");
        }
        return Err(e.into());
    }
    Ok((StatusCode::CREATED, Json(convert::session(session))))
}

/// Newest first; `limit` defaults to 50 and is clamped to 200.
#[utoipa::path(get, path = "/api/sdk/agents", tag = "agents", params(PageQuery),
    responses((status = 200, body = SessionList)))]
async fn list_sessions(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<SessionList>, ApiError> {
    let sessions = state.runtime.list_sessions(&ctx, page.limit, page.offset).await?;
    Ok(Json(SessionList {
        sessions: sessions.into_iter().map(convert::session).collect(),
    }))
}

/// The session and its steps by `step_index`.
#[utoipa::path(get, path = "/api/sdk/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = SessionDetail), (status = 404, body = ErrorBody)))]
async fn get_session(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionDetail>, ApiError> {
    let (session, steps) = state
        .runtime
        .session_steps(&ctx, &SessionId::from_string(id))
        .await?;
    Ok(Json(SessionDetail {
        session: convert::session(session),
        steps: steps.into_iter().map(convert::step).collect(),
    }))
}

/// Deletes the session, its steps and events; a running turn stops.
#[utoipa::path(delete, path = "/api/sdk/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_session(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state
        .runtime
        .delete_session(&ctx, &SessionId::from_string(id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs one turn and streams its events (SSE). Errors before the stream
/// are JSON: 404, 400 (empty message), 409 `run_in_progress`. A dropped
/// connection does not stop the turn: reconnect with
/// `GET /agents/{id}/events?after=<last id>` (before any event arrived: the
/// `Kiln-Event-Cursor` response header).
#[utoipa::path(post, path = "/api/sdk/agents/{id}/run", tag = "agents", params(("id" = String, Path)),
    request_body = RunAgent,
    responses((status = 200, content_type = "text/event-stream", body = kiln_api::AgentEvent),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn run_turn(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<RunAgent>,
) -> Result<Response, ApiError> {
    let id = SessionId::from_string(id);
    state
        .control
        .rate_limit(&ctx, kiln_core::control::rate::RateKind::Run)?;
    let (cursor, events) = state.runtime.run_turn(&ctx, &id, &body.message).await?;
    let mut response = event_stream(id, events, None);
    response
        .headers_mut()
        .insert(kiln_api::EVENT_CURSOR_HEADER, HeaderValue::from(cursor));
    Ok(response)
}

/// Answers a pending `input_request`: `value` is a boolean (`confirm`),
/// one of the options (`choice`) or a string (`text`).
#[utoipa::path(post, path = "/api/sdk/agents/{id}/input", tag = "agents", params(("id" = String, Path)),
    request_body = InputAnswer,
    responses((status = 200, body = Acknowledged), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn answer_input(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<InputAnswer>,
) -> Result<Json<Acknowledged>, ApiError> {
    if body.request_id.is_empty() {
        return Err(ApiError::validation("request_id is required", Some("request_id")));
    }
    state
        .runtime
        .answer_input(&ctx, &SessionId::from_string(id), &body.request_id, body.value)
        .await?;
    Ok(Json(Acknowledged { ok: true }))
}

/// Kiln: the result (or error) of a client tool call, by the `call_id` of
/// its `tool_call` event; the paused turn goes on. 404
/// `tool_call_not_found`, 400 `tool_call_already_resolved` when answered
/// before, 400 `tool_call_expired` when its turn ended; a result takes at
/// most 256 KiB.
#[utoipa::path(post, path = "/api/sdk/agents/{id}/tool-results", tag = "agents", params(("id" = String, Path)),
    request_body = ToolResultBody,
    responses((status = 200, body = Acknowledged), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn answer_tool_call(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<ToolResultBody>,
) -> Result<Json<Acknowledged>, ApiError> {
    if body.call_id.is_empty() {
        return Err(ApiError::validation("call_id is required", Some("call_id")));
    }
    let outcome = match (body.result, body.error) {
        (Some(result), None) => Ok(result),
        (None, Some(error)) => Err(error),
        _ => {
            return Err(ApiError::validation(
                "give exactly one of `result` and `error`",
                Some("result"),
            ));
        }
    };
    state
        .runtime
        .answer_tool_call(&ctx, &SessionId::from_string(id), &body.call_id, outcome)
        .await?;
    Ok(Json(Acknowledged { ok: true }))
}

/// Stops the running turn (on whichever server runs it): the turn's stream
/// ends with an `error` event with code `cancelled`, and the session is
/// `active` again when this returns. 409 `not_running` when idle.
#[utoipa::path(post, path = "/api/sdk/agents/{id}/cancel", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = CancelResult), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn cancel_turn(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CancelResult>, ApiError> {
    let session = state
        .runtime
        .cancel_turn(&ctx, &SessionId::from_string(id))
        .await?;
    Ok(Json(CancelResult {
        ok: true,
        session: convert::session(session),
    }))
}

/// The session's events after `after` (or the `Last-Event-ID` header),
/// then live until the running turn ends; at once when none runs.
#[utoipa::path(get, path = "/api/sdk/agents/{id}/events", tag = "agents",
    params(("id" = String, Path), EventsQuery),
    responses((status = 200, content_type = "text/event-stream", body = kiln_api::AgentEvent),
              (status = 404, body = ErrorBody)))]
async fn follow_events(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = match query.after {
        Some(after) => after,
        None => match headers.get("last-event-id") {
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::validation("Last-Event-ID must be an event's id (an integer)", None)
                })?,
            None => 0,
        },
    };
    let id = SessionId::from_string(id);
    let events = state.runtime.follow_events(&ctx, &id, after).await?;
    Ok(event_stream(id, events, None))
}

/// The SSE response of a reader; `first`, when given, goes out before the
/// session's events (without an `id:`: it is not in the session's log).
pub(crate) fn event_stream(
    id: SessionId,
    events: EventFollow,
    first: Option<kiln_api::AgentEvent>,
) -> Response {
    let session_id = id.into_string();
    let first = first
        .map(|wire| Ok::<Event, Infallible>(Event::default().event(wire.kind.clone()).data(data_line(wire))));
    let events = events.map(move |item| {
        let event = match item {
            FollowItem::Event(stored) => {
                let wire = convert::agent_event(&session_id, stored.body.clone());
                let kind = wire.kind.clone();
                Event::default()
                    .id(stored.seq.to_string())
                    .event(kind)
                    .data(data_line(wire))
            }
            FollowItem::Idle => Event::default().comment("ping"),
        };
        Ok::<Event, Infallible>(event)
    });
    let events = futures::stream::iter(first).chain(events);
    let mut response = Sse::new(events).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The longest `data:` line written; the Go client fails on lines of 64 KiB.
const MAX_DATA_LINE: usize = 60 * 1024;

/// `event` as one compact JSON line under [`MAX_DATA_LINE`]. Contents are
/// already cut where they are made, but escaping can grow them (a control
/// character takes six bytes), so an oversized line is cut further, halving
/// the room of `content`, `result` and each `args` value until it fits.
fn data_line(event: kiln_api::AgentEvent) -> String {
    let line = serde_json::to_string(&event).expect("events serialise");
    if line.len() <= MAX_DATA_LINE {
        return line;
    }
    use kiln_core::runtime::event::{render_value, truncate_text};
    let mut room = 8 * 1024;
    loop {
        let mut smaller = event.clone();
        smaller.content = event.content.as_deref().map(|c| truncate_text(c, room));
        smaller.result = event
            .result
            .as_ref()
            .map(|r| serde_json::Value::String(truncate_text(&render_value(r), room)));
        if let Some(args) = smaller.args.as_mut() {
            for value in args.values_mut() {
                let text = render_value(value);
                if text.len() > room / 4 {
                    *value = serde_json::Value::String(truncate_text(&text, room / 4));
                }
            }
        }
        let line = serde_json::to_string(&smaller).expect("events serialise");
        if line.len() <= MAX_DATA_LINE {
            return line;
        }
        if room < 256 {
            // Too many keys (a huge `data.set`): keep the ones clients read
            // and say how many were left out.
            const KEPT: [&str; 6] = ["kind", "summary", "request_id", "input_type", "message", "error"];
            if let Some(args) = smaller.args.as_mut() {
                let total = args.len();
                args.retain(|key, _| KEPT.contains(&key.as_str()));
                args.insert("truncated".to_owned(), serde_json::Value::Bool(true));
                args.insert("keys".to_owned(), serde_json::Value::from(total));
            }
            return serde_json::to_string(&smaller).expect("events serialise");
        }
        room /= 2;
    }
}
