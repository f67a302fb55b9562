//! The storage port of agents as code.
//!
//! Every method takes the caller's `ProjectId` and filters on it; a sync
//! writes its agents, drafts and audit entries in one transaction.

use async_trait::async_trait;

use crate::agents::config::{AgentConfig, AgentVersion, Draft};
use crate::audit::Actor;
use crate::error::StoreResult;
use crate::ids::{AgentId, AgentVersionId, ProjectId};

/// One agent of a sync: the agent to create if its local id is new (its
/// id is then the agent's), and its draft.
#[derive(Debug, Clone, PartialEq)]
pub struct DraftWrite {
    pub agent: AgentConfig,
    pub draft: Draft,
}

#[async_trait]
pub trait AgentConfigStore: Send + Sync {
    /// In one transaction, for each write: creates the agent unless
    /// (project, manifest project, local id) exists, upserts its draft for
    /// the draft's environment (keeping the draft's id when it exists), and
    /// writes an `agent.sync` audit entry. Returns each agent as stored and
    /// its draft's id, in order.
    async fn sync_drafts(
        &self,
        project_id: &ProjectId,
        writes: &[DraftWrite],
        actor: &Actor,
    ) -> StoreResult<Vec<(AgentConfig, crate::ids::DraftId)>>;
    /// The agents of manifest project `code_first_project` (or only
    /// `local_id`) with a draft in `environment`, and those drafts.
    async fn drafts(
        &self,
        project_id: &ProjectId,
        code_first_project: &str,
        environment: &str,
        local_id: Option<&str>,
    ) -> StoreResult<Vec<(AgentConfig, Draft)>>;
    /// In one transaction, for each version: numbers it one past the
    /// agent's last (`seq`, `semver`), inserts it, copies it into the
    /// agent's live fields (`active_version_id`, `published_at`, name and
    /// description from its spec), and writes an `agent.deploy` audit
    /// entry. On an agent's first deploy its `eval_suite_id` becomes the
    /// version's, unless one is pinned; a version with a suite and no
    /// `eval_suite_version` gets its own semver as that (the agent's own
    /// suite versions with it). Returns the versions as stored.
    async fn publish_versions(
        &self,
        project_id: &ProjectId,
        versions: &[AgentVersion],
        actor: &Actor,
    ) -> StoreResult<Vec<AgentVersion>>;
    /// The agent's draft in `environment`.
    async fn get_draft(
        &self,
        project_id: &ProjectId,
        agent_id: &AgentId,
        environment: &str,
    ) -> StoreResult<Option<Draft>>;
    /// The agent's local id and, when it has one, its live version's id,
    /// index ids and spec (no files): what a session on it needs, in one
    /// read. `None` when the agent does not exist.
    async fn live_profile(
        &self,
        project_id: &ProjectId,
        agent_id: &AgentId,
    ) -> StoreResult<
        Option<(
            String,
            Option<(AgentVersionId, Vec<String>, crate::agents::config::DraftSpec)>,
        )>,
    >;
    /// A version of any agent of the project, by its id.
    async fn version_by_id(
        &self,
        project_id: &ProjectId,
        id: &AgentVersionId,
    ) -> StoreResult<Option<AgentVersion>>;
    /// Newest first.
    async fn list_versions(
        &self,
        project_id: &ProjectId,
        agent_id: &AgentId,
    ) -> StoreResult<Vec<AgentVersion>>;
    async fn get_version(
        &self,
        project_id: &ProjectId,
        agent_id: &AgentId,
        id: &AgentVersionId,
    ) -> StoreResult<Option<AgentVersion>>;
    /// Moves the agent bound to (manifest project, `old`) to `new`, writing
    /// `audit`. `Ok(None)` when `old` is unknown; a unique violation when
    /// `new` is taken.
    async fn rename_agent(
        &self,
        project_id: &ProjectId,
        code_first_project: &str,
        old: &str,
        new: &str,
        audit: &crate::audit::NewAudit,
    ) -> StoreResult<Option<AgentId>>;
    /// Sets (or clears) the pinned eval suite; `Ok(None)` when the agent
    /// is gone.
    async fn set_eval_suite(
        &self,
        project_id: &ProjectId,
        id: &AgentId,
        eval_suite_id: Option<&str>,
        at: crate::time::Timestamp,
        audit: &crate::audit::NewAudit,
    ) -> StoreResult<Option<AgentConfig>>;
    /// Deletes the agent with its drafts, versions and sessions (their
    /// events and input requests too) and writes `audit`, in one
    /// transaction. `Ok(false)` when it does not exist.
    async fn delete_agent(
        &self,
        project_id: &ProjectId,
        id: &AgentId,
        audit: &crate::audit::NewAudit,
    ) -> StoreResult<bool>;
    /// Oldest first.
    async fn list_agent_configs(&self, project_id: &ProjectId) -> StoreResult<Vec<AgentConfig>>;
    async fn get_agent_config(
        &self,
        project_id: &ProjectId,
        id: &AgentId,
    ) -> StoreResult<Option<AgentConfig>>;
}
