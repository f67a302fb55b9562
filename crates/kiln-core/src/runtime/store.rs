//! The storage port of the agent runtime.
//!
//! A session's turn is a claim on its row (`turn_id`, with a lease the
//! owner renews): only one turn runs per session, and every event of a turn
//! is appended under that claim, so a turn that was ended from elsewhere (a
//! cancel on another server, a reaped lease) cannot write after its end.
//! Appends number events per session without gaps and, on PostgreSQL,
//! notify other servers in the same transaction.

use std::pin::Pin;

use async_trait::async_trait;
use futures_core::Stream;
use serde_json::{Map, Value};

use crate::audit::NewAudit;
use crate::error::StoreResult;
use crate::ids::{ApiKeyId, InputRequestId, ProjectId, SessionId, ToolCallId, TurnId};
use crate::llm::Usage;
use crate::page::Page;
use crate::runtime::event::{EventBody, StoredEvent};
use crate::runtime::session::{Session, SessionStatus, Step};
use crate::time::Timestamp;

/// What `begin_turn` found.
#[derive(Debug, Clone, PartialEq)]
pub enum BeginTurn {
    /// The session is claimed for the turn (and its first event logged,
    /// when one was given).
    Started(Option<Box<StoredEvent>>),
    /// Another turn holds the session.
    Busy,
    /// No such session in the project.
    NotFound,
}

/// One event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub body: EventBody,
    /// Milliseconds since the previous event of the turn.
    pub duration_ms: i64,
    pub at: Timestamp,
    /// The session's status after this event (for non-terminal events:
    /// `running` or `awaiting_input`; `None` leaves it).
    pub status: Option<SessionStatus>,
    /// For terminal events: what the turn adds to the session's totals. The
    /// append also releases the claim and sets `status`.
    pub totals: Option<TurnTotals>,
}

impl NewEvent {
    /// The message that starts a turn (a step, never streamed).
    pub fn user_message(content: &str, at: Timestamp) -> NewEvent {
        NewEvent {
            body: EventBody::UserMessage {
                content: content.to_owned(),
            },
            duration_ms: 0,
            at,
            status: None,
            totals: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnTotals {
    pub usage: Usage,
    pub duration_ms: i64,
}

/// A pending or answered `input()` request.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRequest {
    pub id: InputRequestId,
    pub project_id: ProjectId,
    pub session_id: SessionId,
    pub turn_id: TurnId,
    /// `confirm`, `choice` or `text`.
    pub input_type: String,
    pub message: String,
    pub options: Vec<String>,
    pub placeholder: String,
    /// The answer, once given.
    pub value: Option<Value>,
    pub created_at: Timestamp,
}

/// What `answer_input` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerInput {
    Answered,
    /// It had an answer already; nothing was written.
    AlreadyAnswered,
    NotFound,
}

/// A message waiting in its session's queue (`POST /agents/:id/messages`
/// on a busy session). It runs as the turn `id` once the session is free.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedTurn {
    pub id: TurnId,
    pub project_id: ProjectId,
    pub session_id: SessionId,
    /// The key that queued it: the turn acts as this key.
    pub key_id: ApiKeyId,
    pub message: String,
    /// 1-based place in the queue, as read (ignored on insert).
    pub position: i64,
    pub created_at: Timestamp,
}

/// What `enqueue_turn` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Enqueue {
    /// The session was free and its queue empty: the turn holds the session
    /// now, its user message logged.
    Started(Box<StoredEvent>),
    /// Queued at this 1-based position.
    Queued {
        position: i64,
    },
    /// The queue holds its maximum already; nothing written.
    Full,
    NotFound,
}

/// What `reorder_queue` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Reorder {
    /// The queue in its new order.
    Done(Vec<QueuedTurn>),
    /// This id is not a queued turn of the session; nothing written.
    Unknown(TurnId),
}

/// A model's call of a client-side tool, answered through
/// `POST /agents/:id/tool-results`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallRequest {
    pub id: ToolCallId,
    pub project_id: ProjectId,
    pub session_id: SessionId,
    pub turn_id: TurnId,
    pub tool: String,
    pub args: Map<String, Value>,
    /// The client's answer, once given: `Ok(result)` or `Err(error)`.
    pub outcome: Option<Result<Value, String>>,
    pub created_at: Timestamp,
}

/// What `resolve_tool_call` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveToolCall {
    Resolved,
    /// It had an answer already; nothing was written.
    AlreadyResolved,
    NotFound,
}

/// What `update_session_data` did.
#[derive(Debug, Clone, PartialEq)]
pub enum DataUpdate {
    /// The data after the change.
    Updated(Map<String, Value>),
    /// No such session, or the turn no longer holds it.
    Gone,
    /// The data would have been this many bytes of JSON, over the cap.
    TooLarge { bytes: usize },
}

/// Cross-server news about a session. Appends carry their own (the store
/// sends `Event` as part of the append); the runtime sends the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSignal {
    /// Events up to `seq` are in the log.
    Event { session_id: SessionId, seq: i64 },
    /// Stop the session's turn `turn_id` (if it is still the running one).
    Cancel { session_id: SessionId, turn_id: TurnId },
    /// An input request of the session was answered.
    Input { session_id: SessionId },
    /// A session was created, changed or removed (for realtime watchers);
    /// `origin` names the server that noted it.
    Session {
        origin: String,
        change: crate::runtime::news::SessionChange,
        project_id: ProjectId,
        session_id: SessionId,
    },
}

pub type SignalStream = Pin<Box<dyn Stream<Item = AgentSignal> + Send>>;

#[async_trait]
pub trait AgentStore: Send + Sync {
    async fn create_session(&self, session: &Session, audit: &NewAudit) -> StoreResult<()>;
    async fn get_session(&self, project_id: &ProjectId, id: &SessionId) -> StoreResult<Option<Session>>;
    /// Newest first.
    async fn list_sessions(&self, project_id: &ProjectId, page: Page) -> StoreResult<Vec<Session>>;
    /// Deletes the session with its events and input requests. `Ok(false)`
    /// when it does not exist.
    async fn delete_session(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        audit: &NewAudit,
    ) -> StoreResult<bool>;
    /// The sessions started on `agent_id` that have a running turn.
    async fn running_sessions_of_agent(
        &self,
        project_id: &ProjectId,
        agent_id: &crate::ids::AgentId,
    ) -> StoreResult<Vec<SessionId>>;
    /// The session's steps by `step_index`.
    async fn session_steps(&self, project_id: &ProjectId, id: &SessionId) -> StoreResult<Vec<Step>>;

    /// Claims the session for `turn` (status `running`, lease until
    /// `lease_until`) unless a turn holds it, and appends the turn's first
    /// event (if given) in the same transaction.
    async fn begin_turn(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        turn: &TurnId,
        lease_until: Timestamp,
        first: Option<&NewEvent>,
    ) -> StoreResult<BeginTurn>;
    /// Appends `events` to the session's log under `turn`'s claim, in one
    /// transaction, each numbered one past the last; a step gets the next
    /// `step_index`. `Ok(None)` when the turn no longer holds the session
    /// (nothing written).
    async fn append_events(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        turn: &TurnId,
        events: &[NewEvent],
    ) -> StoreResult<Option<Vec<StoredEvent>>>;
    /// [`AgentStore::append_events`] for one event.
    async fn append_event(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        turn: &TurnId,
        event: &NewEvent,
    ) -> StoreResult<Option<StoredEvent>> {
        let appended = self
            .append_events(project_id, id, turn, std::slice::from_ref(event))
            .await?;
        Ok(appended.and_then(|mut events| events.pop()))
    }
    /// Up to `limit` events with `seq > after`, in order.
    async fn events_after(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredEvent>>;
    /// Extends the lease of every turn this server claimed, in one
    /// statement, and names the turns it still holds.
    async fn renew_server_turns(&self, lease_until: Timestamp) -> StoreResult<Vec<(SessionId, TurnId)>>;
    /// Turns whose lease ended before `now`, across projects (for the
    /// reaper); with `mine`, also every turn this server claimed (at start,
    /// after a crash: they cannot be running).
    async fn expired_turns(
        &self,
        now: Timestamp,
        mine: bool,
    ) -> StoreResult<Vec<(ProjectId, SessionId, TurnId)>>;

    /// Merges `changes` into the session's data (a `null` value removes the
    /// key) and returns the data after the change, unless its JSON would be
    /// longer than `max_bytes` (nothing written). With `turn`, only while
    /// that turn holds the session.
    async fn update_session_data(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        turn: Option<&TurnId>,
        changes: &Map<String, Value>,
        max_bytes: usize,
    ) -> StoreResult<DataUpdate>;

    async fn create_input_request(&self, request: &InputRequest) -> StoreResult<()>;
    async fn get_input_request(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        id: &InputRequestId,
    ) -> StoreResult<Option<InputRequest>>;
    /// Records the answer unless one was recorded already.
    async fn answer_input(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        id: &InputRequestId,
        value: &Value,
        at: Timestamp,
    ) -> StoreResult<AnswerInput>;

    /// Starts `queued` as the session's turn at once when the session is
    /// free and its queue empty (the claim of [`AgentStore::begin_turn`],
    /// with `first` logged), else puts it at the end of the queue unless
    /// the queue holds `max` turns already. One transaction.
    async fn enqueue_turn(
        &self,
        queued: &QueuedTurn,
        lease_until: Timestamp,
        first: &NewEvent,
        max: i64,
    ) -> StoreResult<Enqueue>;
    /// Claims the free session for the first turn of its queue, takes that
    /// turn off the queue and logs its user message, in one transaction, so
    /// each queued turn runs once whichever server drains it. `Ok(None)`:
    /// the session is busy or gone, or its queue is empty.
    async fn begin_queued_turn(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        lease_until: Timestamp,
        at: Timestamp,
    ) -> StoreResult<Option<(QueuedTurn, StoredEvent)>>;
    /// The session's queue, first to run first.
    async fn queued_turns(&self, project_id: &ProjectId, id: &SessionId) -> StoreResult<Vec<QueuedTurn>>;
    /// Takes a turn off the queue. `Ok(false)`: it is not queued (any more).
    async fn delete_queued_turn(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        queued: &TurnId,
    ) -> StoreResult<bool>;
    /// Puts `order` at the front of the queue in that order, the rest after
    /// them as they were.
    async fn reorder_queue(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        order: &[TurnId],
    ) -> StoreResult<Reorder>;
    /// Free sessions with queued turns, across projects (the drain sweep).
    async fn sessions_with_ready_queue(&self, limit: i64) -> StoreResult<Vec<(ProjectId, SessionId)>>;

    async fn create_tool_call(&self, call: &ToolCallRequest) -> StoreResult<()>;
    async fn get_tool_call(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        id: &ToolCallId,
    ) -> StoreResult<Option<ToolCallRequest>>;
    /// Records the client's answer unless one was recorded already.
    async fn resolve_tool_call(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        id: &ToolCallId,
        outcome: &Result<Value, String>,
        at: Timestamp,
    ) -> StoreResult<ResolveToolCall>;

    /// Tells the other servers (PostgreSQL `NOTIFY`; nothing on SQLite).
    /// Writes (or replaces) a captured file, refusing past the session's
    /// quotas (`runtime::files`) in the same transaction.
    async fn write_session_file(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        path: &str,
        content: &[u8],
        at: Timestamp,
    ) -> StoreResult<crate::runtime::files::WriteFile>;
    async fn read_session_file(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        path: &str,
    ) -> StoreResult<Option<crate::runtime::files::SessionFile>>;
    /// By path.
    async fn list_session_files(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
    ) -> StoreResult<Vec<crate::runtime::files::FileEntry>>;
    /// Writes one audit entry (a turn started, an input answered, a cancel
    /// asked for: requests whose data changes the turn writes itself).
    async fn record_audit(&self, audit: &NewAudit) -> StoreResult<()>;
    async fn notify(&self, signal: &AgentSignal) -> StoreResult<()>;
    /// Tells other servers several things at once (one statement on
    /// PostgreSQL); in order, though identical signals may arrive once.
    async fn notify_all(&self, signals: &[AgentSignal]) -> StoreResult<()> {
        for signal in signals {
            self.notify(signal).await?;
        }
        Ok(())
    }
    /// Signals from other servers, or `None` when there can be none (SQLite
    /// serves one server per file).
    async fn listen(&self) -> StoreResult<Option<SignalStream>>;
}
