//! [`RmcpClient`]: kiln-core's `McpClient` port over rmcp, the official MCP
//! SDK. Streamable HTTP goes to the URL a project chose, through a client
//! whose resolver refuses private addresses (unless the operator allows
//! them), as does HTTP+SSE (the 2024-11-05 transport, in [`sse`]); stdio
//! servers are processes the operator declared by name.
//!
//! One connection per (project, server as resolved, token included) is kept
//! and reused; at most `max_connections` are open, the least recently used
//! closed first. A call that fails on the transport drops its connection,
//! so the next call connects anew; a stdio server that fails to start is
//! retried after a backoff that doubles up to 30 s. Every request has the
//! call timeout, and a result over `max_result_bytes` is refused.

mod sse;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kiln_core::ids::ProjectId;
use kiln_core::mcp::{McpCallResult, McpClient, McpError, McpServer, McpTool, McpTransport};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::guard;

/// A stdio server the operator declared: the process to start.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
pub struct StdioServer {
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct McpSettings {
    /// Lets HTTP servers on private and loopback addresses be reached (for
    /// development), as `--allow-private-network` does for `fetch()`.
    pub allow_private_network: bool,
    /// The operator's stdio servers, by name.
    pub stdio: BTreeMap<String, StdioServer>,
    /// Each connect, list and call.
    pub timeout: Duration,
    /// The largest tool result, as JSON.
    pub max_result_bytes: usize,
    /// Connections kept open at once.
    pub max_connections: usize,
}

impl Default for McpSettings {
    fn default() -> Self {
        McpSettings {
            allow_private_network: false,
            stdio: BTreeMap::new(),
            timeout: Duration::from_secs(30),
            max_result_bytes: 1024 * 1024,
            max_connections: 64,
        }
    }
}

type Connection = RunningService<RoleClient, ()>;

struct Entry {
    connection: Arc<Connection>,
    used: Instant,
}

/// A server whose last start failed: not tried again before `retry_at`.
struct Backoff {
    failures: u32,
    retry_at: Instant,
    why: String,
}

/// The rmcp-backed MCP client.
pub struct RmcpClient {
    settings: McpSettings,
    http: reqwest::Client,
    connections: Mutex<HashMap<(ProjectId, McpServer), Entry>>,
    backoff: Mutex<HashMap<(ProjectId, McpServer), Backoff>>,
}

impl RmcpClient {
    pub fn new(settings: McpSettings) -> RmcpClient {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none());
        if !settings.allow_private_network {
            builder = guard::public_only(builder);
        }
        RmcpClient {
            http: builder.build().unwrap_or_default(),
            settings,
            connections: Mutex::new(HashMap::new()),
            backoff: Mutex::new(HashMap::new()),
        }
    }

    /// The open connection to `server` for `project`, or a new one.
    async fn connection(&self, project: &ProjectId, server: &McpServer) -> Result<Arc<Connection>, McpError> {
        let key = (project.clone(), server.clone());
        if let Some(entry) = self.connections.lock().await.get_mut(&key) {
            entry.used = Instant::now();
            return Ok(entry.connection.clone());
        }
        if let Some(backoff) = self.backoff.lock().await.get(&key)
            && Instant::now() < backoff.retry_at
        {
            return Err(McpError::Unreachable(format!(
                "{} (retrying in {} s)",
                backoff.why,
                backoff
                    .retry_at
                    .saturating_duration_since(Instant::now())
                    .as_secs()
                    .max(1)
            )));
        }
        let connected = match tokio::time::timeout(self.settings.timeout, self.connect(server)).await {
            Ok(connected) => connected,
            Err(_) => Err(McpError::Timeout),
        };
        let connection = match connected {
            Ok(connection) => Arc::new(connection),
            Err(error) => {
                if server.transport == McpTransport::Stdio {
                    let mut backoff = self.backoff.lock().await;
                    let failures = backoff.get(&key).map_or(0, |b| b.failures) + 1;
                    let wait =
                        Duration::from_millis(500 * 2u64.pow(failures.min(6))).min(Duration::from_secs(30));
                    backoff.insert(
                        key,
                        Backoff {
                            failures,
                            retry_at: Instant::now() + wait,
                            why: error.to_string(),
                        },
                    );
                }
                return Err(error);
            }
        };
        self.backoff.lock().await.remove(&key);
        let mut connections = self.connections.lock().await;
        if connections.len() >= self.settings.max_connections.max(1)
            && let Some(oldest) = connections
                .iter()
                .min_by_key(|(_, entry)| entry.used)
                .map(|(key, _)| key.clone())
        {
            connections.remove(&oldest);
        }
        connections.insert(
            key,
            Entry {
                connection: connection.clone(),
                used: Instant::now(),
            },
        );
        Ok(connection)
    }

    async fn connect(&self, server: &McpServer) -> Result<Connection, McpError> {
        match server.transport {
            McpTransport::StreamableHttp => {
                let url = server.url.as_deref().unwrap_or_default();
                if !self.settings.allow_private_network {
                    guard::check_url(url).map_err(McpError::Refused)?;
                }
                let mut config = StreamableHttpClientTransportConfig::with_uri(url);
                config.max_json_response_size = self.settings.max_result_bytes;
                if let Some(token) = &server.bearer {
                    config = config.auth_header(token.clone());
                }
                let transport = StreamableHttpClientTransport::with_client(self.http.clone(), config);
                ().serve(transport)
                    .await
                    .map_err(|error| McpError::Unreachable(error.to_string()))
            }
            McpTransport::Sse => {
                let url = server.url.as_deref().unwrap_or_default();
                if !self.settings.allow_private_network {
                    guard::check_url(url).map_err(McpError::Refused)?;
                }
                let transport = sse::SseClientTransport::connect(
                    self.http.clone(),
                    url,
                    server.bearer.clone(),
                    self.settings.timeout,
                    self.settings.max_result_bytes,
                )
                .await
                .map_err(|error| McpError::Unreachable(error.to_string()))?;
                ().serve(transport)
                    .await
                    .map_err(|error| McpError::Unreachable(error.to_string()))
            }
            McpTransport::Stdio => {
                let stdio = self
                    .settings
                    .stdio
                    .get(&server.name)
                    .ok_or_else(|| McpError::UnknownServer(server.name.clone()))?;
                let command = tokio::process::Command::new(&stdio.command).configure(|c| {
                    c.args(&stdio.args).envs(&stdio.env).kill_on_drop(true);
                });
                let transport = TokioChildProcess::new(command).map_err(|error| {
                    McpError::Unreachable(format!("cannot start `{}`: {error}", stdio.command))
                })?;
                ().serve(transport)
                    .await
                    .map_err(|error| McpError::Unreachable(error.to_string()))
            }
        }
    }

    /// Forgets a connection that failed, so the next call connects anew.
    async fn drop_connection(&self, project: &ProjectId, server: &McpServer) {
        self.connections
            .lock()
            .await
            .remove(&(project.clone(), server.clone()));
    }

    /// Runs `request` on the connection, with the timeout; a transport
    /// failure drops the connection.
    async fn with_connection<T, F, Fut>(
        &self,
        project: &ProjectId,
        server: &McpServer,
        request: F,
    ) -> Result<T, McpError>
    where
        F: FnOnce(Arc<Connection>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ServiceError>>,
    {
        let connection = self.connection(project, server).await?;
        match tokio::time::timeout(self.settings.timeout, request(connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(ServiceError::McpError(error))) => Err(McpError::Tool(error.message.to_string())),
            Ok(Err(error)) => {
                self.drop_connection(project, server).await;
                Err(McpError::Unreachable(error.to_string()))
            }
            Err(_) => {
                self.drop_connection(project, server).await;
                Err(McpError::Timeout)
            }
        }
    }
}

#[async_trait]
impl McpClient for RmcpClient {
    async fn list_tools(&self, project: &ProjectId, server: &McpServer) -> Result<Vec<McpTool>, McpError> {
        let tools = self
            .with_connection(project, server, |c| async move { c.list_all_tools().await })
            .await?;
        Ok(tools
            .into_iter()
            .map(|tool| McpTool {
                name: tool.name.to_string(),
                description: tool.description.map(|d| d.to_string()).unwrap_or_default(),
                input_schema: Value::Object((*tool.input_schema).clone()),
            })
            .collect())
    }

    async fn call_tool(
        &self,
        project: &ProjectId,
        server: &McpServer,
        tool: &str,
        args: Value,
    ) -> Result<McpCallResult, McpError> {
        let mut params = CallToolRequestParams::new(tool.to_owned());
        if let Value::Object(args) = args {
            params = params.with_arguments(args);
        }
        let result = self
            .with_connection(project, server, |c| async move { c.call_tool(params).await })
            .await?;
        let size = serde_json::to_vec(&result).map_or(usize::MAX, |json| json.len());
        if size > self.settings.max_result_bytes {
            return Err(McpError::TooLarge);
        }
        let text = result
            .content
            .iter()
            .filter_map(|block| block.as_text().map(|t| t.text.as_str()))
            .collect::<Vec<_>>()
            .join("\n");
        if result.is_error == Some(true) {
            return Err(McpError::Tool(if text.is_empty() {
                format!("the tool `{tool}` failed")
            } else {
                text
            }));
        }
        Ok(McpCallResult {
            text,
            structured: result.structured_content.filter(|v| !v.is_null()),
        })
    }
}
