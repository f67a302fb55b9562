//! The `WebFetch` port: the sandbox's `fetch()` reaches the web only
//! through it. `kiln-providers` implements it with the private-network
//! guard, host allow and deny lists, and size and time limits.

use async_trait::async_trait;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    pub url: String,
    /// `GET` when empty.
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// Body bytes the caller can still take (a block's fetch budget); the
    /// smaller of this and the fetcher's own limit applies. `None`: the
    /// fetcher's limit.
    pub max_bytes: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponse {
    pub status: u16,
    /// The final URL, after redirects.
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// The body as text (invalid UTF-8 replaced), cut at the size limit.
    pub body: String,
    /// The body was longer than the limit.
    pub truncated: bool,
}

#[async_trait]
pub trait WebFetch: Send + Sync {
    /// Fetches `request`. `Err` is a message for the code (refused address,
    /// host not allowed, timeout, connection failure), never a secret.
    async fn fetch(&self, request: FetchRequest) -> Result<FetchResponse, String>;
}
