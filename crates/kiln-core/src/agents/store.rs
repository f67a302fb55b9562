//! The storage port of agents as code.
//!
//! Every method takes the caller's `ProjectId` and filters on it; a sync
//! writes its agents, drafts and audit entries in one transaction.

use async_trait::async_trait;

use crate::agents::config::{AgentConfig, Draft};
use crate::audit::Actor;
use crate::error::StoreResult;
use crate::ids::{AgentId, ProjectId};

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
    /// Oldest first.
    async fn list_agent_configs(&self, project_id: &ProjectId) -> StoreResult<Vec<AgentConfig>>;
    async fn get_agent_config(
        &self,
        project_id: &ProjectId,
        id: &AgentId,
    ) -> StoreResult<Option<AgentConfig>>;
}
