//! Client tool calls' SQL (`AgentStore`'s tool-call methods delegate here):
//! a call waits with no outcome until the client's result or error is
//! recorded, once (a conditional `UPDATE`).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;

use kiln_core::StoreResult;
use kiln_core::ids::{ProjectId, SessionId, ToolCallId, TurnId};
use kiln_core::runtime::store::{ResolveToolCall, ToolCallRequest};
use kiln_core::time::Timestamp;

use crate::connect::SqlStore;
use crate::db::{Db, db_err};

const TOOL_CALL_COLUMNS: &str =
    "id, project_id, session_id, turn_id, tool, args, result, error, resolved_at, created_at";

#[derive(sqlx::FromRow)]
struct ToolCallRow {
    id: String,
    project_id: String,
    session_id: String,
    turn_id: String,
    tool: String,
    args: Json<Map<String, Value>>,
    result: Option<Json<Value>>,
    error: Option<String>,
    resolved_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<ToolCallRow> for ToolCallRequest {
    fn from(r: ToolCallRow) -> Self {
        let outcome = r.resolved_at.map(|_| match (r.error, r.result) {
            (Some(error), _) => Err(error),
            (None, result) => Ok(result.map_or(Value::Null, |v| v.0)),
        });
        ToolCallRequest {
            id: ToolCallId::from_string(r.id),
            project_id: ProjectId::from_string(r.project_id),
            session_id: SessionId::from_string(r.session_id),
            turn_id: TurnId::from_string(r.turn_id),
            tool: r.tool,
            args: r.args.0,
            outcome,
            created_at: r.created_at,
        }
    }
}

impl SqlStore {
    pub(crate) async fn create_tool_call_sql(&self, call: &ToolCallRequest) -> StoreResult<()> {
        write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO agent_tool_calls (id, project_id, session_id, turn_id, tool, args, result, error, \
                 resolved_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, NULL, $7)",
            )
            .bind(call.id.as_str())
            .bind(call.project_id.as_str())
            .bind(call.session_id.as_str())
            .bind(call.turn_id.as_str())
            .bind(&call.tool)
            .bind(Json(&call.args))
            .bind(call.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)
        })
    }

    pub(crate) async fn get_tool_call_sql(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        id: &ToolCallId,
    ) -> StoreResult<Option<ToolCallRequest>> {
        let sql = format!(
            "SELECT {TOOL_CALL_COLUMNS} FROM agent_tool_calls WHERE project_id = $1 AND session_id = $2 AND id = $3"
        );
        let row: Option<ToolCallRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(session_id.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db_err)?);
        Ok(row.map(ToolCallRequest::from))
    }

    pub(crate) async fn resolve_tool_call_sql(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        id: &ToolCallId,
        outcome: &Result<Value, String>,
        at: Timestamp,
    ) -> StoreResult<ResolveToolCall> {
        let (result, error) = match outcome {
            Ok(result) => (Some(Json(result)), None),
            Err(error) => (None, Some(error.as_str())),
        };
        write_tx!(self, |tx| {
            let done = sqlx::query(
                "UPDATE agent_tool_calls SET result = $1, error = $2, resolved_at = $3 \
                 WHERE id = $4 AND session_id = $5 AND project_id = $6 AND resolved_at IS NULL",
            )
            .bind(result)
            .bind(error)
            .bind(at)
            .bind(id.as_str())
            .bind(session_id.as_str())
            .bind(project_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if done.rows_affected() == 1 {
                tx.commit().await.map_err(db_err)?;
                return Ok(ResolveToolCall::Resolved);
            }
            let exists = sqlx::query(
                "SELECT id FROM agent_tool_calls WHERE id = $1 AND session_id = $2 AND project_id = $3",
            )
            .bind(id.as_str())
            .bind(session_id.as_str())
            .bind(project_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            Ok(if exists.is_some() {
                ResolveToolCall::AlreadyResolved
            } else {
                ResolveToolCall::NotFound
            })
        })
    }
}
