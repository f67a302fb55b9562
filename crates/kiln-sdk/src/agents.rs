//! Agent sessions (CONTRACT §2.7): create, list, read and delete sessions,
//! run a turn as a typed event stream, answer the agent's input requests,
//! cancel a running turn, and resume a turn's events after a cut.
//!
//! ```no_run
//! # async fn demo(client: kiln_sdk::Client) -> Result<(), kiln_sdk::Error> {
//! use futures_util::StreamExt;
//! use kiln_sdk::TurnEventKind;
//!
//! let session = client.create_session(&Default::default()).await?;
//! let mut events = client.run_agent(&session.id, "What is 2 + 2?").await?;
//! while let Some(event) = events.next().await {
//!     match event?.kind {
//!         TurnEventKind::Response { content, .. } => println!("{content}"),
//!         TurnEventKind::Error { message, .. } => eprintln!("failed: {message}"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_util::StreamExt;
use reqwest::Method;
use reqwest::header::ACCEPT;
use serde_json::{Map, Value};

use kiln_api::sse::{SseDecoder, SseEvent};
use kiln_api::{
    AgentEvent, AgentSession, CancelResult, CreateSession, EventSummary, EventTokens, InputAnswer, PageQuery,
    ReplayRequest, RunAgent, SessionDetail, SessionList, SystemPrompt, event_types,
};

use crate::client::{Client, segment};
use crate::error::{Error, StreamCut};

/// The kind of answer an `input_request` wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputType {
    /// Yes or no: answer with a JSON boolean.
    Confirm,
    /// One of [`InputRequest::options`]: answer with that string.
    Choice,
    /// Free text: answer with a string.
    Text,
    /// A type this SDK does not know.
    Other(String),
}

impl InputType {
    pub fn parse(value: &str) -> Self {
        match value {
            "confirm" => InputType::Confirm,
            "choice" => InputType::Choice,
            "text" => InputType::Text,
            other => InputType::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            InputType::Confirm => "confirm",
            InputType::Choice => "choice",
            InputType::Text => "text",
            InputType::Other(other) => other,
        }
    }
}

/// The agent paused for user input; answer with
/// [`Client::respond_to_input`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRequest {
    /// Pass this back to `respond_to_input`.
    pub request_id: String,
    pub input_type: InputType,
    /// The question (the event's `content` when `args.message` is empty).
    pub message: String,
    /// The choices of a `choice` request; empty otherwise.
    pub options: Vec<String>,
    /// A hint for a `text` answer; empty when none.
    pub placeholder: String,
}

/// What one event of a turn says, typed by its `type`.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnEventKind {
    /// Model text before a code block (`kind: "llm"`) or a primitive called
    /// inside the sandbox (`search`, `fetch`, `ai`, ...).
    SandboxEvent {
        kind: String,
        summary: String,
        content: String,
        tokens: Option<EventTokens>,
    },
    /// A JavaScript block about to run in the sandbox.
    ExecuteJs {
        code: String,
        tokens: Option<EventTokens>,
    },
    /// The block finished: readable `content`, the raw `result`, and the
    /// error message when it threw.
    ExecuteJsResult {
        content: String,
        result: Option<Value>,
        error: Option<String>,
    },
    /// A function-call tool was invoked. `call_id` is set when it is one of
    /// the session's client tools: answer it with
    /// [`Client::submit_tool_result`] (or let [`Client::run_with_tools`]).
    ToolCall {
        tool: String,
        args: Map<String, Value>,
        call_id: Option<String>,
    },
    /// That tool returned.
    ToolResult {
        tool: String,
        result: Option<Value>,
        content: Option<String>,
    },
    /// The session's data changed: the keys and their new values.
    DataUpdate { changes: Map<String, Value> },
    /// The turn's user-visible answer.
    Response {
        content: String,
        tokens: Option<EventTokens>,
    },
    /// The agent waits for [`Client::respond_to_input`].
    InputRequest(InputRequest),
    /// Terminal: the turn failed. `code` is Kiln's reason (`cancelled`,
    /// `step_limit`, `input_timeout`, `upstream_error`, `interrupted`, ...;
    /// see `kiln_api::turn_error_codes`), `None` from servers that send none.
    Error { message: String, code: Option<String> },
    /// Terminal: the turn finished.
    Done(EventSummary),
    /// First on a studio replay: the new session and what it replays.
    ReplayStarted {
        session_id: String,
        source_session_id: String,
        from_step: i64,
    },
    /// A type this SDK does not know: opaque and never terminal (read
    /// [`TurnEvent::raw`]).
    Other,
}

/// One event of a turn stream.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnEvent {
    /// The event's sequence number in the session (the SSE `id:` line);
    /// `None` when the server sent none.
    pub seq: Option<i64>,
    pub kind: TurnEventKind,
    /// The `data:` line as sent.
    pub raw: AgentEvent,
}

fn string_arg(args: Option<&Map<String, Value>>, key: &str) -> Option<String> {
    args.and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

impl TurnEvent {
    /// Types `raw` by its `type`.
    pub fn new(seq: Option<i64>, raw: AgentEvent) -> Self {
        let args = raw.args.as_ref();
        let content = || raw.content.clone().unwrap_or_default();
        let kind = match raw.kind.as_str() {
            event_types::SANDBOX_EVENT => TurnEventKind::SandboxEvent {
                kind: string_arg(args, "kind").unwrap_or_default(),
                summary: string_arg(args, "summary").unwrap_or_default(),
                content: content(),
                tokens: raw.tokens,
            },
            event_types::EXECUTE_JS => TurnEventKind::ExecuteJs {
                code: content(),
                tokens: raw.tokens,
            },
            event_types::EXECUTE_JS_RESULT => TurnEventKind::ExecuteJsResult {
                content: content(),
                result: raw.result.clone(),
                error: string_arg(args, "error"),
            },
            event_types::TOOL_CALL => TurnEventKind::ToolCall {
                tool: raw.tool.clone().unwrap_or_default(),
                args: raw.args.clone().unwrap_or_default(),
                call_id: raw.call_id.clone(),
            },
            event_types::TOOL_RESULT => TurnEventKind::ToolResult {
                tool: raw.tool.clone().unwrap_or_default(),
                result: raw.result.clone(),
                content: raw.content.clone(),
            },
            event_types::DATA_UPDATE => TurnEventKind::DataUpdate {
                changes: raw.args.clone().unwrap_or_default(),
            },
            event_types::RESPONSE => TurnEventKind::Response {
                content: content(),
                tokens: raw.tokens,
            },
            event_types::INPUT_REQUEST => TurnEventKind::InputRequest(InputRequest {
                request_id: string_arg(args, "request_id").unwrap_or_default(),
                input_type: InputType::parse(&string_arg(args, "input_type").unwrap_or_default()),
                message: string_arg(args, "message")
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(content),
                options: args
                    .and_then(|a| a.get("options"))
                    .and_then(Value::as_array)
                    .map(|o| o.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default(),
                placeholder: string_arg(args, "placeholder").unwrap_or_default(),
            }),
            event_types::ERROR => TurnEventKind::Error {
                message: content(),
                code: raw.code.clone(),
            },
            event_types::DONE => TurnEventKind::Done(raw.summary.clone().unwrap_or(EventSummary {
                session_id: String::new(),
                steps: 0,
                tokens: EventTokens::default(),
            })),
            event_types::REPLAY_STARTED => TurnEventKind::ReplayStarted {
                session_id: string_arg(args, "session_id").unwrap_or_else(content),
                source_session_id: string_arg(args, "source_session_id").unwrap_or_default(),
                from_step: args
                    .and_then(|a| a.get("from_step"))
                    .and_then(Value::as_i64)
                    .unwrap_or_default(),
            },
            _ => TurnEventKind::Other,
        };
        TurnEvent { seq, kind, raw }
    }

    /// `done` or `error`: the last event of the turn.
    pub fn is_terminal(&self) -> bool {
        matches!(self.kind, TurnEventKind::Done(_) | TurnEventKind::Error { .. })
    }
}

/// Bytes of a turn stream in, [`TurnEvent`]s out. Follows the contract's
/// client rules: only events with data count (heartbeat comments, `retry:`
/// and blank events are skipped); an `event: done` / `event: error` name (or
/// a `done` / `error` type) ends the turn and nothing after it is read; the
/// body ending before that is one [`Error::StreamCut`] (an event the body
/// ended inside is incomplete and dropped).
#[derive(Debug)]
pub(crate) struct TurnDecoder {
    sse: SseDecoder,
    session_id: String,
    last_seq: Option<i64>,
    ended: bool,
}

impl TurnDecoder {
    /// `after`: the cursor the stream starts from (`None` for a `run`).
    pub(crate) fn new(session_id: &str, after: Option<i64>) -> Self {
        TurnDecoder {
            sse: SseDecoder::new(),
            session_id: session_id.to_owned(),
            last_seq: after,
            ended: false,
        }
    }

    /// Whether the stream has yielded its last item.
    pub(crate) fn ended(&self) -> bool {
        self.ended
    }

    /// The items `chunk` completes.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Vec<Result<TurnEvent, Error>> {
        if self.ended {
            return Vec::new();
        }
        let events = self.sse.feed(chunk);
        self.take(events)
    }

    /// The body ended (`cause`: the transport error that ended it, if any).
    pub(crate) fn finish(&mut self, cause: Option<String>) -> Vec<Result<TurnEvent, Error>> {
        if self.ended {
            return Vec::new();
        }
        // An event the body ended inside (no blank line yet) is incomplete:
        // dropped, as SSE says, and the turn is cut.
        self.ended = true;
        vec![Err(Error::StreamCut(StreamCut {
            session_id: self.session_id.clone(),
            last_seq: self.last_seq,
            cause,
        }))]
    }

    fn take(&mut self, events: Vec<SseEvent>) -> Vec<Result<TurnEvent, Error>> {
        let mut items = Vec::new();
        for event in events {
            if self.ended {
                break;
            }
            let seq = event.id.as_deref().and_then(|id| id.trim().parse::<i64>().ok());
            let raw = match serde_json::from_str::<AgentEvent>(&event.data) {
                Ok(raw) => raw,
                Err(e) => {
                    self.ended = true;
                    items.push(Err(Error::Decode(format!(
                        "malformed agent event{}: {e}",
                        seq.map(|s| format!(" {s}")).unwrap_or_default()
                    ))));
                    break;
                }
            };
            if seq.is_some() {
                self.last_seq = seq;
            }
            let named_terminal = event.event == event_types::DONE || event.event == event_types::ERROR;
            let item = TurnEvent::new(seq, raw);
            self.ended = named_terminal || item.is_terminal();
            items.push(Ok(item));
        }
        items
    }
}

type Inner = Pin<Box<dyn Stream<Item = Result<TurnEvent, Error>> + Send + 'static>>;

/// The events of one turn, as a `Stream` of `Result<TurnEvent, Error>`.
///
/// It ends after the turn's terminal event (`done`, or `error`, which is an
/// `Ok` item of kind [`TurnEventKind::Error`]: data about the turn, not a
/// failure of the stream). If the body ends before that, the last item is
/// one `Err(`[`Error::StreamCut`]`)` carrying [`AgentEventStream::last_seq`];
/// nothing follows an `Err`.
pub struct AgentEventStream {
    inner: Inner,
    session_id: String,
    last_seq: Arc<AtomicI64>,
}

/// `last_seq` before any: no sequence number known.
const NO_SEQ: i64 = i64::MIN;

impl std::fmt::Debug for AgentEventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentEventStream")
            .field("session_id", &self.session_id)
            .field("last_seq", &self.last_seq())
            .finish_non_exhaustive()
    }
}

impl AgentEventStream {
    /// A stream over any SSE body: `session_id` names the session in
    /// [`StreamCut`] errors, `after` is the cursor it starts from (`None`
    /// for a `run`). `Client::run_agent` and `Client::resume_events` build
    /// theirs with it; it also serves tests and custom transports.
    pub fn from_body<S, B, E>(session_id: &str, after: Option<i64>, body: S) -> Self
    where
        S: Stream<Item = Result<B, E>> + Send + 'static,
        B: AsRef<[u8]> + Send,
        E: std::fmt::Display + Send,
    {
        let last_seq = Arc::new(AtomicI64::new(after.unwrap_or(NO_SEQ)));
        let seen = last_seq.clone();
        let decoder = TurnDecoder::new(session_id, after);
        let inner = futures_util::stream::unfold(
            (Box::pin(body), decoder, VecDeque::new()),
            move |(mut body, mut decoder, mut ready)| {
                let seen = seen.clone();
                async move {
                    loop {
                        if let Some(item) = ready.pop_front() {
                            if let Ok(TurnEvent { seq: Some(seq), .. }) = &item {
                                seen.store(*seq, Ordering::Release);
                            }
                            return Some((item, (body, decoder, ready)));
                        }
                        if decoder.ended() {
                            return None;
                        }
                        match body.next().await {
                            Some(Ok(bytes)) => ready.extend(decoder.feed(bytes.as_ref())),
                            Some(Err(e)) => ready.extend(decoder.finish(Some(e.to_string()))),
                            None => ready.extend(decoder.finish(None)),
                        }
                    }
                }
            },
        );
        AgentEventStream {
            // Fused: polling after the end keeps answering `None`.
            inner: Box::pin(inner.fuse()),
            session_id: session_id.to_owned(),
            last_seq,
        }
    }

    pub(crate) fn from_response(session_id: &str, after: Option<i64>, response: reqwest::Response) -> Self {
        Self::from_body(session_id, after, response.bytes_stream())
    }

    /// The session whose turn this is.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The sequence number of the last event this stream yielded (for a
    /// resumed stream that yielded none, its starting cursor): pass it to
    /// [`Client::resume_events`] to continue after a cut. `None` until a
    /// `run` stream yields an event with an `id:`.
    pub fn last_seq(&self) -> Option<i64> {
        match self.last_seq.load(Ordering::Acquire) {
            NO_SEQ => None,
            seq => Some(seq),
        }
    }

    /// Reads the whole turn: every event up to and including the terminal
    /// one, or the first error.
    pub async fn collect_turn(mut self) -> Result<Vec<TurnEvent>, Error> {
        let mut events = Vec::new();
        while let Some(item) = self.next().await {
            events.push(item?);
        }
        Ok(events)
    }
}

impl Stream for AgentEventStream {
    type Item = Result<TurnEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl Client {
    /// `GET /api/sdk/agents/system-prompt`: the full runtime system prompt
    /// (platform prompt and sandbox documentation), unwrapped from
    /// `{"prompt": …}`.
    pub async fn agent_system_prompt(&self) -> Result<String, Error> {
        Ok(self
            .get::<SystemPrompt>("/api/sdk/agents/system-prompt")
            .await?
            .prompt)
    }

    /// `POST /api/sdk/agents`: a new session (`status: "active"`).
    pub async fn create_session(&self, input: &CreateSession) -> Result<AgentSession, Error> {
        self.with_body(Method::POST, "/api/sdk/agents", input).await
    }

    /// `GET /api/sdk/agents`, newest first.
    pub async fn list_sessions(
        &self,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> Result<Vec<AgentSession>, Error> {
        let query = PageQuery { limit, offset };
        let list: SessionList = self
            .json(self.request(Method::GET, "/api/sdk/agents").query(&query))
            .await?;
        Ok(list.sessions)
    }

    /// `GET /api/sdk/agents/{id}`: the session and its steps by `step_index`.
    pub async fn get_session(&self, id: &str) -> Result<SessionDetail, Error> {
        self.get(&format!("/api/sdk/agents/{}", segment(id))).await
    }

    /// `DELETE /api/sdk/agents/{id}`: the session and its steps.
    pub async fn delete_session(&self, id: &str) -> Result<(), Error> {
        self.delete(&format!("/api/sdk/agents/{}", segment(id))).await
    }

    /// `POST /api/sdk/agents/{id}/run`: runs one turn and streams its events.
    /// Refusals come before the stream as `Error::Api` (404, 400 for an
    /// empty message, 409 `run_in_progress`, 429); failures during the turn
    /// are its terminal `error` event.
    pub async fn run_agent(&self, id: &str, message: &str) -> Result<AgentEventStream, Error> {
        let body = RunAgent {
            message: message.to_owned(),
        };
        let response = self
            .send(
                self.request(Method::POST, &format!("/api/sdk/agents/{}/run", segment(id)))
                    .header(ACCEPT, "text/event-stream")
                    .json(&body),
            )
            .await?;
        // The user message's sequence number: where to resume from if the
        // stream drops before its first event.
        let cursor = response
            .headers()
            .get(kiln_api::EVENT_CURSOR_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok());
        Ok(AgentEventStream::from_response(id, cursor, response))
    }

    /// `POST /api/sdk/studio/{id}/replay`: replays the session from a step
    /// into a new session, streamed like [`Client::run_agent`]; the first
    /// event is [`TurnEventKind::ReplayStarted`] with the new session's id
    /// (resume a dropped replay with `resume_events` on that id).
    pub async fn replay_session(&self, id: &str, request: &ReplayRequest) -> Result<AgentEventStream, Error> {
        let response = self
            .send(
                self.request(Method::POST, &format!("/api/sdk/studio/{}/replay", segment(id)))
                    .header(ACCEPT, "text/event-stream")
                    .json(request),
            )
            .await?;
        Ok(AgentEventStream::from_response(id, None, response))
    }

    /// `POST /api/sdk/agents/{id}/input`: answers an `input_request`
    /// (`value`: a boolean for `confirm`, one of the options for `choice`,
    /// a string for `text`). The paused turn's stream then continues.
    pub async fn respond_to_input(&self, id: &str, request_id: &str, value: Value) -> Result<(), Error> {
        let body = InputAnswer {
            request_id: request_id.to_owned(),
            value,
        };
        // `{"ok": true}` or an empty 204: either is success.
        self.send(
            self.request(Method::POST, &format!("/api/sdk/agents/{}/input", segment(id)))
                .json(&body),
        )
        .await?;
        Ok(())
    }

    /// `POST /api/sdk/agents/{id}/cancel`: stops the running turn (it ends
    /// with an `error` event of code `cancelled`) and returns the session
    /// after it. 409 `not_running` when no turn runs. (Named for the session
    /// it acts on, as the client is flat over every resource.)
    pub async fn cancel_session(&self, id: &str) -> Result<CancelResult, Error> {
        let path = format!("/api/sdk/agents/{}/cancel", segment(id));
        self.json(self.request(Method::POST, &path)).await
    }

    /// `GET /api/sdk/agents/{id}/events?after=N`: the session's events with a
    /// sequence number above `after`, then the running turn's live ones
    /// until it ends. Pass the [`AgentEventStream::last_seq`] (or
    /// [`StreamCut::last_seq`]) of a cut stream to pick up where it
    /// stopped. The stream ends at the first terminal event; when nothing
    /// is left to replay and no turn runs it ends at once, as a
    /// [`Error::StreamCut`] with `last_seq == Some(after)`.
    pub async fn resume_events(&self, id: &str, after: i64) -> Result<AgentEventStream, Error> {
        let response = self
            .send(
                self.request(Method::GET, &format!("/api/sdk/agents/{}/events", segment(id)))
                    .header(ACCEPT, "text/event-stream")
                    .query(&[("after", after)]),
            )
            .await?;
        Ok(AgentEventStream::from_response(id, Some(after), response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&str], after: Option<i64>) -> Vec<Result<TurnEvent, Error>> {
        let mut decoder = TurnDecoder::new("s1", after);
        let mut items = Vec::new();
        for chunk in chunks {
            items.extend(decoder.feed(chunk.as_bytes()));
        }
        items.extend(decoder.finish(None));
        items
    }

    const TURN: &str = concat!(
        ": ping\n\n",
        "id: 2\nevent: sandbox_event\ndata: {\"type\":\"sandbox_event\",\"content\":\"I'll compute.\",",
        "\"args\":{\"kind\":\"llm\",\"summary\":\"I'll compute.\"}}\n\n",
        "id: 3\nevent: execute_js\ndata: {\"type\":\"execute_js\",\"tool\":\"execute_js\",\"content\":\"2 + 2\",",
        "\"tokens\":{\"prompt\":380,\"completion\":31}}\n\n",
        ": ping\n\n",
        "id: 4\nevent: execute_js_result\ndata: {\"type\":\"execute_js_result\",\"content\":\"4\",\"result\":4}\n\n",
        "id: 5\nevent: response\ndata: {\"type\":\"response\",\"content\":\"4.\",",
        "\"tokens\":{\"prompt\":32,\"completion\":7}}\n\n",
        "id: 6\nevent: done\ndata: {\"type\":\"done\",\"summary\":{\"session_id\":\"s1\",\"steps\":4,",
        "\"tokens\":{\"prompt\":412,\"completion\":38}}}\n\n",
    );

    #[test]
    fn a_whole_turn_is_typed_with_its_sequence_numbers() {
        // Fed in 7-byte pieces, so every line is split somewhere.
        let pieces: Vec<&str> = TURN
            .as_bytes()
            .chunks(7)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let items: Vec<TurnEvent> = decode(&pieces, None).into_iter().map(Result::unwrap).collect();
        let seqs: Vec<Option<i64>> = items.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [Some(2), Some(3), Some(4), Some(5), Some(6)].to_vec());
        assert_eq!(
            items[0].kind,
            TurnEventKind::SandboxEvent {
                kind: "llm".into(),
                summary: "I'll compute.".into(),
                content: "I'll compute.".into(),
                tokens: None
            }
        );
        assert_eq!(
            items[1].kind,
            TurnEventKind::ExecuteJs {
                code: "2 + 2".into(),
                tokens: Some(EventTokens {
                    prompt: 380,
                    completion: 31
                })
            }
        );
        assert_eq!(
            items[2].kind,
            TurnEventKind::ExecuteJsResult {
                content: "4".into(),
                result: Some(serde_json::json!(4)),
                error: None
            }
        );
        assert!(matches!(&items[3].kind, TurnEventKind::Response { content, .. } if content == "4."));
        let TurnEventKind::Done(summary) = &items[4].kind else {
            panic!("done last: {:?}", items[4]);
        };
        assert_eq!((summary.session_id.as_str(), summary.steps), ("s1", 4));
        assert_eq!(summary.tokens.prompt, 412);
        assert_eq!(items[4].raw.kind, "done");
    }

    #[test]
    fn nothing_after_the_terminal_event_is_read() {
        let items = decode(
            &[
                "id: 1\nevent: error\ndata: {\"type\":\"error\",\"content\":\"stopped\",\"code\":\"cancelled\"}\n\n",
                "id: 2\nevent: response\ndata: {\"type\":\"response\",\"content\":\"late\"}\n\n",
            ],
            None,
        );
        assert_eq!(items.len(), 1, "{items:?}");
        let event = items[0].as_ref().unwrap();
        assert_eq!(
            event.kind,
            TurnEventKind::Error {
                message: "stopped".into(),
                code: Some("cancelled".into())
            }
        );
        assert!(event.is_terminal());
    }

    #[test]
    fn a_cut_stream_ends_with_one_error_naming_the_last_seq() {
        let items = decode(
            &[
                "id: 7\nevent: response\ndata: {\"type\":\"response\",\"content\":\"a\"}\n\n",
                "id: 8\nevent: sandbox_event\ndata: {\"type\":\"sandbox_ev",
            ],
            None,
        );
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!(items[0].as_ref().unwrap().seq, Some(7));
        let err = items[1].as_ref().unwrap_err();
        let cut = err.as_stream_cut().expect("a stream cut");
        assert_eq!(cut.last_seq, Some(7));
        assert_eq!(cut.session_id, "s1");
        assert!(err.to_string().contains("resume_events(\"s1\", 7)"), "{err}");
    }

    #[test]
    fn a_resumed_stream_without_events_reports_its_cursor() {
        let items = decode(&[": ping\n\n"], Some(12));
        assert_eq!(items.len(), 1);
        assert_eq!(
            items[0].as_ref().unwrap_err().as_stream_cut().unwrap().last_seq,
            Some(12)
        );
        let items = decode(&[], None);
        let cut = items[0].as_ref().unwrap_err();
        assert_eq!(cut.as_stream_cut().unwrap().last_seq, None);
        assert!(cut.to_string().contains("no event arrived"), "{cut}");
    }

    #[test]
    fn unknown_types_are_opaque_and_not_terminal() {
        let items = decode(
            &[
                "id: 1\nevent: step\ndata: {\"type\":\"thinking\",\"content\":\"hm\"}\n\n",
                "id: 2\nevent: done\ndata: {\"type\":\"done\"}\n\n",
            ],
            None,
        );
        assert_eq!(items.len(), 2);
        let first = items[0].as_ref().unwrap();
        assert_eq!(first.kind, TurnEventKind::Other);
        assert_eq!(first.raw.content.as_deref(), Some("hm"));
        assert!(!first.is_terminal());
        assert!(matches!(items[1].as_ref().unwrap().kind, TurnEventKind::Done(_)));
    }

    #[test]
    fn the_terminal_name_ends_the_turn_even_under_another_type() {
        let items = decode(
            &[
                "event: done\ndata: {\"type\":\"finished\"}\n\n",
                "data: {\"type\":\"response\",\"content\":\"late\"}\n\n",
            ],
            None,
        );
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].as_ref().unwrap().seq, None);
    }

    #[test]
    fn input_requests_and_the_other_kinds_are_typed() {
        let items = decode(
            &[
                "id: 1\nevent: input_request\ndata: {\"type\":\"input_request\",\"content\":\"Pick one\",",
                "\"args\":{\"request_id\":\"r1\",\"input_type\":\"choice\",\"message\":\"\",",
                "\"options\":[\"a\",\"b\"],\"placeholder\":\"\"}}\n\n",
                "id: 2\nevent: tool_call\ndata: {\"type\":\"tool_call\",\"tool\":\"search\",\"args\":{\"q\":\"x\"}}\n\n",
                "id: 3\nevent: tool_result\ndata: {\"type\":\"tool_result\",\"tool\":\"search\",\"result\":[1]}\n\n",
                "id: 4\nevent: data_update\ndata: {\"type\":\"data_update\",\"args\":{\"count\":3}}\n\n",
                "id: 5\nevent: execute_js_result\ndata: {\"type\":\"execute_js_result\",\"content\":\"boom\",",
                "\"args\":{\"error\":\"boom\"}}\n\n",
                "id: 6\nevent: error\ndata: {\"type\":\"error\",\"content\":\"no answer\"}\n\n",
            ],
            None,
        );
        let kinds: Vec<TurnEventKind> = items.into_iter().map(|i| i.unwrap().kind).collect();
        assert_eq!(
            kinds[0],
            TurnEventKind::InputRequest(InputRequest {
                request_id: "r1".into(),
                input_type: InputType::Choice,
                message: "Pick one".into(),
                options: vec!["a".into(), "b".into()],
                placeholder: String::new(),
            })
        );
        let args: Map<String, Value> = serde_json::from_str(r#"{"q":"x"}"#).unwrap();
        assert_eq!(
            kinds[1],
            TurnEventKind::ToolCall {
                tool: "search".into(),
                args,
                call_id: None
            }
        );
        assert_eq!(
            kinds[2],
            TurnEventKind::ToolResult {
                tool: "search".into(),
                result: Some(serde_json::json!([1])),
                content: None
            }
        );
        assert!(matches!(&kinds[3], TurnEventKind::DataUpdate { changes } if changes["count"] == 3));
        assert!(matches!(&kinds[4], TurnEventKind::ExecuteJsResult { error: Some(e), .. } if e == "boom"));
        assert_eq!(
            kinds[5],
            TurnEventKind::Error {
                message: "no answer".into(),
                code: None
            }
        );
    }

    #[test]
    fn malformed_data_is_one_decode_error() {
        let items = decode(
            &[
                "id: 3\ndata: not json\n\n",
                "id: 4\ndata: {\"type\":\"response\"}\n\n",
            ],
            None,
        );
        assert_eq!(items.len(), 1);
        assert!(matches!(&items[0], Err(Error::Decode(m)) if m.contains("event 3")));
    }

    #[tokio::test]
    async fn the_stream_tracks_last_seq_and_stops_after_an_error() {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
            Ok(b"id: 4\nevent: response\ndata: {\"type\":\"response\",\"content\":\"a\"}\n\n".to_vec()),
            Err(std::io::Error::other("connection reset")),
            Ok(b"id: 5\nevent: done\ndata: {\"type\":\"done\"}\n\n".to_vec()),
        ];
        let mut stream = AgentEventStream::from_body("s9", None, futures_util::stream::iter(chunks));
        assert_eq!(stream.last_seq(), None);
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.seq, Some(4));
        assert_eq!(stream.last_seq(), Some(4));
        let err = stream.next().await.unwrap().unwrap_err();
        let cut = err.as_stream_cut().unwrap();
        assert_eq!(
            (cut.last_seq, cut.cause.as_deref()),
            (Some(4), Some("connection reset"))
        );
        assert!(stream.next().await.is_none());
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn collect_turn_reads_to_the_terminal_event() {
        let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(TURN.as_bytes())]);
        let stream = AgentEventStream::from_body("s1", None, body);
        let events = stream.collect_turn().await.unwrap();
        assert_eq!(events.len(), 5);
        assert!(events.last().unwrap().is_terminal());

        let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
            &TURN.as_bytes()[..TURN.len() - 60],
        )]);
        let err = AgentEventStream::from_body("s1", Some(1), body)
            .collect_turn()
            .await
            .unwrap_err();
        assert_eq!(err.as_stream_cut().unwrap().last_seq, Some(5));
    }

    #[test]
    fn the_stream_is_send_and_static() {
        fn assert_send_static<T: Send + 'static>() {}
        assert_send_static::<AgentEventStream>();
    }
}
