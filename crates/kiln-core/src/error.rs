//! The domain's errors, split into what the caller did wrong and what broke
//! inside. The HTTP edge maps each variant to a status and a stable code with
//! an exhaustive `match`, so a new variant does not compile until it has one.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;
/// What every storage port returns.
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// What kind of entity was missing, for `NotFound` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    Project,
    ApiKey,
    Vault,
    Secret,
    PromptTemplate,
    Conversation,
    Index,
    Document,
    Session,
    InputRequest,
    Agent,
    Draft,
    AgentVersion,
    EvalSuite,
    EvalCase,
    EvalRun,
    Schedule,
    Skill,
    QueuedTurn,
    File,
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntityKind::Project => "project",
            EntityKind::ApiKey => "API key",
            EntityKind::Vault => "secret vault",
            EntityKind::Secret => "secret",
            EntityKind::PromptTemplate => "prompt template",
            EntityKind::Conversation => "conversation",
            EntityKind::Index => "index",
            EntityKind::Document => "document",
            EntityKind::Session => "agent session",
            EntityKind::InputRequest => "input request",
            EntityKind::Agent => "agent",
            EntityKind::Draft => "draft",
            EntityKind::AgentVersion => "agent version",
            EntityKind::EvalSuite => "eval suite",
            EntityKind::EvalCase => "eval case",
            EntityKind::EvalRun => "eval run",
            EntityKind::Schedule => "scheduled run",
            EntityKind::Skill => "skill",
            EntityKind::File => "file",
            EntityKind::QueuedTurn => "queued turn",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The entity does not exist in the caller's project (or at all).
    #[error("{kind} `{id}` not found")]
    NotFound { kind: EntityKind, id: String },
    /// A missing, unknown or revoked API key.
    #[error("{0}")]
    Unauthorized(String),
    /// Input that parses but breaks a rule; `field` names the culprit.
    #[error("{message}")]
    Validation { message: String, field: Option<String> },
    /// A unique name is taken.
    #[error("{0}")]
    Conflict(String),
    /// `if_version` did not match the live latest version of the name.
    #[error("version conflict: the latest version of `{name}` is {current_version}")]
    VersionConflict { name: String, current_version: i64 },
    /// A refusal with a stable code of its own (the HTTP edge maps each
    /// [`Refusal`] to its status and wire code).
    #[error("{message}")]
    Refused { refusal: Refusal, message: String },
    /// A source manifest has fatal issues; nothing was written.
    #[error("{}", crate::issues::refusal_message(.issues))]
    SourceInvalid { issues: Vec<crate::issues::SourceIssue> },
    /// The caller's key used up its rate limit for this kind of call.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_seconds: u64,
    },
    /// An upload is larger than the configured limit.
    #[error("the file is larger than the upload limit of {limit_bytes} bytes")]
    PayloadTooLarge { limit_bytes: u64 },
    /// Secret vaults are used while no key-encryption key is configured.
    #[error("secret vaults are disabled: the server has no key-encryption key (set KILN_SECRET_KEK)")]
    SecretsDisabled,
    /// A stored secret could not be decrypted (wrong KEK, tampered row).
    #[error("secret could not be decrypted")]
    Crypto,
    /// The model string names no provider, or one that is not configured.
    #[error("{message}")]
    ModelNotConfigured {
        message: String,
        configured: Vec<String>,
    },
    /// The LLM provider failed (after retries).
    #[error(transparent)]
    Upstream(#[from] crate::llm::LlmError),
    /// Storage failed; the message goes to the log, never to the caller.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an operation was refused, when the refusal has a code of its own.
/// The wire spelling of each lives in `kiln_api::codes`, reached by the
/// HTTP edge's exhaustive mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A session asked for a function-call tool Kiln does not have.
    UnknownTool,
    /// A session on an agent's draft (`target=draft`) with nothing synced.
    NoDraft,
    /// A session on an agent's live config before its first deploy.
    NotDeployed,
    /// `source-delete` without `force: true`.
    ForceRequired,
    /// `run` on a session whose turn is still running.
    RunInProgress,
    /// `cancel` on a session with no running turn.
    NotRunning,
    /// An answer to an input request that has one already.
    InputAlreadyAnswered,
    /// An answer to an input request of a turn that has ended.
    InputExpired,
    /// An eval run of an agent with no suite pinned.
    NoEvalSuite,
    /// Cancelling an eval run that has ended.
    RunEnded,
    /// A session's queue holds its maximum of turns.
    QueueFull,
    /// A tool result for a call id that is not a client tool call of the
    /// session.
    ToolCallNotFound,
    /// A second result for a client tool call.
    ToolCallAlreadyResolved,
    /// A result for a client tool call of a turn that has ended.
    ToolCallExpired,
}

impl Refusal {
    /// Every refusal, for the test that each has a wire code.
    pub const ALL: [Refusal; 14] = [
        Refusal::ForceRequired,
        Refusal::UnknownTool,
        Refusal::NoDraft,
        Refusal::NotDeployed,
        Refusal::RunInProgress,
        Refusal::NotRunning,
        Refusal::InputAlreadyAnswered,
        Refusal::InputExpired,
        Refusal::NoEvalSuite,
        Refusal::RunEnded,
        Refusal::QueueFull,
        Refusal::ToolCallNotFound,
        Refusal::ToolCallAlreadyResolved,
        Refusal::ToolCallExpired,
    ];
}

impl Error {
    pub fn refused(refusal: Refusal, message: impl Into<String>) -> Self {
        Error::Refused {
            refusal,
            message: message.into(),
        }
    }

    pub fn validation(message: impl Into<String>, field: Option<&str>) -> Self {
        Error::Validation {
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }

    pub fn not_found(kind: EntityKind, id: impl fmt::Display) -> Self {
        Error::NotFound {
            kind,
            id: id.to_string(),
        }
    }
}

/// Errors a `Store` adapter reports. Unique-constraint violations are told
/// apart because the domain turns them into `Conflict`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint violated: {0}")]
    UniqueViolation(String),
    /// A row refers to one that is gone (deleted concurrently).
    #[error("foreign key violated: {0}")]
    ForeignKeyViolation(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

/// A unique-constraint violation as a [`Error::Conflict`] with `message`;
/// any other storage failure as it is.
pub(crate) fn unique_or(err: StoreError, message: impl FnOnce() -> String) -> Error {
    match err {
        StoreError::UniqueViolation(_) => Error::Conflict(message()),
        other => Error::Store(other),
    }
}
