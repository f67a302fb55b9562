//! The in-process hub: wakes the readers of a session when its log grows,
//! and reaches the turns running on this server (cancel, input answers).
//! Other servers' news arrives through [`Hub::on_signal`] (PostgreSQL
//! `LISTEN`); the log stays the source of truth, so a wake-up that carries
//! no event just sends the reader back to the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};

use crate::ids::{ApiKeyId, SessionId, TurnId};
use crate::runtime::SessionStatus;
use crate::runtime::event::StoredEvent;
use crate::runtime::store::AgentSignal;

/// Buffered wake-ups per session; a reader that falls further behind reads
/// the log instead.
const WAKE_BUFFER: usize = 256;
/// Sweep channels nobody listens to once the map is this large (and then
/// at twice what a sweep left, so ten thousand live readers do not make
/// every subscribe scan them all).
const SWEEP_AT: usize = 1024;

#[derive(Debug, Clone)]
pub(crate) enum Wake {
    /// An event appended on this server.
    Event(Arc<StoredEvent>),
    /// The log reached this sequence number on another server.
    Seq(i64),
}

/// Why a turn is being stopped from outside its loop.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stop {
    pub(crate) code: crate::runtime::event::TurnErrorCode,
    pub(crate) message: String,
    /// The session's status after the turn.
    pub(crate) status: SessionStatus,
}

/// What the hub holds of a turn running here.
#[derive(Clone)]
pub(crate) struct TurnControl {
    pub(crate) turn_id: TurnId,
    /// The key the turn acts as: revoking it stops the turn.
    pub(crate) key_id: ApiKeyId,
    pub(crate) stop: watch::Sender<Option<Stop>>,
    /// Bumped when an input answer arrives; every waiting `input()` looks.
    pub(crate) input: Arc<watch::Sender<u64>>,
}

impl TurnControl {
    /// Stops the turn; the first reason wins.
    pub(crate) fn stop(&self, stop: Stop) {
        self.stop.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(stop);
                true
            } else {
                false
            }
        });
    }
}

#[derive(Default)]
pub(crate) struct Hub {
    channels: Mutex<Channels>,
    turns: Mutex<HashMap<SessionId, TurnControl>>,
}

/// The sessions' wake-up channels.
#[derive(Default)]
struct Channels {
    map: HashMap<SessionId, broadcast::Sender<Wake>>,
    /// The size at which the next subscribe sweeps.
    sweep_at: usize,
}

impl Hub {
    /// A receiver of the session's wake-ups from now on.
    pub(crate) fn subscribe(&self, session: &SessionId) -> broadcast::Receiver<Wake> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if channels.map.len() >= channels.sweep_at.max(SWEEP_AT) {
            channels.map.retain(|_, tx| tx.receiver_count() > 0);
            channels.sweep_at = channels.map.len() * 2;
        }
        channels
            .map
            .entry(session.clone())
            .or_insert_with(|| broadcast::channel(WAKE_BUFFER).0)
            .subscribe()
    }

    pub(crate) fn publish(&self, session: &SessionId, wake: Wake) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = channels.map.get(session)
            && tx.send(wake).is_err()
        {
            channels.map.remove(session);
        }
    }

    /// Records a turn starting here and returns its control.
    pub(crate) fn register(&self, session: &SessionId, turn_id: &TurnId, key_id: &ApiKeyId) -> TurnControl {
        let control = TurnControl {
            turn_id: turn_id.clone(),
            key_id: key_id.clone(),
            stop: watch::channel(None).0,
            input: Arc::new(watch::channel(0).0),
        };
        self.turns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(session.clone(), control.clone());
        control
    }

    pub(crate) fn unregister(&self, session: &SessionId, turn_id: &TurnId) {
        let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        if turns.get(session).is_some_and(|c| &c.turn_id == turn_id) {
            turns.remove(session);
        }
    }

    /// The turns running here now.
    pub(crate) fn running(&self) -> Vec<(SessionId, TurnControl)> {
        self.turns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(session, control)| (session.clone(), control.clone()))
            .collect()
    }

    fn local(&self, session: &SessionId) -> Option<TurnControl> {
        self.turns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(session)
            .cloned()
    }

    /// Stops the session's turn if it runs here (and, with `turn`, is that
    /// turn: a cancel meant for a turn that ended must not stop the next).
    pub(crate) fn stop_local(&self, session: &SessionId, turn: Option<&TurnId>, stop: Stop) -> bool {
        match self.local(session) {
            Some(control) if turn.is_none_or(|t| *t == control.turn_id) => {
                control.stop(stop);
                true
            }
            _ => false,
        }
    }

    /// Stops every turn running here (shutdown).
    pub(crate) fn stop_all(&self, stop: &Stop) -> usize {
        let turns: Vec<TurnControl> = self
            .turns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for control in &turns {
            control.stop(stop.clone());
        }
        turns.len()
    }

    /// Tells the session's turn, if it runs here, that an answer arrived.
    pub(crate) fn input_arrived(&self, session: &SessionId) {
        if let Some(control) = self.local(session) {
            control.input.send_modify(|n| *n += 1);
        }
    }

    /// News from another server.
    pub(crate) fn on_signal(&self, signal: AgentSignal, cancel: impl FnOnce() -> Stop) {
        match signal {
            AgentSignal::Event { session_id, seq } => self.publish(&session_id, Wake::Seq(seq)),
            AgentSignal::Cancel { session_id, turn_id } => {
                self.stop_local(&session_id, Some(&turn_id), cancel());
            }
            AgentSignal::Input { session_id } => self.input_arrived(&session_id),
            // The runtime hands these to its newsroom before the hub.
            AgentSignal::Session { .. } => {}
        }
    }
}
