//! Kiln as an MCP server: `POST /mcp` (streamable HTTP, stateless, JSON
//! replies) exposes the caller's project to any MCP client (desktop apps,
//! IDE agents). The API key comes as `X-API-Key` or `Authorization: Bearer`
//! and is checked before rmcp sees the request (no or a wrong key: 401 with
//! the contract's error body); each tool then runs as that key.
//!
//! Tools: `search` (the project's indexes), `list_agents`, `run_agent`
//! (start or continue a session on an agent and return its answer, or the
//! question it paused on) and `answer_input` (answer that question and
//! return what follows). Resources: the project's documents
//! (`kiln://documents/<id>`, the newest 200), read as their indexed text.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use kiln_core::auth::AuthContext;
use kiln_core::ids::{AgentId, SessionId};
use kiln_core::rag::search::SearchQuery;
use kiln_core::runtime::{CreateSession, EventBody, EventFollow, FollowItem};
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData, Implementation,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ServerCapabilities, ServerConfig,
    Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::{AppState, convert};

/// The MCP endpoint, at the server's root.
pub const MCP_PATH: &str = "/mcp";

/// The `/mcp` service, behind the API-key check.
pub(crate) fn service(state: AppState) -> axum::Router {
    let handler_state = state.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(KilnMcp(handler_state.clone())),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            // Requests carry an API key; any host name may front the server.
            .disable_allowed_hosts(),
    );
    axum::Router::new()
        .nest_service(MCP_PATH, mcp)
        .layer(axum::middleware::from_fn_with_state(state, authenticate))
}

/// Authenticates the key and hands the request on with its `AuthContext`.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let key = headers
        .get(crate::extract::API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .or(bearer)
        .map(str::trim)
        .unwrap_or("");
    if key.is_empty() {
        return ApiError::from(kiln_core::Error::Unauthorized("missing X-API-Key header".into()))
            .into_response();
    }
    match state.control.authenticate(key).await {
        // A session's token reaches that session's routes only.
        Ok(ctx) if ctx.session.is_some() => ApiError::from(kiln_core::Error::Unauthorized(
            "a session-scoped token cannot use the MCP endpoint".into(),
        ))
        .into_response(),
        Ok(ctx) => {
            request.extensions_mut().insert(ctx);
            next.run(request).await
        }
        Err(error) => ApiError::from(error).into_response(),
    }
}

#[derive(Clone)]
struct KilnMcp(AppState);

fn object(value: Value) -> Arc<Map<String, Value>> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => Arc::new(Map::new()),
    }
}

fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "search",
            "Search the project's knowledge indexes (hybrid: keywords and meaning). Returns the best passages with their source document.",
            object(json!({
                "type": "object",
                "properties": {
                    "query": { "type": "string", "description": "What to look for." },
                    "top_k": { "type": "integer", "minimum": 1, "maximum": 50, "description": "How many passages (default 5)." },
                    "index_id": { "type": "string", "description": "Search one index only." }
                },
                "required": ["query"]
            })),
        ),
        Tool::new(
            "list_agents",
            "List the project's agents: id, local id, name, description and live version.",
            object(json!({ "type": "object", "properties": {} })),
        ),
        Tool::new(
            "run_agent",
            "Send a message to an agent and return its answer. Starts a session on the agent's live version, or continues `session_id`. When the agent asks a question instead, the result has `input_request`: answer it with answer_input.",
            object(json!({
                "type": "object",
                "properties": {
                    "agent_id": { "type": "string", "description": "The agent (from list_agents)." },
                    "message": { "type": "string" },
                    "session_id": { "type": "string", "description": "Continue this session instead of starting one." }
                },
                "required": ["message"]
            })),
        ),
        Tool::new(
            "answer_input",
            "Answer the question an agent paused on (run_agent's `input_request`) and return what it does next.",
            object(json!({
                "type": "object",
                "properties": {
                    "session_id": { "type": "string" },
                    "input_request_id": { "type": "string" },
                    "value": { "description": "The answer: text, true/false, or one of the options." }
                },
                "required": ["session_id", "input_request_id", "value"]
            })),
        ),
    ]
}

/// A tool's result: the JSON as text and as structured content.
fn done(value: Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(value.to_string())]);
    result.structured_content = Some(value);
    result
}

/// A tool that failed the way a caller can fix: an error result, not a
/// protocol error.
fn failed(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

fn text_arg(args: &Map<String, Value>, key: &str) -> Option<String> {
    args.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .filter(|s| !s.trim().is_empty())
}

impl KilnMcp {
    async fn call(&self, ctx: &AuthContext, name: &str, args: Map<String, Value>) -> CallToolResult {
        let state = &self.0;
        match name {
            "search" => {
                let Some(query) = text_arg(&args, "query") else {
                    return failed("`query` is required");
                };
                let search = SearchQuery {
                    query,
                    top_k: Some(args.get("top_k").and_then(Value::as_i64).unwrap_or(5)),
                    index_id: text_arg(&args, "index_id").map(kiln_core::ids::IndexId::from_string),
                    ..Default::default()
                };
                match state.rag.search(ctx, search).await {
                    Ok(hits) => done(json!({
                        "results": hits.into_iter().map(convert::search_result).collect::<Vec<_>>()
                    })),
                    Err(error) => failed(error.to_string()),
                }
            }
            "list_agents" => match state.agents.list_agent_configs(ctx).await {
                Ok(agents) => done(json!({
                    "agents": agents.into_iter().map(|a| json!({
                        "id": a.id.as_str(),
                        "local_id": a.local_id,
                        "name": a.name,
                        "description": a.description,
                        "live_version_id": a.active_version_id,
                    })).collect::<Vec<_>>()
                })),
                Err(error) => failed(error.to_string()),
            },
            "run_agent" => {
                let Some(message) = text_arg(&args, "message") else {
                    return failed("`message` is required");
                };
                // The same budget as `POST /agents/:id/run`.
                if let Err(error) = state
                    .control
                    .rate_limit(ctx, kiln_core::control::rate::RateKind::Run)
                {
                    return failed(error.to_string());
                }
                let session_id = match (text_arg(&args, "session_id"), text_arg(&args, "agent_id")) {
                    (Some(id), _) => SessionId::from_string(id),
                    (None, Some(agent_id)) => {
                        let input = CreateSession {
                            agent_id: Some(AgentId::from_string(agent_id).into_string()),
                            title: Some("MCP".into()),
                            ..Default::default()
                        };
                        match state.runtime.create_session(ctx, input).await {
                            Ok(session) => session.id,
                            Err(error) => return failed(error.to_string()),
                        }
                    }
                    (None, None) => return failed("give `agent_id` (to start a session) or `session_id`"),
                };
                match state.runtime.run_turn(ctx, &session_id, &message).await {
                    Ok((_, events)) => outcome(&session_id, events).await,
                    Err(error) => failed(error.to_string()),
                }
            }
            "answer_input" => {
                let (Some(session), Some(request_id)) =
                    (text_arg(&args, "session_id"), text_arg(&args, "input_request_id"))
                else {
                    return failed("`session_id` and `input_request_id` are required");
                };
                let session_id = SessionId::from_string(session);
                // The id `run_agent` gave is `<request id>@<its event's seq>`,
                // so what follows the question is read from there.
                let Some((request_id, after)) = request_id
                    .rsplit_once('@')
                    .and_then(|(id, seq)| Some((id.to_owned(), seq.parse::<i64>().ok()?)))
                else {
                    return failed("`input_request_id` is not one that run_agent returned");
                };
                let value = args.get("value").cloned().unwrap_or(Value::Null);
                if let Err(error) = state
                    .runtime
                    .answer_input(ctx, &session_id, &request_id, value)
                    .await
                {
                    return failed(error.to_string());
                }
                match state.runtime.follow_events(ctx, &session_id, after).await {
                    Ok(events) => outcome(&session_id, events).await,
                    Err(error) => failed(error.to_string()),
                }
            }
            other => failed(format!("no tool named `{other}`")),
        }
    }
}

/// Reads a turn's events to its answer, its error, or a question.
async fn outcome(session_id: &SessionId, mut events: EventFollow) -> CallToolResult {
    let mut answer = String::new();
    while let Some(item) = events.next().await {
        let FollowItem::Event(event) = item else {
            continue;
        };
        match &event.body {
            EventBody::Response { content, .. } => answer = content.clone(),
            EventBody::InputRequest {
                request_id,
                input_type,
                message,
                options,
                ..
            } => {
                return done(json!({
                    "session_id": session_id.as_str(),
                    "status": "awaiting_input",
                    "input_request": {
                        "id": format!("{request_id}@{}", event.seq),
                        "type": input_type,
                        "message": message,
                        "options": options,
                    },
                }));
            }
            EventBody::Error { message, .. } => {
                return failed(format!("the turn failed: {message} (session {session_id})"));
            }
            EventBody::Done { .. } => {
                return done(json!({
                    "session_id": session_id.as_str(),
                    "status": "done",
                    "answer": answer,
                }));
            }
            _ => {}
        }
    }
    failed(format!("the turn's events ended early (session {session_id})"))
}

impl ServerHandler for KilnMcp {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        );
        info.server_info = Implementation::new("kiln", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "Kiln: search this project's knowledge (search), and talk to its agents (list_agents, run_agent, answer_input)."
                .into(),
        );
        info
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let ctx = caller(&context)?;
        let args = request.arguments.unwrap_or_default();
        Ok(CallToolResponse::Complete(
            self.call(&ctx, &request.name, args).await,
        ))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let ctx = caller(&context)?;
        let page = kiln_core::page::Page::new(Some(MAX_RESOURCES), None, MAX_RESOURCES, MAX_RESOURCES);
        let (documents, _) = self
            .0
            .rag
            .list_documents(&ctx, Default::default(), None, page)
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(ListResourcesResult::with_all_items(
            documents
                .into_iter()
                .map(|d| {
                    let mut resource = Resource::new(format!("{DOCUMENT_URI}{}", d.id), d.filename.clone());
                    resource.mime_type = Some("text/plain".into());
                    resource.description = Some(format!("document of index {}", d.index_id));
                    resource
                })
                .collect(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let ctx = caller(&context)?;
        let not_found = || ErrorData::resource_not_found(format!("no resource {}", request.uri), None);
        let id = request.uri.strip_prefix(DOCUMENT_URI).ok_or_else(not_found)?;
        let (_, passages) = self
            .0
            .rag
            .document_passages(&ctx, &kiln_core::ids::DocumentId::from_string(id))
            .await
            .map_err(|_| not_found())?;
        Ok(ReadResourceResponse::Complete(ReadResourceResult::new(vec![
            ResourceContents::text(passages.join("\n\n"), request.uri.clone()),
        ])))
    }
}

/// Documents as resources: `kiln://documents/<id>`.
const DOCUMENT_URI: &str = "kiln://documents/";
/// The newest documents listed as resources.
const MAX_RESOURCES: i64 = 200;

/// The key's `AuthContext`, which the middleware put in the request.
fn caller(context: &RequestContext<RoleServer>) -> Result<AuthContext, ErrorData> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<AuthContext>())
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("the request was not authenticated", None))
}
