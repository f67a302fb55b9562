//! The agent runtime's operations: sessions, turns, input, cancel, reading the
//! event log, and the upkeep every server runs (signals, reaping turns whose
//! server died).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::agents::Target;
use crate::audit::{Actor, NewAudit, actions};
use crate::auth::AuthContext;
use crate::error::{EntityKind, Error, Refusal, Result};
use crate::ids::{AgentId, AgentVersionId, IndexId, InputRequestId, ProjectId, SessionId, TurnId};
use crate::llm::Usage;
use crate::page::Page;
use crate::runtime::event::TurnErrorCode;
use crate::runtime::event::{EventBody, StoredEvent};
use crate::runtime::hub::{Stop, Wake};
use crate::runtime::news::SessionChange;
use crate::runtime::store::{AgentSignal, AnswerInput, BeginTurn, NewEvent, TurnTotals};
use crate::runtime::turn::Turn;
use crate::runtime::{AgentRuntime, Session, SessionStatus, Step, history, host, prompt};
use crate::time::now;

pub const SESSIONS_DEFAULT_LIMIT: i64 = 50;
pub const SESSIONS_MAX_LIMIT: i64 = 200;
/// Largest user message of a turn, in bytes.
pub const MAX_TURN_MESSAGE_BYTES: usize = 256 * 1024;
/// Events read from the log per round by a reader.
const READ_BATCH: i64 = 256;
/// Events a turn reads back as its history, at most (about 200 turns).
const HISTORY_EVENTS: i64 = 1000;
/// Events per read while catching a history up.
const HISTORY_BATCH: i64 = 1000;
/// Failed log reads in a row before a reader gives up with an error event.
const READ_ATTEMPTS: u32 = 3;
/// How long `cancel` waits for the turn's own end before ending it itself.
const CANCEL_WAIT: Duration = Duration::from_secs(2);
/// How often every server looks for free sessions with queued turns.
const QUEUE_SWEEP: Duration = Duration::from_secs(1);

/// `POST /agents` input, already decoded.
#[derive(Debug, Clone, Default)]
pub struct CreateSession {
    pub agent_version_id: Option<String>,
    pub agent_id: Option<String>,
    pub target: Option<String>,
    pub title: Option<String>,
    pub system_prompt: Option<String>,
    pub model: Option<String>,
    pub tools: Option<Vec<String>>,
    pub metadata: Option<Value>,
    pub index_ids: Option<Vec<String>>,
    /// Tools the client runs (checked by `client_tools::check_client_tools`).
    pub client_tools: Option<Vec<crate::llm::ToolSpec>>,
}

/// What an event reader yields.
#[derive(Debug, Clone)]
pub enum FollowItem {
    Event(Arc<StoredEvent>),
    /// Nothing happened for a while (write a heartbeat).
    Idle,
}

pub type EventFollow = std::pin::Pin<Box<dyn Stream<Item = FollowItem> + Send>>;

impl AgentRuntime {
    /// The indexes the session's `search` covers (`None`: search is off).
    async fn scope_indexes(&self, ctx: &AuthContext, scope: Option<&[IndexId]>) -> Vec<crate::rag::Index> {
        let all = self.rag.list_indexes(ctx).await.unwrap_or_default();
        match scope {
            None => all,
            Some(ids) => all.into_iter().filter(|i| ids.contains(&i.id)).collect(),
        }
    }

    /// The system prompt of a session's turns.
    pub(crate) async fn agent_prompt(&self, ctx: &AuthContext, session: &Session) -> String {
        let indexes = match session.index_ids.as_deref() {
            Some([]) => None,
            scope => Some(self.scope_indexes(ctx, scope).await),
        };
        prompt::system_prompt(
            indexes.as_deref(),
            &session.system_prompt,
            &session.modules,
            &session.mcp_servers,
        )
    }

    /// `GET /agents/system-prompt`: what an ad-hoc session of this project sees.
    pub async fn agent_system_prompt(&self, ctx: &AuthContext) -> Result<String> {
        let indexes = self.scope_indexes(ctx, None).await;
        Ok(prompt::system_prompt(Some(&indexes), "", &[], &[]))
    }

    pub async fn create_session(&self, ctx: &AuthContext, input: CreateSession) -> Result<Session> {
        let target = match input.target.as_deref() {
            Some(target) => Target::parse(target)?,
            None => Target::Live,
        };
        let agent_id = input
            .agent_id
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(AgentId::from_string);
        let version_id = input
            .agent_version_id
            .as_deref()
            .filter(|v| !v.is_empty())
            .map(AgentVersionId::from_string);
        if target == Target::Draft && agent_id.is_none() {
            return Err(Error::validation(
                "target `draft` needs an agent_id",
                Some("target"),
            ));
        }
        // A session on an agent starts from its version (or draft); inline
        // fields override it.
        let profile = if agent_id.is_some() || version_id.is_some() {
            Some(
                self.agents
                    .session_profile(ctx, agent_id.as_ref(), version_id.as_ref(), target)
                    .await?,
            )
        } else {
            None
        };
        let requested_tools = match (input.tools, &profile) {
            (Some(tools), _) => tools,
            (None, Some(profile)) => profile.tools.clone(),
            (None, None) => Vec::new(),
        };
        let mut tools = Vec::new();
        for tool in requested_tools {
            if !crate::runtime::session::TOOL_NAMES.contains(&tool.as_str()) {
                return Err(Error::refused(
                    Refusal::UnknownTool,
                    format!(
                        "unknown tool: {tool} (known: {})",
                        crate::runtime::session::TOOL_NAMES.join(", ")
                    ),
                ));
            }
            if !tools.contains(&tool) {
                tools.push(tool);
            }
        }
        let client_tools =
            crate::runtime::client_tools::check_client_tools(input.client_tools.unwrap_or_default())?;
        let index_ids = match (input.index_ids, &profile) {
            // The agent's indexes, those that still exist.
            (None, Some(profile)) => {
                let known = self.rag.list_indexes(ctx).await?;
                Some(
                    profile
                        .stores
                        .iter()
                        .map(|id| IndexId::from_string(id.clone()))
                        .filter(|id| known.iter().any(|i| i.id == *id))
                        .collect(),
                )
            }
            (None, None) => None,
            (Some(ids), _) => {
                let known = self.rag.list_indexes(ctx).await?;
                let mut scope = Vec::new();
                for id in ids {
                    let id = IndexId::from_string(id);
                    if !known.iter().any(|i| i.id == id) {
                        return Err(Error::validation(
                            format!("index `{id}` is not in this project"),
                            Some("index_ids"),
                        ));
                    }
                    if !scope.contains(&id) {
                        scope.push(id);
                    }
                }
                Some(scope)
            }
        };
        let model = input.model.filter(|m| !m.trim().is_empty()).or_else(|| {
            profile
                .as_ref()
                .map(|p| p.model.clone())
                .filter(|m| !m.is_empty())
        });
        let (model, _) = self.gateway.resolve_model(ctx, model.as_deref()).await?;
        let system_prompt = input
            .system_prompt
            .or_else(|| profile.as_ref().map(|p| p.persona.clone()))
            .unwrap_or_default();
        let at = now();
        let session = Session {
            id: SessionId::generate(),
            project_id: ctx.project.id.clone(),
            title: input.title.unwrap_or_default(),
            system_prompt,
            model: model.to_string(),
            tools,
            client_tools,
            metadata: input
                .metadata
                .unwrap_or_else(|| Value::Object(Default::default())),
            status: SessionStatus::Active,
            index_ids,
            data: Default::default(),
            turn_id: None,
            usage: Usage::default(),
            step_count: 0,
            last_seq: 0,
            duration_ms: 0,
            created_at: at,
            updated_at: at,
            agent_id: profile.as_ref().map(|p| p.agent_id.clone()),
            modules: profile.as_ref().map(|p| p.modules.clone()).unwrap_or_default(),
            mcp_servers: profile
                .as_ref()
                .map(|p| p.mcp_servers.clone())
                .unwrap_or_default(),
            agent_version_id: profile.and_then(|p| p.version_id),
        };
        let mut audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::AGENT_SESSION_CREATE,
            session.id.as_str(),
        );
        if let Some(agent_id) = &session.agent_id {
            audit = audit.meta("agent_id", agent_id.as_str());
        }
        if let Some(version_id) = &session.agent_version_id {
            audit = audit.meta("agent_version_id", version_id.as_str());
        }
        self.store.create_session(&session, &audit).await?;
        self.news.note(
            SessionChange::Created,
            &ctx.project.id,
            &session.id,
            Some(Arc::new(session.clone())),
        );
        Ok(session)
    }

    pub async fn list_sessions(
        &self,
        ctx: &AuthContext,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> Result<Vec<Session>> {
        let page = Page::new(limit, offset, SESSIONS_DEFAULT_LIMIT, SESSIONS_MAX_LIMIT);
        Ok(self.store.list_sessions(&ctx.project.id, page).await?)
    }

    pub async fn get_session(&self, ctx: &AuthContext, id: &SessionId) -> Result<Session> {
        self.store
            .get_session(&ctx.project.id, id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Session, id))
    }

    pub async fn session_steps(&self, ctx: &AuthContext, id: &SessionId) -> Result<(Session, Vec<Step>)> {
        let session = self.get_session(ctx, id).await?;
        let steps = self.store.session_steps(&ctx.project.id, id).await?;
        Ok((session, steps))
    }

    /// Deletes the session. A running turn ends first (its readers get an
    /// `error` with code `session_deleted`), wherever it runs.
    pub async fn delete_session(&self, ctx: &AuthContext, id: &SessionId) -> Result<()> {
        let session = self.get_session(ctx, id).await?;
        if let Some(turn_id) = &session.turn_id {
            let stop = Stop::new(
                TurnErrorCode::SessionDeleted,
                "the session was deleted",
                SessionStatus::Active,
            );
            self.end_turn(&ctx.project.id, id, turn_id, stop.clone()).await;
            if !self.hub.stop_local(id, Some(turn_id), stop)
                && let Err(e) = self
                    .store
                    .notify(&AgentSignal::Cancel {
                        session_id: id.clone(),
                        turn_id: turn_id.clone(),
                    })
                    .await
            {
                tracing::warn!(error = %e, "telling other servers about a deleted session failed");
            }
        }
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::AGENT_SESSION_DELETE,
            id.as_str(),
        );
        if !self.store.delete_session(&ctx.project.id, id, &audit).await? {
            return Err(Error::not_found(EntityKind::Session, id));
        }
        self.histories.forget(id);
        self.news.note(
            SessionChange::Removed,
            &ctx.project.id,
            id,
            Some(Arc::new(session)),
        );
        Ok(())
    }

    /// Deletes an agent (`DELETE /agent-configs/:id`, `source-delete`):
    /// its running turns end first (readers get `session_deleted`), then
    /// the agent goes with its drafts, versions and sessions.
    pub async fn delete_agent(
        &self,
        ctx: &AuthContext,
        agent: &crate::agents::config::AgentConfig,
    ) -> Result<()> {
        for id in self
            .store
            .running_sessions_of_agent(&ctx.project.id, &agent.id)
            .await?
        {
            match self.delete_session(ctx, &id).await {
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.agents.delete_agent(ctx, agent).await
    }

    /// Starts a turn and returns its event stream (from the turn's first
    /// event to its terminal one), with the sequence number of the user
    /// message (the cursor to resume from before any event arrived). The
    /// turn runs in a task of its own from the moment the session is
    /// claimed: neither a dropped stream nor a dropped request stops it.
    pub async fn run_turn(
        self: &Arc<Self>,
        ctx: &AuthContext,
        id: &SessionId,
        message: &str,
    ) -> Result<(i64, EventFollow)> {
        check_message(message)?;
        let session = self.get_session(ctx, id).await?;
        let model = self.gateway.resolve_model(ctx, Some(&session.model)).await?;
        let turn_id = TurnId::generate();
        // Subscribe before the first append, so the reader misses nothing.
        let wakes = self.hub.subscribe(id);
        let first = NewEvent::user_message(message, now());
        let cursor = match self
            .store
            .begin_turn(&ctx.project.id, id, &turn_id, self.lease_until(), Some(&first))
            .await?
        {
            BeginTurn::Started(Some(first)) => first.seq,
            BeginTurn::Started(None) => unreachable!("the first event was given"),
            BeginTurn::Busy => {
                return Err(Error::refused(
                    Refusal::RunInProgress,
                    "a turn is already running (or queued) in this session; wait for it to end, \
                     cancel it, or queue the message with POST /agents/:id/messages",
                ));
            }
            BeginTurn::NotFound => return Err(Error::not_found(EntityKind::Session, id)),
        };
        self.audit(ctx, actions::AGENT_SESSION_RUN, id, |a| {
            a.meta("turn_id", turn_id.as_str())
        })
        .await;
        self.start_turn(ctx.clone(), session, turn_id, cursor, model);
        Ok((
            cursor,
            self.follow(ctx.project.id.clone(), id.clone(), cursor, wakes, Follow::Turn),
        ))
    }

    /// Until when a turn claimed now holds its session.
    pub(crate) fn lease_until(&self) -> crate::time::Timestamp {
        now() + chrono::Duration::from_std(self.config.turn_lease).unwrap_or(chrono::Duration::seconds(60))
    }

    /// Runs a turn whose claim is written (its user message at `cursor`)
    /// in a task of its own: it always ends with a terminal event, whatever
    /// happens to the request that started it, and then the session's
    /// queue moves on.
    pub(crate) fn start_turn(
        self: &Arc<Self>,
        ctx: AuthContext,
        session: Session,
        turn_id: TurnId,
        cursor: i64,
        model: (crate::llm::ModelRef, Arc<dyn crate::llm::LlmProvider>),
    ) {
        let control = self.hub.register(&session.id, &turn_id, &ctx.key_id);
        self.news
            .note(SessionChange::Patched, &ctx.project.id, &session.id, None);
        let runtime = self.clone();
        let session_id = session.id.clone();
        tokio::spawn(async move {
            let project_id = ctx.project.id.clone();
            match runtime.history(&project_id, &session_id, cursor).await {
                Ok(history) => {
                    let turn = Arc::new(Turn::new(
                        runtime.clone(),
                        ctx,
                        session,
                        turn_id.clone(),
                        control,
                        model,
                        history,
                    ));
                    // A panic inside the turn still ends it.
                    if tokio::spawn(turn.clone().run()).await.is_err() {
                        tracing::error!(session = %session_id, "a turn panicked");
                        runtime.abandon_turn(&project_id, &session_id, &turn_id).await;
                    } else {
                        runtime.histories.keep(&session_id, turn.take_history());
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, session = %session_id, "reading a session's history failed");
                    runtime.abandon_turn(&project_id, &session_id, &turn_id).await;
                }
            }
            runtime.drain_queue_later(project_id, session_id);
        });
    }

    /// Ends a turn that could not run (an internal failure).
    async fn abandon_turn(&self, project_id: &ProjectId, id: &SessionId, turn_id: &TurnId) {
        self.end_turn(project_id, id, turn_id, internal_stop()).await;
        self.hub.unregister(id, turn_id);
    }

    /// The model's history up to `through` (the turn's user message) and
    /// its last event: the one the session's previous turn on this server
    /// left, with the events written since, or else rebuilt from the
    /// session's recent events (at most [`HISTORY_EVENTS`], so a long
    /// session's first turn here does not read its whole log; the character
    /// budget trims further, from the oldest).
    async fn history(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        through: i64,
    ) -> Result<(history::History, i64)> {
        let (mut history, mut cursor) = self
            .histories
            .take(id)
            .filter(|(_, seq)| *seq <= through)
            .unwrap_or_else(|| {
                let from = through - HISTORY_EVENTS;
                let history = if from > 0 {
                    history::History::after_earlier_events()
                } else {
                    history::History::default()
                };
                (history, from.max(0))
            });
        loop {
            let batch = self
                .store
                .events_after(project_id, id, cursor, HISTORY_BATCH)
                .await?;
            let Some(last) = batch.last() else { break };
            cursor = last.seq;
            for event in &batch {
                history.push(&event.body);
            }
            // A short batch is the end: no read to learn that nothing follows.
            if (batch.len() as i64) < HISTORY_BATCH {
                break;
            }
        }
        Ok((history, cursor))
    }

    /// `GET /agents/:id/events?after=N`: the log after `after` up to the
    /// end of the turn it is in (a client that dropped mid-turn gets the
    /// rest of that turn), following it live while it runs. When nothing
    /// follows the cursor and no turn runs, the stream ends at once.
    pub async fn follow_events(&self, ctx: &AuthContext, id: &SessionId, after: i64) -> Result<EventFollow> {
        self.get_session(ctx, id).await?;
        let wakes = self.hub.subscribe(id);
        Ok(self.follow(
            ctx.project.id.clone(),
            id.clone(),
            after.max(0),
            wakes,
            Follow::UntilIdle,
        ))
    }

    /// The realtime channel's view of one session: the session, the cursor
    /// its events follow from (`after`, or the log's end when `None`), and
    /// its events from there through every turn, until it is deleted.
    pub async fn watch_session(
        &self,
        ctx: &AuthContext,
        id: &SessionId,
        after: Option<i64>,
    ) -> Result<(Session, i64, EventFollow)> {
        // Subscribed before the session is read: nothing after its
        // `last_seq` can be missed.
        let wakes = self.hub.subscribe(id);
        let session = self.get_session(ctx, id).await?;
        let cursor = after.unwrap_or(session.last_seq).clamp(0, session.last_seq);
        let events = self.follow(ctx.project.id.clone(), id.clone(), cursor, wakes, Follow::Always);
        Ok((session, cursor, events))
    }

    /// The realtime channel's view of a project: news of its sessions
    /// (created, patched, removed) from now on.
    pub fn watch_sessions(
        &self,
        ctx: &AuthContext,
    ) -> broadcast::Receiver<Arc<crate::runtime::news::SessionNews>> {
        self.news.watch(&ctx.project.id)
    }

    fn follow(
        &self,
        project_id: ProjectId,
        id: SessionId,
        cursor: i64,
        wakes: broadcast::Receiver<Wake>,
        mode: Follow,
    ) -> EventFollow {
        let reader = Reader {
            store: self.store.clone(),
            heartbeat: self.config.heartbeat,
            project_id,
            id,
            cursor,
            wakes,
            ready: VecDeque::new(),
            end_when_idle: mode == Follow::UntilIdle,
            through_turns: mode == Follow::Always,
            ended: false,
            read_log: true,
            check_session: false,
            // A realtime subscriber also learns from the look that an idle
            // session was deleted.
            look_when_idle: self.shared_store() || mode == Follow::Always,
            gone: None,
            failures: 0,
        };
        Box::pin(futures_util::stream::unfold(reader, |mut reader| async move {
            let item = reader.next().await?;
            Some((item, reader))
        }))
    }

    /// `POST /agents/:id/input`.
    pub async fn answer_input(
        &self,
        ctx: &AuthContext,
        id: &SessionId,
        request_id: &str,
        value: Value,
    ) -> Result<()> {
        let session = self.get_session(ctx, id).await?;
        let request_id = InputRequestId::from_string(request_id);
        let request = self
            .store
            .get_input_request(&ctx.project.id, id, &request_id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::InputRequest, &request_id))?;
        let already = || {
            Error::refused(
                Refusal::InputAlreadyAnswered,
                format!("input request `{request_id}` was already answered"),
            )
        };
        if request.value.is_some() {
            return Err(already());
        }
        if session.turn_id.as_ref() != Some(&request.turn_id) {
            return Err(Error::refused(
                Refusal::InputExpired,
                format!("input request `{request_id}` belongs to a turn that has ended"),
            ));
        }
        host::check_answer(&request, &value).map_err(|m| Error::validation(m, Some("value")))?;
        match self
            .store
            .answer_input(&ctx.project.id, id, &request_id, &value, now())
            .await?
        {
            AnswerInput::Answered => {}
            AnswerInput::AlreadyAnswered => return Err(already()),
            AnswerInput::NotFound => return Err(Error::not_found(EntityKind::InputRequest, &request_id)),
        }
        self.audit(ctx, actions::AGENT_SESSION_INPUT, id, |a| {
            a.meta("request_id", request_id.as_str())
                .meta("turn_id", request.turn_id.as_str())
        })
        .await;
        self.hub.input_arrived(id);
        if let Err(e) = self
            .store
            .notify(&AgentSignal::Input {
                session_id: id.clone(),
            })
            .await
        {
            tracing::warn!(error = %e, "telling other servers about an input answer failed");
        }
        Ok(())
    }

    /// `POST /agents/:id/cancel`: stops the running turn (here or on another
    /// server) and returns the session once the turn has ended.
    pub async fn cancel_turn(&self, ctx: &AuthContext, id: &SessionId) -> Result<Session> {
        let session = self.get_session(ctx, id).await?;
        let Some(turn_id) = session.turn_id.clone() else {
            return Err(Error::refused(
                Refusal::NotRunning,
                "no turn is running in this session",
            ));
        };
        self.audit(ctx, actions::AGENT_SESSION_CANCEL, id, |a| {
            a.meta("turn_id", turn_id.as_str())
        })
        .await;
        let mut wakes = self.hub.subscribe(id);
        if !self.hub.stop_local(id, Some(&turn_id), Stop::cancelled())
            && let Err(e) = self
                .store
                .notify(&AgentSignal::Cancel {
                    session_id: id.clone(),
                    turn_id: turn_id.clone(),
                })
                .await
        {
            tracing::warn!(error = %e, "telling other servers about a cancel failed");
        }
        let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
        loop {
            let session = self.get_session(ctx, id).await?;
            if session.turn_id.as_ref() != Some(&turn_id) {
                return Ok(session);
            }
            let woke = tokio::time::timeout_at(deadline, async {
                // A wake-up, or a look at the row now and then.
                let _ = tokio::time::timeout(Duration::from_millis(250), wakes.recv()).await;
            })
            .await;
            if woke.is_err() {
                break;
            }
        }
        // The turn's server did not end it in time (it may be gone): end it here.
        self.end_turn(&ctx.project.id, id, &turn_id, Stop::cancelled())
            .await;
        self.get_session(ctx, id).await
    }

    /// Writes a turn's terminal event from outside the turn (it may be
    /// running elsewhere, or nowhere). A no-op when it already ended.
    pub(crate) async fn end_turn(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        turn_id: &TurnId,
        stop: Stop,
    ) {
        let event = NewEvent {
            body: EventBody::Error {
                message: stop.message,
                code: stop.code,
            },
            duration_ms: 0,
            at: now(),
            status: Some(stop.status),
            totals: Some(TurnTotals {
                usage: Usage::default(),
                duration_ms: 0,
            }),
        };
        match self.store.append_event(project_id, id, turn_id, &event).await {
            Ok(Some(stored)) => {
                self.hub.publish(id, Wake::Event(Arc::new(stored)));
                self.news.note(SessionChange::Patched, project_id, id, None);
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, session = %id, "ending a turn failed"),
        }
    }

    /// Ends the turns whose server stopped renewing their claim, and with
    /// [`Reap::Mine`] this server's own (at start: a crash interrupted
    /// them), with [`Reap::All`] every running turn (a SQLite file has one
    /// server, so at start nothing can be running). Returns how many it
    /// ended.
    pub async fn reap_turns(&self, reap: Reap) -> Result<usize> {
        let cutoff = if reap == Reap::All {
            now() + chrono::Duration::days(36_500)
        } else {
            now()
        };
        let expired = self.store.expired_turns(cutoff, reap == Reap::Mine).await?;
        for (project_id, id, turn_id) in &expired {
            tracing::warn!(session = %id, "ending a turn whose server stopped");
            self.end_turn(
                project_id,
                id,
                turn_id,
                Stop::new(
                    TurnErrorCode::Interrupted,
                    "the server running this turn stopped before it ended",
                    SessionStatus::Error,
                ),
            )
            .await;
        }
        Ok(expired.len())
    }

    /// The runtime's upkeep on this server until `shutdown`: relays other
    /// servers' signals to the hub, reaps turns whose server died, and
    /// drains queues whose session is free.
    pub async fn run_agent_upkeep(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()> + Send) {
        let listener = match self.store.listen().await {
            Ok(listener) => {
                self.shared_store
                    .store(listener.is_some(), std::sync::atomic::Ordering::Relaxed);
                listener
            }
            Err(e) => {
                tracing::error!(error = %e, "listening for other servers' agent signals failed");
                None
            }
        };
        let relay = {
            let runtime = self.clone();
            async move {
                let Some(mut signals) = listener else {
                    return std::future::pending::<()>().await;
                };
                use futures_util::StreamExt;
                while let Some(signal) = signals.next().await {
                    match signal {
                        AgentSignal::Session {
                            origin,
                            change,
                            project_id,
                            session_id,
                        } => runtime.news.on_signal(&origin, change, project_id, session_id),
                        signal => runtime.hub.on_signal(signal, Stop::cancelled),
                    }
                }
            }
        };
        let reaper = async {
            let period = self.config.turn_lease / 2;
            loop {
                tokio::time::sleep(period).await;
                if let Err(e) = self.reap_turns(Reap::Expired).await {
                    tracing::warn!(error = %e, "reaping stopped turns failed");
                }
            }
        };
        let queues = async {
            loop {
                self.sweep_queues().await;
                tokio::time::sleep(QUEUE_SWEEP).await;
            }
        };
        let leases = async {
            loop {
                tokio::time::sleep(self.config.turn_lease / 3).await;
                self.keep_leases().await;
            }
        };
        let newsroom = self.news.run(self.store.as_ref());
        tokio::select! {
            () = shutdown => {}
            () = newsroom => {}
            () = relay => {}
            () = reaper => {}
            () = queues => {}
            () = leases => {}
        }
    }

    /// Renews the claims of every turn running here in one statement (ten
    /// thousand turns waiting on people make one write, not thousands),
    /// then stops the turns whose claim is gone (ended elsewhere, or the
    /// session deleted) and those whose API key was revoked.
    async fn keep_leases(&self) {
        // Read before the renewal: every turn listed has its claim written.
        let running = self.hub.running();
        let held: std::collections::HashSet<(SessionId, TurnId)> =
            match self.store.renew_server_turns(self.lease_until()).await {
                Ok(held) => held.into_iter().collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "renewing the turns' claims failed; retrying");
                    return;
                }
            };
        let mut keys: std::collections::HashMap<crate::ids::ApiKeyId, bool> = Default::default();
        for (session, control) in running {
            if !held.contains(&(session, control.turn_id.clone())) {
                control.stop(Stop::lost());
                continue;
            }
            let active = match keys.get(&control.key_id) {
                Some(active) => *active,
                None => {
                    // A failed look keeps the turn going.
                    let active = !matches!(self.control.key_is_active(&control.key_id).await, Ok(false));
                    keys.insert(control.key_id.clone(), active);
                    active
                }
            };
            if !active {
                control.stop(Stop::new(
                    TurnErrorCode::Cancelled,
                    "the turn was stopped: the API key it acts as was revoked",
                    SessionStatus::Active,
                ));
            }
        }
    }

    /// Writes the audit entry of a request on a session (run, input,
    /// cancel) acting as the caller's key. The request itself is done by
    /// then: a failure to audit is logged, not the caller's.
    pub(crate) async fn audit(
        &self,
        ctx: &AuthContext,
        action: &'static str,
        id: &SessionId,
        meta: impl FnOnce(NewAudit) -> NewAudit,
    ) {
        let audit = meta(NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            action,
            id.as_str(),
        ));
        if let Err(e) = self.store.record_audit(&audit).await {
            tracing::error!(error = %e, action, session = %id, "writing an audit entry failed");
        }
    }

    /// Ends every turn running on this server (at shutdown) and waits until
    /// their end is recorded, up to `grace`.
    pub async fn interrupt_turns(&self, grace: Duration) {
        self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        let stop = Stop::new(
            TurnErrorCode::Interrupted,
            "the server shut down during this turn",
            SessionStatus::Error,
        );
        if self.hub.stop_all(&stop) == 0 {
            return;
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.hub.stop_all(&stop) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A turn's message: not blank, not too long.
pub(crate) fn check_message(message: &str) -> Result<()> {
    if message.trim().is_empty() {
        return Err(Error::validation("message must not be empty", Some("message")));
    }
    if message.len() > MAX_TURN_MESSAGE_BYTES {
        return Err(Error::validation(
            format!("message is longer than {MAX_TURN_MESSAGE_BYTES} bytes"),
            Some("message"),
        ));
    }
    Ok(())
}

fn internal_stop() -> Stop {
    Stop::new(
        TurnErrorCode::Internal,
        "the turn could not start",
        SessionStatus::Error,
    )
}

/// How long a reader follows a session's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Follow {
    /// To the end of the turn it started with (the `run` stream).
    Turn,
    /// To the end of the running turn, or at once when caught up on an
    /// idle session (`GET /agents/:id/events`).
    UntilIdle,
    /// Through every turn, until the session is deleted (realtime).
    Always,
}

/// One reader of a session's log.
struct Reader {
    store: Arc<dyn crate::runtime::store::AgentStore>,
    heartbeat: Duration,
    project_id: ProjectId,
    id: SessionId,
    /// The last sequence number handed out (or skipped).
    cursor: i64,
    wakes: broadcast::Receiver<Wake>,
    ready: VecDeque<Arc<StoredEvent>>,
    /// End when caught up and no turn runs (a reader that did not start
    /// the turn it reads).
    end_when_idle: bool,
    /// Go on after a terminal event, and yield user messages (realtime
    /// subscribers).
    through_turns: bool,
    ended: bool,
    /// The log may hold events past the cursor.
    read_log: bool,
    /// Look whether the session still exists at the next read.
    check_session: bool,
    /// Look at the log and the session at each heartbeat, in case a
    /// wake-up was lost (see [`AgentRuntime::shared_store`]).
    look_when_idle: bool,
    /// The deleted session's last word, once found.
    gone: Option<FollowItem>,
    /// Failed reads in a row.
    failures: u32,
}

impl Reader {
    /// Reads the log after the cursor into `ready`. `Ok(true)`: the stream
    /// is over (caught up on an idle session, for a reader that ends then).
    /// A deleted session leaves its last word in `gone`.
    async fn read(&mut self) -> Result<bool, String> {
        // Whether a turn runs, looked at before reading: if none does,
        // every event of the last turn is in what we read.
        let mut idle = false;
        if self.end_when_idle || self.check_session {
            match self.store.get_session(&self.project_id, &self.id).await {
                Ok(Some(session)) => idle = self.end_when_idle && session.turn_id.is_none(),
                Ok(None) => {
                    self.gone =
                        Some(self.last_word(TurnErrorCode::SessionDeleted, "the session was deleted".into()));
                    return Ok(false);
                }
                Err(e) => return Err(format!("reading the session failed: {e}")),
            }
            self.check_session = false;
        }
        let batch = self
            .store
            .events_after(&self.project_id, &self.id, self.cursor, READ_BATCH)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, session = %self.id, "reading the event log failed");
                format!(
                    "reading the event log failed; resume with GET /agents/{}/events?after={}",
                    self.id, self.cursor
                )
            })?;
        self.failures = 0;
        let full = batch.len() as i64 == READ_BATCH;
        self.ready.extend(batch.into_iter().map(Arc::new));
        self.read_log = full;
        Ok(self.ready.is_empty() && idle)
    }

    /// A terminal event the log does not hold, ending this reader: it
    /// carries the cursor, so resuming from it misses nothing.
    fn last_word(&mut self, code: TurnErrorCode, message: String) -> FollowItem {
        self.ended = true;
        FollowItem::Event(Arc::new(StoredEvent {
            id: crate::ids::EventId::generate(),
            seq: self.cursor,
            turn_id: TurnId::from_string(""),
            step_index: None,
            body: EventBody::Error { message, code },
            duration_ms: 0,
            created_at: now(),
        }))
    }

    async fn next(&mut self) -> Option<FollowItem> {
        loop {
            if self.ended {
                return None;
            }
            while let Some(event) = self.ready.pop_front() {
                if event.seq <= self.cursor {
                    continue;
                }
                self.cursor = event.seq;
                // Realtime subscribers see each turn's user message too.
                if !event.body.is_streamed() && !self.through_turns {
                    continue;
                }
                self.ended = !self.through_turns && event.body.is_terminal();
                return Some(FollowItem::Event(event));
            }
            if self.read_log {
                match self.read().await {
                    Ok(true) => return None,
                    Ok(false) => {}
                    Err(message) => {
                        self.failures += 1;
                        if self.failures < READ_ATTEMPTS {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                        // Better a terminal event the client can act on
                        // than a stream that just stops.
                        return Some(self.last_word(TurnErrorCode::Internal, message));
                    }
                }
                if let Some(gone) = self.gone.take() {
                    return Some(gone);
                }
                if !self.ready.is_empty() {
                    continue;
                }
            }
            let heartbeat = tokio::time::sleep(self.heartbeat);
            tokio::select! {
                wake = self.wakes.recv() => match wake {
                    Ok(Wake::Event(event)) if event.seq == self.cursor + 1 => self.ready.push_back(event),
                    Ok(Wake::Event(event)) if event.seq <= self.cursor => {}
                    Ok(Wake::Seq(seq)) if seq <= self.cursor => {}
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => self.read_log = true,
                    Err(broadcast::error::RecvError::Closed) => {
                        self.read_log = true;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = heartbeat => {
                    // Look at the log (and whether the session still
                    // exists) now and then anyway: a wake-up from another
                    // server may have been lost.
                    if self.look_when_idle {
                        self.read_log = true;
                        self.check_session = true;
                    }
                    return Some(FollowItem::Idle);
                }
            }
        }
    }
}

/// Which running turns [`AgentRuntime::reap_turns`] ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reap {
    /// Those whose lease ran out (their server stopped renewing it).
    Expired,
    /// Those, and the ones this server claimed before it restarted.
    Mine,
    /// Every one (the only server of the database, starting).
    All,
}
