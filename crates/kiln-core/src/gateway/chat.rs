//! Chat: stateless completions (`POST /chat/completions`) and stored
//! conversations, both optionally grounded in retrieved passages.

use std::sync::Arc;

use futures_core::Stream;
use serde_json::Value;

use crate::audit::{Actor, NewAudit, actions};
use crate::auth::AuthContext;
use crate::error::{EntityKind, Error, Result};
use crate::gateway::LlmGateway;
use crate::ids::{ConversationId, MessageId, ProjectId};
use crate::llm::{
    ChatDelta, ChatRequest, ChatResponse, DeltaStream, LlmProvider, Message, ModelRef, Role, Usage,
};
use crate::page::Page;
use crate::time::{Timestamp, now};
use crate::usage::{CallSource, LlmCall};

pub const CONVERSATIONS_DEFAULT_LIMIT: i64 = 50;
pub const CONVERSATIONS_MAX_LIMIT: i64 = 200;
/// Largest message accepted in a conversation, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Passages retrieved for a message sent with `use_rag`.
pub const RAG_PASSAGES: i64 = 5;

#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub id: ConversationId,
    pub project_id: ProjectId,
    pub title: String,
    pub system_prompt: String,
    /// As given (may be empty: the project default applies at each call).
    pub model: String,
    pub metadata: Value,
    pub usage: Usage,
    pub llm_calls: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConversationMessage {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub role: Role,
    pub content: String,
    pub created_at: Timestamp,
}

/// A parsed `POST /chat/completions` message list: non-empty, known roles,
/// ending with a user message.
pub fn parse_chat_messages(messages: Vec<(String, String)>) -> Result<Vec<Message>> {
    if messages.is_empty() {
        return Err(Error::validation("messages must not be empty", Some("messages")));
    }
    let mut parsed = Vec::with_capacity(messages.len());
    for (i, (role, content)) in messages.into_iter().enumerate() {
        let role = match Role::parse(&role) {
            Some(r @ (Role::System | Role::User | Role::Assistant)) => r,
            _ => {
                return Err(Error::validation(
                    format!("messages[{i}].role must be `system`, `user` or `assistant`"),
                    Some(&format!("messages[{i}].role")),
                ));
            }
        };
        parsed.push(Message::new(role, content));
    }
    if parsed.last().map(|m| m.role) != Some(Role::User) {
        return Err(Error::validation(
            "the last message must have role `user`",
            Some("messages"),
        ));
    }
    Ok(parsed)
}

impl LlmGateway {
    /// Passages for `question` when `use_rag` is on: the best chunks of the
    /// index named by `index_id` (404 if it is not the project's), or of the
    /// whole project, as one system message for the model to cite.
    async fn rag_context(
        &self,
        ctx: &AuthContext,
        use_rag: bool,
        index_id: Option<&str>,
        question: &str,
    ) -> Result<Option<Message>> {
        let index_id = index_id
            .filter(|i| !i.is_empty())
            .map(crate::ids::IndexId::from_string);
        if let Some(index_id) = &index_id {
            self.rag.get_index(ctx, index_id).await?;
        }
        if !use_rag || question.trim().is_empty() {
            return Ok(None);
        }
        let query: String = question
            .chars()
            .take(crate::rag::search::MAX_QUERY_CHARS)
            .collect();
        let hits = self
            .rag
            .search(
                ctx,
                crate::rag::search::SearchQuery {
                    query,
                    top_k: Some(RAG_PASSAGES),
                    index_id,
                    ..Default::default()
                },
            )
            .await?;
        if hits.is_empty() {
            return Ok(None);
        }
        let passages: Vec<(String, String)> = hits
            .into_iter()
            .map(|h| {
                let source = h
                    .record
                    .document
                    .name
                    .clone()
                    .unwrap_or(h.record.document.filename.clone());
                (source, h.record.content)
            })
            .collect();
        Ok(Some(Message::new(
            Role::System,
            crate::llm::format_passages(&passages),
        )))
    }

    /// `POST /chat/completions`: stateless, the caller sends the history.
    pub async fn chat_completion(
        &self,
        ctx: &AuthContext,
        model: Option<&str>,
        messages: Vec<(String, String)>,
        use_rag: bool,
        index_id: Option<&str>,
    ) -> Result<(ModelRef, ChatResponse)> {
        let mut messages = parse_chat_messages(messages)?;
        let question = messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.clone())
            .unwrap_or_default();
        if let Some(passages) = self.rag_context(ctx, use_rag, index_id, &question).await? {
            let at = messages.len().saturating_sub(1);
            messages.insert(at, passages);
        }
        let request = ChatRequest {
            messages,
            ..Default::default()
        };
        self.complete(ctx, model, request, CallSource::Chat).await
    }

    pub async fn create_conversation(
        &self,
        ctx: &AuthContext,
        title: Option<String>,
        system_prompt: Option<String>,
        model: Option<String>,
        metadata: Option<Value>,
    ) -> Result<Conversation> {
        let model = model.unwrap_or_default();
        if !model.trim().is_empty() && ModelRef::parse(&model).is_none() {
            return Err(Error::validation(
                format!("model `{model}` names no known provider; use `provider/model`"),
                Some("model"),
            ));
        }
        let at = now();
        let conversation = Conversation {
            id: ConversationId::generate(),
            project_id: ctx.project.id.clone(),
            title: title.unwrap_or_default(),
            system_prompt: system_prompt.unwrap_or_default(),
            model: model.trim().to_owned(),
            metadata: metadata.unwrap_or_else(|| Value::Object(Default::default())),
            usage: Usage::default(),
            llm_calls: 0,
            created_at: at,
            updated_at: at,
        };
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::CONVERSATION_CREATE,
            conversation.id.as_str(),
        );
        self.store.create_conversation(&conversation, &audit).await?;
        Ok(conversation)
    }

    pub async fn list_conversations(
        &self,
        ctx: &AuthContext,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> Result<Vec<Conversation>> {
        let page = Page::new(
            limit,
            offset,
            CONVERSATIONS_DEFAULT_LIMIT,
            CONVERSATIONS_MAX_LIMIT,
        );
        Ok(self.store.list_conversations(&ctx.project.id, page).await?)
    }

    pub async fn get_conversation(
        &self,
        ctx: &AuthContext,
        id: &ConversationId,
    ) -> Result<(Conversation, Vec<ConversationMessage>)> {
        let conversation = self
            .store
            .get_conversation(&ctx.project.id, id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Conversation, id))?;
        let messages = self.store.conversation_messages(&ctx.project.id, id).await?;
        Ok((conversation, messages))
    }

    pub async fn delete_conversation(&self, ctx: &AuthContext, id: &ConversationId) -> Result<()> {
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::CONVERSATION_DELETE,
            id.as_str(),
        );
        if !self
            .store
            .delete_conversation(&ctx.project.id, id, &audit)
            .await?
        {
            return Err(Error::not_found(EntityKind::Conversation, id));
        }
        Ok(())
    }

    /// Runs the model over the stored history plus `content` and stores
    /// both messages. Nothing is stored when the model call fails.
    pub async fn send_message(
        &self,
        ctx: &AuthContext,
        id: &ConversationId,
        content: &str,
        use_rag: bool,
        index_id: Option<&str>,
    ) -> Result<(ConversationMessage, ConversationMessage, Usage)> {
        let exchange = self.prepare_exchange(ctx, id, content, use_rag, index_id).await?;
        let response = exchange.provider.complete(&exchange.request).await?;
        self.finish_exchange(ctx, &exchange, response.content, response.usage)
            .await
    }

    /// Like [`LlmGateway::send_message`], with the reply streamed as it is
    /// generated; the exchange is stored when the stream completes (and not
    /// at all if it fails or is dropped).
    pub async fn send_message_stream(
        self: &Arc<Self>,
        ctx: &AuthContext,
        id: &ConversationId,
        content: &str,
        use_rag: bool,
        index_id: Option<&str>,
    ) -> Result<impl Stream<Item = MessageStreamEvent> + Send + 'static> {
        let exchange = self.prepare_exchange(ctx, id, content, use_rag, index_id).await?;
        let upstream = exchange.provider.stream(&exchange.request).await?;
        let state = StreamState {
            gateway: self.clone(),
            ctx: ctx.clone(),
            exchange,
            upstream: Some(upstream),
            text: String::new(),
            usage: Usage::default(),
        };
        Ok(futures_util::stream::unfold(state, |mut state| async move {
            use futures_util::StreamExt;
            let upstream = state.upstream.as_mut()?;
            loop {
                match upstream.next().await {
                    Some(Ok(ChatDelta::Content(text))) => {
                        state.text.push_str(&text);
                        return Some((MessageStreamEvent::Delta(text), state));
                    }
                    Some(Ok(ChatDelta::Usage(usage))) => state.usage = usage,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        state.upstream = None;
                        return Some((MessageStreamEvent::Failed(e.into()), state));
                    }
                    None => {
                        state.upstream = None;
                        let text = std::mem::take(&mut state.text);
                        let event = match state
                            .gateway
                            .finish_exchange(&state.ctx, &state.exchange, text, state.usage)
                            .await
                        {
                            Ok((user, reply, usage)) => MessageStreamEvent::Done { user, reply, usage },
                            Err(e) => MessageStreamEvent::Failed(e),
                        };
                        return Some((event, state));
                    }
                }
            }
        }))
    }

    async fn prepare_exchange(
        &self,
        ctx: &AuthContext,
        id: &ConversationId,
        content: &str,
        use_rag: bool,
        index_id: Option<&str>,
    ) -> Result<Exchange> {
        if content.trim().is_empty() {
            return Err(Error::validation("content must not be empty", Some("content")));
        }
        if content.len() > MAX_MESSAGE_BYTES {
            return Err(Error::validation(
                format!("content is larger than {MAX_MESSAGE_BYTES} bytes"),
                Some("content"),
            ));
        }
        let (conversation, history) = self.get_conversation(ctx, id).await?;
        let passages = self.rag_context(ctx, use_rag, index_id, content).await?;
        let mut messages = Vec::with_capacity(history.len() + 3);
        if !conversation.system_prompt.is_empty() {
            messages.push(Message::new(Role::System, conversation.system_prompt.clone()));
        }
        messages.extend(history.iter().map(|m| Message::new(m.role, m.content.clone())));
        messages.extend(passages);
        messages.push(Message::new(Role::User, content));
        let model = Some(conversation.model.as_str()).filter(|m| !m.is_empty());
        let (model_ref, provider) = self.resolve_model(ctx, model).await?;
        Ok(Exchange {
            conversation_id: id.clone(),
            history_len: history.len() as i64,
            content: content.to_owned(),
            asked_at: now(),
            request: ChatRequest {
                model: model_ref.model.clone(),
                messages,
                ..Default::default()
            },
            model_ref,
            provider,
        })
    }

    async fn finish_exchange(
        &self,
        ctx: &AuthContext,
        exchange: &Exchange,
        reply_text: String,
        usage: Usage,
    ) -> Result<(ConversationMessage, ConversationMessage, Usage)> {
        let id = &exchange.conversation_id;
        let user = ConversationMessage {
            id: MessageId::generate(),
            conversation_id: id.clone(),
            role: Role::User,
            content: exchange.content.clone(),
            created_at: exchange.asked_at,
        };
        let reply = ConversationMessage {
            id: MessageId::generate(),
            conversation_id: id.clone(),
            role: Role::Assistant,
            content: reply_text,
            created_at: now().max(exchange.asked_at + chrono::Duration::microseconds(1)),
        };
        let call = LlmCall {
            created_at: reply.created_at,
            ..LlmCall::new(
                &ctx.project.id,
                CallSource::Conversation,
                &exchange.model_ref,
                usage,
            )
        };
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::CONVERSATION_MESSAGE,
            id.as_str(),
        )
        .meta("model", exchange.model_ref.to_string())
        .meta("total_tokens", usage.total());
        match self
            .store
            .append_exchange(
                &ctx.project.id,
                exchange.history_len,
                &user,
                &reply,
                &call,
                &audit,
            )
            .await?
        {
            Some(true) => Ok((user, reply, usage)),
            Some(false) => Err(Error::Conflict(
                "the conversation changed while the model was answering (another message was sent); \
                 send the message again"
                    .into(),
            )),
            None => Err(Error::not_found(EntityKind::Conversation, id)),
        }
    }
}

/// A conversation turn ready to send to the model.
struct Exchange {
    conversation_id: ConversationId,
    /// Messages the model saw; the exchange is stored only if still so.
    history_len: i64,
    content: String,
    asked_at: Timestamp,
    request: ChatRequest,
    model_ref: ModelRef,
    provider: Arc<dyn LlmProvider>,
}

struct StreamState {
    gateway: Arc<LlmGateway>,
    ctx: AuthContext,
    exchange: Exchange,
    upstream: Option<DeltaStream>,
    text: String,
    usage: Usage,
}

/// What a streamed conversation message yields: text as it arrives, then
/// the stored exchange, or the failure (nothing stored).
#[derive(Debug)]
pub enum MessageStreamEvent {
    Delta(String),
    Done {
        user: ConversationMessage,
        reply: ConversationMessage,
        usage: Usage,
    },
    Failed(Error),
}
