//! `EvalStore`: the eval runs and their results.

use async_trait::async_trait;

use super::{EvalResult, EvalRun, RunStatus};
use crate::audit::NewAudit;
use crate::error::StoreResult;
use crate::ids::{AgentId, EvalRunId, ProjectId};
use crate::time::Timestamp;

/// A run's move from one of `from` to `to`, at `at`, with `error` (empty
/// unless `to` is `error`).
#[derive(Debug, Clone, Copy)]
pub struct RunChange<'a> {
    pub from: &'a [RunStatus],
    pub to: RunStatus,
    pub error: &'a str,
    pub at: Timestamp,
}

#[async_trait]
pub trait EvalStore: Send + Sync {
    /// Inserts a new run with its audit entry.
    async fn insert_run(&self, run: &EvalRun, audit: &NewAudit) -> StoreResult<()>;
    /// Moves a run to `to` when its status is one of `from` (setting
    /// `started_at` for `running`, `finished_at` and `error` for an end);
    /// `false` when it was not in one of them. With `audit`, writes it in
    /// the same transaction.
    async fn transition_run(
        &self,
        project_id: &ProjectId,
        id: &EvalRunId,
        change: &RunChange<'_>,
        audit: Option<&NewAudit>,
    ) -> StoreResult<bool>;
    /// Records a case's result and updates the run's `passed`, `failed` and
    /// `average_score` with it, in one transaction.
    async fn add_result(&self, project_id: &ProjectId, result: &EvalResult) -> StoreResult<()>;
    async fn get_run(&self, project_id: &ProjectId, id: &EvalRunId) -> StoreResult<Option<EvalRun>>;
    /// Newest first; only `agent_id`'s when given.
    async fn list_runs(
        &self,
        project_id: &ProjectId,
        agent_id: Option<&AgentId>,
        limit: i64,
    ) -> StoreResult<Vec<EvalRun>>;
    /// In the order they were recorded.
    async fn list_results(&self, project_id: &ProjectId, run_id: &EvalRunId) -> StoreResult<Vec<EvalResult>>;
    /// Extends the lease of a run this server is running.
    async fn renew_lease(&self, id: &EvalRunId, until: Timestamp) -> StoreResult<()>;
    /// Ends with `error` every pending or running run whose lease ran out
    /// (its server stopped); returns how many.
    async fn fail_abandoned_runs(&self, now: Timestamp) -> StoreResult<u64>;
}
