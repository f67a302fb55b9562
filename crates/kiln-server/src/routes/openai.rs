//! The OpenAI-compatible surface: `POST /v1/chat/completions` (streaming
//! and not, tool calls passed through) and `GET /v1/models`, authenticated
//! with `Authorization: Bearer kiln_...`, so the official OpenAI SDKs work
//! with `base_url = http://host:8080/v1`. Errors use OpenAI's shape
//! (`{"error": {"message", "type", "code"}}`).

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use kiln_api::openai as wire;
use kiln_core::llm::{ChatRequest, Message, Role, ToolCall, ToolSpec};
use kiln_core::usage::CallSource;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::convert;
use crate::error::ApiError;
use crate::extract::{Authed, JsonBody};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(chat_completions))
        .routes(routes!(list_models))
}

/// An `ApiError` rendered in OpenAI's error shape.
pub(crate) struct OpenAiError(ApiError);

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        OpenAiError(e)
    }
}

impl From<kiln_core::Error> for OpenAiError {
    /// Like the `/api/sdk` mapping, except that a provider's 4xx (a bad
    /// request, a rate limit) keeps its status: OpenAI clients retry 5xx,
    /// and would multiply a 429 or re-send a request the provider refused.
    fn from(e: kiln_core::Error) -> Self {
        let passthrough = match &e {
            kiln_core::Error::Upstream(kiln_core::llm::LlmError::Upstream { status, .. })
                if (400..500).contains(status) =>
            {
                axum::http::StatusCode::from_u16(*status).ok()
            }
            _ => None,
        };
        let mut error = ApiError::from(e);
        if let Some(status) = passthrough {
            error.status = status;
        }
        OpenAiError(error)
    }
}

fn openai_error_type(status: u16) -> &'static str {
    use wire::error_types::*;
    match status {
        401 => AUTHENTICATION,
        404 => NOT_FOUND,
        429 => RATE_LIMIT,
        400..=499 => INVALID_REQUEST,
        _ => API,
    }
}

fn openai_body(e: &ApiError) -> wire::OpenAiErrorBody {
    wire::OpenAiErrorBody {
        error: wire::OpenAiError {
            message: e.body.message.clone(),
            kind: openai_error_type(e.status.as_u16()).into(),
            code: Some(e.body.code.clone()),
            param: e
                .body
                .details
                .get("field")
                .and_then(|f| f.as_str())
                .map(str::to_owned),
        },
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let retry_after = crate::error::retry_after(&self.0);
        let mut response = (self.0.status, Json(openai_body(&self.0))).into_response();
        if let Some(value) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        response
    }
}

/// The OpenAI request as a provider-neutral one.
fn to_request(body: &wire::ChatCompletionRequest) -> Result<ChatRequest, ApiError> {
    if body.messages.is_empty() {
        return Err(ApiError::validation(
            "messages must not be empty",
            Some("messages"),
        ));
    }
    let mut messages = Vec::with_capacity(body.messages.len());
    for (i, m) in body.messages.iter().enumerate() {
        let role = Role::parse(&m.role).ok_or_else(|| {
            ApiError::validation(
                format!(
                    "messages[{i}].role `{}` is not system, developer, user, assistant or tool",
                    m.role
                ),
                Some(&format!("messages[{i}].role")),
            )
        })?;
        messages.push(Message {
            role,
            content: m
                .content
                .as_ref()
                .map(wire::MessageContent::text)
                .unwrap_or_default(),
            tool_calls: m
                .tool_calls
                .iter()
                .flatten()
                .map(|c| ToolCall {
                    id: c.id.clone(),
                    name: c.function.name.clone(),
                    arguments: c.function.arguments.clone(),
                })
                .collect(),
            tool_call_id: m.tool_call_id.clone(),
        });
    }
    let stop = match &body.stop {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    Ok(ChatRequest {
        model: String::new(),
        messages,
        history: Default::default(),
        tools: body
            .tools
            .iter()
            .flatten()
            .map(|t| ToolSpec {
                name: t.function.name.clone(),
                description: t.function.description.clone().unwrap_or_default(),
                parameters: t
                    .function
                    .parameters
                    .clone()
                    .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            })
            .collect(),
        tool_choice: body.tool_choice.clone(),
        temperature: body.temperature,
        top_p: body.top_p,
        max_tokens: body.max_completion_tokens.or(body.max_tokens),
        stop,
        extra: body.extra.clone(),
    })
}

/// OpenAI-compatible chat completions; `stream: true` answers with
/// `chat.completion.chunk` events and `data: [DONE]`.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", request_body = wire::ChatCompletionRequest,
    responses((status = 200, description = "chat.completion, or an SSE stream of chat.completion.chunk",
               body = wire::ChatCompletion),
              (status = 400, body = wire::OpenAiErrorBody), (status = 401, body = wire::OpenAiErrorBody),
              (status = 502, body = wire::OpenAiErrorBody)))]
async fn chat_completions(
    State(state): State<AppState>,
    authed: Result<Authed, ApiError>,
    body: Result<JsonBody<wire::ChatCompletionRequest>, ApiError>,
) -> Result<Response, OpenAiError> {
    let Authed(ctx) = authed?;
    state
        .control
        .rate_limit(&ctx, kiln_core::control::rate::RateKind::Chat)?;
    let JsonBody(body) = body?;
    let request = to_request(&body)?;
    let id = format!("chatcmpl-{}", super::chat::uuid_like());
    let created = chrono::Utc::now().timestamp();
    if !body.stream.unwrap_or(false) {
        let (model, response) = state
            .gateway
            .complete(&ctx, body.model.as_deref(), request, CallSource::OpenAi)
            .await?;
        let completion = convert::openai_completion(id, created, &model, response);
        return Ok(Json(completion).into_response());
    }
    let include_usage = body
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let (model, deltas) = state
        .gateway
        .stream(&ctx, body.model.as_deref(), request, CallSource::OpenAi)
        .await?;
    let chunks = convert::OpenAiChunks {
        id,
        created,
        model: model.to_string(),
        include_usage,
    };
    let first = Event::default().data(chunk_json(&chunks.first()));
    let events = deltas
        .filter_map(move |delta| {
            let event = match delta {
                Ok(delta) => chunks
                    .chunk_of(delta)
                    .map(|c| Event::default().data(chunk_json(&c))),
                Err(e) => {
                    let body = openai_body(&ApiError::from(kiln_core::Error::Upstream(e)));
                    Some(Event::default().data(serde_json::to_string(&body).expect("errors serialise")))
                }
            };
            futures::future::ready(event)
        })
        .map(Ok::<Event, Infallible>);
    let done = futures::stream::once(async { Ok::<Event, Infallible>(Event::default().data("[DONE]")) });
    let stream = futures::stream::once(async move { Ok::<Event, Infallible>(first) })
        .chain(events)
        .chain(done);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

fn chunk_json(chunk: &wire::ChatCompletionChunk) -> String {
    serde_json::to_string(chunk).expect("chunks serialise")
}

/// The models this project can use: each configured provider's default
/// model and `kiln/offline`; any `provider/model` of a configured provider
/// is accepted too.
#[utoipa::path(get, path = "/v1/models", tag = "openai",
    responses((status = 200, body = wire::ModelList), (status = 401, body = wire::OpenAiErrorBody)))]
async fn list_models(
    State(state): State<AppState>,
    authed: Result<Authed, ApiError>,
) -> Result<Json<wire::ModelList>, OpenAiError> {
    let Authed(ctx) = authed?;
    let models = state.gateway.available_models(&ctx).await?;
    Ok(Json(wire::ModelList {
        object: "list".into(),
        data: models
            .into_iter()
            .map(|m| wire::ModelInfo {
                owned_by: m.provider.name().to_owned(),
                id: m.to_string(),
                object: "model".into(),
                created: 0,
            })
            .collect(),
    }))
}
