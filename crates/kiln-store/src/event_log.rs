//! The agent event log's writes: one event appended under a turn's claim,
//! the SQLite group-commit queue that batches appends from every running
//! turn, and the cross-server signal encoding (PostgreSQL `NOTIFY`).

use serde_json::Value;
use sqlx::types::Json;

use kiln_core::ids::{EventId, ProjectId, SessionId, TurnId};
use kiln_core::llm::Usage;
use kiln_core::runtime::event::StoredEvent;
use kiln_core::runtime::news::SessionChange;
use kiln_core::runtime::store::{AgentSignal, NewEvent};
use kiln_core::{StoreError, StoreResult};

use crate::claims::{Claim, bind_claim};
use crate::db::db_err;
use crate::held::HeldPool;

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
pub(crate) struct EventToWrite<'a> {
    pub(crate) event: &'a NewEvent,
    pub(crate) id: EventId,
    /// `(content, tool_name, tool_args)` when the event is a step.
    pub(crate) step: Option<(String, String, Value)>,
    pub(crate) tokens: Usage,
    pub(crate) body: String,
    /// What the session's totals grow by (terminal events only).
    pub(crate) added: Usage,
    pub(crate) added_ms: i64,
}

impl<'a> EventToWrite<'a> {
    pub(crate) fn new(event: &'a NewEvent) -> StoreResult<EventToWrite<'a>> {
        let body = serde_json::to_string(&event.body)
            .map_err(|e| StoreError::Database(format!("encoding an agent event: {e}")))?;
        let (added, added_ms) = event
            .totals
            .map_or((Usage::default(), 0), |t| (t.usage, t.duration_ms));
        Ok(EventToWrite {
            event,
            id: EventId::generate(),
            step: event.body.step_fields(),
            tokens: event.body.tokens().unwrap_or_default(),
            body,
            added,
            added_ms,
        })
    }

    /// The event as stored, numbered `seq`, with the session's step count
    /// after it.
    pub(crate) fn stored(self, turn: &TurnId, seq: i64, step_count: i64) -> StoredEvent {
        StoredEvent {
            id: self.id,
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

/// How an append is sent: every statement of one event's append goes to the
/// database in one round trip (on SQLite as one multi-statement query, on
/// PostgreSQL as one statement whose CTEs do the writes), since each round
/// trip, not the work in it, is most of an append's cost.
#[derive(Clone, Copy)]
pub(crate) enum AppendSql {
    /// SQLite, inside the caller's transaction.
    Sqlite,
    /// SQLite, in a transaction of its own opened and committed by the same
    /// query (the lone append: one round trip in all).
    SqliteAlone,
    /// PostgreSQL, with a `NOTIFY` of the new seq to other servers (sent
    /// when the transaction commits) or without.
    Postgres { notify: bool },
}

impl AppendSql {
    /// Inside the caller's transaction, telling other servers of the new
    /// seq on PostgreSQL.
    pub(crate) fn in_transaction(kind: crate::db::DatabaseKind) -> AppendSql {
        match kind {
            crate::db::DatabaseKind::Sqlite => AppendSql::Sqlite,
            crate::db::DatabaseKind::Postgres => AppendSql::Postgres { notify: true },
        }
    }
}

/// Numbers the event on the session row under the turn's claim (`$10`); the
/// row's lock, on PostgreSQL, orders concurrent appends. Parameters: `$1`
/// 1 for a step, `$2` the new status or NULL, `$3` the event's time, `$4`
/// whether it ends the turn, `$5`–`$7` what the session's totals grow by,
/// `$8` the session, `$9` the project.
const CLAIM_SEQ_SQL: &str = "UPDATE agent_sessions SET last_seq = last_seq + 1, step_count = step_count + $1, \
     status = COALESCE($2, status), updated_at = $3, \
     turn_id = CASE WHEN $4 THEN NULL ELSE turn_id END, \
     lease_until = CASE WHEN $4 THEN NULL ELSE lease_until END, \
     prompt_tokens = prompt_tokens + $5, completion_tokens = completion_tokens + $6, \
     duration_ms = duration_ms + $7 \
     WHERE id = $8 AND project_id = $9 AND turn_id = $10 \
     RETURNING last_seq, step_count, status, prompt_tokens, completion_tokens";

/// The event row, numbered from the claimed session row `s`: `$11` its id,
/// `$12`–`$19` its columns.
const INSERT_EVENT_SQL: &str = "INSERT INTO agent_events (id, project_id, session_id, seq, turn_id, step_index, \
     step_type, body, content, tool_name, tool_args, duration_ms, prompt_tokens, completion_tokens, created_at) \
     SELECT $11, $9, $8, s.last_seq, $10, CASE WHEN $1 = 1 THEN s.step_count - 1 END, \
     $12, $13, $14, $15, $16, $17, $18, $19, $3";

/// The webhook outbox: one delivery per webhook of the session that wants
/// the event (`$20` its type, `$21` the session's error, `$22` the
/// subscription pattern), with the session's status and totals after the
/// event. A delivery's id is the event's and the webhook's position, the
/// same on every attempt.
const OUTBOX_SQL: &str = "INSERT INTO webhook_deliveries (id, project_id, session_id, webhook_id, url, \
     event_type, run_id, session_status, session_error, prompt_tokens, completion_tokens, state, attempt, \
     created_at, next_attempt_at) \
     SELECT $11 || '-' || CAST(w.position AS TEXT), w.project_id, w.session_id, w.id, w.url, $20, $10, \
     s.status, $21, s.prompt_tokens, s.completion_tokens, 'pending', 0, $3, $3";

/// The webhooks an event goes to, joined with the claimed session row `s`.
const OUTBOX_WHERE: &str = "w.session_id = $8 AND w.project_id = $9 AND (w.events = '' OR w.events LIKE $22)";

/// The query text of one append; the first row it returns is the claimed
/// session's `last_seq` and `step_count`, and none when the turn no longer
/// holds the session (then nothing is written).
pub(crate) fn append_sql(how: AppendSql, outbox: bool) -> &'static str {
    static TEXTS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        let mut texts = Vec::with_capacity(8);
        for outbox in [false, true] {
            // SQLite has no writing CTEs: the statements run in order, each
            // writing only when the one before it wrote a row (`changes()`).
            let mut sqlite = format!(
                "{CLAIM_SEQ_SQL}; {INSERT_EVENT_SQL} FROM agent_sessions s WHERE s.id = $8 AND changes() = 1"
            );
            if outbox {
                sqlite.push_str(&format!(
                    "; {OUTBOX_SQL} FROM session_webhooks w JOIN agent_sessions s ON s.id = w.session_id \
                     WHERE {OUTBOX_WHERE} AND changes() = 1"
                ));
            }
            texts.push(sqlite.clone());
            texts.push(format!("BEGIN IMMEDIATE; {sqlite}; COMMIT"));
            for notify in [false, true] {
                let mut pg = format!("WITH s AS ({CLAIM_SEQ_SQL}), e AS ({INSERT_EVENT_SQL} FROM s)");
                if outbox {
                    pg.push_str(&format!(
                        ", o AS ({OUTBOX_SQL} FROM session_webhooks w, s WHERE {OUTBOX_WHERE})"
                    ));
                }
                pg.push_str(" SELECT s.last_seq, s.step_count");
                if notify {
                    // The payload is `encode_signal`'s.
                    pg.push_str(&format!(
                        ", CAST(pg_notify('{CHANNEL}', 'e:' || s.last_seq || ':' || $8) AS TEXT) AS notified"
                    ));
                }
                pg.push_str(" FROM s");
                texts.push(pg);
            }
        }
        texts
    });
    let variant = match how {
        AppendSql::Sqlite => 0,
        AppendSql::SqliteAlone => 1,
        AppendSql::Postgres { notify: false } => 2,
        AppendSql::Postgres { notify: true } => 3,
    };
    &TEXTS[usize::from(outbox) * 4 + variant]
}

/// Binds one event's append parameters (`$1`–`$22`, see [`append_sql`])
/// onto `query`: the webhook ones only when the event goes to webhooks,
/// unless `pad`, which binds them as NULL so that the next event's
/// parameters keep their numbers. (A macro because the query's type differs
/// per backend.)
macro_rules! bind_event {
    ($query:expr, $project_id:expr, $id:expr, $turn:expr, $row:expr, $pad:expr) => {{
        let (project_id, id, turn, row): (
            &kiln_core::ids::ProjectId,
            &kiln_core::ids::SessionId,
            &kiln_core::ids::TurnId,
            &$crate::event_log::EventToWrite<'_>,
        ) = ($project_id, $id, $turn, $row);
        let event = row.event;
        let (content, tool_name, tool_args) = row.step_columns();
        let query = $query
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
            .bind(row.id.as_str())
            .bind(event.body.kind().storage_name())
            .bind(row.body.as_str())
            .bind(content)
            .bind(tool_name)
            .bind(tool_args)
            .bind(event.duration_ms)
            .bind(i64::from(row.tokens.prompt_tokens))
            .bind(i64::from(row.tokens.completion_tokens));
        match kiln_core::webhooks::outbox_event(&event.body) {
            Some((hook, error)) => query
                .bind(hook.as_str())
                .bind(error)
                .bind(format!("%,{},%", hook.as_str())),
            None if $pad => query.bind(None::<&str>).bind(None::<&str>).bind(None::<&str>),
            None => query,
        }
    }};
}
pub(crate) use bind_event;

/// The append query for one event (see [`append_sql`]), bound and ready to
/// run on the caller's connection or transaction. Run it with `fetch_all`:
/// on SQLite `fetch_optional` would stop after the first statement's row.
macro_rules! append_query {
    ($how:expr, $project_id:expr, $id:expr, $turn:expr, $row:expr) => {{
        let row: &$crate::event_log::EventToWrite<'_> = $row;
        let outbox = kiln_core::webhooks::outbox_event(&row.event.body).is_some();
        $crate::event_log::bind_event!(
            sqlx::query($crate::event_log::append_sql($how, outbox)),
            $project_id,
            $id,
            $turn,
            row,
            false
        )
    }};
}
pub(crate) use append_query;

/// The `(last_seq, step_count)` an append's query returned, or `None` when
/// the turn's claim was gone.
pub(crate) fn claimed_seq<R: sqlx::Row>(rows: &[R]) -> StoreResult<Option<(i64, i64)>>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
    rows.first().map(seq_and_steps).transpose()
}

/// One claimed session row's `(last_seq, step_count)`.
fn seq_and_steps<R: sqlx::Row>(row: &R) -> StoreResult<(i64, i64)>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
    Ok((
        row.try_get("last_seq").map_err(db_err)?,
        row.try_get("step_count").map_err(db_err)?,
    ))
}

/// Appends one event inside the caller's transaction under `turn`'s claim
/// (numbered on the session row, inserted, its webhook deliveries written),
/// in one round trip. Evaluates to `None` when the turn no longer holds the
/// session (nothing was written); errors return from the caller.
macro_rules! append_row {
    ($tx:ident, $how:expr, $project_id:expr, $id:expr, $turn:expr, $event:expr) => {{
        let turn: &kiln_core::ids::TurnId = $turn;
        let row = $crate::event_log::EventToWrite::new($event)?;
        let rows = $crate::event_log::append_query!($how, $project_id, $id, turn, &row)
            .fetch_all(&mut *$tx)
            .await
            .map_err($crate::db::db_err)?;
        $crate::event_log::claimed_seq(&rows)?.map(|(seq, step_count)| row.stored(turn, seq, step_count))
    }};
}
pub(crate) use append_row;

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
    pub(crate) fn start(write: HeldPool) -> AppendQueue {
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
/// claim is rolled back to its savepoint and answered `None`. A lone job
/// (the common case when turns are few) goes in one round trip.
async fn write_group(
    write: &HeldPool,
    group: &[(AppendJob, tokio::sync::oneshot::Sender<AppendReply>)],
) -> StoreResult<Vec<Option<Vec<StoredEvent>>>> {
    if let [(job, _)] = group
        && let Some((_, before_last)) = job.events.split_last()
        && before_last.iter().all(|e| e.totals.is_none())
    {
        return write_alone(write, job).await.map(|stored| vec![stored]);
    }
    let mut held = write.acquire().await.map_err(db_err)?;
    let mut tx = sqlx::Connection::begin_with(&mut *held, "BEGIN IMMEDIATE")
        .await
        .map_err(db_err)?;
    let mut outcomes = Vec::with_capacity(group.len());
    // A job alone in its transaction needs no savepoint: the transaction is
    // its all-or-nothing.
    let shared = group.len() > 1;
    for (job, _) in group {
        let multiple = shared && job.events.len() > 1;
        if multiple {
            sqlx::query("SAVEPOINT job")
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let mut stored = Vec::with_capacity(job.events.len());
        let mut lost = false;
        for event in &job.events {
            match append_row!(tx, AppendSql::Sqlite, &job.project_id, &job.id, &job.turn, event) {
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
        if lost && !shared {
            tx.rollback().await.map_err(db_err)?;
            return Ok(vec![None]);
        }
        outcomes.push((!lost).then_some(stored));
    }
    tx.commit().await.map_err(db_err)?;
    Ok(outcomes)
}

/// Parameters of one event's append.
const EVENT_PARAMS: usize = 22;

/// A job's events appended in a transaction the query itself opens and
/// commits: one round trip. Only for jobs whose events keep the turn's claim
/// up to the last (no terminal event before it), so that the claim holds for
/// all of them or for none. The transaction is not sqlx's, so on an error
/// it is rolled back here before the connection goes back to the pool; and
/// it runs only in the queue's task, which nothing cancels (a future
/// dropped midway would leave the connection inside the transaction).
async fn write_alone(write: &HeldPool, job: &AppendJob) -> StoreResult<Option<Vec<StoredEvent>>> {
    let rows = job
        .events
        .iter()
        .map(EventToWrite::new)
        .collect::<StoreResult<Vec<_>>>()?;
    let mut conn = write.acquire().await.map_err(db_err)?;
    let written = if let [row] = rows.as_slice() {
        append_query!(AppendSql::SqliteAlone, &job.project_id, &job.id, &job.turn, row)
            .fetch_all(&mut *conn)
            .await
    } else {
        // Each event's statements with its parameters numbered after the
        // ones before it.
        let mut sql = String::from("BEGIN IMMEDIATE");
        for (i, row) in rows.iter().enumerate() {
            let outbox = kiln_core::webhooks::outbox_event(&row.event.body).is_some();
            sql.push_str("; ");
            sql.push_str(&renumbered(
                append_sql(AppendSql::Sqlite, outbox),
                i * EVENT_PARAMS,
            ));
        }
        sql.push_str("; COMMIT");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in &rows {
            query = bind_event!(query, &job.project_id, &job.id, &job.turn, row, true);
        }
        query.fetch_all(&mut *conn).await
    };
    let claimed = match written {
        Ok(claimed) => claimed,
        Err(e) => {
            // Nothing to roll back when the error came from BEGIN or COMMIT
            // itself ended the transaction; that error is not the news.
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            return Err(db_err(e));
        }
    };
    if claimed.is_empty() {
        return Ok(None);
    }
    if claimed.len() != rows.len() {
        return Err(StoreError::Database(format!(
            "an append of {} events numbered {}",
            rows.len(),
            claimed.len()
        )));
    }
    let mut stored = Vec::with_capacity(rows.len());
    for (row, claimed) in rows.into_iter().zip(&claimed) {
        let (seq, step_count) = seq_and_steps(claimed)?;
        stored.push(row.stored(&job.turn, seq, step_count));
    }
    Ok(Some(stored))
}

/// Claims a free session (`claim_sql`, parameters `$1`–`$7`) and appends
/// the turn's first event under the claim, in a transaction the query opens
/// and commits: one round trip. `None` when the session was not free (or
/// does not exist): nothing was written.
///
/// The query runs in a task of its own: only its last statement commits,
/// so a caller's future dropped midway (a client that went away) would
/// leave the connection inside the transaction, and every write after it
/// uncommitted.
pub(crate) async fn claim_and_append(
    write: &HeldPool,
    claim_sql: &str,
    claim: Claim,
    first: &NewEvent,
) -> StoreResult<Option<StoredEvent>> {
    let outbox = kiln_core::webhooks::outbox_event(&first.body).is_some();
    let sql = format!(
        "BEGIN IMMEDIATE; {claim_sql}; {}; COMMIT",
        renumbered(append_sql(AppendSql::Sqlite, outbox), CLAIM_PARAMS)
    );
    let (write, first) = (write.clone(), first.clone());
    tokio::spawn(async move {
        let row = EventToWrite::new(&first)?;
        let mut conn = write.acquire().await.map_err(db_err)?;
        let query = bind_claim(sqlx::query(sqlx::AssertSqlSafe(sql)), &claim);
        let written = bind_event!(query, &claim.project, &claim.session, &claim.turn, &row, false)
            .fetch_all(&mut *conn)
            .await;
        let claimed = match written {
            Ok(claimed) => claimed,
            Err(e) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                return Err(db_err(e));
            }
        };
        Ok(claimed_seq(&claimed)?.map(|(seq, step_count)| row.stored(&claim.turn, seq, step_count)))
    })
    .await
    .map_err(|e| StoreError::Database(format!("claiming the session failed: {e}")))?
}

/// Parameters of [`crate::claims::claim_sql`].
const CLAIM_PARAMS: usize = 7;

/// `sql` with every parameter `$n` renumbered `$(n + by)`.
fn renumbered(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 32);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n: usize = rest[..digits].parse().unwrap_or(0);
        out.push_str(&(n + by).to_string());
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_renumbered_past_the_events_before() {
        assert_eq!(
            renumbered("a = $1 AND b = $22, $3", 22),
            "a = $23 AND b = $44, $25"
        );
        assert_eq!(renumbered("no parameters", 22), "no parameters");
        // Every event's text is numbered within its own 22.
        for outbox in [false, true] {
            let text = append_sql(AppendSql::Sqlite, outbox);
            let highest = text
                .split('$')
                .skip(1)
                .filter_map(|p| {
                    p.split(|c: char| !c.is_ascii_digit())
                        .next()?
                        .parse::<usize>()
                        .ok()
                })
                .max();
            assert_eq!(highest, Some(if outbox { EVENT_PARAMS } else { 19 }));
        }
    }
}
