//! The `McpClient` port: tools from MCP servers, which an agent declares in
//! `agent.jsonc → mcp` and its code reaches as `require('<server>').<tool>(args)`.
//!
//! `kiln-providers` implements it with rmcp: streamable HTTP to a URL the
//! project chose (behind the private-network guard), or a local process
//! (stdio) that only the operator declares, by name, in the server's
//! configuration. Connections are kept per (project, server) and reused, so
//! one project's connections and tokens never serve another.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::ProjectId;

/// How Kiln reaches a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum McpTransport {
    /// MCP's streamable HTTP transport (one endpoint, JSON or SSE replies).
    StreamableHttp,
    /// The older HTTP+SSE transport (a GET event stream and a POST endpoint).
    Sse,
    /// A local process the operator configured, over stdin/stdout.
    Stdio,
}

/// One server, as a call needs it: its secrets already resolved (they are
/// never stored with it).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct McpServer {
    /// What the agent calls it (`require` takes this).
    pub name: String,
    pub transport: McpTransport,
    /// The endpoint of an HTTP transport; `None` for stdio.
    pub url: Option<String>,
    /// Sent as `Authorization: Bearer <token>`.
    pub bearer: Option<String>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("name", &self.name)
            .field("transport", &self.transport)
            .field("url", &self.url)
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A tool a server offers, as `tools/list` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct McpTool {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// JSON Schema of its arguments.
    #[serde(default)]
    pub input_schema: Value,
}

/// What `tools/call` returned when it succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct McpCallResult {
    /// The text content blocks, joined by newlines.
    pub text: String,
    /// `structuredContent`, when the server sent it.
    pub structured: Option<Value>,
}

/// Why a list or a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpError {
    /// The stdio server is not in the operator's configuration.
    UnknownServer(String),
    /// The address is refused (a private network) or not a valid URL.
    Refused(String),
    /// The server cannot be reached, or the connection broke.
    Unreachable(String),
    /// The server answered with a JSON-RPC error, or the call's result has
    /// `isError: true`: its message.
    Tool(String),
    /// No answer within the time limit.
    Timeout,
    /// The answer is over the size limit.
    TooLarge,
}

impl std::fmt::Display for McpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            McpError::UnknownServer(name) => write!(
                f,
                "no MCP server named `{name}` is configured on this Kiln server (stdio servers are declared by the operator)"
            ),
            McpError::Refused(why) => write!(f, "refused: {why}"),
            McpError::Unreachable(why) => write!(f, "unreachable: {why}"),
            McpError::Tool(message) => f.write_str(message),
            McpError::Timeout => f.write_str("the MCP server did not answer in time"),
            McpError::TooLarge => f.write_str("the MCP server's answer is over the size limit"),
        }
    }
}

#[async_trait]
pub trait McpClient: Send + Sync {
    /// `tools/list`, every page.
    async fn list_tools(&self, project: &ProjectId, server: &McpServer) -> Result<Vec<McpTool>, McpError>;
    /// `tools/call`.
    async fn call_tool(
        &self,
        project: &ProjectId,
        server: &McpServer,
        tool: &str,
        args: Value,
    ) -> Result<McpCallResult, McpError>;
}
