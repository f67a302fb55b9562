//! The sandbox's primitives (`search`, `fetch`, `ai`, `input`, `data`) and
//! the function-call tools (`search`, `fetch`, `list_stores`), on behalf of
//! one turn. In the sandbox every call also emits a `sandbox_event`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::ids::{IndexId, InputRequestId};
use crate::llm::{ChatRequest, Message, Role};
use crate::rag::search::SearchQuery;
use crate::runtime::SessionStatus;
use crate::runtime::event::{
    EventBody, MAX_EVENT_CONTENT_BYTES, TurnErrorCode, first_chars, render_value, truncate_text,
};
use crate::runtime::fetch::FetchRequest;
use crate::runtime::hub::Stop;
use crate::runtime::store::{DataUpdate, InputRequest};
use crate::runtime::turn::Turn;
use crate::runtime::web_search::WebSearchEngine;
use crate::sandbox::{HostFunctions, SandboxModule};
use crate::time::now;

/// `search` results: default and cap.
const SEARCH_DEFAULT_TOP_K: i64 = 5;
const SEARCH_MAX_TOP_K: i64 = 20;
/// `web_search` results: default and cap.
const WEB_SEARCH_DEFAULT_COUNT: u64 = 5;
const WEB_SEARCH_MAX_COUNT: u64 = 20;
/// The largest `data.set` change, as JSON.
const MAX_DATA_CHANGE_BYTES: usize = 256 * 1024;
/// The most a session's `data` may hold, as JSON.
const MAX_SESSION_DATA_BYTES: usize = 1024 * 1024;
/// How often a turn waiting for input looks at the database when no
/// wake-up came, with other servers on the store (a missed notification
/// costs at most this); alone on it see [`super::ANSWER_POLL_ALONE`].
const INPUT_POLL: Duration = Duration::from_secs(5);
/// Bounds of an `input()` question (its event must fit one SSE line).
const MAX_INPUT_MESSAGE_BYTES: usize = 4 * 1024;
const MAX_INPUT_OPTIONS: usize = 50;
const MAX_INPUT_OPTION_BYTES: usize = 200;

/// The host functions of one block.
pub(crate) struct TurnHost {
    turn: Arc<Turn>,
    /// The turn's paused time when the block started.
    paused_at_start: Duration,
    /// The block's slot among the server's running blocks, given back while
    /// `input()` waits for a person.
    slot: std::sync::Mutex<Option<super::slots::BlockSlot>>,
    /// Skill calls not yet emitted as events: `(module, function)`.
    skill_calls: std::sync::Mutex<Vec<(String, String)>>,
    /// What the block's `fetch()` calls may still bring in.
    fetched: FetchBudget,
}

/// The response bytes one block's `fetch()` calls may bring in, all
/// together: as much as the block's memory, since a body held outside the
/// sandbox weighs the same as one inside. Each call may take what is left
/// (bodies are cut there, `truncated: true`); once none is left, `fetch()`
/// rejects. With host calls in flight bounded, at most that many bodies
/// overlap.
pub(crate) struct FetchBudget {
    limit: usize,
    spent: std::sync::atomic::AtomicUsize,
}

impl FetchBudget {
    fn new(limit: usize) -> FetchBudget {
        FetchBudget {
            limit,
            spent: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The bytes left, or the message for the code when none are.
    fn left(&self) -> Result<usize, String> {
        let spent = self.spent.load(std::sync::atomic::Ordering::SeqCst);
        match self.limit.checked_sub(spent) {
            Some(left) if left > 0 => Ok(left),
            _ => Err(format!(
                "this block has fetched {spent} bytes, its limit (the block's memory, {} bytes); \
                 fetch less, or go on in the next block",
                self.limit
            )),
        }
    }

    fn spend(&self, bytes: usize) {
        self.spent.fetch_add(bytes, std::sync::atomic::Ordering::SeqCst);
    }
}

impl TurnHost {
    pub(crate) fn new(turn: Arc<Turn>, slot: Option<super::slots::BlockSlot>) -> TurnHost {
        let paused_at_start = turn.paused();
        let fetched = FetchBudget::new(turn.runtime.config.sandbox.memory_bytes);
        TurnHost {
            turn,
            paused_at_start,
            slot: std::sync::Mutex::new(slot),
            skill_calls: std::sync::Mutex::new(Vec::new()),
            fetched,
        }
    }

    /// Emits the skill calls noted so far as `skill_call` events, in order:
    /// before each host call's own work, and once the block has ended.
    pub(crate) async fn emit_skill_calls(&self) -> Result<(), String> {
        let calls = std::mem::take(&mut *self.skill_calls.lock().unwrap_or_else(|e| e.into_inner()));
        for (module, function) in calls {
            self.turn
                .emit(
                    EventBody::SandboxEvent {
                        kind: SKILL_CALL.to_owned(),
                        summary: format!("{module}.{function}()"),
                        content: String::new(),
                        tokens: None,
                    },
                    None,
                )
                .await
                .map_err(|stop| stop.message)?;
        }
        Ok(())
    }

    /// `input()`, without holding a running block's slot while the person
    /// thinks, in one of the server's places for paused blocks.
    async fn input(&self, spec: Value) -> Result<Value, String> {
        let project = &self.turn.ctx.project.id;
        let paused = self.turn.runtime.paused_blocks.try_pause(project)?;
        let held = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        let had_slot = held.is_some();
        drop(held);
        let answer = self.turn.input(spec).await;
        drop(paused);
        if had_slot {
            let slot = self.turn.runtime.blocks.acquire(project).await;
            *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(slot);
        }
        answer
    }
}

#[async_trait]
impl HostFunctions for TurnHost {
    fn names(&self) -> Vec<String> {
        super::prompt::PRIMITIVES
            .iter()
            .flat_map(|p| p.names.iter())
            .map(|n| (*n).to_owned())
            .collect()
    }

    async fn call(&self, name: &str, args: Value) -> Result<Value, String> {
        self.turn.count_host_call()?;
        self.emit_skill_calls().await?;
        let args = match args {
            Value::Array(args) => args,
            other => vec![other],
        };
        let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::Null);
        let turn = &self.turn;
        // The event's kind: the primitive (`data` for `data.get`), or
        // `mcp_call` for an MCP server's tool.
        let primitive = name.split('.').next().unwrap_or(name);
        let ((value, summary), kind) = match name {
            "search" => (
                turn.search(&options_with(arg(1), "query", arg(0))).await?,
                primitive,
            ),
            "fetch" => (
                turn.fetch(&options_with(arg(1), "url", arg(0)), Some(&self.fetched))
                    .await?,
                primitive,
            ),
            "web_search" => (
                turn.web_search(&options_with(arg(1), "query", arg(0))).await?,
                primitive,
            ),
            "ai" => return turn.ai(arg(0)).await,
            "input" => return self.input(arg(0)).await,
            "data.get" => (turn.data_get(arg(0)).await?, primitive),
            "data.set" => (turn.data_set(arg(0), args.get(1).cloned()).await?, primitive),
            "files.write" => (turn.files_write(arg(0), arg(1), arg(2)).await?, primitive),
            "files.read" => (turn.files_read(arg(0), arg(1)).await?, primitive),
            "files.list" => (turn.files_list().await?, primitive),
            other => match other.split_once('.') {
                Some((server, tool)) => (turn.mcp_call(server, tool, arg(0)).await?, MCP_CALL),
                None => return Err(format!("`{other}` is not a sandbox function")),
            },
        };
        turn.emit(
            EventBody::SandboxEvent {
                kind: kind.to_owned(),
                summary,
                content: String::new(),
                tokens: None,
            },
            None,
        )
        .await
        .map_err(|stop| stop.message)?;
        Ok(value)
    }

    fn paused(&self) -> Duration {
        self.turn.paused().saturating_sub(self.paused_at_start)
    }

    fn waits_on_a_person(&self, name: &str) -> bool {
        name == "input"
    }

    fn modules(&self) -> &[SandboxModule] {
        &self.turn.modules
    }

    fn module_called(&self, module: &str, function: &str) {
        self.skill_calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((module.to_owned(), function.to_owned()));
    }
}

/// `sandbox_event` → `args.kind` of a call of a skill module's export.
pub(crate) const SKILL_CALL: &str = "skill_call";
/// … and of an MCP tool call.
pub(crate) const MCP_CALL: &str = "mcp_call";

/// `opts` (an object, or nothing) with `key` set to `value`.
fn options_with(opts: Value, key: &str, value: Value) -> Map<String, Value> {
    let mut opts = match opts {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    opts.insert(key.to_owned(), value);
    opts
}

impl Turn {
    /// `web_search(query, { count })`: the project's engine (see
    /// [`crate::runtime::web_search`]).
    pub(crate) async fn web_search(&self, args: &Map<String, Value>) -> Result<(Value, String), String> {
        let query = args
            .get("query")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_owned();
        if query.is_empty() {
            return Err("web_search needs a query: web_search(\"kiln agents\")".to_owned());
        }
        let count = args
            .get("count")
            .and_then(Value::as_u64)
            .unwrap_or(WEB_SEARCH_DEFAULT_COUNT)
            .clamp(1, WEB_SEARCH_MAX_COUNT) as u32;
        let (settings, from_vault) = self
            .runtime
            .gateway
            .web_search_settings(&self.ctx)
            .await
            .map_err(|e| e.to_string())?;
        let engine = match (
            settings.get(crate::llm::BRAVE_API_KEY_SETTING),
            settings.get(crate::llm::SEARXNG_BASE_URL_SETTING),
        ) {
            (Some(key), _) => WebSearchEngine::Brave {
                api_key: key.to_owned(),
                base_url: settings
                    .get(crate::llm::BRAVE_BASE_URL_SETTING)
                    .map(str::to_owned),
            },
            (None, Some(base_url)) => WebSearchEngine::Searxng {
                base_url: base_url.to_owned(),
            },
            (None, None) => {
                return Err("web search is not configured for this project: put `brave_api_key` (or `searxng_base_url`) in the project's vault (PUT /api/sdk/project/vault)".to_owned());
            }
        };
        let hits = self
            .runtime
            .web_search
            .search(&engine, from_vault, &query, count)
            .await?;
        let summary = format!("{} result(s) for \"{}\"", hits.len(), first_chars(&query, 60));
        let value = Value::Array(
            hits.into_iter()
                .map(|h| json!({ "title": h.title, "url": h.url, "snippet": h.snippet }))
                .collect(),
        );
        Ok((value, summary))
    }

    /// `require(server).tool(args)`: the tool's structured content when it
    /// sent any, else its text.
    pub(crate) async fn mcp_call(
        &self,
        server: &str,
        tool: &str,
        args: Value,
    ) -> Result<(Value, String), String> {
        let Some(spec) = self.session.mcp_servers.iter().find(|s| s.name == server) else {
            return Err(format!("`{server}.{tool}` is not a sandbox function"));
        };
        let args = match args {
            Value::Null => Value::Object(Map::new()),
            Value::Object(map) => Value::Object(map),
            _ => {
                return Err(format!(
                    "{server}.{tool}() takes one object of arguments, as in {server}.{tool}({{ … }})"
                ));
            }
        };
        let result = self
            .runtime
            .agents
            .mcp()
            .call(&self.ctx.project, spec, tool, args)
            .await
            .map_err(|e| e.to_string())??;
        let summary = format!("{server}.{tool}()");
        Ok((result.structured.unwrap_or(Value::String(result.text)), summary))
    }

    /// A function-call tool the session added.
    pub(crate) async fn native_tool(&self, tool: &str, args: Value) -> Result<Value, String> {
        let args = match args {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        if !self.session.tools.iter().any(|t| t == tool) {
            return Err(format!("unknown tool: {tool}"));
        }
        match tool {
            "search" => Ok(self.search(&args).await?.0),
            "fetch" => Ok(self.fetch(&args, None).await?.0),
            "list_stores" => self.list_stores().await,
            other => Err(format!("unknown tool: {other}")),
        }
    }

    /// The indexes `search` may read: `None` for the whole project.
    fn search_scope(&self, index: Option<&str>) -> Result<Vec<Option<IndexId>>, String> {
        match (&self.session.index_ids, index) {
            (Some(ids), _) if ids.is_empty() => {
                Err("search is disabled in this session (it was created with index_ids: [])".to_owned())
            }
            (None, None) => Ok(vec![None]),
            (None, Some(index)) => Ok(vec![Some(IndexId::from_string(index))]),
            (Some(ids), Some(index)) => {
                if ids.iter().any(|id| id.as_str() == index) {
                    Ok(vec![Some(IndexId::from_string(index))])
                } else {
                    Err(format!("index `{index}` is not in this session's search scope"))
                }
            }
            (Some(ids), None) => Ok(ids.iter().cloned().map(Some).collect()),
        }
    }

    pub(crate) async fn search(&self, args: &Map<String, Value>) -> Result<(Value, String), String> {
        let query = args
            .get("query")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_owned();
        if query.is_empty() {
            return Err("search needs a query string: search(\"refund policy\")".to_owned());
        }
        let top_k = args
            .get("top_k")
            .and_then(Value::as_i64)
            .unwrap_or(SEARCH_DEFAULT_TOP_K)
            .clamp(1, SEARCH_MAX_TOP_K);
        let index = args.get("index").and_then(Value::as_str);
        let mut hits = Vec::new();
        for index_id in self.search_scope(index)? {
            let found = self
                .runtime
                .rag
                .search(
                    &self.ctx,
                    SearchQuery {
                        query: query.clone(),
                        top_k: Some(top_k),
                        index_id,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
            hits.extend(found);
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(top_k as usize);
        let results: Vec<Value> = hits
            .into_iter()
            .map(|hit| {
                let document = &hit.record.document;
                json!({
                    "content": hit.record.content,
                    "score": hit.score,
                    "source": document.name.clone().unwrap_or_else(|| document.filename.clone()),
                    "document_id": document.id.as_str(),
                    "index_id": document.index_id.as_str(),
                    "chunk_index": hit.record.chunk_index,
                })
            })
            .collect();
        let summary = format!(
            "\"{}\" → {} result{}",
            first_chars(&query, 80),
            results.len(),
            if results.len() == 1 { "" } else { "s" }
        );
        Ok((Value::Array(results), summary))
    }

    /// `fetch(url, { method, headers, body })`; in a block, its bytes count
    /// against the block's `budget`.
    pub(crate) async fn fetch(
        &self,
        args: &Map<String, Value>,
        budget: Option<&FetchBudget>,
    ) -> Result<(Value, String), String> {
        let url = args
            .get("url")
            .and_then(Value::as_str)
            .ok_or("fetch needs a URL: fetch(\"https://example.com\")")?
            .to_owned();
        let method = args
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("GET")
            .to_ascii_uppercase();
        let mut headers: Vec<(String, String)> = args
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| h.iter().map(|(k, v)| (k.clone(), render_value(v))).collect())
            .unwrap_or_default();
        let body = match args.get("body") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                if !headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                {
                    headers.push(("content-type".into(), "application/json".into()));
                }
                Some(other.to_string())
            }
        };
        let max_bytes = budget.map(FetchBudget::left).transpose()?;
        let response = self
            .runtime
            .fetch
            .fetch(FetchRequest {
                url: url.clone(),
                method: method.clone(),
                headers,
                body,
                max_bytes,
            })
            .await?;
        if let Some(budget) = budget {
            budget.spend(response.body.len());
        }
        let mut header_map = Map::new();
        for (name, value) in &response.headers {
            let name = name.to_ascii_lowercase();
            let joined = match header_map.get(&name).and_then(Value::as_str) {
                Some(previous) => format!("{previous}, {value}"),
                None => value.clone(),
            };
            header_map.insert(name, Value::String(joined));
        }
        let is_json = header_map
            .get("content-type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.contains("json"));
        let parsed = if is_json {
            serde_json::from_str::<Value>(&response.body).unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        let summary = format!(
            "{method} {} → {} ({} bytes{})",
            first_chars(&url, 100),
            response.status,
            response.body.len(),
            if response.truncated { ", truncated" } else { "" }
        );
        Ok((
            json!({
                "status": response.status,
                "ok": (200..300).contains(&response.status),
                "url": response.url,
                "headers": header_map,
                "body": response.body,
                "json": parsed,
                "truncated": response.truncated,
            }),
            summary,
        ))
    }

    async fn list_stores(&self) -> Result<Value, String> {
        let indexes = self
            .runtime
            .rag
            .list_indexes(&self.ctx)
            .await
            .map_err(|e| e.to_string())?;
        let in_scope = |id: &IndexId| match &self.session.index_ids {
            None => true,
            Some(ids) => ids.contains(id),
        };
        Ok(Value::Array(
            indexes
                .into_iter()
                .filter(|i| in_scope(&i.id))
                .map(|i| json!({ "id": i.id.as_str(), "name": i.name, "description": i.description }))
                .collect(),
        ))
    }

    /// `ai(prompt)`: one call to the session's model, no history or tools.
    async fn ai(&self, prompt: Value) -> Result<Value, String> {
        let prompt = match prompt {
            Value::String(s) if !s.trim().is_empty() => s,
            Value::Null => return Err("ai needs a prompt: ai(\"Summarise: ...\")".to_owned()),
            other => render_value(&other),
        };
        let reservation = self
            .reserve_tokens(&prompt)
            .await
            .map_err(|stop| self.fail(stop))?;
        let response = self
            .complete(ChatRequest {
                messages: vec![Message::new(Role::User, prompt.clone())],
                max_tokens: Some(reservation.max_output),
                ..Default::default()
            })
            .await
            .map_err(|stop| {
                // A failed call rejects the promise; a limit ends the turn.
                if stop.code == TurnErrorCode::UpstreamError {
                    stop.message
                } else {
                    self.fail(stop)
                }
            })?;
        // Its usage is counted now.
        drop(reservation);
        self.emit(
            EventBody::SandboxEvent {
                kind: "ai".into(),
                summary: first_chars(&prompt, 80),
                content: truncate_text(&response.content, MAX_EVENT_CONTENT_BYTES),
                tokens: Some(response.usage),
            },
            None,
        )
        .await
        .map_err(|stop| stop.message)?;
        Ok(Value::String(response.content))
    }

    /// Ends the turn with `stop` (a limit hit inside a primitive) and gives
    /// the code its message.
    fn fail(&self, stop: Stop) -> String {
        let message = stop.message.clone();
        self.control.stop(stop);
        message
    }

    /// `input(spec)`: asks the person and waits for `POST /input`.
    async fn input(&self, spec: Value) -> Result<Value, String> {
        let (input_type, message, options, placeholder) = parse_input_spec(spec)?;
        let request = InputRequest {
            id: InputRequestId::generate(),
            project_id: self.ctx.project.id.clone(),
            session_id: self.session.id.clone(),
            turn_id: self.turn_id.clone(),
            input_type: input_type.clone(),
            message: message.clone(),
            options: options.clone(),
            placeholder: placeholder.clone(),
            value: None,
            created_at: now(),
        };
        self.runtime
            .store
            .create_input_request(&request)
            .await
            .map_err(|e| {
                self.fail(Stop::new(
                    TurnErrorCode::Internal,
                    e.to_string(),
                    SessionStatus::Error,
                ))
            })?;
        let paused = self.pause();
        self.emit(
            EventBody::InputRequest {
                request_id: request.id.to_string(),
                input_type,
                message,
                options,
                placeholder,
            },
            Some(SessionStatus::AwaitingInput),
        )
        .await
        .map_err(|stop| stop.message)?;
        let value = self.wait_for_answer(&request.id).await?;
        drop(paused);
        self.emit(
            EventBody::SandboxEvent {
                kind: "input".into(),
                summary: format!("answered: {}", first_chars(&render_value(&value), 80)),
                content: String::new(),
                tokens: None,
            },
            Some(SessionStatus::Running),
        )
        .await
        .map_err(|stop| stop.message)?;
        Ok(value)
    }

    async fn wait_for_answer(&self, id: &InputRequestId) -> Result<Value, String> {
        let timeout = self.runtime.config.input_timeout;
        let deadline = Instant::now() + timeout;
        let mut answers = self.control.input.subscribe();
        loop {
            let request = self
                .runtime
                .store
                .get_input_request(&self.ctx.project.id, &self.session.id, id)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(value) = request.and_then(|r| r.value) {
                return Ok(value);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.fail(Stop::new(
                    TurnErrorCode::InputTimeout,
                    format!(
                        "the input request was not answered within {} s",
                        timeout.as_secs()
                    ),
                    SessionStatus::Error,
                )));
            }
            tokio::select! {
                _ = answers.changed() => {}
                () = tokio::time::sleep(left.min(self.runtime.answer_poll(INPUT_POLL))) => {}
            }
        }
    }

    async fn data_get(&self, key: Value) -> Result<(Value, String), String> {
        let session = self
            .runtime
            .store
            .get_session(&self.ctx.project.id, &self.session.id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the session was deleted")?;
        Ok(match key {
            Value::Null => (Value::Object(session.data), "get (all)".to_owned()),
            key => {
                let key = render_value(&key);
                let value = session.data.get(&key).cloned().unwrap_or(Value::Null);
                (value, format!("get {}", first_chars(&key, 80)))
            }
        })
    }

    async fn data_set(&self, key: Value, value: Option<Value>) -> Result<(Value, String), String> {
        let changes = match (key, value) {
            (Value::Object(map), None) => map,
            (Value::String(key), Some(value)) if !key.is_empty() => {
                let mut map = Map::new();
                map.insert(key, value);
                map
            }
            (Value::String(key), None) if !key.is_empty() => {
                let mut map = Map::new();
                map.insert(key, Value::Null);
                map
            }
            _ => return Err("data.set takes (key, value) or an object of changes".to_owned()),
        };
        if Value::Object(changes.clone()).to_string().len() > MAX_DATA_CHANGE_BYTES {
            return Err(format!(
                "data.set takes at most {MAX_DATA_CHANGE_BYTES} bytes at once"
            ));
        }
        match self
            .runtime
            .store
            .update_session_data(
                &self.ctx.project.id,
                &self.session.id,
                Some(&self.turn_id),
                &changes,
                MAX_SESSION_DATA_BYTES,
            )
            .await
            .map_err(|e| e.to_string())?
        {
            DataUpdate::Updated(_) => {}
            DataUpdate::Gone => return Err("the turn has ended".to_owned()),
            DataUpdate::TooLarge { bytes } => {
                return Err(format!(
                    "data.set refused: the session's data would be {bytes} bytes, over its limit of \
                     {MAX_SESSION_DATA_BYTES}; remove keys (set them to null) first"
                ));
            }
        }
        let keys: Vec<&str> = changes.keys().map(String::as_str).collect();
        let summary = format!("set {}", first_chars(&keys.join(", "), 80));
        self.emit(EventBody::DataUpdate { changes }, None)
            .await
            .map_err(|stop| stop.message)?;
        Ok((Value::Null, summary))
    }
}

/// `input("question")` or `input({type, message, options, placeholder})`.
fn parse_input_spec(spec: Value) -> Result<(String, String, Vec<String>, String), String> {
    let spec = match spec {
        Value::String(message) => return Ok(("text".into(), message, Vec::new(), String::new())),
        Value::Object(map) => map,
        _ => return Err("input takes a question or {type, message, options, placeholder}".to_owned()),
    };
    let input_type = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("text")
        .to_owned();
    if !matches!(input_type.as_str(), "confirm" | "choice" | "text") {
        return Err(format!(
            "input type `{input_type}` is not one of confirm, choice, text"
        ));
    }
    let message = spec.get("message").map(render_value).unwrap_or_default();
    let options: Vec<String> = spec
        .get("options")
        .and_then(Value::as_array)
        .map(|o| o.iter().map(render_value).collect())
        .unwrap_or_default();
    if message.len() > MAX_INPUT_MESSAGE_BYTES {
        return Err(format!(
            "an input message takes at most {MAX_INPUT_MESSAGE_BYTES} bytes"
        ));
    }
    if options.len() > MAX_INPUT_OPTIONS || options.iter().any(|o| o.len() > MAX_INPUT_OPTION_BYTES) {
        return Err(format!(
            "an input takes at most {MAX_INPUT_OPTIONS} options of at most {MAX_INPUT_OPTION_BYTES} bytes each"
        ));
    }
    if input_type == "choice" && options.is_empty() {
        return Err(
            "a choice input needs options: input({type: \"choice\", message, options: [...]})".to_owned(),
        );
    }
    let placeholder: String = spec
        .get("placeholder")
        .map(render_value)
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    let options = if input_type == "choice" {
        options
    } else {
        Vec::new()
    };
    Ok((input_type, message, options, placeholder))
}

/// Checks an answer against its request's type (CONTRACT §2.7).
pub(crate) fn check_answer(request: &InputRequest, value: &Value) -> Result<(), String> {
    match request.input_type.as_str() {
        "confirm" if !value.is_boolean() => Err("a confirm request takes a boolean value".to_owned()),
        "text" if !value.is_string() => Err("a text request takes a string value".to_owned()),
        "choice" => match value.as_str() {
            Some(choice) if request.options.iter().any(|o| o == choice) => Ok(()),
            _ => Err(format!(
                "a choice request takes one of its options: {}",
                request.options.join(", ")
            )),
        },
        _ => Ok(()),
    }
}
