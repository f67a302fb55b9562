//! [`HttpWebSearch`]: the `WebSearch` port over HTTP, for the Brave Search
//! API (or a server speaking it) and SearXNG's JSON API. A base URL from a
//! project's vault is the project's choice: requests to it go through the
//! private-network guard, unless the operator allows private networks.

use std::time::Duration;

use async_trait::async_trait;
use kiln_core::runtime::web_search::{WebSearch, WebSearchEngine, WebSearchHit};
use serde_json::Value;

use crate::guard;

/// The Brave Search API.
pub const BRAVE_BASE_URL: &str = "https://api.search.brave.com";
/// One search, connecting included.
const TIMEOUT: Duration = Duration::from_secs(15);
/// The largest answer read.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

pub struct HttpWebSearch {
    /// For URLs of the operator's (the environment's).
    open: reqwest::Client,
    /// For URLs of a project's (its vault's).
    guarded: reqwest::Client,
    allow_private_network: bool,
}

impl HttpWebSearch {
    pub fn new(allow_private_network: bool) -> HttpWebSearch {
        let builder = || {
            reqwest::Client::builder()
                .timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
        };
        HttpWebSearch {
            open: builder().build().unwrap_or_default(),
            guarded: guard::public_only(builder()).build().unwrap_or_default(),
            allow_private_network,
        }
    }
}

#[async_trait]
impl WebSearch for HttpWebSearch {
    async fn search(
        &self,
        engine: &WebSearchEngine,
        from_vault: bool,
        query: &str,
        count: u32,
    ) -> Result<Vec<WebSearchHit>, String> {
        let guarded = from_vault && !self.allow_private_network;
        let client = if guarded { &self.guarded } else { &self.open };
        let (url, request) = match engine {
            WebSearchEngine::Brave { api_key, base_url } => {
                let url = format!(
                    "{}/res/v1/web/search",
                    base_url
                        .as_deref()
                        .unwrap_or(BRAVE_BASE_URL)
                        .trim_end_matches('/')
                );
                let request = client
                    .get(&url)
                    .query(&[("q", query), ("count", &count.to_string())])
                    .header("X-Subscription-Token", api_key)
                    .header("Accept", "application/json");
                (url, request)
            }
            WebSearchEngine::Searxng { base_url } => {
                let url = format!("{}/search", base_url.trim_end_matches('/'));
                let request = client
                    .get(&url)
                    .query(&[("q", query), ("format", "json")])
                    .header("Accept", "application/json");
                (url, request)
            }
        };
        if guarded {
            guard::check_url(&url).map_err(|e| format!("web_search refused: {e}"))?;
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("web_search failed: {}", e.without_url()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("web_search failed: {}", e.without_url()))?;
        if !status.is_success() {
            return Err(format!("web_search failed: the engine answered {status}"));
        }
        if body.len() > MAX_BODY_BYTES {
            return Err("web_search failed: the engine's answer is too large".into());
        }
        let json: Value = serde_json::from_slice(&body)
            .map_err(|_| "web_search failed: the engine's answer is not JSON".to_owned())?;
        let (list, snippet_key) = match engine {
            WebSearchEngine::Brave { .. } => (&json["web"]["results"], "description"),
            WebSearchEngine::Searxng { .. } => (&json["results"], "content"),
        };
        let text = |item: &Value, key: &str| item.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
        Ok(list
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .take(count as usize)
            .map(|item| WebSearchHit {
                title: text(item, "title"),
                url: text(item, "url"),
                snippet: text(item, snippet_key),
            })
            .collect())
    }
}
