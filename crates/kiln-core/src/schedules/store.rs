//! `ScheduleStore`: scheduled runs, and the compare-and-set that makes each
//! firing happen once across servers.

use async_trait::async_trait;

use super::ScheduledRun;
use crate::audit::NewAudit;
use crate::error::StoreResult;
use crate::ids::{ProjectId, ScheduleId};
use crate::time::Timestamp;

/// A schedule's new editable fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleUpdate {
    pub name: String,
    pub cron_expression: String,
    pub message: String,
    pub enabled: bool,
    pub next_run_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

#[async_trait]
pub trait ScheduleStore: Send + Sync {
    async fn insert_schedule(&self, schedule: &ScheduledRun, audit: &NewAudit) -> StoreResult<()>;
    /// Oldest first.
    async fn list_schedules(&self, project_id: &ProjectId) -> StoreResult<Vec<ScheduledRun>>;
    async fn get_schedule(
        &self,
        project_id: &ProjectId,
        id: &ScheduleId,
    ) -> StoreResult<Option<ScheduledRun>>;
    /// `None` when it is not in the project.
    async fn update_schedule(
        &self,
        project_id: &ProjectId,
        id: &ScheduleId,
        update: &ScheduleUpdate,
        audit: &NewAudit,
    ) -> StoreResult<Option<ScheduledRun>>;
    async fn delete_schedule(
        &self,
        project_id: &ProjectId,
        id: &ScheduleId,
        audit: &NewAudit,
    ) -> StoreResult<bool>;
    /// Enabled schedules of every project with `next_run_at <= at`, most
    /// overdue first, at most `limit`.
    async fn due_schedules(&self, at: Timestamp, limit: i64) -> StoreResult<Vec<ScheduledRun>>;
    /// Claims the firing due at `due`: moves `next_run_at` from `due` to
    /// `next`, sets `last_run_at = at` and counts the run, only if
    /// `next_run_at` is still `due` and the schedule enabled. `true` for the
    /// one caller that moved it.
    async fn claim_firing(
        &self,
        id: &ScheduleId,
        due: Timestamp,
        next: Option<Timestamp>,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Sets `last_error` ("" clears it) after a firing.
    async fn record_firing(&self, id: &ScheduleId, last_error: &str) -> StoreResult<()>;
    /// Disables it (`next_run_at` null) with `last_error`.
    async fn disable_schedule(&self, id: &ScheduleId, last_error: &str, at: Timestamp) -> StoreResult<()>;
}
