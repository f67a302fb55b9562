//! A tiny real MCP server, built with rmcp, for tests and benchmarks: the
//! tools of an order desk, served over streamable HTTP on 127.0.0.1 (with an
//! optional bearer token) or over stdio (the `kiln-fake-mcp` binary).
//!
//! Over HTTP+SSE too (the 2024-11-05 transport), which rmcp no longer
//! serves: a small axum front over the same handler.
//!
//! Tools: `lookup_order {id}` (structured `{id, status, total}` and a text
//! line), `echo {text}` (the text), `fail {}` (a result with `isError`),
//! `crash {}` (over stdio, the process exits mid-call), `slow {ms}` (answers
//! after `ms` milliseconds), `flood {bytes}` (that much text). Behind the
//! `fake` feature.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};

/// The order desk's tools. Over stdio, `crash` ends the process in the
/// middle of the call (a server that dies mid-call); in process it refuses.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderDesk {
    can_exit: bool,
}

fn schema(properties: Value, required: &[&str]) -> Arc<serde_json::Map<String, Value>> {
    let Value::Object(map) = json!({ "type": "object", "properties": properties, "required": required })
    else {
        unreachable!("a JSON object literal");
    };
    Arc::new(map)
}

fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "lookup_order",
            "Looks up an order by id: its status and total.",
            schema(json!({ "id": { "type": "string" } }), &["id"]),
        ),
        Tool::new(
            "echo",
            "Returns the text it is given.",
            schema(json!({ "text": { "type": "string" } }), &["text"]),
        ),
        Tool::new("fail", "Always fails.", schema(json!({}), &[])),
        Tool::new(
            "crash",
            "Ends the server process mid-call (stdio only).",
            schema(json!({}), &[]),
        ),
        Tool::new(
            "slow",
            "Answers after `ms` milliseconds.",
            schema(json!({ "ms": { "type": "integer" } }), &["ms"]),
        ),
        Tool::new(
            "flood",
            "Returns `bytes` bytes of text.",
            schema(json!({ "bytes": { "type": "integer" } }), &["bytes"]),
        ),
    ]
}

impl OrderDesk {
    fn call(&self, name: &str, args: &serde_json::Map<String, Value>) -> Result<CallToolResult, ErrorData> {
        let text = |key: &str| args.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
        let number = |key: &str| args.get(key).and_then(Value::as_u64).unwrap_or(0);
        Ok(match name {
            "lookup_order" => {
                let id = text("id");
                let order = json!({ "id": id, "status": "shipped", "total": 42.5 });
                let mut result =
                    CallToolResult::success(vec![ContentBlock::text(format!("Order {id} has shipped."))]);
                result.structured_content = Some(order);
                result
            }
            "echo" => CallToolResult::success(vec![ContentBlock::text(text("text"))]),
            "fail" => CallToolResult::error(vec![ContentBlock::text("the order service is down")]),
            "crash" if self.can_exit => std::process::exit(3),
            "crash" => CallToolResult::error(vec![ContentBlock::text("crash ends the process: stdio only")]),
            "flood" => {
                CallToolResult::success(vec![ContentBlock::text("x".repeat(number("bytes") as usize))])
            }
            other => return Err(ErrorData::invalid_params(format!("no tool named {other}"), None)),
        })
    }
}

impl ServerHandler for OrderDesk {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
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
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        if request.name == "slow" {
            let ms = args.get("ms").and_then(Value::as_u64).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return Ok(CallToolResponse::Complete(CallToolResult::success(vec![
                ContentBlock::text("done"),
            ])));
        }
        self.call(&request.name, &args).map(CallToolResponse::Complete)
    }
}

/// The order desk over streamable HTTP on 127.0.0.1, at `/mcp`.
pub struct FakeMcpServer {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl FakeMcpServer {
    /// Starts it over streamable HTTP, at `/mcp`; with `token`, requests
    /// without `Authorization: Bearer <token>` get 401.
    pub async fn start(token: Option<&str>) -> FakeMcpServer {
        let service = StreamableHttpService::new(
            || Ok(OrderDesk::default()),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default(),
        );
        listen(Router::new().nest_service("/mcp", service), token, "/mcp").await
    }

    /// Starts it over HTTP+SSE (MCP 2024-11-05): the event stream at `/sse`
    /// names `/messages?sessionId=…` as the endpoint to post to.
    pub async fn start_sse(token: Option<&str>) -> FakeMcpServer {
        listen(legacy_sse::router(), token, "/sse").await
    }
}

/// Serves `router` on 127.0.0.1, behind the bearer check when `token` is set.
async fn listen(mut router: Router, token: Option<&str>, path: &str) -> FakeMcpServer {
    if let Some(token) = token {
        let expected = format!("Bearer {token}");
        router = router.layer(axum::middleware::from_fn(move |request: Request, next: Next| {
            let expected = expected.clone();
            async move {
                let authorized = request
                    .headers()
                    .get(axum::http::header::AUTHORIZATION)
                    .is_some_and(|v| v.as_bytes() == expected.as_bytes());
                if authorized {
                    next.run(request).await
                } else {
                    let mut response = Response::new(axum::body::Body::from("unauthorized"));
                    *response.status_mut() = StatusCode::UNAUTHORIZED;
                    response
                }
            }
        }));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the fake MCP server");
    let addr = listener.local_addr().expect("its address");
    // Replies are small: without TCP_NODELAY each waits on a delayed ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router.into_make_service()).await;
    });
    FakeMcpServer {
        url: format!("http://{addr}{path}"),
        task,
    }
}

/// The HTTP+SSE server side, which rmcp no longer ships: each `GET /sse`
/// runs an order desk over a pair of channels, fed by `POST /messages`.
mod legacy_sse {
    use std::collections::HashMap;
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::extract::{Query, State};
    use axum::http::StatusCode;
    use axum::response::sse::{Event, Sse};
    use axum::routing::{get, post};
    use futures::{Stream, StreamExt};
    use rmcp::ServiceExt;
    use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
    use rmcp::service::RoleServer;
    use rmcp::transport::Transport;
    use tokio::sync::mpsc;

    use super::OrderDesk;

    type Sessions = Arc<Mutex<HashMap<String, mpsc::Sender<ClientJsonRpcMessage>>>>;

    /// The order desk's side of one session.
    struct Channels {
        to_client: mpsc::Sender<ServerJsonRpcMessage>,
        from_client: mpsc::Receiver<ClientJsonRpcMessage>,
    }

    impl Transport<RoleServer> for Channels {
        type Error = std::io::Error;

        fn send(
            &mut self,
            item: ServerJsonRpcMessage,
        ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
            let to_client = self.to_client.clone();
            async move {
                to_client
                    .send(item)
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            }
        }

        async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
            self.from_client.recv().await
        }

        async fn close(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "a stand-in MCP server, not Kiln's API: it has no OpenAPI document to keep in step"
    )]
    pub(super) fn router() -> Router {
        Router::new()
            .route("/sse", get(open))
            .route("/messages", post(message))
            .with_state(Sessions::default())
    }

    async fn open(State(sessions): State<Sessions>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
        let id = format!("{:016x}", rand::random::<u64>());
        let (to_client, outbox) = mpsc::channel::<ServerJsonRpcMessage>(16);
        let (inbox, from_client) = mpsc::channel(16);
        sessions.lock().expect("sessions").insert(id.clone(), inbox);
        tokio::spawn(async move {
            if let Ok(running) = OrderDesk::default()
                .serve(Channels {
                    to_client,
                    from_client,
                })
                .await
            {
                let _ = running.waiting().await;
            }
        });
        let endpoint = Event::default()
            .event("endpoint")
            .data(format!("/messages?sessionId={id}"));
        let session = Session { id, sessions, outbox };
        let messages = futures::stream::unfold(session, |mut session| async move {
            let message = session.outbox.recv().await?;
            let json = serde_json::to_string(&message).unwrap_or_default();
            Some((Ok(Event::default().event("message").data(json)), session))
        });
        Sse::new(futures::stream::once(async { Ok(endpoint) }).chain(messages))
    }

    /// The client's end of a session; forgotten when the client goes away.
    struct Session {
        id: String,
        sessions: Sessions,
        outbox: mpsc::Receiver<ServerJsonRpcMessage>,
    }

    impl Drop for Session {
        fn drop(&mut self) {
            if let Ok(mut sessions) = self.sessions.lock() {
                sessions.remove(&self.id);
            }
        }
    }

    async fn message(
        State(sessions): State<Sessions>,
        Query(query): Query<HashMap<String, String>>,
        body: axum::body::Bytes,
    ) -> StatusCode {
        let Some(inbox) = query
            .get("sessionId")
            .and_then(|id| sessions.lock().expect("sessions").get(id).cloned())
        else {
            return StatusCode::NOT_FOUND;
        };
        let Ok(message) = serde_json::from_slice::<ClientJsonRpcMessage>(&body) else {
            return StatusCode::BAD_REQUEST;
        };
        match inbox.send(message).await {
            Ok(()) => StatusCode::ACCEPTED,
            Err(_) => StatusCode::GONE,
        }
    }
}
impl Drop for FakeMcpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the order desk on stdin/stdout until the client goes away.
pub async fn serve_stdio() -> Result<(), String> {
    use rmcp::ServiceExt;
    let running = OrderDesk { can_exit: true }
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| e.to_string())?;
    running.waiting().await.map_err(|e| e.to_string())?;
    Ok(())
}
