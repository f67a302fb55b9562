//! The MCP servers of agents: their secrets resolved from the project's
//! vault (`auth.tokenRef`, `${NAME}` in the URL), their tools listed when a
//! draft is synced or a version deployed, and their tools called on behalf
//! of a session's code.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::agents::config::McpServerSpec;
use crate::agents::source::{issue, warning};
use crate::control::ControlPlane;
use crate::error::Result;
use crate::ids::ProjectId;
use crate::issues::{IssueCode, SourceIssue};
use crate::mcp::{McpCallResult, McpClient, McpError, McpServer};
use crate::project::Project;

/// When a server is checked: an unreachable one warns at sync (the draft
/// still runs, without its tools) and is fatal at deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Sync,
    Deploy,
}

/// Lists and calls agents' MCP tools.
pub struct McpServers {
    client: Arc<dyn McpClient>,
    control: Arc<ControlPlane>,
    /// Resolved servers per (project, server as declared), with the vault
    /// epoch they were read at, so a vault change is seen at once.
    resolved: Mutex<HashMap<(ProjectId, String), (u64, McpServer)>>,
}

/// A server that cannot be resolved: a secret it names is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingSecret(pub String);

impl McpServers {
    pub fn new(client: Arc<dyn McpClient>, control: Arc<ControlPlane>) -> McpServers {
        McpServers {
            client,
            control,
            resolved: Mutex::new(HashMap::new()),
        }
    }

    /// `spec` with its secrets read from the project's vault.
    pub async fn resolve(
        &self,
        project: &Project,
        spec: &McpServerSpec,
    ) -> Result<std::result::Result<McpServer, MissingSecret>> {
        // The server as declared, without the tools it listed.
        let key = (
            project.id.clone(),
            format!(
                "{}|{:?}|{:?}|{:?}",
                spec.name, spec.transport, spec.url, spec.token_ref
            ),
        );
        let epoch = self.control.vault_epoch();
        if let Some((at, server)) = self.lock().get(&key)
            && *at == epoch
        {
            return Ok(Ok(server.clone()));
        }
        let url = match &spec.url {
            Some(url) => match self.expand(project, url).await? {
                Ok(url) => Some(url),
                Err(missing) => return Ok(Err(missing)),
            },
            None => None,
        };
        let bearer = match &spec.token_ref {
            Some(name) => match self.secret(project, name).await? {
                Some(token) => Some(token),
                None => return Ok(Err(MissingSecret(name.clone()))),
            },
            None => None,
        };
        let server = McpServer {
            name: spec.name.clone(),
            transport: spec.transport,
            url,
            bearer,
        };
        self.lock().insert(key, (epoch, server.clone()));
        Ok(Ok(server))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(ProjectId, String), (u64, McpServer)>> {
        self.resolved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One secret of the project's designated vault.
    async fn secret(&self, project: &Project, name: &str) -> Result<Option<String>> {
        let Some(vault_id) = &project.vault_id else {
            return Ok(None);
        };
        if !self.control.secrets_enabled() {
            return Ok(None);
        }
        self.control.reveal_secret(&project.id, vault_id, name).await
    }

    /// `url` with each `${NAME}` replaced by that secret.
    async fn expand(
        &self,
        project: &Project,
        url: &str,
    ) -> Result<std::result::Result<String, MissingSecret>> {
        let mut out = String::new();
        let mut rest = url;
        while let Some(start) = rest.find("${") {
            let Some(len) = rest[start + 2..].find('}') else {
                break;
            };
            let name = &rest[start + 2..start + 2 + len];
            let Some(value) = self.secret(project, name).await? else {
                return Ok(Err(MissingSecret(name.to_owned())));
            };
            out.push_str(&rest[..start]);
            out.push_str(&value);
            rest = &rest[start + 3 + len..];
        }
        out.push_str(rest);
        Ok(Ok(out))
    }

    /// Lists each server's tools; `file` is where the issues point
    /// (`<local id>/agent.jsonc`).
    pub async fn check(
        &self,
        project: &Project,
        file: &str,
        servers: &[McpServerSpec],
        phase: Phase,
    ) -> Result<(Vec<McpServerSpec>, Vec<SourceIssue>)> {
        let mut checked = Vec::with_capacity(servers.len());
        let mut issues = Vec::new();
        let file = Some(file.to_owned());
        for spec in servers {
            let server = match self.resolve(project, spec).await? {
                Ok(server) => server,
                Err(MissingSecret(name)) => {
                    issues.push(issue(
                        file.clone(),
                        IssueCode::MissingSecret,
                        format!("MCP server `{}` needs the secret `{name}`, which the project's vault does not hold", spec.name),
                        Some("put it in the project's vault (PUT /api/sdk/secret-vaults/{id}/secrets/{name}) and make that vault the project's (PUT /api/sdk/project/vault)"),
                    ));
                    checked.push(spec.clone());
                    continue;
                }
            };
            match self.client.list_tools(&project.id, &server).await {
                Ok(tools) => checked.push(McpServerSpec {
                    tools,
                    ..spec.clone()
                }),
                Err(error) => {
                    let message = format!("MCP server `{}`: {error}", spec.name);
                    issues.push(match (&error, phase) {
                        (McpError::UnknownServer(_), _) => issue(
                            file.clone(),
                            IssueCode::UnknownMcpServer,
                            message,
                            Some("give the server a `url`, or ask the operator to declare this stdio server (kiln serve --mcp-config)"),
                        ),
                        (McpError::Refused(_), _) | (_, Phase::Deploy) => issue(
                            file.clone(),
                            IssueCode::McpUnreachable,
                            message,
                            Some("a deploy lists every server's tools; check the URL and that the server is up"),
                        ),
                        (_, Phase::Sync) => warning(
                            file.clone(),
                            IssueCode::McpUnreachable,
                            message,
                            Some("the draft is kept without this server's tools; a deploy needs the server up"),
                        ),
                    });
                    checked.push(spec.clone());
                }
            }
        }
        Ok((checked, issues))
    }

    /// Calls `tool` of `spec` for code of a session in `project`.
    pub async fn call(
        &self,
        project: &Project,
        spec: &McpServerSpec,
        tool: &str,
        args: Value,
    ) -> Result<std::result::Result<McpCallResult, String>> {
        let server = match self.resolve(project, spec).await? {
            Ok(server) => server,
            Err(MissingSecret(name)) => {
                return Ok(Err(format!(
                    "MCP server `{}` needs the secret `{name}`, which the project's vault no longer holds",
                    spec.name
                )));
            }
        };
        Ok(self
            .client
            .call_tool(&project.id, &server, tool, args)
            .await
            .map_err(|error| error.to_string()))
    }
}
