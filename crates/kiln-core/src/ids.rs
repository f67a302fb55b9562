//! Typed identifiers. Every persisted entity gets a UUIDv7 (time-ordered,
//! URL-path-safe), wrapped so a vault id cannot be passed where a project id
//! is expected.

use std::fmt;

macro_rules! define_id {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            /// Wraps an id read from storage or from a request path. Ids are
            /// opaque: an unknown one simply finds nothing.
            pub fn from_string(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}

define_id!(
    /// A project: the tenant every row belongs to.
    ProjectId,
    /// An API key (its id, never the key itself).
    ApiKeyId,
    /// A secret vault.
    VaultId,
    /// A prompt template.
    TemplateId,
    /// An audit-log entry.
    AuditId,
    /// A stored conversation.
    ConversationId,
    /// A message of a conversation.
    MessageId,
    /// One recorded LLM call.
    LlmCallId,
    /// A RAG index.
    IndexId,
    /// A document in a RAG index (an upload, a version, or an extracted sibling).
    DocumentId,
    /// A chunk of a document's text: the unit search returns.
    ChunkId,
    /// An agent session.
    SessionId,
    /// One turn of a session (a `run`).
    TurnId,
    /// One event of a session's log (a step, when it is one).
    EventId,
    /// A pending `input()` request of a turn.
    InputRequestId,
    /// An agent config (agents as code).
    AgentId,
    /// The synced draft of an agent in one environment.
    DraftId,
    /// An immutable version of an agent (one per deploy).
    AgentVersionId,
    EvalRunId,
    EvalResultId,
    ScheduleId,
    /// A call of a client-side tool, waiting for `POST /agents/:id/tool-results`.
    ToolCallId,
    /// A session's webhook.
    WebhookId,
    /// One webhook delivery (its attempts share it).
    WebhookDeliveryId,
);
