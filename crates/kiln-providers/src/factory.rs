//! `HttpProviderFactory`: builds a provider client for resolved settings.

use std::sync::Arc;

use kiln_core::llm::{LlmProvider, ProviderFactory, ProviderKind, ProviderSettings};

use crate::anthropic::{ANTHROPIC_BASE_URL, Anthropic};
use crate::gemini::{GEMINI_BASE_URL, Gemini};
use crate::http::HttpSettings;
use crate::offline::OfflineModel;
use crate::openai::{OLLAMA_BASE_URL, OPENAI_BASE_URL, OPENROUTER_BASE_URL, OpenAiCompatible};

/// Shares one connection pool across every provider and project.
#[derive(Clone)]
pub struct HttpProviderFactory {
    client: reqwest::Client,
    settings: HttpSettings,
}

impl HttpProviderFactory {
    pub fn new(settings: HttpSettings) -> Self {
        HttpProviderFactory {
            client: settings.client(),
            settings,
        }
    }
}

/// Ollama's OpenAI-compatible API lives under `/v1` of its base URL.
fn ollama_base(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1") {
        base.to_owned()
    } else {
        format!("{base}/v1")
    }
}

impl ProviderFactory for HttpProviderFactory {
    fn build(&self, kind: ProviderKind, settings: &ProviderSettings) -> Arc<dyn LlmProvider> {
        let key = settings.api_key.clone();
        let base = settings.base_url.as_deref();
        let (client, http) = (self.client.clone(), self.settings.clone());
        match kind {
            ProviderKind::OpenAi => Arc::new(OpenAiCompatible::new(
                "openai",
                base.unwrap_or(OPENAI_BASE_URL),
                key,
                client,
                http,
            )),
            ProviderKind::OpenRouter => Arc::new(OpenAiCompatible::new(
                "openrouter",
                base.unwrap_or(OPENROUTER_BASE_URL),
                key,
                client,
                http,
            )),
            ProviderKind::Ollama => Arc::new(OpenAiCompatible::new(
                "ollama",
                &ollama_base(base.unwrap_or(OLLAMA_BASE_URL)),
                key,
                client,
                http,
            )),
            ProviderKind::Anthropic => Arc::new(Anthropic::new(
                base.unwrap_or(ANTHROPIC_BASE_URL),
                key.unwrap_or_default(),
                client,
                http,
            )),
            ProviderKind::Gemini => Arc::new(Gemini::new(
                base.unwrap_or(GEMINI_BASE_URL),
                key.unwrap_or_default(),
                client,
                http,
            )),
            ProviderKind::Offline => Arc::new(OfflineModel),
        }
    }
}
