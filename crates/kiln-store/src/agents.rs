//! `impl AgentStore for SqlStore`: agent sessions, their turn claims, the
//! per-session event log (whose step events are the session's steps), the
//! input requests, and the cross-server signals (PostgreSQL `NOTIFY`).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::postgres::PgListener;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgPool, Row};

use kiln_core::StoreError;
use kiln_core::StoreResult;
use kiln_core::agents::config::{McpServerSpec, ModuleSkill};
use kiln_core::audit::NewAudit;
use kiln_core::ids::{
    AgentId, AgentVersionId, EventId, IndexId, InputRequestId, ProjectId, SessionId, ToolCallId, TurnId,
};
use kiln_core::llm::{ToolSpec, Usage};
use kiln_core::page::Page;
use kiln_core::runtime::event::{EventKind, StoredEvent};
use kiln_core::runtime::session::{Session, SessionStatus, Step};
use kiln_core::runtime::store::{
    AgentSignal, AgentStore, AnswerInput, BeginTurn, DataUpdate, Enqueue, InputRequest, NewEvent, QueuedTurn,
    Reorder, ResolveToolCall, SignalStream, ToolCallRequest,
};
use kiln_core::time::{Timestamp, now};

use crate::claims::{Claim, bind_claim, bind_lease, claim_sql, lease_sql};
use crate::connect::SqlStore;
use crate::db::{DatabaseKind, Db, db_err};
use crate::event_log::{
    AppendJob, AppendQueue, AppendSql, CHANNEL, EventToWrite, append_query, append_row, claim_and_append,
    claimed_seq, encode_signal, parse_signal,
};

const SESSION_COLUMNS: &str = "id, project_id, title, system_prompt, model, tools, metadata, status, index_ids, \
     data, turn_id, step_count, last_seq, prompt_tokens, completion_tokens, duration_ms, created_at, updated_at, agent_id, \
     agent_version_id, skill_modules, mcp_servers, client_tools";
const EVENT_COLUMNS: &str = "id, seq, turn_id, step_index, body, duration_ms, created_at";
const STEP_COLUMNS: &str = "id, session_id, step_index, step_type, content, tool_name, tool_args, duration_ms, \
     prompt_tokens, completion_tokens, created_at";
const INPUT_COLUMNS: &str =
    "id, project_id, session_id, turn_id, input_type, message, options, placeholder, value, created_at";

/// Token counts are stored as BIGINT and read back into `u32`s, saturating.
pub(crate) fn usage(prompt_tokens: i64, completion_tokens: i64) -> Usage {
    let clamp = |n: i64| n.clamp(0, i64::from(u32::MAX)) as u32;
    Usage {
        prompt_tokens: clamp(prompt_tokens),
        completion_tokens: clamp(completion_tokens),
    }
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    project_id: String,
    title: String,
    system_prompt: String,
    model: String,
    tools: Json<Vec<String>>,
    metadata: Json<Value>,
    status: String,
    index_ids: Option<Json<Vec<String>>>,
    data: Json<Map<String, Value>>,
    turn_id: Option<String>,
    step_count: i64,
    last_seq: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    duration_ms: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    agent_id: Option<String>,
    agent_version_id: Option<String>,
    skill_modules: Json<Vec<ModuleSkill>>,
    mcp_servers: Json<Vec<McpServerSpec>>,
    client_tools: Json<Vec<ToolSpec>>,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> Result<Self, StoreError> {
        Ok(Session {
            status: SessionStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Corrupt(format!("agent session status `{}`", r.status)))?,
            id: SessionId::from_string(r.id),
            project_id: ProjectId::from_string(r.project_id),
            title: r.title,
            system_prompt: r.system_prompt,
            model: r.model,
            tools: r.tools.0,
            metadata: r.metadata.0,
            index_ids: r
                .index_ids
                .map(|ids| ids.0.into_iter().map(IndexId::from_string).collect()),
            data: r.data.0,
            turn_id: r.turn_id.map(TurnId::from_string),
            usage: usage(r.prompt_tokens, r.completion_tokens),
            step_count: r.step_count,
            last_seq: r.last_seq,
            duration_ms: r.duration_ms,
            created_at: r.created_at,
            updated_at: r.updated_at,
            agent_id: r.agent_id.map(AgentId::from_string),
            agent_version_id: r.agent_version_id.map(AgentVersionId::from_string),
            modules: r.skill_modules.0,
            mcp_servers: r.mcp_servers.0,
            client_tools: r.client_tools.0,
        })
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    seq: i64,
    turn_id: String,
    step_index: Option<i64>,
    body: String,
    duration_ms: i64,
    created_at: DateTime<Utc>,
}

impl TryFrom<EventRow> for StoredEvent {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        Ok(StoredEvent {
            body: serde_json::from_str(&r.body)
                .map_err(|e| StoreError::Corrupt(format!("agent event `{}`: {e}", r.id)))?,
            id: EventId::from_string(r.id),
            seq: r.seq,
            turn_id: TurnId::from_string(r.turn_id),
            step_index: r.step_index,
            duration_ms: r.duration_ms,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct StepRow {
    id: String,
    session_id: String,
    step_index: i64,
    step_type: String,
    content: Option<String>,
    tool_name: Option<String>,
    tool_args: Option<Json<Value>>,
    duration_ms: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    created_at: DateTime<Utc>,
}

impl TryFrom<StepRow> for Step {
    type Error = StoreError;

    fn try_from(r: StepRow) -> StoreResult<Self> {
        let step_type = EventKind::from_storage_name(&r.step_type)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown step type `{}`", r.step_type)))?;
        Ok(Step {
            id: EventId::from_string(r.id),
            session_id: SessionId::from_string(r.session_id),
            step_index: r.step_index,
            step_type,
            content: r.content.unwrap_or_default(),
            tool_name: r.tool_name.unwrap_or_default(),
            tool_args: r.tool_args.map_or_else(|| Value::Object(Map::new()), |a| a.0),
            duration_ms: r.duration_ms,
            usage: usage(r.prompt_tokens, r.completion_tokens),
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct InputRequestRow {
    id: String,
    project_id: String,
    session_id: String,
    turn_id: String,
    input_type: String,
    message: String,
    options: Json<Vec<String>>,
    placeholder: String,
    value: Option<Json<Value>>,
    created_at: DateTime<Utc>,
}

impl From<InputRequestRow> for InputRequest {
    fn from(r: InputRequestRow) -> Self {
        InputRequest {
            id: InputRequestId::from_string(r.id),
            project_id: ProjectId::from_string(r.project_id),
            session_id: SessionId::from_string(r.session_id),
            turn_id: TurnId::from_string(r.turn_id),
            input_type: r.input_type,
            message: r.message,
            options: r.options.0,
            placeholder: r.placeholder,
            value: r.value.map(|v| v.0),
            created_at: r.created_at,
        }
    }
}

/// A listener on [`CHANNEL`], taking a connection of `pool`.
async fn pg_listener(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// The signals of `listener`, for as long as `pool` is open. A failed
/// listener is replaced (after a pause) rather than ending the stream;
/// whatever was notified in between is lost, as `NOTIFY`s are.
fn signal_stream(pool: PgPool, listener: PgListener) -> SignalStream {
    const RETRY: Duration = Duration::from_secs(1);
    Box::pin(futures_util::stream::unfold(
        (pool, Some(listener)),
        |(pool, mut listener)| async move {
            loop {
                let Some(current) = listener.as_mut() else {
                    match pg_listener(&pool).await {
                        Ok(fresh) => listener = Some(fresh),
                        Err(sqlx::Error::PoolClosed) => return None,
                        Err(e) => {
                            tracing::warn!(error = %e, "reconnecting the agent-signal listener failed; retrying");
                            tokio::time::sleep(RETRY).await;
                        }
                    }
                    continue;
                };
                match current.recv().await {
                    Ok(notification) => match parse_signal(notification.payload()) {
                        Some(signal) => return Some((signal, (pool, listener))),
                        None => tracing::warn!(
                            payload = notification.payload(),
                            "ignoring an unreadable agent signal"
                        ),
                    },
                    Err(sqlx::Error::PoolClosed) => return None,
                    Err(e) => {
                        tracing::warn!(error = %e, "listening for agent signals failed; reconnecting");
                        listener = None;
                        tokio::time::sleep(RETRY).await;
                    }
                }
            }
        },
    ))
}

#[async_trait]
impl AgentStore for SqlStore {
    async fn create_session(&self, session: &Session, audit: &NewAudit) -> StoreResult<()> {
        let index_ids: Option<Vec<&str>> = session
            .index_ids
            .as_ref()
            .map(|ids| ids.iter().map(IndexId::as_str).collect());
        write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO agent_sessions (id, project_id, title, system_prompt, model, tools, metadata, status, \
                 index_ids, data, turn_id, lease_until, last_seq, step_count, prompt_tokens, completion_tokens, \
                 duration_ms, created_at, updated_at, agent_id, agent_version_id, skill_modules, mcp_servers, \
                 client_tools) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, 0, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
                 $21, $22)",
            )
            .bind(session.id.as_str())
            .bind(session.project_id.as_str())
            .bind(&session.title)
            .bind(&session.system_prompt)
            .bind(&session.model)
            .bind(Json(&session.tools))
            .bind(Json(&session.metadata))
            .bind(session.status.as_str())
            .bind(index_ids.as_ref().map(Json))
            .bind(Json(&session.data))
            .bind(session.turn_id.as_ref().map(TurnId::as_str))
            .bind(session.step_count)
            .bind(i64::from(session.usage.prompt_tokens))
            .bind(i64::from(session.usage.completion_tokens))
            .bind(session.duration_ms)
            .bind(session.created_at)
            .bind(session.updated_at)
            .bind(session.agent_id.as_ref().map(AgentId::as_str))
            .bind(session.agent_version_id.as_ref().map(AgentVersionId::as_str))
            .bind(Json(&session.modules))
            .bind(Json(&session.mcp_servers))
            .bind(Json(&session.client_tools))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            commit_audited!(tx, audit)
        })
    }

    async fn get_session(&self, project_id: &ProjectId, id: &SessionId) -> StoreResult<Option<Session>> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM agent_sessions WHERE project_id = $1 AND id = $2");
        let row: Option<SessionRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db_err)?);
        row.map(Session::try_from).transpose()
    }

    async fn list_sessions(&self, project_id: &ProjectId, page: Page) -> StoreResult<Vec<Session>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM agent_sessions WHERE project_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        );
        let rows: Vec<SessionRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(pool)
            .await
            .map_err(db_err)?);
        rows.into_iter().map(Session::try_from).collect()
    }

    async fn running_sessions_of_agent(
        &self,
        project_id: &ProjectId,
        agent_id: &AgentId,
    ) -> StoreResult<Vec<SessionId>> {
        let ids: Vec<(String,)> = read!(self, |pool| {
            sqlx::query_as(
            "SELECT id FROM agent_sessions WHERE project_id = $1 AND agent_id = $2 AND turn_id IS NOT NULL"
        )
        .bind(project_id.as_str())
        .bind(agent_id.as_str())
        .fetch_all(pool)
        .await
        .map_err(db_err)?
        });
        Ok(ids.into_iter().map(|(id,)| SessionId::from_string(id)).collect())
    }

    async fn delete_session(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        audit: &NewAudit,
    ) -> StoreResult<bool> {
        // The events, input requests, queued turns, tool calls, webhooks and
        // their pending deliveries would go with the session (ON DELETE
        // CASCADE); deleting them first keeps that explicit.
        write_tx!(self, |tx| {
            for table in [
                "agent_events",
                "agent_input_requests",
                "agent_queued_turns",
                "agent_tool_calls",
                "webhook_deliveries",
                "session_webhooks",
                "session_files",
            ] {
                sqlx::query(AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE project_id = $1 AND session_id = $2"
                )))
                .bind(project_id.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            let done = sqlx::query("DELETE FROM agent_sessions WHERE project_id = $1 AND id = $2")
                .bind(project_id.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            commit_audited!(tx, audit)?;
            Ok(true)
        })
    }

    async fn session_steps(&self, project_id: &ProjectId, id: &SessionId) -> StoreResult<Vec<Step>> {
        let sql = format!(
            "SELECT {STEP_COLUMNS} FROM agent_events WHERE project_id = $1 AND session_id = $2 \
             AND step_index IS NOT NULL ORDER BY step_index"
        );
        let rows: Vec<StepRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(id.as_str())
            .fetch_all(pool)
            .await
            .map_err(db_err)?);
        rows.into_iter().map(Step::try_from).collect()
    }

    async fn begin_turn(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        turn: &TurnId,
        lease_until: Timestamp,
        first: Option<&NewEvent>,
    ) -> StoreResult<BeginTurn> {
        let (lease, lease_value) = lease_sql(self.kind(), "$3", lease_until);
        // A direct run may not overtake queued turns.
        let claim_sql = claim_sql(&lease, true);
        let claim = Claim {
            turn: turn.clone(),
            lease: lease_value,
            at: first.map_or_else(now, |f| f.at),
            session: id.clone(),
            project: project_id.clone(),
            server: self.server_id.clone(),
        };
        if let (Db::Sqlite { write, .. }, Some(first)) = (&self.db, first) {
            // The claim and the first event in one round trip.
            if let Some(stored) = claim_and_append(write, &claim_sql, claim.clone(), first).await? {
                return Ok(BeginTurn::Started(Some(Box::new(stored))));
            }
        }
        write_tx!(self, |tx| {
            let claimed = bind_claim(sqlx::query(AssertSqlSafe(claim_sql)), &claim)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            if claimed.rows_affected() == 1 {
                let mut stored = None;
                if let Some(first) = first {
                    let how = AppendSql::in_transaction(self.kind());
                    let row = append_row!(tx, how, project_id, id, turn, first).ok_or_else(|| {
                        StoreError::Database("a claimed session refused its first event".into())
                    })?;
                    stored = Some(row);
                }
                tx.commit().await.map_err(db_err)?;
                return Ok(BeginTurn::Started(stored.map(Box::new)));
            }
            let exists = sqlx::query("SELECT id FROM agent_sessions WHERE id = $1 AND project_id = $2")
                .bind(id.as_str())
                .bind(project_id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            Ok(if exists.is_some() {
                BeginTurn::Busy
            } else {
                BeginTurn::NotFound
            })
        })
    }

    async fn append_events(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        turn: &TurnId,
        events: &[NewEvent],
    ) -> StoreResult<Option<Vec<StoredEvent>>> {
        let pg = match &self.db {
            Db::Sqlite { write, .. } => {
                // One writer: appends from every running turn share commits.
                let queue = self.appends.get_or_init(|| AppendQueue::start(write.clone()));
                return queue
                    .append(AppendJob {
                        project_id: project_id.clone(),
                        id: id.clone(),
                        turn: turn.clone(),
                        events: events.to_vec(),
                    })
                    .await;
            }
            Db::Postgres(pg) => pg,
        };
        if let [event] = events {
            // One statement, committed on its own.
            let row = EventToWrite::new(event)?;
            let rows = append_query!(AppendSql::Postgres { notify: true }, project_id, id, turn, &row)
                .fetch_all(pg)
                .await
                .map_err(db_err)?;
            return Ok(claimed_seq(&rows)?.map(|(seq, step_count)| vec![row.stored(turn, seq, step_count)]));
        }
        let mut tx = pg.begin().await.map_err(db_err)?;
        let mut stored = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            // Other servers hear of the last; nothing is committed when the
            // claim is gone.
            let how = AppendSql::Postgres {
                notify: i + 1 == events.len(),
            };
            let Some(row) = append_row!(tx, how, project_id, id, turn, event) else {
                return Ok(None);
            };
            stored.push(row);
        }
        tx.commit().await.map_err(db_err)?;
        Ok(Some(stored))
    }

    async fn events_after(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM agent_events WHERE project_id = $1 AND session_id = $2 AND seq > $3 \
             ORDER BY seq LIMIT $4"
        );
        let rows: Vec<EventRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(id.as_str())
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(db_err)?);
        rows.into_iter().map(StoredEvent::try_from).collect()
    }

    async fn renew_server_turns(&self, lease_until: Timestamp) -> StoreResult<Vec<(SessionId, TurnId)>> {
        let (lease, value) = lease_sql(self.kind(), "$1", lease_until);
        let sql = format!(
            "UPDATE agent_sessions SET lease_until = {lease} \
             WHERE turn_server = $2 AND turn_id IS NOT NULL RETURNING id, turn_id"
        );
        write_tx!(self, |tx| {
            let rows = bind_lease(sqlx::query(AssertSqlSafe(sql)), &value)
                .bind(self.server_id.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            rows.iter()
                .map(|r| {
                    Ok((
                        SessionId::from_string(r.try_get::<String, _>("id").map_err(db_err)?),
                        TurnId::from_string(r.try_get::<String, _>("turn_id").map_err(db_err)?),
                    ))
                })
                .collect()
        })
    }

    async fn expired_turns(
        &self,
        now: Timestamp,
        mine: bool,
    ) -> StoreResult<Vec<(ProjectId, SessionId, TurnId)>> {
        let (cutoff, value) = lease_sql(self.kind(), "$1", now);
        let sql = format!(
            "SELECT project_id, id, turn_id FROM agent_sessions \
             WHERE turn_id IS NOT NULL AND (lease_until < {cutoff} OR ($2 AND turn_server = $3)) \
             ORDER BY lease_until, id"
        );
        read!(self, |pool| {
            let rows = bind_lease(sqlx::query(AssertSqlSafe(sql)), &value)
                .bind(mine)
                .bind(self.server_id.as_str())
                .fetch_all(pool)
                .await
                .map_err(db_err)?;
            rows.iter()
                .map(|r| {
                    Ok((
                        ProjectId::from_string(r.try_get::<String, _>("project_id").map_err(db_err)?),
                        SessionId::from_string(r.try_get::<String, _>("id").map_err(db_err)?),
                        TurnId::from_string(r.try_get::<String, _>("turn_id").map_err(db_err)?),
                    ))
                })
                .collect()
        })
    }

    async fn update_session_data(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        turn: Option<&TurnId>,
        changes: &Map<String, Value>,
        max_bytes: usize,
    ) -> StoreResult<DataUpdate> {
        // SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL
        // needs the row lock for the read-modify-write.
        let lock = match self.kind() {
            DatabaseKind::Postgres => " FOR UPDATE",
            DatabaseKind::Sqlite => "",
        };
        let claim = if turn.is_some() { " AND turn_id = $3" } else { "" };
        let select =
            format!("SELECT data FROM agent_sessions WHERE id = $1 AND project_id = $2{claim}{lock}");
        write_tx!(self, |tx| {
            let mut query = sqlx::query(AssertSqlSafe(select))
                .bind(id.as_str())
                .bind(project_id.as_str());
            if let Some(turn) = turn {
                query = query.bind(turn.as_str());
            }
            let row = query.fetch_optional(&mut *tx).await.map_err(db_err)?;
            let Some(row) = row else {
                // The session is gone, or the turn no longer holds it.
                return Ok(DataUpdate::Gone);
            };
            let Json(mut data): Json<Map<String, Value>> = row.try_get("data").map_err(db_err)?;
            for (key, value) in changes {
                if value.is_null() {
                    data.remove(key);
                } else {
                    data.insert(key.clone(), value.clone());
                }
            }
            let bytes = Value::Object(data.clone()).to_string().len();
            if bytes > max_bytes {
                return Ok(DataUpdate::TooLarge { bytes });
            }
            sqlx::query("UPDATE agent_sessions SET data = $1 WHERE id = $2 AND project_id = $3")
                .bind(Json(&data))
                .bind(id.as_str())
                .bind(project_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(DataUpdate::Updated(data))
        })
    }

    async fn create_input_request(&self, request: &InputRequest) -> StoreResult<()> {
        write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO agent_input_requests (id, project_id, session_id, turn_id, input_type, message, \
                 options, placeholder, value, answered_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10)",
            )
            .bind(request.id.as_str())
            .bind(request.project_id.as_str())
            .bind(request.session_id.as_str())
            .bind(request.turn_id.as_str())
            .bind(&request.input_type)
            .bind(&request.message)
            .bind(Json(&request.options))
            .bind(&request.placeholder)
            .bind(request.value.as_ref().map(Json))
            .bind(request.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)
        })
    }

    async fn get_input_request(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        id: &InputRequestId,
    ) -> StoreResult<Option<InputRequest>> {
        let sql = format!(
            "SELECT {INPUT_COLUMNS} FROM agent_input_requests WHERE project_id = $1 AND session_id = $2 AND id = $3"
        );
        let row: Option<InputRequestRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(session_id.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db_err)?);
        Ok(row.map(InputRequest::from))
    }

    async fn answer_input(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        id: &InputRequestId,
        value: &Value,
        at: Timestamp,
    ) -> StoreResult<AnswerInput> {
        write_tx!(self, |tx| {
            let done = sqlx::query(
                "UPDATE agent_input_requests SET value = $1, answered_at = $2 \
                 WHERE id = $3 AND session_id = $4 AND project_id = $5 AND answered_at IS NULL",
            )
            .bind(Json(value))
            .bind(at)
            .bind(id.as_str())
            .bind(session_id.as_str())
            .bind(project_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if done.rows_affected() == 1 {
                tx.commit().await.map_err(db_err)?;
                return Ok(AnswerInput::Answered);
            }
            let exists = sqlx::query(
                "SELECT id FROM agent_input_requests WHERE id = $1 AND session_id = $2 AND project_id = $3",
            )
            .bind(id.as_str())
            .bind(session_id.as_str())
            .bind(project_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            Ok(if exists.is_some() {
                AnswerInput::AlreadyAnswered
            } else {
                AnswerInput::NotFound
            })
        })
    }

    async fn enqueue_turn(
        &self,
        queued: &QueuedTurn,
        lease_until: Timestamp,
        first: &NewEvent,
        max: i64,
    ) -> StoreResult<Enqueue> {
        self.enqueue_turn_sql(queued, lease_until, first, max).await
    }

    async fn begin_queued_turn(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        lease_until: Timestamp,
        at: Timestamp,
    ) -> StoreResult<Option<(QueuedTurn, StoredEvent)>> {
        self.begin_queued_turn_sql(project_id, id, lease_until, at).await
    }

    async fn queued_turns(&self, project_id: &ProjectId, id: &SessionId) -> StoreResult<Vec<QueuedTurn>> {
        self.queued_turns_sql(project_id, id).await
    }

    async fn delete_queued_turn(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        queued: &TurnId,
    ) -> StoreResult<bool> {
        self.delete_queued_turn_sql(project_id, id, queued).await
    }

    async fn reorder_queue(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        order: &[TurnId],
    ) -> StoreResult<Reorder> {
        self.reorder_queue_sql(project_id, id, order).await
    }

    async fn sessions_with_ready_queue(&self, limit: i64) -> StoreResult<Vec<(ProjectId, SessionId)>> {
        self.sessions_with_ready_queue_sql(limit).await
    }

    async fn write_session_file(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        path: &str,
        content: &[u8],
        at: Timestamp,
    ) -> StoreResult<kiln_core::runtime::files::WriteFile> {
        self.write_session_file_sql(project_id, session_id, path, content, at)
            .await
    }

    async fn read_session_file(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        path: &str,
    ) -> StoreResult<Option<kiln_core::runtime::files::SessionFile>> {
        self.read_session_file_sql(project_id, session_id, path).await
    }

    async fn list_session_files(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
    ) -> StoreResult<Vec<kiln_core::runtime::files::FileEntry>> {
        self.list_session_files_sql(project_id, session_id).await
    }

    async fn create_tool_call(&self, call: &ToolCallRequest) -> StoreResult<()> {
        self.create_tool_call_sql(call).await
    }

    async fn get_tool_call(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        id: &ToolCallId,
    ) -> StoreResult<Option<ToolCallRequest>> {
        self.get_tool_call_sql(project_id, session_id, id).await
    }

    async fn resolve_tool_call(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        id: &ToolCallId,
        outcome: &Result<Value, String>,
        at: Timestamp,
    ) -> StoreResult<ResolveToolCall> {
        self.resolve_tool_call_sql(project_id, session_id, id, outcome, at)
            .await
    }

    async fn record_audit(&self, audit: &NewAudit) -> StoreResult<()> {
        // One statement, its own transaction: no BEGIN and COMMIT round trips.
        match &self.db {
            Db::Sqlite { write, .. } => {
                let mut conn = write.acquire().await.map_err(db_err)?;
                insert_audit!(conn, audit);
            }
            Db::Postgres(pg) => {
                let mut conn = pg.acquire().await.map_err(db_err)?;
                insert_audit!(conn, audit);
            }
        }
        Ok(())
    }

    async fn notify(&self, signal: &AgentSignal) -> StoreResult<()> {
        match &self.db {
            Db::Sqlite { .. } => Ok(()),
            Db::Postgres(pool) => {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(encode_signal(signal))
                    .execute(pool)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }
        }
    }

    async fn notify_all(&self, signals: &[AgentSignal]) -> StoreResult<()> {
        match (&self.db, signals) {
            (Db::Sqlite { .. }, _) | (_, []) => Ok(()),
            (Db::Postgres(pool), _) => {
                let payloads: Vec<String> = signals.iter().map(encode_signal).collect();
                sqlx::query("SELECT pg_notify($1, payload) FROM UNNEST($2::text[]) AS payload")
                    .bind(CHANNEL)
                    .bind(payloads)
                    .execute(pool)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }
        }
    }

    async fn listen(&self) -> StoreResult<Option<SignalStream>> {
        match &self.db {
            Db::Sqlite { .. } => Ok(None),
            Db::Postgres(pool) => {
                let listener = pg_listener(pool).await.map_err(db_err)?;
                Ok(Some(signal_stream(pool.clone(), listener)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeDelta;
    use futures_util::StreamExt;
    use serde_json::json;

    use kiln_core::audit::{Actor, actions};
    use kiln_core::control::store::ControlStore;
    use kiln_core::ids::ProjectId;
    use kiln_core::project::{Project, ProjectName};
    use kiln_core::runtime::event::EventBody;
    use kiln_core::runtime::store::TurnTotals;

    use super::*;

    const TEST_DATABASE_ENV: &str = "KILN_TEST_DATABASE_URL";

    /// A store on a fresh SQLite file (kept alive by the returned dir).
    async fn sqlite_store() -> (SqlStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("kiln.db").display());
        (SqlStore::connect(&url).await.expect("connect"), dir)
    }

    /// A fresh PostgreSQL schema: `(url with its search_path, base url,
    /// schema)`, or `None` when the test database is not configured.
    async fn pg_schema() -> Option<(String, String, String)> {
        let Some(base) = std::env::var(TEST_DATABASE_ENV).ok().filter(|v| !v.is_empty()) else {
            eprintln!("skipping the PostgreSQL run: {TEST_DATABASE_ENV} is not set");
            return None;
        };
        let schema = format!("kiln_s_{}", ProjectId::generate().as_str().replace('-', ""));
        let pool = PgPool::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("{TEST_DATABASE_ENV} is set but PostgreSQL is unreachable: {e}"));
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&pool)
            .await
            .expect("create test schema");
        pool.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        Some((format!("{base}{sep}options[search_path]={schema}"), base, schema))
    }

    async fn drop_schema(base: &str, schema: &str) {
        if let Ok(pool) = PgPool::connect(base).await {
            let _ = sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&pool)
                .await;
            pool.close().await;
        }
    }

    async fn project(store: &SqlStore) -> ProjectId {
        let at = now();
        let id = ProjectId::generate();
        let project = Project {
            id: id.clone(),
            name: ProjectName::parse(&format!("p-{id}")).unwrap(),
            slug: format!("p-{id}"),
            description: String::new(),
            vault_id: None,
            created_at: at,
            updated_at: at,
        };
        store.create_project(&project, None, &[]).await.unwrap();
        id
    }

    fn session(project_id: &ProjectId, created_at: Timestamp) -> Session {
        Session {
            id: SessionId::generate(),
            project_id: project_id.clone(),
            title: "t".into(),
            system_prompt: "be brief".into(),
            model: "openai/gpt".into(),
            tools: vec!["search".into()],
            metadata: json!({"k": "v"}),
            status: SessionStatus::Active,
            index_ids: Some(vec![IndexId::from_string("i1")]),
            data: Map::new(),
            turn_id: None,
            usage: Usage::default(),
            step_count: 0,
            last_seq: 0,
            duration_ms: 0,
            created_at,
            updated_at: created_at,
            agent_id: None,
            agent_version_id: None,
            modules: Vec::new(),
            mcp_servers: Vec::new(),
            client_tools: Vec::new(),
        }
    }

    fn audit(project_id: &ProjectId, action: &'static str, subject: &SessionId) -> NewAudit {
        NewAudit::new(project_id, &Actor::cli(), action, subject.as_str())
    }

    fn event(body: EventBody, status: Option<SessionStatus>) -> NewEvent {
        NewEvent {
            body,
            duration_ms: 5,
            at: now(),
            status,
            totals: None,
        }
    }

    fn tokens(prompt_tokens: u32, completion_tokens: u32) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
        }
    }

    /// Every behaviour of the port on one backend.
    async fn scenario(store: &SqlStore) {
        let p = project(store).await;
        let other = project(store).await;
        let t0 = now();
        let s = session(&p, t0 - TimeDelta::seconds(1));
        store
            .create_session(&s, &audit(&p, actions::AGENT_SESSION_CREATE, &s.id))
            .await
            .unwrap();
        assert_eq!(store.get_session(&p, &s.id).await.unwrap(), Some(s.clone()));
        assert_eq!(store.get_session(&other, &s.id).await.unwrap(), None);
        let mut everywhere = session(&p, t0);
        everywhere.index_ids = None;
        store
            .create_session(
                &everywhere,
                &audit(&p, actions::AGENT_SESSION_CREATE, &everywhere.id),
            )
            .await
            .unwrap();
        let listed = store
            .list_sessions(&p, Page { limit: 10, offset: 0 })
            .await
            .unwrap();
        assert_eq!(listed, vec![everywhere.clone(), s.clone()], "newest first");
        let page = store
            .list_sessions(&p, Page { limit: 1, offset: 1 })
            .await
            .unwrap();
        assert_eq!(page, vec![s.clone()]);
        assert!(
            store
                .list_sessions(&other, Page { limit: 10, offset: 0 })
                .await
                .unwrap()
                .is_empty()
        );

        // begin_turn: Started, then Busy; NotFound elsewhere.
        let lease = now() + TimeDelta::seconds(60);
        let turn = TurnId::generate();
        assert_eq!(
            store.begin_turn(&p, &s.id, &turn, lease, None).await.unwrap(),
            BeginTurn::Started(None)
        );
        assert_eq!(
            store
                .begin_turn(&p, &s.id, &TurnId::generate(), lease, None)
                .await
                .unwrap(),
            BeginTurn::Busy
        );
        assert_eq!(
            store.begin_turn(&other, &s.id, &turn, lease, None).await.unwrap(),
            BeginTurn::NotFound
        );
        assert_eq!(
            store
                .begin_turn(&p, &SessionId::generate(), &turn, lease, None)
                .await
                .unwrap(),
            BeginTurn::NotFound
        );
        let running = store.get_session(&p, &s.id).await.unwrap().unwrap();
        assert_eq!(running.status, SessionStatus::Running);
        assert_eq!(running.turn_id.as_ref(), Some(&turn));

        // Appends: seq 1..n, step_index on steps only.
        let bodies = [
            EventBody::UserMessage { content: "hi".into() },
            EventBody::ExecuteJs {
                code: "1 + 1".into(),
                tokens: Some(tokens(10, 3)),
                call_id: Some("call_1".into()),
            },
            EventBody::ExecuteJsResult {
                content: "2".into(),
                result: json!(2),
                error: None,
            },
            EventBody::InputRequest {
                request_id: "r1".into(),
                input_type: "confirm".into(),
                message: "ok?".into(),
                options: vec![],
                placeholder: String::new(),
            },
            EventBody::Response {
                content: "done".into(),
                tokens: Some(tokens(4, 2)),
            },
        ];
        let mut appended = Vec::new();
        for body in &bodies {
            let stored = store
                .append_event(
                    &p,
                    &s.id,
                    &turn,
                    &event(body.clone(), Some(SessionStatus::Running)),
                )
                .await
                .unwrap()
                .expect("the turn holds the session");
            appended.push(stored);
        }
        assert_eq!(
            appended.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(
            appended.iter().map(|e| e.step_index).collect::<Vec<_>>(),
            [Some(0), Some(1), Some(2), Some(3), Some(4)]
        );
        // A stale turn writes nothing, and neither does another project.
        let stale = store
            .append_event(&p, &s.id, &TurnId::generate(), &event(bodies[0].clone(), None))
            .await
            .unwrap();
        assert_eq!(stale, None);
        let foreign = store
            .append_event(&other, &s.id, &turn, &event(bodies[0].clone(), None))
            .await
            .unwrap();
        assert_eq!(foreign, None);
        assert_eq!(store.events_after(&p, &s.id, 0, 100).await.unwrap(), appended);

        // The terminal event: not a step, releases the claim, adds totals.
        let done = NewEvent {
            body: EventBody::Done {
                steps: 5,
                tokens: tokens(14, 5),
            },
            duration_ms: 0,
            at: now(),
            status: Some(SessionStatus::Active),
            totals: Some(TurnTotals {
                usage: tokens(14, 5),
                duration_ms: 1234,
            }),
        };
        let last = store
            .append_event(&p, &s.id, &turn, &done)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((last.seq, last.step_index), (6, None));
        let after = store.get_session(&p, &s.id).await.unwrap().unwrap();
        assert_eq!(after.status, SessionStatus::Active);
        assert_eq!(after.turn_id, None);
        assert_eq!(after.usage, tokens(14, 5));
        assert_eq!((after.step_count, after.duration_ms), (5, 1234));
        assert_eq!(after.updated_at, done.at);
        assert_eq!(
            store
                .append_event(&p, &s.id, &turn, &event(bodies[0].clone(), None))
                .await
                .unwrap(),
            None,
            "an ended turn cannot append"
        );

        // events_after: cursor and limit.
        let tail = store.events_after(&p, &s.id, 3, 2).await.unwrap();
        assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(tail[0].body, bodies[3]);
        assert!(store.events_after(&p, &s.id, 6, 10).await.unwrap().is_empty());
        assert!(store.events_after(&other, &s.id, 0, 10).await.unwrap().is_empty());

        // Steps, in order, with their stored fields.
        let steps = store.session_steps(&p, &s.id).await.unwrap();
        assert_eq!(steps.len(), 5);
        assert_eq!(steps[0].step_type, EventKind::UserMessage);
        assert_eq!(steps[0].content, "hi");
        assert_eq!(steps[1].tool_name, "execute_js");
        assert_eq!(steps[1].tool_args, json!({"code": "1 + 1"}));
        assert_eq!(steps[1].usage, tokens(10, 3));
        assert_eq!(steps[1].duration_ms, 5);
        assert_eq!(steps[3].tool_args["request_id"], json!("r1"));
        assert_eq!(steps[4].step_index, 4);
        assert!(store.session_steps(&other, &s.id).await.unwrap().is_empty());

        // A second turn numbers on.
        let turn2 = TurnId::generate();
        assert_eq!(
            store.begin_turn(&p, &s.id, &turn2, lease, None).await.unwrap(),
            BeginTurn::Started(None)
        );
        let next = store
            .append_event(&p, &s.id, &turn2, &event(bodies[0].clone(), None))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((next.seq, next.step_index), (7, Some(5)));
        let failed = NewEvent {
            body: EventBody::Error {
                message: "boom".into(),
                code: kiln_core::runtime::TurnErrorCode::Internal,
            },
            duration_ms: 0,
            at: now(),
            status: Some(SessionStatus::Error),
            totals: Some(TurnTotals {
                usage: tokens(1, 1),
                duration_ms: 6,
            }),
        };
        store
            .append_event(&p, &s.id, &turn2, &failed)
            .await
            .unwrap()
            .unwrap();
        let after = store.get_session(&p, &s.id).await.unwrap().unwrap();
        assert_eq!(after.status, SessionStatus::Error);
        assert_eq!((after.usage, after.duration_ms), (tokens(15, 6), 1240));

        // Leases: the server renews the turns it holds, and names them;
        // expiry across projects.
        let turn3 = TurnId::generate();
        let past = now() - TimeDelta::seconds(5);
        assert_eq!(
            store.begin_turn(&p, &s.id, &turn3, past, None).await.unwrap(),
            BeginTurn::Started(None)
        );
        let expired = store.expired_turns(now(), false).await.unwrap();
        assert!(expired.contains(&(p.clone(), s.id.clone(), turn3.clone())));
        let held = store.renew_server_turns(lease).await.unwrap();
        assert!(held.contains(&(s.id.clone(), turn3.clone())), "{held:?}");
        assert!(!held.contains(&(s.id.clone(), turn2.clone())), "{held:?}");
        let expired = store.expired_turns(now(), false).await.unwrap();
        assert!(!expired.iter().any(|(_, id, _)| id == &s.id));
        assert!(
            store
                .expired_turns(lease + TimeDelta::seconds(1), false)
                .await
                .unwrap()
                .contains(&(p.clone(), s.id.clone(), turn3.clone()))
        );
        // This server's own claims, whatever their lease (at its restart).
        assert!(store.expired_turns(now(), true).await.unwrap().contains(&(
            p.clone(),
            s.id.clone(),
            turn3.clone()
        )));

        // Session data: merge, null removes.
        let mut changes = Map::new();
        changes.insert("a".into(), json!(1));
        changes.insert("b".into(), json!({"x": [1, 2]}));
        let DataUpdate::Updated(data) = store
            .update_session_data(&p, &s.id, None, &changes, 1024)
            .await
            .unwrap()
        else {
            panic!("updated")
        };
        assert_eq!(Value::Object(data), json!({"a": 1, "b": {"x": [1, 2]}}));
        let mut changes = Map::new();
        changes.insert("a".into(), Value::Null);
        changes.insert("c".into(), json!("three"));
        let DataUpdate::Updated(data) = store
            .update_session_data(&p, &s.id, None, &changes, 1024)
            .await
            .unwrap()
        else {
            panic!("updated")
        };
        assert_eq!(
            Value::Object(data.clone()),
            json!({"b": {"x": [1, 2]}, "c": "three"})
        );
        assert_eq!(store.get_session(&p, &s.id).await.unwrap().unwrap().data, data);
        assert_eq!(
            store
                .update_session_data(&other, &s.id, None, &changes, 1024)
                .await
                .unwrap(),
            DataUpdate::Gone
        );
        // Over the cap: refused whole, the data as it was.
        let mut big = Map::new();
        big.insert("d".into(), json!("x".repeat(2000)));
        let refused = store
            .update_session_data(&p, &s.id, None, &big, 1024)
            .await
            .unwrap();
        assert!(
            matches!(refused, DataUpdate::TooLarge { bytes } if bytes > 2000),
            "{refused:?}"
        );
        assert_eq!(store.get_session(&p, &s.id).await.unwrap().unwrap().data, data);
        let stale = TurnId::generate();
        assert_eq!(
            store
                .update_session_data(&p, &s.id, Some(&stale), &changes, 1024)
                .await
                .unwrap(),
            DataUpdate::Gone
        );

        // Input requests.
        let request = InputRequest {
            id: InputRequestId::generate(),
            project_id: p.clone(),
            session_id: s.id.clone(),
            turn_id: turn3.clone(),
            input_type: "choice".into(),
            message: "pick".into(),
            options: vec!["a".into(), "b".into()],
            placeholder: "…".into(),
            value: None,
            created_at: now(),
        };
        store.create_input_request(&request).await.unwrap();
        assert_eq!(
            store.get_input_request(&p, &s.id, &request.id).await.unwrap(),
            Some(request.clone())
        );
        assert_eq!(
            store.get_input_request(&other, &s.id, &request.id).await.unwrap(),
            None
        );
        let answer = json!("b");
        assert_eq!(
            store
                .answer_input(&p, &s.id, &request.id, &answer, now())
                .await
                .unwrap(),
            AnswerInput::Answered
        );
        assert_eq!(
            store
                .answer_input(&p, &s.id, &request.id, &json!("a"), now())
                .await
                .unwrap(),
            AnswerInput::AlreadyAnswered
        );
        assert_eq!(
            store
                .answer_input(&p, &s.id, &InputRequestId::generate(), &answer, now())
                .await
                .unwrap(),
            AnswerInput::NotFound
        );
        assert_eq!(
            store
                .answer_input(&other, &s.id, &request.id, &answer, now())
                .await
                .unwrap(),
            AnswerInput::NotFound
        );
        let answered = store
            .get_input_request(&p, &s.id, &request.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answered.value, Some(answer));

        // Metrics count the sessions.
        let metrics = store.project_metrics(&p).await.unwrap();
        assert_eq!(
            (
                metrics.total_sessions,
                metrics.active_sessions,
                metrics.error_sessions,
                metrics.completed_sessions,
                metrics.total_steps
            ),
            (2, 2, 0, 0, 6)
        );

        // Delete: the session with its events and input requests.
        let actor_audit = audit(&p, actions::AGENT_SESSION_DELETE, &s.id);
        assert!(!store.delete_session(&other, &s.id, &actor_audit).await.unwrap());
        assert!(store.delete_session(&p, &s.id, &actor_audit).await.unwrap());
        assert!(!store.delete_session(&p, &s.id, &actor_audit).await.unwrap());
        assert_eq!(store.get_session(&p, &s.id).await.unwrap(), None);
        assert!(store.events_after(&p, &s.id, 0, 100).await.unwrap().is_empty());
        assert_eq!(
            store.get_input_request(&p, &s.id, &request.id).await.unwrap(),
            None
        );
        let audited = store
            .list_audit(&p, &Default::default(), Page { limit: 10, offset: 0 })
            .await
            .unwrap()
            .0;
        assert_eq!(
            audited
                .iter()
                .filter(|a| a.subject_id == s.id.as_str())
                .map(|a| a.action.as_str())
                .collect::<Vec<_>>(),
            [actions::AGENT_SESSION_DELETE, actions::AGENT_SESSION_CREATE]
        );
    }

    #[test]
    fn signal_payloads_round_trip() {
        let session_id = SessionId::generate();
        for signal in [
            AgentSignal::Event {
                session_id: session_id.clone(),
                seq: 42,
            },
            AgentSignal::Cancel {
                session_id: session_id.clone(),
                turn_id: TurnId::from_string("t1"),
            },
            AgentSignal::Input {
                session_id: session_id.clone(),
            },
            AgentSignal::Session {
                origin: "0192abcd".into(),
                change: kiln_core::runtime::news::SessionChange::Removed,
                project_id: ProjectId::generate(),
                session_id: session_id.clone(),
            },
        ] {
            let payload = encode_signal(&signal);
            assert!(payload.len() < 160, "{payload}");
            assert_eq!(parse_signal(&payload), Some(signal));
        }
        assert_eq!(
            encode_signal(&AgentSignal::Event {
                session_id: SessionId::from_string("s"),
                seq: 7
            }),
            "e:7:s"
        );
        for junk in ["", "e", "e:1", "e:x:s", "e:1:", "c::s", "x::s", "i::"] {
            assert_eq!(parse_signal(junk), None, "{junk}");
        }
    }

    /// Appends from many turns at once share commits on SQLite: every turn
    /// still gets its own gapless numbering, and a job that loses its claim
    /// half-way writes nothing while the rest of its group commits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_commit_in_groups() {
        let (store, _dir) = sqlite_store().await;
        let store = std::sync::Arc::new(store);
        let p = project(&store).await;
        let lease = now() + TimeDelta::seconds(60);
        let mut turns = Vec::new();
        for _ in 0..16 {
            let s = session(&p, now());
            store
                .create_session(&s, &audit(&p, actions::AGENT_SESSION_CREATE, &s.id))
                .await
                .unwrap();
            let turn = TurnId::generate();
            store.begin_turn(&p, &s.id, &turn, lease, None).await.unwrap();
            turns.push((s.id, turn));
        }
        let tasks: Vec<_> = turns
            .iter()
            .cloned()
            .map(|(id, turn)| {
                let (store, p) = (store.clone(), p.clone());
                tokio::spawn(async move {
                    let mut seqs = Vec::new();
                    for i in 0..20 {
                        let body = EventBody::Response {
                            content: format!("{i}"),
                            tokens: None,
                        };
                        let stored = store
                            .append_event(&p, &id, &turn, &event(body, None))
                            .await
                            .unwrap()
                            .unwrap();
                        seqs.push(stored.seq);
                    }
                    seqs
                })
            })
            .collect();
        // Meanwhile a job whose second event finds the claim gone (the first
        // ended the turn): all or nothing.
        let (id, turn) = turns[0].clone();
        let done = NewEvent {
            totals: Some(TurnTotals {
                usage: Usage::default(),
                duration_ms: 1,
            }),
            ..event(
                EventBody::Done {
                    steps: 0,
                    tokens: Usage::default(),
                },
                Some(SessionStatus::Active),
            )
        };
        let after = event(
            EventBody::Response {
                content: "late".into(),
                tokens: None,
            },
            None,
        );
        let refused = store.append_events(&p, &id, &turn, &[done, after]).await.unwrap();
        assert_eq!(refused, None);
        for task in tasks {
            assert_eq!(task.await.unwrap(), (1..=20).collect::<Vec<i64>>());
        }
        let (first, _) = &turns[0];
        let log = store.events_after(&p, first, 0, 100).await.unwrap();
        assert_eq!(log.len(), 20, "the refused job left nothing");
        assert!(log.iter().all(|e| !e.body.is_terminal()));
        let still = store.get_session(&p, first).await.unwrap().unwrap();
        assert_eq!(still.status, SessionStatus::Running);
        store.close().await;
    }

    #[tokio::test]
    async fn sqlite_agent_store() {
        let (store, _dir) = sqlite_store().await;
        scenario(&store).await;
        store
            .notify(&AgentSignal::Cancel {
                session_id: SessionId::generate(),
                turn_id: TurnId::generate(),
            })
            .await
            .unwrap();
        assert!(store.listen().await.unwrap().is_none());
        store.close().await;
    }

    #[tokio::test]
    async fn postgres_agent_store() {
        let Some((url, base, schema)) = pg_schema().await else {
            return;
        };
        let store = SqlStore::connect(&url).await.unwrap();
        scenario(&store).await;
        store.close().await;
        drop_schema(&base, &schema).await;
    }

    #[tokio::test]
    async fn postgres_listen_receives_appends_and_notifies() {
        let Some((url, base, schema)) = pg_schema().await else {
            return;
        };
        let listening = SqlStore::connect(&url).await.unwrap();
        let writing = SqlStore::connect(&url).await.unwrap();
        let mut signals = listening.listen().await.unwrap().expect("PostgreSQL listens");

        let p = project(&writing).await;
        let s = session(&p, now());
        writing
            .create_session(&s, &audit(&p, actions::AGENT_SESSION_CREATE, &s.id))
            .await
            .unwrap();
        let turn = TurnId::generate();
        let lease = now() + TimeDelta::seconds(60);
        writing.begin_turn(&p, &s.id, &turn, lease, None).await.unwrap();
        let body = EventBody::UserMessage { content: "hi".into() };
        let stored = writing
            .append_event(&p, &s.id, &turn, &event(body, None))
            .await
            .unwrap()
            .unwrap();
        writing
            .notify(&AgentSignal::Input {
                session_id: s.id.clone(),
            })
            .await
            .unwrap();

        let mut next = async || {
            tokio::time::timeout(Duration::from_secs(10), signals.next())
                .await
                .expect("a signal within 10 s")
                .expect("the stream goes on")
        };
        assert_eq!(
            next().await,
            AgentSignal::Event {
                session_id: s.id.clone(),
                seq: stored.seq
            }
        );
        assert_eq!(
            next().await,
            AgentSignal::Input {
                session_id: s.id.clone()
            }
        );

        drop(signals);
        writing.close().await;
        listening.close().await;
        drop_schema(&base, &schema).await;
    }
}
