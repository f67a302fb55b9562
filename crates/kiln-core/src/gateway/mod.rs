//! The LLM gateway: every model call goes through it. It resolves a model
//! string to a provider (the project's vault settings, cached, over the
//! server's environment), builds the client through the provider factory,
//! calls it, and records the call's usage. Chat completions and stored
//! conversations ([`chat`]) are its operations too.

pub mod chat;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_core::Stream;

use crate::auth::AuthContext;
use crate::control::ControlPlane;
use crate::error::{Error, Result};
use crate::ids::ProjectId;
use crate::llm::{
    ChatDelta, ChatRequest, ChatResponse, DEFAULT_MODEL_SETTING, DeltaStream, LlmError, LlmProvider,
    ModelRef, OFFLINE_MODEL, ProviderFactory, ProviderKind, SettingMap, Usage, WEB_SEARCH_SETTINGS,
};
use crate::rag::Rag;
use crate::usage::{CallSource, LlmCall, UsageLog};
use store::GatewayStore;

/// How long a project's provider settings from its vault are reused.
pub const VAULT_SETTINGS_TTL: Duration = Duration::from_secs(60);

/// Where provider clients come from, and the server-wide settings (env).
pub struct LlmSetup {
    pub factory: Arc<dyn ProviderFactory>,
    pub env: SettingMap,
}

/// Per-project vault settings, each with the vault epoch it was read at:
/// an entry from before a vault change is stale, and a read that started
/// before a change cannot put stale values back.
#[derive(Default)]
struct SettingsCache {
    entries: Mutex<HashMap<ProjectId, (Instant, u64, SettingMap)>>,
}

impl SettingsCache {
    fn get(&self, project_id: &ProjectId, epoch: u64) -> Option<SettingMap> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(project_id) {
            Some((at, at_epoch, map)) if *at_epoch == epoch && at.elapsed() < VAULT_SETTINGS_TTL => {
                Some(map.clone())
            }
            _ => None,
        }
    }

    fn insert(&self, project_id: &ProjectId, epoch: u64, map: SettingMap) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (_, at_epoch, _)| *at_epoch == epoch);
        entries.insert(project_id.clone(), (Instant::now(), epoch, map));
    }
}

pub struct LlmGateway {
    /// Vault secrets (provider keys and URLs) and their epoch.
    control: Arc<ControlPlane>,
    /// Passages for chat with `use_rag`.
    rag: Arc<Rag>,
    store: Arc<dyn GatewayStore>,
    setup: LlmSetup,
    settings_cache: SettingsCache,
    usage: Arc<UsageLog>,
}

impl LlmGateway {
    pub fn new(
        control: Arc<ControlPlane>,
        rag: Arc<Rag>,
        store: Arc<dyn GatewayStore>,
        usage: Arc<UsageLog>,
        setup: LlmSetup,
    ) -> Self {
        LlmGateway {
            control,
            rag,
            store,
            setup,
            settings_cache: SettingsCache::default(),
            usage,
        }
    }

    /// The provider settings stored in the project's designated vault.
    async fn vault_settings(&self, project: &crate::project::Project) -> Result<SettingMap> {
        let Some(vault_id) = &project.vault_id else {
            return Ok(SettingMap::default());
        };
        if !self.control.secrets_enabled() {
            return Ok(SettingMap::default());
        }
        let epoch = self.control.vault_epoch();
        if let Some(map) = self.settings_cache.get(&project.id, epoch) {
            return Ok(map);
        }
        let mut map = SettingMap::default();
        for name in SettingMap::names() {
            if let Some(value) = self.control.reveal_secret(&project.id, vault_id, name).await? {
                map.insert(name, value);
            }
        }
        self.settings_cache.insert(&project.id, epoch, map.clone());
        Ok(map)
    }

    /// The configured providers for this project, in preference order.
    fn configured(vault: &SettingMap, env: &SettingMap) -> Vec<ProviderKind> {
        ProviderKind::ALL
            .into_iter()
            .filter(|k| k.is_configured(&SettingMap::provider(*k, vault, env)))
            .collect()
    }

    /// The web search settings ([`WEB_SEARCH_SETTINGS`]) for this project,
    /// taken as a unit as for a provider: the vault's when it sets any of
    /// them (`true`), else the server's environment's (`false`), so a vault
    /// can never send the server's key to a URL of its choosing.
    pub async fn web_search_settings(&self, ctx: &AuthContext) -> Result<(SettingMap, bool)> {
        let vault = self.vault_settings(&ctx.project).await?;
        let from_vault = WEB_SEARCH_SETTINGS.iter().any(|n| vault.get(n).is_some());
        let source = if from_vault { &vault } else { &self.setup.env };
        let mut chosen = SettingMap::default();
        for name in WEB_SEARCH_SETTINGS {
            if let Some(value) = source.get(name) {
                chosen.insert(name, value.to_owned());
            }
        }
        Ok((chosen, from_vault))
    }

    /// Picks the provider for `requested` (or the project's default model)
    /// and builds its client with the project's credentials.
    pub async fn resolve_model(
        &self,
        ctx: &AuthContext,
        requested: Option<&str>,
    ) -> Result<(ModelRef, Arc<dyn LlmProvider>)> {
        let llm = &self.setup;
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
        let llm = &self.setup;
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

    /// Queues the call's usage for the usage log; never waits on the
    /// database, so recording adds no latency to the call.
    pub(crate) fn record_call(
        &self,
        project_id: &ProjectId,
        source: CallSource,
        model: &ModelRef,
        usage: Usage,
    ) {
        self.usage.record(LlmCall::new(project_id, source, model, usage));
    }

    /// Fields only OpenAI-compatible providers understand change the answer's
    /// form; refusing them beats silently dropping them.
    fn check_extras(model: &ModelRef, request: &ChatRequest) -> Result<()> {
        if model.provider.is_openai_compatible() {
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
        self.record_call(&ctx.project.id, source, &model_ref, response.usage);
        Ok((model_ref, response))
    }

    /// A completion whose answer should be the JSON `schema` describes
    /// (named `name`): OpenAI-compatible providers are asked for it with
    /// `response_format`; others get the request as it is. Either way the
    /// caller reads the JSON from the message's text.
    pub async fn complete_structured(
        &self,
        ctx: &AuthContext,
        model: Option<&str>,
        mut request: ChatRequest,
        name: &str,
        schema: serde_json::Value,
        source: CallSource,
    ) -> Result<(ModelRef, ChatResponse)> {
        let (model_ref, provider) = self.resolve_model(ctx, model).await?;
        if model_ref.provider.is_openai_compatible() {
            request.extra.insert(
                "response_format".into(),
                serde_json::json!({ "type": "json_schema", "json_schema": { "name": name, "strict": true, "schema": schema } }),
            );
        }
        request.model = model_ref.model.clone();
        let response = provider.complete(&request).await?;
        self.record_call(&ctx.project.id, source, &model_ref, response.usage);
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
            usage: self.usage.clone(),
            project_id: ctx.project.id.clone(),
            source,
            model: model_ref.clone(),
            recorded: None,
        };
        Ok((
            model_ref,
            Box::pin(RecordingStream {
                inner: upstream,
                recorder: Some(recorder),
            }),
        ))
    }
}

/// Records a stream's usage when it is dropped, if the stream reported it.
struct UsageRecorder {
    usage: Arc<UsageLog>,
    project_id: ProjectId,
    source: CallSource,
    model: ModelRef,
    recorded: Option<Usage>,
}

impl Drop for UsageRecorder {
    fn drop(&mut self) {
        if let Some(usage) = self.recorded.take() {
            self.usage
                .record(LlmCall::new(&self.project_id, self.source, &self.model, usage));
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
                        r.recorded = Some(*usage);
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
