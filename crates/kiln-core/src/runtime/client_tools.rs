//! Client-side tools: functions a session declares (`client_tools` on
//! create) that the model may call but the *client* runs. The call becomes
//! a `tool_call` event with a `call_id`, the turn pauses (`awaiting_tool`,
//! its clocks stopped as for `input()`), and `POST /agents/:id/tool-results`
//! resumes it with the client's result or error, from any server.

use std::time::Instant;

use serde_json::{Map, Value};

use crate::auth::AuthContext;
use crate::error::{Error, Refusal, Result};
use crate::ids::{SessionId, ToolCallId};
use crate::llm::ToolSpec;
use crate::runtime::event::{
    EventBody, MAX_EVENT_CONTENT_BYTES, TurnErrorCode, bounded_result, render_value, truncate_text,
};
use crate::runtime::hub::Stop;
use crate::runtime::store::{AgentSignal, ResolveToolCall, ToolCallRequest};
use crate::runtime::turn::Turn;
use crate::runtime::{AgentRuntime, SessionStatus, prompt};
use crate::time::now;

/// Client tools per session, at most.
pub const MAX_CLIENT_TOOLS: usize = 32;
/// A tool's description, at most (bytes).
pub const MAX_CLIENT_TOOL_DESCRIPTION_BYTES: usize = 4 * 1024;
/// A tool's parameter schema as JSON, at most (bytes).
pub const MAX_CLIENT_TOOL_SCHEMA_BYTES: usize = 16 * 1024;
/// A tool result (or error) as JSON, at most (bytes).
pub const MAX_TOOL_RESULT_BYTES: usize = 256 * 1024;

/// How often a turn waiting for a tool result looks at the database when
/// no signal arrives (a lost `NOTIFY`).
const RESULT_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Checks the `client_tools` of a session create: names a model accepts
/// (letters, digits, `_`, `-`; up to 64), unique, not a server tool's; a
/// parameter schema that is a JSON Schema object (`{"type": "object"}` when
/// left out).
pub fn check_client_tools(tools: Vec<ToolSpec>) -> Result<Vec<ToolSpec>> {
    let invalid = |message: String| Error::validation(message, Some("client_tools"));
    if tools.len() > MAX_CLIENT_TOOLS {
        return Err(invalid(format!(
            "at most {MAX_CLIENT_TOOLS} client tools per session"
        )));
    }
    let mut checked: Vec<ToolSpec> = Vec::with_capacity(tools.len());
    for mut tool in tools {
        let name = tool.name.as_str();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(invalid(format!(
                "client tool name `{}` must be 1-64 letters, digits, `_` or `-`, starting with a letter or `_`",
                crate::runtime::event::first_chars(name, 80)
            )));
        }
        if name == prompt::EXECUTE_JS || crate::runtime::session::TOOL_NAMES.contains(&name) {
            return Err(invalid(format!(
                "client tool name `{name}` is taken by a server tool"
            )));
        }
        if checked.iter().any(|t| t.name == tool.name) {
            return Err(invalid(format!("client tool `{name}` is declared twice")));
        }
        if tool.description.len() > MAX_CLIENT_TOOL_DESCRIPTION_BYTES {
            return Err(invalid(format!(
                "the description of `{name}` is longer than {MAX_CLIENT_TOOL_DESCRIPTION_BYTES} bytes"
            )));
        }
        if tool.parameters.is_null() {
            tool.parameters = serde_json::json!({ "type": "object", "properties": {} });
        }
        let Value::Object(schema) = &tool.parameters else {
            return Err(invalid(format!(
                "the parameters of `{name}` must be a JSON Schema object"
            )));
        };
        if schema.get("type").is_some_and(|t| t != "object") {
            return Err(invalid(format!(
                "the parameters of `{name}` must describe an object (`\"type\": \"object\"`)"
            )));
        }
        if tool.parameters.to_string().len() > MAX_CLIENT_TOOL_SCHEMA_BYTES {
            return Err(invalid(format!(
                "the parameters of `{name}` are longer than {MAX_CLIENT_TOOL_SCHEMA_BYTES} bytes"
            )));
        }
        if let Err(e) = jsonschema::validator_for(&tool.parameters) {
            return Err(invalid(format!(
                "the parameters of `{name}` are not a valid JSON Schema: {e}"
            )));
        }
        checked.push(tool);
    }
    Ok(checked)
}

impl AgentRuntime {
    /// `POST /agents/:id/tool-results`: the client's result (or error) for a
    /// client tool call; the waiting turn resumes wherever it runs.
    pub async fn answer_tool_call(
        &self,
        ctx: &AuthContext,
        id: &SessionId,
        call_id: &str,
        outcome: Result<Value, String>,
    ) -> Result<()> {
        let session = self.get_session(ctx, id).await?;
        let size = match &outcome {
            Ok(result) => result.to_string().len(),
            Err(error) => error.len(),
        };
        if size > MAX_TOOL_RESULT_BYTES {
            return Err(Error::validation(
                format!("a tool result takes at most {MAX_TOOL_RESULT_BYTES} bytes; this one has {size}"),
                Some(if outcome.is_ok() { "result" } else { "error" }),
            ));
        }
        let call_id = ToolCallId::from_string(call_id);
        let not_found = || {
            Error::refused(
                Refusal::ToolCallNotFound,
                format!("tool call `{call_id}` is not a client tool call of this session"),
            )
        };
        let call = self
            .store
            .get_tool_call(&ctx.project.id, id, &call_id)
            .await?
            .ok_or_else(not_found)?;
        let already = || {
            Error::refused(
                Refusal::ToolCallAlreadyResolved,
                format!("tool call `{call_id}` already has a result"),
            )
        };
        if call.outcome.is_some() {
            return Err(already());
        }
        if session.turn_id.as_ref() != Some(&call.turn_id) {
            return Err(Error::refused(
                Refusal::ToolCallExpired,
                format!("tool call `{call_id}` belongs to a turn that has ended"),
            ));
        }
        match self
            .store
            .resolve_tool_call(&ctx.project.id, id, &call_id, &outcome, now())
            .await?
        {
            ResolveToolCall::Resolved => {}
            ResolveToolCall::AlreadyResolved => return Err(already()),
            ResolveToolCall::NotFound => return Err(not_found()),
        }
        self.hub.input_arrived(id);
        if let Err(e) = self
            .store
            .notify(&AgentSignal::Input {
                session_id: id.clone(),
            })
            .await
        {
            tracing::warn!(error = %e, "telling other servers about a tool result failed");
        }
        Ok(())
    }
}

impl Turn {
    /// Whether `tool` is one of the session's client tools.
    pub(crate) fn is_client_tool(&self, tool: &str) -> bool {
        self.session.client_tools.iter().any(|t| t.name == tool)
    }

    /// Calls a client tool: logs the call (`tool_call` with its `call_id`,
    /// the session `awaiting_tool`), waits for the client's answer with the
    /// turn's clocks stopped, and logs it as the `tool_result` the model
    /// reads.
    pub(crate) async fn call_client_tool(&self, tool: String, args: Map<String, Value>) -> Result<(), Stop> {
        let call = ToolCallRequest {
            id: ToolCallId::generate(),
            project_id: self.ctx.project.id.clone(),
            session_id: self.session.id.clone(),
            turn_id: self.turn_id.clone(),
            tool: tool.clone(),
            args: args.clone(),
            outcome: None,
            created_at: now(),
        };
        self.runtime.store.create_tool_call(&call).await.map_err(|e| {
            tracing::error!(error = %e, session = %self.session.id, "recording a client tool call failed");
            Stop::new(
                TurnErrorCode::Internal,
                "the tool call could not be recorded",
                SessionStatus::Error,
            )
        })?;
        let paused = self.pause();
        self.emit(
            EventBody::ToolCall {
                tool: tool.clone(),
                args,
                call_id: Some(call.id.to_string()),
                client: true,
            },
            Some(SessionStatus::AwaitingTool),
        )
        .await?;
        let outcome = self.wait_for_tool_result(&call.id).await?;
        drop(paused);
        let result = match outcome {
            Ok(result) => result,
            Err(error) => serde_json::json!({ "error": error }),
        };
        let content = truncate_text(&render_value(&result), MAX_EVENT_CONTENT_BYTES);
        self.emit(
            EventBody::ToolResult {
                tool,
                result: bounded_result(result),
                content,
                call_id: Some(call.id.to_string()),
            },
            Some(SessionStatus::Running),
        )
        .await?;
        Ok(())
    }

    async fn wait_for_tool_result(&self, id: &ToolCallId) -> Result<Result<Value, String>, Stop> {
        let timeout = self.runtime.config.input_timeout;
        let deadline = Instant::now() + timeout;
        let mut answers = self.control.input.subscribe();
        loop {
            let call = self
                .runtime
                .store
                .get_tool_call(&self.ctx.project.id, &self.session.id, id)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, session = %self.session.id, "reading a client tool call failed");
                    Stop::new(TurnErrorCode::Internal, "the tool call could not be read", SessionStatus::Error)
                })?;
            match call {
                Some(ToolCallRequest {
                    outcome: Some(outcome),
                    ..
                }) => return Ok(outcome),
                Some(_) => {}
                None => {
                    return Err(Stop::new(
                        TurnErrorCode::SessionDeleted,
                        "the session was deleted",
                        SessionStatus::Active,
                    ));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Stop::new(
                    TurnErrorCode::ToolTimeout,
                    format!(
                        "the client tool call got no result within {} s",
                        timeout.as_secs()
                    ),
                    SessionStatus::Error,
                ));
            }
            tokio::select! {
                _ = answers.changed() => {}
                () = tokio::time::sleep(left.min(self.runtime.answer_poll(RESULT_POLL))) => {}
            }
        }
    }
}
