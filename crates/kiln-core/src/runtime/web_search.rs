//! The `WebSearch` port: the sandbox's `web_search()` reaches a search
//! engine only through it. Which engine, and its key, come from the
//! project's vault (or, when the vault sets none of them, the server's
//! environment): `brave_api_key` (with `brave_base_url` for a
//! Brave-compatible server) or `searxng_base_url`. `kiln-providers`
//! implements it over HTTP, keeping URLs from a vault off private networks.

use async_trait::async_trait;

/// A search engine, as configured.
#[derive(Clone, PartialEq, Eq)]
pub enum WebSearchEngine {
    /// The Brave Search API (or a server speaking it): `GET
    /// <base>/res/v1/web/search?q=&count=` with `X-Subscription-Token`.
    Brave {
        api_key: String,
        base_url: Option<String>,
    },
    /// A SearXNG instance: `GET <base>/search?q=&format=json`.
    Searxng { base_url: String },
}

impl std::fmt::Debug for WebSearchEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebSearchEngine::Brave { base_url, .. } => f
                .debug_struct("Brave")
                .field("api_key", &"<redacted>")
                .field("base_url", base_url)
                .finish(),
            WebSearchEngine::Searxng { base_url } => {
                f.debug_struct("Searxng").field("base_url", base_url).finish()
            }
        }
    }
}

/// One result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSearchHit {
    pub title: String,
    pub url: String,
    pub snippet: String,
}

#[async_trait]
pub trait WebSearch: Send + Sync {
    /// Up to `count` results for `query`. `from_vault`: the engine's URL is
    /// the project's choice, so private addresses are refused (unless the
    /// operator allows them). `Err` is a message for the code, never a key.
    async fn search(
        &self,
        engine: &WebSearchEngine,
        from_vault: bool,
        query: &str,
        count: u32,
    ) -> Result<Vec<WebSearchHit>, String>;
}
