//! LLM vendor clients behind `kiln_core::llm::LlmProvider`.
//!
//! Each client translates between the provider-neutral model of
//! `kiln_core::llm` and one vendor's wire format: [`openai`] (any
//! OpenAI-compatible server: OpenAI, OpenRouter, Ollama, vLLM, llama.cpp,
//! LiteLLM), [`anthropic`] (Messages API) and [`gemini`]
//! (generateContent). [`offline`] is the built-in model that needs no
//! network. [`http`] holds what they share: timeouts (connect, first byte,
//! idle between stream chunks), bounded retries with backoff on
//! 429/5xx/connection errors honouring `Retry-After`, and SSE reading.
//! Dropping a request future or stream aborts the upstream request.
//!
//! [`embeddings`] is the OpenAI-compatible `/embeddings` client behind the
//! `Embedder` port.
//!
//! [`web`] is the sandbox's `fetch()` behind kiln-core's `WebFetch` port:
//! [`web::GuardedFetch`] applies a [`web::FetchPolicy`] (http and https
//! only, host allow and deny lists, the private-network guard of [`guard`]
//! on the first request and on every redirect hop, a response size limit
//! and a whole-request timeout).
//!
//! With the `fake` feature, [`fake`] is a scriptable provider server on
//! 127.0.0.1 speaking the OpenAI, Anthropic and Gemini wire formats, for
//! tests and benchmarks.

pub mod anthropic;
pub mod embeddings;
pub mod factory;
pub mod gemini;
pub mod guard;
pub mod http;
pub mod mcp;
pub mod offline;
pub mod openai;
pub mod web;
pub mod web_search;
pub mod webhook;

#[cfg(feature = "fake")]
pub mod fake;
#[cfg(feature = "fake")]
pub mod fake_mcp;
#[cfg(feature = "fake")]
mod fake_shapes;

pub use factory::HttpProviderFactory;
pub use http::HttpSettings;
