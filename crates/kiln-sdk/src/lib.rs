//! Rust client for Kiln's HTTP API.
//!
//! One flat [`Client`] with a method per endpoint, request and response types
//! from `kiln-api` (shared with the server, so they cannot drift), and a typed
//! [`ApiError`] carrying the contract's `status`, `code`, `message` and
//! `details`. An agent turn streams as an [`AgentEventStream`] of typed
//! [`TurnEvent`]s that can be resumed after a cut ([`StreamCut`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), kiln_sdk::Error> {
//! let client = kiln_sdk::Client::new("http://127.0.0.1:8080", "kiln_...")?;
//! let project = client.get_project().await?;
//! println!("{} ({})", project.name, project.id);
//! # Ok(()) }
//! ```

mod agents;
mod client;
mod documents;
mod error;
mod realtime;
mod session_features;
pub mod source_dir;
mod stream;

pub use agents::{AgentEventStream, InputRequest, InputType, TurnEvent, TurnEventKind};
pub use client::{AuditExportFormat, Client, ENDPOINTS};
pub use documents::{DocumentQuery, UploadOptions};
pub use error::{ApiError, Error, StreamCut, VersionConflict};
pub use kiln_api as api;
pub use realtime::{Realtime, SessionEvent, SessionHandle, SessionState, SessionSubscribed, TurnView};
pub use session_features::{ClientToolHandlers, verify_webhook_signature};
pub use stream::MessageStreamEvent;
