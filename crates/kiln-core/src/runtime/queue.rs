//! The per-session queue: `POST /agents/:id/messages` runs a turn now when
//! the session is free, else queues it; queued turns run one at a time in
//! queue order.
//!
//! The store enforces the order and the one-turn rule: a turn starts only
//! by claiming a free session, `run` refuses while anything is queued, and
//! a queued turn leaves the queue in the transaction that claims the
//! session for it, so it runs once even with several servers draining one
//! database. Draining happens when a turn ends on this server (at once) and
//! in every server's upkeep sweep (each second), which picks up turns that
//! ended elsewhere, were ended from outside, or were queued while a server
//! was down. A queued turn acts as the key that queued it.

use std::sync::Arc;

use crate::audit::actions;
use crate::auth::AuthContext;
use crate::error::{EntityKind, Error, Refusal, Result};
use crate::ids::{ProjectId, SessionId, TurnId};
use crate::runtime::event::TurnErrorCode;
use crate::runtime::hub::{Stop, Wake};
use crate::runtime::sessions::check_message;
use crate::runtime::store::{Enqueue, NewEvent, QueuedTurn, Reorder};
use crate::runtime::{AgentRuntime, SessionStatus};
use crate::time::now;

/// Turns a session's queue holds at most.
pub const MAX_QUEUED_TURNS: i64 = 100;
/// Sessions the upkeep sweep drains per pass, at most.
pub(crate) const SWEEP_BATCH: i64 = 64;

/// What `POST /agents/:id/messages` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The turn's id (it keeps it from the queue to its run).
    pub id: TurnId,
    /// It started at once (`queue_position` 0).
    pub running: bool,
    /// 1-based place in the queue; 0 when running.
    pub queue_position: i64,
}

impl AgentRuntime {
    /// `POST /agents/:id/messages`: runs the message as a turn now if the
    /// session is free, else queues it (409 `queue_full` past
    /// [`MAX_QUEUED_TURNS`]). Follow it with `GET /agents/:id/events`.
    pub async fn enqueue_message(
        self: &Arc<Self>,
        ctx: &AuthContext,
        id: &SessionId,
        message: &str,
    ) -> Result<Enqueued> {
        check_message(message)?;
        let session = self.get_session(ctx, id).await?;
        let model = self.gateway.resolve_model(ctx, Some(&session.model)).await?;
        let at = now();
        let queued = QueuedTurn {
            id: TurnId::generate(),
            project_id: ctx.project.id.clone(),
            session_id: id.clone(),
            key_id: ctx.key_id.clone(),
            message: message.to_owned(),
            position: 0,
            created_at: at,
        };
        let first = NewEvent::user_message(message, at);
        match self
            .store
            .enqueue_turn(&queued, self.lease_until(), &first, MAX_QUEUED_TURNS)
            .await?
        {
            Enqueue::Started(first) => {
                self.audit(ctx, actions::AGENT_SESSION_RUN, id, |a| {
                    a.meta("turn_id", queued.id.as_str()).meta("queued", false)
                })
                .await;
                let cursor = first.seq;
                self.hub.publish(id, Wake::Event(Arc::new(*first)));
                self.start_turn(ctx.clone(), session, queued.id.clone(), cursor, model);
                Ok(Enqueued {
                    id: queued.id,
                    running: true,
                    queue_position: 0,
                })
            }
            Enqueue::Queued { position } => {
                self.audit(ctx, actions::AGENT_SESSION_RUN, id, |a| {
                    a.meta("turn_id", queued.id.as_str()).meta("queued", true)
                })
                .await;
                // The running turn may have ended between the claim and the
                // insert: look once more (the sweep would, a second later).
                self.drain_queue_later(ctx.project.id.clone(), id.clone());
                self.note_queue_changed(&ctx.project.id, id);
                Ok(Enqueued {
                    id: queued.id,
                    running: false,
                    queue_position: position,
                })
            }
            Enqueue::Full => Err(Error::refused(
                Refusal::QueueFull,
                format!("the session's queue holds its maximum of {MAX_QUEUED_TURNS} turns"),
            )),
            Enqueue::NotFound => Err(Error::not_found(EntityKind::Session, id)),
        }
    }

    /// `GET /agents/:id/queue`: the turns waiting, next first.
    pub async fn list_queue(&self, ctx: &AuthContext, id: &SessionId) -> Result<Vec<QueuedTurn>> {
        self.get_session(ctx, id).await?;
        Ok(self.store.queued_turns(&ctx.project.id, id).await?)
    }

    /// `DELETE /agents/:id/queue/:qid`: takes a turn off the queue before it
    /// runs.
    pub async fn cancel_queued(&self, ctx: &AuthContext, id: &SessionId, queued: &str) -> Result<()> {
        self.get_session(ctx, id).await?;
        let queued = TurnId::from_string(queued);
        if !self
            .store
            .delete_queued_turn(&ctx.project.id, id, &queued)
            .await?
        {
            return Err(Error::not_found(EntityKind::QueuedTurn, &queued));
        }
        self.note_queue_changed(&ctx.project.id, id);
        Ok(())
    }

    /// `PUT /agents/:id/queue {"order": [ids]}`: the listed turns go first,
    /// in that order; the others follow as they were.
    pub async fn reorder_queue(
        &self,
        ctx: &AuthContext,
        id: &SessionId,
        order: Vec<String>,
    ) -> Result<Vec<QueuedTurn>> {
        self.get_session(ctx, id).await?;
        let mut ids: Vec<TurnId> = Vec::with_capacity(order.len());
        for queued in order {
            let queued = TurnId::from_string(queued);
            if ids.contains(&queued) {
                return Err(Error::validation(
                    format!("`{queued}` is listed twice"),
                    Some("order"),
                ));
            }
            ids.push(queued);
        }
        match self.store.reorder_queue(&ctx.project.id, id, &ids).await? {
            Reorder::Done(queue) => {
                self.note_queue_changed(&ctx.project.id, id);
                Ok(queue)
            }
            Reorder::Unknown(queued) => Err(Error::validation(
                format!("`{queued}` is not a queued turn of this session"),
                Some("order"),
            )),
        }
    }

    /// Realtime watchers learn of a queue change as a `patched` session
    /// (and read the queue again).
    fn note_queue_changed(&self, project_id: &ProjectId, id: &SessionId) {
        self.news
            .note(crate::runtime::news::SessionChange::Patched, project_id, id, None);
    }

    /// Drains the session's queue in a task of its own.
    pub(crate) fn drain_queue_later(self: &Arc<Self>, project_id: ProjectId, id: SessionId) {
        let runtime = self.clone();
        tokio::spawn(async move { runtime.drain_queue(&project_id, &id).await });
    }

    /// Starts the next queued turn of the session if it is free. A turn
    /// that cannot start (its key revoked, its model gone) ends with an
    /// `error` event and the next one is tried.
    pub(crate) async fn drain_queue(self: &Arc<Self>, project_id: &ProjectId, id: &SessionId) {
        loop {
            if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let claimed = match self
                .store
                .begin_queued_turn(project_id, id, self.lease_until(), now())
                .await
            {
                Ok(Some(claimed)) => claimed,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, session = %id, "starting a queued turn failed");
                    return;
                }
            };
            let (queued, first) = claimed;
            let cursor = first.seq;
            self.hub.publish(id, Wake::Event(Arc::new(first)));
            match self.prepare_queued(&queued).await {
                Ok((ctx, session, model)) => {
                    self.start_turn(ctx, session, queued.id, cursor, model);
                    return;
                }
                Err(message) => {
                    let stop = Stop::new(TurnErrorCode::Internal, message, SessionStatus::Error);
                    self.end_turn(project_id, id, &queued.id, stop).await;
                }
            }
        }
    }

    /// What a queued turn runs with: its key's context, the session, the model.
    async fn prepare_queued(
        &self,
        queued: &QueuedTurn,
    ) -> std::result::Result<
        (
            AuthContext,
            crate::runtime::Session,
            (crate::llm::ModelRef, Arc<dyn crate::llm::LlmProvider>),
        ),
        String,
    > {
        let ctx = self
            .control
            .context_of_key(&queued.key_id)
            .await
            .map_err(|_| "the API key that queued this message was revoked before it ran".to_owned())?;
        let session = self
            .get_session(&ctx, &queued.session_id)
            .await
            .map_err(|e| e.to_string())?;
        let model = self
            .gateway
            .resolve_model(&ctx, Some(&session.model))
            .await
            .map_err(|e| format!("the session's model cannot be used: {e}"))?;
        Ok((ctx, session, model))
    }

    /// One pass of the drain sweep: every free session with queued turns,
    /// across projects. Returns how many sessions it looked at.
    pub(crate) async fn sweep_queues(self: &Arc<Self>) -> usize {
        let ready = match self.store.sessions_with_ready_queue(SWEEP_BATCH).await {
            Ok(ready) => ready,
            Err(e) => {
                tracing::warn!(error = %e, "looking for queued turns failed");
                return 0;
            }
        };
        for (project_id, id) in &ready {
            self.drain_queue(project_id, id).await;
        }
        ready.len()
    }
}
