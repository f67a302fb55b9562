//! Studio support in the runtime (CONTRACT §2.14): a session's trace (its
//! steps, the complete system prompt its turns see, its tools) and replay
//! into a new session.
//!
//! Replay from step N copies every turn that ended before the turn holding
//! step N into a new session (their events as they were: the model's
//! history is rebuilt from them, and their `data_update`s give the new
//! session its data), then runs that turn again: with the `message` given,
//! or the user message that started it, under the `system_prompt` given or
//! the original one. A turn cannot be resumed in its middle, so the steps
//! of that turn before N are played again, not copied.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::audit::{Actor, NewAudit, actions};
use crate::auth::AuthContext;
use crate::error::{Error, Result};
use crate::ids::{SessionId, TurnId};
use crate::llm::Usage;
use crate::runtime::event::{EventBody, EventKind, StoredEvent};
use crate::runtime::session::{Session, SessionStatus, Step};
use crate::runtime::sessions::EventFollow;
use crate::runtime::store::{BeginTurn, NewEvent, TurnTotals};
use crate::runtime::{AgentRuntime, prompt};
use crate::time::now;

/// `GET /studio/:id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub session: Session,
    pub steps: Vec<Step>,
    /// The complete system prompt the session's turns see.
    pub system_prompt: String,
    /// `execute_js` and the session's function-call tools.
    pub tools: Vec<String>,
}

/// A replay that has started.
pub struct Replay {
    pub session: Session,
    /// The user message's sequence number in the new session.
    pub cursor: i64,
    pub events: EventFollow,
}

impl AgentRuntime {
    /// `GET /studio/:id`.
    pub async fn trace(&self, ctx: &AuthContext, id: &SessionId) -> Result<Trace> {
        let (session, steps) = self.session_steps(ctx, id).await?;
        let system_prompt = self.agent_prompt(ctx, &session).await;
        let mut tools = vec![prompt::EXECUTE_JS.to_owned()];
        tools.extend(session.tools.iter().cloned());
        Ok(Trace {
            session,
            steps,
            system_prompt,
            tools,
        })
    }

    /// `POST /studio/:id/replay`: 400 when `from_step` is not one of the
    /// session's steps (or comes before its first message).
    pub async fn replay(
        self: &Arc<Self>,
        ctx: &AuthContext,
        id: &SessionId,
        from_step: i64,
        system_prompt: Option<String>,
        message: Option<String>,
    ) -> Result<Replay> {
        let (source, steps) = self.session_steps(ctx, id).await?;
        let out_of_range = || {
            Error::validation(
                format!(
                    "from_step must be a step of the session: 0 to {} (it has {} steps)",
                    steps.len().saturating_sub(1),
                    steps.len()
                ),
                Some("from_step"),
            )
        };
        if from_step < 0 || !steps.iter().any(|s| s.step_index == from_step) {
            return Err(out_of_range());
        }
        let start = steps
            .iter()
            .rfind(|s| s.step_index <= from_step && s.step_type == EventKind::UserMessage)
            .ok_or_else(out_of_range)?;
        let message = message
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| start.content.clone());
        // The events of the turns before the replayed one.
        let mut earlier: Vec<StoredEvent> = Vec::new();
        let mut cursor = 0;
        'read: loop {
            let batch = self.store.events_after(&ctx.project.id, id, cursor, 1000).await?;
            let Some(last) = batch.last() else { break };
            cursor = last.seq;
            for event in batch {
                if event.id == start.id {
                    break 'read;
                }
                earlier.push(event);
            }
        }
        let mut data = Map::new();
        for event in &earlier {
            if let EventBody::DataUpdate { changes } = &event.body {
                for (key, value) in changes {
                    if value.is_null() {
                        data.remove(key);
                    } else {
                        data.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        let at = now();
        let mut metadata = match &source.metadata {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        metadata.insert(
            "replay_of".into(),
            json!({ "session_id": id.as_str(), "from_step": from_step }),
        );
        let session = Session {
            id: SessionId::generate(),
            title: format!(
                "replay of {}",
                if source.title.is_empty() {
                    id.as_str()
                } else {
                    &source.title
                }
            ),
            system_prompt: system_prompt.unwrap_or_else(|| source.system_prompt.clone()),
            metadata: Value::Object(metadata),
            status: SessionStatus::Active,
            data: data.into_iter().collect(),
            turn_id: None,
            usage: Usage::default(),
            step_count: 0,
            last_seq: 0,
            duration_ms: 0,
            created_at: at,
            updated_at: at,
            ..source.clone()
        };
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::AGENT_SESSION_CREATE,
            session.id.as_str(),
        )
        .meta("replay_of", id.as_str())
        .meta("from_step", from_step);
        self.store.create_session(&session, &audit).await?;
        self.news.note(
            crate::runtime::news::SessionChange::Created,
            &ctx.project.id,
            &session.id,
            Some(Arc::new(session.clone())),
        );
        self.copy_turns(ctx, &session.id, earlier).await?;
        let (cursor, events) = self.run_turn(ctx, &session.id, &message).await?;
        let session = self.get_session(ctx, &session.id).await?;
        Ok(Replay {
            session,
            cursor,
            events,
        })
    }

    /// Appends `events` (whole turns, in order) to `to`, one turn at a time
    /// under a claim of its own, each ending as it ended.
    async fn copy_turns(&self, ctx: &AuthContext, to: &SessionId, events: Vec<StoredEvent>) -> Result<()> {
        let mut turns: Vec<Vec<StoredEvent>> = Vec::new();
        for event in events {
            match turns.last_mut() {
                Some(turn) if turn[0].turn_id == event.turn_id => turn.push(event),
                _ => turns.push(vec![event]),
            }
        }
        let lease =
            chrono::Duration::from_std(self.config.turn_lease).unwrap_or(chrono::Duration::seconds(60));
        for turn in turns {
            let turn_id = TurnId::generate();
            let duration: i64 = turn.iter().map(|e| e.duration_ms).sum();
            let last = turn.len() - 1;
            let copied: Vec<NewEvent> = turn
                .into_iter()
                .enumerate()
                .map(|(i, event)| {
                    let totals = (i == last).then(|| TurnTotals {
                        usage: match &event.body {
                            EventBody::Done { tokens, .. } => *tokens,
                            _ => Usage::default(),
                        },
                        duration_ms: duration,
                    });
                    let status = match (&event.body, i == last) {
                        (EventBody::Error { .. }, true) => Some(SessionStatus::Error),
                        (_, true) => Some(SessionStatus::Active),
                        _ => None,
                    };
                    NewEvent {
                        body: event.body,
                        duration_ms: event.duration_ms,
                        at: event.created_at,
                        status,
                        totals,
                    }
                })
                .collect();
            let (first, rest) = copied.split_first().expect("a turn has events");
            match self
                .store
                .begin_turn(&ctx.project.id, to, &turn_id, now() + lease, Some(first))
                .await?
            {
                BeginTurn::Started(_) => {}
                BeginTurn::Busy | BeginTurn::NotFound => {
                    return Err(Error::Store(crate::StoreError::Database(
                        "the replay's new session went away while it was filled".into(),
                    )));
                }
            }
            if !rest.is_empty() {
                self.store
                    .append_events(&ctx.project.id, to, &turn_id, rest)
                    .await?;
            }
        }
        Ok(())
    }
}
