//! Chat: model resolution, stateless completions, stored conversations, and
//! token accounting. Every LLM call goes through [`Kiln::complete`] or
//! [`Kiln::stream`], which pick the provider for the model string, call it,
//! and record the call's usage for `GET /metrics`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_core::Stream;
use serde_json::Value;

use crate::audit::{Actor, NewAudit, actions};
use crate::auth::AuthContext;
use crate::error::EntityKind;
use crate::ids::{ConversationId, LlmCallId, MessageId, ProjectId};
use crate::kiln::Kiln;
use crate::llm::{
    ChatDelta, ChatRequest, ChatResponse, DEFAULT_MODEL_SETTING, DeltaStream, LlmError, LlmProvider, Message,
    ModelRef, OFFLINE_MODEL, ProviderFactory, ProviderKind, Role, SettingMap, Usage,
};
use crate::page::Page;
use crate::time::{Timestamp, now};
use crate::{Error, Result};

/// How long a project's provider settings from its vault are reused.
pub const VAULT_SETTINGS_TTL: Duration = Duration::from_secs(60);
pub const CONVERSATIONS_DEFAULT_LIMIT: i64 = 50;
pub const CONVERSATIONS_MAX_LIMIT: i64 = 200;
/// Largest message accepted in a conversation, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Passages retrieved for a message sent with `use_rag`.
pub const RAG_PASSAGES: i64 = 5;

/// Where provider clients come from, and the server-wide settings (env).
pub struct LlmSetup {
    pub factory: Arc<dyn ProviderFactory>,
    pub env: SettingMap,
}

/// Per-project vault settings. The generation moves on every vault change,
/// so a read that started before a change cannot put stale values back.
#[derive(Default)]
pub(crate) struct SettingsCache {
    entries: Mutex<HashMap<ProjectId, (Instant, SettingMap)>>,
    generation: std::sync::atomic::AtomicU64,
}

impl SettingsCache {
    pub(crate) fn clear(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        entries.clear();
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Which feature made an LLM call, recorded with its usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallSource {
    Chat,
    Conversation,
    OpenAi,
    Agent,
}

impl CallSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CallSource::Chat => "chat",
            CallSource::Conversation => "conversation",
            CallSource::OpenAi => "openai",
            CallSource::Agent => "agent",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LlmCall {
    pub id: LlmCallId,
    pub project_id: ProjectId,
    pub source: CallSource,
    pub model: ModelRef,
    pub usage: Usage,
    pub created_at: Timestamp,
}

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

impl Kiln {
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
            self.get_index(ctx, index_id).await?;
        }
        if !use_rag || question.trim().is_empty() {
            return Ok(None);
        }
        let query: String = question
            .chars()
            .take(crate::rag::search::MAX_QUERY_CHARS)
            .collect();
        let hits = self
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

    fn llm(&self) -> Result<&LlmSetup> {
        self.llm.as_ref().ok_or_else(|| Error::ModelNotConfigured {
            message: "no LLM providers are wired into this server".into(),
            configured: Vec::new(),
        })
    }

    /// The provider settings stored in the project's designated vault.
    async fn vault_settings(&self, project: &crate::project::Project) -> Result<SettingMap> {
        let Some(vault_id) = &project.vault_id else {
            return Ok(SettingMap::default());
        };
        if self.kek.is_none() {
            return Ok(SettingMap::default());
        }
        let generation = self.settings_cache.generation();
        {
            let cache = self
                .settings_cache
                .entries
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some((at, map)) = cache.get(&project.id)
                && at.elapsed() < VAULT_SETTINGS_TTL
            {
                return Ok(map.clone());
            }
        }
        let mut map = SettingMap::default();
        for name in SettingMap::names() {
            if let Some(value) = self.reveal_secret(&project.id, vault_id, name).await? {
                map.insert(name, value);
            }
        }
        let mut cache = self
            .settings_cache
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if self.settings_cache.generation() == generation {
            cache.insert(project.id.clone(), (Instant::now(), map.clone()));
        }
        Ok(map)
    }

    /// The configured providers for this project, in preference order.
    fn configured(vault: &SettingMap, env: &SettingMap) -> Vec<ProviderKind> {
        ProviderKind::ALL
            .into_iter()
            .filter(|k| k.is_configured(&SettingMap::provider(*k, vault, env)))
            .collect()
    }

    /// Picks the provider for `requested` (or the project's default model)
    /// and builds its client with the project's credentials.
    pub async fn resolve_model(
        &self,
        ctx: &AuthContext,
        requested: Option<&str>,
    ) -> Result<(ModelRef, Arc<dyn LlmProvider>)> {
        let llm = self.llm()?;
        let vault = self.vault_settings(&ctx.project).await?;
        let configured = Self::configured(&vault, &llm.env);
        let names = || configured.iter().map(|k| k.name().to_owned()).collect::<Vec<_>>();
        let model_ref = match requested.map(str::trim).filter(|m| !m.is_empty()) {
            Some(model) => ModelRef::parse(model).ok_or_else(|| Error::ModelNotConfigured {
                message: format!(
                    "model `{model}` names no known provider; use `provider/model` with one of the configured \
                     providers: {}",
                    names().join(", ")
                ),
                configured: names(),
            })?,
            None => {
                let default = vault.get(DEFAULT_MODEL_SETTING).or_else(|| llm.env.get(DEFAULT_MODEL_SETTING));
                match default.and_then(ModelRef::parse) {
                    Some(m) => m,
                    None => {
                        let first = configured.iter().find(|k| **k != ProviderKind::Offline);
                        match first {
                            Some(kind) => ModelRef {
                                provider: *kind,
                                model: kind.default_model().to_owned(),
                            },
                            None => ModelRef::parse(OFFLINE_MODEL).expect("offline model parses"),
                        }
                    }
                }
            }
        };
        if !configured.contains(&model_ref.provider) {
            return Err(Error::ModelNotConfigured {
                message: format!(
                    "provider `{}` is not configured (no key in the project's vault or the server's environment); \
                     configured: {}",
                    model_ref.provider,
                    names().join(", ")
                ),
                configured: names(),
            });
        }
        let settings = SettingMap::provider(model_ref.provider, &vault, &llm.env);
        Ok((
            model_ref.clone(),
            llm.factory.build(model_ref.provider, &settings),
        ))
    }

    /// The models `GET /v1/models` lists: each configured provider's
    /// default model, and the offline model.
    pub async fn available_models(&self, ctx: &AuthContext) -> Result<Vec<ModelRef>> {
        let llm = self.llm()?;
        let vault = self.vault_settings(&ctx.project).await?;
        let mut models: Vec<ModelRef> = Self::configured(&vault, &llm.env)
            .into_iter()
            .map(|kind| ModelRef {
                provider: kind,
                model: kind.default_model().to_owned(),
            })
            .collect();
        if let Some(default) = vault
            .get(DEFAULT_MODEL_SETTING)
            .or_else(|| llm.env.get(DEFAULT_MODEL_SETTING))
            && let Some(m) = ModelRef::parse(default)
            && !models.contains(&m)
        {
            models.insert(0, m);
        }
        Ok(models)
    }

    /// Queues the call's usage for the usage writer; never waits on the
    /// database, so recording adds no latency to the call.
    pub(crate) async fn record_call(
        &self,
        project_id: &ProjectId,
        source: CallSource,
        model: &ModelRef,
        usage: Usage,
    ) {
        let call = LlmCall {
            id: LlmCallId::generate(),
            project_id: project_id.clone(),
            source,
            model: model.clone(),
            usage,
            created_at: now(),
        };
        self.usage_writer().record(call);
    }

    fn usage_writer(&self) -> &UsageWriter {
        self.usage_writer
            .get_or_init(|| UsageWriter::spawn(self.store.clone()))
    }

    /// Waits until every LLM call recorded so far is in the database.
    pub async fn flush_usage(&self) {
        if let Some(writer) = self.usage_writer.get() {
            writer.flush().await;
        }
    }

    /// Fields only OpenAI-compatible providers understand change the answer's
    /// form; refusing them beats silently dropping them.
    fn check_extras(model: &ModelRef, request: &ChatRequest) -> Result<()> {
        let openai_compatible = matches!(
            model.provider,
            ProviderKind::OpenAi | ProviderKind::OpenRouter | ProviderKind::Ollama
        );
        if openai_compatible {
            return Ok(());
        }
        let refused: Vec<&str> = [
            "response_format",
            "n",
            "logprobs",
            "top_logprobs",
            "logit_bias",
            "prediction",
        ]
        .into_iter()
        .filter(|k| {
            request
                .extra
                .get(*k)
                .is_some_and(|v| !v.is_null() && *v != serde_json::json!(1))
        })
        .collect();
        if refused.is_empty() {
            Ok(())
        } else {
            Err(Error::validation(
                format!(
                    "`{}` is supported only by OpenAI-compatible providers, not `{}`",
                    refused.join("`, `"),
                    model.provider
                ),
                Some(refused[0]),
            ))
        }
    }

    /// One completion through the resolved provider; usage is recorded.
    pub async fn complete(
        &self,
        ctx: &AuthContext,
        model: Option<&str>,
        mut request: ChatRequest,
        source: CallSource,
    ) -> Result<(ModelRef, ChatResponse)> {
        let (model_ref, provider) = self.resolve_model(ctx, model).await?;
        Self::check_extras(&model_ref, &request)?;
        request.model = model_ref.model.clone();
        let response = provider.complete(&request).await?;
        self.record_call(&ctx.project.id, source, &model_ref, response.usage)
            .await;
        Ok((model_ref, response))
    }

    /// A streamed completion; usage is recorded when the stream reports it.
    /// Dropping the stream aborts the upstream request.
    pub async fn stream(
        self: &Arc<Self>,
        ctx: &AuthContext,
        model: Option<&str>,
        mut request: ChatRequest,
        source: CallSource,
    ) -> Result<(ModelRef, DeltaStream)> {
        let (model_ref, provider) = self.resolve_model(ctx, model).await?;
        Self::check_extras(&model_ref, &request)?;
        request.model = model_ref.model.clone();
        let upstream = provider.stream(&request).await?;
        let recorder = UsageRecorder {
            kiln: self.clone(),
            project_id: ctx.project.id.clone(),
            source,
            model: model_ref.clone(),
            usage: None,
        };
        Ok((
            model_ref,
            Box::pin(RecordingStream {
                inner: upstream,
                recorder: Some(recorder),
            }),
        ))
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

    /// Like [`Kiln::send_message`], with the reply streamed as it is
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
            kiln: self.clone(),
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
                            .kiln
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
            id: LlmCallId::generate(),
            project_id: ctx.project.id.clone(),
            source: CallSource::Conversation,
            model: exchange.model_ref.clone(),
            usage,
            created_at: reply.created_at,
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
    kiln: Arc<Kiln>,
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

/// Writes recorded LLM calls in batches: whatever has queued up while the
/// previous batch was being written goes in the next transaction (group
/// commit), so a busy server makes one write per batch, not per call.
pub(crate) struct UsageWriter {
    queue: tokio::sync::mpsc::UnboundedSender<UsageCommand>,
}

enum UsageCommand {
    Record(LlmCall),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Most calls written in one transaction.
const USAGE_BATCH: usize = 1000;

impl UsageWriter {
    fn spawn(store: Arc<dyn crate::Store>) -> Self {
        let (queue, mut commands) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(first) = commands.recv().await {
                let mut batch = Vec::new();
                let mut flushed = Vec::new();
                let mut next = Some(first);
                while let Some(command) = next.take() {
                    match command {
                        UsageCommand::Record(call) => batch.push(call),
                        UsageCommand::Flush(done) => flushed.push(done),
                    }
                    if batch.len() < USAGE_BATCH {
                        next = commands.try_recv().ok();
                    }
                }
                if !batch.is_empty()
                    && let Err(e) = store.record_llm_calls(&batch).await
                {
                    tracing::warn!(error = %e, calls = batch.len(), "could not record LLM usage");
                }
                for done in flushed {
                    let _ = done.send(());
                }
            }
        });
        UsageWriter { queue }
    }

    fn record(&self, call: LlmCall) {
        let _ = self.queue.send(UsageCommand::Record(call));
    }

    async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.queue.send(UsageCommand::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

struct UsageRecorder {
    kiln: Arc<Kiln>,
    project_id: ProjectId,
    source: CallSource,
    model: ModelRef,
    usage: Option<Usage>,
}

impl Drop for UsageRecorder {
    fn drop(&mut self) {
        let Some(usage) = self.usage.take() else { return };
        let (kiln, project_id, source, model) = (
            self.kiln.clone(),
            self.project_id.clone(),
            self.source,
            self.model.clone(),
        );
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { kiln.record_call(&project_id, source, &model, usage).await });
        }
    }
}

/// Passes deltas through and records the usage once the stream ends (or
/// is dropped after reporting it).
struct RecordingStream {
    inner: DeltaStream,
    recorder: Option<UsageRecorder>,
}

impl Stream for RecordingStream {
    type Item = std::result::Result<ChatDelta, LlmError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        if let std::task::Poll::Ready(item) = &polled {
            match item {
                Some(Ok(ChatDelta::Usage(usage))) => {
                    if let Some(r) = self.recorder.as_mut() {
                        r.usage = Some(*usage);
                    }
                }
                None => {
                    self.recorder.take();
                }
                _ => {}
            }
        }
        polled
    }
}
