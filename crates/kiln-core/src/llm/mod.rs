//! The provider-neutral LLM model and the `LlmProvider` port.
//!
//! Every vendor client in `kiln-providers` (OpenAI-compatible, Anthropic,
//! Gemini, the offline model) translates between its wire format and these
//! types, so callers — chat, conversations, the OpenAI-compatible endpoint,
//! later the agent runtime — never special-case a vendor.

mod model;
mod router;

pub use model::*;
pub use router::*;
