//! CONTRACT §2.6: stateless chat completions and stored conversations.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use kiln_api::MessageDelta;
use kiln_api::{
    ChatCompletionChoice, ChatCompletionInput, ChatCompletionResult, ChatMessage, ConversationDetail,
    ConversationList, CreateConversation, ErrorBody, PageQuery, SendMessage, SendMessageResult,
};
use kiln_core::gateway::chat::MessageStreamEvent;
use kiln_core::ids::ConversationId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, Authed, JsonBody};
use crate::{AppState, convert};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(chat_completions))
        .routes(routes!(list_conversations, create_conversation))
        .routes(routes!(get_conversation, delete_conversation))
        .routes(routes!(send_message))
}

/// A stateless completion over the history the caller sends. The last
/// message must be the user's. `model` is `provider/model` (default: the
/// project's default model, else the offline model).
#[utoipa::path(post, path = "/api/sdk/chat/completions", tag = "chat", request_body = ChatCompletionInput,
    responses((status = 200, body = ChatCompletionResult), (status = 400, body = ErrorBody),
              (status = 502, body = ErrorBody)))]
async fn chat_completions(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    JsonBody(body): JsonBody<ChatCompletionInput>,
) -> Result<Json<ChatCompletionResult>, ApiError> {
    state
        .control
        .rate_limit(&ctx, kiln_core::control::rate::RateKind::Chat)?;
    let messages = body.messages.into_iter().map(|m| (m.role, m.content)).collect();
    let (model, response) = state
        .gateway
        .chat_completion(
            &ctx,
            body.model.as_deref(),
            messages,
            body.use_rag.unwrap_or(false),
            body.index_id.as_deref(),
        )
        .await?;
    Ok(Json(ChatCompletionResult {
        id: format!("chatcmpl-{}", uuid_like()),
        object: "chat.completion".into(),
        created: chrono::Utc::now().timestamp(),
        model: model.to_string(),
        choices: vec![ChatCompletionChoice {
            index: 0,
            message: ChatMessage {
                role: "assistant".into(),
                content: response.content,
            },
            finish_reason: response.finish_reason.as_str().into(),
        }],
        usage: convert::usage(response.usage),
    }))
}

/// A fresh opaque id for completion objects.
pub(crate) fn uuid_like() -> String {
    kiln_core::ids::LlmCallId::generate()
        .into_string()
        .replace('-', "")
}

#[utoipa::path(post, path = "/api/sdk/conversations", tag = "chat", request_body = CreateConversation,
    responses((status = 201, body = kiln_api::Conversation), (status = 400, body = ErrorBody)))]
async fn create_conversation(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    JsonBody(body): JsonBody<CreateConversation>,
) -> Result<(StatusCode, Json<kiln_api::Conversation>), ApiError> {
    let conversation = state
        .gateway
        .create_conversation(&ctx, body.title, body.system_prompt, body.model, body.metadata)
        .await?;
    Ok((StatusCode::CREATED, Json(convert::conversation(conversation))))
}

/// Newest first; `limit` defaults to 50 and is clamped to 200.
#[utoipa::path(get, path = "/api/sdk/conversations", tag = "chat", params(PageQuery),
    responses((status = 200, body = ConversationList)))]
async fn list_conversations(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<ConversationList>, ApiError> {
    let conversations = state
        .gateway
        .list_conversations(&ctx, page.limit, page.offset)
        .await?;
    Ok(Json(ConversationList {
        conversations: conversations.into_iter().map(convert::conversation).collect(),
    }))
}

/// The conversation, its messages oldest first, and its cumulative usage
/// (`null` before the first model call).
#[utoipa::path(get, path = "/api/sdk/conversations/{id}", tag = "chat", params(("id" = String, Path)),
    responses((status = 200, body = ConversationDetail), (status = 404, body = ErrorBody)))]
async fn get_conversation(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ConversationDetail>, ApiError> {
    let (conversation, messages) = state
        .gateway
        .get_conversation(&ctx, &ConversationId::from_string(id))
        .await?;
    let token_usage = (conversation.llm_calls > 0).then(|| convert::usage(conversation.usage));
    Ok(Json(ConversationDetail {
        conversation: convert::conversation(conversation),
        messages: messages.into_iter().map(convert::message).collect(),
        token_usage,
    }))
}

#[utoipa::path(delete, path = "/api/sdk/conversations/{id}", tag = "chat", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_conversation(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state
        .gateway
        .delete_conversation(&ctx, &ConversationId::from_string(id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stores the user message, runs the model over the history with the
/// conversation's system prompt and model, and stores the reply. With
/// `"stream": true` the reply streams as SSE (`delta` events, then `done`).
#[utoipa::path(post, path = "/api/sdk/conversations/{id}/messages", tag = "chat", params(("id" = String, Path)),
    request_body = SendMessage,
    responses((status = 200, body = SendMessageResult), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn send_message(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<SendMessage>,
) -> Result<Response, ApiError> {
    state
        .control
        .rate_limit(&ctx, kiln_core::control::rate::RateKind::Chat)?;
    if body.stream.unwrap_or(false) {
        let events = state
            .gateway
            .send_message_stream(
                &ctx,
                &ConversationId::from_string(id),
                &body.content,
                body.use_rag.unwrap_or(false),
                body.index_id.as_deref(),
            )
            .await?;
        let events = events.map(|event| {
            let (name, data) = match event {
                MessageStreamEvent::Delta(content) => {
                    ("delta", serde_json::to_string(&MessageDelta { content }))
                }
                MessageStreamEvent::Done { user, reply, usage } => (
                    "done",
                    serde_json::to_string(&SendMessageResult {
                        user_message: convert::message(user),
                        message: convert::message(reply),
                        token_usage: convert::usage(usage),
                    }),
                ),
                MessageStreamEvent::Failed(e) => ("error", serde_json::to_string(&ApiError::from(e).body)),
            };
            Ok::<Event, Infallible>(Event::default().event(name).data(data.expect("events serialise")))
        });
        return Ok(Sse::new(events)
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
            .into_response());
    }
    let (user, reply, usage) = state
        .gateway
        .send_message(
            &ctx,
            &ConversationId::from_string(id),
            &body.content,
            body.use_rag.unwrap_or(false),
            body.index_id.as_deref(),
        )
        .await?;
    Ok(Json(SendMessageResult {
        user_message: convert::message(user),
        message: convert::message(reply),
        token_usage: convert::usage(usage),
    })
    .into_response())
}
