//! The error body every failure carries (CONTRACT §1.10) and its stable codes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `{"error", "message", "code", ...details}`. Any other top-level key is a
/// structured detail (`current_version`, `field`, `retry_after_seconds`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Equal to `code`, as the published docs show.
    pub error: String,
    /// Human-readable explanation, shown verbatim by the SDKs.
    pub message: String,
    /// Stable machine-readable kind, one of [`codes`].
    pub code: String,
    /// Extra structured details (for example `field` or `current_version`).
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: Map<String, Value>,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            error: code.to_owned(),
            message: message.into(),
            code: code.to_owned(),
            details: Map::new(),
        }
    }

    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

/// Every error code Kiln emits, spelled exactly as on the wire. The server
/// reaches these only through its exhaustive mapping of the core's errors,
/// and a test fails when it can emit a code missing from [`codes::ALL`].
pub mod codes {
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const BAD_REQUEST: &str = "bad_request";
    pub const VALIDATION_FAILED: &str = "validation_failed";
    pub const CONFLICT: &str = "conflict";
    pub const VERSION_CONFLICT: &str = "version_conflict";
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const SECRETS_DISABLED: &str = "secrets_disabled";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const UPSTREAM_ERROR: &str = "upstream_error";
    pub const SERVICE_UNAVAILABLE: &str = "service_unavailable";
    pub const INTERNAL: &str = "internal";
    /// A session asked for a function-call tool Kiln does not have (400).
    pub const UNKNOWN_TOOL: &str = "unknown_tool";
    /// A session on an agent's draft with nothing synced (409).
    pub const NO_DRAFT: &str = "no_draft";
    /// A session on an agent's live config before its first deploy (409).
    pub const NOT_DEPLOYED: &str = "not_deployed";
    /// `run` while the session's turn is running (409).
    pub const RUN_IN_PROGRESS: &str = "run_in_progress";
    /// `cancel` with no running turn (409).
    pub const NOT_RUNNING: &str = "not_running";
    /// An input request answered twice (400).
    pub const INPUT_ALREADY_ANSWERED: &str = "input_already_answered";
    /// An answer to an input request of a turn that has ended (400).
    pub const INPUT_EXPIRED: &str = "input_expired";

    /// An eval run of an agent with no eval suite pinned (409).
    pub const NO_EVAL_SUITE: &str = "no_eval_suite";
    /// Cancelling an eval run that has already ended (409).
    pub const RUN_ENDED: &str = "run_ended";

    /// `POST /agents/:id/messages` on a session whose queue is full (409).
    pub const QUEUE_FULL: &str = "queue_full";
    /// A tool result for a call id that is not a client tool call of the
    /// session (404).
    pub const TOOL_CALL_NOT_FOUND: &str = "tool_call_not_found";
    /// A second result for a client tool call (400).
    pub const TOOL_CALL_ALREADY_RESOLVED: &str = "tool_call_already_resolved";
    /// A result for a client tool call of a turn that has ended (400).
    pub const TOOL_CALL_EXPIRED: &str = "tool_call_expired";

    /// A legacy route that source-sync replaced (410).
    pub const ENDPOINT_REMOVED: &str = "endpoint_removed";

    /// `source-delete` without `force: true` (400).
    pub const FORCE_REQUIRED: &str = "force_required";
    /// A source manifest with fatal issues (422; `serverIssues` lists them).
    pub const SOURCE_INVALID: &str = "source_invalid";

    /// Every code above.
    pub const ALL: [&str; 29] = [
        FORCE_REQUIRED,
        NOT_FOUND,
        UNAUTHORIZED,
        BAD_REQUEST,
        VALIDATION_FAILED,
        CONFLICT,
        VERSION_CONFLICT,
        PAYLOAD_TOO_LARGE,
        METHOD_NOT_ALLOWED,
        SECRETS_DISABLED,
        RATE_LIMITED,
        UPSTREAM_ERROR,
        SERVICE_UNAVAILABLE,
        INTERNAL,
        UNKNOWN_TOOL,
        NO_DRAFT,
        NOT_DEPLOYED,
        RUN_IN_PROGRESS,
        NOT_RUNNING,
        INPUT_ALREADY_ANSWERED,
        INPUT_EXPIRED,
        ENDPOINT_REMOVED,
        SOURCE_INVALID,
        NO_EVAL_SUITE,
        RUN_ENDED,
        QUEUE_FULL,
        TOOL_CALL_NOT_FOUND,
        TOOL_CALL_ALREADY_RESOLVED,
        TOOL_CALL_EXPIRED,
    ];
}
