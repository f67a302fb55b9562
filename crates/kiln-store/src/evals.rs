//! `impl EvalStore for SqlStore`: eval runs and their results.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Row};

use kiln_core::audit::NewAudit;
use kiln_core::evals::store::{EvalStore, RunChange};
use kiln_core::evals::{EvalResult, EvalRun, RunStatus};
use kiln_core::ids::{AgentId, EvalResultId, EvalRunId, ProjectId};
use kiln_core::{StoreError, StoreResult};

use crate::connect::SqlStore;
use crate::db::{Db, db_err};

const RUN_COLUMNS: &str = "id, project_id, agent_id, suite_id, suite_version, target, status, total_cases, passed, \
     failed, average_score, threshold, judge_model, error, created_at, started_at, finished_at";
const RESULT_COLUMNS: &str = "id, run_id, case_id, case_name, set_name, score, pass, reasoning, response, \
     tool_calls, duration_ms, error, session_id, created_at";

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    project_id: String,
    agent_id: String,
    suite_id: String,
    suite_version: Option<String>,
    target: String,
    status: String,
    total_cases: i64,
    passed: i64,
    failed: i64,
    average_score: f64,
    threshold: f64,
    judge_model: String,
    error: String,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<RunRow> for EvalRun {
    type Error = StoreError;

    fn try_from(r: RunRow) -> StoreResult<EvalRun> {
        Ok(EvalRun {
            status: RunStatus::parse(&r.status).ok_or_else(|| {
                StoreError::Database(format!("eval run `{}` has status `{}`", r.id, r.status))
            })?,
            id: EvalRunId::from_string(r.id),
            project_id: ProjectId::from_string(r.project_id),
            agent_id: AgentId::from_string(r.agent_id),
            suite_id: r.suite_id,
            suite_version: r.suite_version,
            target: r.target,
            total_cases: r.total_cases,
            passed: r.passed,
            failed: r.failed,
            average_score: r.average_score,
            threshold: r.threshold,
            judge_model: r.judge_model,
            error: r.error,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ResultRow {
    id: String,
    run_id: String,
    case_id: String,
    case_name: String,
    set_name: String,
    score: i64,
    pass: bool,
    reasoning: String,
    response: String,
    tool_calls: Json<Value>,
    duration_ms: i64,
    error: String,
    session_id: String,
    created_at: DateTime<Utc>,
}

impl From<ResultRow> for EvalResult {
    fn from(r: ResultRow) -> EvalResult {
        EvalResult {
            id: EvalResultId::from_string(r.id),
            run_id: EvalRunId::from_string(r.run_id),
            case_id: r.case_id,
            case_name: r.case_name,
            set_name: r.set_name,
            score: r.score,
            pass: r.pass,
            reasoning: r.reasoning,
            response: r.response,
            tool_calls: r.tool_calls.0,
            duration_ms: r.duration_ms,
            error: r.error,
            session_id: r.session_id,
            created_at: r.created_at,
        }
    }
}

#[async_trait]
impl EvalStore for SqlStore {
    async fn insert_run(&self, run: &EvalRun, audit: &NewAudit) -> StoreResult<()> {
        write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO eval_runs (id, project_id, agent_id, suite_id, suite_version, target, status, \
                 total_cases, passed, failed, average_score, threshold, judge_model, error, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(run.id.as_str())
            .bind(run.project_id.as_str())
            .bind(run.agent_id.as_str())
            .bind(&run.suite_id)
            .bind(run.suite_version.as_deref())
            .bind(&run.target)
            .bind(run.status.as_str())
            .bind(run.total_cases)
            .bind(run.passed)
            .bind(run.failed)
            .bind(run.average_score)
            .bind(run.threshold)
            .bind(&run.judge_model)
            .bind(&run.error)
            .bind(run.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            commit_audited!(tx, audit)
        })
    }

    async fn transition_run(
        &self,
        project_id: &ProjectId,
        id: &EvalRunId,
        change: &RunChange<'_>,
        audit: Option<&NewAudit>,
    ) -> StoreResult<bool> {
        let RunChange { from, to, error, at } = *change;
        let from = from
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let times = if to == RunStatus::Running {
            "started_at = $3"
        } else {
            "finished_at = $3, lease_until = NULL"
        };
        let sql = format!(
            "UPDATE eval_runs SET status = $1, error = $2, {times} \
             WHERE project_id = $4 AND id = $5 AND status IN ({from})"
        );
        write_tx!(self, |tx| {
            let moved = sqlx::query(AssertSqlSafe(sql))
                .bind(to.as_str())
                .bind(error)
                .bind(at)
                .bind(project_id.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected()
                == 1;
            if moved && let Some(audit) = audit {
                insert_audit!(tx, audit);
            }
            tx.commit().await.map_err(db_err)?;
            Ok(moved)
        })
    }

    async fn add_result(&self, project_id: &ProjectId, result: &EvalResult) -> StoreResult<()> {
        write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO eval_results (id, project_id, run_id, case_id, case_name, set_name, score, pass, \
                 reasoning, response, tool_calls, duration_ms, error, session_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(result.id.as_str())
            .bind(project_id.as_str())
            .bind(result.run_id.as_str())
            .bind(&result.case_id)
            .bind(&result.case_name)
            .bind(&result.set_name)
            .bind(result.score)
            .bind(result.pass)
            .bind(&result.reasoning)
            .bind(&result.response)
            .bind(Json(&result.tool_calls))
            .bind(result.duration_ms)
            .bind(&result.error)
            .bind(&result.session_id)
            .bind(result.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query(
                "UPDATE eval_runs SET passed = passed + $1, failed = failed + $2, \
                 average_score = (SELECT CAST(AVG(score) AS DOUBLE PRECISION) FROM eval_results WHERE run_id = $3) \
                 WHERE project_id = $4 AND id = $3",
            )
            .bind(i64::from(result.pass))
            .bind(i64::from(!result.pass))
            .bind(result.run_id.as_str())
            .bind(project_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)
        })
    }

    async fn get_run(&self, project_id: &ProjectId, id: &EvalRunId) -> StoreResult<Option<EvalRun>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM eval_runs WHERE project_id = $1 AND id = $2");
        let row: Option<RunRow> = read!(self, |pool| {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(project_id.as_str())
                .bind(id.as_str())
                .fetch_optional(pool)
                .await
                .map_err(db_err)
        })?;
        row.map(EvalRun::try_from).transpose()
    }

    async fn list_runs(
        &self,
        project_id: &ProjectId,
        agent_id: Option<&AgentId>,
        limit: i64,
    ) -> StoreResult<Vec<EvalRun>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM eval_runs WHERE project_id = $1 AND ($2 IS NULL OR agent_id = $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        let rows: Vec<RunRow> = read!(self, |pool| {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(project_id.as_str())
                .bind(agent_id.map(AgentId::as_str))
                .bind(limit)
                .fetch_all(pool)
                .await
                .map_err(db_err)
        })?;
        rows.into_iter().map(EvalRun::try_from).collect()
    }

    async fn list_results(&self, project_id: &ProjectId, run_id: &EvalRunId) -> StoreResult<Vec<EvalResult>> {
        let sql = format!(
            "SELECT {RESULT_COLUMNS} FROM eval_results WHERE project_id = $1 AND run_id = $2 \
             ORDER BY created_at, id"
        );
        let rows: Vec<ResultRow> = read!(self, |pool| {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(project_id.as_str())
                .bind(run_id.as_str())
                .fetch_all(pool)
                .await
                .map_err(db_err)
        })?;
        Ok(rows.into_iter().map(EvalResult::from).collect())
    }

    async fn renew_lease(&self, id: &EvalRunId, until: DateTime<Utc>) -> StoreResult<()> {
        write_tx!(self, |tx| {
            sqlx::query(
                "UPDATE eval_runs SET lease_until = $1 WHERE id = $2 AND status IN ('pending', 'running')",
            )
            .bind(until)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)
        })
    }

    async fn fail_abandoned_runs(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        write_tx!(self, |tx| {
            let ended = sqlx::query(
                "UPDATE eval_runs SET status = 'error', error = 'the server running it stopped', \
                 finished_at = $1, lease_until = NULL \
                 WHERE status IN ('pending', 'running') AND (lease_until IS NULL OR lease_until < $1)",
            )
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
            tx.commit().await.map_err(db_err)?;
            Ok(ended)
        })
    }
}

/// The eval counters of the project metrics: runs, runs ended other than
/// by `error`, cases passed and failed, the mean of the ended runs'
/// average scores.
pub(crate) async fn eval_metrics(
    store: &SqlStore,
    project_id: &ProjectId,
) -> StoreResult<(i64, i64, i64, i64, f64)> {
    read!(store, |pool| {
        let row = sqlx::query(
            "SELECT COUNT(*) AS total, \
                    CAST(COALESCE(SUM(CASE WHEN status IN ('passed', 'failed', 'cancelled') THEN 1 ELSE 0 END), 0) \
                      AS BIGINT) AS completed, \
                    CAST(COALESCE(SUM(passed), 0) AS BIGINT) AS passed, \
                    CAST(COALESCE(SUM(failed), 0) AS BIGINT) AS failed, \
                    CAST(COALESCE(AVG(CASE WHEN status IN ('passed', 'failed') THEN average_score END), 0) \
                      AS DOUBLE PRECISION) AS average \
             FROM eval_runs WHERE project_id = $1",
        )
        .bind(project_id.as_str())
        .fetch_one(pool)
        .await
        .map_err(db_err)?;
        Ok((
            row.try_get("total").map_err(db_err)?,
            row.try_get("completed").map_err(db_err)?,
            row.try_get("passed").map_err(db_err)?,
            row.try_get("failed").map_err(db_err)?,
            row.try_get("average").map_err(db_err)?,
        ))
    })
}
