//! `impl ScheduleStore for SqlStore`: scheduled runs.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;

use kiln_core::StoreResult;
use kiln_core::audit::NewAudit;
use kiln_core::ids::{ApiKeyId, ProjectId, ScheduleId, SessionId};
use kiln_core::schedules::ScheduledRun;
use kiln_core::schedules::store::{ScheduleStore, ScheduleUpdate};

use crate::connect::SqlStore;
use crate::db::{Db, db_err};

const COLUMNS: &str = "id, project_id, created_by, agent_session_id, name, cron_expression, message, enabled, \
     last_run_at, next_run_at, run_count, last_error, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct ScheduleRow {
    id: String,
    project_id: String,
    created_by: String,
    agent_session_id: String,
    name: String,
    cron_expression: String,
    message: String,
    enabled: bool,
    last_run_at: Option<DateTime<Utc>>,
    next_run_at: Option<DateTime<Utc>>,
    run_count: i64,
    last_error: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<ScheduleRow> for ScheduledRun {
    fn from(r: ScheduleRow) -> ScheduledRun {
        ScheduledRun {
            id: ScheduleId::from_string(r.id),
            project_id: ProjectId::from_string(r.project_id),
            created_by: ApiKeyId::from_string(r.created_by),
            session_id: SessionId::from_string(r.agent_session_id),
            name: r.name,
            cron_expression: r.cron_expression,
            message: r.message,
            enabled: r.enabled,
            last_run_at: r.last_run_at,
            next_run_at: r.next_run_at,
            run_count: r.run_count,
            last_error: r.last_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[async_trait]
impl ScheduleStore for SqlStore {
    async fn insert_schedule(&self, s: &ScheduledRun, audit: &NewAudit) -> StoreResult<()> {
        write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO scheduled_runs (id, project_id, created_by, agent_session_id, name, cron_expression, \
                 message, enabled, last_run_at, next_run_at, run_count, last_error, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(s.id.as_str())
            .bind(s.project_id.as_str())
            .bind(s.created_by.as_str())
            .bind(s.session_id.as_str())
            .bind(&s.name)
            .bind(&s.cron_expression)
            .bind(&s.message)
            .bind(s.enabled)
            .bind(s.last_run_at)
            .bind(s.next_run_at)
            .bind(s.run_count)
            .bind(&s.last_error)
            .bind(s.created_at)
            .bind(s.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            commit_audited!(tx, audit)
        })
    }

    async fn list_schedules(&self, project_id: &ProjectId) -> StoreResult<Vec<ScheduledRun>> {
        let sql =
            format!("SELECT {COLUMNS} FROM scheduled_runs WHERE project_id = $1 ORDER BY created_at, id");
        let rows: Vec<ScheduleRow> = read!(self, |pool| {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(project_id.as_str())
                .fetch_all(pool)
                .await
                .map_err(db_err)
        })?;
        Ok(rows.into_iter().map(ScheduledRun::from).collect())
    }

    async fn get_schedule(
        &self,
        project_id: &ProjectId,
        id: &ScheduleId,
    ) -> StoreResult<Option<ScheduledRun>> {
        let sql = format!("SELECT {COLUMNS} FROM scheduled_runs WHERE project_id = $1 AND id = $2");
        let row: Option<ScheduleRow> = read!(self, |pool| {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(project_id.as_str())
                .bind(id.as_str())
                .fetch_optional(pool)
                .await
                .map_err(db_err)
        })?;
        Ok(row.map(ScheduledRun::from))
    }

    async fn update_schedule(
        &self,
        project_id: &ProjectId,
        id: &ScheduleId,
        u: &ScheduleUpdate,
        audit: &NewAudit,
    ) -> StoreResult<Option<ScheduledRun>> {
        let sql = format!(
            "UPDATE scheduled_runs SET name = $1, cron_expression = $2, message = $3, enabled = $4, \
             next_run_at = $5, updated_at = $6 WHERE project_id = $7 AND id = $8 RETURNING {COLUMNS}"
        );
        write_tx!(self, |tx| {
            let row: Option<ScheduleRow> = sqlx::query_as(AssertSqlSafe(sql))
                .bind(&u.name)
                .bind(&u.cron_expression)
                .bind(&u.message)
                .bind(u.enabled)
                .bind(u.next_run_at)
                .bind(u.updated_at)
                .bind(project_id.as_str())
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            let Some(row) = row else { return Ok(None) };
            commit_audited!(tx, audit)?;
            Ok(Some(ScheduledRun::from(row)))
        })
    }

    async fn delete_schedule(
        &self,
        project_id: &ProjectId,
        id: &ScheduleId,
        audit: &NewAudit,
    ) -> StoreResult<bool> {
        write_tx!(self, |tx| {
            let gone = sqlx::query("DELETE FROM scheduled_runs WHERE project_id = $1 AND id = $2")
                .bind(project_id.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected()
                == 1;
            if !gone {
                return Ok(false);
            }
            commit_audited!(tx, audit)?;
            Ok(true)
        })
    }

    async fn due_schedules(&self, at: DateTime<Utc>, limit: i64) -> StoreResult<Vec<ScheduledRun>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM scheduled_runs WHERE enabled = $1 AND next_run_at <= $2 \
             ORDER BY next_run_at, id LIMIT $3"
        );
        let rows: Vec<ScheduleRow> = read!(self, |pool| {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(true)
                .bind(at)
                .bind(limit)
                .fetch_all(pool)
                .await
                .map_err(db_err)
        })?;
        Ok(rows.into_iter().map(ScheduledRun::from).collect())
    }

    async fn claim_firing(
        &self,
        id: &ScheduleId,
        due: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        write_tx!(self, |tx| {
            let won = sqlx::query(
                "UPDATE scheduled_runs SET next_run_at = $1, last_run_at = $2, run_count = run_count + 1 \
                 WHERE id = $3 AND next_run_at = $4 AND enabled = $5",
            )
            .bind(next)
            .bind(at)
            .bind(id.as_str())
            .bind(due)
            .bind(true)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected()
                == 1;
            tx.commit().await.map_err(db_err)?;
            Ok(won)
        })
    }

    async fn record_firing(&self, id: &ScheduleId, last_error: &str) -> StoreResult<()> {
        write_tx!(self, |tx| {
            sqlx::query("UPDATE scheduled_runs SET last_error = $1 WHERE id = $2")
                .bind(last_error)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)
        })
    }

    async fn disable_schedule(
        &self,
        id: &ScheduleId,
        last_error: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        write_tx!(self, |tx| {
            sqlx::query(
                "UPDATE scheduled_runs SET enabled = $1, next_run_at = NULL, last_error = $2, updated_at = $3 \
                 WHERE id = $4",
            )
            .bind(false)
            .bind(last_error)
            .bind(at)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)
        })
    }
}
