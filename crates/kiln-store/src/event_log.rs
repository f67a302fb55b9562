//! The agent event log's writes: one event appended under a turn's claim,
//! the SQLite group-commit queue that batches appends from every running
//! turn, and the cross-server signal encoding (PostgreSQL `NOTIFY`).

use serde_json::Value;
use sqlx::SqlitePool;
use sqlx::types::Json;

use kiln_core::ids::{EventId, ProjectId, SessionId, TurnId};
use kiln_core::llm::Usage;
use kiln_core::runtime::event::StoredEvent;
use kiln_core::runtime::news::SessionChange;
use kiln_core::runtime::store::{AgentSignal, NewEvent};
use kiln_core::{StoreError, StoreResult};

use crate::db::db_err;

/// The PostgreSQL channel every server listens on.
pub(crate) const CHANNEL: &str = "kiln_agents";

/// A signal as a `NOTIFY` payload: `<kind>:<seq>:<session id>`, with kind
/// `e` (event, with its seq), `c` (cancel) or `i` (input), the seq empty for
/// the last two; session news is `n:<c|p|r>:<origin>/<project id>/<session id>`.
pub(crate) fn encode_signal(signal: &AgentSignal) -> String {
    match signal {
        AgentSignal::Event { session_id, seq } => format!("e:{seq}:{session_id}"),
        AgentSignal::Cancel { session_id, turn_id } => format!("c:{turn_id}:{session_id}"),
        AgentSignal::Input { session_id } => format!("i::{session_id}"),
        AgentSignal::Session {
            origin,
            change,
            project_id,
            session_id,
        } => format!("n:{}:{origin}/{project_id}/{session_id}", change.letter()),
    }
}

/// The inverse of [`encode_signal`]; `None` for anything else.
pub(crate) fn parse_signal(payload: &str) -> Option<AgentSignal> {
    let mut parts = payload.splitn(3, ':');
    let (kind, seq, session) = (parts.next()?, parts.next()?, parts.next()?);
    if session.is_empty() {
        return None;
    }
    let session_id = SessionId::from_string(session);
    match (kind, seq) {
        ("e", seq) => Some(AgentSignal::Event {
            session_id,
            seq: seq.parse().ok()?,
        }),
        ("c", turn) if !turn.is_empty() => Some(AgentSignal::Cancel {
            session_id,
            turn_id: TurnId::from_string(turn),
        }),
        ("i", "") => Some(AgentSignal::Input { session_id }),
        ("n", letter) => {
            let mut ids = session.splitn(3, '/');
            let (origin, project, session) = (ids.next()?, ids.next()?, ids.next()?);
            if origin.is_empty() || project.is_empty() || session.is_empty() {
                return None;
            }
            Some(AgentSignal::Session {
                origin: origin.to_owned(),
                change: SessionChange::from_letter(letter)?,
                project_id: ProjectId::from_string(project),
                session_id: SessionId::from_string(session),
            })
        }
        _ => None,
    }
}

/// One event as the log stores it, computed before any SQL runs.
pub(crate) struct EventRow<'a> {
    pub(crate) event: &'a NewEvent,
    /// `(content, tool_name, tool_args)` when the event is a step.
    pub(crate) step: Option<(String, String, Value)>,
    pub(crate) tokens: Usage,
    pub(crate) body: String,
    /// What the session's totals grow by (terminal events only).
    pub(crate) added: Usage,
    pub(crate) added_ms: i64,
}

impl<'a> EventRow<'a> {
    pub(crate) fn new(event: &'a NewEvent) -> StoreResult<EventRow<'a>> {
        let body = serde_json::to_string(&event.body)
            .map_err(|e| StoreError::Database(format!("encoding an agent event: {e}")))?;
        let (added, added_ms) = event
            .totals
            .map_or((Usage::default(), 0), |t| (t.usage, t.duration_ms));
        Ok(EventRow {
            event,
            step: event.body.step_fields(),
            tokens: event.body.tokens().unwrap_or_default(),
            body,
            added,
            added_ms,
        })
    }

    /// The event as stored, numbered `seq`, with the session's step count
    /// after it.
    pub(crate) fn stored(&self, turn: &TurnId, seq: i64, step_count: i64) -> StoredEvent {
        StoredEvent {
            id: EventId::generate(),
            seq,
            turn_id: turn.clone(),
            step_index: self.step.as_ref().map(|_| step_count - 1),
            body: self.event.body.clone(),
            duration_ms: self.event.duration_ms,
            created_at: self.event.at,
        }
    }

    /// The step columns: content, tool name, tool arguments.
    pub(crate) fn step_columns(&self) -> (Option<&str>, Option<&str>, Option<Json<&Value>>) {
        match &self.step {
            Some((content, tool_name, tool_args)) => (
                Some(content.as_str()),
                Some(tool_name.as_str()),
                Some(Json(tool_args)),
            ),
            None => (None, None, None),
        }
    }
}

/// Numbers the event on the session row under `turn`'s claim (the row's
/// lock, on PostgreSQL, orders concurrent appends).
pub(crate) const CLAIMED_APPEND_SQL: &str = "UPDATE agent_sessions SET last_seq = last_seq + 1, step_count = step_count + $1, \
     status = COALESCE($2, status), updated_at = $3, \
     turn_id = CASE WHEN $4 THEN NULL ELSE turn_id END, \
     lease_until = CASE WHEN $4 THEN NULL ELSE lease_until END, \
     prompt_tokens = prompt_tokens + $5, completion_tokens = completion_tokens + $6, \
     duration_ms = duration_ms + $7 \
     WHERE id = $8 AND project_id = $9 AND turn_id = $10 RETURNING last_seq, step_count";

pub(crate) const INSERT_EVENT_SQL: &str = "INSERT INTO agent_events (id, project_id, session_id, seq, turn_id, step_index, \
     step_type, body, content, tool_name, tool_args, duration_ms, prompt_tokens, completion_tokens, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

/// The webhook outbox: one delivery per webhook of the session that wants
/// the event, written with the event (`$1` the event id: a delivery's id is
/// it and the webhook's position, the same on every attempt). The session's
/// status and tokens are read after the append's update.
pub(crate) const OUTBOX_SQL: &str = "INSERT INTO webhook_deliveries (id, project_id, session_id, webhook_id, url, \
     event_type, run_id, session_status, session_error, prompt_tokens, completion_tokens, state, attempt, \
     created_at, next_attempt_at) \
     SELECT $1 || '-' || CAST(w.position AS TEXT), w.project_id, w.session_id, w.id, w.url, $2, $3, s.status, $4, \
     s.prompt_tokens, s.completion_tokens, 'pending', 0, $5, $5 \
     FROM session_webhooks w JOIN agent_sessions s ON s.id = w.session_id \
     WHERE w.session_id = $6 AND w.project_id = $7 AND (w.events = '' OR w.events LIKE $8)";

/// Appends one event inside the caller's transaction under `turn`'s claim:
/// numbers it on the session row, inserts it, and writes its webhook
/// deliveries ([`OUTBOX_SQL`]). Evaluates to `None` when
/// the turn no longer holds the session (the caller then writes nothing);
/// errors return from the caller. (A macro because the transaction's type
/// differs per backend; everything that does not touch it is in
/// [`EventRow`].)
macro_rules! append_row {
    ($tx:ident, $project_id:expr, $id:expr, $turn:expr, $event:expr) => {{
        let (project_id, id, turn): (
            &kiln_core::ids::ProjectId,
            &kiln_core::ids::SessionId,
            &kiln_core::ids::TurnId,
        ) = ($project_id, $id, $turn);
        let row = $crate::event_log::EventRow::new($event)?;
        let event = row.event;
        let claimed = sqlx::query($crate::event_log::CLAIMED_APPEND_SQL)
            .bind(i64::from(row.step.is_some()))
            .bind(
                event
                    .status
                    .map(kiln_core::runtime::session::SessionStatus::as_str),
            )
            .bind(event.at)
            .bind(event.totals.is_some())
            .bind(i64::from(row.added.prompt_tokens))
            .bind(i64::from(row.added.completion_tokens))
            .bind(row.added_ms)
            .bind(id.as_str())
            .bind(project_id.as_str())
            .bind(turn.as_str())
            .fetch_optional(&mut *$tx)
            .await
            .map_err($crate::db::db_err)?;
        match claimed {
            None => None,
            Some(claimed) => {
                let seq: i64 = sqlx::Row::try_get(&claimed, "last_seq").map_err($crate::db::db_err)?;
                let step_count: i64 =
                    sqlx::Row::try_get(&claimed, "step_count").map_err($crate::db::db_err)?;
                let stored = row.stored(turn, seq, step_count);
                let (content, tool_name, tool_args) = row.step_columns();
                sqlx::query($crate::event_log::INSERT_EVENT_SQL)
                    .bind(stored.id.as_str())
                    .bind(project_id.as_str())
                    .bind(id.as_str())
                    .bind(seq)
                    .bind(turn.as_str())
                    .bind(stored.step_index)
                    .bind(event.body.kind().storage_name())
                    .bind(&row.body)
                    .bind(content)
                    .bind(tool_name)
                    .bind(tool_args)
                    .bind(event.duration_ms)
                    .bind(i64::from(row.tokens.prompt_tokens))
                    .bind(i64::from(row.tokens.completion_tokens))
                    .bind(event.at)
                    .execute(&mut *$tx)
                    .await
                    .map_err($crate::db::db_err)?;
                if let Some((hook, error)) = kiln_core::webhooks::outbox_event(&event.body) {
                    sqlx::query($crate::event_log::OUTBOX_SQL)
                        .bind(stored.id.as_str())
                        .bind(hook.as_str())
                        .bind(turn.as_str())
                        .bind(error)
                        .bind(event.at)
                        .bind(id.as_str())
                        .bind(project_id.as_str())
                        .bind(format!("%,{},%", hook.as_str()))
                        .execute(&mut *$tx)
                        .await
                        .map_err($crate::db::db_err)?;
                }
                Some(stored)
            }
        }
    }};
}
pub(crate) use append_row;

/// Tells other servers (PostgreSQL) that the session's log reached `seq`,
/// delivered when the caller's transaction commits.
macro_rules! notify_in_tx {
    ($tx:ident, $id:expr, $seq:expr) => {{
        let signal = kiln_core::runtime::store::AgentSignal::Event {
            session_id: $id.clone(),
            seq: $seq,
        };
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind($crate::event_log::CHANNEL)
            .bind($crate::event_log::encode_signal(&signal))
            .execute(&mut *$tx)
            .await
            .map_err($crate::db::db_err)?;
    }};
}
pub(crate) use notify_in_tx;

/// One `append_events` call waiting for the SQLite writer.
pub(crate) struct AppendJob {
    pub(crate) project_id: ProjectId,
    pub(crate) id: SessionId,
    pub(crate) turn: TurnId,
    pub(crate) events: Vec<NewEvent>,
}

type AppendReply = StoreResult<Option<Vec<StoredEvent>>>;

/// Group commit for SQLite, which has one writer: appends from all running
/// turns queue here, and a task writes whatever has queued in one
/// transaction, answering each caller after the commit. Under load a commit
/// (and the connection's round trips around it) serves many appends; alone,
/// an append waits for nothing. Each job keeps its all-or-nothing outcome
/// through a savepoint.
pub(crate) struct AppendQueue {
    jobs: tokio::sync::mpsc::UnboundedSender<(AppendJob, tokio::sync::oneshot::Sender<AppendReply>)>,
}

/// Jobs committed together at most.
const APPEND_GROUP: usize = 64;

impl AppendQueue {
    pub(crate) fn start(write: SqlitePool) -> AppendQueue {
        let (jobs, mut queued) =
            tokio::sync::mpsc::unbounded_channel::<(AppendJob, tokio::sync::oneshot::Sender<AppendReply>)>();
        tokio::spawn(async move {
            let mut group = Vec::with_capacity(APPEND_GROUP);
            while queued.recv_many(&mut group, APPEND_GROUP).await > 0 {
                match write_group(&write, &group).await {
                    Ok(outcomes) => {
                        for ((_, reply), outcome) in group.drain(..).zip(outcomes) {
                            let _ = reply.send(Ok(outcome));
                        }
                    }
                    Err(e) => {
                        let message = e.to_string();
                        for (_, reply) in group.drain(..) {
                            let _ = reply.send(Err(StoreError::Database(message.clone())));
                        }
                    }
                }
            }
        });
        AppendQueue { jobs }
    }

    pub(crate) async fn append(&self, job: AppendJob) -> AppendReply {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send((job, reply))
            .map_err(|_| StoreError::Database("the event writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Database("the event writer stopped".into()))?
    }
}

/// Writes a group of jobs in one transaction; a job whose turn lost its
/// claim is rolled back to its savepoint and answered `None`.
async fn write_group(
    write: &SqlitePool,
    group: &[(AppendJob, tokio::sync::oneshot::Sender<AppendReply>)],
) -> StoreResult<Vec<Option<Vec<StoredEvent>>>> {
    let mut tx = write.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
    let mut outcomes = Vec::with_capacity(group.len());
    for (job, _) in group {
        let multiple = job.events.len() > 1;
        if multiple {
            sqlx::query("SAVEPOINT job")
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let mut stored = Vec::with_capacity(job.events.len());
        let mut lost = false;
        for event in &job.events {
            match append_row!(tx, &job.project_id, &job.id, &job.turn, event) {
                Some(row) => stored.push(row),
                None => {
                    lost = true;
                    break;
                }
            }
        }
        if multiple {
            let end = if lost { "ROLLBACK TO job" } else { "RELEASE job" };
            sqlx::query(end).execute(&mut *tx).await.map_err(db_err)?;
            if lost {
                sqlx::query("RELEASE job")
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
        }
        outcomes.push((!lost).then_some(stored));
    }
    tx.commit().await.map_err(db_err)?;
    Ok(outcomes)
}
