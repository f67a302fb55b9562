//! Session news: which sessions of a project were created, changed
//! (status, usage, step count) or removed, for the realtime channel's
//! `created` / `patched` / `removed` messages.
//!
//! A change is noted where it happens (a session created or deleted, a
//! turn starting, pausing, resuming or ending) and queued to one task per
//! server, the newsroom, which tells other servers (PostgreSQL `NOTIFY`)
//! and, when someone here watches the project, reads the session once and
//! broadcasts it. One task reading in order means a watcher never gets an
//! older state after a newer one, and a project nobody watches costs one
//! queue push per change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc};

use crate::ids::{ProjectId, SessionId};
use crate::runtime::session::Session;
use crate::runtime::store::{AgentSignal, AgentStore};

/// Buffered news per project; a watcher that falls further behind is told
/// to read the list again ([`broadcast::error::RecvError::Lagged`]).
const NEWS_BUFFER: usize = 1024;
/// Changes waiting for the newsroom; more are dropped (with a warning).
const QUEUE: usize = 8192;
/// Changes told to other servers in one statement, at most.
const NEWS_BATCH: usize = 64;
/// Sweep channels nobody watches once the map is this large.
const SWEEP_AT: usize = 256;

/// What happened to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionChange {
    Created,
    /// Its status, usage, step count or title changed.
    Patched,
    Removed,
}

impl SessionChange {
    /// One letter, for cross-server signals.
    pub fn letter(self) -> char {
        match self {
            SessionChange::Created => 'c',
            SessionChange::Patched => 'p',
            SessionChange::Removed => 'r',
        }
    }

    pub fn from_letter(letter: &str) -> Option<SessionChange> {
        Some(match letter {
            "c" => SessionChange::Created,
            "p" => SessionChange::Patched,
            "r" => SessionChange::Removed,
            _ => return None,
        })
    }
}

/// One piece of news, as watchers receive it.
#[derive(Debug, Clone)]
pub struct SessionNews {
    pub change: SessionChange,
    pub session_id: SessionId,
    /// The session after the change; for `Removed`, as it was before. `None`
    /// only for a session another server deleted (its last state is gone).
    pub session: Option<Arc<Session>>,
}

/// A change waiting for the newsroom.
struct Pending {
    change: SessionChange,
    project_id: ProjectId,
    session_id: SessionId,
    snapshot: Option<Arc<Session>>,
    /// Noted on this server (so other servers are told).
    local: bool,
}

pub(crate) struct Newsroom {
    /// This server's mark on its signals, to skip its own echo.
    origin: String,
    queue: mpsc::Sender<Pending>,
    inbox: Mutex<Option<mpsc::Receiver<Pending>>>,
    channels: Mutex<HashMap<ProjectId, broadcast::Sender<Arc<SessionNews>>>>,
}

impl Newsroom {
    pub(crate) fn new() -> Newsroom {
        let (queue, inbox) = mpsc::channel(QUEUE);
        Newsroom {
            origin: uuid::Uuid::new_v4().simple().to_string(),
            queue,
            inbox: Mutex::new(Some(inbox)),
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// A receiver of the project's news from now on.
    pub(crate) fn watch(&self, project_id: &ProjectId) -> broadcast::Receiver<Arc<SessionNews>> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if channels.len() >= SWEEP_AT {
            channels.retain(|_, tx| tx.receiver_count() > 0);
        }
        channels
            .entry(project_id.clone())
            .or_insert_with(|| broadcast::channel(NEWS_BUFFER).0)
            .subscribe()
    }

    fn watched(&self, project_id: &ProjectId) -> Option<broadcast::Sender<Arc<SessionNews>>> {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .get(project_id)
            .filter(|tx| tx.receiver_count() > 0)
            .cloned()
    }

    /// Notes a change made here. `snapshot`: the session as the change
    /// left it, when the caller has it (required for `Removed`).
    pub(crate) fn note(
        &self,
        change: SessionChange,
        project_id: &ProjectId,
        session_id: &SessionId,
        snapshot: Option<Arc<Session>>,
    ) {
        self.push(Pending {
            change,
            project_id: project_id.clone(),
            session_id: session_id.clone(),
            snapshot,
            local: true,
        });
    }

    /// News from another server (its own echo skipped).
    pub(crate) fn on_signal(
        &self,
        origin: &str,
        change: SessionChange,
        project_id: ProjectId,
        session_id: SessionId,
    ) {
        if origin == self.origin {
            return;
        }
        self.push(Pending {
            change,
            project_id,
            session_id,
            snapshot: None,
            local: false,
        });
    }

    fn push(&self, pending: Pending) {
        if let Err(mpsc::error::TrySendError::Full(p)) = self.queue.try_send(pending) {
            tracing::warn!(session = %p.session_id, "session news dropped: the newsroom is behind");
        }
    }

    /// The newsroom's loop; runs in the runtime's upkeep (once per server).
    pub(crate) async fn run(&self, store: &dyn AgentStore) {
        let inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(mut inbox) = inbox else {
            return std::future::pending().await;
        };
        let mut batch = Vec::with_capacity(NEWS_BATCH);
        while inbox.recv_many(&mut batch, NEWS_BATCH).await > 0 {
            // Other servers hear of what queued meanwhile in one go.
            let signals: Vec<AgentSignal> = batch
                .iter()
                .filter(|pending| pending.local)
                .map(|pending| AgentSignal::Session {
                    origin: self.origin.clone(),
                    change: pending.change,
                    project_id: pending.project_id.clone(),
                    session_id: pending.session_id.clone(),
                })
                .collect();
            if let Err(e) = store.notify_all(&signals).await {
                tracing::warn!(error = %e, "telling other servers about session changes failed");
            }
            for pending in batch.drain(..) {
                self.publish(store, pending).await;
            }
        }
    }

    /// Broadcasts one change to this server's watchers of its project.
    async fn publish(&self, store: &dyn AgentStore, pending: Pending) {
        let Some(tx) = self.watched(&pending.project_id) else {
            return;
        };
        let session = match (pending.change, pending.snapshot) {
            (SessionChange::Removed, snapshot) => snapshot,
            // Read now, so the state sent is the latest (the snapshot of
            // a creation is current unless a later change is queued,
            // which then sends the newer state after it).
            (SessionChange::Created, Some(snapshot)) => Some(snapshot),
            _ => match store.get_session(&pending.project_id, &pending.session_id).await {
                Ok(Some(session)) => Some(Arc::new(session)),
                // Deleted since: its `removed` follows.
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, session = %pending.session_id, "reading a changed session failed");
                    return;
                }
            },
        };
        let _ = tx.send(Arc::new(SessionNews {
            change: pending.change,
            session_id: pending.session_id,
            session,
        }));
    }
}
