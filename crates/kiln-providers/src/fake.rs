//! A scriptable fake LLM provider: a real HTTP server on 127.0.0.1 that
//! speaks OpenAI chat completions (with SSE streaming and tool calls),
//! Anthropic messages (with streaming), Gemini generateContent (with
//! streaming) and OpenAI embeddings; and, for `web_search()`, the Brave
//! Search API (`/res/v1/web/search`, which wants an `X-Subscription-Token`)
//! and SearXNG's JSON search (`/search?format=json`), both answering three
//! results made from the query. Tests queue replies (text, tool calls,
//! error statuses with `Retry-After`, delays, hangs, cut-off or malformed
//! streams) and read back the requests it received.
//!
//! It is test support, behind the `fake` feature; it is the only stand-in
//! Kiln's tests use, and it stands in for the vendors, never for Kiln.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// What one scripted reply does.
#[derive(Debug, Clone, PartialEq)]
pub enum Script {
    /// Answer with text.
    Text(String),
    /// Answer with tool calls `(name, arguments JSON)`.
    ToolCalls(Vec<(String, String)>),
    /// Answer with an error status and body in the vendor's error format.
    Status {
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    /// Never answer.
    Hang,
    /// Stream the first `chunks` pieces of the text, then close the body
    /// without finishing (non-streaming requests get a truncated body).
    CutOff { text: String, chunks: usize },
    /// A body that is not the vendor's format.
    Malformed,
    /// A streamed answer that starts with `text` and then fails with an
    /// error event in the vendor's format (`message`); a request that does
    /// not stream gets a 500 with it.
    StreamError { text: String, message: String },
    /// A response that never ends: a stream that keeps sending text (every
    /// `chunk_delay`, 20 ms when unset), or a JSON body that keeps sending
    /// whitespace.
    Endless,
    /// One agent step: a tool call `execute_js({"code": code})`, or, when
    /// the request's last message is a tool result, the text `answer`. As a
    /// default reply it answers any number of concurrent agent turns.
    CodeStep { code: String, answer: String },
    /// A [`Script::CodeStep`] whose code is the request's last user
    /// message: concurrent turns each run their own prompt as code.
    PromptAsCode { answer: String },
}

/// One scripted reply with its timing.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub script: Script,
    /// Wait before the response headers.
    pub delay: Duration,
    /// Wait between stream chunks.
    pub chunk_delay: Duration,
    /// `(prompt, completion)` tokens to report; default: 12 and one per word.
    pub usage: Option<(u32, u32)>,
    /// Headers added to an error response (`retry-after-ms`, a date in
    /// `Retry-After`).
    pub headers: Vec<(String, String)>,
}

impl Reply {
    fn new(script: Script) -> Self {
        Reply {
            script,
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            usage: None,
            headers: Vec::new(),
        }
    }

    pub fn text(text: impl Into<String>) -> Self {
        Self::new(Script::Text(text.into()))
    }

    pub fn tool_call(name: &str, arguments: Value) -> Self {
        Self::new(Script::ToolCalls(vec![(name.to_owned(), arguments.to_string())]))
    }

    pub fn tool_calls(calls: Vec<(&str, Value)>) -> Self {
        Self::new(Script::ToolCalls(
            calls
                .into_iter()
                .map(|(n, a)| (n.to_owned(), a.to_string()))
                .collect(),
        ))
    }

    pub fn status(status: u16, message: impl Into<String>) -> Self {
        Self::new(Script::Status {
            status,
            message: message.into(),
            retry_after: None,
        })
    }

    pub fn hang() -> Self {
        Self::new(Script::Hang)
    }

    pub fn cut_off(text: impl Into<String>, chunks: usize) -> Self {
        Self::new(Script::CutOff {
            text: text.into(),
            chunks,
        })
    }

    pub fn malformed() -> Self {
        Self::new(Script::Malformed)
    }

    pub fn endless() -> Self {
        Self::new(Script::Endless)
    }

    /// Tool calls whose arguments are `arguments` as they are (malformed
    /// JSON, say).
    pub fn raw_tool_call(name: &str, arguments: &str) -> Self {
        Self::new(Script::ToolCalls(vec![(name.to_owned(), arguments.to_owned())]))
    }

    pub fn stream_error(text: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Script::StreamError {
            text: text.into(),
            message: message.into(),
        })
    }

    /// Adds a header to the error response.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn code_step(code: impl Into<String>, answer: impl Into<String>) -> Self {
        Self::new(Script::CodeStep {
            code: code.into(),
            answer: answer.into(),
        })
    }

    /// Each turn runs its prompt (the last user message) as the code of
    /// one step, then answers `answer`.
    pub fn prompt_as_code(answer: impl Into<String>) -> Self {
        Self::new(Script::PromptAsCode {
            answer: answer.into(),
        })
    }

    /// A [`Script::CodeStep`] made concrete for `body`.
    fn for_request(mut self, body: &Value) -> Self {
        if let Script::PromptAsCode { answer } = &self.script {
            let prompt = body["messages"]
                .as_array()
                .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
                .and_then(|m| m["content"].as_str())
                .unwrap_or_default()
                .to_owned();
            self.script = Script::CodeStep {
                code: prompt,
                answer: answer.clone(),
            };
        }
        if let Script::CodeStep { code, answer } = &self.script {
            let last = ["messages", "contents"]
                .iter()
                .find_map(|k| body.get(*k).and_then(Value::as_array).and_then(|m| m.last()))
                .map(Value::to_string)
                .unwrap_or_default();
            let answered = last.contains("\"role\":\"tool\"")
                || last.contains("\"tool_result\"")
                || last.contains("\"functionResponse\"");
            self.script = if answered {
                Script::Text(answer.clone())
            } else {
                Script::ToolCalls(vec![(
                    "execute_js".to_owned(),
                    json!({ "code": code }).to_string(),
                )])
            };
        }
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        if let Script::Status { retry_after, .. } = &mut self.script {
            *retry_after = Some(seconds);
        }
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

    pub fn usage(mut self, prompt: u32, completion: u32) -> Self {
        self.usage = Some((prompt, completion));
        self
    }
}

/// A request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

#[derive(Default)]
struct FakeState {
    replies: Mutex<VecDeque<Reply>>,
    default_reply: Mutex<Option<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    required_key: Mutex<Option<String>>,
    /// Response bodies dropped before they were fully sent (client gone).
    abandoned: AtomicUsize,
    /// Requests are not recorded (long benchmarks).
    forgetful: std::sync::atomic::AtomicBool,
    /// Requests waiting out their reply's delay now, and the most at once.
    waiting: AtomicUsize,
    most_waiting: AtomicUsize,
}

/// The running fake. Dropping it stops the server.
pub struct FakeProvider {
    base_url: String,
    state: Arc<FakeState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeProvider {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start() -> FakeProvider {
        Self::start_on("127.0.0.1:0").await
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "a vendor stand-in, not Kiln's API: it has no OpenAPI document to keep in step"
    )]
    pub async fn start_on(addr: &str) -> FakeProvider {
        let state = Arc::new(FakeState::default());
        let router = Router::new()
            .route("/v1/chat/completions", post(openai_chat))
            .route("/v1/messages", post(anthropic_messages))
            .route("/v1beta/models/{model_action}", post(gemini_generate))
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/models", get(models))
            .route("/res/v1/web/search", get(brave_search))
            .route("/search", get(searxng_search))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("the fake provider binds");
        let base_url = format!("http://{}", listener.local_addr().expect("local addr"));
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router.into_make_service()).await;
        });
        FakeProvider {
            base_url,
            state,
            task,
        }
    }

    /// `http://127.0.0.1:PORT` (Anthropic's base URL).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `http://127.0.0.1:PORT/v1` (the OpenAI-compatible base URL).
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.base_url)
    }

    /// `http://127.0.0.1:PORT/v1beta` (Gemini's base URL).
    pub fn gemini_base_url(&self) -> String {
        format!("{}/v1beta", self.base_url)
    }

    /// Queues a reply; replies are used in order, then the default.
    pub fn push(&self, reply: Reply) -> &Self {
        self.state.replies.lock().unwrap().push_back(reply);
        self
    }

    /// The reply used when the queue is empty (initially text `ok`).
    pub fn set_default(&self, reply: Reply) {
        *self.state.default_reply.lock().unwrap() = Some(reply);
    }

    /// Answer 401 unless the request carries this key (as a bearer token,
    /// `x-api-key` or `x-goog-api-key`).
    pub fn require_key(&self, key: &str) {
        *self.state.required_key.lock().unwrap() = Some(key.to_owned());
    }

    /// Serves on `addr` until interrupted (Ctrl-C), as a benchmark's model
    /// process: not recording requests, and with `prompt_as_code` answering
    /// each turn by running its message as the code of one `execute_js`
    /// step, then `Done.`. Prints where it listens.
    #[allow(clippy::print_stdout, reason = "the address is the command's output")]
    pub async fn serve_until_interrupted(addr: &str, prompt_as_code: bool) -> std::io::Result<()> {
        let fake = FakeProvider::start_on(addr).await;
        if prompt_as_code {
            fake.set_default(Reply::prompt_as_code("Done."));
        }
        // A long-running fake must not keep every request it served.
        fake.stop_recording();
        println!(
            "fake provider on {} (OpenAI base {})",
            fake.base_url(),
            fake.openai_base_url()
        );
        tokio::signal::ctrl_c().await
    }

    /// Stops recording requests (a benchmark's millions would fill memory).
    pub fn stop_recording(&self) {
        self.state.forgetful.store(true, Ordering::Relaxed);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    /// How many response bodies the client abandoned before their end.
    pub fn abandoned(&self) -> usize {
        self.state.abandoned.load(Ordering::SeqCst)
    }

    /// The most requests that were waiting out their replies' delays at
    /// once: how many calls a client had in flight together (give the
    /// replies a delay to see it).
    pub fn most_concurrent(&self) -> usize {
        self.state.most_waiting.load(Ordering::SeqCst)
    }

    /// Replies still queued.
    pub fn pending(&self) -> usize {
        self.state.replies.lock().unwrap().len()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Vendor {
    OpenAi,
    Anthropic,
    Gemini,
}

impl FakeState {
    fn record(&self, path: &str, headers: &HeaderMap, body: &Value) {
        if self.forgetful.load(Ordering::Relaxed) {
            return;
        }
        let headers = headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        self.requests.lock().unwrap().push(Recorded {
            path: path.to_owned(),
            headers,
            body: body.clone(),
            at: std::time::Instant::now(),
        });
    }

    fn next_reply(&self) -> Reply {
        if let Some(reply) = self.replies.lock().unwrap().pop_front() {
            return reply;
        }
        self.default_reply
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| Reply::text("ok"))
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(required) = self.required_key.lock().unwrap().clone() else {
            return true;
        };
        let presented = [
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer ")),
            headers.get("x-api-key").and_then(|v| v.to_str().ok()),
            headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()),
        ];
        presented.into_iter().flatten().any(|k| k == required)
    }
}

fn error_response(vendor: Vendor, status: u16, message: &str, retry_after: Option<u64>) -> Response {
    let body = match vendor {
        Vendor::OpenAi => json!({"error": {"message": message, "type": "fake_error", "code": null}}),
        Vendor::Anthropic => json!({"type": "error", "error": {"type": "fake_error", "message": message}}),
        Vendor::Gemini => json!({"error": {"code": status, "message": message, "status": "FAKE"}}),
    };
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response();
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            seconds.to_string().parse().expect("a number is a header value"),
        );
    }
    response
}

/// Counts a body as abandoned when dropped before its last chunk.
struct AbandonGuard {
    state: Arc<FakeState>,
    finished: bool,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.state.abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A body sent as `chunks` with `delay` between them; `cut` closes it early.
fn chunked_body(state: Arc<FakeState>, chunks: Vec<String>, delay: Duration) -> Body {
    let guard = AbandonGuard {
        state,
        finished: false,
    };
    let stream = futures::stream::unfold(
        (VecDeque::from(chunks), guard, true),
        move |(mut queue, mut guard, first)| async move {
            let chunk = queue.pop_front()?;
            if !first && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if queue.is_empty() {
                guard.finished = true;
            }
            Some((Ok::<Bytes, Infallible>(Bytes::from(chunk)), (queue, guard, false)))
        },
    );
    Body::from_stream(stream)
}

fn sse(data: &Value) -> String {
    format!("data: {data}\n\n")
}

fn sse_named(event: &str, data: &Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

fn words(text: &str) -> Vec<String> {
    text.split_inclusive(' ').map(str::to_owned).collect()
}

fn usage_of(reply: &Reply, text: &str) -> (u32, u32) {
    reply
        .usage
        .unwrap_or((12, text.split_whitespace().count().max(1) as u32))
}

/// Counts a request as waiting until dropped (its delay ended, or the client
/// went away).
struct Waiting<'a>(&'a FakeState);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether the request asks for a stream: `"stream": true` (OpenAI,
/// Anthropic) or Gemini's `:streamGenerateContent`.
fn wants_stream(body: &Value, path: &str) -> bool {
    body.get("stream").and_then(Value::as_bool).unwrap_or(false) || path.ends_with(":streamGenerateContent")
}

/// Shared front: record, authorize, wait, hang, error statuses.
async fn front(
    state: &Arc<FakeState>,
    vendor: Vendor,
    path: &str,
    headers: &HeaderMap,
    body: &Value,
) -> Result<Reply, Response> {
    state.record(path, headers, body);
    if !state.authorized(headers) {
        return Err(error_response(vendor, 401, "invalid api key", None));
    }
    let shape = match vendor {
        Vendor::OpenAi if path.ends_with("/embeddings") => crate::fake_shapes::check_embeddings(body),
        Vendor::OpenAi => crate::fake_shapes::check_openai(body),
        Vendor::Anthropic => crate::fake_shapes::check_anthropic(body),
        Vendor::Gemini => crate::fake_shapes::check_gemini(body),
    };
    if let Err(rule) = shape {
        return Err(error_response(
            vendor,
            400,
            &format!("fake: invalid request: {rule}"),
            None,
        ));
    }
    let reply = state.next_reply().for_request(body);
    if !reply.delay.is_zero() {
        let now = state.waiting.fetch_add(1, Ordering::SeqCst) + 1;
        state.most_waiting.fetch_max(now, Ordering::SeqCst);
        let _waited = Waiting(state);
        tokio::time::sleep(reply.delay).await;
    }
    match &reply.script {
        Script::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Script::Status {
            status,
            message,
            retry_after,
        } => {
            let mut response = error_response(vendor, *status, message, *retry_after);
            for (name, value) in &reply.headers {
                if let (Ok(name), Ok(value)) = (
                    header::HeaderName::from_bytes(name.as_bytes()),
                    header::HeaderValue::from_str(value),
                ) {
                    response.headers_mut().insert(name, value);
                }
            }
            Err(response)
        }
        Script::Endless => {
            let streams = wants_stream(body, path);
            let delay = if reply.chunk_delay.is_zero() {
                Duration::from_millis(20)
            } else {
                reply.chunk_delay
            };
            let (head, repeat) = match (streams, vendor) {
                (false, _) => (vec!["{\"id\": \"endless\"".to_owned()], " ".to_owned()),
                (true, Vendor::OpenAi) => (
                    Vec::new(),
                    sse(
                        &json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000,
                        "model": "fake", "choices": [{"index": 0, "delta": {"content": "more "}, "finish_reason": null}]}),
                    ),
                ),
                (true, Vendor::Anthropic) => (
                    vec![
                        sse_named(
                            "message_start",
                            &json!({"type": "message_start", "message": {"id": "msg_fake",
                            "type": "message", "role": "assistant", "model": "fake", "content": [],
                            "usage": {"input_tokens": 1, "output_tokens": 1}}}),
                        ),
                        sse_named(
                            "content_block_start",
                            &json!({"type": "content_block_start", "index": 0,
                            "content_block": {"type": "text", "text": ""}}),
                        ),
                    ],
                    sse_named(
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": "more "}}),
                    ),
                ),
                (true, Vendor::Gemini) => (
                    Vec::new(),
                    sse(
                        &json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "more "}]},
                        "index": 0}]}),
                    ),
                ),
            };
            use futures::StreamExt as _;
            let chunks = futures::stream::iter(head).chain(futures::stream::unfold((), move |()| {
                let repeat = repeat.clone();
                async move {
                    tokio::time::sleep(delay).await;
                    Some((repeat, ()))
                }
            }));
            let body = Body::from_stream(chunks.map(|c| Ok::<Bytes, Infallible>(Bytes::from(c))));
            let content_type = if streams {
                "text/event-stream"
            } else {
                "application/json"
            };
            Err(Response::builder()
                .header(header::CONTENT_TYPE, content_type)
                .body(body)
                .expect("a valid response"))
        }
        Script::StreamError { text, message } => {
            let streams = wants_stream(body, path);
            if !streams {
                return Err(error_response(vendor, 500, message, None));
            }
            let chunks = match vendor {
                Vendor::OpenAi => vec![
                    sse(
                        &json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000,
                        "model": "fake", "choices": [{"index": 0, "delta": {"role": "assistant", "content": text},
                        "finish_reason": null}]}),
                    ),
                    sse(&json!({"error": {"message": message, "type": "server_error", "code": null}})),
                ],
                Vendor::Anthropic => vec![
                    sse_named(
                        "message_start",
                        &json!({"type": "message_start", "message": {"id": "msg_fake",
                        "type": "message", "role": "assistant", "model": "fake", "content": [],
                        "usage": {"input_tokens": 1, "output_tokens": 1}}}),
                    ),
                    sse_named(
                        "content_block_start",
                        &json!({"type": "content_block_start", "index": 0,
                        "content_block": {"type": "text", "text": ""}}),
                    ),
                    sse_named(
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": text}}),
                    ),
                    sse_named(
                        "error",
                        &json!({"type": "error",
                        "error": {"type": "overloaded_error", "message": message}}),
                    ),
                ],
                Vendor::Gemini => vec![
                    sse(
                        &json!({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                        "index": 0}]}),
                    ),
                    sse(&json!({"error": {"code": 500, "message": message, "status": "INTERNAL"}})),
                ],
            };
            Err(stream_response(chunked_body(
                state.clone(),
                chunks,
                reply.chunk_delay,
            )))
        }
        _ => Ok(reply),
    }
}

fn stream_response(body: Body) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .expect("a valid response")
}

fn json_response(state: Arc<FakeState>, value: &Value, cut: bool) -> Response {
    let text = value.to_string();
    let chunks = if cut {
        vec![text[..text.len() / 2].to_owned()]
    } else {
        vec![text]
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(chunked_body(state, chunks, Duration::ZERO))
        .expect("a valid response")
}

async fn openai_chat(State(state): State<Arc<FakeState>>, headers: HeaderMap, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let reply = match front(&state, Vendor::OpenAi, "/v1/chat/completions", &headers, &request).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("fake-model")
        .to_owned();
    let stream = request.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = request
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let id = "chatcmpl-fake";
    let chunk = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    match reply.script.clone() {
        Script::Malformed if stream => stream_response(chunked_body(
            state,
            vec!["data: {not json\n\n".into()],
            reply.chunk_delay,
        )),
        Script::Malformed => Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("<html>not json</html>"))
            .expect("a valid response"),
        Script::Text(text) | Script::CutOff { text, .. } => {
            let (prompt, completion) = usage_of(&reply, &text);
            // As a vendor does, the answer stops at the request's limit.
            let limit = request
                .get("max_completion_tokens")
                .or_else(|| request.get("max_tokens"))
                .and_then(Value::as_u64)
                .map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX));
            let finish = if completion > limit { "length" } else { "stop" };
            let completion = completion.min(limit);
            let cut = match &reply.script {
                Script::CutOff { chunks, .. } => Some(*chunks),
                _ => None,
            };
            if stream {
                let mut chunks = vec![sse(&chunk(
                    json!({"role": "assistant", "content": ""}),
                    Value::Null,
                ))];
                chunks.extend(
                    words(&text)
                        .iter()
                        .map(|w| sse(&chunk(json!({"content": w}), Value::Null))),
                );
                if let Some(n) = cut {
                    chunks.truncate(n + 1);
                } else {
                    chunks.push(sse(&chunk(json!({}), json!(finish))));
                    if include_usage {
                        chunks.push(sse(&json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000,
                            "model": model, "choices": [],
                            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}})));
                    }
                    chunks.push("data: [DONE]\n\n".into());
                }
                stream_response(chunked_body(state, chunks, reply.chunk_delay))
            } else {
                let value = json!({"id": id, "object": "chat.completion", "created": 1_700_000_000, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                    "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}});
                json_response(state, &value, cut.is_some())
            }
        }
        Script::ToolCalls(calls) => {
            let (prompt, completion) = reply.usage.unwrap_or((12, 5));
            if stream {
                let mut chunks = vec![sse(&chunk(
                    json!({"role": "assistant", "content": null}),
                    Value::Null,
                ))];
                for (i, (name, args)) in calls.iter().enumerate() {
                    chunks.push(sse(&chunk(
                        json!({"tool_calls": [{"index": i, "id": format!("call_{i}"), "type": "function",
                               "function": {"name": name, "arguments": ""}}]}),
                        Value::Null,
                    )));
                    let mid = args.len() / 2;
                    for piece in [&args[..mid], &args[mid..]] {
                        chunks.push(sse(&chunk(
                            json!({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}),
                            Value::Null,
                        )));
                    }
                }
                chunks.push(sse(&chunk(json!({}), json!("tool_calls"))));
                if include_usage {
                    chunks.push(sse(&json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000,
                        "model": model, "choices": [],
                        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}})));
                }
                chunks.push("data: [DONE]\n\n".into());
                stream_response(chunked_body(state, chunks, reply.chunk_delay))
            } else {
                let tool_calls: Vec<Value> = calls
                    .iter()
                    .enumerate()
                    .map(|(i, (name, args))| {
                        json!({"id": format!("call_{i}"), "type": "function",
                        "function": {"name": name, "arguments": args}})
                    })
                    .collect();
                let value = json!({"id": id, "object": "chat.completion", "created": 1_700_000_000, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": tool_calls},
                                 "finish_reason": "tool_calls"}],
                    "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}});
                json_response(state, &value, false)
            }
        }
        Script::Hang
        | Script::Status { .. }
        | Script::StreamError { .. }
        | Script::Endless
        | Script::CodeStep { .. }
        | Script::PromptAsCode { .. } => {
            unreachable!("handled in front")
        }
    }
}

async fn anthropic_messages(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let reply = match front(&state, Vendor::Anthropic, "/v1/messages", &headers, &request).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("fake-claude")
        .to_owned();
    let stream = request.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let (text, calls, cut) = match reply.script.clone() {
        Script::Text(text) => (text, Vec::new(), None),
        Script::CutOff { text, chunks } => (text, Vec::new(), Some(chunks)),
        Script::ToolCalls(calls) => (String::new(), calls, None),
        Script::Malformed if stream => {
            return stream_response(chunked_body(
                state,
                vec!["event: message_start\ndata: {oops\n\n".into()],
                Duration::ZERO,
            ));
        }
        Script::Malformed => return (StatusCode::OK, "not json").into_response(),
        Script::Hang
        | Script::Status { .. }
        | Script::StreamError { .. }
        | Script::Endless
        | Script::CodeStep { .. }
        | Script::PromptAsCode { .. } => {
            unreachable!("handled in front")
        }
    };
    let (prompt, completion) = usage_of(&reply, &text);
    let stop_reason = if calls.is_empty() { "end_turn" } else { "tool_use" };
    if !stream {
        let mut content: Vec<Value> = Vec::new();
        if !text.is_empty() {
            content.push(json!({"type": "text", "text": text}));
        }
        for (i, (name, args)) in calls.iter().enumerate() {
            let input: Value = serde_json::from_str(args).unwrap_or_else(|_| json!({}));
            content
                .push(json!({"type": "tool_use", "id": format!("toolu_{i}"), "name": name, "input": input}));
        }
        let value = json!({"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": null,
            "usage": {"input_tokens": prompt, "output_tokens": completion}});
        return json_response(state, &value, cut.is_some());
    }
    let mut chunks = vec![sse_named(
        "message_start",
        &json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant",
            "model": model, "content": [], "usage": {"input_tokens": prompt, "output_tokens": 1}}}),
    )];
    let mut block = 0;
    if !text.is_empty() || calls.is_empty() {
        chunks.push(sse_named(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        ));
        chunks.push(": ping\n\n".into());
        for w in words(&text) {
            chunks.push(sse_named(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": w}}),
            ));
        }
        chunks.push(sse_named(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        ));
        block = 1;
    }
    for (i, (name, args)) in calls.iter().enumerate() {
        let index = block + i;
        chunks.push(sse_named(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "tool_use", "id": format!("toolu_{i}"), "name": name, "input": {}}}),
        ));
        let mid = args.len() / 2;
        for piece in [&args[..mid], &args[mid..]] {
            chunks.push(sse_named(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": piece}}),
            ));
        }
        chunks.push(sse_named(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }
    if let Some(n) = cut {
        chunks.truncate(n + 3);
    } else {
        chunks.push(sse_named("message_delta", &json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": completion}})));
        chunks.push(sse_named("message_stop", &json!({"type": "message_stop"})));
    }
    stream_response(chunked_body(state, chunks, reply.chunk_delay))
}

async fn gemini_generate(
    State(state): State<Arc<FakeState>>,
    Path(model_action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = format!("/v1beta/models/{model_action}");
    let reply = match front(&state, Vendor::Gemini, &path, &headers, &request).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let (model, action) = model_action
        .split_once(':')
        .unwrap_or((&model_action, "generateContent"));
    let stream = action == "streamGenerateContent";
    let (text, calls, cut) = match reply.script.clone() {
        Script::Text(text) => (text, Vec::new(), None),
        Script::CutOff { text, chunks } => (text, Vec::new(), Some(chunks)),
        Script::ToolCalls(calls) => (String::new(), calls, None),
        Script::Malformed if stream => {
            return stream_response(chunked_body(
                state,
                vec!["data: {nope\n\n".into()],
                Duration::ZERO,
            ));
        }
        Script::Malformed => return (StatusCode::OK, "not json").into_response(),
        Script::Hang
        | Script::Status { .. }
        | Script::StreamError { .. }
        | Script::Endless
        | Script::CodeStep { .. }
        | Script::PromptAsCode { .. } => {
            unreachable!("handled in front")
        }
    };
    let (prompt, completion) = usage_of(&reply, &text);
    let usage = json!({"promptTokenCount": prompt, "candidatesTokenCount": completion, "totalTokenCount": prompt + completion});
    let call_parts: Vec<Value> = calls
        .iter()
        .map(|(name, args)| {
            let args: Value = serde_json::from_str(args).unwrap_or_else(|_| json!({}));
            json!({"functionCall": {"name": name, "args": args}})
        })
        .collect();
    if !stream {
        let mut parts = call_parts;
        if !text.is_empty() {
            parts.insert(0, json!({"text": text}));
        }
        let value = json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}],
            "usageMetadata": usage, "modelVersion": model});
        return json_response(state, &value, cut.is_some());
    }
    let mut chunks: Vec<String> = words(&text)
        .iter()
        .map(|w| sse(&json!({"candidates": [{"content": {"role": "model", "parts": [{"text": w}]}}], "modelVersion": model})))
        .collect();
    if let Some(n) = cut {
        chunks.truncate(n);
    } else {
        chunks.push(sse(&json!({"candidates": [{"content": {"role": "model", "parts": call_parts}, "finishReason": "STOP"}],
            "usageMetadata": usage, "modelVersion": model})));
    }
    stream_response(chunked_body(state, chunks, reply.chunk_delay))
}

/// A deterministic 8-dimensional embedding of `text` (unit length).
pub fn fake_embedding(text: &str) -> Vec<f32> {
    let mut v = [0f32; 8];
    for (i, b) in text.bytes().enumerate() {
        v[(b as usize + i) % 8] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::EPSILON);
    v.iter().map(|x| x / norm).collect()
}

async fn embeddings(State(state): State<Arc<FakeState>>, headers: HeaderMap, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Err(response) = front(&state, Vendor::OpenAi, "/v1/embeddings", &headers, &request).await {
        return response;
    }
    let inputs: Vec<String> = match request.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => {
            return error_response(
                Vendor::OpenAi,
                400,
                "input must be a string or an array of strings",
                None,
            );
        }
    };
    let tokens: usize = inputs.iter().map(|i| i.split_whitespace().count()).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| json!({"object": "embedding", "index": i, "embedding": fake_embedding(text)}))
        .collect();
    axum::Json(json!({"object": "list", "data": data,
        "model": request.get("model").cloned().unwrap_or(json!("fake-embedding")),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
    .into_response()
}

async fn models() -> Response {
    axum::Json(json!({"object": "list", "data": [
        {"id": "fake-model", "object": "model", "created": 1_700_000_000, "owned_by": "fake"}]}))
    .into_response()
}

/// Three results made from the query, as `(title, url, snippet)`.
fn web_results(query: &str) -> Vec<(String, String, String)> {
    (1..=3)
        .map(|i| {
            (
                format!("Result {i} for {query}"),
                format!("https://example.com/{i}"),
                format!("Snippet {i} about {query}."),
            )
        })
        .collect()
}

async fn brave_search(
    headers: HeaderMap,
    axum::extract::Query(params): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    if headers.get("x-subscription-token").is_none_or(|v| v.is_empty()) {
        return (StatusCode::UNAUTHORIZED, "missing X-Subscription-Token").into_response();
    }
    let query = params.get("q").cloned().unwrap_or_default();
    let count: usize = params.get("count").and_then(|c| c.parse().ok()).unwrap_or(20);
    let results: Vec<Value> = web_results(&query)
        .into_iter()
        .take(count)
        .map(|(title, url, description)| json!({ "title": title, "url": url, "description": description }))
        .collect();
    axum::Json(json!({ "type": "search", "web": { "type": "search", "results": results } })).into_response()
}

async fn searxng_search(
    axum::extract::Query(params): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    if params.get("format").map(String::as_str) != Some("json") {
        return (StatusCode::FORBIDDEN, "format=json is required").into_response();
    }
    let query = params.get("q").cloned().unwrap_or_default();
    let results: Vec<Value> = web_results(&query)
        .into_iter()
        .map(|(title, url, content)| json!({ "title": title, "url": url, "content": content, "engine": "fake" }))
        .collect();
    axum::Json(json!({ "query": query, "results": results })).into_response()
}
