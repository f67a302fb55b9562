//! The code-first source family (CONTRACT §2.9): the manifest an authoring
//! tool sends, and the validation issues it gets back. Keys are camelCase.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One file of an agent folder. `content` is UTF-8 text (the TS SDK) or
/// base64 (the Go SDK, for every file); the server tells them apart by
/// `hash` and `size`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SourceFile {
    /// Relative to the agent folder, forward slashes (`persona.md`,
    /// `skills/lookup.js`).
    pub path: String,
    /// `sha256:<hex>` (or bare hex) of the file's bytes.
    pub hash: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SourceAgent {
    /// The local id (`agent.jsonc` → `id`, the folder name).
    pub id: String,
    #[serde(default)]
    pub source_hash: String,
    #[serde(default, deserialize_with = "crate::null_as_default")]
    pub files: Vec<SourceFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SourceSyncManifest {
    /// The manifest's project: a namespace inside the key's project.
    #[serde(default)]
    pub project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default)]
    pub source_hash: String,
    #[serde(default, deserialize_with = "crate::null_as_default")]
    pub agents: Vec<SourceAgent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_at: Option<DateTime<Utc>>,
}

/// A problem found in a manifest, like a compiler's: where, what (a stable
/// `code` from [`source_issue_codes`]), and how to fix it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SourceValidationIssue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// `fatal` (blocks sync and deploy) or `warn`.
    pub severity: String,
}

/// One agent of a successful sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SyncedAgent {
    pub local_id: String,
    pub agent_id: String,
    pub draft_id: String,
    pub source_hash: String,
}

/// `PUT /source-sync` → 200. Fatal issues answer 422 `source_invalid`
/// instead, with the issues in the error body's `serverIssues`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SourceSyncResult {
    /// The manifest's `sourceHash`, echoed.
    pub draft_hash: String,
    pub agents: Vec<SyncedAgent>,
    pub synced_at: DateTime<Utc>,
    /// Warnings (`[]` when there are none).
    #[serde(default)]
    pub server_issues: Vec<SourceValidationIssue>,
}

/// `POST /source-deploy` body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SourceDeployRequest {
    #[serde(default)]
    pub project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Deploy only this agent; empty or left out: every agent of `project`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_agent_id: Option<String>,
    /// Left out: `agent.jsonc` → `deploy.runEvals`; true: force; false: skip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_evals: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeployedAgent {
    pub local_id: String,
    pub agent_id: String,
    pub version_id: String,
    pub semver: String,
    /// Kiln: the advisory eval run started for this deploy (`runEvals`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_run_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SourceDeployResult {
    /// The highest semver among the deployed agents.
    pub version: String,
    pub agents: Vec<DeployedAgent>,
    pub deployed_at: DateTime<Utc>,
    #[serde(default)]
    pub server_issues: Vec<SourceValidationIssue>,
}

/// `POST /source-rename` body (run before editing `agent.jsonc` → `id`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SourceRenameRequest {
    #[serde(default)]
    pub project: String,
    #[serde(default)]
    pub old_local_id: String,
    #[serde(default)]
    pub new_local_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SourceRenameResult {
    pub agent_id: String,
    pub old_local_id: String,
    pub new_local_id: String,
}

/// `POST /source-delete` body: `force` must be true.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SourceDeleteRequest {
    #[serde(default)]
    pub project: String,
    #[serde(default)]
    pub local_id: String,
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SourceDeleteResult {
    pub agent_id: String,
    pub local_id: String,
    pub deleted: bool,
}

/// `GET /source-export?project=`: file contents are base64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceExport {
    pub project: String,
    pub agents: Vec<SourceAgent>,
}

/// One path of `source-diff`: `<local id>/<path>` and `local-only`,
/// `server-only` or `changed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceDiffPath {
    pub path: String,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SourceDiffResult {
    pub in_sync: bool,
    pub paths: Vec<SourceDiffPath>,
}

/// The `state`s of a diff path.
pub mod diff_states {
    pub const LOCAL_ONLY: &str = "local-only";
    pub const SERVER_ONLY: &str = "server-only";
    pub const CHANGED: &str = "changed";
}

/// `POST /source-validate`: always 200, whatever the severities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceValidateResult {
    pub issues: Vec<SourceValidationIssue>,
}

/// `POST /skills/validate` body: one skill module's JavaScript, checked as
/// `skills/<name>.js` (`name` defaults to `skill`). The answer is a
/// [`SourceValidateResult`], always 200 whatever the severities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SkillValidateRequest {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The `severity` of an issue.
pub mod issue_severities {
    pub const FATAL: &str = "fatal";
    pub const WARN: &str = "warn";
}

/// The `code` of a source validation issue.
pub mod source_issue_codes {
    /// The manifest's `project` is empty or not `[A-Za-z0-9._-]+`.
    pub const INVALID_PROJECT: &str = "invalid_project";
    /// An agent's local id is empty or not `[A-Za-z0-9._-]+`.
    pub const INVALID_AGENT_ID: &str = "invalid_agent_id";
    /// Two agents of the manifest share a local id.
    pub const DUPLICATE_AGENT: &str = "duplicate_agent";
    /// A path with `..`, an absolute path, a backslash or a NUL.
    pub const INVALID_PATH: &str = "invalid_path";
    /// Two files of an agent share a path.
    pub const DUPLICATE_FILE: &str = "duplicate_file";
    /// A file over the per-file limit, or a manifest over the total limit.
    pub const FILE_TOO_LARGE: &str = "file_too_large";
    /// Neither reading of `content` matches `hash` and `size`.
    pub const HASH_MISMATCH: &str = "hash_mismatch";
    /// No `content` for a file whose `size` is not 0.
    pub const MISSING_CONTENT: &str = "missing_content";
    /// An agent without `agent.jsonc`.
    pub const MISSING_AGENT_FILE: &str = "missing_agent_file";
    /// `agent.jsonc` is not JSONC, or not an object.
    pub const INVALID_JSONC: &str = "invalid_jsonc";
    /// An `evals/*.json` file is not JSON.
    pub const INVALID_JSON: &str = "invalid_json";
    /// A key `agent.jsonc` does not know (a warning).
    pub const UNKNOWN_KEY: &str = "unknown_key";
    /// A known key with a value of the wrong type or shape.
    pub const INVALID_VALUE: &str = "invalid_value";
    /// `agent.jsonc` → `id` differs from the agent's local id.
    pub const ID_MISMATCH: &str = "id_mismatch";
    /// `model` is not `provider/model` with a known provider.
    pub const INVALID_MODEL: &str = "invalid_model";
    /// A tool Kiln does not have.
    pub const UNKNOWN_TOOL: &str = "unknown_tool";
    /// An index (by name or id) that is not in the project.
    pub const MISSING_INDEX: &str = "missing_index";
    /// An agent without `persona.md` (a warning: the persona is empty).
    pub const MISSING_PERSONA: &str = "missing_persona";
    /// A file outside the known layout (a warning: it is kept, not used).
    pub const UNKNOWN_FILE: &str = "unknown_file";
    /// A skill module that does not parse (at the error's line and column).
    pub const SKILL_SYNTAX: &str = "skill_syntax";
    /// A skill module whose top level throws, or runs out of memory or stack.
    pub const SKILL_ERROR: &str = "skill_error";
    /// A skill module whose top level runs past its time limit.
    pub const SKILL_TIMEOUT: &str = "skill_timeout";
    /// A skill module named after a sandbox global (a warning).
    pub const RESERVED_NAME: &str = "reserved_name";
    /// An MCP server that cannot be reached or listed: a warning at sync,
    /// fatal at deploy (and always fatal for a refused, private address).
    pub const MCP_UNREACHABLE: &str = "mcp_unreachable";
    /// A secret an MCP server names (`auth.tokenRef`, `${NAME}` in its URL)
    /// is not in the project's vault.
    pub const MISSING_SECRET: &str = "missing_secret";
    /// A stdio MCP server (no `url`) that the operator has not declared.
    pub const UNKNOWN_MCP_SERVER: &str = "unknown_mcp_server";
    /// A required field is missing (an eval case without `prompt`).
    pub const MISSING_FIELD: &str = "missing_field";

    pub const ALL: [&str; 27] = [
        INVALID_PROJECT,
        INVALID_AGENT_ID,
        DUPLICATE_AGENT,
        INVALID_PATH,
        DUPLICATE_FILE,
        FILE_TOO_LARGE,
        HASH_MISMATCH,
        MISSING_CONTENT,
        MISSING_AGENT_FILE,
        INVALID_JSONC,
        INVALID_JSON,
        UNKNOWN_KEY,
        INVALID_VALUE,
        ID_MISMATCH,
        INVALID_MODEL,
        UNKNOWN_TOOL,
        MISSING_INDEX,
        MISSING_PERSONA,
        UNKNOWN_FILE,
        SKILL_SYNTAX,
        SKILL_ERROR,
        SKILL_TIMEOUT,
        RESERVED_NAME,
        MCP_UNREACHABLE,
        MISSING_SECRET,
        UNKNOWN_MCP_SERVER,
        MISSING_FIELD,
    ];
}
