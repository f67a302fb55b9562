//! The realtime channel (a Kiln extension): `GET /api/sdk/ws`, a WebSocket
//! on which a client follows its project's sessions and single sessions'
//! event logs (`kiln_api::realtime` has the messages).
//!
//! One connection is one loop over four sources: the client's messages,
//! the project's session news (`AgentRuntime::watch_sessions`, filtered to
//! what the connection follows), the events of each followed session (a
//! task per session reading `AgentRuntime::watch_session`, which goes
//! through every turn until the session is deleted), and a ping timer.
//! Session tasks hand their messages over a bounded channel, so a slow
//! client slows its own readers, which then read the log instead of the
//! hub; nothing queues without bound.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;
use futures::StreamExt;
use kiln_api::realtime::{
    ClientMessage, MAX_CLIENT_MESSAGE_BYTES, MAX_SESSION_SUBSCRIPTIONS, SCOPE_PROJECT, SCOPE_SESSION,
    ServerMessage, Subscription,
};
use kiln_api::{ErrorBody, codes};
use kiln_core::auth::AuthContext;
use kiln_core::ids::SessionId;
use kiln_core::runtime::news::{SessionChange, SessionNews};
use kiln_core::runtime::{EventBody, FollowItem, Session, TurnErrorCode};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::RealtimeAuthed;
use crate::{AppState, convert};

/// WebSocket pings, so proxies keep the connection and dead peers show.
const PING_EVERY: Duration = Duration::from_secs(25);
/// Messages from session readers waiting for the socket.
const OUTBOX: usize = 256;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(realtime))
}

/// Kiln: the realtime channel, a WebSocket. Authenticate with `X-API-Key`,
/// `Authorization: Bearer`, or `?token=` holding a short-lived token from
/// `POST /api/sdk/tokens` (API keys are refused there). Then send JSON text
/// messages: `{"type":"subscribe","scope":"project"}` for `created`,
/// `patched` and `removed` messages about every session of the project, or
/// `{"type":"subscribe","session_id":"…","after":N}` for that session's
/// events after sequence number `N` (left out: only new ones) as
/// `{"type":"event","session_id","seq","event"}` through every turn, plus
/// its own `patched` and `removed`. Each subscribe is answered with
/// `subscribed` (for a session: the session and the cursor); `unsubscribe`
/// takes the same shape; `ping` gets `pong`; a message that cannot be
/// served gets `error` with the contract's error body and the message's
/// `id`, and the connection stays open. At most 100 sessions per
/// connection; client messages up to 64 KiB. A token scoped to one session
/// follows only that session (the project scope shows only it).
#[utoipa::path(get, path = "/api/sdk/ws", tag = "agents",
    params(("token" = Option<String>, Query, description = "A short-lived token, for clients that cannot set headers")),
    responses((status = 101, description = "Switching to the WebSocket protocol"),
              (status = 400, body = ErrorBody, description = "Not a WebSocket upgrade request"),
              (status = 401, body = ErrorBody)))]
async fn realtime(
    State(state): State<AppState>,
    RealtimeAuthed(ctx): RealtimeAuthed,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::BAD_REQUEST,
            format!("GET /api/sdk/ws is a WebSocket endpoint: {rejection}"),
        )
    })?;
    Ok(upgrade
        .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_frame_size(MAX_CLIENT_MESSAGE_BYTES)
        .on_upgrade(move |socket| Connection::new(state, ctx).serve(socket)))
}

/// One client's connection.
struct Connection {
    state: AppState,
    ctx: AuthContext,
    /// The project's news, once anything is followed.
    news: Option<broadcast::Receiver<Arc<SessionNews>>>,
    project: bool,
    /// Followed sessions and the tasks reading their logs.
    sessions: HashMap<SessionId, JoinHandle<()>>,
    /// The last event seq sent of each followed session.
    sent: HashMap<SessionId, i64>,
    /// `patched` news of followed sessions waiting for the events they
    /// already count (their `last_seq`), in order: news and events come
    /// from separate readers, and a client must not see a session patched
    /// to `active` before the `done` that ended its turn.
    held: HashMap<SessionId, VecDeque<(i64, ServerMessage)>>,
    outbox: mpsc::Sender<Out>,
}

/// What a session task hands the connection.
enum Out {
    Message(Box<ServerMessage>),
    /// The session's reader ended (the session is gone, or the log failed).
    Ended(SessionId),
}

impl Drop for Connection {
    fn drop(&mut self) {
        for (_, task) in self.sessions.drain() {
            task.abort();
        }
    }
}

impl Connection {
    fn new(state: AppState, ctx: AuthContext) -> Connection {
        Connection {
            state,
            ctx,
            news: None,
            project: false,
            sessions: HashMap::new(),
            sent: HashMap::new(),
            held: HashMap::new(),
            outbox: mpsc::channel(1).0,
        }
    }

    async fn serve(mut self, mut socket: WebSocket) {
        let (outbox, mut inbox) = mpsc::channel(OUTBOX);
        self.outbox = outbox;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            let reply = tokio::select! {
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Text(text))) => self.on_message(text.as_str()).await,
                    Some(Ok(Message::Binary(_))) => vec![bad_request(None, "send JSON text messages")],
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => Vec::new(),
                },
                news = recv_news(&mut self.news) => self.on_news(news),
                Some(out) = inbox.recv() => match out {
                    Out::Message(message) => self.on_event(*message),
                    Out::Ended(id) => {
                        self.sessions.remove(&id);
                        self.forget(&id)
                    }
                },
                _ = ping.tick() => {
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        return;
                    }
                    Vec::new()
                }
            };
            for message in reply {
                let text = serde_json::to_string(&message).expect("messages serialise");
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
        }
    }

    async fn on_message(&mut self, text: &str) -> Vec<ServerMessage> {
        let message: ClientMessage = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(e) => {
                let id = serde_json::from_str::<Value>(text)
                    .ok()
                    .and_then(|v| v.get("id").cloned());
                return vec![bad_request(
                    id,
                    &format!(
                        "not a message of the realtime channel ({e}); send {{\"type\":\"subscribe\",\"scope\":\"project\"}} \
                         or {{\"type\":\"subscribe\",\"session_id\":\"…\"}}"
                    ),
                )];
            }
        };
        match message {
            ClientMessage::Ping { id } => vec![ServerMessage::Pong { id }],
            ClientMessage::Subscribe(sub) => match self.subscribe(sub.clone()).await {
                Ok(reply) => vec![reply],
                Err(e) => vec![error(sub.id, e.body)],
            },
            ClientMessage::Unsubscribe(sub) => match target(&sub) {
                Ok(None) => {
                    self.project = false;
                    vec![ServerMessage::Unsubscribed {
                        scope: SCOPE_PROJECT.into(),
                        session_id: None,
                        id: sub.id,
                    }]
                }
                Ok(Some(session_id)) => {
                    if let Some(task) = self.sessions.remove(&session_id) {
                        task.abort();
                    }
                    self.sent.remove(&session_id);
                    self.held.remove(&session_id);
                    vec![ServerMessage::Unsubscribed {
                        scope: SCOPE_SESSION.into(),
                        session_id: Some(session_id.into_string()),
                        id: sub.id,
                    }]
                }
                Err(e) => vec![error(sub.id, e.body)],
            },
        }
    }

    async fn subscribe(&mut self, sub: Subscription) -> Result<ServerMessage, ApiError> {
        let Some(session_id) = target(&sub)? else {
            self.follow_news();
            self.project = true;
            return Ok(ServerMessage::Subscribed {
                scope: SCOPE_PROJECT.into(),
                session_id: None,
                after: None,
                session: None,
                id: sub.id,
            });
        };
        if let Some(after) = sub.after
            && after < 0
        {
            return Err(ApiError::validation("after must be 0 or more", Some("after")));
        }
        if self.ctx.session.as_ref().is_some_and(|own| *own != session_id) {
            return Err(
                kiln_core::Error::not_found(kiln_core::error::EntityKind::Session, &session_id).into(),
            );
        }
        if !self.sessions.contains_key(&session_id) && self.sessions.len() >= MAX_SESSION_SUBSCRIPTIONS {
            return Err(ApiError::bad_request(
                format!(
                    "a connection follows at most {MAX_SESSION_SUBSCRIPTIONS} sessions; unsubscribe from one first"
                ),
                Some("session_id"),
            ));
        }
        // News first: a change after the session is read is not missed.
        self.follow_news();
        let (session, cursor, events) = self
            .state
            .runtime
            .watch_session(&self.ctx, &session_id, sub.after)
            .await?;
        let task = tokio::spawn(forward_events(session_id.clone(), events, self.outbox.clone()));
        if let Some(previous) = self.sessions.insert(session_id.clone(), task) {
            previous.abort();
        }
        self.sent.insert(session_id.clone(), cursor);
        self.held.remove(&session_id);
        Ok(ServerMessage::Subscribed {
            scope: SCOPE_SESSION.into(),
            session_id: Some(session_id.into_string()),
            after: Some(cursor),
            session: Some(convert::session(session)),
            id: sub.id,
        })
    }

    fn follow_news(&mut self) {
        if self.news.is_none() {
            self.news = Some(self.state.runtime.watch_sessions(&self.ctx));
        }
    }

    fn on_news(&mut self, news: Result<Arc<SessionNews>, broadcast::error::RecvError>) -> Vec<ServerMessage> {
        let news = match news {
            Ok(news) => news,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                return vec![ServerMessage::Resync {
                    scope: if self.project {
                        SCOPE_PROJECT
                    } else {
                        SCOPE_SESSION
                    }
                    .into(),
                }];
            }
            Err(broadcast::error::RecvError::Closed) => {
                self.news = None;
                return Vec::new();
            }
        };
        let followed = self.sessions.contains_key(&news.session_id);
        let visible = self
            .ctx
            .session
            .as_ref()
            .is_none_or(|own| *own == news.session_id);
        if !visible || !(self.project || followed) {
            return Vec::new();
        }
        let session_id = news.session_id.as_str().to_owned();
        let session = news.session.as_ref().map(|s| convert::session(Session::clone(s)));
        let message = match (news.change, session) {
            (SessionChange::Removed, session) => {
                if let Some(task) = self.sessions.remove(&news.session_id) {
                    task.abort();
                }
                let mut out = self.forget(&news.session_id);
                out.push(ServerMessage::Removed { session_id, session });
                return out;
            }
            (SessionChange::Created, Some(session)) => ServerMessage::Created { session_id, session },
            (SessionChange::Patched, Some(session)) => {
                let counts = news.session.as_ref().map_or(0, |s| s.last_seq);
                let message = ServerMessage::Patched { session_id, session };
                if let Some(sent) = self.sent.get(&news.session_id).filter(|_| followed) {
                    let held = self.held.entry(news.session_id.clone()).or_default();
                    if counts > *sent || !held.is_empty() {
                        held.push_back((counts, message));
                        return Vec::new();
                    }
                }
                message
            }
            (_, None) => return Vec::new(),
        };
        vec![message]
    }

    /// An event of a followed session, then the news it was holding back.
    fn on_event(&mut self, message: ServerMessage) -> Vec<ServerMessage> {
        let ServerMessage::Event { session_id, seq, .. } = &message else {
            return vec![message];
        };
        let id = SessionId::from_string(session_id.clone());
        let seq = *seq;
        self.sent.insert(id.clone(), seq);
        let mut out = vec![message];
        if let Some(held) = self.held.get_mut(&id) {
            while held.front().is_some_and(|(counts, _)| *counts <= seq) {
                out.extend(held.pop_front().map(|(_, m)| m));
            }
        }
        out
    }

    /// A session no longer followed: the news it held goes out as it is.
    fn forget(&mut self, id: &SessionId) -> Vec<ServerMessage> {
        self.sent.remove(id);
        self.held
            .remove(id)
            .map(|held| held.into_iter().map(|(_, m)| m).collect())
            .unwrap_or_default()
    }
}

/// The next news, or never when nothing is followed yet.
async fn recv_news(
    news: &mut Option<broadcast::Receiver<Arc<SessionNews>>>,
) -> Result<Arc<SessionNews>, broadcast::error::RecvError> {
    match news {
        Some(news) => news.recv().await,
        None => std::future::pending().await,
    }
}

/// The session a subscription names, or `None` for the project.
fn target(sub: &Subscription) -> Result<Option<SessionId>, ApiError> {
    match (sub.scope.as_deref(), sub.session_id.as_deref()) {
        (Some(SCOPE_PROJECT), None) => Ok(None),
        (None | Some(SCOPE_SESSION), Some(id)) if !id.trim().is_empty() => {
            Ok(Some(SessionId::from_string(id)))
        }
        (Some(scope), None) if scope != SCOPE_SESSION => Err(ApiError::validation(
            format!("unknown scope `{scope}`: use \"project\", or give a session_id"),
            Some("scope"),
        )),
        (Some(SCOPE_PROJECT), Some(_)) => Err(ApiError::validation(
            "give either scope \"project\" or a session_id, not both",
            Some("session_id"),
        )),
        _ => Err(ApiError::validation(
            "give scope \"project\" or a session_id",
            Some("session_id"),
        )),
    }
}

/// Hands a session's events to the connection until its reader ends.
async fn forward_events(
    session_id: SessionId,
    mut events: kiln_core::runtime::EventFollow,
    outbox: mpsc::Sender<Out>,
) {
    let wire_id = session_id.as_str().to_owned();
    let mut last = None;
    while let Some(item) = events.next().await {
        let FollowItem::Event(stored) = item else {
            continue;
        };
        // The reader's own last word (not in the log): the session is gone
        // (its `removed` comes as news) or the log could not be read.
        if last.is_some_and(|seq| stored.seq <= seq) || stored.turn_id.as_str().is_empty() {
            if let EventBody::Error { code, message } = &stored.body
                && *code != TurnErrorCode::SessionDeleted
            {
                let body = ErrorBody::new(codes::INTERNAL, message.clone())
                    .with_detail("session_id", wire_id.as_str());
                let _ = outbox.send(Out::Message(Box::new(error(None, body)))).await;
            }
            break;
        }
        last = Some(stored.seq);
        let message = ServerMessage::Event {
            session_id: wire_id.clone(),
            seq: stored.seq,
            event: convert::agent_event(&wire_id, stored.body.clone()),
        };
        if outbox.send(Out::Message(Box::new(message))).await.is_err() {
            return;
        }
    }
    let _ = outbox.send(Out::Ended(session_id)).await;
}

fn error(id: Option<Value>, error: ErrorBody) -> ServerMessage {
    ServerMessage::Error { error, id }
}

fn bad_request(id: Option<Value>, message: &str) -> ServerMessage {
    error(id, ErrorBody::new(codes::BAD_REQUEST, message))
}
