//! `HttpProviderFactory`: builds a provider client for resolved settings.

use std::sync::Arc;

use kiln_core::llm::{
    ChatRequest, ChatResponse, DeltaStream, LlmError, LlmProvider, ProviderFactory, ProviderKind,
    ProviderSettings,
};

use crate::guard;

use crate::anthropic::{ANTHROPIC_BASE_URL, Anthropic};
use crate::gemini::{GEMINI_BASE_URL, Gemini};
use crate::http::HttpSettings;
use crate::offline::OfflineModel;
use crate::openai::{OLLAMA_BASE_URL, OPENAI_BASE_URL, OPENROUTER_BASE_URL, OpenAiCompatible};

/// Shares connection pools across every provider and project: one for the
/// operator's settings, one (refusing private networks, see [`crate::guard`])
/// for base URLs a project put in its vault.
#[derive(Clone)]
pub struct HttpProviderFactory {
    client: reqwest::Client,
    guarded: Option<reqwest::Client>,
    settings: HttpSettings,
}

impl HttpProviderFactory {
    /// With `allow_private_network`, project-configured URLs may reach
    /// private and local addresses too (development only).
    pub fn new(settings: HttpSettings, allow_private_network: bool) -> Self {
        let guarded = (!allow_private_network).then(|| {
            guard::public_only(reqwest::Client::builder())
                .connect_timeout(settings.connect_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("the guarded HTTP client builds")
        });
        HttpProviderFactory {
            client: settings.client(),
            guarded,
            settings,
        }
    }
}

/// Stands in for a provider whose base URL was refused.
struct Refused {
    provider: &'static str,
    message: String,
}

#[async_trait::async_trait]
impl LlmProvider for Refused {
    fn name(&self) -> &str {
        self.provider
    }

    async fn complete(&self, _: &ChatRequest) -> Result<ChatResponse, LlmError> {
        Err(self.error())
    }

    async fn stream(&self, _: &ChatRequest) -> Result<DeltaStream, LlmError> {
        Err(self.error())
    }
}

impl Refused {
    fn error(&self) -> LlmError {
        LlmError::Connection {
            provider: self.provider.to_owned(),
            message: self.message.clone(),
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
        let guarded = self.guarded.as_ref().filter(|_| settings.from_vault);
        if let (Some(_), Some(base)) = (guarded, base)
            && let Err(message) = guard::check_url(base)
        {
            return Arc::new(Refused {
                provider: kind.name(),
                message,
            });
        }
        let client = guarded.unwrap_or(&self.client).clone();
        let http = self.settings.clone();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Child mode of [`guarded_clients_ignore_environment_proxies`]: with
    /// `HTTP_PROXY` set, a plain client goes through the proxy (the
    /// control), the guarded ones must not.
    async fn probe_through_proxy() {
        let url = "http://guard-probe.invalid/v1/models";
        let _ = reqwest::Client::new().get(url).send().await;
        let factory = HttpProviderFactory::new(HttpSettings::default(), false);
        let guarded = factory.guarded.expect("a guarded client");
        assert!(guarded.get(url).send().await.is_err());
        let plain = guard::public_only(reqwest::Client::builder()).build().unwrap();
        assert!(plain.get(url).send().await.is_err());
    }

    /// A proxy from the environment would resolve a tenant's host itself,
    /// past the address check: guarded clients ignore it. The environment
    /// is the child process's own (tests may not change their own).
    #[tokio::test]
    async fn guarded_clients_ignore_environment_proxies() {
        if std::env::var_os("KILN_PROXY_PROBE").is_some() {
            return probe_through_proxy().await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(socket);
            }
        });
        let child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "factory::tests::guarded_clients_ignore_environment_proxies",
            ])
            .env("KILN_PROXY_PROBE", "1")
            .env("HTTP_PROXY", &proxy)
            .env("http_proxy", &proxy)
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .output()
            .await
            .unwrap();
        assert!(
            child.status.success(),
            "{}{}",
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        );
        // The control's one connection, and none from the guarded clients.
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
