//! The realtime channel (`GET /api/sdk/ws`, a Kiln extension): a
//! [`Realtime`] connection for raw messages, and the reactive
//! [`SessionHandle`] that keeps one session's state current by itself.
//!
//! ```no_run
//! # async fn demo(client: kiln_sdk::Client) -> Result<(), kiln_sdk::Error> {
//! let handle = client.watch_session("sess_...").await?;
//! handle.on_change(|state| println!("{} events, streaming: {}", state.events.len(), state.streaming));
//! client.enqueue_message("sess_...", "hello").await?;
//! let state = handle.wait_for(|s| s.turns.last().is_some_and(|t| t.end.is_some())).await;
//! println!("{:?}", state.turns.last());
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use kiln_api::realtime::{ClientMessage, ServerMessage, Subscription};
use kiln_api::{AgentEvent, AgentSession, QueuedTurn, event_types};

use crate::client::segment;
use crate::{ApiError, Client, Error};

/// Reconnect delays of a [`SessionHandle`]: doubling from the first to the
/// last.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One realtime connection. Answers to [`Realtime::subscribe_session`] and
/// the others are matched by `id`; messages that arrive meanwhile wait for
/// [`Realtime::next`], in order.
pub struct Realtime {
    socket: Socket,
    buffered: VecDeque<ServerMessage>,
    next_id: u64,
}

impl std::fmt::Debug for Realtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Realtime")
            .field("buffered", &self.buffered.len())
            .finish_non_exhaustive()
    }
}

/// What [`Realtime::subscribe_session`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSubscribed {
    /// The session when subscribed.
    pub session: AgentSession,
    /// The events that follow are those after this sequence number.
    pub after: i64,
}

impl Client {
    /// `GET /api/sdk/ws` (Kiln): opens a realtime connection with this
    /// client's key.
    pub async fn realtime(&self) -> Result<Realtime, Error> {
        let mut request = realtime_url(self.base_url())?
            .into_client_request()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let key = self
            .api_key()
            .parse()
            .map_err(|_| Error::Invalid("the API key is not a valid header value".into()))?;
        request.headers_mut().insert("X-API-Key", key);
        Realtime::open(request).await
    }

    /// A [`SessionHandle`] on the session: subscribed (with a replay of its
    /// whole log), then hydrated (its queue); fails when the session does
    /// not exist or the key is refused. From then on it follows by itself,
    /// reconnecting when the connection drops.
    pub async fn watch_session(&self, id: &str) -> Result<SessionHandle, Error> {
        let mut follower = Follower {
            client: self.clone(),
            id: id.to_owned(),
            state: SessionState::default(),
            tx: watch::channel(Arc::new(SessionState::default())).0,
            listeners: Arc::new(Mutex::new(Vec::new())),
        };
        let connection = follower.connect().await?;
        let rx = follower.tx.subscribe();
        let listeners = follower.listeners.clone();
        let task = tokio::spawn(async move { follower.run(connection).await });
        Ok(SessionHandle { rx, listeners, task })
    }

    /// `?token=` URL of the realtime channel for a short-lived token (what
    /// a browser connects to).
    pub fn realtime_url_with_token(&self, token: &str) -> Result<String, Error> {
        Ok(format!(
            "{}?token={}",
            realtime_url(self.base_url())?,
            urlencoding::encode(token)
        ))
    }
}

/// `ws(s)://host/api/sdk/ws` for an `http(s)://host` base URL.
fn realtime_url(base_url: &str) -> Result<String, Error> {
    let rest = if let Some(rest) = base_url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base_url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        return Err(Error::Invalid(format!("base URL `{base_url}` is not http(s)")));
    };
    Ok(format!("{rest}/api/sdk/ws"))
}

impl Realtime {
    /// Opens a connection to `url` as it is (for example one from
    /// [`Client::realtime_url_with_token`]).
    pub async fn connect(url: &str) -> Result<Realtime, Error> {
        let request = url
            .into_client_request()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        Realtime::open(request).await
    }

    async fn open(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<Realtime, Error> {
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(response) => {
                    let body = response.body().clone().unwrap_or_default();
                    Error::Api(ApiError::from_response(response.status().as_u16(), &body))
                }
                e => Error::Realtime(e.to_string()),
            })?;
        Ok(Realtime {
            socket,
            buffered: VecDeque::new(),
            next_id: 0,
        })
    }

    /// Subscribes to the project's sessions (`created`, `patched`,
    /// `removed`).
    pub async fn subscribe_project(&mut self) -> Result<(), Error> {
        self.request(|id| {
            ClientMessage::Subscribe(Subscription {
                id,
                ..Subscription::project()
            })
        })
        .await
        .map(|_| ())
    }

    /// Subscribes to one session: its events after `after` (`None`: only
    /// new ones) through every turn, and its own `patched` / `removed`.
    pub async fn subscribe_session(
        &mut self,
        id: &str,
        after: Option<i64>,
    ) -> Result<SessionSubscribed, Error> {
        let answer = self
            .request(|rid| {
                ClientMessage::Subscribe(Subscription {
                    id: rid,
                    ..Subscription::session(id, after)
                })
            })
            .await?;
        match answer {
            ServerMessage::Subscribed {
                session: Some(session),
                after: Some(after),
                ..
            } => Ok(SessionSubscribed { session, after }),
            other => Err(Error::Decode(format!(
                "unexpected answer to subscribe: {other:?}"
            ))),
        }
    }

    pub async fn unsubscribe_session(&mut self, id: &str) -> Result<(), Error> {
        self.request(|rid| {
            ClientMessage::Unsubscribe(Subscription {
                id: rid,
                ..Subscription::session(id, None)
            })
        })
        .await
        .map(|_| ())
    }

    pub async fn unsubscribe_project(&mut self) -> Result<(), Error> {
        self.request(|id| {
            ClientMessage::Unsubscribe(Subscription {
                id,
                ..Subscription::project()
            })
        })
        .await
        .map(|_| ())
    }

    /// Sends `message` as is.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), Error> {
        let text = serde_json::to_string(message).map_err(|e| Error::Invalid(e.to_string()))?;
        self.socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| Error::Realtime(e.to_string()))
    }

    /// The next message from the server; `None` once the connection closed.
    pub async fn next(&mut self) -> Option<Result<ServerMessage, Error>> {
        if let Some(message) = self.buffered.pop_front() {
            return Some(Ok(message));
        }
        self.read().await
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }

    async fn read(&mut self) -> Option<Result<ServerMessage, Error>> {
        loop {
            match self.socket.next().await? {
                Ok(Message::Text(text)) => {
                    return Some(
                        serde_json::from_str(text.as_str())
                            .map_err(|e| Error::Decode(format!("realtime message: {e}"))),
                    );
                }
                Ok(Message::Close(_)) => return None,
                Ok(_) => continue,
                Err(e) => return Some(Err(Error::Realtime(e.to_string()))),
            }
        }
    }

    /// Sends the message `build` makes with a fresh `id` and waits for the
    /// answer carrying it; an `error` answer becomes [`Error::Api`].
    async fn request(
        &mut self,
        build: impl FnOnce(Option<Value>) -> ClientMessage,
    ) -> Result<ServerMessage, Error> {
        self.next_id += 1;
        let id = Value::from(self.next_id);
        self.send(&build(Some(id.clone()))).await?;
        loop {
            let message = match self.read().await {
                Some(message) => message?,
                None => return Err(Error::Realtime("the connection closed before the answer".into())),
            };
            match &message {
                ServerMessage::Subscribed { id: Some(got), .. }
                | ServerMessage::Unsubscribed { id: Some(got), .. }
                | ServerMessage::Pong { id: Some(got) }
                    if *got == id =>
                {
                    return Ok(message);
                }
                ServerMessage::Error { id: Some(got), error } if *got == id => {
                    return Err(Error::Api(ApiError {
                        status: status_of(&error.code),
                        code: error.code.clone(),
                        message: error.message.clone(),
                        details: error.details.clone(),
                    }));
                }
                _ => self.buffered.push_back(message),
            }
        }
    }
}

/// The HTTP status the same error would have had on a REST route.
fn status_of(code: &str) -> u16 {
    match code {
        kiln_api::codes::NOT_FOUND => 404,
        kiln_api::codes::UNAUTHORIZED => 401,
        kiln_api::codes::INTERNAL => 500,
        _ => 400,
    }
}

/// One logged event of a session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEvent {
    pub seq: i64,
    pub event: AgentEvent,
}

/// One turn as a [`SessionHandle`] has seen it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TurnView {
    /// The user message that started it (absent for a turn whose start was
    /// before the replay).
    pub message: Option<String>,
    /// Its events after the user message, the terminal one included.
    pub events: Vec<Arc<SessionEvent>>,
    /// Its `done` or `error` event, once it ended.
    pub end: Option<AgentEvent>,
}

/// What a [`SessionHandle`] knows of its session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionState {
    /// The session as last read (`None` before the first subscription).
    pub session: Option<AgentSession>,
    /// Every event of the log, in order (shared with `turns`, so a new
    /// state costs a pointer per event, not a copy).
    pub events: Vec<Arc<SessionEvent>>,
    /// The events grouped by turn.
    pub turns: Vec<TurnView>,
    /// The turns waiting in the session's queue.
    pub queued: Vec<QueuedTurn>,
    /// A turn is under way (started, not ended).
    pub streaming: bool,
    /// The connection is up (false while it reconnects).
    pub connected: bool,
    /// The session was deleted; the handle stopped following.
    pub removed: bool,
    /// The last event's sequence number (where a reconnect resumes).
    pub last_seq: i64,
}

impl SessionState {
    fn apply(&mut self, seq: i64, event: AgentEvent) {
        if seq <= self.last_seq {
            return;
        }
        self.last_seq = seq;
        let entry = Arc::new(SessionEvent {
            seq,
            event: event.clone(),
        });
        if event.kind == event_types::USER_MESSAGE {
            self.turns.push(TurnView {
                message: event.content.clone(),
                ..TurnView::default()
            });
        } else {
            if self.turns.last().is_none_or(|t| t.end.is_some()) {
                self.turns.push(TurnView::default());
            }
            let turn = self.turns.last_mut().expect("a turn was pushed");
            turn.events.push(entry.clone());
            if event.is_terminal() {
                turn.end = Some(event);
            }
        }
        self.events.push(entry);
        self.streaming = self.turns.last().is_some_and(|t| t.end.is_none());
    }
}

type Listener = Box<dyn Fn(&SessionState) + Send + Sync>;

/// A session kept current over the realtime channel: [`SessionHandle::state`]
/// reads it, [`SessionHandle::changed`] and [`SessionHandle::wait_for`] wait
/// for news, [`SessionHandle::on_change`] calls back on each. Dropping the
/// handle stops following.
pub struct SessionHandle {
    rx: watch::Receiver<Arc<SessionState>>,
    listeners: Arc<Mutex<Vec<Listener>>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHandle")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SessionHandle {
    /// The state now.
    pub fn state(&self) -> Arc<SessionState> {
        self.rx.borrow().clone()
    }

    /// Waits for the next change; `false` once the handle stopped (the
    /// session was removed or the key refused).
    pub async fn changed(&mut self) -> bool {
        self.rx.changed().await.is_ok()
    }

    /// Waits until `ready` holds for the state, and returns it (at once if
    /// it holds now; with the last state if the handle stops first).
    pub async fn wait_for(&self, ready: impl Fn(&SessionState) -> bool) -> Arc<SessionState> {
        let mut rx = self.rx.clone();
        let result = rx.wait_for(|state| ready(state)).await.map(|s| s.clone());
        result.unwrap_or_else(|_| rx.borrow().clone())
    }

    /// Calls `listener` with every new state (on the handle's task: keep
    /// it quick).
    pub fn on_change(&self, listener: impl Fn(&SessionState) + Send + Sync + 'static) {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(listener));
    }
}

/// The task behind a [`SessionHandle`].
struct Follower {
    client: Client,
    id: String,
    state: SessionState,
    tx: watch::Sender<Arc<SessionState>>,
    listeners: Arc<Mutex<Vec<Listener>>>,
}

impl Follower {
    /// Connects, subscribes from the last event seen, and reads the queue.
    async fn connect(&mut self) -> Result<Realtime, Error> {
        let mut connection = self.client.realtime().await?;
        let subscribed = connection
            .subscribe_session(&self.id, Some(self.state.last_seq))
            .await?;
        self.state.session = Some(subscribed.session);
        self.state.queued = self.client.list_queue(&self.id).await.unwrap_or_default();
        self.state.connected = true;
        self.publish();
        Ok(connection)
    }

    async fn run(mut self, mut connection: Realtime) {
        loop {
            if self.follow(&mut connection).await {
                return;
            }
            connection.close().await;
            self.state.connected = false;
            self.publish();
            let mut delay = RECONNECT_FIRST;
            connection = loop {
                tokio::time::sleep(delay).await;
                match self.connect().await {
                    Ok(connection) => break connection,
                    // Gone, or the key refused: nothing to retry.
                    Err(Error::Api(e)) if matches!(e.status, 401 | 404) => {
                        self.state.removed = e.status == 404;
                        self.publish();
                        return;
                    }
                    Err(_) => delay = (delay * 2).min(RECONNECT_MAX),
                }
            };
        }
    }

    /// Applies messages until the connection ends (`false`) or the session
    /// is removed (`true`).
    async fn follow(&mut self, connection: &mut Realtime) -> bool {
        while let Some(message) = connection.next().await {
            let Ok(message) = message else {
                return false;
            };
            match message {
                ServerMessage::Event { seq, event, .. } => self.state.apply(seq, event),
                ServerMessage::Patched { session, .. } => {
                    self.state.session = Some(session);
                    self.refresh_queue().await;
                }
                ServerMessage::Resync { .. } => {
                    if let Ok(detail) = self.client.get_session(&self.id).await {
                        self.state.session = Some(detail.session);
                    }
                    self.refresh_queue().await;
                }
                ServerMessage::Removed { session, .. } => {
                    if let Some(session) = session {
                        self.state.session = Some(session);
                    }
                    self.state.removed = true;
                    self.state.streaming = false;
                    self.state.queued.clear();
                    self.publish();
                    return true;
                }
                _ => continue,
            }
            self.publish();
        }
        false
    }

    async fn refresh_queue(&mut self) {
        let path = format!("/api/sdk/agents/{}/queue", segment(&self.id));
        if let Ok(list) = self.client.get::<kiln_api::QueueList>(&path).await {
            self.state.queued = list.queue;
        }
    }

    fn publish(&self) {
        let state = Arc::new(self.state.clone());
        for listener in self.listeners.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            listener(&state);
        }
        self.tx.send_replace(state);
    }
}
