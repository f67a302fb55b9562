//! The Kiln wire contract as Rust types.
//!
//! Server and SDK both use these structs, so the two cannot drift apart. The
//! shapes follow `CONTRACT.md` exactly: wrapper keys, field names, `null` versus
//! missing. Request types accept unknown fields and read `null` arrays as empty;
//! response types always emit every field (nullable ones as explicit `null`).
//! Nothing here does I/O.

pub mod agent;
pub mod agent_config;
pub mod audit;
pub mod chat;
pub mod document;
pub mod error;
pub mod eval;
pub mod index;
pub mod openai;
pub mod project;
pub mod realtime;
pub mod schedule;
pub mod source;
pub mod sse;
pub mod studio;
pub mod system;
pub mod template;
pub mod token;
pub mod vault;
pub mod webhook;

pub use agent::*;
pub use agent_config::*;
pub use audit::*;
pub use chat::*;
pub use document::*;
pub use error::*;
pub use eval::*;
pub use index::*;
pub use project::*;
pub use schedule::*;
pub use source::*;
pub use studio::*;
pub use system::*;
pub use template::*;
pub use vault::*;

/// RFC 3339 timestamps in UTC, as every entity carries them.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// Reads a JSON `null` or a missing key as the type's default (an empty
/// array for `Vec`), as the Go client sends `null` for nil slices.
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    use serde::Deserialize;
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
